/* All conversion between Lua values and C values of the tenantguard module. Integers stay
 * 64-bit integers both ways. */
#include "binding.h"

#include <string.h>

#include <float.h>
#include <limits.h>
#include <math.h>

/*
 * The anchoring discipline. C may keep a pointer to a Lua string only while that string is
 * reachable from the stack of the call in progress: a value fetched with lua_getfield may
 * come from an __index metamethod and be referenced by nothing else, and any allocation
 * can run the collector and finalizers (arbitrary Lua code) that drop the last reference.
 * So every table the C side reads is first copied, field by field, into a private table
 * that stays on the stack until the C call returns (tgl_fields); every later read takes
 * its pointers from that copy. Positional string arguments are on the stack already.
 */

/* The closest allowed name to `key` (by edit distance), or NULL when none is close. */
static const char *closest(const char *key, const char *const *allowed) {
    const char *best = NULL;
    size_t best_d = 3; /* more than two edits away is no suggestion */
    size_t kn = strlen(key);
    for (size_t i = 0; allowed[i]; i++) {
        size_t an = strlen(allowed[i]);
        if (kn > 64 || an > 64)
            continue;
        size_t row[66];
        for (size_t j = 0; j <= an; j++)
            row[j] = j;
        for (size_t a = 1; a <= kn; a++) {
            size_t prev = row[0];
            row[0] = a;
            for (size_t b = 1; b <= an; b++) {
                size_t cur = row[b];
                size_t sub = prev + (key[a - 1] != allowed[i][b - 1]);
                size_t del = row[b] + 1, ins = row[b - 1] + 1;
                row[b] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
                prev = cur;
            }
        }
        if (row[an] < best_d) {
            best_d = row[an];
            best = allowed[i];
        }
    }
    return best;
}

int tgl_fields(lua_State *L, int idx, const char *what, const char *const *allowed) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        return luaL_error(L, "%s: expected a table, got %s", what, luaL_typename(L, idx));
    /* unknown keys first, by a raw traversal: a typo never passes silently */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (size_t i = 0; allowed[i] && !known; i++)
                known = strcmp(k, allowed[i]) == 0;
            if (!known) {
                const char *hint = closest(k, allowed);
                if (hint)
                    return luaL_error(L, "%s: unknown field '%s' (did you mean '%s'?)", what, k,
                                      hint);
                return luaL_error(L, "%s: unknown field '%s'", what, k);
            }
        } else {
            return luaL_error(L, "%s: unknown field [%s]", what, luaL_tolstring(L, -1, NULL));
        }
    }
    lua_createtable(L, 0, 8);
    int copy = lua_gettop(L);
    for (size_t i = 0; allowed[i]; i++) {
        lua_getfield(L, idx, allowed[i]); /* may run __index: the copy anchors what it gives */
        lua_setfield(L, copy, allowed[i]);
    }
    return copy;
}

static int present(lua_State *L, int t, const char *key) {
    if (lua_getfield(L, t, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

const char *tgl_field_string(lua_State *L, int t, const char *what, const char *key) {
    if (!present(L, t, key))
        return NULL;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: field '%s' must be a string, got %s", what, key, luaL_typename(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    /* C strings end at a zero byte: a name or query holding one would be cut short */
    if (strlen(s) != len)
        luaL_error(L, "%s: field '%s' contains a zero byte", what, key);
    lua_pop(L, 1); /* the copy at t still holds the string */
    return s;
}

/* The integer value of the number at idx, or raises naming `key`: an integer, or a float
 * with an exact integer value in range (like luaL_checkinteger); never a truncation. */
static lua_Integer to_integer(lua_State *L, int idx, const char *what, const char *key) {
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "%s: field '%s' must be an integer, got %s", what, key,
                   luaL_typename(L, idx));
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok) {
        lua_Number n = lua_tonumber(L, idx);
        if (isnan(n))
            luaL_error(L, "%s: field '%s' must be an integer, got NaN", what, key);
        if (n != floor(n))
            luaL_error(L, "%s: field '%s' must be an integer, got %s", what, key,
                       lua_tostring(L, idx));
        luaL_error(L, "%s: field '%s' is out of the 64-bit integer range (got %s)", what, key,
                   lua_tostring(L, idx));
    }
    return v;
}

int tgl_field_integer(lua_State *L, int t, const char *what, const char *key, lua_Integer min,
                      lua_Integer max, lua_Integer *out) {
    if (!present(L, t, key))
        return 0;
    lua_Integer v = to_integer(L, -1, what, key);
    if (v < min || v > max) {
        if (max == LUA_MAXINTEGER)
            luaL_error(L, "%s: field '%s' must be at least %I, got %I", what, key, min, v);
        luaL_error(L, "%s: field '%s' must be between %I and %I, got %I", what, key, min, max,
                   v);
    }
    lua_pop(L, 1);
    *out = v;
    return 1;
}

int tgl_field_number(lua_State *L, int t, const char *what, const char *key, double max,
                     double *out) {
    if (!present(L, t, key))
        return 0;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: field '%s' must be a number, got %s", what, key, luaL_typename(L, -1));
    double v = (double)lua_tonumber(L, -1);
    if (!(v >= 0 && v <= max)) /* NaN fails both */
        luaL_error(L, "%s: field '%s' must be a number from 0 to %I, got %s", what, key,
                   (lua_Integer)max, lua_tostring(L, -1));
    lua_pop(L, 1);
    *out = v;
    return 1;
}

int tgl_field_boolean(lua_State *L, int t, const char *what, const char *key, int *out) {
    if (!present(L, t, key))
        return 0;
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "%s: field '%s' must be a boolean, got %s", what, key,
                   luaL_typename(L, -1));
    *out = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 1;
}

