/* The PostgreSQL backend of the store (store_pg.c, libpq). Nothing of libpq is visible here:
 * the core sees a tg__db like any other. */
#ifndef TG_STORE_PG_H
#define TG_STORE_PG_H

#include "store.h"

typedef struct tg__store_pg_options {
    /* SET statement_timeout on every (re)connection: a statement running longer is cancelled
     * by the server and reported as TG__ST_BUSY. 0: no timeout. */
    int statement_timeout_ms;
    /* libpq's connect_timeout (seconds), unless the connection string gives one. 0: none. */
    int connect_timeout_s;
    /* application_name, unless the connection string gives one. NULL: "tenantguard". */
    const char *application_name;
} tg__store_pg_options;

/* The defaults: a 30 s statement timeout, a 10 s connect timeout, "tenantguard". */
#define TG__STORE_PG_DEFAULTS {30000, 10, NULL}

/* Opens a PostgreSQL database: conninfo is any libpq connection string, keyword/value
 * ("host=/run/pg dbname=app") or URI ("postgresql://app@db.internal/app"); o NULL: the
 * defaults. *out is set even on failure (read its message, then close it either way);
 * messages name the target without its password. Returns TG__ST_OK, TG__ST_IOERR (the
 * server could not be reached or refused the login), TG__ST_ERROR (a malformed connection
 * string; a build without libpq) or TG__ST_NOMEM. */
TG_HIDDEN int tg__store_pg_open(const char *conninfo, const tg__store_pg_options *o,
                                tg__db **out);

/* The target of a connection string, for messages: "postgresql://user@host:port/dbname"
 * with no password, whatever the form of conninfo. Appended to b; a string libpq cannot
 * parse appends "(an unparsable connection string)". */
TG_HIDDEN void tg__store_pg_target(const char *conninfo, tg__buf *b);

/* Copies the tables of a SQLite database into a PostgreSQL one (pg_load.c): see
 * `tenantguard pg-load --help` for what is copied and how types map. One transaction; on
 * failure nothing is left behind and err says why. */
typedef struct tg__pg_load_options {
    const char *from;       /* the SQLite file (opened read-only) */
    const char *to;         /* the PostgreSQL connection string */
    const char *owner_role; /* SET ROLE to it first, so it owns the tables (NULL: the login) */
    const char *grant_to;   /* GRANT SELECT, INSERT, UPDATE, DELETE on every table (NULL: none) */
    int int_type_integer;   /* 1: INT columns become integer, not bigint */
    int uuid_auto;          /* 1: text columns whose every value is a canonical UUID: uuid */
    int replace;            /* 1: drop tables that exist already (else an error) */
    /* when not NULL, called after each table with its name and row count */
    void (*progress)(void *ud, const char *table, int64_t rows);
    void *ud;
} tg__pg_load_options;
/* Returns TG__ST_OK, or another TG__ST_* with the message in err. */
TG_HIDDEN int tg__pg_load(const tg__pg_load_options *o, tg__buf *err);

#endif
