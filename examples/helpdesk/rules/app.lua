-- helpdesk: text keys everywhere, soft-deleted tenants, roles from the database, and no
-- operation-run or audit-log table of its own (tenantguard keeps tenantguard_runs and
-- tenantguard_audit).
app {
  name = "helpdesk",
  columns           = { id = "id", tenant = "tenant_id", workspace = "workspace_id" },
  workspaces        = { table = "workspaces" },
  tenants           = { table = "tenants", workspace = "workspace_id",
                        -- a soft-deleted tenant is no route tenant, and its records are
                        -- never served
                        row_filter = { { column = "deleted_at", op = "is_null" } } },
  workspace_members = { table = "workspace_memberships", user = "user_id",
                        workspace = "workspace_id", role = "role" },
  tenant_members    = { table = "tenant_memberships", user = "user_id",
                        tenant = "tenant_id", role = "role" },
  -- agent, supervisor, ... are granted by rows of this table, read at open and reload
  role_grants       = { table = "role_capabilities", role = "role",
                        capability = "capability" },
  operation_runs    = false,
  audit_logs        = false,
  limits            = { page_size = 25, max_page_size = 200, max_bulk_ids = 100 },
}
