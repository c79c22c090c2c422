/* The rule compiler: turns the tables the rule scripts declared into the immutable C rule
 * model, checking every field on the way. It never stops at the first problem: each one
 * becomes a finding with a stable code and the file:line of the declaration, so an editor
 * sees all of them at once. */
#include "compile.h"
#include "names.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct claim {
    const char *table;
    const char *owner;
} claim;

typedef struct comp {
    lua_State *L;
    tg__ruleset *rs;
    tg__arena *A;
    tg_findings *f;
    const char *file;
    int line;
    char what[192];
    int oom;
    claim *claims;
    size_t n_claims, cap_claims;
    tg_where *cap_where; /* where each capability was declared */
    /* names -> index, so every duplicate check and reference is one lookup */
    tg__strmap caps, roles, fams, excs, ress, tables;
} comp;

/* ---- reporting ---- */

static void report(comp *c, tg_level level, const char *code, const char *fmt, va_list ap) {
    char msg[768];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (c->what[0])
        tg__findings_add(c->f, level, code, c->file, c->line, "%s: %s", c->what, msg);
    else
        tg__findings_add(c->f, level, code, c->file, c->line, "%s", msg);
}

static void err(comp *c, const char *code, const char *fmt, ...) TG_PRINTF(3, 4);
static void err(comp *c, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(c, TG_LEVEL_ERROR, code, fmt, ap);
    va_end(ap);
}

static void warn(comp *c, const char *code, const char *fmt, ...) TG_PRINTF(3, 4);
static void warn(comp *c, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report(c, TG_LEVEL_WARNING, code, fmt, ap);
    va_end(ap);
}

static void set_what(comp *c, const char *fmt, ...) TG_PRINTF(2, 3);
static void set_what(comp *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->what, sizeof c->what, fmt, ap);
    va_end(ap);
}

/* " (did you mean 'x'?)" for the closest name within two edits, else "". The number of
 * comparisons is budgeted per compile, so many unknown names among many declared ones stay
 * linear. */
static _Thread_local long suggest_left = 0;
static const char *suggest(const char *s, const char *const *names, char *buf, size_t n) {
    int best = 3;
    const char *pick = NULL;
    for (int i = 0; s && names && names[i] && suggest_left > 0; i++, suggest_left--) {
        int d = tg__edit_distance(s, names[i]);
        if (d < best) {
            best = d;
            pick = names[i];
        }
    }
    if (!pick)
        return "";
    snprintf(buf, n, " (did you mean '%s'?)", pick);
    return buf;
}

static void join_names(const char *const *names, char *buf, size_t n) {
    buf[0] = '\0';
    for (int i = 0; names[i]; i++) {
        if (i)
            strncat(buf, ", ", n - strlen(buf) - 1);
        strncat(buf, names[i], n - strlen(buf) - 1);
    }
}

static char *dup(comp *c, const char *s) {
    char *p = tg__arena_strdup(c->A, s);
    if (s && !p)
        c->oom = 1;
    return p;
}

static void *alloc(comp *c, size_t n) {
    void *p = tg__arena_alloc(c->A, n ? n : 1);
    if (!p)
        c->oom = 1;
    return p;
}

static const char *type_name(comp *c, int idx) { return luaL_typename(c->L, idx); }

/* ---- generic field access: table at absolute index t ---- */

/* Reports the string key at idx if it holds a zero byte, shown whole ('a\0b'): C would read
 * only the part before it, which may be a valid name. Returns 1 if it did. */
static int zero_byte_key(comp *c, int idx, const char *code, const char *what) {
    size_t len;
    const char *k = lua_tolstring(c->L, idx, &len);
    if (strlen(k) == len)
        return 0;
    char shown[TG__SHOW_BYTES];
    err(c, code, "%s '%s' contains a zero byte", what, tg__show_bytes(k, len, shown, sizeof shown));
    return 1;
}

/* Reports every key of t that is not in allowed. */
static void check_keys(comp *c, int t, const char *const *allowed) {
    lua_State *L = c->L;
    char sug[96], all[512];
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
            if (lua_type(L, -1) == LUA_TNUMBER)
                err(c, "wrong_type", "positional value where named fields are expected");
            else
                err(c, "wrong_type", "field names must be strings, got %s", type_name(c, -1));
            continue;
        }
        if (zero_byte_key(c, -1, "unknown_field", "field name"))
            continue;
        const char *k = lua_tostring(L, -1);
        if (tg__name_index(allowed, k) < 0) {
            join_names(allowed, all, sizeof all);
            err(c, "unknown_field", "unknown field '%s'%s; fields are: %s", k,
                suggest(k, allowed, sug, sizeof sug), all);
        }
    }
}

/* Pushes t[key] and returns its type. Raw: no metamethod of a rule file's table runs. */
static int field(comp *c, int t, const char *key) {
    lua_pushstring(c->L, key);
    return lua_rawget(c->L, t < 0 ? t - 1 : t);
}

/* The string at idx (which must be a string), or NULL after reporting: one with a zero
 * byte inside (with `zcode`; C would read only the part before it) or longer than max. */
static const char *checked_str(comp *c, int idx, const char *what, const char *zcode,
                               size_t max) {
    size_t len;
    const char *s = lua_tolstring(c->L, idx, &len);
    if (strlen(s) != len) {
        char shown[TG__SHOW_BYTES];
        err(c, zcode, "%s contains a zero byte ('%s'); names and texts are plain strings", what,
            tg__show_bytes(s, len, shown, sizeof shown));
        return NULL;
    }
    if (len > max) {
        err(c, "limit_exceeded", "%s is %zu bytes long (limit %zu bytes)", what, len, max);
        return NULL;
    }
    return s;
}

static int get_str_code(comp *c, int t, const char *key, int required, const char **out,
                        const char *zcode) {
    int ty = field(c, t, key);
    int ok = 0;
    if (ty == LUA_TNIL) {
        if (required)
            err(c, "missing_field", "field '%s' is required", key);
    } else if (ty != LUA_TSTRING) {
        err(c, "wrong_type", "field '%s' must be a string, got %s", key, type_name(c, -1));
    } else {
        char what[96];
        snprintf(what, sizeof what, "field '%s'", key);
        const char *v = checked_str(c, -1, what, zcode, TG__MAX_TEXT_BYTES);
        const char *copy = v ? dup(c, v) : NULL;
        if (copy) {
            *out = copy;
            ok = 1;
        }
    }
    lua_pop(c->L, 1);
    return ok;
}

static int get_str(comp *c, int t, const char *key, int required, const char **out) {
    return get_str_code(c, t, key, required, out, "bad_value");
}

/* The number of items of the list at absolute index t, found by counting its entries
 * (lua_rawlen reports any border, 2^40 for keys 1, 2, 4, ..., 2^40). Integer keys must be
 * exactly 1..n; string keys are left to the caller when `others_ok`, else they make it not
 * a list. Past `max` items: limit_exceeded. Returns -1 after reporting. */
static long list_len(comp *c, int t, const char *what, size_t max, int others_ok) {
    lua_State *L = c->L;
    size_t count = 0;
    lua_Integer top = 0;
    int other = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > top)
                top = k;
            if (++count > max) {
                lua_pop(L, 1);
                err(c, "limit_exceeded", "%s has more than %zu items (limit %zu)", what, max,
                    max);
                return -1;
            }
        } else if (!others_ok || lua_type(L, -1) != LUA_TSTRING) {
            other = 1;
        }
    }
    if (other || (lua_Integer)count != top) {
        err(c, "wrong_type", "%s must be a list { \"a\", \"b\" } (items at 1, 2, 3, ... and "
                             "nothing else)", what);
        return -1;
    }
    return (long)count;
}

static int check_ident(comp *c, const char *key, const char *s) {
    if (tg__is_identifier(s))
        return 1;
    err(c, "bad_identifier",
        "field '%s' is '%s', which is not a plain SQL identifier (letters, digits and _; not "
        "starting with a digit or sqlite_; at most 63 bytes)",
        key, s);
    return 0;
}

static int get_ident(comp *c, int t, const char *key, int required, const char **out) {
    const char *s = NULL;
    if (!get_str_code(c, t, key, required, &s, "bad_identifier"))
        return 0;
    if (!check_ident(c, key, s))
        return 0;
    *out = s;
    return 1;
}

static int get_enum(comp *c, int t, const char *key, const char *const *names, int required,
                    int *out) {
    const char *s = NULL;
    if (!get_str(c, t, key, required, &s))
        return 0;
    int i = tg__name_index(names, s);
    if (i < 0) {
        char sug[96], all[512];
        join_names(names, all, sizeof all);
        err(c, "bad_value", "field '%s' is '%s'; allowed: %s%s", key, s, all,
            suggest(s, names, sug, sizeof sug));
        return 0;
    }
    *out = i;
    return 1;
}

/* A string field whose only allowed value is `only` (kept for documentation value). */
static const char *get_fixed(comp *c, int t, const char *key, const char *only) {
    const char *names[] = {only, NULL};
    int i = 0;
    get_enum(c, t, key, names, 0, &i);
    return only;
}

static int get_int(comp *c, int t, const char *key, int64_t *out) {
    int ty = field(c, t, key);
    int ok = 0;
    if (ty == LUA_TNUMBER && lua_isinteger(c->L, -1)) {
        *out = lua_tointeger(c->L, -1);
        ok = 1;
    } else if (ty != LUA_TNIL) {
        err(c, "wrong_type", "field '%s' must be an integer, got %s", key,
            ty == LUA_TNUMBER ? "a fraction" : type_name(c, -1));
    }
    lua_pop(c->L, 1);
    return ok;
}

static int get_bool(comp *c, int t, const char *key, int *out) {
    int ty = field(c, t, key);
    int ok = 0;
    if (ty == LUA_TBOOLEAN) {
        *out = lua_toboolean(c->L, -1);
        ok = 1;
    } else if (ty != LUA_TNIL) {
        err(c, "wrong_type", "field '%s' must be true or false, got %s", key, type_name(c, -1));
    }
    lua_pop(c->L, 1);
    return ok;
}

/* Pushes t[key] when it is a table (returns its absolute index), else reports and returns
 * 0 with nothing pushed. */
