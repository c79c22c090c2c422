/* Citus routes a statement to one shard when it pins the distribution column of every
 * distributed table it reads with an equality on a bound value. Citus cannot run here, so
 * this test holds the statements tenantguard generates to that rule on paper, for the
 * PostgreSQL dialect, for the shipped rules and both example applications:
 *
 *  1. The statement list (tg__plan_statements) is what the resolver and the write guard
 *     really prepare: on SQLite, after the guard-scenario matrix has run every path, every
 *     statement slot the resolver filled holds exactly the text the list gives for it, and
 *     every insert and update the guard prepared carries the tenant column as bound value.
 *  2. For PostgreSQL, each statement that reads or writes a tenant-owned table either has
 *     `<alias>."<tenant column>" = $n` on that table (routes to one shard) or is one of the
 *     kinds known to read across tenants, each for a stated reason (printed, and pinned
 *     below so a change either way is noticed).
 *  3. Both in the default mode and in distributed mode (tg_open_options.distributed, automatic
 *     on Citus), where every read by id with a route tenant pins it: there only the
 *     statements without a route tenant read across shards. */
#include "../../core/citus.h"
#include "../../core/engine.h"
#include "tenantguard.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tg_test.h"

/* The kinds that do not route to one shard, and why (multi-shard by design or by choice);
 * `distributed`: still so in distributed mode. */
static const struct {
    const char *kind, *why;
    int distributed;
} unrouted[] = {
    {"first", "a context's first by-id decision reads the record by id alone, so a foreign "
              "record's log reason (foreign_tenant / foreign_workspace) can be told from "
              "not_found (distributed mode pins it)", 0},
    {"record", "a record (or a relation's owner) read by id alone, for the same log reason "
               "(distributed mode pins it)", 0},
    {"by_ids", "a bulk's ids read by id alone (= ANY($1)), so the first foreign id names the "
               "reason (distributed mode pins it)", 0},
    {"by_id", "no route tenant: the canonical viewer and the exceptions' detail read by id and "
              "check the record's own tenant afterwards", 1},
    {"ws_page0", "an exception's workspace-wide list: rows of every tenant of the workspace", 1},
    {"ws_page1", "an exception's workspace-wide list, limited to entitled tenants", 1},
};

static int distributed_mode; /* the run's tg_open_options.distributed is 1 */

static const char *why_unrouted(const char *kind) {
    for (size_t i = 0; i < sizeof unrouted / sizeof *unrouted; i++)
        if (!strcmp(unrouted[i].kind, kind) && (!distributed_mode || unrouted[i].distributed))
            return unrouted[i].why;
    return NULL;
}

/* The quoted identifier as both dialects write it. */
static void quoted(char *out, size_t n, const char *name) {
    snprintf(out, n, "\"%s\"", name);
}

/* True when the text at p is a parameter: $n or ?n. */
static int is_param(const char *p) {
    return (*p == '$' || *p == '?') && p[1] >= '0' && p[1] <= '9';
}

/* The aliases `table` has in sql (FROM/JOIN "table" AS alias), at most 8. */
static int aliases(const char *sql, const char *table, char out[][16]) {
    char pat[160];
    snprintf(pat, sizeof pat, "\"%s\" AS ", table);
    int n = 0;
    for (const char *p = strstr(sql, pat); p && n < 8; p = strstr(p + 1, pat)) {
        const char *a = p + strlen(pat);
        size_t k = strspn(a, "abcdefghijklmnopqrstuvwxyz_0123456789");
        if (k == 0 || k >= 16)
            continue;
        memcpy(out[n], a, k);
        out[n][k] = 0;
        n++;
    }
    return n;
}

/* True when sql has `<alias>."<tenant>" = <param>` as a conjunct (after WHERE, AND or ON,
 * never inside an OR). */
static int pinned(const char *sql, const char *alias, const char *tenant) {
    char pat[200], q[128];
    quoted(q, sizeof q, tenant);
    if (alias)
        snprintf(pat, sizeof pat, "%s.%s = ", alias, q);
    else
        snprintf(pat, sizeof pat, "%s = ", q);
    for (const char *p = strstr(sql, pat); p; p = strstr(p + 1, pat)) {
        if (!is_param(p + strlen(pat)))
            continue;
        int conj = (p - sql >= 7 && !strncmp(p - 7, " WHERE ", 7)) ||
                   (p - sql >= 5 && !strncmp(p - 5, " AND ", 5)) ||
                   (p - sql >= 4 && !strncmp(p - 4, " ON ", 4));
        /* the matrix's widening mutant writes "(r.t = ?1 OR 1)" */
        const char *after = p + strlen(pat);
        after += strspn(after, "$?0123456789");
        if (conj && strncmp(after, " OR ", 4) != 0)
            return 1;
    }
    return 0;
}

