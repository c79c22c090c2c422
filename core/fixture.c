/* The matrix fixture on any schema the rules lint clean against.
 *
 * Every table it writes (the app's workspaces, tenants and membership tables, every family
 * and exception table, and any table a foreign key makes it fill) gets every NOT NULL column
 * without a default filled with a value of the declared type that satisfies the CHECK
 * constraints it can read from the table's SQL (`col IN (...)`, comparisons, `BETWEEN`,
 * `length(col) ...`, `col <> ''`), distinct per row where a UNIQUE constraint or index covers
 * the column. A CHECK it cannot read is met by trying candidate values, each attempt under a
 * SAVEPOINT, keeping the first the database accepts. Keys: integers (max + 1), UUID-like
 * text (PostgreSQL's uuid columns included), or 16 random bytes (a blob, bytea). The SQL it
 * runs is in the store's dialect, so the same fixture is made on SQLite and PostgreSQL
 * (where it reads the catalog, and CHECK constraints through pg_get_constraintdef). A view
 * without an INSTEAD OF INSERT trigger is written through its base table when it is a simple
 * single-table SELECT. Values the rules give (a family's or an app table's `fixture`) always
 * win. A failure names the table, the column and the constraint, and says where to give a
 * value. */
#include "fixture_schema.h"
#include "rollout.h"
#include "rules.h"
#include "sql.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FX_ATTEMPTS 200 /* inserts tried for one row */
#define FX_MAX_DEPTH 3  /* tables made only to satisfy a foreign key, nested */

/* ---- values ---- */

/* The integer the one-row query sql returns (0 for no row); *rc the store's code. */
static int64_t one_int(tg__db *db, const char *sql, int *rc) {
    tg__stmt *st = NULL;
    int64_t v = 0;
    if ((*rc = tg__st_prepare_once(db, sql, &st)) != TG__ST_OK)
        return 0;
    int s = tg__st_step(st);
    if (s == TG__ST_ROW) {
        v = tg__st_column_int64(st, 0);
        *rc = TG__ST_OK;
    } else {
        *rc = s == TG__ST_DONE ? TG__ST_OK : s;
    }
    tg__st_finalize(st);
    return v;
}

static tg_value v_random_blob(tg__fixture *fx) {
    tg_value v = {TG_BLOB, 0, 0, NULL, 16};
    char *p = tg__arena_alloc(&fx->arena, 16);
    if (!p)
        return v_null();
    tg__store_random(p, 16);
    v.s = p;
    return v;
}

/* A blob column: SQLite's BLOB, PostgreSQL's bytea. */
static int blob_type(const fx_col *c) {
    return strcasecmp(c->type, "BLOB") == 0 || strcmp(c->type, "bytea") == 0;
}

/* Random version-4 UUID text, e.g. 0b9c4e2a-1f0d-4c3b-9a8e-5d6f7a8b9c0d. */
static tg_value v_uuid(tg__fixture *fx) {
    unsigned char b[16];
    tg__store_random(b, 16);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char s[40];
    snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return v_text(fx, s);
}

static void v_describe(const tg_value *v, char *out, size_t cap) {
    switch (v->type) {
    case TG_INTEGER:
    case TG_BOOLEAN: snprintf(out, cap, "%lld", (long long)v->i); break;
    case TG_REAL: snprintf(out, cap, "%g", v->r); break;
    case TG_TEXT: snprintf(out, cap, "'%.60s'", v->s); break;
    case TG_BLOB: snprintf(out, cap, "a %zu-byte blob", v->n); break;
    default: snprintf(out, cap, "NULL");
    }
}

static void bind_value(tg__stmt *st, int k, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER:
    case TG_BOOLEAN: tg__st_bind_int64(st, k, v->i); break;
    case TG_REAL: tg__st_bind_double(st, k, v->r); break;
    case TG_TEXT: tg__st_bind_text(st, k, v->s, v->n, 1); break;
    case TG_BLOB: tg__st_bind_blob(st, k, v->s, v->n, 1); break;
    default: tg__st_bind_null(st, k);
    }
}

static tg_value column_value(tg__fixture *fx, tg__stmt *st, int k) {
    switch (tg__st_column_type(st, k)) {
    case TG__T_INTEGER: return v_int(tg__st_column_int64(st, k));
    case TG__T_FLOAT: return v_real(tg__st_column_double(st, k));
    case TG__T_TEXT: return v_text(fx, (const char *)tg__st_column_text(st, k));
    case TG__T_BLOB: {
        int n = tg__st_column_bytes(st, k);
        char *p = tg__arena_alloc(&fx->arena, (size_t)n + 1);
        if (!p)
            return v_null();
        memcpy(p, tg__st_column_blob(st, k), (size_t)n);
        tg_value v = {TG_BLOB, 0, 0, p, (size_t)n};
        return v;
    }
    default: return v_null();
    }
}

typedef struct fx_ctx {
    int t, w, k;
    const char *hint;
} fx_ctx;

static int db_fail(tg__fixture *fx, const char *what) {
    return tg__fx_error(fx, TG_DB, "%s: %s", what, tg__db_errmsg(fx->eng->store));
}

/* ---- making values ---- */

static void base36(uint64_t n, char *out) {
    char tmp[16];
    int k = 0;
    do {
        tmp[k++] = "0123456789abcdefghijklmnopqrstuvwxyz"[n % 36];
        n /= 36;
    } while (n);
    for (int i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k] = 0;
}

static int fits(const fx_cons *c, const tg_value *v) {
    for (int i = 0; i < c->n_ne; i++)
        if (v_equal(v, &c->ne[i]))
            return 0;
    if (v->type == TG_TEXT) {
        if ((int64_t)v->n < c->minlen || (c->maxlen >= 0 && (int64_t)v->n > c->maxlen))
            return 0;
        return !c->numeric;
    }
    if (v->type == TG_INTEGER || v->type == TG_REAL) {
        double x = num_of(v);
        if (c->has_min && (x < c->min || (c->min_open && x == c->min)))
            return 0;
        if (c->has_max && (x > c->max || (c->max_open && x == c->max)))
            return 0;
        char buf[32];
        snprintf(buf, sizeof buf, "%g", x);
        if ((int64_t)strlen(buf) < c->minlen ||
            (c->maxlen >= 0 && (int64_t)strlen(buf) > c->maxlen))
            return 0;
    }
    return 1;
}

/* Text for `n` within the column's length limits: "tgmatrix-fill-<n>", or as short as
 * base 36 needs, padded with '-' (never a base-36 digit, so distinct n stay distinct). */
