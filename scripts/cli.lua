-- tenantguard: the command-line tool. A trusted Lua program on the tenantguard module.
-- Run through the generated wrapper (build/tenantguard, or the installed one), which sets the
-- module paths; this file returns main(arg) -> exit code.
local tg = require "tenantguard"
local json = require "tenantguard.json"

local signal = require "tenantguard.signal"

local DEFAULT_RULES = os.getenv("TENANTGUARD_RULES") or TENANTGUARD_DEFAULT_RULES or "rules"

local commands = {}
local usage = {}
local specs = {} -- each command's option spec, for completion and the man page

local function printf(fmt, ...) io.stdout:write(fmt:format(...)) end
local function eprintf(fmt, ...) io.stderr:write(fmt:format(...)) end

-- Exit codes, the same for every command.
local EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

local EXIT_HELP = [[
exit status: 0 success; 1 findings or failed checks (lint errors, validation not zero, a
failing scenario or surviving mutant, a refused phase or run control); 2 usage errors and
anything that stops a command before it can check (an unknown option or argument, a bad
value, no such database or rules, rules that do not load); 130 after Ctrl-C.
-h or --help anywhere prints help and does nothing else.]]

-- A usage error (exit 2): raised as a table so main can tell it from other failures.
local UsageError = {}
local function usage_error(msg) error(setmetatable({ msg = msg }, UsageError), 0) end
-- Ctrl-C: the command stopped at a safe point (exit 130).
local Interrupted = {}

local function file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- ---- one parser for every command ---------------------------------------------------------
-- spec: option name -> kind; kinds: "flag", "text" (non-empty), "int" (any 64-bit integer),
-- { int = true, min =, max = }, "seconds" (a decimal number > 0), "key" (an integer when it
-- parses as a 64-bit one, else text; "text:42" forces text), "keys" (1,2,abc).
-- spec[1] = { min =, max =, name = } positional arguments (default none).
-- Returns opts (converted values), positionals; opts.help when -h/--help was given, in which
-- case nothing else was checked. Every problem is a usage error.

local POSITIVE = { int = true, min = 1 }
local MAX_SECONDS = 1e9

local function parse_int(v)
  if not v:match("^%-?%d+$") then return nil end
  return math.tointeger(tonumber(v))
end

-- A record, user, workspace or tenant key as typed on the command line.
local function parse_key(v)
  local forced = v:match("^text:(.*)$")
  if forced then return forced end
  return parse_int(v) or v
end

-- A key as it is typed back on the command line (the inverse of parse_key).
local function key_text(k)
  if type(k) == "string" and (parse_int(k) or k:match("^text:")) then return "text:" .. k end
  return tostring(k)
end

