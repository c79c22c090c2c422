/* The loader: a SQLite database's tables copied into PostgreSQL (`tenantguard pg-load`), for
 * the tests and for users moving their data. The target is written through the store
 * interface (prepared statements, bound values); the source is read with SQLite's own
 * catalog pragmas, as only SQLite can describe a SQLite file.
 *
 * One transaction: tables (types mapped, primary keys, NOT NULL, literal defaults), rows in
 * multi-row INSERTs, then unique constraints, indexes, foreign keys (NOT VALID where the
 * source holds orphan rows, as SQLite let it), identity restarts and grants. Every name
 * from the file is quoted; every value is bound. */
#include "store_pg.h"

#include <sqlite3.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

enum { K_INT, K_TEXT, K_UUID, K_BYTEA, K_DOUBLE, K_NUMERIC };

typedef struct col {
    char *name;
    int kind;
    int notnull, pk; /* pk: position in the primary key (0: not in it) */
    int identity;    /* INTEGER PRIMARY KEY: the rowid, so PostgreSQL assigns it too */
    char *dflt;      /* a literal default, checked (NULL: none) */
    int maybe_uuid;  /* text whose every value is a canonical UUID (vacuously: none) */
    int64_t values;  /* non-NULL values */
} col;

typedef struct table {
    char *name;
    col *cols;
    int n;
    int64_t rows;
} table;

typedef struct loader {
    const tg__pg_load_options *o;
    sqlite3 *src;
    tg__db *dst;
    tg__buf *err;
    table *t;
    int n;
    tg__buf sql;
} loader;

/* ---- helpers ---- */

static int fail(loader *l, const char *what, const char *name, const char *why) {
    tg__buf_reset(l->err);
    tg__buf_add(l->err, what);
    if (name) {
        tg__buf_add(l->err, " '");
        tg__buf_add(l->err, name);
        tg__buf_add(l->err, "'");
    }
    if (why) {
        tg__buf_add(l->err, ": ");
        tg__buf_add(l->err, why);
    }
    return TG__ST_ERROR;
}

static int src_fail(loader *l, const char *what, const char *name) {
    return fail(l, what, name, sqlite3_errmsg(l->src));
}

static int dst_fail(loader *l, int rc, const char *what, const char *name) {
    fail(l, what, name, tg__db_errmsg(l->dst));
    return rc == TG__ST_OK ? TG__ST_ERROR : rc;
}

/* A double-quoted identifier (the same in both dialects). */
static void ident(tg__buf *b, const char *s) {
    tg__buf_add(b, "\"");
    for (; *s; s++)
        tg__buf_addn(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    tg__buf_add(b, "\"");
}

static int dst_exec(loader *l, const char *what, const char *name) {
    if (l->sql.oom)
        return fail(l, "out of memory", NULL, NULL);
    int rc = tg__db_exec(l->dst, tg__buf_str(&l->sql));
    return rc == TG__ST_OK ? rc : dst_fail(l, rc, what, name);
}

static char *dup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    return p ? memcpy(p, s, n) : NULL;
}

static int contains(const char *type, const char *what) {
    for (const char *p = type; *p; p++) {
        size_t i = 0;
        while (what[i] && toupper((unsigned char)p[i]) == what[i])
            i++;
        if (!what[i])
            return 1;
    }
    return 0;
}

/* SQLite's declared type to a kind: SQLite's own affinity rules, then BLOB, then text. */
static int kind_of(const char *type) {
    if (contains(type, "INT"))
        return K_INT;
    if (contains(type, "CHAR") || contains(type, "CLOB") || contains(type, "TEXT") ||
        contains(type, "UUID"))
        return K_TEXT;
    if (contains(type, "BLOB"))
        return K_BYTEA;
    if (contains(type, "REAL") || contains(type, "FLOA") || contains(type, "DOUB"))
        return K_DOUBLE;
    if (contains(type, "NUMERIC") || contains(type, "DECIMAL"))
        return K_NUMERIC;
    return K_TEXT; /* no type, DATE, BOOLEAN, ...: text keeps what SQLite stored */
}

static const char *pg_type(const loader *l, int kind) {
    switch (kind) {
    case K_INT:
        return l->o->int_type_integer ? "integer" : "bigint";
    case K_UUID:
        return "uuid";
    case K_BYTEA:
        return "bytea";
    case K_DOUBLE:
        return "double precision";
    case K_NUMERIC:
        return "numeric";
    default:
        return "text";
    }
}

