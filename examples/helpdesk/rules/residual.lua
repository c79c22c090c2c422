-- Tenant-owned tables outside the first slice: the rollout binds them all the same.

residual "TicketAttachment" {
  table = "ticket_attachments",
  likely_surface = "Ticket detail",
  why_not_in_first_slice = "Served by the storage proxy after a ticket detail check.",
}

residual "SlaEvent" {
  table = "sla_events",
  likely_surface = "SLA reports",
  why_not_in_first_slice = "Read by the reporting job only.",
}
