-- The record resolver: every access path of every family, each way it must fail (exact
-- status and reason, as in README "Decisions: the record resolver"), lists and pagination,
-- search escaping, rule versions across reload, roles, scope exceptions, decisions during
-- the workspace_id rollout, and the decision log.
--
-- Reference database (scripts/refdb.lua): workspace w owns tenants 4w-3..4w; row n of every
-- tenant-owned table belongs to tenant ((n*7)%12)+1, except the orphans (n%1000 == 500 and
-- the last row). Users: 1 owner ws1 (tenants 1-4), 2 operator ws1 (1-2), 3 readonly ws1 (1),
-- 4 operator ws1 (no tenant), 5 owner ws2 (5-8), 6 nothing, 7 owner ws1 but readonly in
-- tenant 3 (its only tenant), 8 owner ws3, 9 readonly ws2 (5-6), 10 operator ws1+ws2 (1, 5).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local ROWS = 520 -- includes the n%1000 == 500 orphan and the last-row orphan
local MISSING = 999999999

-- ---- helpers ---------------------------------------------------------------------------

local RULES
local function rules()
  if not RULES then
    local e = tg.open { rules = H.shipped_rules }
    RULES = e:rules()
    e:close()
  end
  return RULES
end

local function family(name)
  for _, f in ipairs(rules().families) do
    if f.name == name then return f end
  end
  error("no family " .. name)
end

-- A fresh reference database, an engine on it and a raw connection.
local function setup(rows)
  local path = H.refdb(rows or ROWS)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local db = tg.connect(path)
  return eng, db, path
end

local function ctx_of(eng, user, workspace, tenant)
  return eng:context { user = user, workspace = workspace, tenant = tenant }
end

-- The k-th row id (in id order) of `tenant` in `tbl`.
local function row_of(db, tbl, tenant, k)
  return db:value(("SELECT id FROM %s WHERE tenant_id = ? ORDER BY id LIMIT 1 OFFSET ?")
    :format(tbl), tenant, (k or 1) - 1)
end

local function orphan_of(db, tbl)
  return db:value(("SELECT min(id) FROM %s WHERE tenant_id > 12"):format(tbl))
end

