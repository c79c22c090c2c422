-- The backfill under hostile conditions: worker processes killed with SIGKILL at random
-- moments (sometimes two at once), and an application process writing to the same tables
-- while a worker runs. The checkpoint and the data must come out exact: every row that can
-- be bound is bound, no other column of any row changes, each batch is applied once, and
-- the batches of each job cover its table without a gap or an overlap.
--
-- TG_CRASH_SEED=N replays the random kill schedule of a failed run (the seed is printed).
local lu = require "luaunit"
local H = require "helpers"
local U = require "rollout_util"
local tg = H.tg

local TABLES = U.TABLES
local qi = U.qi
local DONE = { completed = true, completed_with_errors = true }

local SEED = tonumber(os.getenv("TG_CRASH_SEED") or "") or os.time()
math.randomseed(SEED)
print(("test_backfill_crash: seed %d (TG_CRASH_SEED=%d replays it)"):format(SEED, SEED))

local function now()
  local p = io.popen("date +%s.%N")
  local s = p:read("a")
  p:close()
  return tonumber(s) or os.time()
end

local function phase(eng, name)
  local ok, msg, code = eng:rollout(name)
  lu.assertTrue(ok, ("phase %s failed: %s (%s)"):format(name, tostring(msg), tostring(code)))
end

local function run_row(db, id)
  return db:query("SELECT * FROM tenantguard_runs WHERE id = ?", id)[1]
end

local function worker_cmd(path)
  return ("%s worker --db %s --quiet"):format(U.shell_quote(H.tool), U.shell_quote(path))
end

-- Every row that can be bound is bound to its tenant's workspace; the rest are exactly the
-- orphans. Checked by the engine's validation and again by plain SQL.
local function assert_all_bound(eng, db, what)
  local checks = U.checks(eng:validate())
  for _, t in ipairs(TABLES) do
    local orphans = #U.orphan_ids(db, t)
    lu.assertTrue(orphans > 0, t)
    lu.assertEquals(checks["null_workspace:" .. t], orphans, what .. ": null_workspace " .. t)
    lu.assertEquals(checks["workspace_mismatch:" .. t], 0, what .. ": workspace_mismatch " .. t)
    lu.assertEquals(db:value(("SELECT count(*) FROM %s r JOIN tenants x ON x.id = r.tenant_id "
      .. "WHERE r.workspace_id IS NOT x.workspace_id"):format(qi(t))), 0,
      what .. ": bindable rows not bound in " .. t)
  end
  lu.assertEquals(checks["audit_tenant_without_workspace:audit_logs"], 0, what)
  lu.assertEquals(checks["workspace_mismatch:audit_logs"], 0, what)
end

