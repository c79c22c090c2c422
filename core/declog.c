/* The decision log: every decision goes to an optional callback and an optional file of
 * JSON lines (user, workspace, tenant, family, path, ids, status, reason, rule version, and
 * with TG_DECLOG_CHECK the check that decided, mapped from the reason). */
#include "ctx.h"

#include <string.h>
#include <time.h>

static void json_bytes(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void json_string(FILE *f, const char *s) { json_bytes(f, s ? s : "", s ? strlen(s) : 0); }

/* A key with its type: a number, a string, {"blob":"<hex>"}, or null. */
static void json_key(FILE *f, const tg_value *v) {
    switch (v->type) {
    case TG_INTEGER: fprintf(f, "%lld", (long long)v->i); break;
    case TG_TEXT:
        json_bytes(f, v->s ? v->s : "", v->s ? (v->n ? v->n : strlen(v->s)) : 0);
        break;
    case TG_BLOB:
        fputs("{\"blob\":\"", f);
        for (size_t i = 0; i < v->n; i++)
            fprintf(f, "%02x", (unsigned char)v->s[i]);
        fputs("\"}", f);
        break;
    default: fputs("null", f);
    }
}

void tg__declog_emit(tg_engine *eng, const tg_decision_event *ev) {
    if (eng->sink)
        eng->sink(eng->sink_ud, ev);
    FILE *f = eng->decision_file;
    if (!f)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "{\"time\":\"%s.%03ldZ\",\"user\":", when, ts.tv_nsec / 1000000);
    json_key(f, &ev->user);
    fputs(",\"workspace\":", f);
    json_key(f, &ev->workspace);
    fputs(",\"tenant\":", f);
    json_key(f, &ev->tenant);
    fputs(",\"family\":", f);
    json_string(f, ev->family);
    fputs(",\"path\":", f);
    json_string(f, ev->path);
    fputs(",\"ids\":[", f);
    for (size_t i = 0; i < ev->n_ids; i++) {
        if (i)
            fputc(',', f);
        json_key(f, &ev->ids[i]);
    }
    fprintf(f, "],\"status\":%d,\"reason\":", ev->status);
    json_string(f, ev->reason);
    fputs(",\"rule_version\":", f);
    json_string(f, ev->rule_version);
    if (eng->declog_flags & TG_DECLOG_CHECK) {
        const char *check = tg_reason_check(ev->reason);
        fputs(",\"check\":", f);
        if (check)
            json_string(f, check);
        else
            fputs("null", f);
    }
    fputs("}\n", f);
}

/* The reasons the resolver and the write guard decide with, and the check each names. */
static const struct {
    const char *reason, *check;
} reason_checks[] = {
    {"ok", "capability"},
    {"missing_capability", "capability"},
    {"not_found", "record"},
    {"ambiguous_id", "record"},
    {"foreign_tenant", "record"},
    {"foreign_workspace", "record"},
    {"workspace_mismatch", "record"},
    {"wrong_owner", "record"},
    {"not_member", "membership"},
    {"not_entitled", "entitlement"},
    {"tenant_not_in_workspace", "tenant_workspace"},
    {"no_tenant_context", "tenant_context"},
    {"owner_not_found", "owner"},
    {"owner_foreign_tenant", "owner"},
    {"owner_foreign_workspace", "owner"},
    {"owner_workspace_mismatch", "owner"},
    {"path_not_declared", "path"},
    {"search_disabled", "path"},
};

const char *tg_reason_check(const char *reason) {
    if (!reason)
        return NULL;
    for (size_t i = 0; i < sizeof reason_checks / sizeof *reason_checks; i++)
        if (strcmp(reason, reason_checks[i].reason) == 0)
            return reason_checks[i].check;
    return NULL;
}

void tg_engine_set_decision_options(tg_engine *eng, unsigned flags) {
    if (eng)
        eng->declog_flags = flags & TG_DECLOG_CHECK;
}

unsigned tg_engine_decision_options(const tg_engine *eng) { return eng ? eng->declog_flags : 0; }

void tg_engine_set_decision_sink(tg_engine *eng, tg_decision_sink sink, void *ud) {
    if (!eng)
        return;
    eng->sink = sink;
    eng->sink_ud = ud;
}

int tg_engine_set_decision_file(tg_engine *eng, const char *path) {
    if (!eng)
        return TG_MISUSE;
    if (eng->decision_file) {
        fclose(eng->decision_file);
        eng->decision_file = NULL;
    }
    if (!path)
        return TG_OK;
    FILE *f = fopen(path, "a");
    if (!f)
        return tg__engine_fail(eng, TG_IO, "cannot open decision log '%s'", path);
    setvbuf(f, NULL, _IOLBF, 0); /* one line, one write: a crash loses no whole decision */
    eng->decision_file = f;
    return TG_OK;
}

/* An automatic reload as one line of the decision file, beside the decisions:
 * {"time":..., "kind":"reload", "ok":true|false, "rules":DIR, "rule_version": the version
 * serving now, "previous_version": the one before, "error": "rules/x.lua:3: ..." | null}. */
void tg__declog_reload(tg_engine *eng, int status, const char *previous_version,
                       const char *message) {
    FILE *f = eng->decision_file;
    if (!f)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(f, "{\"time\":\"%s.%03ldZ\",\"kind\":\"reload\",\"ok\":%s,\"rules\":", when,
            ts.tv_nsec / 1000000, status == TG_OK ? "true" : "false");
    json_string(f, eng->rules_dir);
    fputs(",\"rule_version\":", f);
    json_string(f, tg_engine_rules(eng)->version);
    fputs(",\"previous_version\":", f);
    json_string(f, previous_version);
    fputs(",\"error\":", f);
    if (message)
        json_string(f, message);
    else
        fputs("null", f);
    fputs("}\n", f);
}