/* An INSERT whose column list names the tenant column with a parameter as its value. */
static int insert_pins(const char *sql, const char *tenant) {
    char q[128];
    quoted(q, sizeof q, tenant);
    const char *open = strchr(sql, '('), *close = open ? strchr(open, ')') : NULL;
    if (!open || !close)
        return 0;
    int col = 0;
    const char *hit = NULL;
    for (const char *p = open + 1; p < close; p++) {
        if (!strncmp(p, q, strlen(q)) && (p[strlen(q)] == ',' || p[strlen(q)] == ')')) {
            hit = p;
            break;
        }
        if (*p == ',')
            col++;
    }
    if (!hit)
        return 0;
    const char *v = strstr(close, "VALUES (");
    if (!v)
        return 0;
    v += 8;
    for (int i = 0; i < col && v; i++) {
        v = strchr(v, ',');
        if (v)
            v += 2;
    }
    return v && is_param(v);
}

/* Whether statement s routes to one shard: its tenant-owned table pinned by the tenant. */
static int routes(const tg__gen_stmt *s) {
    if (!strncmp(s->sql, "INSERT", 6))
        return insert_pins(s->sql, s->tenant);
    if (!strncmp(s->sql, "UPDATE", 6))
        return pinned(s->sql, NULL, s->tenant);
    char al[8][16];
    int n = aliases(s->sql, s->table, al);
    if (n == 0)
        return 0;
    for (int i = 0; i < n; i++)
        if (!pinned(s->sql, al[i], s->tenant))
            return 0;
    return 1;
}

typedef struct run {
    const char *app;
    const tg__plan *plan;
    int n, routed, unrouted, compared;
} run;

/* PostgreSQL: every statement on a tenant-owned table routes, or is a known exception. */
static int on_pg(void *ud, const tg__gen_stmt *s) {
    run *r = ud;
    r->n++;
    CHECK(s->sql && strlen(s->sql) > 10);
    CHECK(!strchr(s->sql, '?')); /* PostgreSQL parameters only */
    if (!s->table || !s->tenant) {
        printf("  %-10s %-24s %-12s reference tables only (%s)\n", r->app,
               s->owner ? s->owner : "-", s->kind,
               s->table ? "a workspace-owned table: no tenant column" : "scope");
        return 0;
    }
    int ok = routes(s);
    const char *why = why_unrouted(s->kind);
    /* a table keyed on (tenant, id) pins its reads by id in any mode */
    for (size_t f = 0; why && f < r->plan->rs->pub.n_families; f++)
        if (!strcmp(r->plan->fams[f].shape.table, s->table) && r->plan->fams[f].key_with_tenant &&
            (!strcmp(s->kind, "first") || !strcmp(s->kind, "record") ||
             !strcmp(s->kind, "by_ids")))
            why = NULL;
    printf("  %-10s %-24s %-12s %s %s\n", r->app, s->owner, s->kind,
           ok ? "ROUTED    " : "MULTISHARD", ok ? s->paths : why ? why : "(unexplained)");
    if (ok)
        r->routed++;
    else
        r->unrouted++;
    /* pinned: the kinds that route keep routing; the others are the known list */
    if (ok == (why != NULL)) {
        failures++;
        fprintf(stderr, "%s %s %s: expected %s, got:\n  %s\n", r->app, s->owner, s->kind,
                why ? "multi-shard (update the list if it now routes)" : "a routed statement",
                s->sql);
    }
    checks++;
    return 0;
}

/* SQLite: the text of every statement the resolver prepared is the list's text. */
static int on_sqlite(void *ud, const tg__gen_stmt *s) {
    run *r = ud;
    tg__stmt *st = tg__plan_slot(r->plan, s->owner, s->kind);
    if (st) {
        r->compared++;
        if (strcmp(tg__st_sql(st), s->sql) != 0) {
            failures++;
            fprintf(stderr, "%s %s %s: the resolver prepared\n  %s\nthe list says\n  %s\n",
                    r->app, s->owner ? s->owner : "-", s->kind, tg__st_sql(st), s->sql);
        }
        checks++;
    }
    return 0;
}

typedef struct find {
    const char *owner, *kind;
    int found;
} find;

