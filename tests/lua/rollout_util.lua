-- Helpers shared by the rollout suites (test_rollout.lua, test_backfill_crash.lua): whole-table
-- snapshots to compare row by row, schema snapshots, validation and background processes.
-- Everything here reads the database through a plain tg.connect handle, independently of the
-- engine under test.
local H = require "helpers"
local refdb = require "refdb"

local U = {}

-- The twelve tenant-owned tables of the reference application.
U.TABLES = {}
for _, t in ipairs(refdb.tables) do U.TABLES[#U.TABLES + 1] = t.name end

local function qi(name) return '"' .. name:gsub('"', '""') .. '"' end
U.qi = qi

function U.open_engine(path)
  return H.tg.open { rules = H.shipped_rules, db = path }
end

-- Every table of the database (not SQLite's own), sorted; engine-owned tables
-- (tenantguard_*) only when `with_engine`.
function U.all_tables(db, with_engine)
  local out = {}
  for _, r in ipairs(db:query([[SELECT name FROM sqlite_schema WHERE type = 'table'
      AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name]])) do
    if with_engine or not r.name:match("^tenantguard_") then out[#out + 1] = r.name end
  end
  return out
end

function U.columns(db, t)
  local out = {}
  for _, r in ipairs(db:query("SELECT name FROM pragma_table_info(?) ORDER BY cid", t)) do
    out[#out + 1] = r.name
  end
  return out
end

function U.has_column(db, t, c)
  return db:value("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", t, c) == 1
end

-- A snapshot of whole tables: { [table] = { rows = { [rowid] = "col=value|..." }, n = count } }.
-- Values are SQL-quoted, so a type change (1 vs '1' vs 1.0) is a difference.
-- opts.tables: the tables (default every app table, with the engine's when opts.with_engine);
-- opts.skip: a set of column names left out (e.g. { workspace_id = true }).
function U.snapshot(db, opts)
  opts = opts or {}
  local tables = opts.tables or U.all_tables(db, opts.with_engine)
  local snap = {}
  for _, t in ipairs(tables) do
    local cols = {}
    for _, c in ipairs(U.columns(db, t)) do
      if not (opts.skip and opts.skip[c]) then cols[#cols + 1] = c end
    end
    table.sort(cols)
    local parts = {}
    for _, c in ipairs(cols) do
      parts[#parts + 1] = ("'%s=' || quote(%s)"):format(c:gsub("'", "''"), qi(c))
    end
    local expr = #parts > 0 and table.concat(parts, " || '|' || ") or "''"
    local rows, n = {}, 0
    -- rows by rowid; a WITHOUT ROWID table's rows by their primary key (as JSON)
    local key = "rowid"
    if db:value("SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", t) == 1 then
      local pk = {}
      for _, r in ipairs(db:query("SELECT name FROM pragma_table_info(?) WHERE pk > 0 "
          .. "ORDER BY pk", t)) do
        pk[#pk + 1] = qi(r.name)
      end
      key = "json_array(" .. table.concat(pk, ", ") .. ")"
    end
    for _, r in ipairs(db:query(("SELECT %s AS k, %s AS s FROM %s"):format(key, expr, qi(t)))) do
      rows[r.k] = r.s
      n = n + 1
    end
    snap[t] = { rows = rows, n = n }
  end
  return snap
end

-- The differences between two snapshots, as messages (at most opts.limit, default 20).
-- opts.allow_new: set of tables that may have gained rows (audit_logs, operation_runs);
-- opts.allow_missing: { [table] = { [rowid] = true } } rows that may be gone;
-- opts.skip_rows: { [table] = { [rowid] = true } } rows not compared (the caller checks them);
-- tables only in `after` are ignored unless opts.strict_tables.
function U.diff(before, after, opts)
  opts = opts or {}
  local limit = opts.limit or 20
  local out, total = {}, 0
  local function add(msg)
    total = total + 1
    if #out < limit then out[#out + 1] = msg end
  end
  local names = {}
  for t in pairs(before) do names[#names + 1] = t end
  table.sort(names)
  for _, t in ipairs(names) do
    local b, a = before[t], after[t]
    if not a then
      add(("table %s is gone"):format(t))
    else
      local missing_ok = opts.allow_missing and opts.allow_missing[t] or {}
      local skip_rows = opts.skip_rows and opts.skip_rows[t] or {}
      local keys = {}
      for k in pairs(b.rows) do keys[#keys + 1] = k end
      table.sort(keys, function(x, y)
        if math.type(x) == math.type(y) or (type(x) == type(y) and type(x) ~= "number") then
          return x < y
        end
        return tostring(x) < tostring(y)
      end)
      for _, k in ipairs(keys) do
        local av = a.rows[k]
        if skip_rows[k] then -- checked by the caller
        elseif av == nil then
          if not missing_ok[k] then add(("%s row %s is missing (was %s)"):format(t, k, b.rows[k])) end
        elseif av ~= b.rows[k] then
          add(("%s row %s changed:\n  before %s\n  after  %s"):format(t, k, b.rows[k], av))
        end
      end
      if not (opts.allow_new and opts.allow_new[t]) then
        local extra = {}
        for k in pairs(a.rows) do
          if b.rows[k] == nil then extra[#extra + 1] = k end
        end
        table.sort(extra, function(x, y) return tostring(x) < tostring(y) end)
        for _, k in ipairs(extra) do add(("%s row %s is new: %s"):format(t, k, a.rows[k])) end
      end
    end
  end
  if opts.strict_tables then
    for t in pairs(after) do
      if not before[t] then add(("table %s is new"):format(t)) end
    end
  end
  if total > #out then out[#out + 1] = ("... %d differences in all"):format(total) end
  return out
end

-- Asserts two snapshots agree (see U.diff for opts).
function U.assert_same(lu, before, after, opts, what)
  local d = U.diff(before, after, opts)
  if #d > 0 then
    lu.fail(("%s: %d difference(s):\n%s"):format(what or "snapshot", #d, table.concat(d, "\n")))
  end
end

-- The schema: { [name] = "type|tbl_name|sql" } for every entry of sqlite_schema.
function U.schema(db, filter)
  local out = {}
  for _, r in ipairs(db:query("SELECT type, name, tbl_name, sql FROM sqlite_schema")) do
    if not filter or filter(r) then
      out[r.name] = ("%s|%s|%s"):format(r.type, r.tbl_name, r.sql or "")
    end
  end
  return out
end

-- The entries of sqlite_schema of one type: { [name] = sql or "" }; with `app_only`, not those
-- on the engine's own tables (tenantguard_*).
function U.objects(db, typ, app_only)
  local out = {}
  for _, r in ipairs(db:query("SELECT name, tbl_name, sql FROM sqlite_schema WHERE type = ?",
      typ)) do
    if not (app_only and r.tbl_name:match("^tenantguard_")) then out[r.name] = r.sql or "" end
  end
  return out
end

-- Column definitions as pragma_table_info reports them, one string per table.
function U.table_info(db, t, skip)
  local parts = {}
  for _, r in ipairs(db:query("SELECT * FROM pragma_table_info(?) ORDER BY cid", t)) do
    if not (skip and skip[r.name]) then
      parts[#parts + 1] = ("%s %s notnull=%s dflt=%s pk=%s"):format(r.name, r.type, r.notnull,
        tostring(r.dflt_value), r.pk)
    end
  end
  return table.concat(parts, "; ")
end

-- { [ "name:table" ] = count } of a validation result.
function U.checks(v)
  local out = {}
  for _, c in ipairs(v.checks) do out[c.name .. ":" .. (c.table or "")] = c.count end
  return out
end

-- Rows of `t` whose tenant no longer exists: sorted list of ids.
function U.orphan_ids(db, t)
  local out = {}
  for _, r in ipairs(db:query(("SELECT id FROM %s WHERE tenant_id IS NULL OR tenant_id NOT IN "
      .. "(SELECT id FROM tenants) ORDER BY id"):format(qi(t)))) do
    out[#out + 1] = r.id
  end
  return out
end

-- The workspace of a tenant in the reference database (workspace w owns 4w-3 .. 4w).
-- After phase 3 a table's workspace column is never NULL, though SQLite cannot say so with a
-- NOT NULL column (it checks one before the trigger that derives the value could run): a raw
-- update clearing it on every row is bound again, row by row, to its tenant's workspace.
-- Asserts that, then that nothing else changed.
function U.assert_workspace_never_null(lu, db, t, W, T, tenants, what)
  local q = function(s) return '"' .. s:gsub('"', '""') .. '"' end
  local before = db:query(("SELECT %s AS t, %s AS w FROM %s ORDER BY 1, 2"):format(q(T), q(W),
    q(t)))
  lu.assertTrue(#before > 0, (what or t) .. ": no rows to try")
  db:exec(("UPDATE %s SET %s = NULL"):format(q(t), q(W)))
  lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE %s IS NULL"):format(q(t), q(W))), 0,
    (what or t) .. ": a NULL workspace stayed")
  lu.assertEquals(db:value(("SELECT count(*) FROM %s AS r WHERE r.%s IS NOT (SELECT workspace_id "
    .. "FROM %s WHERE id = r.%s)"):format(q(t), q(W), q(tenants or "tenants"), q(T))), 0,
    (what or t) .. ": a workspace other than the tenant's")
  lu.assertEquals(db:query(("SELECT %s AS t, %s AS w FROM %s ORDER BY 1, 2"):format(q(T), q(W),
    q(t))), before, (what or t) .. ": the bindings changed")
end

function U.workspace_of(tenant) return (tenant - 1) // 4 + 1 end

function U.sleep(seconds) os.execute(("sleep %.3f"):format(seconds)) end

function U.shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Starts a shell command in the background (its output to `log`, default /dev/null); returns
-- the pid of the command itself (the shell runs it as a simple background command, so its
-- pid is the command's, and the tool's `env lua5.4` execs too) and a handle for U.reap. A
-- shell waits for it, so it is reaped when it ends (whoever is PID 1).
function U.spawn(cmd, log)
  local p = assert(io.popen(("sh -c %s"):format(U.shell_quote(
    ("%s >%s 2>&1 </dev/null & echo $!; wait"):format(cmd, U.shell_quote(log or "/dev/null"))))))
  local line = p:read("l") or ""
  local pid = tonumber(line:match("^%s*(%d+)"))
  if not pid then
    p:close()
    error("no pid from the shell: " .. line)
  end
  return pid, p
end

-- Waits for a command started by U.spawn to end (after it was killed, or by itself).
function U.reap(handle)
  if handle then handle:close() end
end

-- Kills with SIGKILL, then reaps.
function U.kill9(pid, handle)
  os.execute(("kill -9 %d 2>/dev/null"):format(pid))
  U.reap(handle)
end

-- The Lua interpreter running this suite.
function U.lua_exe()
  local i, exe = -1, nil
  while arg and arg[i] do exe = arg[i]; i = i - 1 end
  return exe or "lua5.4"
end

return U
