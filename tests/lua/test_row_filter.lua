-- Row filters (soft deletes): a family, app.tenants and app.workspaces may declare which
-- rows are visible. A filtered-out row is 404 not_found on every by-id path, never listed or
-- searched, refuses a bulk, makes a relation's owner 404 owner_not_found, and cannot be
-- updated; a filtered-out tenant is not a valid route tenant and a filtered-out workspace
-- has no members. Values are bound parameters, never pasted into SQL.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local SCHEMA = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY, deleted_at TEXT);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER, deleted_at TEXT);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE operation_runs (id INTEGER PRIMARY KEY, type TEXT, status TEXT,
  workspace_id INTEGER, summary TEXT, created_at TEXT, started_at TEXT, finished_at TEXT);
CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, workspace_id INTEGER, tenant_id INTEGER,
  action TEXT, subject TEXT, metadata TEXT, created_at TEXT);
CREATE TABLE tickets (id INTEGER PRIMARY KEY, tenant_id INTEGER, workspace_id INTEGER,
  title TEXT, deleted_at TEXT, archived INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'open', priority INTEGER, score REAL, ref TEXT);
CREATE INDEX tickets_tenant ON tickets (tenant_id, id);
CREATE INDEX tickets_status ON tickets (status);
CREATE INDEX tickets_deleted ON tickets (deleted_at);
CREATE TABLE comments (id INTEGER PRIMARY KEY, tenant_id INTEGER, workspace_id INTEGER,
  ticket_id INTEGER, body TEXT, deleted_at TEXT);
CREATE INDEX comments_tenant ON comments (tenant_id, id);
CREATE TABLE connections (id INTEGER PRIMARY KEY, tenant_id INTEGER, workspace_id INTEGER,
  name TEXT);

-- workspace 3 is soft-deleted; tenant 3 (of workspace 1) is soft-deleted
INSERT INTO workspaces VALUES (1, NULL), (2, NULL), (3, '2026-01-01');
INSERT INTO tenants VALUES (1, 1, NULL), (2, 1, NULL), (3, 1, '2026-01-01'), (4, 2, NULL),
  (5, 3, NULL);
-- user 1 owns workspace 1 (tenants 1-3); user 2 owns the deleted workspace 3 (tenant 5)
INSERT INTO workspace_memberships VALUES (1, 1, 'owner'), (2, 3, 'owner'), (3, 2, 'owner');
INSERT INTO tenant_memberships VALUES (1, 1, NULL), (1, 2, NULL), (1, 3, NULL), (2, 5, NULL),
  (3, 4, NULL);
-- tenant 1: 1, 5, 6 and 9 are visible; 2 deleted, 3 archived, 4 closed
INSERT INTO tickets (id, tenant_id, workspace_id, title, deleted_at, archived, status, priority,
  score) VALUES
  (1, 1, 1, 'printer jam', NULL, 0, 'open', 1, 0.5),
  (2, 1, 1, 'printer gone', '2026-02-01', 0, 'open', 2, 1.5),
  (3, 1, 1, 'printer old', NULL, 1, 'open', 3, 2.5),
  (4, 1, 1, 'printer fixed', NULL, 0, 'closed', 4, 3.5),
  (5, 1, 1, 'printer wait', NULL, 0, 'pending', 5, 4.5),
  (6, 1, 1, 'printer again', NULL, 0, 'open', NULL, NULL),
  (7, 3, 1, 'printer of a deleted tenant', NULL, 0, 'open', 1, 0.5),
  (8, 2, 1, 'printer two', NULL, 0, 'open', 1, 0.5),
  (9, 1, 1, 'printer hostile', NULL, 0, 'x'' OR 1=1 --', 1, 0.5),
  (10, 5, 3, 'printer of a deleted workspace', NULL, 0, 'open', 1, 0.5);
