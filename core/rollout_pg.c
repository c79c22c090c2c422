/* The rollout and validation on PostgreSQL (see pg.h): the phases of rollout.c, written for a
 * server that other transactions keep using while they run.
 *
 * No statement here rewrites a table or holds a lock that blocks the application for long:
 *   - every DDL statement runs with a short lock_timeout (200 ms by default): one that cannot
 *     take its lock at once gives way instead of queueing the application's queries behind
 *     it, and is retried with exponential backoff and jitter for up to lock_retry_ms
 *     (60 s by default), then fails naming the table and the lock it waited for;
 *   - phase 1 adds a nullable column without a default (a catalog change, no rewrite) and
 *     builds its indexes with CREATE INDEX CONCURRENTLY (an interrupted build leaves an
 *     INVALID index: it is dropped and built again);
 *   - phase 3 adds every constraint NOT VALID (a short lock, no scan), then validates it
 *     (SHARE UPDATE EXCLUSIVE: reads and writes go on during the scan); NOT NULL comes from
 *     a validated CHECK (PostgreSQL 12+ then skips the scan); the unique key on tenants is
 *     built concurrently and attached.
 * Each step looks at the catalog first and does only what is missing, so a phase that
 * stopped anywhere is finished by running it again, and a phase already done does nothing.
 * The statement timeout is lifted while a phase runs (a validation scan may take long; the
 * lock waits are what lock_timeout bounds) and restored after. */
#include "catalog.h"
#include "pg.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOCK_TIMEOUT_MS 200
#define LOCK_RETRY_MS 60000

/* One phase's run: the connection, its options and what it did. */
typedef struct pgr {
    tg_engine *eng;
    tg__db *db;
    const tg__dialect *d;
    const char *phase;
    int lock_timeout_ms, retry_ms;
    int waits;      /* times a statement gave way to another transaction's lock */
    char saved[64]; /* the session's statement_timeout, restored after the phase */
} pgr;

/* ---- the catalog ---- */

/* The first column of the one-row query sql ($1 a, $2 b; NULL: not bound), as an integer;
 * `none` when there is no row. *st is set to TG_DB (with the message) when it cannot run. */
static int64_t q_int(pgr *r, const char *sql, const char *a, const char *b, int64_t none, int *st) {
    tg__stmt *s = NULL;
    int64_t v = none;
    int rc = tg__st_prepare_once(r->db, sql, &s);
    if (rc == TG__ST_OK) {
        if (a)
            tg__st_bind_str(s, 1, a);
        if (b)
            tg__st_bind_str(s, 2, b);
        rc = tg__st_step(s);
        if (rc == TG__ST_ROW) {
            v = tg__st_column_type(s, 0) == TG__T_NULL ? none : tg__st_column_int64(s, 0);
            rc = TG__ST_OK;
        } else if (rc == TG__ST_DONE) {
            rc = TG__ST_OK;
        }
    }
    if (rc != TG__ST_OK && *st == TG_OK)
        *st = tg__engine_fail(r->eng, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                              "%s: reading the catalog: %s", r->phase, tg__db_errmsg(r->db));
    tg__st_finalize(s);
    return v;
}

/* The first column of a one-row query, as text (empty when there is no row). */
static int q_text(pgr *r, const char *sql, const char *a, const char *b, char *out, size_t size) {
    tg__stmt *s = NULL;
    out[0] = 0;
    int rc = tg__st_prepare_once(r->db, sql, &s);
    if (rc == TG__ST_OK) {
        if (a)
            tg__st_bind_str(s, 1, a);
        if (b)
            tg__st_bind_str(s, 2, b);
        rc = tg__st_step(s);
        if (rc == TG__ST_ROW) {
            const char *t = tg__st_column_text(s, 0);
            snprintf(out, size, "%s", t ? t : "");
            rc = TG__ST_OK;
        } else if (rc == TG__ST_DONE) {
            rc = TG__ST_OK;
        }
    }
    tg__st_finalize(s);
    if (rc != TG__ST_OK)
        return tg__engine_fail(r->eng, TG_DB, "%s: %s", r->phase, tg__db_errmsg(r->db));
    return TG_OK;
}

#define REL "to_regclass(quote_ident($1))"

/* 0: no such index on table $1; 1: valid; 2: left INVALID (or not ready) by a build that
 * did not finish. */
static int index_state(pgr *r, const char *table, const char *index, int *st) {
    return (int)q_int(r,
                      "SELECT CASE WHEN i.indisvalid AND i.indisready THEN 1 ELSE 2 END FROM "
                      "pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
                      "WHERE i.indrelid = " REL " AND c.relname = $2",
                      table, index, 0, st);
}

/* 0: no constraint of that name on table $1; 1: validated; 2: NOT VALID. */
static int constraint_state(pgr *r, const char *table, const char *name, int *st) {
    return (int)q_int(r,
                      "SELECT CASE WHEN k.convalidated THEN 1 ELSE 2 END FROM "
                      "pg_catalog.pg_constraint k WHERE k.conrelid = " REL " AND k.conname = $2",
                      table, name, 0, st);
}

/* 1 when table.column is NOT NULL. */
static int column_not_null(pgr *r, const char *table, const char *column, int *st) {
    return (int)q_int(r,
                      "SELECT CAST(a.attnotnull AS integer) FROM pg_catalog.pg_attribute a "
                      "WHERE a.attrelid = " REL " AND a.attname = $2 AND NOT a.attisdropped",
                      table, column, 0, st);
}

/* 1 when the table has a trigger of tenantguard's (the phase 1.5 write guard). */
static int has_guard(pgr *r, const char *table, int *st) {
    return q_int(r,
                 "SELECT count(*) FROM pg_catalog.pg_trigger g WHERE g.tgrelid = " REL
                 " AND NOT g.tgisinternal AND g.tgname LIKE 'tenantguard%'",
                 table, NULL, 0, st) > 0;
}

/* A name of tenantguard's in the catalog: "tenantguard_<table>_<suffix>", kept within
 * PostgreSQL's 63 bytes (a longer one ends in a hash of the whole, so two long table names
 * never share an index name). */
