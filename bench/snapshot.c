/* Read snapshots: the same group of decisions in autocommit (every statement opens and closes
 * its own read transaction) and inside one read snapshot (tg_engine_read_begin/end, or a
 * context opened with `snapshot`), tenantguard against a hand-written baseline doing the same
 * work with the same statements in autocommit and inside BEGIN ... COMMIT.
 *
 * Groups:
 *   mix50      50 decisions, each in a new context, of a realistic mix: 50% allowed detail,
 *              15% a record of another tenant, 10% a missing record, 10% not a member, 5% a
 *              tenant of another workspace, 10% a row action without the capability (403)
 *   repeat50   50 detail decisions in one context (one scope read, then lookups)
 * Both sides run with the same connection settings, printed first. TG_BENCH_CACHE_KIB and
 * TG_BENCH_MMAP (bytes) set them; unset: SQLite's defaults.
 *
 * Instruction counts per decision (callgrind), one command:
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out build-bench/bench/tenantguard_bench \
 *     --db DB --rules rules --only snapshot --rounds 1 --ops 2000 && \
 *   callgrind_annotate --inclusive=yes cg.out | grep 'snap_group_'
 * and divide each group function's inclusive Ir by the decisions it ran (printed). */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP 50
#define NOINLINE __attribute__((noinline))

enum { K_ALLOWED, K_FOREIGN, K_MISSING, K_NOT_MEMBER, K_OTHER_WS, K_NO_CAP, K_COUNT };

typedef struct req {
    int kind;
    int64_t user, ws, tenant, id;
    int row_action;
} req;

typedef struct snap_side {
    tg_engine *eng;
    sqlite3 *db;           /* the baseline's own connection, same settings */
    sqlite3_stmt *decide;  /* the baseline's one statement per decision */
    sqlite3_stmt *pk;      /* the baseline's repeated lookup */
    sqlite3_stmt *begin, *commit;
    int64_t *ids, *foreign;
    size_t n_ids, n_foreign;
    req reqs[GROUP];
    int status_tg[GROUP], status_base[GROUP];
    char sink[4096];
} snap_side;

/* The next group of requests: the same for both sides. */
static void make_group(snap_side *s, uint64_t *seed) {
    for (int i = 0; i < GROUP; i++) {
        req *r = &s->reqs[i];
        unsigned pick = (unsigned)(bench_rand(seed) % 100);
        r->user = 1;
        r->ws = 1;
        r->tenant = 1;
        r->row_action = 0;
        r->id = s->ids[bench_rand(seed) % s->n_ids];
        r->kind = pick < 50   ? K_ALLOWED
                  : pick < 65 ? K_FOREIGN
                  : pick < 75 ? K_MISSING
                  : pick < 85 ? K_NOT_MEMBER
                  : pick < 90 ? K_OTHER_WS
                              : K_NO_CAP;
        switch (r->kind) {
        case K_FOREIGN: r->id = s->foreign[bench_rand(seed) % s->n_foreign]; break;
        case K_MISSING: r->id = 900000000 + (int64_t)(bench_rand(seed) % 1000); break;
        case K_NOT_MEMBER: r->user = 6; break;
        case K_OTHER_WS: r->tenant = 5; break; /* a tenant of workspace 2 */
        case K_NO_CAP:
            r->user = 3; /* readonly: no policy.edit */
            r->row_action = 1;
            break;
        default: break;
        }
    }
}

static void read_row_at(snap_side *s, sqlite3_stmt *st, int first) {
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

static void step_tx(sqlite3_stmt *st) {
    if (sqlite3_step(st) != SQLITE_DONE)
        abort();
    sqlite3_reset(st);
}

/* ---- tenantguard ---- */

static void tg_one(snap_side *s, int i) {
    const req *q = &s->reqs[i];
    tg_ctx_options o = {tg_key_int(q->user), tg_key_int(q->ws), tg_key_int(q->tenant), 0};
    tg_request r = {0};
    r.family = "Policy";
    r.path = q->row_action ? TG_PATH_ROW_ACTION : TG_PATH_DETAIL;
    r.id = tg_key_int(q->id);
    tg_ctx *ctx;
    const tg_decision *d;
    if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK || tg_ctx_resolve(ctx, &r, &d) != TG_OK)
        abort();
    s->status_tg[i] = d->status;
    tg_ctx_close(ctx);
}