static int get_table(comp *c, int t, const char *key, int required) {
    int ty = field(c, t, key);
    if (ty == LUA_TTABLE)
        return lua_gettop(c->L);
    if (ty == LUA_TNIL) {
        if (required)
            err(c, "missing_field", "field '%s' is required", key);
    } else {
        err(c, "wrong_type", "field '%s' must be a table, got %s", key, type_name(c, -1));
    }
    lua_pop(c->L, 1);
    return 0;
}

/* A list of strings at t[key]: returns the count (0 when absent) and an arena array. */
static size_t get_str_list(comp *c, int t, const char *key, int idents, const char ***out) {
    *out = NULL;
    int lt = get_table(c, t, key, 0);
    if (!lt)
        return 0;
    char what[96];
    snprintf(what, sizeof what, "field '%s'", key);
    long len = list_len(c, lt, what, TG__MAX_LIST_ITEMS, 0);
    size_t n = len > 0 ? (size_t)len : 0;
    const char **arr = alloc(c, (n + 1) * sizeof *arr);
    size_t k = 0;
    for (size_t i = 1; arr && i <= n; i++) {
        if (lua_rawgeti(c->L, lt, (lua_Integer)i) != LUA_TSTRING) {
            err(c, "wrong_type", "field '%s' item %zu must be a string, got %s", key, i,
                type_name(c, -1));
        } else {
            const char *s = checked_str(c, -1, what, idents ? "bad_identifier" : "bad_value",
                                        TG__MAX_TEXT_BYTES);
            if (s && (!idents || check_ident(c, key, s)) && (arr[k] = dup(c, s)) != NULL)
                k++;
        }
        lua_pop(c->L, 1);
    }
    lua_pop(c->L, 1);
    *out = arr;
    return k;
}

/* 200, 403, 404 or "hidden_or_disabled_without_side_effect". */
static int get_outcome(comp *c, int t, const char *key, int required, int *out) {
    int ty = field(c, t, key);
    int ok = 0;
    if (ty == LUA_TNIL) {
        if (required)
            err(c, "missing_field", "field '%s' is required", key);
    } else if (ty == LUA_TNUMBER && lua_isinteger(c->L, -1)) {
        lua_Integer v = lua_tointeger(c->L, -1);
        if (v == 200 || v == 403 || v == 404) {
            *out = (int)v;
            ok = 1;
        } else {
            err(c, "bad_value",
                "field '%s' is %lld; allowed: 200, 403, 404, "
                "\"hidden_or_disabled_without_side_effect\"",
                key, (long long)v);
        }
    } else if (ty == LUA_TSTRING && lua_rawlen(c->L, -1) == 38 &&
               strcmp(lua_tostring(c->L, -1), "hidden_or_disabled_without_side_effect") == 0) {
        *out = TG_OUTCOME_HIDDEN;
        ok = 1;
    } else {
        err(c, "bad_value",
            "field '%s' must be 200, 403, 404 or \"hidden_or_disabled_without_side_effect\"", key);
    }
    lua_pop(c->L, 1);
    return ok;
}

/* ---- declarations ---- */

typedef struct decl {
    const char *kind, *name, *file;
    int line;
    int body; /* registry-free: absolute stack index of the body while compiling it */
} decl;

/* Pushes decls[i].body and fills d; the caller pops it. */
static int open_decl(comp *c, int decls, lua_Integer i, decl *d) {
    lua_State *L = c->L;
    lua_rawgeti(L, decls, i);
    int e = lua_gettop(L);
    lua_getfield(L, e, "kind");
    d->kind = lua_tostring(L, -1);
    lua_getfield(L, e, "name");
    d->name = lua_tostring(L, -1);
    lua_getfield(L, e, "file");
    d->file = lua_tostring(L, -1);
    lua_getfield(L, e, "line");
    d->line = (int)lua_tointeger(L, -1);
    lua_pop(L, 4); /* strings stay alive: the entry table (still on the stack) holds them */
    lua_getfield(L, e, "body");
    lua_remove(L, e); /* the entry stays referenced from decls */
    d->body = lua_gettop(L);
    c->file = d->file;
    c->line = d->line;
    return d->body;
}

static int count_kind(comp *c, int decls, const char *kind) {
    int n = 0;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(c->L, decls, i);
        lua_getfield(c->L, -1, "kind");
        if (strcmp(lua_tostring(c->L, -1), kind) == 0)
            n++;
        lua_pop(c->L, 2);
    }
    return n;
}

static int fam_index(comp *c, const char *name) { return tg__strmap_get(&c->fams, name); }

/* Resolves a capability reference, reporting unknown ones; -1 when absent or unknown. */
static int cap_ref(comp *c, const char *key, const char *name) {
    if (!name)
        return -1;
    int i = tg__strmap_get(&c->caps, name);
    if (i < 0) {
        char sug[96];
        err(c, "unknown_capability", "field '%s' names capability '%s', which is not declared%s",
            key, name, suggest(name, c->rs->pub.capabilities, sug, sizeof sug));
    }
    return i;
}

static void add_claim(comp *c, const char *table, const char *owner) {
    if (!table)
        return;
    int prev = tg__strmap_get(&c->tables, table);
    if (prev >= 0) {
        err(c, "table_claimed_twice", "table '%s' is already claimed by %s", table,
            c->claims[prev].owner);
        return;
    }
    if (c->n_claims == c->cap_claims) {
        size_t cap = c->cap_claims ? c->cap_claims * 2 : 32;
        claim *nc = alloc(c, cap * sizeof *nc);
        if (!nc)
            return;
        if (c->n_claims)
            memcpy(nc, c->claims, c->n_claims * sizeof *nc);
        c->claims = nc;
        c->cap_claims = cap;
    }
    c->claims[c->n_claims].table = table;
    c->claims[c->n_claims].owner = dup(c, owner);
    tg__strmap_put(&c->tables, table, (int)c->n_claims);
    c->n_claims++;
}

/* ---- capabilities and roles ---- */

/* Counts what the declarations hold before anything is compiled, and refuses a rule set
 * past any cap with one error at the declaration that crossed it: the rest would be judged
 * against a truncated set, and each cap keeps the compiler's time and memory bounded. */
static int check_counts(comp *c, int decls) {
    static const struct {
        const char *kind, *what;
        size_t max;
    } caps[] = {{"role", "roles", TG__MAX_ROLES},
                {"family", "families", TG__MAX_FAMILIES},
                {"exception", "exception declarations", TG__MAX_EXCEPTIONS},
                {"residual", "residual declarations", TG__MAX_RESIDUALS},
                {NULL, NULL, 0}};
    size_t n[4] = {0, 0, 0, 0}, n_caps = 0, n_scen = 0;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        set_what(c, "%s", d.kind);
        int over = 0;
        for (int k = 0; caps[k].kind; k++)
            if (strcmp(d.kind, caps[k].kind) == 0 && ++n[k] > caps[k].max) {
                err(c, "limit_exceeded", "more than %zu %s (limit %zu)", caps[k].max,
                    caps[k].what, caps[k].max);
                over = 1;
            }
        if (strcmp(d.kind, "capabilities") == 0) {
            c->what[0] = '\0';
            long m = list_len(c, d.body, "capabilities", TG__MAX_CAPABILITIES, 1);
            if (m < 0)
                over = 1;
            else if ((n_caps += (size_t)m) > TG__MAX_CAPABILITIES) {
                err(c, "limit_exceeded", "more than %d capabilities (limit %d)",
                    TG__MAX_CAPABILITIES, TG__MAX_CAPABILITIES);
                over = 1;
            }
        } else if (strcmp(d.kind, "scenario") == 0) {
            n_scen++;
        } else if (strcmp(d.kind, "family") == 0 && field(c, d.body, "scenarios") == LUA_TTABLE) {
            char what[160];
            snprintf(what, sizeof what, "family '%s': field 'scenarios'", d.name);
            c->what[0] = '\0';
            long m = list_len(c, lua_gettop(c->L), what, TG__MAX_SCENARIOS, 0);
            lua_pop(c->L, 1);
            if (m < 0)
                over = 1;
            else
                n_scen += (size_t)m;
        } else if (strcmp(d.kind, "family") == 0) {
            lua_pop(c->L, 1);
        }
        if (!over && n_scen > TG__MAX_SCENARIOS) {
            err(c, "limit_exceeded", "more than %d scenarios in all (limit %d)",
                TG__MAX_SCENARIOS, TG__MAX_SCENARIOS);
            over = 1;
        }
        lua_pop(c->L, 1);
        if (over)
            return 0;
    }
    return 1;
}

static void compile_capabilities(comp *c, int decls) {
    tg_rules *r = &c->rs->pub;
    size_t total = 0;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "capabilities") == 0) {
            c->what[0] = '\0';
            long m = list_len(c, d.body, "capabilities", TG__MAX_CAPABILITIES, 1);
            total += m > 0 ? (size_t)m : 0;
        }
        lua_pop(c->L, 1);
    }
    const char **caps = alloc(c, (total + 1) * sizeof *caps);
    c->cap_where = alloc(c, (total + 1) * sizeof *c->cap_where);
    if (!caps || !c->cap_where || !tg__strmap_init(&c->caps, c->A, total)) {
        c->oom = 1;
        return;
    }
    r->capabilities = caps;
    for (lua_Integer i = 1; i <= len && !c->oom; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "capabilities") != 0) {
            lua_pop(c->L, 1);
            continue;
        }
        set_what(c, "capabilities");
        c->what[0] = '\0';
        long m = list_len(c, d.body, "capabilities", TG__MAX_CAPABILITIES, 1);
        set_what(c, "capabilities");
        size_t n = m > 0 ? (size_t)m : 0;
        lua_pushnil(c->L);
        while (lua_next(c->L, d.body)) {
            lua_pop(c->L, 1);
            if (lua_isinteger(c->L, -1) ||
                (lua_type(c->L, -1) == LUA_TSTRING &&
                 zero_byte_key(c, -1, "unknown_field", "field name")))
                continue;
            err(c, "unknown_field", "capabilities is a list of names; '%s' is not one",
                lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : "(a non-name key)");
        }
        for (size_t k = 1; k <= n && r->n_capabilities < total; k++) {
            if (lua_rawgeti(c->L, d.body, (lua_Integer)k) != LUA_TSTRING ||
                lua_rawlen(c->L, -1) == 0) {
                err(c, "wrong_type", "item %zu must be a capability name string", k);
            } else {
                char what[48];
                snprintf(what, sizeof what, "item %zu", k);
                const char *s = checked_str(c, -1, what, "bad_value", TG__MAX_NAME_BYTES);
                if (!s) {
                    /* reported */
                } else if (tg__strmap_get(&c->caps, s) >= 0) {
                    err(c, "duplicate_name", "capability '%s' is declared twice", s);
                } else if (strcmp(s, "*") == 0) {
                    err(c, "bad_value", "'*' is not a capability name");
                } else {
                    size_t ci = r->n_capabilities;
                    c->cap_where[ci].file = dup(c, d.file);
                    c->cap_where[ci].line = d.line;
                    caps[ci] = dup(c, s);
                    if (!caps[ci])
                        break;
                    tg__strmap_put(&c->caps, caps[ci], (int)ci);
                    r->n_capabilities++;
                }
            }
            lua_pop(c->L, 1);
        }
        lua_pop(c->L, 1);
    }
    c->rs->cap_words = r->n_capabilities / 64 + 1;
}

