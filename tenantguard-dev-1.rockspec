-- LuaRocks: `luarocks make` in a source tree builds and installs the Lua module
-- (require "tenantguard", its pure-Lua helpers) and the `tenantguard` command-line tool with
-- its shipped rules, through the CMake build. It needs cmake, a C compiler, and the Lua 5.4
-- and SQLite development files found by pkg-config (Debian: cmake, liblua5.4-dev,
-- libsqlite3-dev, pkg-config). Nothing is downloaded.
--   luarocks --lua-version 5.4 make                 # into the default tree
--   luarocks --lua-version 5.4 --tree DIR make      # into DIR
rockspec_format = "3.0"
package = "tenantguard"
version = "dev-1"
source = {
  -- `luarocks make` builds the tree it runs in and fetches nothing.
  url = "git+file://.",
}
description = {
  summary = "Tenant isolation for multi-tenant databases, driven by Lua rule scripts",
  detailed = [[
tenantguard keeps the tenants of a multi-tenant SQLite database apart. Its rules are Lua
scripts that describe the application's tenant-owned tables, every access path to them and
the scenarios that prove isolation; a C core loads them in a sandbox, checks and compiles
them, and enforces them. This rock installs the Lua module and the tenantguard tool.]],
  license = "MIT",
  labels = { "database", "security", "sqlite", "multi-tenant" },
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
external_dependencies = {
  SQLITE3 = { header = "sqlite3.h", library = "sqlite3" },
}
build = {
  type = "cmake",
  variables = {
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_BUILD_TYPE = "Release",
    BUILD_TESTING = "OFF",
    TG_BUILD_BENCH = "OFF",
    -- the rock is the Lua module and the tool: no C library, header or pkg-config file
    TG_INSTALL_C_LIBRARY = "OFF",
    -- where LuaRocks wants each piece; it deploys them into the tree from there
    TG_INSTALL_LUA_CDIR = "$(LIBDIR)",
    TG_INSTALL_LUA_DIR = "$(LUADIR)",
    CMAKE_INSTALL_BINDIR = "$(BINDIR)",
  },
}
