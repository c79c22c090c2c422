-- The reference database: the application of DOMAIN.md as it is *before* the workspace_id
-- rollout (twelve tenant-owned tables without workspace_id), seeded deterministically.
--
-- Layout of the seed (the same for every size):
--   workspaces 1..3, each with 4 tenants: workspace w owns tenants 4w-3 .. 4w
--   users 1..10 with these memberships (role in brackets; tenant role NULL = workspace role)
--     1  owner of workspace 1, entitled to tenants 1-4
--     2  operator of workspace 1, entitled to tenants 1-2
--     3  readonly of workspace 1, entitled to tenant 1
--     4  operator of workspace 1, entitled to no tenant
--     5  owner of workspace 2, entitled to tenants 5-8
--     6  member of nothing
--     7  owner of workspace 1, entitled to tenant 3 with the narrower tenant role readonly
--     8  owner of workspace 3, entitled to tenants 9-12
--     9  readonly of workspace 2, entitled to tenants 5-6
--     10 operator of workspace 1 and of workspace 2, entitled to tenants 1 and 5
--   tenant-owned row n of every table belongs to tenant ((n * 7) % 12) + 1, except the
--   orphans (n % 1000 == 500, and the last row) whose tenant 90000+ no longer exists.
--   Child row n refers to parent row n, so every relation stays inside one tenant.
--
-- Keys: integers by default (row n has id n). With keys = "text" the same application is
-- keyed by UUID-like text everywhere: every id (workspaces, tenants, users, memberships, the
-- app tables, every tenant-owned table) is a TEXT PRIMARY KEY and every column that refers
-- to one (tenant_id, workspace_id, user_id, actor_id, policy_id, ...) is TEXT holding the
-- referenced UUID. Row n of table t has id M.key(t, n), e.g. tenant 1 is M.key("tenants", 1);
-- every other value (names, tenants of rows, orphans, memberships) is as with integer keys.
-- The tenant index of a tenant-owned table is (tenant_id, id), what (tenant_id) is with an
-- integer key (the rowid is in every index): keyset pages of a tenant need it.
local tg = require "tenantguard"

local M = {}

M.TENANTS = 12
M.WORKSPACES = 3

local TENANT_EXPR = "CASE WHEN n % 1000 = 500 OR n = :rows THEN 90000 + n % 3 "
  .. "ELSE (n * 7) % 12 + 1 END"

