/* Rule loading: runs the rule scripts in a sandboxed Lua state and hands the declarations
 * they made to the compiler.
 *
 * The sandbox (after Redis' script_lua.c): a fresh state per load with only the base,
 * string, table, math and utf8 libraries; a fresh environment per file holding an allow-list
 * of safe functions and the rule constructors; reading or writing any other global raises;
 * chunks are text only; an instruction-count hook and a capped allocator turn an endless
 * loop or a memory bomb into an error message. pcall is not offered, so a rule file cannot
 * swallow the budget error. */
#include "compile.h"
#include "rules.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define DEFAULT_MEMORY_CAP ((size_t)64 << 20)
#define MIN_MEMORY_CAP ((size_t)1 << 20)
#define MAX_MEMORY_CAP ((size_t)1 << 30)
#define DEFAULT_BUDGET 20000000
#define MAX_BUDGET 1000000000
#define CHURN_FACTOR 8           /* allocation budget: this many times the memory cap */
#define CPU_NS_DEFAULT 1000000000 /* CPU budget at the default instruction budget: 1 s */
#define HOOK_EVERY 100           /* instructions between two calls of the count hook */
#define SLOW_STRING 4096         /* strings this long make the hook run more often */
#define CLOCK_EVERY_NS 2000000   /* wall time between two reads of the CPU clock */

/* The budgets of one load. Each is sticky: once `tripped` is set, the hook raises at its next
 * call, every wrapped library function raises, and the allocator refuses to grow anything,
 * so no code path of the rule file can keep running. */
typedef struct loader {
    size_t mem_used, mem_cap;
    size_t churn, churn_cap; /* bytes allocated while rule files ran, and the budget */
    int64_t budget, spent;   /* instruction budget; work inside C functions is added too */
    int64_t cpu_limit_ns, cpu_start_ns, last_wall_ns;
    unsigned allocs, compares;
    int hook_every;       /* instructions between two calls of the count hook */
    int hook_calls;
    lua_State *L;
    int running;          /* a rule file is running: the budgets apply */
    const char *tripped;  /* the budget exceeded: "instruction_budget", "cpu_budget", ... */
    const char *code;     /* check code of the error being raised by the sandbox itself */
    const char *file;     /* the file being run */
    int line;             /* the last line of the file seen running (hook, wrappers, errors) */
    size_t n_decls;
} loader;

static int64_t now_ns(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Reads the thread's CPU clock when some wall time has passed since the last read (CPU
 * time cannot have grown faster than wall time), and trips the CPU budget when spent. */
static void check_cpu(loader *ld) {
    int64_t wall = now_ns(CLOCK_MONOTONIC);
    if (wall - ld->last_wall_ns < CLOCK_EVERY_NS)
        return;
    ld->last_wall_ns = wall;
    if (!ld->tripped && now_ns(CLOCK_THREAD_CPUTIME_ID) - ld->cpu_start_ns > ld->cpu_limit_ns)
        ld->tripped = "cpu_budget";
}

static void budget_hook(lua_State *L, lua_Debug *ar);

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    loader *ld = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        ld->mem_used -= old;
        return NULL;
    }
    /* `<` and `<=` on strings are single instructions, and Lua compares strings one
     * zero-separated segment at a time (a strcoll call each, ~10 ns): one comparison of a
     * 30 MB string of zero bytes costs 0.3 s, so 100 instructions between two reads of the
     * clock could take half a minute. The longest string made so far sets the hook's
     * period: HOOK_EVERY instructions below SLOW_STRING bytes, down to every instruction
     * from HOOK_EVERY * SLOW_STRING bytes on, so the work between two reads of the clock
     * stays under a few ms, or one instruction. (A new object arrives with ptr NULL and
     * its type in osize.) */
    if (!ptr && osize == LUA_TSTRING && nsize >= SLOW_STRING) {
        size_t every = (size_t)HOOK_EVERY * SLOW_STRING / nsize;
        if (every < 1)
            every = 1;
        if ((int)every < ld->hook_every) {
            ld->hook_every = (int)every;
            if (ld->running)
                lua_sethook(ld->L, budget_hook, LUA_MASKCOUNT, ld->hook_every);
        }
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        if (ld->mem_used + grow > ld->mem_cap)
            return NULL;
        if (ld->running) {
            if (ld->tripped)
                return NULL;
            ld->churn += grow;
            if (ld->churn > ld->churn_cap) {
                ld->tripped = "allocation_budget";
                return NULL;
            }
            if (grow >= 65536 || (++ld->allocs & 63) == 0) {
                check_cpu(ld);
                if (ld->tripped)
                    return NULL;
            }
        }
    }
    void *p = realloc(ptr, nsize);
    if (p)
        ld->mem_used = ld->mem_used - old + nsize;
    return p;
}

