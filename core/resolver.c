/* The record resolver: the one canonical way to reach a tenant-owned record.
 *
 * Every path decides in the same order: 404 when the caller is not a member of the
 * workspace, has no tenant context on a tenant-bound path, is not entitled to the tenant,
 * or the record is missing, foreign or disagrees with its tenant's workspace; 403 only
 * once all of that holds and the role lacks the capability; 200 otherwise. Each decision
 * is one or two executions of statements prepared once per rule version. */
#include "ctx.h"
#include "names.h"

#include <stdlib.h>
#include <string.h>

enum { S_BY_ID, S_BY_IDS, S_PAGE, S_RELATION, S_SEARCH, S_RECORD };

/* A mutation of the matrix's mutation check is active (never outside tg_run_matrix). */
#define MUTANT(ctx, m) ((ctx)->plan->mutation == (m))

/* The statement of kind `kind` for table plan tp (of family fam, when a family). */
static int get_stmt(tg_ctx *ctx, tg__table_plan *tp, const tg_family *fam, int kind,
                    tg__stmt **out) {
    tg__stmt **slot = kind == S_BY_ID      ? &tp->by_id
                          : kind == S_BY_IDS   ? &tp->by_ids
                          : kind == S_PAGE     ? &tp->page
                          : kind == S_RELATION ? &tp->relation
                          : kind == S_RECORD   ? &tp->record
                                               : &tp->search;
    if (!*slot) {
        tg__buf sql = {0};
        const tg__dialect *d = ctx->plan->db->dialect;
        const tg_app *app = &ctx->rules->app;
        int widen = MUTANT(ctx, TG__MUT_DROP_TENANT_CONDITION) ? 1 : 0;
        switch (kind) {
        case S_BY_ID: tg__sql_by_id(d, &tp->shape, &sql); break;
        case S_BY_IDS: tg__sql_by_ids(d, &tp->shape, fam ? app : NULL, &sql); break;
        case S_RECORD: tg__sql_record(d, app, &tp->shape, &sql); break;
        case S_PAGE: tg__sql_tenant_page(d, &tp->shape, app, NULL, NULL, 0, widen, &sql); break;
        case S_RELATION:
            tg__sql_tenant_page(d, &tp->shape, app, fam->paths[TG_PATH_RELATION_MANAGER].via,
                                NULL, 0, widen, &sql);
            break;
        default:
            if (MUTANT(ctx, TG__MUT_SEARCH_WIDENS_TO_WORKSPACE))
                widen = 2;
            tg__sql_tenant_page(d, &tp->shape, app, NULL, fam->search_columns,
                                fam->n_search_columns, widen, &sql);
        }
        int s = tg__ctx_prepare(ctx, slot, &sql, tp->shape.table);
        if (s != TG_OK)
            return s;
    }
    *out = *slot;
    return TG_OK;
}

static int step_failed(tg_ctx *ctx, tg__stmt *st, int rc) {
    int code = rc == TG__ST_BUSY || rc == TG__ST_LOCKED ? TG_BUSY : TG_DB;
    tg__ctx_fail(ctx, code, "database error: %s", tg__db_errmsg(ctx->plan->db));
    tg__st_reset(st);
    return code;
}

/* After the row of a read by id, when `look` (the id may name several rows: a view, whose
 * joins may repeat a row however its columns are keyed; or, read without a route tenant, a
 * table keyed on (tenant, id)): *two is set when a second row follows, so the id names no one
 * record (the decision is 404 ambiguous_id, nothing served). Steps st past its row: read that
 * row before. On a database error the statement is reset and the status returned. */
static int another_row(tg_ctx *ctx, int look, tg__stmt *st, int *two) {
    *two = 0;
    if (!look)
        return TG_OK;
    int rc = tg__st_step(st);
    if (rc != TG__ST_ROW && rc != TG__ST_DONE)
        return step_failed(ctx, st, rc);
    *two = rc == TG__ST_ROW;
    return TG_OK;
}

/* What we know about one tenant for this user. */
typedef struct tinfo {
    int known;
    int in_ws; /* the tenant's workspace is the context's (type and value) */
    int entitled;
    const tg_role *role; /* tenant role when set, else the workspace role */
} tinfo;

/* `tenant` is a row's tenant value as stored (TG_NULL: none, never known). */
static int tenant_info(tg_ctx *ctx, const tg_value *tenant, tinfo *ti) {
    memset(ti, 0, sizeof *ti);
    /* SQL would match the text '10' to the integer tenant 10: a value of another type than
     * the tenants' key is no tenant at all */
    if (tenant->type == TG_NULL || tg__key_coerces(ctx->plan->tenant_key.aff, tenant))
        return TG_OK;
    if (ctx->has_tenant && tg__value_eq(tenant, &ctx->tenant)) {
        ti->known = ctx->tenant_known;
        ti->in_ws = ctx->tenant_in_ws;
        ti->entitled = ctx->entitled;
        ti->role = ctx->role;
        return TG_OK;
    }
    tg__plan *p = ctx->plan;
    if (!p->entitlement) {
        tg__buf sql = {0};
        tg__sql_entitlement(ctx->plan->db->dialect, &ctx->rules->app, &sql);
        int s = tg__ctx_prepare(ctx, &p->entitlement, &sql, "an entitlement");
        if (s != TG_OK)
            return s;
    }
    tg__stmt *st = p->entitlement;
    tg__bind_key(st, TG__P_TENANT, tenant);
    tg__bind_key(st, TG__P_USER, &ctx->user);
    int rc = tg__st_step(st);
    if (rc != TG__ST_ROW)
        return step_failed(ctx, st, rc);
    ti->known = tg__st_column_type(st, 0) != TG__T_NULL;
    ti->in_ws = tg__col_eq(st, 0, &ctx->workspace);
    ti->entitled = tg__st_column_type(st, 1) != TG__T_NULL;
    ti->role = ti->entitled && tg__st_column_type(st, 2) != TG__T_NULL
                   ? tg__ctx_role(ctx, tg__st_column_text(st, 2))
                   : ctx->workspace_role;
    tg__st_reset(st);
    return TG_OK;
}

