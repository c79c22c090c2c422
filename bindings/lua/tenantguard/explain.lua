-- tenantguard explain: the body of the command-line tool's `explain` command (scripts/cli.lua
-- registers it). It takes the options of `resolve` and prints every check of the request, in
-- the order the resolver applies them, with what it read and whether it passed; the check
-- that decided the status is marked. The text comes from ctx:explain, which names only keys
-- the caller gave (never a column value of a row that is not the caller's).
local M = {}

M.usage = [[
usage: tenantguard explain --db FILE --user U --workspace W [--tenant T]
                           (--family NAME | --exception NAME) --path PATH
                           [--id K | --ids K1,K2,...] [--owner K] [--query TEXT]
                           [--limit N] [--after K] [--capability CAP] [--rules DIR] [--json]
                           [--distributed on|off|auto]

Explains the decision tenantguard makes for one request (the options of resolve): one line
per check, in the order the resolver applies them, with what it read and whether it passed
(ok, FAIL); '>' marks the check that decided the status. The first line is the decision
and the check that decided it (with --json: status, reason, decided_by, checks, and the
record or records of a 200). Of a row that is not the caller's it says which check refused
it, never a value of it. The explanation is not written to a decision log. Exit 0 when a
decision was made (whatever its status).]]

-- The options, as scripts/cli.lua's parser reads them (the same as resolve's).
M.spec = { db = "text", user = "key", workspace = "key", tenant = "key", family = "text",
  exception = "text", path = "text", id = "key", ids = "keys", owner = "key", query = "text",
  limit = { int = true, min = 1 }, after = "key", capability = "text", rules = "text",
  json = "flag", distributed = "text" }

local MARK = { pass = "ok", fail = "FAIL", skip = "skip" }

-- The human lines of explanation x (ctx:explain's table).
function M.lines(x)
  local out = { ("%d %s (decided by %s)"):format(x.status, x.reason, x.decided_by) }
  for _, c in ipairs(x.checks) do
    out[#out + 1] = ("%s %-16s %-4s  %s"):format(c.decided and ">" or " ", c.step,
      MARK[c.result] or c.result, c.read)
  end
  return out
end

-- The --json document of explanation x: stable keys, lists always lists.
function M.document(x)
  local checks = {}
  for i, c in ipairs(x.checks) do
    checks[i] = { check = c.check, step = c.step, result = c.result, passed = c.passed,
      read = c.read, reason = c.reason, decided = c.decided or false }
  end
  return { status = x.status, reason = x.reason, decided_by = x.decided_by,
    checks = checks, record = x.record,
    records = x.records, has_more = x.has_more, next_after = x.next_after }
end

-- Runs the command. env: { tg =, json =, rules_dir = fn(opts), existing_db = fn(opts),
-- usage_error = fn(msg) } from the tool. Returns the exit code.
function M.run(opts, env)
  for _, need in ipairs { "db", "user", "workspace", "path" } do
    if opts[need] == nil then env.usage_error("--" .. need .. " is required") end
  end
  if not opts.family == not opts.exception then
    env.usage_error("give one of --family NAME or --exception NAME")
  end
  local tg, json = env.tg, env.json
  local eng = tg.open { rules = env.rules_dir(opts), db = env.existing_db(opts),
    distributed = env.distributed(opts) }
  local ctx = eng:context { user = opts.user, workspace = opts.workspace, tenant = opts.tenant }
  local ok, x, err = pcall(ctx.explain, ctx, { family = opts.family,
    exception = opts.exception, path = opts.path, id = opts.id, ids = opts.ids,
    owner = opts.owner, query = opts.query, limit = opts.limit, after = opts.after,
    capability = opts.capability })
  ctx:close()
  eng:close()
  if not ok then error(x, 0) end
  if not x then error(err, 0) end
  if opts.json then
    local doc = M.document(x)
    doc.checks = json.array(doc.checks)
    if doc.records then doc.records = json.array(doc.records) end
    print(json.encode(doc))
  else
    for _, line in ipairs(M.lines(x)) do print(line) end
  end
  return 0
end

return M
