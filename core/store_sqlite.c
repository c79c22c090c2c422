/* The SQLite backend of the store (store.h): a thin wrapper, one call of SQLite's per call of
 * the store's. The only file of the core besides the SQLite-only modules (rollout, backfill,
 * validation, the engine's connection set-up) that calls SQLite. */
#include "sql.h"
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

typedef struct sdb {
    tg__db base;
    sqlite3 *h;
    int owns; /* close h with the store */
} sdb;

typedef struct sst {
    tg__stmt base;
    sqlite3_stmt *s;
} sst;

#define S(st) (((sst *)(st))->s)
#define H(db) (((sdb *)(db))->h)

static int st_step(tg__stmt *st) { return sqlite3_step(S(st)); }
static int st_reset(tg__stmt *st) { return sqlite3_reset(S(st)); }
static int st_clear(tg__stmt *st) { return sqlite3_clear_bindings(S(st)); }
static void st_finalize(tg__stmt *st) {
    sqlite3_finalize(S(st));
    free(st);
}
static int st_bind_int64(tg__stmt *st, int i, int64_t v) { return sqlite3_bind_int64(S(st), i, v); }
static int st_bind_double(tg__stmt *st, int i, double v) {
    return sqlite3_bind_double(S(st), i, v);
}
static int st_bind_text(tg__stmt *st, int i, const char *s, size_t n, int copy) {
    return sqlite3_bind_text64(S(st), i, s ? s : "", s ? n : 0,
                               copy ? SQLITE_TRANSIENT : SQLITE_STATIC, SQLITE_UTF8);
}
static int st_bind_blob(tg__stmt *st, int i, const void *p, size_t n, int copy) {
    /* a NULL pointer would bind NULL: an empty blob is still a value */
    if (!n || !p)
        return sqlite3_bind_zeroblob(S(st), i, 0);
    return sqlite3_bind_blob64(S(st), i, p, n, copy ? SQLITE_TRANSIENT : SQLITE_STATIC);
}
static int st_bind_null(tg__stmt *st, int i) { return sqlite3_bind_null(S(st), i); }
static int st_bind_keys(tg__stmt *st, int i, const tg_value *keys, size_t n) {
    (void)st, (void)i, (void)keys, (void)n;
    return SQLITE_MISUSE; /* no arrays: the dialect checks a bulk in IN lists */
}
static int st_param_count(tg__stmt *st) { return sqlite3_bind_parameter_count(S(st)); }
static const char *st_param_name(tg__stmt *st, int i) {
    return sqlite3_bind_parameter_name(S(st), i);
}
static int st_column_count(tg__stmt *st) { return sqlite3_column_count(S(st)); }
static int st_column_type(tg__stmt *st, int c) { return sqlite3_column_type(S(st), c); }
static int64_t st_column_int64(tg__stmt *st, int c) { return sqlite3_column_int64(S(st), c); }
static double st_column_double(tg__stmt *st, int c) { return sqlite3_column_double(S(st), c); }
static const char *st_column_text(tg__stmt *st, int c) {
    return (const char *)sqlite3_column_text(S(st), c);
}
static const void *st_column_blob(tg__stmt *st, int c) { return sqlite3_column_blob(S(st), c); }
static size_t st_column_bytes(tg__stmt *st, int c) {
    return (size_t)sqlite3_column_bytes(S(st), c);
}
/* One sqlite3_column_value, its type and bytes read from that value (the engine's connection
 * is opened without a mutex: the value needs no protection). */
