-- The fuzz_request driver: reads the fuzz input as a little program that builds requests
-- and sends them through the tenantguard Lua module (ctx:resolve, ctx:insert, ctx:update).
--
-- Input layout (every read past the end gives 0, so any byte string is a valid program):
--   byte    user (mod 12), workspace (mod 5), tenant (mod 16; 15 = none)
--   byte    flags: 1 decision log that runs the collector, 2 decision log that raises,
--           4 a second context on the same engine used in between
--   then up to 4 calls, each: byte op (mod 4: resolve, insert, update, resolve through a
--   table whose __index builds every value afresh and may run the collector), then the
--   arguments, each a presence byte then a value (see field() and gen()).
-- Strings are kept reversed and built when used, so a request's strings are anchored by
-- nothing but the request: a C pointer kept past a collection is caught by ASan.
local tg = require "tenantguard"

local M = {}

local eng
local verbose = os.getenv("TG_FUZZ_VERBOSE") ~= nil
-- TG_FUZZ_NO_GC: metamethods and callbacks do not run the collector, to look past a
-- use-after-free already known (fuzz/crashes/) while it is being fixed
local no_gc = os.getenv("TG_FUZZ_NO_GC") ~= nil
local function collect() if not no_gc then collectgarbage() end end

local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return (("%q"):format(v):gsub("\\\n", "\\n")) end
  if type(v) ~= "table" or depth > 2 then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x, depth + 1) end
  table.sort(parts)
  return "{" .. table.concat(parts, ", ") .. "}"
end
local pools = {}   -- name -> { reversed strings }
local pool_names = {}

