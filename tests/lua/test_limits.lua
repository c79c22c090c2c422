-- Budgets and caps that hold: work done inside library functions counts against the sandbox's
-- budgets, the rule compiler has a cap on every count it accepts and stays linear, errors of
-- every kind carry file:line, and names with hidden bytes never pass as identifiers.

local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

-- Generous slack for the sanitizer build; the library itself aims at about 1 s.
local CPU_LIMIT = 3.0

local function describe(findings)
  local out = {}
  for _, f in ipairs(findings) do
    out[#out + 1] = ("  %s %s %s: %s"):format(f.level, f.code, f.where, f.message)
  end
  return table.concat(out, "\n")
end

-- Runs a rule set whose families.lua is `attack` followed by the minimal valid family.
local function attempt(attack, opts)
  local dir = H.rule_dir{ ["families.lua"] = attack .. "\n" .. H.minimal["families.lua"] }
  local o = { rules = dir }
  for k, v in pairs(opts or {}) do o[k] = v end
  local t0 = os.clock()
  local fs = tg.check(o)
  return dir, fs, os.clock() - t0
end

local function one_of(code, codes)
  for _, c in ipairs(codes) do
    if c == code then return true end
  end
  return false
end

-- The single error, with one of `codes`, at families.lua:line.
local function refused(dir, fs, codes, line, label)
  label = label or ""
  local errs = H.errors(fs)
  if #errs ~= 1 then
    lu.fail(("%s: expected exactly one error, got %d:\n%s"):format(label, #errs, describe(fs)))
  end
  local f = errs[1]
  lu.assertTrue(one_of(f.code, codes), ("%s: code %s, expected one of %s: %s"):format(label,
    f.code, table.concat(codes, ", "), f.message))
  lu.assertEquals(f.file, dir .. "/families.lua", label)
  if line then lu.assertEquals(f.line, line, label .. ": " .. f.message) end
  return f
end

local BUDGET = { "instruction_budget", "cpu_budget", "allocation_budget", "memory_cap" }

TestCWorkBudget = {}

function TestCWorkBudget:tearDown() H.cleanup() end

-- Each attack runs its expensive work inside a C library function, where the instruction
-- hook does not see it. Each must be refused at its own line within seconds of CPU.
local attacks = {
  { "rep of an empty string", 'local s = ("").rep("", 1e15)' },
  { "rep with an empty separator", 'local s = string.rep("", 1e15, "")' },
  { "table.move of a huge range", 'table.move({}, 1, 1e12, 1)' },
  { "a loop of big reps", 'for i = 1, 1e9 do local s = ("x"):rep(2e7) end' },
  { "quadratic concatenation", 'local s = "" for i = 1, 1e9 do s = s .. "x" end' },
  { "a loop of table.concat",
    'local t = {} for i = 1, 1e5 do t[i] = "xxxxxxxxxx" end '
    .. 'for i = 1, 1e9 do local s = table.concat(t) end' },
  { "a loop of utf8.len",
    'local s = ("x"):rep(3e7) for i = 1, 1e9 do local n = utf8.len(s) end' },
  { "a loop of string.format",
    'local s = ("x"):rep(1e6) for i = 1, 1e9 do local f = string.format("%s%s", s, s) end' },
  { "a loop of table.sort",
    'local t = {} for i = 1, 2e5 do t[i] = i end for i = 1, 1e9 do table.sort(t) end' },
  { "sorting copies of one long string",
    'local s = ("x"):rep(2e7) local t = {} for i = 1, 1e5 do t[i] = s end table.sort(t)' },
  { "a loop of table.insert at the front",
    'local t = {} for i = 1, 1e9 do table.insert(t, 1, i) end' },
  { "a loop of tonumber on a long string",
    'local s = (" "):rep(3e7) for i = 1, 1e9 do local n = tonumber(s) end' },
  { "a loop of string.byte over a long slice",
    'local s = ("x"):rep(9e5) for i = 1, 1e9 do local a = select("#", s:byte(1, -1)) end' },
  { "a loop of table.unpack",
    'local t = {} for i = 1, 9e5 do t[i] = i end for i = 1, 1e9 do local n = select("#", table.unpack(t)) end' },
  { "comparing two long equal strings in a loop",
    'local a, b = ("x"):rep(2e7), ("x"):rep(2e7 - 1) .. "x" while a == b do end' },
  -- `<` on strings is one VM instruction, but Lua compares zero-separated segments with
  -- one strcoll call each: a string of zero bytes makes one instruction cost 0.1-0.3 s.
  { "ordering a string of zero bytes against itself",
    'local a = ("\\0"):rep(3e7) for i = 1, 1e7 do local c = a < a end' },
  { "ordering strings of zero bytes, unrolled",
    'local a = ("\\0"):rep(3e7) local c for i = 1, 1e7 do '
    .. ("c = a < a "):rep(33) .. 'end' },
  { "ordering two separate strings of zero bytes",
    'local a, b = ("\\0"):rep(2e7), ("\\0"):rep(2e7) for i = 1, 1e7 do local c = a <= b end' },
  { "ordering short strings of zero bytes in a loop",
    'local a, b = ("\\0"):rep(6e4), ("\\0"):rep(6e4) local c for i = 1, 1e9 do '
    .. ("c = a < b "):rep(50) .. 'end' },
  -- table.sort compares in C: each comparison must be charged by its real cost.
  { "sorting short strings full of zero bytes",
    'local t = {} for i = 1, 2e5 do t[i] = ("\\0"):rep(120) .. i end table.sort(t)' },
  { "sorting strings of zero bytes with a comparator",
    'local t = {} for i = 1, 2e5 do t[i] = ("\\0"):rep(120) .. i end '
    .. 'table.sort(t, function(x, y) return x < y end)' },
}

function TestCWorkBudget:test_every_attack_is_refused_quickly_at_its_line()
  for _, a in ipairs(attacks) do
    local dir, fs, cpu = attempt("-- attack\n" .. a[2])
    local f = refused(dir, fs, BUDGET, 2, a[1])
    lu.assertTrue(cpu < CPU_LIMIT, ("%s took %.2f s of CPU"):format(a[1], cpu))
    lu.assertTrue(#f.message > 10, a[1])
  end
end

-- The refusal names the budget that was exceeded, with its value.
function TestCWorkBudget:test_messages_name_the_budget()
  local dir, fs = attempt('table.move({}, 1, 1e12, 1)')
  local f = refused(dir, fs, { "instruction_budget" }, 1)
  lu.assertStrContains(f.message, "20000000")
  -- with a 4 MiB cap the allocation budget is 32 MiB: reached after some 16 strings of 2 MB,
  -- long before the CPU budget even under ASan on a loaded machine (with the default cap,
  -- 26 strings of 20 MB, ASan's cost could trip the CPU budget first)
  dir, fs = attempt('for i = 1, 1e9 do local s = ("x"):rep(2e6) end',
    { memory_cap = 4 * 1024 * 1024 })
  f = refused(dir, fs, { "allocation_budget" }, 1)
  lu.assertStrContains(f.message, "bytes")
end

-- Nothing can swallow a budget error: xpcall and coroutines are not offered, and a value
-- cannot get a __close or __gc metamethod.
function TestCWorkBudget:test_budget_error_cannot_be_swallowed()
  for _, src in ipairs{
    'xpcall(function() while true do end end, function() end)',
    'local co = coroutine.wrap(function() while true do end end) co()',
    'local x <close> = ("x") while true do end',
  } do
    local dir, fs = attempt(src)
    refused(dir, fs, { "unknown_global", "script_error", "instruction_budget" }, 1, src)
  end
end

-- A legitimate rule file using the same functions on small values still loads.
function TestCWorkBudget:test_small_uses_still_work()
  local dir, fs = attempt([[
local t = {}
for i = 1, 200 do t[i] = ("x"):rep(i % 7) .. i end
table.sort(t) table.insert(t, 1, "a") table.remove(t, 1)
local m = table.move(t, 1, 10, 1, {})
assert(#m == 10 and utf8.len(table.concat(t, ",")) > 0 and tonumber("  12 ") == 12)
assert(select("#", table.unpack(t)) == 200 and ("ab"):rep(3, "-") == "ab-ab-ab")
assert(("x"):rep(0) == "" and (""):rep(5) == "" and string.format("%d-%s", 3, "y") == "3-y")
local s = {} for i = 1, 50 do s[i] = { i } end
table.sort(s, function(a, b) return a[1] > b[1] end)
assert(s[1][1] == 50)]])
  lu.assertEquals(#fs, 0, describe(fs))
end

-- A rule file holding long strings (the hook then runs at every instruction) still loads,
-- compares and sorts them, and reports its own errors at the right line.
function TestCWorkBudget:test_long_strings_still_work()
  local dir, fs = attempt([[
local s = ("x"):rep(1e6)
local n = 0
for i = 1, 2e5 do n = n + #s end
assert(n == 2e11 and s < s .. "y" and not (s < s))
local t = { s .. "b", s .. "a", ("\0"):rep(3) .. "z", "m" }
table.sort(t)
assert(t[1] == ("\0"):rep(3) .. "z" and t[4] == s .. "b")]])
  lu.assertEquals(#fs, 0, describe(fs))
  dir, fs = attempt('local s = ("x"):rep(1e6)\nlocal n = 0\nfor i = 1, 10 do n = n + i end\nerror("at four")')
  local f = refused(dir, fs, { "script_error" }, 4)
  lu.assertStrContains(f.message, "at four")
end

-- ---- error values and positions ----------------------------------------------------------

TestErrorPositions = {}

function TestErrorPositions:tearDown() H.cleanup() end

function TestErrorPositions:test_non_string_errors_have_file_and_line()
  for _, case in ipairs{
    { 'error({})', "table" },
    { 'error(42)', "42" },
    { 'error("plain", 0)', "plain" },
    { 'error()', "nil" },
    { 'error(true)', "boolean" },
  } do
    local dir, fs = attempt("-- one\n-- two\n" .. case[1])
    local f = refused(dir, fs, { "script_error" }, 3, case[1])
    lu.assertStrContains(f.message, case[2])
  end
end

function TestErrorPositions:test_memory_cap_error_has_file_and_line()
  local dir, fs = attempt('-- one\nlocal t = {} local i = 0\nwhile true do i = i + 1 t[i] = { i, i } end')
  local f = refused(dir, fs, { "memory_cap" }, 3)
  lu.assertStrContains(f.message, "memory cap")
end

function TestErrorPositions:test_c_stack_overflow_has_file_and_line()
  local dir, fs = attempt('-- one\nlocal function f() table.sort({ 3, 2, 1 }, f) end\nf()')
  local f = refused(dir, fs, { "script_error" }, 2)
  lu.assertStrContains(f.message, "stack")
end

-- ---- options -----------------------------------------------------------------------------

TestOptions = {}

function TestOptions:tearDown() H.cleanup() end

-- A negative or absurd memory cap is refused by name; it never means "no cap".
-- A negative value is a wrong argument in Lua (it raises, naming the option); values the
-- binding accepts but the core finds absurd come back as a bad_option finding.
function TestOptions:test_bad_memory_cap_is_refused()
  for _, v in ipairs{ -1, -(1 << 40) } do
    local ok, e = pcall(tg.check, { rules = H.rule_dir{}, memory_cap = v })
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(e), "memory_cap")
  end
  for _, v in ipairs{ 1, 1 << 40 } do
    local fs = tg.check{ rules = H.rule_dir{}, memory_cap = v }
    local errs = H.errors(fs)
    lu.assertEquals(#errs, 1, describe(fs))
    lu.assertEquals(errs[1].code, "bad_option")
    lu.assertStrContains(errs[1].message, "memory_cap")
  end
  local ok, e = pcall(tg.open, { rules = H.rule_dir{}, memory_cap = -1 })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(e), "memory_cap")
end

function TestOptions:test_bad_instruction_budget_is_refused()
  local ok, e = pcall(tg.check, { rules = H.rule_dir{}, instruction_budget = -5 })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(e), "instruction_budget")
  local fs = tg.check{ rules = H.rule_dir{}, instruction_budget = 2000000000 }
  lu.assertEquals(H.errors(fs)[1].code, "bad_option", describe(fs))
end

-- A small cap that is allowed still holds.
function TestOptions:test_small_memory_cap_holds()
  local dir, fs = attempt('local s = ("x"):rep(3e6)', { memory_cap = 2 * 1024 * 1024 })
  refused(dir, fs, { "memory_cap" }, 1)
end

-- ---- the compiler's caps -----------------------------------------------------------------

TestCompilerCaps = {}

function TestCompilerCaps:tearDown() H.cleanup() end

-- A table whose length reports 2^40 (keys 1, 2, 4, ..., 2^40) is not a list; no crash.
function TestCompilerCaps:test_huge_border_is_not_a_list()
  local huge = 'local t = {} local k = 1 while k <= 2^40 do t[k] = "c" .. k k = k * 2 end\n'
  for _, decl in ipairs{
    'capabilities(t)',
    'role "big" (t)',
    'role "inc" { includes = t }',
    'family "F" { table = "f", primary_surface = "x", search_posture = "scoped", '
      .. 'action_surface_status = "declared", search_columns = t, '
      .. 'paths = { global_search = { capability = "thing.view" } } }',
    'family "G" { table = "g", primary_surface = "x", search_posture = "not_applicable", '
      .. 'action_surface_status = "declared", scenarios = t, paths = { index = { capability = "thing.view" } } }',
    'exception "E" { exception_kind = "deferred_family", why_excepted = "x", still_required_checks = t }',
  } do
    local dir, fs, cpu = attempt(huge .. decl)
    local errs = H.errors(fs)
    lu.assertTrue(#errs >= 1, decl .. "\n" .. describe(fs))
    for _, f in ipairs(errs) do
      lu.assertTrue(one_of(f.code, { "wrong_type", "limit_exceeded", "unknown_capability",
        "bad_value", "unknown_role" }), decl .. "\n" .. describe(fs))
      lu.assertEquals(f.file, dir .. "/families.lua")
    end
    lu.assertTrue(cpu < CPU_LIMIT, ("%s took %.2f s"):format(decl, cpu))
  end
end

-- 200,000 capabilities: refused by the capability cap, quickly.
function TestCompilerCaps:test_too_many_capabilities()
  local dir, fs, cpu = attempt(
    'local t = {} for i = 1, 200000 do t[i] = "c" .. i end\ncapabilities(t)')
  local f = refused(dir, fs, { "limit_exceeded" }, 2)
  lu.assertStrContains(f.message, "4096")
  lu.assertTrue(cpu < CPU_LIMIT, ("took %.2f s"):format(cpu))
end

-- Just under the cap, duplicates are still found, in linear time.
function TestCompilerCaps:test_many_capabilities_with_a_duplicate()
  local dir, fs, cpu = attempt(
    'local t = {} for i = 1, 4000 do t[i] = "c" .. i end t[4001] = "c17"\ncapabilities(t)\n'
    .. 'role "all" { "*" }')
  local dups = H.with_code(fs, "duplicate_name")
  lu.assertEquals(#dups, 1, describe(fs))
  lu.assertStrContains(dups[1].message, "c17")
  lu.assertTrue(cpu < CPU_LIMIT, ("took %.2f s"):format(cpu))
end

-- A 20,000-role includes chain is refused by the role cap; a chain deeper than the
-- includes depth cap is refused by that one; neither takes long.
function TestCompilerCaps:test_role_chains()
  local dir, fs, cpu = attempt(
    'for i = 1, 20000 do role("r" .. i) { includes = i > 1 and ("r" .. (i - 1)) or nil } end')
  local f = refused(dir, fs, { "limit_exceeded" }, 1)
  lu.assertStrContains(f.message, "4096")
  lu.assertTrue(cpu < CPU_LIMIT, ("took %.2f s"):format(cpu))

  dir, fs, cpu = attempt(
    'for i = 1, 4000 do role("r" .. i) { includes = i > 1 and ("r" .. (i - 1)) or nil } end')
  f = refused(dir, fs, { "limit_exceeded" }, 1)
  lu.assertStrContains(f.message, "32")
  lu.assertTrue(cpu < CPU_LIMIT, ("took %.2f s"):format(cpu))

  -- within the cap, chains and cycles compile
  dir, fs = attempt('for i = 1, 30 do role("r" .. i) { includes = i > 1 and ("r" .. (i - 1)) or nil } end\n'
    .. 'role "a" { "thing.view", includes = "b" }\nrole "b" { includes = { "a", "r30" } }')
  lu.assertEquals(#H.errors(fs), 0, describe(fs))
end

-- Every other count has its own cap with its name in the message.
function TestCompilerCaps:test_other_counts_are_capped()
  for _, case in ipairs{
    { 'for i = 1, 5000 do family("F" .. i) { table = "t" .. i } end', "families" },
    { 'for i = 1, 5000 do residual("R" .. i) { table = "r" .. i, why_not_in_first_slice = "x" } end',
      "residual" },
    { 'for i = 1, 5000 do exception("E" .. i) { exception_kind = "deferred_family", why_excepted = "x",'
      .. ' still_required_checks = { "workspace_member" } } end', "exception" },
    { 'local t = {} for i = 1, 300 do t[i] = "c" .. i end\n'
      .. 'family "F" { table = "f", primary_surface = "x", search_posture = "scoped", '
      .. 'action_surface_status = "declared", search_columns = t, '
      .. 'paths = { global_search = { capability = "thing.view" } } }', "search_columns" },
    { 'local t = {} for i = 1, 300 do t["c" .. i] = i end\n'
      .. 'family "F" { table = "f", primary_surface = "x", search_posture = "not_applicable", '
      .. 'action_surface_status = "declared", fixture = t, paths = { index = { capability = "thing.view" } } }',
      "fixture" },
    { 'local t = {} for i = 1, 11000 do t[i] = { scenario_type = "positive_scope", expected_outcome = 200 } end\n'
      .. 'family "F" { table = "f", primary_surface = "x", search_posture = "not_applicable", '
      .. 'action_surface_status = "declared", scenarios = t, paths = { index = { capability = "thing.view" } } }',
      "scenarios" },
    { 'family "F" { table = "f", primary_surface = ("x"):rep(5000), search_posture = "not_applicable", '
      .. 'action_surface_status = "declared", paths = { index = { capability = "thing.view" } } }', "4096 bytes" },
    { 'family(("F"):rep(200)) { table = "f" }', "128 bytes" },
    { 'for i = 1, 40000 do app {} end', "declarations" },
  } do
    local dir, fs, cpu = attempt(case[1])
    local caps = H.with_code(fs, "limit_exceeded")
    lu.assertTrue(#caps >= 1, case[2] .. "\n" .. describe(fs))
    lu.assertStrContains(caps[1].message, case[2])
    lu.assertEquals(caps[1].file, dir .. "/families.lua")
    lu.assertTrue(caps[1].line >= 1, case[2])
    lu.assertTrue(cpu < CPU_LIMIT, ("%s took %.2f s"):format(case[2], cpu))
  end
end

-- The app's request limits are bounded too: a page is materialised in memory, and an
-- absurd max_page_size would overflow the one-more-row probe of has_more.
function TestCompilerCaps:test_request_limits_are_capped()
  for _, lim in ipairs{ "max_page_size = 1 << 62", "max_page_size = 100001",
                        "max_bulk_ids = 100001", "page_size = 0" } do
    local dir = H.rule_dir{ ["app.lua"] = 'app { name = "mini", limits = { ' .. lim .. ' } }\n' }
    local fs = tg.check{ rules = dir }
    local bad = H.with_code(fs, "bad_value")
    lu.assertEquals(#bad, 1, lim .. "\n" .. describe(fs))
    lu.assertStrContains(bad[1].message, "100000")
    lu.assertEquals(bad[1].file, dir .. "/app.lua")
  end
  local ok = tg.check{ rules = H.rule_dir{ ["app.lua"] =
    'app { name = "mini", limits = { max_page_size = 100000, max_bulk_ids = 100000 } }\n' } }
  lu.assertEquals(#H.errors(ok), 0, describe(ok))
end

-- A flood of problems keeps at most 10,000 findings, the last saying the list stopped; it
-- is an error when errors were left out, and it does not take long.
function TestCompilerCaps:test_findings_are_capped()
  local dir, fs, cpu = attempt(
    'local t = { table = "f" } for i = 1, 30000 do t["x" .. i] = i end\nfamily "F" (t)')
  lu.assertEquals(#fs, 10000)
  lu.assertEquals(fs[#fs].code, "too_many_findings")
  lu.assertEquals(fs[#fs].level, "error")
  lu.assertTrue(cpu < CPU_LIMIT, ("took %.2f s"):format(cpu))
end

-- ---- rule files ----------------------------------------------------------------------------

TestManyFiles = {}

function TestManyFiles:tearDown() H.cleanup() end

-- 1,200 rule files are all loaded: each declares a role granting a capability that does not
-- exist, and every one of them is reported (a silent subset would report fewer).
function TestManyFiles:test_more_than_a_thousand_files_all_load()
  local dir = H.rule_dir{}
  assert(os.execute(("cd '%s' && for i in $(seq 1 1200); do "
    .. "echo \"role 'r$i' { 'missing$i' }\" > m_$(printf %%05d $i).lua; done"):format(dir)))
  local fs = tg.check{ rules = dir }
  lu.assertEquals(#H.with_code(fs, "unknown_capability"), 1200)
  lu.assertEquals(#H.errors(fs), 1200)
end

-- Past the cap on files, a clear error names the cap; never a silent subset.
function TestManyFiles:test_too_many_files_is_an_error()
  local dir = H.rule_dir{}
  assert(os.execute(("cd '%s' && for i in $(seq 1 10001); do : > m_$i.lua; done"):format(dir)))
  local fs = tg.check{ rules = dir }
  local errs = H.errors(fs)
  lu.assertEquals(#errs, 1, describe(fs))
  lu.assertEquals(errs[1].code, "limit_exceeded")
  lu.assertStrContains(errs[1].message, "10000")
end

-- ---- identifiers -----------------------------------------------------------------------------

TestIdentifiers = {}

function TestIdentifiers:tearDown() H.cleanup() end

local function family_with(fields)
  return 'family "Z" { primary_surface = "z", search_posture = "not_applicable", '
    .. 'action_surface_status = "declared", paths = { index = { capability = "thing.view" } }, '
    .. fields .. ' }'
end

function TestIdentifiers:test_zero_byte_in_a_name_is_bad_identifier()
  for _, fields in ipairs{
    'table = "policies\\0; DROP TABLE x"',
    'table = "zt", fixture = { ["name\\0; DROP"] = 1 }',
  } do
    local dir, fs = attempt(family_with(fields))
    local f = refused(dir, fs, { "bad_identifier" }, 1, fields)
    lu.assertStrContains(f.message, "zero byte")
  end
  local dir = H.rule_dir{ ["app.lua"] = 'app { name = "m", columns = { tenant = "tenant_id\\0x" } }' }
  local fs = tg.check{ rules = dir }
  lu.assertEquals(H.errors(fs)[1].code, "bad_identifier", describe(fs))
end

function TestIdentifiers:test_zero_byte_in_other_names_is_refused()
  for _, src in ipairs{
    'capabilities { "thing.x\\0y" }',
    'family "Thing\\0x" { table = "t2" }',
    'role "owner\\0x" { "thing.view" }',
    'role "r9" { "thing.view\\0x" }',
  } do
    local dir, fs = attempt(src)
    local errs = H.errors(fs)
    lu.assertTrue(#errs >= 1, src)
    lu.assertStrContains(errs[1].message, "zero byte", src)
  end
end

-- A message about a name with a zero byte shows the whole name, the zero byte escaped as in
-- Lua source, never the part before it (which may be a valid name: 'index', 'owner').
function TestIdentifiers:test_zero_byte_names_are_shown_whole()
  local fam = 'family "Zed" { table = "zeds", primary_surface = "Z", search_posture = "disabled", '
    .. 'action_surface_status = "declared", '
  for _, case in ipairs{
    { 'family "Z\\0x" { table = "t2" }', [['Z\0x']] },
    { 'role "own\\0er" { "thing.view" }', [['own\0er']] },
    { 'exception "E\\0x" { exception_kind = "deferred_family" }', [['E\0x']] },
    { 'residual "R\\0" { table = "backup_items" }', [['R\0']] },
    { fam .. 'paths = { ["index\\0"] = { capability = "thing.view" } } }', [['index\0']] },
    { fam .. '["table\\0"] = "zeds", paths = { index = { capability = "thing.view" } } }',
      [['table\0']] },
    { fam .. 'paths = { index = { capability = "thing.view" } }, fixture = { ["na\\0me"] = 1 } }',
      [['na\0me']] },
    { fam .. 'paths = { index = { capability = "thing.view" } }, notes = "a\\0b" }', [['a\0b']] },
    { 'capabilities { "x.y\\0z" }', [['x.y\0z']] },
    { 'capabilities { "thing.view", ["k\\0"] = 1 }', [['k\0']] },
    { 'role "r9" { "thing.view", ["k\\0"] = 1 }', [['k\0']] },
    { 'role "r8" { "thing.view\\0x" }', [['thing.view\0x']] },
    { 'local x = _ENV["g\\0h"]', [['g\0h']] },
    { '_ENV["g\\0h"] = 1', [['g\0h']] },
    { 'family "Z\\0" "1" { }', [['Z\0']] },
    { 'family "Z\\0001" { }', [['Z\0001']] },
  } do
    local dir, fs = attempt(case[1])
    local errs = H.errors(fs)
    lu.assertTrue(#errs >= 1, case[1])
    local f = errs[1]
    lu.assertStrContains(f.message, case[2], case[1] .. " -> " .. f.message)
    if not case[1]:find("_ENV", 1, true) then
      lu.assertStrContains(f.message, "zero byte", case[1] .. " -> " .. f.message)
    end
    lu.assertNotStrContains(f.message, "did you mean", case[1] .. " -> " .. f.message)
    lu.assertEquals(f.line, 1, case[1])
  end
end

function TestIdentifiers:test_sqlite_schema_tables_in_any_case_are_bad_identifier()
  for _, name in ipairs{ "sqlite_master", "SQLITE_SCHEMA", "Sqlite_Temp_Master",
                         "sqlite_sequence", "SQLite_stat1" } do
    local dir, fs = attempt(family_with(('table = "%s"'):format(name)))
    refused(dir, fs, { "bad_identifier" }, 1, name)
  end
end

-- ---- the database given to lint ----------------------------------------------------------------

TestLintDb = {}

function TestLintDb:tearDown() H.cleanup() end

function TestLintDb:test_text_file_is_not_a_database()
  local p = H.tmpdir() .. "/notes.txt"
  H.write(p, ("this is not a database\n"):rep(100))
  local fs = tg.check{ rules = H.shipped_rules, db = p }
  local errs = H.errors(fs)
  lu.assertTrue(#errs >= 1, describe(fs))
  lu.assertStrContains(errs[1].message, "database")
end

function TestLintDb:test_missing_file_is_an_error()
  local p = H.tmpdir() .. "/missing.db"
  local fs = tg.check{ rules = H.shipped_rules, db = p }
  lu.assertTrue(#H.errors(fs) >= 1, describe(fs))
  lu.assertFalse(io.open(p, "rb") ~= nil)
end

function TestLintDb:test_cli_lint_on_a_text_file_fails()
  local p = H.tmpdir() .. "/notes.txt"
  H.write(p, "hello\n")
  local rc, out = H.run_tool("lint --db '" .. p .. "'")
  lu.assertNotEquals(rc, 0, out)
  lu.assertStrContains(out, "database")
end

-- ---- a path without a capability -------------------------------------------------------------

TestPathWithoutCapability = {}

function TestPathWithoutCapability:tearDown() H.cleanup() end

function TestPathWithoutCapability:test_warned()
  local dir = H.rule_dir{ ["families.lua"] = [[
family "Thing" {
  table = "things",
  primary_surface = "ThingResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    row_action = { capability = "thing.edit" },
    bulk_action = true,
  },
}
]] }
  local fs = tg.check{ rules = dir }
  local w = H.with_code(fs, "path_without_capability")
  lu.assertEquals(#w, 1, describe(fs))
  lu.assertEquals(w[1].level, "warning")
  lu.assertEquals(w[1].line, 1)
  lu.assertStrContains(w[1].message, "bulk_action")
  lu.assertStrContains(w[1].message, "403")
  local documented = false
  for _, c in ipairs(tg.checks()) do documented = documented or c.code == "path_without_capability" end
  lu.assertTrue(documented)
end

-- The same for a scope exception: one that maps a table but does not list the capability
-- check fails closed (403), and lint says so; one that lists it is not warned.
function TestPathWithoutCapability:test_exception_warned()
  local dir = H.rule_dir{ ["exceptions.lua"] = [[
exception "Runs" {
  exception_kind = "workspace_owned_reference_surface",
  table = "runs",
  surface = "RunResource",
  why_excepted = "workspace-owned",
  still_required_checks = { "workspace_member", "record_in_workspace" },
}
exception "Alerts" {
  exception_kind = "deferred_family",
  table = "alerts",
  surface = "AlertResource",
  why_excepted = "mixed",
  still_required_checks = { "workspace_member", "capability" },
  capability = "thing.view",
}
]] }
  local fs = tg.check{ rules = dir }
  local w = H.with_code(fs, "exception_without_capability")
  lu.assertEquals(#w, 1, describe(fs))
  lu.assertEquals(w[1].level, "warning")
  lu.assertEquals(w[1].line, 1)
  lu.assertStrContains(w[1].message, "403")
  local documented = false
  for _, c in ipairs(tg.checks()) do documented = documented or c.code == "exception_without_capability" end
  lu.assertTrue(documented)
end

os.exit(lu.LuaUnit.run())