/* Gives every role the grants of the roles it includes, directly or not, in time linear in
 * roles + includes (Tarjan's strongly connected components: the roles of a cycle grant
 * each other everything; components finish after everything they include). Reports an
 * includes chain deeper than TG__MAX_INCLUDE_DEPTH roles, once. */
static void close_roles(comp *c, int **inc, const int *ninc) {
    tg_rules *r = &c->rs->pub;
    tg_role *roles = (tg_role *)r->roles;
    size_t n = r->n_roles, words = c->rs->cap_words;
    int *idx = alloc(c, n * sizeof *idx), *low = alloc(c, n * sizeof *low);
    int *stk = alloc(c, n * sizeof *stk), *cs_v = alloc(c, n * sizeof *cs_v);
    int *cs_e = alloc(c, n * sizeof *cs_e), *scc = alloc(c, n * sizeof *scc);
    int *depth = alloc(c, n * sizeof *depth);
    char *on = alloc(c, n);
    if (c->oom)
        return;
    int counter = 0, sp = 0, nscc = 0, reported = 0;
    for (size_t i = 0; i < n; i++)
        scc[i] = -1;
    for (size_t root = 0; root < n; root++) {
        if (idx[root])
            continue;
        int csp = 0;
        idx[root] = low[root] = ++counter;
        stk[sp++] = (int)root;
        on[root] = 1;
        cs_v[csp] = (int)root;
        cs_e[csp++] = 0;
        while (csp > 0) {
            int v = cs_v[csp - 1];
            if (cs_e[csp - 1] < ninc[v]) {
                int w = inc[v][cs_e[csp - 1]++];
                if (!idx[w]) {
                    idx[w] = low[w] = ++counter;
                    stk[sp++] = w;
                    on[w] = 1;
                    cs_v[csp] = w;
                    cs_e[csp++] = 0;
                } else if (on[w] && idx[w] < low[v]) {
                    low[v] = idx[w];
                }
                continue;
            }
            csp--;
            if (csp > 0 && low[v] < low[cs_v[csp - 1]])
                low[cs_v[csp - 1]] = low[v];
            if (low[v] != idx[v])
                continue;
            /* v roots a component: stk[first..sp) */
            int id = nscc++, first = sp;
            do {
                first--;
                on[stk[first]] = 0;
                scc[stk[first]] = id;
            } while (stk[first] != v);
            uint64_t *g = (uint64_t *)roles[v].grants;
            int d = 0;
            for (int m = first; m < sp; m++) {
                int x = stk[m];
                for (size_t wd = 0; wd < words; wd++)
                    g[wd] |= roles[x].grants[wd];
                for (int e = 0; e < ninc[x]; e++) {
                    int y = inc[x][e];
                    if (scc[y] == id)
                        continue;
                    for (size_t wd = 0; wd < words; wd++)
                        g[wd] |= roles[y].grants[wd];
                    if (depth[scc[y]] > d)
                        d = depth[scc[y]];
                }
            }
            depth[id] = d + 1;
            for (int m = first; m < sp; m++)
                if (stk[m] != v)
                    memcpy((uint64_t *)roles[stk[m]].grants, g, words * sizeof *g);
            if (depth[id] > TG__MAX_INCLUDE_DEPTH && !reported++) {
                c->file = roles[v].where.file;
                c->line = roles[v].where.line;
                set_what(c, "role '%s'", roles[v].name);
                err(c, "limit_exceeded",
                    "includes roles more than %d levels deep (limit %d roles in a chain)",
                    TG__MAX_INCLUDE_DEPTH, TG__MAX_INCLUDE_DEPTH);
            }
            sp = first;
        }
    }
}

/* Roles: `role "name" { "cap.a", "cap.b", includes = "other" }`. A role grants its listed
 * capabilities ("*" for all) and everything its included roles grant. */
static void compile_roles(comp *c, int decls) {
    tg_rules *r = &c->rs->pub;
    size_t n = (size_t)count_kind(c, decls, "role");
    tg_role *roles = alloc(c, (n + 1) * sizeof *roles);
    int **inc = alloc(c, (n + 1) * sizeof *inc);
    int *ninc = alloc(c, (n + 1) * sizeof *ninc);
    if (c->oom || !tg__strmap_init(&c->roles, c->A, n)) {
        c->oom = 1;
        return;
    }
    r->roles = roles;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    /* names first, so includes may refer forward */
    for (lua_Integer i = 1; i <= len && !c->oom; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "role") == 0 && r->n_roles < n) {
            set_what(c, "role '%s'", d.name);
            int dupi = tg__strmap_get(&c->roles, d.name);
            if (dupi >= 0) {
                err(c, "duplicate_name", "role '%s' is declared twice (first at %s:%d)", d.name,
                    roles[dupi].where.file, roles[dupi].where.line);
            } else {
                tg_role *role = &roles[r->n_roles];
                role->name = dup(c, d.name);
                role->where.file = dup(c, d.file);
                role->where.line = d.line;
                role->grants = alloc(c, c->rs->cap_words * sizeof(uint64_t));
                if (role->name && role->grants) {
                    tg__strmap_put(&c->roles, role->name, (int)r->n_roles);
                    r->n_roles++;
                }
            }
        }
        lua_pop(c->L, 1);
    }
    size_t ri = 0;
    for (lua_Integer i = 1; i <= len && !c->oom; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "role") != 0 || ri >= r->n_roles || strcmp(roles[ri].name, d.name) ||
            roles[ri].where.line != d.line || strcmp(roles[ri].where.file, d.file)) {
            lua_pop(c->L, 1);
            continue;
        }
        tg_role *role = &roles[ri];
        size_t me = ri++;
        set_what(c, "role '%s'", d.name);
        uint64_t *grants = (uint64_t *)role->grants;
        long m = list_len(c, d.body, "the role's list of capabilities", TG__MAX_ROLE_ITEMS, 1);
        size_t len_list = m > 0 ? (size_t)m : 0;
        lua_pushnil(c->L);
        while (m >= 0 && lua_next(c->L, d.body)) {
            lua_pop(c->L, 1);
            if (lua_type(c->L, -1) == LUA_TSTRING && lua_rawlen(c->L, -1) == 8 &&
                strcmp(lua_tostring(c->L, -1), "includes") == 0)
                continue;
            if (lua_isinteger(c->L, -1) ||
                (lua_type(c->L, -1) == LUA_TSTRING &&
                 zero_byte_key(c, -1, "unknown_field", "field name")))
                continue;
            err(c, "unknown_field",
                "'%s' is not a role field: a role is a list of capability names, plus an "
                "optional 'includes' naming other roles",
                lua_type(c->L, -1) == LUA_TSTRING ? lua_tostring(c->L, -1) : "(a non-name key)");
        }
        for (size_t k = 1; k <= len_list; k++) {
            char key[32];
            snprintf(key, sizeof key, "item %zu", k);
            const char *s = NULL;
            if (lua_rawgeti(c->L, d.body, (lua_Integer)k) != LUA_TSTRING) {
                err(c, "wrong_type", "item %zu must be a capability name, got %s", k,
                    type_name(c, -1));
            } else if ((s = checked_str(c, -1, key, "bad_value", TG__MAX_NAME_BYTES)) == NULL) {
                /* reported */
            } else if (strcmp(s, "*") == 0) {
                for (size_t ci = 0; ci < r->n_capabilities; ci++)
                    grants[ci / 64] |= 1ull << (ci % 64);
            } else {
                int ci = cap_ref(c, key, s);
                if (ci >= 0)
                    grants[ci / 64] |= 1ull << (ci % 64);
            }
            lua_pop(c->L, 1);
        }
        const char **names = NULL;
        const char *one[2] = {NULL, NULL};
        int ty = field(c, d.body, "includes");
        lua_pop(c->L, 1);
        size_t ni = 0;
        if (ty == LUA_TSTRING) {
            if (get_str(c, d.body, "includes", 0, &one[0])) {
                names = one;
                ni = 1;
            }
        } else if (ty != LUA_TNIL) {
            ni = get_str_list(c, d.body, "includes", 0, &names);
            if (ni > TG__MAX_INCLUDES) {
                err(c, "limit_exceeded", "includes %zu roles (limit %d)", ni, TG__MAX_INCLUDES);
                ni = 0;
            }
        }
        inc[me] = alloc(c, (ni + 1) * sizeof **inc);
        if (!inc[me])
            break;
        for (size_t j = 0; j < ni; j++) {
            int found = tg__strmap_get(&c->roles, names[j]);
            if (found < 0) {
                const char *known[65];
                size_t nk = 0;
                for (; nk < r->n_roles && nk < 64; nk++)
                    known[nk] = roles[nk].name;
                known[nk] = NULL;
                char sug[96];
                err(c, "unknown_role", "includes role '%s', which is not declared%s", names[j],
                    suggest(names[j], known, sug, sizeof sug));
            } else {
                inc[me][ninc[me]++] = found;
            }
        }
        lua_pop(c->L, 1);
    }
    if (c->oom)
        return;
    for (size_t q = 0; q < r->n_roles; q++)
        if (!inc[q] && !(inc[q] = alloc(c, sizeof **inc)))
            return;
    close_roles(c, inc, ninc);
}

/* ---- row filters ---- */

#define MAX_FILTER_CONDS 16  /* conditions of one row_filter */
#define MAX_FILTER_VALUES 64 /* values of one in/not_in list */

