/* Error reporting, exit codes and small helpers shared by every module.
 *
 * Functions that can fail return an ml_status (0 = ok). The failing function
 * records one line of text with ml_fail(); the CLI prints it and exits with the
 * status as its exit code, so the codes below are the documented exit codes. */
#ifndef MIXERLAB_COMMON_H
#define MIXERLAB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum {
    ML_OK = 0,
    ML_ERR_RUNTIME = 1, /* internal or unexpected failure */
    ML_ERR_USAGE = 2,   /* bad flag, unknown name, value out of range */
    ML_ERR_IO = 3,      /* file missing, unreadable, unwritable, disk full */
    ML_ERR_FORMAT = 4,  /* file contents malformed: truncated, corrupt, wrong shape */
    ML_ERR_NOMEM = 5,   /* allocation failed (size reported) */
} ml_status;

/* Per-element math shared by the CPU reference and the CUDA kernels. */
#ifdef __CUDACC__
#define ML_HD __host__ __device__
#else
#define ML_HD
#endif

/* A pointer parameter through which alone its object is reached in the
 * function, so loads may move above stores through the others: __restrict__
 * under nvcc and in C++ (the CUDA emulator compiles the kernels as C++),
 * C's restrict otherwise. */
#if defined(__CUDACC__) || defined(__cplusplus)
#define ML_RESTRICT __restrict__
#else
#define ML_RESTRICT restrict
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Records the message for the current failure and returns code. */
ml_status ml_fail(ml_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ml_last_error(void);
void ml_clear_error(void);

/* ML_ERR_NOMEM naming `what`, the bytes needed and the bytes available when
 * `bytes` exceed what this process can still get: /proc/meminfo's
 * MemAvailable, and the room left under the cgroup's memory limit (v2
 * memory.max - memory.current, v1 memory.limit_in_bytes - usage_in_bytes, of
 * its cgroup and every ancestor). Call it with the whole plan of a command
 * before allocating any of it (overcommit would otherwise let a huge
 * allocation succeed and die later). */
ml_status ml_check_fits(double bytes, const char *what);
/* The bytes available as above (SIZE_MAX when nothing can be read); *source
 * names the limit that decided it ("MemAvailable", "cgroup memory.max", ...). */
size_t ml_bytes_available(const char **source);

/* The one checked product for sizes computed from user input:
 * *out = factors[0] x ... x factors[n-1] x headroom. headroom is the largest
 * multiple of the product a later size takes (workspace a few times the
 * tensor, bytes per float, ...; ML_SIZE_HEADROOM covers every op here) and is
 * checked but not included in *out. A product that does not fit in size_t is a
 * usage error naming what and the factors, never a wrapped size. */
#define ML_SIZE_HEADROOM ((size_t)1024)
ml_status ml_size_product(size_t *out, const char *what, int n, const size_t *factors, size_t headroom);
/* a + b, refused the same way when it wraps. */
ml_status ml_size_add(size_t *out, const char *what, size_t a, size_t b);

/* A whole regular file into a new buffer (*out, freed by the caller; *size
 * bytes). A missing, unreadable or non-regular file (a directory, a FIFO, a
 * device) is ML_ERR_IO; a file over max_bytes is ML_ERR_FORMAT naming `what`
 * and the limit; with max_bytes 0 there is no limit but the memory this
 * process can still get (ml_check_fits). */
ml_status ml_read_file(const char *path, size_t max_bytes, const char *what, unsigned char **out, size_t *size);

/* Checked allocation: on failure records ML_ERR_NOMEM naming what and how much. */
void *ml_malloc(size_t bytes, const char *what);
void *ml_calloc(size_t count, size_t size, const char *what);

#ifdef __cplusplus
}
#endif

/* Propagate a failure from a call that already recorded its message. */
#define ML_TRY(expr)                     \
    do {                                 \
        ml_status ml_try_s_ = (expr);    \
        if (ml_try_s_ != ML_OK)          \
            return ml_try_s_;            \
    } while (0)

/* Programming errors (not bad input): print the failing statement and abort. */
#define ML_ASSERT(cond)                                                            \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "mixerlab: internal error: %s failed at %s:%d\n", #cond, \
                    __FILE__, __LINE__);                                           \
            abort();                                                               \
        }                                                                          \
    } while (0)

/* Overflow-checked size arithmetic for shape-derived byte counts. */
static inline int ml_mul_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

/* Hot row kernels get an AVX2 clone chosen at load time (ifunc), so one
 * binary runs on any x86-64 and uses 256-bit lanes where the CPU has them. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MIXERLAB_NO_CLONES)
#define ML_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ML_CLONES
#endif

static inline size_t ml_align_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

#endif
