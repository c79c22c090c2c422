-- `tenantguard lint --watch`: started in the background by a shell wrapper (which records its
-- exit code), it prints a first report, a separator and a second report after a rule file
-- changes (a broken edit too: it keeps going), and exits 130 on SIGINT. Every wait is bounded
-- and generous (ASan); nothing asserts how fast it reacts.
local lu = require "luaunit"
local H = require "helpers"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function sleep(ms) os.execute(("sleep %.3f"):format(ms / 1000)) end

local function read_or_empty(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- Waits (at most `seconds`) until pred(text of path) holds; returns the text. Gives up at
-- once when the file `ended` appears first (the tool exited).
local function wait_for(path, pred, seconds, what, ended)
  local text
  for _ = 1, seconds * 10 do
    text = read_or_empty(path)
    if pred(text) then return text end
    if ended and read_or_empty(ended) ~= "" then
      sleep(200)
      text = read_or_empty(path)
      if pred(text) then return text end
      lu.fail(("the tool exited (%s) before %s; its output:\n%s"):format(
        read_or_empty(ended):match("%d+"), what, text))
    end
    sleep(100)
  end
  lu.fail(("timed out waiting for %s; output so far:\n%s"):format(what, text))
end

local function count(text, pattern)
  local n = 0
  for _ in text:gmatch(pattern) do n = n + 1 end
  return n
end

-- Starts the tool with args in the background; returns the paths of its output, its pid
-- file and the file its exit code is written to.
local function start(args)
  local out = H.tmpdir() .. "/out"
  local script = [[
"$0" "$@" >"$OUT" 2>&1 &
echo $! >"$OUT.pid"
wait $!
echo $? >"$OUT.rc"
]]
  local cmd = ("OUT=%s sh -c %s %s %s &"):format(q(out), q(script), q(H.tool), args)
  assert(os.execute(cmd))
  return out, out .. ".pid", out .. ".rc"
end

local function interrupt(pidfile)
  local pid = wait_for(pidfile, function(t) return t:match("^%d+%s*$") end, 30, "the pid")
  assert(os.execute("kill -INT " .. pid:match("%d+")))
end

TestLintWatch = {}
function TestLintWatch:tearDown() H.cleanup() end

function TestLintWatch:test_relints_on_change_and_exits_130_on_sigint()
  local rules = H.shipped_copy()
  local out, pidfile, rcfile = start("lint " .. q(rules) .. " --watch --interval 100")
  local summary = "0 errors"
  wait_for(out, function(t) return t:find(summary, 1, true) end, 60, "the first report", rcfile)

  -- a broken edit: a separator and a second report with the error at file:line
  local fam = rules .. "/families.lua"
  local original = H.read(fam)
  H.write(fam, (original:gsub('  table = "policies",', '  table = = "policies",', 1)))
  local text = wait_for(out, function(t) return t:find("1 error,", 1, true) end, 60,
    "the second report", rcfile)
  lu.assertEquals(count(text, "%-%-%-%- %d%d:%d%d:%d%d: rules changed, lint again %-%-%-%-"), 1)
  lu.assertStrContains(text, "families.lua:7:")
  local sep = text:find("---- ", 1, true)
  lu.assertTrue(sep > text:find(summary, 1, true), "the separator comes after the first report")

  -- it kept going: fixed again, a third report
  H.write(fam, original)
  text = wait_for(out, function(t) return count(t, " 0 errors") == 2 end, 60, "the third report",
    rcfile)
  lu.assertEquals(count(text, "rules changed, lint again"), 2)

  interrupt(pidfile)
  local rc = wait_for(rcfile, function(t) return t:match("%d") end, 60, "the exit code")
  lu.assertEquals(tonumber(rc:match("%d+")), 130)
  lu.assertStrContains(read_or_empty(out), "tenantguard lint: interrupted")
end

function TestLintWatch:test_json_is_one_object_per_run()
  local rules = H.shipped_copy()
  local out, pidfile, rcfile = start("lint " .. q(rules) .. " --watch --interval 100 --json")
  wait_for(out, function(t) return count(t, "\n") >= 1 end, 60, "the first report", rcfile)
  H.write(rules .. "/extra.lua", "-- a new rule file\n")
  local text = wait_for(out, function(t) return count(t, "\n") >= 2 end, 60, "the second report",
    rcfile)
  for line in text:gmatch("[^\n]+") do lu.assertStrMatches(line, '^{.*"errors":0.*}$') end
  interrupt(pidfile)
  local rc = wait_for(rcfile, function(t) return t:match("%d") end, 60, "the exit code")
  lu.assertEquals(tonumber(rc:match("%d+")), 130)
end

function TestLintWatch:test_interval_needs_watch_and_a_range()
  local rc, out = H.run_tool("lint " .. q(H.shipped_rules) .. " --interval 100")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(out, "--interval goes with --watch")
  rc, out = H.run_tool("lint " .. q(H.shipped_rules) .. " --watch --interval 5")
  lu.assertEquals(rc, 2)
  lu.assertStrContains(out, "--interval must be an integer from 50 to 60000")
end

os.exit(lu.LuaUnit.run())
