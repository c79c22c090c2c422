/* Explaining a decision: every check of a request, in the resolver's order, with what it read
 * and whether it held, and the one that decided the status.
 *
 * Not the hot path. The decision itself is made by tg_ctx_resolve (quietly: it is not
 * logged); the explanation reads the facts again with statements of its own, prepared for
 * the call and finalized after it, and derives the status and reason from its checks alone.
 * Both run inside one read snapshot, so they see the same data; when they disagree anyway
 * the explanation is wrong about this request, and tg_ctx_explain fails (TG_ERROR) rather
 * than hand out an explanation that contradicts the decision.
 *
 * Fail closed: a line names keys the caller sent, role, capability and rule names, never a
 * column value of a row that is not the caller's (its tenant, its workspace, its owner). */
#include "ctx.h"

#include <stdlib.h>
#include <string.h>

typedef struct item {
    const char *check, *step;
    int result;
    size_t at, len; /* the line, in ex.text */
    const char *reason;
} item;

/* What one user holds in one tenant (as the resolver's tenant_info). */
typedef struct tfacts {
    int exists;   /* a row of the tenants table, row filter aside */
    int known;    /* ... that passes app.tenants.row_filter and names a workspace */
    int in_ws;    /* ... the context's workspace, by type and value */
    int entitled; /* a tenant membership row of the user */
    int has_role; /* ... whose role is not NULL */
    const tg_role *role; /* the tenant role when set, else the workspace role */
    size_t role_at;      /* the tenant role's name in ex.names (has_role) */
} tfacts;

typedef struct ex {
    tg_ctx *ctx;
    tg__plan *p;
    const tg_rules *r;
    const tg_app *app;
    item *items;
    size_t n, cap;
    long decided; /* index of the item that decided, -1: none yet */
    int manual;   /* items do not decide on their own (bulk: the resolver's priority) */
    tg__buf text; /* every line, NUL-terminated, one after another */
    tg__buf line; /* the line being built */
    tg__buf names; /* role names read, NUL-terminated */
    tg__buf bytes; /* a row's tenant, copied as a key */
    int oom;
    int failed; /* the status of the last database failure (step) */
    tg__stmt *ent; /* the entitlement statement (tg__sql_entitlement) */
    /* the scope */
    int member, ws_has_role;
    size_t ws_role_at;
    const tg_role *ws_role;
    tfacts route;
} ex;

/* ---- lines ---- */

static void lit(ex *e, const char *s) { tg__buf_add(&e->line, s); }

/* A key as the caller sent it: 42, 'text' (quotes and control bytes escaped), x'00ff'. */
static void key(ex *e, const tg_value *v) {
    tg__buf *b = &e->line;
    switch (v->type) {
    case TG_INTEGER: tg__buf_printf(b, "%lld", (long long)v->i); break;
    case TG_TEXT: {
        size_t n = v->n ? v->n : (v->s ? strlen(v->s) : 0);
        tg__buf_add(b, "'");
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)v->s[i];
            if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\')
                tg__buf_printf(b, "\\x%02x", c);
            else
                tg__buf_addn(b, v->s + i, 1);
        }
        tg__buf_add(b, "'");
        break;
    }
    case TG_BLOB:
        tg__buf_add(b, "x'");
        for (size_t i = 0; i < v->n; i++)
            tg__buf_printf(b, "%02x", (unsigned char)v->s[i]);
        tg__buf_add(b, "'");
        break;
    default: tg__buf_add(b, "(none)");
    }
}

/* 'name' of a rule object, quoted. */
static void name(ex *e, const char *s) {
    tg__buf_add(&e->line, "'");
    tg__buf_add(&e->line, s ? s : "");
    tg__buf_add(&e->line, "'");
}

static void where(ex *e, tg_where w) {
    if (w.file && w.line)
        tg__buf_printf(&e->line, "%s:%d", w.file, w.line);
    else if (w.file)
        tg__buf_add(&e->line, w.file);
}

/* Adds an item with the line built so far (which it clears). A refusal decides unless one
 * decided before it (or the caller decides: e->manual). Returns its index. */
static size_t add(ex *e, const char *check, const char *step, int result, const char *reason) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 16;
        item *more = realloc(e->items, cap * sizeof *more);
        if (!more) {
            e->oom = 1;
            tg__buf_reset(&e->line);
            return e->n ? e->n - 1 : 0;
        }
        e->items = more;
        e->cap = cap;
    }
    item *it = &e->items[e->n];
    it->check = check;
    it->step = step;
    it->result = result;
    it->reason = result == TG_EXPLAIN_FAIL ? reason : NULL;
    it->at = e->text.len;
    it->len = e->line.len;
    tg__buf_addn(&e->text, tg__buf_str(&e->line), e->line.len);
    tg__buf_addn(&e->text, "", 1);
    e->oom |= e->text.oom || e->line.oom;
    tg__buf_reset(&e->line);
    if (result == TG_EXPLAIN_FAIL && e->decided < 0 && !e->manual)
        e->decided = (long)e->n;
    return e->n++;
}

static const char *role_name(const ex *e, size_t at) { return e->names.p + at; }

/* ---- statements of the explanation's own ---- */

/* Binds the values of filter f, numbered from `first`, that st uses (as the plan does). */
static int bind_filter(tg__stmt *st, const tg_row_filter *f, int first) {
    int last = tg__st_param_count(st), n = first, rc = TG__ST_OK;
    for (size_t i = 0; f && i < f->n_conds && rc == TG__ST_OK; i++) {
        for (size_t k = 0; k < f->conds[i].n_values && rc == TG__ST_OK; k++, n++) {
            const tg_value *v = &f->conds[i].values[k];
            if (n > last || !tg__st_param_name(st, n))
                continue;
            switch (v->type) {
            case TG_INTEGER:
            case TG_BOOLEAN:
                rc = tg__st_bind_int64(st, n, v->type == TG_BOOLEAN ? !!v->i : v->i);
                break;
            case TG_REAL: rc = tg__st_bind_double(st, n, v->r); break;
            case TG_TEXT: rc = tg__st_bind_text(st, n, v->s, v->n, 0); break;
            default: rc = TG__ST_MISUSE;
            }
        }
    }
    return rc;
}

/* Prepares sql (which it frees) and binds the tenants', workspaces' and, with tp, the
 * family's row filter values. */
