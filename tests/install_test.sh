#!/bin/sh
# Installs the build into a temporary prefix and uses it as a user would: the tool, the Lua
# module from a plain lua5.4, and the C library through pkg-config.
set -eu
build="$1"
src="$2"
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
"$prefix/bin/tenantguard" lint
"$prefix/bin/tenantguard" refdb "$prefix/ref.db" --rows 20
"$prefix/bin/tenantguard" lint --db "$prefix/ref.db"
libdir=$(ls -d "$prefix"/lib*/lua/5.4 | head -1)
sharedir="$prefix/share/lua/5.4"
cat > "$prefix/use.lua" <<'LUA'
local tg = require "tenantguard"
local eng = tg.open{ rules = arg[1] }
assert(#eng:rules().families == 8)
print("module ok", eng:version())
LUA
LUA_CPATH="$libdir/?.so;;" LUA_PATH="$sharedir/?.lua;;" lua5.4 "$prefix/use.lua" \
  "$prefix/share/tenantguard/rules"
pc=$(find "$prefix" -name tenantguard.pc | head -1)
cat > "$prefix/embed.c" <<'C'
#include <tenantguard.h>
#include <stdio.h>
int main(int argc, char **argv) {
    tg_open_options o = {0};
    o.rules = argv[1];
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    printf("%s %s\n", tg_status_name(st), st == TG_OK ? tg_engine_rules(eng)->version : tg_engine_errmsg(eng));
    tg_engine_close(eng);
    return st != TG_OK;
}
C
PKG_CONFIG_PATH=$(dirname "$pc") cc -o "$prefix/embed" "$prefix/embed.c" \
  $(PKG_CONFIG_PATH=$(dirname "$pc") pkg-config --cflags --libs tenantguard)
LD_LIBRARY_PATH=$(dirname "$(dirname "$pc")") "$prefix/embed" "$prefix/share/tenantguard/rules"
echo "install ok"
