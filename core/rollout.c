/* The workspace_id rollout's schema phases. Each phase works on every tenant-owned table the
 * rules name, is idempotent, runs in one transaction (phase 3: one per table), and leaves an
 * entry in the app's audit log. */
#include "rollout.h"
#include "pg.h"
#include "catalog.h"
#include "sql.h"

#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- shared helpers ---- */

size_t tg__targets(const tg_rules *r, tg__target *out, size_t cap) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_families && n < cap; i++, n++) {
        out[n].table = r->families[i].table;
        out[n].cols = &r->families[i].columns;
    }
    for (size_t i = 0; i < r->n_residuals && n < cap; i++, n++) {
        out[n].table = r->residuals[i].table;
        out[n].cols = &r->residuals[i].columns;
    }
    return n;
}

/* A mapped app table in use: written out in the rules, or left out and existing. */
static const char *app_table(tg_engine *eng, const char *table, int implicit) {
    if (!table || !implicit)
        return table;
    return tg__table_exists(eng->store, table) == 1 ? table : NULL;
}

const char *tg__app_audit(tg_engine *eng) {
    const tg_app *a = &eng->rules->pub.app;
    return app_table(eng, a->audit_logs.table, a->audit_logs.implicit);
}

const char *tg__app_runs(tg_engine *eng) {
    const tg_app *a = &eng->rules->pub.app;
    return app_table(eng, a->operation_runs.table, a->operation_runs.implicit);
}

int tg__exec(tg_engine *eng, const char *sql, const char *what) {
    int rc = tg__db_exec(eng->store, sql);
    if (rc == TG__ST_OK)
        return TG_OK;
    int st = (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB;
    tg__engine_fail(eng, st, "%s: %s", what, tg__db_errmsg(eng->store));
    return st;
}

int tg__rowkey_of(tg_engine *eng, const char *table, const char *id, tg__rowkey *k) {
    sqlite3 *db = eng->db;
    memset(k, 0, sizeof *k);
    int rc, nn;
    int64_t without_rowid = tg__count(db,
                                      "SELECT wr FROM pragma_table_list WHERE schema = 'main' "
                                      "AND name = ?1 AND type = 'table'",
                                      table, NULL, &rc);
    int exists = tg__count(db, "SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND "
                               "name = ?1 AND type = 'table'",
                           table, NULL, &rc) > 0;
    if (!exists)
        return tg__engine_fail(eng, TG_REFUSED, "table '%s' does not exist", table);
    k->id = id;
    int64_t pk_cols = tg__count(db, "SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0",
                                table, NULL, &rc);
    k->id_key = pk_cols == 1 &&
                tg__count(db, "SELECT pk FROM pragma_table_info(?1) WHERE name = ?2", table, id,
                          &rc) == 1;
    if (!without_rowid) {
        static const char *const names[] = {"rowid", "_rowid_", "oid"};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            if (!tg__column(db, table, names[i], &nn)) {
                snprintf(k->keys[0], sizeof k->keys[0], "%s", names[i]);
                k->n = 1;
                k->rowid = 1;
                return TG_OK;
            }
        }
        /* every name of the rowid is a column: only a primary key can address a row */
        if (pk_cols == 0)
            return tg__engine_fail(eng, TG_REFUSED,
                                   "table '%s' cannot be walked: its columns shadow every name "
                                   "of the rowid (rowid, _rowid_, oid) and it has no primary key",
                                   table);
    }
    if (pk_cols < 1 || pk_cols > TG__MAX_KEY)
        return tg__engine_fail(eng, TG_REFUSED,
                               "table '%s' cannot be walked: its primary key has %lld columns "
                               "(at most %d)",
                               table, (long long)pk_cols, TG__MAX_KEY);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk",
                           -1, &q, NULL) != SQLITE_OK)
        return tg__engine_fail(eng, TG_DB, "%s", sqlite3_errmsg(db));
    sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
    int st = TG_OK;
    while (st == TG_OK && sqlite3_step(q) == SQLITE_ROW && k->n < TG__MAX_KEY) {
        const char *c = (const char *)sqlite3_column_text(q, 0);
        if (!c || strlen(c) >= sizeof k->keys[0])
            st = tg__engine_fail(eng, TG_REFUSED,
                                 "table '%s' cannot be walked: a key column name is too long",
                                 table);
        else
            snprintf(k->keys[k->n++], sizeof k->keys[0], "%s", c);
    }
    sqlite3_finalize(q);
    if (st == TG_OK && k->n != pk_cols)
        st = tg__engine_fail(eng, TG_DB, "cannot read the primary key of '%s'", table);
    return st;
}

void tg__rowkey_list(const tg__rowkey *k, const char *alias, tg__buf *b) {
    for (int i = 0; i < k->n; i++) {
        if (i)
            tg__buf_add(b, ", ");
        if (alias)
            tg__sqlf(b, &tg__sqlite, "%s.", alias);
        tg__sqlf(b, &tg__sqlite, "%I", k->keys[i]);
    }
}

void tg__rowkey_same(const tg__rowkey *k, const char *alias, const char *other, tg__buf *b) {
    tg__buf_add(b, "(");
    tg__rowkey_list(k, alias, b);
    tg__buf_add(b, ") = (");
    tg__rowkey_list(k, other, b);
    tg__buf_add(b, ")");
}

