/* tenantguard.Engine: the Lua face of tg_engine. */
#include "binding.h"

#include <stdio.h>
#include <string.h>

lengine *tgl_check_engine(lua_State *L, int idx) {
    lengine *e = luaL_checkudata(L, idx, TG_ENGINE_MT);
    if (!e->eng)
        luaL_error(L, "attempt to use a closed tenantguard engine");
    return e;
}

#define check_engine tgl_check_engine

/* Raises msg as is: rule errors already carry "rules/x.lua:12:". */
static int raise_plain(lua_State *L, const char *msg) {
    lua_pushstring(L, msg);
    return lua_error(L);
}

/* An automatic reload's outcome, passed to call_reload. */
typedef struct reload_event {
    int status;
    const char *message, *version;
} reload_event;

/* Calls on_reload(ok, err, version); runs under lua_pcall. */
static int call_reload(lua_State *L) {
    const reload_event *ev = lua_touserdata(L, 1);
    lengine *e = lua_touserdata(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->reload_ref);
    lua_pushboolean(L, ev->status == TG_OK);
    if (ev->message)
        lua_pushstring(L, ev->message);
    else
        lua_pushnil(L);
    lua_pushstring(L, ev->version);
    lua_call(L, 3, 0);
    return 0;
}

/* The C reload callback: the Lua function always runs under lua_pcall, in the Lua state of
 * the eng:context call that noticed the change. One that raises is reported once on stderr
 * and changes nothing (the reload has happened or failed already). */
static void lua_on_reload(void *ud, int status, const char *message, const char *version) {
    lengine *e = ud;
    lua_State *L = e->L;
    if (!L || e->reload_ref == LUA_NOREF || !lua_checkstack(L, 8))
        return;
    reload_event ev = {status, message, version};
    lua_pushcfunction(L, call_reload);
    lua_pushlightuserdata(L, &ev);
    lua_pushlightuserdata(L, e);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        if (!e->reload_failed)
            fprintf(stderr, "tenantguard: the on_reload function failed: %.300s\n",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
        e->reload_failed = 1;
        lua_pop(L, 1);
    }
}

/* tg.open{ db = "app.db", rules = "rules" [, create = true] [, auto_reload = ms,
 * on_reload = fn] } -> engine; raises on failure ("no such database: PATH" unless create is
 * true). The userdata is made closed first, so an error while opening cannot leave it
 * half-made. */
int tgl_engine_open(lua_State *L) {
    tg_open_options o;
    tgl_check_open_options(L, 1, "open", &o); /* its strings stay anchored on the stack */
    int on_reload = tgl_field_function(L, lua_gettop(L), "open", "on_reload");
    lengine *e = lua_newuserdatauv(L, sizeof *e, 1);
    e->eng = NULL;
    e->L = NULL;
    e->log_ref = LUA_NOREF;
    e->log_failed = 0;
    e->working = 0;
    e->in_matrix = 0;
    e->reload_ref = LUA_NOREF;
    e->reload_failed = 0;
    luaL_setmetatable(L, TG_ENGINE_MT);
    if (on_reload) {
        lua_pushvalue(L, on_reload);
        e->reload_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        o.on_reload = lua_on_reload;
        o.reload_ud = e;
    }
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    if (st != TG_OK) {
        lua_pushstring(L, tg_engine_errmsg(eng));
        tg_engine_close(eng);
        return lua_error(L); /* __gc drops the function's reference */
    }
    e->eng = eng;
    return 1;
}

/* tg.check{ rules = "rules", db = "app.db" } -> findings (never raises for bad rules) */
int tgl_rules_check(lua_State *L) {
    tg_open_options o;
    tgl_check_open_options(L, 1, "check", &o);
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

/* tg.rules_stamp(dir) -> 16 hex digits that change whenever a rule file there is added,
 * removed, renamed or written (stat calls only: cheap enough to poll) */
int tgl_rules_stamp(lua_State *L) {
    uint64_t stamp = 0;
    if (tg_rules_stamp(tgl_check_cstring(L, 1), &stamp) != TG_OK)
        return luaL_error(L, "tenantguard.rules_stamp: cannot stat the rules");
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)stamp);
    lua_pushstring(L, hex);
    return 1;
}

