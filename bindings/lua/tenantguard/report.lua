-- tenantguard.report: the guard-scenario matrix as reports for CI systems and people.
--
--   local report = require "tenantguard.report"
--   local data = report.build { rules = eng:rules(), results = eng:run_matrix(),
--     drift = { "..." }, mutants = { { name =, description =, results = eng:run_matrix(m) } } }
--   report.junit(data)   -- JUnit XML (GitLab, Jenkins)
--   report.html(data)    -- one self-contained, printable HTML page
--   report.json(data)    -- the same data as `tenantguard matrix --json` (docs/json.md)
--
-- All three carry the same data: each scenario's result and time, the grid (families by
-- scenario type), coverage gaps, drift and the mutation check.
local json = require "tenantguard.json"

local M = {}

-- The standard scenario types, in the order the grid shows them, and the path each needs.
M.STANDARD = { "positive_scope", "wrong_tenant_index", "wrong_tenant_detail",
  "wrong_tenant_row_action", "wrong_tenant_bulk_action", "wrong_tenant_relation_manager",
  "safe_search" }
local TYPE_PATH = { wrong_tenant_index = "index", wrong_tenant_detail = "detail",
  wrong_tenant_row_action = "row_action", wrong_tenant_bulk_action = "bulk_action",
  wrong_tenant_relation_manager = "relation_manager" }

local HIDDEN = "hidden_or_disabled_without_side_effect"

function M.outcome_text(o)
  if o == HIDDEN then return "hidden" end
  return tostring(o)
end

-- ---- text that is safe to put anywhere -------------------------------------------------

