-- Citus readiness on paper: `tenantguard lint --target citus` and `tenantguard rollout --plan
-- --target citus`. Citus is not packaged here, so nothing runs against it: these tests hold
-- what the tool says to the schema it reads (SQLite here; PostgreSQL in test_pg_citus.lua)
-- and to the rules, and check the plan's order and quoting. The statements' routing is
-- tests/c/test_citus_routing.c.
local lu = require "luaunit"
local H = require "helpers"
package.path = H.source_dir .. "/examples/?.lua;" .. package.path -- story.lua
local tg = H.tg

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function codes(findings)
  local n = {}
  for _, f in ipairs(findings) do n[f.code] = (n[f.code] or 0) + 1 end
  return n
end

local function find(findings, code, needle)
  for _, f in ipairs(findings) do
    if f.code == code and f.message:find(needle, 1, true) then return f end
  end
end

local function citus_lint(rules, db)
  local eng = tg.open { rules = rules, db = db }
  local f = assert(eng:citus_lint())
  eng:close()
  return f
end

-- A small application: notes are tenant-owned; the schema has every flaw the lint knows.
local SCHEMA = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL REFERENCES workspaces(id));
CREATE TABLE users (id INTEGER PRIMARY KEY);
CREATE TABLE workspace_memberships (user_id INTEGER REFERENCES users(id), workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  slug TEXT NOT NULL UNIQUE, name TEXT);
CREATE TABLE parts (id INTEGER PRIMARY KEY, tenant_id INTEGER REFERENCES tenants(id),
  thing_id INTEGER REFERENCES things(id));
CREATE TABLE attachments (id INTEGER PRIMARY KEY, thing_id INTEGER REFERENCES things(id));
]]

-- The same application made ready: composite keys, a composite foreign key, a NOT NULL
-- tenant, attachments carrying their tenant.
local FIXED = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL REFERENCES workspaces(id));
CREATE TABLE users (id INTEGER PRIMARY KEY);
CREATE TABLE workspace_memberships (user_id INTEGER REFERENCES users(id), workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE things (id INTEGER NOT NULL, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  slug TEXT NOT NULL, name TEXT, PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, slug));
CREATE TABLE parts (id INTEGER NOT NULL, tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  thing_id INTEGER, PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, thing_id) REFERENCES things(tenant_id, id));
CREATE TABLE attachments (id INTEGER NOT NULL, tenant_id INTEGER NOT NULL, thing_id INTEGER,
  PRIMARY KEY (tenant_id, id), FOREIGN KEY (tenant_id, thing_id) REFERENCES things(tenant_id, id));
]]

local RESIDUAL = [[
residual "Part" { table = "parts", likely_surface = "ThingResource",
  why_not_in_first_slice = "reached through things" }
]]

local function app_db(schema)
  local path = H.tmpdir() .. "/app.db"
  local db = tg.connect(path)
  db:exec(schema)
  db:close()
  return path
end

TestCitusLint = {}
function TestCitusLint:tearDown() H.cleanup() end

