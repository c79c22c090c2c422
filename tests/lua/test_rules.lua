-- Loading the shipped rules, reading the rule model, reload, and drift.
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

TestShippedRules = {}

-- The shipped rules describe the first slice of DOMAIN.md: eight families, their paths,
-- three exceptions and four residual tables.
function TestShippedRules:test_loads_first_slice()
  local eng = tg.open { rules = H.shipped_rules }
  local r = eng:rules()
  lu.assertEquals(#r.families, 8)
  local by = {}
  for _, f in ipairs(r.families) do by[f.name] = f end
  lu.assertEquals(by.Policy.table, "policies")
  lu.assertEquals(by.Policy.search_posture, "disabled")
  lu.assertEquals(by.Policy.path_order,
    { "index", "detail", "row_action", "bulk_action", "relation_manager" })
  lu.assertEquals(by.PolicyVersion.paths.relation_manager.owner, "Policy")
  lu.assertEquals(by.PolicyVersion.paths.relation_manager.via, "policy_id")
  lu.assertEquals(by.BackupSchedule.path_order, { "index", "detail", "row_action", "bulk_action" })
  lu.assertEquals(by.RestoreRun.action_surface_status, "baseline_exemption")
  lu.assertStrContains(by.RestoreRun.action_surface_reason, "restore retrofit")
  lu.assertEquals(by.EntraGroup.search_posture, "scoped")
  lu.assertEquals(by.EntraGroup.query.search_rule, "scoped_only")
  lu.assertEquals(by.EntraGroup.path_order,
    { "index", "detail", "global_search", "canonical_viewer" })
  lu.assertEquals(by.EntraGroup.paths.canonical_viewer.scope_anchor, "explicit_record_lookup")
  lu.assertEquals(by.EntraGroup.paths.canonical_viewer.record_lookup_behavior,
    "explicit_exception")
  for _, f in ipairs(r.families) do
    lu.assertTrue(f.owns_tenant_scope)
    for _, p in pairs(f.paths) do
      lu.assertEquals(p.not_entitled_result, 404)
      lu.assertEquals(p.missing_capability_result, 403)
      lu.assertEquals(p.entitlement_rule, "workspace_and_tenant_required")
      lu.assertEquals(p.capability_rule, "capability_after_scope")
    end
  end
  local residual = {}
  for _, x in ipairs(r.residuals) do residual[#residual + 1] = x.table end
  table.sort(residual)
  lu.assertEquals(residual,
    { "backup_items", "entra_role_definitions", "inventory_links", "tenant_permissions" })
  local kinds = {}
  for _, e in ipairs(r.exceptions) do kinds[e.exception_kind] = e end
  lu.assertNotNil(kinds.workspace_admin_canonical_viewer)
  lu.assertNotNil(kinds.workspace_owned_reference_surface)
  lu.assertNotNil(kinds.deferred_family)
  lu.assertEquals(#r.roles.owner, #r.capabilities)
  lu.assertTrue(#r.roles.readonly < #r.roles.operator)
  lu.assertStrMatches(r.version, "%x+")
  lu.assertEquals(#r.version, 16)
  eng:close()
end

-- The shipped rules lint clean against the reference database: no errors, no drift.
function TestShippedRules:test_lint_clean_against_reference_db()
  local db = H.refdb(30)
  local eng = tg.open { rules = H.shipped_rules, db = db }
  lu.assertEquals(eng:lint(), {})
  lu.assertEquals(eng:findings(), {})
  eng:close()
end

-- The version is a content hash: the same files give the same version, any edit a new one.
function TestShippedRules:test_version_is_content_hash()
  local a = tg.open { rules = H.shipped_rules }
  local copy = H.shipped_copy()
  local b = tg.open { rules = copy }
  lu.assertEquals(a:version(), b:version())
  local f = io.open(copy .. "/families.lua", "a")
  f:write("\n-- edited\n")
  f:close()
  lu.assertTrue(b:reload())
  lu.assertNotEquals(b:version(), a:version())
  a:close()
  b:close()
end

-- A closed engine says so instead of crashing; closing twice is harmless.
function TestShippedRules:test_close_twice_and_use_after_close()
  local eng = tg.open { rules = H.shipped_rules }
  eng:close()
  eng:close()
  lu.assertErrorMsgContains("closed", function() eng:rules() end)
  lu.assertStrContains(tostring(eng), "closed")
  do
    local e2 <close> = tg.open { rules = H.shipped_rules }
    lu.assertStrContains(tostring(e2), "tenantguard.Engine")
  end
end

-- The metatable is locked and the engine's methods are not its metamethods.
function TestShippedRules:test_metatable_locked()
  local eng = tg.open { rules = H.shipped_rules }
  lu.assertEquals(getmetatable(eng), "tenantguard.Engine")
  lu.assertNil(eng.__gc)
  eng:close()
end

-- Bad options are programmer errors and raise with a clear message.
function TestShippedRules:test_bad_options()
  lu.assertErrorMsgContains("'rules' is required", tg.open, {})
  lu.assertErrorMsgContains("must be a string", tg.open, { rules = 42 })
  lu.assertErrorMsgContains("cannot read rules", tg.open, { rules = "/nonexistent/dir" })
end

TestReload = {}

function TestReload:tearDown() H.cleanup() end

-- A broken edit leaves the old rules serving, the same version, and an error with file:line.
function TestReload:test_broken_reload_keeps_old_rules()
  local dir = H.shipped_copy()
  local eng = tg.open { rules = dir }
  local v = eng:version()
  local families = H.read(dir .. "/families.lua")
  H.write(dir .. "/families.lua", families:gsub('search_posture = "scoped"',
    'search_posture = "scoped_please"', 1))
  local ok, err, findings = eng:reload()
  lu.assertNil(ok)
  lu.assertStrMatches(err, ".*/families%.lua:%d+: family 'EntraGroup': .*%[bad_value%].*")
  lu.assertEquals(findings[1].code, "bad_value")
  lu.assertEquals(eng:version(), v)
  lu.assertEquals(#eng:rules().families, 8)
  -- a syntax error, too
  H.write(dir .. "/families.lua", families .. "\nfamily \"Broken\" {\n")
  ok, err = eng:reload()
  lu.assertNil(ok)
  lu.assertStrContains(err, "families.lua:")
  lu.assertStrContains(err, "[script_error]")
  lu.assertEquals(eng:version(), v)
  -- fixed: the reload takes
  H.write(dir .. "/families.lua", families .. "\n-- fixed\n")
  lu.assertTrue(eng:reload())
  lu.assertNotEquals(eng:version(), v)
  eng:close()
end

-- lint checks the files on disk now, without touching the serving rules.
function TestReload:test_lint_sees_disk_without_swapping()
  local dir = H.shipped_copy()
  local eng = tg.open { rules = dir }
  local v = eng:version()
  H.write(dir .. "/extra.lua", 'family "Policy" { table = "x" }\n')
  local findings = eng:lint()
  lu.assertTrue(#H.with_code(findings, "duplicate_name") >= 1)
  lu.assertEquals(eng:version(), v)
  eng:close()
end

TestDrift = {}

function TestDrift:tearDown() H.cleanup() end

-- A table with the tenant column that no rule covers is reported as drift, by name.
function TestDrift:test_undeclared_tenant_table_is_drift()
  local db = H.refdb(10)
  local h = tg.connect(db)
  h:exec("CREATE TABLE device_notes (id INTEGER PRIMARY KEY, tenant_id INTEGER, body TEXT)")
  h:exec("CREATE TABLE global_settings (id INTEGER PRIMARY KEY, body TEXT)")
  h:close()
  local findings = tg.check { rules = H.shipped_rules, db = db }
  local drift = H.with_code(findings, "drift")
  lu.assertEquals(#drift, 1)
  lu.assertEquals(drift[1].level, "warning")
  lu.assertStrContains(drift[1].message, "'device_notes'")
  lu.assertEquals(#H.errors(findings), 0)
  -- declaring it as residual resolves the drift
  local dir = H.shipped_copy()
  H.write(dir .. "/notes.lua", [[
residual "DeviceNote" { table = "device_notes", why_not_in_first_slice = "new" }
]])
  lu.assertEquals(#H.with_code(tg.check { rules = dir, db = db }, "drift"), 0)
end

-- A column the rules map but the database lacks is an error that stops the load.
function TestDrift:test_missing_column_refuses_load()
  local db = H.refdb(10)
  local dir = H.shipped_copy()
  local fam = H.read(dir .. "/families.lua")
  H.write(dir .. "/families.lua", (fam:gsub('"display_name", "mail_nickname"',
    '"display_name", "nickname"', 1)))
  local ok, err = pcall(tg.open, { rules = dir, db = db })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "[missing_column]")
  lu.assertStrContains(err, "entra_groups.nickname")
end

os.exit(lu.LuaUnit.run())
