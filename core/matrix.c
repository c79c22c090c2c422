/* The guard-scenario matrix: the scenarios the rules define (a standard set derived from
 * every family's paths and search posture, every exception's checks, plus the declared
 * ones), run against the database through the resolver inside one transaction that is
 * rolled back. The fixture is built from the rules alone: two workspaces, three tenants,
 * five actors, and rows of every family and exception table. Each scenario runs several
 * checks with different actors, so a weakened guard (see the mutations) fails somewhere.
 *
 * A path or exception that declares no capability is 403 for everyone once scope holds.
 * Rules rarely declare one, so the matrix also runs every positive scenario through a probe
 * plan: the same rules with every capability removed, where the full actor must get 403.
 * That proves the fail-closed default on any rule set (and catches its mutant). */
#include "ctx.h"
#include "fixture.h"
#include "names.h"
#include "rollout.h"
#include "sql.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    const char *name, *description;
} mutations[] = {
    {NULL, NULL},
    {"drop_tenant_condition", "lists (index, relation manager) drop the tenant condition"},
    {"skip_bulk_congruence", "bulk actions accept ids of other tenants"},
    {"capability_before_scope", "the capability is checked before scope, so 403 leaks existence"},
    {"ignore_canonical_owner", "canonical viewers skip the record-owner entitlement check"},
    {"search_widens_to_workspace", "global search covers every tenant of the workspace"},
    {"skip_relation_owner_check", "relation managers accept an owner of another tenant"},
    {"skip_membership", "workspace membership is not checked"},
    {"skip_entitlement", "tenant entitlement is not checked"},
    {"update_any_tenant", "the write guard updates records of other tenants"},
    {"exception_skips_checks", "scope exceptions skip tenant_entitled and record_in_workspace"},
    {"like_unescaped", "global search passes % and _ to LIKE unescaped"},
    {"capability_less_path_grants",
     "a path or exception that declares no capability grants every role"},
};

static int any_path(const tg_rules *r, tg_path_type p) {
    for (size_t i = 0; i < r->n_families; i++)
        if (r->families[i].paths[p].declared)
            return 1;
    return 0;
}

const char *tg_mutation_lacking(const tg_rules *r, const char *mutation) {
    if (!r || !mutation)
        return NULL;
    if (strcmp(mutation, "ignore_canonical_owner") == 0)
        return any_path(r, TG_PATH_CANONICAL_VIEWER) ? NULL : "no canonical_viewer path";
    if (strcmp(mutation, "search_widens_to_workspace") == 0 ||
        strcmp(mutation, "like_unescaped") == 0)
        return any_path(r, TG_PATH_GLOBAL_SEARCH) ? NULL : "no global_search path";
    if (strcmp(mutation, "skip_relation_owner_check") == 0)
        return any_path(r, TG_PATH_RELATION_MANAGER) ? NULL : "no relation_manager path";
    if (strcmp(mutation, "skip_bulk_congruence") == 0)
        return any_path(r, TG_PATH_BULK_ACTION) ? NULL : "no bulk_action path";
    if (strcmp(mutation, "update_any_tenant") == 0)
        return any_path(r, TG_PATH_ROW_ACTION) ? NULL : "no row_action path";
    if (strcmp(mutation, "exception_skips_checks") == 0) {
        for (size_t i = 0; i < r->n_exceptions; i++)
            if (r->exceptions[i].table)
                return NULL;
        return "no scope exception with a table";
    }
    return NULL; /* lists, membership, entitlement, capabilities: every rule set has them */
}

const char *tg_mutation_name(size_t i, const char **description) {
    if (i + 1 >= sizeof mutations / sizeof mutations[0])
        return NULL;
    if (description)
        *description = mutations[i + 1].description;
    return mutations[i + 1].name;
}

/* ---- the report ---- */

typedef struct report {
    tg_matrix_report pub;
    tg__arena arena;
    tg_matrix_result *results;
    size_t n, cap;
    /* checks of the result being built */
    tg_matrix_check *checks;
    size_t n_checks, cap_checks;
    int oom;
} report;

static report *report_new(void) { return calloc(1, sizeof(report)); }

/* Monotonic seconds, for each scenario's time in reports. */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tg_matrix_free(tg_matrix_report *r) {
    if (!r)
        return;
    report *rep = (report *)r;
    tg__arena_free(&rep->arena);
    free(rep->results);
    free(rep->checks);
    free(rep);
}

static const char *keep(report *rep, const char *s) {
    if (!s)
        return NULL;
    char *p = tg__arena_strdup(&rep->arena, s);
    if (!p)
        rep->oom = 1;
    return p;
}

static tg_matrix_result *add_row(report *rep, const tg_matrix_row *row) {
    if (rep->n == rep->cap) {
        size_t cap = rep->cap ? rep->cap * 2 : 64;
        tg_matrix_result *more = realloc(rep->results, cap * sizeof *more);
        if (!more) {
            rep->oom = 1;
            return NULL;
        }
        rep->results = more;
        rep->cap = cap;
    }
    tg_matrix_result *r = &rep->results[rep->n++];
    memset(r, 0, sizeof *r);
    r->row = *row;
    r->pass = 1;
    return r;
}

