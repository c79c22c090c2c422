/* One statement per decision: every kind of case a by-id decision can meet, first in a new
 * context and repeated in one, is decided by one execution of one statement on the engine's
 * connection, its log reason included (foreign_tenant and foreign_workspace are told apart
 * from what that statement read, not by a second lookup). Counted with SQLite's own trace
 * on the engine's connection, so any statement the library runs is seen. */
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../core/engine.h" /* the engine's connection, to trace it */
#include "tg_test.h"

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
    "CREATE TABLE comments(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, note_id INTEGER,"
    "  body TEXT);"
    "INSERT INTO workspaces VALUES (1), (2);"
    "INSERT INTO tenants VALUES (10, 1), (11, 1), (20, 2);"
    /* 1 owner entitled to 10 and 11; 2 viewer entitled to 10; 3 owner of workspace 2;
     * 6 a member of workspace 1 entitled to nothing; 9 a member of nothing */
    "INSERT INTO workspace_memberships VALUES (1, 1, 'owner'), (2, 1, 'viewer'), (3, 2, 'owner'),"
    "  (6, 1, 'owner');"
    "INSERT INTO tenant_memberships VALUES (1, 10, NULL), (1, 11, NULL), (2, 10, NULL),"
    "  (3, 20, NULL);"
    /* note 3: tenant 11 (same workspace); 4: tenant 20 (workspace 2); 5: tenant 10 whose
     * own workspace column says 2; 7: a tenant that does not exist */
    "INSERT INTO notes VALUES (1, 10, 'a', NULL), (2, 10, 'b', 1), (3, 11, 'c', NULL),"
    "  (4, 20, 'd', 2), (5, 10, 'e', 2), (7, 99, 'g', NULL);"
    "INSERT INTO comments VALUES (1, 10, 1, 'x'), (2, 10, 2, 'y');";

static const char *families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"NoteResource\", search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"note.view\" }, detail = { capability = \"note.view\" },\n"
    "            row_action = { capability = \"note.edit\" },\n"
    "            bulk_action = { capability = \"note.edit\" } },\n"
    "}\n"
    "family \"Comment\" {\n"
    "  table = \"comments\", primary_surface = \"CommentResource\",\n"
    "  search_posture = \"not_applicable\", action_surface_status = \"declared\",\n"
    "  paths = { detail = { capability = \"note.view\" },\n"
    "            relation_manager = { owner = \"Note\", via = \"note_id\",\n"
    "                                 capability = \"note.view\" } },\n"
    "}\n";

static int executions = 0;
static int on_trace(unsigned type, void *ud, void *p, void *x) {
    (void)ud;
    (void)p;
    (void)x;
    if (type == SQLITE_TRACE_STMT)
        executions++;
    return 0;
}

static tg_engine *eng;

typedef struct kase {
    const char *what;
    int64_t user, tenant;
    tg_path_type path;
    int64_t id;
    int status;
    const char *reason;
} kase;

static const kase cases[] = {
    {"in scope", 1, 10, TG_PATH_DETAIL, 1, 200, "ok"},
    {"not a member", 9, 10, TG_PATH_DETAIL, 1, 404, "not_member"},
    {"tenant of another workspace", 1, 20, TG_PATH_DETAIL, 4, 404, "tenant_not_in_workspace"},
    {"not entitled", 6, 10, TG_PATH_DETAIL, 1, 404, "not_entitled"},
    {"missing record", 1, 10, TG_PATH_DETAIL, 99, 404, "not_found"},
    {"record of another tenant", 1, 10, TG_PATH_DETAIL, 3, 404, "foreign_tenant"},
    {"record of another workspace", 1, 10, TG_PATH_DETAIL, 4, 404, "foreign_workspace"},
    {"record of no tenant", 1, 10, TG_PATH_DETAIL, 7, 404, "foreign_workspace"},
    {"workspace mismatch", 1, 10, TG_PATH_DETAIL, 5, 404, "workspace_mismatch"},
    {"403", 2, 10, TG_PATH_ROW_ACTION, 1, 403, "missing_capability"},
    {"row action in scope", 1, 10, TG_PATH_ROW_ACTION, 2, 200, "ok"},
};

/* Decides c in ctx; returns the statements executed, -1 when the decision is not c's. */
static int count(tg_ctx *ctx, const kase *c) {
    tg_request r = {0};
    r.family = "Note";
    r.path = c->path;
    r.id = tg_key_int(c->id);
    const tg_decision *d = NULL;
    int before = executions;
    if (tg_ctx_resolve(ctx, &r, &d) != TG_OK || d->status != c->status ||
        strcmp(d->reason, c->reason) != 0) {
        fprintf(stderr, "%s: got %d %s\n", c->what, d ? d->status : -1,
                d ? d->reason : tg_ctx_errmsg(ctx));
        return -1;
    }
    return executions - before;
}

static tg_ctx *open_ctx(int64_t user, int64_t tenant) {
    tg_ctx_options o = {tg_key_int(user), tg_key_int(1), tg_key_int(tenant), 0};
    tg_ctx *ctx = NULL;
    if (tg_ctx_open(eng, &o, &ctx) != TG_OK) {
        fprintf(stderr, "open: %s\n", tg_ctx_errmsg(ctx));
        exit(1);
    }
    return ctx;
}

