-- The decision log from the command line: `resolve --log` and `matrix --log` write it,
-- `tenantguard log FILE` summarises it (by status, reason, family, path; the users and the
-- tenants with the most 404s), counting malformed lines by number and never crashing on them.
local lu = require "luaunit"
local H = require "helpers"
local logsum = require "tenantguard.logsum"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs the tool with the given arguments (each quoted); returns rc, stdout, stderr.
local function tool(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = q(a) end
  local o, e = os.tmpname(), os.tmpname()
  local p = assert(io.popen(("%s %s </dev/null >%s 2>%s; echo $?"):format(q(H.tool),
    table.concat(parts, " "), q(o), q(e))))
  local rc = tonumber((p:read("a"):match("(%d+)%s*$")))
  p:close()
  local out, err = H.read(o), H.read(e)
  os.remove(o)
  os.remove(e)
  return rc, out, err
end

local function ok(args)
  local rc, out, err = tool(args)
  lu.assertEquals(rc, 0, table.concat(args, " ") .. "\n" .. out .. err)
  return out, err
end

-- `log FILE --json`, decoded.
local function summary(path, extra)
  local args = { "log", path, "--json" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local out, err = ok(args)
  lu.assertEquals(err, "")
  local s, why = logsum.decode(out)
  lu.assertNotNil(s, why)
  return s
end

-- The count of the entry of list whose field is value (0 when absent).
local function count(list, field, value)
  for _, e in ipairs(list) do
    if e[field] == value then return e.count end
  end
  return 0
end

local function lines_of(path)
  local n = 0
  for _ in io.lines(path) do n = n + 1 end
  return n
end

TestLogCli = {}

function TestLogCli:tearDown() H.cleanup() end

-- Requests made with resolve --log come back counted as they were made: N wrong-tenant
-- requests are N 404s of that user and that tenant.
function TestLogCli:test_resolve_log_then_summary()
  local db = H.refdb(20)
  local h = H.tg.connect(db)
  local mine = h:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1")
  local other = h:value("SELECT id FROM policies WHERE tenant_id = 3 ORDER BY id LIMIT 1")
  h:close()
  local log = H.tmpdir() .. "/decisions.jsonl"
  local function resolve(user, tenant, path, extra)
    local args = { "resolve", "--db", db, "--user", user, "--workspace", "1", "--family",
      "Policy", "--path", path, "--log", log }
    if tenant then
      args[#args + 1] = "--tenant"
      args[#args + 1] = tenant
    end
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    return ok(args)
  end
  -- user 2 (operator, entitled to tenants 1 and 2) in tenant 1
  for _ = 1, 2 do lu.assertStrContains(resolve("2", "1", "detail", { "--id", mine }), "200 ok") end
  local N = 3
  for _ = 1, N do
    lu.assertStrContains(resolve("2", "1", "detail", { "--id", other }), "404 foreign_tenant")
  end
  lu.assertStrContains(resolve("2", nil, "index"), "404 no_tenant_context")
  lu.assertStrContains(resolve("99", "2", "index"), "404 not_member")
  -- user 3 is readonly in tenant 1: a row action is 403
  lu.assertStrContains(resolve("3", "1", "row_action", { "--id", mine }), "403")
  lu.assertEquals(lines_of(log), 2 + N + 3, "one JSON line per decision, appended")

  local s = summary(log)
  lu.assertEquals(s.decisions, 2 + N + 3)
  lu.assertEquals(s.malformed, 0)
  lu.assertEquals(count(s.by_status, "status", 200), 2)
  lu.assertEquals(count(s.by_status, "status", 403), 1)
  lu.assertEquals(count(s.by_status, "status", 404), N + 2)
  lu.assertEquals(count(s.by_reason, "reason", "foreign_tenant"), N)
  lu.assertEquals(count(s.by_reason, "reason", "not_member"), 1)
  lu.assertEquals(count(s.by_family, "family", "Policy"), 2 + N + 3)
  lu.assertEquals(count(s.by_path, "path", "detail"), 2 + N)
  lu.assertEquals(count(s.by_path, "path", "index"), 2)
  -- the N wrong-tenant 404s are user 2's (with the 404 without a tenant) and tenant 1's
  lu.assertEquals(s.top_users_404[1].user, 2)
  lu.assertEquals(s.top_users_404[1].count, N + 1)
  lu.assertEquals(s.top_users_404[1].reasons[1].reason, "foreign_tenant")
  lu.assertEquals(s.top_users_404[1].reasons[1].count, N)
  lu.assertEquals(count(s.top_users_404, "user", 99), 1)
  lu.assertEquals(count(s.top_users_404, "user", 3), 0, "a 403 is no 404")
  lu.assertEquals(s.top_tenants_404[1].tenant, 1)
  lu.assertEquals(s.top_tenants_404[1].count, N)
  lu.assertEquals(count(s.top_tenants_404, "tenant", 2), 1)
  lu.assertEquals(s.without_tenant_404, 1)
  lu.assertEquals(s.users_404, 2)
  lu.assertEquals(s.tenants_404, 2)
  -- --top 1: one user, one tenant
  s = summary(log, { "--top", "1" })
  lu.assertEquals(#s.top_users_404, 1)
  lu.assertEquals(#s.top_tenants_404, 1)
  lu.assertEquals(s.users_404, 2)

  -- the same for people: aligned tables, the counts in them
  local out = ok { "log", log }
  lu.assertStrContains(out, ("%d decisions in %d lines"):format(2 + N + 3, 2 + N + 3))
  lu.assertStrMatches(out, ".*\n  404 +" .. (N + 2) .. " +%d+%.%d%%\n.*")
  lu.assertStrMatches(out, ".*\n  foreign_tenant +404 +" .. N .. " .*")
  lu.assertStrMatches(out, ".*users with the most 404s[^\n]*\n  user +404s +reasons\n  2 +"
    .. (N + 1) .. "  foreign_tenant " .. N .. ", no_tenant_context 1\n.*")
  lu.assertStrMatches(out, ".*tenants with the most 404s[^\n]*\n  tenant +404s +reasons\n  1 +"
    .. N .. "  foreign_tenant " .. N .. "\n.*")
  lu.assertStrContains(out, "malformed lines: none")
  -- every table's columns line up: within a section, the count column ends where its
  -- header ends
  local head = out:match("\n(  reason +status +decisions +share)\n")
  lu.assertNotNil(head, out)
  local col = #head:match("^(.-decisions)")
  local reasons = 0
  for row in out:gmatch("\n(  %l[%w_]* +%d+ +%d+ +[%d.]+%%)") do
    lu.assertEquals(#row:match("^(  %S+ +%d+ +%d+)"), col, row)
    reasons = reasons + 1
  end
  lu.assertEquals(reasons, 5, out) -- ok, foreign_tenant, no_tenant_context, not_member, 403
end

-- A log with malformed lines: each counted, the first few reported by line number, the
-- rest summarised as usual; exit 0.
function TestLogCli:test_malformed_lines_are_counted_not_fatal()
  local dir = H.tmpdir()
  local log = dir .. "/mixed.jsonl"
  local good = '{"time":"2026-01-01T00:00:00.000Z","user":7,"workspace":1,"tenant":3,'
    .. '"family":"Policy","path":"detail","ids":[42],"status":404,"reason":"foreign_tenant",'
    .. '"rule_version":"x"}'
  local lines = {
    good,                                              -- 1
    "this is not json",                                -- 2
    good,                                              -- 3
    "",                                                -- 4 (blank: skipped)
    '{"user":7,"workspace":1,"status":"404"}',         -- 5 JSON, not a decision
    "[1,2,3]",                                         -- 6
    ("["):rep(100000),                                 -- 7 deep nesting
    '{"user":7,"user":8,"workspace":1,"family":"P","path":"p","status":404,"reason":"r"}', -- 8
    good,                                              -- 9
    "\255\254 binary \0 garbage",                      -- 10
    good:sub(1, 60),                                   -- 11 a line cut short by a crash
  }
  H.write(log, table.concat(lines, "\n"))
  local s = summary(log)
  lu.assertEquals(s.lines, 11)
  lu.assertEquals(s.decisions, 3)
  lu.assertEquals(s.blank, 1)
  lu.assertEquals(s.malformed, 7)
  lu.assertEquals(#s.malformed_lines, logsum.MALFORMED_SHOWN)
  local numbers = {}
  for i, m in ipairs(s.malformed_lines) do numbers[i] = m.line end
  lu.assertEquals(numbers, { 2, 5, 6, 7, 8 })
  lu.assertStrContains(s.malformed_lines[1].error, "not JSON")
  lu.assertStrContains(s.malformed_lines[2].error, "status")
  lu.assertStrContains(s.malformed_lines[5].error, "duplicate key")
  lu.assertEquals(count(s.top_users_404, "user", 7), 3)
  lu.assertEquals(count(s.top_tenants_404, "tenant", 3), 3)
  local out, err = ok { "log", log }
  lu.assertEquals(err, "")
  lu.assertStrContains(out, "malformed lines: 7 (the first 5 shown)")
  lu.assertStrContains(out, "\n  line 2: not JSON")
  lu.assertStrContains(out, "\n  line 8: ")
  lu.assertNotStrContains(out, "\0")
end

-- A missing file is a usage error (exit 2) naming it; so is a missing FILE; a directory
-- cannot be read (exit 2); nothing goes to stdout.
function TestLogCli:test_missing_file()
  local dir = H.tmpdir()
  local rc, out, err = tool { "log", dir .. "/nope.jsonl" }
  lu.assertEquals(rc, 2, out .. err)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "no such decision log: " .. dir .. "/nope.jsonl")
  rc, out, err = tool { "log" }
  lu.assertEquals(rc, 2, out .. err)
  lu.assertStrContains(err, "needs one FILE")
  rc, out, err = tool { "log", dir }
  lu.assertEquals(rc, 2, out .. err)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "cannot read " .. dir)
  lu.assertNotStrContains(err, "logsum.lua")
  assert(os.execute("ls " .. q(dir) .. " >/dev/null"))
  -- --top must be a positive integer; help works
  rc, out, err = tool { "log", dir .. "/nope.jsonl", "--top", "0" }
  lu.assertEquals(rc, 2, out .. err)
  lu.assertStrContains(err, "--top")
  rc, out = tool { "log", "--help" }
  lu.assertEquals(rc, 0)
  lu.assertStrContains(out, "usage: tenantguard log FILE")
  -- an empty log: every list [] in the JSON, exit 0
  H.write(dir .. "/empty.jsonl", "")
  out = ok { "log", dir .. "/empty.jsonl", "--json" }
  for _, k in ipairs { "by_status", "by_reason", "by_family", "by_path", "top_users_404",
      "top_tenants_404", "malformed_lines" } do
    lu.assertStrContains(out, ('"%s":[]'):format(k))
  end
  -- resolve --log into a directory that does not exist: decided nothing, exit 2
  local db = H.refdb(5)
  rc, out, err = tool { "resolve", "--db", db, "--user", "2", "--workspace", "1", "--tenant",
    "1", "--family", "Policy", "--path", "index", "--log", dir .. "/no/such/dir/x.jsonl" }
  lu.assertEquals(rc, 2, out .. err)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "decision log")
end

-- matrix --log logs every decision of the matrix run, and none of the mutants'.
function TestLogCli:test_matrix_log()
  local db = H.refdb(10)
  local dir = H.tmpdir()
  local a, b = dir .. "/matrix.jsonl", dir .. "/mutate.jsonl"
  ok { "matrix", "--db", db, "--log", a }
  local s = summary(a)
  lu.assertTrue(s.decisions > 50, s.decisions .. " decisions")
  lu.assertEquals(s.malformed, 0)
  for _, st in ipairs { 200, 403, 404 } do
    lu.assertTrue(count(s.by_status, "status", st) > 0, "no " .. st)
  end
  lu.assertTrue(count(s.by_reason, "reason", "foreign_tenant") > 0)
  lu.assertTrue(#s.by_family >= 8, #s.by_family .. " families")
  ok { "matrix", "--db", db, "--mutate", "--log", b }
  lu.assertEquals(lines_of(b), lines_of(a), "the mutants' decisions were logged too")
  local rc, out, err = tool { "matrix", "--db", db, "--list", "--log", a }
  lu.assertEquals(rc, 2, out .. err)
end

-- ---------------------------------------------------------------------------------------
TestLogSummary = {}

local function lines_iter(list)
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

-- Keys keep their type: user 5 and user "5" are two users, a blob key is a blob.
function TestLogSummary:test_keys_keep_their_type()
  local function line(user, tenant)
    return ('{"user":%s,"workspace":1,"tenant":%s,"family":"F","path":"detail","status":404,'
      .. '"reason":"not_entitled"}'):format(user, tenant)
  end
  local s = logsum.lines(lines_iter {
    line("5", "3"), line('"5"', "3"), line('"5"', '"3"'), line('{"blob":"00FF"}', "null"),
    line("9223372036854775807", "3"),
  })
  lu.assertEquals(s.decisions, 5)
  lu.assertEquals(s.users_404, 4)
  lu.assertEquals(count(s.top_users_404, "user", "5"), 2)
  lu.assertEquals(count(s.top_users_404, "user", 5), 1)
  lu.assertEquals(count(s.top_users_404, "user", math.maxinteger), 1)
  lu.assertEquals(count(s.top_tenants_404, "tenant", 3), 3)
  lu.assertEquals(count(s.top_tenants_404, "tenant", "3"), 1)
  lu.assertEquals(s.without_tenant_404, 1)
  local shaped = logsum.shape(s)
  local blob
  for _, u in ipairs(shaped.top_users_404) do
    if type(u.user) == "table" then blob = u.user end
  end
  lu.assertEquals(blob, { blob = "00ff" })
  local text = logsum.report(s)
  lu.assertStrContains(text, "\n  text:5 ")
  lu.assertStrContains(text, "\n  blob:00ff ")
  lu.assertStrContains(text, "\n  9223372036854775807 ")
  -- text from the log cannot drive the terminal
  s = logsum.lines(lines_iter { ('{"user":"\\u001b[31mx","workspace":1,"tenant":1,'
    .. '"family":"F","path":"p","status":404,"reason":"r"}') })
  lu.assertEquals(s.decisions, 1)
  lu.assertNotStrContains(logsum.report(s), "\27")
end

-- An automatic reload's line (tg.open{ auto_reload = }) is counted as a reload: neither a
-- decision nor a malformed line.
function TestLogSummary:test_reload_lines()
  local s = logsum.lines(lines_iter {
    '{"user":1,"workspace":1,"tenant":1,"family":"F","path":"detail","status":200,"reason":"ok"}',
    '{"time":"2026-01-01T12:00:00.000Z","kind":"reload","ok":true,"rules":"rules",'
      .. '"rule_version":"a","previous_version":"b","error":null}',
    '{"time":"2026-01-01T12:00:01.000Z","kind":"reload","ok":false,"rules":"rules",'
      .. '"rule_version":"a","previous_version":"a","error":"rules/f.lua:7: boom"}',
  })
  lu.assertEquals(s.decisions, 1)
  lu.assertEquals(s.malformed, 0)
  lu.assertEquals(s.reloads, 2)
  lu.assertEquals(s.failed_reloads, 1)
  lu.assertEquals(logsum.shape(s).reloads, 2)
  lu.assertStrContains(logsum.report(s), "rule reloads: 2 (1 failed, the old rules kept)")
end

-- The decoder: exact 64-bit integers, escapes, and every kind of broken text refused.
function TestLogSummary:test_decoder()
  lu.assertEquals(logsum.decode("9223372036854775807"), math.maxinteger)
  lu.assertEquals(math.type(logsum.decode("-9223372036854775808")), "integer")
  lu.assertEquals(logsum.decode('"a\\"b\\u00e9\\ud83d\\ude00"'), 'a"b\u{e9}\u{1F600}')
  lu.assertEquals(logsum.decode(' {"a": [1, 2.5, true, false]} '), { a = { 1, 2.5, true, false } })
  lu.assertEquals(logsum.decode("null"), logsum.null)
  for _, bad in ipairs { "", "{", "[1,]", '{"a":1,}', "01", "1.", '"\\x"', '"a', "tru",
      '{"a" 1}', "[1 2]", '"tab\there"', "1 2", ("["):rep(1000) } do
    local v, err = logsum.decode(bad)
    lu.assertNil(v, bad)
    lu.assertStrContains(err, "column", false, bad)
  end
end

os.exit(lu.LuaUnit.run())
