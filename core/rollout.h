/* Shared by the rollout phases, the backfill and validation. */
#ifndef TG_ROLLOUT_H
#define TG_ROLLOUT_H

#include "engine.h"

/* The tenant-owned tables the rules name: families, then residual entries. Returns the
 * count; *out points into the rules (valid while they are). At most `cap`. */
TG_HIDDEN size_t tg__targets(const tg_rules *r, const char **out, size_t cap);
#define TG__MAX_TARGETS 512

/* Runs SQL without results; on failure sets the engine's message (prefixed with what). */
TG_HIDDEN int tg__exec(tg_engine *eng, const char *sql, const char *what);
/* BEGIN IMMEDIATE, retrying SQLITE_BUSY with backoff for up to ~30 s. */
TG_HIDDEN int tg__begin(tg_engine *eng);
TG_HIDDEN int tg__commit(tg_engine *eng);
TG_HIDDEN void tg__rollback(tg_engine *eng);
/* Creates tenantguard's own tables (runs, jobs, batches, unbound rows, quarantine). */
TG_HIDDEN int tg__meta_ensure(tg_engine *eng);
/* Writes an audit entry to the app's audit log (workspace/tenant NULL: a system action). */
TG_HIDDEN int tg__audit(tg_engine *eng, const char *action, const char *subject,
                        const char *metadata_json);
/* Column facts: returns 1 when table.column exists, with *notnull set. 0 when not. */
TG_HIDDEN int tg__column(sqlite3 *db, const char *table, const char *column, int *notnull);
/* One integer from a query with up to two text parameters. */
TG_HIDDEN int64_t tg__count(sqlite3 *db, const char *sql, const char *a, const char *b, int *rc);

#endif
