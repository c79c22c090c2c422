-- The rule sandbox: a rule file can declare rules and compute with strings, tables and math,
-- and nothing else. It cannot touch files, processes or the interpreter, cannot hang the
-- loader, cannot exhaust memory, and the engine keeps working after each attempt.

local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local function describe(findings)
  local out = {}
  for _, f in ipairs(findings) do
    out[#out + 1] = ("  %s %s %s: %s"):format(f.level, f.code, f.where, f.message)
  end
  return table.concat(out, "\n")
end

-- Runs a rule set whose families.lua is `attack` (line 1 onwards) followed by the minimal
-- valid family. Returns the directory, the findings, and the CPU seconds tg.check took.
local function attempt(attack)
  local dir = H.rule_dir{ ["families.lua"] = attack .. "\n" .. H.minimal["families.lua"] }
  local t0 = os.clock()
  local fs = tg.check{ rules = dir }
  return dir, fs, os.clock() - t0
end

-- The single finding, which must have one of `codes` and point at families.lua.
local function refused(dir, fs, codes)
  if #fs ~= 1 then
    lu.fail(("expected exactly one finding, got %d:\n%s"):format(#fs, describe(fs)))
  end
  local f = fs[1]
  local ok = false
  for _, c in ipairs(codes) do ok = ok or f.code == c end
  lu.assertTrue(ok, ("code %s, expected one of %s: %s"):format(f.code,
    table.concat(codes, ", "), f.message))
  lu.assertEquals(f.level, "error")
  lu.assertEquals(f.file, dir .. "/families.lua")
  return f
end

-- After any attack the engine still loads a good rule set cleanly.
local function engine_still_works()
  local fs = tg.check{ rules = H.rule_dir{} }
  lu.assertEquals(#fs, 0, describe(fs))
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

TestSandbox = {}

function TestSandbox:tearDown()
  H.cleanup()
end

-- ---- the standard library that is not offered ----------------------------------------

-- io.open is refused by name and no file appears.
function TestSandbox:test_io_open_refused()
  local marker = H.tmpdir() .. "/escaped-io"
  local dir, fs = attempt(("local f = io.open(%q, 'w')\nf:write('x')\nf:close()"):format(marker))
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'io'")
  lu.assertFalse(exists(marker))
  engine_still_works()
end

-- os.execute is refused and the command never runs.
function TestSandbox:test_os_execute_refused()
  local marker = H.tmpdir() .. "/escaped-os"
  local dir, fs = attempt(("os.execute('touch %s')"):format(marker))
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'os'")
  lu.assertFalse(exists(marker))
  engine_still_works()
end

-- require cannot load modules (io, os, or a C library).
function TestSandbox:test_require_refused()
  local dir, fs = attempt('local io2 = require "io"')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'require'")
end

-- load cannot compile new code (which could carry its own environment).
function TestSandbox:test_load_refused()
  local dir, fs = attempt('local f = load("return io", "x", "t", {})')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'load'")
end

-- string.dump is gone: calling it fails, and no bytecode comes out.
function TestSandbox:test_string_dump_unavailable()
  local dir, fs = attempt('local s = string.dump(function() end)')
  local f = refused(dir, fs, { "unknown_global", "script_error" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "dump")
end

-- Reaching string.dump through the string metatable ("x").dump fails the same way.
function TestSandbox:test_string_dump_via_string_methods_unavailable()
  local dir, fs = attempt('local d = ("x").dump\nlocal s = d(function() end)')
  local f = refused(dir, fs, { "unknown_global", "script_error" })
  lu.assertEquals(f.line, 2)
  lu.assertStrContains(f.message, "nil value")
end

-- dofile cannot run or read another file.
function TestSandbox:test_dofile_refused()
  local dir, fs = attempt('dofile("/etc/passwd")')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'dofile'")
end

-- The debug library (which could remove the instruction hook) is not there.
function TestSandbox:test_debug_refused()
  local dir, fs = attempt('debug.sethook()')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'debug'")
end

-- collectgarbage cannot stop the collector to help a memory bomb.
function TestSandbox:test_collectgarbage_refused()
  local dir, fs = attempt('collectgarbage("stop")')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'collectgarbage'")
end

-- pcall is not offered, so a rule file cannot swallow the budget error.
function TestSandbox:test_pcall_refused()
  local dir, fs = attempt('pcall(function() while true do end end)')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'pcall'")
end

-- setmetatable is not offered (no way to replace the environment's guard).
function TestSandbox:test_setmetatable_refused()
  local dir, fs = attempt('local t = setmetatable({}, { __gc = function() end })')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'setmetatable'")
end

-- ---- globals -----------------------------------------------------------------------

-- Reading a global that does not exist is an error (a typo never reads as nil).
function TestSandbox:test_reading_undefined_global_raises()
  local dir, fs = attempt('-- a helper with a typo\nlocal caps = capabilites_list')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 2)
  lu.assertStrContains(f.message, "'capabilites_list'")
end

-- Assigning a global is an error that tells the user to write `local`.
function TestSandbox:test_assigning_global_raises()
  local dir, fs = attempt('views = { "thing.view" }')
  local f = refused(dir, fs, { "unknown_global" })
  lu.assertEquals(f.line, 1)
  lu.assertStrContains(f.message, "'views'")
  lu.assertStrContains(f.message, "local")
end

-- What is offered still works: string methods, table and math helpers, locals.
function TestSandbox:test_offered_library_works()
  local dir, fs = attempt([[
local names = {}
for _, n in ipairs{ "a", "b" } do names[#names + 1] = ("x_%s"):format(n):upper() end
assert(table.concat(names, ",") == "X_A,X_B" and math.max(1, 2) == 2 and utf8.len("é") == 1)]])
  lu.assertEquals(#fs, 0, describe(fs))
end

-- ---- resource limits ---------------------------------------------------------------

-- An endless loop ends with instruction_budget within a second, at the loop's line.
function TestSandbox:test_endless_loop_hits_instruction_budget()
  local dir, fs, cpu = attempt('-- spin\nwhile true do end')
  local f = refused(dir, fs, { "instruction_budget" })
  lu.assertEquals(f.line, 2)
  lu.assertTrue(cpu < 1.0, ("took %.2f s of CPU"):format(cpu))
  engine_still_works()
end

-- Growing a table of big strings ends with memory_cap within a second.
function TestSandbox:test_memory_bomb_table_hits_memory_cap()
  local dir, fs, cpu = attempt('local t = {} while true do t[#t+1] = string.rep("x", 1e6) end')
  refused(dir, fs, { "memory_cap" })
  lu.assertTrue(cpu < 1.0, ("took %.2f s of CPU"):format(cpu))
  engine_still_works()
end

-- One giant string.rep ends with an error within a second; Lua itself refuses sizes
-- past 2^31 ("resulting string too large", script_error), smaller ones hit the memory cap.
function TestSandbox:test_memory_bomb_string_rep_refused()
  for _, n in ipairs{ "1e10", "1e9" } do
    local dir, fs, cpu = attempt('local s = string.rep("x", ' .. n .. ')')
    local f = refused(dir, fs, { "memory_cap", "script_error" })
    if n == "1e9" then lu.assertEquals(f.code, "memory_cap") end
    lu.assertTrue(cpu < 1.0, ("%s took %.2f s of CPU"):format(n, cpu))
  end
  engine_still_works()
end

-- A string doubling in a loop ends with memory_cap.
function TestSandbox:test_memory_bomb_doubling_hits_memory_cap()
  local dir, fs, cpu = attempt('local s = "x" while true do s = s .. s end')
  refused(dir, fs, { "memory_cap" })
  lu.assertTrue(cpu < 1.0, ("took %.2f s of CPU"):format(cpu))
  engine_still_works()
end

-- A backtracking pattern runs inside C, where the instruction hook never fires; it must
-- still end within a second (about 5 s of CPU unbounded; a longer subject takes hours).
function TestSandbox:test_pathological_pattern_is_bounded()
  local dir, fs, cpu = attempt(
    'local s = string.rep("a", 400)\nlocal hit = s:find(string.rep("a*", 3) .. "b")\n'
    .. 'assert(hit == nil)\nerror("pattern finished")')
  lu.assertTrue(cpu < 1.0, ("a pattern match ran %.2f s of CPU"):format(cpu))
  refused(dir, fs, { "instruction_budget", "script_error", "memory_cap" })
  engine_still_works()
end

-- ---- chunks ------------------------------------------------------------------------

-- Precompiled bytecode is refused: rule files are text only.
function TestSandbox:test_binary_chunk_refused()
  local dir = H.rule_dir{ ["families.lua"] = string.dump(function() return 1 end) }
  local fs = tg.check{ rules = dir }
  local f = refused(dir, fs, { "script_error" })
  lu.assertStrContains(f.message, "binary chunk")
  engine_still_works()
end

-- A file that merely starts with the bytecode signature is refused the same way.
function TestSandbox:test_bytecode_signature_refused()
  local dir = H.rule_dir{ ["families.lua"] = "\27Lua" .. ("\0"):rep(16) }
  local fs = tg.check{ rules = dir }
  local f = refused(dir, fs, { "script_error" })
  lu.assertStrContains(f.message, "binary chunk")
end

-- ---- isolation between files -------------------------------------------------------

-- A file that patches a library or its own environment cannot affect the next file.
function TestSandbox:test_one_file_cannot_patch_the_next()
  local dir = H.rule_dir{
    ["a_patch.lua"] = 'string.upper = nil\ntable.concat = nil\n',
    ["b_use.lua"] = 'assert(string.upper("x") == "X" and table.concat({ "a" }) == "a")\n',
  }
  local fs = tg.check{ rules = dir }
  lu.assertEquals(#fs, 0, describe(fs))
end

os.exit(lu.LuaUnit.run())