/* ---- expansion ---- */

static const int scenario_path[TG_SCENARIO_COUNT] = {
    -1, TG_PATH_INDEX, TG_PATH_DETAIL, TG_PATH_ROW_ACTION, TG_PATH_BULK_ACTION,
    TG_PATH_RELATION_MANAGER, TG_PATH_GLOBAL_SEARCH};

/* An exception that lists no capability check grants nobody (fail closed). */
static int exception_capable(const tg_exception *e) {
    return (e->still_required_checks & TG_CHECK_CAPABILITY) && e->capability >= 0;
}

static void expand(const tg_rules *r, report *rep) {
    for (size_t fi = 0; fi < r->n_families; fi++) {
        const tg_family *f = &r->families[fi];
        tg_matrix_row row = {0};
        row.family = f->name;
        /* the standard set: every declared path in scope, then every wrong-tenant kind */
        for (int p = 0; p < TG_PATH_COUNT; p++) {
            if (!f->paths[p].declared || p == TG_PATH_GLOBAL_SEARCH)
                continue;
            row.scenario_type = TG_SCENARIO_POSITIVE_SCOPE;
            row.path = (tg_path_type)p;
            /* a path that declares no capability grants nobody */
            row.expected_outcome = f->paths[p].capability >= 0 ? 200 : 403;
            row.surface_class = f->primary_surface;
            add_row(rep, &row);
        }
        for (int t = TG_SCENARIO_WRONG_TENANT_INDEX; t <= TG_SCENARIO_WRONG_TENANT_RELATION_MANAGER;
             t++) {
            if (!f->paths[scenario_path[t]].declared)
                continue;
            row.scenario_type = (tg_scenario_type)t;
            row.path = (tg_path_type)scenario_path[t];
            row.expected_outcome = 404;
            add_row(rep, &row);
        }
        row.scenario_type = TG_SCENARIO_SAFE_SEARCH;
        row.path = TG_PATH_GLOBAL_SEARCH;
        row.expected_outcome = f->search_posture != TG_SEARCH_SCOPED ? TG_OUTCOME_HIDDEN
                               : f->paths[TG_PATH_GLOBAL_SEARCH].capability >= 0 ? 200
                                                                                : 403;
        add_row(rep, &row);
    }
    for (size_t i = 0; i < r->n_scenarios; i++) {
        const tg_scenario *s = &r->scenarios[i];
        const tg_family *f = &r->families[s->family];
        tg_matrix_row row = {0};
        row.family = f->name;
        row.scenario_type = s->scenario_type;
        int p = scenario_path[s->scenario_type];
        if (p < 0)
            p = f->paths[TG_PATH_DETAIL].declared ? TG_PATH_DETAIL : TG_PATH_INDEX;
        row.path = (tg_path_type)p;
        row.expected_outcome = s->expected_outcome;
        row.surface_class = s->surface_class;
        row.notes = s->notes;
        row.declared = 1;
        add_row(rep, &row);
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        if (!e->table)
            continue;
        tg_matrix_row row = {0};
        row.family = e->name;
        row.is_exception = 1;
        row.surface_class = e->surface;
        row.scenario_type = TG_SCENARIO_POSITIVE_SCOPE;
        row.path = TG_PATH_DETAIL;
        row.expected_outcome = exception_capable(e) ? 200 : 403;
        add_row(rep, &row);
        row.scenario_type = TG_SCENARIO_WRONG_TENANT_DETAIL;
        row.expected_outcome = 404;
        add_row(rep, &row);
    }
    rep->pub.results = rep->results;
    rep->pub.n_results = rep->n;
}

int tg_matrix(tg_engine *eng, tg_matrix_report **out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    report *rep = report_new();
    if (!rep)
        return TG_NOMEM;
    expand(&eng->rules->pub, rep);
    if (rep->oom) {
        tg_matrix_free(&rep->pub);
        return TG_NOMEM;
    }
    *out = &rep->pub;
    return TG_OK;
}

/* ---- the fixture (fixture.c) ---- */

typedef tg__fixture fixture;
typedef tg__fx_rows fam_rows;

/* ---- running checks ---- */

typedef struct runner {
    fixture *fx;
    report *rep;
    tg_matrix_result *cur;
    tg_ctx *ctx[N_USERS][N_TENANTS + 1]; /* [user][tenant], [user][N_TENANTS]: no tenant */
    tg__plan *probe;                    /* the rules with every capability removed */
    tg_ctx *probe_ctx[N_TENANTS + 1];   /* the full actor, under the probe plan */
    int use_probe;                      /* the next check runs under the probe plan */
} runner;

