-- tenantguard.luaunit: the guard-scenario matrix as LuaUnit test classes, one per family
-- (and scope exception), one test per scenario. A user's isolation test is a few lines:
--
--   local lu = require "luaunit"
--   require("tenantguard.luaunit").install { db = "app.db", rules = "rules" }
--   os.exit(lu.LuaUnit.run())
--
-- and runs with LuaUnit's usual options and outputs (-v, -p PATTERN, -o junit -n FILE).
-- The matrix runs once, when the first test asks for it, inside a rolled-back transaction.
-- A broken guard is a test FAILURE (LuaUnit's failure, counted with the failures), its
-- message naming the family, scenario, actor and offending row; a matrix that cannot run at
-- all is an error.
local tg = require "tenantguard"

local M = {}

local function class_name(family)
  return "TestIsolation" .. family:gsub("[^%w]", "")
end

local function test_name(row, seen)
  local base = ("test_%s_%s"):format(row.scenario_type, row.path)
  if row.declared then base = base .. "_declared" end
  local name, n = base, 1
  while seen[name] do
    n = n + 1
    name = base .. "_" .. n
  end
  seen[name] = true
  return name
end

-- The failure message: the scenario's first failure ("family F, scenario (path): what as
-- actor: failure"), then every failed check with its actor and the offending row.
local function describe(result)
  local lines = { result.message or "failed" }
  for _, c in ipairs(result.checks or {}) do
    if not c.pass then
      lines[#lines + 1] = ("  - family %s, scenario %s (%s), actor %s: %s: %s%s"):format(
        result.family, result.scenario_type, result.path, c.actor, c.what,
        c.failure or "failed", c.row and ("; row: " .. c.row) or "")
    end
  end
  return table.concat(lines, "\n")
end

-- Fails the running test the way LuaUnit's own assertions do, so LuaUnit counts a failure
-- (not an error) and prints no traceback into tenantguard. The failure is LuaUnit's
-- FAILURE_PREFIX on a message without a position (lu.fail would add this file's line);
-- without LuaUnit loaded it is a plain error.
local function fail(msg)
  local ok, lu = pcall(require, "luaunit")
  if ok and type(lu) == "table" and type(lu.FAILURE_PREFIX) == "string" then
    error(lu.FAILURE_PREFIX .. msg, 0)
  elseif ok and type(lu) == "table" and lu.fail then
    lu.fail(msg)
  end
  error(msg, 0)
end

-- Defines the test classes as globals (LuaUnit finds classes by their global name) and
-- returns them. opts: db, rules (paths), or engine (an open engine); prefix (default
-- "TestIsolation"); env (default _G).
function M.install(opts)
  opts = opts or {}
  local env = opts.env or _G
  local eng = opts.engine or tg.open { db = opts.db, rules = opts.rules }
  local rows = eng:matrix()
  local results
  local function run()
    if not results then
      local r, err = eng:run_matrix(opts.mutation)
      if not r then error("tenantguard: the matrix could not run: " .. tostring(err), 0) end
      results = r
    end
    return results
  end
  local classes, seen = {}, {}
  for i, row in ipairs(rows) do
    local cname = (opts.prefix and (opts.prefix .. row.family:gsub("[^%w]", "")))
      or class_name(row.family)
    local class = classes[cname]
    if not class then
      class = {}
      classes[cname] = class
      seen[cname] = {}
      env[cname] = class
    end
    local index = i
    class[test_name(row, seen[cname])] = function()
      local result = run()[index]
      assert(result and result.family == row.family
        and result.scenario_type == row.scenario_type,
        "tenantguard: the matrix changed while running")
      if not result.pass then fail(describe(result)) end
    end
  end
  return classes, eng
end

return M
