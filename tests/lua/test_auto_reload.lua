-- Automatic reload: tg.open{ auto_reload = MS, on_reload = fn }. An edit of the rule files is
-- in force for contexts opened after the interval, a broken edit keeps the old rules and is
-- reported (on_reload with file:line, a "reload" line in the decision file), a change inside
-- the interval is not looked at, contexts already open keep their answers, and no reload
-- happens during a matrix run or inside a read snapshot. Waits are generous (ASan).
--
-- Reference database: user 1 owns workspace 1 and tenants 1-4 (see scripts/refdb.lua).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local function sleep(ms) os.execute(("sleep %.3f"):format(ms / 1000)) end

local DETAIL_LINE = '    detail           = { capability = "policy.view" },\n'

local function setup(self, interval)
  self.rules = H.shipped_copy()
  self.db = H.refdb(20)
  self.families = self.rules .. "/families.lua"
  self.original = H.read(self.families)
  lu.assertStrContains(self.original, DETAIL_LINE)
  self.reloads = {}
  self.eng = tg.open { db = self.db, rules = self.rules, auto_reload = interval,
    on_reload = function(ok, err, version)
      self.reloads[#self.reloads + 1] = { ok = ok, err = err, version = version }
    end }
  local conn = tg.connect(self.db)
  self.policy = conn:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1")
  conn:close()
end

local function context(self) return self.eng:context { user = 1, workspace = 1, tenant = 1 } end

local function detail(self, ctx)
  return ctx:resolve { family = "Policy", path = "detail", id = self.policy }
end

-- Policy without its detail path: a detail request is then a 404 (path_not_declared).
local function without_detail(self)
  H.write(self.families, (self.original:gsub(DETAIL_LINE:gsub("%p", "%%%0"), "", 1)))
end

-- A syntax error on line 7 of families.lua.
local function broken(self)
  local text = self.original:gsub('  table = "policies",', '  table = = "policies",', 1)
  H.write(self.families, text)
end

TestAutoReload = {}
function TestAutoReload:setUp() setup(self, 100) end
function TestAutoReload:tearDown()
  self.eng:close()
  H.cleanup()
end

function TestAutoReload:test_an_edit_is_in_force_after_the_interval()
  local v1 = self.eng:version()
  local old = context(self)
  lu.assertEquals(detail(self, old).status, 200)
  without_detail(self)
  sleep(300)
  local fresh = context(self)
  lu.assertEquals(#self.reloads, 1)
  lu.assertTrue(self.reloads[1].ok)
  lu.assertNil(self.reloads[1].err)
  lu.assertNotEquals(self.eng:version(), v1)
  lu.assertEquals(self.reloads[1].version, self.eng:version())
  local d = detail(self, fresh)
  lu.assertEquals(d.status, 404)
  lu.assertEquals(d.reason, "path_not_declared")
  -- the context opened before keeps its rules: same answer as before the edit
  lu.assertEquals(detail(self, old).status, 200)
  old:close()
  fresh:close()
end

function TestAutoReload:test_a_broken_edit_keeps_the_old_rules_and_is_reported()
  local log = H.tmpdir() .. "/decisions.jsonl"
  assert(self.eng:set_decision_log(log))
  local v1 = self.eng:version()
  broken(self)
  sleep(300)
  local ctx = context(self)
  lu.assertEquals(detail(self, ctx).status, 200) -- the old rules serve
  ctx:close()
  lu.assertEquals(#self.reloads, 1)
  lu.assertFalse(self.reloads[1].ok)
  lu.assertStrContains(self.reloads[1].err, "families.lua:7:")
  lu.assertEquals(self.reloads[1].version, v1)
  lu.assertEquals(self.eng:version(), v1)
  -- not tried again until the files change again
  sleep(300)
  context(self):close()
  lu.assertEquals(#self.reloads, 1)

  local lines = {}
  for line in H.read(log):gmatch("[^\n]+") do lines[#lines + 1] = line end
  lu.assertEquals(#lines, 2) -- the reload, then the decision
  lu.assertStrMatches(lines[1], '^{"time":"[%d%-T:%.]+Z","kind":"reload","ok":false,"rules":".*"'
    .. ',"rule_version":"' .. v1 .. '","previous_version":"' .. v1 .. '","error":".*families%.lua:7:.*"}$')
  lu.assertStrContains(lines[2], '"status":200')

  -- fixed: reloaded, reported as ok with the new version
  without_detail(self)
  sleep(300)
  ctx = context(self)
  lu.assertEquals(detail(self, ctx).status, 404)
  ctx:close()
  lu.assertEquals(#self.reloads, 2)
  lu.assertTrue(self.reloads[2].ok)
  local last = H.read(log):match("([^\n]+)\n[^\n]+\n$")
  lu.assertStrContains(last, '"kind":"reload","ok":true')
  lu.assertStrContains(last, '"rule_version":"' .. self.eng:version() .. '"')
  lu.assertStrContains(last, '"previous_version":"' .. v1 .. '","error":null}')
end

function TestAutoReload:test_no_reload_during_a_matrix_run_or_a_read_snapshot()
  without_detail(self)
  sleep(300)
  local decisions = 0
  self.eng:set_decision_log(function() decisions = decisions + 1 end)
  local results = self.eng:run_matrix()
  lu.assertTrue(#results > 0)
  lu.assertTrue(decisions > 0)
  lu.assertEquals(#self.reloads, 0) -- the run's own contexts never look
  local v1 = self.eng:version()
  self.eng:read(function()
    local ctx = context(self)
    lu.assertEquals(detail(self, ctx).status, 200)
    ctx:close()
  end)
  lu.assertEquals(#self.reloads, 0)
  lu.assertEquals(self.eng:version(), v1)
  -- the first context opened after them looks
  local ctx = context(self)
  lu.assertEquals(#self.reloads, 1)
  lu.assertEquals(detail(self, ctx).status, 404)
  ctx:close()
end

TestWithinInterval = {}
function TestWithinInterval:tearDown()
  self.eng:close()
  H.cleanup()
end

-- Inside the interval nothing is looked at: however many contexts open, the edit waits.
function TestWithinInterval:test_a_change_inside_the_interval_is_not_picked_up()
  setup(self, 600000)
  local v1 = self.eng:version()
  without_detail(self)
  sleep(150)
  for _ = 1, 20 do
    local ctx = context(self)
    lu.assertEquals(detail(self, ctx).status, 200)
    ctx:close()
  end
  lu.assertEquals(#self.reloads, 0)
  lu.assertEquals(self.eng:version(), v1)
  -- an explicit reload still works at any time
  lu.assertTrue(self.eng:reload())
  lu.assertNotEquals(self.eng:version(), v1)
end

function TestWithinInterval:test_off_by_default()
  self.rules = H.shipped_copy()
  self.db = H.refdb(20)
  self.eng = tg.open { db = self.db, rules = self.rules }
  local v1 = self.eng:version()
  H.write(self.rules .. "/families.lua", H.read(self.rules .. "/families.lua") .. "-- x\n")
  sleep(150)
  self.eng:context { user = 1, workspace = 1, tenant = 1 }:close()
  lu.assertEquals(self.eng:version(), v1)
end

TestOptions = {}
function TestOptions:tearDown() H.cleanup() end

function TestOptions:test_bad_options_raise()
  local db = H.refdb(5)
  local ok, err = pcall(tg.open, { db = db, rules = H.shipped_rules, auto_reload = -1 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "auto_reload")
  ok, err = pcall(tg.open, { db = db, rules = H.shipped_rules, on_reload = 5 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "on_reload")
  -- tg.check takes neither
  ok, err = pcall(tg.check, { rules = H.shipped_rules, auto_reload = 100 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "auto_reload")
end

-- A failing on_reload is reported once and changes nothing; one that closes the engine
-- makes that context fail cleanly.
function TestOptions:test_callbacks_that_raise_or_close()
  local rules, db = H.shipped_copy(), H.refdb(5)
  local eng
  local calls = 0
  eng = tg.open { db = db, rules = rules, auto_reload = 50, on_reload = function()
    calls = calls + 1
    if calls == 1 then error("boom") end
    eng:close()
  end }
  local fam = rules .. "/families.lua"
  H.write(fam, H.read(fam) .. "-- one\n")
  sleep(200)
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 } -- boom is only reported
  ctx:close()
  lu.assertEquals(calls, 1)
  H.write(fam, H.read(fam) .. "-- two\n")
  sleep(200)
  local ok, err = pcall(eng.context, eng, { user = 1, workspace = 1, tenant = 1 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "closed")
  lu.assertEquals(calls, 2)
  ok, err = pcall(eng.context, eng, { user = 1, workspace = 1, tenant = 1 })
  lu.assertStrContains(err, "closed tenantguard engine")
end

function TestOptions:test_rules_stamp()
  local rules = H.shipped_copy()
  local a = tg.rules_stamp(rules)
  lu.assertStrMatches(a, "^%x+$")
  lu.assertEquals(tg.rules_stamp(rules), a)
  H.write(rules .. "/extra.lua", "-- new\n")
  local b = tg.rules_stamp(rules)
  lu.assertNotEquals(b, a)
  H.write(rules .. "/notes.txt", "not a rule file\n")
  lu.assertEquals(tg.rules_stamp(rules), b)
  os.remove(rules .. "/extra.lua")
  lu.assertEquals(tg.rules_stamp(rules), a)
end

os.exit(lu.LuaUnit.run())
