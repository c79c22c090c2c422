/* Checks a compiled rule set against a live database schema: every mapped table and column
 * exists, and no table carrying the tenant column is left uncovered (drift). Table and
 * column names reach SQLite only as bound parameters of pragma table functions. */
#include "catalog.h"
#include "names.h"

#include <stdio.h>
#include <string.h>

int tg__table_exists(sqlite3 *db, const char *table) {
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return found;
}

int tg__column_exists(sqlite3 *db, const char *table, const char *column) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2", -1, &st,
                           NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    sqlite3_finalize(st);
    return found;
}

typedef struct checker {
    sqlite3 *db;
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
                     sqlite3_errmsg(k->db));
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
    const char *runs = a->operation_runs.table;
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

static void check_drift(checker *k, const tg_rules *r) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(k->db,
                           "SELECT m.name FROM sqlite_schema m "
                           "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                           "AND m.name NOT LIKE 'tenantguard\\_%' ESCAPE '\\' "
                           "AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) c "
                           "            WHERE c.name = ?1) ORDER BY m.name",
                           -1, &st, NULL) != SQLITE_OK) {
        schema_failed(k);
        return;
    }
    sqlite3_bind_text(st, 1, r->app.tenant_column, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        if (t && !covered(r, t))
            tg__findings_add(k->f, TG_LEVEL_WARNING, "drift", r->dir, 0,
                             "table '%s' has the tenant column '%s' but no family, residual "
                             "entry or exception covers it; declare one so it is never "
                             "reached unguarded",
                             t, r->app.tenant_column);
    }
    sqlite3_finalize(st);
}

void tg__rules_check_db(const tg__ruleset *rs, sqlite3 *db, tg_findings *f) {
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
        need_column(&k, fam->table, r->app.id_column);
        need_column(&k, fam->table, r->app.tenant_column);
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
            need_column(&k, x->table, r->app.tenant_column);
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        snprintf(what, sizeof what, "exception '%s'", e->name);
        k.file = e->where.file;
        k.line = e->where.line;
        k.what = what;
        if (e->table && need_table(&k, e->table))
            need_column(&k, e->table, r->app.id_column);
    }
    check_drift(&k, r);
}
