/* The store: one interface to the database, whatever the backend. The resolver, the write
 * guard, the matrix and the catalog checks talk only to this; no SQLite or libpq type or
 * call is visible outside a backend's own file (store_sqlite.c, store_pg.c).
 *
 * It mirrors the shape of a prepared-statement API (prepare once, bind typed values, step
 * through rows, reset, finalize), so one statement per decision stays one statement on every
 * backend. Result codes and value types have the values SQLite gives them, so code reads the
 * same whichever backend answers. */
#ifndef TG_STORE_H
#define TG_STORE_H

#include "util.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Result codes. */
enum {
    TG__ST_OK = 0,
    TG__ST_ERROR = 1,
    TG__ST_BUSY = 5,      /* locked by another connection, or the statement timed out */
    TG__ST_LOCKED = 6,
    TG__ST_NOMEM = 7,
    TG__ST_IOERR = 10,    /* the connection is lost (PostgreSQL) or the file unreadable */
    TG__ST_CONSTRAINT = 19,
    TG__ST_MISUSE = 21,
    TG__ST_ROW = 100,
    TG__ST_DONE = 101
};

/* Value types of a result column. */
enum { TG__T_INTEGER = 1, TG__T_FLOAT = 2, TG__T_TEXT = 3, TG__T_BLOB = 4, TG__T_NULL = 5 };

/* Backends. */
enum { TG__BACKEND_SQLITE = 1, TG__BACKEND_POSTGRES = 2 };

/* Flags of tg__st_prepare. */
enum {
    TG__PREP_PERSISTENT = 1, /* kept for the connection's life: prepared once, reused */
    TG__PREP_SCOPED = 2      /* a decision's or a write's own statement: it runs under the
                              * scope set_scope gave (row-level security); no other does, so a
                              * scope a decision left never reaches validation, the backfill or
                              * the rollout on the same connection */
};

typedef struct tg__db tg__db;
typedef struct tg__stmt tg__stmt;
struct tg__dialect;

/* One column of the current row, read in one call: its type and value (p and n for text and
 * blobs, valid as column_text's bytes are; text is NUL-terminated). */
typedef struct tg__cell {
    int type; /* TG__T_* */
    int64_t i;
    double d;
    const void *p;
    size_t n;
} tg__cell;

typedef struct tg__stmt_ops {
    int (*step)(tg__stmt *st);
    int (*reset)(tg__stmt *st);
    int (*clear_bindings)(tg__stmt *st);
    void (*finalize)(tg__stmt *st);
    int (*bind_int64)(tg__stmt *st, int i, int64_t v);
    int (*bind_double)(tg__stmt *st, int i, double v);
    /* copy: the store keeps its own copy; else s must stay valid until the next step or
     * reset that follows (what the callers here always do) */
    int (*bind_text)(tg__stmt *st, int i, const char *s, size_t n, int copy);
    int (*bind_blob)(tg__stmt *st, int i, const void *p, size_t n, int copy);
    int (*bind_null)(tg__stmt *st, int i);
    /* n keys (integers, text, blobs) as one array parameter, for "= ANY($i)" (PostgreSQL);
     * TG__ST_MISUSE on a backend without arrays (the dialect's bulk_array is 0 there) */
    int (*bind_keys)(tg__stmt *st, int i, const tg_value *keys, size_t n);
    int (*param_count)(tg__stmt *st);
    /* NULL for a parameter the statement does not use; else its name (":name"), or for a
     * positional one its text ("?3") or just "$" */
    const char *(*param_name)(tg__stmt *st, int i);
    int (*column_count)(tg__stmt *st);
    int (*column_type)(tg__stmt *st, int col);
    int64_t (*column_int64)(tg__stmt *st, int col);
    double (*column_double)(tg__stmt *st, int col);
    /* text and blob bytes stay valid until the next step, reset or finalize */
    const char *(*column_text)(tg__stmt *st, int col);
    const void *(*column_blob)(tg__stmt *st, int col);
    size_t (*column_bytes)(tg__stmt *st, int col);
    void (*column)(tg__stmt *st, int col, tg__cell *out);
    const char *(*sql)(tg__stmt *st);
    /* the name of a result column of the current row (ctx:query's raw SQL); valid as
     * column_text's bytes are; NULL when there is no row */
    const char *(*column_name)(tg__stmt *st, int col);
} tg__stmt_ops;

