residual "TicketTag" {
  table = "ticket_tags",            -- WITHOUT ROWID, keyed by (ticket_id, tag)
  likely_surface = "Ticket board",
  why_not_in_first_slice = "Edited only through the Ticket Board view.",
}

residual "ClientNote" {
  table = "client_notes",
  columns = { tenant = "client_account_id" },
  likely_surface = "Account sidebar",
  why_not_in_first_slice = "Free-text notes, shown next to an account after its own checks.",
}
