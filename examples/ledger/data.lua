-- ledger: the data generator. Deterministic (its own generator, seeded), about 4,000 rows.
-- Ids are numbered per tenant: invoice 1 exists in every company, with different data, and
-- companies have different numbers of rows, so an id of one company is often missing in
-- another. Rows that must stay invisible: voided invoices, other companies' rows under the
-- same id, other firms, and orphans (the rows of company 99, hard-deleted) for the backfill.
--
--   local data = dofile("examples/ledger/data.lua")
--   local info = data.create("ledger.db")
--
-- Workspaces (firms) 1..3 own tenants (companies) 1-3, 4-5 and 6. Users and their
-- memberships (role in brackets; tenant role NULL = the workspace role):
--   1  partner of firm 1, entitled to 1-3
--   2  accountant of firm 1, entitled to 1, and to 2 as viewer
--   3  viewer of firm 1, entitled to 1
--   4  accountant of firm 2, entitled to 4, 5
--   5  partner of firm 2, entitled to 4
--   6  member of firm 1 without a role, entitled to 3 as accountant, and to 2 (no role)
--   7  member of nothing, entitled to 1 (a stale entitlement)
--   8  accountant of firms 1 and 2, entitled to 2 and 4
--   9  partner of firm 3, entitled to 6
--   10 viewer of firm 1, entitled to 3 as partner
-- Two documents share a UUID across companies (info.shared_documents: one within firm 1,
-- one across firms 1 and 2), and one write-off id is held by companies 2 and 3
-- (info.shared_write_off): a lookup without a route tenant cannot tell them apart.
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
  function g.uuid()
    local h = {}
    for i = 1, 8 do h[i] = ("%04x"):format(g.next(65536) - 1) end
    return ("%s%s-%s-4%s-8%s-%s%s%s"):format(h[1], h[2], h[3], h[4]:sub(2), h[5]:sub(2),
      h[6], h[7], h[8])
  end
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
-- invoices per company; 99 is the hard-deleted one
M.INVOICES = { [1] = 120, [2] = 60, [3] = 30, [4] = 90, [5] = 15, [6] = 40, [99] = 6 }
M.TENANTS = { 1, 2, 3, 4, 5, 6, 99 }
M.WORKSPACE_OF = { [1] = 1, [2] = 1, [3] = 1, [4] = 2, [5] = 2, [6] = 3 }
M.GONE_TENANT = 99
M.SHARED_DOCUMENTS = {
  { id = "5ca1ab1e-0000-4000-8000-000000000001", tenants = { 1, 2 } },   -- within firm 1
  { id = "5ca1ab1e-0000-4000-8000-000000000002", tenants = { 1, 4 } },   -- across firms
}
M.SHARED_WRITE_OFF = { id = 7, tenants = { 2, 3 } }

local NAMES = { "Acme GmbH", "Bäckerei Huber", "Nordwind AG", "café_central", "100% Organic",
  "Müller & Söhne", "back\\slash Ltd", "Zeta Corp", "Alpine Tours", "ACME Retail" }

