/* What the matrix fixture knows about a table it writes: columns, types, CHECK constraints
 * read from the schema's SQL text, UNIQUE and foreign keys, and how a view maps onto its base
 * table.
 * Shared by fixture.c (writing rows) and fixture_schema.c (reading the schema). Private. */
#ifndef TG_FIXTURE_SCHEMA_H
#define TG_FIXTURE_SCHEMA_H

#include "fixture.h"

#include <string.h>

#define FX_MAX_COLS 128  /* columns of one table the fixture writes */
#define FX_MAX_CHECKS 64 /* CHECK constraints of one table read */
#define FX_MAX_IN 32     /* values of one IN list kept */

typedef struct colval {
    const char *col;
    tg_value v;
} colval;

static inline tg_value v_int(int64_t i) {
    tg_value v = {TG_INTEGER, i, 0, NULL, 0};
    return v;
}

static inline tg_value v_real(double r) {
    tg_value v = {TG_REAL, 0, r, NULL, 0};
    return v;
}

static inline tg_value v_null(void) {
    tg_value v = {TG_NULL, 0, 0, NULL, 0};
    return v;
}

/* Text kept in the fixture's arena (NULL value on OOM: the insert then fails closed). */
static inline tg_value v_text(tg__fixture *fx, const char *s) {
    tg_value v = {TG_TEXT, 0, 0, tg__arena_strdup(&fx->arena, s), 0};
    v.n = v.s ? strlen(v.s) : 0;
    if (!v.s)
        v.type = TG_NULL;
    return v;
}

static inline int v_equal(const tg_value *a, const tg_value *b) {
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
    char aff; /* 'I', 'T', 'B' (none), 'R', 'N'; on PostgreSQL also 'U' uuid, 'L' boolean,
               * 'D' dates and times (fixture_schema.c, pg_kind) */
    int notnull, has_default, pk, rowid_alias, generated;
    int maxkey; /* a sole integer primary key (PostgreSQL): filled with the largest + 1 */
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
static inline double num_of(const tg_value *v) {
    return v->type == TG_INTEGER ? (double)v->i : v->r;
}

/* Sets fx->err ("matrix fixture: ...", the first error only) and returns st. */
TG_HIDDEN int tg__fx_error(tg__fixture *fx, int st, const char *fmt, ...) TG_PRINTF(3, 4);
/* The fixture's knowledge of table or view `name`, loaded once per run (fx->tables). */
TG_HIDDEN int tg__fx_load_table(tg__fixture *fx, const char *name, tg__fx_table **out);
/* Column `name` of t (any case), NULL when none. */
TG_HIDDEN fx_col *tg__fx_find_col(tg__fx_table *t, const char *name);
/* The column of the table actually written that a name of `t` stands for (through a view's
 * map), or NULL when it is no plain column there. */
TG_HIDDEN fx_col *tg__fx_written_col(tg__fx_table *t, const char *name);

#endif
