/* The write guard in the server and row-level security on PostgreSQL (see pg.h).
 *
 * Phase 1.5 ("enforce_writes") installs, on every tenant-owned table, one PL/pgSQL function
 * and one BEFORE INSERT OR UPDATE trigger with the rules and messages of the SQLite triggers
 * (rollout.c): the workspace is derived from the tenant when NULL, a workspace that disagrees
 * with the tenant's is rejected, tenant_id never changes; on the app's audit log, an entry
 * with a tenant carries that tenant's workspace. "drop_triggers" removes them (refused once
 * phase 3 is applied: the triggers are what derives the NOT NULL workspace).
 *
 * "enable_rls" turns on row-level security on every tenant-owned table (ENABLE and FORCE)
 * with one policy for reads and writes keyed on the transaction-local setting
 * tenantguard.tenant_id (ctx:query sets it); "disable_rls" removes it. The RLS lint
 * (tg__pg_rls_lint) reports the ways RLS silently stops applying. */
#include "pg.h"
#include "ctx.h"
#include "names.h"
#include "rules.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The policy's name on every table (a policy name is per table). */
#define POLICY "tenantguard_tenant"

/* ---- small catalog helpers ---- */

/* One row of a catalog query with up to three text parameters: each column as text into
 * out[i] (cap bytes each; "" for NULL). Returns 1 for a row, 0 for none, -1 on failure. */
static int row_text(tg__db *db, const char *sql, const char *a, const char *b, const char *c,
                    char (*out)[256], int n) {
    tg__stmt *st = NULL;
    if (tg__st_prepare_once(db, sql, &st) != TG__ST_OK)
        return -1;
    const char *p[3] = {a, b, c};
    for (int i = 0; i < 3 && i < tg__st_param_count(st); i++)
        tg__st_bind_str(st, i + 1, p[i]);
    int rc = tg__st_step(st), found = rc == TG__ST_ROW ? 1 : rc == TG__ST_DONE ? 0 : -1;
    for (int i = 0; found == 1 && i < n; i++) {
        const char *v = tg__st_column_type(st, i) == TG__T_NULL ? "" : tg__st_column_text(st, i);
        snprintf(out[i], sizeof out[i], "%s", v ? v : "");
    }
    tg__st_finalize(st);
    return found;
}

/* The schema of table `t` (as the search path finds it) and the declared type of its column
 * `col` (format_type: already valid SQL, quoted where needed), with 1 when it is NOT NULL. */
#define SQL_COLUMN                                                                             \
    "SELECT n.nspname, format_type(a.atttypid, a.atttypmod), CAST(a.attnotnull AS integer) "   \
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "     \
    "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 "                 \
    "AND a.attnum > 0 AND NOT a.attisdropped WHERE c.oid = to_regclass(quote_ident($1))"

typedef struct colinfo {
    char schema[256], type[256], notnull[256];
} colinfo;

/* 1 when table.column exists (*ci filled), 0 when not, -1 on failure. */
static int column_info(tg__db *db, const char *table, const char *column, colinfo *ci) {
    char v[3][256];
    int r = row_text(db, SQL_COLUMN, table, column, NULL, v, 3);
    if (r == 1) {
        memcpy(ci->schema, v[0], sizeof ci->schema);
        memcpy(ci->type, v[1], sizeof ci->type);
        memcpy(ci->notnull, v[2], sizeof ci->notnull);
    }
    return r;
}

/* An identifier tenantguard derives from a table name: "tenantguard_<table>_<suffix>",
 * within PostgreSQL's 63 bytes. A longer one is cut and ends with 8 hex digits of a hash of
 * the whole name, so two long table names never share a function. */
static void derived_name(char out[64], const char *table, const char *suffix) {
    char full[600];
    int n = snprintf(full, sizeof full, "tenantguard_%s_%s", table, suffix);
    if (n >= 0 && n <= 63) {
        memcpy(out, full, (size_t)n + 1);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)full; *p; p++)
        h = (h ^ *p) * 16777619u;
    snprintf(out, 64, "%.54s_%08x", full, (unsigned)h);
}

