/* The matrix fixture on any schema the rules lint clean against.
 *
 * Every table it writes (the app's workspaces, tenants and membership tables, every family
 * and exception table, and any table a foreign key makes it fill) gets every NOT NULL column
 * without a default filled with a value of the declared type that satisfies the CHECK
 * constraints it can read from the table's SQL (`col IN (...)`, comparisons, `BETWEEN`,
 * `length(col) ...`, `col <> ''`), distinct per row where a UNIQUE constraint or index covers
 * the column. A CHECK it cannot read is met by trying candidate values, each attempt under a
 * SAVEPOINT, keeping the first the database accepts. Keys: integers (max + 1), UUID-like
 * text, or 16 random bytes. A view without an INSTEAD OF INSERT trigger is written through
 * its base table when it is a simple single-table SELECT. Values the rules give (a family's
 * or an app table's `fixture`) always win. A failure names the table, the column and the
 * constraint, and says where to give a value. */
#include "fixture.h"
#include "rollout.h"
#include "rules.h"
#include "sql.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FX_MAX_COLS 128  /* columns of one table the fixture writes */
#define FX_MAX_CHECKS 64 /* CHECK constraints of one table read */
#define FX_MAX_IN 32     /* values of one IN list kept */
#define FX_MAX_TOKENS 8192
#define FX_ATTEMPTS 200 /* inserts tried for one row */
#define FX_MAX_DEPTH 3  /* tables made only to satisfy a foreign key, nested */

/* ---- values ---- */

typedef struct colval {
    const char *col;
    tg_value v;
} colval;

static tg_value v_int(int64_t i) {
    tg_value v = {TG_INTEGER, i, 0, NULL, 0};
    return v;
}

static tg_value v_real(double r) {
    tg_value v = {TG_REAL, 0, r, NULL, 0};
    return v;
}

static tg_value v_null(void) {
    tg_value v = {TG_NULL, 0, 0, NULL, 0};
    return v;
}

/* Text kept in the fixture's arena (NULL value on OOM: the insert then fails closed). */
static tg_value v_text(tg__fixture *fx, const char *s) {
    tg_value v = {TG_TEXT, 0, 0, tg__arena_strdup(&fx->arena, s), 0};
    v.n = v.s ? strlen(v.s) : 0;
    if (!v.s)
        v.type = TG_NULL;
    return v;
}

static tg_value v_random_blob(tg__fixture *fx) {
    tg_value v = {TG_BLOB, 0, 0, NULL, 16};
    char *p = tg__arena_alloc(&fx->arena, 16);
    if (!p)
        return v_null();
    sqlite3_randomness(16, p);
    v.s = p;
    return v;
}

/* Random version-4 UUID text, e.g. 0b9c4e2a-1f0d-4c3b-9a8e-5d6f7a8b9c0d. */
static tg_value v_uuid(tg__fixture *fx) {
    unsigned char b[16];
    sqlite3_randomness(16, b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char s[40];
    snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return v_text(fx, s);
}

static int v_equal(const tg_value *a, const tg_value *b) {
    if (a->type == TG_TEXT && b->type == TG_TEXT)
        return strcmp(a->s, b->s) == 0;
    if ((a->type == TG_INTEGER || a->type == TG_REAL) &&
        (b->type == TG_INTEGER || b->type == TG_REAL)) {
        double x = a->type == TG_INTEGER ? (double)a->i : a->r;
        double y = b->type == TG_INTEGER ? (double)b->i : b->r;
        return x == y;
    }
    return 0;
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

static void bind_value(sqlite3_stmt *st, int k, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER:
    case TG_BOOLEAN: sqlite3_bind_int64(st, k, v->i); break;
    case TG_REAL: sqlite3_bind_double(st, k, v->r); break;
    case TG_TEXT: sqlite3_bind_text(st, k, v->s, (int)v->n, SQLITE_TRANSIENT); break;
    case TG_BLOB: sqlite3_bind_blob(st, k, v->s, (int)v->n, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_null(st, k);
    }
}

static tg_value column_value(tg__fixture *fx, sqlite3_stmt *st, int k) {
    switch (sqlite3_column_type(st, k)) {
    case SQLITE_INTEGER: return v_int(sqlite3_column_int64(st, k));
    case SQLITE_FLOAT: return v_real(sqlite3_column_double(st, k));
    case SQLITE_TEXT: return v_text(fx, (const char *)sqlite3_column_text(st, k));
    case SQLITE_BLOB: {
        int n = sqlite3_column_bytes(st, k);
        char *p = tg__arena_alloc(&fx->arena, (size_t)n + 1);
        if (!p)
            return v_null();
        memcpy(p, sqlite3_column_blob(st, k), (size_t)n);
        tg_value v = {TG_BLOB, 0, 0, p, (size_t)n};
        return v;
    }
    default: return v_null();
    }
}

/* ---- a cautious SQL tokenizer (for sqlite_schema's text) ---- */

enum { K_END, K_ID, K_QID, K_STR, K_NUM, K_BLOB, K_OP };

typedef struct tok {
    int kind;
    const char *p;
    size_t n;
} tok;

typedef struct toks {
    tok *t;
    size_t n;
} toks;

/* Splits sql into tokens, without comments. Returns 0 on anything it does not understand
 * (an unterminated quote, too many tokens, no memory): the caller then reads nothing. */
static int tokenize(const char *sql, toks *out) {
    out->t = NULL;
    out->n = 0;
    size_t cap = 0;
    const char *p = sql;
    while (*p) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
            continue;
        }
        if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (!e)
                return 0;
            p = e + 2;
            continue;
        }
        tok t = {K_OP, p, 1};
        if (*p == '\'' || *p == '"' || *p == '`' || *p == '[' ||
            ((*p == 'x' || *p == 'X') && p[1] == '\'')) {
            char close = *p == '[' ? ']' : *p == 'x' || *p == 'X' ? '\'' : *p;
            t.kind = *p == '\'' ? K_STR : (*p == 'x' || *p == 'X') ? K_BLOB : K_QID;
            const char *q = p + (t.kind == K_BLOB ? 2 : 1);
            for (;;) {
                if (!*q)
                    return 0;
                if (*q == close) {
                    if (close != ']' && q[1] == close) {
                        q += 2;
                        continue;
                    }
                    break;
                }
                q++;
            }
            t.n = (size_t)(q + 1 - p);
        } else if (isalpha((unsigned char)*p) || *p == '_' || (unsigned char)*p >= 0x80) {
            const char *q = p;
            while (isalnum((unsigned char)*q) || *q == '_' || *q == '$' ||
                   (unsigned char)*q >= 0x80)
                q++;
            t.kind = K_ID;
            t.n = (size_t)(q - p);
        } else if (isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))) {
            const char *q = p;
            if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
                q += 2;
                while (isxdigit((unsigned char)*q))
                    q++;
            } else {
                while (isdigit((unsigned char)*q) || *q == '.')
                    q++;
                if ((*q == 'e' || *q == 'E') &&
                    (isdigit((unsigned char)q[1]) ||
                     ((q[1] == '+' || q[1] == '-') && isdigit((unsigned char)q[2])))) {
                    q += 2;
                    while (isdigit((unsigned char)*q))
                        q++;
                }
            }
            t.kind = K_NUM;
            t.n = (size_t)(q - p);
        } else {
            static const char *const two[] = {"<=", ">=", "<>", "!=", "==", "||", "<<", ">>"};
            for (size_t i = 0; i < sizeof two / sizeof *two; i++)
                if (p[0] == two[i][0] && p[1] == two[i][1])
                    t.n = 2;
        }
        if (out->n == cap) {
            if (cap >= FX_MAX_TOKENS) {
                free(out->t);
                out->t = NULL;
                return 0;
            }
            cap = cap ? cap * 2 : 64;
            tok *more = realloc(out->t, cap * sizeof *more);
            if (!more) {
                free(out->t);
                out->t = NULL;
                return 0;
            }
            out->t = more;
        }
        out->t[out->n++] = t;
        p += t.n;
    }
    return 1;
}

