/* The PostgreSQL backend of the store, on libpq. Every call of libpq in the library is in
 * this file.
 *
 * Statements are named prepared statements (tg_1, tg_2, ...), described once for their
 * parameter and column counts; a step after a reset runs the statement (one round trip,
 * parameters in text format) and keeps its whole result, then walks its rows. Values come
 * back as text and are converted as SQLite would convert them.
 *
 * A lost connection is TG__ST_IOERR; the next call resets the connection once (statements
 * are prepared again lazily, from their kept SQL) or says why it could not. A transaction
 * that was open when the connection went is gone: until the caller rolls back, every call
 * says so, so a later COMMIT cannot succeed on a new session as if nothing had happened. */
#include "sql.h"
#include "store_pg.h"

#include <libpq-fe.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Type OIDs of the built-in types (pg_type.dat; fixed since PostgreSQL 7). */
enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700
};

typedef struct pg_db {
    tg__db base;
    PGconn *conn;
    tg__buf target; /* postgresql://user@host:port/db, no password: for messages */
    tg__buf err;
    tg__buf pending;      /* DEALLOCATE commands of finalized statements, sent lazily */
    int statement_timeout_ms;
    unsigned generation;  /* bumped by every reconnection: older preparations are gone */
    unsigned long next_name;
    int lost;             /* the connection failed; reset it before the next call */
    int txn_lost;         /* ... while a transaction was open: only ROLLBACK is accepted */
    int64_t changes, total_changes;
    char sqlstate[6]; /* of the last failure ("" after a success) */
    char fail_column[128], fail_constraint[128]; /* its error fields ("" when not given) */
    /* set_scope: the tenant and workspace every statement runs under (NULL: none), and the
     * generation on which "tg_scope" (the set_config statement) was prepared */
    tg__buf scope_tenant, scope_workspace;
    int scoped, scope_wide;
    int scope_dirty; /* a scoped statement ran inside the open transaction: its settings last
                      * until the transaction ends (unscope_txn) */
    unsigned scope_generation;
} pg_db;

typedef struct pg_param {
    int type;      /* TG__T_*; 0: never bound (sent as NULL) */
    const char *v; /* the text sent */
    char num[32];  /* integers and doubles are formatted here */
    char *own;     /* copies of text, hex of blobs: grown, kept across executions */
    size_t own_cap;
} pg_param;

typedef struct pg_col_cache {
    int row;          /* the row whose value is decoded here (-1: none) */
    unsigned char *p; /* a decoded bytea, NUL-terminated */
    size_t n, cap;
} pg_col_cache;

typedef struct pg_stmt {
    tg__stmt base;
    char *sql;
    char name[32];
    int persistent;
    unsigned generation; /* of the connection it was prepared on (0: not prepared) */
    int n_params, n_cols;
    pg_param *params;
    const char **values; /* n_params pointers handed to PQexecPrepared */
    PGresult *res;       /* the result being walked (NULL: not run since the last reset) */
    int row, n_rows;
    int *types;          /* TG__T_* of each column of res, NULL values aside */
    pg_col_cache *cache; /* decoded bytea per column */
    unsigned char *used; /* per parameter: 1 when the text uses it ($n appears) */
    int control;         /* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, SET: never scoped */
    int scoped;          /* prepared with TG__PREP_SCOPED: runs under the scope of set_scope */
} pg_stmt;

static const tg__stmt_ops pg_stmt_ops;
static const tg__db_ops pg_db_ops;
static int is_control(const char *sql);

/* ---- messages ---- */

/* Appends libpq's message without its trailing newline. */
static void add_trimmed(tg__buf *b, const char *msg) {
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    tg__buf_addn(b, msg, n);
}

/* The message of d: what (may be NULL), then msg (may be NULL); neither may point into
 * d->err. */
static void set_err(pg_db *d, const char *what, const char *msg) {
    tg__buf_reset(&d->err);
    if (what)
        tg__buf_add(&d->err, what);
    if (msg)
        add_trimmed(&d->err, msg);
}

/* libpq's message about a malformed connection string, with anything it quotes from the
 * string (which may be the password) left out. */
static void add_unquoted(tg__buf *b, const char *msg) {
    int in_quote = 0;
    for (const char *p = msg; *p && *p != '\n'; p++) {
        if (*p == '"') {
            if (!in_quote)
                tg__buf_add(b, "\"...\"");
            in_quote = !in_quote;
        } else if (!in_quote) {
            tg__buf_addn(b, p, 1);
        }
    }
}

void tg__store_pg_target(const char *conninfo, tg__buf *b) {
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
    if (!opts) {
        tg__buf_add(b, "(an unparsable connection string)");
        PQfreemem(perr);
        return;
    }
    const char *user = NULL, *host = NULL, *port = NULL, *dbname = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "host") == 0 || (!host && strcmp(o->keyword, "hostaddr") == 0))
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            dbname = o->val;
    }
    tg__buf_add(b, "postgresql://");
    if (user) {
        tg__buf_add(b, user);
        tg__buf_add(b, "@");
    }
    tg__buf_add(b, host ? host : "");
    if (port) {
        tg__buf_add(b, ":");
        tg__buf_add(b, port);
    }
    tg__buf_add(b, "/");
    tg__buf_add(b, dbname ? dbname : (user ? user : ""));
    PQconninfoFree(opts);
}

