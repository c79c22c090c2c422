/* Helpers shared by the fuzz targets (see fuzz_common.h). */
#include "fuzz_common.h"

#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int luaopen_tenantguard(lua_State *L);

static char scratch[512];

const char *tgf_source_dir(void) {
    const char *env = getenv("TG_SOURCE_DIR");
    return env && *env ? env : TG_FUZZ_SOURCE_DIR;
}

static void remove_scratch(void) {
    if (!scratch[0])
        return;
    DIR *d = opendir(scratch);
    if (d) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", scratch, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(scratch);
}

const char *tgf_scratch_dir(void) {
    if (scratch[0])
        return scratch;
    const char *bases[] = {"/dev/shm", getenv("TMPDIR"), "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        if (!bases[i] || !*bases[i])
            continue;
        snprintf(scratch, sizeof scratch, "%s/tg-fuzz-XXXXXX", bases[i]);
        if (mkdtemp(scratch)) {
            atexit(remove_scratch);
            return scratch;
        }
    }
    fprintf(stderr, "fuzz: cannot make a scratch directory\n");
    abort();
}

static void check(lua_State *L, int rc, const char *what) {
    if (rc == LUA_OK)
        return;
    fprintf(stderr, "fuzz: %s: %s\n", what, lua_tostring(L, -1));
    abort();
}

lua_State *tgf_lua_state(void) {
    lua_State *L = luaL_newstate();
    if (!L)
        abort();
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_tenantguard);
    lua_setfield(L, -2, "tenantguard");
    lua_pop(L, 1);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s/scripts/?.lua;%s/fuzz/?.lua", tgf_source_dir(), tgf_source_dir());
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    return L;
}

const char *tgf_refdb(const char *name, int rows) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", tgf_scratch_dir(), name);
    lua_State *L = tgf_lua_state();
    int rc = luaL_loadstring(L, "local path, rows = ...\n"
                                "require('refdb').create(path, { rows = rows, force = true })");
    if (rc == LUA_OK) {
        lua_pushstring(L, path);
        lua_pushinteger(L, rows);
        rc = lua_pcall(L, 2, 0, 0);
    }
    check(L, rc, "building the reference database");
    lua_close(L);
    return path;
}