/* The escape of byte i of s (see tg__show_bytes) in e; returns its length. */
static size_t escape_byte(const char *s, size_t len, size_t i, char e[8]) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\0') /* \000 before a digit, which would read as part of the escape */
        strcpy(e, i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9' ? "\\000" : "\\0");
    else if (ch == '\\')
        strcpy(e, "\\\\");
    else if (ch == '\n')
        strcpy(e, "\\n");
    else if (ch < 0x20 || ch == 0x7f)
        snprintf(e, 8, "\\%03u", (unsigned)ch);
    else {
        e[0] = (char)ch;
        e[1] = '\0';
    }
    return strlen(e);
}

const char *tg__show_bytes(const char *s, size_t len, char *buf, size_t n) {
    char e[8];
    size_t o = 0, i = 0, need = 0;
    if (n < 16) {
        if (n)
            buf[0] = '\0';
        return buf;
    }
    for (size_t k = 0; k < len && need < n; k++)
        need += escape_byte(s, len, k, e);
    const char *z = memchr(s, '\0', len);
    if (need >= n && z && (size_t)(z - s) > n / 4) { /* too long: keep the zero byte in sight */
        i = (size_t)(z - s) - n / 8;
        memcpy(buf, "...", 3);
        o = 3;
    }
    for (; i < len; i++) {
        size_t el = escape_byte(s, len, i, e);
        if (need >= n && o + el + 4 > n) { /* room for "..." and the terminator */
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, e, el);
        o += el;
    }
    buf[o] = '\0';
    return buf;
}

static loader *get_loader(lua_State *L) {
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* Remembers the line of the innermost running function of the rule file, if any. */
static void note_line(lua_State *L, loader *ld) {
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "l", &ar) && ar.currentline > 0) {
            ld->line = ar.currentline;
            return;
        }
    }
}

/* Raises the error of the tripped budget. The finding is written from ld, so the message
 * here only has to carry the position (it may not even be allocated once memory is out). */
static int raise_tripped(lua_State *L, loader *ld) {
    ld->code = ld->tripped;
    return luaL_error(L, "rule file exceeded its %s", ld->tripped);
}

/* Count hook: counts instructions, reads the CPU clock now and then, remembers the line
 * (about every HOOK_EVERY instructions, and when raising). */
static void budget_hook(lua_State *L, lua_Debug *ar) {
    loader *ld = get_loader(L);
    ld->spent += ld->hook_every;
    if (ld->spent > ld->budget && !ld->tripped)
        ld->tripped = "instruction_budget";
    check_cpu(ld);
    ld->hook_calls += ld->hook_every;
    if (ld->hook_calls >= HOOK_EVERY || ld->tripped) {
        ld->hook_calls = 0;
        if (lua_getinfo(L, "l", ar) && ar->currentline > 0)
            ld->line = ar->currentline;
    }
    if (ld->tripped)
        raise_tripped(L, ld);
}

/* Charges `units` (about one instruction's worth of work each) done inside a library
 * function to the instruction budget, before the work is done. */
static void charge(lua_State *L, loader *ld, int64_t units) {
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar) && ar.currentline > 0)
        ld->line = ar.currentline;
    if (units < 0 || units > ld->budget - ld->spent)
        ld->spent = ld->budget + 1;
    else
        ld->spent += units;
    if (ld->spent > ld->budget && !ld->tripped)
        ld->tripped = "instruction_budget";
    check_cpu(ld);
    if (ld->tripped) {
        note_line(L, ld);
        raise_tripped(L, ld);
    }
}

/* ---- library functions under the budget ----------------------------------------------------
 * Every C function offered to rule files is wrapped: the wrapper charges an estimate of the
 * work to the budget before the original runs (in the wrapper's own frame, so argument
 * errors still name the function and the rule file's line). string.rep is replaced by a
 * version that copies by doubling; table.sort without a comparator gets one that charges
 * the length of the strings it compares. */

enum { W_ARGS, W_SCAN, W_RANGE2, W_RANGE3, W_MOVE, W_INSERT, W_REMOVE, W_SORT };