/* eng:close(), __close and __gc: safe twice. Refused (raises 'engine is busy') from a
 * callback of eng:work or eng:run_matrix, which still use the engine; allowed from a
 * decision log callback (the context deciding keeps the engine's memory alive, and then
 * refuses to decide again). */
static int engine_close(lua_State *L) {
    lengine *e = luaL_checkudata(L, 1, TG_ENGINE_MT);
    if (e->working)
        return luaL_error(L, "the tenantguard engine is busy: it cannot be closed from a "
                             "callback of its own work or run_matrix");
    if (e->eng) {
        tg_engine_set_decision_sink(e->eng, NULL, NULL);
        tg_engine_close(e->eng);
        e->eng = NULL;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, e->log_ref);
    e->log_ref = LUA_NOREF;
    luaL_unref(L, LUA_REGISTRYINDEX, e->reload_ref);
    e->reload_ref = LUA_NOREF;
    return 0;
}

/* Builds the event table and calls the log function; runs under lua_pcall. */
static int call_log(lua_State *L) {
    const tg_decision_event *ev = lua_touserdata(L, 1);
    lengine *e = lua_touserdata(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, e->log_ref);
    lua_createtable(L, 0, 10);
    tgl_push_value(L, &ev->user); /* keys as integers or strings */
    lua_setfield(L, -2, "user");
    tgl_push_value(L, &ev->workspace);
    lua_setfield(L, -2, "workspace");
    if (ev->tenant.type != TG_NULL) {
        tgl_push_value(L, &ev->tenant);
        lua_setfield(L, -2, "tenant");
    }
    lua_pushstring(L, ev->family);
    lua_setfield(L, -2, "family");
    lua_pushstring(L, ev->path);
    lua_setfield(L, -2, "path");
    lua_createtable(L, (int)ev->n_ids, 0);
    for (size_t i = 0; i < ev->n_ids; i++) {
        tgl_push_value(L, &ev->ids[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "ids");
    lua_pushinteger(L, ev->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, ev->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, ev->rule_version);
    lua_setfield(L, -2, "rule_version");
    if (tg_engine_decision_options(e->eng) & TG_DECLOG_CHECK) {
        lua_pushstring(L, tg_reason_check(ev->reason));
        lua_setfield(L, -2, "check");
    }
    lua_call(L, 1, 0);
    return 0;
}

/* The C sink: every decision reaches the Lua function, always under lua_pcall. A failing
 * log function is reported once on stderr and never changes a decision. */
static void lua_sink(void *ud, const tg_decision_event *ev) {
    lengine *e = ud;
    lua_State *L = e->L;
    if (!L || e->log_ref == LUA_NOREF || !lua_checkstack(L, 8))
        return;
    lua_pushcfunction(L, call_log);
    lua_pushlightuserdata(L, (void *)ev);
    lua_pushlightuserdata(L, e);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        if (!e->log_failed)
            fprintf(stderr, "tenantguard: the decision log function failed: %.300s\n",
                    lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1));
        e->log_failed = 1;
        lua_pop(L, 1);
    }
}

static const char *const declog_fields[] = {"deciding_check", NULL};

/* eng:set_decision_log(fn | "path/to/file.jsonl" | nil [, { deciding_check = true }]):
 * with deciding_check, every event carries `check`, the check that decided it. */