/* The scalar at idx as a filter value; reports (bad_row_filter) and returns 0 otherwise. */
static int filter_value(comp *c, int idx, tg_value *v, const char *what) {
    lua_State *L = c->L;
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->type = TG_INTEGER;
            v->i = lua_tointeger(L, idx);
            return 1;
        }
        v->type = TG_REAL;
        v->r = lua_tonumber(L, idx);
        if (!isfinite(v->r)) {
            err(c, "bad_row_filter", "%s is not a finite number", what);
            return 0;
        }
        return 1;
    case LUA_TBOOLEAN:
        v->type = TG_BOOLEAN;
        v->i = lua_toboolean(L, idx);
        return 1;
    case LUA_TSTRING: {
        const char *s = checked_str(c, idx, what, "bad_row_filter", TG__MAX_TEXT_BYTES);
        if (!s)
            return 0;
        v->type = TG_TEXT;
        v->n = strlen(s);
        v->s = dup(c, s);
        return v->s != NULL;
    }
    default:
        err(c, "bad_row_filter", "%s must be an integer, a float, a string or a boolean, got %s",
            what, type_name(c, idx));
        return 0;
    }
}

/* Counts the items of the list at t; -1 when it has any key but 1..n. */
static long filter_list_len(comp *c, int t) {
    lua_State *L = c->L;
    long n = 0;
    lua_Integer top = 0;
    int other = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            if (lua_tointeger(L, -1) > top)
                top = lua_tointeger(L, -1);
            n++;
        } else {
            other = 1;
        }
    }
    return other || top != n ? -1 : n;
}

/* One condition { column =, op =, value = } at t. Returns 0 after reporting. */
static int compile_filter_cond(comp *c, int t, size_t i, tg_filter_cond *out) {
    static const char *const keys[] = {"column", "op", "value", NULL};
    lua_State *L = c->L;
    int ok = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        size_t kl = 0;
        const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &kl) : NULL;
        if (!k || strlen(k) != kl || tg__name_index(keys, k) < 0) {
            err(c, "bad_row_filter",
                "condition %zu has the field '%s'; a condition has only column, op and value",
                i, k ? k : type_name(c, -1));
            ok = 0;
        }
    }
    int ty = field(c, t, "column");
    if (ty == LUA_TSTRING) {
        const char *s = checked_str(c, -1, "a row_filter column", "bad_identifier",
                                    TG__MAX_TEXT_BYTES);
        if (!s || !check_ident(c, "column", s) || !(out->column = dup(c, s)))
            ok = 0;
    } else {
        err(c, "bad_row_filter", "condition %zu needs column = \"<column name>\"%s%s", i,
            ty == LUA_TNIL ? "" : ", got ", ty == LUA_TNIL ? "" : type_name(c, -1));
        ok = 0;
    }
    lua_pop(L, 1);
    char all[160], sug[96];
    join_names(tg__filter_op_names, all, sizeof all);
    int op = -1;
    ty = field(c, t, "op");
    if (ty == LUA_TSTRING && lua_rawlen(L, -1) == strlen(lua_tostring(L, -1)))
        op = tg__name_index(tg__filter_op_names, lua_tostring(L, -1));
    if (op < 0) {
        if (ty == LUA_TSTRING)
            err(c, "bad_row_filter", "condition %zu: op '%s' is not one of %s%s", i,
                lua_tostring(L, -1), all,
                suggest(lua_tostring(L, -1), tg__filter_op_names, sug, sizeof sug));
        else
            err(c, "bad_row_filter", "condition %zu needs op = one of %s%s%s", i, all,
                ty == LUA_TNIL ? "" : ", got ", ty == LUA_TNIL ? "" : type_name(c, -1));
        ok = 0;
    }
    lua_pop(L, 1);
    ty = field(c, t, "value");
    int vt = lua_gettop(L);
    char what[96];
    if (op < 0) {
        /* the op decides what value means: nothing more to say */
    } else if (op == TG_FILTER_IS_NULL || op == TG_FILTER_IS_NOT_NULL) {
        if (ty != LUA_TNIL) {
            err(c, "bad_row_filter", "condition %zu: op '%s' takes no value", i,
                tg__filter_op_names[op]);
            ok = 0;
        }
    } else if (op == TG_FILTER_IN || op == TG_FILTER_NOT_IN) {
        long n = ty == LUA_TTABLE ? filter_list_len(c, vt) : -1;
        if (n < 1) {
            err(c, "bad_row_filter",
                "condition %zu: op '%s' takes a non-empty list of values, value = { ... }", i,
                tg__filter_op_names[op]);
            ok = 0;
        } else if (n > MAX_FILTER_VALUES) {
            err(c, "limit_exceeded", "condition %zu: op '%s' lists %ld values (limit %d)", i,
                tg__filter_op_names[op], n, MAX_FILTER_VALUES);
            ok = 0;
        } else {
            tg_value *vals = alloc(c, (size_t)n * sizeof *vals);
            for (long k = 1; vals && k <= n; k++) {
                lua_rawgeti(L, vt, k);
                snprintf(what, sizeof what, "condition %zu value %ld", i, k);
                ok &= filter_value(c, -1, &vals[k - 1], what);
                lua_pop(L, 1);
            }
            out->values = vals;
            out->n_values = vals ? (size_t)n : 0;
            ok &= vals != NULL;
        }
    } else if (ty == LUA_TNIL) {
        err(c, "bad_row_filter", "condition %zu: op '%s' needs a value", i,
            tg__filter_op_names[op]);
        ok = 0;
    } else if (ty == LUA_TTABLE) {
        err(c, "bad_row_filter",
            "condition %zu: op '%s' takes one value; use op = \"in\" for a list", i,
            tg__filter_op_names[op]);
        ok = 0;
    } else {
        tg_value *v = alloc(c, sizeof *v);
        snprintf(what, sizeof what, "condition %zu value", i);
        if (v && filter_value(c, vt, v, what)) {
            out->values = v;
            out->n_values = 1;
        } else {
            ok = 0;
        }
    }
    lua_pop(L, 1);
    out->op = op < 0 ? TG_FILTER_IS_NULL : (tg_filter_op)op;
    return ok;
}

/* t.row_filter, when present, into *out: a list of conditions that must all hold for a row
 * to be visible. Structured data only (never SQL): problems are bad_row_filter, caps
 * limit_exceeded, a column that is not a plain identifier bad_identifier. */
