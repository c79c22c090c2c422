-- Summarises a JSON-lines decision log (eng:set_decision_log(path), `resolve --log`,
-- `matrix --log`): decisions by status, reason, family and path, and the users and tenants
-- with the most 404s, since a spike of wrong-tenant 404s is how an attack or a broken link
-- shows up. A line that is not a decision is counted and reported by its line number, never
-- an error.
--
--   local logsum = require "tenantguard.logsum"
--   local s, err = logsum.file("decisions.jsonl", { top = 10 })   -- nil, message: unreadable
--   print(logsum.report(s))            -- aligned tables for people
--   json.encode(logsum.shape(s))       -- the stable JSON shape (lists are always arrays)
local M = {}

M.DEFAULT_TOP = 10
M.MALFORMED_SHOWN = 5   -- malformed lines listed by number (all are counted)
local MAX_DEPTH = 32

-- ---- a strict JSON decoder: integers stay exact 64-bit integers --------------------------

local NULL = setmetatable({}, { __name = "null", __tostring = function() return "null" end })
M.null = NULL

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
  r = "\r", t = "\t" }
local WORDS = { t = "true", f = "false", n = "null" }
local WORD_VALUE = { ["true"] = true, ["false"] = false, null = NULL }
local STRING_RUN = '^[^"\\' .. "\0-\31" .. ']*'

