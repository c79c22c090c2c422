/* Phase 2, the backfill: a dry run that only counts, a queued run with one durable job per
 * table, and the worker that runs jobs in keyset batches. Each batch is one
 * BEGIN IMMEDIATE transaction that binds its rows, lists the rows it cannot bind, and
 * advances the job's checkpoint and the run's counters together, so a batch is applied
 * exactly once whoever runs it and wherever a worker dies. The batch size adapts to a
 * target time, so the write lock is never held long. */
#include "rollout.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NOW "strftime('%Y-%m-%d %H:%M:%f', 'now')"
/* the same inside a printf format */
#define NOW_P "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int prepare(tg_engine *eng, const tg__buf *sql, sqlite3_stmt **st) {
    if (sql->oom)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    if (sqlite3_prepare_v2(eng->db, tg__buf_str(sql), -1, st, NULL) != SQLITE_OK)
        return tg__engine_fail(eng, TG_DB, "%s", sqlite3_errmsg(eng->db));
    return TG_OK;
}

/* ---- dry run ---- */

static int count_table(tg_engine *eng, const char *t, int audit, tg_table_counts *c) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = &tg__sqlite;
    const char *ID = audit ? a->audit_logs.id : a->id_column;
    const char *T = audit ? a->audit_logs.tenant : a->tenant_column;
    const char *W = audit ? a->audit_logs.workspace : a->workspace_column;
    int nn;
    c->has_column = tg__column(eng->db, t, W, &nn);
    /* audit entries without a tenant belong to a workspace or the system: never unbound */
    tg__buf scope = {0}, unbound = {0}, sql = {0};
    if (audit)
        tg__sqlf(&scope, d, " AND r.%I IS NOT NULL", T);
    if (c->has_column)
        tg__sqlf(&unbound, d, "r.%I IS NULL%s", W, tg__buf_str(&scope));
    else
        tg__sqlf(&unbound, d, "1%s", tg__buf_str(&scope));
    tg__sqlf(&sql, d,
             "SELECT count(*), coalesce(sum(%s), 0), "
             "coalesce(sum(%s AND t.%I IS NOT NULL), 0), "
             "coalesce(sum(%s AND t.%I IS NULL), 0), ",
             tg__buf_str(&unbound), tg__buf_str(&unbound), a->tenants.id, tg__buf_str(&unbound),
             a->tenants.id);
    if (c->has_column)
        tg__sqlf(&sql, d,
                 "coalesce(sum(r.%I IS NOT NULL AND r.%I = t.%I), 0), "
                 "coalesce(sum(r.%I IS NOT NULL AND r.%I IS NOT t.%I%s), 0) ",
                 W, W, a->tenants.workspace, W, W, a->tenants.workspace, tg__buf_str(&scope));
    else
        tg__buf_add(&sql, "0, 0 ");
    tg__sqlf(&sql, d, "FROM %I AS r LEFT JOIN %I AS t ON t.%I = r.%I", t, a->tenants.table,
             a->tenants.id, T);
    sqlite3_stmt *st;
    int s = prepare(eng, &sql, &st);
    if (s == TG_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            c->rows = sqlite3_column_int64(st, 0);
            c->unbound = sqlite3_column_int64(st, 1);
            c->would_set = sqlite3_column_int64(st, 2);
            c->cannot_bind = sqlite3_column_int64(st, 3);
            c->correct = sqlite3_column_int64(st, 4);
            c->mismatched = sqlite3_column_int64(st, 5);
        }
        sqlite3_finalize(st);
        /* a few of the rows that cannot be bound, to look at */
        tg__buf_reset(&sql);
        tg__sqlf(&sql, d,
                 "SELECT r.%I FROM %I AS r WHERE %s AND NOT EXISTS (SELECT 1 FROM %I AS t WHERE "
                 "t.%I = r.%I) ORDER BY r.%I LIMIT 5",
                 ID, t, tg__buf_str(&unbound), a->tenants.table, a->tenants.id, T, ID);
        if ((s = prepare(eng, &sql, &st)) == TG_OK) {
            while (sqlite3_step(st) == SQLITE_ROW && c->n_samples < 5)
                c->samples[c->n_samples++] = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    tg__buf_free(&scope);
    tg__buf_free(&unbound);
    tg__buf_free(&sql);
    return s;
}