void tg__rowkey_label(const tg__rowkey *k, const char *alias, tg__buf *b) {
    if (k->id_key) {
        if (alias)
            tg__sqlf(b, &tg__sqlite, "%s.", alias);
        tg__sqlf(b, &tg__sqlite, "%I", k->id);
        return;
    }
    if (k->n == 1) {
        tg__rowkey_list(k, alias, b);
        return;
    }
    tg__buf_add(b, "json_array(");
    tg__rowkey_list(k, alias, b);
    tg__buf_add(b, ")");
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int tg__begin(tg_engine *eng) {
    int delay = 5;
    if (tg__engine_writable(eng, "a write transaction") != TG_OK)
        return TG_MISUSE;
    for (int attempt = 0;; attempt++) {
        int rc = tg__db_exec(eng->store, eng->store->dialect->write_begin);
        if (rc == TG__ST_OK)
            return TG_OK;
        if ((rc & 0xff) != TG__ST_BUSY || attempt >= 12)
            return tg__engine_fail(eng, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                                   "cannot begin a write transaction: %s",
                                   tg__db_errmsg(eng->store));
        sleep_ms(delay);
        delay = delay < 1000 ? delay * 2 : 1000;
    }
}

int tg__commit(tg_engine *eng) { return tg__exec(eng, "COMMIT", "commit"); }

void tg__rollback(tg_engine *eng) {
    /* inside a read snapshot tg__begin refused: the transaction is the snapshot's */
    if (tg__db_in_transaction(eng->store) && !eng->read_depth)
        tg__db_exec(eng->store, "ROLLBACK");
}

int tg__column(sqlite3 *db, const char *table, const char *column, int *notnull) {
    sqlite3_stmt *st;
    *notnull = 0;
    if (sqlite3_prepare_v2(db, "SELECT \"notnull\" FROM pragma_table_info(?1) WHERE name = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, column, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        *notnull = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return found;
}

int64_t tg__count(sqlite3 *db, const char *sql, const char *a, const char *b, int *rc) {
    sqlite3_stmt *st;
    int64_t v = 0;
    *rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (*rc != SQLITE_OK)
        return 0;
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        *rc = SQLITE_OK;
    } else {
        *rc = s == SQLITE_DONE ? SQLITE_OK : s;
    }
    sqlite3_finalize(st);
    return v;
}

int tg__meta_ensure(tg_engine *eng) {
    if (eng->store && !eng->db)
        return tg__meta_ensure_pg(eng);
    if (tg__engine_sqlite(eng, "the backfill") != TG_OK)
        return TG_MISUSE;
    if (eng->read_depth) /* never a write in a read snapshot; the writers refuse first */
        return TG_OK;
    return tg__exec(eng,
                    "CREATE TABLE IF NOT EXISTS tenantguard_runs ("
                    "  id INTEGER PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL,"
                    "  operation_run_id INTEGER, batch_ms REAL NOT NULL, pause_ms INTEGER NOT NULL,"
                    "  rows_total INTEGER NOT NULL DEFAULT 0, rows_done INTEGER NOT NULL DEFAULT 0,"
                    "  rows_set INTEGER NOT NULL DEFAULT 0,"
                    "  rows_corrected INTEGER NOT NULL DEFAULT 0,"
                    "  rows_unbound INTEGER NOT NULL DEFAULT 0,"
                    "  batches INTEGER NOT NULL DEFAULT 0, longest_batch_ms REAL NOT NULL DEFAULT 0,"
                    "  seconds REAL NOT NULL DEFAULT 0,"
                    "  created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT);"
                    "CREATE TABLE IF NOT EXISTS tenantguard_jobs ("
                    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES tenantguard_runs(id),"
                    "  table_name TEXT NOT NULL, status TEXT NOT NULL,"
                    "  checkpoint INTEGER, batch_rows INTEGER NOT NULL,"
                    "  rows_total INTEGER NOT NULL DEFAULT 0, rows_done INTEGER NOT NULL DEFAULT 0,"
                    "  rows_set INTEGER NOT NULL DEFAULT 0,"
                    "  rows_corrected INTEGER NOT NULL DEFAULT 0,"
                    "  rows_unbound INTEGER NOT NULL DEFAULT 0, updated_at TEXT);"
                    "CREATE INDEX IF NOT EXISTS tenantguard_jobs_run ON tenantguard_jobs(run_id, status);"
                    "CREATE TABLE IF NOT EXISTS tenantguard_batches ("
                    "  id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, from_id INTEGER,"
                    "  to_id INTEGER, rows INTEGER NOT NULL, rows_set INTEGER NOT NULL,"
                    "  ms REAL NOT NULL, worker TEXT, at TEXT NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS tenantguard_unbound ("
                    "  run_id INTEGER NOT NULL, table_name TEXT NOT NULL, row_id INTEGER NOT NULL,"
                    "  tenant_id INTEGER, reason TEXT NOT NULL,"
                    "  PRIMARY KEY (run_id, table_name, row_id));"
                    /* a job's checkpoint: the key of its last batch, each column with its
                       type (v has no affinity) */
                    "CREATE TABLE IF NOT EXISTS tenantguard_checkpoints ("
                    "  job_id INTEGER NOT NULL, n INTEGER NOT NULL, v,"
                    "  PRIMARY KEY (job_id, n));"
                    "CREATE TABLE IF NOT EXISTS tenantguard_quarantine ("
                    "  id INTEGER PRIMARY KEY, table_name TEXT NOT NULL, row_id INTEGER,"
                    "  tenant_id INTEGER, row_json TEXT NOT NULL, reason TEXT NOT NULL,"
                    "  quarantined_at TEXT NOT NULL);",
                    "cannot create tenantguard's tables");
}

int tg__audit(tg_engine *eng, const char *action, const char *subject, const char *metadata) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = eng->store->dialect;
    const char *table = tg__app_audit(eng);
    const char *subject_col = a->audit_logs.subject;
    tg__buf sql = {0};
    if (table) {
        tg__sqlf(&sql, d, "INSERT INTO %I (%I, %I, %I", table, a->audit_logs.action,
                 a->audit_logs.metadata, a->audit_logs.created_at);
    } else {
        /* the app keeps no audit log: tenantguard's own, made by the first entry */
        int st = tg__exec(eng, d->audit_ddl, "cannot create tenantguard_audit");
        if (st != TG_OK)
            return st;
        tg__buf_add(&sql, "INSERT INTO tenantguard_audit (action, metadata, created_at");
        subject_col = "subject";
    }
    if (subject_col)
        tg__sqlf(&sql, d, ", %I", subject_col);
    tg__sqlf(&sql, d, ") VALUES (%P, %P, %s", 1, 2, d->now);
    if (subject_col)
        tg__sqlf(&sql, d, ", %P", 3);
    tg__buf_add(&sql, ")");
    tg__stmt *st = NULL;
    int rc = sql.oom ? TG__ST_NOMEM : tg__st_prepare_once(eng->store, tg__buf_str(&sql), &st);
    tg__buf_free(&sql);
    if (rc == TG__ST_OK) {
        tg__st_bind_str(st, 1, action);
        tg__st_bind_str(st, 2, metadata ? metadata : "{}");
        if (subject_col)
            tg__st_bind_str(st, 3, subject);
        rc = tg__st_step(st);
        rc = rc == TG__ST_DONE ? TG__ST_OK : rc;
    }
    if (rc != TG__ST_OK)
        tg__engine_fail(eng, TG_DB, "cannot write the audit entry '%s': %s", action,
                        tg__db_errmsg(eng->store));
    tg__st_finalize(st);
    return rc == TG__ST_OK ? TG_OK : TG_DB;
}

static int run_buf(tg_engine *eng, tg__buf *sql, const char *what) {
    if (sql->oom)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    int st = tg__exec(eng, tg__buf_str(sql), what);
    tg__buf_reset(sql);
    return st;
}

/* Every target must exist with its id and tenant columns. */
static int check_targets(tg_engine *eng, const tg__target *t, size_t n) {
    int nn;
    for (size_t i = 0; i < n; i++) {
        if (!tg__column(eng->db, t[i].table, t[i].cols->tenant, &nn))
            return tg__engine_fail(eng, TG_DB, "table '%s' does not exist or has no column '%s'",
                                   t[i].table, t[i].cols->tenant);
    }
    return TG_OK;
}

/* ---- phase 1: add_columns / drop_columns ---- */

/* The integer a one-row query about `table` (bound as ?1) answers; 0 when it cannot run or
 * has no row. The schema questions below, and is_strict. */
static int table_flag(sqlite3 *db, const char *query, const char *table) {
    sqlite3_stmt *q;
    int v = 0;
    if (sqlite3_prepare_v2(db, query, -1, &q, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(q, 1, table, -1, SQLITE_STATIC);
    if (sqlite3_step(q) == SQLITE_ROW)
        v = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return v;
}

/* 1 when `table` was created STRICT (its columns then need one of SQLite's strict types). */
static int is_strict(sqlite3 *db, const char *table) {
    return table_flag(db, "SELECT strict FROM pragma_table_list WHERE name = ?1", table);
}

/* The type the new workspace column is declared with: that of the workspaces' key, so a key
 * keeps its type in it (a text key "42" would turn into the integer 42 in an INTEGER column
 * and then never equal its workspace). One of a fixed set of keywords, never the app's text. */
static const char *workspace_column_type(tg_engine *eng, const tg_app *a, const char *table) {
    sqlite3 *db = eng->db;
    switch (tg__column_affinity(eng->store, a->workspaces.table, a->workspaces.id)) {
    case TG__AFF_INTEGER: return " INTEGER";
    case TG__AFF_TEXT: return " TEXT";
    case TG__AFF_BLOB: return " BLOB";
    default: return is_strict(db, table) ? " ANY" : ""; /* as given, like the key itself */
    }
}

static int add_columns(tg_engine *eng, const tg__target *tt, size_t n) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = &tg__sqlite;
    tg__buf sql = {0};
    int added = 0, st = TG_OK, nn;
    if ((st = tg__begin(eng)) != TG_OK)
        return st;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        char name[200];
        const char *t = tt[i].table, *W = tt[i].cols->workspace, *T = tt[i].cols->tenant;
        if (!tg__column(eng->db, t, W, &nn)) {
            tg__sqlf(&sql, d, "ALTER TABLE %I ADD COLUMN %I%s REFERENCES %I(%I)", t, W,
                     workspace_column_type(eng, a, t), a->workspaces.table, a->workspaces.id);
            st = run_buf(eng, &sql, t);
            added++;
        }
        snprintf(name, sizeof name, "tenantguard_%s_workspace", t);
        tg__sqlf(&sql, d, "CREATE INDEX IF NOT EXISTS %I ON %I(%I)", name, t, W);
        if (st == TG_OK)
            st = run_buf(eng, &sql, t);
        snprintf(name, sizeof name, "tenantguard_%s_tenant_workspace", t);
        tg__sqlf(&sql, d, "CREATE INDEX IF NOT EXISTS %I ON %I(%I, %I)", name, t, T, W);
        if (st == TG_OK)
            st = run_buf(eng, &sql, t);
    }
    char meta[128];
    snprintf(meta, sizeof meta, "{\"tables\":%zu,\"columns_added\":%d}", n, added);
    if (st == TG_OK)
        st = tg__audit(eng, "tenantguard.rollout.add_columns", "schema", meta);
    if (st == TG_OK)
        st = tg__commit(eng);
    if (st != TG_OK)
        tg__rollback(eng);
    else
        tg__engine_fail(eng, TG_OK, "add_columns: %d column%s added, %zu tables indexed", added,
                        added == 1 ? "" : "s", n);
    tg__buf_free(&sql);
    return st;
}

/* Drops every tenantguard trigger on table t (of kind `like`, e.g. "tenantguard_%"). */
static int drop_triggers_on(tg_engine *eng, const char *t, tg__buf *sql) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(eng->db,
                           "SELECT name FROM sqlite_schema WHERE type = 'trigger' AND "
                           "tbl_name = ?1 AND name LIKE 'tenantguard\\_%' ESCAPE '\\'",
                           -1, &q, NULL) != SQLITE_OK)
        return tg__engine_fail(eng, TG_DB, "%s", sqlite3_errmsg(eng->db));
    sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW)
        tg__sqlf(sql, &tg__sqlite, "DROP TRIGGER IF EXISTS %I;", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return sql->len ? run_buf(eng, sql, t) : TG_OK;
}

