/* Decision benchmarks: detail (first in a new context, and repeated), bulk of 100, an index
 * page of 50, a global search, and decisions per second over a realistic mix. Both sides run
 * in autocommit mode: every statement opens its own read transaction, as a web request's
 * queries usually do.
 *
 * Two sections: the reference database keyed by integers, and the same application keyed by
 * UUID text everywhere (tenantguard refdb --keys text), where both sides pass and bind text
 * keys (the baseline's statements are the same, with text parameters). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the seed's numbers (scripts/refdb.lua): user 1 owns workspace 1, entitled to tenant 1 */
#define WS 1
#define TENANT 1
#define USER 1

typedef struct side {
    sqlite3 *db; /* the baseline's own connection */
    tg_engine *eng;
    tg_value user, ws, tenant; /* USER, WS, TENANT as keys of the database's type */
    tg_value user_none, user_readonly; /* users 6 (member of nothing) and 3 (readonly) */
    tg_value tenant_other;             /* tenant 2, same workspace */
    tg_value *ids; /* in-scope policy ids of TENANT */
    size_t n_ids;
    tg_value *foreign; /* policy ids of another tenant of the workspace */
    size_t n_foreign;
    char sink[4096]; /* where the baseline copies text, as hand-written code would */
} side;

/* Binds a key as the application would: an integer, or text with its length. */
static void bind_key(sqlite3_stmt *st, int i, const tg_value *v) {
    if (v->type == TG_TEXT)
        sqlite3_bind_text(st, i, v->s, (int)v->n, SQLITE_STATIC);
    else
        sqlite3_bind_int64(st, i, v->i);
}

/* A copy of column 0 of the current row as a key: integer, or text (owned, freed by
 * free_key). */
static int column_key(sqlite3_stmt *st, tg_value *out) {
    if (sqlite3_column_type(st, 0) == SQLITE_INTEGER) {
        *out = tg_key_int(sqlite3_column_int64(st, 0));
        return 0;
    }
    const unsigned char *t = sqlite3_column_text(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    char *copy = t ? malloc(len + 1) : NULL;
    if (!copy)
        return -1;
    memcpy(copy, t, len + 1);
    *out = tg_key_text(copy);
    out->n = len;
    return 0;
}

static void free_key(tg_value *v) {
    if (v->type == TG_TEXT)
        free((char *)v->s);
    *v = (tg_value){0};
}

static void free_keys(tg_value *v, size_t n) {
    for (size_t i = 0; v && i < n; i++)
        free_key(&v[i]);
    free(v);
}

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

/* The keys column 0 of sql returns, with ?1 bound to `arg` (when not NULL). */
static tg_value *load_keys(sqlite3 *db, const char *sql, const tg_value *arg, size_t *n) {
    sqlite3_stmt *st;
    *n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "prepare failed: %s\n%s\n", sqlite3_errmsg(db), sql);
        return NULL;
    }
    if (arg)
        bind_key(st, 1, arg);
    size_t cap = 1024, k = 0;
    tg_value *keys = malloc(cap * sizeof *keys);
    while (keys && sqlite3_step(st) == SQLITE_ROW) {
        if (k == cap) {
            tg_value *more = realloc(keys, (cap *= 2) * sizeof *keys);
            if (!more) {
                free_keys(keys, k);
                keys = NULL;
                break;
            }
            keys = more;
        }
        if (column_key(st, &keys[k]) != 0) {
            free_keys(keys, k);
            keys = NULL;
            break;
        }
        k++;
    }
    sqlite3_finalize(st);
    *n = k;
    return keys;
}

/* One key: column 0 of sql's first row, with ?1 bound to the integer n. */
static int load_key(sqlite3 *db, const char *sql, int n, tg_value *out) {
    sqlite3_stmt *st;
    int rc = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int(st, 1, n);
    if (sqlite3_step(st) == SQLITE_ROW)
        rc = column_key(st, out);
    sqlite3_finalize(st);
    if (rc != 0)
        fprintf(stderr, "no row %d for: %s\n", n, sql);
    return rc;
}

typedef double (*op_fn)(side *s, int ops, uint64_t seed);