struct tg__stmt {
    const tg__stmt_ops *ops;
    tg__db *db;
};

typedef struct tg__db_ops {
    int (*prepare)(tg__db *db, const char *sql, size_t len, unsigned flags, tg__stmt **out);
    /* runs statements without results (several, separated by ';' on SQLite) */
    int (*exec)(tg__db *db, const char *sql);
    const char *(*errmsg)(tg__db *db);
    int64_t (*changes)(tg__db *db);       /* rows the last statement changed */
    int64_t (*total_changes)(tg__db *db); /* rows changed since the connection opened */
    int (*in_transaction)(tg__db *db);    /* an explicit transaction is open */
    int (*constraint)(tg__db *db);        /* TG__CONSTRAINT_* of the last failure */
    int64_t (*last_insert_id)(tg__db *db); /* the key the last INSERT generated */
    /* The tenant (and workspace) as text that every later statement runs under, NULL: none.
     * PostgreSQL: each statement is sent in one pipeline with set_config(..., true) of
     * tenantguard.tenant_id and tenantguard.workspace_id before it, in the same transaction
     * and round trip, so row-level security from the rules lets the engine see its tenant's
     * rows (and nothing is left on the connection). With `wide` the tenant is "" and
     * tenantguard.workspace_wide is the workspace: the policy then shows the rows of every
     * tenant of that workspace, for the engine's own statements that have no route tenant
     * (the canonical viewer) or read workspace-wide (scope exceptions), whose checks then
     * narrow them as without row-level security. A no-op elsewhere. */
    int (*set_scope)(tg__db *db, const char *tenant, const char *workspace, int wide);
    void (*close)(tg__db *db);
    /* The column (column != 0) or the constraint the last failure names, from the server's
     * error fields rather than its message, which may be in any language: PostgreSQL only
     * (PG_DIAG_COLUMN_NAME, PG_DIAG_CONSTRAINT_NAME); NULL elsewhere or when not given. */
    const char *(*failure_object)(tg__db *db, int column);
} tg__db_ops;

struct tg__db {
    const tg__db_ops *ops;
    const struct tg__dialect *dialect;
    int backend; /* TG__BACKEND_* */
    /* Reads by id pin the route tenant (tg__table_shape.pin_tenant) on every table: set by the
     * engine for a distributed database (tg_open_options.distributed) */
    int distributed;
};

/* ---- calls (thin: one indirect call each) ---- */

static inline int tg__st_prepare(tg__db *db, const char *sql, size_t len, unsigned flags,
                                 tg__stmt **out) {
    return db->ops->prepare(db, sql, len, flags, out);
}
static inline int tg__st_step(tg__stmt *st) { return st->ops->step(st); }
static inline int tg__st_reset(tg__stmt *st) { return st ? st->ops->reset(st) : TG__ST_OK; }
static inline int tg__st_clear_bindings(tg__stmt *st) { return st->ops->clear_bindings(st); }
static inline void tg__st_finalize(tg__stmt *st) {
    if (st)
        st->ops->finalize(st);
}
static inline int tg__st_bind_int64(tg__stmt *st, int i, int64_t v) {
    return st->ops->bind_int64(st, i, v);
}
static inline int tg__st_bind_double(tg__stmt *st, int i, double v) {
    return st->ops->bind_double(st, i, v);
}
static inline int tg__st_bind_text(tg__stmt *st, int i, const char *s, size_t n, int copy) {
    return st->ops->bind_text(st, i, s, n, copy);
}
static inline int tg__st_bind_blob(tg__stmt *st, int i, const void *p, size_t n, int copy) {
    return st->ops->bind_blob(st, i, p, n, copy);
}
static inline int tg__st_bind_null(tg__stmt *st, int i) { return st->ops->bind_null(st, i); }
static inline int tg__st_bind_keys(tg__stmt *st, int i, const tg_value *keys, size_t n) {
    return st->ops->bind_keys(st, i, keys, n);
}
/* A NUL-terminated string, bound without a copy. */
static inline int tg__st_bind_str(tg__stmt *st, int i, const char *s) {
    return s ? st->ops->bind_text(st, i, s, strlen(s), 0) : st->ops->bind_null(st, i);
}
static inline int tg__st_param_count(tg__stmt *st) { return st->ops->param_count(st); }
static inline const char *tg__st_param_name(tg__stmt *st, int i) {
    return st->ops->param_name(st, i);
}
static inline int tg__st_column_count(tg__stmt *st) { return st->ops->column_count(st); }
static inline int tg__st_column_type(tg__stmt *st, int c) { return st->ops->column_type(st, c); }
static inline int64_t tg__st_column_int64(tg__stmt *st, int c) {
    return st->ops->column_int64(st, c);
}
static inline double tg__st_column_double(tg__stmt *st, int c) {
    return st->ops->column_double(st, c);
}
static inline const char *tg__st_column_text(tg__stmt *st, int c) {
    return st->ops->column_text(st, c);
}
static inline const void *tg__st_column_blob(tg__stmt *st, int c) {
    return st->ops->column_blob(st, c);
}
static inline size_t tg__st_column_bytes(tg__stmt *st, int c) {
    return st->ops->column_bytes(st, c);
}
static inline void tg__st_column(tg__stmt *st, int c, tg__cell *out) {
    st->ops->column(st, c, out);
}
static inline const char *tg__st_sql(tg__stmt *st) { return st->ops->sql(st); }
static inline const char *tg__st_column_name(tg__stmt *st, int c) {
    return st->ops->column_name(st, c);
}

