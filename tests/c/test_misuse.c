/* The C API misused the ways tenantguard.h documents as safe: id counts of any width above
 * the limit, contradictory requests, handles closed twice or from their own callbacks,
 * re-entrant calls from the decision sink and the progress callback. Run under ASan, any
 * of these that touched freed or unowned memory aborts the test. */
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdint.h>
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
    "CREATE TABLE operation_runs(id INTEGER PRIMARY KEY, type, status, summary, created_at,"
    "  started_at, finished_at);"
    "CREATE TABLE audit_logs(id INTEGER PRIMARY KEY, workspace_id, tenant_id, action, metadata,"
    "  created_at);"
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, title TEXT,"
    "  workspace_id INTEGER);"
    "INSERT INTO workspaces VALUES (1);"
    "INSERT INTO tenants VALUES (10, 1), (11, 1);"
    "INSERT INTO workspace_memberships VALUES (1, 1, 'owner');"
    "INSERT INTO tenant_memberships VALUES (1, 10, NULL);"
    "INSERT INTO notes VALUES (1, 10, 'a', NULL), (2, 10, 'b', NULL), (3, 11, 'c', NULL),"
    "  (4, 10, 'd', NULL), (5, 10, 'e', NULL), (6, 10, 'f', NULL);";

static const char *rules_families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"NoteResource\", search_posture = \"scoped\",\n"
    "  search_columns = { \"title\" }, action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"note.view\" }, detail = { capability = \"note.view\" },\n"
    "            row_action = { capability = \"note.edit\" },\n"
    "            bulk_action = { capability = \"note.edit\" },\n"
    "            global_search = { capability = \"note.view\" } },\n"
    "}\n";

static char dir[] = "/tmp/tg_c_misuse_XXXXXX";
static char rules[600], db[600];

static tg_engine *open_engine(void) {
    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    if (tg_engine_open(&o, &eng) != TG_OK) {
        fprintf(stderr, "open: %s\n", tg_engine_errmsg(eng));
        exit(1);
    }
    return eng;
}

static tg_ctx *open_ctx(tg_engine *eng) {
    tg_ctx_options co = {tg_key_int(1), tg_key_int(1), tg_key_int(10), 0};
    tg_ctx *ctx = NULL;
    if (tg_ctx_open(eng, &co, &ctx) != TG_OK) {
        fprintf(stderr, "ctx: %s\n", tg_ctx_errmsg(ctx));
        exit(1);
    }
    return ctx;
}

static tg_request detail(int64_t id) {
    tg_request r = {0};
    r.family = "Note";
    r.path = TG_PATH_DETAIL;
    r.id = tg_key_int(id);
    return r;
}

/* n_ids above max_bulk_ids, whatever width the caller's count had before it became a
 * size_t: TG_LIMIT before any id is read. */
static void test_bulk_counts(void) {
    tg_engine *eng = open_engine();
    tg_ctx *ctx = open_ctx(eng);
    tg_value ids[2] = {tg_key_int(1), tg_key_int(2)};
    tg_request r = {0};
    r.family = "Note";
    r.path = TG_PATH_BULK_ACTION;
    r.ids = ids;
    const tg_decision *d = NULL;
    int neg = -1;
    long long neg_ll = -5;
    size_t counts[] = {SIZE_MAX,
                       (size_t)neg,
                       (size_t)neg_ll,
                       (size_t)INT64_MAX + 1,
                       (size_t)INT64_MAX,
                       (size_t)UINT32_MAX + 1,
                       1001};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        r.n_ids = counts[i];
        CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_LIMIT);
        CHECK(d == NULL);
        CHECK(strstr(tg_ctx_errmsg(ctx), "max_bulk_ids") != NULL);
    }
    r.n_ids = 2;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_OK && d->status == 200 && d->n_records == 2);
    r.ids = NULL;
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_MISUSE);
    tg_ctx_close(ctx);
    tg_engine_close(eng);
}

/* A request that says two things, or misses what its path needs, is an error. */
static void test_contradictory_requests(void) {
    tg_engine *eng = open_engine();
    tg_ctx *ctx = open_ctx(eng);
    const tg_decision *d = NULL;
    tg_request r = detail(1);
    r.exception = "SomeException";
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_MISUSE);
    CHECK(strstr(tg_ctx_errmsg(ctx), "both") != NULL);
    tg_request s = {0};
    s.family = "Note";
    s.path = TG_PATH_GLOBAL_SEARCH;
    CHECK(tg_ctx_resolve(ctx, &s, &d) == TG_MISUSE);
    CHECK(strstr(tg_ctx_errmsg(ctx), "query") != NULL);
    s.query = "";
    CHECK(tg_ctx_resolve(ctx, &s, &d) == TG_OK && d->status == 200);
    tg_request p = detail(1);
    p.path = (tg_path_type)-1;
    CHECK(tg_ctx_resolve(ctx, &p, &d) == TG_MISUSE);
    p.path = TG_PATH_COUNT;
    CHECK(tg_ctx_resolve(ctx, &p, &d) == TG_MISUSE);
    CHECK(tg_ctx_resolve(ctx, NULL, &d) == TG_MISUSE);
    CHECK(tg_ctx_resolve(NULL, &r, &d) == TG_MISUSE);
    tg_ctx_close(ctx);
    tg_engine_close(eng);
}

