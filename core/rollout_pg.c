/* The rollout and validation on PostgreSQL (see pg.h). */
#include "pg.h"

#include <string.h>

int tg__rollout_pg(tg_engine *eng, const char *phase, const tg__target *t, size_t n) {
    /* phase 1.5 and row-level security: pg_guard.c */
    if (strcmp(phase, "enforce_writes") == 0 || strcmp(phase, "drop_triggers") == 0)
        return tg__pg_guard(eng, t, n, phase[0] == 'e');
    if (strcmp(phase, "enable_rls") == 0 || strcmp(phase, "disable_rls") == 0)
        return tg__pg_rls(eng, t, n, phase[0] == 'e');
    (void)phase, (void)t, (void)n;
    return TG__PG_NOT_YET(eng, "the rollout");
}

int tg__validate_pg(tg_engine *eng, tg_validation **out) {
    *out = NULL;
    return TG__PG_NOT_YET(eng, "validation");
}