NOINLINE static void snap_group_tg_mix_autocommit(snap_side *s) {
    for (int i = 0; i < GROUP; i++)
        tg_one(s, i);
}

NOINLINE static void snap_group_tg_mix_snapshot(snap_side *s) {
    if (tg_engine_read_begin(s->eng) != TG_OK)
        abort();
    for (int i = 0; i < GROUP; i++)
        tg_one(s, i);
    if (tg_engine_read_end(s->eng) != TG_OK)
        abort();
}

static void tg_repeat(snap_side *s, int snapshot) {
    tg_ctx_options o = {tg_key_int(1), tg_key_int(1), tg_key_int(1), snapshot};
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_DETAIL;
    tg_ctx *ctx;
    const tg_decision *d;
    if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK)
        abort();
    for (int i = 0; i < GROUP; i++) {
        r.id = tg_key_int(s->ids[(size_t)(s->reqs[i].id) % s->n_ids]);
        if (tg_ctx_resolve(ctx, &r, &d) != TG_OK || d->status != 200)
            abort();
    }
    tg_ctx_close(ctx);
}

NOINLINE static void snap_group_tg_repeat_autocommit(snap_side *s) { tg_repeat(s, 0); }
NOINLINE static void snap_group_tg_repeat_snapshot(snap_side *s) { tg_repeat(s, 1); }

/* ---- the hand-written baseline ---- */

/* One statement decides: membership (with its role), the tenant's workspace, the
 * entitlement (with its role) and the record of the tenant; the capability comes from the
 * role, held in memory. */
static void base_one(snap_side *s, int i) {
    const req *q = &s->reqs[i];
    sqlite3_stmt *st = s->decide;
    sqlite3_bind_int64(st, 1, q->user);
    sqlite3_bind_int64(st, 2, q->ws);
    sqlite3_bind_int64(st, 3, q->tenant);
    sqlite3_bind_int64(st, 4, q->id);
    if (sqlite3_step(st) != SQLITE_ROW)
        abort();
    int status;
    if (sqlite3_column_type(st, 0) == SQLITE_NULL            /* not a member */
        || sqlite3_column_int64(st, 1) != q->ws              /* tenant elsewhere or missing */
        || sqlite3_column_type(st, 2) == SQLITE_NULL         /* not entitled */
        || sqlite3_column_type(st, 4) == SQLITE_NULL) {      /* no such record here */
        status = 404;
    } else {
        const char *role = (const char *)sqlite3_column_text(st, 3);
        status = q->row_action && role && strcmp(role, "readonly") == 0 ? 403 : 200;
        if (status == 200)
            read_row_at(s, st, 4);
    }
    sqlite3_reset(st);
    s->status_base[i] = status;
}

NOINLINE static void snap_group_base_mix_autocommit(snap_side *s) {
    for (int i = 0; i < GROUP; i++)
        base_one(s, i);
}

NOINLINE static void snap_group_base_mix_snapshot(snap_side *s) {
    step_tx(s->begin);
    for (int i = 0; i < GROUP; i++)
        base_one(s, i);
    step_tx(s->commit);
}

