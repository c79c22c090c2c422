/* tenantguard.Context: one request. A context keeps its engine alive through its user
 * value; every call converts the request table once and leaves all deciding to C. */
#include "binding.h"

#include <string.h>

typedef struct lctx {
    tg_ctx *ctx; /* NULL once closed */
    lengine *e;  /* the engine's userdata, kept alive by this one's user value */
    int busy;    /* a call into C is in progress: its decision log may run Lua code */
} lctx;

static lctx *check_ctx(lua_State *L, int idx) {
    lctx *c = luaL_checkudata(L, idx, TG_CONTEXT_MT);
    if (!c->ctx)
        luaL_error(L, "attempt to use a closed tenantguard context");
    return c;
}

/* Around every call into C that can decide: the decision log callback runs on the state of
 * this call (a coroutine's, say), and the one of an outer call is restored afterwards. */
static lua_State *enter(lctx *c, lua_State *L) {
    lua_State *prev = c->e->L;
    c->e->L = L;
    c->busy++;
    return prev;
}

static void leave(lctx *c, lua_State *prev) {
    c->busy--;
    c->e->L = prev;
}

static const char *const ctx_fields[] = {"user", "workspace", "tenant", "snapshot", NULL};

/* eng:context{ user = 7, workspace = 1, tenant = 3 [, snapshot = true] }  (tenant may be
 * nil). With snapshot, the context holds the engine's read snapshot until it closes (close
 * it with <close> or ctx:close(): until then the engine refuses writes). */