int tg_backfill_dry_run(tg_engine *eng, tg_backfill_plan **out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    *out = NULL;
    if (!eng->db)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    const tg_rules *r = &eng->rules->pub;
    const char *t[TG__MAX_TARGETS];
    size_t n = tg__targets(r, t, TG__MAX_TARGETS);
    tg_backfill_plan *p = calloc(1, sizeof *p);
    if (!p || !(p->tables = calloc(n + 1, sizeof *p->tables))) {
        free(p);
        return TG_NOMEM;
    }
    int st = sqlite3_exec(eng->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK ? TG_OK : TG_DB;
    for (size_t i = 0; i <= n && st == TG_OK; i++) {
        const char *table = i < n ? t[i] : r->app.audit_logs.table;
        if (i == n && (!r->app.audit_logs.tenant || !r->app.audit_logs.workspace))
            break;
        tg_table_counts *c = &p->tables[p->n_tables++];
        c->table = table;
        st = count_table(eng, table, i == n, c);
    }
    sqlite3_exec(eng->db, "COMMIT", NULL, NULL, NULL);
    if (st != TG_OK) {
        tg_backfill_plan_free(p);
        return st;
    }
    *out = p;
    return TG_OK;
}

void tg_backfill_plan_free(tg_backfill_plan *p) {
    if (!p)
        return;
    free(p->tables);
    free(p);
}

/* ---- queueing a run ---- */

static int insert_operation_run(tg_engine *eng, int64_t *op_id) {
    const tg_app *a = &eng->rules->pub.app;
    tg__buf sql = {0};
    tg__sqlf(&sql, &tg__sqlite, "INSERT INTO %I (%I, %I, %I, %I) VALUES ('tenantguard.backfill', "
                                "'queued', '{}', " NOW ")",
             a->operation_runs.table, a->operation_runs.type, a->operation_runs.status,
             a->operation_runs.summary, a->operation_runs.created_at);
    int st = tg__exec(eng, tg__buf_str(&sql), "cannot record the operation run");
    tg__buf_free(&sql);
    *op_id = sqlite3_last_insert_rowid(eng->db);
    return st;
}

int tg_backfill_start(tg_engine *eng, const tg_backfill_options *o, int64_t *run_id) {
    if (!eng || !run_id || eng->closed)
        return TG_MISUSE;
    *run_id = 0;
    if (!eng->db)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    const tg_rules *r = &eng->rules->pub;
    const tg_app *a = &r->app;
    double batch_ms = o && o->batch_ms > 0 ? o->batch_ms : 50;
    int pause_ms = o && o->pause_ms > 0 ? o->pause_ms : 0;
    int64_t batch_rows = o && o->batch_rows > 0 ? o->batch_rows : 1000;
    const char *t[TG__MAX_TARGETS];
    size_t n = tg__targets(r, t, TG__MAX_TARGETS);
    int nn;
    for (size_t i = 0; i < n; i++)
        if (!tg__column(eng->db, t[i], a->workspace_column, &nn))
            return tg__engine_fail(eng, TG_REFUSED,
                                   "the backfill needs phase 1 first: '%s' has no %s column "
                                   "(run add_columns)",
                                   t[i], a->workspace_column);
    int st = tg__meta_ensure(eng);
    if (st != TG_OK || (st = tg__begin(eng)) != TG_OK)
        return st;
    int64_t op_id = 0;
    sqlite3_stmt *q = NULL;
    if ((st = insert_operation_run(eng, &op_id)) != TG_OK)
        goto fail;
    if (sqlite3_prepare_v2(eng->db,
                           "INSERT INTO tenantguard_runs (kind, status, operation_run_id, batch_ms, "
                           "pause_ms, created_at) VALUES ('backfill', 'queued', ?1, ?2, ?3, " NOW ")",
                           -1, &q, NULL) != SQLITE_OK)
        goto db_fail;
    sqlite3_bind_int64(q, 1, op_id);
    sqlite3_bind_double(q, 2, batch_ms);
    sqlite3_bind_int(q, 3, pause_ms);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto db_fail;
    sqlite3_finalize(q);
    q = NULL;
    int64_t run = sqlite3_last_insert_rowid(eng->db);
    int64_t total = 0;
    int has_audit = a->audit_logs.tenant && a->audit_logs.workspace &&
                    tg__column(eng->db, a->audit_logs.table, a->audit_logs.workspace, &nn);
    if (sqlite3_prepare_v2(eng->db,
                           "INSERT INTO tenantguard_jobs (run_id, table_name, status, batch_rows, "
                           "rows_total, updated_at) VALUES (?1, ?2, 'queued', ?3, ?4, " NOW ")",
                           -1, &q, NULL) != SQLITE_OK)
        goto db_fail;
    for (size_t i = 0; i < n + (size_t)has_audit; i++) {
        const char *table = i < n ? t[i] : a->audit_logs.table;
        tg__buf sql = {0};
        tg__sqlf(&sql, &tg__sqlite, "SELECT count(*) FROM %I", table);
        int rc;
        int64_t rows = tg__count(eng->db, tg__buf_str(&sql), NULL, NULL, &rc);
        tg__buf_free(&sql);
        total += rows;
        sqlite3_bind_int64(q, 1, run);
        sqlite3_bind_text(q, 2, table, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 3, batch_rows);
        sqlite3_bind_int64(q, 4, rows);
        if (rc != SQLITE_OK || sqlite3_step(q) != SQLITE_DONE)
            goto db_fail;
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    q = NULL;
    char sqlbuf[160];
    snprintf(sqlbuf, sizeof sqlbuf, "UPDATE tenantguard_runs SET rows_total = %lld WHERE id = %lld",
             (long long)total, (long long)run);
    if ((st = tg__exec(eng, sqlbuf, "run")) != TG_OK)
        goto fail;
    char meta[200];
    snprintf(meta, sizeof meta,
             "{\"run\":%lld,\"operation_run\":%lld,\"tables\":%zu,\"rows\":%lld}", (long long)run,
             (long long)op_id, n + (size_t)has_audit, (long long)total);
    if ((st = tg__audit(eng, "tenantguard.backfill.queued", "backfill", meta)) != TG_OK)
        goto fail;
    if ((st = tg__commit(eng)) != TG_OK)
        goto fail;
    *run_id = run;
    tg__engine_fail(eng, TG_OK, "backfill run %lld queued: %zu tables, %lld rows to look at",
                    (long long)run, n + (size_t)has_audit, (long long)total);
    return TG_OK;
db_fail:
    st = tg__engine_fail(eng, TG_DB, "cannot queue the backfill: %s", sqlite3_errmsg(eng->db));
fail:
    sqlite3_finalize(q);
    tg__rollback(eng);
    return st;
}

/* ---- status and control ---- */

int tg_backfill_status(tg_engine *eng, int64_t run_id, tg_run_info *out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    memset(out, 0, sizeof *out);
    int st = tg__meta_ensure(eng);
    if (st != TG_OK)
        return st;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(eng->db,
                           "SELECT id, operation_run_id, status, rows_total, rows_done, rows_set, "
                           "rows_corrected, rows_unbound, batches, longest_batch_ms, seconds "
                           "FROM tenantguard_runs WHERE id = ?1 OR (?1 = 0 AND id = "
                           "(SELECT max(id) FROM tenantguard_runs))",
                           -1, &q, NULL) != SQLITE_OK)
        return tg__engine_fail(eng, TG_DB, "%s", sqlite3_errmsg(eng->db));
    sqlite3_bind_int64(q, 1, run_id);
    if (sqlite3_step(q) != SQLITE_ROW) {
        sqlite3_finalize(q);
        return tg__engine_fail(eng, TG_UNKNOWN, "no backfill run %lld", (long long)run_id);
    }
    out->id = sqlite3_column_int64(q, 0);
    out->operation_run_id = sqlite3_column_int64(q, 1);
    tg__buf_reset(&eng->err);
    tg__buf_add(&eng->err, (const char *)sqlite3_column_text(q, 2));
    out->status = tg__buf_str(&eng->err);
    out->rows_total = sqlite3_column_int64(q, 3);
    out->rows_done = sqlite3_column_int64(q, 4);
    out->rows_set = sqlite3_column_int64(q, 5);
    out->rows_corrected = sqlite3_column_int64(q, 6);
    out->rows_unbound = sqlite3_column_int64(q, 7);
    out->batches = sqlite3_column_int64(q, 8);
    out->longest_batch_ms = sqlite3_column_double(q, 9);
    out->seconds = sqlite3_column_double(q, 10);
    sqlite3_finalize(q);
    return TG_OK;
}

/* Records the run's state in the app's operation run. Inside the caller's transaction. */
static int sync_operation_run(tg_engine *eng, int64_t run) {
    const tg_app *a = &eng->rules->pub.app;
    tg__buf sql = {0};
    tg__sqlf(&sql, &tg__sqlite,
             "UPDATE %I SET %I = r.status, %I = json_object('run', r.id, 'rows_total', "
             "r.rows_total, 'rows_done', r.rows_done, 'rows_set', r.rows_set, 'rows_corrected', "
             "r.rows_corrected, 'rows_unbound', r.rows_unbound, 'batches', r.batches, "
             "'longest_batch_ms', r.longest_batch_ms), %I = r.started_at, %I = r.finished_at "
             "FROM tenantguard_runs AS r WHERE r.id = %lld AND %I.%I = r.operation_run_id",
             a->operation_runs.table, a->operation_runs.status, a->operation_runs.summary,
             a->operation_runs.started_at, a->operation_runs.finished_at, (long long)run,
             a->operation_runs.table, a->operation_runs.id);
    int st = tg__exec(eng, tg__buf_str(&sql), "cannot update the operation run");
    tg__buf_free(&sql);
    return st;
}

int tg_backfill_control(tg_engine *eng, int64_t run_id, const char *action) {
    if (!eng || !action || eng->closed)
        return TG_MISUSE;
    tg_run_info info;
    int st = tg_backfill_status(eng, run_id, &info);
    if (st != TG_OK)
        return st;
    const char *from, *to;
    if (strcmp(action, "pause") == 0) {
        from = "'queued','running'";
        to = "paused";
    } else if (strcmp(action, "resume") == 0) {
        from = "'paused'";
        to = "queued";
    } else if (strcmp(action, "cancel") == 0) {
        from = "'queued','running','paused'";
        to = "cancelled";
    } else {
        return tg__engine_fail(eng, TG_UNKNOWN, "unknown action '%s' (pause, resume, cancel)",
                               action);
    }
    if ((st = tg__begin(eng)) != TG_OK)
        return st;
    char sql[300];
    snprintf(sql, sizeof sql,
             "UPDATE tenantguard_runs SET status = '%s'%s WHERE id = %lld AND status IN (%s)", to,
             strcmp(to, "cancelled") == 0 ? ", finished_at = " NOW_P : "", (long long)info.id, from);
    st = tg__exec(eng, sql, action);
    int changed = sqlite3_changes(eng->db);
    if (st == TG_OK && !changed) {
        tg__rollback(eng);
        return tg__engine_fail(eng, TG_REFUSED, "run %lld is %s; cannot %s it", (long long)info.id,
                               info.status, action);
    }
    char what[64], meta[64];
    snprintf(what, sizeof what, "tenantguard.backfill.%s", action);
    snprintf(meta, sizeof meta, "{\"run\":%lld}", (long long)info.id);
    if (st == TG_OK)
        st = sync_operation_run(eng, info.id);
    if (st == TG_OK)
        st = tg__audit(eng, what, "backfill", meta);
    if (st == TG_OK)
        st = tg__commit(eng);
    if (st != TG_OK)
        tg__rollback(eng);
    else
        tg__engine_fail(eng, TG_OK, "run %lld: %s", (long long)info.id, to);
    return st;
}

/* ---- the worker ---- */

typedef struct job {
    int64_t id, run;
    char table[128];
    int audit;
    sqlite3_stmt *hi, *unbound, *correct_log, *correct, *set;
} job;

static void job_finalize(job *j) {
    sqlite3_finalize(j->hi);
    sqlite3_finalize(j->unbound);
    sqlite3_finalize(j->correct_log);
    sqlite3_finalize(j->correct);
    sqlite3_finalize(j->set);
    j->hi = j->unbound = j->correct_log = j->correct = j->set = NULL;
    j->id = 0;
}

/* The batch statements of one table: ?1 checkpoint (exclusive), ?2 upper bound (inclusive),
 * ?3 run, ?4 batch size (for hi). */
static int job_prepare(tg_engine *eng, job *j) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = &tg__sqlite;
    const char *t = j->table;
    const char *ID = j->audit ? a->audit_logs.id : a->id_column;
    const char *T = j->audit ? a->audit_logs.tenant : a->tenant_column;
    const char *W = j->audit ? a->audit_logs.workspace : a->workspace_column;
    tg__buf sql = {0}, tw = {0}, exists = {0};
    tg__sqlf(&tw, d, "(SELECT tt.%I FROM %I AS tt WHERE tt.%I = r.%I)", a->tenants.workspace,
             a->tenants.table, a->tenants.id, T);
    tg__sqlf(&exists, d, "EXISTS (SELECT 1 FROM %I AS tt WHERE tt.%I = r.%I)", a->tenants.table,
             a->tenants.id, T);
    int st = TG_OK;
    /* the batch's upper bound: the n-th id after the checkpoint, or the last one */
    tg__sqlf(&sql, d,
             "SELECT coalesce((SELECT %I FROM %I WHERE %I > ?1 ORDER BY %I LIMIT 1 OFFSET ?4 - 1), "
             "(SELECT max(%I) FROM %I WHERE %I > ?1)), (SELECT count(*) FROM (SELECT 1 FROM %I "
             "WHERE %I > ?1 ORDER BY %I LIMIT ?4))",
             ID, t, ID, ID, ID, t, ID, t, ID, ID);
    if ((st = prepare(eng, &sql, &j->hi)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    /* rows that cannot be bound: listed, never skipped silently (audit entries without a
     * tenant are not tenant-owned and need no workspace) */
    tg__sqlf(&sql, d,
             "INSERT OR IGNORE INTO tenantguard_unbound (run_id, table_name, row_id, tenant_id, "
             "reason) SELECT ?3, %L, r.%I, r.%I, 'tenant_missing' FROM %I AS r WHERE r.%I > ?1 "
             "AND r.%I <= ?2 AND r.%I IS NULL AND NOT %s",
             t, ID, T, t, ID, ID, W, tg__buf_str(&exists));
    if (j->audit) {
        tg__buf_reset(&sql);
        tg__sqlf(&sql, d,
                 "INSERT OR IGNORE INTO tenantguard_unbound (run_id, table_name, row_id, "
                 "tenant_id, reason) SELECT ?3, %L, r.%I, r.%I, 'tenant_missing' FROM %I AS r "
                 "WHERE r.%I > ?1 AND r.%I <= ?2 AND r.%I IS NULL AND r.%I IS NOT NULL AND NOT %s",
                 t, ID, T, t, ID, ID, W, T, tg__buf_str(&exists));
    }
    if ((st = prepare(eng, &sql, &j->unbound)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    /* a wrong workspace_id is corrected, and the old value kept in the run's list */
    tg__sqlf(&sql, d,
             "INSERT OR IGNORE INTO tenantguard_unbound (run_id, table_name, row_id, tenant_id, "
             "reason) SELECT ?3, %L, r.%I, r.%I, 'workspace_corrected_from_' || r.%I FROM %I AS "
             "r WHERE r.%I > ?1 AND r.%I <= ?2 AND r.%I IS NOT NULL AND %s AND r.%I IS NOT %s",
             t, ID, T, W, t, ID, ID, W, tg__buf_str(&exists), W, tg__buf_str(&tw));
    if ((st = prepare(eng, &sql, &j->correct_log)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    tg__sqlf(&sql, d,
             "UPDATE %I AS r SET %I = %s WHERE r.%I > ?1 AND r.%I <= ?2 AND r.%I IS NOT NULL AND %s "
             "AND r.%I IS NOT %s",
             t, W, tg__buf_str(&tw), ID, ID, W, tg__buf_str(&exists), W, tg__buf_str(&tw));
    if ((st = prepare(eng, &sql, &j->correct)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    tg__sqlf(&sql, d,
             "UPDATE %I AS r SET %I = %s WHERE r.%I > ?1 AND r.%I <= ?2 AND r.%I IS NULL AND %s",
             t, W, tg__buf_str(&tw), ID, ID, W, tg__buf_str(&exists));
    st = prepare(eng, &sql, &j->set);
done:
    tg__buf_free(&sql);
    tg__buf_free(&tw);
    tg__buf_free(&exists);
    return st;
}

static int64_t step_changes(sqlite3 *db, sqlite3_stmt *s, int64_t cp, int64_t hi, int64_t run,
                            int *rc) {
    sqlite3_bind_int64(s, 1, cp);
    sqlite3_bind_int64(s, 2, hi);
    if (sqlite3_bind_parameter_count(s) >= 3)
        sqlite3_bind_int64(s, 3, run);
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    if (r != SQLITE_DONE) {
        *rc = r;
        return 0;
    }
    return sqlite3_changes64(db);
}

/* Picks the next runnable job (outside any transaction). 0 when none. */
static int next_job(tg_engine *eng, job *j) {
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(eng->db,
                           "SELECT j.id, j.run_id, j.table_name FROM tenantguard_jobs j JOIN "
                           "tenantguard_runs r ON r.id = j.run_id WHERE j.status <> 'done' AND "
                           "r.status IN ('queued', 'running') ORDER BY j.run_id, j.id LIMIT 1",
                           -1, &q, NULL) != SQLITE_OK)
        return -1;
    int found = sqlite3_step(q) == SQLITE_ROW;
    if (found) {
        int64_t id = sqlite3_column_int64(q, 0);
        if (id != j->id) {
            job_finalize(j);
            j->id = id;
            j->run = sqlite3_column_int64(q, 1);
            snprintf(j->table, sizeof j->table, "%s", (const char *)sqlite3_column_text(q, 2));
            j->audit = strcmp(j->table, eng->rules->pub.app.audit_logs.table) == 0;
        }
    }
    sqlite3_finalize(q);
    return found;
}

/* Marks a finished job done and, when it was the run's last, finishes the run. Inside the
 * caller's transaction. */
static int finish_job(tg_engine *eng, job *j) {
    char sql[900];
    snprintf(sql, sizeof sql,
             "UPDATE tenantguard_jobs SET status = 'done', rows_total = max(rows_total, "
             "rows_done), updated_at = " NOW_P " WHERE id = %lld;"
             "UPDATE tenantguard_runs SET rows_total = (SELECT sum(rows_total) FROM "
             "tenantguard_jobs WHERE run_id = %lld) WHERE id = %lld;"
             "UPDATE tenantguard_runs SET status = CASE WHEN rows_unbound > 0 THEN "
             "'completed_with_errors' ELSE 'completed' END, finished_at = " NOW_P
             ", started_at = coalesce(started_at, " NOW_P ") WHERE id = %lld AND NOT EXISTS "
             "(SELECT 1 FROM tenantguard_jobs WHERE run_id = %lld AND status <> 'done');",
             (long long)j->id, (long long)j->run, (long long)j->run, (long long)j->run,
             (long long)j->run);
    int st = tg__exec(eng, sql, "finishing a job");
    int run_done = sqlite3_changes(eng->db) > 0;
    char meta[300];
    snprintf(meta, sizeof meta, "{\"run\":%lld,\"table\":\"%s\"}", (long long)j->run, j->table);
    if (st == TG_OK)
        st = tg__audit(eng, "tenantguard.backfill.table_done", j->table, meta);
    if (st == TG_OK)
        st = sync_operation_run(eng, j->run);
    if (st == TG_OK && run_done) {
        tg_run_info info;
        char status[32] = "?";
        if (tg_backfill_status(eng, j->run, &info) == TG_OK)
            snprintf(status, sizeof status, "%s", info.status);
        snprintf(meta, sizeof meta,
                 "{\"run\":%lld,\"status\":\"%s\",\"rows_set\":%lld,\"rows_corrected\":%lld,"
                 "\"rows_unbound\":%lld,\"batches\":%lld}",
                 (long long)j->run, status, (long long)info.rows_set,
                 (long long)info.rows_corrected, (long long)info.rows_unbound,
                 (long long)info.batches);
        st = tg__audit(eng, "tenantguard.backfill.completed", "backfill", meta);
    }
    return st;
}

/* One batch of job j in one transaction. *rows is 0 when the job had nothing left. */
static int run_batch(tg_engine *eng, job *j, tg_progress *p, double *ms_out, int64_t *rows) {
    sqlite3 *db = eng->db;
    *rows = 0;
    double t0 = now_s();
    int st = tg__begin(eng);
    if (st != TG_OK)
        return st;
    sqlite3_stmt *q = NULL;
    int rc = SQLITE_OK;
    /* the job's state as committed: the checkpoint is read inside the write lock */
    if (sqlite3_prepare_v2(db,
                           "SELECT j.status, j.checkpoint, j.batch_rows, r.status, r.batch_ms, "
                           "j.rows_done, j.rows_total, r.rows_done, r.rows_total FROM "
                           "tenantguard_jobs j JOIN tenantguard_runs r ON r.id = j.run_id "
                           "WHERE j.id = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        goto db_fail;
    sqlite3_bind_int64(q, 1, j->id);
    if (sqlite3_step(q) != SQLITE_ROW)
        goto db_fail;
    int job_done = strcmp((const char *)sqlite3_column_text(q, 0), "done") == 0;
    /* copied: the text belongs to q, which is finalized below */
    char run_status[32];
    snprintf(run_status, sizeof run_status, "%s", (const char *)sqlite3_column_text(q, 3));
    int runnable = strcmp(run_status, "queued") == 0 || strcmp(run_status, "running") == 0;
    int64_t cp = sqlite3_column_type(q, 1) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(q, 1);
    int64_t size = sqlite3_column_int64(q, 2);
    double target_ms = sqlite3_column_double(q, 4);
    p->table_done = sqlite3_column_int64(q, 5);
    p->table_total = sqlite3_column_int64(q, 6);
    p->run_done = sqlite3_column_int64(q, 7);
    p->run_total = sqlite3_column_int64(q, 8);
    sqlite3_finalize(q);
    q = NULL;
    if (job_done || !runnable) {
        tg__rollback(eng);
        return TG_OK;
    }
    if (!j->hi && (st = job_prepare(eng, j)) != TG_OK)
        goto fail;
    sqlite3_bind_int64(j->hi, 1, cp);
    sqlite3_bind_int64(j->hi, 4, size);
    if (sqlite3_step(j->hi) != SQLITE_ROW) {
        sqlite3_reset(j->hi);
        goto db_fail;
    }
    int none = sqlite3_column_type(j->hi, 0) == SQLITE_NULL;
    int64_t hi = sqlite3_column_int64(j->hi, 0);
    int64_t n = sqlite3_column_int64(j->hi, 1);
    sqlite3_reset(j->hi);
    if (none) {
        if ((st = finish_job(eng, j)) != TG_OK || (st = tg__commit(eng)) != TG_OK)
            goto fail;
        return TG_OK;
    }
    int64_t unbound = step_changes(db, j->unbound, cp, hi, j->run, &rc);
    step_changes(db, j->correct_log, cp, hi, j->run, &rc);
    int64_t corrected = step_changes(db, j->correct, cp, hi, j->run, &rc);
    int64_t set = step_changes(db, j->set, cp, hi, j->run, &rc);
    if (rc != SQLITE_OK)
        goto db_fail;
    double ms = (now_s() - t0) * 1000;
    /* the next size aims at half the target time (the commit, cold pages and the odd slow
     * batch fit in the other half), growing by at most 1.25x and shrinking by up to 4x */
    double factor = ms > 0.01 ? 0.5 * target_ms / ms : 1.25;
    factor = factor > 1.25 ? 1.25 : factor < 0.25 ? 0.25 : factor;
    int64_t next = (int64_t)((double)size * factor);
    next = next < 50 ? 50 : next > 200000 ? 200000 : next;
    char sql[900];
    snprintf(sql, sizeof sql,
             "UPDATE tenantguard_jobs SET checkpoint = %lld, batch_rows = %lld, status = "
             "'running', rows_done = rows_done + %lld, rows_set = rows_set + %lld, "
             "rows_corrected = rows_corrected + %lld, rows_unbound = rows_unbound + %lld, "
             "updated_at = " NOW_P " WHERE id = %lld;"
             "UPDATE tenantguard_runs SET status = 'running', started_at = coalesce(started_at, "
             NOW_P "), rows_done = rows_done + %lld, rows_set = rows_set + %lld, rows_corrected = "
             "rows_corrected + %lld, rows_unbound = rows_unbound + %lld, batches = batches + 1, "
             "longest_batch_ms = max(longest_batch_ms, %.3f), seconds = seconds + %.6f WHERE id = "
             "%lld;"
             "INSERT INTO tenantguard_batches (job_id, from_id, to_id, rows, rows_set, ms, worker, "
             "at) VALUES (%lld, %lld, %lld, %lld, %lld, %.3f, '%d', " NOW_P ");",
             (long long)hi, (long long)next, (long long)n, (long long)set, (long long)corrected,
             (long long)unbound, (long long)j->id, (long long)n, (long long)set,
             (long long)corrected, (long long)unbound, ms, ms / 1000, (long long)j->run,
             (long long)j->id, cp == INT64_MIN ? (long long)-1 : (long long)cp, (long long)hi,
             (long long)n, (long long)set, ms, (int)getpid());
    if ((st = tg__exec(eng, sql, "advancing the checkpoint")) != TG_OK)
        goto fail;
    if (strcmp(run_status, "queued") == 0 && (st = sync_operation_run(eng, j->run)) != TG_OK)
        goto fail;
    if ((st = tg__commit(eng)) != TG_OK)
        goto fail;
    *ms_out = (now_s() - t0) * 1000;
    *rows = n;
    p->table_done += n;
    p->run_done += n;
    p->batch_rows = n;
    p->next_batch_rows = next;
    p->batch_ms = *ms_out;
    return TG_OK;
db_fail:
    st = tg__engine_fail(eng, (rc & 0xff) == SQLITE_BUSY ? TG_BUSY : TG_DB, "backfill batch on '%s': %s",
                         j->table, sqlite3_errmsg(db));
fail:
    sqlite3_finalize(q);
    tg__rollback(eng);
    return st;
}

/* The worker proper; tg_work keeps the engine alive and marks it working around it. */
static int work(tg_engine *eng, const tg_work_options *o, tg_work_result *out) {
    tg_work_result res = {0};
    int st = tg__meta_ensure(eng);
    if (st != TG_OK)
        return st;
    double start = now_s(), busy_s = 0;
    job j = {0};
    /* WAL checkpoints happen between batches, not inside a batch's COMMIT, so no batch
     * pays for one; the connection's own setting is restored afterwards */
    int autockpt = (int)tg__count(eng->db, "PRAGMA wal_autocheckpoint", NULL, NULL, &(int){0});
    sqlite3_wal_autocheckpoint(eng->db, 0);
    int busy_retries = 0;
    for (;;) {
        if (o && o->max_seconds > 0 && now_s() - start >= o->max_seconds)
            break;
        if (o && o->max_batches > 0 && res.batches >= o->max_batches)
            break;
        int found = next_job(eng, &j);
        if (found < 0) {
            st = tg__engine_fail(eng, TG_DB, "%s", sqlite3_errmsg(eng->db));
            break;
        }
        if (!found) {
            res.idle = 1;
            break;
        }
        tg_progress p = {0};
        p.run_id = j.run;
        p.table = j.table;
        double ms = 0;
        int64_t rows = 0;
        st = run_batch(eng, &j, &p, &ms, &rows);
        if (st == TG_BUSY && busy_retries < 20) {
            sleep_ms(10 << (busy_retries < 6 ? busy_retries : 6));
            busy_retries++;
            continue;
        }
        busy_retries = 0;
        if (st != TG_OK)
            break;
        if (rows == 0)
            continue; /* a finished job; the next one */
        res.batches++;
        res.rows += rows;
        busy_s += ms / 1000;
        if (ms > res.longest_batch_ms)
            res.longest_batch_ms = ms;
        p.rows_per_second = busy_s > 0 ? (double)res.rows / busy_s : 0;
        if (o && o->progress && o->progress(o->ud, &p))
            break;
        if (eng->closed) { /* by the progress callback: stop before touching it again */
            st = tg__engine_fail(eng, TG_MISUSE, "the engine was closed during tg_work");
            break;
        }
        char q[100];
        snprintf(q, sizeof q, "SELECT pause_ms FROM tenantguard_runs WHERE id = %lld",
                 (long long)j.run);
        int rc;
        sleep_ms((int)tg__count(eng->db, q, NULL, NULL, &rc));
        int wal_frames = 0;
        sqlite3_wal_checkpoint_v2(eng->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal_frames, NULL);
    }
    job_finalize(&j);
    sqlite3_wal_autocheckpoint(eng->db, autockpt > 0 ? autockpt : 1000);
    if (out)
        *out = res;
    if (st == TG_OK)
        tg__engine_fail(eng, TG_OK, "worker: %lld batches, %lld rows%s", (long long)res.batches,
                        (long long)res.rows, res.idle ? ", nothing left to do" : "");
    return st;
}

int tg_work(tg_engine *eng, const tg_work_options *o, tg_work_result *out) {
    if (!eng || eng->closed)
        return TG_MISUSE;
    if (!eng->db)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    if (eng->working)
        return tg__engine_fail(eng, TG_BUSY, "the engine is busy: its worker is already running "
                                             "(tg_work called from its progress callback?)");
    /* a close from the progress callback only drops the caller's reference: the engine is
     * freed when this returns, never under the worker */
    eng->refs++;
    eng->working = 1;
    int st = work(eng, o, out);
    eng->working = 0;
    tg__engine_release(eng);
    return st;
}
