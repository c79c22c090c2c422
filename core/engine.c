/* The engine: opens the database, loads the rules, reloads them atomically, and lints. */
#include "ctx.h"
#include "grants.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tg__engine_fail(tg_engine *eng, int status, const char *fmt, ...) {
    /* formatted before the buffer is reset: an argument may point into it */
    va_list ap;
    va_start(ap, fmt);
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg__buf_reset(&eng->err);
    tg__buf_add(&eng->err, msg);
    return status;
}

static int fail_rules(tg_engine *eng, int status, const tg_findings *f) {
    tg__buf_reset(&eng->err);
    tg__findings_first_error(f, &eng->err);
    if (eng->err.len == 0)
        tg__buf_add(&eng->err, tg_strerror(status));
    return status;
}

/* Loads the rules and, with a database, the roles its role_grants table grants: every
 * load that sees a database (open, reload, lint, check) reads the table once, so what a
 * rule set grants is fixed when it is built, like everything else in it. */
static int load_rules(const tg_open_options *opts, sqlite3 *db, tg_findings *f,
                      tg__ruleset **out) {
    int st = tg__rules_load(opts, db, f, out);
    if (st == TG_OK && (st = tg__grants_read(*out, db, f)) != TG_OK) {
        tg__ruleset_release(*out);
        *out = NULL;
    }
    return st;
}

