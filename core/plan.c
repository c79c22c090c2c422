/* Plans: table shapes and prepared statements per rule version. */
#include "plan.h"
#include "catalog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- keys ---- */

static int has_word(const char *s, const char *w) {
    size_t n = strlen(w);
    for (; *s; s++)
        if (strncasecmp(s, w, n) == 0)
            return 1;
    return 0;
}

int tg__affinity(const char *decltype) {
    if (!decltype || !*decltype)
        return TG__AFF_NONE;
    if (has_word(decltype, "INT"))
        return TG__AFF_INTEGER;
    if (has_word(decltype, "CHAR") || has_word(decltype, "CLOB") || has_word(decltype, "TEXT"))
        return TG__AFF_TEXT;
    if (has_word(decltype, "BLOB"))
        return TG__AFF_BLOB;
    return TG__AFF_NUMERIC;
}

int tg__column_affinity(tg__db *db, const char *table, const char *column) {
    tg__stmt *st = NULL;
    int aff = TG__AFF_NONE;
    if (!db || !table || !column ||
        tg__st_prepare_once(db, db->dialect->sql_column_type, &st) != TG__ST_OK)
        return aff;
    tg__st_bind_str(st, 1, table);
    tg__st_bind_str(st, 2, column);
    if (tg__st_step(st) == TG__ST_ROW)
        aff = db->dialect->affinity(tg__st_column_text(st, 1));
    tg__st_finalize(st);
    return aff;
}

const char *tg__value_type_name(int type) {
    switch (type) {
    case TG_NULL: return "null";
    case TG_INTEGER: return "integer";
    case TG_REAL: return "real";
    case TG_TEXT: return "text";
    case TG_BOOLEAN: return "boolean";
    case TG_BLOB: return "blob";
    default: return "unknown";
    }
}

/* The form PostgreSQL prints a uuid in: the server would take other forms too (upper case,
 * braces, no hyphens) and then match a row whose key C compares byte for byte as different,
 * so only this one is a key. */
