/* A plan: what one rule version needs to decide against one database connection. Table
 * shapes read from the schema, and statements prepared once (lazily, persistent) and reused
 * by every context opened under that rule version. Shared by reference count. */
#ifndef TG_PLAN_H
#define TG_PLAN_H

#include "rules.h"
#include "sql.h"

typedef struct tg__table_plan {
    tg__table_shape shape;
    int col_id, col_tenant, col_workspace; /* indexes into shape.columns; -1 when absent */
    int present;                            /* the table exists */
    sqlite3_stmt *by_id, *by_ids, *page, *relation, *search;
    sqlite3_stmt *first;                    /* scope and record in one (tg__sql_scope_and_record) */
    sqlite3_stmt *ws_page[4];               /* exceptions: [entitled_only | tenant_only<<1] */
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
    sqlite3 *db;
    unsigned schema_gen;
    tg__arena arena;
    tg__table_plan *fams; /* one per family */
    tg__table_plan *excs; /* one per exception */
    sqlite3_stmt *scope, *entitlement;
    struct {
        uint64_t hash;
        sqlite3_stmt *st;
    } wcache[TG__WCACHE]; /* insert/update statements by SQL text hash */
    unsigned wnext;
} tg__plan;

/* Builds a plan for rs on db (reads table shapes; prepares nothing yet). */
TG_HIDDEN int tg__plan_new(tg__ruleset *rs, sqlite3 *db, unsigned schema_gen, int mutation,
                           tg__buf *err, tg__plan **out);
TG_HIDDEN tg__plan *tg__plan_retain(tg__plan *p);
TG_HIDDEN void tg__plan_release(tg__plan *p);

/* Prepares *slot from sql unless already prepared, and binds the row filter values it
 * uses (app.tenants', app.workspaces' and, for a slot inside a family's table plan, that
 * family's): these statements are reset between uses but never cleared. Returns an SQLite
 * code. */
TG_HIDDEN int tg__plan_prepare(tg__plan *p, sqlite3_stmt **slot, const tg__buf *sql);

/* A cached insert/update statement for this SQL text. Returns an SQLite code. */
TG_HIDDEN int tg__plan_write_stmt(tg__plan *p, const tg__buf *sql, sqlite3_stmt **out);

#endif
