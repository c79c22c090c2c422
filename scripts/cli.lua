-- tenantguard: the command-line tool. A trusted Lua program on the tenantguard module.
-- Run through the generated wrapper (build/tenantguard, or the installed one), which sets the
-- module paths; this file returns main(arg) -> exit code.
local tg = require "tenantguard"
local json = require "tenantguard.json"

local DEFAULT_RULES = os.getenv("TENANTGUARD_RULES") or TENANTGUARD_DEFAULT_RULES or "rules"

local commands = {}
local usage = {}

local function printf(fmt, ...) io.stdout:write(fmt:format(...)) end
local function eprintf(fmt, ...) io.stderr:write(fmt:format(...)) end

-- Parses "--name value", "--flag" and positionals. spec: name -> "value" | "flag".
local function parse(args, spec)
  local opts, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, inline = a:match("^%-%-([%w%-]+)=(.*)$")
    name = name or a:match("^%-%-([%w%-]+)$")
    if name then
      local kind = spec[name]
      if name == "help" then
        opts.help = true
      elseif not kind then
        error(("unknown option --%s"):format(name), 0)
      elseif kind == "flag" then
        opts[name] = true
      else
        local v = inline
        if not v then
          i = i + 1
          v = args[i]
        end
        if v == nil then error(("option --%s needs a value"):format(name), 0) end
        opts[name] = v
      end
    else
      pos[#pos + 1] = a
    end
    i = i + 1
  end
  return opts, pos
end

local function int_opt(opts, name, default)
  if opts[name] == nil then return default end
  local n = math.tointeger(tonumber(opts[name]))
  if not n or n < 1 then error(("--%s must be a positive integer"):format(name), 0) end
  return n
end

local function finding_line(f)
  local where = f.where ~= "" and (f.where .. ": ") or ""
  return ("%s%s: %s [%s]"):format(where, f.level, f.message, f.code)
end

-- ---------------------------------------------------------------------------------------
usage.lint = [[
usage: tenantguard lint [--rules DIR] [--db FILE] [--json] [--strict]

Checks the rule scripts (and, with --db, the mapping against the database schema and
drift: tables with the tenant column that no rule covers). Prints every finding with
file:line and a stable code. Exit 1 on errors (with --strict, also on warnings).]]

function commands.lint(args)
  local opts = parse(args, { rules = "value", db = "value", json = "flag", strict = "flag" })
  if opts.help then print(usage.lint) return 0 end
  local rules = opts.rules or DEFAULT_RULES
  local findings = tg.check { rules = rules, db = opts.db }
  local errors, warnings = 0, 0
  for _, f in ipairs(findings) do
    if f.level == "error" then errors = errors + 1 else warnings = warnings + 1 end
  end
  if opts.json then
    print(json.encode { rules = rules, db = opts.db, errors = errors, warnings = warnings,
      findings = json.array(findings) })
  else
    for _, f in ipairs(findings) do print(finding_line(f)) end
    printf("%s: %d error%s, %d warning%s\n", rules, errors, errors == 1 and "" or "s",
      warnings, warnings == 1 and "" or "s")
  end
  if errors > 0 or (opts.strict and warnings > 0) then return 1 end
  return 0
end

-- ---------------------------------------------------------------------------------------
usage.refdb = [[
usage: tenantguard refdb FILE [--rows N] [--force]

Creates the reference application's SQLite database as it is before the workspace_id
rollout, seeded deterministically with N rows per tenant-owned table (default 1000),
including a few rows whose tenant no longer exists. Refuses to replace an existing file
unless --force is given.]]

function commands.refdb(args)
  local opts, pos = parse(args, { rows = "value", force = "flag" })
  if opts.help then print(usage.refdb) return 0 end
  if #pos ~= 1 then error("refdb needs exactly one FILE\n" .. usage.refdb, 0) end
  local refdb = require "refdb"
  local t0 = os.clock()
  local s = refdb.create(pos[1], { rows = int_opt(opts, "rows", 1000), force = opts.force })
  printf("created %s: %d tenant-owned tables x %d rows (%d orphan rows whose tenant is gone) "
    .. "in %.2fs\n", s.path, s.tables, s.rows, s.orphans, os.clock() - t0)
  return 0
end

-- ---------------------------------------------------------------------------------------
usage.rules = [[
usage: tenantguard rules [--rules DIR] [--json]

Loads the rules and prints what they describe: families with their access paths, scope
exceptions, residual tables, roles. Exit 1 when the rules do not load.]]

function commands.rules(args)
  local opts = parse(args, { rules = "value", json = "flag" })
  if opts.help then print(usage.rules) return 0 end
  local eng = tg.open { rules = opts.rules or DEFAULT_RULES }
  local r = eng:rules()
  eng:close()
  if opts.json then print(json.encode(r)) return 0 end
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
  return 0
end

-- ---------------------------------------------------------------------------------------
usage.resolve = [[
usage: tenantguard resolve --db FILE --user U --workspace W [--tenant T]
                           (--family NAME | --exception NAME) --path PATH
                           [--id N | --ids 1,2,3] [--owner N] [--query TEXT]
                           [--limit N] [--after N] [--capability CAP] [--rules DIR] [--json]

Prints the decision tenantguard makes for one request: status, reason, and the records it
returns. PATH is one of index, detail, row_action, bulk_action, relation_manager,
global_search, canonical_viewer. Exit 0 when a decision was made (whatever its status).]]

local function tointeger_opt(opts, name)
  if opts[name] == nil then return nil end
  local n = math.tointeger(tonumber(opts[name]))
  if not n then error(("--%s must be an integer"):format(name), 0) end
  return n
end

function commands.resolve(args)
  local opts = parse(args, { db = "value", user = "value", workspace = "value",
    tenant = "value", family = "value", exception = "value", path = "value", id = "value",
    ids = "value", owner = "value", query = "value", limit = "value", after = "value",
    capability = "value", rules = "value", json = "flag" })
  if opts.help then print(usage.resolve) return 0 end
  for _, need in ipairs { "db", "user", "workspace", "path" } do
    if not opts[need] then error("--" .. need .. " is required\n" .. usage.resolve, 0) end
  end
  if not opts.family and not opts.exception then
    error("--family or --exception is required\n" .. usage.resolve, 0)
  end
  local ids
  if opts.ids then
    ids = {}
    for item in opts.ids:gmatch("[^,%s]+") do
      local n = math.tointeger(tonumber(item))
      if not n then error(("--ids: '%s' is not an integer"):format(item), 0) end
      ids[#ids + 1] = n
    end
  end
  local eng = tg.open { rules = opts.rules or DEFAULT_RULES, db = opts.db }
  local ctx = eng:context { user = tointeger_opt(opts, "user"),
    workspace = tointeger_opt(opts, "workspace"), tenant = tointeger_opt(opts, "tenant") }
  local d, err = ctx:resolve { family = opts.family, exception = opts.exception,
    path = opts.path, id = tointeger_opt(opts, "id"), ids = ids,
    owner = tointeger_opt(opts, "owner"), query = opts.query,
    limit = tointeger_opt(opts, "limit"), after = tointeger_opt(opts, "after"),
    capability = opts.capability }
  ctx:close()
  eng:close()
  if not d then error(err, 0) end
  local records = d.records or (d.record and { d.record }) or {}
  if opts.json then
    if d.records then d.records = json.array(d.records) end
    print(json.encode(d))
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
    if d.has_more then printf("... more after id %d (--after %d)\n", d.next_after, d.next_after) end
  end
  return 0
end

-- ---------------------------------------------------------------------------------------
-- the rollout

local PHASES = { add_columns = 1, drop_columns = 1, enforce_writes = 1, drop_triggers = 1,
  quarantine_orphans = 1, enforce_constraints = 1 }

usage.rollout = [[
usage: tenantguard rollout PHASE --db FILE [--rules DIR]

Runs one schema phase of the workspace_id rollout on every tenant-owned table the rules
name, in a transaction, idempotently, with an audit-log entry:
  add_columns          phase 1: a nullable workspace_id and its indexes
  drop_columns         undoes phase 1 (refused once phase 3 is applied)
  enforce_writes       phase 1.5: triggers that bind every raw SQL write
  drop_triggers        undoes phase 1.5
  quarantine_orphans   moves rows whose tenant no longer exists to tenantguard_quarantine
  enforce_constraints  phase 3: NOT NULL and foreign keys (refused while validation fails)
Exit 1 when the phase is refused or fails.]]

local function open_engine(opts)
  if not opts.db then error("--db is required", 0) end
  return tg.open { rules = opts.rules or DEFAULT_RULES, db = opts.db }
end

function commands.rollout(args)
  local opts, pos = parse(args, { db = "value", rules = "value" })
  if opts.help then print(usage.rollout) return 0 end
  if #pos ~= 1 or not PHASES[pos[1]] then
    error("rollout needs one PHASE\n" .. usage.rollout, 0)
  end
  local eng = open_engine(opts)
  local ok, msg = eng:rollout(pos[1])
  eng:close()
  print(msg)
  return ok and 0 or 1
end

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
  printf("run %d (operation run %d): %s\n", r.id, r.operation_run, r.status)
  printf("  rows looked at %d of %d, bound %d, corrected %d, cannot bind %d\n", r.rows_done,
    r.rows_total, r.rows_set, r.rows_corrected, r.rows_unbound)
  if r.batches > 0 then
    printf("  %d batches, longest %.1f ms, %.2f s in batches (%.0f rows/s)\n", r.batches,
      r.longest_batch_ms, r.seconds, r.seconds > 0 and r.rows_done / r.seconds or 0)
  end
end

function commands.backfill(args)
  local opts = parse(args, { db = "value", rules = "value", ["dry-run"] = "flag", json = "flag",
    ["batch-ms"] = "value", ["pause-ms"] = "value", ["batch-rows"] = "value", status = "flag",
    pause = "flag", resume = "flag", cancel = "flag", run = "value" })
  if opts.help then print(usage.backfill) return 0 end
  local eng = open_engine(opts)
  local run_id = tointeger_opt(opts, "run") or 0
  for _, action in ipairs { "pause", "resume", "cancel" } do
    if opts[action] then
      local ok, msg = eng[action](eng, run_id)
      print(ok and ("backfill: " .. action .. "d") or msg)
      if ok then print_run(eng:run(run_id)) end
      eng:close()
      return ok and 0 or 1
    end
  end
  if opts.status then
    local r, msg = eng:run(run_id)
    eng:close()
    if not r then print(msg) return 1 end
    if opts.json then print(json.encode(r)) else print_run(r) end
    return 0
  end
  if opts["dry-run"] then
    local plan, msg = eng:backfill { dry_run = true }
    eng:close()
    if not plan then print(msg) return 1 end
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
    return 0
  end
  local r, msg = eng:backfill { batch_ms = tointeger_opt(opts, "batch-ms"),
    pause_ms = tointeger_opt(opts, "pause-ms"), batch_rows = tointeger_opt(opts, "batch-rows") }
  eng:close()
  if not r then print(msg) return 1 end
  print_run(r)
  print("queued: run `tenantguard worker` to execute it")
  return 0
end

usage.worker = [[
usage: tenantguard worker --db FILE [--rules DIR] [--max-seconds N] [--max-batches N]
                          [--quiet]

Executes queued backfill work in batches until none is left (or a limit is reached). Safe
to run as several processes at once and to kill at any moment: a new worker resumes where
the last committed batch ended. Shows a progress bar with rate and ETA on a terminal,
plain lines otherwise.]]

local function is_tty()
  local ok, _, code = os.execute("test -t 1")
  return ok == true or code == 0
end

function commands.worker(args)
  local opts = parse(args, { db = "value", rules = "value", ["max-seconds"] = "value",
    ["max-batches"] = "value", quiet = "flag" })
  if opts.help then print(usage.worker) return 0 end
  local eng = open_engine(opts)
  local tty = is_tty()
  local last_line, last_table = 0, nil
  local function progress(p)
    if opts.quiet then return end
    local frac = p.run_total > 0 and math.min(1, p.run_done / p.run_total) or 1
    local eta = p.rows_per_second > 0 and (p.run_total - p.run_done) / p.rows_per_second or 0
    if tty then
      local width = 30
      local filled = math.floor(frac * width + 0.5)
      io.stdout:write(("\r[%s%s] %5.1f%% %9d/%d rows  %8.0f rows/s  ETA %5.1fs  %-22s")
        :format(("#"):rep(filled), ("."):rep(width - filled), frac * 100, p.run_done,
          p.run_total, p.rows_per_second, math.max(0, eta), p.table))
      io.stdout:flush()
    else
      local now = os.time()
      if p.table ~= last_table or now - last_line >= 1 then
        printf("run %d: %s %d/%d (run %d/%d rows, %.0f rows/s, batch %d rows in %.1f ms)\n",
          p.run, p.table, p.table_done, p.table_total, p.run_done, p.run_total,
          p.rows_per_second, p.batch_rows, p.batch_ms)
        last_line, last_table = now, p.table
      end
    end
  end
  local r, msg = eng:work { progress = progress, max_seconds = tonumber(opts["max-seconds"]),
    max_batches = tointeger_opt(opts, "max-batches") }
  if tty and not opts.quiet then io.stdout:write("\n") end
  if not r then
    eng:close()
    print(msg)
    return 1
  end
  printf("worker: %d batches, %d rows, longest batch %.1f ms%s\n", r.batches, r.rows,
    r.longest_batch_ms, r.idle and ", nothing left to do" or "")
  local ok, run = pcall(eng.run, eng)
  if ok and run then print_run(run) end
  eng:close()
  return 0
end

usage.validate = [[
usage: tenantguard validate --db FILE [--rules DIR] [--json]

The post-rollout checks, all of which must be zero: rows with workspace_id NULL in each
tenant-owned table, audit entries with a tenant but no workspace, and rows whose
workspace_id differs from their tenant's workspace (every table, every row). Exit 1 when
anything is off.]]

function commands.validate(args)
  local opts = parse(args, { db = "value", rules = "value", json = "flag" })
  if opts.help then print(usage.validate) return 0 end
  local eng = open_engine(opts)
  local v, msg = eng:validate()
  eng:close()
  if not v then print(msg) return 1 end
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
  return v.ok and 0 or 1
end

-- ---------------------------------------------------------------------------------------
-- the guard-scenario matrix

usage.matrix = [[
usage: tenantguard matrix --db FILE [--rules DIR] [--json] [--junit FILE] [--list]
                          [--mutate] [--strict] [--verbose]

Runs the guard-scenario matrix the rules define against the database, inside a
transaction that is rolled back (nothing persists), and prints each scenario's result,
then coverage: access paths with no scenario, families missing a standard scenario type,
exception checks no scenario exercises, and drift (tables with the tenant column that no
rule covers). --list prints the scenarios without running them. --mutate weakens the
enforcement one way at a time and reruns the matrix for each: every mutant must make at
least one scenario fail; survivors are listed. Exit 1 on any failing scenario or surviving
mutant (with --strict, also on coverage gaps and drift).]]

local function outcome_text(o)
  if o == "hidden_or_disabled_without_side_effect" then return "hidden" end
  return tostring(o)
end

local STANDARD = { "positive_scope", "wrong_tenant_index", "wrong_tenant_detail",
  "wrong_tenant_row_action", "wrong_tenant_bulk_action", "wrong_tenant_relation_manager",
  "safe_search" }
local TYPE_PATH = { wrong_tenant_index = "index", wrong_tenant_detail = "detail",
  wrong_tenant_row_action = "row_action", wrong_tenant_bulk_action = "bulk_action",
  wrong_tenant_relation_manager = "relation_manager" }

-- Coverage of the rules by the scenarios that ran.
local function coverage(rules, results)
  local gaps = {}
  local by_family = {}
  for _, r in ipairs(results) do
    local f = by_family[r.family] or { paths = {}, types = {}, actors = {}, whats = {} }
    by_family[r.family] = f
    f.paths[r.path] = true
    f.types[r.scenario_type] = true
    for _, c in ipairs(r.checks or {}) do
      f.actors[c.actor] = true
      f.whats[#f.whats + 1] = c.what
    end
  end
  for _, fam in ipairs(rules.families) do
    local f = by_family[fam.name] or { paths = {}, types = {}, actors = {}, whats = {} }
    for _, p in ipairs(fam.path_order) do
      if not f.paths[p] then
        gaps[#gaps + 1] = ("family %s: path %s has no scenario"):format(fam.name, p)
      end
    end
    for _, t in ipairs(STANDARD) do
      local applicable = TYPE_PATH[t] == nil or fam.paths[TYPE_PATH[t]] ~= nil
      if applicable and not f.types[t] then
        gaps[#gaps + 1] = ("family %s: no %s scenario"):format(fam.name, t)
      end
    end
  end
  for _, e in ipairs(rules.exceptions) do
    local f = by_family[e.name]
    for _, check in ipairs(e.still_required_checks) do
      local hit
      if not f then
        hit = false
      elseif check == "workspace_member" then
        hit = f.actors.not_member
      elseif check == "tenant_entitled" then
        hit = f.actors.not_entitled
      elseif check == "capability" then
        hit = f.actors.no_capability
      elseif check == "record_in_workspace" then
        hit = false
        for _, w in ipairs(f.whats) do hit = hit or w:find("another workspace", 1, true) ~= nil end
      else
        hit = f.types.wrong_tenant_detail
      end
      if not hit then
        gaps[#gaps + 1] = ("exception %s: no scenario exercises its %s check%s"):format(e.name,
          check, check == "capability" and " (every role grants the capability)" or "")
      end
    end
  end
  return gaps
end

local function xml_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
    ['"'] = "&quot;" }))
end

local function write_junit(path, results, elapsed)
  local suites, order = {}, {}
  for _, r in ipairs(results) do
    if not suites[r.family] then
      suites[r.family] = {}
      order[#order + 1] = r.family
    end
    table.insert(suites[r.family], r)
  end
  local out = { '<?xml version="1.0" encoding="UTF-8"?>' }
  local failed = 0
  for _, r in ipairs(results) do if not r.pass then failed = failed + 1 end end
  out[#out + 1] = ('<testsuites name="tenantguard matrix" tests="%d" failures="%d" time="%.3f">')
    :format(#results, failed, elapsed)
  for _, fam in ipairs(order) do
    local list = suites[fam]
    local f = 0
    for _, r in ipairs(list) do if not r.pass then f = f + 1 end end
    out[#out + 1] = ('  <testsuite name="%s" tests="%d" failures="%d">'):format(xml_escape(fam),
      #list, f)
    for _, r in ipairs(list) do
      local name = ("%s %s%s"):format(r.scenario_type, r.path, r.declared and " (declared)" or "")
      out[#out + 1] = ('    <testcase classname="tenantguard.%s" name="%s">'):format(
        xml_escape(fam), xml_escape(name))
      if not r.pass then
        out[#out + 1] = ('      <failure message="%s">%s</failure>'):format(
          xml_escape(r.message or "failed"), xml_escape(r.message or ""))
      end
      out[#out + 1] = "    </testcase>"
    end
    out[#out + 1] = "  </testsuite>"
  end
  out[#out + 1] = "</testsuites>"
  local fh = assert(io.open(path, "w"))
  fh:write(table.concat(out, "\n"), "\n")
  fh:close()
end

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

function commands.matrix(args)
  local opts = parse(args, { db = "value", rules = "value", json = "flag", junit = "value",
    list = "flag", mutate = "flag", strict = "flag", verbose = "flag" })
  if opts.help then print(usage.matrix) return 0 end
  local eng = open_engine(opts)
  local rules = eng:rules()
  if opts.list then
    local rows = eng:matrix()
    eng:close()
    if opts.json then print(json.encode(json.array(rows))) return 0 end
    printf("%-24s %-30s %-17s %s\n", "family", "scenario", "path", "expected")
    for _, r in ipairs(rows) do
      printf("%-24s %-30s %-17s %s\n", r.family, r.scenario_type .. (r.declared and "*" or ""),
        r.path, outcome_text(r.expected_outcome))
    end
    printf("%d scenarios (* declared in the rules)\n", #rows)
    return 0
  end
  local t0 = os.clock()
  local results, err = eng:run_matrix()
  if not results then
    eng:close()
    print(err)
    return 1
  end
  local elapsed = os.clock() - t0
  local gaps = coverage(rules, results)
  local drift = {}
  for _, f in ipairs(tg.check { rules = opts.rules or DEFAULT_RULES, db = opts.db }) do
    if f.code == "drift" then drift[#drift + 1] = f.message end
  end
  local survivors, mutants = {}, {}
  if opts.mutate then
    for _, m in ipairs(tg.mutations()) do
      local r = assert(eng:run_matrix(m.name))
      local first
      for _, x in ipairs(r) do if not x.pass then first = first or x.message end end
      mutants[#mutants + 1] = { name = m.name, description = m.description, failed = r.failed,
        caught = r.failed > 0, first = first }
      if r.failed == 0 then survivors[#survivors + 1] = m.name end
    end
  end
  eng:close()
  if opts.junit then write_junit(opts.junit, results, elapsed) end
  local failed = results.failed
  if opts.json then
    for _, r in ipairs(results) do r.checks = json.array(r.checks) end
    print(json.encode { passed = results.passed, failed = failed,
      results = json.array({ table.unpack(results) }), coverage = json.array(gaps),
      drift = json.array(drift), mutants = json.array(mutants),
      survivors = json.array(survivors) })
  else
    print_results(results, opts.verbose)
    printf("\nmatrix: %d scenarios, %d passed, %d failed (the fixture was rolled back)\n",
      #results, results.passed, failed)
    printf("coverage: %s\n", #gaps == 0 and "every path, standard scenario type and exception "
      .. "check is exercised" or (#gaps .. " gap" .. (#gaps == 1 and "" or "s")))
    for _, g in ipairs(gaps) do printf("  - %s\n", g) end
    printf("drift: %s\n", #drift == 0 and "none" or (#drift .. " uncovered table(s)"))
    for _, d in ipairs(drift) do printf("  - %s\n", d) end
    if opts.mutate then
      printf("\nmutation check: %d mutants, %d caught\n", #mutants, #mutants - #survivors)
      for _, m in ipairs(mutants) do
        printf("  %-28s %-8s %3d failing  %s\n", m.name, m.caught and "caught" or "SURVIVED",
          m.failed, m.description)
      end
      if #survivors > 0 then printf("survivors: %s\n", table.concat(survivors, ", ")) end
    end
  end
  if failed > 0 or #survivors > 0 then return 1 end
  if opts.strict and (#gaps > 0 or #drift > 0) then return 1 end
  return 0
end

-- ---------------------------------------------------------------------------------------
usage.checks = [[
usage: tenantguard checks

Lists every check code with its level and meaning.]]

function commands.checks(args)
  local opts = parse(args, {})
  if opts.help then print(usage.checks) return 0 end
  for _, c in ipairs(tg.checks()) do printf("%-28s %-8s %s\n", c.code, c.level, c.meaning) end
  return 0
end

-- ---------------------------------------------------------------------------------------
usage.demo = [[
usage: tenantguard demo [--dir DIR] [--rows N] [--rules DIR]

Runs the whole story on a fresh SQLite file in DIR (default ./demo): creates the reference
database, lints the rules, shows a few decisions, dry-runs the backfill, rolls workspace_id
out (columns, write triggers, the queued backfill and its worker, quarantine of rows whose
tenant is gone), validates, enforces the constraints, and runs the guard-scenario matrix
with its mutation check. Exit 0 when every step did what it should.]]

local function step(n, title, why)
  printf("\n== %d. %s %s\n", n, title, ("="):rep(math.max(0, 72 - #title)))
  if why then printf("%s\n\n", why) end
end

function commands.demo(args)
  local opts = parse(args, { dir = "value", rows = "value", rules = "value" })
  if opts.help then print(usage.demo) return 0 end
  local dir = opts.dir or "demo"
  local rules = opts.rules or DEFAULT_RULES
  assert(os.execute(("mkdir -p '%s'"):format(dir:gsub("'", "'\\''"))))
  local db = dir .. "/reference.db"
  local function must(rc, what)
    if rc ~= 0 then error(what .. " failed", 0) end
  end

  step(1, "The reference database",
    "A multi-tenant app before the rollout: twelve tenant-owned tables without workspace_id,\n"
    .. "3 workspaces, 12 tenants, 10 users, a few rows whose tenant was deleted.")
  local s = require("refdb").create(db, { rows = int_opt(opts, "rows", 20000), force = true })
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
  return 0
end

-- ---------------------------------------------------------------------------------------
local order = { "demo", "lint", "rules", "resolve", "rollout", "backfill", "worker", "validate",
  "matrix",
  "checks", "refdb" }

local function help()
  print("usage: tenantguard <command> [options]   (tenantguard <command> --help for more)\n")
  print("commands:")
  for _, name in ipairs(order) do
    local first = usage[name]:match("\n\n([^\n]*)") or ""
    printf("  %-10s %s\n", name, first)
  end
  printf("\nrules default to %s (override with --rules or TENANTGUARD_RULES)\n", DEFAULT_RULES)
end

local function main(args)
  local name = args[1]
  if name == nil or name == "help" or name == "--help" or name == "-h" then
    help()
    return name == nil and 2 or 0
  end
  if name == "--version" or name == "version" then
    print("tenantguard " .. tg.VERSION)
    return 0
  end
  local cmd = commands[name]
  if not cmd then
    eprintf("tenantguard: unknown command '%s'\n", name)
    help()
    return 2
  end
  local rest = table.move(args, 2, #args, 1, {})
  local ok, res = pcall(cmd, rest)
  if not ok then
    eprintf("tenantguard %s: %s\n", name, tostring(res))
    return 2
  end
  return res or 0
end

return main
