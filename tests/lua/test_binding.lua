-- The Lua binding under abuse: strings that only a metamethod holds and a full collection in
-- the middle of a call, callbacks that call back into the same context or engine, handles
-- closed twice or from their own callbacks, and request fields of every wrong type and range.
-- Run under the ASan build, a string collected while C still uses it is a use-after-free.
--
-- Reference database: users 1 owner ws1 tenants 1-4, 5 owner ws2; workspace w owns tenants
-- 4w-3..4w (see scripts/refdb.lua).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local function setup(rows)
  local path = H.refdb(rows or 40)
  local db = tg.connect(path)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  return eng, db, path
end

local function first_id(db, tbl, tenant)
  return db:value(("SELECT id FROM %s WHERE tenant_id = ? ORDER BY id LIMIT 1"):format(tbl),
    tenant)
end

-- A string equal to `s` that no constant of any loaded chunk holds: only the caller's
-- reference keeps it alive, so a full collection frees it once that reference is gone.
local function fresh(s)
  return table.concat { s:sub(1, 1), s:sub(2) }
end

-- A table whose fields all come from __index: `values` are copied on every read, and a read
-- of any key in `collect_on` runs a full collection first.
local function proxy(values, collect_on)
  local set = {}
  for _, k in ipairs(collect_on or {}) do set[k] = true end
  return setmetatable({}, { __index = function(_, k)
    if set[k] then collectgarbage() collectgarbage() end
    local v = values[k]
    if type(v) == "string" then return fresh(v) end
    if type(v) == "function" then return v() end
    return v
  end })
end

local function raises(part, fn, ...)
  local ok, err = pcall(fn, ...)
  lu.assertFalse(ok, "expected an error containing '" .. part .. "'")
  lu.assertStrContains(tostring(err), part)
  return err
end

-- ---- 1. every string C uses stays anchored -----------------------------------------------

TestAnchoring = {}
function TestAnchoring:setUp() self.eng, self.db, self.path = setup() end
function TestAnchoring:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- The issue's reproduction: the family name is built by __index and the read of `ids`
-- collects it. The decision must be the one for that family and those ids.
function TestAnchoring:test_family_collected_while_reading_ids()
  local fam = "Inventory" .. "Item"
  local id = first_id(self.db, "inventory_items", 1)
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  for _ = 1, 20 do
    local req = proxy({ family = fam, path = "bulk_action", ids = function() return { id } end },
      { "ids", "capability", "query" })
    local d = ctx:resolve(req)
    lu.assertEquals(d.status, 200)
    lu.assertEquals(d.records[1].id, id)
  end
  ctx:close()
end