/* 1 when phase 3 rebuilt `table`: its definition carries the composite foreign key. */
static int phase3_applied(sqlite3 *db, const char *table) {
    return table_flag(db,
                      "SELECT instr(sql, 'tenantguard_tenant_workspace') > 0 FROM sqlite_schema "
                      "WHERE type = 'table' AND name = ?1",
                      table);
}

static int drop_columns(tg_engine *eng, const tg__target *tt, size_t n) {
    tg__buf sql = {0};
    int nn, st, dropped = 0;
    if ((st = tg__meta_ensure(eng)) != TG_OK)
        return st;
    int rc;
    int64_t pending = tg__count(eng->db,
                                "SELECT count(*) FROM tenantguard_runs WHERE status IN "
                                "('queued', 'running', 'paused')",
                                NULL, NULL, &rc);
    if (pending > 0)
        return tg__engine_fail(eng, TG_REFUSED,
                               "drop_columns refused: %lld backfill run%s still queued, running "
                               "or paused; cancel %s first",
                               (long long)pending, pending == 1 ? " is" : "s are",
                               pending == 1 ? "it" : "them");
    for (size_t i = 0; i < n; i++)
        if (phase3_applied(eng->db, tt[i].table))
            return tg__engine_fail(eng, TG_REFUSED,
                                   "drop_columns undoes phase 1 only, and phase 3 is applied to "
                                   "'%s' (its %s is enforced): prefer a forward fix",
                                   tt[i].table, tt[i].cols->workspace);
    if ((st = tg__begin(eng)) != TG_OK)
        return st;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        char name[200];
        const char *t = tt[i].table, *W = tt[i].cols->workspace;
        st = drop_triggers_on(eng, t, &sql);
        snprintf(name, sizeof name, "tenantguard_%s_workspace", t);
        tg__sqlf(&sql, &tg__sqlite, "DROP INDEX IF EXISTS %I;", name);
        snprintf(name, sizeof name, "tenantguard_%s_tenant_workspace", t);
        tg__sqlf(&sql, &tg__sqlite, "DROP INDEX IF EXISTS %I;", name);
        if (st == TG_OK)
            st = run_buf(eng, &sql, t);
        if (st == TG_OK && tg__column(eng->db, t, W, &nn)) {
            tg__sqlf(&sql, &tg__sqlite, "ALTER TABLE %I DROP COLUMN %I", t, W);
            st = run_buf(eng, &sql, t);
            dropped++;
        }
    }
    if (st == TG_OK)
        st = tg__audit(eng, "tenantguard.rollout.drop_columns", "schema", "{}");
    if (st == TG_OK)
        st = tg__commit(eng);
    if (st != TG_OK)
        tg__rollback(eng);
    else
        tg__engine_fail(eng, TG_OK, "drop_columns: %d column%s dropped", dropped,
                        dropped == 1 ? "" : "s");
    tg__buf_free(&sql);
    return st;
}

/* ---- phase 1.5: enforce_writes ---- */

/* The triggers binding one tenant-owned table. Each abort message names the table and the
 * rule it enforces. */
