/* The PostgreSQL section (--pg-uri URI): tenantguard on a PostgreSQL copy of the reference
 * database (tenantguard pg-load) against a hand-written libpq baseline doing the same work,
 * in one process, alternating round after round; medians. ./run.sh bench-pg runs it on a
 * throwaway cluster over its Unix socket, as the application's role (tg_app).
 *
 * The baseline is what a careful engineer writes with libpq: every statement prepared once
 * per connection (PQprepare), one PQexecPrepared per decision, parameters and results in
 * text format (as tenantguard's backend sends them), every column of a served row read out
 * of the result (integers parsed, text copied) before PQclear:
 *
 *   first decision of a context (membership, tenant in the workspace, entitlement, record):
 *     SELECT COALESCE(tm.role, wm.role), r.* FROM workspace_memberships wm
 *     JOIN tenants t ON t.id = $3 AND t.workspace_id = $2
 *     JOIN tenant_memberships tm ON tm.user_id = $1 AND tm.tenant_id = $3
 *     JOIN policies r ON r.id = $4 AND r.tenant_id = $3
 *     WHERE wm.user_id = $1 AND wm.workspace_id = $2
 *   no row: 404; a row: 200 or 403 by the role (held in memory, as the app's code would);
 *   repeated decision: SELECT * FROM policies WHERE id = $1 AND tenant_id = $2
 *   bulk of 100 ids: SELECT * FROM policies WHERE id = ANY($1::bigint[]) AND tenant_id = $2
 *     (all or nothing: 100 rows, or the action is refused)
 *
 * Round trips are counted, not assumed: this file interposes send(2) for the whole process
 * (libpq writes to the server's socket only with send; a synchronous command is one write
 * then a wait for the answer), so "round trips per decision" is the number of writes to the
 * server per decision, both sides counted the same way, after warming (statements already
 * prepared).
 *
 * Decisions per second: 1, 2 and 8 threads, each with its own engine and its own baseline
 * connection (so 1, 2 and 8 server backends per side), running first decisions of the mix
 * of decisions.c (60% allowed, 20% another tenant's record, 10% not a member, 10% a
 * readonly user's row action: 403). */
#define _GNU_SOURCE /* RTLD_NEXT */
#include "bench.h"

#include <libpq-fe.h>

#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- round trips: every write libpq makes to a server ---- */

static ssize_t (*real_send)(int, const void *, size_t, int);
static _Thread_local unsigned long sends;

/* exported (the build hides symbols by default), so that libpq's calls come here */
__attribute__((visibility("default"))) ssize_t send(int fd, const void *buf, size_t n,
                                                    int flags) {
    if (!real_send)
        *(void **)&real_send = dlsym(RTLD_NEXT, "send");
    sends++;
    return real_send(fd, buf, n, flags);
}

/* the seed's numbers (scripts/refdb.lua), as in kinds.c */
#define WS 1
#define TENANT 1
#define TENANT_OTHER 2 /* same workspace */
#define USER 1          /* owner */
#define USER_READONLY 3
#define USER_NONE 6 /* member of nothing */
#define BULK 100
#define OID_INT8 20

static const char *const first_sql =
    "SELECT COALESCE(tm.role, wm.role), r.* FROM workspace_memberships wm "
    "JOIN tenants t ON t.id = $3 AND t.workspace_id = $2 "
    "JOIN tenant_memberships tm ON tm.user_id = $1 AND tm.tenant_id = $3 "
    "JOIN policies r ON r.id = $4 AND r.tenant_id = $3 "
    "WHERE wm.user_id = $1 AND wm.workspace_id = $2";
static const char *const pk_sql = "SELECT * FROM policies WHERE id = $1 AND tenant_id = $2";
static const char *const bulk_sql =
    "SELECT * FROM policies WHERE id = ANY($1::bigint[]) AND tenant_id = $2";
/* tenantguard's own bulk statement (the resolver's, as the server log shows it: every
 * column, and for a row of another tenant that tenant's workspace, to give the refusal its
 * reason), with the ids as one array parameter: what the fix would send */
