/* Shared helpers: arena, string buffer, findings, hashing, identifiers. */
#include "util.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- arena ---- */

struct tg__arena_block {
    tg__arena_block *next;
    size_t size;
    max_align_t data[];
};

void *tg__arena_alloc(tg__arena *a, size_t n) {
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0)
        n = align;
    if (!a->head || a->used + n > a->cap) {
        size_t size = n > 8192 ? n : 8192;
        if (size > SIZE_MAX - sizeof(tg__arena_block) ||
            (a->limit && (a->total > a->limit || size > a->limit - a->total)))
            return NULL;
        tg__arena_block *b = malloc(sizeof *b + size);
        if (!b)
            return NULL;
        a->total += size;
        b->next = a->head;
        b->size = size;
        a->head = b;
        a->used = 0;
        a->cap = size;
    }
    char *p = (char *)a->head->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

char *tg__arena_strdup(tg__arena *a, const char *s) {
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *p = tg__arena_alloc(a, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

void tg__arena_free(tg__arena *a) {
    tg__arena_block *b = a->head;
    while (b) {
        tg__arena_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
    a->used = a->cap = a->total = 0;
}

/* ---- buffer ---- */

static bool buf_reserve(tg__buf *b, size_t extra) {
    if (b->oom)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void tg__buf_addn(tg__buf *b, const char *s, size_t n) {
    if (!buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void tg__buf_add(tg__buf *b, const char *s) { tg__buf_addn(b, s, strlen(s)); }

void tg__buf_printf(tg__buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    if ((size_t)n < sizeof small) {
        tg__buf_addn(b, small, (size_t)n);
    } else if (buf_reserve(b, (size_t)n)) {
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void tg__buf_reset(tg__buf *b) {
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void tg__buf_free(tg__buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = false;
}

const char *tg__buf_str(const tg__buf *b) { return b->p ? b->p : ""; }

/* ---- findings ---- */

tg_findings *tg__findings_new(void) { return calloc(1, sizeof(tg_findings)); }

void tg__findings_vadd(tg_findings *f, tg_level level, const char *code, const char *file,
                       int line, const char *fmt, va_list ap) {
    if (!f)
        return;
    if (f->truncated) {
        if (level == TG_LEVEL_ERROR) {
            f->errors++;
            f->items[f->n - 1].level = TG_LEVEL_ERROR;
        }
        return;
    }
    if (f->n + 1 >= TG__MAX_FINDINGS) {
        /* the last slot says that the list stops here */
        if (f->n + 1 > f->cap) {
            tg_finding *items = realloc(f->items, (f->n + 1) * sizeof *items);
            if (!items)
                return;
            f->items = items;
            f->cap = f->n + 1;
        }
        tg_finding *it = &f->items[f->n];
        it->level = level;
        it->code = tg__arena_strdup(&f->strings, "too_many_findings");
        it->message = tg__arena_strdup(&f->strings,
                                       "more findings were not listed: a list keeps at most "
                                       "10000; fix these and run again");
        it->where.file = tg__arena_strdup(&f->strings, file);
        it->where.line = line;
        if (!it->code || !it->message)
            return;
        f->n++;
        f->truncated = true;
        if (level == TG_LEVEL_ERROR)
            f->errors++;
        return;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        tg_finding *items = realloc(f->items, cap * sizeof *items);
        if (!items)
            return;
        f->items = items;
        f->cap = cap;
    }
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    tg_finding *it = &f->items[f->n];
    it->level = level;
    it->code = tg__arena_strdup(&f->strings, code);
    it->message = tg__arena_strdup(&f->strings, msg);
    it->where.file = tg__arena_strdup(&f->strings, file);
    it->where.line = line;
    if (!it->code || !it->message)
        return;
    f->n++;
    if (level == TG_LEVEL_ERROR)
        f->errors++;
}

void tg__findings_add(tg_findings *f, tg_level level, const char *code, const char *file,
                      int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tg__findings_vadd(f, level, code, file, line, fmt, ap);
    va_end(ap);
}

void tg__findings_first_error(const tg_findings *f, tg__buf *buf) {
    for (size_t i = 0; f && i < f->n; i++) {
        const tg_finding *it = &f->items[i];
        if (it->level != TG_LEVEL_ERROR)
            continue;
        if (it->where.file && it->where.line > 0)
            tg__buf_printf(buf, "%s:%d: ", it->where.file, it->where.line);
        else if (it->where.file)
            tg__buf_printf(buf, "%s: ", it->where.file);
        tg__buf_printf(buf, "%s [%s]", it->message, it->code);
        if (f->errors > 1)
            tg__buf_printf(buf, " (and %zu more error%s)", f->errors - 1,
                           f->errors == 2 ? "" : "s");
        return;
    }
}

size_t tg_findings_count(const tg_findings *f) { return f ? f->n : 0; }
size_t tg_findings_errors(const tg_findings *f) { return f ? f->errors : 0; }

const tg_finding *tg_findings_get(const tg_findings *f, size_t i) {
    return f && i < f->n ? &f->items[i] : NULL;
}

void tg_findings_free(tg_findings *f) {
    if (!f)
        return;
    free(f->items);
    tg__arena_free(&f->strings);
    free(f);
}

/* ---- misc ---- */

bool tg__is_identifier(const char *s) {
    if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    size_t n = 0;
    for (const char *p = s; *p; p++, n++) {
        if (!(isalnum((unsigned char)*p) || *p == '_') || (unsigned char)*p >= 0x80)
            return false;
    }
    if (n > 63)
        return false;
    return strncasecmp(s, "sqlite_", 7) != 0;
}

/* ---- string map ---- */

static size_t str_hash(const char *s) {
    return (size_t)tg__fnv1a(TG__FNV_INIT, s, strlen(s));
}

bool tg__strmap_init(tg__strmap *m, tg__arena *a, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 2)
        cap *= 2;
    m->keys = tg__arena_alloc(a, cap * sizeof *m->keys);
    m->vals = tg__arena_alloc(a, cap * sizeof *m->vals);
    m->mask = cap - 1;
    m->n = 0;
    if (!m->keys || !m->vals) {
        m->keys = NULL;
        return false;
    }
    return true;
}

int tg__strmap_get(const tg__strmap *m, const char *key) {
    if (!m->keys || !key)
        return -1;
    for (size_t i = str_hash(key) & m->mask;; i = (i + 1) & m->mask) {
        if (!m->keys[i])
            return -1;
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    }
}

int tg__strmap_put(tg__strmap *m, const char *key, int val) {
    if (!m->keys || !key || m->n + 1 > m->mask / 2)
        return -1;
    size_t i = str_hash(key) & m->mask;
    for (; m->keys[i]; i = (i + 1) & m->mask)
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    m->keys[i] = key;
    m->vals[i] = val;
    m->n++;
    return -1;
}

uint64_t tg__fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int tg__edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64 || la > lb + 2 || lb > la + 2)
        return 99; /* too far apart to suggest anyway */
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int cost = a[i - 1] == b[j - 1] ? 0 : 1;
            int best = prev + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}