/* How the row under st stands against the route tenant. */
enum { REC_OK, REC_FOREIGN, REC_WS_MISMATCH };

/* The row's tenant and workspace must be the route tenant's by type and value (a NULL or
 * differently typed tenant is never in anyone's scope). */
static int row_scope_at(tg_ctx *ctx, const tg__table_plan *tp, tg__stmt *st, int off) {
    int tc = off + tp->col_tenant, wc = off + tp->col_workspace;
    if (!tg__col_eq(st, tc, &ctx->tenant))
        return REC_FOREIGN;
    if (tp->col_workspace >= 0 && tg__st_column_type(st, wc) != TG__T_NULL &&
        !tg__col_eq(st, wc, &ctx->workspace))
        return REC_WS_MISMATCH;
    return REC_OK;
}

/* True when taken value v (text and blobs still offsets into ctx->text) has the type and
 * value of key k, as tg__col_eq. */
static int taken_eq(const tg_ctx *ctx, const tg_value *v, const tg_value *k) {
    if (v->type != k->type)
        return 0;
    if (v->type == TG_INTEGER)
        return v->i == k->i;
    if (v->type != TG_TEXT && v->type != TG_BLOB)
        return 0;
    return v->n == k->n && (v->n == 0 || memcmp(ctx->text.p + v->i, k->s, v->n) == 0);
}

/* taken_eq of two taken values */
static int taken_same(const tg_ctx *ctx, const tg_value *a, const tg_value *b) {
    tg_value k = *b;
    if (k.type == TG_TEXT || k.type == TG_BLOB)
        k.s = ctx->text.p + k.i;
    return taken_eq(ctx, a, &k);
}

/* row_scope_at on a taken row */
static int taken_scope(const tg_ctx *ctx, const tg__table_plan *tp, const tg_value *v) {
    if (!taken_eq(ctx, &v[tp->col_tenant], &ctx->tenant))
        return REC_FOREIGN;
    if (tp->col_workspace >= 0 && v[tp->col_workspace].type != TG_NULL &&
        !taken_eq(ctx, &v[tp->col_workspace], &ctx->workspace))
        return REC_WS_MISMATCH;
    return REC_OK;
}

static int row_scope(tg_ctx *ctx, const tg__table_plan *tp, tg__stmt *st) {
    return row_scope_at(ctx, tp, st, 0);
}

/* The reason for a row of the current statement row that is not in scope (rec), for logs
 * only: the status is 404 either way. A foreign row is "foreign_tenant" when its tenant is
 * one of this workspace's, "foreign_workspace" when not (or gone, or no key of the tenants'
 * type: the text '10' is no tenant where tenant keys are integers). The tenant's workspace
 * was read by the same statement, in column `ws_col` (see tg__sql_record): no second one. */
static const char *foreign_reason(tg_ctx *ctx, const tg__table_plan *tp, tg__stmt *st,
                                  int off, int ws_col, int rec, const char *prefix) {
    static const char *const plain[] = {"ok", "foreign_tenant", "workspace_mismatch",
                                        "foreign_workspace"};
    static const char *const owner[] = {"ok", "owner_foreign_tenant", "owner_workspace_mismatch",
                                        "owner_foreign_workspace"};
    const char *const *names = prefix ? owner : plain;
    if (rec != REC_FOREIGN)
        return names[rec];
    int t = tg__st_column_type(st, off + tp->col_tenant);
    tg_value as_key = {0};
    as_key.type = t == TG__T_INTEGER ? TG_INTEGER
                  : t == TG__T_TEXT  ? TG_TEXT
                  : t == TG__T_BLOB  ? TG_BLOB
                                      : TG_NULL; /* NULL or a real: no key */
    if (as_key.type == TG_NULL || tg__key_coerces(ctx->plan->tenant_key.aff, &as_key) ||
        !tg__col_eq(st, ws_col, &ctx->workspace))
        return names[3];
    return names[1];
}

/* True when role satisfies the plan's requirement `need` (TG__NEED_* or a capability) and,
 * when the request names one (extra >= 0), that capability too. */
static inline int has_caps(const tg_role *role, int need, int extra) {
    return tg__plan_grants(role, need) && (extra < 0 || tg__plan_grants(role, extra));
}

static int finish(tg_ctx *ctx, const tg_decision **out, int status, const char *reason,
                  const char *target, tg_path_type path, const tg_value *ids, size_t n) {
    tg__ctx_decide(ctx, status, reason, target, tg_path_type_name(path), ids, n);
    *out = &ctx->dec;
    return TG_OK;
}

/* Decides whether a listed row may be returned; NULL: every row may. */
typedef int (*row_filter)(tg_ctx *ctx, const tg__table_plan *tp, tg__stmt *st, void *ud,
                          int *keep);

/* Runs a page statement that is already bound except for keyset and limit. Rows the filter
 * drops do not count towards the limit. */
static int run_page_filtered(tg_ctx *ctx, tg__table_plan *tp, tg__stmt *st,
                             const tg_value *after, int64_t limit, row_filter filter, void *ud) {
    if (after->type != TG_NULL) {
        tg__bind_key(st, TG__P_AFTER, after); /* checked with the request */
    } else if (tp->id_key.aff == TG__AFF_TEXT || tp->id_key.aff == TG__AFF_UUID) {
        /* the lowest text of the column's type (the dialect's lowest_text) */
        const char *lo = tp->id_key.lowest ? tp->id_key.lowest : "";
        tg__st_bind_text(st, TG__P_AFTER, lo, strlen(lo), 0);
    } else if (tp->id_key.aff == TG__AFF_BLOB && ctx->plan->db->backend == TG__BACKEND_POSTGRES) {
        /* bytea holds bytes only: the empty value is the lowest (an integer bound there would
         * be its digits' bytes, above every key whose first byte is below '-') */
        tg__st_bind_blob(st, TG__P_AFTER, "", 0, 0);
    } else {
        /* integers, and below any text or blob */
        tg__st_bind_int64(st, TG__P_AFTER, INT64_MIN);
    }
    /* with a filter the statement cannot know how many rows will be kept */
    tg__st_bind_int64(st, TG__P_LIMIT, filter ? -1 : limit + 1);
    int rc, taken = 0;
    while ((rc = tg__st_step(st)) == TG__ST_ROW) {
        if (filter) {
            int keep = 0, s = filter(ctx, tp, st, ud, &keep);
            if (s != TG_OK) {
                tg__st_reset(st);
                return s;
            }
            if (!keep)
                continue;
        }
        if (taken == limit) {
            ctx->dec.has_more = 1;
            break;
        }
        int s = tg__ctx_take_row(ctx, st, tp->shape.n_columns);
        if (s != TG_OK) {
            tg__st_reset(st);
            return s;
        }
        ctx->next_after_at = ctx->n_vals - (size_t)tp->shape.n_columns + (size_t)tp->col_id + 1;
        taken++;
    }
    if (rc != TG__ST_ROW && rc != TG__ST_DONE)
        return step_failed(ctx, st, rc);
    tg__st_reset(st);
    return TG_OK;
}

