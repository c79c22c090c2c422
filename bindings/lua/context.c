/* tenantguard.Context: one request. A context keeps its engine alive through its user
 * value; every call converts the request table once and leaves all deciding to C. */
#include "binding.h"

#include <stdlib.h>
#include <string.h>

typedef struct lctx {
    tg_ctx *ctx; /* NULL once closed */
} lctx;

static lctx *check_ctx(lua_State *L, int idx) {
    lctx *c = luaL_checkudata(L, idx, TG_CONTEXT_MT);
    if (!c->ctx)
        luaL_error(L, "attempt to use a closed tenantguard context");
    /* the decision log callback runs on the state of the call in progress */
    lua_getiuservalue(L, idx, 1);
    lengine *e = lua_touserdata(L, -1);
    if (e)
        e->L = L;
    lua_pop(L, 1);
    return c;
}

static int opt_int_field(lua_State *L, int t, const char *key, lua_Integer *out) {
    int ty = lua_getfield(L, t, key);
    int present = ty != LUA_TNIL;
    if (present) {
        if (!lua_isinteger(L, -1))
            luaL_error(L, "field '%s' must be an integer, got %s", key,
                       ty == LUA_TNUMBER ? "a fraction" : luaL_typename(L, -1));
        *out = lua_tointeger(L, -1);
    }
    lua_pop(L, 1);
    return present;
}

/* eng:context{ user = 7, workspace = 1, tenant = 3 }  (tenant may be nil) */
int tgl_context_open(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    tg_ctx_options o = {0};
    lua_Integer v;
    if (!opt_int_field(L, 2, "user", &v))
        return luaL_error(L, "context needs 'user'");
    o.user = v;
    if (!opt_int_field(L, 2, "workspace", &v))
        return luaL_error(L, "context needs 'workspace'");
    o.workspace = v;
    if (opt_int_field(L, 2, "tenant", &v)) {
        o.tenant = v;
        o.has_tenant = 1;
    }
    lctx *c = lua_newuserdatauv(L, sizeof *c, 1);
    c->ctx = NULL;
    luaL_setmetatable(L, TG_CONTEXT_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    tg_ctx *ctx = NULL;
    int st = tg_ctx_open(e->eng, &o, &ctx);
    if (st != TG_OK) {
        lua_pushstring(L, tg_ctx_errmsg(ctx));
        tg_ctx_close(ctx);
        return lua_error(L);
    }
    c->ctx = ctx;
    return 1;
}

static int ctx_close(lua_State *L) {
    lctx *c = luaL_checkudata(L, 1, TG_CONTEXT_MT);
    if (c->ctx) {
        tg_ctx_close(c->ctx);
        c->ctx = NULL;
    }
    return 0;
}

/* Errors a caller can expect (the database, a rejected write) return nil, message; misuse
 * (unknown names, limits, missing arguments) raises. */
static int fail(lua_State *L, tg_ctx *ctx, int st) {
    if (st == TG_DB || st == TG_BUSY || st == TG_REJECTED || st == TG_NOMEM) {
        luaL_pushfail(L);
        lua_pushstring(L, tg_ctx_errmsg(ctx));
        lua_pushstring(L, tg_status_name(st));
        return 3;
    }
    lua_pushstring(L, tg_ctx_errmsg(ctx));
    return lua_error(L);
}

/* ctx:resolve{ family =, path =, id =, ids =, owner =, query =, limit =, after =,
 *              capability =, exception = } -> decision */
static int ctx_resolve(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    tg_request req = {0};
    req.family = tgl_opt_string_field(L, 2, "family", NULL);
    req.exception = tgl_opt_string_field(L, 2, "exception", NULL);
    if (!req.family && !req.exception)
        return luaL_error(L, "resolve needs 'family' (or 'exception')");
    const char *path = tgl_opt_string_field(L, 2, "path", NULL);
    if (!path)
        return luaL_error(L, "resolve needs 'path'");
    int pi = tg_path_type_index(path);
    if (pi < 0)
        return luaL_error(L, "unknown path '%s'", path);
    req.path = (tg_path_type)pi;
    lua_Integer v;
    if (opt_int_field(L, 2, "id", &v)) {
        req.id = v;
        req.has_id = 1;
    }
    if (opt_int_field(L, 2, "owner", &v)) {
        req.owner = v;
        req.has_owner = 1;
    }
    if (opt_int_field(L, 2, "limit", &v)) {
        if (v < 1)
            return luaL_error(L, "limit must be at least 1, got %d", (int)v);
        req.limit = v;
    }
    if (opt_int_field(L, 2, "after", &v)) {
        req.after = v;
        req.has_after = 1;
    }
    req.query = tgl_opt_string_field(L, 2, "query", NULL);
    req.capability = tgl_opt_string_field(L, 2, "capability", NULL);
    int64_t *ids = NULL;
    if (lua_getfield(L, 2, "ids") != LUA_TNIL) {
        if (!lua_istable(L, -1))
            return luaL_error(L, "field 'ids' must be a list of integers");
        size_t n = lua_rawlen(L, -1);
        /* from the Lua state's allocator: an error below cannot leak it */
        ids = lua_newuserdatauv(L, (n ? n : 1) * sizeof *ids, 0);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -2, (lua_Integer)i + 1);
            if (!lua_isinteger(L, -1))
                return luaL_error(L, "ids[%d] must be an integer, got %s", (int)i + 1,
                                  luaL_typename(L, -1));
            ids[i] = lua_tointeger(L, -1);
            lua_pop(L, 1);
        }
        req.ids = ids;
        req.n_ids = n;
    }
    const tg_decision *d = NULL;
    int st = tg_ctx_resolve(c->ctx, &req, &d);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    int single = req.path == TG_PATH_DETAIL || req.path == TG_PATH_ROW_ACTION ||
                 req.path == TG_PATH_CANONICAL_VIEWER ||
                 (req.path == TG_PATH_RELATION_MANAGER && req.has_id);
    tgl_push_decision(L, d, single);
    return 1;
}

