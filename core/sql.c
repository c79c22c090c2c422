/* SQL text generation for the SQLite dialect. See sql.h for the parameter numbering. */
#include "sql.h"

#include <stdarg.h>
#include <string.h>

static void sqlite_ident(tg__buf *b, const char *name) {
    /* names were validated as plain identifiers; quoting is the second line of defence */
    tg__buf_add(b, "\"");
    for (const char *p = name; *p; p++) {
        if (*p == '"')
            tg__buf_add(b, "\"\"");
        else
            tg__buf_addn(b, p, 1);
    }
    tg__buf_add(b, "\"");
}

static void sqlite_param(tg__buf *b, int n) { tg__buf_printf(b, "?%d", n); }

/* '' itself, were it a key, is never listed: TEXT affinity turns any lower bound into text */
static const char *lowest_empty(const char *decltype) {
    (void)decltype;
    return "";
}

/* The largest integer key of a column: values stored as integers only (a text key in an
 * INTEGER column is no integer). */
static void sqlite_fx_max_int(tg__buf *b, const char *table, const char *column) {
    tg__sqlf(b, &tg__sqlite,
             "SELECT coalesce(max(CASE WHEN typeof(%I) = 'integer' THEN %I END), 0) FROM %I",
             column, column, table);
}

const tg__dialect tg__sqlite = {
    .name = "sqlite",
    .ident = sqlite_ident,
    .param = sqlite_param,
    .like_escape = " ESCAPE '\\'",
    .defer_foreign_keys = "PRAGMA defer_foreign_keys = ON",
    .read_begin = "BEGIN",
    .write_begin = "BEGIN IMMEDIATE",
    .now = TG__SQL_NOW,
    .audit_ddl = "CREATE TABLE IF NOT EXISTS tenantguard_audit ("
                 "  id INTEGER PRIMARY KEY, action TEXT NOT NULL, subject TEXT,"
                 "  metadata TEXT NOT NULL, created_at TEXT NOT NULL)",
    .exact = "+",
    .binary = " COLLATE BINARY",
    .is = " IS ",
    .filter_close = ") = 1",
    .row_marker = "rowid",
    .foreign_by_join = 0,
    .null_key_gating = 1,
    .bulk_array = 0,
    .like_open = "",
    .like_close = "",
    .like_param_open = "",
    .like_param_close = "",
    .affinity = tg__affinity,
    .lowest_text = lowest_empty,
    .sql_columns = "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
    .sql_column_type = "SELECT name, type FROM pragma_table_info(?1) WHERE name = ?2",
    .sql_table_exists =
        "SELECT 1 FROM sqlite_schema WHERE type IN ('table', 'view') AND name = ?1",
    /* an ordinary table with a rowid that no column of that name hides (a view's rowid is
     * NULL, a WITHOUT ROWID or virtual table has none or its own) */
    .sql_has_row_marker =
        "SELECT count(*) = 1 AND sum(schema = 'main' AND type = 'table' AND wr = 0) = 1 AND NOT "
        "EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE lower(name) IN ('rowid', '_rowid_', "
        "'oid')) FROM pragma_table_list(?1)",
    .sql_drift = "SELECT m.name, coalesce("
                 " (SELECT f.\"from\" FROM pragma_foreign_key_list(m.name) f"
                 "  WHERE f.\"table\" = ?1 COLLATE NOCASE ORDER BY f.id, f.seq LIMIT 1),"
                 " (SELECT c.name FROM pragma_table_info(m.name) c, json_each(?2) j"
                 "  WHERE c.name = j.value COLLATE NOCASE ORDER BY c.cid LIMIT 1)),"
                 " EXISTS (SELECT 1 FROM pragma_foreign_key_list(m.name) f"
                 "  WHERE f.\"table\" = ?1 COLLATE NOCASE) "
                 "FROM sqlite_schema m "
                 "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
                 "AND m.name NOT LIKE 'tenantguard\\_%' ESCAPE '\\' ORDER BY m.name",
    .sql_is_view = "SELECT type = 'view' FROM sqlite_schema WHERE name = ?1 "
                   "AND type IN ('table', 'view')",
    /* its only PRIMARY KEY column (the rowid alias included), or NOT NULL with a
     * single-column UNIQUE index that is not partial */
    .sql_key_unique =
        "SELECT (SELECT count(*) FROM pragma_table_info(?1) WHERE pk > 0) = 1 "
        "AND EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE pk > 0 AND "
        "name = ?2 COLLATE NOCASE) OR EXISTS (SELECT 1 FROM "
        "pragma_table_info(?1) c, pragma_index_list(?1) l WHERE c.name = ?2 "
        "COLLATE NOCASE AND c.\"notnull\" AND l.\"unique\" AND NOT l.partial "
        "AND (SELECT count(*) FROM pragma_index_info(l.name)) = 1 AND "
        "(SELECT name FROM pragma_index_info(l.name)) = c.name)",
    .sql_key_unique_with =
        "SELECT EXISTS (SELECT 1 FROM pragma_index_list(?1) l WHERE l.\"unique\" AND NOT "
        "l.partial AND (SELECT count(*) FROM pragma_index_info(l.name)) = 2 AND (SELECT "
        "count(*) FROM pragma_index_info(l.name) i WHERE i.name = ?2 COLLATE NOCASE OR "
        "i.name = ?3 COLLATE NOCASE) = 2 AND (l.origin = 'pk' OR (SELECT count(*) FROM "
        "pragma_table_info(?1) c WHERE c.\"notnull\" AND (c.name = ?2 COLLATE NOCASE OR "
        "c.name = ?3 COLLATE NOCASE)) = 2))",
    .sql_fx_object = "SELECT type, sql FROM sqlite_schema WHERE name = ?1 COLLATE NOCASE "
                     "AND type IN ('table', 'view')",
    .sql_fx_columns = "SELECT name, coalesce(type, ''), \"notnull\", dflt_value IS NOT NULL, pk, "
                      "hidden <> 0 FROM pragma_table_xinfo(?1) ORDER BY cid",
    .sql_fx_unique = "SELECT ii.name FROM pragma_index_list(?1) il, pragma_index_info(il.name) ii "
                     "WHERE il.\"unique\" AND ii.name IS NOT NULL",
    .sql_fx_foreign_keys = "SELECT id, \"table\", \"from\", \"to\" FROM "
                           "pragma_foreign_key_list(?1) ORDER BY id, seq",
    .sql_fx_triggers = "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND "
                       "tbl_name = ?1 COLLATE NOCASE AND sql IS NOT NULL",
    .fx_insert = "INSERT OR ABORT INTO ",
    .fx_max_int = sqlite_fx_max_int,
    .sql_keys =
        "SELECT 'p', (SELECT group_concat(name, ',') FROM (SELECT name FROM "
        "pragma_table_info(?1) WHERE pk > 0 ORDER BY pk)), NULL, NULL, NULL "
        "WHERE EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE pk > 0) "
        "UNION ALL SELECT CASE l.origin WHEN 'u' THEN 'u' ELSE 'i' END, (SELECT "
        "group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(l.name) ORDER BY "
        "seqno)), NULL, NULL, CASE l.origin WHEN 'c' THEN l.name END "
        "FROM pragma_index_list(?1) l WHERE l.\"unique\" AND l.origin <> 'pk' "
        "UNION ALL SELECT 'f', group_concat(f.\"from\", ','), f.\"table\", "
        "group_concat(f.\"to\", ','), NULL FROM (SELECT * FROM pragma_foreign_key_list(?1) "
        "ORDER BY id, seq) f GROUP BY f.id",
    .sql_column_notnull = "SELECT \"notnull\" OR pk > 0 FROM pragma_table_info(?1) WHERE name = ?2",
};