UPDATE tickets SET ref = '1' WHERE id = 1;
INSERT INTO comments (id, tenant_id, workspace_id, ticket_id, body, deleted_at) VALUES
  (1, 1, 1, 1, 'visible', NULL),
  (2, 1, 1, 1, 'deleted', '2026-02-01'),
  (3, 1, 1, 2, 'on a deleted ticket', NULL),
  (4, 1, 1, 1, 'visible too', NULL);
INSERT INTO connections VALUES (1, 1, 1, 'live'), (2, 3, 1, 'of a deleted tenant'),
  (3, NULL, 1, 'workspace level');
]]

local APP = [[
app {
  name = "helpdesk",
  workspaces = { row_filter = { { column = "deleted_at", op = "is_null" } } },
  tenants = { row_filter = { { column = "deleted_at", op = "is_null" } } },
}
]]

local ROLES = [[
capabilities { "t.view", "t.edit", "c.view", "conn.view" }
role "owner" { "*" }
]]

local TICKET_FILTER = [[{
    { column = "deleted_at", op = "is_null" },
    { column = "archived", op = "eq", value = 0 },
    { column = "status", op = "in", value = { "open", "pending", "x' OR 1=1 --" } },
  }]]

local function families(ticket_filter)
  return [[
family "Ticket" {
  table = "tickets",
  primary_surface = "TicketResource",
  search_posture = "scoped",
  search_columns = { "title" },
  action_surface_status = "declared",
  row_filter = ]] .. ticket_filter .. [[,
  paths = {
    index = { capability = "t.view" },
    detail = { capability = "t.view" },
    row_action = { capability = "t.edit" },
    bulk_action = { capability = "t.edit" },
    global_search = { capability = "t.view" },
    canonical_viewer = { capability = "t.view" },
  },
}

family "Comment" {
  table = "comments",
  primary_surface = "CommentResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  row_filter = { { column = "deleted_at", op = "is_null" } },
  paths = {
    detail = { capability = "c.view" },
    relation_manager = { owner = "Ticket", via = "ticket_id", capability = "c.view" },
  },
}
]]
end

local EXCEPTIONS = [[
exception "ConnectionAdmin" {
  exception_kind = "workspace_admin_canonical_viewer",
  table = "connections",
  surface = "ConnectionResource",
  why_excepted = "workspace admins see every connection",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "conn.view",
}
]]

local function make_db()
  local path = H.tmpdir() .. "/helpdesk.db"
  local db = tg.connect(path)
  db:exec(SCHEMA)
  db:close()
  return path
end

local function rules(overrides)
  local files = { ["app.lua"] = APP, ["roles.lua"] = ROLES,
    ["families.lua"] = families(TICKET_FILTER), ["exceptions.lua"] = EXCEPTIONS }
  for k, v in pairs(overrides or {}) do files[k] = v end
  return H.rule_dir(files)
end

local function ids(d)
  local out = {}
  for i, r in ipairs(d.records or {}) do out[i] = r.id end
  return out
end

local function expect(d, status, reason, what)
  lu.assertEquals({ d.status, d.reason }, { status, reason }, what)
end

-- ---------------------------------------------------------------------------------------

TestRowFilter = {}

function TestRowFilter:setUp()
  self.path = make_db()
  self.eng = tg.open { db = self.path, rules = rules() }
end

function TestRowFilter:tearDown()
  if self.eng then self.eng:close() end
  H.cleanup()
end

function TestRowFilter:ctx(user, workspace, tenant)
  return self.eng:context { user = user or 1, workspace = workspace or 1, tenant = tenant }
end

-- detail and row_action: the first decision of a context (scope and record in one
-- statement) and a later one (the by-id statement) agree: filtered rows are not_found.
function TestRowFilter:test_detail_and_row_action_hide_filtered_rows()
  for _, path in ipairs { "detail", "row_action" } do
    for id, want in pairs { [1] = 200, [2] = 404, [3] = 404, [4] = 404, [5] = 200, [6] = 200,
                            [9] = 200 } do
      local reason = want == 200 and "ok" or "not_found"
      -- first decision of a fresh context
      local d = self:ctx(1, 1, 1):resolve { family = "Ticket", path = path, id = id }
      expect(d, want, reason, path .. " first " .. id)
      if want == 200 then lu.assertEquals(d.record.id, id) else lu.assertNil(d.record) end
      -- a later decision of a context whose scope is loaded
      local c = self:ctx(1, 1, 1)
      c:resolve { family = "Ticket", path = "index" }
      expect(c:resolve { family = "Ticket", path = path, id = id }, want, reason,
        path .. " later " .. id)
    end
  end
