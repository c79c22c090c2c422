-- A small application keyed the way Citus requires: every tenant-owned table has the
-- primary key (tenant_id, id), ids repeat across tenants (thing 1 exists in tenants 1, 2
-- and 3, each with its own name), and parts reference things by (tenant_id, thing_id).
-- test_distributed.lua runs it on SQLite, test_pg_citus.lua on PostgreSQL: the same
-- decisions, asserted on what a user sees (status, reason, the rows' names and tenants).
local K = {}

K.SCHEMA = [[
CREATE TABLE workspaces (id INTEGER PRIMARY KEY);
CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL);
CREATE TABLE workspace_memberships (user_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL,
  role TEXT);
CREATE TABLE tenant_memberships (user_id INTEGER NOT NULL, tenant_id INTEGER NOT NULL, role TEXT);
CREATE TABLE things (tenant_id INTEGER NOT NULL, id INTEGER NOT NULL, name TEXT NOT NULL,
  PRIMARY KEY (tenant_id, id));
CREATE TABLE parts (tenant_id INTEGER NOT NULL, id INTEGER NOT NULL, thing_id INTEGER NOT NULL,
  label TEXT, PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, thing_id) REFERENCES things (tenant_id, id));
INSERT INTO workspaces VALUES (1), (2);
INSERT INTO tenants VALUES (1, 1), (2, 1), (3, 2);
-- user 10: owner of workspace 1, entitled to tenants 1 and 2; user 11: viewer, tenant 2 only
INSERT INTO workspace_memberships VALUES (10, 1, 'owner'), (11, 1, 'viewer'), (12, 2, 'owner');
INSERT INTO tenant_memberships VALUES (10, 1, NULL), (10, 2, NULL), (11, 2, NULL), (12, 3, NULL);
INSERT INTO things VALUES
  (1, 1, 'one of 1'), (2, 1, 'one of 2'), (3, 1, 'one of 3'),
  (1, 7, 'seven of 1'),
  (1, 8, 'eight of 1'), (3, 8, 'eight of 3'),
  (2, 9, 'nine of 2'), (1, 9, 'nine of 1');
INSERT INTO parts VALUES (1, 1, 1, 'part of 1/1'), (2, 1, 1, 'part of 2/1'),
  (2, 2, 1, 'another of 2/1'), (2, 3, 9, 'part of 2/9');
]]

K.FAMILIES = [[
family "Thing" {
  table = "things",
  primary_surface = "ThingResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    row_action = { capability = "thing.edit" },
    bulk_action = { capability = "thing.edit" },
    canonical_viewer = { capability = "thing.view" },
  },
}
family "Part" {
  table = "parts",
  primary_surface = "PartResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    detail = { capability = "thing.view" },
    relation_manager = { owner = "Thing", via = "thing_id", capability = "thing.view" },
  },
}
]]

