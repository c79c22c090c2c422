-- tenantguard pg-load against a real server (the ctest fixture's throwaway cluster): the
-- reference database (integer and text keys) and both examples' databases go into
-- PostgreSQL, each into a schema of its own, and every table comes back with the same rows
-- (compared row by row, as text, both sides rendered alike). The application's role can
-- read and write them, owns nothing and cannot change them. Skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local APP, OWNER = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI")
if not APP or not OWNER then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- The URI with search_path set to schema: the loader creates its tables there.
local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

-- Runs sql through psql; returns the output records (NUL-separated), or raises.
local function psql(uri, sql)
  local f = os.tmpname()
  H.write(f, sql)
  -- psql without the sanitizer runtime the asan build preloads: its leaks are not ours
  local p = io.popen("env -u LD_PRELOAD PGOPTIONS=-cclient_min_messages=warning psql -X -q " ..
    "-A -t -0 -v ON_ERROR_STOP=1 -d " .. sh_quote(uri) .. " -f " ..
    sh_quote(f) .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  os.remove(f)
  if not ok then error("psql failed: " .. out, 2) end
  local recs = {}
  for r in out:gmatch("([^%z]*)%z") do recs[#recs + 1] = r end
  if #recs == 0 and out:match("%S") then recs[1] = out:gsub("\n$", "") end
  return recs
end

local function try_psql(uri, sql)
  local ok, err = pcall(psql, uri, sql)
  return ok, not ok and tostring(err) or nil
end

local function tool(args)
  local p = io.popen(H.tool .. " " .. args .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

-- Floats rendered alike on both sides (SQLite's and PostgreSQL's shortest forms differ).
local function normalise(field)
  if field:find("[%.eE]") and field:match("^[-+%d%.eE]+$") and tonumber(field) then
    return ("%.17g"):format(tonumber(field))
  end
  return field
end

local function sorted_rows(list)
  local out = {}
  for i, r in ipairs(list) do
    local f = {}
    for field in (r .. "\31"):gmatch("(.-)\31") do f[#f + 1] = normalise(field) end
    out[i] = table.concat(f, "|")
  end
  table.sort(out)
  return out
end

-- Every table of the SQLite file: name -> { columns in order }.
local function sqlite_tables(db)
  local t = {}
  for _, r in ipairs(db:query("SELECT name FROM sqlite_schema WHERE type = 'table' AND name " ..
    "NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%'")) do
    local cols = {}
    for _, c in ipairs(db:query("SELECT name FROM pragma_table_info(?) ORDER BY cid", r.name)) do
      cols[#cols + 1] = c.name
    end
    t[r.name] = cols
  end
  return t
end

local function qi(name) return '"' .. name:gsub('"', '""') .. '"' end

-- Loads path into schema and compares every table; returns the table count.
local function load_and_compare(path, schema, extra)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s " ..
    "TO tg_app;"):format(schema, schema, schema))
  local code, out = tool(("pg-load --from %s --to %s --grant-to tg_app %s"):format(
    sh_quote(path), sh_quote(in_schema(OWNER, schema)), extra or ""))
  lu.assertEquals(code, 0, out)
  lu.assertStrContains(out, "loaded ")

  local db = tg.connect(path, { readonly = true })
  local tables, n = sqlite_tables(db), 0
  local app = in_schema(APP, schema)
  for name, cols in pairs(tables) do
    n = n + 1
    local lite, pg = {}, {}
    for _, c in ipairs(cols) do
      lite[#lite + 1] = ("CASE typeof(%s) WHEN 'null' THEN '<NULL>' WHEN 'blob' THEN " ..
        "'\\x' || lower(hex(%s)) WHEN 'real' THEN printf('%%.17g', %s) ELSE CAST(%s AS TEXT) END")
        :format(qi(c), qi(c), qi(c), qi(c))
      pg[#pg + 1] = ("coalesce(%s::text, '<NULL>')"):format(qi(c))
    end
    local want = {}
    for i, r in ipairs(db:query(("SELECT %s AS r FROM %s"):format(
      table.concat(lite, " || char(31) || "), qi(name)))) do
      want[i] = r.r
    end
    -- read back as the application's role: it can SELECT what it does not own
    local got = psql(app, ("SELECT concat_ws(chr(31), %s) FROM %s"):format(
      table.concat(pg, ", "), qi(name)))
    lu.assertEquals(#got, #want, name .. ": row count")
    lu.assertEquals(sorted_rows(got), sorted_rows(want), name .. ": rows")
  end
  db:close()

  -- tg_app owns nothing, is no superuser, and cannot change the tables
  lu.assertEquals(psql(app, "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = " ..
    "c.relowner WHERE r.rolname = current_user")[1], "0")
  lu.assertEquals(psql(app, "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = " ..
    "current_user")[1], "f")
  local some = next(tables)
  local ok, err = try_psql(app, "DROP TABLE " .. qi(some))
  lu.assertFalse(ok)
  lu.assertStrContains(err, "must be owner")
  -- every table is owned by tg_owner
  lu.assertEquals(psql(OWNER, ("SELECT count(*) FROM pg_tables WHERE schemaname = '%s' AND " ..
    "tableowner <> 'tg_owner'"):format(schema))[1], "0")
  lu.assertEquals(tonumber(psql(OWNER, ("SELECT count(*) FROM pg_tables WHERE schemaname = " ..
    "'%s'"):format(schema))[1]), n)
  -- planner statistics are there from the start: every table analyzed by the load
  lu.assertEquals(psql(OWNER, ("SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = " ..
    "'%s' AND last_analyze IS NULL AND last_autoanalyze IS NULL"):format(schema))[1], "0")
  return n
end

TestPgLoad = {}

function TestPgLoad:tearDown() H.cleanup() end

function TestPgLoad:test_refdb_integer_keys()
  local path = H.tmpdir() .. "/ref.db"
  local code, out = tool("refdb " .. sh_quote(path) .. " --rows 120")
  lu.assertEquals(code, 0, out)
  lu.assertTrue(load_and_compare(path, "tgl_ref_int") > 10)
  -- integer keys became bigint identities that continue after the largest id
  lu.assertEquals(psql(OWNER, "SELECT data_type || ' ' || is_identity FROM " ..
    "information_schema.columns WHERE table_schema = 'tgl_ref_int' AND table_name = " ..
    "'policies' AND column_name = 'id'")[1], "bigint YES")
  local app = in_schema(APP, "tgl_ref_int")
  local max = tonumber(psql(app, "SELECT max(id) FROM workspaces")[1])
  local id = tonumber(psql(app, "INSERT INTO workspaces (name, created_at) VALUES ('new', 'now') RETURNING id")[1])
  lu.assertEquals(id, max + 1)
end

function TestPgLoad:test_refdb_text_keys()
  local path = H.tmpdir() .. "/ref-text.db"
  local code, out = tool("refdb " .. sh_quote(path) .. " --rows 60 --keys text")
  lu.assertEquals(code, 0, out)
  load_and_compare(path, "tgl_ref_text")
  lu.assertEquals(psql(OWNER, "SELECT data_type FROM information_schema.columns WHERE " ..
    "table_schema = 'tgl_ref_text' AND table_name = 'policies' AND column_name = 'id'")[1],
    "uuid")
  -- --uuid-columns none keeps them text
  load_and_compare(path, "tgl_ref_text_none", "--uuid-columns none --int-type integer")
  lu.assertEquals(psql(OWNER, "SELECT data_type FROM information_schema.columns WHERE " ..
    "table_schema = 'tgl_ref_text_none' AND table_name = 'policies' AND column_name = " ..
    "'id'")[1], "text")
end

function TestPgLoad:test_examples()
  for _, app in ipairs { "helpdesk", "storefront", "ledger" } do
    local path = H.tmpdir() .. "/" .. app .. ".db"
    dofile(H.source_dir .. "/examples/" .. app .. "/data.lua").create(path)
    lu.assertTrue(load_and_compare(path, "tgl_" .. app) > 3, app)
  end
end

function TestPgLoad:test_errors()
  local path = H.tmpdir() .. "/ref.db"
  lu.assertEquals((tool("refdb " .. sh_quote(path) .. " --rows 20")), 0)
  psql(OWNER, "DROP SCHEMA IF EXISTS tgl_twice CASCADE; CREATE SCHEMA tgl_twice;")
  local to = sh_quote(in_schema(OWNER, "tgl_twice"))
  lu.assertEquals((tool(("pg-load --from %s --to %s"):format(sh_quote(path), to))), 0)
  -- a table that exists already: an error, and nothing changed
  local code, out = tool(("pg-load --from %s --to %s"):format(sh_quote(path), to))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "exists already in the target (--replace drops it first)")
  lu.assertEquals((tool(("pg-load --from %s --to %s --replace"):format(sh_quote(path), to))), 0)
  -- the application's role cannot create tables: the load fails whole
  psql(OWNER, "DROP SCHEMA IF EXISTS tgl_denied CASCADE; CREATE SCHEMA tgl_denied; " ..
    "GRANT USAGE ON SCHEMA tgl_denied TO tg_app;")
  code, out = tool(("pg-load --from %s --to %s"):format(sh_quote(path),
    sh_quote(in_schema(APP, "tgl_denied"))))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "permission denied")
  lu.assertEquals(psql(OWNER, "SELECT count(*) FROM pg_tables WHERE schemaname = " ..
    "'tgl_denied'")[1], "0")
  -- a password never shows
  code, out = tool(("pg-load --from %s --to %s"):format(sh_quote(path),
    sh_quote("postgresql://tg_app:hunter2@/tg_test?host=/nonexistent")))
  lu.assertEquals(code, 1)
  lu.assertStrContains(out, "cannot connect to PostgreSQL at postgresql://tg_app@/nonexistent")
  lu.assertNotStrContains(out, "hunter2")
  code, out = tool("pg-load --from " .. sh_quote(path) .. " --to x --int-type small")
  lu.assertEquals(code, 2)
  lu.assertStrContains(out, "--int-type must be bigint or integer")
end

os.exit(lu.LuaUnit.run())
