/* The Lua module's private interface: one file per userdata type, conversions in convert.c. */
#ifndef TG_BINDING_H
#define TG_BINDING_H

#include "tenantguard.h"

#include <lauxlib.h>
#include <lua.h>

#define TG_ENGINE_MT "tenantguard.Engine"
#define TG_DATABASE_MT "tenantguard.Database"

/* Registers the metatable of each type; called once from luaopen_tenantguard. */
void tgl_engine_register(lua_State *L);
void tgl_database_register(lua_State *L);

/* tg.open{...} and tg.check{...} */
int tgl_engine_open(lua_State *L);
int tgl_rules_check(lua_State *L);
/* tg.connect(path) */
int tgl_database_connect(lua_State *L);

/* ---- convert.c: every conversion between Lua values and C values ---- */

/* Reads the options table at idx into o; strings stay owned by the Lua table. */
void tgl_check_open_options(lua_State *L, int idx, tg_open_options *o);
/* Pushes a findings list as { {level=, code=, message=, file=, line=, where=}, ... }. */
void tgl_push_findings(lua_State *L, const tg_findings *f);
/* Pushes the rule model as plain Lua tables. */
void tgl_push_rules(lua_State *L, const tg_rules *r);
/* Pushes a tg_value. */
void tgl_push_value(lua_State *L, const tg_value *v);
/* Optional string/integer fields of a table at idx; errors name the field. */
const char *tgl_opt_string_field(lua_State *L, int idx, const char *key, const char *def);
lua_Integer tgl_opt_integer_field(lua_State *L, int idx, const char *key, lua_Integer def);
/* Creates the metatable `name` with the metamethods `meta`, __index to a table of
 * `methods`, and a locked __metatable. */
void tgl_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods);

#endif
