/* Decision benchmarks: detail (first in a new context, and repeated), bulk of 100, an index
 * page of 50, a global search, and decisions per second over a realistic mix. Both sides run
 * in autocommit mode: every statement opens its own read transaction, as a web request's
 * queries usually do. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS 1
#define TENANT 1
#define USER 1

typedef struct side {
    sqlite3 *db; /* the baseline's own connection */
    tg_engine *eng;
    int64_t *ids; /* in-scope policy ids of TENANT */
    size_t n_ids;
    int64_t *group_ids;
    size_t n_groups;
    char sink[4096]; /* where the baseline copies text, as hand-written code would */
} side;

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "prepare failed: %s\n%s\n", sqlite3_errmsg(db), sql);
    return rc;
}

/* Reads every column of the current row the way an application would: values into locals,
 * text copied out. */
static void read_row(side *s, sqlite3_stmt *st) {
    int n = sqlite3_column_count(st);
    size_t at = 0;
    for (int c = 0; c < n; c++) {
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

static int64_t *load_ids(sqlite3 *db, const char *sql, size_t *n) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    size_t cap = 1024, k = 0;
    int64_t *ids = malloc(cap * sizeof *ids);
    while (ids && sqlite3_step(st) == SQLITE_ROW) {
        if (k == cap) {
            int64_t *more = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!more) {
                free(ids);
                ids = NULL;
                break;
            }
            ids = more;
        }
        ids[k++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    *n = k;
    return ids;
}

typedef double (*op_fn)(side *s, int ops, uint64_t seed);

/* Alternates the two sides for cfg->rounds rounds; returns the medians in us/op. */
static void run_pair(const bench_cfg *cfg, side *s, op_fn tg, op_fn base, int ops, double *tg_us,
                     double *base_us) {
    double *a = calloc((size_t)cfg->rounds, sizeof *a);
    double *b = calloc((size_t)cfg->rounds, sizeof *b);
    tg(s, ops / 10 + 1, 7); /* warm both: statements prepared, pages cached */
    base(s, ops / 10 + 1, 7);
    for (int r = 0; r < cfg->rounds; r++) {
        uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)r;
        if (r % 2) {
            b[r] = base(s, ops, seed);
            a[r] = tg(s, ops, seed);
        } else {
            a[r] = tg(s, ops, seed);
            b[r] = base(s, ops, seed);
        }
    }
    *tg_us = bench_median(a, cfg->rounds);
    *base_us = bench_median(b, cfg->rounds);
    free(a);
    free(b);
}

/* ---- detail, repeated in one context ---- */

static tg_ctx *shared_ctx;
static sqlite3_stmt *base_pk;

static double tg_detail_repeated(side *s, int ops, uint64_t seed) {
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_DETAIL;
    r.has_id = 1;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        r.id = s->ids[bench_rand(&seed) % s->n_ids];
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_detail_repeated(side *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        sqlite3_bind_int64(base_pk, 1, s->ids[bench_rand(&seed) % s->n_ids]);
        sqlite3_bind_int64(base_pk, 2, TENANT);
        if (sqlite3_step(base_pk) != SQLITE_ROW)
            abort();
        read_row(s, base_pk);
        sqlite3_reset(base_pk);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* ---- detail, first decision of a new context ---- */

static sqlite3_stmt *base_join;

static double tg_detail_first(side *s, int ops, uint64_t seed) {
    tg_ctx_options o = {USER, WS, TENANT, 1};
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_DETAIL;
    r.has_id = 1;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        tg_ctx *ctx;
        if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK)
            abort();
        r.id = s->ids[bench_rand(&seed) % s->n_ids];
        if (tg_ctx_resolve(ctx, &r, &d) != TG_OK || d->status != 200)
            abort();
        tg_ctx_close(ctx);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_detail_first(side *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        sqlite3_bind_int64(base_join, 1, USER);
        sqlite3_bind_int64(base_join, 2, WS);
        sqlite3_bind_int64(base_join, 3, TENANT);
        sqlite3_bind_int64(base_join, 4, s->ids[bench_rand(&seed) % s->n_ids]);
        if (sqlite3_step(base_join) != SQLITE_ROW)
            abort();
        const unsigned char *role = sqlite3_column_text(base_join, 0);
        if (!role || strcmp((const char *)role, "owner") != 0)
            abort();
        read_row(s, base_join);
        sqlite3_reset(base_join);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

int bench_decisions(const bench_cfg *cfg) {
    side s = {0};
    tg_open_options o = {0};
    o.db = cfg->db;
    o.rules = cfg->rules;
    if (tg_engine_open(&o, &s.eng) != TG_OK) {
        fprintf(stderr, "open: %s\n", tg_engine_errmsg(s.eng));
        return 1;
    }
    if (sqlite3_open_v2(cfg->db, &s.db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return 1;
    sqlite3_exec(s.db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
    s.ids = load_ids(s.db, "SELECT id FROM policies WHERE tenant_id = 1", &s.n_ids);
    if (!s.ids || s.n_ids == 0) {
        fprintf(stderr, "no policies in tenant 1\n");
        return 1;
    }
    tg_ctx_options co = {USER, WS, TENANT, 1};
    if (tg_ctx_open(s.eng, &co, &shared_ctx) != TG_OK)
        return 1;
    if (prep(s.db, "SELECT * FROM policies WHERE id = ?1 AND tenant_id = ?2", &base_pk) ||
        prep(s.db,
             "SELECT COALESCE(tm.role, wm.role) AS role, r.* FROM policies r "
             "JOIN tenants t ON t.id = r.tenant_id AND t.workspace_id = ?2 "
             "JOIN workspace_memberships wm ON wm.user_id = ?1 AND wm.workspace_id = ?2 "
             "JOIN tenant_memberships tm ON tm.user_id = ?1 AND tm.tenant_id = r.tenant_id "
             "WHERE r.id = ?4 AND r.tenant_id = ?3",
             &base_join))
        return 1;
    double a, b;
    if (bench_enabled("detail_repeated")) {
        run_pair(cfg, &s, tg_detail_repeated, base_detail_repeated, cfg->ops, &a, &b);
        bench_report(cfg, "detail_repeated", "autocommit", "us/op", a, b, "<=1.15x",
                     a <= 1.15 * b);
    }
    if (bench_enabled("detail_first")) {
        run_pair(cfg, &s, tg_detail_first, base_detail_first, cfg->ops, &a, &b);
        bench_report(cfg, "detail_first", "autocommit", "us/op", a, b, "<=1.0x", a <= b);
    }
    sqlite3_finalize(base_pk);
    sqlite3_finalize(base_join);
    tg_ctx_close(shared_ctx);
    tg_engine_close(s.eng);
    sqlite3_close(s.db);
    free(s.ids);
    return 0;
}