static int is_kw(const toks *ts, size_t i, const char *kw) {
    return i < ts->n && ts->t[i].kind == K_ID && ts->t[i].n == strlen(kw) &&
           strncasecmp(ts->t[i].p, kw, ts->t[i].n) == 0;
}

static int is_op(const toks *ts, size_t i, const char *op) {
    return i < ts->n && ts->t[i].kind == K_OP && ts->t[i].n == strlen(op) &&
           strncmp(ts->t[i].p, op, ts->t[i].n) == 0;
}

/* The identifier at token i, unquoted, into out. 0 when it is not one. */
static int ident_at(const toks *ts, size_t i, char *out, size_t cap) {
    if (i >= ts->n || cap == 0)
        return 0;
    const tok *t = &ts->t[i];
    if (t->kind == K_ID) {
        if (t->n >= cap)
            return 0;
        memcpy(out, t->p, t->n);
        out[t->n] = 0;
        return 1;
    }
    if (t->kind != K_QID)
        return 0;
    char close = t->p[0] == '[' ? ']' : t->p[0];
    size_t k = 0;
    for (size_t j = 1; j + 1 < t->n; j++) {
        if (t->p[j] == close && close != ']')
            j++; /* a doubled quote */
        if (k + 1 >= cap)
            return 0;
        out[k++] = t->p[j];
    }
    out[k] = 0;
    return 1;
}

/* The index of the token closing the parenthesis at i (which must be "("), or ts->n. */
static size_t close_paren(const toks *ts, size_t i) {
    int depth = 0;
    for (; i < ts->n; i++) {
        if (is_op(ts, i, "("))
            depth++;
        else if (is_op(ts, i, ")") && --depth == 0)
            return i;
    }
    return ts->n;
}

/* A literal at tokens [*i, ...): a signed number, a string, NULL, TRUE or FALSE. */
static int literal_at(tg__fixture *fx, const toks *ts, size_t *i, tg_value *out) {
    size_t k = *i;
    int neg = 0;
    if (is_op(ts, k, "-") || is_op(ts, k, "+")) {
        neg = is_op(ts, k, "-");
        k++;
    }
    if (k >= ts->n)
        return 0;
    const tok *t = &ts->t[k];
    if (t->kind == K_NUM) {
        char buf[64];
        if (t->n >= sizeof buf)
            return 0;
        memcpy(buf, t->p, t->n);
        buf[t->n] = 0;
        if (strpbrk(buf, ".eE") && !(buf[0] == '0' && (buf[1] == 'x' || buf[1] == 'X'))) {
            *out = v_real(neg ? -strtod(buf, NULL) : strtod(buf, NULL));
        } else {
            long long x = strtoll(buf, NULL, 0);
            *out = v_int(neg ? -x : x);
        }
    } else if (t->kind == K_STR && !neg) {
        char *s = tg__arena_alloc(&fx->arena, t->n);
        if (!s)
            return 0;
        size_t n = 0;
        for (size_t j = 1; j + 1 < t->n; j++) {
            if (t->p[j] == '\'')
                j++;
            s[n++] = t->p[j];
        }
        tg_value v = {TG_TEXT, 0, 0, s, n};
        *out = v;
    } else if (!neg && is_kw(ts, k, "NULL")) {
        *out = v_null();
    } else if (!neg && (is_kw(ts, k, "TRUE") || is_kw(ts, k, "FALSE"))) {
        *out = v_int(is_kw(ts, k, "TRUE"));
    } else {
        return 0;
    }
    *i = k + 1;
    return 1;
}

/* ---- what the fixture knows about a table ---- */

typedef struct fx_cons {
    tg_value in[FX_MAX_IN]; /* allowed values (has_in) */
    int n_in, has_in;
    tg_value ne[8]; /* values it must not take */
    int n_ne;
    int has_min, has_max, min_open, max_open;
    double min, max;
    int64_t minlen, maxlen; /* maxlen < 0: none */
    int numeric;            /* a range says the value is a number */
} fx_cons;

typedef struct fx_col {
    char name[128];
    char type[64];
    char aff; /* 'I', 'T', 'B' (none), 'R', 'N' */
    int notnull, has_default, pk, rowid_alias, generated;
    int unique; /* covered by a UNIQUE constraint or index (alone or with others) */
    int fk;     /* the foreign key it belongs to (pragma id), -1: none */
    char fk_table[128], fk_col[128];
    fx_cons cons;
    int unparsed; /* a CHECK mentions it in a form the fixture cannot read */
    int cand;     /* the candidate that satisfied the unread CHECKs, -1: the default value */
    int64_t bump; /* added to a UNIQUE column's value after a collision */
    int64_t uses; /* rows inserted so far */
    int force;    /* fill it although it has a default (NOT NULL DEFAULT NULL) */
} fx_col;

typedef struct fx_check {
    char name[128];
    const char *text; /* the expression, as written */
    uint64_t cols[2]; /* columns it mentions (bit i: column i) */
} fx_check;

typedef struct vmap {
    char vcol[128];
    char bcol[128]; /* "" when the view column is an expression */
} vmap;

enum { TBL_TABLE, TBL_VIEW_TRIGGER, TBL_VIEW_BASE };

struct tg__fx_table {
    tg__fx_table *next;
    char name[128];
    int kind;
    int without_rowid;
    fx_col cols[FX_MAX_COLS];
    int n_cols;
    fx_check checks[FX_MAX_CHECKS];
    int n_checks;
    /* TBL_VIEW_BASE: the base table, the column map and the WHERE's fixed values */
    tg__fx_table *base;
    vmap *map;
    int n_map;
    int star; /* SELECT *: every base column shows under its own name */
    colval fixed[16];
    int n_fixed;
};

/* Where a row goes: its tenant and workspace (for foreign keys to them) and what to tell the
 * user to give when the fixture cannot fill a column. */
typedef struct fx_ctx {
    int t, w, k;
    const char *hint;
} fx_ctx;

static int fx_error(tg__fixture *fx, int st, const char *fmt, ...) TG_PRINTF(3, 4);

static int fx_error(tg__fixture *fx, int st, const char *fmt, ...) {
    if (fx->err.len)
        return st;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__buf_add(&fx->err, "matrix fixture: ");
    tg__buf_add(&fx->err, msg);
    return st;
}

static int db_fail(tg__fixture *fx, const char *what) {
    return fx_error(fx, TG_DB, "%s: %s", what, sqlite3_errmsg(fx->eng->db));
}