static int prepare(ex *e, tg__buf *sql, const tg__table_plan *tp, tg__stmt **out) {
    *out = NULL;
    int rc = sql->oom ? TG__ST_NOMEM
                      : tg__st_prepare(e->p->db, tg__buf_str(sql), sql->len + 1,
                                       TG__PREP_SCOPED, out);
    tg__buf_free(sql);
    if (rc == TG__ST_OK)
        rc = bind_filter(*out, &e->app->tenants.row_filter,
                         tg__sql_filter_param(e->app, TG__FILTER_TENANTS));
    if (rc == TG__ST_OK)
        rc = bind_filter(*out, &e->app->workspaces.row_filter,
                         tg__sql_filter_param(e->app, TG__FILTER_WORKSPACES));
    if (rc == TG__ST_OK && tp)
        rc = bind_filter(*out, tp->shape.filter, tp->shape.filter_param);
    if (rc != TG__ST_OK) {
        tg__st_finalize(*out);
        *out = NULL;
        return tg__ctx_fail(e->ctx, rc == TG__ST_NOMEM ? TG_NOMEM : TG_DB,
                            "explain: cannot prepare a statement: %s",
                            tg__db_errmsg(e->p->db));
    }
    return TG_OK;
}

/* Steps st once: 1 a row, 0 none, -1 an error (on the context). */
static int step(ex *e, tg__stmt *st) {
    int rc = tg__st_step(st);
    if (rc == TG__ST_ROW)
        return 1;
    if (rc == TG__ST_DONE)
        return 0;
    e->failed = tg__ctx_fail(e->ctx, rc == TG__ST_BUSY || rc == TG__ST_LOCKED ? TG_BUSY : TG_DB,
                             "explain: database error: %s", tg__db_errmsg(e->p->db));
    return -1;
}

static int failed_status(const ex *e) { return e->failed ? e->failed : TG_DB; }

/* Keeps a role's name (the text of column col, NULL: none) in e->names. */
static size_t keep_name(ex *e, tg__stmt *st, int col) {
    size_t at = e->names.len;
    const char *s = tg__st_column_text(st, col);
    tg__buf_add(&e->names, s ? (const char *)s : "");
    tg__buf_addn(&e->names, "", 1);
    return at;
}

/* ---- the scope ---- */

/* The caller's membership of the workspace: the row, then (under a workspace row filter)
 * whether the workspace passes it. */
static int membership(ex *e) {
    const tg_app *a = e->app;
    tg__buf sql = {0};
    tg__stmt *st = NULL;
    if (a->workspace_members.role)
        tg__sqlf(&sql, e->p->db->dialect, "SELECT tg_wm.%I", a->workspace_members.role);
    else
        tg__sqlf(&sql, e->p->db->dialect, "SELECT NULL");
    tg__sqlf(&sql, e->p->db->dialect, " FROM %I AS tg_wm WHERE tg_wm.%I = %P AND tg_wm.%I = %P",
             a->workspace_members.table, a->workspace_members.user, TG__P_USER,
             a->workspace_members.workspace, TG__P_WORKSPACE);
    int s = prepare(e, &sql, NULL, &st);
    if (s != TG_OK)
        return s;
    tg__bind_key(st, TG__P_USER, &e->ctx->user);
    tg__bind_key(st, TG__P_WORKSPACE, &e->ctx->workspace);
    int row = step(e, st);
    if (row > 0) {
        e->ws_has_role = tg__st_column_type(st, 0) != TG__T_NULL;
        e->ws_role_at = keep_name(e, st, 0);
        e->ws_role = e->ws_has_role ? tg__ctx_role(e->ctx, tg__st_column_text(st, 0)) : NULL;
    }
    tg__st_finalize(st);
    if (row < 0)
        return failed_status(e);
    int ws_ok = 1;
    if (row > 0 && a->workspaces.row_filter.n_conds) {
        tg__sqlf(&sql, e->p->db->dialect, "SELECT 1 FROM %I AS tg_w WHERE tg_w.%I = %P",
                 a->workspaces.table, a->workspaces.id, TG__P_WORKSPACE);
        tg__sql_filter(e->p->db->dialect, &a->workspaces.row_filter, "tg_w",
                       tg__sql_filter_param(a, TG__FILTER_WORKSPACES), &sql);
        if ((s = prepare(e, &sql, NULL, &st)) != TG_OK)
            return s;
        tg__bind_key(st, TG__P_WORKSPACE, &e->ctx->workspace);
        ws_ok = step(e, st);
        tg__st_finalize(st);
        if (ws_ok < 0)
            return failed_status(e);
    }
    e->member = row > 0 && ws_ok;
    if (!e->member)
        e->ws_role = NULL;
    if (!e->route.has_role) /* read before the membership was: the workspace role applies */
        e->route.role = e->ws_role;
    tg__buf_printf(&e->line, "%s row of user ", a->workspace_members.table);
    key(e, &e->ctx->user);
    lit(e, " in workspace ");
    key(e, &e->ctx->workspace);
    if (row <= 0) {
        lit(e, ": none");
    } else {
        lit(e, ": found, role ");
        if (!a->workspace_members.role)
            lit(e, "none (app.workspace_members.role = false)");
        else if (!e->ws_has_role)
            lit(e, "NULL (grants nothing)");
        else {
            name(e, role_name(e, e->ws_role_at));
            if (!e->ws_role)
                lit(e, " (not declared: grants nothing)");
        }
        if (!ws_ok) {
            tg__buf_printf(&e->line, "; but the workspace is outside app.workspaces.row_filter "
                                     "(%s): it has no members",
                           a->workspaces.table);
        }
    }
    add(e, "membership", "membership", e->member ? TG_EXPLAIN_PASS : TG_EXPLAIN_FAIL,
        "not_member");
    return TG_OK;
}

/* What the user holds in tenant t (a key as stored or sent), as the resolver reads it:
 * tg__sql_entitlement, then whether a tenants row exists at all (for the line only). */