local function add(pool, s)
  local p = pools[pool]
  if not p then p = {} pools[pool] = p pool_names[#pool_names + 1] = pool end
  p[#p + 1] = s:reverse()
end

function M.init(db_path, rules_dir)
  eng = assert(tg.open { db = db_path, rules = rules_dir, busy_timeout = 100 })
  local r = eng:rules()
  local tables = {}
  for _, f in ipairs(r.families) do
    add("family", f.name)
    tables[#tables + 1] = f.table
    for col in pairs(f.fixture or {}) do add("column", col) end
    for _, col in ipairs(f.search_columns or {}) do add("column", col) end
  end
  for _, c in ipairs(r.capabilities) do add("capability", c) end
  for _, e in ipairs(r.exceptions or {}) do if e.name then add("exception", e.name) end end
  for _, p in ipairs { "index", "detail", "row_action", "bulk_action", "relation_manager",
                       "global_search", "canonical_viewer" } do add("path", p) end
  local db = tg.connect(db_path)
  for _, t in ipairs(tables) do
    for _, row in ipairs(db:query("SELECT name FROM pragma_table_info(?)", t)) do
      add("column", row.name)
    end
  end
  db:close()
  -- sorted and without duplicates: the same input picks the same name in every process
  for _, name in ipairs(pool_names) do
    local p, seen, out = pools[name], {}, {}
    for _, s in ipairs(p) do if not seen[s] then seen[s] = true out[#out + 1] = s end end
    table.sort(out)
    pools[name] = out
  end
  if verbose then io.stdout:setvbuf("line") end
  for _, q in ipairs { "Policy", "1", "%", "_", "'", "\"", "a b", "%_%", "" } do add("query", q) end
  return eng
end

-- ---- the input reader ------------------------------------------------------------------------
local input, pos

local function byte()
  local b = input:byte(pos) or 0
  pos = pos + 1
  return b
end

local function take(n)
  local s = input:sub(pos, pos + n - 1)
  pos = pos + n
  return s
end

local function fixed(fmt, n)
  local s = take(n)
  return (string.unpack(fmt, s .. ("\0"):rep(n - #s)))
end

local function fresh(s) -- a maker for a string not anchored by anyone
  local rev = s:reverse()
  return function() return rev:reverse() end
end

local function const(v) return function() return v end end

local function pick(pool)
  local p = pools[pool] or { "" }
  local rev = p[byte() % #p + 1]
  return function() return rev:reverse() end
end

local SPECIAL_INT = { 0, 1, -1, 2, 7, 0x7fffffff, 0x80000000, -0x80000000, -0x80000001,
  0xffffffff, 1 << 53, (1 << 53) + 1, math.maxinteger, math.mininteger, math.maxinteger - 1,
  math.mininteger + 1, 500, 1000, 1001, 100000 }
local SPECIAL_FLOAT = { 0.5, -0.0, 0.0, 1.0, 3.0, 1 / 0, -1 / 0, 0 / 0, 2.0 ^ 63, -(2.0 ^ 63),
  2.0 ^ 53, 1e300, -1e-300, 2.0 ^ 31, -(2.0 ^ 31) - 1, 0.1 }

-- gen returns a maker: a function that builds the value each time it is called
local gen

local function gen_table(depth, with_meta)
  local n = byte() % 6
  local keys, makers = {}, {}
  for i = 1, n do
    local kb = byte() % 4
    if kb == 0 then keys[i] = i
    elseif kb == 1 then keys[i] = pick("column")()
    elseif kb == 2 then keys[i] = take(byte() % 8)
    else keys[i] = gen(depth + 1)() end
    makers[i] = gen(depth + 1)
  end
  local gc = with_meta and byte() or 0
  return function()
    local t = {}
    if with_meta then
      local store = {}
      for i = 1, n do if keys[i] ~= nil and keys[i] == keys[i] then store[keys[i]] = makers[i] end end
      setmetatable(t, {
        __index = function(_, k)
          if gc & 1 == 1 then collect() end
          local m = store[k]
          return m and m()
        end,
        __len = function() if gc & 2 == 2 then return math.maxinteger end return 1 << 40 end,
        __pairs = function() error("no pairs") end,
        __metatable = gc & 4 == 4 and "locked" or nil,
      })
    else
      for i = 1, n do
        local k = keys[i]
        if k ~= nil and k == k then t[k] = makers[i]() end
      end
    end
    return t
  end
end

function gen(depth)
  local tag = byte() % 18
  if tag == 0 then return const(nil)
  elseif tag == 1 then return const(byte() % 40 - 4)
  elseif tag == 2 then return const(fixed("<i8", 8))
  elseif tag == 3 then return const(SPECIAL_INT[byte() % #SPECIAL_INT + 1])
  elseif tag == 4 then return const(SPECIAL_FLOAT[byte() % #SPECIAL_FLOAT + 1])
  elseif tag == 5 then return const(fixed("<d", 8))
  elseif tag == 6 then return pick(pool_names[byte() % #pool_names + 1])
  elseif tag == 7 then return fresh(take(byte() % 48))
  elseif tag == 8 then
    local a, b = pick("family")(), take(byte() % 8)
    return fresh(a .. "\0" .. b)
  elseif tag == 9 then return const(byte() % 2 == 1)
  elseif tag == 10 then
    if depth > 3 then return const({}) end
    return gen_table(depth, false)
  elseif tag == 11 then
    if depth > 3 then return const({}) end
    return gen_table(depth, true)
  elseif tag == 12 then return const(tg.null)
  elseif tag == 13 then return const(function() collect() return "x" end)
  elseif tag == 14 then return fresh(tostring(SPECIAL_INT[byte() % #SPECIAL_INT + 1]))
  elseif tag == 15 then return fresh(("x"):rep(byte() * 64))
  elseif tag == 16 then return const(io.stdout) -- a userdata of another kind
  else return pick("column") end
end

-- A field: absent, plausible for its kind, or anything at all.
local function field(kind)
  local b = byte() % 4
  if b == 0 then return nil end
  if b == 3 then return gen(0) end
  if kind == "int" then return const(byte() % 64) end
  if kind == "limit" then return const(byte() % 30 + 1) end
  if kind == "ids" then
    local n, ids = byte() % 8, {}
    for i = 1, n do ids[i] = byte() % 64 end
    return function() return table.move(ids, 1, n, 1, {}) end
  end
  return pick(kind)
end

local REQUEST_FIELDS = {
  { "family", "family" }, { "path", "path" }, { "id", "int" }, { "ids", "ids" },
  { "owner", "int" }, { "limit", "limit" }, { "after", "int" }, { "query", "query" },
  { "capability", "capability" }, { "exception", "exception" },
}

local function request(with_meta)
  local makers = {}
  for _, f in ipairs(REQUEST_FIELDS) do makers[f[1]] = field(f[2]) end
  if not with_meta then
    local t = {}
    for k, m in pairs(makers) do t[k] = m() end
    return t
  end
  local gc = byte()
  local seen = 0
  return setmetatable({}, { __index = function(_, k)
    seen = seen + 1
    if gc & 1 == 1 or (gc & 2 == 2 and seen > 3) then collect() end
    if gc & 4 == 4 and k == "ids" and seen > 6 then error("raised from __index") end
    local m = makers[k]
    return m and m()
  end })
end

local function values()
  local b = byte() % 8
  if b == 7 then return gen(0)() end
  local t = {}
  for _ = 1, b do
    local k = byte() % 4 == 0 and gen(1)() or pick("column")()
    if k ~= nil and k == k then t[k] = gen(1)() end
  end
  if byte() % 8 == 0 then return gen_table(0, true)() end
  return t
end

local function options()
  local b = byte() % 4
  if b == 0 then return nil end
  if b == 1 then return { capability = pick("capability")() } end
  if b == 2 then return { capability = gen(0)() } end
  return gen(0)()
end

local function call(ctx)
  local op = byte() % 4
  if op == 0 or op == 3 then
    local req = request(op == 3)
    if verbose then print("resolve", op == 3 and "(through __index)" or show(req)) end
    return ctx:resolve(req)
  elseif op == 1 then
    local fam = byte() % 4 == 0 and gen(0) or pick("family")
    local f, v, o = fam(), values(), options()
    if verbose then print("insert", show(f), show(v), show(o)) end
    return ctx:insert(f, v, o)
  else
    local fam = byte() % 4 == 0 and gen(0) or pick("family")
    local id = byte() % 4 == 0 and gen(0)() or byte() % 64
    local f, v, o = fam(), values(), options()
    if verbose then print("update", show(f), show(id), show(v), show(o)) end
    return ctx:update(f, id, v, o)
  end
end

function M.run(bytes)
  input, pos = bytes, 1
  local user, ws, tenant = byte() % 12, byte() % 5, byte() % 16
  local flags = byte()
  local ok, ctx = pcall(eng.context, eng, { user = user, workspace = ws,
    tenant = tenant ~= 15 and tenant or nil })
  if verbose then print("context", user, ws, tenant ~= 15 and tenant or nil, ok or ctx) end
  if not ok then return end
  local other
  if flags & 4 == 4 then
    ok, other = pcall(eng.context, eng, { user = 1, workspace = 1, tenant = 1 })
    if not ok then other = nil end
  end
  if flags & 3 ~= 0 then
    eng:set_decision_log(function(ev)
      local _ = ev.family, ev.path, ev.status
      collect()
      if flags & 2 == 2 then error("raised from the decision log") end
    end)
  end
  for _ = 1, 4 do
    if pos > #input then break end
    if verbose then
      print("  ->", show(select(2, pcall(call, ctx))))
    else
      pcall(call, ctx)
    end
    if other then pcall(other.resolve, other, { family = pick("family")(), path = "index" }) end
  end
  eng:set_decision_log(nil)
  ctx:close()
  if other then other:close() end
end

return M
