/* The engine: one database connection, the serving rule set, and what hangs off them. */
#ifndef TG_ENGINE_H
#define TG_ENGINE_H

#include "plan.h"

#include <stdio.h>

/* The SQLite connection, for the SQLite-only modules (rollout.c, backfill.c, validate.c and
 * the engine's own connection set-up); everything else uses the store. */
typedef struct sqlite3 sqlite3;

struct tg_engine {
    int refs;             /* the caller's handle plus one per open context */
    unsigned schema_gen;  /* bumped by every schema change the engine makes */
    int mutation;         /* TG__MUT_*: only while tg_run_matrix runs a mutant */
    tg__plan *plan;       /* for the serving rules and current schema; built lazily */
    tg_decision_sink sink;
    void *sink_ud;
    FILE *decision_file;
    unsigned declog_flags; /* TG_DECLOG_* (tg_engine_set_decision_options) */
    struct tg_ctx *spare; /* a closed context whose storage the next one reuses */
    sqlite3 *db;          /* SQLite only: for the rollout, backfill and validation */
    tg__db *store;        /* the connection every other part talks to (store.h) */
    char *db_path;
    tg_open_options opts; /* strings point into rules_dir/db_path below */
    char *rules_dir;
    tg__ruleset *rules;   /* serving rules, one reference */
    tg_findings *findings; /* of the last load or reload */
    tg__buf err;
    int closed;
    int working;          /* tg_work is running (its progress callback may call back) */
    int in_matrix;        /* tg_run_matrix is running (its decision sink may call back) */
    /* read snapshots (tg_engine_read_begin/end, contexts opened with `snapshot`): how many
     * holders share the connection's read transaction; 0: autocommit */
    int read_depth;
    tg__stmt *read_begin; /* "BEGIN" and "COMMIT", prepared once */
    tg__stmt *read_commit;
    tg_settings settings;     /* as applied to the connection at open */
    char journal_mode[16];    /* settings.journal_mode points here */
    /* automatic reload (watch.c): the stamp of the rule files as last loaded or tried, the
     * monotonic time (ms) before which tg_ctx_open does not look again, and whether a look
     * is in progress (its callback may open contexts) */
    uint64_t watch_stamp;
    int64_t watch_next_ms;
    int watch_busy;
};

/* The plan for the serving rules and the current schema (built on first use). */
TG_HIDDEN int tg__engine_plan(tg_engine *eng, tg__plan **out);
TG_HIDDEN void tg__engine_release(tg_engine *eng);
/* TG_OK on a SQLite engine; else TG_MISUSE with a message that `what` (the rollout, the
 * backfill, validation) needs SQLite for now, or a database at all. */
TG_HIDDEN int tg__engine_sqlite(tg_engine *eng, const char *what);
/* Called after the engine changed the schema: later contexts get a fresh plan. */
TG_HIDDEN void tg__engine_schema_changed(tg_engine *eng);

/* Joins or opens the engine's read snapshot (tg_engine_read_begin without the checks of a
 * public call) and leaves it (tg_engine_read_end). */
TG_HIDDEN int tg__engine_read_begin(tg_engine *eng);
TG_HIDDEN int tg__engine_read_end(tg_engine *eng);
/* TG_OK, or TG_MISUSE with the engine's message saying `what` cannot run inside a read
 * snapshot: every entry point that writes calls it before writing anything. */
TG_HIDDEN int tg__engine_writable(tg_engine *eng, const char *what);
/* The message of a refused write, for a context's own message. */
#define TG__SNAPSHOT_WRITE_MSG                                                                 \
    "%s inside a read snapshot: writes are refused until it ends (eng:read returns, "          \
    "tg_engine_read_end, or the snapshot context closes)"

/* Automatic reload (watch.c). tg__watch_start records the stamp of the rule files before
 * the first load; tg__watch_check, at every tg_ctx_open, reloads when the interval has
 * passed and the stamp changed. TG_MISUSE when the reload callback closed the engine (then
 * the engine may be freed already). */
TG_HIDDEN void tg__watch_start(tg_engine *eng);
TG_HIDDEN int tg__watch_check(tg_engine *eng);
/* Writes a reload event to the decision file (declog.c). */
TG_HIDDEN void tg__declog_reload(tg_engine *eng, int status, const char *previous_version,
                                 const char *message);

/* Sets the engine's message and returns status. */
TG_HIDDEN int tg__engine_fail(tg_engine *eng, int status, const char *fmt, ...) TG_PRINTF(3, 4);

#endif
