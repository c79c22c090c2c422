/* The guard-scenario matrix through the C API alone: a small database made with SQLite (one
 * family with a relation-manager child family), a small rule set, then the listed scenarios,
 * a full run, every applicable mutation, and the same after the workspace_id rollout. */
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
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, title TEXT NOT NULL);"
    "CREATE TABLE note_comments(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL,"
    "  note_id INTEGER, body TEXT NOT NULL);"
    "INSERT INTO workspaces VALUES (1), (2);"
    "INSERT INTO tenants VALUES (10, 1), (11, 1), (20, 2);"
    "INSERT INTO workspace_memberships VALUES (1, 1, 'owner'), (2, 1, 'viewer'), (3, 2, 'owner');"
    "INSERT INTO tenant_memberships VALUES (1, 10, NULL), (1, 11, NULL), (2, 10, NULL),"
    "  (3, 20, NULL);"
    "INSERT INTO notes VALUES (1, 10, 'a'), (2, 10, 'b'), (3, 11, 'c'), (4, 20, 'd');"
    "INSERT INTO note_comments VALUES (1, 10, 1, 'x'), (2, 10, 2, 'y'), (3, 11, 3, 'z'),"
    "  (4, 20, 4, 'w');";

static const char *rules_roles =
    "capabilities { \"note.view\", \"note.edit\", \"note.delete\", \"comment.view\",\n"
    "               \"comment.edit\" }\n"
    "role \"owner\" { \"*\" }\n"
    "role \"viewer\" { \"note.view\", \"comment.view\" }\n";

static const char *rules_families =
    "family \"Note\" {\n"
    "  table = \"notes\", primary_surface = \"NoteResource\", search_posture = \"disabled\",\n"
    "  action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"note.view\" }, detail = { capability = \"note.view\" },\n"
    "            row_action = { capability = \"note.edit\" },\n"
    "            bulk_action = { capability = \"note.delete\" } },\n"
    "  fixture = { title = \"fixture note\" },\n"
    "}\n"
    "family \"NoteComment\" {\n"
    "  table = \"note_comments\", primary_surface = \"NoteCommentResource\",\n"
    "  search_posture = \"not_applicable\", action_surface_status = \"declared\",\n"
    "  paths = { index = { capability = \"comment.view\" },\n"
    "            detail = { capability = \"comment.view\" },\n"
    "            row_action = { capability = \"comment.edit\" },\n"
    "            relation_manager = { owner = \"Note\", via = \"note_id\",\n"
    "                                 capability = \"comment.view\" } },\n"
    "  fixture = { body = \"fixture comment\" },\n"
    "}\n"
    "scenario { family_name = \"Note\", scenario_type = \"wrong_tenant_detail\",\n"
    "           expected_outcome = 404, surface_class = \"note page\",\n"
    "           notes = \"declared in the C test\" }\n";

/* ---- the expected standard set ---- */

typedef struct want {
    const char *family;
    tg_scenario_type type;
    tg_path_type path;
    int expected;
    int declared;
    int seen;
} want;

