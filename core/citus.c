/* Citus readiness, on paper (see citus.h). The statement list mirrors the resolver's and
 * the write guard's generator calls; the checks and the DDL plan read only the compiled
 * rules and, when there is a database, its catalog through the store. */
#include "citus.h"

#include <stdlib.h>
#include <string.h>

/* ---- the statements the resolver and the write guard prepare ---- */

typedef struct gen {
    const tg__plan *p;
    const tg__dialect *d;
    int (*fn)(void *ud, const tg__gen_stmt *s);
    void *ud;
    tg__buf sql;
} gen;

static int emit(gen *g, const char *owner, const char *kind, const char *paths,
                const tg__table_shape *t) {
    if (g->sql.oom)
        return TG_NOMEM;
    tg__gen_stmt s = {owner, kind, paths, t ? t->table : NULL, t ? t->tenant : NULL,
                      tg__buf_str(&g->sql)};
    int rc = g->fn(g->ud, &s);
    tg__buf_reset(&g->sql);
    return rc;
}

/* The shape as the plan would read it on a backend of dialect d: a presence marker only
 * where d has one. */
static tg__table_shape shape_for(const tg__table_plan *tp, const tg__dialect *d) {
    tg__table_shape s = tp->shape;
    if (!d->row_marker)
        s.mark = NULL;
    return s;
}

static int declared(const tg_family *f, tg_path_type t) { return f->paths[t].declared; }

/* True when some relation_manager path names family fi as its owner: its records are read
 * by the record statement (the owner check) even when it declares no detail path. */
static int is_owner(const tg_rules *r, size_t fi) {
    for (size_t i = 0; i < r->n_families; i++)
        if (r->families[i].paths[TG_PATH_RELATION_MANAGER].declared &&
            r->families[i].paths[TG_PATH_RELATION_MANAGER].owner_family == (int)fi)
            return 1;
    return 0;
}

/* The write guard's insert and update with every writable column: the guard writes the
 * columns given (never the tenant or workspace, which it adds itself), so any other write
 * is this statement with fewer columns. */
static int family_writes(gen *g, const tg_family *f, const tg__table_shape *t) {
    const char **cols = calloc((size_t)t->n_columns + 2, sizeof *cols);
    const char **ins = calloc((size_t)t->n_columns + 2, sizeof *ins);
    if (!cols || !ins) {
        free(cols);
        free(ins);
        return TG_NOMEM;
    }
    size_t n = 0;
    for (int i = 0; i < t->n_columns; i++)
        if (strcmp(t->columns[i], t->tenant) != 0 &&
            !(t->workspace && strcmp(t->columns[i], t->workspace) == 0) &&
            strcmp(t->columns[i], t->id) != 0)
            cols[n++] = t->columns[i];
    int rc = TG_OK;
    /* insert: the columns, then the tenant and the workspace (guard.c) */
    {
        memcpy(ins, cols, n * sizeof *cols);
        size_t k = n;
        ins[k++] = t->tenant;
        if (t->workspace)
            ins[k++] = t->workspace;
        tg__sql_insert(g->d, t->table, ins, k, &g->sql);
        tg__sqlf(&g->sql, g->d, " RETURNING %I", t->id);
        rc = emit(g, f->name, "insert", "insert", t);
    }
    if (rc == TG_OK) {
        /* update: the columns and the workspace, by id and tenant */
        size_t k = n;
        if (t->workspace)
            cols[k++] = t->workspace;
        tg__sql_update(g->d, t->table, cols, k, t->id, t->tenant, &g->sql);
        rc = emit(g, f->name, "update", "update", t);
    }
    free(cols);
    free(ins);
    return rc;
}