local function ids_where(db, sql, ...)
  local out = {}
  for _, r in ipairs(db:query(sql, ...)) do out[#out + 1] = r.id end
  return out
end

local function ids_of(records)
  local out = {}
  for _, r in ipairs(records or {}) do out[#out + 1] = r.id end
  return out
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- Asserts status and reason; a refusal never carries rows.
local function expect(d, status, reason, what)
  lu.assertEquals({ status = d.status, reason = d.reason }, { status = status, reason = reason },
    what)
  if status ~= 200 then
    lu.assertNil(d.record, (what or "") .. ": a refusal carries no record")
    lu.assertNil(d.records, (what or "") .. ": a refusal carries no records")
  end
end

-- Every (family, path) pair the shipped rules declare.
local function each_path()
  local out = {}
  for _, f in ipairs(rules().families) do
    for _, p in ipairs(f.path_order) do out[#out + 1] = { f = f, p = p } end
  end
  return out
end

-- A child of the relation manager of f in `tenant`: child id and its owner id.
local function relation_child(db, f, tenant)
  local rm = f.paths.relation_manager
  local r = db:query(("SELECT id, %s AS owner FROM %s WHERE tenant_id = ? AND %s IS NOT NULL "
    .. "ORDER BY id LIMIT 1"):format(rm.via, f.table, rm.via), tenant)[1]
  return r and r.id, r and r.owner
end

-- A request on family f and path p aimed at rows of `tenant` (or at `id`).
local function request(db, f, p, tenant, id)
  local r = { family = f.name, path = p }
  if p == "detail" or p == "row_action" or p == "canonical_viewer" then
    r.id = id or row_of(db, f.table, tenant)
  elseif p == "bulk_action" then
    r.ids = { id or row_of(db, f.table, tenant) }
  elseif p == "relation_manager" then
    r.owner = id or row_of(db, family(f.paths.relation_manager.owner).table, tenant)
  elseif p == "global_search" then
    r.query = ""
  end
  return r
end

local function label(x, extra)
  return x.f.name .. "." .. x.p .. (extra and (" " .. extra) or "")
end

-- ---- every path: allowed, and each way it fails ------------------------------------------

TestPaths = {}
function TestPaths:setUp() self.eng, self.db = setup() end
function TestPaths:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- An entitled owner opens every declared path of every family and sees only their tenant's rows.
function TestPaths:test_allowed_every_path()
  local db = self.db
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local viewer = ctx_of(self.eng, 1, 1, nil)
  for _, x in ipairs(each_path()) do
    local f, p, what = x.f, x.p, label(x)
    if p == "index" then
      local d = ctx:resolve { family = f.name, path = p, limit = 500 }
      expect(d, 200, "ok", what)
      lu.assertEquals(ids_of(d.records),
        ids_where(db, ("SELECT id FROM %s WHERE tenant_id = 1 ORDER BY id"):format(f.table)), what)
      lu.assertFalse(d.has_more, what)
    elseif p == "detail" or p == "row_action" then
      local id = row_of(db, f.table, 1)
      local d = ctx:resolve { family = f.name, path = p, id = id }
      expect(d, 200, "ok", what)
      lu.assertEquals(d.record.id, id, what)
      lu.assertEquals(d.record.tenant_id, 1, what)
    elseif p == "bulk_action" then
      local a, b = row_of(db, f.table, 1, 1), row_of(db, f.table, 1, 2)
      local d = ctx:resolve { family = f.name, path = p, ids = { b, a } }
      expect(d, 200, "ok", what)
      lu.assertEquals(ids_of(d.records), { a, b }, what)
    elseif p == "relation_manager" then
      local child, owner = relation_child(db, f, 1)
      lu.assertNotNil(child, what .. ": the fixture has a child in tenant 1")
      local via = f.paths.relation_manager.via
      local d = ctx:resolve { family = f.name, path = p, owner = owner }
      expect(d, 200, "ok", what)
      lu.assertEquals(ids_of(d.records), ids_where(db, ("SELECT id FROM %s WHERE tenant_id = 1 "
        .. "AND %s = ? ORDER BY id"):format(f.table, via), owner), what)
      lu.assertTrue(#d.records >= 1, what)
      d = ctx:resolve { family = f.name, path = p, owner = owner, id = child }
      expect(d, 200, "ok", what .. " one child")
      lu.assertEquals(d.record.id, child, what)
    elseif p == "global_search" then
      local d = ctx:resolve { family = f.name, path = p, query = "" }
      expect(d, 200, "ok", what)
      lu.assertEquals(ids_of(d.records),
        ids_where(db, ("SELECT id FROM %s WHERE tenant_id = 1 ORDER BY id"):format(f.table)), what)
    elseif p == "canonical_viewer" then
      local id = row_of(db, f.table, 1)
      local d = viewer:resolve { family = f.name, path = p, id = id }
      expect(d, 200, "ok", what)
      lu.assertEquals(d.record.id, id, what)
    end
  end
end

-- A stranger (user 6) gets 404 not_member on every path, with or without a tenant.
function TestPaths:test_not_member_every_path()
  local ctx = ctx_of(self.eng, 6, 1, 1)
  local no_tenant = ctx_of(self.eng, 6, 1, nil)
  for _, x in ipairs(each_path()) do
    expect(ctx:resolve(request(self.db, x.f, x.p, 1)), 404, "not_member", label(x))
    -- membership is checked before the tenant context
    expect(no_tenant:resolve(request(self.db, x.f, x.p, 1)), 404, "not_member",
      label(x, "without tenant"))
  end
end

-- A member not entitled to the tenant gets 404 not_entitled everywhere, even for missing ids.
function TestPaths:test_not_entitled_every_path()
  local ctx = ctx_of(self.eng, 4, 1, 1)       -- operator of ws1, entitled to no tenant
  local viewer = ctx_of(self.eng, 2, 1, nil)  -- entitled to tenants 1-2 only
  for _, x in ipairs(each_path()) do
    if x.p == "canonical_viewer" then
      expect(viewer:resolve(request(self.db, x.f, x.p, 3)), 404, "not_entitled", label(x))
    else
      expect(ctx:resolve(request(self.db, x.f, x.p, 1)), 404, "not_entitled", label(x))
      if x.p ~= "index" and x.p ~= "global_search" then
        expect(ctx:resolve(request(self.db, x.f, x.p, 1, MISSING)), 404, "not_entitled",
          label(x, "missing record"))
      end
    end
  end
end

-- A sibling tenant's record (even one I may open) is 404 foreign_tenant; lists never show it.
function TestPaths:test_foreign_tenant_every_path()
  local db = self.db
  local ctx = ctx_of(self.eng, 1, 1, 1)
  for _, x in ipairs(each_path()) do
    local f, p, what = x.f, x.p, label(x)
    if p == "detail" or p == "row_action" or p == "bulk_action" or p == "canonical_viewer" then
      expect(ctx:resolve(request(db, f, p, 2)), 404, "foreign_tenant", what)
    elseif p == "relation_manager" then
      expect(ctx:resolve(request(db, f, p, 2)), 404, "owner_foreign_tenant", what)
      -- the owner is in scope, the requested child is not
      local _, owner = relation_child(db, f, 1)
      local child = row_of(db, f.table, 2)
      expect(ctx:resolve { family = f.name, path = p, owner = owner, id = child }, 404,
        "foreign_tenant", what .. " child")
    else -- index, global_search
      local d = ctx:resolve { family = f.name, path = p, query = p == "global_search" and ""
        or nil, limit = 500 }
      expect(d, 200, "ok", what)
      for _, r in ipairs(d.records) do lu.assertEquals(r.tenant_id, 1, what) end
    end
  end
end

-- A record of another workspace, or an orphan whose tenant is gone, is 404 foreign_workspace.
function TestPaths:test_foreign_workspace_every_path()
  local db = self.db
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local viewer = ctx_of(self.eng, 1, 1, nil)
  for _, x in ipairs(each_path()) do
    local f, p, what = x.f, x.p, label(x)
    if p == "detail" or p == "row_action" or p == "bulk_action" then
      expect(ctx:resolve(request(db, f, p, 5)), 404, "foreign_workspace", what)
      expect(ctx:resolve(request(db, f, p, nil, orphan_of(db, f.table))), 404,
        "foreign_workspace", what .. " orphan")
    elseif p == "canonical_viewer" then
      expect(viewer:resolve(request(db, f, p, 5)), 404, "foreign_workspace", what)
      expect(viewer:resolve(request(db, f, p, nil, orphan_of(db, f.table))), 404,
        "foreign_workspace", what .. " orphan")
    elseif p == "relation_manager" then
      expect(ctx:resolve(request(db, f, p, 5)), 404, "owner_foreign_workspace", what)
      local _, owner = relation_child(db, f, 1)
      expect(ctx:resolve { family = f.name, path = p, owner = owner,
        id = row_of(db, f.table, 5) }, 404, "foreign_workspace", what .. " child")
    end
  end
end

-- A nonexistent id is 404 not_found (owner_not_found for an owner), same status as a foreign one.
function TestPaths:test_missing_record_every_path()
  local db = self.db
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local viewer = ctx_of(self.eng, 1, 1, nil)
  for _, x in ipairs(each_path()) do
    local f, p, what = x.f, x.p, label(x)
    if p == "detail" or p == "row_action" or p == "bulk_action" then
      expect(ctx:resolve(request(db, f, p, 1, MISSING)), 404, "not_found", what)
    elseif p == "canonical_viewer" then
      expect(viewer:resolve(request(db, f, p, 1, MISSING)), 404, "not_found", what)
    elseif p == "relation_manager" then
      expect(ctx:resolve(request(db, f, p, 1, MISSING)), 404, "owner_not_found", what)
      local _, owner = relation_child(db, f, 1)
      expect(ctx:resolve { family = f.name, path = p, owner = owner, id = MISSING }, 404,
        "not_found", what .. " child")
    end
  end
end

-- Without a route tenant every path is 404 no_tenant_context; canonical_viewer still works.
function TestPaths:test_no_tenant_context_every_path()
  local ctx = ctx_of(self.eng, 1, 1, nil)
  for _, x in ipairs(each_path()) do
    local d = ctx:resolve(request(self.db, x.f, x.p, 1))
    if x.p == "canonical_viewer" then
      expect(d, 200, "ok", label(x))
    else
      expect(d, 404, "no_tenant_context", label(x))
    end
  end
end

-- A readonly user gets 403 missing_capability once scope holds, but 404 for a foreign record.
function TestPaths:test_missing_capability_every_path()
  local db = self.db
  local ctx = ctx_of(self.eng, 3, 1, 1)
  local viewer = ctx_of(self.eng, 3, 1, nil)
  local readonly = set_of(rules().roles.readonly)
  for _, x in ipairs(each_path()) do
    local f, p, what = x.f, x.p, label(x)
    local c = x.p == "canonical_viewer" and viewer or ctx
    local req = request(db, f, p, 1)
    if p == "relation_manager" then
      local _, owner = relation_child(db, f, 1)
      req.owner = owner
    end
    if readonly[f.paths[p].capability] then
      expect(c:resolve(req), 200, "ok", what .. " (readonly may view)")
      req.capability = "provider.manage"
    end
    expect(c:resolve(req), 403, "missing_capability", what)
    if p ~= "index" and p ~= "global_search" then
      local foreign = request(db, f, p, 2)
      foreign.capability = req.capability
      local d = c:resolve(foreign)
      lu.assertEquals(d.status, 404, what .. ": scope before capability")
    end
  end
end

-- A route tenant gone or in another workspace is 404 tenant_not_in_workspace, even if entitled.
function TestPaths:test_tenant_not_in_workspace_every_path()
  local db = self.db
  local other = ctx_of(self.eng, 10, 1, 5)     -- user 10 is entitled to tenant 5, in ws2
  local gone = ctx_of(self.eng, 1, 1, 999)
  for _, x in ipairs(each_path()) do
    if x.p ~= "canonical_viewer" then
      local what = label(x)
      expect(other:resolve(request(db, x.f, x.p, 5)), 404, "tenant_not_in_workspace", what)
      expect(gone:resolve(request(db, x.f, x.p, 1)), 404, "tenant_not_in_workspace",
        what .. " (tenant 999)")
    end
  end
end

-- A canonical viewer whose route tenant is outside the workspace logs tenant_not_in_workspace.
function TestPaths:test_canonical_viewer_route_tenant_not_in_workspace()
  local db = self.db
  local f = family("EntraGroup")
  local other = ctx_of(self.eng, 10, 1, 5)     -- user 10 is entitled to tenant 5, in ws2
  local gone = ctx_of(self.eng, 1, 1, 999)
  local got = {}
  for _, c in ipairs { { other, 5, "route tenant 5, record in tenant 5" },
    { other, 1, "route tenant 5, record in tenant 1" },
    { other, nil, "route tenant 5, missing record" },
    { gone, 1, "route tenant 999, record in tenant 1" } } do
    local d = c[1]:resolve(request(db, f, "canonical_viewer", c[2], not c[2] and MISSING or nil))
    lu.assertEquals(d.status, 404, c[3])
    lu.assertNil(d.record, c[3])
    got[#got + 1] = c[3] .. " -> " .. d.reason
  end
  lu.assertEquals(got, {
    "route tenant 5, record in tenant 5 -> tenant_not_in_workspace",
    "route tenant 5, record in tenant 1 -> tenant_not_in_workspace",
    "route tenant 5, missing record -> tenant_not_in_workspace",
    "route tenant 999, record in tenant 1 -> tenant_not_in_workspace",
  })
end

-- Undeclared paths 404 path_not_declared, unscoped search 404 search_disabled; bad names raise.
function TestPaths:test_undeclared_path_and_disabled_search()
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local declared = {}
  for _, x in ipairs(each_path()) do declared[x.f.name .. "." .. x.p] = true end
  local all = { "index", "detail", "row_action", "bulk_action", "relation_manager",
    "global_search", "canonical_viewer" }
  local checked = 0
  for _, f in ipairs(rules().families) do
    for _, p in ipairs(all) do
      if not declared[f.name .. "." .. p] then
        local d = ctx:resolve { family = f.name, path = p, id = 1, ids = { 1 }, owner = 1,
          query = "a" }
        if p == "global_search" then
          lu.assertNotEquals(f.search_posture, "scoped")
          expect(d, 404, "search_disabled", f.name .. "." .. p)
        else
          expect(d, 404, "path_not_declared", f.name .. "." .. p)
        end
        checked = checked + 1
      end
    end
  end
  lu.assertTrue(checked > 0)
  expect(ctx:resolve { family = "Policy", path = "global_search", query = "Policy" }, 404,
    "search_disabled")
  -- unknown names raise
  lu.assertErrorMsgContains("unknown family", ctx.resolve, ctx, { family = "Nope", path = "index" })
  lu.assertErrorMsgContains("unknown path", ctx.resolve, ctx, { family = "Policy", path = "x" })
  lu.assertErrorMsgContains("unknown capability", ctx.resolve, ctx,
    { family = "Policy", path = "index", capability = "nope.view" })
  lu.assertErrorMsgContains("unknown exception", ctx.resolve, ctx,
    { exception = "Nope", path = "index" })
end

-- A caller cannot tell a foreign record from a missing one: same 404, no rows, nothing else.
function TestPaths:test_refusals_look_alike()
  local db = self.db
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local foreign = ctx:resolve { family = "Policy", path = "detail", id = row_of(db, "policies", 2) }
  local other_ws = ctx:resolve { family = "Policy", path = "detail",
    id = row_of(db, "policies", 5) }
  local missing = ctx:resolve { family = "Policy", path = "detail", id = MISSING }
  for _, d in ipairs { foreign, other_ws, missing } do
    local keys = {}
    for k in pairs(d) do keys[#keys + 1] = k end
    table.sort(keys)
    lu.assertEquals(keys, { "reason", "status" })
    lu.assertEquals(d.status, 404)
  end
end

-- A caller bug (bad limit, no/too many ids, no id/owner) raises whoever is logged in.
function TestPaths:test_caller_errors_raise_for_any_caller()
  local max = rules().app.limits.max_page_size
  local too_many = {}
  for i = 1, rules().app.limits.max_bulk_ids + 1 do too_many[i] = i end
  local wrong = {}
  for _, c in ipairs { { 1, 1, 1 }, { 6, 1, 1 }, { 4, 1, 1 }, { 1, 1, nil } } do
    local ctx = ctx_of(self.eng, c[1], c[2], c[3])
    local who = ("user %d tenant %s"):format(c[1], tostring(c[3]))
    for _, req in ipairs {
      { family = "Policy", path = "index", limit = max + 1 },
      { family = "Policy", path = "bulk_action", ids = {} },
      { family = "Policy", path = "bulk_action", ids = too_many },
      { family = "Policy", path = "detail" },
      { family = "PolicyVersion", path = "relation_manager" },
    } do
      local ok, d = pcall(ctx.resolve, ctx, req)
      if ok then
        wrong[#wrong + 1] = ("%s: %s %s%s -> %d %s"):format(who, req.family, req.path,
          req.limit and " limit" or req.ids and (" " .. #req.ids .. " ids") or "", d.status,
          d.reason)
      end
    end
  end
  lu.assertEquals(wrong, {}, "these caller errors returned a decision instead of raising")
end

-- ---- bulk actions ----------------------------------------------------------------------

TestBulk = {}
function TestBulk:setUp()
  self.eng, self.db = setup()
  self.ctx = ctx_of(self.eng, 1, 1, 1)
end
function TestBulk:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- One foreign or missing id in a bulk action refuses it all with 404 and returns no records.
function TestBulk:test_one_foreign_id_refuses_all()
  local db = self.db
  local mine = ids_where(db, "SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id LIMIT 5")
  for _, t in ipairs { 2, 5 } do
    local ids = { table.unpack(mine) }
    ids[#ids + 1] = row_of(db, "policies", t)
    local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = ids,
      capability = "policy.delete" }
    expect(d, 404, t == 2 and "foreign_tenant" or "foreign_workspace", "foreign tenant " .. t)
    lu.assertNil(d.records)
  end
  -- the foreign id first, or in the middle, changes nothing
  local ids = { row_of(db, "policies", 2), mine[1], mine[2] }
  local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = ids }
  expect(d, 404, "foreign_tenant")
  lu.assertNil(d.records)
  -- a missing id too
  d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = { mine[1], MISSING } }
  expect(d, 404, "not_found")
  lu.assertNil(d.records)
end

-- Repeating an id in a bulk action returns each record once, in id order.
function TestBulk:test_duplicates_collapse()
  local a, b = row_of(self.db, "policies", 1, 1), row_of(self.db, "policies", 1, 2)
  local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = { b, a, b, a, a } }
  expect(d, 200, "ok")
  lu.assertEquals(ids_of(d.records), { a, b })
end

-- Too many, no, missing or non-integer bulk ids raise a clear error; exactly max_bulk_ids is fine.
function TestBulk:test_limits_raise()
  local max = rules().app.limits and rules().app.limits.max_bulk_ids or 1000
  local ids = {}
  for i = 1, max + 1 do ids[i] = i end
  lu.assertErrorMsgContains("max_bulk_ids", self.ctx.resolve, self.ctx,
    { family = "Policy", path = "bulk_action", ids = ids })
  lu.assertErrorMsgContains("at least one id", self.ctx.resolve, self.ctx,
    { family = "Policy", path = "bulk_action", ids = {} })
  lu.assertError(self.ctx.resolve, self.ctx, { family = "Policy", path = "bulk_action" })
  lu.assertErrorMsgContains("ids[2]: expected an integer key for policies.id, got text",
    self.ctx.resolve, self.ctx, { family = "Policy", path = "bulk_action", ids = { 1, "2" } })
  -- exactly max ids (all of this tenant, repeated) is allowed
  local mine = row_of(self.db, "policies", 1)
  ids = {}
  for i = 1, max do ids[i] = mine end
  local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = ids }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 1)
end

-- A bulk action over all of a tenant's rows works; one foreign id at the very end refuses it.
function TestBulk:test_many_ids_across_chunks()
  local mine = ids_where(self.db, "SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id")
  local rev = {}
  for i = #mine, 1, -1 do rev[#rev + 1] = mine[i] end
  local d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = rev }
  expect(d, 200, "ok")
  lu.assertEquals(ids_of(d.records), mine)
  -- the foreign id last, after every good chunk
  rev[#rev + 1] = row_of(self.db, "policies", 2, 3)
  d = self.ctx:resolve { family = "Policy", path = "bulk_action", ids = rev }
  expect(d, 404, "foreign_tenant")
end

-- ---- relation managers -----------------------------------------------------------------

TestRelation = {}
function TestRelation:setUp()
  self.eng, self.db = setup()
  self.ctx = ctx_of(self.eng, 1, 1, 1)
end
function TestRelation:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- Opening a child through an owner that is not its own is 404 wrong_owner.
function TestRelation:test_wrong_owner()
  local db = self.db
  -- two policies of tenant 1, each with its versions
  local p1, p2 = row_of(db, "policies", 1, 1), row_of(db, "policies", 1, 2)
  local v1 = db:value("SELECT min(id) FROM policy_versions WHERE policy_id = ?", p1)
  local v2 = db:value("SELECT min(id) FROM policy_versions WHERE policy_id = ?", p2)
  expect(self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p1,
    id = v1 }, 200, "ok")
  expect(self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p2,
    id = v1 }, 404, "wrong_owner")
  expect(self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p1,
    id = v2 }, 404, "wrong_owner")
  -- a backup set without a schedule belongs to no owner
  local orphan_set = db:value("SELECT min(id) FROM backup_sets WHERE tenant_id = 1 AND "
    .. "backup_schedule_id IS NULL")
  if orphan_set then
    local sched = row_of(db, "backup_schedules", 1)
    expect(self.ctx:resolve { family = "BackupSet", path = "relation_manager", owner = sched,
      id = orphan_set }, 404, "wrong_owner")
  end
