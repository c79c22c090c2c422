-- The reference database keyed by text UUIDs (tenantguard refdb --keys text): the same
-- application, the same rows, every key TEXT; the shipped rules open, decide, lint, roll out
-- and pass the matrix on it unchanged, since key types come from the catalog.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg
local refdb = require "refdb"

local ROWS = 60
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- every table with its key, and the columns that refer to a key
local APP_TABLES = {
  workspaces = {}, tenants = { "workspace_id" }, users = {},
  workspace_memberships = { "workspace_id", "user_id" },
  tenant_memberships = { "tenant_id", "user_id" },
  audit_logs = { "workspace_id", "tenant_id", "actor_id" },
  operation_runs = { "workspace_id", "tenant_id" },
  provider_connections = { "tenant_id", "workspace_id" },
  alert_deliveries = { "workspace_id", "tenant_id" },
}
local REFS = {
  policies = { "tenant_id", "inventory_item_id" },
  policy_versions = { "tenant_id", "policy_id" },
  backup_sets = { "tenant_id", "backup_schedule_id" },
  backup_items = { "tenant_id", "backup_set_id", "policy_id" },
  restore_runs = { "tenant_id", "backup_set_id" },
  inventory_links = { "tenant_id", "source_item_id", "target_item_id" },
}

local function text_db(rows)
  local path = H.tmpdir() .. "/text.db"
  local rc, out = H.run_tool(("refdb '%s' --rows %d --keys text"):format(path, rows or ROWS))
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "text keys")
  return path
end

local function tool(args, db)
  local rc, out = H.run_tool(("%s --rules '%s' --db '%s'"):format(args, H.shipped_rules, db))
  return rc, out
end

TestRefdbText = {}

function TestRefdbText:tearDown() H.cleanup() end

