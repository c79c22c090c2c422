/*
 * tenantguard: tenant isolation for multi-tenant databases, driven by rule scripts.
 *
 * This is the only public header. Handles are opaque; the rule model is exposed as
 * read-only structures that stay valid as long as the handle they came from (an engine's
 * current rules until the next successful reload, or a context's rules for its lifetime).
 *
 * Conventions (after sqlite3.h): every call that can fail returns an int status (TG_OK on
 * success); output parameters come last; the message of the last failure lives on the
 * handle (tg_engine_errmsg, tg_ctx_errmsg). Strings returned by the library are owned by the
 * library unless the comment says otherwise.
 *
 * Handles and misuse (after SQLite and Lua: a closed handle is an error, not a crash).
 *  - tg_engine_close and tg_ctx_close free the handle (or hand its memory back to the
 *    library): afterwards the pointer must not be passed to any function again, close
 *    included. Closing NULL does nothing. (The Lua binding tracks this for you: closing a
 *    Lua engine or context twice, by close, __close or __gc in any order, is safe, and a
 *    closed one raises "attempt to use a closed ...".)
 *  - A context may outlive its engine's handle: after tg_engine_close, the context's
 *    tg_ctx_resolve, tg_ctx_insert and tg_ctx_update return TG_MISUSE ("the engine of this
 *    context is closed"); tg_ctx_errmsg, tg_ctx_rules and tg_ctx_close still work.
 *  - Callbacks (the decision sink, the progress function) may call the library again:
 *      from a decision sink, deciding on the context whose decision is being logged returns
 *      TG_MISUSE ("the context is busy") and leaves that decision untouched; tg_ctx_close on
 *      that context does nothing (close it after the call returns); other contexts of the
 *      engine decide normally; tg_engine_close and tg_engine_reload are safe (the deciding
 *      context keeps what it uses alive), except during tg_run_matrix, whose sink must not
 *      close or reload the engine;
 *      from a progress function, tg_work returns TG_BUSY; tg_engine_close stops the worker
 *      after that batch (tg_work then returns TG_MISUSE and frees the engine as it returns,
 *      so do not use the engine afterwards); other engine calls work.
 *  - Request values are checked, never trusted: a count above a limit in any integer width,
 *    an out-of-range path or a contradictory request is TG_MISUSE or TG_LIMIT, never a read
 *    past an array.
 *  - One thread per engine (and its contexts) at a time.
 */
#ifndef TENANTGUARD_H
#define TENANTGUARD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TG_API __attribute__((visibility("default")))
#define TG_WUR __attribute__((warn_unused_result))
#else
#define TG_API
#define TG_WUR
#endif

#define TG_VERSION "0.1.0"

/* ---- status codes: one list, the enum, its names and its messages ---------------------- */

#define TG_STATUS_LIST(X)                                                                      \
    X(OK, "ok")                                                                                \
    X(ERROR, "error")                                                                          \
    X(NOMEM, "out of memory")                                                                  \
    X(MISUSE, "invalid argument or call sequence")                                             \
    X(RULES, "the rule scripts are invalid")                                                   \
    X(IO, "cannot read a file or directory")                                                   \
    X(DB, "database error")                                                                    \
    X(BUSY, "database is busy")                                                                \
    X(LIMIT, "a configured limit was exceeded")                                                \
    X(UNKNOWN, "unknown family, path, exception or capability")                                \
    X(REJECTED, "the write was rejected by a tenant rule")                                     \
    X(REFUSED, "refused: preconditions do not hold")                                           \
    X(DONE, "nothing left to do")

typedef enum {
#define TG_STATUS_ENUM(name, msg) TG_##name,
    TG_STATUS_LIST(TG_STATUS_ENUM)
#undef TG_STATUS_ENUM
        TG_STATUS_COUNT
} tg_status;

/* "TG_OK", "TG_RULES", ... ; "TG_?" for an unknown code. Static strings. */
TG_API const char *tg_status_name(int status);
/* A one-line English description of a status. Static strings. */
TG_API const char *tg_strerror(int status);

/* ---- the rule model (read-only) ---------------------------------------------------------- */

typedef struct tg_where {
    const char *file; /* "rules/families.lua" as the rules were named when opened */
    int line;         /* 0 when the finding concerns the whole rule set */
} tg_where;

typedef enum {
    TG_PATH_INDEX,
    TG_PATH_DETAIL,
    TG_PATH_ROW_ACTION,
    TG_PATH_BULK_ACTION,
    TG_PATH_RELATION_MANAGER,
    TG_PATH_GLOBAL_SEARCH,
    TG_PATH_CANONICAL_VIEWER,
    TG_PATH_COUNT
} tg_path_type;

typedef enum { TG_ANCHOR_ROUTE_TENANT, TG_ANCHOR_OWNER_RECORD, TG_ANCHOR_EXPLICIT_RECORD } tg_anchor;
typedef enum { TG_SEARCH_SCOPED, TG_SEARCH_DISABLED, TG_SEARCH_NOT_APPLICABLE } tg_search_posture;
typedef enum { TG_ACTION_DECLARED, TG_ACTION_BASELINE_EXEMPTION } tg_action_status;
typedef enum { TG_LOOKUP_SAME_AS_LIST, TG_LOOKUP_EXPLICIT_EXCEPTION } tg_lookup;
typedef enum {
    TG_TENANT_FROM_ROUTE,
    TG_TENANT_FROM_PANEL,
    TG_TENANT_FROM_RECORD_OWNER
} tg_tenant_source;
typedef enum { TG_SEARCH_RULE_SCOPED_ONLY, TG_SEARCH_RULE_DISABLED } tg_search_rule;

typedef enum {
    TG_SCENARIO_POSITIVE_SCOPE,
    TG_SCENARIO_WRONG_TENANT_INDEX,
    TG_SCENARIO_WRONG_TENANT_DETAIL,
    TG_SCENARIO_WRONG_TENANT_ROW_ACTION,
    TG_SCENARIO_WRONG_TENANT_BULK_ACTION,
    TG_SCENARIO_WRONG_TENANT_RELATION_MANAGER,
    TG_SCENARIO_SAFE_SEARCH,
    TG_SCENARIO_COUNT
} tg_scenario_type;