static void object_name(char out[64], const char *table, const char *suffix) {
    char full[512];
    int len = snprintf(full, sizeof full, "tenantguard_%s_%s", table, suffix);
    if (len >= 0 && len <= 63) {
        memcpy(out, full, (size_t)len + 1);
        return;
    }
    uint32_t h = 2166136261u;
    for (const char *p = full; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    snprintf(out, 64, "%.54s_%08x", full, (unsigned)h);
}

/* ---- statements that wait politely ---- */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Who holds a lock on `table` that this session is not: "pid 123 holds AccessShareLock on
 * it", for the message of a step that gave up. Empty when nobody does any more (the wait
 * was then for an older transaction's snapshot, as CREATE INDEX CONCURRENTLY waits). */
static void blocker(pgr *r, const char *table, char *out, size_t size) {
    char holder[160];
    out[0] = 0;
    if (q_text(r,
               "SELECT 'pid ' || l.pid || ' holds ' || l.mode || ' on it' || coalesce(' (in "
               "state ' || a.state || ' for ' || "
               "round(extract(epoch FROM clock_timestamp() - a.xact_start)) || ' s)', '') FROM "
               "pg_catalog.pg_locks l LEFT JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
               "WHERE l.locktype = 'relation' AND l.relation = " REL " AND l.granted AND "
               "l.pid <> pg_backend_pid() ORDER BY a.xact_start NULLS LAST LIMIT 1",
               table, NULL, holder, sizeof holder) == TG_OK &&
        holder[0])
        snprintf(out, size, "; %s", holder);
}

/* One attempt of a step: a store result (TG__ST_BUSY: it could not take a lock in time). */
typedef int (*attempt_fn)(pgr *r, const void *arg);

static int attempt_exec(pgr *r, const void *sql) {
    return tg__db_exec(r->db, sql);
}

/* Runs an attempt until it is done, retrying a lock it could not take in lock_timeout with
 * exponential backoff (25 ms doubling to 2 s, each wait a random point of its upper half)
 * for up to retry_ms; then fails naming the table, what it waited for and who holds it.
 * `table` names the table whose lock the step takes; `what` says what the step does. */
static int retrying(pgr *r, const char *table, const char *what, attempt_fn fn, const void *arg) {
    double start = now_ms();
    int delay = 25, attempts = 0;
    for (;;) {
        attempts++;
        int rc = fn(r, arg);
        if (rc == TG__ST_OK)
            return TG_OK;
        const char *err = tg__db_errmsg(r->db);
        int lock_wait = (rc & 0xff) == TG__ST_BUSY && strncmp(err, "the statement timeout", 21);
        if (!lock_wait)
            return tg__engine_fail(r->eng, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                                   "%s: '%s': %s failed: %s", r->phase, table, what, err);
        double waited = now_ms() - start;
        if (waited >= r->retry_ms) {
            char who[240];
            char why[200];
            snprintf(why, sizeof why, "%s", err);
            blocker(r, table, who, sizeof who);
            return tg__engine_fail(
                r->eng, TG_BUSY,
                "%s: '%s': %s could not take its lock: every one of %d attempts waited "
                "lock_timeout (%d ms) behind another transaction, for %.1f s in all (%s%s); "
                "this step changed nothing (the steps before it are kept): run the phase "
                "again once that transaction ends, or give it longer (lock_retry_ms)",
                r->phase, table, what, attempts, r->lock_timeout_ms, waited / 1e3, why, who);
        }
        r->waits++;
        unsigned char rnd[2];
        tg__store_random(rnd, sizeof rnd);
        int pause = delay / 2 + (int)(((unsigned)rnd[0] << 8 | rnd[1]) % (unsigned)(delay / 2 + 1));
        if (waited + pause > r->retry_ms)
            pause = (int)(r->retry_ms - waited) + 1;
        sleep_ms(pause);
        delay = delay < 2000 ? delay * 2 : 2000;
    }
}

/* Runs one DDL statement (the buffer, reset after) the polite way. */
static int ddl(pgr *r, const char *table, const char *what, tg__buf *sql) {
    if (sql->oom)
        return tg__engine_fail(r->eng, TG_NOMEM, "out of memory");
    int st = retrying(r, table, what, attempt_exec, tg__buf_str(sql));
    tg__buf_reset(sql);
    return st;
}

/* An index tenantguard builds: on `table`, named `name`, over the column list `cols`. */
typedef struct index_spec {
    const char *table, *name, *cols;
    int unique;
    int *redone;
} index_spec;

/* One attempt at an index: a build left INVALID is dropped first (concurrently too), then
 * the index is built concurrently unless a valid one is there. */
static int attempt_index(pgr *r, const void *arg) {
    const index_spec *x = arg;
    int st = TG_OK;
    int state = index_state(r, x->table, x->name, &st);
    if (st != TG_OK)
        return TG__ST_ERROR;
    tg__buf sql = {0};
    int rc = TG__ST_OK;
    if (state == 2) {
        tg__sqlf(&sql, r->d, "DROP INDEX CONCURRENTLY IF EXISTS %I", x->name);
        rc = sql.oom ? TG__ST_NOMEM : tg__db_exec(r->db, tg__buf_str(&sql));
        if (rc == TG__ST_OK)
            (*x->redone)++;
        tg__buf_reset(&sql);
    }
    if (rc == TG__ST_OK && state != 1) {
        tg__sqlf(&sql, r->d, "CREATE %sINDEX CONCURRENTLY IF NOT EXISTS %I ON %I (%s)",
                 x->unique ? "UNIQUE " : "", x->name, x->table, x->cols);
        rc = sql.oom ? TG__ST_NOMEM : tg__db_exec(r->db, tg__buf_str(&sql));
    }
    tg__buf_free(&sql);
    return rc;
}

/* Makes sure a valid index `name` is on `table`; *built counts one when it had to be made. */
static int ensure_index(pgr *r, const char *table, const char *name, const char *cols, int unique,
                        int *built, int *redone) {
    int st = TG_OK;
    if (index_state(r, table, name, &st) == 1 || st != TG_OK)
        return st;
    index_spec x = {table, name, cols, unique, redone};
    if ((st = retrying(r, table, "CREATE INDEX CONCURRENTLY", attempt_index, &x)) != TG_OK)
        return st;
    if (index_state(r, table, name, &st) != 1 && st == TG_OK)
        return tg__engine_fail(r->eng, TG_DB,
                               "%s: '%s': the index %s was not built: another relation of the "
                               "schema has that name",
                               r->phase, table, name);
    (*built)++;
    return st;
}

/* The session settings of a phase: lock_timeout short, no statement timeout. */
static int phase_begin(pgr *r) {
    int st = TG_OK;
    if ((st = q_text(r, "SELECT current_setting('statement_timeout')", NULL, NULL, r->saved,
                     sizeof r->saved)) != TG_OK)
        return st;
    tg__buf sql = {0};
    tg__sqlf(&sql, r->d, "SET lock_timeout = %d", r->lock_timeout_ms);
    int rc = sql.oom ? TG__ST_NOMEM : tg__db_exec(r->db, tg__buf_str(&sql));
    if (rc == TG__ST_OK)
        rc = tg__db_exec(r->db, "SET statement_timeout = 0");
    tg__buf_free(&sql);
    if (rc != TG__ST_OK)
        return tg__engine_fail(r->eng, TG_DB, "%s: %s", r->phase, tg__db_errmsg(r->db));
    return TG_OK;
}

/* Restores them (whatever the phase's outcome: its message is kept). */
static void phase_end(pgr *r) {
    if (tg__db_in_transaction(r->db))
        tg__db_exec(r->db, "ROLLBACK");
    tg__db_exec(r->db, "RESET lock_timeout");
    tg__stmt *s = NULL;
    if (r->saved[0] &&
        tg__st_prepare_once(r->db, "SELECT set_config('statement_timeout', $1, false)", &s) ==
            TG__ST_OK) {
        tg__st_bind_str(s, 1, r->saved);
        (void)tg__st_step(s);
    }
    tg__st_finalize(s);
}

/* " (waited N times for a lock)" for a message, or nothing. */
static void waits_note(const pgr *r, char *out, size_t size) {
    if (r->waits)
        snprintf(out, size,
                 "; gave way to another transaction's lock %d time%s (lock_timeout "
                 "%d ms)",
                 r->waits, r->waits == 1 ? "" : "s", r->lock_timeout_ms);
    else
        out[0] = 0;
}

/* Every target must exist with its tenant column. */
static int check_targets(pgr *r, const tg__target *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int c = tg__column_exists(r->db, t[i].table, t[i].cols->tenant);
        if (c < 0)
            return tg__engine_fail(r->eng, TG_DB, "%s: %s", r->phase, tg__db_errmsg(r->db));
        if (!c)
            return tg__engine_fail(r->eng, TG_DB, "table '%s' does not exist or has no column '%s'",
                                   t[i].table, t[i].cols->tenant);
    }
    return TG_OK;
}