static void write_triggers(const tg_app *a, const tg__target *tt, const tg__rowkey *k,
                           tg__buf *b) {
    const tg__dialect *d = &tg__sqlite;
    const char *t = tt->table, *T = tt->cols->tenant, *W = tt->cols->workspace;
    char name[200], msg[400];
    /* the row just written, by its rowid or primary key: never by a column it may lack */
    tg__buf same = {0};
    tg__rowkey_same(k, NULL, "NEW", &same);
    tg__buf tenant_ws = {0};
    tg__sqlf(&tenant_ws, d, "(SELECT %I FROM %I WHERE %I = NEW.%I)", a->tenants.workspace,
             a->tenants.table, a->tenants.id, T);

    snprintf(name, sizeof name, "tenantguard_%s_insert_check", t);
    snprintf(msg, sizeof msg,
             "tenantguard: %s: %s must name an existing tenant and %s must equal the workspace "
             "of that tenant [workspace_matches_tenant]",
             t, T, W);
    tg__sqlf(b, d,
             "CREATE TRIGGER %I BEFORE INSERT ON %I WHEN %s IS NULL OR (NEW.%I IS NOT NULL AND "
             "NEW.%I IS NOT %s) BEGIN SELECT RAISE(ABORT, %L); END;",
             name, t, tg__buf_str(&tenant_ws), W, W, tg__buf_str(&tenant_ws), msg);

    snprintf(name, sizeof name, "tenantguard_%s_insert_bind", t);
    tg__sqlf(b, d,
             "CREATE TRIGGER %I AFTER INSERT ON %I WHEN NEW.%I IS NULL BEGIN UPDATE %I SET %I = "
             "%s WHERE %s; END;",
             name, t, W, t, W, tg__buf_str(&tenant_ws), tg__buf_str(&same));

    snprintf(name, sizeof name, "tenantguard_%s_tenant_fixed", t);
    snprintf(msg, sizeof msg, "tenantguard: %s: %s can never change [tenant_immutable]", t, T);
    tg__sqlf(b, d,
             "CREATE TRIGGER %I BEFORE UPDATE OF %I ON %I WHEN NEW.%I IS NOT OLD.%I BEGIN SELECT "
             "RAISE(ABORT, %L); END;",
             name, T, t, T, T, msg);

    snprintf(name, sizeof name, "tenantguard_%s_update_check", t);
    snprintf(msg, sizeof msg,
             "tenantguard: %s: %s must equal the workspace of the tenant of the row "
             "[workspace_matches_tenant]",
             t, W);
    tg__sqlf(b, d,
             "CREATE TRIGGER %I BEFORE UPDATE ON %I WHEN NEW.%I IS NOT NULL AND NEW.%I IS NOT %s "
             "BEGIN SELECT RAISE(ABORT, %L); END;",
             name, t, W, W, tg__buf_str(&tenant_ws), msg);

    snprintf(name, sizeof name, "tenantguard_%s_update_bind", t);
    tg__sqlf(b, d,
             "CREATE TRIGGER %I AFTER UPDATE ON %I WHEN NEW.%I IS NULL BEGIN UPDATE %I SET %I = "
             "%s WHERE %s; END;",
             name, t, W, t, W, tg__buf_str(&tenant_ws), tg__buf_str(&same));
    tg__buf_free(&tenant_ws);
    tg__buf_free(&same);
}

/* The audit log: an entry with a tenant must carry that tenant's workspace (an entry about a
 * tenant that no longer exists needs a workspace, and cannot be checked further). */
static void audit_triggers(const tg_app *a, const char *t, tg__buf *b) {
    const tg__dialect *d = &tg__sqlite;
    const char *T = a->audit_logs.tenant, *W = a->audit_logs.workspace;
    char name[200], msg[300];
    snprintf(msg, sizeof msg,
             "tenantguard: %s: an entry with a %s must carry the workspace of that tenant in %s "
             "[audit_tenant_needs_workspace]",
             t, T, W);
    tg__buf tenant_ws = {0};
    tg__sqlf(&tenant_ws, d, "(SELECT %I FROM %I WHERE %I = NEW.%I)", a->tenants.workspace,
             a->tenants.table, a->tenants.id, T);
    const char *when[2] = {"INSERT", "UPDATE"};
    for (int i = 0; i < 2; i++) {
        snprintf(name, sizeof name, "tenantguard_%s_%s_check", t, i ? "update" : "insert");
        tg__sqlf(b, d,
                 "CREATE TRIGGER %I BEFORE %s ON %I WHEN NEW.%I IS NOT NULL AND (NEW.%I IS NULL "
                 "OR NEW.%I IS NOT coalesce(%s, NEW.%I)) BEGIN SELECT RAISE(ABORT, %L); END;",
                 name, when[i], t, T, W, W, tg__buf_str(&tenant_ws), W, msg);
    }
    tg__buf_free(&tenant_ws);
}

static int enforce_writes(tg_engine *eng, const tg__target *t, size_t n, int drop_only) {
    const tg_app *a = &eng->rules->pub.app;
    tg__buf sql = {0};
    int nn, st;
    /* after phase 3 the triggers are what keeps workspace_id from ever being NULL (SQLite
     * checks a NOT NULL column before any trigger could derive the value, so phase 3 leaves
     * that to them): they stay */
    for (size_t i = 0; drop_only && i < n; i++)
        if (phase3_applied(eng->db, t[i].table))
            return tg__engine_fail(eng, TG_REFUSED,
                                   "drop_triggers refused: phase 3 is applied to '%s', and its "
                                   "triggers are what binds every write's %s (never NULL)",
                                   t[i].table, t[i].cols->workspace);
    if (!drop_only)
        for (size_t i = 0; i < n; i++)
            if (!tg__column(eng->db, t[i].table, t[i].cols->workspace, &nn))
                return tg__engine_fail(eng, TG_REFUSED,
                                       "enforce_writes needs phase 1 first: '%s' has no %s column "
                                       "(run add_columns)",
                                       t[i].table, t[i].cols->workspace);
    /* every table's rows must be addressable before any trigger is installed */
    tg__rowkey *keys = drop_only ? NULL : calloc(n ? n : 1, sizeof *keys);
    if (!drop_only && !keys)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    for (size_t i = 0; !drop_only && i < n; i++)
        if ((st = tg__rowkey_of(eng, t[i].table, t[i].cols->id, &keys[i])) != TG_OK) {
            free(keys);
            return st;
        }
    if ((st = tg__begin(eng)) != TG_OK) {
        free(keys);
        return st;
    }
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        st = drop_triggers_on(eng, t[i].table, &sql);
        if (st == TG_OK && !drop_only) {
            write_triggers(a, &t[i], &keys[i], &sql);
            st = run_buf(eng, &sql, t[i].table);
        }
    }
    free(keys);
    /* the audit-log invariant holds on an app audit table only (tenantguard_audit has no
     * tenant column) */
    const char *audit = tg__app_audit(eng);
    if (st == TG_OK && audit)
        st = drop_triggers_on(eng, audit, &sql);
    if (st == TG_OK && !drop_only && audit && a->audit_logs.tenant && a->audit_logs.workspace) {
        audit_triggers(a, audit, &sql);
        st = run_buf(eng, &sql, audit);
    }
    if (st == TG_OK)
        st = tg__audit(eng,
                       drop_only ? "tenantguard.rollout.drop_triggers"
                                 : "tenantguard.rollout.enforce_writes",
                       "schema", "{}");
    if (st == TG_OK)
        st = tg__commit(eng);
    if (st != TG_OK)
        tg__rollback(eng);
    else if (drop_only)
        tg__engine_fail(eng, TG_OK, "drop_triggers: write triggers removed from %zu tables", n);
    else
        tg__engine_fail(eng, TG_OK,
                        "enforce_writes: triggers bind every write to %zu tables%s", n,
                        audit ? " and the audit log" : "");
    tg__buf_free(&sql);
    return st;
}

