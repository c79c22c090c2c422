/* Automatic reload (tg_open_options.auto_reload_ms): an edit is in force for the contexts
 * opened after the interval, a broken edit keeps the old rules and is reported to on_reload
 * and the decision file, a change inside the interval is not looked at, contexts already
 * open keep their rules, and a callback that closes the engine is survived. */
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tg_test.h"

static char tmp[256];
static char dir[512], db[512], logpath[512];

static const char *family_v1 =
    "family \"Thing\" {\n"
    "  table = \"things\",\n"
    "  primary_surface = \"ThingResource\",\n"
    "  search_posture = \"not_applicable\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = {}, detail = { capability = \"thing.view\" } },\n"
    "}\n";

/* v2 no longer has a detail path: a detail request is a 404 under version 2 only */
static const char *family_v2 = "family \"Thing\" {\n"
                               "  table = \"things\",\n"
                               "  primary_surface = \"ThingResource\",\n"
                               "  search_posture = \"not_applicable\",\n"
                               "  action_surface_status = \"declared\",\n"
                               "  paths = { index = {} },\n"
                               "}\n";

/* a syntax error on line 3 */
static const char *family_broken = "family \"Thing\" {\n"
                                   "  table = \"things\",\n"
                                   "  primary_surface = = \"ThingResource\",\n"
                                   "}\n";

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void setup(void) {
    snprintf(dir, sizeof dir, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    snprintf(logpath, sizeof logpath, "%s/decisions.jsonl", tmp);
    mkdir(dir, 0700);
    tg_test_write(dir, "app.lua", "app { name = \"c-test\" }\n");
    tg_test_write(dir, "roles.lua", "capabilities { \"thing.view\" }\nrole \"owner\" { \"*\" }\n");
    tg_test_write(dir, "families.lua", family_v1);
    sqlite3 *h = NULL;
    CHECK(sqlite3_open(db, &h) == SQLITE_OK);
    CHECK(sqlite3_exec(h,
                       "CREATE TABLE workspaces(id INTEGER PRIMARY KEY);"
                       "CREATE TABLE tenants(id INTEGER PRIMARY KEY, workspace_id INTEGER);"
                       "CREATE TABLE workspace_memberships(user_id, workspace_id, role);"
                       "CREATE TABLE tenant_memberships(user_id, tenant_id);"
                       "CREATE TABLE operation_runs(id, type, status, summary, created_at,"
                       "  started_at, finished_at);"
                       "CREATE TABLE audit_logs(id, workspace_id, tenant_id, action, metadata,"
                       "  created_at);"
                       "CREATE TABLE things(id INTEGER PRIMARY KEY, tenant_id INTEGER);"
                       "INSERT INTO workspaces VALUES (1);"
                       "INSERT INTO tenants VALUES (1, 1);"
                       "INSERT INTO workspace_memberships VALUES (7, 1, 'owner');"
                       "INSERT INTO tenant_memberships VALUES (7, 1);"
                       "INSERT INTO things VALUES (42, 1);",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
}

typedef struct seen {
    int calls, last_status;
    char last_message[512], last_version[32];
    tg_engine *close_me; /* the callback closes this engine */
} seen;

static void on_reload(void *ud, int status, const char *message, const char *version) {
    seen *s = ud;
    s->calls++;
    s->last_status = status;
    snprintf(s->last_message, sizeof s->last_message, "%s", message ? message : "(null)");
    snprintf(s->last_version, sizeof s->last_version, "%s", version);
    if (s->close_me) {
        tg_engine *e = s->close_me;
        s->close_me = NULL;
        tg_engine_close(e);
    }
}

static tg_ctx *open_ctx(tg_engine *eng) {
    tg_ctx_options co = {tg_key_int(7), tg_key_int(1), tg_key_int(1), 0};
    tg_ctx *ctx = NULL;
    int st = tg_ctx_open(eng, &co, &ctx);
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "ctx open: %s\n", tg_ctx_errmsg(ctx));
    return ctx;
}

/* A detail request for record 42: 200 under version 1; 404 (path_not_declared) under
 * version 2. */
static int detail(tg_ctx *ctx, int *http) {
    tg_request rq;
    memset(&rq, 0, sizeof rq);
    rq.family = "Thing";
    rq.path = TG_PATH_DETAIL;
    rq.id = tg_key_int(42);
    const tg_decision *d = NULL;
    int st = tg_ctx_resolve(ctx, &rq, &d);
    *http = st == TG_OK ? d->status : 0;
    return st;
}

/* Counts the lines of the decision file containing every one of a, b and c. */
static int log_lines(const char *a, const char *b, const char *c) {
    FILE *f = fopen(logpath, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c)))
            n++;
    fclose(f);
    return n;
}

