/* tenantguard benchmarks: every hot operation against a hand-written SQLite baseline that
 * does the same work with prepared statements and no library, in the same process, on the
 * same data, alternating between the two, round after round. Prints a table and JSON lines.
 *
 * usage: tenantguard_bench --db REFDB --rules DIR [--rounds N] [--ops N] [--json FILE]
 *                          [--only NAME] [--workdir DIR] [--small-db REFDB] [--text-db REFDB]
 *                          [--second-db DB --second-rules DIR [--second-rows N]] [--threads N]
 *                          [--pg-uri URI]
 * --text-db: the same application keyed by UUID text (tenantguard refdb --keys text); the
 * decision benchmarks run on it too, as rows named text_*.
 * --second-db: a second schema of other names and shape (bench/second_schema.c: 2 workspaces,
 * 200 tenants, 2,000 users, N invoices, roles only on the tenant entitlement), built there
 * when the file is missing; the per-kind benchmarks run on it too, as rows named second_*.
 * --pg-uri URI: the PostgreSQL section (bench/pg.c) on a copy of the reference database in
 * PostgreSQL (tenantguard pg-load), against a libpq baseline; --db is then optional (without
 * it only that section runs). ./run.sh bench-pg runs it on a throwaway cluster.
 * --prepare-only: build the second schema when missing, run nothing.
 * --only A,B: only the benchmarks whose names contain A or B.
 * TG_BENCH_DISTRIBUTED=1 opens the engine in distributed mode (tg_open_options.distributed).
 * Instruction counts: bench/callgrind.sh (./run.sh bench-callgrind).
 * The database is a reference database (tenantguard refdb); it is only read, except by the
 * benchmarks that say so, which work on a copy. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift: the same request sequence for both sides */
uint64_t bench_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static FILE *json_out;
static const char *only;

void bench_report(const bench_cfg *cfg, const char *name, const char *mode, const char *unit,
                  double tg_val, double base_val, const char *target, int pass) {
    (void)cfg;
    double ratio = base_val > 0 ? tg_val / base_val : 0;
    if (base_val > 0)
        printf("%-34s %-11s %12.3f %12.3f %8.3fx  %-10s %s\n", name, mode, tg_val, base_val,
               ratio, target ? target : "", target ? (pass ? "ok" : "MISSED") : "");
    else
        printf("%-34s %-11s %12.3f %12s %9s  %-10s %s\n", name, mode, tg_val, "-", "-",
               target ? target : "", target ? (pass ? "ok" : "MISSED") : "");
    if (json_out) {
        fprintf(json_out,
                "{\"bench\":\"%s\",\"mode\":\"%s\",\"unit\":\"%s\",\"tenantguard\":%.4f,"
                "\"baseline\":%.4f,\"ratio\":%.4f,\"target\":\"%s\",\"pass\":%s}\n",
                name, mode, unit, tg_val, base_val, ratio, target ? target : "",
                target ? (pass ? "true" : "false") : "null");
        fflush(json_out);
    }
}

