-- The write guard: ctx:insert and ctx:update. Scope and the row_action capability apply
-- before anything is written; the workspace is derived from the tenant; a disagreeing
-- workspace_id, a foreign tenant_id or any change of tenant_id is rejected with
-- nil, message, "TG_REJECTED"; values are bound, never spliced into SQL.
--
-- Reference database: see scripts/refdb.lua (users 1 owner ws1 tenants 1-4, 3 readonly ws1
-- tenant 1, 4 operator ws1 no tenant, 5 owner ws2, 6 nothing; workspace w owns 4w-3..4w).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local MISSING = 999999999

-- A fresh reference database and a raw connection; add_ws adds policies.workspace_id
-- (NULL everywhere) before the engine opens.
local function setup(add_ws)
  local path = H.refdb(60)
  local db = tg.connect(path)
  if add_ws then db:exec("ALTER TABLE policies ADD COLUMN workspace_id INTEGER") end
  local eng = tg.open { db = path, rules = H.shipped_rules }
  return eng, db
end

local function ctx_of(eng, user, workspace, tenant)
  return eng:context { user = user, workspace = workspace, tenant = tenant }
end

local function policy(extra)
  local v = { display_name = "guarded", policy_type = "deviceConfiguration",
    created_at = "2026-06-01 00:00:00" }
  for k, x in pairs(extra or {}) do v[k] = x end
  return v
end

local function count(db)
  return db:value("SELECT count(*) FROM policies")
end

local function row(db, id)
  return db:query("SELECT * FROM policies WHERE id = ?", id)[1]
end

local function row_of(db, tenant, k)
  return db:value("SELECT id FROM policies WHERE tenant_id = ? ORDER BY id LIMIT 1 OFFSET ?",
    tenant, (k or 1) - 1)
end

local function has_column(db, tbl, col)
  for _, c in ipairs(db:query("SELECT name FROM pragma_table_info(?)", tbl)) do
    if c.name == col then return true end
  end
  return false
end

-- Asserts a rejected write: nil, a message containing each of `parts`, "TG_REJECTED".
local function rejected(parts, ok, msg, code)
  lu.assertNil(ok, "the write should be rejected")
  lu.assertEquals(code, "TG_REJECTED")
  lu.assertIsString(msg)
  for _, p in ipairs(parts) do lu.assertStrContains(msg, p) end
end

-- ---- inserts ---------------------------------------------------------------------------

TestInsert = {}
function TestInsert:tearDown()
  if self.eng then self.eng:close() end
  if self.db then self.db:close() end
  H.cleanup()
end

-- An inserted row gets its tenant's workspace_id without the user naming it.
function TestInsert:test_derives_workspace_once_column_exists()
  self.eng, self.db = setup(true)
  local d = ctx_of(self.eng, 1, 1, 3):insert("Policy", policy())
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertIsNumber(d.id)
  local r = row(self.db, d.id)
  lu.assertEquals({ r.tenant_id, r.workspace_id, r.display_name }, { 3, 1, "guarded" })
  d = ctx_of(self.eng, 5, 2, 6):insert("Policy", policy())
  lu.assertEquals(d.status, 200)
  r = row(self.db, d.id)
  lu.assertEquals({ r.tenant_id, r.workspace_id }, { 6, 2 })
  -- the new row is reachable through the resolver in its tenant only
  local got = ctx_of(self.eng, 5, 2, 6):resolve { family = "Policy", path = "detail", id = d.id }
  lu.assertEquals(got.status, 200)
  lu.assertEquals(got.record.workspace_id, 2)
  lu.assertEquals(ctx_of(self.eng, 5, 2, 5):resolve { family = "Policy", path = "detail",
    id = d.id }.reason, "foreign_tenant")
end

