#define _XOPEN_SOURCE 700 /* realpath */
#include "models/safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static int cmp_by_begin(const void *a, const void *b)
{
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

/* What cJSON lets through and the format does not: a control byte (raw, or
 * outside strings other than JSON's whitespace) and \u0000 in a string (a C
 * string would end there: "F32\u0000junk" would read as F32). */
static ml_status scan_header(const char *path, const unsigned char *h, size_t n)
{
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = h[i];
        if (in_str) {
            if (c < 0x20)
                return ml_fail(ML_ERR_FORMAT, "'%s': header byte %zu: raw control character 0x%02x in a string", path,
                               i, c);
            if (c == '"') {
                in_str = 0;
            } else if (c == '\\' && i + 1 < n) {
                if (h[i + 1] == 'u' && i + 5 < n && memcmp(h + i + 2, "0000", 4) == 0)
                    return ml_fail(ML_ERR_FORMAT, "'%s': header byte %zu: \\u0000 (a NUL) in a string", path, i);
                i++;
            }
        } else if (c == '"') {
            in_str = 1;
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            return ml_fail(ML_ERR_FORMAT, "'%s': header byte %zu: control character 0x%02x", path, i, c);
        }
    }
    return ML_OK;
}

/* The tensors must tile the data section: sorted by offset, the ones with
 * bytes start at 0, each where the one before ends, the last at its end.
 * Zero-size tensors hold no bytes and so overlap nothing. Names are unique. */
static ml_status check_layout(const st_file *f, size_t data_size)
{
    const char *path = f->path;
    if (f->count == 0)
        return data_size == 0 ? ML_OK
                              : ml_fail(ML_ERR_FORMAT, "'%s': %zu data bytes but no tensors", path, data_size);
    st_tensor **order = ml_calloc((size_t)f->count, sizeof *order, "safetensors header");
    if (!order)
        return ML_ERR_NOMEM;
    int n = 0;
    for (int i = 0; i < f->count; i++)
        if (f->tensors[i].end > f->tensors[i].begin)
            order[n++] = &f->tensors[i];
    qsort(order, (size_t)n, sizeof *order, cmp_by_begin);
    ml_status s = ML_OK;
    size_t at = 0;
    for (int i = 0; i < n && s == ML_OK; i++) {
        if (order[i]->begin < at)
            s = ml_fail(ML_ERR_FORMAT, "'%s': tensors '%s' and '%s' overlap in the data section", path,
                        order[i - 1]->name, order[i]->name);
        else if (order[i]->begin > at)
            s = ml_fail(ML_ERR_FORMAT, "'%s': data bytes %zu..%zu belong to no tensor (before '%s')", path, at,
                        order[i]->begin, order[i]->name);
        at = order[i]->end;
    }
    if (s == ML_OK && at != data_size)
        s = ml_fail(ML_ERR_FORMAT,
                    "'%s': the tensors cover %zu of the %zu data bytes (a wrong header length shifts every tensor)",
                    path, at, data_size);
    /* duplicate names: sorted, so equal names are neighbours */
    for (int i = 0; i < f->count; i++)
        order[i] = &f->tensors[i];
    qsort(order, (size_t)f->count, sizeof *order, cmp_by_name);
    for (int i = 1; i < f->count && s == ML_OK; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0)
            s = ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s' appears twice", path, order[i]->name);
    free(order);
    return s;
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
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s': unknown dtype '%s'", path, name,
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
    unsigned char *bytes = NULL;
    size_t size = 0;
    memset(f, 0, sizeof *f);
    ML_TRY(ml_read_file(path, 0, "reading a safetensors file", &bytes, &size));
    return st_open_memory(f, path, bytes, size);
}