/* --only A,B,C: a benchmark runs when its name contains one of the comma-separated parts */
int bench_enabled(const char *name) {
    if (!only)
        return 1;
    for (const char *p = only; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        for (const char *h = name; len && *h; h++)
            if (strncmp(h, p, len) == 0)
                return 1;
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}

void bench_cg_end(const char *name, const char *side, int ops) {
    char label[160];
    snprintf(label, sizeof label, "bench=%s side=%s ops=%d", name, side, ops);
    BENCH_CG_END(label);
}

static int64_t env_int(const char *name) {
    const char *v = getenv(name);
    return v && *v ? strtoll(v, NULL, 10) : 0;
}

static void print_base_settings(sqlite3 *db) {
    sqlite3_stmt *st;
    long long v[4] = {0};
    const unsigned char *jm = NULL;
    char journal[16] = "?";
    const char *q[] = {"PRAGMA cache_size", "PRAGMA mmap_size", "PRAGMA busy_timeout",
                       "PRAGMA page_size"};
    for (int i = 0; i < 4; i++) {
        if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            v[i] = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && (jm = sqlite3_column_text(st, 0)) != NULL)
        snprintf(journal, sizeof journal, "%s", (const char *)jm);
    sqlite3_finalize(st);
    printf("  %-12s cache_size %lld KiB, mmap_size %lld bytes, busy_timeout %lld ms, "
           "page_size %lld, journal_mode %s, synchronous normal\n",
           "baseline", v[0] < 0 ? -v[0] : v[0] * v[3] / 1024, v[1], v[2], v[3], journal);
}

int bench_open_sides(const char *db, const char *rules, const char *title, int quiet,
                     tg_engine **eng, sqlite3 **base) {
    tg_open_options o = {0};
    o.db = db;
    o.rules = rules;
    o.cache_size_kib = env_int("TG_BENCH_CACHE_KIB");
    o.mmap_size = env_int("TG_BENCH_MMAP");
    /* TG_BENCH_DISTRIBUTED=1: distributed mode (every read by id pins the route tenant) */
    o.distributed = (int)env_int("TG_BENCH_DISTRIBUTED");
    *base = NULL;
    if (tg_engine_open(&o, eng) != TG_OK) {
        fprintf(stderr, "open %s with %s: %s\n", db, rules, tg_engine_errmsg(*eng));
        return 1;
    }
    tg_settings set;
    if (tg_engine_settings(*eng, &set) != TG_OK)
        return 1;
    if (sqlite3_open_v2(db, base, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return 1;
    sqlite3_busy_timeout(*base, set.busy_timeout_ms);
    char sql[256];
    snprintf(sql, sizeof sql,
             "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
             "PRAGMA cache_size = %lld; PRAGMA mmap_size = %lld;",
             -(long long)set.cache_size_kib, (long long)set.mmap_size);
    if (sqlite3_exec(*base, sql, NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "baseline settings: %s\n", sqlite3_errmsg(*base));
        return 1;
    }
    if (quiet)
        return 0;
    printf("%s: connection settings of both sides\n", title);
    printf("  %-12s cache_size %lld KiB, mmap_size %lld bytes, busy_timeout %d ms, "
           "page_size %lld, journal_mode %s, synchronous %s\n",
           "tenantguard", (long long)set.cache_size_kib, (long long)set.mmap_size,
           set.busy_timeout_ms, (long long)set.page_size, set.journal_mode, set.synchronous);
    print_base_settings(*base);
    return 0;
}

int main(int argc, char **argv) {
    bench_cfg cfg = {0};
    cfg.rounds = 9;
    cfg.ops = 20000;
    cfg.threads = 2;
    cfg.second_rows = 1000000;
    const char *json_path = NULL;
    int prepare_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--db") == 0 && v)
            cfg.db = argv[++i];
        else if (strcmp(a, "--rules") == 0 && v)
            cfg.rules = argv[++i];
        else if (strcmp(a, "--rounds") == 0 && v)
            cfg.rounds = atoi(argv[++i]);
        else if (strcmp(a, "--ops") == 0 && v)
            cfg.ops = atoi(argv[++i]);
        else if (strcmp(a, "--json") == 0 && v)
            json_path = argv[++i];
        else if (strcmp(a, "--only") == 0 && v)
            only = argv[++i];
        else if (strcmp(a, "--workdir") == 0 && v)
            cfg.workdir = argv[++i];
        else if (strcmp(a, "--small-db") == 0 && v)
            cfg.small_db = argv[++i];
        else if (strcmp(a, "--text-db") == 0 && v)
            cfg.text_db = argv[++i];
        else if (strcmp(a, "--second-db") == 0 && v)
            cfg.second_db = argv[++i];
        else if (strcmp(a, "--second-rules") == 0 && v)
            cfg.second_rules = argv[++i];
        else if (strcmp(a, "--second-rows") == 0 && v)
            cfg.second_rows = atol(argv[++i]);
        else if (strcmp(a, "--prepare-only") == 0)
            prepare_only = 1;
        else if (strcmp(a, "--threads") == 0 && v)
            cfg.threads = atoi(argv[++i]);
        else if (strcmp(a, "--pg-uri") == 0 && v)
            cfg.pg_uri = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s --db REFDB --rules DIR [--rounds N] [--ops N] [--json FILE] "
                    "[--only NAME] [--workdir DIR] [--small-db REFDB] [--text-db REFDB] "
                    "[--second-db DB --second-rules DIR [--second-rows N]] [--threads N] "
                    "[--pg-uri URI] [--prepare-only]\n",
                    argv[0]);
            return 2;
        }
    }
    if ((!cfg.db && !cfg.pg_uri) || !cfg.rules || cfg.rounds < 1 || cfg.ops < 1 || cfg.threads < 1 ||
        cfg.second_rows < 1000 || (cfg.second_db && !cfg.second_rules)) {
        fprintf(stderr, "--db (or --pg-uri) and --rules are required (--second-db needs "
                        "--second-rules; --second-rows at least 1000)\n");
        return 2;
    }
#ifndef BENCH_HAVE_PG
    if (cfg.pg_uri) {
        fprintf(stderr, "--pg-uri: this bench was built without libpq (Debian: libpq-dev)\n");
        return 2;
    }
#endif
    if (json_path && !(json_out = fopen(json_path, "w"))) {
        perror(json_path);
        return 2;
    }
    if (cfg.rounds % 2 == 0 && cfg.rounds > 1)
        cfg.rounds++; /* an odd count has a true median */
    if (cfg.second_db && bench_second_schema(cfg.second_db, cfg.second_rows) != 0)
        return 1;
    if (prepare_only)
        return 0;
    printf("tenantguard benchmarks: db %s, %d rounds (median), %d ops per round\n",
           cfg.db ? cfg.db : cfg.pg_uri, cfg.rounds, cfg.ops);
    printf("%-34s %-11s %12s %12s %9s  %-10s %s\n", "operation", "mode", "tenantguard",
           "baseline", "ratio", "target", "");
    int rc = 0;
    if (cfg.db) {
        rc |= bench_decisions(&cfg);
        rc |= bench_kinds(&cfg);
        rc |= bench_threads(&cfg);
        rc |= bench_rollout(&cfg);
        rc |= bench_snapshot(&cfg);
    }
#ifdef BENCH_HAVE_PG
    if (cfg.pg_uri)
        rc |= bench_pg(&cfg);
#endif
    if (json_out)
        fclose(json_out);
    return rc;
}

int64_t *bench_int64s(sqlite3 *db, const char *sql, int64_t tenant, size_t *n) {
    sqlite3_stmt *st;
    *n = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return NULL;
    if (sqlite3_bind_parameter_count(st) > 0)
        sqlite3_bind_int64(st, 1, tenant);
    size_t cap = 1024;
    int64_t *v = malloc(cap * sizeof *v);
    while (v && sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            int64_t *more = realloc(v, (cap *= 2) * sizeof *v);
            if (!more) {
                free(v);
                v = NULL;
                break;
            }
            v = more;
        }
        v[(*n)++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}
