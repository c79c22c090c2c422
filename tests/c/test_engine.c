/* The C API embedded without any Lua code of its own: open, read the rules, lint, reload,
 * failure paths. Argument 1 is the source directory (for the shipped rules). */
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tg_test.h"

static char tmp[256];

/* dir/name in a static buffer (valid until the next call) */
static const char *path_in(const char *dir, const char *name) {
    static char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

static void make_rules(const char *dir, const char *family_text) {
    char p[512];
    mkdir(dir, 0700);
    snprintf(p, sizeof p, "%s/app.lua", dir);
    write_file(p, "app { name = \"c-test\" }\n");
    snprintf(p, sizeof p, "%s/roles.lua", dir);
    write_file(p, "capabilities { \"thing.view\" }\nrole \"owner\" { \"*\" }\n");
    snprintf(p, sizeof p, "%s/families.lua", dir);
    write_file(p, family_text);
}

static const char *good_family = "family \"Thing\" {\n"
                                 "  table = \"things\",\n"
                                 "  primary_surface = \"ThingResource\",\n"
                                 "  search_posture = \"not_applicable\",\n"
                                 "  action_surface_status = \"declared\",\n"
                                 "  paths = { index = {}, detail = { capability = \"thing.view\" } },\n"
                                 "}\n";

static const char *bad_family = "family \"Thing\" {\n"
                                "  table = \"things\",\n"
                                "  primary_surface = \"ThingResource\",\n"
                                "  search_posture = \"sometimes\",\n"
                                "  action_surface_status = \"declared\",\n"
                                "  paths = { index = {} },\n"
                                "}\n";

static void test_status_names(void) {
    CHECK(strcmp(tg_status_name(TG_OK), "TG_OK") == 0);
    CHECK(strcmp(tg_status_name(TG_RULES), "TG_RULES") == 0);
    CHECK(strcmp(tg_status_name(9999), "TG_?") == 0);
    CHECK(strstr(tg_strerror(TG_RULES), "rule") != NULL);
    CHECK(tg_check_info_get(0) != NULL);
    CHECK(tg_check_info_get(100000) == NULL);
}

static void test_shipped_rules(const char *src) {
    char rules[512];
    snprintf(rules, sizeof rules, "%s/rules", src);
    tg_open_options o = {0};
    o.rules = rules;
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    CHECK(st == TG_OK);
    if (st != TG_OK) {
        fprintf(stderr, "open: %s\n", tg_engine_errmsg(eng));
        tg_engine_close(eng);
        return;
    }
    const tg_rules *r = tg_engine_rules(eng);
    CHECK(r->n_families == 8);
    CHECK(r->n_exceptions == 3);
    CHECK(r->n_residuals == 4);
    CHECK(strlen(r->version) == 16);
    int pi = tg_rules_family_index(r, "Policy");
    CHECK(pi >= 0);
    if (pi >= 0) {
        const tg_family *f = &r->families[pi];
        CHECK(strcmp(f->table, "policies") == 0);
        CHECK(f->paths[TG_PATH_DETAIL].declared);
        CHECK(f->paths[TG_PATH_DETAIL].not_entitled_result == 404);
        CHECK(f->paths[TG_PATH_ROW_ACTION].missing_capability_result == 403);
        CHECK(!f->paths[TG_PATH_GLOBAL_SEARCH].declared);
        CHECK(f->search_posture == TG_SEARCH_DISABLED);
    }
    int ei = tg_rules_family_index(r, "EntraGroup");
    CHECK(ei >= 0 && r->families[ei].paths[TG_PATH_CANONICAL_VIEWER].scope_anchor ==
                         TG_ANCHOR_EXPLICIT_RECORD);
    CHECK(tg_rules_family_index(r, "Nope") == -1);
    tg_engine_close(eng);
}

static void test_bad_rules_and_reload(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/rules", tmp);
    make_rules(dir, bad_family);
    tg_open_options o = {0};
    o.rules = dir;
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    CHECK(st == TG_RULES);
    CHECK(eng != NULL);
    const char *msg = tg_engine_errmsg(eng);
    CHECK(strstr(msg, "families.lua:1:") != NULL);
    CHECK(strstr(msg, "[bad_value]") != NULL);
    const tg_findings *f = tg_engine_findings(eng);
    CHECK(tg_findings_errors(f) == 1);
    const tg_finding *first = tg_findings_get(f, 0);
    CHECK(first && strcmp(first->code, "bad_value") == 0 && first->where.line == 1);
    tg_engine_close(eng);

    /* good rules, then a broken edit: reload fails and the old version keeps serving */
    make_rules(dir, good_family);
    st = tg_engine_open(&o, &eng);
    CHECK(st == TG_OK);
    char before[32];
    snprintf(before, sizeof before, "%s", tg_engine_rules(eng)->version);
    make_rules(dir, bad_family);
    CHECK(tg_engine_reload(eng) == TG_RULES);
    CHECK(strcmp(tg_engine_rules(eng)->version, before) == 0);
    CHECK(strstr(tg_engine_errmsg(eng), "search_posture") != NULL);
    tg_findings *lint = NULL;
    CHECK(tg_engine_lint(eng, &lint) == TG_OK);
    CHECK(tg_findings_errors(lint) == 1);
    tg_findings_free(lint);
    /* fixed again: reload swaps in a new version */
    make_rules(dir, good_family);
    write_file(path_in(dir, "extra.lua"), "-- a comment changes the hash\n");
    CHECK(tg_engine_reload(eng) == TG_OK);
    CHECK(strcmp(tg_engine_rules(eng)->version, before) != 0);
    tg_engine_close(eng);
}

static void test_db_checks(void) {
    char dir[512], db[512];
    snprintf(dir, sizeof dir, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    make_rules(dir, good_family);
    remove(path_in(dir, "extra.lua"));
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
                       "CREATE TABLE gadgets(id INTEGER PRIMARY KEY, tenant_id INTEGER);",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    tg_open_options o = {0};
    o.rules = dir;
    o.db = db;
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    const tg_findings *f = tg_engine_findings(eng);
    int drift = 0;
    for (size_t i = 0; i < tg_findings_count(f); i++) {
        const tg_finding *x = tg_findings_get(f, i);
        if (strcmp(x->code, "drift") == 0 && strstr(x->message, "'gadgets'"))
            drift++;
    }
    CHECK(drift == 1);
    tg_engine_close(eng);

    /* the family's table missing: an error, and the engine refuses to load */
    make_rules(dir, "family \"Thing\" { table = \"nothings\", primary_surface = \"X\",\n"
                    "  search_posture = \"disabled\", action_surface_status = \"declared\",\n"
                    "  paths = { index = {} } }\n");
    CHECK(tg_engine_open(&o, &eng) == TG_RULES);
    CHECK(strstr(tg_engine_errmsg(eng), "[missing_table]") != NULL);
    tg_engine_close(eng);
}

static void test_misuse(void) {
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(NULL, &eng) == TG_MISUSE);
    tg_engine_close(eng);
    tg_open_options o = {0};
    o.rules = "/nonexistent/rules";
    CHECK(tg_engine_open(&o, &eng) == TG_IO);
    CHECK(strstr(tg_engine_errmsg(eng), "/nonexistent/rules") != NULL);
    tg_engine_close(eng);
    tg_engine_close(NULL);
}

int main(int argc, char **argv) {
    const char *src = argc > 1 ? argv[1] : ".";
    snprintf(tmp, sizeof tmp, "/tmp/tg_c_test_XXXXXX");
    if (!mkdtemp(tmp)) {
        perror("mkdtemp");
        return 2;
    }
    test_status_names();
    test_shipped_rules(src);
    test_bad_rules_and_reload();
    test_db_checks();
    test_misuse();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
