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

#define MAX_RULE_FILE (4u << 20)
#define MAX_RULE_FILES 1000

typedef struct loader {
    size_t mem_used, mem_cap;
    int64_t budget, spent;
    const char *code; /* check code of the error being raised by the sandbox itself */
    const char *file; /* the file being run */
} loader;

static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    loader *ld = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        ld->mem_used -= old;
        return NULL;
    }
    if (nsize > old && ld->mem_used - old + nsize > ld->mem_cap)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p)
        ld->mem_used = ld->mem_used - old + nsize;
    return p;
}

static loader *get_loader(lua_State *L) {
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

/* Count hook: once the budget is spent, every further hook call raises again. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
    loader *ld = get_loader(L);
    ld->spent += 1000;
    if (ld->spent <= ld->budget)
        return;
    ld->code = "instruction_budget";
    lua_getinfo(L, "Sl", ar);
    luaL_error(L, "%s:%d: rule file exceeded the instruction budget of %I instructions",
               ar->short_src, ar->currentline, (LUAI_UACINT)ld->budget);
}

static int raise_at_caller(lua_State *L, const char *code, const char *fmt, const char *a,
                           const char *b) {
    get_loader(L)->code = code;
    return luaL_error(L, fmt, a, b);
}

static int env_index(lua_State *L) {
    const char *k = lua_tostring(L, 2);
    return raise_at_caller(L, "unknown_global",
                           "unknown global '%s'%s: the rule language has no such name", k ? k : "?",
                           "");
}

static int env_newindex(lua_State *L) {
    const char *k = lua_tostring(L, 2);
    return raise_at_caller(L, "unknown_global",
                           "assignment to global '%s'%s: declare helpers with 'local'",
                           k ? k : "?", "");
}

/* Appends {kind=, name=, body=, file=, line=} to the declaration list (upvalue 1 of the
 * constructor). `line` is the line of the call in the rule file. */
static void record_decl(lua_State *L, int decls, const char *kind, int name_idx, int body_idx,
                        int line) {
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
static int list_rule_files(const char *dir, char ***out, int *is_file) {
    struct stat st;
    *out = NULL;
    *is_file = 0;
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
        if ((size_t)snprintf(full, sizeof full, "%s/%s", dir, e->d_name) >= sizeof full ||
            stat(full, &fst) != 0 || !S_ISREG(fst.st_mode))
            continue; /* a directory named x.lua, a dangling link: not a rule file */
        if (n == MAX_RULE_FILES)
            break;
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
    closedir(d);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    errno = ENOMEM;
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
    if ((unsigned long)size > MAX_RULE_FILE) {
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
 * matching the file name. */
static void add_lua_error(tg_findings *f, const char *code, const char *file, const char *msg) {
    int line = 0;
    const char *text = msg;
    for (const char *p = strstr(msg, ".lua:"); p; p = strstr(p + 1, ".lua:")) {
        char *end;
        long l = strtol(p + 5, &end, 10);
        if (end != p + 5 && *end == ':' && l > 0) {
            line = (int)l;
            text = end + 1;
            while (*text == ' ')
                text++;
            break;
        }
    }
    tg__findings_add(f, TG_LEVEL_ERROR, code, file, line, "%s", text);
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
        job->ld->file = p;
        job->ld->code = NULL;
        int rc = luaL_loadbufferx(L, src, len, tg__buf_str(&chunk), "t");
        free(src);
        tg__buf_free(&chunk);
        if (rc == LUA_OK) {
            push_env(L, decls);
            lua_setupvalue(L, -2, 1);
            lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1000);
            rc = lua_pcall(L, 0, 0, 0);
            lua_sethook(L, NULL, 0, 0);
        }
        if (rc != LUA_OK) {
            const char *code = job->ld->code ? job->ld->code : "script_error";
            if (rc == LUA_ERRMEM) {
                tg__findings_add(job->f, TG_LEVEL_ERROR, "memory_cap", p, 0,
                                 "rule file exceeded the memory cap of %zu bytes",
                                 job->ld->mem_cap);
            } else {
                const char *msg = lua_tostring(L, -1);
                add_lua_error(job->f, code, p, msg ? msg : "error object is not a string");
            }
            lua_pop(L, 1);
            ok = 0;
        }
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
    job->status = tg__compile(L, 1, job->rs, job->f);
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

int tg__rules_load(const tg_open_options *opts, sqlite3 *db, tg_findings *f, tg__ruleset **out) {
    *out = NULL;
    const char *dir = opts && opts->rules ? opts->rules : "";
    if (!*dir) {
        tg__findings_add(f, TG_LEVEL_ERROR, "file_error", NULL, 0, "no rule directory given");
        return TG_MISUSE;
    }
    loader ld = {0};
    ld.mem_cap = opts->memory_cap ? opts->memory_cap : (size_t)64 << 20;
    ld.budget = opts->instruction_budget > 0 ? opts->instruction_budget : 20000000;

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
    job.n_files = list_rule_files(d, &job.files, &job.is_file);
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
                         rc == LUA_ERRMEM ? "out of memory" : msg ? msg : "?");
        status = rc == LUA_ERRMEM ? TG_NOMEM : TG_RULES;
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