-- From the catalog: each flaw is named with its table, and the rule's file:line.
function TestCitusLint:test_flaws_read_from_the_catalog()
  local rules = H.rule_dir { ["residual.lua"] = RESIDUAL }
  local f = citus_lint(rules, app_db(SCHEMA))
  local pk = find(f, "citus_key_without_tenant", "things: the primary key (id)")
  lu.assertNotNil(pk, "the primary key on id alone")
  lu.assertEquals(pk.level, "warning")
  lu.assertStrContains(pk.where, "families.lua:1")
  lu.assertNotNil(find(f, "citus_key_without_tenant", "things: the unique key (slug)"))
  local fk = find(f, "citus_foreign_key_without_tenant", "parts: the foreign key (thing_id) to things")
  lu.assertNotNil(fk)
  lu.assertStrContains(fk.where, "residual.lua:1")
  lu.assertNotNil(find(f, "citus_nullable_tenant", "parts: the tenant column tenant_id allows NULL"))
  lu.assertNotNil(find(f, "citus_references_distributed",
    "attachments (not in the rules) has a foreign key (thing_id) to the tenant-owned things: a "
    .. "local table cannot reference a distributed one; give it a tenant column"))
  -- reference tables: the app's, and users (a membership table references it)
  for _, t in ipairs { "workspaces (app.workspaces)", "tenants (app.tenants)",
    "workspace_memberships (app.workspace_members)", "tenant_memberships (app.tenant_members)",
    "users (referenced by workspace_memberships)" } do
    local r = find(f, "citus_reference_table", t)
    lu.assertNotNil(r, t)
    lu.assertEquals(r.level, "info")
  end
  lu.assertNotNil(find(f, "citus_distribution", "things (family Thing) should be distributed by its tenant column tenant_id"))
  lu.assertNotNil(find(f, "citus_distribution", "parts (residual Part) should be distributed by its tenant column tenant_id, colocated with things"))
  -- detail and row_action pin the route tenant in distributed mode: only paths without one
  lu.assertNil(codes(f).citus_multi_shard_path)
  for _, x in ipairs(f) do lu.assertNotEquals(x.level, "error") end
end

-- The same application with its keys fixed: the family keyed on (tenant_id, id) as Citus
-- requires, which tenantguard accepts (family_key_with_tenant), so no key is left to fix;
-- attachments, which has a tenant column, is named as drift to declare.
function TestCitusLint:test_a_ready_schema()
  local rules = H.rule_dir { ["residual.lua"] = RESIDUAL }
  local f = citus_lint(rules, app_db(FIXED))
  local c = codes(f)
  lu.assertNil(c.citus_key_without_tenant)
  lu.assertNil(c.citus_foreign_key_without_tenant)
  lu.assertNil(c.citus_nullable_tenant)
  lu.assertNotNil(find(f, "citus_references_distributed", "attachments (not in the rules, "
    .. "though it has tenant_id) has a foreign key (tenant_id,thing_id) to the tenant-owned "
    .. "things: a local table cannot reference a distributed one; declare it in the rules"))
  lu.assertEquals(c.citus_distribution, 2)
  -- declared, it is distributed like the others and the warning goes
  local rules2 = H.rule_dir { ["residual.lua"] = RESIDUAL .. [[
residual "Attachment" { table = "attachments", likely_surface = "ThingResource",
  why_not_in_first_slice = "reached through things" }
]] }
  c = codes(citus_lint(rules2, app_db(FIXED)))
  lu.assertNil(c.citus_references_distributed)
  lu.assertEquals(c.citus_distribution, 3)
  lu.assertNil(c.citus_key_without_tenant)
end

-- Without a database: what the rules alone tell, for the shipped rules.
function TestCitusLint:test_from_the_rules_alone()
  local f = citus_lint(H.shipped_rules)
  local c = codes(f)
  lu.assertEquals(c.citus_reference_table, 4)
  -- eight families and four residuals, plus the exceptions' tenant-owned tables
  lu.assertTrue(c.citus_distribution >= 12)
  lu.assertEquals(c.citus_key_without_tenant, 8) -- a family is keyed on id in the rules
  local p = find(f, "citus_key_without_tenant", "policies is keyed on id in the rules")
  lu.assertStrContains(p.message, "key the table on (tenant_id, id), which tenantguard accepts")
  lu.assertStrContains(p.where, "rules/families.lua:")
  lu.assertNotNil(find(f, "citus_multi_shard_path", "EntraGroup: canonical_viewer reads"))
  lu.assertNil(c.citus_foreign_key_without_tenant) -- needs the catalog
end