/* ---- PostgreSQL ---- */

static void pg_param(tg__buf *b, int n) { tg__buf_printf(b, "$%d", n); }

/* PostgreSQL's type names, as format_type() writes them: integers take integer keys, the
 * character types and uuid text keys, bytea blobs; anything else any key as given. */
static int pg_affinity(const char *t) {
    if (!t || !*t)
        return TG__AFF_NONE;
    if (!strcmp(t, "bigint") || !strcmp(t, "integer") || !strcmp(t, "smallint"))
        return TG__AFF_INTEGER;
    if (!strcmp(t, "uuid"))
        return TG__AFF_UUID;
    if (!strcmp(t, "text") || !strcmp(t, "citext") ||
        !strncmp(t, "character", 9) || !strcmp(t, "name"))
        return TG__AFF_TEXT;
    if (!strcmp(t, "bytea"))
        return TG__AFF_BLOB;
    return TG__AFF_NUMERIC;
}

/* uuid takes no '' (the nil UUID is the lowest; it is never listed) */
static const char *pg_lowest_text(const char *t) {
    return t && !strcmp(t, "uuid") ? "00000000-0000-0000-0000-000000000000" : "";
}


#define TG__PG_COLUMNS                                                                           \
    "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a "    \
    "WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped "

/* The largest integer key of a column (typed: every value is one), as a bigint. */
static void pg_fx_max_int(tg__buf *b, const char *table, const char *column) {
    tg__sqlf(b, &tg__postgres, "SELECT CAST(coalesce(max(%I), 0) AS bigint) FROM %I", column,
             table);
}

