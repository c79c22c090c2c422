/* The first decision of a new context, per kind of case, against a good hand-written
 * baseline; the repeated decision in one context; decisions per second at 1..N threads. On
 * the reference database and on the second schema (bench/second_schema.c).
 *
 * The baseline is what a careful engineer writes for a detail page: ONE prepared statement
 * that stops at the first failing check and reads only the columns it needs, the capability
 * decided from the role, held in memory (a table of role -> capabilities, as the app's own
 * code would keep it). On the reference schema:
 *
 *   SELECT COALESCE(tm.role, wm.role), r.*
 *   FROM workspace_memberships wm                          -- 1. member of the workspace?
 *   CROSS JOIN tenants t ON t.id = ?3 AND t.workspace_id = ?2  -- 2. tenant in it?
 *   CROSS JOIN tenant_memberships tm                        -- 3. entitled to the tenant?
 *     ON tm.user_id = ?1 AND tm.tenant_id = ?3
 *   CROSS JOIN policies r ON r.id = ?4 AND r.tenant_id = ?3  -- 4. the record, in the tenant
 *   WHERE wm.user_id = ?1 AND wm.workspace_id = ?2
 *
 * CROSS JOIN keeps SQLite's join order as written, so the loop ends at the first check that
 * finds no row: no row is 404, a row is 200 or 403 by the role. Every lookup is one index
 * probe (UNIQUE (user_id, workspace_id), the tenants' rowid, UNIQUE (user_id, tenant_id), the
 * record's rowid). The second schema's statement has the same shape, without the workspace
 * role (org_members has none):
 *
 *   SELECT g.role, r.*
 *   FROM org_members m
 *   CROSS JOIN clients c ON c.id = ?3 AND c.org_id = ?2
 *   CROSS JOIN client_grants g ON g.person_id = ?1 AND g.client_id = ?3
 *   CROSS JOIN invoices r ON r.invoice_id = ?4 AND r.client_id = ?3
 *   WHERE m.person_id = ?1 AND m.org_id = ?2
 *
 * The baseline only tells 200, 403 and 404 apart; tenantguard also gives each 404 its log
 * reason (printed beside each kind). Both sides run in autocommit with the same connection
 * settings (printed), alternating, round after round; medians. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    K_ALLOWED,
    K_NO_CAP,
    K_NOT_MEMBER,
    K_OTHER_WS_TENANT,
    K_NOT_ENTITLED,
    K_MISSING,
    K_FOREIGN,
    K_OTHER_WS_RECORD,
    K_COUNT
};
static const char *const kind_name[K_COUNT] = {
    "in_scope_200",     "no_capability_403",    "not_member",          "tenant_other_ws",
    "not_entitled",     "missing_record",       "record_other_tenant", "record_other_ws"};
static const int kind_status[K_COUNT] = {200, 403, 404, 404, 404, 404, 404, 404};

typedef struct role_caps {
    const char *role;
    int view, edit;
} role_caps;

typedef struct profile {
    const char *title, *prefix, *db, *rules, *family;
    const char *decide_sql; /* ?1 user, ?2 workspace, ?3 tenant, ?4 id: role, record */
    const char *pk_sql;     /* ?1 id, ?2 tenant: the record */
    const char *ids_sql;    /* ?1 tenant: its record ids */
    int64_t ws, tenant, tenant_other, tenant_other_ws;
    int64_t user, user_readonly, user_none, user_unentitled;
    const role_caps *roles; /* ends with a NULL role */
} profile;

static const role_caps reference_roles[] = {
    {"readonly", 1, 0}, {"operator", 1, 1}, {"owner", 1, 1}, {NULL, 0, 0}};
static const role_caps second_roles[] = {
    {"viewer", 1, 0}, {"editor", 1, 1}, {"admin", 1, 1}, {NULL, 0, 0}};