static int canonical_uuid(const tg_value *v) {
    const char *s = v->s;
    size_t n = s ? (v->n ? v->n : strlen(s)) : 0;
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        int hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

int tg__key_check(const tg__keycol *kc, const char *field, const tg_value *in, tg_value *out,
                  char *msg, size_t msg_size) {
    static const char *const want[] = {"an integer, text or blob", "an integer", "a text",
                                       "a blob (or text)", "an integer, text or blob",
                                       "a UUID (text, lowercase 8-4-4-4-12 hex digits)"};
    *out = *in;
    int ok;
    switch (kc->aff) {
    case TG__AFF_INTEGER: ok = in->type == TG_INTEGER; break;
    case TG__AFF_TEXT: ok = in->type == TG_TEXT; break;
    case TG__AFF_UUID: ok = in->type == TG_TEXT && canonical_uuid(in); break;
    case TG__AFF_BLOB: ok = in->type == TG_BLOB || in->type == TG_TEXT; break;
    default: ok = in->type == TG_INTEGER || in->type == TG_TEXT || in->type == TG_BLOB;
    }
    if (ok && in->type != TG_INTEGER && !in->s && in->n)
        ok = 0; /* bytes promised, none given */
    if (!ok) {
        snprintf(msg, msg_size, "%s: expected %s key for %s.%s, got %s", field, want[kc->aff],
                 kc->table ? kc->table : "?", kc->column ? kc->column : "?",
                 tg__value_type_name(in->type));
        return -1;
    }
    if (in->type == TG_TEXT) {
        if (!in->s)
            out->s = "";
        if (!out->n)
            out->n = strlen(out->s);
        if (kc->aff == TG__AFF_BLOB)
            out->type = TG_BLOB;
    } else if (in->type == TG_BLOB && !in->s) {
        out->s = "";
    }
    return 0;
}

int tg__col_eq_bytes(tg__stmt *st, int col, int type, const tg_value *v) {
    if (type != TG__T_TEXT && type != TG__T_BLOB)
        return 0;
    if (v->type != (type == TG__T_TEXT ? TG_TEXT : TG_BLOB))
        return 0;
    const void *p = type == TG__T_TEXT ? (const void *)tg__st_column_text(st, col)
                                        : tg__st_column_blob(st, col);
    size_t n = (size_t)tg__st_column_bytes(st, col);
    return n == v->n && (n == 0 || (p && memcmp(p, v->s, n) == 0));
}

int tg__value_cmp(const tg_value *a, const tg_value *b) {
    if (a->type != b->type)
        return a->type < b->type ? -1 : 1;
    if (a->type == TG_INTEGER || a->type == TG_BOOLEAN)
        return (a->i > b->i) - (a->i < b->i);
    if (a->type == TG_REAL)
        return (a->r > b->r) - (a->r < b->r);
    if (a->type == TG_TEXT || a->type == TG_BLOB) {
        size_t n = a->n < b->n ? a->n : b->n;
        int c = n ? memcmp(a->s, b->s, n) : 0;
        return c ? (c < 0 ? -1 : 1) : (a->n > b->n) - (a->n < b->n);
    }
    return 0;
}

int tg__value_eq(const tg_value *a, const tg_value *b) {
    return a->type != TG_NULL && tg__value_cmp(a, b) == 0;
}

void tg__key_from_col(tg__stmt *st, int col, tg__buf *buf, tg_value *out) {
    memset(out, 0, sizeof *out);
    tg__buf_reset(buf);
    switch (tg__st_column_type(st, col)) {
    case TG__T_INTEGER:
        out->type = TG_INTEGER;
        out->i = tg__st_column_int64(st, col);
        return;
    case TG__T_TEXT:
    case TG__T_BLOB: {
        int text = tg__st_column_type(st, col) == TG__T_TEXT;
        const void *p = text ? (const void *)tg__st_column_text(st, col)
                             : tg__st_column_blob(st, col);
        size_t n = (size_t)tg__st_column_bytes(st, col);
        tg__buf_addn(buf, p ? p : "", n);
        tg__buf_addn(buf, "", 1);
        if (buf->oom)
            return; /* TG_NULL: never equal to anything, never in scope */
        out->type = text ? TG_TEXT : TG_BLOB;
        out->s = buf->p;
        out->n = n;
        return;
    }
    default: return;
    }
}

int tg__key_coerces(int aff, const tg_value *v) {
    if (aff == TG__AFF_INTEGER || aff == TG__AFF_NUMERIC)
        return v->type == TG_TEXT;
    if (aff == TG__AFF_TEXT)
        return v->type == TG_INTEGER;
    return 0;
}

/* ---- plans ---- */

/* "rowid" when `table` is an ordinary table with a rowid that no column of that name hides,
 * else NULL (a view's rowid is NULL, a WITHOUT ROWID or virtual table has none or its own):
 * a statement reading it to tell a row exists then copies no text key. */
static const char *rowid_mark(tg__db *db, const char *table) {
    tg__stmt *st = NULL;
    int ok = 0;
    if (!db->dialect->row_marker)
        return NULL;
    if (table && tg__st_prepare_once(db, db->dialect->sql_has_row_marker, &st) == TG__ST_OK) {
        tg__st_bind_str(st, 1, table);
        ok = tg__st_step(st) == TG__ST_ROW && (int)tg__st_column_int64(st, 0) == 1; /* one, a table */
    }
    tg__st_finalize(st);
    return ok ? db->dialect->row_marker : NULL;
}

/* Reads the columns of `table` into the shape. Returns 0 when the table does not exist. */
static int read_shape(tg__plan *p, tg__table_plan *tp, const char *table,
                      const tg_columns *names) {
    tg__stmt *st = NULL;
    tp->col_id = tp->col_tenant = tp->col_workspace = -1;
    tp->names = names;
    tp->shape.table = table;
    if (tg__st_prepare_once(p->db, p->db->dialect->sql_columns, &st) != TG__ST_OK)
        return -1;
    tg__st_bind_str(st, 1, table);
    size_t cap = 16, n = 0;
    const char **cols = tg__arena_alloc(&p->arena, cap * sizeof *cols);
    unsigned char *affs = tg__arena_alloc(&p->arena, cap);
    int rc;
    while (cols && affs && (rc = tg__st_step(st)) == TG__ST_ROW) {
        if (n == cap) {
            const char **more = tg__arena_alloc(&p->arena, cap * 2 * sizeof *more);
            unsigned char *more_affs = tg__arena_alloc(&p->arena, cap * 2);
            if (!more || !more_affs) {
                cols = NULL;
                break;
            }
            memcpy(more, cols, n * sizeof *cols);
            memcpy(more_affs, affs, n);
            cols = more;
            affs = more_affs;
            cap *= 2;
        }
        const char *name = (const char *)tg__st_column_text(st, 0);
        cols[n] = tg__arena_strdup(&p->arena, name);
        const char *decl = tg__st_column_text(st, 1);
        affs[n] = (unsigned char)p->db->dialect->affinity(decl);
        if (strcmp(name, names->id) == 0 && (affs[n] == TG__AFF_TEXT || affs[n] == TG__AFF_UUID))
            tp->id_key.lowest = p->db->dialect->lowest_text(decl);
        if (!cols[n]) {
            cols = NULL;
            break;
        }
        if (strcmp(name, names->id) == 0)
            tp->col_id = (int)n;
        else if (strcmp(name, names->tenant) == 0)
            tp->col_tenant = (int)n;
        else if (strcmp(name, names->workspace) == 0)
            tp->col_workspace = (int)n;
        n++;
    }
    tg__st_finalize(st);
    if (!cols || !affs)
        return -1;
    tp->affs = affs;
    tp->id_key.table = table;
    tp->id_key.column = names->id; /* the table's own key column (per-table names) */
    tp->id_key.aff = tp->col_id >= 0 ? affs[tp->col_id] : TG__AFF_NONE;
    tp->shape.columns = cols;
    tp->shape.n_columns = (int)n;
    tp->shape.id = tp->col_id >= 0 ? cols[tp->col_id] : NULL;
    tp->shape.tenant = tp->col_tenant >= 0 ? cols[tp->col_tenant] : NULL;
    tp->shape.workspace = tp->col_workspace >= 0 ? cols[tp->col_workspace] : NULL;
    tp->present = n > 0;
    tp->shape.mark = tp->present ? rowid_mark(p->db, table) : NULL;
    if (tp->present) {
        tg__stmt *v = NULL;
        if (tg__st_prepare_once(p->db, p->db->dialect->sql_is_view, &v) != TG__ST_OK)
            return -1;
        tg__st_bind_str(v, 1, table);
        int vrc = tg__st_step(v);
        tp->is_view = vrc == TG__ST_ROW && tg__st_column_int64(v, 0) == 1;
        tg__st_finalize(v);
        if (vrc != TG__ST_ROW && vrc != TG__ST_DONE)
            return -1; /* never a view taken for a table by a failed read */
    }
    if (tp->present && tp->shape.id && tp->shape.tenant) {
        int k = tg__key_kind(p->db, table, tp->shape.id, tp->shape.tenant);
        if (k < 0)
            return -1;
        tp->key_with_tenant = k == 2;
        tp->shape.pin_tenant = tp->key_with_tenant ? 2 : p->db->distributed ? 1 : 0;
    }
    return tp->present;
}

/* The requirement for a declared capability index (-1: none declared). */
static int need_of(int capability, int mutation) {
    if (capability >= 0)
        return capability;
    return mutation == TG__MUT_CAPABILITY_LESS_PATH_GRANTS ? TG__NEED_NOTHING : TG__NEED_DENY;
}

int tg__plan_new(tg__ruleset *rs, tg__db *db, unsigned schema_gen, int mutation, tg__buf *err,
                 tg__plan **out) {
    *out = NULL;
    tg__plan *p = calloc(1, sizeof *p);
    if (!p)
        return TG_NOMEM;
    p->refs = 1;
    p->rs = tg__ruleset_retain(rs);
    p->db = db;
    p->schema_gen = schema_gen;
    p->mutation = mutation;
    const tg_rules *r = &rs->pub;
    const tg_app *a = &r->app;
    const tg__keycol keys[] = {
        {a->workspace_members.table, a->workspace_members.user, 0, NULL},
        {a->tenant_members.table, a->tenant_members.user, 0, NULL},
        {a->workspaces.table, a->workspaces.id, 0, NULL},
        {a->tenants.table, a->tenants.id, 0, NULL},
    };
    tg__keycol *slots[] = {&p->user_keys[0], &p->user_keys[1], &p->workspace_key,
                           &p->tenant_key};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        *slots[i] = keys[i];
        slots[i]->aff = tg__column_affinity(db, keys[i].table, keys[i].column);
    }
    p->marks.workspace_member = rowid_mark(db, a->workspace_members.table);
    p->marks.tenant_member = rowid_mark(db, a->tenant_members.table);
    p->marks.gate = mutation == TG__MUT_NONE; /* a mutant skips a check: it needs every fact */
    {
        int aff = tg__column_affinity(db, a->tenants.table, a->tenants.workspace);
        p->marks.workspace_in_sql =
            aff == TG__AFF_INTEGER || aff == TG__AFF_TEXT || aff == TG__AFF_UUID;
        p->marks.tenant = rowid_mark(db, a->tenants.table);
    }
    /* row-level security on any family table: decisions set the tenant per statement */
    for (size_t i = 0; db->dialect->sql_rls_on && i < r->n_families && !p->rls; i++) {
        tg__stmt *q = NULL;
        if (tg__st_prepare_once(db, db->dialect->sql_rls_on, &q) == TG__ST_OK) {
            tg__st_bind_str(q, 1, r->families[i].table);
            p->rls = tg__st_step(q) == TG__ST_ROW && tg__st_column_int64(q, 0) == 1;
        }
        tg__st_finalize(q);
    }
    p->fams = tg__arena_alloc(&p->arena, (r->n_families + 1) * sizeof *p->fams);
    p->excs = tg__arena_alloc(&p->arena, (r->n_exceptions + 1) * sizeof *p->excs);
    if (!p->fams || !p->excs) {
        tg__plan_release(p);
        return TG_NOMEM;
    }
    for (size_t i = 0; i < r->n_families; i++) {
        const tg_family *f = &r->families[i];
        int ok = read_shape(p, &p->fams[i], f->table, &f->columns);
        if (ok <= 0 || p->fams[i].col_id < 0 || p->fams[i].col_tenant < 0) {
            tg__buf_printf(err, "family '%s': table '%s' %s", f->name, f->table,
                           ok < 0    ? "cannot be read"
                           : ok == 0 ? "does not exist"
                                     : "lacks its id or tenant column");
            tg__plan_release(p);
            return ok < 0 ? TG_NOMEM : TG_DB;
        }
        for (int k = 0; k < TG_PATH_COUNT; k++)
            p->fams[i].need[k] = need_of(f->paths[k].capability, mutation);
        p->fams[i].shape.filter = &f->row_filter;
        p->fams[i].shape.filter_param = tg__sql_filter_param(&r->app, TG__FILTER_RECORD);
    }
    for (size_t i = 0; i < r->n_exceptions; i++) {
        const tg_exception *e = &r->exceptions[i];
        /* the capability applies only when the exception lists the check (the compiler
         * requires a capability exactly then); without it, nobody passes */
        int cap = e->still_required_checks & TG_CHECK_CAPABILITY ? e->capability : -1;
        for (int k = 0; k < TG_PATH_COUNT; k++)
            p->excs[i].need[k] = need_of(cap, mutation);
        if (e->table && read_shape(p, &p->excs[i], e->table, &e->columns) < 0) {
            tg__plan_release(p);
            return TG_NOMEM;
        }
    }
    *out = p;
    return TG_OK;
}