function M.create(path, opts)
  opts = opts or {}
  local tg = require "tenantguard"
  local g = generator(opts.seed or 4711)
  local db = tg.connect(path)
  db:exec("PRAGMA journal_mode = WAL")
  db:exec("BEGIN")
  db:exec(read(M.schema_path))
  local info = { workspaces = { 1, 2, 3 }, tenants = { 1, 2, 3, 4, 5, 6 },
    gone_tenant = M.GONE_TENANT, orphans = {}, invoices = {}, shared_documents =
    M.SHARED_DOCUMENTS, shared_write_off = M.SHARED_WRITE_OFF }

  for w = 1, 3 do
    db:query("INSERT INTO workspaces (id, name, plan) VALUES (?, ?, ?)", w, "Firm " .. w,
      ({ "firm", "enterprise", "solo" })[w])
  end
  for t = 1, 6 do
    db:query("INSERT INTO tenants (id, workspace_id, name, currency) VALUES (?, ?, ?, ?)", t,
      M.WORKSPACE_OF[t], "Company " .. t, t == 6 and "CHF" or "EUR")
  end
  for u = 1, 10 do
    db:query("INSERT INTO users (id, email) VALUES (?, ?)", u, ("user%d@ledger.test"):format(u))
  end
  local function member(u, w, role)
    db:query("INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (?, ?, ?)",
      w, u, role)
  end
  local function entitle(u, t, role)
    db:query("INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (?, ?, ?)", t, u,
      role)
  end
  member(1, 1, "partner"); entitle(1, 1); entitle(1, 2); entitle(1, 3)
  member(2, 1, "accountant"); entitle(2, 1); entitle(2, 2, "viewer")
  member(3, 1, "viewer"); entitle(3, 1)
  member(4, 2, "accountant"); entitle(4, 4); entitle(4, 5)
  member(5, 2, "partner"); entitle(5, 4)
  member(6, 1, nil); entitle(6, 3, "accountant"); entitle(6, 2)
  entitle(7, 1)
  member(8, 1, "accountant"); member(8, 2, "accountant"); entitle(8, 2); entitle(8, 4)
  member(9, 3, "partner"); entitle(9, 6)
  member(10, 1, "viewer"); entitle(10, 3, "partner")

  local function count(tbl, t)
    if t == M.GONE_TENANT then info.orphans[tbl] = (info.orphans[tbl] or 0) + 1 end
  end
  local write_off = 0
  for _, t in ipairs(M.TENANTS) do
    local n_inv = M.INVOICES[t]
    local n_cust = n_inv // 3 + 3
    for c = 1, n_cust do
      local name = g.pick(NAMES) .. " " .. c
      db:query("INSERT INTO customers (tenant_id, id, name, email, vat_no) VALUES (?, ?, ?, ?, ?)",
        t, c, name, g.chance(0.8) and ("billing%d@c%d.test"):format(c, t) or nil,
        g.chance(0.5) and ("DE%09d"):format(g.next(999999999)) or nil)
      count("customers", t)
    end
    local line, payment = 0, 0
    info.invoices[t] = n_inv
    for i = 1, n_inv do
      local status = g.pick { "draft", "open", "open", "paid", "paid", "void" }
      local total = 0
      local lines = {}
      for _ = 1, g.next(4) do
        line = line + 1
        local qty, unit = g.next(5), g.next(20000)
        total = total + qty * unit
        lines[#lines + 1] = { line, qty, unit }
      end
      db:query("INSERT INTO invoices (tenant_id, id, customer_id, number, status, total_cents, "
        .. "issued_on) VALUES (?, ?, ?, ?, ?, ?, ?)", t, i, g.next(n_cust),
        ("INV-%d-%04d"):format(t, i), status, total, ("2026-%02d-%02d"):format(g.next(12),
        g.next(28)))
      count("invoices", t)
      for _, l in ipairs(lines) do
        db:query("INSERT INTO invoice_lines (tenant_id, id, invoice_id, description, quantity, "
          .. "unit_cents) VALUES (?, ?, ?, ?, ?, ?)", t, l[1], i, "Line " .. l[1], l[2], l[3])
        count("invoice_lines", t)
      end
      if status == "paid" then
        payment = payment + 1
        db:query("INSERT INTO payments (tenant_id, id, invoice_id, amount_cents, method, "
          .. "received_on) VALUES (?, ?, ?, ?, ?, ?)", t, payment, i, math.max(total, 1),
          g.pick { "card", "transfer", "cash" }, "2026-06-30")
        count("payments", t)
      end
      if g.chance(0.3) then
        db:query("INSERT INTO documents (tenant_id, id, invoice_id, filename, kind) "
          .. "VALUES (?, ?, ?, ?, ?)", t, g.uuid(), g.chance(0.8) and i or nil,
          ("scan-%d-%d.pdf"):format(t, i), g.pick { "receipt", "contract", "statement" })
        count("documents", t)
      end
      if t ~= M.GONE_TENANT and status == "open" and g.chance(0.25) then
        write_off = write_off + 1
        if write_off == M.SHARED_WRITE_OFF.id then write_off = write_off + 1 end
        db:query("INSERT INTO write_offs (tenant_id, id, workspace_id, invoice_id, amount_cents, "
          .. "reason) VALUES (?, ?, ?, ?, ?, ?)", t, write_off, M.WORKSPACE_OF[t], i,
          g.next(5000), g.pick { "uncollectible", "goodwill", "rounding" })
      end
    end
  end
  -- the same UUID in two companies (a document imported into both), and one write-off id
  -- held by two companies (from the old system, numbered per company)
  for _, s in ipairs(M.SHARED_DOCUMENTS) do
    for _, t in ipairs(s.tenants) do
      db:query("INSERT INTO documents (tenant_id, id, invoice_id, filename, kind) "
        .. "VALUES (?, ?, 1, ?, 'contract')", t, s.id, ("shared-%d.pdf"):format(t))
    end
  end
  for _, t in ipairs(M.SHARED_WRITE_OFF.tenants) do
    db:query("INSERT INTO write_offs (tenant_id, id, workspace_id, invoice_id, amount_cents, "
      .. "reason) VALUES (?, ?, ?, 1, 100, 'migrated')", t, M.SHARED_WRITE_OFF.id,
      M.WORKSPACE_OF[t])
  end
  -- the app's own audit entries: firm-level ones, company ones already bound, and company
  -- ones from before the rollout with no workspace (the backfill binds them)
  for n = 1, 60 do
    local t = n % 4 ~= 0 and g.next(6) or nil
    db:query("INSERT INTO audit_logs (workspace_id, tenant_id, actor_id, action, subject, "
      .. "created_at) VALUES (?, ?, ?, ?, ?, ?)",
      t and (n % 3 == 0 and nil or M.WORKSPACE_OF[t]) or g.next(3), t, g.next(10),
      g.pick { "invoice.sent", "export", "login" }, "invoice:" .. n, "2026-03-01")
  end
  for n = 1, 5 do
    local t = g.next(6)
    db:query("INSERT INTO operation_runs (workspace_id, tenant_id, type, status, summary, "
      .. "created_at) VALUES (?, ?, ?, ?, ?, ?)", M.WORKSPACE_OF[t], t, "ledger.close",
      "completed", "closed period " .. n, "2026-02-01")
  end
  db:exec("COMMIT")
  db:close()
  return info
end

return M
