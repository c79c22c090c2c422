-- storefront: names per table. The app-wide columns are the defaults; Invoices and
-- Shipments name their own key and tenant columns.
app {
  name = "storefront",
  columns           = { id = "id", tenant = "account_id", workspace = "org_id" },
  workspaces        = { table = "Organizations", id = "OrgId",
                        -- a closed organization: nobody is a member any more
                        row_filter = { { column = "Plan", op = "ne", value = "closed" } },
                        fixture = { Plan = "team" } },
  tenants           = { table = "accounts", id = "id", workspace = "org_id" },
  -- read through a view; the matrix fixture writes its base table, org_staff
  workspace_members = { table = "active_staff", user = "staff_id", workspace = "org_id",
                        role = "role" },
  tenant_members    = { table = "account_grants", user = "staff_id", tenant = "acct",
                        role = "role" },
  operation_runs    = false,
  audit_logs        = { table = "activity_log", id = "LogId", workspace = "org_id",
                        tenant = "account_id", action = "verb", subject = "target",
                        metadata = "meta", created_at = "at" },
  limits            = { page_size = 20, max_page_size = 100, max_bulk_ids = 50 },
}
