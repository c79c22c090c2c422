/* SQL generation behind one dialect-aware interface. Every statement text the library runs
 * against application tables is built here, from identifiers the rules validated (and that
 * are quoted again here) and numbered parameters; values are never pasted into SQL. */
#ifndef TG_SQL_H
#define TG_SQL_H

#include "util.h"

/* The affinity of a column's declared type, which says what a key of that column may be
 * (see tg__key_check). */
enum { TG__AFF_NONE, TG__AFF_INTEGER, TG__AFF_TEXT, TG__AFF_BLOB, TG__AFF_NUMERIC,
       /* PostgreSQL's uuid: text keys in the canonical form the server prints (lowercase,
        * 8-4-4-4-12 hex digits); anything else is refused before it reaches the server */
       TG__AFF_UUID };

/* SQLite's affinity rules for a declared type (plan.c). */
TG_HIDDEN int tg__affinity(const char *decltype);

typedef struct tg__dialect {
    const char *name;
    /* appends a quoted identifier */
    void (*ident)(tg__buf *b, const char *name);
    /* appends the n-th (1-based) positional parameter */
    void (*param)(tg__buf *b, int n);
    /* the clause that makes '\' the LIKE escape character */
    const char *like_escape;
    /* the statement that defers foreign key checks to the end of the transaction */
    const char *defer_foreign_keys;
    /* the statements that begin a read snapshot and a write transaction */
    const char *read_begin, *write_begin;
    /* the current time as SQL text (UTC, milliseconds, "2026-01-31 12:00:00.000"): an
     * expression, added through %s */
    const char *now;
    /* tenantguard's own audit log, for an application that keeps none */
    const char *audit_ddl;
    /* SQLite compares under affinity and collation rules: the unary "+" drops a column's
     * affinity and " COLLATE BINARY" its collation, so a comparison is by type and bytes, as
     * C compares. PostgreSQL's types compare exactly already: both empty. */
    const char *exact, *binary;
    const char *is; /* " IS " (NULL-safe equality), " IS NOT DISTINCT FROM " */
    /* closes a row filter's conjunction: ") = 1" on SQLite (see tg__sql_filter), ")" where a
     * boolean is no number */
    const char *filter_close;
    /* the pseudo-column every row of an ordinary table has (a presence marker that copies
     * no key): "rowid"; NULL: the row's key columns mark it (PostgreSQL's ctid would cost a
     * conversion to text in every row) */
    const char *row_marker;
    /* 1: the first decision names a foreign record's workspace through a join (LEFT JOIN
     * tenants ON the record's tenant is not the route's), where a correlated subquery costs
     * PostgreSQL its set-up on every execution; 0: a CASE with a subquery, evaluated only for
     * a foreign row (SQLite) */
    int foreign_by_join;
    /* 1: a gated lookup's key is NULL when the check before it failed (CASE WHEN ... THEN
     * key END), which SQLite tests before seeking; 0: the check is a join condition (an
     * untyped CASE cannot carry a PostgreSQL parameter's type) */
    int null_key_gating;
    /* opens and closes the column side of a search term: SQLite's LIKE folds ASCII case;
     * on PostgreSQL the same, as lower() under the "C" collation (ASCII only) on both sides */
    const char *like_open, *like_close, *like_param_open, *like_param_close;
    /* 1: a bulk's ids go as one array parameter ("= ANY(?1)"), one statement for all of
     * them; 0: in IN lists of TG__BULK_CHUNK parameters, a statement per chunk */
    int bulk_array;
    /* the affinity (TG__AFF_*) of a column's declared type on this backend */
    int (*affinity)(const char *decltype);
    /* the lowest key of a text-affinity column of that declared type, below every other
     * (a keyset's first page starts after it) */
    const char *(*lowest_text)(const char *decltype);
    /* catalog questions, with the dialect's parameters: a table's columns in order (name,
     * declared type) for ?1 table; one column's declared type (?1 table, ?2 column); whether
     * a table or view ?1 exists */
    const char *sql_columns, *sql_column_type, *sql_table_exists;
    /* one row with 1 when table ?1 is an ordinary table whose rows have row_marker */
    const char *sql_has_row_marker;
    /* one row, 1 when table ?1 has row-level security on (NULL: the backend has none) */
    const char *sql_rls_on;
    /* drift (catalog.c): every application table, the column that makes it tenant-owned (a
     * foreign key to tenants table ?1, else a column named as one of the JSON array ?2),
     * and 1 when that was a foreign key */
    const char *sql_drift;
    /* one row, 1 when ?1 is a view, 0 when a table */
    const char *sql_is_view;
    /* one row, 1 when column ?2 alone identifies a row of table ?1 (see catalog.c) */
    const char *sql_key_unique;
    /* one row, 1 when columns ?2 and ?3 together identify a row of table ?1: a primary key
     * or a UNIQUE index (not partial, no expression) of exactly those two key columns, each
     * NOT NULL unless the key is the primary key */
    const char *sql_key_unique_with;
    /* The matrix fixture's catalog questions (fixture_schema.c), ?1 a table or view:
     * - sql_fx_object: one row, 'table' or 'view', and the SQL text the fixture reads: a
     *   view's CREATE VIEW ... AS SELECT, a table's CREATE TABLE carrying its CHECK
     *   constraints (PostgreSQL: "CREATE TABLE t (CONSTRAINT c CHECK (...), ...)", built
     *   from pg_get_constraintdef); no row when there is no such table or view
     * - sql_fx_columns: its columns in order: name, declared type, 1 when NOT NULL, 1 when
     *   it has a default (an identity column has one), position in the primary key (0:
     *   none), 1 when generated (no value may be given)
     * - sql_fx_unique: the name of each column that a UNIQUE index covers (alone or not)
     * - sql_fx_foreign_keys: every foreign key column: a number per key, the referenced
     *   table, the column, the referenced column (empty or NULL: the referenced table's
     *   primary key), in key order
     * - sql_fx_triggers: the CREATE TRIGGER text of each trigger on it */
    const char *sql_fx_object, *sql_fx_columns, *sql_fx_unique, *sql_fx_foreign_keys,
        *sql_fx_triggers;
    /* how a fixture row is inserted: "INSERT OR ABORT INTO " on SQLite (a column's own ON
     * CONFLICT clause never turns a failure into a silent skip), "INSERT INTO " */
    const char *fx_insert;
    /* appends a statement whose one row is the largest integer in column `column` of
     * `table`, 0 when there is none (SQLite: values stored as integers only) */
    void (*fx_max_int)(tg__buf *b, const char *table, const char *column);
    /* the keys of table ?1 (lint --target citus, citus.c), one row each: kind ('p' primary
     * key, 'u' unique constraint, 'i' unique index, 'f' foreign key), its columns in key
     * order joined by ',', for 'f' the referenced table and its columns (NULL: its primary
     * key), and the constraint's or index's name where the backend has one (else NULL) */
    const char *sql_keys;
    /* one row, 1 when column ?2 of table ?1 is NOT NULL (citus.c: a distribution column
     * cannot hold NULL) */
    const char *sql_column_notnull;
} tg__dialect;

