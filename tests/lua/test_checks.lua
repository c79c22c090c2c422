-- One test per check code: a small bad rule file, the exact code, the exact file:line of the
-- declaration at fault, and a message that helps the person who wrote it.

local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

-- ---------------------------------------------------------------------------------------
-- helpers

-- Writes a minimal rule set with `files` replaced, returns the directory and tg.check's list.
local function check(files, db)
  local dir = H.rule_dir(files)
  return dir, tg.check{ rules = dir, db = db }
end

local function describe(findings)
  local out = {}
  for _, f in ipairs(findings) do
    out[#out + 1] = ("  %s %s %s: %s"):format(f.level, f.code, f.where, f.message)
  end
  return table.concat(out, "\n")
end

-- The one finding with `code`; fails (listing everything found) unless there is exactly one.
local function one(findings, code)
  local hits = H.with_code(findings, code)
  if #hits ~= 1 then
    lu.fail(("expected exactly one '%s' finding, got %d:\n%s"):format(code, #hits,
      describe(findings)))
  end
  return hits[1]
end

-- Like one(), and nothing else was reported (no cascade of follow-up errors).
local function only(findings, code)
  local f = one(findings, code)
  if #findings ~= 1 then
    lu.fail(("expected '%s' alone, got:\n%s"):format(code, describe(findings)))
  end
  return f
end

-- The finding points at dir/file:line.
local function at(f, dir, file, line)
  lu.assertEquals(f.file, dir .. "/" .. file)
  lu.assertEquals(f.line, line)
  lu.assertEquals(f.where, dir .. "/" .. file .. ":" .. line)
end

local function says(f, ...)
  for _, needle in ipairs{ ... } do
    lu.assertStrContains(f.message, needle)
  end
end

local function level(f, want)
  lu.assertEquals(f.level, want)
end

-- A valid family "Thing" on line `1 + #lead lines`; `extra` is inserted before `paths`,
-- `paths` replaces the path list. The declaration line is what findings point at.
local function family(opts)
  opts = opts or {}
  return (opts.lead or "") .. 'family "' .. (opts.name or "Thing") .. '" {\n'
    .. '  table = "' .. (opts.table or "things") .. '",\n'
    .. '  primary_surface = "ThingResource",\n'
    .. '  search_posture = "' .. (opts.posture or "not_applicable") .. '",\n'
    .. '  action_surface_status = "' .. (opts.status or "declared") .. '",\n'
    .. (opts.extra or "")
    .. '  paths = {\n'
    .. (opts.paths or '    index = { capability = "thing.view" },\n'
                   .. '    detail = { capability = "thing.view" },\n'
                   .. '    row_action = { capability = "thing.edit" },\n')
    .. '  },\n'
    .. '}\n'
end

-- Two comment lines, so the family declaration sits on line 3.
local LEAD = "-- things of the test application\n\n"

-- ---------------------------------------------------------------------------------------
-- the application schema for the db checks

local APP_SCHEMA = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE operation_runs (id INTEGER PRIMARY KEY, type TEXT, status TEXT,
  workspace_id INTEGER, summary TEXT, created_at TEXT, started_at TEXT, finished_at TEXT);
CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, workspace_id INTEGER, tenant_id INTEGER,
  action TEXT, subject TEXT, metadata TEXT, created_at TEXT);
]]

-- A SQLite database with the application tables plus `sql`; returns its path.
local function make_db(sql)
  local path = H.tmpdir() .. "/app.db"
  local db = tg.connect(path)
  db:exec(APP_SCHEMA .. (sql or ""))
  db:close()
  return path
end

-- ---------------------------------------------------------------------------------------

TestChecks = {}

function TestChecks:tearDown()
  H.cleanup()
end