static const char *const tg_shape_any_sql =
    "SELECT r.\"id\", r.\"tenant_id\", r.\"display_name\", r.\"policy_type\", "
    "r.\"platform\", r.\"inventory_item_id\", r.\"updated_at\", r.\"created_at\", "
    "CASE WHEN r.\"tenant_id\" IS NOT DISTINCT FROM $2 THEN NULL ELSE (SELECT "
    "tg_ft.\"workspace_id\" FROM \"tenants\" AS tg_ft WHERE tg_ft.\"id\" = r.\"tenant_id\") END "
    "FROM \"policies\" AS r WHERE r.\"id\" = ANY($1::bigint[]) ORDER BY r.\"id\"";
/* what tenantguard's resolver does today (chunks of 64 ids in an IN list), for comparison */
#define CHUNK 64

typedef struct pside {
    const char *uri, *rules;
    tg_engine *eng;
    PGconn *conn;
    tg_ctx *shared; /* the repeated and bulk benchmarks' context */
    int tg_pid, base_pid; /* the server backends of the two sides (0: unknown) */
    const int64_t *ids, *foreign; /* policies of TENANT (in id order) and of TENANT_OTHER */
    size_t n_ids, n_foreign;
    char sink[4096];
} pside;

typedef struct preq {
    int64_t user, id;
    int row_action, status; /* the expected status */
} preq;

static int prepare(PGconn *c, const char *name, const char *sql, int n, const Oid *types) {
    PGresult *r = PQprepare(c, name, sql, n, types);
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "prepare %s: %s", name, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : 1;
}

static int prepare_in_chunks(PGconn *c) {
    char sql[1024];
    int k = snprintf(sql, sizeof sql, "SELECT * FROM policies WHERE tenant_id = $1 AND id IN (");
    Oid types[CHUNK + 1];
    for (int i = 0; i <= CHUNK; i++)
        types[i] = OID_INT8;
    for (int i = 0; i < CHUNK; i++)
        k += snprintf(sql + k, sizeof sql - (size_t)k, i ? ", $%d" : "$%d", i + 2);
    snprintf(sql + k, sizeof sql - (size_t)k, ")");
    return prepare(c, "b_in64", sql, CHUNK + 1, types);
}

static void pside_close(pside *s) {
    tg_ctx_close(s->shared);
    tg_engine_close(s->eng);
    PQfinish(s->conn);
    s->shared = NULL;
    s->eng = NULL;
    s->conn = NULL;
}

/* Opens both sides on s->uri: the engine, the baseline's connection and its statements. */
static int pside_open(pside *s) {
    tg_open_options o = {0};
    o.db = s->uri;
    o.rules = s->rules;
    const char *dist = getenv("TG_BENCH_DISTRIBUTED"); /* 1: every read by id pins the tenant */
    o.distributed = dist && atoi(dist) == 1 ? 1 : 0;
    if (tg_engine_open(&o, &s->eng) != TG_OK) {
        fprintf(stderr, "tenantguard on PostgreSQL: %s\n", tg_engine_errmsg(s->eng));
        return 1;
    }
    s->conn = PQconnectdb(s->uri);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        fprintf(stderr, "baseline connection: %s", PQerrorMessage(s->conn));
        return 1;
    }
    const Oid t4[4] = {OID_INT8, OID_INT8, OID_INT8, OID_INT8};
    const Oid bulk_t[2] = {1016 /* bigint[] */, OID_INT8};
    if (prepare(s->conn, "b_first", first_sql, 4, t4) || prepare(s->conn, "b_pk", pk_sql, 2, t4) ||
        prepare(s->conn, "b_bulk", bulk_sql, 2, bulk_t) || prepare_in_chunks(s->conn) ||
        prepare(s->conn, "b_tg_any", tg_shape_any_sql, 2, bulk_t))
        return 1;
    tg_ctx_options co = {tg_key_int(USER), tg_key_int(WS), tg_key_int(TENANT), 0};
    return tg_ctx_open(s->eng, &co, &s->shared) == TG_OK ? 0 : 1;
}