static void compile_row_filter(comp *c, int t, tg_row_filter *out) {
    lua_State *L = c->L;
    out->conds = NULL;
    out->n_conds = 0;
    int ty = field(c, t, "row_filter");
    if (ty == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    char saved[sizeof c->what];
    memcpy(saved, c->what, sizeof saved);
    set_what(c, "%s%srow_filter", saved, saved[0] ? ": " : "");
    int ft = lua_gettop(L);
    long n = ty == LUA_TTABLE ? filter_list_len(c, ft) : -1;
    if (n < 0) {
        err(c, "bad_row_filter",
            "row_filter must be a list of conditions { { column = \"...\", op = \"...\", "
            "value = ... }, ... }, got %s",
            ty == LUA_TTABLE ? "a table with named fields" : type_name(c, ft));
    } else if (n == 0) {
        err(c, "bad_row_filter",
            "row_filter needs at least one condition (leave it out to show every row)");
    } else if (n > MAX_FILTER_CONDS) {
        err(c, "limit_exceeded", "row_filter has %ld conditions (limit %d)", n,
            MAX_FILTER_CONDS);
    } else {
        tg_filter_cond *conds = alloc(c, (size_t)n * sizeof *conds);
        int ok = conds != NULL;
        for (long i = 1; conds && i <= n; i++) {
            memset(&conds[i - 1], 0, sizeof conds[i - 1]);
            if (lua_rawgeti(L, ft, i) != LUA_TTABLE) {
                err(c, "bad_row_filter",
                    "condition %ld must be a table { column = \"...\", op = \"...\" }, got %s",
                    i, type_name(c, -1));
                ok = 0;
            } else {
                ok &= compile_filter_cond(c, lua_gettop(L), (size_t)i, &conds[i - 1]);
            }
            lua_pop(L, 1);
        }
        if (ok) {
            out->conds = conds;
            out->n_conds = (size_t)n;
        }
    }
    memcpy(c->what, saved, sizeof saved);
    lua_pop(L, 1);
}

/* app.<sub>.row_filter (the sub-table was checked by read_mapping). */
static void compile_app_filter(comp *c, int app, const char *sub, tg_row_filter *out) {
    out->conds = NULL;
    out->n_conds = 0;
    if (!app)
        return;
    if (field(c, app, sub) == LUA_TTABLE) {
        set_what(c, "app.%s", sub);
        compile_row_filter(c, lua_gettop(c->L), out);
        set_what(c, "app");
    }
    lua_pop(c->L, 1);
}

/* ---- the application mapping ---- */

typedef struct idspec {
    const char *key;
    const char **dst;
    const char *def;
} idspec;

/* A default that `false` may still clear: workspace_members.role = false says the
 * membership has no role column (it then grants nothing unless a tenant role does). */
static const char ROLE_OR_FALSE[] = "role";

/* The app tables the matrix fixture writes take a `fixture` of their own. */
static int is_fixture_table(const char *sub) {
    return !strcmp(sub, "workspaces") || !strcmp(sub, "tenants") ||
           !strcmp(sub, "workspace_members") || !strcmp(sub, "tenant_members");
}

static void compile_fixture_values(comp *c, int body, const tg_field_value **out,
                                   size_t *n_out);

/* app[sub].fixture: the values the matrix fixture gives that table's rows. */
static void read_app_fixture(comp *c, int app, const char *sub, const tg_field_value **out,
                             size_t *n_out) {
    if (!app)
        return;
    if (field(c, app, sub) == LUA_TTABLE) {
        char saved[sizeof c->what];
        memcpy(saved, c->what, sizeof saved);
        set_what(c, "app.%s", sub);
        compile_fixture_values(c, lua_gettop(c->L), out, n_out);
        memcpy(c->what, saved, sizeof saved);
    }
    lua_pop(c->L, 1);
}

/* Reads the sub-table app[sub] of identifier fields, applying defaults. */
static void read_mapping(comp *c, int app, const char *sub, const idspec *specs) {
    const char *keys[16];
    int n = 0;
    for (; specs[n].key; n++) {
        keys[n] = specs[n].key;
        if (specs[n].dst)
            *specs[n].dst = specs[n].def;
    }
    keys[n] = NULL;
    if (is_fixture_table(sub))
        keys[n] = "fixture", keys[n + 1] = NULL;
    if (!app)
        return;
    int t = get_table(c, app, sub, 0);
    if (!t)
        return;
    char saved[sizeof c->what];
    memcpy(saved, c->what, sizeof saved);
    set_what(c, "app.%s", sub);
    check_keys(c, t, keys);
    for (int i = 0; i < n; i++) {
        if (!specs[i].dst)
            continue; /* a structured field (row_filter) the caller reads */
        int ty = field(c, t, specs[i].key);
        int is_false = ty == LUA_TBOOLEAN && !lua_toboolean(c->L, -1);
        lua_pop(c->L, 1);
        /* false clears an optional column (e.g. tenant_members.role = false) */
        if (is_false && specs[i].def == ROLE_OR_FALSE) {
            *specs[i].dst = NULL;
            continue;
        }
        if (ty == LUA_TBOOLEAN && specs[i].def == NULL) {
            *specs[i].dst = NULL;
            continue;
        }
        get_ident(c, t, specs[i].key, 0, specs[i].dst);
    }
    memcpy(c->what, saved, sizeof saved);
    lua_pop(c->L, 1);
}

/* app.role_grants = { table = "role_capabilities", role = "role", capability = "capability" }:
 * an application table granting capabilities to roles, read with a database at every load
 * (grants.c). Without the mapping no table is read; with it, the table is required. */
static void read_role_grants(comp *c, int app) {
    tg_app *a = &c->rs->pub.app;
    read_mapping(c, app, "role_grants",
                 (idspec[]){{"table", &a->role_grants.table, NULL},
                            {"role", &a->role_grants.role, "role"},
                            {"capability", &a->role_grants.capability, "capability"},
                            {NULL, NULL, NULL}});
    if (!app || a->role_grants.table)
        return;
    int ty = field(c, app, "role_grants");
    lua_pop(c->L, 1);
    if (ty == LUA_TTABLE)
        err(c, "missing_field", "role_grants needs 'table', the table that grants "
                                "capabilities to roles");
}

/* The type of app[sub] for an optional app table: a table (the mapping), nil (left out) or
 * false (the app has none). `true` is reported and taken as left out. */
static int optional_mapping(comp *c, int app, const char *sub) {
    if (!app)
        return LUA_TNIL;
    int ty = field(c, app, sub);
    int is_false = ty == LUA_TBOOLEAN && !lua_toboolean(c->L, -1);
    lua_pop(c->L, 1);
    if (ty == LUA_TBOOLEAN && !is_false) {
        err(c, "bad_value", "field '%s' is true; give the mapping { table = ..., ... }, or false "
                            "when the application has no such table",
            sub);
        return LUA_TNIL;
    }
    return ty;
}

/* columns = { id =, tenant =, workspace = } of a family, residual or exception at body; each
 * name left out is the app's. */
static void compile_columns(comp *c, int body, tg_columns *cols) {
    const tg_app *a = &c->rs->pub.app;
    cols->id = a->id_column;
    cols->tenant = a->tenant_column;
    cols->workspace = a->workspace_column;
    int t = get_table(c, body, "columns", 0);
    if (!t)
        return;
    static const char *const keys[] = {"id", "tenant", "workspace", NULL};
    char saved[sizeof c->what];
    memcpy(saved, c->what, sizeof saved);
    set_what(c, "%s: columns", saved);
    check_keys(c, t, keys);
    get_ident(c, t, "id", 0, &cols->id);
    get_ident(c, t, "tenant", 0, &cols->tenant);
    get_ident(c, t, "workspace", 0, &cols->workspace);
    if (strcmp(cols->id, cols->tenant) == 0 || strcmp(cols->id, cols->workspace) == 0 ||
        strcmp(cols->tenant, cols->workspace) == 0)
        err(c, "bad_value", "the id, tenant and workspace columns must be three different "
                            "columns (%s, %s, %s)",
            cols->id, cols->tenant, cols->workspace);
    memcpy(c->what, saved, sizeof saved);
    lua_pop(c->L, 1);
}

static void compile_app(comp *c, int decls) {
    tg_app *a = &c->rs->pub.app;
    int body = 0;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    int seen = 0;
    for (lua_Integer i = 1; i <= len; i++) {
        lua_rawgeti(c->L, decls, i);
        lua_getfield(c->L, -1, "kind");
        int is_app = strcmp(lua_tostring(c->L, -1), "app") == 0;
        lua_pop(c->L, 2);
        if (!is_app)
            continue;
        decl d;
        open_decl(c, decls, i, &d);
        if (seen++) {
            set_what(c, "app");
            err(c, "duplicate_name", "app is declared twice (first at %s:%d)", a->where.file,
                a->where.line);
            lua_pop(c->L, 1);
            continue;
        }
        a->where.file = dup(c, d.file);
        a->where.line = d.line;
        body = d.body; /* stays pushed until the end of this function */
    }
    if (!body) {
        c->file = c->rs->pub.dir;
        c->line = 0;
    } else {
        c->file = a->where.file;
        c->line = a->where.line;
    }
    set_what(c, "app");
    static const char *const app_keys[] = {"name",           "columns",    "workspaces",
                                           "tenants",        "workspace_members",
                                           "tenant_members", "operation_runs",
                                           "audit_logs",     "limits",     "role_grants",
                                           NULL};
    if (body) {
        check_keys(c, body, app_keys);
        get_str(c, body, "name", 0, &a->name);
    }
    read_mapping(c, body, "columns",
                 (idspec[]){{"id", &a->id_column, "id"},
                            {"tenant", &a->tenant_column, "tenant_id"},
                            {"workspace", &a->workspace_column, "workspace_id"},
                            {NULL, NULL, NULL}});
    read_mapping(c, body, "workspaces",
                 (idspec[]){{"table", &a->workspaces.table, "workspaces"},
                            {"id", &a->workspaces.id, "id"},
                            {"row_filter", NULL, NULL},
                            {NULL, NULL, NULL}});
    compile_app_filter(c, body, "workspaces", &a->workspaces.row_filter);
    read_mapping(c, body, "tenants",
                 (idspec[]){{"table", &a->tenants.table, "tenants"},
                            {"id", &a->tenants.id, "id"},
                            {"workspace", &a->tenants.workspace, "workspace_id"},
                            {"row_filter", NULL, NULL},
                            {NULL, NULL, NULL}});
    compile_app_filter(c, body, "tenants", &a->tenants.row_filter);
    read_mapping(c, body, "workspace_members",
                 (idspec[]){{"table", &a->workspace_members.table, "workspace_memberships"},
                            {"user", &a->workspace_members.user, "user_id"},
                            {"workspace", &a->workspace_members.workspace, "workspace_id"},
                            {"role", &a->workspace_members.role, ROLE_OR_FALSE},
                            {NULL, NULL, NULL}});
    read_mapping(c, body, "tenant_members",
                 (idspec[]){{"table", &a->tenant_members.table, "tenant_memberships"},
                            {"user", &a->tenant_members.user, "user_id"},
                            {"tenant", &a->tenant_members.tenant, "tenant_id"},
                            {"role", &a->tenant_members.role, NULL},
                            {NULL, NULL, NULL}});
    read_app_fixture(c, body, "workspaces", &a->workspaces.fixture, &a->workspaces.n_fixture);
    read_app_fixture(c, body, "tenants", &a->tenants.fixture, &a->tenants.n_fixture);
    read_app_fixture(c, body, "workspace_members", &a->workspace_members.fixture,
                     &a->workspace_members.n_fixture);
    read_app_fixture(c, body, "tenant_members", &a->tenant_members.fixture,
                     &a->tenant_members.n_fixture);
    int runs_ty = optional_mapping(c, body, "operation_runs");
    read_mapping(c, runs_ty == LUA_TBOOLEAN ? 0 : body, "operation_runs",
                 (idspec[]){{"table", &a->operation_runs.table, "operation_runs"},
                            {"id", &a->operation_runs.id, "id"},
                            {"type", &a->operation_runs.type, "type"},
                            {"status", &a->operation_runs.status, "status"},
                            {"workspace", &a->operation_runs.workspace, NULL},
                            {"summary", &a->operation_runs.summary, "summary"},
                            {"created_at", &a->operation_runs.created_at, "created_at"},
                            {"started_at", &a->operation_runs.started_at, "started_at"},
                            {"finished_at", &a->operation_runs.finished_at, "finished_at"},
                            {NULL, NULL, NULL}});
    int audit_ty = optional_mapping(c, body, "audit_logs");
    read_mapping(c, audit_ty == LUA_TBOOLEAN ? 0 : body, "audit_logs",
                 (idspec[]){{"table", &a->audit_logs.table, "audit_logs"},
                            {"id", &a->audit_logs.id, "id"},
                            {"workspace", &a->audit_logs.workspace, "workspace_id"},
                            {"tenant", &a->audit_logs.tenant, "tenant_id"},
                            {"action", &a->audit_logs.action, "action"},
                            {"subject", &a->audit_logs.subject, NULL},
                            {"metadata", &a->audit_logs.metadata, "metadata"},
                            {"created_at", &a->audit_logs.created_at, "created_at"},
                            {NULL, NULL, NULL}});
    read_role_grants(c, body);
    /* false: the app has no such table; left out: the default table when it exists */
    a->operation_runs.implicit = runs_ty == LUA_TNIL;
    if (runs_ty == LUA_TBOOLEAN)
        memset(&a->operation_runs, 0, sizeof a->operation_runs);
    a->audit_logs.implicit = audit_ty == LUA_TNIL;
    if (audit_ty == LUA_TBOOLEAN)
        memset(&a->audit_logs, 0, sizeof a->audit_logs);
    a->page_size = 50;
    a->max_page_size = 500;
    a->max_bulk_ids = 1000;
    int lim = body ? get_table(c, body, "limits", 0) : 0;
    if (lim) {
        static const char *const lim_keys[] = {"page_size", "max_page_size", "max_bulk_ids", NULL};
        set_what(c, "app.limits");
        check_keys(c, lim, lim_keys);
        get_int(c, lim, "page_size", &a->page_size);
        get_int(c, lim, "max_page_size", &a->max_page_size);
        get_int(c, lim, "max_bulk_ids", &a->max_bulk_ids);
        /* both bound what one request may ask for: a page is materialised in memory */
        if (a->page_size < 1 || a->max_page_size < a->page_size || a->max_page_size > 100000 ||
            a->max_bulk_ids < 1 || a->max_bulk_ids > 100000)
            err(c, "bad_value", "need 1 <= page_size <= max_page_size <= 100000 and "
                                "1 <= max_bulk_ids <= 100000");
        lua_pop(c->L, 1);
    }
    if (body)
        lua_pop(c->L, 1);
    set_what(c, "app");
    add_claim(c, a->workspaces.table, "the app mapping (workspaces)");
    add_claim(c, a->tenants.table, "the app mapping (tenants)");
    add_claim(c, a->workspace_members.table, "the app mapping (workspace_members)");
    add_claim(c, a->tenant_members.table, "the app mapping (tenant_members)");
    add_claim(c, a->operation_runs.table, "the app mapping (operation_runs)");
    add_claim(c, a->audit_logs.table, "the app mapping (audit_logs)");
    add_claim(c, a->role_grants.table, "the app mapping (role_grants)");
}

/* ---- families ---- */

static const tg_anchor default_anchor[TG_PATH_COUNT] = {
    TG_ANCHOR_ROUTE_TENANT, TG_ANCHOR_ROUTE_TENANT,  TG_ANCHOR_ROUTE_TENANT,
    TG_ANCHOR_ROUTE_TENANT, TG_ANCHOR_OWNER_RECORD, TG_ANCHOR_ROUTE_TENANT,
    TG_ANCHOR_EXPLICIT_RECORD};

/* Compiles one path; returns 1 when it names a capability (known or not). */
static int compile_path(comp *c, tg_family *fam, int type, int value) {
    tg_path_rule *p = &fam->paths[type];
    p->declared = 1;
    p->type = (tg_path_type)type;
    p->scope_anchor = default_anchor[type];
    p->entitlement_rule = "workspace_and_tenant_required";
    p->capability_rule = "capability_after_scope";
    p->not_entitled_result = 404;
    p->missing_capability_result = 403;
    p->record_lookup_behavior =
        type == TG_PATH_CANONICAL_VIEWER ? TG_LOOKUP_EXPLICIT_EXCEPTION : TG_LOOKUP_SAME_AS_LIST;
    p->capability = -1;
    p->owner_family = -1;
    p->where.file = fam->where.file;
    p->where.line = fam->where.line;
    if (lua_type(c->L, value) == LUA_TBOOLEAN && lua_toboolean(c->L, value))
        return 0;
    if (lua_type(c->L, value) != LUA_TTABLE) {
        err(c, "wrong_type", "path '%s' must be a table { ... } or true, got %s",
            tg__path_names[type], type_name(c, value));
        return 1; /* reported already */
    }
    char saved[sizeof c->what];
    memcpy(saved, c->what, sizeof saved);
    set_what(c, "%s: path '%s'", saved, tg__path_names[type]);
    static const char *const keys[] = {"scope_anchor",
                                       "entitlement_rule",
                                       "capability_rule",
                                       "not_entitled_result",
                                       "missing_capability_result",
                                       "record_lookup_behavior",
                                       "capability",
                                       "owner",
                                       "via",
                                       "notes",
                                       NULL};
    check_keys(c, value, keys);
    int anchor = -1;
    if (get_enum(c, value, "scope_anchor", tg__anchor_names, 0, &anchor)) {
        if ((tg_anchor)anchor != default_anchor[type])
            err(c, "bad_value", "a %s path is anchored on '%s', not '%s'", tg__path_names[type],
                tg__anchor_names[default_anchor[type]], tg__anchor_names[anchor]);
    }
    get_fixed(c, value, "entitlement_rule", "workspace_and_tenant_required");
    get_fixed(c, value, "capability_rule", "capability_after_scope");
    int64_t v;
    if (get_int(c, value, "not_entitled_result", &v) && v != 404)
        err(c, "not_entitled_not_404",
            "not_entitled_result is %lld; a stranger must get 404, so that 'exists but not "
            "yours' looks like 'does not exist'",
            (long long)v);
    if (get_int(c, value, "missing_capability_result", &v) && v != 403)
        err(c, "missing_capability_not_403",
            "missing_capability_result is %lld; a missing capability after scope holds is 403",
            (long long)v);
    int lookup;
    if (get_enum(c, value, "record_lookup_behavior", tg__lookup_names, 0, &lookup)) {
        p->record_lookup_behavior = (tg_lookup)lookup;
        if (type != TG_PATH_CANONICAL_VIEWER && lookup == TG_LOOKUP_EXPLICIT_EXCEPTION)
            err(c, "bad_value", "only a canonical_viewer path may use explicit_exception lookups");
    }
    const char *cap = NULL;
    int named = field(c, value, "capability") != LUA_TNIL;
    lua_pop(c->L, 1);
    if (get_str(c, value, "capability", 0, &cap))
        p->capability = cap_ref(c, "capability", cap);
    const char *owner = NULL;
    if (type == TG_PATH_RELATION_MANAGER) {
        if (get_str(c, value, "owner", 1, &owner)) {
            int oi = fam_index(c, owner);
            char sug[96];
            const char *names[64];
            size_t k = 0;
            for (; k < c->rs->pub.n_families && k < 63; k++)
                names[k] = c->rs->pub.families[k].name;
            names[k] = NULL;
            if (oi < 0)
                err(c, "unknown_family", "owner '%s' is not a declared family%s", owner,
                    suggest(owner, names, sug, sizeof sug));
            else if (&c->rs->pub.families[oi] == fam)
                err(c, "bad_value", "a family cannot be its own relation owner");
            p->owner_family = oi;
        }
        get_ident(c, value, "via", 1, &p->via);
    } else {
        int ty = field(c, value, "owner");
        int ty2 = field(c, value, "via");
        lua_pop(c->L, 2);
        if (ty != LUA_TNIL || ty2 != LUA_TNIL)
            err(c, "unknown_field", "'owner' and 'via' belong to relation_manager paths only");
    }
    memcpy(c->what, saved, sizeof saved);
    return named;
}

/* body.fixture: column = value pairs into *out and *n_out (nothing when absent). */
static void compile_fixture_values(comp *c, int body, const tg_field_value **out,
                                   size_t *n_out) {
    int t = get_table(c, body, "fixture", 0);
    if (!t)
        return;
    size_t n = 0;
    lua_pushnil(c->L);
    while (lua_next(c->L, t)) {
        lua_pop(c->L, 1);
        if (++n > TG__MAX_FIXTURE) {
            lua_pop(c->L, 1);
            err(c, "limit_exceeded", "fixture has more than %d entries (limit %d)",
                TG__MAX_FIXTURE, TG__MAX_FIXTURE);
            lua_pop(c->L, 1);
            return;
        }
    }
    tg_field_value *fv = alloc(c, (n + 1) * sizeof *fv);
    size_t k = 0;
    const char *col;
    lua_pushnil(c->L);
    while (fv && lua_next(c->L, t)) {
        if (lua_type(c->L, -2) != LUA_TSTRING) {
            err(c, "wrong_type", "fixture keys must be column names");
        } else if ((col = checked_str(c, -2, "a fixture column name", "bad_identifier",
                                      TG__MAX_TEXT_BYTES)) != NULL &&
                   check_ident(c, "fixture", col)) {
            tg_field_value *x = &fv[k];
            x->column = dup(c, col);
            switch (lua_type(c->L, -1)) {
            case LUA_TNUMBER:
                if (lua_isinteger(c->L, -1)) {
                    x->value.type = 1;
                    x->value.i = lua_tointeger(c->L, -1);
                } else {
                    x->value.type = 2;
                    x->value.r = lua_tonumber(c->L, -1);
                }
                k++;
                break;
            case LUA_TSTRING: {
                const char *v = checked_str(c, -1, "a fixture value", "bad_value",
                                            TG__MAX_TEXT_BYTES);
                if (v) {
                    x->value.type = 3;
                    x->value.s = dup(c, v);
                    k++;
                }
                break;
            }
            case LUA_TBOOLEAN:
                x->value.type = 4;
                x->value.i = lua_toboolean(c->L, -1);
                k++;
                break;
            default:
                err(c, "wrong_type", "fixture value of '%s' must be a number, string or boolean",
                    x->column);
            }
        }
        lua_pop(c->L, 1);
    }
    *out = fv;
    *n_out = k;
    lua_pop(c->L, 1);
}

static void compile_fixture(comp *c, tg_family *fam, int body) {
    compile_fixture_values(c, body, &fam->fixture, &fam->n_fixture);
}

static const int scenario_path[TG_SCENARIO_COUNT] = {
    -1, TG_PATH_INDEX, TG_PATH_DETAIL, TG_PATH_ROW_ACTION, TG_PATH_BULK_ACTION,
    TG_PATH_RELATION_MANAGER, TG_PATH_GLOBAL_SEARCH};

/* One scenario table at index t for family fi (or from family_name when fi < 0). */
static void compile_scenario(comp *c, int t, int fi, tg_scenario *out, int *ok) {
    static const char *const keys_nested[] = {"scenario_type", "expected_outcome",
                                              "surface_class", "notes", NULL};
    static const char *const keys_top[] = {"family_name", "scenario_type", "expected_outcome",
                                           "surface_class", "notes", NULL};
    *ok = 0;
    if (lua_type(c->L, t) != LUA_TTABLE) {
        err(c, "wrong_type", "a scenario must be a table, got %s", type_name(c, t));
        return;
    }
    check_keys(c, t, fi < 0 ? keys_top : keys_nested);
    if (fi < 0) {
        const char *fname = NULL;
        if (!get_str(c, t, "family_name", 1, &fname))
            return;
        fi = fam_index(c, fname);
        if (fi < 0) {
            err(c, "unknown_family", "family_name '%s' is not a declared family", fname);
            return;
        }
    }
    int type = -1, outcome = -1;
    int good = get_enum(c, t, "scenario_type", tg__scenario_names, 1, &type);
    good &= get_outcome(c, t, "expected_outcome", 1, &outcome);
    out->family = fi;
    out->declared = 1;
    out->where.file = dup(c, c->file);
    out->where.line = c->line;
    get_str(c, t, "surface_class", 0, &out->surface_class);
    get_str(c, t, "notes", 0, &out->notes);
    if (!good)
        return;
    out->scenario_type = (tg_scenario_type)type;
    out->expected_outcome = outcome;
    const tg_family *fam = &c->rs->pub.families[fi];
    int path = scenario_path[type];
    int is_search = type == TG_SCENARIO_SAFE_SEARCH;
    if (path >= 0 && !fam->paths[path].declared && !(is_search && outcome == TG_OUTCOME_HIDDEN))
        err(c, "unknown_path", "scenario '%s' needs a %s path, which family '%s' does not declare",
            tg__scenario_names[type], tg__path_names[path], fam->name);
    if (type != TG_SCENARIO_POSITIVE_SCOPE && !is_search && outcome != 404 &&
        outcome != TG_OUTCOME_HIDDEN)
        err(c, "bad_value",
            "scenario '%s' expects %d; a wrong-tenant scenario must expect 404 or "
            "hidden_or_disabled_without_side_effect",
            tg__scenario_names[type], outcome);
    *ok = 1;
}

static void compile_families(comp *c, int decls) {
    tg_rules *r = &c->rs->pub;
    int n = count_kind(c, decls, "family");
    tg_family *fams = alloc(c, (size_t)(n + 1) * sizeof *fams);
    if (!fams || !tg__strmap_init(&c->fams, c->A, (size_t)n)) {
        c->oom = 1;
        return;
    }
    r->families = fams;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    /* names first, so relation owners and scenarios may refer forward */
    int *index_of = alloc(c, (size_t)(len + 1) * sizeof *index_of);
    if (!index_of)
        return;
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        index_of[i] = -1;
        if (strcmp(d.kind, "family") == 0) {
            set_what(c, "family '%s'", d.name);
            int dupi = fam_index(c, d.name);
            if (dupi >= 0) {
                err(c, "duplicate_name", "family '%s' is declared twice (first at %s:%d)", d.name,
                    fams[dupi].where.file, fams[dupi].where.line);
            } else {
                tg_family *fam = &fams[r->n_families];
                fam->name = dup(c, d.name);
                fam->where.file = dup(c, d.file);
                fam->where.line = d.line;
                if (fam->name) {
                    tg__strmap_put(&c->fams, fam->name, (int)r->n_families);
                    index_of[i] = (int)r->n_families++;
                }
            }
        }
        lua_pop(c->L, 1);
    }
    static const char *const keys[] = {"table",
                                       "columns",
                                       "owns_tenant_scope",
                                       "primary_surface",
                                       "search_posture",
                                       "action_surface_status",
                                       "action_surface_reason",
                                       "notes",
                                       "paths",
                                       "query",
                                       "search_columns",
                                       "fixture",
                                       "scenarios",
                                       "row_filter",
                                       NULL};
    for (lua_Integer i = 1; i <= len; i++) {
        if (index_of[i] < 0)
            continue;
        decl d;
        open_decl(c, decls, i, &d);
        tg_family *fam = &fams[index_of[i]];
        set_what(c, "family '%s'", d.name);
        int b = d.body;
        check_keys(c, b, keys);
        fam->owns_tenant_scope = 1;
        int owns = 1;
        if (get_bool(c, b, "owns_tenant_scope", &owns) && !owns)
            err(c, "bad_value", "owns_tenant_scope is always true for a family; declare a "
                                "residual or an exception for tables that do not own scope");
        if (get_ident(c, b, "table", 1, &fam->table)) {
            char owner[160];
            snprintf(owner, sizeof owner, "family '%s' (%s:%d)", fam->name, d.file, d.line);
            add_claim(c, fam->table, owner);
        }
        compile_columns(c, b, &fam->columns);
        get_str(c, b, "primary_surface", 1, &fam->primary_surface);
        int posture = TG_SEARCH_NOT_APPLICABLE, status = TG_ACTION_DECLARED;
        get_enum(c, b, "search_posture", tg__posture_names, 1, &posture);
        fam->search_posture = (tg_search_posture)posture;
        get_enum(c, b, "action_surface_status", tg__action_status_names, 1, &status);
        fam->action_surface_status = (tg_action_status)status;
        get_str(c, b, "action_surface_reason", 0, &fam->action_surface_reason);
        get_str(c, b, "notes", 0, &fam->notes);
        if (fam->action_surface_status == TG_ACTION_BASELINE_EXEMPTION &&
            (!fam->action_surface_reason || !fam->action_surface_reason[0]))
            err(c, "exemption_without_reason",
                "action_surface_status is baseline_exemption but action_surface_reason is "
                "missing; say why the action surface is exempt and until when");

        int paths = get_table(c, b, "paths", 1);
        int named[TG_PATH_COUNT] = {0};
        if (paths) {
            lua_pushnil(c->L);
            while (lua_next(c->L, paths)) {
                int type = lua_type(c->L, -2) == LUA_TSTRING &&
                                   strlen(lua_tostring(c->L, -2)) == lua_rawlen(c->L, -2)
                               ? tg_path_type_index(lua_tostring(c->L, -2))
                               : -1;
                if (type < 0 && lua_type(c->L, -2) == LUA_TSTRING &&
                    zero_byte_key(c, -2, "unknown_path", "path type")) {
                    /* reported */
                } else if (type < 0) {
                    char sug[96], all[256];
                    join_names(tg__path_names, all, sizeof all);
                    const char *k = lua_type(c->L, -2) == LUA_TSTRING ? lua_tostring(c->L, -2)
                                                                       : "(not a name)";
                    err(c, "unknown_path", "path type '%s' does not exist%s; path types are: %s",
                        k, suggest(k, tg__path_names, sug, sizeof sug), all);
                } else {
                    named[type] = compile_path(c, fam, type, lua_gettop(c->L));
                }
                lua_pop(c->L, 1);
            }
            lua_pop(c->L, 1);
        }
        for (int p = 0; p < TG_PATH_COUNT; p++)
            if (fam->paths[p].declared && !named[p])
                warn(c, "path_without_capability",
                     "path '%s' names no capability, so it answers 403 to every caller; add "
                     "capability = \"...\" naming what a role must grant",
                     tg__path_names[p]);
        int has_search = fam->paths[TG_PATH_GLOBAL_SEARCH].declared;
        if (fam->search_posture == TG_SEARCH_SCOPED && !has_search)
            err(c, "scoped_search_without_path",
                "search_posture is 'scoped' but there is no global_search path");
        if (fam->search_posture != TG_SEARCH_SCOPED && has_search)
            err(c, "search_path_without_scoped",
                "a global_search path is declared but search_posture is '%s'; make it 'scoped' "
                "or remove the path",
                tg__posture_names[fam->search_posture]);

        fam->n_search_columns =
            get_str_list(c, b, "search_columns", 1, (const char ***)&fam->search_columns);
        int sc_given = field(c, b, "search_columns") != LUA_TNIL;
        lua_pop(c->L, 1);
        if (fam->search_posture == TG_SEARCH_SCOPED && fam->n_search_columns == 0 && !sc_given)
            err(c, "missing_field", "field 'search_columns' is required when search is scoped");

        tg_query_rule *q = &fam->query;
        q->tenant_source = fam->paths[TG_PATH_CANONICAL_VIEWER].declared &&
                                   !fam->paths[TG_PATH_INDEX].declared
                               ? TG_TENANT_FROM_RECORD_OWNER
                               : TG_TENANT_FROM_ROUTE;
        q->workspace_source = "current_workspace";
        q->shape = "owning_tenant";
        q->action_target_check = "ids_congruent_with_scope";
        q->search_rule = fam->search_posture == TG_SEARCH_SCOPED ? TG_SEARCH_RULE_SCOPED_ONLY
                                                                 : TG_SEARCH_RULE_DISABLED;
        int qt = get_table(c, b, "query", 0);
        if (qt) {
            static const char *const qkeys[] = {"tenant_source", "workspace_source", "shape",
                                                "action_target_check", "search_rule", NULL};
            char saved[sizeof c->what];
            memcpy(saved, c->what, sizeof saved);
            set_what(c, "%s: query", saved);
            check_keys(c, qt, qkeys);
            int ts;
            if (get_enum(c, qt, "tenant_source", tg__tenant_source_names, 0, &ts))
                q->tenant_source = (tg_tenant_source)ts;
            get_fixed(c, qt, "workspace_source", "current_workspace");
            get_fixed(c, qt, "shape", "owning_tenant");
            get_fixed(c, qt, "action_target_check", "ids_congruent_with_scope");
            int sr;
            if (get_enum(c, qt, "search_rule", tg__search_rule_names, 0, &sr)) {
                tg_search_rule want = fam->search_posture == TG_SEARCH_SCOPED
                                          ? TG_SEARCH_RULE_SCOPED_ONLY
                                          : TG_SEARCH_RULE_DISABLED;
                if ((tg_search_rule)sr != want)
                    err(c, "search_rule_mismatch",
                        "search_rule '%s' disagrees with search_posture '%s' (expected '%s')",
                        tg__search_rule_names[sr], tg__posture_names[fam->search_posture],
                        tg__search_rule_names[want]);
            }
            memcpy(c->what, saved, sizeof saved);
            lua_pop(c->L, 1);
        }
        compile_fixture(c, fam, b);
        compile_row_filter(c, b, &fam->row_filter);
        lua_pop(c->L, 1);
    }
}

