-- The whole PostgreSQL rollout on the storefront example (per-table names, a table named
-- "order", WITHOUT ROWID tables with composite keys and no id column, views): phases 1 and
-- 1.5, the backfill, the quarantine of orphans (rows with no id column named by their
-- primary key, as on SQLite), phase 3, validation all zero, the matrix with every mutant;
-- and the same on the ledger example (keys of (tenant_id, id)). Against the ctest
-- fixture's throwaway cluster; skipped without TG_PG_URI.
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

-- The ledger example (every tenant-owned table keyed (tenant_id, id), ids repeating across
-- tenants, composite foreign keys): the Citus lint against PostgreSQL's catalog, then the
-- whole rollout with the backfill in small batches, the quarantine of the hard-deleted
-- company's rows, phase 3 and the spec's validation SQL by hand; an update through the
-- context touches one tenant's invoice 1 only; the matrix with every mutant.
function TestPgExampleRollout:test_ledger_whole_rollout()
  local S = "tgx_ledger"
  local path = H.tmpdir() .. "/ledger.db"
  local info = dofile(H.source_dir .. "/examples/ledger/data.lua").create(path)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(S, S, S))
  local own, app = in_schema(OWNER, S), in_schema(APP, S)
  local rc, out = tool(("pg-load --from %s --to %s --grant-to tg_app --uuid-columns none")
    :format(sh_quote(path), sh_quote(own)))
  lu.assertEquals(rc, 0, out)
  local rules = H.source_dir .. "/examples/ledger/rules"
  local function run(cmd, db)
    local c, o = tool(cmd .. " --db " .. sh_quote(db or own) .. " --rules " .. sh_quote(rules))
    lu.assertEquals(c, 0, cmd .. ": " .. o)
    return o
  end
  -- the composite keys arrived, and the schema is ready for Citus as it stands
  lu.assertEquals(psql(own, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid "
    .. "= 'invoice_lines'::regclass AND contype = 'f'"),
    "FOREIGN KEY (tenant_id, invoice_id) REFERENCES invoices(tenant_id, id)")
  local lint = run("lint --strict --target citus")
  lu.assertStrContains(lint, "0 errors, 0 warnings")
  lu.assertNotStrContains(lint, "citus_key_without_tenant")
  lu.assertStrContains(run("rollout --plan --target citus"), "(none to change)")

  run("rollout add_columns")
  run("rollout enforce_writes")
  run("backfill --batch-rows 50")
  lu.assertStrMatches(run("worker --quiet --batch-ms 1"), "worker: %d+ batches.*")
  local orphans = 0
  for _, n in pairs(info.orphans) do orphans = orphans + n end
  lu.assertStrContains(run("rollout quarantine_orphans"), "moved to tenantguard_quarantine")
  lu.assertEquals(psql(own, "SELECT count(*) FROM tenantguard_quarantine"), tostring(orphans))
  -- a quarantined row keeps its tenant beside its id: (99, 1) is not anyone else's invoice 1
  lu.assertEquals(psql(own, "SELECT tenant_id || ':' || row_id FROM tenantguard_quarantine "
    .. "WHERE table_name = 'invoices' AND row_json::json->>'id' = '1'"), "99:1")
  lu.assertStrContains(run("validate"), "all zero")
  run("rollout enforce_constraints")
  lu.assertStrContains(run("validate"), "all zero")
  -- the spec's validation SQL, as a DBA runs it
  for _, t in ipairs { "customers", "invoices", "invoice_lines", "documents", "payments" } do
    lu.assertEquals(psql(own, ("SELECT count(*) FROM %s WHERE workspace_id IS NULL"):format(t)),
      "0", t)
    lu.assertEquals(psql(own, ("SELECT count(*) FROM %s r JOIN tenants t ON t.id = r.tenant_id "
      .. "WHERE r.workspace_id IS NOT NULL AND r.workspace_id <> t.workspace_id"):format(t)),
      "0", t)
  end
  -- an update of invoice 1 in company 1, as the application's role, leaves invoice 1 of every
  -- other company exactly as it was
  local function others()
    return psql(own, "SELECT string_agg(row_to_json(i)::text, '|' ORDER BY tenant_id) FROM "
      .. "invoices i WHERE id = 1 AND tenant_id <> 1")
  end
  local before = others()
  local eng = H.tg.open { db = app, rules = rules }
  local live = psql(own, "SELECT min(id) FROM invoices WHERE tenant_id = 1 AND status <> 'void' "
    .. "AND id IN (SELECT id FROM invoices WHERE tenant_id = 2)")
  local ctx = eng:context { user = 2, workspace = 1, tenant = 1 }
  local d = ctx:update("Invoice", math.tointeger(tonumber(live)), { total_cents = 4242 })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(psql(own, "SELECT total_cents FROM invoices WHERE tenant_id = 1 AND id = "
    .. live), "4242")
  lu.assertNotEquals(psql(own, "SELECT total_cents FROM invoices WHERE tenant_id = 2 AND id = "
    .. live), "4242")
  if live == "1" then lu.assertEquals(others(), before) end
  d = ctx:update("Invoice", 1, { total_cents = 4343 })
  lu.assertEquals(others(), before, "another company's invoice 1 changed")
  eng:close()
  local m = run("matrix --mutate", app)
  lu.assertStrContains(m, "12 mutants, 12 caught")
  lu.assertStrMatches(m, ".*matrix: %d+ scenarios, %d+ passed, 0 failed.*")
end

os.exit(lu.LuaUnit.run())
