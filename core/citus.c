/* Citus readiness, on paper (see citus.h). The statement list mirrors the resolver's and
 * the write guard's generator calls; the checks and the DDL plan read only the compiled
 * rules and, when there is a database, its catalog through the store. */
#include "citus.h"

#include <stdio.h>
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

/* ---- what a distributed deployment needs (lint --target citus, rollout --plan) ---- */

enum { T_DISTRIBUTED = 1, T_REFERENCE, T_LOCAL };

typedef struct key {
    char kind;        /* 'p', 'u', 'f' */
    const char *cols; /* "a,b" */
    const char *ref_table, *ref_cols;
    const char *name; /* the constraint or index, NULL when the backend names none */
} key;

typedef struct tbl {
    const char *table, *tenant, *workspace, *id;
    const char *owner; /* "family Policy", "app.tenants", ... */
    tg_where where;
    int role;          /* T_* */
    int present;       /* with a database: the table exists */
    int has_workspace; /* with a database: the workspace column exists */
    int nullable_tenant; /* with a database: the tenant column allows NULL */
    const char *drift;   /* a table no rule covers: its tenant-like column (drift), or NULL */
    key *keys;
    size_t n_keys;
} tbl;

typedef struct model {
    const tg_rules *r;
    tg__db *db;
    tg__arena arena;
    tbl *t;
    size_t n, cap;
    const char *ws_type; /* the workspace key's PostgreSQL type */
    int oom;
} model;

static tbl *find_table(const model *m, const char *table) {
    for (size_t i = 0; table && i < m->n; i++)
        if (!strcmp(m->t[i].table, table))
            return &m->t[i];
    return NULL;
}

static tbl *add_table(model *m, const char *table, int role, const char *owner, tg_where w) {
    tbl *t = find_table(m, table);
    if (t || !table)
        return t;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 32;
        tbl *more = tg__arena_alloc(&m->arena, cap * sizeof *more);
        if (!more) {
            m->oom = 1;
            return NULL;
        }
        if (m->n)
            memcpy(more, m->t, m->n * sizeof *more);
        m->t = more;
        m->cap = cap;
    }
    t = &m->t[m->n++];
    memset(t, 0, sizeof *t);
    t->table = table;
    t->role = role;
    t->owner = tg__arena_strdup(&m->arena, owner);
    t->where = w;
    t->present = 1;
    return t;
}

/* The declared type of table.column, NULL when the column does not exist. */
static const char *column_type(model *m, const char *table, const char *column) {
    tg__stmt *st = NULL;
    const char *type = NULL;
    if (!m->db || !table || !column ||
        tg__st_prepare_once(m->db, m->db->dialect->sql_column_type, &st) != TG__ST_OK)
        return NULL;
    tg__st_bind_str(st, 1, table);
    tg__st_bind_str(st, 2, column);
    if (tg__st_step(st) == TG__ST_ROW) {
        const char *d = tg__st_column_text(st, 1);
        type = tg__arena_strdup(&m->arena, d ? d : "");
    }
    tg__st_finalize(st);
    return type;
}

/* 1 when table.column is NOT NULL. */
static int column_notnull(model *m, const char *table, const char *column) {
    tg__stmt *st = NULL;
    int nn = 0;
    if (tg__st_prepare_once(m->db, m->db->dialect->sql_column_notnull, &st) == TG__ST_OK) {
        tg__st_bind_str(st, 1, table);
        tg__st_bind_str(st, 2, column);
        nn = tg__st_step(st) == TG__ST_ROW && tg__st_column_int64(st, 0) == 1;
    }
    tg__st_finalize(st);
    return nn;
}

static int table_exists(model *m, const char *table) {
    tg__stmt *st = NULL;
    int ok = 0;
    if (tg__st_prepare_once(m->db, m->db->dialect->sql_table_exists, &st) == TG__ST_OK) {
        tg__st_bind_str(st, 1, table);
        ok = tg__st_step(st) == TG__ST_ROW;
    }
    tg__st_finalize(st);
    return ok;
}

