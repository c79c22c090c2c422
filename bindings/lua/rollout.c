/* The rollout methods of tenantguard.Engine: rollout, backfill, work, run, control,
 * validate. Expected refusals (phase 3 while rows are unbound, a run that cannot be paused)
 * return nil, message, code; misuse raises. */
#include "binding.h"

#include <string.h>

static int fail(lua_State *L, lengine *e, int st) {
    if (st == TG_MISUSE || st == TG_UNKNOWN || st == TG_NOMEM) {
        lua_pushstring(L, tg_engine_errmsg(e->eng));
        return lua_error(L);
    }
    luaL_pushfail(L);
    lua_pushstring(L, tg_engine_errmsg(e->eng));
    lua_pushstring(L, tg_status_name(st));
    return 3;
}

/* eng:rollout(phase [, { lock_timeout_ms =, lock_retry_ms = }]) -> true, message
 * | nil, message, code */
static int l_rollout(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    const char *phase = tgl_check_cstring(L, 2);
    tg_rollout_options o = {0};
    if (!lua_isnoneornil(L, 3)) {
        static const char *const fields[] = {"lock_timeout_ms", "lock_retry_ms", NULL};
        const char *what = "rollout";
        int t = tgl_fields(L, 3, what, fields);
        lua_Integer v;
        if (tgl_field_integer(L, t, what, "lock_timeout_ms", 1, 3600000, &v))
            o.lock_timeout_ms = (int)v;
        if (tgl_field_integer(L, t, what, "lock_retry_ms", 1, 86400000, &v))
            o.lock_retry_ms = (int)v;
    }
    int st = tg_rollout_with(e->eng, phase, &o);
    if (st != TG_OK)
        return fail(L, e, st);
    lua_pushboolean(L, 1);
    lua_pushstring(L, tg_engine_errmsg(e->eng));
    return 2;
}