/* A fixture key (a row, user, workspace or tenant id) as a request key. */
/* The fixture keeps every key as the typed value it wrote (integer, text or blob). */
static tg_value fx_key(tg_value v) { return v; }

/* `user` asking in workspace X, in `tenant` (-1: no route tenant). */
static tg_ctx_options actor_options(const fixture *fx, int user, int tenant) {
    tg_ctx_options o = {fx_key(fx->user[user]), fx_key(fx->ws[0]), {0}, 0};
    if (tenant >= 0)
        o.tenant = fx_key(fx->tenant[tenant]);
    return o;
}

static tg_ctx *ctx_for(runner *rn, int user, int tenant) {
    int slot = tenant < 0 ? N_TENANTS : tenant;
    if (rn->use_probe) {
        /* a context of the engine, switched to the probe plan before its first decision */
        tg_ctx_options o = actor_options(rn->fx, user, tenant);
        if (!rn->probe_ctx[slot]) {
            if (!rn->probe || tg_ctx_open(rn->fx->eng, &o, &rn->probe_ctx[slot]) != TG_OK)
                return NULL;
            tg_ctx *c = rn->probe_ctx[slot];
            tg__plan_release(c->plan);
            c->plan = tg__plan_retain(rn->probe);
            c->rules = &rn->probe->rs->pub;
        }
        return rn->probe_ctx[slot];
    }
    if (!rn->ctx[user][slot]) {
        /* every actor asks in workspace X; the stranger is a member of Y only */
        tg_ctx_options o = actor_options(rn->fx, user, tenant);
        if (tg_ctx_open(rn->fx->eng, &o, &rn->ctx[user][slot]) != TG_OK)
            return NULL;
    }
    return rn->ctx[user][slot];
}

static const char *const actor_names[N_USERS] = {"full", "no_capability", "not_entitled",
                                                 "not_member", "no_role"};

static void add_check(runner *rn, const char *actor, const char *what, int expected, int actual,
                      const char *reason, const char *failure, const char *row) {
    report *rep = rn->rep;
    if (rep->n_checks == rep->cap_checks) {
        size_t cap = rep->cap_checks ? rep->cap_checks * 2 : 256;
        tg_matrix_check *more = realloc(rep->checks, cap * sizeof *more);
        if (!more) {
            rep->oom = 1;
            return;
        }
        rep->checks = more;
        rep->cap_checks = cap;
    }
    tg_matrix_check *c = &rep->checks[rep->n_checks++];
    c->actor = actor;
    c->what = keep(rep, what);
    c->expected = expected;
    c->actual = actual;
    c->reason = keep(rep, reason);
    c->pass = failure == NULL;
    c->failure = keep(rep, failure);
    c->row = failure && row && row[0] ? keep(rep, row) : NULL;
    tg_matrix_result *res = rn->cur;
    res->n_checks++;
    if (!c->pass && res->pass) {
        res->pass = 0;
        char msg[600];
        snprintf(msg, sizeof msg, "family %s, %s (%s): %s as %s: %s", res->row.family,
                 tg_scenario_type_name(res->row.scenario_type), tg_path_type_name(res->row.path),
                 what, actor, failure);
        res->message = keep(rep, msg);
    }
}

static int column_of(const tg_decision *d, const char *name) {
    for (size_t c = 0; c < d->n_columns; c++)
        if (strcmp(d->columns[c], name) == 0)
            return (int)c;
    return -1;
}

/* Expectations beyond the status, for 200 decisions. */
typedef struct expect_rows {
    tg_value tenant;          /* every returned row's tenant must be this (TG_NULL: any) */
    const tg_value *must;     /* ids that must be present */
    size_t n_must;
    const tg_value *must_not; /* ids that must be absent */
    size_t n_must_not;
    int exact_count;          /* -1: any */
} expect_rows;

/* A key for a failure message. */
static const char *key_str(const tg_value *v, char *buf, size_t size) {
    if (v->type == TG_INTEGER)
        snprintf(buf, size, "%lld", (long long)v->i);
    else if (v->type == TG_TEXT)
        snprintf(buf, size, "'%.40s'", v->s ? v->s : "");
    else
        snprintf(buf, size, "(a %s)", v->type == TG_BLOB ? "blob" : "non-key");
    return buf;
}

/* The table and column names of the scenario being run (its family's or exception's). */
static const char *cur_table(const runner *rn, const tg_columns **names) {
    const tg_rules *r = rn->fx->r;
    *names = NULL;
    if (!rn->cur->row.is_exception) {
        int fi = tg_rules_family_index(r, rn->cur->row.family);
        if (fi < 0)
            return NULL;
        *names = &r->families[fi].columns;
        return r->families[fi].table;
    }
    for (size_t ei = 0; ei < r->n_exceptions; ei++)
        if (strcmp(r->exceptions[ei].name, rn->cur->row.family) == 0) {
            *names = &r->exceptions[ei].columns;
            return r->exceptions[ei].table;
        }
    return NULL;
}

