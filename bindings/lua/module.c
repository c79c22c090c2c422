/* require "tenantguard": the module table. */
#include "binding.h"

static int l_checks(lua_State *L) {
    lua_newtable(L);
    const tg_check_info *c;
    for (size_t i = 0; (c = tg_check_info_get(i)) != NULL; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, c->code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, c->level == TG_LEVEL_ERROR ? "error" : c->level == TG_LEVEL_INFO ? "info" : "warning");
        lua_setfield(L, -2, "level");
        lua_pushstring(L, c->meaning);
        lua_setfield(L, -2, "meaning");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

__attribute__((visibility("default"))) int luaopen_tenantguard(lua_State *L);

int luaopen_tenantguard(lua_State *L) {
    tgl_engine_register(L);
    tgl_database_register(L);
    tgl_context_register(L);
    static const luaL_Reg fns[] = {{"open", tgl_engine_open},
                                   {"check", tgl_rules_check},
                                   {"rules_stamp", tgl_rules_stamp},
                                   {"connect", tgl_database_connect},
                                   {"checks", l_checks},
                                   {"mutations", tgl_mutations},
                                   {"pg_load", tgl_pg_load},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushstring(L, TG_VERSION);
    lua_setfield(L, -2, "VERSION");
    tgl_push_null(L);
    lua_setfield(L, -2, "null");
    return 1;
}
