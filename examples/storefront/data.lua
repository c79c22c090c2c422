-- storefront: the data generator. Deterministic (its own generator, seeded), about 5,000
-- rows, with rows that must stay invisible: voided orders, other accounts and other
-- organizations, a closed organization, inactive staff, invoices linked to another
-- account's order, and orphans (rows of accounts that were hard-deleted) for the backfill.
--
--   local data = dofile("examples/storefront/data.lua")
--   local info = data.create("storefront.db")
--
-- Organizations 1..4 own accounts 3o-2 .. 3o; organization 4 is closed (Plan 'closed').
-- Staff and their memberships (role in brackets; account role NULL = the org role):
--   1  admin of org 1, entitled to accounts 1-3
--   2  clerk of org 1, entitled to 1, and to 2 as auditor
--   3  auditor of org 1, entitled to 1
--   4  clerk of org 1 but inactive (not a member through active_staff), entitled to 1
--   5  admin of org 2, entitled to 4-6
--   6  'none' of org 2 (a role nobody declares), entitled to 4 as clerk, to 5 with no role
--   7  clerk of org 3, entitled to 7, 8
--   8  admin of org 4 (closed), entitled to 10-12
--   9  member of nothing, entitled to 1
--   10 clerk of org 1 and of org 2, entitled to 3 and 6
local M = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local function generator(seed)
  local s = seed
  local g = {}
  function g.next(n) -- an integer in [1, n]
    s = s * 6364136223846793005 + 1442695040888963407
    return ((s >> 33) % n) + 1
  end
  function g.chance(p) return g.next(1000000) <= p * 1000000 end
  function g.pick(list) return list[g.next(#list)] end
  return g
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

M.schema_path = HERE .. "/schema.sql"
M.rules_dir = HERE .. "/rules"
M.ROWS = { order = 1000, Invoices = 1000, tickets = 800, Shipments = 500, client_notes = 300 }
M.GONE_ACCOUNTS = { 900, 901, 902 }

local TITLES = { "Refund 100% please", "wrong_size", "Lieferung fehlt", "LIEFERUNG", "Damaged box",
  "Need invoice copy", "back\\order", "Late delivery", "Änderung der Adresse", "promo_code" }

function M.create(path, opts)
  opts = opts or {}
  local tg = require "tenantguard"
  local g = generator(opts.seed or 777)
  local db = tg.connect(path)
  db:exec("PRAGMA journal_mode = WAL")
  db:exec("BEGIN")
  db:exec(read(M.schema_path))
  local info = { orgs = { 1, 2, 3, 4 }, closed_org = 4, orphans = {} }

  for o = 1, 4 do
    db:query('INSERT INTO Organizations (OrgId, Name, Plan) VALUES (?, ?, ?)', o,
      "Org " .. o, ({ "free", "team", "enterprise", "closed" })[o])
    for a = 3 * o - 2, 3 * o do
      db:query("INSERT INTO accounts (id, org_id, Slug, status) VALUES (?, ?, ?, ?)", a, o,
        "acct-" .. a, a == 5 and "suspended" or "active")
    end
  end
  for s = 1, 10 do
    db:query("INSERT INTO staff (id, email) VALUES (?, ?)", s, ("staff%d@shop.test"):format(s))
  end
  local badge = 0
  local function member(s, o, role, active)
    badge = badge + 1
    db:query("INSERT INTO org_staff (org_id, staff_id, role, badge, active) VALUES (?, ?, ?, ?, ?)",
      o, s, role, ("B-%04d"):format(badge), active == false and 0 or 1)
  end
  local function entitle(s, a, role)
    badge = badge + 1
    db:query("INSERT INTO account_grants (acct, staff_id, role, grant_code) VALUES (?, ?, ?, ?)",
      a, s, role, ("G-%04d"):format(badge))
  end
  member(1, 1, "admin"); entitle(1, 1); entitle(1, 2); entitle(1, 3)
  member(2, 1, "clerk"); entitle(2, 1); entitle(2, 2, "auditor")
  member(3, 1, "auditor"); entitle(3, 1)
  member(4, 1, "clerk", false); entitle(4, 1)
  member(5, 2, "admin"); entitle(5, 4); entitle(5, 5); entitle(5, 6)
  member(6, 2, "none"); entitle(6, 4, "clerk"); entitle(6, 5)
  member(7, 3, "clerk"); entitle(7, 7); entitle(7, 8)
  member(8, 4, "admin"); entitle(8, 10); entitle(8, 11); entitle(8, 12)
  entitle(9, 1)
  member(10, 1, "clerk"); member(10, 2, "clerk"); entitle(10, 3); entitle(10, 6)

  local function account_for(tbl)
    if g.chance(0.012) then
      info.orphans[tbl] = (info.orphans[tbl] or 0) + 1
      return g.pick(M.GONE_ACCOUNTS)
    end
    return g.next(12)
  end

  local orders_of = {}
  for n = 1, M.ROWS.order do
    local a = account_for("order")
    db:query('INSERT INTO "order" (id, account_id, OrderNo, Status, Total) VALUES (?, ?, ?, ?, ?)',
      n, a, ("SO-%05d"):format(n), g.pick { "open", "open", "paid", "paid", "void" }, g.next(50000))
    orders_of[a] = orders_of[a] or {}
    table.insert(orders_of[a], n)
  end
  for n = 1, M.ROWS.Invoices do
    local a = account_for("Invoices")
    local x, o = g.next(100), nil
    if x <= 70 and orders_of[a] then o = g.pick(orders_of[a])
    elseif x <= 82 then o = g.next(M.ROWS.order)                 -- another account's order
    elseif x <= 95 then o = nil
    else o = M.ROWS.order + g.next(100) end                      -- an order that is gone
    db:query("INSERT INTO Invoices (InvoiceId, acct, order_id, Number, Amount, Currency) "
      .. "VALUES (?, ?, ?, ?, ?, ?)", 10000 + n * 3, a, o, ("INV-%05d"):format(n),
      g.next(1000000) - 1, g.pick { "EUR", "USD", "CHF" })
  end
  for n = 1, M.ROWS.tickets do
    local a = account_for("tickets")
    db:query("INSERT INTO tickets (id, account_id, Title, Priority, Code) VALUES (?, ?, ?, ?, ?)",
      n, a, g.pick(TITLES) .. " " .. n, g.next(4), ("T-%d-%x"):format(n, g.next(4096)))
    for _ = 1, g.next(3) - 1 do
      db:query("INSERT OR IGNORE INTO ticket_tags (ticket_id, tag, account_id) VALUES (?, ?, ?)",
        n, g.pick { "vip", "bug", "refund", "late", "b2b" }, a)
    end
  end
  for n = 1, M.ROWS.Shipments do
    db:query("INSERT INTO Shipments (TrackingCode, acct, Carrier, Weight) VALUES (?, ?, ?, ?)",
      ("1Z%08X"):format(g.next(0x7fffffff)) .. n, account_for("Shipments"),
      g.pick { "ups", "dhl", "fedex" }, g.next(30000))
  end
  for n = 1, M.ROWS.client_notes do
    db:query("INSERT INTO client_notes (client_account_id, body) VALUES (?, ?)",
      account_for("client_notes"), "Note " .. n)
  end
  for n = 1, 120 do
    local a = g.next(12)
    db:query("INSERT INTO refund_requests (RefundId, org_id, account_id, Reference, Reason, "
      .. "Amount) VALUES (?, ?, ?, ?, ?, ?)", 500 + 7 * n, (a - 1) // 3 + 1,
      n % 10 == 0 and nil or a, ("RF-%05d"):format(n),
      g.pick { "damaged", "late", "wrong item" }, g.next(20000))
  end
  -- the app's own audit entries: org-level ones, and account ones already bound
  for n = 1, 60 do
    local a = n % 3 == 0 and nil or g.next(12)
    db:query("INSERT INTO activity_log (org_id, account_id, verb, target, at) VALUES (?, ?, ?, ?, ?)",
      a and (a - 1) // 3 + 1 or g.next(4), a, g.pick { "login", "export", "refund" },
      "order:" .. n, "2025-03-01")
  end
  db:exec("COMMIT")
  db:close()
  return info
end

return M