static int read_keys(model *m, tbl *t) {
    tg__stmt *st = NULL;
    if (tg__st_prepare_once(m->db, m->db->dialect->sql_keys, &st) != TG__ST_OK)
        return TG_DB;
    tg__st_bind_str(st, 1, t->table);
    size_t cap = 0;
    int rc;
    while ((rc = tg__st_step(st)) == TG__ST_ROW) {
        if (t->n_keys == cap) {
            cap = cap ? cap * 2 : 8;
            key *more = tg__arena_alloc(&m->arena, cap * sizeof *more);
            if (!more)
                break;
            if (t->n_keys)
                memcpy(more, t->keys, t->n_keys * sizeof *more);
            t->keys = more;
        }
        const char *kind = tg__st_column_text(st, 0);
        key *k = &t->keys[t->n_keys++];
        k->kind = kind ? kind[0] : '?';
        k->cols = tg__arena_strdup(&m->arena, tg__st_column_text(st, 1));
        k->ref_table = tg__arena_strdup(&m->arena, tg__st_column_text(st, 2));
        k->ref_cols = tg__arena_strdup(&m->arena, tg__st_column_text(st, 3));
        k->name = tg__arena_strdup(&m->arena, tg__st_column_text(st, 4));
    }
    tg__st_finalize(st);
    return rc == TG__ST_DONE ? TG_OK : rc == TG__ST_ROW ? TG_NOMEM : TG_DB;
}

