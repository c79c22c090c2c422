/* The resolver and write guard through the C API alone: a small database made with SQLite,
 * a small rule set, and decisions checked for status, reason and rows. */
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_test.h"

#define write_file tg_test_write

static const char *schema =
    "CREATE TABLE workspaces(id INTEGER PRIMARY KEY);"
    "CREATE TABLE tenants(id INTEGER PRIMARY KEY, workspace_id INTEGER);"
    "CREATE TABLE workspace_memberships(user_id, workspace_id, role);"
    "CREATE TABLE tenant_memberships(user_id, tenant_id, role);"
    "CREATE TABLE operation_runs(id INTEGER PRIMARY KEY, type, status, summary, created_at,"
    "  started_at, finished_at);"
    "CREATE TABLE audit_logs(id INTEGER PRIMARY KEY, workspace_id, tenant_id, action, metadata,"
    "  created_at);"
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, title TEXT,"
    "  workspace_id INTEGER);"
    "INSERT INTO workspaces VALUES (1), (2);"
    "INSERT INTO tenants VALUES (10, 1), (11, 1), (20, 2);"
    "INSERT INTO workspace_memberships VALUES (1, 1, 'owner'), (2, 1, 'viewer'), (3, 2, 'owner');"
    "INSERT INTO tenant_memberships VALUES (1, 10, NULL), (1, 11, NULL), (2, 10, NULL),"
    "  (3, 20, NULL);"
    "INSERT INTO notes VALUES (1, 10, 'a', NULL), (2, 10, 'b', 1), (3, 11, 'c', NULL),"
    "  (4, 20, 'd', 2), (5, 10, 'e', 2), (6, 10, '50% off', NULL);"
    /* memos: a family whose paths declare no capability */
    "CREATE TABLE memos(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, body TEXT);"
    "INSERT INTO memos VALUES (1, 10, 'm'), (2, 11, 'n');"
    /* user 4: a member whose role is NULL; user 5: a role the rules do not declare */
    "INSERT INTO workspace_memberships VALUES (4, 1, NULL), (5, 1, 'ghost');"
    "INSERT INTO tenant_memberships VALUES (4, 10, NULL), (5, 10, NULL);"
    /* alerts: a scope exception's table whose tenant column has no type, so a text tenant
     * id stays text */
    "CREATE TABLE alerts(id INTEGER PRIMARY KEY, workspace_id, tenant_id, body);"
    "INSERT INTO alerts VALUES (1, 1, 10, 'x'), (2, 1, '10', 'y'), (3, 1, NULL, 'z');";

static const char *rules_families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"NoteResource\", search_posture = \"scoped\",\n"
    "  search_columns = { \"title\" }, action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"note.view\" }, detail = { capability = \"note.view\" },\n"
    "            row_action = { capability = \"note.edit\" },\n"
    "            bulk_action = { capability = \"note.edit\" },\n"
    "            global_search = { capability = \"note.view\" } },\n"
    "}\n"
    "family \"Memo\" {\n"
    "  table = \"memos\", primary_surface = \"MemoResource\", search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = true, detail = {}, row_action = true, bulk_action = true },\n"
    "}\n";

static int sink_calls = 0;
static int last_status = 0;
static void sink(void *ud, const tg_decision_event *ev) {
    (void)ud;
    sink_calls++;
    last_status = ev->status;
}

static const tg_decision *resolve(tg_ctx *ctx, tg_path_type path, int64_t id) {
    tg_request r = {0};
    r.family = "Note";
    r.path = path;
    r.id = tg_key_int(id);
    const tg_decision *d = NULL;
    int st = tg_ctx_resolve(ctx, &r, &d);
    if (st != TG_OK)
        fprintf(stderr, "resolve: %s\n", tg_ctx_errmsg(ctx));
    return d;
}

static const tg_decision *resolve_in(tg_ctx *ctx, const char *family, tg_path_type path,
                                     int64_t id) {
    tg_request r = {0};
    r.family = family;
    r.path = path;
    r.id = tg_key_int(id);
    r.ids = &r.id;
    r.n_ids = 1;
    const tg_decision *d = NULL;
    if (tg_ctx_resolve(ctx, &r, &d) != TG_OK)
        fprintf(stderr, "resolve: %s\n", tg_ctx_errmsg(ctx));
    return d;
}

