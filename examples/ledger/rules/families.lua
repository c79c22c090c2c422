-- ledger's families. Every table is keyed (tenant_id, id) with ids numbered per tenant, so
-- every read by id pins the route tenant (lint info family_key_with_tenant).

family "Customer" {
  table = "customers",
  primary_surface = "CustomersPage",
  search_posture = "scoped",
  search_columns = { "name", "email" },
  action_surface_status = "declared",
  paths = {
    index         = { capability = "customer.view" },
    detail        = { capability = "customer.view" },
    row_action    = { capability = "customer.edit" },
    global_search = { capability = "customer.view" },
  },
}

family "Invoice" {
  table = "invoices",
  primary_surface = "InvoicesPage",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  -- a voided invoice is gone for every path
  row_filter = { { column = "status", op = "ne", value = "void" } },
  paths = {
    index       = { capability = "invoice.view" },
    detail      = { capability = "invoice.view" },
    row_action  = { capability = "invoice.edit" },
    bulk_action = { capability = "invoice.send" },
  },
  fixture = { status = "open" },
}

family "InvoiceLine" {
  table = "invoice_lines",
  primary_surface = "InvoiceEditor",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index            = { capability = "invoice.view" },
    detail           = { capability = "invoice.view" },
    row_action       = { capability = "invoice.edit" },
    -- the lines of an invoice: invoice_id names an invoice of the same tenant
    relation_manager = { owner = "Invoice", via = "invoice_id", capability = "invoice.view" },
  },
}

family "Document" {
  table = "documents",
  primary_surface = "DocumentVault",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index            = { capability = "document.view" },
    detail           = { capability = "document.view" },
    -- shared links open a document by its UUID, without a route tenant
    canonical_viewer = { capability = "document.view" },
  },
}