/* True when the comma-joined list has `name`. */
static int has_col(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        if (k == n && !strncmp(p, name, n))
            return 1;
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* The PostgreSQL type for a workspace key of declared type `decl` on the model's backend. */
static const char *pg_type(const model *m, const char *decl) {
    if (!decl || !m->db)
        return "bigint";
    if (m->db->backend == TG__BACKEND_POSTGRES)
        return decl;
    switch (tg__affinity(decl)) {
    case TG__AFF_TEXT: return "text";
    case TG__AFF_BLOB: return "bytea";
    default: return "bigint";
    }
}

/* Builds the table model: tenant-owned tables to distribute, reference tables, and (with a
 * database) every other application table, with keys read from the catalog. */
static int build_model(model *m, tg__buf *err) {
    const tg_rules *r = m->r;
    const tg_app *a = &r->app;
    tg__buf name = {0};
    for (size_t i = 0; i < r->n_families; i++) {
        const tg_family *f = &r->families[i];
        tg__buf_reset(&name);
        tg__buf_printf(&name, "family %s", f->name);
        tbl *t = add_table(m, f->table, T_DISTRIBUTED, tg__buf_str(&name), f->where);
        if (t) {
            t->tenant = f->columns.tenant;
            t->workspace = f->columns.workspace;
            t->id = f->columns.id;
        }
    }
    for (size_t i = 0; i < r->n_residuals; i++) {
        const tg_residual *x = &r->residuals[i];
        tg__buf_reset(&name);
        tg__buf_printf(&name, "residual %s", x->name);
        tbl *t = add_table(m, x->table, T_DISTRIBUTED, tg__buf_str(&name), x->where);
        if (t) {
            t->tenant = x->columns.tenant;
            t->workspace = x->columns.workspace;
            t->id = x->columns.id;
        }
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        if (!e->table)
            continue;
        /* tenant-owned when its tenant column exists and is NOT NULL (with a database; a
         * row without a tenant cannot live on a shard), else unless the rules call it
         * workspace-owned */
        int owned = m->db ? column_type(m, e->table, e->columns.tenant) != NULL &&
                                column_notnull(m, e->table, e->columns.tenant)
                          : e->exception_kind != TG_EXCEPTION_WORKSPACE_REFERENCE;
        tg__buf_reset(&name);
        tg__buf_printf(&name, "exception %s", e->name);
        tbl *t = add_table(m, e->table, owned ? T_DISTRIBUTED : T_LOCAL, tg__buf_str(&name),
                           e->where);
        if (t) {
            t->tenant = owned ? e->columns.tenant : NULL;
            t->workspace = e->columns.workspace;
            t->id = e->columns.id;
        }
    }
    const char *refs[] = {a->workspaces.table, a->tenants.table, a->workspace_members.table,
                          a->tenant_members.table, a->role_grants.table};
    const char *ref_names[] = {"app.workspaces", "app.tenants", "app.workspace_members",
                               "app.tenant_members", "app.role_grants"};
    for (size_t i = 0; i < sizeof refs / sizeof *refs; i++)
        add_table(m, refs[i], T_REFERENCE, ref_names[i], a->where);
    if (a->operation_runs.table)
        add_table(m, a->operation_runs.table, T_LOCAL, "app.operation_runs", a->where);
    if (a->audit_logs.table)
        add_table(m, a->audit_logs.table, T_LOCAL, "app.audit_logs", a->where);
    int rc = TG_OK;
    if (m->db) {
        /* every other application table, as a local table until something says otherwise */
        tg__stmt *st = NULL;
        if (tg__st_prepare_once(m->db, m->db->dialect->sql_drift, &st) == TG__ST_OK) {
            tg__buf names = {0};
            tg__buf_add(&names, "[\"");
            tg__buf_add(&names, a->tenant_column); /* a plain identifier: no JSON escape */
            tg__buf_add(&names, "\"]");
            tg__st_bind_str(st, 1, a->tenants.table);
            tg__st_bind_str(st, 2, tg__buf_str(&names));
            while (tg__st_step(st) == TG__ST_ROW) {
                const char *tn = tg__arena_strdup(&m->arena, tg__st_column_text(st, 0));
                tbl *t = tn && !find_table(m, tn)
                             ? add_table(m, tn, T_LOCAL, "not in the rules", (tg_where){r->dir, 0})
                             : NULL;
                if (t)
                    t->drift = tg__arena_strdup(&m->arena, tg__st_column_text(st, 1));
            }
            tg__buf_free(&names);
        }
        tg__st_finalize(st);
        for (size_t i = 0; rc == TG_OK && i < m->n; i++) {
            tbl *t = &m->t[i];
            t->present = table_exists(m, t->table);
            if (!t->present)
                continue;
            t->has_workspace = t->workspace && column_type(m, t->table, t->workspace) != NULL;
            t->nullable_tenant = t->role == T_DISTRIBUTED && t->tenant &&
                                 !column_notnull(m, t->table, t->tenant);
            rc = read_keys(m, t);
        }
        /* a reference table can reference reference tables only: what they reference
         * becomes one too (users, say), unless it is tenant-owned */
        for (int changed = 1; rc == TG_OK && changed;) {
            changed = 0;
            for (size_t i = 0; i < m->n; i++)
                for (size_t k = 0; m->t[i].role == T_REFERENCE && k < m->t[i].n_keys; k++) {
                    tbl *to = find_table(m, m->t[i].keys[k].ref_table);
                    if (m->t[i].keys[k].kind == 'f' && to && to->role == T_LOCAL) {
                        to->role = T_REFERENCE;
                        to->owner = m->t[i].table; /* "referenced by" it */
                        to->where = m->t[i].where;
                        changed = 1;
                    }
                }
        }
        m->ws_type = pg_type(m, column_type(m, a->tenants.table, a->tenants.workspace));
        if (rc != TG_OK)
            tg__buf_printf(err, "cannot read the keys from the database: %s",
                           tg__db_errmsg(m->db));
    } else {
        m->ws_type = "bigint";
    }
    tg__buf_free(&name);
    if (m->oom || name.oom)
        return TG_NOMEM;
    return rc;
}

/* The first distributed table: the others are colocated with it. */
static const tbl *colocation_root(const model *m) {
    for (size_t i = 0; i < m->n; i++)
        if (m->t[i].role == T_DISTRIBUTED && m->t[i].present && m->t[i].tenant)
            return &m->t[i];
    return NULL;
}

static const char *key_name(char kind) {
    return kind == 'p'   ? "primary key"
           : kind == 'u' ? "unique key"
           : kind == 'i' ? "unique index"
                         : "foreign key";
}

/* A foreign key between two distributed tables routes only on the tenant column on both
 * sides, in the same position. */
static int fk_keeps_tenant(const tbl *from, const key *k, const tbl *to) {
    if (!has_col(k->cols, from->tenant))
        return 0;
    if (!k->ref_cols)
        return 0; /* the referenced table's primary key: checked on that table */
    return has_col(k->ref_cols, to->tenant);
}

int tg__citus_lint(const tg_rules *r, tg__db *db, tg_findings *f, tg__buf *err) {
    model m = {0};
    m.r = r;
    m.db = db;
    int rc = build_model(&m, err);
    if (rc != TG_OK) {
        tg__arena_free(&m.arena);
        return rc;
    }
    const tbl *root = colocation_root(&m);
    for (size_t i = 0; i < m.n; i++) {
        const tbl *t = &m.t[i];
        const char *file = t->where.file;
        int line = t->where.line;
        if (!t->present)
            continue; /* lint --db reports missing_table */
        if (t->role == T_REFERENCE)
            tg__findings_add(f, TG_LEVEL_INFO, "citus_reference_table", file, line,
                             "%s (%s%s) should be a reference table, copied to every node, so "
                             "every shard joins it locally (rollout --plan --target citus)",
                             t->table, strncmp(t->owner, "app.", 4) ? "referenced by " : "",
                             t->owner);
        if (t->role == T_DISTRIBUTED) {
            if (t == root)
                tg__findings_add(f, TG_LEVEL_INFO, "citus_distribution", file, line,
                                 "%s (%s) should be distributed by its tenant column %s, the "
                                 "colocation group of every tenant-owned table",
                                 t->table, t->owner, t->tenant);
            else
                tg__findings_add(f, TG_LEVEL_INFO, "citus_distribution", file, line,
                                 "%s (%s) should be distributed by its tenant column %s, "
                                 "colocated with %s, so one tenant's rows of every table sit "
                                 "on one node",
                                 t->table, t->owner, t->tenant, root ? root->table : "?");
        }
        if (t->nullable_tenant)
            tg__findings_add(f, TG_LEVEL_WARNING, "citus_nullable_tenant", file, line,
                             "%s: the tenant column %s allows NULL; Citus refuses NULL in a "
                             "distribution column: make it NOT NULL",
                             t->table, t->tenant);
        if (t->role == T_DISTRIBUTED && !db && !strncmp(t->owner, "family ", 7))
            tg__findings_add(f, TG_LEVEL_WARNING, "citus_key_without_tenant", file, line,
                             "%s is keyed on %s in the rules; Citus accepts a primary or unique "
                             "key on a distributed table only when it includes %s: key the "
                             "table on (%s, %s), which tenantguard accepts (lint --db reads the "
                             "table's actual keys)",
                             t->table, t->id, t->tenant, t->tenant, t->id);
        for (size_t k = 0; t->role == T_DISTRIBUTED && k < t->n_keys; k++) {
            const key *ky = &t->keys[k];
            if (ky->kind != 'f' && !has_col(ky->cols, t->tenant))
                tg__findings_add(f, TG_LEVEL_WARNING, "citus_key_without_tenant", file, line,
                                 "%s: the %s (%s) does not include the tenant column %s: "
                                 "Citus refuses to distribute the table until it does",
                                 t->table, key_name(ky->kind), ky->cols ? ky->cols : "?",
                                 t->tenant);
            const tbl *to = ky->kind == 'f' ? find_table(&m, ky->ref_table) : NULL;
            if (to && to->role == T_DISTRIBUTED && !fk_keeps_tenant(t, ky, to))
                tg__findings_add(f, TG_LEVEL_WARNING, "citus_foreign_key_without_tenant", file,
                                 line,
                                 "%s: the foreign key (%s) to %s (%s) does not carry the "
                                 "tenant column on both sides: Citus needs (%s, ...) -> "
                                 "%s(%s, ...) between colocated tables",
                                 t->table, ky->cols ? ky->cols : "?", to->table,
                                 ky->ref_cols ? ky->ref_cols : "its primary key", t->tenant,
                                 to->table, to->tenant);
        }
        for (size_t k = 0; t->role != T_DISTRIBUTED && k < t->n_keys; k++) {
            const key *ky = &t->keys[k];
            const tbl *to = ky->kind == 'f' ? find_table(&m, ky->ref_table) : NULL;
            if (to && to->role == T_DISTRIBUTED)
                tg__findings_add(f, TG_LEVEL_WARNING, "citus_references_distributed", file, line,
                                 "%s (%s%s%s) has a foreign key (%s) to the tenant-owned %s: a "
                                 "%s table cannot reference a distributed one; %s",
                                 t->table, t->owner,
                                 t->drift ? ", though it has " : "", t->drift ? t->drift : "",
                                 ky->cols ? ky->cols : "?", to->table,
                                 t->role == T_REFERENCE ? "reference" : "local",
                                 t->drift ? "declare it in the rules (a residual entry) and it "
                                            "is distributed too"
                                          : "give it a tenant column and distribute it too, or "
                                            "drop the foreign key");
        }
    }
    /* the paths whose statements reach every shard (tests/c/test_citus_routing.c): in
     * distributed mode (automatic on Citus) every read by id with a route tenant pins it,
     * so only the canonical viewer, which has none, reads by id alone */
    for (size_t i = 0; i < r->n_families; i++) {
        const tg_family *fam = &r->families[i];
        if (fam->paths[TG_PATH_CANONICAL_VIEWER].declared)
            tg__findings_add(f, TG_LEVEL_INFO, "citus_multi_shard_path", fam->where.file,
                             fam->where.line,
                             "%s: canonical_viewer reads %s by id with no route tenant to pin "
                             "(%s): on Citus each such read goes to every shard (detail, "
                             "row_action and bulk_action pin the route tenant in distributed "
                             "mode, which is automatic on Citus)",
                             fam->name, fam->table, fam->columns.tenant);
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        const tbl *t = e->table ? find_table(&m, e->table) : NULL;
        if (t && t->role == T_DISTRIBUTED && t->present)
            tg__findings_add(f, TG_LEVEL_INFO, "citus_multi_shard_path", e->where.file,
                             e->where.line,
                             "exception %s: its %s list of %s and its reads by id are not "
                             "pinned to one tenant: on Citus they go to every shard",
                             e->name,
                             e->still_required_checks & TG_CHECK_RECORD_IN_TENANT
                                 ? "tenant's"
                                 : "workspace-wide",
                             e->table);
    }
    tg__arena_free(&m.arena);
    return TG_OK;
}

/* ---- the DDL plan ---- */

/* A regclass literal for a table: its quoted name as a string ('"order"'). */
static void regclass(tg__buf *b, const tg__dialect *d, const char *table) {
    tg__buf q = {0};
    d->ident(&q, table);
    tg__sqlf(b, d, "%L", tg__buf_str(&q));
    if (q.oom)
        b->oom = true;
    tg__buf_free(&q);
}

/* Appends the quoted column list "a", "b" of a comma-joined list, `first` put first. */
static void col_list(tg__buf *b, const tg__dialect *d, const char *first, const char *list) {
    int n = 0;
    if (first) {
        tg__sqlf(b, d, "%I", first);
        n++;
    }
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        char c[128];
        if (k < sizeof c) {
            memcpy(c, p, k);
            c[k] = 0;
            if (!first || strcmp(c, first) != 0) {
                if (n)
                    tg__buf_add(b, ", ");
                tg__sqlf(b, d, "%I", c);
                n++;
            }
        }
        p = e ? e + 1 : NULL;
    }
}