/* A default that is a plain literal (a number, a quoted string, NULL) or CURRENT_TIMESTAMP;
 * anything else is left out (an expression of SQLite's is not PostgreSQL's). */
static char *literal_default(const char *d) {
    if (!d)
        return NULL;
    const char *p = d;
    if (*p == '-' || *p == '+')
        p++;
    int digits = 0, dots = 0;
    for (; *p; p++) {
        if (isdigit((unsigned char)*p))
            digits++;
        else if (*p == '.' && !dots)
            dots++;
        else
            break;
    }
    if (digits && !*p)
        return dup(d);
    size_t n = strlen(d);
    if (n >= 2 && d[0] == '\'' && d[n - 1] == '\'') {
        for (size_t i = 1; i + 1 < n; i++) {
            if (d[i] == '\'' && d[i + 1] != '\'')
                return NULL;
            if (d[i] == '\'')
                i++;
        }
        return dup(d);
    }
    if (strcasecmp(d, "CURRENT_TIMESTAMP") == 0) /* SQLite's text form, in UTC */
        return dup("to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')");
    return NULL;
}

/* ---- reading the source ---- */

static int read_columns(loader *l, table *t) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->src,
                           "SELECT name, type, \"notnull\", dflt_value, pk "
                           "FROM pragma_table_info(?1) ORDER BY cid",
                           -1, &s, NULL) != SQLITE_OK)
        return src_fail(l, "cannot read the columns of", t->name);
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    int cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (t->n == cap) {
            cap = cap ? 2 * cap : 8;
            col *c = realloc(t->cols, (size_t)cap * sizeof *c);
            if (!c)
                break;
            t->cols = c;
        }
        col *c = memset(&t->cols[t->n++], 0, sizeof(col));
        const char *type = (const char *)sqlite3_column_text(s, 1);
        c->name = dup((const char *)sqlite3_column_text(s, 0));
        c->kind = kind_of(type ? type : "");
        c->notnull = sqlite3_column_int(s, 2);
        c->dflt = literal_default((const char *)sqlite3_column_text(s, 3));
        c->pk = sqlite3_column_int(s, 4);
        c->identity = c->pk && type && strcasecmp(type, "INTEGER") == 0;
        if (!c->name)
            break;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc == SQLITE_ROW ? fail(l, "out of memory", NULL, NULL)
                                : src_fail(l, "cannot read the columns of", t->name);
    int pks = 0;
    for (int i = 0; i < t->n; i++)
        pks += t->cols[i].pk != 0;
    if (pks != 1) /* a rowid alias only when it is the whole key */
        for (int i = 0; i < t->n; i++)
            t->cols[i].identity = 0;
    if (strlen(t->name) > 63)
        return fail(l, "table name longer than PostgreSQL's 63 bytes:", t->name, NULL);
    for (int i = 0; i < t->n; i++)
        if (strlen(t->cols[i].name) > 63)
            return fail(l, "column name longer than PostgreSQL's 63 bytes:", t->cols[i].name,
                        NULL);
    return TG__ST_OK;
}

