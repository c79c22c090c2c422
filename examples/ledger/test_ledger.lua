-- ledger, the whole story: an accounting SaaS shaped the way Citus requires. Every
-- tenant-owned table is keyed (tenant_id, id) with ids numbered per tenant (invoice 1 exists
-- in several companies, with different data), foreign keys between them carry the tenant,
-- tenant columns are NOT NULL; documents are keyed by UUID text, one UUID held by two
-- companies on purpose; a write-off queue (a scope exception) has one id held by two.
--
-- Each step of the story is its own test: lint clean (only the family_key_with_tenant
-- infos) and the Citus lint clean with its plan; the differential test against the
-- independent oracle, in the default mode and in distributed mode; the rows that must stay
-- invisible (the same id in another tenant is never served, on any path); ambiguous ids
-- without a route tenant; writes through the context that touch one tenant's row only; the
-- whole rollout with a checksum of every other column; the matrix with every mutant.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/../?.lua;" .. package.path

local lu = require "luaunit"
local H = require "helpers"
local S = require "story"
local tg = H.tg

local A = S.app(HERE)
local SEED = tonumber(os.getenv("TG_DIFF_SEED")) or 1357
local REQUESTS = tonumber(os.getenv("TG_DIFF_REQUESTS")) or 20000

local GEN = {
  users = { 11, 999 },
  workspaces = { 4, 77 },
  tenants = { 7, 99 },
  searches = { "%", "_", "\\", "100%", "café_", "CAFÉ_", "bäckerei", "ä", "Ä", "back\\",
    "acme", "ACME", "billing", "@", "", " ", "zzz", ".test" },
}

-- both modes: the default, and distributed (every read by id pins the route tenant, as on
-- Citus); the ledger's tables are all keyed with their tenant, so both must decide alike
local MODES = { { label = "default" }, { label = "distributed", opts = { distributed = true } } }

TestLedger = {}

function TestLedger:setUp()
  self.path, self.info = S.fresh(A)
  self.db = tg.connect(self.path)
end

function TestLedger:tearDown()
  for _, e in pairs(self.engines or {}) do e:close() end
  self.engines = nil
  self.db:close()
  H.cleanup()
end

function TestLedger:engine(mode)
  self.engines = self.engines or {}
  local key = mode and mode.label or "default"
  self.engines[key] = self.engines[key] or S.open(A, self.path, mode and mode.opts)
  return self.engines[key]
end

function TestLedger:ctx(user, ws, tenant, mode)
  return self:engine(mode):context { user = user, workspace = ws, tenant = tenant }
end

function TestLedger:rollout_writes()
  local eng = S.open(A, self.path)
  S.phase(lu, eng, "add_columns")
  S.phase(lu, eng, "enforce_writes")
  eng:close()
end

-- the whole row of a table keyed (tenant_id, id), by raw SQL
function TestLedger:row(tbl, tenant, id)
  return self.db:query(("SELECT * FROM %s WHERE tenant_id = ? AND id = ?"):format(S.qi(tbl)),
    tenant, id)[1]
end

local function expect(d, status, reason, what)
  lu.assertEquals({ d.status, d.reason }, { status, reason }, what)
end

