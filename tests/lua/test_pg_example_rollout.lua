-- The whole PostgreSQL rollout on the storefront example (per-table names, a table named
-- "order", WITHOUT ROWID tables with composite keys and no id column, views): phases 1 and
-- 1.5, the backfill, the quarantine of orphans (rows with no id column named by their
-- primary key, as on SQLite), phase 3, validation all zero, the matrix with every mutant.
-- Against the ctest fixture's throwaway cluster; skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"

local APP, OWNER = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI")
if not APP or not OWNER then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end
local function psql(uri, sql)
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sh_quote(uri) .. " -c " .. sh_quote(sql) .. " 2>&1")
  local out = p:read("a")
  assert(p:close(), "psql: " .. out)
  return (out:gsub("\n$", ""))
end
local function tool(args)
  local p = io.popen("'" .. H.tool .. "' " .. args .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

TestPgExampleRollout = {}
function TestPgExampleRollout:tearDown() H.cleanup() end

function TestPgExampleRollout:test_storefront_whole_rollout()
  local S = "tgx_storefront"
  local path = H.tmpdir() .. "/storefront.db"
  dofile(H.source_dir .. "/examples/storefront/data.lua").create(path)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(S, S, S))
  local own, app = in_schema(OWNER, S), in_schema(APP, S)
  local rc, out = tool(("pg-load --from %s --to %s --grant-to tg_app --uuid-columns none")
    :format(sh_quote(path), sh_quote(own)))
  lu.assertEquals(rc, 0, out)
  local f = assert(io.open(H.source_dir .. "/examples/storefront/views.pg.sql"))
  psql(own, f:read("a"))
  f:close()
  local rules = sh_quote(H.source_dir .. "/examples/storefront/rules")
  local function run(cmd, db)
    local c, o = tool(cmd .. " --db " .. sh_quote(db or own) .. " --rules " .. rules)
    lu.assertEquals(c, 0, cmd .. ": " .. o)
    return o
  end
  run("rollout add_columns")
  run("rollout enforce_writes")
  run("backfill")
  run("worker --quiet")
  lu.assertStrContains(run("rollout quarantine_orphans"), "moved to tenantguard_quarantine")
  -- a composite-key table without an id column: its rows are named by their primary key
  local named = psql(own, "SELECT row_id FROM tenantguard_quarantine WHERE table_name = "
    .. "'ticket_tags' LIMIT 1")
  lu.assertStrMatches(named, "^%[.*%]$")
  lu.assertStrContains(run("validate"), "all zero")
  run("rollout enforce_constraints")
  lu.assertStrContains(run("validate"), "all zero")
  local m = run("matrix --mutate", app)
  lu.assertStrContains(m, "12 mutants, 12 caught")
  lu.assertStrMatches(m, ".*matrix: %d+ scenarios, %d+ passed, 0 failed.*")
end

os.exit(lu.LuaUnit.run())