static const profile reference_profile = {
    "reference", "", NULL, NULL, "Policy",
    "SELECT COALESCE(tm.role, wm.role), r.* FROM workspace_memberships wm "
    "CROSS JOIN tenants t ON t.id = ?3 AND t.workspace_id = ?2 "
    "CROSS JOIN tenant_memberships tm ON tm.user_id = ?1 AND tm.tenant_id = ?3 "
    "CROSS JOIN policies r ON r.id = ?4 AND r.tenant_id = ?3 "
    "WHERE wm.user_id = ?1 AND wm.workspace_id = ?2",
    "SELECT * FROM policies WHERE id = ?1 AND tenant_id = ?2",
    "SELECT id FROM policies WHERE tenant_id = ?1 ORDER BY id",
    1, 1, 2, 5, /* workspace 1; tenants 1, 2 (same workspace), 5 (workspace 2) */
    1, 3, 6, 4, /* owner; readonly; member of nothing; operator entitled to no tenant */
    reference_roles};

static const profile second_profile = {
    "second schema", "second_", NULL, NULL, "Invoice",
    "SELECT g.role, r.* FROM org_members m "
    "CROSS JOIN clients c ON c.id = ?3 AND c.org_id = ?2 "
    "CROSS JOIN client_grants g ON g.person_id = ?1 AND g.client_id = ?3 "
    "CROSS JOIN invoices r ON r.invoice_id = ?4 AND r.client_id = ?3 "
    "WHERE m.person_id = ?1 AND m.org_id = ?2",
    "SELECT * FROM invoices WHERE invoice_id = ?1 AND client_id = ?2",
    "SELECT invoice_id FROM invoices WHERE client_id = ?1 ORDER BY invoice_id",
    1, 1, 2, 101, /* org 1; clients 1, 2 (same org), 101 (org 2) */
    1, 2, 2000, 3, /* admin; viewer; member of nothing; member entitled to nothing */
    second_roles};

typedef struct kreq {
    int kind;
    int64_t user, ws, tenant, id;
    int row_action;
} kreq;

typedef struct kside {
    const profile *p;
    tg_engine *eng;
    sqlite3 *db;
    sqlite3_stmt *decide, *pk;
    tg_ctx *shared; /* the repeated benchmark's context */
    int64_t *ids, *foreign, *other_ws;
    size_t n_ids, n_foreign, n_other_ws;
    char sink[4096];
} kside;

static void kside_close(kside *s) {
    sqlite3_finalize(s->decide);
    sqlite3_finalize(s->pk);
    sqlite3_close(s->db);
    tg_ctx_close(s->shared);
    tg_engine_close(s->eng);
    free(s->ids);
    free(s->foreign);
    free(s->other_ws);
    memset(s, 0, sizeof *s);
}

static int kside_open(kside *s, const profile *p, int quiet) {
    memset(s, 0, sizeof *s);
    s->p = p;
    if (bench_open_sides(p->db, p->rules, p->title, quiet, &s->eng, &s->db))
        return 1;
    if (sqlite3_prepare_v3(s->db, p->decide_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->decide,
                           NULL) != SQLITE_OK ||
        sqlite3_prepare_v3(s->db, p->pk_sql, -1, SQLITE_PREPARE_PERSISTENT, &s->pk, NULL) !=
            SQLITE_OK) {
        fprintf(stderr, "prepare: %s\n", sqlite3_errmsg(s->db));
        return 1;
    }
    s->ids = bench_int64s(s->db, p->ids_sql, p->tenant, &s->n_ids);
    s->foreign = bench_int64s(s->db, p->ids_sql, p->tenant_other, &s->n_foreign);
    s->other_ws = bench_int64s(s->db, p->ids_sql, p->tenant_other_ws, &s->n_other_ws);
    if (!s->n_ids || !s->n_foreign || !s->n_other_ws) {
        fprintf(stderr, "%s: no records in tenants %lld, %lld, %lld\n", p->title,
                (long long)p->tenant, (long long)p->tenant_other, (long long)p->tenant_other_ws);
        return 1;
    }
    tg_ctx_options co = {tg_key_int(p->user), tg_key_int(p->ws), tg_key_int(p->tenant), 0};
    if (tg_ctx_open(s->eng, &co, &s->shared) != TG_OK)
        return 1;
    return 0;
}