-- 1. Lint is clean against the database as it is: the only findings are one
-- family_key_with_tenant info per family, each naming (tenant_id, id).
function TestLedger:test_01_lint_clean_against_the_database()
  local infos = S.assert_lint_clean(lu, A, self.path, { family_key_with_tenant = true })
  local fams = {}
  for _, f in ipairs(infos) do
    lu.assertStrContains(f.message, "keyed on (tenant_id, id)")
    fams[f.message:match("family '([^']+)'")] = true
  end
  for _, name in ipairs { "Customer", "Invoice", "InvoiceLine", "Document" } do
    lu.assertTrue(fams[name], name .. ": no family_key_with_tenant info")
  end
  lu.assertEquals(#infos, 4, S.describe(infos))
  -- the engine opens in both modes and says which
  lu.assertFalse(self:engine(MODES[1]):settings().distributed)
  lu.assertTrue(self:engine(MODES[2]):settings().distributed)
end

-- 1b. The point of the example: a Citus-ready schema lints clean for Citus (no key, foreign
-- key or nullable tenant to fix: no warning at all), and the plan only creates reference and
-- distributed tables, changing no key.
function TestLedger:test_01b_citus_lint_clean_and_plan()
  local rc, out = S.tool(A, self.path, "lint --strict --target citus")
  lu.assertEquals(rc, 0, out)
  for _, code in ipairs { "citus_key_without_tenant", "citus_foreign_key_without_tenant",
    "citus_nullable_tenant", "citus_references_distributed", "warning:", "error:" } do
    lu.assertNotStrContains(out, code)
  end
  lu.assertStrContains(out, "0 errors, 0 warnings")
  for _, t in ipairs { "customers", "invoices", "invoice_lines", "documents", "payments",
    "write_offs" } do
    lu.assertStrContains(out, t .. " (", false, t)
  end
  rc, out = S.tool(A, self.path, "rollout --plan --target citus")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "(none to change)")
  lu.assertNotStrContains(out, "DROP CONSTRAINT")
  for _, t in ipairs { "workspaces", "tenants", "users", "workspace_memberships",
    "tenant_memberships" } do
    lu.assertStrContains(out, ([[create_reference_table('"%s"')]]):format(t))
  end
  lu.assertStrContains(out, [[create_distributed_table('"customers"', 'tenant_id')]])
  for _, t in ipairs { "invoices", "invoice_lines", "documents", "payments", "write_offs" } do
    lu.assertStrContains(out, ([[create_distributed_table('"%s"', 'tenant_id', colocate_with ]]
      .. [[=> '"customers"')]]):format(t))
  end
  -- the app's audit log and runs stay local (a NULL tenant is allowed there)
  local locals = out:match("left as local tables[^\n]*\n%-%-%s+([^\n]*)")
  lu.assertNotNil(locals, out)
  lu.assertStrContains(locals, "audit_logs")
  lu.assertStrContains(locals, "operation_runs")
end