/* The integer column 0 of every row of sql with $1 = arg; malloc'd. */
static int64_t *load_ids(PGconn *c, const char *sql, int64_t arg, size_t *n) {
    char a[24];
    const char *v[1] = {a};
    snprintf(a, sizeof a, "%" PRId64, arg);
    PGresult *r = PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
    *n = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        return NULL;
    }
    int rows = PQntuples(r);
    int64_t *ids = malloc((size_t)(rows ? rows : 1) * sizeof *ids);
    for (int i = 0; ids && i < rows; i++)
        ids[i] = strtoll(PQgetvalue(r, i, 0), NULL, 10);
    *n = ids ? (size_t)rows : 0;
    PQclear(r);
    return ids;
}

/* Every column of row `row` from column `first` on, as an application reads them: integers
 * parsed, everything else copied out of the result before it is cleared. */
static void read_row(pside *s, const PGresult *r, int row, int first) {
    int n = PQnfields(r);
    size_t at = 0;
    for (int c = first; c < n; c++) {
        if (PQgetisnull(r, row, c))
            continue;
        const char *v = PQgetvalue(r, row, c);
        if (PQftype(r, c) == OID_INT8) {
            (void)strtoll(v, NULL, 10);
            continue;
        }
        size_t len = (size_t)PQgetlength(r, row, c);
        if (at + len + 1 < sizeof s->sink) {
            memcpy(s->sink + at, v, len + 1);
            at += len + 1;
        }
    }
}

/* ---- the decisions of both sides ---- */

static int tg_first(pside *s, const preq *q) {
    tg_ctx_options o = {tg_key_int(q->user), tg_key_int(WS), tg_key_int(TENANT), 0};
    tg_request r = {0};
    r.family = "Policy";
    r.path = q->row_action ? TG_PATH_ROW_ACTION : TG_PATH_DETAIL;
    r.id = tg_key_int(q->id);
    tg_ctx *ctx;
    const tg_decision *d;
    if (tg_ctx_open(s->eng, &o, &ctx) != TG_OK || tg_ctx_resolve(ctx, &r, &d) != TG_OK) {
        fprintf(stderr, "tenantguard: %s\n", tg_engine_errmsg(s->eng));
        abort();
    }
    int status = d->status;
    tg_ctx_close(ctx);
    return status;
}

static int base_first(pside *s, const preq *q) {
    char a[4][24];
    const char *v[4] = {a[0], a[1], a[2], a[3]};
    snprintf(a[0], sizeof a[0], "%" PRId64, q->user);
    snprintf(a[1], sizeof a[1], "%d", WS);
    snprintf(a[2], sizeof a[2], "%d", TENANT);
    snprintf(a[3], sizeof a[3], "%" PRId64, q->id);
    PGresult *r = PQexecPrepared(s->conn, "b_first", 4, v, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "baseline: %s", PQerrorMessage(s->conn));
        abort();
    }
    int status = 404;
    if (PQntuples(r) == 1) {
        const char *role = PQgetvalue(r, 0, 0);
        /* the app's role table: readonly may view, operator and owner may act too */
        int view = strcmp(role, "readonly") == 0 || strcmp(role, "operator") == 0 ||
                   strcmp(role, "owner") == 0;
        int edit = view && strcmp(role, "readonly") != 0;
        status = (q->row_action ? edit : view) ? 200 : 403;
        if (status == 200)
            read_row(s, r, 0, 1);
    }
    PQclear(r);
    return status;
}

/* a request of the mix: 60% allowed, 20% another tenant's record, 10% not a member, 10% a
 * readonly user's row action */
static void mix_req(const pside *s, uint64_t *seed, preq *q) {
    unsigned pick = (unsigned)(bench_rand(seed) % 100);
    *q = (preq){USER, s->ids[bench_rand(seed) % s->n_ids], 0, 200};
    if (pick >= 90) {
        q->user = USER_READONLY;
        q->row_action = 1;
        q->status = 403;
    } else if (pick >= 80) {
        q->user = USER_NONE;
        q->status = 404;
    } else if (pick >= 60) {
        q->id = s->foreign[bench_rand(seed) % s->n_foreign];
        q->status = 404;
    }
}

