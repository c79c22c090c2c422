-- The command-line tool never passes while checking nothing: every argument is understood or
-- an error, a missing database is never created, -h/--help only prints help, and the exit
-- code says what happened (0 success, 1 findings, 2 usage, 130 Ctrl-C). Each case runs the
-- built tool (TG_TOOL) in an empty working directory, with stdout and stderr apart.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs the tool with the given arguments (each one quoted) in cwd; returns rc, stdout, stderr.
local function tool_in(cwd, args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = q(a) end
  local o, e = os.tmpname(), os.tmpname()
  local cmd = ("cd %s && %s %s </dev/null >%s 2>%s; echo $?"):format(q(cwd), q(H.tool),
    table.concat(parts, " "), q(o), q(e))
  local p = assert(io.popen(cmd))
  local rc = tonumber((p:read("a"):match("(%d+)%s*$")))
  p:close()
  local out, err = H.read(o), H.read(e)
  os.remove(o)
  os.remove(e)
  return rc, out, err
end

-- The entries of a directory (hidden ones too), sorted, as one string.
local function listing(dir)
  local p = assert(io.popen("ls -A " .. q(dir)))
  local s = p:read("a")
  p:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Runs in a fresh empty directory and checks the directory stays empty.
local function tool(args, what)
  local cwd = H.tmpdir()
  local rc, out, err = tool_in(cwd, args)
  lu.assertEquals(listing(cwd), "", (what or table.concat(args, " ")) .. ": created files in the "
    .. "working directory")
  return rc, out, err
end

-- A usage error: exit 2, nothing on stdout, the message on stderr.
local function assert_usage(args, needle)
  local what = table.concat(args, " ")
  local rc, out, err = tool(args, what)
  lu.assertEquals(rc, 2, what .. "\nstdout: " .. out .. "\nstderr: " .. err)
  lu.assertEquals(out, "", what .. ": wrote to stdout")
  if needle then lu.assertStrContains(err, needle, false, what) end
  return err
end

local function join(...)
  local out = {}
  for _, list in ipairs { ... } do
    for _, v in ipairs(list) do out[#out + 1] = v end
  end
  return out
end

-- Every subcommand with the arguments it needs to run against db (a path), so that one more
-- argument is the only thing wrong with it.
local function runnable(db)
  return {
    lint = {},
    rules = {},
    checks = {},
    demo = {},
    refdb = { db .. ".new" },
    validate = { "--db", db },
    matrix = { "--db", db },
    backfill = { "--db", db, "--dry-run" },
    worker = { "--db", db },
    rollout = { "add_columns", "--db", db },
    resolve = { "--db", db, "--user", "1", "--workspace", "1", "--tenant", "1", "--family",
      "Policy", "--path", "index" },
  }
end

local COMMANDS = { "lint", "rules", "checks", "demo", "refdb", "validate", "matrix", "backfill",
  "worker", "rollout", "resolve" }

-- ---------------------------------------------------------------------------------------
TestCliArguments = {}

function TestCliArguments:tearDown() H.cleanup() end

-- `lint DIR` lints DIR: a broken rule directory fails, whatever the shipped rules say.
function TestCliArguments:test_lint_dir_lints_that_dir()
  local dir = H.rule_dir { ["families.lua"] = 'family "Thing" {\n  table = "things",\n'
    .. '  primary_surface = "T", search_posture = "scoped",\n'
    .. '  action_surface_status = "declared", paths = { index = {} },\n}\n' }
  local rc, out, err = tool { "lint", dir }
  lu.assertEquals(rc, 1, out .. err)
  lu.assertStrContains(out, dir .. "/families.lua:1: error:")
  lu.assertStrContains(out, "[scoped_search_without_path]")
  rc, out = tool { "lint", "--json", dir }
  lu.assertEquals(rc, 1, out)
  lu.assertStrContains(out, '"code":"scoped_search_without_path"')
  -- a clean copy passes, and the summary names the directory linted
  local copy = H.shipped_copy()
  rc, out, err = tool { "lint", copy }
  lu.assertEquals(rc, 0, out .. err)
  lu.assertStrContains(out, copy .. ": 0 errors")
  -- both forms at once, two directories, or a directory that is not there: usage errors
  assert_usage({ "lint", dir, "--rules", copy }, "not both")
  assert_usage({ "lint", dir, copy }, "unexpected argument")
  assert_usage({ "lint", dir .. "/nope" }, "no such rules: " .. dir .. "/nope")
  assert_usage({ "lint", "--rules", dir .. "/nope" }, "no such rules: " .. dir .. "/nope")
  -- `rules DIR` reads DIR too
  rc, out = tool { "rules", copy }
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "rules " .. copy)
end

-- A stray positional argument is an error on every subcommand.
function TestCliArguments:test_stray_positional_is_an_error()
  local db = H.refdb(10)
  local before = H.read(db)
  for name, args in pairs(runnable(db)) do
    local extra = (name == "lint" or name == "rules") and { "a", "b" } or { "stray" }
    local err = assert_usage(join({ name }, args, extra), "unexpected argument")
    lu.assertStrContains(err, "tenantguard " .. name .. ":", false, name)
  end
  lu.assertFalse(exists(db .. ".new"), "refdb created its file despite the usage error")
  lu.assertEquals(H.read(db), before, "the database changed")
  assert_usage({ "rollout", "--db", db }, "needs one PHASE")
  assert_usage({ "rollout", "no_such_phase", "--db", db }, "unknown phase 'no_such_phase'")
  assert_usage({ "refdb" }, "exactly one FILE")
end

-- An unknown option is an error on every subcommand, long or short.
function TestCliArguments:test_unknown_option_is_an_error()
  local db = H.refdb(10)
  for name, args in pairs(runnable(db)) do
    assert_usage(join({ name }, args, { "--bogus" }), "unknown option --bogus")
    assert_usage(join({ name }, args, { "-x" }), "unknown option -x")
  end
  assert_usage({ "--bogus" }, "unknown command '--bogus'")
end

-- Bad values, duplicated options and options without their value: exit 2, clear message,
-- nothing runs.
function TestCliArguments:test_bad_values_are_usage_errors()
  local db = H.refdb(10)
  local before = H.read(db)
  local ctx = { "--db", db, "--user", "1", "--workspace", "1", "--tenant", "1", "--family",
    "Policy" }
  local cases = {
    { { "backfill", "--db", db, "--batch-ms", "-5" }, "--batch-ms" },
    { { "backfill", "--db", db, "--batch-ms", "0" }, "--batch-ms" },
    { { "backfill", "--db", db, "--batch-ms", "1e3" }, "--batch-ms" },
    { { "backfill", "--db", db, "--pause-ms", "-1" }, "--pause-ms" },
    { { "backfill", "--db", db, "--batch-rows", "0" }, "--batch-rows" },
    { { "backfill", "--db", db, "--batch-rows", "2.5" }, "--batch-rows" },
    { { "backfill", "--db", db, "--status", "--run", "x" }, "--run" },
    { { "worker", "--db", db, "--max-seconds", "abc" }, "--max-seconds" },
    { { "worker", "--db", db, "--max-seconds", "0" }, "--max-seconds" },
    { { "worker", "--db", db, "--max-seconds", "-3" }, "--max-seconds" },
    { { "worker", "--db", db, "--max-seconds", "nan" }, "--max-seconds" },
    { { "worker", "--db", db, "--max-seconds", "inf" }, "--max-seconds" },
    { { "worker", "--db", db, "--max-batches", "0" }, "--max-batches" },
    { join({ "resolve" }, ctx, { "--path", "bulk_action", "--ids", "1,,2" }), "--ids" },
    { join({ "resolve" }, ctx, { "--path", "bulk_action", "--ids", "1,2," }), "--ids" },
    { join({ "resolve" }, ctx, { "--path", "bulk_action", "--ids", ",1" }), "--ids" },
    -- keys that are not integers are text, which an INTEGER key column cannot hold
    { join({ "resolve" }, ctx, { "--path", "bulk_action", "--ids", "1,a" }),
      "ids[2]: expected an integer key for policies.id, got text" },
    { join({ "resolve" }, ctx, { "--path", "bulk_action", "--ids", "" }), "--ids" },
    { join({ "resolve" }, ctx, { "--path", "index", "--limit", "x" }), "--limit" },
    { join({ "resolve" }, ctx, { "--path", "index", "--limit", "0" }), "--limit" },
    { join({ "resolve" }, ctx, { "--path", "detail", "--id", "1.5" }),
      "id: expected an integer key for policies.id, got text" },
    { join({ "resolve" }, ctx, { "--path", "detail", "--id", "99999999999999999999" }),
      "id: expected an integer key for policies.id, got text" },
    { join({ "resolve" }, ctx, { "--path", "detail", "--id", "text:1" }),
      "id: expected an integer key for policies.id, got text" },
    { { "resolve", "--db", db, "--user", "abc", "--workspace", "1", "--family", "Policy",
      "--path", "index" }, "user: expected an integer key" },
    { { "refdb", db .. ".new", "--rows", "0" }, "--rows" },
    { { "refdb", db .. ".new", "--rows", "-3" }, "--rows" },
    { { "refdb", db .. ".new", "--rows", "many" }, "--rows" },
    { { "demo", "--rows", "0" }, "--rows" },
    -- duplicated
    { { "validate", "--db", db, "--db", db }, "--db given twice" },
    { { "lint", "--json", "--json" }, "--json given twice" },
    { { "matrix", "--db", db, "--strict", "--strict" }, "--strict given twice" },
    { { "refdb", db .. ".new", "--rows", "5", "--rows=6" }, "--rows given twice" },
    -- missing values
    { { "validate", "--db" }, "--db needs a value" },
    { { "validate", "--db", "--json" }, "--db needs a value" },
    { { "validate", "--db=" }, "--db needs a value" },
    { { "backfill", "--db", db, "--batch-ms" }, "--batch-ms needs a value" },
    { join({ "resolve" }, ctx, { "--path", "bulk_action", "--ids" }), "--ids needs a value" },
    -- a flag given a value
    { { "lint", "--json=yes" }, "--json takes no value" },
  }
  for _, c in ipairs(cases) do
    assert_usage(c[1], c[2])
  end
  lu.assertFalse(exists(db .. ".new"), "refdb created its file despite the usage error")
  lu.assertEquals(H.read(db), before, "the database changed")
end

-- Values that are right are taken, in both spellings.
function TestCliArguments:test_good_values_work()
  local db = H.refdb(10)
  local rc, out, err = tool { "resolve", "--db=" .. db, "--user", "1", "--workspace=1",
    "--tenant", "1", "--family", "Policy", "--path", "bulk_action", "--ids", "1,2,-3" }
  lu.assertEquals(rc, 0, out .. err)
  lu.assertEquals(err, "")
  lu.assertStrMatches(out, "^%d%d%d %S+\n.*")
  rc, out, err = tool { "worker", "--db", db, "--max-seconds", "0.5", "--quiet" }
  lu.assertEquals(rc, 0, out .. err)
  lu.assertEquals(err, "")
  -- `--` ends the options
  local dir = H.tmpdir()
  rc, out, err = tool_in(dir, { "refdb", "--rows", "3", "--", "-h" })
  lu.assertEquals(rc, 0, out .. err)
  lu.assertTrue(exists(dir .. "/-h"))
end

-- ---------------------------------------------------------------------------------------
TestCliNoCreate = {}

function TestCliNoCreate:tearDown() H.cleanup() end

local function assert_absent(path, what)
  for _, suffix in ipairs { "", "-wal", "-shm", "-journal" } do
    lu.assertFalse(exists(path .. suffix), what .. " created " .. path .. suffix)
  end
end

-- A --db that does not exist is an error ("no such database"), and no file appears.
function TestCliNoCreate:test_missing_db_is_never_created()
  local missing = H.tmpdir() .. "/typo.db"
  for name, args in pairs(runnable(missing)) do
    local uses_db = false
    for _, a in ipairs(args) do uses_db = uses_db or a == missing end
    if uses_db then
      local err = assert_usage(join({ name }, args), "no such database: " .. missing)
      lu.assertStrContains(err, "tenantguard " .. name .. ":", false, name)
      assert_absent(missing, name)
    end
  end
  for _, args in ipairs { { "lint", "--db", missing }, { "backfill", "--db", missing },
    { "backfill", "--db", missing, "--status" }, { "matrix", "--db", missing, "--list" } } do
    assert_usage(args, "no such database: " .. missing)
    assert_absent(missing, args[1])
  end
  -- refdb is the command that creates one
  local rc, out, err = tool { "refdb", missing, "--rows", "5" }
  lu.assertEquals(rc, 0, out .. err)
  lu.assertTrue(exists(missing))
end

-- tg.open never creates a database unless asked to with create = true.
function TestCliNoCreate:test_open_does_not_create()
  local missing = H.tmpdir() .. "/typo.db"
  local ok, err = pcall(tg.open, { db = missing, rules = H.shipped_rules })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "no such database: " .. missing)
  assert_absent(missing, "tg.open")
  -- a directory that does not exist either
  ok, err = pcall(tg.open, { db = missing .. "/x.db", rules = H.shipped_rules })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "no such database")
  -- asked explicitly, it creates one (where the rules then find none of their tables)
  ok, err = pcall(tg.open, { db = missing, rules = H.shipped_rules, create = true })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "[missing_table]")
  lu.assertTrue(exists(missing))
  -- an existing database opens as before
  eng = tg.open { db = H.refdb(5), rules = H.shipped_rules }
  eng:close()