static int run_sql(tg_engine *eng, tg__buf *sql, const char *what) {
    if (sql->oom)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    int st = tg__exec(eng, tg__buf_str(sql), what);
    tg__buf_reset(sql);
    return st;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every target must exist with its tenant column (as check_targets on SQLite). */
static int check_targets(tg_engine *eng, const tg__target *t, size_t n, colinfo *tenant) {
    for (size_t i = 0; i < n; i++) {
        int r = column_info(eng->store, t[i].table, t[i].cols->tenant, &tenant[i]);
        if (r < 0)
            return tg__engine_fail(eng, TG_DB, "cannot read the schema of '%s': %s",
                                   t[i].table, tg__db_errmsg(eng->store));
        if (r == 0)
            return tg__engine_fail(eng, TG_DB, "table '%s' does not exist or has no column '%s'",
                                   t[i].table, t[i].cols->tenant);
    }
    return TG_OK;
}

/* Runs `body` (the DDL of one phase) in one transaction with a short lock_timeout, with the
 * audit entry `action`, retrying with backoff while a lock is held elsewhere (a long
 * transaction on a table must not make every query queue behind this DDL). */
typedef int (*ddl_fn)(tg_engine *eng, void *ud);

static int in_transaction(tg_engine *eng, ddl_fn body, void *ud, const char *action) {
    int delay = 50, st = TG_OK;
    for (int attempt = 0; attempt < 8; attempt++) {
        if ((st = tg__begin(eng)) != TG_OK)
            return st;
        st = tg__exec(eng, "SET LOCAL lock_timeout = '2s'", "lock_timeout");
        if (st == TG_OK)
            st = body(eng, ud);
        if (st == TG_OK)
            st = tg__audit(eng, action, "schema", "{}");
        if (st == TG_OK)
            st = tg__commit(eng);
        if (st == TG_OK)
            return TG_OK;
        tg__rollback(eng);
        if (st != TG_BUSY)
            return st;
        sleep_ms(delay);
        delay = delay < 2000 ? delay * 2 : 2000;
    }
    return st;
}

/* ---- phase 1.5: the write guard ---- */

typedef struct guard_job {
    const tg__target *t;
    size_t n;
    const colinfo *tenant; /* per target: schema and tenant column */
    colinfo tenants_ws;    /* the tenants table's schema and workspace column */
    const char *audit;     /* the app's audit log, NULL: none to guard */
    colinfo audit_ci;
    int install;
} guard_job;

/* The function and trigger of one table: drops them, then (install) creates them. */
static void guard_sql(const tg_app *a, const guard_job *j, const char *schema,
                      const char *table, const char *T, const char *W, int is_audit,
                      tg__buf *b) {
    const tg__dialect *d = &tg__postgres;
    char fn[64], msg[3][400];
    derived_name(fn, table, "guard");
    tg__sqlf(b, d, "DROP TRIGGER IF EXISTS %I ON %I.%I;", fn, schema, table);
    if (!j->install) {
        tg__sqlf(b, d, "DROP FUNCTION IF EXISTS %I.%I();", schema, fn);
        return;
    }
    tg__buf body = {0};
    /* the tenant's workspace, with the tenants table named by its schema: the function runs
     * whatever the writer's search_path */
    tg__sqlf(&body, d, "DECLARE ws %I.%I.%I%%TYPE; BEGIN ", j->tenants_ws.schema,
             a->tenants.table, a->tenants.workspace);
    if (is_audit) {
        snprintf(msg[0], sizeof msg[0],
                 "tenantguard: %s: an entry with a %s must carry the workspace of that tenant "
                 "in %s [audit_tenant_needs_workspace]",
                 table, T, W);
        tg__sqlf(&body, d,
                 "IF NEW.%I IS NOT NULL THEN SELECT t.%I INTO ws FROM %I.%I t WHERE t.%I = "
                 "NEW.%I; IF NEW.%I IS NULL OR NEW.%I IS DISTINCT FROM coalesce(ws, NEW.%I) "
                 "THEN RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = %L; END IF; "
                 "END IF; RETURN NEW; END",
                 T, a->tenants.workspace, j->tenants_ws.schema, a->tenants.table,
                 a->tenants.id, T, W, W, W, msg[0]);
    } else {
        snprintf(msg[0], sizeof msg[0], "tenantguard: %s: %s can never change [tenant_immutable]",
                 table, T);
        snprintf(msg[1], sizeof msg[1],
                 "tenantguard: %s: %s must name an existing tenant and %s must equal the "
                 "workspace of that tenant [workspace_matches_tenant]",
                 table, T, W);
        snprintf(msg[2], sizeof msg[2],
                 "tenantguard: %s: %s must equal the workspace of the tenant of the row "
                 "[workspace_matches_tenant]",
                 table, W);
        tg__sqlf(&body, d,
                 "IF TG_OP = 'UPDATE' AND NEW.%I IS DISTINCT FROM OLD.%I THEN RAISE EXCEPTION "
                 "USING ERRCODE = 'check_violation', MESSAGE = %L; END IF; "
                 "SELECT t.%I INTO ws FROM %I.%I t WHERE t.%I = NEW.%I; "
                 "IF TG_OP = 'INSERT' AND (ws IS NULL OR (NEW.%I IS NOT NULL AND NEW.%I IS "
                 "DISTINCT FROM ws)) THEN RAISE EXCEPTION USING ERRCODE = 'check_violation', "
                 "MESSAGE = %L; END IF; "
                 "IF TG_OP = 'UPDATE' AND NEW.%I IS NOT NULL AND NEW.%I IS DISTINCT FROM ws "
                 "THEN RAISE EXCEPTION USING ERRCODE = 'check_violation', MESSAGE = %L; END IF; "
                 "IF NEW.%I IS NULL THEN NEW.%I := ws; END IF; RETURN NEW; END",
                 T, T, msg[0], a->tenants.workspace, j->tenants_ws.schema, a->tenants.table,
                 a->tenants.id, T, W, W, msg[1], W, W, msg[2], W, W);
    }
    if (body.oom)
        b->oom = 1;
    else
        tg__sqlf(b, d,
                 "CREATE OR REPLACE FUNCTION %I.%I() RETURNS trigger LANGUAGE plpgsql AS %L; "
                 "CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I.%I FOR EACH ROW EXECUTE "
                 "FUNCTION %I.%I();",
                 schema, fn, tg__buf_str(&body), fn, schema, table, schema, fn);
    tg__buf_free(&body);
}

static int guard_body(tg_engine *eng, void *ud) {
    const guard_job *j = ud;
    const tg_app *a = &eng->rules->pub.app;
    tg__buf sql = {0};
    int st = TG_OK;
    for (size_t i = 0; i < j->n && st == TG_OK; i++) {
        guard_sql(a, j, j->tenant[i].schema, j->t[i].table, j->t[i].cols->tenant,
                  j->t[i].cols->workspace, 0, &sql);
        st = run_sql(eng, &sql, j->t[i].table);
    }
    if (st == TG_OK && j->audit) {
        guard_sql(a, j, j->audit_ci.schema, j->audit, a->audit_logs.tenant,
                  a->audit_logs.workspace, 1, &sql);
        st = run_sql(eng, &sql, j->audit);
    }
    tg__buf_free(&sql);
    return st;
}

/* 1 when phase 3 is applied to the table: its workspace column is NOT NULL or carries a
 * foreign key to the tenants table (the composite key). */
static int phase3_applied(tg_engine *eng, const char *table, const char *W) {
    char v[1][256];
    int r = row_text(eng->store,
                     "SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = "
                     "to_regclass(quote_ident($1)) AND a.attname = $2 AND NOT a.attisdropped "
                     "AND (a.attnotnull OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k "
                     "WHERE k.conrelid = a.attrelid AND k.contype = 'f' AND a.attnum = "
                     "ANY (k.conkey) AND k.confrelid = to_regclass(quote_ident($3))))",
                     table, W, eng->rules->pub.app.tenants.table, v, 1);
    return r == 1;
}

int tg__pg_guard(tg_engine *eng, const tg__target *t, size_t n, int install) {
    const tg_app *a = &eng->rules->pub.app;
    colinfo *tenant = calloc(n ? n : 1, sizeof *tenant);
    if (!tenant)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    guard_job j = {t, n, tenant, {{0}, {0}, {0}}, NULL, {{0}, {0}, {0}}, install};
    int st = check_targets(eng, t, n, tenant);
    for (size_t i = 0; st == TG_OK && !install && i < n; i++)
        if (phase3_applied(eng, t[i].table, t[i].cols->workspace))
            st = tg__engine_fail(eng, TG_REFUSED,
                                 "drop_triggers refused: phase 3 is applied to '%s', and its "
                                 "triggers are what binds every write's %s (never NULL)",
                                 t[i].table, t[i].cols->workspace);
    for (size_t i = 0; st == TG_OK && install && i < n; i++) {
        colinfo ws;
        int r = column_info(eng->store, t[i].table, t[i].cols->workspace, &ws);
        if (r != 1)
            st = tg__engine_fail(eng, r < 0 ? TG_DB : TG_REFUSED,
                                 "enforce_writes needs phase 1 first: '%s' has no %s column "
                                 "(run add_columns)",
                                 t[i].table, t[i].cols->workspace);
    }
    if (st == TG_OK && column_info(eng->store, a->tenants.table, a->tenants.workspace,
                                   &j.tenants_ws) != 1)
        st = tg__engine_fail(eng, TG_DB, "table '%s' does not exist or has no column '%s'",
                             a->tenants.table, a->tenants.workspace);
    /* the audit-log invariant holds on an app audit table only (tenantguard_audit has no
     * tenant column) */
    const char *audit = st == TG_OK ? tg__app_audit(eng) : NULL;
    if (audit && a->audit_logs.tenant && a->audit_logs.workspace &&
        column_info(eng->store, audit, a->audit_logs.tenant, &j.audit_ci) == 1)
        j.audit = audit;
    if (st == TG_OK)
        st = in_transaction(eng, guard_body, &j,
                            install ? "tenantguard.rollout.enforce_writes"
                                    : "tenantguard.rollout.drop_triggers");
    free(tenant);
    if (st != TG_OK)
        return st;
    if (!install)
        return tg__engine_fail(eng, TG_OK, "drop_triggers: write triggers removed from %zu tables",
                               n);
    return tg__engine_fail(eng, TG_OK, "enforce_writes: triggers bind every write to %zu tables%s",
                           n, j.audit ? " and the audit log" : "");
}

/* ---- row-level security ---- */

typedef struct rls_job {
    const tg__target *t;
    size_t n;
    const colinfo *tenant;
    int enable;
    colinfo tenants_ws; /* the tenants table's workspace column: its schema and type */
} rls_job;

/* The policy's predicate: the row's tenant is the transaction's tenantguard.tenant_id, cast
 * to the tenant column's own type; when that is unset or empty, one of the tenants of the
 * workspace in tenantguard.workspace_wide, which only the engine sets, for its own statements
 * without a route tenant (the canonical viewer) or reading workspace-wide (scope exceptions),
 * whose checks then narrow the rows as without row-level security. Both unset or empty: no
 * row, fail closed. The array is computed once per statement (the settings are stable, the
 * subquery uncorrelated), so an index on the tenant column serves `= ANY` either way. */
static void rls_predicate(const char *T, const char *type, const tg_app *a, const colinfo *tw,
                          tg__buf *b) {
    /* the types come from format_type() in the catalog: valid SQL for that type, quoted */
    tg__sqlf(b, &tg__postgres,
             "%I = ANY (CASE WHEN coalesce(current_setting('tenantguard.tenant_id', true), '') "
             "<> '' THEN ARRAY[CAST(current_setting('tenantguard.tenant_id', true) AS %s)] "
             "ELSE ARRAY(SELECT CAST(tg_t.%I AS %s) FROM %I.%I AS tg_t WHERE tg_t.%I = "
             "CAST(NULLIF(current_setting('tenantguard.workspace_wide', true), '') AS %s)) "
             "END)",
             T, type, a->tenants.id, type, tw->schema, a->tenants.table, a->tenants.workspace,
             tw->type);
}

static int rls_body(tg_engine *eng, void *ud) {
    const rls_job *j = ud;
    const tg__dialect *d = &tg__postgres;
    tg__buf sql = {0}, pred = {0};
    int st = TG_OK;
    for (size_t i = 0; i < j->n && st == TG_OK; i++) {
        const char *s = j->tenant[i].schema, *t = j->t[i].table;
        tg__sqlf(&sql, d, "DROP POLICY IF EXISTS %I ON %I.%I;", POLICY, s, t);
        if (j->enable) {
            tg__buf_reset(&pred);
            rls_predicate(j->t[i].cols->tenant, j->tenant[i].type, &eng->rules->pub.app,
                          &j->tenants_ws, &pred);
            tg__sqlf(&sql, d,
                     "CREATE POLICY %I ON %I.%I AS PERMISSIVE FOR ALL TO PUBLIC USING (%s) WITH "
                     "CHECK (%s); ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY; ALTER TABLE "
                     "%I.%I FORCE ROW LEVEL SECURITY;",
                     POLICY, s, t, tg__buf_str(&pred), tg__buf_str(&pred), s, t, s, t);
            if (pred.oom)
                sql.oom = 1;
        }
        st = run_sql(eng, &sql, t);
        if (st == TG_OK && !j->enable) {
            /* the table's own policies, if any, keep RLS on: only ours goes */
            char v[1][256];
            int r = row_text(eng->store,
                             "SELECT count(*) FROM pg_catalog.pg_policy WHERE polrelid = "
                             "to_regclass(quote_ident($1))",
                             t, NULL, NULL, v, 1);
            if (r == 1 && strcmp(v[0], "0") == 0) {
                tg__sqlf(&sql, d,
                         "ALTER TABLE %I.%I NO FORCE ROW LEVEL SECURITY; ALTER TABLE %I.%I "
                         "DISABLE ROW LEVEL SECURITY;",
                         s, t, s, t);
                st = run_sql(eng, &sql, t);
            }
        }
    }
    tg__buf_free(&sql);
    tg__buf_free(&pred);
    return st;
}

int tg__pg_rls(tg_engine *eng, const tg__target *t, size_t n, int enable) {
    colinfo *tenant = calloc(n ? n : 1, sizeof *tenant);
    if (!tenant)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    rls_job j = {t, n, tenant, enable, {{0}, {0}, {0}}};
    int st = check_targets(eng, t, n, tenant);
    const tg_app *a = &eng->rules->pub.app;
    if (st == TG_OK && column_info(eng->store, a->tenants.table, a->tenants.workspace,
                                   &j.tenants_ws) != 1)
        st = tg__engine_fail(eng, TG_DB, "table '%s' does not exist or has no column '%s'",
                             a->tenants.table, a->tenants.workspace);
    if (st == TG_OK)
        st = in_transaction(eng, rls_body, &j,
                            enable ? "tenantguard.rollout.enable_rls"
                                   : "tenantguard.rollout.disable_rls");
    free(tenant);
    if (st != TG_OK)
        return st;
    if (enable)
        return tg__engine_fail(eng, TG_OK,
                               "enable_rls: row-level security (forced) on %zu tables: each "
                               "shows and takes only rows of the tenant in "
                               "tenantguard.tenant_id (ctx:query sets it)",
                               n);
    return tg__engine_fail(eng, TG_OK, "disable_rls: tenantguard's policy removed from %zu tables",
                           n);
}

/* ---- ctx:query: the application's raw SQL, scoped by the tenant setting ---- */

/* A key as the text the policy casts back to the column's type; "" (NULL after NULLIF, no
 * row) for no key. */
static void key_text(const tg_value *v, tg__buf *b) {
    static const char hex[] = "0123456789abcdef";
    switch (v->type) {
    case TG_INTEGER: tg__buf_printf(b, "%lld", (long long)v->i); break;
    case TG_TEXT: tg__buf_addn(b, v->s, v->n ? v->n : strlen(v->s)); break;
    case TG_BLOB: /* bytea's input form */
        tg__buf_add(b, "\\x");
        for (size_t i = 0; i < v->n; i++) {
            char two[2] = {hex[(unsigned char)v->s[i] >> 4], hex[(unsigned char)v->s[i] & 15]};
            tg__buf_addn(b, two, 2);
        }
        break;
    default: break;
    }
}

static void bind_param(tg__stmt *st, int i, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER:
    case TG_BOOLEAN: /* "1"/"0": PostgreSQL's boolean input takes them too */
        tg__st_bind_int64(st, i, v->i);
        break;
    case TG_REAL: tg__st_bind_double(st, i, v->r); break;
    case TG_TEXT: tg__st_bind_text(st, i, v->s, v->n ? v->n : strlen(v->s), 0); break;
    case TG_BLOB: tg__st_bind_blob(st, i, v->s, v->n, 0); break;
    default: tg__st_bind_null(st, i);
    }
}

