capabilities {
  "customer.view", "customer.edit",
  "invoice.view", "invoice.edit", "invoice.send",
  "document.view",
  "writeoff.approve",
}

role "partner"    { "*" }
role "viewer"     { "customer.view", "invoice.view", "document.view" }
role "accountant" { includes = "viewer", "customer.edit", "invoice.edit", "invoice.send" }
