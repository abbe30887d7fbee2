/* libFuzzer harness: the IDX reader (data/idx.c) on any decompressed bytes;
 * the first byte chooses images (3 dimensions) or labels (1). The gzip layer
 * is zlib's own. */
#include "data/idx.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int ndim = data[0] & 1 ? 3 : 1;
    uint8_t *raw = malloc(size);
    if (!raw)
        return 0;
    memcpy(raw, data + 1, size - 1);
    idx_array a;
    if (idx_parse("fuzz.idx", raw, size - 1, ndim, &a) == ML_OK) {
        unsigned sum = 0;
        for (size_t i = 0; i < a.count; i++)
            sum += a.data[i];
        (void)sum;
        idx_free(&a);
    }
    return 0;
}
