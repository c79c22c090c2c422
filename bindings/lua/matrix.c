/* The matrix methods of tenantguard.Engine: matrix() and run_matrix([mutation]). */
#include "binding.h"

static void set_str(lua_State *L, const char *k, const char *v) {
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void push_outcome(lua_State *L, int o) {
    if (o == TG_OUTCOME_HIDDEN)
        lua_pushstring(L, "hidden_or_disabled_without_side_effect");
    else
        lua_pushinteger(L, o);
}

static void push_report(lua_State *L, const tg_matrix_report *r, int with_results) {
    lua_createtable(L, (int)r->n_results, 4);
    for (size_t i = 0; i < r->n_results; i++) {
        const tg_matrix_result *res = &r->results[i];
        const tg_matrix_row *row = &res->row;
        lua_createtable(L, 0, 13);
        set_str(L, "family", row->family);
        lua_pushboolean(L, row->is_exception);
        lua_setfield(L, -2, "is_exception");
        set_str(L, "scenario_type", tg_scenario_type_name(row->scenario_type));
        set_str(L, "path", tg_path_type_name(row->path));
        push_outcome(L, row->expected_outcome);
        lua_setfield(L, -2, "expected_outcome");
        set_str(L, "surface_class", row->surface_class);
        set_str(L, "notes", row->notes);
        lua_pushboolean(L, row->declared);
        lua_setfield(L, -2, "declared");
        if (with_results) {
            lua_pushboolean(L, res->pass);
            lua_setfield(L, -2, "pass");
            push_outcome(L, res->actual_outcome);
            lua_setfield(L, -2, "actual_outcome");
            set_str(L, "message", res->message);
            lua_createtable(L, (int)res->n_checks, 0);
            for (size_t k = 0; k < res->n_checks; k++) {
                const tg_matrix_check *c = &res->checks[k];
                lua_createtable(L, 0, 8);
                set_str(L, "actor", c->actor);
                set_str(L, "what", c->what);
                push_outcome(L, c->expected);
                lua_setfield(L, -2, "expected");
                lua_pushinteger(L, c->actual);
                lua_setfield(L, -2, "actual");
                set_str(L, "reason", c->reason);
                lua_pushboolean(L, c->pass);
                lua_setfield(L, -2, "pass");
                set_str(L, "failure", c->failure);
                set_str(L, "row", c->row);
                lua_rawseti(L, -2, (lua_Integer)k + 1);
            }
            lua_setfield(L, -2, "checks");
            lua_pushnumber(L, res->seconds);
            lua_setfield(L, -2, "seconds");
        }
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (with_results) {
        lua_pushinteger(L, (lua_Integer)r->passed);
        lua_setfield(L, -2, "passed");
        lua_pushinteger(L, (lua_Integer)r->failed);
        lua_setfield(L, -2, "failed");
        set_str(L, "mutation", r->mutation);
        set_str(L, "not_applicable", r->not_applicable);
    }
}

/* eng:matrix() -> { {family =, scenario_type =, path =, expected_outcome =, ...}, ... } */
static int l_matrix(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    tg_matrix_report *r = NULL;
    int st = tg_matrix(e->eng, &r);
    if (st != TG_OK)
        return luaL_error(L, "%s", tg_engine_errmsg(e->eng));
    push_report(L, r, 0);
    tg_matrix_free(r);
    return 1;
}

/* eng:run_matrix([mutation]) -> the rows with pass, actual_outcome, message, checks, and
 * passed / failed counts */
static int l_run_matrix(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    const char *mutation = tgl_opt_cstring(L, 2);
    tg_matrix_report *r = NULL;
    /* the decision log runs on this call's state; the engine may not close meanwhile */
    lua_State *prev = e->L;
    e->L = L;
    e->working++;
    e->in_matrix++;
    int st = tg_run_matrix(e->eng, mutation, &r);
    e->in_matrix--;
    e->working--;
    e->L = prev;
    if (st != TG_OK) {
        if (st == TG_UNKNOWN || st == TG_MISUSE)
            return luaL_error(L, "%s", tg_engine_errmsg(e->eng));
        luaL_pushfail(L);
        lua_pushstring(L, tg_engine_errmsg(e->eng));
        return 2;
    }
    push_report(L, r, 1);
    tg_matrix_free(r);
    return 1;
}

/* tg.mutations() -> { {name =, description =}, ... } */
int tgl_mutations(lua_State *L) {
    lua_newtable(L);
    const char *desc;
    const char *name;
    for (size_t i = 0; (name = tg_mutation_name(i, &desc)) != NULL; i++) {
        lua_createtable(L, 0, 2);
        set_str(L, "name", name);
        set_str(L, "description", desc);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

void tgl_engine_matrix_methods(lua_State *L) {
    static const luaL_Reg methods[] = {
        {"matrix", l_matrix}, {"run_matrix", l_run_matrix}, {NULL, NULL}};
    luaL_setfuncs(L, methods, 0);
}