static fx_col *find_col(tg__fx_table *t, const char *name) {
    for (int i = 0; i < t->n_cols; i++)
        if (strcasecmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

static char affinity(const char *type) {
    char up[64] = "";
    for (size_t k = 0; type[k] && k < 63; k++)
        up[k] = (char)toupper((unsigned char)type[k]);
    if (strstr(up, "INT"))
        return 'I';
    if (strstr(up, "CHAR") || strstr(up, "CLOB") || strstr(up, "TEXT"))
        return 'T';
    if (strstr(up, "BLOB") || !up[0])
        return 'B';
    if (strstr(up, "REAL") || strstr(up, "FLOA") || strstr(up, "DOUB"))
        return 'R';
    return 'N';
}

/* ---- reading CHECK constraints ---- */

static void cons_in(fx_cons *c, const tg_value *vals, int n) {
    if (!c->has_in) {
        c->has_in = 1;
        for (int i = 0; i < n && c->n_in < FX_MAX_IN; i++)
            c->in[c->n_in++] = vals[i];
        return;
    }
    int k = 0; /* a second list: keep what both allow */
    for (int i = 0; i < c->n_in; i++) {
        int both = 0;
        for (int j = 0; j < n; j++)
            both |= v_equal(&c->in[i], &vals[j]);
        if (both)
            c->in[k++] = c->in[i];
    }
    c->n_in = k;
}

static double num_of(const tg_value *v) {
    return v->type == TG_INTEGER ? (double)v->i : v->r;
}

/* col OP value, where OP is a comparison. 0: not a form the fixture reads. */
static int cons_cmp(fx_cons *c, const char *op, const tg_value *v, int length) {
    int num = v->type == TG_INTEGER || v->type == TG_REAL;
    if (length) {
        if (v->type != TG_INTEGER)
            return 0;
        int64_t n = v->i;
        if (!strcmp(op, "=") || !strcmp(op, "==")) {
            c->minlen = n > c->minlen ? n : c->minlen;
            c->maxlen = c->maxlen < 0 || n < c->maxlen ? n : c->maxlen;
        } else if (!strcmp(op, "<=") || !strcmp(op, "<")) {
            int64_t m = !strcmp(op, "<") ? n - 1 : n;
            c->maxlen = c->maxlen < 0 || m < c->maxlen ? m : c->maxlen;
        } else if (!strcmp(op, ">=") || !strcmp(op, ">")) {
            int64_t m = !strcmp(op, ">") ? n + 1 : n;
            c->minlen = m > c->minlen ? m : c->minlen;
        } else {
            return 0;
        }
        return 1;
    }
    if (!strcmp(op, "=") || !strcmp(op, "==")) {
        if (v->type == TG_NULL)
            return 0;
        cons_in(c, v, 1);
    } else if (!strcmp(op, "<>") || !strcmp(op, "!=")) {
        if (v->type == TG_NULL)
            return 0;
        if (c->n_ne < 8)
            c->ne[c->n_ne++] = *v;
        if (v->type == TG_TEXT && v->n == 0 && c->minlen < 1)
            c->minlen = 1;
    } else if (num && (!strcmp(op, ">") || !strcmp(op, ">="))) {
        double x = num_of(v);
        if (!c->has_min || x > c->min || (x == c->min && op[1] != '=')) {
            c->min = x;
            c->min_open = op[1] != '=';
        }
        c->has_min = c->numeric = 1;
    } else if (num && (!strcmp(op, "<") || !strcmp(op, "<="))) {
        double x = num_of(v);
        if (!c->has_max || x < c->max || (x == c->max && op[1] != '=')) {
            c->max = x;
            c->max_open = op[1] != '=';
        }
        c->has_max = c->numeric = 1;
    } else {
        return 0;
    }
    return 1;
}

static const char *flip(const char *op) {
    return !strcmp(op, "<")    ? ">"
           : !strcmp(op, ">")  ? "<"
           : !strcmp(op, "<=") ? ">="
           : !strcmp(op, ">=") ? "<="
                               : op;
}

static int is_cmp(const toks *ts, size_t i) {
    static const char *const ops[] = {"=", "==", "<>", "!=", "<", "<=", ">", ">="};
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        if (is_op(ts, i, ops[k]))
            return 1;
    return 0;
}

/* A column reference at i: `col`, or `fn(col)` for length and trim. *fn is 'l' for
 * length(col), 't' for trim(col), 0 for a plain column. Returns the index after it. */
static size_t colref_at(tg__fx_table *t, const toks *ts, size_t i, fx_col **col, int *fn) {
    char name[128];
    *fn = 0;
    if ((is_kw(ts, i, "length") || is_kw(ts, i, "trim")) && is_op(ts, i + 1, "(") &&
        ident_at(ts, i + 2, name, sizeof name) && is_op(ts, i + 3, ")")) {
        *fn = is_kw(ts, i, "length") ? 'l' : 't';
        *col = find_col(t, name);
        return *col ? i + 4 : 0;
    }
    if (ident_at(ts, i, name, sizeof name) && !is_op(ts, i + 1, "(")) {
        *col = find_col(t, name);
        return *col ? i + 1 : 0;
    }
    return 0;
}

/* One conjunct [s, e) of a CHECK. 1 when read (and applied), 0 when not a simple form. */
static int read_conjunct(tg__fixture *fx, tg__fx_table *t, const toks *ts, size_t s, size_t e) {
    while (is_op(ts, s, "(") && close_paren(ts, s) == e - 1) {
        s++;
        e--;
    }
    fx_col *c = NULL;
    int fn = 0;
    size_t i = colref_at(t, ts, s, &c, &fn);
    tg_value lits[FX_MAX_IN];
    if (i && i < e) {
        int notin = is_kw(ts, i, "NOT") && is_kw(ts, i + 1, "IN");
        if (!fn && (is_kw(ts, i, "IN") || notin)) {
            size_t k = i + (notin ? 2 : 1);
            if (!is_op(ts, k, "(") || close_paren(ts, k) != e - 1)
                return 0;
            int n = 0;
            k++;
            while (k < e - 1) {
                if (n == FX_MAX_IN || !literal_at(fx, ts, &k, &lits[n]))
                    return 0;
                n++;
                if (is_op(ts, k, ","))
                    k++;
                else if (k != e - 1)
                    return 0;
            }
            if (notin) {
                for (int j = 0; j < n && c->cons.n_ne < 8; j++)
                    c->cons.ne[c->cons.n_ne++] = lits[j];
            } else {
                cons_in(&c->cons, lits, n);
            }
            return 1;
        }
        if (is_kw(ts, i, "BETWEEN")) {
            size_t k = i + 1;
            if (!literal_at(fx, ts, &k, &lits[0]) || !is_kw(ts, k, "AND"))
                return 0;
            k++;
            if (!literal_at(fx, ts, &k, &lits[1]) || k != e)
                return 0;
            if (fn == 't')
                return 0;
            return cons_cmp(&c->cons, ">=", &lits[0], fn == 'l') &&
                   cons_cmp(&c->cons, "<=", &lits[1], fn == 'l');
        }
        if (is_kw(ts, i, "IS") && is_kw(ts, i + 1, "NOT") && is_kw(ts, i + 2, "NULL") && i + 3 == e)
            return !fn;
        if (is_kw(ts, i, "NOT") && is_kw(ts, i + 1, "NULL") && i + 2 == e)
            return !fn;
        if (is_cmp(ts, i)) {
            char op[3] = "";
            memcpy(op, ts->t[i].p, ts->t[i].n);
            size_t k = i + 1;
            if (!literal_at(fx, ts, &k, &lits[0]) || k != e)
                return 0;
            if (fn == 't') /* trim(col) <> '': not empty (the fixture's text has no blanks) */
                return (!strcmp(op, "<>") || !strcmp(op, "!=")) && lits[0].type == TG_TEXT &&
                       lits[0].n == 0 && cons_cmp(&c->cons, op, &lits[0], 0);
            return cons_cmp(&c->cons, op, &lits[0], fn == 'l');
        }
        return 0;
    }
    /* literal OP column */
    size_t k = s;
    if (literal_at(fx, ts, &k, &lits[0]) && is_cmp(ts, k)) {
        char op[3] = "";
        memcpy(op, ts->t[k].p, ts->t[k].n);
        size_t j = colref_at(t, ts, k + 1, &c, &fn);
        if (j == e && fn != 't')
            return cons_cmp(&c->cons, flip(op), &lits[0], fn == 'l');
    }
    return 0;
}

/* Reads one CHECK expression [s, e): each AND-ed simple form narrows its column; anything
 * else marks the columns it mentions as needing candidates. */
static void read_check(tg__fixture *fx, tg__fx_table *t, const toks *ts, size_t s, size_t e,
                       const char *name) {
    if (t->n_checks == FX_MAX_CHECKS)
        return;
    fx_check *ck = &t->checks[t->n_checks++];
    snprintf(ck->name, sizeof ck->name, "%s", name ? name : "");
    size_t len = e > s ? (size_t)(ts->t[e - 1].p + ts->t[e - 1].n - ts->t[s].p) : 0;
    char *text = tg__arena_alloc(&fx->arena, len + 1);
    if (text && len)
        memcpy(text, ts->t[s].p, len);
    ck->text = text ? text : "";
    for (size_t i = s; i < e; i++) {
        char id[128];
        fx_col *c;
        if (ident_at(ts, i, id, sizeof id) && (c = find_col(t, id)) != NULL) {
            int ci = (int)(c - t->cols);
            ck->cols[ci / 64] |= (uint64_t)1 << (ci % 64);
        }
    }
    /* split on AND at depth 0 (not the AND of a BETWEEN); an OR anywhere at depth 0 makes
     * the whole expression unread */
    int depth = 0, between = 0, has_or = 0;
    for (size_t i = s; i < e; i++) {
        if (is_op(ts, i, "("))
            depth++;
        else if (is_op(ts, i, ")"))
            depth--;
        else if (!depth && is_kw(ts, i, "OR"))
            has_or = 1;
    }
    size_t from = s;
    depth = 0;
    for (size_t i = s; i <= e; i++) {
        int cut = i == e;
        if (!cut) {
            if (is_op(ts, i, "("))
                depth++;
            else if (is_op(ts, i, ")"))
                depth--;
            else if (!depth && is_kw(ts, i, "BETWEEN"))
                between = 1;
            else if (!depth && is_kw(ts, i, "AND")) {
                if (between)
                    between = 0;
                else
                    cut = 1;
            }
        }
        if (!cut)
            continue;
        if (has_or || i == from || !read_conjunct(fx, t, ts, from, i)) {
            for (size_t k = from; k < i; k++) {
                char id[128];
                fx_col *c;
                if (ident_at(ts, k, id, sizeof id) && (c = find_col(t, id)) != NULL)
                    c->unparsed = 1;
            }
        }
        from = i + 1;
    }
}

/* Reads the CHECK constraints (column and table ones) and WITHOUT ROWID from CREATE TABLE. */
static void read_create_table(tg__fixture *fx, tg__fx_table *t, const char *sql) {
    toks ts;
    if (!sql || !tokenize(sql, &ts))
        goto unread;
    size_t open = 0;
    while (open < ts.n && !is_op(&ts, open, "("))
        open++;
    size_t end = close_paren(&ts, open);
    if (end >= ts.n) {
        free(ts.t);
        goto unread;
    }
    for (size_t k = end + 1; k + 1 < ts.n; k++)
        if (is_kw(&ts, k, "WITHOUT") && is_kw(&ts, k + 1, "ROWID"))
            t->without_rowid = 1;
    size_t item = open + 1;
    while (item < end) {
        size_t stop = item;
        int depth = 0;
        while (stop < end && (depth || !is_op(&ts, stop, ","))) {
            if (is_op(&ts, stop, "("))
                depth++;
            else if (is_op(&ts, stop, ")"))
                depth--;
            stop++;
        }
        char cname[128] = "";
        int named = 0;
        for (size_t i = item; i < stop; i++) {
            if (is_op(&ts, i, "(")) {
                i = close_paren(&ts, i);
                continue;
            }
            if (is_kw(&ts, i, "CONSTRAINT") && ident_at(&ts, i + 1, cname, sizeof cname)) {
                named = 1;
                i++;
                continue;
            }
            if (is_kw(&ts, i, "CHECK") && is_op(&ts, i + 1, "(")) {
                size_t c = close_paren(&ts, i + 1);
                if (c >= stop)
                    break;
                read_check(fx, t, &ts, i + 2, c, named ? cname : NULL);
                named = 0;
                i = c;
            }
        }
        item = stop + 1;
    }
    free(ts.t);
    return;
unread:
    /* nothing read: every CHECK is met by trying candidates */
    for (int i = 0; i < t->n_cols; i++)
        t->cols[i].unparsed = 1;
}

/* ---- loading a table ---- */

static int load_columns(tg__fixture *fx, tg__fx_table *t) {
    sqlite3 *db = fx->eng->db;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT name, coalesce(type, ''), \"notnull\", dflt_value, pk, hidden "
                           "FROM pragma_table_xinfo(?1) ORDER BY cid",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(fx, t->name);
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    int pks = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (t->n_cols == FX_MAX_COLS) {
            sqlite3_finalize(st);
            return fx_error(fx, TG_REFUSED, "%s has more than %d columns", t->name, FX_MAX_COLS);
        }
        fx_col *c = &t->cols[t->n_cols++];
        snprintf(c->name, sizeof c->name, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(c->type, sizeof c->type, "%s", (const char *)sqlite3_column_text(st, 1));
        c->aff = affinity(c->type);
        c->notnull = sqlite3_column_int(st, 2);
        c->has_default = sqlite3_column_type(st, 3) != SQLITE_NULL;
        c->pk = sqlite3_column_int(st, 4);
        c->generated = sqlite3_column_int(st, 5) != 0;
        c->fk = -1;
        c->cand = -1;
        c->cons.maxlen = -1;
        pks += c->pk > 0;
    }
    sqlite3_finalize(st);
    if (t->n_cols == 0)
        return fx_error(fx, TG_REFUSED, "no table or view named %s", t->name);
    return pks;
}

static int load_constraints(tg__fixture *fx, tg__fx_table *t, int pks) {
    sqlite3 *db = fx->eng->db;
    for (int i = 0; i < t->n_cols; i++) {
        fx_col *c = &t->cols[i];
        c->rowid_alias =
            !t->without_rowid && c->pk && pks == 1 && strcasecmp(c->type, "INTEGER") == 0;
        if (c->pk && !c->rowid_alias)
            c->unique = 1;
    }
    /* UNIQUE constraints and indexes, alone or composite */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db,
            "SELECT ii.name FROM pragma_index_list(?1) il, "
            "pragma_index_info(il.name) ii WHERE il.\"unique\" AND ii.name IS NOT NULL",
            -1, &st, NULL) != SQLITE_OK)
        return db_fail(fx, t->name);
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        fx_col *c = find_col(t, (const char *)sqlite3_column_text(st, 0));
        if (c)
            c->unique = 1;
    }
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(db,
                           "SELECT id, \"table\", \"from\", \"to\" FROM "
                           "pragma_foreign_key_list(?1) ORDER BY id, seq",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(fx, t->name);
    sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        fx_col *c = find_col(t, (const char *)sqlite3_column_text(st, 2));
        if (!c || c->fk >= 0)
            continue;
        c->fk = sqlite3_column_int(st, 0);
        snprintf(c->fk_table, sizeof c->fk_table, "%s", (const char *)sqlite3_column_text(st, 1));
        const unsigned char *to = sqlite3_column_text(st, 3);
        snprintf(c->fk_col, sizeof c->fk_col, "%s", to ? (const char *)to : "");
    }
    sqlite3_finalize(st);
    return TG_OK;
}