-- Inserts work before the rollout adds workspace_id; a wrong workspace_id is still rejected.
function TestInsert:test_works_before_column_exists()
  self.eng, self.db = setup(false)
  lu.assertFalse(has_column(self.db, "policies", "workspace_id"))
  local ctx = ctx_of(self.eng, 1, 1, 3)
  local d = ctx:insert("Policy", policy())
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(row(self.db, d.id).tenant_id, 3)
  d = ctx:insert("Policy", policy { workspace_id = 1 })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(row(self.db, d.id).tenant_id, 3)
  lu.assertFalse(has_column(self.db, "policies", "workspace_id"))
  -- a disagreeing one is rejected even before the column exists
  local n = count(self.db)
  rejected({ "policies", "disagrees" }, ctx:insert("Policy", policy { workspace_id = 2 }))
  lu.assertEquals(count(self.db), n)
end

-- Inserting a wrong workspace_id gives nil, a message naming the table, TG_REJECTED; no row.
function TestInsert:test_rejects_disagreeing_workspace()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 3)
  local n = count(self.db)
  rejected({ "policies", "disagrees" }, ctx:insert("Policy", policy { workspace_id = 2 }))
  rejected({ "policies", "disagrees" }, ctx:insert("Policy", policy { workspace_id = 99 }))
  rejected({ "policies", "disagrees" }, ctx:insert("Policy", policy { workspace_id = "1" }))
  lu.assertEquals(count(self.db), n)
end

-- Inserting with the right workspace_id (or tg.null) works and stores the tenant's workspace.
function TestInsert:test_accepts_agreeing_workspace()
  self.eng, self.db = setup(true)
  local d = ctx_of(self.eng, 1, 1, 3):insert("Policy", policy { workspace_id = 1 })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(row(self.db, d.id).workspace_id, 1)
  d = ctx_of(self.eng, 1, 1, 3):insert("Policy", policy { workspace_id = tg.null })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(row(self.db, d.id).workspace_id, 1, "NULL means derive, never NULL")
end

-- Inserting with a tenant_id other than the context's is rejected; nothing written.
function TestInsert:test_rejects_other_tenant()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 3)
  local n = count(self.db)
  rejected({ "policies", "tenant_id" }, ctx:insert("Policy", policy { tenant_id = 2 }))
  rejected({ "policies", "tenant_id" }, ctx:insert("Policy", policy { tenant_id = 5 }))
  rejected({ "policies", "tenant_id" }, ctx:insert("Policy", policy { tenant_id = "3" }))
  lu.assertEquals(count(self.db), n)
  local d = ctx:insert("Policy", policy { tenant_id = 3 })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(row(self.db, d.id).tenant_id, 3)
end

-- Inserts without scope are 404, by a readonly user 403, and never write a row.
function TestInsert:test_scope_and_capability_before_write()
  self.eng, self.db = setup(true)
  local n = count(self.db)
  local cases = {
    { 4, 1, 1, 404, "not_entitled" },
    { 2, 1, 3, 404, "not_entitled" },
    { 1, 1, nil, 404, "no_tenant_context" },
    { 6, 1, 1, 404, "not_member" },
    { 1, 1, 5, 404, "tenant_not_in_workspace" },
    { 3, 1, 1, 403, "missing_capability" },
    { 7, 1, 3, 403, "missing_capability" }, -- owner of ws1, readonly in tenant 3
  }
  for _, c in ipairs(cases) do
    local what = ("user %d ws %d tenant %s"):format(c[1], c[2], tostring(c[3]))
    local d = ctx_of(self.eng, c[1], c[2], c[3]):insert("Policy", policy())
    lu.assertEquals({ d.status, d.reason }, { c[4], c[5] }, what)
    lu.assertNil(d.id, what)
    lu.assertEquals(count(self.db), n, what .. ": nothing written")
  end
  -- scope comes before checking the values: a stranger learns nothing from a bad tenant_id
  local d = ctx_of(self.eng, 4, 1, 1):insert("Policy", policy { tenant_id = 2 })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_entitled" })
  -- a capability the request names is required too
  d = ctx_of(self.eng, 2, 1, 1):insert("Policy", policy(), { capability = "policy.delete" })
  lu.assertEquals({ d.status, d.reason }, { 403, "missing_capability" })
  lu.assertEquals(count(self.db), n)
  -- a family without a row action cannot be written through
  d = ctx_of(self.eng, 1, 1, 1):insert("EntraGroup", { display_name = "x", created_at = "x" })
  lu.assertEquals({ d.status, d.reason }, { 404, "path_not_declared" })
