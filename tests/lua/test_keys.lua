-- Typed keys: an application keyed by text UUIDs everywhere (records, users, workspaces,
-- tenants) and a family keyed by 16-byte BLOB UUIDs. Every path takes the key in its natural
-- type; index pages by keyset on it; bulk ids collapse by type and value; relation managers
-- compare the owner by type and value (5 is not "5"); writes return the id as stored; the
-- decision log keeps each key's type; a key its column cannot hold raises before any
-- decision.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local RULES = {
  ["app.lua"] = [[
app { name = "helpdesk" }
]],
  ["roles.lua"] = [[
capabilities { "t.view", "t.edit" }
role "owner" { "*" }
role "viewer" { "t.view" }
]],
  ["families.lua"] = [[
family "Ticket" {
  table = "tickets", primary_surface = "TicketResource", search_posture = "scoped",
  search_columns = { "title" }, action_surface_status = "declared",
  paths = {
    index = { capability = "t.view" }, detail = { capability = "t.view" },
    row_action = { capability = "t.edit" }, bulk_action = { capability = "t.edit" },
    global_search = { capability = "t.view" }, canonical_viewer = { capability = "t.view" },
  },
}
family "Comment" {
  table = "comments", primary_surface = "CommentResource", search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "t.view" }, detail = { capability = "t.view" },
    relation_manager = { owner = "Ticket", via = "ticket_id", capability = "t.view" },
  },
}
family "Attachment" {
  table = "attachments", primary_surface = "AttachmentResource",
  search_posture = "not_applicable", action_surface_status = "declared",
  paths = {
    index = { capability = "t.view" }, detail = { capability = "t.view" },
    row_action = { capability = "t.edit" }, bulk_action = { capability = "t.edit" },
  },
}
family "Folder" {
  table = "folders", primary_surface = "FolderResource", search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = { index = { capability = "t.view" }, detail = { capability = "t.view" },
            bulk_action = { capability = "t.edit" } },
}
family "Doc" {
  table = "docs", primary_surface = "DocResource", search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "t.view" }, detail = { capability = "t.view" },
    relation_manager = { owner = "Folder", via = "folder_id", capability = "t.view" },
  },
}
family "Note" {
  table = "notes", primary_surface = "NoteResource", search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "t.view" }, detail = { capability = "t.view" },
    relation_manager = { owner = "Folder", via = "folder_ref", capability = "t.view" },
  },
}
]],
  ["exceptions.lua"] = [[
exception "Alerts" {
  exception_kind = "deferred_family", table = "alerts", surface = "AlertResource",
  why_excepted = "test",
  still_required_checks = { "workspace_member", "record_in_workspace", "tenant_entitled",
                            "capability" },
  capability = "t.view",
}
]],
}

local SCHEMA = [[
CREATE TABLE workspaces(id TEXT PRIMARY KEY);
CREATE TABLE tenants(id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL);
CREATE TABLE workspace_memberships(user_id TEXT, workspace_id TEXT, role TEXT);
CREATE TABLE tenant_memberships(user_id TEXT, tenant_id TEXT, role TEXT);
CREATE TABLE operation_runs(id INTEGER PRIMARY KEY, type, status, workspace_id, summary,
  created_at, started_at, finished_at);
CREATE TABLE audit_logs(id INTEGER PRIMARY KEY, workspace_id, tenant_id, action, subject,
  metadata, created_at);
CREATE TABLE tickets(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, workspace_id TEXT,
  title TEXT);
CREATE TABLE comments(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, workspace_id TEXT,
  ticket_id TEXT, body TEXT);
CREATE TABLE attachments(id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, workspace_id TEXT,
  name TEXT);
CREATE TABLE folders(id PRIMARY KEY, tenant_id TEXT NOT NULL, workspace_id TEXT, name TEXT);
CREATE TABLE docs(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, workspace_id TEXT, folder_id,
  body TEXT);
CREATE TABLE notes(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, workspace_id TEXT,
  folder_ref TEXT, body TEXT);
CREATE TABLE alerts(id TEXT PRIMARY KEY, workspace_id TEXT, tenant_id TEXT, body TEXT);
INSERT INTO workspaces VALUES ('ws-a'), ('ws-b');
INSERT INTO tenants VALUES ('ten-1', 'ws-a'), ('ten-2', 'ws-a'), ('ten-9', 'ws-b');
INSERT INTO workspace_memberships VALUES ('auth0|alice', 'ws-a', 'owner'),
  ('auth0|bob', 'ws-a', 'viewer'), ('auth0|zed', 'ws-b', 'owner');
INSERT INTO tenant_memberships VALUES ('auth0|alice', 'ten-1', NULL),
  ('auth0|bob', 'ten-1', NULL), ('auth0|zed', 'ten-9', NULL);
]]