local function convert(name, kind, v)
  if v == "" then usage_error(("--%s needs a value"):format(name)) end
  if kind == "text" then return v end
  if kind == "key" then return parse_key(v) end
  if kind == "keys" then
    local keys = {}
    for item in (v .. ","):gmatch("([^,]*),") do
      if item == "" then
        usage_error(("--%s must be a comma-separated list of keys (like 1,2,3), got '%s'")
          :format(name, v))
      end
      keys[#keys + 1] = parse_key(item)
    end
    return keys
  end
  if kind == "int" then
    local n = parse_int(v)
    if not n then usage_error(("--%s must be an integer, got '%s'"):format(name, v)) end
    return n
  end
  if kind == "seconds" then
    local n = (v:match("^%d+%.?%d*$") or v:match("^%.%d+$")) and tonumber(v)
    if not n or n <= 0 or n > MAX_SECONDS then
      usage_error(("--%s must be a number of seconds greater than 0 (at most %d), got '%s'")
        :format(name, MAX_SECONDS, v))
    end
    return n
  end
  if kind == "ids" then
    local ids = {}
    for item in (v .. ","):gmatch("([^,]*),") do
      local n = parse_int(item)
      if not n then
        usage_error(("--%s must be a comma-separated list of integers (like 1,2,3), got '%s'")
          :format(name, v))
      end
      ids[#ids + 1] = n
    end
    return ids
  end
  -- a bounded integer
  local n = parse_int(v)
  if not n or n < (kind.min or math.mininteger) or n > (kind.max or math.maxinteger) then
    local range = kind.max and ("from %d to %d"):format(kind.min, kind.max)
      or (kind.min == 0 and "of 0 or more" or ("of %d or more"):format(kind.min))
    usage_error(("--%s must be an integer %s, got '%s'"):format(name, range, v))
  end
  return n
end

local function parse(args, spec)
  -- help wins over everything, and does not depend on the rest making sense
  local only_pos = false
  for _, a in ipairs(args) do
    if a == "--" then only_pos = true end
    if not only_pos and (a == "-h" or a == "--help") then return { help = true }, {} end
  end
  local opts, pos = {}, {}
  local i = 1
  only_pos = false
  while i <= #args do
    local a = args[i]
    if only_pos then
      pos[#pos + 1] = a
    elseif a == "--" then
      only_pos = true
    elseif a:sub(1, 2) == "--" then
      local name, inline = a:match("^%-%-([^=]*)=(.*)$")
      name = name or a:sub(3)
      local kind = spec[name]
      if not kind then usage_error(("unknown option --%s"):format(name)) end
      if opts[name] ~= nil then usage_error(("--%s given twice"):format(name)) end
      if kind == "flag" then
        if inline then usage_error(("--%s takes no value"):format(name)) end
        opts[name] = true
      else
        local v = inline
        if v == nil then
          v = args[i + 1]
          if v == nil or v:sub(1, 2) == "--" then
            usage_error(("--%s needs a value"):format(name))
          end
          i = i + 1
        end
        opts[name] = convert(name, kind, v)
      end
    elseif a:match("^%-[^%d]") then
      usage_error(("unknown option %s"):format(a))
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  local p = spec[1] or { min = 0, max = 0 }
  if #pos > p.max then
    usage_error(("unexpected argument '%s'"):format(pos[p.max + 1]))
  end
  if #pos < p.min then usage_error(p.missing or ("needs " .. p.name)) end
  return opts, pos
end

-- The rules directory: DIR (a positional, where the command takes one) or --rules DIR.
local function rules_dir(opts, pos)
  if pos and pos[1] and opts.rules then
    usage_error("give the rules either as DIR or with --rules DIR, not both")
  end
  local dir = (pos and pos[1]) or opts.rules or DEFAULT_RULES
  if not file_exists(dir) then usage_error("no such rules: " .. dir) end
  return dir
end

-- The --db of commands that work on an existing database: never created here.
-- A PostgreSQL connection string (URI or keyword/value), as the library tells them apart.
local function is_postgres(target)
  return target:match("^postgresql://") ~= nil or target:match("^postgres://") ~= nil
    or (target:find("=", 1, true) ~= nil and not target:sub(1, target:find("=", 1, true))
      :find("/", 1, true))
end

local function existing_db(opts, optional)
  if not opts.db then
    if optional then return nil end
    usage_error("--db FILE is required")
  end
  if is_postgres(opts.db) then return opts.db end -- the server says whether it is there
  if not file_exists(opts.db) then usage_error("no such database: " .. opts.db) end
  return opts.db
end

-- Defines a command: its options, and its body run with the parsed options. -h/--help
-- prints usage[name] and runs nothing.
local function command(name, spec, fn)
  specs[name] = spec
  commands[name] = function(args)
    local opts, pos = parse(args, spec)
    if opts.help then
      print(usage[name] .. "\n\n" .. EXIT_HELP)
      return EXIT_OK
    end
    return fn(opts, pos)
  end
end

local function finding_line(f)
  local where = f.where ~= "" and (f.where .. ": ") or ""
  return ("%s%s: %s [%s]"):format(where, f.level, f.message, f.code)
end

-- ---------------------------------------------------------------------------------------
usage.lint = [[
usage: tenantguard lint [DIR | --rules DIR] [--db FILE] [--json] [--strict]
                        [--watch] [--interval MS] [--target citus]

Checks the rule scripts in DIR (and, with --db, the mapping against the database schema and
drift: tables with the tenant column that no rule covers). Prints every finding with
file:line and a stable code. Exit 1 on errors (with --strict, also on warnings).
--watch keeps going for an editing session: it lints again whenever a rule file is added,
removed or written (looking every MS milliseconds, default 300, 50 to 60000), printing a
separator line before each new report (with --json: one JSON object per line, no
separator), and stops on Ctrl-C with exit 130.
--target citus reports instead what a Citus deployment of the rules requires (warnings and
info): keys and foreign keys of tenant-owned tables without the tenant column, tenant
columns that allow NULL, the reference tables, the distribution and colocation of the
tenant-owned tables, tables without a tenant column that reference them, and the paths whose
statements reach every shard. With --db (SQLite or PostgreSQL) the keys come from its
catalog; without, from the rules alone. Nothing here ran against Citus.]]

local WATCH_INTERVAL = { int = true, min = 50, max = 60000 }

local lint_once

command("lint", { rules = "text", db = "text", json = "flag", strict = "flag",
  watch = "flag", interval = WATCH_INTERVAL, target = "text",
  { min = 0, max = 1, name = "DIR" } }, function(opts, pos)
  if opts.target and opts.target ~= "citus" then
    usage_error(("--target must be citus, got '%s'"):format(opts.target))
  end
  local rules = rules_dir(opts, pos)
  local db = existing_db(opts, true)
  if opts.interval and not opts.watch then usage_error("--interval goes with --watch") end
  if not opts.watch then return lint_once(opts, rules, db) end
  require("tenantguard.watch").loop(rules, { interval = opts.interval,
    run = function() lint_once(opts, rules, db) end,
    before_rerun = function()
      if opts.json then return end
      printf("---- %s: rules changed, lint again ----\n", os.date("%H:%M:%S"))
    end,
    on_error = function(err) eprintf("tenantguard lint: %s\n", tostring(err)) end })
  eprintf("tenantguard lint: interrupted\n")
  return EXIT_INTERRUPTED
end)

-- One lint report of rules (against db when given); the exit code it deserves.
function lint_once(opts, rules, db)
  local findings
  if opts.target then -- citus: what a distributed deployment needs
    local eng = tg.open { rules = rules, db = db }
    local err
    findings, err = eng:citus_lint()
    eng:close()
    if not findings then error(err, 0) end
  else
    findings = tg.check { rules = rules, db = db }
  end
  local errors, warnings, infos = 0, 0, 0
  for _, f in ipairs(findings) do
    if f.level == "error" then errors = errors + 1
    elseif f.level == "info" then infos = infos + 1
    else warnings = warnings + 1 end
  end
  if opts.json then
    print(json.encode { rules = rules, db = opts.db or json.null, errors = errors,
      warnings = warnings, infos = opts.target and infos or nil,
      target = opts.target,
      findings = json.array(findings) })
  else
    for _, f in ipairs(findings) do print(finding_line(f)) end
    printf("%s: %d error%s, %d warning%s%s\n", rules, errors, errors == 1 and "" or "s",
      warnings, warnings == 1 and "" or "s",
      opts.target and (", %d info (target %s)"):format(infos, opts.target) or "")
  end
  if errors > 0 or (opts.strict and warnings > 0) then return EXIT_FINDINGS end
  return EXIT_OK
end

-- ---------------------------------------------------------------------------------------
usage.refdb = [[
usage: tenantguard refdb FILE [--rows N] [--keys integer|text] [--force]

Creates the reference application's SQLite database as it is before the workspace_id
rollout, seeded deterministically with N rows per tenant-owned table (default 1000, at most
%d), including a few rows whose tenant no longer exists. --keys text builds the same
application keyed by UUID-like text everywhere (records, users, workspaces, tenants: every
key a TEXT PRIMARY KEY, every reference to one TEXT); the shipped rules fit both (default
integer). Refuses to replace an existing file unless --force is given. The only command
that creates a database; after Ctrl-C no file is left behind. (A FILE that starts with -
goes after --: refdb -- -x.db)]]

local ROWS = { int = true, min = 1, max = 100000000 }
usage.refdb = usage.refdb:format(ROWS.max)

-- Creates the reference database; Ctrl-C removes the half-made file and exits 130.
local function create_refdb(path, rows, force, keys)
  signal.trap()
  local ok, s = pcall(require("refdb").create, path, { rows = rows, force = force,
    keys = keys, interrupted = signal.interrupted })
  signal.default()
  if not ok then
    if signal.interrupted() then error(Interrupted, 0) end
    error(s, 0)
  end
  return s
end

command("refdb", { rows = ROWS, force = "flag", keys = "text",
  { min = 1, max = 1, name = "FILE", missing = "needs exactly one FILE" } }, function(opts, pos)
  if opts.keys and opts.keys ~= "integer" and opts.keys ~= "text" then
    usage_error(("--keys must be integer or text, got '%s'"):format(opts.keys))
  end
  local t0 = os.clock()
  local s = create_refdb(pos[1], opts.rows or 1000, opts.force, opts.keys)
  printf("created %s: %d tenant-owned tables x %d rows, %s keys (%d orphan rows whose tenant "
    .. "is gone) in %.2fs\n", s.path, s.tables, s.rows, s.keys, s.orphans, os.clock() - t0)
  return EXIT_OK
end)

-- ---------------------------------------------------------------------------------------
usage.rules = [[
usage: tenantguard rules [DIR | --rules DIR] [--json]

Loads the rules in DIR and prints what they describe: families with their access paths,
scope exceptions, residual tables, roles. Exit 2 when the rules do not load (`tenantguard
lint DIR` lists why).]]

-- The maps of the rule model (docs/json.md): "{}" when empty, never "[]".
local RULES_MAPS = { roles = true, paths = true, fixture = true, columns = true, limits = true }

command("rules", { rules = "text", json = "flag", { min = 0, max = 1, name = "DIR" } },
function(opts, pos)
  local eng = tg.open { rules = rules_dir(opts, pos) }
  local r = eng:rules()
  eng:close()
  if opts.json then print(json.encode(json.mark_objects(r, RULES_MAPS))) return 0 end
  printf("rules %s, version %s, %d files\n", r.dir, r.version, r.files)
  printf("\n%-15s %-18s %-15s %-19s %s\n", "family", "table", "search", "action surface",
    "paths")
  for _, f in ipairs(r.families) do
    printf("%-15s %-18s %-15s %-19s %s\n", f.name, f.table, f.search_posture,
      f.action_surface_status, table.concat(f.path_order, ", "))
  end
  printf("\nexceptions:\n")
  for _, e in ipairs(r.exceptions) do
    printf("  %-24s %-34s checks: %s\n", e.name, e.exception_kind,
      table.concat(e.still_required_checks, ", "))
  end
  printf("\nresidual tables:\n")
  for _, x in ipairs(r.residuals) do printf("  %-22s %s\n", x.table, x.why_not_in_first_slice) end
  printf("\nroles:\n")
  local names = {}
  for name in pairs(r.roles) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    printf("  %-10s %d of %d capabilities\n", name, #r.roles[name], #r.capabilities)
  end
  return EXIT_OK
end)

-- ---------------------------------------------------------------------------------------
usage.resolve = [[
usage: tenantguard resolve --db FILE --user U --workspace W [--tenant T]
                           (--family NAME | --exception NAME) --path PATH
                           [--id K | --ids K1,K2,...] [--owner K] [--query TEXT]
                           [--limit N] [--after K] [--capability CAP] [--rules DIR] [--json]
                           [--log FILE] [--distributed on|off|auto]

Prints the decision tenantguard makes for one request: status, reason, and the records it
returns. PATH is one of index, detail, row_action, bulk_action, relation_manager,
global_search, canonical_viewer. Keys (U, W, T, K) are integers when they parse as 64-bit
integers and text otherwise; "text:42" is the text 42. --log FILE appends the decision to
FILE as a JSON line (`tenantguard log FILE` summarises it). --distributed on makes every read
by id carry the route tenant, as on a sharded (Citus) database, where `auto` (the default)
turns it on by itself. Exit 0 when a decision was made (whatever its status).]]

-- --distributed on|off|auto: tg.open's distributed (true, false, nil)
local function distributed(opts)
  local v = opts.distributed
  if v == nil or v == "auto" then return nil end
  if v == "on" then return true end
  if v == "off" then return false end
  usage_error("--distributed takes on, off or auto, got '" .. v .. "'")
end

-- --log FILE: the engine appends each decision to FILE as a JSON line. A file that cannot be
-- opened stops the command before it decides anything (exit 2).
local function decision_log(eng, path)
  if not path then return end
  local ok, err = eng:set_decision_log(path)
  if not ok then
    eng:close()
    error(err, 0)
  end
end

command("resolve", { db = "text", user = "key", workspace = "key", tenant = "key",
  family = "text", exception = "text", path = "text", id = "key", ids = "keys", owner = "key",
  query = "text", limit = POSITIVE, after = "key", capability = "text", rules = "text",
  json = "flag", log = "text", distributed = "text" }, function(opts)
  for _, need in ipairs { "db", "user", "workspace", "path" } do
    if opts[need] == nil then usage_error("--" .. need .. " is required") end
  end
  if not opts.family == not opts.exception then
    usage_error("give one of --family NAME or --exception NAME")
  end
  local eng = tg.open { rules = rules_dir(opts), db = existing_db(opts),
    distributed = distributed(opts) }
  decision_log(eng, opts.log)
  local ctx = eng:context { user = opts.user, workspace = opts.workspace, tenant = opts.tenant }
  local d, err = ctx:resolve { family = opts.family, exception = opts.exception,
    path = opts.path, id = opts.id, ids = opts.ids, owner = opts.owner, query = opts.query,
    limit = opts.limit, after = opts.after, capability = opts.capability }
  ctx:close()
  eng:close()
  if not d then error(err, 0) end
  local records = d.records or (d.record and { d.record }) or {}
  if opts.json then
    print(json.encode(require("tenantguard.report").decision(d)))
    return 0
  end
  printf("%d %s\n", d.status, d.reason)
  if #records > 0 then
    local cols = {}
    for k in pairs(records[1]) do cols[#cols + 1] = k end
    table.sort(cols, function(a, b)
      if a == "id" or b == "id" then return a == "id" end
      return a < b
    end)
    print(table.concat(cols, "\t"))
    for _, r in ipairs(records) do
      local row = {}
      for i, c in ipairs(cols) do row[i] = r[c] == nil and "NULL" or tostring(r[c]) end
      print(table.concat(row, "\t"))
    end
    if d.has_more then
      printf("... more after id %s (--after %s)\n", tostring(d.next_after), key_text(d.next_after))
    end
  end
  return EXIT_OK
end)

-- explain: the body is in bindings/lua/tenantguard/explain.lua
local explain = require "tenantguard.explain"
usage.explain = explain.usage
command("explain", explain.spec, function(opts)
  return explain.run(opts, { tg = tg, json = json, rules_dir = rules_dir,
    existing_db = existing_db, usage_error = usage_error, distributed = distributed })
end)

-- ---------------------------------------------------------------------------------------
-- the rollout

local PHASES = { add_columns = 1, drop_columns = 1, enforce_writes = 1, drop_triggers = 1,
  quarantine_orphans = 1, enforce_constraints = 1 }
PHASES.enable_rls, PHASES.disable_rls = 1, 1 -- PostgreSQL only (pg_guard.c)

usage.rollout = [[
usage: tenantguard rollout PHASE --db FILE [--rules DIR]
       tenantguard rollout --plan --target citus [--db FILE] [--rules DIR]

Runs one schema phase of the workspace_id rollout on every tenant-owned table the rules
name, in a transaction, idempotently, with an audit-log entry:
  add_columns          phase 1: a nullable workspace_id and its indexes
  drop_columns         undoes phase 1 (refused once phase 3 is applied)
  enforce_writes       phase 1.5: triggers that bind every raw SQL write
  drop_triggers        undoes phase 1.5
  quarantine_orphans   moves rows whose tenant no longer exists to tenantguard_quarantine
  enforce_constraints  phase 3: NOT NULL and foreign keys (refused while validation fails)
  enable_rls           PostgreSQL: row-level security keyed on tenantguard.tenant_id
  disable_rls          removes it
Exit 1 when the phase is refused or fails.
--plan --target citus prints, and does not run, the DDL a Citus deployment needs, in order:
keys and foreign keys rebuilt to include the tenant column, create_reference_table for
workspaces, tenants and the membership tables, create_distributed_table for each
tenant-owned table (colocated), then phase 1's column and indexes. With --db the keys are
read from its catalog; without, assumed from the rules. Untested against Citus.]]

-- An engine on the existing --db (never creates one).
local function open_engine(opts)
  local db = existing_db(opts)
  return tg.open { rules = rules_dir(opts), db = db }
end

-- A failure of the command itself (a refused phase, a run that does not exist): stderr, 1.
local function failed(name, msg)
  eprintf("tenantguard %s: %s\n", name, tostring(msg))
  return EXIT_FINDINGS
end

command("rollout", { db = "text", rules = "text", plan = "flag", target = "text",
  { min = 0, max = 1, name = "PHASE" } }, function(opts, pos)
  if opts.plan then -- printed, never run
    if pos[1] then usage_error("give a PHASE or --plan, not both") end
    if opts.target ~= "citus" then
      usage_error(opts.target and ("--target must be citus, got '%s'"):format(opts.target)
        or "--plan needs --target citus (on PostgreSQL the plan is the phases themselves: "
          .. "tenantguard rollout PHASE --db postgresql://...)")
    end
    local eng = tg.open { rules = rules_dir(opts), db = existing_db(opts, true) }
    local text, err = eng:citus_plan()
    eng:close()
    if not text then return failed("rollout", err) end
    io.stdout:write(text)
    return EXIT_OK
  end
  if opts.target then usage_error("--target goes with --plan") end
  if not pos[1] then usage_error("needs one PHASE") end
  if not PHASES[pos[1]] then usage_error(("unknown phase '%s'"):format(pos[1])) end
  local eng = open_engine(opts)
  local ok, msg = eng:rollout(pos[1])
  eng:close()
  if not ok then return failed("rollout", msg) end
  print(msg)
  return EXIT_OK
end)

usage.backfill = [[
usage: tenantguard backfill --db FILE [--rules DIR] [--dry-run] [--json]
                            [--batch-ms N] [--pause-ms N] [--batch-rows N]
       tenantguard backfill --db FILE (--status | --pause | --resume | --cancel) [--run ID]

--dry-run counts, per table, the rows a backfill would bind, those it cannot bind (their
tenant no longer exists) with sample ids, those already correct and those whose workspace
disagrees with their tenant; nothing changes. Without it, queues a backfill run (an
operation run, one durable job per table, an audit entry) for `tenantguard worker` to
execute; no row changes until a worker runs.]]

local function print_run(r)
  -- an application without an operation-runs table of its own has no operation run
  if r.operation_run and r.operation_run > 0 then
    printf("run %d (operation run %d): %s\n", r.id, r.operation_run, r.status)
  else
    printf("run %d: %s\n", r.id, r.status)
  end
  printf("  rows looked at %d of %d, bound %d, corrected %d, cannot bind %d\n", r.rows_done,
    r.rows_total, r.rows_set, r.rows_corrected, r.rows_unbound)
  if r.batches > 0 then
    printf("  %d batches, longest %.1f ms, %.2f s in batches (%.0f rows/s)\n", r.batches,
      r.longest_batch_ms, r.seconds, r.seconds > 0 and r.rows_done / r.seconds or 0)
  end
end

local BATCH_MS = { int = true, min = 1, max = 60000 }
local PAUSE_MS = { int = true, min = 0, max = 60000 }
local BATCH_ROWS = { int = true, min = 1, max = 1000000 }

command("backfill", { db = "text", rules = "text", ["dry-run"] = "flag", json = "flag",
  ["batch-ms"] = BATCH_MS, ["pause-ms"] = PAUSE_MS, ["batch-rows"] = BATCH_ROWS,
  status = "flag", pause = "flag", resume = "flag", cancel = "flag", run = POSITIVE },
function(opts)
  local modes = {}
  for _, m in ipairs { "dry-run", "status", "pause", "resume", "cancel" } do
    if opts[m] then modes[#modes + 1] = "--" .. m end
  end
  if #modes > 1 then usage_error(table.concat(modes, " and ") .. " do not go together") end
  local tuning = opts["batch-ms"] or opts["pause-ms"] or opts["batch-rows"]
  if tuning and #modes > 0 then
    usage_error("--batch-ms, --pause-ms and --batch-rows only go with queuing a run")
  end
  if opts.run and not (opts.status or opts.pause or opts.resume or opts.cancel) then
    usage_error("--run only goes with --status, --pause, --resume or --cancel")
  end
  local eng = open_engine(opts)
  local run_id = opts.run or 0
  for _, action in ipairs { "pause", "resume", "cancel" } do
    if opts[action] then
      local ok, msg = eng[action](eng, run_id)
      if not ok then
        eng:close()
        return failed("backfill", msg)
      end
      print("backfill: " .. action .. "d")
      print_run(eng:run(run_id))
      eng:close()
      return EXIT_OK
    end
  end
  if opts.status then
    local r, msg = eng:run(run_id)
    eng:close()
    if not r then return failed("backfill", msg) end
    if opts.json then print(json.encode(r)) else print_run(r) end
    return EXIT_OK
  end
  if opts["dry-run"] then
    local plan, msg = eng:backfill { dry_run = true }
    eng:close()
    if not plan then return failed("backfill", msg) end
    if opts.json then
      plan.tables = json.array(plan.tables)
      for _, t in ipairs(plan.tables) do t.samples = json.array(t.samples) end
      print(json.encode(plan))
      return 0
    end
    printf("%-24s %9s %9s %9s %11s %9s %10s  %s\n", "table", "rows", "unbound", "would set",
      "cannot bind", "correct", "mismatched", "samples that cannot bind")
    for _, t in ipairs(plan.tables) do
      printf("%-24s %9d %9d %9d %11d %9d %10d  %s%s\n", t.table, t.rows, t.unbound, t.would_set,
        t.cannot_bind, t.correct, t.mismatched, table.concat(t.samples, ","),
        t.has_column and "" or " (no workspace_id column yet)")
    end
    local s = plan.totals
    printf("%-24s %9d %9d %9d %11d %9d %10d\n", "total", s.rows, s.unbound, s.would_set,
      s.cannot_bind, s.correct, s.mismatched)
    print("dry run: nothing was changed")
    return EXIT_OK
  end
  local r, msg = eng:backfill { batch_ms = opts["batch-ms"], pause_ms = opts["pause-ms"],
    batch_rows = opts["batch-rows"] }
  eng:close()
  if not r then return failed("backfill", msg) end
  print_run(r)
  print("queued: run `tenantguard worker` to execute it")
  return EXIT_OK
end)

usage.worker = [[
usage: tenantguard worker --db FILE [--rules DIR] [--max-seconds N] [--max-batches N]
                          [--batch-ms N] [--quiet]
                          [--max-replay-lag-ms N] [--replay-lag-sql SQL]

Executes queued backfill work in batches until none is left (or a limit is reached). Safe
to run as several processes at once and to kill at any moment: a new worker resumes where
the last committed batch ended. --batch-ms: this worker's time target per batch in place of
the run's (each batch's size aims at 40% of it, within 50 to 200,000 rows). Progress goes to
stderr (--quiet: none): on a terminal one bar that fits its width (COLUMNS, else the
terminal's, else 80), in color unless NO_COLOR is set; otherwise one plain line a second.
The rate (rows/s) and the ETA are over wall-clock time, pauses included; done never shows
more than the total. The summary goes to stdout. Ctrl-C stops it once the batch in progress
has committed (exit 130; a second Ctrl-C ends it at once, which is safe too).
On PostgreSQL (--db postgresql://...), workers on any number of machines share the run: each
batch claims its table's job with FOR UPDATE SKIP LOCKED. --max-replay-lag-ms: before each
batch, wait while the standbys' replay lag (pg_stat_replication; the role needs
pg_read_all_stats) is above N ms; --replay-lag-sql: the query that gives the lag in ms instead.]]

-- Whether stderr (where the progress goes) is a terminal.
local function stderr_is_tty()
  local ok, _, code = os.execute("test -t 2")
  return ok == true or code == 0
end

command("worker", { db = "text", rules = "text", ["max-seconds"] = "seconds",
  ["max-batches"] = POSITIVE, ["batch-ms"] = BATCH_MS, quiet = "flag",
  ["max-replay-lag-ms"] = POSITIVE, ["replay-lag-sql"] = "text" }, function(opts)
  if opts["replay-lag-sql"] and not opts["max-replay-lag-ms"] then
    usage_error("--replay-lag-sql goes with --max-replay-lag-ms")
  end
  local eng = open_engine(opts)
  local progress = require "tenantguard.progress"
  local tty = stderr_is_tty()
  local meter = progress.meter { tty = tty, color = progress.use_color(tty),
    width = tty and progress.terminal_width() or progress.DEFAULT_WIDTH,
    write = function(text) io.stderr:write(text) io.stderr:flush() end }
  local function on_progress(p)
    if signal.interrupted() then return false end
    if not opts.quiet then meter:update(p) end
  end
  signal.trap()
  local r, msg = eng:work { progress = on_progress, max_seconds = opts["max-seconds"],
    max_batches = opts["max-batches"], batch_ms = opts["batch-ms"],
    max_replay_lag_ms = opts["max-replay-lag-ms"], replay_lag_sql = opts["replay-lag-sql"] }
  signal.default()
  if not opts.quiet then meter:finish() end
  if not r then
    eng:close()
    return failed("worker", msg)
  end
  printf("worker: %d batches, %d rows, longest batch %.1f ms%s\n", r.batches, r.rows,
    r.longest_batch_ms, r.idle and ", nothing left to do" or "")
  if r.lag_waits > 0 then
    printf("worker: waited %.1f s for the standbys' replay lag (%d times)\n",
      r.lag_wait_seconds, r.lag_waits)
  end
  local ok, run = pcall(eng.run, eng)
  if ok and run then print_run(run) end
  eng:close()
  if signal.interrupted() then
    eprintf("tenantguard worker: interrupted; every batch done is committed, "
      .. "`tenantguard worker` resumes the run\n")
    return EXIT_INTERRUPTED
  end
  return EXIT_OK
end)

usage.validate = [[
usage: tenantguard validate --db FILE [--rules DIR] [--json]

The post-rollout checks, all of which must be zero: rows with workspace_id NULL in each
tenant-owned table, audit entries with a tenant but no workspace, and rows whose
workspace_id differs from their tenant's workspace (every table, every row). Exit 1 when
anything is off.]]

command("validate", { db = "text", rules = "text", json = "flag" }, function(opts)
  local eng = open_engine(opts)
  local v, msg = eng:validate()
  eng:close()
  if not v then return failed("validate", msg) end
  if opts.json then
    v.checks = json.array(v.checks)
    print(json.encode(v))
  else
    local bad = 0
    for _, c in ipairs(v.checks) do
      if c.count > 0 then
        bad = bad + 1
        printf("  FAIL %-32s %-24s %d\n", c.name, c.table or "", c.count)
      end
    end
    printf("validation: %d checks, %s\n", #v.checks,
      v.ok and "all zero" or (bad .. " not zero"))
  end
  return v.ok and EXIT_OK or EXIT_FINDINGS
end)

-- ---------------------------------------------------------------------------------------
-- the guard-scenario matrix

usage.matrix = [[
usage: tenantguard matrix --db FILE [--rules DIR] [--json] [--junit FILE] [--html FILE]
                          [--list] [--mutate] [--strict] [--verbose] [--log FILE]

Runs the guard-scenario matrix the rules define against the database, inside a
transaction that is rolled back (nothing persists), and prints each scenario's result,
then coverage: access paths with no scenario, families missing a standard scenario type,
exception checks no scenario exercises, and drift (tables with the tenant column that no
rule covers). --list prints the scenarios without running them. --mutate weakens the
enforcement one way at a time and reruns the matrix for each: every mutant must make at
least one scenario fail; survivors are listed. Exit 1 on any failing scenario or surviving
mutant (with --strict, also on coverage gaps and drift). --junit FILE writes JUnit XML (a
suite per family, a time on every test case, the mutants as a suite of their own); --html
FILE writes one self-contained page (the grid of families by scenario type, failures,
coverage gaps, drift, mutants) to read in a browser or print; --json prints the same data
(docs/json.md). --log FILE appends every decision of the matrix run (not of the mutants) to
FILE as JSON lines.]]

local function outcome_text(o)
  if o == "hidden_or_disabled_without_side_effect" then return "hidden" end
  return tostring(o)
end

local report = require "tenantguard.report"

local function print_results(results, verbose)
  printf("%-24s %-30s %-17s %-9s %-9s %s\n", "family", "scenario", "path", "expected",
    "actual", "result")
  for _, r in ipairs(results) do
    printf("%-24s %-30s %-17s %-9s %-9s %s\n", r.family,
      r.scenario_type .. (r.declared and "*" or ""), r.path, outcome_text(r.expected_outcome),
      outcome_text(r.actual_outcome), r.pass and "ok" or "FAIL")
    if not r.pass then printf("    %s\n", r.message) end
    if verbose then
      for _, c in ipairs(r.checks) do
        printf("    %-4s %-14s %-58s %s %s\n", c.pass and "ok" or "FAIL", c.actor, c.what,
          tostring(c.actual), c.reason or "")
      end
    end
  end
end

command("matrix", { db = "text", rules = "text", json = "flag", junit = "text", html = "text",
  list = "flag", mutate = "flag", strict = "flag", verbose = "flag", log = "text" }, function(opts)
  if opts.list and (opts.junit or opts.html or opts.mutate or opts.strict or opts.verbose) then
    usage_error("--list runs nothing: it does not go with --junit, --html, --mutate, --strict "
      .. "or --verbose")
  end
  if opts.junit and opts.html and opts.junit == opts.html then
    usage_error("--junit and --html name the same file")
  end
  if opts.list and opts.log then
    usage_error("--list decides nothing: it does not go with --log")
  end
  local eng = open_engine(opts)
  local rules = eng:rules()
  if opts.list then
    local rows = eng:matrix()
    eng:close()
    if opts.json then print(json.encode(json.list(rows))) return 0 end
    printf("%-24s %-30s %-17s %s\n", "family", "scenario", "path", "expected")
    for _, r in ipairs(rows) do
      printf("%-24s %-30s %-17s %s\n", r.family, r.scenario_type .. (r.declared and "*" or ""),
        r.path, outcome_text(r.expected_outcome))
    end
    printf("%d scenarios (* declared in the rules)\n", #rows)
    return 0
  end
  decision_log(eng, opts.log)
  local results, err = eng:run_matrix()
  if opts.log then eng:set_decision_log(nil) end -- the mutants' decisions are not logged
  if not results then
    eng:close()
    return failed("matrix", err)
  end
  local drift = {}
  for _, f in ipairs(tg.check { rules = rules_dir(opts), db = opts.db }) do
    if f.code == "drift" then drift[#drift + 1] = f.message end
  end
  local runs
  if opts.mutate then
    runs = {}
    for _, m in ipairs(tg.mutations()) do
      runs[#runs + 1] = { name = m.name, description = m.description,
        results = assert(eng:run_matrix(m.name)) }
    end
  end
  eng:close()
  local data = report.build { rules = rules, results = results, drift = drift, mutants = runs,
    rules_dir = rules_dir(opts), db = opts.db }
  local gaps, mutants, survivors = data.coverage, data.mutants, data.survivors
  if opts.junit then report.write(opts.junit, report.junit(data)) end
  if opts.html then report.write(opts.html, report.html(data)) end
  local n_failed = results.failed
  if opts.json then
    print(report.json(data))
  else
    print_results(results, opts.verbose)
    printf("\nmatrix: %d scenarios, %d passed, %d failed (the fixture was rolled back)\n",
      #results, results.passed, n_failed)
    printf("coverage: %s\n", #gaps == 0 and "every path, standard scenario type and exception "
      .. "check is exercised" or (#gaps .. " gap" .. (#gaps == 1 and "" or "s")))
    for _, g in ipairs(gaps) do printf("  - %s\n", g) end
    printf("drift: %s\n", #drift == 0 and "none" or (#drift .. " uncovered table(s)"))
    for _, d in ipairs(drift) do printf("  - %s\n", d) end
    if opts.mutate then
      local caught, na = 0, 0
      for _, m in ipairs(mutants) do
        if m.caught then caught = caught + 1 elseif m.not_applicable then na = na + 1 end
      end
      printf("\nmutation check: %d mutants, %d caught%s\n", #mutants, caught,
        na > 0 and (", %d not applicable"):format(na) or "")
      for _, m in ipairs(mutants) do
        printf("  %-28s %-8s %3d failing  %s%s\n", m.name, m.caught and "caught"
          or (m.not_applicable and "n/a" or "SURVIVED"), m.failed, m.description,
          m.not_applicable and not m.caught and (" (not applicable: " .. m.not_applicable .. ")")
          or "")
      end
      if #survivors > 0 then printf("survivors: %s\n", table.concat(survivors, ", ")) end
    end
  end
  if n_failed > 0 or #survivors > 0 then return EXIT_FINDINGS end
  if opts.strict and (#gaps > 0 or #drift > 0) then return EXIT_FINDINGS end
  return EXIT_OK
end)

-- ---------------------------------------------------------------------------------------
usage.log = [[
usage: tenantguard log FILE [--json] [--top N]

Summarises a JSON-lines decision log (written by resolve --log, matrix --log or
eng:set_decision_log(path); FILE - reads standard input): decisions by status, by reason,
by family and by path, and the users and the tenants with the most 404s (the top N,
default 10), since a spike of wrong-tenant 404s is how an attack or a broken link shows
up. Lines that are not decisions are counted and the first few listed by line number.
Exit 0 when the log was read (malformed lines included), 2 when FILE cannot be read.]]

command("log", { json = "flag", top = POSITIVE,
  { min = 1, max = 1, name = "FILE", missing = "needs one FILE (a JSON-lines decision log)" } },
function(opts, pos)
  local logsum = require "tenantguard.logsum"
  local s, err, why = logsum.file(pos[1], { top = opts.top })
  if not s then
    if why == "missing" then usage_error("no such decision log: " .. pos[1]) end
    error(err, 0)
  end
  if opts.json then
    print(json.encode(logsum.shape(s, json.array)))
  else
    print(logsum.report(s))
  end
  return EXIT_OK
end)

-- ---------------------------------------------------------------------------------------
usage.checks = [[
usage: tenantguard checks

Lists every check code with its level and meaning.]]

command("checks", {}, function()
  for _, c in ipairs(tg.checks()) do printf("%-28s %-8s %s\n", c.code, c.level, c.meaning) end
  return EXIT_OK
end)

-- ---------------------------------------------------------------------------------------
usage.demo = [[
usage: tenantguard demo [--dir DIR] [--rows N] [--rules DIR]

Runs the whole story on a fresh SQLite file in DIR (default ./demo): creates the reference
database, lints the rules, shows a few decisions, dry-runs the backfill, rolls workspace_id
out (columns, write triggers, the queued backfill and its worker, quarantine of rows whose
tenant is gone), validates, enforces the constraints, and runs the guard-scenario matrix
with its mutation check. Exit 0 when every step did what it should, 1 when one did not.]]

local function step(n, title, why)
  printf("\n== %d. %s %s\n", n, title, ("="):rep(math.max(0, 72 - #title)))
  if why then printf("%s\n\n", why) end
end

-- A step of the demo that must succeed; Ctrl-C inside it ends the demo with 130.
local DemoFailed = {}

command("demo", { dir = "text", rows = ROWS, rules = "text" }, function(opts)
  local dir = opts.dir or "demo"
  local rules = rules_dir(opts)
  assert(os.execute(("mkdir -p '%s'"):format(dir:gsub("'", "'\\''"))))
  local db = dir .. "/reference.db"
  local function must(rc, what)
    if rc == EXIT_INTERRUPTED then error(Interrupted, 0) end
    if rc ~= EXIT_OK then error(setmetatable({ msg = what .. " failed" }, DemoFailed), 0) end
  end

  step(1, "The reference database",
    "A multi-tenant app before the rollout: twelve tenant-owned tables without workspace_id,\n"
    .. "3 workspaces, 12 tenants, 10 users, a few rows whose tenant was deleted.")
  local s = create_refdb(db, opts.rows or 20000, true)
  printf("%s: %d tables x %d rows, %d orphan rows\n", db, s.tables, s.rows, s.orphans)

  step(2, "Lint the rules against it",
    "The rules are Lua files; the core checks every field and the mapping against the schema.")
  must(commands.lint { "--rules", rules, "--db", db }, "lint")

  step(3, "Decisions: the one canonical way to reach a tenant-owned record",
    "User 2 is an operator in workspace 1, entitled to tenants 1 and 2 only.")
  local eng = tg.open { rules = rules, db = db }
  local h = tg.connect(db)
  local mine = h:value("SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 1")
  local other = h:value("SELECT id FROM policies WHERE tenant_id = 3 ORDER BY id LIMIT 1")
  local ws2 = h:value("SELECT id FROM policies WHERE tenant_id = 5 ORDER BY id LIMIT 1")
  h:close()
  local ctx = eng:context { user = 2, workspace = 1, tenant = 1 }
  local ro = eng:context { user = 3, workspace = 1, tenant = 1 }
  local function show(label, d)
    printf("  %-58s -> %d %s\n", label, d.status, d.reason)
  end
  show(("detail of policy %d (tenant 1)"):format(mine),
    ctx:resolve { family = "Policy", path = "detail", id = mine })
  show(("detail of policy %d (tenant 3, same workspace)"):format(other),
    ctx:resolve { family = "Policy", path = "detail", id = other })
  show(("detail of policy %d (workspace 2)"):format(ws2),
    ctx:resolve { family = "Policy", path = "detail", id = ws2 })
  show("detail of policy 999999999 (does not exist)",
    ctx:resolve { family = "Policy", path = "detail", id = 999999999 })
  show(("bulk delete of policies %d and %d"):format(mine, other),
    ctx:resolve { family = "Policy", path = "bulk_action", ids = { mine, other } })
  show(("row action on policy %d by a readonly user"):format(mine),
    ro:resolve { family = "Policy", path = "row_action", id = mine })
  local page = ctx:resolve { family = "Policy", path = "index", limit = 5 }
  printf("  %-58s -> %d %s, %d rows, all of tenant 1\n", "index of tenant 1, first page",
    page.status, page.reason, #page.records)
  show("global search on policies (disabled until parity)",
    ctx:resolve { family = "Policy", path = "global_search", query = "Policy" })
  ctx:close()
  ro:close()

  step(4, "Backfill dry run", "What phase 2 would do, per table; nothing changes.")
  eng:close()
  must(commands.backfill { "--db", db, "--rules", rules, "--dry-run" }, "dry run")

  step(5, "Phase 1 and 1.5: add the column, bind every write with triggers")
  must(commands.rollout { "add_columns", "--db", db, "--rules", rules }, "add_columns")
  must(commands.rollout { "enforce_writes", "--db", db, "--rules", rules }, "enforce_writes")

  step(6, "Phase 2: queue the backfill, then run a worker",
    "Queued first: with no worker running the run exists and no row changes. The worker runs\n"
    .. "keyset batches, each one transaction that also advances its checkpoint.")
  must(commands.backfill { "--db", db, "--rules", rules }, "backfill")
  must(commands.worker { "--db", db, "--rules", rules }, "worker")

  step(7, "Validate",
    "The rows whose tenant was deleted cannot be bound: the run listed them and ended\n"
    .. "completed_with_errors, so validation still finds them.")
  commands.validate { "--db", db, "--rules", rules }

  step(8, "Forward fix: quarantine the orphan rows, validate again",
    "Every column of every such row is kept in tenantguard_quarantine; none can be served.")
  must(commands.rollout { "quarantine_orphans", "--db", db, "--rules", rules }, "quarantine")
  must(commands.validate { "--db", db, "--rules", rules }, "validation")

  step(9, "Phase 3: enforce the constraints",
    "NOT NULL, the foreign keys and the audit-log check, by SQLite's table-rebuild procedure.")
  must(commands.rollout { "enforce_constraints", "--db", db, "--rules", rules }, "phase 3")

  step(10, "The guard-scenario matrix, and its mutation check",
    "Every scenario the rules define, against this database, in a transaction rolled back;\n"
    .. "then the guard weakened one way at a time: every mutant must be caught.")
  local rc = commands.matrix { "--db", db, "--rules", rules, "--mutate" }
  must(rc, "the matrix")
  printf("\ndemo finished: %s holds the rolled-out reference database\n", db)
  return EXIT_OK
end)

-- ---------------------------------------------------------------------------------------
usage.version = [[
usage: tenantguard version [--rules DIR]
       tenantguard --version [--rules DIR]

Prints the version of the tenantguard library. With --rules DIR, also loads the rules of DIR
and prints their rule version (the content hash the decision log and the matrix carry).]]

command("version", { rules = "text" }, function(opts)
  local r
  if opts.rules then
    local eng = tg.open { rules = rules_dir(opts) }
    r = eng:rules()
    eng:close()
  end
  printf("tenantguard %s\n", tg.VERSION)
  if r then printf("rules %s version %s\n", r.dir, r.version) end
  return EXIT_OK
end)

require("tenantguard.pgload")(command, usage, { printf = printf, eprintf = eprintf,
  usage_error = usage_error, file_exists = file_exists })

-- ---------------------------------------------------------------------------------------
local order = { "demo", "lint", "rules", "resolve", "explain", "rollout", "backfill", "worker",
  "validate", "matrix", "log", "checks", "refdb", "pg-load", "version" }

local SUMMARY = {
  demo = "the whole story on a fresh reference database, step by step",
  lint = "check rule scripts (and their mapping against a database)",
  rules = "print what the rules describe",
  resolve = "the decision for one request",
  explain = "every check of one request and the one that decided it",
  rollout = "run one schema phase of the workspace_id rollout",
  backfill = "dry-run, queue or control the workspace_id backfill",
  worker = "execute queued backfill work in batches",
  validate = "the post-rollout checks, all of which must be zero",
  matrix = "run the guard-scenario matrix (and its mutation check)",
  log = "summarise a JSON-lines decision log (statuses, reasons, who gets 404s)",
  checks = "list every check code",
  refdb = "create the reference database (the only command that creates one)",
  ["pg-load"] = "copy a SQLite database's tables into PostgreSQL",
  version = "print the library version (with --rules DIR, the rule version too)",
}

local function help(out)
  out:write("usage: tenantguard <command> [options]\n",
    "       tenantguard help COMMAND    (or tenantguard COMMAND --help): that command's help\n\n",
    "commands:\n")
  for _, name in ipairs(order) do out:write(("  %-10s %s\n"):format(name, SUMMARY[name])) end
  out:write(("\nrules default to %s (override with --rules or TENANTGUARD_RULES)\n\n")
    :format(DEFAULT_RULES), EXIT_HELP, "\n")
end

-- ---------------------------------------------------------------------------------------
-- shell completion and the man page, made from the tables above (tenantguard.completion,
-- tenantguard.man)
usage.completion = [[
usage: tenantguard completion bash|zsh

Prints a completion script for the shell, made from this tool's commands and options.
bash: source it, or install it as share/bash-completion/completions/tenantguard (the build
does); zsh: install it as _tenantguard in a directory of $fpath (the build installs
share/zsh/vendor-completions/_tenantguard). `tenantguard help --man` prints the man page.]]

order[#order + 1] = "completion"
SUMMARY.completion = "print a bash or zsh completion script"

local function cli_tables()
  local phases = {}
  for p in pairs(PHASES) do phases[#phases + 1] = p end
  table.sort(phases)
  return { order = order, summary = SUMMARY, usage = usage, specs = specs,
    positionals = { rollout = phases, completion = { "bash", "zsh" } },
    option_values = { keys = { "integer", "text" }, path = { "index", "detail", "row_action",
      "bulk_action", "relation_manager", "global_search", "canonical_viewer" } },
    exit_help = EXIT_HELP, default_rules = DEFAULT_RULES, version = tg.VERSION }
end

command("completion", { { min = 1, max = 1, name = "SHELL", missing = "needs bash or zsh" } },
function(_, pos)
  if pos[1] ~= "bash" and pos[1] ~= "zsh" then
    usage_error(("unknown shell '%s' (bash or zsh)"):format(pos[1]))
  end
  io.stdout:write(require("tenantguard.completion")[pos[1]](cli_tables()))
  return EXIT_OK
end)

local function main(args)
  -- Ctrl-C ends a command at once (status 130) unless it chose to stop at a safe point
  -- (the worker, refdb); the standalone interpreter would otherwise turn it into an error.
  signal.default()
  local name = args[1]
  if name == nil then
    help(io.stderr)
    return EXIT_USAGE
  end
  if name == "help" or name == "--help" or name == "-h" then
    if name == "help" and args[2] == "--man" and not args[3] then
      io.stdout:write(require("tenantguard.man").render(cli_tables()))
      return EXIT_OK
    end
    if name == "help" and args[2] then
      if args[3] then
        eprintf("tenantguard help: unexpected argument '%s'\n", args[3])
        return EXIT_USAGE
      end
      if not commands[args[2]] then
        eprintf("tenantguard: unknown command '%s' (tenantguard --help lists them)\n", args[2])
        return EXIT_USAGE
      end
      return commands[args[2]] { "--help" }
    end
    help(io.stdout)
    return EXIT_OK
  end
  if name == "--version" then name = "version" end
  local cmd = commands[name]
  if not cmd then
    eprintf("tenantguard: unknown command '%s' (tenantguard --help lists them)\n", name)
    return EXIT_USAGE
  end
  local rest = table.move(args, 2, #args, 1, {})
  local ok, res = pcall(cmd, rest)
  io.stdout:flush()
  if ok then return res or EXIT_OK end
  if res == Interrupted or signal.interrupted() then
    eprintf("tenantguard %s: interrupted\n", name)
    return EXIT_INTERRUPTED
  end
  local mt = getmetatable(res)
  if mt == UsageError then
    eprintf("tenantguard %s: %s\n(tenantguard %s --help for usage)\n", name, res.msg, name)
    return EXIT_USAGE
  end
  if mt == DemoFailed then
    eprintf("tenantguard %s: %s\n", name, res.msg)
    return EXIT_FINDINGS
  end
  eprintf("tenantguard %s: %s\n", name, tostring(res))
  return EXIT_USAGE
end

return main
