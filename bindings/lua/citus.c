/* Citus readiness on paper (core/citus.h): eng:citus_lint() and eng:citus_plan(), for
 * `tenantguard lint --target citus` and `tenantguard rollout --plan --target citus`. */
#include "binding.h"

#include "citus.h"
#include "engine.h"

/* eng:citus_lint() -> findings (levels "warning" and "info"), or nil, message */
static int l_citus_lint(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    tg_findings *f = tg__findings_new();
    if (!f)
        return luaL_error(L, "out of memory");
    tg__buf err = {0};
    int st = tg__citus_lint(&e->eng->rules->pub, e->eng->store, f, &err);
    if (st != TG_OK) {
        tg_findings_free(f);
        lua_pushnil(L);
        lua_pushstring(L, err.len ? tg__buf_str(&err) : tg_strerror(st));
        tg__buf_free(&err);
        return 2;
    }
    tg__buf_free(&err);
    tgl_push_findings(L, f);
    tg_findings_free(f);
    return 1;
}

/* eng:citus_plan() -> the DDL text (nothing is run), or nil, message */
static int l_citus_plan(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    tg__buf out = {0}, err = {0};
    int st = tg__citus_plan(&e->eng->rules->pub, e->eng->store, &out, &err);
    if (st != TG_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.len ? tg__buf_str(&err) : tg_strerror(st));
    } else {
        lua_pushlstring(L, tg__buf_str(&out), out.len);
    }
    tg__buf_free(&out);
    tg__buf_free(&err);
    return st == TG_OK ? 1 : 2;
}

void tgl_engine_citus_methods(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"citus_lint", l_citus_lint}, {"citus_plan", l_citus_plan}, {NULL, NULL}};
    luaL_setfuncs(L, methods, 0);
}
