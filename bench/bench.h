/* The benchmark harness shared by the files in bench/. */
#ifndef TG_BENCH_H
#define TG_BENCH_H

#include "tenantguard.h"

#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

typedef struct bench_cfg {
    const char *db, *rules, *workdir, *small_db;
    const char *text_db; /* the same application keyed by UUID text (refdb --keys text) */
    int rounds, ops;
} bench_cfg;

double bench_now(void);
double bench_median(double *v, int n);
uint64_t bench_rand(uint64_t *s);
int bench_enabled(const char *name);
/* Prints one row and one JSON line. Values are in `unit` (e.g. "us/op"). target, when not
 * NULL, is the goal as text ("<=1.15x") and pass says whether it was met. */
void bench_report(const bench_cfg *cfg, const char *name, const char *mode, const char *unit,
                  double tg_val, double base_val, const char *target, int pass);

int bench_decisions(const bench_cfg *cfg);
int bench_rollout(const bench_cfg *cfg);
int bench_snapshot(const bench_cfg *cfg);

#endif
