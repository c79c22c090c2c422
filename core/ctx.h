/* A context: one request. Its scope (membership, entitlement, role) is read once, on the
 * first decision; its result buffers are reused by every decision, so a warm context
 * decides without allocating. */
#ifndef TG_CTX_H
#define TG_CTX_H

#include "engine.h"

struct tg_ctx {
    tg_engine *eng; /* one reference */
    tg__plan *plan; /* one reference: the rule version this context decides with */
    const tg_rules *rules;
    tg_value user, workspace, tenant; /* checked keys; text and blobs copied into `keys` */
    int has_tenant;
    int holds_snapshot; /* opened with `snapshot`: one count of the engine's read snapshot */

    /* scope, loaded once */
    int scope_loaded;
    int member;
    const tg_role *workspace_role;
    int tenant_known;     /* the route tenant exists */
    int tenant_in_ws;     /* ... and its workspace is the context's (type and value) */
    int entitled;
    const tg_role *role;  /* effective role inside the route tenant */

    /* the current decision */
    tg_decision dec;
    size_t n_vals;
    tg_value log_ids[2];  /* the ids a decision names, for the log (relation: owner, child) */
    size_t next_after_at; /* 1 + index in vals of the last listed row's id; 0: none */
    tg_value row_tenant;  /* a refused row's tenant (for the reason), bytes in row_tenant_buf */
    tg_value id_value;    /* a write's id, as the key it is written as */
    int quiet;            /* an inner decision of a write: not logged on its own */
    int in_log;           /* the decision log is running for this context's decision: a
                             re-entrant call is refused, a close is ignored */
    const tg__table_shape *shape; /* the table the current decision's records come from */

    /* storage, kept when a closed context is reused (everything above is cleared) */
    tg__buf keys;         /* bytes of user, workspace and tenant */
    tg_value *vals;
    size_t cap_vals;
    tg__buf text;         /* bytes of text and blob values */
    tg_value *ids;        /* bulk: the checked ids as given, then sorted distinct ones */
    size_t cap_ids;
    tg__buf row_tenant_buf;
    tg__buf row_id_buf;   /* bytes of dec.row_id */
    tg__buf scratch;      /* LIKE patterns, write SQL */
    tg__buf err;
};

/* Loads the scope if not loaded yet. */
TG_HIDDEN int tg__ctx_scope(tg_ctx *ctx);
/* The role named `name` in the context's rules, NULL when none is declared by that name
 * (and then no capability is granted: fail closed). */
TG_HIDDEN const tg_role *tg__ctx_role(const tg_ctx *ctx, const char *name);
/* Prepares *slot (persistent, once per plan) from the SQL built in sql, which it frees.
 * On failure the context's message names `what`. */
TG_HIDDEN int tg__ctx_prepare(tg_ctx *ctx, tg__stmt **slot, tg__buf *sql, const char *what);
/* Sets the context's message and returns status. */
TG_HIDDEN int tg__ctx_fail(tg_ctx *ctx, int status, const char *fmt, ...) TG_PRINTF(3, 4);
/* Starts a decision: clears the records. */
/* Under row-level security, the rest of this decision's statements see every tenant of the
 * context's workspace (a scope exception's workspace-wide reads); its checks narrow them as
 * without row-level security. A no-op without it. */
TG_HIDDEN void tg__ctx_scope_workspace(tg_ctx *ctx);
TG_HIDDEN void tg__ctx_begin(tg_ctx *ctx);
/* Finishes a decision with status and reason, sends it to the decision log, and points
 * the text values at their final storage. */
TG_HIDDEN void tg__ctx_decide(tg_ctx *ctx, int status, const char *reason, const char *target,
                              const char *path, const tg_value *ids, size_t n_ids);
/* Checks a request key against its column (see tg__key_check); TG_MISUSE with the message
 * on the context when it cannot be one. */
TG_HIDDEN int tg__ctx_key_slow(tg_ctx *ctx, const tg__keycol *kc, const char *field,
                               const tg_value *in, tg_value *out);
static inline int tg__ctx_key(tg_ctx *ctx, const tg__keycol *kc, const char *field,
                              const tg_value *in, tg_value *out) {
    if (tg__key_plain_integer(kc, in)) {
        *out = *in;
        return TG_OK;
    }
    return tg__ctx_key_slow(ctx, kc, field, in, out);
}
/* Appends the current row of st as one record (columns as in the table plan). */
TG_HIDDEN int tg__ctx_take_row(tg_ctx *ctx, tg__stmt *st, int n_columns);
/* The same from column `first` on. */
TG_HIDDEN int tg__ctx_take_row_at(tg_ctx *ctx, tg__stmt *st, int first, int n_columns);
/* Reads the scope from the first five columns of the current row (see tg__sql_scope). */
TG_HIDDEN void tg__ctx_scope_from_row(tg_ctx *ctx, tg__stmt *st);
/* Frees a context's storage. */
TG_HIDDEN void tg__ctx_free(tg_ctx *ctx);
/* Drops the records taken so far (a decision that must return nothing). */
TG_HIDDEN void tg__ctx_drop_records(tg_ctx *ctx);

/* Sends one event to the engine's decision sinks. */
TG_HIDDEN void tg__declog_emit(tg_engine *eng, const tg_decision_event *ev);

#endif
