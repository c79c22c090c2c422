-- Capabilities are declared here; most roles come from the role_capabilities table. A role
-- may be in both (its grants are the union): "viewer" and "lead" are.
capabilities {
  "ticket.view", "ticket.edit", "ticket.delete",
  "comment.view", "comment.edit",
  "article.view", "article.publish",
  "macro.view", "macro.manage",
}

role "admin"  { "*" }
role "viewer" { "ticket.view", "comment.view" }
role "lead"   { "ticket.view", "ticket.delete", "comment.view" }
