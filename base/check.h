/* base/check.h: the assertion of moepool's unit tests. A failed CHECK prints where and why, counts
 * the failure in `failures` and goes on, so one run reports every broken case; main() returns
 * failures != 0. Include it once, in a test's .c file. */
#ifndef MP_CHECK_H
#define MP_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            failures++;                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
        }                                                                       \
    } while (0)

#endif
