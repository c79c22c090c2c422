-- The rollout on PostgreSQL, as the tables' owner (tg_owner), on a reference database loaded
-- into a schema of its own: phase 1 adds the columns without rewriting a table and builds
-- valid indexes concurrently, an index left INVALID by an interrupted build is built again,
-- a long transaction makes a phase wait politely (the application's queries keep flowing)
-- or give up clearly, phase 3 is refused while rows are unbound and then leaves NOT NULL
-- columns and validated constraints, the spec's validation SQL returns zero, every phase
-- rerun changes nothing, and every phase leaves audit entries. Against the ctest fixture's
-- throwaway cluster; skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"
local refdb = require "refdb"
local tg = H.tg

local APP, OWNER, ADMIN = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI"),
  os.getenv("TG_PG_ADMIN_URI")
if not APP or not OWNER or not ADMIN then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local SCHEMA = "tgr_rollout"
local TABLES = {}
for _, t in ipairs(refdb.tables) do TABLES[#TABLES + 1] = t.name end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function in_schema(uri)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. SCHEMA
end
local OWNER_S, APP_S, ADMIN_S = in_schema(OWNER), in_schema(APP), in_schema(ADMIN)

local function psql(uri, sql)
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sh_quote(uri) .. " -c " .. sh_quote(sql) .. " 2>&1")
  local out = p:read("a")
  assert(p:close(), "psql: " .. out)
  return (out:gsub("\n$", ""))
end

-- psql that may fail: ok, output
local function psql_try(uri, sql)
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sh_quote(uri) .. " -c " .. sh_quote(sql) .. " 2>&1")
  local out = p:read("a")
  return p:close() == true, out
end

local path
-- A fresh copy of the reference database in SCHEMA, readable and writable by tg_app.
local function load()
  path = path or H.refdb(40)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(SCHEMA, SCHEMA, SCHEMA))
  local p = io.popen(("'%s' pg-load --from %s --to %s --grant-to tg_app 2>&1"):format(H.tool,
    sh_quote(path), sh_quote(OWNER_S)))
  local out = p:read("a")
  assert(p:close(), out)
end

local function open(uri) return tg.open { db = uri or OWNER_S, rules = H.shipped_rules } end

local function phase(eng, name, opts)
  local ok, msg, code = eng:rollout(name, opts)
  lu.assertTrue(ok, ("%s: %s (%s)"):format(name, tostring(msg), tostring(code)))
  return msg
end

-- What a user can see of the schema tenantguard touches: columns (type, NULL), indexes
-- (validity) and constraints (validation) of every table, one line each.
local function schema_facts()
  return psql(OWNER, ([[
    SELECT string_agg(x, E'\n' ORDER BY x) FROM (
      SELECT c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
             || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END AS x
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
       WHERE c.relnamespace = '%s'::regnamespace AND c.relkind = 'r' AND a.attnum > 0
         AND NOT a.attisdropped
      UNION ALL
      SELECT 'index ' || ic.relname || ' valid=' || i.indisvalid
        FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
       WHERE ic.relnamespace = '%s'::regnamespace
      UNION ALL
      SELECT 'constraint ' || k.conrelid::regclass || '.' || k.conname || ' ' || CAST(k.contype AS text)
             || ' validated=' || k.convalidated
        FROM pg_constraint k WHERE k.connamespace = '%s'::regnamespace) s]]):format(SCHEMA,
    SCHEMA, SCHEMA))
end

local function relfilenodes()
  local out = {}
  for _, t in ipairs(TABLES) do
    out[t] = psql(OWNER, ("SELECT relfilenode FROM pg_class WHERE oid = '%s.%s'::regclass")
      :format(SCHEMA, t))
  end
  return out
end

local function audit_count(action)
  return tonumber(psql(OWNER_S, ("SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.rollout.%s'"):format(action)))
end