static void st_column(tg__stmt *st, int c, tg__cell *out) {
    sqlite3_value *v = sqlite3_column_value(S(st), c);
    switch ((out->type = sqlite3_value_type(v))) {
    case SQLITE_INTEGER: out->i = sqlite3_value_int64(v); break;
    case SQLITE_FLOAT: out->d = sqlite3_value_double(v); break;
    case SQLITE_TEXT:
        out->p = sqlite3_value_text(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        if (!out->p) {
            out->p = "";
            out->n = 0;
        }
        break;
    case SQLITE_BLOB:
        out->p = sqlite3_value_blob(v);
        out->n = (size_t)sqlite3_value_bytes(v);
        if (!out->p)
            out->p = "";
        break;
    default: break;
    }
}
static const char *st_sql(tg__stmt *st) { return sqlite3_sql(S(st)); }
static const char *st_column_name(tg__stmt *st, int c) { return sqlite3_column_name(S(st), c); }

static const tg__stmt_ops stmt_ops = {
    st_step,         st_reset,        st_clear,         st_finalize,      st_bind_int64,
    st_bind_double,  st_bind_text,    st_bind_blob,     st_bind_null,     st_bind_keys,
    st_param_count,  st_param_name,   st_column_count,  st_column_type,   st_column_int64,
    st_column_double, st_column_text, st_column_blob,   st_column_bytes,  st_column,
    st_sql,          st_column_name,
};

static int db_prepare(tg__db *db, const char *sql, size_t len, unsigned flags, tg__stmt **out) {
    *out = NULL;
    sst *st = malloc(sizeof *st);
    if (!st)
        return SQLITE_NOMEM;
    st->base.ops = &stmt_ops;
    st->base.db = db;
    st->s = NULL;
    int n = len == (size_t)-1 || len > (size_t)INT32_MAX ? -1 : (int)len;
    int rc = sqlite3_prepare_v3(H(db), sql, n,
                                flags & TG__PREP_PERSISTENT ? SQLITE_PREPARE_PERSISTENT : 0,
                                &st->s, NULL);
    if (rc != SQLITE_OK || !st->s) {
        sqlite3_finalize(st->s);
        free(st);
        /* an empty statement (only a comment) prepares to nothing: not a statement */
        return rc != SQLITE_OK ? rc : SQLITE_MISUSE;
    }
    *out = &st->base;
    return SQLITE_OK;
}
static int db_exec(tg__db *db, const char *sql) { return sqlite3_exec(H(db), sql, NULL, NULL, NULL); }
static const char *db_errmsg(tg__db *db) { return sqlite3_errmsg(H(db)); }
static int64_t db_changes(tg__db *db) { return sqlite3_changes64(H(db)); }
static int64_t db_total_changes(tg__db *db) { return sqlite3_total_changes64(H(db)); }
static int db_in_transaction(tg__db *db) { return !sqlite3_get_autocommit(H(db)); }
static int db_constraint(tg__db *db) {
    switch (sqlite3_extended_errcode(H(db))) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: return TG__CONSTRAINT_UNIQUE;
    case SQLITE_CONSTRAINT_NOTNULL: return TG__CONSTRAINT_NOTNULL;
    case SQLITE_CONSTRAINT_CHECK: return TG__CONSTRAINT_CHECK;
    case SQLITE_CONSTRAINT_FOREIGNKEY: return TG__CONSTRAINT_FOREIGN_KEY;
    default: return TG__CONSTRAINT_OTHER;
    }
}
static int64_t db_last_insert_id(tg__db *db) { return sqlite3_last_insert_rowid(H(db)); }
static int db_set_scope(tg__db *db, const char *tenant, const char *workspace, int wide) {
    (void)db, (void)tenant, (void)workspace, (void)wide;
    return SQLITE_OK; /* no row-level security on SQLite */
}
static const char *db_failure_object(tg__db *db, int column) {
    (void)db, (void)column;
    return NULL; /* SQLite's messages are not translated: the fixture reads them */
}
static void db_close(tg__db *db) {
    if (((sdb *)db)->owns)
        sqlite3_close_v2(H(db));
    free(db);
}

static const tg__db_ops db_ops = {db_prepare,       db_exec,           db_errmsg,
                                  db_changes,       db_total_changes,  db_in_transaction,
                                  db_constraint,    db_last_insert_id, db_set_scope,
                                  db_close,         db_failure_object};

tg__db *tg__store_sqlite_wrap(void *handle, int owns) {
    sdb *db = calloc(1, sizeof *db);
    if (!db)
        return NULL;
    db->base.ops = &db_ops;
    db->base.dialect = &tg__sqlite;
    db->base.backend = TG__BACKEND_SQLITE;
    db->h = handle;
    db->owns = owns;
    return &db->base;
}

int tg__db_constraint(tg__db *db) { return db->ops->constraint(db); }

void tg__store_column_origin(tg__stmt *st, int col, const char **table, const char **column) {
    *table = *column = NULL;
    if (st->db->backend != TG__BACKEND_SQLITE)
        return;
    *table = sqlite3_column_table_name(S(st), col);
    *column = sqlite3_column_origin_name(S(st), col);
}

void tg__store_random(void *p, size_t n) { sqlite3_randomness((int)n, p); }

void *tg__store_sqlite_handle(tg__db *db) {
    return db && db->backend == TG__BACKEND_SQLITE ? H(db) : NULL;
}