/* Maps a failed result to a status and a message on d. */
static int result_error(pg_db *d, const PGresult *r) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    snprintf(d->sqlstate, sizeof d->sqlstate, "%s", state ? state : "");
    const char *col = r ? PQresultErrorField(r, PG_DIAG_COLUMN_NAME) : NULL;
    const char *con = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    snprintf(d->fail_column, sizeof d->fail_column, "%s", col ? col : "");
    snprintf(d->fail_constraint, sizeof d->fail_constraint, "%s", con ? con : "");
    if (!primary)
        primary = r ? PQresultErrorMessage(r) : NULL;
    if (!primary || !*primary)
        primary = PQerrorMessage(d->conn);
    if (PQstatus(d->conn) == CONNECTION_BAD || (state && strncmp(state, "08", 2) == 0)) {
        d->lost = 1;
        set_err(d, "connection to PostgreSQL lost: ", primary);
        return TG__ST_IOERR;
    }
    if (!r)
        return set_err(d, NULL, primary), TG__ST_NOMEM;
    if (state && strcmp(state, "57014") == 0) {
        tg__buf_reset(&d->err);
        tg__buf_printf(&d->err, "the statement timeout (%d ms) passed: ", d->statement_timeout_ms);
        add_trimmed(&d->err, primary);
        return TG__ST_BUSY;
    }
    set_err(d, NULL, primary);
    if (state && strncmp(state, "23", 2) == 0)
        return TG__ST_CONSTRAINT;
    if (state && (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0 ||
                  strcmp(state, "55P03") == 0))
        return TG__ST_BUSY;
    if (state && strcmp(state, "53200") == 0) /* out_of_memory */
        return TG__ST_NOMEM;
    return TG__ST_ERROR;
}

/* ---- the connection ---- */

/* Runs a command whose result is not needed; TG__ST_OK or the mapped error. */
static int command(pg_db *d, const char *sql) {
    PGresult *r = PQexec(d->conn, sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) ? TG__ST_OK : result_error(d, r);
    PQclear(r);
    return rc;
}

/* What every new session gets. */
static int session_setup(pg_db *d) {
    char sql[64];
    snprintf(sql, sizeof sql, "SET statement_timeout = %d", d->statement_timeout_ms);
    return command(d, sql);
}

