/* A loaded rule set: the public tg_rules view plus the arena that owns every string and
 * array in it. Immutable once built; shared by reference count between the engine and the
 * contexts created under it. */
#ifndef TG_RULES_H
#define TG_RULES_H

#include "util.h"

#include "store.h"

typedef struct tg__ruleset {
    tg_rules pub;
    tg__arena arena;
    int refs;
    size_t cap_words; /* uint64 words per role grant set */
} tg__ruleset;

/* Runs the rule scripts of opts->rules in a sandbox and compiles them. Every problem goes
 * to findings (which must exist). With db, the mapping is also checked against its schema.
 * Returns TG_OK and *out (one reference) when no finding is an error; otherwise TG_RULES
 * (or TG_NOMEM/TG_IO) and *out is NULL. */
TG_HIDDEN int tg__rules_load(const tg_open_options *opts, tg__db *db, tg_findings *findings,
                             tg__ruleset **out);

TG_HIDDEN tg__ruleset *tg__ruleset_retain(tg__ruleset *rs);
TG_HIDDEN void tg__ruleset_release(tg__ruleset *rs);

/* Checks the compiled rules against the database schema (tables, columns, drift). */
TG_HIDDEN void tg__rules_check_db(const tg__ruleset *rs, tg__db *db, tg_findings *findings);

/* True when role `role` grants capability `cap`. */
static inline int tg__role_grants(const tg_role *role, int cap) {
    return cap < 0 || (role && (role->grants[cap / 64] >> (cap % 64) & 1));
}

#endif