static int is(const tg_decision *d, int status, const char *reason) {
    return d && d->status == status && strcmp(d->reason, reason) == 0 && d->n_records == 0;
}

static int64_t column_int(const tg_decision *d, size_t row, const char *name) {
    for (size_t c = 0; c < d->n_columns; c++)
        if (strcmp(d->columns[c], name) == 0)
            return d->values[row * d->n_columns + c].i;
    return -1;
}

int main(void) {
    char tmp[] = "/tmp/tg_c_resolver_XXXXXX";
    if (!mkdtemp(tmp))
        return 2;
    char rules[600], db[600];
    snprintf(rules, sizeof rules, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    mkdir(rules, 0700);
    write_file(rules, "app.lua", "app { }\n");
    write_file(rules, "roles.lua",
               "capabilities { \"note.view\", \"note.edit\" }\n"
               "role \"owner\" { \"*\" }\nrole \"viewer\" { \"note.view\" }\n");
    write_file(rules, "families.lua", rules_families);
    write_file(rules, "exceptions.lua",
               "exception \"Alerts\" {\n"
               "  exception_kind = \"workspace_owned_reference_surface\", table = \"alerts\",\n"
               "  surface = \"AlertResource\", why_excepted = \"test\",\n"
               "  still_required_checks = { \"workspace_member\", \"record_in_workspace\",\n"
               "                            \"capability\" },\n"
               "  capability = \"note.view\",\n"
               "}\n");
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);

    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    CHECK(st == TG_OK);
    if (st != TG_OK) {
        fprintf(stderr, "%s\n", tg_engine_errmsg(eng));
        return 1;
    }
    tg_engine_set_decision_sink(eng, sink, NULL);

    tg_ctx_options co = {tg_key_int(1), tg_key_int(1), tg_key_int(10), 0};
    tg_ctx *ctx = NULL;
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    const tg_decision *d = resolve(ctx, TG_PATH_DETAIL, 1);
    CHECK(d && d->status == 200 && d->n_records == 1 && column_int(d, 0, "id") == 1);
    d = resolve(ctx, TG_PATH_DETAIL, 3); /* tenant 11, same workspace */
    CHECK(d && d->status == 404 && strcmp(d->reason, "foreign_tenant") == 0 && d->n_records == 0);
    d = resolve(ctx, TG_PATH_DETAIL, 4); /* other workspace */
    CHECK(d && d->status == 404 && strcmp(d->reason, "foreign_workspace") == 0);
    d = resolve(ctx, TG_PATH_DETAIL, 5); /* tenant 10 but workspace_id 2 */
    CHECK(d && d->status == 404 && strcmp(d->reason, "workspace_mismatch") == 0);
    d = resolve(ctx, TG_PATH_DETAIL, 99);
    CHECK(d && d->status == 404 && strcmp(d->reason, "not_found") == 0);
    CHECK(sink_calls == 5 && last_status == 404);

    /* index: tenant 10 only, never the mismatched row */
    tg_request r = {0};
    r.family = "Note";
    r.path = TG_PATH_INDEX;
    r.limit = 2;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK);
    CHECK(d->status == 200 && d->n_records == 2 && d->has_more);
    CHECK(column_int(d, 0, "id") == 1 && column_int(d, 1, "id") == 2);
    CHECK(d->next_after.type == TG_INTEGER && d->next_after.i == 2);
    r.after = d->next_after;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK);
    CHECK(d->status == 200 && d->n_records == 1 && column_int(d, 0, "id") == 6 && !d->has_more);
    r.limit = 100000;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_LIMIT);

    /* search: '%' is literal */
    tg_request s = {0};
    s.family = "Note";
    s.path = TG_PATH_GLOBAL_SEARCH;
    s.query = "50%";
    CHECK(tg_ctx_resolve(ctx, &s, &d) == TG_OK);
    CHECK(d->status == 200 && d->n_records == 1 && column_int(d, 0, "id") == 6);
    s.query = "%";
    CHECK(tg_ctx_resolve(ctx, &s, &d) == TG_OK && d->n_records == 1);

    /* bulk: all or nothing */
    tg_value good[] = {tg_key_int(1), tg_key_int(2), tg_key_int(2), tg_key_int(6)};
    tg_value mixed[] = {tg_key_int(1), tg_key_int(3)};
    tg_request b = {0};
    b.family = "Note";
    b.path = TG_PATH_BULK_ACTION;
    b.ids = good;
    b.n_ids = 4;
    CHECK(tg_ctx_resolve(ctx, &b, &d) == TG_OK && d->status == 200 && d->n_records == 3);
    b.ids = mixed;
    b.n_ids = 2;
    CHECK(tg_ctx_resolve(ctx, &b, &d) == TG_OK && d->status == 404 && d->n_records == 0);

    /* unknown family and capability are errors, not decisions */
    tg_request u = {0};
    u.family = "Nope";
    u.path = TG_PATH_INDEX;
    CHECK(tg_ctx_resolve(ctx, &u, &d) == TG_UNKNOWN);
    CHECK(strstr(tg_ctx_errmsg(ctx), "Nope") != NULL);

    /* writes */
    tg_column_value title = {"title", {TG_TEXT, 0, 0, "new", 3}};
    CHECK(tg_ctx_insert(ctx, "Note", &title, 1, NULL, &d) == TG_OK && d->status == 200);
    tg_value new_id = d->row_id;
    CHECK(new_id.type == TG_INTEGER && new_id.i > 6);
    tg_column_value bad_ws[2] = {{"title", {TG_TEXT, 0, 0, "x", 1}},
                                 {"workspace_id", {TG_INTEGER, 2, 0, NULL, 0}}};
    CHECK(tg_ctx_insert(ctx, "Note", bad_ws, 2, NULL, &d) == TG_REJECTED);
    tg_column_value move = {"tenant_id", {TG_INTEGER, 11, 0, NULL, 0}};
    CHECK(tg_ctx_update(ctx, "Note", &new_id, &move, 1, NULL, &d) == TG_REJECTED);
    CHECK(strstr(tg_ctx_errmsg(ctx), "never change") != NULL);
    tg_value three = tg_key_int(3), one = tg_key_int(1);
    CHECK(tg_ctx_update(ctx, "Note", &three, &title, 1, NULL, &d) == TG_OK && d->status == 404);
    /* a key its column cannot hold is an error before any decision, never a coercion */
    tg_value text_one = tg_key_text("1");
    int calls = sink_calls;
    CHECK(tg_ctx_update(ctx, "Note", &text_one, &title, 1, NULL, &d) == TG_MISUSE && d == NULL);
    CHECK(strstr(tg_ctx_errmsg(ctx), "expected an integer key for notes.id, got text") != NULL);
    r.family = "Note";
    r.path = TG_PATH_DETAIL;
    r.id = text_one;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_MISUSE && d == NULL && sink_calls == calls);
    r.id = (tg_value){0};
    tg_ctx_close(ctx);

    /* a viewer: reads yes, row actions 403, writes 403 */
    tg_ctx_options vo = {tg_key_int(2), tg_key_int(1), tg_key_int(10), 0};
    CHECK(tg_ctx_open(eng, &vo, &ctx) == TG_OK);
    CHECK(resolve(ctx, TG_PATH_DETAIL, 1)->status == 200);
    d = resolve(ctx, TG_PATH_ROW_ACTION, 1);
    CHECK(d->status == 403 && strcmp(d->reason, "missing_capability") == 0);
    d = resolve(ctx, TG_PATH_ROW_ACTION, 3); /* scope before capability */
    CHECK(d->status == 404);
    CHECK(tg_ctx_insert(ctx, "Note", &title, 1, NULL, &d) == TG_OK && d->status == 403);
    tg_ctx_close(ctx);

    /* not entitled, no tenant, not a member */
    tg_ctx_options no = {tg_key_int(2), tg_key_int(1), tg_key_int(11), 0};
    CHECK(tg_ctx_open(eng, &no, &ctx) == TG_OK);
    CHECK(strcmp(resolve(ctx, TG_PATH_DETAIL, 3)->reason, "not_entitled") == 0);
    tg_ctx_close(ctx);
    tg_ctx_options nt = {tg_key_int(1), tg_key_int(1), {0}, 0};
    CHECK(tg_ctx_open(eng, &nt, &ctx) == TG_OK);
    CHECK(strcmp(resolve(ctx, TG_PATH_DETAIL, 1)->reason, "no_tenant_context") == 0);
    tg_ctx_close(ctx);
    tg_ctx_options nm = {tg_key_int(3), tg_key_int(1), tg_key_int(10), 0};
    CHECK(tg_ctx_open(eng, &nm, &ctx) == TG_OK);
    CHECK(strcmp(resolve(ctx, TG_PATH_DETAIL, 1)->reason, "not_member") == 0);

    tg_ctx_close(ctx);

    /* fail closed: a path without a capability is 403 for every role once scope holds */
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    tg_path_type capless[] = {TG_PATH_INDEX, TG_PATH_DETAIL, TG_PATH_ROW_ACTION,
                              TG_PATH_BULK_ACTION};
    for (size_t i = 0; i < sizeof capless / sizeof *capless; i++) {
        CHECK(is(resolve_in(ctx, "Memo", capless[i], 1), 403, "missing_capability"));
        if (capless[i] != TG_PATH_INDEX)
            CHECK(is(resolve_in(ctx, "Memo", capless[i], 2), 404, "foreign_tenant"));
    }
    tg_column_value body = {"body", {TG_TEXT, 0, 0, "new", 3}};
    CHECK(tg_ctx_insert(ctx, "Memo", &body, 1, NULL, &d) == TG_OK && is(d, 403, "missing_capability"));
    CHECK(tg_ctx_update(ctx, "Memo", &one, &body, 1, NULL, &d) == TG_OK && is(d, 403, "missing_capability"));
    /* a request naming both a family and an exception, or a search without a query */
    tg_request both = {0};
    both.family = "Note";
    both.exception = "Anything";
    both.path = TG_PATH_INDEX;
    CHECK(tg_ctx_resolve(ctx, &both, &d) == TG_MISUSE && d == NULL);
    CHECK(strstr(tg_ctx_errmsg(ctx), "both") != NULL);
    tg_request noq = {0};
    noq.family = "Note";
    noq.path = TG_PATH_GLOBAL_SEARCH;
    CHECK(tg_ctx_resolve(ctx, &noq, &d) == TG_MISUSE && d == NULL);
    CHECK(strstr(tg_ctx_errmsg(ctx), "query") != NULL);
    tg_ctx_close(ctx);

    /* an exception's list never shows a row its detail refuses: a tenant id that is not an
     * integer places the row nowhere */
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    tg_request ex = {0};
    ex.exception = "Alerts";
    ex.path = TG_PATH_DETAIL;
    ex.id = tg_key_int(2);
    CHECK(tg_ctx_resolve(ctx, &ex, &d) == TG_OK && d->status == 404);
    ex.path = TG_PATH_INDEX;
    ex.id = (tg_value){0};
    CHECK(tg_ctx_resolve(ctx, &ex, &d) == TG_OK && d->status == 200);
    CHECK(d->n_records == 2 && column_int(d, 0, "id") == 1 && column_int(d, 1, "id") == 3);
    tg_ctx_close(ctx);

    /* a NULL role and an undeclared role grant nothing, on any path */
    for (int64_t user = 4; user <= 5; user++) {
        tg_ctx_options ro = {tg_key_int(user), tg_key_int(1), tg_key_int(10), 0};
        CHECK(tg_ctx_open(eng, &ro, &ctx) == TG_OK);
        CHECK(is(resolve_in(ctx, "Note", TG_PATH_DETAIL, 1), 403, "missing_capability"));
        CHECK(is(resolve_in(ctx, "Note", TG_PATH_INDEX, 1), 403, "missing_capability"));
        CHECK(is(resolve_in(ctx, "Memo", TG_PATH_DETAIL, 1), 403, "missing_capability"));
        CHECK(is(resolve_in(ctx, "Note", TG_PATH_DETAIL, 3), 404, "foreign_tenant"));
        CHECK(tg_ctx_insert(ctx, "Note", &title, 1, NULL, &d) == TG_OK &&
              is(d, 403, "missing_capability"));
        tg_ctx_close(ctx);
    }
    CHECK(tg_ctx_open(eng, &nm, &ctx) == TG_OK);

    /* the context outlives a close of the engine's handle safely */
    tg_engine_close(eng);
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_MISUSE);
    tg_ctx_close(ctx);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
