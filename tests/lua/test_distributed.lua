-- Distributed mode and tables keyed on (tenant, id), on SQLite (PostgreSQL: test_pg_citus.lua).
--
-- * A family keyed on (tenant_id, id), the key Citus requires, opens; every read by id
--   carries the route tenant, so the same id names each tenant's own row and another
--   tenant's is never read; the canonical viewer refuses an id two tenants hold
--   (tenant_keyed.lua, shared with PostgreSQL).
-- * tg.open{ distributed = true } on the reference application decides as the default mode
--   does, request for request (status and rows), except that a record of another tenant is
--   logged not_found; and it agrees with the independent oracle and the safety property.
local lu = require "luaunit"
local H = require "helpers"
local O = require "oracle"
local K = require "tenant_keyed"
local tg = H.tg

local SEED = tonumber(os.getenv("TG_DIFF_SEED")) or 777
local REQUESTS = tonumber(os.getenv("TG_DIFF_REQUESTS")) or 6000

local function keyed_db()
  local path = H.tmpdir() .. "/keyed.db"
  local db = tg.connect(path)
  db:exec(K.SCHEMA)
  db:close()
  return path, H.rule_dir { ["families.lua"] = K.FAMILIES }
end

TestTenantKeyed = {}
function TestTenantKeyed:tearDown() H.cleanup() end

