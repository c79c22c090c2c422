-- The worker's progress display: pure formatting functions (unit-tested) and a small meter
-- that feeds them from eng:work{ progress = } and decides when to draw.
--
--   progress.line(done, total, elapsed, width, color, opts) -> a bar for a terminal line
--   progress.plain(done, total, elapsed, width, opts)       -> one plain line (no escapes)
--   progress.meter{ ... }                                     -> :update(p), :finish()
--
-- Every line fits in `width` columns (escape sequences take none), never shows more done than
-- the total (totals can be estimates), and computes the rate over wall-clock time, so pauses
-- between batches lower the rate and lengthen the ETA as they lengthen the run.
local M = {}

local ESC = string.char(27)
local GREEN, DIM, RESET = ESC .. "[32m", ESC .. "[2m", ESC .. "[0m"

M.DEFAULT_WIDTH = 80
M.MIN_WIDTH = 20

-- A duration in seconds as the shortest readable text: 7s, 1m05s, 2h03m, 3d04h; "?" when
-- unknown (no rate yet).
function M.duration(s)
  if s == nil or s ~= s or s == math.huge or s < 0 then return "?" end
  s = math.floor(s + 0.5)
  if s < 60 then return ("%ds"):format(s) end
  if s < 3600 then return ("%dm%02ds"):format(s // 60, s % 60) end
  if s < 86400 then return ("%dh%02dm"):format(s // 3600, s % 3600 // 60) end
  if s < 100 * 86400 then return ("%dd%02dh"):format(s // 86400, s % 86400 // 3600) end
  return ">99d"
end

-- A rate as text: 950, 12.3k, 4.5M (rows/s), "?" when unknown.
local function rate_text(r)
  if r == nil or r ~= r or r == math.huge then return "?" end
  if r < 10000 then return ("%d"):format(math.floor(r + 0.5)) end
  if r < 1e6 then return ("%.1fk"):format(r / 1e3) end
  return ("%.1fM"):format(r / 1e6)
end

-- The numbers every line shows, from done/total/elapsed: done clamped to [0, total], the
-- fraction, the wall-clock rate (rows done in `elapsed` seconds: opts.rows, default done) and
-- the ETA of what is left at that rate. Before opts.min_elapsed seconds, rate and ETA are
-- unknown (the first batch alone would promise far too much).
function M.stats(done, total, elapsed, opts)
  opts = opts or {}
  total = math.max(0, math.tointeger(total) or math.floor(total or 0))
  done = math.max(0, math.min(math.tointeger(done) or math.floor(done or 0), total))
  local frac = total > 0 and done / total or 1
  local rows = opts.rows or done
  local rate = (elapsed and elapsed > 0 and elapsed >= (opts.min_elapsed or 0))
    and rows / elapsed or nil
  local left = total - done
  local eta
  if left == 0 then eta = 0
  elseif rate and rate > 0 then eta = left / rate end
  return { done = done, total = total, frac = frac, rate = rate, eta = eta }
end

-- Cuts text to at most n bytes (the lines are ASCII except for a label, which is sanitized).
local function fit(s, n)
  if n <= 0 then return "" end
  if #s <= n then return s end
  return s:sub(1, n)
end

-- A label (a table name) without control bytes or non-ASCII, so every byte is one column.
local function clean(label)
  if not label or label == "" then return nil end
  return (tostring(label):gsub("[^\32-\126]", "?"))
end

-- One terminal line: [#####-----]  45.2%  1234/5000 rows 812 rows/s ETA 5s label. The
-- bar takes 10 to 20 columns, the counts keep their width as they grow, the label (the
-- table) gets what is left; on a narrow terminal the label goes first, then the counts,
-- then the rate, then the bar. color: the filled part green, the rest dim.
function M.line(done, total, elapsed, width, color, opts)
  opts = opts or {}
  width = math.max(M.MIN_WIDTH, math.tointeger(width) or M.DEFAULT_WIDTH)
  local s = M.stats(done, total, elapsed, opts)
  local digits = #tostring(s.total)
  local parts = {
    { text = ("%5.1f%%"):format(math.floor(s.frac * 1000) / 10), keep = 1 },
    { text = ("%" .. digits .. "d/%d rows"):format(s.done, s.total), keep = 3 },
    { text = rate_text(s.rate) .. " rows/s", keep = 2 },
    { text = "ETA " .. M.duration(s.eta), keep = 1 },
  }
  local function text_width()
    local w = 0
    for _, p in ipairs(parts) do
      if p.text then w = w + 1 + #p.text end
    end
    return w
  end
  -- drop the least needed parts until the bar has room for 10 columns
  for level = 3, 2, -1 do
    if width - text_width() - 2 >= 10 then break end
    for _, p in ipairs(parts) do if p.keep == level then p.text = nil end end
  end
  local bar_w = math.min(20, width - text_width() - 2)
  local out, visible = {}, {}
  if bar_w >= 5 then
    local filled = math.floor(s.frac * bar_w)
    local a, b = ("#"):rep(filled), ("-"):rep(bar_w - filled)
    visible[1] = "[" .. a .. b .. "]"
    out[1] = color and ("[" .. GREEN .. a .. RESET .. DIM .. b .. RESET .. "]") or visible[1]
  else
    bar_w = -2
  end
  local label = clean(opts.label)
  local room = width - text_width() - (bar_w + 2) - 1
  if label and room >= 4 then
    parts[#parts + 1] = { text = fit(label, room) }
  end
  for _, p in ipairs(parts) do
    if p.text then
      out[#out + 1] = p.text
      visible[#visible + 1] = p.text
    end
  end
  local plain = table.concat(visible, " ")
  if #plain > width then return fit(plain, width) end -- never wider, whatever happened
  return table.concat(out, " ")
end

-- One plain line for a log or a pipe: no escapes, no carriage return. With a width, the
-- line is cut to fit it (the label first); without one, the label is whole.
--   run 3: policies 45.2% 1234/5000 rows, 812 rows/s, elapsed 2s, ETA 5s
function M.plain(done, total, elapsed, width, opts)
  opts = opts or {}
  width = width and math.max(M.MIN_WIDTH, math.tointeger(width) or M.DEFAULT_WIDTH)
  local s = M.stats(done, total, elapsed, opts)
  local head = opts.run and ("run %d: "):format(opts.run) or ""
  local label = clean(opts.label)
  local body = ("%.1f%% %d/%d rows, %s rows/s, elapsed %s, ETA %s"):format(
    math.floor(s.frac * 1000) / 10, s.done, s.total, rate_text(s.rate),
    M.duration(elapsed), M.duration(s.eta))
  if label then
    local room = width and (width - #head - #body - 1) or #label
    if room >= 4 then head = head .. fit(label, room) .. " " end
  end
  return width and fit(head .. body, width) or head .. body
end

-- The width of the terminal on stderr: COLUMNS when set to a number, else what the terminal
-- says (stty on stderr, then tput), else 80. Only asked when stderr is a terminal.
function M.terminal_width(getenv, popen)
  getenv, popen = getenv or os.getenv, popen or io.popen
  local n = math.tointeger(tonumber(getenv("COLUMNS") or ""))
  if n and n > 0 then return n end
  for _, cmd in ipairs { "stty size <&2 2>/dev/null", "tput cols 2>/dev/null" } do
    local ok, p = pcall(popen, cmd)
    if ok and p then
      local s = p:read("a") or ""
      p:close()
      local cols = math.tointeger(tonumber(s:match("(%d+)%s*$") or ""))
      if cols and cols > 0 then return cols end
    end
  end
  return M.DEFAULT_WIDTH
end

-- Whether to color: a terminal, NO_COLOR unset or empty (no-color.org), TERM not "dumb".
function M.use_color(tty, getenv)
  getenv = getenv or os.getenv
  if not tty then return false end
  local no = getenv("NO_COLOR")
  if no and no ~= "" then return false end
  return getenv("TERM") ~= "dumb"
end

-- A wall clock in seconds with sub-second resolution where the system offers one
-- (/proc/uptime: monotonic, 10 ms), else os.time() (1 s).
function M.clock()
  local f = io.open("/proc/uptime", "r")
  if f then
    local t = f:read("n")
    f:close()
    if t then return t end
  end
  return os.time()
end

-- A meter for eng:work{ progress = }: o = { tty =, width =, color =, write = fn(text),
-- clock = fn() -> seconds, interval = seconds between plain lines (default 1),
-- redraw = seconds between terminal redraws (default 0.1), min_elapsed = seconds before a
-- rate is shown (default 1) }. The clock starts when the meter
-- is made, so time before the first batch and every pause count.
function M.meter(o)
  local self = {
    tty = o.tty, color = o.color and o.tty, write = o.write,
    clock = o.clock or M.clock, interval = o.interval or 1, redraw = o.redraw or 0.1,
    width = o.width or M.DEFAULT_WIDTH, rows = 0,
    min_elapsed = o.min_elapsed or 1,
  }
  self.t0 = self.clock()
  self.last = nil

  function self:draw(force)
    local p = self.p
    if not p then return end
    local now = self.clock()
    local gap = self.tty and self.redraw or self.interval
    if not force and self.last and now - self.last < gap then return end
    self.last = now
    local elapsed = now - self.t0
    local opts = { rows = self.rows, label = p.table, run = p.run,
      min_elapsed = self.min_elapsed }
    if self.tty then
      -- one column short of the width: the cursor never wraps at the last column
      local w = math.max(M.MIN_WIDTH, self.width - 1)
      local text = M.line(p.run_done, p.run_total, elapsed, w, self.color, opts)
      local pad = w - #M.strip(text)
      self.write("\r" .. text .. (" "):rep(math.max(0, pad)))
    else
      self.write(M.plain(p.run_done, p.run_total, elapsed, nil, opts) .. "\n")
    end
  end

  -- One progress report from the worker (a batch committed).
  function self:update(p)
    self.rows = self.rows + (p.batch_rows or 0)
    self.p = p
    self:draw(false)
  end

  -- The worker returned: the last state once more, and the terminal line ended.
  function self:finish()
    if not self.p then return end
    self:draw(true)
    if self.tty then self.write("\n") end
  end

  return self
end

-- Text without ANSI escape sequences (what a terminal shows).
function M.strip(s)
  return (s:gsub(ESC .. "%[[%d;]*%a", ""))
end

return M
