-- The command-line tool and the reference database, as a user runs them.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg
local refdb = require "refdb"

TestRefdb = {}

function TestRefdb:tearDown() H.cleanup() end

local function checksum(path)
  local db = tg.connect(path, { readonly = true })
  local parts = {}
  for _, t in ipairs(db:query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")) do
    local rows = db:query(("SELECT * FROM %s ORDER BY rowid"):format(t.name))
    local acc = {}
    for _, r in ipairs(rows) do
      local keys = {}
      for k in pairs(r) do keys[#keys + 1] = k end
      table.sort(keys)
      for _, k in ipairs(keys) do acc[#acc + 1] = k .. "=" .. tostring(r[k]) end
    end
    parts[#parts + 1] = t.name .. ":" .. #rows .. ":" .. table.concat(acc, ",")
  end
  db:close()
  return table.concat(parts, "\n")
end

-- The same size gives the same database, row for row.
function TestRefdb:test_deterministic()
  local a = H.refdb(50)
  local b = H.refdb(50)
  lu.assertEquals(checksum(a), checksum(b))
end

-- Twelve tenant-owned tables of the chosen size, without workspace_id, with a few orphans.
function TestRefdb:test_shape_before_rollout()
  local path = H.refdb(1200)
  local db = tg.connect(path)
  for _, t in ipairs(refdb.tables) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s"):format(t.name)), 1200, t.name)
    lu.assertNil(db:value("SELECT 1 FROM pragma_table_info(?) WHERE name = 'workspace_id'",
      t.name), t.name)
    local orphans = db:value(("SELECT count(*) FROM %s WHERE tenant_id NOT IN "
      .. "(SELECT id FROM tenants)"):format(t.name))
    lu.assertEquals(orphans, 2, t.name) -- row 500 and the last row
  end
  lu.assertEquals(#refdb.tables, 12)
  lu.assertEquals(db:value("SELECT count(*) FROM tenants"), 12)
  lu.assertEquals(db:value("SELECT count(*) FROM workspaces"), 3)
  -- legacy audit rows: a tenant but no workspace
  lu.assertTrue(db:value("SELECT count(*) FROM audit_logs WHERE tenant_id IS NOT NULL "
    .. "AND workspace_id IS NULL") > 0)
  -- every child row is in its parent's tenant
  lu.assertEquals(db:value([[SELECT count(*) FROM policy_versions v JOIN policies p
    ON p.id = v.policy_id WHERE p.tenant_id <> v.tenant_id]]), 0)
  lu.assertEquals(db:value("PRAGMA foreign_key_check"), nil)
  db:close()
end

-- An existing file is never replaced unless asked.
function TestRefdb:test_refuses_to_overwrite()
  local path = H.refdb(5)
  lu.assertErrorMsgContains("already exists", refdb.create, path, { rows = 5 })
  refdb.create(path, { rows = 7, force = true })
  local db = tg.connect(path)
  lu.assertEquals(db:value("SELECT count(*) FROM policies"), 7)
  db:close()
end

TestTool = {}

function TestTool:tearDown() H.cleanup() end

-- `tenantguard lint` against the reference database reports no errors and exits 0.
function TestTool:test_lint_clean()
  local db = H.tmpdir() .. "/ref.db"
  local rc, out = H.run_tool("refdb " .. db .. " --rows 40")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "12 tenant-owned tables x 40 rows")
  rc, out = H.run_tool("lint --rules " .. H.shipped_rules .. " --db " .. db)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "0 errors, 0 warnings")
end

-- Errors print file:line and the code, and exit 1; --json is machine-readable.
function TestTool:test_lint_errors_and_json()
  local dir = H.rule_dir { ["families.lua"] = 'family "Thing" {\n  table = "things",\n'
    .. '  primary_surface = "T", search_posture = "scoped",\n'
    .. '  action_surface_status = "declared", paths = { index = {} },\n}\n' }
  local rc, out = H.run_tool("lint --rules " .. dir)
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, dir .. "/families.lua:1: error:")
  lu.assertStrContains(out, "[scoped_search_without_path]")
  rc, out = H.run_tool("lint --json --rules " .. dir)
  lu.assertEquals(rc, 1)
  lu.assertStrContains(out, '"code":"scoped_search_without_path"')
  lu.assertStrContains(out, '"line":1')
  lu.assertStrContains(out, '"errors":')
end

-- Warnings alone exit 0, or 1 with --strict.
function TestTool:test_lint_strict_warnings()
  local db = H.refdb(10)
  local h = tg.connect(db)
  h:exec("CREATE TABLE stray (id INTEGER PRIMARY KEY, tenant_id INTEGER)")
  h:close()
  local rc, out = H.run_tool("lint --rules " .. H.shipped_rules .. " --db " .. db)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "[drift]")
  rc = H.run_tool("lint --strict --rules " .. H.shipped_rules .. " --db " .. db)
  lu.assertEquals(rc, 1)
end

-- Help for every command, and clear errors for unknown commands and options.
function TestTool:test_help_and_bad_usage()
  local rc, out = H.run_tool("--help")
  lu.assertEquals(rc, 0)
  lu.assertStrContains(out, "lint")
  for _, cmd in ipairs { "lint", "refdb", "rules", "checks", "demo" } do
    rc, out = H.run_tool(cmd .. " --help")
    lu.assertEquals(rc, 0, cmd)
    lu.assertStrContains(out, "usage: tenantguard " .. cmd)
  end
  rc, out = H.run_tool("frobnicate")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(out, "unknown command 'frobnicate'")
  rc, out = H.run_tool("lint --colour")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(out, "unknown option --colour")
  rc, out = H.run_tool("refdb")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(out, "exactly one FILE")
end

-- `tenantguard checks` lists every check code the library knows.
function TestTool:test_checks_list()
  local rc, out = H.run_tool("checks")
  lu.assertEquals(rc, 0)
  for _, c in ipairs(tg.checks()) do lu.assertStrContains(out, c.code) end
end

os.exit(lu.LuaUnit.run())
