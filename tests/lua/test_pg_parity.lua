-- Parity of the two backends, against a real PostgreSQL server (the ctest fixture's
-- throwaway cluster): the same data in SQLite and in PostgreSQL (copied by pg-load, each
-- application into a schema of its own), the same rules, the same random requests over
-- every path, from every kind of caller. Every decision must be the same on both: status,
-- reason and every row served, value for value. Independently, the PostgreSQL decisions are
-- held to the oracle (tests/lua/oracle.lua, written from the README alone) and to the safety
-- property (nothing outside the route tenant is ever served). Then writes through the
-- context, the same on both. Skipped without TG_PG_URI.
local lu = require "luaunit"
local H = require "helpers"
local O = require "oracle"
local tg = H.tg

local APP, OWNER = os.getenv("TG_PG_URI"), os.getenv("TG_PG_OWNER_URI")
if not APP or not OWNER then
  print("SKIPPED: no PostgreSQL (TG_PG_URI unset)")
  os.exit(77)
end

local SEED = tonumber(os.getenv("TG_PARITY_SEED")) or 4242
local REQUESTS = tonumber(os.getenv("TG_PARITY_REQUESTS")) or 4000

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function in_schema(uri, schema)
  return uri .. (uri:find("?", 1, true) and "&" or "?") .. "options=-csearch_path%3D" .. schema
end

local function run(cmd)
  local p = io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function psql(uri, sql)
  local ok, out = run("PGOPTIONS=-cclient_min_messages=warning psql -X -q -v ON_ERROR_STOP=1 -d "
    .. sh_quote(uri) .. " -c " .. sh_quote(sql))
  assert(ok, "psql: " .. out)
end

-- Copies the SQLite database at path into a fresh schema; the application's URI for it.
local function load(path, schema, extra)
  psql(OWNER, ("DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s; GRANT USAGE ON SCHEMA %s "
    .. "TO tg_app"):format(schema, schema, schema))
  local p = io.popen(("'%s' pg-load --from %s --to %s --grant-to tg_app %s 2>&1"):format(H.tool,
    sh_quote(path), sh_quote(in_schema(OWNER, schema)), extra or ""))
  local out = p:read("a")
  assert(p:close(), "pg-load: " .. out)
  return in_schema(APP, schema)
end

