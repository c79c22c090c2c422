-- Tenant-owned tables outside the first slice: the rollout binds them all the same.

residual "Payment" {
  table = "payments",               -- WITHOUT ROWID, keyed (tenant_id, id)
  likely_surface = "Invoice detail, payments tab",
  why_not_in_first_slice = "Shown only under an invoice whose own checks ran first.",
}