/* Appends the statement that drops key k of table t (a constraint, or a unique index), or
 * a comment naming it when the backend gave it no name (SQLite: the primary key is then
 * the one PostgreSQL names <table>_pkey, as pg-load creates it). */
static void drop_key(tg__buf *b, const tg__dialect *d, const tbl *t, const key *k) {
    if (k->kind == 'i' && k->name) {
        tg__sqlf(b, d, "DROP INDEX %I;\n", k->name);
        return;
    }
    /* PostgreSQL's default names, which pg-load's constraints get */
    char pkey[400];
    const char *name = k->name;
    if (!name && k->kind == 'p') {
        snprintf(pkey, sizeof pkey, "%s_pkey", t->table);
        name = pkey;
    } else if (!name && (k->kind == 'f' || k->kind == 'u') && k->cols) {
        snprintf(pkey, sizeof pkey, "%s_%s_%s", t->table, k->cols, k->kind == 'f' ? "fkey" : "key");
        for (char *c = pkey; *c; c++)
            if (*c == ',')
                *c = '_';
        name = strlen(pkey) < 64 ? pkey : NULL; /* PostgreSQL truncates longer ones */
    }
    if (name)
        tg__sqlf(b, d, "ALTER TABLE %I DROP CONSTRAINT %I;\n", t->table, name);
    else
        tg__buf_printf(b, "-- drop the %s (%s) of %s (its PostgreSQL name is not known here)\n",
                       key_name(k->kind), k->cols ? k->cols : "?", t->table);
}