/* Rows of a list must carry the route tenant (and the owner) by type and value. SQL compares
 * under the column's affinity, which can turn the text '5' into the integer 5; where a key
 * could be converted so, every listed row is checked in C too. */
typedef struct exact_filter {
    int tenant;        /* check the tenant column */
    int via_col;       /* -1: no owner column */
    const tg_value *via;
} exact_filter;

static int keep_exact(tg_ctx *ctx, const tg__table_plan *tp, tg__stmt *st, void *ud,
                      int *keep) {
    const exact_filter *f = ud;
    *keep = (!f->tenant || tg__col_eq(st, tp->col_tenant, &ctx->tenant)) &&
            (f->via_col < 0 || tg__col_eq(st, f->via_col, f->via));
    return TG_OK;
}

static int run_page(tg_ctx *ctx, tg__table_plan *tp, tg__stmt *st, const tg_value *after,
                    int64_t limit, int via_col, const tg_value *via) {
    exact_filter f = {tg__key_coerces(tp->affs[tp->col_tenant], &ctx->tenant), -1, NULL};
    if (via_col >= 0 && tg__key_coerces(tp->affs[via_col], via)) {
        f.via_col = via_col;
        f.via = via;
    }
    int exact = f.tenant || f.via_col >= 0;
    return run_page_filtered(ctx, tp, st, after, limit, exact ? keep_exact : NULL, &f);
}

static int check_limit(tg_ctx *ctx, const tg_request *req, int64_t *limit) {
    const tg_app *a = &ctx->rules->app;
    *limit = req->limit ? req->limit : a->page_size;
    if (*limit < 1 || *limit > a->max_page_size)
        return tg__ctx_fail(ctx, TG_LIMIT, "limit %lld is outside 1..%lld (max_page_size)",
                            (long long)req->limit, (long long)a->max_page_size);
    return TG_OK;
}

static int cmp_key(const void *a, const void *b) {
    const tg_value *x = a, *y = b;
    if (x->type == TG_INTEGER && y->type == TG_INTEGER) /* the common case, without a call */
        return (x->i > y->i) - (x->i < y->i);
    return tg__value_cmp(x, y);
}

/* Checks every id of a bulk request into ctx->ids: the first n as given (for the log), then
 * the sorted distinct ones (*m of them; equal means same type and value). */
static int bulk_keys(tg_ctx *ctx, tg__table_plan *tp, const tg_request *req, size_t *m) {
    size_t n = req->n_ids;
    if (2 * n > ctx->cap_ids) {
        tg_value *ids = realloc(ctx->ids, 2 * n * sizeof *ids);
        if (!ids)
            return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
        ctx->ids = ids;
        ctx->cap_ids = 2 * n;
    }
    for (size_t i = 0; i < n; i++) {
        /* the field's name ("ids[3]") is formatted only for the message of a key that fails:
         * formatting it for every id cost a bulk of 100 integer ids 10% more work */
        char none[1];
        if (tg__key_plain_integer(&tp->id_key, &req->ids[i])) {
            ctx->ids[i] = req->ids[i];
        } else if (tg__key_check(&tp->id_key, "ids", &req->ids[i], &ctx->ids[i], none,
                                 sizeof none) != 0) {
            char field[48];
            snprintf(field, sizeof field, "ids[%zu]", i + 1);
            int s = tg__ctx_key_slow(ctx, &tp->id_key, field, &req->ids[i], &ctx->ids[i]);
            return s != TG_OK ? s : tg__ctx_fail(ctx, TG_MISUSE, "%s: not a key", field);
        }
    }
    tg_value *sorted = ctx->ids + n;
    memcpy(sorted, ctx->ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_key);
    *m = 0;
    for (size_t i = 0; i < n; i++)
        if (*m == 0 || tg__value_cmp(&sorted[*m - 1], &sorted[i]) != 0)
            sorted[(*m)++] = sorted[i];
    return TG_OK;
}