/* ---- phase 1: add_columns / drop_columns ---- */

/* The type of the new column: that of the workspaces' key, one of a fixed set of keywords
 * (never the application's text); NULL for a type without one. */
static const char *workspace_column_type(pgr *r, char *found, size_t size) {
    const tg_app *a = &r->eng->rules->pub.app;
    tg__stmt *s = NULL;
    found[0] = 0;
    if (tg__st_prepare_once(r->db, r->d->sql_column_type, &s) == TG__ST_OK) {
        tg__st_bind_str(s, 1, a->workspaces.table);
        tg__st_bind_str(s, 2, a->workspaces.id);
        if (tg__st_step(s) == TG__ST_ROW) {
            const char *t = tg__st_column_text(s, 1);
            snprintf(found, size, "%s", t ? t : "");
        }
    }
    tg__st_finalize(s);
    static const char *const types[] = {"bigint", "integer", "smallint", "text", "uuid", "bytea"};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(found, types[i]))
            return types[i];
    if (!strncmp(found, "character varying", 17) || !strncmp(found, "character(", 10))
        return "text"; /* compares and references as the key does */
    return NULL;
}

static int add_columns(pgr *r, const tg__target *tt, size_t n) {
    char type_found[128];
    const char *type = workspace_column_type(r, type_found, sizeof type_found);
    const tg_app *a = &r->eng->rules->pub.app;
    if (!type)
        return tg__engine_fail(r->eng, TG_REFUSED,
                               "add_columns: the key %s.%s is of type '%s', for which the "
                               "workspace column has no type (bigint, integer, smallint, text, "
                               "varchar, uuid, bytea)",
                               a->workspaces.table, a->workspaces.id, type_found);
    tg__buf sql = {0};
    int added = 0, built = 0, redone = 0, st = TG_OK;
    /* the columns first, every table: a catalog change each (ACCESS EXCLUSIVE, briefly) */
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        const char *t = tt[i].table, *W = tt[i].cols->workspace;
        int c = tg__column_exists(r->db, t, W);
        if (c < 0)
            st = tg__engine_fail(r->eng, TG_DB, "add_columns: %s", tg__db_errmsg(r->db));
        if (c != 0)
            continue;
        tg__sqlf(&sql, r->d, "ALTER TABLE %I ADD COLUMN IF NOT EXISTS %I %s", t, W, type);
        if ((st = ddl(r, t, "ADD COLUMN", &sql)) == TG_OK)
            added++;
    }
    /* then the indexes, concurrently (SHARE UPDATE EXCLUSIVE: writes go on) */
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        char name[64];
        const char *t = tt[i].table, *W = tt[i].cols->workspace, *T = tt[i].cols->tenant;
        object_name(name, t, "workspace");
        tg__sqlf(&sql, r->d, "%I", W);
        if (!sql.oom)
            st = ensure_index(r, t, name, tg__buf_str(&sql), 0, &built, &redone);
        tg__buf_reset(&sql);
        object_name(name, t, "tenant_workspace");
        tg__sqlf(&sql, r->d, "%I, %I", T, W);
        if (st == TG_OK && !sql.oom)
            st = ensure_index(r, t, name, tg__buf_str(&sql), 0, &built, &redone);
        tg__buf_reset(&sql);
    }
    tg__buf_free(&sql);
    if (st != TG_OK)
        return st;
    char meta[200], note[160];
    snprintf(meta, sizeof meta,
             "{\"tables\":%zu,\"columns_added\":%d,\"indexes_built\":%d,\"indexes_redone\":%d,"
             "\"lock_waits\":%d}",
             n, added, built, redone, r->waits);
    if ((st = tg__audit(r->eng, "tenantguard.rollout.add_columns", "schema", meta)) != TG_OK)
        return st;
    waits_note(r, note, sizeof note);
    tg__engine_fail(r->eng, TG_OK,
                    "add_columns: %d column%s added (no table rewritten), %d index%s built "
                    "concurrently (%d invalid one%s redone), %zu tables%s",
                    added, added == 1 ? "" : "s", built, built == 1 ? "" : "es", redone,
                    redone == 1 ? "" : "s", n, note);
    return TG_OK;
}