static int in_txn_status(pg_db *d) {
    PGTransactionStatusType t = PQtransactionStatus(d->conn);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int failed(pg_db *d, int rc, int was_in_txn);

/* Inside a transaction, a scoped statement's set_config(..., true) lasts until the
 * transaction ends (in autocommit its pipeline's Sync ends it): an unscoped statement after
 * it in the same transaction (a read snapshot, the matrix's transaction) first clears them,
 * so it never runs as the last decision's tenant. */
static void unscope_txn(pg_db *d) {
    if (!d->scope_dirty)
        return;
    d->scope_dirty = 0;
    if (!in_txn_status(d))
        return;
    /* an aborted transaction refuses it, and the statement after it fails anyway */
    PQclear(PQexec(d->conn, "SELECT set_config('tenantguard.tenant_id', '', true), "
                            "set_config('tenantguard.workspace_id', '', true), "
                            "set_config('tenantguard.workspace_wide', '', true)"));
}

/* Makes the connection usable before a call: resets a lost one, sends the DEALLOCATEs of
 * finalized statements. */
static int ready(pg_db *d) {
    if (!d->conn)
        return TG__ST_ERROR; /* the connection string was malformed: the message stays */
    if (d->txn_lost) {
        set_err(d, "connection to PostgreSQL lost during a transaction: roll it back "
                   "before anything else", NULL);
        return TG__ST_IOERR;
    }
    if (d->lost || PQstatus(d->conn) != CONNECTION_OK) {
        PQreset(d->conn);
        if (PQstatus(d->conn) != CONNECTION_OK) {
            d->lost = 1;
            tg__buf msg = {0};
            tg__buf_add(&msg, "connection to PostgreSQL lost, and reconnecting to ");
            tg__buf_add(&msg, tg__buf_str(&d->target));
            tg__buf_add(&msg, " failed: ");
            set_err(d, tg__buf_str(&msg), PQerrorMessage(d->conn));
            tg__buf_free(&msg);
            return TG__ST_IOERR;
        }
        d->lost = 0;
        d->generation++;
        tg__buf_reset(&d->pending); /* the new session has none of the old statements */
        int rc = session_setup(d);
        if (rc != TG__ST_OK)
            return rc;
    }
    if (d->pending.len && PQtransactionStatus(d->conn) != PQTRANS_INERROR) {
        int was_in_txn = in_txn_status(d);
        int rc = command(d, tg__buf_str(&d->pending));
        tg__buf_reset(&d->pending);
        if (rc == TG__ST_IOERR)
            return failed(d, rc, was_in_txn);
    }
    return TG__ST_OK;
}

/* After a failed call: a connection lost inside a transaction takes the transaction. */
static int failed(pg_db *d, int rc, int was_in_txn) {
    if (rc == TG__ST_IOERR && was_in_txn) {
        d->txn_lost = 1;
        tg__buf_add(&d->err, " (the open transaction is lost: roll it back)");
    }
    return rc;
}

/* ---- statements ---- */

#define TG__PG_MAX_PARAMS 65535 /* the protocol's limit */

/* Calls fn for every $n sql uses (outside literals and quoted names); the largest n, or -1
 * for one past TG__PG_MAX_PARAMS. */
static int scan_params(const char *sql, Oid *types) {
    int max = 0;
    for (const char *p = sql; *p; p++) {
        if (*p == '\'' || *p == '"') { /* a literal or a quoted name: no parameter inside */
            char q = *p;
            while (p[1] && p[1] != q)
                p++;
            if (p[1])
                p++;
            continue;
        }
        if (*p != '$' || p[1] < '0' || p[1] > '9')
            continue;
        long n = strtol(p + 1, NULL, 10);
        if (n < 1 || n > TG__PG_MAX_PARAMS)
            return -1;
        if (types)
            types[n - 1] = 0; /* inferred by the server */
        if (n > max)
            max = (int)n;
        while (p[1] >= '0' && p[1] <= '9')
            p++;
    }
    return max;
}

/* The parameter types to prepare sql with (*out, n of them, freed by the caller): the server
 * infers the type of each $n the text uses; one it does not use (the generated SQL numbers
 * its parameters the same way in every statement, so some leave gaps) would be "could not
 * determine data type", so it is given text. Returns n, or -1 (too many) / -2 (no memory). */
static int param_types(const char *sql, Oid **out) {
    *out = NULL;
    int n = scan_params(sql, NULL);
    if (n <= 0)
        return n;
    Oid *types = malloc(sizeof(Oid) * (size_t)n);
    if (!types)
        return -2;
    for (int i = 0; i < n; i++)
        types[i] = 25; /* text, unless used */
    scan_params(sql, types);
    *out = types;
    return n;
}

/* Prepares st on the current session and reads its parameter and column counts. */
static int st_prepare_now(pg_stmt *st) {
    pg_db *d = (pg_db *)st->base.db;
    int was_in_txn = in_txn_status(d);
    snprintf(st->name, sizeof st->name, "tg_%lu", ++d->next_name);
    Oid *types = NULL;
    int np_text = param_types(st->sql, &types);
    if (np_text < 0) {
        set_err(d, np_text == -2 ? "out of memory" : "a statement with more than 65535 parameters",
                NULL);
        return np_text == -2 ? TG__ST_NOMEM : TG__ST_ERROR;
    }
    if (!st->used && np_text > 0) {
        st->used = malloc((size_t)np_text);
        if (!st->used) {
            free(types);
            set_err(d, "out of memory", NULL);
            return TG__ST_NOMEM;
        }
        for (int i = 0; i < np_text; i++)
            st->used[i] = types[i] == 0;
    }
    PGresult *r = PQprepare(d->conn, st->name, st->sql, np_text, types);
    free(types);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = result_error(d, r);
        PQclear(r);
        return failed(d, rc, was_in_txn);
    }
    PQclear(r);
    r = PQdescribePrepared(d->conn, st->name);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = result_error(d, r);
        PQclear(r);
        return failed(d, rc, was_in_txn);
    }
    int np = PQnparams(r), nc = PQnfields(r);
    /* A key is a 64-bit integer whatever the column's width: a parameter the server typed
     * smallint or integer is prepared again as bigint, so a key past the column's range
     * simply finds no row (as on SQLite) instead of failing, and a keyset starts below any
     * key (the comparison of integer widths keeps the index) */
    int narrow = 0;
    for (int i = 0; i < np; i++)
        narrow |= PQparamtype(r, i) == 21 || PQparamtype(r, i) == 23 ||
                  PQparamtype(r, i) == 1005 || PQparamtype(r, i) == 1007;
    if (narrow) {
        Oid *wide = malloc(sizeof(Oid) * (size_t)np);
        if (!wide) {
            PQclear(r);
            set_err(d, "out of memory", NULL);
            return TG__ST_NOMEM;
        }
        for (int i = 0; i < np; i++) {
            Oid t = PQparamtype(r, i);
            /* int2, int4 -> int8; their arrays -> int8[] */
            wide[i] = t == 21 || t == 23 ? 20 : t == 1005 || t == 1007 ? 1016 : t;
        }
        PQclear(r);
        char dealloc[64];
        snprintf(dealloc, sizeof dealloc, "DEALLOCATE %s", st->name);
        int rc = command(d, dealloc);
        if (rc == TG__ST_OK) {
            r = PQprepare(d->conn, st->name, st->sql, np, wide);
            rc = r && PQresultStatus(r) == PGRES_COMMAND_OK ? TG__ST_OK : result_error(d, r);
            PQclear(r);
        }
        free(wide);
        if (rc != TG__ST_OK)
            return failed(d, rc, was_in_txn);
    } else {
        PQclear(r);
    }
    if (st->generation && (np != st->n_params || nc != st->n_cols)) {
        set_err(d, "a statement changed shape after reconnecting (the schema changed?): ",
                st->sql);
        return TG__ST_ERROR;
    }
    if (!st->generation) {
        st->n_params = np;
        st->n_cols = nc;
        st->params = calloc((size_t)np + 1, sizeof *st->params);
        st->values = calloc((size_t)np + 1, sizeof *st->values);
        st->types = calloc((size_t)nc + 1, sizeof *st->types);
        st->cache = calloc((size_t)nc + 1, sizeof *st->cache);
        if (!st->params || !st->values || !st->types || !st->cache) {
            set_err(d, "out of memory", NULL);
            return TG__ST_NOMEM;
        }
        for (int i = 0; i < nc; i++)
            st->cache[i].row = -1;
    }
    st->generation = d->generation;
    return TG__ST_OK;
}

static void clear_result(pg_stmt *st) {
    PQclear(st->res);
    st->res = NULL;
    st->row = st->n_rows = 0;
    for (int i = 0; i < st->n_cols; i++)
        st->cache[i].row = -1;
}

static int is_write_tag(const char *tag) {
    return strncmp(tag, "INSERT", 6) == 0 || strncmp(tag, "UPDATE", 6) == 0 ||
           strncmp(tag, "DELETE", 6) == 0 || strncmp(tag, "MERGE", 5) == 0;
}

