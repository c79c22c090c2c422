-- The story every example application runs, step by step, each step its own assertion set:
-- lint clean against the database, the differential test against the independent oracle
-- (tests/lua/oracle.lua), the whole rollout with a checksum of every other column, and the
-- matrix with every mutant. The example's suite adds what is its own (writes, triggers,
-- the rows that must stay invisible).
--
-- Everything here checks the engine against the database itself, through plain SQL on a
-- tg.connect handle; nothing calls into the engine to decide what is right.
local H = require "helpers"
local O = require "oracle"
local tg = H.tg

local S = {}

local qi = O.qi
S.qi = qi

-- An example application: its directory, its data generator and its rules.
function S.app(dir)
  local A = { dir = dir, rules = dir .. "/rules", data = dofile(dir .. "/data.lua") }
  return A
end

-- A fresh database of the example at a temporary path: path, info (from its data.lua).
function S.fresh(A, opts)
  local path = H.tmpdir() .. "/" .. A.dir:match("([^/]+)$") .. ".db"
  local info = A.data.create(path, opts)
  return path, info
end

-- opts (optional): more tg.open options, such as distributed = true.
function S.open(A, path, opts)
  local o = { db = path, rules = A.rules }
  for k, v in pairs(opts or {}) do o[k] = v end
  return tg.open(o)
end

