-- The helpdesk's tenant-owned families. Keys are text UUIDs; soft-deleted rows are filtered.

local not_deleted = { { column = "deleted_at", op = "is_null" } }

family "Ticket" {
  table = "tickets",
  primary_surface = "TicketInbox",
  search_posture = "scoped",
  search_columns = { "subject", "requester_email" },
  action_surface_status = "declared",
  row_filter = not_deleted,
  paths = {
    index         = { capability = "ticket.view" },
    detail        = { capability = "ticket.view" },
    row_action    = { capability = "ticket.edit" },
    bulk_action   = { capability = "ticket.delete" },
    global_search = { capability = "ticket.view" },
  },
  fixture = { subject = "fixture ticket", status = "open" },
}

family "Comment" {
  table = "ticket_comments",
  primary_surface = "TicketThread",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  row_filter = not_deleted,
  paths = {
    index            = { capability = "comment.view" },
    detail           = { capability = "comment.view" },
    row_action       = { capability = "comment.edit" },
    -- the thread under a ticket
    relation_manager = { owner = "Ticket", via = "ticket_id", capability = "comment.view" },
  },
  fixture = { body = "fixture comment" },
}

family "Article" {
  table = "kb_articles",
  primary_surface = "KnowledgeBase",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  -- archived and retracted articles are gone for every path
  row_filter = {
    { column = "archived", op = "eq", value = 0 },
    { column = "status", op = "in", value = { "draft", "published" } },
  },
  paths = {
    index            = { capability = "article.view" },
    detail           = { capability = "article.view" },
    row_action       = { capability = "article.publish" },
    -- shared links open an article without a route tenant
    canonical_viewer = { capability = "article.view" },
  },
  fixture = { title = "fixture article", status = "published", archived = 0 },
}

family "Macro" {
  table = "macros",
  primary_surface = "MacroSettings",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index       = { capability = "macro.view" },
    detail      = { capability = "macro.view" },
    row_action  = { capability = "macro.manage" },
    bulk_action = { capability = "macro.manage" },
  },
  fixture = { name = "fixture macro" },
}