-- A long query (never interned) and a capability built fresh; the collection runs on later
-- reads.
function TestAnchoring:test_query_and_capability_collected()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local long = ("x"):rep(300)
  for _ = 1, 10 do
    local d = ctx:resolve(proxy({ family = "EntraGroup", path = "global_search", query = long,
      capability = "entra_group.view", limit = 5 }, { "limit", "after", "capability", "ids",
      "owner", "id" }))
    lu.assertEquals(d.status, 200)
    lu.assertEquals(#d.records, 0)
  end
  ctx:close()
end

-- ctx:insert / ctx:update: the options are read through __index (which collects), and
-- finalizers that empty the values table run while the collector is kept busy; whatever
-- the moment, the write is the one asked for or an error, never bytes that were freed.
function TestAnchoring:test_write_values_collected()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local name = ("guarded name "):rep(10)
  local opts = setmetatable({}, { __index = function(_, k)
    collectgarbage() collectgarbage()
    if k == "capability" then return fresh("policy.edit") end
  end })
  for i = 1, 5 do
    local d = assert(ctx:insert("Policy", { display_name = fresh(name .. i),
      policy_type = fresh("deviceConfiguration"), created_at = "2026-06-01 00:00:00" }, opts))
    lu.assertEquals(d.status, 200)
    lu.assertEquals(self.db:value("SELECT display_name FROM policies WHERE id = ?", d.id),
      name .. i)
    d = assert(ctx:update("Policy", d.id, { display_name = fresh(name .. "updated" .. i) }, opts))
    lu.assertEquals(d.status, 200)
    lu.assertEquals(self.db:value("SELECT display_name FROM policies WHERE id = ?", d.id),
      name .. "updated" .. i)
  end
  collectgarbage("incremental", 1, 1000) -- the collector (and finalizers) at every step
  for i = 1, 50 do
    local values = { display_name = fresh(name .. i), policy_type = fresh("x"),
      created_at = fresh("2026-06-01 00:00:00") }
    for _ = 1, 5 do
      setmetatable({}, { __gc = function() for k in pairs(values) do values[k] = nil end end })
    end
    local d = ctx:insert("Policy", values)
    if d then
      lu.assertEquals(self.db:value("SELECT display_name FROM policies WHERE id = ?", d.id),
        name .. i)
    end
  end
  collectgarbage("incremental", 200, 100)
  ctx:close()
end

-- tg.open and tg.check: the rules path and the database path come from __index, and later
-- option reads collect them.
function TestAnchoring:test_open_options_collected()
  local all = { "db", "rules", "busy_timeout", "instruction_budget", "memory_cap" }
  for _ = 1, 5 do
    local eng = tg.open(proxy({ db = self.path, rules = H.shipped_rules }, all))
    lu.assertEquals(#eng:version(), 16)
    eng:close()
    local findings = tg.check(proxy({ db = self.path, rules = H.shipped_rules }, all))
    lu.assertEquals(#H.errors(findings), 0)
  end
end

-- Options of the rollout methods read through __index with collections in between.
function TestAnchoring:test_rollout_options_collected()
  assert(self.eng:rollout(fresh("add_columns")))
  local plan = self.eng:backfill(proxy({ dry_run = true }, { "batch_ms", "pause_ms" }))
  lu.assertTrue(plan.totals.rows > 0)
  local run = assert(self.eng:backfill(proxy({ batch_rows = 50 }, { "pause_ms", "batch_ms" })))
  lu.assertEquals(run.status, "queued")
  local calls = 0
  local w = assert(self.eng:work(proxy({ progress = function()
    return function() calls = calls + 1 end
  end }, { "max_seconds", "max_batches", "progress" })))
  lu.assertTrue(w.idle)
  lu.assertTrue(calls > 0)
end

-- ---- 2. callbacks that call back ------------------------------------------------------------

TestReentry = {}
function TestReentry:setUp() self.eng, self.db = setup() end
function TestReentry:tearDown()
  self.eng:set_decision_log(nil)
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- The issue's case: a foreign id asked for detail came back 200 with another record because
-- the log function resolved on the same context.
function TestReentry:test_log_resolving_on_same_context_keeps_outer_decision()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local mine, foreign = first_id(self.db, "policies", 1), first_id(self.db, "policies", 2)
  local inner_ok, inner_err
  self.eng:set_decision_log(function()
    if inner_ok ~= nil then return end
    inner_ok, inner_err = pcall(ctx.resolve, ctx, { family = "Policy", path = "detail", id = mine })
  end)
  local d = ctx:resolve { family = "Policy", path = "detail", id = foreign }
  lu.assertEquals(d.status, 404)
  lu.assertEquals(d.reason, "foreign_tenant")
  lu.assertNil(d.record)
  lu.assertFalse(inner_ok)
  lu.assertStrContains(tostring(inner_err), "busy")
  -- the context still works afterwards
  self.eng:set_decision_log(nil)
  lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = mine }.status, 200)
  ctx:close()
end

-- Writes re-entering the context from the log are refused the same way; the outer write is
-- made once.
function TestReentry:test_log_writing_on_same_context()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local before = self.db:value("SELECT count(*) FROM policies")
  local errs = {}
  self.eng:set_decision_log(function()
    errs[#errs + 1] = select(2, pcall(ctx.insert, ctx, "Policy",
      { display_name = "inner", policy_type = "x", created_at = "2026-01-01" }))
  end)
  local d = assert(ctx:insert("Policy", { display_name = "outer", policy_type = "x",
    created_at = "2026-01-01" }))
  lu.assertEquals(d.status, 200)
  lu.assertEquals(self.db:value("SELECT display_name FROM policies WHERE id = ?", d.id), "outer")
  lu.assertEquals(self.db:value("SELECT count(*) FROM policies"), before + 1)
  lu.assertStrContains(tostring(errs[1]), "busy")
  local u = assert(ctx:update("Policy", d.id, { display_name = "outer2" }))
  lu.assertEquals(u.status, 200)
  lu.assertStrContains(tostring(errs[2]), "busy")
  ctx:close()