static want wanted[] = {
    {"Note", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_INDEX, 200, 0, 0},
    {"Note", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_DETAIL, 200, 0, 0},
    {"Note", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_ROW_ACTION, 200, 0, 0},
    {"Note", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_BULK_ACTION, 200, 0, 0},
    {"Note", TG_SCENARIO_WRONG_TENANT_INDEX, TG_PATH_INDEX, 404, 0, 0},
    {"Note", TG_SCENARIO_WRONG_TENANT_DETAIL, TG_PATH_DETAIL, 404, 0, 0},
    {"Note", TG_SCENARIO_WRONG_TENANT_ROW_ACTION, TG_PATH_ROW_ACTION, 404, 0, 0},
    {"Note", TG_SCENARIO_WRONG_TENANT_BULK_ACTION, TG_PATH_BULK_ACTION, 404, 0, 0},
    {"Note", TG_SCENARIO_SAFE_SEARCH, TG_PATH_GLOBAL_SEARCH, TG_OUTCOME_HIDDEN, 0, 0},
    {"NoteComment", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_INDEX, 200, 0, 0},
    {"NoteComment", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_DETAIL, 200, 0, 0},
    {"NoteComment", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_ROW_ACTION, 200, 0, 0},
    {"NoteComment", TG_SCENARIO_POSITIVE_SCOPE, TG_PATH_RELATION_MANAGER, 200, 0, 0},
    {"NoteComment", TG_SCENARIO_WRONG_TENANT_INDEX, TG_PATH_INDEX, 404, 0, 0},
    {"NoteComment", TG_SCENARIO_WRONG_TENANT_DETAIL, TG_PATH_DETAIL, 404, 0, 0},
    {"NoteComment", TG_SCENARIO_WRONG_TENANT_ROW_ACTION, TG_PATH_ROW_ACTION, 404, 0, 0},
    {"NoteComment", TG_SCENARIO_WRONG_TENANT_RELATION_MANAGER, TG_PATH_RELATION_MANAGER, 404, 0,
     0},
    {"NoteComment", TG_SCENARIO_SAFE_SEARCH, TG_PATH_GLOBAL_SEARCH, TG_OUTCOME_HIDDEN, 0, 0},
    {"Note", TG_SCENARIO_WRONG_TENANT_DETAIL, TG_PATH_DETAIL, 404, 1, 0},
};
#define N_WANTED (sizeof wanted / sizeof wanted[0])

static void check_listed(const tg_matrix_report *m) {
    for (size_t k = 0; k < N_WANTED; k++)
        wanted[k].seen = 0;
    CHECK(m->n_results == N_WANTED);
    for (size_t i = 0; i < m->n_results; i++) {
        const tg_matrix_row *r = &m->results[i].row;
        CHECK(!r->is_exception);
        int found = 0;
        for (size_t k = 0; k < N_WANTED && !found; k++) {
            want *w = &wanted[k];
            if (!w->seen && strcmp(w->family, r->family) == 0 && w->type == r->scenario_type &&
                w->path == r->path && w->expected == r->expected_outcome &&
                w->declared == r->declared) {
                w->seen = 1;
                found = 1;
            }
        }
        if (!found)
            fprintf(stderr, "unexpected row: %s %s %s %d declared=%d\n", r->family,
                    tg_scenario_type_name(r->scenario_type), tg_path_type_name(r->path),
                    r->expected_outcome, r->declared);
        CHECK(found);
        if (r->declared) {
            CHECK(r->surface_class && strcmp(r->surface_class, "note page") == 0);
            CHECK(r->notes && strcmp(r->notes, "declared in the C test") == 0);
        }
    }
    for (size_t k = 0; k < N_WANTED; k++) {
        if (!wanted[k].seen)
            fprintf(stderr, "missing row: %s %s %s\n", wanted[k].family,
                    tg_scenario_type_name(wanted[k].type), tg_path_type_name(wanted[k].path));
        CHECK(wanted[k].seen);
    }
}

/* Every scenario passed, each with at least one check, each check passed. */
static void check_all_pass(const tg_matrix_report *r, const char *label) {
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK(r->failed == 0);
    CHECK(r->passed == r->n_results);
    CHECK(r->n_results == N_WANTED);
    CHECK(r->mutation == NULL);
    for (size_t i = 0; i < r->n_results; i++) {
        const tg_matrix_result *res = &r->results[i];
        if (!res->pass)
            fprintf(stderr, "%s: %s\n", label, res->message ? res->message : "(no message)");
        CHECK(res->pass);
        CHECK(res->message == NULL);
        CHECK(res->n_checks > 0);
        CHECK(res->actual_outcome == res->row.expected_outcome);
        for (size_t k = 0; k < res->n_checks; k++) {
            const tg_matrix_check *c = &res->checks[k];
            CHECK(c->pass && c->failure == NULL && c->actor && c->what && c->reason);
        }
    }
}

/* ---- which mutation needs which feature of the rules ---- */

