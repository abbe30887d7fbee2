#include "models/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; this code copies it as it lies in memory");

static const struct {
    const char *name;
    st_dtype dtype;
    size_t size;
} dtype_table[] = {
    {"F32", ST_F32, 4},   {"F16", ST_F16, 2},      {"BF16", ST_BF16, 2},    {"F64", ST_OTHER, 8},
    {"I64", ST_OTHER, 8}, {"I32", ST_OTHER, 4},    {"I16", ST_OTHER, 2},    {"I8", ST_OTHER, 1},
    {"U64", ST_OTHER, 8}, {"U32", ST_OTHER, 4},    {"U16", ST_OTHER, 2},    {"U8", ST_OTHER, 1},
    {"BOOL", ST_OTHER, 1}, {"F8_E4M3", ST_OTHER, 1}, {"F8_E5M2", ST_OTHER, 1},
};

void st_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
}

static ml_status read_whole_file(const char *path, unsigned char **out, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ml_fail(ML_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ml_fail(ML_ERR_IO, "cannot read '%s': not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    unsigned char *buf = ml_malloc(len, path);
    if (!buf) {
        fclose(fp);
        return ML_ERR_NOMEM;
    }
    size_t got = fread(buf, 1, len, fp);
    int err = ferror(fp);
    fclose(fp);
    if (err || got != len) {
        free(buf);
        return ml_fail(ML_ERR_IO, "cannot read '%s': %s", path, err ? strerror(errno) : "short read");
    }
    *out = buf;
    *size = len;
    return ML_OK;
}

static int cmp_by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Parses one header entry; the caller frees on failure. */
static ml_status parse_entry(const st_file *f, const cJSON *item, st_tensor *t, size_t data_size)
{
    const char *path = f->path, *name = item->string;
    if (!cJSON_IsObject(item))
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dt))
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': missing or non-string dtype", path, name);
    size_t esize = 0;
    t->dtype = ST_OTHER;
    for (size_t i = 0; i < sizeof dtype_table / sizeof dtype_table[0]; i++) {
        if (strcmp(dt->valuestring, dtype_table[i].name) == 0) {
            t->dtype = dtype_table[i].dtype;
            esize = dtype_table[i].size;
        }
    }
    if (esize == 0)
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': unknown dtype '%.15s'", path, name,
                       dt->valuestring);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dt->valuestring);
    if (!cJSON_IsArray(sh))
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': missing shape", path, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': %d dimensions (at most %d)", path, name, nd,
                       ST_MAX_DIMS);
    t->ndim = nd;
    t->numel = 1;
    for (int i = 0; i < nd; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 9.007199254740992e15 ||
            d->valuedouble != floor(d->valuedouble))
            return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': shape[%d] is not a non-negative integer",
                           path, name, i);
        t->shape[i] = (int64_t)d->valuedouble;
        if (ml_mul_overflows(t->numel, (size_t)t->shape[i], &t->numel))
            return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': shape too large", path, name);
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1)))
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': data_offsets must be [begin, end]", path, name);
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, e = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (b < 0 || e < b || b != floor(b) || e != floor(e) || e > (double)data_size)
        return ml_fail(ML_ERR_FORMAT,
                       "'%s': tensor '%s': data_offsets [%.0f, %.0f] lie outside the %zu data bytes",
                       path, name, b, e, data_size);
    t->begin = (size_t)b;
    t->end = (size_t)e;
    size_t want;
    if (ml_mul_overflows(t->numel, esize, &want) || want != t->end - t->begin)
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': %zu data bytes for %zu %s values", path, name,
                       t->end - t->begin, t->numel, t->dtype_name);
    return ML_OK;
}