/* NULL handles everywhere; a context outliving its engine's handle. */
static void test_closed_handles(void) {
    tg_engine_close(NULL);
    tg_ctx_close(NULL);
    CHECK(strcmp(tg_engine_errmsg(NULL), "out of memory") == 0);
    CHECK(tg_engine_reload(NULL) == TG_MISUSE);
    CHECK(tg_ctx_open(NULL, NULL, NULL) == TG_MISUSE);
    tg_work_result wr;
    CHECK(tg_work(NULL, NULL, &wr) == TG_MISUSE);
    tg_engine *eng = open_engine();
    tg_ctx *ctx = open_ctx(eng);
    tg_engine_close(eng);
    const tg_decision *d = NULL;
    tg_request r = detail(1);
    CHECK(tg_ctx_resolve(ctx, &r, &d) == TG_MISUSE);
    CHECK(strstr(tg_ctx_errmsg(ctx), "closed") != NULL);
    tg_column_value v = {"title", {TG_TEXT, 0, 0, "x", 1}};
    CHECK(tg_ctx_insert(ctx, "Note", &v, 1, NULL, &d) == TG_MISUSE);
    tg_value one = tg_key_int(1);
    CHECK(tg_ctx_update(ctx, "Note", &one, &v, 1, NULL, &d) == TG_MISUSE);
    CHECK(tg_ctx_rules(ctx) != NULL);
    tg_ctx_close(ctx);
}

/* ---- the decision sink calling back into the library ---- */

typedef struct reentry {
    tg_engine *eng;
    tg_ctx *ctx;   /* the context deciding */
    tg_ctx *other; /* another context of the same engine */
    int mode;
    int calls;
    int inner_status;
    const tg_decision *inner;
} reentry;

enum { SAME_RESOLVE, SAME_INSERT, SAME_CLOSE, OTHER_RESOLVE, ENGINE_CLOSE, ENGINE_RELOAD };

static void reentry_sink(void *ud, const tg_decision_event *ev) {
    reentry *re = ud;
    (void)ev;
    if (re->calls++)
        return;
    tg_request mine = detail(1);
    tg_column_value v = {"title", {TG_TEXT, 0, 0, "inner", 5}};
    switch (re->mode) {
    case SAME_RESOLVE: re->inner_status = tg_ctx_resolve(re->ctx, &mine, &re->inner); break;
    case SAME_INSERT:
        re->inner_status = tg_ctx_insert(re->ctx, "Note", &v, 1, NULL, &re->inner);
        break;
    case SAME_CLOSE: tg_ctx_close(re->ctx); break;
    case OTHER_RESOLVE: re->inner_status = tg_ctx_resolve(re->other, &mine, &re->inner); break;
    case ENGINE_CLOSE: tg_engine_close(re->eng); break;
    case ENGINE_RELOAD: re->inner_status = tg_engine_reload(re->eng); break;
    }
}

static void test_sink_reentry(void) {
    for (int mode = SAME_RESOLVE; mode <= ENGINE_RELOAD; mode++) {
        reentry re = {0};
        re.mode = mode;
        re.eng = open_engine();
        re.ctx = open_ctx(re.eng);
        re.other = open_ctx(re.eng);
        tg_engine_set_decision_sink(re.eng, reentry_sink, &re);
        tg_request foreign = detail(3); /* tenant 11: not this context's */
        const tg_decision *d = NULL;
        CHECK(tg_ctx_resolve(re.ctx, &foreign, &d) == TG_OK);
        /* the outer decision is the one asked for, whatever the sink did */
        CHECK(d && d->status == 404 && strcmp(d->reason, "foreign_tenant") == 0);
        CHECK(d && d->n_records == 0);
        CHECK(re.calls == (mode == OTHER_RESOLVE ? 2 : 1)); /* the other's decision too */
        switch (mode) {
        case SAME_RESOLVE:
        case SAME_INSERT:
            CHECK(re.inner_status == TG_MISUSE && re.inner == NULL);
            CHECK(strstr(tg_ctx_errmsg(re.ctx), "busy") != NULL);
            break;
        case OTHER_RESOLVE:
            CHECK(re.inner_status == TG_OK && re.inner && re.inner->status == 200);
            break;
        case ENGINE_RELOAD: CHECK(re.inner_status == TG_OK); break;
        default: break;
        }
        if (mode == SAME_INSERT) {
            sqlite3 *h = NULL;
            CHECK(sqlite3_open(db, &h) == SQLITE_OK);
            sqlite3_stmt *st = NULL;
            CHECK(sqlite3_prepare_v2(h, "SELECT count(*) FROM notes WHERE title = 'inner'", -1, &st,
                                     NULL) == SQLITE_OK);
            CHECK(sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0);
            sqlite3_finalize(st);
            sqlite3_close(h);
        }
        if (mode != ENGINE_CLOSE)
            tg_engine_set_decision_sink(re.eng, NULL, NULL);
        /* closing a context from its own sink is ignored: it is still open and decides */
        tg_request mine = detail(1);
        int st = tg_ctx_resolve(re.ctx, &mine, &d);
        if (mode == ENGINE_CLOSE)
            CHECK(st == TG_MISUSE);
        else
            CHECK(st == TG_OK && d->status == 200);
        tg_ctx_close(re.ctx);
        tg_ctx_close(re.other);
        if (mode != ENGINE_CLOSE)
            tg_engine_close(re.eng);
    }
}

