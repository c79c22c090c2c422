/* tenantguard.Database: a plain SQLite handle for tools and tests (creating the reference
 * database, raw writes to prove the triggers, checksums). It is not a way around the guard:
 * it has no rules and decides nothing. Values are always bound, never pasted into SQL. */
#include "binding.h"

#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <string.h>
#include <time.h>

typedef struct ldb {
    sqlite3 *db; /* NULL once closed */
} ldb;

static ldb *check_db(lua_State *L, int idx) {
    ldb *d = luaL_checkudata(L, idx, TG_DATABASE_MT);
    if (!d->db)
        luaL_error(L, "attempt to use a closed database");
    return d;
}

/* tg.connect(path [, {readonly = true}]) -> db */
int tgl_database_connect(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "readonly");
        if (lua_toboolean(L, -1))
            flags = SQLITE_OPEN_READONLY;
        lua_pop(L, 1);
    }
    ldb *d = lua_newuserdatauv(L, sizeof *d, 0);
    d->db = NULL;
    luaL_setmetatable(L, TG_DATABASE_MT);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        lua_pushfstring(L, "cannot open database '%s': %s", path,
                        db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return lua_error(L);
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, 5000);
    d->db = db;
    return 1;
}

static int db_close(lua_State *L) {
    ldb *d = luaL_checkudata(L, 1, TG_DATABASE_MT);
    if (d->db) {
        sqlite3_close_v2(d->db);
        d->db = NULL;
    }
    return 0;
}

static int raise_db(lua_State *L, sqlite3 *db) {
    lua_pushstring(L, sqlite3_errmsg(db));
    return lua_error(L);
}

/* db:exec(sql) runs one or more statements without results. */
static int db_exec(lua_State *L) {
    ldb *d = check_db(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    char *msg = NULL;
    if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        lua_pushstring(L, msg ? msg : sqlite3_errmsg(d->db));
        sqlite3_free(msg);
        return lua_error(L);
    }
    return 0;
}

static void bind_args(lua_State *L, sqlite3 *db, sqlite3_stmt *st, int first) {
    int top = lua_gettop(L);
    int n = sqlite3_bind_parameter_count(st);
    for (int i = 1; i <= n; i++) {
        int idx = first + i - 1;
        int rc;
        switch (idx <= top ? lua_type(L, idx) : LUA_TNIL) {
        case LUA_TNIL: rc = sqlite3_bind_null(st, i); break;
        case LUA_TBOOLEAN: rc = sqlite3_bind_int(st, i, lua_toboolean(L, idx)); break;
        case LUA_TNUMBER:
            rc = lua_isinteger(L, idx) ? sqlite3_bind_int64(st, i, lua_tointeger(L, idx))
                                       : sqlite3_bind_double(st, i, lua_tonumber(L, idx));
            break;
        case LUA_TSTRING: {
            size_t len;
            const char *s = lua_tolstring(L, idx, &len);
            rc = sqlite3_bind_text64(st, i, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
            break;
        }
        default:
            sqlite3_finalize(st);
            luaL_error(L, "cannot bind a %s as SQL parameter %d", luaL_typename(L, idx), i);
            return;
        }
        if (rc != SQLITE_OK) {
            lua_pushstring(L, sqlite3_errmsg(db));
            sqlite3_finalize(st);
            lua_error(L);
        }
    }
}

static void push_column(lua_State *L, sqlite3_stmt *st, int c) {
    switch (sqlite3_column_type(st, c)) {
    case SQLITE_INTEGER: lua_pushinteger(L, sqlite3_column_int64(st, c)); break;
    case SQLITE_FLOAT: lua_pushnumber(L, sqlite3_column_double(st, c)); break;
    case SQLITE_NULL: lua_pushnil(L); break;
    default:
        lua_pushlstring(L, (const char *)sqlite3_column_text(st, c),
                        (size_t)sqlite3_column_bytes(st, c));
    }
}

/* db:query(sql, ...) -> { {col = value, ...}, ... }  (parameters bound in order) */
static int db_query(lua_State *L) {
    ldb *d = check_db(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return raise_db(L, d->db);
    bind_args(L, d->db, st, 3);
    lua_newtable(L);
    int n = 0, rc;
    int cols = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        lua_createtable(L, 0, cols);
        for (int c = 0; c < cols; c++) {
            push_column(L, st, c);
            lua_setfield(L, -2, sqlite3_column_name(st, c));
        }
        lua_rawseti(L, -2, ++n);
    }
    if (rc != SQLITE_DONE) {
        lua_pushstring(L, sqlite3_errmsg(d->db));
        sqlite3_finalize(st);
        return lua_error(L);
    }
    sqlite3_finalize(st);
    lua_pushinteger(L, sqlite3_changes64(d->db));
    return 2;
}

/* db:value(sql, ...) -> the first column of the first row, or nil */
static int db_value(lua_State *L) {
    ldb *d = check_db(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(d->db, sql, -1, &st, NULL) != SQLITE_OK)
        return raise_db(L, d->db);
    bind_args(L, d->db, st, 3);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        push_column(L, st, 0);
    else
        lua_pushnil(L);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        lua_pushstring(L, sqlite3_errmsg(d->db));
        sqlite3_finalize(st);
        return lua_error(L);
    }
    sqlite3_finalize(st);
    return 1;
}