static int tenant_facts(ex *e, const tg_value *t, tfacts *f) {
    memset(f, 0, sizeof *f);
    f->role = e->ws_role;
    /* SQL would match the text '10' to the integer tenant 10: not a tenant at all */
    if (t->type == TG_NULL || tg__key_coerces(e->p->tenant_key.aff, t))
        return TG_OK;
    int s;
    if (!e->ent) {
        tg__buf sql = {0};
        tg__sql_entitlement(e->p->db->dialect, e->app, &sql);
        if ((s = prepare(e, &sql, NULL, &e->ent)) != TG_OK)
            return s;
    }
    tg__stmt *st = e->ent;
    tg__st_reset(st);
    tg__bind_key(st, TG__P_TENANT, t);
    tg__bind_key(st, TG__P_USER, &e->ctx->user);
    int row = step(e, st);
    if (row < 0)
        return failed_status(e);
    if (row > 0) {
        f->known = tg__st_column_type(st, 0) != TG__T_NULL;
        f->in_ws = f->known && tg__col_eq(st, 0, &e->ctx->workspace);
        f->entitled = tg__st_column_type(st, 1) != TG__T_NULL;
        f->has_role = f->entitled && tg__st_column_type(st, 2) != TG__T_NULL;
        if (f->has_role) {
            f->role_at = keep_name(e, st, 2);
            f->role = tg__ctx_role(e->ctx, tg__st_column_text(st, 2));
        }
    }
    tg__st_reset(st);
    f->exists = f->known;
    if (!f->known) {
        tg__buf sql = {0};
        tg__stmt *raw = NULL;
        tg__sqlf(&sql, e->p->db->dialect, "SELECT 1 FROM %I WHERE %I = %P", e->app->tenants.table,
                 e->app->tenants.id, TG__P_TENANT);
        if ((s = prepare(e, &sql, NULL, &raw)) != TG_OK)
            return s;
        tg__bind_key(raw, TG__P_TENANT, t);
        row = step(e, raw);
        tg__st_finalize(raw);
        if (row < 0)
            return failed_status(e);
        f->exists = row > 0;
    }
    return TG_OK;
}

/* "tenant K is in workspace W" and the like; `who` names the tenant ("tenant 3", "the
 * record's tenant"). Only keys the caller sent are printed. */
static void tenant_line(ex *e, const tfacts *f) {
    if (f->in_ws) {
        lit(e, " is in workspace ");
        key(e, &e->ctx->workspace);
    } else if (!f->exists) {
        tg__buf_printf(&e->line, " is no row of %s", e->app->tenants.table);
    } else if (!f->known) {
        tg__buf_printf(&e->line, " is outside app.tenants.row_filter (or names no workspace)");
    } else {
        lit(e, " belongs to another workspace than ");
        key(e, &e->ctx->workspace);
    }
}

static void entitlement_line(ex *e, const tfacts *f) {
    if (!f->entitled) {
        tg__buf_printf(&e->line, ": no %s row", e->app->tenant_members.table);
        return;
    }
    tg__buf_printf(&e->line, ": %s row found, ", e->app->tenant_members.table);
    if (f->has_role) {
        lit(e, "tenant role ");
        name(e, role_name(e, f->role_at));
        if (!f->role)
            lit(e, " (not declared: grants nothing)");
    } else {
        lit(e, "no tenant role: the workspace role applies");
    }
}

/* The route tenant's checks (tenant_context, tenant_workspace, entitlement); `entitle`: the
 * path checks the entitlement to it. */
static void route_checks(ex *e, int context, int entitle) {
    tg_ctx *ctx = e->ctx;
    if (context) {
        if (ctx->has_tenant) {
            lit(e, "route tenant ");
            key(e, &ctx->tenant);
            add(e, "tenant_context", "tenant_context", TG_EXPLAIN_PASS, NULL);
        } else {
            lit(e, "no route tenant, and this path is bound to one");
            add(e, "tenant_context", "tenant_context", TG_EXPLAIN_FAIL, "no_tenant_context");
        }
    }
    if (!ctx->has_tenant)
        return;
    lit(e, "tenant ");
    key(e, &ctx->tenant);
    tenant_line(e, &e->route);
    add(e, "tenant_workspace", "tenant_workspace",
        e->route.in_ws ? TG_EXPLAIN_PASS : TG_EXPLAIN_FAIL, "tenant_not_in_workspace");
    if (!entitle)
        return;
    lit(e, "user ");
    key(e, &ctx->user);
    lit(e, " in tenant ");
    key(e, &ctx->tenant);
    entitlement_line(e, &e->route);
    add(e, "entitlement", "entitlement", e->route.entitled ? TG_EXPLAIN_PASS : TG_EXPLAIN_FAIL,
        "not_entitled");
}

/* ---- records ---- */

static int column_index(const tg__table_plan *tp, const char *col) {
    for (int i = 0; col && i < tp->shape.n_columns; i++)
        if (strcmp(tp->shape.columns[i], col) == 0)
            return i;
    return -1;
}

/* Whether a row of tp with key id exists at all, its row filter aside. */
static int exists_raw(ex *e, const tg__table_plan *tp, const tg_value *id, int *out) {
    tg__buf sql = {0};
    tg__stmt *st = NULL;
    /* a shape that pins its tenant never looks at another tenant's rows, here neither */
    int pin = tp->shape.pin_tenant && e->ctx->has_tenant;
    if (pin)
        tg__sqlf(&sql, e->p->db->dialect, "SELECT 1 FROM %I WHERE %I = %P AND %I = %P",
                 tp->shape.table, tp->shape.id, 1, tp->shape.tenant, 2);
    else
        tg__sqlf(&sql, e->p->db->dialect, "SELECT 1 FROM %I WHERE %I = %P", tp->shape.table,
                 tp->shape.id, 1);
    int s = prepare(e, &sql, NULL, &st);
    if (s != TG_OK)
        return s;
    tg__bind_key(st, 1, id);
    if (pin)
        tg__bind_key(st, 2, &e->ctx->tenant);
    int row = step(e, st);
    tg__st_finalize(st);
    if (row < 0)
        return failed_status(e);
    *out = row > 0;
    return TG_OK;
}

/* After the row of a read by id, when `look` (the resolver's another_row: a view, or a
 * table keyed on (tenant, id) read without a route tenant): *two is set when a second row
 * has the id, and then the item `check` failing with ambiguous_id is added. Steps st past
 * its row. */
static int another_row(ex *e, const tg__table_plan *tp, int look, const char *check,
                       tg__stmt *st, int *two) {
    *two = 0;
    if (!look)
        return TG_OK;
    int row = step(e, st);
    if (row < 0)
        return failed_status(e);
    if (row > 0) {
        *two = 1;
        tg__buf_printf(&e->line, "more than one row of %s has this %s: which one was meant "
                                 "cannot be told",
                       tp->shape.table, tp->shape.id);
        add(e, check, "record", TG_EXPLAIN_FAIL, "ambiguous_id");
    }
    return TG_OK;
}

static void filter_text(ex *e, const tg_row_filter *f) {
    for (size_t i = 0; f && i < f->n_conds; i++)
        tg__buf_printf(&e->line, "%s%s %s", i ? " and " : "", f->conds[i].column,
                       tg_filter_op_name(f->conds[i].op));
}

/* The record with key id of tp in the route tenant's scope, as fetch_scoped decides it:
 * adds the record's items and sets *reason (NULL: in scope). `owner` makes it the owner
 * record of a relation (reasons owner_*); with `via`, the row's column via_col must hold it
 * (wrong_owner; via_col -1: no such column, never). Of a row of another tenant nothing more
 * than that is read. */
