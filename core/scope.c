/* Contexts and their scope: who the caller is in this workspace and tenant, read once per
 * request with one prepared statement, and the storage every decision reuses. */
#include "ctx.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

int tg__ctx_fail(tg_ctx *ctx, int status, const char *fmt, ...) {
    /* formatted before the buffer is reset: an argument may point into it */
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__buf_reset(&ctx->err);
    tg__buf_add(&ctx->err, msg);
    return status;
}

static int set_keys(tg_ctx *ctx, const tg_ctx_options *o);

int tg_ctx_open(tg_engine *eng, const tg_ctx_options *o, tg_ctx **out) {
    if (!out)
        return TG_MISUSE;
    *out = NULL;
    if (!eng || !o || eng->closed)
        return TG_MISUSE;
    /* a closed context's storage is reused: opening one then allocates nothing */
    tg_ctx *ctx = eng->spare;
    if (ctx) {
        eng->spare = NULL;
        /* everything before the storage is per-context state */
        memset(ctx, 0, offsetof(tg_ctx, keys));
        tg__buf_reset(&ctx->keys);
        tg__buf_reset(&ctx->text);
        tg__buf_reset(&ctx->scratch);
        tg__buf_reset(&ctx->err);
    } else if (!(ctx = calloc(1, sizeof *ctx))) {
        return TG_NOMEM;
    }
    *out = ctx;
    /* automatic reload, before this context takes its rules (the callback may close eng) */
    if (tg__watch_check(eng) != TG_OK)
        return tg__ctx_fail(ctx, TG_MISUSE, "the engine was closed by its reload callback");
    tg__plan *plan = NULL;
    int st = tg__engine_plan(eng, &plan);
    if (st != TG_OK)
        return tg__ctx_fail(ctx, st, "%s", tg_engine_errmsg(eng));
    ctx->eng = eng;
    eng->refs++;
    ctx->plan = tg__plan_retain(plan);
    ctx->rules = &plan->rs->pub;
    if ((st = set_keys(ctx, o)) != TG_OK)
        return st;
    /* last, so a context that failed to open holds nothing; a deferred BEGIN: the data is
     * fixed by the first decision's first read */
    if (o->snapshot) {
        if ((st = tg__engine_read_begin(eng)) != TG_OK)
            return tg__ctx_fail(ctx, st, "%s", tg_engine_errmsg(eng));
        ctx->holds_snapshot = 1;
    }
    return TG_OK;
}

/* Checks the context's keys against their columns and copies their bytes into ctx->keys
 * (written once here, so the pointers into it stay valid until the context closes). */
static int set_keys(tg_ctx *ctx, const tg_ctx_options *o) {
    tg__plan *p = ctx->plan;
    if (o->user.type == TG_NULL)
        return tg__ctx_fail(ctx, TG_MISUSE, "a context needs a user");
    if (o->workspace.type == TG_NULL)
        return tg__ctx_fail(ctx, TG_MISUSE, "a context needs a workspace");
    tg_value user = o->user, ws, tenant = {0};
    int s;
    for (int i = 0; i < 2; i++)
        if (p->user_keys[i].table &&
            (s = tg__ctx_key(ctx, &p->user_keys[i], "user", &user, &user)) != TG_OK)
            return s;
    if ((s = tg__ctx_key(ctx, &p->workspace_key, "workspace", &o->workspace, &ws)) != TG_OK)
        return s;
    if (o->tenant.type != TG_NULL &&
        (s = tg__ctx_key(ctx, &p->tenant_key, "tenant", &o->tenant, &tenant)) != TG_OK)
        return s;
    tg_value *dst[] = {&ctx->user, &ctx->workspace, &ctx->tenant};
    const tg_value *src[] = {&user, &ws, &tenant};
    size_t at[3] = {0};
    tg__buf_reset(&ctx->keys);
    for (int i = 0; i < 3; i++) {
        *dst[i] = *src[i];
        at[i] = ctx->keys.len;
        if (src[i]->type == TG_TEXT || src[i]->type == TG_BLOB) {
            tg__buf_addn(&ctx->keys, src[i]->s, src[i]->n);
            tg__buf_addn(&ctx->keys, "", 1);
        }
    }
    if (ctx->keys.oom)
        return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
    for (int i = 0; i < 3; i++)
        if (dst[i]->type == TG_TEXT || dst[i]->type == TG_BLOB)
            dst[i]->s = ctx->keys.p + at[i];
    ctx->has_tenant = ctx->tenant.type != TG_NULL;
    return TG_OK;
}

