#include "base/arena.h"

#include <stdlib.h>
#include <string.h>

ml_status arena_init(arena *a, const char *name, size_t bytes)
{
    memset(a, 0, sizeof *a);
    a->name = name;
    a->size = ml_align_up(bytes, ARENA_ALIGN);
    if (a->size == 0)
        return ML_OK;
    void *p = NULL;
    if (posix_memalign(&p, ARENA_ALIGN, a->size) != 0)
        return ml_fail(ML_ERR_NOMEM, "out of memory: %s arena needs %zu bytes", name, a->size);
    a->base = p;
    return ML_OK;
}

void arena_free(arena *a)
{
    free(a->base);
    memset(a, 0, sizeof *a);
}

float *arena_alloc_floats(arena *a, size_t n)
{
    size_t bytes = arena_floats_bytes(n);
    ML_ASSERT(a->used + bytes <= a->size);
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    if (a->used > a->high)
        a->high = a->used;
    return p;
}

void arena_reset(arena *a) { a->used = 0; }