/* Sets (or, with NULL keys, clears) the transaction's tenant and workspace settings. */
static int set_scope(tg__db *db, const tg_value *tenant, const tg_value *workspace) {
    tg__buf tb = {0}, wb = {0};
    if (tenant)
        key_text(tenant, &tb);
    if (workspace)
        key_text(workspace, &wb);
    tg__stmt *st = NULL;
    int rc = tb.oom || wb.oom ? TG__ST_NOMEM
                              : tg__st_prepare_once(db,
                                                    "SELECT set_config('tenantguard.tenant_id', "
                                                    "$1, true), set_config("
                                                    "'tenantguard.workspace_id', $2, true), "
                                                    "set_config('tenantguard.workspace_wide', "
                                                    "'', true)",
                                                    &st);
    if (rc == TG__ST_OK) {
        tg__st_bind_text(st, 1, tb.len ? tg__buf_str(&tb) : "", tb.len, 1);
        tg__st_bind_text(st, 2, wb.len ? tg__buf_str(&wb) : "", wb.len, 1);
        rc = tg__st_step(st);
        rc = rc == TG__ST_ROW || rc == TG__ST_DONE ? TG__ST_OK : rc;
    }
    tg__st_finalize(st);
    tg__buf_free(&tb);
    tg__buf_free(&wb);
    return rc;
}