/* ---- the progress callback calling back into the library ---- */

typedef struct progress_state {
    tg_engine *eng;
    int mode;
    int calls;
    int nested;
} progress_state;

static int progress_reentry(void *ud, const tg_progress *p) {
    progress_state *ps = ud;
    (void)p;
    ps->calls++;
    if (ps->mode == 0) {
        tg_engine_close(ps->eng);
    } else {
        tg_work_result wr;
        ps->nested = tg_work(ps->eng, NULL, &wr);
    }
    return 0;
}

static void test_progress_reentry(void) {
    for (int mode = 0; mode < 2; mode++) {
        tg_engine *eng = open_engine();
        int64_t run = 0;
        tg_backfill_options bo = {0};
        bo.batch_rows = 1;
        CHECK(tg_backfill_start(eng, &bo, &run) == TG_OK);
        progress_state ps = {eng, mode, 0, -1};
        tg_work_options wo = {0};
        wo.progress = progress_reentry;
        wo.ud = &ps;
        tg_work_result wr = {0};
        int st = tg_work(eng, &wo, &wr);
        if (mode == 0) {
            /* the close stops the worker after that batch and frees the engine on return */
            CHECK(st == TG_MISUSE);
            CHECK(ps.calls == 1);
        } else {
            CHECK(st == TG_OK && wr.idle);
            CHECK(ps.nested == TG_BUSY);
            CHECK(ps.calls > 1);
            tg_engine_close(eng);
        }
    }
}

/* ---- the decision sink during tg_run_matrix ---- */

typedef struct matrix_state {
    tg_engine *eng;
    int mode; /* 0: close the engine, 1: reload it, 2: run the matrix again */
    int calls;
    int inner;
} matrix_state;

static void matrix_sink(void *ud, const tg_decision_event *ev) {
    matrix_state *ms = ud;
    (void)ev;
    if (ms->calls++)
        return;
    if (ms->mode == 0) {
        tg_engine_close(ms->eng);
    } else if (ms->mode == 1) {
        ms->inner = tg_engine_reload(ms->eng);
    } else {
        tg_matrix_report *inner = NULL;
        ms->inner = tg_run_matrix(ms->eng, NULL, &inner);
        if (inner)
            tg_matrix_free(inner);
    }
}

/* The matrix reads the engine's rules and connection throughout: a sink that closes the
 * engine stops the run (the engine is freed when it returns, never under it); a reload or a
 * second run from the sink is refused (TG_BUSY) and the run goes on. Under ASan any use of
 * freed memory fails the test. */
static void test_matrix_sink_reentry(void) {
    for (int mode = 0; mode < 3; mode++) {
        matrix_state ms = {open_engine(), mode, 0, -1};
        tg_engine_set_decision_sink(ms.eng, matrix_sink, &ms);
        tg_matrix_report *rep = NULL;
        int st = tg_run_matrix(ms.eng, NULL, &rep);
        CHECK(ms.calls >= 1);
        if (mode == 0) {
            CHECK(st == TG_MISUSE);
            CHECK(rep == NULL);
        } else {
            CHECK(st == TG_OK && rep);
            CHECK(ms.inner == TG_BUSY);
            if (rep)
                CHECK(rep->failed == 0);
            tg_matrix_free(rep);
            tg_engine_close(ms.eng);
        }
    }
}

int main(void) {
    if (!mkdtemp(dir))
        return 2;
    snprintf(rules, sizeof rules, "%s/rules", dir);
    snprintf(db, sizeof db, "%s/app.db", dir);
    mkdir(rules, 0700);
    tg_test_write(rules, "app.lua", "app { }\n");
    tg_test_write(rules, "roles.lua",
                  "capabilities { \"note.view\", \"note.edit\" }\nrole \"owner\" { \"*\" }\n");
    tg_test_write(rules, "families.lua", rules_families);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK)
        return 2;
    sqlite3_close(h);

    test_bulk_counts();
    test_contradictory_requests();
    test_closed_handles();
    test_sink_reentry();
    test_progress_reentry();
    test_matrix_sink_reentry();

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return tg_test_done();
}
