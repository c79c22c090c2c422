-- What a packager and a user reporting a bug see: `tenantguard --version` prints the
-- library's version (the project's one version, set in CMakeLists.txt) and, with --rules,
-- the rule version; the project carries a license and a changelog for that version.
-- The install, the CMake package, pkg-config, the rock and the .deb are tested by the shell
-- scripts beside this directory (tests/install_test.sh, tests/package_test.sh).
local lu = require "luaunit"
local H = require "helpers"
local tg = H.tg

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Runs the built tool with the given arguments; returns rc, stdout, stderr.
local function tool(args)
  local parts = {}
  for i, a in ipairs(args) do parts[i] = q(a) end
  local o, e = os.tmpname(), os.tmpname()
  local p = assert(io.popen(("%s %s </dev/null >%s 2>%s; echo $?"):format(q(H.tool),
    table.concat(parts, " "), q(o), q(e))))
  local rc = tonumber((p:read("a"):match("(%d+)%s*$")))
  p:close()
  local out, err = H.read(o), H.read(e)
  os.remove(o)
  os.remove(e)
  return rc, out, err
end

local function project_version()
  local v = H.read(H.source_dir .. "/CMakeLists.txt"):match("project%(tenantguard VERSION ([%d%.]+)")
  assert(v, "no version in CMakeLists.txt's project()")
  return v
end

TestVersion = {}

function TestVersion:tearDown() H.cleanup() end

-- --version and the version command print the library's version, the project's, and exit 0.
function TestVersion:test_version_is_the_project_version()
  local v = project_version()
  lu.assertStrMatches(v, "%d+%.%d+%.%d+")
  lu.assertEquals(tg.VERSION, v, "the library and the project disagree")
  for _, args in ipairs { { "--version" }, { "version" } } do
    local rc, out, err = tool(args)
    lu.assertEquals(rc, 0, table.concat(args, " ") .. "\n" .. out .. err)
    lu.assertEquals(out, "tenantguard " .. v .. "\n")
    lu.assertEquals(err, "")
  end
end

-- With --rules DIR the rule version of DIR follows: the hash eng:version() gives, which
-- changes with the rules.
function TestVersion:test_rules_adds_the_rule_version()
  local copy = H.shipped_copy()
  local eng = tg.open { rules = copy }
  local hash = eng:version()
  eng:close()
  lu.assertStrMatches(hash, "%x+")
  local rc, out, err = tool { "--version", "--rules", copy }
  lu.assertEquals(rc, 0, out .. err)
  lu.assertEquals(out, ("tenantguard %s\nrules %s version %s\n"):format(project_version(), copy,
    hash))
  lu.assertEquals(err, "")
  -- another rule set, another version
  local f = assert(io.open(copy .. "/roles.lua", "ab"))
  f:write("\n-- an edit\n")
  f:close()
  local rc2, out2 = tool { "--version", "--rules=" .. copy }
  lu.assertEquals(rc2, 0, out2)
  local hash2 = out2:match("version (%x+)\n$")
  lu.assertNotNil(hash2, out2)
  lu.assertNotEquals(hash2, hash)
end

-- Rules that are not there or do not load, and stray arguments, are usage errors (exit 2)
-- with nothing on stdout; --help prints the version command's help.
function TestVersion:test_errors_and_help()
  local cases = {
    { { "--version", "--rules", "/nonexistent/rules" }, "no such rules" },
    { { "--version", "extra" }, "unexpected argument 'extra'" },
    { { "--version", "--db", "x.db" }, "unknown option --db" },
    { { "version", "--rules" }, "--rules needs a value" },
  }
  local broken = H.rule_dir { ["roles.lua"] = "capabilities { 42 }\n" }
  cases[#cases + 1] = { { "--version", "--rules", broken }, broken .. "/roles.lua:1" }
  for _, c in ipairs(cases) do
    local what = table.concat(c[1], " ")
    local rc, out, err = tool(c[1])
    lu.assertEquals(rc, 2, what .. "\n" .. out .. err)
    lu.assertEquals(out, "", what .. ": wrote to stdout")
    lu.assertStrContains(err, c[2], false, what)
  end
  for _, args in ipairs { { "--version", "--help" }, { "version", "-h" }, { "help", "version" } } do
    local rc, out, err = tool(args)
    lu.assertEquals(rc, 0, table.concat(args, " "))
    lu.assertEquals(err, "")
    lu.assertStrContains(out, "usage: tenantguard version [--rules DIR]")
    lu.assertStrContains(out, "tenantguard --version")
  end
  local _, out = tool { "--help" }
  lu.assertStrContains(out, "  version ")
end

-- The license and the changelog a package needs, and a changelog entry for this version.
TestProjectFiles = {}

function TestProjectFiles:test_license_is_mit()
  local text = H.read(H.source_dir .. "/LICENSE")
  lu.assertStrContains(text, "MIT License")
  lu.assertStrContains(text, "Copyright (c) 2026 The tenantguard authors")
  lu.assertStrContains(text, "Permission is hereby granted, free of charge")
end

function TestProjectFiles:test_changelog_has_this_version()
  local text = H.read(H.source_dir .. "/CHANGELOG.md")
  lu.assertStrContains(text, "## [Unreleased]")
  local v = project_version()
  local released = text:find("## [" .. v .. "]", 1, true)
  local unreleased = text:find("## [Unreleased] (", 1, true)
  lu.assertTrue(released ~= nil or unreleased ~= nil,
    "CHANGELOG.md has no section for " .. v)
  lu.assertStrContains(text, "## [0.1.0] - ")
end

os.exit(lu.LuaUnit.run())