/* bulk_action: every id in scope, or 404 and nothing. The ids were checked by bulk_keys. */
static int resolve_bulk(tg_ctx *ctx, tg__table_plan *tp, const tg_family *fam,
                        const tg_request *req, size_t m, const char **reason) {
    const tg_value *ids = ctx->ids + req->n_ids;
    tg__stmt *st = NULL;
    int s = get_stmt(ctx, tp, fam, S_BY_IDS, &st);
    if (s != TG_OK)
        return s;
    size_t found = 0;
    int bad = REC_OK, dup = 0;
    const char *bad_reason = NULL;
    /* with arrays, every id in one statement; else a statement per chunk of ids */
    const int array = ctx->plan->db->dialect->bulk_array;
    const size_t chunk = array ? (m ? m : 1) : TG__BULK_CHUNK;
    for (size_t at = 0; at < m && bad == REC_OK; at += chunk) {
        tg__bind_key(st, TG__P_BULK_TENANT, &ctx->tenant);
        if (array) {
            if ((s = tg__st_bind_keys(st, 1, ids, m)) != TG__ST_OK)
                return tg__ctx_fail(ctx, s == TG__ST_NOMEM ? TG_NOMEM : TG_DB,
                                    "binding the ids: %s", tg__db_errmsg(ctx->plan->db));
        } else {
            for (int k = 0; k < TG__BULK_CHUNK; k++) {
                if (at + (size_t)k < m)
                    tg__bind_key(st, k + 1, &ids[at + (size_t)k]);
                else
                    tg__st_bind_null(st, k + 1);
            }
        }
        int rc;
        while ((rc = tg__st_step(st)) == TG__ST_ROW) {
            bad = row_scope(ctx, tp, st);
            if (MUTANT(ctx, TG__MUT_SKIP_BULK_CONGRUENCE))
                bad = REC_OK;
            if (bad != REC_OK) {
                bad_reason = foreign_reason(ctx, tp, st, 0, tp->shape.n_columns, bad, NULL);
                break;
            }
            if ((s = tg__ctx_take_row(ctx, st, tp->shape.n_columns)) != TG_OK) {
                tg__st_reset(st);
                return s;
            }
            found++;
            /* rows come in id order: an id on two rows (a view that repeats rows) names no
             * one record, and would also let it stand in for a missing id in the count */
            size_t nc = (size_t)tp->shape.n_columns;
            if (found > 1 && taken_same(ctx, &ctx->vals[ctx->n_vals - nc + (size_t)tp->col_id],
                                        &ctx->vals[ctx->n_vals - 2 * nc + (size_t)tp->col_id])) {
                dup = 1;
                break;
            }
        }
        if (rc != TG__ST_ROW && rc != TG__ST_DONE)
            return step_failed(ctx, st, rc);
        tg__st_reset(st);
        if (dup)
            break;
    }
    if (dup)
        *reason = "ambiguous_id";
    else if (bad != REC_OK)
        *reason = bad_reason;
    else if (found != m && !MUTANT(ctx, TG__MUT_SKIP_BULK_CONGRUENCE))
        *reason = "not_found";
    else
        *reason = NULL;
    return TG_OK;
}

/* Fetches one record by id (a checked key) into the decision. *reason is NULL when it is in
 * the route tenant's scope. With via_col >= 0, *via_ok says whether that column holds `via`
 * (type and value). */
static int fetch_scoped(tg_ctx *ctx, tg__table_plan *tp, const tg_family *fam,
                        const tg_value *id, const char *prefix, int via_col,
                        const tg_value *via, int *via_ok, const char **reason) {
    tg__stmt *st = NULL;
    int s = get_stmt(ctx, tp, fam, S_RECORD, &st);
    if (s != TG_OK)
        return s;
    tg__bind_key(st, TG__P_TENANT, &ctx->tenant);
    tg__bind_key(st, TG__P_ID, id);
    int rc = tg__st_step(st);
    if (rc == TG__ST_DONE) {
        tg__st_reset(st);
        *reason = prefix ? "owner_not_found" : "not_found";
        return TG_OK;
    }
    if (rc != TG__ST_ROW)
        return step_failed(ctx, st, rc);
    int rec = row_scope(ctx, tp, st);
    if (via_col >= 0)
        *via_ok = tg__col_eq(st, via_col, via);
    *reason = NULL;
    size_t at = ctx->n_vals, text_at = ctx->text.len;
    int taken = 0;
    if (rec != REC_OK)
        *reason = foreign_reason(ctx, tp, st, 0, tp->shape.n_columns, rec, prefix);
    else if (!prefix && (s = tg__ctx_take_row(ctx, st, tp->shape.n_columns)) == TG_OK)
        taken = 1;
    int two = 0;
    if (s == TG_OK && !*reason && (s = another_row(ctx, tp->is_view, st, &two)) != TG_OK)
        return s;
    if (two) {
        *reason = "ambiguous_id";
        if (taken) { /* not taken after all */
            ctx->n_vals = at;
            ctx->text.len = text_at;
            ctx->dec.n_records--;
        }
    }
    tg__st_reset(st);
    return s;
}

/* The first by-id decision of a context reads its scope and the record with one statement:
 * a request then costs what one hand-written join costs. *fetched is set when the record
 * part was evaluated (*reason NULL: in scope and taken); when scope fails the record is
 * ignored and the ordinary checks decide. */
static int first_by_id(tg_ctx *ctx, tg__table_plan *tp, const tg_value *id, int *fetched,
                       const char **reason) {
    *fetched = 0;
    if (!tp->first) {
        tg__buf sql = {0};
        tg__sql_scope_and_record(ctx->plan->db->dialect, &ctx->rules->app, &tp->shape, &ctx->plan->marks,
                                 &sql);
        int s = tg__ctx_prepare(ctx, &tp->first, &sql, tp->shape.table);
        if (s != TG_OK)
            return s;
    }
    tg__stmt *st = tp->first;
    tg__bind_key(st, TG__P_USER, &ctx->user);
    tg__bind_key(st, TG__P_WORKSPACE, &ctx->workspace);
    tg__bind_key(st, TG__P_TENANT, &ctx->tenant); /* TG_NULL binds NULL */
    tg__bind_key(st, TG__P_ID, id);
    int rc = tg__st_step(st);
    if (rc == TG__ST_DONE && ctx->plan->marks.gate) {
        tg__st_reset(st);
        tg__ctx_scope_from_row(ctx, NULL); /* gated, no row: not a member */
        return TG_OK;
    }
    if (rc != TG__ST_ROW)
        return step_failed(ctx, st, rc);
    tg__ctx_scope_from_row(ctx, st);
    int s = TG_OK;
    if (ctx->member && ctx->has_tenant && ctx->tenant_known && ctx->tenant_in_ws &&
        ctx->entitled) {
        *fetched = 1;
        /* a row of another tenant is refused before it is taken; the rest is checked on
         * the values taken: no column read twice on the in-scope path */
        if (!tg__col_eq(st, 5 + tp->col_tenant, &ctx->tenant)) {
            *reason = tg__st_column_type(st, 5 + tp->col_id) == TG__T_NULL
                          ? "not_found"
                          : foreign_reason(ctx, tp, st, 5, 5 + tp->shape.n_columns,
                                           REC_FOREIGN, NULL);
            tg__st_reset(st);
            return TG_OK;
        }
        size_t at = ctx->n_vals, text_at = ctx->text.len;
        s = tg__ctx_take_row_at(ctx, st, 5, tp->shape.n_columns);
        if (s == TG_OK) {
            const tg_value *v = ctx->vals + at;
            int rec = REC_OK;
            if (v[tp->col_id].type == TG_NULL)
                *reason = "not_found";
            else if ((rec = taken_scope(ctx, tp, v)) == REC_OK)
                *reason = NULL;
            else
                *reason = foreign_reason(ctx, tp, st, 5, 5 + tp->shape.n_columns, rec, NULL);
            int two = 0;
            if (!*reason && (s = another_row(ctx, tp->is_view, st, &two)) != TG_OK)
                return s;
            if (two)
                *reason = "ambiguous_id";
            if (*reason) { /* not taken after all */
                ctx->n_vals = at;
                ctx->text.len = text_at;
                ctx->dec.n_records--;
            }
        }
        tg__st_reset(st);
        return s;
    }
    tg__st_reset(st);
    return TG_OK;
}