static void test_edit_broken_edit(void) {
    seen s = {0};
    tg_open_options o = {0};
    o.rules = dir;
    o.db = db;
    o.auto_reload_ms = 100;
    o.on_reload = on_reload;
    o.reload_ud = &s;
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    CHECK(tg_engine_set_decision_file(eng, logpath) == TG_OK);
    char v1[32];
    snprintf(v1, sizeof v1, "%s", tg_engine_rules(eng)->version);

    tg_ctx *old = open_ctx(eng);
    int http = 0;
    CHECK(detail(old, &http) == TG_OK && http == 200);

    /* an edit, and a wait past the interval: the next context decides with it */
    tg_test_write(dir, "families.lua", family_v2);
    sleep_ms(300);
    tg_ctx *fresh = open_ctx(eng);
    CHECK(s.calls == 1 && s.last_status == TG_OK && strcmp(s.last_message, "(null)") == 0);
    CHECK(strcmp(tg_engine_rules(eng)->version, v1) != 0);
    CHECK(strcmp(tg_ctx_rules(fresh)->version, tg_engine_rules(eng)->version) == 0);
    CHECK(strcmp(s.last_version, tg_engine_rules(eng)->version) == 0);
    CHECK(detail(fresh, &http) == TG_OK && http == 404); /* path_not_declared */
    /* the context opened before keeps its rules and its answers */
    CHECK(strcmp(tg_ctx_rules(old)->version, v1) == 0);
    CHECK(detail(old, &http) == TG_OK && http == 200);
    char v2[32];
    snprintf(v2, sizeof v2, "%s", tg_engine_rules(eng)->version);
    tg_ctx_close(fresh);

    /* a broken edit: the old rules keep serving, reported with file:line */
    tg_test_write(dir, "families.lua", family_broken);
    sleep_ms(300);
    tg_ctx *after = open_ctx(eng);
    CHECK(s.calls == 2 && s.last_status == TG_RULES);
    CHECK(strstr(s.last_message, "families.lua:3:") != NULL);
    CHECK(strcmp(s.last_version, v2) == 0);
    CHECK(strcmp(tg_ctx_rules(after)->version, v2) == 0);
    tg_ctx_close(after);
    /* not tried again while the files stay as they are */
    sleep_ms(300);
    tg_ctx_close(open_ctx(eng));
    CHECK(s.calls == 2);
    /* the decision file has both reloads, beside the decisions */
    CHECK(log_lines("\"kind\":\"reload\"", "\"ok\":true", v2) == 1);
    CHECK(log_lines("\"kind\":\"reload\"", "\"ok\":false", "families.lua:3:") == 1);
    CHECK(log_lines("\"previous_version\":\"", v1, "\"ok\":true") == 1);
    CHECK(log_lines("\"status\":200", NULL, NULL) == 2);

    /* fixed: in force again */
    tg_test_write(dir, "families.lua", family_v1);
    sleep_ms(300);
    tg_ctx *fixed = open_ctx(eng);
    CHECK(s.calls == 3 && s.last_status == TG_OK);
    CHECK(strcmp(tg_ctx_rules(fixed)->version, v1) == 0);
    CHECK(detail(fixed, &http) == TG_OK && http == 200);
    tg_ctx_close(fixed);
    tg_ctx_close(old);
    tg_engine_close(eng);
}