/* expected_outcome of a scenario: an HTTP-like status, or this value for
 * "hidden_or_disabled_without_side_effect". */
#define TG_OUTCOME_HIDDEN 0

typedef enum {
    TG_EXCEPTION_WORKSPACE_ADMIN_VIEWER,
    TG_EXCEPTION_WORKSPACE_REFERENCE,
    TG_EXCEPTION_DEFERRED_FAMILY
} tg_exception_kind;

/* still_required_checks of a scope exception, as a bit set */
enum {
    TG_CHECK_WORKSPACE_MEMBER = 1 << 0,
    TG_CHECK_TENANT_ENTITLED = 1 << 1,
    TG_CHECK_RECORD_IN_WORKSPACE = 1 << 2,
    TG_CHECK_RECORD_IN_TENANT = 1 << 3,
    TG_CHECK_CAPABILITY = 1 << 4
};

enum { TG_NULL, TG_INTEGER, TG_REAL, TG_TEXT, TG_BOOLEAN, TG_BLOB };

typedef struct tg_value {
    int type;      /* TG_NULL, TG_INTEGER, TG_REAL, TG_TEXT, TG_BOOLEAN (in i), TG_BLOB */
    int64_t i;
    double r;
    const char *s; /* TG_TEXT (NUL-terminated) and TG_BLOB */
    size_t n;      /* bytes in s (TG_TEXT: 0 means strlen(s)) */
} tg_value;

/* A row filter: the rows of a table that are visible (soft deletes, archive flags, status
 * lists). Structured data from the rules, never SQL text; values are bound parameters.
 * A NULL in the column satisfies only is_null (SQL comparison semantics). */
typedef enum {
    TG_FILTER_IS_NULL,
    TG_FILTER_IS_NOT_NULL,
    TG_FILTER_EQ,
    TG_FILTER_NE,
    TG_FILTER_LT,
    TG_FILTER_LE,
    TG_FILTER_GT,
    TG_FILTER_GE,
    TG_FILTER_IN,
    TG_FILTER_NOT_IN,
    TG_FILTER_OP_COUNT
} tg_filter_op;

typedef struct tg_filter_cond {
    const char *column;
    tg_filter_op op;
    const tg_value *values; /* TG_INTEGER, TG_REAL, TG_TEXT or TG_BOOLEAN (bound as 1/0) */
    size_t n_values;        /* 0 for is_null/is_not_null, 1 for a comparison, 1..64 for
                             * in/not_in */
} tg_filter_cond;

typedef struct tg_row_filter {
    const tg_filter_cond *conds; /* all must hold (AND) */
    size_t n_conds;              /* 0: every row is visible */
} tg_row_filter;

/* Keys: record ids, owners, keyset positions, users, workspaces and tenants are tg_values of
 * type TG_INTEGER, TG_TEXT or TG_BLOB; TG_NULL means "absent". Which types a key may have
 * comes from the declared type of its column in the database (INTEGER affinity: integers;
 * TEXT: text; a declared BLOB: blobs, text given is bound as a blob; no declared type,
 * NUMERIC or REAL: integer, text or blob as given). A key of another type is TG_MISUSE
 * before any decision. These build one (the text or bytes stay owned by the caller). */
static inline tg_value tg_key_int(int64_t i) {
    tg_value v = {TG_INTEGER, i, 0, NULL, 0};
    return v;
}
static inline tg_value tg_key_text(const char *s) {
    tg_value v = {TG_TEXT, 0, 0, s, 0};
    return v;
}
static inline tg_value tg_key_blob(const void *p, size_t n) {
    tg_value v = {TG_BLOB, 0, 0, (const char *)p, n};
    return v;
}

typedef struct tg_path_rule {
    int declared;                  /* 0: the family has no such path */
    tg_path_type type;
    tg_anchor scope_anchor;
    const char *entitlement_rule;  /* "workspace_and_tenant_required" */
    const char *capability_rule;   /* "capability_after_scope" */
    int not_entitled_result;       /* always 404 in a valid rule set */
    int missing_capability_result; /* always 403 in a valid rule set */
    tg_lookup record_lookup_behavior;
    int capability;                /* index into tg_rules.capabilities; -1: none declared,
                                    * and then the path is 403 for everyone once scope holds */
    int owner_family;              /* relation_manager: index of the owner family, else -1 */
    const char *via;               /* relation_manager: column holding the owner's id */
    tg_where where;
} tg_path_rule;

typedef struct tg_query_rule {
    tg_tenant_source tenant_source;
    const char *workspace_source;    /* "current_workspace" */
    const char *shape;               /* "owning_tenant" */
    const char *action_target_check; /* "ids_congruent_with_scope" */
    tg_search_rule search_rule;
} tg_query_rule;

typedef struct tg_field_value {
    const char *column;
    tg_value value;
} tg_field_value;

/* The key, tenant and workspace columns of one table: its own names where the rule gives
 * them (columns = { id =, tenant =, workspace = }), the app's columns otherwise. Never NULL
 * in a compiled rule set. */
typedef struct tg_columns {
    const char *id;
    const char *tenant;
    const char *workspace;
} tg_columns;

typedef struct tg_family {
    const char *name;
    const char *table;
    tg_columns columns;
    int owns_tenant_scope; /* always 1 */
    const char *primary_surface;
    tg_search_posture search_posture;
    tg_action_status action_surface_status;
    const char *action_surface_reason; /* NULL unless given */
    const char *notes;
    tg_path_rule paths[TG_PATH_COUNT];
    tg_query_rule query;
    const char *const *search_columns; /* global_search matches these columns */
    size_t n_search_columns;
    const tg_field_value *fixture; /* values for required columns when the matrix makes rows */
    size_t n_fixture;
    tg_row_filter row_filter; /* rows outside it are invisible on every path */
    tg_where where;
} tg_family;

typedef struct tg_scenario {
    int family; /* index into tg_rules.families */
    tg_scenario_type scenario_type;
    int expected_outcome; /* 200, 403, 404 or TG_OUTCOME_HIDDEN */
    const char *surface_class;
    const char *notes;
    int declared; /* 1: written in the rules; 0: derived from the family's paths */
    tg_where where;
} tg_scenario;

