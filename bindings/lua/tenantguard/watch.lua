-- tenantguard.watch: run something again whenever the rule files change, until Ctrl-C.
-- Used by `tenantguard lint --watch`. Changes are seen through tg.rules_stamp (stat calls
-- only: name, size, mtime, ctime and inode of every *.lua file), polled every `interval` ms.
local tg = require "tenantguard"
local signal = require "tenantguard.signal"

local M = {}

M.DEFAULT_INTERVAL = 300

-- The stamp once it holds still: an editor may write a file in several steps (truncate,
-- write, rename), and a run in the middle of them would report a half-written file.
local function settled(rules, stamp)
  for _ = 1, 10 do
    if signal.sleep(50) then return stamp end
    local again = tg.rules_stamp(rules)
    if again == stamp then return stamp end
    stamp = again
  end
  return stamp
end

-- Calls run() now and after every change of the rules at `rules`, with before_rerun()
-- before each run after the first (a separator); an error raised by run is passed to
-- on_error and the watch goes on. Returns when SIGINT arrives (a second SIGINT ends the
-- process at once). opts: interval (ms), run, before_rerun, on_error.
function M.loop(rules, opts)
  local interval = opts.interval or M.DEFAULT_INTERVAL
  signal.trap()
  local function once()
    local ok, err = pcall(opts.run)
    if not ok and not signal.interrupted() then opts.on_error(err) end
    io.stdout:flush()
  end
  local last = tg.rules_stamp(rules)
  once()
  while not signal.sleep(interval) do
    local now = tg.rules_stamp(rules)
    if now ~= last then
      last = settled(rules, now)
      if signal.interrupted() then break end
      if opts.before_rerun then opts.before_rerun() end
      once()
    end
  end
  signal.default()
end

return M