int tgl_field_function(lua_State *L, int t, const char *what, const char *key) {
    if (!present(L, t, key))
        return 0;
    if (lua_type(L, -1) != LUA_TFUNCTION)
        luaL_error(L, "%s: field '%s' must be a function, got %s", what, key,
                   luaL_typename(L, -1));
    return lua_gettop(L); /* left on the stack for the caller */
}

/* The key at idx: an integer (a float with an integral value too) or a string (kept as it
 * is, zero bytes included: the stack anchors it); anything else raises naming `key`. */
static void to_key(lua_State *L, int idx, const char *what, const char *key, tg_value *out) {
    memset(out, 0, sizeof *out);
    if (lua_type(L, idx) == LUA_TSTRING) {
        out->type = TG_TEXT;
        out->s = lua_tolstring(L, idx, &out->n);
        return;
    }
    if (lua_type(L, idx) != LUA_TNUMBER)
        luaL_error(L, "%s: field '%s' must be an integer or a string key, got %s", what, key,
                   luaL_typename(L, idx));
    out->type = TG_INTEGER;
    out->i = to_integer(L, idx, what, key);
}

int tgl_field_key(lua_State *L, int t, const char *what, const char *key, tg_value *out) {
    memset(out, 0, sizeof *out);
    if (!present(L, t, key))
        return 0;
    to_key(L, -1, what, key, out);
    lua_pop(L, 1); /* the copy at t still holds a string */
    return 1;
}

void tgl_check_key(lua_State *L, int arg, tg_value *out) {
    if (lua_type(L, arg) != LUA_TNUMBER && lua_type(L, arg) != LUA_TSTRING)
        luaL_typeerror(L, arg, "integer or string key");
    memset(out, 0, sizeof *out);
    if (lua_type(L, arg) == LUA_TSTRING) {
        out->type = TG_TEXT;
        out->s = lua_tolstring(L, arg, &out->n);
        return;
    }
    out->type = TG_INTEGER;
    out->i = luaL_checkinteger(L, arg); /* raises for a fraction or a value out of range */
}