/* 1 when phase 3 is applied to a table: its composite foreign key is there. */
static int phase3_applied(pgr *r, const char *table, int *st) {
    return constraint_state(r, table, "tenantguard_tenant_workspace", st) != 0;
}

static int drop_columns(pgr *r, const tg__target *tt, size_t n) {
    int st = TG_OK, dropped = 0, guarded = 0;
    int64_t pending =
        q_int(r, "SELECT CAST(to_regclass('tenantguard_runs') IS NOT NULL AS integer)", NULL, NULL,
              0, &st);
    if (st == TG_OK && pending) /* the backfill's runs table exists: count its live runs */
        pending = q_int(r,
                        "SELECT count(*) FROM tenantguard_runs WHERE status IN ('queued', "
                        "'running', 'paused')",
                        NULL, NULL, 0, &st);
    if (st != TG_OK)
        return st;
    if (pending > 0)
        return tg__engine_fail(r->eng, TG_REFUSED,
                               "drop_columns refused: %lld backfill run%s still queued, running "
                               "or paused; cancel %s first",
                               (long long)pending, pending == 1 ? " is" : "s are",
                               pending == 1 ? "it" : "them");
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        if (phase3_applied(r, tt[i].table, &st))
            return tg__engine_fail(r->eng, TG_REFUSED,
                                   "drop_columns undoes phase 1 only, and phase 3 is applied to "
                                   "'%s' (its %s is enforced): prefer a forward fix",
                                   tt[i].table, tt[i].cols->workspace);
        guarded |= has_guard(r, tt[i].table, &st);
    }
    if (st != TG_OK)
        return st;
    /* the write guard reads the column: it goes first */
    if (guarded && (st = tg__pg_guard(r->eng, tt, n, 0)) != TG_OK)
        return st;
    tg__buf sql = {0};
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        char name[64];
        const char *t = tt[i].table, *W = tt[i].cols->workspace;
        static const char *const suffix[] = {"workspace", "tenant_workspace"};
        for (int k = 0; k < 2 && st == TG_OK; k++) {
            object_name(name, t, suffix[k]);
            if (!index_state(r, t, name, &st) || st != TG_OK)
                continue;
            tg__sqlf(&sql, r->d, "DROP INDEX CONCURRENTLY IF EXISTS %I", name);
            st = ddl(r, t, "DROP INDEX CONCURRENTLY", &sql);
        }
        int c = st == TG_OK ? tg__column_exists(r->db, t, W) : 0;
        if (c > 0) {
            tg__sqlf(&sql, r->d, "ALTER TABLE %I DROP COLUMN IF EXISTS %I", t, W);
            if ((st = ddl(r, t, "DROP COLUMN", &sql)) == TG_OK)
                dropped++;
        }
    }
    tg__buf_free(&sql);
    if (st == TG_OK)
        st = tg__audit(r->eng, "tenantguard.rollout.drop_columns", "schema", "{}");
    if (st == TG_OK) {
        char note[160];
        waits_note(r, note, sizeof note);
        tg__engine_fail(r->eng, TG_OK, "drop_columns: %d column%s dropped%s", dropped,
                        dropped == 1 ? "" : "s", note);
    }
    return st;
}

/* ---- phase 1.5: the write guard (pg_guard.c) ---- */

static int enforce_writes(pgr *r, const tg__target *t, size_t n, int drop_only) {
    int st = TG_OK;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        const char *table = t[i].table, *W = t[i].cols->workspace;
        if (drop_only && phase3_applied(r, table, &st))
            return tg__engine_fail(r->eng, TG_REFUSED,
                                   "drop_triggers refused: phase 3 is applied to '%s', and its "
                                   "triggers are what binds every write's %s (never NULL)",
                                   table, W);
        if (!drop_only && tg__column_exists(r->db, table, W) == 0)
            return tg__engine_fail(r->eng, TG_REFUSED,
                                   "enforce_writes needs phase 1 first: '%s' has no %s column "
                                   "(run add_columns)",
                                   table, W);
    }
    return st == TG_OK ? tg__pg_guard(r->eng, t, n, !drop_only) : st;
}

/* ---- quarantine of rows whose tenant no longer exists ---- */

/* tenantguard_quarantine, as the quarantine writes it (tg__meta_ensure_pg makes it with the
 * rest of tenantguard's tables; this makes just it, if that has not run). Keys go in as
 * text, whatever their type; row_json is the whole row (row_to_json). */
static int quarantine_ensure(pgr *r) {
    int rc = tg__db_exec(r->db, "CREATE TABLE IF NOT EXISTS tenantguard_quarantine ("
                                "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                                "  table_name text NOT NULL, row_id text, tenant_id text,"
                                "  row_json text NOT NULL, reason text NOT NULL,"
                                "  quarantined_at text NOT NULL)");
    if (rc != TG__ST_OK)
        return tg__engine_fail(r->eng, TG_DB, "cannot create tenantguard_quarantine: %s",
                               tg__db_errmsg(r->db));
    return TG_OK;
}