static int column_index(const tg__table_plan *tp, const char *name) {
    for (int i = 0; name && i < tp->shape.n_columns; i++)
        if (strcmp(tp->shape.columns[i], name) == 0)
            return i;
    return -1;
}

/* canonical_viewer: no route tenant; the record names its tenant, which must be in this
 * workspace and one the user is entitled to. A context that does carry a route tenant
 * never widens to another tenant. */
static int resolve_canonical(tg_ctx *ctx, tg__table_plan *tp, const tg_family *fam,
                             const tg_value *id, const char **reason, const tg_role **role) {
    tg__stmt *st = NULL;
    int s = get_stmt(ctx, tp, fam, S_BY_ID, &st);
    if (s != TG_OK)
        return s;
    tg__bind_key(st, 1, id);
    int rc = tg__st_step(st);
    if (rc == TG__ST_DONE) {
        tg__st_reset(st);
        *reason = "not_found";
        return TG_OK;
    }
    if (rc != TG__ST_ROW)
        return step_failed(ctx, st, rc);
    /* the record names its tenant; its own workspace, when set, must be the context's */
    tg__key_from_col(st, tp->col_tenant, &ctx->row_tenant_buf, &ctx->row_tenant);
    int ws_null = tp->col_workspace < 0 ||
                  tg__st_column_type(st, tp->col_workspace) == TG__T_NULL;
    int ws_ok = ws_null || tg__col_eq(st, tp->col_workspace, &ctx->workspace);
    if ((s = tg__ctx_take_row(ctx, st, tp->shape.n_columns)) != TG_OK) {
        tg__st_reset(st);
        return s;
    }
    int two = 0;
    if ((s = another_row(ctx, tp->is_view || tp->key_with_tenant, st, &two)) != TG_OK)
        return s;
    tg__st_reset(st);
    if (two) {
        *reason = "ambiguous_id"; /* a refusal: the row taken is dropped */
        return TG_OK;
    }
    tinfo ti;
    if (ctx->row_tenant.type == TG_NULL) {
        *reason = "foreign_workspace";
        return TG_OK;
    }
    if (ctx->has_tenant && !tg__value_eq(&ctx->row_tenant, &ctx->tenant)) {
        *reason = "foreign_tenant";
        return TG_OK;
    }
    if ((s = tenant_info(ctx, &ctx->row_tenant, &ti)) != TG_OK)
        return s;
    if (!ti.known || !ti.in_ws)
        *reason = "foreign_workspace";
    else if (!ws_ok)
        *reason = "workspace_mismatch";
    else if (!ti.entitled && !MUTANT(ctx, TG__MUT_IGNORE_CANONICAL_OWNER))
        *reason = "not_entitled";
    else
        *reason = NULL;
    *role = ti.entitled ? ti.role : ctx->workspace_role;
    return TG_OK;
}

static int resolve_exception(tg_ctx *ctx, int ei, const tg_request *req, int extra_cap,
                             const tg_decision **out);