function TestTenantKeyed:test_lint_says_what_the_key_changes()
  local path, rules = keyed_db()
  local fs = tg.check { rules = rules, db = path }
  lu.assertEquals(#H.errors(fs), 0)
  local info = H.with_code(fs, "family_key_with_tenant")
  lu.assertEquals(#info, 2)
  lu.assertStrContains(info[1].message, "'things' is keyed on (tenant_id, id)")
end

function TestTenantKeyed:test_decisions_stay_in_the_route_tenant()
  local path, rules = keyed_db()
  local eng = tg.open { rules = rules, db = path }
  -- not distributed: the key alone makes these reads pin the tenant
  lu.assertFalse(eng:settings().distributed)
  K.check(lu, eng)
  eng:close()
  -- the rows as stored: each tenant's thing 1 kept its own name
  local db = tg.connect(path)
  local rows = db:query("SELECT tenant_id, name FROM things WHERE id = 1 ORDER BY tenant_id")
  lu.assertEquals(#rows, 3)
  lu.assertEquals(rows[1].name, "one of 1")
  lu.assertEquals(rows[2].name, "changed in 2")
  lu.assertEquals(rows[3].name, "one of 3")
  lu.assertEquals(db:value("SELECT count(*) FROM things WHERE id = 7"), 2)
  db:close()
end

-- The matrix runs on such a schema too: its fixture writes rows with both key columns, and
-- every mutant is caught.
function TestTenantKeyed:test_matrix_with_mutants()
  local path, rules = keyed_db()
  local eng = tg.open { rules = rules, db = path }
  local rep = eng:run_matrix()
  lu.assertEquals(rep.failed, 0)
  lu.assertTrue(rep.passed > 0)
  local caught = 0
  for _, m in ipairs(tg.mutations()) do
    local r = eng:run_matrix(m.name)
    lu.assertTrue(r.failed > 0 or r.not_applicable ~= nil, "mutant survived: " .. m.name)
    if r.failed > 0 then caught = caught + 1 end
  end
  lu.assertTrue(caught >= 8, "mutants caught: " .. caught)
  lu.assertEquals(eng:run_matrix().failed, 0)
  eng:close()
end

-- A view that repeats a row (a join) names no one record by an id it repeats, however its
-- id column is keyed in its table: every read by id refuses such an id (404 ambiguous_id),
-- with nothing served, and explain says so; an id it shows once is served as before.
TestRepeatingView = {}
function TestRepeatingView:tearDown() H.cleanup() end

function TestRepeatingView:test_an_id_a_view_repeats_is_refused()
  local path = H.tmpdir() .. "/view.db"
  local db = tg.connect(path)
  db:exec([[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE base_things (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT);
CREATE TABLE tags (thing_id INTEGER, tag TEXT);
CREATE VIEW things AS SELECT t.id, t.tenant_id, t.name, g.tag FROM base_things t
  JOIN tags g ON g.thing_id = t.id;
INSERT INTO workspaces VALUES (1);
INSERT INTO tenants VALUES (1, 1), (2, 1);
INSERT INTO workspace_memberships VALUES (10, 1, 'owner');
INSERT INTO tenant_memberships VALUES (10, 1, NULL), (10, 2, NULL);
INSERT INTO base_things VALUES (5, 1, 'five'), (6, 1, 'six'), (7, 2, 'seven');
INSERT INTO tags VALUES (5, 'a'), (5, 'b'), (6, 'a'), (7, 'a'), (7, 'b');
]])
  db:close()
  local rules = H.rule_dir { ["families.lua"] = [[
family "Thing" {
  table = "things",
  primary_surface = "ThingResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    bulk_action = { capability = "thing.edit" },
    canonical_viewer = { capability = "thing.view" },
  },
}
]] }
  for _, mode in ipairs { false, true } do
    local eng = tg.open { rules = rules, db = path, distributed = mode }
    local t1 = eng:context { user = 10, workspace = 1, tenant = 1 }
    local d = assert(t1:resolve { family = "Thing", path = "detail", id = 6 })
    lu.assertEquals({ d.status, d.record and d.record.name }, { 200, "six" })
    for _, req in ipairs {
      { family = "Thing", path = "detail", id = 5 },
      { family = "Thing", path = "bulk_action", ids = { 5, 6 } },
      { family = "Thing", path = "bulk_action", ids = { 4, 5 } }, -- 5 twice would count for 4
    } do
      d = assert(t1:resolve(req))
      lu.assertEquals({ d.status, d.reason }, { 404, "ambiguous_id" }, O.show(req))
      lu.assertNil(d.record)
      lu.assertNil(d.records and d.records[1])
      local x = assert(t1:explain(req))
      lu.assertEquals({ x.status, x.reason }, { 404, "ambiguous_id" }, O.show(req))
    end
    -- a fresh context: its first decision reads scope and record in one statement
    d = assert(eng:context { user = 10, workspace = 1, tenant = 1 }:resolve {
      family = "Thing", path = "detail", id = 5 })
    lu.assertEquals({ d.status, d.reason }, { 404, "ambiguous_id" })
    local nowhere = eng:context { user = 10, workspace = 1 }
    d = assert(nowhere:resolve { family = "Thing", path = "canonical_viewer", id = 7 })
    lu.assertEquals({ d.status, d.reason }, { 404, "ambiguous_id" })
    d = assert(nowhere:resolve { family = "Thing", path = "canonical_viewer", id = 6 })
    lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
    eng:close()
  end
end

-- A relation's child family on a view with no repeated row: resolve and explain agree (the
-- owner column is read before the view's look for a second row moves the statement on).
function TestRepeatingView:test_a_relation_on_a_plain_view_explains_as_it_decides()
  local path = H.tmpdir() .. "/parts.db"
  local db = tg.connect(path)
  db:exec([[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT);
CREATE TABLE base_parts (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, thing_id INTEGER);
CREATE VIEW parts AS SELECT id, tenant_id, thing_id FROM base_parts;
INSERT INTO workspaces VALUES (1);
INSERT INTO tenants VALUES (1, 1);
INSERT INTO workspace_memberships VALUES (10, 1, 'owner');
INSERT INTO tenant_memberships VALUES (10, 1, NULL);
INSERT INTO things VALUES (5, 1, 'five'), (6, 1, 'six');
INSERT INTO base_parts VALUES (50, 1, 5), (60, 1, 6);
]])
  db:close()
  local rules = H.rule_dir { ["families.lua"] = H.minimal["families.lua"] .. [[
family "Part" {
  table = "parts",
  primary_surface = "PartResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = { relation_manager = { owner = "Thing", via = "thing_id", capability = "thing.view" } },
}
]] }
  local eng = tg.open { rules = rules, db = path }
  local ctx = eng:context { user = 10, workspace = 1, tenant = 1 }
  for _, c in ipairs { { 5, 50, 200, "ok" }, { 5, 60, 404, "wrong_owner" } } do
    local req = { family = "Part", path = "relation_manager", owner = c[1], id = c[2] }
    local d = assert(ctx:resolve(req))
    lu.assertEquals({ d.status, d.reason }, { c[3], c[4] }, O.show(req))
    local x = assert(ctx:explain(req))
    lu.assertEquals({ x.status, x.reason }, { c[3], c[4] }, O.show(req))
  end
  eng:close()
end

TestDistributed = {}
function TestDistributed:tearDown() H.cleanup() end

-- The reason a default-mode refusal has in distributed mode: a record of another tenant is
-- not read there, so it is not_found (the owner's, owner_not_found).
local PINNED = { foreign_tenant = "not_found", foreign_workspace = "not_found",
  owner_foreign_tenant = "owner_not_found", owner_foreign_workspace = "owner_not_found" }

function TestDistributed:test_same_decisions_as_the_default_mode()
  math.randomseed(SEED)
  local path = H.refdb(60)
  local plain = tg.open { rules = H.shipped_rules, db = path }
  local dist = tg.open { rules = H.shipped_rules, db = path, distributed = true }
  lu.assertFalse(plain:settings().distributed)
  lu.assertTrue(dist:settings().distributed)
  local W = O.load_world(tg, path, plain:rules())
  local gen = O.generator(W, {})
  local ctxs = { [plain] = {}, [dist] = {} }
  local function ctx(eng, u, w, t)
    local k = O.show(u) .. "/" .. O.show(w) .. "/" .. O.show(t)
    ctxs[eng][k] = ctxs[eng][k] or eng:context { user = u, workspace = w, tenant = t }
    return ctxs[eng][k]
  end
  local mapped, same, by_id_foreign = 0, 0, 0
  for i = 1, REQUESTS do
    local req, u, w, t = gen()
    local a = ctx(plain, u, w, t):resolve(req)
    local b = ctx(dist, u, w, t):resolve(req)
    local what = ("#%d %s %s"):format(i, O.show { u = u, w = w, t = t }, O.show(req))
    lu.assertEquals(b.status, a.status, what)
    lu.assertEquals(O.actual_ids(W, req, b), O.actual_ids(W, req, a), what)
    lu.assertEquals(b.has_more, a.has_more, what)
    if b.reason == a.reason then
      same = same + 1
    else
      lu.assertEquals(b.reason, PINNED[a.reason], what .. " default reason " .. tostring(a.reason))
      mapped = mapped + 1
    end
    -- with a route tenant, no by-id read in distributed mode sees another tenant's row
    if t ~= nil and t ~= false and (req.path == "detail" or req.path == "row_action"
        or req.path == "bulk_action" or req.path == "relation_manager") then
      lu.assertNil(PINNED[b.reason], what)
      if PINNED[a.reason] then by_id_foreign = by_id_foreign + 1 end
    end
  end
  print(("distributed vs default: %d requests, %d same reason, %d foreign -> not_found (%d by id with a route tenant)")
    :format(REQUESTS, same, mapped, by_id_foreign))
  lu.assertTrue(by_id_foreign > 20, "the draw reached foreign records by id")
  plain:close()
  -- the oracle (reason classes) and the safety property hold in distributed mode
  math.randomseed(SEED + 1)
  local R = O.run(dist, W, REQUESTS, {})
  dist:close()
  O.print_report(R, "distributed mode")
  O.assert_report(lu, R)
end

function TestDistributed:test_option_and_command_line()
  local ok, err = pcall(tg.open, { rules = H.shipped_rules, db = H.refdb(3), distributed = "on" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "'distributed' must be a boolean")
  local path = H.refdb(20)
  local db = tg.connect(path)
  -- a policy of tenant 3 (workspace 1), asked for in tenant 1 by its owner
  local foreign = db:value("SELECT id FROM policies WHERE tenant_id = 3 ORDER BY id LIMIT 1")
  db:close()
  local base = ("resolve --rules '%s' --db '%s' --user 1 --workspace 1 --tenant 1 "
    .. "--family Policy --path detail --id %d --json"):format(H.shipped_rules, path, foreign)
  local rc, out = H.run_tool(base)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"reason":"foreign_tenant"')
  rc, out = H.run_tool(base .. " --distributed on")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"status":404')
  lu.assertStrContains(out, '"reason":"not_found"')
  rc, out = H.run_tool(base:gsub("^resolve", "explain") .. " --distributed on")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"reason":"not_found"')
  rc, out = H.run_tool(base .. " --distributed sometimes")
  lu.assertEquals(rc, 2, out)
  lu.assertStrContains(out, "--distributed takes on, off or auto")
end

os.exit(lu.LuaUnit.run())