tg__plan *tg__plan_retain(tg__plan *p) {
    if (p)
        p->refs++;
    return p;
}

static void finalize_table(tg__table_plan *tp) {
    tg__st_finalize(tp->by_id);
    tg__st_finalize(tp->by_ids);
    tg__st_finalize(tp->page);
    tg__st_finalize(tp->relation);
    tg__st_finalize(tp->search);
    tg__st_finalize(tp->first);
    tg__st_finalize(tp->record);
    for (int i = 0; i < 4; i++)
        tg__st_finalize(tp->ws_page[i]);
}

void tg__plan_release(tg__plan *p) {
    if (!p || --p->refs > 0)
        return;
    const tg_rules *r = &p->rs->pub;
    for (size_t i = 0; p->fams && i < r->n_families; i++)
        finalize_table(&p->fams[i]);
    for (size_t i = 0; p->excs && i < r->n_exceptions; i++)
        finalize_table(&p->excs[i]);
    tg__st_finalize(p->scope);
    tg__st_finalize(p->entitlement);
    for (int i = 0; i < TG__WCACHE; i++)
        tg__st_finalize(p->wcache[i].st);
    tg__ruleset_release(p->rs);
    tg__arena_free(&p->arena);
    free(p);
}

/* Binds the values of filter f, numbered from `first`, that statement st uses. */
static int bind_filter(tg__stmt *st, const tg_row_filter *f, int first) {
    int last = tg__st_param_count(st), n = first, rc = TG__ST_OK;
    for (size_t i = 0; f && i < f->n_conds && rc == TG__ST_OK; i++) {
        for (size_t k = 0; k < f->conds[i].n_values && rc == TG__ST_OK; k++, n++) {
            const tg_value *v = &f->conds[i].values[k];
            if (n > last || !tg__st_param_name(st, n))
                continue; /* not in this statement */
            switch (v->type) {
            case TG_INTEGER:
            case TG_BOOLEAN:
                rc = tg__st_bind_int64(st, n, v->type == TG_BOOLEAN ? !!v->i : v->i);
                break;
            case TG_REAL: rc = tg__st_bind_double(st, n, v->r); break;
            case TG_TEXT: /* the rules outlive the plan's statements */
                rc = tg__st_bind_text(st, n, v->s, v->n, 0);
                break;
            default: rc = TG__ST_MISUSE; /* the compiler makes no other value */
            }
        }
    }
    return rc;
}

