/* The IDX format of MNIST and Fashion-MNIST (gzip-compressed): a big-endian
 * magic 0x00000803 (unsigned bytes, 3 dimensions: images n x rows x cols) or
 * 0x00000801 (1 dimension: labels n), the dimensions as big-endian u32, then
 * the bytes. Read whole with zlib; every defect is an error naming the file. */
#ifndef MIXERLAB_IDX_H
#define MIXERLAB_IDX_H

#include "base/common.h"

#define IDX_MAX_BYTES ((size_t)1 << 30)

typedef struct {
    int ndim;
    uint32_t dims[3];
    size_t count;    /* product of dims */
    uint8_t *data;   /* count bytes */
} idx_array;

/* want_ndim 3 (images) or 1 (labels); ML_ERR_IO when unreadable, ML_ERR_FORMAT
 * for a truncated or corrupt gzip, a wrong magic, or data that does not match
 * the dimensions. */
ml_status idx_read(const char *path, int want_ndim, idx_array *out);
/* The same checks on the decompressed bytes raw[0..len) (malloc'd; taken
 * over: out->data on success, freed on failure); path names them in errors. */
ml_status idx_parse(const char *path, uint8_t *raw, size_t len, int want_ndim, idx_array *out);
void idx_free(idx_array *a);

#endif