/* ---- quarantine of rows whose tenant no longer exists ---- */

/* 1 when some other target still to be processed references `t` by foreign key. */
static int referenced_by_pending(sqlite3 *db, const char *t, const tg__target *all,
                                 const int *done, size_t n) {
    for (size_t k = 0; k < n; k++) {
        if (done[k] || strcmp(all[k].table, t) == 0)
            continue;
        int rc;
        if (tg__count(db, "SELECT count(*) FROM pragma_foreign_key_list(?1) WHERE \"table\" = ?2",
                      all[k].table, t, &rc) > 0)
            return 1;
    }
    return 0;
}

static int quarantine_table(tg_engine *eng, const tg__target *tt, int64_t *moved) {
    const tg_app *a = &eng->rules->pub.app;
    const char *t = tt->table, *T = tt->cols->tenant;
    const tg__dialect *d = &tg__sqlite;
    tg__buf sql = {0}, obj = {0};
    sqlite3_stmt *cols;
    *moved = 0;
    if (sqlite3_prepare_v2(eng->db, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1,
                           &cols, NULL) != SQLITE_OK)
        return tg__engine_fail(eng, TG_DB, "%s", sqlite3_errmsg(eng->db));
    sqlite3_bind_text(cols, 1, t, -1, SQLITE_STATIC);
    tg__buf_add(&obj, "json_object(");
    int first = 1;
    while (sqlite3_step(cols) == SQLITE_ROW) {
        const char *c = (const char *)sqlite3_column_text(cols, 0);
        /* every column, blobs as 'base16:<hex>' (JSON holds no blobs) */
        tg__buf_add(&obj, first ? "'" : ", '");
        for (const char *p = c; *p; p++)
            tg__buf_add(&obj, *p == '\'' ? "''" : (char[2]){*p, 0});
        tg__sqlf(&obj, d, "', CASE WHEN typeof(%I) = 'blob' THEN 'base16:' || hex(%I) ELSE %I END",
                 c, c, c);
        first = 0;
    }
    sqlite3_finalize(cols);
    tg__buf_add(&obj, ")");
    tg__buf where = {0}, label = {0};
    tg__sqlf(&where, d, "%I IS NULL OR %I NOT IN (SELECT %I FROM %I)", T, T, a->tenants.id,
             a->tenants.table);
    tg__rowkey key;
    int st = tg__rowkey_of(eng, t, tt->cols->id, &key);
    if (st != TG_OK)
        goto done;
    tg__rowkey_label(&key, NULL, &label);
    tg__sqlf(&sql, d,
             "INSERT INTO tenantguard_quarantine (table_name, row_id, tenant_id, row_json, reason, "
             "quarantined_at) SELECT %L, %s, %I, %s, 'tenant_missing', %s FROM %I WHERE %s",
             t, tg__buf_str(&label), T, tg__buf_str(&obj), TG__SQL_NOW, t,
             tg__buf_str(&where));
    if ((st = run_buf(eng, &sql, t)) != TG_OK)
        goto done;
    int64_t copied = sqlite3_changes64(eng->db);
    int64_t before = sqlite3_total_changes64(eng->db);
    tg__sqlf(&sql, d, "DELETE FROM %I WHERE %s", t, tg__buf_str(&where));
    if ((st = run_buf(eng, &sql, t)) != TG_OK)
        goto done;
    int64_t deleted = sqlite3_changes64(eng->db);
    int64_t all = sqlite3_total_changes64(eng->db) - before;
    if (deleted != copied || all != deleted) {
        st = tg__engine_fail(eng, TG_REFUSED,
                             "quarantine of '%s' refused: deleting its %lld orphan rows would "
                             "also change %lld rows elsewhere (a cascade); move their children "
                             "first or fix them by hand",
                             t, (long long)deleted, (long long)(all - deleted));
        goto done;
    }
    char meta[160];
    snprintf(meta, sizeof meta, "{\"table\":\"%s\",\"rows\":%lld}", t, (long long)copied);
    if ((st = tg__audit(eng, "tenantguard.rollout.quarantine_orphans", t, meta)) != TG_OK)
        goto done;
    *moved = copied;
done:
    tg__buf_free(&sql);
    tg__buf_free(&obj);
    tg__buf_free(&where);
    tg__buf_free(&label);
    return st;
}

static int quarantine_audit(tg_engine *eng, const char *audit, int64_t *moved) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = &tg__sqlite;
    tg__buf sql = {0}, where = {0};
    *moved = 0;
    tg__sqlf(&where, d, "%I IS NOT NULL AND %I IS NULL AND %I NOT IN (SELECT %I FROM %I)",
             a->audit_logs.tenant, a->audit_logs.workspace, a->audit_logs.tenant, a->tenants.id,
             a->tenants.table);
    int st = TG_OK;
    /* the audit table's columns as a JSON object, like quarantine_table */
    tg__buf obj = {0};
    sqlite3_stmt *cols;
    tg__buf_add(&obj, "json_object(");
    if (sqlite3_prepare_v2(eng->db, "SELECT name FROM pragma_table_info(?1) ORDER BY cid", -1,
                           &cols, NULL) == SQLITE_OK) {
        sqlite3_bind_text(cols, 1, audit, -1, SQLITE_STATIC);
        int first = 1;
        while (sqlite3_step(cols) == SQLITE_ROW) {
            const char *c = (const char *)sqlite3_column_text(cols, 0);
            tg__sqlf(&obj, d, "%s%L, %I", first ? "" : ", ", c, c);
            first = 0;
        }
        sqlite3_finalize(cols);
    }
    tg__buf_add(&obj, ")");
    tg__sqlf(&sql, d,
             "INSERT INTO tenantguard_quarantine (table_name, row_id, tenant_id, row_json, reason, "
             "quarantined_at) SELECT %L, %I, %I, %s, 'tenant_missing', %s FROM %I WHERE %s",
             audit, a->audit_logs.id, a->audit_logs.tenant, tg__buf_str(&obj),
             TG__SQL_NOW, audit, tg__buf_str(&where));
    tg__buf_free(&obj);
    if ((st = run_buf(eng, &sql, audit)) != TG_OK)
        goto done;
    int64_t copied = sqlite3_changes64(eng->db);
    tg__sqlf(&sql, d, "DELETE FROM %I WHERE %s", audit, tg__buf_str(&where));
    if ((st = run_buf(eng, &sql, audit)) != TG_OK)
        goto done;
    if (sqlite3_changes64(eng->db) != copied) {
        st = tg__engine_fail(eng, TG_DB, "quarantine of audit entries moved %lld but deleted "
                                         "%lld; nothing was changed",
                             (long long)copied, (long long)sqlite3_changes64(eng->db));
        goto done;
    }
    if (copied) {
        char meta[160];
        snprintf(meta, sizeof meta, "{\"table\":\"%s\",\"rows\":%lld}", audit,
                 (long long)copied);
        if ((st = tg__audit(eng, "tenantguard.rollout.quarantine_orphans", audit,
                            meta)) != TG_OK)
            goto done;
    }
    *moved = copied;
done:
    tg__buf_free(&sql);
    tg__buf_free(&where);
    return st;
}

/* The whole phase is one transaction: a table refused (a delete that would cascade) leaves
 * every table as it was, none half moved. */
