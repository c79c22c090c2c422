/* The PostgreSQL store against a real server (scripts/pg_cluster.sh, started by the ctest
 * fixture): typed round trips, reuse, changes, constraint errors, the statement timeout, a
 * killed connection, bad connection strings. The application's role owns nothing: the
 * table is made by the owner role and granted to it, as in production.
 *
 * Skipped (exit 77) when TG_PG_URI is not set. */
#include "../../core/store_pg.h"
#include "tg_test.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static const char *app_uri, *owner_uri, *admin_uri;
static char table[64];

static tg__db *open_db(const char *uri, int timeout_ms) {
    tg__store_pg_options o = TG__STORE_PG_DEFAULTS;
    o.statement_timeout_ms = timeout_ms;
    tg__db *db = NULL;
    int rc = tg__store_pg_open(uri, &o, &db);
    if (rc != TG__ST_OK) {
        fprintf(stderr, "cannot open %s: %s\n", uri, db ? tg__db_errmsg(db) : "no memory");
        exit(2);
    }
    return db;
}

/* SQL with the test table's name in place of each '@' (the name is made here: no quoting
 * needed, and no external text is a format). */
static const char *with_table(const char *sql) {
    static char out[1024];
    size_t n = 0;
    for (const char *p = sql; *p && n + 64 < sizeof out; p++) {
        if (*p == '@') {
            memcpy(out + n, table, strlen(table));
            n += strlen(table);
        } else {
            out[n++] = *p;
        }
    }
    out[n] = 0;
    return out;
}

static int exec_t(tg__db *db, const char *sql) {
    int rc = tg__db_exec(db, with_table(sql));
    if (rc != TG__ST_OK)
        fprintf(stderr, "exec: %s\n", tg__db_errmsg(db));
    return rc;
}

static tg__stmt *prep(tg__db *db, const char *sql, unsigned flags) {
    tg__stmt *st = NULL;
    const char *s = with_table(sql);
    int rc = tg__st_prepare(db, s, strlen(s), flags, &st);
    if (rc != TG__ST_OK)
        fprintf(stderr, "prepare %s: %s\n", s, tg__db_errmsg(db));
    CHECK(rc == TG__ST_OK);
    return st;
}

static int64_t backend_pid(tg__db *db) {
    tg__stmt *st = prep(db, "SELECT pg_backend_pid()", 0);
    int64_t pid = -1;
    if (st && tg__st_step(st) == TG__ST_ROW)
        pid = tg__st_column_int64(st, 0);
    tg__st_finalize(st);
    return pid;
}

static void terminate(tg__db *admin, int64_t pid) {
    tg__stmt *st = prep(admin, "SELECT pg_terminate_backend($1::int)", 0);
    CHECK(tg__st_bind_int64(st, 1, pid) == TG__ST_OK);
    CHECK(tg__st_step(st) == TG__ST_ROW);
    CHECK(tg__st_column_int64(st, 0) == 1);
    tg__st_finalize(st);
    usleep(100 * 1000); /* the backend is gone once the signal lands */
}

