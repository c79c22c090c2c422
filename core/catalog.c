/* Checks a compiled rule set against a live database schema: every mapped table and column
 * exists, and no table carrying the tenant column is left uncovered (drift). Table and
 * column names reach SQLite only as bound parameters of pragma table functions. */
#include "catalog.h"
#include "names.h"
#include "pg.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg__table_exists(tg__db *db, const char *table) {
    tg__stmt *st = NULL;
    int found = 0;
    if (tg__st_prepare_once(db, db->dialect->sql_table_exists, &st) != TG__ST_OK)
        return -1;
    tg__st_bind_str(st, 1, table);
    int rc = tg__st_step(st);
    found = rc == TG__ST_ROW ? 1 : rc == TG__ST_DONE ? 0 : -1;
    tg__st_finalize(st);
    return found;
}

int tg__column_exists(tg__db *db, const char *table, const char *column) {
    tg__stmt *st = NULL;
    if (tg__st_prepare_once(db, db->dialect->sql_column_type, &st) != TG__ST_OK)
        return -1;
    tg__st_bind_str(st, 1, table);
    tg__st_bind_str(st, 2, column);
    int rc = tg__st_step(st);
    int found = rc == TG__ST_ROW ? 1 : rc == TG__ST_DONE ? 0 : -1;
    tg__st_finalize(st);
    return found;
}

typedef struct checker {
    tg__db *db;
    tg_findings *f;
    const char *file;
    int line;
    const char *what;
    int failed; /* the schema could not be read: reported once */
} checker;

/* A schema query that failed is an error, never "nothing to report". */
static void schema_failed(checker *k) {
    if (k->failed++)
        return;
    tg__findings_add(k->f, TG_LEVEL_ERROR, "file_error", k->file, k->line,
                     "%s: cannot read the database schema: %s", k->what ? k->what : "rules",
                     tg__db_errmsg(k->db));
}

static int need_table(checker *k, const char *table) {
    if (!table)
        return 0;
    int e = tg__table_exists(k->db, table);
    if (e < 0)
        schema_failed(k);
    if (e == 0)
        tg__findings_add(k->f, TG_LEVEL_ERROR, "missing_table", k->file, k->line,
                         "%s: table '%s' does not exist in the database", k->what, table);
    return e == 1;
}

static void need_column(checker *k, const char *table, const char *column) {
    if (!table || !column)
        return;
    int e = tg__column_exists(k->db, table, column);
    if (e < 0)
        schema_failed(k);
    if (e == 0)
        tg__findings_add(k->f, TG_LEVEL_ERROR, "missing_column", k->file, k->line,
                         "%s: column '%s.%s' does not exist in the database", k->what, table,
                         column);
}

/* Every column a row filter names exists. */
static void need_filter_columns(checker *k, const char *table, const tg_row_filter *f) {
    for (size_t i = 0; i < f->n_conds; i++)
        need_column(k, table, f->conds[i].column);
}

static void check_app(checker *k, const tg_app *a) {
    k->file = a->where.file;
    k->line = a->where.line;
    k->what = "app";
    if (need_table(k, a->workspaces.table)) {
        need_column(k, a->workspaces.table, a->workspaces.id);
        need_filter_columns(k, a->workspaces.table, &a->workspaces.row_filter);
    }
    if (need_table(k, a->tenants.table)) {
        need_column(k, a->tenants.table, a->tenants.id);
        need_column(k, a->tenants.table, a->tenants.workspace);
        need_filter_columns(k, a->tenants.table, &a->tenants.row_filter);
    }
    const char *wm = a->workspace_members.table;
    if (need_table(k, wm)) {
        need_column(k, wm, a->workspace_members.user);
        need_column(k, wm, a->workspace_members.workspace);
        need_column(k, wm, a->workspace_members.role);
    }
    const char *tm = a->tenant_members.table;
    if (need_table(k, tm)) {
        need_column(k, tm, a->tenant_members.user);
        need_column(k, tm, a->tenant_members.tenant);
        need_column(k, tm, a->tenant_members.role);
    }
    /* left out: the default table is the app's only when it exists */
    const char *runs = a->operation_runs.table;
    if (runs && a->operation_runs.implicit && tg__table_exists(k->db, runs) == 0)
        runs = NULL;
    if (need_table(k, runs)) {
        need_column(k, runs, a->operation_runs.id);
        need_column(k, runs, a->operation_runs.type);
        need_column(k, runs, a->operation_runs.status);
        need_column(k, runs, a->operation_runs.workspace);
        need_column(k, runs, a->operation_runs.summary);
        need_column(k, runs, a->operation_runs.created_at);
        need_column(k, runs, a->operation_runs.started_at);
        need_column(k, runs, a->operation_runs.finished_at);
    }
    const char *audit = a->audit_logs.table;
    if (audit && a->audit_logs.implicit && tg__table_exists(k->db, audit) == 0)
        audit = NULL;
    if (need_table(k, audit)) {
        need_column(k, audit, a->audit_logs.id);
        need_column(k, audit, a->audit_logs.workspace);
        need_column(k, audit, a->audit_logs.tenant);
        need_column(k, audit, a->audit_logs.action);
        need_column(k, audit, a->audit_logs.subject);
        need_column(k, audit, a->audit_logs.metadata);
        need_column(k, audit, a->audit_logs.created_at);
    }
    if (need_table(k, a->role_grants.table)) {
        need_column(k, a->role_grants.table, a->role_grants.role);
        need_column(k, a->role_grants.table, a->role_grants.capability);
    }
}

