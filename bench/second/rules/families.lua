family "Invoice" {
  table = "invoices",
  primary_surface = "InvoiceList",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index       = { capability = "invoice.view" },
    detail      = { capability = "invoice.view" },
    row_action  = { capability = "invoice.edit" },
    bulk_action = { capability = "invoice.delete" },
  },
  fixture = { number = "INV-fixture", amount_cents = 0, currency = "EUR", status = "draft",
              issued_at = "2024-01-01" },
}