static int record_checks(ex *e, tg__table_plan *tp, const char *fam, const tg_value *id,
                         int owner, int via_col, const tg_value *via, const char **reason) {
    static const char *const plain[] = {"not_found", "foreign_tenant", "workspace_mismatch",
                                        "foreign_workspace"};
    static const char *const owners[] = {"owner_not_found", "owner_foreign_tenant",
                                         "owner_workspace_mismatch", "owner_foreign_workspace"};
    const char *const *why = owner ? owners : plain;
    const char *check = owner ? "owner" : "record";
    tg_ctx *ctx = e->ctx;
    *reason = NULL;
    tg__buf sql = {0};
    tg__stmt *st = NULL;
    tg__sql_record(e->p->db->dialect, e->app, &tp->shape, &sql);
    int s = prepare(e, &sql, tp, &st);
    if (s != TG_OK)
        return s;
    tg__bind_key(st, TG__P_TENANT, &ctx->tenant);
    tg__bind_key(st, TG__P_ID, id);
    int row = step(e, st);
    if (row < 0) {
        tg__st_finalize(st);
        return failed_status(e);
    }
    tg__buf_printf(&e->line, "%s%s ", owner ? "owner " : "", fam);
    key(e, id);
    if (row == 0) {
        tg__st_finalize(st);
        int raw = 0;
        if ((s = exists_raw(e, tp, id, &raw)) != TG_OK)
            return s;
        *reason = why[0];
        if (!raw) {
            tg__buf_printf(&e->line, ": no row of %s with %s = it", tp->shape.table,
                           tp->shape.id);
            add(e, check, check, TG_EXPLAIN_FAIL, *reason);
            return TG_OK;
        }
        tg__buf_printf(&e->line, ": a row of %s", tp->shape.table);
        add(e, check, check, TG_EXPLAIN_PASS, NULL);
        lit(e, "the row is outside the family's row_filter (");
        filter_text(e, tp->shape.filter);
        lit(e, "): as if it did not exist");
        add(e, check, "row_filter", TG_EXPLAIN_FAIL, *reason);
        return TG_OK;
    }
    tg__buf_printf(&e->line, ": a row of %s", tp->shape.table);
    add(e, check, check, TG_EXPLAIN_PASS, NULL);
    if (tp->shape.filter && tp->shape.filter->n_conds) {
        lit(e, "the row passes the family's row_filter (");
        filter_text(e, tp->shape.filter);
        lit(e, ")");
        add(e, check, "row_filter", TG_EXPLAIN_PASS, NULL);
    }
    /* its tenant: the route tenant's by type and value, else foreign (which kind is read
     * from the same statement's last column, the foreign tenant's workspace) */
    if (tg__col_eq(st, tp->col_tenant, &ctx->tenant)) {
        tg__buf_printf(&e->line, "its %s is the route tenant ", tp->shape.tenant);
        key(e, &ctx->tenant);
        add(e, check, "record_tenant", TG_EXPLAIN_PASS, NULL);
    } else {
        int t = tg__st_column_type(st, tp->col_tenant);
        tg_value as_key = {0};
        as_key.type = t == TG__T_INTEGER ? TG_INTEGER
                      : t == TG__T_TEXT  ? TG_TEXT
                      : t == TG__T_BLOB  ? TG_BLOB
                                          : TG_NULL;
        int other_ws = as_key.type == TG_NULL ||
                       tg__key_coerces(e->p->tenant_key.aff, &as_key) ||
                       !tg__col_eq(st, tp->shape.n_columns, &ctx->workspace);
        *reason = why[other_ws ? 3 : 1];
        tg__buf_printf(&e->line, "its %s is not the route tenant ", tp->shape.tenant);
        key(e, &ctx->tenant);
        if (other_ws) {
            lit(e, ": it belongs to no tenant of workspace ");
            key(e, &ctx->workspace);
            lit(e, " (another workspace's, one that is gone, or no tenant key)");
        } else {
            lit(e, ": it belongs to another tenant of workspace ");
            key(e, &ctx->workspace);
        }
        add(e, check, "record_tenant", TG_EXPLAIN_FAIL, *reason);
        tg__st_finalize(st);
        return TG_OK; /* nothing more of a foreign row is read */
    }
    if (tp->col_workspace < 0) {
        tg__buf_printf(&e->line, "%s has no %s column yet: its tenant's workspace applies",
                       tp->shape.table, tp->names->workspace);
        add(e, check, "record_workspace", TG_EXPLAIN_PASS, NULL);
    } else if (tg__st_column_type(st, tp->col_workspace) == TG__T_NULL) {
        tg__buf_printf(&e->line, "its %s is NULL (not backfilled yet): its tenant's workspace "
                                 "applies",
                       tp->shape.workspace);
        add(e, check, "record_workspace", TG_EXPLAIN_PASS, NULL);
    } else if (tg__col_eq(st, tp->col_workspace, &ctx->workspace)) {
        tg__buf_printf(&e->line, "its %s is workspace ", tp->shape.workspace);
        key(e, &ctx->workspace);
        add(e, check, "record_workspace", TG_EXPLAIN_PASS, NULL);
    } else {
        *reason = why[2];
        tg__buf_printf(&e->line, "its %s disagrees with its tenant's workspace ",
                       tp->shape.workspace);
        key(e, &ctx->workspace);
        add(e, check, "record_workspace", TG_EXPLAIN_FAIL, *reason);
        tg__st_finalize(st);
        return TG_OK;
    }
    /* the owner column is read before a view's second step moves the statement on */
    int via_ok = via && via_col >= 0 && tg__col_eq(st, via_col, via);
    int two = 0; /* a view may repeat a row: an id on two rows names no one record */
    int s2 = another_row(e, tp, tp->is_view, check, st, &two);
    if (s2 != TG_OK || two) {
        tg__st_finalize(st);
        if (two)
            *reason = "ambiguous_id";
        return s2;
    }
    if (via) {
        int ok = via_ok;
        tg__buf_printf(&e->line, "its %s ", via_col >= 0 ? tp->shape.columns[via_col] : "owner");
        if (ok) {
            lit(e, "is the owner ");
            key(e, via);
        } else {
            lit(e, "is not the owner ");
            key(e, via);
            lit(e, ": it belongs to another owner");
            *reason = "wrong_owner";
        }
        add(e, "record", "relation", ok ? TG_EXPLAIN_PASS : TG_EXPLAIN_FAIL, "wrong_owner");
    }
    tg__st_finalize(st);
    return TG_OK;
}

static int cmp_key(const void *a, const void *b) { return tg__value_cmp(a, b); }