-- A user with a correct rule set sees nothing at all.
function TestChecks:test_clean_minimal_rule_set_has_no_findings()
  local _, fs = check{}
  lu.assertEquals(#fs, 0, describe(fs))
  local _, fs2 = check{ ["families.lua"] = family{ lead = LEAD } }
  lu.assertEquals(#fs2, 0, describe(fs2))
end

-- A clean rule set against a database that has every mapped table is clean too.
function TestChecks:test_clean_rule_set_against_matching_db()
  local db = make_db("CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER);")
  local _, fs = check({}, db)
  lu.assertEquals(#fs, 0, describe(fs))
end

-- ---- loading -------------------------------------------------------------------------

-- A missing comma points at the line where Lua noticed, with Lua's own explanation.
function TestChecks:test_script_error_syntax()
  local dir, fs = check{ ["families.lua"] = LEAD .. [[
family "Thing" {
  table = "things"
  primary_surface = "ThingResource",
}
]] }
  local f = only(fs, "script_error")
  level(f, "error")
  at(f, dir, "families.lua", 5)
  says(f, "near 'primary_surface'")
end

-- A typo in a constructor name is an unknown global, named in the message.
function TestChecks:test_unknown_global()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD }:gsub("^(.-)family", "%1familly") }
  local f = only(fs, "unknown_global")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'familly'")
end

-- A declaration without its name, or with something other than a table, says its form.
function TestChecks:test_bad_declaration()
  local dir, fs = check{ ["families.lua"] = LEAD .. 'family { table = "things" }\n' }
  local f = only(fs, "bad_declaration")
  at(f, dir, "families.lua", 3)
  says(f, 'family "Name" {')

  dir, fs = check{ ["families.lua"] = LEAD .. 'family "Thing" "things"\n' }
  f = only(fs, "bad_declaration")
  at(f, dir, "families.lua", 3)
  says(f, 'family "Thing" must be followed by a { ... } table')
end

-- An empty rule directory is an error on the directory itself.
function TestChecks:test_no_rules()
  local dir = H.tmpdir()
  local fs = tg.check{ rules = dir }
  local f = only(fs, "no_rules")
  level(f, "error")
  lu.assertEquals(f.file, dir)
  lu.assertNil(f.line)
  says(f, dir)
end

-- A rule directory that does not exist is a file error naming the path and the reason.
function TestChecks:test_file_error_missing_dir()
  local dir = H.tmpdir() .. "/no/such/rules"
  local fs = tg.check{ rules = dir }
  local f = only(fs, "file_error")
  level(f, "error")
  lu.assertEquals(f.file, dir)
  lu.assertNil(f.line)
  says(f, "No such file or directory")
end

-- A directory that happens to be called x.lua is skipped or reported as a directory, never
-- as a file "larger than 4 MiB".
function TestChecks:test_file_error_directory_named_like_a_rule_file()
  local dir = H.rule_dir{}
  assert(os.execute("mkdir '" .. dir .. "/zz.lua'"))
  local fs = tg.check{ rules = dir }
  for _, f in ipairs(fs) do
    lu.assertEquals(f.code, "file_error")
    lu.assertEquals(f.file, dir .. "/zz.lua")
    lu.assertStrContains(f.message:lower(), "director")
  end
end

-- ---- fields --------------------------------------------------------------------------

-- A misspelt field is named, with the closest real field suggested.
function TestChecks:test_unknown_field_with_suggestion()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD,
    extra = '  action_surface_reasn = "legacy",\n' } }
  local f = only(fs, "unknown_field")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'action_surface_reasn'", "(did you mean 'action_surface_reason'?)")
end

-- A misspelt field inside a path is caught too, and the path is named.
function TestChecks:test_unknown_field_inside_a_path()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD,
    paths = '    index = { capabilty = "thing.view" },\n' } }
  local f = one(fs, "unknown_field")
  at(f, dir, "families.lua", 3)
  says(f, "path 'index'", "'capabilty'", "(did you mean 'capability'?)")
end

-- A number where a string belongs names the field and both types.
function TestChecks:test_wrong_type()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, extra = "  notes = 42,\n" } }
  local f = only(fs, "wrong_type")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'notes'", "string", "number")
end

-- A value outside the allowed set lists what is allowed.
function TestChecks:test_bad_value_lists_allowed_values()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, posture = "sometimes" } }
  local f = only(fs, "bad_value")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'search_posture'", "'sometimes'", "scoped, disabled, not_applicable")
end

-- A stray named field in the capabilities list is the one problem reported; the real
-- capability names around it are not flagged.
function TestChecks:test_unknown_field_in_capabilities_list()
  local dir, fs = check{ ["roles.lua"] = [[
capabilities { "thing.view", "thing.edit", extra = "thing.export" }
role "owner" { "*" }
]] }
  local f = only(fs, "unknown_field")
  at(f, dir, "roles.lua", 1)
  says(f, "'extra'")
end

-- A forgotten required field is named.
function TestChecks:test_missing_field()
  local src = family{ lead = LEAD }:gsub('  primary_surface = "ThingResource",\n', "")
  local dir, fs = check{ ["families.lua"] = src }
  local f = only(fs, "missing_field")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'primary_surface'", "required")
end

-- ---- names and references ------------------------------------------------------------