typedef struct tg_exception {
    const char *name;
    tg_exception_kind exception_kind;
    const char *table; /* NULL when the surface maps no table */
    tg_columns columns;
    const char *surface;
    const char *why_excepted;
    unsigned still_required_checks; /* TG_CHECK_* bits */
    int capability;                 /* index, -1 when TG_CHECK_CAPABILITY is not listed (and
                                     * then the exception is 403 once its scope checks hold) */
    tg_where where;
} tg_exception;

typedef struct tg_residual {
    const char *name;
    const char *table;
    tg_columns columns;
    const char *likely_surface;
    const char *why_not_in_first_slice;
    tg_where where;
} tg_residual;

typedef struct tg_role {
    const char *name;
    const uint64_t *grants; /* bit i set: capability i granted */
    tg_where where;
} tg_role;

/* The application mapping: where the engine finds what it needs in the database. */
typedef struct tg_app {
    const char *name;
    const char *id_column;        /* primary key of tenant-owned tables, default "id" */
    const char *tenant_column;    /* default "tenant_id" */
    const char *workspace_column; /* default "workspace_id" */
    /* fixture: values the matrix fixture gives every row it writes there (the override of
     * what it would fill in) */
    struct {
        const char *table, *id;
        tg_row_filter row_filter; /* a workspace outside it has no members */
        const tg_field_value *fixture;
        size_t n_fixture;
    } workspaces;
    struct {
        const char *table, *id, *workspace;
        tg_row_filter row_filter; /* a tenant outside it does not exist for decisions */
        const tg_field_value *fixture;
        size_t n_fixture;
    } tenants;
    struct {
        const char *table, *user, *workspace, *role; /* role NULL: the membership has none */
        const tg_field_value *fixture;
        size_t n_fixture;
    } workspace_members;
    struct {
        const char *table, *user, *tenant, *role; /* role may be NULL */
        const tg_field_value *fixture;
        size_t n_fixture;
    } tenant_members;
    /* operation_runs and audit_logs are optional: table NULL when the rules say false;
     * `implicit` 1 when the mapping is left out, and then the default table is the app's
     * only when it exists. Without an app table tenantguard keeps its own
     * (tenantguard_runs, tenantguard_audit). */
    struct {
        const char *table, *id, *type, *status, *workspace, *summary, *created_at, *started_at,
            *finished_at;
        int implicit;
    } operation_runs;
    struct {
        const char *table, *id, *workspace, *tenant, *action, *subject, *metadata, *created_at;
        int implicit;
    } audit_logs;
    struct {
        const char *table, *role, *capability; /* table NULL: roles come from the rules only */
    } role_grants; /* each row grants `capability` ("*": all) to `role`; read at open/reload */
    int64_t page_size;     /* default index page */
    int64_t max_page_size; /* largest accepted limit */
    int64_t max_bulk_ids;  /* largest accepted id list */
    tg_where where;
} tg_app;

typedef struct tg_rules {
    const char *version; /* content hash of the rule files, 16 hex digits */
    const char *dir;
    tg_app app;
    const tg_family *families;
    size_t n_families;
    const tg_scenario *scenarios; /* declared and derived, family by family */
    size_t n_scenarios;
    const tg_exception *exceptions;
    size_t n_exceptions;
    const tg_residual *residuals;
    size_t n_residuals;
    const tg_role *roles; /* the rule files' roles, then those only app.role_grants names */
    size_t n_roles;
    const char *const *capabilities;
    size_t n_capabilities;
    size_t n_files;
} tg_rules;

/* Names of the enum values above, as written in rule scripts ("detail", "scoped", ...). */
TG_API const char *tg_path_type_name(tg_path_type t);
TG_API const char *tg_anchor_name(tg_anchor a);
TG_API const char *tg_search_posture_name(tg_search_posture p);
TG_API const char *tg_action_status_name(tg_action_status s);
TG_API const char *tg_lookup_name(tg_lookup l);
TG_API const char *tg_tenant_source_name(tg_tenant_source s);
TG_API const char *tg_search_rule_name(tg_search_rule r);
TG_API const char *tg_scenario_type_name(tg_scenario_type t);
TG_API const char *tg_exception_kind_name(tg_exception_kind k);
/* "is_null", "eq", "not_in", ... as written in rule scripts. */
TG_API const char *tg_filter_op_name(tg_filter_op op);
/* "workspace_member", ... for one TG_CHECK_* bit; NULL for anything else. */
TG_API const char *tg_check_name(unsigned check_bit);
/* Index of a family by name, -1 when unknown. */
TG_API int tg_rules_family_index(const tg_rules *rules, const char *name);
/* Index of a path type by name, -1 when unknown. */
TG_API int tg_path_type_index(const char *name);

/* ---- findings (checks) ------------------------------------------------------------------- */

/* TG_LEVEL_INFO: a fact to act on that is no defect (lint --target citus reports them) */
typedef enum { TG_LEVEL_ERROR, TG_LEVEL_WARNING, TG_LEVEL_INFO } tg_level;

typedef struct tg_finding {
    tg_level level;
    const char *code;    /* stable, e.g. "unknown_field" */
    const char *message; /* one line, without the location */
    tg_where where;
} tg_finding;

typedef struct tg_findings tg_findings;

TG_API size_t tg_findings_count(const tg_findings *f);
/* The i-th finding, NULL past the end. Valid until tg_findings_free. */
TG_API const tg_finding *tg_findings_get(const tg_findings *f, size_t i);
TG_API size_t tg_findings_errors(const tg_findings *f);
TG_API void tg_findings_free(tg_findings *f);

/* Every check code with its level and a one-line explanation, for documentation and tools.
 * Returns NULL past the end. Static data. */
typedef struct tg_check_info {
    const char *code;
    tg_level level;
    const char *meaning;
} tg_check_info;
TG_API const tg_check_info *tg_check_info_get(size_t i);

/* ---- the engine ---------------------------------------------------------------------------- */

typedef struct tg_engine tg_engine;

/* Told the outcome of each automatic reload (tg_open_options.auto_reload_ms): status TG_OK
 * when the new rules now serve, else the failure (TG_RULES, TG_IO, ...) and the old rules
 * keep serving; message NULL on success, else "rules/x.lua:12: ..."; rule_version the
 * version serving now. Runs inside the tg_ctx_open that noticed the change, before that
 * context takes its rules; the strings are valid only during the call. It may call the
 * library (opening a context from it does not check again); closing the engine from it makes
 * that tg_ctx_open return TG_MISUSE. */
