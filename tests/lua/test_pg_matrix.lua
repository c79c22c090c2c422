-- The guard-scenario matrix on PostgreSQL, against a real server (the ctest fixture's
-- throwaway cluster): the same data in SQLite and in PostgreSQL (copied by pg-load, each
-- application into a schema of its own, as test_pg_parity.lua does), the same rules. On both
-- backends the matrix must list the same scenarios, every one passes, and every applicable
-- mutant is caught, by the same failing scenarios. The fixture is made inside the matrix's
-- transaction and rolled back: every table's row count on PostgreSQL is the same afterwards.
-- Skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local APP, OWNER = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI")
if not APP or not OWNER then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

-- Runs a command; psql without the sanitizers' LD_PRELOAD (under ASan the tool needs it).
local function run(cmd, unpreload)
  local p = io.popen((unpreload and "env -u LD_PRELOAD " or "") .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function psql(uri, sql)
  local ok, out = run("PGOPTIONS=-cclient_min_messages=warning psql -X -q -At -v ON_ERROR_STOP=1 -d "
    .. sh_quote(uri) .. " -c " .. sh_quote(sql), true)
  assert(ok, "psql: " .. out)
  return out
end

-- Copies the SQLite database at path into a fresh schema; the application's URI for it.
local function load(path, schema, extra)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(schema, schema, schema))
  local ok, out = run(("'%s' pg-load --from %s --to %s --grant-to tg_app %s"):format(H.tool,
    sh_quote(path), sh_quote(in_schema(OWNER, schema)), extra or ""))
  assert(ok, "pg-load: " .. out)
  return in_schema(APP, schema)
end

-- Every table of the schema with its row count, counted by psql as the owner (no
-- tenantguard code in between): "name=count;..." in name order.
local function row_counts(schema)
  return psql(OWNER, ([[
    SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml(format(
      'SELECT count(*) AS n FROM %%I.%%I', n.nspname, c.relname), false, true, '')))[1]::text,
      ';' ORDER BY c.relname)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = '%s' AND c.relkind = 'r']]):format(schema))
end

local function key(r)
  return ("%s/%s/%s/%s"):format(r.family, r.scenario_type, r.path, tostring(r.expected_outcome))
end