/* What the values say: integer columns hold integers, which text columns hold only UUIDs. */
static int survey(loader *l, table *t) {
    static const char hex[] = "[0-9a-f]";
    tg__buf q = {0}, pat = {0};
    for (int i = 0; i < 36; i++)
        tg__buf_add(&pat, (i == 8 || i == 13 || i == 18 || i == 23) ? "-" : hex);
    tg__buf_add(&q, "SELECT count(*)");
    for (int i = 0; i < t->n; i++) {
        tg__buf_add(&q, ", count(");
        ident(&q, t->cols[i].name);
        tg__buf_add(&q, "), sum(typeof(");
        ident(&q, t->cols[i].name);
        tg__buf_add(&q, ") = 'text' AND ");
        ident(&q, t->cols[i].name);
        tg__buf_add(&q, " GLOB ?1), sum(typeof(");
        ident(&q, t->cols[i].name);
        tg__buf_add(&q, t->cols[i].kind == K_INT ? ") NOT IN ('integer', 'null'))"
                                                 : ") = 'blob')");
    }
    tg__buf_add(&q, " FROM ");
    ident(&q, t->name);
    sqlite3_stmt *s = NULL;
    int rc = TG__ST_OK;
    if (q.oom || pat.oom || sqlite3_prepare_v2(l->src, tg__buf_str(&q), -1, &s, NULL) != SQLITE_OK)
        rc = src_fail(l, "cannot read the table", t->name);
    else {
        sqlite3_bind_text(s, 1, tg__buf_str(&pat), -1, SQLITE_STATIC);
        if (sqlite3_step(s) != SQLITE_ROW)
            rc = src_fail(l, "cannot read the table", t->name);
        else
            t->rows = sqlite3_column_int64(s, 0);
        for (int i = 0; rc == TG__ST_OK && i < t->n; i++) {
            col *c = &t->cols[i];
            c->values = sqlite3_column_int64(s, 1 + 3 * i);
            int64_t uuids = sqlite3_column_int64(s, 2 + 3 * i);
            int64_t odd = sqlite3_column_int64(s, 3 + 3 * i);
            c->maybe_uuid = c->kind == K_TEXT && l->o->uuid_auto && uuids == c->values;
            if (c->kind == K_INT && odd)
                rc = fail(l, "a column declared INTEGER holds other values:", c->name,
                          "declare it TEXT, or fix the rows, before loading");
            if (c->kind == K_TEXT && odd)
                c->kind = K_BYTEA; /* blobs in a text column: keep their bytes */
        }
    }
    sqlite3_finalize(s);
    tg__buf_free(&q);
    tg__buf_free(&pat);
    return rc;
}

static table *find_table(loader *l, const char *name) {
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0)
            return &l->t[i];
    return NULL;
}

static col *find_col(table *t, const char *name) {
    for (int i = 0; t && i < t->n; i++)
        if (strcmp(t->cols[i].name, name) == 0)
            return &t->cols[i];
    return NULL;
}

/* The referenced column of a foreign key: `to`, or the parent's primary key column. */
static col *fk_parent_col(table *p, const char *to, int seq) {
    if (to)
        return find_col(p, to);
    for (int i = 0; p && i < p->n; i++)
        if (p->cols[i].pk == seq + 1)
            return &p->cols[i];
    return NULL;
}

/* uuid where every value is one, on both sides of every foreign key (uuid = text has no
 * operator): a column with values not all UUIDs makes the other side text too. */
static int decide_uuids(loader *l) {
    for (int i = 0; i < l->n; i++)
        for (int k = 0; k < l->t[i].n; k++) {
            col *c = &l->t[i].cols[k];
            if (c->maybe_uuid && c->values > 0)
                c->kind = K_UUID;
        }
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->src, "SELECT \"table\", \"from\", \"to\", seq "
                                   "FROM pragma_foreign_key_list(?1)",
                           -1, &s, NULL) != SQLITE_OK)
        return src_fail(l, "cannot read the foreign keys", NULL);
    for (int changed = 1, pass = 0; changed && pass < 100; pass++) {
        changed = 0;
        for (int i = 0; i < l->n; i++) {
            sqlite3_reset(s);
            sqlite3_bind_text(s, 1, l->t[i].name, -1, SQLITE_STATIC);
            while (sqlite3_step(s) == SQLITE_ROW) {
                table *p = find_table(l, (const char *)sqlite3_column_text(s, 0));
                col *child = find_col(&l->t[i], (const char *)sqlite3_column_text(s, 1));
                col *parent = fk_parent_col(p, (const char *)sqlite3_column_text(s, 2),
                                            sqlite3_column_int(s, 3));
                if (!child || !parent || (child->kind == K_UUID) == (parent->kind == K_UUID))
                    continue;
                col *u = child->kind == K_UUID ? child : parent;
                col *other = u == child ? parent : child;
                if (other->kind == K_TEXT && other->maybe_uuid) {
                    other->kind = K_UUID; /* no values (or all UUIDs): follow the other side */
                } else {
                    u->kind = other->kind == K_TEXT ? K_TEXT : u->kind;
                    u->maybe_uuid = 0;
                    if (u->kind == K_UUID) /* the other side is not text: leave both alone */
                        continue;
                }
                changed = 1;
            }
        }
    }
    sqlite3_finalize(s);
    return TG__ST_OK;
}

