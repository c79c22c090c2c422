-- helpdesk: the data generator. Deterministic (its own generator, seeded), about 4,500 rows,
-- and full of rows that must stay invisible: soft-deleted tickets, comments and tenants,
-- archived and retracted articles, other tenants and other workspaces, comments linked
-- across tenants, and orphans (rows of a tenant that was hard-deleted) for the backfill.
--
--   local data = dofile("examples/helpdesk/data.lua")
--   local info = data.create("helpdesk.db")      -- info.users.u1, info.tenants[1], ...
--
-- Workspaces W1..W3 own three tenants each (T1-T3, T4-T6, T7-T9); T3 is soft-deleted.
-- Users (keyed by their identity provider's subject) and their memberships:
--   u1  supervisor of W1 (role from the table: "*"), entitled to T1, T2, T3
--   u2  agent of W1 (table), entitled to T1, and to T2 with the tenant role viewer
--   u3  viewer of W1 (rules and table: the union), entitled to T1
--   u4  member of W1 without a role (NULL), entitled to T1 as agent, to T2 with no role
--   u5  admin of W2 (rules: "*"), entitled to T4, T5, T6
--   u6  member of nothing, holding a stale entitlement to T1
--   u7  "ghost" of W2 (a role nobody declares: grants nothing), entitled to T4
--   u8  agent of W3, entitled to T7, T8; viewer of W1 with no entitlement there
--   u9  lead of W2 (rules and table), entitled to T5
--   u10 admin of W3, entitled to T9 with the narrower tenant role viewer
local M = {}

local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

-- a 64-bit LCG; the high bits are the output
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
    local function hex(k)
      local out = {}
      for i = 1, k do out[i] = ("%x"):format(g.next(16) - 1) end
      return table.concat(out)
    end
    return ("%s-%s-4%s-%s%s-%s"):format(hex(8), hex(4), hex(3), g.pick { "8", "9", "a", "b" },
      hex(3), hex(12))
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

-- The sizes of the tenant-owned tables.
M.ROWS = { tickets = 1200, ticket_comments = 1600, kb_articles = 300, macros = 200,
  ticket_attachments = 500, sla_events = 400 }

local SUBJECTS = { "Printer 100% broken", "VPN_down again", "Ärger mit dem Login",
  "Refund for order", "Password reset", "back\\slash in path", "Mail bounces",
  "Invoice missing", "SSO with Okta", "Cannot upload file", "Laptop won't boot",
  "Weird_under_score", "URGENT: outage", "ärger beim Drucken" }

-- Creates the database at `path` (which must not exist). Returns what the tests need:
-- { workspaces = {W1, W2, W3}, tenants = {T1..T9}, deleted_tenant = T3, users = { u1 = ... },
--   gone_tenants = { ... } (hard-deleted tenants the orphans point at), orphans = { [table] = n } }.
function M.create(path, opts)
  opts = opts or {}
  local tg = require "tenantguard"
  local g = generator(opts.seed or 20260101)
  local db = tg.connect(path)
  db:exec("PRAGMA journal_mode = WAL")
  db:exec("BEGIN")
  db:exec(read(M.schema_path))

  local info = { workspaces = {}, tenants = {}, users = {}, gone_tenants = {}, orphans = {} }
  for w = 1, 3 do
    local id = g.uuid()
    info.workspaces[w] = id
    db:query("INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)", id,
      ("Workspace %d"):format(w), "2025-01-01T00:00:00Z")
  end
  for t = 1, 9 do
    local id = g.uuid()
    info.tenants[t] = id
    db:query("INSERT INTO tenants (id, workspace_id, name, deleted_at) VALUES (?, ?, ?, ?)", id,
      info.workspaces[(t - 1) // 3 + 1], ("Tenant %d"):format(t),
      t == 3 and "2025-06-30T12:00:00Z" or nil)
  end
  info.deleted_tenant = info.tenants[3]
  for _ = 1, 2 do info.gone_tenants[#info.gone_tenants + 1] = g.uuid() end

  for u = 1, 10 do
    local id = ("auth0|%x%x%x"):format(g.next(0xffffff), g.next(0xffffff), u)
    info.users["u" .. u] = id
    db:query("INSERT INTO users (id, email) VALUES (?, ?)", id, ("user%d@example.test"):format(u))
  end
  local U, T, Wk = info.users, info.tenants, info.workspaces
  local function ws_member(u, w, role)
    db:query("INSERT INTO workspace_memberships (id, workspace_id, user_id, role) "
      .. "VALUES (?, ?, ?, ?)", g.uuid(), Wk[w], U[u], role)
  end
  local function entitle(u, t, role)
    db:query("INSERT INTO tenant_memberships (id, tenant_id, user_id, role) VALUES (?, ?, ?, ?)",
      g.uuid(), T[t], U[u], role)
  end
  ws_member("u1", 1, "supervisor"); entitle("u1", 1); entitle("u1", 2); entitle("u1", 3)
  ws_member("u2", 1, "agent"); entitle("u2", 1); entitle("u2", 2, "viewer")
  ws_member("u3", 1, "viewer"); entitle("u3", 1)
  ws_member("u4", 1, nil); entitle("u4", 1, "agent"); entitle("u4", 2)
  ws_member("u5", 2, "admin"); entitle("u5", 4); entitle("u5", 5); entitle("u5", 6)
  entitle("u6", 1)
  ws_member("u7", 2, "ghost"); entitle("u7", 4)
  ws_member("u8", 3, "agent"); entitle("u8", 7); entitle("u8", 8)
  ws_member("u8", 1, "viewer")
  ws_member("u9", 2, "lead"); entitle("u9", 5)
  ws_member("u10", 3, "admin"); entitle("u10", 9, "viewer")

  for _, r in ipairs {
    { "agent", "ticket.view" }, { "agent", "ticket.edit" }, { "agent", "comment.view" },
    { "agent", "comment.edit" }, { "agent", "article.view" }, { "agent", "macro.view" },
    { "viewer", "article.view" }, { "viewer", "macro.view" },
    { "supervisor", "*" },
    { "lead", "macro.view" }, { "lead", "macro.manage" }, { "lead", "article.view" },
  } do
    db:query("INSERT INTO role_capabilities (role, capability) VALUES (?, ?)", r[1], r[2])
  end

  -- the tenant of a new row: mostly a live tenant, some of the soft-deleted one, ~1% orphans
  local function tenant_for(tbl)
    if g.chance(0.012) then
      info.orphans[tbl] = (info.orphans[tbl] or 0) + 1
      return g.pick(info.gone_tenants)
    end
    return T[g.next(9)]
  end
  local function stamp(n) return ("2025-%02d-%02dT%02d:00:00Z"):format(n % 12 + 1, n % 28 + 1,
    n % 24) end

  local tickets, tickets_of = {}, {}
  for n = 1, M.ROWS.tickets do
    local id, t = g.uuid(), tenant_for("tickets")
    tickets[#tickets + 1] = id
    tickets_of[t] = tickets_of[t] or {}
    table.insert(tickets_of[t], id)
    db:query("INSERT INTO tickets (id, tenant_id, subject, requester_email, status, priority, "
      .. "deleted_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", id, t,
      g.pick(SUBJECTS) .. " #" .. n,
      g.chance(0.15) and nil or ("req%d@Customer%d.example"):format(n, g.next(40)),
      g.pick { "open", "open", "pending", "closed" }, g.next(4),
      g.chance(0.12) and stamp(n) or nil, stamp(n))
  end
  for n = 1, M.ROWS.ticket_comments do
    local t = tenant_for("ticket_comments")
    local link
    local x = g.next(100)
    if x <= 70 and tickets_of[t] then link = g.pick(tickets_of[t])   -- its own ticket
    elseif x <= 82 then link = g.pick(tickets)                       -- across tenants
    elseif x <= 92 then link = nil
    else link = g.uuid() end                                         -- a ticket that is gone
    db:query("INSERT INTO ticket_comments (id, tenant_id, ticket_id, body, author_id, "
      .. "deleted_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", g.uuid(), t, link,
      "Comment " .. n, U["u" .. g.next(10)], g.chance(0.1) and stamp(n) or nil, stamp(n))
  end
  for n = 1, M.ROWS.kb_articles do
    db:query("INSERT INTO kb_articles (id, tenant_id, title, status, archived, created_at) "
      .. "VALUES (?, ?, ?, ?, ?, ?)", g.uuid(), tenant_for("kb_articles"), "How to " .. n,
      g.pick { "draft", "published", "published", "retracted" }, g.chance(0.15) and 1 or 0,
      stamp(n))
  end
  for n = 1, M.ROWS.macros do
    db:query("INSERT INTO macros (id, tenant_id, name, actions, created_at) "
      .. "VALUES (?, ?, ?, ?, ?)", g.uuid(), tenant_for("macros"), "Macro " .. n,
      '[{"set":"status"}]', stamp(n))
  end
  for n = 1, M.ROWS.ticket_attachments do
    db:query("INSERT INTO ticket_attachments (id, tenant_id, ticket_id, file_name, bytes, "
      .. "created_at) VALUES (?, ?, ?, ?, ?, ?)", g.uuid(), tenant_for("ticket_attachments"),
      g.pick(tickets), ("file-%d.png"):format(n), g.next(1000000), stamp(n))
  end
  for n = 1, M.ROWS.sla_events do
    db:query("INSERT INTO sla_events (id, tenant_id, ticket_id, kind, at) VALUES (?, ?, ?, ?, ?)",
      g.uuid(), tenant_for("sla_events"), g.pick(tickets),
      g.pick { "first_response", "breach", "resolved" }, stamp(n))
  end
  for n = 1, 200 do
    local t = g.next(10)
    local w = t <= 9 and Wk[(t - 1) // 3 + 1] or Wk[g.next(3)]
    db:query("INSERT INTO csat_surveys (id, workspace_id, tenant_id, score, created_at) "
      .. "VALUES (?, ?, ?, ?, ?)", g.uuid(), w, t <= 9 and T[t] or nil, g.next(5), stamp(n))
  end
  db:exec("COMMIT")
  db:close()
  return info
end

return M