static tg_value gen_text(tg__fixture *fx, const fx_cons *c, uint64_t n) {
    char s[160];
    snprintf(s, sizeof s, "tgmatrix-fill-%llu", (unsigned long long)n);
    int64_t len = (int64_t)strlen(s);
    if (len < c->minlen || (c->maxlen >= 0 && len > c->maxlen)) {
        base36(n, s);
        len = (int64_t)strlen(s);
        while (len < c->minlen && len < (int64_t)sizeof s - 1)
            s[len++] = '-';
        s[len] = 0;
    }
    return v_text(fx, s);
}

/* A number for the column, the `n`-th distinct one it allows (0: the smallest). */
static tg_value gen_number(const fx_col *col, int64_t n) {
    const fx_cons *c = &col->cons;
    if (col->aff == 'R') {
        double lo = c->has_min ? c->min + (c->min_open ? 0.5 : 0) : 1.0;
        if (!c->has_min && c->has_max && lo > c->max)
            lo = c->max - (c->max_open ? 1 : 0) - (double)n;
        return v_real(lo + (double)n);
    }
    int64_t lo = 1;
    if (c->has_min)
        lo = (int64_t)floor(c->min) + (c->min_open || floor(c->min) < c->min ? 1 : 0);
    else if (c->has_max && c->max < 1)
        lo = (int64_t)ceil(c->max) - (c->max_open || ceil(c->max) > c->max ? 1 : 0) - n * 2;
    return v_int(lo + n);
}

/* The `k`-th fallback candidate of a column (for a CHECK the fixture cannot read). */
static int candidate(tg__fixture *fx, const fx_col *col, int k, uint64_t n, tg_value *out) {
    static const int64_t ints[] = {1, 0, 2, -1, 10, 100, 1000, 2024, 1000000};
    static const char *const texts[] = {"tgm#@example.com",
                                        "2024-01-01",
                                        "2024-01-01 00:00:00",
                                        "{}",
                                        "[]",
                                        "a",
                                        "A",
                                        "x",
                                        "1",
                                        "0",
                                        "true",
                                        "active",
                                        "open",
                                        "default",
                                        "https://example.com/tgm#",
                                        "TGM#",
                                        "tgm#"};
    size_t ni = sizeof ints / sizeof *ints, nt = sizeof texts / sizeof *texts;
    int numeric = col->aff == 'I' || col->aff == 'R' || col->aff == 'N';
    int texty = col->aff == 'T' || col->aff == 'B' || col->aff == 'N';
    if (numeric) {
        if ((size_t)k < ni) {
            *out = col->aff == 'R' ? v_real((double)ints[k]) : v_int(ints[k]);
            return 1;
        }
        k -= (int)ni;
    }
    if (texty && (size_t)k < nt) {
        /* '#' stands for n, which keeps the candidate distinct per row */
        char s[96], num[24];
        snprintf(num, sizeof num, "%llu", (unsigned long long)n);
        size_t len = 0;
        for (const char *p = texts[k]; *p && len + sizeof num < sizeof s; p++) {
            if (*p == '#') {
                memcpy(s + len, num, strlen(num));
                len += strlen(num);
            } else {
                s[len++] = *p;
            }
        }
        s[len] = 0;
        *out = v_text(fx, s);
        return 1;
    }
    return 0;
}

/* A value for a column the fixture fills (`n` makes it distinct). */
static tg_value gen_value(tg__fixture *fx, const fx_col *col, uint64_t n) {
    const fx_cons *c = &col->cons;
    int64_t nth = col->bump + (col->unique ? col->uses : 0);
    tg_value v;
    if (col->cand >= 0 && candidate(fx, col, col->cand, n, &v))
        return v;
    if (c->has_in) {
        int seen = 0;
        for (int i = 0; i < c->n_in; i++)
            if (fits(c, &c->in[i]) && seen++ == nth)
                return c->in[i];
        return c->n_in ? c->in[nth % c->n_in] : v_null();
    }
    if (col->aff == 'B' && !c->numeric && c->minlen == 0 && c->maxlen < 0 && !col->unparsed &&
        blob_type(col))
        return v_random_blob(fx);
    if (col->aff == 'U')
        return v_uuid(fx);
    if (col->aff == 'L')
        return v_int(1); /* true */
    if (col->aff == 'D') {
        /* distinct per row: a second of January 2024, or a day of 2024 for a date */
        char s[40];
        uint64_t k = n % (28u * 86400u);
        if (!strcmp(col->type, "date"))
            snprintf(s, sizeof s, "2024-%02u-%02u", (unsigned)(n / 28 % 12) + 1,
                     (unsigned)(n % 28) + 1);
        else
            snprintf(s, sizeof s, "2024-01-%02u %02u:%02u:%02u", (unsigned)(k / 86400) + 1,
                     (unsigned)(k / 3600 % 24), (unsigned)(k / 60 % 60), (unsigned)(k % 60));
        return v_text(fx, s);
    }
    if (col->aff == 'I' || col->aff == 'R' || col->aff == 'N' || c->numeric) {
        for (int64_t i = 0; i < 1000; i++) {
            v = gen_number(col, nth + i);
            if (fits(c, &v))
                return v;
        }
        return gen_number(col, nth);
    }
    return gen_text(fx, c, n);
}

/* ---- inserting a row ---- */

static int insert_row(tg__fixture *fx, const char *table, const colval *given, size_t n,
                      const char *key_col, const fx_ctx *ctx, tg_value *key);

/* A value for a foreign-key column: the fixture's own row of the referenced table (the
 * row's workspace or tenant, the family row of the same tenant), else an existing row,
 * else a new one. */