/* Runs every mutation; those that apply must be caught. Returns how many applied. */
static size_t check_mutations(tg_engine *eng, const char *label, int print_skipped) {
    const tg_rules *rules = tg_engine_rules(eng);
    size_t applied = 0;
    const char *desc, *name;
    for (size_t i = 0; (name = tg_mutation_name(i, &desc)) != NULL; i++) {
        CHECK(desc && *desc);
        tg_matrix_report *r = NULL;
        int st = tg_run_matrix(eng, name, &r);
        CHECK(st == TG_OK);
        if (st != TG_OK) {
            fprintf(stderr, "%s: %s: %s\n", label, name, tg_engine_errmsg(eng));
            continue;
        }
        CHECK(r->mutation && strcmp(r->mutation, name) == 0);
        CHECK(r->passed + r->failed == r->n_results);
        const char *why = tg_mutation_lacking(rules, name);
        /* the report says so too: a run that cannot apply is neither caught nor survived */
        CHECK((why == NULL) == (r->not_applicable == NULL));
        CHECK(!why || strcmp(why, r->not_applicable) == 0);
        if (why) {
            if (print_skipped)
                printf("mutation %s not checked: the small rules have %s\n", name, why);
        } else {
            applied++;
            if (r->failed == 0)
                fprintf(stderr, "%s: mutant %s (%s) survived\n", label, name, desc);
            CHECK(r->failed > 0);
            /* the first failing scenario names its family and scenario type */
            for (size_t k = 0; k < r->n_results; k++) {
                const tg_matrix_result *res = &r->results[k];
                if (res->pass)
                    continue;
                char want_prefix[200];
                snprintf(want_prefix, sizeof want_prefix, "family %s, %s", res->row.family,
                         tg_scenario_type_name(res->row.scenario_type));
                CHECK(res->message && strncmp(res->message, want_prefix,
                                              strlen(want_prefix)) == 0);
                break;
            }
        }
        tg_matrix_free(r);
    }
    CHECK(tg_mutation_name((size_t)-1, NULL) == NULL && tg_mutation_name(1000, NULL) == NULL);
    return applied;
}

/* ---- the database, independently of the engine: an order-independent hash of every row of
 * every table (with its rowid) and of the schema ---- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t db_hash(const char *path) {
    sqlite3 *db;
    uint64_t total = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        return 0;
    sqlite3_stmt *t;
    if (sqlite3_prepare_v2(db, "SELECT type, name, coalesce(sql, '') FROM sqlite_schema "
                               "ORDER BY type, name", -1, &t, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return 0;
    }
    uint64_t schema_h = 14695981039346656037ULL;
    char names[64][128];
    int n_tables = 0;
    while (sqlite3_step(t) == SQLITE_ROW) {
        for (int c = 0; c < 3; c++) {
            const unsigned char *v = sqlite3_column_text(t, c);
            schema_h = fnv(schema_h, v, strlen((const char *)v) + 1);
        }
        if (strcmp((const char *)sqlite3_column_text(t, 0), "table") == 0 && n_tables < 64)
            snprintf(names[n_tables++], sizeof names[0], "%s", sqlite3_column_text(t, 1));
    }
    sqlite3_finalize(t);
    total = schema_h;
    for (int i = 0; i < n_tables; i++) {
        char sql[8300];
        sqlite3_stmt *q;
        snprintf(sql, sizeof sql, "SELECT rowid, * FROM \"%s\"", names[i]);
        if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK) {
            snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", names[i]);
            if (sqlite3_prepare_v2(db, sql, -1, &q, NULL) != SQLITE_OK)
                continue;
        }
        uint64_t table_sum = fnv(14695981039346656037ULL, names[i], strlen(names[i]));
        while (sqlite3_step(q) == SQLITE_ROW) {
            uint64_t h = 14695981039346656037ULL;
            for (int c = 0; c < sqlite3_column_count(q); c++) {
                int type = sqlite3_column_type(q, c);
                const void *b = sqlite3_column_blob(q, c);
                int n = sqlite3_column_bytes(q, c);
                h = fnv(h, &type, sizeof type);
                if (b)
                    h = fnv(h, b, (size_t)n);
                h = fnv(h, "|", 1);
            }
            table_sum += h; /* rows in any order */
        }
        sqlite3_finalize(q);
        total = fnv(total, &table_sum, sizeof table_sum);
    }
    sqlite3_close(db);
    return total;
}

/* ---- a schema nobody shaped for the fixture ---- */