/* bulk_action: every distinct id, in the order the resolver meets them (by key). The first
 * id that is in the wrong scope decides; else a missing one (not_found). */
static int bulk_checks(ex *e, tg__table_plan *tp, const char *fam, const tg_request *req,
                       const char **reason) {
    tg_value *ids = malloc(req->n_ids * sizeof *ids);
    if (!ids)
        return tg__ctx_fail(e->ctx, TG_NOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < req->n_ids; i++) {
        char msg[8];
        if (tg__key_check(&tp->id_key, "ids", &req->ids[i], &ids[m], msg, sizeof msg) == 0)
            m++;
    }
    qsort(ids, m, sizeof *ids, cmp_key);
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (k == 0 || tg__value_cmp(&ids[k - 1], &ids[i]) != 0)
            ids[k++] = ids[i];
    m = k;
    long first_bad = -1, first_missing = -1;
    const char *bad = NULL;
    e->manual = 1;
    int s = TG_OK;
    for (size_t i = 0; i < m && s == TG_OK; i++) {
        const char *r = NULL;
        s = record_checks(e, tp, fam, &ids[i], 0, -1, NULL, &r);
        if (s != TG_OK || !r)
            continue;
        long at = (long)e->n - 1; /* the item that refused is the last one added */
        if (strcmp(r, "not_found") != 0) {
            if (first_bad < 0) {
                first_bad = at;
                bad = r;
            }
        } else if (first_missing < 0) {
            first_missing = at;
        }
    }
    e->manual = 0;
    free(ids);
    if (s != TG_OK)
        return s;
    if (first_bad >= 0) {
        *reason = bad;
        if (e->decided < 0)
            e->decided = first_bad;
    } else if (first_missing >= 0) {
        *reason = "not_found";
        if (e->decided < 0)
            e->decided = first_missing;
    }
    return TG_OK;
}

/* ---- capabilities ---- */

/* Where role `role` gets capability `cap` from: a row of app.role_grants, or the rules. */
static int grant_source(ex *e, const tg_role *role, int cap) {
    const tg_app *a = e->app;
    if (a->role_grants.table) {
        tg__buf sql = {0};
        tg__stmt *st = NULL;
        tg__sqlf(&sql, e->p->db->dialect, "SELECT 1 FROM %I WHERE %I = %P AND %I IN (%P, '*')",
                 a->role_grants.table, a->role_grants.role, 1, a->role_grants.capability, 2);
        int s = prepare(e, &sql, NULL, &st);
        if (s != TG_OK)
            return s;
        tg__st_bind_str(st, 1, role->name);
        tg__st_bind_str(st, 2, e->r->capabilities[cap]);
        int row = step(e, st);
        tg__st_finalize(st);
        if (row < 0)
            return failed_status(e);
        if (row > 0) {
            tg__buf_printf(&e->line, " (a row of %s, app.role_grants)", a->role_grants.table);
            return TG_OK;
        }
    }
    lit(e, " (the rule files: role declared at ");
    where(e, role->where);
    lit(e, ")");
    return TG_OK;
}

/* One capability the request needs: `need` a capability index, or TG__NEED_DENY. */
static int need_line(ex *e, const tg_role *role, int need, int *ok) {
    *ok = tg__plan_grants(role, need);
    if (need < 0) {
        lit(e, "no capability declared: nobody holds it (path_without_capability)");
        return TG_OK;
    }
    name(e, e->r->capabilities[need]);
    if (*ok) {
        lit(e, " granted");
        return grant_source(e, role, need);
    }
    lit(e, " not granted; roles that grant it: ");
    int any = 0;
    for (size_t i = 0; i < e->r->n_roles; i++) {
        if (tg__plan_grants(&e->r->roles[i], need)) {
            lit(e, any++ ? ", " : "");
            name(e, e->r->roles[i].name);
        }
    }
    if (!any)
        lit(e, "none");
    if (e->app->role_grants.table)
        tg__buf_printf(&e->line, " (roles from the rule files and table %s)",
                       e->app->role_grants.table);
    else
        lit(e, " (roles from the rule files)");
    return TG_OK;
}

/* The capability check: `need` (the path's), and the capability the request names (extra,
 * -1: none), held by `role`, which comes from `from`. */
static int capability_check(ex *e, const char *what, int need, int extra, const tg_role *role,
                            const char *from) {
    int ok = 0, ok2 = 1, s;
    tg__buf_printf(&e->line, "%s: role ", what);
    if (role)
        name(e, role->name);
    else
        lit(e, "none");
    tg__buf_printf(&e->line, " (%s): ", from);
    if ((s = need_line(e, role, need, &ok)) != TG_OK)
        return s;
    if (extra >= 0) {
        lit(e, "; the request also names ");
        if ((s = need_line(e, role, extra, &ok2)) != TG_OK)
            return s;
    }
    add(e, "capability", "capability", ok && ok2 ? TG_EXPLAIN_PASS : TG_EXPLAIN_FAIL,
        "missing_capability");
    return TG_OK;
}

/* Where the role of a decision comes from, for the capability line. */
static const char *role_from(const tfacts *f, int entitled_here) {
    if (entitled_here && f->has_role)
        return "the tenant membership's role";
    return "the workspace membership's role";
}

/* ---- paths ---- */

static void query_line(ex *e, const tg__table_plan *tp, const char *via, const tg_value *owner,
                       const tg_family *fam, const tg_request *req, int64_t limit) {
    tg__buf_printf(&e->line, "rows of %s whose %s is ", tp->shape.table, tp->shape.tenant);
    key(e, &e->ctx->tenant);
    if (tp->shape.workspace) {
        tg__buf_printf(&e->line, " and %s is NULL or ", tp->shape.workspace);
        key(e, &e->ctx->workspace);
    }
    if (tp->shape.filter && tp->shape.filter->n_conds) {
        lit(e, ", within the row_filter (");
        filter_text(e, tp->shape.filter);
        lit(e, ")");
    }
    if (via) {
        tg__buf_printf(&e->line, ", whose %s is ", via);
        key(e, owner);
    }
    if (req->path == TG_PATH_GLOBAL_SEARCH) {
        lit(e, ", where ");
        for (size_t i = 0; i < fam->n_search_columns; i++)
            tg__buf_printf(&e->line, "%s%s", i ? " or " : "", fam->search_columns[i]);
        lit(e, " contains the query (%, _ and \\ escaped)");
    }
    if (req->after.type != TG_NULL) {
        tg__buf_printf(&e->line, ", %s after ", tp->shape.id);
        key(e, &req->after);
    }
    tg__buf_printf(&e->line, ", by %s, at most %lld", tp->shape.id, (long long)limit);
    add(e, "query", "query", TG_EXPLAIN_PASS, NULL);
}