end

-- A relation manager on an owner of another tenant or workspace is 404 and lists nothing.
function TestRelation:test_owner_of_another_tenant()
  local db = self.db
  local p2 = db:value("SELECT min(policy_id) FROM policy_versions WHERE tenant_id = 2")
  local d = self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p2 }
  expect(d, 404, "owner_foreign_tenant")
  local p5 = db:value("SELECT min(policy_id) FROM policy_versions WHERE tenant_id = 5")
  expect(self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p5 },
    404, "owner_foreign_workspace")
  -- with the child of that owner named too
  local v2 = db:value("SELECT min(id) FROM policy_versions WHERE policy_id = ?", p2)
  expect(self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p2,
    id = v2 }, 404, "owner_foreign_tenant")
  lu.assertErrorMsgContains("owner", self.ctx.resolve, self.ctx,
    { family = "PolicyVersion", path = "relation_manager" })
end

-- A foreign-tenant row pointing at my owner never shows up in my relation manager.
function TestRelation:test_cross_tenant_child_not_listed()
  local db = self.db
  local p1 = row_of(db, "policies", 1, 1)
  local stray = row_of(db, "policy_versions", 2)
  db:query("UPDATE policy_versions SET policy_id = ? WHERE id = ?", p1, stray)
  local d = self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p1 }
  expect(d, 200, "ok")
  lu.assertNil(set_of(ids_of(d.records))[stray])
  for _, r in ipairs(d.records) do
    lu.assertEquals(r.tenant_id, 1)
    lu.assertEquals(r.policy_id, p1)
  end
  expect(self.ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p1,
    id = stray }, 404, "foreign_tenant")
end

-- ---- global search ---------------------------------------------------------------------

TestSearch = {}
function TestSearch:setUp() self.eng, self.db = setup() end
function TestSearch:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

