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
  -- (in this test's schema: other suites install their own guards in theirs meanwhile)
  lu.assertEquals(psql(app, "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = "
    .. "t.tgrelid WHERE t.tgname LIKE 'tenantguard%' AND NOT t.tgisinternal AND "
    .. "c.relnamespace = CAST(current_schema() AS regnamespace)"), "0")
  lu.assertEquals(psql(app, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'tenantguard%' "
    .. "AND pronamespace = CAST(current_schema() AS regnamespace)"), "0")
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

-- ---- row-level security and ctx:query ----

-- One schema under row-level security for the tests below (loaded once): enable_rls run as
-- the owner, twice (idempotent).
local rls_app, rls_owner
local function rls_schema()
  if not rls_app then
    rls_app, rls_owner = load_schema("tgg_rls")
    local eng = tg.open { db = rls_owner, rules = H.shipped_rules }
    phase(eng, "enable_rls")
    phase(eng, "enable_rls")
    eng:close()
  end
  return rls_app, rls_owner
end
local function admin_in(schema) return in_schema(ADMIN, schema) end
local function rls_codes(eng)
  local out = {}
  for _, f in ipairs(eng:lint()) do
    if f.code:match("^rls_") then out[#out + 1] = f.code .. " " .. f.message end
  end
  table.sort(out)
  return out
end
local function has_code(list, code, text)
  for _, l in ipairs(list) do
    if l:find(code, 1, true) == 1 and (not text or l:find(text, 1, true)) then return true end
  end
  return false
end

-- Raw SQL as tg_app inside ctx:query sees and changes only the context tenant's rows: a read
-- of another tenant's row by id finds nothing, an update of it changes nothing, an insert or
-- an update into another tenant fails the policy's WITH CHECK; without the setting (plain
-- SQL on a connection of its own) no row at all.
function TestPgGuard:test_rls_raw_sql_sees_only_the_context_tenant()
  local app = rls_schema()
  local admin = admin_in("tgg_rls")
  local eng = tg.open { db = app, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  for _, t in ipairs(TABLES) do
    local d = assert(ctx:query(("SELECT id, tenant_id FROM %s ORDER BY id"):format(t)))
    lu.assertEquals(d.status, 200)
    lu.assertEquals(#d.rows, tonumber(psql(admin, ("SELECT count(*) FROM %s WHERE tenant_id = 1")
      :format(t))), t)
    lu.assertTrue(#d.rows > 0, t)
    for _, r in ipairs(d.rows) do lu.assertEquals(r.tenant_id, 1, t) end
    lu.assertEquals(d.columns, { "id", "tenant_id" })
    -- another tenant's row, by id: nothing
    local other = tonumber(psql(admin, ("SELECT min(id) FROM %s WHERE tenant_id = 5"):format(t)))
    d = assert(ctx:query(("SELECT * FROM %s WHERE id = $1"):format(t), { other }))
    lu.assertEquals(#d.rows, 0, t)
    d = assert(ctx:query(("UPDATE %s SET created_at = 'x' WHERE id = $1"):format(t), { other }))
    lu.assertEquals(d.changes, 0, t)
    lu.assertNotEquals(psql(admin, ("SELECT created_at FROM %s WHERE id = %d"):format(t, other)),
      "x")
    -- plain SQL as tg_app, no setting: no row
    lu.assertEquals(psql(app, ("SELECT count(*) FROM %s"):format(t)), "0", t)
  end
  -- writes: into the context's tenant yes, into another no (WITH CHECK)
  local ins = "INSERT INTO policies (tenant_id, workspace_id, display_name, policy_type, "
    .. "created_at) VALUES ($1, $2, $3, 'compliancePolicy', '2026-01-01') RETURNING id"
  local d = assert(ctx:query(ins, { 1, 1, "mine" }))
  lu.assertEquals(#d.rows, 1)
  lu.assertEquals(d.changes, 1)
  local mine = d.rows[1].id
  local ok, err = ctx:query(ins, { 2, 1, "not mine" })
  lu.assertNil(ok)
  lu.assertStrContains(err, "row-level security")
  ok, err = ctx:query("UPDATE policies SET tenant_id = 2 WHERE id = $1", { mine })
  lu.assertNil(ok)
  lu.assertStrContains(err, "row-level security")
  lu.assertEquals(psql(admin, "SELECT count(*) FROM policies WHERE display_name = 'not mine'"),
    "0")
  lu.assertEquals(psql(admin, "SELECT tenant_id FROM policies WHERE id = " .. mine), "1")
  -- the setting lives in the statement's transaction only
  d = assert(ctx:query("SELECT current_setting('tenantguard.tenant_id', true) AS t, "
    .. "current_setting('tenantguard.workspace_id', true) AS w"))
  lu.assertEquals(d.rows[1], { t = "1", w = "1" })
  lu.assertEquals(rls_codes(eng), {})
  -- another tenant's context sees its own rows, never tenant 1's
  local ctx5 = eng:context { user = 5, workspace = 2, tenant = 5 }
  d = assert(ctx5:query("SELECT count(*) AS n, min(tenant_id) AS lo, max(tenant_id) AS hi "
    .. "FROM policies"))
  lu.assertTrue(d.rows[1].n > 0)
  lu.assertEquals({ d.rows[1].lo, d.rows[1].hi }, { 5, 5 })
  -- inside a read snapshot: read in it, the setting rolled back with the savepoint
  eng:read(function()
    local r = assert(ctx:query("SELECT count(*) AS n FROM policies WHERE id = $1", { mine }))
    lu.assertEquals(r.rows[1].n, 1)
  end)
  assert(ctx:query("DELETE FROM policies WHERE id = $1", { mine }))
  eng:close()
end

-- With row-level security on, the engine's own decisions and writes, as tg_app, go on as
-- before: each statement runs with the context's tenant set for its transaction (in the same
-- round trip), so lists hold the tenant's rows, a foreign record is still 404 (never a leak),
-- inserts and updates of the tenant's rows work; nothing is left on the connection.
function TestPgGuard:test_rls_engine_decides_as_before()
  local app = rls_schema()
  local admin = admin_in("tgg_rls")
  local eng = tg.open { db = app, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  local d = ctx:resolve { family = "Policy", path = "index", limit = 500 }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(#d.records,
    tonumber(psql(admin, "SELECT count(*) FROM policies WHERE tenant_id = 1")))
  for _, r in ipairs(d.records) do lu.assertEquals(r.tenant_id, 1) end
  local own = d.records[1].id
  lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = own }.status, 200)
  -- a record of another tenant: 404, its reason from what the statement read
  local other = tonumber(psql(admin, "SELECT min(id) FROM policies WHERE tenant_id = 2"))
  local f = ctx:resolve { family = "Policy", path = "detail", id = other }
  lu.assertEquals(f.status, 404)
  lu.assertNil(f.record)
  -- a fresh context (its first decision is the one-statement scope and record)
  lu.assertEquals(eng:context { user = 1, workspace = 1, tenant = 1 }
    :resolve { family = "Policy", path = "detail", id = own }.status, 200)
  -- writes through the guard
  local w = ctx:insert("Policy", { display_name = "rls", policy_type = "compliancePolicy",
    created_at = "2026-01-01" })
  lu.assertEquals(w.status, 200)
  lu.assertEquals(psql(admin, "SELECT tenant_id FROM policies WHERE id = " .. w.id), "1")
  lu.assertEquals(ctx:update("Policy", w.id, { display_name = "rls2" }).status, 200)
  lu.assertEquals(psql(admin, "SELECT display_name FROM policies WHERE id = " .. w.id), "rls2")
  assert(ctx:query("DELETE FROM policies WHERE id = $1", { w.id }))
  -- another tenant's context sees its own
  local d5 = eng:context { user = 5, workspace = 2, tenant = 5 }
    :resolve { family = "Policy", path = "index", limit = 3 }
  lu.assertEquals(d5.status, 200)
  lu.assertTrue(#d5.records > 0)
  for _, r in ipairs(d5.records) do lu.assertEquals(r.tenant_id, 5) end
  -- and a decision inside a read snapshot
  eng:read(function()
    lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = own }.status, 200)
  end)
  -- nothing of the decisions stays on the connection
  local q = assert(ctx:query("SELECT 1 AS one"))
  lu.assertEquals(q.rows[1].one, 1)
  eng:close()
