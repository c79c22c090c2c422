-- Roles and capabilities from the database: a workspace membership without a role column
-- (app.workspace_members.role = false) and roles granted by an application table
-- (app.role_grants), read at open and at every reload, checked against the declared
-- capabilities, united with the rule-file roles, bounded, and visible in the rule version.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

-- An application that keeps its roles in role_capabilities(role, capability) and has no
-- role on its workspace memberships: the role lives on the tenant membership only.
local SCHEMA = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL);
CREATE TABLE tenant_memberships (user_id INTEGER NOT NULL, tenant_id INTEGER NOT NULL,
  role TEXT);
CREATE TABLE role_capabilities (role TEXT NOT NULL, capability TEXT NOT NULL);
CREATE TABLE operation_runs (id INTEGER PRIMARY KEY, type TEXT, status TEXT,
  workspace_id INTEGER, summary TEXT, created_at TEXT, started_at TEXT, finished_at TEXT);
CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, workspace_id INTEGER, tenant_id INTEGER,
  action TEXT, subject TEXT, metadata TEXT, created_at TEXT);
CREATE TABLE things (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, name TEXT);

INSERT INTO workspaces (id) VALUES (1);
INSERT INTO tenants (id, workspace_id) VALUES (1, 1);
INSERT INTO things (id, tenant_id, name) VALUES (10, 1, 'a thing');
-- users: 1 editor, 2 member without any role, 3 ghost (a role nobody declares),
--        4 admin ("*" in the table), 5 auditor (rule-file role, widened by the table)
INSERT INTO workspace_memberships (user_id, workspace_id) VALUES (1, 1), (2, 1), (3, 1),
  (4, 1), (5, 1);
INSERT INTO tenant_memberships (user_id, tenant_id, role) VALUES (1, 1, 'editor'),
  (2, 1, NULL), (3, 1, 'ghost'), (4, 1, 'admin'), (5, 1, 'auditor');
INSERT INTO role_capabilities (role, capability) VALUES
  ('editor', 'thing.view'), ('editor', 'thing.edit'), ('admin', '*'),
  ('auditor', 'thing.edit');
]]

local APP = [[
app {
  name = "grants",
  workspace_members = { role = false },
  tenant_members = { role = "role" },
  role_grants = { table = "role_capabilities" },
}
]]

local ROLES = [[
capabilities { "thing.view", "thing.edit", "thing.delete" }
role "auditor" { "thing.view" }
]]

local FAMILY = [[
family "Thing" {
  table = "things",
  primary_surface = "ThingResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    row_action = { capability = "thing.edit" },
  },
}
]]

local function make_db(extra)
  local path = H.tmpdir() .. "/app.db"
  local db = tg.connect(path)
  db:exec(SCHEMA .. (extra or ""))
  db:close()
  return path
end

local function exec(path, sql)
  local db = tg.connect(path)
  db:exec(sql)
  db:close()
end

local function rules(over)
  local files = { ["app.lua"] = APP, ["roles.lua"] = ROLES, ["families.lua"] = FAMILY }
  for k, v in pairs(over or {}) do files[k] = v end
  return H.rule_dir(files)
end

