/* libFuzzer target: the Lua request conversion (ctx:resolve, ctx:insert, ctx:update).
 *
 * An embedded Lua 5.4 state loads the tenantguard module (its sources are linked in and
 * preloaded as luaopen_tenantguard) and fuzz/request_driver.lua, which opens an engine on a
 * small reference database made once at start-up with the shipped rules. Each input is a
 * byte string the driver reads as a generator of requests (see request_driver.lua): context
 * options, then up to four calls with request tables of any shape: odd types, floats, huge
 * integers, strings with zero bytes, nested tables, tables whose metamethods build fresh
 * strings and run the garbage collector. Calls run under pcall: a Lua error is a fine
 * answer; a crash, an ASan or UBSan report, or a leak is a finding.
 *
 * Each input runs inside a transaction on the engine's own connection that is rolled back
 * afterwards, so writes made by one input are not seen by the next and a crash reproduces
 * from its input alone. */
#include "binding.h"
#include "engine.h"
#include "fuzz_common.h"

#include <lauxlib.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *L;
static int run_ref = LUA_NOREF;
static sqlite3 *db;

static void die(const char *what) {
    fprintf(stderr, "fuzz_request: %s: %s\n", what, L ? lua_tostring(L, -1) : "?");
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *db_path = tgf_refdb("ref.db", 40);
    L = tgf_lua_state();
    lua_getglobal(L, "require");
    lua_pushstring(L, "request_driver");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        die("loading fuzz/request_driver.lua");
    lua_getfield(L, -1, "init");
    lua_pushstring(L, db_path);
    lua_pushfstring(L, "%s/rules", tgf_source_dir());
    if (lua_pcall(L, 2, 1, 0) != LUA_OK)
        die("opening the engine");
    lengine *e = luaL_testudata(L, -1, TG_ENGINE_MT);
    if (!e || !e->eng)
        die("init did not return an engine");
    db = e->eng->db;
    lua_setfield(L, LUA_REGISTRYINDEX, "tg_fuzz_engine"); /* keeps it alive */
    lua_getfield(L, -1, "run");
    run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    /* an eager collector: a string C keeps without an anchor is freed at the next
     * allocation or so, in every run alike, rather than when the heap happens to grow */
    lua_gc(L, LUA_GCINC, 0, 1000, 0);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
    lua_pushlstring(L, (const char *)data, size);
    lua_pcall(L, 1, 0, 0); /* the driver catches what it expects; anything else is fine too */
    lua_settop(L, 0);
    /* contexts the input left open are closed by the collector: do it now, inside the run */
    lua_gc(L, LUA_GCCOLLECT);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return 0;
}