end

-- Under row-level security every decision is the one made without it, request for request
-- (status and rows; a record the policy hides is logged not_found):
-- the canonical viewer (no route tenant) too, whose statements run with
-- tenantguard.workspace_wide (the tenants of the context's workspace) rather than a tenant. The engine without RLS is the same schema read
-- by the cluster's superuser, which the policy does not bind.
local HIDDEN = { foreign_tenant = "not_found", foreign_workspace = "not_found",
  owner_foreign_tenant = "owner_not_found", owner_foreign_workspace = "owner_not_found" }
function TestPgGuard:test_rls_every_path_decides_as_without_it()
  local O = require "oracle"
  local app = rls_schema()
  local admin = admin_in("tgg_rls")
  local rls = tg.open { db = app, rules = H.shipped_rules }
  local free = tg.open { db = admin, rules = H.shipped_rules }
  math.randomseed(99)
  local path = H.refdb(40)
  local W = O.load_world(tg, path, rls:rules()) -- the same generator's keys
  local gen = O.generator(W, {})
  local ctxs = { [rls] = {}, [free] = {} }
  local function ctx(eng, u, w, t)
    local k = O.show(u) .. "/" .. O.show(w) .. "/" .. O.show(t)
    ctxs[eng][k] = ctxs[eng][k] or eng:context { user = u, workspace = w, tenant = t }
    return ctxs[eng][k]
  end
  local served, by_path = 0, {}
  for i = 1, 3000 do
    local req, u, w, t = gen()
    local a = ctx(free, u, w, t):resolve(req)
    local b = ctx(rls, u, w, t):resolve(req)
    local what = ("#%d %s %s"):format(i, O.show { u = u, w = w, t = t }, O.show(req))
    lu.assertEquals(b.status, a.status, what)
    -- the policy hides what the context may not see, so a foreign record is not even read
    if b.reason ~= a.reason then
      lu.assertEquals(b.reason, HIDDEN[a.reason], what .. " reason without RLS " .. tostring(a.reason))
    end
    local ids = function(d)
      local out = {}
      for _, r in ipairs(d.records or (d.record and { d.record }) or {}) do out[#out + 1] = r.id end
      return out
    end
    lu.assertEquals(ids(b), ids(a), what)
    if b.status == 200 then
      served = served + 1
      by_path[req.path] = (by_path[req.path] or 0) + 1
    end
  end
  -- the draw reached the paths that were blind under RLS before
  lu.assertTrue((by_path.canonical_viewer or 0) > 0, O.show(by_path))
  -- explicitly: the owner of workspace 1 opens an entra group of tenant 3 by id alone
  local g = tonumber(psql(admin, "SELECT min(id) FROM entra_groups WHERE tenant_id = 3"))
  local d = rls:context { user = 1, workspace = 1 }:resolve { family = "EntraGroup",
    path = "canonical_viewer", id = g }
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(d.record.tenant_id, 3)
  print(("RLS vs none: 3000 requests, %d served, by path %s"):format(served, O.show(by_path)))
  rls:close()
  free:close()
end

-- Outside its scope a context runs no SQL at all: 404 with the reason of a row action.
function TestPgGuard:test_query_outside_scope_runs_nothing()
  local app = rls_schema()
  local admin = admin_in("tgg_rls")
  local eng = tg.open { db = app, rules = H.shipped_rules }
  local before = psql(admin, "SELECT count(*) FROM policies")
  local ins = "INSERT INTO policies (tenant_id, workspace_id, display_name, policy_type, "
    .. "created_at) VALUES (1, 1, 'stranger', 'x', '2026-01-01')"
  local cases = {
    { { user = 6, workspace = 1, tenant = 1 }, "not_member" },
    { { user = 3, workspace = 1, tenant = 2 }, "not_entitled" },
    { { user = 1, workspace = 1, tenant = 5 }, "tenant_not_in_workspace" },
    { { user = 1, workspace = 1 }, "no_tenant_context" },
  }
  for _, c in ipairs(cases) do
    local d = eng:context(c[1]):query(ins)
    lu.assertEquals({ d.status, d.reason }, { 404, c[2] })
    lu.assertNil(d.rows)
    -- a statement that would fail shows it never ran
    d = eng:context(c[1]):query("SELECT no_such_column FROM nowhere")
    lu.assertEquals(d.status, 404)
  end
  lu.assertEquals(psql(admin, "SELECT count(*) FROM policies"), before)
  -- parameters must match the statement
  lu.assertErrorMsgContains("1 parameter", function()
    eng:context { user = 1, workspace = 1, tenant = 1 }:query("SELECT $1::int AS x")
  end)
  eng:close()
  -- SQLite has no row-level security: a clear error, never unscoped SQL
  local lite = tg.open { db = H.refdb(5), rules = H.shipped_rules }
  lu.assertErrorMsgContains("not available on SQLite", function()
    lite:context { user = 1, workspace = 1, tenant = 1 }:query("SELECT 1")
  end)
  lite:close()
end

-- lint --db reports each way RLS silently stops applying, and is clean otherwise.
function TestPgGuard:test_lint_reports_rls_hazards()
  local app, owner = rls_schema()
  local admin = admin_in("tgg_rls")
  local eng = tg.open { db = app, rules = H.shipped_rules }
  lu.assertEquals(rls_codes(eng), {})
  -- the CLI says the same
  local rc, out = H.run_tool("lint --db " .. sh_quote(app) .. " --strict")
  lu.assertEquals(rc, 0, out)

  -- a superuser and a BYPASSRLS role
  local sup = tg.open { db = admin, rules = H.shipped_rules }
  lu.assertTrue(has_code(rls_codes(sup), "rls_bypassed", "a superuser"))
  sup:close()
  psql(ADMIN, "DROP ROLE IF EXISTS tgg_bypass; CREATE ROLE tgg_bypass LOGIN BYPASSRLS; "
    .. "GRANT USAGE ON SCHEMA tgg_rls TO tgg_bypass; GRANT SELECT ON ALL TABLES IN SCHEMA "
    .. "tgg_rls TO tgg_bypass")
  local by = tg.open { db = (app:gsub("user=tg_app", "user=tgg_bypass")), rules = H.shipped_rules }
  lu.assertTrue(has_code(rls_codes(by), "rls_bypassed", "BYPASSRLS"))
  rc, out = H.run_tool("lint --db " .. sh_quote((app:gsub("user=tg_app", "user=tgg_bypass")))
    .. " --strict")
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, "rls_bypassed")
  by:close()

  -- the owner connecting: clean while FORCE is on, reported when it is off
  local own = tg.open { db = owner, rules = H.shipped_rules }
  lu.assertEquals(rls_codes(own), {})
  psql(owner, "ALTER TABLE findings NO FORCE ROW LEVEL SECURITY")
  local codes = rls_codes(own)
  lu.assertEquals(#codes, 1, table.concat(codes, "\n"))
  lu.assertTrue(has_code(codes, "rls_owner_not_forced", "'findings'"))
  lu.assertEquals(rls_codes(eng), {}) -- tg_app owns nothing
  psql(owner, "ALTER TABLE findings FORCE ROW LEVEL SECURITY")
  lu.assertEquals(rls_codes(own), {})

  -- no index on the tenant column
  local idx = psql(owner, "SELECT string_agg(quote_ident(c.relname), ', ') FROM pg_index i "
    .. "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_attribute a ON a.attrelid = i.indrelid "
    .. "AND a.attnum = i.indkey[0] WHERE i.indrelid = 'tgg_rls.findings'::regclass AND "
    .. "a.attname = 'tenant_id'")
  lu.assertNotEquals(idx, "")
  psql(owner, "BEGIN; DROP INDEX " .. idx .. "; CREATE INDEX tgg_partial ON findings (tenant_id) "
    .. "WHERE id > 0; COMMIT")
  codes = rls_codes(eng)
  lu.assertEquals(#codes, 1, table.concat(codes, "\n"))
  lu.assertTrue(has_code(codes, "rls_no_index", "'findings'"))
  psql(owner, "DROP INDEX tgg_partial; CREATE INDEX tgg_findings_tenant ON findings (tenant_id)")
  lu.assertEquals(rls_codes(eng), {})

  -- RLS turned off on one table
  psql(owner, "ALTER TABLE backup_items DISABLE ROW LEVEL SECURITY")
  lu.assertTrue(has_code(rls_codes(eng), "rls_missing", "'backup_items'"))
  psql(owner, "ALTER TABLE backup_items ENABLE ROW LEVEL SECURITY")

  -- the tenant setting at session level: stored for a role ...
  psql(ADMIN, "DROP ROLE IF EXISTS tgg_pooled; CREATE ROLE tgg_pooled LOGIN; "
    .. "ALTER ROLE tgg_pooled IN DATABASE tg_test SET tenantguard.tenant_id = '1'")
  lu.assertTrue(has_code(rls_codes(eng), "rls_session_setting", "tgg_pooled in this database"))
  psql(ADMIN, "DROP ROLE tgg_pooled")
  lu.assertEquals(rls_codes(eng), {})
  -- ... or left on the connection by SET (here: raw SQL setting it for the session)
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  assert(ctx:query("SELECT set_config('tenantguard.tenant_id', '2', false) AS v"))
  lu.assertTrue(has_code(rls_codes(eng), "rls_session_setting", "SET LOCAL"))
  -- ctx:query's own setting still wins inside its transaction
  local d = assert(ctx:query("SELECT min(tenant_id) AS lo, max(tenant_id) AS hi FROM findings"))
  lu.assertEquals({ d.rows[1].lo, d.rows[1].hi }, { 1, 1 })
  assert(ctx:query("SELECT set_config('tenantguard.tenant_id', '', false) AS v"))
  lu.assertEquals(rls_codes(eng), {})
  -- the engine's workspace-wide setting left at session level would widen raw SQL to a
  -- workspace: reported too, and ctx:query clears it inside its own transaction
  assert(ctx:query("SELECT set_config('tenantguard.workspace_wide', '1', false) AS v"))
  lu.assertTrue(has_code(rls_codes(eng), "rls_session_setting", "workspace_wide"))
  d = assert(ctx:query("SELECT min(tenant_id) AS lo, max(tenant_id) AS hi FROM findings"))
  lu.assertEquals({ d.rows[1].lo, d.rows[1].hi }, { 1, 1 })
  assert(ctx:query("SELECT set_config('tenantguard.workspace_wide', '', false) AS v"))
  lu.assertEquals(rls_codes(eng), {})
  eng:close()
  own:close()
  psql(ADMIN, "REVOKE ALL ON ALL TABLES IN SCHEMA tgg_rls FROM tgg_bypass; REVOKE ALL ON "
    .. "SCHEMA tgg_rls FROM tgg_bypass; DROP ROLE tgg_bypass")
end

-- disable_rls removes tenantguard's policy and, with no policy of the table's own left,
-- row-level security itself; without RLS on any table, lint says nothing about it.
function TestPgGuard:test_z_disable_rls()
  local app, owner = rls_schema()
  local rc, out = H.run_tool("rollout disable_rls --db " .. sh_quote(owner))
  lu.assertEquals(rc, 0, out)
  local eng = tg.open { db = owner, rules = H.shipped_rules }
  lu.assertEquals(psql(owner, "SELECT count(*) FROM pg_class WHERE relnamespace = "
    .. "'tgg_rls'::regnamespace AND (relrowsecurity OR relforcerowsecurity)"), "0")
  lu.assertEquals(psql(owner, "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = "
    .. "p.polrelid WHERE c.relnamespace = 'tgg_rls'::regnamespace"), "0")
  lu.assertTrue(tonumber(psql(app, "SELECT count(*) FROM policies")) > 0)
  lu.assertEquals(rls_codes(eng), {})
  eng:close()
  rls_app = nil
end

os.exit(lu.LuaUnit.run())
