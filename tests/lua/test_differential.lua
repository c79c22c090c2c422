-- Randomized differential test of the record resolver.
--
-- A reference database is made harder with raw SQL (workspace_id columns with correct, NULL
-- and deliberately wrong values, orphan rows, narrowed, widened and undeclared tenant roles,
-- cross-tenant relation links, awkward search strings), then thousands of random requests
-- are sent both to the engine (ctx:resolve) and to an oracle written in plain Lua from the
-- README ("Decisions: the record resolver") alone (tests/lua/oracle.lua, which the example
-- applications under examples/ use too). Status, reason class, record ids and has_more must
-- agree. Independently of the oracle, every 200 is checked against the safety property:
-- nothing outside the route tenant (or, for a canonical viewer without one, outside the
-- tenants of the workspace the user is entitled to), nothing whose own workspace_id is
-- another workspace. A refusal never carries rows.
--
-- Where the README leaves room, the oracle takes the fail-closed reading:
--   * a request that names a `capability` needs it in addition to the path's capability;
--   * a tenant role that is not NULL replaces the workspace role, also when it is an
--     undeclared name (including '' and 'owner ' with a trailing space): it grants nothing,
--     with no fall-back to the workspace role;
--   * a canonical_viewer in a context with a route tenant serves only that tenant's records.
-- And where rules/README.md is explicit: a path declared without `capability` is 403 for
-- every role once scope holds (fail closed: an unspecified capability denies). The second
-- run uses rules with such paths, of every kind, to hold the engine to it.

local lu = require "luaunit"
local H = require "helpers"
local O = require "oracle"
local tg = H.tg

-- fixed seed; TG_DIFF_SEED and TG_DIFF_REQUESTS explore other draws by hand
local SEED = tonumber(os.getenv("TG_DIFF_SEED")) or 12345
local ROWS = 300        -- rows per tenant-owned table
local REQUESTS = tonumber(os.getenv("TG_DIFF_REQUESTS")) or 50000
local MISSING_TENANT = 13        -- no such tenant
local GHOST_TENANT = 90001       -- no such tenant, but rows and an entitlement point at it
local GHOST_WORKSPACE = 99       -- no such workspace, but a membership points at it