static void make_req(const kside *s, int kind, uint64_t *seed, kreq *r) {
    const profile *p = s->p;
    *r = (kreq){kind, p->user, p->ws, p->tenant, s->ids[bench_rand(seed) % s->n_ids], 0};
    switch (kind) {
    case K_NO_CAP:
        r->user = p->user_readonly;
        r->row_action = 1;
        break;
    case K_NOT_MEMBER: r->user = p->user_none; break;
    case K_OTHER_WS_TENANT: r->tenant = p->tenant_other_ws; break;
    case K_NOT_ENTITLED: r->user = p->user_unentitled; break;
    case K_MISSING: r->id = 900000000 + (int64_t)(bench_rand(seed) % 1000); break;
    case K_FOREIGN: r->id = s->foreign[bench_rand(seed) % s->n_foreign]; break;
    case K_OTHER_WS_RECORD: r->id = s->other_ws[bench_rand(seed) % s->n_other_ws]; break;
    default: break;
    }
}

/* a realistic mix (the snapshot benchmark's): 50% allowed, 15% another tenant's record, 10%
 * missing, 10% not a member, 5% a tenant of another workspace, 10% a 403 */
static int mix_kind(uint64_t *seed) {
    unsigned pick = (unsigned)(bench_rand(seed) % 100);
    return pick < 50   ? K_ALLOWED
           : pick < 65 ? K_FOREIGN
           : pick < 75 ? K_MISSING
           : pick < 85 ? K_NOT_MEMBER
           : pick < 90 ? K_OTHER_WS_TENANT
                       : K_NO_CAP;
}

static int tg_first(kside *s, const kreq *q, const char **reason) {
    tg_ctx_options o = {tg_key_int(q->user), tg_key_int(q->ws), tg_key_int(q->tenant), 0};
    tg_request r = {0};
    r.family = s->p->family;
    r.path = q->row_action ? TG_PATH_ROW_ACTION : TG_PATH_DETAIL;
    r.id = tg_key_int(q->id);
    tg_ctx *ctx;
    const tg_decision *d;
    if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK || tg_ctx_resolve(ctx, &r, &d) != TG_OK)
        abort();
    int status = d->status;
    if (reason)
        *reason = d->reason; /* static strings */
    tg_ctx_close(ctx);
    return status;
}

/* The columns of the current row from `first` on, the way an application reads them: values
 * into locals, text copied out before the statement is reset. */
static void read_row(kside *s, sqlite3_stmt *st, int first) {
    int n = sqlite3_column_count(st);
    size_t at = 0;
    for (int c = first; c < n; c++) {
        switch (sqlite3_column_type(st, c)) {
        case SQLITE_INTEGER: (void)sqlite3_column_int64(st, c); break;
        case SQLITE_FLOAT: (void)sqlite3_column_double(st, c); break;
        case SQLITE_NULL: break;
        default: {
            const unsigned char *t = sqlite3_column_text(st, c);
            size_t len = (size_t)sqlite3_column_bytes(st, c);
            if (at + len + 1 < sizeof s->sink) {
                memcpy(s->sink + at, t, len + 1);
                at += len + 1;
            }
        }
        }
    }
}

