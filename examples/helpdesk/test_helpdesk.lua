-- helpdesk, the whole story: an application keyed by text UUIDs everywhere (records, users,
-- workspaces, tenants), with soft deletes on its records and tenants, roles granted by its
-- own role_capabilities table, and no operation-run or audit table of its own.
--
-- Each step of the story is its own test: lint clean; the differential test against the
-- independent oracle, before and after the rollout; the rows that must stay invisible;
-- roles from the database; text keys; writes through the context and raw SQL against the
-- triggers; the whole rollout with a checksum of every other column; the matrix with every
-- mutant.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = HERE .. "/../?.lua;" .. package.path

local lu = require "luaunit"
local H = require "helpers"
local S = require "story"
local tg = H.tg

local A = S.app(HERE)
local SEED = tonumber(os.getenv("TG_DIFF_SEED")) or 4242
local REQUESTS = tonumber(os.getenv("TG_DIFF_REQUESTS")) or 20000

-- strangers and ghosts the generator draws now and then
local GEN = {
  users = { "auth0|nobody", "" },
  workspaces = { "00000000-0000-4000-8000-00000000dead" },
  tenants = { "00000000-0000-4000-8000-00000000beef" },
  searches = { "%", "_", "\\", "100%", "vpn_", "VPN_DOWN", "ärger", "ÄRGER", "back\\",
    "urgent", "customer1", "@", "", "#1", "zzz", "_under_" },
}

local function one_id(db, sql, ...)
  local id = db:value(sql, ...)
  assert(id ~= nil, "no row for: " .. sql)
  return id
end

TestHelpdesk = {}

function TestHelpdesk:setUp()
  self.path, self.info = S.fresh(A)
  self.db = tg.connect(self.path)
end

function TestHelpdesk:tearDown()
  if self.eng then self.eng:close() self.eng = nil end
  self.db:close()
  H.cleanup()
end

function TestHelpdesk:ctx(u, w, t)
  self.eng = self.eng or S.open(A, self.path)
  local I = self.info
  return self.eng:context { user = I.users[u], workspace = I.workspaces[w],
    tenant = t and I.tenants[t] or nil }
end

-- 1. The rules describe the schema as it is: no finding at all, drift included; and the
-- app has no operation-run or audit table, which is fine.
function TestHelpdesk:test_01_lint_clean_against_the_database()
  lu.assertEquals(self.db:value("SELECT count(*) FROM sqlite_schema WHERE name IN "
    .. "('operation_runs', 'audit_logs')"), 0)
  S.assert_lint_clean(lu, A, self.path)
end

-- 2. Random requests over every path agree with the oracle, and nothing leaks.
function TestHelpdesk:test_02_differential_against_the_oracle()
  local R, W = S.differential(lu, A, self.path, REQUESTS, SEED, GEN)
  -- the draw reaches the filtered rows: soft-deleted tickets exist in tenants served
  lu.assertTrue((R.by_reason.not_found or 0) > 0)
  lu.assertTrue((R.by_reason.tenant_not_in_workspace or 0) > 0)
  lu.assertIsString(W.families.Ticket.ids[1])
end