static void set_int(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void push_run(lua_State *L, const tg_run_info *r) {
    lua_createtable(L, 0, 12);
    set_int(L, "id", r->id);
    set_int(L, "operation_run", r->operation_run_id);
    lua_pushstring(L, r->status);
    lua_setfield(L, -2, "status");
    set_int(L, "rows_total", r->rows_total);
    set_int(L, "rows_done", r->rows_done);
    set_int(L, "rows_set", r->rows_set);
    set_int(L, "rows_corrected", r->rows_corrected);
    set_int(L, "rows_unbound", r->rows_unbound);
    set_int(L, "batches", r->batches);
    lua_pushnumber(L, r->longest_batch_ms);
    lua_setfield(L, -2, "longest_batch_ms");
    lua_pushnumber(L, r->seconds);
    lua_setfield(L, -2, "seconds");
}

/* eng:backfill{ dry_run = true } -> { tables = { {table =, rows =, ...} }, totals }
 * eng:backfill{ batch_ms =, pause_ms =, batch_rows = } -> the queued run */
static int l_backfill(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    int dry = 0;
    tg_backfill_options o = {0};
    if (!lua_isnoneornil(L, 2)) {
        static const char *const fields[] = {"dry_run", "batch_ms", "pause_ms", "batch_rows",
                                             NULL};
        const char *what = "backfill";
        int t = tgl_fields(L, 2, what, fields);
        lua_Integer v;
        tgl_field_boolean(L, t, what, "dry_run", &dry);
        tgl_field_number(L, t, what, "batch_ms", 3600e3, &o.batch_ms);
        if (tgl_field_integer(L, t, what, "pause_ms", 0, 3600000, &v))
            o.pause_ms = (int)v;
        if (tgl_field_integer(L, t, what, "batch_rows", 0, LUA_MAXINTEGER, &v))
            o.batch_rows = v;
    }
    if (dry) {
        tg_backfill_plan *p = NULL;
        int st = tg_backfill_dry_run(e->eng, &p);
        if (st != TG_OK)
            return fail(L, e, st);
        lua_createtable(L, 0, 2);
        lua_createtable(L, (int)p->n_tables, 0);
        tg_table_counts sum = {0};
        for (size_t i = 0; i < p->n_tables; i++) {
            const tg_table_counts *c = &p->tables[i];
            lua_createtable(L, 0, 10);
            lua_pushstring(L, c->table);
            lua_setfield(L, -2, "table");
            lua_pushboolean(L, c->has_column);
            lua_setfield(L, -2, "has_column");
            set_int(L, "rows", c->rows);
            set_int(L, "unbound", c->unbound);
            set_int(L, "would_set", c->would_set);
            set_int(L, "cannot_bind", c->cannot_bind);
            set_int(L, "correct", c->correct);
            set_int(L, "mismatched", c->mismatched);
            lua_createtable(L, (int)c->n_samples, 0);
            for (size_t k = 0; k < c->n_samples; k++) {
                lua_pushinteger(L, c->samples[k]);
                lua_rawseti(L, -2, (lua_Integer)k + 1);
            }
            lua_setfield(L, -2, "samples");
            lua_rawseti(L, -2, (lua_Integer)i + 1);
            sum.rows += c->rows;
            sum.unbound += c->unbound;
            sum.would_set += c->would_set;
            sum.cannot_bind += c->cannot_bind;
            sum.correct += c->correct;
            sum.mismatched += c->mismatched;
        }
        lua_setfield(L, -2, "tables");
        lua_createtable(L, 0, 6);
        set_int(L, "rows", sum.rows);
        set_int(L, "unbound", sum.unbound);
        set_int(L, "would_set", sum.would_set);
        set_int(L, "cannot_bind", sum.cannot_bind);
        set_int(L, "correct", sum.correct);
        set_int(L, "mismatched", sum.mismatched);
        lua_setfield(L, -2, "totals");
        tg_backfill_plan_free(p);
        return 1;
    }
    int64_t run = 0;
    int st = tg_backfill_start(e->eng, &o, &run);
    if (st != TG_OK)
        return fail(L, e, st);
    tg_run_info info;
    if ((st = tg_backfill_status(e->eng, run, &info)) != TG_OK)
        return fail(L, e, st);
    push_run(L, &info);
    return 1;
}

/* eng:run([id]) -> the run (latest by default), with up to `limit` unbound rows listed */
static int l_run(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    lua_Integer id = tgl_opt_integer(L, 2, 0);
    tg_run_info info;
    int st = tg_backfill_status(e->eng, id, &info);
    if (st != TG_OK)
        return fail(L, e, st);
    push_run(L, &info);
    return 1;
}

static int control(lua_State *L, const char *action) {
    lengine *e = tgl_check_engine(L, 1);
    lua_Integer id = tgl_opt_integer(L, 2, 0);
    int st = tg_backfill_control(e->eng, id, action);
    if (st != TG_OK)
        return fail(L, e, st);
    lua_pushboolean(L, 1);
    return 1;
}
static int l_pause(lua_State *L) { return control(L, "pause"); }
static int l_resume(lua_State *L) { return control(L, "resume"); }
static int l_cancel(lua_State *L) { return control(L, "cancel"); }

typedef struct work_cb {
    lua_State *L;
    int fn;      /* stack index of the progress function, 0: none */
    int failed;  /* the function raised: its error is at the stack top */
} work_cb;

static int call_progress(lua_State *L) {
    const tg_progress *p = lua_touserdata(L, 2);
    lua_pushvalue(L, 1);
    lua_createtable(L, 0, 10);
    set_int(L, "run", p->run_id);
    lua_pushstring(L, p->table);
    lua_setfield(L, -2, "table");
    set_int(L, "table_done", p->table_done);
    set_int(L, "table_total", p->table_total);
    set_int(L, "run_done", p->run_done);
    set_int(L, "run_total", p->run_total);
    set_int(L, "batch_rows", p->batch_rows);
    set_int(L, "next_batch_rows", p->next_batch_rows);
    lua_pushnumber(L, p->batch_ms);
    lua_setfield(L, -2, "batch_ms");
    lua_pushnumber(L, p->rows_per_second);
    lua_setfield(L, -2, "rows_per_second");
    lua_call(L, 1, 1);
    return 1;
}

/* Progress reaches Lua under lua_pcall; returning false stops the worker; an error stops it
 * and is raised once the batch in progress has committed. */
static int progress_cb(void *ud, const tg_progress *p) {
    work_cb *cb = ud;
    lua_State *L = cb->L;
    lua_pushcfunction(L, call_progress);
    lua_pushvalue(L, cb->fn);
    lua_pushlightuserdata(L, (void *)p);
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
        cb->failed = 1;
        return 1;
    }
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* eng:work{ progress = fn, max_seconds =, max_batches =, batch_ms =, max_replay_lag_ms =,
 *           replay_lag_sql = } -> { batches =, ... }
 * batch_ms: this worker's time target per batch, in place of the run's; max_replay_lag_ms and
 * replay_lag_sql: wait for the standbys (PostgreSQL; see tg_work_options) */
static int l_work(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    tg_work_options o = {0};
    work_cb cb = {L, 0, 0};
    if (!lua_isnoneornil(L, 2)) {
        static const char *const fields[] = {"progress",          "max_seconds",
                                             "max_batches",       "batch_ms",
                                             "max_replay_lag_ms", "replay_lag_sql", NULL};
        const char *what = "work";
        int t = tgl_fields(L, 2, what, fields);
        lua_Integer v;
        tgl_field_number(L, t, what, "max_seconds", 1e9, &o.max_seconds);
        if (tgl_field_integer(L, t, what, "max_batches", 0, LUA_MAXINTEGER, &v))
            o.max_batches = v;
        tgl_field_number(L, t, what, "batch_ms", 3600e3, &o.batch_ms);
        tgl_field_number(L, t, what, "max_replay_lag_ms", 1e9, &o.max_replay_lag_ms);
        o.replay_lag_sql = tgl_field_string(L, t, what, "replay_lag_sql");
        if ((cb.fn = tgl_field_function(L, t, what, "progress")) != 0) {
            o.progress = progress_cb;
            o.ud = &cb;
        }
    }
    if (e->working)
        return luaL_error(L, "the tenantguard engine is busy: work cannot run from a callback "
                             "of its own work or run_matrix");
    tg_work_result r;
    e->working++; /* its progress callback may not close the engine */
    int st = tg_work(e->eng, &o, &r);
    e->working--;
    if (cb.failed)
        return lua_error(L);
    if (st != TG_OK)
        return fail(L, e, st);
    lua_createtable(L, 0, 6);
    set_int(L, "batches", r.batches);
    set_int(L, "rows", r.rows);
    lua_pushnumber(L, r.longest_batch_ms);
    lua_setfield(L, -2, "longest_batch_ms");
    lua_pushboolean(L, r.idle);
    lua_setfield(L, -2, "idle");
    set_int(L, "lag_waits", r.lag_waits);
    lua_pushnumber(L, r.lag_wait_seconds);
    lua_setfield(L, -2, "lag_wait_seconds");
    return 1;
}

/* eng:validate() -> { ok =, checks = { {name =, table =, count =}, ... } } */
static int l_validate(lua_State *L) {
    lengine *e = tgl_check_engine(L, 1);
    tg_validation *v = NULL;
    int st = tg_validate(e->eng, &v);
    if (st != TG_OK)
        return fail(L, e, st);
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, v->ok);
    lua_setfield(L, -2, "ok");
    lua_createtable(L, (int)v->n_checks, 0);
    for (size_t i = 0; i < v->n_checks; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, v->checks[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, v->checks[i].table);
        lua_setfield(L, -2, "table");
        set_int(L, "count", v->checks[i].count);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "checks");
    tg_validation_free(v);
    return 1;
}

void tgl_engine_rollout_methods(lua_State *L) {
    static const luaL_Reg methods[] = {{"rollout", l_rollout}, {"backfill", l_backfill},
                                       {"work", l_work},       {"run", l_run},
                                       {"pause", l_pause},     {"resume", l_resume},
                                       {"cancel", l_cancel},   {"validate", l_validate},
                                       {NULL, NULL}};
    luaL_setfuncs(L, methods, 0);
}