static void test_round_trips(tg__db *db) {
    static const unsigned char blob[] = {0, 1, 2, 0xfe, 0xff, 0, 'x'};
    const char *tricky = "it's a \"quote\", a \\backslash\\, 100% and ünïcødé; DROP TABLE x;--";
    tg__stmt *ins = prep(db,
                         "INSERT INTO @ (id, n, u, s, b, d, f, num) "
                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                         0);
    CHECK(tg__st_param_count(ins) == 8);
    /* a parameter the statement uses has a name; one past the last none */
    CHECK(tg__st_param_name(ins, 1) != NULL);
    CHECK(tg__st_param_name(ins, 9) == NULL);
    CHECK(tg__st_bind_int64(ins, 1, INT64_C(9007199254740993)) == TG__ST_OK);
    CHECK(tg__st_bind_int64(ins, 2, -2147483647 - 1) == TG__ST_OK);
    CHECK(tg__st_bind_text(ins, 3, "6f1c1bde-0d3e-4b8a-9c1a-2b1f3e4d5a6b", (size_t)-1, 0) ==
          TG__ST_OK);
    CHECK(tg__st_bind_text(ins, 4, tricky, strlen(tricky), 1) == TG__ST_OK);
    CHECK(tg__st_bind_blob(ins, 5, blob, sizeof blob, 0) == TG__ST_OK);
    CHECK(tg__st_bind_double(ins, 6, 0.1) == TG__ST_OK);
    CHECK(tg__st_bind_int64(ins, 7, 1) == TG__ST_OK);
    CHECK(tg__st_bind_text(ins, 8, "12.50", 5, 0) == TG__ST_OK);
    CHECK(tg__st_step(ins) == TG__ST_DONE);
    CHECK(tg__db_changes(db) == 1);
    /* a second row, every value NULL but the key; bindings kept across reset */
    CHECK(tg__st_reset(ins) == TG__ST_OK);
    CHECK(tg__st_clear_bindings(ins) == TG__ST_OK);
    CHECK(tg__st_bind_int64(ins, 1, 2) == TG__ST_OK);
    CHECK(tg__st_step(ins) == TG__ST_DONE);
    /* out of range, and a zero byte in text */
    CHECK(tg__st_bind_int64(ins, 9, 1) != TG__ST_OK);
    CHECK(tg__st_bind_text(ins, 4, "a\0b", 3, 0) == TG__ST_ERROR);
    CHECK(strstr(tg__db_errmsg(db), "zero byte") != NULL);
    tg__st_finalize(ins);

    tg__stmt *sel = prep(db, "SELECT id, n, u, s, b, d, f, num FROM @ ORDER BY id", 0);
    CHECK(tg__st_column_count(sel) == 8);
    CHECK(tg__st_step(sel) == TG__ST_ROW);
    CHECK(tg__st_column_type(sel, 0) == TG__T_INTEGER);
    CHECK(tg__st_column_int64(sel, 0) == INT64_C(2)); /* ORDER BY id: 2 first */
    for (int c = 1; c < 8; c++)
        CHECK(tg__st_column_type(sel, c) == TG__T_NULL);
    CHECK(tg__st_column_text(sel, 3) == NULL);
    CHECK(tg__st_step(sel) == TG__ST_ROW);
    CHECK(tg__st_column_int64(sel, 0) == INT64_C(9007199254740993));
    CHECK(strcmp(tg__st_column_text(sel, 0), "9007199254740993") == 0);
    CHECK(tg__st_column_type(sel, 1) == TG__T_INTEGER);
    CHECK(tg__st_column_int64(sel, 1) == -2147483647 - 1);
    CHECK(tg__st_column_type(sel, 2) == TG__T_TEXT);
    CHECK(strcmp(tg__st_column_text(sel, 2), "6f1c1bde-0d3e-4b8a-9c1a-2b1f3e4d5a6b") == 0);
    CHECK(tg__st_column_type(sel, 3) == TG__T_TEXT);
    CHECK(strcmp(tg__st_column_text(sel, 3), tricky) == 0);
    CHECK(tg__st_column_bytes(sel, 3) == strlen(tricky));
    CHECK(tg__st_column_type(sel, 4) == TG__T_BLOB);
    CHECK(tg__st_column_bytes(sel, 4) == sizeof blob);
    CHECK(memcmp(tg__st_column_blob(sel, 4), blob, sizeof blob) == 0);
    CHECK(tg__st_column_type(sel, 5) == TG__T_FLOAT);
    CHECK(tg__st_column_double(sel, 5) == 0.1);
    CHECK(tg__st_column_type(sel, 6) == TG__T_INTEGER); /* bool */
    CHECK(tg__st_column_int64(sel, 6) == 1);
    CHECK(strcmp(tg__st_column_text(sel, 6), "1") == 0);
    CHECK(tg__st_column_type(sel, 7) == TG__T_FLOAT); /* numeric */
    CHECK(tg__st_column_double(sel, 7) == 12.5);
    CHECK(tg__st_column_int64(sel, 7) == 12);
    CHECK(tg__st_step(sel) == TG__ST_DONE);
    /* stepping past the end runs it again, as SQLite does */
    CHECK(tg__st_step(sel) == TG__ST_ROW);
    CHECK(tg__st_column_int64(sel, 0) == 2);
    tg__st_finalize(sel);

    /* a blob bound where the server expects bytea compares by bytes */
    tg__stmt *by_blob = prep(db, "SELECT count(*) FROM @ WHERE b = $1", 0);
    CHECK(tg__st_bind_blob(by_blob, 1, blob, sizeof blob, 1) == TG__ST_OK);
    CHECK(tg__st_step(by_blob) == TG__ST_ROW);
    CHECK(tg__st_column_int64(by_blob, 0) == 1);
    tg__st_finalize(by_blob);
}

