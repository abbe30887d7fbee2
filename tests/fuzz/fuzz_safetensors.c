/* libFuzzer harness: the safetensors reader (models/safetensors.c) on any
 * bytes as a whole file: header checks, then every tensor it accepts read
 * and converted as a loader would. */
#include "models/safetensors.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *bytes = malloc(size ? size : 1);
    if (!bytes)
        return 0;
    memcpy(bytes, data, size);
    st_file f;
    if (st_open_memory(&f, "fuzz.safetensors", bytes, size) != ML_OK)
        return 0; /* bytes freed by st_open_memory */
    for (int i = 0; i < f.count; i++) {
        const st_tensor *t = &f.tensors[i];
        if (st_find(&f, t->name) == NULL)
            abort(); /* every accepted name must be found again */
        if (t->numel > ((size_t)1 << 20))
            continue;
        float *dst = malloc((t->numel ? t->numel : 1) * sizeof *dst);
        if (dst)
            (void)st_load(&f, t->name, t->ndim, t->shape, dst);
        free(dst);
    }
    st_close(&f);
    return 0;
}