end

-- Another context of the same engine may decide inside the log: both answers are right.
function TestReentry:test_log_resolving_on_other_context_works()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local other = self.eng:context { user = 5, workspace = 2, tenant = 5 }
  local foreign = first_id(self.db, "policies", 2)
  local mine5 = first_id(self.db, "policies", 5)
  local inner
  self.eng:set_decision_log(function(ev)
    if ev.user == 1 then inner = other:resolve { family = "Policy", path = "detail", id = mine5 } end
  end)
  local d = ctx:resolve { family = "Policy", path = "detail", id = foreign }
  lu.assertEquals(d.status, 404)
  lu.assertNil(d.record)
  lu.assertEquals(inner.status, 200)
  lu.assertEquals(inner.record.id, mine5)
  ctx:close()
  other:close()
end

-- Closing the context inside its own log call is refused with a clear error; the outer
-- decision stands and the context can be closed afterwards.
function TestReentry:test_close_context_inside_its_log()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local err
  self.eng:set_decision_log(function()
    err = select(2, pcall(ctx.close, ctx))
    -- a to-be-closed variable closing it while busy raises too
    local ok = pcall(function() local c <close> = ctx end)
    lu.assertFalse(ok)
  end)
  local id = first_id(self.db, "policies", 1)
  local d = ctx:resolve { family = "Policy", path = "detail", id = id }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(d.record.id, id)
  lu.assertStrContains(tostring(err), "busy")
  ctx:close()
  ctx:close()
end

-- Closing the engine inside the log: the decision in progress completes; the context then
-- refuses to decide; nothing is freed under it.
function TestReentry:test_close_engine_inside_log()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local eng = self.eng
  eng:set_decision_log(function() eng:close() end)
  local id = first_id(self.db, "policies", 1)
  local d = ctx:resolve { family = "Policy", path = "detail", id = id }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(d.record.id, id)
  raises("closed", ctx.resolve, ctx, { family = "Policy", path = "detail", id = id })
  raises("closed", ctx.insert, ctx, "Policy", { display_name = "x" })
  raises("closed", ctx.update, ctx, "Policy", id, { display_name = "x" })
  ctx:close()
  self.eng = tg.open { db = H.refdb(5), rules = H.shipped_rules } -- for tearDown
end

-- Reloading inside the log works and leaves the outer decision alone.
function TestReentry:test_reload_inside_log()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local reloaded
  self.eng:set_decision_log(function() reloaded = self.eng:reload() end)
  local foreign = first_id(self.db, "policies", 2)
  local d = ctx:resolve { family = "Policy", path = "detail", id = foreign }
  lu.assertEquals(d.status, 404)
  lu.assertTrue(reloaded)
  ctx:close()
end