static int read_tables(loader *l) {
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(l->src,
                           "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT "
                           "LIKE 'sqlite\\_%' ESCAPE '\\' AND sql NOT LIKE 'CREATE VIRTUAL%' "
                           "ORDER BY name",
                           -1, &s, NULL) != SQLITE_OK)
        return src_fail(l, "cannot read the tables of", l->o->from);
    int cap = 0, rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (l->n == cap) {
            cap = cap ? 2 * cap : 16;
            table *t = realloc(l->t, (size_t)cap * sizeof *t);
            if (!t)
                break;
            l->t = t;
        }
        table *t = memset(&l->t[l->n++], 0, sizeof(table));
        if (!(t->name = dup((const char *)sqlite3_column_text(s, 0))))
            break;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc == SQLITE_ROW ? fail(l, "out of memory", NULL, NULL)
                                : src_fail(l, "cannot read the tables of", l->o->from);
    for (int i = 0; i < l->n; i++) {
        int r = read_columns(l, &l->t[i]);
        if (r == TG__ST_OK)
            r = survey(l, &l->t[i]);
        if (r != TG__ST_OK)
            return r;
    }
    return decide_uuids(l);
}

/* ---- writing the target ---- */

static int create_table(loader *l, table *t) {
    if (!l->o->replace) {
        tg__stmt *q = NULL;
        int rc = tg__st_prepare_once(l->dst,
                                     "SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = "
                                     "current_schema() AND tablename = $1",
                                     &q);
        if (rc == TG__ST_OK)
            rc = tg__st_bind_text(q, 1, t->name, strlen(t->name), 0);
        if (rc == TG__ST_OK)
            rc = tg__st_step(q);
        tg__st_finalize(q);
        if (rc == TG__ST_ROW)
            return fail(l, "table", t->name,
                        "exists already in the target (--replace drops it first)");
        if (rc != TG__ST_DONE)
            return dst_fail(l, rc, "cannot look for the table", t->name);
    }
    tg__buf_reset(&l->sql);
    if (l->o->replace) {
        tg__buf_add(&l->sql, "DROP TABLE IF EXISTS ");
        ident(&l->sql, t->name);
        tg__buf_add(&l->sql, " CASCADE; ");
    }
    tg__buf_add(&l->sql, "CREATE TABLE ");
    ident(&l->sql, t->name);
    tg__buf_add(&l->sql, " (");
    for (int i = 0; i < t->n; i++) {
        col *c = &t->cols[i];
        tg__buf_add(&l->sql, i ? ", " : "");
        ident(&l->sql, c->name);
        tg__buf_add(&l->sql, " ");
        tg__buf_add(&l->sql, pg_type(l, c->kind));
        if (c->identity && c->kind == K_INT)
            tg__buf_add(&l->sql, " GENERATED BY DEFAULT AS IDENTITY");
        else if (c->dflt && c->kind != K_UUID) {
            tg__buf_add(&l->sql, " DEFAULT "); /* checked: a literal (literal_default) */
            tg__buf_add(&l->sql, c->dflt);
        }
        if (c->notnull || c->pk)
            tg__buf_add(&l->sql, " NOT NULL");
    }
    int first = 1;
    for (int k = 1; k <= t->n; k++)
        for (int i = 0; i < t->n; i++)
            if (t->cols[i].pk == k) {
                tg__buf_add(&l->sql, first ? ", PRIMARY KEY (" : ", ");
                ident(&l->sql, t->cols[i].name);
                first = 0;
            }
    tg__buf_add(&l->sql, first ? ")" : "))");
    return dst_exec(l, "cannot create the table", t->name);
}

/* INSERT INTO t (c...) VALUES ($1, ...), ... for `rows` rows. */
static int prepare_insert(loader *l, table *t, int rows, tg__stmt **out) {
    tg__buf_reset(&l->sql);
    tg__buf_add(&l->sql, "INSERT INTO ");
    ident(&l->sql, t->name);
    tg__buf_add(&l->sql, " (");
    for (int i = 0; i < t->n; i++) {
        tg__buf_add(&l->sql, i ? ", " : "");
        ident(&l->sql, t->cols[i].name);
    }
    tg__buf_add(&l->sql, ")");
    tg__buf_add(&l->sql, " VALUES ");
    int p = 1;
    for (int r = 0; r < rows; r++) {
        tg__buf_add(&l->sql, r ? ", (" : "(");
        for (int i = 0; i < t->n; i++)
            tg__buf_printf(&l->sql, "%s$%d", i ? ", " : "", p++);
        tg__buf_add(&l->sql, ")");
    }
    if (l->sql.oom)
        return fail(l, "out of memory", NULL, NULL);
    int rc = tg__st_prepare(l->dst, l->sql.p, l->sql.len, 0, out);
    return rc == TG__ST_OK ? rc : dst_fail(l, rc, "cannot prepare the rows of", t->name);
}