-- A second family of the same name points at the second one and says where the first is.
function TestChecks:test_duplicate_name()
  local first = family{ lead = LEAD }                  -- lines 3..13
  local dir, fs = check{ ["families.lua"] = first .. "\n" .. family{ table = "other_things" } }
  local f = only(fs, "duplicate_name")
  level(f, "error")
  at(f, dir, "families.lua", 15)
  says(f, "'Thing'", "declared twice", dir .. "/families.lua:3")
end

-- A relation manager whose owner is misspelt names it and suggests the real family.
function TestChecks:test_unknown_family()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, paths =
    '    index = { capability = "thing.view" },\n'
    .. '    relation_manager = { owner = "Thng", via = "thing_id", capability = "thing.view" },\n' } }
  local f = only(fs, "unknown_family")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'Thng'", "(did you mean 'Thing'?)")
end

-- A path type that does not exist is named, with the real one suggested and all listed.
function TestChecks:test_unknown_path_type()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, paths =
    '    index = { capability = "thing.view" },\n'
    .. '    detial = { capability = "thing.view" },\n' } }
  local f = only(fs, "unknown_path")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'detial'", "(did you mean 'detail'?)", "canonical_viewer")
end

-- A scenario that needs a path the family does not declare points at the scenario.
function TestChecks:test_unknown_path_needed_by_scenario()
  local fam = family{ lead = LEAD, paths = '    index = { capability = "thing.view" },\n' }
  -- the family ends on line 11; the scenario starts on line 13
  local dir, fs = check{ ["families.lua"] = fam .. [[

scenario {
  family_name = "Thing",
  scenario_type = "wrong_tenant_row_action",
  expected_outcome = 404,
}
]] }
  local f = only(fs, "unknown_path")
  level(f, "error")
  at(f, dir, "families.lua", 13)
  says(f, "wrong_tenant_row_action", "row_action", "'Thing'")
end

-- A role that includes an undeclared role names it.
function TestChecks:test_unknown_role()
  local dir, fs = check{ ["roles.lua"] = [[
capabilities { "thing.view", "thing.edit" }
role "owner" { "*" }

role "viewer" { "thing.view", includes = "ownr" }
]] }
  local f = only(fs, "unknown_role")
  level(f, "error")
  at(f, dir, "roles.lua", 4)
  says(f, "'ownr'")
end

-- A misspelt capability is named, with the declared one suggested.
function TestChecks:test_unknown_capability()
  local src = family{ lead = LEAD }:gsub('"thing.edit"', '"thing.edt"')
  local dir, fs = check{ ["families.lua"] = src }
  local f = only(fs, "unknown_capability")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'thing.edt'", "(did you mean 'thing.edit'?)")
end

-- ---- the access rules of DOMAIN.md ---------------------------------------------------

-- A path that would answer a stranger with anything but 404 is refused.
function TestChecks:test_not_entitled_not_404()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, paths =
    '    index = { capability = "thing.view", not_entitled_result = 403 },\n'
    .. '    row_action = { capability = "thing.edit" },\n' } }
  local f = only(fs, "not_entitled_not_404")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "path 'index'", "403", "404")
end

-- A path that would answer a missing capability with anything but 403 is refused.
function TestChecks:test_missing_capability_not_403()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, paths =
    '    index = { capability = "thing.view" },\n'
    .. '    row_action = { capability = "thing.edit", missing_capability_result = 404 },\n' } }
  local f = only(fs, "missing_capability_not_403")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "path 'row_action'", "404", "403")
end

-- A baseline exemption must say why.
function TestChecks:test_exemption_without_reason()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, status = "baseline_exemption" } }
  local f = only(fs, "exemption_without_reason")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "action_surface_reason")
end

-- Scoped search without a global_search path is refused.
function TestChecks:test_scoped_search_without_path()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, posture = "scoped",
    extra = '  search_columns = { "name" },\n' } }
  local f = only(fs, "scoped_search_without_path")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "scoped", "global_search")
end

-- A global_search path on a family whose search is not scoped is refused.
function TestChecks:test_search_path_without_scoped()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, posture = "disabled", paths =
    '    index = { capability = "thing.view" },\n'
    .. '    global_search = { capability = "thing.view" },\n' } }
  local f = only(fs, "search_path_without_scoped")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "global_search", "'disabled'")
end

-- A query rule whose search_rule contradicts the family's posture is refused.
function TestChecks:test_search_rule_mismatch()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD,
    extra = '  query = { search_rule = "scoped_only" },\n' } }
  local f = only(fs, "search_rule_mismatch")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'scoped_only'", "'not_applicable'", "expected 'disabled'")
end

