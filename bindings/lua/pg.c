/* tg.pg_load{ from =, to =, ... }: a SQLite database's tables copied into PostgreSQL (the
 * loader is core/pg_load.c; `tenantguard pg-load` is its command line). */
#include "binding.h"

#include "store_pg.h"

#include <string.h>

static void on_table(void *ud, const char *table, int64_t rows) {
    lua_State *L = ud; /* the list of loaded tables is at the stack top */
    lua_createtable(L, 0, 2);
    lua_pushstring(L, table);
    lua_setfield(L, -2, "table");
    lua_pushinteger(L, (lua_Integer)rows);
    lua_setfield(L, -2, "rows");
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* tg.pg_load{ from = FILE, to = URI, owner_role =, grant_to =, int_type = "bigint" |
 * "integer", uuid_columns = "auto" | "none", replace = false } -> { {table=, rows=}, ... }, or
 * nil, message. Bad arguments raise. */
int tgl_pg_load(lua_State *L) {
    static const char *const fields[] = {"from",         "to",       "owner_role", "grant_to",
                                         "int_type",     "uuid_columns", "replace", NULL};
    static const char *what = "pg_load";
    luaL_checktype(L, 1, LUA_TTABLE);
    int t = tgl_fields(L, 1, what, fields);
    tg__pg_load_options o = {0};
    o.from = tgl_field_string(L, t, what, "from");
    o.to = tgl_field_string(L, t, what, "to");
    if (!o.from || !o.to)
        return luaL_error(L, "%s: 'from' (a SQLite file) and 'to' (a PostgreSQL connection "
                             "string) are required", what);
    o.owner_role = tgl_field_string(L, t, what, "owner_role");
    o.grant_to = tgl_field_string(L, t, what, "grant_to");
    const char *it = tgl_field_string(L, t, what, "int_type");
    if (it && strcmp(it, "integer") != 0 && strcmp(it, "bigint") != 0)
        return luaL_error(L, "%s: int_type must be \"bigint\" or \"integer\"", what);
    o.int_type_integer = it && strcmp(it, "integer") == 0;
    const char *uc = tgl_field_string(L, t, what, "uuid_columns");
    if (uc && strcmp(uc, "auto") != 0 && strcmp(uc, "none") != 0)
        return luaL_error(L, "%s: uuid_columns must be \"auto\" or \"none\"", what);
    o.uuid_auto = !uc || strcmp(uc, "auto") == 0;
    tgl_field_boolean(L, t, what, "replace", &o.replace);
    lua_newtable(L);
    o.progress = on_table;
    o.ud = L;
    tg__buf err = {0};
    int rc = tg__pg_load(&o, &err);
    if (rc != TG__ST_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err.oom ? "out of memory" : tg__buf_str(&err));
        tg__buf_free(&err);
        return 2;
    }
    tg__buf_free(&err);
    return 1;
}
