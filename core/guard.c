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

static int bind_value(tg__stmt *st, int i, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER:
    case TG_BOOLEAN: return tg__st_bind_int64(st, i, v->i);
    case TG_REAL: return tg__st_bind_double(st, i, v->r);
    case TG_TEXT:
        return tg__st_bind_text(st, i, v->s ? v->s : "", v->s ? (v->n ? v->n : strlen(v->s)) : 0, 0);
    case TG_BLOB: return tg__st_bind_blob(st, i, v->s, v->n, 0);
    default: return tg__st_bind_null(st, i);
    }
}

/* True when a submitted value v is the context's key `key` (type and value); text for a
 * column of declared type BLOB counts as the blob it is written as. */
static int same_key(const tg_ctx *ctx, const tg_value *v, const tg_value *key, int aff) {
    (void)ctx;
    tg_value k = *v;
    if (k.type == TG_TEXT) {
        if (!k.s)
            return 0;
        if (!k.n)
            k.n = strlen(k.s);
        if (aff == TG__AFF_BLOB && key->type == TG_BLOB)
            k.type = TG_BLOB;
    }
    if (k.type == TG_BLOB && !k.s && k.n)
        return 0;
    return tg__value_eq(&k, key);
}

/* A key for a message: 42, 'abc' or x'00ff' (cut short when long). */
static const char *key_text(const tg_value *v, char *buf, size_t size) {
    if (v->type == TG_INTEGER) {
        snprintf(buf, size, "%lld", (long long)v->i);
    } else if (v->type == TG_TEXT && v->s) {
        size_t n = v->n ? v->n : strlen(v->s);
        snprintf(buf, size, "'%.*s'", (int)(n < 48 ? n : 48), v->s);
    } else if (v->type == TG_BLOB) {
        size_t at = 0;
        at += (size_t)snprintf(buf, size, "x'");
        for (size_t i = 0; i < v->n && i < 24 && at + 4 < size; i++)
            at += (size_t)snprintf(buf + at, size - at, "%02x", (unsigned char)v->s[i]);
        snprintf(buf + at, size - at, "'");
    } else {
        snprintf(buf, size, "a %s", tg__value_type_name(v->type));
    }
    return buf;
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
            char want[80];
            if (!same_key(ctx, v, &ctx->tenant, tp->affs[ci]))
                return tg__ctx_fail(ctx, TG_REJECTED,
                                    updating ? "%s.%s can never change (the row belongs to tenant "
                                               "%s)"
                                             : "%s.%s must be the context's tenant %s",
                                    tp->shape.table, c, key_text(&ctx->tenant, want, sizeof want));
            continue;
        }
        if (ci == -2 || ci == tp->col_workspace) {
            int aff = ci >= 0 ? tp->affs[ci] : TG__AFF_NONE;
            if (v->type != TG_NULL && !same_key(ctx, v, &ctx->workspace, aff)) {
                char got[80], tenant[80], ws[80];
                return tg__ctx_fail(ctx, TG_REJECTED,
                                    "%s.%s = %s disagrees with tenant %s's workspace %s; the "
                                    "workspace is derived from the tenant",
                                    tp->shape.table, c, key_text(v, got, sizeof got),
                                    key_text(&ctx->tenant, tenant, sizeof tenant),
                                    key_text(&ctx->workspace, ws, sizeof ws));
            }
            continue;
        }
        if (updating && ci == tp->col_id)
            return tg__ctx_fail(ctx, TG_REJECTED, "%s.%s (the primary key) cannot be updated",
                                tp->shape.table, c);
        if (ci == tp->col_id && v->type != TG_NULL) {
            /* a supplied id is a key like any other: of a type its column can hold */
            tg_value k;
            int s = tg__ctx_key(ctx, &tp->id_key, c, v, &k);
            if (s != TG_OK)
                return s;
            if (k.type != v->type) { /* text for a BLOB key is written as a blob */
                ctx->id_value = k;
                v = &ctx->id_value;
            }
        }
        cols[*n_out] = c;
        vals[*n_out] = v;
        (*n_out)++;
    }
    return TG_OK;
}

/* Runs an insert or update; with `returning` (an insert ending in RETURNING id), the new
 * row's id goes to ctx->dec.row_id (bytes in ctx->row_id_buf). */