end

-- ---------------------------------------------------------------------------------------
TestCliHelp = {}

function TestCliHelp:tearDown() H.cleanup() end

local function assert_help(args, name)
  local what = table.concat(args, " ")
  local rc, out, err = tool(args, what)
  lu.assertEquals(rc, 0, what .. "\n" .. out .. err)
  lu.assertEquals(err, "", what .. ": wrote to stderr")
  local head = "usage: tenantguard " .. name
  lu.assertEquals(out:sub(1, #head), head, what)
  return out
end

-- -h and --help print help and do nothing else, wherever they are, on every subcommand.
function TestCliHelp:test_help_does_nothing_else()
  local db = H.refdb(10)
  local before = H.read(db)
  for name, args in pairs(runnable(db)) do
    local first = assert_help({ name, "-h" }, name)
    lu.assertEquals(assert_help({ name, "--help" }, name), first)
    lu.assertEquals(assert_help({ "help", name }, name), first)
    assert_help(join({ name }, args, { "-h" }), name)
    assert_help(join({ name, "--help" }, args), name)
    -- even after something wrong
    assert_help(join({ name }, args, { "--bogus", "--help" }), name)
    lu.assertStrContains(first, "exit", false, name .. ": the help says nothing about exit codes")
  end
  -- the two that wrote files before
  assert_help({ "demo", "-h" }, "demo")
  assert_help({ "demo", "--dir", "out", "--rows", "5", "-h" }, "demo")
  assert_help({ "refdb", "-h" }, "refdb")
  assert_help({ "refdb", "new.db", "--help" }, "refdb")
  assert_help({ "refdb", "--rows", "5", "-h", "new.db" }, "refdb")
  lu.assertFalse(exists(db .. ".new"))
  lu.assertEquals(H.read(db), before, "the database changed")
end

-- The top level: help lists the commands and the exit codes; no command is a usage error.
function TestCliHelp:test_top_level_help()
  for _, args in ipairs { { "-h" }, { "--help" }, { "help" } } do
    local rc, out, err = tool(args)
    lu.assertEquals(rc, 0, table.concat(args, " "))
    lu.assertEquals(err, "")
    lu.assertStrContains(out, "usage: tenantguard <command>")
    for _, name in ipairs(COMMANDS) do lu.assertStrContains(out, "  " .. name .. " ") end
    lu.assertStrContains(out, "130")
    lu.assertStrContains(out, "help COMMAND")
  end
  local rc, out, err = tool {}
  lu.assertEquals(rc, 2)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "usage: tenantguard <command>")
  assert_usage({ "help", "nope" }, "unknown command 'nope'")
  assert_usage({ "help", "lint", "extra" }, "unexpected argument")
  assert_usage({ "frobnicate" }, "unknown command 'frobnicate'")
end

-- ---------------------------------------------------------------------------------------
TestCliExit = {}

function TestCliExit:tearDown() H.cleanup() end

-- Failures of the command itself go to stderr; results to stdout.
function TestCliExit:test_messages_on_stderr()
  local db = H.refdb(10)
  -- phase 3 is refused while rows are unbound: exit 1, the reason on stderr
  local rc, out, err = tool { "rollout", "enforce_constraints", "--db", db }
  lu.assertEquals(rc, 1, out .. err)
  lu.assertEquals(out, "")
  lu.assertNotEquals(err, "")
  -- validation with rows to fix: the report on stdout, exit 1
  rc, out, err = tool { "validate", "--db", db }
  lu.assertEquals(rc, 1)
  lu.assertStrContains(out, "validation:")
  lu.assertEquals(err, "")
  -- a run that does not exist: nothing to report on
  rc, out, err = tool { "backfill", "--db", db, "--status", "--run", "77" }
  lu.assertEquals(rc, 2, out .. err)
  lu.assertEquals(out, "")
  lu.assertStrContains(err, "no backfill run 77")
  -- no run at all and none named: the message names no run the user did not ask for
  for _, action in ipairs { "--status", "--pause", "--resume", "--cancel" } do
    rc, out, err = tool { "backfill", "--db", db, action }
    lu.assertEquals(rc, 2, action .. ": " .. out .. err)
    lu.assertEquals(out, "")
    lu.assertStrContains(err, "no backfill run has been queued yet", false, action)
    lu.assertNotStrContains(err, "run 0", false, action)
  end
end

-- Runs a shell script; returns its output (the script echoes what the test needs).
local function sh(script)
  local p = assert(io.popen("sh -c " .. q(script)))
  local s = p:read("a")
  p:close()
  return s
end

-- Ctrl-C during the worker: it stops after the batch in progress commits, says so on stderr
-- and exits 130; the run stays resumable.
function TestCliExit:test_worker_ctrl_c_exits_130()
  local db = H.refdb(1500)
  local function ok(args)
    local rc, out, err = tool(args)
    lu.assertEquals(rc, 0, table.concat(args, " ") .. out .. err)
  end
  ok { "rollout", "add_columns", "--db", db }
  ok { "rollout", "enforce_writes", "--db", db }
  -- small batches with a pause between them: the run takes minutes unless stopped
  ok { "backfill", "--db", db, "--batch-rows", "20", "--batch-ms", "1", "--pause-ms", "200" }
  local dir = H.tmpdir()
  local script = ([[
cd %s
env --default-signal=INT %s worker --db %s >out 2>err &
pid=$!
i=0
while [ ! -s err ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
kill -INT $pid
wait $pid
echo "rc=$?"
]]):format(q(dir), q(H.tool), q(db))
  local res = sh(script)
  local out, err = H.read(dir .. "/out"), H.read(dir .. "/err")
  lu.assertEquals(res:match("rc=(%d+)"), "130", res .. out .. err)
  lu.assertStrContains(err, "interrupted")
  lu.assertStrContains(out, "run ")
  local eng = tg.open { db = db, rules = H.shipped_rules }
  local run = eng:run()
  eng:close()
  lu.assertTrue(run.rows_done > 0, "no batch committed")
  lu.assertTrue(run.rows_done < run.rows_total, "the worker did not stop")
  lu.assertTrue(run.status == "running" or run.status == "queued", run.status)
end

-- Ctrl-C while refdb creates the database: it stops after the table in progress, leaves no
-- half-made file behind (so the next refdb does not find one "already exists"), exits 130.
function TestCliExit:test_refdb_ctrl_c_leaves_no_file()
  local dir = H.tmpdir()
  local db = dir .. "/big.db"
  local script = ([[
cd %s
env --default-signal=INT %s refdb %s --rows 300000 >out 2>err &
pid=$!
i=0
while [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.3
kill -INT $pid
wait $pid
echo "rc=$?"
]]):format(q(dir), q(H.tool), q(db), q(db))
  local res = sh(script)
  local out, err = H.read(dir .. "/out"), H.read(dir .. "/err")
  lu.assertEquals(res:match("rc=(%d+)"), "130", res .. out .. err)
  lu.assertStrContains(err, "interrupted")
  lu.assertEquals(out, "")
  assert_absent(db, "an interrupted refdb")
end

-- Ctrl-C while a command waits inside the library (here: for a write lock) ends it at once
-- with 130, not after the wait with an error.
function TestCliExit:test_ctrl_c_in_a_long_call_exits_130()
  local db = H.refdb(10)
  local lock = tg.connect(db)
  lock:exec("BEGIN IMMEDIATE")
  local dir = H.tmpdir()
  local script = ([[
cd %s
env --default-signal=INT %s matrix --db %s >out 2>err &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
echo "rc=$?"
]]):format(q(dir), q(H.tool), q(db))
  local res = sh(script)
  lock:exec("ROLLBACK")
  lock:close()
  lu.assertEquals(res:match("rc=(%d+)"), "130", res .. H.read(dir .. "/out")
    .. H.read(dir .. "/err"))
end

os.exit(lu.LuaUnit.run())