static const char *strict_schema =
    "CREATE TABLE workspaces(id INTEGER PRIMARY KEY,"
    "  code TEXT NOT NULL UNIQUE CHECK (code GLOB 'W[0-9]*'),"
    "  plan TEXT NOT NULL CHECK (plan IN ('free', 'pro')));"
    "CREATE TABLE tenants(id INTEGER PRIMARY KEY, workspace_id INTEGER NOT NULL,"
    "  name TEXT NOT NULL CHECK (length(name) BETWEEN 2 AND 5), seats INTEGER NOT NULL"
    "  CHECK (seats >= 3), UNIQUE (workspace_id, name));"
    "CREATE TABLE workspace_memberships(user_id INTEGER NOT NULL, workspace_id INTEGER NOT NULL,"
    "  role TEXT CHECK (role IN ('owner', 'viewer', 'none')), since TEXT NOT NULL);"
    "CREATE TABLE tenant_memberships(user_id INTEGER NOT NULL, tenant_id INTEGER NOT NULL,"
    "  role TEXT, UNIQUE (user_id, tenant_id));"
    "CREATE TABLE operation_runs(id INTEGER PRIMARY KEY, type, status, summary, created_at,"
    "  started_at, finished_at);"
    "CREATE TABLE audit_logs(id INTEGER PRIMARY KEY, workspace_id, tenant_id, action, metadata,"
    "  created_at);"
    "CREATE TABLE notes(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, workspace_id INTEGER"
    "  NOT NULL, title TEXT NOT NULL CHECK (title <> ''), ref INTEGER NOT NULL UNIQUE"
    "  CHECK (ref BETWEEN 100 AND 199), status TEXT NOT NULL CHECK (status IN ('a', 'b')));"
    "CREATE TABLE note_comments(id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL,"
    "  workspace_id INTEGER NOT NULL, note_id INTEGER NOT NULL REFERENCES notes(id),"
    "  body TEXT NOT NULL);";

/* The fixture fills every NOT NULL column of a strict schema; a CHECK it cannot meet names
 * the table and column; app.workspaces.fixture is the override. */
static void test_strict_schema(const char *tmp) {
    char rules[600], db[600];
    snprintf(rules, sizeof rules, "%s/strict_rules", tmp);
    snprintf(db, sizeof db, "%s/strict.db", tmp);
    mkdir(rules, 0700);
    write_file(rules, "app.lua", "app { }\n");
    write_file(rules, "roles.lua", rules_roles);
    write_file(rules, "families.lua", rules_families);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK ||
        sqlite3_exec(h, strict_schema, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "strict schema: %s\n", sqlite3_errmsg(h));
        CHECK(0);
        sqlite3_close(h);
        return;
    }
    sqlite3_close(h);
    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    uint64_t before = db_hash(db);
    tg_matrix_report *r = NULL;
    /* workspaces.code: GLOB 'W[0-9]*' meets none of the candidates */
    CHECK(tg_run_matrix(eng, NULL, &r) != TG_OK && r == NULL);
    const char *msg = tg_engine_errmsg(eng);
    CHECK(strstr(msg, "workspaces.code") != NULL);
    CHECK(strstr(msg, "app.workspaces.fixture") != NULL);
    CHECK(db_hash(db) == before);
    tg_engine_close(eng);

    /* one code for both workspaces repeats a UNIQUE value: said so, nothing changed */
    write_file(rules, "app.lua", "app { workspaces = { fixture = { code = \"W1\" } } }\n");
    eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    const tg_rules *rs = tg_engine_rules(eng);
    CHECK(rs && rs->app.workspaces.n_fixture == 1 &&
          strcmp(rs->app.workspaces.fixture[0].column, "code") == 0);
    CHECK(tg_run_matrix(eng, NULL, &r) != TG_OK && r == NULL);
    msg = tg_engine_errmsg(eng);
    CHECK(strstr(msg, "UNIQUE") != NULL && strstr(msg, "workspaces.code") != NULL);
    CHECK(db_hash(db) == before);
    tg_engine_close(eng);

    /* a CHECK the fixture cannot read but a candidate meets (distinct per row, UNIQUE), and
     * fixture values for workspaces and tenants: the matrix passes and catches every mutant
     * that applies */
    write_file(rules, "app.lua",
               "app { workspaces = { fixture = { plan = \"pro\" } },\n"
               "      tenants = { fixture = { seats = 7 } } }\n");
    sqlite3_open(db, &h);
    CHECK(sqlite3_exec(h,
                       "DROP TABLE workspaces; CREATE TABLE workspaces(id INTEGER PRIMARY KEY,"
                       "  code TEXT NOT NULL UNIQUE CHECK (code LIKE '%_@_%'),"
                       "  plan TEXT NOT NULL CHECK (plan IN ('free', 'pro')));",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(h);
    before = db_hash(db);
    eng = NULL;
    CHECK(tg_engine_open(&o, &eng) == TG_OK);
    int st = tg_run_matrix(eng, NULL, &r);
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "strict schema: %s\n", tg_engine_errmsg(eng));
    check_all_pass(r, "on the strict schema");
    tg_matrix_free(r);
    CHECK(check_mutations(eng, "on the strict schema", 0) == 8);
    CHECK(db_hash(db) == before);
    tg_engine_close(eng);
}

