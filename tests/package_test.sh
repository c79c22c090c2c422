#!/bin/sh
# tests/package_test.sh luarocks|deb SRC: makes the LuaRocks rock or the Debian package from
# a copy of the source tree, installs it into a temporary tree, and uses it as a user would.
# A tool it needs that is not installed is reported as SKIPPED with exit 77 (ctest shows the
# test as skipped); it never passes without having run.
#   luarocks: `luarocks make` (offline: the only server it may ask is an empty directory)
#             into a --tree, then the tool, `require "tenantguard"`, `luarocks remove`.
#   deb:      a build configured for /usr, `cpack -G DEB`, its control data (dpkg-deb -I) and
#             paths (dpkg-deb -c), then `dpkg-deb -x` into a root and the tool, the module and
#             the C library used from there.
set -eu
mode="$1"
src=$(cd "$2" && pwd)
skip() { echo "SKIPPED: $*"; exit 77; }
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in cmake lua5.4 tar; do command -v "$t" >/dev/null || skip "$t is not installed"; done
case "$mode" in
  luarocks) command -v luarocks >/dev/null || skip "luarocks is not installed (Debian: luarocks)" ;;
  deb) for t in cpack dpkg-deb; do
         command -v "$t" >/dev/null || skip "$t is not installed (Debian: cmake, dpkg)"
       done ;;
  *) fail "usage: package_test.sh luarocks|deb SRC" ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset TENANTGUARD_RULES LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
version=$(sed -n 's/^project(tenantguard VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[ -n "$version" ] || fail "no version in CMakeLists.txt"
# The source tree as a release tarball would have it: no build directories, no git data.
mkdir "$work/src"
(cd "$src" && tar --exclude='./build*' --exclude='./.git' -cf - .) | tar -C "$work/src" -xf -
cd "$work"

# uses_tool TOOL RULES: the tool reports the version, lints its shipped rules and decides.
uses_tool() {
  out=$("$1" --version) || fail "$1 --version: $out"
  [ "$out" = "tenantguard $version" ] || fail "$1 --version printed '$out'"
  out=$("$1" --version --rules "$2") || fail "$1 --version --rules: $out"
  case "$out" in *"rules $2 version "*) ;; *) fail "no rule version: $out" ;; esac
  out=$("$1" lint) || fail "$1 lint: $out"
  case "$out" in *"share/tenantguard/rules: 0 errors"*) ;; *) fail "$1 lint: $out" ;; esac
  rm -f "$work/ref.db"
  "$1" refdb "$work/ref.db" --rows 10 >/dev/null
  out=$("$1" resolve --db "$work/ref.db" --user 1 --workspace 1 --tenant 1 \
    --family Policy --path index) || fail "$1 resolve: $out"
  case "$out" in "200 ok"*) ;; *) fail "$1 resolve printed '$out'" ;; esac
  # through a symlink in another directory, as ~/.local/bin would hold it
  mkdir -p "$work/linkbin"
  ln -sf "$1" "$work/linkbin/tenantguard"
  out=$("$work/linkbin/tenantguard" lint) || fail "through a symlink: $out"
  echo "tool ok: $1"
}