static inline int tg__db_exec(tg__db *db, const char *sql) { return db->ops->exec(db, sql); }
static inline const char *tg__db_errmsg(tg__db *db) { return db->ops->errmsg(db); }
static inline int64_t tg__db_changes(tg__db *db) { return db->ops->changes(db); }
static inline int64_t tg__db_total_changes(tg__db *db) { return db->ops->total_changes(db); }
static inline int tg__db_in_transaction(tg__db *db) { return db->ops->in_transaction(db); }
static inline int64_t tg__db_last_insert_id(tg__db *db) { return db->ops->last_insert_id(db); }
static inline int tg__db_set_scope(tg__db *db, const char *tenant, const char *workspace,
                                   int wide) {
    return db->ops->set_scope(db, tenant, workspace, wide);
}
static inline void tg__db_close(tg__db *db) {
    if (db)
        db->ops->close(db);
}

/* Prepares sql (a NUL-terminated buffer) for a one-off use. */
static inline int tg__st_prepare_once(tg__db *db, const char *sql, tg__stmt **out) {
    return tg__st_prepare(db, sql, (size_t)-1, 0, out);
}

/* Which constraint the last failed statement broke (fixtures retry with other values). */
enum { TG__CONSTRAINT_OTHER, TG__CONSTRAINT_UNIQUE, TG__CONSTRAINT_NOTNULL,
       TG__CONSTRAINT_CHECK, TG__CONSTRAINT_FOREIGN_KEY };
TG_HIDDEN int tg__db_constraint(tg__db *db);
static inline const char *tg__db_failure_object(tg__db *db, int column) {
    return db->ops->failure_object(db, column);
}
/* The table and column a result column of a view reads (SQLite only: both NULL elsewhere
 * or for an expression). */
TG_HIDDEN void tg__store_column_origin(tg__stmt *st, int col, const char **table,
                                       const char **column);
/* n random bytes (fixture keys). */
TG_HIDDEN void tg__store_random(void *p, size_t n);

/* ---- backends ---- */

/* True when target names a PostgreSQL database: a "postgresql://" or "postgres://" URI,
 * or a libpq keyword/value string ("host=... dbname=..."). Anything else is a SQLite file. */
TG_HIDDEN int tg__store_is_postgres(const char *target);

/* SQLite: the store over an open connection (a sqlite3 *, typed void * so no SQLite type
 * leaks); owns: close the connection with the store. NULL when out of memory. */
TG_HIDDEN tg__db *tg__store_sqlite_wrap(void *handle, int owns);
/* The SQLite connection behind db (NULL for another backend): for the SQLite-only modules
 * (rollout, backfill, validation) until they have a PostgreSQL version. Typed void * so no
 * SQLite type leaks; those modules cast it back. */
TG_HIDDEN void *tg__store_sqlite_handle(tg__db *db);

#endif