local function describe(fs)
  local out = {}
  for _, f in ipairs(fs) do
    out[#out + 1] = ("%s %s %s %s"):format(f.level, f.code, tostring(f.where), f.message)
  end
  return table.concat(out, "\n")
end

local function status(eng, user, path, capability)
  local ctx = eng:context { user = user, workspace = 1, tenant = 1 }
  local d = ctx:resolve { family = "Thing", path = path or "detail", id = 10,
    capability = capability }
  ctx:close()
  return d.status, d.reason
end

-- Every scenario and every check of a matrix run passed.
local function assert_all_pass(results, label)
  local bad = {}
  for _, r in ipairs(results) do
    if not r.pass then bad[#bad + 1] = tostring(r.message) end
    for _, c in ipairs(r.checks) do
      if not c.pass then bad[#bad + 1] = c.actor .. ": " .. tostring(c.failure) end
    end
  end
  lu.assertEquals(#bad, 0, label .. ":\n  " .. table.concat(bad, "\n  "))
  lu.assertEquals(results.failed, 0, label)
  lu.assertTrue(results.passed > 0, label)
end

local function contains(s, part) return type(s) == "string" and s:find(part, 1, true) ~= nil end

-- ---------------------------------------------------------------------------------------

TestRoleGrants = {}

function TestRoleGrants:tearDown() H.cleanup() end

-- The rules lint clean against a schema whose workspace memberships have no role column.
function TestRoleGrants:test_lint_clean_without_membership_role_column()
  local fs = tg.check { rules = rules(), db = make_db() }
  lu.assertEquals(#H.errors(fs), 0, describe(fs))
  lu.assertEquals(#H.with_code(fs, "capability_never_granted"), 0, describe(fs))
  lu.assertEquals(#H.with_code(fs, "unused_capability"), 0, describe(fs))
  local eng = tg.open { db = make_db(), rules = rules() }
  local app = eng:rules().app
  lu.assertNil(app.workspace_members.role)
  lu.assertEquals(app.role_grants.table, "role_capabilities")
  lu.assertEquals(app.role_grants.role, "role")
  lu.assertEquals(app.role_grants.capability, "capability")
  eng:close()
end

-- role = true is not a column name: a wrong_type error, never a silent default.
function TestRoleGrants:test_role_true_is_wrong_type()
  local fs = tg.check { rules = rules { ["app.lua"] =
    'app { workspace_members = { role = true } }\n' } }
  lu.assertEquals(#H.with_code(fs, "wrong_type"), 1, describe(fs))
end

-- A table grants its roles: full rights, view-only, no role, an undeclared role.
function TestRoleGrants:test_table_roles_decide()
  local eng = tg.open { db = make_db(), rules = rules() }
  lu.assertEquals(status(eng, 1, "detail"), 200)
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 200)
  lu.assertEquals(status(eng, 1, "row_action", "thing.delete"), 403)
  -- a membership without a role grants nothing
  lu.assertEquals(status(eng, 2, "detail"), 403)
  -- a role named neither in the rules nor in the table grants nothing
  lu.assertEquals(status(eng, 3, "detail"), 403)
  eng:close()
end

-- "*" in the table grants every declared capability.
function TestRoleGrants:test_star_grants_every_capability()
  local eng = tg.open { db = make_db(), rules = rules() }
  lu.assertEquals(status(eng, 4, "detail"), 200)
  lu.assertEquals(status(eng, 4, "row_action", "thing.edit"), 200)
  lu.assertEquals(status(eng, 4, "row_action", "thing.delete"), 200)
  local roles = eng:rules().roles
  lu.assertItemsEquals(roles.admin, { "thing.view", "thing.edit", "thing.delete" })
  eng:close()
end

-- A role in both the rules and the table grants the union.
function TestRoleGrants:test_rule_file_and_table_roles_unite()
  local eng = tg.open { db = make_db(), rules = rules() }
  lu.assertEquals(status(eng, 5, "detail"), 200)                    -- from the rule file
  lu.assertEquals(status(eng, 5, "row_action", "thing.edit"), 200)  -- from the table
  lu.assertItemsEquals(eng:rules().roles.auditor, { "thing.view", "thing.edit" })
  lu.assertItemsEquals(eng:rules().roles.editor, { "thing.view", "thing.edit" })
  eng:close()
end

-- Without a role_grants mapping the table is not read: the editor is an undeclared role.
function TestRoleGrants:test_without_mapping_the_table_grants_nothing()
  local app = 'app { workspace_members = { role = false }, tenant_members = { role = "role" } }\n'
  local eng = tg.open { db = make_db(), rules = rules { ["app.lua"] = app } }
  lu.assertEquals(status(eng, 1, "detail"), 403)
  lu.assertEquals(status(eng, 5, "detail"), 200)
  lu.assertEquals(status(eng, 5, "row_action", "thing.edit"), 403)
  eng:close()
end

-- The table is read at open and at reload, never per request: a change shows after reload,
-- a context keeps what its rule version read, and the version tells them apart.
function TestRoleGrants:test_reload_reads_the_table_again()
  local path = make_db()
  local eng = tg.open { db = path, rules = rules() }
  local v1 = eng:rules().version
  local old = eng:context { user = 1, workspace = 1, tenant = 1 }
  lu.assertEquals(old:resolve { family = "Thing", path = "row_action", id = 10,
    capability = "thing.edit" }.status, 200)
  exec(path, "DELETE FROM role_capabilities WHERE role = 'editor' AND capability = 'thing.edit'")
  -- not read per request
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 200)
  lu.assertEquals(eng:rules().version, v1)
  assert(eng:reload())
  local v2 = eng:rules().version
  lu.assertNotEquals(v2, v1)
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 403)
  lu.assertEquals(status(eng, 1, "detail"), 200)
  -- the context opened before the reload keeps its rules
  lu.assertEquals(old:version(), v1)
  lu.assertEquals(old:resolve { family = "Thing", path = "row_action", id = 10,
    capability = "thing.edit" }.status, 200)
  old:close()
  -- the same table contents give the same version
  exec(path, "INSERT INTO role_capabilities VALUES ('editor', 'thing.edit')")
  assert(eng:reload())
  lu.assertEquals(eng:rules().version, v1)
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 200)
  eng:close()
end

-- An unknown capability in the table is an error naming the row: open refuses, reload
-- refuses and the old rules keep serving, lint and tg.check report it.
function TestRoleGrants:test_unknown_capability_refused()
  local path = make_db()
  local dir = rules()
  local eng = tg.open { db = path, rules = dir }
  exec(path, "INSERT INTO role_capabilities VALUES ('editor', 'thing.purge')")
  local ok, msg = eng:reload()
  lu.assertNil(ok)
  lu.assertTrue(contains(msg, "thing.purge"), msg)
  lu.assertTrue(contains(msg, "editor"), msg)
  -- the old rules keep serving
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 200)
  local fs = eng:lint()
  local hits = H.with_code(fs, "unknown_capability")
  lu.assertEquals(#hits, 1, describe(fs))
  lu.assertEquals(hits[1].level, "error")
  lu.assertTrue(contains(hits[1].message, "'editor'"), hits[1].message)
  lu.assertTrue(contains(hits[1].message, "'thing.purge'"), hits[1].message)
  lu.assertTrue(contains(hits[1].message, "role_capabilities"), hits[1].message)
  lu.assertEquals(hits[1].file, dir .. "/app.lua")
  lu.assertEquals(hits[1].line, 1)
  eng:close()
  local cfs = tg.check { rules = dir, db = path }
  lu.assertEquals(#H.with_code(cfs, "unknown_capability"), 1, describe(cfs))
  local ok2, err2 = pcall(tg.open, { db = path, rules = dir })
  lu.assertFalse(ok2)
  lu.assertTrue(contains(tostring(err2), "thing.purge"), tostring(err2))
  -- the CLI's lint --db says so and fails
  local rc, out = H.run_tool("lint --rules '" .. dir .. "' --db '" .. path .. "'")
  lu.assertEquals(rc, 1, out)
  lu.assertTrue(contains(out, "unknown_capability"), out)
  lu.assertTrue(contains(out, "thing.purge"), out)
end

-- A NULL role or capability in a row is an error too, never a silent skip.
function TestRoleGrants:test_null_cells_are_errors()
  local path = H.tmpdir() .. "/app.db"
  local db = tg.connect(path)
  db:exec((SCHEMA:gsub("role TEXT NOT NULL, capability TEXT NOT NULL", "role TEXT, capability TEXT")))
  db:exec("INSERT INTO role_capabilities VALUES ('editor', NULL)")
  db:close()
  local fs = tg.check { rules = rules(), db = path }
  lu.assertEquals(#H.with_code(fs, "unknown_capability"), 1, describe(fs))
  exec(path, "DELETE FROM role_capabilities WHERE capability IS NULL; "
    .. "INSERT INTO role_capabilities VALUES (NULL, 'thing.view')")
  fs = tg.check { rules = rules(), db = path }
  lu.assertEquals(#H.with_code(fs, "bad_value"), 1, describe(fs))
end

-- The grants table and its columns must exist; a custom column mapping is followed.
function TestRoleGrants:test_table_and_columns_checked()
  local path = make_db("CREATE TABLE perms (r TEXT, c TEXT); "
    .. "INSERT INTO perms VALUES ('editor', 'thing.view');")
  local app = [[
app {
  workspace_members = { role = false },
  tenant_members = { role = "role" },
  role_grants = { table = "%s", role = "%s", capability = "%s" },
}
]]
  local fs = tg.check { rules = rules { ["app.lua"] = app:format("nope", "role", "capability") },
    db = path }
  lu.assertEquals(#H.with_code(fs, "missing_table"), 1, describe(fs))
  fs = tg.check { rules = rules { ["app.lua"] = app:format("perms", "r", "cap") }, db = path }
  lu.assertEquals(#H.with_code(fs, "missing_column"), 1, describe(fs))
  local eng = tg.open { db = path, rules = rules { ["app.lua"] = app:format("perms", "r", "c") } }
  lu.assertEquals(status(eng, 1, "detail"), 200)
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 403)
  eng:close()
  -- role_grants needs its table
  fs = tg.check { rules = rules { ["app.lua"] = 'app { role_grants = { role = "r" } }\n' } }
  lu.assertEquals(#H.with_code(fs, "missing_field"), 1, describe(fs))
end

-- At most 4,096 roles and 65,536 rows.
function TestRoleGrants:test_limits()
  local path = make_db()
  exec(path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4096) "
    .. "INSERT INTO role_capabilities SELECT 'r' || i, 'thing.view' FROM n")
  -- editor, admin, auditor and r1..r4096: more than 4,096 roles
  local fs = tg.check { rules = rules(), db = path }
  local hits = H.with_code(fs, "limit_exceeded")
  lu.assertEquals(#hits, 1, describe(fs))
  lu.assertTrue(contains(hits[1].message, "4096"), hits[1].message)
  lu.assertFalse(pcall(tg.open, { db = path, rules = rules() }))
  -- exactly at the limit opens
  exec(path, "DELETE FROM role_capabilities WHERE role IN ('r4094', 'r4095', 'r4096')")
  local eng = tg.open { db = path, rules = rules() }
  lu.assertEquals(status(eng, 1, "row_action", "thing.edit"), 200)
  eng:close()
  -- rows
  local path2 = make_db()
  exec(path2, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 65533) "
    .. "INSERT INTO role_capabilities SELECT 'editor', 'thing.view' FROM n")
  -- 4 rows of the schema + 65,533 = 65,537
  fs = tg.check { rules = rules(), db = path2 }
  hits = H.with_code(fs, "limit_exceeded")
  lu.assertEquals(#hits, 1, describe(fs))
  lu.assertTrue(contains(hits[1].message, "65536"), hits[1].message)
  exec(path2, "DELETE FROM role_capabilities WHERE rowid = (SELECT max(rowid) FROM role_capabilities)")
  fs = tg.check { rules = rules(), db = path2 }
  lu.assertEquals(#H.errors(fs), 0, describe(fs))
end

-- The matrix runs with roles from the table: its full actor holds a table role.
function TestRoleGrants:test_matrix_passes_with_table_roles()
  local path = make_db()
  local eng = tg.open { db = path, rules = rules() }
  assert_all_pass(eng:run_matrix(), "rule-file and table roles")
  -- and only table roles: no role in the rule files at all
  local eng2 = tg.open { db = path, rules = rules { ["roles.lua"] =
    'capabilities { "thing.view", "thing.edit", "thing.delete" }\n' } }
  lu.assertEquals(#eng2:rules().roles.editor, 2)
  assert_all_pass(eng2:run_matrix(), "table roles only")
  -- the mutants are still caught
  local m = eng2:run_matrix("drop_tenant_condition")
  lu.assertTrue(m.failed > 0)
  eng:close()
  eng2:close()
end

os.exit(lu.LuaUnit.run())