typedef void (*tg_reload_fn)(void *ud, int status, const char *message,
                             const char *rule_version);

typedef struct tg_open_options {
    /* A SQLite file, or a PostgreSQL database: a libpq URI ("postgresql://app@host/db") or
     * keyword/value string ("host=/run/postgresql dbname=app"). NULL or "" to check rules
     * without a database. */
    const char *db;
    int create;        /* create db when it does not exist; by default that is TG_IO
                        * "no such database: PATH" and no file appears */
    const char *rules; /* a directory of *.lua rule files, or one file */
    int busy_timeout_ms;            /* 0 to INT_MAX ms; 0: 5000 */
    int64_t instruction_budget;     /* for loading the rules; default 20,000,000 */
    size_t memory_cap;              /* bytes for loading the rules; default 64 MiB */
    /* Connection settings, applied with PRAGMAs when the database is opened and reported by
     * tg_engine_settings. Out of bounds is TG_MISUSE from tg_engine_open, naming the option. */
    int64_t cache_size_kib;         /* page cache per connection in KiB (not pages), 64 to
                                     * 1,073,741,824 (1 TiB); 0: SQLite's default (2,000 KiB) */
    int64_t mmap_size;              /* bytes of the file read through memory mapping, 0 to
                                     * 1,099,511,627,776 (1 TiB); 0: none. Above what this
                                     * SQLite build allows (2 GiB by default) is TG_LIMIT. */
    /* Automatic reload: 0 (the default) is off. Otherwise tg_ctx_open looks at the rule
     * files (name, size, mtime, ctime and inode of each *.lua file and of the directory: a
     * few stat calls, no reading) at most once per this many milliseconds, and reloads them
     * when anything changed, as tg_engine_reload does: a broken edit keeps the old rules
     * (and is not tried again until the files change again). Contexts already open keep
     * their rules. No look happens inside a read snapshot, during tg_run_matrix or tg_work
     * (the next tg_ctx_open after them looks). Each reload is reported to on_reload and, as a
     * line with "kind":"reload", to the decision file. Negative is TG_MISUSE. */
    int auto_reload_ms;
    tg_reload_fn on_reload; /* NULL: none */
    void *reload_ud;        /* passed to on_reload */
    /* PostgreSQL: the server cancels any statement that runs longer (it fails with TG_BUSY
     * and the connection stays usable). 0: 30,000 ms; -1: none; up to INT_MAX. */
    int statement_timeout_ms;
    /* Distributed mode, for a database sharded by tenant (Citus): every read by id with a
     * route tenant also carries the tenant column as a bound equality, so it routes to that
     * tenant's shard; a record of another tenant is then never read, and its 404 is logged
     * "not_found" rather than "foreign_tenant" or "foreign_workspace". Tables keyed on
     * (tenant, id) read that way in any mode. 0: automatic, on when the server is Citus
     * (the setting citus.version exists); 1: on (SQLite too); -1: off. */
    int distributed;
} tg_open_options;

/* Opens the database and loads the rules. On return *out is an engine whenever memory
 * allowed one, even on failure: read tg_engine_errmsg() and tg_engine_findings(), then
 * tg_engine_close() it. On TG_RULES the findings list every problem. */
TG_API TG_WUR int tg_engine_open(const tg_open_options *opts, tg_engine **out);

/* The connection settings the engine runs with, as SQLite reports them after open. */
typedef struct tg_settings {
    int64_t cache_size_kib;   /* page cache, KiB */
    int64_t mmap_size;        /* bytes read through mmap; 0: none */
    int busy_timeout_ms;      /* how long a statement waits for a lock */
    int64_t page_size;        /* bytes per database page */
    const char *journal_mode; /* "wal" (valid until tg_engine_close) */
    const char *synchronous;  /* "normal" (static) */
    const char *backend;      /* "sqlite" or "postgresql" (static); on PostgreSQL the SQLite
                               * fields above are 0 or "" */
    int statement_timeout_ms; /* PostgreSQL: the statement timeout; 0: none */
    int distributed;          /* 1 when reads by id pin the route tenant on every table */
} tg_settings;

/* Fills *out with the engine's connection settings. TG_MISUSE without a database. */
TG_API TG_WUR int tg_engine_settings(const tg_engine *eng, tg_settings *out);

/* ---- read snapshots ----
 * By default every decision runs in autocommit: each statement opens and closes its own read
 * transaction, which on SQLite costs more than a primary-key lookup. A read snapshot holds one
 * read transaction across a group of decisions: each of them sees the same data (a write
 * committed by another connection meanwhile is seen only after the snapshot ends), and none
 * pays for its own transaction.
 *
 * tg_engine_read_begin opens the snapshot (a deferred BEGIN: the data is fixed by the first
 * read after it) or, when one is open, joins it; tg_engine_read_end leaves it, and the last
 * holder to leave ends it. Calls are counted: every successful begin needs exactly one end,
 * from the same thread. The snapshot belongs to the engine's connection, not to a context:
 * every context of the engine decides inside it while it is open (a context opened with
 * `snapshot` holds it from tg_ctx_open to tg_ctx_close the same way).
 *
 * Inside a snapshot the engine is read-only: tg_ctx_insert, tg_ctx_update, tg_rollout,
 * tg_backfill_start, tg_backfill_control, tg_work and tg_run_matrix return TG_MISUSE and write
 * nothing (never a silent upgrade to a write transaction); tg_validate and tg_backfill_dry_run
 * read inside it.
 *
 * Trade-off: while a snapshot is open the connection keeps a read transaction, so SQLite cannot
 * checkpoint the WAL past it (the WAL file grows with every write other connections make) and
 * the engine's connection sees no newer data. Keep snapshots to a request; never hold one
 * across waiting for a user or the network.
 *
 * tg_engine_read_begin: TG_MISUSE on a closed engine, one without a database, or while the
 * connection is inside a write transaction (a callback of tg_run_matrix); TG_DB or TG_BUSY
 * when SQLite refuses. tg_engine_read_end: TG_MISUSE when no snapshot is open. tg_engine_close
 * ends an open snapshot. */
