/* Citus readiness, on paper: the statements the resolver and the write guard generate (so a
 * test can show which carry the tenant column as a bound equality and route to one shard),
 * the checks a distributed deployment needs (lint --target citus) and the DDL it would run
 * (rollout --plan --target citus). Nothing here runs against a Citus cluster. */
#ifndef TG_CITUS_H
#define TG_CITUS_H

#include "plan.h"

/* One statement the library would prepare. */
typedef struct tg__gen_stmt {
    const char *owner; /* the family or exception name; NULL for the scope statements */
    const char *kind;  /* the plan's slot: "first", "record", "page", "search", "relation",
                        * "by_ids", "by_id", "ws_page0".."ws_page3", "insert", "update",
                        * "scope", "entitlement" */
    const char *paths; /* the paths that run it, e.g. "detail row_action" */
    const char *table; /* the family or exception table it reads or writes; NULL: none */
    const char *tenant; /* that table's tenant column (NULL when it has none) */
    const char *sql;
} tg__gen_stmt;

/* Calls fn once per statement the resolver and the write guard of plan p would prepare, as
 * dialect d writes it (the plan's table shapes, read from its own database; the presence
 * markers follow d). The statements come from the same generator calls the resolver makes
 * with the same arguments (tests/c/test_citus_routing.c holds the two side by side).
 * Stops at the first non-zero return of fn and returns it; TG_NOMEM when a text could not
 * be built. Test and tool use only: nothing is prepared. */
TG_HIDDEN int tg__plan_statements(const tg__plan *p, const tg__dialect *d,
                                  int (*fn)(void *ud, const tg__gen_stmt *s), void *ud);

/* The slot of a plan statement by kind (as in tg__gen_stmt.kind), NULL when unknown: for
 * the test that compares what the resolver prepared with what tg__plan_statements says. */
TG_HIDDEN tg__stmt *tg__plan_slot(const tg__plan *p, const char *owner, const char *kind);

/* lint --target citus: what a Citus deployment of these rules requires, as findings
 * (citus_* codes, warning or info) added to f. With db (SQLite or PostgreSQL), its catalog
 * says which keys and foreign keys need the tenant column; without, only what the rules
 * alone tell. Returns TG_OK, or TG_NOMEM / TG_DB (the message in err). */
TG_HIDDEN int tg__citus_lint(const tg_rules *r, tg__db *db, tg_findings *f, tg__buf *err);

/* rollout --plan --target citus: the DDL a Citus deployment of these rules needs, in order,
 * as PostgreSQL text with every identifier quoted, appended to out. Nothing is run. With
 * db, the keys to rebuild come from its catalog; without, the plan says what it assumes. */
TG_HIDDEN int tg__citus_plan(const tg_rules *r, tg__db *db, tg__buf *out, tg__buf *err);

#endif
