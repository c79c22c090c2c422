/* Roles granted by an application table: app.role_grants names a table of (role, capability)
 * rows the application already keeps. It is read once per load (open, reload, lint, check),
 * never per request, and merged into the compiled roles, so a decision looks roles up exactly
 * as it does for the rule files' roles. Every row is checked against the declared
 * capabilities: a row the rules cannot honour refuses the load, it is never a silent grant. */
#include "grants.h"
#include "names.h"
#include "sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct reader {
    tg__ruleset *rs;
    tg_findings *f;
    const tg_app *a;
    tg__arena tmp;    /* the maps below, freed at the end */
    tg__strmap caps;  /* capability name -> index */
    tg__strmap roles; /* role name -> index into the merged list */
    tg_role *added;   /* roles only the table names (malloc'd, grown) */
    size_t n_added, cap_added;
    size_t n_table_roles; /* distinct roles the table names */
    uint64_t hash;
    int oom;
} reader;

static void finding(reader *rd, tg_level level, const char *code, const char *fmt, ...)
    TG_PRINTF(4, 5);
static void finding(reader *rd, tg_level level, const char *code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__findings_add(rd->f, level, code, rd->a->where.file, rd->a->where.line, "app: %s", msg);
}

/* The grant set of role `name`, adding the role when only the table names it. NULL when
 * memory ran out. */
static uint64_t *role_grants_of(reader *rd, const char *name) {
    tg_rules *r = &rd->rs->pub;
    int i = tg__strmap_get(&rd->roles, name);
    if (i < 0) {
        if (rd->n_added == rd->cap_added) {
            size_t cap = rd->cap_added ? rd->cap_added * 2 : 16;
            tg_role *more = realloc(rd->added, cap * sizeof *more);
            if (!more) {
                rd->oom = 1;
                return NULL;
            }
            rd->added = more;
            rd->cap_added = cap;
        }
        tg_role *role = &rd->added[rd->n_added];
        role->name = tg__arena_strdup(&rd->rs->arena, name);
        role->grants = tg__arena_alloc(&rd->rs->arena, rd->rs->cap_words * sizeof(uint64_t));
        role->where = rd->a->where;
        if (!role->name || !role->grants) {
            rd->oom = 1;
            return NULL;
        }
        i = (int)(r->n_roles + rd->n_added++);
        tg__strmap_put(&rd->roles, role->name, i);
    }
    return (uint64_t *)((size_t)i < r->n_roles ? r->roles[i].grants
                                               : rd->added[(size_t)i - r->n_roles].grants);
}

/* Text of column col of the current row, NULL when it is NULL; *bad when it holds a NUL. */
static const char *cell(tg__stmt *st, int col, size_t *len, int *bad) {
    *bad = 0;
    *len = 0;
    if (tg__st_column_type(st, col) == TG__T_NULL)
        return NULL;
    const char *s = (const char *)tg__st_column_text(st, col);
    *len = (size_t)tg__st_column_bytes(st, col);
    if (s && strlen(s) != *len)
        *bad = 1;
    return s;
}