/* Steps the statement to its end, handing each row to on_row. TG_OK, TG_ERROR (stopped by
 * on_row) or TG_DB/TG_BUSY with the context's message. */
static int walk_rows(tg_ctx *ctx, tg__stmt *st, tg_row_fn on_row, void *ud) {
    tg__db *db = ctx->plan->db;
    const char **names = NULL;
    tg_value *vals = NULL;
    int rc, status = TG_OK;
    while ((rc = tg__st_step(st)) == TG__ST_ROW) {
        int nc = tg__st_column_count(st);
        if (!on_row || nc <= 0)
            continue;
        if (!names) {
            names = calloc((size_t)nc, sizeof *names);
            vals = calloc((size_t)nc, sizeof *vals);
            if (!names || !vals) {
                status = tg__ctx_fail(ctx, TG_NOMEM, "out of memory");
                break;
            }
        }
        for (int c = 0; c < nc; c++) {
            tg__cell cell;
            tg__st_column(st, c, &cell);
            names[c] = tg__st_column_name(st, c);
            tg_value *v = &vals[c];
            memset(v, 0, sizeof *v);
            switch (cell.type) {
            case TG__T_INTEGER: v->type = TG_INTEGER, v->i = cell.i; break;
            case TG__T_FLOAT: v->type = TG_REAL, v->r = cell.d; break;
            case TG__T_TEXT: v->type = TG_TEXT, v->s = cell.p, v->n = cell.n; break;
            case TG__T_BLOB: v->type = TG_BLOB, v->s = cell.p, v->n = cell.n; break;
            default: v->type = TG_NULL;
            }
            if (v->type == TG_TEXT && v->n == 0)
                v->s = ""; /* n 0 means strlen: the empty string */
        }
        if (on_row(ud, (size_t)nc, names, vals) != 0) {
            status = tg__ctx_fail(ctx, TG_ERROR, "the query was stopped by its row callback: "
                                                 "nothing it did is kept");
            break;
        }
    }
    if (status == TG_OK && rc != TG__ST_DONE)
        status = tg__ctx_fail(ctx, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB, "query: %s",
                              tg__db_errmsg(db));
    free(names);
    free(vals);
    return status;
}

