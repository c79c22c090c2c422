-- Read snapshots: eng:read(fn) and eng:context{ snapshot = true } hold one read transaction
-- across decisions. Every decision inside sees the same data (a write committed by another
-- connection meanwhile is seen only after the snapshot ends); the snapshot always ends, also
-- when fn raises; nested calls join; writes inside raise and write nothing. And the
-- connection settings of tg.open: cache_size (KiB), mmap_size (bytes), busy_timeout (ms),
-- checked and reported by eng:settings().
--
-- Reference database: see scripts/refdb.lua (user 1 owns workspace 1 and tenants 1-4).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local function setup(self)
  self.path = H.refdb(30)
  self.db = tg.connect(self.path) -- another connection: the "other process"
  self.eng = tg.open { db = self.path, rules = H.shipped_rules }
  self.id = self.db:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1")
  self.id2 = self.db:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1 "
    .. "OFFSET 1")
  self.ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
end

local function teardown(self)
  if self.eng then self.eng:close() end
  if self.db then self.db:close() end
  H.cleanup()
end

local function detail(ctx, id)
  return ctx:resolve { family = "Policy", path = "detail", id = id }
end

local function rename(db, id, name)
  db:exec(string.format("UPDATE policies SET display_name = '%s' WHERE id = %d", name, id))
end

local function policy()
  return { display_name = "new", policy_type = "deviceConfiguration",
    created_at = "2026-06-01 00:00:00" }
end

-- Asserts that f raises an error whose message contains every part.
local function raises(parts, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error")
  for _, p in ipairs(parts) do lu.assertStrContains(tostring(err), p) end
end

TestRead = { setUp = setup, tearDown = teardown }

-- Two decisions of one snapshot see the same row although another connection changed it in
-- between; after the snapshot the change is seen. Without a snapshot it is seen at once.
function TestRead:test_same_data_for_every_decision()
  local eng, ctx, db, id, id2 = self.eng, self.ctx, self.db, self.id, self.id2
  local before = detail(ctx, id).record.display_name
  local inside, later, deleted_inside = eng:read(function()
    local a = detail(ctx, id).record.display_name
    rename(db, id, "changed meanwhile")
    local b = detail(ctx, id).record.display_name
    -- a new context opened inside reads from the same snapshot
    local other = eng:context { user = 1, workspace = 1, tenant = 1 }
    local c = detail(other, id).record.display_name
    other:close()
    db:exec(string.format("DELETE FROM policies WHERE id = %d", id2))
    local gone = detail(ctx, id2)
    return { a, b, c }, nil, gone.status
  end)
  lu.assertEquals(inside, { before, before, before })
  lu.assertNil(later)
  lu.assertEquals(deleted_inside, 200, "a row deleted meanwhile is still there inside")
  lu.assertEquals(detail(ctx, id).record.display_name, "changed meanwhile")
  lu.assertEquals(detail(ctx, id2).status, 404)
  -- control: in autocommit each decision sees the latest commit
  rename(db, id, "third")
  lu.assertEquals(detail(ctx, id).record.display_name, "third")
end

-- eng:read passes its extra arguments to fn and returns everything fn returns.
function TestRead:test_arguments_and_results()
  local a, b, c, n = self.eng:read(function(x, y) return y, x, nil, 4 end, "x", "y")
  lu.assertEquals({ a, b, c, n }, { "y", "x", nil, 4 })
  lu.assertEquals(select("#", self.eng:read(function() end)), 0)
  raises({ "function" }, self.eng.read, self.eng, "not a function")
end

-- An error inside fn ends the snapshot and is raised again unchanged (any value).
function TestRead:test_error_ends_snapshot()
  local eng, ctx, db, id = self.eng, self.ctx, self.db, self.id
  local obj = { reason = "boom" }
  local ok, err = pcall(eng.read, eng, function()
    detail(ctx, id)
    error(obj)
  end)
  lu.assertFalse(ok)
  lu.assertIs(err, obj)
  ok, err = pcall(eng.read, eng, function() error("plain message") end)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "plain message")
  -- ended: a change is seen at once, and writes work again
  rename(db, id, "after the error")
  lu.assertEquals(detail(ctx, id).record.display_name, "after the error")
  local d = ctx:insert("Policy", policy())
  lu.assertEquals(d.status, 200)
  -- a coroutine yield inside fn cannot escape the snapshot either
  local co = coroutine.wrap(function()
    return pcall(eng.read, eng, function() coroutine.yield(1) end)
  end)
  lu.assertFalse((co()))
  lu.assertEquals(ctx:insert("Policy", policy()).status, 200)
end