/* "policies row 12 (tenant 8)": the offending row of a failed check, for reports. */
static void row_str(char *buf, size_t size, const char *table, const tg_value *id,
                    const tg_value *tenant) {
    char k1[64], k2[64];
    if (!id || id->type == TG_NULL) {
        buf[0] = '\0';
        return;
    }
    key_str(id, k1, sizeof k1);
    if (tenant && tenant->type != TG_NULL)
        snprintf(buf, size, "%s row %s (tenant %s)", table ? table : "", k1,
                 key_str(tenant, k2, sizeof k2));
    else
        snprintf(buf, size, "%s row %s", table ? table : "", k1);
    if (!table) /* no table: drop the leading space */
        memmove(buf, buf + 1, strlen(buf));
}

/* Runs one request as `user` in `tenant` (-1: none) and records the check. */
static void check(runner *rn, int user, int tenant, tg_request *req, int expected,
                  const char *what, const expect_rows *ex, int is_main) {
    tg_ctx *ctx = ctx_for(rn, user, tenant);
    char failure[300] = "";
    char row[200] = "";
    const tg_decision *d = NULL;
    tg__db *db = rn->fx->eng->store;
    int64_t changes = tg__db_total_changes(db);
    int st = ctx ? tg_ctx_resolve(ctx, req, &d) : TG_ERROR;
    int actual = d ? d->status : -1;
    const char *reason = d ? d->reason : (ctx ? tg_ctx_errmsg(ctx) : "no context");
    int want = expected == TG_OUTCOME_HIDDEN ? 404 : expected;
    if (st != TG_OK) {
        snprintf(failure, sizeof failure, "error: %s", reason);
    } else if (actual != want) {
        snprintf(failure, sizeof failure, "expected %d, got %d (%s)", want, actual, reason);
    } else if (actual != 200 && d->n_records) {
        snprintf(failure, sizeof failure, "a %d decision returned %zu rows", actual, d->n_records);
    } else if (tg__db_total_changes(db) != changes) {
        snprintf(failure, sizeof failure, "the attempt changed rows");
    } else if (actual == 200 && ex) {
        /* the columns of the row's family or exception table */
        const tg_rules *r = rn->fx->r;
        const tg_columns *names = NULL;
        const char *table = cur_table(rn, &names);
        const char *tcol = names ? names->tenant : r->app.tenant_column;
        int tc = column_of(d, tcol), ic = column_of(d, names ? names->id : r->app.id_column);
        char k1[64], k2[64];
        static const tg_value none = {TG_NULL, 0, 0, NULL, 0};
        for (size_t i = 0; i < d->n_records && !failure[0]; i++) {
            const tg_value *rec = &d->values[i * d->n_columns];
            const tg_value *rid = ic >= 0 ? &rec[ic] : &none;
            const tg_value *rtenant = tc >= 0 ? &rec[tc] : NULL;
            if (ex->tenant.type != TG_NULL && tc >= 0 && !tg__value_eq(&rec[tc], &ex->tenant)) {
                snprintf(failure, sizeof failure, "returned row %s of tenant %s",
                         key_str(rid, k1, sizeof k1), key_str(&rec[tc], k2, sizeof k2));
                row_str(row, sizeof row, table, rid, rtenant);
            }
            for (size_t k = 0; k < ex->n_must_not && ic >= 0 && !failure[0]; k++)
                if (tg__value_eq(rid, &ex->must_not[k])) {
                    snprintf(failure, sizeof failure, "returned row %s, which it must not",
                             key_str(rid, k1, sizeof k1));
                    row_str(row, sizeof row, table, rid, rtenant);
                }
        }
        for (size_t k = 0; k < ex->n_must && ic >= 0 && !failure[0]; k++) {
            int found = 0;
            for (size_t i = 0; i < d->n_records; i++)
                found |= tg__value_eq(&d->values[i * d->n_columns + ic], &ex->must[k]);
            if (!found) {
                snprintf(failure, sizeof failure, "row %s is missing",
                         key_str(&ex->must[k], k1, sizeof k1));
                row_str(row, sizeof row, table, &ex->must[k], NULL);
            }
        }
        if (!failure[0] && ex->exact_count >= 0 && d->n_records != (size_t)ex->exact_count)
            snprintf(failure, sizeof failure, "returned %zu rows, expected %d", d->n_records,
                     ex->exact_count);
    }
    if (failure[0] && !row[0]) {
        /* no returned row was at fault: the first row served where none should have been,
         * else the record the request named */
        const tg_columns *names = NULL;
        const char *table = cur_table(rn, &names);
        const tg_rules *r = rn->fx->r;
        if (d && d->n_records) {
            int ic = column_of(d, names ? names->id : r->app.id_column);
            int tc = column_of(d, names ? names->tenant : r->app.tenant_column);
            if (ic >= 0)
                row_str(row, sizeof row, table, &d->values[ic], tc >= 0 ? &d->values[tc] : NULL);
        } else if (req->id.type != TG_NULL) {
            row_str(row, sizeof row, table, &req->id, NULL);
        } else if (req->n_ids) {
            row_str(row, sizeof row, table, &req->ids[0], NULL);
        } else if (req->owner.type != TG_NULL) {
            char k1[64];
            snprintf(row, sizeof row, "owner row %s", key_str(&req->owner, k1, sizeof k1));
        }
    }
    if (is_main)
        rn->cur->actual_outcome = actual == 404 && expected == TG_OUTCOME_HIDDEN ? TG_OUTCOME_HIDDEN
                                                                                : actual;
    add_check(rn, actor_names[user], what, expected, actual, reason,
              failure[0] ? failure : NULL, row);
}