int tg__ctx_key_slow(tg_ctx *ctx, const tg__keycol *kc, const char *field, const tg_value *in,
                     tg_value *out) {
    char msg[300];
    if (tg__key_check(kc, field, in, out, msg, sizeof msg) != 0)
        return tg__ctx_fail(ctx, TG_MISUSE, "%s", msg);
    return TG_OK;
}

void tg__ctx_free(tg_ctx *ctx) {
    if (!ctx)
        return;
    free(ctx->vals);
    free(ctx->ids);
    tg__buf_free(&ctx->text);
    tg__buf_free(&ctx->scratch);
    tg__buf_free(&ctx->err);
    tg__buf_free(&ctx->keys);
    tg__buf_free(&ctx->row_tenant_buf);
    tg__buf_free(&ctx->row_id_buf);
    free(ctx);
}

void tg_ctx_close(tg_ctx *ctx) {
    if (!ctx || ctx->in_log) /* from its own decision log: the decision still needs it */
        return;
    tg__plan_release(ctx->plan);
    ctx->plan = NULL;
    tg_engine *eng = ctx->eng;
    ctx->eng = NULL;
    /* a closed engine ended its snapshot already */
    if (ctx->holds_snapshot && eng && !eng->closed)
        (void)tg__engine_read_end(eng);
    ctx->holds_snapshot = 0;
    if (eng && !eng->closed && !eng->spare && eng->refs > 1) {
        eng->spare = ctx; /* the engine outlives this release: keep the storage */
        tg__engine_release(eng);
        return;
    }
    tg__ctx_free(ctx);
    if (eng)
        tg__engine_release(eng);
}

const char *tg_ctx_errmsg(const tg_ctx *ctx) {
    if (!ctx)
        return "out of memory";
    return ctx->err.len ? tg__buf_str(&ctx->err) : "ok";
}

const tg_rules *tg_ctx_rules(const tg_ctx *ctx) { return ctx ? ctx->rules : NULL; }

const tg_role *tg__ctx_role(const tg_ctx *ctx, const char *name) {
    if (!name)
        return NULL;
    for (size_t i = 0; i < ctx->rules->n_roles; i++)
        if (strcmp(ctx->rules->roles[i].name, name) == 0)
            return &ctx->rules->roles[i];
    return NULL;
}

int tg__ctx_prepare(tg_ctx *ctx, tg__stmt **slot, tg__buf *sql, const char *what) {
    int rc = sql->oom ? TG__ST_NOMEM : tg__plan_prepare(ctx->plan, slot, sql);
    tg__buf_free(sql);
    if (rc != TG__ST_OK)
        return tg__ctx_fail(ctx, TG_DB, "cannot prepare the statement for %s: %s", what,
                            tg__db_errmsg(ctx->plan->db));
    return TG_OK;
}