local ALICE, BOB = "auth0|alice", "auth0|bob"
local N_OWN = 25

-- A UUID-like text key; n orders differently from the text.
local function uuid(n)
  return ("%08x-0000-4000-8000-%012x"):format((n * 2654435761) % 4294967296, n)
end

-- 16 bytes, the first byte varying with n so text order and insertion order differ.
local function blob(n)
  return string.char((n * 37) % 256) .. ("k"):rep(14) .. string.char(n % 256)
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local function setup()
  local dir = H.tmpdir()
  local path = dir .. "/app.db"
  local db = tg.connect(path)
  db:exec(SCHEMA)
  local function add(tbl, cols, vals)
    local marks = {}
    for i = 1, #vals do marks[i] = "?" end
    db:query(("INSERT INTO %s (%s) VALUES (%s)"):format(tbl, cols, table.concat(marks, ", ")),
      table.unpack(vals))
  end
  local n = 0
  local own, other, far = {}, {}, {}
  for i = 1, N_OWN do
    n = n + 1
    own[i] = uuid(n)
    add("tickets", "id, tenant_id, workspace_id, title", { own[i], "ten-1", "ws-a", "own " .. i })
  end
  for i = 1, 3 do
    n = n + 1
    other[i] = uuid(n)
    add("tickets", "id, tenant_id, title", { other[i], "ten-2", "own too" })
  end
  for i = 1, 2 do
    n = n + 1
    far[i] = uuid(n)
    add("tickets", "id, tenant_id, title", { far[i], "ten-9", "own far" })
  end
  -- comments: two on own[1], one on own[2], one of ten-2 naming own[1]
  add("comments", "id, tenant_id, ticket_id, body", { "c-1", "ten-1", own[1], "a" })
  add("comments", "id, tenant_id, ticket_id, body", { "c-2", "ten-1", own[1], "b" })
  add("comments", "id, tenant_id, ticket_id, body", { "c-3", "ten-1", own[2], "c" })
  add("comments", "id, tenant_id, ticket_id, body", { "c-4", "ten-2", own[1], "d" })
  -- attachments keyed by 16 raw bytes
  for i = 1, 12 do
    db:exec(("INSERT INTO attachments VALUES (x'%s', '%s', NULL, 'f%d')")
      :format(hex(blob(i)), i <= 10 and "ten-1" or "ten-2", i))
  end
  -- folders: the integer 5 and the text '5' are different keys of an untyped column
  db:exec([[
INSERT INTO folders VALUES (5, 'ten-1', NULL, 'integer five'), ('5', 'ten-1', NULL, 'text five');
INSERT INTO docs VALUES ('d-int', 'ten-1', NULL, 5, 'under 5'),
  ('d-text', 'ten-1', NULL, '5', 'under "5"');
INSERT INTO notes VALUES ('n-text', 'ten-1', NULL, '5', 'a TEXT column holds ''5''');
INSERT INTO alerts VALUES ('al-1', 'ws-a', 'ten-1', 'x'), ('al-2', 'ws-a', 'ten-2', 'y'),
  ('al-9', 'ws-b', 'ten-9', 'z'), ('al-0', 'ws-a', NULL, 'w');
]])
  local eng = tg.open { db = path, rules = H.rule_dir(RULES) }
  return { eng = eng, db = db, path = path, dir = dir, own = own, other = other, far = far }
end

local function expect(d, status, reason)
  lu.assertEquals(d.status, status, d.reason)
  if reason then lu.assertEquals(d.reason, reason) end