static int quarantine_orphans(tg_engine *eng, const tg__target *t, size_t n) {
    int done[TG__MAX_TARGETS] = {0};
    int64_t total = 0;
    int st = tg__meta_ensure(eng);
    if (st == TG_OK)
        st = tg__begin(eng);
    if (st != TG_OK)
        return st;
    /* children before parents, so a delete never cascades into a row not yet copied */
    for (size_t pass = 0; pass < n && st == TG_OK; pass++) {
        int progressed = 0;
        for (size_t i = 0; i < n && st == TG_OK; i++) {
            if (done[i] ||
                (referenced_by_pending(eng->db, t[i].table, t, done, n) && pass + 1 < n))
                continue;
            int64_t moved;
            st = quarantine_table(eng, &t[i], &moved);
            total += moved;
            done[i] = 1;
            progressed = 1;
        }
        if (!progressed)
            break;
    }
    /* audit entries about a tenant that no longer exists and without a workspace can never
     * be bound: kept in the quarantine too, so phase 3's audit check can hold */
    const tg_app *a = &eng->rules->pub.app;
    const char *audit = tg__app_audit(eng);
    int nn;
    if (st == TG_OK && audit && a->audit_logs.tenant && a->audit_logs.workspace &&
        tg__column(eng->db, audit, a->audit_logs.workspace, &nn)) {
        int64_t moved = 0;
        st = quarantine_audit(eng, audit, &moved);
        total += moved;
    }
    if (st == TG_OK)
        st = tg__commit(eng);
    if (st != TG_OK) {
        tg__rollback(eng);
        return st;
    }
    tg__engine_fail(eng, TG_OK,
                    "quarantine_orphans: %lld row%s whose tenant no longer exists moved to "
                    "tenantguard_quarantine",
                    (long long)total, total == 1 ? "" : "s");
    return st;
}

/* ---- phase 3: enforce_constraints by SQLite's table-rebuild procedure ---- */

/* Splits the column/constraint list of a CREATE TABLE statement at top-level commas.
 * Returns the number of items; *open and *close are the offsets of the list's parentheses.
 * Quotes, brackets and comments are skipped. */
static int split_items(const char *sql, size_t *open, size_t *close, size_t *starts, size_t *ends,
                       int cap) {
    const char *p = strchr(sql, '(');
    if (!p)
        return -1;
    *open = (size_t)(p - sql);
    int depth = 0, n = 0;
    size_t item = *open + 1;
    for (const char *q = p; *q; q++) {
        char c = *q;
        if (c == '\'' || c == '"' || c == '`' || c == '[') {
            char end = c == '[' ? ']' : c;
            for (q++; *q && *q != end; q++)
                ;
            if (!*q)
                return -1;
            continue;
        }
        if (c == '-' && q[1] == '-') {
            while (*q && *q != '\n')
                q++;
            if (!*q)
                return -1;
            continue;
        }
        if (c == '/' && q[1] == '*') {
            const char *e = strstr(q + 2, "*/");
            if (!e)
                return -1;
            q = e + 1;
            continue;
        }
        if (c == '(') {
            depth++;
        } else if (c == ')' || (c == ',' && depth == 1)) {
            if (c == ')' && --depth > 0)
                continue;
            if (n == cap)
                return -1;
            starts[n] = item;
            ends[n] = (size_t)(q - sql);
            n++;
            item = (size_t)(q - sql) + 1;
            if (c == ')') {
                *close = (size_t)(q - sql);
                return n;
            }
        }
    }
    return -1;
}

/* The first token of an item, unquoted, into out. */
static void first_token(const char *s, size_t len, char *out, size_t cap) {
    size_t i = 0, k = 0;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    char q = (i < len && (s[i] == '"' || s[i] == '`' || s[i] == '[')) ? s[i] : 0;
    if (q) {
        char end = q == '[' ? ']' : q;
        for (i++; i < len && s[i] != end && k + 1 < cap; i++)
            out[k++] = s[i];
    } else {
        for (; i < len && !isspace((unsigned char)s[i]) && s[i] != '(' && k + 1 < cap; i++)
            out[k++] = s[i];
    }
    out[k] = '\0';
}

static int contains_ci(const char *s, size_t len, const char *word) {
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= len; i++)
        if (strncasecmp(s + i, word, w) == 0)
            return 1;
    return 0;
}

enum { REBUILD_TENANT_OWNED, REBUILD_AUDIT };

/* Builds the new CREATE TABLE (from `create`) named `new_name`. Returns 0 when nothing needs to
 * change (already enforced), 1 with *out built, -1 on a parse failure. */
static int new_table_sql(tg_engine *eng, const char *create, int kind, const tg_columns *cols,
                         const char *new_name, tg__buf *out) {
    const tg_app *a = &eng->rules->pub.app;
    const char *W = kind == REBUILD_AUDIT ? a->audit_logs.workspace : cols->workspace;
    const tg__dialect *d = &tg__sqlite;
    size_t open, close, st[1024], en[1024];
    int n = split_items(create, &open, &close, st, en, 1024);
    if (n < 1)
        return -1;
    char constraint[96];
    snprintf(constraint, sizeof constraint, kind == REBUILD_AUDIT ? "tenantguard_audit_workspace"
                                                                  : "tenantguard_tenant_workspace");
    int has_constraint = strstr(create, constraint) != NULL;
    int ws_item = -1, ws_ok = 0;
    for (int i = 0; i < n; i++) {
        char tok[128];
        first_token(create + st[i], en[i] - st[i], tok, sizeof tok);
        if (strcasecmp(tok, W) == 0) {
            ws_item = i;
            ws_ok = contains_ci(create + st[i], en[i] - st[i], "REFERENCES");
        }
    }
    if (ws_item < 0)
        return -1;
    if (has_constraint && (kind == REBUILD_AUDIT || ws_ok))
        return 0;
    tg__sqlf(out, d, "CREATE TABLE %I (", new_name);
    for (int i = 0; i < n; i++) {
        size_t s0 = st[i];
        while (isspace((unsigned char)create[s0]))
            s0++;
        if (i)
            tg__buf_add(out, ", ");
        tg__buf_addn(out, create + s0, en[i] - s0);
        /* no NOT NULL: SQLite checks it before the AFTER INSERT trigger derives the
         * workspace, so it would break every raw insert that leaves workspace_id to the
         * triggers, a write the application could make before phase 3. The phase 1.5
         * triggers keep the column from ever being NULL instead (an insert or update naming
         * a tenant that has no workspace aborts; a NULL is re-derived), and drop_triggers
         * is refused from here on. */
        if (kind == REBUILD_TENANT_OWNED && i == ws_item) {
            if (!contains_ci(create + st[i], en[i] - st[i], "REFERENCES"))
                tg__sqlf(out, d, " REFERENCES %I(%I)", a->workspaces.table, a->workspaces.id);
        }
    }
    if (!has_constraint) {
        if (kind == REBUILD_TENANT_OWNED)
            tg__sqlf(out, d, ", CONSTRAINT %I FOREIGN KEY (%I, %I) REFERENCES %I(%I, %I)",
                     constraint, cols->tenant, cols->workspace, a->tenants.table,
                     a->tenants.id, a->tenants.workspace);
        else
            tg__sqlf(out, d, ", CONSTRAINT %I CHECK (%I IS NULL OR %I IS NOT NULL)", constraint,
                     a->audit_logs.tenant, a->audit_logs.workspace);
    }
    tg__buf_add(out, ")");
    tg__buf_add(out, create + close + 1); /* table options: WITHOUT ROWID, STRICT */
    return 1;
}

