-- The worker's progress display: the formatter (width, clamp, rate and ETA over wall-clock
-- time, NO_COLOR) and the worker command with stderr piped (plain lines on stderr, nothing
-- of the progress on stdout).
local lu = require "luaunit"
local H = require "helpers"
local progress = require "tenantguard.progress"

local ESC = string.char(27)

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The columns a line takes on a terminal (escape sequences take none; the lines are ASCII).
local function columns(s) return #progress.strip(s) end

-- Many states, from nothing done to more done than the (estimated) total.
local function states()
  local out = {}
  for _, total in ipairs { 0, 1, 7, 999, 36302, 123456789, 9007199254740993 } do
    for _, done in ipairs { 0, 1, total // 3, total - 1, total, total + 5, total * 2 + 1 } do
      for _, elapsed in ipairs { 0, 0.01, 1, 59.5, 3600, 86400 * 150 } do
        out[#out + 1] = { done, total, elapsed }
      end
    end
  end
  return out
end

TestProgressFormat = {}

-- Width 80 and 40 (and narrower) are never exceeded, with or without color and a label.
function TestProgressFormat:test_never_wider_than_the_terminal()
  local labels = { nil, "policies", "entra_role_definitions", ("x"):rep(70) }
  for _, width in ipairs { 80, 40, 30, 20 } do
    for _, s in ipairs(states()) do
      for _, color in ipairs { true, false } do
        for li = 1, #labels + 1 do
          local opts = { label = labels[li], rows = s[1] }
          local line = progress.line(s[1], s[2], s[3], width, color, opts)
          lu.assertTrue(columns(line) <= width, ("%d columns > %d: %q"):format(columns(line),
            width, line))
          lu.assertNotStrContains(line, "\r")
          lu.assertNotStrContains(line, "\n")
          local plain = progress.plain(s[1], s[2], s[3], width, opts)
          lu.assertTrue(#plain <= width, ("%d > %d: %q"):format(#plain, width, plain))
        end
      end
    end
  end
  -- at 80 columns the bar, the percentage, the counts, the rate and the ETA are all there
  local line = progress.line(1250, 5000, 10, 80, false, { label = "policies" })
  lu.assertStrContains(line, "[#####---------------]")
  lu.assertStrContains(line, "25.0%")
  lu.assertStrContains(line, "1250/5000 rows")
  lu.assertStrContains(line, "125 rows/s")
  lu.assertStrContains(line, "ETA 30s")
  lu.assertStrContains(line, "policies")
  -- at 40 the percentage and the ETA stay
  line = progress.line(1250, 5000, 10, 40, false, { label = "policies" })
  lu.assertStrContains(line, "25.0%")
  lu.assertStrContains(line, "ETA 30s")
end

-- Totals are estimates: more done than the total shows the total, 100%, ETA 0s.
function TestProgressFormat:test_clamped_at_the_total()
  for _, width in ipairs { 80, 40 } do
    local line = progress.line(36315, 36302, 7, width, false)
    lu.assertStrContains(line, "100.0%")
    lu.assertNotStrContains(line, "36315")
    lu.assertStrContains(line, "ETA 0s")
    -- the bar is full, never longer than its brackets
    local bar = line:match("%[([#%-]*)%]")
    if bar then lu.assertStrMatches(bar, "^#+$") end
  end
  lu.assertStrContains(progress.line(36315, 36302, 7, 80, false), "36302/36302 rows")
  local plain = progress.plain(36315, 36302, 7, nil, { label = "audit_logs", run = 1 })
  lu.assertEquals(plain, "run 1: audit_logs 100.0% 36302/36302 rows, 5186 rows/s, "
    .. "elapsed 7s, ETA 0s")
  -- negative or absent counts never show below zero; a zero total is done
  lu.assertStrContains(progress.line(-5, 10, 1, 80, false), "  0.0%")
  lu.assertStrContains(progress.line(0, 0, 1, 80, false), "100.0%")
end

-- Rate and ETA are over wall-clock time: 1000 rows in 10 s of which 8 were pauses is
-- 100 rows/s, so 1000 more rows take 10 s, not the 2 s of batch time alone.
function TestProgressFormat:test_eta_counts_pauses()
  local s = progress.stats(1000, 2000, 10)
  lu.assertEquals(s.rate, 100)
  lu.assertEquals(s.eta, 10)
  lu.assertStrContains(progress.line(1000, 2000, 10, 80, false), "100 rows/s")
  lu.assertStrContains(progress.line(1000, 2000, 10, 80, false), "ETA 10s")
  -- rows done by this worker (opts.rows) set the rate; done counts earlier workers' rows
  s = progress.stats(1500, 2000, 10, { rows = 500 })
  lu.assertEquals(s.rate, 50)
  lu.assertEquals(s.eta, 10)
  -- no rate yet: the ETA is unknown, never 0
  lu.assertStrContains(progress.line(0, 2000, 0, 80, false), "ETA ?")
  lu.assertStrContains(progress.line(10, 2000, 0.2, 80, false, { min_elapsed = 1 }), "ETA ?")
  lu.assertEquals(progress.duration(65), "1m05s")
  lu.assertEquals(progress.duration(2 * 3600 + 3 * 60), "2h03m")
end

-- The meter, with a clock that the test moves: pauses between batches (the worker's
-- pause_ms) count, batch time alone would not.
function TestProgressFormat:test_meter_eta_includes_pauses()
  local now = 100
  local lines = {}
  local m = progress.meter { tty = false, clock = function() return now end,
    write = function(t) lines[#lines + 1] = t end, interval = 1 }
  -- 10 batches of 100 rows, each 50 ms of work followed by a 950 ms pause
  for i = 1, 10 do
    now = now + 1
    m:update { run = 4, table = "policies", run_done = i * 100, run_total = 2000,
      batch_rows = 100, batch_ms = 50, rows_per_second = 2000 }
  end
  m:finish()
  local last = lines[#lines]
  lu.assertStrContains(last, "1000/2000 rows, 100 rows/s, elapsed 10s, ETA 10s")
  lu.assertStrContains(last, "run 4: policies")
  for _, l in ipairs(lines) do
    lu.assertStrMatches(l, "^run 4: policies [^\r\27]*\n$")
  end
  -- one line per interval: 10 s of batches, at most 11 lines (each second, and the last)
  lu.assertTrue(#lines >= 10 and #lines <= 11, #lines .. " lines")
  -- many batches within one interval give one line
  local n = #lines
  for i = 1, 50 do
    now = now + 0.01
    m:update { run = 4, table = "policies", run_done = 1000 + i, run_total = 2000,
      batch_rows = 1, batch_ms = 1, rows_per_second = 1000 }
  end
  lu.assertTrue(#lines - n <= 1, (#lines - n) .. " lines within half a second")
end

-- NO_COLOR (set, not empty) or no terminal: not one escape byte. Color otherwise.
function TestProgressFormat:test_no_color_no_escapes()
  local function env(t) return function(k) return t[k] end end
  lu.assertFalse(progress.use_color(true, env { NO_COLOR = "1", TERM = "xterm" }))
  lu.assertFalse(progress.use_color(false, env { TERM = "xterm" }))
  lu.assertFalse(progress.use_color(true, env { TERM = "dumb" }))
  lu.assertTrue(progress.use_color(true, env { TERM = "xterm" }))
  lu.assertTrue(progress.use_color(true, env { NO_COLOR = "", TERM = "xterm" }))
  for _, s in ipairs(states()) do
    lu.assertNotStrContains(progress.line(s[1], s[2], s[3], 80, false, { label = "t" }), ESC)
    lu.assertNotStrContains(progress.plain(s[1], s[2], s[3], 80, { label = "t" }), ESC)
  end
  lu.assertStrContains(progress.line(5, 10, 1, 80, true), ESC .. "[32m")
  -- a terminal meter without color writes \r and the line, still no escape
  local out = {}
  local m = progress.meter { tty = true, color = false, width = 40, clock = function() return 5 end,
    write = function(t) out[#out + 1] = t end }
  m:update { run = 1, table = "policies", run_done = 5, run_total = 10, batch_rows = 5 }
  m:finish()
  local all = table.concat(out)
  lu.assertNotStrContains(all, ESC)
  lu.assertStrMatches(all, "^\r[^\n]*\n$")
  for line in all:gmatch("\r([^\r\n]*)") do lu.assertTrue(#line <= 39, line) end
  -- a label cannot smuggle an escape in either
  lu.assertNotStrContains(progress.line(1, 2, 1, 80, false, { label = ESC .. "[31mred" }), ESC)
end

-- The terminal's width: COLUMNS first, then what the terminal says, else 80.
function TestProgressFormat:test_terminal_width()
  local function env(t) return function(k) return t[k] end end
  local function popen_says(text)
    return function()
      return { read = function() return text end, close = function() end }
    end
  end
  lu.assertEquals(progress.terminal_width(env { COLUMNS = "132" }, popen_says("")), 132)
  lu.assertEquals(progress.terminal_width(env {}, popen_says("50 100\n")), 100)
  lu.assertEquals(progress.terminal_width(env { COLUMNS = "x" }, popen_says("")), 80)
  lu.assertEquals(progress.terminal_width(env {}, function() error("no shell") end), 80)
end

-- ---------------------------------------------------------------------------------------
TestProgressWorker = {}

function TestProgressWorker:tearDown() H.cleanup() end

-- Runs a shell command line; returns rc, stdout, stderr.
local function run(cmdline)
  local o, e = os.tmpname(), os.tmpname()
  local p = assert(io.popen(("%s </dev/null >%s 2>%s; echo $?"):format(cmdline, q(o), q(e))))
  local rc = tonumber((p:read("a"):match("(%d+)%s*$")))
  p:close()
  local out, err = H.read(o), H.read(e)
  os.remove(o)
  os.remove(e)
  return rc, out, err
end

-- With stderr piped: plain progress lines on stderr (no \r, no escapes, even with a
-- terminal's COLUMNS and no NO_COLOR), one a second at most, done never above the total,
-- and only the summary on stdout.
function TestProgressWorker:test_piped_worker_prints_plain_lines()
  local db = H.refdb(600)
  local tool = q(H.tool)
  for _, args in ipairs { "rollout add_columns", "rollout enforce_writes",
      "backfill --batch-rows 200 --pause-ms 150" } do
    local rc, out, err = run(("%s %s --db %s"):format(tool, args, q(db)))
    lu.assertEquals(rc, 0, args .. out .. err)
  end
  local rc, out, err = run(("env -u NO_COLOR COLUMNS=200 TERM=xterm %s worker --db %s")
    :format(tool, q(db)))
  lu.assertEquals(rc, 0, out .. err)
  -- stdout: the summary, nothing of the progress
  lu.assertStrContains(out, "worker: ")
  lu.assertStrContains(out, "nothing left to do")
  lu.assertNotStrContains(out, "rows/s,")
  lu.assertNotStrContains(out, "ETA")
  lu.assertNotStrContains(out, "\r")
  -- stderr: plain lines only
  lu.assertNotStrContains(err, "\r")
  lu.assertNotStrContains(err, ESC)
  local lines = {}
  for line in err:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  lu.assertTrue(#lines >= 2, err)
  local last_done = -1
  for _, line in ipairs(lines) do
    local done, total = line:match("^run %d+: %S+ [%d.]+%% (%d+)/(%d+) rows, %S+ rows/s, "
      .. "elapsed %S+, ETA %S+$")
    lu.assertNotNil(done, "not a progress line: " .. line)
    done, total = tonumber(done), tonumber(total)
    lu.assertTrue(done <= total, line)
    lu.assertTrue(done >= last_done, line)
    last_done = done
  end
  lu.assertStrContains(lines[#lines], "100.0%")
  -- the pauses count: the rows/s shown is below what the batches alone ran at
  -- (about 12 x 600 rows in >= 36 pauses of 150 ms: at most 1,350 rows/s on the wall clock)
  local rate = tonumber(lines[#lines]:match(", (%d+) rows/s"))
  lu.assertNotNil(rate, lines[#lines])
  lu.assertTrue(rate <= 1400, lines[#lines])
  -- one line a second at most (and the last): fewer lines than batches
  local batches = tonumber(out:match("worker: (%d+) batches"))
  lu.assertTrue(#lines < batches, #lines .. " lines for " .. batches .. " batches")
  -- --quiet: no progress at all
  rc, out, err = run(("%s worker --db %s --quiet"):format(tool, q(db)))
  lu.assertEquals(rc, 0, out .. err)
  lu.assertEquals(err, "")
end
os.exit(lu.LuaUnit.run())