static const struct {
    const char *lib, *name;
    int kind;
} wrap_kinds[] = {
    {"_G", "tonumber", W_SCAN},      {"string", "byte", W_SCAN},
    {"string", "format", W_SCAN},    {"string", "lower", W_SCAN},
    {"string", "upper", W_SCAN},     {"string", "reverse", W_SCAN},
    {"string", "sub", W_SCAN},       {"string", "pack", W_SCAN},
    {"string", "unpack", W_SCAN},    {"string", "packsize", W_SCAN},
    {"utf8", "len", W_SCAN},         {"utf8", "codepoint", W_SCAN},
    {"utf8", "offset", W_SCAN},      {"utf8", "codes", W_SCAN},
    {"table", "unpack", W_RANGE2},   {"table", "concat", W_RANGE3},
    {"table", "move", W_MOVE},       {"table", "insert", W_INSERT},
    {"table", "remove", W_REMOVE},    {"table", "sort", W_SORT},
    {NULL, NULL, 0}};

/* Elements from i to j (arguments at ai and aj; j defaults to #t of argument 1). */
static int64_t range_units(lua_State *L, int ai, int aj) {
    int ok = 1;
    lua_Integer i = lua_isnoneornil(L, ai) ? 1 : lua_tointegerx(L, ai, &ok);
    if (!ok)
        return 1;
    lua_Integer j;
    if (lua_isnoneornil(L, aj))
        j = lua_type(L, 1) == LUA_TTABLE ? (lua_Integer)lua_rawlen(L, 1) : 0;
    else if (!(j = lua_tointegerx(L, aj, &ok), ok))
        return 1;
    if (j < i)
        return 1;
    lua_Unsigned n = (lua_Unsigned)j - (lua_Unsigned)i;
    return n >= (lua_Unsigned)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)n * 2 + 1;
}

/* Zero bytes in s[0..len), counting stops past `max`. */
static int64_t zero_bytes(const char *s, size_t len, int64_t max) {
    int64_t n = 0;
    for (const char *p = s, *end = s + len; n <= max && (p = memchr(p, '\0', (size_t)(end - p)));
         p++)
        n++;
    return n;
}

/* The comparator of table.sort without one: `<`, charged by its real cost. Lua compares
 * strings one zero-separated segment at a time (a strcoll call each), so a comparison
 * costs its length and, far more, the zero bytes of the shorter string. The CPU clock is
 * read at least every 16 comparisons whatever they cost. */
static int sort_less(lua_State *L) {
    loader *ld = get_loader(L);
    if (ld->tripped)
        raise_tripped(L, ld);
    int64_t units = 0;
    if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING) {
        size_t la, lb;
        const char *a = lua_tolstring(L, 1, &la), *b = lua_tolstring(L, 2, &lb);
        if (la + lb >= 256)
            charge(L, ld, (int64_t)((la + lb) / 64));
        int64_t left = ld->budget - ld->spent;
        units = la <= lb ? zero_bytes(a, la, left) : zero_bytes(b, lb, left);
    }
    if (units > 0 || (++ld->compares & 15) == 0)
        charge(L, ld, units);
    lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
    return 1;
}

static int guarded(lua_State *L) {
    loader *ld = get_loader(L);
    int n = lua_gettop(L);
    int64_t units = 1 + n;
    switch ((int)lua_tointeger(L, lua_upvalueindex(2))) {
    case W_SCAN:
        for (int i = 1; i <= n; i++)
            if (lua_type(L, i) == LUA_TSTRING)
                units += (int64_t)(lua_rawlen(L, i) / 4);
        break;
    case W_RANGE2:
        units += range_units(L, 2, 3);
        break;
    case W_RANGE3:
        units += range_units(L, 3, 4);
        break;
    case W_MOVE:
        units += range_units(L, 2, 3);
        break;
    case W_INSERT: /* table.insert(t, pos, v) moves t[pos..#t] up */
    case W_REMOVE: /* table.remove(t, pos) moves t[pos+1..#t] down */
        if (n >= (lua_tointeger(L, lua_upvalueindex(2)) == W_INSERT ? 3 : 2) &&
            lua_type(L, 1) == LUA_TTABLE && lua_isinteger(L, 2)) {
            lua_Integer len = (lua_Integer)lua_rawlen(L, 1), pos = lua_tointeger(L, 2);
            if (pos >= 1 && pos <= len)
                units += 2 * (int64_t)(len - pos + 1);
        }
        break;
    case W_SORT:
        if (lua_type(L, 1) == LUA_TTABLE) {
            int64_t len = (int64_t)lua_rawlen(L, 1), lg = 1;
            for (int64_t m = len; m > 1; m >>= 1)
                lg++;
            units += 4 * len * lg;
            if (lua_isnoneornil(L, 2)) {
                lua_settop(L, 1);
                lua_pushcfunction(L, sort_less);
            }
        }
        break;
    default:
        break;
    }
    if (ld->running)
        charge(L, ld, units);
    lua_CFunction f = lua_tocfunction(L, lua_upvalueindex(1));
    return f(L);
}

