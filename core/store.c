/* What the store does whatever the backend: telling a PostgreSQL target from a SQLite file,
 * and the answers of a build without libpq. */
#include "store_pg.h"

#include <string.h>

int tg__store_is_postgres(const char *target) {
    if (!target)
        return 0;
    if (strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0)
        return 1;
    /* a libpq keyword/value string: "host=... dbname=..." (a file name never has '=' before
     * any '/', and "./a=b.db" still opens the file) */
    const char *eq = strchr(target, '=');
    return eq && !memchr(target, '/', (size_t)(eq - target));
}

#if !TG_HAVE_POSTGRES
#include <stdlib.h>

#define TG__NO_PG "this build has no PostgreSQL support (libpq-dev was missing at build time)"

/* A closed connection that only reports why: enough for the callers' error paths. */
typedef struct nopg_db {
    tg__db base;
} nopg_db;

static int nopg_prepare(tg__db *db, const char *sql, size_t len, unsigned flags, tg__stmt **out) {
    (void)db, (void)sql, (void)len, (void)flags;
    *out = NULL;
    return TG__ST_ERROR;
}
static int nopg_exec(tg__db *db, const char *sql) {
    (void)db, (void)sql;
    return TG__ST_ERROR;
}
static const char *nopg_errmsg(tg__db *db) {
    (void)db;
    return TG__NO_PG;
}
static int64_t nopg_changes(tg__db *db) {
    (void)db;
    return 0;
}
static int nopg_in_transaction(tg__db *db) {
    (void)db;
    return 0;
}
static int nopg_constraint(tg__db *db) {
    (void)db;
    return TG__CONSTRAINT_OTHER;
}
static int nopg_set_scope(tg__db *db, const char *tenant, const char *workspace, int wide) {
    (void)db, (void)tenant, (void)workspace, (void)wide;
    return TG__ST_ERROR;
}
static void nopg_close(tg__db *db) { free(db); }

static const char *nopg_failure_object(tg__db *db, int column) {
    (void)db, (void)column;
    return NULL;
}
static const tg__db_ops nopg_ops = {nopg_prepare,        nopg_exec,       nopg_errmsg,
                                    nopg_changes,        nopg_changes,    nopg_in_transaction,
                                    nopg_constraint,     nopg_changes,    nopg_set_scope,
                                    nopg_close,          nopg_failure_object};

int tg__store_pg_open(const char *conninfo, const tg__store_pg_options *o, tg__db **out) {
    (void)conninfo, (void)o;
    nopg_db *d = calloc(1, sizeof *d);
    *out = d ? &d->base : NULL;
    if (!d)
        return TG__ST_NOMEM;
    d->base.ops = &nopg_ops;
    d->base.backend = TG__BACKEND_POSTGRES;
    return TG__ST_ERROR;
}

void tg__store_pg_target(const char *conninfo, tg__buf *b) {
    (void)conninfo;
    tg__buf_add(b, "(a PostgreSQL database)");
}

int tg__pg_load(const tg__pg_load_options *o, tg__buf *err) {
    (void)o;
    tg__buf_add(err, TG__NO_PG);
    return TG__ST_ERROR;
}
#endif
