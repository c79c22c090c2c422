/* Phase 2, the backfill: a dry run that only counts, a queued run with one durable job per
 * table, and the worker that runs jobs in keyset batches. Each batch is one
 * BEGIN IMMEDIATE transaction that binds its rows, lists the rows it cannot bind, and
 * advances the job's checkpoint and the run's counters together, so a batch is applied
 * exactly once whoever runs it and wherever a worker dies. The batch size adapts to a
 * target time, so the write lock is never held long. */
#include "rollout.h"
#include "pg.h"
#include "sql.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* the current time, pasted only into SQL literals that are no format */
#define NOW TG__SQL_NOW

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

/* cols NULL: the app's audit log */
static int count_table(tg_engine *eng, const char *t, const tg_columns *cols,
                       tg_table_counts *c) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = &tg__sqlite;
    int audit = cols == NULL;
    const char *T = audit ? a->audit_logs.tenant : cols->tenant;
    const char *W = audit ? a->audit_logs.workspace : cols->workspace;
    int nn;
    tg__rowkey key;
    int s = tg__rowkey_of(eng, t, audit ? a->audit_logs.id : cols->id, &key);
    if (s != TG_OK)
        return s;
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
    s = prepare(eng, &sql, &st);
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
        /* a few of the rows that cannot be bound, to look at (by an integer key only) */
        tg__buf_reset(&sql);
        tg__buf label = {0}, order = {0};
        tg__rowkey_label(&key, "r", &label);
        tg__rowkey_list(&key, "r", &order);
        tg__sqlf(&sql, d,
                 "SELECT %s FROM %I AS r WHERE %s AND NOT EXISTS (SELECT 1 FROM %I AS t WHERE "
                 "t.%I = r.%I) ORDER BY %s LIMIT 5",
                 tg__buf_str(&label), t, tg__buf_str(&unbound), a->tenants.table, a->tenants.id,
                 T, key.id_key ? tg__buf_str(&label) : tg__buf_str(&order));
        tg__buf_free(&label);
        tg__buf_free(&order);
        if ((s = prepare(eng, &sql, &st)) == TG_OK) {
            while (sqlite3_step(st) == SQLITE_ROW && c->n_samples < 5)
                if (sqlite3_column_type(st, 0) == SQLITE_INTEGER)
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
    if (eng->store && !eng->db)
        return tg__backfill_dry_run_pg(eng, out);
    if (tg__engine_sqlite(eng, "the backfill") != TG_OK)
        return TG_MISUSE;
    const tg_rules *r = &eng->rules->pub;
    tg__target t[TG__MAX_TARGETS];
    size_t n = tg__targets(r, t, TG__MAX_TARGETS);
    const char *audit = tg__app_audit(eng);
    tg_backfill_plan *p = calloc(1, sizeof *p);
    if (!p || !(p->tables = calloc(n + 1, sizeof *p->tables))) {
        free(p);
        return TG_NOMEM;
    }
    /* one snapshot for every count (joining the caller's read snapshot, if any) */
    int st = tg__engine_read_begin(eng), began = st == TG_OK;
    for (size_t i = 0; i <= n && st == TG_OK; i++) {
        const char *table = i < n ? t[i].table : audit;
        if (i == n && (!audit || !r->app.audit_logs.tenant || !r->app.audit_logs.workspace))
            break;
        tg_table_counts *c = &p->tables[p->n_tables++];
        c->table = table;
        st = count_table(eng, table, i < n ? t[i].cols : NULL, c);
    }
    if (began)
        (void)tg__engine_read_end(eng);
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

/* The run in the app's operation runs; *op_id 0 when the app keeps none (the run is then
 * recorded in tenantguard_runs only). */
static int insert_operation_run(tg_engine *eng, int64_t *op_id) {
    const tg_app *a = &eng->rules->pub.app;
    const char *runs = tg__app_runs(eng);
    *op_id = 0;
    if (!runs)
        return TG_OK;
    tg__buf sql = {0};
    tg__sqlf(&sql, &tg__sqlite,
             "INSERT INTO %I (%I, %I, %I, %I) VALUES ('tenantguard.backfill', 'queued', '{}', %s)",
             runs, a->operation_runs.type, a->operation_runs.status,
             a->operation_runs.summary, a->operation_runs.created_at, NOW);
    int st = tg__exec(eng, tg__buf_str(&sql), "cannot record the operation run");
    tg__buf_free(&sql);
    *op_id = sqlite3_last_insert_rowid(eng->db);
    return st;
}

int tg_backfill_start(tg_engine *eng, const tg_backfill_options *o, int64_t *run_id) {
    if (!eng || !run_id || eng->closed)
        return TG_MISUSE;
    *run_id = 0;
    if (eng->store && !eng->db)
        return tg__backfill_start_pg(eng, o, run_id);
    if (tg__engine_sqlite(eng, "the backfill") != TG_OK)
        return TG_MISUSE;
    if (tg__engine_writable(eng, "backfill") != TG_OK)
        return TG_MISUSE;
    const tg_rules *r = &eng->rules->pub;
    const tg_app *a = &r->app;
    double batch_ms = o && o->batch_ms > 0 ? o->batch_ms : 50;
    int pause_ms = o && o->pause_ms > 0 ? o->pause_ms : 0;
    int64_t batch_rows = o && o->batch_rows > 0 ? o->batch_rows : 1000;
    tg__target t[TG__MAX_TARGETS];
    size_t n = tg__targets(r, t, TG__MAX_TARGETS);
    int nn;
    for (size_t i = 0; i < n; i++)
        if (!tg__column(eng->db, t[i].table, t[i].cols->workspace, &nn))
            return tg__engine_fail(eng, TG_REFUSED,
                                   "the backfill needs phase 1 first: '%s' has no %s column "
                                   "(run add_columns)",
                                   t[i].table, t[i].cols->workspace);
    /* a table whose rows the worker cannot walk is refused before anything is queued */
    for (size_t i = 0; i < n; i++) {
        tg__rowkey key;
        int ks = tg__rowkey_of(eng, t[i].table, t[i].cols->id, &key);
        if (ks != TG_OK)
            return ks;
    }
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
    if (op_id)
        sqlite3_bind_int64(q, 1, op_id);
    sqlite3_bind_double(q, 2, batch_ms);
    sqlite3_bind_int(q, 3, pause_ms);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto db_fail;
    sqlite3_finalize(q);
    q = NULL;
    int64_t run = sqlite3_last_insert_rowid(eng->db);
    int64_t total = 0;
    const char *audit = tg__app_audit(eng);
    int has_audit = audit && a->audit_logs.tenant && a->audit_logs.workspace &&
                    tg__column(eng->db, audit, a->audit_logs.workspace, &nn);
    if (sqlite3_prepare_v2(eng->db,
                           "INSERT INTO tenantguard_jobs (run_id, table_name, status, batch_rows, "
                           "rows_total, updated_at) VALUES (?1, ?2, 'queued', ?3, ?4, " NOW ")",
                           -1, &q, NULL) != SQLITE_OK)
        goto db_fail;
    for (size_t i = 0; i < n + (size_t)has_audit; i++) {
        const char *table = i < n ? t[i].table : audit;
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
    if (sqlite3_prepare_v2(eng->db, "UPDATE tenantguard_runs SET rows_total = ?1 WHERE id = ?2",
                           -1, &q, NULL) != SQLITE_OK)
        goto db_fail;
    sqlite3_bind_int64(q, 1, total);
    sqlite3_bind_int64(q, 2, run);
    if (sqlite3_step(q) != SQLITE_DONE)
        goto db_fail;
    sqlite3_finalize(q);
    q = NULL;
    char meta[200];
    if (op_id)
        snprintf(meta, sizeof meta,
                 "{\"run\":%lld,\"operation_run\":%lld,\"tables\":%zu,\"rows\":%lld}",
                 (long long)run, (long long)op_id, n + (size_t)has_audit, (long long)total);
    else
        snprintf(meta, sizeof meta, "{\"run\":%lld,\"tables\":%zu,\"rows\":%lld}",
                 (long long)run, n + (size_t)has_audit, (long long)total);
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

/* The status as one of the library's own strings, valid for the program's lifetime: never a
 * pointer into a statement or into the engine's message buffer, which the next call (or the
 * very message that quotes the status) reuses. */
static const char *run_status_name(const char *s) {
    static const char *const known[] = {"queued",    "running",   "paused",
                                        "cancelled", "completed", "completed_with_errors"};
    for (size_t i = 0; s && i < sizeof known / sizeof *known; i++)
        if (strcmp(s, known[i]) == 0)
            return known[i];
    return "unknown";
}

int tg_backfill_status(tg_engine *eng, int64_t run_id, tg_run_info *out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    memset(out, 0, sizeof *out);
    if (eng->store && !eng->db)
        return tg__backfill_status_pg(eng, run_id, out);
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
        if (run_id == 0) /* "the latest": say so, never name a run the caller did not */
            return tg__engine_fail(eng, TG_UNKNOWN, "no backfill run has been queued yet");
        return tg__engine_fail(eng, TG_UNKNOWN, "no backfill run %lld", (long long)run_id);
    }
    out->id = sqlite3_column_int64(q, 0);
    out->operation_run_id = sqlite3_column_int64(q, 1);
    out->status = run_status_name((const char *)sqlite3_column_text(q, 2));
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
    const char *runs = tg__app_runs(eng);
    if (!runs)
        return TG_OK; /* tenantguard_runs is the only record */
    tg__buf sql = {0};
    tg__sqlf(&sql, &tg__sqlite,
             "UPDATE %I SET %I = r.status, %I = json_object('run', r.id, 'rows_total', "
             "r.rows_total, 'rows_done', r.rows_done, 'rows_set', r.rows_set, 'rows_corrected', "
             "r.rows_corrected, 'rows_unbound', r.rows_unbound, 'batches', r.batches, "
             "'longest_batch_ms', r.longest_batch_ms), %I = r.started_at, %I = r.finished_at "
             "FROM tenantguard_runs AS r WHERE r.id = ?1 AND %I.%I = r.operation_run_id",
             runs, a->operation_runs.status, a->operation_runs.summary,
             a->operation_runs.started_at, a->operation_runs.finished_at, runs,
             a->operation_runs.id);
    sqlite3_stmt *q;
    int st = prepare(eng, &sql, &q);
    tg__buf_free(&sql);
    if (st != TG_OK)
        return st;
    sqlite3_bind_int64(q, 1, run);
    if (sqlite3_step(q) != SQLITE_DONE)
        st = tg__engine_fail(eng, TG_DB, "cannot update the operation run: %s",
                             sqlite3_errmsg(eng->db));
    sqlite3_finalize(q);
    return st;
}

int tg__control_transition(tg_engine *eng, const char *action, const char *from[3],
                           const char **to) {
    from[0] = from[1] = from[2] = NULL;
    if (strcmp(action, "pause") == 0) {
        from[0] = "queued";
        from[1] = "running";
        *to = "paused";
    } else if (strcmp(action, "resume") == 0) {
        from[0] = "paused";
        *to = "queued";
    } else if (strcmp(action, "cancel") == 0) {
        from[0] = "queued";
        from[1] = "running";
        from[2] = "paused";
        *to = "cancelled";
    } else {
        return tg__engine_fail(eng, TG_UNKNOWN, "unknown action '%s' (pause, resume, cancel)",
                               action);
    }
    return TG_OK;
}

int tg_backfill_control(tg_engine *eng, int64_t run_id, const char *action) {
    if (!eng || !action || eng->closed)
        return TG_MISUSE;
    if (tg__engine_writable(eng, "backfill control") != TG_OK)
        return TG_MISUSE;
    const int pg = eng->store && !eng->db;
    tg_run_info info;
    int st = tg_backfill_status(eng, run_id, &info);
    if (st != TG_OK)
        return st;
    const char *from[3], *to = NULL;
    if ((st = tg__control_transition(eng, action, from, &to)) != TG_OK)
        return st;
    if ((st = tg__begin(eng)) != TG_OK)
        return st;
    /* $2 the new status, $3 .. $5 the statuses it may come from. On PostgreSQL the run's row
     * lock orders this with the batches in flight: a batch that committed first is counted;
     * one that claims its job after sees the new status */
    const tg__dialect *d = eng->store->dialect;
    tg__buf sql = {0};
    tg__sqlf(&sql, d,
             "UPDATE tenantguard_runs SET status = CAST(%P AS text), finished_at = CASE WHEN "
             "%P = 'cancelled' THEN %s ELSE finished_at END WHERE id = %P AND status IN (%P, "
             "%P, %P)",
             2, 2, d->now, 1, 3, 4, 5);
    tg__stmt *q = NULL;
    int64_t changed = 0;
    if (sql.oom || tg__st_prepare_once(eng->store, tg__buf_str(&sql), &q) != TG__ST_OK) {
        st = tg__engine_fail(eng, TG_DB, "%s: %s", action, tg__db_errmsg(eng->store));
    } else {
        tg__st_bind_int64(q, 1, info.id);
        tg__st_bind_str(q, 2, to);
        for (int i = 0; i < 3; i++)
            tg__st_bind_str(q, 3 + i, from[i]); /* NULL binds NULL */
        if (tg__st_step(q) == TG__ST_DONE)
            changed = tg__db_changes(eng->store);
        else
            st = tg__engine_fail(eng, TG_DB, "%s: %s", action, tg__db_errmsg(eng->store));
    }
    tg__st_finalize(q);
    tg__buf_free(&sql);
    if (st == TG_OK && !changed) {
        tg__rollback(eng);
        /* the status may have moved since it was read (another worker): say the current one */
        tg_run_info now;
        const char *status =
            tg_backfill_status(eng, info.id, &now) == TG_OK ? now.status : info.status;
        return tg__engine_fail(eng, TG_REFUSED, "run %lld is %s; cannot %s it", (long long)info.id,
                               status, action);
    }
    char what[64], meta[64];
    snprintf(what, sizeof what, "tenantguard.backfill.%s", action);
    snprintf(meta, sizeof meta, "{\"run\":%lld}", (long long)info.id);
    if (st == TG_OK)
        st = pg ? tg__sync_operation_run_pg(eng, info.id) : sync_operation_run(eng, info.id);
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

/* A job walks its table in the order of the table's row key (tg__rowkey: the rowid, or the
 * primary key of a WITHOUT ROWID table, whatever its types). A batch is the key range
 * [lo, hi]: lo the first key after the checkpoint (the first key of all for the first batch,
 * so no key is below the walk's start), hi the n-th key from lo or the last one. The
 * checkpoint, hi of the last batch, is kept with its types in tenantguard_checkpoints. Each
 * batch takes at least one row, so the walk always ends. */
typedef struct job {
    int64_t id, run;
    char table[128];
    int audit;
    const tg_columns *cols; /* the table's columns in the rules; NULL for the audit log */
    tg__rowkey key;
    /* the bounds (from the start, after the checkpoint) and the batch statements: ?1..?m lo,
     * ?m+1..?2m hi, ?2m+1 the run */
    sqlite3_stmt *first, *next, *unbound, *correct_log, *set;
    /* the bookkeeping of every batch, prepared once per job: its state, its checkpoint
     * read and written, the job's and the run's counters, the batch's row */
    sqlite3_stmt *state, *ck_read, *ck_write, *job_upd, *run_upd, *batch_ins;
    double commit_ms; /* the last batch's COMMIT, counted in the next batch's size */
} job;

static void job_finalize(job *j) {
    sqlite3_finalize(j->first);
    sqlite3_finalize(j->next);
    sqlite3_finalize(j->unbound);
    sqlite3_finalize(j->correct_log);
    sqlite3_finalize(j->set);
    j->first = j->next = j->unbound = j->correct_log = j->set = NULL;
    sqlite3_stmt **keep[] = {&j->state, &j->ck_read, &j->ck_write, &j->job_upd, &j->run_upd,
                             &j->batch_ins};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        sqlite3_finalize(*keep[i]);
        *keep[i] = NULL;
    }
    j->commit_ms = 0;
    j->id = 0;
}

/* *st prepared once (the job keeps it); reset, with its bindings cleared, for another use */
static int cached(sqlite3 *db, sqlite3_stmt **st, const char *sql) {
    if (*st) {
        sqlite3_reset(*st);
        sqlite3_clear_bindings(*st);
        return SQLITE_OK;
    }
    return sqlite3_prepare_v2(db, sql, -1, st, NULL);
}

/* "(r.k1, ...) <op> (?from, ...)" */
static void key_cmp(const tg__rowkey *k, const char *op, int from, tg__buf *b) {
    tg__buf_add(b, "(");
    tg__rowkey_list(k, "r", b);
    tg__sqlf(b, &tg__sqlite, ") %s (", op);
    for (int i = 0; i < k->n; i++)
        tg__sqlf(b, &tg__sqlite, "%s?%d", i ? ", " : "", from + i);
    tg__buf_add(b, ")");
}

/* The bounds of the next batch, one row each: (0, lo...), (1, n-th key...), (2, last key...),
 * (3, rows in the batch, NULL...). `after`: only keys after the checkpoint ?1..?m. The batch
 * size is ?m+1. */
static void bounds_sql(const job *j, int after, tg__buf *b) {
    const tg__rowkey *k = &j->key;
    tg__buf keys = {0}, asc = {0}, desc = {0}, where = {0};
    tg__rowkey_list(k, "r", &keys);
    for (int i = 0; i < k->n; i++) {
        tg__sqlf(&asc, &tg__sqlite, "%sr.%I", i ? ", " : "", k->keys[i]);
        tg__sqlf(&desc, &tg__sqlite, "%sr.%I DESC", i ? ", " : "", k->keys[i]);
    }
    if (after) {
        tg__buf_add(&where, " WHERE ");
        key_cmp(k, ">", 1, &where);
    }
    const char *K = tg__buf_str(&keys), *W = tg__buf_str(&where), *A = tg__buf_str(&asc);
    int L = k->n + 1;
    tg__sqlf(b, &tg__sqlite,
             "SELECT 0, * FROM (SELECT %s FROM %I AS r%s ORDER BY %s LIMIT 1) "
             "UNION ALL SELECT 1, * FROM (SELECT %s FROM %I AS r%s ORDER BY %s LIMIT 1 OFFSET "
             "?%d - 1) "
             "UNION ALL SELECT 2, * FROM (SELECT %s FROM %I AS r%s ORDER BY %s LIMIT 1) "
             "UNION ALL SELECT 3, count(*)",
             K, j->table, W, A, K, j->table, W, A, L, K, j->table, W, tg__buf_str(&desc));
    for (int i = 1; i < k->n; i++)
        tg__buf_add(b, ", NULL");
    tg__sqlf(b, &tg__sqlite, " FROM (SELECT 1 FROM %I AS r%s ORDER BY %s LIMIT ?%d)", j->table, W,
             A, L);
    tg__buf_free(&keys);
    tg__buf_free(&asc);
    tg__buf_free(&desc);
    tg__buf_free(&where);
}

/* The batch statements of one table (see job). */
static int job_prepare(tg_engine *eng, job *j) {
    const tg_app *a = &eng->rules->pub.app;
    const tg__dialect *d = &tg__sqlite;
    const char *t = j->table;
    if (!j->audit && !j->cols)
        return tg__engine_fail(eng, TG_REFUSED,
                               "backfill job on '%s': the rules no longer name this table; "
                               "cancel the run and queue a new one",
                               t);
    const char *T = j->audit ? a->audit_logs.tenant : j->cols->tenant;
    const char *W = j->audit ? a->audit_logs.workspace : j->cols->workspace;
    int st = tg__rowkey_of(eng, t, j->audit ? a->audit_logs.id : j->cols->id, &j->key);
    if (st != TG_OK)
        return st;
    int m = j->key.n, RUN = 2 * m + 1;
    tg__buf sql = {0}, exists = {0}, range = {0}, label = {0};
    tg__sqlf(&exists, d, "EXISTS (SELECT 1 FROM %I AS tt WHERE tt.%I = r.%I)", a->tenants.table,
             a->tenants.id, T);
    key_cmp(&j->key, ">=", 1, &range);
    tg__buf_add(&range, " AND ");
    key_cmp(&j->key, "<=", m + 1, &range);
    tg__rowkey_label(&j->key, "r", &label);
    const char *R = tg__buf_str(&range), *LB = tg__buf_str(&label);
    bounds_sql(j, 0, &sql);
    if ((st = prepare(eng, &sql, &j->first)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    bounds_sql(j, 1, &sql);
    if ((st = prepare(eng, &sql, &j->next)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    /* a wrong workspace_id is corrected, and the old value kept in the run's list; run
     * before the UPDATE, which overwrites it. The join is an inner loop over the tenants'
     * key, taken only for the rows that have a workspace_id already. */
    tg__sqlf(&sql, d,
             "INSERT OR IGNORE INTO tenantguard_unbound (run_id, table_name, row_id, tenant_id, "
             "reason) SELECT ?%d, %L, %s, r.%I, 'workspace_corrected_from_' || r.%I FROM %I AS "
             "r CROSS JOIN %I AS tt ON tt.%I = r.%I WHERE %s AND r.%I IS NOT NULL AND r.%I IS "
             "NOT tt.%I",
             RUN, t, LB, T, W, t, a->tenants.table, a->tenants.id, T, R, W, W,
             a->tenants.workspace);
    if ((st = prepare(eng, &sql, &j->correct_log)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    /* one UPDATE ... FROM the tenants binds the unbound rows and corrects the wrong ones,
     * with one lookup of the tenant per row, as a hand-written backfill would */
    tg__sqlf(&sql, d,
             "UPDATE %I AS r SET %I = tt.%I FROM %I AS tt WHERE tt.%I = r.%I AND %s AND r.%I IS "
             "NOT tt.%I",
             t, W, a->tenants.workspace, a->tenants.table, a->tenants.id, T, R, W,
             a->tenants.workspace);
    if ((st = prepare(eng, &sql, &j->set)) != TG_OK)
        goto done;
    tg__buf_reset(&sql);
    /* rows that cannot be bound: listed, never skipped silently (audit entries without a
     * tenant are not tenant-owned and need no workspace). Run after the UPDATE, so the
     * tenant is looked up only for the rows still without a workspace. */
    tg__sqlf(&sql, d,
             "INSERT OR IGNORE INTO tenantguard_unbound (run_id, table_name, row_id, tenant_id, "
             "reason) SELECT ?%d, %L, %s, r.%I, 'tenant_missing' FROM %I AS r WHERE %s AND r.%I "
             "IS NULL AND NOT %s",
             RUN, t, LB, T, t, R, W, tg__buf_str(&exists));
    if (j->audit)
        tg__sqlf(&sql, d, " AND r.%I IS NOT NULL", T);
    st = prepare(eng, &sql, &j->unbound);
done:
    tg__buf_free(&sql);
    tg__buf_free(&exists);
    tg__buf_free(&range);
    tg__buf_free(&label);
    return st;
}

/* Runs one batch statement over [lo, hi]; its changes, or 0 with *rc set on failure. */
static int64_t step_changes(sqlite3 *db, sqlite3_stmt *s, const job *j, sqlite3_value **lo,
                            sqlite3_value **hi, int *rc) {
    int m = j->key.n;
    for (int i = 0; i < m; i++) {
        sqlite3_bind_value(s, 1 + i, lo[i]);
        sqlite3_bind_value(s, 1 + m + i, hi[i]);
    }
    if (sqlite3_bind_parameter_count(s) >= 2 * m + 1)
        sqlite3_bind_int64(s, 2 * m + 1, j->run);
    int r = sqlite3_step(s);
    sqlite3_reset(s);
    if (r != SQLITE_DONE) {
        *rc = r;
        return 0;
    }
    return sqlite3_changes64(db);
}

static void free_values(sqlite3_value **v, int n) {
    for (int i = 0; i < n; i++) {
        sqlite3_value_free(v[i]);
        v[i] = NULL;
    }
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
            tg__target t[TG__MAX_TARGETS];
            size_t n = tg__targets(&eng->rules->pub, t, TG__MAX_TARGETS);
            j->cols = NULL;
            for (size_t i = 0; i < n && !j->cols; i++)
                if (strcmp(t[i].table, j->table) == 0)
                    j->cols = t[i].cols;
            const char *audit = tg__app_audit(eng);
            j->audit = !j->cols && audit && strcmp(j->table, audit) == 0;
        }
    }
    sqlite3_finalize(q);
    return found;
}

/* Runs SQL with ?1..?n bound to the integers vals (no results). */
static int exec_ints(tg_engine *eng, const char *sql, const int64_t *vals, int n,
                     const char *what) {
    sqlite3_stmt *q;
    int rc = sqlite3_prepare_v2(eng->db, sql, -1, &q, NULL);
    if (rc == SQLITE_OK) {
        for (int i = 0; i < n; i++)
            sqlite3_bind_int64(q, i + 1, vals[i]);
        rc = sqlite3_step(q);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    int st = rc == SQLITE_OK ? TG_OK
                             : tg__engine_fail(eng, (rc & 0xff) == SQLITE_BUSY ? TG_BUSY : TG_DB,
                                               "%s: %s", what, sqlite3_errmsg(eng->db));
    sqlite3_finalize(q);
    return st;
}

/* Marks a finished job done and, when it was the run's last, finishes the run. Inside the
 * caller's transaction. */
static int finish_job(tg_engine *eng, job *j) {
    int64_t job_id[1] = {j->id}, run[1] = {j->run};
    int st = exec_ints(eng,
                       "UPDATE tenantguard_jobs SET status = 'done', rows_total = max(rows_total, "
                       "rows_done), updated_at = " NOW " WHERE id = ?1",
                       job_id, 1, "finishing a job");
    if (st == TG_OK)
        st = exec_ints(eng,
                       "UPDATE tenantguard_runs SET rows_total = (SELECT sum(rows_total) FROM "
                       "tenantguard_jobs WHERE run_id = ?1) WHERE id = ?1",
                       run, 1, "finishing a job");
    if (st == TG_OK)
        st = exec_ints(eng,
                       "UPDATE tenantguard_runs SET status = CASE WHEN rows_unbound > 0 THEN "
                       "'completed_with_errors' ELSE 'completed' END, finished_at = " NOW
                       ", started_at = coalesce(started_at, " NOW ") WHERE id = ?1 AND NOT EXISTS "
                       "(SELECT 1 FROM tenantguard_jobs WHERE run_id = ?1 AND status <> 'done')",
                       run, 1, "finishing a job");
    int run_done = st == TG_OK && sqlite3_changes(eng->db) > 0;
    char meta[300];
    snprintf(meta, sizeof meta, "{\"run\":%lld,\"table\":\"%s\"}", (long long)j->run, j->table);
    if (st == TG_OK)
        st = tg__audit(eng, "tenantguard.backfill.table_done", j->table, meta);
    if (st == TG_OK)
        st = sync_operation_run(eng, j->run);
    if (st == TG_OK && run_done) {
        tg_run_info info;
        memset(&info, 0, sizeof info);
        if ((st = tg_backfill_status(eng, j->run, &info)) != TG_OK)
            return st;
        snprintf(meta, sizeof meta,
                 "{\"run\":%lld,\"status\":\"%s\",\"rows_set\":%lld,\"rows_corrected\":%lld,"
                 "\"rows_unbound\":%lld,\"batches\":%lld}",
                 (long long)j->run, info.status, (long long)info.rows_set,
                 (long long)info.rows_corrected, (long long)info.rows_unbound,
                 (long long)info.batches);
        st = tg__audit(eng, "tenantguard.backfill.completed", "backfill", meta);
    }
    return st;
}

/* The job's checkpoint (the keys of the last batch's hi) into cp; *has 0 before the first
 * batch. Inside the caller's transaction. */
static int read_checkpoint(tg_engine *eng, job *j, sqlite3_value **cp, int *has) {
    *has = 0;
    if (cached(eng->db, &j->ck_read,
               "SELECT n, v FROM tenantguard_checkpoints WHERE job_id = ?1 ORDER BY n") !=
        SQLITE_OK)
        return TG_DB;
    sqlite3_stmt *q = j->ck_read;
    sqlite3_bind_int64(q, 1, j->id);
    int n = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && n < j->key.n) {
        if (sqlite3_column_int(q, 0) != n ||
            !(cp[n] = sqlite3_value_dup(sqlite3_column_value(q, 1))))
            break;
        n++;
    }
    sqlite3_reset(q);
    if (n == 0 && (rc == SQLITE_DONE || rc == SQLITE_ROW))
        return TG_OK;
    if (n != j->key.n) {
        free_values(cp, n);
        return TG_DB; /* a checkpoint of another shape: never guess where to go on */
    }
    *has = 1;
    return TG_OK;
}

/* Saves hi as the job's checkpoint, advances the job's and the run's counters and records the
 * batch. Inside the caller's transaction. */
static int save_batch(tg_engine *eng, job *j, sqlite3_value **cp, int has_cp,
                      sqlite3_value **hi, int64_t next, const int64_t c[4], double ms) {
    sqlite3 *db = eng->db;
    sqlite3_stmt *q = NULL;
    int m = j->key.n, rc = SQLITE_OK;
    /* the key in the job and batch rows, for people: a single integer key as it is */
    sqlite3_value *shown_hi = m == 1 && sqlite3_value_type(hi[0]) == SQLITE_INTEGER ? hi[0] : NULL;
    sqlite3_value *shown_cp =
        has_cp && m == 1 && sqlite3_value_type(cp[0]) == SQLITE_INTEGER ? cp[0] : NULL;
    if ((rc = cached(db, &j->ck_write,
                     "INSERT OR REPLACE INTO tenantguard_checkpoints (job_id, n, v) "
                     "VALUES (?1, ?2, ?3)")) != SQLITE_OK)
        goto out;
    q = j->ck_write;
    for (int i = 0; i < m && rc == SQLITE_OK; i++) {
        sqlite3_bind_int64(q, 1, j->id);
        sqlite3_bind_int(q, 2, i);
        sqlite3_bind_value(q, 3, hi[i]);
        rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(q);
    }
    if (rc != SQLITE_OK)
        goto out;
    /* ?1 job ?2 checkpoint ?3 next size ?4 rows ?5 set ?6 corrected ?7 unbound */
    if ((rc = cached(db, &j->job_upd,
                     "UPDATE tenantguard_jobs SET checkpoint = ?2, batch_rows = ?3, "
                     "status = 'running', rows_done = rows_done + ?4, rows_set = "
                     "rows_set + ?5, rows_corrected = rows_corrected + ?6, "
                     "rows_unbound = rows_unbound + ?7, updated_at = " NOW " WHERE id = ?1")) !=
        SQLITE_OK)
        goto out;
    q = j->job_upd;
    sqlite3_bind_int64(q, 1, j->id);
    if (shown_hi)
        sqlite3_bind_value(q, 2, shown_hi);
    sqlite3_bind_int64(q, 3, next);
    for (int i = 0; i < 4; i++)
        sqlite3_bind_int64(q, 4 + i, c[i]);
    rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    sqlite3_reset(q);
    if (rc != SQLITE_OK)
        goto out;
    /* ?1 run ?2 rows ?3 set ?4 corrected ?5 unbound ?6 ms */
    if ((rc = cached(db, &j->run_upd,
                     "UPDATE tenantguard_runs SET status = 'running', started_at = "
                     "coalesce(started_at, " NOW "), rows_done = rows_done + ?2, "
                     "rows_set = rows_set + ?3, rows_corrected = rows_corrected + ?4, "
                     "rows_unbound = rows_unbound + ?5, batches = batches + 1, "
                     "longest_batch_ms = max(longest_batch_ms, ?6), seconds = "
                     "seconds + ?6 / 1000.0 WHERE id = ?1")) != SQLITE_OK)
        goto out;
    q = j->run_upd;
    sqlite3_bind_int64(q, 1, j->run);
    for (int i = 0; i < 4; i++)
        sqlite3_bind_int64(q, 2 + i, c[i]);
    sqlite3_bind_double(q, 6, ms);
    rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    sqlite3_reset(q);
    if (rc != SQLITE_OK)
        goto out;
    /* ?1 job ?2 from (exclusive; NULL for the first batch) ?3 to ?4 rows ?5 set ?6 ms ?7 pid */
    if ((rc = cached(db, &j->batch_ins,
                     "INSERT INTO tenantguard_batches (job_id, from_id, to_id, rows, "
                     "rows_set, ms, worker, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                     "CAST(?7 AS TEXT), " NOW ")")) != SQLITE_OK)
        goto out;
    q = j->batch_ins;
    sqlite3_bind_int64(q, 1, j->id);
    if (shown_cp)
        sqlite3_bind_value(q, 2, shown_cp);
    if (shown_hi)
        sqlite3_bind_value(q, 3, shown_hi);
    sqlite3_bind_int64(q, 4, c[0]);
    sqlite3_bind_int64(q, 5, c[1]);
    sqlite3_bind_double(q, 6, ms);
    sqlite3_bind_int64(q, 7, (int64_t)getpid());
    rc = sqlite3_step(q) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    sqlite3_reset(q);
out:
    if (rc == SQLITE_OK)
        return TG_OK;
    return tg__engine_fail(eng, (rc & 0xff) == SQLITE_BUSY ? TG_BUSY : TG_DB,
                           "advancing the checkpoint of '%s': %s", j->table, sqlite3_errmsg(db));
}

/* One batch of job j in one transaction. *rows is 0 when the job had nothing left. */
static int run_batch(tg_engine *eng, job *j, double worker_ms, tg_progress *p, double *ms_out,
                     int64_t *rows) {
    sqlite3 *db = eng->db;
    *rows = 0;
    double t0 = now_s();
    int st = tg__begin(eng);
    if (st != TG_OK)
        return st;
    sqlite3_stmt *q = NULL;
    sqlite3_value *cp[TG__MAX_KEY] = {0}, *lo[TG__MAX_KEY] = {0}, *hi[TG__MAX_KEY] = {0},
                  *last[TG__MAX_KEY] = {0};
    int rc = SQLITE_OK, has_cp = 0;
    /* the job's state as committed: the checkpoint is read inside the write lock */
    if (cached(db, &j->state,
               "SELECT j.status, j.batch_rows, r.status, r.batch_ms, "
               "j.rows_done, j.rows_total, r.rows_done, r.rows_total FROM "
               "tenantguard_jobs j JOIN tenantguard_runs r ON r.id = j.run_id "
               "WHERE j.id = ?1") != SQLITE_OK)
        goto db_fail;
    q = j->state;
    sqlite3_bind_int64(q, 1, j->id);
    if (sqlite3_step(q) != SQLITE_ROW)
        goto db_fail;
    int job_done = strcmp((const char *)sqlite3_column_text(q, 0), "done") == 0;
    /* a static string: the text belongs to q, which is reset below */
    const char *run_status = run_status_name((const char *)sqlite3_column_text(q, 2));
    int runnable = strcmp(run_status, "queued") == 0 || strcmp(run_status, "running") == 0;
    int64_t size = sqlite3_column_int64(q, 1);
    /* the worker's own time target, else the run's */
    double target_ms = worker_ms > 0 ? worker_ms : sqlite3_column_double(q, 3);
    p->table_done = sqlite3_column_int64(q, 4);
    p->table_total = sqlite3_column_int64(q, 5);
    p->run_done = sqlite3_column_int64(q, 6);
    p->run_total = sqlite3_column_int64(q, 7);
    sqlite3_reset(q);
    q = NULL;
    if (job_done || !runnable) {
        tg__rollback(eng);
        return TG_OK;
    }
    if (!j->first && (st = job_prepare(eng, j)) != TG_OK)
        goto fail;
    int m = j->key.n;
    if (read_checkpoint(eng, j, cp, &has_cp) != TG_OK) {
        st = tg__engine_fail(eng, TG_DB, "backfill of '%s': cannot read its checkpoint: %s",
                             j->table, sqlite3_errmsg(db));
        goto fail;
    }
    /* the bounds of this batch */
    sqlite3_stmt *b = has_cp ? j->next : j->first;
    for (int i = 0; has_cp && i < m; i++)
        sqlite3_bind_value(b, 1 + i, cp[i]);
    sqlite3_bind_int64(b, m + 1, size > 0 ? size : 1);
    int64_t n = 0;
    int have_lo = 0, have_hi = 0, have_last = 0;
    while ((rc = sqlite3_step(b)) == SQLITE_ROW) {
        int which = sqlite3_column_int(b, 0);
        if (which == 3) {
            n = sqlite3_column_int64(b, 1);
            continue;
        }
        sqlite3_value **into = which == 0 ? lo : which == 1 ? hi : last;
        for (int i = 0; i < m; i++)
            if (!(into[i] = sqlite3_value_dup(sqlite3_column_value(b, 1 + i))))
                rc = SQLITE_NOMEM;
        *(which == 0 ? &have_lo : which == 1 ? &have_hi : &have_last) = 1;
        if (rc == SQLITE_NOMEM)
            break;
    }
    sqlite3_reset(b);
    if (rc != SQLITE_DONE)
        goto db_fail;
    rc = SQLITE_OK;
    if (!have_lo) {
        if ((st = finish_job(eng, j)) != TG_OK || (st = tg__commit(eng)) != TG_OK)
            goto fail;
        goto out;
    }
    sqlite3_value **top = have_hi ? hi : last;
    if (!have_hi && !have_last) {
        st = tg__engine_fail(eng, TG_DB, "backfill of '%s': the walk found no end", j->table);
        goto fail;
    }
    if (n < 1) {
        /* a first key but no row: the walk would not advance; stop rather than spin */
        st = tg__engine_fail(eng, TG_DB, "backfill of '%s': the walk does not advance", j->table);
        goto fail;
    }
    int64_t c[4]; /* rows, set, corrected, unbound */
    /* the corrections logged (each row of the range once: the count of corrections), then
     * set and corrected by one UPDATE, then what is left without a workspace listed */
    c[2] = step_changes(db, j->correct_log, j, lo, top, &rc);
    c[1] = rc == SQLITE_OK ? step_changes(db, j->set, j, lo, top, &rc) - c[2] : 0;
    c[3] = rc == SQLITE_OK ? step_changes(db, j->unbound, j, lo, top, &rc) : 0;
    c[0] = n;
    if (rc != SQLITE_OK)
        goto db_fail;
    double ms = (now_s() - t0) * 1000;
    /* the next size aims at 40% of the target time (20 ms of the default 50): batches of
     * the same size vary by up to 2.5x in time on a busy machine (cold pages, the WAL's
     * writes, other processes), and the rest of the target is for them; it grows by at most
     * 1.25x and shrinks by up to 4x; the commit still to come counts as long as the last */
    double est = ms + j->commit_ms;
    double factor = est > 0.01 ? 0.4 * target_ms / est : 1.25;
    factor = factor > 1.25 ? 1.25 : factor < 0.25 ? 0.25 : factor;
    int64_t next = (int64_t)((double)size * factor);
    next = next < 50 ? 50 : next > 200000 ? 200000 : next;
    if ((st = save_batch(eng, j, cp, has_cp, top, next, c, ms)) != TG_OK)
        goto fail;
    if (strcmp(run_status, "queued") == 0 && (st = sync_operation_run(eng, j->run)) != TG_OK)
        goto fail;
    double c0 = now_s();
    if ((st = tg__commit(eng)) != TG_OK)
        goto fail;
    double t1 = now_s();
    j->commit_ms = (t1 - c0) * 1000;
    *ms_out = (t1 - t0) * 1000;
    *rows = n;
    p->table_done += n;
    p->run_done += n;
    p->batch_rows = n;
    p->next_batch_rows = next;
    p->batch_ms = *ms_out;
    goto out;
db_fail:
    st = tg__engine_fail(eng, (rc & 0xff) == SQLITE_BUSY ? TG_BUSY : TG_DB,
                         "backfill batch on '%s': %s", j->table, sqlite3_errmsg(db));
fail:
    if (q)
        sqlite3_reset(q); /* the job's own statement: finalized with the job */
    tg__rollback(eng);
out:
    free_values(cp, TG__MAX_KEY);
    free_values(lo, TG__MAX_KEY);
    free_values(hi, TG__MAX_KEY);
    free_values(last, TG__MAX_KEY);
    return st;
}

/* The run's pause between batches, in ms (0 when it cannot be read). */
static int pause_ms_of(tg_engine *eng, int64_t run) {
    sqlite3_stmt *q;
    int ms = 0;
    if (sqlite3_prepare_v2(eng->db, "SELECT pause_ms FROM tenantguard_runs WHERE id = ?1", -1, &q,
                           NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_int64(q, 1, run);
    if (sqlite3_step(q) == SQLITE_ROW)
        ms = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return ms;
}

/* The WAL's size in pages after each commit, for the worker to checkpoint between batches. */
static int wal_size(void *frames, sqlite3 *db, const char *name, int n) {
    (void)db;
    (void)name;
    *(int *)frames = n;
    return SQLITE_OK;
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
     * pays for one, and only once the WAL holds as many pages as the connection's
     * autocheckpoint (1,000 by default), as SQLite would: one per batch synced the database
     * file after every batch. The connection's own setting is restored afterwards. */
    int rc0 = SQLITE_OK;
    int autockpt = (int)tg__count(eng->db, "PRAGMA wal_autocheckpoint", NULL, NULL, &rc0);
    if (rc0 != SQLITE_OK)
        autockpt = 1000;
    int wal_frames = 0;
    sqlite3_wal_hook(eng->db, wal_size, &wal_frames); /* replaces the autocheckpoint */
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
        st = run_batch(eng, &j, o ? o->batch_ms : 0, &p, &ms, &rows);
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
        sleep_ms(pause_ms_of(eng, j.run));
        if (autockpt > 0 && wal_frames >= autockpt) {
            sqlite3_wal_checkpoint_v2(eng->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
            wal_frames = 0;
        }
    }
    job_finalize(&j);
    sqlite3_wal_autocheckpoint(eng->db, autockpt); /* SQLite's own hook again */
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
    if (eng->store && !eng->db)
        return tg__work_pg(eng, o, out);
    if (tg__engine_sqlite(eng, "the backfill") != TG_OK)
        return TG_MISUSE;
    if (eng->working)
        return tg__engine_fail(eng, TG_BUSY, "the engine is busy: its worker is already running "
                                             "(tg_work called from its progress callback?)");
    if (tg__engine_writable(eng, "work") != TG_OK)
        return TG_MISUSE;
    /* a close from the progress callback only drops the caller's reference: the engine is
     * freed when this returns, never under the worker */
    eng->refs++;
    eng->working = 1;
    int st = work(eng, o, out);
    eng->working = 0;
    tg__engine_release(eng);
    return st;
}