static void count_changes(pg_db *d, const PGresult *r) {
    if (!is_write_tag(PQcmdStatus((PGresult *)r)))
        return;
    d->changes = strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
    d->total_changes += d->changes;
}

static int column_kind(Oid t) {
    switch (t) {
    case OID_BOOL:
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return TG__T_INTEGER;
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        return TG__T_FLOAT;
    case OID_BYTEA:
        return TG__T_BLOB;
    default:
        return TG__T_TEXT;
    }
}

/* Runs st after "tg_scope" (set_config of the tenant and workspace, local to the
 * transaction) in one pipeline: one round trip, one transaction in autocommit (the Sync
 * ends it), so nothing is left on the connection. The statement's result, as
 * PQexecPrepared would give it. */
static PGresult *exec_scoped(pg_db *d, pg_stmt *st) {
    if (d->scope_generation != d->generation) {
        PGresult *r = PQprepare(d->conn, "tg_scope",
                                "SELECT set_config('tenantguard.tenant_id', $1, true), "
                                "set_config('tenantguard.workspace_id', $2, true), "
                                "set_config('tenantguard.workspace_wide', $3, true)",
                                3, NULL);
        int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok)
            return r;
        PQclear(r);
        d->scope_generation = d->generation;
    }
    const char *ws = tg__buf_str(&d->scope_workspace);
    const char *scope[3] = {d->scope_wide ? "" : tg__buf_str(&d->scope_tenant), ws,
                            d->scope_wide ? ws : ""};
    if (!PQenterPipelineMode(d->conn))
        return NULL;
    int sent = PQsendQueryPrepared(d->conn, "tg_scope", 3, scope, NULL, NULL, 0) &&
               PQsendQueryPrepared(d->conn, st->name, st->n_params, st->values, NULL, NULL, 0) &&
               PQpipelineSync(d->conn);
    PGresult *out = NULL, *r;
    /* results: the scope's (then NULL), the statement's (then NULL), the sync */
    for (int part = 0; sent && part < 2; part++) {
        while ((r = PQgetResult(d->conn)) != NULL) {
            if (part == 1 && !out)
                out = r; /* the statement's */
            else if (part == 0 && PQresultStatus(r) != PGRES_TUPLES_OK && !out)
                out = r; /* the scope failed: its error is the answer */
            else
                PQclear(r);
        }
    }
    while (sent && (r = PQgetResult(d->conn)) != NULL) {
        ExecStatusType s = PQresultStatus(r);
        PQclear(r);
        if (s == PGRES_PIPELINE_SYNC)
            break;
    }
    PQexitPipelineMode(d->conn);
    return out;
}

/* Runs the statement (the first step after a reset). */
static int st_execute(pg_stmt *st) {
    pg_db *d = (pg_db *)st->base.db;
    int rc = ready(d);
    if (rc != TG__ST_OK)
        return rc;
    if (st->generation != d->generation && (rc = st_prepare_now(st)) != TG__ST_OK)
        return rc;
    for (int i = 0; i < st->n_params; i++)
        st->values[i] = st->params[i].type && st->params[i].type != TG__T_NULL
                            ? st->params[i].v
                            : NULL;
    int scoped = d->scoped && st->scoped && !st->control;
    if (!scoped && !st->control)
        unscope_txn(d);
    int was_in_txn = in_txn_status(d);
    if (scoped && was_in_txn)
        d->scope_dirty = 1;
    PGresult *r = scoped
                      ? exec_scoped(d, st)
                      : PQexecPrepared(d->conn, st->name, st->n_params, st->values, NULL, NULL, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_TUPLES_OK) {
        st->res = r;
        st->n_rows = PQntuples(r);
        st->row = -1;
        int nc = PQnfields(r) < st->n_cols ? PQnfields(r) : st->n_cols;
        for (int i = 0; i < nc; i++)
            st->types[i] = column_kind(PQftype(r, i));
        count_changes(d, r); /* INSERT ... RETURNING */
        return TG__ST_ROW;
    }
    if (s == PGRES_COMMAND_OK) {
        count_changes(d, r);
        PQclear(r);
        return TG__ST_DONE;
    }
    rc = result_error(d, r);
    PQclear(r);
    return failed(d, rc, was_in_txn);
}

static int pg_step(tg__stmt *base) {
    pg_stmt *st = (pg_stmt *)base;
    if (st->res && st->row >= st->n_rows)
        clear_result(st); /* stepping past the end runs it again, as SQLite does */
    if (!st->res) {
        int rc = st_execute(st);
        if (rc != TG__ST_ROW)
            return rc;
    }
    for (int i = 0; i < st->n_cols; i++)
        st->cache[i].row = -1;
    if (++st->row < st->n_rows)
        return TG__ST_ROW;
    return TG__ST_DONE;
}

static int pg_reset(tg__stmt *base) {
    clear_result((pg_stmt *)base);
    return TG__ST_OK;
}

static int pg_clear_bindings(tg__stmt *base) {
    pg_stmt *st = (pg_stmt *)base;
    for (int i = 0; i < st->n_params; i++)
        st->params[i].type = 0;
    return TG__ST_OK;
}

static void pg_finalize(tg__stmt *base) {
    pg_stmt *st = (pg_stmt *)base;
    pg_db *d = (pg_db *)base->db;
    clear_result(st);
    if (st->generation && st->generation == d->generation && !d->lost) {
        /* the name came from the counter: no quoting needed */
        tg__buf_add(&d->pending, "DEALLOCATE ");
        tg__buf_add(&d->pending, st->name);
        tg__buf_add(&d->pending, ";");
    }
    for (int i = 0; i < st->n_params; i++)
        free(st->params[i].own);
    for (int i = 0; i < st->n_cols; i++)
        free(st->cache[i].p);
    free(st->params);
    free(st->values);
    free(st->types);
    free(st->cache);
    free(st->used);
    free(st->sql);
    free(st);
}