ml_status st_open(st_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path)
        return ml_fail(ML_ERR_NOMEM, "out of memory");
    ml_status s = read_whole_file(path, &f->bytes, &f->size);
    if (s != ML_OK) {
        st_close(f);
        return s;
    }
    if (f->size < 8) {
        st_close(f);
        return ml_fail(ML_ERR_FORMAT, "'%s': truncated: %zu bytes, too short for a safetensors header",
                       path, f->size);
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->bytes[i];
    if (hlen > f->size - 8 || hlen > ST_MAX_HEADER) {
        unsigned long long have = (unsigned long long)(f->size - 8);
        st_close(f);
        return ml_fail(ML_ERR_FORMAT, "'%s': header length %llu is past the end of the file (%llu bytes follow)",
                       path, (unsigned long long)hlen, have);
    }
    f->data_start = 8 + (size_t)hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)f->bytes + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        st_close(f);
        return ml_fail(ML_ERR_FORMAT, "'%s': header is not a valid JSON object", path);
    }
    int n = cJSON_GetArraySize(root);
    f->tensors = ml_calloc((size_t)n, sizeof *f->tensors, "safetensors header");
    st_tensor **order = ml_calloc((size_t)n, sizeof *order, "safetensors header");
    s = (f->tensors && order) ? ML_OK : ML_ERR_NOMEM;
    size_t data_size = f->size - f->data_start;
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (s != ML_OK)
            break;
        if (!item->string)
            continue;
        if (strcmp(item->string, "__metadata__") == 0)
            continue;
        st_tensor *t = &f->tensors[f->count];
        t->name = strdup(item->string);
        f->count++;
        if (!t->name) {
            s = ml_fail(ML_ERR_NOMEM, "out of memory");
            break;
        }
        s = parse_entry(f, item, t, data_size);
    }
    cJSON_Delete(root);
    /* Tensors may not share bytes: a corrupt header could otherwise alias them. */
    if (s == ML_OK && f->count > 1) {
        for (int i = 0; i < f->count; i++)
            order[i] = &f->tensors[i];
        qsort(order, (size_t)f->count, sizeof *order, cmp_by_begin);
        for (int i = 1; i < f->count; i++)
            if (order[i]->begin < order[i - 1]->end && order[i - 1]->end > order[i - 1]->begin)
                s = ml_fail(ML_ERR_FORMAT, "'%s': tensors '%s' and '%s' overlap in the data section",
                            path, order[i - 1]->name, order[i]->name);
        for (int i = 0; s == ML_OK && i < f->count; i++)
            for (int j = i + 1; j < f->count && s == ML_OK; j++)
                if (strcmp(f->tensors[i].name, f->tensors[j].name) == 0)
                    s = ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s' appears twice", path,
                                f->tensors[i].name);
    }
    free(order);
    if (s != ML_OK)
        st_close(f);
    return s;
}

void st_close(st_file *f)
{
    for (int i = 0; i < f->count; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    free(f->bytes);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const st_tensor *st_find(const st_file *f, const char *name)
{
    for (int i = 0; i < f->count; i++)
        if (strcmp(f->tensors[i].name, name) == 0)
            return &f->tensors[i];
    return NULL;
}

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

ml_status st_read_f32(const st_file *f, const st_tensor *t, float *dst)
{
    const unsigned char *src = f->bytes + f->data_start + t->begin;
    switch (t->dtype) {
    case ST_F32:
        for (size_t i = 0; i < t->numel; i++) {
            uint32_t b = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 |
                         (uint32_t)src[4 * i + 2] << 16 | (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &b, sizeof b);
        }
        return ML_OK;
    case ST_F16:
        for (size_t i = 0; i < t->numel; i++)
            dst[i] = f16_to_f32((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        return ML_OK;
    case ST_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint32_t b = (uint32_t)(src[2 * i] | src[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &b, sizeof b);
        }
        return ML_OK;
    default:
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s' has dtype %s; only F32, F16 and BF16 can be read",
                       f->path, t->name, t->dtype_name);
    }
}

ml_status st_load(const st_file *f, const char *name, int ndim, const int64_t *shape, float *dst)
{
    const st_tensor *t = st_find(f, name);
    if (!t)
        return ml_fail(ML_ERR_FORMAT, "'%s': missing tensor '%s'", f->path, name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        char want[96], got[96];
        st_shape_str(want, sizeof want, ndim, shape);
        st_shape_str(got, sizeof got, t->ndim, t->shape);
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s' has shape %s, expected %s", f->path, name, got,
                       want);
    }
    return st_read_f32(f, t, dst);
}

static ml_status write_all(FILE *fp, const void *p, size_t n, const char *path)
{
    if (n && fwrite(p, 1, n, fp) != n)
        return ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    return ML_OK;
}

ml_status st_write(const char *path, const st_entry *entries, int n, const char *const *meta)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return ml_fail(ML_ERR_NOMEM, "out of memory");
    if (meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && meta[i] && meta[i + 1]; i += 2)
            cJSON_AddStringToObject(m, meta[i], meta[i + 1]);
    }
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const st_entry *e = &entries[i];
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++)
            numel *= (size_t)e->shape[d];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        if (!t)
            break;
        cJSON_AddStringToObject(t, "dtype", "F32");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
        offset += numel * sizeof(float);
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return ml_fail(ML_ERR_NOMEM, "out of memory writing '%s'", path);
    size_t jlen = strlen(json), padded = ml_align_up(jlen, 8);

    size_t plen = strlen(path) + 16;
    char *tmp = ml_malloc(plen, "path");
    if (!tmp) {
        free(json);
        return ML_ERR_NOMEM;
    }
    snprintf(tmp, plen, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        ml_status s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(json);
        free(tmp);
        return s;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    ml_status s = write_all(fp, len8, 8, path);
    if (s == ML_OK)
        s = write_all(fp, json, jlen, path);
    for (size_t i = jlen; s == ML_OK && i < padded; i++)
        s = write_all(fp, " ", 1, path);
    for (int i = 0; s == ML_OK && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++)
            numel *= (size_t)entries[i].shape[d];
        s = write_all(fp, entries[i].data, numel * sizeof(float), path);
    }
    if (fclose(fp) != 0 && s == ML_OK)
        s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (s == ML_OK && rename(tmp, path) != 0)
        s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (s != ML_OK)
        remove(tmp);
    free(json);
    free(tmp);
    return s;
}