/* Alternates the two sides for cfg->rounds rounds; returns the medians in us/op. */
static void run_pair(const bench_cfg *cfg, side *s, op_fn tg, op_fn base, int ops, double *tg_us,
                     double *base_us, const char *name) {
    double *a = calloc((size_t)cfg->rounds, sizeof *a);
    double *b = calloc((size_t)cfg->rounds, sizeof *b);
    tg(s, ops / 10 + 1, 7); /* warm both: statements prepared, pages cached */
    base(s, ops / 10 + 1, 7);
    for (int r = 0; r < cfg->rounds; r++) {
        uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)r;
        for (int j = 0; j < 2; j++) { /* alternate which side runs first */
            BENCH_CG_BEGIN();
            if ((j + r) % 2 == 0)
                a[r] = tg(s, ops, seed);
            else
                b[r] = base(s, ops, seed);
            bench_cg_end(name, (j + r) % 2 == 0 ? "tenantguard" : "baseline", ops);
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
        r.id = s->ids[bench_rand(&seed) % s->n_ids];
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_detail_repeated(side *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        bind_key(base_pk, 1, &s->ids[bench_rand(&seed) % s->n_ids]);
        bind_key(base_pk, 2, &s->tenant);
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
    tg_ctx_options o = {s->user, s->ws, s->tenant, 0};
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_DETAIL;
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
        bind_key(base_join, 1, &s->user);
        bind_key(base_join, 2, &s->ws);
        bind_key(base_join, 3, &s->tenant);
        bind_key(base_join, 4, &s->ids[bench_rand(&seed) % s->n_ids]);
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

static void pick_bulk(side *s, uint64_t *seed, tg_value *ids) {
    size_t start = bench_rand(seed) % (s->n_ids - BULK);
    for (int i = 0; i < BULK; i++)
        ids[i] = s->ids[start + (size_t)i];
}

static double tg_bulk(side *s, int ops, uint64_t seed) {
    tg_value keys[BULK];
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_BULK_ACTION;
    r.ids = keys;
    r.n_ids = BULK;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        pick_bulk(s, &seed, keys);
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200 ||
            d->n_records != BULK)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_bulk_op(side *s, int ops, uint64_t seed) {
    tg_value ids[BULK];
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        pick_bulk(s, &seed, ids);
        bind_key(base_bulk, 1, &s->tenant);
        for (int k = 0; k < BULK; k++)
            bind_key(base_bulk, k + 2, &ids[k]);
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
        r.after = s->ids[bench_rand(&seed) % (s->n_ids - 60)];
        if (tg_ctx_resolve(shared_ctx, &r, &d) != TG_OK || d->status != 200 || d->n_records != 50)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_index(side *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        bind_key(base_page, 1, &s->tenant);
        bind_key(base_page, 2, &s->ids[bench_rand(&seed) % (s->n_ids - 60)]);
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
        bind_key(base_search, 1, &s->tenant);
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
        tg_ctx_options o = {s->user, s->ws, s->tenant, 0};
        tg_request r = detail;
        r.id = s->ids[bench_rand(&seed) % s->n_ids];
        if (pick < 60) {
            /* allowed */
        } else if (pick < 80) {
            r.id = s->foreign[bench_rand(&seed) % s->n_foreign]; /* another tenant's record */
        } else if (pick < 90) {
            o.user = s->user_none; /* not a member */
        } else {
            o.user = s->user_readonly; /* readonly: a row action is 403 */
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

/* The seed's keys of users, workspace and tenants, found by what the seed wrote beside them
 * (the same whatever the key type). */
static int load_seed_keys(side *s) {
    static const char *const user = "SELECT id FROM users WHERE email = 'user' || ?1 || "
                                    "'@example.test'";
    static const char *const ws = "SELECT id FROM workspaces WHERE name = 'Workspace ' || ?1";
    static const char *const tenant = "SELECT id FROM tenants WHERE name LIKE 'Tenant ' || ?1 "
                                      "|| ' (%'";
    if (load_key(s->db, user, USER, &s->user) || load_key(s->db, ws, WS, &s->ws) ||
        load_key(s->db, tenant, TENANT, &s->tenant) ||
        load_key(s->db, user, 6, &s->user_none) || load_key(s->db, user, 3, &s->user_readonly) ||
        load_key(s->db, tenant, 2, &s->tenant_other))
        return -1;
    return 0;
}

static void side_free(side *s) {
    sqlite3_finalize(base_bulk);
    sqlite3_finalize(base_page);
    sqlite3_finalize(base_search);
    sqlite3_finalize(base_pk);
    sqlite3_finalize(base_join);
    base_bulk = base_page = base_search = base_pk = base_join = NULL;
    tg_ctx_close(shared_ctx);
    shared_ctx = NULL;
    tg_engine_close(s->eng);
    sqlite3_close(s->db);
    free_keys(s->ids, s->n_ids);
    free_keys(s->foreign, s->n_foreign);
    free_key(&s->user);
    free_key(&s->ws);
    free_key(&s->tenant);
    free_key(&s->user_none);
    free_key(&s->user_readonly);
    free_key(&s->tenant_other);
}

/* One section: every decision benchmark on `db` (text: keyed by UUID text, no global search);
 * rows are named prefix + benchmark. */
static int decisions_on(const bench_cfg *cfg, const char *db, const char *prefix, int text) {
    side s = {0};
    int rc = 1;
    if (bench_open_sides(db, cfg->rules, text ? "decisions, keyed by text" : "decisions", 0,
                         &s.eng, &s.db))
        goto done;
    if (load_seed_keys(&s))
        goto done;
    /* in key order: an index page after ids[k] holds the next ones */
    s.ids = load_keys(s.db, "SELECT id FROM policies WHERE tenant_id = ?1 ORDER BY id", &s.tenant,
                      &s.n_ids);
    if (!s.ids || s.n_ids <= BULK + 60) {
        fprintf(stderr, "too few policies in tenant 1\n");
        goto done;
    }
    s.foreign = load_keys(s.db, "SELECT id FROM policies WHERE tenant_id = ?1", &s.tenant_other,
                          &s.n_foreign);
    if (!s.foreign || s.n_foreign == 0)
        goto done;
    tg_ctx_options co = {s.user, s.ws, s.tenant, 0};
    if (tg_ctx_open(s.eng, &co, &shared_ctx) != TG_OK)
        goto done;
    {
        char sql[2048];
        /* text ids: +tenant_id keeps the ids' key index (SQLite would pick the tenant index
         * and scan the tenant's rows: 11 ms for 100 ids at 100k rows). Integer ids keep the
         * statement the published figures were measured against (rowid lookups either way,
         * though the + form costs SQLite ~30% fewer instructions there too). */
        int k = snprintf(sql, sizeof sql,
                         "SELECT * FROM policies WHERE %stenant_id = ?1 AND id IN (",
                         text ? "+" : "");
        for (int i = 0; i < BULK; i++)
            k += snprintf(sql + k, sizeof sql - (size_t)k, i ? ", ?%d" : "?%d", i + 2);
        snprintf(sql + k, sizeof sql - (size_t)k, ")");
        if (prep(s.db, sql, &base_bulk))
            goto done;
    }
    if (prep(s.db,
             "SELECT * FROM policies WHERE tenant_id = ?1 AND id > ?2 ORDER BY id LIMIT 50",
             &base_page) ||
        prep(s.db,
             "SELECT * FROM entra_groups WHERE tenant_id = ?1 AND (display_name LIKE ?2 "
             "ESCAPE '\\' OR mail_nickname LIKE ?2 ESCAPE '\\') ORDER BY id LIMIT 51",
             &base_search))
        goto done;
    if (prep(s.db, "SELECT * FROM policies WHERE id = ?1 AND tenant_id = ?2", &base_pk) ||
        prep(s.db,
             "SELECT COALESCE(tm.role, wm.role) AS role, r.* FROM policies r "
             "JOIN tenants t ON t.id = r.tenant_id AND t.workspace_id = ?2 "
             "JOIN workspace_memberships wm ON wm.user_id = ?1 AND wm.workspace_id = ?2 "
             "JOIN tenant_memberships tm ON tm.user_id = ?1 AND tm.tenant_id = r.tenant_id "
             "WHERE r.id = ?4 AND r.tenant_id = ?3",
             &base_join))
        goto done;
    double a, b;
    char name[64];
#define NAME(n) (snprintf(name, sizeof name, "%s%s", prefix, n), name)
    if (bench_enabled(NAME("detail_repeated"))) {
        run_pair(cfg, &s, tg_detail_repeated, base_detail_repeated, cfg->ops, &a, &b, name);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.0x", a <= b);
    }
    if (bench_enabled(NAME("detail_first"))) {
        run_pair(cfg, &s, tg_detail_first, base_detail_first, cfg->ops, &a, &b, name);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.0x", a <= b);
    }
    if (bench_enabled(NAME("bulk_action_100"))) {
        run_pair(cfg, &s, tg_bulk, base_bulk_op, cfg->ops / 10, &a, &b, name);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.2x", a <= 1.2 * b);
    }
    if (bench_enabled(NAME("index_page_50"))) {
        run_pair(cfg, &s, tg_index, base_index, cfg->ops / 10, &a, &b, name);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.2x", a <= 1.2 * b);
    }
    if (!text && bench_enabled(NAME("global_search"))) {
        run_pair(cfg, &s, tg_search, base_search_op, cfg->ops / 20, &a, &b, name);
        bench_report(cfg, name, "autocommit", "us/op", a, b, "<=1.2x", a <= 1.2 * b);
    }
    if (bench_enabled(NAME("decisions_per_second_mix"))) {
        int counts[4] = {0};
        double *rates = calloc((size_t)cfg->rounds, sizeof *rates);
        if (!rates)
            goto done;
        for (int r = 0; r < cfg->rounds; r++)
            rates[r] = cfg->ops / tg_mix(&s, cfg->ops, 99 + (uint64_t)r, counts);
        double rate = bench_median(rates, cfg->rounds);
        free(rates);
        bench_report(cfg, name, "one core", "decisions/s", rate, 0, NULL, 1);
        printf("  (mix: %d allowed, %d missing capability, %d not found/not a member)\n",
               counts[0], counts[1], counts[2]);
    }
#undef NAME
    rc = 0;
done:
    side_free(&s);
    return rc;
}

int bench_decisions(const bench_cfg *cfg) {
    int rc = decisions_on(cfg, cfg->db, "", 0);
    if (cfg->text_db) {
        printf("-- keyed by UUID text: %s\n", cfg->text_db);
        rc |= decisions_on(cfg, cfg->text_db, "text_", 1);
    }
    return rc;
}