const tg__dialect tg__postgres = {
    .name = "postgresql",
    .ident = sqlite_ident, /* the standard's double quotes */
    .param = pg_param,
    .like_escape = " ESCAPE '\\'",
    .defer_foreign_keys = "SET CONSTRAINTS ALL DEFERRED",
    .read_begin = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    .write_begin = "BEGIN",
    .now = "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS')",
    .audit_ddl = "CREATE TABLE IF NOT EXISTS tenantguard_audit ("
                 "  id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
                 "  action text NOT NULL, subject text, metadata text NOT NULL,"
                 "  created_at text NOT NULL)",
    .exact = "",
    .binary = "",
    .is = " IS NOT DISTINCT FROM ",
    .filter_close = ")",
    .row_marker = NULL,
    .foreign_by_join = 1,
    .null_key_gating = 0,
    .bulk_array = 1,
    .like_open = "lower(CAST(",
    .like_close = " AS text) COLLATE \"C\")",
    .like_param_open = "lower(",
    .like_param_close = " COLLATE \"C\")",
    .affinity = pg_affinity,
    .lowest_text = pg_lowest_text,
    .sql_columns = TG__PG_COLUMNS "ORDER BY a.attnum",
    .sql_column_type = TG__PG_COLUMNS "AND a.attname = $2",
    .sql_table_exists = "SELECT 1 WHERE to_regclass(quote_ident($1)) IS NOT NULL",
    .sql_rls_on = "SELECT CAST(c.relrowsecurity AS integer) FROM pg_catalog.pg_class c "
                  "WHERE c.oid = to_regclass(quote_ident($1))",
    /* tables and partitioned tables have ctid; views do not */
    .sql_has_row_marker = "SELECT CAST(c.relkind IN ('r', 'p') AS integer) FROM "
                          "pg_catalog.pg_class c WHERE c.oid = to_regclass(quote_ident($1))",
    /* the tables of the schemas on the search path (partitions through their parent) */
    .sql_drift =
        "SELECT c.relname, coalesce("
        " (SELECT a.attname FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_attribute a"
        "  ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1] WHERE k.conrelid = c.oid"
        "  AND k.contype = 'f' AND k.confrelid = to_regclass(quote_ident($1))"
        "  ORDER BY k.conname LIMIT 1),"
        " (SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid"
        "  AND a.attnum > 0 AND NOT a.attisdropped AND lower(a.attname) IN"
        "  (SELECT lower(j) FROM json_array_elements_text(CAST($2 AS json)) j)"
        "  ORDER BY a.attnum LIMIT 1)),"
        " CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid"
        "  AND k.contype = 'f' AND k.confrelid = to_regclass(quote_ident($1))) AS integer) "
        "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname = ANY (current_schemas(false))"
        " AND c.relname NOT LIKE 'tenantguard\\_%' ESCAPE '\\' ORDER BY c.relname",
    .sql_is_view = "SELECT CAST(c.relkind IN ('v', 'm') AS integer) FROM pg_catalog.pg_class c "
                   "WHERE c.oid = to_regclass(quote_ident($1))",
    .sql_key_unique =
        "SELECT CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique AND i.indnatts = 1"
        " AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = $2"
        " AND i.indisvalid AND i.indimmediate AND i.indcollation[0] = a.attcollation"
        " AND (i.indisprimary OR a.attnotnull)) AS integer)",
    .sql_key_unique_with =
        "SELECT CAST(EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
        " WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique AND i.indnkeyatts = 2"
        " AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid AND i.indimmediate"
        " AND (SELECT count(*) FROM"
        " pg_catalog.pg_attribute a WHERE a.attrelid = i.indrelid"
        " AND a.attnum IN (i.indkey[0], i.indkey[1]) AND a.attname IN ($2, $3)"
        " AND i.indcollation[CASE WHEN a.attnum = i.indkey[0] THEN 0 ELSE 1 END] ="
        " a.attcollation"
        " AND (i.indisprimary OR a.attnotnull)) = 2) AS integer)",
    .sql_fx_object =
        "SELECT CASE WHEN c.relkind IN ('v', 'm') THEN 'view' ELSE 'table' END,"
        " CASE WHEN c.relkind IN ('v', 'm')"
        " THEN 'CREATE VIEW ' || quote_ident(c.relname) || ' AS ' || pg_get_viewdef(c.oid)"
        " ELSE 'CREATE TABLE ' || quote_ident(c.relname) || ' (' || coalesce((SELECT"
        " string_agg('CONSTRAINT ' || quote_ident(k.conname) || ' ' ||"
        " pg_get_constraintdef(k.oid), ', ' ORDER BY k.conname) FROM pg_catalog.pg_constraint k"
        " WHERE k.conrelid = c.oid AND k.contype = 'c'), '') || ')' END "
        "FROM pg_catalog.pg_class c WHERE c.oid = to_regclass(quote_ident($1))",
    .sql_fx_columns =
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), CAST(a.attnotnull AS integer),"
        " CAST(a.atthasdef OR a.attidentity <> '' AS integer),"
        " coalesce((SELECT array_position(k.conkey, a.attnum) FROM pg_catalog.pg_constraint k"
        "  WHERE k.conrelid = a.attrelid AND k.contype = 'p'), 0),"
        " CAST(a.attgenerated <> '' OR a.attidentity = 'a' AS integer) "
        "FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass(quote_ident($1))"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    .sql_fx_unique =
        "SELECT a.attname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a"
        " ON a.attrelid = i.indrelid AND a.attnum = ANY (CAST(i.indkey AS int2[]))"
        " WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique",
    .sql_fx_foreign_keys =
        "SELECT CAST(dense_rank() OVER (ORDER BY k.conname) AS integer) - 1, f.relname,"
        " a.attname, af.attname FROM pg_catalog.pg_constraint k"
        " JOIN pg_catalog.pg_class f ON f.oid = k.confrelid"
        " CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS u(c, fc, seq)"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.c"
        " JOIN pg_catalog.pg_attribute af ON af.attrelid = k.confrelid AND af.attnum = u.fc"
        " WHERE k.conrelid = to_regclass(quote_ident($1)) AND k.contype = 'f'"
        " ORDER BY k.conname, u.seq",
    .sql_fx_triggers = "SELECT pg_get_triggerdef(t.oid) FROM pg_catalog.pg_trigger t"
                       " WHERE t.tgrelid = to_regclass(quote_ident($1)) AND NOT t.tgisinternal",
    .fx_insert = "INSERT INTO ",
    .fx_max_int = pg_fx_max_int,
    .sql_keys =
        "SELECT CAST(k.contype AS text), (SELECT string_agg(a.attname, ',' ORDER BY x.n) FROM"
        " unnest(k.conkey) WITH ORDINALITY x(attnum, n) JOIN pg_catalog.pg_attribute a"
        " ON a.attrelid = k.conrelid AND a.attnum = x.attnum),"
        " (SELECT CAST(c.relname AS text) FROM pg_catalog.pg_class c WHERE c.oid = k.confrelid),"
        " (SELECT string_agg(a.attname, ',' ORDER BY x.n) FROM"
        " unnest(k.confkey) WITH ORDINALITY x(attnum, n) JOIN pg_catalog.pg_attribute a"
        " ON a.attrelid = k.confrelid AND a.attnum = x.attnum), CAST(k.conname AS text) "
        "FROM pg_catalog.pg_constraint k WHERE k.conrelid = to_regclass(quote_ident($1))"
        " AND k.contype IN ('p', 'u', 'f') "
        "UNION ALL SELECT 'i', (SELECT string_agg(coalesce(a.attname, '(expression)'), ','"
        " ORDER BY x.n) FROM unnest(CAST(i.indkey AS int2[])) WITH ORDINALITY x(attnum, n)"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum ="
        " x.attnum), NULL, NULL, (SELECT CAST(c.relname AS text) FROM pg_catalog.pg_class c"
        " WHERE c.oid = i.indexrelid) FROM pg_catalog.pg_index i"
        " WHERE i.indrelid = to_regclass(quote_ident($1)) AND i.indisunique AND NOT EXISTS"
        " (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid"
        " AND k.conrelid = i.indrelid)",
    .sql_column_notnull = "SELECT CAST(a.attnotnull AS integer) FROM pg_catalog.pg_attribute a"
                          " WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attname = $2"
                          " AND NOT a.attisdropped",
};