-- The twelve tenant-owned tables: extra columns, and how a row n fills them.
M.tables = {
  { name = "policies",
    columns = "display_name TEXT NOT NULL, policy_type TEXT NOT NULL, platform TEXT, "
      .. "inventory_item_id {KEY}, updated_at TEXT",
    values = "'Policy ' || n, CASE n % 3 WHEN 0 THEN 'deviceConfiguration' WHEN 1 THEN "
      .. "'compliancePolicy' ELSE 'settingsCatalog' END, 'windows10', "
      .. "CASE WHEN n % 3 = 0 THEN {inventory_items:n} END, NULL",
    names = "display_name, policy_type, platform, inventory_item_id, updated_at" },
  { name = "policy_versions",
    columns = "policy_id {KEY} REFERENCES policies(id) ON DELETE CASCADE, "
      .. "version_number INTEGER NOT NULL, snapshot TEXT NOT NULL",
    values = "{policies:n}, 1 + n % 5, '{\"v\":' || n || '}'",
    names = "policy_id, version_number, snapshot" },
  { name = "backup_schedules",
    columns = "name TEXT NOT NULL, cron TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1",
    values = "'Nightly ' || n, '0 ' || (n % 24) || ' * * *', n % 2",
    names = "name, cron, enabled" },
  { name = "backup_sets",
    columns = "backup_schedule_id {KEY}, name TEXT NOT NULL, status TEXT NOT NULL, "
      .. "item_count INTEGER NOT NULL DEFAULT 0",
    values = "CASE WHEN n % 2 = 0 THEN {backup_schedules:n} END, 'Backup ' || n, "
      .. "CASE WHEN n % 10 = 0 THEN 'failed' ELSE 'completed' END, n % 40",
    names = "backup_schedule_id, name, status, item_count" },
  { name = "backup_items",
    columns = "backup_set_id {KEY} REFERENCES backup_sets(id), policy_id {KEY}, "
      .. "payload TEXT",
    values = "{backup_sets:n}, {policies:n}, '{}'",
    names = "backup_set_id, policy_id, payload" },
  { name = "restore_runs",
    columns = "backup_set_id {KEY}, status TEXT NOT NULL",
    values = "{backup_sets:n}, CASE n % 4 WHEN 0 THEN 'failed' ELSE 'completed' END",
    names = "backup_set_id, status" },
  { name = "inventory_items",
    columns = "display_name TEXT NOT NULL, item_type TEXT NOT NULL, external_id TEXT",
    values = "'Item ' || n, CASE n % 2 WHEN 0 THEN 'device' ELSE 'app' END, 'ext-' || n",
    names = "display_name, item_type, external_id" },
  { name = "inventory_links",
    columns = "source_item_id {KEY}, target_item_id {KEY}, link_type TEXT",
    values = "{inventory_items:n}, {inventory_items:n}, 'assigned'",
    names = "source_item_id, target_item_id, link_type" },
  { name = "entra_groups",
    columns = "display_name TEXT NOT NULL, mail_nickname TEXT, external_id TEXT",
    values = "CASE n % 4 WHEN 0 THEN 'Admins ' WHEN 1 THEN 'Sales ' WHEN 2 THEN "
      .. "'Helpdesk_' ELSE '100% Remote ' END || n, 'group-' || n, 'grp-' || n",
    names = "display_name, mail_nickname, external_id" },
  { name = "findings",
    columns = "title TEXT NOT NULL, severity TEXT NOT NULL, status TEXT NOT NULL",
    values = "'Finding ' || n, CASE n % 3 WHEN 0 THEN 'high' WHEN 1 THEN 'medium' "
      .. "ELSE 'low' END, CASE WHEN n % 5 = 0 THEN 'resolved' ELSE 'open' END",
    names = "title, severity, status" },
  { name = "entra_role_definitions",
    columns = "display_name TEXT NOT NULL, is_builtin INTEGER NOT NULL DEFAULT 0",
    values = "'Role ' || n, n % 2",
    names = "display_name, is_builtin" },
  { name = "tenant_permissions",
    columns = "permission TEXT NOT NULL, granted INTEGER NOT NULL DEFAULT 0",
    values = "'Permission.' || n, n % 2",
    names = "permission, granted" },
}

