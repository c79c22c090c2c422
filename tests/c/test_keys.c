/* Typed keys through the C API: text user, workspace and tenant keys copied at open (the
 * caller's strings may change afterwards), text record ids paged by keyset, blob ids, the
 * decision sink's typed keys, and a key of the wrong type refused before any decision. */
#include "tenantguard.h"

#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_test.h"

static const char *schema =
    "CREATE TABLE workspaces(id TEXT PRIMARY KEY);"
    "CREATE TABLE tenants(id TEXT PRIMARY KEY, workspace_id TEXT COLLATE NOCASE);"
    "CREATE TABLE workspace_memberships(user_id TEXT, workspace_id TEXT, role TEXT);"
    "CREATE TABLE tenant_memberships(user_id TEXT, tenant_id TEXT, role TEXT);"
    "CREATE TABLE operation_runs(id INTEGER PRIMARY KEY, type, status, workspace_id, summary,"
    "  created_at, started_at, finished_at);"
    "CREATE TABLE audit_logs(id INTEGER PRIMARY KEY, workspace_id, tenant_id, action, subject,"
    "  metadata, created_at);"
    "CREATE TABLE notes(id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, title TEXT);"
    "CREATE TABLE files(id BLOB PRIMARY KEY, tenant_id TEXT NOT NULL, name TEXT);"
    "INSERT INTO workspaces VALUES ('w1'), ('w2');"
    "INSERT INTO tenants VALUES ('t1', 'w1'), ('t2', 'w1'), ('t9', 'w2'), ('t3', 'W1');"
    "INSERT INTO workspace_memberships VALUES ('u|1', 'w1', 'owner');"
    "INSERT INTO tenant_memberships VALUES ('u|1', 't1', NULL), ('u|1', 't3', NULL);"
    "INSERT INTO notes VALUES ('b', 't1', 'x'), ('a', 't1', 'x'), ('d', 't1', 'x'),"
    "  ('c', 't1', 'x'), ('e', 't1', 'x'), ('f', 't2', 'x'), ('g', 't3', 'x');"
    "INSERT INTO files VALUES (x'00ff', 't1', 'one'), (x'0100', 't1', 'two'),"
    "  (x'02', 't2', 'foreign');";

static const char *families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"N\", search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"v\" }, detail = { capability = \"v\" },\n"
    "            bulk_action = { capability = \"v\" } },\n"
    "}\n"
    "family \"File\" {\n"
    "  table = \"files\", primary_surface = \"F\", search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"v\" }, detail = { capability = \"v\" } },\n"
    "}\n";

static char last_user[64];
static int last_ids_type = -1, events = 0;

static void sink(void *ud, const tg_decision_event *ev) {
    (void)ud;
    events++;
    snprintf(last_user, sizeof last_user, "%.*s", (int)ev->user.n, ev->user.s);
    last_ids_type = ev->n_ids ? ev->ids[0].type : -1;
}

static const char *column_text(const tg_decision *d, size_t row, const char *name) {
    for (size_t c = 0; c < d->n_columns; c++)
        if (strcmp(d->columns[c], name) == 0)
            return d->values[row * d->n_columns + c].s;
    return NULL;
}

