-- The rollout on schemas beyond the reference one: timestamps it writes, control messages for
-- each run status, extreme ids, tables whose primary key is not the mapped id column
-- (composite keys, WITHOUT ROWID, text keys, no id column), the schema kept exactly through
-- the phase-3 rebuild, and a quarantine refusal that leaves every table as it was.
local lu = require "luaunit"
local H = require "helpers"
local U = require "rollout_util"
local tg = H.tg

local qi = U.qi

local function phase(eng, name)
  local ok, msg, code = eng:rollout(name)
  lu.assertTrue(ok, ("phase %s failed: %s (%s)"):format(name, tostring(msg), tostring(code)))
  return msg
end

local TS = "^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d$"

local function assert_ts(v, what)
  lu.assertIsString(v, what)
  lu.assertStrMatches(v, TS:sub(2, -2), nil, nil, what .. ": " .. tostring(v))
  lu.assertNotNil(v:match(TS), what .. ": " .. tostring(v))
end

-- A copy of the shipped rules with `extra` appended to residual.lua.
local function rules_with(extra)
  local d = H.shipped_copy()
  H.write(d .. "/residual.lua", H.read(d .. "/residual.lua") .. "\n" .. extra)
  return d
end

local function residual(name, t)
  return ('residual "%s" { table = "%s", likely_surface = "%s list", '
    .. 'why_not_in_first_slice = "Test table." }\n'):format(name, t, name)
end

-- ---------------------------------------------------------------------------------------

TestRolloutSchema = {}

function TestRolloutSchema:tearDown() H.cleanup() end

-- Every timestamp the backfill writes is a real one (the NOW expression was once pasted into
-- a format and came out as "--15 ::").
function TestRolloutSchema:test_run_timestamps_are_valid()
  local path = H.refdb(300)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local run = assert(eng:backfill { batch_rows = 50 })
  assert(eng:work {})
  local db = tg.connect(path)
  run = eng:run(run.id)
  local op = db:query("SELECT * FROM operation_runs WHERE id = ?", run.operation_run)[1]
  assert_ts(op.created_at, "operation run created_at")
  assert_ts(op.started_at, "operation run started_at")
  assert_ts(op.finished_at, "operation run finished_at")
  local r = db:query("SELECT * FROM tenantguard_runs WHERE id = ?", run.id)[1]
  assert_ts(r.created_at, "run created_at")
  assert_ts(r.started_at, "run started_at")
  assert_ts(r.finished_at, "run finished_at")
  for _, j in ipairs(db:query("SELECT * FROM tenantguard_jobs WHERE run_id = ?", run.id)) do
    assert_ts(j.updated_at, "job updated_at " .. j.table_name)
  end
  for _, b in ipairs(db:query("SELECT at FROM tenantguard_batches")) do
    assert_ts(b.at, "batch at")
  end
  for _, a in ipairs(db:query("SELECT created_at FROM audit_logs WHERE action LIKE "
      .. "'tenantguard.%'")) do
    assert_ts(a.created_at, "audit created_at")
  end
  -- a cancelled run's finished_at too
  local second = assert(eng:backfill {})
  lu.assertTrue(eng:cancel(second.id))
  assert_ts(db:value("SELECT finished_at FROM tenantguard_runs WHERE id = ?", second.id),
    "cancelled run finished_at")
  assert_ts(db:value("SELECT finished_at FROM operation_runs WHERE id = ?",
    second.operation_run), "cancelled operation run finished_at")
  db:close()
  eng:close()
end

