-- An oracle for the record resolver, independent of the library's code: plain Lua over the
-- rows of a plain SQLite handle (tg.connect). It reads the rule model (eng:rules()) for
-- names only (tables, columns, paths, capabilities, roles, row filters, the app mapping) and
-- decides every request by its own logic, written from the README ("Decisions: the record
-- resolver") and rules/README.md:
--
--   * keys are compared by type and value (Lua's ==: 7 ~= "7"); lists are ordered by key with
--     SQLite's order (integers before text, text by bytes);
--   * per-table columns: a family's own `columns` over the app's `columns`;
--   * row filters (all conditions hold, SQL semantics: NULL satisfies nothing but is_null) on
--     families, tenants and workspaces: a filtered-out row, tenant or workspace is as if it
--     did not exist;
--   * roles: the rule-file roles plus the rows of `app.role_grants` ("*" = every declared
--     capability); a NULL or absent workspace role grants nothing; a tenant role that is not
--     NULL replaces the workspace role, also when it is an undeclared name;
--   * a family whose table is keyed on (tenant, id) (its PRIMARY KEY, or a UNIQUE index of
--     NOT NULL columns, of exactly those two columns: read from the schema here) names a row
--     by (tenant, id): a path with a route tenant looks the id up in that tenant only (the
--     same id in another tenant is "record", never served); a canonical viewer, which looks
--     an id up without a route tenant, refuses an id two tenants hold ("record":
--     ambiguous_id), also when the context carries a route tenant.
--
-- Where the README leaves room, the oracle takes the fail-closed reading:
--   * a request that names a `capability` needs it in addition to the path's capability;
--   * a canonical_viewer in a context with a route tenant serves only that tenant's records;
--   * a membership of a workspace that is filtered out is no membership; under a workspace
--     row filter, neither is one of a workspace that does not exist;
--   * a route tenant that is not in the workspace refuses every path, canonical_viewer too.
--
-- Expected decisions carry a reason class, compared with the engine's reason:
--   path (the path is not there), scope (membership, tenant context, entitlement),
--   record (the record or its owner fails), capability (403), ok (200).
local O = {}

O.PATH_TYPES = { "index", "detail", "row_action", "bulk_action", "relation_manager",
  "global_search", "canonical_viewer" }
O.LIST_PATHS = { index = true, relation_manager = true, global_search = true }

local CLASS = {
  path_not_declared = "path", search_disabled = "path",
  not_member = "scope", no_tenant_context = "scope", tenant_not_in_workspace = "scope",
  not_entitled = "scope",
  missing_capability = "capability", ok = "ok",
}

-- The class of an engine reason: anything not listed is about the record (not_found,
-- foreign_tenant, foreign_workspace, workspace_mismatch, owner_*, wrong_owner).
function O.class(reason)
  if reason == nil then return nil end
  return CLASS[reason] or "record"
end

local function qi(name) return '"' .. tostring(name):gsub('"', '""') .. '"' end
O.qi = qi

local function pick(list) return list[math.random(#list)] end
O.pick = pick

-- SQLite's order of keys: NULL, numbers, text (by bytes), blobs.
local function rank(v)
  if v == nil then return 0 end
  if type(v) == "number" then return 1 end
  return 2
end

function O.key_lt(a, b)
  local ra, rb = rank(a), rank(b)
  if ra ~= rb then return ra < rb end
  if ra == 0 then return false end
  return a < b
end
local key_lt = O.key_lt

-- ---------------------------------------------------------------------------------------
-- row filters, in plain Lua with SQL's semantics

local function norm(v)
  if v == true then return 1 elseif v == false then return 0 end
  return v
end

-- a three-way comparison of two non-NULL SQL values (numbers before text)
local function cmp(a, b)
  a, b = norm(a), norm(b)
  local ra, rb = rank(a), rank(b)
  if ra ~= rb then return ra < rb and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local function holds(cond, v)
  local op = cond.op
  if op == "is_null" then return v == nil end
  if op == "is_not_null" then return v ~= nil end
  if v == nil then return false end
  if op == "in" or op == "not_in" then
    local found = false
    for _, x in ipairs(cond.value) do
      if cmp(v, x) == 0 then found = true break end
    end
    if op == "in" then return found else return not found end
  end
  local c = cmp(v, cond.value)
  if op == "eq" then return c == 0 elseif op == "ne" then return c ~= 0
  elseif op == "lt" then return c < 0 elseif op == "le" then return c <= 0
  elseif op == "gt" then return c > 0 elseif op == "ge" then return c >= 0 end
  error("oracle: unknown row filter operator " .. tostring(op))
end

-- True when `row` passes every condition of `filter` (nil: no filter). Column names are
-- matched without regard to ASCII case, like SQLite's.
function O.visible(filter, row)
  if not filter then return true end
  for _, cond in ipairs(filter) do
    local v = row[cond.column]
    if v == nil then
      local want = cond.column:lower()
      for k, x in pairs(row) do
        if type(k) == "string" and k:lower() == want then v = x break end
      end
    end
    if not holds(cond, v) then return false end
  end
  return true
end

-- ---------------------------------------------------------------------------------------
-- the world: the rows, as plain Lua tables

local function columns_of(rules, obj)
  local c = {}
  for k, v in pairs(rules.app.columns) do c[k] = v end
  for k, v in pairs(obj.columns or {}) do c[k] = v end
  return c
end
O.columns_of = columns_of

local function has_table(db, name)
  return db:value("SELECT count(*) FROM sqlite_schema WHERE type IN ('table', 'view') "
    .. "AND name = ? COLLATE NOCASE", name) > 0
end

-- True when `tenant` and `id` together, and neither alone, key `table`: its PRIMARY KEY is
-- exactly those two columns, or a UNIQUE index (not partial) of exactly those two NOT NULL
-- columns. Read from SQLite's catalog with plain pragmas (a view is never so keyed here).
local function keyed_with_tenant(db, table, tenant, id)
  local want = { [tenant:lower()] = true, [id:lower()] = true }
  local function exactly(cols)
    if #cols ~= 2 then return false end
    return want[cols[1]:lower()] and want[cols[2]:lower()] and cols[1]:lower() ~= cols[2]:lower()
  end
  local notnull, pk = {}, {}
  for _, c in ipairs(db:query("SELECT name, \"notnull\" AS nn, pk FROM pragma_table_info(?)",
      table)) do
    notnull[c.name:lower()] = c.nn == 1
    if c.pk > 0 then pk[#pk + 1] = c.name end
  end
  if exactly(pk) then return true end
  for _, ix in ipairs(db:query("SELECT name, \"unique\" AS u, partial FROM pragma_index_list(?)",
      table)) do
    if ix.u == 1 and ix.partial == 0 then
      local cols = {}
      for _, c in ipairs(db:query("SELECT name FROM pragma_index_info(?)", ix.name)) do
        cols[#cols + 1] = c.name or ""
      end
      if exactly(cols) and notnull[cols[1]:lower()] and notnull[cols[2]:lower()] then
        return true
      end
    end
  end
  return false
end

-- Reads everything the oracle needs from the database at `path` (through tg.connect) under
-- the rule model `rules`.
function O.load_world(tg, path, rules)
  local app = rules.app
  local W = { families = {}, tenant_ws = {}, member = {}, ws_role = {}, t_member = {},
    memberships = {}, entitled_in = {}, caps = {}, rules = rules,
    all_caps = rules.capabilities, users = {}, workspaces = {}, tenants = {} }
  local db = tg.connect(path, { readonly = true })
  local seen_user, seen_tenant = {}, {}
  local function add_user(u)
    if u ~= nil and not seen_user[u] then seen_user[u] = true W.users[#W.users + 1] = u end
  end
  local function add_tenant(t)
    if t ~= nil and not seen_tenant[t] then
      seen_tenant[t] = true
      W.tenants[#W.tenants + 1] = t
    end
  end

  -- workspaces: those that exist and pass their filter
  local ws_ok = {}
  local wsm = app.workspaces
  for _, r in ipairs(db:query(("SELECT * FROM %s"):format(qi(wsm.table)))) do
    local id = r[wsm.id or "id"]
    W.workspaces[#W.workspaces + 1] = id
    ws_ok[id] = O.visible(wsm.row_filter, r)
  end
  -- tenants: a filtered-out tenant is as if it did not exist
  local tm = app.tenants
  for _, r in ipairs(db:query(("SELECT * FROM %s"):format(qi(tm.table)))) do
    local id = r[tm.id or "id"]
    add_tenant(id)
    if O.visible(tm.row_filter, r) then W.tenant_ws[id] = r[tm.workspace] end
  end

  local wm = app.workspace_members
  local role_sel = (wm.role and wm.role ~= false) and (qi(wm.role) .. " AS r") or "NULL AS r"
  for _, r in ipairs(db:query(("SELECT %s AS u, %s AS w, %s FROM %s"):format(qi(wm.user),
      qi(wm.workspace), role_sel, qi(wm.table)))) do
    add_user(r.u)
    -- a membership of a workspace that is filtered out is none; without a workspace filter
    -- the membership row alone counts (a workspace that does not exist has no tenants)
    if ws_ok[r.w] or (not wsm.row_filter and ws_ok[r.w] == nil) then
      W.member[r.u] = W.member[r.u] or {}
      W.member[r.u][r.w] = true
      W.ws_role[r.u] = W.ws_role[r.u] or {}
      W.ws_role[r.u][r.w] = r.r
    end
    W.memberships[#W.memberships + 1] = { user = r.u, workspace = r.w }
  end
  local tmm = app.tenant_members
  local trole = (tmm.role and tmm.role ~= false) and (qi(tmm.role) .. " AS r") or "NULL AS r"
  for _, r in ipairs(db:query(("SELECT %s AS u, %s AS t, %s FROM %s"):format(qi(tmm.user),
      qi(tmm.tenant), trole, qi(tmm.table)))) do
    add_user(r.u)
    add_tenant(r.t)
    W.t_member[r.u] = W.t_member[r.u] or {}
    W.t_member[r.u][r.t] = { role = r.r }
    W.entitled_in[r.u] = W.entitled_in[r.u] or {}
    table.insert(W.entitled_in[r.u], r.t)
  end

  -- roles: the rule file's, then the grants table's ("*" is every declared capability)
  local function grant(role, cap)
    local set = W.caps[role] or {}
    W.caps[role] = set
    if cap == "*" then
      for _, all in ipairs(rules.capabilities) do set[all] = true end
    else
      set[cap] = true
    end
  end
  for name, list in pairs(rules.roles) do
    W.caps[name] = W.caps[name] or {}
    for _, c in ipairs(list) do grant(name, c) end
  end
  local rg = app.role_grants
  if rg and rg.table then
    for _, r in ipairs(db:query(("SELECT %s AS role, %s AS cap FROM %s"):format(
        qi(rg.role or "role"), qi(rg.capability or "capability"), qi(rg.table)))) do
      if r.role ~= nil and r.cap ~= nil then grant(r.role, r.cap) end
    end
  end

  for _, f in ipairs(rules.families) do
    local cols = columns_of(rules, f)
    local F = { name = f.name, table = f.table, cols = cols, filter = f.row_filter,
      paths = f.paths, search_posture = f.search_posture,
      search_columns = f.search_columns or {},
      rows = db:query(("SELECT * FROM %s"):format(qi(f.table))),
      by_id = {}, by_key = {}, holders = {}, by_tenant = {}, ids = {},
      key_with_tenant = keyed_with_tenant(db, f.table, cols.tenant, cols.id) }
    local idc, tc = cols.id, cols.tenant
    table.sort(F.rows, function(a, b) return key_lt(a[idc], b[idc]) end)
    for _, r in ipairs(F.rows) do
      local id, t = r[idc], r[tc]
      -- by_id: the row of an id where the id alone is the key; by_key[tenant][id] always;
      -- holders[id]: every row holding the id (two or more only when keyed with the tenant)
      if not F.key_with_tenant then F.by_id[id] = r end
      if t ~= nil then
        F.by_key[t] = F.by_key[t] or {}
        F.by_key[t][id] = r
      end
      F.holders[id] = F.holders[id] or {}
      table.insert(F.holders[id], r)
      if #F.holders[id] == 1 then F.ids[#F.ids + 1] = id end
      local list = F.by_tenant[t] or {}
      F.by_tenant[t] = list
      list[#list + 1] = r
      add_tenant(t)
    end
    F.int_keys = #F.ids == 0 or math.type(F.ids[1]) == "integer"
    W.families[f.name] = F
  end
  W.family_names = {}
  for _, f in ipairs(rules.families) do W.family_names[#W.family_names + 1] = f.name end
  W.has_table = function(name) return has_table(db, name) end
  db:close()
  W.has_table = nil
  return W
end

-- The row of family F that a read by id finds in a context with route tenant t: by (t, id)
-- where the table is keyed with its tenant, else by id alone (whatever its tenant; the
-- caller's scope check refuses another tenant's row).
function O.row_of(F, t, id)
  if id == nil then return nil end
  if F.key_with_tenant then return t ~= nil and F.by_key[t] and F.by_key[t][id] or nil end
  return F.by_id[id]
end

local function ascii_lower(s)
  return (s:gsub("[A-Z]", function(c) return string.char(c:byte() + 32) end))
end

-- The role of user u inside tenant t of workspace w (nil: no role at all).
local function role_of(W, u, w, t)
  local m = W.t_member[u] and W.t_member[u][t]
  if m and m.role ~= nil then return m.role end
  return W.ws_role[u] and W.ws_role[u][w]
end

local function has_caps(W, role, path_cap, named_cap)
  if not path_cap then return false end -- no capability declared: nobody holds it
  local set = role ~= nil and W.caps[role]
  if not set then return false end
  if not set[path_cap] then return false end
  if named_cap and not set[named_cap] then return false end
  return true
end

-- A row is served in (workspace w, tenant t) when it is visible, it is t's row and its own
-- workspace column, when set, is w. The caller has checked that t belongs to w.
local function in_scope(F, row, w, t)
  if row == nil or not O.visible(F.filter, row) then return false end
  local rw = row[F.cols.workspace]
  return row[F.cols.tenant] == t and (rw == nil or rw == w)
end

local function page(F, rows, keep, after, limit)
  local out, more = {}, false
  for _, r in ipairs(rows) do
    local id = r[F.cols.id]
    if (after == nil or key_lt(after, id)) and keep(r) then
      if #out == limit then more = true break end
      out[#out + 1] = id
    end
  end
  return out, more
end

local function no(class) return { status = 404, class = class } end
local function forbidden() return { status = 403, class = "capability" } end
local function one(id) return { status = 200, class = "ok", ids = { id } } end

-- Expected decision: { status =, class =, ids = {...} (200 only), list = bool, has_more = }.
function O.decide(W, ctx, req)
  local u, w, t = ctx.user, ctx.workspace, ctx.tenant
  local F = W.families[req.family]
  local path = F.paths[req.path]
  if not path then return no("path") end
  if req.path == "global_search" and F.search_posture ~= "scoped" then return no("path") end
  if not (W.member[u] and W.member[u][w]) then return no("scope") end
  local named = req.capability
  local idc = F.cols.id

  if req.path == "canonical_viewer" then
    if t ~= nil and W.tenant_ws[t] ~= w then return no("scope") end   -- a bad route tenant
    -- looked up by id alone: the visible rows holding it; two (an id two tenants hold in a
    -- table keyed with its tenant) cannot be told apart
    local found = {}
    for _, r in ipairs(req.id ~= nil and F.holders[req.id] or {}) do
      if O.visible(F.filter, r) then found[#found + 1] = r end
    end
    if #found ~= 1 then return no("record") end                       -- none, or ambiguous_id
    local row = found[1]
    local rt = row[F.cols.tenant]
    if t ~= nil and rt ~= t then return no("record") end             -- never widens
    if W.tenant_ws[rt] ~= w then return no("record") end             -- other workspace / gone
    local rw = row[F.cols.workspace]
    if rw ~= nil and rw ~= w then return no("record") end
    if not (W.t_member[u] and W.t_member[u][rt]) then return no("scope") end
    if not has_caps(W, role_of(W, u, w, rt), path.capability, named) then return forbidden() end
    return one(row[idc])
  end

  if t == nil then return no("scope") end                             -- no_tenant_context
  if W.tenant_ws[t] ~= w then return no("scope") end                  -- tenant_not_in_workspace
  if not (W.t_member[u] and W.t_member[u][t]) then return no("scope") end -- not_entitled
  local allowed = has_caps(W, role_of(W, u, w, t), path.capability, named)
  local limit = req.limit or W.rules.app.limits.page_size
  local mine = F.by_tenant[t] or {}
  local function scoped(r) return in_scope(F, r, w, t) end

  if req.path == "detail" or req.path == "row_action" then
    local row = O.row_of(F, t, req.id)
    if not in_scope(F, row, w, t) then return no("record") end
    if not allowed then return forbidden() end
    return one(row[idc])
  elseif req.path == "bulk_action" then
    local seen, ids = {}, {}
    for _, id in ipairs(req.ids) do
      if not in_scope(F, O.row_of(F, t, id), w, t) then return no("record") end
      if not seen[id] then seen[id] = true ids[#ids + 1] = id end
    end
    if not allowed then return forbidden() end
    table.sort(ids, key_lt)
    return { status = 200, class = "ok", ids = ids, set = true }
  elseif req.path == "index" then
    if not allowed then return forbidden() end
    local ids, more = page(F, mine, scoped, req.after, limit)
    return { status = 200, class = "ok", ids = ids, list = true, has_more = more }
  elseif req.path == "global_search" then
    if not allowed then return forbidden() end
    local q = ascii_lower(req.query or "")
    local ids, more = page(F, mine, function(r)
      if not scoped(r) then return false end
      for _, c in ipairs(F.search_columns) do
        local v = r[c]
        if type(v) == "string" and ascii_lower(v):find(q, 1, true) then return true end
      end
      return false
    end, req.after, limit)
    return { status = 200, class = "ok", ids = ids, list = true, has_more = more }
  elseif req.path == "relation_manager" then
    local OF = W.families[path.owner]
    if not in_scope(OF, O.row_of(OF, t, req.owner), w, t) then return no("record") end
    if req.id ~= nil then
      local row = O.row_of(F, t, req.id)
      if not scoped(row) then return no("record") end
      if row[path.via] ~= req.owner then return no("record") end     -- wrong_owner
      if not allowed then return forbidden() end
      return one(row[idc])
    end
    if not allowed then return forbidden() end
    local ids, more = page(F, mine, function(r)
      return scoped(r) and r[path.via] == req.owner
    end, req.after, limit)
    return { status = 200, class = "ok", ids = ids, list = true, has_more = more }
  end
  error("oracle: unhandled path " .. tostring(req.path))
end

-- ---------------------------------------------------------------------------------------
-- random requests

-- A request generator over the world. opts (all optional):
--   users, workspaces, tenants: extra values drawn now and then (strangers, ghosts);
--   searches: literal search strings drawn half the time;
--   missing_ids(F): a list of ids of F that do not exist.
function O.generator(W, opts)
  opts = opts or {}
  local users, workspaces, tenants = {}, {}, {}
  for _, u in ipairs(W.users) do users[#users + 1] = u end
  for _, u in ipairs(opts.users or {}) do users[#users + 1] = u end
  for _, x in ipairs(W.workspaces) do workspaces[#workspaces + 1] = x end
  for _, x in ipairs(opts.workspaces or {}) do workspaces[#workspaces + 1] = x end
  for _, x in ipairs(W.tenants) do tenants[#tenants + 1] = x end
  for _, x in ipairs(opts.tenants or {}) do tenants[#tenants + 1] = x end
  tenants[#tenants + 1] = false
  local searchable = {}
  for _, name in ipairs(W.family_names) do
    local F = W.families[name]
    if #F.search_columns > 0 and #F.rows > 0 then searchable[#searchable + 1] = F end
  end
  local default_searches = { "%", "_", "\\", "a", "A", "zzz", "", " ", "-", "1" }
  local searches = opts.searches or default_searches

  local function missing_ids(F)
    if opts.missing_ids then return opts.missing_ids(F) end
    if F.int_keys then
      local max = 0
      for _, id in ipairs(F.ids) do if id > max then max = id end end
      return { 0, max + 1, max + 17, 999999 }
    end
    return { "00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff",
      "nope", "" }
  end

  local function pick_context(p_nil)
    local u, w, t
    if math.random() < 0.8 and #W.memberships > 0 then
      local m = pick(W.memberships)
      u, w = m.user, m.workspace
      local entitled = {}
      for _, et in ipairs(W.entitled_in[u] or {}) do
        if W.tenant_ws[et] == w then entitled[#entitled + 1] = et end
      end
      local x = math.random()
      if x < p_nil then t = false
      elseif x < p_nil + (1 - p_nil) * 0.8 and #entitled > 0 then t = pick(entitled)
      else t = pick(tenants) end
    else
      u, w, t = pick(users), pick(workspaces), pick(tenants)
    end
    if t == false then t = nil end
    return u, w, t
  end

  -- an id of family F: mostly of tenant `hint`, often of any tenant, sometimes missing
  local function pick_id(F, hint)
    local x = math.random()
    local mine = hint ~= nil and F.by_tenant[hint]
    if x < 0.55 and mine and #mine > 0 then return pick(mine)[F.cols.id] end
    if x < 0.92 and #F.ids > 0 then return pick(F.ids) end
    return pick(missing_ids(F))
  end

  local function random_search()
    if math.random() < 0.5 or #searchable == 0 then return pick(searches) end
    local F = pick(searchable)
    local r = pick(F.rows)
    local s
    for _ = 1, 4 do
      s = r[pick(F.search_columns)]
      if type(s) == "string" and #s > 0 then break end
    end
    if type(s) ~= "string" or #s == 0 then return pick(searches) end
    -- a slice on character boundaries (SQLite's LIKE compares UTF-8 characters)
    local chars = utf8.len(s) or #s
    local i = math.random(chars)
    local j = math.min(chars, i + math.random(0, 6))
    s = s:sub(utf8.offset(s, i), utf8.offset(s, j + 1) - 1)
    if math.random() < 0.5 then s = s:upper() end
    if math.random() < 0.2 then s = s .. pick { "%", "_", "\\" } end
    return s
  end

  local function random_after(F, hint)
    local y = math.random()
    if y < 0.4 then return nil end
    local mine = hint ~= nil and F.by_tenant[hint]
    if y < 0.7 and mine and #mine > 0 then return pick(mine)[F.cols.id] end
    if F.int_keys then
      local max = 0
      for _, id in ipairs(F.ids) do if id > max then max = id end end
      return pick { 0, -1, math.random(0, max + 5) }
    end
    if y < 0.85 and #F.ids > 0 then return pick(F.ids) end
    return pick { "", "0", "7", "a3", "f", "zz", ("%x"):format(math.random(0, 255)) }
  end

  return function()
    local path = pick(O.PATH_TYPES)
    local fam
    local declaring = {}
    for _, name in ipairs(W.family_names) do
      if W.families[name].paths[path] then declaring[#declaring + 1] = name end
    end
    if math.random() < 0.8 and #declaring > 0 then fam = pick(declaring)
    else fam = pick(W.family_names) end
    local F = W.families[fam]
    local u, w, t = pick_context(path == "canonical_viewer" and 0.6 or 0.07)
    -- the tenant whose rows the ids mostly come from
    local hint = t
    if hint == nil then
      local ent, here = W.entitled_in[u] or {}, {}
      for _, et in ipairs(ent) do if W.tenant_ws[et] == w then here[#here + 1] = et end end
      if #here > 0 and math.random() < 0.8 then hint = pick(here)
      elseif #ent > 0 then hint = pick(ent)
      else hint = pick(W.tenants) end
    end
    local req = { family = fam, path = path }
    if path == "detail" or path == "row_action" or path == "canonical_viewer" then
      req.id = pick_id(F, hint)
    elseif path == "bulk_action" then
      local n, ids = math.random(1, 8), {}
      local all_mine = math.random() < 0.5
      local mine = F.by_tenant[hint] or {}
      for i = 1, n do
        if all_mine and #mine > 0 then ids[i] = pick(mine)[F.cols.id]
        else ids[i] = pick_id(F, hint) end
      end
      for _ = 1, math.random(0, 3) do ids[#ids + 1] = ids[math.random(#ids)] end -- duplicates
      req.ids = ids
    elseif path == "relation_manager" then
      local rm = F.paths.relation_manager
      local OF = rm and W.families[rm.owner] or W.families[pick(W.family_names)]
      req.owner = pick_id(OF, hint)
      if math.random() < 0.4 then
        local children = {}
        if rm then
          for _, r in ipairs(F.rows) do
            -- keyed with the tenant: the children of the owner of the hinted tenant
            if r[rm.via] == req.owner and (not F.key_with_tenant or r[F.cols.tenant] == hint) then
              children[#children + 1] = r[F.cols.id]
            end
          end
        end
        if #children > 0 and math.random() < 0.6 then req.id = pick(children)
        else req.id = pick_id(F, hint) end
      end
    elseif path == "global_search" then
      req.query = random_search()
    end
    if O.LIST_PATHS[path] and not (path == "relation_manager" and req.id ~= nil) then
      local x = math.random()
      if x < 0.3 then req.limit = nil
      elseif x < 0.7 then req.limit = math.random(1, 8)
      else req.limit = math.random(1, W.rules.app.limits.max_page_size) end
      req.after = random_after(F, hint)
    end
    if math.random() < 0.2 then req.capability = pick(W.all_caps) end
    return req, u, w, t
  end
end

-- ---------------------------------------------------------------------------------------
-- comparison and the safety property

function O.show(v)
  if type(v) ~= "table" then return type(v) == "string" and ("%q"):format(v) or tostring(v) end
  local keys, parts = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local is_list = #v > 0
  for _, k in ipairs(keys) do
    parts[#parts + 1] = is_list and O.show(v[k]) or (tostring(k) .. "=" .. O.show(v[k]))
  end
  return "{" .. table.concat(parts, ", ") .. "}"
end

function O.actual_ids(W, req, d)
  local idc = W.families[req.family].cols.id
  if d.records then
    local ids = {}
    for i, r in ipairs(d.records) do ids[i] = r[idc] end
    return ids
  elseif d.record then
    return { d.record[idc] }
  end
  return nil
end

local function same_list(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i] ~= b[i] or math.type(a[i]) ~= math.type(b[i]) then return false end
  end
  return true
end

-- Disagreement with the oracle, or nil.
function O.compare(W, req, exp, d)
  if d.status ~= exp.status then return "status" end
  if O.class(d.reason) ~= exp.class then return "reason class" end
  local ids = O.actual_ids(W, req, d)
  if exp.status ~= 200 then
    if ids then return "refusal carries rows" end
    return nil
  end
  if not ids then return "no rows on 200" end
  if exp.set then
    ids = { table.unpack(ids) }
    table.sort(ids, key_lt)
  end
  if not same_list(ids, exp.ids) then return "ids" end
  if exp.list and (d.has_more or false) ~= exp.has_more then return "has_more" end
  if exp.list and exp.has_more and d.next_after ~= exp.ids[#exp.ids] then
    return "next_after"
  end
  return nil
end

-- The safety property, from the database truth only: a list of violations.
function O.safety(W, ctx, req, d)
  local bad = {}
  local rows = d.records or (d.record and { d.record }) or {}
  local F = W.families[req.family]
  local idc, tc, wc = F.cols.id, F.cols.tenant, F.cols.workspace
  for _, r in ipairs(rows) do
    local id = r[idc]
    -- the database's row of that key: by (tenant, id) where the table is so keyed
    local truth = F.key_with_tenant and O.row_of(F, r[tc], id) or F.by_id[id]
    if not truth then
      bad[#bad + 1] = ("%s id %s does not exist"):format(req.family, O.show(id))
    else
      if not O.visible(F.filter, truth) then
        bad[#bad + 1] = ("%s %s is filtered out (row_filter) but was served"):format(req.family,
          O.show(id))
      end
      for _, tid in ipairs { r[tc], truth[tc] } do
        if ctx.tenant ~= nil then
          if tid ~= ctx.tenant then
            bad[#bad + 1] = ("%s %s of tenant %s served in tenant %s"):format(req.family,
              O.show(id), O.show(tid), O.show(ctx.tenant))
          end
        elseif W.tenant_ws[tid] ~= ctx.workspace
            or not (W.t_member[ctx.user] and W.t_member[ctx.user][tid]) then
          bad[#bad + 1] = ("%s %s of tenant %s served to user %s in workspace %s")
            :format(req.family, O.show(id), O.show(tid), O.show(ctx.user), O.show(ctx.workspace))
        end
      end
      for _, wid in ipairs { r[wc], truth[wc] } do
        if wid ~= nil and wid ~= ctx.workspace then
          bad[#bad + 1] = ("%s %s with %s %s served in workspace %s")
            :format(req.family, O.show(id), wc, O.show(wid), O.show(ctx.workspace))
        end
      end
    end
  end
  return bad
end

-- ---------------------------------------------------------------------------------------
-- a whole run

-- Sends `n` random requests to `eng` and the oracle. Returns a report:
-- { requests, disagreements, described = {...}, violations, violation_text = {...},
--   by_status, by_reason, by_path, by_class, lists, non_empty, more, seconds }.
function O.run(eng, W, n, gen_opts)
  local started = os.clock()
  local make_request = O.generator(W, gen_opts)
  local contexts = {}
  local function context_for(u, w, t)
    local key = O.show(u) .. "/" .. O.show(w) .. "/" .. O.show(t)
    if not contexts[key] then
      contexts[key] = eng:context { user = u, workspace = w, tenant = t }
    end
    return contexts[key]
  end
  local R = { requests = n, disagreements = 0, described = {}, violations = 0,
    violation_text = {}, by_status = {}, by_reason = {}, by_path = {}, by_class = {},
    lists = 0, non_empty = 0, more = 0 }
  for i = 1, n do
    local req, u, w, t = make_request()
    local ctx = { user = u, workspace = w, tenant = t }
    local exp = O.decide(W, ctx, req)
    local ok, d = pcall(function() return context_for(u, w, t):resolve(req) end)
    local why
    if not ok then
      why, d = "raised: " .. tostring(d), { status = "error" }
    else
      why = O.compare(W, req, exp, d)
      for _, v in ipairs(O.safety(W, ctx, req, d)) do
        R.violations = R.violations + 1
        if #R.violation_text < 20 then
          R.violation_text[#R.violation_text + 1] = ("#%d ctx %s req %s: %s"):format(i,
            O.show(ctx), O.show(req), v)
        end
      end
    end
    local s = tostring(d.status)
    R.by_status[s] = (R.by_status[s] or 0) + 1
    if d.reason then
      R.by_reason[d.reason] = (R.by_reason[d.reason] or 0) + 1
      local c = O.class(d.reason)
      R.by_class[c] = (R.by_class[c] or 0) + 1
    end
    local pk = req.path .. " " .. s
    R.by_path[pk] = (R.by_path[pk] or 0) + 1
    if ok and d.records and d.status == 200 and O.LIST_PATHS[req.path] then
      R.lists = R.lists + 1
      if #d.records > 0 then R.non_empty = R.non_empty + 1 end
      if d.has_more then R.more = R.more + 1 end
    end
    if why then
      R.disagreements = R.disagreements + 1
      if #R.described < 20 then
        R.described[#R.described + 1] = ("#%d %s: ctx %s req %s\n    expected %s\n    actual   %s")
          :format(i, why, O.show(ctx), O.show(req), O.show(exp),
            O.show { status = d.status, reason = d.reason, ids = O.actual_ids(W, req, d),
                     has_more = d.has_more, next_after = d.next_after })
      end
    end
  end
  R.seconds = os.clock() - started
  return R
end

local function line(counts)
  local keys, parts = {}, {}
  for k in pairs(counts) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. counts[k] end
  return table.concat(parts, " ")
end

function O.print_report(R, label)
  print(("\n%s: %d requests, %d disagreements, %d safety violations, %.1f s CPU"):format(
    label, R.requests, R.disagreements, R.violations, R.seconds))
  print("  status: " .. line(R.by_status))
  print("  class:  " .. line(R.by_class))
  print("  reason: " .. line(R.by_reason))
  print("  path:   " .. line(R.by_path))
  print(("  lists:  %d pages served, %d non-empty, %d with has_more"):format(R.lists,
    R.non_empty, R.more))
end

-- Fails (through LuaUnit) on any violation or disagreement, and when the mix is too poor to
-- mean something.
function O.assert_report(lu, R)
  if R.violations > 0 then
    lu.fail(("%d safety violations:\n%s"):format(R.violations,
      table.concat(R.violation_text, "\n")))
  end
  if R.disagreements > 0 then
    lu.fail(("%d of %d requests disagree with the oracle (first %d):\n%s"):format(
      R.disagreements, R.requests, #R.described, table.concat(R.described, "\n")))
  end
  local n = R.requests
  lu.assertTrue((R.by_status["200"] or 0) >= n // 10, "too few 200")
  lu.assertTrue((R.by_status["403"] or 0) >= n // 50, "too few 403")
  lu.assertTrue((R.by_status["404"] or 0) >= n // 10, "too few 404")
  lu.assertTrue(R.non_empty >= R.lists // 2, "too few non-empty pages")
  lu.assertTrue(R.more >= R.lists // 20, "too few pages with has_more")
end

return O