static int fk_value(tg__fixture *fx, const fx_col *c, const fx_ctx *ctx, tg_value *out) {
    const tg_rules *r = fx->r;
    const tg_app *a = &r->app;
    const char *to = c->fk_col;
    if (!strcasecmp(c->fk_table, a->workspaces.table) &&
        (!to[0] || !strcasecmp(to, a->workspaces.id)) && fx->ws[0].type != TG_NULL) {
        *out = fx->ws[ctx->w >= 0 ? ctx->w : 0];
        return TG_OK;
    }
    if (!strcasecmp(c->fk_table, a->tenants.table) && (!to[0] || !strcasecmp(to, a->tenants.id)) &&
        fx->tenant[0].type != TG_NULL) {
        *out = fx->tenant[ctx->t >= 0 ? ctx->t : 0];
        return TG_OK;
    }
    for (size_t fi = 0; fi < r->n_families; fi++) {
        const tg__fx_rows *R = &fx->fams[fi];
        int t = ctx->t >= 0 ? ctx->t : 0, k = ctx->k >= 0 ? ctx->k : 0;
        if (!strcasecmp(c->fk_table, r->families[fi].table) &&
            (!to[0] || !strcasecmp(to, r->families[fi].columns.id)) &&
            R->rows[t][k].type != TG_NULL) {
            *out = R->rows[t][k];
            return TG_OK;
        }
    }
    /* an existing row */
    tg__buf sql = {0};
    const tg__dialect *d = fx->eng->store->dialect;
    if (to[0])
        tg__sqlf(&sql, d, "SELECT %I FROM %I WHERE %I IS NOT NULL LIMIT 1", to, c->fk_table, to);
    else /* SQLite only: PostgreSQL's catalog always names the referenced columns */
        tg__sqlf(&sql, d, "SELECT %s FROM %I LIMIT 1", d->row_marker, c->fk_table);
    tg__stmt *st;
    int found = 0;
    if (!sql.oom &&
        tg__st_prepare_once(fx->eng->store, tg__buf_str(&sql), &st) == TG__ST_OK) {
        if (tg__st_step(st) == TG__ST_ROW) {
            *out = column_value(fx, st, 0);
            found = 1;
        }
        tg__st_finalize(st);
    }
    tg__buf_free(&sql);
    if (found)
        return TG_OK;
    /* a new one */
    if (fx->depth >= FX_MAX_DEPTH)
        return tg__fx_error(fx, TG_REFUSED,
                            "%s references %s, which has no row, and the fixture nests too deep to "
                            "make one; give a value for %s in %s",
                            c->name, c->fk_table, c->name, ctx->hint);
    fx_ctx sub = *ctx;
    char hint[320];
    snprintf(hint, sizeof hint, "a row of %s (made because %s references it)", c->fk_table,
             c->name);
    sub.hint = hint;
    fx->depth++;
    int st2 = insert_row(fx, c->fk_table, NULL, 0, to[0] ? to : NULL, &sub, out);
    fx->depth--;
    if (st2 == TG_OK && !to[0]) /* SQLite only (see above) */
        *out = v_int(tg__db_last_insert_id(fx->eng->store));
    return st2;
}

typedef struct slot {
    fx_col *col; /* in the table written */
    tg_value v;
    int filled; /* the fixture chose it (and may change it) */
    int key;
} slot;

