-- ledger: the application mapping. Every name is the default except where said; the app
-- keeps its own audit log and operation runs.
app {
  name = "ledger",
  columns           = { id = "id", tenant = "tenant_id", workspace = "workspace_id" },
  workspaces        = { table = "workspaces", fixture = { plan = "firm" } },
  tenants           = { table = "tenants", workspace = "workspace_id" },
  workspace_members = { table = "workspace_memberships", user = "user_id",
                        workspace = "workspace_id", role = "role" },
  tenant_members    = { table = "tenant_memberships", user = "user_id",
                        tenant = "tenant_id", role = "role" },
  operation_runs    = { table = "operation_runs", workspace = "workspace_id",
                        summary = "summary" },
  audit_logs        = { table = "audit_logs", subject = "subject" },
  limits            = { page_size = 20, max_page_size = 100, max_bulk_ids = 50 },
}
