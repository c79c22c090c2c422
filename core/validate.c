/* Validation after the rollout: every check must be zero. NULL workspace_id per tenant-owned
 * table, audit entries with a tenant but no workspace, and rows whose workspace_id differs
 * from their tenant's workspace, in every table (not a sample). */
#include "rollout.h"
#include "pg.h"
#include "sql.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

int tg__validation_add(tg_validation *v, size_t *cap, const char *name, const char *table,
                       int64_t count) {
    if (v->n_checks == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        tg_validation_check *more = realloc(v->checks, nc * sizeof *more);
        if (!more)
            return TG_NOMEM;
        v->checks = more;
        *cap = nc;
    }
    v->checks[v->n_checks].name = name;
    v->checks[v->n_checks].table = table;
    v->checks[v->n_checks].count = count;
    v->n_checks++;
    if (count)
        v->ok = 0;
    return TG_OK;
}

static int64_t count_sql(tg_engine *eng, tg__buf *sql, int *st) {
    int rc;
    int64_t n = tg__count(eng->db, tg__buf_str(sql), NULL, NULL, &rc);
    tg__buf_reset(sql);
    if (rc != SQLITE_OK)
        *st = tg__engine_fail(eng, TG_DB, "validation query failed: %s", sqlite3_errmsg(eng->db));
    return n;
}

int tg_validate(tg_engine *eng, tg_validation **out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    *out = NULL;
    if (eng->store && !eng->db)
        return tg__validate_pg(eng, out);
    if (tg__engine_sqlite(eng, "validation") != TG_OK)
        return TG_MISUSE;
    const tg_rules *r = &eng->rules->pub;
    const tg_app *a = &r->app;
    const tg__dialect *d = &tg__sqlite;
    tg_validation *v = calloc(1, sizeof *v);
    if (!v)
        return TG_NOMEM;
    v->ok = 1;
    size_t cap = 0;
    tg__target t[TG__MAX_TARGETS];
    size_t n = tg__targets(r, t, TG__MAX_TARGETS);
    const char *audit = tg__app_audit(eng);
    tg__buf sql = {0};
    /* one snapshot for every count (joining the caller's read snapshot, if any) */
    int st = tg__engine_read_begin(eng), began = st == TG_OK;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        int nn;
        int64_t nulls, mismatched = 0;
        const char *table = t[i].table, *T = t[i].cols->tenant, *W = t[i].cols->workspace;
        if (tg__column(eng->db, table, W, &nn)) {
            tg__sqlf(&sql, d, "SELECT count(*) FROM %I WHERE %I IS NULL", table, W);
            nulls = count_sql(eng, &sql, &st);
            tg__sqlf(&sql, d,
                     "SELECT count(*) FROM %I AS r WHERE r.%I IS NOT NULL AND r.%I IS NOT (SELECT "
                     "t.%I FROM %I AS t WHERE t.%I = r.%I)",
                     table, W, W, a->tenants.workspace, a->tenants.table, a->tenants.id, T);
            mismatched = count_sql(eng, &sql, &st);
        } else {
            /* no column yet: every row is unbound */
            tg__sqlf(&sql, d, "SELECT count(*) FROM %I", table);
            nulls = count_sql(eng, &sql, &st);
        }
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "null_workspace", table, nulls);
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "workspace_mismatch", table, mismatched);
    }
    /* the audit-log checks apply to an app audit table (tenantguard_audit has no tenant) */
    if (st == TG_OK && audit && a->audit_logs.tenant && a->audit_logs.workspace) {
        int nn;
        int64_t bad = 0, mismatched = 0;
        if (tg__column(eng->db, audit, a->audit_logs.workspace, &nn)) {
            tg__sqlf(&sql, d, "SELECT count(*) FROM %I WHERE %I IS NOT NULL AND %I IS NULL",
                     audit, a->audit_logs.tenant, a->audit_logs.workspace);
            bad = count_sql(eng, &sql, &st);
            tg__sqlf(&sql, d,
                     "SELECT count(*) FROM %I AS r WHERE r.%I IS NOT NULL AND r.%I IS NOT NULL "
                     "AND r.%I IS NOT (SELECT t.%I FROM %I AS t WHERE t.%I = r.%I)",
                     audit, a->audit_logs.tenant, a->audit_logs.workspace,
                     a->audit_logs.workspace, a->tenants.workspace, a->tenants.table,
                     a->tenants.id, a->audit_logs.tenant);
            mismatched = count_sql(eng, &sql, &st);
        }
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "audit_tenant_without_workspace", audit, bad);
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "workspace_mismatch", audit, mismatched);
    }
    if (began)
        (void)tg__engine_read_end(eng);
    tg__buf_free(&sql);
    if (st != TG_OK) {
        tg_validation_free(v);
        return st;
    }
    *out = v;
    return TG_OK;
}

void tg_validation_free(tg_validation *v) {
    if (!v)
        return;
    free(v->checks);
    free(v);
}
