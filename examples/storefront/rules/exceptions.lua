-- A surface that touches tenant data but is not an ordinary family. It names its own key.

exception "RefundQueue" {
  exception_kind = "workspace_admin_canonical_viewer",
  table = "refund_requests",
  columns = { id = "RefundId" },
  surface = "RefundQueuePage",
  why_excepted = "Organization admins work the refund queue across accounts.",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "order.void",
}