/* Emits the reference tables, or the distributed ones, those a table references first
 * (Citus distributes a table only after the tables its foreign keys reference). */
static void emit_ordered(const model *m, int role, const tbl *root, tg__buf *b,
                         const tg__dialect *d) {
    unsigned char *done = calloc(m->n + 1, 1);
    if (!done) {
        b->oom = true;
        return;
    }
    if (root && role == T_DISTRIBUTED) {
        tg__buf_add(b, "SELECT create_distributed_table(");
        regclass(b, d, root->table);
        tg__sqlf(b, d, ", %L);\n", root->tenant);
        done[root - m->t] = 1;
    }
    for (size_t pass = 0; pass <= m->n; pass++) {
        int left = 0;
        for (size_t i = 0; i < m->n; i++) {
            const tbl *t = &m->t[i];
            if (done[i] || t->role != role || !t->present || (role == T_DISTRIBUTED && !t->tenant))
                continue;
            int ready = 1;
            for (size_t k = 0; k < t->n_keys && pass < m->n; k++) {
                const tbl *to = t->keys[k].kind == 'f' ? find_table(m, t->keys[k].ref_table) : NULL;
                if (to && to != t && to->role == role && to->present && !done[to - m->t])
                    ready = 0;
            }
            if (!ready) {
                left = 1;
                continue;
            }
            done[i] = 1;
            if (role == T_REFERENCE) {
                tg__buf_add(b, "SELECT create_reference_table(");
                regclass(b, d, t->table);
                tg__buf_add(b, ");\n");
            } else {
                tg__buf_add(b, "SELECT create_distributed_table(");
                regclass(b, d, t->table);
                tg__sqlf(b, d, ", %L, colocate_with => ", t->tenant);
                regclass(b, d, root->table);
                tg__buf_add(b, ");\n");
            }
        }
        if (!left)
            break;
    }
    free(done);
}

