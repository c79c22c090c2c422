-- storefront's families: "order" is an SQL keyword, Invoices and Shipments mixed case with
-- their own key and tenant columns, Shipments a WITHOUT ROWID table keyed by text.

family "Order" {
  table = "order",
  primary_surface = "OrdersPage",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  -- voided orders are gone for every path
  row_filter = { { column = "Status", op = "ne", value = "void" } },
  paths = {
    index       = { capability = "order.view" },
    detail      = { capability = "order.view" },
    row_action  = { capability = "order.edit" },
    bulk_action = { capability = "order.void" },
  },
  -- an override where the meaning matters: the fixture's orders must pass the row filter
  fixture = { Status = "open" },
}

family "Invoice" {
  table = "Invoices",
  columns = { id = "InvoiceId", tenant = "acct" },
  primary_surface = "InvoicesPage",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index            = { capability = "invoice.view" },
    detail           = { capability = "invoice.view" },
    row_action       = { capability = "invoice.edit" },
    -- the invoices of an order
    relation_manager = { owner = "Order", via = "order_id", capability = "invoice.view" },
  },
}

family "Ticket" {
  table = "tickets",
  primary_surface = "SupportTickets",
  search_posture = "scoped",
  search_columns = { "Title", "Code" },
  action_surface_status = "declared",
  paths = {
    index            = { capability = "ticket.view" },
    detail           = { capability = "ticket.view" },
    row_action       = { capability = "ticket.edit" },
    global_search    = { capability = "ticket.view" },
    canonical_viewer = { capability = "ticket.view" },
  },
}

family "Shipment" {
  table = "Shipments",
  columns = { id = "TrackingCode", tenant = "acct" },
  primary_surface = "ShipmentsPage",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index       = { capability = "shipment.view" },
    detail      = { capability = "shipment.view" },
    row_action  = { capability = "shipment.manage" },
    bulk_action = { capability = "shipment.manage" },
  },
}