static int covered(const tg_rules *r, const char *table) {
    const tg_app *a = &r->app;
    const char *app_tables[] = {a->workspaces.table,        a->tenants.table,
                                a->workspace_members.table, a->tenant_members.table,
                                a->operation_runs.table,    a->audit_logs.table};
    for (size_t i = 0; i < sizeof app_tables / sizeof *app_tables; i++)
        if (app_tables[i] && strcmp(app_tables[i], table) == 0)
            return 1;
    for (size_t i = 0; i < r->n_families; i++)
        if (strcmp(r->families[i].table, table) == 0)
            return 1;
    for (size_t i = 0; i < r->n_residuals; i++)
        if (strcmp(r->residuals[i].table, table) == 0)
            return 1;
    for (size_t i = 0; i < r->n_exceptions; i++)
        if (r->exceptions[i].table && strcmp(r->exceptions[i].table, table) == 0)
            return 1;
    return 0;
}

static void add_json_name(tg__buf *json, const char *name, int first) {
    tg__buf_add(json, first ? "\"" : ",\"");
    for (const char *p = name; *p; p++)
        tg__buf_add(json, *p == '"' ? "\\\"" : *p == '\\' ? "\\\\" : (char[2]){*p, 0});
    tg__buf_add(json, "\"");
}

/* The tenant column names the rules use (the app's and every per-table one) as a JSON
 * array, each name once. */
static void tenant_names(const tg_rules *r, tg__buf *json) {
    size_t cap = 1 + r->n_families + r->n_residuals + r->n_exceptions, n = 0;
    const char **seen = malloc(cap * sizeof *seen);
    if (!seen) {
        json->oom = 1;
        return;
    }
    tg__buf_add(json, "[");
    for (size_t i = 0; i < cap; i++) {
        const char *name = i == 0 ? r->app.tenant_column
                           : i <= r->n_families ? r->families[i - 1].columns.tenant
                           : i <= r->n_families + r->n_residuals
                               ? r->residuals[i - 1 - r->n_families].columns.tenant
                               : r->exceptions[i - 1 - r->n_families - r->n_residuals].table
                                     ? r->exceptions[i - 1 - r->n_families - r->n_residuals]
                                           .columns.tenant
                                     : NULL;
        size_t k = 0;
        while (name && k < n && strcmp(seen[k], name) != 0)
            k++;
        if (!name || k < n)
            continue;
        add_json_name(json, name, n == 0);
        seen[n++] = name;
    }
    tg__buf_add(json, "]");
    free(seen);
}

/* Drift: every table that is tenant-owned (a column with a foreign key to the tenants table,
 * or a column named like a tenant column the rules use) and that nothing covers. One warning
 * per table, naming the column that made it tenant-owned. */