int tg__ctx_scope(tg_ctx *ctx) {
    if (ctx->scope_loaded)
        return TG_OK;
    tg__plan *p = ctx->plan;
    if (!p->scope) {
        tg__buf sql = {0};
        tg__sql_scope(p->db->dialect, &ctx->rules->app, &p->marks, &sql);
        int s = tg__ctx_prepare(ctx, &p->scope, &sql, "the scope");
        if (s != TG_OK)
            return s;
    }
    tg__stmt *st = p->scope;
    tg__bind_key(st, TG__P_USER, &ctx->user);
    tg__bind_key(st, TG__P_WORKSPACE, &ctx->workspace);
    tg__bind_key(st, TG__P_TENANT, &ctx->tenant); /* TG_NULL binds NULL */
    int rc = tg__st_step(st);
    if (rc == TG__ST_DONE && p->marks.gate) {
        tg__ctx_scope_from_row(ctx, NULL); /* gated, no row: not a member */
        tg__st_reset(st);
        return TG_OK;
    }
    if (rc != TG__ST_ROW) {
        int st_code = rc == TG__ST_BUSY ? TG_BUSY : TG_DB;
        tg__ctx_fail(ctx, st_code, "scope query failed: %s", tg__db_errmsg(p->db));
        tg__st_reset(st);
        return st_code;
    }
    tg__ctx_scope_from_row(ctx, st);
    tg__st_reset(st);
    return TG_OK;
}

void tg__ctx_scope_from_row(tg_ctx *ctx, tg__stmt *st) {
    if (!st) {
        ctx->member = ctx->tenant_known = ctx->tenant_in_ws = ctx->entitled = 0;
        ctx->workspace_role = ctx->role = NULL;
        ctx->scope_loaded = 1;
        return;
    }
    /* columns: membership marker, role; the tenant's workspace; entitlement marker, role */
    const tg__scope_marks *m = &ctx->plan->marks;
    /* gated, a row is a membership; the entitlement lookup ran only for a tenant of this
     * workspace, and where the tenants lookup compared the workspace its column is a
     * marker (never a mutant's: they are not gated) */
    ctx->member = m->gate || tg__st_column_type(st, 0) != TG__T_NULL;
    ctx->workspace_role = ctx->member ? tg__ctx_role(ctx, tg__st_column_text(st, 1)) : NULL;
    ctx->entitled = tg__st_column_type(st, 3) != TG__T_NULL;
    if (m->gate && m->workspace_in_sql) {
        ctx->tenant_known = ctx->tenant_in_ws =
            ctx->entitled || tg__st_column_type(st, 2) != TG__T_NULL;
    } else {
        int tw = tg__st_column_type(st, 2);
        ctx->tenant_known = tw != TG__T_NULL;
        ctx->tenant_in_ws = tg__col_eq_typed(st, 2, tw, &ctx->workspace);
    }
    /* a tenant role replaces the workspace role; a NULL one keeps it */
    ctx->role = ctx->entitled && tg__st_column_type(st, 4) != TG__T_NULL
                    ? tg__ctx_role(ctx, tg__st_column_text(st, 4))
                    : ctx->workspace_role;
    ctx->scope_loaded = 1;
}

/* A key as the text PostgreSQL reads for the tenant column's type (bytea's hex for a blob):
 * into buf (size n), or s itself for text. */
static const char *key_text(const tg_value *v, char *buf, size_t n) {
    static const char hex[] = "0123456789abcdef";
    switch (v->type) {
    case TG_INTEGER: snprintf(buf, n, "%lld", (long long)v->i); return buf;
    case TG_TEXT: return v->s ? v->s : "";
    case TG_BLOB:
        if (2 * v->n + 3 > n)
            return ""; /* matches no tenant: fail closed */
        buf[0] = '\\', buf[1] = 'x';
        for (size_t i = 0; i < v->n; i++) {
            buf[2 + 2 * i] = hex[(unsigned char)v->s[i] >> 4];
            buf[3 + 2 * i] = hex[(unsigned char)v->s[i] & 15];
        }
        buf[2 + 2 * v->n] = 0;
        return buf;
    default: return "";
    }
}

void tg__ctx_begin(tg_ctx *ctx) {
    if (ctx->plan && ctx->plan->rls) {
        /* row-level security: this decision's statements see the context's tenant only; a
         * context without one (the canonical viewer) the tenants of its workspace, which its
         * checks narrow further */
        char t[160], w[160];
        tg__db_set_scope(ctx->plan->db, key_text(&ctx->tenant, t, sizeof t),
                         key_text(&ctx->workspace, w, sizeof w), !ctx->has_tenant);
    }
    memset(&ctx->dec, 0, sizeof ctx->dec);
    ctx->shape = NULL;
    ctx->next_after_at = 0;
    ctx->n_vals = 0;
    tg__buf_reset(&ctx->text);
    ctx->text.oom = 0;
}