static void test_reuse_and_changes(tg__db *db) {
    int64_t before = tg__db_total_changes(db);
    tg__stmt *ins = prep(db, "INSERT INTO @ (id, s) VALUES ($1, $2)", TG__PREP_PERSISTENT);
    for (int i = 0; i < 10; i++) {
        char s[16];
        snprintf(s, sizeof s, "row %d", i);
        CHECK(tg__st_bind_int64(ins, 1, 100 + i) == TG__ST_OK);
        CHECK(tg__st_bind_text(ins, 2, s, strlen(s), 0) == TG__ST_OK);
        CHECK(tg__st_step(ins) == TG__ST_DONE);
        CHECK(tg__st_reset(ins) == TG__ST_OK);
    }
    tg__st_finalize(ins);
    CHECK(tg__db_total_changes(db) == before + 10);

    tg__stmt *get = prep(db, "SELECT s FROM @ WHERE id = $1", TG__PREP_PERSISTENT);
    int ok = 0;
    for (int i = 0; i < 1000; i++) {
        tg__st_bind_int64(get, 1, 100 + i % 10);
        char want[16];
        snprintf(want, sizeof want, "row %d", i % 10);
        if (tg__st_step(get) == TG__ST_ROW && strcmp(tg__st_column_text(get, 0), want) == 0 &&
            tg__st_step(get) == TG__ST_DONE)
            ok++;
        tg__st_reset(get);
    }
    CHECK(ok == 1000);
    tg__st_finalize(get);

    CHECK(exec_t(db, "UPDATE @ SET n = 7 WHERE id >= 100 AND id < 104") == TG__ST_OK);
    CHECK(tg__db_changes(db) == 4);
    tg__stmt *upd = prep(db, "UPDATE @ SET n = $1 WHERE id >= 100 AND id < 200", 0);
    CHECK(tg__st_bind_int64(upd, 1, 8) == TG__ST_OK);
    CHECK(tg__st_step(upd) == TG__ST_DONE);
    CHECK(tg__db_changes(db) == 10);
    tg__st_finalize(upd);
    /* a SELECT leaves changes alone */
    tg__stmt *sel = prep(db, "SELECT 1", 0);
    CHECK(tg__st_step(sel) == TG__ST_ROW);
    tg__st_finalize(sel);
    CHECK(tg__db_changes(db) == 10);
    CHECK(tg__db_total_changes(db) == before + 10 + 4 + 10);

    /* parameters the text leaves out (the shared numbering of generated SQL): prepared as
     * text, unused, and named NULL; an integer column's parameter takes any 64-bit key and
     * simply finds nothing past the column's range */
    tg__stmt *gap = prep(db, "SELECT s FROM @ WHERE id = $3 AND n = $7", TG__PREP_PERSISTENT);
    CHECK(gap != NULL);
    if (gap) {
        CHECK(tg__st_param_count(gap) == 7);
        CHECK(tg__st_param_name(gap, 3) != NULL && tg__st_param_name(gap, 7) != NULL);
        CHECK(tg__st_param_name(gap, 1) == NULL && tg__st_param_name(gap, 5) == NULL);
        CHECK(tg__st_bind_int64(gap, 3, 100) == TG__ST_OK);
        CHECK(tg__st_bind_int64(gap, 7, 8) == TG__ST_OK);
        CHECK(tg__st_step(gap) == TG__ST_ROW);
        CHECK(strcmp(tg__st_column_text(gap, 0), "row 0") == 0);
        tg__st_reset(gap);
        CHECK(tg__st_bind_int64(gap, 7, INT64_C(1) << 40) == TG__ST_OK); /* past integer */
        CHECK(tg__st_step(gap) == TG__ST_DONE);
        tg__st_reset(gap);
        CHECK(tg__st_bind_int64(gap, 7, INT64_MIN) == TG__ST_OK);
        CHECK(tg__st_step(gap) == TG__ST_DONE);
        tg__st_finalize(gap);
    }

    /* transactions */
    CHECK(!tg__db_in_transaction(db));
    CHECK(tg__db_exec(db, "BEGIN") == TG__ST_OK);
    CHECK(tg__db_in_transaction(db));
    CHECK(exec_t(db, "DELETE FROM @ WHERE id >= 100") == TG__ST_OK);
    CHECK(tg__db_exec(db, "ROLLBACK") == TG__ST_OK);
    CHECK(!tg__db_in_transaction(db));
}