/* The parameter i (1-based), or NULL with the error set. */
static pg_param *param(pg_stmt *st, int i) {
    if (i < 1 || i > st->n_params) {
        pg_db *d = (pg_db *)st->base.db;
        tg__buf_reset(&d->err);
        tg__buf_printf(&d->err, "bind index %d out of range (the statement has %d)", i,
                       st->n_params);
        return NULL;
    }
    return &st->params[i - 1];
}

/* Room for n bytes in p->own. */
static int own_room(pg_stmt *st, pg_param *p, size_t n) {
    if (n <= p->own_cap)
        return 1;
    size_t cap = n < 64 ? 64 : n;
    char *q = realloc(p->own, cap);
    if (!q) {
        set_err((pg_db *)st->base.db, "out of memory", NULL);
        return 0;
    }
    p->own = q;
    p->own_cap = cap;
    return 1;
}

static int pg_bind_int64(tg__stmt *base, int i, int64_t v) {
    pg_param *p = param((pg_stmt *)base, i);
    if (!p)
        return TG__ST_ERROR;
    snprintf(p->num, sizeof p->num, "%lld", (long long)v);
    p->v = p->num;
    p->type = TG__T_INTEGER;
    return TG__ST_OK;
}

static int pg_bind_double(tg__stmt *base, int i, double v) {
    pg_param *p = param((pg_stmt *)base, i);
    if (!p)
        return TG__ST_ERROR;
    if (isnan(v))
        snprintf(p->num, sizeof p->num, "NaN");
    else if (isinf(v))
        snprintf(p->num, sizeof p->num, "%s", v > 0 ? "Infinity" : "-Infinity");
    else
        snprintf(p->num, sizeof p->num, "%.17g", v);
    p->v = p->num;
    p->type = TG__T_FLOAT;
    return TG__ST_OK;
}

/* Text is always copied: libpq takes text parameters NUL-terminated. */
static int pg_bind_text(tg__stmt *base, int i, const char *s, size_t n, int copy) {
    pg_stmt *st = (pg_stmt *)base;
    pg_param *p = param(st, i);
    (void)copy;
    if (!p)
        return TG__ST_ERROR;
    if (n == (size_t)-1)
        n = strlen(s);
    if (memchr(s, 0, n)) {
        set_err((pg_db *)base->db, "a text value with a zero byte cannot go to PostgreSQL", NULL);
        return TG__ST_ERROR;
    }
    if (!own_room(st, p, n + 1))
        return TG__ST_NOMEM;
    memcpy(p->own, s, n);
    p->own[n] = 0;
    p->v = p->own;
    p->type = TG__T_TEXT;
    return TG__ST_OK;
}

/* An array literal of keys, {1,2} or {"a","b\\"c"}: text and blobs quoted (a blob as bytea's
 * hex text), '"' and '\\' escaped inside quotes; NULL for TG_NULL. */
static int pg_bind_keys(tg__stmt *base, int i, const tg_value *keys, size_t n) {
    static const char hex[] = "0123456789abcdef";
    pg_stmt *st = (pg_stmt *)base;
    pg_param *p = param(st, i);
    if (!p)
        return TG__ST_ERROR;
    size_t need = 3;
    for (size_t k = 0; k < n; k++) {
        const tg_value *v = &keys[k];
        size_t len = v->type == TG_TEXT ? (v->n ? v->n : strlen(v->s ? v->s : "")) : v->n;
        need += v->type == TG_TEXT ? 2 * len + 3 : v->type == TG_BLOB ? 2 * len + 6 : 24;
    }
    if (!own_room(st, p, need))
        return TG__ST_NOMEM;
    char *o = p->own;
    *o++ = '{';
    for (size_t k = 0; k < n; k++) {
        const tg_value *v = &keys[k];
        if (k)
            *o++ = ',';
        if (v->type == TG_INTEGER) {
            o += snprintf(o, 24, "%lld", (long long)v->i);
        } else if (v->type == TG_TEXT) {
            const char *s = v->s ? v->s : "";
            size_t len = v->n ? v->n : strlen(s);
            if (memchr(s, 0, len)) {
                set_err((pg_db *)base->db, "a text key with a zero byte cannot go to PostgreSQL",
                        NULL);
                return TG__ST_ERROR;
            }
            *o++ = '"';
            for (size_t j = 0; j < len; j++) {
                if (s[j] == '"' || s[j] == '\\')
                    *o++ = '\\';
                *o++ = s[j];
            }
            *o++ = '"';
        } else if (v->type == TG_BLOB) {
            const unsigned char *b = (const unsigned char *)v->s;
            memcpy(o, "\"\\\\x", 4); /* "\\x: the element's backslash, escaped */
            o += 4;
            for (size_t j = 0; j < v->n; j++) {
                *o++ = hex[b[j] >> 4];
                *o++ = hex[b[j] & 15];
            }
            *o++ = '"';
        } else {
            memcpy(o, "NULL", 4);
            o += 4;
        }
    }
    *o++ = '}';
    *o = 0;
    p->v = p->own;
    p->type = TG__T_TEXT;
    return TG__ST_OK;
}