/* "UNIQUE constraint failed: t.a, t.b": whether the message names column c. */
static int msg_names(const char *msg, const char *table, const char *col) {
    const char *p = strchr(msg, ':');
    if (!p)
        return 0;
    char want[300];
    snprintf(want, sizeof want, "%s.%s", table, col);
    size_t n = strlen(want);
    for (p++; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (strncasecmp(p, want, n) == 0 && (p[n] == 0 || p[n] == ','))
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

/* The column a NOT NULL failure names: SQLite's "NOT NULL constraint failed: t.c",
 * PostgreSQL's "null value in column "c" of relation "t" ...". 0 when none. */
static int failed_column(const char *msg, char *out, size_t cap) {
    const char *p = strstr(msg, "column \"");
    if (p) {
        p += 8;
        const char *e = strchr(p, '"');
        if (!e || (size_t)(e - p) >= cap)
            return 0;
        memcpy(out, p, (size_t)(e - p));
        out[e - p] = 0;
        return 1;
    }
    p = strrchr(msg, '.');
    if (!p)
        return 0;
    snprintf(out, cap, "%s", p + 1);
    return 1;
}

/* The CHECK a failure names: SQLite's "CHECK constraint failed: <name or expression>",
 * PostgreSQL's "... violates check constraint "name"". "" when none. */
static void failed_check(const char *msg, char *out, size_t cap) {
    const char *p = strstr(msg, "check constraint \"");
    out[0] = 0;
    if (p) {
        p += 18;
        const char *e = strchr(p, '"');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n < cap) {
            memcpy(out, p, n);
            out[n] = 0;
        }
        return;
    }
    p = strstr(msg, "failed: ");
    if (p)
        snprintf(out, cap, "%s", p + 8);
}

/* The largest integer in table.column plus one (1 on an empty table). */
static int next_int(tg__fixture *fx, const char *table, const char *column, tg_value *out) {
    tg__buf q = {0};
    fx->eng->store->dialect->fx_max_int(&q, table, column);
    int rc = TG__ST_NOMEM;
    int64_t mx = q.oom ? 0 : one_int(fx->eng->store, tg__buf_str(&q), &rc);
    tg__buf_free(&q);
    if (rc != TG__ST_OK)
        return db_fail(fx, table);
    if (mx == INT64_MAX)
        return tg__fx_error(fx, TG_REFUSED, "%s.%s: the largest key is taken", table, column);
    *out = v_int(mx + 1);
    return TG_OK;
}

/* Whether the table column c references has a row whose key is v (*has). */
static int referenced(tg__fixture *fx, const fx_col *c, const tg_value *v, int *has) {
    tg__buf q = {0};
    tg__stmt *st;
    tg__sqlf(&q, fx->eng->store->dialect, "SELECT 1 FROM %I WHERE %I = %P", c->fk_table,
             c->fk_col, 1);
    *has = 0;
    if (q.oom || tg__st_prepare_once(fx->eng->store, tg__buf_str(&q), &st) != TG__ST_OK) {
        tg__buf_free(&q);
        return db_fail(fx, c->fk_table);
    }
    tg__buf_free(&q);
    bind_value(st, 1, v);
    int rc = tg__st_step(st);
    *has = rc == TG__ST_ROW;
    tg__st_finalize(st);
    return rc == TG__ST_ROW || rc == TG__ST_DONE ? TG_OK : db_fail(fx, c->fk_table);
}

static int exec(tg__fixture *fx, const char *sql) {
    return tg__db_exec(fx->eng->store, sql);
}

/* Inserts one row into `table` (a table, a view with an INSTEAD OF INSERT trigger, or a
 * simple view, through its base table): the given values win; every other NOT NULL column
 * without a default is filled. key_col (NULL: none) gets a fresh key of its type when not
 * given; *key is the key the row got. */
static int insert_row(tg__fixture *fx, const char *table, const colval *given, size_t n,
                      const char *key_col, const fx_ctx *ctx, tg_value *key) {
    tg__db *db = fx->eng->store;
    tg__fx_table *view = NULL, *t = NULL;
    int st = tg__fx_load_table(fx, table, &t);
    if (st != TG_OK)
        return st;
    if (t->kind == TBL_VIEW_BASE) {
        view = t;
        t = t->base;
    }
    slot *slots = calloc((size_t)t->n_cols + n + 20, sizeof *slots);
    tg__buf sql = {0};
    tg__stmt *ins = NULL;
    size_t ns = 0;
    if (!slots)
        return tg__fx_error(fx, TG_NOMEM, "%s: out of memory", table);
    /* the given values, later ones winning, then the view's fixed ones */
    for (size_t i = 0; i < n + (view ? (size_t)view->n_fixed : 0); i++) {
        const colval *g = i < n ? &given[i] : &view->fixed[i - n];
        fx_col *c = view ? tg__fx_written_col(view, g->col) : tg__fx_find_col(t, g->col);
        if (!c && view) /* a base column the view does not show (a fixture may name one) */
            c = tg__fx_find_col(t, g->col);
        if (!c) {
            st = tg__fx_error(fx, TG_REFUSED,
                              view ? "%s has no column %s that is a plain column of its base table "
                                     "(the fixture writes the view through its base table)"
                                   : "%s has no column named %s",
                              table, g->col);
            goto done;
        }
        size_t j = 0;
        while (j < ns && slots[j].col != c)
            j++;
        if (j < ns && i >= n)
            continue; /* a given value beats the view's WHERE */
        slots[j].col = c;
        slots[j].v = g->v;
        slots[j].key = key_col && !strcasecmp(g->col, key_col);
        if (j == ns)
            ns++;
    }
    /* the key */
    fx_col *kc =
        key_col ? (view ? tg__fx_written_col(view, key_col) : tg__fx_find_col(t, key_col)) : NULL;
    if (key_col && !kc) {
        st = tg__fx_error(fx, TG_REFUSED, "%s has no column named %s", table, key_col);
        goto done;
    }
    int key_given = 0;
    for (size_t j = 0; j < ns; j++)
        key_given |= slots[j].col == kc;
    if (kc && !key_given) {
        slot *s = &slots[ns++];
        s->col = kc;
        s->key = 1;
        /* an untyped key takes text: a text key keeps its type in a column of any affinity
         * that refers to it (an integer turns into text in a TEXT `via` column, and then
         * never matches its owner, compared by type and value) */
        if (kc->aff == 'T' || kc->aff == 'U' || (kc->aff == 'B' && !blob_type(kc))) {
            s->v = v_uuid(fx);
        } else if (kc->aff == 'B') {
            s->v = v_random_blob(fx);
        } else if ((st = next_int(fx, table, key_col, &s->v)) != TG_OK) {
            goto done;
        }
    }
    /* every other column that needs a value */
    for (int i = 0; i < t->n_cols; i++) {
        fx_col *c = &t->cols[i];
        size_t j = 0;
        while (j < ns && slots[j].col != c)
            j++;
        if (j < ns || c->generated || c->rowid_alias)
            continue;
        if (!c->force && !(c->notnull && !c->has_default) && !(c->pk && t->kind == TBL_TABLE))
            continue;
        slot *s = &slots[ns++];
        s->col = c;
        s->filled = 1;
        if (c->fk >= 0 && (st = fk_value(fx, c, ctx, &s->v)) != TG_OK)
            goto done;
        if (c->fk >= 0) {
            s->filled = 0;
        } else if (c->maxkey) {
            s->filled = 0;
            if ((st = next_int(fx, t->name, c->name, &s->v)) != TG_OK)
                goto done;
        } else {
            s->v = gen_value(fx, c, (uint64_t)++fx->counter);
        }
    }
    const tg__dialect *d = db->dialect;
    tg__sqlf(&sql, d, "%s%I", d->fx_insert, t->name);
    if (!ns) /* "INSERT INTO t () ..." is not SQL */
        tg__buf_add(&sql, " DEFAULT VALUES");
    for (size_t j = 0; j < ns; j++)
        tg__sqlf(&sql, d, "%s%I", j ? ", " : " (", slots[j].col->name);
    for (size_t j = 0; j < ns; j++)
        tg__sqlf(&sql, d, "%s%P", j ? ", " : ") VALUES (", (int)j + 1);
    if (ns)
        tg__buf_add(&sql, ")");
    if (sql.oom || tg__st_prepare_once(db, tg__buf_str(&sql), &ins) != TG__ST_OK) {
        st = db_fail(fx, t->name);
        goto done;
    }
    char last_msg[400] = "";
    for (int attempt = 0;; attempt++) {
        if (attempt == FX_ATTEMPTS) {
            st = tg__fx_error(fx, TG_REFUSED,
                              "%s: no row after %d attempts (last: %s); give values in %s", t->name,
                              FX_ATTEMPTS, last_msg, ctx->hint);
            goto done;
        }
        tg__st_reset(ins);
        for (size_t j = 0; j < ns; j++)
            bind_value(ins, (int)j + 1, &slots[j].v);
        if (exec(fx, "SAVEPOINT tg_fixture") != TG__ST_OK) {
            st = db_fail(fx, t->name);
            goto done;
        }
        int rc = tg__st_step(ins);
        if (rc == TG__ST_DONE) {
            exec(fx, "RELEASE tg_fixture");
            break;
        }
        int xrc = tg__db_constraint(db);
        snprintf(last_msg, sizeof last_msg, "%s", tg__db_errmsg(db));
        /* the column and constraint as the server names them in its error fields, where it
         * does (PostgreSQL, whatever the language of its messages); else from the message */
        char fail_col[128] = "", fail_con[128] = "";
        const char *fo = tg__db_failure_object(db, 1);
        if (fo)
            snprintf(fail_col, sizeof fail_col, "%s", fo);
        fo = tg__db_failure_object(db, 0);
        if (fo)
            snprintf(fail_con, sizeof fail_con, "%s", fo);
        tg__st_reset(ins);
        exec(fx, "ROLLBACK TO tg_fixture");
        exec(fx, "RELEASE tg_fixture");
        if (xrc == TG__CONSTRAINT_UNIQUE) {
            /* the columns SQLite's message names; PostgreSQL's names the index only: then
             * every UNIQUE column the fixture filled moves on */
            int named = 0, moved = 0;
            for (int i = 0; i < t->n_cols && !named; i++)
                named = msg_names(last_msg, t->name, t->cols[i].name);
            for (size_t j = 0; j < ns; j++)
                if (slots[j].filled && (named ? msg_names(last_msg, t->name, slots[j].col->name)
                                              : slots[j].col->unique)) {
                    slots[j].col->bump++;
                    slots[j].v = gen_value(fx, slots[j].col, (uint64_t)++fx->counter);
                    moved = 1;
                }
            if (!moved) {
                st = tg__fx_error(fx, TG_REFUSED,
                                  "%s: %s: the values given (%s) repeat on every row the fixture "
                                  "makes; leave them out of %s so the fixture fills distinct ones",
                                  t->name, last_msg, ctx->hint, ctx->hint);
                goto done;
            }
            continue;
        }
        if (xrc == TG__CONSTRAINT_NOTNULL) {
            char cname[128];
            fx_col *c = fail_col[0]                                   ? tg__fx_find_col(t, fail_col)
                        : failed_column(last_msg, cname, sizeof cname) ? tg__fx_find_col(t, cname)
                                                                       : NULL;
            size_t j = 0;
            while (c && j < ns && slots[j].col != c)
                j++;
            if (!c || j < ns || c->force) {
                st = tg__fx_error(fx, TG_REFUSED, "%s: %s; give a value in %s", t->name, last_msg,
                                  ctx->hint);
                goto done;
            }
            c->force = 1; /* NOT NULL with a NULL default, or a trigger's base column */
            tg__st_finalize(ins);
            ins = NULL;
            tg__buf_free(&sql);
            free(slots);
            return insert_row(fx, table, given, n, key_col, ctx, key);
        }
        if (xrc == TG__CONSTRAINT_FOREIGN_KEY) {
            /* a key the row was given (an actor, an owner) that the referenced table lacks:
             * SQLite defers the check to a commit that never comes, PostgreSQL checks a key
             * that is not DEFERRABLE at once; the referenced row is made, then the insert is
             * tried again */
            int made = 0;
            for (size_t j = 0; j < ns; j++) {
                int has = 0;
                fx_col *c = slots[j].col;
                if (c->fk < 0 || !c->fk_col[0] || slots[j].v.type == TG_NULL)
                    continue;
                if ((st = referenced(fx, c, &slots[j].v, &has)) != TG_OK)
                    goto done;
                if (has)
                    continue;
                if (fx->depth >= FX_MAX_DEPTH) {
                    st = tg__fx_error(fx, TG_REFUSED,
                                      "%s.%s references %s, which has no row %s, and the fixture "
                                      "nests too deep to make one; give a value in %s",
                                      t->name, c->name, c->fk_table, c->fk_col, ctx->hint);
                    goto done;
                }
                fx_ctx sub = *ctx;
                char hint[320];
                snprintf(hint, sizeof hint, "a row of %s (made because %s references it)",
                         c->fk_table, c->name);
                sub.hint = hint;
                colval ref = {c->fk_col, slots[j].v};
                tg_value made_key;
                fx->depth++;
                st = insert_row(fx, c->fk_table, &ref, 1, c->fk_col, &sub, &made_key);
                fx->depth--;
                if (st != TG_OK)
                    goto done;
                made = 1;
            }
            if (made)
                continue;
        }
        if (xrc != TG__CONSTRAINT_CHECK) {
            st = tg__fx_error(fx, TG_REFUSED, "%s: %s (inserting a fixture row; give values in %s)",
                              t->name, last_msg, ctx->hint);
            goto done;
        }
        /* which CHECK: by its name or its text */
        char what[300];
        if (fail_con[0])
            snprintf(what, sizeof what, "%s", fail_con);
        else
            failed_check(last_msg, what, sizeof what);
        const fx_check *ck = NULL;
        for (int i = 0; i < t->n_checks && !ck; i++)
            if ((t->checks[i].name[0] && !strcasecmp(t->checks[i].name, what)) ||
                !strcmp(t->checks[i].text, what))
                ck = &t->checks[i];
        /* the first filled column it mentions with a candidate left moves on */
        slot *moved = NULL, *culprit = NULL;
        for (size_t j = 0; j < ns && !moved; j++) {
            int ci = (int)(slots[j].col - t->cols);
            int mentioned =
                ck ? (int)((ck->cols[ci / 64] >> (ci % 64)) & 1) : slots[j].col->unparsed;
            if (!mentioned)
                continue;
            if (!culprit)
                culprit = &slots[j];
            if (!slots[j].filled || slots[j].key)
                continue;
            culprit = &slots[j];
            tg_value v;
            if (candidate(fx, slots[j].col, slots[j].col->cand + 1, (uint64_t)++fx->counter, &v)) {
                slots[j].col->cand++;
                slots[j].v = v;
                moved = &slots[j];
            } else {
                slots[j].col->cand = -1;
                slots[j].v = gen_value(fx, slots[j].col, (uint64_t)++fx->counter);
            }
        }
        if (!moved) {
            char val[80] = "";
            if (culprit)
                v_describe(&culprit->v, val, sizeof val);
            st = tg__fx_error(fx, TG_REFUSED,
                              "%s.%s: CHECK constraint %s fails for %s (%s); give a value for %s "
                              "in %s",
                              t->name, culprit ? culprit->col->name : "?", what,
                              culprit && culprit->filled ? "every value the fixture tried"
                                                         : "the value given",
                              culprit ? val : "no column of it is filled by the fixture",
                              culprit ? culprit->col->name : "its columns", ctx->hint);
            goto done;
        }
    }
    for (int i = 0; i < t->n_cols; i++)
        t->cols[i].uses++;
    if (key) {
        size_t j = 0;
        while (j < ns && !slots[j].key)
            j++;
        /* no key column given: the rowid SQLite chose (a PostgreSQL row always has one: its
         * catalog names every referenced column) */
        *key = j < ns ? slots[j].v
               : db->backend == TG__BACKEND_SQLITE ? v_int(tg__db_last_insert_id(db))
                                                   : v_null();
    }
    if (view) {
        /* the row must show through the view */
        tg__buf q = {0};
        tg__sqlf(&q, d, "SELECT count(*) FROM %I WHERE 1 = 1", view->name);
        for (size_t i = 0; i < n; i++)
            if (tg__fx_written_col(view, given[i].col))
                tg__sqlf(&q, d, " AND %I%s%P", given[i].col, d->is, (int)i + 1);
        tg__stmt *chk;
        int seen = 0;
        if (!q.oom && tg__st_prepare_once(db, tg__buf_str(&q), &chk) == TG__ST_OK) {
            for (size_t i = 0; i < n; i++)
                if (tg__fx_written_col(view, given[i].col))
                    bind_value(chk, (int)i + 1, &given[i].v);
            if (tg__st_step(chk) == TG__ST_ROW)
                seen = (int)tg__st_column_int64(chk, 0) > 0;
            tg__st_finalize(chk);
        }
        tg__buf_free(&q);
        if (!seen)
            st = tg__fx_error(fx, TG_REFUSED,
                              "%s is a view over %s, and the row the fixture wrote to %s does not "
                              "show through its WHERE; give the values its WHERE needs in %s, or "
                              "give %s an INSTEAD OF INSERT trigger",
                              view->name, t->name, t->name, ctx->hint, view->name);
    }
done:
    tg__st_finalize(ins);
    tg__buf_free(&sql);
    free(slots);
    return st;
}

/* ---- the fixture ---- */

static const char *tenant_tag(int t) {
    return t == T_A ? "A" : t == T_B ? "B" : "C";
}

static colval cv(const char *col, tg_value v) {
    colval c = {col, v};
    return c;
}

/* Appends the rules' fixture values for a table. */
static size_t add_fixture(colval *given, size_t n, size_t cap, const tg_field_value *fv,
                          size_t nf) {
    for (size_t i = 0; i < nf && n < cap; i++) {
        given[n] = cv(fv[i].column, fv[i].value);
        if (given[n].v.type == TG_TEXT) /* the rules keep text NUL-terminated, n unset */
            given[n].v.n = strlen(given[n].v.s);
        n++;
    }
    return n;
}

/* Values that make a row visible through a row filter, for the columns the rules' fixture
 * does not name already (the fixture stays the override): the first value of `eq` and `in`,
 * the bound of `le`/`ge` (one past it for `lt`/`gt`), NULL for `is_null`. Other conditions
 * (`ne`, `not_in`, `is_not_null`) are left to the filler, whose values rarely hit them. At
 * most 16 conditions: the compiler's cap. */
static size_t add_visible(colval *given, size_t n, const tg_row_filter *f) {
    for (size_t i = 0; i < f->n_conds && i < 16; i++) {
        const tg_filter_cond *c = &f->conds[i];
        int named = 0;
        for (size_t k = 0; k < n && !named; k++)
            named = strcmp(given[k].col, c->column) == 0;
        if (named)
            continue;
        size_t before = n;
        tg_value v = c->n_values ? c->values[0] : v_null();
        if (v.type == TG_BOOLEAN)
            v.type = TG_INTEGER; /* bound as 1/0, as the filter binds it */
        switch (c->op) {
        case TG_FILTER_IS_NULL: given[n++] = cv(c->column, v_null()); break;
        case TG_FILTER_EQ:
        case TG_FILTER_IN:
        case TG_FILTER_LE:
        case TG_FILTER_GE: given[n++] = cv(c->column, v); break;
        case TG_FILTER_LT:
        case TG_FILTER_GT: {
            int d = c->op == TG_FILTER_GT ? 1 : -1;
            if (v.type == TG_INTEGER && !(d > 0 ? v.i == INT64_MAX : v.i == INT64_MIN))
                v.i += d;
            else if (v.type == TG_REAL)
                v.r += d;
            else
                break;
            given[n++] = cv(c->column, v);
            break;
        }
        default: break;
        }
        if (n > before && given[n - 1].v.type == TG_TEXT && given[n - 1].v.s)
            given[n - 1].v.n = strlen(given[n - 1].v.s); /* rule text: n unset */
    }
    return n;
}

/* Rows of one family or exception table: two per tenant, with the rules' fixture values,
 * the tenant, the workspace (when the column exists), a searchable name and, for a
 * relation-manager child, its owner of the same tenant. `names` are the table's own id, tenant
 * and workspace columns (its rules' names, or the app's). */
static int fill_table(tg__fixture *fx, const char *table, const tg_family *fam, tg__fx_rows *out,
                      const tg_columns *names, const char *hint) {
    tg__fx_table *t;
    int st = tg__fx_load_table(fx, table, &t);
    if (st != TG_OK)
        return st;
    int has_ws = tg__fx_written_col(t, names->workspace) != NULL;
    fx_col *tc = tg__fx_written_col(t, names->tenant);
    const tg_path_rule *rm = fam ? &fam->paths[TG_PATH_RELATION_MANAGER] : NULL;
    for (int tn = 0; tn < N_TENANTS; tn++) {
        for (int k = 0; k < 2; k++) {
            colval given[TG__MAX_FIXTURE + 8 + 16];
            size_t n =
                fam ? add_fixture(given, 0, TG__MAX_FIXTURE, fam->fixture, fam->n_fixture) : 0;
            if (fam)
                n = add_visible(given, n, &fam->row_filter);
            char name[64];
            snprintf(name, sizeof name, "tgmatrix-%s-%d", tenant_tag(tn), k + 1);
            if (fam && fam->n_search_columns)
                given[n++] = cv(fam->search_columns[0], v_text(fx, name));
            if (tc)
                given[n++] = cv(names->tenant, fx->tenant[tn]);
            if (has_ws)
                given[n++] = cv(names->workspace, fx->ws[tn == T_C ? 1 : 0]);
            if (rm && rm->declared && fx->fams[rm->owner_family].rows[tn][k].type != TG_NULL)
                given[n++] = cv(rm->via, fx->fams[rm->owner_family].rows[tn][k]);
            fx_ctx ctx = {tn, tn == T_C ? 1 : 0, k, hint};
            if ((st = insert_row(fx, table, given, n, names->id, &ctx, &out->rows[tn][k])) !=
                TG_OK)
                return st;
        }
    }
    if (!fam && has_ws && (!tc || !tc->notnull)) {
        /* an exception's workspace-level row without a tenant, when the table allows one */
        colval given[3];
        size_t n = 0;
        given[n++] = cv(names->workspace, fx->ws[0]);
        if (tc)
            given[n++] = cv(names->tenant, v_null());
        fx_ctx ctx = {-1, 0, 0, hint};
        if ((st = insert_row(fx, table, given, n, names->id, &ctx, &out->ws_row)) != TG_OK)
            return st;
    }
    if (fam) {
        /* a column the write check may change: a text fixture column, or the search column */
        for (size_t i = 0; i < fam->n_fixture && !out->write_column; i++)
            if (fam->fixture[i].value.type == TG_TEXT)
                out->write_column = fam->fixture[i].column;
        if (!out->write_column && fam->n_search_columns)
            out->write_column = fam->search_columns[0];
        /* else a plain text column of the table that no key, reference or CHECK constrains,
         * and that is none of the columns the guard sets itself or a relation links by */
        for (int i = 0; !out->write_column && !t->base && i < t->n_cols; i++) {
            const fx_col *c = &t->cols[i];
            if (c->aff != 'T' || c->pk || c->unique || c->fk >= 0 || c->generated ||
                c->unparsed || c->cons.has_in || c->cons.n_ne || c->cons.has_min ||
                c->cons.has_max || c->cons.minlen > 0 || c->cons.maxlen >= 0 ||
                !strcmp(c->name, names->id) || !strcmp(c->name, names->tenant) ||
                (names->workspace && !strcmp(c->name, names->workspace)) ||
                (rm && rm->declared && rm->via && !strcmp(c->name, rm->via)))
                continue;
            /* the table's copy of the name lives as long as the fixture */
            out->write_column = c->name;
        }
    }
    return TG_OK;
}

/* Points relation-manager children at owners of the same tenant (child k of tenant t belongs
 * to owner k of tenant t), for the children made before their owners. */
static int link_children(tg__fixture *fx, const unsigned char *before_owner) {
    const tg_rules *r = fx->r;
    for (size_t fi = 0; fi < r->n_families; fi++) {
        const tg_path_rule *p = &r->families[fi].paths[TG_PATH_RELATION_MANAGER];
        if (!p->declared || !before_owner[fi])
            continue;
        tg__buf sql = {0};
        tg__sqlf(&sql, fx->eng->store->dialect, "UPDATE %I SET %I = %P WHERE %I = %P",
                 r->families[fi].table, p->via, 1, r->families[fi].columns.id, 2);
        tg__stmt *st;
        if (sql.oom ||
            tg__st_prepare_once(fx->eng->store, tg__buf_str(&sql), &st) != TG__ST_OK) {
            tg__buf_free(&sql);
            return db_fail(fx, r->families[fi].table);
        }
        tg__buf_free(&sql);
        for (int t = 0; t < N_TENANTS; t++)
            for (int k = 0; k < 2; k++) {
                bind_value(st, 1, &fx->fams[p->owner_family].rows[t][k]);
                bind_value(st, 2, &fx->fams[fi].rows[t][k]);
                if (tg__st_step(st) != TG__ST_DONE) {
                    tg__st_finalize(st);
                    return db_fail(fx, r->families[fi].table);
                }
                tg__st_reset(st);
            }
        tg__st_finalize(st);
    }
    return TG_OK;
}

static int count_grants(const tg_rules *r, const tg_role *role) {
    int n = 0;
    for (size_t c = 0; c < r->n_capabilities; c++)
        n += tg__role_grants(role, (int)c);
    return n;
}

static const tg_role *role_named(const tg_rules *r, const char *name, size_t len) {
    for (size_t i = 0; i < r->n_roles; i++)
        if (strlen(r->roles[i].name) == len && memcmp(r->roles[i].name, name, len) == 0)
            return &r->roles[i];
    return NULL;
}

/* Whether the role column's CHECK (as read) allows v. */
static int allowed(const fx_col *rc, const tg_value *v) {
    if (!rc)
        return 1;
    if (!fits(&rc->cons, v))
        return 0;
    if (!rc->cons.has_in)
        return 1;
    for (int k = 0; k < rc->cons.n_in; k++)
        if (v_equal(v, &rc->cons.in[k]))
            return 1;
    return 0;
}

/* The role values the membership rows take: the role granting most among those the role
 * column's CHECK allows, and one that grants nothing (an undeclared name, an allowed value
 * no rule role grants anything to, or NULL). */
static int choose_roles(tg__fixture *fx, const char *where, const char *role_col, const fx_col *rc,
                        tg_value *full, tg_value *nocap) {
    const tg_rules *r = fx->r;
    fx->role_full = NULL;
    for (size_t i = 0; i < r->n_roles; i++) {
        tg_value v = v_text(fx, r->roles[i].name);
        if (!allowed(rc, &v))
            continue;
        if (!fx->role_full || count_grants(r, &r->roles[i]) > count_grants(r, fx->role_full))
            fx->role_full = &r->roles[i];
    }
    if (!fx->role_full)
        return tg__fx_error(fx, TG_REFUSED,
                            "%s.%s: its CHECK allows none of the roles the rules declare", where,
                            role_col);
    *full = v_text(fx, fx->role_full->name);
    tg_value undeclared = v_text(fx, "tgmatrix-no-capabilities");
    if (!rc || (!rc->cons.has_in && fits(&rc->cons, &undeclared))) {
        *nocap = undeclared;
        return TG_OK;
    }
    for (int k = 0; rc->cons.has_in && k < rc->cons.n_in; k++) {
        const tg_value *v = &rc->cons.in[k];
        if (v->type != TG_TEXT || !fits(&rc->cons, v))
            continue;
        const tg_role *role = role_named(r, v->s, v->n);
        if (!role || count_grants(r, role) == 0) {
            *nocap = *v;
            return TG_OK;
        }
    }
    if (!rc->cons.has_in) {
        *nocap = gen_text(fx, &rc->cons, (uint64_t)++fx->counter);
        if (!role_named(r, nocap->s, nocap->n))
            return TG_OK;
    }
    if (!rc->notnull) {
        *nocap = v_null();
        return TG_OK;
    }
    return tg__fx_error(
        fx, TG_REFUSED,
        "%s.%s: its CHECK allows only roles that grant capabilities, and the matrix "
        "needs a member whose role grants nothing; allow a role that grants nothing "
        "(or NULL) in the CHECK",
        where, role_col);
}

/* A user key of the type the membership tables' user column holds. */
static tg_value user_key(tg__fixture *fx, const fx_col *uc, int u) {
    if (uc && (uc->aff == 'T' || uc->aff == 'U'))
        return v_uuid(fx);
    if (uc && uc->aff == 'B' && blob_type(uc))
        return v_random_blob(fx);
    /* users that exist nowhere else, within the column's range (PostgreSQL's integer and
     * smallint are narrower than a key) */
    if (uc && !strcmp(uc->type, "integer"))
        return v_int(2147483000LL + u);
    if (uc && !strcmp(uc->type, "smallint"))
        return v_int(32700 + u);
    return v_int(4000000000000000000LL + u);
}

int tg__fixture_build(tg__fixture *fx) {
    const tg_rules *r = fx->r;
    const tg_app *a = &r->app;
    if (r->n_roles == 0)
        return tg__fx_error(fx, TG_RULES, "the rules declare no role");
    int st;
    for (int w = 0; w < 2; w++) {
        colval given[TG__MAX_FIXTURE + 16];
        size_t n =
            add_fixture(given, 0, TG__MAX_FIXTURE, a->workspaces.fixture, a->workspaces.n_fixture);
        n = add_visible(given, n, &a->workspaces.row_filter);
        fx_ctx ctx = {-1, w, w, "app.workspaces.fixture"};
        if ((st = insert_row(fx, a->workspaces.table, given, n, a->workspaces.id, &ctx,
                             &fx->ws[w])) != TG_OK)
            return st;
    }
    for (int t = 0; t < N_TENANTS; t++) {
        colval given[TG__MAX_FIXTURE + 1 + 16];
        size_t n = add_fixture(given, 0, TG__MAX_FIXTURE, a->tenants.fixture, a->tenants.n_fixture);
        n = add_visible(given, n, &a->tenants.row_filter);
        given[n++] = cv(a->tenants.workspace, fx->ws[t == T_C ? 1 : 0]);
        fx_ctx ctx = {t, t == T_C ? 1 : 0, t, "app.tenants.fixture"};
        if ((st = insert_row(fx, a->tenants.table, given, n, a->tenants.id, &ctx,
                             &fx->tenant[t])) != TG_OK)
            return st;
    }
    /* the membership tables: user key type, role values, whether a NULL role is possible */
    tg__fx_table *wmt, *tmt;
    if ((st = tg__fx_load_table(fx, a->workspace_members.table, &wmt)) != TG_OK ||
        (st = tg__fx_load_table(fx, a->tenant_members.table, &tmt)) != TG_OK)
        return st;
    const fx_col *uc = tg__fx_written_col(wmt, a->workspace_members.user);
    /* the actors' roles go in the workspace role column; without one
     * (workspace_members.role = false) in the tenant role column */
    const char *wm_role = a->workspace_members.role, *tm_role = a->tenant_members.role;
    if (!wm_role && !tm_role)
        return tg__fx_error(fx, TG_RULES,
                            "neither membership maps a role column (workspace_members.role = "
                            "false, no tenant_members.role), so no actor can hold a role");
    const fx_col *wrc = wm_role ? tg__fx_written_col(wmt, wm_role) : NULL;
    const fx_col *trc = tm_role ? tg__fx_written_col(tmt, tm_role) : NULL;
    if ((wm_role && !wrc) || (tm_role && !trc))
        return tg__fx_error(fx, TG_REFUSED, "%s has no column %s the fixture can write",
                            wm_role && !wrc ? a->workspace_members.table : a->tenant_members.table,
                            wm_role && !wrc ? wm_role : tm_role);
    const fx_col *rc = wm_role ? wrc : trc;
    tg_value role_full = v_null(), role_nocap = v_null();
    if ((st = choose_roles(fx, wm_role ? a->workspace_members.table : a->tenant_members.table,
                           wm_role ? wm_role : tm_role, rc, &role_full, &role_nocap)) != TG_OK)
        return st;
    fx->has_norole = !rc->notnull;
    for (int u = 0; u < N_USERS; u++)
        fx->user[u] = user_key(fx, uc, u);
    const struct {
        int user, ws, tenant, full;
    } members[] = {{U_FULL, 0, T_A, 1},
                   {U_NOCAP, 0, T_A, 0},
                   {U_UNENTITLED, 0, T_B, 1},
                   {U_STRANGER, 1, T_C, 1},
                   {U_NOROLE, 0, T_A, -1}};
    /* the stranger keeps a stale entitlement to tenant A after leaving workspace X: only the
     * membership check stands between it and A's rows */
    for (size_t i = 0; i <= sizeof members / sizeof *members; i++) {
        int stale = i == sizeof members / sizeof *members;
        int m = stale ? 3 : (int)i;
        if (members[m].user == U_NOROLE && !fx->has_norole)
            continue;
        tg_value role = members[m].full > 0    ? role_full
                        : members[m].full == 0 ? role_nocap
                                               : v_null();
        if (!stale) {
            colval given[TG__MAX_FIXTURE + 3];
            size_t n = add_fixture(given, 0, TG__MAX_FIXTURE, a->workspace_members.fixture,
                                   a->workspace_members.n_fixture);
            given[n++] = cv(a->workspace_members.user, fx->user[members[m].user]);
            given[n++] = cv(a->workspace_members.workspace, fx->ws[members[m].ws]);
            if (wm_role)
                given[n++] = cv(wm_role, role);
            fx_ctx ctx = {members[m].tenant, members[m].ws, 0, "app.workspace_members.fixture"};
            if ((st = insert_row(fx, a->workspace_members.table, given, n, NULL, &ctx, NULL)) !=
                TG_OK)
                return st;
        }
        colval given[TG__MAX_FIXTURE + 3];
        size_t n = add_fixture(given, 0, TG__MAX_FIXTURE, a->tenant_members.fixture,
                               a->tenant_members.n_fixture);
        given[n++] = cv(a->tenant_members.user, fx->user[members[m].user]);
        given[n++] = cv(a->tenant_members.tenant, fx->tenant[stale ? T_A : members[m].tenant]);
        /* NULL keeps the workspace role; a NOT NULL tenant role repeats it; without a
         * workspace role column the tenant role is the actor's role */
        if (tm_role)
            given[n++] =
                cv(tm_role, !wm_role || (trc->notnull && role.type != TG_NULL) ? role : v_null());
        fx_ctx ctx = {stale ? T_A : members[m].tenant, stale ? 0 : members[m].ws, 0,
                      "app.tenant_members.fixture"};
        if ((st = insert_row(fx, a->tenant_members.table, given, n, NULL, &ctx, NULL)) != TG_OK)
            return st;
    }
    /* families, owners before the children that reference them where the order allows */
    unsigned char *done = calloc(r->n_families + 1, 2);
    if (!done)
        return tg__fx_error(fx, TG_NOMEM, "out of memory");
    unsigned char *before_owner = done + r->n_families + 1;
    st = TG_OK;
    for (size_t left = r->n_families; left && st == TG_OK;) {
        size_t pick = r->n_families;
        for (size_t fi = 0; fi < r->n_families && pick == r->n_families; fi++) {
            const tg_path_rule *p = &r->families[fi].paths[TG_PATH_RELATION_MANAGER];
            if (!done[fi] && (!p->declared || done[p->owner_family] || p->owner_family == (int)fi))
                pick = fi;
        }
        if (pick == r->n_families) /* a cycle of owners: the first left, linked afterwards */
            for (size_t fi = 0; fi < r->n_families && pick == r->n_families; fi++)
                if (!done[fi])
                    pick = fi;
        const tg_path_rule *p = &r->families[pick].paths[TG_PATH_RELATION_MANAGER];
        before_owner[pick] =
            p->declared && (!done[p->owner_family] || p->owner_family == (int)pick);
        char hint[200];
        snprintf(hint, sizeof hint, "the fixture of family %s", r->families[pick].name);
        st = fill_table(fx, r->families[pick].table, &r->families[pick], &fx->fams[pick],
                        &r->families[pick].columns, hint);
        done[pick] = 1;
        left--;
    }
    for (size_t ei = 0; ei < r->n_exceptions && st == TG_OK; ei++) {
        char hint[240];
        snprintf(hint, sizeof hint, "the table's schema (a DEFAULT): exception %s takes no fixture",
                 r->exceptions[ei].name);
        if (r->exceptions[ei].table)
            st = fill_table(fx, r->exceptions[ei].table, NULL, &fx->excs[ei],
                            &r->exceptions[ei].columns, hint);
    }
    if (st == TG_OK)
        st = link_children(fx, before_owner);
    free(done);
    return st;
}

void tg__fixture_free(tg__fixture *fx) {
    while (fx->tables) {
        tg__fx_table *next = fx->tables->next;
        free(fx->tables);
        fx->tables = next;
    }
    tg__arena_free(&fx->arena);
    tg__buf_free(&fx->err);
}