-- A refused pause, resume or cancel names the run's status, whatever it is.
function TestRolloutSchema:test_control_messages_name_the_status()
  local path = H.refdb(400)
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  local db = tg.connect(path)
  local function refused(run, action, status)
    local ok, msg, code = eng[action](eng, run)
    lu.assertNil(ok, action .. " of a " .. status .. " run")
    lu.assertEquals(code, "TG_REFUSED", msg)
    lu.assertStrContains(msg, ("run %d is %s; cannot %s it"):format(run, status, action))
  end
  local run = assert(eng:backfill { batch_rows = 50 }).id
  refused(run, "resume", "queued")
  eng:work { max_batches = 1 }
  lu.assertEquals(eng:run(run).status, "running")
  refused(run, "resume", "running")
  lu.assertTrue(eng:pause(run))
  refused(run, "pause", "paused")
  lu.assertTrue(eng:cancel(run))
  for _, a in ipairs { "pause", "resume", "cancel" } do refused(run, a, "cancelled") end
  -- completed_with_errors (the reference data has orphans), then completed
  run = assert(eng:backfill {}).id
  eng:work {}
  for _, a in ipairs { "pause", "resume", "cancel" } do
    refused(run, a, "completed_with_errors")
  end
  phase(eng, "quarantine_orphans")
  run = assert(eng:backfill {}).id
  eng:work {}
  lu.assertEquals(eng:run(run).status, "completed")
  for _, a in ipairs { "pause", "resume", "cancel" } do refused(run, a, "completed") end
  -- the status returned by eng:run survives a later failing call on the engine
  local info = eng:run(run)
  eng:pause(run)
  lu.assertEquals(info.status, "completed")
  db:close()
  eng:close()
end

