/* tenantguard's tables and the backfill on PostgreSQL (see pg.h). */
#include "pg.h"

int tg__meta_ensure_pg(tg_engine *eng) { return TG__PG_NOT_YET(eng, "the backfill"); }

int tg__backfill_dry_run_pg(tg_engine *eng, tg_backfill_plan **out) {
    *out = NULL;
    return TG__PG_NOT_YET(eng, "the backfill");
}

int tg__backfill_start_pg(tg_engine *eng, const tg_backfill_options *o, int64_t *run_id) {
    (void)o;
    *run_id = 0;
    return TG__PG_NOT_YET(eng, "the backfill");
}

int tg__backfill_status_pg(tg_engine *eng, int64_t run_id, tg_run_info *out) {
    (void)run_id, (void)out;
    return TG__PG_NOT_YET(eng, "the backfill");
}

int tg__backfill_control_pg(tg_engine *eng, int64_t run_id, const char *action) {
    (void)run_id, (void)action;
    return TG__PG_NOT_YET(eng, "the backfill");
}

int tg__work_pg(tg_engine *eng, const tg_work_options *o, tg_work_result *out) {
    (void)o, (void)out;
    return TG__PG_NOT_YET(eng, "the backfill");
}
