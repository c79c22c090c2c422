-- Shell completion and the man page, both made from the tool's own command table and help
-- text: the bash script, sourced in `bash -c`, completes commands, options and their
-- values; the zsh script loads in zsh (when zsh is installed); the man page has every
-- command and every line of each command's --help, and groff/man find nothing to warn about
-- (when groff-base / man-db are installed; otherwise the test says it skipped).
local lu = require "luaunit"
local H = require "helpers"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

-- Other programs run without the sanitizer runtime the ASan build preloads for the tool.
local function ext(cmd) return "env -u LD_PRELOAD " .. cmd end

local function have(prog) return select(2, sh("command -v " .. prog .. " >/dev/null 2>&1")) == 0 end

local function skipped(what) print("SKIPPED: " .. what) end

-- The commands `tenantguard --help` lists.
-- A command's name as a man page section title (roff escapes '-').
local function roff_name(name) return (name:gsub("%-", "\\-")) end

local function listed_commands()
  local out = sh(q(H.tool) .. " --help")
  local names = {}
  for line in out:match("commands:\n(.-)\n\n"):gmatch("[^\n]+") do
    names[#names + 1] = line:match("^  (%S+)")
  end
  lu.assertTrue(#names >= 10, out)
  return names
end

-- The script of `tenantguard completion SHELL` in a temporary file.
local function script(shell)
  local out, rc = sh(q(H.tool) .. " completion " .. shell)
  lu.assertEquals(rc, 0, out)
  local path = H.tmpdir() .. "/tenantguard." .. shell
  H.write(path, out)
  return path, out
end

-- What the bash completion offers for the words (the last one being completed).
local function complete(path, words)
  local quoted = {}
  for i, w in ipairs(words) do quoted[i] = q(w) end
  local cmd = ext([[bash -c 'source "$0"; COMP_WORDS=(%s); COMP_CWORD=%d; _tenantguard;
printf "%%s\n" "${COMPREPLY[@]}"' %s]]):format(table.concat(quoted, " "):gsub("'", "'\\''"),
    #words - 1, q(path))
  local out, rc = sh(cmd)
  lu.assertEquals(rc, 0, out)
  local got = {}
  for line in out:gmatch("[^\n]+") do got[#got + 1] = line end
  table.sort(got)
  return got
end

TestCompletion = {}
function TestCompletion:tearDown() H.cleanup() end

function TestCompletion:test_bash_completes_commands_options_and_values()
  local path = script("bash")
  lu.assertEquals(complete(path, { "tenantguard", "ma" }), { "matrix" })
  lu.assertEquals(complete(path, { "tenantguard", "matrix", "--ju" }), { "--junit" })
  lu.assertEquals(complete(path, { "tenantguard", "lint", "--wa" }), { "--watch" })
  lu.assertEquals(complete(path, { "tenantguard", "resolve", "--path", "d" }), { "detail" })
  lu.assertEquals(complete(path, { "tenantguard", "rollout", "enforce_c" }),
    { "enforce_constraints" })
  lu.assertEquals(complete(path, { "tenantguard", "completion", "" }), { "bash", "zsh" })
  lu.assertEquals(complete(path, { "tenantguard", "help", "--m" }), { "--man" })
  -- a value that is a number or a key: nothing to offer
  lu.assertEquals(complete(path, { "tenantguard", "resolve", "--user", "" }), {})
  -- a file, also as --db=FILE
  local dir = H.tmpdir()
  H.write(dir .. "/app.db", "")
  lu.assertEquals(complete(path, { "tenantguard", "matrix", "--db", dir .. "/ap" }),
    { dir .. "/app.db" })
  lu.assertEquals(complete(path, { "tenantguard", "matrix", "--db", "=", dir .. "/ap" }),
    { dir .. "/app.db" })
  -- every command --help lists, and every option a command's --help shows
  local all = complete(path, { "tenantguard", "" })
  for _, name in ipairs(listed_commands()) do
    lu.assertTrue(table.concat(all, " "):find(name, 1, true) ~= nil, name)
    local help = sh(q(H.tool) .. " " .. name .. " --help")
    local offered = " " .. table.concat(complete(path, { "tenantguard", name, "--" }), " ") .. " "
    -- the options in its synopsis (not a global form such as `tenantguard --version`)
    local synopsis = help:match("^(.-)\n\n"):gsub("tenantguard %-%-[%w-]+", "")
    for opt in synopsis:gmatch("%-%-[%w-]+") do
      lu.assertStrContains(offered, " " .. opt .. " ")
    end
  end
end

function TestCompletion:test_zsh_script_loads()
  local path, text = script("zsh")
  lu.assertStrMatches(text, "^#compdef tenantguard\n.*")
  lu.assertStrContains(text, "'--junit=:file:_files'")
  if not have("zsh") then return skipped("zsh is not installed (package zsh): syntax not checked") end
  local out, rc = sh(ext("zsh -n " .. q(path) .. " 2>&1"))
  lu.assertEquals(rc, 0, out)
  -- loaded by compinit from a directory of $fpath, it is registered for the tool
  local dir = H.tmpdir()
  assert(os.execute(("cp %s %s/_tenantguard"):format(q(path), q(dir))))
  out = sh(ext(("zsh -f -c 'fpath=(%s $fpath); autoload -U compinit; compinit -u -D; "
    .. "print -r -- $_comps[tenantguard]' 2>&1"):format(dir)))
  lu.assertEquals(out, "_tenantguard\n")
end

TestManPage = {}
function TestManPage:tearDown() H.cleanup() end

local function man_page()
  local out, rc = sh(q(H.tool) .. " help --man")
  lu.assertEquals(rc, 0, out)
  local path = H.tmpdir() .. "/tenantguard.1"
  H.write(path, out)
  return path, out
end

function TestManPage:test_every_command_and_its_help_text()
  local _, roff = man_page()
  lu.assertStrMatches(roff, '^%.TH TENANTGUARD 1 .*')
  for _, name in ipairs(listed_commands()) do lu.assertStrContains(roff, "\n.SS " .. roff_name(name) .. "\n") end
  lu.assertStrContains(roff, '.SH "EXIT STATUS"')
  lu.assertStrContains(roff, "TENANTGUARD_RULES")
end

function TestManPage:test_groff_and_man_find_nothing_to_warn_about()
  local path = man_page()
  if not have("groff") then return skipped("groff is not installed (package groff-base)") end
  local out = sh(ext(("groff -man -Tutf8 -ww -rHY=0 -P-cbou %s 2>%s.err"):format(q(path),
    q(path))))
  lu.assertEquals(H.read(path .. ".err"), "")
  -- the same words as --help, command by command (filled and adjusted differently)
  local words = " " .. out:gsub("%s+", " ") .. " "
  for _, name in ipairs(listed_commands()) do
    local help = sh(q(H.tool) .. " help " .. name):match("^(.-)\n\nexit status:")
    local body = help:gsub("^usage: ", ""):gsub("%s+", " ")
    lu.assertTrue(words:find(body, 1, true) ~= nil, "the help of " .. name .. " in the man page")
  end
  if not have("man") then return skipped("man is not installed (package man-db)") end
  local warnings = sh(ext(("MANWIDTH=80 man --warnings -l %s 2>&1 >/dev/null"):format(q(path))))
  lu.assertEquals(warnings, "")
end

-- The build makes the three files by running the tool and installs them where bash, zsh
-- and man look (not in sanitizer builds, which say so).
TestInstalled = {}
function TestInstalled:tearDown() H.cleanup() end

function TestInstalled:test_installed_where_the_shells_and_man_look()
  local cache = H.read(H.build_dir .. "/CMakeCache.txt")
  if cache:find("TG_SANITIZE:BOOL=ON", 1, true) then
    return skipped("sanitizer build: the man page and completions are made in other builds")
  end
  local prefix = H.tmpdir()
  local out, rc = sh(("cmake --install %s --prefix %s 2>&1"):format(q(H.build_dir), q(prefix)))
  lu.assertEquals(rc, 0, out)
  local bash = prefix .. "/share/bash-completion/completions/tenantguard"
  lu.assertEquals(complete(bash, { "tenantguard", "matrix", "--ju" }), { "--junit" })
  lu.assertEquals(H.read(prefix .. "/share/zsh/vendor-completions/_tenantguard"),
    select(2, script("zsh")))
  local page = H.read(prefix .. "/share/man/man1/tenantguard.1")
  for _, name in ipairs(listed_commands()) do lu.assertStrContains(page, "\n.SS " .. roff_name(name) .. "\n") end
  -- it names the installed rules, not the build's
  lu.assertNotStrContains(page, H.source_dir)
  lu.assertNotStrContains(page, (H.source_dir:gsub("%-", "\\-")))
  lu.assertStrContains(page, "share/tenantguard/rules")
end

os.exit(lu.LuaUnit.run())
