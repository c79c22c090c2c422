/* Automatic reload: a cheap stamp of the rule files (stat calls only), looked at from
 * tg_ctx_open at most once per interval, and a reload when it changed. A reload never
 * touches a context already open (each keeps the plan, and so the rules, it opened with). */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define FNV_OFFSET UINT64_C(14695981039346656037)
#define FNV_PRIME UINT64_C(1099511628211)

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * FNV_PRIME;
    return h;
}

static uint64_t fnv_int(uint64_t h, int64_t v) {
    for (int i = 0; i < 8; i++, v >>= 8)
        h = (h ^ (unsigned char)(v & 0xff)) * FNV_PRIME;
    return h;
}

/* What identifies one version of a file: where it lives, how long it is, when it was
 * written and when its inode last changed (a `cp -p` or `touch -d` that restores an old
 * mtime still moves the ctime). */
static uint64_t stat_hash(const char *name, const struct stat *st) {
    uint64_t h = fnv_bytes(FNV_OFFSET, name, strlen(name) + 1);
    h = fnv_int(h, (int64_t)st->st_dev);
    h = fnv_int(h, (int64_t)st->st_ino);
    h = fnv_int(h, (int64_t)st->st_size);
    h = fnv_int(h, (int64_t)st->st_mtim.tv_sec);
    h = fnv_int(h, (int64_t)st->st_mtim.tv_nsec);
    h = fnv_int(h, (int64_t)st->st_ctim.tv_sec);
    h = fnv_int(h, (int64_t)st->st_ctim.tv_nsec);
    return h;
}

/* The files the loader would read (load.c's list_rule_files: *.lua, no dot files, regular
 * files through links), combined independently of the directory's order. */
static uint64_t stamp_of(const char *rules) {
    struct stat st;
    if (stat(rules, &st) != 0)
        return fnv_int(FNV_OFFSET, -(int64_t)errno);
    if (!S_ISDIR(st.st_mode))
        return stat_hash("", &st);
    /* not the directory's own times: an editor's swap and backup files move them */
    DIR *d = opendir(rules);
    if (!d)
        return fnv_int(FNV_OFFSET + 1, -(int64_t)errno);
    uint64_t sum = FNV_OFFSET;
    size_t n = 0;
    struct dirent *e;
    /* one file more than the loader accepts is enough to tell every change it would see */
    while ((e = readdir(d)) != NULL && n <= TG__MAX_RULE_FILES) {
        size_t len = strlen(e->d_name);
        if (len < 5 || e->d_name[0] == '.' || strcmp(e->d_name + len - 4, ".lua") != 0)
            continue;
        char full[4096];
        struct stat fst;
        if ((size_t)snprintf(full, sizeof full, "%s/%s", rules, e->d_name) >= sizeof full ||
            stat(full, &fst) != 0 || !S_ISREG(fst.st_mode))
            continue;
        sum += stat_hash(e->d_name, &fst) * FNV_PRIME;
        n++;
    }
    closedir(d);
    return fnv_int(sum, (int64_t)n);
}

int tg_rules_stamp(const char *rules, uint64_t *out) {
    if (!rules || !out)
        return TG_MISUSE;
    *out = stamp_of(rules);
    return TG_OK;
}

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tg__watch_start(tg_engine *eng) {
    if (eng->opts.auto_reload_ms <= 0)
        return;
    /* taken before the load: an edit made while it runs is seen by the first look */
    eng->watch_stamp = stamp_of(eng->rules_dir);
    eng->watch_next_ms = monotonic_ms() + eng->opts.auto_reload_ms;
}

/* Failures that may pass by themselves: the same files are tried again at the next look. */
static int transient(int status) {
    return status == TG_BUSY || status == TG_DB || status == TG_NOMEM;
}

int tg__watch_check(tg_engine *eng) {
    if (eng->opts.auto_reload_ms <= 0 || eng->watch_busy || eng->in_matrix || eng->working ||
        eng->read_depth > 0)
        return TG_OK;
    int64_t now = monotonic_ms();
    if (now < eng->watch_next_ms)
        return TG_OK;
    eng->watch_next_ms = now + eng->opts.auto_reload_ms;
    uint64_t stamp = stamp_of(eng->rules_dir);
    if (stamp == eng->watch_stamp)
        return TG_OK;

    char previous[32];
    snprintf(previous, sizeof previous, "%s", tg_engine_rules(eng)->version);
    int st = tg_engine_reload(eng);
    if (!transient(st))
        eng->watch_stamp = stamp;
    /* a copy: the callback may call the engine, which rewrites its message */
    char *msg = st == TG_OK ? NULL : strdup(tg_engine_errmsg(eng));
    const char *text = st == TG_OK ? NULL : msg ? msg : tg_strerror(st);
    tg__declog_reload(eng, st, previous, text);
    if (!eng->opts.on_reload) {
        free(msg);
        return TG_OK;
    }
    /* the callback may close the engine: hold it until the callback has returned */
    eng->refs++;
    eng->watch_busy = 1;
    eng->opts.on_reload(eng->opts.reload_ud, st, text, tg_engine_rules(eng)->version);
    eng->watch_busy = 0;
    free(msg);
    int closed = eng->closed;
    tg__engine_release(eng);
    return closed ? TG_MISUSE : TG_OK;
}
