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
    size_t total; /* bytes taken from malloc so far */
    size_t limit; /* when not 0, allocations past this many bytes fail (return NULL) */
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
/* At most TG__MAX_FINDINGS are kept; past that a last "too_many_findings" entry says so
 * (an error when an error was dropped), and errors are still counted. */
struct tg_findings {
    tg_finding *items;
    size_t n, cap, errors;
    bool truncated;
    tg__arena strings;
};

TG_HIDDEN tg_findings *tg__findings_new(void);
TG_HIDDEN void tg__findings_add(tg_findings *f, tg_level level, const char *code, const char *file,
                                int line, const char *fmt, ...) TG_PRINTF(6, 7);
TG_HIDDEN void tg__findings_vadd(tg_findings *f, tg_level level, const char *code,
                                 const char *file, int line, const char *fmt, va_list ap);
/* The first error formatted "file:line: message [code]" into buf. */
TG_HIDDEN void tg__findings_first_error(const tg_findings *f, tg__buf *buf);

/* ---- string map: string -> int, fixed capacity, memory from an arena ---- */
typedef struct tg__strmap {
    const char **keys;
    int *vals;
    size_t mask; /* capacity - 1 (a power of two) */
    size_t n;
} tg__strmap;

/* Room for `expected` keys. Returns false when the arena refuses. */
TG_HIDDEN bool tg__strmap_init(tg__strmap *m, tg__arena *a, size_t expected);
/* The value of key, or -1. */
TG_HIDDEN int tg__strmap_get(const tg__strmap *m, const char *key);
/* Adds key -> val unless key is present; returns the value already there, or -1 when added
 * (or when the map is full or was never initialised: then nothing is added). The key must
 * outlive the map. */
TG_HIDDEN int tg__strmap_put(tg__strmap *m, const char *key, int val);

/* ---- limits: every count the loader and the compiler accept (documented in
 * rules/README.md, "Limits") ---- */
#define TG__MAX_RULE_FILES 10000     /* .lua files in a rule directory */
#define TG__MAX_RULE_FILE_BYTES (4u << 20) /* size of one rule file */
#define TG__MAX_DECLARATIONS 32768   /* constructor calls in all files together */
#define TG__MAX_NAME_BYTES 128       /* a family, role, exception or residual name, a capability */
#define TG__MAX_TEXT_BYTES 4096      /* any other string field */
#define TG__MAX_CAPABILITIES 4096    /* capabilities, all declarations together */
#define TG__MAX_ROLES 4096
#define TG__MAX_ROLE_ITEMS 4096      /* capabilities listed in one role */
#define TG__MAX_INCLUDES 64          /* roles one role includes */
#define TG__MAX_INCLUDE_DEPTH 32     /* roles in the longest includes chain */
#define TG__MAX_FAMILIES 4096
#define TG__MAX_SCENARIOS 10000      /* declared scenarios, all families together */
#define TG__MAX_EXCEPTIONS 4096
#define TG__MAX_RESIDUALS 4096
#define TG__MAX_LIST_ITEMS 256       /* search_columns, still_required_checks, includes lists */
#define TG__MAX_FIXTURE 256          /* fixture entries of one family */
#define TG__MAX_FINDINGS 10000       /* findings kept in one list */

/* ---- misc ---- */
/* A plain SQL identifier: [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes, not starting with
 * "sqlite_" in any case (SQLite's own tables: sqlite_schema, sqlite_master, ...). */
TG_HIDDEN bool tg__is_identifier(const char *s);
/* 64-bit FNV-1a, continued from h (start with TG__FNV_INIT). */
#define TG__FNV_INIT 0xcbf29ce484222325ULL
TG_HIDDEN uint64_t tg__fnv1a(uint64_t h, const void *data, size_t n);
/* Levenshtein distance, capped: used for "did you mean". */
TG_HIDDEN int tg__edit_distance(const char *a, const char *b);

#endif