-- A value as one comparable string: type and value (an integer 5 is not the text "5").
local function show(v)
  if v == nil then return "nil" end
  if math.type(v) == "integer" then return "i:" .. v end
  if type(v) == "number" then return ("f:%.15g"):format(v) end
  if type(v) == "string" then return "s:" .. ("%q"):format(v) end
  if type(v) == "boolean" then return "b:" .. tostring(v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys, parts = {}, {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. "=" .. show(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function decision(d)
  if not d then return "nil" end
  return show { status = d.status, reason = d.reason, record = d.record, records = d.records,
    has_more = d.has_more, next_after = d.next_after, id = d.id }
end

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- A key of the request (or its context) that a uuid column refuses: not a lowercase
-- canonical UUID.
local function has_non_uuid(req, u, w, t)
  local function bad(k) return type(k) == "string" and (not k:match(UUID) or k:lower() ~= k) end
  if bad(u) or bad(w) or bad(t) or bad(req.id) or bad(req.owner) or bad(req.after) then
    return true
  end
  for _, k in ipairs(req.ids or {}) do if bad(k) then return true end end
  return false
end

-- The same requests on both engines and the oracle; returns the report. open_opts: more
-- tg.open options for both engines (distributed = true). uuid: the
-- PostgreSQL copy has uuid key columns where SQLite has text, so a request naming a key that
-- is no UUID is refused there with a clear error, where SQLite finds no such row: such
-- requests must raise exactly that on PostgreSQL, every other one must agree.
local function parity(label, lite_path, pg_uri, rules, n, gen_opts, uuid, open_opts)
  math.randomseed(SEED)
  local function open(db)
    local o = { db = db, rules = rules }
    for k, v in pairs(open_opts or {}) do o[k] = v end
    return tg.open(o)
  end
  local lite, pg = open(lite_path), open(pg_uri)
  -- the rules map onto the PostgreSQL catalog as they do onto SQLite's
  for _, f in ipairs(pg:lint()) do
    lu.assertNotEquals(f.level, "error", label .. ": lint on PostgreSQL: " .. f.message)
  end
  local W = O.load_world(tg, lite_path, lite:rules())
  local make = O.generator(W, gen_opts)
  local ctxs = {}
  local function ctx(eng, side, u, w, t)
    local k = side .. O.show(u) .. "/" .. O.show(w) .. "/" .. O.show(t)
    ctxs[k] = ctxs[k] or eng:context { user = u, workspace = w, tenant = t }
    return ctxs[k]
  end
  local R = { diffs = 0, oracle = 0, violations = 0, text = {}, by_status = {}, paths = {} }
  for i = 1, n do
    local req, u, w, t = make()
    -- a raise, or nil and a message (a database error), is an outcome to compare too
    local ok1, d1, e1 = pcall(function() return ctx(lite, "l", u, w, t):resolve(req) end)
    if ok1 and d1 == nil then ok1, d1 = false, e1 end
    local ok2, d2, e2 = pcall(function() return ctx(pg, "p", u, w, t):resolve(req) end)
    if ok2 and d2 == nil then ok2, d2 = false, e2 end
    local a = ok1 and decision(d1) or ("raised " .. tostring(d1):gsub("^.-: ", ""))
    local b = ok2 and decision(d2) or ("raised " .. tostring(d2):gsub("^.-: ", ""))
    R.paths[req.path] = true
    if not ok2 and tostring(d2):find("expected a UUID", 1, true) then
      -- refused before any statement ran; only a request naming such a key may be
      lu.assertTrue(uuid and has_non_uuid(req, u, w, t), "refused: " .. O.show(req))
      R.refused = (R.refused or 0) + 1
      goto next
    end
    R.by_status[tostring(ok2 and d2.status)] = (R.by_status[tostring(ok2 and d2.status)] or 0) + 1
    if a ~= b then
      R.diffs = R.diffs + 1
      if #R.text < 8 then
        R.text[#R.text + 1] = ("#%d ctx %s req %s\n  sqlite     %s\n  postgresql %s"):format(i,
          O.show { user = u, workspace = w, tenant = t }, O.show(req), a:sub(1, 400),
          b:sub(1, 400))
      end
    end
    if ok2 then
      local c = { user = u, workspace = w, tenant = t }
      if O.compare(W, req, O.decide(W, c, req), d2) then R.oracle = R.oracle + 1 end
      R.violations = R.violations + #O.safety(W, c, req, d2)
    end
    ::next::
  end
  lite:close()
  pg:close()
  print(("%s: %d requests, %d differences, %d oracle disagreements, %d violations%s; %s")
    :format(label, n, R.diffs, R.oracle, R.violations,
      uuid and (", %d refused as no UUID"):format(R.refused or 0) or "", O.show(R.by_status)))
  lu.assertEquals(R.diffs, 0, table.concat(R.text, "\n"))
  lu.assertEquals(R.oracle, 0)
  lu.assertEquals(R.violations, 0)
  for _, p in ipairs { "index", "detail", "row_action", "bulk_action", "relation_manager",
    "global_search", "canonical_viewer" } do
    lu.assertTrue(R.paths[p], label .. ": no " .. p .. " request")
  end
  return R
end

TestPgParity = {}
function TestPgParity:tearDown() H.cleanup() end

function TestPgParity:test_reference_integer_keys()
  local path = H.refdb(150)
  parity("reference", path, load(path, "tgp_ref"), H.shipped_rules, REQUESTS,
    { missing_ids = function() return { 0, 151, 999999 } end })
end
-- UUID keys: text in SQLite, uuid columns in PostgreSQL (pg-load --uuid-columns auto)
function TestPgParity:test_reference_uuid_keys()
  local path = H.tmpdir() .. "/text.db"
  local p = io.popen(("'%s' refdb %s --rows 100 --keys text 2>&1"):format(H.tool, sh_quote(path)))
  local out = p:read("a")
  assert(p:close(), out)
  local R = parity("reference, uuid keys", path, load(path, "tgp_uuid"), H.shipped_rules,
    REQUESTS // 2, nil, true)
  lu.assertTrue((R.refused or 0) > 0 and (R.by_status["200"] or 0) > 0)
end

-- 32-bit integer columns (integer, not bigint)
function TestPgParity:test_reference_int4_keys()
  local path = H.refdb(80)
  parity("reference, integer columns", path, load(path, "tgp_int4", "--int-type integer"),
    H.shipped_rules, REQUESTS // 2, { missing_ids = function() return { 0, 81, 2147483647 } end })
end

-- The example applications: their own schemas, keys and rules.
function TestPgParity:test_examples()
  for _, app in ipairs { "helpdesk", "storefront", "ledger" } do
    local path = H.tmpdir() .. "/" .. app .. ".db"
    dofile(H.source_dir .. "/examples/" .. app .. "/data.lua").create(path)
    local uri = load(path, "tgp_" .. app, "--uuid-columns none")
    -- views are the application's own SQL: its PostgreSQL version, where it has one
    local views = H.source_dir .. "/examples/" .. app .. "/views.pg.sql"
    local f = io.open(views)
    if f then
      psql(in_schema(OWNER, "tgp_" .. app), f:read("a"))
      f:close()
    end
    parity(app, path, uri,
      H.source_dir .. "/examples/" .. app .. "/rules",
      REQUESTS // 2)
  end
end

-- Distributed mode (as on Citus: every read by id with a route tenant pins it) on both
-- backends: the reference application, keyed by id alone, whose foreign records are then
-- not_found on both, and the ledger, keyed (tenant_id, id) with ids repeating across tenants.
function TestPgParity:test_distributed_mode()
  local path = H.refdb(100)
  local opts = { distributed = true }
  parity("reference, distributed", path, load(path, "tgp_dist_ref"), H.shipped_rules,
    REQUESTS // 2, { missing_ids = function() return { 0, 101, 999999 } end }, nil, opts)
  path = H.tmpdir() .. "/ledger.db"
  dofile(H.source_dir .. "/examples/ledger/data.lua").create(path)
  local R = parity("ledger, distributed", path, load(path, "tgp_dist_ledger",
    "--uuid-columns none"), H.source_dir .. "/examples/ledger/rules", REQUESTS // 2, nil, nil,
    opts)
  lu.assertTrue((R.by_status["200"] or 0) > 0)
  local pg = tg.open { db = in_schema(APP, "tgp_dist_ledger"), rules = H.source_dir
    .. "/examples/ledger/rules", distributed = true }
  lu.assertTrue(pg:settings().distributed)
  pg:close()
end

-- Bulk actions past one chunk of ids (SQLite checks 64 per statement; PostgreSQL all of
-- them in one array parameter): all in scope, one foreign among many, duplicates, a missing
-- id at the end, text that is no integer.
function TestPgParity:test_large_bulk_actions()
  local path = H.refdb(1200)
  local uri = load(path, "tgp_bulk")
  local lite, pg = tg.open { db = path, rules = H.shipped_rules },
    tg.open { db = uri, rules = H.shipped_rules }
  local db = tg.connect(path, { readonly = true })
  local mine, other = {}, {}
  for _, r in ipairs(db:query("SELECT id, tenant_id FROM policies ORDER BY id")) do
    if r.tenant_id == 1 then mine[#mine + 1] = r.id elseif r.tenant_id == 2 then
      other[#other + 1] = r.id end
  end
  db:close()
  lu.assertTrue(#mine > 70, "too few rows of tenant 1")
  local function with(list, extra)
    local t = {}
    for _, v in ipairs(list) do t[#t + 1] = v end
    for _, v in ipairs(extra) do t[#t + 1] = v end
    return t
  end
  local cases = {
    mine,                                   -- every id in scope: 200 with every row
    with(mine, { other[1] }),               -- one foreign id past the first chunk
    with({ other[2] }, mine),               -- ... in the first
    with(mine, mine),                       -- duplicates
    with(mine, { 999999 }),                 -- a missing id at the end
  }
  -- user 1 owns workspace 1's tenants (policy.delete included)
  local lc = lite:context { user = 1, workspace = 1, tenant = 1 }
  local pc = pg:context { user = 1, workspace = 1, tenant = 1 }
  local want = { "200 ok", "404 foreign_tenant", "404 foreign_tenant", "200 ok", "404 not_found" }
  for i, ids in ipairs(cases) do
    local req = { family = "Policy", path = "bulk_action", ids = ids }
    local d = pc:resolve(req)
    lu.assertEquals(d.status .. " " .. d.reason, want[i], "case " .. i)
    lu.assertEquals(decision(d), decision(lc:resolve(req)), "case " .. i)
  end
  local first = pc:resolve { family = "Policy", path = "bulk_action", ids = mine }
  lu.assertEquals(first.status, 200)
  lu.assertEquals(#first.records, #mine)
  lite:close()
  pg:close()
end

-- Writes through the context: the same statuses and reasons, the same rows afterwards.
function TestPgParity:test_writes()
  local path = H.refdb(60)
  local uri = load(path, "tgp_writes")
  local engines = { tg.open { db = path, rules = H.shipped_rules },
    tg.open { db = uri, rules = H.shipped_rules } }
  local function policy(extra)
    local v = { display_name = "guarded", policy_type = "deviceConfiguration",
      created_at = "2026-06-01 00:00:00" }
    for k, x in pairs(extra or {}) do v[k] = x end
    return v
  end
  local function outcome(d, err, code)
    if d then return show { status = d.status, reason = d.reason } end
    return "refused " .. tostring(code)
  end
  local results = { {}, {} }
  for side, eng in ipairs(engines) do
    local out = results[side]
    local own = eng:context { user = 1, workspace = 1, tenant = 3 }
    local d = own:insert("Policy", policy())
    out[#out + 1] = outcome(d)
    local new_id = d and d.id
    out[#out + 1] = outcome(own:insert("Policy", policy { tenant_id = 2 }))       -- foreign
    out[#out + 1] = outcome(own:insert("Policy", policy { tenant_id = 3 }))       -- its own
    out[#out + 1] = outcome(eng:context { user = 3, workspace = 1, tenant = 1 }
      :insert("Policy", policy()))                                                -- 403
    out[#out + 1] = outcome(eng:context { user = 6, workspace = 1, tenant = 1 }
      :insert("Policy", policy()))                                                -- 404
    if new_id then
      out[#out + 1] = outcome(own:update("Policy", new_id, { display_name = "renamed" }))
      out[#out + 1] = outcome(own:update("Policy", new_id, { tenant_id = 4 }))    -- moves
      out[#out + 1] = outcome(eng:context { user = 1, workspace = 1, tenant = 4 }
        :update("Policy", new_id, { display_name = "theirs" }))                  -- foreign
      local r = own:resolve { family = "Policy", path = "detail", id = new_id }
      out[#out + 1] = show { status = r.status, name = r.record and r.record.display_name,
        tenant = r.record and r.record.tenant_id }
    end
    eng:close()
  end
  lu.assertEquals(#results[2], #results[1])
  lu.assertTrue(#results[1] >= 9, "the insert failed: " .. tostring(results[1][1]))
  lu.assertEquals(results[2], results[1])
end

os.exit(lu.LuaUnit.run())
