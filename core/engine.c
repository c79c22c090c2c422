/* The engine: opens the database, loads the rules, reloads them atomically, and lints. */
#include "ctx.h"
#include "grants.h"
#include "store_pg.h"

#include <errno.h>
#include <sqlite3.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg__engine_fail(tg_engine *eng, int status, const char *fmt, ...) {
    /* formatted before the buffer is reset: an argument may point into it */
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__buf_reset(&eng->err);
    tg__buf_add(&eng->err, msg);
    return status;
}

static int fail_rules(tg_engine *eng, int status, const tg_findings *f) {
    tg__buf_reset(&eng->err);
    tg__findings_first_error(f, &eng->err);
    if (eng->err.len == 0)
        tg__buf_add(&eng->err, tg_strerror(status));
    return status;
}

/* Loads the rules and, with a database, the roles its role_grants table grants: every
 * load that sees a database (open, reload, lint, check) reads the table once, so what a
 * rule set grants is fixed when it is built, like everything else in it. */
static int load_rules(const tg_open_options *opts, tg__db *db, tg_findings *f,
                      tg__ruleset **out) {
    int st = tg__rules_load(opts, db, f, out);
    if (st == TG_OK && (st = tg__grants_read(*out, db, f)) != TG_OK) {
        tg__ruleset_release(*out);
        *out = NULL;
    }
    return st;
}

#define MAX_CACHE_KIB (INT64_C(1) << 30) /* 1 TiB in KiB: fits PRAGMA cache_size's int */
#define MIN_CACHE_KIB 64
#define MAX_MMAP (INT64_C(1) << 40)         /* 1 TiB */

/* The connection settings of the options, checked before anything is opened. */
static int check_settings(tg_engine *eng, const tg_open_options *o) {
    if (o->busy_timeout_ms < 0)
        return tg__engine_fail(eng, TG_MISUSE,
                               "tg_engine_open: the busy timeout must be 0 (default 5000) to %d "
                               "ms, got %d",
                               INT_MAX, o->busy_timeout_ms);
    if (o->cache_size_kib != 0 &&
        (o->cache_size_kib < MIN_CACHE_KIB || o->cache_size_kib > MAX_CACHE_KIB))
        return tg__engine_fail(eng, TG_MISUSE,
                               "tg_engine_open: the cache size must be 0 (SQLite's default) or "
                               "%d to %lld KiB, got %lld",
                               MIN_CACHE_KIB, (long long)MAX_CACHE_KIB,
                               (long long)o->cache_size_kib);
    if (o->auto_reload_ms < 0)
        return tg__engine_fail(eng, TG_MISUSE,
                               "tg_engine_open: auto_reload must be 0 (off) to %d ms, got %d",
                               INT_MAX, o->auto_reload_ms);
    if (o->statement_timeout_ms < -1)
        return tg__engine_fail(eng, TG_MISUSE,
                               "tg_engine_open: the statement timeout must be -1 (none), 0 "
                               "(default 30000) or 1 to %d ms, got %d",
                               INT_MAX, o->statement_timeout_ms);
    if (o->distributed < -1 || o->distributed > 1)
        return tg__engine_fail(eng, TG_MISUSE,
                               "tg_engine_open: distributed must be 0 (automatic), 1 (on) or -1 "
                               "(off), got %d",
                               o->distributed);
    if (o->mmap_size < 0 || o->mmap_size > MAX_MMAP)
        return tg__engine_fail(eng, TG_MISUSE,
                               "tg_engine_open: the mmap size must be 0 (none) to %lld bytes, "
                               "got %lld",
                               (long long)MAX_MMAP, (long long)o->mmap_size);
    return TG_OK;
}

