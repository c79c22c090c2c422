/* The PostgreSQL side of the rollout, the backfill and validation (issue 13): the server as
 * the last line. The public entry points (tg_rollout, tg_backfill_*, tg_work, tg_validate)
 * hand an engine on PostgreSQL to these; SQLite keeps rollout.c, backfill.c, validate.c.
 *   rollout_pg.c   phases without long locks (lock_timeout, retries, CREATE INDEX
 *                  CONCURRENTLY, NOT VALID then VALIDATE), validation, the Citus plan
 *   pg_guard.c     the write guard in the server (PL/pgSQL triggers) and row-level security
 *                  generated from the rules; ctx:query; the RLS lint
 *   backfill_pg.c  tenantguard's bookkeeping tables, the queued backfill and its workers */
#ifndef TG_PG_H
#define TG_PG_H

#include "rollout.h"

/* rollout_pg.c: tg_rollout on PostgreSQL (phase as tg_rollout takes it; targets checked) */
TG_HIDDEN int tg__rollout_pg(tg_engine *eng, const char *phase, const tg__target *t, size_t n);
/* rollout_pg.c: the same with tg_rollout_with's options (NULL: the defaults) */
TG_HIDDEN int tg__rollout_pg_with(tg_engine *eng, const char *phase, const tg__target *t,
                                  size_t n, const tg_rollout_options *opts);
/* rollout_pg.c: tg_validate on PostgreSQL */
TG_HIDDEN int tg__validate_pg(tg_engine *eng, tg_validation **out);

/* pg_guard.c: phase 1.5 (install = 1) or its removal (0): the PL/pgSQL write guard */
TG_HIDDEN int tg__pg_guard(tg_engine *eng, const tg__target *t, size_t n, int install);
/* pg_guard.c: "enable_rls" (enable = 1) or "disable_rls" (0): row-level security (ENABLE,
 * FORCE and the policy tenantguard_tenant keyed on tenantguard.tenant_id) on every target */
TG_HIDDEN int tg__pg_rls(tg_engine *eng, const tg__target *t, size_t n, int enable);
/* pg_guard.c: lint on PostgreSQL (catalog.c): the ways row-level security silently stops
 * applying (rls_* findings); nothing when no tenant-owned table has it on */
struct tg__ruleset;
TG_HIDDEN void tg__pg_rls_lint(const struct tg__ruleset *rs, tg__db *db, tg_findings *f);

/* backfill_pg.c: tenantguard's own tables on PostgreSQL (runs, jobs, batches, ...) */
TG_HIDDEN int tg__meta_ensure_pg(tg_engine *eng);
/* backfill_pg.c: the backfill entry points on PostgreSQL */
TG_HIDDEN int tg__backfill_dry_run_pg(tg_engine *eng, tg_backfill_plan **out);
TG_HIDDEN int tg__backfill_start_pg(tg_engine *eng, const tg_backfill_options *o,
                                    int64_t *run_id);
TG_HIDDEN int tg__backfill_status_pg(tg_engine *eng, int64_t run_id, tg_run_info *out);
/* The run's state in the app's operation run (PostgreSQL's JSON), inside the caller's
 * transaction; TG_OK when the app has no operation-runs table. */
TG_HIDDEN int tg__sync_operation_run_pg(tg_engine *eng, int64_t run);
TG_HIDDEN int tg__work_pg(tg_engine *eng, const tg_work_options *o, tg_work_result *out);

/* What a piece not written yet says. */
#define TG__PG_NOT_YET(eng, what)                                                              \
    tg__engine_fail((eng), TG_MISUSE,                                                          \
                    "%s is not available on PostgreSQL yet: run it on a SQLite copy, or apply " \
                    "the migration with your own tooling",                                     \
                    (what))

#endif