static void col(const tg__dialect *d, tg__buf *b, const char *alias, const char *name) {
    if (alias) {
        tg__buf_add(b, alias);
        tg__buf_add(b, ".");
    }
    d->ident(b, name);
}

static void select_all(const tg__dialect *d, const tg__table_shape *t, tg__buf *b) {
    tg__buf_add(b, "SELECT ");
    for (int i = 0; i < t->n_columns; i++) {
        if (i)
            tg__buf_add(b, ", ");
        col(d, b, "r", t->columns[i]);
    }
    tg__buf_add(b, " FROM ");
    d->ident(b, t->table);
    tg__buf_add(b, " AS r");
}

int tg__filter_n_values(const tg_row_filter *f) {
    size_t n = 0;
    for (size_t i = 0; f && i < f->n_conds; i++)
        n += f->conds[i].n_values;
    return (int)n;
}

int tg__sql_filter_param(const tg_app *app, int which) {
    int p = TG__P_FILTER;
    if (which > TG__FILTER_TENANTS)
        p += tg__filter_n_values(&app->tenants.row_filter);
    if (which > TG__FILTER_WORKSPACES)
        p += tg__filter_n_values(&app->workspaces.row_filter);
    return p;
}

void tg__sql_filter(const tg__dialect *d, const tg_row_filter *f, const char *alias, int first,
                    tg__buf *b) {
    static const char *const ops[TG_FILTER_OP_COUNT] = {
        " IS NULL", " IS NOT NULL", " = ", " <> ", " < ", " <= ", " > ", " >= ", " IN (",
        " NOT IN ("};
    int n = first;
    if (!f || !f->n_conds)
        return;
    /* one term, (c1 AND c2 ...) = 1, true exactly when every condition is: its left side is
     * no column, so the planner never trades the id or tenant index it uses for an index on
     * a filtered column (archived = 0 would walk most of a table), while each comparison
     * keeps the column's affinity (a unary + would drop it and change what = means) */
    tg__buf_add(b, " AND (");
    for (size_t i = 0; i < f->n_conds; i++) {
        const tg_filter_cond *c = &f->conds[i];
        if ((unsigned)c->op >= TG_FILTER_OP_COUNT) {
            b->oom = true; /* never guess a condition: the statement is not run */
            return;
        }
        if (i)
            tg__buf_add(b, " AND ");
        col(d, b, alias, c->column);
        tg__buf_add(b, ops[c->op]);
        for (size_t k = 0; k < c->n_values; k++) {
            if (k)
                tg__buf_add(b, ", ");
            d->param(b, n++);
        }
        if (c->op == TG_FILTER_IN || c->op == TG_FILTER_NOT_IN)
            tg__buf_add(b, ")");
    }
    tg__buf_add(b, d->filter_close);
}

static void record_filter(const tg__dialect *d, const tg__table_shape *t, const char *alias,
                          tg__buf *b) {
    tg__sql_filter(d, t->filter, alias, t->filter_param, b);
}

void tg__sql_by_id(const tg__dialect *d, const tg__table_shape *t, tg__buf *b) {
    select_all(d, t, b);
    tg__buf_add(b, " WHERE ");
    col(d, b, "r", t->id);
    tg__buf_add(b, " = ");
    d->param(b, 1);
    record_filter(d, t, "r", b);
}

/* The row's presence marker (see tg__table_shape.mark). */
static void row_mark(const tg__dialect *d, tg__buf *b, const char *alias, const char *mark,
                     const char *fallback) {
    if (mark && (strcmp(mark, "rowid") == 0 || strcmp(mark, "ctid") == 0))
        tg__sqlf(b, d, "%s.%s", alias, mark); /* the pseudo-column: never a quoted name */
    else
        tg__sqlf(b, d, "%s.%I", alias, mark ? mark : fallback);
}

