/* Row filters in the generated SQL: values are parameters numbered after every fixed one
 * (never pasted), and a filter leaves the query plan on the indexes it used without one
 * (EXPLAIN QUERY PLAN of detail, index, the first decision and the scope), even with an
 * index on the filtered columns that the planner could be tempted by. */
#include "../../core/sql.h"
#include "tg_test.h"

#include <sqlite3.h>
#include <string.h>

static const char *SCHEMA =
    "CREATE TABLE workspaces (id INTEGER PRIMARY KEY, deleted_at TEXT);"
    "CREATE TABLE tenants (id INTEGER PRIMARY KEY, workspace_id INTEGER, deleted_at TEXT);"
    "CREATE TABLE workspace_memberships (user_id INTEGER, workspace_id INTEGER, role TEXT,"
    "  PRIMARY KEY (user_id, workspace_id));"
    "CREATE TABLE tenant_memberships (user_id INTEGER, tenant_id INTEGER, role TEXT,"
    "  PRIMARY KEY (user_id, tenant_id));"
    "CREATE TABLE tickets (id INTEGER PRIMARY KEY, tenant_id INTEGER, workspace_id INTEGER,"
    "  title TEXT, deleted_at TEXT, archived INTEGER NOT NULL DEFAULT 0,"
    "  status TEXT NOT NULL DEFAULT 'open');"
    "CREATE INDEX tickets_tenant ON tickets (tenant_id, id);"
    "CREATE INDEX tickets_status ON tickets (status);"
    "CREATE INDEX tickets_deleted ON tickets (deleted_at);"
    "CREATE INDEX tickets_archived ON tickets (archived);"
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)"
    "  INSERT INTO tickets (tenant_id, workspace_id, title, deleted_at, archived, status)"
    "  SELECT i % 40, 1, 't' || i, CASE WHEN i % 9 = 0 THEN '2026' END, i % 7 = 0,"
    "  CASE i % 3 WHEN 0 THEN 'open' WHEN 1 THEN 'pending' ELSE 'closed' END FROM n;";

/* The query plan of sql as one string of its detail lines. */
static void plan_of(sqlite3 *db, const char *sql, char *out, size_t cap) {
    out[0] = '\0';
    char q[8192];
    snprintf(q, sizeof q, "EXPLAIN QUERY PLAN %s", sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "cannot prepare %s: %s\n", sql, sqlite3_errmsg(db));
        CHECK(0);
        return;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        strncat(out, (const char *)sqlite3_column_text(st, 3), cap - strlen(out) - 1);
        strncat(out, "; ", cap - strlen(out) - 1);
    }
    sqlite3_finalize(st);
}

static const char *const COLUMNS[] = {"id",         "tenant_id", "workspace_id", "title",
                                      "deleted_at", "archived",  "status"};