TG_HIDDEN extern const tg__dialect tg__sqlite;
TG_HIDDEN extern const tg__dialect tg__postgres;

/* How many ids one bulk statement checks at once. */
#define TG__BULK_CHUNK 64

/* A family or exception table as the plan sees it. */
typedef struct tg__table_shape {
    const char *table;
    const char *const *columns; /* every column, in table order */
    int n_columns;
    const char *id, *tenant, *workspace; /* workspace NULL while the column is absent */
    const tg_row_filter *filter; /* the rows that are visible; NULL: every row */
    int filter_param;            /* the parameter of its first value (TG__FILTER_RECORD) */
    const char *mark; /* a column never NULL in a row, read to tell a row exists: "rowid"
                       * when the table has one (no text copied); NULL: the id column */
    /* Every read by id with a route tenant also pins the tenant column to it (bound
     * equality): 1 for a distributed database (Citus routes the statement to the one shard
     * of that tenant), 2 for a table whose id is a key only together with its tenant. A row
     * of another tenant is then not read at all: its decision's reason is not_found. With 1
     * the id alone is a key, so the dialect's `exact` prefix keeps SQLite on the id's index
     * (a bulk's 100 ids would otherwise walk the tenant's index); with 2 the equality is
     * the key's own first column. */
    int pin_tenant;
} tg__table_shape;

