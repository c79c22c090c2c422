/* All conversion between Lua values and C values of the tenantguard module. Integers stay
 * 64-bit integers both ways. */
#include "binding.h"

#include <string.h>

const char *tgl_opt_string_field(lua_State *L, int idx, const char *key, const char *def) {
    int t = lua_getfield(L, idx, key);
    const char *s = def;
    size_t len;
    if (t == LUA_TSTRING) {
        s = lua_tolstring(L, -1, &len);
        /* C strings end at a zero byte: a name or query holding one would be cut short */
        if (strlen(s) != len)
            luaL_error(L, "option '%s' contains a zero byte", key);
    } else if (t != LUA_TNIL)
        luaL_error(L, "option '%s' must be a string, got %s", key, luaL_typename(L, -1));
    lua_pop(L, 1); /* the string stays referenced by the options table */
    return s;
}

lua_Integer tgl_opt_integer_field(lua_State *L, int idx, const char *key, lua_Integer def) {
    int t = lua_getfield(L, idx, key);
    lua_Integer v = def;
    if (t == LUA_TNUMBER && lua_isinteger(L, -1))
        v = lua_tointeger(L, -1);
    else if (t != LUA_TNIL)
        luaL_error(L, "option '%s' must be an integer, got %s", key,
                   t == LUA_TNUMBER ? "a fraction" : luaL_typename(L, -1));
    lua_pop(L, 1);
    return v;
}

void tgl_check_open_options(lua_State *L, int idx, tg_open_options *o) {
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(o, 0, sizeof *o);
    o->db = tgl_opt_string_field(L, idx, "db", NULL);
    o->rules = tgl_opt_string_field(L, idx, "rules", NULL);
    if (!o->rules)
        luaL_error(L, "option 'rules' is required: a directory of rule files");
    o->busy_timeout_ms = (int)tgl_opt_integer_field(L, idx, "busy_timeout", 0);
    o->instruction_budget = tgl_opt_integer_field(L, idx, "instruction_budget", 0);
    o->memory_cap = (size_t)tgl_opt_integer_field(L, idx, "memory_cap", 0);
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
        set_str(L, "level", it->level == TG_LEVEL_ERROR ? "error" : "warning");
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
    case TG_TEXT: lua_pushstring(L, v->s); break;
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

void tgl_push_decision(lua_State *L, const tg_decision *d, int single) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, d->status);
    lua_setfield(L, -2, "status");
    lua_pushstring(L, d->reason);
    lua_setfield(L, -2, "reason");
    if (d->row_id) {
        lua_pushinteger(L, d->row_id);
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
        if (d->n_records) {
            lua_pushinteger(L, d->next_after);
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

static void push_family(lua_State *L, const tg_rules *r, const tg_family *f) {
    lua_createtable(L, 0, 16);
    set_str(L, "name", f->name);
    set_str(L, "table", f->table);
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
    SUB("workspaces", set_str(L, "table", a->workspaces.table); set_str(L, "id", a->workspaces.id););
    SUB("tenants", set_str(L, "table", a->tenants.table); set_str(L, "id", a->tenants.id);
        set_str(L, "workspace", a->tenants.workspace););
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
    }
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}
