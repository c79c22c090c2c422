-- Explaining a decision (ctx:explain, tg_ctx_explain, `tenantguard explain`) and the
-- decision log's deciding check.
--
-- The explanation reads its facts with statements of its own and derives the status and
-- reason from its checks; it must agree with ctx:resolve on every request. Thousands of
-- random requests (tests/lua/oracle.lua's generator, plus scope exceptions) over a
-- reference database made harder with raw SQL (orphans, wrong and NULL workspace_ids,
-- cross-tenant relation links, narrowed, undeclared and NULL roles) hold it to that, on the
-- shipped rules and on rules with row filters, roles from a table and an exception bound to
-- the route tenant. Every column value of every tenant-owned row is made to carry a marker
-- that no explanation may ever print: it names keys the caller sent, never a row's data.

local lu = require "luaunit"
local H = require "helpers"
local O = require "oracle"
local tg = H.tg

local SEED = tonumber(os.getenv("TG_EXPLAIN_SEED")) or 4242
local REQUESTS = tonumber(os.getenv("TG_EXPLAIN_REQUESTS")) or 3000
local ROWS = 60
local MISSING_TENANT = 13
local GHOST_TENANT = 90001
local GHOST_WORKSPACE = 99
local SECRET = "SECRETVALUE"

local function pick(list) return list[math.random(#list)] end
local function sql_int(v) return v == nil and "NULL" or tostring(math.tointeger(v)) end

-- Text columns of the tenant-owned tables: every value gets the marker.
local TEXT_COLUMNS = {
  policies = { "display_name", "platform" }, policy_versions = { "snapshot" },
  inventory_items = { "display_name" }, entra_groups = { "display_name", "mail_nickname" },
  findings = { "title" }, backup_sets = { "name" }, backup_schedules = { "name" },
  restore_runs = { "status" }, operation_runs = { "summary" },
  provider_connections = { "provider" }, alert_deliveries = { "channel" },
}

local function harden(path)
  local db = tg.connect(path)
  db:exec("BEGIN")
  local tenant_ws = {}
  for _, r in ipairs(db:query("SELECT id, workspace_id FROM tenants")) do
    tenant_ws[r.id] = r.workspace_id
  end
  db:exec([[
    UPDATE tenant_memberships SET role = 'readonly' WHERE user_id = 1 AND tenant_id = 2;
    UPDATE tenant_memberships SET role = 'Operator' WHERE user_id = 2 AND tenant_id = 2;
    UPDATE tenant_memberships SET role = '' WHERE user_id = 9 AND tenant_id = 6;
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (2, 3, 'owner');
    INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (3, 6, 'auditor');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (9, 6, NULL);
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (5, 4, NULL);
    INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (99, 1, 'owner');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (90001, 1, 'owner');
    INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (13, 8, 'owner');
  ]])
  for t, cols in pairs(TEXT_COLUMNS) do
    for _, c in ipairs(cols) do
      db:exec(("UPDATE %s SET %s = '%s-' || id || '-' || %s WHERE %s IS NOT NULL")
        :format(t, c, SECRET, c, c))
    end
  end
  for _, t in ipairs { "policies", "policy_versions", "inventory_items", "entra_groups",
                       "findings", "restore_runs", "backup_sets", "backup_schedules",
                       "operation_runs", "alert_deliveries" } do
    for _ = 1, 4 do
      db:exec(("UPDATE %s SET tenant_id = %d WHERE id = %d"):format(t,
        pick { GHOST_TENANT, MISSING_TENANT, 90002 }, math.random(ROWS // 5)))
    end
  end
  local links = {
    { child = "policy_versions", via = "policy_id", owner = "policies" },
    { child = "backup_sets", via = "backup_schedule_id", owner = "backup_schedules" },
  }
  for _, l in ipairs(links) do
    local by_tenant, all = {}, {}
    for _, r in ipairs(db:query(("SELECT id, tenant_id FROM %s ORDER BY id"):format(l.owner))) do
      local list = by_tenant[r.tenant_id] or {}
      by_tenant[r.tenant_id] = list
      if #list < 3 then list[#list + 1] = r.id end
      all[#all + 1] = r.id
    end
    for _, r in ipairs(db:query(("SELECT id, tenant_id FROM %s"):format(l.child))) do
      local x, v = math.random(), false
      if x < 0.5 and by_tenant[r.tenant_id] then v = pick(by_tenant[r.tenant_id])
      elseif x < 0.65 then v = pick(all)
      elseif x < 0.75 then v = nil end
      if v ~= false then
        db:exec(("UPDATE %s SET %s = %s WHERE id = %d"):format(l.child, l.via, sql_int(v), r.id))
      end
    end
  end
  for _, t in ipairs { "policies", "policy_versions", "inventory_items", "entra_groups",
                       "findings" } do
    db:exec(("ALTER TABLE %s ADD COLUMN workspace_id INTEGER"):format(t))
    for _, r in ipairs(db:query(("SELECT id, tenant_id FROM %s"):format(t))) do
      local right = tenant_ws[r.tenant_id]
      local x, v = math.random(), nil
      if right == nil then
        if x < 0.6 then v = math.random(3) end
      elseif x < 0.55 then v = right
      elseif x < 0.8 then v = nil
      elseif x < 0.93 then v = right % 3 + 1
      else v = GHOST_WORKSPACE end
      db:exec(("UPDATE %s SET workspace_id = %s WHERE id = %d"):format(t, sql_int(v), r.id))
    end
  end
  -- exception rows in another workspace, or with a tenant of another one
  db:exec([[
    UPDATE operation_runs SET workspace_id = 2 WHERE id % 5 = 0;
    UPDATE alert_deliveries SET tenant_id = NULL WHERE id % 4 = 0;
    UPDATE provider_connections SET workspace_id = 3 WHERE id % 3 = 0;
  ]])
  db:exec("COMMIT")
  db:close()
end

local GEN = {
  users = { 11 },
  workspaces = { 4, GHOST_WORKSPACE },
  tenants = { MISSING_TENANT, GHOST_TENANT },
  missing_ids = function() return { 0, ROWS + 1, 999999 } end,
}

local EXCEPTIONS = { "ProviderConnectionAdmin", "OperationRunMonitor", "AlertDeliveries" }

-- A random request to a scope exception.
local function exception_request(W)
  local path = pick { "index", "detail", "row_action", "canonical_viewer", "detail",
    "bulk_action", "global_search" }
  local req = { exception = pick(EXCEPTIONS), path = path }
  if path == "detail" or path == "row_action" or path == "canonical_viewer" then
    req.id = math.random(0, 14)
  elseif path == "bulk_action" then
    req.ids = { 1, 2 }
  elseif path == "global_search" then
    req.query = "a"
  end
  if math.random() < 0.2 then req.capability = pick(W.all_caps) end
  local m = pick(W.memberships)
  local t = math.random() < 0.3 and nil or pick(W.tenants)
  return req, m.user, m.workspace, t
end

local function describe(ctx, req)
  return ("ctx %s req %s"):format(O.show(ctx), O.show(req))
end

-- The structure every explanation has, whatever it explains. Returns a problem or nil.
local function structure(x)
  local decided, n = nil, 0
  for i, c in ipairs(x.checks) do
    if c.decided then decided, n = i, n + 1 end
    if type(c.read) ~= "string" or c.read == "" then return "a check without a line" end
    if c.read:find(SECRET, 1, true) then return "a row's value in: " .. c.read end
    if c.result == "fail" and not c.reason then return "a refusal without a reason" end
  end
  if n ~= 1 then return ("%d checks marked as deciding"):format(n) end
  local d = x.checks[decided]
  if d.check ~= x.decided_by then return "decided_by is not the deciding check" end
  if x.status == 200 then
    for _, c in ipairs(x.checks) do
      if c.result == "fail" then return "a refusal on a 200" end
    end
    if decided ~= #x.checks then return "a 200 decided before its last check" end
  else
    if d.result ~= "fail" or d.reason ~= x.reason then return "the deciding check did not refuse" end
    if (x.status == 403) ~= (x.decided_by == "capability") then return "403 is the capability's" end
    -- no refusal before the deciding check (bulk: ids missing before a foreign one are)
    for i = 1, decided - 1 do
      local c = x.checks[i]
      if c.result == "fail" and not (c.check == "record" and c.reason == "not_found"
          and x.reason ~= "not_found") then
        return "a refusal before the deciding check: " .. c.read
      end
    end
  end
  return nil
end

-- Sends n random requests to ctx:resolve and ctx:explain; returns the counts of explained
-- reasons. Fails on any disagreement, broken structure or printed value.
local function run_on(path, rules_dir, n, gen_opts, exceptions)
  local eng = tg.open { db = path, rules = rules_dir }
  local events = {}
  eng:set_decision_log(function(ev) events[#events + 1] = ev end, { deciding_check = true })
  local W = O.load_world(tg, path, eng:rules())
  local gen = O.generator(W, gen_opts)
  local contexts = {}
  local reasons, problems = {}, {}
  local function context(u, w, t, fresh)
    local k = O.show(u) .. "/" .. O.show(w) .. "/" .. O.show(t)
    if fresh or not contexts[k] then
      contexts[k] = eng:context { user = u, workspace = w, tenant = t }
    end
    return contexts[k]
  end
  for i = 1, n do
    local req, u, w, t
    if exceptions and math.random() < 0.12 then
      req, u, w, t = exception_request(W)
    else
      req, u, w, t = gen()
    end
    -- a fresh context now and then: its first by-id decision reads scope and record at once
    local fresh = math.random() < 0.3
    local ctx = context(u, w, t, fresh)
    local before = #events
    local ok_d, d = pcall(ctx.resolve, ctx, req)
    local logged = events[#events]
    local ctx2 = fresh and eng:context { user = u, workspace = w, tenant = t } or ctx
    local after_resolve = #events
    local ok_x, x = pcall(ctx2.explain, ctx2, req)
    local why
    if #events ~= after_resolve then why = "explain was logged as a decision" end
    if ok_d ~= ok_x then
      why = ("resolve %s, explain %s"):format(ok_d and "decided" or "raised: " .. tostring(d),
        ok_x and "explained" or "raised: " .. tostring(x))
    elseif ok_d and not d then
      why = nil -- a database failure on both sides (nil, message): nothing to compare
    elseif ok_d then
      reasons[x.reason] = (reasons[x.reason] or 0) + 1
      if x.status ~= d.status or x.reason ~= d.reason then
        why = ("resolve %d %s, explain %d %s"):format(d.status, d.reason, x.status, x.reason)
      elseif #events ~= before + 1 or logged.check ~= x.decided_by then
        why = ("the log's check %s, explain's %s"):format(tostring(logged and logged.check),
          x.decided_by)
      else
        why = structure(x)
        if not why and O.show(x.record) ~= O.show(d.record) then why = "record differs" end
      end
    end
    if why and #problems < 15 then
      problems[#problems + 1] = ("#%d %s: %s"):format(i, why, describe({ user = u,
        workspace = w, tenant = t }, req))
    end
    if ctx2 ~= ctx then ctx2:close() end
  end
  eng:close()
  if #problems > 0 then lu.fail(table.concat(problems, "\n")) end
  local keys = {}
  for k, v in pairs(reasons) do keys[#keys + 1] = k .. "=" .. v end
  table.sort(keys)
  print("\nexplained: " .. table.concat(keys, " "))
  return reasons
end

local function run(rules_dir, n, extra_sql)
  math.randomseed(SEED)
  local path = H.refdb(ROWS)
  harden(path)
  if extra_sql then
    local db = tg.connect(path)
    db:exec(extra_sql)
    db:close()
  end
  return run_on(path, rules_dir, n, GEN, true)
end

TestExplain = {}

function TestExplain:tearDown() H.cleanup() end

function TestExplain:test_explain_agrees_with_every_decision()
  local reasons = run(H.shipped_rules, REQUESTS)
  -- every kind of case was explained at least once
  for _, r in ipairs { "ok", "missing_capability", "not_member", "no_tenant_context",
      "tenant_not_in_workspace", "not_entitled", "not_found", "foreign_tenant",
      "foreign_workspace", "workspace_mismatch", "owner_not_found", "owner_foreign_tenant",
      "wrong_owner", "path_not_declared", "search_disabled" } do
    lu.assertTrue((reasons[r] or 0) > 0, "never explained: " .. r)
  end
end

-- Row filters on a family, tenants and workspaces, roles from a table, and an exception
-- bound to the route tenant.
function TestExplain:test_explain_agrees_under_row_filters_db_roles_and_tenant_exceptions()
  local dir = H.shipped_copy()
  local function edit(file, from, to)
    local text = H.read(dir .. "/" .. file)
    local at = assert(text:find(from, 1, true), from)
    H.write(dir .. "/" .. file, text:sub(1, at - 1) .. to .. text:sub(at + #from))
  end
  edit("app.lua", 'workspaces        = { table = "workspaces" },',
    'workspaces = { table = "workspaces", row_filter = { { column = "id", op = "ne", value = 3 } } },')
  edit("app.lua", 'tenants           = { table = "tenants", workspace = "workspace_id" },',
    'tenants = { table = "tenants", workspace = "workspace_id", '
      .. 'row_filter = { { column = "id", op = "not_in", value = { 2, 7 } } } },')
  edit("app.lua", "  limits ", '  role_grants = { table = "role_capabilities" },\n  limits ')
  edit("families.lua", 'family "Policy" {\n', 'family "Policy" {\n  row_filter = { { column = '
    .. '"policy_type", op = "in", value = { "deviceConfiguration", "settingsCatalog" } } },\n')
  edit("exceptions.lua", '"record_in_workspace", "tenant_entitled",\n                            "capability" },\n  capability = "alert',
    '"record_in_workspace", "tenant_entitled", "record_in_tenant",\n                            "capability" },\n  capability = "alert')
  local reasons = run(dir, REQUESTS // 2, [[
    CREATE TABLE role_capabilities (role TEXT NOT NULL, capability TEXT NOT NULL);
    INSERT INTO role_capabilities VALUES ('auditor', 'policy.view'),
      ('auditor', 'entra_group.view'), ('Operator', '*'), ('readonly', 'finding.manage');
  ]])
  lu.assertTrue((reasons.ok or 0) > 0)
  lu.assertTrue((reasons.not_found or 0) > 0)
end

-- The example applications: text UUID keys, soft deletes, roles from a table (helpdesk);
-- per-table column names, composite and WITHOUT ROWID keys, views (storefront).
function TestExplain:test_explain_agrees_on_the_example_applications()
  package.path = H.source_dir .. "/examples/?.lua;" .. package.path
  local S = require "story"
  for _, name in ipairs { "helpdesk", "storefront" } do
    math.randomseed(SEED)
    local A = S.app(H.source_dir .. "/examples/" .. name)
    local path = S.fresh(A)
    local reasons = run_on(path, A.rules, REQUESTS // 2, {}, false)
    lu.assertTrue((reasons.ok or 0) > 0, name)
    lu.assertTrue((reasons.not_found or 0) > 0, name)
  end
end

-- A crafted foreign row: the explanation says why it is refused and prints nothing of it,
-- not even its tenant or workspace.
function TestExplain:test_foreign_rows_are_described_never_printed()
  local path = H.refdb(20)
  local db = tg.connect(path)
  db:exec([[
    INSERT INTO workspaces (id, name, created_at) VALUES (888888, 'Elsewhere', '2026');
    INSERT INTO tenants (id, workspace_id, name, created_at) VALUES (777777, 888888, 'Far', '2026'),
      (666666, 1, 'Near', '2026');
    INSERT INTO policies (id, tenant_id, display_name, policy_type, platform, created_at)
      VALUES (555555, 777777, 'TopSecretName', 'deviceConfiguration', 'windows10', '2026'),
             (444444, 666666, 'AlsoSecret', 'deviceConfiguration', 'windows10', '2026');
  ]])
  db:close()
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  local function lines(x)
    local t = {}
    for _, c in ipairs(x.checks) do t[#t + 1] = c.read end
    return table.concat(t, "\n")
  end
  for _, case in ipairs {
    { req = { family = "Policy", path = "detail", id = 555555 }, reason = "foreign_workspace",
      says = "no tenant of workspace 1" },
    { req = { family = "Policy", path = "row_action", id = 444444 }, reason = "foreign_tenant",
      says = "another tenant of workspace 1" },
    { req = { family = "Policy", path = "bulk_action", ids = { 444444, 555555 } },
      reason = "foreign_tenant", says = "another tenant" },
    { req = { family = "PolicyVersion", path = "relation_manager", owner = 555555 },
      reason = "owner_foreign_workspace", says = "no tenant of workspace 1" },
  } do
    local x = ctx:explain(case.req)
    lu.assertEquals(x.status, 404)
    lu.assertEquals(x.reason, case.reason)
    local text = lines(x)
    lu.assertStrContains(text, case.says)
    for _, secret in ipairs { "777777", "888888", "666666", "TopSecret", "AlsoSecret",
        "Elsewhere", "Far", "Near" } do
      lu.assertNil(text:find(secret, 1, true), ("%s printed:\n%s"):format(secret, text))
    end
    lu.assertNil(x.record)
    lu.assertNil(x.records)
  end
  -- a canonical viewer without a route tenant, not entitled to the record's tenant: which
  -- tenant it is stays unsaid
  local nt = eng:context { user = 1, workspace = 1 }
  local db2 = tg.connect(path)
  db2:exec([[INSERT INTO entra_groups (id, tenant_id, display_name, mail_nickname, created_at)
    VALUES (333333, 666666, 'HiddenGroup', 'hidden', '2026')]])
  db2:close()
  local x = nt:explain { family = "EntraGroup", path = "canonical_viewer", id = 333333 }
  lu.assertEquals(x.reason, "not_entitled")
  lu.assertEquals(x.decided_by, "entitlement")
  lu.assertNil(lines(x):find("666666", 1, true), lines(x))
  lu.assertNil(lines(x):find("Hidden", 1, true), lines(x))
  eng:close()
end

-- What an operator reads for the common refusals, and the order of the checks.
function TestExplain:test_checks_in_order_with_what_they_read()
  local path = H.refdb(20)
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  local x = ctx:explain { family = "Policy", path = "detail", id = 1 }
  local steps = {}
  for i, c in ipairs(x.checks) do steps[i] = c.step end
  lu.assertEquals(steps[1], "path")
  lu.assertEquals(steps[2], "membership")
  lu.assertEquals(steps[3], "tenant_context")
  lu.assertEquals(steps[4], "tenant_workspace")
  lu.assertEquals(steps[5], "entitlement")
  lu.assertEquals(steps[#steps], "capability")
  lu.assertStrContains(x.checks[2].read, "role 'owner'")
  lu.assertStrContains(x.checks[#steps].read, "'policy.view' granted")
  -- a stranger: not a member decides, and the line says there is no membership row
  local s = eng:context { user = 424242, workspace = 1, tenant = 1 }
  x = s:explain { family = "Policy", path = "index" }
  lu.assertEquals({ x.status, x.reason, x.decided_by }, { 404, "not_member", "membership" })
  lu.assertStrContains(x.checks[2].read, "none")
  lu.assertTrue(x.checks[2].decided)
  -- a missing capability names the roles that grant it and where roles come from
  local db = tg.connect(path)
  db:exec("UPDATE tenant_memberships SET role = 'readonly' WHERE user_id = 1 AND tenant_id = 1")
  db:close()
  local r = eng:context { user = 1, workspace = 1, tenant = 1 }
  x = r:explain { family = "Policy", path = "row_action", id = 1, capability = "policy.edit" }
  if x.reason == "missing_capability" then
    local cap = x.checks[#x.checks]
    lu.assertEquals(x.decided_by, "capability")
    lu.assertStrContains(cap.read, "role 'readonly' (the tenant membership's role)")
    lu.assertStrContains(cap.read, "roles that grant it: ")
    lu.assertStrContains(cap.read, "roles from the rule files")
  end
  -- misuse raises as resolve does
  lu.assertErrorMsgContains("unknown family", ctx.explain, ctx, { family = "Nope", path = "index" })
  lu.assertErrorMsgContains("needs an id", ctx.explain, ctx, { family = "Policy", path = "detail" })
  lu.assertErrorMsgContains("capabilty", ctx.explain, ctx,
    { family = "Policy", path = "index", capabilty = "x" })
  eng:close()
end

-- The decision log records the deciding check only when asked, as a field of every line
-- and of every event, mapped from the reason.
function TestExplain:test_decision_log_records_the_deciding_check()
  local path = H.refdb(20)
  local log = H.tmpdir() .. "/d.jsonl"
  local eng = tg.open { db = path, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  lu.assertTrue(eng:set_decision_log(log))
  ctx:resolve { family = "Policy", path = "detail", id = 999999 }
  lu.assertTrue(eng:set_decision_log(log, { deciding_check = true }))
  ctx:resolve { family = "Policy", path = "detail", id = 999999 }
  ctx:resolve { family = "Policy", path = "index" }
  eng:context({ user = 424242, workspace = 1, tenant = 1 }):resolve { family = "Policy",
    path = "index" }
  ctx:explain { family = "Policy", path = "index" } -- not a decision: not logged
  eng:set_decision_log(nil)
  local lines = {}
  for l in H.read(log):gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(#lines, 4)
  lu.assertNil(lines[1]:find('"check"', 1, true))
  lu.assertStrContains(lines[2], '"reason":"not_found","rule_version":')
  lu.assertStrContains(lines[2], '"check":"record"')
  lu.assertStrContains(lines[3], '"check":"capability"')
  lu.assertStrContains(lines[4], '"reason":"not_member"')
  lu.assertStrContains(lines[4], '"check":"membership"')
  -- a function log gets ev.check with the option, not without it
  local seen = {}
  eng:set_decision_log(function(ev) seen[#seen + 1] = ev end, { deciding_check = true })
  ctx:resolve { family = "Policy", path = "detail", id = 999999 }
  eng:set_decision_log(function(ev) seen[#seen + 1] = ev end)
  ctx:resolve { family = "Policy", path = "detail", id = 999999 }
  lu.assertEquals(seen[1].check, "record")
  lu.assertNil(seen[2].check)
  lu.assertErrorMsgContains("deciding_chek", eng.set_decision_log, eng, log,
    { deciding_chek = true })
  eng:close()
end

-- The command line: one line per check, a marker on the deciding one, --json, exit codes.
function TestExplain:test_command_line()
  local path = H.refdb(20)
  local common = ("--db '%s' --rules '%s' --user 1 --workspace 1 --tenant 1 ")
    :format(path, H.shipped_rules)
  local rc, out = H.run_tool("explain " .. common .. "--family Policy --path detail --id 999999")
  lu.assertEquals(rc, 0, out)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  lu.assertEquals(lines[1], "404 not_found (decided by record)")
  local marked = {}
  for _, l in ipairs(lines) do if l:sub(1, 1) == ">" then marked[#marked + 1] = l end end
  lu.assertEquals(#marked, 1)
  lu.assertStrContains(marked[1], "FAIL")
  lu.assertStrContains(marked[1], "999999")
  lu.assertStrContains(out, "membership")
  rc, out = H.run_tool("explain " .. common .. "--family Policy --path index --limit 1 --json")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, '"decided_by":"capability"')
  lu.assertStrContains(out, '"status":200')
  lu.assertStrContains(out, '"checks":[{')
  lu.assertStrContains(out, '"records":[')
  rc, out = H.run_tool("explain " .. common .. "--family Policy")
  lu.assertEquals(rc, 2, out)
  lu.assertStrContains(out, "--path is required")
  rc, out = H.run_tool("explain --help")
  lu.assertEquals(rc, 0)
  lu.assertStrContains(out, "usage: tenantguard explain")
  rc, out = H.run_tool("--help")
  lu.assertStrContains(out, "explain")
end

os.exit(lu.LuaUnit.run())