TG_API TG_WUR int tg_engine_read_begin(tg_engine *eng);
TG_API TG_WUR int tg_engine_read_end(tg_engine *eng);

/* Closes the engine. Contexts still open keep what they need alive and must be closed
 * too (they refuse to decide from now on). Safe on NULL. The pointer must not be used again
 * (see "Handles and misuse" above for calls from callbacks). */
TG_API void tg_engine_close(tg_engine *eng);

/* The message of the last failure on this engine: "rules/x.lua:12: ..." for rule errors.
 * Valid until the next call on the engine. */
TG_API const char *tg_engine_errmsg(const tg_engine *eng);

/* Loads the rule files again beside the current rules; swaps them in only when they are
 * valid. On failure the old rules keep serving and the findings of the failed load are
 * available through tg_engine_findings(). */
TG_API TG_WUR int tg_engine_reload(tg_engine *eng);

/* Findings of the last load or reload (warnings of a successful one, everything of a failed
 * one). Owned by the engine, valid until the next open/reload/lint. */
TG_API const tg_findings *tg_engine_findings(const tg_engine *eng);

/* Checks the rule files as they are on disk now against the database as it is now, without
 * changing the serving rules. *out is owned by the caller (tg_findings_free). */
TG_API TG_WUR int tg_engine_lint(tg_engine *eng, tg_findings **out);

/* The serving rules. Valid until the next successful reload or close. */
TG_API const tg_rules *tg_engine_rules(const tg_engine *eng);

/* A stamp of the rule files at `rules` (a directory or one file) as they are on disk now:
 * it changes when a *.lua file is added, removed, renamed or written (size, mtime, ctime,
 * inode), by stat calls only. What automatic reload compares; for tools that watch the
 * rules (tenantguard lint --watch). A directory that cannot be read has a stamp too. */
TG_API TG_WUR int tg_rules_stamp(const char *rules, uint64_t *out);

/* Loads and checks rules without an engine (no database checks unless db is given).
 * *out is owned by the caller. */
TG_API TG_WUR int tg_rules_check(const tg_open_options *opts, tg_findings **out);

/* ---- contexts and decisions ---------------------------------------------------------------- */

typedef struct tg_ctx tg_ctx;

typedef struct tg_ctx_options {
    tg_value user;      /* required */
    tg_value workspace; /* required */
    tg_value tenant;    /* the route tenant; TG_NULL: none */
    int snapshot;       /* 1: every decision of this context reads from one snapshot, held
                         * from tg_ctx_open to tg_ctx_close (see "read snapshots": it is the
                         * engine's read transaction, shared by the engine's other contexts,
                         * and the engine refuses writes until it ends) */
} tg_ctx_options;

/* Opens a context: one request made by `user` in `workspace` (and tenant). Membership,
 * entitlement and role are read once, on the first decision, and reused. The keys are copied
 * (the caller's strings need not outlive the call); a missing user or workspace, or a key
 * whose type its column cannot hold, is TG_MISUSE. The context keeps the rule version it was
 * opened with, even across a reload, until tg_ctx_close. *out is a context whenever memory
 * allowed one (close it even on failure). */
TG_API TG_WUR int tg_ctx_open(tg_engine *eng, const tg_ctx_options *opts, tg_ctx **out);
/* Closes the context and frees it; safe on NULL; the pointer must not be used again. Called
 * from this context's own decision sink it does nothing (the decision still needs it). */
TG_API void tg_ctx_close(tg_ctx *ctx);
/* The message of the last failure on this context (valid until its next call). */
TG_API const char *tg_ctx_errmsg(const tg_ctx *ctx);
/* The rules this context decides with (valid until tg_ctx_close). */
TG_API const tg_rules *tg_ctx_rules(const tg_ctx *ctx);

typedef struct tg_request {
    const char *family;    /* a family name, or NULL with `exception` (never both) */
    const char *exception; /* a scope exception's name instead of a family */
    tg_path_type path;
    tg_value id;           /* detail, row_action, canonical_viewer; relation_manager: one child
                            * (TG_NULL: none) */
    const tg_value *ids;   /* bulk_action; duplicates (same type and value) count once */
    size_t n_ids;          /* 1..app.max_bulk_ids, else TG_LIMIT before any id is read */
    tg_value owner;        /* relation_manager: the owner record's id */
    const char *query;     /* global_search (required; "" matches every row in scope) */
    int64_t limit;         /* index, relation_manager, global_search; 0: the rules' page size */
    tg_value after;        /* keyset: only ids greater than this (TG_NULL: from the first) */
    const char *capability; /* required in addition to the path's own capability */
} tg_request;

typedef struct tg_decision {
    int status;          /* 200, 403 or 404 */
    const char *reason;  /* short code for logs: "ok", "foreign_tenant", "not_member", ... */
    size_t n_records;
    size_t n_columns;
    const char *const *columns; /* column names of every record */
    const tg_value *values;     /* n_records * n_columns, row by row */
    int has_more;               /* a list path has more rows after this page */
    tg_value next_after;        /* pass as `after` for the next page (the last row's id, of
                                 * its type; TG_NULL when the page is empty) */
    tg_value row_id;            /* tg_ctx_insert: id of the new row; tg_ctx_update: the id
                                 * (TG_NULL otherwise) */
} tg_decision;

/* Decides a request. Returns TG_OK when a decision was made (read its status), or an error
 * status for a request that cannot be decided as asked (unknown family or capability, a
 * limit exceeded, a database error): TG_MISUSE for a malformed request (both family and
 * exception, an id missing, global_search without a query, a path out of range), a closed
 * engine, or a call from this context's own decision sink. *out is NULL unless TG_OK; it
 * and everything it points to stay valid until the next call on this context. */
TG_API TG_WUR int tg_ctx_resolve(tg_ctx *ctx, const tg_request *req, const tg_decision **out);

/* One column value for tg_ctx_insert / tg_ctx_update. */
typedef struct tg_column_value {
    const char *column;
    tg_value value;
} tg_column_value;