tg_value *tgl_field_ids(lua_State *L, int t, const char *what, const char *key, size_t max,
                        size_t *n) {
    *n = 0;
    if (!present(L, t, key))
        return NULL;
    if (!lua_istable(L, -1))
        luaL_error(L, "%s: field '%s' must be a list of keys, got %s", what, key,
                   luaL_typename(L, -1));
    int list = lua_gettop(L);
    /* read as Lua reads a list: __len and __index count, like every other request field
     * (a raw read would see an empty proxy and report a guess) */
    lua_len(L, list);
    int isnum = 0;
    lua_Integer slen = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);
    if (!isnum || slen < 0)
        luaL_error(L, "%s: field '%s' must be a list of keys, but its length is not a "
                      "non-negative integer",
                   what, key);
    lua_Unsigned len = (lua_Unsigned)slen;
    if (len > max)
        luaL_error(L, "%s: field '%s' has %I ids; the limit is %I (app.limits.max_bulk_ids)",
                   what, key, slen, (lua_Integer)max);
    /* from the Lua state's allocator, anchored on the stack: an error cannot leak it */
    tg_value *ids = lua_newuserdatauv(L, (len ? (size_t)len : 1) * sizeof *ids, 1);
    int ud = lua_gettop(L), anchor = 0;
    char name[80];
    for (lua_Unsigned i = 0; i < len; i++) {
        lua_geti(L, list, (lua_Integer)i + 1);
        snprintf(name, sizeof name, "%s[%llu]", key, (unsigned long long)i + 1);
        if (lua_isnil(L, -1))
            luaL_error(L, "%s: field '%s' is nil (a list has no holes)", what, name);
        to_key(L, -1, what, name, &ids[i]);
        if (lua_type(L, -1) == LUA_TSTRING) {
            /* the caller's list can change while C runs (a decision log callback): its
             * strings are anchored by a private table, the userdata's user value */
            if (!anchor) {
                lua_createtable(L, (int)(len < 64 ? len : 64), 0);
                lua_pushvalue(L, -1);
                lua_setiuservalue(L, ud, 1);
                anchor = lua_gettop(L);
                lua_insert(L, -2);
                anchor--;
            }
            lua_rawseti(L, anchor, (lua_Integer)i + 1);
        } else {
            lua_pop(L, 1);
        }
    }
    if (anchor)
        lua_remove(L, anchor);
    lua_remove(L, list); /* the copy at t still holds the list; the userdata stays */
    *n = (size_t)len;
    return ids;
}

lua_Integer tgl_check_integer(lua_State *L, int arg) {
    if (lua_type(L, arg) != LUA_TNUMBER) /* "42" is not an id: no string coercion */
        luaL_typeerror(L, arg, "integer");
    return luaL_checkinteger(L, arg); /* raises for a fraction or a value out of range */
}

lua_Integer tgl_opt_integer(lua_State *L, int arg, lua_Integer def) {
    return lua_isnoneornil(L, arg) ? def : tgl_check_integer(L, arg);
}

const char *tgl_check_cstring(lua_State *L, int arg) {
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    if (strlen(s) != len)
        luaL_argerror(L, arg, "contains a zero byte");
    return s;
}

const char *tgl_opt_cstring(lua_State *L, int arg) {
    return lua_isnoneornil(L, arg) ? NULL : tgl_check_cstring(L, arg);
}

static const char *const open_fields[] = {"db",         "rules",      "busy_timeout",
                                          "instruction_budget", "memory_cap", "create",
                                          "cache_size", "mmap_size",  "auto_reload",
                                          "on_reload",  "statement_timeout", "distributed",
                                          NULL};
static const char *const check_fields[] = {"db", "rules", "busy_timeout", "instruction_budget",
                                           "memory_cap", NULL};

void tgl_check_open_options(lua_State *L, int idx, const char *what, tg_open_options *o) {
    /* only tg.open may create a missing database (create = true); tg.check never does */
    int is_open = strcmp(what, "open") == 0;
    int t = tgl_fields(L, idx, what, is_open ? open_fields : check_fields);
    memset(o, 0, sizeof *o);
    if (is_open)
        tgl_field_boolean(L, t, what, "create", &o->create);
    o->db = tgl_field_string(L, t, what, "db");
    o->rules = tgl_field_string(L, t, what, "rules");
    if (!o->rules)
        luaL_error(L, "%s: option 'rules' is required: a directory of rule files", what);
    lua_Integer v;
    if (tgl_field_integer(L, t, what, "busy_timeout", 0, INT_MAX, &v))
        o->busy_timeout_ms = (int)v;
    /* the connection settings (tg.open only): KiB and bytes; tg_engine_open checks the rest */
    if (is_open && tgl_field_integer(L, t, what, "cache_size", 0, (lua_Integer)1 << 30, &v))
        o->cache_size_kib = v;
    if (is_open && tgl_field_integer(L, t, what, "mmap_size", 0, (lua_Integer)1 << 40, &v))
        o->mmap_size = v;
    /* automatic reload (tg.open only): ms; the engine reads on_reload from the copy itself */
    if (is_open && tgl_field_integer(L, t, what, "auto_reload", 0, INT_MAX, &v))
        o->auto_reload_ms = (int)v;
    /* PostgreSQL: ms, 0 the default (30 s), -1 none */
    if (is_open && tgl_field_integer(L, t, what, "statement_timeout", -1, INT_MAX, &v))
        o->statement_timeout_ms = (int)v;
    /* true: on, false: off, nil: automatic (on for Citus) */
    int on = 0;
    if (is_open && tgl_field_boolean(L, t, what, "distributed", &on))
        o->distributed = on ? 1 : -1;
    if (tgl_field_integer(L, t, what, "instruction_budget", 0, LUA_MAXINTEGER, &v))
        o->instruction_budget = v;
    if (tgl_field_integer(L, t, what, "memory_cap", 0,
                          SIZE_MAX < (size_t)LUA_MAXINTEGER ? (lua_Integer)SIZE_MAX
                                                            : LUA_MAXINTEGER,
                          &v))
        o->memory_cap = (size_t)v;
    /* the copy at t stays on the stack: the strings in o live until the caller returns */
}

