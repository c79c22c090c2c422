-- The matrix fixture on a schema nobody shaped for it: every table it writes has NOT NULL
-- columns without defaults, CHECK constraints (IN lists, ranges, lengths, <> '', forms it
-- cannot read), UNIQUE columns and composite UNIQUE constraints; the memberships are views
-- over one base table. The matrix and every mutant must run on it; a table the fixture
-- cannot fill is an error naming the table, the column and the constraint.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local SCHEMA = [[
CREATE TABLE workspaces (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 3 AND 12),
  slug TEXT NOT NULL CHECK (slug <> ''),
  plan TEXT NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
  seats INTEGER NOT NULL CHECK (seats >= 5 AND seats <= 500),
  created_at TEXT NOT NULL,
  UNIQUE (slug)
);
CREATE TABLE tenants (
  id INTEGER PRIMARY KEY,
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
  name TEXT NOT NULL CHECK (length(name) <= 6 AND name <> ''),
  region TEXT NOT NULL CHECK (region IN ('eu', 'us')),
  code INTEGER NOT NULL,
  priority INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 3),
  UNIQUE (workspace_id, code)
);
-- both memberships live in one table, seen through two views
CREATE TABLE memberships (
  id INTEGER PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('workspace', 'tenant')),
  user_id INTEGER NOT NULL,
  workspace_id INTEGER REFERENCES workspaces(id),
  tenant_ref INTEGER REFERENCES tenants(id),
  role TEXT CHECK (role IN ('owner', 'viewer', 'guest')),
  invited_by TEXT NOT NULL CHECK (invited_by LIKE '%_@_%'),
  UNIQUE (kind, user_id, workspace_id, tenant_ref)
);
CREATE VIEW workspace_memberships AS
  SELECT user_id, workspace_id, role FROM memberships WHERE kind = 'workspace';
CREATE VIEW "tenant_memberships" AS
  SELECT m.user_id, m.tenant_ref AS tenant_id FROM memberships AS m
  WHERE m.kind = 'tenant' AND m.tenant_ref IS NOT NULL;
CREATE TABLE operation_runs (id INTEGER PRIMARY KEY, type TEXT, status TEXT,
  workspace_id INTEGER, summary TEXT, created_at TEXT, started_at TEXT, finished_at TEXT);
CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, workspace_id INTEGER, tenant_id INTEGER,
  action TEXT, subject TEXT, metadata TEXT, created_at TEXT);
CREATE TABLE things (
  id INTEGER PRIMARY KEY,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
  title TEXT NOT NULL CHECK (length(title) >= 2),
  status TEXT NOT NULL CHECK (status IN ('open', 'closed')),
  ref TEXT NOT NULL UNIQUE,
  score REAL NOT NULL CHECK (score >= 0.5),
  owner_email TEXT NOT NULL CHECK (owner_email = lower(owner_email)),
  kind TEXT NOT NULL,
  seq INTEGER NOT NULL CHECK (seq > 0),
  CONSTRAINT things_kind_seq UNIQUE (tenant_id, kind, seq)
);
CREATE TABLE notes (
  id INTEGER PRIMARY KEY,
  tenant_id INTEGER NOT NULL REFERENCES tenants(id),
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
  thing_id INTEGER NOT NULL REFERENCES things(id),
  body TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 20),
  lang TEXT NOT NULL CHECK (lang IN ('en', 'de')),
  weight INTEGER NOT NULL CHECK (weight BETWEEN 10 AND 20) UNIQUE
);
CREATE TABLE connections (
  id INTEGER PRIMARY KEY,
  tenant_id INTEGER REFERENCES tenants(id),
  workspace_id INTEGER NOT NULL REFERENCES workspaces(id),
  provider TEXT NOT NULL CHECK (provider IN ('entra', 'google')),
  secret_ref TEXT NOT NULL UNIQUE CHECK (length(secret_ref) = 8)
);
]]

local ROLES = [[
capabilities { "thing.view", "thing.edit", "thing.delete", "conn.view" }
role "owner" { "*" }
role "viewer" { "thing.view" }
]]

local FAMILIES = [[
family "Thing" {
  table = "things",
  primary_surface = "ThingResource",
  search_posture = "scoped",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    row_action = { capability = "thing.edit" },
    bulk_action = { capability = "thing.delete" },
    global_search = { capability = "thing.view" },
    canonical_viewer = { capability = "thing.view" },
  },
  search_columns = { "title" },
}

family "Note" {
  table = "notes",
  primary_surface = "NoteResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    relation_manager = { owner = "Thing", via = "thing_id", capability = "thing.view" },
  },
}
]]