/* ", CASE ... END": the workspace of row r's tenant when that tenant is not parameter
 * `tenant`, else NULL. The unary + drops the column's affinity, so "is not the route
 * tenant" and the lookup compare by storage class and value, as C and a bound key do: the
 * text '10' is not the integer tenant 10. The lookup runs only for a foreign row. */
static void foreign_workspace(const tg__dialect *d, const tg_app *a, const tg__table_shape *t,
                              int tenant, int r_may_be_null, tg__buf *b) {
    if (t->pin_tenant) {
        tg__buf_add(b, ", NULL"); /* a pinned read never sees a foreign row */
        return;
    }
    if (r_may_be_null)
        /* no row, a row without a tenant or no route tenant (read only with one): NULL <> is
         * not true, nothing is looked up */
        tg__sqlf(b, d, ", CASE WHEN %sr.%I <> %P THEN (", d->exact, t->tenant, tenant);
    else
        tg__sqlf(b, d, ", CASE WHEN %sr.%I%s%P THEN NULL ELSE (", d->exact, t->tenant, d->is,
                 tenant);
    tg__sqlf(b, d, "SELECT tg_ft.%I FROM %I AS tg_ft WHERE tg_ft.%I = %sr.%I",
             a->tenants.workspace, a->tenants.table, a->tenants.id, d->exact, t->tenant);
    tg__sql_filter(d, &a->tenants.row_filter, "tg_ft",
                   tg__sql_filter_param(a, TG__FILTER_TENANTS), b);
    tg__buf_add(b, ") END");
}

/* " AND r.tenant = $n" after a by-id condition when the shape pins its tenant (for a bulk,
 * "r.tenant = $n AND " before it: the caller places it) */
static void pin_tenant(const tg__dialect *d, const tg__table_shape *t, int tenant, tg__buf *b) {
    if (!t->pin_tenant)
        return;
    const char *lead = t->pin_tenant == 1 ? d->exact : "";
    if (tenant == TG__P_BULK_TENANT)
        tg__sqlf(b, d, "%sr.%I = %P AND ", lead, t->tenant, tenant);
    else
        tg__sqlf(b, d, " AND %sr.%I = %P", lead, t->tenant, tenant);
}

static void select_all_foreign(const tg__dialect *d, const tg__table_shape *t, const tg_app *a,
                               int tenant, tg__buf *b) {
    tg__buf_add(b, "SELECT ");
    for (int i = 0; i < t->n_columns; i++) {
        if (i)
            tg__buf_add(b, ", ");
        col(d, b, "r", t->columns[i]);
    }
    foreign_workspace(d, a, t, tenant, 0, b);
    tg__buf_add(b, " FROM ");
    d->ident(b, t->table);
    tg__buf_add(b, " AS r");
}

void tg__sql_record(const tg__dialect *d, const tg_app *app, const tg__table_shape *t,
                    tg__buf *b) {
    select_all_foreign(d, t, app, TG__P_TENANT, b);
    tg__buf_add(b, " WHERE ");
    col(d, b, "r", t->id);
    tg__buf_add(b, " = ");
    d->param(b, TG__P_ID);
    pin_tenant(d, t, TG__P_TENANT, b);
    record_filter(d, t, "r", b);
}

void tg__sql_by_ids(const tg__dialect *d, const tg__table_shape *t, const tg_app *app,
                    tg__buf *b) {
    if (app)
        select_all_foreign(d, t, app, TG__P_BULK_TENANT, b);
    else
        select_all(d, t, b);
    tg__buf_add(b, " WHERE ");
    if (app)
        pin_tenant(d, t, TG__P_BULK_TENANT, b);
    col(d, b, "r", t->id);
    if (d->bulk_array) {
        tg__sqlf(b, d, " = ANY(%P)", 1);
    } else {
        tg__buf_add(b, " IN (");
        for (int i = 1; i <= TG__BULK_CHUNK; i++) {
            if (i > 1)
                tg__buf_add(b, ", ");
            d->param(b, i);
        }
        tg__buf_add(b, ")");
    }
    record_filter(d, t, "r", b);
    /* in key order on every backend: the first refused row gives a bulk its reason, and the
     * rows served come in the same order (SQLite walks an IN list in order anyway) */
    tg__buf_add(b, " ORDER BY ");
    col(d, b, "r", t->id);
}

/* " AND (r.ws IS NULL OR r.ws = ?2)": a row whose own workspace disagrees is never listed */
static void workspace_agrees(const tg__dialect *d, const tg__table_shape *t, tg__buf *b) {
    if (!t->workspace)
        return;
    tg__buf_add(b, " AND (");
    col(d, b, "r", t->workspace);
    tg__buf_add(b, " IS NULL OR ");
    col(d, b, "r", t->workspace);
    tg__buf_add(b, " = ");
    d->param(b, TG__P_WORKSPACE);
    tg__buf_add(b, ")");
}

static void keyset_tail(const tg__dialect *d, const tg__table_shape *t, tg__buf *b) {
    tg__buf_add(b, " AND ");
    col(d, b, "r", t->id);
    tg__buf_add(b, " > ");
    d->param(b, TG__P_AFTER);
    tg__buf_add(b, " ORDER BY ");
    col(d, b, "r", t->id);
    tg__buf_add(b, " LIMIT ");
    d->param(b, TG__P_LIMIT);
}

