/* tenantguard.Engine: the Lua face of tg_engine. */
#include "binding.h"

#include <string.h>

typedef struct lengine {
    tg_engine *eng; /* NULL once closed */
} lengine;

static lengine *check_engine(lua_State *L, int idx) {
    lengine *e = luaL_checkudata(L, idx, TG_ENGINE_MT);
    if (!e->eng)
        luaL_error(L, "attempt to use a closed tenantguard engine");
    return e;
}

/* Raises msg as is: rule errors already carry "rules/x.lua:12:". */
static int raise_plain(lua_State *L, const char *msg) {
    lua_pushstring(L, msg);
    return lua_error(L);
}

/* tg.open{ db = "app.db", rules = "rules" } -> engine; raises on failure. The userdata is
 * made closed first, so an error while opening cannot leave it half-made. */
int tgl_engine_open(lua_State *L) {
    tg_open_options o;
    tgl_check_open_options(L, 1, &o);
    lengine *e = lua_newuserdatauv(L, sizeof *e, 1);
    e->eng = NULL;
    luaL_setmetatable(L, TG_ENGINE_MT);
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    if (st != TG_OK) {
        lua_pushstring(L, tg_engine_errmsg(eng));
        tg_engine_close(eng);
        return lua_error(L);
    }
    e->eng = eng;
    return 1;
}

/* tg.check{ rules = "rules", db = "app.db" } -> findings (never raises for bad rules) */
int tgl_rules_check(lua_State *L) {
    tg_open_options o;
    tgl_check_open_options(L, 1, &o);
    tg_findings *f = NULL;
    int st = tg_rules_check(&o, &f);
    if (st != TG_OK && st != TG_RULES && st != TG_IO && st != TG_DB) {
        tg_findings_free(f);
        return luaL_error(L, "tenantguard.check: %s", tg_strerror(st));
    }
    tgl_push_findings(L, f);
    tg_findings_free(f);
    return 1;
}

static int engine_close(lua_State *L) {
    lengine *e = luaL_checkudata(L, 1, TG_ENGINE_MT);
    if (e->eng) {
        tg_engine_close(e->eng);
        e->eng = NULL;
    }
    return 0;
}

/* eng:reload() -> true | nil, message  (the old rules keep serving on failure) */
static int engine_reload(lua_State *L) {
    lengine *e = check_engine(L, 1);
    int st = tg_engine_reload(e->eng);
    if (st != TG_OK) {
        luaL_pushfail(L);
        lua_pushstring(L, tg_engine_errmsg(e->eng));
        tgl_push_findings(L, tg_engine_findings(e->eng));
        return 3;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* eng:lint() -> findings of the rule files on disk against the database now */
static int engine_lint(lua_State *L) {
    lengine *e = check_engine(L, 1);
    tg_findings *f = NULL;
    int st = tg_engine_lint(e->eng, &f);
    if (st != TG_OK) {
        tg_findings_free(f);
        return raise_plain(L, tg_strerror(st));
    }
    tgl_push_findings(L, f);
    tg_findings_free(f);
    return 1;
}

/* eng:findings() -> findings (warnings) of the serving rules' load */
static int engine_findings(lua_State *L) {
    lengine *e = check_engine(L, 1);
    tgl_push_findings(L, tg_engine_findings(e->eng));
    return 1;
}

static int engine_rules(lua_State *L) {
    lengine *e = check_engine(L, 1);
    tgl_push_rules(L, tg_engine_rules(e->eng));
    return 1;
}

static int engine_version(lua_State *L) {
    lengine *e = check_engine(L, 1);
    lua_pushstring(L, tg_engine_rules(e->eng)->version);
    return 1;
}

static int engine_tostring(lua_State *L) {
    lengine *e = luaL_checkudata(L, 1, TG_ENGINE_MT);
    if (!e->eng)
        lua_pushstring(L, "tenantguard.Engine (closed)");
    else
        lua_pushfstring(L, "tenantguard.Engine (rules %s, version %s)",
                        tg_engine_rules(e->eng)->dir, tg_engine_rules(e->eng)->version);
    return 1;
}

void tgl_engine_register(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", engine_close},
                                    {"__close", engine_close},
                                    {"__tostring", engine_tostring},
                                    {NULL, NULL}};
    static const luaL_Reg methods[] = {{"close", engine_close},     {"reload", engine_reload},
                                       {"lint", engine_lint},       {"findings", engine_findings},
                                       {"rules", engine_rules},     {"version", engine_version},
                                       {NULL, NULL}};
    tgl_new_class(L, TG_ENGINE_MT, meta, methods);
}
