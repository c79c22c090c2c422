/* The matrix fixture: two workspaces, three tenants, five actors and rows of every family
 * and exception table, made inside the matrix's transaction (rolled back by the caller) on
 * whatever schema the rules lint clean against. Private to the core. */
#ifndef TG_FIXTURE_H
#define TG_FIXTURE_H

#include "engine.h"
#include "util.h"

enum { T_A, T_B, T_C, N_TENANTS }; /* A, B in workspace X; C in workspace Y */
enum { U_FULL, U_NOCAP, U_UNENTITLED, U_STRANGER, U_NOROLE, N_USERS };

/* The rows made in one family or exception table. Keys have the table's key type. */
typedef struct tg__fx_rows {
    tg_value rows[N_TENANTS][2]; /* two rows per tenant */
    tg_value ws_row;             /* exceptions: a row with no tenant, in X (TG_NULL: none) */
    const char *write_column;    /* a column the write check may set, NULL: none */
} tg__fx_rows;

typedef struct tg__fx_table tg__fx_table;

typedef struct tg__fixture {
    tg_engine *eng;
    const tg_rules *r;
    tg_value ws[2];
    tg_value tenant[N_TENANTS];
    tg_value user[N_USERS];
    const tg_role *role_full;
    int has_norole;    /* the NULL-role actor exists (the role column accepts NULL) */
    tg__fx_rows *fams; /* per family */
    tg__fx_rows *excs; /* per exception */
    tg__buf err;       /* why the build failed */
    /* private to fixture.c */
    tg__arena arena; /* text and blob values */
    tg__fx_table *tables;
    int64_t counter;
    int depth;
} tg__fixture;

/* Builds the fixture inside the caller's transaction. fx->eng, fx->r, fx->fams and fx->excs
 * (zeroed, one per family and exception) are set by the caller. On failure fx->err says
 * which table, column and constraint, and what to give. */
TG_HIDDEN int tg__fixture_build(tg__fixture *fx);
/* Frees what the build allocated (not fams/excs). Safe on a fixture that was never built. */
TG_HIDDEN void tg__fixture_free(tg__fixture *fx);

#endif
