/* The engine: one database connection, the serving rule set, and what hangs off them. */
#ifndef TG_ENGINE_H
#define TG_ENGINE_H

#include "rules.h"

struct tg_engine {
    sqlite3 *db;
    char *db_path;
    tg_open_options opts; /* strings point into rules_dir/db_path below */
    char *rules_dir;
    tg__ruleset *rules;   /* serving rules, one reference */
    tg_findings *findings; /* of the last load or reload */
    tg__buf err;
    int closed;
};

/* Sets the engine's message and returns status. */
TG_HIDDEN int tg__engine_fail(tg_engine *eng, int status, const char *fmt, ...) TG_PRINTF(3, 4);

#endif
