#include "data/image.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>
#include <sys/stat.h>

#include <jerror.h>
#include <jpeglib.h>
#include <png.h>

image_format image_sniff_format(const uint8_t *bytes, size_t size)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return IMAGE_FORMAT_JPEG;
    if (size >= 8 && memcmp(bytes, png_sig, 8) == 0)
        return IMAGE_FORMAT_PNG;
    return IMAGE_FORMAT_UNKNOWN;
}

ml_status image_alloc_rgb8(image_rgb8 *out, size_t width, size_t height)
{
    memset(out, 0, sizeof *out);
    size_t n;
    if (ml_mul_overflows(width, height, &n) || ml_mul_overflows(n, 3, &n))
        return ml_fail(ML_ERR_USAGE, "image of %zu x %zu pixels is too large to address", width, height);
    out->data = ml_malloc(n, "image pixels");
    if (!out->data)
        return ML_ERR_NOMEM;
    out->width = width;
    out->height = height;
    return ML_OK;
}

void image_free_rgb8(image_rgb8 *img)
{
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* Shared by both decoders: the size check that comes before any allocation. */
static ml_status check_dims(const char *name, const char *fmt, size_t w, size_t h, size_t max_pixels)
{
    size_t n;
    if (w == 0 || h == 0)
        return ml_fail(ML_ERR_FORMAT, "'%s': %s image of %zu x %zu pixels", name, fmt, w, h);
    if (ml_mul_overflows(w, h, &n) || n > max_pixels)
        return ml_fail(ML_ERR_FORMAT, "'%s': %s image of %zu x %zu pixels exceeds the limit of %zu pixels",
                       name, fmt, w, h, max_pixels);
    return ML_OK;
}

/* ---------------------------------------------------------------- JPEG --- */

/* All state the decode touches after setjmp lives here, behind a pointer:
 * locals of the function that calls setjmp are indeterminate after longjmp. */
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    int finishing; /* jpeg_finish_decompress is running: running out of data is fine */
    int eof;       /* the data ran out */
    char msg[JMSG_LENGTH_MAX];
} jpeg_fail;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_source_mgr src;
    jpeg_fail err;
    int created;
    uint8_t *row; /* one scanline for gray and CMYK (converted afterwards) */
    image_rgb8 *out;
    const char *name;
    size_t max_pixels;
} jpeg_job;

static void jpeg_on_error(j_common_ptr c)
{
    jpeg_fail *f = (jpeg_fail *)c->err;
    c->err->format_message(c, f->msg);
    longjmp(f->jump, 1);
}

/* Warnings (corrupt entropy data and the like) are silent, as in Pillow. */
static void jpeg_on_message(j_common_ptr c) { (void)c; }

static void jpeg_src_noop(j_decompress_ptr c) { (void)c; }

/* No more data: libjpeg's own memory source would warn and fake an EOI
 * marker, decoding a truncated file as grey; Pillow refuses it instead. */
static boolean jpeg_src_fill(j_decompress_ptr c)
{
    ((jpeg_fail *)c->err)->eof = 1;
    ERREXIT(c, JERR_INPUT_EOF);
    return FALSE;
}

static void jpeg_src_skip(j_decompress_ptr c, long n)
{
    if (n <= 0)
        return;
    if ((unsigned long)n > c->src->bytes_in_buffer) {
        c->src->next_input_byte += c->src->bytes_in_buffer;
        c->src->bytes_in_buffer = 0;
        jpeg_src_fill(c);
        return;
    }
    c->src->next_input_byte += n;
    c->src->bytes_in_buffer -= (size_t)n;
}