static int bind_value(tg__stmt *st, int p, const col *c, sqlite3_stmt *s, int i) {
    int type = sqlite3_column_type(s, i);
    if (type == SQLITE_NULL)
        return tg__st_bind_null(st, p);
    if (c->kind == K_BYTEA) {
        const void *b = sqlite3_column_blob(s, i);
        return tg__st_bind_blob(st, p, b ? b : "", (size_t)sqlite3_column_bytes(s, i), 0);
    }
    if (type == SQLITE_INTEGER)
        return tg__st_bind_int64(st, p, sqlite3_column_int64(s, i));
    if (type == SQLITE_FLOAT)
        return tg__st_bind_double(st, p, sqlite3_column_double(s, i));
    const char *v = (const char *)sqlite3_column_text(s, i);
    return tg__st_bind_text(st, p, v ? v : "", (size_t)sqlite3_column_bytes(s, i), 0);
}

static int copy_rows(loader *l, table *t) {
    int64_t batch = 60000 / (t->n ? t->n : 1); /* PostgreSQL takes at most 65,535 parameters */
    if (batch > 500)
        batch = 500;
    tg__buf q = {0};
    tg__buf_add(&q, "SELECT ");
    for (int i = 0; i < t->n; i++) {
        tg__buf_add(&q, i ? ", " : "");
        ident(&q, t->cols[i].name);
    }
    tg__buf_add(&q, " FROM ");
    ident(&q, t->name);
    sqlite3_stmt *s = NULL;
    tg__stmt *full = NULL, *part = NULL;
    int rc = TG__ST_OK;
    int64_t rows = 0;
    if (q.oom || sqlite3_prepare_v2(l->src, tg__buf_str(&q), -1, &s, NULL) != SQLITE_OK)
        rc = src_fail(l, "cannot read the rows of", t->name);
    /* t->rows full batches, then one statement for the rows left */
    while (rc == TG__ST_OK && rows < t->rows) {
        int64_t n = t->rows - rows < batch ? t->rows - rows : batch;
        tg__stmt **st = n == batch ? &full : &part;
        if (!*st && (rc = prepare_insert(l, t, (int)n, st)) != TG__ST_OK)
            break;
        for (int64_t r = 0; rc == TG__ST_OK && r < n; r++) {
            if (sqlite3_step(s) != SQLITE_ROW) {
                rc = src_fail(l, "the rows changed while being read:", t->name);
                break;
            }
            for (int i = 0; i < t->n && rc == TG__ST_OK; i++)
                if (bind_value(*st, (int)r * t->n + i + 1, &t->cols[i], s, i) != TG__ST_OK)
                    rc = dst_fail(l, TG__ST_ERROR, "a value cannot go to the table", t->name);
        }
        if (rc != TG__ST_OK)
            break;
        int r = tg__st_step(*st);
        tg__st_reset(*st);
        if (r != TG__ST_DONE)
            rc = dst_fail(l, r, "cannot copy the rows of", t->name);
        rows += n;
    }
    sqlite3_finalize(s);
    tg__st_finalize(full);
    tg__st_finalize(part);
    tg__buf_free(&q);
    if (rc == TG__ST_OK && l->o->progress)
        l->o->progress(l->o->ud, t->name, rows);
    return rc;
}

/* Unique constraints and indexes: every one whose columns are plain columns (no
 * expression) and that is not partial. */