/* The family plan whose statement slot this is, NULL for a statement of no family table. */
static const tg__table_plan *family_of(const tg__plan *p, tg__stmt *const *slot) {
    const char *at = (const char *)slot, *base = (const char *)p->fams;
    size_t n = p->rs->pub.n_families;
    if (!p->fams || at < base || at >= base + n * sizeof *p->fams)
        return NULL;
    return &p->fams[(size_t)(at - base) / sizeof *p->fams];
}

int tg__plan_prepare(tg__plan *p, tg__stmt **slot, const tg__buf *sql) {
    if (*slot)
        return TG__ST_OK;
    int rc = tg__st_prepare(p->db, tg__buf_str(sql), sql->len + 1,
                            TG__PREP_PERSISTENT | TG__PREP_SCOPED, slot);
    if (rc != TG__ST_OK || tg__st_param_count(*slot) < TG__P_FILTER)
        return rc;
    /* row filter values, bound once: the statement is reset between uses, never cleared */
    const tg_app *app = &p->rs->pub.app;
    const tg__table_plan *tp = family_of(p, slot);
    rc = bind_filter(*slot, &app->tenants.row_filter,
                     tg__sql_filter_param(app, TG__FILTER_TENANTS));
    if (rc == TG__ST_OK)
        rc = bind_filter(*slot, &app->workspaces.row_filter,
                         tg__sql_filter_param(app, TG__FILTER_WORKSPACES));
    if (rc == TG__ST_OK && tp)
        rc = bind_filter(*slot, tp->shape.filter, tp->shape.filter_param);
    if (rc != TG__ST_OK) {
        /* an unbound value would filter on NULL: never run such a statement */
        tg__st_finalize(*slot);
        *slot = NULL;
    }
    return rc;
}

int tg__plan_write_stmt(tg__plan *p, const tg__buf *sql, tg__stmt **out) {
    uint64_t h = tg__fnv1a(TG__FNV_INIT, tg__buf_str(sql), sql->len);
    for (int i = 0; i < TG__WCACHE; i++) {
        if (p->wcache[i].st && p->wcache[i].hash == h &&
            strcmp(tg__st_sql(p->wcache[i].st), tg__buf_str(sql)) == 0) {
            *out = p->wcache[i].st;
            return TG__ST_OK;
        }
    }
    unsigned slot = p->wnext++ % TG__WCACHE;
    tg__st_finalize(p->wcache[slot].st);
    p->wcache[slot].st = NULL;
    int rc = tg__st_prepare(p->db, tg__buf_str(sql), sql->len + 1,
                            TG__PREP_PERSISTENT | TG__PREP_SCOPED, &p->wcache[slot].st);
    p->wcache[slot].hash = h;
    *out = p->wcache[slot].st;
    return rc;
}