/* Blobs go as bytea's hex text, \x0a1b... */
static int pg_bind_blob(tg__stmt *base, int i, const void *v, size_t n, int copy) {
    static const char hex[] = "0123456789abcdef";
    pg_stmt *st = (pg_stmt *)base;
    pg_param *p = param(st, i);
    (void)copy;
    if (!p)
        return TG__ST_ERROR;
    if (!own_room(st, p, 2 * n + 3))
        return TG__ST_NOMEM;
    const unsigned char *b = v;
    p->own[0] = '\\';
    p->own[1] = 'x';
    for (size_t k = 0; k < n; k++) {
        p->own[2 + 2 * k] = hex[b[k] >> 4];
        p->own[3 + 2 * k] = hex[b[k] & 15];
    }
    p->own[2 + 2 * n] = 0;
    p->v = p->own;
    p->type = TG__T_BLOB;
    return TG__ST_OK;
}

static int pg_bind_null(tg__stmt *base, int i) {
    pg_param *p = param((pg_stmt *)base, i);
    if (!p)
        return TG__ST_ERROR;
    p->type = TG__T_NULL;
    return TG__ST_OK;
}

static int pg_param_count(tg__stmt *base) { return ((pg_stmt *)base)->n_params; }

/* "$" for a parameter the statement uses, NULL for one it leaves out (as SQLite tells them
 * apart: a row filter's values are bound only where a statement has them) */
static const char *pg_param_name(tg__stmt *base, int i) {
    pg_stmt *st = (pg_stmt *)base;
    return i >= 1 && i <= st->n_params && st->used && st->used[i - 1] ? "$" : NULL;
}

static int pg_column_count(tg__stmt *base) { return ((pg_stmt *)base)->n_cols; }

/* Is there a current row with column col? */
static int has_cell(pg_stmt *st, int col) {
    return st->res && st->row >= 0 && st->row < st->n_rows && col >= 0 && col < st->n_cols &&
           col < PQnfields(st->res);
}

static int pg_column_type(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    if (!has_cell(st, col) || PQgetisnull(st->res, st->row, col))
        return TG__T_NULL;
    return st->types[col];
}

static int hexval(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The bytes of a bytea cell, decoded once per row into the column's cache. */
static pg_col_cache *bytea(pg_stmt *st, int col) {
    pg_col_cache *c = &st->cache[col];
    if (c->row == st->row)
        return c;
    const char *s = PQgetvalue(st->res, st->row, col);
    size_t len = (size_t)PQgetlength(st->res, st->row, col);
    if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
        size_t n = (len - 2) / 2;
        if (n + 1 > c->cap) {
            unsigned char *q = realloc(c->p, n + 1);
            if (!q)
                return NULL;
            c->p = q;
            c->cap = n + 1;
        }
        for (size_t k = 0; k < n; k++) {
            int hi = hexval((unsigned char)s[2 + 2 * k]), lo = hexval((unsigned char)s[3 + 2 * k]);
            if (hi < 0 || lo < 0)
                return NULL;
            c->p[k] = (unsigned char)(hi << 4 | lo);
        }
        c->n = n;
    } else { /* bytea_output = escape */
        size_t n = 0;
        unsigned char *u = PQunescapeBytea((const unsigned char *)s, &n);
        if (!u)
            return NULL;
        if (n + 1 > c->cap) {
            unsigned char *q = realloc(c->p, n + 1);
            if (!q) {
                PQfreemem(u);
                return NULL;
            }
            c->p = q;
            c->cap = n + 1;
        }
        memcpy(c->p, u, n);
        PQfreemem(u);
        c->n = n;
    }
    c->p[c->n] = 0;
    c->row = st->row;
    return c;
}

static int64_t pg_column_int64(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    if (!has_cell(st, col) || PQgetisnull(st->res, st->row, col))
        return 0;
    const char *s = PQgetvalue(st->res, st->row, col);
    switch (st->types[col]) {
    case TG__T_BLOB:
        return 0;
    case TG__T_FLOAT: {
        double v = strtod(s, NULL);
        if (isnan(v))
            return 0;
        if (v >= 9223372036854775807.0)
            return INT64_MAX;
        if (v <= -9223372036854775808.0)
            return INT64_MIN;
        return (int64_t)v;
    }
    default:
        if (s[0] == 't' && s[1] == 0)
            return 1; /* bool */
        if (s[0] == 'f' && s[1] == 0)
            return 0;
        return (int64_t)strtoll(s, NULL, 10);
    }
}

static double pg_column_double(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    if (!has_cell(st, col) || PQgetisnull(st->res, st->row, col))
        return 0.0;
    if (st->types[col] == TG__T_INTEGER)
        return (double)pg_column_int64(base, col);
    if (st->types[col] == TG__T_BLOB)
        return 0.0;
    return strtod(PQgetvalue(st->res, st->row, col), NULL);
}

static const char *pg_column_text(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    if (!has_cell(st, col) || PQgetisnull(st->res, st->row, col))
        return NULL;
    if (st->types[col] == TG__T_BLOB) {
        pg_col_cache *c = bytea(st, col);
        return c ? (const char *)c->p : NULL;
    }
    const char *s = PQgetvalue(st->res, st->row, col);
    if (PQftype(st->res, col) == OID_BOOL)
        return s[0] == 't' ? "1" : "0";
    return s;
}

static const void *pg_column_blob(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    if (!has_cell(st, col) || PQgetisnull(st->res, st->row, col))
        return NULL;
    if (st->types[col] == TG__T_BLOB) {
        pg_col_cache *c = bytea(st, col);
        return c ? c->p : NULL;
    }
    return pg_column_text(base, col);
}