end

-- A misspelled column, family or capability raises and writes nothing.
function TestInsert:test_unknown_columns_raise()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 3)
  local n = count(self.db)
  lu.assertErrorMsgContains("nope", ctx.insert, ctx, "Policy", policy { nope = 1 })
  lu.assertErrorMsgContains("unknown family", ctx.insert, ctx, "Nope", policy())
  lu.assertErrorMsgContains("unknown capability", ctx.insert, ctx, "Policy", policy(),
    { capability = "nope.x" })
  lu.assertEquals(count(self.db), n)
end

-- A row the database refuses (NOT NULL left out) returns nil, message, TG_REJECTED.
function TestInsert:test_database_constraint_rejected()
  self.eng, self.db = setup(true)
  local n = count(self.db)
  local v = policy()
  v.display_name = nil
  local ok, msg, code = ctx_of(self.eng, 1, 1, 3):insert("Policy", v)
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REJECTED")
  lu.assertStrContains(msg, "display_name")
  lu.assertEquals(count(self.db), n)
end

-- Inserting with another tenant's row id is rejected and that row is untouched.
function TestInsert:test_insert_with_foreign_id_rejected()
  self.eng, self.db = setup(true)
  local foreign = row_of(self.db, 2)
  local before = row(self.db, foreign)
  local ok, _, code = ctx_of(self.eng, 1, 1, 1):insert("Policy", policy { id = foreign })
  lu.assertNil(ok)
  lu.assertEquals(code, "TG_REJECTED")
  lu.assertEquals(row(self.db, foreign), before)
end

-- ---- updates ---------------------------------------------------------------------------

TestUpdate = {}
function TestUpdate:tearDown()
  if self.eng then self.eng:close() end
  if self.db then self.db:close() end
  H.cleanup()
end

-- Updating a foreign, missing or unentitled record is 404 (readonly: 403); the row is unchanged.
function TestUpdate:test_foreign_record_404_unchanged()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 1)
  for _, c in ipairs { { 2, "foreign_tenant" }, { 5, "foreign_workspace" } } do
    local id = row_of(self.db, c[1])
    local before = row(self.db, id)
    local d = ctx:update("Policy", id, { display_name = "hijacked" })
    lu.assertEquals({ d.status, d.reason }, { 404, c[2] })
    lu.assertEquals(row(self.db, id), before)
  end
  local d = ctx:update("Policy", MISSING, { display_name = "x" })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  -- readonly: in scope, 403, unchanged
  local id = row_of(self.db, 1)
  local before = row(self.db, id)
  d = ctx_of(self.eng, 3, 1, 1):update("Policy", id, { display_name = "readonly edit" })
  lu.assertEquals({ d.status, d.reason }, { 403, "missing_capability" })
  lu.assertEquals(row(self.db, id), before)
  -- not entitled
  d = ctx_of(self.eng, 4, 1, 1):update("Policy", id, { display_name = "x" })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_entitled" })
  lu.assertEquals(row(self.db, id), before)
end

-- Changing tenant_id in an update is rejected with 'can never change'; nothing of it is written.
function TestUpdate:test_tenant_id_never_changes()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local id = row_of(self.db, 1)
  local before = row(self.db, id)
  for _, t in ipairs { 2, 5, 999 } do
    rejected({ "tenant_id", "can never change" },
      ctx:update("Policy", id, { tenant_id = t, display_name = "moved" }))
    lu.assertEquals(row(self.db, id), before)
  end
  rejected({ "tenant_id", "can never change" }, ctx:update("Policy", id, { tenant_id = tg.null }))
  lu.assertEquals(row(self.db, id), before)
  -- naming the tenant it already has is not a change
  local d = ctx:update("Policy", id, { tenant_id = 1, display_name = "same tenant" })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(row(self.db, id).tenant_id, 1)
  -- a disagreeing workspace is rejected on update too
  rejected({ "policies", "disagrees" }, ctx:update("Policy", id, { workspace_id = 2 }))
  lu.assertEquals(row(self.db, id).display_name, "same tenant")
  lu.assertErrorMsgContains("nope", ctx.update, ctx, "Policy", id, { nope = 1 })