int tg_ctx_resolve(tg_ctx *ctx, const tg_request *req, const tg_decision **out) {
    if (!ctx || !req || !out)
        return TG_MISUSE;
    *out = NULL;
    /* checked before anything is touched: the decision being logged stays as it is */
    if (ctx->in_log)
        return tg__ctx_fail(ctx, TG_MISUSE, "the context is busy: it cannot decide again from "
                                            "its own decision log callback");
    if (ctx->eng->closed)
        return tg__ctx_fail(ctx, TG_MISUSE, "the engine of this context is closed");
    tg__ctx_begin(ctx);
    const tg_rules *r = ctx->rules;
    if ((int)req->path < 0 || req->path >= TG_PATH_COUNT)
        return tg__ctx_fail(ctx, TG_MISUSE, "unknown path type %d", (int)req->path);
    if (req->family && req->exception)
        return tg__ctx_fail(ctx, TG_MISUSE, "a request names a family or an exception, not both");
    if (req->path == TG_PATH_GLOBAL_SEARCH && !req->query)
        return tg__ctx_fail(ctx, TG_MISUSE, "global_search needs a query");
    int extra_cap = -1;
    if (req->capability) {
        for (size_t i = 0; i < r->n_capabilities; i++)
            if (strcmp(r->capabilities[i], req->capability) == 0)
                extra_cap = (int)i;
        if (extra_cap < 0)
            return tg__ctx_fail(ctx, TG_UNKNOWN, "unknown capability '%s'", req->capability);
    }
    if (req->exception && req->family)
        return tg__ctx_fail(ctx, TG_MISUSE,
                            "the request names both family '%s' and exception '%s'; name one",
                            req->family, req->exception);
    if (req->exception) {
        for (size_t i = 0; i < r->n_exceptions; i++)
            if (strcmp(r->exceptions[i].name, req->exception) == 0)
                return resolve_exception(ctx, (int)i, req, extra_cap, out);
        return tg__ctx_fail(ctx, TG_UNKNOWN, "unknown exception '%s'", req->exception);
    }
    int fi = tg_rules_family_index(r, req->family);
    if (fi < 0)
        return tg__ctx_fail(ctx, TG_UNKNOWN, "unknown family '%s'",
                            req->family ? req->family : "(none)");
    const tg_family *fam = &r->families[fi];
    tg__table_plan *tp = &ctx->plan->fams[fi];
    const tg_path_rule *path = &fam->paths[req->path];
    const char *name = fam->name;
    ctx->shape = &tp->shape;

    /* a malformed request is the caller's bug whoever is logged in: it raises before any
     * decision is made; so does a key its column cannot hold */
    int64_t limit = 0;
    int s;
    tg_value id = {0}, owner = {0}, after = {0};
    size_t n_distinct = 0;
    if (req->id.type != TG_NULL &&
        (s = tg__ctx_key(ctx, &tp->id_key, "id", &req->id, &id)) != TG_OK)
        return s;
    if (req->after.type != TG_NULL &&
        (s = tg__ctx_key(ctx, &tp->id_key, "after", &req->after, &after)) != TG_OK)
        return s;
    if (req->owner.type != TG_NULL && req->path == TG_PATH_RELATION_MANAGER &&
        path->declared &&
        (s = tg__ctx_key(ctx, &ctx->plan->fams[path->owner_family].id_key, "owner", &req->owner,
                         &owner)) != TG_OK)
        return s;
    if (req->owner.type != TG_NULL && owner.type == TG_NULL)
        owner = req->owner; /* no owner family to check against: logged as given */
    switch (req->path) {
    case TG_PATH_GLOBAL_SEARCH:
        /* no query is not "match everything": the caller forgot it */
        if (!req->query)
            return tg__ctx_fail(ctx, TG_MISUSE, "global_search needs a query");
        /* fall through */
    case TG_PATH_INDEX:
        if ((s = check_limit(ctx, req, &limit)) != TG_OK)
            return s;
        break;
    case TG_PATH_DETAIL:
    case TG_PATH_ROW_ACTION:
    case TG_PATH_CANONICAL_VIEWER:
        if (id.type == TG_NULL)
            return tg__ctx_fail(ctx, TG_MISUSE, "%s needs an id", tg_path_type_name(req->path));
        break;
    case TG_PATH_BULK_ACTION:
        if (!req->ids || req->n_ids == 0)
            return tg__ctx_fail(ctx, TG_MISUSE, "bulk_action needs at least one id");
        /* compared unsigned: a huge or negative count cast to size_t is above the limit */
        if (r->app.max_bulk_ids < 0 || req->n_ids > (uint64_t)r->app.max_bulk_ids)
            return tg__ctx_fail(ctx, TG_LIMIT,
                                "bulk_action got %zu ids; the limit is %lld "
                                "(app.limits.max_bulk_ids)",
                                req->n_ids, (long long)r->app.max_bulk_ids);
        if ((s = bulk_keys(ctx, tp, req, &n_distinct)) != TG_OK)
            return s;
        break;
    case TG_PATH_RELATION_MANAGER:
        if (owner.type == TG_NULL)
            return tg__ctx_fail(ctx, TG_MISUSE, "relation_manager needs an owner id");
        if (id.type == TG_NULL && (s = check_limit(ctx, req, &limit)) != TG_OK)
            return s;
        break;
    default:
        break;
    }

    /* what the request names, for the decision log (checked keys; valid during the call) */
    const tg_value *log_ids = NULL;
    size_t n_log = 0;
    if (req->path == TG_PATH_BULK_ACTION) {
        log_ids = ctx->ids;
        n_log = req->n_ids;
    } else if (owner.type != TG_NULL) {
        ctx->log_ids[0] = owner;
        ctx->log_ids[1] = id;
        log_ids = ctx->log_ids;
        n_log = id.type != TG_NULL ? 2 : 1;
    } else if (id.type != TG_NULL) {
        ctx->log_ids[0] = id;
        log_ids = ctx->log_ids;
        n_log = 1;
    }
#define DECIDE(status, reason) return finish(ctx, out, status, reason, name, req->path, log_ids, n_log)

    if (!path->declared) {
        if (req->path == TG_PATH_GLOBAL_SEARCH && fam->search_posture != TG_SEARCH_SCOPED)
            DECIDE(404, "search_disabled");
        DECIDE(404, "path_not_declared");
    }
    int prefetched = 0;
    const char *reason = NULL;
    if (!ctx->scope_loaded && ctx->plan->mutation == TG__MUT_NONE &&
        (req->path == TG_PATH_DETAIL || req->path == TG_PATH_ROW_ACTION))
        s = first_by_id(ctx, tp, &id, &prefetched, &reason);
    else
        s = tg__ctx_scope(ctx);
    if (s != TG_OK)
        return s;
    if (!ctx->member && !MUTANT(ctx, TG__MUT_SKIP_MEMBERSHIP))
        DECIDE(404, "not_member");

    const tg_role *role = ctx->role;
    const int need = tp->need[req->path];
    if (MUTANT(ctx, TG__MUT_CAPABILITY_BEFORE_SCOPE) && !has_caps(role, need, extra_cap))
        DECIDE(403, "missing_capability");
    if (req->path == TG_PATH_CANONICAL_VIEWER) {
        /* no route tenant is needed; one that is given must still be valid */
        if (ctx->has_tenant && (!ctx->tenant_known || !ctx->tenant_in_ws))
            DECIDE(404, "tenant_not_in_workspace");
        if ((s = resolve_canonical(ctx, tp, fam, &id, &reason, &role)) != TG_OK)
            return s;
        if (reason)
            DECIDE(404, reason);
    } else {
        if (!ctx->has_tenant)
            DECIDE(404, "no_tenant_context");
        if (!ctx->tenant_known || !ctx->tenant_in_ws)
            DECIDE(404, "tenant_not_in_workspace");
        if (!ctx->entitled && !MUTANT(ctx, TG__MUT_SKIP_ENTITLEMENT))
            DECIDE(404, "not_entitled");
        tg__stmt *st = NULL;
        switch (req->path) {
        case TG_PATH_INDEX:
        case TG_PATH_GLOBAL_SEARCH:
            if ((s = get_stmt(ctx, tp, fam, req->path == TG_PATH_INDEX ? S_PAGE : S_SEARCH, &st)) !=
                TG_OK)
                return s;
            tg__bind_key(st, TG__P_TENANT, &ctx->tenant);
            tg__bind_key(st, TG__P_WORKSPACE, &ctx->workspace);
            if (req->path == TG_PATH_GLOBAL_SEARCH) {
                const char *q = req->query;
                tg__buf_reset(&ctx->scratch);
                if (MUTANT(ctx, TG__MUT_LIKE_UNESCAPED))
                    tg__buf_printf(&ctx->scratch, "%%%s%%", q);
                else
                    tg__like_contains(&ctx->scratch, q, strlen(q));
                if (ctx->scratch.oom)
                    return tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
                tg__st_bind_text(st, TG__P_LIKE, tg__buf_str(&ctx->scratch), ctx->scratch.len, 0);
            }
            if ((s = run_page(ctx, tp, st, &after, limit, -1, NULL)) != TG_OK)
                return s;
            break;
        case TG_PATH_DETAIL:
        case TG_PATH_ROW_ACTION:
            if (!prefetched &&
                (s = fetch_scoped(ctx, tp, fam, &id, NULL, -1, NULL, NULL, &reason)) != TG_OK)
                return s;
            if (reason)
                DECIDE(404, reason);
            break;
        case TG_PATH_BULK_ACTION:
            if ((s = resolve_bulk(ctx, tp, fam, req, n_distinct, &reason)) != TG_OK)
                return s;
            if (reason)
                DECIDE(404, reason);
            break;
        case TG_PATH_RELATION_MANAGER: {
            int oi = path->owner_family;
            if ((s = fetch_scoped(ctx, &ctx->plan->fams[oi], &r->families[oi], &owner, "owner",
                                  -1, NULL, NULL, &reason)) != TG_OK)
                return s;
            if (reason && !MUTANT(ctx, TG__MUT_SKIP_RELATION_OWNER_CHECK))
                DECIDE(404, reason);
            int via_col = column_index(tp, path->via);
            if (id.type != TG_NULL) {
                int via_ok = 0;
                if ((s = fetch_scoped(ctx, tp, fam, &id, NULL, via_col, &owner, &via_ok,
                                      &reason)) != TG_OK)
                    return s;
                if (reason)
                    DECIDE(404, reason);
                if (!via_ok) /* the owner by type and value: 5 is not '5' */
                    DECIDE(404, "wrong_owner");
            } else {
                if ((s = get_stmt(ctx, tp, fam, S_RELATION, &st)) != TG_OK)
                    return s;
                tg__bind_key(st, TG__P_TENANT, &ctx->tenant);
                tg__bind_key(st, TG__P_WORKSPACE, &ctx->workspace);
                tg__bind_key(st, TG__P_OWNER, &owner);
                if ((s = run_page(ctx, tp, st, &after, limit, via_col, &owner)) != TG_OK)
                    return s;
            }
            break;
        }
        default:
            DECIDE(404, "path_not_declared");
        }
    }
    if (!has_caps(role, need, extra_cap))
        DECIDE(403, "missing_capability");
    DECIDE(200, "ok");
#undef DECIDE
}