static size_t pg_column_bytes(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    if (!has_cell(st, col) || PQgetisnull(st->res, st->row, col))
        return 0;
    if (st->types[col] == TG__T_BLOB) {
        pg_col_cache *c = bytea(st, col);
        return c ? c->n : 0;
    }
    if (PQftype(st->res, col) == OID_BOOL)
        return 1;
    return (size_t)PQgetlength(st->res, st->row, col);
}

/* One cell in one call: type and value. */
static void pg_column(tg__stmt *base, int col, tg__cell *out) {
    pg_stmt *st = (pg_stmt *)base;
    memset(out, 0, sizeof *out);
    out->type = pg_column_type(base, col);
    switch (out->type) {
    case TG__T_INTEGER:
        out->i = pg_column_int64(base, col);
        out->d = (double)out->i;
        break;
    case TG__T_FLOAT:
        out->d = pg_column_double(base, col);
        out->i = pg_column_int64(base, col);
        break;
    case TG__T_TEXT:
    case TG__T_BLOB:
        out->p = out->type == TG__T_BLOB ? pg_column_blob(base, col) : pg_column_text(base, col);
        out->n = pg_column_bytes(base, col);
        break;
    default:
        break;
    }
    (void)st;
}

static const char *pg_sql(tg__stmt *base) { return ((pg_stmt *)base)->sql; }

static const char *pg_column_name(tg__stmt *base, int col) {
    pg_stmt *st = (pg_stmt *)base;
    return st->res && col >= 0 && col < PQnfields(st->res) ? PQfname(st->res, col) : NULL;
}

static const tg__stmt_ops pg_stmt_ops = {
    pg_step,          pg_reset,          pg_clear_bindings, pg_finalize,     pg_bind_int64,
    pg_bind_double,   pg_bind_text,      pg_bind_blob,      pg_bind_null,    pg_bind_keys,
    pg_param_count,
    pg_param_name,    pg_column_count,   pg_column_type,    pg_column_int64, pg_column_double,
    pg_column_text,   pg_column_blob,    pg_column_bytes,   pg_column,       pg_sql,
    pg_column_name};

/* ---- the connection's operations ---- */

static int pg_prepare(tg__db *base, const char *sql, size_t len, unsigned flags,
                      tg__stmt **out) {
    pg_db *d = (pg_db *)base;
    *out = NULL;
    int rc = ready(d);
    if (rc != TG__ST_OK)
        return rc;
    if (len == (size_t)-1)
        len = strlen(sql);
    pg_stmt *st = calloc(1, sizeof *st);
    if (!st || !(st->sql = malloc(len + 1))) {
        free(st);
        set_err(d, "out of memory", NULL);
        return TG__ST_NOMEM;
    }
    memcpy(st->sql, sql, len);
    st->sql[len] = 0;
    st->control = is_control(st->sql);
    st->scoped = (flags & TG__PREP_SCOPED) != 0;
    st->base.ops = &pg_stmt_ops;
    st->base.db = base;
    st->persistent = (flags & TG__PREP_PERSISTENT) != 0;
    rc = st_prepare_now(st);
    if (rc != TG__ST_OK) {
        if (st->generation != d->generation)
            st->generation = 0; /* nothing on the server to deallocate */
        pg_finalize(&st->base);
        return rc;
    }
    *out = &st->base;
    return TG__ST_OK;
}

/* Does sql begin with a transaction-control or SET command (never sent after the scope's
 * set_config: BEGIN ... ISOLATION LEVEL must come first in its transaction)? */
static int is_control(const char *sql) {
    static const char *const words[] = {"BEGIN",    "COMMIT", "ROLLBACK", "ABORT", "END",
                                        "SAVEPOINT", "RELEASE", "SET",     "START"};
    while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
        sql++;
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
        size_t n = strlen(words[i]);
        if (strncasecmp(sql, words[i], n) == 0 && (sql[n] == 0 || sql[n] == ' ' || sql[n] == ';'))
            return 1;
    }
    return 0;
}

/* Does sql begin with ROLLBACK (or ABORT)? */
static int is_rollback(const char *sql) {
    while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
        sql++;
    return strncasecmp(sql, "ROLLBACK", 8) == 0 || strncasecmp(sql, "ABORT", 5) == 0;
}

static int pg_exec(tg__db *base, const char *sql) {
    pg_db *d = (pg_db *)base;
    if (d->txn_lost && is_rollback(sql)) {
        d->txn_lost = 0; /* the server rolled it back when the session ended */
        return ready(d);
    }
    int rc = ready(d);
    if (rc != TG__ST_OK)
        return rc;
    if (!is_control(sql))
        unscope_txn(d);
    int was_in_txn = in_txn_status(d);
    PGresult *r = PQexec(d->conn, sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY) {
        count_changes(d, r);
        rc = TG__ST_OK;
    } else {
        rc = failed(d, result_error(d, r), was_in_txn);
    }
    PQclear(r);
    return rc;
}

static const char *pg_errmsg(tg__db *base) {
    pg_db *d = (pg_db *)base;
    return d->err.len ? tg__buf_str(&d->err) : "not an error";
}

static int64_t pg_changes(tg__db *base) { return ((pg_db *)base)->changes; }
static int64_t pg_total_changes(tg__db *base) { return ((pg_db *)base)->total_changes; }

static int pg_in_transaction(tg__db *base) {
    pg_db *d = (pg_db *)base;
    return d->txn_lost || (d->conn && in_txn_status(d));
}

