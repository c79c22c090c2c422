-- storefront, the whole story: names per table (account_id here, acct there, org_id as the
-- workspace column), a composite-key WITHOUT ROWID residual, a WITHOUT ROWID family keyed
-- by text, a table named "order", mixed-case identifiers, views with INSTEAD OF triggers over
-- tenant-owned tables, memberships read through a view, a closed organization filtered out,
-- and CHECK and UNIQUE columns on every table the matrix fixture writes.
--
-- Each step of the story is its own test: lint clean, and drift found by a foreign key;
-- the differential test against the independent oracle, before and after the rollout; the
-- rows that must stay invisible; per-table names in records and messages; writes through the
-- context; raw SQL and the views against the triggers; the whole rollout with a checksum of
-- every other column; the matrix with every mutant.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/../?.lua;" .. package.path

local lu = require "luaunit"
local H = require "helpers"
local S = require "story"
local tg = H.tg

local A = S.app(HERE)
local SEED = tonumber(os.getenv("TG_DIFF_SEED")) or 9090
local REQUESTS = tonumber(os.getenv("TG_DIFF_REQUESTS")) or 20000

local GEN = {
  users = { 11, 999 },
  workspaces = { 5, 77 },
  tenants = { 13, 901 },
  searches = { "%", "_", "\\", "100%", "wrong_", "WRONG_SIZE", "lieferung", "ä", "Ä",
    "back\\", "t-1", "T-", "", " ", "zzz", "promo" },
}

TestStorefront = {}

function TestStorefront:setUp()
  self.path, self.info = S.fresh(A)
  self.db = tg.connect(self.path)
end

function TestStorefront:tearDown()
  if self.eng then self.eng:close() self.eng = nil end
  self.db:close()
  H.cleanup()
end

function TestStorefront:ctx(user, org, account)
  self.eng = self.eng or S.open(A, self.path)
  return self.eng:context { user = user, workspace = org, tenant = account }
end

function TestStorefront:rollout_writes()
  local eng = S.open(A, self.path)
  S.phase(lu, eng, "add_columns")
  S.phase(lu, eng, "enforce_writes")
  eng:close()
end

-- 1. Lint is clean against the database as it is.
function TestStorefront:test_01_lint_clean_against_the_database()
  S.assert_lint_clean(lu, A, self.path)
end

-- 1b. Drift finds a tenant-owned table by its foreign key to the tenants table, whatever the
-- column is called: without the ClientNote residual, client_notes is reported.
function TestStorefront:test_01b_drift_found_by_foreign_key()
  local dir = H.tmpdir() .. "/rules"
  H.copy_dir(A.rules, dir)
  local text = H.read(dir .. "/residual.lua")
  local at = text:find('residual "ClientNote"', 1, true)
  H.write(dir .. "/residual.lua", text:sub(1, at - 1))
  local drift = H.with_code(tg.check { rules = dir, db = self.path }, "drift")
  lu.assertEquals(#drift, 1, S.describe(drift))
  lu.assertStrContains(drift[1].message, "client_notes")
  lu.assertStrContains(drift[1].message, "client_account_id")
end

-- 2. Random requests over every path agree with the oracle, and nothing leaks.
function TestStorefront:test_02_differential_against_the_oracle()
  local R, W = S.differential(lu, A, self.path, REQUESTS, SEED, GEN)
  lu.assertTrue((R.by_reason.not_found or 0) > 0)
  lu.assertTrue((R.by_reason.not_member or 0) > 0)
  lu.assertIsString(W.families.Shipment.ids[1])
  lu.assertIsNumber(W.families.Invoice.ids[1])
end

-- 3. Records and messages use the application's own names.
function TestStorefront:test_03_names_per_table()
  self:rollout_writes()
  local db = self.db
  local inv = db:query("SELECT InvoiceId, acct FROM Invoices WHERE acct = 1 ORDER BY InvoiceId "
    .. "LIMIT 1")[1]
  local ctx = self:ctx(1, 1, 1)
  local d = ctx:resolve { family = "Invoice", path = "detail", id = inv.InvoiceId }
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(d.record.InvoiceId, inv.InvoiceId)
  lu.assertEquals(d.record.acct, 1)
  -- the keyword table
  local o = db:value([[SELECT id FROM "order" WHERE account_id = 1 AND Status <> 'void' LIMIT 1]])
  d = ctx:resolve { family = "Order", path = "detail", id = o }
  lu.assertEquals({ d.status, d.record.id, d.record.account_id }, { 200, o, 1 })
  -- the WITHOUT ROWID family keyed by text, paged by its key
  local want = db:value("SELECT count(*) FROM Shipments WHERE acct = 1")
  local seen, n, after = {}, 0, nil
  repeat
    d = ctx:resolve { family = "Shipment", path = "index", limit = 9, after = after }
    lu.assertEquals(d.status, 200)
    for _, r in ipairs(d.records) do
      lu.assertNil(seen[r.TrackingCode], "paging repeated " .. r.TrackingCode)
      seen[r.TrackingCode] = true
      n = n + 1
    end
    after = d.next_after
  until not d.has_more
  lu.assertEquals(n, want)
  lu.assertErrorMsgContains("expected a text key for Shipments.TrackingCode", ctx.resolve, ctx,
    { family = "Shipment", path = "detail", id = 12 })
  lu.assertErrorMsgContains("Invoices.InvoiceId", ctx.resolve, ctx,
    { family = "Invoice", path = "detail", id = "12" })
  -- a write naming the wrong tenant is refused naming the table's own column
  local ok, msg = ctx:update("Invoice", inv.InvoiceId, { acct = 2 })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(msg), "acct")
  ok, msg = pcall(db.query, db, "UPDATE Invoices SET acct = 2 WHERE InvoiceId = ?", inv.InvoiceId)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "Invoices: acct can never change [tenant_immutable]")
  ok, msg = pcall(db.query, db, [[UPDATE "order" SET account_id = 2 WHERE id = ?]], o)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "order: account_id can never change [tenant_immutable]")