static int has_instead_of_insert(tg__fixture *fx, const char *view) {
    sqlite3_stmt *st;
    int found = 0;
    if (sqlite3_prepare_v2(fx->eng->db,
                           "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND "
                           "tbl_name = ?1 COLLATE NOCASE AND sql IS NOT NULL",
                           -1, &st, NULL) != SQLITE_OK)
        return 0;
    sqlite3_bind_text(st, 1, view, -1, SQLITE_STATIC);
    while (!found && sqlite3_step(st) == SQLITE_ROW) {
        toks ts;
        if (!tokenize((const char *)sqlite3_column_text(st, 0), &ts))
            continue;
        for (size_t i = 0; i + 2 < ts.n && !is_kw(&ts, i, "BEGIN"); i++)
            if (is_kw(&ts, i, "INSTEAD") && is_kw(&ts, i + 1, "OF") && is_kw(&ts, i + 2, "INSERT"))
                found = 1;
        free(ts.t);
    }
    sqlite3_finalize(st);
    return found;
}

static int load_table(tg__fixture *fx, const char *name, tg__fx_table **out);

/* A view without an INSTEAD OF INSERT trigger: written through its base table when it is
 * `SELECT [alias.]col [AS name], ... | * FROM one_table [[AS] alias] [WHERE ...]`. The WHERE's
 * `col = literal`, `col IN (...)` and `col IS NULL` conditions become fixed values. */
