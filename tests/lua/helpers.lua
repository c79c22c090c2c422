-- Shared helpers for the LuaUnit suites: temporary rule directories and databases.
local tg = require "tenantguard"

local H = { tg = tg }

H.source_dir = os.getenv("TG_SOURCE_DIR") or "."
H.build_dir = os.getenv("TG_BUILD_DIR") or "build"
H.tool = os.getenv("TG_TOOL") or (H.build_dir .. "/tenantguard")
H.shipped_rules = H.source_dir .. "/rules"

local made = {}

-- A fresh empty directory, removed by H.cleanup().
function H.tmpdir()
  local p = os.tmpname()
  os.remove(p)
  assert(os.execute("mkdir -p '" .. p .. "'"))
  made[#made + 1] = p
  return p
end

function H.cleanup()
  for _, p in ipairs(made) do os.execute("rm -rf '" .. p .. "'") end
  made = {}
end

function H.write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.copy_dir(from, to)
  assert(os.execute("mkdir -p '" .. to .. "' && cp -R '" .. from .. "'/. '" .. to .. "'/"))
end

-- A copy of the shipped rules in a temporary directory (to edit in a test).
function H.shipped_copy()
  local d = H.tmpdir()
  H.copy_dir(H.shipped_rules, d)
  return d
end

-- A small valid rule set: one capability set, roles, one family. Pieces can be replaced:
-- H.rule_dir{ ["families.lua"] = "..." } writes those files over the minimal ones; a value of
-- false drops the file.
H.minimal = {
  ["app.lua"] = [[
app { name = "mini" }
]],
  ["roles.lua"] = [[
capabilities { "thing.view", "thing.edit" }
role "owner" { "*" }
role "viewer" { "thing.view" }
]],
  ["families.lua"] = [[
family "Thing" {
  table = "things",
  primary_surface = "ThingResource",
  search_posture = "not_applicable",
  action_surface_status = "declared",
  paths = {
    index = { capability = "thing.view" },
    detail = { capability = "thing.view" },
    row_action = { capability = "thing.edit" },
  },
}
]],
}

function H.rule_dir(overrides)
  local d = H.tmpdir() .. "/rules"
  assert(os.execute("mkdir -p '" .. d .. "'"))
  local files = {}
  for k, v in pairs(H.minimal) do files[k] = v end
  for k, v in pairs(overrides or {}) do files[k] = v end
  for name, text in pairs(files) do
    if text then H.write(d .. "/" .. name, text) end
  end
  return d
end

-- The findings with a given code.
function H.with_code(findings, code)
  local out = {}
  for _, f in ipairs(findings) do
    if f.code == code then out[#out + 1] = f end
  end
  return out
end

function H.errors(findings)
  local out = {}
  for _, f in ipairs(findings) do
    if f.level == "error" then out[#out + 1] = f end
  end
  return out
end

-- A reference database (before the rollout) at a fresh path.
function H.refdb(rows, path)
  path = path or (H.tmpdir() .. "/ref.db")
  require("refdb").create(path, { rows = rows or 20 })
  return path
end

-- Runs the command-line tool; returns exit code and output (stdout and stderr together).
function H.run_tool(args)
  local cmd = "'" .. H.tool .. "' " .. args .. " 2>&1; echo \"__rc=$?\""
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$"))
  out = out:gsub("__rc=%d+%s*$", "")
  return rc, out
end

return H