/* Inserts a row of `family` under the context's scope, like a row action: the workspace is
 * derived from the tenant, a supplied workspace_id or tenant_id that disagrees is rejected
 * (TG_REJECTED with a message), a missing scope or capability is a 404/403 decision. */
TG_API TG_WUR int tg_ctx_insert(tg_ctx *ctx, const char *family, const tg_column_value *values,
                                size_t n_values, const char *capability,
                                const tg_decision **out);
/* Updates row `id` of `family` under the context's scope. tenant_id can never change. */
TG_API TG_WUR int tg_ctx_update(tg_ctx *ctx, const char *family, const tg_value *id,
                                const tg_column_value *values, size_t n_values,
                                const char *capability, const tg_decision **out);

/* ---- raw SQL scoped to a context (PostgreSQL's row-level security) --------------------------
 * tg_ctx_query runs one statement of the application's own SQL inside a transaction whose
 * setting tenantguard.tenant_id (and tenantguard.workspace_id) is the context's route tenant
 * (and workspace), set with set_config(..., true): local to that transaction, never left on
 * the connection. With row-level security on (rollout "enable_rls"), every tenant-owned table
 * then shows and takes only that tenant's rows, whatever the SQL says. */

/* One result row: n_columns names and values, valid only during the call. Return 0 to go
 * on; anything else stops: the transaction is rolled back and tg_ctx_query returns
 * TG_ERROR. */
typedef int (*tg_row_fn)(void *ud, size_t n_columns, const char *const *columns,
                         const tg_value *values);

/* Runs `sql` (one statement; parameters $1..$n bound from params: TG_NULL, TG_INTEGER,
 * TG_REAL, TG_TEXT, TG_BLOB, TG_BOOLEAN) under the context's scope. The scope is checked first
 * as for a row action, without a capability: not a member, no route tenant, a tenant outside
 * the workspace, not entitled -> a 404 decision and no SQL runs. Otherwise each row goes to
 * on_row (may be NULL), *changes (may be NULL) gets the rows a write changed, the
 * transaction commits (inside a read snapshot the statement runs in it, under a savepoint
 * that is rolled back after), and the decision is 200 "ok". A failing statement (a policy's
 * WITH CHECK, a trigger, a syntax error) is TG_DB with the server's message and nothing
 * kept. TG_MISUSE on SQLite (no row-level security there: use tg_ctx_resolve and the
 * writes), on a connection inside another transaction, or from the decision log. *out
 * stays valid until the next call on the context. */
TG_API TG_WUR int tg_ctx_query(tg_ctx *ctx, const char *sql, const tg_value *params,
                               size_t n_params, tg_row_fn on_row, void *ud, int64_t *changes,
                               const tg_decision **out);

/* ---- explaining a decision ------------------------------------------------------------------
 * tg_ctx_explain decides a request as tg_ctx_resolve does and says why: every check of the
 * request in the order the resolver applies them, what each read and whether it passed, and
 * which one decided the status. It is for operators debugging a refusal, not for the hot
 * path: it reads the facts again with statements of its own (membership, the tenant's
 * workspace, entitlement, the record) and costs tg_ctx_resolve nothing. Its status and reason
 * are derived from its own checks and are always those of tg_ctx_resolve: when they are not
 * (a bug), it returns TG_ERROR rather than an explanation that contradicts the decision.
 *
 * Fail closed: an explanation names only keys the caller sent (user, workspace, tenant, ids,
 * owner), role and capability names, and rule names; of a row that is not the caller's it
 * says which check refused it ("belongs to another tenant of this workspace"), never a
 * column value of it. */

typedef enum {
    TG_EXPLAIN_PASS, /* the check held */
    TG_EXPLAIN_FAIL, /* the check refused */
    TG_EXPLAIN_SKIP  /* reserved: a check that cannot be evaluated (no route tenant to compare
                      * a record with, say) is left out of the list today */
} tg_explain_result;

typedef struct tg_explain_check {
    const char *check;  /* the check as the decision log names it (tg_reason_check): "path",
                         * "membership", "tenant_context", "tenant_workspace", "entitlement",
                         * "record", "owner", "capability" */
    const char *step;   /* the finer step: the check's name, or "row_filter", "record_tenant",
                         * "record_workspace", "relation", "query", ... */
    int result;         /* tg_explain_result */
    const char *read;   /* one line: what the check read and found */
    const char *reason; /* the decision's reason when this check refuses, else NULL */
} tg_explain_check;

typedef struct tg_explanation {
    int status;                     /* 200, 403 or 404, as tg_ctx_resolve decides */
    const char *reason;             /* as tg_ctx_resolve's */
    const char *decided_by;         /* checks[decided_at].check */
    size_t decided_at;              /* the first check that refused; the last check on 200 */
    const tg_explain_check *checks; /* in the order the resolver applies them */
    size_t n_checks;
    const tg_decision *decision;    /* the decision itself (records on 200): valid until the
                                     * next call on the context, as tg_ctx_resolve's */
} tg_explanation;

/* Explains request req (see above). The decision is not sent to the decision log. Errors as
 * tg_ctx_resolve (a malformed request is TG_MISUSE, ...), plus TG_ERROR when the explanation
 * disagrees with the decision. *out is owned by the caller (tg_explanation_free) and NULL
 * unless TG_OK; its strings live as long as it does. */
TG_API TG_WUR int tg_ctx_explain(tg_ctx *ctx, const tg_request *req, tg_explanation **out);
TG_API void tg_explanation_free(tg_explanation *e);

/* The check a decision's reason names: "path" (path_not_declared, search_disabled),
 * "membership" (not_member), "tenant_context" (no_tenant_context), "tenant_workspace"
 * (tenant_not_in_workspace), "entitlement" (not_entitled), "record" (not_found,
 * foreign_tenant, foreign_workspace, workspace_mismatch, wrong_owner), "owner" (owner_*),
 * "capability" (missing_capability, and ok: the last check, which held); NULL for NULL or a
 * reason the library does not make. Static strings. */
TG_API const char *tg_reason_check(const char *reason);

/* ---- the workspace_id rollout ---------------------------------------------------------------- */