static int engine_set_decision_log(lua_State *L) {
    lengine *e = check_engine(L, 1);
    int check = 0;
    if (!lua_isnoneornil(L, 3))
        tgl_field_boolean(L, tgl_fields(L, 3, "set_decision_log", declog_fields),
                          "set_decision_log", "deciding_check", &check);
    int t = lua_type(L, 2);
    if (t != LUA_TNONE && t != LUA_TNIL && t != LUA_TFUNCTION && t != LUA_TSTRING)
        return luaL_argerror(L, 2, "a function, a file path or nil");
    tg_engine_set_decision_options(e->eng, check ? TG_DECLOG_CHECK : 0);
    const char *path = t == LUA_TSTRING ? tgl_check_cstring(L, 2) : NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, e->log_ref);
    e->log_ref = LUA_NOREF;
    tg_engine_set_decision_sink(e->eng, NULL, NULL);
    if (tg_engine_set_decision_file(e->eng, NULL) != TG_OK)
        return luaL_error(L, "%s", tg_engine_errmsg(e->eng));
    switch (t) {
    case LUA_TFUNCTION:
        lua_pushvalue(L, 2);
        e->log_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        e->log_failed = 0;
        tg_engine_set_decision_sink(e->eng, lua_sink, e);
        break;
    case LUA_TSTRING:
        if (tg_engine_set_decision_file(e->eng, path) != TG_OK) {
            luaL_pushfail(L);
            lua_pushstring(L, tg_engine_errmsg(e->eng));
            return 2;
        }
        break;
    default: break;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* eng:reload() -> true | nil, message  (the old rules keep serving on failure) */
static int engine_reload(lua_State *L) {
    lengine *e = check_engine(L, 1);
    if (e->in_matrix) /* the matrix run reads the serving rules throughout */
        return luaL_error(L, "the tenantguard engine is busy: it cannot reload from a callback "
                             "of its own run_matrix");
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

/* eng:read(fn, ...) -> fn(...)'s results. Runs fn inside one read snapshot: every decision
 * of every context of this engine sees the same data, and writes raise. The snapshot ends
 * when fn returns or raises (the error is raised again as it was); a call inside fn joins
 * the outer snapshot. */
static int engine_read(lua_State *L) {
    lengine *e = check_engine(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (tg_engine_read_begin(e->eng) != TG_OK)
        return raise_plain(L, tg_engine_errmsg(e->eng));
    int rc = lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0);
    /* always ended, also on error; fn may have closed the engine (which ended it) */
    int ended = e->eng ? tg_engine_read_end(e->eng) : TG_OK;
    if (rc != LUA_OK)
        return lua_error(L); /* fn's error object, unchanged */
    if (ended != TG_OK)
        return raise_plain(L, tg_engine_errmsg(e->eng));
    return lua_gettop(L) - 1;
}

/* eng:settings() -> { cache_size = KiB, mmap_size = bytes, busy_timeout = ms, page_size =
 * bytes, journal_mode = "wal", synchronous = "normal" }: what the connection runs with. */
static int engine_settings(lua_State *L) {
    lengine *e = check_engine(L, 1);
    tg_settings s;
    if (tg_engine_settings(e->eng, &s) != TG_OK)
        return luaL_error(L, "this engine was opened without a database");
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, s.cache_size_kib);
    lua_setfield(L, -2, "cache_size");
    lua_pushinteger(L, s.mmap_size);
    lua_setfield(L, -2, "mmap_size");
    lua_pushinteger(L, s.busy_timeout_ms);
    lua_setfield(L, -2, "busy_timeout");
    lua_pushinteger(L, s.page_size);
    lua_setfield(L, -2, "page_size");
    lua_pushstring(L, s.journal_mode);
    lua_setfield(L, -2, "journal_mode");
    lua_pushstring(L, s.synchronous);
    lua_setfield(L, -2, "synchronous");
    lua_pushstring(L, s.backend);
    lua_setfield(L, -2, "backend");
    lua_pushinteger(L, s.statement_timeout_ms);
    lua_setfield(L, -2, "statement_timeout");
    lua_pushboolean(L, s.distributed);
    lua_setfield(L, -2, "distributed");
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
                                       {"context", tgl_context_open},
                                       {"read", engine_read},       {"settings", engine_settings},
                                       {"set_decision_log", engine_set_decision_log},
                                       {NULL, NULL}};
    tgl_new_class(L, TG_ENGINE_MT, meta, methods);
}