-- The scenarios of a report, in order, and the keys of the failing ones (a set); checks that
-- failed with a database error, as text.
local function digest(rep)
  local rows, failing, errors = {}, {}, {}
  for _, r in ipairs(rep) do
    rows[#rows + 1] = key(r)
    if not r.pass then failing[key(r)] = true end
    for _, c in ipairs(r.checks) do
      if c.failure and c.failure:find("^error") then
        errors[#errors + 1] = key(r) .. ": " .. c.failure
      end
    end
  end
  return rows, failing, errors
end

local function failures(rep)
  local out = {}
  for _, r in ipairs(rep) do
    if not r.pass then out[#out + 1] = r.message end
  end
  return table.concat(out, "\n")
end

-- The matrix and every mutant on both backends. same_mutants: the failing scenarios of
-- each mutant must be the same too (false where the copies differ in a way a mutant can
-- see: pg-load copies no CHECK constraint).
local function compare(label, lite_path, pg_uri, schema, rules, same_mutants)
  local before = row_counts(schema)
  local lite = tg.open { db = lite_path, rules = rules }
  local pg = tg.open { db = pg_uri, rules = rules }
  local l, p = lite:run_matrix(), pg:run_matrix()
  lu.assertIsTable(l, label .. ": SQLite")
  lu.assertIsTable(p, label .. ": PostgreSQL")
  lu.assertEquals(l.failed, 0, label .. ", SQLite:\n" .. failures(l))
  lu.assertEquals(p.failed, 0, label .. ", PostgreSQL:\n" .. failures(p))
  local lrows = digest(l)
  local prows, _, perr = digest(p)
  lu.assertTrue(#lrows > 0)
  lu.assertEquals(prows, lrows, label .. ": the same scenarios, in the same order")
  lu.assertEquals(perr, {})
  lu.assertEquals(p.passed, l.passed)
  local caught = 0
  for _, m in ipairs(tg.mutations()) do
    local lm, pm = lite:run_matrix(m.name), pg:run_matrix(m.name)
    lu.assertEquals(pm.not_applicable, lm.not_applicable, label .. ", " .. m.name)
    local _, lfail, lerr = digest(lm)
    local _, pfail, merr = digest(pm)
    -- a database error aborts PostgreSQL's transaction and fails every check after it: a
    -- mutant must be caught by wrong answers, never by errors
    lu.assertEquals(merr, lerr, label .. ", mutant " .. m.name .. ": database errors")
    if not pm.not_applicable then
      lu.assertTrue(pm.failed > 0, label .. ": mutant " .. m.name .. " survived on PostgreSQL")
      caught = caught + 1
    end
    if same_mutants then
      lu.assertEquals(pfail, lfail, label .. ", mutant " .. m.name .. ": the failing scenarios")
    end
  end
  lu.assertTrue(caught > 0)
  -- a mutant never outlives its run
  lu.assertEquals(pg:run_matrix().failed, 0, label .. ": after the mutants")
  lite:close()
  pg:close()
  lu.assertEquals(row_counts(schema), before, label .. ": the fixture was not rolled back")
  print(("%s: %d scenarios pass on both backends, %d mutants caught"):format(label, #prows,
    caught))
end

TestPgMatrix = {}
function TestPgMatrix:tearDown() H.cleanup() end

function TestPgMatrix:test_reference_integer_keys()
  local path = H.refdb(60)
  local uri = load(path, "tgm_ref")
  compare("reference", path, uri, "tgm_ref", H.shipped_rules, true)
  -- the command line, on the same copy
  local ok, out = run(("'%s' matrix --db %s --mutate"):format(H.tool, sh_quote(uri)))
  lu.assertTrue(ok, out)
  lu.assertStrContains(out, "0 failed (the fixture was rolled back)")
  lu.assertStrMatches(out, ".*mutation check: (%d+) mutants, %1 caught.*")
end

-- UUID keys: text in SQLite, uuid columns in PostgreSQL (pg-load --uuid-columns auto): the
-- fixture's keys, users included, must be UUIDs there
function TestPgMatrix:test_reference_uuid_keys()
  local path = H.tmpdir() .. "/text.db"
  local ok, out = run(("'%s' refdb %s --rows 40 --keys text"):format(H.tool, sh_quote(path)))
  assert(ok, out)
  local uri = load(path, "tgm_uuid")
  lu.assertEquals(psql(OWNER, "SELECT data_type FROM information_schema.columns WHERE "
    .. "table_schema = 'tgm_uuid' AND table_name = 'workspace_memberships' AND "
    .. "column_name = 'user_id'"), "uuid\n")
  compare("reference, uuid keys", path, uri, "tgm_uuid", H.shipped_rules, true)
end

-- 32-bit integer columns: the fixture's actors must fit an integer user column
function TestPgMatrix:test_reference_int4_keys()
  local path = H.refdb(30)
  compare("reference, integer columns", path, load(path, "tgm_int4", "--int-type integer"),
    "tgm_int4", H.shipped_rules, true)
end

-- The example applications, loaded as the parity test loads them.
function TestPgMatrix:test_examples()
  for _, app in ipairs { "helpdesk", "storefront", "ledger" } do
    local path = H.tmpdir() .. "/" .. app .. ".db"
    dofile(H.source_dir .. "/examples/" .. app .. "/data.lua").create(path)
    local schema = "tgm_" .. app
    local uri = load(path, schema, "--uuid-columns none")
    local views = H.source_dir .. "/examples/" .. app .. "/views.pg.sql"
    local f = io.open(views)
    if f then
      psql(in_schema(OWNER, schema), f:read("a"))
      f:close()
    end
    -- storefront and ledger: a mutant's overwrite of Order.Status (invoices.status) is
    -- refused by SQLite's CHECK, which pg-load does not copy; the storefront's failing
    -- scenarios of the mutants are compared below, with the CHECKs in place
    compare(app, path, uri, schema, H.source_dir .. "/examples/" .. app .. "/rules",
      app == "helpdesk")
  end
end

-- The storefront with its CHECK constraints on PostgreSQL too: the fixture reads them from
-- pg_get_constraintdef (IN lists as = ANY (ARRAY[...]), BETWEEN as two comparisons,
-- length(), casts). Without that, the actor without capabilities would get a role the
-- CHECK on org_staff.role refuses, and the fixture would fail.
function TestPgMatrix:test_storefront_checks()
  local path = H.tmpdir() .. "/storefront.db"
  dofile(H.source_dir .. "/examples/storefront/data.lua").create(path)
  local uri = load(path, "tgm_checks", "--uuid-columns none")
  local f = assert(io.open(H.source_dir .. "/examples/storefront/views.pg.sql"))
  psql(in_schema(OWNER, "tgm_checks"), f:read("a"))
  f:close()
  psql(in_schema(OWNER, "tgm_checks"), [[
    ALTER TABLE "Organizations" ADD CHECK ("Plan" IN ('free', 'team', 'enterprise', 'closed'));
    ALTER TABLE accounts ADD CHECK (length("Slug") <= 40),
      ADD CHECK (status IN ('active', 'suspended'));
    ALTER TABLE org_staff ADD CHECK (role IN ('admin', 'clerk', 'auditor', 'none')),
      ADD CHECK (active IN (0, 1));
    ALTER TABLE account_grants ADD CHECK (role IS NULL OR role IN ('admin', 'clerk', 'auditor'));
    ALTER TABLE "order" ADD CHECK ("Status" IN ('open', 'paid', 'void')), ADD CHECK ("Total" >= 0);
    ALTER TABLE "Invoices" ADD CHECK ("Number" <> ''),
      ADD CHECK ("Amount" BETWEEN 0 AND 1000000), ADD CHECK (length("Currency") <= 3);
    ALTER TABLE tickets ADD CHECK ("Title" <> ''), ADD CHECK ("Priority" BETWEEN 1 AND 4);
    ALTER TABLE "Shipments" ADD CHECK ("Carrier" IN ('ups', 'dhl', 'fedex')),
      ADD CHECK ("Weight" >= 1);
    ALTER TABLE refund_requests ADD CHECK (length("Reference") <= 16),
      ADD CHECK ("Reason" <> ''), ADD CHECK ("Amount" >= 0);
  ]])
  compare("storefront with its CHECKs", path, uri, "tgm_checks",
    H.source_dir .. "/examples/storefront/rules", true)
end

-- Text keys (no UUIDs), bytea keys (records and users), a users table the memberships
-- reference by a foreign key PostgreSQL checks at once, composite primary keys on the
-- memberships: the fixture's actors get user rows made for them, its keys fit each column.
local KEYS_RULES = {
  ["app.lua"] = 'app { name = "keys" }',
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
family "Attachment" {
  table = "attachments", primary_surface = "AttachmentResource",
  search_posture = "not_applicable", action_surface_status = "declared",
  paths = {
    index = { capability = "t.view" }, detail = { capability = "t.view" },
    row_action = { capability = "t.edit" }, bulk_action = { capability = "t.edit" },
    relation_manager = { owner = "Ticket", via = "ticket_id", capability = "t.view" },
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

local KEYS_SCHEMA = [[
CREATE TABLE workspaces(id TEXT PRIMARY KEY);
CREATE TABLE tenants(id TEXT PRIMARY KEY, workspace_id TEXT NOT NULL REFERENCES workspaces(id));
CREATE TABLE users(id BLOB PRIMARY KEY, email TEXT NOT NULL UNIQUE);
CREATE TABLE workspace_memberships(user_id BLOB NOT NULL REFERENCES users(id),
  workspace_id TEXT NOT NULL REFERENCES workspaces(id), role TEXT,
  PRIMARY KEY (user_id, workspace_id));
CREATE TABLE tenant_memberships(user_id BLOB NOT NULL REFERENCES users(id),
  tenant_id TEXT NOT NULL REFERENCES tenants(id), role TEXT, PRIMARY KEY (user_id, tenant_id));
CREATE TABLE operation_runs(id INTEGER PRIMARY KEY, type TEXT, status TEXT, workspace_id TEXT,
  summary TEXT, created_at TEXT, started_at TEXT, finished_at TEXT);
CREATE TABLE audit_logs(id INTEGER PRIMARY KEY, workspace_id TEXT, tenant_id TEXT, action TEXT,
  subject TEXT, metadata TEXT, created_at TEXT);
CREATE TABLE tickets(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
  workspace_id TEXT, title TEXT NOT NULL);
CREATE TABLE attachments(id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),
  workspace_id TEXT, ticket_id TEXT REFERENCES tickets(id), name TEXT NOT NULL UNIQUE);
CREATE TABLE alerts(id TEXT PRIMARY KEY, workspace_id TEXT, tenant_id TEXT, body TEXT);
INSERT INTO workspaces VALUES ('ws-a');
INSERT INTO tenants VALUES ('ten-1', 'ws-a');
INSERT INTO users VALUES (x'00112233445566778899aabbccddeeff', 'a@example.com');
INSERT INTO workspace_memberships VALUES (x'00112233445566778899aabbccddeeff', 'ws-a', 'owner');
INSERT INTO tenant_memberships VALUES (x'00112233445566778899aabbccddeeff', 'ten-1', NULL);
INSERT INTO tickets VALUES ('t-1', 'ten-1', 'ws-a', 'hello');
INSERT INTO attachments VALUES (x'00aa2233445566778899aabbccddeeff', 'ten-1', 'ws-a', 't-1', 'f');
]]

function TestPgMatrix:test_text_and_bytea_keys()
  local rules = H.rule_dir(KEYS_RULES)
  local path = H.tmpdir() .. "/keys.db"
  local db = tg.connect(path)
  db:exec(KEYS_SCHEMA)
  db:close()
  local uri = load(path, "tgm_keys")
  lu.assertEquals(psql(OWNER, "SELECT string_agg(table_name || '.' || column_name || ' ' || "
    .. "data_type, ', ' ORDER BY table_name) FROM information_schema.columns WHERE "
    .. "table_schema = 'tgm_keys' AND column_name = 'id' AND table_name IN ('attachments', "
    .. "'tickets', 'users')"), "attachments.id bytea, tickets.id text, users.id bytea\n")
  -- the first page of a bytea key starts below every key (a key whose first byte is 0)
  local user = "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff"
  for _, target in ipairs { path, uri } do
    local eng = tg.open { db = target, rules = rules }
    local d = eng:context { user = user, workspace = "ws-a", tenant = "ten-1" }
      :resolve { family = "Attachment", path = "index" }
    lu.assertEquals(d.status, 200, target)
    lu.assertEquals(#d.records, 1, target)
    eng:close()
  end
  compare("text and bytea keys", path, uri, "tgm_keys", rules, true)
end

-- A schema written for PostgreSQL (no SQLite twin): CHECK constraints in every form the
-- fixture reads, a composite UNIQUE, the workspace memberships a view with an INSTEAD OF
-- INSERT trigger (written as is), the tenant memberships a view with an alias and a WHERE
-- (written through its base table). The matrix passes, every mutant is caught, nothing
-- stays.
local STRICT_SCHEMA = [[
CREATE TABLE workspaces (
  id bigint PRIMARY KEY,
  name text NOT NULL UNIQUE CHECK (length(name) BETWEEN 3 AND 12),
  plan text NOT NULL CHECK (plan IN ('free', 'pro', 'enterprise')),
  seats integer NOT NULL CHECK (seats >= 5 AND seats <= 500),
  created_at timestamptz NOT NULL
);
CREATE TABLE tenants (
  id bigint PRIMARY KEY,
  workspace_id bigint NOT NULL REFERENCES workspaces(id),
  name varchar(6) NOT NULL CHECK (name <> ''),
  region text NOT NULL CHECK (region IN ('eu', 'us')),
  code integer NOT NULL,
  UNIQUE (workspace_id, code)
);
CREATE TABLE memberships (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('workspace', 'tenant')),
  user_id uuid NOT NULL,
  workspace_id bigint REFERENCES workspaces(id),
  tenant_ref bigint REFERENCES tenants(id),
  role text, -- no CHECK: one seen through the trigger's view is not read (as on SQLite)
  active boolean NOT NULL,
  UNIQUE (kind, user_id, workspace_id, tenant_ref)
);
-- DISTINCT: no view the fixture could write through its base table, only the trigger
CREATE VIEW workspace_memberships AS
  SELECT DISTINCT user_id, workspace_id, role FROM memberships WHERE kind = 'workspace';
CREATE FUNCTION workspace_memberships_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO memberships (kind, user_id, workspace_id, role, active)
    VALUES ('workspace', NEW.user_id, NEW.workspace_id, NEW.role, true);
  RETURN NEW;
END $$;
CREATE TRIGGER workspace_memberships_insert INSTEAD OF INSERT ON workspace_memberships
  FOR EACH ROW EXECUTE FUNCTION workspace_memberships_insert();
CREATE VIEW tenant_memberships AS
  SELECT m.user_id, m.tenant_ref AS tenant_id, m.role FROM memberships AS m
  WHERE m.kind = 'tenant' AND m.tenant_ref IS NOT NULL;
CREATE TABLE operation_runs (id bigint PRIMARY KEY, type text, status text,
  workspace_id bigint, summary text, created_at text, started_at text, finished_at text);
CREATE TABLE audit_logs (id bigint PRIMARY KEY, workspace_id bigint, tenant_id bigint,
  action text, subject text, metadata text, created_at text);
CREATE TABLE things (
  id bigint PRIMARY KEY,
  tenant_id bigint NOT NULL REFERENCES tenants(id),
  workspace_id bigint NOT NULL REFERENCES workspaces(id),
  title text NOT NULL CHECK (length(title) >= 2),
  status text NOT NULL CHECK (status IN ('open', 'closed')),
  ref text NOT NULL UNIQUE,
  score double precision NOT NULL CHECK (score >= 0.5),
  due date NOT NULL,
  seq integer NOT NULL CHECK (seq > 0),
  CONSTRAINT things_seq UNIQUE (tenant_id, seq)
);
CREATE TABLE notes (
  id uuid PRIMARY KEY,
  tenant_id bigint NOT NULL REFERENCES tenants(id),
  workspace_id bigint NOT NULL REFERENCES workspaces(id),
  thing_id bigint REFERENCES things(id),
  body text NOT NULL CHECK (length(body) BETWEEN 1 AND 20),
  weight integer NOT NULL CHECK (weight BETWEEN 10 AND 20) UNIQUE
);
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA tgm_strict TO tg_app;
]]

local STRICT_RULES = {
  ["app.lua"] = 'app { name = "strict" }',
  ["roles.lua"] = [[
capabilities { "thing.view", "thing.edit", "thing.delete" }
role "owner" { "*" }
role "viewer" { "thing.view" }
]],
  ["families.lua"] = [[
family "Thing" {
  table = "things", primary_surface = "ThingResource", search_posture = "scoped",
  search_columns = { "title" }, action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" }, detail = { capability = "thing.view" },
    row_action = { capability = "thing.edit" }, bulk_action = { capability = "thing.delete" },
    global_search = { capability = "thing.view" },
    canonical_viewer = { capability = "thing.view" },
  },
}
family "Note" {
  table = "notes", primary_surface = "NoteResource", search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" }, detail = { capability = "thing.view" },
    relation_manager = { owner = "Thing", via = "thing_id", capability = "thing.view" },
  },
}
]],
}

function TestPgMatrix:test_a_schema_written_for_postgresql()
  psql(OWNER, "DROP SCHEMA IF EXISTS tgm_strict CASCADE; CREATE SCHEMA tgm_strict; "
    .. "GRANT USAGE ON SCHEMA tgm_strict TO tg_app")
  psql(in_schema(OWNER, "tgm_strict"), STRICT_SCHEMA)
  local before = row_counts("tgm_strict")
  local eng = tg.open { db = in_schema(APP, "tgm_strict"), rules = H.rule_dir(STRICT_RULES) }
  local r, err = eng:run_matrix()
  lu.assertIsTable(r, err)
  lu.assertTrue(#r > 10)
  lu.assertEquals(r.failed, 0, failures(r))
  for _, m in ipairs(tg.mutations()) do
    local mr = eng:run_matrix(m.name)
    local _, _, errors = digest(mr)
    lu.assertEquals(errors, {}, m.name)
    lu.assertTrue(mr.not_applicable ~= nil or mr.failed > 0, "mutant " .. m.name .. " survived")
  end
  eng:close()
  lu.assertEquals(row_counts("tgm_strict"), before)
end

os.exit(lu.LuaUnit.run())
