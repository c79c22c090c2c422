-- A small JSON encoder for tenantguard's tools (reports, --json output, decision logs).
--
-- The shape is stable (docs/json.md):
--   * a table whose keys are exactly 1..n is an array; an EMPTY table is an array too ("[]"),
--     because nearly every table that can be empty is a list; a map that may be empty is
--     marked with json.object(t) and then encodes as "{}";
--   * other tables are objects; their keys must all be strings (a table mixing list items
--     and fields, or with number or boolean keys, is an error, never an object with keys
--     "1", "2", ... that could collide with a field), written in sorted order, so no key
--     appears twice and the output is the same on every run;
--   * strings are escaped as JSON requires (quote, backslash, control characters); bytes
--     that are not valid UTF-8 (a stray byte, an overlong form, a surrogate, a truncated
--     sequence) become U+FFFD, one per byte, written as the escape \ufffd, so the output is
--     always valid UTF-8 and still shows where the bad bytes were;
--   * integers stay integers (64-bit exact); NaN and infinities are null; json.null is null.
local M = {}

M.array_mt = { __name = "tenantguard.json.array" }
M.object_mt = { __name = "tenantguard.json.object" }

-- Marks a table as an array ("[]" when empty). Returns it.
function M.array(t) return setmetatable(t or {}, M.array_mt) end
-- Marks a table as an object ("{}" when empty). Returns it.
function M.object(t) return setmetatable(t or {}, M.object_mt) end
-- A value that encodes as null where a key must be present (a table cannot hold nil).
M.null = setmetatable({}, { __name = "tenantguard.json.null",
  __tostring = function() return "null" end })

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function escape_ascii(s)
  return (s:gsub('[%c"\\]', function(c)
    return escapes[c] or ("\\u%04x"):format(c:byte())
  end))
end

-- s with every byte that is not part of valid UTF-8 replaced by "\ufffd" (already escaped).
local function escape(s)
  if utf8.len(s) then return escape_ascii(s) end
  local parts, i, n = {}, 1, #s
  while i <= n do
    local ok, bad = utf8.len(s, i)
    if ok then
      parts[#parts + 1] = escape_ascii(s:sub(i))
      break
    end
    parts[#parts + 1] = escape_ascii(s:sub(i, bad - 1))
    parts[#parts + 1] = "\\ufffd"
    i = bad + 1
  end
  return table.concat(parts)
end

local function quote(s) return '"' .. escape(s) .. '"' end
M.quote = quote

-- "array", "object"; raises for a table that is neither.
local function kind(t)
  local mt = getmetatable(t)
  if mt == M.object_mt then
    if next(t) == nil then return "object" end
  elseif mt == M.array_mt or next(t) == nil then
    if next(t) == nil then return "array" end
  end
  local n, strings, others = #t, false, nil
  for k in pairs(t) do
    if type(k) == "string" then
      strings = true
    elseif math.type(k) ~= "integer" or k < 1 or k > n then
      others = k
    end
  end
  if others ~= nil then
    error(("cannot encode a table with key %s as JSON"):format(tostring(others)), 0)
  end
  if strings and n > 0 then
    error("cannot encode a table that is both a list and an object as JSON", 0)
  end
  return strings and "object" or "array"
end

local function encode(v, out, depth)
  local ty = type(v)
  if ty == "nil" or v == M.null then out[#out + 1] = "null"
  elseif ty == "boolean" then out[#out + 1] = tostring(v)
  elseif ty == "number" then
    if math.type(v) == "integer" then out[#out + 1] = tostring(v)
    elseif v ~= v or v == math.huge or v == -math.huge then out[#out + 1] = "null"
    else out[#out + 1] = ("%.17g"):format(v) end
  elseif ty == "string" then out[#out + 1] = quote(v)
  elseif ty == "table" then
    if depth > 100 then error("cannot encode a table nested deeper than 100 as JSON", 0) end
    if kind(v) == "array" then
      out[#out + 1] = "["
      for i = 1, #v do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = quote(k)
        out[#out + 1] = ":"
        encode(v[k], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("cannot encode a " .. ty .. " as JSON", 0)
  end
end

-- The JSON text of v (see the top of this file for the shape).
function M.encode(v)
  local out = {}
  encode(v, out, 0)
  return table.concat(out)
end

-- Marks, anywhere inside v, every table stored under one of the field names in `names` (a
-- set: { roles = true, ... }) as an object, so those maps stay "{}" when empty. Returns v.
function M.mark_objects(v, names, depth)
  depth = depth or 0
  if type(v) ~= "table" or depth > 100 then return v end
  for k, x in pairs(v) do
    if type(x) == "table" then
      if names[k] and getmetatable(x) == nil then M.object(x) end
      M.mark_objects(x, names, depth + 1)
    end
  end
  return v
end

-- A copy of a list without its other fields (run_matrix's result carries passed/failed).
function M.list(t)
  local a = M.array()
  for i = 1, #t do a[i] = t[i] end
  return a
end

return M