/* One row: checked, hashed into the version, granted. Returns 0 to stop reading. */
static int take_row(reader *rd, tg__stmt *st, tg__strmap *seen_roles) {
    const tg_rules *r = &rd->rs->pub;
    const char *table = rd->a->role_grants.table;
    size_t rlen, clen;
    int rbad, cbad;
    const char *role = cell(st, 0, &rlen, &rbad);
    const char *cap = cell(st, 1, &clen, &cbad);
    rd->hash = tg__fnv1a(rd->hash, role ? role : "", role ? rlen + 1 : 0);
    rd->hash = tg__fnv1a(rd->hash, "\1", 1);
    rd->hash = tg__fnv1a(rd->hash, cap ? cap : "", cap ? clen + 1 : 0);
    rd->hash = tg__fnv1a(rd->hash, "\2", 1);
    if (!role || rlen == 0 || rbad || rlen > TG__MAX_NAME_BYTES) {
        finding(rd, TG_LEVEL_ERROR, "bad_value",
                "role_grants: a row of %s has %s role (capability '%.128s'); every row must "
                "name a role of at most %d bytes",
                table,
                !role       ? "a NULL"
                : rlen == 0 ? "an empty"
                : rbad      ? "a binary"
                            : "a too long",
                cap ? cap : "NULL", TG__MAX_NAME_BYTES);
        return 1;
    }
    int ci = cap && !cbad ? tg__strmap_get(&rd->caps, cap) : -1;
    int all = cap && !cbad && strcmp(cap, "*") == 0;
    if (ci < 0 && !all) {
        finding(rd, TG_LEVEL_ERROR, "unknown_capability",
                "role_grants: the row ('%.128s', '%.128s') of %s grants role '%.128s' "
                "capability '%.128s', which is not declared in capabilities { ... }; declare "
                "it or delete the row",
                role, cap ? cap : "NULL", table, role, cap ? cap : "NULL");
        return 1;
    }
    /* the table's own role count, whether or not the rule files declare the role too */
    if (tg__strmap_get(seen_roles, role) < 0) {
        if (rd->n_table_roles == TG__MAX_GRANT_ROLES) {
            finding(rd, TG_LEVEL_ERROR, "limit_exceeded",
                    "role_grants: %s names more than %d roles (limit %d)", table,
                    TG__MAX_GRANT_ROLES, TG__MAX_GRANT_ROLES);
            return 0;
        }
        const char *key = tg__arena_strdup(&rd->tmp, role);
        if (!key) {
            rd->oom = 1;
            return 0;
        }
        tg__strmap_put(seen_roles, key, (int)rd->n_table_roles++);
    }
    uint64_t *g = role_grants_of(rd, role);
    if (!g)
        return 0;
    if (all) {
        for (size_t c = 0; c < r->n_capabilities; c++)
            g[c / 64] |= 1ull << (c % 64);
    } else {
        g[ci / 64] |= 1ull << (ci % 64);
    }
    return 1;
}

/* The warnings the compiler leaves to this point when grants come from the table: a
 * capability a path needs that no role grants, and one no role grants and no rule needs. */
static void warn_ungranted(reader *rd) {
    const tg_rules *r = &rd->rs->pub;
    size_t words = rd->rs->cap_words;
    uint64_t *granted = tg__arena_alloc(&rd->tmp, words * sizeof *granted);
    char *needed = tg__arena_alloc(&rd->tmp, r->n_capabilities + 1);
    if (!granted || !needed) {
        rd->oom = 1;
        return;
    }
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
            if (!(granted[ci / 64] >> (ci % 64) & 1))
                tg__findings_add(rd->f, TG_LEVEL_WARNING, "capability_never_granted",
                                 r->families[fi].where.file, r->families[fi].where.line,
                                 "family '%s': path '%s': capability '%s' is granted by no "
                                 "role (neither the rule files nor %s), so this path is always "
                                 "403",
                                 r->families[fi].name, tg__path_names[p], r->capabilities[ci],
                                 rd->a->role_grants.table);
        }
    for (size_t k = 0; k < r->n_exceptions; k++)
        if (r->exceptions[k].capability >= 0)
            needed[r->exceptions[k].capability] = 1;
    for (size_t ci = 0; ci < r->n_capabilities; ci++)
        if (!(granted[ci / 64] >> (ci % 64) & 1) && !needed[ci])
            finding(rd, TG_LEVEL_WARNING, "unused_capability",
                    "capability '%s' is granted by no role (neither the rule files nor %s) and "
                    "needed by no rule",
                    r->capabilities[ci], rd->a->role_grants.table);
}

/* Appends the roles only the table names to the rule set's list. */
static int merge_added(reader *rd) {
    tg_rules *r = &rd->rs->pub;
    if (!rd->n_added)
        return 1;
    tg_role *all = tg__arena_alloc(&rd->rs->arena, (r->n_roles + rd->n_added) * sizeof *all);
    if (!all)
        return 0;
    if (r->n_roles)
        memcpy(all, r->roles, r->n_roles * sizeof *all);
    memcpy(all + r->n_roles, rd->added, rd->n_added * sizeof *all);
    r->roles = all;
    r->n_roles += rd->n_added;
    return 1;
}