static int explain_family(ex *e, const tg_request *req, int extra) {
    tg_ctx *ctx = e->ctx;
    int fi = tg_rules_family_index(e->r, req->family);
    const tg_family *fam = &e->r->families[fi];
    tg__table_plan *tp = &e->p->fams[fi];
    const tg_path_rule *path = &fam->paths[req->path];
    const char *pname = tg_path_type_name(req->path);
    int s;
    /* the path */
    if (!path->declared) {
        tg__buf_printf(&e->line, "%s declares no %s path", fam->name, pname);
        if (req->path == TG_PATH_GLOBAL_SEARCH && fam->search_posture != TG_SEARCH_SCOPED) {
            tg__buf_printf(&e->line, " (search_posture %s)",
                           tg_search_posture_name(fam->search_posture));
            add(e, "path", "path", TG_EXPLAIN_FAIL, "search_disabled");
        } else {
            add(e, "path", "path", TG_EXPLAIN_FAIL, "path_not_declared");
        }
    } else {
        tg__buf_printf(&e->line, "%s declares %s (", fam->name, pname);
        where(e, path->where);
        lit(e, ")");
        add(e, "path", "path", TG_EXPLAIN_PASS, NULL);
    }
    if ((s = membership(e)) != TG_OK)
        return s;
    if (req->path == TG_PATH_CANONICAL_VIEWER) {
        if (ctx->has_tenant)
            route_checks(e, 0, 0);
        else {
            lit(e, "no route tenant: canonical_viewer takes the record's own tenant");
            add(e, "tenant_context", "tenant_context", TG_EXPLAIN_PASS, NULL);
        }
    } else {
        route_checks(e, 1, 1);
    }
    if (!path->declared)
        return TG_OK; /* nothing more is decided on a path the family does not have */
    const int need = tp->need[req->path];
    tg_value id = {0}, owner = {0};
    char msg[8];
    if (req->id.type != TG_NULL && tg__key_check(&tp->id_key, "id", &req->id, &id, msg, sizeof msg))
        return tg__ctx_fail(ctx, TG_MISUSE, "explain: the id is no key"); /* resolve refused */
    int64_t limit = req->limit ? req->limit : e->app->page_size;
    const char *reason = NULL;
    const tg_role *role = e->route.role;
    const char *from = role_from(&e->route, 1);
    switch (req->path) {
    case TG_PATH_INDEX:
    case TG_PATH_GLOBAL_SEARCH: query_line(e, tp, NULL, NULL, fam, req, limit); break;
    case TG_PATH_DETAIL:
    case TG_PATH_ROW_ACTION:
        if (ctx->has_tenant)
            s = record_checks(e, tp, fam->name, &id, 0, -1, NULL, &reason);
        break;
    case TG_PATH_BULK_ACTION:
        if (ctx->has_tenant)
            s = bulk_checks(e, tp, fam->name, req, &reason);
        break;
    case TG_PATH_RELATION_MANAGER: {
        int oi = path->owner_family;
        tg__table_plan *otp = &e->p->fams[oi];
        if (tg__key_check(&otp->id_key, "owner", &req->owner, &owner, msg, sizeof msg))
            owner = req->owner;
        if (!ctx->has_tenant)
            break;
        if ((s = record_checks(e, otp, e->r->families[oi].name, &owner, 1, -1, NULL, &reason)) !=
            TG_OK)
            return s;
        int via_col = column_index(tp, path->via);
        if (id.type != TG_NULL)
            s = record_checks(e, tp, fam->name, &id, 0, via_col, &owner, &reason);
        else
            query_line(e, tp, path->via, &owner, fam, req, limit);
        break;
    }
    case TG_PATH_CANONICAL_VIEWER: {
        /* the record names its tenant: read by id within the row filter */
        tg__buf sql = {0};
        tg__stmt *st = NULL;
        tg__sql_by_id(e->p->db->dialect, &tp->shape, &sql);
        if ((s = prepare(e, &sql, tp, &st)) != TG_OK)
            return s;
        tg__bind_key(st, 1, &id);
        int row = step(e, st);
        if (row < 0) {
            tg__st_finalize(st);
            return failed_status(e);
        }
        tg__buf_printf(&e->line, "%s ", fam->name);
        key(e, &id);
        if (row == 0) {
            tg__st_finalize(st);
            int raw = 0;
            if ((s = exists_raw(e, tp, &id, &raw)) != TG_OK)
                return s;
            if (raw)
                tg__buf_printf(&e->line, ": a row of %s outside the family's row_filter: as "
                                         "if it did not exist",
                               tp->shape.table);
            else
                tg__buf_printf(&e->line, ": no row of %s", tp->shape.table);
            add(e, "record", raw ? "row_filter" : "record", TG_EXPLAIN_FAIL, "not_found");
            break;
        }
        tg__buf_printf(&e->line, ": a row of %s", tp->shape.table);
        add(e, "record", "record", TG_EXPLAIN_PASS, NULL);
        tg_value t;
        tg__key_from_col(st, tp->col_tenant, &e->bytes, &t);
        int ws_null = tp->col_workspace < 0 ||
                      tg__st_column_type(st, tp->col_workspace) == TG__T_NULL;
        int ws_ok = ws_null || tg__col_eq(st, tp->col_workspace, &ctx->workspace);
        int two = 0;
        s = another_row(e, tp, tp->is_view || tp->key_with_tenant, "record", st, &two);
        tg__st_finalize(st);
        if (s != TG_OK || two)
            return s;
        tfacts ti;
        memset(&ti, 0, sizeof ti);
        if (t.type != TG_NULL && !(ctx->has_tenant && !tg__value_eq(&t, &ctx->tenant)) &&
            (s = tenant_facts(e, &t, &ti)) != TG_OK)
            return s;
        int mine = 0; /* the caller may see which tenant: it is theirs in this workspace */
        if (t.type == TG_NULL) {
            tg__buf_printf(&e->line, "its %s is no tenant key", tp->shape.tenant);
            reason = "foreign_workspace";
        } else if (ctx->has_tenant && !tg__value_eq(&t, &ctx->tenant)) {
            tg__buf_printf(&e->line, "its %s is not the route tenant ", tp->shape.tenant);
            key(e, &ctx->tenant);
            lit(e, ": a route tenant never widens to another");
            reason = "foreign_tenant";
        } else if (!ti.known || !ti.in_ws) {
            tg__buf_printf(&e->line, "its %s is no tenant of workspace ", tp->shape.tenant);
            key(e, &ctx->workspace);
            reason = "foreign_workspace";
        } else {
            tg__buf_printf(&e->line, "its %s is a tenant of workspace ", tp->shape.tenant);
            key(e, &ctx->workspace);
            mine = ti.entitled;
        }
        add(e, "record", "record_tenant", reason ? TG_EXPLAIN_FAIL : TG_EXPLAIN_PASS, reason);
        if (reason)
            break;
        if (!ws_ok) {
            tg__buf_printf(&e->line, "its %s disagrees with its tenant's workspace ",
                           tp->shape.workspace);
            key(e, &ctx->workspace);
            reason = "workspace_mismatch";
        } else {
            tg__buf_printf(&e->line, "its %s %s", tp->shape.workspace ? tp->shape.workspace
                                                                       : "workspace column",
                           ws_null ? "is not set: its tenant's workspace applies" : "agrees");
        }
        add(e, "record", "record_workspace", reason ? TG_EXPLAIN_FAIL : TG_EXPLAIN_PASS, reason);
        if (reason)
            break;
        lit(e, "user ");
        key(e, &ctx->user);
        lit(e, " in the record's tenant");
        if (mine) {
            lit(e, " ");
            key(e, &t);
        }
        entitlement_line(e, &ti);
        if (!ti.entitled)
            reason = "not_entitled";
        add(e, "entitlement", "entitlement", reason ? TG_EXPLAIN_FAIL : TG_EXPLAIN_PASS, reason);
        role = ti.entitled ? ti.role : e->ws_role;
        from = role_from(&ti, ti.entitled);
        break;
    }
    default: break;
    }
    if (s != TG_OK)
        return s;
    return capability_check(e, pname, need, extra, e->member ? role : NULL, from);
}