-- Every key is a TEXT PRIMARY KEY holding a UUID, every reference TEXT holding the UUID of
-- the row it refers to; rows, tenants and orphans are those of the integer database.
function TestRefdbText:test_keys_are_uuid_text_everywhere()
  local path = text_db()
  local int = H.refdb(ROWS)
  local db = tg.connect(path)
  local idb = tg.connect(int)
  local function check_table(name, refs)
    lu.assertEquals(db:value("SELECT type FROM pragma_table_info(?) WHERE name = 'id'", name),
      "TEXT", name)
    lu.assertEquals(db:value("SELECT pk FROM pragma_table_info(?) WHERE name = 'id'", name), 1)
    local n = db:value(("SELECT count(*) FROM %s"):format(name))
    lu.assertTrue(n > 0, name)
    lu.assertEquals(n, idb:value(("SELECT count(*) FROM %s"):format(name)), name)
    for _, r in ipairs(db:query(("SELECT id FROM %s"):format(name))) do
      lu.assertStrMatches(r.id, UUID)
    end
    for _, c in ipairs(refs) do
      lu.assertEquals(db:value("SELECT type FROM pragma_table_info(?) WHERE name = ?", name, c),
        "TEXT", name .. "." .. c)
      lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL AND "
        .. "typeof(%s) <> 'text'"):format(name, c, c)), 0, name .. "." .. c)
      lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL"):format(name, c)),
        idb:value(("SELECT count(*) FROM %s WHERE %s IS NOT NULL"):format(name, c)),
        name .. "." .. c)
    end
  end
  for name, refs in pairs(APP_TABLES) do check_table(name, refs) end
  for _, t in ipairs(refdb.tables) do check_table(t.name, REFS[t.name] or { "tenant_id" }) end
  -- row n of a table has id refdb.key(table, n), and every reference resolves
  lu.assertEquals(db:value("SELECT name FROM tenants WHERE id = ?", refdb.key("tenants", 1)),
    "Tenant 1 (workspace 1)")
  lu.assertEquals(db:value("SELECT workspace_id FROM tenants WHERE id = ?",
    refdb.key("tenants", 5)), refdb.key("workspaces", 2))
  lu.assertEquals(db:value("SELECT email FROM users WHERE id = ?", refdb.key("users", 7)),
    "user7@example.test")
  lu.assertEquals(db:value("SELECT tenant_id FROM policies WHERE id = ?",
    refdb.key("policies", 1)), refdb.key("tenants", 8)) -- (1 * 7) % 12 + 1
  lu.assertEquals(db:value("SELECT policy_id FROM policy_versions WHERE id = ?",
    refdb.key("policy_versions", 9)), refdb.key("policies", 9))
  lu.assertEquals(db:value("PRAGMA foreign_key_check"), nil)
  lu.assertEquals(db:value([[SELECT count(*) FROM policy_versions v JOIN policies p
    ON p.id = v.policy_id WHERE p.tenant_id <> v.tenant_id]]), 0)
  lu.assertEquals(db:value([[SELECT count(*) FROM policies p JOIN inventory_items i
    ON i.id = p.inventory_item_id]]), ROWS // 3)
  -- the same orphans: row 500 does not exist at 60 rows, the last row does
  for _, t in ipairs(refdb.tables) do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE tenant_id NOT IN "
      .. "(SELECT id FROM tenants)"):format(t.name)), 1, t.name)
  end
  -- a tenant's rows in key order come from an index, as with integer keys
  local plan = {}
  for _, r in ipairs(db:query("EXPLAIN QUERY PLAN SELECT * FROM policies WHERE tenant_id = ? "
    .. "AND id > ? ORDER BY id LIMIT 50", refdb.key("tenants", 1), "")) do
    plan[#plan + 1] = r.detail
  end
  plan = table.concat(plan, "; ")
  lu.assertStrContains(plan, "policies_tenant (tenant_id=? AND id>?)")
  lu.assertNotStrContains(plan, "TEMP B-TREE")
  -- the keys of different tables never meet
  lu.assertNotEquals(refdb.key("tenants", 1), refdb.key("workspaces", 1))
  lu.assertNil(db:value("SELECT 1 FROM policies WHERE id IN (SELECT id FROM inventory_items)"))
  -- a row written without a key gets a fresh UUID (tenantguard's audit entries and runs)
  local id = db:value("INSERT INTO audit_logs (action, created_at) VALUES ('x', 'y') "
    .. "RETURNING id")
  lu.assertStrMatches(id, UUID)
  db:close()
  idb:close()
end

-- The same size gives the same database, row for row; integer keys stay the default.
function TestRefdbText:test_deterministic_and_integer_default()
  local a, b = text_db(30), text_db(30)
  local da, dbb = tg.connect(a), tg.connect(b)
  for _, t in ipairs(refdb.tables) do
    local q = ("SELECT group_concat(id || '|' || tenant_id, ',') FROM (SELECT * FROM %s "
      .. "ORDER BY id)"):format(t.name)
    lu.assertEquals(da:value(q), dbb:value(q), t.name)
  end
  da:close()
  dbb:close()
  local i = H.refdb(30)
  local di = tg.connect(i)
  lu.assertEquals(di:value("SELECT typeof(id) FROM policies LIMIT 1"), "integer")
  lu.assertEquals(di:value("SELECT type FROM pragma_table_info('tenants') WHERE name = 'id'"),
    "INTEGER")
  di:close()
  local rc, out = H.run_tool(("refdb '%s' --keys uuid"):format(H.tmpdir() .. "/x.db"))
  lu.assertEquals(rc, 2, out)
  lu.assertStrContains(out, "--keys must be integer or text")
  lu.assertErrorMsgContains("keys must be 'integer' or 'text'", refdb.create,
    H.tmpdir() .. "/y.db", { keys = "uuid" })
end

-- The shipped rules, unchanged: lint clean, decisions by text keys, the matrix with every
-- mutant caught.
function TestRefdbText:test_shipped_rules_decide_on_text_keys()
  local path = text_db()
  local rc, out = tool("lint", path)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "0 errors, 0 warnings")

  local K = refdb.key
  local eng = tg.open { rules = H.shipped_rules, db = path }
  local db = tg.connect(path)
  local mine = db:value("SELECT id FROM policies WHERE tenant_id = ? ORDER BY id LIMIT 1",
    K("tenants", 1))
  local other = db:value("SELECT id FROM policies WHERE tenant_id = ? ORDER BY id LIMIT 1",
    K("tenants", 3))
  local n_mine = db:value("SELECT count(*) FROM policies WHERE tenant_id = ?", K("tenants", 1))
  db:close()
  -- user 2: operator of workspace 1, entitled to tenants 1 and 2
  local ctx = eng:context { user = K("users", 2), workspace = K("workspaces", 1),
    tenant = K("tenants", 1) }
  local d = ctx:resolve { family = "Policy", path = "detail", id = mine }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(d.record.id, mine)
  lu.assertEquals(ctx:resolve { family = "Policy", path = "detail", id = other }.status, 404)
  lu.assertEquals(ctx:resolve { family = "Policy", path = "bulk_action",
    ids = { mine, other } }.status, 404)
  -- index pages by keyset on the text id and never repeats a page
  local seen, after, pages = {}, nil, 0
  repeat
    local page = ctx:resolve { family = "Policy", path = "index", limit = 2, after = after }
    lu.assertEquals(page.status, 200)
    for _, r in ipairs(page.records) do
      lu.assertNil(seen[r.id], "a page repeats")
      seen[r.id] = true
    end
    after = page.next_after
    pages = pages + 1
  until after == nil or pages > ROWS
  local n = 0
  for _ in pairs(seen) do n = n + 1 end
  lu.assertEquals(n, n_mine)
  -- an integer for a text key is an error, never a lookup
  lu.assertErrorMsgContains("expected a text key", ctx.resolve, ctx,
    { family = "Policy", path = "detail", id = 1 })
  ctx:close()
  -- user 6 is a member of nothing
  local out6 = eng:context { user = K("users", 6), workspace = K("workspaces", 1),
    tenant = K("tenants", 1) }
  lu.assertEquals(out6:resolve { family = "Policy", path = "detail", id = mine }.status, 404)
  out6:close()
  eng:close()

  rc, out = tool("matrix --mutate", path)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "12 mutants, 12 caught")