-- Phase 1.5, by the write guard in the server when it is there; until it is, a stand-in
-- trigger of tenantguard's on each table (what phase 3 checks for).
local function guard(eng)
  local ok, a, b = pcall(eng.rollout, eng, "enforce_writes")
  if ok and a then return end
  local msg = tostring(ok and b or a)
  assert(msg:find("not available on PostgreSQL yet", 1, true), msg)
  local sql = { "CREATE OR REPLACE FUNCTION tenantguard_standin() RETURNS trigger LANGUAGE "
    .. "plpgsql AS 'BEGIN RETURN NEW; END';" }
  for _, t in ipairs(TABLES) do
    sql[#sql + 1] = ("CREATE TRIGGER tenantguard_%s_standin BEFORE INSERT ON %s FOR EACH ROW "
      .. "EXECUTE FUNCTION tenantguard_standin();"):format(t, t)
  end
  psql(OWNER_S, table.concat(sql, " "))
end

-- The backfill's work, done by hand (the PostgreSQL backfill is tested on its own).
local function fill()
  local sql = {}
  for _, t in ipairs(TABLES) do
    sql[#sql + 1] = ("UPDATE %s AS r SET workspace_id = x.workspace_id FROM tenants x WHERE "
      .. "x.id = r.tenant_id AND r.workspace_id IS NULL;"):format(t)
  end
  sql[#sql + 1] = "UPDATE audit_logs AS r SET workspace_id = x.workspace_id FROM tenants x "
    .. "WHERE x.id = r.tenant_id AND r.workspace_id IS NULL;"
  psql(OWNER_S, table.concat(sql, " "))
end

-- The spec's validation SQL, as a DBA runs it by hand: one count per check.
local function spec_validation()
  local out = {}
  for _, t in ipairs(TABLES) do
    out[#out + 1] = ("%s null %s"):format(t, psql(OWNER_S,
      ("SELECT count(*) FROM %s WHERE workspace_id IS NULL"):format(t)))
    out[#out + 1] = ("%s mismatch %s"):format(t, psql(OWNER_S, ("SELECT count(*) FROM %s JOIN "
      .. "tenants ON tenants.id = %s.tenant_id WHERE %s.workspace_id IS NOT NULL AND "
      .. "%s.workspace_id <> tenants.workspace_id"):format(t, t, t, t)))
  end
  out[#out + 1] = "audit_logs invariant " .. psql(OWNER_S, "SELECT count(*) FROM audit_logs "
    .. "WHERE tenant_id IS NOT NULL AND workspace_id IS NULL")
  return out
end

local function all_zero(lines)
  local bad = {}
  for _, l in ipairs(lines) do if not l:match(" 0$") then bad[#bad + 1] = l end end
  return bad
end

-- Another session holds `mode` on `table` inside a transaction for `seconds`, in the
-- background; returns once the lock is granted.
local function hold_lock(table_name, mode, seconds)
  local want = ({ ["ACCESS SHARE"] = "AccessShareLock", ["ROW EXCLUSIVE"] = "RowExclusiveLock" })[mode]
  local p = io.popen("env -u LD_PRELOAD psql -X -q -d " .. sh_quote(OWNER_S) .. " -c "
    .. sh_quote(("BEGIN; LOCK TABLE %s IN %s MODE; SELECT pg_sleep(%d); COMMIT"):format(
      table_name, mode, seconds)) .. " >/dev/null 2>&1 & echo started")
  p:read("a")
  p:close()
  for _ = 1, 200 do
    if psql(ADMIN, ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        .. "WHERE c.relname = '%s' AND c.relnamespace = '%s'::regnamespace AND l.mode = '%s' "
        .. "AND l.granted"):format(table_name, SCHEMA, want)) ~= "0" then
      return
    end
    os.execute("sleep 0.05")
  end
  error("the lock was never taken")
end