/* Scenarios declared inside families and at top level, in declaration order. */
static void compile_scenarios(comp *c, int decls) {
    tg_rules *r = &c->rs->pub;
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    size_t total = 0;
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "scenario") == 0) {
            total++;
        } else if (strcmp(d.kind, "family") == 0) {
            c->what[0] = '\0';
            if (field(c, d.body, "scenarios") == LUA_TTABLE) {
                long m = list_len(c, lua_gettop(c->L), "scenarios", TG__MAX_SCENARIOS, 0);
                total += m > 0 ? (size_t)m : 0;
            }
            lua_pop(c->L, 1);
        }
        lua_pop(c->L, 1);
    }
    tg_scenario *sc = alloc(c, (total + 1) * sizeof *sc);
    if (!sc)
        return;
    r->scenarios = sc;
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        int ok;
        if (strcmp(d.kind, "scenario") == 0) {
            set_what(c, "scenario");
            if (r->n_scenarios < total) {
                compile_scenario(c, d.body, -1, &sc[r->n_scenarios], &ok);
                r->n_scenarios += ok;
            }
        } else if (strcmp(d.kind, "family") == 0) {
            int fi = fam_index(c, d.name);
            set_what(c, "family '%s'", d.name);
            int st = fi >= 0 ? get_table(c, d.body, "scenarios", 0) : 0;
            if (st) {
                long m = list_len(c, st, "field 'scenarios'", TG__MAX_SCENARIOS, 0);
                size_t n = m > 0 ? (size_t)m : 0;
                for (size_t k = 1; k <= n && r->n_scenarios < total; k++) {
                    set_what(c, "family '%s': scenario %zu", d.name, k);
                    lua_rawgeti(c->L, st, (lua_Integer)k);
                    compile_scenario(c, lua_gettop(c->L), fi, &sc[r->n_scenarios], &ok);
                    r->n_scenarios += ok;
                    lua_pop(c->L, 1);
                }
                lua_pop(c->L, 1);
            }
        }
        lua_pop(c->L, 1);
    }
}

