-- The engine on PostgreSQL, as the application's role (owns nothing, no superuser): what
-- opening reports, lint against the live catalog, a read snapshot that really is one
-- (REPEATABLE READ), a statement that runs past the timeout, a connection the server drops,
-- explain, and what the rollout says. Against the ctest fixture's throwaway cluster;
-- skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local APP, OWNER, ADMIN = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI"),
  os.getenv("TG_PG_ADMIN_URI")
if not APP or not OWNER or not ADMIN then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

local function psql(uri, sql)
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q -A -t "
    .. "-v ON_ERROR_STOP=1 -d " .. sh_quote(uri) .. " -c " .. sh_quote(sql) .. " 2>&1")
  local out = p:read("a")
  assert(p:close(), "psql: " .. out)
  return (out:gsub("\n$", ""))
end

local SCHEMA = "tgp_engine"
local uri

TestPgEngine = {}

function TestPgEngine:setUp()
  if uri then return end
  local path = H.refdb(40)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(SCHEMA, SCHEMA, SCHEMA))
  local p = io.popen(("'%s' pg-load --from %s --to %s --grant-to tg_app 2>&1"):format(H.tool,
    sh_quote(path), sh_quote(in_schema(OWNER, SCHEMA))))
  local out = p:read("a")
  assert(p:close(), out)
  uri = in_schema(APP, SCHEMA)
end

function TestPgEngine:test_open_settings_and_lint()
  local eng = tg.open { db = uri, rules = H.shipped_rules, statement_timeout = 1500 }
  local s = eng:settings()
  lu.assertEquals(s.backend, "postgresql")
  lu.assertEquals(s.statement_timeout, 1500)
  -- the live catalog: clean for the shipped rules ...
  for _, f in ipairs(eng:lint()) do lu.assertNotEquals(f.level, "error", f.message) end
  eng:close()
  -- ... and a missing column is found there
  local rules = H.shipped_copy()
  local file = rules .. "/app.lua"
  local text = H.read(file)
  local edited = text:gsub('user%s*=%s*"user_id"', 'user = "no_such_user_col"', 1)
  lu.assertNotEquals(edited, text)
  do
    H.write(file, edited)
    local ok, err = pcall(tg.open, { db = uri, rules = rules })
    if ok then
      local found = false
      for _, f in ipairs(err:lint()) do found = found or f.code == "missing_column" end
      err:close()
      lu.assertTrue(found)
    else
      lu.assertStrContains(tostring(err), "missing_column")
    end
  end
  -- SQLite's settings say sqlite
  local lite = tg.open { db = H.refdb(5), rules = H.shipped_rules }
  lu.assertEquals(lite:settings().backend, "sqlite")
  lite:close()
end

function TestPgEngine:test_bad_targets_say_why_without_the_password()
  local ok, err = pcall(tg.open, { db = "postgresql://tg_app:s3cret@/nosuchdb?host=/nonexistent",
    rules = H.shipped_rules })
  lu.assertFalse(ok)
  lu.assertNotStrContains(tostring(err), "s3cret")
  lu.assertStrContains(tostring(err), "nosuchdb")
  lu.assertError(tg.open, { db = uri, rules = H.shipped_rules, statement_timeout = -2 })
end

-- A snapshot on PostgreSQL is REPEATABLE READ: a row deleted by another connection meanwhile
-- is still there for every decision inside it, and gone after.
function TestPgEngine:test_read_snapshot_is_repeatable()
  local eng = tg.open { db = uri, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  local id = ctx:resolve { family = "Policy", path = "index", limit = 1 }.records[1].id
  psql(OWNER, ("CREATE TABLE %s.keep AS SELECT * FROM %s.policies WHERE id = %d"):format(SCHEMA,
    SCHEMA, id))
  local inside = {}
  eng:read(function()
    inside[1] = ctx:resolve { family = "Policy", path = "detail", id = id }.status
    psql(OWNER, ("DELETE FROM %s.policy_versions WHERE policy_id = %d; DELETE FROM %s.policies "
      .. "WHERE id = %d"):format(SCHEMA, id, SCHEMA, id))
    inside[2] = ctx:resolve { family = "Policy", path = "detail", id = id }.status
  end)
  lu.assertEquals(inside, { 200, 200 })
  lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = id }.status, 404)
  -- a write inside a snapshot is refused, as on SQLite
  eng:read(function()
    local ok, err = pcall(ctx.insert, ctx, "Policy", { display_name = "x", policy_type = "y",
      created_at = "2026-01-01" })
    lu.assertFalse(ok)
    lu.assertStrContains(tostring(err), "snapshot")
  end)
  psql(OWNER, ("INSERT INTO %s.policies SELECT * FROM %s.keep; DROP TABLE %s.keep"):format(
    SCHEMA, SCHEMA, SCHEMA))
  eng:close()
