-- tenantguard.completion: shell completion scripts for the command-line tool, made from its
-- own command table (`tenantguard completion bash|zsh` prints one). Nothing is typed twice:
-- a command or option added to scripts/cli.lua is completed once the script is made again
-- (the build makes the installed ones).
--
-- cli = { order = { command names }, summary = { name = one line }, specs = { name = the
-- option spec given to command() }, positionals = { name = { values } }, option_values =
-- { option name = { values } } }
local M = {}

-- Options whose value is a directory or a file name (completed as such); the values of
-- other options are completed from cli.option_values when listed there, else not at all.
local DIR_OPTIONS = { rules = true, dir = true }
local FILE_OPTIONS = { db = true, junit = true, html = true, log = true, out = true,
  output = true, file = true }

-- The commands, then for each its options sorted: { name =, options = { "--x", ... },
-- takes = { ["--x"] = "file" | "dir" | "value" } }.
local function table_of(cli)
  local cmds = {}
  for _, name in ipairs(cli.order) do
    local spec = cli.specs[name] or {}
    local opts, takes = { "--help" }, {}
    for k, kind in pairs(spec) do
      if type(k) == "string" then
        local o = "--" .. k
        opts[#opts + 1] = o
        if kind ~= "flag" then
          takes[o] = DIR_OPTIONS[k] and "dir" or FILE_OPTIONS[k] and "file" or "value"
        end
      end
    end
    table.sort(opts)
    cmds[#cmds + 1] = { name = name, options = opts, takes = takes,
      summary = cli.summary[name] or "", values = (cli.positionals or {})[name] }
  end
  return cmds
end

local function names_with(cmd, what)
  local out = {}
  for _, o in ipairs(cmd.options) do
    if cmd.takes[o] == what then out[#out + 1] = o end
  end
  return table.concat(out, " ")
end

-- A bash word list in single quotes (names are [%w_-]: nothing to escape, but be sure).
local function sq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.bash(cli)
  local cmds = table_of(cli)
  local names = {}
  for i, c in ipairs(cmds) do names[i] = c.name end
  names[#names + 1] = "help"
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("# bash completion for tenantguard (made by `tenantguard completion bash`; do not edit)")
  add("_tenantguard() {")
  add("    local cur=${COMP_WORDS[COMP_CWORD]} prev= opts= files= dirs= takes= values= cmd")
  add("    (( COMP_CWORD > 0 )) && prev=${COMP_WORDS[COMP_CWORD-1]}")
  add("    # --opt=value: bash splits the word at '='")
  add("    if [[ $cur == = ]]; then cur=; prev=${COMP_WORDS[COMP_CWORD-1]}")
  add("    elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then prev=${COMP_WORDS[COMP_CWORD-2]}; fi")
  add("    COMPREPLY=()")
  add("    if (( COMP_CWORD <= 1 )); then")
  add("        COMPREPLY=( $(compgen -W " .. sq(table.concat(names, " ") .. " --help --version")
    .. " -- \"$cur\") )")
  add("        return 0")
  add("    fi")
  add("    cmd=${COMP_WORDS[1]}")
  add("    case $cmd in")
  add("        help) COMPREPLY=( $(compgen -W " .. sq(table.concat(names, " ") .. " --man")
    .. " -- \"$cur\") ); return 0 ;;")
  for _, c in ipairs(cmds) do
    add(("        %s) opts=%s; files=%s; dirs=%s; takes=%s; values=%s ;;"):format(c.name,
      sq(table.concat(c.options, " ")), sq(names_with(c, "file")), sq(names_with(c, "dir")),
      sq(names_with(c, "value")), sq(c.values and table.concat(c.values, " ") or "")))
  end
  add("        *) return 0 ;;")
  add("    esac")
  local vals = {}
  for o in pairs(cli.option_values or {}) do vals[#vals + 1] = o end
  table.sort(vals)
  if #vals > 0 then
    add("    case $prev in")
    for _, o in ipairs(vals) do
      add(("        --%s) COMPREPLY=( $(compgen -W %s -- \"$cur\") ); return 0 ;;"):format(o,
        sq(table.concat(cli.option_values[o], " "))))
    end
    add("    esac")
  end
  add("    case \" $dirs \" in *\" $prev \"*)")
  add("        compopt -o filenames 2>/dev/null; COMPREPLY=( $(compgen -d -- \"$cur\") ); return 0 ;; esac")
  add("    case \" $files \" in *\" $prev \"*)")
  add("        compopt -o filenames 2>/dev/null; COMPREPLY=( $(compgen -f -- \"$cur\") ); return 0 ;; esac")
  add("    case \" $takes \" in *\" $prev \"*) return 0 ;; esac # a number, a key, a name")
  add("    case $cur in")
  add("        -*) COMPREPLY=( $(compgen -W \"$opts\" -- \"$cur\") ) ;;")
  add("        *) if [[ -n $values ]]; then COMPREPLY=( $(compgen -W \"$values\" -- \"$cur\") )")
  add("           else compopt -o filenames 2>/dev/null; COMPREPLY=( $(compgen -f -- \"$cur\") ); fi ;;")
  add("    esac")
  add("    return 0")
  add("}")
  add("complete -F _tenantguard tenantguard")
  return table.concat(out, "\n") .. "\n"
end

-- zsh: one _arguments spec per command, after the command word.
local function zq(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.zsh(cli)
  local cmds = table_of(cli)
  local out = {}
  local function add(s) out[#out + 1] = s end
  add("#compdef tenantguard")
  add("# zsh completion for tenantguard (made by `tenantguard completion zsh`; do not edit)")
  add("_tenantguard() {")
  add("    local -a commands")
  add("    commands=(")
  for _, c in ipairs(cmds) do
    add("        " .. zq(c.name .. ":" .. c.summary:gsub(":", "\\:")))
  end
  add("        'help:print help (help COMMAND: that command; help --man: the man page)'")
  add("    )")
  add("    if (( CURRENT == 2 )); then")
  add("        _describe -t commands 'tenantguard command' commands")
  add("        return")
  add("    fi")
  add("    local cmd=$words[2]")
  add("    shift words")
  add("    (( CURRENT-- ))")
  add("    case $cmd in")
  add("        help) _describe -t commands 'command' commands ;;")
  for _, c in ipairs(cmds) do
    local specs = {}
    for _, o in ipairs(c.options) do
      local t = c.takes[o]
      if t == "dir" then
        specs[#specs + 1] = zq(o .. "=:directory:_files -/")
      elseif t == "file" then
        specs[#specs + 1] = zq(o .. "=:file:_files")
      elseif t == "value" and (cli.option_values or {})[o:sub(3)] then
        specs[#specs + 1] = zq(o .. "=:value:(" .. table.concat(cli.option_values[o:sub(3)], " ")
          .. ")")
      elseif t == "value" then
        specs[#specs + 1] = zq(o .. "=:value: ")
      else
        specs[#specs + 1] = zq(o)
      end
    end
    if c.values then
      specs[#specs + 1] = zq("*:argument:(" .. table.concat(c.values, " ") .. ")")
    else
      specs[#specs + 1] = zq("*:file:_files")
    end
    add(("        %s) _arguments -S %s ;;"):format(c.name, table.concat(specs, " ")))
  end
  add("    esac")
  add("}")
  add("_tenantguard \"$@\"")
  return table.concat(out, "\n") .. "\n"
end

return M