static int add_indexes(loader *l, table *t) {
    sqlite3_stmt *li = NULL, *cols = NULL;
    int rc = TG__ST_OK;
    if (sqlite3_prepare_v2(l->src,
                           "SELECT name, \"unique\", origin FROM pragma_index_list(?1) "
                           "WHERE origin <> 'pk' AND partial = 0 ORDER BY name",
                           -1, &li, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(l->src,
                           "SELECT cid, name, \"desc\" FROM pragma_index_xinfo(?1) "
                           "WHERE key = 1 ORDER BY seqno",
                           -1, &cols, NULL) != SQLITE_OK) {
        rc = src_fail(l, "cannot read the indexes of", t->name);
        goto done;
    }
    sqlite3_bind_text(li, 1, t->name, -1, SQLITE_STATIC);
    while (rc == TG__ST_OK && sqlite3_step(li) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(li, 0);
        int unique = sqlite3_column_int(li, 1);
        int constraint = strcmp((const char *)sqlite3_column_text(li, 2), "u") == 0;
        tg__buf cl = {0};
        int plain = 1;
        sqlite3_reset(cols);
        sqlite3_bind_text(cols, 1, name, -1, SQLITE_STATIC);
        for (int k = 0; sqlite3_step(cols) == SQLITE_ROW; k++) {
            const char *cn = (const char *)sqlite3_column_text(cols, 1);
            if (sqlite3_column_int(cols, 0) < 0 || !cn) {
                plain = 0; /* an expression, or the rowid */
                break;
            }
            tg__buf_add(&cl, k ? ", " : "");
            ident(&cl, cn);
            if (!constraint && sqlite3_column_int(cols, 2))
                tg__buf_add(&cl, " DESC");
        }
        if (plain && cl.len) {
            tg__buf_reset(&l->sql);
            if (constraint) {
                tg__buf_add(&l->sql, "ALTER TABLE ");
                ident(&l->sql, t->name);
                tg__buf_add(&l->sql, " ADD UNIQUE (");
            } else {
                tg__buf_add(&l->sql, unique ? "CREATE UNIQUE INDEX " : "CREATE INDEX ");
                ident(&l->sql, name);
                tg__buf_add(&l->sql, " ON ");
                ident(&l->sql, t->name);
                tg__buf_add(&l->sql, " (");
            }
            tg__buf_add(&l->sql, tg__buf_str(&cl));
            tg__buf_add(&l->sql, ")");
            if (strlen(name) > 63 && !constraint)
                rc = fail(l, "index name longer than PostgreSQL's 63 bytes:", name, NULL);
            else
                rc = dst_exec(l, "cannot create the index", name);
        }
        tg__buf_free(&cl);
    }
done:
    sqlite3_finalize(li);
    sqlite3_finalize(cols);
    return rc;
}

static const char *fk_action(const char *a) {
    static const char *const ok[] = {"CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT",
                                     "NO ACTION"};
    for (size_t i = 0; a && i < sizeof ok / sizeof *ok; i++)
        if (strcasecmp(a, ok[i]) == 0)
            return ok[i];
    return "NO ACTION";
}

/* Foreign keys, after the rows: NOT VALID where the source holds orphans (SQLite had the
 * key off, or unchecked, when they went in), so new rows are checked and old ones kept. */
static int add_foreign_keys(loader *l, table *t) {
    sqlite3_stmt *s = NULL;
    int rc = TG__ST_OK;
    if (sqlite3_prepare_v2(l->src,
                           "SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete "
                           "FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
                           -1, &s, NULL) != SQLITE_OK)
        return src_fail(l, "cannot read the foreign keys of", t->name);
    sqlite3_bind_text(s, 1, t->name, -1, SQLITE_STATIC);
    tg__buf from = {0}, to = {0}, parent = {0}, upd = {0}, del = {0};
    int id = -1, step;
    do {
        step = sqlite3_step(s);
        int nid = step == SQLITE_ROW ? sqlite3_column_int(s, 0) : -2;
        if (nid != id && id >= 0) { /* the key `id` is complete */
            tg__buf_reset(&l->sql);
            tg__buf_add(&l->sql, "SAVEPOINT tg_fk; ALTER TABLE ");
            ident(&l->sql, t->name);
            tg__buf_printf(&l->sql, " ADD FOREIGN KEY (%s) REFERENCES ", tg__buf_str(&from));
            ident(&l->sql, tg__buf_str(&parent));
            tg__buf_printf(&l->sql, " (%s) ON UPDATE %s ON DELETE %s", tg__buf_str(&to),
                           tg__buf_str(&upd), tg__buf_str(&del));
            size_t plain_len = l->sql.len;
            tg__buf_add(&l->sql, "; RELEASE SAVEPOINT tg_fk");
            if (tg__db_exec(l->dst, tg__buf_str(&l->sql)) != TG__ST_OK) {
                if (tg__db_exec(l->dst, "ROLLBACK TO SAVEPOINT tg_fk") != TG__ST_OK)
                    rc = dst_fail(l, TG__ST_ERROR, "cannot add a foreign key of", t->name);
                else {
                    l->sql.len = plain_len;
                    l->sql.p[plain_len] = 0;
                    tg__buf_add(&l->sql, " NOT VALID; RELEASE SAVEPOINT tg_fk");
                    rc = dst_exec(l, "cannot add a foreign key of", t->name);
                }
            }
            tg__buf_reset(&from);
            tg__buf_reset(&to);
        }
        if (step != SQLITE_ROW || rc != TG__ST_OK)
            break;
        id = nid;
        const char *pt = (const char *)sqlite3_column_text(s, 2);
        table *p = find_table(l, pt ? pt : "");
        col *pc = fk_parent_col(p, (const char *)sqlite3_column_text(s, 4),
                                sqlite3_column_int(s, 1));
        if (!p || !pc) {
            rc = fail(l, "a foreign key of", t->name, "names a table or column that is missing");
            break;
        }
        tg__buf_reset(&parent);
        tg__buf_add(&parent, p->name);
        tg__buf_add(&from, from.len ? ", " : "");
        ident(&from, (const char *)sqlite3_column_text(s, 3));
        tg__buf_add(&to, to.len ? ", " : "");
        ident(&to, pc->name);
        tg__buf_reset(&upd);
        tg__buf_add(&upd, fk_action((const char *)sqlite3_column_text(s, 5)));
        tg__buf_reset(&del);
        tg__buf_add(&del, fk_action((const char *)sqlite3_column_text(s, 6)));
    } while (1);
    sqlite3_finalize(s);
    tg__buf_free(&from);
    tg__buf_free(&to);
    tg__buf_free(&parent);
    tg__buf_free(&upd);
    tg__buf_free(&del);
    return rc;
}

/* Identity columns continue after the largest id; the grants. */
static int finish_table(loader *l, table *t) {
    int rc = TG__ST_OK;
    for (int i = 0; rc == TG__ST_OK && i < t->n; i++) {
        col *c = &t->cols[i];
        if (!c->identity || c->kind != K_INT)
            continue;
        tg__buf_reset(&l->sql);
        tg__buf_add(&l->sql, "SELECT coalesce(max(");
        ident(&l->sql, c->name);
        tg__buf_add(&l->sql, "), 0) + 1 FROM ");
        ident(&l->sql, t->name);
        tg__stmt *q = NULL;
        int64_t next = 1;
        rc = tg__st_prepare_once(l->dst, tg__buf_str(&l->sql), &q);
        if (rc == TG__ST_OK && (rc = tg__st_step(q)) == TG__ST_ROW) {
            next = tg__st_column_int64(q, 0);
            rc = TG__ST_OK;
        }
        tg__st_finalize(q);
        if (rc != TG__ST_OK)
            return dst_fail(l, rc, "cannot read the largest id of", t->name);
        tg__buf_reset(&l->sql);
        tg__buf_add(&l->sql, "ALTER TABLE ");
        ident(&l->sql, t->name);
        tg__buf_add(&l->sql, " ALTER COLUMN ");
        ident(&l->sql, c->name);
        tg__buf_printf(&l->sql, " RESTART WITH %lld", (long long)next);
        rc = dst_exec(l, "cannot restart the identity of", t->name);
        if (rc == TG__ST_OK && l->o->grant_to) {
            /* the sequence's name, quoted by the server, for the grant */
            tg__buf_reset(&l->sql);
            tg__buf_add(&l->sql, "SELECT pg_get_serial_sequence($1, $2)");
            tg__buf qt = {0};
            ident(&qt, t->name);
            rc = tg__st_prepare_once(l->dst, tg__buf_str(&l->sql), &q);
            if (rc == TG__ST_OK)
                rc = tg__st_bind_text(q, 1, qt.p, qt.len, 0);
            if (rc == TG__ST_OK)
                rc = tg__st_bind_text(q, 2, c->name, strlen(c->name), 0);
            tg__buf seq = {0};
            if (rc == TG__ST_OK && (rc = tg__st_step(q)) == TG__ST_ROW) {
                tg__buf_add(&seq, tg__st_column_text(q, 0) ? tg__st_column_text(q, 0) : "");
                rc = TG__ST_OK;
            }
            tg__st_finalize(q);
            tg__buf_free(&qt);
            if (rc != TG__ST_OK) {
                tg__buf_free(&seq);
                return dst_fail(l, rc, "cannot find the identity sequence of", t->name);
            }
            tg__buf_reset(&l->sql);
            tg__buf_add(&l->sql, "GRANT USAGE, SELECT ON SEQUENCE ");
            tg__buf_add(&l->sql, tg__buf_str(&seq)); /* quote_ident'ed by the server */
            tg__buf_add(&l->sql, " TO ");
            ident(&l->sql, l->o->grant_to);
            tg__buf_free(&seq);
            rc = dst_exec(l, "cannot grant the identity sequence of", t->name);
        }
    }
    if (rc == TG__ST_OK && l->o->grant_to) {
        tg__buf_reset(&l->sql);
        tg__buf_add(&l->sql, "GRANT SELECT, INSERT, UPDATE, DELETE ON ");
        ident(&l->sql, t->name);
        tg__buf_add(&l->sql, " TO ");
        ident(&l->sql, l->o->grant_to);
        rc = dst_exec(l, "cannot grant the table", t->name);
    }
    return rc;
}

static int load(loader *l) {
    int rc = read_tables(l);
    if (rc != TG__ST_OK)
        return rc;
    if (tg__db_exec(l->dst, "BEGIN") != TG__ST_OK)
        return dst_fail(l, TG__ST_ERROR, "cannot begin a transaction on", l->o->to);
    if (l->o->owner_role) {
        tg__buf_reset(&l->sql);
        tg__buf_add(&l->sql, "SET LOCAL ROLE ");
        ident(&l->sql, l->o->owner_role);
        if ((rc = dst_exec(l, "cannot become the owner role", l->o->owner_role)) != TG__ST_OK)
            return rc;
    }
    for (int i = 0; rc == TG__ST_OK && i < l->n; i++)
        rc = create_table(l, &l->t[i]);
    for (int i = 0; rc == TG__ST_OK && i < l->n; i++)
        rc = copy_rows(l, &l->t[i]);
    for (int i = 0; rc == TG__ST_OK && i < l->n; i++)
        rc = add_indexes(l, &l->t[i]);
    for (int i = 0; rc == TG__ST_OK && i < l->n; i++)
        rc = add_foreign_keys(l, &l->t[i]);
    for (int i = 0; rc == TG__ST_OK && i < l->n; i++)
        rc = finish_table(l, &l->t[i]);
    /* planner statistics, as a live database has them: without, the first queries plan
     * against guesses (reltuples -1) until autovacuum comes round */
    for (int i = 0; rc == TG__ST_OK && i < l->n; i++) {
        tg__buf_reset(&l->sql);
        tg__buf_add(&l->sql, "ANALYZE ");
        ident(&l->sql, l->t[i].name);
        rc = dst_exec(l, "cannot analyze", l->t[i].name);
    }
    if (rc == TG__ST_OK && tg__db_exec(l->dst, "COMMIT") != TG__ST_OK)
        rc = dst_fail(l, TG__ST_ERROR, "cannot commit the load into", l->o->to);
    return rc;
}

int tg__pg_load(const tg__pg_load_options *o, tg__buf *err) {
    loader l = {0};
    l.o = o;
    l.err = err;
    int rc;
    if (sqlite3_open_v2(o->from, &l.src, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = src_fail(&l, "cannot open the SQLite database", o->from);
        goto done;
    }
    tg__store_pg_options po = TG__STORE_PG_DEFAULTS;
    po.statement_timeout_ms = 0; /* a big table takes what it takes */
    if ((rc = tg__store_pg_open(o->to, &po, &l.dst)) != TG__ST_OK) {
        fail(&l, l.dst ? tg__db_errmsg(l.dst) : "out of memory", NULL, NULL);
        goto done;
    }
    rc = load(&l);
    if (rc != TG__ST_OK && tg__db_in_transaction(l.dst))
        (void)tg__db_exec(l.dst, "ROLLBACK");
done:
    for (int i = 0; i < l.n; i++) {
        for (int k = 0; k < l.t[i].n; k++) {
            free(l.t[i].cols[k].name);
            free(l.t[i].cols[k].dflt);
        }
        free(l.t[i].cols);
        free(l.t[i].name);
    }
    free(l.t);
    tg__buf_free(&l.sql);
    tg__db_close(l.dst);
    sqlite3_close(l.src);
    return rc;
}