/* Rows every table changed in this transaction so far (cascades and triggers included): the
 * transaction's own statistics, as SQLite's total_changes. */
static int64_t xact_changes(pgr *r, int *st) {
    return q_int(r,
                 "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM "
                 "pg_catalog.pg_stat_xact_user_tables",
                 NULL, NULL, 0, st);
}

/* Moves the rows of one table matching `where` (on alias r) to the quarantine; *moved the
 * count. A delete that would change rows elsewhere (ON DELETE CASCADE, SET NULL, triggers)
 * is refused, as on SQLite. Inside the caller's transaction. */
static int quarantine_rows(pgr *r, const char *t, const char *id, const char *tenant,
                           const char *where, int64_t *moved) {
    tg__buf sql = {0};
    int st = TG_OK;
    *moved = 0;
    /* a row is named as on SQLite: by the id column when the table has it, else by its
     * primary key as a JSON array (a composite key has no id column) */
    tg__buf key = {0};
    if (tg__column_exists(r->db, t, id) == 1) {
        tg__sqlf(&key, r->d, "CAST(r.%I AS text)", id);
    } else {
        tg__stmt *pk = NULL;
        int n = 0;
        if (tg__st_prepare_once(r->db,
                                "SELECT a.attname FROM pg_catalog.pg_index i CROSS JOIN LATERAL "
                                "unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) JOIN "
                                "pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND "
                                "a.attnum = k.attnum WHERE i.indrelid = "
                                "to_regclass(quote_ident($1)) AND i.indisprimary ORDER BY k.n",
                                &pk) == TG__ST_OK) {
            tg__st_bind_str(pk, 1, t);
            tg__buf_add(&key, "CAST(json_build_array(");
            while (tg__st_step(pk) == TG__ST_ROW)
                tg__sqlf(&key, r->d, "%sr.%I", n++ ? ", " : "", tg__st_column_text(pk, 0));
            tg__buf_add(&key, ") AS text)");
        }
        tg__st_finalize(pk);
        if (!n) { /* no key at all: the row's place in the table */
            tg__buf_reset(&key);
            tg__buf_add(&key, "CAST(r.ctid AS text)");
        }
    }
    tg__sqlf(&sql, r->d,
             "INSERT INTO tenantguard_quarantine (table_name, row_id, tenant_id, row_json, "
             "reason, quarantined_at) SELECT %L, %s, r.%I, CAST(row_to_json(r) AS text), "
             "'tenant_missing', %s FROM %I AS r WHERE %s",
             t, tg__buf_str(&key), tenant, r->d->now, t, where);
    st = key.oom ? TG_NOMEM : TG_OK;
    tg__buf_free(&key);
    int rc = st != TG_OK || sql.oom ? TG__ST_NOMEM : tg__db_exec(r->db, tg__buf_str(&sql));
    tg__buf_reset(&sql);
    if (rc != TG__ST_OK) {
        st = tg__engine_fail(r->eng, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                             "quarantine_orphans: '%s': %s", t, tg__db_errmsg(r->db));
        goto done;
    }
    int64_t copied = tg__db_changes(r->db);
    int64_t before = xact_changes(r, &st);
    tg__sqlf(&sql, r->d, "DELETE FROM %I AS r WHERE %s", t, where);
    rc = st != TG_OK ? TG__ST_ERROR
         : sql.oom   ? TG__ST_NOMEM
                     : tg__db_exec(r->db, tg__buf_str(&sql));
    if (rc != TG__ST_OK) {
        if (st == TG_OK)
            st = tg__engine_fail(r->eng, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                                 "quarantine_orphans: '%s': %s", t, tg__db_errmsg(r->db));
        goto done;
    }
    int64_t deleted = tg__db_changes(r->db);
    int64_t all = xact_changes(r, &st) - before;
    if (st != TG_OK)
        goto done;
    if (deleted != copied || all != deleted) {
        st = tg__engine_fail(r->eng, TG_REFUSED,
                             "quarantine of '%s' refused: deleting its %lld orphan rows would "
                             "also change %lld rows elsewhere (a cascade); move their children "
                             "first or fix them by hand",
                             t, (long long)deleted, (long long)(all - deleted));
        goto done;
    }
    if (copied) {
        char meta[200];
        snprintf(meta, sizeof meta, "{\"table\":\"%s\",\"rows\":%lld}", t, (long long)copied);
        st = tg__audit(r->eng, "tenantguard.rollout.quarantine_orphans", t, meta);
    }
    *moved = copied;
done:
    tg__buf_free(&sql);
    return st;
}

/* 1 when a target not yet done (other than t) has a foreign key to t. */
static int referenced_by_pending(pgr *r, const char *t, const tg__target *all, const int *done,
                                 size_t n, int *st) {
    for (size_t k = 0; k < n; k++) {
        if (done[k] || strcmp(all[k].table, t) == 0)
            continue;
        if (q_int(r,
                  "SELECT count(*) FROM pg_catalog.pg_constraint WHERE contype = 'f' AND "
                  "conrelid = " REL " AND confrelid = to_regclass(quote_ident($2))",
                  all[k].table, t, 0, st) > 0)
            return 1;
    }
    return 0;
}

/* One attempt at the whole phase, one transaction: a refused table or a lock not taken in
 * time leaves every table as it was. */
typedef struct quarantine_args {
    const tg__target *t;
    size_t n;
    int64_t total;
    int st;
} quarantine_args;