/* The string values of __metadata__ (the format's Dict[str, str]; other values are left out). */
static ml_status keep_metadata(st_file *f, const cJSON *meta)
{
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, meta) n += it->string && cJSON_IsString(it);
    if (!n)
        return ML_OK;
    if (!(f->meta = ml_calloc(2 * (size_t)n, sizeof *f->meta, "safetensors metadata")))
        return ML_ERR_NOMEM;
    cJSON_ArrayForEach(it, meta)
    {
        if (!it->string || !cJSON_IsString(it))
            continue;
        char *k = strdup(it->string), *v = strdup(it->valuestring);
        f->meta[2 * f->n_meta] = k, f->meta[2 * f->n_meta + 1] = v;
        f->n_meta++;
        if (!k || !v)
            return ml_fail(ML_ERR_NOMEM, "out of memory");
    }
    return ML_OK;
}

const char *st_meta(const st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (!strcmp(f->meta[2 * i], key))
            return f->meta[2 * i + 1];
    return NULL;
}

ml_status st_open_memory(st_file *f, const char *path, unsigned char *bytes, size_t size)
{
    memset(f, 0, sizeof *f);
    f->bytes = bytes;
    f->size = size;
    f->path = strdup(path);
    if (!f->path) {
        st_close(f);
        return ml_fail(ML_ERR_NOMEM, "out of memory");
    }
    if (f->size < 8) {
        st_close(f);
        return ml_fail(ML_ERR_FORMAT, "'%s': truncated: %zu bytes, too short for a safetensors header",
                       path, size);
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
    ml_status s = scan_header(path, f->bytes + 8, (size_t)hlen);
    if (s != ML_OK) {
        st_close(f);
        return s;
    }
    /* cJSON gets its own NUL-terminated copy with slack after it: it never reads past the header */
    char *text = ml_calloc((size_t)hlen + 64, 1, "safetensors header");
    if (!text) {
        st_close(f);
        return ML_ERR_NOMEM;
    }
    memcpy(text, f->bytes + 8, (size_t)hlen);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
    size_t rest = root && end ? (size_t)(end - text) : 0;
    while (root && rest < hlen && (text[rest] == ' ' || text[rest] == '\t' || text[rest] == '\n' || text[rest] == '\r'))
        rest++;
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        st_close(f);
        return ml_fail(ML_ERR_FORMAT, "'%s': header is not a valid JSON object", path);
    }
    if (rest != hlen) {
        cJSON_Delete(root);
        st_close(f);
        return ml_fail(ML_ERR_FORMAT, "'%s': header byte %zu: text after the JSON object (only spaces may follow it)",
                       path, rest);
    }
    int n = cJSON_GetArraySize(root);
    f->tensors = ml_calloc((size_t)n, sizeof *f->tensors, "safetensors header");
    s = f->tensors ? ML_OK : ML_ERR_NOMEM;
    size_t data_size = f->size - f->data_start;
    const cJSON *item;
    int have_meta = 0;
    cJSON_ArrayForEach(item, root)
    {
        if (s != ML_OK)
            break;
        if (!item->string)
            continue;
        if (strcmp(item->string, "__metadata__") == 0) {
            if (have_meta++)
                s = ml_fail(ML_ERR_FORMAT, "'%s': '__metadata__' appears twice", path);
            else
                s = keep_metadata(f, item);
            continue;
        }
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
    if (s == ML_OK)
        s = check_layout(f, data_size);
    if (s != ML_OK)
        st_close(f);
    return s;
}

void st_close(st_file *f)
{
    for (int i = 0; i < f->count; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < 2 * f->n_meta; i++)
        free(f->meta[i]);
    free(f->meta);
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

ml_status st_read_labels(const st_file *f, const st_tensor *t, int num_classes, int *dst)
{
    return st_read_ints(f, t, 0, num_classes - 1, "a class", dst);
}

ml_status st_read_ints(const st_file *f, const st_tensor *t, int lo, int hi, const char *what, int *dst)
{
    const int w = !strcmp(t->dtype_name, "I64") ? 8 : !strcmp(t->dtype_name, "I32") ? 4 : 0;
    if (!w)
        return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s' has dtype %s; %s is I64 or I32", f->path, t->name,
                       t->dtype_name, what);
    const unsigned char *src = f->bytes + f->data_start + t->begin;
    for (size_t i = 0; i < t->numel; i++) {
        uint64_t u = 0;
        for (int k = w - 1; k >= 0; k--)
            u = u << 8 | src[(size_t)w * i + (size_t)k];
        const int64_t v = w == 8 ? (int64_t)u : (int64_t)(int32_t)(uint32_t)u;
        if (v < lo || v > hi)
            return ml_fail(ML_ERR_FORMAT, "'%s': tensor '%s'[%zu] = %lld is not %s of %d..%d", f->path, t->name, i,
                           (long long)v, what, lo, hi);
        dst[i] = (int)v;
    }
    return ML_OK;
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

/* Where st_write writes: only a regular file (or none) is replaced by
 * renaming a temporary file (*tmp) over it; a device, a FIFO or a socket is
 * written in place, and a link to a regular file has its target (*real)
 * replaced, the link kept. */
static ml_status open_output(const char *path, FILE **out, char **out_tmp, char **out_real)
{
    struct stat lsb, sb;
    const int exists = lstat(path, &lsb) == 0;
    char *real = NULL;
    int in_place = 0;
    if (exists && S_ISLNK(lsb.st_mode)) {
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
            real = realpath(path, NULL);
        in_place = !real;
    } else if (exists) {
        in_place = !S_ISREG(lsb.st_mode);
    }
    const char *target = real ? real : path;
    char *tmp = NULL;
    FILE *fp = NULL;
    if (in_place) {
        fp = fopen(path, "wb");
    } else {
        size_t plen = strlen(target) + 16;
        tmp = ml_malloc(plen, "path");
        if (!tmp) {
            free(real);
            return ML_ERR_NOMEM;
        }
        snprintf(tmp, plen, "%s.tmp.XXXXXX", target);
        int fd = mkstemp(tmp);
        if (fd >= 0) {
            /* the mode an fopen would have given, or the replaced file's */
            mode_t mask = umask(0);
            umask(mask);
            struct stat old;
            fchmod(fd, stat(target, &old) == 0 ? (old.st_mode & 07777) : (0666 & ~mask));
            fp = fdopen(fd, "wb");
            if (!fp)
                close(fd);
        }
        if (!fp && fd >= 0)
            remove(tmp);
    }
    if (!fp) {
        ml_status s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        free(tmp), free(real);
        return s;
    }
    *out = fp, *out_tmp = tmp, *out_real = real;
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
        cJSON_AddStringToObject(t, "dtype", e->i64 ? "I64" : "F32");
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *off = cJSON_AddArrayToObject(t, "data_offsets");
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
        offset += numel * (e->i64 ? sizeof(int64_t) : sizeof(float));
        cJSON_AddItemToArray(off, cJSON_CreateNumber((double)offset));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json)
        return ml_fail(ML_ERR_NOMEM, "out of memory writing '%s'", path);
    size_t jlen = strlen(json), padded = ml_align_up(jlen, 8);

    char *tmp = NULL, *real = NULL;
    FILE *fp = NULL;
    ml_status s = open_output(path, &fp, &tmp, &real);
    if (s != ML_OK) {
        free(json);
        return s;
    }
    const char *target = real ? real : path;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    s = write_all(fp, len8, 8, path);
    if (s == ML_OK)
        s = write_all(fp, json, jlen, path);
    for (size_t i = jlen; s == ML_OK && i < padded; i++)
        s = write_all(fp, " ", 1, path);
    for (int i = 0; s == ML_OK && i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < entries[i].ndim; d++)
            numel *= (size_t)entries[i].shape[d];
        s = entries[i].i64 ? write_all(fp, entries[i].i64, numel * sizeof(int64_t), path)
                           : write_all(fp, entries[i].data, numel * sizeof(float), path);
    }
    /* buffered bytes meet a full disk at the flush, not at fwrite */
    if (fflush(fp) != 0 && s == ML_OK)
        s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (fclose(fp) != 0 && s == ML_OK)
        s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (s == ML_OK && tmp && rename(tmp, target) != 0)
        s = ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    if (s != ML_OK && tmp)
        remove(tmp);
    free(real);
    free(json);
    free(tmp);
    return s;
}