int tg__grants_read(tg__ruleset *rs, tg__db *db, tg_findings *f) {
    tg_rules *r = &rs->pub;
    const tg_app *a = &r->app;
    if (!db || !a->role_grants.table)
        return TG_OK;
    reader rd = {0};
    rd.rs = rs;
    rd.f = f;
    rd.a = a;
    rd.hash = tg__fnv1a(TG__FNV_INIT, r->version, strlen(r->version) + 1);
    size_t errors_before = tg_findings_errors(f);
    tg__stmt *st = NULL;
    tg__buf sql = {0};
    tg__strmap seen = {0};
    int status = TG_OK;
    if (!tg__strmap_init(&rd.caps, &rd.tmp, r->n_capabilities + 1) ||
        !tg__strmap_init(&rd.roles, &rd.tmp, r->n_roles + TG__MAX_GRANT_ROLES + 1) ||
        !tg__strmap_init(&seen, &rd.tmp, TG__MAX_GRANT_ROLES + 1)) {
        status = TG_NOMEM;
        goto cleanup;
    }
    for (size_t c = 0; c < r->n_capabilities; c++)
        tg__strmap_put(&rd.caps, r->capabilities[c], (int)c);
    for (size_t k = 0; k < r->n_roles; k++)
        tg__strmap_put(&rd.roles, r->roles[k].name, (int)k);
    /* ordered, so the same rows always hash to the same version; one past the limit, so a
     * table too large is noticed without reading all of it */
    tg__sqlf(&sql, db->dialect, "SELECT %I, %I FROM %I ORDER BY 1, 2 LIMIT %d", a->role_grants.role,
             a->role_grants.capability, a->role_grants.table, TG__MAX_GRANT_ROWS + 1);
    if (sql.oom) {
        status = TG_NOMEM;
        goto cleanup;
    }
    if (tg__st_prepare_once(db, tg__buf_str(&sql), &st) != TG__ST_OK) {
        finding(&rd, TG_LEVEL_ERROR, "file_error", "role_grants: cannot read %s: %s",
                a->role_grants.table, tg__db_errmsg(db));
        status = TG_RULES;
        goto cleanup;
    }
    size_t rows = 0;
    int rc;
    while ((rc = tg__st_step(st)) == TG__ST_ROW) {
        if (++rows > TG__MAX_GRANT_ROWS) {
            finding(&rd, TG_LEVEL_ERROR, "limit_exceeded",
                    "role_grants: %s has more than %d rows (limit %d)", a->role_grants.table,
                    TG__MAX_GRANT_ROWS, TG__MAX_GRANT_ROWS);
            break;
        }
        if (!take_row(&rd, st, &seen))
            break;
    }
    if (rd.oom) {
        status = TG_NOMEM;
        goto cleanup;
    }
    if (rc != TG__ST_ROW && rc != TG__ST_DONE) {
        finding(&rd, TG_LEVEL_ERROR, "file_error", "role_grants: cannot read %s: %s",
                a->role_grants.table, tg__db_errmsg(db));
        status = TG_RULES;
        goto cleanup;
    }
    if (tg_findings_errors(f) > errors_before) {
        status = TG_RULES;
        goto cleanup;
    }
    if (!merge_added(&rd)) {
        status = TG_NOMEM;
        goto cleanup;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)rd.hash);
    const char *version = tg__arena_strdup(&rs->arena, hex);
    if (!version) {
        status = TG_NOMEM;
        goto cleanup;
    }
    r->version = version;
    warn_ungranted(&rd);
    if (rd.oom)
        status = TG_NOMEM;
cleanup:
    tg__st_finalize(st);
    tg__buf_free(&sql);
    free(rd.added);
    tg__arena_free(&rd.tmp);
    return status;
}