end

function TestRowFilter:test_index_lists_only_visible_rows_and_pages_over_them()
  local c = self:ctx(1, 1, 1)
  local d = c:resolve { family = "Ticket", path = "index" }
  expect(d, 200, "ok")
  lu.assertEquals(ids(d), { 1, 5, 6, 9 })
  local seen, after = {}, nil
  repeat
    d = c:resolve { family = "Ticket", path = "index", limit = 1, after = after }
    for _, id in ipairs(ids(d)) do seen[#seen + 1] = id end
    after = d.next_after
  until not d.has_more
  lu.assertEquals(seen, { 1, 5, 6, 9 })
end

function TestRowFilter:test_global_search_never_finds_filtered_rows()
  local d = self:ctx(1, 1, 1):resolve { family = "Ticket", path = "global_search",
    query = "printer" }
  expect(d, 200, "ok")
  lu.assertEquals(ids(d), { 1, 5, 6, 9 })
  d = self:ctx(1, 1, 1):resolve { family = "Ticket", path = "global_search", query = "gone" }
  lu.assertEquals(ids(d), {})
end

function TestRowFilter:test_bulk_naming_a_filtered_row_is_404()
  local c = self:ctx(1, 1, 1)
  local d = c:resolve { family = "Ticket", path = "bulk_action", ids = { 1, 5 } }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 2)
  for _, bad in ipairs { 2, 3, 4 } do
    d = c:resolve { family = "Ticket", path = "bulk_action", ids = { 1, bad, 5 } }
    expect(d, 404, "not_found", "bulk with " .. bad)
    lu.assertEquals(d.records or {}, {})
  end
end

function TestRowFilter:test_canonical_viewer_hides_filtered_rows_and_deleted_tenants()
  local c = self:ctx(1, 1, nil)
  expect(c:resolve { family = "Ticket", path = "canonical_viewer", id = 1 }, 200, "ok")
  expect(c:resolve { family = "Ticket", path = "canonical_viewer", id = 2 }, 404, "not_found")
  expect(c:resolve { family = "Ticket", path = "canonical_viewer", id = 3 }, 404, "not_found")
  -- a visible row of a soft-deleted tenant: the entitlement lookup does not know the tenant
  local d = c:resolve { family = "Ticket", path = "canonical_viewer", id = 7 }
  lu.assertEquals(d.status, 404)
  lu.assertEquals(d.reason, "foreign_workspace")
  expect(c:resolve { family = "Ticket", path = "canonical_viewer", id = 8 }, 200, "ok")
end

function TestRowFilter:test_relation_manager_filters_children_and_owner()
  local c = self:ctx(1, 1, 1)
  local d = c:resolve { family = "Comment", path = "relation_manager", owner = 1 }
  expect(d, 200, "ok")
  lu.assertEquals(ids(d), { 1, 4 })
  expect(c:resolve { family = "Comment", path = "relation_manager", owner = 1, id = 2 }, 404,
    "not_found")
  expect(c:resolve { family = "Comment", path = "relation_manager", owner = 1, id = 4 }, 200,
    "ok")
  -- the owner ticket is soft-deleted: its (visible) comments are not reachable through it
  expect(c:resolve { family = "Comment", path = "relation_manager", owner = 2 }, 404,
    "owner_not_found")
  expect(c:resolve { family = "Comment", path = "relation_manager", owner = 2, id = 3 }, 404,
    "owner_not_found")
  expect(c:resolve { family = "Comment", path = "detail", id = 2 }, 404, "not_found")
