-- The backfill's batch sizes follow a time target: the run's (eng:backfill{ batch_ms }), or a
-- worker's own (eng:work{ batch_ms }, `tenantguard worker --batch-ms`), within 50 to 200,000
-- rows. The sizes are read from the progress reports and from tenantguard_batches, so the
-- checks hold on a slow or loaded machine (and under the sanitizers): a target no batch can
-- meet shrinks every batch to the minimum, an unreachable one grows each by 1.25x.
local lu = require "luaunit"
local H = require "helpers"
local U = require "rollout_util"
local tg = H.tg

local function prepared(rows)
  local path = H.refdb(rows)
  local eng = U.open_engine(path)
  for _, p in ipairs { "add_columns", "enforce_writes" } do
    local ok, msg = eng:rollout(p)
    lu.assertTrue(ok, msg)
  end
  return path, eng
end

-- Runs `n` batches with work options `o`; the sizes each batch ran with and chose next.
local function batches(eng, o, n)
  local ran, next_sizes = {}, {}
  o.max_batches = n
  o.progress = function(p)
    ran[#ran + 1] = p.batch_rows
    next_sizes[#next_sizes + 1] = p.next_batch_rows
  end
  local w = assert(eng:work(o))
  lu.assertEquals(w.batches, n)
  return ran, next_sizes
end

TestBackfillBatch = {}

function TestBackfillBatch:tearDown() H.cleanup() end

-- A worker's own target overrides the run's, for that worker only.
function TestBackfillBatch:test_worker_time_target_overrides_the_runs()
  local path, eng = prepared(3000)
  local dry = eng:backfill { dry_run = true }
  local run = assert(eng:backfill { batch_ms = 3600e3, batch_rows = 1000 })
  -- a target of 1 us: every batch is over it, the size shrinks by 4x down to 50
  local ran, nexts = batches(eng, { batch_ms = 0.001 }, 4)
  lu.assertEquals(ran, { 1000, 250, 62, 50 })
  lu.assertEquals(nexts, { 250, 62, 50, 50 })
  -- the run's own target (an hour) again: the size grows by 1.25x a batch
  ran, nexts = batches(eng, {}, 3)
  lu.assertEquals(ran, { 50, 62, 77 })
  lu.assertEquals(nexts, { 62, 77, 96 })
  -- the command-line worker takes --batch-ms, and the rest of the run completes
  local rc, out = H.run_tool("worker --db '" .. path .. "' --quiet --batch-ms 1 --max-batches 1")
  lu.assertEquals(rc, 0, out)
  rc, out = H.run_tool("worker --db '" .. path .. "' --quiet")
  lu.assertEquals(rc, 0, out)
  local r = eng:run(run.id)
  lu.assertEquals(r.rows_done, r.rows_total)
  lu.assertEquals(r.status, "completed_with_errors") -- the reference data's orphans
  lu.assertEquals(r.rows_set, dry.totals.would_set)
  lu.assertEquals(r.rows_unbound, dry.totals.cannot_bind)
  local db = tg.connect(path)
  lu.assertEquals(db:value("SELECT min(rows) FROM tenantguard_batches"), 50)
  eng:close()
end

function TestBackfillBatch:test_worker_time_target_is_checked()
  local _, eng = prepared(20)
  assert(eng:backfill {})
  for _, bad in ipairs { -1, 0 / 0, 3600e3 + 1 } do
    local ok, err = pcall(eng.work, eng, { batch_ms = bad })
    lu.assertFalse(ok, tostring(bad))
    lu.assertStrContains(tostring(err), "batch_ms")
  end
  local rc, out = H.run_tool("worker --db x.db --batch-ms 0")
  lu.assertEquals(rc, 2, out)
  eng:close()
end

os.exit(lu.LuaUnit.run())