static int explain_exception(ex *e, const tg_request *req, int extra) {
    tg_ctx *ctx = e->ctx;
    int ei = -1;
    for (size_t i = 0; i < e->r->n_exceptions; i++)
        if (strcmp(e->r->exceptions[i].name, req->exception) == 0)
            ei = (int)i;
    const tg_exception *x = &e->r->exceptions[ei];
    tg__table_plan *tp = &e->p->excs[ei];
    unsigned checks = x->still_required_checks | TG_CHECK_RECORD_IN_WORKSPACE;
    const char *pname = tg_path_type_name(req->path);
    int s;
    if ((s = membership(e)) != TG_OK)
        return s;
    if (checks & TG_CHECK_RECORD_IN_TENANT)
        route_checks(e, 1, 0);
    int by_id = req->path == TG_PATH_DETAIL || req->path == TG_PATH_ROW_ACTION ||
                req->path == TG_PATH_CANONICAL_VIEWER;
    if (req->path != TG_PATH_INDEX && !by_id) {
        tg__buf_printf(&e->line, "exception %s serves index and by-id paths, not %s", x->name,
                       pname);
        add(e, "path", "path", TG_EXPLAIN_FAIL, "path_not_declared");
        return TG_OK;
    }
    tg__buf_printf(&e->line, "exception %s (%s, ", x->name,
                   tg_exception_kind_name(x->exception_kind));
    where(e, x->where);
    lit(e, ") still requires:");
    for (unsigned bit = 1; bit <= TG_CHECK_CAPABILITY; bit <<= 1)
        if (checks & bit)
            tg__buf_printf(&e->line, " %s", tg_check_name(bit));
    add(e, "path", "path", TG_EXPLAIN_PASS, NULL);
    const tg_role *role = e->ws_role;
    const char *from = "the workspace membership's role";
    if (req->path == TG_PATH_INDEX) {
        int64_t limit = req->limit ? req->limit : e->app->page_size;
        tg__buf_printf(&e->line, "rows of %s in workspace ", tp->shape.table);
        key(e, &ctx->workspace);
        if (checks & TG_CHECK_RECORD_IN_TENANT) {
            lit(e, " of tenant ");
            key(e, &ctx->tenant);
        }
        if (checks & TG_CHECK_TENANT_ENTITLED)
            lit(e, ", of tenants the user is entitled to");
        tg__buf_printf(&e->line, ", each kept only when the user's role in its tenant holds "
                                 "the capability; by %s, at most %lld",
                       tp->shape.id, (long long)limit);
        add(e, "query", "query", TG_EXPLAIN_PASS, NULL);
        return capability_check(e, pname, tp->need[0], extra, e->member ? role : NULL, from);
    }
    tg_value id = {0};
    char msg[8];
    if (tg__key_check(&tp->id_key, "id", &req->id, &id, msg, sizeof msg))
        return tg__ctx_fail(ctx, TG_MISUSE, "explain: the id is no key");
    tg__buf sql = {0};
    tg__stmt *st = NULL;
    tg__sql_by_id(e->p->db->dialect, &tp->shape, &sql);
    if ((s = prepare(e, &sql, NULL, &st)) != TG_OK)
        return s;
    tg__bind_key(st, 1, &id);
    int row = step(e, st);
    if (row < 0) {
        tg__st_finalize(st);
        return failed_status(e);
    }
    tg__buf_printf(&e->line, "%s ", x->name);
    key(e, &id);
    if (row == 0) {
        tg__st_finalize(st);
        tg__buf_printf(&e->line, ": no row of %s", tp->shape.table);
        add(e, "record", "record", TG_EXPLAIN_FAIL, "not_found");
        return TG_OK;
    }
    tg__buf_printf(&e->line, ": a row of %s", tp->shape.table);
    add(e, "record", "record", TG_EXPLAIN_PASS, NULL);
    int has_t = tp->col_tenant >= 0 && tg__st_column_type(st, tp->col_tenant) != TG__T_NULL;
    tg_value t = {0};
    if (has_t)
        tg__key_from_col(st, tp->col_tenant, &e->bytes, &t);
    int t_key = !has_t || t.type != TG_NULL;
    int has_w = tp->col_workspace >= 0 && tg__st_column_type(st, tp->col_workspace) != TG__T_NULL;
    int w_ok = has_w && tg__col_eq(st, tp->col_workspace, &ctx->workspace);
    int two = 0;
    s = another_row(e, tp, tp->is_view || tp->key_with_tenant, "record", st, &two);
    tg__st_finalize(st);
    if (s != TG_OK || two)
        return s;
    const char *reason = NULL;
    tfacts ti;
    memset(&ti, 0, sizeof ti);
    if (!t_key) {
        tg__buf_printf(&e->line, "its %s is no tenant key", tp->shape.tenant);
        add(e, "record", "record_tenant", TG_EXPLAIN_FAIL, "foreign_workspace");
        return TG_OK;
    }
    if (has_t) {
        if (ctx->has_tenant && tg__value_eq(&t, &ctx->tenant))
            ti = e->route;
        else if ((s = tenant_facts(e, &t, &ti)) != TG_OK)
            return s;
    }
    if (checks & TG_CHECK_RECORD_IN_WORKSPACE) {
        if (!has_t && !has_w) {
            tg__buf_printf(&e->line, "the row has neither a tenant nor a workspace: it cannot be "
                                     "placed");
            reason = "foreign_workspace";
        } else if (has_w && !w_ok) {
            tg__buf_printf(&e->line, "its %s is not workspace ", tp->shape.workspace);
            key(e, &ctx->workspace);
            reason = "foreign_workspace";
        } else if (has_t && (!ti.known || !ti.in_ws)) {
            tg__buf_printf(&e->line, "its %s is no tenant of workspace ", tp->shape.tenant);
            key(e, &ctx->workspace);
            reason = "foreign_workspace";
        } else {
            lit(e, "the row is in workspace ");
            key(e, &ctx->workspace);
        }
        add(e, "record", "record_workspace", reason ? TG_EXPLAIN_FAIL : TG_EXPLAIN_PASS, reason);
        if (reason)
            return TG_OK;
    }
    if (checks & TG_CHECK_RECORD_IN_TENANT) {
        if (!has_t || !ctx->has_tenant || !tg__value_eq(&t, &ctx->tenant)) {
            tg__buf_printf(&e->line, "its %s is not the route tenant ",
                           tp->shape.tenant ? tp->shape.tenant : "tenant");
            key(e, &ctx->tenant);
            reason = "foreign_tenant";
        } else {
            tg__buf_printf(&e->line, "its %s is the route tenant ", tp->shape.tenant);
            key(e, &ctx->tenant);
        }
        add(e, "record", "record_tenant", reason ? TG_EXPLAIN_FAIL : TG_EXPLAIN_PASS, reason);
        if (reason)
            return TG_OK;
    }
    if ((checks & TG_CHECK_TENANT_ENTITLED) && has_t) {
        lit(e, "user ");
        key(e, &ctx->user);
        lit(e, " in the row's tenant");
        entitlement_line(e, &ti);
        add(e, "entitlement", "entitlement", ti.entitled ? TG_EXPLAIN_PASS : TG_EXPLAIN_FAIL,
            "not_entitled");
        if (!ti.entitled)
            return TG_OK;
    }
    if (has_t && ti.entitled) {
        role = ti.role;
        from = role_from(&ti, 1);
    }
    return capability_check(e, pname, tp->need[0], extra, e->member ? role : NULL, from);
}