/* Opens the connection with the settings every writer and reader relies on. */
static int open_db(tg_engine *eng) {
    int create = eng->opts.create ? SQLITE_OPEN_CREATE : 0;
    int rc = sqlite3_open_v2(eng->db_path, &eng->db,
                             SQLITE_OPEN_READWRITE | create | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        errno = 0;
        FILE *probe = create ? NULL : fopen(eng->db_path, "rb");
        if (!create && !probe && (errno == ENOENT || errno == ENOTDIR)) {
            sqlite3_close(eng->db);
            eng->db = NULL;
            return tg__engine_fail(eng, TG_IO, "no such database: %s", eng->db_path);
        }
        if (probe)
            fclose(probe);
        int st = tg__engine_fail(eng, TG_DB, "cannot open database '%s': %s", eng->db_path,
                                 eng->db ? sqlite3_errmsg(eng->db) : sqlite3_errstr(rc));
        sqlite3_close(eng->db);
        eng->db = NULL;
        return st;
    }
    sqlite3_extended_result_codes(eng->db, 1);
    sqlite3_busy_timeout(eng->db, eng->opts.busy_timeout_ms > 0 ? eng->opts.busy_timeout_ms
                                                                : 5000);
    char *msg = NULL;
    rc = sqlite3_exec(eng->db,
                      "PRAGMA foreign_keys = ON; PRAGMA journal_mode = WAL; "
                      "PRAGMA synchronous = NORMAL;",
                      NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int st = tg__engine_fail(eng, TG_DB, "cannot configure database '%s': %s", eng->db_path,
                                 msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return st;
    }
    return TG_OK;
}

int tg_engine_open(const tg_open_options *opts, tg_engine **out) {
    if (!out)
        return TG_MISUSE;
    *out = NULL;
    tg_engine *eng = calloc(1, sizeof *eng);
    if (!eng)
        return TG_NOMEM;
    *out = eng;
    eng->refs = 1;
    if (!opts || !opts->rules || !opts->rules[0])
        return tg__engine_fail(eng, TG_MISUSE, "tg_engine_open: options.rules is required");
    eng->opts = *opts;
    eng->rules_dir = strdup(opts->rules);
    eng->db_path = opts->db && opts->db[0] ? strdup(opts->db) : NULL;
    if (!eng->rules_dir || (opts->db && opts->db[0] && !eng->db_path))
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    eng->opts.rules = eng->rules_dir;
    eng->opts.db = eng->db_path;
    if (eng->db_path) {
        int st = open_db(eng);
        if (st != TG_OK)
            return st;
    }
    eng->findings = tg__findings_new();
    if (!eng->findings)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    int st = load_rules(&eng->opts, eng->db, eng->findings, &eng->rules);
    if (st != TG_OK)
        return fail_rules(eng, st, eng->findings);
    return TG_OK;
}

void tg_engine_close(tg_engine *eng) {
    if (!eng || eng->closed)
        return;
    eng->closed = 1;
    tg__engine_release(eng);
}

/* Frees the engine once its handle is closed and no context uses it any more. */
void tg__engine_release(tg_engine *eng) {
    if (!eng || --eng->refs > 0)
        return;
    tg__plan_release(eng->plan);
    tg__ctx_free(eng->spare);
    if (eng->decision_file)
        fclose(eng->decision_file);
    tg__ruleset_release(eng->rules);
    tg_findings_free(eng->findings);
    if (eng->db)
        sqlite3_close_v2(eng->db);
    free(eng->rules_dir);
    free(eng->db_path);
    tg__buf_free(&eng->err);
    free(eng);
}

const char *tg_engine_errmsg(const tg_engine *eng) {
    if (!eng)
        return "out of memory";
    return eng->err.len ? tg__buf_str(&eng->err) : "ok";
}

int tg_engine_reload(tg_engine *eng) {
    if (!eng || !eng->rules_dir || eng->closed)
        return TG_MISUSE;
    tg_findings *f = tg__findings_new();
    if (!f)
        return tg__engine_fail(eng, TG_NOMEM, "out of memory");
    tg__ruleset *fresh = NULL;
    int st = load_rules(&eng->opts, eng->db, f, &fresh);
    tg_findings_free(eng->findings);
    eng->findings = f;
    if (st != TG_OK)
        return fail_rules(eng, st, f);
    tg__ruleset_release(eng->rules);
    eng->rules = fresh;
    /* open contexts keep the plan of their rule version; new ones get a new plan */
    tg__plan_release(eng->plan);
    eng->plan = NULL;
    tg__buf_reset(&eng->err);
    return TG_OK;
}

int tg__engine_plan(tg_engine *eng, tg__plan **out) {
    if (!eng->db)
        return tg__engine_fail(eng, TG_MISUSE, "this engine was opened without a database");
    if (eng->plan && eng->plan->schema_gen == eng->schema_gen &&
        eng->plan->mutation == eng->mutation) {
        *out = eng->plan;
        return TG_OK;
    }
    tg__plan_release(eng->plan);
    eng->plan = NULL;
    tg__buf msg = {0};
    int st = tg__plan_new(eng->rules, eng->db, eng->schema_gen, eng->mutation, &msg, &eng->plan);
    if (st != TG_OK)
        tg__engine_fail(eng, st, "%s", msg.len ? tg__buf_str(&msg) : tg_strerror(st));
    tg__buf_free(&msg);
    *out = eng->plan;
    return st;
}

void tg__engine_schema_changed(tg_engine *eng) { eng->schema_gen++; }

const tg_findings *tg_engine_findings(const tg_engine *eng) { return eng ? eng->findings : NULL; }

int tg_engine_lint(tg_engine *eng, tg_findings **out) {
    if (!eng || !out)
        return TG_MISUSE;
    *out = tg__findings_new();
    if (!*out)
        return TG_NOMEM;
    tg__ruleset *rs = NULL;
    int st = load_rules(&eng->opts, eng->db, *out, &rs);
    tg__ruleset_release(rs);
    /* findings are the answer; a rule error is not a failure of the lint itself */
    return st == TG_RULES ? TG_OK : st;
}

const tg_rules *tg_engine_rules(const tg_engine *eng) {
    return eng && eng->rules ? &eng->rules->pub : NULL;
}

int tg_rules_check(const tg_open_options *opts, tg_findings **out) {
    if (!opts || !out)
        return TG_MISUSE;
    *out = tg__findings_new();
    if (!*out)
        return TG_NOMEM;
    sqlite3 *db = NULL;
    if (opts->db && opts->db[0]) {
        /* SQLite opens lazily: a text file opens fine and only fails at the first read, so
         * read the schema once here; a database that cannot be read is an error finding,
         * never a lint with nothing to compare against */
        if (sqlite3_open_v2(opts->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
            sqlite3_exec(db, "SELECT count(*) FROM sqlite_schema", NULL, NULL, NULL) !=
                SQLITE_OK) {
            tg__findings_add(*out, TG_LEVEL_ERROR, "file_error", opts->db, 0,
                             "cannot read the database: %s", db ? sqlite3_errmsg(db) : "?");
            sqlite3_close(db);
            return TG_DB;
        }
    }
    tg__ruleset *rs = NULL;
    int st = load_rules(opts, db, *out, &rs);
    tg__ruleset_release(rs);
    sqlite3_close(db);
    return st == TG_RULES ? TG_OK : st;
}
