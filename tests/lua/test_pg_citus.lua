-- lint --target citus and rollout --plan --target citus read PostgreSQL's catalog
-- (pg_constraint, pg_index, pg_attribute through the dialect's sql_keys and
-- sql_column_notnull) and say what they say from the SQLite file it was loaded from: the
-- same findings and the same plan. (Still plain PostgreSQL: Citus itself is not here.)
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local APP, OWNER = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI")
if not APP or not OWNER then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local SCHEMA = "tgcitus"

local function sh(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

local function run(cmd)
  local p = io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function load(path)
  local ok, out = run("PGOPTIONS=-cclient_min_messages=warning psql -X -q -v ON_ERROR_STOP=1 -d "
    .. sh(OWNER) .. " -c " .. sh(("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; "
    .. "GRANT USAGE ON SCHEMA %s TO tg_app"):format(SCHEMA, SCHEMA, SCHEMA)))
  assert(ok, out)
  -- the tool keeps LD_PRELOAD (a sanitizer build's Lua module needs it); psql does not
  local p = io.popen(("'%s' pg-load --from %s --to %s --grant-to tg_app 2>&1"):format(H.tool,
    sh(path), sh(in_schema(OWNER, SCHEMA))))
  out = p:read("a")
  assert(p:close(), "pg-load: " .. out)
  return in_schema(APP, SCHEMA)
end

local function lines(findings)
  local out = {}
  for _, f in ipairs(findings) do
    out[#out + 1] = ("%s %s %s %s"):format(f.where, f.level, f.code, f.message)
  end
  table.sort(out)
  return out
end

local function citus(db)
  local eng = tg.open { rules = H.shipped_rules, db = db }
  local f = assert(eng:citus_lint())
  local plan = assert(eng:citus_plan())
  eng:close()
  return f, plan:gsub("^[^\n]*\n", "") -- the first line names where the keys came from
end

TestPgCitus = {}
function TestPgCitus:tearDown() H.cleanup() end

function TestPgCitus:test_same_findings_and_plan_as_sqlite()
  local file = H.refdb(5)
  local uri = load(file)
  local f_sqlite, plan_sqlite = citus(file)
  local f_pg, plan_pg = citus(uri)
  lu.assertEquals(lines(f_pg), lines(f_sqlite))
  lu.assertEquals(plan_pg, plan_sqlite)
  -- and they found something to say (keys from pg_constraint)
  local n = 0
  for _, f in ipairs(f_pg) do
    if f.code == "citus_foreign_key_without_tenant" then n = n + 1 end
  end
  lu.assertEquals(n, 2)
  lu.assertStrContains(plan_pg, 'ALTER TABLE "policy_versions" DROP CONSTRAINT "policy_versions_policy_id_fkey";')
  lu.assertStrContains(plan_pg, "--   operation_runs alert_deliveries audit_logs")
  -- a unique index that is no constraint is read from pg_index, by its name
  local ok, out = run("psql -X -q -v ON_ERROR_STOP=1 -d " .. sh(in_schema(OWNER, SCHEMA))
    .. " -c " .. sh("CREATE UNIQUE INDEX findings_title_once ON findings (id, tenant_id); "
    .. "CREATE UNIQUE INDEX policies_name_once ON policies (display_name)"))
  assert(ok, out)
  f_pg, plan_pg = citus(uri)
  local found
  for _, f in ipairs(f_pg) do
    if f.message:find("policies: the unique index (display_name)", 1, true) then found = f end
    lu.assertNil(f.message:find("findings: the unique index", 1, true), f.message)
  end
  lu.assertNotNil(found, "the unique index without the tenant column")
  lu.assertStrContains(plan_pg, 'DROP INDEX "policies_name_once";\nALTER TABLE "policies" ADD UNIQUE ("tenant_id", "display_name");')
end

local rc = lu.LuaUnit.run()
run("psql -X -q -d " .. sh(OWNER) .. " -c " .. sh("DROP SCHEMA IF EXISTS " .. SCHEMA .. " CASCADE"))
os.exit(rc)