-- Until the holder is gone (so the next test starts clean).
local function wait_unlocked(table_name)
  for _ = 1, 400 do
    if psql(ADMIN, ("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        .. "WHERE c.relname = '%s' AND c.relnamespace = '%s'::regnamespace")
        :format(table_name, SCHEMA)) == "0" then
      return
    end
    os.execute("sleep 0.05")
  end
end

TestPgRollout = {}

function TestPgRollout:setUp() load() end

-- Phase 1: every table gets a nullable workspace_id of the workspaces' key type, without a
-- rewrite (same relfilenode), and two valid indexes; a rerun changes nothing; drop_columns
-- undoes it, again without a rewrite.
function TestPgRollout:test_add_columns_without_rewrite()
  local before = relfilenodes()
  local eng = open()
  local msg = phase(eng, "add_columns")
  lu.assertStrContains(msg, "12 columns added")
  lu.assertEquals(relfilenodes(), before)
  for _, t in ipairs(TABLES) do
    lu.assertEquals(psql(OWNER_S, ("SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull "
      .. "FROM pg_attribute WHERE attrelid = '%s'::regclass AND attname = 'workspace_id'")
      :format(t)), "bigint false", t)
  end
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) || ' ' || count(*) FILTER (WHERE "
    .. "i.indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE "
    .. "c.relnamespace = '%s'::regnamespace AND c.relname LIKE 'tenantguard%%'"):format(SCHEMA)),
    "24 24")
  -- the new column is usable by the application at once (raw SQL as tg_app)
  lu.assertEquals(psql(APP_S, "SELECT count(*) FROM policies WHERE workspace_id IS NULL"), "40")
  local facts = schema_facts()
  lu.assertStrContains(phase(eng, "add_columns"), "0 columns added")
  lu.assertEquals(schema_facts(), facts)
  lu.assertEquals(audit_count("add_columns"), 2)
  lu.assertStrContains(phase(eng, "drop_columns"), "12 columns dropped")
  lu.assertEquals(relfilenodes(), before)
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) FROM pg_attribute a JOIN pg_class c ON "
    .. "c.oid = a.attrelid WHERE c.relnamespace = '%s'::regnamespace AND a.attname = "
    .. "'workspace_id' AND NOT a.attisdropped AND CAST(c.relname AS text) = ANY (ARRAY['%s'])")
    :format(SCHEMA, table.concat(TABLES, "','"))), "0")
  lu.assertEquals(audit_count("drop_columns"), 1)
  eng:close()
end

-- A build that did not finish leaves an INVALID index (simulated as the server leaves it):
-- the next run finds it, drops it and builds it again.
function TestPgRollout:test_invalid_index_is_redone()
  local eng = open()
  phase(eng, "add_columns")
  local name = SCHEMA .. ".tenantguard_findings_workspace"
  local oid = psql(OWNER, ("SELECT '%s'::regclass::oid"):format(name))
  psql(ADMIN, ("UPDATE pg_index SET indisvalid = false WHERE indexrelid = '%s'::regclass")
    :format(name))
  local msg = phase(eng, "add_columns")
  lu.assertStrContains(msg, "1 index built concurrently (1 invalid one redone)")
  lu.assertEquals(psql(OWNER, ("SELECT indisvalid FROM pg_index WHERE indexrelid = "
    .. "'%s'::regclass"):format(name)), "t")
  lu.assertNotEquals(psql(OWNER, ("SELECT '%s'::regclass::oid"):format(name)), oid)
  lu.assertStrContains(phase(eng, "add_columns"), "0 indexes built")
  eng:close()
end