local function describe(findings)
  local out = {}
  for _, f in ipairs(findings) do
    out[#out + 1] = ("%s %s %s: %s"):format(tostring(f.where), f.level, f.code, f.message)
  end
  return table.concat(out, "\n  ")
end
S.describe = describe

-- lint: not a single finding, error or warning, from tg.check and from eng:lint() (which
-- checks the rules against the database, drift included). allow (optional): a set of codes
-- expected as infos ({ family_key_with_tenant = true }); those are returned, not counted.
function S.assert_lint_clean(lu, A, path, allow)
  local function others(findings)
    local out, allowed = {}, {}
    for _, f in ipairs(findings) do
      if allow and allow[f.code] and f.level == "info" then allowed[#allowed + 1] = f
      else out[#out + 1] = f end
    end
    return out, allowed
  end
  local findings, allowed = others(tg.check { rules = A.rules, db = path })
  lu.assertEquals(#findings, 0, "tg.check findings:\n  " .. describe(findings))
  local eng = S.open(A, path)
  local lint = others(eng:lint())
  eng:close()
  lu.assertEquals(#lint, 0, "eng:lint findings:\n  " .. describe(lint))
  return allowed
end

-- The differential test: `n` random requests over every path, engine vs oracle. open_opts
-- (optional): more tg.open options for the engine (distributed = true, say).
function S.differential(lu, A, path, n, seed, gen_opts, open_opts)
  math.randomseed(seed)
  local eng = S.open(A, path, open_opts)
  local W = O.load_world(tg, path, eng:rules())
  local R = O.run(eng, W, n, gen_opts)
  eng:close()
  O.print_report(R, ("%s differential (seed %d)"):format(A.dir:match("([^/]+)$"), seed))
  O.assert_report(lu, R)
  return R, W
end

-- ---------------------------------------------------------------------------------------
-- the rollout, checked against the database

-- The tenant-owned tables of the rules: { { table =, id =, tenant =, workspace = }, ... }
-- (families and residuals, with their own columns over the app's).
function S.owned_tables(rules)
  local out = {}
  for _, list in ipairs { rules.families, rules.residuals or {} } do
    for _, f in ipairs(list) do
      local c = O.columns_of(rules, f)
      out[#out + 1] = { name = f.name, table = f.table, id = c.id, tenant = c.tenant,
        workspace = c.workspace }
    end
  end
  return out
end

-- The key of a row of table t as an SQL expression: its primary key as JSON, else the rowid.
local function key_expr(db, t)
  local pk = {}
  for _, r in ipairs(db:query("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk",
      t)) do
    pk[#pk + 1] = qi(r.name)
  end
  if #pk == 0 then return "rowid" end
  return "json_array(" .. table.concat(pk, ", ") .. ")"
end
S.key_expr = key_expr

local function app_tables(db)
  local out = {}
  for _, r in ipairs(db:query([[SELECT name FROM sqlite_schema WHERE type = 'table'
      AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE 'tenantguard\_%' ESCAPE '\'
      ORDER BY name]])) do
    out[#out + 1] = r.name
  end
  return out
end
S.app_tables = app_tables

-- A checksum of every row of every app table: { [table] = { [key] = "col=quote(v)|..." } },
-- leaving out `skip[table][column]` (the workspace columns the rollout adds and fills).
function S.checksum(db, skip)
  local snap = {}
  for _, t in ipairs(app_tables(db)) do
    local cols = {}
    for _, r in ipairs(db:query("SELECT name FROM pragma_table_info(?) ORDER BY name", t)) do
      if not (skip[t] and skip[t][r.name:lower()]) then
        cols[#cols + 1] = ("%s || '=' || quote(%s)"):format(("'" .. r.name:gsub("'", "''") .. "'"),
          qi(r.name))
      end
    end
    local rows = {}
    for _, r in ipairs(db:query(("SELECT %s AS k, %s AS s FROM %s"):format(key_expr(db, t),
        #cols > 0 and table.concat(cols, " || '|' || ") or "''", qi(t)))) do
      rows[tostring(r.k)] = r.s
    end
    snap[t] = rows
  end
  return snap
end

-- The differences between two checksums (at most 20 lines); `gone[t][key]` may be missing,
-- tables in the set `grows` may have new rows (the app's audit log and run tables).
function S.diff(before, after, gone, grows)
  local out, total = {}, 0
  local function add(m)
    total = total + 1
    if #out < 20 then out[#out + 1] = m end
  end
  for t, rows in pairs(before) do
    local a = after[t]
    if not a then add("table " .. t .. " is gone")
    else
      for k, s in pairs(rows) do
        if a[k] == nil then
          if not (gone and gone[t] and gone[t][k]) then add(("%s row %s is missing"):format(t, k)) end
        elseif a[k] ~= s then
          add(("%s row %s changed:\n    before %s\n    after  %s"):format(t, k, s, a[k]))
        end
      end
      if not (grows and grows[t]) then
        for k, s in pairs(a) do
          if rows[k] == nil then add(("%s row %s is new: %s"):format(t, k, s)) end
        end
      end
    end
  end
  if total > #out then out[#out + 1] = ("... %d differences in all"):format(total) end
  return out
end

function S.assert_same(lu, before, after, gone, what, grows)
  local d = S.diff(before, after, gone, grows)
  if #d > 0 then lu.fail(what .. ":\n  " .. table.concat(d, "\n  ")) end
end

-- The orphans of each tenant-owned table (rows whose tenant does not exist at all; a
-- soft-deleted tenant still exists): { [table] = { [key] = true } }, and their total.
function S.orphans(db, rules)
  local tm = rules.app.tenants
  local out, total = {}, 0
  for _, o in ipairs(S.owned_tables(rules)) do
    local set = {}
    for _, r in ipairs(db:query(("SELECT %s AS k FROM %s WHERE %s IS NULL OR %s NOT IN "
        .. "(SELECT %s FROM %s)"):format(key_expr(db, o.table), qi(o.table), qi(o.tenant),
        qi(o.tenant), qi(tm.id or "id"), qi(tm.table)))) do
      set[tostring(r.k)] = true
      total = total + 1
    end
    out[o.table] = set
  end
  return out, total
end

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- The app's own views, triggers and indexes: { [name] = sql }.
function S.app_objects(db)
  local out = {}
  for _, r in ipairs(db:query([[SELECT type, name, tbl_name, sql FROM sqlite_schema
      WHERE type IN ('view', 'trigger', 'index') AND sql IS NOT NULL
      AND name NOT LIKE 'tenantguard%' AND tbl_name NOT LIKE 'tenantguard\_%' ESCAPE '\']]))
      do
    out[r.type .. " " .. r.name] = r.sql
  end
  return out
end

local function phase(lu, eng, name)
  local ok, msg, code = eng:rollout(name)
  lu.assertTrue(ok, ("phase %s failed: %s (%s)"):format(name, tostring(msg), tostring(code)))
  return msg
end
S.phase = phase

-- Rows of a tenant-owned table whose workspace column disagrees with its tenant's workspace
-- (NULL counts as disagreeing), by plain SQL.
function S.unbound(db, rules, o)
  local tm = rules.app.tenants
  return db:value(("SELECT count(*) FROM %s AS r LEFT JOIN %s AS t ON t.%s = r.%s "
    .. "WHERE r.%s IS NULL OR t.%s IS NULL OR r.%s <> t.%s"):format(qi(o.table), qi(tm.table),
    qi(tm.id or "id"), qi(o.tenant), qi(o.workspace), qi(tm.id or "id"), qi(o.workspace),
    qi(tm.workspace)))
end

-- The whole rollout in the documented order, every step checked against the database:
-- add_columns, enforce_writes, the dry run, the queued run (no row changes), the worker,
-- validation (only the orphans left), the quarantine, enforce_constraints, validation all
-- zero; every other column of every row of every app table is unchanged, and the only rows
-- gone are the orphans, each kept in tenantguard_quarantine.
function S.rollout(lu, A, path)
  local db = tg.connect(path)
  local eng = S.open(A, path)
  local rules = eng:rules()
  local owned = S.owned_tables(rules)
  local skip, grows = {}, {}
  for _, o in ipairs(owned) do skip[o.table] = { [o.workspace:lower()] = true } end
  -- the app's own audit log (entries are added, the workspace column bound) and run table
  local audit, runs = rules.app.audit_logs, rules.app.operation_runs
  local function exists(t)
    return db:value("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", t) > 0
  end
  local audit_unbound, audit_orphans = 0, 0
  if type(audit) == "table" and exists(audit.table) then
    skip[audit.table] = { [audit.workspace:lower()] = true }
    grows[audit.table] = true
    local tm = rules.app.tenants
    audit_unbound = db:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL AND %s IS NULL AND "
      .. "%s IN (SELECT %s FROM %s)"):format(qi(audit.table), qi(audit.tenant),
      qi(audit.workspace), qi(audit.tenant), qi(tm.id or "id"), qi(tm.table)))
    audit_orphans = db:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL AND %s IS NULL AND "
      .. "%s NOT IN (SELECT %s FROM %s)"):format(qi(audit.table), qi(audit.tenant),
      qi(audit.workspace), qi(audit.tenant), qi(tm.id or "id"), qi(tm.table)))
  end
  if type(runs) == "table" and exists(runs.table) then grows[runs.table] = true end
  local orphans, n_orphans = S.orphans(db, rules)
  local before = S.checksum(db, skip)
  local objects = S.app_objects(db)

  phase(lu, eng, "add_columns")
  for _, o in ipairs(owned) do
    lu.assertEquals(db:value("SELECT count(*) FROM pragma_table_info(?) WHERE name = ? "
      .. "COLLATE NOCASE", o.table, o.workspace), 1, o.table .. ": no " .. o.workspace)
  end
  phase(lu, eng, "enforce_writes")
  S.assert_same(lu, before, S.checksum(db, skip), nil, "phases 1 and 1.5 changed rows", grows)

  local dry = assert(eng:backfill { dry_run = true })
  lu.assertEquals(dry.totals.cannot_bind, n_orphans + audit_orphans,
    "dry run: rows that cannot be bound")
  local rows = 0
  for _, o in ipairs(owned) do
    rows = rows + db:value(("SELECT count(*) FROM %s"):format(qi(o.table)))
  end
  lu.assertEquals(dry.totals.would_set, rows - n_orphans + audit_unbound,
    "dry run: rows it would bind")
  for _, o in ipairs(owned) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL"):format(
      qi(o.table), qi(o.workspace))), 0, o.table .. ": the dry run wrote")
  end

  local run = assert(eng:backfill {})
  lu.assertEquals(run.status, "queued")
  for _, o in ipairs(owned) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL"):format(
      qi(o.table), qi(o.workspace))), 0, o.table .. ": a queued run changed rows")
  end
  local w = assert(eng:work {})
  lu.assertTrue(w.idle)
  run = eng:run(run.id)
  lu.assertEquals(run.status, n_orphans > 0 and "completed_with_errors" or "completed")
  lu.assertEquals(run.rows_set, dry.totals.would_set)
  lu.assertEquals(run.rows_unbound, n_orphans + audit_orphans)

  local v = assert(eng:validate())
  for _, c in ipairs(v.checks) do
    local expect = 0
    if c.name == "null_workspace" and orphans[c.table] then expect = count(orphans[c.table]) end
    lu.assertEquals(c.count, expect, ("before the quarantine: %s %s"):format(c.name,
      tostring(c.table)))
  end
  if n_orphans > 0 then
    lu.assertFalse(v.ok)
    local ok = eng:rollout("enforce_constraints")
    lu.assertTrue(not ok, "enforce_constraints accepted unbound orphans")
    phase(lu, eng, "quarantine_orphans")
    lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_quarantine"), n_orphans)
  end
  phase(lu, eng, "enforce_constraints")
  v = assert(eng:validate())
  lu.assertTrue(v.ok, "validation after the rollout")
  lu.assertTrue(#v.checks >= 2 * #owned)
  for _, c in ipairs(v.checks) do lu.assertEquals(c.count, 0, c.name .. " " .. tostring(c.table)) end

  -- the DBA's own checks, in plain SQL, all zero; and the workspace column stays set
  -- (phase 3 leaves NOT NULL to the triggers): clearing it on every row is undone row by row
  for _, o in ipairs(owned) do
    lu.assertEquals(S.unbound(db, rules, o), 0, o.table .. ": rows not bound to their workspace")
    local ok, err = pcall(db.exec, db, ("UPDATE %s SET %s = NULL"):format(qi(o.table),
      qi(o.workspace)))
    lu.assertTrue(ok, o.table .. ": clearing the workspace column: " .. tostring(err))
    lu.assertEquals(S.unbound(db, rules, o), 0, o.table .. ": a cleared workspace column stayed")
  end
  -- every other column of every row unchanged; only orphans gone, each in the quarantine
  local after = S.checksum(db, skip)
  S.assert_same(lu, before, after, orphans, "the rollout changed data", grows)
  for t, set in pairs(orphans) do
    for k in pairs(set) do
      lu.assertNil(after[t][k], t .. " orphan " .. k .. " is still there")
    end
    lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_quarantine WHERE table_name = ?",
      t), count(set), t .. ": quarantined rows")
  end
  -- the app's own views, triggers and indexes are all still there, unchanged
  local now = S.app_objects(db)
  for name, sql in pairs(objects) do
    lu.assertEquals(now[name], sql, name .. " changed or is gone")
  end
  lu.assertEquals(db:value("PRAGMA integrity_check"), "ok")
  lu.assertEquals(db:query("PRAGMA foreign_key_check"), {})
  db:close()
  return eng, orphans, n_orphans
end

-- ---------------------------------------------------------------------------------------
-- the matrix

function S.assert_matrix_passes(lu, results, label)
  lu.assertIsTable(results, label .. ": no report")
  local bad = {}
  for _, r in ipairs(results) do
    if not r.pass then bad[#bad + 1] = r.message or (r.family .. " " .. r.scenario_type) end
  end
  lu.assertEquals(#bad, 0, label .. ": failing scenarios:\n  " .. table.concat(bad, "\n  "))
  lu.assertTrue(#results > 0, label .. ": no scenarios")
  lu.assertEquals(results.failed, 0, label)
end

-- run_matrix passes; each mutant of tg.mutations() is caught; the plain run passes again,
-- and the database is exactly as found.
function S.matrix_with_mutants(lu, A, path)
  local eng = S.open(A, path)
  local db = tg.connect(path)
  local before = S.checksum(db, {})
  S.assert_matrix_passes(lu, eng:run_matrix(), "the matrix")
  -- every family gets scenarios
  local seen = {}
  for _, r in ipairs(eng:matrix()) do seen[r.family] = true end
  for _, f in ipairs(eng:rules().families) do lu.assertTrue(seen[f.name], f.name .. ": no scenario") end
  local survived = {}
  for _, m in ipairs(tg.mutations()) do
    local r = eng:run_matrix(m.name)
    if r.failed == 0 then survived[#survived + 1] = m.name .. " (" .. m.description .. ")" end
  end
  lu.assertEquals(#survived, 0, "mutants that survived:\n  " .. table.concat(survived, "\n  "))
  S.assert_matrix_passes(lu, eng:run_matrix(), "the matrix after the mutants")
  S.assert_same(lu, before, S.checksum(db, {}), nil, "run_matrix left changes behind")
  db:close()
  eng:close()
end

-- ---------------------------------------------------------------------------------------
-- the command-line tool on the example

local function sh(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
S.sh = sh

-- Runs `tenantguard <args>` with --db and --rules of the example; returns rc, output.
function S.tool(A, path, args)
  return H.run_tool(args .. " --db " .. sh(path) .. " --rules " .. sh(A.rules))
end

-- lint --strict is clean; matrix --mutate catches every mutant.
function S.tool_lint_and_matrix(lu, A, path)
  local rc, out = S.tool(A, path, "lint --strict")
  lu.assertEquals(rc, 0, out)
  rc, out = S.tool(A, path, "matrix --mutate")
  lu.assertEquals(rc, 0, out)
  local n = #tg.mutations()
  lu.assertStrContains(out, ("mutation check: %d mutants, %d caught"):format(n, n))
end

return S