int main(void) {
    char tmp[] = "/tmp/tg_c_keys_XXXXXX";
    if (!mkdtemp(tmp))
        return 2;
    char rules[600], db[600];
    snprintf(rules, sizeof rules, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    mkdir(rules, 0700);
    tg_test_write(rules, "app.lua", "app { }\n");
    tg_test_write(rules, "roles.lua", "capabilities { \"v\" }\nrole \"owner\" { \"*\" }\n");
    tg_test_write(rules, "families.lua", families);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);
    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    if (tg_engine_open(&o, &eng) != TG_OK) {
        fprintf(stderr, "%s\n", tg_engine_errmsg(eng));
        return 1;
    }
    tg_engine_set_decision_sink(eng, sink, NULL);

    /* the keys are copied: the caller's buffers may change once the context is open */
    char user[8] = "u|1", ws[8] = "w1", tenant[8] = "t1";
    tg_ctx_options co = {tg_key_text(user), tg_key_text(ws), tg_key_text(tenant), 0};
    tg_ctx *ctx = NULL;
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    strcpy(user, "zz");
    strcpy(ws, "zz");
    strcpy(tenant, "zz");

    /* keyset paging on a text id: every row once, in order, to the end */
    tg_request r = {0};
    r.family = "Note";
    r.path = TG_PATH_INDEX;
    r.limit = 2;
    const tg_decision *d = NULL;
    char seen[16] = "";
    int pages = 0;
    do {
        CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK && d->status == 200);
        for (size_t i = 0; i < d->n_records; i++)
            strncat(seen, column_text(d, i, "id"), 1);
        CHECK(d->n_records == 0 || (d->next_after.type == TG_TEXT &&
                                    strcmp(d->next_after.s, column_text(d, d->n_records - 1,
                                                                        "id")) == 0));
        r.after = d->next_after;
    } while (d->has_more && ++pages < 10);
    CHECK(strcmp(seen, "abcde") == 0);
    CHECK(strcmp(last_user, "u|1") == 0);

    /* detail, bulk with a duplicate, and a foreign row */
    tg_request q = {0};
    q.family = "Note";
    q.path = TG_PATH_DETAIL;
    q.id = tg_key_text("c");
    CHECK(tg_ctx_resolve(ctx, &q, &d) == TG_OK && d->status == 200 && d->n_records == 1);
    CHECK(last_ids_type == TG_TEXT);
    q.id = tg_key_text("f");
    CHECK(tg_ctx_resolve(ctx, &q, &d) == TG_OK && d->status == 404 &&
          strcmp(d->reason, "foreign_tenant") == 0);
    tg_value ids[3] = {tg_key_text("a"), tg_key_text("b"), tg_key_text("a")};
    q.path = TG_PATH_BULK_ACTION;
    q.id = (tg_value){0};
    q.ids = ids;
    q.n_ids = 3;
    CHECK(tg_ctx_resolve(ctx, &q, &d) == TG_OK && d->status == 200 && d->n_records == 2);

    /* an integer for a text id: refused before any decision */
    int before = events;
    q.path = TG_PATH_DETAIL;
    q.id = tg_key_int(1);
    CHECK(tg_ctx_resolve(ctx, &q, &d) == TG_MISUSE && d == NULL && events == before);
    CHECK(strstr(tg_ctx_errmsg(ctx), "id: expected a text key for notes.id, got integer"));

    /* blob ids: text is bound as a blob for a BLOB column; blobs come back typed */
    tg_request f = {0};
    f.family = "File";
    f.path = TG_PATH_DETAIL;
    f.id = tg_key_blob("\x00\xff", 2);
    CHECK(tg_ctx_resolve(ctx, &f, &d) == TG_OK && d->status == 200 && d->n_records == 1);
    CHECK(d->n_records == 1 && d->values[0].type == TG_BLOB && d->values[0].n == 2);
    CHECK(last_ids_type == TG_BLOB);
    f.id = tg_key_text("\x01");
    f.id.n = 2; /* the bytes 01 00 */
    CHECK(tg_ctx_resolve(ctx, &f, &d) == TG_OK && d->status == 200);
    f.id = tg_key_blob("\x02", 1);
    CHECK(tg_ctx_resolve(ctx, &f, &d) == TG_OK && d->status == 404);
    f.path = TG_PATH_INDEX;
    f.id = (tg_value){0};
    f.limit = 1;
    size_t n = 0;
    do {
        CHECK(tg_ctx_resolve(ctx, &f, &d) == TG_OK && d->status == 200);
        n += d->n_records;
        CHECK(d->n_records == 0 || d->next_after.type == TG_BLOB);
        f.after = d->next_after;
    } while (d->has_more && n < 10);
    CHECK(n == 2);
    tg_ctx_close(ctx);

    /* tenant t3's workspace is 'W1', equal to the context's 'w1' only under the column's
     * NOCASE collation: keys compare by type and bytes, so t3 is not in workspace w1, in
     * the first decision of a context (its one statement) as in a repeated one */
    tg_ctx_options t3 = {tg_key_text("u|1"), tg_key_text("w1"), tg_key_text("t3"), 0};
    CHECK(tg_ctx_open(eng, &t3, &ctx) == TG_OK);
    q.family = "Note";
    q.path = TG_PATH_DETAIL;
    q.id = tg_key_text("g");
    q.ids = NULL;
    q.n_ids = 0;
    for (int i = 0; i < 2; i++)
        CHECK(tg_ctx_resolve(ctx, &q, &d) == TG_OK && d->status == 404 && d->n_records == 0 &&
              strcmp(d->reason, "tenant_not_in_workspace") == 0);
    tg_ctx_close(ctx);
    CHECK(tg_ctx_open(eng, &t3, &ctx) == TG_OK);
    r.after = (tg_value){0};
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK && d->status == 404 &&
          strcmp(d->reason, "tenant_not_in_workspace") == 0);
    tg_ctx_close(ctx);

    /* context keys of the wrong type, or missing */
    tg_ctx_options bad = {tg_key_int(1), tg_key_text("w1"), {0}, 0};
    CHECK(tg_ctx_open(eng, &bad, &ctx) == TG_MISUSE);
    CHECK(strstr(tg_ctx_errmsg(ctx), "user: expected a text key"));
    tg_ctx_close(ctx);
    tg_ctx_options none = {0};
    CHECK(tg_ctx_open(eng, &none, &ctx) == TG_MISUSE);
    tg_ctx_close(ctx);

    tg_engine_close(eng);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        return 2;
    return tg_test_done();
}
