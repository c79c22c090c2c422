/* The Lua module's private interface: one file per userdata type, conversions in convert.c. */
#ifndef TG_BINDING_H
#define TG_BINDING_H

#include "tenantguard.h"

#include <lauxlib.h>
#include <lua.h>

#define TG_ENGINE_MT "tenantguard.Engine"
#define TG_DATABASE_MT "tenantguard.Database"
#define TG_CONTEXT_MT "tenantguard.Context"

/* The engine userdata (engine.c). `L` is the Lua state of the call in progress, used by the
 * decision-log callback; `log_ref` the Lua function receiving decisions (LUA_NOREF: none). */
typedef struct lengine {
    tg_engine *eng; /* NULL once closed */
    lua_State *L;
    int log_ref;
    int log_failed;
} lengine;

lengine *tgl_check_engine(lua_State *L, int idx);
void tgl_context_register(lua_State *L);
/* Adds the rollout methods to the Engine method table at the stack top (rollout.c). */
void tgl_engine_rollout_methods(lua_State *L);
/* Adds matrix() and run_matrix() (matrix.c); tg.mutations(). */
void tgl_engine_matrix_methods(lua_State *L);
int tgl_mutations(lua_State *L);
/* eng:context{ user =, workspace =, tenant = } */
int tgl_context_open(lua_State *L);

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
/* Pushes the decision as { status =, reason =, record = | records =, ... }. `single`: the
 * path returns one record. */
void tgl_push_decision(lua_State *L, const tg_decision *d, int single);
/* Reads a Lua value as a tg_value (nil, integer, number, string, boolean, tg.null).
 * Strings stay owned by the Lua stack. Raises with `what` in the message otherwise. */
void tgl_check_value(lua_State *L, int idx, tg_value *v, const char *what);
/* The sentinel for SQL NULL in write values: tg.null. */
void tgl_push_null(lua_State *L);
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
