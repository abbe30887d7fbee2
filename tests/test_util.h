/* Small helpers shared by the test programs (header-only, static). */
#ifndef MIXERLAB_TEST_UTIL_H
#define MIXERLAB_TEST_UTIL_H

#include "base/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_failures = 0;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, "\n");                                        \
            g_failures++;                                                 \
        }                                                                 \
    } while (0)

/* max|a-b| / max|ref| (the README's "How correctness is checked"); ref all zero counts as an error by itself. */
static inline double rel_err(const float *a, const double *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= md))
            md = isnan(d) ? INFINITY : d;
        if (fabs(ref[i]) > mr)
            mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : INFINITY;
}

static inline double rel_err_f(const float *a, const float *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)ref[i]);
        if (!(d <= md))
            md = isnan(d) ? INFINITY : d;
        if (fabs((double)ref[i]) > mr)
            mr = fabs((double)ref[i]);
    }
    return mr > 0 ? md / mr : INFINITY;
}

/* Guard floats after every output: an op that writes past its end shows. */
#define GUARD 16
static const float GUARD_VALUE = -12345.678f;

static inline float *alloc_guarded(size_t n)
{
    float *p = malloc((n + GUARD) * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory in test\n");
        exit(2);
    }
    for (size_t i = 0; i < n + GUARD; i++)
        p[i] = GUARD_VALUE;
    return p;
}

static inline int guard_intact(const float *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (p[i] != GUARD_VALUE)
            return 0;
    return 1;
}

static inline float *rand_floats(rng_state *r, size_t n, double lo, double hi)
{
    float *p = alloc_guarded(n);
    rng_fill_uniform(r, p, n, lo, hi);
    return p;
}

/* A fresh folder under /tmp for a test's files (exits 2 when none can be made), and its removal. */
static inline void test_tmpdir(char *dir, size_t n, const char *name)
{
    snprintf(dir, n, "/tmp/mixerlab_%s_XXXXXX", name);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(2);
    }
}

static inline void test_tmpdir_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", dir);
}

static inline int test_summary(const char *name)
{
    if (g_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, g_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