/* Attempts an update of a foreign record: it must be refused and change nothing. */
static void check_write(runner *rn, const tg_family *fam, const fam_rows *rows, tg_value id,
                        const char *what) {
    if (!rows->write_column)
        return;
    tg_ctx *ctx = ctx_for(rn, U_FULL, T_A);
    tg__db *db = rn->fx->eng->store;
    int64_t changes = tg__db_total_changes(db);
    tg_column_value v = {rows->write_column, {TG_TEXT, 0, 0, "tgmatrix-overwritten", 0}};
    const tg_decision *d = NULL;
    /* a mutant's update may break a constraint (a CHECK on the column): on PostgreSQL that
     * would abort the whole transaction, and every check after it would fail for nothing;
     * under a savepoint only the update is undone, as SQLite undoes a failed statement */
    int sp = tg__db_exec(db, "SAVEPOINT tg_matrix_write") == TG__ST_OK;
    int st = ctx ? tg_ctx_update(ctx, fam->name, &id, &v, 1, NULL, &d) : TG_ERROR;
    if (sp && st != TG_OK)
        tg__db_exec(db, "ROLLBACK TO tg_matrix_write");
    if (sp)
        tg__db_exec(db, "RELEASE tg_matrix_write");
    char failure[200] = "";
    int actual = d ? d->status : -1;
    if (tg__db_total_changes(db) != changes)
        snprintf(failure, sizeof failure, "the update changed a row of another tenant");
    else if (st == TG_OK && actual != 404)
        snprintf(failure, sizeof failure, "expected 404, got %d", actual);
    char row[200] = "";
    if (failure[0]) {
        const tg_columns *names = NULL;
        row_str(row, sizeof row, cur_table(rn, &names), &id, NULL);
    }
    add_check(rn, "full", what, 404, actual, d ? d->reason : tg_ctx_errmsg(ctx),
              failure[0] ? failure : NULL, row);
}

/* The full actor on the same request under the probe plan (no capability anywhere): 403. */
static void check_probe(runner *rn, int tenant, tg_request *req) {
    rn->use_probe = 1;
    check(rn, U_FULL, tenant, req, 403, "the same, where the rules declare no capability", NULL,
          0);
    rn->use_probe = 0;
}

