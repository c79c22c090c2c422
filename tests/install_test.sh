#!/bin/sh
# Installs the build into a temporary prefix and uses it as a user would: the tool (directly
# and through symlinks, as ~/.local/bin or GNU stow make them), the Lua module from a plain
# lua5.4, the C library from a downstream project through its CMake package (shared and
# static) and through pkg-config (shared and static), and the installed documents, none of
# which may name a file that is not installed.
set -eu
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
unset TENANTGUARD_RULES
cd "$work"
cmake --install "$build" --prefix "$prefix" >/dev/null
version=$(sed -n 's/^project(tenantguard VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
test -n "$version"

fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- the tool ------------------------------------------------------------------------------
"$prefix/bin/tenantguard" lint
"$prefix/bin/tenantguard" refdb "$work/ref.db" --rows 20
"$prefix/bin/tenantguard" lint --db "$work/ref.db"
out=$("$prefix/bin/tenantguard" --version)
[ "$out" = "tenantguard $version" ] || fail "--version printed '$out', not 'tenantguard $version'"

# Through symlinks: an absolute one in another bin dir (~/.local/bin), a relative one (stow),
# a symlinked directory, and found on PATH. Each finds the installed rules and module.
mkdir -p "$work/home/.local/bin" "$work/stow/bin"
ln -s "$prefix/bin/tenantguard" "$work/home/.local/bin/tenantguard"
ln -s ../../prefix/bin/tenantguard "$work/stow/bin/tg"
ln -s "$prefix/bin" "$work/linkedbin"
for tool in "$work/home/.local/bin/tenantguard" "$work/stow/bin/tg" "$work/linkedbin/tenantguard"; do
  out=$("$tool" --version --rules "$prefix/share/tenantguard/rules") ||
    fail "$tool --version failed"
  case "$out" in "tenantguard $version"*"rules "*" version "*) ;; *) fail "$tool: '$out'" ;; esac
  out=$("$tool" lint) || fail "$tool lint failed: $out"
  case "$out" in *"$prefix/bin/"*"share/tenantguard/rules: 0 errors"*) ;;
    *) fail "$tool lint did not use the installed rules: $out" ;; esac
done
out=$(cd / && PATH="$work/home/.local/bin:$PATH" tenantguard resolve --db "$work/ref.db" \
  --user 1 --workspace 1 --tenant 1 --family Policy --path index) ||
  fail "tenantguard on PATH through a symlink failed: $out"
echo "symlinks ok"

# ---- the Lua module ------------------------------------------------------------------------
libdir=$(ls -d "$prefix"/lib*/lua/5.4 | head -1)
sharedir="$prefix/share/lua/5.4"
cat > "$work/use.lua" <<'LUA'
local tg = require "tenantguard"
local eng = tg.open{ rules = arg[1] }
assert(#eng:rules().families == 8)
print("module ok", tg.VERSION, eng:version())
LUA
LUA_CPATH="$libdir/?.so;;" LUA_PATH="$sharedir/?.lua;;" lua5.4 "$work/use.lua" \
  "$prefix/share/tenantguard/rules"

# ---- the C library: one program, built four ways -------------------------------------------
cat > "$work/embed.c" <<'C'
#include <tenantguard.h>
#include <stdio.h>
int main(int argc, char **argv) {
    tg_open_options o = {0};
    (void)argc;
    o.rules = argv[1];
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    printf("%s %s %s\n", TG_VERSION, tg_status_name(st),
           st == TG_OK ? tg_engine_rules(eng)->version : tg_engine_errmsg(eng));
    tg_engine_close(eng);
    return st != TG_OK;
}
C
rules="$prefix/share/tenantguard/rules"
# run_embed NAME: runs it, checks it loaded the rules, says whether it uses libtenantguard.so
run_embed() {
  out=$("$@" "$rules") || fail "$1: $out"
  case "$out" in "$version TG_OK "*) ;; *) fail "$1 printed '$out'" ;; esac
  echo "$1: $out"
}