static void pg_close(tg__db *base) {
    pg_db *d = (pg_db *)base;
    PQfinish(d->conn);
    tg__buf_free(&d->target);
    tg__buf_free(&d->err);
    tg__buf_free(&d->pending);
    tg__buf_free(&d->scope_tenant);
    tg__buf_free(&d->scope_workspace);
    free(d);
}

static const char *pg_failure_object(tg__db *base, int column) {
    const pg_db *d = (const pg_db *)base;
    const char *v = column ? d->fail_column : d->fail_constraint;
    return v[0] ? v : NULL;
}

/* The constraint the last failure broke, from its SQLSTATE. */
static int pg_constraint(tg__db *base) {
    const char *s = ((pg_db *)base)->sqlstate;
    if (!strcmp(s, "23505"))
        return TG__CONSTRAINT_UNIQUE;
    if (!strcmp(s, "23502"))
        return TG__CONSTRAINT_NOTNULL;
    if (!strcmp(s, "23514"))
        return TG__CONSTRAINT_CHECK;
    if (!strcmp(s, "23503"))
        return TG__CONSTRAINT_FOREIGN_KEY;
    return TG__CONSTRAINT_OTHER;
}

/* The value the session's sequence gave last (an identity or serial column), 0 when none. */
static int64_t pg_last_insert_id(tg__db *base) {
    pg_db *d = (pg_db *)base;
    if (ready(d) != TG__ST_OK)
        return 0;
    PGresult *r = PQexec(d->conn, "SELECT lastval()");
    int64_t v = 0;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* Keeps s in *slot, reusing its buffer: a decision sets the same tenant again and again, and
 * that costs no allocation. */
static int keep_text(pg_db *d, tg__buf *slot, const char *s) {
    if (slot->len == strlen(s) && slot->p && strcmp(slot->p, s) == 0)
        return TG__ST_OK;
    tg__buf_reset(slot);
    tg__buf_add(slot, s);
    if (slot->oom) {
        set_err(d, "out of memory", NULL);
        return TG__ST_NOMEM;
    }
    return TG__ST_OK;
}

static int pg_set_scope(tg__db *base, const char *tenant, const char *workspace, int wide) {
    pg_db *d = (pg_db *)base;
    d->scoped = 0;
    d->scope_wide = wide && workspace && workspace[0];
    if (!tenant)
        return TG__ST_OK;
    int rc = keep_text(d, &d->scope_tenant, tenant);
    if (rc == TG__ST_OK)
        rc = keep_text(d, &d->scope_workspace, workspace ? workspace : "");
    d->scoped = rc == TG__ST_OK;
    return rc;
}

static const tg__db_ops pg_db_ops = {pg_prepare,       pg_exec,           pg_errmsg,
                                     pg_changes,       pg_total_changes,  pg_in_transaction,
                                     pg_constraint,    pg_last_insert_id, pg_set_scope,
                                     pg_close,         pg_failure_object};

/* Notices and warnings ("there is no transaction in progress") are not errors: libpq would
 * print them on stderr. */
static void ignore_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

int tg__store_pg_open(const char *conninfo, const tg__store_pg_options *o, tg__db **out) {
    static const tg__store_pg_options defaults = TG__STORE_PG_DEFAULTS;
    if (!o)
        o = &defaults;
    pg_db *d = calloc(1, sizeof *d);
    *out = d ? &d->base : NULL;
    if (!d)
        return TG__ST_NOMEM;
    d->base.ops = &pg_db_ops;
    d->base.dialect = &tg__postgres;
    d->base.backend = TG__BACKEND_POSTGRES;
    d->statement_timeout_ms = o->statement_timeout_ms > 0 ? o->statement_timeout_ms : 0;
    d->generation = 1;
    tg__store_pg_target(conninfo, &d->target);

    char *perr = NULL;
    PQconninfoOption *parsed = PQconninfoParse(conninfo, &perr);
    if (!parsed) {
        tg__buf_add(&d->err, "invalid PostgreSQL connection string: ");
        if (perr)
            add_unquoted(&d->err, perr);
        else
            tg__buf_add(&d->err, "out of memory");
        PQfreemem(perr);
        return perr ? TG__ST_ERROR : TG__ST_NOMEM;
    }
    PQconninfoFree(parsed);

    /* defaults first: the connection string, expanded in place of dbname, overrides them */
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", o->connect_timeout_s > 0 ? o->connect_timeout_s : 0);
    const char *keys[] = {"fallback_application_name", "connect_timeout", "dbname", NULL};
    const char *vals[] = {o->application_name ? o->application_name : "tenantguard",
                          o->connect_timeout_s > 0 ? timeout : NULL, conninfo, NULL};
    if (!vals[1]) { /* no timeout: leave the keyword out */
        keys[1] = "dbname";
        vals[1] = conninfo;
        keys[2] = NULL;
        vals[2] = NULL;
    }
    d->conn = PQconnectdbParams(keys, vals, 1);
    if (!d->conn) {
        set_err(d, "out of memory", NULL);
        return TG__ST_NOMEM;
    }
    PQsetNoticeProcessor(d->conn, ignore_notice, NULL);
    if (PQstatus(d->conn) != CONNECTION_OK) {
        tg__buf msg = {0};
        tg__buf_add(&msg, "cannot connect to PostgreSQL at ");
        tg__buf_add(&msg, tg__buf_str(&d->target));
        tg__buf_add(&msg, ": ");
        set_err(d, tg__buf_str(&msg), PQerrorMessage(d->conn));
        tg__buf_free(&msg);
        d->lost = 1;
        return TG__ST_IOERR;
    }
    return session_setup(d);
}