-- An exception must list the checks that still apply.
function TestChecks:test_exception_without_checks()
  local dir, fs = check{ ["exceptions.lua"] = [[
-- surfaces outside the families

exception "AdminThings" {
  exception_kind = "deferred_family",
  table = "admin_things",
  why_excepted = "Mixed semantics for now.",
}
]] }
  local f = only(fs, "exception_without_checks")
  level(f, "error")
  at(f, dir, "exceptions.lua", 3)
  says(f, "still_required_checks", "workspace_member")
end

-- Two families on one table: the second is at fault and the first is named.
function TestChecks:test_table_claimed_twice_by_two_families()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD } .. "\n"
    .. family{ name = "Other" } }
  local f = only(fs, "table_claimed_twice")
  level(f, "error")
  at(f, dir, "families.lua", 15)
  says(f, "'things'", "family 'Thing'", dir .. "/families.lua:3")
end

-- A residual entry on a family's table is refused and names the family.
function TestChecks:test_table_claimed_twice_by_family_and_residual()
  local dir, fs = check{ ["residual.lua"] = [[
residual "ThingLink" {
  table = "things",
  why_not_in_first_slice = "Reached through things.",
}
]] }
  local f = only(fs, "table_claimed_twice")
  level(f, "error")
  at(f, dir, "residual.lua", 1)
  says(f, "'things'", "family 'Thing'")
end

-- SQL metacharacters in a table name never reach the database.
function TestChecks:test_bad_identifier_semicolon()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, table = "things; DROP TABLE x" } }
  local f = only(fs, "bad_identifier")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'table'", "'things; DROP TABLE x'", "not a plain SQL identifier")
end

function TestChecks:test_bad_identifier_quote()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD, table = 'a\\"b' } }
  local f = only(fs, "bad_identifier")
  at(f, dir, "families.lua", 3)
  says(f, "'a\"b'", "not a plain SQL identifier")
end

-- ---- against a database --------------------------------------------------------------

-- A family whose table is not in the database is an error on the family.
function TestChecks:test_missing_table()
  local db = make_db()
  local dir, fs = check({ ["families.lua"] = family{ lead = LEAD } }, db)
  local f = only(fs, "missing_table")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'things'")
end

-- A family whose table lacks the tenant column is an error naming table.column.
function TestChecks:test_missing_column()
  local db = make_db("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT);")
  local dir, fs = check({ ["families.lua"] = family{ lead = LEAD } }, db)
  local f = only(fs, "missing_column")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "'things.tenant_id'")
end

-- A family's own columns are checked like the app's: each must exist in its table.
function TestChecks:test_missing_per_table_column()
  local db = make_db("CREATE TABLE things (thing_id INTEGER PRIMARY KEY, tenant_id INTEGER);")
  local dir, fs = check({ ["families.lua"] = family{ lead = LEAD,
    extra = '  columns = { id = "thing_id", tenant = "acct" },\n' } }, db)
  local f = only(fs, "missing_column")
  at(f, dir, "families.lua", 3)
  says(f, "family 'Thing'", "'things.acct'")
end

-- A family keyed on a column that can repeat is an error on the family, naming the column.
function TestChecks:test_family_key_not_unique()
  local db = make_db("CREATE TABLE things (id INTEGER, tenant_id INTEGER);")
  local dir, fs = check({ ["families.lua"] = family{ lead = LEAD } }, db)
  local f = only(fs, "family_key_not_unique")
  level(f, "error")
  at(f, dir, "families.lua", 3)
  says(f, "family 'Thing'", "'things.id'", "is not a key of the table, alone or with its tenant column")
end

-- `columns` of a table: known names only, plain identifiers, three different columns.
function TestChecks:test_bad_per_table_columns()
  local dir, fs = check{ ["families.lua"] = family{ lead = LEAD,
    extra = '  columns = { id = "thing_id", tenat = "acct" },\n' } }
  local f = only(fs, "unknown_field")
  at(f, dir, "families.lua", 3)
  says(f, "family 'Thing': columns", "'tenat'", "did you mean 'tenant'")
  dir, fs = check{ ["families.lua"] = family{ lead = LEAD,
    extra = '  columns = { tenant = "acct; DROP TABLE x" },\n' } }
  f = only(fs, "bad_identifier")
  at(f, dir, "families.lua", 3)
  dir, fs = check{ ["families.lua"] = family{ lead = LEAD,
    extra = '  columns = { id = "tenant_id" },\n' } }
  f = only(fs, "bad_value")
  at(f, dir, "families.lua", 3)
  says(f, "three different columns")
  dir, fs = check{ ["residual.lua"] = 'residual "Gadget" {\n  table = "gadgets",\n'
    .. '  why_not_in_first_slice = "later",\n  columns = "acct",\n}\n' }
  f = only(fs, "wrong_type")
  at(f, dir, "residual.lua", 1)
  says(f, "residual 'Gadget'", "'columns' must be a table")