# pkg-config, shared and static
pcdir=$(dirname "$(find "$prefix" -name tenantguard.pc | head -1)")
cdir=$(dirname "$pcdir")
export PKG_CONFIG_PATH="$pcdir"
[ "$(pkg-config --modversion tenantguard)" = "$version" ] || fail "pkg-config --modversion"
# shellcheck disable=SC2046
cc -o "$work/embed_pc" "$work/embed.c" $(pkg-config --cflags --libs tenantguard)
LD_LIBRARY_PATH="$cdir" run_embed "$work/embed_pc"
LD_LIBRARY_PATH="$cdir" ldd "$work/embed_pc" | grep -q 'libtenantguard\.so' ||
  fail "embed_pc does not use the shared library"
# shellcheck disable=SC2046
cc -o "$work/embed_pc_static" "$work/embed.c" $(pkg-config --cflags tenantguard) \
  $(pkg-config --static --libs tenantguard | sed 's/-ltenantguard/-Wl,-Bstatic -ltenantguard -Wl,-Bdynamic/')
run_embed "$work/embed_pc_static"
if ldd "$work/embed_pc_static" | grep -q 'libtenantguard\.so'; then
  fail "embed_pc_static uses the shared library"
fi

# The CMake package: a downstream project that knows nothing of this build.
mkdir -p "$work/downstream"
cp "$work/embed.c" "$work/downstream/embed.c"
cat > "$work/downstream/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.21)
project(downstream LANGUAGES C)
find_package(tenantguard $version CONFIG REQUIRED)
message(STATUS "found tenantguard \${tenantguard_VERSION}")
if(TARGET PkgConfig::LUA OR TARGET PkgConfig::SQLITE)
  message(FATAL_ERROR "the package leaked the build's target names")
endif()
add_executable(embed_shared embed.c)
target_link_libraries(embed_shared PRIVATE tenantguard::tenantguard)
add_executable(embed_static embed.c)
target_link_libraries(embed_static PRIVATE tenantguard::tenantguard_static)
EOF
unset PKG_CONFIG_PATH
cmake -S "$work/downstream" -B "$work/downstream/build" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/downstream.log" 2>&1 || { cat "$work/downstream.log"; fail "downstream configure"; }
grep -q "found tenantguard $version" "$work/downstream.log" || fail "no version from the package"
cmake --build "$work/downstream/build" >>"$work/downstream.log" 2>&1 ||
  { cat "$work/downstream.log"; fail "downstream build"; }
run_embed "$work/downstream/build/embed_shared"
ldd "$work/downstream/build/embed_shared" | grep -q "$cdir/libtenantguard\.so" ||
  fail "embed_shared does not use the installed shared library"
run_embed "$work/downstream/build/embed_static"
if ldd "$work/downstream/build/embed_static" | grep -q 'libtenantguard\.so'; then
  fail "embed_static uses the shared library"
fi
# Another minor version is not compatible while the major version is 0.
sed -i "s/find_package(tenantguard $version /find_package(tenantguard 0.999 /" \
  "$work/downstream/CMakeLists.txt"
if cmake -S "$work/downstream" -B "$work/downstream/build2" -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/downstream2.log" 2>&1; then
  fail "find_package(tenantguard 0.999) accepted version $version"
fi
echo "cmake package ok"

# ---- documents -----------------------------------------------------------------------------
# Every installed document's relative links and the .md files it names must be installed,
# at the place the name says, relative to the document.
ndocs=0
for doc in $(find "$prefix" -name '*.md'); do
  ndocs=$((ndocs + 1))
  dir=$(dirname "$doc")
  for target in $(grep -o '\]([^)#]*' "$doc" | sed 's/^](//' | grep -v '^[a-z][a-z]*:' || true) \
                $(grep -o '`[^` ]*\.md`' "$doc" | tr -d '`' || true); do
    [ -e "$dir/$target" ] || fail "${doc#"$prefix"/} refers to $target, which is not installed"
  done
done
[ "$ndocs" -ge 2 ] || fail "only $ndocs installed documents"
for f in LICENSE CHANGELOG.md; do
  [ -s "$prefix/share/doc/tenantguard/$f" ] || fail "share/doc/tenantguard/$f not installed"
done
echo "documents ok ($ndocs)"
echo "install ok"
