/* Shared by the rollout phases, the backfill and validation. */
#ifndef TG_ROLLOUT_H
#define TG_ROLLOUT_H

#include "engine.h"

/* A tenant-owned table the rollout binds, with its own key, tenant and workspace columns. */
typedef struct tg__target {
    const char *table;
    const tg_columns *cols;
} tg__target;

/* The tenant-owned tables the rules name: families, then residual entries. Returns the
 * count; *out points into the rules (valid while they are). At most `cap`. */
TG_HIDDEN size_t tg__targets(const tg_rules *r, tg__target *out, size_t cap);

/* The app's audit-log / operation-run table when the engine writes to it: mapped and (when
 * the mapping was left out) existing. NULL: tenantguard keeps its own (tenantguard_audit,
 * tenantguard_runs only). */
TG_HIDDEN const char *tg__app_audit(tg_engine *eng);
TG_HIDDEN const char *tg__app_runs(tg_engine *eng);
#define TG__MAX_TARGETS 512

/* Runs SQL without results; on failure sets the engine's message (prefixed with what). */
TG_HIDDEN int tg__exec(tg_engine *eng, const char *sql, const char *what);
/* BEGIN IMMEDIATE, retrying SQLITE_BUSY with backoff for up to ~30 s. */
TG_HIDDEN int tg__begin(tg_engine *eng);
TG_HIDDEN int tg__commit(tg_engine *eng);
TG_HIDDEN void tg__rollback(tg_engine *eng);
/* Creates tenantguard's own tables (runs, jobs, batches, unbound rows, quarantine). */
TG_HIDDEN int tg__meta_ensure(tg_engine *eng);
/* Writes an audit entry to the app's audit log (workspace/tenant NULL: a system action), or
 * to tenantguard_audit (created on first use) when the app has none. */
TG_HIDDEN int tg__audit(tg_engine *eng, const char *action, const char *subject,
                        const char *metadata_json);
/* Column facts: returns 1 when table.column exists, with *notnull set. 0 when not. */
TG_HIDDEN int tg__column(sqlite3 *db, const char *table, const char *column, int *notnull);
/* One integer from a query with up to two text parameters. */
TG_HIDDEN int64_t tg__count(sqlite3 *db, const char *sql, const char *a, const char *b, int *rc);

/* How the rollout addresses the rows of one table, whatever its primary key: by its rowid
 * (under whichever of rowid, _rowid_, oid no column shadows) or, in a WITHOUT ROWID table,
 * by its primary-key columns in key order. A walk in this order visits every row once,
 * whatever the keys' types (integers of the whole 64-bit range, text, blobs). */
#define TG__MAX_KEY 16
typedef struct tg__rowkey {
    int n;      /* key columns (1 for the rowid) */
    int rowid;  /* 1: keys[0] is a name of the rowid */
    int id_key; /* 1: the table's id column is its only key column (listed as is) */
    char keys[TG__MAX_KEY][128];
    const char *id; /* the table's id column (in the rules) */
} tg__rowkey;

/* Fills *k for `table`, whose id column (per the rules) is `id`; TG_REFUSED (with the
 * engine's message naming the table) when its rows cannot be addressed: no such table, every
 * rowid name shadowed by a column and no primary key, or a key too wide. */
TG_HIDDEN int tg__rowkey_of(tg_engine *eng, const char *table, const char *id, tg__rowkey *k);
/* Appends "alias.k1, alias.k2, ..." (alias may be NULL). */
TG_HIDDEN void tg__rowkey_list(const tg__rowkey *k, const char *alias, tg__buf *b);
/* Appends "(alias.k1, ...) = (other.k1, ...)": the same row (e.g. alias NULL, other NEW). */
TG_HIDDEN void tg__rowkey_same(const tg__rowkey *k, const char *alias, const char *other,
                               tg__buf *b);
/* Appends the expression that names a row in the engine's lists (unbound rows, quarantine):
 * the id column when it is the only key, the rowid, or a JSON array of the key columns. */
TG_HIDDEN void tg__rowkey_label(const tg__rowkey *k, const char *alias, tg__buf *b);

/* Appends a check (name and table are static or the rules') to a validation report, growing
 * its array (capacity *cap); a count other than 0 makes the report not ok. validate.c */
TG_HIDDEN int tg__validation_add(tg_validation *v, size_t *cap, const char *name,
                                 const char *table, int64_t count);

/* The statuses run control `action` moves a run from (up to three, NULL-terminated) and the
 * one it moves it to; TG_UNKNOWN with the engine's message for an unknown action. */
TG_HIDDEN int tg__control_transition(tg_engine *eng, const char *action, const char *from[3],
                                     const char **to);

#endif