/* What the scope statements read to tell that a joined row exists: a column never NULL in
 * a row of the membership tables ("rowid" where the table has one, so no text
 * key is copied; NULL: the user column). With `gate`, each lookup runs
 * only when the checks before it held, so a refused caller costs no more lookups than the
 * check that refused them; 0 only for the matrix's mutants, which skip a check in C and
 * need every fact read. */
typedef struct tg__scope_marks {
    const char *workspace_member, *tenant_member;
    int gate;
    /* With gate: the tenants lookup itself compares the tenant's workspace (type and
     * value, as C does) and the third column is its presence marker, not the workspace.
     * Set only where the workspace column's declared type is INTEGER or TEXT, where SQL's
     * comparison of the stored value with a bound key is C's; `tenant` is then the marker
     * of the tenants table (as the others; NULL: its id column). */
    int workspace_in_sql;
    const char *tenant;
} tg__scope_marks;

/* Parameters of the generated statements (fixed numbering, shared by all of them):
 *   ?1 tenant  ?2 workspace  ?3 after (keyset)  ?4 limit  ?5 owner id  ?6 LIKE pattern
 *   ?7 user
 * By-id statements use ?1 for the id; the bulk statement ?1..?TG__BULK_CHUNK. */
enum { TG__P_TENANT = 1, TG__P_WORKSPACE, TG__P_AFTER, TG__P_LIMIT, TG__P_OWNER, TG__P_LIKE,
       TG__P_USER, TG__P_ID };
/* The route tenant of the bulk statement, after its ids. */
#define TG__P_BULK_TENANT (TG__BULK_CHUNK + 1)

/* Row filter values are parameters too, numbered after every fixed one (the largest is the
 * bulk chunk's ?64) so they never collide: the tenants filter's values from ?TG__P_FILTER,
 * then the workspaces filter's, then the record table's (at most 16 x 64 values each, so
 * the largest number stays below 3,200, well under SQLite's default limit of 32,766).
 * tg__plan_prepare binds them once, right after preparing: bindings survive sqlite3_reset,
 * so the statements that carry them are never cleared. */
#define TG__P_FILTER 100
enum { TG__FILTER_TENANTS, TG__FILTER_WORKSPACES, TG__FILTER_RECORD };
/* The number of bound values of a filter (NULL: 0). */
TG_HIDDEN int tg__filter_n_values(const tg_row_filter *f);
/* The parameter of the first value of the tenants, workspaces or record filter. */
TG_HIDDEN int tg__sql_filter_param(const tg_app *app, int which);
/* Appends " AND (alias.col <op> ?n AND ...) = 1" for the conditions of f (nothing for NULL
 * or an empty filter), numbering its values from `first`. */
TG_HIDDEN void tg__sql_filter(const tg__dialect *d, const tg_row_filter *f, const char *alias,
                              int first, tg__buf *b);

/* SELECT <all columns> FROM t WHERE id = ?1 (and every statement below on a family table:
 * AND the family's row filter) */
TG_HIDDEN void tg__sql_by_id(const tg__dialect *d, const tg__table_shape *t, tg__buf *b);
/* SELECT <all columns> FROM t WHERE id IN (?1, ..., ?TG__BULK_CHUNK); with app, one more
 * column: the foreign tenant's workspace of each row (see tg__sql_record), the route tenant
 * being ?TG__P_BULK_TENANT. */
TG_HIDDEN void tg__sql_by_ids(const tg__dialect *d, const tg__table_shape *t, const tg_app *app,
                              tg__buf *b);
/* The record with id ?8 for a route tenant ?1: every column, then the workspace of the row's
 * tenant when that tenant is not ?1 (by type and value; NULL when it is, or when the tenant
 * does not exist or is outside app.tenants.row_filter). A refused row's log reason
 * (foreign_tenant or foreign_workspace) comes from the same statement: no second one. */
TG_HIDDEN void tg__sql_record(const tg__dialect *d, const tg_app *app, const tg__table_shape *t,
                              tg__buf *b);
