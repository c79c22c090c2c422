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
    const char *second_db;    /* the second schema (bench/second_schema.c), built if missing */
    const char *second_rules; /* its rules (bench/second/rules) */
    long second_rows;         /* invoices in the second schema (default 1,000,000) */
    int rounds, ops;
    int threads;              /* the most threads of the scaling benchmark (default 2) */
    const char *pg_uri;       /* the PostgreSQL section's database (bench/pg.c), or NULL */
} bench_cfg;

double bench_now(void);
double bench_median(double *v, int n);
uint64_t bench_rand(uint64_t *s);
int bench_enabled(const char *name);
/* Prints one row and one JSON line. Values are in `unit` (e.g. "us/op"). target, when not
 * NULL, is the goal as text ("<=1.15x") and pass says whether it was met. */
void bench_report(const bench_cfg *cfg, const char *name, const char *mode, const char *unit,
                  double tg_val, double base_val, const char *target, int pass);

/* Opens the engine on db with rules (connection settings from TG_BENCH_CACHE_KIB and
 * TG_BENCH_MMAP, bytes; unset: SQLite's defaults) and the baseline's own connection with the
 * very settings the engine reports. Prints both sides' settings under `title` unless quiet.
 * Returns 0, or 1 with a message on stderr (*eng and *base may still need closing). */
int bench_open_sides(const char *db, const char *rules, const char *title, int quiet,
                     tg_engine **eng, sqlite3 **base);

/* Callgrind instruction counts: each measured run of one side sits between BENCH_CG_BEGIN()
 * and BENCH_CG_END(label), label "bench=NAME side=tenantguard|baseline ops=N". Under
 * valgrind --tool=callgrind every END writes one dump (bench/callgrind.sh sums them); outside
 * valgrind both are a few no-op instructions. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define BENCH_HAVE_CALLGRIND 1
#endif
#endif
#ifdef BENCH_HAVE_CALLGRIND
#define BENCH_CG_BEGIN() CALLGRIND_ZERO_STATS
#define BENCH_CG_END(label) CALLGRIND_DUMP_STATS_AT(label)
#else
#define BENCH_CG_BEGIN() ((void)0)
#define BENCH_CG_END(label) ((void)(label))
#endif
/* BENCH_CG_END with a label built from name, side and ops. */
void bench_cg_end(const char *name, const char *side, int ops);

int bench_decisions(const bench_cfg *cfg);
int bench_kinds(const bench_cfg *cfg);
int bench_threads(const bench_cfg *cfg);
/* Builds the second schema at path with `rows` invoices when no file is there. */
int bench_second_schema(const char *path, long rows);
int bench_rollout(const bench_cfg *cfg);
int bench_snapshot(const bench_cfg *cfg);
/* The PostgreSQL section (bench/pg.c; only in a build with libpq). */
int bench_pg(const bench_cfg *cfg);

/* The integer first column of every row `sql` returns, with `tenant` bound to ?1 when the
 * statement has a parameter; malloc'd (the caller frees), NULL on failure. */
int64_t *bench_int64s(sqlite3 *db, const char *sql, int64_t tenant, size_t *n);

#endif