/* Runs one schema phase on every tenant-owned table the rules name (families and residual
 * entries), each phase in one transaction, idempotent, audited:
 *   "add_columns"          phase 1: nullable workspace_id + indexes
 *   "drop_columns"         undoes phase 1 (refused once phase 3 is applied)
 *   "enforce_writes"       phase 1.5: triggers that bind every raw write
 *   "drop_triggers"        undoes phase 1.5
 *   "quarantine_orphans"   moves rows whose tenant no longer exists to tenantguard_quarantine
 *                          (with every column, restorable) so they can never be served
 *   "enforce_constraints"  phase 3: NOT NULL, FK to workspaces, composite FK to tenants and
 *                          the audit-log check, by SQLite's table-rebuild procedure; refused
 *                          (TG_REFUSED) while validation finds anything to fix
 * The message (tg_engine_errmsg) says what was done or why it was refused. */
TG_API TG_WUR int tg_rollout(tg_engine *eng, const char *phase);

/* How a phase waits for its locks on PostgreSQL (SQLite ignores them). There each DDL
 * statement runs with a short lock_timeout: one that cannot take its lock at once gives way
 * (no application query queues behind it for longer) and is retried with exponential
 * backoff and jitter; after lock_retry_ms of that the phase fails with TG_BUSY, naming the
 * table and the lock it waited for, and running it again later finishes it. Zero: the
 * default. */
typedef struct tg_rollout_options {
    int lock_timeout_ms; /* one statement's lock wait (lock_timeout); 0: 200 */
    int lock_retry_ms;   /* how long a step keeps retrying; 0: 60,000 */
} tg_rollout_options;

/* tg_rollout with options (NULL: the defaults). */
TG_API TG_WUR int tg_rollout_with(tg_engine *eng, const char *phase,
                                  const tg_rollout_options *opts);

typedef struct tg_table_counts {
    const char *table;
    int has_column;      /* workspace_id exists yet */
    int64_t rows;
    int64_t unbound;     /* workspace_id NULL (all rows while the column is missing) */
    int64_t would_set;   /* unbound rows whose tenant exists */
    int64_t cannot_bind; /* unbound rows whose tenant no longer exists */
    int64_t correct;     /* workspace_id equals the tenant's workspace */
    int64_t mismatched;  /* workspace_id set but differs from the tenant's workspace */
    int64_t samples[5];  /* ids of rows that cannot be bound */
    size_t n_samples;
} tg_table_counts;

typedef struct tg_backfill_plan {
    tg_table_counts *tables;
    size_t n_tables;
} tg_backfill_plan;

/* Counts what a backfill would do, per table; changes nothing. *out is owned by the caller. */
TG_API TG_WUR int tg_backfill_dry_run(tg_engine *eng, tg_backfill_plan **out);
TG_API void tg_backfill_plan_free(tg_backfill_plan *plan);

typedef struct tg_backfill_options {
    double batch_ms;      /* target time per batch, default 50 */
    int pause_ms;         /* pause between batches, default 0 */
    int64_t batch_rows;   /* first batch size, default 1000 (then it adapts) */
} tg_backfill_options;

/* Queues a backfill: an operation run (in the app's operation_runs and in
 * tenantguard_runs), one durable job per table, and an audit entry. Changes no row: a
 * worker (tg_work) does the work. Refused while a table lacks workspace_id. */
TG_API TG_WUR int tg_backfill_start(tg_engine *eng, const tg_backfill_options *opts,
                                    int64_t *run_id);

typedef struct tg_run_info {
    int64_t id;
    int64_t operation_run_id;
    const char *status; /* queued, running, paused, cancelled, completed,
                           completed_with_errors */
    int64_t rows_total;  /* rows to look at, when queued */
    int64_t rows_done;   /* rows looked at so far */
    int64_t rows_set;    /* rows bound */
    int64_t rows_corrected; /* rows whose wrong workspace_id was corrected */
    int64_t rows_unbound;   /* rows that cannot be bound (listed in tenantguard_unbound) */
    int64_t batches;
    double longest_batch_ms;
    double seconds;      /* time spent in batches */
} tg_run_info;

/* The run `run_id` (0: the latest). `status` is a static string of the library (valid for the
 * life of the program). */
TG_API TG_WUR int tg_backfill_status(tg_engine *eng, int64_t run_id, tg_run_info *out);
/* "pause", "resume" or "cancel" a run; audited. */
TG_API TG_WUR int tg_backfill_control(tg_engine *eng, int64_t run_id, const char *action);

typedef struct tg_progress {
    int64_t run_id;
    const char *table;
    int64_t table_done, table_total;
    int64_t run_done, run_total;
    int64_t batch_rows, next_batch_rows;
    double batch_ms;
    double rows_per_second; /* over this worker's batches so far */
} tg_progress;

/* Return nonzero to stop the worker after this batch. */
typedef int (*tg_progress_fn)(void *ud, const tg_progress *p);

typedef struct tg_work_options {
    tg_progress_fn progress;
    void *ud;
    double max_seconds;    /* stop after this long (0: until nothing is left) */
    int64_t max_batches;   /* stop after this many batches (0: no limit) */
    double batch_ms;       /* this worker's time target per batch, in place of the run's
                              (0: the run's, tg_backfill_options.batch_ms) */
    /* PostgreSQL only (ignored on SQLite, which has no standbys): before each batch the
     * worker reads the standbys' replay lag and, while it is above max_replay_lag_ms, waits
     * (outside any transaction) instead of writing. 0: no check. The lag is what
     * replay_lag_sql returns (one row, one number of milliseconds; no row or NULL: no lag),
     * by default the largest replay_lag of pg_stat_replication, which only a superuser or a
     * member of pg_read_all_stats can read: for another role the worker refuses to start
     * (TG_REFUSED) rather than see no lag. The query is the caller's own SQL, run as is. */
    double max_replay_lag_ms;
    const char *replay_lag_sql;
} tg_work_options;

typedef struct tg_work_result {
    int64_t batches;
    int64_t rows;          /* rows looked at */
    double longest_batch_ms;
    int idle;              /* 1: stopped because no queued work was left */
    int64_t lag_waits;     /* times the worker waited for the standbys (max_replay_lag_ms) */
    double lag_wait_seconds; /* time spent waiting for them */
} tg_work_result;