static void test_errors(tg__db *db) {
    tg__stmt *ins = prep(db, "INSERT INTO @ (id) VALUES ($1)", 0);
    CHECK(tg__st_bind_int64(ins, 1, 2) == TG__ST_OK);
    CHECK(tg__st_step(ins) == TG__ST_CONSTRAINT);
    CHECK(strstr(tg__db_errmsg(db), "duplicate key value violates unique constraint") != NULL);
    tg__st_finalize(ins);
    /* a syntax error at prepare, with the server's message */
    tg__stmt *bad = NULL;
    CHECK(tg__st_prepare_once(db, "SELEC 1", &bad) == TG__ST_ERROR);
    CHECK(bad == NULL);
    CHECK(strstr(tg__db_errmsg(db), "syntax error") != NULL);
    /* the application's role owns nothing and cannot create tables */
    CHECK(tg__db_exec(db, "CREATE TABLE tg_not_allowed (x int)") == TG__ST_ERROR);
    CHECK(strstr(tg__db_errmsg(db), "permission denied") != NULL);
}

/* The failing column and constraint come from the error's fields (any lc_messages). */
static void test_failure_fields(tg__db *db) {
    CHECK(tg__db_exec(db, "BEGIN") == TG__ST_OK);
    CHECK(tg__db_exec(db, "CREATE TEMP TABLE tg_fields (a int NOT NULL, "
                          "b int CONSTRAINT b_small CHECK (b < 10))") == TG__ST_OK);
    CHECK(tg__db_exec(db, "SAVEPOINT s") == TG__ST_OK);
    CHECK(tg__db_exec(db, "INSERT INTO tg_fields VALUES (NULL, 1)") == TG__ST_CONSTRAINT);
    CHECK(tg__db_constraint(db) == TG__CONSTRAINT_NOTNULL);
    const char *col = tg__db_failure_object(db, 1);
    CHECK(col && strcmp(col, "a") == 0);
    CHECK(tg__db_exec(db, "ROLLBACK TO s") == TG__ST_OK);
    CHECK(tg__db_exec(db, "INSERT INTO tg_fields VALUES (1, 99)") == TG__ST_CONSTRAINT);
    CHECK(tg__db_constraint(db) == TG__CONSTRAINT_CHECK);
    const char *con = tg__db_failure_object(db, 0);
    CHECK(con && strcmp(con, "b_small") == 0);
    CHECK(tg__db_exec(db, "ROLLBACK") == TG__ST_OK);
}

/* A decision's scope (set_config(..., true) in the pipeline of a statement prepared with
 * TG__PREP_SCOPED) never reaches an unscoped statement: in autocommit the Sync ends it, and
 * inside a transaction the unscoped statement clears it first. */
