/* Roles granted by an application table (app.role_grants). */
#ifndef TG_GRANTS_H
#define TG_GRANTS_H

#include "rules.h"

#define TG__MAX_GRANT_ROLES 4096 /* distinct roles the role_grants table names */
#define TG__MAX_GRANT_ROWS 65536 /* rows of the role_grants table */

/* Reads app.role_grants from db into rs, which must be freshly compiled and not yet shared:
 * each row grants its capability ("*": every declared one) to its role, in addition to what
 * the rule files grant; a role only the table names is appended to rs->pub.roles. The rule
 * version becomes a hash of the rule files and the rows read, so a context can tell which
 * grants it decides with. A row naming an undeclared capability, a NULL or malformed role,
 * or a table past its limits is an error finding at the app declaration. Does nothing
 * without db or without the mapping. Returns TG_OK, TG_RULES (findings say why) or
 * TG_NOMEM; rs is unusable unless TG_OK. */
TG_HIDDEN int tg__grants_read(tg__ruleset *rs, tg__db *db, tg_findings *f);

#endif