/* ---- exceptions and residual entries ---- */

static void compile_exceptions(comp *c, int decls) {
    tg_rules *r = &c->rs->pub;
    int n = count_kind(c, decls, "exception");
    tg_exception *ex = alloc(c, (size_t)(n + 1) * sizeof *ex);
    if (!ex || !tg__strmap_init(&c->excs, c->A, (size_t)n)) {
        c->oom = 1;
        return;
    }
    r->exceptions = ex;
    static const char *const keys[] = {"exception_kind",        "table",      "columns",
                                       "surface",               "why_excepted",
                                       "still_required_checks", "capability", "notes",
                                       NULL};
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "exception") != 0) {
            lua_pop(c->L, 1);
            continue;
        }
        set_what(c, "exception '%s'", d.name);
        if (r->n_exceptions >= (size_t)n) {
            lua_pop(c->L, 1);
            break;
        }
        if (tg__strmap_get(&c->excs, d.name) >= 0)
            err(c, "duplicate_name", "exception '%s' is declared twice", d.name);
        tg_exception *e = &ex[r->n_exceptions++];
        e->name = dup(c, d.name);
        tg__strmap_put(&c->excs, e->name, (int)r->n_exceptions - 1);
        e->where.file = dup(c, d.file);
        e->where.line = d.line;
        e->capability = -1;
        check_keys(c, d.body, keys);
        int kind = 0;
        get_enum(c, d.body, "exception_kind", tg__exception_kind_names, 1, &kind);
        e->exception_kind = (tg_exception_kind)kind;
        get_ident(c, d.body, "table", 0, &e->table);
        compile_columns(c, d.body, &e->columns);
        get_str(c, d.body, "surface", 0, &e->surface);
        get_str(c, d.body, "why_excepted", 1, &e->why_excepted);
        const char **checks = NULL;
        size_t errs = tg_findings_errors(c->f);
        size_t nc = get_str_list(c, d.body, "still_required_checks", 0, &checks);
        if (nc == 0 && errs == tg_findings_errors(c->f))
            err(c, "exception_without_checks",
                "still_required_checks is missing or empty; list the checks that still apply "
                "(workspace_member, tenant_entitled, record_in_workspace, record_in_tenant, "
                "capability)");
        for (size_t k = 0; k < nc; k++) {
            int bit = tg__name_index(tg__check_names, checks[k]);
            if (bit < 0) {
                char sug[96], all[256];
                join_names(tg__check_names, all, sizeof all);
                err(c, "bad_value", "still_required_checks has '%s'; allowed: %s%s", checks[k],
                    all, suggest(checks[k], tg__check_names, sug, sizeof sug));
            } else {
                e->still_required_checks |= 1u << bit;
            }
        }
        if (e->exception_kind == TG_EXCEPTION_WORKSPACE_REFERENCE &&
            (e->still_required_checks & TG_CHECK_TENANT_ENTITLED))
            err(c, "bad_value", "a workspace_owned_reference_surface needs workspace scope only; "
                                "drop tenant_entitled or pick another exception_kind");
        if (nc && !(e->still_required_checks & TG_CHECK_WORKSPACE_MEMBER))
            err(c, "bad_value", "still_required_checks must include workspace_member: every "
                                "surface stays inside the caller's workspace");
        const char *cap = NULL;
        get_str(c, d.body, "capability", 0, &cap);
        if (e->still_required_checks & TG_CHECK_CAPABILITY) {
            if (!cap)
                err(c, "missing_field", "field 'capability' is required when "
                                        "still_required_checks has 'capability'");
            else
                e->capability = cap_ref(c, "capability", cap);
        } else if (cap) {
            err(c, "bad_value", "'capability' is given but still_required_checks does not "
                                "include 'capability'");
        } else if (e->table && nc) { /* no list at all is already exception_without_checks */
            warn(c, "exception_without_capability",
                 "still_required_checks does not list 'capability', so the surface answers 403 "
                 "to every caller once its other checks hold; add \"capability\" and "
                 "capability = \"...\"");
        }
        lua_pop(c->L, 1);
    }
}

