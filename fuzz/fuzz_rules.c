/* libFuzzer target: the rule loader and compiler.
 *
 * The input is the text of up to MAX_FILES rule files separated by the byte 0x01 (SEP): each
 * part is written to 00.lua, 01.lua, ... in a scratch directory on tmpfs, and the directory
 * is checked with tg_rules_check against a small reference database, so the sandbox, the
 * compiler and the schema checks all see it. The public API loads rules only from files;
 * writing a few small files to /dev/shm costs far less than the Lua state a load creates.
 *
 * The instruction budget and memory cap are lowered (BUDGET, MEMORY_CAP) so that a run
 * stays fast; the shipped rules load well within both. Every finding is read in full, so a
 * dangling or unterminated message shows up under AddressSanitizer. */
#include "fuzz_common.h"
#include "tenantguard.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEP 0x01
#define MAX_FILES 8
#define BUDGET 2000000
#define MEMORY_CAP ((size_t)16 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char rules_dir[1024];
static const char *db_path;
static int files_written; /* by the previous input: stale ones are removed */
static int verbose;       /* TG_FUZZ_VERBOSE set: print each load's findings */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *scratch = tgf_scratch_dir();
    /* the rule files go in the scratch directory itself, which the refdb shares; its name
     * does not end in .lua, so the loader never takes it for a rule file */
    snprintf(rules_dir, sizeof rules_dir, "%s", scratch);
    verbose = getenv("TG_FUZZ_VERBOSE") != NULL;
    db_path = getenv("TG_FUZZ_NO_DB") ? NULL : tgf_refdb("ref.db", 20);
    return 0;
}

static void write_part(int i, const uint8_t *p, size_t n) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%02d.lua", rules_dir, i);
    FILE *fp = fopen(path, "wb");
    if (!fp || (n && fwrite(p, 1, n, fp) != n) || fclose(fp) != 0) {
        fprintf(stderr, "fuzz_rules: cannot write %s\n", path);
        abort();
    }
}

static size_t touch(const char *s) {
    return s ? strlen(s) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && n < MAX_FILES; i++) {
        if (i == size || data[i] == SEP) {
            /* the last file takes the rest, separators and all */
            size_t end = n == MAX_FILES - 1 ? size : i;
            write_part(n++, data + start, end - start);
            start = i + 1;
            if (end == size)
                break;
        }
    }
    for (int i = n; i < files_written; i++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%02d.lua", rules_dir, i);
        unlink(path);
    }
    files_written = n;

    tg_open_options o = {0};
    o.rules = rules_dir;
    o.db = db_path;
    o.instruction_budget = BUDGET;
    o.memory_cap = MEMORY_CAP;
    tg_findings *f = NULL;
    int st = tg_rules_check(&o, &f);
    size_t total = touch(tg_status_name(st)) + touch(tg_strerror(st));
    size_t count = tg_findings_count(f);
    if (verbose)
        fprintf(stderr, "fuzz_rules: %d file(s): %s, %zu finding(s)\n", n, tg_status_name(st),
                count);
    for (size_t i = 0; i < count; i++) {
        const tg_finding *it = tg_findings_get(f, i);
        if (!it)
            abort(); /* count and get disagree */
        if (verbose)
            fprintf(stderr, "  %s:%d: %s: %s [%s]\n", it->where.file ? it->where.file : "",
                    it->where.line, it->level == TG_LEVEL_ERROR ? "error" : "warning",
                    it->message ? it->message : "(null)", it->code ? it->code : "(null)");
        total += touch(it->code) + touch(it->message) + touch(it->where.file);
        if (!it->code || !it->message)
            abort(); /* every finding has a code and a message */
    }
    if (tg_findings_get(f, count) != NULL)
        abort();
    /* rule errors are findings (status TG_OK); any other failure says why in one */
    if (f && st != TG_OK && tg_findings_errors(f) == 0)
        abort();
    tg_findings_free(f);
    return total == (size_t)-1; /* keeps the reads above */
}
