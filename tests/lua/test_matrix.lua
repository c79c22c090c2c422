-- The guard-scenario matrix: the standard set the rules derive, declared scenarios, the run
-- against the reference database (before and after the rollout), the mutation check, a
-- deliberately broken family, the database left exactly as found, the LuaUnit module run as
-- a subprocess, and `tenantguard matrix`.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local HIDDEN = "hidden_or_disabled_without_side_effect"
local SCENARIO_TYPES = { "positive_scope", "wrong_tenant_index", "wrong_tenant_detail",
  "wrong_tenant_row_action", "wrong_tenant_bulk_action", "wrong_tenant_relation_manager",
  "safe_search" }
local WRONG_TENANT = { -- scenario type -> the path it needs
  { "wrong_tenant_index", "index" }, { "wrong_tenant_detail", "detail" },
  { "wrong_tenant_row_action", "row_action" }, { "wrong_tenant_bulk_action", "bulk_action" },
  { "wrong_tenant_relation_manager", "relation_manager" } }

local function open(path, rules)
  return tg.open { db = path, rules = rules or H.shipped_rules }
end

local function contains(s, part) return type(s) == "string" and s:find(part, 1, true) ~= nil end

local function sq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function row_key(r)
  return ("%s|%s|%s|%s|exc=%s|decl=%s"):format(r.family, r.scenario_type, r.path,
    tostring(r.expected_outcome), tostring(r.is_exception), tostring(r.declared))
end

local function find_row(rows, family, scenario_type, path)
  for _, r in ipairs(rows) do
    if r.family == family and r.scenario_type == scenario_type
      and (path == nil or r.path == path) then
      return r
    end
  end
end

