-- A surface that touches tenant data but is not an ordinary family.

exception "WriteOffQueue" {
  exception_kind = "workspace_admin_canonical_viewer",
  table = "write_offs",
  surface = "WriteOffApprovals",
  why_excepted = "Firm partners approve write-offs across the companies they keep books for.",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "writeoff.approve",
}
