/* The write guard: inserts and updates through a context. Scope and capability apply as for
 * a row action; the workspace is always derived from the tenant; a supplied workspace_id
 * that disagrees is rejected; tenant_id never changes. The database triggers of the rollout
 * (phase 1.5) enforce the same binding for raw SQL writes. */
#include "ctx.h"

#include <stdio.h>
#include <string.h>

static int find_column(const tg__table_plan *tp, const char *name) {
    for (int i = 0; name && i < tp->shape.n_columns; i++)
        if (strcmp(tp->shape.columns[i], name) == 0)
            return i;
    return -1;
}

static int bind_value(sqlite3_stmt *st, int i, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER:
    case TG_BOOLEAN: return sqlite3_bind_int64(st, i, v->i);
    case TG_REAL: return sqlite3_bind_double(st, i, v->r);
    case TG_TEXT:
        return sqlite3_bind_text64(st, i, v->s ? v->s : "", v->s ? (v->n ? v->n : strlen(v->s)) : 0,
                                   SQLITE_STATIC, SQLITE_UTF8);
    case TG_BLOB: return sqlite3_bind_blob64(st, i, v->s, v->n, SQLITE_STATIC);
    default: return sqlite3_bind_null(st, i);
    }
}

/* Checks the submitted columns; fills cols/vals with the ones to write (tenant and
 * workspace excluded: the guard writes those itself). */
static int check_values(tg_ctx *ctx, const tg__table_plan *tp, const tg_column_value *values,
                        size_t n, int updating, const char **cols, const tg_value **vals,
                        size_t *n_out) {
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = values[i].column;
        const tg_value *v = &values[i].value;
        int ci = find_column(tp, c);
        int is_ws = c && strcmp(c, tp->names->workspace) == 0;
        if (ci < 0 && is_ws)
            ci = -2; /* before the rollout adds the column: checked, not written */
        if (ci == -1)
            return tg__ctx_fail(ctx, TG_UNKNOWN, "table '%s' has no column '%s'",
                                tp->shape.table, c ? c : "(null)");
        for (size_t k = 0; k < i; k++)
            if (strcmp(values[k].column, c) == 0)
                return tg__ctx_fail(ctx, TG_MISUSE, "column '%s' is given twice", c);
        if (ci == tp->col_tenant) {
            if (v->type != TG_INTEGER || v->i != ctx->tenant)
                return tg__ctx_fail(ctx, TG_REJECTED,
                                    updating ? "%s.%s can never change (the row belongs to tenant "
                                               "%lld)"
                                             : "%s.%s must be the context's tenant %lld",
                                    tp->shape.table, c, (long long)ctx->tenant);
            continue;
        }
        if (ci == -2 || ci == tp->col_workspace) {
            if (v->type != TG_NULL && (v->type != TG_INTEGER || v->i != ctx->workspace)) {
                char got[32];
                if (v->type == TG_INTEGER)
                    snprintf(got, sizeof got, "%lld", (long long)v->i);
                else
                    snprintf(got, sizeof got, "a non-integer");
                return tg__ctx_fail(ctx, TG_REJECTED,
                                    "%s.%s = %s disagrees with tenant %lld's workspace %lld; the "
                                    "workspace is derived from the tenant",
                                    tp->shape.table, c, got, (long long)ctx->tenant,
                                    (long long)ctx->workspace);
            }
            continue;
        }
        if (updating && ci == tp->col_id)
            return tg__ctx_fail(ctx, TG_REJECTED, "%s.%s (the primary key) cannot be updated",
                                tp->shape.table, c);
        cols[*n_out] = c;
        vals[*n_out] = v;
        (*n_out)++;
    }
    return TG_OK;
}

