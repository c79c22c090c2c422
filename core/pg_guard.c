/* The write guard in the server and row-level security on PostgreSQL (see pg.h). */
#include "pg.h"

int tg__pg_guard(tg_engine *eng, const tg__target *t, size_t n, int install) {
    (void)t, (void)n, (void)install;
    return TG__PG_NOT_YET(eng, "the write guard in the server");
}