static int base_first(kside *s, const kreq *q) {
    sqlite3_stmt *st = s->decide;
    sqlite3_bind_int64(st, 1, q->user);
    sqlite3_bind_int64(st, 2, q->ws);
    sqlite3_bind_int64(st, 3, q->tenant);
    sqlite3_bind_int64(st, 4, q->id);
    int rc = sqlite3_step(st), status = 404;
    if (rc == SQLITE_ROW) {
        const char *role = (const char *)sqlite3_column_text(st, 0);
        const role_caps *rc_ = s->p->roles;
        while (rc_->role && (!role || strcmp(rc_->role, role) != 0))
            rc_++;
        status = (q->row_action ? rc_->edit : rc_->view) ? 200 : 403;
        if (status == 200)
            read_row(s, st, 1);
    } else if (rc != SQLITE_DONE) {
        abort();
    }
    sqlite3_reset(st);
    return status;
}

typedef double (*kind_fn)(kside *s, int kind, int ops, uint64_t seed);

static double run_tg_kind(kside *s, int kind, int ops, uint64_t seed) {
    kreq q;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        make_req(s, kind, &seed, &q);
        if (tg_first(s, &q, NULL) != kind_status[kind])
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double run_base_kind(kside *s, int kind, int ops, uint64_t seed) {
    kreq q;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        make_req(s, kind, &seed, &q);
        if (base_first(s, &q) != kind_status[kind])
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* the request making alone, to subtract from the callgrind counts of both sides */
static double run_none_kind(kside *s, int kind, int ops, uint64_t seed) {
    kreq q;
    volatile int64_t sink = 0;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        make_req(s, kind, &seed, &q);
        sink += q.id;
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double run_tg_repeated(kside *s, int kind, int ops, uint64_t seed) {
    (void)kind;
    tg_request r = {0};
    r.family = s->p->family;
    r.path = TG_PATH_DETAIL;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        r.id = tg_key_int(s->ids[bench_rand(&seed) % s->n_ids]);
        if (tg_ctx_resolve(s->shared, &r, &d) != TG_OK || d->status != 200)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double run_base_repeated(kside *s, int kind, int ops, uint64_t seed) {
    (void)kind;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        sqlite3_bind_int64(s->pk, 1, s->ids[bench_rand(&seed) % s->n_ids]);
        sqlite3_bind_int64(s->pk, 2, s->p->tenant);
        if (sqlite3_step(s->pk) != SQLITE_ROW)
            abort();
        read_row(s, s->pk, 0);
        sqlite3_reset(s->pk);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* One measured run of one side, marked for callgrind. */
static double measured(kside *s, kind_fn fn, int kind, int ops, uint64_t seed, const char *name,
                       const char *side) {
    BENCH_CG_BEGIN();
    double us = fn(s, kind, ops, seed);
    bench_cg_end(name, side, ops);
    return us;
}

/* Both sides of one benchmark, alternating; medians in us/op. */
static void pair(const bench_cfg *cfg, kside *s, kind_fn tg, kind_fn base, int kind, int ops,
                 const char *name, double *tg_us, double *base_us) {
    double *a = calloc((size_t)cfg->rounds, sizeof *a);
    double *b = calloc((size_t)cfg->rounds, sizeof *b);
    if (!a || !b)
        abort();
    tg(s, kind, ops / 10 + 1, 7); /* warm: statements prepared, pages cached */
    base(s, kind, ops / 10 + 1, 7);
    for (int r = 0; r < cfg->rounds; r++) {
        uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)r;
        if (r % 2) {
            b[r] = measured(s, base, kind, ops, seed, name, "baseline");
            a[r] = measured(s, tg, kind, ops, seed, name, "tenantguard");
        } else {
            a[r] = measured(s, tg, kind, ops, seed, name, "tenantguard");
            b[r] = measured(s, base, kind, ops, seed, name, "baseline");
        }
    }
    /* the requests alone (callgrind subtracts them from both sides) */
    if (kind >= 0)
        measured(s, run_none_kind, kind, ops, 0x9e3779b97f4a7c15ULL, name, "requests");
    *tg_us = bench_median(a, cfg->rounds);
    *base_us = bench_median(b, cfg->rounds);
    free(a);
    free(b);
}

static int kinds_on(const bench_cfg *cfg, const profile *p) {
    kside s;
    int rc = 1;
    if (kside_open(&s, p, 0))
        goto done;
    /* both sides agree on every kind; tenantguard's log reason for each */
    printf("  %s: %zu records in tenant %lld; first decision per kind (status, tenantguard's "
           "reason):\n",
           p->title, s.n_ids, (long long)p->tenant);
    for (int k = 0; k < K_COUNT; k++) {
        uint64_t seed = 42;
        const char *reason = NULL;
        for (int i = 0; i < 50; i++) {
            kreq q;
            make_req(&s, k, &seed, &q);
            int a = tg_first(&s, &q, &reason), b = base_first(&s, &q);
            if (a != kind_status[k] || b != kind_status[k]) {
                fprintf(stderr, "%s %s: tenantguard %d, baseline %d, expected %d\n", p->title,
                        kind_name[k], a, b, kind_status[k]);
                goto done;
            }
        }
        printf("    %-22s %d %s\n", kind_name[k], kind_status[k], reason ? reason : "");
    }
    char name[96];
    double a, b, sum_a = 0, sum_b = 0;
    for (int k = 0; k < K_COUNT; k++) {
        snprintf(name, sizeof name, "%sfirst_%s", p->prefix, kind_name[k]);
        if (!bench_enabled(name))
            continue;
        pair(cfg, &s, run_tg_kind, run_base_kind, k, cfg->ops, name, &a, &b);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.0x", a <= b);
        sum_a += a;
        sum_b += b;
    }
    if (sum_b > 0) {
        snprintf(name, sizeof name, "%sfirst_all_kinds_mean", p->prefix);
        bench_report(cfg, name, "autocommit", "us/op", sum_a / K_COUNT, sum_b / K_COUNT, NULL,
                     1);
    }
    snprintf(name, sizeof name, "%sdetail_repeated_pk", p->prefix);
    if (bench_enabled(name)) {
        pair(cfg, &s, run_tg_repeated, run_base_repeated, -1, cfg->ops, name, &a, &b);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.0x", a <= b);
    }
    rc = 0;
done:
    kside_close(&s);
    return rc;
}

static int profiles(const bench_cfg *cfg, const profile *out[2], profile store[2]) {
    int n = 0;
    store[0] = reference_profile;
    store[0].db = cfg->db;
    store[0].rules = cfg->rules;
    out[n++] = &store[0];
    if (cfg->second_db) {
        store[1] = second_profile;
        store[1].db = cfg->second_db;
        store[1].rules = cfg->second_rules;
        out[n++] = &store[1];
    }
    return n;
}

int bench_kinds(const bench_cfg *cfg) {
    const profile *ps[2];
    profile store[2];
    int n = profiles(cfg, ps, store), rc = 0;
    for (int i = 0; i < n; i++) {
        char probe[64];
        snprintf(probe, sizeof probe, "%sfirst_", ps[i]->prefix);
        int any = bench_enabled(probe) || bench_enabled("detail_repeated_pk");
        for (int k = 0; k < K_COUNT && !any; k++) {
            snprintf(probe, sizeof probe, "%sfirst_%s", ps[i]->prefix, kind_name[k]);
            any = bench_enabled(probe);
        }
        if (any)
            rc |= kinds_on(cfg, ps[i]);
    }
    return rc;
}

/* ---- decisions per second at 1..N threads, one engine (and one baseline connection) per
 * thread ---- */

typedef struct worker {
    const profile *p;
    int baseline, ops;
    uint64_t seed;
    pthread_barrier_t *start;
    kside s;
    int failed;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    int ok = kside_open(&w->s, w->p, 1) == 0;
    if (ok) { /* warm this thread's connection */
        uint64_t seed = 1;
        kreq q;
        for (int i = 0; i < 200; i++) {
            make_req(&w->s, mix_kind(&seed), &seed, &q);
            if (w->baseline)
                (void)base_first(&w->s, &q);
            else
                (void)tg_first(&w->s, &q, NULL);
        }
    }
    w->failed = !ok;
    pthread_barrier_wait(w->start);
    for (int i = 0; ok && i < w->ops; i++) {
        kreq q;
        make_req(&w->s, mix_kind(&w->seed), &w->seed, &q);
        int st = w->baseline ? base_first(&w->s, &q) : tg_first(&w->s, &q, NULL);
        if (st != kind_status[q.kind])
            abort();
    }
    pthread_barrier_wait(w->start);
    return NULL;
}

/* decisions per second of `n` threads together, each running `ops` decisions */
static double run_threads(const profile *p, int n, int baseline, int ops, uint64_t seed) {
    pthread_barrier_t start;
    pthread_t *th = calloc((size_t)n, sizeof *th);
    worker *w = calloc((size_t)n, sizeof *w);
    if (!th || !w || pthread_barrier_init(&start, NULL, (unsigned)n + 1) != 0)
        abort();
    for (int i = 0; i < n; i++) {
        w[i] = (worker){p, baseline, ops, seed + (uint64_t)i * 7919, &start, {0}, 0};
        if (pthread_create(&th[i], NULL, work, &w[i]) != 0)
            abort();
    }
    pthread_barrier_wait(&start); /* every thread has its engine open and warm */
    double t0 = bench_now();
    pthread_barrier_wait(&start); /* every thread is done */
    double rate = (double)n * ops / (bench_now() - t0);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        failed |= w[i].failed;
        kside_close(&w[i].s);
    }
    pthread_barrier_destroy(&start);
    free(th);
    free(w);
    return failed ? 0 : rate;
}

int bench_threads(const bench_cfg *cfg) {
    const profile *ps[2];
    profile store[2];
    int n = profiles(cfg, ps, store);
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "%sthreads_decisions_per_second", ps[i]->prefix);
        if (!bench_enabled(name))
            continue;
        int rounds = cfg->rounds < 5 ? cfg->rounds : 5;
        double one[2] = {0, 0};
        for (int t = 1; t <= cfg->threads; t++) {
            double *v[2];
            v[0] = calloc((size_t)rounds, sizeof(double));
            v[1] = calloc((size_t)rounds, sizeof(double));
            if (!v[0] || !v[1])
                abort();
            for (int r = 0; r < rounds; r++)
                for (int j = 0; j < 2; j++) {
                    int side = (j + r) % 2; /* alternate which side runs first */
                    v[side][r] = run_threads(ps[i], t, side, cfg->ops, 99 + (uint64_t)r);
                    if (v[side][r] == 0) {
                        free(v[0]);
                        free(v[1]);
                        return 1;
                    }
                }
            double rate_tg = bench_median(v[0], rounds), rate_base = bench_median(v[1], rounds);
            free(v[0]);
            free(v[1]);
            char mode[32];
            snprintf(mode, sizeof mode, "%d thread%s", t, t > 1 ? "s" : "");
            bench_report(cfg, name, mode, "decisions/s", rate_tg, rate_base, NULL, 1);
            if (t == 1) {
                one[0] = rate_tg;
                one[1] = rate_base;
            } else {
                snprintf(name, sizeof name, "%sthreads_scaling_%dv1", ps[i]->prefix, t);
                bench_report(cfg, name, "tenantguard", "x", rate_tg / one[0], 0, NULL, 1);
                bench_report(cfg, name, "baseline", "x", rate_base / one[1], 0, NULL, 1);
                snprintf(name, sizeof name, "%sthreads_decisions_per_second", ps[i]->prefix);
            }
        }
        printf("  (each thread: its own engine and baseline connection, %d first decisions "
               "of the mix: 50%% allowed, 15%% another tenant's record, 10%% missing, 10%% not "
               "a member, 5%% a tenant of another workspace, 10%% 403; %d rounds, medians)\n",
               cfg->ops, rounds);
    }
    return 0;
}
