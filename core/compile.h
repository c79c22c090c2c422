#ifndef TG_COMPILE_H
#define TG_COMPILE_H

#include "rules.h"

#include <lua.h>

/* Compiles the declarations collected by the sandbox (a Lua array at index `decls` of
 * {kind=, name=, body=, file=, line=}) into rs, reporting every problem to f. Runs under
 * lua_pcall; allocates only from rs->arena. Returns TG_OK, TG_RULES or TG_NOMEM. */
TG_HIDDEN int tg__compile(lua_State *L, int decls, tg__ruleset *rs, tg_findings *f);

#endif
