-- Reports CI systems and people read: the LuaUnit module's failures, `matrix --junit`,
-- `matrix --html`, and the stable shape of every --json output (docs/json.md).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg
local json = require "tenantguard.json"

local function sq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- ---- a strict JSON reader: valid UTF-8, RFC 8259 syntax, no duplicate keys ----------------
-- Returns the value; arrays and objects come back as tables tagged { [ARR] = true } or
-- { [OBJ] = true } so a test can tell [] from {}. Raises on anything else.
local ARR, OBJ = {}, {}

local function strict_decode(text)
  assert(utf8.len(text), "the JSON text is not valid UTF-8")
  local pos = 1
  local function fail(msg) error(("JSON at byte %d: %s"):format(pos, msg), 0) end
  local function ws() pos = text:find("[^ \t\r\n]", pos) or #text + 1 end
  local value
  local function str()
    local out = {}
    pos = pos + 1
    while true do
      local c = text:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1 break end
      if c:byte() < 32 then fail("raw control character in a string") end
      if c == "\\" then
        local e = text:sub(pos + 1, pos + 1)
        local simple = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n",
          r = "\r", t = "\t" }
        if simple[e] then
          out[#out + 1] = simple[e]
          pos = pos + 2
        elseif e == "u" then
          local hex = text:match("^%x%x%x%x", pos + 2)
          if not hex then fail("bad \\u escape") end
          local cp = tonumber(hex, 16)
          if cp >= 0xD800 and cp <= 0xDFFF then fail("a surrogate escape") end
          out[#out + 1] = utf8.char(cp)
          pos = pos + 6
        else
          fail("bad escape \\" .. e)
        end
      else
        out[#out + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(out)
  end
  function value()
    ws()
    local c = text:sub(pos, pos)
    if c == "{" then
      local t = { [OBJ] = true }
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "}" then pos = pos + 1 return t end
      while true do
        ws()
        if text:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        if t[k] ~= nil then fail("duplicate key " .. k) end
        ws()
        if text:sub(pos, pos) ~= ":" then fail("expected :") end
        pos = pos + 1
        local v = value()
        t[k] = v == nil and json.null or v
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected , or }") end
      end
    elseif c == "[" then
      local t = { [ARR] = true }
      pos = pos + 1
      ws()
      if text:sub(pos, pos) == "]" then pos = pos + 1 return t end
      while true do
        local v = value()
        t[#t + 1] = v == nil and json.null or v
        ws()
        local d = text:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected , or ]") end
      end
    elseif c == '"' then
      return str()
    else
      for lit, v in pairs { ["true"] = true, ["false"] = false, ["null"] = json.null } do
        if text:sub(pos, pos + #lit - 1) == lit then
          pos = pos + #lit
          return v
        end
      end
      local num = text:match("^%-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then fail("unexpected " .. c) end
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  local v = value()
  ws()
  if pos <= #text then fail("trailing text") end
  return v
end

local function is_arr(t) return type(t) == "table" and t[ARR] == true end
local function is_obj(t) return type(t) == "table" and t[OBJ] == true end

-- Runs the tool: exit code, stdout, stderr (apart, so stdout can be parsed).
local function tool(args)
  local err = os.tmpname()
  local p = assert(io.popen("'" .. H.tool .. "' " .. args .. " 2>" .. sq(err)
    .. "; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  local e = H.read(err)
  os.remove(err)
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  return rc, (out:gsub("__rc=%d+%s*$", "")), e
end

-- The tool's --json output, read strictly.
local function tool_json(args, want_rc)
  local rc, out, err = tool(args)
  lu.assertEquals(rc, want_rc or 0, args .. "\n" .. out .. err)
  local ok, v = pcall(strict_decode, out)
  lu.assertTrue(ok, ("%s: %s\n%s"):format(args, tostring(v), out:sub(1, 2000)))
  return v, out
end

local function shipped_with(text)
  local rules = H.shipped_copy()
  H.write(rules .. "/zz_test.lua", text)
  return rules
end

-- ---- the encoder itself ------------------------------------------------------------------

TestJsonEncoder = {}

function TestJsonEncoder:test_empty_tables_are_arrays_unless_marked()
  lu.assertEquals(json.encode({}), "[]")
  lu.assertEquals(json.encode(json.array()), "[]")
  lu.assertEquals(json.encode(json.object()), "{}")
  lu.assertEquals(json.encode { a = {}, b = json.object {} }, '{"a":[],"b":{}}')
  lu.assertEquals(json.encode { 1, 2, 3 }, "[1,2,3]")
  lu.assertEquals(json.encode { x = json.null }, '{"x":null}')
end

function TestJsonEncoder:test_no_key_can_appear_twice()
  -- a list with fields, or keys that would print alike, is refused, never written twice
  lu.assertErrorMsgContains("both a list and an object", json.encode, { 1, 2, n = 2 })
  lu.assertErrorMsgContains("with key", json.encode, { [1] = "a", ["1"] = "b", [3] = "c" })
  lu.assertErrorMsgContains("with key", json.encode, { [true] = 1 })
  lu.assertErrorMsgContains("with key", json.encode, { [1.5] = 1 })
  -- sorted keys, the same text every run
  lu.assertEquals(json.encode { b = 1, a = 2, c = { z = 1, y = 2 } }, '{"a":2,"b":1,"c":{"y":2,"z":1}}')
end

function TestJsonEncoder:test_invalid_utf8_becomes_replacement_escapes()
  local cases = {
    { "caf\xc3\xa9", '"caf\xc3\xa9"' },                 -- valid UTF-8 stays as it is
    { "a\xffb", '"a\\ufffdb"' },                        -- a stray byte
    { "\xc0\xaf", '"\\ufffd\\ufffd"' },                 -- an overlong '/'
    { "\xed\xa0\x80", '"\\ufffd\\ufffd\\ufffd"' },      -- a surrogate
    { "ok\xe2\x82", '"ok\\ufffd\\ufffd"' },             -- a truncated sequence
    { "\x01\"\\\n", '"\\u0001\\"\\\\\\n"' },
  }
  for _, c in ipairs(cases) do
    local out = json.encode(c[1])
    lu.assertEquals(out, c[2])
    lu.assertNotNil(utf8.len(out), out)
    strict_decode(out)
  end
  lu.assertEquals(json.encode { ["k\xff"] = 1 }, '{"k\\ufffd":1}')
  lu.assertEquals(json.encode(math.maxinteger), "9223372036854775807")
  lu.assertEquals(json.encode(math.mininteger), "-9223372036854775808")
end

-- ---- every --json command ------------------------------------------------------------------

TestJsonCommands = {}
function TestJsonCommands:tearDown() H.cleanup() end

function TestJsonCommands:test_lint()
  local v, raw = tool_json("lint --json --rules " .. sq(H.shipped_rules))
  lu.assertTrue(is_arr(v.findings), raw)
  lu.assertEquals(#v.findings, 0)
  lu.assertStrContains(raw, '"findings":[]')
  lu.assertEquals(v.db, json.null)
  -- with findings: a list of objects
  local dir = H.rule_dir { ["families.lua"] = H.minimal["families.lua"]:gsub(
    'search_posture = "not_applicable"', 'search_posture = "nope"') }
  v = tool_json("lint --json --rules " .. sq(dir), 1)
  lu.assertTrue(#v.findings > 0)
  for _, f in ipairs(v.findings) do lu.assertTrue(is_obj(f)) end
end

function TestJsonCommands:test_rules_lists_maps_and_bytes()
  local dir = H.rule_dir { ["families.lua"] = H.minimal["families.lua"]:gsub(
    'action_surface_status = "declared",',
    'action_surface_status = "declared", notes = "caf\\xc3\\xa9 \\xff\\xfe end",') }
  local v, raw = tool_json("rules --json --rules " .. sq(dir))
  lu.assertTrue(is_arr(v.scenarios), raw)
  lu.assertEquals(#v.scenarios, 0)
  lu.assertTrue(is_arr(v.exceptions))
  lu.assertTrue(is_arr(v.residuals))
  lu.assertTrue(is_obj(v.roles))
  local fam = v.families[1]
  lu.assertTrue(is_arr(fam.search_columns), raw)
  lu.assertTrue(is_obj(fam.fixture), raw)
  lu.assertTrue(is_obj(fam.paths))
  lu.assertTrue(is_arr(fam.path_order))
  -- the bytes that are not UTF-8 are U+FFFD, the rest is kept
  lu.assertEquals(fam.notes, "caf\xc3\xa9 \u{FFFD}\u{FFFD} end")
  lu.assertStrContains(raw, "\\ufffd\\ufffd end")
  -- a rule set with no roles: still an object
  local bare = H.rule_dir { ["roles.lua"] = 'capabilities { "thing.view", "thing.edit" }\n' }
  local rc, out = tool("rules --json --rules " .. sq(bare))
  if rc == 0 then
    lu.assertStrContains(out, '"roles":{}')
  else
    print("  (a rule set without roles does not load: the empty roles map is not reachable)")
  end
end

function TestJsonCommands:test_resolve_shape_and_bytes()
  local path = H.refdb(20)
  local db = tg.connect(path)
  -- user 2 operates in workspace 1 and is entitled to tenant 1 (the reference data)
  local id = db:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1")
  db:exec("UPDATE policies SET display_name = 'bad ' || x'ff' || ' name' WHERE id = " .. id)
  db:close()
  local user, ws, tenant = 2, 1, 1
  local base = ("resolve --json --db %s --user %d --workspace %d --tenant %d --family Policy ")
    :format(sq(path), user, ws, tenant)
  -- served by id: record is an object, records []
  local v, raw = tool_json(base .. "--path detail --id " .. id)
  lu.assertEquals(v.status, 200, raw)
  lu.assertTrue(is_obj(v.record))
  lu.assertEquals(v.record.display_name, "bad \u{FFFD} name")
  lu.assertStrContains(raw, '"bad \\ufffd name"')
  lu.assertTrue(is_arr(v.records))
  lu.assertEquals(#v.records, 0)
  lu.assertEquals(v.has_more, false)
  lu.assertEquals(v.next_after, json.null)
  -- refused: record null, records []
  v, raw = tool_json(base .. "--path detail --id 999999")
  lu.assertEquals(v.status, 404)
  lu.assertEquals(v.record, json.null)
  lu.assertTrue(is_arr(v.records), raw)
  lu.assertStrContains(raw, '"records":[]')
  -- a list: records, no record
  v, raw = tool_json(base .. "--path index --limit 5")
  lu.assertEquals(v.status, 200)
  lu.assertEquals(v.record, json.null)
  lu.assertTrue(is_arr(v.records) and #v.records >= 1, raw)
  for _, r in ipairs(v.records) do lu.assertTrue(is_obj(r)) end
end

-- explain and log: strict JSON too, lists always arrays, bad bytes escaped.
function TestJsonCommands:test_explain_and_log()
  local path = H.refdb(20)
  local db = tg.connect(path)
  local id = db:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1")
  db:exec("UPDATE policies SET display_name = 'bad ' || x'ff' || ' name' WHERE id = " .. id)
  db:close()
  local log = path .. ".jsonl"
  local base = ("--db %s --user 2 --workspace 1 --tenant 1 --family Policy "):format(sq(path))
  local v, raw = tool_json("explain --json " .. base .. "--path detail --id " .. id)
  lu.assertEquals(v.status, 200, raw)
  lu.assertEquals(v.decided_by, "capability")
  lu.assertTrue(is_arr(v.checks) and #v.checks >= 3, raw)
  lu.assertEquals(v.record.display_name, "bad \u{FFFD} name")
  v, raw = tool_json("explain --json " .. base .. "--path detail --id 999999")
  lu.assertEquals(v.status, 404, raw)
  lu.assertTrue(is_arr(v.checks), raw)
  -- a log of one decision, summarised: every list an array, the empty ones []
  lu.assertEquals((tool("resolve " .. base .. "--path detail --id 999999 --log " .. sq(log))), 0)
  v, raw = tool_json("log --json " .. sq(log))
  lu.assertEquals(v.decisions, 1, raw)
  lu.assertTrue(is_arr(v.malformed_lines) and #v.malformed_lines == 0, raw)
  lu.assertTrue(is_arr(v.by_status) and is_arr(v.top_users_404), raw)
  -- an empty log
  H.write(log, "")
  v, raw = tool_json("log --json " .. sq(log))
  lu.assertEquals(v.decisions, 0)
  for _, k in ipairs { "by_status", "by_reason", "by_family", "by_path", "top_users_404",
    "top_tenants_404", "malformed_lines" } do
    lu.assertTrue(is_arr(v[k]) and #v[k] == 0, k .. ": " .. raw)
  end
  os.remove(log)
end

function TestJsonCommands:test_backfill_and_validate()
  local path = H.refdb(20)
  local db = tg.connect(path)
  -- policies loses its orphan rows: its sample list is empty
  db:exec("DELETE FROM policies WHERE tenant_id NOT IN (SELECT id FROM tenants)")
  db:close()
  local v, raw = tool_json("backfill --json --dry-run --db " .. sq(path))
  lu.assertTrue(is_arr(v.tables))
  local seen
  for _, t in ipairs(v.tables) do
    lu.assertTrue(is_arr(t.samples), raw)
    if t.table == "policies" then
      seen = true
      lu.assertEquals(#t.samples, 0)
    end
  end
  lu.assertTrue(seen)
  lu.assertStrContains(raw, '"samples":[]')
  lu.assertTrue(is_obj(v.totals))
  v = tool_json("validate --json --db " .. sq(path), 1)
  lu.assertTrue(is_arr(v.checks) and #v.checks > 0)
  lu.assertEquals(v.ok, false)
  lu.assertEquals(select(1, tool("rollout add_columns --db " .. sq(path))), 0)
  lu.assertEquals(select(1, tool("backfill --db " .. sq(path))), 0)
  v = tool_json("backfill --json --status --db " .. sq(path))
  lu.assertTrue(is_obj(v))
  lu.assertEquals(v.status, "queued")
end

function TestJsonCommands:test_matrix_and_list()
  local path = H.refdb(20)
  local v, raw = tool_json("matrix --json --db " .. sq(path))
  for _, k in ipairs { "coverage", "drift", "mutants", "survivors", "results" } do
    lu.assertTrue(is_arr(v[k]), k .. " is not a list: " .. raw:sub(1, 300))
  end
  lu.assertStrContains(raw, '"coverage":[]')
  lu.assertStrContains(raw, '"mutants":[]')
  lu.assertEquals(v.mutation_check, false)
  lu.assertEquals(v.scenarios, #v.results)
  for _, r in ipairs(v.results) do
    lu.assertTrue(is_arr(r.checks) and #r.checks > 0)
    lu.assertEquals(r.message, json.null)
    lu.assertEquals(type(r.seconds), "number")
    lu.assertNotNil(r.test_name)
  end
  -- the grid: one row per family, a cell per scenario type
  lu.assertTrue(is_arr(v.grid.columns) and #v.grid.columns >= 7)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local rules = eng:rules()
  local rows = eng:matrix()
  eng:close()
  local names = {}
  for _, row in ipairs(v.grid.rows) do
    names[row.family] = true
    lu.assertEquals(#row.cells, #v.grid.columns)
  end
  for _, f in ipairs(rules.families) do lu.assertTrue(names[f.name], f.name) end
  for _, e in ipairs(rules.exceptions) do lu.assertTrue(names[e.name], e.name) end
  -- --list: a list of rows
  local list = tool_json("matrix --list --json --db " .. sq(path))
  lu.assertTrue(is_arr(list))
  lu.assertEquals(#list, #rows)
end

-- ---- JUnit -------------------------------------------------------------------------------

-- Elements of a (simple, attribute-only) XML text: { { tag =, attrs = {}, close = bool } }.
local function xml_elements(text)
  local out = {}
  for close, tag, attrs in text:gmatch("<(/?)([%w_:]+)([^>]*)>") do
    local a = {}
    for k, v in attrs:gmatch('([%w_:]+)="([^"]*)"') do
      lu.assertNil(a[k], "attribute " .. k .. " twice on " .. tag)
      a[k] = v
    end
    out[#out + 1] = { tag = tag, attrs = a, close = close == "/", empty = attrs:match("/%s*$") ~= nil }
  end
  return out
end

local function xmllint(file, html)
  local ok = os.execute("command -v xmllint >/dev/null 2>&1")
  if not ok then
    print("  SKIPPED the xmllint check: xmllint is not installed (Debian libxml2-utils)")
    return
  end
  local rc = os.execute("xmllint --noout " .. (html and "--html " or "") .. sq(file))
  lu.assertTrue(rc, "xmllint refuses " .. file)
end

TestJunit = {}
function TestJunit:tearDown() H.cleanup() end

function TestJunit:test_times_unique_names_and_mutants_suite()
  local twice = [[
scenario { family_name = "Policy", scenario_type = "wrong_tenant_detail", expected_outcome = 404 }
scenario { family_name = "Policy", scenario_type = "wrong_tenant_detail", expected_outcome = 404 }
scenario { family_name = "Policy", scenario_type = "wrong_tenant_detail", expected_outcome = 404 }
]]
  local rules = shipped_with(twice)
  local path = H.refdb(20)
  local eng = tg.open { db = path, rules = rules }
  local n_rows = #eng:matrix()
  eng:close()
  local xml = H.tmpdir() .. "/matrix.xml"
  local rc, out, err = tool(("matrix --db %s --rules %s --mutate --junit %s"):format(sq(path),
    sq(rules), sq(xml)))
  lu.assertEquals(rc, 0, out .. err)
  local text = H.read(xml)
  xmllint(xml)
  local els = xml_elements(text)
  local suites, cases, names = 0, 0, {}
  local top, mutation_suite, suite_sum = nil, nil, 0
  local current
  for _, e in ipairs(els) do
    if e.tag == "testsuites" and not e.close then top = e.attrs end
    if e.tag == "testsuite" and not e.close then
      suites = suites + 1
      current = e.attrs
      for _, k in ipairs { "name", "tests", "failures", "errors", "time" } do
        lu.assertNotNil(e.attrs[k], "testsuite without " .. k)
      end
      lu.assertStrMatches(e.attrs.time, "%d+%.%d+")
      lu.assertEquals(e.attrs.errors, "0")
      suite_sum = suite_sum + tonumber(e.attrs.tests)
      if e.attrs.name == "mutation check" then mutation_suite = e.attrs end
    end
    if e.tag == "testcase" and not e.close then
      cases = cases + 1
      lu.assertNotNil(e.attrs.time, "testcase without time: " .. tostring(e.attrs.name))
      lu.assertStrMatches(e.attrs.time, "%d+%.%d+")
      local key = e.attrs.classname .. "\0" .. e.attrs.name
      lu.assertNil(names[key], "two test cases named " .. e.attrs.classname .. " " .. e.attrs.name)
      names[key] = true
      lu.assertNotNil(current)
    end
  end
  lu.assertNotNil(top)
  for _, k in ipairs { "tests", "failures", "errors", "time" } do lu.assertNotNil(top[k], k) end
  lu.assertEquals(top.errors, "0")
  lu.assertEquals(tonumber(top.tests), suite_sum)
  lu.assertEquals(top.failures, "0")
  -- the three identical declared scenarios: three test cases with distinct names
  local base = "wrong_tenant_detail detail (declared)"
  lu.assertTrue(names["tenantguard.Policy\0" .. base])
  lu.assertTrue(names["tenantguard.Policy\0" .. base .. " #2"])
  lu.assertTrue(names["tenantguard.Policy\0" .. base .. " #3"])
  -- the mutants are a suite of their own, one case each, all caught
  lu.assertNotNil(mutation_suite, "no mutation check suite")
  lu.assertEquals(tonumber(mutation_suite.tests), #tg.mutations())
  lu.assertEquals(mutation_suite.failures, "0")
  for _, m in ipairs(tg.mutations()) do
    lu.assertTrue(names["tenantguard.mutation\0" .. m.name], m.name)
  end
  lu.assertEquals(cases, n_rows + #tg.mutations())
end

function TestJunit:test_failure_names_family_actor_and_row()
  local rules = shipped_with([[
scenario { family_name = "EntraGroup", scenario_type = "safe_search", expected_outcome = 404,
           notes = "wrong: EntraGroup search is scoped" }
]])
  local path = H.refdb(20)
  local xml = H.tmpdir() .. "/matrix.xml"
  local rc, out, err = tool(("matrix --db %s --rules %s --junit %s"):format(sq(path), sq(rules),
    sq(xml)))
  lu.assertEquals(rc, 1, out .. err)
  local text = H.read(xml)
  xmllint(xml)
  lu.assertStrContains(text, 'failures="1"')
  local msg = text:match('<failure message="([^"]*)"')
  lu.assertNotNil(msg, text)
  lu.assertStrContains(msg, "family EntraGroup, safe_search (global_search)")
  lu.assertStrContains(text, "actor full")
end

-- A mutation the rules cannot express (the run says what they lack) is skipped, neither
-- caught nor a survivor, in every report.
function TestJunit:test_not_applicable_mutant_is_skipped()
  local report = require "tenantguard.report"
  local path = H.refdb(20)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local rules, results = eng:rules(), eng:run_matrix()
  local caught = eng:run_matrix("drop_tenant_condition")
  eng:close()
  local na = { not_applicable = "no global_search path" }
  for i, r in ipairs(results) do na[i] = r end
  local data = report.build { rules = rules, results = results, mutants = {
    { name = "drop_tenant_condition", description = "d1", results = caught },
    { name = "like_unescaped", description = "d2", results = na } } }
  lu.assertEquals(#data.survivors, 0)
  local xml = report.junit(data)
  lu.assertStrContains(xml, '<testsuite name="mutation check" tests="2" failures="0" errors="0" '
    .. 'skipped="1"')
  lu.assertStrContains(xml, '<skipped message="not applicable: no global_search path"/>')
  local html = report.html(data)
  lu.assertStrContains(html, "n/a: no global_search path")
  local v = strict_decode(report.json(data))
  lu.assertEquals(v.mutants[2].not_applicable, "no global_search path")
  lu.assertEquals(v.mutants[2].caught, false)
  lu.assertEquals(v.mutants[1].not_applicable, json.null)
  lu.assertTrue(is_arr(v.survivors) and #v.survivors == 0)
end

-- ---- HTML --------------------------------------------------------------------------------

local VOID = { meta = true, br = true, hr = true, img = true, link = true, input = true }

-- Every element the page opens is closed, in order.
local function assert_balanced(html)
  local body = html:gsub("<!DOCTYPE[^>]*>", ""):gsub("<style>.-</style>", "<style></style>")
  local stack = {}
  for close, tag in body:gmatch("<(/?)(%a[%w]*)[^>]*>") do
    tag = tag:lower()
    if not VOID[tag] then
      if close == "/" then
        lu.assertEquals(stack[#stack], tag, "</" .. tag .. "> closes <" .. tostring(stack[#stack]) .. ">")
        stack[#stack] = nil
      else
        stack[#stack + 1] = tag
      end
    end
  end
  lu.assertEquals(#stack, 0, "unclosed: " .. table.concat(stack, ", "))
end

local function assert_self_contained(html, label)
  lu.assertNil(html:find("<script", 1, true), label .. ": a script")
  lu.assertNil(html:find("http://", 1, true), label .. ": an http:// reference")
  lu.assertNil(html:find("https://", 1, true), label .. ": an https:// reference")
  lu.assertNil(html:find("<link", 1, true), label .. ": a linked resource")
  lu.assertNil(html:find("@import", 1, true), label .. ": an imported style")
  lu.assertNil(html:find("url(", 1, true), label .. ": a url() resource")
  lu.assertNil(html:find(" src=", 1, true), label .. ": a src attribute")
  lu.assertStrContains(html, "<style>")
  lu.assertStrContains(html, "@media print")
  lu.assertNotNil(utf8.len(html), label .. ": not UTF-8")
end

local function check_html(label, db, rules)
  local file = H.tmpdir() .. "/matrix.html"
  local rc, out, err = tool(("matrix --db %s --rules %s --mutate --html %s"):format(sq(db),
    sq(rules), sq(file)))
  lu.assertEquals(rc, 0, label .. ": " .. out .. err)
  local html = H.read(file)
  assert_self_contained(html, label)
  assert_balanced(html)
  xmllint(file, true)
  local eng = tg.open { db = db, rules = rules }
  local r = eng:rules()
  eng:close()
  for _, f in ipairs(r.families) do
    lu.assertStrContains(html, "<tr><th>" .. f.name .. "</th>", label .. ": no grid row for " .. f.name)
  end
  for _, e in ipairs(r.exceptions) do lu.assertStrContains(html, e.name) end
  -- every cell has a text symbol and word, not only a colour
  for cell in html:gmatch('<td class="(%a+)" title=') do
    lu.assertTrue(cell == "pass" or cell == "fail" or cell == "gap" or cell == "none", cell)
  end
  lu.assertStrContains(html, '<td class="pass" title=')
  lu.assertStrContains(html, "\u{2713} pass")
  lu.assertStrContains(html, '<table class="mutants">')
  for _, m in ipairs(tg.mutations()) do lu.assertStrContains(html, m.name) end
  lu.assertStrContains(html, "\u{2713} caught")
  lu.assertStrContains(html, "Coverage gaps")
  lu.assertStrContains(html, "Drift")
  return html
end

TestHtml = {}
function TestHtml:tearDown() H.cleanup() end

function TestHtml:test_shipped_rules()
  check_html("shipped", H.refdb(20), H.shipped_rules)
end

function TestHtml:test_examples()
  for _, app in ipairs { "helpdesk", "storefront" } do
    local dir = H.source_dir .. "/examples/" .. app
    local data = dofile(dir .. "/data.lua")
    local db = H.tmpdir() .. "/" .. app .. ".db"
    data.create(db)
    check_html(app, db, dir .. "/rules")
  end
end

function TestHtml:test_failures_and_gaps_show_in_black_and_white()
  local rules = shipped_with([[
scenario { family_name = "EntraGroup", scenario_type = "safe_search", expected_outcome = 404 }
]])
  local path = H.refdb(20)
  local file = H.tmpdir() .. "/m.html"
  local rc = tool(("matrix --db %s --rules %s --html %s"):format(sq(path), sq(rules), sq(file)))
  lu.assertEquals(rc, 1)
  local html = H.read(file)
  assert_self_contained(html, "failing")
  assert_balanced(html)
  lu.assertStrContains(html, "\u{2717} FAIL 1/2")
  lu.assertStrContains(html, "family EntraGroup, safe_search (global_search)")
  -- no --mutate: the section says so, no table
  lu.assertNil(html:find('<table class="mutants">', 1, true))
  lu.assertStrContains(html, "--mutate")
end

-- ---- the LuaUnit module ---------------------------------------------------------------------

local LUA = (arg and arg[-1]) or "lua5.4"

local function run_lua(file, args)
  local env = ""
  for _, k in ipairs { "LUA_CPATH", "LUA_PATH" } do
    local v = os.getenv(k)
    if v then env = env .. k .. "=" .. sq(v) .. " " end
  end
  local p = assert(io.popen(env .. sq(LUA) .. " " .. sq(file) .. " " .. args
    .. " 2>&1; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("__rc=(%d+)%s*$")), (out:gsub("__rc=%d+%s*$", ""))
end

TestLuaUnitModule = {}
function TestLuaUnitModule:tearDown() H.cleanup() end

-- A guard weakened on purpose (the matrix's list-without-tenant mutant) fails tests as
-- FAILURES that name family, scenario, actor and the leaked row; nothing is an error.
function TestLuaUnitModule:test_broken_guard_is_a_failure_not_an_error()
  local path = H.refdb(20)
  local dir = H.tmpdir()
  local file = dir .. "/test_isolation.lua"
  H.write(file, ([[
local lu = require "luaunit"
require("tenantguard.luaunit").install { db = %q, rules = %q, mutation = "drop_tenant_condition" }
os.exit(lu.LuaUnit.run())
]]):format(path, H.shipped_rules))
  local xml = dir .. "/results.xml"
  local rc, out = run_lua(file, "-o junit -n " .. sq(xml))
  lu.assertNotEquals(rc, 0, out)
  local text = H.read(xml)
  local failures = tonumber(text:match('<testsuite [^>]*failures="(%d+)"'))
  local errors = tonumber(text:match('<testsuite [^>]*errors="(%d+)"'))
  lu.assertNotNil(failures, text:sub(1, 500))
  lu.assertTrue(failures > 0, "no failure counted")
  lu.assertEquals(errors, 0, "a broken guard was counted as an error")
  lu.assertNil(text:find("<error", 1, true))
  -- the text runner says the same, and the message names everything
  rc, out = run_lua(file, "-v")
  lu.assertNotEquals(rc, 0)
  lu.assertStrMatches(out, ".*Ran %d+ tests in [%d.]+ seconds?, %d+ successes?, %d+ failures?\n.*")
  lu.assertNil(out:match("%d+ errors?"), "errors reported:\n" .. out)
  lu.assertStrContains(out, "family Policy, scenario positive_scope (index), actor full")
  lu.assertStrMatches(out, ".*row: policies row %d+ %(tenant %d+%).*")
  lu.assertNil(out:match("tenantguard/luaunit%.lua:%d+:"),
    "the failure points into the module:\n" .. out)
end

os.exit(lu.LuaUnit.run())