static int attempt_quarantine(pgr *r, const void *arg) {
    quarantine_args *q = (quarantine_args *)arg;
    const tg_app *a = &r->eng->rules->pub.app;
    int done[TG__MAX_TARGETS] = {0};
    tg__buf where = {0};
    q->total = 0;
    int st = tg__begin(r->eng);
    /* children before parents, so a delete never cascades into a row not yet copied */
    for (size_t pass = 0; pass < q->n && st == TG_OK; pass++) {
        int progressed = 0;
        for (size_t i = 0; i < q->n && st == TG_OK; i++) {
            const tg__target *x = &q->t[i];
            if (done[i] ||
                (referenced_by_pending(r, x->table, q->t, done, q->n, &st) && pass + 1 < q->n))
                continue;
            tg__sqlf(&where, r->d,
                     "r.%I IS NULL OR NOT EXISTS (SELECT 1 FROM %I AS x WHERE x.%I = r.%I)",
                     x->cols->tenant, a->tenants.table, a->tenants.id, x->cols->tenant);
            int64_t moved = 0;
            if (st == TG_OK)
                st = where.oom ? TG_NOMEM
                               : quarantine_rows(r, x->table, x->cols->id, x->cols->tenant,
                                                 tg__buf_str(&where), &moved);
            tg__buf_reset(&where);
            q->total += moved;
            done[i] = progressed = 1;
        }
        if (!progressed)
            break;
    }
    /* audit entries about a tenant that is gone and without a workspace can never be bound:
     * kept in the quarantine too, so phase 3's audit check can hold */
    const char *audit = tg__app_audit(r->eng);
    if (st == TG_OK && audit && a->audit_logs.tenant && a->audit_logs.workspace &&
        tg__column_exists(r->db, audit, a->audit_logs.workspace) == 1) {
        tg__sqlf(&where, r->d,
                 "r.%I IS NOT NULL AND r.%I IS NULL AND NOT EXISTS (SELECT 1 FROM %I AS x "
                 "WHERE x.%I = r.%I)",
                 a->audit_logs.tenant, a->audit_logs.workspace, a->tenants.table, a->tenants.id,
                 a->audit_logs.tenant);
        int64_t moved = 0;
        st = where.oom ? TG_NOMEM
                       : quarantine_rows(r, audit, a->audit_logs.id, a->audit_logs.tenant,
                                         tg__buf_str(&where), &moved);
        q->total += moved;
    }
    tg__buf_free(&where);
    if (st == TG_OK)
        st = tg__commit(r->eng);
    if (st != TG_OK)
        tg__rollback(r->eng);
    q->st = st;
    /* a lock not taken in time: retried from the start; anything else ends the phase */
    return st == TG_OK ? TG__ST_OK : st == TG_BUSY ? TG__ST_BUSY : TG__ST_OK;
}

static int quarantine_orphans(pgr *r, const tg__target *t, size_t n) {
    int st = quarantine_ensure(r);
    if (st != TG_OK)
        return st;
    quarantine_args q = {t, n, 0, TG_OK};
    if ((st = retrying(r, "(every target)", "the quarantine", attempt_quarantine, &q)) != TG_OK)
        return st;
    if (q.st != TG_OK)
        return q.st;
    char note[160];
    waits_note(r, note, sizeof note);
    tg__engine_fail(r->eng, TG_OK,
                    "quarantine_orphans: %lld row%s whose tenant no longer exists moved to "
                    "tenantguard_quarantine%s",
                    (long long)q.total, q.total == 1 ? "" : "s", note);
    return TG_OK;
}

/* ---- phase 3: enforce_constraints ---- */

/* Adds constraint `name` to `table` NOT VALID (`def`: its definition) unless it is there,
 * then validates it unless it is validated. */
static int add_validated(pgr *r, const char *table, const char *name, const char *def,
                         int *changed) {
    int st = TG_OK;
    int state = constraint_state(r, table, name, &st);
    tg__buf sql = {0};
    if (st == TG_OK && state == 0) {
        tg__sqlf(&sql, r->d, "ALTER TABLE %I ADD CONSTRAINT %I %s NOT VALID", table, name, def);
        st = ddl(r, table, "ADD CONSTRAINT ... NOT VALID", &sql);
        state = 2;
        (*changed)++;
    }
    if (st == TG_OK && state == 2) {
        tg__sqlf(&sql, r->d, "ALTER TABLE %I VALIDATE CONSTRAINT %I", table, name);
        st = ddl(r, table, "VALIDATE CONSTRAINT", &sql);
        (*changed)++;
    }
    tg__buf_free(&sql);
    return st;
}

/* One tenant-owned table: NOT NULL through a validated CHECK, then its two foreign keys. */
static int enforce_table(pgr *r, const tg__target *x, int *changed) {
    const tg_app *a = &r->eng->rules->pub.app;
    const char *t = x->table, *W = x->cols->workspace, *T = x->cols->tenant;
    static const char *const check = "tenantguard_workspace_not_null";
    tg__buf sql = {0}, def = {0};
    int st = TG_OK;
    if (!column_not_null(r, t, W, &st) && st == TG_OK) {
        tg__sqlf(&def, r->d, "CHECK (%I IS NOT NULL)", W);
        st = def.oom ? TG_NOMEM : add_validated(r, t, check, tg__buf_str(&def), changed);
        tg__buf_reset(&def);
        /* a validated CHECK proves the column has no NULL: no scan (PostgreSQL 12+) */
        tg__sqlf(&sql, r->d, "ALTER TABLE %I ALTER COLUMN %I SET NOT NULL", t, W);
        if (st == TG_OK && (st = ddl(r, t, "SET NOT NULL", &sql)) == TG_OK)
            (*changed)++;
    }
    /* the CHECK has done its work (rerun: a leftover of a phase stopped after SET NOT NULL) */
    if (st == TG_OK && constraint_state(r, t, check, &st)) {
        tg__sqlf(&sql, r->d, "ALTER TABLE %I DROP CONSTRAINT IF EXISTS %I", t, check);
        if ((st = ddl(r, t, "DROP CONSTRAINT", &sql)) == TG_OK)
            (*changed)++;
    }
    tg__sqlf(&def, r->d, "FOREIGN KEY (%I) REFERENCES %I (%I)", W, a->workspaces.table,
             a->workspaces.id);
    if (st == TG_OK)
        st = def.oom ? TG_NOMEM
                     : add_validated(r, t, "tenantguard_workspace", tg__buf_str(&def), changed);
    tg__buf_reset(&def);
    tg__sqlf(&def, r->d, "FOREIGN KEY (%I, %I) REFERENCES %I (%I, %I)", T, W, a->tenants.table,
             a->tenants.id, a->tenants.workspace);
    if (st == TG_OK)
        st = def.oom
                 ? TG_NOMEM
                 : add_validated(r, t, "tenantguard_tenant_workspace", tg__buf_str(&def), changed);
    tg__buf_free(&def);
    tg__buf_free(&sql);
    return st;
}