/* The integer a pragma query returns; 0 when it returns none. */
static int pragma_int(sqlite3 *db, const char *sql, int64_t *out) {
    sqlite3_stmt *st = NULL;
    *out = 0;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Applies the page cache and mmap settings (numbers checked by check_settings, formatted as
 * numbers: nothing else reaches the pragma text) and reads back what SQLite made of them. */
static int apply_settings(tg_engine *eng) {
    sqlite3 *db = eng->db;
    tg_settings *s = &eng->settings;
    char sql[96];
    int rc = SQLITE_OK;
    if (eng->opts.cache_size_kib) {
        snprintf(sql, sizeof sql, "PRAGMA cache_size = %lld", -(long long)eng->opts.cache_size_kib);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && eng->opts.mmap_size) {
        snprintf(sql, sizeof sql, "PRAGMA mmap_size = %lld", (long long)eng->opts.mmap_size);
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    int64_t cache = 0;
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA page_size", &s->page_size);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA cache_size", &cache);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA mmap_size", &s->mmap_size);
    if (rc != SQLITE_OK)
        return tg__engine_fail(eng, TG_DB, "cannot configure database '%s': %s", eng->db_path,
                               sqlite3_errmsg(db));
    /* negative: KiB; positive: pages */
    s->cache_size_kib = cache < 0 ? -cache : cache * s->page_size / 1024;
    s->busy_timeout_ms = eng->opts.busy_timeout_ms > 0 ? eng->opts.busy_timeout_ms : 5000;
    s->synchronous = "normal";
    s->journal_mode = eng->journal_mode;
    s->backend = "sqlite";
    if (s->mmap_size < eng->opts.mmap_size)
        return tg__engine_fail(eng, TG_LIMIT,
                               "mmap_size %lld is above what this SQLite build allows (%lld "
                               "bytes)",
                               (long long)eng->opts.mmap_size, (long long)s->mmap_size);
    return TG_OK;
}

/* Opens a PostgreSQL database: a connection whose statements time out. The connection string
 * never appears in a message (it may hold a password): its target does. */
static int open_pg(tg_engine *eng) {
    tg__store_pg_options o = TG__STORE_PG_DEFAULTS;
    if (eng->opts.statement_timeout_ms)
        o.statement_timeout_ms = eng->opts.statement_timeout_ms < 0 ? 0
                                                                    : eng->opts.statement_timeout_ms;
    int rc = tg__store_pg_open(eng->db_path, &o, &eng->store);
    if (rc != TG__ST_OK) {
        int st = tg__engine_fail(eng, rc == TG__ST_NOMEM ? TG_NOMEM : TG_DB, "%s",
                                 eng->store ? tg__db_errmsg(eng->store) : "out of memory");
        tg__db_close(eng->store);
        eng->store = NULL;
        return st;
    }
    tg_settings *s = &eng->settings;
    memset(s, 0, sizeof *s);
    s->backend = "postgresql";
    s->journal_mode = s->synchronous = "";
    s->statement_timeout_ms = o.statement_timeout_ms;
    return TG_OK;
}

/* Opens the connection with the settings every writer and reader relies on. */
static int open_db(tg_engine *eng) {
    if (tg__store_is_postgres(eng->db_path))
        return open_pg(eng);
    int create = eng->opts.create ? SQLITE_OPEN_CREATE : 0;
    int rc = sqlite3_open_v2(eng->db_path, &eng->db,
                             SQLITE_OPEN_READWRITE | create | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        errno = 0;
        FILE *probe = create ? NULL : fopen(eng->db_path, "rb");
        if (!create && !probe && (errno == ENOENT || errno == ENOTDIR)) {
            sqlite3_close(eng->db);
            eng->db = NULL;
            return tg__engine_fail(eng, TG_IO, "no such database: %s", eng->db_path);
        }
        if (probe)
            fclose(probe);
        int st = tg__engine_fail(eng, TG_DB, "cannot open database '%s': %s", eng->db_path,
                                 eng->db ? sqlite3_errmsg(eng->db) : sqlite3_errstr(rc));
        sqlite3_close(eng->db);
        eng->db = NULL;
        return st;
    }
    sqlite3_extended_result_codes(eng->db, 1);
    sqlite3_busy_timeout(eng->db, eng->opts.busy_timeout_ms > 0 ? eng->opts.busy_timeout_ms
                                                                : 5000);
    char *msg = NULL;
    rc = sqlite3_exec(eng->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", NULL,
                      NULL, &msg);
    sqlite3_stmt *jm = NULL;
    if (rc == SQLITE_OK &&
        (rc = sqlite3_prepare_v2(eng->db, "PRAGMA journal_mode = WAL", -1, &jm, NULL)) ==
            SQLITE_OK) {
        if ((rc = sqlite3_step(jm)) == SQLITE_ROW) {
            const unsigned char *mode = sqlite3_column_text(jm, 0);
            snprintf(eng->journal_mode, sizeof eng->journal_mode, "%s",
                     mode ? (const char *)mode : "?");
            rc = SQLITE_OK;
        }
        sqlite3_finalize(jm);
    }
    if (rc != SQLITE_OK) {
        int st = tg__engine_fail(eng, TG_DB, "cannot configure database '%s': %s", eng->db_path,
                                 msg ? msg : sqlite3_errmsg(eng->db));
        sqlite3_free(msg);
        return st;
    }
    if (!(eng->store = tg__store_sqlite_wrap(eng->db, 0)))
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    return apply_settings(eng);
}

/* Distributed mode (tg_open_options.distributed): automatic on PostgreSQL when the server is
 * Citus, whose library defines the setting citus.version once loaded. */
static int set_distributed(tg_engine *eng) {
    int on = eng->opts.distributed > 0;
    if (eng->opts.distributed == 0 && eng->store->backend == TG__BACKEND_POSTGRES) {
        tg__stmt *q = NULL;
        int rc = tg__st_prepare_once(eng->store, "SELECT current_setting('citus.version', true)",
                                     &q);
        if (rc == TG__ST_OK && (rc = tg__st_step(q)) == TG__ST_ROW) {
            const char *v = tg__st_column_text(q, 0);
            on = v && v[0];
        }
        tg__st_finalize(q);
        if (rc != TG__ST_ROW)
            return tg__engine_fail(eng, TG_DB, "cannot tell whether the server is Citus: %s",
                                   tg__db_errmsg(eng->store));
    }
    eng->store->distributed = on;
    eng->settings.distributed = on;
    return TG_OK;
}

int tg_engine_open(const tg_open_options *opts, tg_engine **out) {
    if (!out)
        return TG_MISUSE;
    *out = NULL;
    tg_engine *eng = calloc(1, sizeof *eng);
    if (!eng)
        return TG_NOMEM;
    *out = eng;
    eng->refs = 1;
    if (!opts || !opts->rules || !opts->rules[0])
        return tg__engine_fail(eng, TG_MISUSE, "tg_engine_open: options.rules is required");
    eng->opts = *opts;
    int st = check_settings(eng, opts);
    if (st != TG_OK)
        return st;
    eng->rules_dir = strdup(opts->rules);
    eng->db_path = opts->db && opts->db[0] ? strdup(opts->db) : NULL;
    if (!eng->rules_dir || (opts->db && opts->db[0] && !eng->db_path))
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    eng->opts.rules = eng->rules_dir;
    eng->opts.db = eng->db_path;
    if (eng->db_path && ((st = open_db(eng)) != TG_OK || (st = set_distributed(eng)) != TG_OK))
        return st;
    eng->findings = tg__findings_new();
    if (!eng->findings)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    tg__watch_start(eng);
    st = load_rules(&eng->opts, eng->store, eng->findings, &eng->rules);
    if (st != TG_OK)
        return fail_rules(eng, st, eng->findings);
    return TG_OK;
}

void tg_engine_close(tg_engine *eng) {
    if (!eng || eng->closed)
        return;
    eng->closed = 1;
    /* an open snapshot ends with the handle: contexts that held it no longer decide */
    if (eng->read_depth) {
        eng->read_depth = 1;
        (void)tg__engine_read_end(eng);
    }
    tg__engine_release(eng);
}

/* Frees the engine once its handle is closed and no context uses it any more. */
void tg__engine_release(tg_engine *eng) {
    if (!eng || --eng->refs > 0)
        return;
    tg__plan_release(eng->plan);
    tg__ctx_free(eng->spare);
    tg__st_finalize(eng->read_begin);
    tg__st_finalize(eng->read_commit);
    if (eng->decision_file)
        fclose(eng->decision_file);
    tg__ruleset_release(eng->rules);
    tg_findings_free(eng->findings);
    tg__db_close(eng->store);
    if (eng->db)
        sqlite3_close_v2(eng->db);
    free(eng->rules_dir);
    free(eng->db_path);
    tg__buf_free(&eng->err);
    free(eng);
}

const char *tg_engine_errmsg(const tg_engine *eng) {
    if (!eng)
        return "out of memory";
    return eng->err.len ? tg__buf_str(&eng->err) : "ok";
}

int tg_engine_reload(tg_engine *eng) {
    if (!eng || !eng->rules_dir || eng->closed)
        return TG_MISUSE;
    if (eng->in_matrix) /* the run reads the serving rules throughout */
        return tg__engine_fail(eng, TG_BUSY, "the engine is busy: the matrix is running (reload "
                                             "called from its decision sink?)");
    tg_findings *f = tg__findings_new();
    if (!f)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    tg__ruleset *fresh = NULL;
    int st = load_rules(&eng->opts, eng->store, f, &fresh);
    tg_findings_free(eng->findings);
    eng->findings = f;
    if (st != TG_OK)
        return fail_rules(eng, st, f);
    tg__ruleset_release(eng->rules);
    eng->rules = fresh;
    /* open contexts keep the plan of their rule version; new ones get a new plan */
    tg__plan_release(eng->plan);
    eng->plan = NULL;
    tg__buf_reset(&eng->err);
    return TG_OK;
}

int tg__engine_plan(tg_engine *eng, tg__plan **out) {
    if (!eng->store)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    if (eng->plan && eng->plan->schema_gen == eng->schema_gen &&
        eng->plan->mutation == eng->mutation) {
        *out = eng->plan;
        return TG_OK;
    }
    tg__plan_release(eng->plan);
    eng->plan = NULL;
    tg__buf msg = {0};
    int st = tg__plan_new(eng->rules, eng->store, eng->schema_gen, eng->mutation, &msg, &eng->plan);
    if (st != TG_OK)
        tg__engine_fail(eng, st, "%s", msg.len ? tg__buf_str(&msg) : tg_strerror(st));
    tg__buf_free(&msg);
    *out = eng->plan;
    return st;
}

void tg__engine_schema_changed(tg_engine *eng) { eng->schema_gen++; }

int tg__engine_sqlite(tg_engine *eng, const char *what) {
    if (eng->db)
        return TG_OK;
    if (eng->store)
        return tg__engine_fail(eng, TG_MISUSE,
                               "%s is not available on PostgreSQL yet (decisions, writes and the "
                               "matrix are; the PostgreSQL rollout comes next): run it on a "
                               "SQLite copy, or apply the migration with your own tooling",
                               what);
    return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
}

const tg_findings *tg_engine_findings(const tg_engine *eng) { return eng ? eng->findings : NULL; }

int tg_engine_lint(tg_engine *eng, tg_findings **out) {
    if (!eng || !out)
        return TG_MISUSE;
    *out = tg__findings_new();
    if (!*out)
        return TG_NOMEM;
    tg__ruleset *rs = NULL;
    int st = load_rules(&eng->opts, eng->store, *out, &rs);
    tg__ruleset_release(rs);
    /* findings are the answer; a rule error is not a failure of the lint itself */
    return st == TG_RULES ? TG_OK : st;
}

const tg_rules *tg_engine_rules(const tg_engine *eng) {
    return eng && eng->rules ? &eng->rules->pub : NULL;
}

int tg_rules_check(const tg_open_options *opts, tg_findings **out) {
    if (!opts || !out)
        return TG_MISUSE;
    *out = tg__findings_new();
    if (!*out)
        return TG_NOMEM;
    sqlite3 *db = NULL;
    if (opts->db && tg__store_is_postgres(opts->db)) {
        tg__db *pg = NULL;
        tg__store_pg_options o = TG__STORE_PG_DEFAULTS;
        if (tg__store_pg_open(opts->db, &o, &pg) != TG__ST_OK) {
            tg__buf target = {0};
            tg__store_pg_target(opts->db, &target);
            tg__findings_add(*out, TG_LEVEL_ERROR, "file_error", tg__buf_str(&target), 0,
                             "cannot read the database: %s", pg ? tg__db_errmsg(pg) : "?");
            tg__buf_free(&target);
            tg__db_close(pg);
            return TG_DB;
        }
        tg__ruleset *rs = NULL;
        int st = load_rules(opts, pg, *out, &rs);
        tg__ruleset_release(rs);
        tg__db_close(pg);
        return st == TG_RULES ? TG_OK : st;
    }
    if (opts->db && opts->db[0]) {
        /* SQLite opens lazily: a text file opens fine and only fails at the first read, so
         * read the schema once here; a database that cannot be read is an error finding,
         * never a lint with nothing to compare against */
        if (sqlite3_open_v2(opts->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) !=
                SQLITE_OK) {
            tg__findings_add(*out, TG_LEVEL_ERROR, "file_error", opts->db, 0,
                             "cannot read the database: %s", db ? sqlite3_errmsg(db) : "?");
            sqlite3_close(db);
            return TG_DB;
        }
    }
    tg__ruleset *rs = NULL;
    tg__db *store = db ? tg__store_sqlite_wrap(db, 0) : NULL;
    int st = db && !store ? TG_NOMEM : load_rules(opts, store, *out, &rs);
    tg__ruleset_release(rs);
    tg__db_close(store);
    sqlite3_close(db);
    return st == TG_RULES ? TG_OK : st;
}

int tg_engine_settings(const tg_engine *eng, tg_settings *out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    if (!eng->store)
        return TG_MISUSE;
    *out = eng->settings;
    return TG_OK;
}

/* ---- read snapshots ---- */

/* Runs one of the prepared transaction statements. */
static int step_once(tg_engine *eng, tg__stmt **slot, const char *sql) {
    int rc = TG__ST_OK;
    if (!*slot)
        rc = tg__st_prepare(eng->store, sql, (size_t)-1, TG__PREP_PERSISTENT, slot);
    if (rc == TG__ST_OK) {
        rc = tg__st_step(*slot);
        tg__st_reset(*slot);
        if (rc == TG__ST_DONE)
            rc = TG__ST_OK;
    }
    return rc;
}

int tg__engine_read_begin(tg_engine *eng) {
    if (eng->read_depth > 0) {
        if (eng->read_depth == INT_MAX)
            return tg__engine_fail(eng, TG_LIMIT, "too many nested read snapshots");
        eng->read_depth++;
        return TG_OK;
    }
    if (tg__db_in_transaction(eng->store))
        return tg__engine_fail(eng, TG_MISUSE,
                               "cannot begin a read snapshot: the engine's connection is inside "
                               "a write transaction (a callback of run_matrix?)");
    int rc = step_once(eng, &eng->read_begin, eng->store->dialect->read_begin);
    if (rc != TG__ST_OK)
        return tg__engine_fail(eng, (rc & 0xff) == TG__ST_BUSY ? TG_BUSY : TG_DB,
                               "cannot begin a read snapshot: %s", tg__db_errmsg(eng->store));
    eng->read_depth = 1;
    return TG_OK;
}

int tg__engine_read_end(tg_engine *eng) {
    if (eng->read_depth <= 0)
        return tg__engine_fail(eng, TG_MISUSE, "no read snapshot is open");
    if (--eng->read_depth > 0)
        return TG_OK;
    /* SQLite may have ended the transaction itself (an I/O error rolls it back) */
    if (!tg__db_in_transaction(eng->store))
        return TG_OK;
    int rc = step_once(eng, &eng->read_commit, "COMMIT");
    if (rc != TG__ST_OK) {
        /* nothing was written: ending the transaction any way is enough */
        tg__engine_fail(eng, TG_DB, "ending the read snapshot: %s", tg__db_errmsg(eng->store));
        if (tg__db_in_transaction(eng->store))
            tg__db_exec(eng->store, "ROLLBACK");
        return tg__db_in_transaction(eng->store) ? TG_DB : TG_OK;
    }
    return TG_OK;
}

int tg_engine_read_begin(tg_engine *eng) {
    if (!eng || eng->closed)
        return TG_MISUSE;
    if (!eng->store)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    return tg__engine_read_begin(eng);
}

int tg_engine_read_end(tg_engine *eng) {
    if (!eng || eng->closed)
        return TG_MISUSE;
    return tg__engine_read_end(eng);
}

int tg__engine_writable(tg_engine *eng, const char *what) {
    if (eng->read_depth > 0)
        return tg__engine_fail(eng, TG_MISUSE, TG__SNAPSHOT_WRITE_MSG, what);
    return TG_OK;
}