end

function TestRowFilter:test_update_of_a_filtered_row_is_404_and_writes_nothing()
  local c = self:ctx(1, 1, 1)
  local d = c:update("Ticket", 2, { title = "revived" })
  expect(d, 404, "not_found")
  local db = tg.connect(self.path)
  lu.assertEquals(db:value("SELECT title FROM tickets WHERE id = 2"), "printer gone")
  d = c:update("Ticket", 1, { title = "still jammed" })
  expect(d, 200, "ok")
  lu.assertEquals(db:value("SELECT title FROM tickets WHERE id = 1"), "still jammed")
  db:close()
end

-- insert is not filtered: an archived row can be written (and is hidden afterwards)
function TestRowFilter:test_insert_is_not_filtered()
  local c = self:ctx(1, 1, 1)
  local d = c:insert("Ticket", { title = "archived at birth", archived = 1 })
  expect(d, 200, "ok")
  local id = d.id
  expect(c:resolve { family = "Ticket", path = "detail", id = id }, 404, "not_found")
end

-- A soft-deleted tenant is not a valid route tenant on any path, first decision or not.
function TestRowFilter:test_soft_deleted_tenant_is_not_a_route_tenant()
  for _, req in ipairs {
    { family = "Ticket", path = "detail", id = 7 },
    { family = "Ticket", path = "row_action", id = 7 },
    { family = "Ticket", path = "index" },
    { family = "Ticket", path = "bulk_action", ids = { 7 } },
    { family = "Ticket", path = "global_search", query = "printer" },
    { family = "Ticket", path = "canonical_viewer", id = 7 },
    { family = "Comment", path = "relation_manager", owner = 7 },
  } do
    local d = self:ctx(1, 1, 3):resolve(req)
    expect(d, 404, "tenant_not_in_workspace", req.path)
  end
  expect(self:ctx(1, 1, 3):insert("Ticket", { title = "x" }), 404, "tenant_not_in_workspace")
  expect(self:ctx(1, 1, 3):update("Ticket", 7, { title = "x" }), 404,
    "tenant_not_in_workspace")
  -- the live tenants of the same workspace still work
  expect(self:ctx(1, 1, 2):resolve { family = "Ticket", path = "detail", id = 8 }, 200, "ok")
end

-- A soft-deleted workspace has no members, whoever asks and whatever the path.
function TestRowFilter:test_soft_deleted_workspace_has_no_members()
  for _, req in ipairs {
    { family = "Ticket", path = "detail", id = 10 },
    { family = "Ticket", path = "index" },
    { family = "Ticket", path = "canonical_viewer", id = 10 },
    { exception = "ConnectionAdmin", path = "index" },
  } do
    expect(self:ctx(2, 3, 5):resolve(req), 404, "not_member", req.path)
  end
  expect(self:ctx(2, 3, 5):insert("Ticket", { title = "x" }), 404, "not_member")
  -- a live workspace's owner is unaffected
  expect(self:ctx(3, 2, 4):resolve { family = "Ticket", path = "index" }, 200, "ok")
end

-- Exceptions: rows of a soft-deleted tenant are never listed, and their detail is 404.
function TestRowFilter:test_exception_lookups_skip_deleted_tenants()
  local c = self:ctx(1, 1, nil)
  local d = c:resolve { exception = "ConnectionAdmin", path = "index" }
  expect(d, 200, "ok")
  lu.assertEquals(ids(d), { 1, 3 })
  expect(c:resolve { exception = "ConnectionAdmin", path = "detail", id = 1 }, 200, "ok")
  d = c:resolve { exception = "ConnectionAdmin", path = "detail", id = 2 }
  lu.assertEquals(d.status, 404)
end

