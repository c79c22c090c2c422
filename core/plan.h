/* A plan: what one rule version needs to decide against one database connection. Table
 * shapes read from the schema, and statements prepared once (lazily, persistent) and reused
 * by every context opened under that rule version. Shared by reference count. */
#ifndef TG_PLAN_H
#define TG_PLAN_H

#include "rules.h"
#include "sql.h"


/* A key column: where a request key is looked up, for its type and for messages. */
typedef struct tg__keycol {
    const char *table, *column;
    int aff;
    const char *lowest; /* text affinity: the lowest key (the dialect's lowest_text) */
} tg__keycol;

typedef struct tg__table_plan {
    tg__table_shape shape;
    const tg_columns *names;               /* the table's id/tenant/workspace names (rules) */
    int col_id, col_tenant, col_workspace; /* indexes into shape.columns; -1 when absent */
    const unsigned char *affs;              /* affinity of each column */
    tg__keycol id_key;                      /* the id column, for request keys */
    int present;                            /* the table exists */
    int key_with_tenant; /* the id is a key only with the tenant (tg__key_kind 2): a read by id
                          * without a route tenant may find one row per tenant */
    int is_view;         /* a view: its joins may repeat a row whatever the key; every read by
                          * id looks for a second row and refuses the id when there is one */
    tg__stmt *by_id, *by_ids, *page, *relation, *search;
    tg__stmt *first;                    /* scope and record in one (tg__sql_scope_and_record) */
    tg__stmt *record;                   /* a record and its foreign tenant (tg__sql_record) */
    tg__stmt *ws_page[4];               /* exceptions: [entitled_only | tenant_only<<1] */
    int need[TG_PATH_COUNT]; /* the capability each path requires (TG__NEED_*); for an
                              * exception, need[0] applies to every path */
} tg__table_plan;

/* What a path or exception requires of the caller's role, fixed when the plan is built:
 * a capability index (>= 0), or one of these. A path or exception that declares no
 * capability requires one nobody holds: fail closed, an unspecified capability denies. */
enum {
    TG__NEED_DENY = -1,   /* no capability declared: 403 for everyone once scope holds */
    TG__NEED_NOTHING = -2 /* only the mutant "capability_less_path_grants" builds this */
};

/* True when role grants what `need` requires. A NULL role (none, or an undeclared name)
 * grants nothing. */
static inline int tg__plan_grants(const tg_role *role, int need) {
    if (need >= 0)
        return role && (role->grants[need / 64] >> (need % 64) & 1);
    return need == TG__NEED_NOTHING;
}

#define TG__WCACHE 16

/* Ways the matrix's mutation check weakens enforcement, one at a time, to prove the matrix
 * catches each. Never set outside tg_run_matrix. */
enum {
    TG__MUT_NONE,
    TG__MUT_DROP_TENANT_CONDITION,
    TG__MUT_SKIP_BULK_CONGRUENCE,
    TG__MUT_CAPABILITY_BEFORE_SCOPE,
    TG__MUT_IGNORE_CANONICAL_OWNER,
    TG__MUT_SEARCH_WIDENS_TO_WORKSPACE,
    TG__MUT_SKIP_RELATION_OWNER_CHECK,
    TG__MUT_SKIP_MEMBERSHIP,
    TG__MUT_SKIP_ENTITLEMENT,
    TG__MUT_UPDATE_ANY_TENANT,
    TG__MUT_EXCEPTION_SKIPS_CHECKS,
    TG__MUT_LIKE_UNESCAPED,
    TG__MUT_CAPABILITY_LESS_PATH_GRANTS,
    TG__MUT_COUNT
};

typedef struct tg__plan {
    int refs;
    int mutation;
    tg__ruleset *rs;
    tg__db *db;
    unsigned schema_gen;
    tg__arena arena;
    tg__table_plan *fams; /* one per family */
    tg__table_plan *excs; /* one per exception */
    tg__stmt *scope, *entitlement;
    tg__scope_marks marks; /* how the scope statements tell a membership row exists */
    /* a family table has row-level security on (PostgreSQL): every decision's statements
     * run with the context's tenant set for the transaction (tg__db_set_scope) */
    int rls;
    tg__keycol user_keys[2]; /* the membership tables' user columns */
    tg__keycol workspace_key, tenant_key;
    struct {
        uint64_t hash;
        tg__stmt *st;
    } wcache[TG__WCACHE]; /* insert/update statements by SQL text hash */
    unsigned wnext;
} tg__plan;

