/* Plans: table shapes and prepared statements per rule version. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Reads the columns of `table` into the shape. Returns 0 when the table does not exist. */
static int read_shape(tg__plan *p, tg__table_plan *tp, const char *table, const tg_app *app) {
    sqlite3_stmt *st = NULL;
    tp->col_id = tp->col_tenant = tp->col_workspace = -1;
    tp->shape.table = table;
    if (sqlite3_prepare_v2(p->db, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    size_t cap = 16, n = 0;
    const char **cols = tg__arena_alloc(&p->arena, cap * sizeof *cols);
    int rc;
    while (cols && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            const char **more = tg__arena_alloc(&p->arena, cap * 2 * sizeof *more);
            if (!more) {
                cols = NULL;
                break;
            }
            memcpy(more, cols, n * sizeof *cols);
            cols = more;
            cap *= 2;
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        cols[n] = tg__arena_strdup(&p->arena, name);
        if (!cols[n]) {
            cols = NULL;
            break;
        }
        if (strcmp(name, app->id_column) == 0)
            tp->col_id = (int)n;
        else if (strcmp(name, app->tenant_column) == 0)
            tp->col_tenant = (int)n;
        else if (strcmp(name, app->workspace_column) == 0)
            tp->col_workspace = (int)n;
        n++;
    }
    sqlite3_finalize(st);
    if (!cols)
        return -1;
    tp->shape.columns = cols;
    tp->shape.n_columns = (int)n;
    tp->shape.id = tp->col_id >= 0 ? cols[tp->col_id] : NULL;
    tp->shape.tenant = tp->col_tenant >= 0 ? cols[tp->col_tenant] : NULL;
    tp->shape.workspace = tp->col_workspace >= 0 ? cols[tp->col_workspace] : NULL;
    tp->present = n > 0;
    return tp->present;
}

/* The requirement for a declared capability index (-1: none declared). */
static int need_of(int capability, int mutation) {
    if (capability >= 0)
        return capability;
    return mutation == TG__MUT_CAPABILITY_LESS_PATH_GRANTS ? TG__NEED_NOTHING : TG__NEED_DENY;
}

int tg__plan_new(tg__ruleset *rs, sqlite3 *db, unsigned schema_gen, int mutation, tg__buf *err,
                 tg__plan **out) {
    *out = NULL;
    tg__plan *p = calloc(1, sizeof *p);
    if (!p)
        return TG_NOMEM;
    p->refs = 1;
    p->rs = tg__ruleset_retain(rs);
    p->db = db;
    p->schema_gen = schema_gen;
    p->mutation = mutation;
    const tg_rules *r = &rs->pub;
    p->fams = tg__arena_alloc(&p->arena, (r->n_families + 1) * sizeof *p->fams);
    p->excs = tg__arena_alloc(&p->arena, (r->n_exceptions + 1) * sizeof *p->excs);
    if (!p->fams || !p->excs) {
        tg__plan_release(p);
        return TG_NOMEM;
    }
    for (size_t i = 0; i < r->n_families; i++) {
        const tg_family *f = &r->families[i];
        int ok = read_shape(p, &p->fams[i], f->table, &r->app);
        if (ok <= 0 || p->fams[i].col_id < 0 || p->fams[i].col_tenant < 0) {
            tg__buf_printf(err, "family '%s': table '%s' %s", f->name, f->table,
                           ok < 0    ? "cannot be read"
                           : ok == 0 ? "does not exist"
                                     : "lacks its id or tenant column");
            tg__plan_release(p);
            return ok < 0 ? TG_NOMEM : TG_DB;
        }
        for (int k = 0; k < TG_PATH_COUNT; k++)
            p->fams[i].need[k] = need_of(f->paths[k].capability, mutation);
        p->fams[i].shape.filter = &f->row_filter;
        p->fams[i].shape.filter_param = tg__sql_filter_param(&r->app, TG__FILTER_RECORD);
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        /* the capability applies only when the exception lists the check (the compiler
         * requires a capability exactly then); without it, nobody passes */
        int cap = e->still_required_checks & TG_CHECK_CAPABILITY ? e->capability : -1;
        for (int k = 0; k < TG_PATH_COUNT; k++)
            p->excs[i].need[k] = need_of(cap, mutation);
        if (e->table && read_shape(p, &p->excs[i], e->table, &r->app) < 0) {
            tg__plan_release(p);
            return TG_NOMEM;
        }
    }
    *out = p;
    return TG_OK;
}

tg__plan *tg__plan_retain(tg__plan *p) {
    if (p)
        p->refs++;
    return p;
}

static void finalize_table(tg__table_plan *tp) {
    sqlite3_finalize(tp->by_id);
    sqlite3_finalize(tp->by_ids);
    sqlite3_finalize(tp->page);
    sqlite3_finalize(tp->relation);
    sqlite3_finalize(tp->search);
    sqlite3_finalize(tp->first);
    for (int i = 0; i < 4; i++)
        sqlite3_finalize(tp->ws_page[i]);
}

void tg__plan_release(tg__plan *p) {
    if (!p || --p->refs > 0)
        return;
    const tg_rules *r = &p->rs->pub;
    for (size_t i = 0; p->fams && i < r->n_families; i++)
        finalize_table(&p->fams[i]);
    for (size_t i = 0; p->excs && i < r->n_exceptions; i++)
        finalize_table(&p->excs[i]);
    sqlite3_finalize(p->scope);
    sqlite3_finalize(p->entitlement);
    for (int i = 0; i < TG__WCACHE; i++)
        sqlite3_finalize(p->wcache[i].st);
    tg__ruleset_release(p->rs);
    tg__arena_free(&p->arena);
    free(p);
}

/* Binds the values of filter f, numbered from `first`, that statement st uses. */
static int bind_filter(sqlite3_stmt *st, const tg_row_filter *f, int first) {
    int last = sqlite3_bind_parameter_count(st), n = first, rc = SQLITE_OK;
    for (size_t i = 0; f && i < f->n_conds && rc == SQLITE_OK; i++) {
        for (size_t k = 0; k < f->conds[i].n_values && rc == SQLITE_OK; k++, n++) {
            const tg_value *v = &f->conds[i].values[k];
            if (n > last || !sqlite3_bind_parameter_name(st, n))
                continue; /* not in this statement */
            switch (v->type) {
            case TG_INTEGER:
            case TG_BOOLEAN:
                rc = sqlite3_bind_int64(st, n, v->type == TG_BOOLEAN ? !!v->i : v->i);
                break;
            case TG_REAL: rc = sqlite3_bind_double(st, n, v->r); break;
            case TG_TEXT: /* the rules outlive the plan's statements */
                rc = sqlite3_bind_text64(st, n, v->s, v->n, SQLITE_STATIC, SQLITE_UTF8);
                break;
            default: rc = SQLITE_MISUSE; /* the compiler makes no other value */
            }
        }
    }
    return rc;
}

/* The family plan whose statement slot this is, NULL for a statement of no family table. */
static const tg__table_plan *family_of(const tg__plan *p, sqlite3_stmt *const *slot) {
    const char *at = (const char *)slot, *base = (const char *)p->fams;
    size_t n = p->rs->pub.n_families;
    if (!p->fams || at < base || at >= base + n * sizeof *p->fams)
        return NULL;
    return &p->fams[(size_t)(at - base) / sizeof *p->fams];
}

int tg__plan_prepare(tg__plan *p, sqlite3_stmt **slot, const tg__buf *sql) {
    if (*slot)
        return SQLITE_OK;
    int rc = sqlite3_prepare_v3(p->db, tg__buf_str(sql), (int)sql->len + 1,
                                SQLITE_PREPARE_PERSISTENT, slot, NULL);
    if (rc != SQLITE_OK || sqlite3_bind_parameter_count(*slot) < TG__P_FILTER)
        return rc;
    /* row filter values, bound once: the statement is reset between uses, never cleared */
    const tg_app *app = &p->rs->pub.app;
    const tg__table_plan *tp = family_of(p, slot);
    rc = bind_filter(*slot, &app->tenants.row_filter,
                     tg__sql_filter_param(app, TG__FILTER_TENANTS));
    if (rc == SQLITE_OK)
        rc = bind_filter(*slot, &app->workspaces.row_filter,
                         tg__sql_filter_param(app, TG__FILTER_WORKSPACES));
    if (rc == SQLITE_OK && tp)
        rc = bind_filter(*slot, tp->shape.filter, tp->shape.filter_param);
    if (rc != SQLITE_OK) {
        /* an unbound value would filter on NULL: never run such a statement */
        sqlite3_finalize(*slot);
        *slot = NULL;
    }
    return rc;
}

int tg__plan_write_stmt(tg__plan *p, const tg__buf *sql, sqlite3_stmt **out) {
    uint64_t h = tg__fnv1a(TG__FNV_INIT, tg__buf_str(sql), sql->len);
    for (int i = 0; i < TG__WCACHE; i++) {
        if (p->wcache[i].st && p->wcache[i].hash == h &&
            strcmp(sqlite3_sql(p->wcache[i].st), tg__buf_str(sql)) == 0) {
            *out = p->wcache[i].st;
            return SQLITE_OK;
        }
    }
    unsigned slot = p->wnext++ % TG__WCACHE;
    sqlite3_finalize(p->wcache[slot].st);
    p->wcache[slot].st = NULL;
    int rc = sqlite3_prepare_v3(p->db, tg__buf_str(sql), (int)sql->len + 1,
                                SQLITE_PREPARE_PERSISTENT, &p->wcache[slot].st, NULL);
    p->wcache[slot].hash = h;
    *out = p->wcache[slot].st;
    return rc;
}