-- The codes are the library's: listed by tg.checks() with their level, and documented.
function TestCitusLint:test_codes_listed_and_documented()
  local readme = H.read(H.source_dir .. "/rules/README.md")
  local want = { citus_key_without_tenant = "warning", citus_foreign_key_without_tenant = "warning",
    citus_nullable_tenant = "warning", citus_references_distributed = "warning",
    citus_reference_table = "info", citus_distribution = "info", citus_multi_shard_path = "info" }
  local seen = {}
  for _, c in ipairs(tg.checks()) do
    if want[c.code] then
      seen[c.code] = true
      lu.assertEquals(c.level, want[c.code], c.code)
      lu.assertStrContains(readme, "| `" .. c.code .. "` | " .. want[c.code] .. " |")
    end
  end
  for code in pairs(want) do lu.assertTrue(seen[code], code) end
end

-- The command line: findings printed with file:line, the count of each level; --strict
-- fails on the warnings; a wrong target is a usage error.
function TestCitusLint:test_command_line()
  local rules = H.rule_dir { ["residual.lua"] = RESIDUAL }
  local db = app_db(SCHEMA)
  local rc, out = H.run_tool(("lint %s --db %s --target citus"):format(sh(rules), sh(db)))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "families.lua:1: warning: things: the primary key (id)")
  lu.assertStrMatches(out, ".*0 errors, %d+ warnings, %d+ info %(target citus%)\n$")
  rc, out = H.run_tool(("lint %s --db %s --target citus --strict"):format(sh(rules), sh(db)))
  lu.assertEquals(rc, 1, out)
  rc, out = H.run_tool(("lint %s --target citus --json"):format(sh(rules)))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"target":"citus"')
  lu.assertStrMatches(out, '.*"infos":[1-9]%d*.*')
  lu.assertStrContains(out, '"code":"citus_reference_table"')
  rc, out = H.run_tool(("lint %s --target cockroach"):format(sh(rules)))
  lu.assertEquals(rc, 2, out)
  lu.assertStrContains(out, "--target must be citus, got 'cockroach'")
end

TestCitusPlan = {}
function TestCitusPlan:tearDown() H.cleanup() end

local function plan(args)
  local rc, out = H.run_tool("rollout --plan --target citus " .. args)
  lu.assertEquals(rc, 0, out)
  return out
end

local function before(out, a, b)
  local i, j = out:find(a, 1, true), out:find(b, 1, true)
  lu.assertNotNil(i, a)
  lu.assertNotNil(j, b)
  lu.assertTrue(i < j, a .. " before " .. b)
end

