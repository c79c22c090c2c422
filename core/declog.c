/* The decision log: every decision goes to an optional callback and an optional file of
 * JSON lines (user, workspace, tenant, family, path, ids, status, reason, rule version). */
#include "ctx.h"

#include <time.h>

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
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
    fprintf(f, "{\"time\":\"%s.%03ldZ\",\"user\":%lld,\"workspace\":%lld,\"tenant\":", when,
            ts.tv_nsec / 1000000, (long long)ev->user, (long long)ev->workspace);
    if (ev->has_tenant)
        fprintf(f, "%lld", (long long)ev->tenant);
    else
        fputs("null", f);
    fputs(",\"family\":", f);
    json_string(f, ev->family);
    fputs(",\"path\":", f);
    json_string(f, ev->path);
    fputs(",\"ids\":[", f);
    for (size_t i = 0; i < ev->n_ids; i++)
        fprintf(f, "%s%lld", i ? "," : "", (long long)ev->ids[i]);
    fprintf(f, "],\"status\":%d,\"reason\":", ev->status);
    json_string(f, ev->reason);
    fputs(",\"rule_version\":", f);
    json_string(f, ev->rule_version);
    fputs("}\n", f);
}

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