void tg__sql_tenant_page(const tg__dialect *d, const tg__table_shape *t, const tg_app *app,
                         const char *via, const char *const *search_columns, size_t n_search,
                         int widen, tg__buf *b) {
    select_all(d, t, b);
    tg__buf_add(b, " WHERE ");
    if (widen == 2 && app) {
        tg__sqlf(b, d, "r.%I IN (SELECT %I FROM %I WHERE %I = %P)", t->tenant, app->tenants.id,
                 app->tenants.table, app->tenants.workspace, TG__P_WORKSPACE);
    } else {
        tg__buf_add(b, widen == 1 ? "(" : "");
        col(d, b, "r", t->tenant);
        tg__buf_add(b, " = ");
        d->param(b, TG__P_TENANT);
        tg__buf_add(b, widen == 1 ? " OR 1 = 1)" : ""); /* a boolean on every backend */
    }
    workspace_agrees(d, t, b);
    record_filter(d, t, "r", b);
    if (via) {
        tg__buf_add(b, " AND ");
        col(d, b, "r", via);
        tg__buf_add(b, " = ");
        d->param(b, TG__P_OWNER);
    }
    if (n_search) {
        tg__buf_add(b, " AND (");
        for (size_t i = 0; i < n_search; i++) {
            if (i)
                tg__buf_add(b, " OR ");
            tg__buf_add(b, d->like_open);
            col(d, b, "r", search_columns[i]);
            tg__buf_add(b, d->like_close);
            tg__buf_add(b, " LIKE ");
            tg__buf_add(b, d->like_param_open);
            d->param(b, TG__P_LIKE);
            tg__buf_add(b, d->like_param_close);
            tg__buf_add(b, d->like_escape);
        }
        tg__buf_add(b, ")");
    }
    keyset_tail(d, t, b);
}

void tg__sql_workspace_page(const tg__dialect *d, const tg__table_shape *t, const tg_app *app,
                            int entitled_only, int tenant_only, tg__buf *b) {
    select_all(d, t, b);
    tg__buf_add(b, " WHERE ");
    /* the row's workspace: its own column when it has one, and through its tenant too */
    int conds = 0;
    if (t->workspace) {
        col(d, b, "r", t->workspace);
        tg__buf_add(b, " = ");
        d->param(b, TG__P_WORKSPACE);
        conds++;
    }
    if (t->tenant) {
        if (conds++)
            tg__buf_add(b, " AND ");
        tg__buf_add(b, "(");
        if (t->workspace) {
            col(d, b, "r", t->tenant);
            tg__buf_add(b, " IS NULL OR ");
        }
        tg__buf_add(b, "EXISTS (SELECT 1 FROM ");
        d->ident(b, app->tenants.table);
        tg__buf_add(b, " AS t WHERE ");
        col(d, b, "t", app->tenants.id);
        tg__buf_add(b, " = ");
        col(d, b, "r", t->tenant);
        tg__buf_add(b, " AND ");
        col(d, b, "t", app->tenants.workspace);
        tg__buf_add(b, " = ");
        d->param(b, TG__P_WORKSPACE);
        tg__sql_filter(d, &app->tenants.row_filter, "t",
                       tg__sql_filter_param(app, TG__FILTER_TENANTS), b);
        tg__buf_add(b, "))");
        if (tenant_only) {
            tg__buf_add(b, " AND ");
            col(d, b, "r", t->tenant);
            tg__buf_add(b, " = ");
            d->param(b, TG__P_TENANT);
        }
        if (entitled_only) {
            tg__buf_add(b, " AND (");
            col(d, b, "r", t->tenant);
            tg__buf_add(b, " IS NULL OR ");
            col(d, b, "r", t->tenant);
            tg__buf_add(b, " IN (SELECT ");
            col(d, b, "m", app->tenant_members.tenant);
            tg__buf_add(b, " FROM ");
            d->ident(b, app->tenant_members.table);
            tg__buf_add(b, " AS m WHERE ");
            col(d, b, "m", app->tenant_members.user);
            tg__buf_add(b, " = ");
            d->param(b, TG__P_USER);
            tg__buf_add(b, "))");
        }
    }
    if (!conds)
        tg__buf_add(b, "0"); /* no way to place a row in a workspace: nothing is listed */
    keyset_tail(d, t, b);
}

/* A membership row's role column (NULL when the role is NULL or not mapped), beside its
 * presence marker: C tells "not a member", "a member without a role" and any role name
 * apart, which costs less there than in SQL. `alias` is the joined membership table. */
static void role_of(const tg__dialect *d, tg__buf *b, const char *alias, const char *role) {
    if (role)
        tg__sqlf(b, d, "%s.%I", alias, role);
    else
        tg__buf_add(b, "NULL");
}