typedef struct saved {
    char **sql;
    size_t n, cap;
} saved;

static int save_sql(sqlite3 *db, const char *query, const char *arg, saved *s) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(db, query, -1, &q, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    if (arg)
        sqlite3_bind_text(q, 1, arg, -1, SQLITE_STATIC);
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (s->n == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 16;
            char **more = realloc(s->sql, cap * sizeof *more);
            if (!more)
                break;
            s->sql = more;
            s->cap = cap;
        }
        s->sql[s->n] = strdup((const char *)sqlite3_column_text(q, 0));
        if (s->sql[s->n])
            s->n++;
    }
    sqlite3_finalize(q);
    return SQLITE_OK;
}

static void free_saved(saved *s) {
    for (size_t i = 0; i < s->n; i++)
        free(s->sql[i]);
    free(s->sql);
    memset(s, 0, sizeof *s);
}

/* Foreign-key problems in the tables whose foreign keys point at t (t itself excluded). */
static int64_t children_fk_problems(sqlite3 *db, const char *t, int *rc) {
    return tg__count(db,
                     "SELECT count(*) FROM sqlite_schema AS s, pragma_foreign_key_list(s.name) AS "
                     "f, pragma_foreign_key_check(s.name) AS c WHERE s.type = 'table' AND "
                     "s.name <> ?1 AND f.\"table\" = ?1 AND c.parent = ?1 AND c.fkid = f.id",
                     t, NULL, rc);
}

/* Rebuilds one table inside the caller's transaction (steps 3-10 of SQLite's procedure). */
static int rebuild(tg_engine *eng, const char *t, int kind, const tg_columns *names,
                   int *changed) {
    const tg__dialect *d = &tg__sqlite;
    sqlite3 *db = eng->db;
    *changed = 0;
    saved assoc = {0};
    tg__buf sql = {0}, cols = {0};
    char *create = NULL;
    int st = TG_OK, rc;
    char new_name[200];
    snprintf(new_name, sizeof new_name, "tenantguard_new_%s", t);
    {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?1",
                               -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW)
                create = strdup((const char *)sqlite3_column_text(q, 0));
            sqlite3_finalize(q);
        }
    }
    if (!create) {
        st = tg__engine_fail(eng, TG_DB, "table '%s' does not exist", t);
        goto done;
    }
    const char *W = names ? names->workspace : eng->rules->pub.app.audit_logs.workspace;
    int r = new_table_sql(eng, create, kind, names, new_name, &sql);
    if (r < 0) {
        st = tg__engine_fail(eng, TG_DB, "cannot rewrite the definition of '%s' (no %s column?)",
                             t, W);
        goto done;
    }
    if (r == 0)
        goto done; /* already enforced */
    /* 3: remember the indexes and triggers of the table (DROP TABLE drops them). Views, the
     * triggers on views (INSTEAD OF) and on other tables are left alone: legacy_alter_table
     * keeps their references to the table by name, and the name comes back in step 7. */
    save_sql(db,
             "SELECT sql FROM sqlite_schema WHERE tbl_name = ?1 AND type IN ('index', 'trigger') "
             "AND sql IS NOT NULL ORDER BY rowid",
             t, &assoc);
    /* foreign-key problems of the tables that point at this one, before: the rebuild must add
     * none (the rows and keys are copied as they are) */
    int64_t child_bad_before = children_fk_problems(db, t, &rc);
    if (rc != SQLITE_OK) {
        st = tg__engine_fail(eng, TG_DB, "foreign_key_check on the tables referencing '%s': %s",
                             t, sqlite3_errmsg(db));
        goto done;
    }
    /* 4: the new table */
    if ((st = run_buf(eng, &sql, t)) != TG_OK)
        goto done;
    /* 5: copy every row, every stored column, and the rowid (a table without an INTEGER
     * PRIMARY KEY keeps its rowids too) */
    tg__rowkey key;
    if ((st = tg__rowkey_of(eng, t, names ? names->id : eng->rules->pub.app.audit_logs.id,
                            &key)) != TG_OK)
        goto done;
    if (key.rowid)
        tg__sqlf(&cols, d, "%I, ", key.keys[0]);
    {
        sqlite3_stmt *q;
        sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_xinfo(?1) WHERE hidden = 0 ORDER BY cid",
                           -1, &q, NULL);
        sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
        int first = 1;
        while (q && sqlite3_step(q) == SQLITE_ROW) {
            tg__sqlf(&cols, d, "%s%I", first ? "" : ", ", (const char *)sqlite3_column_text(q, 0));
            first = 0;
        }
        sqlite3_finalize(q);
    }
    tg__sqlf(&sql, d, "INSERT INTO %I (%s) SELECT %s FROM %I", new_name, tg__buf_str(&cols),
             tg__buf_str(&cols), t);
    if ((st = run_buf(eng, &sql, t)) != TG_OK)
        goto done;
    int64_t copied = sqlite3_changes64(db);
    tg__sqlf(&sql, d, "SELECT count(*) FROM %I", t);
    int64_t had = tg__count(db, tg__buf_str(&sql), NULL, NULL, &rc);
    tg__buf_reset(&sql);
    if (rc != SQLITE_OK || had != copied) {
        st = tg__engine_fail(eng, TG_DB, "rebuild of '%s' copied %lld of %lld rows", t,
                             (long long)copied, (long long)had);
        goto done;
    }
    int64_t seq = -1;
    if (tg__count(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'", NULL,
                  NULL, &rc) > 0) {
        seq = tg__count(db, "SELECT seq FROM sqlite_sequence WHERE name = ?1", t, NULL, &rc);
    }
    /* 6, 7: drop the old table, rename the new one (legacy mode: nothing else is rewritten) */
    tg__sqlf(&sql, d, "DROP TABLE %I; PRAGMA legacy_alter_table = ON; ALTER TABLE %I RENAME TO %I;"
                      " PRAGMA legacy_alter_table = OFF;",
             t, new_name, t);
    if ((st = run_buf(eng, &sql, t)) != TG_OK) {
        sqlite3_exec(db, "PRAGMA legacy_alter_table = OFF", NULL, NULL, NULL);
        goto done;
    }
    if (seq > 0) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(db, "UPDATE sqlite_sequence SET seq = max(seq, ?2) WHERE name = ?1",
                               -1, &q, NULL) == SQLITE_OK) {
            sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 2, seq);
            sqlite3_step(q);
            sqlite3_finalize(q);
        }
    }
    /* 8: the indexes and triggers again, exactly as they were written */
    for (size_t i = 0; i < assoc.n && st == TG_OK; i++)
        st = tg__exec(eng, assoc.sql[i], "recreating an index or trigger");
    if (st != TG_OK)
        goto done;
    /* 10: foreign_key_check */
    tg__sqlf(&sql, d, "SELECT count(*) FROM pragma_foreign_key_check(%I)", t);
    {
        sqlite3_stmt *q;
        int64_t bad = 0;
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_foreign_key_check(?1)", -1, &q,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_text(q, 1, t, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW)
                bad = sqlite3_column_int64(q, 0);
            sqlite3_finalize(q);
        }
        tg__buf_reset(&sql);
        if (bad) {
            st = tg__engine_fail(eng, TG_REFUSED,
                                 "rebuild of '%s': foreign_key_check finds %lld row%s breaking a "
                                 "foreign key; nothing was changed",
                                 t, (long long)bad, bad == 1 ? "" : "s");
            goto done;
        }
        int64_t child_bad = children_fk_problems(db, t, &rc);
        if (rc != SQLITE_OK || child_bad > child_bad_before) {
            st = tg__engine_fail(eng, TG_REFUSED,
                                 "rebuild of '%s': the tables referencing it would break %lld "
                                 "more foreign key%s; nothing was changed",
                                 t, (long long)(child_bad - child_bad_before),
                                 child_bad - child_bad_before == 1 ? "" : "s");
            goto done;
        }
    }
    *changed = 1;
