capabilities {
  "order.view", "order.edit", "order.void",
  "invoice.view", "invoice.edit",
  "ticket.view", "ticket.edit",
  "shipment.view", "shipment.manage",
}

role "admin"   { "*" }
role "auditor" { "order.view", "invoice.view", "ticket.view", "shipment.view" }
role "clerk"   { includes = "auditor", "order.edit", "ticket.edit", "shipment.manage" }