end

-- 4. The rows that must stay invisible.
function TestStorefront:test_04_invisible_rows()
  local db = self.db
  local ctx = self:ctx(1, 1, 1)
  -- a voided order: 404 on every path, never listed, never in a bulk
  local void = db:value([[SELECT id FROM "order" WHERE account_id = 1 AND Status = 'void' LIMIT 1]])
  local live = db:value([[SELECT id FROM "order" WHERE account_id = 1 AND Status = 'open' LIMIT 1]])
  for _, path in ipairs { "detail", "row_action" } do
    local d = ctx:resolve { family = "Order", path = path, id = void }
    lu.assertEquals({ d.status, d.reason }, { 404, "not_found" }, path)
  end
  local d = ctx:resolve { family = "Order", path = "bulk_action", ids = { live, void } }
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  d = ctx:resolve { family = "Order", path = "index", limit = 100 }
  for _, r in ipairs(d.records) do lu.assertNotEquals(r.Status, "void") end
  -- the invoices of a voided order: its owner is gone
  d = ctx:resolve { family = "Invoice", path = "relation_manager", owner = void }
  lu.assertEquals({ d.status, d.reason }, { 404, "owner_not_found" })
  -- an invoice of account 1 linked to another account's order never shows under that order
  local cross = db:query([[SELECT i.InvoiceId, i.order_id, o.account_id FROM Invoices i
    JOIN "order" o ON o.id = i.order_id WHERE i.acct = 1 AND o.account_id = 2
    AND o.Status <> 'void' LIMIT 1]])[1]
  if cross then
    d = self:ctx(1, 1, 2):resolve { family = "Invoice", path = "relation_manager",
      owner = cross.order_id, limit = 100 }
    lu.assertEquals(d.status, 200)
    for _, r in ipairs(d.records) do lu.assertNotEquals(r.InvoiceId, cross.InvoiceId) end
  end
  -- the closed organization: nobody is a member; an inactive staff member is not either
  d = self:ctx(8, 4, 10):resolve { family = "Order", path = "index" }
  lu.assertEquals({ d.status, d.reason }, { 404, "not_member" })
  d = self:ctx(4, 1, 1):resolve { family = "Order", path = "index" }
  lu.assertEquals({ d.status, d.reason }, { 404, "not_member" })
  -- a role nobody declares ('none') grants nothing; the account role does
  d = self:ctx(6, 2, 5):resolve { family = "Order", path = "index" }
  lu.assertEquals({ d.status, d.reason }, { 403, "missing_capability" })
  d = self:ctx(6, 2, 4):resolve { family = "Order", path = "index" }
  lu.assertEquals(d.status, 200)
  -- another account's and another organization's ticket, through a shared link
  local viewer = self:ctx(2, 1)
  for a, reason in pairs { [3] = "not_entitled", [4] = "foreign_workspace" } do
    local t = db:value("SELECT id FROM tickets WHERE account_id = ? LIMIT 1", a)
    d = viewer:resolve { family = "Ticket", path = "canonical_viewer", id = t }
    lu.assertEquals({ d.status, d.reason }, { 404, reason })
  end