-- The reference database: keys rebuilt before distribution, reference tables before the
-- distributed ones, the first distributed table the colocation group of the others, the
-- workspace column and its indexes; and the database file is not touched.
function TestCitusPlan:test_reference_application()
  local db = H.refdb(5)
  local bytes = H.read(db)
  local out = plan(("--db %s --rules %s"):format(sh(db), sh(H.shipped_rules)))
  lu.assertEquals(H.read(db), bytes, "the plan changed the database")
  lu.assertStrContains(out, "Printed, not run. Untested against Citus")
  lu.assertStrContains(out, 'ALTER TABLE "policy_versions" DROP CONSTRAINT "policy_versions_policy_id_fkey";')
  lu.assertStrContains(out, 'ALTER TABLE "policies" DROP CONSTRAINT "policies_pkey";\nALTER TABLE "policies" ADD PRIMARY KEY ("tenant_id", "id");')
  lu.assertStrContains(out, 'ALTER TABLE "policy_versions" ADD FOREIGN KEY ("tenant_id", "policy_id") REFERENCES "policies" ("tenant_id", "id");')
  lu.assertStrContains(out, [[SELECT create_reference_table('"tenants"');]])
  lu.assertStrContains(out, [[SELECT create_reference_table('"users"');]])
  lu.assertStrContains(out, [[SELECT create_distributed_table('"policies"', 'tenant_id');]])
  lu.assertStrContains(out, [[SELECT create_distributed_table('"backup_items"', 'tenant_id', colocate_with => '"policies"');]])
  lu.assertStrContains(out, 'ALTER TABLE "findings" ADD COLUMN IF NOT EXISTS "workspace_id" bigint REFERENCES "workspaces" ("id");')
  lu.assertStrContains(out, 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "tenantguard_findings_tenant_workspace" ON "findings" ("tenant_id", "workspace_id");')
  -- order: foreign keys dropped, keys rebuilt, foreign keys re-added, reference tables,
  -- then distributed ones (workspaces before tenants, which references it)
  before(out, 'DROP CONSTRAINT "policy_versions_policy_id_fkey"', 'ADD PRIMARY KEY ("tenant_id", "id")')
  before(out, 'DROP CONSTRAINT "policies_pkey"', 'ADD FOREIGN KEY ("tenant_id", "policy_id")')
  before(out, "create_reference_table('\"workspaces\"')", "create_reference_table('\"tenants\"')")
  before(out, "create_reference_table('\"tenants\"')", "create_distributed_table(")
  before(out, "create_distributed_table('\"backup_sets\"'", "create_distributed_table('\"backup_items\"'")
  before(out, "create_distributed_table(", 'ADD COLUMN IF NOT EXISTS "workspace_id"')
  -- the workspace-owned tables stay where they are
  lu.assertStrContains(out, "--   operation_runs alert_deliveries audit_logs")
  lu.assertNotStrContains(out, "create_distributed_table('\"audit_logs\"'")
  -- after the rollout's phase 1 the column exists: only its indexes are planned
  local eng = tg.open { db = db, rules = H.shipped_rules }
  assert(eng:rollout("add_columns"))
  eng:close()
  out = plan(("--db %s --rules %s"):format(sh(db), sh(H.shipped_rules)))
  lu.assertNotStrContains(out, "ADD COLUMN")
  lu.assertStrContains(out, 'ON "findings" ("workspace_id");')
end

-- storefront: identifiers that need quoting (a keyword, mixed case) are quoted in the DDL
-- and inside the regclass literals.
function TestCitusPlan:test_identifiers_are_quoted()
  local S = require "story"
  local A = S.app(H.source_dir .. "/examples/storefront")
  local db = S.fresh(A, { rows = 2 })
  local out = plan(("--db %s --rules %s"):format(sh(db), sh(A.rules)))
  lu.assertStrContains(out, [[create_distributed_table('"order"', ]])
  lu.assertStrContains(out, [[create_reference_table('"Organizations"');]])
  for line in out:gmatch("[^\n]+") do
    if not line:match("^%-%-") then
      lu.assertStrMatches(line, "^[A-Z].*;$") -- one statement a line
    end
  end
end

-- Without a database the keys are assumed from the rules, and the plan says so.
function TestCitusPlan:test_without_a_database()
  local out = plan("--rules " .. sh(H.shipped_rules))
  lu.assertStrContains(out, "keys assumed from the rules (--db reads the real ones)")
  lu.assertStrContains(out, '-- entra_groups: assuming PRIMARY KEY ("id")')
  lu.assertStrContains(out, [[SELECT create_reference_table('"workspace_memberships"');]])
end

-- --plan alone, --target alone, a PHASE beside --plan: usage errors, nothing printed.
function TestCitusPlan:test_usage()
  for args, msg in pairs {
    ["rollout --plan"] = "--plan needs --target citus",
    ["rollout --plan --target other"] = "--target must be citus, got 'other'",
    ["rollout add_columns --plan --target citus"] = "give a PHASE or --plan, not both",
    ["rollout add_columns --target citus --db x.db"] = "--target goes with --plan",
  } do
    local rc, out = H.run_tool(args)
    lu.assertEquals(rc, 2, args .. "\n" .. out)
    lu.assertStrContains(out, msg)
  end
end

os.exit(lu.LuaUnit.run())
