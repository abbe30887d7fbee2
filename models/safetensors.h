/* safetensors reading and writing (the format of huggingface/safetensors; the README, "Weights" and "Inputs and outputs").
 *
 * Layout: u64 little-endian header length N, N bytes of JSON mapping tensor
 * names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the
 * data section that follows), then the raw little-endian data. Reading checks
 * everything a hostile or damaged file could get wrong and reports it naming
 * the file and the tensor; F32, F16 and BF16 convert to F32. Writing is F32. */
#ifndef MIXERLAB_SAFETENSORS_H
#define MIXERLAB_SAFETENSORS_H

#include "base/common.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER ((size_t)100 << 20)

typedef enum { ST_F32, ST_F16, ST_BF16, ST_OTHER } st_dtype;

typedef struct {
    char *name;
    st_dtype dtype;
    char dtype_name[16];
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    size_t begin, end; /* byte offsets into the data section */
} st_tensor;

typedef struct {
    char *path;
    unsigned char *bytes; /* the whole file */
    size_t size;
    size_t data_start;
    st_tensor *tensors;
    int count;
    char **meta; /* __metadata__'s string entries: key, value, key, value, ... */
    int n_meta;
} st_file;

ml_status st_open(st_file *f, const char *path);
/* The same on a file already in memory: takes bytes (malloc'd, size long),
 * freed by st_close, or at once when the header is refused; path names it in errors. */
ml_status st_open_memory(st_file *f, const char *path, unsigned char *bytes, size_t size);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
/* A string of __metadata__, or NULL. */
const char *st_meta(const st_file *f, const char *key);
/* Converts tensor t to F32 into dst (t->numel floats). */
ml_status st_read_f32(const st_file *f, const st_tensor *t, float *dst);
/* Reads an I64 or I32 tensor of class indices into dst (t->numel ints), refusing any outside
 * 0..num_classes-1 (naming the index and value). */
ml_status st_read_labels(const st_file *f, const st_tensor *t, int num_classes, int *dst);
/* The same for any integers in lo..hi; what names them in the error ("a class", "a token"). */
ml_status st_read_ints(const st_file *f, const st_tensor *t, int lo, int hi, const char *what, int *dst);
/* Finds name, checks it has exactly the given shape, converts into dst. */
ml_status st_load(const st_file *f, const char *name, int ndim, const int64_t *shape, float *dst);
/* "[2, 3, 64, 64]" */
void st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const float *data;
    const int64_t *i64; /* instead of data: an I64 tensor (labels) */
} st_entry;

/* Writes F32 (and I64) tensors atomically (temporary file, then rename): a failed write
 * (disk full, unwritable folder) leaves any earlier file untouched. meta is a
 * NULL-terminated list of key, value string pairs for __metadata__ (may be NULL). */
ml_status st_write(const char *path, const st_entry *entries, int n, const char *const *meta);

#endif