-- {PK}: a table's key; {KEY}: a column that refers to one.
local SCHEMA = [[
CREATE TABLE workspaces (
  id {PK}, name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE tenants (
  id {PK},
  workspace_id {KEY} NOT NULL REFERENCES workspaces(id),
  name TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX tenants_workspace ON tenants(workspace_id);
CREATE TABLE users (id {PK}, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL);
CREATE TABLE workspace_memberships (
  id {PK},
  workspace_id {KEY} NOT NULL REFERENCES workspaces(id),
  user_id {KEY} NOT NULL REFERENCES users(id),
  role TEXT NOT NULL,
  UNIQUE (user_id, workspace_id));
CREATE TABLE tenant_memberships (
  id {PK},
  tenant_id {KEY} NOT NULL REFERENCES tenants(id),
  user_id {KEY} NOT NULL REFERENCES users(id),
  role TEXT,
  UNIQUE (user_id, tenant_id));
CREATE TABLE audit_logs (
  id {PK},
  workspace_id {KEY} REFERENCES workspaces(id),
  tenant_id {KEY},
  actor_id {KEY},
  action TEXT NOT NULL,
  subject TEXT,
  metadata TEXT,
  created_at TEXT NOT NULL);
CREATE TABLE operation_runs (
  id {PK},
  workspace_id {KEY} REFERENCES workspaces(id),
  tenant_id {KEY},
  type TEXT NOT NULL,
  status TEXT NOT NULL,
  summary TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT);
CREATE TABLE provider_connections (
  id {PK},
  tenant_id {KEY} NOT NULL,
  workspace_id {KEY} NOT NULL,
  provider TEXT NOT NULL,
  status TEXT NOT NULL);
CREATE TABLE alert_deliveries (
  id {PK},
  workspace_id {KEY} NOT NULL,
  tenant_id {KEY},
  channel TEXT NOT NULL,
  status TEXT NOT NULL);
]]

local MEMBERS = {
  -- user, workspace, role, { tenant = tenant role or false }
  { 1, 1, "owner", { [1] = false, [2] = false, [3] = false, [4] = false } },
  { 2, 1, "operator", { [1] = false, [2] = false } },
  { 3, 1, "readonly", { [1] = false } },
  { 4, 1, "operator", {} },
  { 5, 2, "owner", { [5] = false, [6] = false, [7] = false, [8] = false } },
  { 7, 1, "owner", { [3] = "readonly" } },
  { 8, 3, "owner", { [9] = false, [10] = false, [11] = false, [12] = false } },
  { 9, 2, "readonly", { [5] = false, [6] = false } },
  { 10, 1, "operator", { [1] = false } },
  { 10, 2, "operator", { [5] = false } },
}

-- Every table that has a key, numbered: the number is part of its text keys, so no two
-- tables share one.
local TABLE_NO = { workspaces = 1, tenants = 2, users = 3, workspace_memberships = 4,
  tenant_memberships = 5, audit_logs = 6, operation_runs = 7, provider_connections = 8,
  alert_deliveries = 9 }
for i, t in ipairs(M.tables) do TABLE_NO[t.name] = 16 + i end

-- The text key of row n of a table: UUID-shaped (8-4-4-4-12 hex digits, version 4), unique
-- (n and the table's number are in it), in an order unrelated to n, as random UUIDs are.
local UUID = "%08x-%04x-4%03x-%04x-%012x"
local function uuid_parts(no, n) -- the hashes as SQL computes them from n
  return ("((%s) + %d) * 2654435761 %% 4294967296"):format(n, no * 1000003),
    "(" .. n .. ") % 4096", "32768 + (" .. n .. ") * 40503 % 16384"
end

function M.key(tbl, n)
  local no = TABLE_NO[tbl]
  if not no then error(("no table '%s' has a key"):format(tostring(tbl)), 2) end
  n = math.tointeger(n)
  if not n or n < 0 then error("n must be a non-negative integer", 2) end
  return UUID:format((n + no * 1000003) * 2654435761 % 4294967296, no, n % 4096,
    32768 + n * 40503 % 16384, n)
end

-- SQL for the key of row `n_sql` (an SQL expression, may be NULL) of table `tbl`.
local function key_sql(keys, tbl, n_sql)
  if keys == "integer" then return "(" .. n_sql .. ")" end
  local h, lo, var = uuid_parts(TABLE_NO[tbl], n_sql)
  return ("CASE WHEN (%s) IS NULL THEN NULL ELSE printf('%s', %s, %d, %s, %s, (%s)) END")
    :format(n_sql, UUID, h, TABLE_NO[tbl], lo, var, n_sql)
end

-- A text key the database makes up when a row comes without one (a random UUID v4), as an
-- app keyed by UUIDs does: tenantguard's audit entries and operation runs are written into the
-- application's own tables without a key. Every row this script writes names its key.
local UUID_DEFAULT = "DEFAULT (lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) "
  .. "|| '-4' || substr(lower(hex(randomblob(2))), 2) || '-' || substr('89ab', 1 + abs(random()) "
  .. "% 4, 1) || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))))"

-- Fills the templates: {PK} and {KEY} in column lists, {table:expr} in value lists.
local function fill(keys, text)
  local pk = keys == "integer" and "INTEGER PRIMARY KEY"
    or ("TEXT PRIMARY KEY NOT NULL " .. UUID_DEFAULT)
  local kt = keys == "integer" and "INTEGER" or "TEXT"
  text = text:gsub("{PK}", function() return pk end):gsub("{KEY}", kt)
  return (text:gsub("{([%a_]+):([^}]+)}", function(tbl, e) return key_sql(keys, tbl, e) end))
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Creates the database at path. opts.rows: rows per tenant-owned table (default 1000);
-- opts.keys: "integer" (default) or "text" (UUID-like text keys everywhere, see above);
-- opts.force: replace an existing file (otherwise an existing file is an error, so nothing
-- is ever overwritten by accident); opts.interrupted: a function polled between tables, true
-- stops and leaves no file behind. Returns a summary { rows =, tables =, orphans =, keys = }.
function M.create(path, opts)
  opts = opts or {}
  local rows = math.tointeger(opts.rows or 1000)
  if not rows or rows < 1 then error("rows must be a positive integer", 2) end
  local keys = opts.keys or "integer"
  if keys ~= "integer" and keys ~= "text" then
    error(("keys must be 'integer' or 'text', got '%s'"):format(tostring(keys)), 2)
  end
  if exists(path) then
    if not opts.force then
      error(("'%s' already exists; pass force to replace it"):format(path), 2)
    end
    for _, suffix in ipairs { "", "-wal", "-shm", "-journal" } do os.remove(path .. suffix) end
  end
  local function K(tbl, n_sql) return key_sql(keys, tbl, n_sql) end
  local db = tg.connect(path)
  db:exec("PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; BEGIN;")
  local function poll()
    if opts.interrupted and opts.interrupted() then error("interrupted", 0) end
  end
  local ok, err = pcall(function()
    db:exec(fill(keys, SCHEMA))
    for _, t in ipairs(M.tables) do
      db:exec(fill(keys, ("CREATE TABLE %s (id {PK}, tenant_id {KEY} NOT NULL, %s, "
        .. "created_at TEXT NOT NULL)"):format(t.name, t.columns)))
      -- the tenant's rows in key order, for keyset pages: an integer key is the rowid, in
      -- every index already; a text key has to be named
      db:exec(("CREATE INDEX %s_tenant ON %s(tenant_id%s)"):format(t.name, t.name,
        keys == "integer" and "" or ", id"))
    end
    db:exec("CREATE INDEX policy_versions_policy ON policy_versions(policy_id)")
    db:exec("CREATE INDEX backup_items_set ON backup_items(backup_set_id)")
    db:exec([[CREATE TRIGGER policies_touch AFTER UPDATE OF display_name ON policies
      BEGIN UPDATE policies SET updated_at = '2026-06-01 00:00:00' WHERE id = NEW.id; END]])
    db:exec([[CREATE VIEW open_findings AS
      SELECT id, tenant_id, title, severity FROM findings WHERE status = 'open']])

    for w = 1, M.WORKSPACES do
      db:query(("INSERT INTO workspaces (id, name, created_at) VALUES (%s, ?2, ?3)")
        :format(K("workspaces", "?1")), w, "Workspace " .. w, "2025-01-01 00:00:00")
      for k = 1, M.TENANTS // M.WORKSPACES do
        local t = (w - 1) * (M.TENANTS // M.WORKSPACES) + k
        db:query(("INSERT INTO tenants (id, workspace_id, name, created_at) "
          .. "VALUES (%s, %s, ?3, ?4)"):format(K("tenants", "?1"), K("workspaces", "?2")),
          t, w, ("Tenant %d (workspace %d)"):format(t, w), "2025-01-02 00:00:00")
      end
    end
    for u = 1, 10 do
      db:query(("INSERT INTO users (id, email, name) VALUES (%s, ?2, ?3)")
        :format(K("users", "?1")), u, ("user%d@example.test"):format(u), "User " .. u)
    end
    local wm, tm = 0, 0
    for _, m in ipairs(MEMBERS) do
      wm = wm + 1
      db:query(("INSERT INTO workspace_memberships (id, workspace_id, user_id, role) "
        .. "VALUES (%s, %s, %s, ?4)"):format(K("workspace_memberships", "?1"),
        K("workspaces", "?2"), K("users", "?3")), wm, m[2], m[1], m[3])
      local tenants = {}
      for t in pairs(m[4]) do tenants[#tenants + 1] = t end
      table.sort(tenants)
      for _, t in ipairs(tenants) do
        tm = tm + 1
        db:query(("INSERT INTO tenant_memberships (id, tenant_id, user_id, role) "
          .. "VALUES (%s, %s, %s, ?4)"):format(K("tenant_memberships", "?1"),
          K("tenants", "?2"), K("users", "?3")), tm, t, m[1], m[4][t] or nil)
      end
    end

    -- parents before children, so every reference resolves
    local order = { "inventory_items", "policies", "policy_versions", "backup_schedules",
      "backup_sets", "backup_items", "restore_runs", "inventory_links", "entra_groups",
      "findings", "entra_role_definitions", "tenant_permissions" }
    local by_name = {}
    for _, t in ipairs(M.tables) do by_name[t.name] = t end
    for _, name in ipairs(order) do
      local t = by_name[name]
      local sql = ("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq "
        .. "WHERE n < %d) INSERT INTO %s (id, tenant_id, %s, created_at) "
        .. "SELECT %s, %s, %s, datetime('2026-01-01', '+' || n || ' minutes') FROM seq")
        :format(rows, t.name, t.names, K(t.name, "n"),
          K("tenants", (TENANT_EXPR:gsub(":rows", tostring(rows)))), fill(keys, t.values))
      db:exec(sql)
      poll()
    end

    -- legacy audit entries: some predate the workspace column and carry only a tenant
    local audits = math.max(12, rows // 10)
    db:exec(("WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < %d) "
      .. "INSERT INTO audit_logs (id, workspace_id, tenant_id, actor_id, action, subject, "
      .. "metadata, created_at) SELECT %s, %s, %s, %s, 'policy.updated', 'policies:' || %s, "
      .. "'{}', datetime('2026-01-01', '+' || n || ' minutes') FROM seq"):format(audits,
      K("audit_logs", "n"),
      K("workspaces", "CASE WHEN n % 3 = 0 THEN NULL ELSE ((n * 7) % 12) / 4 + 1 END"),
      K("tenants", "CASE WHEN n % 4 = 0 THEN NULL ELSE (n * 7) % 12 + 1 END"),
      K("users", "1 + n % 10"), K("policies", "n")))
    db:exec(([[INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, summary,
      created_at, started_at, finished_at) VALUES
      (%s, %s, %s, 'inventory.sync', 'completed', '{}', '2026-01-01 00:00:00',
       '2026-01-01 00:00:00', '2026-01-01 00:01:00'),
      (%s, %s, NULL, 'backup.run', 'completed', '{}', '2026-01-01 00:00:00',
       '2026-01-01 00:00:00', '2026-01-01 00:02:00')]]):format(K("operation_runs", "1"),
      K("workspaces", "1"), K("tenants", "1"), K("operation_runs", "2"), K("workspaces", "2")))
    for t = 1, M.TENANTS do
      local w = (t - 1) // (M.TENANTS // M.WORKSPACES) + 1
      db:query(("INSERT INTO provider_connections (id, tenant_id, workspace_id, provider, "
        .. "status) VALUES (%s, %s, %s, 'microsoft', 'connected')"):format(
        K("provider_connections", "?1"), K("tenants", "?1"), K("workspaces", "?2")), t, w)
      db:query(("INSERT INTO alert_deliveries (id, workspace_id, tenant_id, channel, status) "
        .. "VALUES (%s, %s, %s, 'email', 'sent')"):format(K("alert_deliveries", "?1"),
        K("workspaces", "?2"), K("tenants", "?1")), t, w)
    end
  end)
  if not ok then
    pcall(db.exec, db, "ROLLBACK")
    db:close()
    for _, suffix in ipairs { "", "-wal", "-shm", "-journal" } do os.remove(path .. suffix) end
    error(err, 0)
  end
  db:exec("COMMIT")
  local orphans = 0
  for _, t in ipairs(M.tables) do
    orphans = orphans + db:value(("SELECT count(*) FROM %s WHERE tenant_id NOT IN "
      .. "(SELECT id FROM tenants)"):format(t.name))
  end
  db:exec("PRAGMA wal_checkpoint(TRUNCATE)")
  db:close()
  return { rows = rows, tables = #M.tables, orphans = orphans, path = path, keys = keys }
end

return M