end

-- Editing a not-yet-backfilled row fills in its workspace_id.
function TestUpdate:test_binds_null_workspace()
  self.eng, self.db = setup(true)
  local id = row_of(self.db, 3)
  local other = row_of(self.db, 3, 2)
  lu.assertNil(row(self.db, id).workspace_id)
  local d = ctx_of(self.eng, 1, 1, 3):update("Policy", id, { display_name = "edited" })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(d.id, id)
  local r = row(self.db, id)
  lu.assertEquals({ r.display_name, r.tenant_id, r.workspace_id }, { "edited", 3, 1 })
  lu.assertNil(row(self.db, other).workspace_id, "only the updated row is bound")
end

-- A row whose workspace_id disagrees with its tenant cannot be updated: 404, unchanged.
function TestUpdate:test_mismatched_row_not_updated()
  self.eng, self.db = setup(true)
  local id = row_of(self.db, 1)
  self.db:query("UPDATE policies SET workspace_id = 2 WHERE id = ?", id)
  local before = row(self.db, id)
  local d = ctx_of(self.eng, 1, 1, 1):update("Policy", id, { display_name = "x" })
  lu.assertEquals({ d.status, d.reason }, { 404, "workspace_mismatch" })
  lu.assertEquals(row(self.db, id), before)
end

-- Text with quotes and SQL is stored exactly as typed; no statement in it runs.
function TestUpdate:test_metacharacters_stored_verbatim()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local id = row_of(self.db, 1)
  local values = {
    "x'); DROP TABLE policies; --",
    "\"; DELETE FROM policies WHERE 1=1; --",
    "100% _admins_ \\ ' \" ? ?1 :name @x $y",
    "Ünïcødé ✓",
  }
  local n = count(self.db)
  for _, v in ipairs(values) do
    local d = ctx:update("Policy", id, { display_name = v, platform = v })
    lu.assertEquals(d.status, 200, v)
    local r = row(self.db, id)
    lu.assertEquals(r.display_name, v)
    lu.assertEquals(r.platform, v)
    d = ctx:insert("Policy", policy { display_name = v })
    lu.assertEquals(d.status, 200, v)
    lu.assertEquals(row(self.db, d.id).display_name, v)
    n = n + 1
  end
  lu.assertEquals(count(self.db), n, "no statement in a value ran")
  lu.assertTrue(has_column(self.db, "policies", "display_name"))
  local d = ctx:resolve { family = "Policy", path = "detail", id = id }
  lu.assertEquals(d.record.display_name, values[#values])
end

-- Clearing a field with tg.null stores NULL; the primary key cannot be updated.
function TestUpdate:test_null_writes_null()
  self.eng, self.db = setup(true)
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local id = row_of(self.db, 1)
  lu.assertNotNil(row(self.db, id).platform)
  local d = ctx:update("Policy", id, { platform = tg.null })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(self.db:value("SELECT platform IS NULL FROM policies WHERE id = ?", id), 1)
  lu.assertNil(ctx:resolve { family = "Policy", path = "detail", id = id }.record.platform)
  d = ctx:insert("Policy", policy { platform = tg.null })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(self.db:value("SELECT platform IS NULL FROM policies WHERE id = ?", d.id), 1)
  -- the primary key cannot be changed through an update
  rejected({ "id" }, ctx:update("Policy", id, { id = id + 100000 }))
  lu.assertNotNil(row(self.db, id))
end

os.exit(lu.LuaUnit.run())