-- The value is bound: a status that reads like SQL matches only that exact text.
function TestRowFilter:test_hostile_value_is_bound_not_pasted()
  self.eng:close()
  self.eng = tg.open { db = self.path, rules = rules {
    ["families.lua"] = families [[{ { column = "status", op = "eq", value = "x' OR 1=1 --" } }]],
  } }
  local d = self:ctx(1, 1, 1):resolve { family = "Ticket", path = "index" }
  expect(d, 200, "ok")
  lu.assertEquals(ids(d), { 9 })
  expect(self:ctx(1, 1, 1):resolve { family = "Ticket", path = "detail", id = 1 }, 404,
    "not_found")
  expect(self:ctx(1, 1, 1):resolve { family = "Ticket", path = "detail", id = 9 }, 200, "ok")
  -- the same text through ne, in and not_in
  self.eng:close()
  self.eng = tg.open { db = self.path, rules = rules {
    ["families.lua"] = families [[{ { column = "status", op = "not_in",
      value = { "x' OR 1=1 --", "closed" } } }]],
  } }
  lu.assertEquals(ids(self:ctx(1, 1, 1):resolve { family = "Ticket", path = "index" }),
    { 1, 2, 3, 5, 6 })
end

-- Every operator, on an integer, a float, a text and a boolean value.
function TestRowFilter:test_every_operator()
  local cases = {
    { '{ column = "priority", op = "is_null" }', { 6 } },
    { '{ column = "priority", op = "is_not_null" }', { 1, 2, 3, 4, 5, 9 } },
    { '{ column = "priority", op = "eq", value = 2 }', { 2 } },
    { '{ column = "priority", op = "ne", value = 2 }', { 1, 3, 4, 5, 9 } },
    { '{ column = "priority", op = "lt", value = 3 }', { 1, 2, 9 } },
    { '{ column = "priority", op = "le", value = 3 }', { 1, 2, 3, 9 } },
    { '{ column = "priority", op = "gt", value = 3 }', { 4, 5 } },
    { '{ column = "priority", op = "ge", value = 3 }', { 3, 4, 5 } },
    { '{ column = "priority", op = "in", value = { 1, 4 } }', { 1, 4, 9 } },
    { '{ column = "priority", op = "not_in", value = { 1, 4 } }', { 2, 3, 5 } },
    { '{ column = "score", op = "gt", value = 2.0 }', { 3, 4, 5 } },
    { '{ column = "score", op = "le", value = 1.5 }', { 1, 2, 9 } },
    { '{ column = "archived", op = "eq", value = true }', { 3 } },
    { '{ column = "archived", op = "eq", value = false }', { 1, 2, 4, 5, 6, 9 } },
    { '{ column = "status", op = "ge", value = "p" }', { 5, 9 } },
    { '{ column = "status", op = "in", value = { "closed" } }', { 4 } },
    -- comparisons keep the column's affinity: '1' in a TEXT column equals 1, and an
    -- INTEGER column's 2 equals "2"
    { '{ column = "ref", op = "eq", value = 1 }', { 1 } },
    { '{ column = "priority", op = "eq", value = "2" }', { 2 } },
    { '{ column = "priority", op = "in", value = { "2", 3 } }', { 2, 3 } },
    { '{ column = "priority", op = "ge", value = 2 }, { column = "priority", op = "le", '
      .. 'value = 4 }', { 2, 3, 4 } },
  }
  for _, case in ipairs(cases) do
    if self.eng then self.eng:close() end
    self.eng = tg.open { db = self.path, rules = rules {
      ["families.lua"] = families("{ " .. case[1] .. " }") } }
    local d = self:ctx(1, 1, 1):resolve { family = "Ticket", path = "index" }
    expect(d, 200, "ok", case[1])
    lu.assertEquals(ids(d), case[2], case[1])
  end
end