static int read_view(tg__fixture *fx, tg__fx_table *t, const char *sql) {
    toks ts = {0};
    char base[128] = "", alias[128] = "", why[160] = "";
    size_t i = 0, from = 0, end = 0, sel = 0;
    if (!sql || !tokenize(sql, &ts)) {
        snprintf(why, sizeof why, "its SQL could not be read");
        goto not_simple;
    }
    while (i < ts.n && !is_kw(&ts, i, "AS"))
        i++;
    /* a column list after the view's name renames its columns: not followed */
    for (size_t k = 0; k < i; k++)
        if (is_op(&ts, k, "(")) {
            snprintf(why, sizeof why, "it renames its columns in a column list");
            goto not_simple;
        }
    if (!is_kw(&ts, i + 1, "SELECT")) {
        snprintf(why, sizeof why, "it is not a plain SELECT");
        goto not_simple;
    }
    sel = i + 2;
    if (is_kw(&ts, sel, "ALL"))
        sel++;
    end = ts.n;
    if (end && is_op(&ts, end - 1, ";"))
        end--;
    int depth = 0;
    for (size_t k = sel; k < end; k++) {
        if (is_op(&ts, k, "("))
            depth++;
        else if (is_op(&ts, k, ")"))
            depth--;
        else if (!depth && is_kw(&ts, k, "FROM") && !from)
            from = k;
        static const char *const bad[] = {"JOIN",     "UNION",  "INTERSECT", "EXCEPT", "GROUP",
                                          "DISTINCT", "HAVING", "LIMIT",     "WINDOW", "VALUES"};
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++)
            if (!depth && is_kw(&ts, k, bad[b])) {
                snprintf(why, sizeof why, "it uses %s", bad[b]);
                goto not_simple;
            }
    }
    if (!from || !ident_at(&ts, from + 1, base, sizeof base)) {
        snprintf(why, sizeof why, "it does not select FROM one table");
        goto not_simple;
    }
    size_t k = from + 2;
    if (is_kw(&ts, k, "AS"))
        k++;
    if (k < end && !is_kw(&ts, k, "WHERE") && !is_kw(&ts, k, "ORDER")) {
        if (!ident_at(&ts, k, alias, sizeof alias) || is_op(&ts, k + 1, ",") ||
            is_op(&ts, k + 1, ".")) {
            snprintf(why, sizeof why, "it selects from more than one table");
            goto not_simple;
        }
        k++;
    }
    if (k < end && !is_kw(&ts, k, "WHERE") && !is_kw(&ts, k, "ORDER")) {
        snprintf(why, sizeof why, "it selects from more than one table");
        goto not_simple;
    }
    size_t where = is_kw(&ts, k, "WHERE") ? k + 1 : 0;
    size_t where_end = end;
    for (size_t q = where; where && q < end; q++)
        if (is_kw(&ts, q, "ORDER"))
            where_end = q;
    tg__fx_table *b = NULL;
    int st = load_table(fx, base, &b);
    if (st != TG_OK) {
        free(ts.t);
        return st;
    }
    if (b->kind != TBL_TABLE) {
        snprintf(why, sizeof why, "its base %s is itself a view", base);
        goto not_simple;
    }
    t->base = b;
    t->kind = TBL_VIEW_BASE;
    t->map = tg__arena_alloc(&fx->arena, (size_t)FX_MAX_COLS * sizeof *t->map);
    if (!t->map) {
        free(ts.t);
        return fx_error(fx, TG_NOMEM, "%s: out of memory", t->name);
    }
    /* the select list */
    size_t item = sel;
    while (item < from) {
        size_t stop = item;
        depth = 0;
        while (stop < from && (depth || !is_op(&ts, stop, ","))) {
            if (is_op(&ts, stop, "("))
                depth++;
            else if (is_op(&ts, stop, ")"))
                depth--;
            stop++;
        }
        size_t p = item;
        char q1[128], q2[128];
        if (ident_at(&ts, p, q1, sizeof q1) && is_op(&ts, p + 1, ".") &&
            (!strcasecmp(q1, alias) || !strcasecmp(q1, base)))
            p += 2;
        if (is_op(&ts, p, "*") && p + 1 == stop) {
            t->star = 1;
        } else if (t->n_map < FX_MAX_COLS) {
            vmap *m = &t->map[t->n_map];
            int plain =
                ident_at(&ts, p, q1, sizeof q1) && ts.t[p].kind != K_STR && find_col(b, q1) != NULL;
            size_t after = p + 1;
            if (plain && after == stop) {
                snprintf(m->vcol, sizeof m->vcol, "%s", q1);
                snprintf(m->bcol, sizeof m->bcol, "%s", q1);
                t->n_map++;
            } else {
                /* `expr [AS] name`: the last identifier names it */
                size_t last = stop - 1;
                if (ident_at(&ts, last, q2, sizeof q2) && last > item &&
                    (is_kw(&ts, last - 1, "AS") || (plain && after == last))) {
                    snprintf(m->vcol, sizeof m->vcol, "%s", q2);
                    if (plain && (after == last || (after + 1 == last && is_kw(&ts, after, "AS"))))
                        snprintf(m->bcol, sizeof m->bcol, "%s", q1);
                    t->n_map++;
                }
            }
        }
        item = stop + 1;
    }
    /* the WHERE: fixed values for the rows to show through the view */
    if (where) {
        size_t s = where;
        depth = 0;
        for (size_t q = where; q <= where_end; q++) {
            if (q < where_end) {
                if (is_op(&ts, q, "("))
                    depth++;
                else if (is_op(&ts, q, ")"))
                    depth--;
                if (depth || !is_kw(&ts, q, "AND"))
                    continue;
            }
            size_t p = s;
            char q1[128];
            if (ident_at(&ts, p, q1, sizeof q1) && is_op(&ts, p + 1, ".") &&
                (!strcasecmp(q1, alias) || !strcasecmp(q1, base)))
                p += 2;
            fx_col *c = ident_at(&ts, p, q1, sizeof q1) ? find_col(b, q1) : NULL;
            tg_value v;
            size_t lp = p + 2;
            if (c && t->n_fixed < 16) {
                colval *f = &t->fixed[t->n_fixed];
                f->col = c->name;
                if ((is_op(&ts, p + 1, "=") || is_op(&ts, p + 1, "==")) &&
                    literal_at(fx, &ts, &lp, &v) && lp == q) {
                    f->v = v;
                    t->n_fixed++;
                } else if (is_kw(&ts, p + 1, "IN") && is_op(&ts, p + 2, "(") &&
                           (lp = p + 3, literal_at(fx, &ts, &lp, &v))) {
                    f->v = v;
                    t->n_fixed++;
                } else if (is_kw(&ts, p + 1, "IS") && is_kw(&ts, p + 2, "NULL") && p + 3 == q) {
                    f->v = v_null();
                    t->n_fixed++;
                } else if (is_kw(&ts, p + 1, "IS") && is_kw(&ts, p + 2, "NOT") &&
                           is_kw(&ts, p + 3, "NULL")) {
                    c->force = 1;
                }
            }
            s = q + 1;
        }
    }
    free(ts.t);
    return TG_OK;
