/* One allocation per tensor group (parameters, activations, workspace).
 * Sizes are computed from the model config before anything runs, so the arena
 * is allocated once with the exact size and its high-water mark is the peak. */
#ifndef MIXERLAB_ARENA_H
#define MIXERLAB_ARENA_H

#include "base/common.h"

#define ARENA_ALIGN 64

typedef struct {
    const char *name;
    unsigned char *base;
    size_t size; /* bytes reserved */
    size_t used; /* bytes handed out */
    size_t high; /* high-water mark of used */
} arena;

/* Bytes an arena needs to hold a tensor of n floats (alignment included). */
static inline size_t arena_floats_bytes(size_t n) { return ml_align_up(n * sizeof(float), ARENA_ALIGN); }

ml_status arena_init(arena *a, const char *name, size_t bytes);
void arena_free(arena *a);
/* Returns n floats from the arena; aborts if the plan under-sized the arena,
 * which is a programming error, not bad input. */
float *arena_alloc_floats(arena *a, size_t n);
void arena_reset(arena *a);

#endif