end

local function raises(needle, f, ...)
  local ok, err = pcall(f, ...)
  lu.assertFalse(ok, "expected an error containing " .. needle)
  lu.assertStrContains(tostring(err), needle, false)
end

TestTextKeys = {}

function TestTextKeys:setUp()
  self.s = setup()
  self.ctx = self.s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
end

function TestTextKeys:tearDown()
  self.ctx:close()
  self.s.eng:close()
  self.s.db:close()
  H.cleanup()
end

-- Index pages by keyset on a text id: every row once, in order, to the end.
function TestTextKeys:test_index_pages_text_keys_to_the_end()
  local seen, order, after, pages = {}, {}, nil, 0
  repeat
    local d = self.ctx:resolve { family = "Ticket", path = "index", limit = 7, after = after }
    expect(d, 200, "ok")
    pages = pages + 1
    lu.assertTrue(pages <= 5, "paging never reaches the end")
    for _, r in ipairs(d.records) do
      lu.assertNil(seen[r.id], "row " .. r.id .. " listed twice")
      lu.assertEquals(r.tenant_id, "ten-1")
      seen[r.id] = true
      order[#order + 1] = r.id
    end
    if d.has_more then
      lu.assertIsString(d.next_after)
      lu.assertEquals(d.next_after, d.records[#d.records].id)
    end
    after = d.next_after
  until not d.has_more
  lu.assertEquals(#order, N_OWN)
  local sorted = { table.unpack(order) }
  table.sort(sorted)
  lu.assertEquals(order, sorted)
end

function TestTextKeys:test_detail_row_action_and_reasons()
  local s = self.s
  local d = self.ctx:resolve { family = "Ticket", path = "detail", id = s.own[3] }
  expect(d, 200, "ok")
  lu.assertEquals(d.record.id, s.own[3])
  expect(self.ctx:resolve { family = "Ticket", path = "detail", id = s.other[1] }, 404,
    "foreign_tenant")
  expect(self.ctx:resolve { family = "Ticket", path = "detail", id = s.far[1] }, 404,
    "foreign_workspace")
  expect(self.ctx:resolve { family = "Ticket", path = "detail", id = "nope" }, 404, "not_found")
  expect(self.ctx:resolve { family = "Ticket", path = "row_action", id = s.own[1],
    capability = "t.edit" }, 200, "ok")
  local bob = s.eng:context { user = BOB, workspace = "ws-a", tenant = "ten-1" }
  expect(bob:resolve { family = "Ticket", path = "row_action", id = s.own[1] }, 403,
    "missing_capability")
  expect(bob:resolve { family = "Ticket", path = "row_action", id = s.other[1] }, 404)
  bob:close()
  -- the first decision of a fresh context (scope and record in one statement)
  local fresh = s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
  expect(fresh:resolve { family = "Ticket", path = "detail", id = s.own[5] }, 200, "ok")
  fresh:close()
  fresh = s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
  expect(fresh:resolve { family = "Ticket", path = "detail", id = s.other[2] }, 404,
    "foreign_tenant")
  fresh:close()
end

-- A route tenant of another workspace, or none, or a stranger: 404 as with integer keys.
function TestTextKeys:test_scope_with_text_keys()
  local s = self.s
  local function ctx(user, ws, tenant)
    return s.eng:context { user = user, workspace = ws, tenant = tenant }
  end
  local c = ctx(ALICE, "ws-a", "ten-9")
  expect(c:resolve { family = "Ticket", path = "index" }, 404, "tenant_not_in_workspace")
  c:close()
  c = ctx(ALICE, "ws-a", "ten-2")
  expect(c:resolve { family = "Ticket", path = "index" }, 404, "not_entitled")
  c:close()
  c = ctx(ALICE, "ws-a")
  expect(c:resolve { family = "Ticket", path = "index" }, 404, "no_tenant_context")
  c:close()
  c = ctx("auth0|zed", "ws-a", "ten-1")
  expect(c:resolve { family = "Ticket", path = "detail", id = s.own[1] }, 404, "not_member")
  c:close()
end

function TestTextKeys:test_bulk_collapses_duplicates_by_type_and_value()
  local s = self.s
  local d = self.ctx:resolve { family = "Ticket", path = "bulk_action",
    ids = { s.own[1], s.own[2], s.own[1] } }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 2)
  expect(self.ctx:resolve { family = "Ticket", path = "bulk_action",
    ids = { s.own[1], s.other[1] } }, 404, "foreign_tenant")
  expect(self.ctx:resolve { family = "Ticket", path = "bulk_action",
    ids = { s.own[1], "missing" } }, 404, "not_found")
end

function TestTextKeys:test_relation_manager_text_owner()
  local s = self.s
  local d = self.ctx:resolve { family = "Comment", path = "relation_manager", owner = s.own[1] }
  expect(d, 200, "ok")
  local ids = {}
  for _, r in ipairs(d.records) do ids[#ids + 1] = r.id end
  lu.assertEquals(ids, { "c-1", "c-2" })
  expect(self.ctx:resolve { family = "Comment", path = "relation_manager", owner = s.own[2],
    id = "c-1" }, 404, "wrong_owner")
  expect(self.ctx:resolve { family = "Comment", path = "relation_manager", owner = s.own[1],
    id = "c-2" }, 200, "ok")
  expect(self.ctx:resolve { family = "Comment", path = "relation_manager", owner = s.other[1] },
    404, "owner_foreign_tenant")
end

-- An integer 5 and a text "5" are different owners, whatever SQL would coerce.
function TestTextKeys:test_relation_owner_compared_by_type_and_value()
  local function kids(owner, family)
    local d = self.ctx:resolve { family = family or "Doc", path = "relation_manager",
      owner = owner }
    expect(d, 200, "ok")
    local ids = {}
    for _, r in ipairs(d.records) do ids[#ids + 1] = r.id end
    return ids
  end
  lu.assertEquals(kids(5), { "d-int" })
  lu.assertEquals(kids("5"), { "d-text" })
  expect(self.ctx:resolve { family = "Doc", path = "relation_manager", owner = 5,
    id = "d-text" }, 404, "wrong_owner")
  expect(self.ctx:resolve { family = "Doc", path = "relation_manager", owner = "5",
    id = "d-int" }, 404, "wrong_owner")
  expect(self.ctx:resolve { family = "Doc", path = "relation_manager", owner = 5,
    id = "d-int" }, 200, "ok")
  -- a TEXT column holding '5' is not owned by the integer 5, though SQL compares them equal
  lu.assertEquals(kids(5, "Note"), {})
  lu.assertEquals(kids("5", "Note"), { "n-text" })
  expect(self.ctx:resolve { family = "Note", path = "relation_manager", owner = 5,
    id = "n-text" }, 404, "wrong_owner")
  -- the two folders are two records
  expect(self.ctx:resolve { family = "Folder", path = "detail", id = 5 }, 200)
  lu.assertEquals(self.ctx:resolve { family = "Folder", path = "detail", id = 5 }.record.name,
    "integer five")
  lu.assertEquals(self.ctx:resolve { family = "Folder", path = "detail", id = "5" }.record.name,
    "text five")
  expect(self.ctx:resolve { family = "Folder", path = "index" }, 200)
  lu.assertEquals(#self.ctx:resolve { family = "Folder", path = "index" }.records, 2)
  -- duplicates collapse by type and value: 5 twice and "5" are two records
  local d = self.ctx:resolve { family = "Folder", path = "bulk_action", ids = { 5, "5", 5 } }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 2)
end

function TestTextKeys:test_global_search_and_canonical_viewer()
  local s = self.s
  local d = self.ctx:resolve { family = "Ticket", path = "global_search", query = "own" }
  expect(d, 200, "ok")
  for _, r in ipairs(d.records) do lu.assertEquals(r.tenant_id, "ten-1") end
  lu.assertEquals(#d.records, 50 >= N_OWN and N_OWN or 50)
  local viewer = s.eng:context { user = ALICE, workspace = "ws-a" }
  d = viewer:resolve { family = "Ticket", path = "canonical_viewer", id = s.own[4] }
  expect(d, 200, "ok")
  lu.assertEquals(d.record.id, s.own[4])
  expect(viewer:resolve { family = "Ticket", path = "canonical_viewer", id = s.other[1] }, 404,
    "not_entitled")
  expect(viewer:resolve { family = "Ticket", path = "canonical_viewer", id = s.far[1] }, 404,
    "foreign_workspace")
  viewer:close()
  -- a route tenant never widens to another tenant
  expect(self.ctx:resolve { family = "Ticket", path = "canonical_viewer", id = s.other[1] }, 404,
    "foreign_tenant")
end

function TestTextKeys:test_exception_text_keys()
  local viewer = self.s.eng:context { user = ALICE, workspace = "ws-a" }
  expect(viewer:resolve { exception = "Alerts", path = "detail", id = "al-1" }, 200, "ok")
  expect(viewer:resolve { exception = "Alerts", path = "detail", id = "al-2" }, 404,
    "not_entitled")
  expect(viewer:resolve { exception = "Alerts", path = "detail", id = "al-9" }, 404,
    "foreign_workspace")
  local d = viewer:resolve { exception = "Alerts", path = "index", limit = 1 }
  expect(d, 200, "ok")
  local ids = {}
  while true do
    for _, r in ipairs(d.records) do ids[#ids + 1] = r.id end
    if not d.has_more then break end
    d = viewer:resolve { exception = "Alerts", path = "index", limit = 1, after = d.next_after }
  end
  lu.assertEquals(ids, { "al-0", "al-1" })
  raises("id: expected a text key for alerts.id, got integer", viewer.resolve, viewer,
    { exception = "Alerts", path = "detail", id = 1 })
  viewer:close()
end

function TestTextKeys:test_writes_with_text_keys()
  local s = self.s
  local d = assert(self.ctx:insert("Ticket", { id = "t-new", title = "fresh" }))
  expect(d, 200, "ok")
  lu.assertEquals(d.id, "t-new")
  lu.assertEquals(s.db:value("SELECT workspace_id FROM tickets WHERE id = 't-new'"), "ws-a")
  local ok, msg, code = self.ctx:insert("Ticket", { id = "t-x", tenant_id = "ten-2" })
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REJECTED")
  lu.assertStrContains(msg, "'ten-1'")
  ok, msg, code = self.ctx:insert("Ticket", { id = "t-y", workspace_id = "ws-b" })
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REJECTED")
  -- the tenant and workspace given as they are stored are accepted
  d = assert(self.ctx:insert("Ticket", { id = "t-z", tenant_id = "ten-1", workspace_id = "ws-a" }))
  expect(d, 200, "ok")
  raises("id: expected a text key for tickets.id, got integer", self.ctx.insert, self.ctx,
    "Ticket", { id = 42, title = "x" })
  d = assert(self.ctx:update("Ticket", "t-new", { title = "renamed" }))
  expect(d, 200, "ok")
  lu.assertEquals(d.id, "t-new")
  lu.assertEquals(s.db:value("SELECT title FROM tickets WHERE id = 't-new'"), "renamed")
  ok, msg, code = self.ctx:update("Ticket", "t-new", { tenant_id = "ten-2" })
  lu.assertNil(ok)
  lu.assertStrContains(msg, "never change")
  expect(assert(self.ctx:update("Ticket", s.other[1], { title = "stolen" })), 404)
  lu.assertEquals(s.db:value("SELECT title FROM tickets WHERE id = ?", s.other[1]), "own too")
  raises("id: expected a text key for tickets.id, got integer", self.ctx.update, self.ctx,
    "Ticket", 42, { title = "x" })
end

-- A key its column cannot hold raises before any decision (none is logged).
function TestTextKeys:test_mistyped_keys_raise_before_any_decision()
  local s = self.s
  local logged = 0
  s.eng:set_decision_log(function() logged = logged + 1 end)
  raises("id: expected a text key for tickets.id, got integer", self.ctx.resolve, self.ctx,
    { family = "Ticket", path = "detail", id = 42 })
  raises("ids[2]: expected a text key for tickets.id, got integer", self.ctx.resolve, self.ctx,
    { family = "Ticket", path = "bulk_action", ids = { s.own[1], 7 } })
  raises("after: expected a text key for tickets.id, got integer", self.ctx.resolve, self.ctx,
    { family = "Ticket", path = "index", after = 0 })
  raises("owner: expected a text key for tickets.id, got integer", self.ctx.resolve, self.ctx,
    { family = "Comment", path = "relation_manager", owner = 1 })
  raises("field 'id' must be an integer, got 1.5", self.ctx.resolve, self.ctx,
    { family = "Ticket", path = "detail", id = 1.5 })
  raises("field 'id' must be an integer or a string key, got table", self.ctx.resolve,
    self.ctx, { family = "Ticket", path = "detail", id = {} })
  lu.assertEquals(logged, 0)
  raises("user: expected a text key for workspace_memberships.user_id, got integer",
    s.eng.context, s.eng, { user = 7, workspace = "ws-a" })
  raises("workspace: expected a text key for workspaces.id, got integer", s.eng.context, s.eng,
    { user = ALICE, workspace = 1 })
  raises("tenant: expected a text key for tenants.id, got integer", s.eng.context, s.eng,
    { user = ALICE, workspace = "ws-a", tenant = 1 })
end

-- The decision log keeps each key's type: text as JSON strings, blobs as {"blob": hex}.
function TestTextKeys:test_decision_log_keeps_types()
  local s = self.s
  local file = s.dir .. "/decisions.jsonl"
  s.eng:set_decision_log(file)
  local ctx = s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
  ctx:resolve { family = "Ticket", path = "detail", id = s.own[1] }
  ctx:resolve { family = "Ticket", path = "bulk_action", ids = { s.own[1], s.own[2] } }
  ctx:resolve { family = "Doc", path = "relation_manager", owner = 5, id = "d-int" }
  ctx:resolve { family = "Attachment", path = "detail", id = blob(1) }
  ctx:close()
  s.eng:set_decision_log(nil)
  local lines = {}
  for line in io.lines(file) do lines[#lines + 1] = line end
  lu.assertEquals(#lines, 4)
  local function j(line, path) return s.db:value("SELECT json_extract(?, ?)", line, path) end
  local function t(line, path) return s.db:value("SELECT json_type(?, ?)", line, path) end
  lu.assertEquals(j(lines[1], "$.user"), ALICE)
  lu.assertEquals(j(lines[1], "$.workspace"), "ws-a")
  lu.assertEquals(j(lines[1], "$.tenant"), "ten-1")
  lu.assertEquals(t(lines[1], "$.ids[0]"), "text")
  lu.assertEquals(j(lines[1], "$.ids[0]"), s.own[1])
  lu.assertEquals(j(lines[2], "$.ids[1]"), s.own[2])
  lu.assertEquals(t(lines[3], "$.ids[0]"), "integer")
  lu.assertEquals(t(lines[3], "$.ids[1]"), "text")
  lu.assertEquals(t(lines[4], "$.ids[0]"), "object")
  lu.assertEquals(j(lines[4], "$.ids[0].blob"), hex(blob(1)))
  -- the Lua callback gets the keys as integers and strings
  local events = {}
  s.eng:set_decision_log(function(ev) events[#events + 1] = ev end)
  ctx = s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
  ctx:resolve { family = "Doc", path = "relation_manager", owner = 5, id = "d-int" }
  ctx:resolve { family = "Attachment", path = "detail", id = blob(2) }
  ctx:close()
  lu.assertEquals(events[1].user, ALICE)
  lu.assertEquals(events[1].tenant, "ten-1")
  lu.assertEquals(math.type(events[1].ids[1]), "integer")
  lu.assertEquals(events[1].ids, { 5, "d-int" })
  lu.assertEquals(events[2].ids, { blob(2) })
end

-- A log callback that empties the caller's ids list and collects garbage cannot pull the
-- text keys from under the decision (they are anchored privately for the call).
function TestTextKeys:test_bulk_text_ids_survive_a_callback_dropping_them()
  local s = self.s
  local list = { s.own[1] .. "", s.own[2] .. "" }
  local got
  s.eng:set_decision_log(function(ev)
    got = ev.ids
    for i = #list, 1, -1 do list[i] = nil end
    collectgarbage()
    collectgarbage()
  end)
  local d = self.ctx:resolve { family = "Ticket", path = "bulk_action", ids = list }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 2)
  lu.assertEquals(got, { s.own[1], s.own[2] })
  s.eng:set_decision_log(nil)
end

-- The guard-scenario matrix runs on the text- and blob-keyed schema: its fixture makes keys
-- of each column's type, and every mutant is caught.
function TestTextKeys:test_matrix_and_mutants_on_text_keys()
  self.ctx:close() -- run_matrix needs the engine to itself
  self.ctx = self.s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
  local r = self.s.eng:run_matrix()
  local fails = {}
  for _, row in ipairs(r) do
    if row.pass == false then
      fails[#fails + 1] = ("%s %s %s: %s"):format(row.family, row.scenario_type, row.path,
        tostring(row.message))
      for _, c in ipairs(row.checks or {}) do
        if not c.pass then fails[#fails + 1] = ("  %s %s: %s"):format(c.actor, c.what,
          tostring(c.failure)) end
      end
    end
  end
  lu.assertEquals(r.failed, 0, table.concat(fails, "\n"))
  lu.assertTrue(r.passed > 0)
  local survivors = {}
  for _, m in ipairs(tg.mutations()) do
    if self.s.eng:run_matrix(m.name).failed == 0 then survivors[#survivors + 1] = m.name end
  end
  lu.assertEquals(survivors, {}, "mutants the text-keyed matrix does not catch")
end

TestBlobKeys = {}

function TestBlobKeys:setUp()
  self.s = setup()
  self.ctx = self.s.eng:context { user = ALICE, workspace = "ws-a", tenant = "ten-1" }
end

TestBlobKeys.tearDown = TestTextKeys.tearDown

-- A Lua string is bound as a blob for a BLOB key column; blobs come back as strings.
function TestBlobKeys:test_detail_and_bulk()
  local d = self.ctx:resolve { family = "Attachment", path = "detail", id = blob(3) }
  expect(d, 200, "ok")
  lu.assertEquals(d.record.id, blob(3))
  lu.assertEquals(d.record.name, "f3")
  expect(self.ctx:resolve { family = "Attachment", path = "detail", id = blob(11) }, 404,
    "foreign_tenant")
  expect(self.ctx:resolve { family = "Attachment", path = "detail", id = hex(blob(3)) }, 404,
    "not_found")
  d = self.ctx:resolve { family = "Attachment", path = "bulk_action",
    ids = { blob(1), blob(2), blob(1) } }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 2)
  expect(self.ctx:resolve { family = "Attachment", path = "bulk_action",
    ids = { blob(1), blob(12) } }, 404)
  raises("id: expected a blob (or text) key for attachments.id, got integer", self.ctx.resolve,
    self.ctx, { family = "Attachment", path = "detail", id = 3 })
end

function TestBlobKeys:test_index_pages_blob_keys()
  local seen, n, after = {}, 0, nil
  for _ = 1, 10 do
    local d = self.ctx:resolve { family = "Attachment", path = "index", limit = 3, after = after }
    expect(d, 200, "ok")
    for _, r in ipairs(d.records) do
      lu.assertNil(seen[r.id], "listed twice")
      seen[r.id] = true
      n = n + 1
    end
    after = d.next_after
    if not d.has_more then break end
  end
  lu.assertEquals(n, 10)
end

function TestBlobKeys:test_insert_and_update_blob_key()
  local s = self.s
  local key = ("\0"):rep(3) .. "new-attachment\255"
  local d = assert(self.ctx:insert("Attachment", { id = key, name = "n" }))
  expect(d, 200, "ok")
  lu.assertEquals(d.id, key)
  lu.assertEquals(s.db:value("SELECT typeof(id) FROM attachments WHERE name = 'n'"), "blob")
  d = assert(self.ctx:update("Attachment", key, { name = "m" }))
  expect(d, 200, "ok")
  lu.assertEquals(d.id, key)
  lu.assertEquals(self.ctx:resolve { family = "Attachment", path = "detail", id = key }.record.name,
    "m")
end

os.exit(lu.LuaUnit.run())