-- Errors of every type raised by the log never change or lose a decision.
function TestReentry:test_log_errors_of_every_type()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local id, foreign = first_id(self.db, "policies", 1), first_id(self.db, "policies", 2)
  local bad = setmetatable({}, { __tostring = function() error("tostring fails") end })
  for _, e in ipairs { {}, 42, "text", bad, false } do
    self.eng:set_decision_log(function() error(e) end)
    lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = id }.status, 200)
    lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = foreign }.status, 404)
  end
  self.eng:set_decision_log(function() error(nil) end)
  lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = id }.status, 200)
  self.eng:set_decision_log(function() error(("x"):rep(1e5)) end)
  lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = foreign }.status, 404)
  ctx:close()
end

-- A log function running inside a coroutine: decisions made later on the main thread still
-- reach the log on the main thread.
function TestReentry:test_log_across_coroutines()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  local id = first_id(self.db, "policies", 1)
  local seen = 0
  self.eng:set_decision_log(function() seen = seen + 1 end)
  local co = coroutine.wrap(function()
    ctx:resolve { family = "Policy", path = "detail", id = id }
    coroutine.yield()
  end)
  co()
  ctx:resolve { family = "Policy", path = "detail", id = id }
  lu.assertEquals(seen, 2)
  ctx:close()
end

local function queued_backfill(eng)
  assert(eng:rollout("add_columns"))
  return assert(eng:backfill { batch_rows = 10 })
end