-- A long transaction reads findings (ACCESS SHARE) for 4 s. Phase 1 needs a short ACCESS
-- EXCLUSIVE lock on it: it gives way every lock_timeout and retries, so the application's
-- queries on that table never queue behind it for long, and it finishes once the
-- transaction ends. Without lock_timeout, the ALTER would wait in the lock queue and every
-- query of findings with it, for the whole 4 s.
function TestPgRollout:test_waits_politely_for_a_long_transaction()
  local log = os.tmpname()
  hold_lock("findings", "ACCESS SHARE", 4)
  -- the application, meanwhile: a query of findings every 100 ms for 6 s, each timed
  local loop = ("i=0; while [ $i -lt 40 ]; do s=$(date +%%s%%N); env -u LD_PRELOAD psql -X -q "
    .. "-A -t -d %s -c 'SELECT count(*) FROM findings' >/dev/null 2>&1 || echo fail >> %s; "
    .. "e=$(date +%%s%%N); echo $(( (e - s) / 1000000 )) >> %s; i=$((i+1)); sleep 0.1; done; "
    .. "echo done >> %s")
    :format(sh_quote(APP_S), log, log, log)
  local p = io.popen("sh -c " .. sh_quote(loop) .. " >/dev/null 2>&1 & echo started")
  p:read("a")
  p:close()
  local eng = open()
  local msg = phase(eng, "add_columns")
  eng:close()
  wait_unlocked("findings")
  local times, failed, done
  for _ = 1, 300 do -- the application's loop ends
    times, failed, done = {}, 0, false
    for line in io.lines(log) do
      if line == "fail" then failed = failed + 1
      elseif line == "done" then done = true
      else times[#times + 1] = tonumber(line) end
    end
    if done then break end
    os.execute("sleep 0.1")
  end
  os.remove(log)
  lu.assertEquals(failed, 0)
  lu.assertTrue(#times >= 10, "the application's queries ran " .. #times .. " times")
  table.sort(times)
  -- the slowest: a psql start plus at most one lock_timeout (200 ms), far from the 4 s the
  -- transaction held the lock
  lu.assertTrue(times[#times] < 2000, "a query of findings waited " .. times[#times] .. " ms")
  -- it had to give way, and still finished: the column is there
  lu.assertStrContains(msg, "gave way to another transaction's lock")
  lu.assertEquals(psql(OWNER_S, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
    .. "'findings'::regclass AND attname = 'workspace_id'"), "1")
  lu.assertEquals(psql(OWNER_S, "SELECT count(*) FROM pg_index WHERE indrelid = "
    .. "'findings'::regclass AND NOT indisvalid"), "0")
end

-- Given a short retry budget, a phase that cannot take its lock fails clearly: it names the
-- table, the lock wait and who holds it; the tables done before it keep their column, the
-- rest are untouched, and a rerun once the transaction ends finishes the phase.
function TestPgRollout:test_gives_up_clearly_and_resumes()
  hold_lock("findings", "ACCESS SHARE", 4)
  local eng = open()
  local ok, msg, code = eng:rollout("add_columns", { lock_timeout_ms = 50, lock_retry_ms = 600 })
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_BUSY")
  lu.assertStrContains(msg, "'findings'")
  lu.assertStrContains(msg, "lock_timeout (50 ms)")
  lu.assertStrContains(msg, "AccessShareLock")
  lu.assertStrContains(msg, "run the phase again")
  lu.assertEquals(psql(OWNER_S, "SELECT count(*) FROM pg_attribute WHERE attrelid = "
    .. "'findings'::regclass AND attname = 'workspace_id'"), "0")
  wait_unlocked("findings")
  lu.assertStrContains(phase(eng, "add_columns"), "columns added")
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) FROM pg_attribute a JOIN pg_class c ON "
    .. "c.oid = a.attrelid WHERE c.relnamespace = '%s'::regnamespace AND a.attname = "
    .. "'workspace_id' AND CAST(c.relname AS text) = ANY (ARRAY['%s'])"):format(SCHEMA,
    table.concat(TABLES, "','"))), "12")
  -- bad options are the caller's mistake
  lu.assertError(eng.rollout, eng, "add_columns", { lock_timeout_ms = 0 })
  lu.assertError(eng.rollout, eng, "add_columns", { lock_wait = 5 })
  eng:close()
end