static void test_scope_stays_with_scoped_statements(tg__db *db) {
    static const char q[] = "SELECT coalesce(current_setting('tenantguard.tenant_id', true), '') "
                            "|| '/' || coalesce(current_setting('tenantguard.workspace_wide', "
                            "true), '')";
    tg__stmt *scoped = prep(db, q, TG__PREP_SCOPED);
    tg__stmt *plain = prep(db, q, 0);
    for (int txn = 0; txn < 2; txn++) {
        if (txn)
            CHECK(tg__db_exec(db, "BEGIN") == TG__ST_OK);
        CHECK(tg__db_set_scope(db, "7", "3", 0) == TG__ST_OK);
        CHECK(tg__st_step(scoped) == TG__ST_ROW);
        CHECK(strcmp(tg__st_column_text(scoped, 0), "7/") == 0);
        tg__st_reset(scoped);
        CHECK(tg__st_step(plain) == TG__ST_ROW);
        CHECK(strcmp(tg__st_column_text(plain, 0), "/") == 0);
        tg__st_reset(plain);
        /* workspace-wide: no tenant, the workspace in workspace_wide */
        CHECK(tg__db_set_scope(db, "", "3", 1) == TG__ST_OK);
        CHECK(tg__st_step(scoped) == TG__ST_ROW);
        CHECK(strcmp(tg__st_column_text(scoped, 0), "/3") == 0);
        tg__st_reset(scoped);
        CHECK(tg__st_step(plain) == TG__ST_ROW);
        CHECK(strcmp(tg__st_column_text(plain, 0), "/") == 0);
        tg__st_reset(plain);
        CHECK(tg__db_set_scope(db, NULL, NULL, 0) == TG__ST_OK);
        if (txn)
            CHECK(tg__db_exec(db, "COMMIT") == TG__ST_OK);
    }
    tg__st_finalize(scoped);
    tg__st_finalize(plain);
}

static void test_timeout(void) {
    tg__db *db = open_db(app_uri, 200);
    tg__stmt *st = prep(db, "SELECT pg_sleep(2)", 0);
    CHECK(tg__st_step(st) == TG__ST_BUSY);
    CHECK(strstr(tg__db_errmsg(db), "statement timeout (200 ms) passed") != NULL);
    tg__st_finalize(st);
    st = prep(db, "SELECT 41 + 1", 0);
    CHECK(tg__st_step(st) == TG__ST_ROW);
    CHECK(tg__st_column_int64(st, 0) == 42);
    tg__st_finalize(st);
    tg__db_close(db);
}

static void test_connection_loss(tg__db *admin) {
    tg__db *db = open_db(app_uri, 5000);
    tg__stmt *get = prep(db, "SELECT s FROM @ WHERE id = $1", TG__PREP_PERSISTENT);
    tg__st_bind_int64(get, 1, 105);
    CHECK(tg__st_step(get) == TG__ST_ROW);
    CHECK(tg__st_reset(get) == TG__ST_OK);

    /* outside a transaction: one error (or a transparent reconnection), then it works */
    terminate(admin, backend_pid(db));
    int rc = tg__st_step(get);
    CHECK(rc == TG__ST_IOERR || rc == TG__ST_ROW);
    if (rc == TG__ST_IOERR)
        CHECK(strstr(tg__db_errmsg(db), "connection to PostgreSQL lost") != NULL);
    tg__st_reset(get);
    CHECK(tg__st_step(get) == TG__ST_ROW); /* reconnected, prepared again, bindings kept */
    CHECK(strcmp(tg__st_column_text(get, 0), "row 5") == 0);
    tg__st_reset(get);

    /* inside a transaction: the transaction is gone, and nothing pretends otherwise until
     * the caller rolls back */
    CHECK(tg__db_exec(db, "BEGIN") == TG__ST_OK);
    CHECK(exec_t(db, "UPDATE @ SET n = 99 WHERE id = 105") == TG__ST_OK);
    terminate(admin, backend_pid(db));
    CHECK(tg__st_step(get) == TG__ST_IOERR);
    tg__st_reset(get);
    CHECK(tg__db_in_transaction(db));
    CHECK(tg__st_step(get) == TG__ST_IOERR);
    CHECK(strstr(tg__db_errmsg(db), "roll it back") != NULL);
    tg__st_reset(get);
    CHECK(tg__db_exec(db, "COMMIT") == TG__ST_IOERR);
    CHECK(tg__db_exec(db, "ROLLBACK") == TG__ST_OK);
    CHECK(!tg__db_in_transaction(db));
    CHECK(tg__st_step(get) == TG__ST_ROW);
    tg__st_finalize(get);
    tg__stmt *n = prep(db, "SELECT n FROM @ WHERE id = 105", 0);
    CHECK(tg__st_step(n) == TG__ST_ROW);
    CHECK(tg__st_column_int64(n, 0) == 8); /* the update went with the transaction */
    tg__st_finalize(n);
    tg__db_close(db);
}

