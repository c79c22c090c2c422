-- The backfill's replay-lag throttle against a real streaming standby, with the default lag
-- source (pg_stat_replication; no replay_lag_sql). The suite starts its own primary and
-- standby (scripts/pg_cluster.sh start, then standby: pg_basebackup -R, Unix sockets only),
-- so the cluster the other PostgreSQL suites share is not disturbed, and stops both at the
-- end. The worker runs as tg_owner, granted pg_read_all_stats in that cluster.
--   - a standby caught up and idle: a worker never waits, and the standby has its writes;
--   - replay paused on the standby (pg_wal_replay_pause) with WAL pending: a worker waits and
--     applies no batch, in process and as a process; replay resumed, the process goes on by
--     itself, every row is bound exactly once, no other column changes, and the standby,
--     once caught up, has the same data as the primary.
-- Skipped without TG_PG_URI (as every PostgreSQL suite) or without the server's binaries.
local lu = require "luaunit"
local H = require "helpers"
local U = require "rollout_util"
local tg = H.tg

if not os.getenv("TG_PG_URI") then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local sq, qi, TABLES = U.shell_quote, U.qi, U.TABLES
local CLUSTER = H.source_dir .. "/scripts/pg_cluster.sh"
local DONE = { completed = true, completed_with_errors = true }

local function now()
  local p = io.popen("date +%s.%N")
  local s = p:read("a")
  p:close()
  return tonumber(s) or os.time()
end

-- A shell command without the sanitizers' runtime (the server's own programs); rc, output.
local function sh(cmd)
  local p = assert(io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("__rc=(%d+)%s*$")), (out:gsub("__rc=%d+%s*$", ""))
end

-- The primary and the standby, for this suite only.
local E = {}

local function exports(out)
  for k, v in out:gmatch("export ([%w_]+)='([^']*)'") do E[k] = v end
end

local function stop_pair()
  if E.TG_PG_STANDBY_DIR then sh("sh " .. sq(CLUSTER) .. " stop " .. sq(E.TG_PG_STANDBY_DIR)) end
  if E.TG_PG_CLUSTER_DIR then sh("sh " .. sq(CLUSTER) .. " stop " .. sq(E.TG_PG_CLUSTER_DIR)) end
end

local function skip(why)
  stop_pair()
  print("SKIPPED: " .. why)
  os.exit(77)
end

local started = now()
local rc, out = sh("sh " .. sq(CLUSTER) .. " start")
if rc == 77 then skip("no PostgreSQL server binaries to start a primary and a standby") end
exports(out)
if rc ~= 0 or not E.TG_PG_CLUSTER_DIR then
  stop_pair()
  error("pg_cluster.sh start: " .. out)
end
rc, out = sh("sh " .. sq(CLUSTER) .. " standby " .. sq(E.TG_PG_CLUSTER_DIR))
if rc == 77 then skip("no pg_basebackup to make a standby") end
exports(out)
if rc ~= 0 or not E.TG_PG_STANDBY_DIR then
  stop_pair()
  error("pg_cluster.sh standby: " .. out)
end
print(("test_pg_standby: primary %s and standby %s in %.1f s"):format(E.TG_PG_CLUSTER_DIR,
  E.TG_PG_STANDBY_DIR, now() - started))

local OWNER, ADMIN = E.TG_PG_OWNER_URI, E.TG_PG_ADMIN_URI
local STANDBY = E.TG_PG_STANDBY_ADMIN_URI

local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