-- 3. The rows that must stay invisible: soft-deleted, archived, retracted, of a
-- soft-deleted tenant, of another tenant or workspace.
function TestHelpdesk:test_03_invisible_rows()
  local db, T = self.db, self.info.tenants
  local ctx = self:ctx("u1", 1, 1) -- supervisor ("*" from the table)
  local deleted = one_id(db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NOT "
    .. "NULL", T[1])
  local live = one_id(db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NULL",
    T[1])
  local d = ctx:resolve { family = "Ticket", path = "detail", id = live }
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(d.record.id, live)
  for _, path in ipairs { "detail", "row_action" } do
    d = ctx:resolve { family = "Ticket", path = path, id = deleted }
    lu.assertEquals({ d.status, d.reason, d.record }, { 404, "not_found", nil }, path)
  end
  d = ctx:resolve { family = "Ticket", path = "bulk_action", ids = { live, deleted } }
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  -- the index pages through every live ticket of T1, never a deleted one, never twice
  local want = db:value("SELECT count(*) FROM tickets WHERE tenant_id = ? AND deleted_at IS NULL",
    T[1])
  local seen, n, after = {}, 0, nil
  repeat
    d = ctx:resolve { family = "Ticket", path = "index", limit = 7, after = after }
    lu.assertEquals(d.status, 200)
    for _, r in ipairs(d.records) do
      lu.assertNil(seen[r.id], "index repeated " .. r.id)
      lu.assertNil(r.deleted_at, "index listed a deleted ticket")
      lu.assertEquals(r.tenant_id, T[1])
      seen[r.id] = true
      n = n + 1
    end
    lu.assertTrue(not d.has_more or type(d.next_after) == "string")
    after = d.next_after
  until not d.has_more
  lu.assertEquals(n, want)
  -- search never finds a deleted ticket
  local subj = db:value("SELECT subject FROM tickets WHERE id = ?", deleted)
  d = ctx:resolve { family = "Ticket", path = "global_search", query = subj }
  lu.assertEquals(d.status, 200)
  for _, r in ipairs(d.records) do lu.assertNotEquals(r.id, deleted) end
  -- a deleted comment under a live ticket: not in its thread, 404 by id
  local c = db:query([[SELECT c.id, c.ticket_id FROM ticket_comments c JOIN tickets t
    ON t.id = c.ticket_id AND t.tenant_id = c.tenant_id AND t.deleted_at IS NULL
    WHERE c.tenant_id = ? AND c.deleted_at IS NOT NULL LIMIT 1]], T[1])[1]
  if c then
    d = ctx:resolve { family = "Comment", path = "relation_manager", owner = c.ticket_id,
      id = c.id }
    lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
    d = ctx:resolve { family = "Comment", path = "relation_manager", owner = c.ticket_id,
      limit = 200 }
    lu.assertEquals(d.status, 200)
    for _, r in ipairs(d.records) do lu.assertNotEquals(r.id, c.id) end
  end
  -- the thread of a deleted ticket: the owner is gone
  d = ctx:resolve { family = "Comment", path = "relation_manager", owner = deleted }
  lu.assertEquals({ d.status, d.reason }, { 404, "owner_not_found" })
  -- archived or retracted articles, also through a shared link without a route tenant
  local viewer = self:ctx("u1", 1)
  for _, sql in ipairs { "archived = 1", "status = 'retracted'" } do
    local a = one_id(db, "SELECT id FROM kb_articles WHERE tenant_id = ? AND " .. sql, T[1])
    d = viewer:resolve { family = "Article", path = "canonical_viewer", id = a }
    lu.assertEquals({ d.status, d.reason }, { 404, "not_found" }, sql)
  end
  -- the soft-deleted tenant T3: u1 is entitled to it, yet it is no route tenant, and none
  -- of its records is served through a shared link
  d = self:ctx("u1", 1, 3):resolve { family = "Ticket", path = "index" }
  lu.assertEquals({ d.status, d.reason }, { 404, "tenant_not_in_workspace" })
  local art = one_id(db, "SELECT id FROM kb_articles WHERE tenant_id = ? AND archived = 0 AND "
    .. "status = 'published'", T[3])
  d = viewer:resolve { family = "Article", path = "canonical_viewer", id = art }
  lu.assertEquals(d.status, 404)
  lu.assertNil(d.record)
  -- another tenant's and another workspace's ticket
  for t, reason in pairs { [2] = "foreign_tenant", [4] = "foreign_workspace" } do
    local other = one_id(db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NULL",
      T[t])
    d = ctx:resolve { family = "Ticket", path = "detail", id = other }
    lu.assertEquals({ d.status, d.reason }, { 404, reason })
  end
end