# uses_module: `require "tenantguard"` in a plain lua5.4 with the paths in the environment.
uses_module() {
  lua5.4 - "$1" "$version" <<'LUA' || fail "require \"tenantguard\" failed"
local tg = require "tenantguard"
assert(tg.VERSION == arg[2], "module version " .. tostring(tg.VERSION))
local eng = tg.open { rules = arg[1] }
assert(#eng:rules().families == 8)
assert(require("tenantguard.json").encode { 1 } == "[1]")
print("module ok", package.searchpath("tenantguard", package.cpath), eng:version())
eng:close()
LUA
}

if [ "$mode" = luarocks ]; then
  rocks="luarocks --lua-version 5.4 --tree $work/tree --only-server $work/no-server"
  mkdir "$work/no-server"
  (cd "$work/src" && $rocks make) >"$work/make.log" 2>&1 ||
    { cat "$work/make.log"; fail "luarocks make"; }
  grep -q "tenantguard dev-1 is now installed in $work/tree" "$work/make.log" ||
    { cat "$work/make.log"; fail "luarocks make did not install"; }
  $rocks list | grep -q '^tenantguard$' || fail "luarocks list does not show tenantguard"
  [ -f "$work/tree/lib/lua/5.4/tenantguard.so" ] || fail "no lib/lua/5.4/tenantguard.so"
  [ -f "$work/tree/share/lua/5.4/tenantguard/json.lua" ] || fail "no share/lua/5.4/tenantguard"
  # the rock is the module and the tool: no C library in the tree
  if find "$work/tree" -name 'libtenantguard*' -o -name tenantguard.pc | grep -q .; then
    fail "the rock installed the C library"
  fi
  rockdir="$work/tree/lib/luarocks/rocks-5.4/tenantguard/dev-1"
  uses_tool "$work/tree/bin/tenantguard" "$rockdir/share/tenantguard/rules"
  eval "$($rocks path)"
  export LUA_PATH LUA_CPATH
  uses_module "$rockdir/share/tenantguard/rules"
  $rocks remove tenantguard >/dev/null
  [ ! -e "$work/tree/bin/tenantguard" ] || fail "luarocks remove left the tool"
  [ ! -e "$work/tree/lib/lua/5.4/tenantguard.so" ] || fail "luarocks remove left the module"
  echo "luarocks ok"
  exit 0
fi

# ---- deb -----------------------------------------------------------------------------------
multiarch=$(cc -print-multiarch 2>/dev/null || true)
[ -n "$multiarch" ] || skip "the C compiler does not know its multiarch triplet"
# A build configured for another prefix refuses to make a .deb, saying how to configure.
cmake -S "$work/src" -B "$work/wrong" -DBUILD_TESTING=OFF -DTG_BUILD_BENCH=OFF >/dev/null
if (cd "$work/wrong" && cpack -G DEB) >"$work/wrong.log" 2>&1; then
  fail "cpack -G DEB made a package from a build for /usr/local"
fi
grep -q 'CMAKE_INSTALL_PREFIX=/usr' "$work/wrong.log" || { cat "$work/wrong.log"; fail "no hint"; }

cmake -S "$work/src" -B "$work/deb" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_TESTING=OFF -DTG_BUILD_BENCH=OFF >"$work/deb.log" 2>&1 ||
  { cat "$work/deb.log"; fail "configure"; }
cmake --build "$work/deb" >>"$work/deb.log" 2>&1 || { cat "$work/deb.log"; fail "build"; }
(cd "$work/deb" && cpack -G DEB) >>"$work/deb.log" 2>&1 || { cat "$work/deb.log"; fail "cpack"; }
deb=$(ls "$work"/deb/tenantguard_"$version"_*.deb)
dpkg-deb -I "$deb"
info=$(dpkg-deb -I "$deb")
depends="liblua5.4-0, libsqlite3-0, lua5.4"
# built with PostgreSQL support (libpq-dev here), the package needs libpq too
if pkg-config --exists libpq; then depends="$depends, libpq5"; fi
for want in "Package: tenantguard" "Version: $version" \
            "Depends: $depends"; do
  echo "$info" | grep -q "^ $want\$" || fail "dpkg-deb -I: no '$want'"
done
paths=$(dpkg-deb -c "$deb" | awk '{ print $NF }')
for want in ./usr/bin/tenantguard "./usr/lib/$multiarch/lua/5.4/tenantguard.so" \
            ./usr/share/lua/5.4/tenantguard/json.lua ./usr/share/tenantguard/rules/families.lua \
            "./usr/lib/$multiarch/libtenantguard.so.$version" ./usr/include/tenantguard.h \
            "./usr/lib/$multiarch/pkgconfig/tenantguard.pc" \
            "./usr/lib/$multiarch/cmake/tenantguard/tenantguardConfig.cmake" \
            ./usr/share/doc/tenantguard/LICENSE ./usr/share/doc/tenantguard/CHANGELOG.md; do
  echo "$paths" | grep -qx "$want" || fail "the package has no $want"
done
if echo "$paths" | grep -q '^\./usr/local/\|^\./usr/lib/lua/'; then
  fail "the package installs outside Debian's paths"
fi

root="$work/root"
dpkg-deb -x "$deb" "$root"
uses_tool "$root/usr/bin/tenantguard" "$root/usr/share/tenantguard/rules"
LUA_CPATH="$root/usr/lib/$multiarch/lua/5.4/?.so;;" LUA_PATH="$root/usr/share/lua/5.4/?.lua;;" \
  uses_module "$root/usr/share/tenantguard/rules"
# the C library, through the package's own pkg-config file
cat > "$work/embed.c" <<'C'
#include <tenantguard.h>
#include <stdio.h>
int main(int argc, char **argv) {
    tg_open_options o = {0};
    (void)argc;
    o.rules = argv[1];
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    printf("%s %s\n", TG_VERSION, tg_status_name(st));
    tg_engine_close(eng);
    return st != TG_OK;
}
C
pc="$root/usr/lib/$multiarch/pkgconfig"
# shellcheck disable=SC2046
cc -o "$work/embed" "$work/embed.c" $(PKG_CONFIG_PATH="$pc" pkg-config --cflags --libs tenantguard)
out=$(LD_LIBRARY_PATH="$root/usr/lib/$multiarch" "$work/embed" "$root/usr/share/tenantguard/rules")
[ "$out" = "$version TG_OK" ] || fail "the C library from the package: '$out'"
echo "deb ok: $(basename "$deb")"