static int family_statements(gen *g, size_t fi) {
    const tg_rules *r = &g->p->rs->pub;
    const tg_app *a = &r->app;
    const tg_family *f = &r->families[fi];
    const tg__table_plan *tp = &g->p->fams[fi];
    tg__table_shape t = shape_for(tp, g->d);
    tg__scope_marks m = g->p->marks;
    if (!g->d->row_marker)
        m.workspace_member = m.tenant_member = m.tenant = NULL;
    int rc = TG_OK;
    int by_id_paths = declared(f, TG_PATH_DETAIL) || declared(f, TG_PATH_ROW_ACTION);
    if (by_id_paths) {
        tg__sql_scope_and_record(g->d, a, &t, &m, &g->sql);
        rc = emit(g, f->name, "first", "detail row_action (a context's first decision)", &t);
    }
    if (rc == TG_OK && (by_id_paths || declared(f, TG_PATH_RELATION_MANAGER) || is_owner(r, fi))) {
        tg__sql_record(g->d, a, &t, &g->sql);
        rc = emit(g, f->name, "record",
                  "detail row_action relation_manager (a record, or a relation's owner)", &t);
    }
    if (rc == TG_OK && declared(f, TG_PATH_INDEX)) {
        tg__sql_tenant_page(g->d, &t, a, NULL, NULL, 0, 0, &g->sql);
        rc = emit(g, f->name, "page", "index", &t);
    }
    if (rc == TG_OK && declared(f, TG_PATH_GLOBAL_SEARCH)) {
        tg__sql_tenant_page(g->d, &t, a, NULL, f->search_columns, f->n_search_columns, 0,
                            &g->sql);
        rc = emit(g, f->name, "search", "global_search", &t);
    }
    if (rc == TG_OK && declared(f, TG_PATH_RELATION_MANAGER)) {
        tg__sql_tenant_page(g->d, &t, a, f->paths[TG_PATH_RELATION_MANAGER].via, NULL, 0, 0,
                            &g->sql);
        rc = emit(g, f->name, "relation", "relation_manager", &t);
    }
    if (rc == TG_OK && declared(f, TG_PATH_BULK_ACTION)) {
        tg__sql_by_ids(g->d, &t, a, &g->sql);
        rc = emit(g, f->name, "by_ids", "bulk_action", &t);
    }
    if (rc == TG_OK && declared(f, TG_PATH_CANONICAL_VIEWER)) {
        tg__sql_by_id(g->d, &t, &g->sql);
        rc = emit(g, f->name, "by_id", "canonical_viewer", &t);
    }
    if (rc == TG_OK && declared(f, TG_PATH_ROW_ACTION))
        rc = family_writes(g, f, &t);
    return rc;
}

static const char *const ws_kinds[4] = {"ws_page0", "ws_page1", "ws_page2", "ws_page3"};

static int exception_statements(gen *g, size_t ei) {
    const tg_rules *r = &g->p->rs->pub;
    const tg_exception *e = &r->exceptions[ei];
    const tg__table_plan *tp = &g->p->excs[ei];
    if (!e->table || !tp->present)
        return TG_OK; /* no table: the exception decides on the scope alone */
    tg__table_shape t = shape_for(tp, g->d);
    /* the one list statement its checks select (resolver.c: ws_page_stmt) */
    unsigned c = e->still_required_checks;
    int flags = (c & TG_CHECK_TENANT_ENTITLED ? 1 : 0) | (c & TG_CHECK_RECORD_IN_TENANT ? 2 : 0);
    tg__sql_workspace_page(g->d, &t, &r->app, flags & 1, flags & 2, &g->sql);
    int rc = emit(g, e->name, ws_kinds[flags], "index", &t);
    if (rc == TG_OK) {
        tg__sql_by_id(g->d, &t, &g->sql);
        rc = emit(g, e->name, "by_id", "detail row_action canonical_viewer", &t);
    }
    return rc;
}

int tg__plan_statements(const tg__plan *p, const tg__dialect *d,
                        int (*fn)(void *ud, const tg__gen_stmt *s), void *ud) {
    gen g = {p, d, fn, ud, {0}};
    const tg_rules *r = &p->rs->pub;
    tg__scope_marks m = p->marks;
    if (!d->row_marker)
        m.workspace_member = m.tenant_member = m.tenant = NULL;
    tg__sql_scope(d, &r->app, &m, &g.sql);
    int rc = emit(&g, NULL, "scope", "every path (the context's scope)", NULL);
    if (rc == TG_OK) {
        tg__sql_entitlement(d, &r->app, &g.sql);
        rc = emit(&g, NULL, "entitlement", "canonical_viewer, exceptions (a row's tenant)", NULL);
    }
    for (size_t i = 0; rc == TG_OK && i < r->n_families; i++)
        rc = family_statements(&g, i);
    for (size_t i = 0; rc == TG_OK && i < r->n_exceptions; i++)
        rc = exception_statements(&g, i);
    tg__buf_free(&g.sql);
    return rc;
}

tg__stmt *tg__plan_slot(const tg__plan *p, const char *owner, const char *kind) {
    const tg_rules *r = &p->rs->pub;
    if (!owner)
        return !strcmp(kind, "scope") ? p->scope
               : !strcmp(kind, "entitlement") ? p->entitlement
                                              : NULL;
    const tg__table_plan *tp = NULL;
    for (size_t i = 0; !tp && i < r->n_families; i++)
        if (!strcmp(r->families[i].name, owner))
            tp = &p->fams[i];
    for (size_t i = 0; !tp && i < r->n_exceptions; i++)
        if (!strcmp(r->exceptions[i].name, owner))
            tp = &p->excs[i];
    if (!tp)
        return NULL;
    static const char *const names[] = {"by_id", "by_ids", "page", "relation",
                                        "search", "first", "record"};
    tg__stmt *const slots[] = {tp->by_id,  tp->by_ids, tp->page,  tp->relation,
                               tp->search, tp->first,  tp->record};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(kind, names[i]))
            return slots[i];
    for (int i = 0; i < 4; i++)
        if (!strcmp(kind, ws_kinds[i]))
            return tp->ws_page[i];
    return NULL;
}