static void run_family_row(runner *rn, const tg_matrix_result *res, size_t fi) {
    fixture *fx = rn->fx;
    const tg_family *f = &fx->r->families[fi];
    const fam_rows *R = &fx->fams[fi];
    const tg_path_rule *path = &f->paths[res->row.path];
    int expected = res->row.expected_outcome;
    tg_request q = {0};
    q.family = f->name;
    q.path = res->row.path;
    tg_value a1 = fx_key(R->rows[T_A][0]), a2 = fx_key(R->rows[T_A][1]),
             b1 = fx_key(R->rows[T_B][0]), c1 = fx_key(R->rows[T_C][0]);
    /* the actors without capabilities (an undeclared role, no role) get 403 on every
     * declared path; the full actor too where the path declares no capability */
    int nocap = path->declared ? 403 : 200;
    int full_ok = path->declared && path->capability < 0 ? 403 : 200;
    /* a positive scenario is the full actor in its own tenant (403 on a path with a
     * capability: the actor without capabilities); a wrong expectation then fails instead
     * of picking an actor that makes it true */
    int main_user = expected == 403 && full_ok == 200 ? U_NOCAP : U_FULL;
    tg_value foreign[] = {b1, fx_key(R->rows[T_B][1]), c1, fx_key(R->rows[T_C][1])};
    tg_value not_child[1] = {a2};
    expect_rows only_a = {fx_key(fx->tenant[T_A]), NULL, 0, foreign, 4, -1};

    switch (res->row.scenario_type) {
    case TG_SCENARIO_POSITIVE_SCOPE: {
        tg_value both[2] = {a1, a2};
        expect_rows ex = only_a;
        int tenant = T_A;
        switch (q.path) {
        case TG_PATH_INDEX:
            ex.must = both;
            ex.n_must = 2;
            break;
        case TG_PATH_DETAIL:
        case TG_PATH_ROW_ACTION:
        case TG_PATH_CANONICAL_VIEWER:
            q.id = a1;
            ex.must = both;
            ex.n_must = 1;
            if (q.path == TG_PATH_CANONICAL_VIEWER)
                tenant = -1;
            break;
        case TG_PATH_BULK_ACTION:
            q.ids = both;
            q.n_ids = 2;
            ex.must = both;
            ex.n_must = 2;
            break;
        case TG_PATH_RELATION_MANAGER: {
            q.owner = fx_key(fx->fams[path->owner_family].rows[T_A][0]);
            ex.must = both; /* child 1 of A belongs to owner 1 of A; child 2 to owner 2 */
            ex.n_must = 1;
            ex.must_not = not_child;
            ex.n_must_not = 1;
            break;
        }
        default:
            break;
        }
        int main_expected = expected;
        check(rn, main_user, tenant, &q, main_expected, "a record of its own tenant",
              main_user == U_FULL ? &ex : NULL, 1);
        if (main_user != U_FULL)
            check(rn, U_FULL, tenant, &q, full_ok, "a record of its own tenant", &ex, 0);
        check(rn, U_NOCAP, tenant, &q, nocap, "a record of its own tenant", &ex, 0);
        if (fx->has_norole)
            check(rn, U_NOROLE, tenant, &q, nocap, "a record of its own tenant", &ex, 0);
        if (path->declared)
            check_probe(rn, tenant, &q);
        check(rn, U_UNENTITLED, tenant, &q, 404, "a record of a tenant it is not entitled to",
              NULL, 0);
        check(rn, U_STRANGER, tenant, &q, 404, "a record of a workspace it is not a member of",
              NULL, 0);
        if (q.path == TG_PATH_CANONICAL_VIEWER) {
            q.id = b1;
            check(rn, U_FULL, -1, &q, 404, "a record of a tenant it is not entitled to", NULL, 0);
            q.id = c1;
            check(rn, U_FULL, -1, &q, 404, "a record of another workspace", NULL, 0);
        } else {
            check(rn, U_FULL, -1, &q, 404, "a tenant-bound path without a tenant", NULL, 0);
        }
        break;
    }
    case TG_SCENARIO_WRONG_TENANT_INDEX:
        check(rn, U_FULL, T_B, &q, expected, "the index of a tenant it is not entitled to", NULL,
              1);
        check(rn, U_FULL, T_A, &q, full_ok, "the index of its own tenant, for foreign rows",
              &only_a, 0);
        check(rn, U_UNENTITLED, T_A, &q, 404, "the index of a tenant it is not entitled to", NULL,
              0);
        break;
    case TG_SCENARIO_WRONG_TENANT_DETAIL:
    case TG_SCENARIO_WRONG_TENANT_ROW_ACTION:
        q.id = b1;
        check(rn, main_user, T_A, &q, expected, "a record of another tenant of its workspace",
              NULL, 1);
        check(rn, U_NOCAP, T_A, &q, 404, "a record of another tenant, without the capability",
              NULL, 0);
        q.id = c1;
        check(rn, U_FULL, T_A, &q, 404, "a record of another workspace", NULL, 0);
        if (res->row.scenario_type == TG_SCENARIO_WRONG_TENANT_ROW_ACTION)
            check_write(rn, f, R, b1, "an update of a record of another tenant");
        break;
    case TG_SCENARIO_WRONG_TENANT_BULK_ACTION: {
        tg_value mixed[2] = {a1, b1}, other_ws[2] = {a1, c1};
        q.ids = mixed;
        q.n_ids = 2;
        check(rn, U_FULL, T_A, &q, expected, "its own record plus one of another tenant", NULL, 1);
        check(rn, U_NOCAP, T_A, &q, 404, "a foreign id, without the capability", NULL, 0);
        q.ids = other_ws;
        check(rn, U_FULL, T_A, &q, 404, "its own record plus one of another workspace", NULL, 0);
        break;
    }
    case TG_SCENARIO_WRONG_TENANT_RELATION_MANAGER: {
        const fam_rows *O = &fx->fams[path->owner_family];
        q.owner = fx_key(O->rows[T_B][0]);
        check(rn, U_FULL, T_A, &q, expected, "the children of another tenant's owner", NULL, 1);
        q.owner = fx_key(O->rows[T_A][1]);
        q.id = a1;
        check(rn, U_FULL, T_A, &q, 404, "its own child reached through the wrong owner", NULL, 0);
        q.owner = fx_key(O->rows[T_A][0]);
        q.id = b1;
        check(rn, U_FULL, T_A, &q, 404, "another tenant's child under its own owner", NULL, 0);
        break;
    }
    case TG_SCENARIO_SAFE_SEARCH:
        q.query = "tgmatrix";
        if (f->search_posture == TG_SEARCH_SCOPED && f->paths[TG_PATH_GLOBAL_SEARCH].declared) {
            tg_value both[2] = {a1, a2};
            expect_rows ex = only_a;
            ex.must = both;
            ex.n_must = 2;
            check(rn, U_FULL, T_A, &q, expected, "a search matching every tenant's rows", &ex, 1);
            q.query = "tgmatrix_";
            expect_rows none = {fx_key(fx->tenant[T_A]), NULL, 0, NULL, 0, 0};
            check(rn, U_FULL, T_A, &q, full_ok, "a search with a LIKE wildcard, taken literally",
                  &none, 0);
            q.query = "tgmatrix";
            check(rn, U_UNENTITLED, T_A, &q, 404, "a search in a tenant it is not entitled to",
                  NULL, 0);
        } else {
            check(rn, U_FULL, T_A, &q, expected, "a search where search is off", NULL, 1);
        }
        break;
    default:
        break;
    }
}