end

-- The whole rollout, as the demo runs it: phases 1 and 1.5, the backfill, validation finds
-- the orphans, quarantine, validation all zero, phase 3, and the matrix again.
function TestRefdbText:test_rollout_backfill_validate()
  local path = text_db()
  local function ok(args, want)
    local rc, out = tool(args, path)
    lu.assertEquals(rc, 0, args .. ": " .. out)
    if want then lu.assertStrContains(out, want) end
    return out
  end
  ok("rollout add_columns", "12 columns added")
  ok("rollout enforce_writes")
  ok("backfill")
  ok("worker", "nothing left to do")
  local rc, out = tool("validate", path)
  lu.assertEquals(rc, 1, out) -- the orphans
  lu.assertStrContains(out, "null_workspace")
  ok("rollout quarantine_orphans", "12 rows whose tenant no longer exists")
  ok("validate", "all zero")
  ok("rollout enforce_constraints")
  ok("matrix --mutate", "12 mutants, 12 caught")
  local db = tg.connect(path)
  -- every bound row holds its tenant's workspace key, as text
  lu.assertEquals(db:value([[SELECT count(*) FROM policies p JOIN tenants t
    ON t.id = p.tenant_id AND t.workspace_id = p.workspace_id]]), ROWS - 1)
  lu.assertEquals(db:value("SELECT count(*) FROM policies WHERE typeof(workspace_id) <> 'text'"),
    0)
  db:close()
end

os.exit(lu.LuaUnit.run())