static void check_drift(checker *k, const tg_rules *r) {
    tg__stmt *st = NULL;
    /* the names as a JSON array: one bound value, however many there are */
    tg__buf json = {0};
    tenant_names(r, &json);
    if (json.oom ||
        tg__st_prepare_once(k->db, k->db->dialect->sql_drift, &st) != TG__ST_OK) {
        tg__buf_free(&json);
        schema_failed(k);
        return;
    }
    tg__st_bind_str(st, 1, r->app.tenants.table);
    tg__st_bind_str(st, 2, tg__buf_str(&json));
    int rc;
    while ((rc = tg__st_step(st)) == TG__ST_ROW) {
        const char *t = (const char *)tg__st_column_text(st, 0);
        const char *col = (const char *)tg__st_column_text(st, 1);
        int by_fk = (int)tg__st_column_int64(st, 2);
        if (!t || !col || covered(r, t))
            continue;
        if (by_fk)
            tg__findings_add(k->f, TG_LEVEL_WARNING, "drift", r->dir, 0,
                             "table '%s' is tenant-owned (its column '%s' references the "
                             "tenants table '%s') but no family, residual entry or exception "
                             "covers it; declare one so it is never reached unguarded",
                             t, col, r->app.tenants.table);
        else
            tg__findings_add(k->f, TG_LEVEL_WARNING, "drift", r->dir, 0,
                             "table '%s' has the tenant column '%s' but no family, residual "
                             "entry or exception covers it; declare one so it is never "
                             "reached unguarded",
                             t, col);
    }
    if (rc != TG__ST_DONE)
        schema_failed(k);
    tg__st_finalize(st);
    tg__buf_free(&json);
}

/* How `column` identifies a row of `table`: 1 alone (its only PRIMARY KEY column, the rowid
 * alias included, or NOT NULL with a single-column UNIQUE index that is not partial); 2 only
 * together with `tenant` (a primary key or such a UNIQUE index of exactly those two
 * columns, the shape Citus requires of a distributed table); 0 neither; -1 on a database
 * error. A view qualifies (1 only) when its id column comes straight from a column of a
 * table that is a key alone; the resolver still refuses an id a view repeats. */
static int key_kind(tg__db *db, const char *table, const char *column, const char *tenant,
                    int depth) {
    tg__stmt *st = NULL;
    int type_view = 0, found = 0;
    if (tg__st_prepare_once(db, db->dialect->sql_is_view, &st) != TG__ST_OK)
        return -1;
    tg__st_bind_str(st, 1, table);
    if (tg__st_step(st) == TG__ST_ROW)
        type_view = (int)tg__st_column_int64(st, 0);
    tg__st_finalize(st);
    if (type_view) {
        if (depth > 8)
            return 0;
        /* where the view's id column comes from (column metadata). Only a key of that
         * column alone counts: the view's tenant column may come from another row of a join
         * (a self-join maps one table's row to several tenants), which no column metadata
         * tells, so (tenant, id) is never taken as a view's key */
        tg__buf sql = {0};
        tg__sqlf(&sql, db->dialect, "SELECT %I FROM %I", column, table);
        st = NULL;
        if (sql.oom || tg__st_prepare_once(db, tg__buf_str(&sql), &st) != TG__ST_OK) {
            tg__buf_free(&sql);
            return -1;
        }
        tg__buf_free(&sql);
        const char *bt = NULL, *bc = NULL;
        tg__store_column_origin(st, 0, &bt, &bc);
        char base_t[128], base_c[128];
        int ok = bt && bc && strlen(bt) < sizeof base_t && strlen(bc) < sizeof base_c;
        if (ok) {
            snprintf(base_t, sizeof base_t, "%s", bt);
            snprintf(base_c, sizeof base_c, "%s", bc);
        }
        tg__st_finalize(st);
        if (!ok)
            return 0;
        int k = key_kind(db, base_t, base_c, NULL, depth + 1);
        return k == 1 ? 1 : k < 0 ? -1 : 0;
    }
    if (tg__st_prepare_once(db, db->dialect->sql_key_unique, &st) != TG__ST_OK)
        return -1;
    tg__st_bind_str(st, 1, table);
    tg__st_bind_str(st, 2, column);
    int rc = tg__st_step(st);
    if (rc == TG__ST_ROW)
        found = (int)tg__st_column_int64(st, 0);
    tg__st_finalize(st);
    if (rc != TG__ST_ROW)
        return -1;
    if (found || !tenant)
        return found;
    st = NULL;
    if (tg__st_prepare_once(db, db->dialect->sql_key_unique_with, &st) != TG__ST_OK)
        return -1;
    tg__st_bind_str(st, 1, table);
    tg__st_bind_str(st, 2, column);
    tg__st_bind_str(st, 3, tenant);
    rc = tg__st_step(st);
    if (rc == TG__ST_ROW)
        found = tg__st_column_int64(st, 0) ? 2 : 0;
    tg__st_finalize(st);
    return rc == TG__ST_ROW ? found : -1;
}

