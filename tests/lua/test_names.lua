-- Names per table and an application without tables of tenantguard's liking: families,
-- residuals and exceptions with their own id, tenant and workspace columns (every access
-- path, writes, triggers, every rollout phase, the backfill, validation, the matrix, the
-- CLI); drift found by a foreign key to the tenants table or by any tenant column name the
-- rules use; a family keyed on a column that is not unique; and no operation_runs or
-- audit_logs table at all (tenantguard keeps its own runs and audit).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg
local U = require "rollout_util"

-- A helpdesk: no table uses the reference names, no operation_runs, no audit_logs.
local SCHEMA = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL DEFAULT 'w');
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL
  REFERENCES workspaces(id), name TEXT);
CREATE TABLE workspace_memberships (user_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL,
  role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER NOT NULL, tenant_id INTEGER NOT NULL);
CREATE TABLE tickets (ticket_id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL,
  subject TEXT NOT NULL DEFAULT '');
CREATE TABLE comments (id INTEGER PRIMARY KEY, acct INTEGER NOT NULL, ticket INTEGER,
  body TEXT NOT NULL DEFAULT '');
CREATE TABLE ticket_tags (ticket_id INTEGER NOT NULL, tag TEXT NOT NULL,
  account_id INTEGER NOT NULL, PRIMARY KEY (ticket_id, tag)) WITHOUT ROWID;
CREATE TABLE alerts (alert_id INTEGER PRIMARY KEY, org INTEGER, account_id INTEGER,
  note TEXT);
]]

local RULES = {
  ["app.lua"] = [[
app {
  name = "helpdesk",
  columns = { tenant = "account_id", workspace = "org_id" },
}
]],
  ["roles.lua"] = [[
capabilities { "ticket.view", "ticket.edit", "alert.view" }
role "agent" { "*" }
role "reader" { "ticket.view" }
]],
  ["families.lua"] = [[
family "Ticket" {
  table = "tickets",
  columns = { id = "ticket_id" },
  primary_surface = "TicketResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "ticket.view" },
    detail = { capability = "ticket.view" },
    row_action = { capability = "ticket.edit" },
    bulk_action = { capability = "ticket.edit" },
  },
  fixture = { subject = "s" },
}
family "Comment" {
  table = "comments",
  columns = { tenant = "acct", workspace = "ws" },
  primary_surface = "CommentResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "ticket.view" },
    detail = { capability = "ticket.view" },
    row_action = { capability = "ticket.edit" },
    relation_manager = { owner = "Ticket", via = "ticket", capability = "ticket.view" },
  },
  fixture = { body = "b" },
}
]],
  ["residual.lua"] = [[
residual "TicketTag" {
  table = "ticket_tags",
  columns = { id = "tag" },
  why_not_in_first_slice = "composite key",
}
]],
  ["exceptions.lua"] = [[
exception "AlertFeed" {
  exception_kind = "workspace_admin_canonical_viewer",
  table = "alerts",
  columns = { id = "alert_id", workspace = "org" },
  why_excepted = "workspace admins watch alerts",
  still_required_checks = { "workspace_member", "capability" },
  capability = "alert.view",
}
]],
}

local function rule_dir(over)
  local d = H.tmpdir() .. "/rules"
  assert(os.execute("mkdir -p '" .. d .. "'"))
  for name, text in pairs(RULES) do
    local v = over and over[name]
    if v == nil then v = text end
    if v then H.write(d .. "/" .. name, v) end
  end
  for name, text in pairs(over or {}) do
    if not RULES[name] and text then H.write(d .. "/" .. name, text) end
  end
  return d
end