static int db_changes(lua_State *L) {
    ldb *d = check_db(L, 1);
    lua_pushinteger(L, sqlite3_changes64(d->db));
    return 1;
}

static int db_tostring(lua_State *L) {
    ldb *d = luaL_checkudata(L, 1, TG_DATABASE_MT);
    if (d->db)
        lua_pushfstring(L, "tenantguard.Database (%s)", sqlite3_db_filename(d->db, "main"));
    else
        lua_pushstring(L, "tenantguard.Database (closed)");
    return 1;
}

void tgl_database_register(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", db_close},
                                    {"__close", db_close},
                                    {"__tostring", db_tostring},
                                    {NULL, NULL}};
    static const luaL_Reg methods[] = {{"exec", db_exec},       {"query", db_query},
                                       {"value", db_value},     {"changes", db_changes},
                                       {"close", db_close},     {NULL, NULL}};
    tgl_new_class(L, TG_DATABASE_MT, meta, methods);
}

/* ---- require "tenantguard.signal": Ctrl-C for the command-line tool ------------------------
 * Plain Lua has no signal handling, and the standalone interpreter turns SIGINT into a Lua
 * error raised only when Lua code next runs (never inside a long C call). The tool instead
 * chooses, per command:
 *   signal.default()     SIGINT ends the process at once, as for any C program (the shell
 *                        then reports status 130); right for commands whose work is one
 *                        transaction that a kill rolls back.
 *   signal.trap()        the first SIGINT only sets a flag that signal.interrupted() reads
 *                        (the worker checks it after each committed batch and stops); a
 *                        second one ends the process at once.
 * Loaded from this same library by Lua's all-in-one loader (luaopen_tenantguard_signal). */

static volatile sig_atomic_t tgl_sigint_count;

static void tgl_on_sigint(int sig) {
    if (tgl_sigint_count++ > 0) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

static int set_sigint(void (*handler)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    return sigaction(SIGINT, &sa, NULL);
}

static int sig_trap(lua_State *L) {
    tgl_sigint_count = 0;
    if (set_sigint(tgl_on_sigint) != 0)
        return luaL_error(L, "cannot install the SIGINT handler");
    return 0;
}

static int sig_default(lua_State *L) {
    if (set_sigint(SIG_DFL) != 0)
        return luaL_error(L, "cannot restore the default SIGINT action");
    return 0;
}

static int sig_interrupted(lua_State *L) {
    lua_pushboolean(L, tgl_sigint_count > 0);
    return 1;
}

/* signal.sleep(ms) -> true when a trapped SIGINT cut it short (or had come before), else
 * false. Wakes at once on Ctrl-C, so a polling loop (lint --watch) stops without delay. */
static int sig_sleep(lua_State *L) {
    lua_Integer ms = luaL_checkinteger(L, 1);
    luaL_argcheck(L, ms >= 0 && ms <= 3600000, 1, "0 to 3,600,000 ms");
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (tgl_sigint_count == 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    lua_pushboolean(L, tgl_sigint_count > 0);
    return 1;
}

__attribute__((visibility("default"))) int luaopen_tenantguard_signal(lua_State *L);

int luaopen_tenantguard_signal(lua_State *L) {
    static const luaL_Reg fns[] = {{"trap", sig_trap},
                                   {"default", sig_default},
                                   {"interrupted", sig_interrupted},
                                   {"sleep", sig_sleep},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}
