/* Reading the schema for the matrix fixture: a cautious tokenizer for the schema's SQL text
 * (SQLite's sqlite_schema; on PostgreSQL what pg_get_viewdef and pg_get_constraintdef
 * print, whose casts it skips and whose `= ANY (ARRAY[...])` it reads as IN), the catalog
 * questions in the store's dialect (sql.h, sql_fx_*),
 * the simple forms of CHECK constraints (IN lists, comparisons, BETWEEN, length(), <> ''),
 * UNIQUE constraints and indexes, foreign keys, and views: one with an INSTEAD OF INSERT
 * trigger is written as is, a simple single-table SELECT through its base table (its
 * WHERE's equalities become fixed values); any other view is an error naming it. */
#include "fixture_schema.h"
#include "sql.h"
#include "store.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define FX_MAX_TOKENS 8192

/* ---- a cautious SQL tokenizer (for the schema's SQL text) ---- */

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

static int type_word(const char *p, size_t n) {
    static const char *const words[] = {"varying", "precision", "with", "without", "time",
                                        "zone"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (strlen(words[i]) == n && strncasecmp(p, words[i], n) == 0)
            return 1;
    return 0;
}

/* Past a PostgreSQL cast's type name, p just after "::": `text`, `"Type"`,
 * `pg_catalog.text`, `character varying(40)`, `timestamp with time zone`, `integer[]`. A
 * cast never changes which value a literal is here (what pg_get_constraintdef and
 * pg_get_viewdef print: 'open'::text, ARRAY['a'::text]), so the tokenizer drops it. */
static const char *skip_cast(const char *p) {
    for (int words = 0;; words++) {
        while (isspace((unsigned char)*p))
            p++;
        const char *q = p;
        if (*q == '"') {
            for (q++; *q && !(q[0] == '"' && q[1] != '"'); q += q[0] == '"' ? 2 : 1)
                ;
            if (*q)
                q++;
        } else {
            while (isalnum((unsigned char)*q) || *q == '_' || *q == '$')
                q++;
        }
        if (q == p || (words && !(*p != '"' && type_word(p, (size_t)(q - p)))))
            break;
        p = q;
        if (*p == '.') { /* a schema-qualified type: the name follows */
            p++;
            words = -1;
        }
    }
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '(') {
        const char *e = strchr(p, ')');
        p = e ? e + 1 : p + strlen(p);
    }
    while (p[0] == '[' && p[1] == ']')
        p += 2;
    return p;
}

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
        if (p[0] == ':' && p[1] == ':') {
            p = skip_cast(p + 2);
            continue;
        }
        /* PostgreSQL's ARRAY[...] (after ARRAY, '[' opens no quoted name) */
        int array = out->n && out->t[out->n - 1].kind == K_ID && out->t[out->n - 1].n == 5 &&
                    strncasecmp(out->t[out->n - 1].p, "ARRAY", 5) == 0;
        tok t = {K_OP, p, 1};
        if (*p == '\'' || *p == '"' || *p == '`' || (*p == '[' && !array) ||
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

/* A literal at tokens [*i, ...): a signed number, a string, NULL, TRUE or FALSE, maybe in
 * parentheses (PostgreSQL prints ARRAY[(0)::bigint, ...], its cast skipped). */
static int literal_at(tg__fixture *fx, const toks *ts, size_t *i, tg_value *out) {
    size_t k = *i;
    if (is_op(ts, k, "(")) {
        size_t in = k + 1;
        if (!literal_at(fx, ts, &in, out) || !is_op(ts, in, ")"))
            return 0;
        *i = in + 1;
        return 1;
    }
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

int tg__fx_error(tg__fixture *fx, int st, const char *fmt, ...) {
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
    return tg__fx_error(fx, TG_DB, "%s: %s", what, tg__db_errmsg(fx->eng->store));
}

fx_col *tg__fx_find_col(tg__fx_table *t, const char *name) {
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

/* A PostgreSQL type (as format_type() prints it) as the fixture's kind of value: 'I'
 * integers, 'R' floating and exact numbers, 'T' character types, 'B' bytea, 'U' uuid, 'L'
 * boolean, 'D' dates and times; 'N' anything else (given a number, else text). A character
 * type's declared length becomes the column's length limit. */
static char pg_kind(const char *type, int64_t *maxlen) {
    if (!strcmp(type, "bigint") || !strcmp(type, "integer") || !strcmp(type, "smallint"))
        return 'I';
    if (!strcmp(type, "real") || !strcmp(type, "double precision") ||
        !strncmp(type, "numeric", 7))
        return 'R';
    if (!strcmp(type, "uuid"))
        return 'U';
    if (!strcmp(type, "bytea"))
        return 'B';
    if (!strcmp(type, "boolean"))
        return 'L';
    if (!strcmp(type, "date") || !strncmp(type, "timestamp", 9))
        return 'D';
    if (!strcmp(type, "text") || !strcmp(type, "citext") || !strcmp(type, "name") ||
        !strncmp(type, "character", 9)) {
        const char *open = strchr(type, '(');
        if (open)
            *maxlen = strtoll(open + 1, NULL, 10);
        return 'T';
    }
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
        *col = tg__fx_find_col(t, name);
        return *col ? i + 4 : 0;
    }
    if (ident_at(ts, i, name, sizeof name) && !is_op(ts, i + 1, "(")) {
        *col = tg__fx_find_col(t, name);
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
        /* PostgreSQL's IN: col = ANY (ARRAY[...]), NOT IN: col <> ALL (ARRAY[...]) */
        int any = is_op(ts, i, "=") && is_kw(ts, i + 1, "ANY");
        int all = (is_op(ts, i, "<>") || is_op(ts, i, "!=")) && is_kw(ts, i + 1, "ALL");
        if (!fn && (any || all)) {
            size_t k = i + 2;
            if (!is_op(ts, k, "(") || close_paren(ts, k) != e - 1 || !is_kw(ts, k + 1, "ARRAY") ||
                !is_op(ts, k + 2, "[") || !is_op(ts, e - 2, "]"))
                return 0;
            int n = 0;
            for (k += 3; k < e - 2;) {
                if (n == FX_MAX_IN || !literal_at(fx, ts, &k, &lits[n]))
                    return 0;
                n++;
                if (is_op(ts, k, ","))
                    k++;
                else if (k != e - 2)
                    return 0;
            }
            if (all) {
                for (int j = 0; j < n && c->cons.n_ne < 8; j++)
                    c->cons.ne[c->cons.n_ne++] = lits[j];
            } else {
                cons_in(&c->cons, lits, n);
            }
            return 1;
        }
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
        if (ident_at(ts, i, id, sizeof id) && (c = tg__fx_find_col(t, id)) != NULL) {
            int ci = (int)(c - t->cols);
            ck->cols[ci / 64] |= (uint64_t)1 << (ci % 64);
        }
    }
    /* PostgreSQL parenthesizes the whole expression (and each conjunct) */
    while (is_op(ts, s, "(") && close_paren(ts, s) == e - 1) {
        s++;
        e--;
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
                if (ident_at(ts, k, id, sizeof id) && (c = tg__fx_find_col(t, id)) != NULL)
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
    tg__db *db = fx->eng->store;
    int pg = db->backend == TG__BACKEND_POSTGRES;
    tg__stmt *st;
    if (tg__st_prepare_once(db, db->dialect->sql_fx_columns, &st) != TG__ST_OK)
        return db_fail(fx, t->name);
    tg__st_bind_str(st, 1, t->name);
    int pks = 0;
    while (tg__st_step(st) == TG__ST_ROW) {
        if (t->n_cols == FX_MAX_COLS) {
            tg__st_finalize(st);
            return tg__fx_error(fx, TG_REFUSED, "%s has more than %d columns", t->name,
                                FX_MAX_COLS);
        }
        fx_col *c = &t->cols[t->n_cols++];
        snprintf(c->name, sizeof c->name, "%s", (const char *)tg__st_column_text(st, 0));
        snprintf(c->type, sizeof c->type, "%s", (const char *)tg__st_column_text(st, 1));
        c->cons.maxlen = -1;
        c->aff = pg ? pg_kind(c->type, &c->cons.maxlen) : affinity(c->type);
        c->notnull = (int)tg__st_column_int64(st, 2);
        c->has_default = tg__st_column_int64(st, 3) != 0;
        c->pk = (int)tg__st_column_int64(st, 4);
        c->generated = (int)tg__st_column_int64(st, 5) != 0;
        c->fk = -1;
        c->cand = -1;
        pks += c->pk > 0;
    }
    tg__st_finalize(st);
    if (t->n_cols == 0)
        return tg__fx_error(fx, TG_REFUSED, "no table or view named %s", t->name);
    return pks;
}

static int load_constraints(tg__fixture *fx, tg__fx_table *t, int pks) {
    tg__db *db = fx->eng->store;
    int pg = db->backend == TG__BACKEND_POSTGRES;
    for (int i = 0; i < t->n_cols; i++) {
        fx_col *c = &t->cols[i];
        /* SQLite's INTEGER PRIMARY KEY is the rowid: left out, SQLite picks a new one.
         * PostgreSQL has no rowid; a sole integer key is given the largest one plus one,
         * never its identity or serial default, whose sequence a rollback does not undo
         * (and which a copied table may not have moved past its rows) */
        c->rowid_alias = !pg && !t->without_rowid && c->pk && pks == 1 &&
                         strcasecmp(c->type, "INTEGER") == 0;
        c->maxkey = pg && c->pk && pks == 1 && c->aff == 'I';
        if (c->pk && !c->rowid_alias)
            c->unique = 1;
    }
    /* UNIQUE constraints and indexes, alone or composite */
    tg__stmt *st;
    if (tg__st_prepare_once(db, db->dialect->sql_fx_unique, &st) != TG__ST_OK)
        return db_fail(fx, t->name);
    tg__st_bind_str(st, 1, t->name);
    while (tg__st_step(st) == TG__ST_ROW) {
        fx_col *c = tg__fx_find_col(t, (const char *)tg__st_column_text(st, 0));
        if (c)
            c->unique = 1;
    }
    tg__st_finalize(st);
    if (tg__st_prepare_once(db, db->dialect->sql_fx_foreign_keys, &st) != TG__ST_OK)
        return db_fail(fx, t->name);
    tg__st_bind_str(st, 1, t->name);
    while (tg__st_step(st) == TG__ST_ROW) {
        fx_col *c = tg__fx_find_col(t, (const char *)tg__st_column_text(st, 2));
        if (!c || c->fk >= 0)
            continue;
        c->fk = (int)tg__st_column_int64(st, 0);
        snprintf(c->fk_table, sizeof c->fk_table, "%s", (const char *)tg__st_column_text(st, 1));
        const char *to = tg__st_column_text(st, 3);
        snprintf(c->fk_col, sizeof c->fk_col, "%s", to ? (const char *)to : "");
    }
    tg__st_finalize(st);
    return TG_OK;
}

static int has_instead_of_insert(tg__fixture *fx, const char *view) {
    tg__stmt *st;
    int found = 0;
    if (tg__st_prepare_once(fx->eng->store, fx->eng->store->dialect->sql_fx_triggers, &st) !=
        TG__ST_OK)
        return 0;
    tg__st_bind_str(st, 1, view);
    while (!found && tg__st_step(st) == TG__ST_ROW) {
        toks ts;
        if (!tokenize((const char *)tg__st_column_text(st, 0), &ts))
            continue;
        for (size_t i = 0; i + 2 < ts.n && !is_kw(&ts, i, "BEGIN"); i++)
            if (is_kw(&ts, i, "INSTEAD") && is_kw(&ts, i + 1, "OF") && is_kw(&ts, i + 2, "INSERT"))
                found = 1;
        free(ts.t);
    }
    tg__st_finalize(st);
    return found;
}

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
    if (is_op(&ts, k, ".")) { /* schema.table (pg_get_viewdef, off the search path) */
        if (!ident_at(&ts, k + 1, base, sizeof base)) {
            snprintf(why, sizeof why, "it does not select FROM one table");
            goto not_simple;
        }
        k += 2;
    }
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
    int st = tg__fx_load_table(fx, base, &b);
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
        return tg__fx_error(fx, TG_NOMEM, "%s: out of memory", t->name);
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
            int plain = ident_at(&ts, p, q1, sizeof q1) && ts.t[p].kind != K_STR &&
                        tg__fx_find_col(b, q1) != NULL;
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
    /* the WHERE: fixed values for the rows to show through the view (PostgreSQL
     * parenthesizes it whole, and each conjunct) */
    while (where && is_op(&ts, where, "(") && close_paren(&ts, where) == where_end - 1) {
        where++;
        where_end--;
    }
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
            size_t p = s, qe = q;
            while (is_op(&ts, p, "(") && close_paren(&ts, p) == qe - 1) {
                p++;
                qe--;
            }
            char q1[128];
            if (ident_at(&ts, p, q1, sizeof q1) && is_op(&ts, p + 1, ".") &&
                (!strcasecmp(q1, alias) || !strcasecmp(q1, base)))
                p += 2;
            fx_col *c = ident_at(&ts, p, q1, sizeof q1) ? tg__fx_find_col(b, q1) : NULL;
            tg_value v;
            size_t lp = p + 2;
            if (c && t->n_fixed < 16) {
                colval *f = &t->fixed[t->n_fixed];
                f->col = c->name;
                if ((is_op(&ts, p + 1, "=") || is_op(&ts, p + 1, "==")) &&
                    literal_at(fx, &ts, &lp, &v) && lp == qe) {
                    f->v = v;
                    t->n_fixed++;
                } else if (is_kw(&ts, p + 1, "IN") && is_op(&ts, p + 2, "(") &&
                           (lp = p + 3, literal_at(fx, &ts, &lp, &v))) {
                    f->v = v;
                    t->n_fixed++;
                } else if (is_op(&ts, p + 1, "=") && is_kw(&ts, p + 2, "ANY") &&
                           is_op(&ts, p + 3, "(") && is_kw(&ts, p + 4, "ARRAY") &&
                           is_op(&ts, p + 5, "[") &&
                           (lp = p + 6, literal_at(fx, &ts, &lp, &v))) {
                    f->v = v; /* PostgreSQL's IN */
                    t->n_fixed++;
                } else if (is_kw(&ts, p + 1, "IS") && is_kw(&ts, p + 2, "NULL") && p + 3 == qe) {
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
    return tg__fx_error(
        fx, TG_REFUSED,
        "%s is a view the fixture cannot write through (%s): it writes a view only "
        "through an INSTEAD OF INSERT trigger or, for a simple single-table SELECT, "
        "its base table; give %s such a trigger or map the rules to its table",
        t->name, why, t->name);
}

int tg__fx_load_table(tg__fixture *fx, const char *name, tg__fx_table **out) {
    for (tg__fx_table *t = fx->tables; t; t = t->next)
        if (strcasecmp(t->name, name) == 0) {
            *out = t;
            return TG_OK;
        }
    if (++fx->depth > 8) {
        fx->depth--;
        return tg__fx_error(fx, TG_REFUSED, "%s: views nested too deep", name);
    }
    tg__fx_table *t = calloc(1, sizeof *t);
    if (!t) {
        fx->depth--;
        return tg__fx_error(fx, TG_NOMEM, "%s: out of memory", name);
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    t->next = fx->tables;
    fx->tables = t;
    tg__stmt *st;
    int rc = TG_OK;
    if (tg__st_prepare_once(fx->eng->store, fx->eng->store->dialect->sql_fx_object, &st) !=
        TG__ST_OK) {
        fx->depth--;
        return db_fail(fx, name);
    }
    tg__st_bind_str(st, 1, name);
    char *sql = NULL;
    int view = 0;
    if (tg__st_step(st) == TG__ST_ROW) {
        view = strcmp((const char *)tg__st_column_text(st, 0), "view") == 0;
        const char *s = tg__st_column_text(st, 1);
        sql = s ? tg__arena_strdup(&fx->arena, (const char *)s) : NULL;
    }
    tg__st_finalize(st);
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

fx_col *tg__fx_written_col(tg__fx_table *t, const char *name) {
    if (t->kind != TBL_VIEW_BASE)
        return tg__fx_find_col(t, name);
    for (int i = 0; i < t->n_map; i++)
        if (strcasecmp(t->map[i].vcol, name) == 0)
            return t->map[i].bcol[0] ? tg__fx_find_col(t->base, t->map[i].bcol) : NULL;
    return t->star ? tg__fx_find_col(t->base, name) : NULL;
}
