/* Read snapshots and connection settings through the C API: tg_engine_read_begin/end
 * (counted), a context opened with `snapshot`, writes refused inside, reads that join, and
 * tg_open_options' cache_size_kib / mmap_size / busy_timeout_ms checked and reported. */
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
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, title TEXT);"
    "INSERT INTO workspaces VALUES (1);"
    "INSERT INTO tenants VALUES (10, 1);"
    "INSERT INTO workspace_memberships VALUES (1, 1, 'owner');"
    "INSERT INTO tenant_memberships VALUES (1, 10, NULL);"
    "INSERT INTO notes VALUES (1, 10, 'first'), (2, 10, 'second');";

static const char *families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"NoteResource\",\n"
    "  search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"note.view\" },\n"
    "            detail = { capability = \"note.view\" },\n"
    "            row_action = { capability = \"note.edit\" } },\n"
    "}\n";

static sqlite3 *other; /* another connection: the "other process" */

static void exec_other(const char *sql) {
    if (sqlite3_exec(other, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "other connection: %s\n", sqlite3_errmsg(other));
        exit(2);
    }
}

/* The title of note `id` as the context decides it; "" when not 200. */
static const char *title(tg_ctx *ctx, int64_t id) {
    static char buf[64];
    tg_request r = {0};
    r.family = "Note";
    r.path = TG_PATH_DETAIL;
    r.id = tg_key_int(id);
    const tg_decision *d = NULL;
    if (tg_ctx_resolve(ctx, &r, &d) != TG_OK || d->status != 200 || d->n_records != 1)
        return "";
    for (size_t c = 0; c < d->n_columns; c++)
        if (strcmp(d->columns[c], "title") == 0)
            snprintf(buf, sizeof buf, "%s", d->values[c].s ? d->values[c].s : "");
    return buf;
}

static int insert_note(tg_ctx *ctx, const char *t, const tg_decision **d) {
    tg_column_value v[] = {{"title", {TG_TEXT, 0, 0, t, 0}}};
    return tg_ctx_insert(ctx, "Note", v, 1, NULL, d);
}

