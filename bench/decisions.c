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
    int64_t *foreign; /* policy ids of another tenant of the workspace */
    size_t n_foreign;
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
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        r.id = tg_key_int(s->ids[bench_rand(&seed) % s->n_ids]);
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
    tg_ctx_options o = {tg_key_int(USER), tg_key_int(WS), tg_key_int(TENANT), 0};
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_DETAIL;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        tg_ctx *ctx;
        if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK)
            abort();
        r.id = tg_key_int(s->ids[bench_rand(&seed) % s->n_ids]);
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

/* ---- bulk_action of 100 ids ---- */

#define BULK 100
static sqlite3_stmt *base_bulk;

static void pick_bulk(side *s, uint64_t *seed, int64_t *ids) {
    size_t start = bench_rand(seed) % (s->n_ids - BULK);
    for (int i = 0; i < BULK; i++)
        ids[i] = s->ids[start + (size_t)i];
}

static double tg_bulk(side *s, int ops, uint64_t seed) {
    int64_t ids[BULK];
    tg_value keys[BULK];
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_BULK_ACTION;
    r.ids = keys;
    r.n_ids = BULK;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        pick_bulk(s, &seed, ids);
        for (int k = 0; k < BULK; k++)
            keys[k] = tg_key_int(ids[k]);
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200 ||
            d->n_records != BULK)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_bulk_op(side *s, int ops, uint64_t seed) {
    int64_t ids[BULK];
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        pick_bulk(s, &seed, ids);
        sqlite3_bind_int64(base_bulk, 1, TENANT);
        for (int k = 0; k < BULK; k++)
            sqlite3_bind_int64(base_bulk, k + 2, ids[k]);
        int n = 0;
        while (sqlite3_step(base_bulk) == SQLITE_ROW) {
            read_row(s, base_bulk);
            n++;
        }
        sqlite3_reset(base_bulk);
        if (n != BULK) /* every id must be in scope: all or nothing */
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* ---- index page of 50 ---- */

static sqlite3_stmt *base_page;

static double tg_index(side *s, int ops, uint64_t seed) {
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_INDEX;
    r.limit = 50;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        r.after = tg_key_int(s->ids[bench_rand(&seed) % (s->n_ids - 60)]);
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200 || d->n_records != 50)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_index(side *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        sqlite3_bind_int64(base_page, 1, TENANT);
        sqlite3_bind_int64(base_page, 2, s->ids[bench_rand(&seed) % (s->n_ids - 60)]);
        int n = 0;
        while (sqlite3_step(base_page) == SQLITE_ROW) {
            read_row(s, base_page);
            n++;
        }
        sqlite3_reset(base_page);
        if (n != 50)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* ---- global search ---- */

static sqlite3_stmt *base_search;
static const char *const queries[] = {"Admins 1", "Sales 2", "Helpdesk_3", "group-4"};

static double tg_search(side *s, int ops, uint64_t seed) {
    (void)s;
    tg_request r = {0};
    r.family = "EntraGroup";
    r.path = TG_PATH_GLOBAL_SEARCH;
    r.limit = 50;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        r.query = queries[bench_rand(&seed) % 4];
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_search_op(side *s, int ops, uint64_t seed) {
    char pattern[128];
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        const char *q = queries[bench_rand(&seed) % 4];
        /* escaped as the library does: % _ and \ taken literally */
        size_t k = 0;
        pattern[k++] = '%';
        for (const char *p = q; *p && k < sizeof pattern - 3; p++) {
            if (*p == '%' || *p == '_' || *p == '\\')
                pattern[k++] = '\\';
            pattern[k++] = *p;
        }
        pattern[k++] = '%';
        pattern[k] = 0;
        sqlite3_bind_int64(base_search, 1, TENANT);
        sqlite3_bind_text(base_search, 2, pattern, (int)k, SQLITE_STATIC);
        while (sqlite3_step(base_search) == SQLITE_ROW)
            read_row(s, base_search);
        sqlite3_reset(base_search);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* ---- decisions per second over a realistic mix, each a new context ---- */

static double tg_mix(side *s, int ops, uint64_t seed, int counts[4]) {
    tg_request detail = {0};
    detail.family = "Policy";
    detail.path = TG_PATH_DETAIL;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        unsigned pick = (unsigned)(bench_rand(&seed) % 100);
        tg_ctx_options o = {tg_key_int(USER), tg_key_int(WS), tg_key_int(TENANT), 0};
        tg_request r = detail;
        r.id = tg_key_int(s->ids[bench_rand(&seed) % s->n_ids]);
        if (pick < 60) {
            /* allowed */
        } else if (pick < 80) {
            r.id = tg_key_int(s->foreign[bench_rand(&seed) % s->n_foreign]); /* another tenant's record */
        } else if (pick < 90) {
            o.user = tg_key_int(6); /* not a member */
        } else {
            o.user = tg_key_int(3); /* readonly: a row action is 403 */
            r.path = TG_PATH_ROW_ACTION;
        }
        tg_ctx *ctx;
        if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK || tg_ctx_resolve(ctx, &r, &d) != TG_OK)
            abort();
        counts[d->status == 200 ? 0 : d->status == 403 ? 1 : 2]++;
        tg_ctx_close(ctx);
    }
    return bench_now() - t0;
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
    s.foreign = load_ids(s.db, "SELECT id FROM policies WHERE tenant_id = 2", &s.n_foreign);
    tg_ctx_options co = {tg_key_int(USER), tg_key_int(WS), tg_key_int(TENANT), 0};
    if (tg_ctx_open(s.eng, &co, &shared_ctx) != TG_OK)
        return 1;
    {
        char sql[2048];
        int k = snprintf(sql, sizeof sql, "SELECT * FROM policies WHERE tenant_id = ?1 AND id IN (");
        for (int i = 0; i < BULK; i++)
            k += snprintf(sql + k, sizeof sql - (size_t)k, i ? ", ?%d" : "?%d", i + 2);
        snprintf(sql + k, sizeof sql - (size_t)k, ")");
        if (prep(s.db, sql, &base_bulk))
            return 1;
    }
    if (prep(s.db,
             "SELECT * FROM policies WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT 50",
             &base_page) ||
        prep(s.db,
             "SELECT * FROM entra_groups WHERE tenant_id = ?1 AND (display_name LIKE ?2 "
             "ESCAPE '\\' OR mail_nickname LIKE ?2 ESCAPE '\\') ORDER BY id LIMIT 51",
             &base_search))
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
    if (bench_enabled("bulk_action_100")) {
        run_pair(cfg, &s, tg_bulk, base_bulk_op, cfg->ops / 10, &a, &b);
        bench_report(cfg, "bulk_action_100", "autocommit", "us/op", a, b, "<=1.2x", a <= 1.2 * b);
    }
    if (bench_enabled("index_page_50")) {
        run_pair(cfg, &s, tg_index, base_index, cfg->ops / 10, &a, &b);
        bench_report(cfg, "index_page_50", "autocommit", "us/op", a, b, "<=1.2x", a <= 1.2 * b);
    }
    if (bench_enabled("global_search")) {
        run_pair(cfg, &s, tg_search, base_search_op, cfg->ops / 20, &a, &b);
        bench_report(cfg, "global_search", "autocommit", "us/op", a, b, "<=1.2x", a <= 1.2 * b);
    }
    if (bench_enabled("decision_mix")) {
        int counts[4] = {0};
        double *rates = calloc((size_t)cfg->rounds, sizeof *rates);
        for (int r = 0; r < cfg->rounds; r++)
            rates[r] = cfg->ops / tg_mix(&s, cfg->ops, 99 + (uint64_t)r, counts);
        double rate = bench_median(rates, cfg->rounds);
        free(rates);
        char mode[64];
        snprintf(mode, sizeof mode, "one core");
        bench_report(cfg, "decisions_per_second_mix", mode, "decisions/s", rate, 0, NULL, 1);
        printf("  (mix: %d allowed, %d missing capability, %d not found/not a member)\n",
               counts[0], counts[1], counts[2]);
    }
    sqlite3_finalize(base_bulk);
    sqlite3_finalize(base_page);
    sqlite3_finalize(base_search);
    sqlite3_finalize(base_pk);
    sqlite3_finalize(base_join);
    tg_ctx_close(shared_ctx);
    tg_engine_close(s.eng);
    sqlite3_close(s.db);
    free(s.ids);
    free(s.foreign);
    return 0;
}