static int run_write(tg_ctx *ctx, const tg__buf *sql, const tg_value *const *vals, size_t n,
                     const tg_value *tail, size_t n_tail, int returning, tg__stmt **used) {
    tg__stmt *st = NULL;
    if (sql->oom)
        return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
    if (tg__plan_write_stmt(ctx->plan, sql, &st) != TG__ST_OK)
        return tg__ctx_fail(ctx, TG_DB, "cannot prepare the write: %s",
                            tg__db_errmsg(ctx->plan->db));
    for (size_t i = 0; i < n; i++)
        bind_value(st, (int)i + 1, vals[i]);
    for (size_t i = 0; i < n_tail; i++)
        tg__bind_key(st, (int)(n + i) + 1, &tail[i]);
    int rc = tg__st_step(st);
    *used = st;
    if (returning && rc == TG__ST_ROW) {
        tg__key_from_col(st, 0, &ctx->row_id_buf, &ctx->dec.row_id);
        rc = tg__st_step(st);
    }
    if (rc != TG__ST_DONE) {
        int code = (rc & 0xff) == TG__ST_CONSTRAINT ? TG_REJECTED
                   : (rc & 0xff) == TG__ST_BUSY     ? TG_BUSY
                                                    : TG_DB;
        tg__ctx_fail(ctx, code, "%s", tg__db_errmsg(ctx->plan->db));
        tg__st_reset(st);
        tg__st_clear_bindings(st);
        return code;
    }
    tg__st_reset(st);
    tg__st_clear_bindings(st);
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
    if (ctx->eng->read_depth) /* never a silent upgrade of the snapshot to a write */
        return tg__ctx_fail(ctx, TG_MISUSE, TG__SNAPSHOT_WRITE_MSG, "insert");
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
    if (!ctx->tenant_known || !ctx->tenant_in_ws)
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
    tg_value tv = ctx->tenant, wv = ctx->workspace;
    cols[n] = tp->shape.tenant;
    vals[n++] = &tv;
    if (tp->shape.workspace) {
        cols[n] = tp->shape.workspace;
        vals[n++] = &wv;
    }
    tg__buf_reset(&ctx->scratch);
    tg__sql_insert(ctx->plan->db->dialect, tp->shape.table, cols, n, &ctx->scratch);
    /* the id of the new row as stored, of whatever type: not only a rowid */
    tg__sqlf(&ctx->scratch, ctx->plan->db->dialect, " RETURNING %I", tp->shape.id);
    tg__stmt *st = NULL;
    if ((s = run_write(ctx, &ctx->scratch, vals, n, NULL, 0, 1, &st)) != TG_OK)
        return s;
    DECIDE(200, "ok");
#undef DECIDE
}

int tg_ctx_update(tg_ctx *ctx, const char *family, const tg_value *id,
                  const tg_column_value *values, size_t n_values, const char *capability,
                  const tg_decision **out) {
    if (!ctx || !out || !id || (n_values && !values))
        return TG_MISUSE;
    *out = NULL;
    if (n_values > MAX_WRITE_COLUMNS)
        return tg__ctx_fail(ctx, TG_LIMIT, "at most %d columns per write", MAX_WRITE_COLUMNS);
    if (id->type == TG_NULL)
        return tg__ctx_fail(ctx, TG_MISUSE, "update needs an id");
    if (n_values == 0) /* answering 200 for a write that writes nothing would be a guess */
        return tg__ctx_fail(ctx, TG_MISUSE, "update needs at least one column to set");
    if (!ctx->in_log && ctx->eng->read_depth) /* never a silent upgrade to a write */
        return tg__ctx_fail(ctx, TG_MISUSE, TG__SNAPSHOT_WRITE_MSG, "update");
    /* the record must resolve as a row action first: scope, congruence, capability (and
     * the id's type) */
    tg_request req = {0};
    req.family = family;
    req.path = TG_PATH_ROW_ACTION;
    req.id = *id;
    req.capability = capability;
    const tg_decision *d = NULL;
    ctx->quiet = 1;
    int s = tg_ctx_resolve(ctx, &req, &d);
    ctx->quiet = 0;
    if (s != TG_OK)
        return s;
    const tg_family *fam = &ctx->rules->families[tg_rules_family_index(ctx->rules, family)];
    tg__table_plan *tp = &ctx->plan->fams[tg_rules_family_index(ctx->rules, family)];
    tg_value key;
    if ((s = tg__ctx_key(ctx, &tp->id_key, "id", id, &key)) != TG_OK)
        return s;
    ctx->log_ids[0] = key;
    if (d->status != 200 && ctx->plan->mutation != TG__MUT_UPDATE_ANY_TENANT) {
        tg__ctx_decide(ctx, d->status, d->reason, fam->name, "update", ctx->log_ids, 1);
        *out = &ctx->dec;
        return TG_OK;
    }
    int any_tenant = ctx->plan->mutation == TG__MUT_UPDATE_ANY_TENANT;
    const char *cols[MAX_WRITE_COLUMNS + 2];
    const tg_value *vals[MAX_WRITE_COLUMNS + 2];
    size_t n;
    if ((s = check_values(ctx, tp, values, n_values, 1, cols, vals, &n)) != TG_OK)
        return s;
    /* binds a row still missing its workspace on the way */
    tg_value wv = ctx->workspace;
    if (tp->shape.workspace) {
        cols[n] = tp->shape.workspace;
        vals[n++] = &wv;
    }
    tg__buf_reset(&ctx->scratch);
    tg__sql_update(ctx->plan->db->dialect, tp->shape.table, cols, n, tp->shape.id,
                   any_tenant ? NULL : tp->shape.tenant, &ctx->scratch);
    tg_value tail[2] = {key, ctx->tenant};
    tg__stmt *st = NULL;
    tg__ctx_drop_records(ctx);
    if (n == 0) {
        tg__ctx_decide(ctx, 200, "ok", fam->name, "update", ctx->log_ids, 1);
        *out = &ctx->dec;
        return TG_OK;
    }
    if ((s = run_write(ctx, &ctx->scratch, vals, n, tail, any_tenant ? 1 : 2, 0, &st)) !=
        TG_OK)
        return s;
    /* the id, owned by the context like every decision's values */
    tg__buf_reset(&ctx->row_id_buf);
    ctx->dec.row_id = key;
    if (key.type != TG_INTEGER) {
        tg__buf_addn(&ctx->row_id_buf, key.s, key.n);
        tg__buf_addn(&ctx->row_id_buf, "", 1);
        if (ctx->row_id_buf.oom)
            return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
        ctx->dec.row_id.s = ctx->row_id_buf.p;
    }
    tg__ctx_decide(ctx, 200, "ok", fam->name, "update", ctx->log_ids, 1);
    *out = &ctx->dec;
    return TG_OK;
}