not_simple:
    free(ts.t);
    return fx_error(fx, TG_REFUSED,
                    "%s is a view the fixture cannot write through (%s): it writes a view only "
                    "through an INSTEAD OF INSERT trigger or, for a simple single-table SELECT, "
                    "its base table; give %s such a trigger or map the rules to its table",
                    t->name, why, t->name);
}

/* The fixture's knowledge of `name` (loaded once per run). */
static int load_table(tg__fixture *fx, const char *name, tg__fx_table **out) {
    for (tg__fx_table *t = fx->tables; t; t = t->next)
        if (strcasecmp(t->name, name) == 0) {
            *out = t;
            return TG_OK;
        }
    if (++fx->depth > 8) {
        fx->depth--;
        return fx_error(fx, TG_REFUSED, "%s: views nested too deep", name);
    }
    tg__fx_table *t = calloc(1, sizeof *t);
    if (!t) {
        fx->depth--;
        return fx_error(fx, TG_NOMEM, "%s: out of memory", name);
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->next = fx->tables;
    fx->tables = t;
    sqlite3_stmt *st;
    int rc = TG_OK;
    if (sqlite3_prepare_v2(fx->eng->db,
                           "SELECT type, sql FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE "
                           "AND type IN ('table', 'view')",
                           -1, &st, NULL) != SQLITE_OK) {
        fx->depth--;
        return db_fail(fx, name);
    }
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    char *sql = NULL;
    int view = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        view = strcmp((const char *)sqlite3_column_text(st, 0), "view") == 0;
        const unsigned char *s = sqlite3_column_text(st, 1);
        sql = s ? tg__arena_strdup(&fx->arena, (const char *)s) : NULL;
    }
    sqlite3_finalize(st);
    int pks = load_columns(fx, t);
    if (pks < 0 || fx->err.len) {
        rc = pks < 0 ? pks : TG_REFUSED;
    } else if (view) {
        t->kind = has_instead_of_insert(fx, name) ? TBL_VIEW_TRIGGER : TBL_TABLE;
        if (t->kind == TBL_TABLE)
            rc = read_view(fx, t, sql);
    } else {
        read_create_table(fx, t, sql);
        rc = load_constraints(fx, t, pks);
    }
    fx->depth--;
    if (rc == TG_OK)
        *out = t;
    return rc;
}

/* The column of the table actually written that a name of `t` stands for (through a view's
 * map), or NULL when it is no plain column there. */