-- Closing the engine from a progress callback: refused while the worker runs ('engine is
-- busy'); the worker finishes; the engine closes afterwards.
function TestReentry:test_close_engine_inside_progress()
  queued_backfill(self.eng)
  local eng, errs = self.eng, {}
  local w = eng:work { progress = function()
    errs[#errs + 1] = select(2, pcall(eng.close, eng))
    local ok = pcall(function() local e <close> = eng end)
    lu.assertFalse(ok)
  end }
  lu.assertTrue(w.idle)
  lu.assertTrue(#errs > 1)
  lu.assertStrContains(tostring(errs[1]), "busy")
  eng:close()
  eng:close()
  self.eng = tg.open { db = H.refdb(5), rules = H.shipped_rules }
end

-- An uncaught close in the progress callback stops the worker with that error.
function TestReentry:test_close_engine_inside_progress_uncaught()
  queued_backfill(self.eng)
  local eng = self.eng
  raises("busy", eng.work, eng, { progress = function() eng:close() end })
  lu.assertNotNil(eng:run())
end

-- Another worker from the progress callback is refused; reload and status calls work.
function TestReentry:test_engine_calls_inside_progress()
  local run = queued_backfill(self.eng)
  local eng, nested, reloads, statuses = self.eng, nil, 0, 0
  local w = eng:work { progress = function(p)
    nested = nested or select(2, pcall(eng.work, eng, {}))
    if eng:reload() then reloads = reloads + 1 end
    if eng:run(p.run) then statuses = statuses + 1 end
    local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
    lu.assertEquals(ctx:resolve { family = "Policy", path = "index", limit = 1 }.status, 200)
    ctx:close()
  end }
  lu.assertTrue(w.idle)
  lu.assertStrContains(tostring(nested), "busy")
  lu.assertTrue(reloads > 0)
  lu.assertEquals(statuses, reloads)
  lu.assertStrContains(eng:run(run.id).status, "completed")
end

-- Errors of every type from the progress callback stop the worker and reach the caller as
-- raised; the engine stays usable.
function TestReentry:test_progress_errors_of_every_type()
  queued_backfill(self.eng)
  local tbl = {}
  for _, e in ipairs { tbl, 42, "stop here" } do
    local ok, err = pcall(self.eng.work, self.eng, { progress = function() error(e, 0) end })
    lu.assertFalse(ok)
    lu.assertEquals(err, e)
  end
  local ok, err = pcall(self.eng.work, self.eng, { progress = function() error(nil) end })
  lu.assertFalse(ok)
  lu.assertNil(err)
  lu.assertTrue(assert(self.eng:work {}).idle)
end

-- ---- 3. closed handles ------------------------------------------------------------------------

TestClosed = {}
function TestClosed:setUp() self.eng, self.db = setup(5) end
function TestClosed:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

function TestClosed:test_close_twice_and_gc()
  local ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  ctx:close()
  ctx:close()
  raises("closed", ctx.resolve, ctx, { family = "Policy", path = "index" })
  raises("closed", ctx.insert, ctx, "Policy", {})
  raises("closed", ctx.update, ctx, "Policy", 1, {})
  raises("closed", ctx.version, ctx)
  lu.assertStrContains(tostring(ctx), "closed")
  do
    local c <close> = self.eng:context { user = 1, workspace = 1, tenant = 1 }
    c:close()
  end
  do
    local c <close> = self.eng:context { user = 1, workspace = 1, tenant = 1 }
  end
  local path = H.refdb(5)
  do
    local e <close> = tg.open { db = path, rules = H.shipped_rules }
    local c = e:context { user = 1, workspace = 1, tenant = 1 }
    e:close()
    e:close()
    raises("closed", e.reload, e)
    raises("closed", e.context, e, { user = 1, workspace = 1 })
    raises("closed", e.rollout, e, "add_columns")
    raises("closed", e.work, e, {})
    lu.assertStrContains(tostring(e), "closed")
    -- a context outliving its engine's handle refuses to decide, then closes cleanly
    raises("closed", c.resolve, c, { family = "Policy", path = "index" })
    lu.assertEquals(#c:version(), 16)
  end
  collectgarbage()
  collectgarbage()
end

-- Contexts and engines left to the collector in any order.
function TestClosed:test_collect_in_any_order()
  local path = H.refdb(5)
  for i = 1, 20 do
    local e = tg.open { db = path, rules = H.shipped_rules }
    local cs = {}
    for k = 1, 3 do cs[k] = e:context { user = 1, workspace = 1, tenant = 1 } end
    if i % 2 == 0 then e:close() end
    if i % 3 == 0 then cs[2]:close() end
    e, cs = nil, nil
    collectgarbage()
  end
end

-- ---- 4. requests: every field checked, never a guess --------------------------------------------

TestRequests = {}
function TestRequests:setUp()
  self.eng, self.db = setup(5)
  self.ctx = self.eng:context { user = 1, workspace = 1, tenant = 1 }
end
function TestRequests:tearDown()
  self.ctx:close()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

function TestRequests:test_family_and_exception_both()
  raises("not both", self.ctx.resolve, self.ctx,
    { family = "Policy", exception = "AuditLogViewer", path = "index" })
end

-- A write that would write nothing, or whose columns cannot be seen, raises instead of
-- answering 200 (an update of no column left the row as it was and said "ok").
function TestRequests:test_writes_that_write_nothing_raise()
  local id = assert(self.ctx:insert("Policy", { display_name = "before",
    policy_type = "deviceConfiguration", created_at = "2026-06-01 00:00:00" })).id
  local before = self.db:value("SELECT display_name FROM policies WHERE id = ?", id)
  raises("at least one column", self.ctx.update, self.ctx, "Policy", id, {})
  local proxy = setmetatable({}, { __index = { display_name = "NEW" } })
  raises("metatable", self.ctx.update, self.ctx, "Policy", id, proxy)
  raises("metatable", self.ctx.insert, self.ctx, "Policy", proxy)
  lu.assertEquals(self.db:value("SELECT display_name FROM policies WHERE id = ?", id), before)
end

-- ids are read as Lua reads a list: through __len and __index, like every other field; a
-- length that is not a count is an error naming the field, never "needs at least one id".
function TestRequests:test_ids_through_metamethods()
  local own = assert(self.ctx:insert("Policy", { display_name = "mine",
    policy_type = "deviceConfiguration", created_at = "2026-06-01 00:00:00" })).id
  local proxy = setmetatable({}, { __index = function(_, i) if i == 1 then return own end end,
                                   __len = function() return 1 end })
  local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = proxy,
    capability = "policy.delete" }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(#d.records, 1)
  local huge = setmetatable({}, { __len = function() return 1 << 40 end })
  raises("limit", self.ctx.resolve, self.ctx, { family = "Policy", path = "bulk_action",
    ids = huge })
  for _, len in ipairs { math.mininteger, -1, "5", 1.5 } do
    local odd = setmetatable({}, { __len = function() return len end })
    local e = raises("ids", self.ctx.resolve, self.ctx, { family = "Policy",
      path = "bulk_action", ids = odd })
    lu.assertNotStrContains(e, "at least one id")
  end
  raises("boom", self.ctx.resolve, self.ctx, { family = "Policy", path = "bulk_action",
    ids = setmetatable({}, { __len = function() error("boom") end }) })
end

function TestRequests:test_global_search_without_query()
  raises("query", self.ctx.resolve, self.ctx, { family = "EntraGroup", path = "global_search" })
  lu.assertEquals(self.ctx:resolve { family = "EntraGroup", path = "global_search",
    query = "" }.status, 200)
end

function TestRequests:test_unknown_fields()
  local e = raises("capabilty", self.ctx.resolve, self.ctx,
    { family = "Policy", path = "row_action", id = 1, capabilty = "policy.delete" })
  lu.assertStrContains(e, "unknown field")
  lu.assertStrContains(e, "capability") -- the suggestion
  raises("unknown field", self.ctx.resolve, self.ctx, { family = "Policy", path = "index", [1] = 2 })
  raises("tennant", self.eng.context, self.eng, { user = 1, workspace = 1, tennant = 3 })
  raises("rule", tg.open, { rule = H.shipped_rules, rules = H.shipped_rules })
  raises("dryrun", self.eng.backfill, self.eng, { dryrun = true })
  raises("max_batch", self.eng.work, self.eng, { max_batch = 1 })
  raises("capabilty", self.ctx.insert, self.ctx, "Policy", { display_name = "x" },
    { capabilty = "policy.edit" })
end

function TestRequests:test_integers_out_of_range_or_not_integers()
  local base = function(extra)
    local r = { family = "Policy", path = "index" }
    for k, v in pairs(extra) do r[k] = v end
    return r
  end
  raises("-2147483649", self.ctx.resolve, self.ctx, base { limit = -2 ^ 31 - 1 | 0 })
  raises("-9223372036854775808", self.ctx.resolve, self.ctx, base { limit = math.mininteger })
  raises("'limit'", self.ctx.resolve, self.ctx, base { limit = 0 })
  raises("'limit'", self.ctx.resolve, self.ctx, base { limit = 1.5 })
  raises("'limit'", self.ctx.resolve, self.ctx, base { limit = 0 / 0 })
  raises("'limit'", self.ctx.resolve, self.ctx, base { limit = 1e300 })
  raises("'limit'", self.ctx.resolve, self.ctx, base { limit = math.huge })
  raises("'limit'", self.ctx.resolve, self.ctx, base { limit = "5" })
  raises("'after'", self.ctx.resolve, self.ctx, base { after = 2 ^ 63 })
  raises("'id'", self.ctx.resolve, self.ctx, { family = "Policy", path = "detail", id = 1.25 })
  raises("'id'", self.ctx.resolve, self.ctx, { family = "Policy", path = "detail", id = true })
  raises("ids[2]", self.ctx.resolve, self.ctx, { family = "Policy", path = "bulk_action",
    ids = { 1, 0 / 0 } })
  raises("'user'", self.eng.context, self.eng, { user = 1.5, workspace = 1 })
  -- a string is a key, but not one an INTEGER key column can hold: raised, never coerced
  raises("workspace: expected an integer key for workspaces.id, got text", self.eng.context,
    self.eng, { user = 1, workspace = "1" })
  raises("id: expected an integer key for policies.id, got text", self.ctx.update, self.ctx,
    "Policy", "1", { display_name = "x" })
  raises("integer or string key expected", self.ctx.update, self.ctx, "Policy", true,
    { display_name = "x" })
  raises("number has no integer representation", self.ctx.update, self.ctx, "Policy", 1.5,
    { display_name = "x" })
  raises("integer expected", self.eng.run, self.eng, "1")
  -- integral floats are integers; 64-bit values pass through unchanged
  lu.assertEquals(self.ctx:resolve(base { limit = 2.0 }).status, 200)
  local d = self.ctx:resolve(base { limit = 3, after = math.mininteger })
  lu.assertEquals(d.status, 200)
  d = self.ctx:resolve { family = "Policy", path = "detail", id = math.maxinteger }
  lu.assertEquals(d.reason, "not_found")
end

function TestRequests:test_too_many_ids_before_any_work()
  local n = self.eng:rules().app.limits.max_bulk_ids
  local ids = {}
  for i = 1, n + 1 do ids[i] = i end
  raises(tostring(n), self.ctx.resolve, self.ctx, { family = "Policy", path = "bulk_action",
    ids = ids })
end

function TestRequests:test_zero_bytes()
  raises("zero byte", self.ctx.resolve, self.ctx, { family = "Policy\0x", path = "index" })
  raises("zero byte", self.ctx.resolve, self.ctx, { family = "Policy", path = "index\0x" })
  raises("zero byte", self.ctx.resolve, self.ctx, { family = "EntraGroup", path = "global_search",
    query = "a\0b" })
  raises("zero byte", self.ctx.resolve, self.ctx, { family = "Policy", path = "row_action", id = 1,
    capability = "policy.edit\0" })
  raises("zero byte", self.eng.rollout, self.eng, "add_columns\0; drop everything")
  raises("zero byte", self.ctx.insert, self.ctx, "Policy\0", { display_name = "x" })
  raises("zero byte", self.ctx.insert, self.ctx, "Policy", { ["display_name\0x"] = "x" })
  raises("zero byte", tg.open, { rules = H.shipped_rules .. "\0x" })
  raises("zero byte", self.eng.set_decision_log, self.eng, "/tmp/x\0y")
  raises("zero byte", self.eng.run_matrix, self.eng, "skip_membership\0")
end

function TestRequests:test_option_types_and_ranges()
  raises("'memory_cap'", tg.open, { rules = H.shipped_rules, memory_cap = -1 })
  raises("'busy_timeout'", tg.open, { rules = H.shipped_rules, busy_timeout = 2 ^ 40 | 0 })
  raises("'instruction_budget'", tg.open, { rules = H.shipped_rules, instruction_budget = -5 })
  raises("'rules'", tg.open, { rules = 42 })
  raises("'dry_run'", self.eng.backfill, self.eng, { dry_run = "yes" })
  raises("'batch_ms'", self.eng.backfill, self.eng, { batch_ms = -5 })
  raises("'batch_ms'", self.eng.backfill, self.eng, { batch_ms = 0 / 0 })
  raises("'pause_ms'", self.eng.backfill, self.eng, { pause_ms = 2 ^ 40 | 0 })
  raises("'batch_rows'", self.eng.backfill, self.eng, { batch_rows = -1 })
  raises("'progress'", self.eng.work, self.eng, { progress = 5 })
  raises("'max_seconds'", self.eng.work, self.eng, { max_seconds = -1 })
  raises("'max_seconds'", self.eng.work, self.eng, { max_seconds = 0 / 0 })
  raises("'max_batches'", self.eng.work, self.eng, { max_batches = -3 })
  raises("'capability'", self.ctx.insert, self.ctx, "Policy", {}, { capability = 5 })
  raises("NaN", self.ctx.insert, self.ctx, "Policy", { display_name = 0 / 0 })
end

os.exit(lu.LuaUnit.run())