-- Phase 3: refused while any row is unbound or bound to the wrong workspace (validation
-- agrees with the spec's SQL); after the backfill and the quarantine of orphans it leaves
-- NOT NULL columns and validated constraints, the spec's validation SQL returns zero, a
-- wrong write is refused by the server, and a rerun changes nothing.
function TestPgRollout:test_enforce_constraints()
  local eng = open()
  phase(eng, "add_columns")
  guard(eng)
  local ok, msg, code = eng:rollout("enforce_constraints")
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED")
  lu.assertStrContains(msg, "null_workspace policies: 40")
  fill()
  -- a row bound to another tenant's workspace: both validations see it, phase 3 refuses
  -- (the write guard refuses such a write: the owner switches it off for this one, as a
  -- buggy migration run with triggers disabled would)
  psql(OWNER_S, "ALTER TABLE policies DISABLE TRIGGER USER; "
    .. "UPDATE policies SET workspace_id = (SELECT min(w.id) FROM workspaces w WHERE "
    .. "w.id <> policies.workspace_id) WHERE id = (SELECT min(id) FROM policies p WHERE "
    .. "EXISTS (SELECT 1 FROM tenants t WHERE t.id = p.tenant_id)); "
    .. "ALTER TABLE policies ENABLE TRIGGER USER")
  local mism = {}
  for _, l in ipairs(all_zero(spec_validation())) do
    if l:find("mismatch") then mism[#mism + 1] = l end
  end
  lu.assertEquals(mism, { "policies mismatch 1" })
  local counts = {}
  for _, c in ipairs(eng:validate().checks) do
    if c.count ~= 0 then counts[#counts + 1] = c.name .. " " .. c.table .. " " .. c.count end
  end
  -- the orphans (their tenant is gone) are unbound rows for the library, not for the spec's
  -- join, which cannot see them
  lu.assertItemsEquals(counts, (function()
    local want = { "workspace_mismatch policies 1" }
    for _, t in ipairs(TABLES) do
      want[#want + 1] = "null_workspace " .. t .. " " .. psql(OWNER_S, ("SELECT count(*) FROM "
        .. "%s WHERE workspace_id IS NULL"):format(t))
    end
    return want
  end)())
  ok, msg = eng:rollout("enforce_constraints")
  lu.assertNil(ok)
  lu.assertStrContains(msg, "workspace_mismatch policies: 1")
  psql(OWNER_S, "UPDATE policies p SET workspace_id = t.workspace_id FROM tenants t WHERE "
    .. "t.id = p.tenant_id")
  -- the orphans go to the quarantine, whole rows as JSON
  local moved = phase(eng, "quarantine_orphans")
  lu.assertStrContains(moved, "moved to tenantguard_quarantine")
  lu.assertEquals(psql(OWNER_S, "SELECT count(*) FROM tenantguard_quarantine WHERE table_name "
    .. "= 'policies' AND CAST(row_json AS json)->>'display_name' IS NOT NULL"), "1")
  lu.assertStrContains(phase(eng, "quarantine_orphans"), "0 rows")
  lu.assertTrue(eng:validate().ok)
  lu.assertEquals(audit_count("enforce_constraints"), 0)
  msg = phase(eng, "enforce_constraints")
  lu.assertStrContains(msg, "13 tables changed")
  -- NOT NULL everywhere, every constraint validated, no CHECK left behind, the tenants key
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) FROM pg_attribute a JOIN pg_class c ON "
    .. "c.oid = a.attrelid WHERE a.attname = 'workspace_id' AND a.attnotnull AND "
    .. "CAST(c.relname AS text) = ANY (ARRAY['%s']) AND c.relnamespace = '%s'::regnamespace"):format(
    table.concat(TABLES, "','"), SCHEMA)), "12")
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) || ' ' || count(*) FILTER (WHERE "
    .. "convalidated) FROM pg_constraint WHERE connamespace = '%s'::regnamespace AND conname "
    .. "LIKE 'tenantguard%%' AND contype <> 'p'"):format(SCHEMA)), "26 26")
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) FROM pg_constraint WHERE connamespace = "
    .. "'%s'::regnamespace AND conname = 'tenantguard_workspace_not_null'"):format(SCHEMA)), "0")
  lu.assertEquals(psql(OWNER_S, "SELECT contype FROM pg_constraint WHERE conrelid = "
    .. "'tenants'::regclass AND conname = 'tenantguard_tenants_id_workspace'"), "u")
  lu.assertEquals(all_zero(spec_validation()), {})
  -- the server refuses what the rollout forbids
  local insert_wrong = "INSERT INTO policies (tenant_id, workspace_id, display_name, "
    .. "policy_type, created_at) SELECT t.id, w.id, 'x', 'y', 'now' FROM tenants t, "
    .. "workspaces w WHERE w.id <> t.workspace_id LIMIT 1"
  local wrong, out = psql_try(OWNER_S, insert_wrong)
  lu.assertFalse(wrong)
  lu.assertStrContains(out, "[workspace_matches_tenant]") -- the write guard first
  -- and the composite foreign key behind it, were the triggers switched off
  wrong, out = psql_try(OWNER_S, "BEGIN; ALTER TABLE policies DISABLE TRIGGER USER; "
    .. insert_wrong .. "; COMMIT")
  lu.assertFalse(wrong)
  lu.assertStrContains(out, "tenantguard_tenant_workspace")
  lu.assertEquals(psql(OWNER_S, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
    .. "'policies'::regclass AND NOT tgisinternal AND tgenabled = 'D'"), "0")
  wrong, out = psql_try(OWNER_S, "INSERT INTO audit_logs (tenant_id, action, created_at) "
    .. "SELECT min(id), 'x', 'now' FROM tenants")
  lu.assertFalse(wrong)
  -- a rerun changes nothing; undoing phase 1 or 1.5 is refused now
  local facts = schema_facts()
  lu.assertStrContains(phase(eng, "enforce_constraints"), "0 tables changed")
  lu.assertEquals(schema_facts(), facts)
  ok, msg, code = eng:rollout("drop_columns")
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED")
  lu.assertStrContains(msg, "prefer a forward fix")
  ok, msg = eng:rollout("drop_triggers")
  lu.assertNil(ok)
  lu.assertStrContains(msg, "drop_triggers refused")
  lu.assertEquals(audit_count("enforce_constraints"), 13)
  lu.assertTrue(audit_count("quarantine_orphans") >= 12)
  eng:close()