-- Without a filter nothing is hidden (the reference rules' behaviour).
function TestRowFilter:test_no_filter_hides_nothing()
  self.eng:close()
  self.eng = tg.open { db = self.path, rules = rules {
    ["app.lua"] = 'app { name = "helpdesk" }\n',
    ["families.lua"] = families "nil" } }
  lu.assertEquals(ids(self:ctx(1, 1, 1):resolve { family = "Ticket", path = "index" }),
    { 1, 2, 3, 4, 5, 6, 9 })
  expect(self:ctx(1, 1, 3):resolve { family = "Ticket", path = "detail", id = 7 }, 200, "ok")
end

-- The guard-scenario matrix runs on filtered rules too (its fixture rows are visible).
function TestRowFilter:test_matrix_passes_with_filters()
  local r = self.eng:run_matrix()
  lu.assertEquals(r.failed, 0)
  lu.assertTrue(r.passed > 0)
end

-- The fixture makes its rows visible through the filters, even where the columns are NOT NULL
-- without a default and the visible value is not the one it would pick on its own.
function TestRowFilter:test_matrix_fixture_rows_satisfy_the_filters()
  local path = H.tmpdir() .. "/strict.db"
  local db = tg.connect(path)
  db:exec [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL,
  active INTEGER NOT NULL, tier INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT);
CREATE TABLE tickets (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, workspace_id INTEGER,
  title TEXT, status TEXT NOT NULL, priority INTEGER NOT NULL, deleted_at TEXT);
CREATE TABLE operation_runs (id INTEGER PRIMARY KEY, type TEXT, status TEXT,
  workspace_id INTEGER, summary TEXT, created_at TEXT, started_at TEXT, finished_at TEXT);
CREATE TABLE audit_logs (id INTEGER PRIMARY KEY, workspace_id INTEGER, tenant_id INTEGER,
  action TEXT, subject TEXT, metadata TEXT, created_at TEXT);
]]
  db:close()
  local eng = tg.open { db = path, rules = rules {
    ["app.lua"] = [[
app {
  name = "strict",
  workspaces = { row_filter = { { column = "state", op = "eq", value = "live" } } },
  tenants = { row_filter = { { column = "active", op = "eq", value = true },
                             { column = "tier", op = "gt", value = 7 } } },
}
]],
    ["families.lua"] = [[
family "Ticket" {
  table = "tickets",
  primary_surface = "TicketResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  row_filter = { { column = "status", op = "in", value = { "pending", "open" } },
                 { column = "priority", op = "ge", value = 5 },
                 { column = "deleted_at", op = "is_null" } },
  paths = { index = { capability = "t.view" }, detail = { capability = "t.view" } },
}
]],
    ["exceptions.lua"] = "" } }
  local r = eng:run_matrix()
  eng:close()
  lu.assertEquals(r.failed, 0)
  lu.assertTrue(r.passed > 0)
end

-- eng:rules() shows the filter as written.
function TestRowFilter:test_rule_model_exposes_row_filter()
  local r = self.eng:rules()
  local fam
  for _, f in ipairs(r.families) do if f.name == "Ticket" then fam = f end end
  lu.assertEquals(fam.row_filter, {
    { column = "deleted_at", op = "is_null" },
    { column = "archived", op = "eq", value = 0 },
    { column = "status", op = "in", value = { "open", "pending", "x' OR 1=1 --" } },
  })
  lu.assertEquals(r.app.tenants.row_filter, { { column = "deleted_at", op = "is_null" } })
  lu.assertEquals(r.app.workspaces.row_filter, { { column = "deleted_at", op = "is_null" } })
end

-- ---- lint ------------------------------------------------------------------------------

TestRowFilterLint = {}

function TestRowFilterLint:tearDown() H.cleanup() end

local function lint(filter, db, app)
  local dir = rules { ["families.lua"] = families(filter), ["app.lua"] = app }
  return tg.check { rules = dir, db = db }
end