int tg_ctx_query(tg_ctx *ctx, const char *sql, const tg_value *params, size_t n_params,
                 tg_row_fn on_row, void *ud, int64_t *changes, const tg_decision **out) {
    if (!ctx || !sql || !out || (n_params && !params))
        return TG_MISUSE;
    *out = NULL;
    if (changes)
        *changes = 0;
    if (ctx->in_log)
        return tg__ctx_fail(ctx, TG_MISUSE, "the context is busy: it cannot run a query from "
                                            "its own decision log callback");
    tg_engine *eng = ctx->eng;
    if (eng->closed)
        return tg__ctx_fail(ctx, TG_MISUSE, "the engine of this context is closed");
    tg__db *db = ctx->plan->db;
    if (db->backend != TG__BACKEND_POSTGRES)
        return tg__ctx_fail(ctx, TG_MISUSE,
                            "query is not available on SQLite: raw SQL is kept to the "
                            "context's tenant by PostgreSQL's row-level security (rollout "
                            "enable_rls); on SQLite use resolve, insert and update");
    int snapshot = eng->read_depth > 0;
    if (!snapshot && tg__db_in_transaction(db))
        return tg__ctx_fail(ctx, TG_MISUSE, "query runs in a transaction of its own, and the "
                                            "connection is inside another one");
    tg__ctx_begin(ctx);
    int s = tg__ctx_scope(ctx);
    if (s != TG_OK)
        return s;
    /* the scope of a row action, in its order: 404 for each, and no SQL runs */
    const char *refused = !ctx->member                             ? "not_member"
                          : !ctx->has_tenant                       ? "no_tenant_context"
                          : !ctx->tenant_known || !ctx->tenant_in_ws ? "tenant_not_in_workspace"
                          : !ctx->entitled                         ? "not_entitled"
                                                                   : NULL;
    if (refused) {
        tg__ctx_decide(ctx, 404, refused, "sql", "query", NULL, 0);
        *out = &ctx->dec;
        return TG_OK;
    }
    /* a transaction of its own, or a savepoint inside the read snapshot (rolled back after:
     * the setting does not outlive the statement there either) */
    int rc = tg__db_exec(db, snapshot ? "SAVEPOINT tenantguard_query" : "BEGIN");
    if (rc != TG__ST_OK)
        return tg__ctx_fail(ctx, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                            "query: cannot begin: %s", tg__db_errmsg(db));
    tg__stmt *st = NULL;
    rc = set_scope(db, &ctx->tenant, &ctx->workspace);
    if (rc != TG__ST_OK)
        s = tg__ctx_fail(ctx, TG_DB, "query: cannot set the tenant: %s", tg__db_errmsg(db));
    else if ((rc = tg__st_prepare_once(db, sql, &st)) != TG__ST_OK)
        s = tg__ctx_fail(ctx, rc == TG__ST_NOMEM ? TG_NOMEM : TG_DB, "query: %s",
                         tg__db_errmsg(db));
    else if ((size_t)tg__st_param_count(st) != n_params)
        s = tg__ctx_fail(ctx, TG_MISUSE, "query: the statement takes %d parameter%s, %zu given",
                         tg__st_param_count(st), tg__st_param_count(st) == 1 ? "" : "s",
                         n_params);
    if (s == TG_OK) {
        for (size_t i = 0; i < n_params; i++)
            bind_param(st, (int)i + 1, &params[i]);
        s = walk_rows(ctx, st, on_row, ud);
        if (s == TG_OK && changes)
            *changes = tg__db_changes(db);
    }
    tg__st_finalize(st);
    const char *end = snapshot ? "ROLLBACK TO SAVEPOINT tenantguard_query; RELEASE SAVEPOINT "
                                 "tenantguard_query"
                      : s == TG_OK ? "COMMIT"
                                   : "ROLLBACK";
    rc = tg__db_exec(db, end);
    if (rc != TG__ST_OK && s == TG_OK)
        s = tg__ctx_fail(ctx, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB, "query: %s",
                         tg__db_errmsg(db));
    if (rc != TG__ST_OK && !snapshot && tg__db_in_transaction(db))
        tg__db_exec(db, "ROLLBACK");
    if (s != TG_OK)
        return s;
    tg__ctx_decide(ctx, 200, "ok", "sql", "query", NULL, 0);
    *out = &ctx->dec;
    return TG_OK;
}

