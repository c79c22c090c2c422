-- The workspace_id rollout on the reference database: every phase, the dry run, the queued
-- backfill and its worker, the write triggers, the orphans and their quarantine, the phase-3
-- table rebuild, and the command-line tool. Every expectation is checked against the database
-- itself through a plain SQLite handle, independently of the engine.
local lu = require "luaunit"
local H = require "helpers"
local U = require "rollout_util"
local tg = H.tg

local TABLES = U.TABLES
local qi = U.qi

-- Runs a phase that must succeed; returns its message.
local function phase(eng, name)
  local ok, msg, code = eng:rollout(name)
  lu.assertTrue(ok, ("phase %s failed: %s (%s)"):format(name, tostring(msg), tostring(code)))
  lu.assertIsString(msg)
  return msg
end

-- A database through the full phase 2: columns, triggers, one backfill run to the end.
local function through_backfill(rows, path)
  path = path or H.refdb(rows)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local run = assert(eng:backfill {})
  local w = assert(eng:work {})
  lu.assertTrue(w.idle)
  return path, eng, eng:run(run.id)
end

local function contains(s, part) return type(s) == "string" and s:find(part, 1, true) ~= nil end

-- Asserts `msg` names table `t` and the rule `rule` in brackets.
local function assert_abort(ok, msg, t, rule, what)
  lu.assertFalse(ok, what .. ": the write was accepted")
  lu.assertStrContains(msg, t, false, what)
  if rule then
    lu.assertStrContains(msg, "[" .. rule .. "]", false, what)
  else
    lu.assertStrMatches(msg, ".*%[[%w_]+%].*", nil, nil, what)
  end
end

