/* The rollout and validation on PostgreSQL (see pg.h). */
#include "pg.h"

int tg__rollout_pg(tg_engine *eng, const char *phase, const tg__target *t, size_t n) {
    (void)phase, (void)t, (void)n;
    return TG__PG_NOT_YET(eng, "the rollout");
}

int tg__validate_pg(tg_engine *eng, tg_validation **out) {
    *out = NULL;
    return TG__PG_NOT_YET(eng, "validation");
}