-- 2. Random requests over every path agree with the oracle, and nothing leaks: in the
-- default mode, then in distributed mode.
function TestLedger:test_02_differential_against_the_oracle()
  local R, W = S.differential(lu, A, self.path, REQUESTS, SEED, GEN)
  for _, name in ipairs { "Customer", "Invoice", "InvoiceLine", "Document" } do
    lu.assertTrue(W.families[name].key_with_tenant, name .. ": the oracle missed its key")
  end
  -- ids repeat across tenants: invoice 1 is held by every company
  lu.assertEquals(#W.families.Invoice.holders[1], 7)
  lu.assertTrue((R.by_reason.not_found or 0) > 0)
  lu.assertTrue((R.by_reason.not_entitled or 0) > 0)
  lu.assertTrue((R.by_reason.ambiguous_id or 0) > 0, "no ambiguous_id drawn")
end

function TestLedger:test_02b_differential_in_distributed_mode()
  local R = S.differential(lu, A, self.path, REQUESTS, SEED + 1, GEN, MODES[2].opts)
  lu.assertTrue((R.by_reason.not_found or 0) > 0)
  lu.assertTrue((R.by_reason.ambiguous_id or 0) > 0, "no ambiguous_id drawn")
end

-- 3. The rows that must stay invisible: the same id in another tenant is never served, on
-- any path, in either mode; a voided invoice is gone.
function TestLedger:test_03_same_id_in_another_tenant_is_never_served()
  local db = self.db
  -- invoice 80 exists in companies 1 and 4 only; invoice 1 in every company
  lu.assertEquals(db:value("SELECT group_concat(tenant_id) FROM (SELECT tenant_id FROM invoices "
    .. "WHERE id = 80 ORDER BY tenant_id)"), "1,4")
  local live = db:value("SELECT id FROM invoices WHERE tenant_id = 1 AND status <> 'void' AND id "
    .. "IN (SELECT id FROM invoices WHERE tenant_id = 2 AND status <> 'void') ORDER BY id LIMIT 1")
  local void2 = db:value("SELECT id FROM invoices WHERE tenant_id = 2 AND status = 'void' AND id "
    .. "IN (SELECT id FROM invoices WHERE tenant_id = 1 AND status <> 'void') LIMIT 1")
  lu.assertNotNil(live)
  lu.assertNotNil(void2)
  for _, mode in ipairs(MODES) do
    local m = " (" .. mode.label .. ")"
    local c1, c2, c3 = self:ctx(1, 1, 1, mode), self:ctx(1, 1, 2, mode), self:ctx(1, 1, 3, mode)
    -- the same id in two tenants: each context gets its own tenant's row, with its own data
    for _, c in ipairs { { c1, 1 }, { c2, 2 } } do
      local d = c[1]:resolve { family = "Invoice", path = "detail", id = live }
      expect(d, 200, "ok", m)
      lu.assertEquals(d.record.tenant_id, c[2], m)
      lu.assertEquals(d.record.number, self:row("invoices", c[2], live).number, m)
    end
    -- an id only another tenant holds: not found on every path, nothing read
    for _, path in ipairs { "detail", "row_action" } do
      expect(c3:resolve { family = "Invoice", path = path, id = 80 }, 404, "not_found",
        path .. m)
    end
    expect(c3:resolve { family = "Invoice", path = "bulk_action", ids = { 1, 80 } }, 404,
      "not_found", "bulk" .. m)
    local d = c1:resolve { family = "Invoice", path = "bulk_action", ids = { 1, 80, live } }
    expect(d, 200, "ok", "bulk" .. m)
    for _, r in ipairs(d.records) do lu.assertEquals(r.tenant_id, 1, "bulk" .. m) end
    -- a voided invoice is gone, though another tenant's live one has the same id
    expect(c2:resolve { family = "Invoice", path = "detail", id = void2 }, 404, "not_found", m)
    expect(c2:resolve { family = "Invoice", path = "bulk_action", ids = { live, void2 } }, 404,
      "not_found", m)
    expect(c1:resolve { family = "Invoice", path = "detail", id = void2 }, 200, "ok", m)
    -- relation manager: the owner is looked up in the route tenant; the lines listed are that
    -- tenant's lines of that invoice, never another tenant's lines under the same number
    expect(c3:resolve { family = "InvoiceLine", path = "relation_manager", owner = 80 }, 404,
      "owner_not_found", m)
    d = c2:resolve { family = "InvoiceLine", path = "relation_manager", owner = live,
      limit = 100 }
    expect(d, 200, "ok", m)
    local want = db:value("SELECT count(*) FROM invoice_lines WHERE tenant_id = 2 AND "
      .. "invoice_id = ?", live)
    lu.assertEquals(#d.records, want, m)
    for _, r in ipairs(d.records) do
      lu.assertEquals({ r.tenant_id, r.invoice_id }, { 2, live }, m)
    end
    -- a line id tenant 1 holds under invoice `live`, asked for in tenant 3 under the same
    -- invoice number: tenant 3's own line of that id (or none), never tenant 1's
    local line = db:value("SELECT max(id) FROM invoice_lines WHERE tenant_id = 1 AND "
      .. "invoice_id = ?", live)
    d = c3:resolve { family = "InvoiceLine", path = "relation_manager", owner = 1, id = line }
    lu.assertEquals(d.status, 404, m)
    lu.assertNil(d.record)
    -- customers by id, and search, stay in the route tenant
    d = c3:resolve { family = "Customer", path = "detail", id = 20 }  -- company 3 has 13
    expect(d, 404, "not_found", m)
    d = c1:resolve { family = "Customer", path = "global_search", query = "billing", limit = 100 }
    expect(d, 200, "ok", m)
    lu.assertTrue(#d.records > 0)
    for _, r in ipairs(d.records) do lu.assertEquals(r.tenant_id, 1, m) end
  end
end

-- 4. Without a route tenant an id two tenants hold cannot be told apart: 404 ambiguous_id,
-- for the canonical viewer (with or without a route tenant) and the scope exception, and
-- explain says the same. An id one tenant holds opens as before.
function TestLedger:test_04_ambiguous_ids_without_a_route_tenant()
  local I = self.info
  local within, across = I.shared_documents[1].id, I.shared_documents[2].id
  local unique2 = self.db:value("SELECT id FROM documents WHERE tenant_id = 2 AND id NOT LIKE "
    .. "'5ca1ab1e%' LIMIT 1")
  local wo = self.db:value("SELECT id FROM write_offs WHERE tenant_id = 1 LIMIT 1")
  for _, mode in ipairs(MODES) do
    local m = " (" .. mode.label .. ")"
    local viewer = self:ctx(1, 1, nil, mode)
    for _, id in ipairs { within, across } do
      expect(viewer:resolve { family = "Document", path = "canonical_viewer", id = id }, 404,
        "ambiguous_id", id .. m)
      expect(self:ctx(1, 1, 1, mode):resolve { family = "Document", path = "canonical_viewer",
        id = id }, 404, "ambiguous_id", id .. " with a route tenant" .. m)
      local e = viewer:explain { family = "Document", path = "canonical_viewer", id = id }
      lu.assertEquals({ e.status, e.reason }, { 404, "ambiguous_id" }, m)
    end
    -- the route tenant still reads its own copy through detail
    local d = self:ctx(1, 1, 2, mode):resolve { family = "Document", path = "detail",
      id = within }
    expect(d, 200, "ok", m)
    lu.assertEquals(d.record.filename, "shared-2.pdf")
    -- a UUID one tenant holds opens as before; entitlement still counts
    d = viewer:resolve { family = "Document", path = "canonical_viewer", id = unique2 }
    expect(d, 200, "ok", m)
    lu.assertEquals(d.record.tenant_id, 2)
    expect(self:ctx(3, 1, nil, mode):resolve { family = "Document", path = "canonical_viewer",
      id = unique2 }, 404, "not_entitled", m)
    -- the write-off queue: a partner sees write-offs across companies, not an ambiguous one
    expect(viewer:resolve { exception = "WriteOffQueue", path = "detail", id = wo }, 200, "ok", m)
    expect(viewer:resolve { exception = "WriteOffQueue", path = "detail",
      id = I.shared_write_off.id }, 404, "ambiguous_id", m)
    local e = viewer:explain { exception = "WriteOffQueue", path = "detail",
      id = I.shared_write_off.id }
    lu.assertEquals({ e.status, e.reason }, { 404, "ambiguous_id" }, m)
    expect(self:ctx(2, 1, nil, mode):resolve { exception = "WriteOffQueue", path = "detail",
      id = wo }, 403, "missing_capability", m)
  end
end

-- 5. Writes through the context touch the route tenant's row only: updating invoice 1 of
-- company 1 leaves invoice 1 of every other company exactly as it was.
function TestLedger:test_05_writes_touch_one_tenant_only()
  self:rollout_writes()
  local db = self.db
  local others = {}
  for _, t in ipairs { 2, 3, 4, 5, 6, 99 } do others[t] = self:row("invoices", t, 1) end
  local ctx = self:ctx(2, 1, 1) -- accountant of firm 1
  local before = self:row("invoices", 1, 1)
  local d = ctx:update("Invoice", 1, { total_cents = 4242 })
  lu.assertNotNil(d)
  if before.status == "void" then
    expect(d, 404, "not_found")
  else
    expect(d, 200, "ok")
    lu.assertEquals(self:row("invoices", 1, 1).total_cents, 4242)
    lu.assertEquals(self:row("invoices", 1, 1).workspace_id, 1)
  end
  for t, row in pairs(others) do
    lu.assertEquals(self:row("invoices", t, 1), row, "invoice 1 of company " .. t .. " changed")
  end
  -- an id only another company holds: not found, and that company's row is untouched
  local theirs = self:row("invoices", 1, 100)
  d = self:ctx(1, 1, 3):update("Invoice", 100, { total_cents = 1 })
  expect(d, 404, "not_found")
  lu.assertEquals(self:row("invoices", 1, 100), theirs)
  -- inserts take the route tenant's numbering: id 1 is taken in company 1, free in a new
  -- number; the workspace is derived
  local ok, msg = ctx:insert("Customer", { tenant_id = 1, id = 1, name = "Duplicate" })
  lu.assertNil(ok, "a second customer 1 of company 1 was accepted")
  lu.assertIsString(msg)
  d = ctx:insert("Customer", { tenant_id = 1, id = 9001, name = "New Customer" })
  expect(d, 200, "ok")
  lu.assertEquals(self:row("customers", 1, 9001).workspace_id, 1)
  lu.assertNil(self:row("customers", 2, 9001))
  -- a tenant other than the context's, and a move to another tenant, are refused
  ok, msg = ctx:insert("Customer", { tenant_id = 2, id = 9002, name = "Elsewhere" })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(msg), "tenant_id")
  ok = ctx:update("Customer", 9001, { tenant_id = 2 })
  lu.assertNil(ok)
  lu.assertEquals(self:row("customers", 1, 9001).name, "New Customer")
  -- a line under an invoice number company 3 does not have: the composite foreign key
  -- refuses it (companies 1, 2 and 4 have an invoice 50; that does not count)
  lu.assertNil(self:row("invoices", 3, 50))
  lu.assertNotNil(self:row("invoices", 1, 50))
  local c3 = self:ctx(6, 1, 3) -- accountant in company 3
  ok = c3:insert("InvoiceLine", { tenant_id = 3, id = 9001, invoice_id = 50,
    description = "x", quantity = 1, unit_cents = 1 })
  lu.assertNil(ok, "a line under an invoice of another company was accepted")
  d = c3:insert("InvoiceLine", { tenant_id = 3, id = 9001, invoice_id = 5,
    description = "x", quantity = 1, unit_cents = 1 })
  expect(d, 200, "ok")
  -- raw SQL meets the triggers: tenant_id never changes, even to a free (tenant, id)
  local ok2, err = pcall(db.query, db, "UPDATE invoices SET tenant_id = 5 WHERE tenant_id = 1 "
    .. "AND id = 120")
  lu.assertFalse(ok2)
  lu.assertStrContains(err, "invoices: tenant_id can never change")
end

-- 6. The whole rollout, with a checksum of every other column, on composite keys; the
-- differential test again afterwards, in both modes.
function TestLedger:test_06_rollout_keeps_every_other_column()
  local eng, orphans, n_orphans = S.rollout(lu, A, self.path)
  eng:close()
  local want = 0
  for _, n in pairs(self.info.orphans) do want = want + n end
  lu.assertEquals(n_orphans, want)
  lu.assertTrue(n_orphans > 0)
  -- the orphans of each table are the hard-deleted company's rows, named by their key
  lu.assertTrue(orphans.invoice_lines['[99,1]'], "invoice line (99, 1) not an orphan")
  -- composite foreign keys to tenants (tenant_id, workspace_id) on every tenant-owned table
  for _, t in ipairs { "customers", "invoices", "invoice_lines", "documents", "payments" } do
    lu.assertEquals(self.db:value(([[SELECT count(*) FROM pragma_foreign_key_list('%s')
      WHERE "table" = 'tenants' AND "from" = 'workspace_id']]):format(t)), 1, t)
  end
  S.differential(lu, A, self.path, REQUESTS // 4, SEED + 2, GEN)
  S.differential(lu, A, self.path, REQUESTS // 4, SEED + 3, GEN, MODES[2].opts)
end

-- 6b. The backfill in many small batches: a batch boundary falls between rows of one id in
-- different tenants, and no row is skipped or bound twice (the walk follows the whole key).
function TestLedger:test_06b_backfill_in_small_batches_binds_every_row()
  local eng = S.open(A, self.path)
  S.phase(lu, eng, "add_columns")
  S.phase(lu, eng, "enforce_writes")
  local run = assert(eng:backfill { batch_rows = 50, batch_ms = 1 })
  local w = assert(eng:work {})
  lu.assertTrue(w.idle)
  lu.assertTrue(w.batches >= 20, "only " .. tostring(w.batches) .. " batches")
  run = eng:run(run.id)
  local orphans = 0
  for _, n in pairs(self.info.orphans) do orphans = orphans + n end
  lu.assertEquals(run.rows_unbound, orphans)
  local db = self.db
  for _, t in ipairs { "customers", "invoices", "invoice_lines", "documents", "payments" } do
    lu.assertEquals(db:value(("SELECT count(*) FROM %s r JOIN tenants t ON t.id = r.tenant_id "
      .. "WHERE r.workspace_id IS NULL OR r.workspace_id <> t.workspace_id"):format(t)), 0, t)
    lu.assertEquals(db:value(("SELECT count(*) FROM %s WHERE workspace_id IS NULL"):format(t)),
      self.info.orphans[t] or 0, t)
  end
  eng:close()
end

-- 7. The matrix on composite keys (its fixture writes rows of every family and of the
-- exception, keyed (tenant_id, id), with their composite foreign keys), every mutant caught.
function TestLedger:test_07_matrix_catches_every_mutant()
  S.matrix_with_mutants(lu, A, self.path)
end

-- 8. The command-line tool: resolve and explain in distributed mode, an ambiguous UUID.
function TestLedger:test_08_command_line_tool()
  local id = self.info.shared_documents[1].id
  for _, flag in ipairs { "--distributed on", "--distributed off", "" } do
    local rc, out = S.tool(A, self.path, "resolve --user 1 --workspace 1 --family Document "
      .. "--path canonical_viewer --id text:" .. id .. " " .. flag)
    lu.assertEquals(rc, 0, out)
    lu.assertStrContains(out, "404 ambiguous_id", false, flag)
    rc, out = S.tool(A, self.path, "resolve --user 1 --workspace 1 --tenant 3 --family Invoice "
      .. "--path detail --id 100 " .. flag)
    lu.assertEquals(rc, 0, out)
    lu.assertStrContains(out, "404 not_found", false, flag)
  end
end

os.exit(lu.LuaUnit.run())