/* The affinity of a declared type (SQLite's rules: INT, then CHAR/CLOB/TEXT, then BLOB or
 * none, then REAL/FLOA/DOUB and NUMERIC, both TG__AFF_NUMERIC). A declared BLOB is
 * TG__AFF_BLOB, no declared type TG__AFF_NONE. */
/* The affinity of table.column, TG__AFF_NONE when it cannot be read. */
TG_HIDDEN int tg__column_affinity(tg__db *db, const char *table, const char *column);
/* Checks that key `in` (not TG_NULL) can be a key of column kc and writes the key to bind and
 * compare to *out (text for a declared BLOB column becomes a blob; a text length of 0 is
 * filled in from strlen). Returns 0, or -1 with "<field>: expected ... for t.c, got ..." in
 * msg. */
TG_HIDDEN int tg__key_check(const tg__keycol *kc, const char *field, const tg_value *in,
                            tg_value *out, char *msg, size_t msg_size);
/* The common case of tg__key_check, without a call: an integer for a column that takes
 * one as it is. */
static inline int tg__key_plain_integer(const tg__keycol *kc, const tg_value *in) {
    return in->type == TG_INTEGER && kc->aff != TG__AFF_TEXT && kc->aff != TG__AFF_BLOB &&
           kc->aff != TG__AFF_UUID;
}
/* Binds a key (integer, text, blob; anything else binds NULL). Returns an SQLite code.
 * Inline: it is on every decision's path. */
static inline int tg__bind_key(tg__stmt *st, int i, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER: return tg__st_bind_int64(st, i, v->i);
    case TG_TEXT: return tg__st_bind_text(st, i, v->s, v->n, 0);
    case TG_BLOB:
        return tg__st_bind_blob(st, i, v->s, v->n, 0); /* an empty blob is still a key */
    default: return tg__st_bind_null(st, i);
    }
}

/* True when column col of the current row has the type and value of key v (NULL never). */
TG_HIDDEN int tg__col_eq_bytes(tg__stmt *st, int col, int type, const tg_value *v);
/* The same when the column's type is known already. */
static inline int tg__col_eq_typed(tg__stmt *st, int col, int type, const tg_value *v) {
    if (type == TG__T_INTEGER)
        return v->type == TG_INTEGER && tg__st_column_int64(st, col) == v->i;
    return tg__col_eq_bytes(st, col, type, v);
}
static inline int tg__col_eq(tg__stmt *st, int col, const tg_value *v) {
    return tg__col_eq_typed(st, col, tg__st_column_type(st, col), v);
}
/* True when a and b are keys of the same type and value (TG_NULL never equals). */
TG_HIDDEN int tg__value_eq(const tg_value *a, const tg_value *b);
/* Orders keys by type, then value (for sorting and removing duplicates). */
TG_HIDDEN int tg__value_cmp(const tg_value *a, const tg_value *b);
/* Copies column col of the current row as a key into buf (reset first): *out points into
 * buf until its next change; TG_NULL for NULL or a real. */
TG_HIDDEN void tg__key_from_col(tg__stmt *st, int col, tg__buf *buf, tg_value *out);
/* True when binding key v against a column of affinity aff may compare equal to a value of
 * another type (SQLite converts it): a C check must then confirm every row. */
TG_HIDDEN int tg__key_coerces(int aff, const tg_value *v);
/* "integer", "text", "blob", ... for messages. */
TG_HIDDEN const char *tg__value_type_name(int type);

/* Builds a plan for rs on db (reads table shapes; prepares nothing yet). */
TG_HIDDEN int tg__plan_new(tg__ruleset *rs, tg__db *db, unsigned schema_gen, int mutation,
                           tg__buf *err, tg__plan **out);
TG_HIDDEN tg__plan *tg__plan_retain(tg__plan *p);
TG_HIDDEN void tg__plan_release(tg__plan *p);

/* Prepares *slot from sql unless already prepared, and binds the row filter values it
 * uses (app.tenants', app.workspaces' and, for a slot inside a family's table plan, that
 * family's): these statements are reset between uses but never cleared. Returns an SQLite
 * code. */
TG_HIDDEN int tg__plan_prepare(tg__plan *p, tg__stmt **slot, const tg__buf *sql);

/* A cached insert/update statement for this SQL text. Returns an SQLite code. */
TG_HIDDEN int tg__plan_write_stmt(tg__plan *p, const tg__buf *sql, tg__stmt **out);

#endif