static void set_str(lua_State *L, const char *k, const char *v) {
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_where(lua_State *L, tg_where w) {
    set_str(L, "file", w.file);
    if (w.line > 0)
        set_int(L, "line", w.line);
    if (w.file && w.line > 0)
        lua_pushfstring(L, "%s:%d", w.file, w.line);
    else
        lua_pushstring(L, w.file ? w.file : "");
    lua_setfield(L, -2, "where");
}

void tgl_push_findings(lua_State *L, const tg_findings *f) {
    size_t n = tg_findings_count(f);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const tg_finding *it = tg_findings_get(f, i);
        lua_createtable(L, 0, 6);
        set_str(L, "level", it->level == TG_LEVEL_ERROR ? "error" : it->level == TG_LEVEL_INFO ? "info" : "warning");
        set_str(L, "code", it->code);
        set_str(L, "message", it->message);
        set_where(L, it->where);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

void tgl_push_value(lua_State *L, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER: lua_pushinteger(L, v->i); break;
    case TG_REAL: lua_pushnumber(L, v->r); break;
    case TG_TEXT: /* the whole value, a zero byte included */
        if (v->n)
            lua_pushlstring(L, v->s, v->n);
        else
            lua_pushstring(L, v->s ? v->s : "");
        break;
    case TG_BLOB: lua_pushlstring(L, v->s, v->n); break;
    case TG_BOOLEAN: lua_pushboolean(L, (int)v->i); break;
    default: lua_pushnil(L);
    }
}

static const char null_key = 0;

void tgl_push_null(lua_State *L) { lua_pushlightuserdata(L, (void *)&null_key); }

void tgl_check_value(lua_State *L, int idx, tg_value *v, const char *what) {
    memset(v, 0, sizeof *v);
    switch (lua_type(L, idx)) {
    case LUA_TNIL: v->type = TG_NULL; break;
    case LUA_TBOOLEAN:
        v->type = TG_BOOLEAN;
        v->i = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->type = TG_INTEGER;
            v->i = lua_tointeger(L, idx);
        } else {
            v->type = TG_REAL;
            v->r = lua_tonumber(L, idx);
            if (isnan(v->r)) /* SQLite would store NULL: say so instead */
                luaL_error(L, "%s: cannot store NaN", what);
        }
        break;
    case LUA_TSTRING:
        v->type = TG_TEXT;
        v->s = lua_tolstring(L, idx, &v->n);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == (void *)&null_key) {
            v->type = TG_NULL;
            break;
        }
        /* fallthrough */
    default:
        luaL_error(L, "%s: cannot store a %s (use a number, string, boolean or tg.null)", what,
                   luaL_typename(L, idx));
    }
}

tg_column_value *tgl_check_column_values(lua_State *L, int idx, const char *what, size_t *n) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "%s: the values must be a table { column = value }, got %s", what,
                   luaL_typename(L, idx));
    /* a raw copy, private to this call: column names and text values stay anchored in it
     * whatever Lua code runs before the C call returns */
    if (lua_getmetatable(L, idx)) /* its columns could not be enumerated as the caller sees them */
        luaL_error(L, "%s: the values must be a plain table { column = value }, not one with a "
                      "metatable",
                   what);
    lua_newtable(L);
    int copy = lua_gettop(L);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "%s: write values are { column = value }; got a %s key", what,
                       luaL_typename(L, -2));
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, copy);
        count++;
    }
    tg_column_value *cv = lua_newuserdatauv(L, (count ? count : 1) * sizeof *cv, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, copy)) { /* private: exactly `count` entries */
        size_t clen;
        cv[i].column = lua_tolstring(L, -2, &clen);
        if (strlen(cv[i].column) != clen)
            luaL_error(L, "%s: a column name contains a zero byte", what);
        tgl_check_value(L, -1, &cv[i].value, cv[i].column);
        lua_pop(L, 1);
        i++;
    }
    *n = i;
    return cv; /* the copy and the array stay on the stack */
}