local function codes(findings)
  local out = {}
  for _, f in ipairs(findings) do out[#out + 1] = f.code .. ": " .. f.message end
  return table.concat(out, "\n")
end

local function only_code(findings, code, needle)
  lu.assertEquals(#findings, 1, codes(findings))
  lu.assertEquals(findings[1].code, code, codes(findings))
  lu.assertEquals(findings[1].level, "error")
  if needle then lu.assertStrContains(findings[1].message, needle) end
  lu.assertStrContains(findings[1].where, "families.lua:1")
end

function TestRowFilterLint:test_clean()
  lu.assertEquals(#lint(TICKET_FILTER, make_db()), 0)
  lu.assertEquals(#lint(TICKET_FILTER), 0)
end

function TestRowFilterLint:test_malformed_conditions_are_bad_row_filter()
  for _, case in ipairs {
    { '"deleted_at IS NULL"', "list of conditions" },
    { '{}', "at least one condition" },
    { '{ column = "deleted_at", op = "is_null" }', "list of conditions" },
    { '{ "deleted_at" }', "must be a table" },
    { '{ { op = "is_null" } }', "column" },
    { '{ { column = "deleted_at" } }', "op" },
    { '{ { column = "deleted_at", op = "is" } }', "is_null" },
    { '{ { column = "deleted_at", op = "is_null", value = 1 } }', "takes no value" },
    { '{ { column = "archived", op = "eq" } }', "needs a value" },
    { '{ { column = "archived", op = "eq", value = { 0 } } }', "in" },
    { '{ { column = "archived", op = "in", value = 0 } }', "list" },
    { '{ { column = "archived", op = "in", value = {} } }', "non-empty" },
    { '{ { column = "archived", op = "in", value = { 0, {} } } }', "value 2" },
    { '{ { column = "archived", op = "eq", value = 0/0 } }', "finite" },
    { '{ { column = "archived", op = "eq", value = "a\\0b" } }', "zero byte" },
    { '{ { column = "archived", op = "eq", value = 0, sql = "1=1" } }', "sql" },
    { '{ { column = "archived", op = "eq", value = function() end } }', "function" },
  } do
    only_code(lint(case[1]), "bad_row_filter", case[2])
  end
end

function TestRowFilterLint:test_column_must_be_an_identifier()
  only_code(lint '{ { column = "deleted_at IS NULL OR 1", op = "is_null" } }',
    "bad_identifier")
end

function TestRowFilterLint:test_limits()
  local many = {}
  for i = 1, 65 do many[i] = tostring(i) end
  only_code(lint('{ { column = "priority", op = "in", value = { ' .. table.concat(many, ", ")
    .. ' } } }'), "limit_exceeded", "64")
  local conds = {}
  for i = 1, 17 do conds[i] = '{ column = "priority", op = "ne", value = ' .. i .. ' }' end
  only_code(lint('{ ' .. table.concat(conds, ", ") .. ' }'), "limit_exceeded", "16")
end

function TestRowFilterLint:test_unknown_column_with_a_db()
  local db = make_db()
  local fs = lint('{ { column = "removed_at", op = "is_null" } }', db)
  only_code(fs, "missing_column", "removed_at")
  -- without a database nothing is known
  lu.assertEquals(#lint('{ { column = "removed_at", op = "is_null" } }'), 0)
  -- app.tenants and app.workspaces too
  fs = lint(TICKET_FILTER, db, [[
app { name = "helpdesk",
  tenants = { row_filter = { { column = "gone_at", op = "is_null" } } },
  workspaces = { row_filter = { { column = "closed", op = "eq", value = true } } } }
]])
  lu.assertEquals(#fs, 2, codes(fs))
  for _, f in ipairs(fs) do lu.assertEquals(f.code, "missing_column") end
  lu.assertStrContains(codes(fs), "tenants.gone_at")
  lu.assertStrContains(codes(fs), "workspaces.closed")
end

function TestRowFilterLint:test_app_filter_is_checked_too()
  local fs = lint(TICKET_FILTER, nil,
    'app { name = "h", tenants = { row_filter = { { column = "deleted_at", op = "nope" } } } }')
  lu.assertEquals(#fs, 1, codes(fs))
  lu.assertEquals(fs[1].code, "bad_row_filter")
  lu.assertStrContains(fs[1].message, "app.tenants")
end

os.exit(lu.LuaUnit.run())