/* string.rep, charged by count and size, copying by doubling (the original copies the
 * string once per repetition, and loops 1e15 times over an empty one). */
static int safe_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    loader *ld = get_loader(L);
    if (n <= 0) {
        lua_pushliteral(L, "");
        return 1;
    }
    size_t unit = l + lsep;
    if (unit < l || (unit > 0 && (lua_Unsigned)n > (SIZE_MAX / 2) / unit))
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * unit - lsep;
    if (total > ld->mem_cap) {
        ld->code = "memory_cap";
        return luaL_error(L, "string.rep would build %I bytes, more than the memory cap of %I "
                             "bytes", (LUAI_UACINT)total, (LUAI_UACINT)ld->mem_cap);
    }
    if (ld->running)
        charge(L, ld, 1 + n / 64 + (int64_t)(total / 64));
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    if (total > 0) {
        memcpy(p, s, l);
        size_t filled = l;
        if (n > 1) {
            memcpy(p + l, sep, lsep);
            filled = unit;
        }
        while (filled < total) {
            size_t k = filled < total - filled ? filled : total - filled;
            memcpy(p + filled, p, k);
            filled += k;
        }
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* Wraps every C function of table `t` (at the top of the stack) named in lib. */
static void wrap_lib(lua_State *L, const char *lib) {
    int t = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_iscfunction(L, -1) &&
            lua_tocfunction(L, -1) != NULL) {
            const char *name = lua_tostring(L, -2);
            int kind = strcmp(lib, "_G") == 0 || strcmp(lib, "math") == 0 ? W_ARGS : W_SCAN;
            for (int i = 0; wrap_kinds[i].lib; i++)
                if (strcmp(wrap_kinds[i].lib, lib) == 0 && strcmp(wrap_kinds[i].name, name) == 0)
                    kind = wrap_kinds[i].kind;
            if (strcmp(lib, "string") == 0 && strcmp(name, "rep") == 0)
                lua_pushcfunction(L, safe_rep);
            else {
                lua_pushvalue(L, -1);
                lua_pushinteger(L, kind);
                lua_pushcclosure(L, guarded, 2);
            }
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, t); /* replacing the value of an existing key: next() stays valid */
        }
        lua_pop(L, 1);
    }
}

static int raise_at_caller(lua_State *L, const char *code, const char *fmt, const char *a,
                           const char *b) {
    get_loader(L)->code = code;
    return luaL_error(L, fmt, a, b);
}

/* The global name at idx for a message (escaped: it may hold a zero byte). */
static const char *global_name(lua_State *L, int idx, char *buf, size_t n) {
    size_t len;
    const char *k = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
    return k ? tg__show_bytes(k, len, buf, n) : "?";
}

static int env_index(lua_State *L) {
    char shown[TG__SHOW_BYTES];
    return raise_at_caller(L, "unknown_global",
                           "unknown global '%s'%s: the rule language has no such name",
                           global_name(L, 2, shown, sizeof shown), "");
}

static int env_newindex(lua_State *L) {
    char shown[TG__SHOW_BYTES];
    return raise_at_caller(L, "unknown_global",
                           "assignment to global '%s'%s: declare helpers with 'local'",
                           global_name(L, 2, shown, sizeof shown), "");
}

/* Appends {kind=, name=, body=, file=, line=} to the declaration list (upvalue 1 of the
 * constructor). `line` is the line of the call in the rule file. */
static void record_decl(lua_State *L, int decls, const char *kind, int name_idx, int body_idx,
                        int line) {
    loader *ld = get_loader(L);
    if (++ld->n_decls > TG__MAX_DECLARATIONS) {
        ld->code = "limit_exceeded";
        luaL_error(L, "more than %d declarations in the rule files (limit %d)",
                   TG__MAX_DECLARATIONS, TG__MAX_DECLARATIONS);
    }
    lua_createtable(L, 0, 5);
    lua_pushstring(L, kind);
    lua_setfield(L, -2, "kind");
    if (name_idx) {
        lua_pushvalue(L, name_idx);
        lua_setfield(L, -2, "name");
    }
    lua_pushvalue(L, body_idx);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, get_loader(L)->file);
    lua_setfield(L, -2, "file");
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    lua_rawseti(L, decls, (lua_Integer)lua_rawlen(L, decls) + 1);
}

static int caller_line(lua_State *L) {
    lua_Debug ar;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "l", &ar))
        return ar.currentline;
    return 0;
}

