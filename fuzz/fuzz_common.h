/* Shared by the fuzz targets: where the sources are, a scratch directory, and a reference
 * database made once per process through the Lua module's refdb code. */
#ifndef TG_FUZZ_COMMON_H
#define TG_FUZZ_COMMON_H

#include <lua.h>
#include <stddef.h>

/* The source tree (compiled in; TG_SOURCE_DIR in the environment overrides it). */
const char *tgf_source_dir(void);
/* A fresh directory for this process under /dev/shm (or $TMPDIR, or /tmp), removed at
 * exit with everything in it. Aborts when none can be made. */
const char *tgf_scratch_dir(void);
/* A full Lua state with the tenantguard module preloaded (luaopen_tenantguard linked in)
 * and package.path reaching scripts/ and fuzz/. Aborts on failure. */
lua_State *tgf_lua_state(void);
/* Makes the reference database (`rows` rows per table) at scratch/name and returns its
 * path (static storage). Aborts on failure. */
const char *tgf_refdb(const char *name, int rows);

#endif