/* A keyset page of one tenant's rows: WHERE tenant = ?1 [AND workspace agrees with ?2]
 * [AND via = ?5] [AND (c LIKE ?6 ...)] AND id > ?3 ORDER BY id LIMIT ?4. `widen` is 0 except
 * for the matrix's mutation check: 1 drops the tenant condition, 2 widens it to every tenant
 * of workspace ?2 (app is needed then). */
TG_HIDDEN void tg__sql_tenant_page(const tg__dialect *d, const tg__table_shape *t,
                                   const tg_app *app, const char *via,
                                   const char *const *search_columns, size_t n_search,
                                   int widen, tg__buf *b);
/* A keyset page of a workspace's rows (exceptions): rows whose workspace (own column, or
 * derived through the tenant) is ?2; with entitled_only, rows with a tenant must be one
 * the user ?7 is entitled to; with tenant_only, rows of tenant ?1 only. */
TG_HIDDEN void tg__sql_workspace_page(const tg__dialect *d, const tg__table_shape *t,
                                      const tg_app *app, int entitled_only, int tenant_only,
                                      tg__buf *b);
/* The context's scope in one row: workspace membership user and role, the tenant's
 * workspace, tenant membership user and role (a NULL user column: no such membership).
 * ?7 user, ?2 workspace, ?1 tenant. A workspace outside app.workspaces.row_filter has no
 * members; a tenant outside app.tenants.row_filter does not exist (here, in the
 * entitlement and in the exceptions' workspace pages alike). */
TG_HIDDEN void tg__sql_scope(const tg__dialect *d, const tg_app *app, const tg__scope_marks *m,
                             tg__buf *b);
/* The scope (first five columns, as tg__sql_scope) and the record with id ?8 (every column
 * after them, NULL when there is none, then the foreign tenant's workspace column of
 * tg__sql_record) in one statement: the first decision of a context. The record is looked
 * up only once membership, tenant and entitlement held (m NULL: user columns, gated). */
TG_HIDDEN void tg__sql_scope_and_record(const tg__dialect *d, const tg_app *app,
                                        const tg__table_shape *t, const tg__scope_marks *m,
                                        tg__buf *b);
/* Entitlement to one tenant: the tenant's workspace, tenant membership user and role
 * (?7 user, ?1 tenant). */
TG_HIDDEN void tg__sql_entitlement(const tg__dialect *d, const tg_app *app, tg__buf *b);
/* INSERT INTO t (c1, ...) VALUES (?1, ...) */
TG_HIDDEN void tg__sql_insert(const tg__dialect *d, const char *table, const char *const *cols,
                              size_t n, tg__buf *b);
/* UPDATE t SET c1 = ?1, ... WHERE id = ?(n+1) AND tenant = ?(n+2) */
TG_HIDDEN void tg__sql_update(const tg__dialect *d, const char *table, const char *const *cols,
                              size_t n, const char *id, const char *tenant, tg__buf *b);

/* Appends formatted SQL: %I is an identifier (quoted by the dialect), %L a string literal
 * (quotes doubled), %s a trusted SQL fragment, %d and %lld numbers, %P the n-th positional
 * parameter as the dialect writes it (?n on SQLite, $n on PostgreSQL), %% a percent sign.
 * Values never go through here: they are bound. The format is always a string literal (the
 * macro below does not compile otherwise), so SQL text is never a format: text with a '%'
 * in it (strftime, LIKE patterns) goes in through %s. Any other conversion poisons the
 * buffer (b->oom, as a failed allocation does), so the statement is never run. */
TG_HIDDEN void tg__sqlf_(tg__buf *b, const tg__dialect *d, const char *fmt, ...);
#define tg__sqlf(b, d, ...) tg__sqlf_((b), (d), "" __VA_ARGS__)

/* The current time as SQL text (UTC, milliseconds), e.g. 2026-01-31 12:00:00.000: added
 * through %s or tg__buf_add, never as part of a format. */
#define TG__SQL_NOW "strftime('%Y-%m-%d %H:%M:%f', 'now')"

/* Appends `s` as a LIKE pattern matching it anywhere, with %, _ and \ escaped. */
TG_HIDDEN void tg__like_contains(tg__buf *b, const char *s, size_t len);

#endif