static int enforce_constraints(pgr *r, const tg__target *t, size_t n) {
    const tg_app *a = &r->eng->rules->pub.app;
    int st = TG_OK;
    for (size_t i = 0; i < n; i++) {
        const char *table = t[i].table;
        if (tg__column_exists(r->db, table, t[i].cols->workspace) != 1)
            return tg__engine_fail(r->eng, TG_REFUSED,
                                   "enforce_constraints needs phase 1 first: '%s' has no %s "
                                   "column (run add_columns)",
                                   table, t[i].cols->workspace);
        /* a write that leaves the column to the guard would break on NOT NULL without it */
        if (!has_guard(r, table, &st) && st == TG_OK && !phase3_applied(r, table, &st))
            return tg__engine_fail(r->eng, TG_REFUSED,
                                   "enforce_constraints needs phase 1.5 first: '%s' has no write "
                                   "triggers (run enforce_writes)",
                                   table);
        if (st != TG_OK)
            return st;
    }
    tg_validation *v = NULL;
    if ((st = tg__validate_pg(r->eng, &v)) != TG_OK)
        return st;
    if (!v->ok) {
        tg__buf why = {0};
        for (size_t i = 0; i < v->n_checks; i++)
            if (v->checks[i].count)
                tg__buf_printf(&why, "%s%s %s: %lld", why.len ? ", " : "", v->checks[i].name,
                               v->checks[i].table ? v->checks[i].table : "",
                               (long long)v->checks[i].count);
        tg_validation_free(v);
        st = tg__engine_fail(r->eng, TG_REFUSED,
                             "enforce_constraints refused: validation finds rows to fix (%s); "
                             "run the backfill (and quarantine_orphans for rows whose tenant is "
                             "gone) first",
                             tg__buf_str(&why));
        tg__buf_free(&why);
        return st;
    }
    tg_validation_free(v);
    /* the composite foreign keys need a unique key on the tenants side: built concurrently,
     * then attached (a catalog change) */
    static const char *const unique = "tenantguard_tenants_id_workspace";
    int built = 0, redone = 0, tables = 0;
    tg__buf sql = {0};
    tg__sqlf(&sql, r->d, "%I, %I", a->tenants.id, a->tenants.workspace);
    if (constraint_state(r, a->tenants.table, unique, &st) == 0 && st == TG_OK) {
        if (!sql.oom)
            st = ensure_index(r, a->tenants.table, unique, tg__buf_str(&sql), 1, &built, &redone);
        tg__buf_reset(&sql);
        tg__sqlf(&sql, r->d, "ALTER TABLE %I ADD CONSTRAINT %I UNIQUE USING INDEX %I",
                 a->tenants.table, unique, unique);
        if (st == TG_OK)
            st = ddl(r, a->tenants.table, "ADD CONSTRAINT ... UNIQUE USING INDEX", &sql);
    }
    tg__buf_free(&sql);
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        int changed = 0;
        st = enforce_table(r, &t[i], &changed);
        if (st == TG_OK && changed) {
            char meta[200];
            snprintf(meta, sizeof meta, "{\"table\":\"%s\",\"lock_waits\":%d}", t[i].table,
                     r->waits);
            st = tg__audit(r->eng, "tenantguard.rollout.enforce_constraints", t[i].table, meta);
            tables++;
        }
    }
    /* the audit log: an entry with a tenant carries a workspace */
    const char *audit = tg__app_audit(r->eng);
    if (st == TG_OK && audit && a->audit_logs.tenant && a->audit_logs.workspace &&
        tg__column_exists(r->db, audit, a->audit_logs.workspace) == 1) {
        tg__buf def = {0};
        int changed = 0;
        tg__sqlf(&def, r->d, "CHECK (%I IS NULL OR %I IS NOT NULL)", a->audit_logs.tenant,
                 a->audit_logs.workspace);
        st = def.oom ? TG_NOMEM
                     : add_validated(r, audit, "tenantguard_audit_workspace", tg__buf_str(&def),
                                     &changed);
        tg__buf_free(&def);
        if (st == TG_OK && changed) {
            char meta[200];
            snprintf(meta, sizeof meta, "{\"table\":\"%s\",\"lock_waits\":%d}", audit, r->waits);
            st = tg__audit(r->eng, "tenantguard.rollout.enforce_constraints", audit, meta);
            tables++;
        }
    }
    if (st == TG_OK) {
        char note[160];
        waits_note(r, note, sizeof note);
        tg__engine_fail(r->eng, TG_OK,
                        "enforce_constraints: %d table%s changed: the workspace column NOT NULL "
                        "(from a validated CHECK), its foreign keys added NOT VALID then "
                        "validated%s%s",
                        tables, tables == 1 ? "" : "s", audit ? ", and the audit-log check" : "",
                        note);
    }
    return st;
}

/* ---- the entry points ---- */