/* The caller's membership row of the workspace: tg_wm's condition. */
static void membership(const tg__dialect *d, const tg_app *a, tg__buf *b) {
    tg__sqlf(b, d, "tg_wm.%I = %P AND tg_wm.%I = %P", a->workspace_members.user, TG__P_USER,
             a->workspace_members.workspace, TG__P_WORKSPACE);
    if (a->workspaces.row_filter.n_conds) {
        /* a filtered-out workspace has no members */
        tg__sqlf(b, d, " AND EXISTS (SELECT 1 FROM %I AS tg_w WHERE tg_w.%I = %P",
                 a->workspaces.table, a->workspaces.id, TG__P_WORKSPACE);
        tg__sql_filter(d, &a->workspaces.row_filter, "tg_w",
                       tg__sql_filter_param(a, TG__FILTER_WORKSPACES), b);
        tg__buf_add(b, ")");
    }
}

/* The scope as one chain of LEFT JOINs from a single row, each an index lookup: cheaper
 * to run than one scalar subquery per fact. Gated (m->gate), each join runs only when the
 * one before it found its row: the tenant once the caller is a member, the entitlement once
 * the tenant is the workspace's (compared here under SQL's rules only to skip work; C
 * compares the returned workspace by type and value), the record once entitled. */
static void scope_select(const tg__dialect *d, const tg_app *a, int with_workspace,
                         const tg__table_shape *record, const tg__scope_marks *m, tg__buf *b) {
    static const tg__scope_marks user_columns = {NULL, NULL, 1, 0, NULL};
    if (!m)
        m = &user_columns;
    int gate = m->gate && with_workspace;
    tg__buf_add(b, "SELECT ");
    if (with_workspace) {
        /* gated, the membership is the statement's first table: no row, not a member */
        if (gate)
            tg__buf_add(b, "1");
        else
            row_mark(d, b, "tg_wm", m->workspace_member, a->workspace_members.user);
        tg__buf_add(b, ", ");
        role_of(d, b, "tg_wm", a->workspace_members.role);
        tg__buf_add(b, ", ");
    }
    int ws_in_sql = gate && m->workspace_in_sql;
    if (ws_in_sql)
        row_mark(d, b, "tg_t", m->tenant, a->tenants.id);
    else
        tg__sqlf(b, d, "tg_t.%I", a->tenants.workspace);
    tg__buf_add(b, ", ");
    row_mark(d, b, "tg_tm", m->tenant_member, a->tenant_members.user);
    tg__buf_add(b, ", ");
    role_of(d, b, "tg_tm", a->tenant_members.role);
    for (int i = 0; record && i < record->n_columns; i++)
        tg__sqlf(b, d, ", r.%I", record->columns[i]);
    if (record && d->foreign_by_join && !record->pin_tenant)
        tg__sqlf(b, d, ", tg_ft.%I", a->tenants.workspace);
    else if (record)
        foreign_workspace(d, a, record, TG__P_TENANT, 1, b);
    /* gated, the membership drives the statement (its lookup in the WHERE clause: no
     * coroutine for a one-row table, no marker to gate the tenants lookup on) */
    if (gate)
        tg__sqlf(b, d, " FROM %I AS tg_wm", a->workspace_members.table);
    else
        tg__buf_add(b, " FROM (SELECT 1) AS tg_one");
    if (with_workspace && !gate) {
        tg__buf_add(b, " LEFT JOIN ");
        d->ident(b, a->workspace_members.table);
        tg__buf_add(b, " AS tg_wm ON ");
        membership(d, a, b);
    }
    tg__sqlf(b, d, " LEFT JOIN %I AS tg_t ON ", a->tenants.table);
    tg__sqlf(b, d, "tg_t.%I = %P", a->tenants.id, TG__P_TENANT);
    tg__sql_filter(d, &a->tenants.row_filter, "tg_t", tg__sql_filter_param(a, TG__FILTER_TENANTS),
                   b);
    /* the unary + drops the column's affinity and COLLATE BINARY its collation: storage
     * class and bytes, as C compares */
    if (ws_in_sql)
        tg__sqlf(b, d, " AND %stg_t.%I = %P%s", d->exact, a->tenants.workspace, TG__P_WORKSPACE,
                 d->binary);
    /* Gated, a lookup's key is NULL when the check before it failed ("CASE WHEN passed
     * THEN key END"): SQLite tests an equality key for NULL before it seeks, so a failed
     * check costs the rest of the chain a jump, where a condition beside the key would be
     * tested only after the seek. */
    tg__sqlf(b, d, " LEFT JOIN %I AS tg_tm ON ", a->tenant_members.table);
    if (!d->null_key_gating) {
        /* the check before, as a join condition */
        if (ws_in_sql) {
            row_mark(d, b, "tg_t", m->tenant, a->tenants.id);
            tg__buf_add(b, " IS NOT NULL AND ");
        } else if (gate)
            tg__sqlf(b, d, "tg_t.%I = %P AND ", a->tenants.workspace, TG__P_WORKSPACE);
    }
    tg__sqlf(b, d, "tg_tm.%I = %P AND tg_tm.%I = ", a->tenant_members.user, TG__P_USER,
             a->tenant_members.tenant);
    if (ws_in_sql && d->null_key_gating) {
        tg__buf_add(b, "CASE WHEN ");
        row_mark(d, b, "tg_t", m->tenant, a->tenants.id);
        tg__sqlf(b, d, " IS NOT NULL THEN %P END", TG__P_TENANT);
    } else if (gate && d->null_key_gating)
        tg__sqlf(b, d, "CASE WHEN tg_t.%I = %P THEN %P END", a->tenants.workspace,
                 TG__P_WORKSPACE, TG__P_TENANT);
    else
        tg__sqlf(b, d, "%P", TG__P_TENANT);
    if (record) {
        tg__sqlf(b, d, " LEFT JOIN %I AS r ON ", record->table);
        if (gate && !d->null_key_gating) {
            row_mark(d, b, "tg_tm", m->tenant_member, a->tenant_members.user);
            tg__buf_add(b, " IS NOT NULL AND ");
        }
        tg__sqlf(b, d, "r.%I = ", record->id);
        if (gate && d->null_key_gating) {
            tg__buf_add(b, "CASE WHEN ");
            row_mark(d, b, "tg_tm", m->tenant_member, a->tenant_members.user);
            tg__sqlf(b, d, " IS NOT NULL THEN %P END", TG__P_ID);
        } else
            tg__sqlf(b, d, "%P", TG__P_ID);
        pin_tenant(d, record, TG__P_TENANT, b);
        record_filter(d, record, "r", b);
        if (d->foreign_by_join && !record->pin_tenant) {
            /* a foreign record's tenant, for its workspace (the reason of the 404) */
            tg__sqlf(b, d, " LEFT JOIN %I AS tg_ft ON r.%I <> %P AND tg_ft.%I = r.%I",
                     a->tenants.table, record->tenant, TG__P_TENANT, a->tenants.id,
                     record->tenant);
            tg__sql_filter(d, &a->tenants.row_filter, "tg_ft",
                           tg__sql_filter_param(a, TG__FILTER_TENANTS), b);
        }
    }
    if (gate) {
        tg__buf_add(b, " WHERE ");
        membership(d, a, b);
    }
}