static void compile_residuals(comp *c, int decls) {
    tg_rules *r = &c->rs->pub;
    int n = count_kind(c, decls, "residual");
    tg_residual *res = alloc(c, (size_t)(n + 1) * sizeof *res);
    if (!res || !tg__strmap_init(&c->ress, c->A, (size_t)n)) {
        c->oom = 1;
        return;
    }
    r->residuals = res;
    static const char *const keys[] = {"table", "columns", "likely_surface",
                                       "why_not_in_first_slice", "notes", NULL};
    lua_Integer len = (lua_Integer)lua_rawlen(c->L, decls);
    for (lua_Integer i = 1; i <= len; i++) {
        decl d;
        open_decl(c, decls, i, &d);
        if (strcmp(d.kind, "residual") != 0) {
            lua_pop(c->L, 1);
            continue;
        }
        set_what(c, "residual '%s'", d.name);
        if (r->n_residuals >= (size_t)n) {
            lua_pop(c->L, 1);
            break;
        }
        if (tg__strmap_get(&c->ress, d.name) >= 0)
            err(c, "duplicate_name", "residual '%s' is declared twice", d.name);
        tg_residual *x = &res[r->n_residuals++];
        x->name = dup(c, d.name);
        tg__strmap_put(&c->ress, x->name, (int)r->n_residuals - 1);
        x->where.file = dup(c, d.file);
        x->where.line = d.line;
        check_keys(c, d.body, keys);
        if (get_ident(c, d.body, "table", 1, &x->table)) {
            char owner[160];
            snprintf(owner, sizeof owner, "residual '%s' (%s:%d)", x->name, d.file, d.line);
            add_claim(c, x->table, owner);
        }
        compile_columns(c, d.body, &x->columns);
        get_str(c, d.body, "likely_surface", 0, &x->likely_surface);
        get_str(c, d.body, "why_not_in_first_slice", 1, &x->why_not_in_first_slice);
        lua_pop(c->L, 1);
    }
}

/* Warnings about capabilities that nothing grants or nothing uses; one pass over roles,
 * paths and exceptions. */
static void check_capabilities(comp *c) {
    tg_rules *r = &c->rs->pub;
    /* grants from the database are known only once it is read: grants.c warns then */
    if (r->app.role_grants.table)
        return;
    size_t words = c->rs->cap_words;
    uint64_t *granted = alloc(c, words * sizeof *granted);
    char *needed = alloc(c, r->n_capabilities + 1);
    if (!granted || !needed)
        return;
    for (size_t k = 0; k < r->n_roles; k++)
        for (size_t w = 0; w < words; w++)
            granted[w] |= r->roles[k].grants[w];
    for (size_t fi = 0; fi < r->n_families; fi++)
        for (int p = 0; p < TG_PATH_COUNT; p++) {
            const tg_path_rule *pr = &r->families[fi].paths[p];
            int ci = pr->capability;
            if (!pr->declared || ci < 0)
                continue;
            needed[ci] = 1;
            if (!(granted[ci / 64] >> (ci % 64) & 1)) {
                c->file = r->families[fi].where.file;
                c->line = r->families[fi].where.line;
                set_what(c, "family '%s': path '%s'", r->families[fi].name, tg__path_names[p]);
                warn(c, "capability_never_granted",
                     "capability '%s' is granted by no role, so this path is always 403",
                     r->capabilities[ci]);
            }
        }
    for (size_t k = 0; k < r->n_exceptions; k++)
        if (r->exceptions[k].capability >= 0)
            needed[r->exceptions[k].capability] = 1;
    for (size_t ci = 0; ci < r->n_capabilities; ci++) {
        if ((granted[ci / 64] >> (ci % 64) & 1) || needed[ci])
            continue;
        c->file = c->cap_where[ci].file;
        c->line = c->cap_where[ci].line;
        set_what(c, "capabilities");
        warn(c, "unused_capability", "capability '%s' is granted by no role and needed by no "
                                     "rule", r->capabilities[ci]);
    }
}

int tg__compile(lua_State *L, int decls, tg__ruleset *rs, tg_findings *f) {
    comp c = {0};
    c.L = L;
    c.rs = rs;
    c.A = &rs->arena;
    c.f = f;
    suggest_left = 200000;
    size_t errors_before = tg_findings_errors(f);
    lua_checkstack(L, 40);
    if (!check_counts(&c, decls))
        return TG_RULES;
    /* each phase needs the ones before it whole: stop at the first that ran out of memory */
    void (*const phases[])(comp *, int) = {compile_capabilities, compile_roles, compile_app,
                                           compile_families,     compile_scenarios,
                                           compile_exceptions,   compile_residuals};
    for (size_t i = 0; i < sizeof phases / sizeof *phases && !c.oom; i++) {
        if (i == 2 && !tg__strmap_init(&c.tables, c.A, TG__MAX_FAMILIES + TG__MAX_RESIDUALS + 8))
            c.oom = 1;
        else
            phases[i](&c, decls);
    }
    if (!c.oom)
        check_capabilities(&c);
    if (c.oom) {
        c.what[0] = '\0';
        c.file = rs->pub.dir;
        c.line = 0;
        err(&c, "memory_cap", "the compiled rules need more memory than the cap allows (%zu "
                              "bytes)", rs->arena.limit);
        return TG_RULES;
    }
    return tg_findings_errors(f) > errors_before ? TG_RULES : TG_OK;
}