void tg__ctx_scope_workspace(tg_ctx *ctx) {
    if (ctx->plan && ctx->plan->rls) {
        char w[160];
        tg__db_set_scope(ctx->plan->db, "", key_text(&ctx->workspace, w, sizeof w), 1);
    }
}

void tg__ctx_drop_records(tg_ctx *ctx) {
    ctx->n_vals = 0;
    ctx->next_after_at = 0;
    ctx->dec.n_records = 0;
    tg__buf_reset(&ctx->text);
}

int tg__ctx_take_row_at(tg_ctx *ctx, tg__stmt *st, int first, int n) {
    if (ctx->n_vals + (size_t)n > ctx->cap_vals) {
        size_t cap = ctx->cap_vals ? ctx->cap_vals * 2 : 256;
        while (cap < ctx->n_vals + (size_t)n)
            cap *= 2;
        tg_value *v = realloc(ctx->vals, cap * sizeof *v);
        if (!v)
            return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
        ctx->vals = v;
        ctx->cap_vals = cap;
    }
    /* one read per column (type and value together), and a value's bytes and terminator
     * copied in one append */
    for (int c = first; c < first + n; c++) {
        tg_value *v = &ctx->vals[ctx->n_vals++];
        tg__cell cv;
        tg__st_column(st, c, &cv);
        switch (cv.type) {
        case TG__T_INTEGER: *v = (tg_value){TG_INTEGER, cv.i, 0, NULL, 0}; break;
        case TG__T_FLOAT: *v = (tg_value){TG_REAL, 0, cv.d, NULL, 0}; break;
        case TG__T_TEXT:
        case TG__T_BLOB:
            /* an offset until tg__ctx_decide */
            *v = (tg_value){cv.type == TG__T_TEXT ? TG_TEXT : TG_BLOB, (int64_t)ctx->text.len, 0,
                            NULL, cv.n};
            tg__buf_addn(&ctx->text, cv.p, cv.n);
            ctx->text.len += !ctx->text.oom; /* the terminator tg__buf_addn wrote */
            break;
        default: *v = (tg_value){TG_NULL, 0, 0, NULL, 0};
        }
    }
    if (ctx->text.oom)
        return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
    ctx->dec.n_records++;
    return TG_OK;
}

int tg__ctx_take_row(tg_ctx *ctx, tg__stmt *st, int n) {
    return tg__ctx_take_row_at(ctx, st, 0, n);
}

void tg__ctx_decide(tg_ctx *ctx, int status, const char *reason, const char *target,
                    const char *path, const tg_value *ids, size_t n_ids) {
    tg_decision *d = &ctx->dec;
    d->status = status;
    d->reason = reason;
    if (status != 200)
        tg__ctx_drop_records(ctx); /* a refusal never carries rows */
    d->values = ctx->vals;
    if (ctx->shape) {
        d->columns = ctx->shape->columns;
        d->n_columns = (size_t)ctx->shape->n_columns;
    }
    for (size_t k = 0; k < ctx->n_vals; k++) {
        tg_value *v = &ctx->vals[k];
        if (v->type == TG_TEXT || v->type == TG_BLOB)
            v->s = ctx->text.p + v->i;
    }
    if (ctx->next_after_at)
        d->next_after = ctx->vals[ctx->next_after_at - 1];
    tg_engine *eng = ctx->eng;
    if (ctx->quiet || (!eng->sink && !eng->decision_file))
        return;
    tg_decision_event ev = {ctx->user, ctx->workspace, ctx->tenant, target, path,
                            ids,       n_ids,          status,      reason, ctx->rules->version};
    ctx->in_log++;
    tg__declog_emit(eng, &ev);
    ctx->in_log--;
}