/* ---- scope exceptions ---- */

static int ws_page_stmt(tg_ctx *ctx, tg__table_plan *tp, int flags, tg__stmt **out) {
    if (!tp->ws_page[flags]) {
        tg__buf sql = {0};
        tg__sql_workspace_page(ctx->plan->db->dialect, &tp->shape, &ctx->rules->app, flags & 1, flags & 2,
                               &sql);
        int s = tg__ctx_prepare(ctx, &tp->ws_page[flags], &sql, tp->shape.table);
        if (s != TG_OK)
            return s;
    }
    *out = tp->ws_page[flags];
    return TG_OK;
}

/* A surface the rules except from the ordinary family canon: it applies exactly the
 * still_required_checks it declares (workspace_member always among them). */
typedef struct cap_filter {
    int need, extra_cap;
    tg_value tenants[32]; /* a small cache of tenant -> allowed (text in `bytes`) */
    int allowed[32];
    int n;
    char bytes[1024];
    size_t used;
} cap_filter;

/* Keeps a listed row only when the role the user holds in the row's tenant (the tenant role
 * when set, else the workspace role) grants the capability: a list never shows a row its
 * own detail view would refuse. */
static int keep_if_capable(tg_ctx *ctx, const tg__table_plan *tp, tg__stmt *st, void *ud,
                           int *keep) {
    cap_filter *f = ud;
    *keep = 1;
    if (tp->col_tenant < 0 || tg__st_column_type(st, tp->col_tenant) == TG__T_NULL)
        return TG_OK; /* a workspace-level row: the workspace role was checked already */
    for (int i = 0; i < f->n; i++)
        if (tg__col_eq(st, tp->col_tenant, &f->tenants[i])) {
            *keep = f->allowed[i];
            return TG_OK;
        }
    tg_value t;
    tg__key_from_col(st, tp->col_tenant, &ctx->row_tenant_buf, &t);
    if (t.type == TG_NULL) {
        *keep = 0; /* a tenant id that is not a key places the row nowhere (as detail) */
        return TG_OK;
    }
    tinfo ti;
    int s = tenant_info(ctx, &t, &ti);
    if (s != TG_OK)
        return s;
    const tg_role *role = ti.entitled ? ti.role : ctx->workspace_role;
    /* as detail: a tenant that is not one of this workspace's (by type and value) places
     * the row nowhere */
    *keep = ti.known && ti.in_ws && has_caps(role, f->need, f->extra_cap);
    size_t room = t.type == TG_INTEGER ? 0 : t.n;
    if (f->n < 32 && room <= sizeof f->bytes - f->used) {
        if (room) {
            memcpy(f->bytes + f->used, t.s, room);
            t.s = f->bytes + f->used;
            f->used += room;
        }
        f->tenants[f->n] = t;
        f->allowed[f->n++] = *keep;
    }
    return TG_OK;
}

