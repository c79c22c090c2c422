/* Small shared pieces: an arena for immutable rule data, a growing string buffer, the
 * findings list, hashing and identifier checks. Private to the core. */
#ifndef TG_UTIL_H
#define TG_UTIL_H

#include "tenantguard.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TG_HIDDEN __attribute__((visibility("hidden")))
#define TG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TG_HIDDEN
#define TG_PRINTF(a, b)
#endif

/* ---- arena: many small allocations freed together ---- */
typedef struct tg__arena_block tg__arena_block;
typedef struct tg__arena {
    tg__arena_block *head;
    size_t used, cap;
} tg__arena;

TG_HIDDEN void *tg__arena_alloc(tg__arena *a, size_t n); /* zeroed, NULL on OOM */
TG_HIDDEN char *tg__arena_strdup(tg__arena *a, const char *s); /* NULL stays NULL */
TG_HIDDEN void tg__arena_free(tg__arena *a);

/* ---- string buffer ---- */
typedef struct tg__buf {
    char *p;
    size_t len, cap;
    bool oom;
} tg__buf;

TG_HIDDEN void tg__buf_add(tg__buf *b, const char *s);
TG_HIDDEN void tg__buf_addn(tg__buf *b, const char *s, size_t n);
TG_HIDDEN void tg__buf_printf(tg__buf *b, const char *fmt, ...) TG_PRINTF(2, 3);
TG_HIDDEN void tg__buf_reset(tg__buf *b);
TG_HIDDEN void tg__buf_free(tg__buf *b);
/* The text, "" for an empty buffer. */
TG_HIDDEN const char *tg__buf_str(const tg__buf *b);

/* ---- findings ---- */
struct tg_findings {
    tg_finding *items;
    size_t n, cap, errors;
    tg__arena strings;
};

TG_HIDDEN tg_findings *tg__findings_new(void);
TG_HIDDEN void tg__findings_add(tg_findings *f, tg_level level, const char *code, const char *file,
                                int line, const char *fmt, ...) TG_PRINTF(6, 7);
TG_HIDDEN void tg__findings_vadd(tg_findings *f, tg_level level, const char *code,
                                 const char *file, int line, const char *fmt, va_list ap);
/* The first error formatted "file:line: message [code]" into buf. */
TG_HIDDEN void tg__findings_first_error(const tg_findings *f, tg__buf *buf);

/* ---- misc ---- */
/* A plain SQL identifier: [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes, not "sqlite_*". */
TG_HIDDEN bool tg__is_identifier(const char *s);
/* 64-bit FNV-1a, continued from h (start with TG__FNV_INIT). */
#define TG__FNV_INIT 0xcbf29ce484222325ULL
TG_HIDDEN uint64_t tg__fnv1a(uint64_t h, const void *data, size_t n);
/* Levenshtein distance, capped: used for "did you mean". */
TG_HIDDEN int tg__edit_distance(const char *a, const char *b);

#endif
