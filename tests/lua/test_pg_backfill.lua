-- The backfill on PostgreSQL, as the tables' owner (tg_owner) on a copy of the reference
-- database (workspace_id added by hand: phase 1 on PostgreSQL is the rollout's): the dry run
-- counts what SQLite counts, a run binds every row to its tenant's workspace and lists what
-- it corrects and what it cannot bind, two worker processes share a run with every batch
-- applied once, pause/resume/cancel, the replay-lag hook makes a worker wait, workers killed
-- with SIGKILL at random moments, and the application writing while a worker runs, with a
-- checksum of every other column. Skipped without TG_PG_URI.
--
-- TG_CRASH_SEED=N replays the random kill schedule of a failed run (the seed is printed).
local lu = require "luaunit"
local H = require "helpers"
local U = require "rollout_util"
local tg = H.tg

local APP, OWNER, ADMIN = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI"),
  os.getenv("TG_PG_ADMIN_URI")
if not APP or not OWNER or not ADMIN then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local SEED = tonumber(os.getenv("TG_CRASH_SEED") or "") or os.time()
math.randomseed(SEED)
print(("test_pg_backfill: seed %d (TG_CRASH_SEED=%d replays it)"):format(SEED, SEED))

local TABLES = U.TABLES
local qi = U.qi
local DONE = { completed = true, completed_with_errors = true }
local sq = U.shell_quote

local function now()
  local p = io.popen("date +%s.%N")
  local s = p:read("a")
  p:close()
  return tonumber(s) or os.time()
end

local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

-- psql's output, unaligned, no headers ("|" between columns, one line a row).
local function psql(uri, sql)
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sq(uri) .. " -c " .. sq(sql) .. " 2>&1")
  local out = p:read("a")
  assert(p:close(), "psql: " .. out .. "\n" .. sql)
  return (out:gsub("\n$", ""))
end

