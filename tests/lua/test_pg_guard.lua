-- The server as the last line (issue 13), on PostgreSQL: the write guard's PL/pgSQL triggers
-- (phase 1.5) with the SQLite triggers' rules and messages, row-level security from the rules
-- ("enable_rls") proven with raw SQL as the application's role (tg_app) inside ctx:query, and
-- the lint of the ways RLS silently stops applying. Against the ctest fixture's throwaway
-- cluster; skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"
local refdb = require "refdb"
local tg = H.tg

local APP, OWNER, ADMIN = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI"),
  os.getenv("TG_PG_ADMIN_URI")
if not APP or not OWNER or not ADMIN then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local TABLES = {}
for _, t in ipairs(refdb.tables) do TABLES[#TABLES + 1] = t.name end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

-- Runs sql through psql as the role of uri: ok, output (the server's message on failure).
local function try_psql(uri, sql)
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sh_quote(uri) .. " -c " .. sh_quote(sql) .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok and true or false, (out:gsub("\n$", ""))
end
local function psql(uri, sql)
  local ok, out = try_psql(uri, sql)
  assert(ok, "psql: " .. out .. "\n" .. sql)
  return out
end

-- The reference database after phase 1 (SQLite's add_columns, then the backfill), copied
-- into its own schema owned by tg_owner, with tg_app granted what an application needs.
local function load_schema(schema, rows)
  local path = H.refdb(rows or 40)
  local lite = tg.open { db = path, rules = H.shipped_rules }
  assert(lite:rollout("add_columns"))
  lite:backfill {}
  lite:work {}
  lite:close()
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(schema, schema, schema))
  local p = io.popen(("'%s' pg-load --from %s --to %s --grant-to tg_app 2>&1"):format(H.tool,
    sh_quote(path), sh_quote(in_schema(OWNER, schema))))
  local out = p:read("a")
  assert(p:close(), out)
  return in_schema(APP, schema), in_schema(OWNER, schema)
end

local function phase(eng, name)
  local ok, err = eng:rollout(name)
  lu.assertTrue(ok, name .. ": " .. tostring(err))
end

-- The columns of t other than id, as a list for INSERT ... SELECT.
local function columns_but_id(uri, t)
  return psql(uri, ("SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
    .. "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = "
    .. "'%s' AND column_name <> 'id'"):format(t))
end

-- INSERT a copy of row `from` of t with some columns replaced (a value, or "DEFAULT"-like
-- NULL); returns ok, message, and the new row's id.
local function insert_copy(uri, t, from, set)
  local cols = columns_but_id(uri, t)
  local exprs = {}
  for c in cols:gmatch("[^, ]+") do
    local bare = c:gsub('"', "")
    exprs[#exprs + 1] = set[bare] ~= nil and tostring(set[bare]) or c
  end
  local ok, out = try_psql(uri, ("INSERT INTO %s (%s) SELECT %s FROM %s WHERE id = %d RETURNING id")
    :format(t, cols, table.concat(exprs, ", "), t, from))
  return ok, out, ok and tonumber(out) or nil
end

local function assert_abort(ok, err, t, rule, what)
  lu.assertFalse(ok, what .. ": the write went through")
  lu.assertStrContains(err, "tenantguard: " .. t .. ": ", what)
  if rule then lu.assertStrContains(err, "[" .. rule .. "]", what) end
end

TestPgGuard = {}

-- Phase 1.5 on PostgreSQL, raw SQL as tg_app: every kind of bad write aborts with the message
-- the SQLite trigger gives, an insert without workspace_id gets its tenant's workspace, and
-- drop_triggers takes it all away again (the same writes then go through).
function TestPgGuard:test_triggers_bind_and_reject_raw_writes()
  local app, owner = load_schema("tgg_guard")
  local eng = tg.open { db = owner, rules = H.shipped_rules }
  phase(eng, "enforce_writes")
  phase(eng, "enforce_writes") -- idempotent
  for _, t in ipairs(TABLES) do
    -- row 1 belongs to tenant 8 (workspace 2)
    lu.assertEquals(psql(app, ("SELECT tenant_id || ',' || workspace_id FROM %s WHERE id = 1")
      :format(t)), "8,2")
    local count = psql(app, ("SELECT count(*) FROM %s"):format(t))
    local ok, err = insert_copy(app, t, 1, { tenant_id = 2, workspace_id = 2 })
    assert_abort(ok, err, t, "workspace_matches_tenant", t .. ": insert, mismatched workspace")
    lu.assertStrContains(err, ("tenantguard: %s: tenant_id must name an existing tenant and "
      .. "workspace_id must equal the workspace of that tenant [workspace_matches_tenant]")
      :format(t))
    ok, err = insert_copy(app, t, 1, { tenant_id = 999, workspace_id = 1 })
    assert_abort(ok, err, t, "workspace_matches_tenant", t .. ": insert, nonexistent tenant")
    ok, err = insert_copy(app, t, 1, { tenant_id = 999, workspace_id = "NULL" })
    assert_abort(ok, err, t, "workspace_matches_tenant", t .. ": insert, nonexistent tenant")
    lu.assertEquals(psql(app, ("SELECT count(*) FROM %s"):format(t)), count,
      t .. ": an aborted insert left a row")

    local id
    ok, err, id = insert_copy(app, t, 1, { tenant_id = 7, workspace_id = "NULL" })
    lu.assertTrue(ok, err)
    lu.assertEquals(psql(app, ("SELECT workspace_id FROM %s WHERE id = %d"):format(t, id)), "2",
      t .. ": insert without workspace_id bound to tenant 7's workspace")

    ok, err = try_psql(app, ("UPDATE %s SET workspace_id = 1 WHERE id = 1"):format(t))
    assert_abort(ok, err, t, "workspace_matches_tenant", t .. ": update, mismatched workspace")
    lu.assertStrContains(err, ("tenantguard: %s: workspace_id must equal the workspace of the "
      .. "tenant of the row [workspace_matches_tenant]"):format(t))
    ok, err = try_psql(app, ("UPDATE %s SET tenant_id = 5 WHERE id = 1"):format(t))
    assert_abort(ok, err, t, "tenant_immutable", t .. ": update of tenant_id")
    lu.assertStrContains(err, ("tenantguard: %s: tenant_id can never change [tenant_immutable]")
      :format(t))
    ok, err = try_psql(app, ("UPDATE %s SET tenant_id = 1, workspace_id = 1 WHERE id = 1")
      :format(t))
    assert_abort(ok, err, t, "tenant_immutable", t .. ": update of tenant_id with its workspace")
    ok, err = try_psql(app, ("UPDATE %s SET tenant_id = 8 WHERE id = 1"):format(t))
    lu.assertTrue(ok, "writing the same tenant_id is not a change: " .. err)
    -- clearing workspace_id binds the row again
    psql(app, ("UPDATE %s SET workspace_id = NULL WHERE id = 1"):format(t))
    lu.assertEquals(psql(app, ("SELECT tenant_id || ',' || workspace_id FROM %s WHERE id = 1")
      :format(t)), "8,2")
  end
  -- the audit log: an entry with a tenant carries that tenant's workspace
  local ok, err = try_psql(app, "INSERT INTO audit_logs (tenant_id, action, created_at) "
    .. "VALUES (3, 'x', '2026-01-01')")
  assert_abort(ok, err, "audit_logs", "audit_tenant_needs_workspace", "audit insert")
  lu.assertStrContains(err, "tenantguard: audit_logs: an entry with a tenant_id must carry the "
    .. "workspace of that tenant in workspace_id [audit_tenant_needs_workspace]")
  ok, err = try_psql(app, "INSERT INTO audit_logs (tenant_id, workspace_id, action, created_at) "
    .. "VALUES (3, 2, 'x', '2026-01-01')")
  assert_abort(ok, err, "audit_logs", "audit_tenant_needs_workspace", "audit, wrong workspace")
  local legacy = psql(app, "SELECT id FROM audit_logs WHERE tenant_id IS NOT NULL AND "
    .. "workspace_id IS NOT NULL LIMIT 1")
  ok, err = try_psql(app, "UPDATE audit_logs SET workspace_id = NULL WHERE id = " .. legacy)
  assert_abort(ok, err, "audit_logs", "audit_tenant_needs_workspace", "audit update")
  lu.assertTrue(try_psql(app, "INSERT INTO audit_logs (tenant_id, workspace_id, action, "
    .. "created_at) VALUES (3, 1, 'x', '2026-01-01')"))
  lu.assertTrue(try_psql(app, "INSERT INTO audit_logs (tenant_id, workspace_id, action, "
    .. "created_at) VALUES (NULL, NULL, 'system', '2026-01-01')"))
  -- both phases left an audit entry
  lu.assertEquals(psql(app, "SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.rollout.enforce_writes'"), "2")

  -- removed: the same bad write now goes through
  phase(eng, "drop_triggers")
  lu.assertEquals(psql(app, "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'tenantguard%' "
    .. "AND NOT tgisinternal"), "0")
  lu.assertEquals(psql(app, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'tenantguard%'"), "0")
  lu.assertTrue(try_psql(app, "UPDATE policies SET workspace_id = 1 WHERE id = 1"))

  -- refused once phase 3 holds the column NOT NULL (the triggers are what derives it)
  phase(eng, "enforce_writes")
  psql(owner, "UPDATE policies SET workspace_id = NULL WHERE id = 1") -- re-derived: 2
  psql(owner, "DELETE FROM policies WHERE workspace_id IS NULL") -- the orphans
  psql(owner, "ALTER TABLE policies ALTER COLUMN workspace_id SET NOT NULL")
  local ok2, err2 = eng:rollout("drop_triggers")
  lu.assertNil(ok2)
  lu.assertStrContains(tostring(err2), "drop_triggers refused: phase 3 is applied to 'policies'")
  psql(owner, "ALTER TABLE policies ALTER COLUMN workspace_id DROP NOT NULL")
  eng:close()
end

-- A table whose name leaves no room for "tenantguard_<table>_guard" in 63 bytes gets a name
-- cut with a hash, quoted, and two such tables do not collide.
function TestPgGuard:test_long_table_names()
  local long1 = "t" .. ("x"):rep(55) .. "_one"
  local long2 = "t" .. ("x"):rep(55) .. "_two"
  local schema = "tgg_names"
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app; SET search_path = %s; "
    .. "CREATE TABLE workspaces (id bigint PRIMARY KEY, name text);"
    .. "CREATE TABLE tenants (id bigint PRIMARY KEY, workspace_id bigint);"
    .. "CREATE TABLE wm (id bigint PRIMARY KEY, user_id bigint, workspace_id bigint, role text);"
    .. "CREATE TABLE tm (id bigint PRIMARY KEY, user_id bigint, tenant_id bigint, role text);"
    .. "CREATE TABLE %s (id bigint PRIMARY KEY, tenant_id bigint, workspace_id bigint);"
    .. "CREATE TABLE %s (id bigint PRIMARY KEY, tenant_id bigint, workspace_id bigint);"
    .. "INSERT INTO workspaces VALUES (1, 'w'); INSERT INTO tenants VALUES (1, 1);"
    .. "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA %s TO tg_app")
    :format(schema, schema, schema, schema, long1, long2, schema))
  local rules = H.rule_dir {
    ["app.lua"] = [[app { workspaces = { table = "workspaces" }, tenants = { table = "tenants" },
      workspace_members = { table = "wm", user = "user_id", workspace = "workspace_id",
                            role = "role" },
      tenant_members = { table = "tm", user = "user_id", tenant = "tenant_id", role = "role" } }]],
    ["families.lua"] = false,
    ["r.lua"] = ([[residual "One" { table = "%s", likely_surface = "s", why_not_in_first_slice = "w" }
      residual "Two" { table = "%s", likely_surface = "s", why_not_in_first_slice = "w" }]])
      :format(long1, long2),
  }
  local ok, eng = pcall(tg.open, { db = in_schema(OWNER, schema), rules = rules })
  lu.assertTrue(ok, tostring(eng))
  phase(eng, "enforce_writes")
  local names = psql(OWNER, ("SELECT string_agg(proname || ':' || length(proname), ' ' ORDER BY "
    .. "proname) FROM pg_proc WHERE pronamespace = '%s'::regnamespace"):format(schema))
  local n = 0
  for name, len in names:gmatch("(%S+):(%d+)") do
    n = n + 1
    lu.assertTrue(tonumber(len) <= 63, name)
  end
  lu.assertEquals(n, 2, names)
  local app = in_schema(APP, schema)
  psql(app, ("INSERT INTO %s (id, tenant_id) VALUES (1, 1)"):format(long1))
  lu.assertEquals(psql(app, ("SELECT workspace_id FROM %s"):format(long1)), "1")
  local bad, err = try_psql(app, ("UPDATE %s SET tenant_id = 2"):format(long1))
  lu.assertFalse(bad)
  lu.assertStrContains(err, "[tenant_immutable]")
  phase(eng, "drop_triggers")
  eng:close()
end

os.exit(lu.LuaUnit.run())