-- Ids at both ends of the 64-bit range and negative ids are walked like any other: bound
-- when their tenant exists, listed as unbound when it does not.
function TestRolloutSchema:test_extreme_ids_are_walked()
  local path = H.refdb(20)
  local db = tg.connect(path)
  local MIN, MAX = math.mininteger, math.maxinteger
  local ins = "INSERT INTO findings (id, tenant_id, title, severity, status, created_at) VALUES "
    .. "(?, ?, 'x', 'low', 'open', '2026-01-01 00:00:00')"
  db:query(ins, MIN, 90007)   -- orphan
  db:query(ins, MIN + 1, 5)   -- bound to workspace 2
  db:query(ins, -5, 9)        -- workspace 3
  db:query(ins, MAX, 90008)   -- orphan
  db:query(ins, MAX - 1, 1)
  local eng = U.open_engine(path)
  local dry = assert(eng:backfill { dry_run = true })
  for _, c in ipairs(dry.tables) do
    if c.table == "findings" then
      lu.assertEquals(c.cannot_bind, 1 + 2) -- row 20 and two of ours
      lu.assertEquals(c.would_set, 20 - 1 + 3)
      lu.assertEquals(c.samples[1], MIN)
    end
  end
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  local run = assert(eng:backfill { batch_rows = 3 })
  assert(eng:work {})
  run = eng:run(run.id)
  lu.assertEquals(run.rows_unbound, dry.totals.cannot_bind)
  lu.assertEquals(run.rows_set, dry.totals.would_set)
  local function ws(id) return db:value("SELECT workspace_id FROM findings WHERE id = ?", id) end
  lu.assertEquals(ws(MIN + 1), 2)
  lu.assertEquals(ws(-5), 3)
  lu.assertEquals(ws(MAX - 1), 1)
  local listed = {}
  for _, r in ipairs(db:query("SELECT row_id FROM tenantguard_unbound WHERE run_id = ? AND "
      .. "table_name = 'findings' ORDER BY row_id", run.id)) do
    listed[#listed + 1] = r.row_id
  end
  lu.assertEquals(listed, { MIN, 20, MAX })
  lu.assertEquals(db:value("SELECT count(*) FROM findings WHERE workspace_id IS NULL"), 3)
  db:close()
  eng:close()
end

-- Tables whose primary key is not the mapped id column, in every phase.
local ODD_SCHEMA = [[
CREATE TABLE tag_links (tenant_id INTEGER NOT NULL, tag TEXT NOT NULL, note TEXT,
  PRIMARY KEY (tenant_id, tag));
CREATE TABLE settings (key TEXT NOT NULL, tenant_id INTEGER NOT NULL, value TEXT,
  PRIMARY KEY (key, tenant_id)) WITHOUT ROWID;
CREATE TABLE event_log (tenant_id INTEGER, message TEXT);
CREATE TABLE labels (id TEXT PRIMARY KEY, tenant_id INTEGER, name TEXT);
]]
local ODD = { "tag_links", "settings", "event_log", "labels" }

local function odd_db(rows)
  local path = H.refdb(20)
  local db = tg.connect(path)
  db:exec(ODD_SCHEMA)
  for n = 1, rows do
    local tenant = n % 10 == 0 and 90000 + n or (n * 5) % 12 + 1
    db:query("INSERT INTO tag_links VALUES (?, ?, 'n')", tenant, "tag-" .. n)
    db:query("INSERT INTO settings VALUES (?, ?, 'v')", ("k%05d"):format(n), tenant)
    db:query("INSERT INTO event_log VALUES (?, 'm')", tenant)
    db:query("INSERT INTO labels VALUES (?, ?, 'l')", ("lab-%05d"):format(n), tenant)
  end
  local rules = rules_with(residual("TagLink", "tag_links") .. residual("Setting", "settings")
    .. residual("EventLog", "event_log") .. residual("Label", "labels"))
  return path, db, rules
end

function TestRolloutSchema:test_tables_without_the_id_key_in_every_phase()
  local rows = 95
  local orphans = rows // 10
  local path, db, rules = odd_db(rows)
  local eng = tg.open { rules = rules, db = path }
  local errors = H.errors(eng:lint())
  lu.assertEquals(errors, {})
  local dry = assert(eng:backfill { dry_run = true })
  local counts = {}
  for _, c in ipairs(dry.tables) do counts[c.table] = c end
  for _, t in ipairs(ODD) do
    lu.assertEquals(counts[t].rows, rows, t)
    lu.assertEquals(counts[t].would_set, rows - orphans, t)
    lu.assertEquals(counts[t].cannot_bind, orphans, t)
  end
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  -- the application's writes still work, and are bound by the triggers
  db:exec("INSERT INTO tag_links (tenant_id, tag) VALUES (5, 'new')")
  db:exec("INSERT INTO settings (key, tenant_id) VALUES ('new', 9)")
  db:exec("INSERT INTO event_log (tenant_id) VALUES (1)")
  db:exec("INSERT INTO labels (id, tenant_id) VALUES ('new', 2)")
  lu.assertEquals(db:value("SELECT workspace_id FROM tag_links WHERE tag = 'new'"), 2)
  lu.assertEquals(db:value("SELECT workspace_id FROM settings WHERE key = 'new'"), 3)
  lu.assertEquals(db:value("SELECT workspace_id FROM event_log WHERE rowid = "
    .. "(SELECT max(rowid) FROM event_log)"), 1)
  lu.assertEquals(db:value("SELECT workspace_id FROM labels WHERE id = 'new'"), 1)
  db:exec("UPDATE tag_links SET note = 'changed' WHERE tag = 'new'")
  db:exec("UPDATE settings SET value = 'changed', workspace_id = NULL WHERE key = 'new'")
  lu.assertEquals(db:value("SELECT workspace_id FROM settings WHERE key = 'new'"), 3)
  db:exec("UPDATE event_log SET message = 'changed' WHERE tenant_id = 1")
  db:exec("UPDATE labels SET name = 'changed' WHERE id = 'new'")
  -- and the triggers still refuse what they must
  local ok, err = pcall(db.exec, db, "INSERT INTO settings (key, tenant_id, workspace_id) "
    .. "VALUES ('bad', 9, 1)")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "settings")
  ok, err = pcall(db.exec, db, "UPDATE tag_links SET tenant_id = 6 WHERE tag = 'new'")
  lu.assertFalse(ok)
  lu.assertStrContains(err, "tenant_immutable")

  local run = assert(eng:backfill { batch_rows = 7 })
  local w = assert(eng:work {})
  lu.assertTrue(w.idle)
  run = eng:run(run.id)
  lu.assertEquals(run.status, "completed_with_errors")
  lu.assertEquals(run.rows_unbound, dry.totals.cannot_bind)
  for _, t in ipairs(ODD) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE workspace_id IS NULL"):format(qi(t))),
      orphans, t)
    lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_unbound WHERE run_id = ? AND "
      .. "table_name = ?", run.id, t), orphans, t)
  end
  local checks = U.checks(eng:validate())
  for _, t in ipairs(ODD) do
    lu.assertEquals(checks["null_workspace:" .. t], orphans, t)
    lu.assertEquals(checks["workspace_mismatch:" .. t], 0, t)
  end
  phase(eng, "quarantine_orphans")
  for _, t in ipairs(ODD) do
    lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_quarantine WHERE table_name = ?", t),
      orphans, t)
    lu.assertEquals(db:value(("SELECT count(*) FROM %s"):format(qi(t))), rows + 1 - orphans, t)
  end
  lu.assertTrue(eng:validate().ok)
  phase(eng, "enforce_constraints")
  lu.assertTrue(eng:validate().ok)
  for _, t in ipairs(ODD) do
    U.assert_workspace_never_null(lu, db, t, "workspace_id", "tenant_id")
  end
  lu.assertEquals(db:value("SELECT count(*) FROM sqlite_schema WHERE name = 'settings' AND "
    .. "sql LIKE '%WITHOUT ROWID'"), 1)
  db:exec("INSERT INTO settings (key, tenant_id, workspace_id) VALUES ('after', 9, 3)")
  db:exec("UPDATE tag_links SET note = 'after' WHERE tag = 'new'")
  db:close()
  eng:close()