void tgl_push_decision(lua_State *L, const tg_decision *d, int single) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, d->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    if (d->row_id.type != TG_NULL) {
        tgl_push_value(L, &d->row_id);
        lua_setfield(L, -2, "id");
    }
    if (d->status != 200)
        return;
    if (!single) {
        lua_createtable(L, (int)d->n_records, 0);
    }
    for (size_t r = 0; r < d->n_records; r++) {
        lua_createtable(L, 0, (int)d->n_columns);
        for (size_t c = 0; c < d->n_columns; c++) {
            const tg_value *v = &d->values[r * d->n_columns + c];
            if (v->type == TG_NULL)
                continue;
            tgl_push_value(L, v);
            lua_setfield(L, -2, d->columns[c]);
        }
        if (single) {
            lua_setfield(L, -2, "record");
            break;
        }
        lua_rawseti(L, -2, (lua_Integer)r + 1);
    }
    if (!single) {
        lua_setfield(L, -2, "records");
        lua_pushboolean(L, d->has_more);
        lua_setfield(L, -2, "has_more");
        if (d->n_records && d->next_after.type != TG_NULL) {
            tgl_push_value(L, &d->next_after); /* of the id's type; a blob as a string */
            lua_setfield(L, -2, "next_after");
        }
    }
}

static void push_outcome(lua_State *L, int outcome) {
    if (outcome == TG_OUTCOME_HIDDEN)
        lua_pushstring(L, "hidden_or_disabled_without_side_effect");
    else
        lua_pushinteger(L, outcome);
}

