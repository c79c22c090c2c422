-- The application mapping: where tenantguard finds workspaces, tenants, memberships, and the
-- tables it writes its operation runs and audit entries to. Every name has a default (shown
-- in rules/README.md); only what differs from the defaults needs to be written.
app {
  name = "reference",
  columns           = { id = "id", tenant = "tenant_id", workspace = "workspace_id" },
  workspaces        = { table = "workspaces" },
  tenants           = { table = "tenants", workspace = "workspace_id" },
  workspace_members = { table = "workspace_memberships", user = "user_id",
                        workspace = "workspace_id", role = "role" },
  -- a tenant membership may narrow the role inside one tenant; NULL keeps the workspace role
  tenant_members    = { table = "tenant_memberships", user = "user_id",
                        tenant = "tenant_id", role = "role" },
  operation_runs    = { table = "operation_runs", workspace = "workspace_id" },
  audit_logs        = { table = "audit_logs", subject = "subject" },
  limits            = { page_size = 50, max_page_size = 500, max_bulk_ids = 1000 },
}