/* Second half of `kind "Name" { body }`: upvalues decls, kind, name, line. */
static int named_body(lua_State *L) {
    const char *kind = lua_tostring(L, lua_upvalueindex(2));
    const char *name = lua_tostring(L, lua_upvalueindex(3));
    if (lua_type(L, 1) != LUA_TTABLE)
        return raise_at_caller(L, "bad_declaration", "%s \"%s\" must be followed by a { ... } table",
                               kind, name);
    record_decl(L, lua_upvalueindex(1), kind, lua_upvalueindex(3), 1,
                (int)lua_tointeger(L, lua_upvalueindex(4)));
    return 0;
}

/* `kind "Name"`: returns the function that takes the body. Upvalues decls, kind. */
static int named_decl(lua_State *L) {
    const char *kind = lua_tostring(L, lua_upvalueindex(2));
    if (lua_type(L, 1) != LUA_TSTRING || lua_rawlen(L, 1) == 0)
        return raise_at_caller(L, "bad_declaration",
                               "%s needs a name first: %s \"Name\" { ... }", kind, kind);
    size_t len;
    const char *name = lua_tolstring(L, 1, &len);
    if (strlen(name) != len) {
        char shown[TG__SHOW_BYTES];
        return raise_at_caller(L, "bad_declaration", "%s name '%s' contains a zero byte", kind,
                               tg__show_bytes(name, len, shown, sizeof shown));
    }
    if (len > TG__MAX_NAME_BYTES) {
        get_loader(L)->code = "limit_exceeded";
        return luaL_error(L, "%s name is %I bytes long (limit %d bytes)", kind,
                          (LUAI_UACINT)len, TG__MAX_NAME_BYTES);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_pushinteger(L, caller_line(L));
    lua_pushcclosure(L, named_body, 4);
    return 1;
}

/* `kind { body }` for unnamed kinds. Upvalues decls, kind. */
static int plain_decl(lua_State *L) {
    const char *kind = lua_tostring(L, lua_upvalueindex(2));
    if (lua_type(L, 1) != LUA_TTABLE)
        return raise_at_caller(L, "bad_declaration", "%s takes a table: %s { ... }", kind, kind);
    record_decl(L, lua_upvalueindex(1), kind, 0, 1, caller_line(L));
    return 0;
}

static const char *const named_kinds[] = {"family", "role", "exception", "residual", NULL};
static const char *const plain_kinds[] = {"app", "capabilities", "scenario", NULL};
static const char *const safe_globals[] = {"assert", "error",  "ipairs",   "next",  "pairs",
                                           "select", "tonumber", "tostring", "type", NULL};
static const char *const safe_libs[] = {"string", "table", "math", "utf8", NULL};

/* Builds a fresh environment for one file. Stack: decls at index `decls`. */
static void push_env(lua_State *L, int decls) {
    lua_newtable(L);
    lua_pushglobaltable(L);
    for (int i = 0; safe_globals[i]; i++) {
        lua_getfield(L, -1, safe_globals[i]);
        lua_setfield(L, -3, safe_globals[i]);
    }
    for (int i = 0; safe_libs[i]; i++) {
        /* a shallow copy per file, so one file cannot patch a library for the next */
        lua_newtable(L);
        lua_getfield(L, -2, safe_libs[i]);
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -5);
        }
        lua_pop(L, 1);
        lua_setfield(L, -3, safe_libs[i]);
    }
    lua_pop(L, 1); /* globals */
    for (int i = 0; named_kinds[i]; i++) {
        lua_pushvalue(L, decls);
        lua_pushstring(L, named_kinds[i]);
        lua_pushcclosure(L, named_decl, 2);
        lua_setfield(L, -2, named_kinds[i]);
    }
    for (int i = 0; plain_kinds[i]; i++) {
        lua_pushvalue(L, decls);
        lua_pushstring(L, plain_kinds[i]);
        lua_pushcclosure(L, plain_decl, 2);
        lua_setfield(L, -2, plain_kinds[i]);
    }
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, env_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, env_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.lua files of dir, sorted; or dir itself when it is a file. *out is malloc'd, each
 * name too. Returns the count, or -1 with errno set. */
static int list_rule_files(const char *dir, char ***out, int *is_file, int *too_many) {
    struct stat st;
    *out = NULL;
    *is_file = 0;
    *too_many = 0;
    if (stat(dir, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode)) {
        *is_file = 1;
        *out = malloc(sizeof(char *));
        if (!*out || !((*out)[0] = strdup(dir))) {
            free(*out);
            *out = NULL;
            errno = ENOMEM;
            return -1;
        }
        return 1;
    }
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 4, ".lua") != 0)
            continue;
        char full[4096];
        struct stat fst;
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full) {
            errno = ENAMETOOLONG;
            goto fail;
        }
        if (stat(full, &fst) != 0 || !S_ISREG(fst.st_mode))
            continue; /* a directory named x.lua, a dangling link: not a rule file */
        if (n == TG__MAX_RULE_FILES) {
            *too_many = 1;
            goto fail;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(names, (size_t)cap * sizeof *nn);
            if (!nn)
                goto oom;
            names = nn;
        }
        if (!(names[n] = strdup(e->d_name)))
            goto oom;
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, (size_t)n, sizeof *names, cmp_names);
    *out = names;
    return n;