int tgl_context_open(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    const char *what = "context";
    int t = tgl_fields(L, 2, what, ctx_fields);
    tg_ctx_options o;
    memset(&o, 0, sizeof o);
    tgl_field_boolean(L, t, what, "snapshot", &o.snapshot);
    if (!tgl_field_key(L, t, what, "user", &o.user))
        return luaL_error(L, "context needs 'user'");
    if (!tgl_field_key(L, t, what, "workspace", &o.workspace))
        return luaL_error(L, "context needs 'workspace'");
    tgl_field_key(L, t, what, "tenant", &o.tenant); /* TG_NULL when nil */
    /* made closed first: an error below cannot leave it half-made */
    lctx *c = lua_newuserdatauv(L, sizeof *c, 1);
    c->ctx = NULL;
    c->e = e;
    c->busy = 0;
    luaL_setmetatable(L, TG_CONTEXT_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    tg_ctx *ctx = NULL;
    lua_State *prev = e->L; /* an automatic reload's on_reload runs in this call */
    e->L = L;
    int st = tg_ctx_open(e->eng, &o, &ctx);
    e->L = prev;
    if (st != TG_OK) {
        lua_pushstring(L, tg_ctx_errmsg(ctx));
        tg_ctx_close(ctx);
        return lua_error(L);
    }
    c->ctx = ctx;
    return 1;
}

/* ctx:close(), __close and __gc: safe twice. Refused (raises) from the context's own
 * decision log callback, where the decision in progress still needs it. */
static int ctx_close(lua_State *L) {
    lctx *c = luaL_checkudata(L, 1, TG_CONTEXT_MT);
    if (c->busy)
        return luaL_error(L, "the tenantguard context is busy: it cannot be closed from its "
                             "own decision log callback");
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

static const char *const request_fields[] = {"family", "exception", "path",  "id",
                                             "ids",    "owner",     "query", "limit",
                                             "after",  "capability", NULL};

/* Reads the request table at argument 2 into *req (what: "resolve", "explain"). Everything
 * req points to is anchored by the copy of the table and the ids userdata on the stack.
 * Returns 1 when the request names one record (the decision carries `record`). */
static int check_request(lua_State *L, lctx *c, const char *what, tg_request *req) {
    int t = tgl_fields(L, 2, what, request_fields);
    memset(req, 0, sizeof *req);
    req->family = tgl_field_string(L, t, what, "family");
    req->exception = tgl_field_string(L, t, what, "exception");
    if (!req->family && !req->exception)
        return luaL_error(L, "%s needs 'family' (or 'exception')", what);
    if (req->family && req->exception)
        return luaL_error(L, "%s takes 'family' or 'exception', not both", what);
    const char *path = tgl_field_string(L, t, what, "path");
    if (!path)
        return luaL_error(L, "%s needs 'path'", what);
    int pi = tg_path_type_index(path);
    if (pi < 0)
        return luaL_error(L, "%s: unknown path '%s'", what, path);
    req->path = (tg_path_type)pi;
    lua_Integer v;
    tgl_field_key(L, t, what, "id", &req->id);
    tgl_field_key(L, t, what, "owner", &req->owner);
    if (tgl_field_integer(L, t, what, "limit", 1, LUA_MAXINTEGER, &v))
        req->limit = v;
    tgl_field_key(L, t, what, "after", &req->after);
    req->query = tgl_field_string(L, t, what, "query");
    if (req->path == TG_PATH_GLOBAL_SEARCH && !req->query)
        return luaL_error(L, "%s: global_search needs 'query' (\"\" matches everything)", what);
    req->capability = tgl_field_string(L, t, what, "capability");
    int64_t max_ids = tg_ctx_rules(c->ctx)->app.max_bulk_ids;
    req->ids = tgl_field_ids(L, t, what, "ids", max_ids > 0 ? (size_t)max_ids : 0, &req->n_ids);
    return req->path == TG_PATH_DETAIL || req->path == TG_PATH_ROW_ACTION ||
           req->path == TG_PATH_CANONICAL_VIEWER ||
           (req->path == TG_PATH_RELATION_MANAGER && req->id.type != TG_NULL);
}

/* ctx:resolve{ family =, path =, id =, ids =, owner =, query =, limit =, after =,
 *              capability =, exception = } -> decision */
static int ctx_resolve(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    tg_request req;
    int single = check_request(L, c, "resolve", &req);
    const tg_decision *d = NULL;
    lua_State *prev = enter(c, L);
    int st = tg_ctx_resolve(c->ctx, &req, &d);
    leave(c, prev);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    tgl_push_decision(L, d, single);
    return 1;
}

/* Pushes the checks of explanation x as a list of { check =, step =, result =, passed =,
 * read =, reason =, decided = }. */
static void push_checks(lua_State *L, const tg_explanation *x) {
    static const char *const results[] = {"pass", "fail", "skip"};
    lua_createtable(L, (int)x->n_checks, 0);
    for (size_t i = 0; i < x->n_checks; i++) {
        const tg_explain_check *k = &x->checks[i];
        lua_createtable(L, 0, 7);
        lua_pushstring(L, k->check);
        lua_setfield(L, -2, "check");
        lua_pushstring(L, k->step);
        lua_setfield(L, -2, "step");
        lua_pushstring(L, results[k->result >= 0 && k->result <= 2 ? k->result : 2]);
        lua_setfield(L, -2, "result");
        if (k->result != TG_EXPLAIN_SKIP) {
            lua_pushboolean(L, k->result == TG_EXPLAIN_PASS);
            lua_setfield(L, -2, "passed");
        }
        lua_pushstring(L, k->read);
        lua_setfield(L, -2, "read");
        if (k->reason) {
            lua_pushstring(L, k->reason);
            lua_setfield(L, -2, "reason");
        }
        if (i == x->decided_at) {
            lua_pushboolean(L, 1);
            lua_setfield(L, -2, "decided");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static int free_explanation(lua_State *L) {
    tg_explanation **box = lua_touserdata(L, 1);
    if (box && *box) {
        tg_explanation_free(*box);
        *box = NULL;
    }
    return 0;
}

/* ctx:explain{ the request of ctx:resolve } -> the decision (status, reason, record or
 * records) with `checks` (every check in order: what it read, whether it passed) and
 * `decided_by` (the check that decided the status). Not logged as a decision. */
static int ctx_explain(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    tg_request req;
    int single = check_request(L, c, "explain", &req);
    /* the explanation is held by a box whose __gc frees it: a memory error while the
     * tables are built cannot leak it */
    tg_explanation **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    if (luaL_newmetatable(L, "tenantguard.Explanation")) {
        lua_pushcfunction(L, free_explanation);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    lua_State *prev = enter(c, L);
    int st = tg_ctx_explain(c->ctx, &req, box);
    leave(c, prev);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    const tg_explanation *x = *box;
    tgl_push_decision(L, x->decision, single);
    lua_pushinteger(L, x->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, x->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, x->decided_by);
    lua_setfield(L, -2, "decided_by");
    push_checks(L, x);
    lua_setfield(L, -2, "checks");
    tg_explanation_free(*box);
    *box = NULL;
    return 1;
}

static const char *const write_fields[] = {"capability", NULL};

/* The optional { capability = } of a write, at arg. */
static const char *write_capability(lua_State *L, int arg, const char *what) {
    if (lua_isnoneornil(L, arg))
        return NULL;
    int t = tgl_fields(L, arg, what, write_fields);
    return tgl_field_string(L, t, what, "capability");
}

/* ctx:insert(family, { col = value, ... } [, { capability = }]) -> decision | nil, msg */
static int ctx_insert(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    const char *family = tgl_check_cstring(L, 2);
    const char *cap = write_capability(L, 4, "insert"); /* before anything is pushed */
    size_t n;
    tg_column_value *cv = tgl_check_column_values(L, 3, "insert", &n);
    const tg_decision *d = NULL;
    lua_State *prev = enter(c, L);
    int st = tg_ctx_insert(c->ctx, family, cv, n, cap, &d);
    leave(c, prev);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    tgl_push_decision(L, d, 1);
    return 1;
}

/* ctx:update(family, id, { col = value, ... } [, { capability = }]) -> decision | nil, msg */
static int ctx_update(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    const char *family = tgl_check_cstring(L, 2);
    tg_value id;
    tgl_check_key(L, 3, &id); /* anchored: argument 3 stays on the stack */
    const char *cap = write_capability(L, 5, "update"); /* before anything is pushed */
    size_t n;
    tg_column_value *cv = tgl_check_column_values(L, 4, "update", &n);
    const tg_decision *d = NULL;
    lua_State *prev = enter(c, L);
    int st = tg_ctx_update(c->ctx, family, &id, cv, n, cap, &d);
    leave(c, prev);
    if (st != TG_OK)
        return fail(L, c->ctx, st);
    tgl_push_decision(L, d, 1);
    return 1;
}

/* ctx:query: the row being added to the rows table. */
typedef struct query_job {
    lua_Integer count;
    size_t n;
    const char *const *names;
    const tg_value *vals;
} query_job;

/* Appends the current row to the list at 2 (and the names to the list at 3 with the first
 * row), under lua_pcall: a memory error cannot unwind through C. */
static int push_row(lua_State *L) {
    query_job *j = lua_touserdata(L, 1);
    if (j->count == 0)
        for (size_t i = 0; i < j->n; i++) {
            lua_pushstring(L, j->names[i] ? j->names[i] : "?");
            lua_rawseti(L, 3, (lua_Integer)i + 1);
        }
    lua_createtable(L, 0, (int)j->n);
    for (size_t i = 0; i < j->n; i++) {
        tgl_push_value(L, &j->vals[i]); /* NULL: nil, the field is absent */
        lua_setfield(L, -2, j->names[i] ? j->names[i] : "?");
    }
    lua_rawseti(L, 2, ++j->count);
    return 0;
}

typedef struct query_ud {
    lua_State *L;
    query_job job;
} query_ud;

static int query_row(void *ud, size_t n, const char *const *names, const tg_value *vals) {
    query_ud *q = ud;
    lua_State *L = q->L;
    q->job.n = n;
    q->job.names = names;
    q->job.vals = vals;
    lua_pushcfunction(L, push_row);
    lua_pushlightuserdata(L, &q->job);
    lua_pushvalue(L, 5); /* ctx_query's rows and columns */
    lua_pushvalue(L, 6);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 1; /* stops the query; its transaction is rolled back */
    }
    return 0;
}

/* ctx:query(sql [, params]) -> { status =, reason =, rows =, columns =, changes = }
 * One statement of raw SQL ($1, $2, ... bound from the list params; params.n counts a list
 * with nils; tg.null is NULL) in a transaction whose tenantguard.tenant_id is the context's
 * tenant (PostgreSQL only). A context outside its scope gets { status = 404, reason = } and
 * no SQL runs; each row is a table keyed by column name (NULL: absent). A failing statement
 * returns nil, message. */
static int ctx_query(lua_State *L) {
    lctx *c = check_ctx(L, 1);
    const char *sql = tgl_check_cstring(L, 2);
    size_t n = 0;
    tg_value *params = NULL;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "n");
        n = lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0 ? (size_t)lua_tointeger(L, -1)
                                                               : lua_rawlen(L, 3);
        lua_pop(L, 1);
        if (n > 65535)
            return luaL_error(L, "query: at most 65535 parameters");
        /* the values' strings stay anchored by the table at argument 3 */
        params = lua_newuserdatauv(L, (n ? n : 1) * sizeof *params, 0);
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, 3, (lua_Integer)i + 1);
            tgl_check_value(L, -1, &params[i], "query parameter");
            lua_pop(L, 1);
        }
    }
    lua_settop(L, 4);
    lua_newtable(L); /* 5: rows */
    lua_newtable(L); /* 6: columns */
    query_ud q = {L, {0, 0, NULL, NULL}};
    const tg_decision *d = NULL;
    int64_t changes = 0;
    lua_State *prev = enter(c, L);
    int st = tg_ctx_query(c->ctx, sql, params, n, query_row, &q, &changes, &d);
    leave(c, prev);
    if (st != TG_OK)
        return fail(L, c->ctx, st == TG_ERROR ? TG_NOMEM : st);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, d->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    if (d->status == 200) {
        lua_pushvalue(L, 5);
        lua_setfield(L, -2, "rows");
        lua_pushvalue(L, 6);
        lua_setfield(L, -2, "columns");
        lua_pushinteger(L, (lua_Integer)changes);
        lua_setfield(L, -2, "changes");
    }
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
    static const luaL_Reg methods[] = {{"resolve", ctx_resolve}, {"explain", ctx_explain},
                                       {"insert", ctx_insert},
                                       {"update", ctx_update},   {"version", ctx_version},
                                       {"query", ctx_query},
                                       {"close", ctx_close},     {NULL, NULL}};
    tgl_new_class(L, TG_CONTEXT_MT, meta, methods);
}