end

-- 5. Writes through the context: org_id derived, CHECK and UNIQUE errors are rejections.
function TestStorefront:test_05_writes_through_the_context()
  self:rollout_writes()
  local db = self.db
  local ctx = self:ctx(2, 1, 1) -- clerk
  local d = ctx:insert("Order", { account_id = 1, OrderNo = "SO-NEW-1", Status = "open",
    Total = 10 })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(db:value([[SELECT org_id FROM "order" WHERE id = ?]], d.id), 1)
  d = ctx:update("Order", d.id, { Total = 20 })
  lu.assertEquals(d.status, 200)
  local ok, msg = ctx:insert("Order", { account_id = 1, OrderNo = "SO-NEW-1", Status = "open",
    Total = 1 })
  lu.assertNil(ok, "a duplicate OrderNo was accepted")
  lu.assertIsString(msg)
  ok = ctx:insert("Order", { account_id = 1, OrderNo = "SO-NEW-2", Status = "lost", Total = 1 })
  lu.assertNil(ok, "a Status outside its CHECK was accepted")
  ok, msg = ctx:insert("Order", { account_id = 1, org_id = 2, OrderNo = "SO-NEW-3",
    Status = "open", Total = 1 })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(msg), "org_id")
  -- a voided order cannot be edited: it is not there
  local void = db:value([[SELECT id FROM "order" WHERE account_id = 1 AND Status = 'void' LIMIT 1]])
  d = ctx:update("Order", void, { Total = 0 })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  -- a shipment, keyed by text, in a WITHOUT ROWID table
  d = ctx:insert("Shipment", { TrackingCode = "1ZNEW", acct = 1, Carrier = "dhl", Weight = 3 })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(db:value("SELECT org_id FROM Shipments WHERE TrackingCode = '1ZNEW'"), 1)
end

-- 6. Raw SQL, also through the app's views and their INSTEAD OF triggers, meets the triggers.
function TestStorefront:test_06_raw_sql_and_views_against_the_triggers()
  self:rollout_writes()
  local db = self.db
  db:query("INSERT INTO open_orders (account_id, OrderNo, Total) VALUES (4, 'SO-VIEW-1', 5)")
  lu.assertEquals(db:value([[SELECT org_id FROM "order" WHERE OrderNo = 'SO-VIEW-1']]), 2)
  local ok, msg = pcall(db.query, db,
    "INSERT INTO open_orders (account_id, OrderNo, Total) VALUES (901, 'SO-VIEW-2', 5)")
  lu.assertFalse(ok, "an order for an account that does not exist went through the view")
  lu.assertStrContains(msg, "order")
  lu.assertEquals(db:value([[SELECT count(*) FROM "order" WHERE OrderNo = 'SO-VIEW-2']]), 0)
  -- the Ticket Board view writes tags into the WITHOUT ROWID composite-key table
  local t = db:value("SELECT id FROM tickets WHERE account_id = 7 LIMIT 1")
  db:query([[UPDATE "Ticket Board" SET tags = 'escalated' WHERE id = ?]], t)
  lu.assertEquals(db:value("SELECT org_id FROM ticket_tags WHERE ticket_id = ? AND tag = "
    .. "'escalated'", t), 3)
  ok, msg = pcall(db.query, db, "UPDATE ticket_tags SET account_id = 8 WHERE ticket_id = ? AND "
    .. "tag = 'escalated'", t)
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "ticket_tags: account_id can never change")
  ok, msg = pcall(db.query, db, "INSERT INTO Shipments (TrackingCode, acct, org_id, Carrier, "
    .. "Weight) VALUES ('1ZBAD', 1, 3, 'ups', 1)")
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "Shipments")
  ok, msg = pcall(db.query, db, "UPDATE client_notes SET client_account_id = 2 WHERE "
    .. "client_account_id = 1")
  lu.assertFalse(ok)
  lu.assertStrContains(msg, "client_notes: client_account_id can never change")
  -- the app's audit log keeps its invariant: a tenant implies a workspace
  ok = pcall(db.query, db, "INSERT INTO activity_log (org_id, account_id, verb, at) "
    .. "VALUES (NULL, 1, 'x', 'now')")
  lu.assertFalse(ok, "an audit entry with an account and no organization was accepted")