oom:
    errno = ENOMEM;
fail:;
    int saved = errno;
    closedir(d);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    errno = saved;
    return -1;
}

/* Reads a whole file into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len, int *too_big) {
    *too_big = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    if (fseek(fp, 0, SEEK_END) != 0)
        goto done;
    long size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0)
        goto done;
    if ((unsigned long)size > TG__MAX_RULE_FILE_BYTES) {
        *too_big = 1;
        goto done;
    }
    buf = malloc((size_t)size + 1);
    if (buf && fread(buf, 1, (size_t)size, fp) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    if (buf) {
        buf[size] = '\0';
        *len = (size_t)size;
    }
done:
    fclose(fp);
    return buf;
}

/* Splits "<chunk>:line: message" into line and message. Lua shortens long chunk names
 * ("...tail/x.lua"), so the position is found as the first ".lua:<digits>:" rather than by
 * matching the file name. A message without a position (error("x", 0), a message raised
 * inside a library function) gets `fallback_line`, the last line the file was seen running. */
static void add_lua_error(tg_findings *f, const char *code, const char *file, const char *msg,
                          int fallback_line) {
    int line = 0;
    const char *text = msg;
    for (const char *p = strstr(msg, ".lua:"); p; p = strstr(p + 1, ".lua:")) {
        char *end;
        long l = strtol(p + 5, &end, 10);
        if (end != p + 5 && *end == ':' && l > 0 && l <= INT32_MAX) {
            line = (int)l;
            text = end + 1;
            while (*text == ' ')
                text++;
            break;
        }
    }
    tg__findings_add(f, TG_LEVEL_ERROR, code, file, line ? line : fallback_line, "%s", text);
}

/* Message handler of the rule file's pcall: runs where the error was raised, before the
 * stack unwinds, and remembers the line of the innermost function of the rule file. */
static int on_error(lua_State *L) {
    note_line(L, get_loader(L));
    lua_settop(L, 1);
    return 1;
}

/* The finding for a rule file that failed with status rc (error value on the stack top). */
static void report_failure(lua_State *L, loader *ld, tg_findings *f, const char *p, int rc) {
    const char *code = ld->tripped ? ld->tripped : ld->code ? ld->code : "script_error";
    if (rc == LUA_ERRMEM || ld->tripped) {
        if (!ld->tripped)
            code = "memory_cap";
        if (strcmp(code, "instruction_budget") == 0)
            tg__findings_add(f, TG_LEVEL_ERROR, code, p, ld->line,
                             "rule file exceeded the instruction budget of %lld instructions "
                             "(work inside library functions counts too)",
                             (long long)ld->budget);
        else if (strcmp(code, "cpu_budget") == 0)
            tg__findings_add(f, TG_LEVEL_ERROR, code, p, ld->line,
                             "loading the rule files exceeded the CPU budget of %lld ms",
                             (long long)(ld->cpu_limit_ns / 1000000));
        else if (strcmp(code, "allocation_budget") == 0)
            tg__findings_add(f, TG_LEVEL_ERROR, code, p, ld->line,
                             "the rule files allocated more than %zu bytes in total (the "
                             "allocation budget: %d times the memory cap)",
                             ld->churn_cap, CHURN_FACTOR);
        else
            tg__findings_add(f, TG_LEVEL_ERROR, "memory_cap", p, ld->line,
                             "rule file exceeded the memory cap of %zu bytes", ld->mem_cap);
        return;
    }
    char text[160];
    const char *msg;
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        msg = lua_tostring(L, -1);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
            snprintf(text, sizeof text, "error raised with the number %lld",
                     (long long)lua_tointeger(L, -1));
        else
            snprintf(text, sizeof text, "error raised with the number %.17g",
                     (double)lua_tonumber(L, -1));
        msg = text;
        break;
    default:
        snprintf(text, sizeof text, "error raised with a %s value instead of a message",
                 luaL_typename(L, -1));
        msg = text;
        break;
    }
    if (rc == LUA_ERRERR)
        msg = "error while handling an error (a C stack overflow?)";
    add_lua_error(f, code, p, msg, ld->line);
}