local EXCEPTIONS = [[
exception "Connections" {
  exception_kind = "workspace_admin_canonical_viewer",
  table = "connections",
  surface = "ConnectionResource",
  why_excepted = "workspace-level connections",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "conn.view",
}
]]

local function make(extra_sql, files)
  local path = H.tmpdir() .. "/app.db"
  local db = tg.connect(path)
  db:exec(SCHEMA .. (extra_sql or ""))
  db:close()
  local f = { ["roles.lua"] = ROLES, ["families.lua"] = FAMILIES,
    ["exceptions.lua"] = EXCEPTIONS }
  for k, v in pairs(files or {}) do f[k] = v end
  return path, H.rule_dir(f)
end

local function failures(r)
  local bad = {}
  for _, x in ipairs(r) do
    if not x.pass then bad[#bad + 1] = tostring(x.message) end
  end
  return table.concat(bad, "\n  ")
end

-- Every row of every table, as text: the matrix must leave it exactly as found.
local function dump(path)
  local db = tg.connect(path)
  local out = {}
  for _, t in ipairs(db:query("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")) do
    local cols = {}
    for _, c in ipairs(db:query("SELECT name FROM pragma_table_info(?) ORDER BY cid", t.name)) do
      cols[#cols + 1] = ('quote("%s")'):format(c.name)
    end
    for _, r in ipairs(db:query(('SELECT quote(rowid) || \'|\' || %s AS s FROM "%s" ORDER BY rowid')
      :format(table.concat(cols, " || '|' || "), t.name))) do
      out[#out + 1] = t.name .. ":" .. tostring(r.s)
    end
  end
  db:close()
  return table.concat(out, "\n")
end

TestFixture = {}

function TestFixture:tearDown() H.cleanup() end

-- The rules lint clean against the strict schema, and the matrix passes on it.
function TestFixture:test_matrix_passes_on_a_strict_schema()
  local path, rules = make()
  local findings = tg.check { rules = rules, db = path }
  lu.assertEquals(#H.errors(findings), 0)
  local eng = tg.open { db = path, rules = rules }
  local before = dump(path)
  local r, err = eng:run_matrix()
  lu.assertNotNil(r, err)
  lu.assertTrue(#r > 0)
  lu.assertEquals(r.failed, 0, failures(r))
  lu.assertEquals(dump(path), before, "the matrix left rows behind")
  eng:close()
end

-- Every mutant is caught on the strict schema too: the fixture's rows and actors are real.
function TestFixture:test_every_mutant_is_caught_on_a_strict_schema()
  local path, rules = make()
  local eng = tg.open { db = path, rules = rules }
  for _, m in ipairs(tg.mutations()) do
    local r, err = eng:run_matrix(m.name)
    lu.assertNotNil(r, m.name .. ": " .. tostring(err))
    lu.assertTrue(r.failed > 0, "mutant " .. m.name .. " survived")
  end
  lu.assertEquals(eng:run_matrix().failed, 0)
  eng:close()
end

-- The command-line tool, as CI would run it: the plain run and every mutant.
function TestFixture:test_cli_matrix_mutate_on_a_strict_schema()
  local path, rules = make()
  local rc, out = H.run_tool(("matrix --db '%s' --rules '%s'"):format(path, rules))
  lu.assertEquals(rc, 0, out)
  rc, out = H.run_tool(("matrix --db '%s' --rules '%s' --mutate"):format(path, rules))
  lu.assertEquals(rc, 0, out)
end

-- A CHECK no candidate satisfies: the error names the table, the column and the constraint,
-- and says where to give the value.
function TestFixture:test_unfillable_column_is_a_clear_error()
  local path, rules = make([[
CREATE TABLE widgets (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL,
  workspace_id INTEGER NOT NULL,
  code TEXT NOT NULL CONSTRAINT widget_code CHECK (code GLOB '[A-Z][A-Z]-[0-9][0-9][0-9]'));
]], { ["widgets.lua"] = [[
family "Widget" {
  table = "widgets", primary_surface = "WidgetResource", search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = { index = { capability = "thing.view" }, detail = { capability = "thing.view" } },
}
]] })
  local eng = tg.open { db = path, rules = rules }
  local before = dump(path)
  local r, err = eng:run_matrix()
  lu.assertNil(r)
  lu.assertIsString(err)
  lu.assertStrContains(err, "widgets.code")
  lu.assertStrContains(err, "widget_code")
  lu.assertStrContains(err, "fixture")
  lu.assertEquals(dump(path), before)
  eng:close()
  -- the family's fixture value is the override that makes it fillable
  H.write(rules .. "/widgets.lua", H.read(rules .. "/widgets.lua"):gsub("\n}\n$",
    '\n  fixture = { code = "AB-123" },\n}\n'))
  eng = tg.open { db = path, rules = rules }
  local r, err2 = eng:run_matrix()
  lu.assertNotNil(r, err2)
  lu.assertEquals(r.failed, 0, failures(r))
  eng:close()
end

-- The app tables take fixture overrides too: without one, a workspace column no candidate
-- satisfies is an error naming workspaces; with app.workspaces.fixture the matrix passes.
function TestFixture:test_app_table_fixture_override()
  local path = H.tmpdir() .. "/app.db"
  local db = tg.connect(path)
  db:exec((SCHEMA:gsub("created_at TEXT NOT NULL,",
    "created_at TEXT NOT NULL,\n  region TEXT NOT NULL CHECK (region GLOB 'R[0-9][0-9]'),", 1)))
  db:close()
  local _, rules = make()
  local eng = tg.open { db = path, rules = rules }
  local before = dump(path)
  local r, err = eng:run_matrix()
  lu.assertNil(r)
  lu.assertIsString(err)
  lu.assertStrContains(err, "workspaces.region")
  lu.assertStrContains(err, "app.workspaces.fixture")
  lu.assertEquals(dump(path), before)
  eng:close()
  H.write(rules .. "/app.lua", [[
app { name = "mini", workspaces = { table = "workspaces", fixture = { region = "R42" } } }
]])
  eng = tg.open { db = path, rules = rules }
  local r, err2 = eng:run_matrix()
  lu.assertNotNil(r, err2)
  lu.assertEquals(r.failed, 0, failures(r))
  eng:close()
end

-- An enum-like CHECK on the role column: the actor without capabilities gets a role the
-- CHECK allows and the rules grant nothing ('guest'), never an invented one.
function TestFixture:test_role_check_without_a_free_role_is_a_clear_error()
  local path, rules = make()
  local db = tg.connect(path)
  -- every allowed role grants something, and the role cannot be NULL
  db:exec([[
DROP VIEW workspace_memberships;
DROP VIEW tenant_memberships;
DROP TABLE memberships;
CREATE TABLE workspace_memberships (user_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('owner', 'viewer')));
CREATE TABLE tenant_memberships (user_id INTEGER NOT NULL, tenant_id INTEGER NOT NULL);
]])
  db:close()
  local eng = tg.open { db = path, rules = rules }
  local r, err = eng:run_matrix()
  lu.assertNil(r)
  lu.assertIsString(err)
  lu.assertStrContains(err, "workspace_memberships.role")
  lu.assertStrContains(err, "grants nothing")
  eng:close()
end

-- A membership view the fixture cannot write through (a join): the error names the view and
-- says which table needs a fixture.
function TestFixture:test_membership_view_over_a_join_is_a_clear_error()
  local path, rules = make()
  local db = tg.connect(path)
  db:exec([[
DROP VIEW tenant_memberships;
CREATE VIEW tenant_memberships AS
  SELECT m.user_id, t.id AS tenant_id FROM memberships m JOIN tenants t
  ON t.id = m.tenant_ref WHERE m.kind = 'tenant';
]])
  db:close()
  local eng = tg.open { db = path, rules = rules }
  local before = dump(path)
  local r, err = eng:run_matrix()
  lu.assertNil(r)
  lu.assertIsString(err)
  lu.assertStrContains(err, "tenant_memberships")
  lu.assertStrContains(err, "single-table")
  lu.assertEquals(dump(path), before)
  eng:close()
end

-- A membership view with an INSTEAD OF INSERT trigger is written through the trigger.
function TestFixture:test_membership_view_with_a_trigger()
  local path, rules = make()
  local db = tg.connect(path)
  db:exec([[
DROP VIEW tenant_memberships;
CREATE VIEW tenant_memberships AS
  SELECT m.user_id, t.id AS tenant_id FROM memberships m JOIN tenants t
  ON t.id = m.tenant_ref WHERE m.kind = 'tenant';
CREATE TRIGGER tm_insert INSTEAD OF INSERT ON tenant_memberships BEGIN
  INSERT INTO memberships (kind, user_id, tenant_ref, invited_by)
  VALUES ('tenant', NEW.user_id, NEW.tenant_id, 'trigger@example.com');
END;
]])
  db:close()
  local eng = tg.open { db = path, rules = rules }
  local r, err2 = eng:run_matrix()
  lu.assertNotNil(r, err2)
  lu.assertEquals(r.failed, 0, failures(r))
  eng:close()
end

os.exit(lu.LuaUnit.run())