-- psql's output, unaligned, no headers ("|" between columns, one line a row).
local function psql(uri, sql)
  local code, text = sh("PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sq(uri) .. " -c " .. sq(sql))
  assert(code == 0, "psql: " .. text .. "\n" .. sql)
  return (text:gsub("\n$", ""))
end

local function rows(uri, sql)
  local res = {}
  for line in (psql(uri, sql) .. "\n"):gmatch("([^\n]*)\n") do
    if line ~= "" then
      local r = {}
      for v in (line .. "|"):gmatch("([^|]*)|") do r[#r + 1] = v end
      res[#res + 1] = r
    end
  end
  return res
end

local function value(uri, sql)
  local v = psql(uri, sql)
  return tonumber(v) or v
end

local function wait_until(fn, seconds)
  local deadline = now() + seconds
  while now() < deadline do
    if fn() then return true end
    U.sleep(0.05)
  end
  return fn()
end

-- A fresh schema holding the reference database of `n` rows per table, workspace_id (NULL)
-- added to the twelve tables (as test_pg_backfill); the owner's URI in it.
local function load(schema, n)
  local path = H.refdb(n)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s"):format(schema, schema))
  local uri = in_schema(OWNER, schema)
  local code, text = H.run_tool(("pg-load --from %s --to %s"):format(sq(path), sq(uri)))
  assert(code == 0, text)
  local ddl = {}
  for _, t in ipairs(TABLES) do
    ddl[#ddl + 1] = ("ALTER TABLE %s ADD COLUMN workspace_id bigint"):format(qi(t))
  end
  psql(uri, table.concat(ddl, "; "))
  return uri
end

local function open(uri) return tg.open { db = uri, rules = H.shipped_rules } end

-- the worker's role may read the standbys' lag (this suite's own cluster only)
psql(ADMIN, "GRANT pg_read_all_stats TO tg_owner")

-- As the primary sees it: every standby has replayed all the primary has flushed, and said so.
local function primary_sees_caught_up()
  return value(ADMIN, "SELECT count(*) FILTER (WHERE replay_lsn >= pg_current_wal_flush_lsn()) "
    .. "|| '/' || count(*) FROM pg_stat_replication") == "1/1"
end

-- As the standby sees it: it has replayed everything the primary had written so far.
local function standby_caught_up(seconds)
  local lsn = psql(ADMIN, "SELECT pg_current_wal_lsn()")
  return wait_until(function()
    return psql(STANDBY, ("SELECT pg_last_wal_replay_lsn() >= '%s'"):format(lsn)) == "t"
  end, seconds)
end

-- A checksum of every table of the schema (tenantguard's own aside), all columns but
-- workspace_id unless `all`.
local function checksums(uri, schema, all)
  local minus = all and "" or " - 'workspace_id'"
  local parts = {}
  for _, r in ipairs(rows(uri, ("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid "
      .. "= c.relnamespace WHERE n.nspname = '%s' AND c.relkind = 'r' AND c.relname NOT LIKE "
      .. "'tenantguard%%' AND c.relname NOT IN ('audit_logs', 'operation_runs') ORDER BY 1")
      :format(schema))) do
    parts[#parts + 1] = ("SELECT '%s', count(*) || ':' || coalesce(md5(string_agg(CAST("
      .. "to_jsonb(r)%s AS text), '|' ORDER BY CAST(to_jsonb(r)%s AS text))), '') FROM %s.%s r")
      :format(r[1], minus, minus, schema, qi(r[1]))
  end
  local res = {}
  for _, r in ipairs(rows(uri, table.concat(parts, " UNION ALL "))) do res[r[1]] = r[2] end
  return res
end

-- Every row whose tenant exists bound to its tenant's workspace; the orphans left alone.
local function assert_all_bound(uri, what)
  for _, t in ipairs(TABLES) do
    lu.assertEquals(value(uri, ("SELECT count(*) FROM %s r JOIN tenants x ON x.id = r.tenant_id "
      .. "WHERE r.workspace_id IS DISTINCT FROM x.workspace_id"):format(qi(t))), 0,
      what .. ": rows of " .. t .. " not bound to their tenant's workspace")
  end
end

-- Each job's batches: from the start, each from where the one before ended, never empty, the
-- rows counted those in its range, the job's rows_done their sum: every row once.
local function assert_batches_once(uri, run_id, what)
  local jobs = rows(uri, ("SELECT id, table_name, status, rows_done FROM tenantguard_jobs WHERE "
    .. "run_id = %d ORDER BY id"):format(run_id))
  lu.assertEquals(#jobs, #TABLES + 1, what)
  for _, job in ipairs(jobs) do
    lu.assertEquals(job[3], "done", what .. ": job " .. job[2])
    local bs = rows(uri, ("SELECT coalesce(b.from_id::text, ''), b.to_id, b.rows, (SELECT "
      .. "count(*) FROM %s r WHERE r.id > coalesce(b.from_id, -9223372036854775808) AND r.id <= "
      .. "b.to_id) FROM tenantguard_batches b WHERE b.job_id = %s ORDER BY b.to_id")
      :format(qi(job[2]), job[1]))
    lu.assertTrue(#bs > 0, what .. ": no batch for " .. job[2])
    local n, prev = 0, ""
    for _, b in ipairs(bs) do
      lu.assertEquals(b[1], prev, what .. ": a gap or an overlap in " .. job[2])
      lu.assertTrue(tonumber(b[3]) > 0 and b[3] == b[4], what .. ": batch of " .. job[2])
      n, prev = n + tonumber(b[3]), b[2]
    end
    lu.assertEquals(tonumber(job[4]), n, what .. ": rows_done of " .. job[2])
  end
end

-- ---------------------------------------------------------------------------------------

TestPgStandby = {}

local test_start
function TestPgStandby:setUp() test_start = now() end
function TestPgStandby:tearDown()
  print(("  %.1f s"):format(now() - test_start))
  H.cleanup()
end

-- A standby that keeps up: a worker with a limit runs the whole backfill without waiting
-- once, and the standby has every row as bound.
function TestPgStandby:test_a_caught_up_standby_does_not_hold_the_worker()
  local uri = load("tgs_idle", 150)
  local eng = open(uri)
  local run = assert(eng:backfill { batch_rows = 50 })
  lu.assertTrue(wait_until(primary_sees_caught_up, 30), "the standby did not catch up")
  local r = assert(eng:work { max_replay_lag_ms = 2000 })
  lu.assertTrue(r.idle, "the worker stopped before the end")
  lu.assertTrue(r.batches > #TABLES, "batches: " .. r.batches)
  lu.assertEquals(r.lag_waits, 0, "the worker waited for a standby that kept up")
  lu.assertTrue(DONE[eng:run(run.id).status])
  assert_all_bound(uri, "caught up")
  lu.assertTrue(standby_caught_up(30), "the standby did not replay the backfill")
  lu.assertEquals(checksums(STANDBY, "tgs_idle", true), checksums(ADMIN, "tgs_idle", true),
    "the standby's data differs from the primary's")
  eng:close()
end

-- Replay paused on the standby with WAL pending, already behind by more than the limit: a
-- worker waits and applies no batch. Replay resumed and caught up, as the primary sees it, a
-- worker goes on at once (replay_lag alone still showed the lag of the last record replayed
-- then, seconds). Paused again, a worker process waits, and goes on by itself once replay
-- resumes. Every row once, and the standby ends with the primary's data.
function TestPgStandby:test_a_paused_standby_holds_the_worker_until_it_replays()
  local LIMIT = 300
  local uri = load("tgs_paused", 300)
  local eng = open(uri)
  local dry = assert(eng:backfill { dry_run = true })
  local before = checksums(ADMIN, "tgs_paused")
  local paused = false
  local function pause()
    lu.assertTrue(wait_until(primary_sees_caught_up, 30), "the standby did not catch up")
    psql(STANDBY, "SELECT pg_wal_replay_pause()")
    paused = true
  end
  local function resume()
    psql(STANDBY, "SELECT pg_wal_replay_resume()")
    paused = false
  end
  -- until the standby has said it has WAL it has not replayed, then longer than the limit
  local function fall_behind()
    lu.assertTrue(wait_until(function()
      return value(ADMIN, "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn < "
        .. "flush_lsn") == 1
    end, 15), "the standby never reported WAL it had not replayed")
    U.sleep(2 * LIMIT / 1000)
  end
  local ok, err = pcall(function()
    pause()
    -- queueing the run writes WAL the standby receives and does not replay
    local run = assert(eng:backfill { batch_rows = 50 })
    fall_behind()
    local r = assert(eng:work { max_replay_lag_ms = LIMIT, max_seconds = 1 })
    lu.assertEquals(r.batches, 0, "the worker wrote while the standby was behind")
    lu.assertTrue(r.lag_waits > 0, "no wait")
    lu.assertTrue(r.lag_wait_seconds > 0.5, "waited " .. r.lag_wait_seconds .. " s")
    lu.assertEquals(eng:run(run.id).status, "queued")
    resume()
    lu.assertTrue(wait_until(primary_sees_caught_up, 30), "the standby did not catch up")
    r = assert(eng:work { max_replay_lag_ms = LIMIT, max_batches = 2 })
    lu.assertEquals(r.lag_waits, 0, "the worker waited for a standby that had caught up")
    lu.assertEquals(r.batches, 2)
    -- a worker process, started while replay is paused, waits, then goes on by itself
    pause()
    psql(ADMIN, "CREATE TABLE IF NOT EXISTS public.tgs_poke (at timestamptz); INSERT INTO "
      .. "public.tgs_poke VALUES (now())")
    fall_behind()
    local done = eng:run(run.id).batches
    local dir = H.tmpdir()
    local pid, handle = U.spawn(("%s worker --db %s --quiet --max-replay-lag-ms %d")
      :format(sq(H.tool), sq(uri), LIMIT), dir .. "/worker.log")
    U.sleep(1)
    local batches = eng:run(run.id).batches
    resume()
    local resumed = now()
    local finished = wait_until(function() return DONE[eng:run(run.id).status] end, 60)
    if finished then U.reap(handle) else U.kill9(pid, handle) end
    local log = H.read(dir .. "/worker.log")
    lu.assertEquals(batches, done, "the worker process wrote while the standby was behind")
    lu.assertTrue(finished, "the worker did not go on once replay resumed: " .. log)
    print(("  replay resumed: the run done %.1f s later"):format(now() - resumed))
    lu.assertStrContains(log, "waited")
    -- every row bound once, nothing else changed
    local info = assert(eng:run(run.id))
    lu.assertEquals(info.rows_set, dry.totals.would_set, "a row bound twice, or not at all")
    assert_all_bound(uri, "after the pauses")
    assert_batches_once(uri, run.id, "after the pauses")
    lu.assertEquals(checksums(ADMIN, "tgs_paused"), before, "a column other than workspace_id "
      .. "changed")
    -- the standby has it all
    lu.assertTrue(standby_caught_up(30), "the standby did not catch up after the resume")
    lu.assertEquals(checksums(STANDBY, "tgs_paused", true), checksums(ADMIN, "tgs_paused", true),
      "the standby's data differs from the primary's")
  end)
  if paused then pcall(psql, STANDBY, "SELECT pg_wal_replay_resume()") end
  if not ok then error(err, 0) end
  eng:close()
end


-- A WAL archiver (pg_receivewal) streams from the primary and replies, but replays nothing:
-- it is no standby to wait for. (A lag source that counted its missing replay position as
-- "behind since it connected" made a worker wait for ever while Barman or pg_receivewal ran.)
function TestPgStandby:test_b_a_wal_archiver_does_not_hold_the_worker()
  local bin = io.popen("ls -d /usr/lib/postgresql/*/bin/pg_receivewal 2>/dev/null | sort -V | tail -1")
  local receivewal = bin:read("l")
  bin:close()
  if not receivewal then
    print("  (no pg_receivewal here: skipped)")
    return
  end
  local wal = H.tmpdir() .. "/wal"
  assert(os.execute("mkdir -p " .. sq(wal) .. " && chmod 777 " .. sq(wal)))
  local _, pid = sh("sh -c " .. sq(("%s -D %s -d %s --no-loop >/dev/null 2>&1 & echo $!")
    :format(sq(receivewal), sq(wal), sq(ADMIN .. "&application_name=tg_archiver"))))
  pid = tonumber(pid:match("%d+"))
  lu.assertNotNil(pid)
  local function archiver(cond)
    return value(ADMIN, "SELECT count(*) FROM pg_stat_replication WHERE application_name = "
      .. "'tg_archiver'" .. (cond or "")) == 1
  end
  local ok, err = pcall(function()
    lu.assertTrue(wait_until(function() return archiver(" AND reply_time IS NOT NULL") end, 20),
      "pg_receivewal did not connect and reply")
    lu.assertEquals(psql(ADMIN, "SELECT replay_lsn IS NULL FROM pg_stat_replication WHERE "
      .. "application_name = 'tg_archiver'"), "t")
    local uri = load("tgs_archiver", 60)
    local eng = open(uri)
    assert(eng:backfill { batch_rows = 50 })
    lu.assertTrue(wait_until(function()
      return value(ADMIN, "SELECT count(*) FROM pg_stat_replication WHERE application_name <> "
        .. "'tg_archiver' AND replay_lsn >= pg_current_wal_flush_lsn()") == 1
    end, 30), "the standby did not catch up")
    local r = assert(eng:work { max_replay_lag_ms = 300, max_seconds = 60 })
    lu.assertTrue(r.idle, "the worker stopped before the end")
    lu.assertEquals(r.lag_waits, 0, "the worker waited for a WAL archiver")
    assert_all_bound(uri, "with an archiver")
    eng:close()
  end)
  sh("kill " .. pid)
  wait_until(function() return not archiver() end, 20)
  if not ok then error(err, 0) end
end

local ok, result = pcall(function() return lu.LuaUnit.run() end)
stop_pair()
print(("test_pg_standby: %.1f s in all"):format(now() - started))
if not ok then error(result, 0) end
os.exit(result)