static int on_find(void *ud, const tg__gen_stmt *s) {
    find *f = ud;
    if (s->owner && !strcmp(s->owner, f->owner) && !strcmp(s->kind, f->kind))
        f->found = 1;
    return 0;
}

/* Every statement slot the resolver filled is one the list names (so it misses none). */
static void check_slots_listed(const tg__plan *p, const char *app) {
    static const char *const kinds[] = {"by_id", "by_ids", "page", "relation", "search",
                                        "first", "record", "ws_page0", "ws_page1",
                                        "ws_page2", "ws_page3"};
    const tg_rules *rules = &p->rs->pub;
    for (size_t o = 0; o < rules->n_families + rules->n_exceptions; o++) {
        const char *owner = o < rules->n_families ? rules->families[o].name
                                                  : rules->exceptions[o - rules->n_families].name;
        for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
            if (!tg__plan_slot(p, owner, kinds[k]))
                continue;
            find f = {owner, kinds[k], 0};
            CHECK(tg__plan_statements(p, &tg__sqlite, on_find, &f) == TG_OK);
            if (!f.found) {
                failures++;
                fprintf(stderr, "%s: the resolver prepared %s %s, which the list lacks\n", app,
                        owner, kinds[k]);
            }
            checks++;
        }
    }
}

/* The guard's writes prepared (the plan's write cache): each carries the
 * tenant column as a bound value (insert) or bound condition (update). */
static void check_writes(const tg__plan *p, const char *app, int want) {
    const tg_rules *rules = &p->rs->pub;
    int n = 0;
    for (int i = 0; i < TG__WCACHE; i++) {
        if (!p->wcache[i].st)
            continue;
        const char *sql = tg__st_sql(p->wcache[i].st);
        for (size_t f = 0; f < rules->n_families; f++) {
            char head[200];
            snprintf(head, sizeof head, "%s \"%s\" ",
                     !strncmp(sql, "INSERT", 6) ? "INSERT INTO" : "UPDATE",
                     p->fams[f].shape.table);
            if (strncmp(sql, head, strlen(head)) != 0)
                continue;
            tg__gen_stmt s = {rules->families[f].name, "write", "", p->fams[f].shape.table,
                              p->fams[f].shape.tenant, sql};
            if (!routes(&s)) {
                failures++;
                fprintf(stderr, "%s: a write without its tenant bound: %s\n", app, sql);
            }
            checks++;
            n++;
        }
    }
    printf("  %s: %d guard writes prepared, each with its tenant bound\n", app, n);
    CHECK(n >= want);
}

/* The reference application: one insert and one update of a policy through the guard
 * (owner of workspace 1, entitled to its tenant 1), so the write cache holds real writes. */
static void write_policy(tg_engine *eng) {
    tg_ctx_options co = {0};
    co.user = tg_key_int(1);
    co.workspace = tg_key_int(1);
    co.tenant = tg_key_int(1);
    tg_ctx *ctx = NULL;
    CHECK(tg_ctx_open(eng, &co, &ctx) == TG_OK);
    tg_column_value v[] = {{"display_name", tg_key_text("citus")},
                           {"policy_type", tg_key_text("settingsCatalog")},
                           {"created_at", tg_key_text("2026-01-01 00:00:00")}};
    const tg_decision *d = NULL;
    CHECK(tg_ctx_insert(ctx, "Policy", v, 3, NULL, &d) == TG_OK && d && d->status == 200);
    tg_value id = d ? d->row_id : tg_key_int(0);
    CHECK(tg_ctx_update(ctx, "Policy", &id, v, 1, NULL, &d) == TG_OK && d && d->status == 200);
    tg_ctx_close(ctx);
}