static int resolve_exception(tg_ctx *ctx, int ei, const tg_request *req, int extra_cap,
                             const tg_decision **out) {
    const tg_exception *e = &ctx->rules->exceptions[ei];
    tg__table_plan *tp = &ctx->plan->excs[ei];
    tg__ctx_scope_workspace(ctx); /* its reads are workspace-wide, its checks narrow them */
    /* the record is always in the current workspace: the list is bounded by it whatever the
     * rules list, and a detail must never serve what its list would not (fail closed) */
    unsigned checks = e->still_required_checks | TG_CHECK_RECORD_IN_WORKSPACE;
    const int need = tp->need[0]; /* TG__NEED_DENY when the exception lists no capability */
    if (MUTANT(ctx, TG__MUT_EXCEPTION_SKIPS_CHECKS))
        checks &= ~(unsigned)(TG_CHECK_TENANT_ENTITLED | TG_CHECK_RECORD_IN_WORKSPACE);
    const char *name = e->name;
    ctx->shape = &tp->shape;
    if (!e->table || !tp->present)
        return tg__ctx_fail(ctx, TG_MISUSE, "exception '%s' maps no table to resolve against",
                            e->name);
    int64_t limit = 0;
    int s;
    tg_value id = {0}, after = {0};
    if (req->id.type != TG_NULL &&
        (s = tg__ctx_key(ctx, &tp->id_key, "id", &req->id, &id)) != TG_OK)
        return s;
    if (req->after.type != TG_NULL &&
        (s = tg__ctx_key(ctx, &tp->id_key, "after", &req->after, &after)) != TG_OK)
        return s;
    ctx->log_ids[0] = id;
    const tg_value *log_ids = id.type != TG_NULL ? ctx->log_ids : NULL;
    size_t n_log = id.type != TG_NULL ? 1 : 0;
#define DECIDE(status, reason) return finish(ctx, out, status, reason, name, req->path, log_ids, n_log)
    if (req->path == TG_PATH_INDEX && (s = check_limit(ctx, req, &limit)) != TG_OK)
        return s;
    if ((req->path == TG_PATH_DETAIL || req->path == TG_PATH_ROW_ACTION ||
         req->path == TG_PATH_CANONICAL_VIEWER) &&
        id.type == TG_NULL)
        return tg__ctx_fail(ctx, TG_MISUSE, "%s needs an id", tg_path_type_name(req->path));
    s = tg__ctx_scope(ctx);
    if (s != TG_OK)
        return s;
    if (!ctx->member)
        DECIDE(404, "not_member");
    if (checks & TG_CHECK_RECORD_IN_TENANT) {
        if (!ctx->has_tenant)
            DECIDE(404, "no_tenant_context");
        if (!ctx->tenant_known || !ctx->tenant_in_ws)
            DECIDE(404, "tenant_not_in_workspace");
    }
    const tg_role *role = ctx->workspace_role;
    if (req->path == TG_PATH_INDEX) {
        int flags = (checks & TG_CHECK_TENANT_ENTITLED ? 1 : 0) |
                    (checks & TG_CHECK_RECORD_IN_TENANT ? 2 : 0);
        tg__stmt *st = NULL;
        if ((s = ws_page_stmt(ctx, tp, flags, &st)) != TG_OK)
            return s;
        tg__bind_key(st, TG__P_WORKSPACE, &ctx->workspace);
        tg__bind_key(st, TG__P_TENANT, &ctx->tenant);
        tg__bind_key(st, TG__P_USER, &ctx->user);
        if (!has_caps(role, need, extra_cap))
            DECIDE(403, "missing_capability");
        cap_filter f;
        f.need = need;
        f.extra_cap = extra_cap;
        f.n = 0;
        f.used = 0;
        if ((s = run_page_filtered(ctx, tp, st, &after, limit, keep_if_capable, &f)) != TG_OK)
            return s;
    } else if (req->path == TG_PATH_DETAIL || req->path == TG_PATH_ROW_ACTION ||
               req->path == TG_PATH_CANONICAL_VIEWER) {
        tg__stmt *st = NULL;
        if ((s = get_stmt(ctx, tp, NULL, S_BY_ID, &st)) != TG_OK)
            return s;
        tg__bind_key(st, 1, &id);
        int rc = tg__st_step(st);
        if (rc == TG__ST_DONE) {
            tg__st_reset(st);
            DECIDE(404, "not_found");
        }
        if (rc != TG__ST_ROW)
            return step_failed(ctx, st, rc);
        int has_t = tp->col_tenant >= 0 && tg__st_column_type(st, tp->col_tenant) != TG__T_NULL;
        tg_value t = {0};
        if (has_t)
            tg__key_from_col(st, tp->col_tenant, &ctx->row_tenant_buf, &t);
        int t_key = !has_t || t.type != TG_NULL; /* a real or the like places the row nowhere */
        int has_w = tp->col_workspace >= 0 &&
                    tg__st_column_type(st, tp->col_workspace) != TG__T_NULL;
        int w_ok = has_w && tg__col_eq(st, tp->col_workspace, &ctx->workspace);
        if ((s = tg__ctx_take_row(ctx, st, tp->shape.n_columns)) != TG_OK) {
            tg__st_reset(st);
            return s;
        }
        int two = 0;
        if ((s = another_row(ctx, tp->is_view || tp->key_with_tenant, st, &two)) != TG_OK)
            return s;
        tg__st_reset(st);
        if (two)
            DECIDE(404, "ambiguous_id");
        if (!t_key)
            DECIDE(404, "foreign_workspace");
        tinfo ti = {0};
        if (has_t && (s = tenant_info(ctx, &t, &ti)) != TG_OK)
            return s;
        if (checks & TG_CHECK_RECORD_IN_WORKSPACE) {
            if (!has_t && !has_w)
                DECIDE(404, "foreign_workspace"); /* cannot be placed: fail closed */
            if (has_w && !w_ok)
                DECIDE(404, "foreign_workspace");
            if (has_t && (!ti.known || !ti.in_ws))
                DECIDE(404, "foreign_workspace");
        }
        if ((checks & TG_CHECK_RECORD_IN_TENANT) &&
            (!has_t || !ctx->has_tenant || !tg__value_eq(&t, &ctx->tenant)))
            DECIDE(404, "foreign_tenant");
        if ((checks & TG_CHECK_TENANT_ENTITLED) && has_t && !ti.entitled)
            DECIDE(404, "not_entitled");
        if (has_t && ti.entitled)
            role = ti.role;
    } else {
        DECIDE(404, "path_not_declared");
    }
    if (!has_caps(role, need, extra_cap))
        DECIDE(403, "missing_capability");
    DECIDE(200, "ok");
#undef DECIDE
}