local function names(d, field)
  local out = {}
  for _, r in ipairs(d.records or (d.record and { d.record }) or {}) do
    out[#out + 1] = r[field or "name"]
  end
  table.sort(out)
  return out
end
K.names = names

-- The decisions, on an engine open on the database (either backend).
function K.check(lu, eng)
  local function ctx(u, w, t) return eng:context { user = u, workspace = w, tenant = t } end
  local function resolve(c, req)
    local d = assert(c:resolve(req))
    return d
  end
  local t1, t2 = ctx(10, 1, 1), ctx(10, 1, 2)

  -- the same id names each tenant's own row
  local d = resolve(t1, { family = "Thing", path = "detail", id = 1 })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(names(d), { "one of 1" })
  d = resolve(t2, { family = "Thing", path = "detail", id = 1 })
  lu.assertEquals(names(d), { "one of 2" })
  -- an id only another tenant holds is not read at all: not_found, never foreign_tenant
  d = resolve(t2, { family = "Thing", path = "detail", id = 7 })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  lu.assertEquals(names(d), {})
  d = resolve(ctx(12, 2, 3), { family = "Thing", path = "row_action", id = 7 })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })

  -- bulk: the tenant's rows of those ids, none of another tenant's
  d = resolve(t2, { family = "Thing", path = "bulk_action", ids = { 1, 9 } })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(names(d), { "nine of 2", "one of 2" })
  d = resolve(t2, { family = "Thing", path = "bulk_action", ids = { 1, 7 } })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })

  -- the list of a tenant
  d = resolve(t1, { family = "Thing", path = "index" })
  lu.assertEquals(names(d), { "eight of 1", "nine of 1", "one of 1", "seven of 1" })

  -- a relation: the owner is the route tenant's thing 1; its parts, not tenant 1's
  d = resolve(t2, { family = "Part", path = "relation_manager", owner = 1 })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(names(d, "label"), { "another of 2/1", "part of 2/1" })
  d = resolve(t2, { family = "Part", path = "relation_manager", owner = 7 })
  lu.assertEquals({ d.status, d.reason }, { 404, "owner_not_found" })
  d = resolve(t1, { family = "Part", path = "detail", id = 3 })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })

  -- the canonical viewer has no route tenant: an id one tenant holds is found by it ...
  local nowhere = ctx(10, 1, nil)
  d = resolve(nowhere, { family = "Thing", path = "canonical_viewer", id = 7 })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(names(d), { "seven of 1" })
  d = resolve(ctx(11, 1, nil), { family = "Thing", path = "canonical_viewer", id = 7 })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_entitled" })
  -- ... an id two tenants hold cannot be told apart: refused, with nothing served
  for _, id in ipairs { 1, 8, 9 } do
    d = resolve(nowhere, { family = "Thing", path = "canonical_viewer", id = id })
    lu.assertEquals({ d.status, d.reason }, { 404, "ambiguous_id" }, "id " .. id)
    lu.assertEquals(names(d), {})
    local x = assert(nowhere:explain { family = "Thing", path = "canonical_viewer", id = id })
    lu.assertEquals({ x.status, x.reason }, { 404, "ambiguous_id" })
  end
  -- explain agrees on the pinned reads too
  local x = assert(t2:explain { family = "Thing", path = "detail", id = 7 })
  lu.assertEquals({ x.status, x.reason }, { 404, "not_found" })

  -- writes: an update of thing 1 in tenant 2 leaves tenants 1 and 3's thing 1 alone
  d = assert(t2:update("Thing", 1, { name = "changed in 2" }))
  lu.assertEquals(d.status, 200)
  lu.assertEquals(names(resolve(t2, { family = "Thing", path = "detail", id = 1 })),
    { "changed in 2" })
  lu.assertEquals(names(resolve(t1, { family = "Thing", path = "detail", id = 1 })),
    { "one of 1" })
  lu.assertEquals(names(resolve(ctx(12, 2, 3), { family = "Thing", path = "detail", id = 1 })),
    { "one of 3" })
  -- an update of an id the route tenant does not hold changes nothing
  d = assert(t2:update("Thing", 7, { name = "stolen" }))
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  lu.assertEquals(names(resolve(t1, { family = "Thing", path = "detail", id = 7 })),
    { "seven of 1" })
  -- an insert of an id another tenant holds is the route tenant's own row
  d = assert(t2:insert("Thing", { id = 7, name = "seven of 2" }))
  lu.assertEquals(d.status, 200)
  lu.assertEquals(names(resolve(t2, { family = "Thing", path = "detail", id = 7 })),
    { "seven of 2" })
  lu.assertEquals(names(resolve(t1, { family = "Thing", path = "detail", id = 7 })),
    { "seven of 1" })
  -- and now 7 is two tenants' id
  d = resolve(nowhere, { family = "Thing", path = "canonical_viewer", id = 7 })
  lu.assertEquals({ d.status, d.reason }, { 404, "ambiguous_id" })
end

return K