static void run_app(const char *app, const char *rules, const char *db, int distributed) {
    tg_open_options o = {0};
    o.rules = rules;
    o.db = db;
    o.distributed = distributed ? 1 : -1;
    distributed_mode = distributed;
    printf("== %s, %s\n", app, distributed ? "distributed mode" : "default mode");
    tg_engine *eng = NULL;
    int st = tg_engine_open(&o, &eng);
    if (st != TG_OK) {
        fprintf(stderr, "%s: open: %s\n", app, eng ? tg_engine_errmsg(eng) : "?");
        failures++;
        tg_engine_close(eng);
        return;
    }
    tg_settings set;
    CHECK(tg_engine_settings(eng, &set) == TG_OK && set.distributed == distributed);
    /* the workspace column, as deployed (the second run finds it there) */
    if (!distributed)
        CHECK(tg_rollout(eng, "add_columns") == TG_OK);
    if (!strcmp(app, "reference"))
        write_policy(eng); /* first: the matrix's decisions then use the same plan */
    tg_matrix_report *rep = NULL;
    CHECK(tg_run_matrix(eng, NULL, &rep) == TG_OK);
    CHECK(rep && rep->failed == 0 && rep->passed > 0);
    tg_matrix_free(rep);
    tg__plan *p = eng->plan; /* the plan the matrix's decisions used */
    CHECK(p != NULL);
    if (p) {
        run r = {app, p, 0, 0, 0, 0};
        CHECK(tg__plan_statements(p, &tg__sqlite, on_sqlite, &r) == TG_OK);
        printf("%s: %d prepared statements compared with the list\n", app, r.compared);
        CHECK(r.compared >= 10);
        check_slots_listed(p, app);
        check_writes(p, app, !strcmp(app, "reference") ? 2 : 0);
        printf("%s, PostgreSQL dialect:\n", app);
        CHECK(tg__plan_statements(p, &tg__postgres, on_pg, &r) == TG_OK);
        printf("%s: %d statements, %d route to one shard, %d multi-shard\n", app, r.n,
               r.routed, r.unrouted);
        CHECK(r.routed > 0);
        if (distributed) /* every family's reads by id with a route tenant now route */
            CHECK(r.routed > r.unrouted);
        if (!strcmp(app, "ledger")) /* keyed (tenant, id): as distributed in either mode */
            CHECK(r.unrouted == 3);
    }
    tg_engine_close(eng);
}

static void exec_file(sqlite3 *db, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    char *err = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", path, err);
        exit(2);
    }
}

/* The sanitizer runtimes this process runs with, as an LD_PRELOAD value for the tool (a
 * sanitizer build's Lua module needs them loaded first); "" in other builds. */
static void sanitizer_preload(char *out, size_t n) {
    static const char *const libs[] = {"/libasan.so", "/libubsan.so"}; /* ASan first */
    out[0] = 0;
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen("/proc/self/maps", "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            char *path = strchr(line, '/');
            if (!path || !strstr(path, libs[i]))
                continue;
            path[strcspn(path, "\n")] = 0;
            if (strstr(out, path))
                continue;
            size_t used = strlen(out);
            snprintf(out + used, n - used, "%s%s", used ? ":" : "", path);
        }
        if (f)
            fclose(f);
    }
}

int main(int argc, char **argv) {
    const char *src = argc > 1 ? argv[1] : getenv("TG_SOURCE_DIR");
    const char *build = getenv("TG_BUILD_DIR");
    if (!src || !build) {
        fprintf(stderr, "needs TG_SOURCE_DIR and TG_BUILD_DIR\n");
        return 2;
    }
    char dir[] = "/tmp/tg_citus_XXXXXX";
    if (!mkdtemp(dir))
        return 2;
    char db[512], rules[512], cmd[4096], preload[1024];
    sanitizer_preload(preload, sizeof preload);
    /* the reference application */
    snprintf(db, sizeof db, "%s/ref.db", dir);
    snprintf(cmd, sizeof cmd,
             "%s%s%s'%s/tenantguard' refdb '%s' --rows 3 >/dev/null",
             *preload ? "ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD='" : "", preload,
             *preload ? "' " : "", build, db);
    if (system(cmd) != 0) {
        fprintf(stderr, "refdb failed: %s\n", cmd);
        return 2;
    }
    snprintf(rules, sizeof rules, "%s/rules", src);
    run_app("reference", rules, db, 0);
    run_app("reference", rules, db, 1);
    /* the examples, from their schema alone (the matrix writes its own rows) */
    static const char *const apps[] = {"helpdesk", "storefront", "ledger"};
    for (size_t i = 0; i < sizeof apps / sizeof *apps; i++) {
        snprintf(db, sizeof db, "%s/%s.db", dir, apps[i]);
        sqlite3 *h = NULL;
        if (sqlite3_open(db, &h) != SQLITE_OK)
            return 2;
        snprintf(rules, sizeof rules, "%s/examples/%s/schema.sql", src, apps[i]);
        exec_file(h, rules);
        sqlite3_close(h);
        snprintf(rules, sizeof rules, "%s/examples/%s/rules", src, apps[i]);
        run_app(apps[i], rules, db, 0);
        run_app(apps[i], rules, db, 1);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return tg_test_done();
}