-- A read inside a read joins it: the snapshot lasts until the outer one returns.
function TestRead:test_nested_read_joins_outer()
  local eng, ctx, db, id = self.eng, self.ctx, self.db, self.id
  local before = detail(ctx, id).record.display_name
  eng:read(function()
    detail(ctx, id)
    eng:read(function()
      rename(db, id, "changed in inner")
      lu.assertEquals(detail(ctx, id).record.display_name, before)
    end)
    lu.assertEquals(detail(ctx, id).record.display_name, before, "the outer snapshot holds")
    raises({ "inside a read snapshot" }, ctx.insert, ctx, "Policy", policy())
    -- an inner error ends only the inner call
    pcall(eng.read, eng, function() error("inner") end)
    lu.assertEquals(detail(ctx, id).record.display_name, before)
  end)
  lu.assertEquals(detail(ctx, id).record.display_name, "changed in inner")
end

-- Writes inside a snapshot raise a clear error and write nothing; reads (validate, a dry
-- run) join the snapshot instead of ending it.
function TestRead:test_writes_refused_inside()
  local eng, ctx, db, id = self.eng, self.ctx, self.db, self.id
  local n = db:value("SELECT count(*) FROM policies")
  local name = detail(ctx, id).record.display_name
  eng:read(function()
    detail(ctx, id)
    rename(db, id, "outside")
    raises({ "insert", "inside a read snapshot" }, ctx.insert, ctx, "Policy", policy())
    raises({ "update", "inside a read snapshot" }, ctx.update, ctx, "Policy", id,
      { display_name = "mine" })
    raises({ "rollout", "inside a read snapshot" }, eng.rollout, eng, "add_columns")
    raises({ "backfill", "inside a read snapshot" }, eng.backfill, eng, {})
    raises({ "work", "inside a read snapshot" }, eng.work, eng, {})
    raises({ "inside a read snapshot" }, eng.run_matrix, eng)
    local report = eng:validate()
    lu.assertIsTable(report.checks)
    local plan = eng:backfill { dry_run = true }
    lu.assertIsTable(plan)
    lu.assertEquals(detail(ctx, id).record.display_name, name, "still the same snapshot")
  end)
  lu.assertEquals(db:value("SELECT count(*) FROM policies"), n)
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = ?", id), "outside")
  local cols = db:query("SELECT name FROM pragma_table_info('policies') WHERE name = ?",
    "workspace_id")
  lu.assertEquals(#cols, 0, "the rollout did not run")
  -- the engine writes again afterwards
  lu.assertEquals(ctx:update("Policy", id, { display_name = "mine" }).status, 200)
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = ?", id), "mine")
  lu.assertTrue((eng:rollout("add_columns")))
end

-- Closing the engine inside fn is safe: the snapshot ends with it.
function TestRead:test_close_inside()
  local eng, db, id = self.eng, self.db, self.id
  local r = eng:read(function()
    detail(self.ctx, id)
    eng:close()
    return "closed"
  end)
  lu.assertEquals(r, "closed")
  raises({ "closed" }, detail, self.ctx, id)
  -- the database is not held: another connection writes and checkpoints
  rename(db, id, "free")
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = ?", id), "free")
  self.eng = nil
end

TestSnapshotContext = { setUp = setup, tearDown = teardown }

-- A context opened with snapshot = true decides from one snapshot until it closes; the
-- engine's other contexts share it; close ends it.
function TestSnapshotContext:test_one_snapshot_for_life()
  local eng, db, id = self.eng, self.db, self.id
  local before = detail(self.ctx, id).record.display_name
  local sctx = eng:context { user = 1, workspace = 1, tenant = 1, snapshot = true }
  lu.assertEquals(detail(sctx, id).record.display_name, before)
  rename(db, id, "changed")
  lu.assertEquals(detail(sctx, id).record.display_name, before)
  lu.assertEquals(detail(self.ctx, id).record.display_name, before, "shared by the engine")
  raises({ "insert", "inside a read snapshot" }, sctx.insert, sctx, "Policy", policy())
  raises({ "insert", "inside a read snapshot" }, self.ctx.insert, self.ctx, "Policy", policy())
  sctx:close()
  lu.assertEquals(detail(self.ctx, id).record.display_name, "changed")
  lu.assertEquals(self.ctx:insert("Policy", policy()).status, 200)
  sctx:close() -- twice is safe and ends nothing more
  eng:read(function() end)
  lu.assertEquals(self.ctx:insert("Policy", policy()).status, 200)
end

-- <close> and collection end it too; a context that fails to open holds nothing.
function TestSnapshotContext:test_close_and_gc_end_it()
  local eng, db, id = self.eng, self.db, self.id
  do
    local sctx <close> = eng:context { user = 1, workspace = 1, tenant = 1, snapshot = true }
    detail(sctx, id)
    rename(db, id, "one")
    lu.assertNotEquals(detail(sctx, id).record.display_name, "one")
  end
  lu.assertEquals(detail(self.ctx, id).record.display_name, "one")
  local sctx = eng:context { user = 1, workspace = 1, tenant = 1, snapshot = true }
  detail(sctx, id)
  sctx = nil -- luacheck: ignore
  collectgarbage()
  collectgarbage()
  rename(db, id, "two")
  lu.assertEquals(detail(self.ctx, id).record.display_name, "two")
  raises({ "user" }, eng.context, eng, { user = 1.5, workspace = 1, snapshot = true })
  raises({ "snapshot" }, eng.context, eng, { user = 1, workspace = 1, snapshot = "yes" })
  lu.assertEquals(self.ctx:insert("Policy", policy()).status, 200)
end

-- Inside eng:read a snapshot context joins; whichever ends last ends the snapshot.
function TestSnapshotContext:test_joins_read()
  local eng, db, id = self.eng, self.db, self.id
  local before = detail(self.ctx, id).record.display_name
  local sctx = eng:read(function()
    local c = eng:context { user = 1, workspace = 1, tenant = 1, snapshot = true }
    detail(c, id)
    return c
  end)
  rename(db, id, "later")
  lu.assertEquals(detail(sctx, id).record.display_name, before, "the context still holds it")
  sctx:close()
  lu.assertEquals(detail(self.ctx, id).record.display_name, "later")
end

-- A snapshot context outliving its engine's handle: closing the engine ends the snapshot.
function TestSnapshotContext:test_engine_closed_first()
  local eng, db, id = self.eng, self.db, self.id
  local sctx = eng:context { user = 1, workspace = 1, tenant = 1, snapshot = true }
  detail(sctx, id)
  eng:close()
  self.eng = nil
  rename(db, id, "free")
  raises({ "closed" }, detail, sctx, id)
  sctx:close()
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = ?", id), "free")
end

TestSettings = {}
function TestSettings:tearDown()
  if self.eng then self.eng:close() end
  H.cleanup()
end

-- The defaults, reported.
function TestSettings:test_defaults()
  self.eng = tg.open { db = H.refdb(5), rules = H.shipped_rules }
  local s = self.eng:settings()
  lu.assertEquals(s.cache_size, 2000)
  lu.assertEquals(s.mmap_size, 0)
  lu.assertEquals(s.busy_timeout, 5000)
  lu.assertEquals(s.journal_mode, "wal")
  lu.assertEquals(s.synchronous, "normal")
  lu.assertTrue(s.page_size >= 512)
end

-- Given settings are applied (read back from SQLite) and reported.
function TestSettings:test_applied()
  local path = H.refdb(5)
  self.eng = tg.open { db = path, rules = H.shipped_rules, cache_size = 8192,
    mmap_size = 1 << 20, busy_timeout = 1234 }
  local s = self.eng:settings()
  lu.assertEquals({ s.cache_size, s.mmap_size, s.busy_timeout }, { 8192, 1 << 20, 1234 })
  self.eng:close()
  self.eng = tg.open { db = path, rules = H.shipped_rules, cache_size = 64 }
  lu.assertEquals(self.eng:settings().cache_size, 64)
end

-- Out of bounds is a clear error naming the option; nothing is opened.
function TestSettings:test_bounds()
  local path = H.refdb(5)
  local function open(extra)
    local o = { db = path, rules = H.shipped_rules }
    for k, v in pairs(extra) do o[k] = v end
    return tg.open(o)
  end
  raises({ "cache size", "64", "KiB", "got 10" }, open, { cache_size = 10 })
  raises({ "cache_size" }, open, { cache_size = -1 })
  raises({ "cache_size" }, open, { cache_size = (1 << 30) + 1 })
  raises({ "cache_size" }, open, { cache_size = 1.5 })
  raises({ "cache_size" }, open, { cache_size = "big" })
  raises({ "mmap_size" }, open, { mmap_size = -1 })
  raises({ "mmap_size" }, open, { mmap_size = (1 << 40) + 1 })
  raises({ "busy_timeout" }, open, { busy_timeout = -5 })
  -- within bounds but above this SQLite build's maximum: an error, never a silent cap
  local ok, eng = pcall(open, { mmap_size = 1 << 40 })
  if ok then
    lu.assertEquals(eng:settings().mmap_size, 1 << 40)
    eng:close()
  else
    lu.assertStrContains(eng, "mmap_size")
    lu.assertStrContains(eng, "allows")
  end
  -- tg.check takes no connection settings
  raises({ "cache_size" }, tg.check, { rules = H.shipped_rules, cache_size = 100 })
end

os.exit(lu.LuaUnit.run())