local function pick(list) return list[math.random(#list)] end

local function sql_int(v) return v == nil and "NULL" or tostring(math.tointeger(v)) end

-- ---------------------------------------------------------------------------------------
-- 1. the database

-- Tables that get a workspace_id column, and how their rows are filled.
local WS_TABLES = { "policies", "policy_versions", "inventory_items", "entra_groups",
  "findings" }
local WS_TABLE_ALL_NULL = "backup_sets"   -- the column exists but is never set

local function harden(path)
  local db = tg.connect(path)
  db:exec("BEGIN")
  local tenant_ws = {}
  for _, r in ipairs(db:query("SELECT id, workspace_id FROM tenants")) do
    tenant_ws[r.id] = r.workspace_id
  end

  -- memberships: narrower tenant roles, a wider one, undeclared role names, entitlements
  -- outside the user's workspaces, a ghost workspace and a ghost tenant
  db:exec([[
    UPDATE tenant_memberships SET role = 'readonly' WHERE user_id = 1 AND tenant_id = 2;
    UPDATE tenant_memberships SET role = 'operator' WHERE user_id = 5 AND tenant_id = 7;
    UPDATE tenant_memberships SET role = 'readonly' WHERE user_id = 10 AND tenant_id = 5;
    UPDATE tenant_memberships SET role = 'Operator' WHERE user_id = 2 AND tenant_id = 2;
    UPDATE tenant_memberships SET role = '' WHERE user_id = 9 AND tenant_id = 6;
    UPDATE tenant_memberships SET role = 'owner ' WHERE user_id = 8 AND tenant_id = 12;
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (2, 3, 'owner');
    INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (3, 6, 'auditor');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (9, 6, NULL);
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (10, 6, 'readonly');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (5, 4, NULL);
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (9, 2, 'owner');
    INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (99, 1, 'owner');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (90001, 1, 'owner');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (13, 8, 'owner');
  ]])

  -- orphans: rows of a tenant that is gone, or never existed
  for _, t in ipairs { "policies", "policy_versions", "inventory_items", "entra_groups",
                       "findings", "restore_runs", "backup_sets", "backup_schedules" } do
    for _ = 1, 6 do
      db:exec(("UPDATE %s SET tenant_id = %d WHERE id = %d"):format(t,
        pick { GHOST_TENANT, MISSING_TENANT, 90002 }, math.random(ROWS)))
    end
  end

  -- relations: several children per owner inside a tenant, some links across tenants, some
  -- NULL, some to an owner that does not exist
  local links = {
    { child = "policy_versions", via = "policy_id", owner = "policies" },
    { child = "policies", via = "inventory_item_id", owner = "inventory_items" },
    { child = "backup_sets", via = "backup_schedule_id", owner = "backup_schedules" },
  }
  for _, l in ipairs(links) do
    local owners_by_tenant, all_owners = {}, {}
    for _, r in ipairs(db:query(("SELECT id, tenant_id FROM %s ORDER BY id"):format(l.owner))) do
      local list = owners_by_tenant[r.tenant_id] or {}
      owners_by_tenant[r.tenant_id] = list
      if #list < 3 then list[#list + 1] = r.id end
      all_owners[#all_owners + 1] = r.id
    end
    for _, r in ipairs(db:query(("SELECT id, tenant_id FROM %s"):format(l.child))) do
      local x, v = math.random(), false
      if x < 0.5 and owners_by_tenant[r.tenant_id] then v = pick(owners_by_tenant[r.tenant_id])
      elseif x < 0.62 then v = pick(all_owners)
      elseif x < 0.72 then v = nil
      elseif x < 0.75 then v = ROWS + math.random(50) end
      if v ~= false then
        db:exec(("UPDATE %s SET %s = %s WHERE id = %d"):format(l.child, l.via, sql_int(v), r.id))
      end
    end
  end

  -- search strings: LIKE wildcards and the escape character inside names, ASCII case,
  -- non-ASCII case (which LIKE does not fold), NULL nicknames
  local specials = { "Back\\slash ", "ÄRZTE ", "ärzte ", "a%b_c\\d ", "MiXeD_CaSe ",
    "50% off_ ", "under_score ", "ADMINS ", "x\\_y ", "%_\\ " }
  for id = 1, ROWS do
    if math.random() < 0.2 then
      db:query("UPDATE entra_groups SET display_name = ? WHERE id = ?",
        pick(specials) .. id, id)
    end
    local y = math.random()
    if y < 0.15 then
      db:exec(("UPDATE entra_groups SET mail_nickname = NULL WHERE id = %d"):format(id))
    elseif y < 0.25 then
      db:query("UPDATE entra_groups SET mail_nickname = ? WHERE id = ?",
        pick { "Sales_", "help%desk", "back\\up", "HELPDESK" } .. "-" .. id, id)
    end
  end

  -- workspace_id: correct, NULL, or deliberately wrong (another workspace, a ghost one)
  for _, t in ipairs(WS_TABLES) do
    db:exec(("ALTER TABLE %s ADD COLUMN workspace_id INTEGER"):format(t))
    for _, r in ipairs(db:query(("SELECT id, tenant_id FROM %s"):format(t))) do
      local right = tenant_ws[r.tenant_id]
      local x, v = math.random(), nil
      if right == nil then
        if x < 0.6 then v = math.random(3) end           -- an orphan claiming a workspace
      elseif x < 0.55 then v = right
      elseif x < 0.85 then v = nil
      elseif x < 0.95 then v = right % 3 + 1
      else v = GHOST_WORKSPACE end
      db:exec(("UPDATE %s SET workspace_id = %s WHERE id = %d"):format(t, sql_int(v), r.id))
    end
  end
  db:exec(("ALTER TABLE %s ADD COLUMN workspace_id INTEGER"):format(WS_TABLE_ALL_NULL))
  db:exec("COMMIT")
  db:close()
end

-- ---------------------------------------------------------------------------------------
-- 2. the oracle (tests/lua/oracle.lua: plain Lua over plain SQL, shared with the examples)
-- and the draws this database needs on top of its own rows: strangers, ghosts, and search
-- strings full of LIKE wildcards and escapes.

-- (no NUL bytes here: see TestDifferentialEdges)
local SEARCHES = { "%", "_", "\\", "%%", "\\%", "\\_", "%_", "a%b", "_c\\", "100%",
  "100% remote", "helpdesk_", "HELPDESK_1", "k_", "admins", "ADMINS 1", "sales", "group-1",
  "GROUP-", "ärzte", "ÄRZTE", "Ä", "rzte", "back\\slash", "BACK\\", "x\\_y", "50% off_",
  "zzz", "-", " ", "1", "", "help%desk", "sales_-", "mixed_case" }

local GEN = {
  users = { 11 },
  workspaces = { 4, GHOST_WORKSPACE },
  tenants = { MISSING_TENANT, GHOST_TENANT },
  searches = SEARCHES,
  missing_ids = function() return { 0, ROWS + 1, ROWS + 17, 999999 } end,
}

local function load_world(path, rules) return O.load_world(tg, path, rules) end
local function safety(W, ctx, req, d) return O.safety(W, ctx, req, d) end

-- ---------------------------------------------------------------------------------------

TestDifferential = {}

function TestDifferential:tearDown()
  H.cleanup()
end

-- Sends `requests` random requests under the rules in `rules_dir`; fails on any safety
-- violation or disagreement with the oracle. Returns the counts by status.
local function run_differential(rules_dir, requests, extra_sql)
  math.randomseed(SEED)
  local path = H.refdb(ROWS)
  harden(path)
  if extra_sql then
    local db = tg.connect(path)
    db:exec(extra_sql)
    db:close()
  end
  local eng = tg.open { db = path, rules = rules_dir }
  local W = load_world(path, eng:rules())
  local R = O.run(eng, W, requests, GEN)
  eng:close()
  O.print_report(R, ("differential (seed %d)"):format(SEED))
  O.assert_report(lu, R)
  return R.by_status
end

function TestDifferential:test_resolver_agrees_with_oracle_and_never_leaks()
  run_differential(H.shipped_rules, REQUESTS)
end

-- The shipped rules with paths of every kind declared without a capability (an action, a
-- list, a record, a relation, a search, a canonical viewer).
local CAPLESS = {
  { 'bulk_action      = { capability = "policy.delete" },', "bulk_action = true," },
  { 'index            = { capability = "policy.view" },', "index = {}," },
  { 'relation_manager = { owner = "Policy", via = "policy_id",\n                         capability = "policy_version.view" },',
    'relation_manager = { owner = "Policy", via = "policy_id" },' },
  { 'detail      = { capability = "finding.view" },', "detail = true," },
  { 'global_search    = { capability = "entra_group.view" },', "global_search = true," },
  { 'canonical_viewer = { capability = "entra_group.view" },', "canonical_viewer = {}," },
}

function TestDifferential:test_paths_without_capability_agree_with_oracle()
  local dir = H.shipped_copy()
  local file = dir .. "/families.lua"
  local text = H.read(file)
  for _, e in ipairs(CAPLESS) do
    local from = e[1]
    local at = text:find(from, 1, true)
    assert(at, "edit not found: " .. from)
    text = text:sub(1, at - 1) .. e[2] .. text:sub(at + #from)
  end
  H.write(file, text)
  local by_status = run_differential(dir, math.max(REQUESTS // 2, 1000))
  lu.assertTrue((by_status["403"] or 0) > 0)
end

-- Edits a copy of the shipped rules: each { from, to } replaces the first `from`.
local function edited_rules(file, edits)
  local dir = H.shipped_copy()
  local text = H.read(dir .. "/" .. file)
  for _, e in ipairs(edits) do
    local at = text:find(e[1], 1, true)
    assert(at, "edit not found: " .. e[1])
    text = text:sub(1, at - 1) .. e[2] .. text:sub(at + #e[1])
  end
  H.write(dir .. "/" .. file, text)
  return dir
end

-- Row filters on families, tenants and workspaces, and roles granted by a table, on the
-- hardened reference database: the engine agrees with the oracle's own reading of them.
function TestDifferential:test_row_filters_and_db_roles_agree_with_oracle()
  local dir = edited_rules("app.lua", {
    { 'workspaces        = { table = "workspaces" },',
      'workspaces = { table = "workspaces", row_filter = { { column = "id", op = "ne", value = 3 } } },' },
    { 'tenants           = { table = "tenants", workspace = "workspace_id" },',
      'tenants = { table = "tenants", workspace = "workspace_id", '
        .. 'row_filter = { { column = "id", op = "not_in", value = { 2, 7 } } } },' },
    { '  limits ', '  role_grants = { table = "role_capabilities" },\n  limits ' },
  })
  local text = H.read(dir .. "/families.lua")
  local function filter(family, f)
    local from = ('family "%s" {\n'):format(family)
    local at = assert(text:find(from, 1, true), family)
    text = text:sub(1, at + #from - 1) .. "  row_filter = " .. f .. ",\n" .. text:sub(at + #from)
  end
  filter("Policy", '{ { column = "policy_type", op = "in", value = { "deviceConfiguration", '
    .. '"settingsCatalog" } } }')
  filter("PolicyVersion", '{ { column = "version_number", op = "ge", value = 2 } }')
  filter("EntraGroup", '{ { column = "mail_nickname", op = "is_not_null" } }')
  filter("BackupSet", '{ { column = "status", op = "ne", value = "failed" }, '
    .. '{ column = "item_count", op = "lt", value = 35 } }')
  H.write(dir .. "/families.lua", text)
  local by_status = run_differential(dir, math.max(REQUESTS // 2, 1000), [[
    CREATE TABLE role_capabilities (role TEXT NOT NULL, capability TEXT NOT NULL);
    INSERT INTO role_capabilities VALUES ('auditor', 'policy.view'),
      ('auditor', 'entra_group.view'), ('Operator', '*'), ('operator', 'backup.delete'),
      ('readonly', 'finding.manage');
  ]])
  lu.assertTrue((by_status["200"] or 0) > 0)
end

-- The safety checker is not vacuous: it flags a foreign tenant's row, a row whose own
-- workspace_id is another workspace, and, without a route tenant, a row of a tenant the user
-- is not entitled to.
function TestDifferential:test_safety_checker_flags_leaks()
  math.randomseed(SEED)
  local path = H.refdb(ROWS)
  harden(path)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local W = load_world(path, eng:rules())
  eng:close()
  local F = W.families.Policy
  local function a_row(pred)
    for _, r in ipairs(F.rows) do if pred(r) then return r end end
  end
  local ctx = { user = 1, workspace = 1, tenant = 1 }
  local req = { family = "Policy", path = "index" }
  local own = a_row(function(r) return r.tenant_id == 1 and r.workspace_id == nil end)
  local foreign = a_row(function(r) return r.tenant_id == 2 end)
  local wrong_ws = a_row(function(r)
    return r.tenant_id == 1 and r.workspace_id ~= nil and r.workspace_id ~= 1
  end)
  lu.assertNotNil(own and foreign and wrong_ws)
  lu.assertEquals(#safety(W, ctx, req, { status = 200, records = { own } }), 0)
  lu.assertTrue(#safety(W, ctx, req, { status = 200, records = { own, foreign } }) > 0)
  lu.assertTrue(#safety(W, ctx, req, { status = 200, record = wrong_ws }) > 0)
  -- user 3 is entitled to tenant 1 (and 2) only; tenant 4 is not theirs
  local nobody = { user = 3, workspace = 1 }
  local theirs = a_row(function(r) return r.tenant_id == 4 end)
  lu.assertTrue(#safety(W, nobody, req, { status = 200, record = theirs }) > 0)
  lu.assertEquals(#safety(W, nobody, req, { status = 200, record = own }), 0)
  -- a record that claims the right tenant but is another tenant's row in the database
  local forged = {}
  for k, v in pairs(foreign) do forged[k] = v end
  forged.tenant_id = 1
  lu.assertTrue(#safety(W, ctx, req, { status = 200, records = { forged } }) > 0)
end

-- ---------------------------------------------------------------------------------------
-- The oracle itself, on a small world of its own (no engine): text keys, per-table columns,
-- row filters on a family and on tenants and workspaces, roles from a grants table. These
-- are the readings the examples under examples/ hold the engine to.

TestOracle = {}

function TestOracle:tearDown() H.cleanup() end

function TestOracle:test_row_filters_have_sql_semantics()
  local V = O.visible
  lu.assertTrue(V(nil, {}))
  lu.assertTrue(V({ { column = "deleted_at", op = "is_null" } }, { deleted_at = nil }))
  lu.assertFalse(V({ { column = "deleted_at", op = "is_null" } }, { deleted_at = "x" }))
  -- NULL satisfies nothing but is_null
  for _, op in ipairs { "eq", "ne", "lt", "le", "gt", "ge" } do
    lu.assertFalse(V({ { column = "a", op = op, value = 1 } }, {}), op)
  end
  lu.assertFalse(V({ { column = "a", op = "not_in", value = { 1 } } }, {}))
  lu.assertTrue(V({ { column = "archived", op = "eq", value = false } }, { archived = 0 }))
  lu.assertTrue(V({ { column = "s", op = "in", value = { "open", "pending" } } }, { s = "open" }))
  lu.assertFalse(V({ { column = "s", op = "not_in", value = { "open" } } }, { s = "open" }))
  -- every condition must hold; column names match without regard to case
  local f = { { column = "Status", op = "ne", value = "void" }, { column = "n", op = "ge", value = 2 } }
  lu.assertTrue(V(f, { status = "paid", n = 2 }))
  lu.assertFalse(V(f, { Status = "void", n = 3 }))
  lu.assertFalse(V(f, { Status = "paid", n = 1 }))
  -- keys order like SQLite: integers before text, text by bytes; 7 and "7" are different
  lu.assertTrue(O.key_lt(99, "1"))
  lu.assertTrue(O.key_lt("B", "a"))
  lu.assertFalse(O.key_lt("7", 7))
end

function TestOracle:test_decides_text_keys_filters_and_db_roles()
  local path = H.tmpdir() .. "/o.db"
  local db = tg.connect(path)
  db:exec([[
    CREATE TABLE ws (id TEXT PRIMARY KEY, closed INTEGER NOT NULL DEFAULT 0);
    CREATE TABLE ten (id TEXT PRIMARY KEY, ws_id TEXT, gone TEXT);
    CREATE TABLE wm (u TEXT, w TEXT);
    CREATE TABLE tm (u TEXT, t TEXT, role TEXT);
    CREATE TABLE grants (r TEXT, c TEXT);
    CREATE TABLE notes (nid TEXT PRIMARY KEY, acct TEXT, deleted_at TEXT);
    INSERT INTO ws (id, closed) VALUES ('w1', 0), ('w2', 1);
    INSERT INTO ten VALUES ('t1', 'w1', NULL), ('t2', 'w1', 'yes'), ('t3', 'w2', NULL);
    INSERT INTO wm VALUES ('u1', 'w1'), ('u1', 'w2');
    INSERT INTO tm VALUES ('u1', 't1', 'agent'), ('u1', 't2', 'agent'), ('u1', 't3', 'agent');
    INSERT INTO grants VALUES ('agent', 'note.view');
    INSERT INTO notes VALUES ('n1', 't1', NULL), ('n2', 't1', 'x'), ('7', 't1', NULL),
      ('n3', 't2', NULL), ('n4', 't3', NULL);
  ]])
  db:close()
  local rules = {
    capabilities = { "note.view", "note.edit" },
    roles = { boss = { "*" } },
    app = {
      columns = { id = "id", tenant = "tenant_id", workspace = "workspace_id" },
      workspaces = { table = "ws", id = "id",
                     row_filter = { { column = "closed", op = "eq", value = 0 } } },
      tenants = { table = "ten", id = "id", workspace = "ws_id",
                  row_filter = { { column = "gone", op = "is_null" } } },
      workspace_members = { table = "wm", user = "u", workspace = "w", role = false },
      tenant_members = { table = "tm", user = "u", tenant = "t", role = "role" },
      role_grants = { table = "grants", role = "r", capability = "c" },
      limits = { page_size = 10, max_page_size = 50, max_bulk_ids = 10 },
    },
    families = { { name = "Note", table = "notes", columns = { id = "nid", tenant = "acct" },
      row_filter = { { column = "deleted_at", op = "is_null" } }, search_posture = "disabled",
      paths = { index = { capability = "note.view" }, detail = { capability = "note.view" },
                row_action = { capability = "note.edit" } } } },
  }
  local W = O.load_world(tg, path, rules)
  local function d(ctx, req)
    req.family = "Note"
    local e = O.decide(W, ctx, req)
    return e.status, e.class, e.ids and table.concat(e.ids, ",")
  end
  local c1 = { user = "u1", workspace = "w1", tenant = "t1" }
  lu.assertEquals({ d(c1, { path = "detail", id = "n1" }) }, { 200, "ok", "n1" })
  lu.assertEquals({ d(c1, { path = "detail", id = "n2" }) }, { 404, "record" }) -- filtered
  lu.assertEquals({ d(c1, { path = "detail", id = 7 }) }, { 404, "record" })    -- 7 is not "7"
  lu.assertEquals({ d(c1, { path = "index" }) }, { 200, "ok", "7,n1" })
  lu.assertEquals({ d(c1, { path = "index", after = "7" }) }, { 200, "ok", "n1" })
  lu.assertEquals({ d(c1, { path = "row_action", id = "n1" }) }, { 403, "capability" })
  lu.assertEquals({ d(c1, { path = "detail", id = "n3" }) }, { 404, "record" }) -- other tenant
  -- a soft-deleted tenant is no route tenant; a closed workspace has no members
  lu.assertEquals({ d({ user = "u1", workspace = "w1", tenant = "t2" }, { path = "index" }) },
    { 404, "scope" })
  lu.assertEquals({ d({ user = "u1", workspace = "w2", tenant = "t3" }, { path = "index" }) },
    { 404, "scope" })
  -- the safety check flags a filtered-out row served
  local served = { status = 200, record = { nid = "n2", acct = "t1" } }
  lu.assertTrue(#O.safety(W, c1, { family = "Note", path = "detail" }, served) > 0)
  lu.assertEquals(#O.safety(W, c1, { family = "Note", path = "detail" },
    { status = 200, record = { nid = "n1", acct = "t1" } }), 0)
end

-- ---------------------------------------------------------------------------------------
-- Edges the random draw leaves out on purpose: an embedded NUL byte in a string argument.
-- The search queries above never contain one, so that a failure here does not hide every
-- other disagreement of the differential run.

TestDifferentialEdges = {}

function TestDifferentialEdges:setUp()
  self.eng = tg.open { db = H.refdb(ROWS), rules = H.shipped_rules }
  self.ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
end

function TestDifferentialEdges:tearDown()
  self.eng:close()
  H.cleanup()
end

-- The query is matched literally: no name contains a NUL byte, so "Admins\0zzz" finds
-- nothing (raising would do too). Matching it as "Admins" means the bytes after the NUL
-- were silently dropped.
function TestDifferentialEdges:test_search_query_with_nul_matches_literally()
  local plain = self.ctx:resolve { family = "EntraGroup", path = "global_search",
    query = "Admins" }
  lu.assertTrue(#plain.records > 0)
  for _, q in ipairs { "Admins\0zzz", "zzz\0", "\0" } do
    local ok, d = pcall(self.ctx.resolve, self.ctx,
      { family = "EntraGroup", path = "global_search", query = q })
    if ok then
      lu.assertEquals(d.status, 200)
      lu.assertEquals(#d.records, 0, ("query %q matched %d records"):format(q, #d.records))
    end
  end
end

-- A family, path or capability name with a NUL byte is not a declared name: it raises like
-- any unknown name, rather than being read as the declared name before the NUL.
function TestDifferentialEdges:test_names_with_nul_are_unknown()
  local accepted = {}
  for _, req in ipairs {
    { family = "Policy\0junk", path = "index" },
    { family = "Policy", path = "index\0junk" },
    { family = "Policy", path = "index", capability = "policy.view\0junk" },
  } do
    local ok, d = pcall(self.ctx.resolve, self.ctx, req)
    if ok then
      accepted[#accepted + 1] = ("family %q path %q capability %q: %d %s"):format(req.family,
        req.path, tostring(req.capability), d.status, d.reason)
    end
  end
  lu.assertEquals(#accepted, 0, "accepted:\n  " .. table.concat(accepted, "\n  "))
end

-- README: bulk_action "collapses duplicate ids and refuses more than max_bulk_ids". The
-- fail-closed reading counts the ids as submitted: 1001 copies of one id are refused.
function TestDifferentialEdges:test_bulk_limit_counts_submitted_ids()
  local ids = {}
  for i = 1, 1001 do ids[i] = 12 end
  lu.assertErrorMsgContains("1000", self.ctx.resolve, self.ctx,
    { family = "Policy", path = "bulk_action", ids = ids })
  local ok_ids = {}
  for i = 1, 1000 do ok_ids[i] = 12 end
  local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = ok_ids }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(#d.records, 1)
end

os.exit(lu.LuaUnit.run())