static void push_str_array(lua_State *L, const char *const *a, size_t n) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, a[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static void push_path(lua_State *L, const tg_rules *r, const tg_path_rule *p) {
    lua_createtable(L, 0, 12);
    set_str(L, "path_type", tg_path_type_name(p->type));
    set_str(L, "scope_anchor", tg_anchor_name(p->scope_anchor));
    set_str(L, "entitlement_rule", p->entitlement_rule);
    set_str(L, "capability_rule", p->capability_rule);
    set_int(L, "not_entitled_result", p->not_entitled_result);
    set_int(L, "missing_capability_result", p->missing_capability_result);
    set_str(L, "record_lookup_behavior", tg_lookup_name(p->record_lookup_behavior));
    if (p->capability >= 0)
        set_str(L, "capability", r->capabilities[p->capability]);
    if (p->owner_family >= 0)
        set_str(L, "owner", r->families[p->owner_family].name);
    set_str(L, "via", p->via);
}

/* Sets t.row_filter on the table on top, as the rules wrote it (nothing when absent):
 * { { column =, op =, value = } }, value a list for in/not_in. */
static void push_row_filter(lua_State *L, const tg_row_filter *f) {
    if (!f->n_conds)
        return;
    lua_createtable(L, (int)f->n_conds, 0);
    for (size_t i = 0; i < f->n_conds; i++) {
        const tg_filter_cond *fc = &f->conds[i];
        lua_createtable(L, 0, 3);
        set_str(L, "column", fc->column);
        set_str(L, "op", tg_filter_op_name(fc->op));
        if (fc->op == TG_FILTER_IN || fc->op == TG_FILTER_NOT_IN) {
            lua_createtable(L, (int)fc->n_values, 0);
            for (size_t k = 0; k < fc->n_values; k++) {
                tgl_push_value(L, &fc->values[k]);
                lua_rawseti(L, -2, (lua_Integer)k + 1);
            }
            lua_setfield(L, -2, "value");
        } else if (fc->n_values) {
            tgl_push_value(L, &fc->values[0]);
            lua_setfield(L, -2, "value");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "row_filter");
}

/* t.columns = { id =, tenant =, workspace = } of one table (per-table or the app's) */
static void set_columns(lua_State *L, const tg_columns *c) {
    lua_createtable(L, 0, 3);
    set_str(L, "id", c->id);
    set_str(L, "tenant", c->tenant);
    set_str(L, "workspace", c->workspace);
    lua_setfield(L, -2, "columns");
}

static void push_family(lua_State *L, const tg_rules *r, const tg_family *f) {
    lua_createtable(L, 0, 16);
    set_str(L, "name", f->name);
    set_str(L, "table", f->table);
    set_columns(L, &f->columns);
    lua_pushboolean(L, f->owns_tenant_scope);
    lua_setfield(L, -2, "owns_tenant_scope");
    set_str(L, "primary_surface", f->primary_surface);
    set_str(L, "search_posture", tg_search_posture_name(f->search_posture));
    set_str(L, "action_surface_status", tg_action_status_name(f->action_surface_status));
    set_str(L, "action_surface_reason", f->action_surface_reason);
    set_str(L, "notes", f->notes);
    lua_newtable(L);
    lua_newtable(L); /* path_order: declared paths in canonical order */
    int k = 0;
    for (int p = 0; p < TG_PATH_COUNT; p++) {
        if (!f->paths[p].declared)
            continue;
        push_path(L, r, &f->paths[p]);
        lua_setfield(L, -3, tg_path_type_name((tg_path_type)p));
        lua_pushstring(L, tg_path_type_name((tg_path_type)p));
        lua_rawseti(L, -2, ++k);
    }
    lua_setfield(L, -3, "path_order");
    lua_setfield(L, -2, "paths");
    const tg_query_rule *q = &f->query;
    lua_createtable(L, 0, 5);
    set_str(L, "tenant_source", tg_tenant_source_name(q->tenant_source));
    set_str(L, "workspace_source", q->workspace_source);
    set_str(L, "shape", q->shape);
    set_str(L, "action_target_check", q->action_target_check);
    set_str(L, "search_rule", tg_search_rule_name(q->search_rule));
    lua_setfield(L, -2, "query");
    push_str_array(L, f->search_columns, f->n_search_columns);
    lua_setfield(L, -2, "search_columns");
    lua_createtable(L, 0, (int)f->n_fixture);
    for (size_t i = 0; i < f->n_fixture; i++) {
        tgl_push_value(L, &f->fixture[i].value);
        lua_setfield(L, -2, f->fixture[i].column);
    }
    lua_setfield(L, -2, "fixture");
    push_row_filter(L, &f->row_filter);
    set_where(L, f->where);
}

static void push_app(lua_State *L, const tg_app *a) {
    lua_createtable(L, 0, 12);
    set_str(L, "name", a->name);
    lua_createtable(L, 0, 3);
    set_str(L, "id", a->id_column);
    set_str(L, "tenant", a->tenant_column);
    set_str(L, "workspace", a->workspace_column);
    lua_setfield(L, -2, "columns");
#define SUB(name, ...)                                                                         \
    do {                                                                                       \
        lua_newtable(L);                                                                       \
        __VA_ARGS__                                                                            \
        lua_setfield(L, -2, name);                                                             \
    } while (0)
    SUB("workspaces", set_str(L, "table", a->workspaces.table); set_str(L, "id", a->workspaces.id);
        push_row_filter(L, &a->workspaces.row_filter););
    SUB("tenants", set_str(L, "table", a->tenants.table); set_str(L, "id", a->tenants.id);
        set_str(L, "workspace", a->tenants.workspace);
        push_row_filter(L, &a->tenants.row_filter););
    SUB("workspace_members", set_str(L, "table", a->workspace_members.table);
        set_str(L, "user", a->workspace_members.user);
        set_str(L, "workspace", a->workspace_members.workspace);
        set_str(L, "role", a->workspace_members.role););
    SUB("tenant_members", set_str(L, "table", a->tenant_members.table);
        set_str(L, "user", a->tenant_members.user); set_str(L, "tenant", a->tenant_members.tenant);
        set_str(L, "role", a->tenant_members.role););
    SUB("operation_runs", set_str(L, "table", a->operation_runs.table);
        set_str(L, "id", a->operation_runs.id); set_str(L, "type", a->operation_runs.type);
        set_str(L, "status", a->operation_runs.status);
        set_str(L, "workspace", a->operation_runs.workspace);
        set_str(L, "summary", a->operation_runs.summary);
        set_str(L, "created_at", a->operation_runs.created_at);
        set_str(L, "started_at", a->operation_runs.started_at);
        set_str(L, "finished_at", a->operation_runs.finished_at););
    SUB("audit_logs", set_str(L, "table", a->audit_logs.table); set_str(L, "id", a->audit_logs.id);
        set_str(L, "workspace", a->audit_logs.workspace); set_str(L, "tenant", a->audit_logs.tenant);
        set_str(L, "action", a->audit_logs.action); set_str(L, "subject", a->audit_logs.subject);
        set_str(L, "metadata", a->audit_logs.metadata);
        set_str(L, "created_at", a->audit_logs.created_at););
    SUB("role_grants", set_str(L, "table", a->role_grants.table);
        set_str(L, "role", a->role_grants.role);
        set_str(L, "capability", a->role_grants.capability););
    SUB("limits", set_int(L, "page_size", a->page_size);
        set_int(L, "max_page_size", a->max_page_size);
        set_int(L, "max_bulk_ids", a->max_bulk_ids););
#undef SUB
}

void tgl_push_rules(lua_State *L, const tg_rules *r) {
    lua_createtable(L, 0, 10);
    set_str(L, "version", r->version);
    set_str(L, "dir", r->dir);
    set_int(L, "files", (lua_Integer)r->n_files);
    push_app(L, &r->app);
    lua_setfield(L, -2, "app");
    push_str_array(L, r->capabilities, r->n_capabilities);
    lua_setfield(L, -2, "capabilities");

    lua_createtable(L, 0, (int)r->n_roles);
    for (size_t i = 0; i < r->n_roles; i++) {
        lua_newtable(L);
        int k = 0;
        for (size_t c = 0; c < r->n_capabilities; c++) {
            if (r->roles[i].grants[c / 64] >> (c % 64) & 1) {
                lua_pushstring(L, r->capabilities[c]);
                lua_rawseti(L, -2, ++k);
            }
        }
        lua_setfield(L, -2, r->roles[i].name);
    }
    lua_setfield(L, -2, "roles");

    lua_createtable(L, (int)r->n_families, 0);
    for (size_t i = 0; i < r->n_families; i++) {
        push_family(L, r, &r->families[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "families");

    lua_createtable(L, (int)r->n_scenarios, 0);
    for (size_t i = 0; i < r->n_scenarios; i++) {
        const tg_scenario *s = &r->scenarios[i];
        lua_createtable(L, 0, 7);
        set_str(L, "family_name", r->families[s->family].name);
        set_str(L, "scenario_type", tg_scenario_type_name(s->scenario_type));
        push_outcome(L, s->expected_outcome);
        lua_setfield(L, -2, "expected_outcome");
        set_str(L, "surface_class", s->surface_class);
        set_str(L, "notes", s->notes);
        lua_pushboolean(L, s->declared);
        lua_setfield(L, -2, "declared");
        set_where(L, s->where);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "scenarios");

    lua_createtable(L, (int)r->n_exceptions, 0);
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        lua_createtable(L, 0, 8);
        set_str(L, "name", e->name);
        set_str(L, "exception_kind", tg_exception_kind_name(e->exception_kind));
        set_str(L, "table", e->table);
        if (e->table)
            set_columns(L, &e->columns);
        set_str(L, "surface", e->surface);
        set_str(L, "why_excepted", e->why_excepted);
        lua_newtable(L);
        int k = 0;
        for (unsigned bit = 1; bit <= TG_CHECK_CAPABILITY; bit <<= 1)
            if (e->still_required_checks & bit) {
                lua_pushstring(L, tg_check_name(bit));
                lua_rawseti(L, -2, ++k);
            }
        lua_setfield(L, -2, "still_required_checks");
        if (e->capability >= 0)
            set_str(L, "capability", r->capabilities[e->capability]);
        set_where(L, e->where);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "exceptions");

    lua_createtable(L, (int)r->n_residuals, 0);
    for (size_t i = 0; i < r->n_residuals; i++) {
        const tg_residual *x = &r->residuals[i];
        lua_createtable(L, 0, 5);
        set_str(L, "name", x->name);
        set_str(L, "table", x->table);
        set_columns(L, &x->columns);
        set_str(L, "likely_surface", x->likely_surface);
        set_str(L, "why_not_in_first_slice", x->why_not_in_first_slice);
        set_where(L, x->where);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "residuals");
}

void tgl_new_class(lua_State *L, const char *name, const luaL_Reg *meta,
                   const luaL_Reg *methods) {
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    if (strcmp(name, TG_ENGINE_MT) == 0)
    {
        tgl_engine_rollout_methods(L);
        tgl_engine_matrix_methods(L);
        tgl_engine_citus_methods(L);
    }
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}