-- 4. Roles come from role_capabilities as well as the rule files.
function TestHelpdesk:test_04_roles_from_the_database()
  local db, T = self.db, self.info.tenants
  local function ticket(t)
    return one_id(db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NULL", T[t])
  end
  local function macro(t) return one_id(db, "SELECT id FROM macros WHERE tenant_id = ?", T[t]) end
  local function status(u, w, t, req)
    local d = self:ctx(u, w, t):resolve(req)
    return d.status
  end
  -- agent (table only): views and edits tickets, cannot delete them
  lu.assertEquals(status("u2", 1, 1, { family = "Ticket", path = "row_action", id = ticket(1) }),
    200)
  lu.assertEquals(status("u2", 1, 1, { family = "Ticket", path = "bulk_action",
    ids = { ticket(1) } }), 403)
  -- agent narrowed to viewer in T2: views, no edit
  lu.assertEquals(status("u2", 1, 2, { family = "Ticket", path = "detail", id = ticket(2) }), 200)
  lu.assertEquals(status("u2", 1, 2, { family = "Ticket", path = "row_action", id = ticket(2) }),
    403)
  -- viewer is in both: ticket.view from the rule file, macro.view from the table
  lu.assertEquals(status("u3", 1, 1, { family = "Ticket", path = "detail", id = ticket(1) }), 200)
  lu.assertEquals(status("u3", 1, 1, { family = "Macro", path = "detail", id = macro(1) }), 200)
  lu.assertEquals(status("u3", 1, 1, { family = "Macro", path = "row_action", id = macro(1) }),
    403)
  -- a membership without a role grants nothing; its tenant role does
  lu.assertEquals(status("u4", 1, 2, { family = "Ticket", path = "detail", id = ticket(2) }), 403)
  lu.assertEquals(status("u4", 1, 1, { family = "Ticket", path = "row_action", id = ticket(1) }),
    200)
  -- supervisor is "*" in the table: everything
  lu.assertEquals(status("u1", 1, 1, { family = "Ticket", path = "bulk_action",
    ids = { ticket(1) } }), 200)
  -- a role nobody declares grants nothing
  lu.assertEquals(status("u7", 2, 4, { family = "Ticket", path = "detail", id = ticket(4) }), 403)
  -- lead: ticket.delete from the rules, macro.manage from the table
  lu.assertEquals(status("u9", 2, 5, { family = "Ticket", path = "bulk_action",
    ids = { ticket(5) } }), 200)
  lu.assertEquals(status("u9", 2, 5, { family = "Macro", path = "row_action", id = macro(5) }),
    200)

  -- the table is read at reload: a new grant applies to new contexts
  db:query("INSERT INTO role_capabilities (role, capability) VALUES ('agent', 'ticket.delete')")
  lu.assertTrue(self.eng:reload())
  lu.assertEquals(status("u2", 1, 1, { family = "Ticket", path = "bulk_action",
    ids = { ticket(1) } }), 200)
  -- an unknown capability in the table: reload refuses, the old rules keep serving
  db:query("INSERT INTO role_capabilities (role, capability) VALUES ('agent', 'ticket.nuke')")
  local ok, err = self.eng:reload()
  lu.assertTrue(not ok, "reload accepted an unknown capability")
  lu.assertStrContains(tostring(err), "ticket.nuke")
  lu.assertEquals(status("u2", 1, 1, { family = "Ticket", path = "bulk_action",
    ids = { ticket(1) } }), 200)
  local findings = tg.check { rules = A.rules, db = self.path }
  local unknown = H.with_code(findings, "unknown_capability")
  lu.assertEquals(#unknown, 1, S.describe(findings))
  lu.assertStrContains(unknown[1].message, "agent")
  lu.assertStrContains(unknown[1].message, "ticket.nuke")
  lu.assertErrorMsgContains("ticket.nuke", S.open, A, self.path)
end

-- 5. Keys are text everywhere; an integer where a text key belongs raises before deciding.
function TestHelpdesk:test_05_text_keys()
  local ctx = self:ctx("u1", 1, 1)
  lu.assertErrorMsgContains("expected a text key", ctx.resolve, ctx,
    { family = "Ticket", path = "detail", id = 42 })
  lu.assertErrorMsgContains("expected a text key", ctx.resolve, ctx,
    { family = "Ticket", path = "bulk_action", ids = { "x", 7 } })
  -- a text id that only looks like a number is a text id
  local d = ctx:resolve { family = "Ticket", path = "detail", id = "42" }
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  -- duplicates collapse by value
  local id = one_id(self.db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NULL",
    self.info.tenants[1])
  d = ctx:resolve { family = "Ticket", path = "bulk_action", ids = { id, id, id } }
  lu.assertEquals(d.status, 200)
  lu.assertEquals(#d.records, 1)
  -- the decision log keeps the keys' type
  local events = {}
  self.eng:set_decision_log(function(ev) events[#events + 1] = ev end)
  self:ctx("u1", 1, 1):resolve { family = "Ticket", path = "detail", id = id }
  self.eng:set_decision_log(nil)
  lu.assertEquals(#events, 1)
  lu.assertEquals(events[1].user, self.info.users.u1)
  lu.assertEquals(events[1].workspace, self.info.workspaces[1])
  lu.assertEquals(events[1].tenant, self.info.tenants[1])
end

-- 6. Writes through the context: the workspace is derived, a soft-deleted row is not there,
-- the tenant never changes.
function TestHelpdesk:test_06_writes_through_the_context()
  local eng = S.open(A, self.path)
  S.phase(lu, eng, "add_columns")
  S.phase(lu, eng, "enforce_writes")
  eng:close()
  local db, T, Wk = self.db, self.info.tenants, self.info.workspaces
  local ctx = self:ctx("u2", 1, 1) -- agent: ticket.edit
  local new = "0b9c1d2e-0000-4000-8000-00000000a001"
  local d = ctx:insert("Ticket", { id = new, tenant_id = T[1], subject = "Written by ctx",
    created_at = "2026-01-01T00:00:00Z" })
  lu.assertEquals({ d.status, d.reason }, { 200, "ok" })
  lu.assertEquals(db:value("SELECT workspace_id FROM tickets WHERE id = ?", new), Wk[1])
  d = ctx:update("Ticket", new, { subject = "Edited by ctx" })
  lu.assertEquals(d.status, 200)
  lu.assertEquals(db:value("SELECT subject FROM tickets WHERE id = ?", new), "Edited by ctx")
  -- a workspace that disagrees, a tenant that is not the context's, a tenant change
  local n = db:value("SELECT count(*) FROM tickets")
  local ok, msg = ctx:insert("Ticket", { id = new .. "x", tenant_id = T[1], workspace_id = Wk[2],
    subject = "x", created_at = "2026-01-01T00:00:00Z" })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(msg), "tickets")
  ok = ctx:insert("Ticket", { id = new .. "y", tenant_id = T[2], subject = "x",
    created_at = "2026-01-01T00:00:00Z" })
  lu.assertNil(ok)
  lu.assertEquals(db:value("SELECT count(*) FROM tickets"), n)
  ok, msg = ctx:update("Ticket", new, { tenant_id = T[2] })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(msg), "tenant_id")
  -- a soft-deleted ticket cannot be updated: it is not there
  local deleted = one_id(db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NOT "
    .. "NULL", T[1])
  local before = db:value("SELECT subject FROM tickets WHERE id = ?", deleted)
  d = ctx:update("Ticket", deleted, { subject = "resurrected" })
  lu.assertEquals({ d.status, d.reason }, { 404, "not_found" })
  lu.assertEquals(db:value("SELECT subject FROM tickets WHERE id = ?", deleted), before)
  -- a viewer in T2 cannot write there
  d = self:ctx("u2", 1, 2):update("Ticket", one_id(db, "SELECT id FROM tickets WHERE "
    .. "tenant_id = ? AND deleted_at IS NULL", T[2]), { subject = "no" })
  lu.assertEquals({ d.status, d.reason }, { 403, "missing_capability" })
end

-- 7. Raw SQL writes meet the triggers: derived workspace, mismatches and tenant changes
-- abort with a message naming the table, the column and the rule.
function TestHelpdesk:test_07_raw_sql_writes_against_the_triggers()
  local eng = S.open(A, self.path)
  S.phase(lu, eng, "add_columns")
  S.phase(lu, eng, "enforce_writes")
  eng:close()
  local db, T, Wk = self.db, self.info.tenants, self.info.workspaces
  db:query("INSERT INTO macros (id, tenant_id, name, created_at) VALUES (?, ?, ?, ?)",
    "raw-1", T[5], "raw", "2026-01-01")
  lu.assertEquals(db:value("SELECT workspace_id FROM macros WHERE id = 'raw-1'"), Wk[2])
  local function aborts(what, parts, sql, ...)
    local ok, err = pcall(db.query, db, sql, ...)
    lu.assertFalse(ok, what .. ": accepted")
    for _, p in ipairs(parts) do lu.assertStrContains(err, p, false, what) end
  end
  aborts("wrong workspace", { "ticket_comments", "[" }, "INSERT INTO ticket_comments (id, "
    .. "tenant_id, workspace_id, body, created_at) VALUES ('raw-2', ?, ?, 'x', 'now')", T[1], Wk[3])
  aborts("unknown tenant", { "sla_events", "[" }, "INSERT INTO sla_events (id, tenant_id, kind, at) "
    .. "VALUES ('raw-3', 'no-such-tenant', 'x', 'now')")
  aborts("tenant change", { "tickets", "tenant_id can never change", "[tenant_immutable]" },
    "UPDATE tickets SET tenant_id = ? WHERE id = (SELECT id FROM tickets WHERE tenant_id = ? "
    .. "LIMIT 1)", T[2], T[1])
  aborts("workspace change", { "kb_articles", "[" }, "UPDATE kb_articles SET workspace_id = ? "
    .. "WHERE tenant_id = ?", Wk[2], T[1])
  -- soft deleting is an ordinary update
  db:query("UPDATE tickets SET deleted_at = 'now' WHERE id = (SELECT id FROM tickets WHERE "
    .. "tenant_id = ? AND deleted_at IS NULL LIMIT 1)", T[1])
end

-- 8. The whole rollout, with a checksum of every other column before and after.
function TestHelpdesk:test_08_rollout_keeps_every_other_column()
  local eng, _, n_orphans = S.rollout(lu, A, self.path)
  lu.assertTrue(n_orphans > 0)
  -- tenantguard kept its own run and audit tables, the app got none
  lu.assertEquals(self.db:value("SELECT count(*) FROM sqlite_schema WHERE name IN "
    .. "('operation_runs', 'audit_logs')"), 0)
  lu.assertTrue(self.db:value("SELECT count(*) FROM tenantguard_runs") > 0)
  lu.assertTrue(self.db:value("SELECT count(*) FROM tenantguard_audit") > 0)
  eng:close()
  -- and decisions after the rollout still agree with the oracle
  S.differential(lu, A, self.path, REQUESTS // 4, SEED + 1, GEN)
end

-- 9. The matrix on this schema, and every mutant caught.
function TestHelpdesk:test_09_matrix_catches_every_mutant()
  S.matrix_with_mutants(lu, A, self.path)
end

-- 10. The command-line tool on text keys: lint, resolve (keys given as text, paging by a text
-- key), the matrix with --mutate.
function TestHelpdesk:test_10_command_line_tool()
  S.tool_lint_and_matrix(lu, A, self.path)
  local I = self.info
  local ctx = ("resolve --user %s --workspace %s --tenant %s "):format(S.sh(I.users.u1),
    I.workspaces[1], I.tenants[1])
  local id = one_id(self.db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at IS NULL",
    I.tenants[1])
  local rc, out = S.tool(A, self.path, ctx .. "--family Ticket --path detail --id " .. id)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "200 ok")
  lu.assertStrContains(out, id)
  rc, out = S.tool(A, self.path, ctx .. "--family Ticket --path index --limit 2")
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "200 ok")
  local after = out:match("%-%-after (%S+)%)")
  lu.assertNotNil(after, "no next page offered:\n" .. out)
  rc, out = S.tool(A, self.path, ctx .. "--family Ticket --path index --limit 2 --after " .. after)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "200 ok")
  -- a soft-deleted ticket, by the CLI too
  local deleted = one_id(self.db, "SELECT id FROM tickets WHERE tenant_id = ? AND deleted_at "
    .. "IS NOT NULL", I.tenants[1])
  rc, out = S.tool(A, self.path, ctx .. "--family Ticket --path detail --id " .. deleted)
  lu.assertEquals(rc, 0, out)
  lu.assertStrContains(out, "404 not_found")
end

os.exit(lu.LuaUnit.run())