int main(void) {
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
    char *msg = NULL;
    CHECK(sqlite3_exec(db, SCHEMA, NULL, NULL, &msg) == SQLITE_OK);
    if (msg)
        fprintf(stderr, "%s\n", msg);
    sqlite3_free(msg);

    /* deleted_at IS NULL AND archived = 0 AND status IN ('open', "x' OR 1=1 --") */
    const tg_value zero = {TG_INTEGER, 0, 0, NULL, 0};
    const tg_value statuses[2] = {{TG_TEXT, 0, 0, "open", 4}, {TG_TEXT, 0, 0, "x' OR 1=1 --", 12}};
    const tg_filter_cond conds[3] = {{"deleted_at", TG_FILTER_IS_NULL, NULL, 0},
                                     {"archived", TG_FILTER_EQ, &zero, 1},
                                     {"status", TG_FILTER_IN, statuses, 2}};
    const tg_filter_cond deleted = {"deleted_at", TG_FILTER_IS_NULL, NULL, 0};
    const tg_row_filter filter = {conds, 3}, soft = {&deleted, 1};

    tg_app app;
    memset(&app, 0, sizeof app);
    app.workspaces.table = "workspaces";
    app.workspaces.id = "id";
    app.workspaces.row_filter = soft;
    app.tenants.table = "tenants";
    app.tenants.id = "id";
    app.tenants.workspace = "workspace_id";
    app.tenants.row_filter = soft;
    app.workspace_members.table = "workspace_memberships";
    app.workspace_members.user = "user_id";
    app.workspace_members.workspace = "workspace_id";
    app.workspace_members.role = "role";
    app.tenant_members.table = "tenant_memberships";
    app.tenant_members.user = "user_id";
    app.tenant_members.tenant = "tenant_id";

    /* numbering: tenants filter (no values) at ?100, workspaces (none) too, the record's
     * three values from ?100 on; never below the fixed ones */
    CHECK(tg__sql_filter_param(&app, TG__FILTER_TENANTS) == TG__P_FILTER);
    CHECK(tg__sql_filter_param(&app, TG__FILTER_RECORD) == TG__P_FILTER);
    CHECK(TG__P_FILTER > TG__BULK_CHUNK && TG__P_FILTER > TG__P_ID);
    CHECK(tg__filter_n_values(&filter) == 3);

    tg__table_shape plain = {"tickets", COLUMNS, 7, "id", "tenant_id", "workspace_id", NULL, 0, NULL, 0};
    tg__table_shape filtered = plain;
    filtered.filter = &filter;
    filtered.filter_param = tg__sql_filter_param(&app, TG__FILTER_RECORD);

    char a[2048], b[2048];
    tg__buf s1 = {0}, s2 = {0};

    /* detail: the primary key, filter or not */
    tg__sql_by_id(&tg__sqlite, &plain, &s1);
    tg__sql_by_id(&tg__sqlite, &filtered, &s2);
    CHECK(!s1.oom && !s2.oom);
    CHECK(strstr(tg__buf_str(&s2), " AND (r.\"deleted_at\" IS NULL AND r.\"archived\" = ?100 "
                                   "AND r.\"status\" IN (?101, ?102)) = 1") != NULL);
    CHECK(strstr(tg__buf_str(&s2), "OR 1=1") == NULL); /* values are never in the text */
    CHECK(strstr(tg__buf_str(&s2), "'open'") == NULL);
    plan_of(db, tg__buf_str(&s1), a, sizeof a);
    plan_of(db, tg__buf_str(&s2), b, sizeof b);
    printf("detail:  %s\n         %s\n", a, b);
    CHECK(strstr(a, "INTEGER PRIMARY KEY") != NULL);
    CHECK(strcmp(a, b) == 0);
    tg__buf_free(&s1);
    tg__buf_free(&s2);

    /* index: the tenant index, keyset on id, no sort; before and after ANALYZE */
    tg__sql_tenant_page(&tg__sqlite, &plain, &app, NULL, NULL, 0, 0, &s1);
    tg__sql_tenant_page(&tg__sqlite, &filtered, &app, NULL, NULL, 0, 0, &s2);
    for (int analyzed = 0; analyzed < 2; analyzed++) {
        if (analyzed)
            CHECK(sqlite3_exec(db, "ANALYZE", NULL, NULL, NULL) == SQLITE_OK);
        plan_of(db, tg__buf_str(&s1), a, sizeof a);
        plan_of(db, tg__buf_str(&s2), b, sizeof b);
        printf("index:   %s\n         %s\n", a, b);
        CHECK(strstr(a, "USING INDEX tickets_tenant") != NULL);
        CHECK(strcmp(a, b) == 0);
        CHECK(strstr(b, "TEMP B-TREE") == NULL);
    }
    tg__buf_free(&s1);
    tg__buf_free(&s2);

    /* bulk: the primary key */
    tg__sql_by_ids(&tg__sqlite, &plain, NULL, &s1);
    tg__sql_by_ids(&tg__sqlite, &filtered, NULL, &s2);
    plan_of(db, tg__buf_str(&s1), a, sizeof a);
    plan_of(db, tg__buf_str(&s2), b, sizeof b);
    CHECK(strstr(a, "INTEGER PRIMARY KEY") != NULL);
    CHECK(strcmp(a, b) == 0);
    tg__buf_free(&s1);
    tg__buf_free(&s2);

    /* the first decision (scope and record in one) and the scope: one lookup per join */
    tg_app bare = app;
    memset(&bare.workspaces.row_filter, 0, sizeof bare.workspaces.row_filter);
    memset(&bare.tenants.row_filter, 0, sizeof bare.tenants.row_filter);
    tg__sql_scope_and_record(&tg__sqlite, &bare, &plain, NULL, &s1);
    tg__sql_scope_and_record(&tg__sqlite, &app, &filtered, NULL, &s2);
    CHECK(strstr(tg__buf_str(&s2), "tg_w.\"deleted_at\" IS NULL") != NULL);
    CHECK(strstr(tg__buf_str(&s2), "tg_t.\"deleted_at\" IS NULL") != NULL);
    plan_of(db, tg__buf_str(&s1), a, sizeof a);
    plan_of(db, tg__buf_str(&s2), b, sizeof b);
    printf("first:   %s\n         %s\n", a, b);
    CHECK(!strstr(b, "SCAN r") && !strstr(b, "SCAN tg_w") && !strstr(b, "SCAN tg_t"));
    CHECK(strstr(b, "SEARCH r USING INTEGER PRIMARY KEY") != NULL);
    CHECK(strstr(b, "SEARCH tg_w USING INTEGER PRIMARY KEY") != NULL);
    CHECK(strstr(b, "SEARCH tg_t USING INTEGER PRIMARY KEY") != NULL);
    tg__buf_free(&s1);
    tg__buf_free(&s2);

    /* a statement whose values are not bound filters on NULL: shows nothing (fail closed) */
    tg__sql_by_id(&tg__sqlite, &filtered, &s2);
    sqlite3_stmt *st = NULL;
    CHECK(sqlite3_prepare_v2(db, tg__buf_str(&s2), -1, &st, NULL) == SQLITE_OK);
    sqlite3_bind_int64(st, 1, 3);
    CHECK(sqlite3_step(st) == SQLITE_DONE);
    sqlite3_finalize(st);
    tg__buf_free(&s2);

    sqlite3_close(db);
    return tg_test_done();
}
