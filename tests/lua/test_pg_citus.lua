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

-- ---------------------------------------------------------------------------------------
-- Distributed mode and (tenant, id) keys on PostgreSQL (SQLite: test_distributed.lua).

local O = require "oracle"
local K = require "tenant_keyed"

-- Citus defines the setting citus.version once its library is loaded: here a connection
-- option stands in for it (a placeholder any role may set), so the automatic mode is seen
-- turning on. Nothing else of Citus is here.
function TestPgCitus:test_distributed_mode_is_automatic_on_citus()
  local uri = load(H.refdb(3))
  local citus_uri = uri .. "%20-ccitus.version%3D12.1.4"
  local function mode(db, opt)
    local eng = tg.open { rules = H.shipped_rules, db = db, distributed = opt }
    local on = eng:settings().distributed
    eng:close()
    return on
  end
  lu.assertFalse(mode(uri))
  lu.assertTrue(mode(citus_uri))
  lu.assertFalse(mode(citus_uri, false)) -- forced off
  lu.assertTrue(mode(uri, true))         -- forced on
end

function TestPgCitus:test_keys_with_the_tenant()
  local path = H.tmpdir() .. "/keyed.db"
  local db = tg.connect(path)
  db:exec(K.SCHEMA)
  db:close()
  local uri = load(path)
  local rules = H.rule_dir { ["families.lua"] = K.FAMILIES }
  local fs = tg.check { rules = rules, db = uri }
  lu.assertEquals(#H.errors(fs), 0)
  lu.assertEquals(#H.with_code(fs, "family_key_with_tenant"), 2)
  local eng = tg.open { rules = rules, db = uri }
  K.check(lu, eng)
  eng:close()
  local ok, out = run("psql -X -q -A -t -d " .. sh(in_schema(OWNER, SCHEMA)) .. " -c "
    .. sh("SELECT string_agg(tenant_id || ':' || name, ',' ORDER BY tenant_id) FROM things WHERE id = 1"))
  assert(ok, out)
  lu.assertEquals(out:gsub("%s+$", ""), "1:one of 1,2:changed in 2,3:one of 3")
end

-- Distributed mode decides on PostgreSQL as on SQLite, request for request.
function TestPgCitus:test_distributed_parity_with_sqlite()
  math.randomseed(4711)
  local path = H.refdb(30)
  local uri = load(path)
  local lite = tg.open { rules = H.shipped_rules, db = path, distributed = true }
  local pg = tg.open { rules = H.shipped_rules, db = uri .. "%20-ccitus.version%3D12.1.4" }
  lu.assertTrue(pg:settings().distributed)
  local W = O.load_world(tg, path, lite:rules())
  local gen = O.generator(W, {})
  local ctxs = { [lite] = {}, [pg] = {} }
  local function ctx(eng, u, w, t)
    local k = O.show(u) .. "/" .. O.show(w) .. "/" .. O.show(t)
    ctxs[eng][k] = ctxs[eng][k] or eng:context { user = u, workspace = w, tenant = t }
    return ctxs[eng][k]
  end
  local n = tonumber(os.getenv("TG_PARITY_REQUESTS")) or 1500
  for i = 1, n do
    local req, u, w, t = gen()
    local a = ctx(lite, u, w, t):resolve(req)
    local b = ctx(pg, u, w, t):resolve(req)
    local what = ("#%d %s %s"):format(i, O.show { u = u, w = w, t = t }, O.show(req))
    lu.assertEquals({ b.status, b.reason }, { a.status, a.reason }, what)
    lu.assertEquals(O.actual_ids(W, req, b), O.actual_ids(W, req, a), what)
  end
  lite:close()
  pg:close()
end

local rc = lu.LuaUnit.run()
run("psql -X -q -d " .. sh(OWNER) .. " -c " .. sh("DROP SCHEMA IF EXISTS " .. SCHEMA .. " CASCADE"))
os.exit(rc)