-- s as valid UTF-8: every byte that is not part of a valid sequence becomes U+FFFD.
local function clean_utf8(s)
  s = tostring(s)
  if utf8.len(s) then return s end
  local parts, i = {}, 1
  while i <= #s do
    local ok, bad = utf8.len(s, i)
    if ok then
      parts[#parts + 1] = s:sub(i)
      break
    end
    parts[#parts + 1] = s:sub(i, bad - 1) .. utf8.char(0xFFFD)
    i = bad + 1
  end
  return table.concat(parts)
end
M.clean_utf8 = clean_utf8

local XML_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
  ["'"] = "&#39;" }

-- Text for XML or HTML content and attributes: valid UTF-8, markup escaped, and the control
-- characters XML 1.0 forbids (all but tab, newline, carriage return) shown as U+FFFD.
local function esc(s)
  s = clean_utf8(s):gsub("[%z\1-\8\11\12\14-\31]", utf8.char(0xFFFD))
  return (s:gsub("[&<>\"']", XML_ESC))
end
M.escape = esc

-- ---- the data ---------------------------------------------------------------------------

-- Coverage of the rules by the scenarios that ran: a list of sentences, one per gap.
function M.coverage(rules, results)
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
    for _, t in ipairs(M.STANDARD) do
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

-- A test name for each result, unique within its family (two identical declared scenarios
-- get "#2", "#3", ...).
local function name_tests(results)
  local seen = {}
  for _, r in ipairs(results) do
    local base = ("%s %s%s"):format(r.scenario_type, r.path, r.declared and " (declared)" or "")
    local fam = seen[r.family] or {}
    seen[r.family] = fam
    local n = (fam[base] or 0) + 1
    fam[base] = n
    r.test_name = n == 1 and base or (base .. " #" .. n)
  end
end

local function sum_seconds(results)
  local s = 0.0
  for _, r in ipairs(results) do s = s + (r.seconds or 0) end
  return s
end

-- The grid: one row per family and exception (in the order the results list them), one
-- column per scenario type (the standard ones, then any other the results use). A cell
-- counts its scenarios that passed and failed; its outcome is "fail" when any failed, "pass"
-- when all passed, "gap" when the type applies to the family but no scenario ran, "none"
-- when it does not apply.
local function build_grid(rules, results)
  local columns, known, standard = {}, {}, {}
  for _, t in ipairs(M.STANDARD) do
    columns[#columns + 1] = t
    known[t] = true
    standard[t] = true
  end
  for _, r in ipairs(results) do
    if not known[r.scenario_type] then
      known[r.scenario_type] = true
      columns[#columns + 1] = r.scenario_type
    end
  end
  local fams = {}
  for _, f in ipairs(rules.families or {}) do fams[f.name] = f end
  local rows, by_name = {}, {}
  local function row_for(name, is_exception)
    if not by_name[name] then
      local row = { family = name, is_exception = is_exception and true or false, cells = {} }
      by_name[name] = row
      rows[#rows + 1] = row
      for i, t in ipairs(columns) do
        row.cells[i] = { scenario_type = t, pass = 0, fail = 0 }
      end
    end
    return by_name[name]
  end
  for _, f in ipairs(rules.families or {}) do row_for(f.name, false) end
  for _, r in ipairs(results) do
    local row = row_for(r.family, r.is_exception)
    for _, cell in ipairs(row.cells) do
      if cell.scenario_type == r.scenario_type then
        if r.pass then cell.pass = cell.pass + 1 else cell.fail = cell.fail + 1 end
      end
    end
  end
  for _, row in ipairs(rows) do
    local fam = fams[row.family]
    for _, cell in ipairs(row.cells) do
      local t = cell.scenario_type
      if cell.fail > 0 then
        cell.outcome = "fail"
      elseif cell.pass > 0 then
        cell.outcome = "pass"
      elseif fam and not row.is_exception and standard[t]
          and (TYPE_PATH[t] == nil or fam.paths[TYPE_PATH[t]] ~= nil) then
        cell.outcome = "gap"
      else
        cell.outcome = "none"
      end
    end
  end
  return { columns = columns, rows = rows }
end

-- The report's data. opts: rules (eng:rules()), results (eng:run_matrix()), drift (a list of
-- sentences), mutants (nil when the mutation check did not run, else a list of
-- { name =, description =, results = eng:run_matrix(name) }), rules_dir, db.
function M.build(opts)
  local results = {}
  for i, r in ipairs(opts.results) do results[i] = r end
  name_tests(results)
  local data = {
    rules_dir = opts.rules_dir, db = opts.db,
    rule_version = opts.rules.version,
    scenarios = #results,
    passed = opts.results.passed or 0,
    failed = opts.results.failed or 0,
    seconds = sum_seconds(results),
    results = results,
    grid = build_grid(opts.rules, results),
    coverage = M.coverage(opts.rules, results),
    drift = opts.drift or {},
    mutation_check = opts.mutants ~= nil,
    mutants = {},
    survivors = {},
  }
  for _, m in ipairs(opts.mutants or {}) do
    local first, failing = nil, 0
    for _, x in ipairs(m.results) do
      if not x.pass then
        failing = failing + 1
        first = first or x.message
      end
    end
    -- a mutation the rules cannot express (m.results.not_applicable names what they lack)
    -- proves nothing: neither caught nor a survivor
    local na = m.results.not_applicable
    data.mutants[#data.mutants + 1] = { name = m.name, description = m.description,
      failed = failing, caught = failing > 0, first = first, not_applicable = na,
      seconds = sum_seconds(m.results) }
    if failing == 0 and not na then data.survivors[#data.survivors + 1] = m.name end
  end
  return data
end

-- ---- JSON ------------------------------------------------------------------------------

local function opt(v) if v == nil then return json.null end return v end

-- The data as `tenantguard matrix --json` prints it (docs/json.md).
function M.json(data)
  local results = json.array()
  for i, r in ipairs(data.results) do
    local checks = json.array()
    for k, c in ipairs(r.checks or {}) do
      checks[k] = { actor = c.actor, what = c.what, expected = c.expected, actual = c.actual,
        reason = opt(c.reason), pass = c.pass, failure = opt(c.failure), row = opt(c.row) }
    end
    results[i] = { family = r.family, is_exception = r.is_exception,
      scenario_type = r.scenario_type, path = r.path, declared = r.declared,
      test_name = r.test_name, surface_class = opt(r.surface_class), notes = opt(r.notes),
      expected_outcome = r.expected_outcome, actual_outcome = r.actual_outcome,
      pass = r.pass, message = opt(r.message), seconds = r.seconds or 0, checks = checks }
  end
  local rows = json.array()
  for i, row in ipairs(data.grid.rows) do
    local cells = json.array()
    for k, c in ipairs(row.cells) do
      cells[k] = { type = c.scenario_type, pass = c.pass, fail = c.fail,
        outcome = c.outcome }
    end
    rows[i] = { family = row.family, is_exception = row.is_exception, cells = cells }
  end
  local mutants = json.array()
  for i, m in ipairs(data.mutants) do
    mutants[i] = { name = m.name, description = m.description, failed = m.failed,
      caught = m.caught, first = opt(m.first), not_applicable = opt(m.not_applicable),
      seconds = m.seconds }
  end
  return json.encode {
    rules = opt(data.rules_dir), db = opt(data.db), rule_version = opt(data.rule_version),
    scenarios = data.scenarios, passed = data.passed, failed = data.failed,
    seconds = data.seconds, results = results,
    grid = { columns = json.list(data.grid.columns), rows = rows },
    coverage = json.list(data.coverage), drift = json.list(data.drift),
    mutation_check = data.mutation_check, mutants = mutants,
    survivors = json.list(data.survivors),
  }
end

-- A decision (ctx:resolve's result) in the stable shape of `tenantguard resolve --json`:
-- status, reason, record (an object, or null unless a by-id path was served), records (a
-- list, [] on a refusal or a by-id path), has_more (false unless a list has more),
-- next_after (null unless given); other fields of the decision as they are.
function M.decision(d)
  local out = {}
  for k, v in pairs(d) do out[k] = v end
  out.record = d.record and json.object(d.record) or json.null
  local records = json.array()
  for i, r in ipairs(d.records or {}) do records[i] = json.object(r) end
  out.records = records
  out.has_more = d.has_more or false
  if d.next_after == nil then out.next_after = json.null end
  return out
end

-- ---- JUnit XML -------------------------------------------------------------------------

local function secs(s) return ("%.3f"):format(s or 0) end

-- The failure text of a scenario: its message, then every failed check with its row.
function M.failure_text(r)
  local lines = { r.message or "failed" }
  for _, c in ipairs(r.checks or {}) do
    if not c.pass then
      lines[#lines + 1] = ("  - actor %s, %s: %s%s"):format(c.actor, c.what,
        c.failure or "failed", c.row and ("; row: " .. c.row) or "")
    end
  end
  return table.concat(lines, "\n")
end

-- JUnit XML: one testsuite per family (and exception), one testcase per scenario, and with
-- the mutation check a testsuite "mutation check" with one testcase per mutant (a surviving
-- mutant is a failure). Every testcase has a time; every suite tests, failures, errors,
-- skipped and time.
function M.junit(data)
  local suites, order = {}, {}
  for _, r in ipairs(data.results) do
    if not suites[r.family] then
      suites[r.family] = {}
      order[#order + 1] = r.family
    end
    table.insert(suites[r.family], r)
  end
  local body = {}
  local total_tests, total_fail, total_time = 0, 0, 0.0
  for _, fam in ipairs(order) do
    local list = suites[fam]
    local f = 0
    for _, r in ipairs(list) do if not r.pass then f = f + 1 end end
    local t = sum_seconds(list)
    total_tests, total_fail, total_time = total_tests + #list, total_fail + f, total_time + t
    body[#body + 1] = ('  <testsuite name="%s" tests="%d" failures="%d" errors="0" skipped="0" '
      .. 'time="%s">'):format(esc(fam), #list, f, secs(t))
    for _, r in ipairs(list) do
      local open = ('    <testcase classname="tenantguard.%s" name="%s" time="%s"'):format(
        esc(fam), esc(r.test_name), secs(r.seconds))
      if r.pass then
        body[#body + 1] = open .. "/>"
      else
        body[#body + 1] = open .. ">"
        body[#body + 1] = ('      <failure message="%s" type="tenantguard.isolation">%s</failure>')
          :format(esc(r.message or "failed"), esc(M.failure_text(r)))
        body[#body + 1] = "    </testcase>"
      end
    end
    body[#body + 1] = "  </testsuite>"
  end
  if data.mutation_check then
    local f, t, skipped = #data.survivors, 0.0, 0
    for _, m in ipairs(data.mutants) do
      t = t + m.seconds
      if m.not_applicable and not m.caught then skipped = skipped + 1 end
    end
    total_tests, total_fail, total_time = total_tests + #data.mutants, total_fail + f, total_time + t
    body[#body + 1] = ('  <testsuite name="mutation check" tests="%d" failures="%d" errors="0" '
      .. 'skipped="%d" time="%s">'):format(#data.mutants, f, skipped, secs(t))
    for _, m in ipairs(data.mutants) do
      local open = ('    <testcase classname="tenantguard.mutation" name="%s" time="%s"'):format(
        esc(m.name), secs(m.seconds))
      if m.caught then
        body[#body + 1] = open .. "/>"
      elseif m.not_applicable then
        body[#body + 1] = open .. ">"
        body[#body + 1] = ('      <skipped message="%s"/>'):format(esc("not applicable: "
          .. m.not_applicable))
        body[#body + 1] = "    </testcase>"
      else
        body[#body + 1] = open .. ">"
        body[#body + 1] = ('      <failure message="%s" type="tenantguard.mutant_survived">%s'
          .. '</failure>'):format(esc("mutant " .. m.name .. " survived: no scenario failed"),
          esc(m.description))
        body[#body + 1] = "    </testcase>"
      end
    end
    body[#body + 1] = "  </testsuite>"
  end
  local out = { '<?xml version="1.0" encoding="UTF-8"?>',
    ('<testsuites name="tenantguard matrix" tests="%d" failures="%d" errors="0" time="%s">')
      :format(total_tests, total_fail, secs(total_time)) }
  for _, line in ipairs(body) do out[#out + 1] = line end
  out[#out + 1] = "</testsuites>"
  return table.concat(out, "\n") .. "\n"
end

-- ---- HTML ------------------------------------------------------------------------------

local CELL = {
  pass = { symbol = "\u{2713}", word = "pass" },
  fail = { symbol = "\u{2717}", word = "FAIL" },
  gap = { symbol = "!", word = "gap" },
  none = { symbol = "\u{2013}", word = "n/a" },
}

local STYLE = [[
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em;
  color: #1b1b1b; background: #fff; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { font-size: 1.15em; margin: 1.6em 0 .4em; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #bbb; padding: .25em .5em; text-align: left; vertical-align: top; }
thead th { background: #eee; }
.grid td { text-align: center; white-space: nowrap; min-width: 5.5em; }
.grid th.col { font-size: .85em; }
.pass { background: #d7f2dc; color: #0b5a1c; }
.fail { background: #f9d0d0; color: #8a0b0b; font-weight: bold; }
.gap { background: #fde9b8; color: #6b4a00; }
.none { background: #f4f4f4; color: #777; }
.summary { font-size: 1.05em; }
.mono, code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .9em; }
ul { margin: .3em 0; }
.muted { color: #666; }
@media print {
  body { margin: 0; font-size: 10pt; color: #000; }
  .pass, .fail, .gap, .none { background: none !important; color: #000 !important; }
  thead { display: table-header-group; }
  tr, li { page-break-inside: avoid; }
  h2 { page-break-after: avoid; }
}
]]

-- One self-contained HTML page: no scripts, no external styles, fonts or images.
function M.html(data)
  local o = {}
  local function w(...) for _, s in ipairs { ... } do o[#o + 1] = s end end
  local title = "tenantguard matrix" .. (data.rules_dir and (": " .. data.rules_dir) or "")
  w('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
    "<title>", esc(title), "</title>\n<style>\n", STYLE, "</style>\n</head>\n<body>\n")
  w("<h1>Guard-scenario matrix</h1>\n")
  w('<p class="summary">', esc(("%d scenarios: %d passed, %d failed."):format(data.scenarios,
    data.passed, data.failed)))
  if data.mutation_check then
    local caught = 0
    for _, m in ipairs(data.mutants) do if m.caught then caught = caught + 1 end end
    w(" ", esc(("Mutation check: %d mutants, %d caught, %d survived."):format(#data.mutants,
      caught, #data.survivors)))
  end
  w("</p>\n<p class=\"muted\">rules <code>", esc(data.rules_dir or "?"), "</code>, version <code>",
    esc(data.rule_version or "?"), "</code>; database <code>", esc(data.db or "?"),
    "</code>. The fixture was rolled back: nothing persisted.</p>\n")

  -- the grid
  w("<h2>Matrix</h2>\n<table class=\"grid\">\n<thead>\n<tr><th>family</th>")
  for _, t in ipairs(data.grid.columns) do w('<th class="col">', esc(t), "</th>") end
  w("</tr>\n</thead>\n<tbody>\n")
  for _, row in ipairs(data.grid.rows) do
    w("<tr><th>", esc(row.family), row.is_exception and ' <span class="muted">(exception)</span>'
      or "", "</th>")
    for _, c in ipairs(row.cells) do
      local k = CELL[c.outcome]
      local count = ""
      if c.outcome == "pass" then count = " " .. c.pass
      elseif c.outcome == "fail" then count = (" %d/%d"):format(c.fail, c.fail + c.pass) end
      w('<td class="', c.outcome, '" title="', esc(("%s, %s: %d passed, %d failed"):format(
        row.family, c.scenario_type, c.pass, c.fail)), '">', k.symbol, " ", k.word, count,
        "</td>")
    end
    w("</tr>\n")
  end
  w("</tbody>\n</table>\n")
  w('<p class="muted">', CELL.pass.symbol, " pass N: N scenarios passed; ", CELL.fail.symbol,
    " FAIL F/N: F of N failed; ", CELL.gap.symbol,
    " gap: the type applies but no scenario ran; ", CELL.none.symbol,
    " n/a: the family has no such path.</p>\n")

  -- failures
  w("<h2>Failing scenarios</h2>\n")
  local any = false
  for _, r in ipairs(data.results) do
    if not r.pass then
      if not any then w("<ul>\n") end
      any = true
      w('<li class="mono">', esc(M.failure_text(r)):gsub("\n", "<br>\n"), "</li>\n")
    end
  end
  w(any and "</ul>\n" or "<p>None.</p>\n")

  -- coverage and drift
  w("<h2>Coverage gaps</h2>\n")
  if #data.coverage == 0 then
    w("<p>None: every path, standard scenario type and exception check is exercised.</p>\n")
  else
    w("<ul>\n")
    for _, g in ipairs(data.coverage) do w("<li>", esc(g), "</li>\n") end
    w("</ul>\n")
  end
  w("<h2>Drift</h2>\n")
  if #data.drift == 0 then
    w("<p>None: every table with a tenant column is covered by a rule.</p>\n")
  else
    w("<ul>\n")
    for _, d in ipairs(data.drift) do w("<li>", esc(d), "</li>\n") end
    w("</ul>\n")
  end

  -- mutants
  w('<h2>Mutation check</h2>\n')
  if not data.mutation_check then
    w("<p>Not run (<code>tenantguard matrix --mutate</code> runs it).</p>\n")
  else
    w('<table class="mutants">\n<thead>\n<tr><th>mutant</th><th>result</th><th>failing '
      .. "scenarios</th><th>what it weakens</th><th>first failure</th></tr>\n</thead>\n<tbody>\n")
    for _, m in ipairs(data.mutants) do
      local cls, word = "fail", "SURVIVED"
      if m.caught then
        cls, word = "pass", "caught"
      elseif m.not_applicable then
        cls, word = "none", "n/a: " .. m.not_applicable
      end
      w('<tr><td class="mono">', esc(m.name), '</td><td class="', cls, '">', CELL[cls].symbol,
        " ", esc(word), "</td><td>", tostring(m.failed),
        "</td><td>", esc(m.description), '</td><td class="mono">', esc(m.first or ""),
        "</td></tr>\n")
    end
    w("</tbody>\n</table>\n")
  end

  -- every scenario
  w("<h2>Scenarios</h2>\n<table class=\"scenarios\">\n<thead>\n<tr><th>family</th>"
    .. "<th>scenario</th><th>path</th><th>expected</th><th>actual</th><th>result</th>"
    .. "<th>ms</th></tr>\n</thead>\n<tbody>\n")
  for _, r in ipairs(data.results) do
    local k = r.pass and CELL.pass or CELL.fail
    w("<tr><td>", esc(r.family), "</td><td>", esc(r.test_name), "</td><td>", esc(r.path),
      "</td><td>", esc(M.outcome_text(r.expected_outcome)), "</td><td>",
      esc(M.outcome_text(r.actual_outcome)), '</td><td class="', r.pass and "pass" or "fail",
      '">', k.symbol, " ", k.word, "</td><td>", ("%.2f"):format((r.seconds or 0) * 1000),
      "</td></tr>\n")
  end
  w("</tbody>\n</table>\n</body>\n</html>\n")
  return table.concat(o)
end

-- Writes text to path; raises with the path on failure.
function M.write(path, text)
  local fh, err = io.open(path, "wb")
  if not fh then error("cannot write " .. tostring(err), 0) end
  local ok, werr = fh:write(text)
  local cok, cerr = fh:close()
  if not ok or not cok then error("cannot write " .. path .. ": " .. tostring(werr or cerr), 0) end
end

return M
