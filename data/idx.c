#include "data/idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* The whole decompressed file (at most IDX_MAX_BYTES). */
static ml_status gunzip_all(const char *path, uint8_t **out, size_t *len)
{
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return ml_fail(ML_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    fclose(probe);
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return ml_fail(ML_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = (size_t)1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    ml_status s = buf ? ML_OK : ml_fail(ML_ERR_NOMEM, "out of memory reading '%s'", path);
    while (s == ML_OK) {
        if (n == cap) {
            if (cap >= IDX_MAX_BYTES) {
                s = ml_fail(ML_ERR_FORMAT, "'%s': more than %zu bytes once decompressed", path, IDX_MAX_BYTES);
                break;
            }
            uint8_t *b = realloc(buf, cap * 2);
            if (!b) {
                s = ml_fail(ML_ERR_NOMEM, "out of memory reading '%s'", path);
                break;
            }
            buf = b, cap *= 2;
        }
        const unsigned want = (unsigned)(cap - n < (1u << 30) ? cap - n : (1u << 30));
        const int got = gzread(gz, buf + n, want);
        if (got < 0) {
            int err = 0;
            const char *msg = gzerror(gz, &err);
            s = ml_fail(ML_ERR_FORMAT, "'%s': not a valid gzip file (%s)", path, msg ? msg : "read error");
        } else if (got == 0) {
            break;
        } else {
            n += (size_t)got;
        }
    }
    /* a gzip stream cut short reads as a clean end here and fails in gzclose_r with Z_BUF_ERROR */
    const int zc = gzclose_r(gz);
    if (s == ML_OK && zc != Z_OK)
        s = ml_fail(ML_ERR_FORMAT, "'%s': truncated gzip file (the stream ends early)", path);
    if (s != ML_OK) {
        free(buf);
        return s;
    }
    *out = buf, *len = n;
    return ML_OK;
}

ml_status idx_read(const char *path, int want_ndim, idx_array *out)
{
    memset(out, 0, sizeof *out);
    uint8_t *raw = NULL;
    size_t len = 0;
    ML_TRY(gunzip_all(path, &raw, &len));
    return idx_parse(path, raw, len, want_ndim, out);
}

ml_status idx_parse(const char *path, uint8_t *raw, size_t len, int want_ndim, idx_array *out)
{
    memset(out, 0, sizeof *out);
    const uint32_t magic = len >= 4 ? be32(raw) : 0, want = 0x800u | (uint32_t)want_ndim;
    ml_status s = ML_OK;
    if (len < 4 || magic != want)
        s = ml_fail(ML_ERR_FORMAT, "'%s': IDX magic 0x%08x, expected 0x%08x (%s of unsigned bytes)", path,
                    len >= 4 ? magic : 0u, want, want_ndim == 3 ? "images" : "labels");
    const size_t header = 4 + 4 * (size_t)want_ndim;
    if (s == ML_OK && len < header)
        s = ml_fail(ML_ERR_FORMAT, "'%s': truncated IDX header", path);
    size_t count = 1;
    for (int i = 0; s == ML_OK && i < want_ndim; i++) {
        out->dims[i] = be32(raw + 4 + 4 * i);
        if (ml_mul_overflows(count, out->dims[i], &count) || count > IDX_MAX_BYTES)
            s = ml_fail(ML_ERR_FORMAT, "'%s': IDX dimensions too large", path);
    }
    if (s == ML_OK && len - header != count)
        s = ml_fail(ML_ERR_FORMAT, "'%s': %zu data bytes, but the header's dimensions need %zu", path, len - header,
                    count);
    if (s != ML_OK) {
        free(raw);
        memset(out, 0, sizeof *out);
        return s;
    }
    out->ndim = want_ndim;
    out->count = count;
    memmove(raw, raw + header, count);
    out->data = raw;
    return ML_OK;
}

void idx_free(idx_array *a)
{
    free(a->data);
    memset(a, 0, sizeof *a);
}