static int64_t count_notes(void) {
    sqlite3_stmt *st;
    int64_t n = -1;
    if (sqlite3_prepare_v2(other, "SELECT count(*) FROM notes", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static void test_begin_end(tg_engine *eng, tg_ctx *ctx) {
    CHECK(strcmp(title(ctx, 1), "first") == 0);
    /* end without begin is misuse, and changes nothing */
    CHECK(tg_engine_read_end(eng) == TG_MISUSE);
    CHECK(strstr(tg_engine_errmsg(eng), "no read snapshot") != NULL);

    CHECK(tg_engine_read_begin(eng) == TG_OK);
    CHECK(strcmp(title(ctx, 1), "first") == 0);
    exec_other("UPDATE notes SET title = 'changed' WHERE id = 1");
    CHECK(strcmp(title(ctx, 1), "first") == 0); /* same snapshot */
    CHECK(tg_engine_read_begin(eng) == TG_OK);  /* nested: joins */
    CHECK(tg_engine_read_end(eng) == TG_OK);
    CHECK(strcmp(title(ctx, 1), "first") == 0); /* the outer one holds */

    /* writes are refused, with a message on the handle, and write nothing */
    const tg_decision *d = NULL;
    int64_t n = count_notes();
    CHECK(insert_note(ctx, "x", &d) == TG_MISUSE && d == NULL);
    CHECK(strstr(tg_ctx_errmsg(ctx), "insert inside a read snapshot") != NULL);
    tg_column_value v[] = {{"title", {TG_TEXT, 0, 0, "y", 0}}};
    tg_value id = tg_key_int(2);
    CHECK(tg_ctx_update(ctx, "Note", &id, v, 1, NULL, &d) == TG_MISUSE);
    CHECK(strstr(tg_ctx_errmsg(ctx), "update inside a read snapshot") != NULL);
    CHECK(tg_rollout(eng, "add_columns") == TG_MISUSE);
    CHECK(strstr(tg_engine_errmsg(eng), "rollout inside a read snapshot") != NULL);
    int64_t run = 0;
    CHECK(tg_backfill_start(eng, NULL, &run) == TG_MISUSE);
    tg_work_result wr;
    CHECK(tg_work(eng, NULL, &wr) == TG_MISUSE);
    CHECK(tg_backfill_control(eng, 0, "pause") == TG_MISUSE);
    tg_matrix_report *rep = NULL;
    CHECK(tg_run_matrix(eng, NULL, &rep) == TG_MISUSE && rep == NULL);
    CHECK(count_notes() == n);
    /* reads join the snapshot instead of ending it */
    tg_validation *val = NULL;
    CHECK(tg_validate(eng, &val) == TG_OK);
    tg_validation_free(val);
    tg_backfill_plan *plan = NULL;
    CHECK(tg_backfill_dry_run(eng, &plan) == TG_OK);
    tg_backfill_plan_free(plan);
    CHECK(strcmp(title(ctx, 1), "first") == 0);

    CHECK(tg_engine_read_end(eng) == TG_OK);
    CHECK(strcmp(title(ctx, 1), "changed") == 0); /* seen once the snapshot ended */
    CHECK(insert_note(ctx, "after", &d) == TG_OK && d->status == 200);
    CHECK(count_notes() == n + 1);
    CHECK(tg_engine_read_end(eng) == TG_MISUSE);
}

static void test_snapshot_context(tg_engine *eng, tg_ctx *ctx) {
    tg_ctx_options so = {tg_key_int(1), tg_key_int(1), tg_key_int(10), 1};
    tg_ctx *snap = NULL;
    CHECK(tg_ctx_open(eng, &so, &snap) == TG_OK);
    CHECK(strcmp(title(snap, 2), "second") == 0);
    exec_other("UPDATE notes SET title = 'moved on' WHERE id = 2");
    CHECK(strcmp(title(snap, 2), "second") == 0);
    CHECK(strcmp(title(ctx, 2), "second") == 0); /* the engine's other contexts share it */
    const tg_decision *d = NULL;
    CHECK(insert_note(ctx, "x", &d) == TG_MISUSE);
    tg_ctx_close(snap);
    CHECK(strcmp(title(ctx, 2), "moved on") == 0);
    CHECK(insert_note(ctx, "y", &d) == TG_OK && d->status == 200);

    /* a context that fails to open holds nothing */
    tg_ctx_options bad = {tg_key_int(1), {0}, {0}, 1};
    snap = NULL;
    CHECK(tg_ctx_open(eng, &bad, &snap) == TG_MISUSE);
    tg_ctx_close(snap);
    CHECK(tg_engine_read_end(eng) == TG_MISUSE);
    CHECK(insert_note(ctx, "z", &d) == TG_OK);

    /* inside an explicit snapshot, a snapshot context joins; the last to leave ends it */
    CHECK(tg_engine_read_begin(eng) == TG_OK);
    snap = NULL;
    CHECK(tg_ctx_open(eng, &so, &snap) == TG_OK);
    CHECK(strcmp(title(snap, 2), "moved on") == 0);
    CHECK(tg_engine_read_end(eng) == TG_OK);
    exec_other("UPDATE notes SET title = 'again' WHERE id = 2");
    CHECK(strcmp(title(ctx, 2), "moved on") == 0);
    tg_ctx_close(snap);
    CHECK(strcmp(title(ctx, 2), "again") == 0);
}

/* Closing the engine ends its snapshot; a context holding it closes safely afterwards. */
static void test_close_engine(const tg_open_options *o) {
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(o, &eng) == TG_OK);
    tg_ctx_options so = {tg_key_int(1), tg_key_int(1), tg_key_int(10), 1};
    tg_ctx *snap = NULL;
    CHECK(tg_ctx_open(eng, &so, &snap) == TG_OK);
    CHECK(strcmp(title(snap, 1), "changed") == 0);
    CHECK(tg_engine_read_begin(eng) == TG_OK);
    tg_engine_close(eng);
    /* the engine's connection holds no read transaction: a checkpoint can finish */
    int log = -1, done = -1;
    exec_other("UPDATE notes SET title = 'free' WHERE id = 1");
    CHECK(sqlite3_wal_checkpoint_v2(other, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done) ==
          SQLITE_OK);
    CHECK(strcmp(title(snap, 1), "") == 0); /* the context refuses to decide */
    tg_ctx_close(snap);
}

static void test_settings(const tg_open_options *base) {
    tg_open_options o = *base;
    tg_engine *eng = NULL;
    tg_settings s;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    CHECK(tg_engine_settings(eng, &s) == TG_OK);
    CHECK(s.cache_size_kib == 2000 && s.mmap_size == 0 && s.busy_timeout_ms == 5000);
    CHECK(strcmp(s.journal_mode, "wal") == 0 && strcmp(s.synchronous, "normal") == 0);
    CHECK(s.page_size >= 512);
    tg_engine_close(eng);

    o.cache_size_kib = 4096;
    o.mmap_size = 1 << 20;
    o.busy_timeout_ms = 250;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    CHECK(tg_engine_settings(eng, &s) == TG_OK);
    CHECK(s.cache_size_kib == 4096 && s.mmap_size == 1 << 20 && s.busy_timeout_ms == 250);
    tg_engine_close(eng);
    CHECK(tg_engine_settings(NULL, &s) == TG_MISUSE);

    struct {
        int64_t cache, mmap;
        int busy;
        const char *says;
    } bad[] = {{10, 0, 0, "cache size"},
               {-1, 0, 0, "cache size"},
               {(INT64_C(1) << 30) + 1, 0, 0, "cache size"},
               {0, -1, 0, "mmap size"},
               {0, (INT64_C(1) << 40) + 1, 0, "mmap size"},
               {0, 0, -1, "busy timeout"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = *base;
        o.cache_size_kib = bad[i].cache;
        o.mmap_size = bad[i].mmap;
        o.busy_timeout_ms = bad[i].busy;
        eng = NULL;
        CHECK(tg_engine_open(&o, &eng) == TG_MISUSE);
        CHECK(strstr(tg_engine_errmsg(eng), bad[i].says) != NULL);
        tg_engine_close(eng);
    }
    /* without a database there is nothing to report, and no snapshot */
    o = *base;
    o.db = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    CHECK(tg_engine_settings(eng, &s) == TG_MISUSE);
    CHECK(tg_engine_read_begin(eng) == TG_MISUSE);
    tg_engine_close(eng);
    CHECK(tg_engine_read_begin(NULL) == TG_MISUSE && tg_engine_read_end(NULL) == TG_MISUSE);
}

int main(void) {
    char tmp[] = "/tmp/tg_c_snapshot_XXXXXX";
    if (!mkdtemp(tmp))
        return 2;
    char rules[600], db[600];
    snprintf(rules, sizeof rules, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    mkdir(rules, 0700);
    write_file(rules, "app.lua", "app { }\n");
    write_file(rules, "roles.lua",
               "capabilities { \"note.view\", \"note.edit\" }\nrole \"owner\" { \"*\" }\n");
    write_file(rules, "families.lua", families);
    if (sqlite3_open(db, &other) != SQLITE_OK ||
        sqlite3_exec(other, schema, NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    exec_other("PRAGMA journal_mode = WAL");
    sqlite3_busy_timeout(other, 5000);

    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    if (tg_engine_open(&o, &eng) != TG_OK) {
        fprintf(stderr, "%s\n", tg_engine_errmsg(eng));
        return 1;
    }
    tg_ctx_options co = {tg_key_int(1), tg_key_int(1), tg_key_int(10), 0};
    tg_ctx *ctx = NULL;
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    test_begin_end(eng, ctx);
    test_snapshot_context(eng, ctx);
    tg_ctx_close(ctx);
    tg_engine_close(eng);
    test_close_engine(&o);
    test_settings(&o);
    sqlite3_close(other);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        return 2;
    return tg_test_done();
}