static void base_repeat(snap_side *s) {
    /* the scope once (the first decision), then the primary-key lookup with the tenant */
    for (int i = 0; i < GROUP; i++) {
        int64_t id = s->ids[(size_t)(s->reqs[i].id) % s->n_ids];
        if (i == 0) {
            req keep = s->reqs[0];
            s->reqs[0] = (req){K_ALLOWED, 1, 1, 1, id, 0};
            base_one(s, 0);
            s->reqs[0] = keep;
            if (s->status_base[0] != 200)
                abort();
            continue;
        }
        sqlite3_bind_int64(s->pk, 1, id);
        sqlite3_bind_int64(s->pk, 2, 1);
        if (sqlite3_step(s->pk) != SQLITE_ROW)
            abort();
        read_row_at(s, s->pk, 0);
        sqlite3_reset(s->pk);
    }
}

NOINLINE static void snap_group_base_repeat_autocommit(snap_side *s) { base_repeat(s); }
NOINLINE static void snap_group_base_repeat_snapshot(snap_side *s) {
    step_tx(s->begin);
    base_repeat(s);
    step_tx(s->commit);
}

typedef void (*group_fn)(snap_side *s);

/* Runs `groups` groups of fn on fresh requests from seed; returns us per decision. */
static double run_groups(snap_side *s, group_fn fn, int groups, uint64_t seed) {
    double spent = 0;
    for (int g = 0; g < groups; g++) {
        make_group(s, &seed);
        double t0 = bench_now();
        fn(s);
        spent += bench_now() - t0;
    }
    return spent * 1e6 / ((double)groups * GROUP);
}

/* The four variants of one group, alternating round after round; medians in us/decision,
 * then the median of each round's autocommit/snapshot ratio for each side (the two halves of
 * a ratio run seconds apart, so a load change on this shared machine moves both). */
static void measure(const bench_cfg *cfg, snap_side *s, group_fn fns[4], int groups,
                    double out[6]) {
    double *v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = calloc((size_t)cfg->rounds, sizeof *v[k]);
        run_groups(s, fns[k], groups / 10 + 1, 7); /* warm: statements, pages */
    }
    for (int r = 0; r < cfg->rounds; r++) {
        uint64_t seed = 0x51ed270b27a1b3c5ULL + (uint64_t)r;
        for (int j = 0; j < 4; j++) {
            int k = (j + r) % 4; /* each variant takes every position in turn */
            v[k][r] = run_groups(s, fns[k], groups, seed);
        }
    }
    double *ratio = calloc((size_t)cfg->rounds, sizeof *ratio);
    for (int side = 0; side < 2; side++) {
        for (int r = 0; r < cfg->rounds; r++)
            ratio[r] = v[2 * side][r] / v[2 * side + 1][r];
        out[4 + side] = bench_median(ratio, cfg->rounds);
    }
    free(ratio);
    for (int k = 0; k < 4; k++) {
        out[k] = bench_median(v[k], cfg->rounds);
        free(v[k]);
    }
}

/* The same decisions on both sides: every status of the mix agrees. */
static int check_agreement(snap_side *s) {
    uint64_t seed = 12345;
    for (int g = 0; g < 20; g++) {
        make_group(s, &seed);
        for (int i = 0; i < GROUP; i++) { /* not the group functions: callgrind counts them */
            tg_one(s, i);
            base_one(s, i);
        }
        for (int i = 0; i < GROUP; i++)
            if (s->status_tg[i] != s->status_base[i]) {
                fprintf(stderr, "snapshot bench: kind %d: tenantguard %d, baseline %d\n",
                        s->reqs[i].kind, s->status_tg[i], s->status_base[i]);
                return 1;
            }
    }
    return 0;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) == SQLITE_OK)
        return 0;
    fprintf(stderr, "prepare failed: %s\n%s\n", sqlite3_errmsg(db), sql);
    return 1;
}