typedef struct load_job {
    const tg_open_options *opts;
    tg__ruleset *rs;
    tg_findings *f;
    loader *ld;
    char **files;
    int n_files;
    int is_file;
    const char *dir;
    uint64_t hash;
    int status;
} load_job;

/* Runs the files; on the Lua stack: decls. Stops at the first file that fails, since the
 * declarations after it would be judged without the ones it did not make. */
static int run_files(lua_State *L, load_job *job) {
    int decls = lua_gettop(L);
    tg__buf path = {0};
    int ok = 1;
    for (int i = 0; i < job->n_files && ok; i++) {
        tg__buf_reset(&path);
        if (job->is_file)
            tg__buf_add(&path, job->files[i]);
        else
            tg__buf_printf(&path, "%s/%s", job->dir, job->files[i]);
        const char *p = tg__buf_str(&path);
        size_t len = 0;
        int too_big;
        char *src = read_file(p, &len, &too_big);
        if (!src) {
            tg__findings_add(job->f, TG_LEVEL_ERROR, "file_error", p, 0, "%s",
                             too_big ? "rule file larger than 4 MiB" : strerror(errno));
            ok = 0;
            break;
        }
        const char *base = job->is_file ? p : job->files[i];
        job->hash = tg__fnv1a(job->hash, base, strlen(base) + 1);
        job->hash = tg__fnv1a(job->hash, src, len);

        tg__buf chunk = {0};
        tg__buf_printf(&chunk, "@%s", p);
        loader *ld = job->ld;
        ld->file = p;
        ld->code = NULL;
        ld->line = 0;
        lua_pushcfunction(L, on_error);
        int msgh = lua_gettop(L);
        int rc = chunk.oom ? LUA_ERRMEM
                           : luaL_loadbufferx(L, src, len, tg__buf_str(&chunk), "t");
        free(src);
        tg__buf_free(&chunk);
        if (rc == LUA_OK) {
            push_env(L, decls);
            lua_setupvalue(L, -2, 1);
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, ld->hook_every);
            ld->running = 1;
            rc = lua_pcall(L, 0, 0, msgh);
            ld->running = 0;
            lua_sethook(L, NULL, 0, 0);
        }
        if (rc != LUA_OK) {
            report_failure(L, ld, job->f, p, rc);
            ok = 0;
        }
        lua_settop(L, decls);
    }
    job->ld->file = NULL;
    tg__buf_free(&path);
    return ok;
}

/* Under lua_pcall: runs the scripts, then compiles the declarations. */
static int load_protected(lua_State *L) {
    load_job *job = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_newtable(L); /* decls */
    if (!run_files(L, job)) {
        job->status = TG_RULES;
        return 0;
    }
    /* the compiled rules live under the same cap as the scripts that declared them */
    job->rs->arena.limit = job->rs->arena.total + job->ld->mem_cap;
    job->status = tg__compile(L, 1, job->rs, job->f);
    job->rs->arena.limit = 0;
    return 0;
}

static void open_safe_libs(lua_State *L) {
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {NULL, NULL}};
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        wrap_lib(L, lib->name);
        lua_pop(L, 1);
    }
    /* String methods reach the real string table through the string metatable, so the
     * functions a rule file must not have are removed from it: dump (bytecode), and the
     * pattern matchers, whose backtracking runs in C where the instruction budget cannot
     * stop it ("a*a*a*b" against a few hundred characters takes seconds). */
    static const char *const removed[] = {"dump", "find", "match", "gmatch", "gsub", NULL};
    lua_getglobal(L, LUA_STRLIBNAME);
    for (int i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, removed[i]);
    }
    lua_pop(L, 1);
}