static void run_exception_row(runner *rn, const tg_matrix_result *res, size_t ei) {
    fixture *fx = rn->fx;
    const tg_exception *e = &fx->r->exceptions[ei];
    const fam_rows *R = &fx->excs[ei];
    unsigned checks = e->still_required_checks;
    tg_request q = {0};
    q.exception = e->name;
    q.path = TG_PATH_DETAIL;
    int tenant = checks & TG_CHECK_RECORD_IN_TENANT ? T_A : -1;
    if (res->row.scenario_type == TG_SCENARIO_POSITIVE_SCOPE) {
        q.id = fx_key(R->rows[T_A][0]);
        check(rn, U_FULL, tenant, &q, res->row.expected_outcome, "a record of its own tenant",
              NULL, 1);
        check(rn, U_STRANGER, tenant, &q, 404, "a record of a workspace it is not a member of",
              NULL, 0);
        if (checks & TG_CHECK_TENANT_ENTITLED)
            check(rn, U_UNENTITLED, tenant, &q, 404, "a record of a tenant it is not entitled to",
                  NULL, 0);
        check(rn, U_NOCAP, tenant, &q, 403, "a record, without the capability", NULL, 0);
        if (fx->has_norole)
            check(rn, U_NOROLE, tenant, &q, 403, "a record, without a role", NULL, 0);
        check_probe(rn, tenant, &q);
        if (R->ws_row.type != TG_NULL) {
            q.id = fx_key(R->ws_row);
            check(rn, U_FULL, tenant < 0 ? -1 : tenant,
                  &q, (checks & TG_CHECK_RECORD_IN_TENANT) ? 404
                      : exception_capable(e)              ? 200
                                                          : 403,
                  "a workspace-level record", NULL, 0);
        }
    } else {
        q.id = fx_key(R->rows[T_C][0]);
        check(rn, U_FULL, tenant, &q, res->row.expected_outcome, "a record of another workspace",
              NULL, 1);
        if (checks & TG_CHECK_TENANT_ENTITLED) {
            q.id = fx_key(R->rows[T_B][0]);
            check(rn, U_FULL, tenant, &q, 404, "a record of a tenant it is not entitled to", NULL,
                  0);
        }
    }
}

/* The probe plan: the engine's rules with every capability removed (paths and exceptions),
 * built like any plan, under the run's mutation. Its strings stay in src, which the caller
 * keeps referenced for as long as the plan lives. */
static int probe_plan_new(tg_engine *eng, tg__ruleset *src, tg__buf *err, tg__plan **out) {
    *out = NULL;
    tg__ruleset *rs = calloc(1, sizeof *rs);
    if (!rs)
        return TG_NOMEM;
    rs->refs = 1;
    rs->pub = src->pub;
    rs->cap_words = src->cap_words;
    const tg_rules *r = &src->pub;
    tg_family *fams = tg__arena_alloc(&rs->arena, (r->n_families + 1) * sizeof *fams);
    tg_exception *excs = tg__arena_alloc(&rs->arena, (r->n_exceptions + 1) * sizeof *excs);
    int st = TG_NOMEM;
    if (fams && excs) {
        for (size_t i = 0; i < r->n_families; i++) {
            fams[i] = r->families[i];
            for (int p = 0; p < TG_PATH_COUNT; p++)
                fams[i].paths[p].capability = -1;
        }
        for (size_t i = 0; i < r->n_exceptions; i++) {
            excs[i] = r->exceptions[i];
            excs[i].capability = -1;
            excs[i].still_required_checks &= ~(unsigned)TG_CHECK_CAPABILITY;
        }
        rs->pub.families = fams;
        rs->pub.exceptions = excs;
        st = tg__plan_new(rs, eng->store, eng->schema_gen, eng->mutation, err, out);
    }
    tg__ruleset_release(rs); /* the plan holds its own reference */
    return st;
}

/* The run proper; tg_run_matrix keeps the engine alive and marks it busy around it. */
static int run_matrix(tg_engine *eng, const char *mutation, tg_matrix_report **out);