/* Reads the values table at idx into a tg_column_value array on the Lua stack. */
static tg_column_value *check_values(lua_State *L, int idx, size_t *n) {
    luaL_checktype(L, idx, LUA_TTABLE);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "write values are { column = value }; got a %s key",
                       luaL_typename(L, -1));
        count++;
    }
    tg_column_value *cv = lua_newuserdatauv(L, (count ? count : 1) * sizeof *cv, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        size_t clen;
        cv[i].column = lua_tolstring(L, -2, &clen);
        if (strlen(cv[i].column) != clen)
            luaL_error(L, "a column name contains a zero byte");
        tgl_check_value(L, -1, &cv[i].value, cv[i].column);
        lua_pop(L, 1);
        i++;
    }
    *n = count;
    return cv;
}

/* ctx:insert(family, { col = value, ... } [, { capability = }]) -> decision | nil, msg */
static int ctx_insert(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    size_t flen;
    const char *family = luaL_checklstring(L, 2, &flen);
    if (strlen(family) != flen)
        return luaL_argerror(L, 2, "contains a zero byte");
    size_t n;
    tg_column_value *cv = check_values(L, 3, &n);
    const char *cap = lua_istable(L, 4) ? tgl_opt_string_field(L, 4, "capability", NULL) : NULL;
    const tg_decision *d = NULL;
    int st = tg_ctx_insert(c->ctx, family, cv, n, cap, &d);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    tgl_push_decision(L, d, 1);
    return 1;
}

/* ctx:update(family, id, { col = value, ... } [, { capability = }]) -> decision | nil, msg */
static int ctx_update(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    size_t flen;
    const char *family = luaL_checklstring(L, 2, &flen);
    if (strlen(family) != flen)
        return luaL_argerror(L, 2, "contains a zero byte");
    lua_Integer id = luaL_checkinteger(L, 3);
    size_t n;
    tg_column_value *cv = check_values(L, 4, &n);
    const char *cap = lua_istable(L, 5) ? tgl_opt_string_field(L, 5, "capability", NULL) : NULL;
    const tg_decision *d = NULL;
    int st = tg_ctx_update(c->ctx, family, id, cv, n, cap, &d);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    tgl_push_decision(L, d, 1);
    return 1;
}

/* ctx:version() -> the rule version this context decides with */
static int ctx_version(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    lua_pushstring(L, tg_ctx_rules(c->ctx)->version);
    return 1;
}

static int ctx_tostring(lua_State *L) {
    lctx *c = luaL_checkudata(L, 1, TG_CONTEXT_MT);
    if (!c->ctx)
        lua_pushstring(L, "tenantguard.Context (closed)");
    else
        lua_pushfstring(L, "tenantguard.Context (rules %s)", tg_ctx_rules(c->ctx)->version);
    return 1;
}

void tgl_context_register(lua_State *L) {
    static const luaL_Reg meta[] = {{"__gc", ctx_close},
                                    {"__close", ctx_close},
                                    {"__tostring", ctx_tostring},
                                    {NULL, NULL}};
    static const luaL_Reg methods[] = {{"resolve", ctx_resolve}, {"insert", ctx_insert},
                                       {"update", ctx_update},   {"version", ctx_version},
                                       {"close", ctx_close},     {NULL, NULL}};
    tgl_new_class(L, TG_CONTEXT_MT, meta, methods);
}
