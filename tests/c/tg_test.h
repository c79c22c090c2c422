/* Shared by the C tests: a non-fatal CHECK that counts, and small file helpers. */
#ifndef TG_TEST_H
#define TG_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int failures = 0, checks = 0;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(cond)) {                                                                         \
            failures++;                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
        }                                                                                      \
    } while (0)

/* Prints the tally and returns the exit status. */
static inline int tg_test_done(void) {
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}

/* Writes text to dir/name (dir NULL: name is the path); exits on failure. */
static inline void tg_test_write(const char *dir, const char *name, const char *text) {
    char p[1024];
    if (dir)
        snprintf(p, sizeof p, "%s/%s", dir, name);
    else
        snprintf(p, sizeof p, "%s", name);
    FILE *f = fopen(p, "w");
    if (!f) {
        perror(p);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

#endif