-- Decodes one JSON text; returns the value, or nil and "message at column N".
function M.decode(s)
  local pos = 1
  local function fail(msg) error({ msg = msg .. " at column " .. pos }, 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or (#s + 1) end
  local value

  local function str()
    pos = pos + 1
    local buf = {}
    while true do
      local _, e = s:find(STRING_RUN, pos)
      buf[#buf + 1] = s:sub(pos, e)
      pos = e + 1
      local c = s:sub(pos, pos)
      if c == '"' then
        pos = pos + 1
        return table.concat(buf)
      elseif c == "\\" then
        local k = s:sub(pos + 1, pos + 1)
        if ESCAPES[k] then
          buf[#buf + 1] = ESCAPES[k]
          pos = pos + 2
        elseif k == "u" then
          local hex = s:match("^%x%x%x%x", pos + 2)
          if not hex then fail("bad \\u escape") end
          local cp = tonumber(hex, 16)
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF then
            local lo = s:match("^\\u([dD][c-fC-F]%x%x)", pos)
            if lo then
              cp = 0x10000 + ((cp - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00)
              pos = pos + 6
            end
          end
          buf[#buf + 1] = utf8.char(cp)
        else
          fail("bad escape")
        end
      elseif c == "" then
        fail("unterminated string")
      else
        fail("control character in a string")
      end
    end
  end

  local function number()
    local int = s:match("^-?0", pos) or s:match("^-?[1-9]%d*", pos)
    if not int then fail("unexpected character") end
    local e = pos + #int
    local frac = s:match("^%.%d+", e) or ""
    e = e + #frac
    local exp = s:match("^[eE][-+]?%d+", e) or ""
    e = e + #exp
    local text = s:sub(pos, e - 1)
    pos = e
    if frac == "" and exp == "" then
      local n = math.tointeger(tonumber(text))
      if n then return n end
    end
    return tonumber(text) + 0.0
  end

  local function container(depth, close)
    if depth > MAX_DEPTH then fail("nested too deep") end
    pos = pos + 1
    local t, n, seen = {}, 0, {}
    ws()
    if s:sub(pos, pos) == close then
      pos = pos + 1
      return t
    end
    while true do
      if close == "}" then
        if s:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        if seen[k] then fail("duplicate key '" .. k .. "'") end
        seen[k] = true
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        ws()
        t[k] = value(depth + 1)
      else
        n = n + 1
        t[n] = value(depth + 1)
      end
      ws()
      local c = s:sub(pos, pos)
      pos = pos + 1
      if c == close then return t end
      if c ~= "," then
        pos = pos - 1
        fail("expected ',' or '" .. close .. "'")
      end
      ws()
    end
  end

  function value(depth)
    local c = s:sub(pos, pos)
    if c == "{" then return container(depth, "}") end
    if c == "[" then return container(depth, "]") end
    if c == '"' then return str() end
    local word = WORDS[c]
    if word then
      if s:sub(pos, pos + #word - 1) ~= word then fail("unexpected character") end
      pos = pos + #word
      return WORD_VALUE[word]
    end
    if c == "" then fail("unexpected end") end
    return number()
  end

  local ok, res = pcall(function()
    ws()
    local v = value(1)
    ws()
    if pos <= #s then fail("trailing text") end
    return v
  end)
  if ok then return res end
  if type(res) == "table" then return nil, res.msg end
  return nil, tostring(res) -- a Lua limit (stack, memory): still only this line
end

-- ---- keys as the log writes them: a number, a string, {"blob":"<hex>"}, or null ----------

local function is_key(v)
  if math.type(v) == "integer" or type(v) == "string" or v == NULL then return true end
  return type(v) == "table" and type(v.blob) == "string" and next(v, next(v)) == nil
    and v.blob:match("^%x*$") ~= nil
end

-- One identity per key, type included: 5 and "5" are different users.
local function key_id(v)
  if math.type(v) == "integer" then return "i" .. v end
  if type(v) == "string" then return "s" .. v end
  if type(v) == "table" and v.blob then return "b" .. v.blob:lower() end
  return "n"
end

-- A key as the command line types it back (integers plain, text that looks like an integer
-- as text:K, blobs as blob:<hex>).
function M.key_text(v)
  if math.type(v) == "integer" then return tostring(v) end
  if type(v) == "string" then
    if v:match("^%-?%d+$") or v:match("^text:") then return "text:" .. v end
    return v
  end
  if type(v) == "table" and v.blob then return "blob:" .. v.blob:lower() end
  return "(none)"
end

-- The key in the JSON output, as it was in the log.
local function key_json(v)
  if type(v) == "table" and v.blob then return { blob = v.blob:lower() } end
  return v
end

-- Checks one decoded line; returns the decision or nil and what is wrong with it.
local function as_decision(v)
  if type(v) ~= "table" or v == NULL or (v[1] ~= nil) then return nil, "not a JSON object" end
  local st = v.status
  if math.type(st) ~= "integer" or st < 100 or st > 599 then
    return nil, "no HTTP status (\"status\")"
  end
  for _, f in ipairs { "reason", "family", "path" } do
    if type(v[f]) ~= "string" then return nil, ("no \"%s\" string"):format(f) end
  end
  for _, f in ipairs { "user", "workspace" } do
    if v[f] == nil or v[f] == NULL or not is_key(v[f]) then
      return nil, ("no \"%s\" key"):format(f)
    end
  end
  if v.tenant ~= nil and not is_key(v.tenant) then return nil, "a \"tenant\" that is no key" end
  if v.time ~= nil and type(v.time) ~= "string" then return nil, "a \"time\" that is no text" end
  return v
end

-- ---- the summary ---------------------------------------------------------------------

local function bump(map, id, make)
  local e = map[id]
  if not e then
    e = make()
    e.count = 0
    map[id] = e
  end
  e.count = e.count + 1
  return e
end

-- Entries of a map as a list, most first, then by name: stable for equal counts.
local function ranked(map, name_of, n)
  local list = {}
  for _, e in pairs(map) do list[#list + 1] = e end
  table.sort(list, function(a, b)
    if a.count ~= b.count then return a.count > b.count end
    return name_of(a) < name_of(b)
  end)
  if n then for i = #list, n + 1, -1 do list[i] = nil end end
  return list
end

-- Summarises decisions from an iterator of lines. opts.top: how many users and tenants
-- (default 10). Returns the summary table (see M.shape for its JSON form).
function M.lines(iter, opts)
  opts = opts or {}
  local top = opts.top or M.DEFAULT_TOP
  local s = { lines = 0, decisions = 0, blank = 0, malformed = 0, malformed_lines = {},
    from = "", to = "", without_tenant_404 = 0, top = top, reloads = 0, failed_reloads = 0 }
  local status, reason, family, path, users, tenants = {}, {}, {}, {}, {}, {}
  for line in iter do
    s.lines = s.lines + 1
    line = line:gsub("\r$", "")
    if line:match("^%s*$") then
      s.blank = s.blank + 1
    else
      local v, err = M.decode(line)
      local d
      local reload = type(v) == "table" and v.kind == "reload"
      if reload then
        -- an automatic reload's line (tg.open{ auto_reload = }): counted, not a decision
        s.reloads = s.reloads + 1
        if v.ok ~= true then s.failed_reloads = s.failed_reloads + 1 end
      elseif v ~= nil then d, err = as_decision(v) end
      if reload then
        -- counted above
      elseif not d then
        s.malformed = s.malformed + 1
        if #s.malformed_lines < M.MALFORMED_SHOWN then
          s.malformed_lines[#s.malformed_lines + 1] = { line = s.lines,
            error = v == nil and ("not JSON: " .. err) or err }
        end
      else
        s.decisions = s.decisions + 1
        if d.time then
          if s.from == "" or d.time < s.from then s.from = d.time end
          if d.time > s.to then s.to = d.time end
        end
        local nf = d.status == 404 and 1 or 0
        bump(status, d.status, function() return { status = d.status } end)
        bump(reason, d.reason, function() return { reason = d.reason, status = d.status } end)
        local f = bump(family, d.family, function() return { family = d.family, not_found = 0 } end)
        f.not_found = f.not_found + nf
        local p = bump(path, d.path, function() return { path = d.path, not_found = 0 } end)
        p.not_found = p.not_found + nf
        if nf == 1 then
          local u = bump(users, key_id(d.user), function()
            return { user = d.user, reasons = {} } end)
          bump(u.reasons, d.reason, function() return { reason = d.reason } end)
          if d.tenant == nil or d.tenant == NULL then
            s.without_tenant_404 = s.without_tenant_404 + 1
          else
            local t = bump(tenants, key_id(d.tenant), function()
              return { tenant = d.tenant, reasons = {} } end)
            bump(t.reasons, d.reason, function() return { reason = d.reason } end)
          end
        end
      end
    end
  end
  local function by(field) return function(e) return tostring(e[field]) end end
  s.by_status = ranked(status, by("status"))
  s.by_reason = ranked(reason, by("reason"))
  s.by_family = ranked(family, by("family"))
  s.by_path = ranked(path, by("path"))
  local function size(map)
    local k = 0
    for _ in pairs(map) do k = k + 1 end
    return k
  end
  s.users_404, s.tenants_404 = size(users), size(tenants)
  s.top_users_404 = ranked(users, function(e) return key_id(e.user) end, top)
  s.top_tenants_404 = ranked(tenants, function(e) return key_id(e.tenant) end, top)
  for _, list in ipairs { s.top_users_404, s.top_tenants_404 } do
    for _, e in ipairs(list) do e.reasons = ranked(e.reasons, by("reason")) end
  end
  return s
end

-- Summarises the log at path ("-": standard input). Returns the summary, or nil and a
-- message when the file cannot be read (nil, message, "missing" when it does not exist).
function M.file(path, opts)
  local f, err
  if path == "-" then
    f = io.stdin
  else
    local code
    f, err, code = io.open(path, "rb")
    if not f then return nil, err, code == 2 and "missing" or nil end -- ENOENT
    local probe, perr = f:read(0) -- a directory opens, and fails here
    if probe == nil and perr then
      f:close()
      return nil, ("cannot read %s: %s"):format(path, perr)
    end
  end
  local ok, s = pcall(M.lines, f:lines("l"), opts)
  if f ~= io.stdin then f:close() end
  if not ok then
    return nil, ("cannot read %s: %s"):format(path, (tostring(s):gsub("^[^:]*:%d+: ", "")))
  end
  s.file = path
  return s
end

-- ---- output ----------------------------------------------------------------------------

-- The summary as the --json output: every list an array (marked for the encoder, so an
-- empty one is [] with any version of it), keys as the log wrote them.
function M.shape(s, array)
  array = array or function(t) return t end
  local function list(l, f)
    local out = {}
    for i, e in ipairs(l) do out[i] = f(e) end
    return array(out)
  end
  local function reasons(e)
    return list(e.reasons, function(r) return { reason = r.reason, count = r.count } end)
  end
  return {
    file = s.file, lines = s.lines, decisions = s.decisions, blank = s.blank,
    malformed = s.malformed, from = s.from, to = s.to, top = s.top,
    reloads = s.reloads, failed_reloads = s.failed_reloads,
    malformed_lines = list(s.malformed_lines, function(m) return { line = m.line,
      error = m.error } end),
    by_status = list(s.by_status, function(e) return { status = e.status, count = e.count } end),
    by_reason = list(s.by_reason, function(e) return { reason = e.reason, status = e.status,
      count = e.count } end),
    by_family = list(s.by_family, function(e) return { family = e.family, count = e.count,
      not_found = e.not_found } end),
    by_path = list(s.by_path, function(e) return { path = e.path, count = e.count,
      not_found = e.not_found } end),
    users_404 = s.users_404, tenants_404 = s.tenants_404,
    without_tenant_404 = s.without_tenant_404,
    top_users_404 = list(s.top_users_404, function(e) return { user = key_json(e.user),
      count = e.count, reasons = reasons(e) } end),
    top_tenants_404 = list(s.top_tenants_404, function(e) return { tenant = key_json(e.tenant),
      count = e.count, reasons = reasons(e) } end),
  }
end

-- Text from the log made safe for a terminal: control bytes and invalid UTF-8 as \xNN.
local function safe(v)
  local t = tostring(v)
  if not utf8.len(t) then
    t = t:gsub("[\128-\255]", function(c) return ("\\x%02x"):format(c:byte()) end)
  end
  return (t:gsub("[%z\1-\31\127]", function(c) return ("\\x%02x"):format(c:byte()) end))
end

local function cols(t) return utf8.len(t) or #t end

-- Aligned columns: rows of cells; numeric columns (right[i]) right-aligned.
local function tabulate(out, header, rows, right)
  local all = { header }
  for _, r in ipairs(rows) do all[#all + 1] = r end
  local w = {}
  for _, r in ipairs(all) do
    for i, c in ipairs(r) do w[i] = math.max(w[i] or 0, cols(c)) end
  end
  for _, r in ipairs(all) do
    local cells = {}
    for i, c in ipairs(r) do
      local pad = (" "):rep(w[i] - cols(c))
      if i == #r and not right[i] then cells[i] = c
      else cells[i] = right[i] and (pad .. c) or (c .. pad) end
    end
    out[#out + 1] = "  " .. table.concat(cells, "  ")
  end
end

local function share(n, total)
  return total > 0 and ("%.1f%%"):format(100 * n / total) or "-"
end

local function reasons_text(e)
  local parts = {}
  for i, r in ipairs(e.reasons) do
    if i > 3 then
      parts[#parts + 1] = "..."
      break
    end
    parts[#parts + 1] = ("%s %d"):format(safe(r.reason), r.count)
  end
  return table.concat(parts, ", ")
end

-- The summary for people: a head line, then aligned tables.
function M.report(s)
  local out = {}
  local n = s.decisions
  out[#out + 1] = ("decision log %s: %d decision%s in %d line%s%s"):format(safe(s.file or "-"),
    n, n == 1 and "" or "s", s.lines, s.lines == 1 and "" or "s",
    s.from ~= "" and (", from " .. safe(s.from) .. " to " .. safe(s.to)) or "")
  local function section(title, header, rows, right)
    out[#out + 1] = ""
    out[#out + 1] = title
    if #rows == 0 then
      out[#out + 1] = "  (none)"
    else
      tabulate(out, header, rows, right)
    end
  end
  local function rows_of(list, name, with404)
    local rows = {}
    for _, e in ipairs(list) do
      local r = { safe(e[name]), tostring(e.count), share(e.count, n) }
      if with404 then r[4] = tostring(e.not_found) end
      rows[#rows + 1] = r
    end
    return rows
  end
  section("by status", { "status", "decisions", "share" }, rows_of(s.by_status, "status"),
    { false, true, true })
  local rrows = {}
  for _, e in ipairs(s.by_reason) do
    rrows[#rrows + 1] = { safe(e.reason), tostring(e.status), tostring(e.count),
      share(e.count, n) }
  end
  section("by reason", { "reason", "status", "decisions", "share" }, rrows,
    { false, true, true, true })
  section("by family", { "family", "decisions", "share", "404s" },
    rows_of(s.by_family, "family", true), { false, true, true, true })
  section("by path", { "path", "decisions", "share", "404s" }, rows_of(s.by_path, "path", true),
    { false, true, true, true })
  local function top_rows(list, field)
    local rows = {}
    for _, e in ipairs(list) do
      rows[#rows + 1] = { safe(M.key_text(e[field])), tostring(e.count), reasons_text(e) }
    end
    return rows
  end
  section(("users with the most 404s (top %d of %d)"):format(s.top, s.users_404),
    { "user", "404s", "reasons" }, top_rows(s.top_users_404, "user"), { false, true, false })
  section(("tenants with the most 404s (top %d of %d)"):format(s.top, s.tenants_404),
    { "tenant", "404s", "reasons" }, top_rows(s.top_tenants_404, "tenant"),
    { false, true, false })
  if s.without_tenant_404 > 0 then
    out[#out + 1] = ("  and %d 404%s without a tenant"):format(s.without_tenant_404,
      s.without_tenant_404 == 1 and "" or "s")
  end
  out[#out + 1] = ""
  if s.reloads > 0 then
    out[#out + 1] = ("rule reloads: %d (%d failed, the old rules kept)"):format(s.reloads,
      s.failed_reloads)
  end
  if s.malformed == 0 then
    out[#out + 1] = "malformed lines: none"
  else
    out[#out + 1] = ("malformed lines: %d%s"):format(s.malformed, s.malformed
      > #s.malformed_lines and (" (the first %d shown)"):format(#s.malformed_lines) or "")
    for _, m in ipairs(s.malformed_lines) do
      out[#out + 1] = ("  line %d: %s"):format(m.line, safe(m.error))
    end
  end
  return table.concat(out, "\n")
end

return M