int tg__rules_load(const tg_open_options *opts, tg__db *db, tg_findings *f, tg__ruleset **out) {
    *out = NULL;
    const char *dir = opts && opts->rules ? opts->rules : "";
    if (!*dir) {
        tg__findings_add(f, TG_LEVEL_ERROR, "file_error", NULL, 0, "no rule directory given");
        return TG_MISUSE;
    }
    loader ld = {0};
    ld.mem_cap = opts->memory_cap ? opts->memory_cap : DEFAULT_MEMORY_CAP;
    ld.budget = opts->instruction_budget ? opts->instruction_budget : DEFAULT_BUDGET;
    /* a cap of -1 from a binding arrives as SIZE_MAX: never "no cap" */
    if (ld.mem_cap < MIN_MEMORY_CAP || ld.mem_cap > MAX_MEMORY_CAP) {
        tg__findings_add(f, TG_LEVEL_ERROR, "bad_option", NULL, 0,
                         "memory_cap is %lld bytes; it must be between %zu (1 MiB) and %zu "
                         "(1 GiB), or 0 for the default of 64 MiB",
                         (long long)(int64_t)opts->memory_cap, MIN_MEMORY_CAP, MAX_MEMORY_CAP);
        return TG_RULES;
    }
    if (ld.budget < 0 || ld.budget > MAX_BUDGET) {
        tg__findings_add(f, TG_LEVEL_ERROR, "bad_option", NULL, 0,
                         "instruction_budget is %lld; it must be between 1 and %d, or 0 for "
                         "the default of %d",
                         (long long)opts->instruction_budget, MAX_BUDGET, DEFAULT_BUDGET);
        return TG_RULES;
    }
    ld.churn_cap = ld.mem_cap * CHURN_FACTOR;
    ld.hook_every = HOOK_EVERY;
    /* 1 s of CPU at the default budget; more when the caller raised the budget */
    ld.cpu_limit_ns = ld.budget > DEFAULT_BUDGET
                          ? (int64_t)((double)CPU_NS_DEFAULT * ld.budget / DEFAULT_BUDGET)
                          : CPU_NS_DEFAULT;
    ld.cpu_start_ns = now_ns(CLOCK_THREAD_CPUTIME_ID);

    load_job job = {0};
    job.opts = opts;
    job.f = f;
    job.ld = &ld;
    job.hash = TG__FNV_INIT;
    job.status = TG_ERROR;

    /* a directory name without trailing slashes, as the user wrote it */
    char *d = strdup(dir);
    if (!d)
        return TG_NOMEM;
    for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--)
        d[n - 1] = '\0';
    job.dir = d;

    int status;
    lua_State *L = NULL;
    int too_many;
    job.n_files = list_rule_files(d, &job.files, &job.is_file, &too_many);
    if (job.n_files < 0 && too_many) {
        tg__findings_add(f, TG_LEVEL_ERROR, "limit_exceeded", d, 0,
                         "more than %d .lua rule files in '%s' (limit %d); none was loaded",
                         TG__MAX_RULE_FILES, d, TG__MAX_RULE_FILES);
        status = TG_RULES;
        goto done;
    }
    if (job.n_files < 0) {
        tg__findings_add(f, TG_LEVEL_ERROR, "file_error", d, 0, "cannot read rules: %s",
                         strerror(errno));
        status = TG_IO;
        goto done;
    }
    if (job.n_files == 0) {
        tg__findings_add(f, TG_LEVEL_ERROR, "no_rules", d, 0, "no .lua rule files in '%s'", d);
        status = TG_RULES;
        goto done;
    }
    job.rs = calloc(1, sizeof *job.rs);
    L = lua_newstate(capped_alloc, &ld);
    if (!job.rs || !L) {
        status = TG_NOMEM;
        goto done;
    }
    ld.L = L;
    job.rs->refs = 1;
    job.rs->pub.dir = tg__arena_strdup(&job.rs->arena, d);
    open_safe_libs(L);

    lua_pushcfunction(L, load_protected);
    lua_pushlightuserdata(L, &job);
    int rc = lua_pcall(L, 1, 0, 0);
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        tg__findings_add(f, TG_LEVEL_ERROR, rc == LUA_ERRMEM ? "memory_cap" : "script_error", d,
                         0, "while compiling the rules: %s",
                         rc == LUA_ERRMEM ? "the memory cap was reached"
                         : msg            ? msg
                                          : "?");
        status = TG_RULES;
        goto done;
    }
    status = job.status;
    if (status == TG_OK) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)job.hash);
        job.rs->pub.version = tg__arena_strdup(&job.rs->arena, hex);
        job.rs->pub.n_files = (size_t)job.n_files;
        if (db)
            tg__rules_check_db(job.rs, db, f);
        if (tg_findings_errors(f) > 0)
            status = TG_RULES;
    }
    if (status == TG_OK && tg_findings_errors(f) == 0) {
        *out = job.rs;
        job.rs = NULL;
    } else if (status == TG_OK) {
        status = TG_RULES;
    }
done:
    if (L)
        lua_close(L);
    if (job.rs)
        tg__ruleset_release(job.rs);
    for (int i = 0; i < job.n_files; i++)
        free(job.files[i]);
    free(job.files);
    free(d);
    return status;
}

tg__ruleset *tg__ruleset_retain(tg__ruleset *rs) {
    if (rs)
        rs->refs++;
    return rs;
}

void tg__ruleset_release(tg__ruleset *rs) {
    if (!rs || --rs->refs > 0)
        return;
    tg__arena_free(&rs->arena);
    free(rs);
}