end

-- The server drops the connection: the decision in flight fails with a clear error, the next
-- one reconnects and decides as before.
function TestPgEngine:test_connection_loss_then_reconnect()
  -- a name of its own, so only this engine's connection is dropped (other suites run
  -- against the same cluster at the same time)
  local name = ("tg_loss_%d"):format(math.random(1, 1e9))
  local eng = tg.open { db = uri .. "&application_name=" .. name, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  local req = { family = "Policy", path = "index", limit = 3 }
  lu.assertEquals(ctx:resolve(req).status, 200)
  psql(ADMIN, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'tg_app' "
    .. "AND application_name = '" .. name .. "' AND pid <> pg_backend_pid()")
  local ok, d, err = pcall(function() return ctx:resolve(req) end)
  local failed = not ok or d == nil
  if failed then
    lu.assertStrContains(tostring(ok and err or d), "connection to PostgreSQL lost")
  end
  -- the next decision (a new context too) works on a new connection
  local again = eng:context { user = 1, workspace = 1, tenant = 1 }:resolve(req)
  lu.assertEquals(again.status, 200)
  lu.assertEquals(#again.records, 3)
  eng:close()
end

-- A statement past the timeout is cancelled by the server and reported; the engine goes on.
function TestPgEngine:test_statement_timeout()
  -- another session holds an ACCESS EXCLUSIVE lock on policies for 3 s: a read of it waits
  local p = io.popen("env -u LD_PRELOAD psql -X -q -d " .. sh_quote(in_schema(OWNER, SCHEMA))
    .. " -c " .. sh_quote("BEGIN; LOCK TABLE policies IN ACCESS EXCLUSIVE MODE; "
    .. "SELECT pg_sleep(3); COMMIT") .. " >/dev/null 2>&1 & echo started")
  p:read("a")
  p:close()
  local held = false
  for _ = 1, 100 do
    held = psql(ADMIN, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
      .. "WHERE c.relname = 'policies' AND l.mode = 'AccessExclusiveLock' AND l.granted") ~= "0"
    if held then break end
    os.execute("sleep 0.05")
  end
  lu.assertTrue(held, "the lock was never taken")
  local eng = tg.open { db = uri, rules = H.shipped_rules, statement_timeout = 200 }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  local ok, d, err = pcall(function()
    return ctx:resolve { family = "Policy", path = "index", limit = 5 }
  end)
  lu.assertTrue(not ok or d == nil)
  lu.assertStrContains(tostring(ok and err or d), "statement timeout")
  -- the connection is still usable for what is not locked
  lu.assertEquals(eng:context { user = 1, workspace = 1, tenant = 1 }
    :resolve { family = "BackupSet", path = "index", limit = 1 }.status, 200)
  eng:close()
  os.execute("sleep 3")
end

function TestPgEngine:test_explain_agrees()
  local eng = tg.open { db = uri, rules = H.shipped_rules }
  local ctx = eng:context { user = 1, workspace = 1, tenant = 1 }
  for _, req in ipairs {
    { family = "Policy", path = "index", limit = 2 },
    { family = "Policy", path = "detail", id = 999999 },
    { family = "EntraGroup", path = "global_search", query = "a" },
  } do
    local d = ctx:resolve(req)
    local x = ctx:explain(req)
    lu.assertEquals(x.status, d.status)
    lu.assertEquals(x.reason, d.reason)
  end
  eng:close()
end

-- The rollout runs DDL: the application's role, which owns no table, is told so, and
-- nothing changes (test_pg_rollout.lua runs it as the owner).
function TestPgEngine:test_rollout_as_the_app_role_says_who_must_run_it()
  local eng = tg.open { db = uri, rules = H.shipped_rules }
  local ok, msg = eng:rollout("add_columns")
  lu.assertNil(ok)
  lu.assertStrContains(tostring(msg), "must be owner of table policies")
  lu.assertEquals(psql(OWNER, ("SELECT count(*) FROM information_schema.columns WHERE "
    .. "table_schema = '%s' AND column_name = 'workspace_id' AND table_name = 'policies'")
    :format(SCHEMA)), "0")
  eng:close()
end

os.exit(lu.LuaUnit.run())