end

-- The backfill walks text keys (a WITHOUT ROWID table keyed by text only) to the end, and a
-- second run finds nothing left; the worker never spins.
function TestRolloutSchema:test_text_keys_are_walked_to_the_end()
  local path = H.refdb(20)
  local db = tg.connect(path)
  db:exec("CREATE TABLE slugs (slug TEXT PRIMARY KEY, tenant_id INTEGER NOT NULL) WITHOUT ROWID")
  for n = 1, 250 do db:query("INSERT INTO slugs VALUES (?, ?)", "s" .. n, n % 12 + 1) end
  local eng = tg.open { rules = rules_with(residual("Slug", "slugs")), db = path }
  phase(eng, "add_columns")
  local run = assert(eng:backfill { batch_rows = 10 })
  local w = assert(eng:work { max_batches = 500 })
  lu.assertTrue(w.idle, "the worker did not finish")
  lu.assertEquals(eng:run(run.id).status, "completed_with_errors")
  lu.assertEquals(db:value("SELECT count(*) FROM slugs WHERE workspace_id IS NULL"), 0)
  db:close()
  eng:close()
end

-- A table whose rows cannot be addressed (every name of the rowid is a column, and there is
-- no primary key) is refused before anything is queued or installed, with a message naming it.
-- Workspaces keyed by text slugs, some of them all digits: the new workspace column takes
-- the workspaces' key type, so "42" stays the text "42" through every phase and still equals
-- its workspace (in an INTEGER column it would become 42 and never match again).
function TestRolloutSchema:test_workspace_column_takes_the_key_type()
  local dir = H.tmpdir()
  local path = dir .. "/slugs.db"
  local db = tg.connect(path)
  db:exec [[
CREATE TABLE workspaces (id TEXT PRIMARY KEY);
CREATE TABLE tenants (id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id));
CREATE TABLE workspace_memberships (user_id TEXT, workspace_id TEXT, role TEXT);
CREATE TABLE tenant_memberships (user_id TEXT, tenant_id TEXT, role TEXT);
CREATE TABLE notes (id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, body TEXT);
CREATE TABLE marks (id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, v TEXT) STRICT;
INSERT INTO workspaces VALUES ('42'), ('acme');
INSERT INTO tenants VALUES ('7', '42'), ('t-acme', 'acme');
INSERT INTO workspace_memberships VALUES ('u1', '42', 'owner');
INSERT INTO tenant_memberships VALUES ('u1', '7', NULL);
INSERT INTO notes VALUES ('n1', '7', 'a'), ('n2', 't-acme', 'b');
INSERT INTO marks (tenant_id, v) VALUES ('7', 'x');
]]
  local rules = H.rule_dir {
    ["app.lua"] = 'app { name = "slugs", operation_runs = false, audit_logs = false }\n',
    ["roles.lua"] = 'capabilities { "n.view" }\nrole "owner" { "*" }\n',
    ["families.lua"] = [[
family "Note" { table = "notes", primary_surface = "NoteResource",
  search_posture = "not_applicable", action_surface_status = "declared",
  paths = { index = { capability = "n.view" }, detail = { capability = "n.view" } } }
residual "Mark" { table = "marks", likely_surface = "marks", why_not_in_first_slice = "test" }
]] }
  local eng = tg.open { db = path, rules = rules }
  phase(eng, "add_columns")
  lu.assertEquals(db:value("SELECT type FROM pragma_table_info('notes') WHERE name = "
    .. "'workspace_id'"), "TEXT")
  lu.assertEquals(db:value("SELECT type FROM pragma_table_info('marks') WHERE name = "
    .. "'workspace_id'"), "TEXT")
  phase(eng, "enforce_writes")
  assert(eng:backfill {})
  assert(eng:work {})
  lu.assertTrue(eng:validate().ok)
  phase(eng, "enforce_constraints")
  lu.assertTrue(eng:validate().ok)
  db:exec("INSERT INTO notes (id, tenant_id, body) VALUES ('n3', '7', 'raw')")
  lu.assertEquals(db:query("SELECT id, workspace_id, typeof(workspace_id) AS t FROM notes "
    .. "WHERE tenant_id = '7' ORDER BY id"), {
      { id = "n1", workspace_id = "42", t = "text" },
      { id = "n3", workspace_id = "42", t = "text" } })
  lu.assertEquals(db:value("SELECT typeof(workspace_id) FROM marks"), "text")
  local ctx = eng:context { user = "u1", workspace = "42", tenant = "7" }
  local d = ctx:resolve { family = "Note", path = "detail", id = "n1" }
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(#ctx:resolve { family = "Note", path = "index" }.records, 2)
  ctx:close()
  eng:close()
  db:close()
end

function TestRolloutSchema:test_unwalkable_table_is_refused_up_front()
  local path = H.refdb(20)
  local db = tg.connect(path)
  db:exec("CREATE TABLE shadowed (rowid INTEGER, _rowid_ INTEGER, oid INTEGER, "
    .. "tenant_id INTEGER)")
  db:exec("INSERT INTO shadowed VALUES (1, 1, 1, 1), (1, 1, 1, 2)")
  local eng = tg.open { rules = rules_with(residual("Shadowed", "shadowed")), db = path }
  phase(eng, "add_columns")
  local triggers = U.objects(db, "trigger")
  local ok, msg, code = eng:rollout("enforce_writes")
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED", msg)
  lu.assertStrContains(msg, "shadowed")
  lu.assertEquals(U.objects(db, "trigger"), triggers, "triggers installed by a refused phase")
  local runs = db:value("SELECT count(*) FROM operation_runs")
  local run
  run, msg, code = eng:backfill {}
  lu.assertNil(run)
  lu.assertEquals(code, "TG_REFUSED", msg)
  lu.assertStrContains(msg, "shadowed")
  lu.assertStrContains(msg, "cannot be walked")
  lu.assertEquals(db:value("SELECT count(*) FROM operation_runs"), runs)
  local w = assert(eng:work {})
  lu.assertTrue(w.idle)
  lu.assertEquals(w.batches, 0)
  db:close()
  eng:close()
end

-- drop_columns undoes phase 1 on such tables too.
function TestRolloutSchema:test_drop_columns_on_tables_without_the_id_key()
  local path, db, rules = odd_db(10)
  local before = U.schema(db)
  local eng = tg.open { rules = rules, db = path }
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  phase(eng, "drop_triggers")
  phase(eng, "drop_columns")
  local after = U.schema(db, function(r) return not r.tbl_name:match("^tenantguard_") end)
  lu.assertEquals(after, before)
  db:close()
  eng:close()
end

-- Phase 3 keeps the application's schema exactly as it was, except for the intended changes.
local RICH_SCHEMA = [[
CREATE INDEX policies_platform ON policies(platform) WHERE platform IS NOT NULL;
CREATE INDEX policies_lower_name ON policies(lower(display_name));
CREATE TABLE policy_tags (tag TEXT NOT NULL, tenant_id INTEGER NOT NULL,
  policy_id INTEGER REFERENCES policies(id), PRIMARY KEY (tag, tenant_id)) WITHOUT ROWID;
CREATE TABLE strict_notes (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, body TEXT,
  body_len INTEGER GENERATED ALWAYS AS (length(body)) VIRTUAL,
  body_upper TEXT GENERATED ALWAYS AS (upper(body)) STORED) STRICT;
CREATE TABLE note_refs (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES strict_notes(id)
  ON DELETE CASCADE, tag TEXT);
CREATE VIEW policy_names AS SELECT id, tenant_id, display_name FROM policies;
CREATE TRIGGER policy_names_insert INSTEAD OF INSERT ON policy_names BEGIN
  INSERT INTO policies (id, tenant_id, workspace_id, display_name, policy_type, created_at)
    VALUES (NEW.id, NEW.tenant_id, (SELECT workspace_id FROM tenants WHERE id = NEW.tenant_id),
      NEW.display_name, 'viaView', '2026-01-01 00:00:00');
END;
CREATE TRIGGER policy_names_update INSTEAD OF UPDATE ON policy_names BEGIN
  UPDATE policies SET display_name = NEW.display_name WHERE id = OLD.id;
END;
CREATE VIEW note_view AS SELECT n.id, n.body, r.tag FROM strict_notes n LEFT JOIN note_refs r
  ON r.note_id = n.id;
CREATE TRIGGER note_view_insert INSTEAD OF INSERT ON note_view BEGIN
  INSERT INTO strict_notes (id, tenant_id, workspace_id, body) VALUES (NEW.id, 1, 1, NEW.body);
END;
CREATE TRIGGER strict_notes_touch AFTER UPDATE ON strict_notes BEGIN
  UPDATE note_refs SET tag = 'touched' WHERE note_id = NEW.id;
END;
]]

local function schema_rows(db)
  local out = {}
  for _, r in ipairs(db:query("SELECT type, name, tbl_name, sql FROM sqlite_schema")) do
    out[r.name] = r
  end
  return out
end

function TestRolloutSchema:test_rebuild_keeps_the_schema_exactly()
  local path = H.refdb(200)
  local db = tg.connect(path)
  db:exec(RICH_SCHEMA)
  for n = 1, 30 do
    db:query("INSERT INTO policy_tags VALUES (?, ?, ?)", "t" .. n, n % 12 + 1, n)
    db:query("INSERT INTO strict_notes (id, tenant_id, body) VALUES (?, ?, ?)", n, n % 12 + 1,
      "note " .. n)
    db:query("INSERT INTO note_refs (note_id, tag) VALUES (?, 'a')", n)
  end
  local rules = rules_with(residual("PolicyTag", "policy_tags")
    .. residual("StrictNote", "strict_notes"))
  local eng = tg.open { rules = rules, db = path }
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  assert(eng:backfill {})
  assert(eng:work {})
  phase(eng, "quarantine_orphans")
  local before = schema_rows(db)
  local targets = { policy_tags = true, strict_notes = true, audit_logs = true }
  for _, t in ipairs(U.TABLES) do targets[t] = true end
  local infos, fks = {}, {}
  for t in pairs(targets) do
    infos[t] = U.table_info(db, t, { workspace_id = true })
    fks[t] = {}
    for _, f in ipairs(db:query("SELECT \"table\", \"from\", \"to\", on_delete FROM "
        .. "pragma_foreign_key_list(?)", t)) do
      fks[t][#fks[t] + 1] = ("%s.%s->%s %s"):format(f.table, f.from, tostring(f.to), f.on_delete)
    end
  end
  local xinfo = db:query("SELECT name, hidden FROM pragma_table_xinfo('strict_notes') ORDER BY cid")
  local data = U.snapshot(db, { with_engine = true })

  phase(eng, "enforce_constraints")

  local after = schema_rows(db)
  for name, b in pairs(before) do
    local a = after[name]
    lu.assertNotNil(a, ("%s %s is gone"):format(b.type, name))
    lu.assertEquals(a.type, b.type, name)
    lu.assertEquals(a.tbl_name, b.tbl_name, name)
    if not (b.type == "table" and targets[name]) then
      lu.assertEquals(a.sql, b.sql, name .. ": definition changed")
    end
  end
  for name, a in pairs(after) do
    if not before[name] then
      lu.assertEquals(name, "tenantguard_tenants_id_workspace", "new schema entry")
    end
  end
  for t in pairs(targets) do
    lu.assertEquals(U.table_info(db, t, { workspace_id = true }), infos[t], t .. ": columns")
    local now = {}
    for _, f in ipairs(db:query("SELECT \"table\", \"from\", \"to\", on_delete FROM "
        .. "pragma_foreign_key_list(?)", t)) do
      now[("%s.%s->%s %s"):format(f.table, f.from, tostring(f.to), f.on_delete)] = true
    end
    for _, f in ipairs(fks[t]) do lu.assertTrue(now[f], t .. ": foreign key lost: " .. f) end
  end
  lu.assertStrContains(after.policy_tags.sql, "WITHOUT ROWID")
  lu.assertStrContains(after.strict_notes.sql, "STRICT")
  lu.assertEquals(db:query("SELECT name, hidden FROM pragma_table_xinfo('strict_notes') "
    .. "ORDER BY cid"), xinfo)
  U.assert_same(lu, data, U.snapshot(db, { with_engine = true }),
    { allow_new = { audit_logs = true }, strict_tables = true }, "rows after the rebuild")
  lu.assertEquals(db:value("PRAGMA integrity_check"), "ok")
  lu.assertEquals(db:query("PRAGMA foreign_key_check"), {})

  -- the application's writes through its views still work
  db:exec("INSERT INTO policy_names (id, tenant_id, display_name) VALUES (100000, 1, 'v')")
  lu.assertEquals(db:value("SELECT policy_type FROM policies WHERE id = 100000"), "viaView")
  lu.assertEquals(db:value("SELECT workspace_id FROM policies WHERE id = 100000"), 1)
  db:exec("UPDATE policy_names SET display_name = 'w' WHERE id = 100000")
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = 100000"), "w")
  db:exec("INSERT INTO note_view (id, body) VALUES (500, 'hello')")
  lu.assertEquals(db:value("SELECT body_upper FROM strict_notes WHERE id = 500"), "HELLO")
  db:exec("UPDATE strict_notes SET body = 'x' WHERE id = 1")
  lu.assertEquals(db:value("SELECT tag FROM note_refs WHERE note_id = 1"), "touched")
  -- foreign keys in both directions still hold
  db:exec("PRAGMA foreign_keys = ON")
  local ok = pcall(db.exec, db, "INSERT INTO note_refs (note_id) VALUES (999999)")
  lu.assertFalse(ok, "a reference to a missing note was accepted")
  db:exec("DELETE FROM strict_notes WHERE id = 2")
  lu.assertEquals(db:value("SELECT count(*) FROM note_refs WHERE note_id = 2"), 0)
  ok = pcall(db.exec, db, "INSERT INTO policy_tags (tag, tenant_id, policy_id, workspace_id) "
    .. "VALUES ('z', 1, 999999, 1)")
  lu.assertFalse(ok, "a tag of a missing policy was accepted")
  db:close()
  eng:close()
end

-- A refused quarantine leaves every table exactly as it was.
function TestRolloutSchema:test_refused_quarantine_changes_nothing()
  local path = H.refdb(600)
  local db = tg.connect(path)
  -- a table outside the rules whose rows go with an orphan policy (a cascade)
  db:exec("CREATE TABLE policy_notes (id INTEGER PRIMARY KEY, policy_id INTEGER "
    .. "REFERENCES policies(id) ON DELETE CASCADE, body TEXT)")
  db:exec("INSERT INTO policy_notes (policy_id, body) VALUES (500, 'of an orphan')")
  local eng = U.open_engine(path)
  phase(eng, "add_columns")
  phase(eng, "enforce_writes")
  assert(eng:backfill {})
  assert(eng:work {})
  local data = U.snapshot(db, { with_engine = true })
  local ok, msg, code = eng:rollout("quarantine_orphans")
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REFUSED", msg)
  lu.assertStrContains(msg, "policies")
  U.assert_same(lu, data, U.snapshot(db, { with_engine = true }), { strict_tables = true },
    "a refused quarantine changed rows")
  db:close()
  eng:close()
end

os.exit(lu.LuaUnit.run())