int tg__rollout_pg_with(tg_engine *eng, const char *phase, const tg__target *t, size_t n,
                        const tg_rollout_options *o) {
    pgr r = {eng, eng->store, eng->store->dialect, phase, LOCK_TIMEOUT_MS, LOCK_RETRY_MS, 0, {0}};
    if (o && o->lock_timeout_ms > 0)
        r.lock_timeout_ms = o->lock_timeout_ms;
    if (o && o->lock_retry_ms > 0)
        r.retry_ms = o->lock_retry_ms;
    static const char *const phases[] = {"add_columns",        "drop_columns",
                                         "enforce_writes",     "drop_triggers",
                                         "quarantine_orphans", "enforce_constraints",
                                         "enable_rls",         "disable_rls"};
    size_t which = 0;
    while (which < sizeof phases / sizeof *phases && strcmp(phase, phases[which]))
        which++;
    if (which == sizeof phases / sizeof *phases)
        return tg__engine_fail(eng, TG_UNKNOWN,
                               "unknown phase '%s' (add_columns, drop_columns, enforce_writes, "
                               "drop_triggers, quarantine_orphans, enforce_constraints, "
                               "enable_rls, disable_rls)",
                               phase);
    if (which == 6 || which == 7) /* row-level security: pg_guard.c, one transaction */
        return tg__pg_rls(eng, t, n, which == 6);
    if (tg__db_in_transaction(r.db))
        return tg__engine_fail(eng, TG_MISUSE,
                               "%s: a transaction is open on the engine's connection (CREATE "
                               "INDEX CONCURRENTLY runs outside one)",
                               phase);
    int st = check_targets(&r, t, n);
    if (st != TG_OK)
        return st;
    if (which == 2 || which == 3) /* the guard's own statements and settings */
        return enforce_writes(&r, t, n, which == 3);
    if ((st = phase_begin(&r)) != TG_OK) {
        phase_end(&r);
        return st;
    }
    switch (which) {
    case 0: st = add_columns(&r, t, n); break;
    case 1: st = drop_columns(&r, t, n); break;
    case 4: st = quarantine_orphans(&r, t, n); break;
    default: st = enforce_constraints(&r, t, n); break;
    }
    phase_end(&r);
    return st;
}

#include <string.h>

int tg__rollout_pg(tg_engine *eng, const char *phase, const tg__target *t, size_t n) {
    return tg__rollout_pg_with(eng, phase, t, n, NULL);
}

/* ---- validation ---- */

/* count(*) of the statement in sql (reset after). */
static int64_t count_sql(pgr *r, tg__buf *sql, int *st) {
    int64_t n = sql->oom ? 0 : q_int(r, tg__buf_str(sql), NULL, NULL, 0, st);
    if (sql->oom && *st == TG_OK)
        *st = tg__engine_fail(r->eng, TG_NOMEM, "out of memory");
    tg__buf_reset(sql);
    return n;
}

/* The rows bound to a workspace that differs from their tenant's. The spec's query, as a
 * DBA runs it (a join to tenants, "<>"), plus the rows bound while their tenant is gone:
 * SQLite's check counts those too (its workspace is not the tenant's, there being none). */
static int64_t mismatched(pgr *r, const char *table, const char *T, const char *W, tg__buf *sql,
                          int *st) {
    const tg_app *a = &r->eng->rules->pub.app;
    tg__sqlf(sql, r->d,
             "SELECT count(*) FROM %I AS r JOIN %I AS t ON t.%I = r.%I WHERE r.%I IS NOT NULL "
             "AND r.%I <> t.%I",
             table, a->tenants.table, a->tenants.id, T, W, W, a->tenants.workspace);
    int64_t n = count_sql(r, sql, st);
    tg__sqlf(sql, r->d,
             "SELECT count(*) FROM %I AS r WHERE r.%I IS NOT NULL AND r.%I IS NOT NULL AND NOT "
             "EXISTS (SELECT 1 FROM %I AS t WHERE t.%I = r.%I)",
             table, T, W, a->tenants.table, a->tenants.id, T);
    return n + count_sql(r, sql, st);
}

int tg__validate_pg(tg_engine *eng, tg_validation **out) {
    *out = NULL;
    const tg_rules *rules = &eng->rules->pub;
    const tg_app *a = &rules->app;
    pgr r = {eng, eng->store, eng->store->dialect, "validation", 0, 0, 0, {0}};
    tg_validation *v = calloc(1, sizeof *v);
    if (!v)
        return TG_NOMEM;
    v->ok = 1;
    size_t cap = 0;
    tg__target t[TG__MAX_TARGETS];
    size_t n = tg__targets(rules, t, TG__MAX_TARGETS);
    const char *audit = tg__app_audit(eng);
    tg__buf sql = {0};
    /* one snapshot for every count (joining the caller's read snapshot, if any) */
    int st = tg__engine_read_begin(eng), began = st == TG_OK;
    for (size_t i = 0; i < n && st == TG_OK; i++) {
        int64_t nulls, bad = 0;
        const char *table = t[i].table, *T = t[i].cols->tenant, *W = t[i].cols->workspace;
        int c = tg__column_exists(r.db, table, W);
        if (c < 0) {
            st = tg__engine_fail(eng, TG_DB, "validation: %s", tg__db_errmsg(r.db));
            break;
        }
        if (c) {
            tg__sqlf(&sql, r.d, "SELECT count(*) FROM %I WHERE %I IS NULL", table, W);
            nulls = count_sql(&r, &sql, &st);
            bad = mismatched(&r, table, T, W, &sql, &st);
        } else {
            /* no column yet: every row is unbound */
            tg__sqlf(&sql, r.d, "SELECT count(*) FROM %I", table);
            nulls = count_sql(&r, &sql, &st);
        }
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "null_workspace", table, nulls);
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "workspace_mismatch", table, bad);
    }
    /* the audit-log checks apply to an app audit table (tenantguard_audit has no tenant) */
    if (st == TG_OK && audit && a->audit_logs.tenant && a->audit_logs.workspace) {
        int64_t bad = 0, mism = 0;
        if (tg__column_exists(r.db, audit, a->audit_logs.workspace) == 1) {
            tg__sqlf(&sql, r.d, "SELECT count(*) FROM %I WHERE %I IS NOT NULL AND %I IS NULL",
                     audit, a->audit_logs.tenant, a->audit_logs.workspace);
            bad = count_sql(&r, &sql, &st);
            mism = mismatched(&r, audit, a->audit_logs.tenant, a->audit_logs.workspace, &sql, &st);
        }
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "audit_tenant_without_workspace", audit, bad);
        if (st == TG_OK)
            st = tg__validation_add(v, &cap, "workspace_mismatch", audit, mism);
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