int main(void) {
    char tmp[] = "/tmp/tg_c_matrix_XXXXXX";
    if (!mkdtemp(tmp))
        return 2;
    char rules[600], db[600];
    snprintf(rules, sizeof rules, "%s/rules", tmp);
    snprintf(db, sizeof db, "%s/app.db", tmp);
    mkdir(rules, 0700);
    write_file(rules, "app.lua", "app { }\n");
    write_file(rules, "roles.lua", rules_roles);
    write_file(rules, "families.lua", rules_families);
    sqlite3 *h;
    if (sqlite3_open(db, &h) != SQLITE_OK || sqlite3_exec(h, schema, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "schema: %s\n", sqlite3_errmsg(h));
        return 2;
    }
    sqlite3_close(h);

    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    CHECK(st == TG_OK);
    if (st != TG_OK) {
        fprintf(stderr, "%s\n", tg_engine_errmsg(eng));
        tg_engine_close(eng);
        return 1;
    }

    /* the listed scenarios: the standard set plus the declared one */
    tg_matrix_report *m = NULL;
    CHECK(tg_matrix(eng, &m) == TG_OK);
    if (m) {
        check_listed(m);
        CHECK(m->mutation == NULL);
        tg_matrix_free(m);
    }
    tg_matrix_free(NULL);

    /* a plain run passes and changes nothing */
    uint64_t before = db_hash(db);
    CHECK(before != 0);
    /* (the hash sees a changed value, and a change undone) */
    if (sqlite3_open(db, &h) == SQLITE_OK) {
        CHECK(sqlite3_exec(h, "UPDATE notes SET title = 'A' WHERE id = 1", NULL, NULL, NULL) ==
              SQLITE_OK);
        CHECK(db_hash(db) != before);
        CHECK(sqlite3_exec(h, "UPDATE notes SET title = 'a' WHERE id = 1", NULL, NULL, NULL) ==
              SQLITE_OK);
        CHECK(db_hash(db) == before);
        sqlite3_close(h);
    }
    tg_matrix_report *r = NULL;
    st = tg_run_matrix(eng, NULL, &r);
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "run_matrix: %s\n", tg_engine_errmsg(eng));
    check_all_pass(r, "before the rollout");
    /* every positive scenario of a declared path is also asked by an actor whose role is
     * NULL (this schema allows one) and, as the full actor, where the rules declare no
     * capability: both 403 */
    size_t positive = 0, no_role = 0, probed = 0;
    for (size_t i = 0; r && i < r->n_results; i++) {
        const tg_matrix_result *res = &r->results[i];
        if (res->row.scenario_type != TG_SCENARIO_POSITIVE_SCOPE || res->row.declared)
            continue;
        positive++;
        for (size_t k = 0; k < res->n_checks; k++) {
            const tg_matrix_check *c = &res->checks[k];
            if (strcmp(c->actor, "no_role") == 0 && c->expected == 403 && c->actual == 403)
                no_role++;
            if (strcmp(c->actor, "full") == 0 && strstr(c->what, "declare no capability") &&
                c->expected == 403 && c->actual == 403 && strcmp(c->reason, "missing_capability") == 0)
                probed++;
        }
    }
    CHECK(positive == 8 && no_role == positive && probed == positive);
    tg_matrix_free(r);
    CHECK(db_hash(db) == before);

    /* the hidden safe_search of a disabled family is checked for real */
    CHECK(tg_run_matrix(eng, NULL, &r) == TG_OK);
    int hidden_seen = 0;
    for (size_t i = 0; r && i < r->n_results; i++) {
        const tg_matrix_result *res = &r->results[i];
        if (res->row.scenario_type != TG_SCENARIO_SAFE_SEARCH)
            continue;
        CHECK(res->row.expected_outcome == TG_OUTCOME_HIDDEN);
        CHECK(res->actual_outcome == TG_OUTCOME_HIDDEN);
        CHECK(res->n_checks > 0);
        for (size_t k = 0; k < res->n_checks; k++)
            if (res->checks[k].expected == TG_OUTCOME_HIDDEN) {
                hidden_seen++;
                CHECK(res->checks[k].pass && res->checks[k].actual == 404);
            }
    }
    CHECK(hidden_seen == 2);
    tg_matrix_free(r);

    /* an unknown mutation is refused */
    r = NULL;
    CHECK(tg_run_matrix(eng, "no_such_mutation", &r) == TG_UNKNOWN);
    CHECK(r == NULL);
    CHECK(strstr(tg_engine_errmsg(eng), "no_such_mutation") != NULL);

    /* every mutation that applies to these rules is caught */
    size_t applied = check_mutations(eng, "before the rollout", 1);
    CHECK(applied == 8); /* of 12: no canonical viewer, no search (2), no exception */
    printf("%zu mutations apply to the small rules, all caught\n", applied);
    CHECK(db_hash(db) == before);

    /* a mutant never outlives its run */
    CHECK(tg_run_matrix(eng, NULL, &r) == TG_OK);
    check_all_pass(r, "after the mutants");
    tg_matrix_free(r);

    /* the rollout, then the same matrix */
    st = tg_rollout(eng, "add_columns");
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "add_columns: %s\n", tg_engine_errmsg(eng));
    st = tg_rollout(eng, "enforce_writes");
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "enforce_writes: %s\n", tg_engine_errmsg(eng));
    int64_t run_id = 0;
    st = tg_backfill_start(eng, NULL, &run_id);
    CHECK(st == TG_OK && run_id > 0);
    if (st != TG_OK)
        fprintf(stderr, "backfill: %s\n", tg_engine_errmsg(eng));
    tg_work_result wr = {0};
    for (int i = 0; i < 100 && !wr.idle; i++) {
        st = tg_work(eng, NULL, &wr);
        CHECK(st == TG_OK);
        if (st != TG_OK) {
            fprintf(stderr, "work: %s\n", tg_engine_errmsg(eng));
            break;
        }
    }
    CHECK(wr.idle);
    tg_run_info info;
    CHECK(tg_backfill_status(eng, run_id, &info) == TG_OK);
    CHECK(strcmp(info.status, "completed") == 0);
    CHECK(info.rows_set == 8 && info.rows_unbound == 0);
    tg_validation *v = NULL;
    CHECK(tg_validate(eng, &v) == TG_OK);
    CHECK(v && v->ok);
    for (size_t i = 0; v && i < v->n_checks; i++)
        if (v->checks[i].count)
            fprintf(stderr, "validation: %s %s %lld\n", v->checks[i].name,
                    v->checks[i].table ? v->checks[i].table : "",
                    (long long)v->checks[i].count);
    tg_validation_free(v);
    st = tg_rollout(eng, "enforce_constraints");
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "enforce_constraints: %s\n", tg_engine_errmsg(eng));

    before = db_hash(db);
    r = NULL;
    st = tg_run_matrix(eng, NULL, &r);
    CHECK(st == TG_OK);
    if (st != TG_OK)
        fprintf(stderr, "run_matrix after the rollout: %s\n", tg_engine_errmsg(eng));
    check_all_pass(r, "after the rollout");
    tg_matrix_free(r);
    CHECK(check_mutations(eng, "after the rollout", 0) == applied);
    CHECK(db_hash(db) == before);

    /* no engine is misuse */
    tg_engine_close(eng);
    CHECK(tg_matrix(NULL, &m) == TG_MISUSE);
    CHECK(tg_run_matrix(NULL, NULL, &r) == TG_MISUSE);

    test_strict_schema(tmp);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
