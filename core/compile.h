#ifndef TG_COMPILE_H
#define TG_COMPILE_H

#include "rules.h"

#include <lua.h>

/* Compiles the declarations collected by the sandbox (a Lua array at index `decls` of
 * {kind=, name=, body=, file=, line=}) into rs, reporting every problem to f. Runs under
 * lua_pcall; allocates only from rs->arena. Returns TG_OK, TG_RULES or TG_NOMEM. */
TG_HIDDEN int tg__compile(lua_State *L, int decls, tg__ruleset *rs, tg_findings *f);

/* s[0..len) for a message: the body of a Lua string literal ('a\0b'), cut with "..." around
 * its first zero byte when longer than buf. Defined in load.c. Returns buf. */
#define TG__SHOW_BYTES 256
TG_HIDDEN const char *tg__show_bytes(const char *s, size_t len, char *buf, size_t n);

#endif
