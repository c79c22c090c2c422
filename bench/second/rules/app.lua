-- The second benchmark schema (bench/second_schema.c): an invoicing SaaS with names of its
-- own. Orgs are the workspaces, clients the tenants, people the users; the org membership has
-- no role, the role is on the client grant; no operation-run or audit-log table.
app {
  name = "invoicing",
  columns           = { id = "invoice_id", tenant = "client_id", workspace = "org_id" },
  workspaces        = { table = "orgs" },
  tenants           = { table = "clients", workspace = "org_id" },
  workspace_members = { table = "org_members", user = "person_id", workspace = "org_id",
                        role = false },
  tenant_members    = { table = "client_grants", user = "person_id", tenant = "client_id",
                        role = "role" },
  operation_runs    = false,
  audit_logs        = false,
}