end

-- A tenant-owned table no rule covers is a warning (on the rule directory), not an error.
function TestChecks:test_drift_is_a_warning()
  local db = make_db([[
CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER);
CREATE TABLE gadgets (id INTEGER PRIMARY KEY, tenant_id INTEGER);
]])
  local dir, fs = check({}, db)
  local f = only(fs, "drift")
  level(f, "warning")
  lu.assertEquals(f.file, dir)
  lu.assertNil(f.line)
  says(f, "'gadgets'", "'tenant_id'")
  lu.assertEquals(#H.errors(fs), 0)
end

-- ---- capability warnings -------------------------------------------------------------

-- A path needing a capability that no role grants is always 403: warned on the family.
function TestChecks:test_capability_never_granted()
  local dir, fs = check{
    ["roles.lua"] = 'capabilities { "thing.view", "thing.edit" }\nrole "viewer" { "thing.view" }\n',
    ["families.lua"] = family{ lead = LEAD },
  }
  local f = only(fs, "capability_never_granted")
  level(f, "warning")
  at(f, dir, "families.lua", 3)
  says(f, "'thing.edit'", "row_action", "403")
end

-- A declared capability nothing grants or needs is warned at its declaration.
function TestChecks:test_unused_capability()
  local dir, fs = check{ ["roles.lua"] = [[
-- the capabilities of the test application
capabilities { "thing.view", "thing.edit", "thing.export" }
role "owner" { "thing.view", "thing.edit" }
]] }
  local f = only(fs, "unused_capability")
  level(f, "warning")
  says(f, "'thing.export'")
  at(f, dir, "roles.lua", 2)
end

-- ---- how errors reach the user -------------------------------------------------------

-- tg.open raises "file:line: message [code]" for the first error.
function TestChecks:test_open_raises_file_line_and_code()
  local dir = H.rule_dir{ ["families.lua"] = family{ lead = LEAD, posture = "sometimes" } }
  local ok, err = pcall(tg.open, { rules = dir })
  lu.assertFalse(ok)
  lu.assertIsString(err)
  local prefix = dir .. "/families.lua:3:"
  lu.assertEquals(err:sub(1, #prefix), prefix)
  lu.assertStrContains(err, "[bad_value]")
end

-- Every problem of a file is reported at once, not only the first.
function TestChecks:test_several_problems_in_one_file_are_all_reported()
  local src = family{ lead = LEAD, extra = '  colour = "red",\n  notes = 42,\n',
    posture = "sometimes" }:gsub('"thing.edit"', '"thing.edt"')
  local dir, fs = check{ ["families.lua"] = src }
  for _, code in ipairs{ "unknown_field", "wrong_type", "bad_value", "unknown_capability" } do
    at(one(fs, code), dir, "families.lua", 3)
  end
  lu.assertEquals(#H.errors(fs), 4, describe(fs))
end

-- Problems in different declarations and files are all reported, each at its own place.
function TestChecks:test_problems_in_several_declarations_each_have_their_line()
  local dir, fs = check{
    ["families.lua"] = family{ lead = LEAD, extra = "  notes = 42,\n" } .. "\n"
      .. family{ name = "Other", table = "others", posture = "sometimes" },
    ["residual.lua"] = 'residual "Gadget" {\n  table = "gadgets",\n}\n',
  }
  at(one(fs, "wrong_type"), dir, "families.lua", 3)
  at(one(fs, "bad_value"), dir, "families.lua", 16)   -- 3..14, a blank line, then 16
  at(one(fs, "missing_field"), dir, "residual.lua", 1)
end

-- A long rule directory path does not cost the user the line number.
function TestChecks:test_line_survives_a_long_rule_directory_path()
  local dir = H.tmpdir() .. "/a_rather_long_directory_name/holding/the/rules/of/the/app"
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  H.write(dir .. "/roles.lua", H.minimal["roles.lua"])
  H.write(dir .. "/families.lua", LEAD .. 'familly "Thing" {}\n')
  local fs = tg.check{ rules = dir }
  local f = only(fs, "unknown_global")
  at(f, dir, "families.lua", 3)
  lu.assertNotStrContains(f.message, "...")
  local ok, err = pcall(tg.open, { rules = dir })
  lu.assertFalse(ok)
  local prefix = dir .. "/families.lua:3:"
  lu.assertEquals(err:sub(1, #prefix), prefix)
end

os.exit(lu.LuaUnit.run())