-- The batches of each job of the run: each starts where the previous one ended (the first
-- at the beginning), none is empty, each counted exactly the rows in its range, and the
-- counters of the job and the run are the sums of its batches.
-- `grows`: tables the application inserts into meanwhile (rows after the last batch).
local function assert_batches_exact(db, run_id, what, grows)
  local run = run_row(db, run_id)
  local total_batches, total_rows, total_set = 0, 0, 0
  local jobs = db:query("SELECT * FROM tenantguard_jobs WHERE run_id = ? ORDER BY id", run_id)
  lu.assertEquals(#jobs, #TABLES + 1, what)
  for _, job in ipairs(jobs) do
    local t = job.table_name
    lu.assertEquals(job.status, "done", what .. ": job " .. t)
    local batches = db:query("SELECT * FROM tenantguard_batches WHERE job_id = ? ORDER BY id",
      job.id)
    lu.assertTrue(#batches > 0, what .. ": no batch for " .. t)
    local prev, rows, set = nil, 0, 0
    for i, b in ipairs(batches) do
      local where = ("%s: %s batch %d (id %d, (%s, %s])"):format(what, t, i, b.id,
        tostring(b.from_id), tostring(b.to_id))
      if i == 1 then
        lu.assertTrue(b.from_id == nil or b.from_id < 1, where .. ": the first batch does not "
          .. "start at the beginning")
      else
        lu.assertEquals(b.from_id, prev.to_id, where .. ": not contiguous with batch "
          .. (i - 1) .. " (" .. tostring(prev.from_id) .. ", " .. tostring(prev.to_id) .. "]")
      end
      lu.assertTrue(b.to_id > (b.from_id or math.mininteger), where .. ": empty range")
      lu.assertTrue(b.rows > 0, where .. ": no rows")
      local in_range = db:value(("SELECT count(*) FROM %s WHERE id > ? AND id <= ?"):format(qi(t)),
        b.from_id or math.mininteger, b.to_id)
      lu.assertEquals(b.rows, in_range, where .. ": rows counted vs rows in its range")
      rows, set, prev = rows + b.rows, set + b.rows_set, b
    end
    -- the audit log grows while the run writes its entries; rows inserted after a job's last
    -- batch are bound by the write triggers
    if t ~= "audit_logs" and not (grows and grows[t]) then
      lu.assertEquals(prev.to_id, db:value(("SELECT max(id) FROM %s"):format(qi(t))),
        what .. ": the batches of " .. t .. " stop before its last row")
    end
    lu.assertEquals(job.checkpoint, prev.to_id, what .. ": checkpoint of " .. t)
    lu.assertEquals(job.rows_done, rows, what .. ": rows_done of " .. t .. " vs its batches")
    lu.assertEquals(job.rows_set, set, what .. ": rows_set of " .. t .. " vs its batches")
    total_batches, total_rows, total_set = total_batches + #batches, total_rows + rows,
      total_set + set
  end
  lu.assertEquals(run.batches, total_batches, what .. ": run.batches")
  lu.assertEquals(run.rows_done, total_rows, what .. ": run.rows_done")
  lu.assertEquals(run.rows_set, total_set, what .. ": run.rows_set")
end

-- The orphans, and only they, are listed as unbound by the run.
local function assert_unbound_listed(db, run_id, what)
  local expected, listed = {}, {}
  for _, t in ipairs(TABLES) do
    for _, id in ipairs(U.orphan_ids(db, t)) do expected[t .. ":" .. id] = true end
  end
  for _, r in ipairs(db:query("SELECT table_name, row_id FROM tenantguard_unbound WHERE "
      .. "run_id = ? AND reason = 'tenant_missing'", run_id)) do
    listed[r.table_name .. ":" .. r.row_id] = true
  end
  lu.assertEquals(listed, expected, what .. ": tenantguard_unbound")
end

-- ---------------------------------------------------------------------------------------

TestBackfillCrash = {}

function TestBackfillCrash:tearDown() H.cleanup() end

-- Workers killed with SIGKILL at random moments, over and over; then one runs to the end.
function TestBackfillCrash:test_kill_9_workers_repeatedly()
  local ROWS, MIN_KILLS, MAX_KILLS = 40000, 25, 60
  local path = H.refdb(ROWS)
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local dry = assert(eng:backfill { dry_run = true })
  local would = {}
  for _, c in ipairs(dry.tables) do would[c.table] = c.would_set end
  local before = U.snapshot(db, { skip = { workspace_id = true } })
  -- a small first batch and a short target; a pause between batches spreads the run over
  -- more kills than it would otherwise last
  local run = assert(eng:backfill { batch_rows = 200, batch_ms = 8, pause_ms = 30 })
  eng:close()
  -- how long the tool takes to start (to open the engine): on a slow build (sanitizers) the
  -- kill window starts that much later, so that workers still get some batches done
  local startup = math.huge
  for _ = 1, 2 do
    local t = now()
    local rc = H.run_tool("validate --db '" .. path .. "'")
    lu.assertEquals(rc, 1)
    startup = math.min(startup, now() - t)
  end
  local offset = startup > 0.1 and startup or 0

  -- A connection that never waits: BEGIN IMMEDIATE fails exactly while a worker holds the
  -- write lock, that is while it is inside a batch's transaction.
  local probe = tg.connect(path)
  probe:exec("PRAGMA busy_timeout = 0")
  local function write_locked()
    if pcall(probe.exec, probe, "BEGIN IMMEDIATE") then
      probe:exec("ROLLBACK")
      return false
    end
    return true
  end

  local t0 = now()
  local kills, progressed, locked_kills = 0, 0, 0
  local last = run_row(db, run.id)
  while kills < MAX_KILLS and not DONE[last.status] do
    local procs = {}
    procs[1] = { U.spawn(worker_cmd(path)) }
    if kills % 5 == 4 then procs[2] = { U.spawn(worker_cmd(path)) } end -- two at once
    U.sleep(offset + math.random(20, 300) / 1000)
    -- every other time, wait (up to 3 s: sanitizer builds are slow) for a worker to be
    -- inside a batch, and kill it right there, in the middle of its transaction. The probe
    -- is paced: probing takes the lock for an instant, and a tight loop would keep the
    -- worker waiting instead of working.
    if kills % 2 == 1 then
      local until_ = now() + 3.0
      repeat
        if write_locked() then
          locked_kills = locked_kills + 1
          break
        end
        U.sleep(0.004)
      until now() > until_
    end
    for _, p in ipairs(procs) do U.kill9(p[1], p[2]) end
    kills = kills + 1
    local cur = run_row(db, run.id)
    if cur.batches > last.batches then progressed = progressed + 1 end
    -- the run's counters only ever grow, kill or no kill
    lu.assertTrue(cur.rows_done >= last.rows_done and cur.rows_set >= last.rows_set,
      "run counters went back after a kill")
    last = cur
  end
  probe:close()
  local killed_mid_run = not DONE[last.status]
  print(("  %d kills in %.1fs (tool startup %.0f ms), %d of them after progress, %d while a "
    .. "worker held the write lock; run %s at %d/%d rows, %d batches"):format(kills, now() - t0,
      startup * 1000, progressed, locked_kills, last.status, last.rows_done, last.rows_total,
      last.batches))
  lu.assertTrue(kills >= MIN_KILLS, "only " .. kills .. " kills before the run completed")
  lu.assertTrue(progressed >= 5, "workers were killed before doing any work: "
    .. progressed .. " cycles made progress")
  lu.assertTrue(locked_kills >= 5, "only " .. locked_kills .. " kills inside a transaction")

  -- the last worker runs to the end
  local rc, out = H.run_tool("worker --db '" .. path .. "' --quiet")
  lu.assertEquals(rc, 0, out)
  local final = run_row(db, run.id)
  lu.assertTrue(DONE[final.status], "run status after the last worker: " .. final.status)
  lu.assertEquals(final.status, "completed_with_errors") -- the orphans
  lu.assertNotNil(final.finished_at)
  print(("  final: %d batches, rows_set %d, rows_unbound %d (killed mid-run: %s)")
    :format(final.batches, final.rows_set, final.rows_unbound, tostring(killed_mid_run)))

  eng = U.open_engine(path)
  assert_all_bound(eng, db, "after the kills")
  -- not one other column of any row changed
  U.assert_same(lu, before, U.snapshot(db, { skip = { workspace_id = true } }),
    { allow_new = { audit_logs = true, operation_runs = true } }, "after the kills")
  -- each row bound exactly once: a batch applied twice would inflate rows_set
  lu.assertEquals(final.rows_set, dry.totals.would_set, "rows_set vs the dry run's would_set")
  for _, j in ipairs(db:query("SELECT table_name, rows_set, rows_unbound FROM tenantguard_jobs "
      .. "WHERE run_id = ?", run.id)) do
    lu.assertEquals(j.rows_set, would[j.table_name], "rows_set of " .. j.table_name)
  end
  lu.assertEquals(final.rows_unbound, dry.totals.cannot_bind)
  assert_batches_exact(db, run.id, "after the kills")
  assert_unbound_listed(db, run.id, "after the kills")
  lu.assertEquals(db:value("SELECT status FROM operation_runs WHERE id = ?",
    final.operation_run_id), final.status)
  lu.assertEquals(db:value("SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.backfill.completed'"), 1, "the completion was audited more than once")
  lu.assertEquals(db:value("PRAGMA integrity_check"), "ok")
  -- and the rollout goes on to the end
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")
  lu.assertTrue(eng:validate().ok)
  eng:close()
  db:close()
end

-- The application writing (inserts without workspace_id, updates of other columns) while a
-- worker process runs the backfill.
local WRITER = [==[
local tg = require "tenantguard"
local path, out_path, n_ops, seed, rows = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4]),
  tonumber(arg[5])
math.randomseed(seed)
local db = tg.connect(path)
local out = assert(io.open(out_path, "w"))
local function retry(fn)
  local last
  for _ = 1, 300 do
    local ok, res = pcall(fn)
    if ok then return true, res end
    last = tostring(res)
    if not (last:find("locked", 1, true) or last:find("busy", 1, true)) then break end
    os.execute("sleep 0.01")
  end
  return false, last
end
local function state()
  local ok, r = retry(function()
    return db:query("SELECT status, batches FROM tenantguard_runs ORDER BY id DESC LIMIT 1")[1]
  end)
  return ok and r and (r.status .. " " .. r.batches) or "? 0"
end
out:write("START ", state(), "\n")
out:flush()
local TABLE = { "findings", "inventory_items" }
local COLUMN = { findings = "title", inventory_items = "display_name" }
for i = 1, n_ops do
  local t = TABLE[i % 2 + 1]
  local c = COLUMN[t]
  if i % 3 == 0 then
    local tenant = math.random(1, 12)
    local value = ("written %d by the app"):format(i)
    local sql = t == "findings"
      and "INSERT INTO findings (tenant_id, title, severity, status, created_at) VALUES "
        .. "(?, ?, 'low', 'open', '2026-03-01 00:00:00') RETURNING id"
      or "INSERT INTO inventory_items (tenant_id, display_name, item_type, external_id, "
        .. "created_at) VALUES (?, ?, 'device', NULL, '2026-03-01 00:00:00') RETURNING id"
    local ok, res = retry(function() return db:query(sql, tenant, value)[1].id end)
    if ok then
      out:write(("I\t%s\t%d\t%d\t%s\n"):format(t, res, tenant, value))
    else
      out:write(("E\tinsert %s: %s\n"):format(t, res))
    end
  else
    local id
    repeat id = math.random(1, rows) until id % 1000 ~= 500 and id ~= rows
    local value = ("updated %d by the app"):format(i)
    local ok, res = retry(function()
      local _, n = db:query(("UPDATE %s SET %s = ? WHERE id = ?"):format(t, c), value, id)
      return n
    end)
    if ok and res == 1 then
      out:write(("U\t%s\t%d\t%s\n"):format(t, id, value))
    else
      out:write(("E\tupdate %s %d: %s\n"):format(t, id, tostring(res)))
    end
  end
  out:flush()
  os.execute("sleep 0.004") -- spread the writes over the worker's run
end
out:write("END ", state(), "\n")
out:close()
db:close()
]==]

