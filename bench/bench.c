/* tenantguard benchmarks: every hot operation against a hand-written SQLite baseline that
 * does the same work with prepared statements and no library, in the same process, on the
 * same data, alternating between the two, round after round. Prints a table and JSON lines.
 *
 * usage: tenantguard_bench --db REFDB --rules DIR [--rounds N] [--ops N] [--json FILE]
 *                          [--only NAME] [--workdir DIR] [--small-db REFDB] [--text-db REFDB]
 * --text-db: the same application keyed by UUID text (tenantguard refdb --keys text); the
 * decision benchmarks run on it too, as rows named text_*.
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

int bench_enabled(const char *name) { return !only || strstr(name, only) != NULL; }

int main(int argc, char **argv) {
    bench_cfg cfg = {0};
    cfg.rounds = 9;
    cfg.ops = 20000;
    const char *json_path = NULL;
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
        else {
            fprintf(stderr,
                    "usage: %s --db REFDB --rules DIR [--rounds N] [--ops N] [--json FILE] "
                    "[--only NAME] [--workdir DIR] [--small-db REFDB] [--text-db REFDB]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!cfg.db || !cfg.rules || cfg.rounds < 1 || cfg.ops < 1) {
        fprintf(stderr, "--db and --rules are required\n");
        return 2;
    }
    if (json_path && !(json_out = fopen(json_path, "w"))) {
        perror(json_path);
        return 2;
    }
    if (cfg.rounds % 2 == 0 && cfg.rounds > 1)
        cfg.rounds++; /* an odd count has a true median */
    printf("tenantguard benchmarks: db %s, %d rounds (median), %d ops per round\n", cfg.db,
           cfg.rounds, cfg.ops);
    printf("%-34s %-11s %12s %12s %9s  %-10s %s\n", "operation", "mode", "tenantguard",
           "baseline", "ratio", "target", "");
    int rc = 0;
    rc |= bench_decisions(&cfg);
    rc |= bench_rollout(&cfg);
    rc |= bench_snapshot(&cfg);
    if (json_out)
        fclose(json_out);
    return rc;
}