static int resolve_count(tg_ctx *ctx, tg_request *r, int status, const char *reason) {
    const tg_decision *d = NULL;
    int before = executions;
    if (tg_ctx_resolve(ctx, r, &d) != TG_OK || d->status != status ||
        strcmp(d->reason, reason) != 0) {
        fprintf(stderr, "%s: got %d %s\n", reason, d ? d->status : -1,
                d ? d->reason : tg_ctx_errmsg(ctx));
        return -1;
    }
    return executions - before;
}

int main(void) {
    char tmp[] = "/tmp/tg_c_one_statement_XXXXXX";
    if (!mkdtemp(tmp))
        return 2;
    char rules[600], db[600];
    snprintf(rules, sizeof rules, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    mkdir(rules, 0700);
    tg_test_write(rules, "app.lua", "app { }\n");
    tg_test_write(rules, "roles.lua",
                  "capabilities { \"note.view\", \"note.edit\" }\n"
                  "role \"owner\" { \"*\" }\nrole \"viewer\" { \"note.view\" }\n");
    tg_test_write(rules, "families.lua", families);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);
    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    if (tg_engine_open(&o, &eng) != TG_OK) {
        fprintf(stderr, "%s\n", tg_engine_errmsg(eng));
        return 1;
    }
    const size_t n = sizeof cases / sizeof *cases;
    /* warm: the plan reads the schema and prepares its statements once per rule version */
    for (size_t i = 0; i < n; i++) {
        tg_ctx *ctx = open_ctx(cases[i].user, cases[i].tenant);
        CHECK(count(ctx, &cases[i]) >= 0);
        CHECK(count(ctx, &cases[i]) >= 0);
        tg_ctx_close(ctx);
    }
    sqlite3_trace_v2(eng->db, SQLITE_TRACE_STMT, on_trace, NULL);

    /* the first decision of a new context: one statement, whatever the case */
    for (size_t i = 0; i < n; i++) {
        int before = executions;
        tg_ctx *ctx = open_ctx(cases[i].user, cases[i].tenant);
        int k = count(ctx, &cases[i]);
        tg_ctx_close(ctx);
        if (executions - before != 1)
            fprintf(stderr, "first decision, %s: %d statements\n", cases[i].what,
                    executions - before);
        CHECK(k == 1 && executions - before == 1);
    }

    /* repeated in one context: one statement when a record is read; none when the
     * context's scope (read once) already refused */
    for (size_t i = 0; i < n; i++) {
        tg_ctx *ctx = open_ctx(cases[i].user, cases[i].tenant);
        CHECK(count(ctx, &cases[i]) == 1); /* the first: scope and record */
        int k = count(ctx, &cases[i]);
        int scope_refused = strcmp(cases[i].reason, "not_member") == 0 ||
                            strcmp(cases[i].reason, "tenant_not_in_workspace") == 0 ||
                            strcmp(cases[i].reason, "not_entitled") == 0;
        if (k != (scope_refused ? 0 : 1))
            fprintf(stderr, "repeated decision, %s: %d statements\n", cases[i].what, k);
        CHECK(k == (scope_refused ? 0 : 1));
        tg_ctx_close(ctx);
    }

    /* bulk: all or nothing, the refusal's reason from the same statement */
    tg_ctx *ctx = open_ctx(1, 10);
    tg_value in_scope[] = {tg_key_int(1), tg_key_int(2)};
    tg_value other_tenant[] = {tg_key_int(1), tg_key_int(3)};
    tg_value other_ws[] = {tg_key_int(1), tg_key_int(4)};
    tg_request b = {0};
    b.family = "Note";
    b.path = TG_PATH_BULK_ACTION;
    b.n_ids = 2;
    b.ids = in_scope;
    CHECK(resolve_count(ctx, &b, 200, "ok") == 2); /* the scope, then the ids */
    CHECK(resolve_count(ctx, &b, 200, "ok") == 1);
    b.ids = other_tenant;
    CHECK(resolve_count(ctx, &b, 404, "foreign_tenant") == 1);
    b.ids = other_ws;
    CHECK(resolve_count(ctx, &b, 404, "foreign_workspace") == 1);

    /* relation manager: the owner's check reads its reason from the owner's statement */
    tg_request rm = {0};
    rm.family = "Comment";
    rm.path = TG_PATH_RELATION_MANAGER;
    rm.owner = tg_key_int(3);
    CHECK(resolve_count(ctx, &rm, 404, "owner_foreign_tenant") == 1);
    rm.owner = tg_key_int(4);
    CHECK(resolve_count(ctx, &rm, 404, "owner_foreign_workspace") == 1);
    rm.owner = tg_key_int(1);
    rm.id = tg_key_int(1);
    CHECK(resolve_count(ctx, &rm, 200, "ok") == 2); /* the owner, then the child */
    tg_ctx_close(ctx);

    tg_engine_close(eng);
    return tg_test_done();
}