end

-- 7. The whole rollout, with a checksum of every other column; the views and their triggers
-- still work afterwards.
function TestStorefront:test_07_rollout_keeps_every_other_column()
  local eng, _, n_orphans = S.rollout(lu, A, self.path)
  lu.assertTrue(n_orphans > 0)
  eng:close()
  local db = self.db
  -- the view's INSTEAD OF triggers survived, and an insert through the view, which does not
  -- supply org_id, still works after phase 3: the triggers derive it
  db:query("INSERT INTO open_orders (account_id, OrderNo, Total) VALUES (7, 'SO-AFTER', 5)")
  lu.assertEquals(db:value([[SELECT org_id FROM "order" WHERE OrderNo = 'SO-AFTER']]), 3)
  db:query([[UPDATE open_orders SET Total = 6 WHERE OrderNo = 'SO-AFTER']])
  lu.assertEquals(db:value([[SELECT Total FROM "order" WHERE OrderNo = 'SO-AFTER']]), 6)
  ok = pcall(db.query, db, "INSERT INTO open_orders (account_id, OrderNo, Total) "
    .. "VALUES (901, 'SO-GONE', 5)")
  lu.assertFalse(ok, "an order of an account that does not exist went through the view")
  lu.assertEquals(db:value([[SELECT count(*) FROM "Ticket Board"]]),
    db:value("SELECT count(*) FROM tickets"))
  -- composite foreign keys on the app's own column names
  lu.assertEquals(db:value([[SELECT count(*) FROM pragma_foreign_key_list('Invoices')
    WHERE "table" = 'accounts' AND "from" = 'org_id' AND "to" = 'org_id']]), 1)
  S.differential(lu, A, self.path, REQUESTS // 4, SEED + 1, GEN)
end

-- 8. The matrix on this schema (CHECK, UNIQUE, a membership view), every mutant caught.
function TestStorefront:test_08_matrix_catches_every_mutant()
  S.matrix_with_mutants(lu, A, self.path)
end

-- 9. The command-line tool: lint, resolve on the keyword table and on the text-keyed
-- WITHOUT ROWID family (a key that looks like a number forced to text), the matrix with
-- --mutate.
function TestStorefront:test_09_command_line_tool()
  S.tool_lint_and_matrix(lu, A, self.path)
  local ctx = "resolve --user 1 --workspace 1 --tenant 1 "
  local o = self.db:value([[SELECT id FROM "order" WHERE account_id = 1 AND Status = 'open' LIMIT 1]])
  local rc, out = S.tool(A, self.path, ctx .. "--family Order --path detail --id " .. o)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "200 ok")
  self.db:query("INSERT INTO Shipments (TrackingCode, acct, Carrier, Weight) VALUES ('0042', 1, "
    .. "'ups', 1)")
  rc, out = S.tool(A, self.path, ctx .. "--family Shipment --path detail --id text:0042")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "200 ok")
  -- '0042' sorts first; the next page is offered with a key that keeps its type
  rc, out = S.tool(A, self.path, ctx .. "--family Shipment --path index --limit 1")
  lu.assertEquals(rc, 0, out)
  local after = out:match("%-%-after (%S+)%)")
  lu.assertEquals(after, "text:0042", out)
  rc, out = S.tool(A, self.path, ctx .. "--family Shipment --path index --limit 1 --after "
    .. after)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "200 ok")
  lu.assertNotStrContains(out, "\t0042\t")
end

os.exit(lu.LuaUnit.run())