local function rows(uri, sql)
  local out = {}
  for line in (psql(uri, sql) .. "\n"):gmatch("([^\n]*)\n") do
    if line ~= "" then
      local r = {}
      for v in (line .. "|"):gmatch("([^|]*)|") do r[#r + 1] = v end
      out[#out + 1] = r
    end
  end
  return out
end

local function value(uri, sql)
  local v = psql(uri, sql)
  return tonumber(v) or v
end

-- A fresh schema holding the reference database of `n` rows per table, with workspace_id
-- (NULL) added to the twelve tables; returns the owner's URI in it and the SQLite file the
-- data came from (untouched).
local function load(schema, n)
  local path = H.refdb(n)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s"):format(schema, schema))
  local uri = in_schema(OWNER, schema)
  local p = io.popen(("'%s' pg-load --from %s --to %s 2>&1"):format(H.tool, sq(path), sq(uri)))
  local out = p:read("a")
  assert(p:close(), out)
  local ddl = {}
  for _, t in ipairs(TABLES) do
    ddl[#ddl + 1] = ("ALTER TABLE %s ADD COLUMN workspace_id bigint"):format(qi(t))
  end
  psql(uri, table.concat(ddl, "; "))
  return uri, path
end

-- Some rows already bound (right), some bound to the wrong workspace (corrected by the run):
-- the same statements on both backends.
local SEED_BINDINGS = {
  "UPDATE policies SET workspace_id = 1 + (tenant_id - 1) / 4 WHERE id % 7 = 0 AND tenant_id "
    .. "IN (SELECT id FROM tenants)",
  "UPDATE findings SET workspace_id = 3 - (tenant_id - 1) / 4 WHERE id % 5 = 1 AND tenant_id "
    .. "IN (SELECT id FROM tenants) AND (tenant_id - 1) / 4 <> 1",
  "UPDATE backup_items SET workspace_id = 99 WHERE id % 11 = 3",
}

local function open(uri) return tg.open { db = uri, rules = H.shipped_rules } end

local function run_row(uri, id)
  local r = rows(uri, ("SELECT status, batches, rows_done, rows_set, rows_corrected, "
    .. "rows_unbound, rows_total, operation_run_id, coalesce(finished_at, '') FROM "
    .. "tenantguard_runs WHERE id = %d"):format(id))[1]
  return { status = r[1], batches = tonumber(r[2]), rows_done = tonumber(r[3]),
    rows_set = tonumber(r[4]), rows_corrected = tonumber(r[5]), rows_unbound = tonumber(r[6]),
    rows_total = tonumber(r[7]), operation_run_id = tonumber(r[8]), finished_at = r[9] }
end

-- One query per table, run as one statement: { [table] = { columns... } }.
local function per_table(uri, tables, fmt)
  local parts = {}
  for _, t in ipairs(tables) do
    parts[#parts + 1] = ("SELECT '%s', %s"):format(t, fmt:gsub("%$T", qi(t)):gsub("%$N", t))
  end
  local out = {}
  for _, r in ipairs(rows(uri, table.concat(parts, " UNION ALL "))) do
    out[r[1]] = { table.unpack(r, 2) }
  end
  return out
end

-- Rows not bound to their tenant's workspace (the orphans aside), over every table: 0 once
-- a run is done. And the orphans, whose workspace stays as it was (NULL, or the seeded 99).
local function assert_all_bound(uri, what)
  local all = { table.unpack(TABLES) }
  all[#all + 1] = "audit_logs"
  local got = per_table(uri, all, "(SELECT count(*) FROM $T r JOIN tenants x ON x.id = "
    .. "r.tenant_id WHERE r.workspace_id IS DISTINCT FROM x.workspace_id), (SELECT count(*) "
    .. "FROM $T r WHERE r.workspace_id IS NOT NULL AND r.workspace_id <> 99 AND r.tenant_id IS "
    .. "NOT NULL AND NOT EXISTS (SELECT 1 FROM tenants x WHERE x.id = r.tenant_id))")
  for _, t in ipairs(all) do
    lu.assertEquals(got[t][1], "0", what .. ": rows of " .. t .. " not bound to their "
      .. "tenant's workspace")
    lu.assertEquals(got[t][2], "0", what .. ": an orphan of " .. t .. " was bound")
  end
end

-- A checksum of every column but workspace_id of every table (tenantguard's own aside), and
-- optionally of other columns (`skip`) over the rows with id <= `upto`.
local function checksums(uri, skip, upto)
  local names = {}
  for _, r in ipairs(rows(uri, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid "
      .. "= c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname "
      .. "NOT LIKE 'tenantguard%' AND c.relname NOT IN ('audit_logs', 'operation_runs', "
      .. "'lag_sim', 'writer_log') ORDER BY 1")) do
    names[#names + 1] = r[1]
  end
  local minus = " - 'workspace_id'"
  for _, c in ipairs(skip or {}) do minus = minus .. (" - '%s'"):format(c) end
  local parts = {}
  for _, t in ipairs(names) do
    local where = upto and upto[t] and (" WHERE r.id <= %d"):format(upto[t]) or ""
    parts[#parts + 1] = ("SELECT '%s', count(*) || ':' || coalesce(md5(string_agg(CAST("
      .. "to_jsonb(r)%s AS text), '|' ORDER BY CAST(to_jsonb(r)%s AS text))), '') FROM %s r%s")
      :format(t, minus, minus, qi(t), where)
  end
  local out = {}
  for _, r in ipairs(rows(uri, table.concat(parts, " UNION ALL "))) do out[r[1]] = r[2] end
  return out
end

-- The batches of each job: the first from the start, each from where the last ended, none
-- empty, each counting exactly the rows in its range, the job's and the run's counters the
-- sums of its batches, the checkpoint the last batch's end; `grows`: tables written to
-- meanwhile (rows past the last batch).
local function assert_batches_exact(uri, run_id, what, grows)
  local jobs = rows(uri, ("SELECT id, table_name, status, coalesce(checkpoint::text, ''), "
    .. "rows_done, rows_set FROM tenantguard_jobs WHERE run_id = %d ORDER BY id"):format(run_id))
  lu.assertEquals(#jobs, #TABLES + 1, what)
  local parts = {}
  for _, job in ipairs(jobs) do
    parts[#parts + 1] = ("SELECT %d, b.id, coalesce(b.from_id::text, ''), b.to_id, b.rows, "
      .. "b.rows_set, coalesce(b.from_key, ''), b.to_key, (SELECT count(*) FROM %s r WHERE "
      .. "r.id > coalesce(b.from_id, -9223372036854775808) AND r.id <= b.to_id), (SELECT max(id) "
      .. "FROM %s) FROM tenantguard_batches b WHERE b.job_id = %d"):format(job[1], qi(job[2]),
      qi(job[2]), job[1])
  end
  local by_job = {}
  for _, b in ipairs(rows(uri, "SELECT * FROM (" .. table.concat(parts, " UNION ALL ")
      .. ") x ORDER BY 1, 4")) do
    by_job[b[1]] = by_job[b[1]] or {}
    table.insert(by_job[b[1]], { table.unpack(b, 2) })
  end
  local all_batches, all_rows, all_set = 0, 0, 0
  for _, job in ipairs(jobs) do
    local t = job[2]
    lu.assertEquals(job[3], "done", what .. ": job " .. t)
    local bs = by_job[job[1]] or {}
    lu.assertTrue(#bs > 0, what .. ": no batch for " .. t)
    local prev, n, set = nil, 0, 0
    for i, b in ipairs(bs) do
      local where = ("%s: %s batch %s (%s, %s]"):format(what, t, b[1], b[2], b[3])
      if i == 1 then
        lu.assertEquals(b[2], "", where .. ": the first batch does not start at the beginning")
      else
        lu.assertEquals(b[2], prev[3], where .. ": not contiguous with the batch before, or "
          .. "overlapping it")
      end
      lu.assertEquals(b[6], b[2], where .. ": from_key")
      lu.assertEquals(b[7], b[3], where .. ": to_key")
      lu.assertTrue(tonumber(b[4]) > 0, where .. ": no rows")
      lu.assertEquals(tonumber(b[4]), tonumber(b[8]), where .. ": rows counted vs in its range")
      n, set, prev = n + tonumber(b[4]), set + tonumber(b[5]), b
    end
    if t ~= "audit_logs" and not (grows and grows[t]) then
      lu.assertEquals(prev[3], prev[9], what .. ": the batches of " .. t .. " stop before its "
        .. "last row")
    end
    lu.assertEquals(job[4], prev[3], what .. ": checkpoint of " .. t)
    lu.assertEquals(tonumber(job[5]), n, what .. ": rows_done of " .. t)
    lu.assertEquals(tonumber(job[6]), set, what .. ": rows_set of " .. t)
    all_batches, all_rows, all_set = all_batches + #bs, all_rows + n, all_set + set
  end
  local run = run_row(uri, run_id)
  lu.assertEquals(run.batches, all_batches, what .. ": run.batches")
  lu.assertEquals(run.rows_done, all_rows, what .. ": run.rows_done")
  lu.assertEquals(run.rows_set, all_set, what .. ": run.rows_set")
end

-- The orphans, and only they, are listed as unbound by the run (NULL workspace ones: the
-- orphans bound to 99 by SEED_BINDINGS are neither corrected nor unbound, as on SQLite).
local function assert_unbound_listed(uri, run_id, what)
  local got = per_table(uri, TABLES, ("(SELECT coalesce(string_agg(id::text, ',' ORDER BY id), "
    .. "'') FROM $T r WHERE r.workspace_id IS NULL AND NOT EXISTS (SELECT 1 FROM tenants x "
    .. "WHERE x.id = r.tenant_id)), (SELECT coalesce(string_agg(row_id, ',' ORDER BY "
    .. "row_id::bigint), '') FROM tenantguard_unbound WHERE run_id = %d AND table_name = '$N' "
    .. "AND reason = 'tenant_missing')"):format(run_id))
  local listed = 0
  for _, t in ipairs(TABLES) do
    listed = listed + #got[t][2]
    lu.assertEquals(got[t][2], got[t][1], what .. ": unbound rows of " .. t)
  end
  lu.assertTrue(listed > 0, what .. ": no orphan at all")
end

local function worker_cmd(uri, extra)
  return ("%s worker --db %s --quiet%s"):format(sq(H.tool), sq(uri), extra or "")
end

local function wait_until(fn, seconds)
  local deadline = now() + seconds
  while now() < deadline do
    if fn() then return true end
    U.sleep(0.05)
  end
  return fn()
end

-- ---------------------------------------------------------------------------------------

TestPgBackfill = {}

function TestPgBackfill:tearDown() H.cleanup() end

-- The dry run counts what SQLite's counts for the same data; queueing changes no row; a
-- worker binds every row, corrects the wrong ones and lists them, lists what it cannot bind,
-- completes the run and the operation run, audited once.
function TestPgBackfill:test_dry_run_as_sqlite_then_a_run_binds_every_row()
  local uri, path = load("tgb_run", 300)
  -- the same columns and bindings in the SQLite file
  local db = tg.connect(path)
  for _, t in ipairs(TABLES) do
    db:exec(("ALTER TABLE %s ADD COLUMN workspace_id INTEGER"):format(qi(t)))
  end
  for _, sql in ipairs(SEED_BINDINGS) do db:exec(sql) end
  db:close()
  psql(uri, table.concat(SEED_BINDINGS, "; "))
  local lite = open(path)
  local want = assert(lite:backfill { dry_run = true })
  lite:close()
  local eng = open(uri)
  local got = assert(eng:backfill { dry_run = true })
  lu.assertEquals(got, want, "the dry run on PostgreSQL vs SQLite")
  lu.assertTrue(want.totals.mismatched > 0 and want.totals.correct > 0
    and want.totals.cannot_bind > 0)

  local before = checksums(uri)
  local nulls = value(uri, "SELECT count(*) FROM policies WHERE workspace_id IS NULL")
  local run = assert(eng:backfill { batch_rows = 64, batch_ms = 20 })
  lu.assertEquals(run.status, "queued")
  -- with no worker running, the run exists and no row changes
  lu.assertEquals(value(uri, "SELECT count(*) FROM policies WHERE workspace_id IS NULL"), nulls)
  lu.assertEquals(value(uri, ("SELECT status FROM operation_runs WHERE id = %d")
    :format(run.operation_run)), "queued")
  local seen = 0
  local r = assert(eng:work { progress = function(p)
    seen = seen + 1
    lu.assertTrue(p.batch_rows > 0 and p.next_batch_rows >= 50 and p.table ~= nil)
  end })
  lu.assertTrue(r.idle)
  lu.assertEquals(seen, r.batches)
  lu.assertTrue(r.batches > #TABLES, "several batches per table: " .. r.batches)
  local info = assert(eng:run(run.id))
  lu.assertEquals(info.status, "completed_with_errors")
  lu.assertEquals(info.rows_set, want.totals.would_set)
  local corrected = 0
  for _, c in ipairs(want.tables) do
    -- a mismatched row whose tenant exists is corrected; one of an orphan stays (99)
    corrected = corrected + c.mismatched
  end
  local orphan99 = value(uri, "SELECT count(*) FROM backup_items r WHERE workspace_id = 99 AND "
    .. "NOT EXISTS (SELECT 1 FROM tenants x WHERE x.id = r.tenant_id)")
  lu.assertEquals(info.rows_corrected, corrected - orphan99)
  lu.assertEquals(info.rows_unbound, want.totals.cannot_bind)
  lu.assertEquals(value(uri, ("SELECT count(*) FROM tenantguard_unbound WHERE run_id = %d AND "
    .. "reason LIKE 'workspace_corrected_from_%%'"):format(run.id)), info.rows_corrected)
  lu.assertEquals(value(uri, ("SELECT count(*) FROM tenantguard_unbound WHERE run_id = %d AND "
    .. "reason = 'workspace_corrected_from_99'"):format(run.id)), value(uri, "SELECT count(*) "
    .. "FROM backup_items r JOIN tenants x ON x.id = r.tenant_id WHERE r.id % 11 = 3"))
  assert_all_bound(uri, "after the run")
  assert_batches_exact(uri, run.id, "one worker")
  assert_unbound_listed(uri, run.id, "one worker")
  lu.assertEquals(checksums(uri), before, "a column other than workspace_id changed")
  -- the operation run and the audit log say so, once
  lu.assertEquals(value(uri, ("SELECT status FROM operation_runs WHERE id = %d")
    :format(run.operation_run)), "completed_with_errors")
  lu.assertStrContains(psql(uri, ("SELECT summary FROM operation_runs WHERE id = %d")
    :format(run.operation_run)), '"rows_set" : ' .. info.rows_set)
  lu.assertEquals(value(uri, "SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.backfill.completed'"), 1)
  lu.assertEquals(value(uri, "SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.backfill.table_done'"), #TABLES + 1)
  -- a second worker finds nothing to do; a second run finds everything bound
  lu.assertEquals(eng:work {}.batches, 0)
  local again = assert(eng:backfill { dry_run = true })
  lu.assertEquals(again.totals.would_set, 0)
  eng:close()
end

-- The CLI unchanged with --db URI: dry run, queue, status, worker.
function TestPgBackfill:test_cli_with_a_uri()
  local uri = load("tgb_cli", 60)
  local rc, out = H.run_tool("backfill --db " .. sq(uri) .. " --dry-run --json")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"would_set":59')
  rc, out = H.run_tool("backfill --db " .. sq(uri) .. " --batch-rows 20")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "queued")
  rc, out = H.run_tool("worker --db " .. sq(uri) .. " --quiet")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "nothing left to do")
  rc, out = H.run_tool("backfill --db " .. sq(uri) .. " --status --json")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"status":"completed_with_errors"')
  assert_all_bound(uri, "cli")
  rc, out = H.run_tool("backfill --db " .. sq(uri) .. " --pause")
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, "is completed_with_errors; cannot pause it")
end

-- Two worker processes at once share the run: each batch is applied once (the batches of
-- every table are contiguous and never overlap, the counters add up, rows_set is the dry
-- run's), and both did batches.
function TestPgBackfill:test_two_workers_in_parallel()
  local uri = load("tgb_two", 1500)
  local eng = open(uri)
  local dry = assert(eng:backfill { dry_run = true })
  local before = checksums(uri)
  local run = assert(eng:backfill { batch_rows = 100, batch_ms = 5, pause_ms = 2 })
  local dir = H.tmpdir()
  local procs = {}
  for i = 1, 2 do
    procs[i] = { U.spawn(worker_cmd(uri), dir .. "/worker" .. i .. ".log") }
  end
  for i = 1, 2 do U.reap(procs[i][2]) end
  for i = 1, 2 do
    lu.assertStrContains(H.read(dir .. "/worker" .. i .. ".log"), "nothing left to do")
  end
  local info = assert(eng:run(run.id))
  lu.assertEquals(info.status, "completed_with_errors")
  lu.assertEquals(info.rows_set, dry.totals.would_set, "a row bound twice, or not at all")
  lu.assertEquals(info.rows_unbound, dry.totals.cannot_bind)
  local workers = rows(uri, ("SELECT worker, count(*) FROM tenantguard_batches b JOIN "
    .. "tenantguard_jobs j ON j.id = b.job_id WHERE j.run_id = %d GROUP BY 1 ORDER BY 1")
    :format(run.id))
  lu.assertEquals(#workers, 2, "both workers ran batches")
  print(("  two workers: %s batches and %s batches"):format(workers[1][2], workers[2][2]))
  assert_all_bound(uri, "two workers")
  assert_batches_exact(uri, run.id, "two workers")
  assert_unbound_listed(uri, run.id, "two workers")
  lu.assertEquals(checksums(uri), before, "a column other than workspace_id changed")
  lu.assertEquals(value(uri, "SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.backfill.completed'"), 1, "the completion was audited more than once")
  eng:close()
end

-- Pause stops the workers between batches, resume lets them on, cancel ends the run; each
-- audited, and a control that does not apply is refused with the run's status.
function TestPgBackfill:test_pause_resume_cancel()
  local uri = load("tgb_ctl", 400)
  local eng = open(uri)
  local run = assert(eng:backfill { batch_rows = 50 })
  lu.assertEquals(eng:work { max_batches = 2 }.batches, 2)
  assert(eng:pause(run.id))
  lu.assertEquals(eng:run(run.id).status, "paused")
  local done = eng:run(run.id).rows_done
  local r = assert(eng:work {})
  lu.assertEquals(r.batches, 0)
  lu.assertTrue(r.idle)
  lu.assertEquals(eng:run(run.id).rows_done, done, "a paused run went on")
  local ok, msg = eng:pause(run.id)
  lu.assertNil(ok)
  lu.assertStrContains(msg, "is paused; cannot pause it")
  assert(eng:resume(run.id))
  lu.assertEquals(eng:work { max_batches = 1 }.batches, 1)
  lu.assertEquals(eng:run(run.id).status, "running")
  assert(eng:cancel(run.id))
  lu.assertEquals(eng:work {}.batches, 0)
  local info = eng:run(run.id)
  lu.assertEquals(info.status, "cancelled")
  lu.assertEquals(info.batches, 3)
  lu.assertEquals(value(uri, ("SELECT status FROM operation_runs WHERE id = %d")
    :format(run.operation_run)), "cancelled")
  lu.assertNotEquals(value(uri, ("SELECT coalesce(finished_at, '') FROM tenantguard_runs WHERE "
    .. "id = %d"):format(run.id)), "")
  ok, msg = eng:resume(run.id)
  lu.assertNil(ok)
  lu.assertStrContains(msg, "is cancelled; cannot resume it")
  for _, a in ipairs { "pause", "resume", "cancel" } do
    lu.assertEquals(value(uri, ("SELECT count(*) FROM audit_logs WHERE action = "
      .. "'tenantguard.backfill.%s'"):format(a)), 1, a)
  end
  lu.assertError(function() assert(eng:run(99999)) end)
  -- a new run picks up where nothing was done
  local run2 = assert(eng:backfill {})
  assert(eng:work {})
  lu.assertEquals(eng:run(run2.id).status, "completed_with_errors")
  assert_all_bound(uri, "after cancel and a new run")
  eng:close()
end

-- The replay-lag hook: while the lag (here from a table a test updates, through
-- replay_lag_sql) is above the limit, a worker waits and writes nothing; once under, it
-- runs. The default source (pg_stat_replication) is refused to a role that cannot read it.
function TestPgBackfill:test_replay_lag_makes_a_worker_wait()
  local uri = load("tgb_lag", 200)
  psql(uri, "CREATE TABLE lag_sim (ms double precision); INSERT INTO lag_sim VALUES (5000)")
  local eng = open(uri)
  local run = assert(eng:backfill { batch_rows = 50 })
  -- tg_owner is no superuser and no member of pg_read_all_stats
  local ok, msg = eng:work { max_replay_lag_ms = 100 }
  lu.assertNil(ok)
  lu.assertStrContains(msg, "pg_read_all_stats")
  -- in process: the lag stays high for the whole allowance
  local r = assert(eng:work { max_replay_lag_ms = 100, max_seconds = 0.6,
    replay_lag_sql = "SELECT ms FROM lag_sim" })
  lu.assertEquals(r.batches, 0)
  lu.assertTrue(r.lag_waits >= 1, "no wait")
  lu.assertTrue(r.lag_wait_seconds > 0.3, "waited " .. r.lag_wait_seconds .. " s")
  lu.assertEquals(eng:run(run.id).status, "queued")
  -- a worker process waits until the lag falls
  local dir = H.tmpdir()
  local pid, handle = U.spawn(worker_cmd(uri, " --max-replay-lag-ms 100 --replay-lag-sql "
    .. sq("SELECT ms FROM lag_sim")), dir .. "/worker.log")
  U.sleep(1.5)
  lu.assertEquals(eng:run(run.id).batches, 0, "the worker wrote while the standby lagged")
  psql(uri, "UPDATE lag_sim SET ms = 20")
  local finished = wait_until(function() return DONE[eng:run(run.id).status] end, 30)
  if not finished then U.kill9(pid, handle) else U.reap(handle) end
  lu.assertTrue(finished, "the worker did not go on once the lag fell: "
    .. H.read(dir .. "/worker.log"))
  lu.assertStrContains(H.read(dir .. "/worker.log"), "waited")
  assert_all_bound(uri, "after the lag")
  -- the CLI says what goes together
  local rc, out = H.run_tool("worker --db " .. sq(uri) .. " --replay-lag-sql 'SELECT 0'")
  lu.assertEquals(rc, 2, out)
  eng:close()
end

-- Workers killed with SIGKILL at random moments (some while inside a batch's transaction,
-- sometimes two at once); then one runs to the end. Every row bindable is bound once, no
-- other column of any row changes, the batches cover each table without gap or overlap.
function TestPgBackfill:test_kill_9_workers_repeatedly()
  local ROWS, MIN_KILLS, MAX_KILLS = 6000, 10, 16
  local uri = load("tgb_kill", ROWS)
  psql(uri, table.concat(SEED_BINDINGS, "; "))
  local eng = open(uri)
  local dry = assert(eng:backfill { dry_run = true })
  local before = checksums(uri)
  local run = assert(eng:backfill { batch_rows = 100, batch_ms = 40, pause_ms = 60 })
  eng:close()
  -- a worker's session inside a write transaction (it has an xid): a batch in progress.
  -- The workers carry a name of their own: other suites share the cluster meanwhile.
  local wuri = uri .. "&application_name=tg_killed_worker"
  local function in_batch()
    return value(uri, "SELECT count(*) FROM pg_stat_activity WHERE datname = "
      .. "current_database() AND pid <> pg_backend_pid() AND application_name = "
      .. "'tg_killed_worker' AND backend_xid IS NOT NULL") > 0
  end
  local t0 = now()
  local kills, progressed, in_txn = 0, 0, 0
  local last = run_row(uri, run.id)
  while kills < MAX_KILLS and not DONE[last.status] do
    local procs = { { U.spawn(worker_cmd(wuri)) } }
    if kills % 4 == 3 then procs[2] = { U.spawn(worker_cmd(wuri)) } end
    U.sleep(0.15 + math.random(20, 300) / 1000)
    if kills % 2 == 1 then
      local deadline = now() + 3.0
      repeat
        if in_batch() then
          in_txn = in_txn + 1
          break
        end
      until now() > deadline
    end
    for _, p in ipairs(procs) do U.kill9(p[1], p[2]) end
    kills = kills + 1
    local cur = run_row(uri, run.id)
    if cur.batches > last.batches then progressed = progressed + 1 end
    lu.assertTrue(cur.rows_done >= last.rows_done and cur.rows_set >= last.rows_set,
      "run counters went back after a kill")
    last = cur
  end
  print(("  %d kills in %.1fs, %d after progress, %d while a worker was inside a batch; run %s "
    .. "at %d/%d rows, %d batches"):format(kills, now() - t0, progressed, in_txn, last.status,
    last.rows_done, last.rows_total, last.batches))
  lu.assertTrue(kills >= MIN_KILLS, "only " .. kills .. " kills before the run completed")
  lu.assertTrue(progressed >= 3, "workers were killed before doing any work")
  lu.assertTrue(in_txn >= 2, "only " .. in_txn .. " kills inside a transaction")
  -- the killed workers' sessions are gone, their locks released: the last worker finishes
  -- (at full speed)
  psql(uri, ("UPDATE tenantguard_runs SET pause_ms = 0 WHERE id = %d"):format(run.id))
  local rc, out = H.run_tool("worker --db " .. sq(uri) .. " --quiet --batch-ms 200")
  lu.assertEquals(rc, 0, out)
  local final = run_row(uri, run.id)
  lu.assertEquals(final.status, "completed_with_errors")
  lu.assertNotEquals(final.finished_at, "")
  assert_all_bound(uri, "after the kills")
  lu.assertEquals(checksums(uri), before, "a column other than workspace_id changed")
  -- each row bound exactly once: a batch applied twice would count its rows twice
  lu.assertEquals(final.rows_set + final.rows_corrected, dry.totals.would_set
    + dry.totals.mismatched - value(uri, "SELECT count(*) FROM backup_items r WHERE "
    .. "workspace_id = 99 AND NOT EXISTS (SELECT 1 FROM tenants x WHERE x.id = r.tenant_id)"))
  lu.assertEquals(final.rows_unbound, dry.totals.cannot_bind)
  assert_batches_exact(uri, run.id, "after the kills")
  assert_unbound_listed(uri, run.id, "after the kills")
  lu.assertEquals(value(uri, ("SELECT status FROM operation_runs WHERE id = %d")
    :format(final.operation_run_id)), final.status)
  lu.assertEquals(value(uri, "SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.backfill.completed'"), 1, "the completion was audited more than once")
end

-- The application writing while a worker process runs the backfill: inserts (bound by the
-- application, as phase 1.5's guard does) and updates of other columns, each in its own
-- transaction, from psql. Every write is there as written, every row bound, nothing else
-- changed.
function TestPgBackfill:test_app_writes_during_the_backfill()
  local ROWS, OPS = 1500, 240
  local uri = load("tgb_write", ROWS)
  psql(uri, "CREATE TABLE writer_log (at text, status text, batches bigint)")
  local eng = open(uri)
  local maxid = {}
  for _, t in ipairs { "findings", "inventory_items" } do
    maxid[t] = value(uri, ("SELECT max(id) FROM %s"):format(t))
  end
  local before = checksums(uri, { "title", "display_name" }, maxid)
  local run = assert(eng:backfill { batch_rows = 100, batch_ms = 5, pause_ms = 15 })
  -- the writer's script: what it writes is known in advance
  local sql, updates, inserts = {}, {}, {}
  local LOG = "INSERT INTO writer_log SELECT '%s', status, batches FROM tenantguard_runs "
    .. "ORDER BY id DESC LIMIT 1;"
  sql[#sql + 1] = LOG:format("start")
  local COLUMN = { findings = "title", inventory_items = "display_name" }
  for i = 1, OPS do
    local t = i % 2 == 0 and "findings" or "inventory_items"
    if i % 3 == 0 then
      local tenant = math.random(1, 12)
      local v = ("written %d by the app"):format(i)
      inserts[#inserts + 1] = { t = t, tenant = tenant, v = v }
      sql[#sql + 1] = t == "findings"
        and ("INSERT INTO findings (tenant_id, workspace_id, title, severity, status, "
          .. "created_at) VALUES (%d, %d, '%s', 'low', 'open', '2026-03-01 00:00:00');")
          :format(tenant, U.workspace_of(tenant), v)
        or ("INSERT INTO inventory_items (tenant_id, workspace_id, display_name, item_type, "
          .. "created_at) VALUES (%d, %d, '%s', 'device', '2026-03-01 00:00:00');")
          :format(tenant, U.workspace_of(tenant), v)
    else
      local id = math.random(1, ROWS - 1)
      local v = ("updated %d by the app"):format(i)
      updates[t] = updates[t] or {}
      updates[t][id] = v
      sql[#sql + 1] = ("UPDATE %s SET %s = '%s' WHERE id = %d;"):format(t, COLUMN[t], v, id)
    end
    sql[#sql + 1] = "SELECT pg_sleep(0.006);"
  end
  sql[#sql + 1] = LOG:format("end")
  local dir = H.tmpdir()
  H.write(dir .. "/writer.sql", table.concat(sql, "\n"))
  local worker, worker_handle = U.spawn(worker_cmd(uri), dir .. "/worker.log")
  lu.assertTrue(wait_until(function() return run_row(uri, run.id).status == "running" end, 20),
    "the worker did not start")
  local p = io.popen("env -u LD_PRELOAD psql -X -q -v ON_ERROR_STOP=1 -d " .. sq(uri) .. " -f "
    .. sq(dir .. "/writer.sql") .. " >/dev/null 2>" .. sq(dir .. "/writer.err") .. "; echo $?")
  local wrc = p:read("a")
  p:close()
  lu.assertEquals(wrc:match("%d+"), "0", "writer: " .. H.read(dir .. "/writer.err"))
  -- the writer is done: the rest of the run at full speed (a worker reads both per batch)
  psql(uri, ("UPDATE tenantguard_runs SET pause_ms = 0, batch_ms = 200 WHERE id = %d")
    :format(run.id))
  local finished = wait_until(function() return DONE[run_row(uri, run.id).status] end, 60)
  if not finished then U.kill9(worker, worker_handle) else U.reap(worker_handle) end
  lu.assertTrue(finished, "the worker did not finish: " .. H.read(dir .. "/worker.log"))
  local log = rows(uri, "SELECT at, status, batches FROM writer_log ORDER BY at = 'end'")
  print(("  writer: %d inserts, %d statements; run %s (%s batches) when it started, %s (%s "
    .. "batches) when it ended"):format(#inserts, OPS, log[1][2], log[1][3], log[2][2], log[2][3]))
  lu.assertEquals(log[1][2], "running", "the writer did not run alongside the worker")
  lu.assertTrue(tonumber(log[2][3]) - tonumber(log[1][3]) >= 5,
    "hardly any batch was committed while the writer was writing")
  -- every insert as written, bound
  local written = {}
  for _, r in ipairs(rows(uri, "SELECT title, tenant_id, workspace_id FROM findings WHERE title "
      .. "LIKE 'written %' UNION ALL SELECT display_name, tenant_id, workspace_id FROM "
      .. "inventory_items WHERE display_name LIKE 'written %'")) do
    lu.assertNil(written[r[1]], "inserted twice: " .. r[1])
    written[r[1]] = { tonumber(r[2]), tonumber(r[3]) }
  end
  for _, ins in ipairs(inserts) do
    lu.assertEquals(written[ins.v], { ins.tenant, U.workspace_of(ins.tenant) }, ins.v)
  end
  -- every update intact (the last one wins)
  for t, ids in pairs(updates) do
    local list = {}
    for id in pairs(ids) do list[#list + 1] = id end
    for _, r in ipairs(rows(uri, ("SELECT id, %s FROM %s WHERE id IN (%s)"):format(COLUMN[t], t,
        table.concat(list, ",")))) do
      lu.assertEquals(r[2], ids[tonumber(r[1])], t .. " row " .. r[1])
      ids[tonumber(r[1])] = nil
    end
    lu.assertNil(next(ids), "an updated row of " .. t .. " is gone")
  end
  assert_all_bound(uri, "with concurrent writes")
  -- nothing else changed
  lu.assertEquals(checksums(uri, { "title", "display_name" }, maxid), before,
    "a column the writer did not write changed")
  assert_batches_exact(uri, run.id, "with concurrent writes",
    { findings = true, inventory_items = true })
  assert_unbound_listed(uri, run.id, "with concurrent writes")
  eng:close()
end

os.exit(lu.LuaUnit.run())