/* ---- the call ---- */

static int build(ex *e, const tg_request *req, const tg_decision *d, tg_explanation **out) {
    if (e->oom || e->n == 0)
        return tg__ctx_fail(e->ctx, TG_NOMEM, "out of memory");
    size_t at = e->decided >= 0 ? (size_t)e->decided : e->n - 1;
    const item *dec = &e->items[at];
    int status = 200;
    const char *reason = "ok";
    if (e->decided >= 0) {
        status = strcmp(dec->check, "capability") == 0 ? 403 : 404;
        reason = dec->reason;
    }
    if (status != d->status || !reason || strcmp(reason, d->reason) != 0)
        return tg__ctx_fail(e->ctx, TG_ERROR,
                            "explain: the checks say %d %s but the decision is %d %s (%s %s): "
                            "this is a bug in the explanation, please report it",
                            status, reason ? reason : "?", d->status, d->reason,
                            req->family ? req->family : req->exception,
                            tg_path_type_name(req->path));
    size_t size = sizeof(tg_explanation) + e->n * sizeof(tg_explain_check) + e->text.len;
    tg_explanation *x = calloc(1, size);
    if (!x)
        return tg__ctx_fail(e->ctx, TG_NOMEM, "out of memory");
    tg_explain_check *c = (tg_explain_check *)(x + 1);
    char *text = (char *)(c + e->n);
    memcpy(text, e->text.p, e->text.len);
    for (size_t i = 0; i < e->n; i++) {
        c[i].check = e->items[i].check;
        c[i].step = e->items[i].step;
        c[i].result = e->items[i].result;
        c[i].read = text + e->items[i].at;
        c[i].reason = e->items[i].reason;
    }
    x->status = status;
    x->reason = d->reason; /* static, as the decision's */
    x->decided_at = at;
    x->decided_by = dec->check;
    x->checks = c;
    x->n_checks = e->n;
    x->decision = d;
    *out = x;
    return TG_OK;
}

int tg_ctx_explain(tg_ctx *ctx, const tg_request *req, tg_explanation **out) {
    if (!ctx || !req || !out)
        return TG_MISUSE;
    *out = NULL;
    if (ctx->in_log || ctx->eng->closed) {
        const tg_decision *d = NULL;
        return tg_ctx_resolve(ctx, req, &d); /* refuses with its own message */
    }
    /* one snapshot for the decision and the explanation: both see the same rows (none is
     * possible inside a write transaction: a run_matrix callback, which writes nothing
     * meanwhile) */
    tg_engine *eng = ctx->eng;
    int snap = tg__engine_read_begin(eng) == TG_OK;
    int quiet = ctx->quiet;
    ctx->quiet = 1; /* an explanation is not a decision served: it is not logged */
    const tg_decision *d = NULL;
    int s = tg_ctx_resolve(ctx, req, &d);
    ctx->quiet = quiet;
    ex e;
    memset(&e, 0, sizeof e);
    e.ctx = ctx;
    e.p = ctx->plan;
    e.r = ctx->rules;
    e.app = &ctx->rules->app;
    e.decided = -1;
    if (s == TG_OK) {
        int extra = -1;
        for (size_t i = 0; req->capability && i < e.r->n_capabilities; i++)
            if (strcmp(e.r->capabilities[i], req->capability) == 0)
                extra = (int)i;
        /* the scope as the explanation reads it: membership first, then the route tenant */
        s = TG_OK;
        if (ctx->has_tenant)
            s = tenant_facts(&e, &ctx->tenant, &e.route);
        if (s == TG_OK)
            s = req->exception ? explain_exception(&e, req, extra) : explain_family(&e, req, extra);
        if (s == TG_OK)
            s = build(&e, req, d, out);
    }
    tg__st_finalize(e.ent);
    free(e.items);
    tg__buf_free(&e.text);
    tg__buf_free(&e.line);
    tg__buf_free(&e.names);
    tg__buf_free(&e.bytes);
    if (snap)
        (void)tg__engine_read_end(eng);
    return s;
}

void tg_explanation_free(tg_explanation *e) { free(e); }