int tg__key_kind(tg__db *db, const char *table, const char *column, const char *tenant) {
    return key_kind(db, table, column, tenant, 0);
}

static void check_family_key(checker *k, const tg_family *fam) {
    if (tg__column_exists(k->db, fam->table, fam->columns.id) != 1)
        return; /* reported as missing_column */
    const char *tenant =
        tg__column_exists(k->db, fam->table, fam->columns.tenant) == 1 ? fam->columns.tenant : NULL;
    int u = key_kind(k->db, fam->table, fam->columns.id, tenant, 0);
    if (u < 0)
        schema_failed(k);
    else if (u == 0)
        tg__findings_add(k->f, TG_LEVEL_ERROR, "family_key_not_unique", k->file, k->line,
                         "%s: its id column '%s.%s' is not a key of the table, alone or with "
                         "its tenant column '%s' (a PRIMARY KEY, or NOT NULL columns with a "
                         "UNIQUE index), so an id could name several rows; key the family on "
                         "such a column (columns = { id = \"...\" }) or declare the table a "
                         "residual",
                         k->what, fam->table, fam->columns.id, fam->columns.tenant);
    else if (u == 2)
        tg__findings_add(k->f, TG_LEVEL_INFO, "family_key_with_tenant", k->file, k->line,
                         "%s: '%s' is keyed on (%s, %s), so an id names a row only within its "
                         "tenant: every read by id pins the route tenant (a row of another "
                         "tenant is not_found, never read), and a path without a route tenant "
                         "(canonical_viewer, an exception's detail) refuses an id two tenants "
                         "hold with 404 ambiguous_id",
                         k->what, fam->table, fam->columns.tenant, fam->columns.id);
}

void tg__rules_check_db(const tg__ruleset *rs, tg__db *db, tg_findings *f) {
    /* the catalog as the connection itself sees it, outside any decision's tenant */
    tg__db_set_scope(db, NULL, NULL, 0);
    const tg_rules *r = &rs->pub;
    checker k = {db, f, NULL, 0, NULL, 0};
    char what[160];
    check_app(&k, &r->app);
    for (size_t i = 0; i < r->n_families; i++) {
        const tg_family *fam = &r->families[i];
        snprintf(what, sizeof what, "family '%s'", fam->name);
        k.file = fam->where.file;
        k.line = fam->where.line;
        k.what = what;
        if (!need_table(&k, fam->table))
            continue;
        need_column(&k, fam->table, fam->columns.id);
        need_column(&k, fam->table, fam->columns.tenant);
        check_family_key(&k, fam);
        for (size_t c = 0; c < fam->n_search_columns; c++)
            need_column(&k, fam->table, fam->search_columns[c]);
        for (size_t c = 0; c < fam->n_fixture; c++)
            need_column(&k, fam->table, fam->fixture[c].column);
        need_filter_columns(&k, fam->table, &fam->row_filter);
        const tg_path_rule *rm = &fam->paths[TG_PATH_RELATION_MANAGER];
        if (rm->declared)
            need_column(&k, fam->table, rm->via);
    }
    for (size_t i = 0; i < r->n_residuals; i++) {
        const tg_residual *x = &r->residuals[i];
        snprintf(what, sizeof what, "residual '%s'", x->name);
        k.file = x->where.file;
        k.line = x->where.line;
        k.what = what;
        if (need_table(&k, x->table))
            need_column(&k, x->table, x->columns.tenant);
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        snprintf(what, sizeof what, "exception '%s'", e->name);
        k.file = e->where.file;
        k.line = e->where.line;
        k.what = what;
        if (e->table && need_table(&k, e->table))
            need_column(&k, e->table, e->columns.id);
    }
    check_drift(&k, r);
    if (db->backend == TG__BACKEND_POSTGRES) /* row-level security (pg_guard.c) */
        tg__pg_rls_lint(rs, db, f);
}