static void test_bad_targets(void) {
    const char *host = strstr(app_uri, "host=");
    char uri[512];
    tg__db *db = NULL;
    /* a database that does not exist: the target named, the password not */
    snprintf(uri, sizeof uri, "postgresql://tg_app:s3cr3t-pw@/no_such_db?%s", host ? host : "");
    CHECK(tg__store_pg_open(uri, NULL, &db) == TG__ST_IOERR);
    CHECK(db != NULL);
    const char *m = tg__db_errmsg(db);
    CHECK(strstr(m, "cannot connect to PostgreSQL at postgresql://tg_app@") != NULL);
    CHECK(strstr(m, "no_such_db") != NULL);
    CHECK(strstr(m, "s3cr3t") == NULL);
    /* every later call says so instead of crashing */
    tg__stmt *st = NULL;
    CHECK(tg__st_prepare_once(db, "SELECT 1", &st) == TG__ST_IOERR);
    CHECK(strstr(tg__db_errmsg(db), "s3cr3t") == NULL);
    tg__db_close(db);
    /* a malformed string: libpq's complaint without what it quotes */
    CHECK(tg__store_pg_open("host=/x password='s3cr3t", NULL, &db) == TG__ST_ERROR);
    CHECK(strstr(tg__db_errmsg(db), "invalid PostgreSQL connection string") != NULL);
    CHECK(strstr(tg__db_errmsg(db), "s3cr3t") == NULL);
    tg__db_close(db);
    CHECK(tg__store_pg_open("postgresql://u:s3cr3t@h/d?sslmode=nonsense%zz", NULL, &db) ==
          TG__ST_ERROR);
    CHECK(strstr(tg__db_errmsg(db), "s3cr3t") == NULL);
    tg__db_close(db);
    /* no server on that socket: quickly, with a clear message */
    CHECK(tg__store_pg_open("host=/nonexistent-dir user=x password=s3cr3t dbname=d", NULL, &db) ==
          TG__ST_IOERR);
    CHECK(strstr(tg__db_errmsg(db), "postgresql://x@/nonexistent-dir/d") != NULL);
    CHECK(strstr(tg__db_errmsg(db), "s3cr3t") == NULL);
    tg__db_close(db);

    tg__buf b = {0};
    tg__store_pg_target("postgres://alice:pw@db.internal:6432/app?password=pw2", &b);
    CHECK(strcmp(tg__buf_str(&b), "postgresql://alice@db.internal:6432/app") == 0);
    tg__buf_free(&b);

    CHECK(tg__store_is_postgres("postgresql://x"));
    CHECK(tg__store_is_postgres("postgres://x"));
    CHECK(tg__store_is_postgres("host=/tmp dbname=x"));
    CHECK(!tg__store_is_postgres("app.db"));
    CHECK(!tg__store_is_postgres("./a=b.db"));
    CHECK(!tg__store_is_postgres(NULL));
}

int main(void) {
    app_uri = getenv("TG_PG_URI");
    owner_uri = getenv("TG_PG_OWNER_URI");
    admin_uri = getenv("TG_PG_ADMIN_URI");
    if (!app_uri || !*app_uri || !owner_uri || !admin_uri) {
        printf("SKIPPED: no PostgreSQL (TG_PG_URI unset)\n");
        return 77;
    }
    snprintf(table, sizeof table, "tg_store_test_%ld", (long)getpid());

    tg__db *owner = open_db(owner_uri, 0);
    CHECK(exec_t(owner, "DROP TABLE IF EXISTS @; "
                        "CREATE TABLE @ (id bigint PRIMARY KEY, n integer, u uuid, s text, "
                        "b bytea, d double precision, f boolean, num numeric); "
                        "GRANT SELECT, INSERT, UPDATE, DELETE ON @ TO tg_app") == TG__ST_OK);
    tg__db *admin = open_db(admin_uri, 0);
    tg__db *app = open_db(app_uri, 30000);

    test_round_trips(app);
    test_reuse_and_changes(app);
    test_errors(app);
    test_failure_fields(app);
    test_scope_stays_with_scoped_statements(app);
    test_timeout();
    test_connection_loss(admin);
    test_bad_targets();

    tg__db_close(app);
    CHECK(exec_t(owner, "DROP TABLE @") == TG__ST_OK);
    tg__db_close(owner);
    tg__db_close(admin);
    return tg_test_done();
}