-- INSERT INTO t a copy of row `src` with some columns replaced; returns pcall's result and
-- the new row's id. overrides: { column = value | tg.null } (NULL written as nil via
-- `nulls`).
local function insert_copy(db, t, src, overrides, nulls)
  local cols, exprs, args = {}, {}, {}
  for _, c in ipairs(U.columns(db, t)) do
    if c ~= "id" then
      cols[#cols + 1] = qi(c)
      if nulls and nulls[c] then
        exprs[#exprs + 1] = "NULL"
      elseif overrides[c] ~= nil then
        exprs[#exprs + 1] = "?"
        args[#args + 1] = overrides[c]
      else
        exprs[#exprs + 1] = qi(c)
      end
    end
  end
  args[#args + 1] = src
  local sql = ("INSERT INTO %s (%s) SELECT %s FROM %s WHERE id = ?"):format(qi(t),
    table.concat(cols, ", "), table.concat(exprs, ", "), qi(t))
  local ok, err = pcall(db.query, db, sql, table.unpack(args))
  local id = ok and db:value("SELECT last_insert_rowid()") or nil
  return ok, err, id
end

-- ---------------------------------------------------------------------------------------

TestRollout = {}

function TestRollout:tearDown() H.cleanup() end

-- The whole rollout, in the documented order, ends with every check at zero and phase 3
-- visibly applied.
function TestRollout:test_full_rollout_ends_validated_and_enforced()
  local path = H.refdb(2000)
  local eng = U.open_engine(path)
  local dry = assert(eng:backfill { dry_run = true })
  lu.assertEquals(#dry.tables, #TABLES + 1) -- the twelve and the audit log
  lu.assertEquals(dry.totals.cannot_bind, 3 * #TABLES) -- rows 500, 1500, 2000
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local run = assert(eng:backfill {})
  lu.assertEquals(run.status, "queued")
  local w = assert(eng:work {})
  lu.assertTrue(w.idle)
  lu.assertTrue(w.batches > 0)
  run = eng:run(run.id)
  lu.assertEquals(run.status, "completed_with_errors")
  lu.assertEquals(run.rows_set, dry.totals.would_set)
  lu.assertEquals(run.rows_unbound, dry.totals.cannot_bind)
  -- before the quarantine only the orphans are left
  local before = U.checks(eng:validate())
  for _, t in ipairs(TABLES) do
    lu.assertEquals(before["null_workspace:" .. t], 3, t)
    lu.assertEquals(before["workspace_mismatch:" .. t], 0, t)
  end
  lu.assertEquals(before["audit_tenant_without_workspace:audit_logs"], 0)
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")

  local v = assert(eng:validate())
  lu.assertTrue(v.ok)
  lu.assertEquals(#v.checks, 2 * #TABLES + 2)
  for _, c in ipairs(v.checks) do lu.assertEquals(c.count, 0, c.name .. " " .. tostring(c.table)) end
  local seen = {}
  for _, c in ipairs(v.checks) do seen[c.name] = true end
  lu.assertEquals(seen, { null_workspace = true, workspace_mismatch = true,
    audit_tenant_without_workspace = true })

  local db = tg.connect(path)
  for _, t in ipairs(TABLES) do
    U.assert_workspace_never_null(lu, db, t, "workspace_id", "tenant_id")
    -- the composite key (tenant_id, workspace_id) -> tenants(id, workspace_id)
    local composite = db:value([[SELECT count(*) FROM (SELECT id FROM pragma_foreign_key_list(?1)
      WHERE "table" = 'tenants' GROUP BY id HAVING count(*) = 2
        AND sum("from" = 'tenant_id' AND "to" = 'id') = 1
        AND sum("from" = 'workspace_id' AND "to" = 'workspace_id') = 1)]], t)
    lu.assertEquals(composite, 1, t .. ": composite foreign key")
    lu.assertEquals(db:value([[SELECT count(*) FROM pragma_foreign_key_list(?1)
      WHERE "table" = 'workspaces' AND "from" = 'workspace_id' AND "to" = 'id']], t), 1,
      t .. ": foreign key to workspaces")
  end
  lu.assertEquals(db:query("PRAGMA foreign_key_check"), {})
  lu.assertEquals(db:value("PRAGMA integrity_check"), "ok")

  -- the triggers are what keeps workspace_id from being NULL now: they stay
  local dropped, why, code = eng:rollout("drop_triggers")
  lu.assertNil(dropped)
  lu.assertEquals(code, "TG_REFUSED")
  lu.assertStrContains(why, "phase 3")
  -- the constraints hold by themselves, even with the triggers dropped by hand
  for _, name in ipairs(db:query("SELECT name FROM sqlite_schema WHERE type = 'trigger' AND "
      .. "name LIKE 'tenantguard%'")) do
    db:exec(('DROP TRIGGER "%s"'):format(name.name))
  end
  db:exec("PRAGMA foreign_keys = ON")
  local ok, err = pcall(db.exec, db, "INSERT INTO audit_logs (tenant_id, workspace_id, action, "
    .. "created_at) VALUES (3, NULL, 'bad', '2026-01-01')")
  lu.assertFalse(ok, "the audit CHECK accepted a tenant without a workspace")
  lu.assertStrContains(err, "CHECK constraint failed")
  ok = pcall(db.exec, db, "INSERT INTO audit_logs (tenant_id, workspace_id, action, created_at) "
    .. "VALUES (NULL, NULL, 'system', '2026-01-01')")
  lu.assertTrue(ok, "an audit entry without a tenant needs no workspace")
  ok, err = insert_copy(db, "findings", 1, { tenant_id = 2, workspace_id = 2 })
  lu.assertFalse(ok, "the composite foreign key accepted tenant 2 in workspace 2")
  lu.assertStrContains(err, "FOREIGN KEY constraint failed")
  ok, err = insert_copy(db, "findings", 1, { tenant_id = 2, workspace_id = 1 })
  lu.assertTrue(ok, tostring(err))
  phase(eng, "enforce_writes")
  lu.assertTrue(eng:validate().ok)
  db:close()
  eng:close()
end

-- The dry run writes nothing at all, and each of its counts is what plain SQL says.
function TestRollout:test_dry_run_changes_nothing_and_counts_agree()
  local path = H.refdb(2000)
  local db = tg.connect(path)

  -- The expected counts, by independent queries.
  local function expected(t)
    local has = U.has_column(db, t, "workspace_id")
    local audit = t == "audit_logs"
    local T = "tenant_id"
    local exists = ("EXISTS (SELECT 1 FROM tenants x WHERE x.id = r.%s)"):format(T)
    local tws = ("(SELECT x.workspace_id FROM tenants x WHERE x.id = r.%s)"):format(T)
    local scope = audit and (" AND r.%s IS NOT NULL"):format(T) or ""
    local unbound = (has and "r.workspace_id IS NULL" or "1") .. scope
    local function n(where)
      return db:value(("SELECT count(*) FROM %s r WHERE %s"):format(qi(t), where))
    end
    local e = {
      table = t, has_column = has,
      rows = n("1"),
      unbound = n(unbound),
      would_set = n(unbound .. " AND " .. exists),
      cannot_bind = n(unbound .. " AND NOT " .. exists),
      correct = has and n("r.workspace_id = " .. tws) or 0,
      mismatched = has and n("r.workspace_id IS NOT NULL AND r.workspace_id IS NOT " .. tws
        .. scope) or 0,
      samples = {},
    }
    for _, r in ipairs(db:query(("SELECT id FROM %s r WHERE %s AND NOT %s ORDER BY id LIMIT 5")
        :format(qi(t), unbound, exists))) do
      e.samples[#e.samples + 1] = r.id
    end
    return e
  end

  local function check(dry, what)
    local totals = { rows = 0, unbound = 0, would_set = 0, cannot_bind = 0, correct = 0,
      mismatched = 0 }
    local names = {}
    for _, c in ipairs(dry.tables) do
      names[#names + 1] = c.table
      lu.assertEquals(c, expected(c.table), what .. ": " .. c.table)
      for k in pairs(totals) do totals[k] = totals[k] + c[k] end
    end
    local want = {}
    for _, t in ipairs(TABLES) do want[#want + 1] = t end
    want[#want + 1] = "audit_logs"
    table.sort(names)
    table.sort(want)
    lu.assertEquals(names, want, what)
    lu.assertEquals(dry.totals, totals, what .. ": totals")
  end

  -- 1. before phase 1: no column anywhere but on the audit log
  local data0, schema0 = U.snapshot(db, { with_engine = true }), U.schema(db)
  local eng = U.open_engine(path)
  local dry = assert(eng:backfill { dry_run = true })
  U.assert_same(lu, data0, U.snapshot(db, { with_engine = true }), { strict_tables = true },
    "dry run before phase 1")
  lu.assertEquals(U.schema(db), schema0)
  check(dry, "before phase 1")
  for _, c in ipairs(dry.tables) do
    if c.table ~= "audit_logs" then
      lu.assertFalse(c.has_column, c.table)
      lu.assertEquals(c.unbound, 2000, c.table)
      lu.assertEquals(c.cannot_bind, 3, c.table)
      lu.assertEquals(c.samples, { 500, 1500, 2000 }, c.table)
    else
      lu.assertTrue(c.has_column)
      lu.assertTrue(c.would_set > 0, "legacy audit rows with a tenant and no workspace")
    end
  end

  -- 2. a mixed state: some rows bound, some bound to the wrong workspace, an orphan bound
  phase(eng, "add_columns")
  for _, t in ipairs(TABLES) do
    db:exec(([[UPDATE %s SET workspace_id = (SELECT workspace_id FROM tenants WHERE id = tenant_id)
      WHERE id <= 100]]):format(qi(t)))
    db:exec(([[UPDATE %s SET workspace_id = (SELECT workspace_id %% 3 + 1 FROM tenants
      WHERE id = tenant_id) WHERE id BETWEEN 101 AND 107]]):format(qi(t)))
  end
  db:exec("UPDATE audit_logs SET workspace_id = workspace_id % 3 + 1 WHERE id IN (1, 2, 5)")
  local data1, schema1 = U.snapshot(db, { with_engine = true }), U.schema(db)
  dry = assert(eng:backfill { dry_run = true })
  U.assert_same(lu, data1, U.snapshot(db, { with_engine = true }), { strict_tables = true },
    "dry run after phase 1")
  lu.assertEquals(U.schema(db), schema1)
  check(dry, "mixed state")
  for _, c in ipairs(dry.tables) do
    if c.table ~= "audit_logs" then
      lu.assertEquals(c.correct, 100, c.table)
      lu.assertEquals(c.mismatched, 7, c.table)
      lu.assertEquals(c.would_set, 2000 - 107 - 3, c.table)
    else
      lu.assertEquals(c.mismatched, 3)
    end
  end
  db:close()
  eng:close()
end

-- A backfill corrects rows bound to the wrong workspace, keeps the old value on record, and
-- counts exactly what the dry run predicted.
function TestRollout:test_backfill_corrects_mismatched_workspace()
  local path = H.refdb(1200)
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  for _, t in ipairs(TABLES) do
    db:exec(([[UPDATE %s SET workspace_id = (SELECT workspace_id %% 3 + 1 FROM tenants
      WHERE id = tenant_id) WHERE id BETWEEN 11 AND 15]]):format(qi(t)))
  end
  phase(eng, "enforce_writes")
  local dry = eng:backfill { dry_run = true }
  lu.assertEquals(dry.totals.mismatched, 5 * #TABLES)
  local run = eng:backfill {}
  eng:work {}
  run = eng:run(run.id)
  lu.assertEquals(run.rows_corrected, dry.totals.mismatched)
  lu.assertEquals(run.rows_set, dry.totals.would_set)
  lu.assertEquals(run.rows_unbound, dry.totals.cannot_bind)
  lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_unbound WHERE run_id = ? AND reason "
    .. "LIKE 'workspace_corrected_from_%'", run.id), 5 * #TABLES)
  local checks = U.checks(eng:validate())
  for _, t in ipairs(TABLES) do lu.assertEquals(checks["workspace_mismatch:" .. t], 0, t) end
  db:close()
  eng:close()
end

-- Running any phase a second time changes neither the schema nor any row.
function TestRollout:test_each_phase_is_idempotent()
  local path = H.refdb(1200)
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  local audit_mark = db:value("SELECT max(id) FROM audit_logs")
  local function twice(name, between)
    phase(eng, name)
    if between then between() end
    local schema, data = U.schema(db), U.snapshot(db, { with_engine = true })
    phase(eng, name)
    lu.assertEquals(U.schema(db), schema, name .. " run twice changed the schema")
    U.assert_same(lu, data, U.snapshot(db, { with_engine = true }),
      { allow_new = { audit_logs = true } }, name .. " run twice changed rows")
  end
  twice("add_columns")
  twice("enforce_writes")
  twice("drop_triggers")
  twice("drop_columns")
  twice("add_columns")
  twice("enforce_writes")
  local run = eng:backfill {}
  eng:work {}
  lu.assertEquals(eng:run(run.id).status, "completed_with_errors")
  twice("quarantine_orphans")
  lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_quarantine"), 2 * #TABLES)
  twice("enforce_constraints")
  twice("enforce_writes")
  lu.assertTrue(eng:validate().ok)
  lu.assertTrue(db:value("SELECT count(*) FROM audit_logs WHERE id > ?", audit_mark) > 0)
  db:close()
  eng:close()
end

-- Phase 1.5 on raw SQL: every kind of bad write is aborted with a message naming the table
-- and the rule, and an insert without workspace_id is bound to its tenant's workspace.
function TestRollout:test_triggers_reject_bad_raw_writes()
  local path = H.refdb(120)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local db = tg.connect(path)
  for _, t in ipairs(TABLES) do
    local count = db:value(("SELECT count(*) FROM %s"):format(qi(t)))
    -- row 1 belongs to tenant 8 (workspace 2); bind it for the update cases
    lu.assertEquals(db:value(("SELECT tenant_id FROM %s WHERE id = 1"):format(qi(t))), 8)

    local ok, err = insert_copy(db, t, 1, { tenant_id = 2, workspace_id = 2 })
    assert_abort(ok, err, t, "workspace_matches_tenant", t .. ": insert, mismatched workspace")
    ok, err = insert_copy(db, t, 1, { tenant_id = 999, workspace_id = 1 })
    assert_abort(ok, err, t, nil, t .. ": insert, nonexistent tenant with a workspace")
    ok, err = insert_copy(db, t, 1, { tenant_id = 999 }, { workspace_id = true })
    assert_abort(ok, err, t, nil, t .. ": insert, nonexistent tenant")
    lu.assertEquals(db:value(("SELECT count(*) FROM %s"):format(qi(t))), count,
      t .. ": an aborted insert left a row")

    -- bound on insert
    local id
    ok, err, id = insert_copy(db, t, 1, { tenant_id = 7 }, { workspace_id = true })
    lu.assertTrue(ok, tostring(err))
    lu.assertEquals(db:value(("SELECT workspace_id FROM %s WHERE id = ?"):format(qi(t)), id), 2,
      t .. ": insert without workspace_id bound to tenant 7's workspace")
    ok, err, id = insert_copy(db, t, 1, { tenant_id = 12, workspace_id = 3 })
    lu.assertTrue(ok, tostring(err))
    lu.assertEquals(db:value(("SELECT workspace_id FROM %s WHERE id = ?"):format(qi(t)), id), 3)

    -- updates
    ok, err = pcall(db.exec, db, ("UPDATE %s SET workspace_id = 1 WHERE id = 1"):format(qi(t)))
    assert_abort(ok, err, t, "workspace_matches_tenant", t .. ": update, mismatched workspace")
    ok, err = pcall(db.exec, db, ("UPDATE %s SET workspace_id = 2 WHERE id = 1"):format(qi(t)))
    lu.assertTrue(ok, tostring(err))
    ok, err = pcall(db.exec, db, ("UPDATE %s SET tenant_id = 5 WHERE id = 1"):format(qi(t)))
    assert_abort(ok, err, t, "tenant_immutable", t .. ": update of tenant_id, same workspace")
    ok, err = pcall(db.exec, db, ("UPDATE %s SET tenant_id = 1, workspace_id = 1 WHERE id = 1")
      :format(qi(t)))
    assert_abort(ok, err, t, "tenant_immutable", t .. ": update of tenant_id with its workspace")
    ok, err = pcall(db.exec, db, ("UPDATE %s SET tenant_id = 8 WHERE id = 1"):format(qi(t)))
    lu.assertTrue(ok, "writing the same tenant_id is not a change: " .. tostring(err))
    lu.assertEquals(db:query(("SELECT tenant_id, workspace_id FROM %s WHERE id = 1"):format(qi(t))),
      { { tenant_id = 8, workspace_id = 2 } }, t .. ": row 1 after the aborted updates")
    -- an update clearing workspace_id binds the row again; any update binds an unbound row
    db:exec(("UPDATE %s SET workspace_id = NULL WHERE id = 1"):format(qi(t)))
    lu.assertEquals(db:value(("SELECT workspace_id FROM %s WHERE id = 1"):format(qi(t))), 2)
    db:exec(("UPDATE %s SET created_at = created_at WHERE id = 2"):format(qi(t)))
    lu.assertEquals(db:value(("SELECT workspace_id FROM %s WHERE id = 2"):format(qi(t))),
      U.workspace_of(db:value(("SELECT tenant_id FROM %s WHERE id = 2"):format(qi(t)))))
  end
  -- the audit log: a tenant needs its workspace
  local ok, err = pcall(db.exec, db, "INSERT INTO audit_logs (tenant_id, action, created_at) "
    .. "VALUES (3, 'x', '2026-01-01')")
  assert_abort(ok, err, "audit_logs", "audit_tenant_needs_workspace", "audit insert")
  local legacy = db:value("SELECT id FROM audit_logs WHERE tenant_id IS NOT NULL "
    .. "AND workspace_id IS NOT NULL LIMIT 1")
  ok, err = pcall(db.exec, db, "UPDATE audit_logs SET workspace_id = NULL WHERE id = " .. legacy)
  assert_abort(ok, err, "audit_logs", "audit_tenant_needs_workspace", "audit update")
  ok, err = pcall(db.exec, db, "INSERT INTO audit_logs (tenant_id, workspace_id, action, "
    .. "created_at) VALUES (3, 1, 'x', '2026-01-01')")
  lu.assertTrue(ok, tostring(err))
  ok, err = pcall(db.exec, db, "INSERT INTO audit_logs (tenant_id, workspace_id, action, "
    .. "created_at) VALUES (NULL, NULL, 'system', '2026-01-01')")
  lu.assertTrue(ok, tostring(err))
  db:close()
  eng:close()
end

-- Phase 3 is refused while anything is unbound (or bound wrongly), names the table, and
-- touches no schema.
function TestRollout:test_enforce_constraints_refused_while_unbound()
  local path = H.refdb(600)
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")

  local function refused(what, must_name, must_not_name)
    local schema = U.schema(db)
    local data = U.snapshot(db, { with_engine = true })
    local ok, msg, code = eng:rollout("enforce_constraints")
    lu.assertNil(ok, what .. ": enforce_constraints was not refused")
    lu.assertEquals(code, "TG_REFUSED", what)
    for _, t in ipairs(must_name) do lu.assertStrContains(msg, t, false, what) end
    for _, t in ipairs(must_not_name or {}) do
      lu.assertFalse(contains(msg, t), what .. ": the message names " .. t .. ": " .. msg)
    end
    lu.assertEquals(U.schema(db), schema, what .. ": the schema changed")
    U.assert_same(lu, data, U.snapshot(db, { with_engine = true }), { strict_tables = true },
      what .. ": rows changed")
    for _, t in ipairs(TABLES) do
      lu.assertEquals(db:value("SELECT \"notnull\" FROM pragma_table_info(?) WHERE name = "
        .. "'workspace_id'", t), 0, what .. ": " .. t)
    end
  end

  refused("nothing backfilled", TABLES)
  local run = eng:backfill {}
  eng:work {}
  lu.assertEquals(eng:run(run.id).status, "completed_with_errors")
  refused("orphans left", TABLES)
  phase(eng, "quarantine_orphans")
  lu.assertTrue(eng:validate().ok)

  -- one row of one table unbound (written behind the triggers' back)
  phase(eng, "drop_triggers")
  db:exec("UPDATE findings SET workspace_id = NULL WHERE id = 7")
  phase(eng, "enforce_writes")
  refused("one unbound row", { "findings" }, { "policies", "inventory_items" })
  db:exec("UPDATE findings SET title = title WHERE id = 7") -- the update trigger binds it
  lu.assertTrue(eng:validate().ok)

  -- one row bound to the wrong workspace
  phase(eng, "drop_triggers")
  db:exec("UPDATE entra_groups SET workspace_id = workspace_id % 3 + 1 WHERE id = 9")
  phase(eng, "enforce_writes")
  refused("one mismatched row", { "entra_groups" }, { "findings" })
  phase(eng, "drop_triggers")
  db:exec("UPDATE entra_groups SET workspace_id = NULL WHERE id = 9")
  phase(eng, "enforce_writes")
  db:exec("UPDATE entra_groups SET display_name = display_name WHERE id = 9")

  -- a legacy audit entry with a tenant and no workspace
  local audit_ws = db:value("SELECT workspace_id FROM audit_logs WHERE id = 1")
  lu.assertNotNil(audit_ws)
  phase(eng, "drop_triggers")
  db:exec("UPDATE audit_logs SET workspace_id = NULL WHERE id = 1")
  phase(eng, "enforce_writes")
  refused("an audit entry without its workspace", { "audit_logs" }, { "findings" })
  db:query("UPDATE audit_logs SET workspace_id = ? WHERE id = 1", audit_ws)

  lu.assertTrue(eng:validate().ok)
  phase(eng, "enforce_constraints")
  db:close()
  eng:close()
end

-- The phase-3 rebuild keeps every row (every column, same values and types), every index,
-- every trigger (the app's and tenantguard's) and the view.
function TestRollout:test_rebuild_keeps_rows_indexes_triggers_and_view()
  local path = through_backfill(2000)
  local eng = U.open_engine(path)
  phase(eng, "quarantine_orphans")
  local db = tg.connect(path)
  local data = U.snapshot(db, { with_engine = true })
  local indexes, triggers, views = U.objects(db, "index"), U.objects(db, "trigger"),
    U.objects(db, "view")
  lu.assertNotNil(triggers.policies_touch)
  lu.assertNotNil(triggers.tenantguard_findings_insert_check)
  lu.assertNotNil(views.open_findings)
  local open_findings = db:query("SELECT * FROM open_findings ORDER BY id")
  lu.assertTrue(#open_findings > 0)
  local infos = {}
  for _, t in ipairs(TABLES) do infos[t] = U.table_info(db, t, { workspace_id = true }) end

  phase(eng, "enforce_constraints")

  U.assert_same(lu, data, U.snapshot(db, { with_engine = true }),
    { allow_new = { audit_logs = true }, strict_tables = true }, "rows after the rebuild")
  for t, info in pairs(infos) do
    lu.assertEquals(U.table_info(db, t, { workspace_id = true }), info, t .. ": columns")
  end
  local after = U.objects(db, "index")
  for name, sql in pairs(indexes) do
    lu.assertEquals(after[name], sql, "index " .. name)
  end
  after = U.objects(db, "trigger")
  for name, sql in pairs(triggers) do
    lu.assertEquals(after[name], sql, "trigger " .. name)
  end
  lu.assertEquals(U.objects(db, "view"), views)
  lu.assertEquals(db:query("SELECT * FROM open_findings ORDER BY id"), open_findings)
  lu.assertEquals(db:value("PRAGMA integrity_check"), "ok")
  db:exec("PRAGMA foreign_keys = ON")
  lu.assertEquals(db:query("PRAGMA foreign_key_check"), {})

  -- the triggers still fire on the rebuilt tables
  db:exec("UPDATE policies SET display_name = 'Renamed' WHERE id = 1")
  lu.assertEquals(db:value("SELECT updated_at FROM policies WHERE id = 1"), "2026-06-01 00:00:00")
  local ok, err = insert_copy(db, "findings", 2, { tenant_id = 2, workspace_id = 2 })
  assert_abort(ok, err, "findings", "workspace_matches_tenant", "findings after the rebuild")
  ok, err = pcall(db.exec, db, "UPDATE findings SET tenant_id = 4 WHERE id = 2")
  assert_abort(ok, err, "findings", "tenant_immutable", "findings after the rebuild")
  ok, err = insert_copy(db, "findings", 2, { tenant_id = 2, workspace_id = 1, status = "open" })
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(#db:query("SELECT * FROM open_findings"), #open_findings + 1)
  db:close()
  eng:close()
end

-- Phase 1.5 says the workspace of a raw insert is derived from its tenant. Once phase 3 is
-- applied, an insert that leaves workspace_id out must still land, bound: no phase of the
-- rollout may break a write the application could make before it. (SQLite checks a NOT NULL
-- column before the binding trigger runs, so phase 3 leaves NOT NULL to the triggers.) One
-- with the tenant's workspace lands; one with another workspace, or for a tenant that does
-- not exist, is refused; validation stays all zero.
function TestRollout:test_after_phase3_an_unbound_insert_is_bound_and_a_wrong_one_refused()
  local path = through_backfill(600)
  local eng = U.open_engine(path)
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")
  local db = tg.connect(path)
  local before = db:value("SELECT count(*) FROM findings")
  local ok, err, id0 = insert_copy(db, "findings", 2, { tenant_id = 6 }, { workspace_id = true })
  lu.assertTrue(ok, tostring(err))
  lu.assertEquals(db:value("SELECT workspace_id FROM findings WHERE id = ?", id0), 2)
  lu.assertEquals(db:value("SELECT count(*) FROM findings"), before + 1)
  local okx, errx = insert_copy(db, "findings", 2, { tenant_id = 999 }, { workspace_id = true })
  lu.assertFalse(okx, "a row of a tenant that does not exist")
  lu.assertStrContains(tostring(errx), "must name an existing tenant")
  local ok2, err2, id = insert_copy(db, "findings", 2, { tenant_id = 6, workspace_id = 2 })
  lu.assertTrue(ok2, tostring(err2))
  lu.assertEquals(db:value("SELECT workspace_id FROM findings WHERE id = ?", id), 2)
  local ok3 = insert_copy(db, "findings", 2, { tenant_id = 6, workspace_id = 1 })
  lu.assertFalse(ok3)
  lu.assertTrue(eng:validate().ok)
  -- and through the guard, the workspace is derived
  local ctx = eng:context { user = 5, workspace = 2, tenant = 6 }
  local d = assert(ctx:insert("Finding", { title = "after phase 3", severity = "low",
    status = "open", created_at = "2026-06-01" }))
  lu.assertEquals(d.status, 200)
  lu.assertEquals(db:value("SELECT workspace_id FROM findings WHERE id = ?", d.id), 2)
  ctx:close()
  db:close()
  eng:close()
end

-- Phase 3 leaves NOT NULL to the phase 1.5 triggers, so it refuses to run without them, and
-- changes nothing.
function TestRollout:test_phase3_needs_the_write_triggers()
  local path = through_backfill(200)
  local eng = U.open_engine(path)
  phase(eng, "quarantine_orphans")
  phase(eng, "drop_triggers")
  local db = tg.connect(path)
  local schema = U.schema(db)
  local ok, msg, code = eng:rollout("enforce_constraints")
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED")
  lu.assertStrContains(msg, "enforce_writes")
  lu.assertEquals(U.schema(db), schema)
  phase(eng, "enforce_writes")
  phase(eng, "enforce_constraints")
  db:close()
  eng:close()
end

-- Validation counts audit entries whose workspace differs from their tenant's; once the
-- rollout is done, no raw write the triggers let through may make it fail again.
function TestRollout:test_audit_entry_with_the_wrong_workspace_is_rejected()
  local path = through_backfill(600)
  local eng = U.open_engine(path)
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")
  lu.assertTrue(eng:validate().ok)
  local db = tg.connect(path)
  db:exec("PRAGMA foreign_keys = ON")
  local ok, err = pcall(db.exec, db, "INSERT INTO audit_logs (tenant_id, workspace_id, action, "
    .. "created_at) VALUES (2, 3, 'policy.updated', '2026-01-01')") -- tenant 2 is in workspace 1
  local checks = U.checks(eng:validate())
  lu.assertFalse(ok, "an audit entry for tenant 2 in workspace 3 was accepted; validation now "
    .. "finds workspace_mismatch audit_logs = " .. tostring(checks["workspace_mismatch:audit_logs"]))
  assert_abort(ok, err, "audit_logs", nil, "audit entry with the wrong workspace")
  lu.assertTrue(eng:validate().ok)
  db:close()
  eng:close()
end

-- With no worker, a queued backfill exists but not one row changes.
function TestRollout:test_no_worker_no_change()
  local path = H.refdb(1000)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local db = tg.connect(path)
  local data = U.snapshot(db, { with_engine = true })
  local run = assert(eng:backfill { batch_rows = 10 })
  lu.assertEquals(run.status, "queued")
  lu.assertEquals(run.rows_done, 0)
  lu.assertEquals(run.batches, 0)
  lu.assertTrue(run.rows_total >= 12 * 1000)
  eng:close()
  U.sleep(0.2)
  local again = U.open_engine(path)
  local r = again:run(run.id)
  lu.assertEquals(r.status, "queued")
  lu.assertEquals(r.rows_done, 0)
  lu.assertEquals(r.rows_set, 0)
  lu.assertEquals(r.batches, 0)
  again:close()
  -- only the run's own records are new: the operation run and one audit entry
  U.assert_same(lu, data, U.snapshot(db, { with_engine = true }),
    { allow_new = { audit_logs = true, operation_runs = true } }, "after queueing")
  lu.assertEquals(db:value("SELECT status FROM operation_runs WHERE id = ?", run.operation_run),
    "queued")
  lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_batches"), 0)
  for _, t in ipairs(TABLES) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE workspace_id IS NOT NULL")
      :format(qi(t))), 0, t)
  end
  db:close()
end

-- Rows whose tenant is gone: the run ends completed_with_errors, lists exactly those rows,
-- and quarantine_orphans moves them, every column kept, out of the source tables.
function TestRollout:test_orphans_listed_then_quarantined()
  local path = H.refdb(2000)
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local dry = eng:backfill { dry_run = true }
  local expected, originals, n = {}, {}, 0
  for _, t in ipairs(TABLES) do
    for _, id in ipairs(U.orphan_ids(db, t)) do
      local key = t .. ":" .. id
      expected[key] = db:value(("SELECT tenant_id FROM %s WHERE id = ?"):format(qi(t)), id)
      originals[key] = db:query(("SELECT * FROM %s WHERE id = ?"):format(qi(t)), id)[1]
      n = n + 1
    end
  end
  lu.assertEquals(n, 3 * #TABLES)
  lu.assertEquals(dry.totals.cannot_bind, n)
  for _, c in ipairs(dry.tables) do
    if c.table ~= "audit_logs" then lu.assertEquals(c.samples, U.orphan_ids(db, c.table)) end
  end

  local run = eng:backfill {}
  eng:work {}
  run = eng:run(run.id)
  lu.assertEquals(run.status, "completed_with_errors")
  lu.assertEquals(run.rows_unbound, dry.totals.cannot_bind)
  local listed = {}
  for _, r in ipairs(db:query("SELECT table_name, row_id, tenant_id, reason FROM "
      .. "tenantguard_unbound WHERE run_id = ?", run.id)) do
    lu.assertEquals(r.reason, "tenant_missing")
    listed[r.table_name .. ":" .. r.row_id] = r.tenant_id
  end
  lu.assertEquals(listed, expected)
  local jobs = db:query("SELECT table_name, rows_unbound FROM tenantguard_jobs WHERE run_id = ?",
    run.id)
  for _, j in ipairs(jobs) do
    lu.assertEquals(j.rows_unbound, j.table_name == "audit_logs" and 0 or 3, j.table_name)
  end

  local msg = phase(eng, "quarantine_orphans")
  lu.assertStrContains(msg, tostring(n))
  local quarantined = {}
  for _, q in ipairs(db:query("SELECT * FROM tenantguard_quarantine")) do
    local key = q.table_name .. ":" .. q.row_id
    lu.assertNil(quarantined[key], "quarantined twice: " .. key)
    quarantined[key] = q.tenant_id
    lu.assertEquals(q.reason, "tenant_missing")
    lu.assertEquals(db:value("SELECT json_valid(?)", q.row_json), 1)
    local original = originals[key]
    lu.assertNotNil(original, "not an orphan: " .. key)
    for _, c in ipairs(U.columns(db, q.table_name)) do
      local path_ = '$."' .. c .. '"'
      lu.assertNotNil(db:value("SELECT json_type(?, ?)", q.row_json, path_),
        key .. ": column " .. c .. " missing from the row JSON")
      lu.assertEquals(db:value("SELECT json_extract(?, ?)", q.row_json, path_), original[c],
        key .. ": column " .. c)
    end
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE id = ?"):format(qi(q.table_name)),
      q.row_id), 0, key .. " is still in its table")
  end
  lu.assertEquals(quarantined, expected)
  for _, t in ipairs(TABLES) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s"):format(qi(t))), 2000 - 3, t)
  end
  lu.assertTrue(eng:validate().ok)
  db:close()
  eng:close()
end

-- The run is recorded as an operation run, and each step leaves its audit entry.
function TestRollout:test_operation_run_and_audit_entries()
  local path, eng, run = through_backfill(600)
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")
  local db = tg.connect(path)
  local op = db:query("SELECT * FROM operation_runs WHERE id = ?", run.operation_run)[1]
  lu.assertNotNil(op, "no operation run " .. tostring(run.operation_run))
  lu.assertEquals(op.type, "tenantguard.backfill")
  lu.assertEquals(op.status, "completed_with_errors")
  lu.assertNotNil(op.created_at)
  lu.assertNotNil(op.started_at)
  lu.assertNotNil(op.finished_at)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.rows_set')", op.summary), run.rows_set)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.rows_unbound')", op.summary),
    run.rows_unbound)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.run')", op.summary), run.id)
  lu.assertEquals(db:value("SELECT count(*) FROM operation_runs WHERE type = "
    .. "'tenantguard.backfill'"), 1)

  local function entries(action)
    return db:query("SELECT subject, metadata FROM audit_logs WHERE action = ? ORDER BY id", action)
  end
  local queued = entries("tenantguard.backfill.queued")
  lu.assertEquals(#queued, 1)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.run')", queued[1].metadata), run.id)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.operation_run')", queued[1].metadata),
    run.operation_run)
  local done = {}
  for _, e in ipairs(entries("tenantguard.backfill.table_done")) do
    lu.assertNil(done[e.subject], "table_done twice for " .. e.subject)
    done[e.subject] = true
    lu.assertEquals(db:value("SELECT json_extract(?, '$.run')", e.metadata), run.id)
  end
  for _, t in ipairs(TABLES) do lu.assertTrue(done[t], "no table_done for " .. t) end
  local completed = entries("tenantguard.backfill.completed")
  lu.assertEquals(#completed, 1)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.status')", completed[1].metadata),
    "completed_with_errors")
  lu.assertEquals(db:value("SELECT json_extract(?, '$.rows_set')", completed[1].metadata),
    run.rows_set)
  for _, p in ipairs { "add_columns", "enforce_writes", "quarantine_orphans",
      "enforce_constraints" } do
    lu.assertTrue(#entries("tenantguard.rollout." .. p) >= 1, "no audit entry for " .. p)
  end
  -- the entries the engine writes satisfy the audit invariant themselves
  lu.assertEquals(db:value("SELECT count(*) FROM audit_logs WHERE action LIKE 'tenantguard.%' "
    .. "AND tenant_id IS NOT NULL AND workspace_id IS NULL"), 0)
  db:close()
  eng:close()
end

-- Pause stops the work, resume continues it to the end, cancel is final.
function TestRollout:test_pause_resume_cancel()
  local path = H.refdb(3000)
  local db = tg.connect(path)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local dry = eng:backfill { dry_run = true }
  local run = eng:backfill { batch_rows = 100, batch_ms = 1000 }
  local w = eng:work { max_batches = 2 }
  lu.assertEquals(w.batches, 2)
  lu.assertFalse(w.idle)
  lu.assertEquals(eng:run(run.id).status, "running")
  lu.assertTrue(eng:pause(run.id))
  local paused = eng:run(run.id)
  lu.assertEquals(paused.status, "paused")
  lu.assertEquals(db:value("SELECT status FROM operation_runs WHERE id = ?", run.operation_run),
    "paused")
  local data = U.snapshot(db, { with_engine = true })
  w = eng:work {}
  lu.assertTrue(w.idle)
  lu.assertEquals(w.batches, 0)
  lu.assertEquals(w.rows, 0)
  local rc, out = H.run_tool("worker --db '" .. path .. "' --quiet")
  lu.assertEquals(rc, 0, out)
  U.assert_same(lu, data, U.snapshot(db, { with_engine = true }), { strict_tables = true },
    "a paused run was worked on")
  lu.assertEquals(eng:run(run.id), paused)
  local ok, msg, code = eng:pause(run.id)
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED", msg)

  lu.assertTrue(eng:resume(run.id))
  lu.assertEquals(eng:run(run.id).status, "queued")
  w = eng:work {}
  lu.assertTrue(w.idle)
  lu.assertTrue(w.batches > 0)
  local r = eng:run(run.id)
  lu.assertEquals(r.status, "completed_with_errors")
  lu.assertEquals(r.rows_set, dry.totals.would_set)
  lu.assertEquals(r.rows_unbound, dry.totals.cannot_bind)
  for _, a in ipairs { "pause", "resume" } do
    lu.assertEquals(db:value("SELECT count(*) FROM audit_logs WHERE action = ?",
      "tenantguard.backfill." .. a), 1, a)
  end
  ok, msg, code = eng:cancel(run.id)
  lu.assertNil(ok, "a completed run was cancelled")
  lu.assertEquals(code, "TG_REFUSED", msg)
  db:close()
  eng:close()

  -- cancel
  path = H.refdb(3000)
  db = tg.connect(path)
  eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  dry = eng:backfill { dry_run = true }
  run = eng:backfill { batch_rows = 100, batch_ms = 1000 }
  eng:work { max_batches = 1 }
  lu.assertTrue(eng:cancel(run.id))
  local cancelled = eng:run(run.id)
  lu.assertEquals(cancelled.status, "cancelled")
  lu.assertTrue(cancelled.rows_set > 0)
  lu.assertEquals(db:value("SELECT status FROM operation_runs WHERE id = ?", run.operation_run),
    "cancelled")
  data = U.snapshot(db, { with_engine = true })
  w = eng:work {}
  lu.assertTrue(w.idle)
  lu.assertEquals(w.batches, 0)
  for _, action in ipairs { "resume", "pause", "cancel" } do
    ok, msg, code = eng[action](eng, run.id)
    lu.assertNil(ok, action .. " of a cancelled run")
    lu.assertEquals(code, "TG_REFUSED", msg)
  end
  rc, out = H.run_tool("worker --db '" .. path .. "' --quiet")
  lu.assertEquals(rc, 0, out)
  rc, out = H.run_tool("backfill --db '" .. path .. "' --resume --run " .. run.id)
  lu.assertEquals(rc, 1, out)
  U.assert_same(lu, data, U.snapshot(db, { with_engine = true }), { strict_tables = true },
    "a cancelled run was worked on")
  lu.assertEquals(eng:run(run.id), cancelled)
  lu.assertEquals(db:value("SELECT count(*) FROM audit_logs WHERE action = "
    .. "'tenantguard.backfill.cancel'"), 1)

  -- the forward fix: a new run binds the rest, and the two runs together bound each row once
  local second = eng:backfill {}
  eng:work {}
  second = eng:run(second.id)
  lu.assertEquals(second.status, "completed_with_errors")
  lu.assertEquals(eng:run(run.id).status, "cancelled")
  lu.assertEquals(cancelled.rows_set + second.rows_set, dry.totals.would_set)
  local checks = U.checks(eng:validate())
  for _, t in ipairs(TABLES) do
    lu.assertEquals(checks["null_workspace:" .. t], #U.orphan_ids(db, t), t)
  end
  db:close()
  eng:close()
end

-- drop_columns undoes phase 1 exactly, before phase 3; after phase 3 it is refused.
function TestRollout:test_drop_columns_before_and_after_phase3()
  local path = H.refdb(600)
  local db = tg.connect(path)
  local data = U.snapshot(db)
  local indexes, triggers = U.objects(db, "index"), U.objects(db, "trigger")
  local infos = {}
  for _, t in ipairs(TABLES) do infos[t] = U.table_info(db, t) end
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local run = eng:backfill { batch_rows = 100, batch_ms = 1000 }
  eng:work { max_batches = 3 }
  lu.assertTrue(eng:cancel(run.id))
  phase(eng, "drop_columns")
  for _, t in ipairs(TABLES) do
    lu.assertFalse(U.has_column(db, t, "workspace_id"), t)
    lu.assertEquals(U.table_info(db, t), infos[t], t)
  end
  lu.assertEquals(U.objects(db, "index", true), indexes)
  -- no trigger is left on the twelve tables but the app's own (the audit log's checks do not
  -- depend on the dropped columns; drop_triggers removes them)
  local left = {}
  for _, t in ipairs(TABLES) do
    for _, r in ipairs(db:query("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' "
        .. "AND tbl_name = ?", t)) do
      left[r.name] = r.sql
    end
  end
  lu.assertEquals(left, triggers)
  U.assert_same(lu, data, U.snapshot(db), { tables = TABLES,
    allow_new = { audit_logs = true, operation_runs = true } }, "after drop_columns")

  -- forward to phase 3, where drop_columns is refused and changes nothing
  eng:close()
  local _
  _, eng = through_backfill(nil, path)
  phase(eng, "quarantine_orphans")
  phase(eng, "enforce_constraints")
  local schema = U.schema(db)
  local ok, msg, code = eng:rollout("drop_columns")
  lu.assertNil(ok, "drop_columns after phase 3")
  lu.assertEquals(code, "TG_REFUSED")
  lu.assertIsString(msg)
  lu.assertEquals(U.schema(db), schema)
  for _, t in ipairs(TABLES) do lu.assertTrue(U.has_column(db, t, "workspace_id"), t) end
  lu.assertTrue(eng:validate().ok)
  db:close()
  eng:close()
end

-- ---------------------------------------------------------------------------------------

TestRolloutTool = {}

function TestRolloutTool:tearDown() H.cleanup() end

local function tool(fmt, ...)
  return H.run_tool(fmt:format(...))
end

-- The rollout by the command-line tool: validate exits 1 before and 0 after, and --json is
-- valid JSON.
function TestRolloutTool:test_rollout_by_tool_and_validate_exit_codes()
  local path = H.tmpdir() .. "/ref.db"
  local db = tg.connect(":memory:")
  local rc, out = tool("refdb '%s' --rows 1200", path)
  lu.assertEquals(rc, 0, out)
  rc, out = tool("validate --db '%s'", path)
  lu.assertEquals(rc, 1, out)
  rc, out = tool("validate --db '%s' --json", path)
  lu.assertEquals(rc, 1, out)
  lu.assertEquals(db:value("SELECT json_valid(?)", out), 1, out)
  lu.assertStrContains((out:gsub("%s", "")), '"ok":false')
  lu.assertEquals(db:value("SELECT json_extract(?, '$.ok')", out), 0)

  for _, p in ipairs { "add_columns", "enforce_writes" } do
    rc, out = tool("rollout %s --db '%s'", p, path)
    lu.assertEquals(rc, 0, out)
  end
  rc, out = tool("backfill --db '%s' --dry-run", path)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "nothing was changed")
  rc, out = tool("backfill --db '%s' --dry-run --json", path)
  lu.assertEquals(rc, 0, out)
  lu.assertEquals(db:value("SELECT json_valid(?)", out), 1, out)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.totals.cannot_bind')", out), 2 * #TABLES)
  rc, out = tool("rollout enforce_constraints --db '%s'", path)
  lu.assertEquals(rc, 1, "phase 3 before the backfill: " .. out)
  rc, out = tool("backfill --db '%s' --batch-rows 500", path)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "queued")
  rc, out = tool("backfill --db '%s' --status --json", path)
  lu.assertEquals(rc, 0, out)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.status')", out), "queued", out)
  rc, out = tool("worker --db '%s' --quiet", path)
  lu.assertEquals(rc, 0, out)
  rc, out = tool("backfill --db '%s' --status --json", path)
  lu.assertEquals(db:value("SELECT json_extract(?, '$.status')", out), "completed_with_errors",
    out)
  rc, out = tool("validate --db '%s'", path)
  lu.assertEquals(rc, 1, "orphans are left: " .. out)
  for _, p in ipairs { "quarantine_orphans", "enforce_constraints" } do
    rc, out = tool("rollout %s --db '%s'", p, path)
    lu.assertEquals(rc, 0, out)
  end
  rc, out = tool("validate --db '%s'", path)
  lu.assertEquals(rc, 0, out)
  rc, out = tool("validate --db '%s' --json", path)
  lu.assertEquals(rc, 0, out)
  lu.assertEquals(db:value("SELECT json_valid(?)", out), 1, out)
  lu.assertStrContains((out:gsub("%s", "")), '"ok":true')
  lu.assertEquals(db:value("SELECT json_array_length(?, '$.checks')", out), 2 * #TABLES + 2)
  lu.assertEquals(db:value("SELECT sum(value ->> 'count') FROM json_each(?, '$.checks')", out), 0)
  rc, out = tool("rollout drop_columns --db '%s'", path)
  lu.assertEquals(rc, 1, "drop_columns after phase 3: " .. out)
  rc, out = tool("rollout no_such_phase --db '%s'", path)
  lu.assertNotEquals(rc, 0, out)
  db:close()
end

-- Every rollout command explains itself.
function TestRolloutTool:test_help()
  for _, cmd in ipairs { "rollout", "backfill", "worker", "validate", "refdb" } do
    local rc, out = tool("%s --help", cmd)
    lu.assertEquals(rc, 0, cmd .. ": " .. out)
    lu.assertStrContains(out, "usage: tenantguard " .. cmd)
    if cmd ~= "refdb" then lu.assertStrContains(out, "--db") end
  end
  local _, out = tool("rollout --help")
  for _, p in ipairs { "add_columns", "drop_columns", "enforce_writes", "drop_triggers",
      "quarantine_orphans", "enforce_constraints" } do
    lu.assertStrContains(out, p)
  end
  _, out = tool("backfill --help")
  for _, flag in ipairs { "--dry-run", "--status", "--pause", "--resume", "--cancel" } do
    lu.assertStrContains(out, flag)
  end
  _, out = tool("worker --help")
  for _, flag in ipairs { "--max-seconds", "--max-batches", "--quiet" } do
    lu.assertStrContains(out, flag)
  end
  _, out = tool("validate --help")
  lu.assertStrContains(out, "--json")
end

os.exit(lu.LuaUnit.run())