done:
    free(create);
    free_saved(&assoc);
    tg__buf_free(&sql);
    tg__buf_free(&cols);
    return st;
}

/* 1 when the phase 1.5 triggers of `table` are installed. */
static int has_write_triggers(sqlite3 *db, const char *table) {
    return table_flag(db,
                      "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'trigger' AND "
                      "tbl_name = ?1 AND name = 'tenantguard_' || ?1 || '_insert_bind'",
                      table);
}

static int enforce_constraints(tg_engine *eng, const tg__target *t, size_t n) {
    const tg_app *a = &eng->rules->pub.app;
    /* the triggers are what keeps workspace_id from being NULL after this phase */
    for (size_t i = 0; i < n; i++)
        if (!has_write_triggers(eng->db, t[i].table))
            return tg__engine_fail(eng, TG_REFUSED,
                                   "enforce_constraints needs phase 1.5 first: '%s' has no write "
                                   "triggers (run enforce_writes)",
                                   t[i].table);
    tg_validation *v = NULL;
    int st = tg_validate(eng, &v);
    if (st != TG_OK)
        return st;
    if (!v->ok) {
        tg__buf why = {0};
        for (size_t i = 0; i < v->n_checks; i++)
            if (v->checks[i].count)
                tg__buf_printf(&why, "%s%s %s: %lld", why.len ? ", " : "", v->checks[i].name,
                               v->checks[i].table ? v->checks[i].table : "",
                               (long long)v->checks[i].count);
        tg_validation_free(v);
        st = tg__engine_fail(eng, TG_REFUSED,
                             "enforce_constraints refused: validation finds rows to fix (%s); "
                             "run the backfill (and quarantine_orphans for rows whose tenant is "
                             "gone) first",
                             tg__buf_str(&why));
        tg__buf_free(&why);
        return st;
    }
    tg_validation_free(v);
    /* the composite foreign key needs a unique key on the tenants side */
    tg__buf sql = {0};
    tg__sqlf(&sql, &tg__sqlite, "CREATE UNIQUE INDEX IF NOT EXISTS %I ON %I(%I, %I)",
             "tenantguard_tenants_id_workspace", a->tenants.table, a->tenants.id,
             a->tenants.workspace);
    if ((st = tg__begin(eng)) == TG_OK && (st = run_buf(eng, &sql, "tenants")) == TG_OK)
        st = tg__commit(eng);
    tg__buf_free(&sql);
    if (st != TG_OK) {
        tg__rollback(eng);
        return st;
    }
    /* 1: foreign keys off, outside any transaction */
    if ((st = tg__exec(eng, "PRAGMA foreign_keys = OFF", "foreign_keys")) != TG_OK)
        return st;
    int rebuilt = 0;
    const char *audit = tg__app_audit(eng);
    for (size_t i = 0; i <= n && st == TG_OK; i++) {
        const char *table = i < n ? t[i].table : audit;
        int kind = i < n ? REBUILD_TENANT_OWNED : REBUILD_AUDIT;
        int nn;
        if (i == n && (!audit || !a->audit_logs.tenant || !a->audit_logs.workspace ||
                       !tg__column(eng->db, audit, a->audit_logs.workspace, &nn)))
            break;
        int changed = 0;
        /* 2, 11: each table in its own transaction */
        if ((st = tg__begin(eng)) != TG_OK)
            break;
        st = rebuild(eng, table, kind, i < n ? t[i].cols : NULL, &changed);
        if (st == TG_OK && changed) {
            char meta[200];
            snprintf(meta, sizeof meta, "{\"table\":\"%s\"}", table);
            st = tg__audit(eng, "tenantguard.rollout.enforce_constraints", table, meta);
        }
        if (st == TG_OK)
            st = tg__commit(eng);
        if (st != TG_OK)
            tg__rollback(eng);
        rebuilt += changed;
    }
    /* 12: foreign keys back on */
    sqlite3_exec(eng->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (st == TG_OK)
        tg__engine_fail(eng, TG_OK,
                        "enforce_constraints: %d table%s rebuilt with the workspace column NOT "
                        "NULL, its foreign keys%s",
                        rebuilt, rebuilt == 1 ? "" : "s", audit ? " and the audit-log check" : "");
    return st;
}

int tg_rollout(tg_engine *eng, const char *phase) { return tg_rollout_with(eng, phase, NULL); }

int tg_rollout_with(tg_engine *eng, const char *phase, const tg_rollout_options *opts) {
    if (!eng || !phase || eng->closed)
        return TG_MISUSE;
    if (!eng->store)
        return tg__engine_sqlite(eng, "the rollout");
    if (tg__engine_writable(eng, "rollout") != TG_OK)
        return TG_MISUSE;
    tg__target t[TG__MAX_TARGETS];
    size_t n = tg__targets(&eng->rules->pub, t, TG__MAX_TARGETS);
    if (!eng->db) { /* PostgreSQL: its own phases (rollout_pg.c) */
        int pst = tg__rollout_pg_with(eng, phase, t, n, opts);
        tg__engine_schema_changed(eng);
        return pst;
    }
    int st = check_targets(eng, t, n);
    if (st != TG_OK)
        return st;
    if (strcmp(phase, "add_columns") == 0)
        st = add_columns(eng, t, n);
    else if (strcmp(phase, "drop_columns") == 0)
        st = drop_columns(eng, t, n);
    else if (strcmp(phase, "enforce_writes") == 0)
        st = enforce_writes(eng, t, n, 0);
    else if (strcmp(phase, "drop_triggers") == 0)
        st = enforce_writes(eng, t, n, 1);
    else if (strcmp(phase, "quarantine_orphans") == 0)
        st = quarantine_orphans(eng, t, n);
    else if (strcmp(phase, "enforce_constraints") == 0)
        st = enforce_constraints(eng, t, n);
    else
        return tg__engine_fail(eng, TG_UNKNOWN,
                               "unknown phase '%s' (add_columns, drop_columns, enforce_writes, "
                               "drop_triggers, quarantine_orphans, enforce_constraints)",
                               phase);
    tg__engine_schema_changed(eng);
    return st;
}