typedef double (*op_fn)(pside *s, int ops, uint64_t seed);

static double tg_detail_first(pside *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        preq q = {USER, s->ids[bench_rand(&seed) % s->n_ids], 0, 200};
        if (tg_first(s, &q) != 200)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_detail_first(pside *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        preq q = {USER, s->ids[bench_rand(&seed) % s->n_ids], 0, 200};
        if (base_first(s, &q) != 200)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double tg_mix(pside *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        preq q;
        mix_req(s, &seed, &q);
        if (tg_first(s, &q) != q.status)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_mix(pside *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        preq q;
        mix_req(s, &seed, &q);
        if (base_first(s, &q) != q.status)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double tg_repeated(pside *s, int ops, uint64_t seed) {
    tg_request r = {0};
    r.family = "Policy";
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

static double base_repeated(pside *s, int ops, uint64_t seed) {
    char a[2][24];
    const char *v[2] = {a[0], a[1]};
    snprintf(a[1], sizeof a[1], "%d", TENANT);
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        snprintf(a[0], sizeof a[0], "%" PRId64, s->ids[bench_rand(&seed) % s->n_ids]);
        PGresult *r = PQexecPrepared(s->conn, "b_pk", 2, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            abort();
        read_row(s, r, 0, 0);
        PQclear(r);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* 100 consecutive in-scope ids (so an index page's neighbours: distinct, in the tenant) */
static size_t pick_bulk(const pside *s, uint64_t *seed) {
    return bench_rand(seed) % (s->n_ids - BULK);
}

static double tg_bulk(pside *s, int ops, uint64_t seed) {
    tg_value keys[BULK];
    tg_request r = {0};
    r.family = "Policy";
    r.path = TG_PATH_BULK_ACTION;
    r.ids = keys;
    r.n_ids = BULK;
    const tg_decision *d;
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        size_t at = pick_bulk(s, &seed);
        for (int k = 0; k < BULK; k++)
            keys[k] = tg_key_int(s->ids[at + (size_t)k]);
        if (tg_ctx_resolve(s->shared, &r, &d) != TG_OK || d->status != 200 ||
            d->n_records != BULK)
            abort();
    }
    return (bench_now() - t0) * 1e6 / ops;
}

/* the ids as a bigint[] literal, "{1,2,3}" */
static void array_text(const int64_t *ids, int n, char *out, size_t cap) {
    size_t k = 0;
    out[k++] = '{';
    for (int i = 0; i < n && k < cap - 24; i++)
        k += (size_t)snprintf(out + k, cap - k, i ? ",%" PRId64 : "%" PRId64, ids[i]);
    out[k++] = '}';
    out[k] = 0;
}

static double array_bulk(pside *s, const char *stmt, int ops, uint64_t seed) {
    char arr[BULK * 21 + 8], tenant[24];
    const char *v[2] = {arr, tenant};
    snprintf(tenant, sizeof tenant, "%d", TENANT);
    double t0 = bench_now();
    for (int i = 0; i < ops; i++) {
        array_text(s->ids + pick_bulk(s, &seed), BULK, arr, sizeof arr);
        PGresult *r = PQexecPrepared(s->conn, stmt, 2, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != BULK) /* all or nothing */
            abort();
        for (int k = 0; k < BULK; k++)
            read_row(s, r, k, 0);
        PQclear(r);
    }
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_bulk(pside *s, int ops, uint64_t seed) {
    return array_bulk(s, "b_bulk", ops, seed);
}

static double base_bulk_tg_shape_any(pside *s, int ops, uint64_t seed) {
    return array_bulk(s, "b_tg_any", ops, seed);
}

/* For comparison: the baseline doing what tenantguard's resolver does today, the ids in
 * IN lists of 64 (two statements for 100 ids, the second padded by repeating an id), either
 * one after the other (two round trips) or in libpq's pipeline mode (one). */
static int in_chunks(pside *s, const int64_t *ids, int pipelined) {
    char a[CHUNK + 1][24];
    const char *v[CHUNK + 1];
    int rows = 0, sent = 0;
    for (int i = 0; i <= CHUNK; i++)
        v[i] = a[i];
    snprintf(a[0], sizeof a[0], "%d", TENANT);
    if (pipelined && !PQenterPipelineMode(s->conn))
        abort();
    for (int at = 0; at < BULK; at += CHUNK) {
        for (int k = 0; k < CHUNK; k++)
            snprintf(a[k + 1], sizeof a[k + 1], "%" PRId64, ids[at + k < BULK ? at + k : at]);
        if (!pipelined) {
            PGresult *r = PQexecPrepared(s->conn, "b_in64", CHUNK + 1, v, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_TUPLES_OK)
                abort();
            for (int k = 0; k < PQntuples(r); k++)
                read_row(s, r, k, 0);
            rows += PQntuples(r);
            PQclear(r);
        } else if (!PQsendQueryPrepared(s->conn, "b_in64", CHUNK + 1, v, NULL, NULL, 0)) {
            abort();
        } else {
            sent++;
        }
    }
    if (pipelined) {
        if (!PQpipelineSync(s->conn))
            abort();
        for (int i = 0; i < sent; i++) {
            PGresult *r;
            while ((r = PQgetResult(s->conn)) != NULL) {
                if (PQresultStatus(r) != PGRES_TUPLES_OK)
                    abort();
                for (int k = 0; k < PQntuples(r); k++)
                    read_row(s, r, k, 0);
                rows += PQntuples(r);
                PQclear(r);
            }
        }
        PGresult *r = PQgetResult(s->conn);
        if (PQresultStatus(r) != PGRES_PIPELINE_SYNC)
            abort();
        PQclear(r);
        if (!PQexitPipelineMode(s->conn))
            abort();
    }
    return rows;
}

static double base_bulk_in64(pside *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++)
        if (in_chunks(s, s->ids + pick_bulk(s, &seed), 0) != BULK)
            abort();
    return (bench_now() - t0) * 1e6 / ops;
}

static double base_bulk_in64_pipelined(pside *s, int ops, uint64_t seed) {
    double t0 = bench_now();
    for (int i = 0; i < ops; i++)
        if (in_chunks(s, s->ids + pick_bulk(s, &seed), 1) != BULK)
            abort();
    return (bench_now() - t0) * 1e6 / ops;
}

/* ---- harness ---- */

/* CPU time a server process has run, in seconds (schedstat: nanoseconds on the CPU), or -1. */
static double server_cpu(int pid) {
    char path[64];
    unsigned long long ns = 0;
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = pid > 0 ? fopen(path, "r") : NULL;
    int ok = f && fscanf(f, "%llu", &ns) == 1;
    if (f)
        fclose(f);
    return ok ? (double)ns / 1e9 : -1;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One measured run: wall time per op; this process's CPU time per op in cpu_us[0] (the
 * client's share: the library or the baseline's code, and libpq) and the side's server
 * backend's in cpu_us[1]. CPU times hold up on a loaded machine where wall times do not. */
static double timed(pside *s, op_fn fn, int pid, int ops, uint64_t seed, double cpu_us[2]) {
    double c0 = cpu_now(), s0 = server_cpu(pid);
    double us = fn(s, ops, seed);
    cpu_us[0] = (cpu_now() - c0) * 1e6 / ops;
    cpu_us[1] = s0 < 0 ? 0 : (server_cpu(pid) - s0) * 1e6 / ops;
    return us;
}

/* Medians of one pair's rounds, us/op: wall time, client CPU, server CPU (each [0]
 * tenantguard, [1] the baseline). */
typedef struct pair_times {
    double wall[2], client[2], server[2];
} pair_times;

/* Alternates the two sides for cfg->rounds rounds. */
static void run_pair(const bench_cfg *cfg, pside *s, op_fn tg, op_fn base, int ops,
                     pair_times *t) {
    int n = cfg->rounds;
    double *v = calloc((size_t)n * 6, sizeof *v); /* wall, client, server x 2 sides */
    if (!v)
        abort();
    tg(s, ops / 10 + 1, 7); /* warm both: statements prepared, pages in shared buffers */
    base(s, ops / 10 + 1, 7);
    for (int r = 0; r < n; r++) {
        uint64_t seed = 0x9e3779b97f4a7c15ULL + (uint64_t)r;
        for (int j = 0; j < 2; j++) {
            int side = (j + r) % 2; /* alternate which side runs first */
            double cpu[2];
            v[side * n + r] = timed(s, side ? base : tg, side ? s->base_pid : s->tg_pid, ops,
                                    seed, cpu);
            v[(2 + side) * n + r] = cpu[0];
            v[(4 + side) * n + r] = cpu[1];
        }
    }
    for (int side = 0; side < 2; side++) {
        t->wall[side] = bench_median(v + side * n, n);
        t->client[side] = bench_median(v + (2 + side) * n, n);
        t->server[side] = bench_median(v + (4 + side) * n, n);
    }
    free(v);
}

/* The wall-time row with its target, then the CPU rows (no target): client, server, and
 * both together, the firmer figure on a loaded machine. */
static void report_pair(const bench_cfg *cfg, const char *name, const pair_times *t,
                        double limit) {
    char target[16], row[96];
    snprintf(target, sizeof target, "<=%.1fx", limit);
    bench_report(cfg, name, "autocommit", "us/op", t->wall[0], t->wall[1], limit ? target : NULL,
                 t->wall[0] <= limit * t->wall[1]);
    snprintf(row, sizeof row, "%s_cpu_client", name);
    bench_report(cfg, row, "autocommit", "us/op", t->client[0], t->client[1], NULL, 1);
    if (t->server[0] > 0 && t->server[1] > 0) {
        snprintf(row, sizeof row, "%s_cpu_server", name);
        bench_report(cfg, row, "autocommit", "us/op", t->server[0], t->server[1], NULL, 1);
        snprintf(row, sizeof row, "%s_cpu_total", name);
        bench_report(cfg, row, "autocommit", "us/op", t->client[0] + t->server[0],
                     t->client[1] + t->server[1], NULL, 1);
    }
}

/* writes to the server per op of fn, after a warming run */
static double round_trips(pside *s, op_fn fn, int ops) {
    fn(s, 10, 3);
    unsigned long before = sends;
    fn(s, ops, 5);
    return (double)(sends - before) / ops;
}

static void report_trips(const bench_cfg *cfg, pside *s, const char *bench, op_fn tg, op_fn base,
                         int ops) {
    char name[96];
    snprintf(name, sizeof name, "%s_round_trips", bench);
    double a = round_trips(s, tg, ops), b = round_trips(s, base, ops);
    bench_report(cfg, name, "per op", "round trips", a, b, "<=1", a <= 1.0);
}

/* ---- decisions per second, 1..8 connections per side ---- */

typedef struct pworker {
    pside s;
    int baseline, ops;
    uint64_t seed;
    pthread_barrier_t *start;
    int failed;
} pworker;

static void *pwork(void *arg) {
    pworker *w = arg;
    int ok = pside_open(&w->s) == 0;
    if (ok) /* warm this connection: statements prepared */
        (w->baseline ? base_mix : tg_mix)(&w->s, 200, 1);
    w->failed = !ok;
    pthread_barrier_wait(w->start);
    if (ok)
        (w->baseline ? base_mix : tg_mix)(&w->s, w->ops, w->seed);
    pthread_barrier_wait(w->start);
    return NULL;
}

static double run_threads(const pside *proto, int n, int baseline, int ops, uint64_t seed) {
    pthread_barrier_t start;
    pthread_t *th = calloc((size_t)n, sizeof *th);
    pworker *w = calloc((size_t)n, sizeof *w);
    if (!th || !w || pthread_barrier_init(&start, NULL, (unsigned)n + 1) != 0)
        abort();
    for (int i = 0; i < n; i++) {
        w[i].s = *proto;
        w[i].s.eng = NULL;
        w[i].s.conn = NULL;
        w[i].s.shared = NULL;
        w[i].baseline = baseline;
        w[i].ops = ops;
        w[i].seed = seed + (uint64_t)i * 7919;
        w[i].start = &start;
        if (pthread_create(&th[i], NULL, pwork, &w[i]) != 0)
            abort();
    }
    pthread_barrier_wait(&start); /* every thread has its connection open and warm */
    double t0 = bench_now();
    pthread_barrier_wait(&start); /* every thread is done */
    double rate = (double)n * ops / (bench_now() - t0);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        failed |= w[i].failed;
        pside_close(&w[i].s);
    }
    pthread_barrier_destroy(&start);
    free(th);
    free(w);
    return failed ? 0 : rate;
}

static int threads(const bench_cfg *cfg, const pside *proto) {
    static const int counts[] = {1, 2, 8};
    int rounds = cfg->rounds;
    for (size_t c = 0; c < sizeof counts / sizeof *counts; c++) {
        int n = counts[c];
        double *v[2] = {calloc((size_t)rounds, sizeof(double)),
                        calloc((size_t)rounds, sizeof(double))};
        if (!v[0] || !v[1])
            abort();
        for (int r = 0; r < rounds; r++)
            for (int j = 0; j < 2; j++) {
                int side = (j + r) % 2; /* alternate which side runs first */
                /* the same total work whatever the count: ops decisions, split */
                v[side][r] = run_threads(proto, n, side, cfg->ops / n, 99 + (uint64_t)r);
                if (v[side][r] == 0) {
                    free(v[0]);
                    free(v[1]);
                    return 1;
                }
            }
        double a = bench_median(v[0], rounds), b = bench_median(v[1], rounds);
        free(v[0]);
        free(v[1]);
        char mode[32];
        snprintf(mode, sizeof mode, "%d conn%s", n, n > 1 ? "s" : "");
        bench_report(cfg, "pg_decisions_per_second_mix", mode, "decisions/s", a, b, NULL, 1);
    }
    printf("  (each connection its own thread, engine and baseline connection; %d first "
           "decisions of the mix in all per run: 60%% allowed, 20%% another tenant's record, "
           "10%% not a member, 10%% 403; %d rounds, medians)\n",
           cfg->ops, rounds);
    return 0;
}

/* The server process of each side: the baseline's from libpq; the engine's connection is
 * the only other session of this role in the database (the throwaway cluster of
 * ./run.sh bench-pg); when there are others, server CPU is not reported. */
static void find_backends(pside *s) {
    s->base_pid = PQbackendPID(s->conn);
    s->tg_pid = 0;
    PGresult *r = PQexec(s->conn, "SELECT pid FROM pg_stat_activity WHERE datname = "
                                  "current_database() AND usename = current_user AND pid <> "
                                  "pg_backend_pid()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        s->tg_pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!s->tg_pid || server_cpu(s->tg_pid) < 0 || server_cpu(s->base_pid) < 0) {
        s->tg_pid = s->base_pid = 0;
        printf("  (server CPU not measured: the engine's backend is not the only other session "
               "of this role, or /proc/PID/schedstat is not readable)\n");
    } else {
        printf("  server backends: tenantguard pid %d, baseline pid %d (CPU from "
               "/proc/PID/schedstat)\n", s->tg_pid, s->base_pid);
    }
}

static void print_server(PGconn *c) {
    PGresult *r = PQexec(c, "SELECT current_setting('server_version'), current_user, "
                            "current_setting('shared_buffers'), "
                            "(SELECT count(*) FROM policies)");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        printf("  PostgreSQL %s, as %s, shared_buffers %s, %s policies; socket %s; libpq %d\n",
               PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
               PQgetvalue(r, 0, 3), PQhost(c), PQlibVersion());
    PQclear(r);
}

int bench_pg(const bench_cfg *cfg) {
    pside s = {0};
    int64_t *ids = NULL, *foreign = NULL;
    int rc = 1;
    s.uri = cfg->pg_uri;
    s.rules = cfg->rules;
    static const char *const names[] = {"pg_detail_first", "pg_detail_repeated", "pg_first_mix",
                                        "pg_bulk_action_100", "pg_decisions_per_second_mix"};
    int any = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        any |= bench_enabled(names[i]);
    if (!any)
        return 0;
    *(void **)&real_send = dlsym(RTLD_NEXT, "send");
    if (!real_send) {
        fprintf(stderr, "no send(2) to count round trips with\n");
        return 1;
    }
    if (pside_open(&s))
        goto done;
    printf("-- PostgreSQL: tenantguard vs a hand-written libpq baseline (prepared statements)\n");
    print_server(s.conn);
    find_backends(&s);
    ids = load_ids(s.conn, "SELECT id FROM policies WHERE tenant_id = $1 ORDER BY id", TENANT,
                   &s.n_ids);
    foreign = load_ids(s.conn, "SELECT id FROM policies WHERE tenant_id = $1", TENANT_OTHER,
                       &s.n_foreign);
    s.ids = ids;
    s.foreign = foreign;
    if (!ids || !foreign || s.n_ids <= BULK || !s.n_foreign) {
        fprintf(stderr, "too few policies in tenants %d and %d\n", TENANT, TENANT_OTHER);
        goto done;
    }
    pair_times t;
    if (bench_enabled("pg_detail_first")) {
        run_pair(cfg, &s, tg_detail_first, base_detail_first, cfg->ops, &t);
        report_pair(cfg, "pg_detail_first", &t, 1.1);
        report_trips(cfg, &s, "pg_detail_first", tg_detail_first, base_detail_first, 200);
    }
    if (bench_enabled("pg_detail_repeated")) {
        run_pair(cfg, &s, tg_repeated, base_repeated, cfg->ops, &t);
        report_pair(cfg, "pg_detail_repeated", &t, 1.1);
        report_trips(cfg, &s, "pg_detail_repeated", tg_repeated, base_repeated, 200);
    }
    if (bench_enabled("pg_first_mix")) {
        run_pair(cfg, &s, tg_mix, base_mix, cfg->ops, &t);
        report_pair(cfg, "pg_first_mix", &t, 1.1);
        report_trips(cfg, &s, "pg_first_mix", tg_mix, base_mix, 200);
    }
    if (bench_enabled("pg_bulk_action_100")) {
        int ops = cfg->ops / 10 > 0 ? cfg->ops / 10 : 1;
        run_pair(cfg, &s, tg_bulk, base_bulk, ops, &t);
        report_pair(cfg, "pg_bulk_action_100", &t, 1.2);
        report_trips(cfg, &s, "pg_bulk_action_100", tg_bulk, base_bulk, 50);
        /* against a baseline doing what tenantguard does: what each fix would buy */
        run_pair(cfg, &s, tg_bulk, base_bulk_in64, ops, &t);
        report_pair(cfg, "pg_bulk_100_vs_in64_x2", &t, 0);
        run_pair(cfg, &s, tg_bulk, base_bulk_in64_pipelined, ops, &t);
        report_pair(cfg, "pg_bulk_100_vs_in64_pipelined", &t, 0);
        run_pair(cfg, &s, tg_bulk, base_bulk_tg_shape_any, ops, &t);
        report_pair(cfg, "pg_bulk_100_vs_tg_sql_any", &t, 0);
        printf("  (vs_*: the same tenantguard against other baselines: IN lists of 64 as "
               "tenantguard sends them, %.2f round trips one after the other, %.2f pipelined; "
               "tenantguard's own bulk SQL with the ids as one bigint[] parameter, %.2f)\n",
               round_trips(&s, base_bulk_in64, 50), round_trips(&s, base_bulk_in64_pipelined, 50),
               round_trips(&s, base_bulk_tg_shape_any, 50));
    }
    if (bench_enabled("pg_decisions_per_second") && threads(cfg, &s))
        goto done;
    rc = 0;
done:
    pside_close(&s);
    free(ids);
    free(foreign);
    return rc;
}