end

-- A phase 3 stopped half-way (a CHECK added NOT VALID, a foreign key not validated yet) is
-- finished by running it again.
function TestPgRollout:test_enforce_constraints_resumes()
  local eng = open()
  phase(eng, "add_columns")
  guard(eng)
  fill()
  phase(eng, "quarantine_orphans")
  psql(OWNER_S, "ALTER TABLE findings ADD CONSTRAINT tenantguard_workspace_not_null CHECK "
    .. "(workspace_id IS NOT NULL) NOT VALID; ALTER TABLE policies ADD CONSTRAINT "
    .. "tenantguard_workspace FOREIGN KEY (workspace_id) REFERENCES workspaces (id) NOT VALID; "
    .. "CREATE UNIQUE INDEX tenantguard_tenants_id_workspace ON tenants (id, workspace_id)")
  psql(ADMIN_S, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = "
    .. "'tenantguard_tenants_id_workspace'::regclass")
  phase(eng, "enforce_constraints")
  lu.assertEquals(psql(OWNER_S, ("SELECT count(*) || ' ' || count(*) FILTER (WHERE "
    .. "convalidated) FROM pg_constraint WHERE connamespace = '%s'::regnamespace AND conname "
    .. "LIKE 'tenantguard%%' AND contype <> 'p'"):format(SCHEMA)), "26 26")
  lu.assertEquals(psql(OWNER_S, "SELECT attnotnull FROM pg_attribute WHERE attrelid = "
    .. "'findings'::regclass AND attname = 'workspace_id'"), "t")
  eng:close()
end

-- An orphan whose delete would cascade (policy_versions ON DELETE CASCADE, the version's
-- tenant still existing) is refused, and the phase, one transaction, moves nothing at all.
function TestPgRollout:test_quarantine_refuses_a_cascade()
  local eng = open()
  phase(eng, "add_columns")
  psql(OWNER_S, "UPDATE policy_versions v SET tenant_id = (SELECT min(id) FROM tenants) WHERE "
    .. "policy_id IN (SELECT p.id FROM policies p WHERE NOT EXISTS (SELECT 1 FROM tenants t "
    .. "WHERE t.id = p.tenant_id))")
  local ok, msg, code = eng:rollout("quarantine_orphans")
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED")
  lu.assertStrContains(msg, "quarantine of 'policies' refused")
  lu.assertStrContains(msg, "cascade")
  lu.assertEquals(psql(OWNER_S, "SELECT count(*) FROM tenantguard_quarantine"), "0")
  lu.assertEquals(audit_count("quarantine_orphans"), 0)
  eng:close()
end

-- Validation on PostgreSQL before the rollout: every row is unbound, as on SQLite.
function TestPgRollout:test_validate_before_the_rollout()
  local eng = open(APP_S)
  local v = eng:validate()
  lu.assertFalse(v.ok)
  local lite = tg.open { db = path, rules = H.shipped_rules }
  local want = lite:validate()
  lite:close()
  lu.assertEquals(v, want)
  eng:close()
end

os.exit(lu.LuaUnit.run())