function TestBackfillCrash:test_app_writes_during_the_backfill()
  local ROWS, OPS = 10000, 360
  local dir = H.tmpdir()
  local path = H.refdb(ROWS, dir .. "/ref.db")
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local before = U.snapshot(db, { skip = { workspace_id = true } })
  local before_other = U.snapshot(db, { tables = { "findings", "inventory_items" },
    skip = { workspace_id = true, title = true, display_name = true } })
  local run = assert(eng:backfill { batch_rows = 200, batch_ms = 5, pause_ms = 15 })
  eng:close()

  local script = dir .. "/writer.lua"
  H.write(script, WRITER)
  local results = dir .. "/writer.out"
  local worker_log = dir .. "/worker.log"
  local worker, worker_handle = U.spawn(worker_cmd(path), worker_log)
  -- the writer starts once the worker is at work
  local deadline = now() + 20
  while run_row(db, run.id).status == "queued" and now() < deadline do U.sleep(0.01) end
  lu.assertEquals(run_row(db, run.id).status, "running", "the worker did not start")
  local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(U.shell_quote(os.getenv("LUA_PATH") or ""),
    U.shell_quote(os.getenv("LUA_CPATH") or ""))
  local writer_done = dir .. "/writer.done"
  local writer_log = dir .. "/writer.log"
  -- a shell runs the writer and then records its exit status; U.spawn's shell reaps it
  local _, writer_handle = U.spawn(("sh -c %s"):format(U.shell_quote(
    ("%s %s %s %s %s %d %d %d >%s 2>&1; echo $? >%s"):format(env, U.shell_quote(U.lua_exe()),
      U.shell_quote(script), U.shell_quote(path), U.shell_quote(results), OPS, SEED, ROWS,
      U.shell_quote(writer_log), U.shell_quote(writer_done)))))

  deadline = now() + 60
  local function exists(p)
    local f = io.open(p, "rb")
    if f then f:close() end
    return f ~= nil
  end
  while not exists(writer_done) and now() < deadline do U.sleep(0.05) end
  lu.assertTrue(exists(writer_done), "the writer did not finish in time")
  U.reap(writer_handle)
  lu.assertEquals(H.read(writer_done):match("%d+"), "0", "writer: " .. H.read(writer_log))
  while not DONE[run_row(db, run.id).status] and now() < deadline do U.sleep(0.05) end
  local final = run_row(db, run.id)
  if not DONE[final.status] then U.kill9(worker, worker_handle) else U.reap(worker_handle) end
  lu.assertTrue(DONE[final.status], "the worker did not finish: " .. final.status .. "\n"
    .. H.read(worker_log))

  -- what the writer did
  local text = H.read(results)
  local inserts, updates, errors = {}, {}, {}
  local start_status, start_batches = text:match("^START (%S+) (%d+)")
  local end_status, end_batches = text:match("\nEND (%S+) (%d+)")
  lu.assertNotNil(end_status, "the writer's output is incomplete:\n" .. text)
  for line in text:gmatch("[^\n]+") do
    local kind = line:sub(1, 1)
    if kind == "I" then
      local t, id, tenant, value = line:match("^I\t(%S+)\t(%d+)\t(%d+)\t(.*)$")
      inserts[#inserts + 1] = { t = t, id = tonumber(id), tenant = tonumber(tenant), value = value }
    elseif kind == "U" then
      local t, id, value = line:match("^U\t(%S+)\t(%d+)\t(.*)$")
      updates[t] = updates[t] or {}
      updates[t][tonumber(id)] = value -- the last write wins
    elseif line:sub(1, 2) == "E\t" then
      errors[#errors + 1] = line
    end
  end
  print(("  writer: %d inserts, %d updates, %d errors; run %s (%s batches) when it started, "
    .. "%s (%s batches) when it ended; run: %d batches"):format(#inserts, OPS - #inserts - #errors,
    #errors, start_status, start_batches, end_status, end_batches, final.batches))
  lu.assertEquals(errors, {}, "writes that failed even after retrying")
  lu.assertEquals(#inserts, OPS // 3)
  lu.assertEquals(start_status, "running", "the writer did not run alongside the worker")
  lu.assertTrue(tonumber(end_batches) - tonumber(start_batches) >= 5,
    "hardly any batch was committed while the writer was writing")

  -- every insert is there, as written, bound to its tenant's workspace
  local COLUMN = { findings = "title", inventory_items = "display_name" }
  for _, ins in ipairs(inserts) do
    local row = db:query(("SELECT tenant_id, %s AS v, workspace_id FROM %s WHERE id = ?")
      :format(COLUMN[ins.t], ins.t), ins.id)[1]
    lu.assertNotNil(row, ("inserted %s row %d is missing"):format(ins.t, ins.id))
    lu.assertEquals(row, { tenant_id = ins.tenant, v = ins.value,
      workspace_id = U.workspace_of(ins.tenant) }, ("inserted %s row %d"):format(ins.t, ins.id))
  end
  -- every update is intact, and the row bound
  for t, rows in pairs(updates) do
    for id, value in pairs(rows) do
      local row = db:query(("SELECT tenant_id, %s AS v, workspace_id FROM %s WHERE id = ?")
        :format(COLUMN[t], t), id)[1]
      lu.assertEquals(row.v, value, ("updated %s row %d"):format(t, id))
      lu.assertEquals(row.workspace_id, U.workspace_of(row.tenant_id),
        ("updated %s row %d"):format(t, id))
    end
  end
  -- nothing else changed
  U.assert_same(lu, before, U.snapshot(db, { skip = { workspace_id = true } }),
    { allow_new = { audit_logs = true, operation_runs = true, findings = true,
      inventory_items = true }, skip_rows = updates }, "rows the writer did not touch")
  U.assert_same(lu, before_other, U.snapshot(db, { tables = { "findings", "inventory_items" },
    skip = { workspace_id = true, title = true, display_name = true } }),
    { allow_new = { findings = true, inventory_items = true } },
    "other columns of the rows the writer updated")

  eng = U.open_engine(path)
  assert_all_bound(eng, db, "after the concurrent writes")
  lu.assertEquals(final.status, "completed_with_errors")
  assert_batches_exact(db, run.id, "with concurrent writes",
    { findings = true, inventory_items = true })
  assert_unbound_listed(db, run.id, "with concurrent writes")
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")
  lu.assertTrue(eng:validate().ok)
  eng:close()
  db:close()
end

os.exit(lu.LuaUnit.run())
