-- tenantguard.man: the tool's man page (roff, man macros) made from the same text as its
-- --help: the command list, each command's usage text, the exit status text.
-- `tenantguard help --man` prints it; the build installs it as tenantguard.1.
--
-- cli = { order = { names }, summary = { name = line }, usage = { name = help text },
--         exit_help = text, default_rules = dir, version = "0.1.0" }
local M = {}

-- Text as roff input: a backslash is \e; every hyphen is \- (options stay typeable when
-- copied; it is how man pages write them); a line starting with . or ' is guarded by \&.
local function esc(s)
  s = s:gsub("\\", "\\e"):gsub("%-", "\\-")
  if s:match("^[.']") then s = "\\&" .. s end
  return s
end

-- One help text as paragraphs: a "usage:" block and indented lines stay as they are
-- (no fill), other lines are filled into paragraphs.
local function body(text, add)
  local fill = true
  local function mode(want)
    if want ~= fill then
      add(want and ".fi" or ".nf")
      fill = want
    end
  end
  local blocks = {}
  for block in (text .. "\n\n"):gmatch("(.-)\n%s*\n") do
    if block:match("%S") then blocks[#blocks + 1] = block end
  end
  for _, block in ipairs(blocks) do
    local synopsis = block:match("^usage:") ~= nil
    add(".PP")
    for line in (block .. "\n"):gmatch("(.-)\n") do
      if synopsis then line = line:gsub("^usage: ", ""):gsub("^       ", "") end
      mode(not synopsis and not line:match("^%s"))
      add(esc(line))
    end
    mode(true)
  end
end

function M.render(cli)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add(('.TH TENANTGUARD 1 "" "tenantguard %s" "User Commands"'):format(esc(cli.version)))
  add(".SH NAME")
  add("tenantguard \\- keep the tenants of a multi\\-tenant database apart")
  add(".SH SYNOPSIS")
  add(".B tenantguard")
  add(".I command")
  add(".RI [ options ]")
  add(".br")
  add(".B tenantguard help")
  add(".I command")
  add(".SH DESCRIPTION")
  add("tenantguard keeps the tenants of a multi\\-tenant database apart, driven by rule")
  add("scripts written in Lua. This tool lints the rules, prints the decision for a request,")
  add("runs the workspace_id rollout and its backfill, and runs the guard\\-scenario matrix.")
  add("Every command prints its own help with")
  add(".BR \"tenantguard help \" \\fIcommand\\fR")
  add("or \\fIcommand\\fR \\-\\-help.")
  add(".SH COMMANDS")
  for _, name in ipairs(cli.order) do
    add(".TP")
    add(".B " .. esc(name))
    add(esc(cli.summary[name] or ""))
  end
  for _, name in ipairs(cli.order) do
    add(".SS " .. esc(name))
    body(cli.usage[name] or "", add)
  end
  add(".SH ENVIRONMENT")
  add(".TP")
  add(".B TENANTGUARD_RULES")
  add("The rules directory of commands given no")
  add(".BR \\-\\-rules ;")
  add("without it, " .. esc(cli.default_rules) .. ".")
  add(".SH \"EXIT STATUS\"")
  body(cli.exit_help:gsub("^exit status: ", ""), add)
  add(".SH \"SEE ALSO\"")
  add(".BR lua (1),")
  add(".BR sqlite3 (1)")
  return table.concat(out, "\n") .. "\n"
end

return M
