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
 * decision-log callback (set for the duration of each call, then restored); `log_ref` the
 * Lua function receiving decisions (LUA_NOREF: none). */
typedef struct lengine {
    tg_engine *eng; /* NULL once closed */
    lua_State *L;
    int log_ref;
    int log_failed;
    int working;   /* eng:work and eng:run_matrix calls in progress */
    int in_matrix; /* eng:run_matrix calls in progress (a reload is refused) */
    int reload_ref;    /* tg.open{ on_reload = fn }: the function (LUA_NOREF: none) */
    int reload_failed; /* it raised once (reported once on stderr) */
} lengine;

lengine *tgl_check_engine(lua_State *L, int idx);
void tgl_context_register(lua_State *L);
/* Adds the rollout methods to the Engine method table at the stack top (rollout.c). */
void tgl_engine_rollout_methods(lua_State *L);
/* Adds matrix() and run_matrix() (matrix.c); tg.mutations(). */
void tgl_engine_matrix_methods(lua_State *L);
/* Adds citus_lint and citus_plan to the Engine method table at the stack top (citus.c). */
void tgl_engine_citus_methods(lua_State *L);
int tgl_mutations(lua_State *L);
/* eng:context{ user =, workspace =, tenant = } */
int tgl_context_open(lua_State *L);

/* Registers the metatable of each type; called once from luaopen_tenantguard. */
void tgl_engine_register(lua_State *L);
void tgl_database_register(lua_State *L);

/* tg.open{...} and tg.check{...} */
int tgl_engine_open(lua_State *L);
int tgl_rules_check(lua_State *L);
/* tg.rules_stamp(dir) */
int tgl_rules_stamp(lua_State *L);
/* tg.connect(path) */
int tgl_database_connect(lua_State *L);
/* tg.pg_load{...} (pg.c) */
int tgl_pg_load(lua_State *L);

/* ---- convert.c: every conversion between Lua values and C values ---- */

/* The anchoring discipline (see convert.c): C keeps pointers only to strings reachable
 * from the stack of the call in progress.
 *
 * tgl_fields copies the fields `allowed` (NULL-terminated) of the table at idx, read through
 * lua_getfield so __index proxies work, into a private table pushed on the stack; returns
 * its index. Raises "<what>: unknown field 'x' (did you mean 'y'?)" for any other key. The
 * tgl_field_* readers below read that copy: strings they return stay valid while the copy
 * stays on the stack. Each returns 0 when the field is nil and raises, naming `what` and
 * the field, for a wrong type, a zero byte in a string, a fraction, NaN or a value out of
 * range. */
int tgl_fields(lua_State *L, int idx, const char *what, const char *const *allowed);
const char *tgl_field_string(lua_State *L, int t, const char *what, const char *key);
int tgl_field_integer(lua_State *L, int t, const char *what, const char *key, lua_Integer min,
                      lua_Integer max, lua_Integer *out);
/* A finite number from 0 to max. */
int tgl_field_number(lua_State *L, int t, const char *what, const char *key, double max,
                     double *out);
int tgl_field_boolean(lua_State *L, int t, const char *what, const char *key, int *out);
/* Leaves the function on the stack and returns its index (0 when nil). */
int tgl_field_function(lua_State *L, int t, const char *what, const char *key);
/* A key: an integer (or a float with an integral value) or a string, as it is (a string for
 * a BLOB key column is bound as a blob by the core). Returns 0 when nil; raises otherwise. */
int tgl_field_key(lua_State *L, int t, const char *what, const char *key, tg_value *out);
/* A positional key argument (an integer or a string; the stack anchors it). */
void tgl_check_key(lua_State *L, int arg, tg_value *out);
/* A list of at most `max` keys, copied into a userdata left on the stack (strings stay
 * anchored by the list in the copy at t). */
tg_value *tgl_field_ids(lua_State *L, int t, const char *what, const char *key, size_t max,
                        size_t *n);
/* A positional integer argument: a number with an integer value (no string coercion). */
lua_Integer tgl_check_integer(lua_State *L, int arg);
lua_Integer tgl_opt_integer(lua_State *L, int arg, lua_Integer def);
/* A positional string argument without a zero byte (the stack anchors it). */
const char *tgl_check_cstring(lua_State *L, int arg);
const char *tgl_opt_cstring(lua_State *L, int arg);
/* Reads tg.open / tg.check options; leaves the anchoring copy on the stack. */
void tgl_check_open_options(lua_State *L, int idx, const char *what, tg_open_options *o);
/* Reads { column = value } at idx into an array of column values; leaves a private copy of
 * the table and the array on the stack, which anchor every string in the array. */
tg_column_value *tgl_check_column_values(lua_State *L, int idx, const char *what, size_t *n);
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
/* Creates the metatable `name` with the metamethods `meta`, __index to a table of
 * `methods`, and a locked __metatable. */
void tgl_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods);

#endif