int bench_snapshot(const bench_cfg *cfg) {
    if (!bench_enabled("snapshot"))
        return 0;
    snap_side s;
    memset(&s, 0, sizeof s);
    int rc = 1;
    if (bench_open_sides(cfg->db, cfg->rules, "snapshot", 0, &s.eng, &s.db))
        goto done;
    s.ids = bench_int64s(s.db, "SELECT id FROM policies WHERE tenant_id = 1", 0, &s.n_ids);
    s.foreign = bench_int64s(s.db, "SELECT id FROM policies WHERE tenant_id = 2", 0, &s.n_foreign);
    if (!s.ids || !s.foreign || !s.n_ids || !s.n_foreign) {
        fprintf(stderr, "snapshot bench: no policies in tenants 1 and 2\n");
        goto done;
    }
    /* LEFT JOINs from one row: every check is answered even when an earlier one fails,
     * but each is one index probe; the record is read only in the tenant asked for */
    if (prepare(s.db,
                "SELECT wm.role, t.workspace_id, tm.user_id, COALESCE(tm.role, wm.role), r.* "
                "FROM (SELECT 1) AS one "
                "LEFT JOIN workspace_memberships wm ON wm.user_id = ?1 AND wm.workspace_id = ?2 "
                "LEFT JOIN tenants t ON t.id = ?3 "
                "LEFT JOIN tenant_memberships tm ON tm.user_id = ?1 AND tm.tenant_id = ?3 "
                "LEFT JOIN policies r ON r.id = ?4 AND r.tenant_id = ?3",
                &s.decide) ||
        prepare(s.db, "SELECT * FROM policies WHERE id = ?1 AND tenant_id = ?2", &s.pk) ||
        prepare(s.db, "BEGIN", &s.begin) || prepare(s.db, "COMMIT", &s.commit))
        goto done;
    if (check_agreement(&s))
        goto done;
    int groups = cfg->ops / GROUP > 0 ? cfg->ops / GROUP : 1;
    double mix[6], rep[6];
    group_fn mix_fns[4] = {snap_group_tg_mix_autocommit, snap_group_tg_mix_snapshot,
                           snap_group_base_mix_autocommit, snap_group_base_mix_snapshot};
    group_fn rep_fns[4] = {snap_group_tg_repeat_autocommit, snap_group_tg_repeat_snapshot,
                           snap_group_base_repeat_autocommit, snap_group_base_repeat_snapshot};
    measure(cfg, &s, mix_fns, groups, mix);
    measure(cfg, &s, rep_fns, groups, rep);
    printf("  (%d groups of %d decisions per round and variant; each snap_group_* function ran "
           "%d times: %d decisions)\n",
           groups, GROUP, groups / 10 + 1 + cfg->rounds * groups,
           (groups / 10 + 1 + cfg->rounds * groups) * GROUP);
    bench_report(cfg, "snapshot_mix50", "autocommit", "us/decision", mix[0], mix[2], NULL, 1);
    bench_report(cfg, "snapshot_mix50", "snapshot", "us/decision", mix[1], mix[3], NULL, 1);
    bench_report(cfg, "snapshot_mix50_speedup", "tenantguard", "x", mix[4], 0, ">=1.8x",
                 mix[4] >= 1.8);
    bench_report(cfg, "snapshot_mix50_speedup", "baseline", "x", mix[5], 0, NULL, 1);
    bench_report(cfg, "snapshot_repeat50", "autocommit", "us/decision", rep[0], rep[2], NULL, 1);
    bench_report(cfg, "snapshot_repeat50", "snapshot", "us/decision", rep[1], rep[3], NULL, 1);
    bench_report(cfg, "snapshot_repeat50_speedup", "tenantguard", "x", rep[4], 0, ">=1.8x",
                 rep[4] >= 1.8);
    bench_report(cfg, "snapshot_repeat50_speedup", "baseline", "x", rep[5], 0, NULL, 1);
    rc = 0;
done:
    sqlite3_finalize(s.decide);
    sqlite3_finalize(s.pk);
    sqlite3_finalize(s.begin);
    sqlite3_finalize(s.commit);
    sqlite3_close(s.db);
    tg_engine_close(s.eng);
    free(s.ids);
    free(s.foreign);
    return rc;
}