static int run_write(tg_ctx *ctx, const tg__buf *sql, const tg_value *const *vals, size_t n,
                     const int64_t *tail, size_t n_tail, sqlite3_stmt **used) {
    sqlite3_stmt *st = NULL;
    if (sql->oom)
        return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
    if (tg__plan_write_stmt(ctx->plan, sql, &st) != SQLITE_OK)
        return tg__ctx_fail(ctx, TG_DB, "cannot prepare the write: %s",
                            sqlite3_errmsg(ctx->plan->db));
    for (size_t i = 0; i < n; i++)
        bind_value(st, (int)i + 1, vals[i]);
    for (size_t i = 0; i < n_tail; i++)
        sqlite3_bind_int64(st, (int)(n + i) + 1, tail[i]);
    int rc = sqlite3_step(st);
    *used = st;
    if (rc != SQLITE_DONE) {
        int code = (rc & 0xff) == SQLITE_CONSTRAINT ? TG_REJECTED
                   : (rc & 0xff) == SQLITE_BUSY     ? TG_BUSY
                                                    : TG_DB;
        tg__ctx_fail(ctx, code, "%s", sqlite3_errmsg(ctx->plan->db));
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return code;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return TG_OK;
}

#define MAX_WRITE_COLUMNS 256

static int lookup(tg_ctx *ctx, const char *family, const char *capability, int *fi, int *cap) {
    const tg_rules *r = ctx->rules;
    *fi = tg_rules_family_index(r, family);
    if (*fi < 0)
        return tg__ctx_fail(ctx, TG_UNKNOWN, "unknown family '%s'", family ? family : "(none)");
    *cap = -1;
    if (capability) {
        for (size_t i = 0; i < r->n_capabilities; i++)
            if (strcmp(r->capabilities[i], capability) == 0)
                *cap = (int)i;
        if (*cap < 0)
            return tg__ctx_fail(ctx, TG_UNKNOWN, "unknown capability '%s'", capability);
    }
    return TG_OK;
}

int tg_ctx_insert(tg_ctx *ctx, const char *family, const tg_column_value *values,
                  size_t n_values, const char *capability, const tg_decision **out) {
    if (!ctx || !out || (n_values && !values))
        return TG_MISUSE;
    *out = NULL;
    if (ctx->in_log) /* before anything is touched: the decision being logged stays */
        return tg__ctx_fail(ctx, TG_MISUSE, "the context is busy: it cannot write from its own "
                                            "decision log callback");
    if (ctx->eng->closed)
        return tg__ctx_fail(ctx, TG_MISUSE, "the engine of this context is closed");
    if (n_values > MAX_WRITE_COLUMNS)
        return tg__ctx_fail(ctx, TG_LIMIT, "at most %d columns per write", MAX_WRITE_COLUMNS);
    tg__ctx_begin(ctx);
    int fi = -1, cap = -1, s;
    if ((s = lookup(ctx, family, capability, &fi, &cap)) != TG_OK)
        return s;
    const tg_family *fam = &ctx->rules->families[fi];
    tg__table_plan *tp = &ctx->plan->fams[fi];
#define DECIDE(status, reason)                                                                 \
    do {                                                                                       \
        tg__ctx_decide(ctx, status, reason, fam->name, "insert", NULL, 0);                     \
        *out = &ctx->dec;                                                                      \
        return TG_OK;                                                                          \
    } while (0)
    if (!fam->paths[TG_PATH_ROW_ACTION].declared)
        DECIDE(404, "path_not_declared");
    if ((s = tg__ctx_scope(ctx)) != TG_OK)
        return s;
    if (!ctx->member)
        DECIDE(404, "not_member");
    if (!ctx->has_tenant)
        DECIDE(404, "no_tenant_context");
    if (!ctx->tenant_known || ctx->tenant_workspace != ctx->workspace)
        DECIDE(404, "tenant_not_in_workspace");
    if (!ctx->entitled)
        DECIDE(404, "not_entitled");
    const char *cols[MAX_WRITE_COLUMNS + 2];
    const tg_value *vals[MAX_WRITE_COLUMNS + 2];
    size_t n;
    if ((s = check_values(ctx, tp, values, n_values, 0, cols, vals, &n)) != TG_OK)
        return s;
    /* the row action's requirement from the plan: a row action without a capability
     * denies (fail closed) */
    if (!tg__plan_grants(ctx->role, tp->need[TG_PATH_ROW_ACTION]) ||
        (cap >= 0 && !tg__plan_grants(ctx->role, cap)))
        DECIDE(403, "missing_capability");
    tg_value tv = {TG_INTEGER, ctx->tenant, 0, NULL, 0};
    tg_value wv = {TG_INTEGER, ctx->workspace, 0, NULL, 0};
    cols[n] = tp->shape.tenant;
    vals[n++] = &tv;
    if (tp->shape.workspace) {
        cols[n] = tp->shape.workspace;
        vals[n++] = &wv;
    }
    tg__buf_reset(&ctx->scratch);
    tg__sql_insert(&tg__sqlite, tp->shape.table, cols, n, &ctx->scratch);
    sqlite3_stmt *st = NULL;
    if ((s = run_write(ctx, &ctx->scratch, vals, n, NULL, 0, &st)) != TG_OK)
        return s;
    ctx->dec.row_id = sqlite3_last_insert_rowid(ctx->plan->db);
    DECIDE(200, "ok");
#undef DECIDE
}

int tg_ctx_update(tg_ctx *ctx, const char *family, int64_t id, const tg_column_value *values,
                  size_t n_values, const char *capability, const tg_decision **out) {
    if (!ctx || !out || (n_values && !values))
        return TG_MISUSE;
    *out = NULL;
    if (n_values > MAX_WRITE_COLUMNS)
        return tg__ctx_fail(ctx, TG_LIMIT, "at most %d columns per write", MAX_WRITE_COLUMNS);
    /* the record must resolve as a row action first: scope, congruence, capability */
    tg_request req = {0};
    req.family = family;
    req.path = TG_PATH_ROW_ACTION;
    req.id = id;
    req.has_id = 1;
    req.capability = capability;
    const tg_decision *d = NULL;
    ctx->quiet = 1;
    int s = tg_ctx_resolve(ctx, &req, &d);
    ctx->quiet = 0;
    if (s != TG_OK)
        return s;
    const tg_family *fam = &ctx->rules->families[tg_rules_family_index(ctx->rules, family)];
    ctx->log_ids[0] = id;
    if (d->status != 200 && ctx->plan->mutation != TG__MUT_UPDATE_ANY_TENANT) {
        tg__ctx_decide(ctx, d->status, d->reason, fam->name, "update", ctx->log_ids, 1);
        *out = &ctx->dec;
        return TG_OK;
    }
    int any_tenant = ctx->plan->mutation == TG__MUT_UPDATE_ANY_TENANT;
    tg__table_plan *tp = &ctx->plan->fams[tg_rules_family_index(ctx->rules, family)];
    const char *cols[MAX_WRITE_COLUMNS + 2];
    const tg_value *vals[MAX_WRITE_COLUMNS + 2];
    size_t n;
    if ((s = check_values(ctx, tp, values, n_values, 1, cols, vals, &n)) != TG_OK)
        return s;
    /* binds a row still missing its workspace on the way */
    tg_value wv = {TG_INTEGER, ctx->workspace, 0, NULL, 0};
    if (tp->shape.workspace) {
        cols[n] = tp->shape.workspace;
        vals[n++] = &wv;
    }
    tg__buf_reset(&ctx->scratch);
    tg__sql_update(&tg__sqlite, tp->shape.table, cols, n, tp->shape.id,
                   any_tenant ? NULL : tp->shape.tenant, &ctx->scratch);
    int64_t tail[2] = {id, ctx->tenant};
    sqlite3_stmt *st = NULL;
    tg__ctx_drop_records(ctx);
    if (n == 0) {
        tg__ctx_decide(ctx, 200, "ok", fam->name, "update", ctx->log_ids, 1);
        *out = &ctx->dec;
        return TG_OK;
    }
    if ((s = run_write(ctx, &ctx->scratch, vals, n, tail, any_tenant ? 1 : 2, &st)) != TG_OK)
        return s;
    ctx->dec.row_id = id;
    tg__ctx_decide(ctx, 200, "ok", fam->name, "update", ctx->log_ids, 1);
    *out = &ctx->dec;
    return TG_OK;
}
