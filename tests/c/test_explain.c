/* The C API of explanations: tg_ctx_explain agrees with tg_ctx_resolve, names the deciding
 * check, owns its memory (one tg_explanation_free), is not logged, refuses what resolve
 * refuses; tg_reason_check maps every reason; TG_DECLOG_CHECK adds the check to the JSON
 * lines. Run under ASan, a leak or a read past the explanation aborts the test. */
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_test.h"

static const char *schema =
    "CREATE TABLE workspaces(id INTEGER PRIMARY KEY);"
    "CREATE TABLE tenants(id INTEGER PRIMARY KEY, workspace_id INTEGER);"
    "CREATE TABLE workspace_memberships(user_id, workspace_id, role);"
    "CREATE TABLE tenant_memberships(user_id, tenant_id, role);"
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, title TEXT,"
    "  workspace_id INTEGER);"
    "INSERT INTO workspaces VALUES (1), (2);"
    "INSERT INTO tenants VALUES (10, 1), (11, 1), (20, 2);"
    "INSERT INTO workspace_memberships VALUES (1, 1, 'owner');"
    "INSERT INTO tenant_memberships VALUES (1, 10, NULL);"
    "INSERT INTO notes VALUES (1, 10, 'secret-a', NULL), (2, 11, 'secret-b', NULL),"
    "  (3, 20, 'secret-c', NULL), (4, 10, 'secret-d', 2);";

static const char *rules_families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"NoteResource\", search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"note.view\" }, detail = { capability = \"note.view\" },\n"
    "            row_action = { capability = \"note.edit\" } },\n"
    "}\n";

static char dir[] = "/tmp/tg_c_explain_XXXXXX";
static char rules[600], db[600], log_path[600];
static int sink_calls;

static void sink(void *ud, const tg_decision_event *ev) {
    (void)ud;
    (void)ev;
    sink_calls++;
}