/* Inside the interval nothing is looked at: an edit is not picked up however many contexts
 * open, and without auto_reload never. */
static void test_within_interval(void) {
    int intervals[] = {600000, 0};
    for (int i = 0; i < 2; i++) {
        seen s = {0};
        tg_open_options o = {0};
        o.rules = dir;
        o.db = db;
        o.auto_reload_ms = intervals[i];
        o.on_reload = on_reload;
        o.reload_ud = &s;
        tg_engine *eng = NULL;
        CHECK(tg_engine_open(&o, &eng) == TG_OK);
        char v[32];
        snprintf(v, sizeof v, "%s", tg_engine_rules(eng)->version);
        tg_test_write(dir, "families.lua", i ? family_v1 : family_v2);
        sleep_ms(150);
        for (int k = 0; k < 20; k++) {
            tg_ctx *ctx = open_ctx(eng);
            CHECK(strcmp(tg_ctx_rules(ctx)->version, v) == 0);
            tg_ctx_close(ctx);
        }
        CHECK(s.calls == 0);
        CHECK(strcmp(tg_engine_rules(eng)->version, v) == 0);
        tg_engine_close(eng);
    }
}

/* A callback that closes the engine: that tg_ctx_open fails cleanly (ASan watches). */
static void test_callback_closes(void) {
    seen s = {0};
    tg_open_options o = {0};
    o.rules = dir;
    o.db = db;
    o.auto_reload_ms = 50;
    o.on_reload = on_reload;
    o.reload_ud = &s;
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    tg_ctx *held = open_ctx(eng);
    s.close_me = eng;
    tg_test_write(dir, "families.lua", family_v2);
    sleep_ms(200);
    tg_ctx_options co = {tg_key_int(7), tg_key_int(1), tg_key_int(1), 0};
    tg_ctx *ctx = NULL;
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_MISUSE);
    CHECK(strstr(tg_ctx_errmsg(ctx), "closed") != NULL);
    tg_ctx_close(ctx);
    CHECK(s.calls == 1);
    int http = 0;
    CHECK(detail(held, &http) == TG_MISUSE); /* its engine is closed */
    tg_ctx_close(held);                      /* frees the engine */
}

static void test_options_and_stamp(void) {
    tg_open_options o = {0};
    o.rules = dir;
    o.auto_reload_ms = -1;
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_MISUSE);
    CHECK(strstr(tg_engine_errmsg(eng), "auto_reload") != NULL);
    tg_engine_close(eng);

    uint64_t a = 0, b = 0, c = 0, d = 0;
    CHECK(tg_rules_stamp(dir, &a) == TG_OK);
    CHECK(tg_rules_stamp(dir, &b) == TG_OK);
    CHECK(a == b);
    tg_test_write(dir, "families.lua", family_v2); /* another size */
    CHECK(tg_rules_stamp(dir, &c) == TG_OK && c != b);
    tg_test_write(dir, "extra.lua", "-- new file\n");
    CHECK(tg_rules_stamp(dir, &d) == TG_OK && d != c);
    tg_test_write(dir, ".#extra.lua", "an editor's lock file is not a rule file\n");
    CHECK(tg_rules_stamp(dir, &a) == TG_OK && a == d);
    char p[600];
    snprintf(p, sizeof p, "%s/extra.lua", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/.#extra.lua", dir);
    remove(p);
    CHECK(tg_rules_stamp(dir, &a) == TG_OK && a == c);
    CHECK(tg_rules_stamp(NULL, &a) == TG_MISUSE);
    tg_test_write(dir, "families.lua", family_v1);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/tg_c_reload_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    setup();
    test_edit_broken_edit();
    test_within_interval();
    test_options_and_stamp();
    test_callback_closes();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp);
    return tg_test_done();
}