int tg__citus_plan(const tg_rules *r, tg__db *db, tg__buf *out, tg__buf *err) {
    const tg__dialect *d = &tg__postgres; /* Citus is PostgreSQL */
    model m = {0};
    m.r = r;
    m.db = db;
    int rc = build_model(&m, err);
    if (rc != TG_OK) {
        tg__arena_free(&m.arena);
        return rc;
    }
    const tg_app *a = &r->app;
    const tbl *root = colocation_root(&m);
    tg__buf_printf(out,
                   "-- tenantguard rollout plan for Citus: rules %s (version %s), %s.\n"
                   "-- Printed, not run. Untested against Citus (not packaged here): review it "
                   "on a staging cluster.\n"
                   "-- On the coordinator first: CREATE EXTENSION citus; then "
                   "citus_add_node(host, port) for each worker.\n",
                   r->dir, r->version ? r->version : "?",
                   db ? "keys read from the database"
                      : "keys assumed from the rules (--db reads the real ones)");

    /* 1. foreign keys between tenant-owned tables that lack the tenant column: dropped
     * first (a primary key they depend on cannot be rebuilt under them), re-added in 3 */
    tg__buf_add(out, "\n-- 1. drop the foreign keys between tenant-owned tables that lack the "
                     "tenant column (re-added in 3)\n");
    int any = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            if (!any)
                tg__buf_add(out, db ? "-- (none)\n" : "-- (give --db to read them)\n");
            /* 2. keys */
            tg__buf_add(out, "\n-- 2. every primary and unique key of a tenant-owned table "
                             "includes its tenant column\n--    (Citus refuses to distribute a "
                             "table otherwise)\n");
            any = 0;
            for (size_t i = 0; i < m.n; i++) {
                const tbl *t = &m.t[i];
                if (t->role != T_DISTRIBUTED || !t->present || !t->tenant)
                    continue;
                if (!db) {
                    if (strncmp(t->owner, "family ", 7) != 0)
                        continue;
                    key k = {'p', t->id, NULL, NULL, NULL};
                    tg__sqlf(out, d, "-- %s: assuming PRIMARY KEY (%I)\n", t->table, t->id);
                    drop_key(out, d, t, &k);
                    tg__sqlf(out, d, "ALTER TABLE %I ADD PRIMARY KEY (%I, %I);\n", t->table,
                             t->tenant, t->id);
                    any = 1;
                    continue;
                }
                for (size_t k = 0; k < t->n_keys; k++) {
                    const key *ky = &t->keys[k];
                    if (ky->kind == 'f' || has_col(ky->cols, t->tenant))
                        continue;
                    drop_key(out, d, t, ky);
                    tg__sqlf(out, d, "ALTER TABLE %I ADD %s (", t->table,
                             ky->kind == 'p' ? "PRIMARY KEY" : "UNIQUE");
                    col_list(out, d, t->tenant, ky->cols);
                    tg__buf_add(out, ");\n");
                    any = 1;
                }
            }
            if (!any)
                tg__buf_add(out, "-- (none to change)\n");
            tg__buf_add(out, "\n-- 3. the foreign keys of 1, with the tenant column on both "
                             "sides\n");
            any = 0;
        }
        for (size_t i = 0; i < m.n; i++) {
            const tbl *t = &m.t[i];
            for (size_t k = 0; t->role == T_DISTRIBUTED && t->present && k < t->n_keys; k++) {
                const key *ky = &t->keys[k];
                const tbl *to = ky->kind == 'f' ? find_table(&m, ky->ref_table) : NULL;
                if (!to || to->role != T_DISTRIBUTED || fk_keeps_tenant(t, ky, to))
                    continue;
                any = 1;
                if (pass == 0) {
                    drop_key(out, d, t, ky);
                    continue;
                }
                tg__sqlf(out, d, "ALTER TABLE %I ADD FOREIGN KEY (", t->table);
                col_list(out, d, t->tenant, ky->cols);
                tg__sqlf(out, d, ") REFERENCES %I (", to->table);
                col_list(out, d, to->tenant, ky->ref_cols ? ky->ref_cols : to->id);
                tg__buf_add(out, ");\n");
            }
        }
    }
    if (!any)
        tg__buf_add(out, db ? "-- (none)\n" : "-- (give --db to read them)\n");

    /* 4. reference tables */
    tg__buf_add(out, "\n-- 4. reference tables: a copy on every node, joined locally by every "
                     "shard\n");
    emit_ordered(&m, T_REFERENCE, NULL, out, d);

    /* 5. distributed tables */
    tg__buf_add(out, "\n-- 5. tenant-owned tables: distributed by their tenant column, in one "
                     "colocation group\n");
    if (root)
        emit_ordered(&m, T_DISTRIBUTED, root, out, d);
    else
        tg__buf_add(out, "-- (no tenant-owned table found)\n");

    /* what stays local */
    any = 0;
    for (size_t i = 0; i < m.n; i++)
        if (m.t[i].role == T_LOCAL && m.t[i].present) {
            if (!any)
                tg__buf_add(out, "\n-- left as local tables on the coordinator (workspace-owned: "
                                 "no tenant column, or one that allows NULL):\n--  ");
            tg__buf_printf(out, " %s", m.t[i].table);
            any = 1;
        }
    if (any)
        tg__buf_add(out, "\n");

    /* 6. the workspace_id rollout, phase 1 (DDL on a distributed table propagates) */
    tg__buf_add(out, "\n-- 6. the workspace_id rollout, phase 1: the column and its indexes "
                     "(propagated to every shard)\n");
    for (size_t i = 0; i < r->n_families + r->n_residuals; i++) {
        const char *table = i < r->n_families ? r->families[i].table
                                              : r->residuals[i - r->n_families].table;
        const tbl *t = find_table(&m, table);
        if (!t || !t->present || !t->tenant || !t->workspace)
            continue;
        char name[200];
        if (!t->has_workspace)
            tg__sqlf(out, d, "ALTER TABLE %I ADD COLUMN IF NOT EXISTS %I %s REFERENCES %I (%I);\n",
                     t->table, t->workspace, m.ws_type, a->workspaces.table, a->workspaces.id);
        snprintf(name, sizeof name, "tenantguard_%s_workspace", t->table);
        tg__sqlf(out, d, "CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON %I (%I);\n", name,
                 t->table, t->workspace);
        snprintf(name, sizeof name, "tenantguard_%s_tenant_workspace", t->table);
        tg__sqlf(out, d, "CREATE INDEX CONCURRENTLY IF NOT EXISTS %I ON %I (%I, %I);\n", name,
                 t->table, t->tenant, t->workspace);
    }
    tg__sqlf(out, d,
             "\n-- 7. then, as on PostgreSQL: tenantguard rollout enforce_writes (its triggers "
             "need\n--    SET citus.enable_unsafe_triggers = on on distributed tables), the "
             "backfill, and\n--    enforce_constraints, whose composite key needs\n"
             "CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I (%I, %I);\n"
             "--    (a foreign key from a distributed table to a reference table is allowed)\n",
             "tenantguard_tenants_id_workspace", a->tenants.table, a->tenants.id,
             a->tenants.workspace);
    tg__arena_free(&m.arena);
    return out->oom ? TG_NOMEM : TG_OK;
}