-- The helpdesk database: 2 workspaces, 4 tenants (1, 2 in workspace 1; 3, 4 in 2), user 7
-- an agent of workspace 1 entitled to tenants 1 and 2, and rows in every table.
local function make_db(extra)
  local path = H.tmpdir() .. "/helpdesk.db"
  local db = tg.connect(path)
  db:exec(SCHEMA .. (extra or ""))
  db:exec([[
INSERT INTO workspaces (id) VALUES (1), (2);
INSERT INTO tenants (id, workspace_id) VALUES (1, 1), (2, 1), (3, 2), (4, 2);
INSERT INTO workspace_memberships VALUES (7, 1, 'agent'), (8, 1, 'reader');
INSERT INTO tenant_memberships VALUES (7, 1), (7, 2), (8, 1);
]])
  for i = 1, 40 do
    local t = (i - 1) % 4 + 1
    db:query("INSERT INTO tickets (ticket_id, account_id, subject) VALUES (?, ?, ?)", 100 + i,
      t, "ticket " .. i)
    db:query("INSERT INTO comments (id, acct, ticket, body) VALUES (?, ?, ?, ?)", i, t, 100 + i,
      "comment " .. i)
    db:query("INSERT INTO ticket_tags VALUES (?, 'urgent', ?), (?, 'billing', ?)", 100 + i, t,
      100 + i, t)
    db:query("INSERT INTO alerts (alert_id, org, account_id, note) VALUES (?, ?, ?, 'a')",
      500 + i, (t - 1) // 2 + 1, t)
  end
  db:close()
  return path
end

local function describe(fs)
  local out = {}
  for _, f in ipairs(fs) do
    out[#out + 1] = ("%s %s %s:%s %s"):format(f.level, f.code, tostring(f.file),
      tostring(f.line), f.message)
  end
  return table.concat(out, "\n")
end

local function phase(eng, name)
  local ok, msg, code = eng:rollout(name)
  lu.assertTrue(ok, ("phase %s failed: %s (%s)"):format(name, tostring(msg), tostring(code)))
  return msg
end

local function has_table(db, t)
  return db:value("SELECT count(*) FROM sqlite_schema WHERE name = ?", t) == 1
end

local function raw_fails(db, sql, want, ...)
  local ok, err = pcall(db.query, db, sql, ...)
  lu.assertFalse(ok, "raw SQL was accepted: " .. sql)
  lu.assertStrContains(tostring(err), want)
end

TestNames = {}

function TestNames:tearDown() H.cleanup() end

-- The rules lint clean against the helpdesk: its own column names, no app tables for runs or
-- audit entries; the rule model shows each table's columns.
function TestNames:test_lints_clean_and_model_shows_columns()
  local dir, path = rule_dir(), make_db()
  local fs = tg.check { rules = dir, db = path }
  lu.assertEquals(#fs, 0, describe(fs))
  local eng = tg.open { rules = dir }
  local r = eng:rules()
  lu.assertEquals(r.families[1].columns, { id = "ticket_id", tenant = "account_id",
    workspace = "org_id" })
  lu.assertEquals(r.families[2].columns, { id = "id", tenant = "acct", workspace = "ws" })
  lu.assertEquals(r.residuals[1].columns, { id = "tag", tenant = "account_id",
    workspace = "org_id" })
  lu.assertEquals(r.exceptions[1].columns, { id = "alert_id", tenant = "account_id",
    workspace = "org" })
  eng:close()
end

-- A decisions-only engine on a schema without operation_runs or audit_logs opens and
-- decides on every path, by each table's own key, and writes nothing of its own.
function TestNames:test_read_only_engine_needs_no_app_tables()
  local dir, path = rule_dir(), make_db()
  local eng = tg.open { rules = dir, db = path }
  local ctx = eng:context { user = 7, workspace = 1, tenant = 1 }
  local d = ctx:resolve { family = "Ticket", path = "detail", id = 101 }
  lu.assertEquals(d.status, 200, d.reason)
  lu.assertEquals(d.record.ticket_id, 101)
  lu.assertEquals(ctx:resolve { family = "Ticket", path = "detail", id = 102 }.status, 404)
  local idx = ctx:resolve { family = "Ticket", path = "index", limit = 100 }
  lu.assertEquals(idx.status, 200, idx.reason)
  lu.assertEquals(#idx.records, 10)
  for _, rec in ipairs(idx.records) do lu.assertEquals(rec.account_id, 1) end
  d = ctx:resolve { family = "Comment", path = "detail", id = 1 }
  lu.assertEquals(d.status, 200, d.reason)
  lu.assertEquals(d.record.acct, 1)
  lu.assertEquals(ctx:resolve { family = "Comment", path = "detail", id = 2 }.status, 404)
  d = ctx:resolve { family = "Comment", path = "relation_manager", owner = 101 }
  lu.assertEquals(d.status, 200, d.reason)
  lu.assertEquals(#d.records, 1)
  lu.assertEquals(ctx:resolve { family = "Comment", path = "relation_manager",
    owner = 102 }.status, 404)
  d = ctx:resolve { family = "Ticket", path = "bulk_action", ids = { 101, 105 },
    capability = "ticket.edit" }
  lu.assertEquals(d.status, 200, d.reason)
  lu.assertEquals(ctx:resolve { family = "Ticket", path = "bulk_action", ids = { 101, 102 },
    capability = "ticket.edit" }.status, 404)
  ctx:close()
  eng:close()
  local db = tg.connect(path)
  for _, t in ipairs { "operation_runs", "audit_logs", "tenantguard_audit", "tenantguard_runs" } do
    lu.assertFalse(has_table(db, t), t .. " was created by a read-only engine")
  end
  db:close()
end

-- An app mapping written out explicitly and missing in the database stays an error; false
-- says the app has none.
function TestNames:test_explicit_mapping_missing_is_an_error()
  local path = make_db()
  local dir = rule_dir { ["app.lua"] = [[
app {
  name = "helpdesk",
  columns = { tenant = "account_id", workspace = "org_id" },
  operation_runs = { table = "job_runs" },
  audit_logs = false,
}
]] }
  local fs = tg.check { rules = dir, db = path }
  local missing = H.with_code(fs, "missing_table")
  lu.assertEquals(#missing, 1, describe(fs))
  lu.assertStrContains(missing[1].message, "'job_runs'")
  local ok, err = pcall(tg.open, { rules = dir, db = path })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "job_runs")
  dir = rule_dir { ["app.lua"] = [[
app {
  name = "helpdesk",
  columns = { tenant = "account_id", workspace = "org_id" },
  operation_runs = false,
  audit_logs = false,
}
]] }
  fs = tg.check { rules = dir, db = path }
  lu.assertEquals(#fs, 0, describe(fs))
  local eng = tg.open { rules = dir }
  lu.assertNil(eng:rules().app.audit_logs.table)
  eng:close()
  -- `true` is not a mapping
  dir = rule_dir { ["app.lua"] = 'app { name = "h", audit_logs = true }\n' }
  fs = tg.check { rules = dir }
  lu.assertEquals(#H.with_code(fs, "bad_value"), 1, describe(fs))
end

-- Every rollout phase, the backfill (dry run, queue, worker) and validation on the helpdesk:
-- each table gets its own workspace column, the triggers and refusals name the app's
-- columns, the runs and audit entries go to tenantguard's own tables, the matrix passes.
function TestNames:test_full_rollout_without_app_tables()
  local dir, path = rule_dir(), make_db()
  local db = tg.connect(path)
  -- an orphan comment, for quarantine_orphans
  db:exec("INSERT INTO comments (id, acct, ticket, body) VALUES (999, 77, NULL, 'orphan')")
  local eng = tg.open { rules = dir, db = path }

  -- phase 1, undone and done again
  phase(eng, "add_columns")
  lu.assertTrue(db:value("SELECT count(*) FROM pragma_table_info('tickets') WHERE name = "
    .. "'org_id'") == 1)
  lu.assertTrue(db:value("SELECT count(*) FROM pragma_table_info('comments') WHERE name = "
    .. "'ws'") == 1)
  lu.assertTrue(db:value("SELECT count(*) FROM pragma_table_info('ticket_tags') WHERE name = "
    .. "'org_id'") == 1)
  lu.assertEquals(db:value("SELECT count(*) FROM pragma_table_info('comments') WHERE name IN "
    .. "('workspace_id', 'org_id')"), 0)
  lu.assertTrue(has_table(db, "tenantguard_audit"))
  lu.assertFalse(has_table(db, "audit_logs"))
  phase(eng, "drop_columns")
  lu.assertEquals(db:value("SELECT count(*) FROM pragma_table_info('comments') WHERE name = "
    .. "'ws'"), 0)
  phase(eng, "add_columns")

  -- phase 1.5, its triggers naming each table's columns
  phase(eng, "enforce_writes")
  phase(eng, "drop_triggers")
  lu.assertEquals(db:value("SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'"), 0)
  phase(eng, "enforce_writes")
  raw_fails(db, "UPDATE tickets SET account_id = 2 WHERE ticket_id = 101",
    "tenantguard: tickets: account_id can never change [tenant_immutable]")
  raw_fails(db, "UPDATE comments SET acct = 2 WHERE id = 1",
    "tenantguard: comments: acct can never change [tenant_immutable]")
  raw_fails(db, "INSERT INTO comments (acct, ws, body) VALUES (1, 2, 'x')",
    "tenantguard: comments: acct must name an existing tenant and ws must equal")
  raw_fails(db, "UPDATE tickets SET org_id = 2 WHERE ticket_id = 101",
    "tenantguard: tickets: org_id must equal the workspace")
  db:exec("INSERT INTO comments (id, acct, ticket, body) VALUES (1000, 3, 103, 'raw')")
  lu.assertEquals(db:value("SELECT ws FROM comments WHERE id = 1000"), 2)

  -- writes through a context: the workspace derived into the table's own column
  local ctx = eng:context { user = 7, workspace = 1, tenant = 2 }
  local ok, err = ctx:insert("Comment", { acct = 2, ticket = 102, body = "via ctx" })
  lu.assertNotNil(ok, err)
  lu.assertEquals(db:value("SELECT ws FROM comments WHERE body = 'via ctx'"), 1)
  local bad, msg = ctx:insert("Comment", { acct = 2, ws = 2, body = "wrong ws" })
  lu.assertNil(bad)
  lu.assertStrContains(msg, "comments.ws = 2 disagrees")
  bad, msg = ctx:update("Ticket", 102, { account_id = 1 })
  lu.assertNil(bad)
  lu.assertStrContains(msg, "tickets.account_id can never change")
  lu.assertNotNil(ctx:update("Ticket", 102, { subject = "renamed" }))
  ctx:close()

  -- the backfill: dry run, queue (no app operation run), worker
  local dry = assert(eng:backfill { dry_run = true })
  local by = {}
  for _, c in ipairs(dry.tables) do by[c.table] = c end
  lu.assertEquals(by.tickets.rows, 40)
  lu.assertEquals(by.tickets.would_set, 39) -- ticket 102 was bound by its update
  lu.assertEquals(by.tickets.correct, 1)
  lu.assertEquals(by.ticket_tags.rows, 80)
  lu.assertEquals(by.comments.cannot_bind, 1)
  lu.assertNil(by.audit_logs)
  lu.assertNil(by.tenantguard_audit)
  local v = eng:validate()
  lu.assertFalse(v.ok)
  local run = assert(eng:backfill { batch_rows = 7 })
  lu.assertEquals(db:value("SELECT count(*) FROM comments WHERE ws IS NULL"), 41,
    "rows changed with no worker running")
  lu.assertTrue(eng:work {}.idle)
  local info = eng:run(run.id)
  lu.assertEquals(info.status, "completed_with_errors")
  lu.assertEquals(db:value("SELECT count(*) FROM tickets WHERE org_id IS NULL"), 0)
  lu.assertEquals(db:value("SELECT count(*) FROM ticket_tags WHERE org_id IS NULL"), 0)
  lu.assertEquals(db:value("SELECT count(*) FROM comments WHERE ws IS NULL"), 1)
  lu.assertEquals(db:value("SELECT row_id FROM tenantguard_unbound WHERE table_name = "
    .. "'comments'"), 999)

  -- phase 3 refuses while a row is unbound, then quarantine and enforce
  local refused, why = eng:rollout("enforce_constraints")
  lu.assertNil(refused)
  lu.assertStrContains(why, "null_workspace comments: 1")
  phase(eng, "quarantine_orphans")
  lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_quarantine WHERE table_name = "
    .. "'comments'"), 1)
  v = eng:validate()
  lu.assertTrue(v.ok)
  for _, c in ipairs(v.checks) do
    lu.assertNotEquals(c.table, "tenantguard_audit")
    lu.assertNotEquals(c.table, "audit_logs")
  end
  phase(eng, "enforce_constraints")
  U.assert_workspace_never_null(lu, db, "comments", "ws", "acct")
  lu.assertEquals(db:value("SELECT count(*) FROM pragma_foreign_key_list('comments') WHERE "
    .. "\"from\" = 'acct' AND \"to\" = 'id' AND \"table\" = 'tenants'"), 1)
  raw_fails(db, "INSERT INTO ticket_tags (ticket_id, tag, account_id, org_id) VALUES "
    .. "(101, 'x', 1, 2)", "ticket_tags: account_id must name an existing tenant and org_id must equal")
  lu.assertTrue(eng:validate().ok)

  -- tenantguard's own records: the run, and an audit entry for every phase
  lu.assertFalse(has_table(db, "audit_logs"))
  lu.assertFalse(has_table(db, "operation_runs"))
  local actions = {}
  for _, r in ipairs(db:query("SELECT action FROM tenantguard_audit")) do
    actions[r.action] = (actions[r.action] or 0) + 1
  end
  for _, a in ipairs { "tenantguard.rollout.add_columns", "tenantguard.rollout.drop_columns",
      "tenantguard.rollout.enforce_writes", "tenantguard.rollout.drop_triggers",
      "tenantguard.backfill.queued", "tenantguard.backfill.table_done",
      "tenantguard.backfill.completed", "tenantguard.rollout.quarantine_orphans",
      "tenantguard.rollout.enforce_constraints" } do
    lu.assertNotNil(actions[a], "no audit entry " .. a)
  end
  lu.assertEquals(db:value("SELECT count(*) FROM tenantguard_runs WHERE id = ?", run.id), 1)

  -- the matrix, with each table's own names
  local results = eng:run_matrix()
  local failed = {}
  for _, r in ipairs(results) do
    if not r.pass then failed[#failed + 1] = r.message end
  end
  lu.assertEquals(#failed, 0, table.concat(failed, "\n"))
  lu.assertTrue(#results > 0)
  eng:close()
  db:close()
end

-- The CLI on the helpdesk: lint, rollout, backfill, worker and validate, with no app table
-- for runs or audit entries.
function TestNames:test_cli_without_app_tables()
  local dir, path = rule_dir(), make_db()
  local function tool(args)
    return H.run_tool(args .. " --rules " .. dir .. " --db " .. path)
  end
  local rc, out = tool("lint")
  lu.assertEquals(rc, 0, out)
  for _, ph in ipairs { "add_columns", "enforce_writes" } do
    rc, out = tool("rollout " .. ph)
    lu.assertEquals(rc, 0, out)
  end
  rc, out = tool("backfill --dry-run")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "comments")
  rc, out = tool("backfill")
  lu.assertEquals(rc, 0, out)
  -- no operation-runs table: the run is named without an operation run
  lu.assertStrMatches(out, "run %d+: queued\n.*")
  lu.assertNil(out:find("operation run", 1, true), out)
  rc, out = tool("worker")
  lu.assertEquals(rc, 0, out)
  rc, out = tool("validate")
  lu.assertEquals(rc, 0, out)
  rc, out = tool("rollout enforce_constraints")
  lu.assertEquals(rc, 0, out)
end

TestDrift = {}

function TestDrift:tearDown() H.cleanup() end

-- Drift finds every tenant-owned table: one whose column references the tenants table,
-- whatever it is called, and one with any tenant column name the rules use (the app's or a
-- table's own); each warning names the table and the column.
function TestDrift:test_drift_by_foreign_key_and_by_any_tenant_name()
  local path = make_db([[
CREATE TABLE invoices (id INTEGER PRIMARY KEY,
  client_account_id INTEGER REFERENCES tenants(id), total INTEGER);
CREATE TABLE attachments (id INTEGER PRIMARY KEY, acct INTEGER, path TEXT);
CREATE TABLE macros (id INTEGER PRIMARY KEY, account_id INTEGER, body TEXT);
CREATE TABLE settings (id INTEGER PRIMARY KEY, client_account_id INTEGER, body TEXT);
]])
  local fs = tg.check { rules = rule_dir(), db = path }
  local drift = H.with_code(fs, "drift")
  lu.assertEquals(#drift, 3, describe(fs))
  local msgs = {}
  for _, f in ipairs(drift) do
    lu.assertEquals(f.level, "warning")
    msgs[#msgs + 1] = f.message
  end
  local all = table.concat(msgs, "\n")
  lu.assertStrContains(all, "table 'invoices' is tenant-owned (its column 'client_account_id' "
    .. "references the tenants table 'tenants')")
  lu.assertStrContains(all, "table 'attachments' has the tenant column 'acct'")
  lu.assertStrContains(all, "table 'macros' has the tenant column 'account_id'")
  lu.assertNotStrContains(all, "'settings'")
  lu.assertEquals(#H.errors(fs), 0, describe(fs))
end

-- A foreign key written against a tenants table of another name is found too.
function TestDrift:test_drift_by_foreign_key_to_a_renamed_tenants_table()
  local path = H.tmpdir() .. "/orgs.db"
  local db = tg.connect(path)
  db:exec([[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE Customers (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER);
CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER);
CREATE TABLE notes (id INTEGER PRIMARY KEY, owner_ref INTEGER REFERENCES customers(id));
]])
  db:close()
  local dir = H.rule_dir { ["app.lua"] = 'app { name = "mini", tenants = { table = "Customers" } }\n' }
  local fs = tg.check { rules = dir, db = path }
  local drift = H.with_code(fs, "drift")
  lu.assertEquals(#drift, 1, describe(fs))
  lu.assertStrContains(drift[1].message, "'notes'")
  lu.assertStrContains(drift[1].message, "'owner_ref'")
end

TestFamilyKey = {}

function TestFamilyKey:tearDown() H.cleanup() end

local function key_findings(create)
  local path = H.tmpdir() .. "/k.db"
  local db = tg.connect(path)
  db:exec([[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER);
]] .. create)
  db:close()
  local dir = H.rule_dir()
  return dir, H.with_code(tg.check { rules = dir, db = path }, "family_key_not_unique"), path
end

-- A family keyed on a column that does not identify one row is an error on the family.
function TestFamilyKey:test_non_unique_keys_are_errors()
  for _, create in ipairs {
    "CREATE TABLE things (id INTEGER, tenant_id INTEGER);",
    "CREATE TABLE things (id INTEGER, tenant_id INTEGER, x INTEGER, "
      .. "PRIMARY KEY (id, tenant_id, x));", -- three columns: (id, tenant) may repeat
    "CREATE TABLE things (id INTEGER, tenant_id INTEGER, x INTEGER, PRIMARY KEY (id, x));",
    "CREATE TABLE things (id INTEGER UNIQUE, tenant_id INTEGER);", -- NULLs repeat
    "CREATE TABLE things (id INTEGER NOT NULL, tenant_id INTEGER);"
      .. "CREATE UNIQUE INDEX t_id ON things(id, tenant_id);",
    "CREATE TABLE things (id INTEGER NOT NULL, tenant_id INTEGER);"
      .. "CREATE UNIQUE INDEX t_id ON things(id) WHERE tenant_id > 0;",
    "CREATE TABLE things (id INTEGER NOT NULL, tenant_id INTEGER);"
      .. "CREATE INDEX t_id ON things(id);",
  } do
    local dir, fs = key_findings(create)
    lu.assertEquals(#fs, 1, create)
    lu.assertEquals(fs[1].level, "error")
    lu.assertEquals(fs[1].file, dir .. "/families.lua")
    lu.assertEquals(fs[1].line, 1)
    lu.assertStrContains(fs[1].message, "family 'Thing'")
    lu.assertStrContains(fs[1].message, "'things.id' is not a key of the table, alone or "
      .. "with its tenant column 'tenant_id'")
  end
  -- the error stops an engine from opening
  local _, _, path = key_findings("CREATE TABLE things (id INTEGER, tenant_id INTEGER);")
  local ok, err = pcall(tg.open, { rules = H.rule_dir(), db = path })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "[family_key_not_unique]")
end

-- Single-column keys pass: the rowid alias, a text primary key, a WITHOUT ROWID key, a NOT
-- NULL column with a single-column unique index, and a view over such a column.
function TestFamilyKey:test_unique_keys_pass()
  for _, create in ipairs {
    "CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER);",
    "CREATE TABLE things (id TEXT PRIMARY KEY, tenant_id INTEGER);",
    "CREATE TABLE things (id TEXT PRIMARY KEY, tenant_id INTEGER) WITHOUT ROWID;",
    "CREATE TABLE things (id INTEGER NOT NULL UNIQUE, tenant_id INTEGER);",
    "CREATE TABLE things (id INTEGER NOT NULL, tenant_id INTEGER);"
      .. "CREATE UNIQUE INDEX t_id ON things(id);",
    "CREATE TABLE base_things (id INTEGER PRIMARY KEY, tenant_id INTEGER);"
      .. "CREATE VIEW things AS SELECT id, tenant_id FROM base_things;",
  } do
    local _, fs = key_findings(create)
    lu.assertEquals(#fs, 0, create)
  end
end

-- Keys of (tenant, id), as Citus requires of a distributed table, pass too: a primary key in
-- either order, WITHOUT ROWID, NOT NULL columns with a unique index. Lint says what that
-- changes (an info, no error), and an engine opens.
function TestFamilyKey:test_keys_with_the_tenant_pass()
  for _, create in ipairs {
    "CREATE TABLE things (tenant_id INTEGER, id INTEGER, PRIMARY KEY (tenant_id, id));",
    "CREATE TABLE things (id INTEGER, tenant_id INTEGER, PRIMARY KEY (id, tenant_id));",
    "CREATE TABLE things (tenant_id TEXT, id TEXT, PRIMARY KEY (tenant_id, id)) WITHOUT ROWID;",
    "CREATE TABLE things (id INTEGER NOT NULL, tenant_id INTEGER NOT NULL);"
      .. "CREATE UNIQUE INDEX t_key ON things(tenant_id, id);",
  } do
    local dir, fs, path = key_findings(create)
    lu.assertEquals(#fs, 0, create)
    local all = tg.check { rules = dir, db = path }
    local info = H.with_code(all, "family_key_with_tenant")
    lu.assertEquals(#info, 1, create)
    lu.assertEquals(info[1].level, "info")
    lu.assertEquals(info[1].file, dir .. "/families.lua")
    lu.assertStrContains(info[1].message, "keyed on (tenant_id, id)")
    lu.assertStrContains(info[1].message, "ambiguous_id")
    local eng = tg.open { rules = dir, db = path }
    eng:close()
  end
  -- a view is never keyed with its tenant: its tenant column may come from another row of
  -- a join (here a self-join gives tenant 2's row to tenant 1 as well), which no column
  -- metadata tells
  for _, view in ipairs {
    "CREATE VIEW things AS SELECT id, tenant_id FROM base_things;",
    "CREATE VIEW things AS SELECT c.id, p.tenant_id FROM base_things c JOIN base_things p "
      .. "ON p.id = c.parent;",
  } do
    local _, fs = key_findings("CREATE TABLE base_things (tenant_id INTEGER, id INTEGER, "
      .. "parent INTEGER, PRIMARY KEY (tenant_id, id));" .. view)
    lu.assertEquals(#fs, 1, view)
  end
end

os.exit(lu.LuaUnit.run())