-- Every row passed, with a readable list of the failures otherwise.
local function assert_all_pass(results, label)
  lu.assertIsTable(results, label .. ": run_matrix returned no report")
  local bad = {}
  for _, r in ipairs(results) do
    if not r.pass then bad[#bad + 1] = r.message or row_key(r) end
  end
  lu.assertEquals(#bad, 0, label .. ": failing scenarios:\n  " .. table.concat(bad, "\n  "))
  lu.assertEquals(results.failed, 0, label)
  lu.assertEquals(results.passed, #results, label)
  lu.assertTrue(#results > 0, label .. ": no scenarios")
  for _, r in ipairs(results) do
    lu.assertTrue(#r.checks > 0, label .. ": " .. row_key(r) .. " ran no check")
    for _, c in ipairs(r.checks) do
      lu.assertTrue(c.pass, label .. ": " .. row_key(r) .. ": " .. tostring(c.failure))
      lu.assertNil(c.failure)
    end
    lu.assertEquals(r.actual_outcome, r.expected_outcome, label .. ": " .. row_key(r))
  end
end

-- ---- the database, exactly: every table's rows (all columns), the schema, the file bytes ----

local function qi(name) return '"' .. name:gsub('"', '""') .. '"' end

-- { schema = "...", tables = { [name] = "row\nrow\n..." } } read through a plain handle.
-- Rows are sorted by their rendering (so WITHOUT ROWID tables work too) and include the
-- rowid where the table has one, so a renumbered row is a difference.
local function fingerprint(path)
  local db = tg.connect(path)
  local fp = { tables = {} }
  local schema = {}
  for _, r in ipairs(db:query([[SELECT type, name, tbl_name, coalesce(sql, '') AS sql
      FROM sqlite_schema ORDER BY type, name]])) do
    schema[#schema + 1] = table.concat({ r.type, r.name, r.tbl_name, r.sql }, "|")
  end
  fp.schema = table.concat(schema, "\n")
  for _, t in ipairs(db:query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")) do
    local parts = {}
    for _, c in ipairs(db:query("SELECT name FROM pragma_table_info(?) ORDER BY cid", t.name)) do
      parts[#parts + 1] = ("quote(%s)"):format(qi(c.name))
    end
    local expr = table.concat(parts, " || '|' || ")
    local ok, rows = pcall(db.query, db, ("SELECT quote(rowid) || '#' || %s AS s FROM %s ORDER BY 1")
      :format(expr, qi(t.name)))
    if not ok then -- WITHOUT ROWID
      rows = db:query(("SELECT %s AS s FROM %s ORDER BY 1"):format(expr, qi(t.name)))
    end
    local lines = {}
    for _, r in ipairs(rows) do lines[#lines + 1] = r.s end
    fp.tables[t.name] = table.concat(lines, "\n")
  end
  db:close()
  return fp
end

local function assert_same_fingerprint(before, after, label)
  lu.assertEquals(after.schema, before.schema, label .. ": the schema changed")
  for name, rows in pairs(before.tables) do
    lu.assertNotNil(after.tables[name], label .. ": table " .. name .. " is gone")
    if after.tables[name] ~= rows then
      lu.fail(("%s: the rows of %s changed (%d bytes before, %d after)"):format(label, name,
        #rows, #after.tables[name]))
    end
  end
  for name in pairs(after.tables) do
    lu.assertNotNil(before.tables[name], label .. ": new table " .. name)
  end
end

-- The main database file after folding the WAL back into it.
local function file_bytes(path)
  local db = tg.connect(path)
  db:exec("PRAGMA wal_checkpoint(TRUNCATE)")
  db:close()
  return H.read(path)
end

-- ---- a deliberately broken family: a view that widens reads across the workspace ----

local NOTE_SCHEMA = [[
CREATE TABLE notes_base(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, title TEXT);
-- every note shows up once per tenant of its workspace, relabelled with that tenant's id
CREATE VIEW notes AS
  SELECT b.id, t.id AS tenant_id, b.title FROM notes_base b
  JOIN tenants t ON t.workspace_id = (SELECT workspace_id FROM tenants WHERE id = b.tenant_id);
CREATE TRIGGER notes_insert INSTEAD OF INSERT ON notes BEGIN
  INSERT INTO notes_base(id, tenant_id, title) VALUES (NEW.id, NEW.tenant_id, NEW.title);
END;
CREATE TRIGGER notes_update INSTEAD OF UPDATE ON notes BEGIN
  UPDATE notes_base SET title = NEW.title WHERE id = OLD.id;
END;
]]

local NOTE_RULES = [[
capabilities { "note.view" }
family "Note" {
  table = "notes",
  primary_surface = "NoteResource",
  search_posture = "disabled",
  action_surface_status = "declared",
  paths = { index = { capability = "note.view" }, detail = { capability = "note.view" } },
  fixture = { title = "fixture note" },
}
]]

-- A reference database with the Note view, and a copy of the shipped rules declaring it.
local function broken_note_setup()
  local path = H.refdb(20)
  local db = tg.connect(path)
  db:exec(NOTE_SCHEMA)
  db:close()
  local rules = H.shipped_copy()
  H.write(rules .. "/zz_note.lua", NOTE_RULES)
  return path, rules
end

-- A copy of the shipped rules plus one file.
local function rules_with(file_text)
  local rules = H.shipped_copy()
  H.write(rules .. "/zz_test.lua", file_text)
  return rules
end

-- ---------------------------------------------------------------------------------------

TestMatrix = {}

function TestMatrix:tearDown() H.cleanup() end

function TestMatrix:test_shipped_matrix_passes_before_rollout()
  local path = H.refdb(20)
  local eng = open(path)
  local r = eng:run_matrix()
  assert_all_pass(r, "before the rollout")
  lu.assertNil(r.mutation)
  lu.assertEquals(#r, #eng:matrix())
  eng:close()
end

function TestMatrix:test_shipped_matrix_passes_after_full_rollout()
  local path = H.refdb(20)
  local eng = open(path)
  for _, ph in ipairs { "add_columns", "enforce_writes" } do
    local ok, msg = eng:rollout(ph)
    lu.assertTrue(ok, ph .. ": " .. tostring(msg))
  end
  assert_all_pass(eng:run_matrix(), "after add_columns + enforce_writes")
  lu.assertNotNil(eng:backfill {})
  local w = eng:work {}
  lu.assertTrue(w.idle)
  for _, ph in ipairs { "quarantine_orphans" } do
    local ok, msg = eng:rollout(ph)
    lu.assertTrue(ok, ph .. ": " .. tostring(msg))
  end
  local v = eng:validate()
  lu.assertTrue(v.ok, "validation after the backfill and the quarantine")
  local ok, msg = eng:rollout("enforce_constraints")
  lu.assertTrue(ok, "enforce_constraints: " .. tostring(msg))
  local before, bytes = fingerprint(path), file_bytes(path)
  assert_all_pass(eng:run_matrix(), "after the full rollout")
  for _, m in ipairs(tg.mutations()) do
    lu.assertTrue(eng:run_matrix(m.name).failed > 0, "after the rollout, mutant " .. m.name)
  end
  assert_all_pass(eng:run_matrix(), "after the rollout, after the mutants")
  assert_same_fingerprint(before, fingerprint(path), "after the rollout")
  lu.assertTrue(file_bytes(path) == bytes, "after the rollout: the database file changed")
  eng:close()
end

function TestMatrix:test_standard_set()
  local eng = tg.open { rules = H.shipped_rules } -- listing needs no database
  local rules = eng:rules()
  local expected, n = {}, 0
  local function want(r)
    local k = row_key(r)
    expected[k] = (expected[k] or 0) + 1
    n = n + 1
  end
  for _, fam in ipairs(rules.families) do
    for _, p in ipairs(fam.path_order) do
      if p ~= "global_search" then
        want { family = fam.name, scenario_type = "positive_scope", path = p,
          expected_outcome = 200, is_exception = false, declared = false }
      end
    end
    for _, tp in ipairs(WRONG_TENANT) do
      if fam.paths[tp[2]] then
        want { family = fam.name, scenario_type = tp[1], path = tp[2], expected_outcome = 404,
          is_exception = false, declared = false }
      end
    end
    want { family = fam.name, scenario_type = "safe_search", path = "global_search",
      expected_outcome = fam.search_posture == "scoped" and 200 or HIDDEN,
      is_exception = false, declared = false }
  end
  for _, e in ipairs(rules.exceptions) do
    if e.table then
      want { family = e.name, scenario_type = "positive_scope", path = "detail",
        expected_outcome = 200, is_exception = true, declared = false }
      want { family = e.name, scenario_type = "wrong_tenant_detail", path = "detail",
        expected_outcome = 404, is_exception = true, declared = false }
    end
  end
  local rows = eng:matrix()
  lu.assertEquals(#rows, n)
  local got = {}
  for _, r in ipairs(rows) do
    local k = row_key(r)
    got[k] = (got[k] or 0) + 1
    lu.assertNil(r.pass, "matrix() does not run anything")
    lu.assertNil(r.checks)
  end
  lu.assertEquals(got, expected)

  -- spelled out for the shipped rules
  lu.assertEquals(find_row(rows, "EntraGroup", "safe_search").expected_outcome, 200)
  for _, f in ipairs { "Policy", "PolicyVersion", "BackupSchedule", "BackupSet", "RestoreRun",
    "Finding", "InventoryItem" } do
    lu.assertEquals(find_row(rows, f, "safe_search").expected_outcome, HIDDEN, f)
  end
  lu.assertNil(find_row(rows, "EntraGroup", "positive_scope", "global_search"))
  lu.assertNotNil(find_row(rows, "EntraGroup", "positive_scope", "canonical_viewer"))
  lu.assertNil(find_row(rows, "EntraGroup", "wrong_tenant_row_action"))
  lu.assertNotNil(find_row(rows, "Policy", "wrong_tenant_relation_manager", "relation_manager"))
  lu.assertNil(find_row(rows, "Finding", "wrong_tenant_relation_manager"))
  for _, e in ipairs { "ProviderConnectionAdmin", "OperationRunMonitor", "AlertDeliveries" } do
    local r = find_row(rows, e, "positive_scope", "detail")
    lu.assertNotNil(r, e)
    lu.assertTrue(r.is_exception)
    lu.assertNotNil(find_row(rows, e, "wrong_tenant_detail", "detail"), e)
  end
  for _, r in ipairs(rows) do
    local known = false
    for _, t in ipairs(SCENARIO_TYPES) do known = known or t == r.scenario_type end
    lu.assertTrue(known, r.scenario_type)
  end
  eng:close()
end

function TestMatrix:test_declared_scenario_appears_and_runs()
  local rules = rules_with([[
scenario { family_name = "Policy", scenario_type = "wrong_tenant_detail",
           expected_outcome = 404, surface_class = "policy page",
           notes = "support links must not cross tenants" }
]])
  local path = H.refdb(20)
  local plain = open(path)
  local standard = #plain:matrix()
  plain:close()
  local eng = open(path, rules)
  local rows = eng:matrix()
  lu.assertEquals(#rows, standard + 1)
  local declared = {}
  for _, r in ipairs(rows) do if r.declared then declared[#declared + 1] = r end end
  lu.assertEquals(#declared, 1)
  local d = declared[1]
  lu.assertEquals(d.family, "Policy")
  lu.assertEquals(d.scenario_type, "wrong_tenant_detail")
  lu.assertEquals(d.path, "detail")
  lu.assertEquals(d.expected_outcome, 404)
  lu.assertEquals(d.surface_class, "policy page")
  lu.assertEquals(d.notes, "support links must not cross tenants")
  lu.assertFalse(d.is_exception)

  local results = eng:run_matrix()
  assert_all_pass(results, "with a declared scenario")
  local ran
  for _, r in ipairs(results) do if r.declared then ran = r end end
  lu.assertNotNil(ran)
  lu.assertTrue(ran.pass)
  lu.assertEquals(ran.actual_outcome, 404)
  lu.assertTrue(#ran.checks > 0)
  eng:close()
end

function TestMatrix:test_every_mutant_is_caught()
  local path = H.refdb(20)
  local eng = open(path)
  local muts = tg.mutations()
  lu.assertTrue(#muts > 0)
  local names = {}
  for _, m in ipairs(muts) do
    lu.assertIsString(m.name)
    lu.assertIsString(m.description)
    lu.assertNil(names[m.name], "duplicate mutation " .. m.name)
    names[m.name] = true
    local r = eng:run_matrix(m.name)
    lu.assertIsTable(r, m.name)
    lu.assertEquals(r.mutation, m.name)
    lu.assertTrue(r.failed > 0, "mutant " .. m.name .. " (" .. m.description .. ") survived")
    lu.assertEquals(r.passed + r.failed, #r)
    local first
    for _, x in ipairs(r) do if not x.pass then first = first or x end end
    lu.assertStrContains(first.message, "family " .. first.family .. ", " .. first.scenario_type)
  end
  -- a mutant never outlives its run
  assert_all_pass(eng:run_matrix(), "after every mutant")
  lu.assertErrorMsgContains("no_such_mutation", function() eng:run_matrix("no_such_mutation") end)
  eng:close()
end

-- The view really widens: the engine serves tenant A another tenant's note. The matrix must
-- fail, and say which family and scenario.
function TestMatrix:test_broken_family_fails_naming_family_and_scenario()
  local path, rules = broken_note_setup()
  do -- the precondition, through raw SQL: the view leaks across the workspace
    local db = tg.connect(path)
    local t = db:query([[SELECT a.id AS a, b.id AS b FROM tenants a JOIN tenants b
        ON a.workspace_id = b.workspace_id AND a.id < b.id LIMIT 1]])[1]
    lu.assertNotNil(t, "the reference database has two tenants in one workspace")
    db:exec("BEGIN")
    db:exec(("INSERT INTO notes(tenant_id, title) VALUES (%d, 'of b')"):format(t.b))
    lu.assertEquals(db:value(("SELECT count(*) FROM notes WHERE tenant_id = %d AND title = 'of b'")
      :format(t.a)), 1)
    db:exec("ROLLBACK")
    db:close()
  end
  local eng = open(path, rules)
  local r = eng:run_matrix()
  lu.assertTrue(r.failed > 0, "the widening view passed the matrix")
  for _, x in ipairs(r) do
    if not x.pass then
      lu.assertEquals(x.family, "Note", "only the broken family fails: " .. tostring(x.message))
      lu.assertStrContains(x.message, ("family Note, %s (%s)"):format(x.scenario_type, x.path))
    end
  end
  eng:close()
end

-- The scenario made for this leak must be the one that catches it: tenant A's index lists B's
-- notes (relabelled with A's tenant id). A's detail page no longer opens B's note: the view
-- repeats its id once per tenant, and a read by id that finds an id on two rows refuses it
-- (404 ambiguous_id), so that scenario passes.
function TestMatrix:test_broken_family_caught_by_its_wrong_tenant_scenarios()
  local path, rules = broken_note_setup()
  local eng = open(path, rules)
  local r = eng:run_matrix()
  local x = find_row(r, "Note", "wrong_tenant_index")
  lu.assertNotNil(x)
  lu.assertFalse(x.pass, "Note wrong_tenant_index passed although the view serves other "
    .. "tenants' notes")
  lu.assertStrContains(x.message, "family Note, wrong_tenant_index")
  x = find_row(r, "Note", "wrong_tenant_detail")
  lu.assertNotNil(x)
  lu.assertTrue(x.pass, tostring(x.message))
  -- by hand: tenant 2's note asked for from tenant 1's route (both of workspace 1)
  local db = tg.connect(path)
  db:exec("INSERT INTO notes_base(id, tenant_id, title) VALUES (900, 2, 'of tenant 2')")
  db:close()
  local d = eng:context { user = 1, workspace = 1, tenant = 1 }:resolve { family = "Note",
    path = "detail", id = 900 }
  lu.assertEquals({ d.status, d.reason }, { 404, "ambiguous_id" })
  lu.assertNil(d.record)
  eng:close()
end

function TestMatrix:test_declared_wrong_expectation_fails_search()
  local rules = rules_with([[
scenario { family_name = "EntraGroup", scenario_type = "safe_search", expected_outcome = 404,
           notes = "wrong: EntraGroup search is scoped" }
]])
  local path = H.refdb(20)
  local eng = open(path, rules)
  local r = eng:run_matrix()
  lu.assertEquals(r.failed, 1)
  local bad
  for _, x in ipairs(r) do if not x.pass then bad = x end end
  lu.assertTrue(bad.declared)
  lu.assertEquals(bad.family, "EntraGroup")
  lu.assertEquals(bad.scenario_type, "safe_search")
  lu.assertStrContains(bad.message, "family EntraGroup, safe_search")
  lu.assertEquals(bad.actual_outcome, 200)
  eng:close()
end

function TestMatrix:test_declared_wrong_expectation_fails_positive_scope_hidden()
  local rules = rules_with([[
scenario { family_name = "Policy", scenario_type = "positive_scope",
           expected_outcome = "hidden_or_disabled_without_side_effect" }
]])
  local path = H.refdb(20)
  local eng = open(path, rules)
  local r = eng:run_matrix()
  lu.assertEquals(r.failed, 1)
  for _, x in ipairs(r) do
    if not x.pass then
      lu.assertTrue(x.declared)
      lu.assertStrContains(x.message, "family Policy, positive_scope")
    end
  end
  eng:close()
end

-- A positive-scope scenario is an actor with every right reading its own tenant's record: it
-- is 200, so a declaration expecting 404 is wrong and must fail.
function TestMatrix:test_declared_wrong_expectation_fails_positive_scope_404()
  local rules = rules_with([[
scenario { family_name = "Policy", scenario_type = "positive_scope", expected_outcome = 404,
           notes = "wrong: a record of one's own tenant is served" }
]])
  local path = H.refdb(20)
  local eng = open(path, rules)
  local r = eng:run_matrix()
  local decl
  for _, x in ipairs(r) do if x.declared then decl = x end end
  lu.assertNotNil(decl)
  lu.assertFalse(decl.pass, "a declared positive_scope expecting 404 passed (actual "
    .. tostring(decl.actual_outcome) .. ")")
  lu.assertEquals(r.failed, 1)
  lu.assertStrContains(tostring(decl.message), "family Policy, positive_scope")
  eng:close()
end

function TestMatrix:test_run_matrix_leaves_the_database_exactly_as_found()
  local path = H.refdb(20)
  local eng = open(path)
  -- taken with the engine open, so only what run_matrix does is compared
  local before = fingerprint(path)
  -- The reference database is in WAL mode: after a TRUNCATE checkpoint every committed page
  -- is in the main file, and a rolled-back transaction commits no frame, so the file's
  -- bytes are stable (checked here, not assumed).
  local bytes = file_bytes(path)
  assert_all_pass(eng:run_matrix(), "plain run")
  assert_same_fingerprint(before, fingerprint(path), "after the plain run")
  lu.assertTrue(file_bytes(path) == bytes, "the plain run changed the database file")
  for _, m in ipairs(tg.mutations()) do
    local r = eng:run_matrix(m.name)
    lu.assertTrue(r.failed > 0, m.name)
  end
  assert_same_fingerprint(before, fingerprint(path), "after the mutants")
  lu.assertTrue(file_bytes(path) == bytes, "the mutants changed the database file")
  -- a new engine on the database sees no matrix fixture
  eng:close()
  local db = tg.connect(path)
  lu.assertEquals(db:value("SELECT count(*) FROM tenant_memberships WHERE user_id >= 4000000000000000000"), 0)
  db:close()
end

function TestMatrix:test_failing_run_leaves_the_database_exactly_as_found()
  local path, rules = broken_note_setup()
  local eng = open(path, rules)
  local before, bytes = fingerprint(path), file_bytes(path)
  lu.assertTrue(eng:run_matrix().failed > 0)
  assert_same_fingerprint(before, fingerprint(path), "after a failing run")
  lu.assertTrue(file_bytes(path) == bytes, "a failing run changed the database file")
  eng:close()
end

function TestMatrix:test_hidden_is_checked_for_real()
  local path = H.refdb(20)
  local eng = open(path)
  local r = eng:run_matrix()
  local rules = eng:rules()
  local seen = 0
  for _, fam in ipairs(rules.families) do
    if fam.search_posture ~= "scoped" then
      local row = find_row(r, fam.name, "safe_search", "global_search")
      lu.assertNotNil(row, fam.name)
      lu.assertEquals(row.expected_outcome, HIDDEN, fam.name)
      lu.assertEquals(row.actual_outcome, HIDDEN, fam.name)
      lu.assertTrue(row.pass, fam.name)
      lu.assertTrue(#row.checks > 0, fam.name .. ": the hidden scenario ran no check")
      local hidden
      for _, c in ipairs(row.checks) do
        if c.expected == HIDDEN then hidden = c end
      end
      lu.assertNotNil(hidden, fam.name .. ": no check expects hidden")
      -- it asked for real, was refused without rows, and moved no row (a side effect would
      -- have made the check fail: "the attempt changed rows")
      lu.assertTrue(hidden.pass, fam.name)
      lu.assertNil(hidden.failure)
      lu.assertEquals(hidden.actual, 404)
      lu.assertEquals(hidden.reason, "search_disabled")
      seen = seen + 1
    end
  end
  lu.assertTrue(seen >= 1)
  -- the disabled family Policy in particular
  lu.assertEquals(find_row(r, "Policy", "safe_search").checks[1].expected, HIDDEN)
  eng:close()
end

-- ---- the LuaUnit module, as a user's CI would run it ----

local LUA = (arg and arg[-1]) or "lua5.4"

local function run_lua(file, args)
  local env = ""
  for _, k in ipairs { "LUA_CPATH", "LUA_PATH" } do
    local v = os.getenv(k)
    if v then env = env .. k .. "=" .. sq(v) .. " " end
  end
  local cmd = env .. sq(LUA) .. " " .. sq(file) .. " " .. args .. " 2>&1; echo \"__rc=$?\""
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return rc, (out:gsub("__rc=%d+%s*$", ""))
end

local function isolation_test(db, rules)
  local dir = H.tmpdir()
  local file = dir .. "/test_isolation.lua"
  H.write(file, ([[
local lu = require "luaunit"
require("tenantguard.luaunit").install { db = %q, rules = %q }
os.exit(lu.LuaUnit.run())
]]):format(db, rules))
  return file, dir
end

local function class_of(family) return "TestIsolation" .. family:gsub("[^%w]", "") end

function TestMatrix:test_luaunit_module()
  local path = H.refdb(20)
  local eng = open(path)
  local rows = eng:matrix()
  eng:close()
  local families = {}
  for _, r in ipairs(rows) do families[class_of(r.family)] = true end
  local file, dir = isolation_test(path, H.shipped_rules)

  local rc, out = run_lua(file, "-v")
  lu.assertEquals(rc, 0, out)
  local tests, classes = 0, {}
  for class, name, status in out:gmatch("\n%s*(Test[%w_]+)%.([%w_]+) %.%.%. (%a+)") do
    tests = tests + 1
    lu.assertEquals(status, "Ok", class .. "." .. name)
    lu.assertStrMatches(class, "TestIsolation%w+")
    lu.assertTrue(families[class], "unexpected class " .. class)
    lu.assertStrMatches(name, "test_[%w_]+")
    classes[class] = true
  end
  lu.assertEquals(tests, #rows, out)
  lu.assertEquals(classes, families)
  local ran, ok, failures = out:match("Ran (%d+) tests in [%d.]+ seconds?, (%d+) successes?, (%d+) failures?")
  lu.assertEquals(tonumber(ran), #rows, out)
  lu.assertEquals(tonumber(ok), #rows)
  lu.assertEquals(tonumber(failures), 0)

  local xml = dir .. "/results.xml"
  rc, out = run_lua(file, "-o junit -n " .. sq(xml))
  lu.assertEquals(rc, 0, out)
  local text = H.read(xml)
  local n = select(2, text:gsub("<testcase", ""))
  lu.assertEquals(n, #rows)
  lu.assertNil(text:find("<failure", 1, true))
  lu.assertNil(text:find("<error", 1, true))
  for class in pairs(families) do lu.assertStrContains(text, class .. ".") end

  -- -p runs one family
  rc, out = run_lua(file, "-v -p EntraGroup")
  lu.assertEquals(rc, 0, out)
  local eg = 0
  for _, r in ipairs(rows) do if r.family == "EntraGroup" then eg = eg + 1 end end
  lu.assertEquals(tonumber(out:match("Ran (%d+) tests")), eg, out)
end

function TestMatrix:test_luaunit_module_broken_rules()
  local path, rules = broken_note_setup()
  local file = isolation_test(path, rules)
  local rc, out = run_lua(file, "-v")
  lu.assertNotEquals(rc, 0, out)
  lu.assertStrContains(out, "TestIsolationNote.test_")
  local scenario = out:match("family Note, ([%w_]+) %(")
  lu.assertNotNil(scenario, "the failure does not name the family and scenario:\n" .. out)
  local known = false
  for _, t in ipairs(SCENARIO_TYPES) do known = known or t == scenario end
  lu.assertTrue(known, scenario)
  -- the other families still pass
  lu.assertNil(out:match("TestIsolationPolicy%.[%w_]+ %.%.%. FAIL"), out)
end

-- ---- the tool ----

function TestMatrix:test_tool_matrix()
  local path = H.refdb(20)
  local eng = open(path)
  local rows = eng:matrix()
  eng:close()
  local rc, out = H.run_tool("matrix --db " .. sq(path) .. " --rules " .. sq(H.shipped_rules))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "family")
  lu.assertStrContains(out, "scenario")
  lu.assertStrContains(out, "coverage:")
  lu.assertStrContains(out, "drift:")
  lu.assertStrContains(out, ("matrix: %d scenarios, %d passed, 0 failed"):format(#rows, #rows))
  -- one table line per scenario
  local lines = 0
  for line in out:gmatch("[^\n]+") do
    if line:match("^%S+%s+[%w_]+%*?%s+[%w_]+%s+%S+%s+%S+%s+ok$") then lines = lines + 1 end
  end
  lu.assertEquals(lines, #rows, out)
  lu.assertNil(out:find("FAIL", 1, true))
  -- without --rules it uses the shipped rules
  rc, out = H.run_tool("matrix --db " .. sq(path))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "coverage:")
  lu.assertStrContains(out, "drift:")
end

function TestMatrix:test_tool_json_and_junit()
  local path = H.refdb(20)
  local eng = open(path)
  local rows = eng:matrix()
  eng:close()
  local dir = H.tmpdir()
  local xml = dir .. "/matrix.xml"
  local rc, out = H.run_tool("matrix --db " .. sq(path) .. " --json --junit " .. sq(xml))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"failed":0')
  lu.assertStrContains(out, '"passed":' .. #rows)
  lu.assertStrMatches(out, "^%s*{.*}%s*$")
  local _, n_scen = out:gsub('"scenario_type":', "")
  lu.assertEquals(n_scen, #rows)
  local text = H.read(xml)
  lu.assertStrContains(text, "<?xml")
  local _, n_cases = text:gsub("<testcase ", "")
  lu.assertEquals(n_cases, #rows)
  lu.assertNil(text:find("<failure", 1, true))
  lu.assertStrContains(text, ('tests="%d" failures="0"'):format(#rows))
end

function TestMatrix:test_tool_mutate()
  local path = H.refdb(20)
  local n = #tg.mutations()
  local rc, out = H.run_tool("matrix --db " .. sq(path) .. " --mutate")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, ("%d mutants, %d caught"):format(n, n))
  lu.assertNil(out:find("SURVIVED", 1, true))
  for _, m in ipairs(tg.mutations()) do lu.assertStrContains(out, m.name) end
end

function TestMatrix:test_tool_broken_rules_exit_1()
  local path, rules = broken_note_setup()
  local rc, out = H.run_tool("matrix --db " .. sq(path) .. " --rules " .. sq(rules))
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, "FAIL")
  lu.assertStrMatches(out, ".*family Note, [%w_]+ %(.*")
end

function TestMatrix:test_tool_list()
  local path, rules = broken_note_setup()
  local eng = open(path, rules)
  local rows = eng:matrix()
  eng:close()
  -- the broken rules fail when run; listing them runs nothing, so it succeeds
  local rc, out = H.run_tool("matrix --db " .. sq(path) .. " --rules " .. sq(rules) .. " --list")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, ("%d scenarios"):format(#rows))
  lu.assertStrMatches(out, ".*\nNote%s+wrong_tenant_index%s+index%s+404.*")
  lu.assertNil(out:find("FAIL", 1, true))
  lu.assertNil(out:find("coverage:", 1, true))
  lu.assertNil(out:find("passed", 1, true))
  local lines = 0
  for line in out:gmatch("[^\n]+") do
    if line:match("^%S+%s+[%w_]+%*?%s+[%w_]+%s+%S+$") and not line:match("^family") then
      lines = lines + 1
    end
  end
  lu.assertEquals(lines, #rows, out)
end

-- ---- fail closed: a path or exception without a capability ------------------------------

-- A copy of the shipped rules with plain text replacements ({ file, from, to }).
local function edited_rules(edits)
  local dir = H.shipped_copy()
  for _, e in ipairs(edits) do
    local path = dir .. "/" .. e[1]
    local text = H.read(path)
    local at = text:find(e[2], 1, true)
    assert(at, "edit not found: " .. e[2])
    H.write(path, text:sub(1, at - 1) .. e[3] .. text:sub(at + #e[2]))
  end
  return dir
end

local CAPLESS = {
  { "families.lua", 'bulk_action      = { capability = "policy.delete" },', "bulk_action = true," },
  { "families.lua", 'index            = { capability = "entra_group.view" },', "index = {}," },
  { "families.lua", 'global_search    = { capability = "entra_group.view" },',
    "global_search = true," },
  { "exceptions.lua", [[still_required_checks = { "workspace_member", "record_in_workspace", "capability" },
  capability = "operations.view",]], [[still_required_checks = { "workspace_member", "record_in_workspace" },]] },
}

-- The matrix expects 403 where the rules declare no capability, from every actor, the full
-- one included, and the engine agrees.
function TestMatrix:test_capability_less_paths_expect_403()
  local path = H.refdb(20)
  local eng = open(path, edited_rules(CAPLESS))
  local rows = eng:matrix()
  lu.assertEquals(find_row(rows, "Policy", "positive_scope", "bulk_action").expected_outcome, 403)
  lu.assertEquals(find_row(rows, "EntraGroup", "positive_scope", "index").expected_outcome, 403)
  lu.assertEquals(find_row(rows, "EntraGroup", "safe_search").expected_outcome, 403)
  lu.assertEquals(find_row(rows, "OperationRunMonitor", "positive_scope").expected_outcome, 403)
  lu.assertEquals(find_row(rows, "Policy", "positive_scope", "detail").expected_outcome, 200)
  lu.assertEquals(find_row(rows, "Policy", "wrong_tenant_bulk_action").expected_outcome, 404)
  local results = eng:run_matrix()
  assert_all_pass(results, "with capability-less paths")
  local r = find_row(results, "Policy", "positive_scope", "bulk_action")
  lu.assertEquals(r.actual_outcome, 403)
  local actors = {}
  for _, c in ipairs(r.checks) do
    if c.expected == 403 then actors[c.actor] = true end
  end
  lu.assertTrue(actors.full and actors.no_capability, "403 from the full actor and the one "
    .. "without capabilities")
  -- the mutant is caught here by the scenarios the rules define
  local m = eng:run_matrix("capability_less_path_grants")
  lu.assertTrue(m.failed > 0)
  local failed = {}
  for _, x in ipairs(m) do if not x.pass then failed[x.family .. "." .. x.path] = true end end
  lu.assertTrue(failed["Policy.bulk_action"], "the bulk action scenario catches the mutant")
  lu.assertTrue(failed["OperationRunMonitor.detail"], "the exception scenario catches it")
  eng:close()
end

-- Rules without such a path still prove the fail-closed default: every positive scenario
-- asks once more as the full actor under the same rules with no capability anywhere.
function TestMatrix:test_capability_less_mutant_caught_on_shipped_rules()
  local path = H.refdb(20)
  local eng = open(path)
  local names = {}
  for _, m in ipairs(tg.mutations()) do names[m.name] = true end
  lu.assertTrue(names.capability_less_path_grants)
  local plain = eng:run_matrix()
  local probes = 0
  for _, r in ipairs(plain) do
    for _, c in ipairs(r.checks) do
      if c.what:find("declare no capability", 1, true) then
        probes = probes + 1
        lu.assertEquals({ c.actor, c.expected, c.actual, c.reason },
          { "full", 403, 403, "missing_capability" })
      end
    end
  end
  lu.assertTrue(probes > 0)
  local m = eng:run_matrix("capability_less_path_grants")
  lu.assertTrue(m.failed > 0)
  for _, r in ipairs(m) do
    if not r.pass then lu.assertStrContains(r.message, "declare no capability") end
  end
  eng:close()
end

os.exit(lu.LuaUnit.run())