/* Pillow's cmyk2rgb after its "CMYK;I" unpacker (Adobe polarity: inverted). */
static uint8_t cmyk_channel(uint8_t inv_c, uint8_t inv_k)
{
    int c = 255 - inv_c, nk = inv_k; /* nk = 255 - K, K = 255 - inv_k */
    int t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static ml_status jpeg_run(jpeg_job *j, const uint8_t *bytes, size_t size)
{
    struct jpeg_decompress_struct *ci = &j->cinfo;
    ci->err = jpeg_std_error(&j->err.pub);
    j->err.pub.error_exit = jpeg_on_error;
    j->err.pub.output_message = jpeg_on_message;
    if (setjmp(j->err.jump)) {
        if (j->err.finishing && j->err.eof)
            return ML_OK; /* every scanline is out; only the tail (EOI) is missing */
        if (j->err.pub.msg_code == JERR_OUT_OF_MEMORY)
            return ml_fail(ML_ERR_NOMEM, "'%s': out of memory decoding JPEG", j->name);
        if (j->err.eof)
            return ml_fail(ML_ERR_FORMAT, "'%s': truncated JPEG (the data ends early)", j->name);
        return ml_fail(ML_ERR_FORMAT, "'%s': corrupt JPEG: %s", j->name, j->err.msg);
    }
    jpeg_create_decompress(ci);
    j->created = 1;
    /* One memory source that errors on running out instead of faking EOI. */
    ci->src = &j->src;
    ci->src->init_source = jpeg_src_noop;
    ci->src->fill_input_buffer = jpeg_src_fill;
    ci->src->skip_input_data = jpeg_src_skip;
    ci->src->resync_to_restart = jpeg_resync_to_restart;
    ci->src->term_source = jpeg_src_noop;
    ci->src->next_input_byte = bytes;
    ci->src->bytes_in_buffer = size;

    jpeg_read_header(ci, TRUE);
    int comps = ci->num_components;
    /* Pillow's modes by layer count: 1 L, 3 RGB, 4 CMYK; anything else it refuses. */
    if (comps == 1)
        ci->out_color_space = JCS_GRAYSCALE;
    else if (comps == 3)
        ci->out_color_space = JCS_RGB;
    else if (comps == 4)
        ci->out_color_space = JCS_CMYK;
    else
        return ml_fail(ML_ERR_FORMAT, "'%s': JPEG with %d components (1, 3 or 4 can be read)", j->name,
                       comps);
    ML_TRY(check_dims(j->name, "JPEG", ci->image_width, ci->image_height, j->max_pixels));
    jpeg_start_decompress(ci);
    size_t w = ci->output_width, h = ci->output_height;
    ML_ASSERT(w == ci->image_width && h == ci->image_height && ci->output_components == comps);
    ML_TRY(image_alloc_rgb8(j->out, w, h));
    if (comps != 3) {
        j->row = ml_malloc(w * (size_t)comps, "JPEG scanline");
        if (!j->row)
            return ML_ERR_NOMEM;
    }
    while (ci->output_scanline < h) {
        size_t y = ci->output_scanline;
        uint8_t *dst = j->out->data + y * w * 3;
        JSAMPROW rowp = comps == 3 ? dst : j->row;
        if (jpeg_read_scanlines(ci, &rowp, 1) != 1)
            return ml_fail(ML_ERR_FORMAT, "'%s': truncated JPEG (no scanline %zu)", j->name, y);
        if (comps == 1) {
            for (size_t x = 0; x < w; x++)
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = j->row[x];
        } else if (comps == 4) {
            for (size_t x = 0; x < w; x++) {
                const uint8_t *p = j->row + 4 * x;
                for (int c = 0; c < 3; c++)
                    dst[3 * x + c] = cmyk_channel(p[c], p[3]);
            }
        }
    }
    /* Pillow finishes too: an error past the last scanline still fails it,
     * while data that simply ends there does not. */
    j->err.finishing = 1;
    jpeg_finish_decompress(ci);
    return ML_OK;
}

static ml_status jpeg_decode(image_rgb8 *out, const uint8_t *bytes, size_t size, const char *name,
                             size_t max_pixels)
{
    jpeg_job j;
    memset(&j, 0, sizeof j);
    j.out = out;
    j.name = name;
    j.max_pixels = max_pixels;
    ml_status s = jpeg_run(&j, bytes, size);
    if (j.created)
        jpeg_destroy_decompress(&j.cinfo);
    free(j.row);
    if (s != ML_OK)
        image_free_rgb8(out);
    return s;
}

/* ----------------------------------------------------------------- PNG --- */

typedef struct {
    png_structp png;
    png_infop info;
    const uint8_t *bytes;
    size_t size, pos;
    int eof;
    char msg[256];
    uint8_t *buf;    /* one row, or the whole image when interlaced */
    png_bytep *rows; /* row pointers into buf when interlaced */
    size_t rows_total, rows_seen; /* rows (of every Adam7 pass) to decode, decoded */
    int interlaced;
    image_rgb8 *out;
    const char *name;
    size_t max_pixels;
} png_job;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_job *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static void png_on_read(png_structp png, png_bytep dst, size_t n)
{
    png_job *j = png_get_io_ptr(png);
    if (n > j->size - j->pos) {
        j->eof = 1;
        png_error(png, "truncated");
    }
    memcpy(dst, j->bytes + j->pos, n);
    j->pos += n;
}

/* One row as libpng hands it (after the transforms set below) to RGB8. */
static void png_row_to_rgb(uint8_t *dst, const uint8_t *src, size_t w, int channels, int depth)
{
    if (channels == 1 && depth == 16) {
        for (size_t x = 0; x < w; x++) {
            unsigned v = ((unsigned)src[2 * x] << 8) | src[2 * x + 1];
            dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = (uint8_t)(v > 255 ? 255 : v);
        }
    } else if (channels <= 2) {
        for (size_t x = 0; x < w; x++)
            dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = src[(size_t)channels * x];
    } else if (channels == 3) {
        memcpy(dst, src, w * 3);
    } else {
        for (size_t x = 0; x < w; x++)
            memcpy(dst + 3 * x, src + 4 * x, 3);
    }
}

/* 1 when the chunks run past the end of the data before IEND is complete. */
static int png_is_cut(const uint8_t *b, size_t n)
{
    size_t pos = 8;
    while (pos + 8 <= n) {
        size_t len = ((size_t)b[pos] << 24) | ((size_t)b[pos + 1] << 16) | ((size_t)b[pos + 2] << 8) | b[pos + 3];
        if (len > n - pos - 8 || n - pos - 8 - len < 4)
            return 1;
        if (memcmp(b + pos + 4, "IEND", 4) == 0)
            return 0;
        pos += 12 + len;
    }
    return 1;
}

/* A transform that changes nothing: libpng calls it once per decoded row,
 * after the row's data is complete, so it counts the rows that are in. */
static void png_count_row(png_structp png, png_row_infop row, png_bytep data)
{
    (void)row;
    (void)data;
    ((png_job *)png_get_user_transform_ptr(png))->rows_seen++;
}

/* The data ran out after the last row was in: only the end of the zlib
 * stream, a CRC or IEND is missing. Pillow stops reading once it has every
 * pixel, so such a file decodes; the pixels are all in our buffers. */
static void png_finish_cut(png_job *j)
{
    size_t w = j->out->width, h = j->out->height;
    int channels = png_get_channels(j->png, j->info), depth = png_get_bit_depth(j->png, j->info);
    if (j->interlaced) {
        for (size_t y = 0; y < h; y++)
            png_row_to_rgb(j->out->data + y * w * 3, j->rows[y], w, channels, depth);
    } else {
        png_row_to_rgb(j->out->data + (h - 1) * w * 3, j->buf, w, channels, depth);
    }
}

static ml_status png_run(png_job *j)
{
    if (setjmp(png_jmpbuf(j->png))) {
        if (j->eof && j->rows_total > 0 && j->rows_seen == j->rows_total) {
            png_finish_cut(j);
            return ML_OK;
        }
        if (j->eof)
            return ml_fail(ML_ERR_FORMAT, "'%s': truncated PNG (the data ends early)", j->name);
        if (strstr(j->msg, "memory"))
            return ml_fail(ML_ERR_NOMEM, "'%s': out of memory decoding PNG (%s)", j->name, j->msg);
        return ml_fail(ML_ERR_FORMAT, "'%s': corrupt PNG: %s", j->name, j->msg);
    }
    png_set_read_fn(j->png, j, png_on_read);
    /* libpng reads IDAT data in large blocks: with the file cut short, a block
     * that runs past the end would fail before its first bytes are inflated.
     * Byte by byte (slow, but only for cut files) every row that the data
     * holds comes out, as from Pillow's incremental reader. */
    if (png_is_cut(j->bytes, j->size))
        png_set_compression_buffer_size(j->png, 1);
    /* Our own pixel limit is the one that applies (libpng's default caps each
     * side at 1,000,000). */
    png_set_user_limits(j->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    png_read_info(j->png, j->info);
    png_uint_32 w32, h32;
    int depth, color, interlace;
    png_get_IHDR(j->png, j->info, &w32, &h32, &depth, &color, &interlace, NULL, NULL);
    ML_TRY(check_dims(j->name, "PNG", w32, h32, j->max_pixels));
    size_t w = w32, h = h32;

    /* Pillow's PNG modes: palette expanded by lookup (libpng adds alpha from
     * tRNS, which is dropped below), low-bit gray scaled up, 16-bit gray kept
     * whole (clipped below), every other 16-bit sample cut to its high byte.
     * tRNS is never turned into alpha for gray or RGB. */
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(j->png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(j->png);
    if (depth == 16 && color != PNG_COLOR_TYPE_GRAY)
        png_set_strip_16(j->png);
    int passes = png_set_interlace_handling(j->png);
    png_set_read_user_transform_fn(j->png, png_count_row);
    png_set_user_transform_info(j->png, j, 0, 0);
    png_read_update_info(j->png, j->info);
    int channels = png_get_channels(j->png, j->info);
    int odepth = png_get_bit_depth(j->png, j->info);
    size_t rowbytes = png_get_rowbytes(j->png, j->info);
    ML_ASSERT(channels >= 1 && channels <= 4 && (odepth == 8 || (odepth == 16 && channels == 1)));
    ML_ASSERT(rowbytes == w * (size_t)channels * (size_t)(odepth / 8));

    ML_TRY(image_alloc_rgb8(j->out, w, h));
    j->interlaced = passes > 1;
    if (!j->interlaced) {
        j->rows_total = h;
    } else {
        for (int p = 0; p < 7; p++)
            if (PNG_PASS_COLS(w32, p) > 0)
                j->rows_total += PNG_PASS_ROWS(h32, p);
    }
    if (!j->interlaced) {
        j->buf = ml_malloc(rowbytes, "PNG row");
        if (!j->buf)
            return ML_ERR_NOMEM;
        for (size_t y = 0; y < h; y++) {
            png_read_row(j->png, j->buf, NULL);
            png_row_to_rgb(j->out->data + y * w * 3, j->buf, w, channels, odepth);
        }
    } else {
        /* Adam7 needs every row at once; rowbytes × h ≤ 2 × 3 × pixels here. */
        size_t total;
        if (ml_mul_overflows(rowbytes, h, &total))
            return ml_fail(ML_ERR_FORMAT, "'%s': PNG too large", j->name);
        j->buf = ml_malloc(total, "interlaced PNG");
        j->rows = ml_calloc(h, sizeof *j->rows, "PNG row pointers");
        if (!j->buf || !j->rows)
            return ML_ERR_NOMEM;
        for (size_t y = 0; y < h; y++)
            j->rows[y] = j->buf + y * rowbytes;
        png_read_image(j->png, j->rows);
        for (size_t y = 0; y < h; y++)
            png_row_to_rgb(j->out->data + y * w * 3, j->rows[y], w, channels, odepth);
    }
    /* No png_read_end: the chunks after the image (and IEND itself) are not
     * needed, and Pillow does not insist on them either. */
    return ML_OK;
}

static ml_status png_decode(image_rgb8 *out, const uint8_t *bytes, size_t size, const char *name,
                            size_t max_pixels)
{
    png_job j;
    memset(&j, 0, sizeof j);
    j.bytes = bytes;
    j.size = size;
    j.out = out;
    j.name = name;
    j.max_pixels = max_pixels;
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j, png_on_error, png_on_warning);
    if (j.png)
        j.info = png_create_info_struct(j.png);
    ml_status s = (j.png && j.info) ? png_run(&j)
                                    : ml_fail(ML_ERR_NOMEM, "'%s': out of memory starting libpng", name);
    png_destroy_read_struct(j.png ? &j.png : NULL, j.info ? &j.info : NULL, NULL);
    free(j.buf);
    free(j.rows);
    if (s != ML_OK)
        image_free_rgb8(out);
    return s;
}

/* -------------------------------------------------------------- public --- */

ml_status image_decode_rgb8(image_rgb8 *out, const uint8_t *bytes, size_t size, const char *name,
                            size_t max_pixels)
{
    memset(out, 0, sizeof *out);
    if (max_pixels == 0)
        max_pixels = IMAGE_MAX_PIXELS;
    if (size == 0)
        return ml_fail(ML_ERR_FORMAT, "'%s': empty file, not an image", name);
    switch (image_sniff_format(bytes, size)) {
    case IMAGE_FORMAT_JPEG:
        return jpeg_decode(out, bytes, size, name, max_pixels);
    case IMAGE_FORMAT_PNG:
        return png_decode(out, bytes, size, name, max_pixels);
    default:
        return ml_fail(ML_ERR_FORMAT, "'%s': not a JPEG or PNG image (unknown signature)", name);
    }
}

ml_status image_load_rgb8(image_rgb8 *out, const char *path, size_t max_pixels)
{
    memset(out, 0, sizeof *out);
    unsigned char *buf;
    size_t len;
    ML_TRY(ml_read_file(path, IMAGE_MAX_FILE_BYTES, "an image file", &buf, &len));
    ml_status s = image_decode_rgb8(out, buf, len, path, max_pixels);
    free(buf);
    return s;
}