int tg_run_matrix(tg_engine *eng, const char *mutation, tg_matrix_report **out) {
    if (!eng || !out || eng->closed)
        return TG_MISUSE;
    *out = NULL;
    if (!eng->store)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    if (eng->in_matrix)
        return tg__engine_fail(eng, TG_BUSY, "the engine is busy: the matrix is already running "
                                             "(tg_run_matrix called from its decision sink?)");
    /* a close from the decision sink only drops the caller's reference: the engine is freed
     * when this returns, never under the run */
    eng->refs++;
    eng->in_matrix = 1;
    int st = run_matrix(eng, mutation, out);
    eng->in_matrix = 0;
    if (st == TG_OK && eng->closed) {
        tg_matrix_free(*out);
        *out = NULL;
        st = TG_MISUSE;
    }
    tg__engine_release(eng);
    return st;
}

static int run_matrix(tg_engine *eng, const char *mutation, tg_matrix_report **out) {
    int mut = TG__MUT_NONE;
    if (mutation) {
        for (int i = 1; i < TG__MUT_COUNT; i++)
            if (strcmp(mutations[i].name, mutation) == 0)
                mut = i;
        if (mut == TG__MUT_NONE)
            return tg__engine_fail(eng, TG_UNKNOWN, "unknown mutation '%s'", mutation);
    }
    report *rep = report_new();
    if (!rep)
        return TG_NOMEM;
    expand(&eng->rules->pub, rep);
    rep->pub.mutation = mutation ? keep(rep, mutation) : NULL;
    const char *lacks = tg_mutation_lacking(tg_engine_rules(eng), mutation);
    rep->pub.not_applicable = lacks ? keep(rep, lacks) : NULL;
    fixture fx = {0};
    fx.eng = eng;
    fx.r = &eng->rules->pub;
    fx.fams = calloc(fx.r->n_families + 1, sizeof *fx.fams);
    fx.excs = calloc(fx.r->n_exceptions + 1, sizeof *fx.excs);
    runner rn = {0};
    tg__ruleset *probe_src = NULL;
    rn.fx = &fx;
    rn.rep = rep;
    int st = TG_OK;
    if (!fx.fams || !fx.excs) {
        st = TG_NOMEM;
        goto done;
    }
    /* one transaction, rolled back: nothing the matrix does persists */
    if ((st = tg__begin(eng)) != TG_OK)
        goto done;
    tg__db_exec(eng->store, eng->store->dialect->defer_foreign_keys);
    if ((st = tg__fixture_build(&fx)) != TG_OK) {
        tg__engine_fail(eng, st, "%s", tg__buf_str(&fx.err));
        goto rollback;
    }
    eng->mutation = mut;
    /* the rules stay referenced while the probe plan points into them, whatever a decision
     * log callback does to the engine meanwhile */
    probe_src = tg__ruleset_retain(eng->rules);
    if ((st = probe_plan_new(eng, probe_src, &fx.err, &rn.probe)) != TG_OK) {
        tg__engine_fail(eng, st, "matrix probe: %s",
                        fx.err.len ? tg__buf_str(&fx.err) : tg_strerror(st));
        goto rollback;
    }
    for (size_t i = 0; i < rep->n; i++) {
        if (eng->closed) { /* by the decision sink: stop, roll back, report */
            st = TG_MISUSE;
            break;
        }
        tg_matrix_result *res = &rep->results[i];
        rn.cur = res;
        size_t first = rep->n_checks;
        double t0 = now_s();
        if (res->row.is_exception) {
            for (size_t ei = 0; ei < fx.r->n_exceptions; ei++)
                if (strcmp(fx.r->exceptions[ei].name, res->row.family) == 0)
                    run_exception_row(&rn, res, ei);
        } else {
            run_family_row(&rn, res, (size_t)tg_rules_family_index(fx.r, res->row.family));
        }
        res->seconds = now_s() - t0;
        res->checks = (const tg_matrix_check *)(uintptr_t)first; /* fixed up below */
        if (res->pass)
            rep->pub.passed++;
        else
            rep->pub.failed++;
    }
rollback:
    for (int u = 0; u < N_USERS; u++)
        for (int t = 0; t <= N_TENANTS; t++)
            tg_ctx_close(rn.ctx[u][t]);
    for (int t = 0; t <= N_TENANTS; t++)
        tg_ctx_close(rn.probe_ctx[t]);
    tg__plan_release(rn.probe);
    tg__ruleset_release(probe_src);
    eng->mutation = TG__MUT_NONE;
    tg__rollback(eng);
    /* statements prepared for the mutant must not serve anyone */
    tg__engine_schema_changed(eng);
done:
    for (size_t i = 0; i < rep->n; i++)
        rep->results[i].checks =
            rep->checks ? rep->checks + (uintptr_t)rep->results[i].checks : NULL;
    rep->pub.results = rep->results;
    rep->pub.n_results = rep->n;
    free(fx.fams);
    free(fx.excs);
    tg__fixture_free(&fx);
    if (st == TG_OK && rep->oom)
        st = TG_NOMEM;
    if (st != TG_OK) {
        tg_matrix_free(&rep->pub);
        return st;
    }
    *out = &rep->pub;
    return TG_OK;
}