void tg__sql_scope(const tg__dialect *d, const tg_app *a, const tg__scope_marks *m, tg__buf *b) {
    scope_select(d, a, 1, NULL, m, b);
}

void tg__sql_scope_and_record(const tg__dialect *d, const tg_app *app, const tg__table_shape *t,
                              const tg__scope_marks *m, tg__buf *b) {
    scope_select(d, app, 1, t, m, b);
}

void tg__sql_entitlement(const tg__dialect *d, const tg_app *a, tg__buf *b) {
    scope_select(d, a, 0, NULL, NULL, b);
}

void tg__sql_insert(const tg__dialect *d, const char *table, const char *const *cols, size_t n,
                    tg__buf *b) {
    tg__buf_add(b, "INSERT INTO ");
    d->ident(b, table);
    tg__buf_add(b, " (");
    for (size_t i = 0; i < n; i++) {
        if (i)
            tg__buf_add(b, ", ");
        d->ident(b, cols[i]);
    }
    tg__buf_add(b, ") VALUES (");
    for (size_t i = 0; i < n; i++) {
        if (i)
            tg__buf_add(b, ", ");
        d->param(b, (int)i + 1);
    }
    tg__buf_add(b, ")");
}

void tg__sql_update(const tg__dialect *d, const char *table, const char *const *cols, size_t n,
                    const char *id, const char *tenant, tg__buf *b) {
    tg__buf_add(b, "UPDATE ");
    d->ident(b, table);
    tg__buf_add(b, " SET ");
    for (size_t i = 0; i < n; i++) {
        if (i)
            tg__buf_add(b, ", ");
        d->ident(b, cols[i]);
        tg__buf_add(b, " = ");
        d->param(b, (int)i + 1);
    }
    tg__buf_add(b, " WHERE ");
    d->ident(b, id);
    tg__buf_add(b, " = ");
    d->param(b, (int)n + 1);
    if (!tenant)
        return; /* only the matrix's mutation check builds this */
    tg__buf_add(b, " AND ");
    d->ident(b, tenant);
    tg__buf_add(b, " = ");
    d->param(b, (int)n + 2);
}

void tg__like_contains(tg__buf *b, const char *s, size_t len) {
    tg__buf_add(b, "%");
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
            tg__buf_add(b, "\\");
        tg__buf_addn(b, s + i, 1);
    }
    tg__buf_add(b, "%");
}

void tg__sqlf_(tg__buf *b, const tg__dialect *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            const char *q = strchr(p, '%');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            tg__buf_addn(b, p, n);
            p += n - 1;
            continue;
        }
        p++;
        if (*p == 'I') {
            d->ident(b, va_arg(ap, const char *));
        } else if (*p == 's') {
            tg__buf_add(b, va_arg(ap, const char *));
        } else if (*p == 'L') {
            /* a string literal: quotes doubled */
            const char *v = va_arg(ap, const char *);
            tg__buf_add(b, "'");
            for (; *v; v++)
                tg__buf_add(b, *v == '\'' ? "''" : (char[2]){*v, 0});
            tg__buf_add(b, "'");
        } else if (*p == 'd') {
            tg__buf_printf(b, "%d", va_arg(ap, int));
        } else if (*p == 'P') {
            /* the n-th positional parameter, as the dialect writes it (?n, $n) */
            d->param(b, va_arg(ap, int));
        } else if (strncmp(p, "lld", 3) == 0) {
            tg__buf_printf(b, "%lld", va_arg(ap, long long));
            p += 2;
        } else if (*p == '%') {
            tg__buf_add(b, "%");
        } else {
            /* not a conversion of ours (e.g. strftime's %Y pasted into the format): never
             * guess; the statement is not run */
            b->oom = true;
            break;
        }
    }
    va_end(ap);
}