/* ---- the RLS lint ---- */

/* Per table: RLS on, forced, the connecting role owns it (or inherits its owner), our policy
 * is there, and a valid index whose first column is the tenant column. */
#define SQL_RLS_TABLE                                                                          \
    "SELECT CAST(c.relrowsecurity AS integer), CAST(c.relforcerowsecurity AS integer), "      \
    "CAST(pg_has_role(current_user, c.relowner, 'USAGE') AS integer), "                      \
    "CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND "         \
    "p.polname = $3) AS integer), "                                                           \
    "CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON "     \
    "a.attrelid = c.oid AND a.attnum = i.indkey[0] WHERE i.indrelid = c.oid AND i.indisvalid " \
    "AND i.indpred IS NULL AND a.attname = $2) AS integer) "                                  \
    "FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(quote_ident($1))"

void tg__pg_rls_lint(const tg__ruleset *rs, tg__db *db, tg_findings *f) {
    const tg_rules *r = &rs->pub;
    tg__target t[TG__MAX_TARGETS];
    size_t n = tg__targets(r, t, TG__MAX_TARGETS);
    char (*v)[5][256] = calloc(n ? n : 1, sizeof *v);
    if (!v)
        return;
    int in_use = 0;
    for (size_t i = 0; i < n; i++)
        if (row_text(db, SQL_RLS_TABLE, t[i].table, t[i].cols->tenant, POLICY, v[i], 5) == 1)
            in_use |= strcmp(v[i][0], "1") == 0 || strcmp(v[i][3], "1") == 0;
        else
            v[i][0][0] = 0; /* no such table: lint reports it already */
    /* without row-level security on any tenant-owned table there is nothing to lose */
    for (size_t i = 0; in_use && i < n; i++) {
        const char *file = i < r->n_families ? r->families[i].where.file
                                             : r->residuals[i - r->n_families].where.file;
        int line = i < r->n_families ? r->families[i].where.line
                                     : r->residuals[i - r->n_families].where.line;
        if (!v[i][0][0])
            continue;
        if (strcmp(v[i][0], "1") != 0)
            tg__findings_add(f, TG_LEVEL_WARNING, "rls_missing", file, line,
                             "table '%s': row-level security is on for other tenant-owned "
                             "tables but not here: raw SQL reads every tenant's rows (run "
                             "rollout enable_rls)",
                             t[i].table);
        else if (strcmp(v[i][3], "1") != 0)
            tg__findings_add(f, TG_LEVEL_WARNING, "rls_missing", file, line,
                             "table '%s': row-level security is on without tenantguard's "
                             "policy (%s): raw SQL sees what its other policies allow, not the "
                             "context's tenant (run rollout enable_rls)",
                             t[i].table, POLICY);
        else if (strcmp(v[i][2], "1") == 0 && strcmp(v[i][1], "1") != 0)
            tg__findings_add(f, TG_LEVEL_WARNING, "rls_owner_not_forced", file, line,
                             "table '%s': the connecting role owns it and FORCE ROW LEVEL "
                             "SECURITY is off, so its policies do not apply to this role "
                             "(ALTER TABLE ... FORCE ROW LEVEL SECURITY, or connect as a role "
                             "that owns nothing)",
                             t[i].table);
        if (strcmp(v[i][3], "1") == 0 && strcmp(v[i][4], "1") != 0)
            tg__findings_add(f, TG_LEVEL_WARNING, "rls_no_index", file, line,
                             "table '%s': no valid index starts with %s, so the policy's "
                             "predicate (%s = the tenant setting) scans the whole table on "
                             "every statement (CREATE INDEX ... (%s))",
                             t[i].table, t[i].cols->tenant, t[i].cols->tenant, t[i].cols->tenant);
    }
    free(v);
    if (!in_use)
        return;
    char w[3][256];
    if (row_text(db,
                 "SELECT CAST(rolsuper AS integer), CAST(rolbypassrls AS integer), rolname FROM "
                 "pg_catalog.pg_roles WHERE rolname = current_user",
                 NULL, NULL, NULL, w, 3) == 1 &&
        (strcmp(w[0], "1") == 0 || strcmp(w[1], "1") == 0))
        tg__findings_add(f, TG_LEVEL_WARNING, "rls_bypassed", r->app.where.file,
                         r->app.where.line,
                         "the connecting role '%s' is %s: row-level security never applies to "
                         "it (connect as a role without SUPERUSER and BYPASSRLS)",
                         w[2], strcmp(w[0], "1") == 0 ? "a superuser" : "BYPASSRLS");
    /* a session-level value outlives the transaction: a pooler hands it to the next client */
    if (row_text(db,
                 "SELECT coalesce(nullif(current_setting('tenantguard.tenant_id', true), ''), "
                 "nullif(current_setting('tenantguard.workspace_wide', true), ''), ''), "
                 "(SELECT string_agg(CASE WHEN s.setrole = 0 THEN 'every role' ELSE "
                 "coalesce((SELECT quote_ident(rolname) FROM pg_catalog.pg_roles WHERE oid = "
                 "s.setrole), 'a dropped role') END || CASE WHEN s.setdatabase = 0 THEN '' "
                 "ELSE ' in this database' END, ', ') FROM pg_catalog.pg_db_role_setting s "
                 "WHERE (s.setdatabase = 0 OR s.setdatabase = (SELECT oid FROM "
                 "pg_catalog.pg_database WHERE datname = current_database())) AND EXISTS "
                 "(SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE 'tenantguard.%'))",
                 NULL, NULL, NULL, w, 2) == 1) {
        if (w[1][0])
            tg__findings_add(f, TG_LEVEL_WARNING, "rls_session_setting", r->app.where.file,
                             r->app.where.line,
                             "a tenantguard setting is stored for %s (ALTER ROLE/DATABASE ... "
                             "SET): every session starts inside that tenant, and a pooler hands "
                             "it to any client (ALTER ROLE ... RESET tenantguard.tenant_id)",
                             w[1]);
        else if (w[0][0])
            tg__findings_add(f, TG_LEVEL_WARNING, "rls_session_setting", r->app.where.file,
                             r->app.where.line,
                             "tenantguard.tenant_id or tenantguard.workspace_wide is set for "
                             "the whole session (SET, not SET LOCAL): it outlives the "
                             "transaction and a pooler hands it to the next client (set it "
                             "with set_config(..., true) inside a transaction, as ctx:query "
                             "does)");
    }
}