static void test_explain(void) {
    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    if (tg_engine_open(&o, &eng) != TG_OK) {
        fprintf(stderr, "open: %s\n", tg_engine_errmsg(eng));
        exit(1);
    }
    tg_engine_set_decision_sink(eng, sink, NULL);
    tg_ctx_options co = {tg_key_int(1), tg_key_int(1), tg_key_int(10), 0};
    tg_ctx *ctx = NULL;
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    struct {
        int64_t id;
        tg_path_type path;
        int status;
        const char *reason, *check;
    } cases[] = {
        {1, TG_PATH_DETAIL, 200, "ok", "capability"},
        {2, TG_PATH_DETAIL, 404, "foreign_tenant", "record"},
        {3, TG_PATH_DETAIL, 404, "foreign_workspace", "record"},
        {4, TG_PATH_DETAIL, 404, "workspace_mismatch", "record"},
        {9, TG_PATH_DETAIL, 404, "not_found", "record"},
        {1, TG_PATH_ROW_ACTION, 200, "ok", "capability"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tg_request r = {0};
        r.family = "Note";
        r.path = cases[i].path;
        r.id = tg_key_int(cases[i].id);
        const tg_decision *d = NULL;
        CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK);
        int calls = sink_calls;
        tg_explanation *x = NULL;
        CHECK(tg_ctx_explain(ctx, &r, &x) == TG_OK);
        CHECK(sink_calls == calls); /* not a decision served: not logged */
        if (!x)
            continue;
        CHECK(x->status == cases[i].status);
        CHECK(strcmp(x->reason, cases[i].reason) == 0);
        CHECK(strcmp(x->decided_by, cases[i].check) == 0);
        CHECK(strcmp(tg_reason_check(x->reason), x->decided_by) == 0);
        CHECK(x->decided_at < x->n_checks);
        CHECK(strcmp(x->checks[x->decided_at].check, x->decided_by) == 0);
        CHECK(x->decision && x->decision->status == x->status);
        for (size_t k = 0; k < x->n_checks; k++) {
            CHECK(x->checks[k].read && strstr(x->checks[k].read, "secret") == NULL);
            CHECK((x->checks[k].result == TG_EXPLAIN_FAIL) == (x->checks[k].reason != NULL));
        }
        tg_explanation_free(x);
    }
    /* what resolve refuses, explain refuses, with *out NULL */
    tg_request bad = {0};
    bad.family = "Nope";
    bad.path = TG_PATH_INDEX;
    tg_explanation *x = (tg_explanation *)&bad;
    CHECK(tg_ctx_explain(ctx, &bad, &x) == TG_UNKNOWN && x == NULL);
    bad.family = "Note";
    bad.path = TG_PATH_DETAIL;
    CHECK(tg_ctx_explain(ctx, &bad, &x) == TG_MISUSE && x == NULL);
    CHECK(tg_ctx_explain(NULL, &bad, &x) == TG_MISUSE);
    CHECK(tg_ctx_explain(ctx, NULL, &x) == TG_MISUSE);
    CHECK(tg_ctx_explain(ctx, &bad, NULL) == TG_MISUSE);
    tg_explanation_free(NULL);

    /* the deciding check in the JSON lines, only with the option */
    CHECK(tg_engine_decision_options(eng) == 0);
    CHECK(tg_engine_set_decision_file(eng, log_path) == TG_OK);
    tg_request r = {0};
    r.family = "Note";
    r.path = TG_PATH_DETAIL;
    r.id = tg_key_int(2);
    const tg_decision *d = NULL;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK);
    tg_engine_set_decision_options(eng, TG_DECLOG_CHECK);
    CHECK(tg_engine_decision_options(eng) == TG_DECLOG_CHECK);
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK);
    CHECK(tg_engine_set_decision_file(eng, NULL) == TG_OK);
    FILE *f = fopen(log_path, "r");
    char line1[1024] = "", line2[1024] = "";
    CHECK(f && fgets(line1, sizeof line1, f) && fgets(line2, sizeof line2, f));
    if (f)
        fclose(f);
    CHECK(strstr(line1, "\"check\"") == NULL);
    CHECK(strstr(line2, "\"check\":\"record\"") != NULL);
    tg_ctx_close(ctx);
    tg_engine_close(eng);
}

static void test_reason_check(void) {
    static const char *const map[][2] = {
        {"ok", "capability"},         {"missing_capability", "capability"},
        {"not_member", "membership"}, {"no_tenant_context", "tenant_context"},
        {"tenant_not_in_workspace", "tenant_workspace"},
        {"not_entitled", "entitlement"}, {"not_found", "record"},
        {"foreign_tenant", "record"}, {"foreign_workspace", "record"},
        {"workspace_mismatch", "record"}, {"wrong_owner", "record"},
        {"owner_not_found", "owner"}, {"owner_foreign_tenant", "owner"},
        {"owner_foreign_workspace", "owner"}, {"owner_workspace_mismatch", "owner"},
        {"path_not_declared", "path"}, {"search_disabled", "path"},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        const char *c = tg_reason_check(map[i][0]);
        CHECK(c && strcmp(c, map[i][1]) == 0);
    }
    CHECK(tg_reason_check(NULL) == NULL);
    CHECK(tg_reason_check("no_such_reason") == NULL);
    CHECK(tg_engine_decision_options(NULL) == 0);
    tg_engine_set_decision_options(NULL, TG_DECLOG_CHECK);
}

int main(void) {
    if (!mkdtemp(dir))
        return 2;
    snprintf(rules, sizeof rules, "%s/rules", dir);
    snprintf(db, sizeof db, "%s/app.db", dir);
    snprintf(log_path, sizeof log_path, "%s/decisions.jsonl", dir);
    mkdir(rules, 0700);
    tg_test_write(rules, "app.lua", "app { }\n");
    tg_test_write(rules, "roles.lua",
                  "capabilities { \"note.view\", \"note.edit\" }\nrole \"owner\" { \"*\" }\n");
    tg_test_write(rules, "families.lua", rules_families);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);
    test_reason_check();
    test_explain();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return tg_test_done();
}