local function walk(ctx, req)
  local out, after = {}, nil
  repeat
    local r = {}
    for k, v in pairs(req) do r[k] = v end
    r.after, r.limit = after, 500
    local d = ctx:resolve(r)
    lu.assertEquals(d.status, 200)
    for _, x in ipairs(d.records) do out[#out + 1] = x end
    after = d.next_after
  until not d.has_more
  return out
end

-- Searching for '%' or '_' finds names containing them literally, never everything.
function TestSearch:test_wildcards_match_literally()
  local db = self.db
  -- the tenants (of ws1, all entitled to user 1) where each name kind lives
  local pct = db:value("SELECT tenant_id FROM entra_groups WHERE display_name LIKE '100\\% %' "
    .. "ESCAPE '\\' AND tenant_id BETWEEN 1 AND 4 LIMIT 1")
  local und = db:value("SELECT tenant_id FROM entra_groups WHERE display_name LIKE 'Helpdesk\\_%' "
    .. "ESCAPE '\\' AND tenant_id BETWEEN 1 AND 4 LIMIT 1")
  local plain = db:value("SELECT tenant_id FROM entra_groups WHERE tenant_id BETWEEN 1 AND 4 AND "
    .. "tenant_id NOT IN (SELECT tenant_id FROM entra_groups WHERE display_name LIKE '%\\%%' "
    .. "ESCAPE '\\' OR display_name LIKE '%\\_%' ESCAPE '\\' OR mail_nickname LIKE '%\\_%' "
    .. "ESCAPE '\\' OR mail_nickname LIKE '%\\%%' ESCAPE '\\') LIMIT 1")
  lu.assertNotNil(pct)
  lu.assertNotNil(und)
  lu.assertNotNil(plain)

  local function search(tenant, q)
    local ctx = ctx_of(self.eng, 1, 1, tenant)
    return walk(ctx, { family = "EntraGroup", path = "global_search", query = q })
  end
  local function literal(tenant, needle)
    local out = {}
    for _, r in ipairs(db:query("SELECT id, display_name, mail_nickname FROM entra_groups WHERE "
      .. "tenant_id = ? ORDER BY id", tenant)) do
      local hay = (r.display_name .. "\0" .. (r.mail_nickname or "")):lower()
      if hay:find(needle:lower(), 1, true) then out[#out + 1] = r.id end
    end
    return out
  end

  for _, case in ipairs {
    { pct, "0% R" }, { pct, "%" }, { pct, "1%e" }, { pct, "_" },
    { und, "_" }, { und, "desk_1" }, { und, "k_" }, { und, "%" }, { und, "desk%" },
    { plain, "_" }, { plain, "%" }, { plain, "\\" }, { pct, "100\\" },
  } do
    local t, q = case[1], case[2]
    lu.assertEquals(ids_of(search(t, q)), literal(t, q), ("tenant %d query %q"):format(t, q))
  end
  lu.assertTrue(#search(pct, "0% R") > 0)
  lu.assertEquals(#search(pct, "1%e"), 0)
  lu.assertEquals(#search(plain, "_"), 0)
  lu.assertEquals(#search(plain, "%"), 0)
  lu.assertTrue(#search(und, "k_") > 0)
end

-- Search never finds a row the same tenant's index would not list.
function TestSearch:test_results_subset_of_index()
  for t = 1, 4 do
    local ctx = ctx_of(self.eng, 1, 1, t)
    local index = set_of(ids_of(walk(ctx, { family = "EntraGroup", path = "index" })))
    for _, q in ipairs { "", "a", "1", "%", "_", "Remote", "group-1", "'", "\\" } do
      local found = walk(ctx, { family = "EntraGroup", path = "global_search", query = q })
      for _, r in ipairs(found) do
        lu.assertTrue(index[r.id], ("tenant %d query %q: %d not in index"):format(t, q, r.id))
        lu.assertEquals(r.tenant_id, t)
      end
    end
  end
  -- a name that exists in another tenant only is not found
  local db = self.db
  local other = db:value("SELECT display_name FROM entra_groups WHERE tenant_id = 2 LIMIT 1")
  local d = ctx_of(self.eng, 1, 1, 1):resolve { family = "EntraGroup", path = "global_search",
    query = other }
  expect(d, 200, "ok")
  lu.assertEquals(#d.records, 0)
end

-- ---- index pagination ------------------------------------------------------------------

TestIndex = {}
function TestIndex:setUp() self.eng, self.db = setup() end
function TestIndex:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- Paging the index with limit/after shows every row of the tenant exactly once, nothing else.
function TestIndex:test_pagination_walks_tenant_once()
  for _, t in ipairs { 1, 3 } do
    local ctx = ctx_of(self.eng, 1, 1, t)
    local expected = ids_where(self.db,
      "SELECT id FROM policies WHERE tenant_id = ? ORDER BY id", t)
    lu.assertTrue(#expected > 14)
    local seen, after, pages = {}, nil, 0
    while true do
      local d = ctx:resolve { family = "Policy", path = "index", limit = 7, after = after }
      expect(d, 200, "ok")
      pages = pages + 1
      lu.assertTrue(#d.records <= 7)
      for _, r in ipairs(d.records) do
        lu.assertEquals(r.tenant_id, t)
        seen[#seen + 1] = r.id
      end
      if #d.records > 0 then lu.assertEquals(d.next_after, d.records[#d.records].id) end
      if not d.has_more then break end
      lu.assertEquals(#d.records, 7)
      after = d.next_after
    end
    lu.assertEquals(seen, expected)
    lu.assertEquals(pages, (#expected + 6) // 7)
  end
end

-- has_more is false on the last full page; a page past the end is empty; default page is page_size.
function TestIndex:test_page_edges()
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local all = ids_where(self.db, "SELECT id FROM policies WHERE tenant_id = 1 ORDER BY id")
  local d = ctx:resolve { family = "Policy", path = "index", limit = #all }
  lu.assertEquals(ids_of(d.records), all)
  lu.assertFalse(d.has_more)
  d = ctx:resolve { family = "Policy", path = "index", limit = #all - 1 }
  lu.assertTrue(d.has_more)
  d = ctx:resolve { family = "Policy", path = "index", after = all[#all] }
  expect(d, 200, "ok")
  lu.assertEquals(d.records, {})
  lu.assertFalse(d.has_more)
  lu.assertNil(d.next_after)
  d = ctx:resolve { family = "Policy", path = "index" }
  lu.assertEquals(#d.records, math.min(#all, rules().app.limits and
    rules().app.limits.page_size or 50))
end

-- A limit above max_page_size or below 1 raises, on index, search and relation manager.
function TestIndex:test_limit_out_of_range_raises()
  local ctx = ctx_of(self.eng, 1, 1, 1)
  local max = rules().app.limits and rules().app.limits.max_page_size or 500
  expect(ctx:resolve { family = "Policy", path = "index", limit = max }, 200, "ok")
  lu.assertErrorMsgContains("max_page_size", ctx.resolve, ctx,
    { family = "Policy", path = "index", limit = max + 1 })
  lu.assertError(ctx.resolve, ctx, { family = "Policy", path = "index", limit = 0 })
  lu.assertError(ctx.resolve, ctx, { family = "Policy", path = "index", limit = -5 })
  lu.assertErrorMsgContains("max_page_size", ctx.resolve, ctx,
    { family = "EntraGroup", path = "global_search", query = "a", limit = max + 1 })
  local _, owner = relation_child(self.db, family("PolicyVersion"), 1)
  lu.assertErrorMsgContains("max_page_size", ctx.resolve, ctx,
    { family = "PolicyVersion", path = "relation_manager", owner = owner, limit = max + 1 })
end

-- ---- rule versions, roles --------------------------------------------------------------

TestVersions = {}
function TestVersions:tearDown() H.cleanup() end

-- A request keeps deciding with its rules across eng:reload(); new requests get the new rules.
function TestVersions:test_context_keeps_version_across_reload()
  local path = H.refdb(60)
  local dir = H.shipped_copy()
  local eng = tg.open { db = path, rules = dir }
  local v1 = eng:version()
  local used = ctx_of(eng, 3, 1, 1)
  expect(used:resolve { family = "Policy", path = "index" }, 200, "ok")
  local fresh = ctx_of(eng, 3, 1, 1) -- opened before the reload, first used after it
  -- readonly loses policy.view
  local text = H.read(dir .. "/roles.lua")
  local edited, n = text:gsub('role "readonly" {%s*"policy.view",', 'role "readonly" {')
  lu.assertEquals(n, 1)
  H.write(dir .. "/roles.lua", edited)
  lu.assertTrue(eng:reload())
  local v2 = eng:version()
  lu.assertNotEquals(v2, v1)
  lu.assertEquals(used:version(), v1)
  lu.assertEquals(fresh:version(), v1)
  expect(used:resolve { family = "Policy", path = "index" }, 200, "ok")
  expect(fresh:resolve { family = "Policy", path = "index" }, 200, "ok")
  local after = ctx_of(eng, 3, 1, 1)
  lu.assertEquals(after:version(), v2)
  expect(after:resolve { family = "Policy", path = "index" }, 403, "missing_capability")
  -- the old context still decides with the old rules while the new one exists
  expect(used:resolve { family = "Policy", path = "detail", id = row_of(tg.connect(path),
    "policies", 1) }, 200, "ok")
  eng:close()
end

TestRoles = {}
function TestRoles:setUp() self.eng, self.db = setup() end
function TestRoles:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- User 7, workspace owner but readonly in tenant 3, can view but not act there.
function TestRoles:test_tenant_role_narrows_workspace_role()
  local db = self.db
  local ctx = ctx_of(self.eng, 7, 1, 3)
  local id = row_of(db, "policies", 3)
  expect(ctx:resolve { family = "Policy", path = "index" }, 200, "ok")
  expect(ctx:resolve { family = "Policy", path = "detail", id = id }, 200, "ok")
  expect(ctx:resolve { family = "Policy", path = "row_action", id = id }, 403,
    "missing_capability")
  expect(ctx:resolve { family = "Policy", path = "bulk_action", ids = { id } }, 403,
    "missing_capability")
  expect(ctx:resolve { family = "RestoreRun", path = "row_action",
    id = row_of(db, "restore_runs", 3) }, 403, "missing_capability")
  expect(ctx:resolve { family = "Policy", path = "index", capability = "policy.delete" }, 403,
    "missing_capability")
  expect(ctx_of(self.eng, 7, 1, 1):resolve { family = "Policy", path = "index" }, 404,
    "not_entitled")
  -- the canonical viewer narrows to the record's tenant role too
  local viewer = ctx_of(self.eng, 7, 1, nil)
  local g = row_of(db, "entra_groups", 3)
  expect(viewer:resolve { family = "EntraGroup", path = "canonical_viewer", id = g }, 200, "ok")
  expect(viewer:resolve { family = "EntraGroup", path = "canonical_viewer", id = g,
    capability = "policy.delete" }, 403, "missing_capability")
  -- while an owner entitled with the workspace role may act
  expect(ctx_of(self.eng, 1, 1, 3):resolve { family = "Policy", path = "row_action", id = id },
    200, "ok")
end

-- A membership with an undeclared role ('superuser') grants nothing, and no fallback.
function TestRoles:test_undeclared_role_grants_nothing()
  local db = self.db
  db:exec("INSERT INTO workspace_memberships (workspace_id, user_id, role) "
    .. "VALUES (1, 6, 'superuser')")
  db:exec("INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (1, 6, NULL)")
  local ctx = ctx_of(self.eng, 6, 1, 1)
  local id = row_of(db, "policies", 1)
  expect(ctx:resolve { family = "Policy", path = "index" }, 403, "missing_capability")
  expect(ctx:resolve { family = "Policy", path = "detail", id = id }, 403, "missing_capability")
  expect(ctx:resolve { family = "Policy", path = "row_action", id = id }, 403,
    "missing_capability")
  -- scope still comes first
  expect(ctx:resolve { family = "Policy", path = "detail", id = row_of(db, "policies", 2) }, 404,
    "foreign_tenant")
  expect(ctx:resolve { exception = "OperationRunMonitor", path = "index" }, 403,
    "missing_capability")
  -- an undeclared tenant role overrides the owner's workspace role and grants nothing
  db:exec("UPDATE tenant_memberships SET role = 'superuser' WHERE user_id = 1 AND tenant_id = 4")
  expect(ctx_of(self.eng, 1, 1, 4):resolve { family = "Policy", path = "index" }, 403,
    "missing_capability")
  expect(ctx_of(self.eng, 1, 1, 1):resolve { family = "Policy", path = "index" }, 200, "ok")
end

-- ---- canonical viewer ------------------------------------------------------------------

TestCanonical = {}
function TestCanonical:setUp() self.eng, self.db = setup() end
function TestCanonical:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- A deep link opens an entitled tenant's record; other tenants, workspaces, route tenants 404.
function TestCanonical:test_canonical_viewer()
  local db = self.db
  local g2 = row_of(db, "entra_groups", 2)
  local g3 = row_of(db, "entra_groups", 3)
  local g5 = row_of(db, "entra_groups", 5)
  local u2 = ctx_of(self.eng, 2, 1, nil)
  local d = u2:resolve { family = "EntraGroup", path = "canonical_viewer", id = g2 }
  expect(d, 200, "ok")
  lu.assertEquals(d.record.id, g2)
  lu.assertEquals(d.record.tenant_id, 2)
  lu.assertEquals(d.record.display_name,
    db:value("SELECT display_name FROM entra_groups WHERE id = ?", g2))
  expect(u2:resolve { family = "EntraGroup", path = "canonical_viewer", id = g3 }, 404,
    "not_entitled")
  expect(u2:resolve { family = "EntraGroup", path = "canonical_viewer", id = g5 }, 404,
    "foreign_workspace")
  -- user 10 is entitled to tenant 5 in workspace 2, but asks in workspace 1
  expect(ctx_of(self.eng, 10, 1, nil):resolve { family = "EntraGroup",
    path = "canonical_viewer", id = g5 }, 404, "foreign_workspace")
  expect(ctx_of(self.eng, 10, 2, nil):resolve { family = "EntraGroup",
    path = "canonical_viewer", id = g5 }, 200, "ok")
  -- a route tenant never widens, even to a tenant the user is entitled to
  local routed = ctx_of(self.eng, 2, 1, 1)
  expect(routed:resolve { family = "EntraGroup", path = "canonical_viewer", id = g2 }, 404,
    "foreign_tenant")
  expect(routed:resolve { family = "EntraGroup", path = "canonical_viewer",
    id = row_of(db, "entra_groups", 1) }, 200, "ok")
  lu.assertErrorMsgContains("id", u2.resolve, u2,
    { family = "EntraGroup", path = "canonical_viewer" })
end

-- ---- scope exceptions ------------------------------------------------------------------

TestExceptions = {}
function TestExceptions:setUp() self.eng, self.db = setup() end
function TestExceptions:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- Members see their workspace's operation runs without a tenant; other workspaces' runs are 404.
function TestExceptions:test_operation_run_monitor()
  local db = self.db
  -- refdb: run 1 (ws1, tenant 1), run 2 (ws2, no tenant)
  db:exec([[INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, created_at)
    VALUES (3, 1, NULL, 'x', 'queued', '2026-01-01'), (4, 1, 5, 'x', 'queued', '2026-01-01'),
           (5, 2, 1, 'x', 'queued', '2026-01-01')]])
  for _, c in ipairs { { 1, 1, nil }, { 1, 1, 1 }, { 4, 1, nil }, { 3, 1, 1 } } do
    local ctx = ctx_of(self.eng, c[1], c[2], c[3])
    local d = ctx:resolve { exception = "OperationRunMonitor", path = "index" }
    expect(d, 200, "ok", "user " .. c[1])
    lu.assertEquals(ids_of(d.records), { 1, 3 }, "user " .. c[1])
    d = ctx:resolve { exception = "OperationRunMonitor", path = "detail", id = 1 }
    expect(d, 200, "ok")
    lu.assertEquals(d.record.id, 1)
    lu.assertEquals(d.record.type, "inventory.sync")
    expect(ctx:resolve { exception = "OperationRunMonitor", path = "detail", id = 2 }, 404,
      "foreign_workspace")
    expect(ctx:resolve { exception = "OperationRunMonitor", path = "detail", id = 4 }, 404,
      "foreign_workspace")
    expect(ctx:resolve { exception = "OperationRunMonitor", path = "detail", id = 5 }, 404,
      "foreign_workspace")
    expect(ctx:resolve { exception = "OperationRunMonitor", path = "detail", id = MISSING },
      404, "not_found")
  end
  local ws2 = ctx_of(self.eng, 5, 2, nil)
  lu.assertEquals(ids_of(ws2:resolve { exception = "OperationRunMonitor", path = "index" }.records),
    { 2 })
  expect(ws2:resolve { exception = "OperationRunMonitor", path = "detail", id = 1 }, 404,
    "foreign_workspace")
  expect(ctx_of(self.eng, 6, 1, nil):resolve { exception = "OperationRunMonitor",
    path = "index" }, 404, "not_member")
  expect(ctx_of(self.eng, 6, 1, nil):resolve { exception = "OperationRunMonitor",
    path = "detail", id = 1 }, 404, "not_member")
  expect(ctx_of(self.eng, 3, 1, 1):resolve { exception = "OperationRunMonitor",
    path = "index", capability = "provider.manage" }, 403, "missing_capability")
end

-- User 2 (tenants 1-2) cannot see tenant 3's provider connection, in the list or by id.
function TestExceptions:test_provider_connection_admin()
  local db = self.db
  local function conn(t)
    return db:value("SELECT id FROM provider_connections WHERE tenant_id = ?", t)
  end
  local u2 = ctx_of(self.eng, 2, 1, nil)
  expect(u2:resolve { exception = "ProviderConnectionAdmin", path = "detail", id = conn(3) },
    404, "not_entitled")
  expect(u2:resolve { exception = "ProviderConnectionAdmin", path = "detail", id = conn(5) },
    404, "foreign_workspace")
  -- operator: in scope, but lacks provider.manage
  expect(u2:resolve { exception = "ProviderConnectionAdmin", path = "detail", id = conn(1) },
    403, "missing_capability")
  expect(u2:resolve { exception = "ProviderConnectionAdmin", path = "index" }, 403,
    "missing_capability")
  -- an owner entitled to tenants 1-2 only (user 11) lists only those
  db:exec("INSERT INTO users (id, email, name) VALUES (11, 'user11@example.test', 'User 11')")
  db:exec("INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (1, 11, 'owner')")
  db:exec("INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (1, 11, NULL), "
    .. "(2, 11, NULL)")
  local u11 = ctx_of(self.eng, 11, 1, nil)
  local d = u11:resolve { exception = "ProviderConnectionAdmin", path = "index" }
  expect(d, 200, "ok")
  lu.assertEquals(ids_of(d.records), { conn(1), conn(2) })
  expect(u11:resolve { exception = "ProviderConnectionAdmin", path = "detail", id = conn(3) },
    404, "not_entitled")
  d = u11:resolve { exception = "ProviderConnectionAdmin", path = "detail", id = conn(2) }
  expect(d, 200, "ok")
  lu.assertEquals(d.record.tenant_id, 2)
  local u1 = ctx_of(self.eng, 1, 1, nil)
  lu.assertEquals(ids_of(u1:resolve { exception = "ProviderConnectionAdmin",
    path = "index" }.records), { conn(1), conn(2), conn(3), conn(4) })
end

-- The connection list never shows user 7 a connection its detail view refuses them.
function TestExceptions:test_provider_connection_list_agrees_with_detail()
  local db = self.db
  local c3 = db:value("SELECT id FROM provider_connections WHERE tenant_id = 3")
  local u7 = ctx_of(self.eng, 7, 1, nil)
  local detail = u7:resolve { exception = "ProviderConnectionAdmin", path = "detail", id = c3 }
  local index = u7:resolve { exception = "ProviderConnectionAdmin", path = "index" }
  if detail.status ~= 200 then
    local listed = index.status == 200 and set_of(ids_of(index.records))[c3] == true
    lu.assertFalse(listed, ("detail of connection %d is %d %s, but the index lists it")
      :format(c3, detail.status, detail.reason))
  end
end

-- Alert deliveries show workspace rows to members and tenant rows only to those entitled.
function TestExceptions:test_alert_deliveries()
  local db = self.db
  db:exec("INSERT INTO alert_deliveries (id, workspace_id, tenant_id, channel, status) VALUES "
    .. "(100, 1, NULL, 'email', 'sent'), (101, 2, NULL, 'email', 'sent'), "
    .. "(102, 1, 6, 'email', 'sent')")
  local function del(t)
    return db:value("SELECT id FROM alert_deliveries WHERE tenant_id = ? ORDER BY id LIMIT 1", t)
  end
  local cases = {
    { 2, { del(1), del(2), 100 } },
    { 3, { del(1), 100 } },
    { 4, { 100 } },
    { 1, { del(1), del(2), del(3), del(4), 100 } },
  }
  for _, c in ipairs(cases) do
    local d = ctx_of(self.eng, c[1], 1, nil):resolve { exception = "AlertDeliveries",
      path = "index" }
    expect(d, 200, "ok", "user " .. c[1])
    lu.assertEquals(ids_of(d.records), c[2], "user " .. c[1])
  end
  local u2 = ctx_of(self.eng, 2, 1, nil)
  expect(u2:resolve { exception = "AlertDeliveries", path = "detail", id = del(3) }, 404,
    "not_entitled")
  expect(u2:resolve { exception = "AlertDeliveries", path = "detail", id = del(5) }, 404,
    "foreign_workspace")
  expect(u2:resolve { exception = "AlertDeliveries", path = "detail", id = 101 }, 404,
    "foreign_workspace")
  expect(u2:resolve { exception = "AlertDeliveries", path = "detail", id = 102 }, 404,
    "foreign_workspace")
  expect(u2:resolve { exception = "AlertDeliveries", path = "detail", id = 100 }, 200, "ok")
  local d = u2:resolve { exception = "AlertDeliveries", path = "detail", id = del(2) }
  expect(d, 200, "ok")
  lu.assertEquals(d.record.tenant_id, 2)
  expect(ctx_of(self.eng, 6, 1, nil):resolve { exception = "AlertDeliveries", path = "index" },
    404, "not_member")
end

-- ---- decisions during the rollout ------------------------------------------------------

TestRollout = {}
function TestRollout:tearDown() H.cleanup() end

local ROLLOUT_TABLES = { "policies", "policy_versions", "entra_groups", "backup_sets",
  "backup_schedules", "inventory_items", "restore_runs", "findings" }

-- The decisions an owner of tenant 1 gets on a fixed set of requests.
local function snapshot(eng, db)
  local ctx = ctx_of(eng, 1, 1, 1)
  local viewer = ctx_of(eng, 1, 1, nil)
  local out = {}
  for _, x in ipairs(each_path()) do
    for _, t in ipairs { 1, 2, 5 } do
      local c = x.p == "canonical_viewer" and viewer or ctx
      local req = request(db, x.f, x.p, t)
      if x.p == "relation_manager" and t == 1 then
        local _, owner = relation_child(db, x.f, 1)
        req.owner = owner
      end
      if x.p == "index" or x.p == "global_search" then req.limit = 500 end
      local d = c:resolve(req)
      out[#out + 1] = ("%s %d -> %d %s [%s]"):format(label(x), t, d.status, d.reason,
        table.concat(ids_of(d.records or { d.record }), ","))
    end
  end
  return out
end

-- Adding the workspace_id column (NULL, then backfilled) changes no decision.
function TestRollout:test_absent_null_and_set_decide_alike()
  local path = H.refdb(120)
  local db = tg.connect(path)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local before = snapshot(eng, db)
  eng:close()
  for _, t in ipairs(ROLLOUT_TABLES) do
    db:exec(("ALTER TABLE %s ADD COLUMN workspace_id INTEGER"):format(t))
  end
  eng = tg.open { db = path, rules = H.shipped_rules }
  lu.assertEquals(snapshot(eng, db), before, "workspace_id present but NULL")
  eng:close()
  for _, t in ipairs(ROLLOUT_TABLES) do
    db:exec(("UPDATE %s SET workspace_id = (SELECT workspace_id FROM tenants WHERE "
      .. "tenants.id = %s.tenant_id)"):format(t, t))
  end
  eng = tg.open { db = path, rules = H.shipped_rules }
  lu.assertEquals(snapshot(eng, db), before, "workspace_id set")
  local d = ctx_of(eng, 1, 1, 1):resolve { family = "Policy", path = "detail",
    id = row_of(db, "policies", 1) }
  lu.assertEquals(d.record.workspace_id, 1)
  eng:close()
  db:close()
end

-- A row whose workspace_id disagrees with its tenant is 404 workspace_mismatch, never listed.
function TestRollout:test_mismatched_workspace_never_reached()
  local path = H.refdb(120)
  local db = tg.connect(path)
  for _, t in ipairs(ROLLOUT_TABLES) do
    db:exec(("ALTER TABLE %s ADD COLUMN workspace_id INTEGER"):format(t))
    db:exec(("UPDATE %s SET workspace_id = (SELECT workspace_id FROM tenants WHERE "
      .. "tenants.id = %s.tenant_id)"):format(t, t))
  end
  local p_bad = row_of(db, "policies", 1, 2)
  local p_good = row_of(db, "policies", 1, 1)
  local v_bad = db:value("SELECT min(id) FROM policy_versions WHERE policy_id = ?", p_good)
  local g_bad = row_of(db, "entra_groups", 1, 2)
  local set_bad = db:value("SELECT min(id) FROM backup_sets WHERE tenant_id = 1 AND "
    .. "backup_schedule_id IS NOT NULL")
  db:query("UPDATE policies SET workspace_id = 2 WHERE id = ?", p_bad)
  db:query("UPDATE policy_versions SET workspace_id = 3 WHERE id = ?", v_bad)
  db:query("UPDATE entra_groups SET workspace_id = 2 WHERE id = ?", g_bad)
  db:query("UPDATE backup_sets SET workspace_id = 2 WHERE id = ?", set_bad)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local ctx = ctx_of(eng, 1, 1, 1)

  expect(ctx:resolve { family = "Policy", path = "detail", id = p_bad }, 404, "workspace_mismatch")
  expect(ctx:resolve { family = "Policy", path = "row_action", id = p_bad }, 404,
    "workspace_mismatch")
  local d = ctx:resolve { family = "Policy", path = "bulk_action", ids = { p_good, p_bad } }
  expect(d, 404, "workspace_mismatch")
  lu.assertNil(d.records)
  expect(ctx:resolve { family = "Policy", path = "detail", id = p_good }, 200, "ok")

  local listed = set_of(ids_of(walk(ctx, { family = "Policy", path = "index" })))
  lu.assertNil(listed[p_bad], "index lists the mismatched policy")
  lu.assertTrue(listed[p_good])

  -- relation manager: a mismatched owner, a mismatched child
  expect(ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p_bad }, 404,
    "owner_workspace_mismatch")
  d = ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p_good }
  expect(d, 200, "ok")
  lu.assertNil(set_of(ids_of(d.records))[v_bad], "relation lists the mismatched version")
  expect(ctx:resolve { family = "PolicyVersion", path = "relation_manager", owner = p_good,
    id = v_bad }, 404, "workspace_mismatch")
  expect(ctx:resolve { family = "PolicyVersion", path = "detail", id = v_bad }, 404,
    "workspace_mismatch")
  local sched = db:value("SELECT backup_schedule_id FROM backup_sets WHERE id = ?", set_bad)
  d = ctx:resolve { family = "BackupSet", path = "relation_manager", owner = sched }
  expect(d, 200, "ok")
  lu.assertNil(set_of(ids_of(d.records))[set_bad])

  -- search and canonical viewer
  local name = db:value("SELECT display_name FROM entra_groups WHERE id = ?", g_bad)
  local found = walk(ctx, { family = "EntraGroup", path = "global_search", query = name })
  lu.assertNil(set_of(ids_of(found))[g_bad], "search finds the mismatched group")
  lu.assertNil(set_of(ids_of(walk(ctx, { family = "EntraGroup", path = "index" })))[g_bad])
  expect(ctx_of(eng, 1, 1, nil):resolve { family = "EntraGroup", path = "canonical_viewer",
    id = g_bad }, 404, "workspace_mismatch")
  expect(ctx:resolve { family = "EntraGroup", path = "canonical_viewer", id = g_bad }, 404,
    "workspace_mismatch")
  -- the workspace the row claims does not get it either
  local w2 = ctx_of(eng, 5, 2, 5)
  expect(w2:resolve { family = "Policy", path = "detail", id = p_bad }, 404, "foreign_workspace")
  lu.assertNil(set_of(ids_of(walk(w2, { family = "Policy", path = "index" })))[p_bad])
  eng:close()
  db:close()
end

-- ---- the decision log ------------------------------------------------------------------

TestDecisionLog = {}
function TestDecisionLog:setUp() self.eng, self.db = setup(60) end
function TestDecisionLog:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- The log function sees every decision: who, where, family, path, ids, outcome, rule version.
function TestDecisionLog:test_function_receives_every_decision()
  local events = {}
  lu.assertTrue(self.eng:set_decision_log(function(ev) events[#events + 1] = ev end))
  local v = self.eng:version()
  local db = self.db
  local p1, p2 = row_of(db, "policies", 3, 1), row_of(db, "policies", 2, 1)
  local ctx = ctx_of(self.eng, 1, 1, 3)
  ctx:resolve { family = "Policy", path = "detail", id = p1 }
  ctx:resolve { family = "Policy", path = "detail", id = p2 }
  ctx:resolve { family = "Policy", path = "bulk_action", ids = { p1, p1 } }
  ctx:resolve { family = "Policy", path = "index" }
  ctx_of(self.eng, 3, 1, 1):resolve { family = "Policy", path = "row_action",
    id = row_of(db, "policies", 1) }
  ctx_of(self.eng, 1, 1, nil):resolve { family = "Policy", path = "index" }
  ctx_of(self.eng, 1, 1, nil):resolve { exception = "OperationRunMonitor", path = "detail", id = 1 }
  lu.assertEquals(#events, 7)
  lu.assertEquals(events[1], { user = 1, workspace = 1, tenant = 3, family = "Policy",
    path = "detail", ids = { p1 }, status = 200, reason = "ok", rule_version = v })
  lu.assertEquals(events[2], { user = 1, workspace = 1, tenant = 3, family = "Policy",
    path = "detail", ids = { p2 }, status = 404, reason = "foreign_tenant", rule_version = v })
  lu.assertEquals(events[3].path, "bulk_action")
  lu.assertEquals(events[3].status, 200)
  lu.assertTrue(#events[3].ids >= 1)
  for _, id in ipairs(events[3].ids) do lu.assertEquals(id, p1) end
  lu.assertEquals(events[4].path, "index")
  lu.assertEquals(events[4].ids, {})
  lu.assertEquals({ events[5].user, events[5].tenant, events[5].status, events[5].reason },
    { 3, 1, 403, "missing_capability" })
  lu.assertNil(events[6].tenant)
  lu.assertEquals(events[6].reason, "no_tenant_context")
  lu.assertEquals({ events[7].family, events[7].path, events[7].ids, events[7].status },
    { "OperationRunMonitor", "detail", { 1 }, 200 })
  -- writes are decisions too
  local n = #events
  ctx:update("Policy", p1, { display_name = "renamed" })
  lu.assertEquals(#events, n + 1)
  lu.assertEquals(events[n + 1].status, 200)
  lu.assertEquals(events[n + 1].ids, { p1 })
  -- nil turns the log off
  self.eng:set_decision_log(nil)
  ctx:resolve { family = "Policy", path = "detail", id = p1 }
  lu.assertEquals(#events, n + 1)
end

-- A broken log function changes no decision and no write.
function TestDecisionLog:test_failing_log_does_not_change_decisions()
  local db = self.db
  local reqs = {
    { 1, 1, 3, { family = "Policy", path = "detail", id = row_of(db, "policies", 3) } },
    { 1, 1, 3, { family = "Policy", path = "detail", id = row_of(db, "policies", 2) } },
    { 3, 1, 1, { family = "Policy", path = "row_action", id = row_of(db, "policies", 1) } },
    { 1, 1, 3, { family = "Policy", path = "index" } },
    { 6, 1, 3, { family = "Policy", path = "index" } },
  }
  local function run()
    local out = {}
    for _, r in ipairs(reqs) do
      local d = ctx_of(self.eng, r[1], r[2], r[3]):resolve(r[4])
      out[#out + 1] = { d.status, d.reason, ids_of(d.records or { d.record }) }
    end
    return out
  end
  local plain = run()
  local calls = 0
  self.eng:set_decision_log(function() calls = calls + 1; error("log is down") end)
  lu.assertEquals(run(), plain)
  lu.assertEquals(calls, #reqs)
  self.eng:set_decision_log(function() calls = calls + 1; return nil + 1 end)
  lu.assertEquals(run(), plain)
  -- writes too
  local ctx = ctx_of(self.eng, 1, 1, 3)
  local d = ctx:update("Policy", row_of(db, "policies", 3), { display_name = "still written" })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = ?",
    row_of(db, "policies", 3)), "still written")
end

-- A log file gets one JSON line per decision; an unopenable path returns nil, message.
function TestDecisionLog:test_file_gets_json_lines()
  local file = H.tmpdir() .. "/decisions.jsonl"
  lu.assertTrue(self.eng:set_decision_log(file))
  local db = self.db
  local p1, p2 = row_of(db, "policies", 3, 1), row_of(db, "policies", 2, 1)
  local ctx = ctx_of(self.eng, 1, 1, 3)
  ctx:resolve { family = "Policy", path = "detail", id = p1 }
  ctx:resolve { family = "Policy", path = "detail", id = p2 }
  ctx:resolve { family = "Policy", path = "bulk_action", ids = { p1 } }
  ctx_of(self.eng, 1, 1, nil):resolve { family = "Policy", path = "index" }
  self.eng:set_decision_log(nil)
  local lines = {}
  for line in H.read(file):gmatch("[^\n]+") do lines[#lines + 1] = line end
  lu.assertEquals(#lines, 4)
  for _, l in ipairs(lines) do
    lu.assertStrMatches(l, "^{.*}$")
    lu.assertStrContains(l, '"rule_version":"' .. self.eng:version() .. '"')
    lu.assertStrContains(l, '"family":"Policy"')
    lu.assertStrContains(l, '"user":1')
    lu.assertStrContains(l, '"workspace":1')
  end
  lu.assertStrContains(lines[1], '"tenant":3')
  lu.assertStrContains(lines[1], '"path":"detail"')
  lu.assertStrContains(lines[1], '"ids":[' .. p1 .. ']')
  lu.assertStrContains(lines[1], '"status":200')
  lu.assertStrContains(lines[1], '"reason":"ok"')
  lu.assertStrContains(lines[2], '"status":404')
  lu.assertStrContains(lines[2], '"reason":"foreign_tenant"')
  lu.assertStrContains(lines[3], '"path":"bulk_action"')
  lu.assertStrContains(lines[4], '"tenant":null')
  lu.assertStrContains(lines[4], '"reason":"no_tenant_context"')
  -- a log file that cannot be opened is reported, not raised
  local ok, err = self.eng:set_decision_log("/nonexistent-dir/x/decisions.jsonl")
  lu.assertNil(ok)
  lu.assertStrContains(err, "decision log")
end

-- ---- fail closed: absent data never widens the answer ------------------------------------

-- A copy of the shipped rules with `edits` ({ file, from, to } plain replacements) applied.
local function edited_rules(edits)
  local dir = H.shipped_copy()
  for _, e in ipairs(edits) do
    local path = dir .. "/" .. e[1]
    local text = H.read(path)
    local at = text:find(e[2], 1, true)
    assert(at, "edit not found: " .. e[2])
    H.write(path, text:sub(1, at - 1) .. e[3] .. text:sub(at + #e[2]))
  end
  return dir
end

-- Policy with three paths that declare no capability, and an exception that lists none.
local CAPLESS = {
  { "families.lua", 'index            = { capability = "policy.view" },', "index = {}," },
  { "families.lua", 'row_action       = { capability = "policy.edit" },', "row_action = true," },
  { "families.lua", 'bulk_action      = { capability = "policy.delete" },', "bulk_action = true," },
  { "families.lua", 'canonical_viewer = { capability = "entra_group.view" },',
    "canonical_viewer = true," },
  { "exceptions.lua", [[still_required_checks = { "workspace_member", "record_in_workspace", "capability" },
  capability = "operations.view",]], [[still_required_checks = { "workspace_member", "record_in_workspace" },]] },
}

TestFailClosed = {}
function TestFailClosed:setUp()
  local path = H.refdb(ROWS)
  self.eng = tg.open { db = path, rules = edited_rules(CAPLESS) }
  self.db = tg.connect(path)
end
function TestFailClosed:tearDown()
  self.eng:close()
  self.db:close()
  H.cleanup()
end

-- rules/README.md: a path without `capability` is 403, for every caller, once scope holds.
function TestFailClosed:test_path_without_capability_is_403()
  local db = self.db
  local a1, a2 = row_of(db, "policies", 1, 1), row_of(db, "policies", 1, 2)
  local b1 = row_of(db, "policies", 2)
  -- the owner, entitled to tenant 1, holds every capability: still 403
  local owner = ctx_of(self.eng, 1, 1, 1)
  expect(owner:resolve { family = "Policy", path = "index" }, 403, "missing_capability")
  expect(owner:resolve { family = "Policy", path = "row_action", id = a1 }, 403,
    "missing_capability")
  expect(owner:resolve { family = "Policy", path = "bulk_action", ids = { a1, a2 } }, 403,
    "missing_capability")
  expect(owner:resolve { family = "Policy", path = "bulk_action", ids = { a1 },
    capability = "policy.delete" }, 403, "missing_capability")
  -- paths that do declare one are unchanged
  expect(owner:resolve { family = "Policy", path = "detail", id = a1 }, 200, "ok")
  -- scope still comes first: 404 stays 404
  expect(owner:resolve { family = "Policy", path = "bulk_action", ids = { a1, b1 } }, 404,
    "foreign_tenant")
  expect(owner:resolve { family = "Policy", path = "row_action", id = MISSING }, 404,
    "not_found")
  expect(ctx_of(self.eng, 6, 1, 1):resolve { family = "Policy", path = "index" }, 404,
    "not_member")
  expect(ctx_of(self.eng, 3, 1, 3):resolve { family = "Policy", path = "index" }, 404,
    "not_entitled")
  -- a role the rules do not declare (or none) is no way around it
  db:exec("INSERT INTO workspace_memberships (workspace_id, user_id, role) "
    .. "VALUES (1, 6, 'superuser')")
  db:exec("INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (1, 6, NULL)")
  local ghost = ctx_of(self.eng, 6, 1, 1)
  expect(ghost:resolve { family = "Policy", path = "bulk_action", ids = { a1 } }, 403,
    "missing_capability")
  expect(ghost:resolve { family = "Policy", path = "index" }, 403, "missing_capability")
  -- the canonical viewer (a read) too
  local g = row_of(db, "entra_groups", 1)
  expect(ctx_of(self.eng, 1, 1, nil):resolve { family = "EntraGroup", path = "canonical_viewer",
    id = g }, 403, "missing_capability")
  expect(ctx_of(self.eng, 1, 1, nil):resolve { family = "EntraGroup", path = "canonical_viewer",
    id = row_of(db, "entra_groups", 5) }, 404, "foreign_workspace")
end

-- Writes go through the same rule: insert and update on a family whose row action declares
-- no capability are 403 and change nothing.
function TestFailClosed:test_writes_on_path_without_capability_are_403()
  local db = self.db
  local owner = ctx_of(self.eng, 1, 1, 1)
  local before = db:value("SELECT count(*) FROM policies")
  local d, msg = owner:insert("Policy", { display_name = "x",
    policy_type = "deviceConfiguration", created_at = "2026-06-01 00:00:00" })
  lu.assertNotNil(d, msg)
  expect(d, 403, "missing_capability")
  lu.assertEquals(db:value("SELECT count(*) FROM policies"), before)
  local a1 = row_of(db, "policies", 1)
  local name = db:value("SELECT display_name FROM policies WHERE id = ?", a1)
  expect(owner:update("Policy", a1, { display_name = "changed" }), 403, "missing_capability")
  lu.assertEquals(db:value("SELECT display_name FROM policies WHERE id = ?", a1), name)
end

-- An exception whose still_required_checks list no capability grants nobody: 403 once its
-- scope checks hold, 404 before.
function TestFailClosed:test_exception_without_capability_is_403()
  local owner = ctx_of(self.eng, 1, 1, nil)
  expect(owner:resolve { exception = "OperationRunMonitor", path = "index" }, 403,
    "missing_capability")
  expect(owner:resolve { exception = "OperationRunMonitor", path = "detail", id = 1 }, 403,
    "missing_capability")
  expect(owner:resolve { exception = "OperationRunMonitor", path = "detail", id = 2 }, 404,
    "foreign_workspace")
  expect(ctx_of(self.eng, 6, 1, nil):resolve { exception = "OperationRunMonitor",
    path = "index" }, 404, "not_member")
end

-- A request is what it names: both a family and an exception, or a search without a query,
-- raise instead of being guessed at (a missing query used to list the whole tenant).
function TestFailClosed:test_ambiguous_or_incomplete_requests_raise()
  local ctx = ctx_of(self.eng, 1, 1, 1)
  lu.assertErrorMsgContains("both", ctx.resolve, ctx,
    { family = "Policy", exception = "OperationRunMonitor", path = "index" })
  lu.assertErrorMsgContains("query", ctx.resolve, ctx,
    { family = "EntraGroup", path = "global_search" })
  -- an empty query is a query: it matches every row of the tenant, as the index does
  local d = ctx:resolve { family = "EntraGroup", path = "global_search", query = "" }
  expect(d, 200, "ok")
end

-- An exception that does not list record_in_workspace still never serves another
-- workspace's record: its list is bounded by the workspace, and so is its detail.
function TestFailClosed:test_exception_detail_stays_in_its_workspace()
  local path = H.refdb(ROWS)
  local eng = tg.open { db = path, rules = edited_rules {
    { "exceptions.lua", [[still_required_checks = { "workspace_member", "record_in_workspace", "capability" },
  capability = "operations.view",]], [[still_required_checks = { "workspace_member", "capability" },
  capability = "operations.view",]] } } }
  -- refdb: run 1 (ws1, tenant 1), run 2 (ws2, no tenant)
  local owner = ctx_of(eng, 1, 1, nil)
  local d = owner:resolve { exception = "OperationRunMonitor", path = "index" }
  expect(d, 200, "ok")
  lu.assertEquals(ids_of(d.records), { 1 })
  expect(owner:resolve { exception = "OperationRunMonitor", path = "detail", id = 1 }, 200, "ok")
  expect(owner:resolve { exception = "OperationRunMonitor", path = "detail", id = 2 }, 404,
    "foreign_workspace")
  eng:close()
end

os.exit(lu.LuaUnit.run())
