/* tg_engine_open never creates a database file unless asked: a mistyped path is the error
 * "no such database: PATH" (TG_IO), not a fresh empty database that every check then passes.
 * Argument 1 is the source directory (for the shipped rules). */
#include "tenantguard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tg_test.h"

static int exists(const char *path) { return access(path, F_OK) == 0; }

int main(int argc, char **argv) {
    const char *src = argc > 1 ? argv[1] : ".";
    char tmp[64], db[128], deep[160], rules[600];
    snprintf(tmp, sizeof tmp, "/tmp/tg_c_open_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(db, sizeof db, "%s/typo.db", tmp);
    snprintf(deep, sizeof deep, "%s/no/such/dir.db", tmp);
    snprintf(rules, sizeof rules, "%s/rules", src);

    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_IO);
    CHECK(strstr(tg_engine_errmsg(eng), "no such database: ") != NULL);
    CHECK(strstr(tg_engine_errmsg(eng), db) != NULL);
    tg_engine_close(eng);
    CHECK(!exists(db));
    char side[160];
    snprintf(side, sizeof side, "%s-wal", db);
    CHECK(!exists(side));

    o.db = deep;
    CHECK(tg_engine_open(&o, &eng) == TG_IO);
    CHECK(strstr(tg_engine_errmsg(eng), "no such database: ") != NULL);
    tg_engine_close(eng);

    /* asked to, it creates the file (the shipped rules then miss their tables) */
    o.db = db;
    o.create = 1;
    CHECK(tg_engine_open(&o, &eng) == TG_RULES);
    CHECK(strstr(tg_engine_errmsg(eng), "[missing_table]") != NULL);
    tg_engine_close(eng);
    CHECK(exists(db));

    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return tg_test_done();
}