/* The worker: claims queued work and runs it in keyset batches, each batch one
 * BEGIN IMMEDIATE transaction that also advances the job's checkpoint, so a batch is applied
 * exactly once however many workers run and wherever one is killed. The progress function
 * runs between batches, outside any transaction: called from it, tg_work returns TG_BUSY,
 * and tg_engine_close makes this tg_work stop and return TG_MISUSE, freeing the engine as it
 * returns. */
TG_API TG_WUR int tg_work(tg_engine *eng, const tg_work_options *opts, tg_work_result *out);

typedef struct tg_validation_check {
    const char *name;  /* "null_workspace", "workspace_mismatch", "audit_tenant_without_workspace" */
    const char *table;
    int64_t count;
} tg_validation_check;

typedef struct tg_validation {
    int ok;
    tg_validation_check *checks;
    size_t n_checks;
} tg_validation;

/* The post-rollout checks, all of which must be zero. *out is owned by the caller. */
TG_API TG_WUR int tg_validate(tg_engine *eng, tg_validation **out);
TG_API void tg_validation_free(tg_validation *v);

/* ---- the guard-scenario matrix --------------------------------------------------------------- */

typedef struct tg_matrix_row {
    const char *family;         /* a family, or a scope exception's name (is_exception) */
    int is_exception;
    tg_scenario_type scenario_type;
    tg_path_type path;
    int expected_outcome;       /* 200, 403, 404 or TG_OUTCOME_HIDDEN */
    const char *surface_class;
    const char *notes;
    int declared;               /* 1: written in the rules; 0: part of the standard set */
} tg_matrix_row;

typedef struct tg_matrix_check {
    const char *actor;  /* "full", "no_capability", "no_role", "not_entitled", "not_member" */
    const char *what;   /* what was attempted, e.g. "detail of a tenant-B record" */
    int expected;       /* 200, 403, 404, or TG_OUTCOME_HIDDEN */
    int actual;
    const char *reason; /* the decision's reason */
    int pass;
    const char *failure; /* why it failed (NULL when it passed) */
    const char *row;     /* when it failed: the offending row, "policies row 12 (tenant 8)"
                          * (a returned row that should not be there, a missing one, or the
                          * record the request named); NULL when it passed or named none */
} tg_matrix_check;

typedef struct tg_matrix_result {
    tg_matrix_row row;
    int pass;
    int actual_outcome;  /* of the scenario's main check */
    const char *message; /* first failure, "family Policy, wrong_tenant_detail: ..." */
    const tg_matrix_check *checks;
    size_t n_checks;
    double seconds;      /* wall-clock time its checks took (0 for tg_matrix) */
} tg_matrix_result;

typedef struct tg_matrix_report {
    const tg_matrix_result *results;
    size_t n_results;
    size_t passed, failed;
    const char *mutation; /* NULL for the plain run */
    /* With a mutation these rules cannot express (see tg_mutation_lacking): what they lack,
     * e.g. "no global_search path". Such a run fails nothing and proves nothing: it is
     * neither caught nor a survivor. NULL when the mutation applies. */
    const char *not_applicable;
} tg_matrix_report;

/* The scenarios the rules define: the standard set derived from each family's paths and
 * search posture (and each exception's checks), plus the ones declared. *out is owned by
 * the caller (tg_matrix_free). */
TG_API TG_WUR int tg_matrix(tg_engine *eng, tg_matrix_report **out);

/* Runs every scenario against the database through the resolver, inside one transaction
 * that is rolled back: it builds its own fixture (two workspaces, tenants, the actors, rows
 * of every family) and compares each decision with the expected one. With `mutation` (one
 * of tg_mutation_name), the enforcement is weakened that way for the run, to prove the
 * matrix catches it. *out is owned by the caller. The engine's decision sink sees every
 * decision of the run; from it, tg_engine_reload and a nested tg_run_matrix return TG_BUSY,
 * and tg_engine_close stops the run (TG_MISUSE, *out NULL; the engine is freed when this
 * returns, never under the run). */
TG_API TG_WUR int tg_run_matrix(tg_engine *eng, const char *mutation, tg_matrix_report **out);
TG_API void tg_matrix_free(tg_matrix_report *r);

/* The i-th mutation's name and description, NULL past the end. */
TG_API const char *tg_mutation_name(size_t i, const char **description);
/* NULL when `mutation` weakens something rules r have, else the feature they lack (a static
 * string): a rule set without a global_search path cannot show search mutants caught. */
TG_API const char *tg_mutation_lacking(const tg_rules *r, const char *mutation);

/* ---- the decision log ------------------------------------------------------------------------ */

typedef struct tg_decision_event {
    tg_value user, workspace, tenant; /* tenant TG_NULL: no route tenant */
    const char *family; /* or the exception's name */
    const char *path;   /* "detail", ..., "insert", "update" */
    const tg_value *ids; /* the ids the request named (id, ids, or owner then id) */
    size_t n_ids;
    int status;
    const char *reason;
    const char *rule_version;
} tg_decision_event;

typedef void (*tg_decision_sink)(void *ud, const tg_decision_event *ev);

/* Every decision made through the engine's contexts is passed to sink (NULL removes it).
 * The event is valid only during the call. The sink runs after the decision is made and may
 * call the library (see "Handles and misuse" at the top): deciding again on the same context
 * is TG_MISUSE and never changes the decision being logged. */
TG_API void tg_engine_set_decision_sink(tg_engine *eng, tg_decision_sink sink, void *ud);
/* Appends every decision as one JSON line to the file at path (NULL stops). Keys keep their
 * type: an integer is a JSON number, text a JSON string, a blob {"blob":"<hex>"}. */
TG_API TG_WUR int tg_engine_set_decision_file(tg_engine *eng, const char *path);

/* Options of the decision log, as bits: TG_DECLOG_CHECK adds the check that decided each
 * decision (tg_reason_check of its reason) to every JSON line ("check":"record"); a sink
 * reads it with tg_reason_check(ev->reason). Mapped from the reason: no statement is run. */
#define TG_DECLOG_CHECK 1u
TG_API void tg_engine_set_decision_options(tg_engine *eng, unsigned flags);
/* The options set by tg_engine_set_decision_options (0 for NULL). */
TG_API unsigned tg_engine_decision_options(const tg_engine *eng);

#ifdef __cplusplus
}
#endif
#endif