static fx_col *written_col(tg__fx_table *t, const char *name) {
    if (t->kind != TBL_VIEW_BASE)
        return find_col(t, name);
    for (int i = 0; i < t->n_map; i++)
        if (strcasecmp(t->map[i].vcol, name) == 0)
            return t->map[i].bcol[0] ? find_col(t->base, t->map[i].bcol) : NULL;
    return t->star ? find_col(t->base, name) : NULL;
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
        strcasecmp(col->type, "BLOB") == 0)
        return v_random_blob(fx);
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
            (!to[0] || !strcasecmp(to, a->id_column)) && R->rows[t][k].type != TG_NULL) {
            *out = R->rows[t][k];
            return TG_OK;
        }
    }
    /* an existing row */
    tg__buf sql = {0};
    if (to[0])
        tg__sqlf(&sql, &tg__sqlite, "SELECT %I FROM %I WHERE %I IS NOT NULL LIMIT 1", to,
                 c->fk_table, to);
    else
        tg__sqlf(&sql, &tg__sqlite, "SELECT rowid FROM %I LIMIT 1", c->fk_table);
    sqlite3_stmt *st;
    int found = 0;
    if (!sql.oom &&
        sqlite3_prepare_v2(fx->eng->db, tg__buf_str(&sql), -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            *out = column_value(fx, st, 0);
            found = 1;
        }
        sqlite3_finalize(st);
    }
    tg__buf_free(&sql);
    if (found)
        return TG_OK;
    /* a new one */
    if (fx->depth >= FX_MAX_DEPTH)
        return fx_error(fx, TG_REFUSED,
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
    if (st2 == TG_OK && !to[0]) {
        *out = v_int(sqlite3_last_insert_rowid(fx->eng->db));
    }
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

static int exec(tg__fixture *fx, const char *sql) {
    return sqlite3_exec(fx->eng->db, sql, NULL, NULL, NULL);
}

/* Inserts one row into `table` (a table, a view with an INSTEAD OF INSERT trigger, or a
 * simple view, through its base table): the given values win; every other NOT NULL column
 * without a default is filled. key_col (NULL: none) gets a fresh key of its type when not
 * given; *key is the key the row got. */
static int insert_row(tg__fixture *fx, const char *table, const colval *given, size_t n,
                      const char *key_col, const fx_ctx *ctx, tg_value *key) {
    sqlite3 *db = fx->eng->db;
    tg__fx_table *view = NULL, *t = NULL;
    int st = load_table(fx, table, &t);
    if (st != TG_OK)
        return st;
    if (t->kind == TBL_VIEW_BASE) {
        view = t;
        t = t->base;
    }
    slot *slots = calloc((size_t)t->n_cols + n + 20, sizeof *slots);
    tg__buf sql = {0};
    sqlite3_stmt *ins = NULL;
    size_t ns = 0;
    if (!slots)
        return fx_error(fx, TG_NOMEM, "%s: out of memory", table);
    /* the given values, later ones winning, then the view's fixed ones */
    for (size_t i = 0; i < n + (view ? (size_t)view->n_fixed : 0); i++) {
        const colval *g = i < n ? &given[i] : &view->fixed[i - n];
        fx_col *c = view ? written_col(view, g->col) : find_col(t, g->col);
        if (!c && view) /* a base column the view does not show (a fixture may name one) */
            c = find_col(t, g->col);
        if (!c) {
            st = fx_error(fx, TG_REFUSED,
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
    fx_col *kc = key_col ? (view ? written_col(view, key_col) : find_col(t, key_col)) : NULL;
    if (key_col && !kc) {
        st = fx_error(fx, TG_REFUSED, "%s has no column named %s", table, key_col);
        goto done;
    }
    int key_given = 0;
    for (size_t j = 0; j < ns; j++)
        key_given |= slots[j].col == kc;
    if (kc && !key_given) {
        slot *s = &slots[ns++];
        s->col = kc;
        s->key = 1;
        if (kc->aff == 'T') {
            s->v = v_uuid(fx);
        } else if (kc->aff == 'B' && strcasecmp(kc->type, "BLOB") == 0) {
            s->v = v_random_blob(fx);
        } else {
            tg__buf q = {0};
            tg__sqlf(&q, &tg__sqlite,
                     "SELECT coalesce(max(CASE WHEN typeof(%I) = 'integer' THEN %I END), 0) "
                     "FROM %I",
                     key_col, key_col, table);
            int rc;
            int64_t mx = tg__count(db, tg__buf_str(&q), NULL, NULL, &rc);
            tg__buf_free(&q);
            if (mx == INT64_MAX) {
                st = fx_error(fx, TG_REFUSED, "%s.%s: the largest key is taken", table, key_col);
                goto done;
            }
            s->v = v_int(mx + 1);
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
        if (c->fk >= 0)
            s->filled = 0;
        else
            s->v = gen_value(fx, c, (uint64_t)++fx->counter);
    }
    tg__sqlf(&sql, &tg__sqlite, "INSERT OR ABORT INTO %I (", t->name);
    for (size_t j = 0; j < ns; j++)
        tg__sqlf(&sql, &tg__sqlite, "%s%I", j ? ", " : "", slots[j].col->name);
    tg__buf_add(&sql, ns ? ") VALUES (" : ") DEFAULT VALUES");
    if (!ns) {
        /* "INSERT INTO t () DEFAULT VALUES" is not SQL: rebuild */
        tg__buf_reset(&sql);
        tg__sqlf(&sql, &tg__sqlite, "INSERT OR ABORT INTO %I DEFAULT VALUES", t->name);
    }
    for (size_t j = 0; j < ns; j++)
        tg__buf_printf(&sql, j ? ", ?%zu" : "?%zu", j + 1);
    if (ns)
        tg__buf_add(&sql, ")");
    if (sql.oom || sqlite3_prepare_v2(db, tg__buf_str(&sql), -1, &ins, NULL) != SQLITE_OK) {
        st = db_fail(fx, t->name);
        goto done;
    }
    char last_msg[400] = "";
    for (int attempt = 0;; attempt++) {
        if (attempt == FX_ATTEMPTS) {
            st = fx_error(fx, TG_REFUSED,
                          "%s: no row after %d attempts (last: %s); give values in %s", t->name,
                          FX_ATTEMPTS, last_msg, ctx->hint);
            goto done;
        }
        sqlite3_reset(ins);
        for (size_t j = 0; j < ns; j++)
            bind_value(ins, (int)j + 1, &slots[j].v);
        if (exec(fx, "SAVEPOINT tg_fixture") != SQLITE_OK) {
            st = db_fail(fx, t->name);
            goto done;
        }
        int rc = sqlite3_step(ins);
        if (rc == SQLITE_DONE) {
            exec(fx, "RELEASE tg_fixture");
            break;
        }
        int xrc = sqlite3_extended_errcode(db);
        snprintf(last_msg, sizeof last_msg, "%s", sqlite3_errmsg(db));
        sqlite3_reset(ins);
        exec(fx, "ROLLBACK TO tg_fixture");
        exec(fx, "RELEASE tg_fixture");
        if (xrc == SQLITE_CONSTRAINT_UNIQUE || xrc == SQLITE_CONSTRAINT_PRIMARYKEY) {
            int moved = 0;
            for (size_t j = 0; j < ns; j++)
                if (slots[j].filled && msg_names(last_msg, t->name, slots[j].col->name)) {
                    slots[j].col->bump++;
                    slots[j].v = gen_value(fx, slots[j].col, (uint64_t)++fx->counter);
                    moved = 1;
                }
            if (!moved) {
                st = fx_error(fx, TG_REFUSED,
                              "%s: %s: the values given (%s) repeat on every row the fixture "
                              "makes; leave them out of %s so the fixture fills distinct ones",
                              t->name, last_msg, ctx->hint, ctx->hint);
                goto done;
            }
            continue;
        }
        if (xrc == SQLITE_CONSTRAINT_NOTNULL) {
            const char *dot = strrchr(last_msg, '.');
            fx_col *c = dot ? find_col(t, dot + 1) : NULL;
            size_t j = 0;
            while (c && j < ns && slots[j].col != c)
                j++;
            if (!c || j < ns || c->force) {
                st = fx_error(fx, TG_REFUSED, "%s: %s; give a value in %s", t->name, last_msg,
                              ctx->hint);
                goto done;
            }
            c->force = 1; /* NOT NULL with a NULL default, or a trigger's base column */
            sqlite3_finalize(ins);
            ins = NULL;
            tg__buf_free(&sql);
            free(slots);
            return insert_row(fx, table, given, n, key_col, ctx, key);
        }
        if (xrc != SQLITE_CONSTRAINT_CHECK) {
            st = fx_error(fx, TG_REFUSED, "%s: %s (inserting a fixture row; give values in %s)",
                          t->name, last_msg, ctx->hint);
            goto done;
        }
        /* which CHECK: by its name or its text */
        const char *what = strstr(last_msg, "failed: ");
        what = what ? what + 8 : "";
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
            st = fx_error(fx, TG_REFUSED,
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
        *key = v_int(sqlite3_last_insert_rowid(db));
        for (size_t j = 0; j < ns; j++)
            if (slots[j].key)
                *key = slots[j].v;
    }
    if (view) {
        /* the row must show through the view */
        tg__buf q = {0};
        tg__sqlf(&q, &tg__sqlite, "SELECT count(*) FROM %I WHERE 1", view->name);
        for (size_t i = 0; i < n; i++)
            if (written_col(view, given[i].col))
                tg__sqlf(&q, &tg__sqlite, " AND %I IS ?%d", given[i].col, (int)i + 1);
        sqlite3_stmt *chk;
        int seen = 0;
        if (!q.oom && sqlite3_prepare_v2(db, tg__buf_str(&q), -1, &chk, NULL) == SQLITE_OK) {
            for (size_t i = 0; i < n; i++)
                if (written_col(view, given[i].col))
                    bind_value(chk, (int)i + 1, &given[i].v);
            if (sqlite3_step(chk) == SQLITE_ROW)
                seen = sqlite3_column_int(chk, 0) > 0;
            sqlite3_finalize(chk);
        }
        tg__buf_free(&q);
        if (!seen)
            st = fx_error(fx, TG_REFUSED,
                          "%s is a view over %s, and the row the fixture wrote to %s does not "
                          "show through its WHERE; give the values its WHERE needs in %s, or "
                          "give %s an INSTEAD OF INSERT trigger",
                          view->name, t->name, t->name, ctx->hint, view->name);
    }
done:
    sqlite3_finalize(ins);
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

/* Rows of one family or exception table: two per tenant, with the rules' fixture values,
 * the tenant, the workspace (when the column exists), a searchable name and, for a
 * relation-manager child, its owner of the same tenant. */
static int fill_table(tg__fixture *fx, const char *table, const tg_family *fam, tg__fx_rows *out,
                      const char *hint) {
    const tg_app *a = &fx->r->app;
    tg__fx_table *t;
    int st = load_table(fx, table, &t);
    if (st != TG_OK)
        return st;
    int has_ws = written_col(t, a->workspace_column) != NULL;
    fx_col *tc = written_col(t, a->tenant_column);
    const tg_path_rule *rm = fam ? &fam->paths[TG_PATH_RELATION_MANAGER] : NULL;
    for (int tn = 0; tn < N_TENANTS; tn++) {
        for (int k = 0; k < 2; k++) {
            colval given[TG__MAX_FIXTURE + 8];
            size_t n =
                fam ? add_fixture(given, 0, TG__MAX_FIXTURE, fam->fixture, fam->n_fixture) : 0;
            char name[64];
            snprintf(name, sizeof name, "tgmatrix-%s-%d", tenant_tag(tn), k + 1);
            if (fam && fam->n_search_columns)
                given[n++] = cv(fam->search_columns[0], v_text(fx, name));
            if (tc)
                given[n++] = cv(a->tenant_column, fx->tenant[tn]);
            if (has_ws)
                given[n++] = cv(a->workspace_column, fx->ws[tn == T_C ? 1 : 0]);
            if (rm && rm->declared && fx->fams[rm->owner_family].rows[tn][k].type != TG_NULL)
                given[n++] = cv(rm->via, fx->fams[rm->owner_family].rows[tn][k]);
            fx_ctx ctx = {tn, tn == T_C ? 1 : 0, k, hint};
            if ((st = insert_row(fx, table, given, n, a->id_column, &ctx, &out->rows[tn][k])) !=
                TG_OK)
                return st;
        }
    }
    if (!fam && has_ws && (!tc || !tc->notnull)) {
        /* an exception's workspace-level row without a tenant, when the table allows one */
        colval given[3];
        size_t n = 0;
        given[n++] = cv(a->workspace_column, fx->ws[0]);
        if (tc)
            given[n++] = cv(a->tenant_column, v_null());
        fx_ctx ctx = {-1, 0, 0, hint};
        if ((st = insert_row(fx, table, given, n, a->id_column, &ctx, &out->ws_row)) != TG_OK)
            return st;
    }
    if (fam) {
        /* a column the write check may change: a text fixture column, or the search column */
        for (size_t i = 0; i < fam->n_fixture && !out->write_column; i++)
            if (fam->fixture[i].value.type == TG_TEXT)
                out->write_column = fam->fixture[i].column;
        if (!out->write_column && fam->n_search_columns)
            out->write_column = fam->search_columns[0];
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
        tg__sqlf(&sql, &tg__sqlite, "UPDATE %I SET %I = ?1 WHERE %I = ?2", r->families[fi].table,
                 p->via, r->app.id_column);
        sqlite3_stmt *st;
        if (sql.oom ||
            sqlite3_prepare_v2(fx->eng->db, tg__buf_str(&sql), -1, &st, NULL) != SQLITE_OK) {
            tg__buf_free(&sql);
            return db_fail(fx, r->families[fi].table);
        }
        tg__buf_free(&sql);
        for (int t = 0; t < N_TENANTS; t++)
            for (int k = 0; k < 2; k++) {
                bind_value(st, 1, &fx->fams[p->owner_family].rows[t][k]);
                bind_value(st, 2, &fx->fams[fi].rows[t][k]);
                if (sqlite3_step(st) != SQLITE_DONE) {
                    sqlite3_finalize(st);
                    return db_fail(fx, r->families[fi].table);
                }
                sqlite3_reset(st);
            }
        sqlite3_finalize(st);
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
static int choose_roles(tg__fixture *fx, const fx_col *rc, tg_value *full, tg_value *nocap) {
    const tg_rules *r = fx->r;
    const char *role_col = r->app.workspace_members.role;
    const char *where = r->app.workspace_members.table;
    fx->role_full = NULL;
    for (size_t i = 0; i < r->n_roles; i++) {
        tg_value v = v_text(fx, r->roles[i].name);
        if (!allowed(rc, &v))
            continue;
        if (!fx->role_full || count_grants(r, &r->roles[i]) > count_grants(r, fx->role_full))
            fx->role_full = &r->roles[i];
    }
    if (!fx->role_full)
        return fx_error(fx, TG_REFUSED,
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
    return fx_error(fx, TG_REFUSED,
                    "%s.%s: its CHECK allows only roles that grant capabilities, and the matrix "
                    "needs a member whose role grants nothing; allow a role that grants nothing "
                    "(or NULL) in the CHECK",
                    where, role_col);
}

/* A user key of the type the membership tables' user column holds. */
static tg_value user_key(tg__fixture *fx, const fx_col *uc, int u) {
    if (uc && uc->aff == 'T')
        return v_uuid(fx);
    if (uc && uc->aff == 'B' && strcasecmp(uc->type, "BLOB") == 0)
        return v_random_blob(fx);
    return v_int(4000000000000000000LL + u); /* users that exist nowhere else */
}

int tg__fixture_build(tg__fixture *fx) {
    const tg_rules *r = fx->r;
    const tg_app *a = &r->app;
    if (r->n_roles == 0)
        return fx_error(fx, TG_RULES, "the rules declare no role");
    int st;
    for (int w = 0; w < 2; w++) {
        colval given[TG__MAX_FIXTURE];
        size_t n =
            add_fixture(given, 0, TG__MAX_FIXTURE, a->workspaces.fixture, a->workspaces.n_fixture);
        fx_ctx ctx = {-1, w, w, "app.workspaces.fixture"};
        if ((st = insert_row(fx, a->workspaces.table, given, n, a->workspaces.id, &ctx,
                             &fx->ws[w])) != TG_OK)
            return st;
    }
    for (int t = 0; t < N_TENANTS; t++) {
        colval given[TG__MAX_FIXTURE + 1];
        size_t n = add_fixture(given, 0, TG__MAX_FIXTURE, a->tenants.fixture, a->tenants.n_fixture);
        given[n++] = cv(a->tenants.workspace, fx->ws[t == T_C ? 1 : 0]);
        fx_ctx ctx = {t, t == T_C ? 1 : 0, t, "app.tenants.fixture"};
        if ((st = insert_row(fx, a->tenants.table, given, n, a->tenants.id, &ctx,
                             &fx->tenant[t])) != TG_OK)
            return st;
    }
    /* the membership tables: user key type, role values, whether a NULL role is possible */
    tg__fx_table *wmt, *tmt;
    if ((st = load_table(fx, a->workspace_members.table, &wmt)) != TG_OK ||
        (st = load_table(fx, a->tenant_members.table, &tmt)) != TG_OK)
        return st;
    const fx_col *uc = written_col(wmt, a->workspace_members.user);
    const fx_col *rc =
        a->workspace_members.role ? written_col(wmt, a->workspace_members.role) : NULL;
    if (a->workspace_members.role && !rc)
        return fx_error(fx, TG_REFUSED, "%s has no column %s the fixture can write",
                        a->workspace_members.table, a->workspace_members.role);
    tg_value role_full = v_null(), role_nocap = v_null();
    if ((st = choose_roles(fx, rc, &role_full, &role_nocap)) != TG_OK)
        return st;
    fx->has_norole = rc && !rc->notnull;
    const fx_col *trc = a->tenant_members.role ? written_col(tmt, a->tenant_members.role) : NULL;
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
            if (a->workspace_members.role)
                given[n++] = cv(a->workspace_members.role, role);
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
        /* NULL keeps the workspace role; a NOT NULL tenant role repeats it */
        if (a->tenant_members.role)
            given[n++] = cv(a->tenant_members.role,
                            trc && trc->notnull && role.type != TG_NULL ? role : v_null());
        fx_ctx ctx = {stale ? T_A : members[m].tenant, stale ? 0 : members[m].ws, 0,
                      "app.tenant_members.fixture"};
        if ((st = insert_row(fx, a->tenant_members.table, given, n, NULL, &ctx, NULL)) != TG_OK)
            return st;
    }
    /* families, owners before the children that reference them where the order allows */
    unsigned char *done = calloc(r->n_families + 1, 2);
    if (!done)
        return fx_error(fx, TG_NOMEM, "out of memory");
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
        st = fill_table(fx, r->families[pick].table, &r->families[pick], &fx->fams[pick], hint);
        done[pick] = 1;
        left--;
    }
    for (size_t ei = 0; ei < r->n_exceptions && st == TG_OK; ei++) {
        char hint[240];
        snprintf(hint, sizeof hint, "the table's schema (a DEFAULT): exception %s takes no fixture",
                 r->exceptions[ei].name);
        if (r->exceptions[ei].table)
            st = fill_table(fx, r->exceptions[ei].table, NULL, &fx->excs[ei], hint);
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
