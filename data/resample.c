#include "data/resample.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* Pillow's PRECISION_BITS: 32 - 8 bits of result - 2 bits of headroom for
 * the filter's negative lobes. */
#define FIXED_BITS 22

/* Bounds on sizes, far above any evaluation resolution; they keep every
 * product below exact double range and every coefficient table small. */
#define EVAL_MAX_SIDE ((size_t)1 << 16)

ml_status resample_parse_filter(resample_filter *out, const char *name)
{
    if (strcasecmp(name, "bicubic") == 0)
        *out = RESAMPLE_BICUBIC;
    else if (strcasecmp(name, "bilinear") == 0)
        *out = RESAMPLE_BILINEAR;
    else
        return ml_fail(ML_ERR_USAGE, "unknown interpolation '%s' (bicubic, bilinear)", name);
    return ML_OK;
}

const char *resample_filter_name(resample_filter f) { return f == RESAMPLE_BICUBIC ? "bicubic" : "bilinear"; }

/* The filters exactly as Pillow writes them: the same double expressions, in
 * the same order, give the same weights bit for bit. */
static double filter_eval(resample_filter f, double x)
{
    if (x < 0.0)
        x = -x;
    if (f == RESAMPLE_BILINEAR)
        return x < 1.0 ? 1.0 - x : 0.0;
    const double a = -0.5;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    size_t ksize;   /* taps per output pixel, at most */
    size_t *first;  /* [n] first source index */
    size_t *count;  /* [n] taps used */
    int32_t *k;     /* [n][ksize] weights, FIXED_BITS fractional bits */
} coeffs;

static void coeffs_free(coeffs *c)
{
    free(c->first);
    free(c->count);
    free(c->k);
    memset(c, 0, sizeof *c);
}

/* Pillow's precompute_coeffs + normalize_coeffs_8bpc for the output indices
 * [lo, lo + n) of an in_size -> out_size resize. */
static ml_status coeffs_build(coeffs *c, size_t in_size, size_t out_size, size_t lo, size_t n,
                              resample_filter f)
{
    memset(c, 0, sizeof *c);
    /* Pillow takes the extent from a float box: (double)(float)in_size. */
    double scale = (double)((float)in_size - 0.0f) / (double)out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = (f == RESAMPLE_BICUBIC ? 2.0 : 1.0) * filterscale;
    c->ksize = (size_t)ceil(support) * 2 + 1;
    size_t nk;
    if (ml_mul_overflows(n, c->ksize, &nk))
        return ml_fail(ML_ERR_USAGE, "resize %zu -> %zu: coefficient table too large", in_size, out_size);
    c->first = ml_malloc(n * sizeof *c->first, "resize bounds");
    c->count = ml_malloc(n * sizeof *c->count, "resize bounds");
    c->k = ml_calloc(nk, sizeof *c->k, "resize coefficients");
    double *w = ml_malloc(c->ksize * sizeof *w, "resize weights");
    if (!c->first || !c->count || !c->k || !w) {
        free(w);
        coeffs_free(c);
        return ML_ERR_NOMEM;
    }
    double ss = 1.0 / filterscale;
    for (size_t i = 0; i < n; i++) {
        double center = 0.0 + ((double)(lo + i) + 0.5) * scale;
        /* (int) truncation toward zero, then the clamp, as Pillow rounds */
        long long xmin = (long long)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        long long xmax = (long long)(center + support + 0.5);
        if (xmax > (long long)in_size)
            xmax = (long long)in_size;
        xmax -= xmin;
        ML_ASSERT(xmax >= 1 && (size_t)xmax <= c->ksize);
        double ww = 0.0;
        for (long long x = 0; x < xmax; x++) {
            w[x] = filter_eval(f, ((double)(x + xmin) - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + i * c->ksize;
        for (long long x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            /* fixed point, rounded half away from zero */
            k[x] = (int32_t)(v < 0 ? -0.5 + v * (1 << FIXED_BITS) : 0.5 + v * (1 << FIXED_BITS));
        }
        c->first[i] = (size_t)xmin;
        c->count[i] = (size_t)xmax;
    }
    free(w);
    return ML_OK;
}

/* Pillow's clip8: the accumulator already holds the rounding half. */
static inline uint8_t clip8(int64_t ss)
{
    if (ss < 0)
        return 0;
    ss >>= FIXED_BITS;
    return (uint8_t)(ss > 255 ? 255 : ss);
}

/* dst [rows][n][3] = horizontal taps of src rows [row0, row0 + rows). */
static void pass_horizontal(uint8_t *dst, const image_rgb8 *src, size_t row0, size_t rows, const coeffs *c,
                            size_t n)
{
    for (size_t y = 0; y < rows; y++) {
        const uint8_t *s = src->data + (row0 + y) * src->width * 3;
        uint8_t *d = dst + y * n * 3;
        for (size_t i = 0; i < n; i++) {
            const int32_t *k = c->k + i * c->ksize;
            const uint8_t *p = s + c->first[i] * 3;
            int64_t s0 = 1 << (FIXED_BITS - 1), s1 = s0, s2 = s0;
            for (size_t t = 0; t < c->count[i]; t++) {
                s0 += (int64_t)p[3 * t] * k[t];
                s1 += (int64_t)p[3 * t + 1] * k[t];
                s2 += (int64_t)p[3 * t + 2] * k[t];
            }
            d[3 * i] = clip8(s0);
            d[3 * i + 1] = clip8(s1);
            d[3 * i + 2] = clip8(s2);
        }
    }
}

/* dst [n][width][3] = vertical taps over a source whose row r (r = source row
 * index - row0) starts at src + r·stride + col0·3. acc: width·3 sums, so
 * each tap walks one source row in order (the same sums as Pillow's). */
static void pass_vertical(uint8_t *dst, size_t width, const uint8_t *src, size_t stride, size_t col0,
                          size_t row0, const coeffs *c, size_t n, int64_t *acc)
{
    size_t m = width * 3;
    for (size_t i = 0; i < n; i++) {
        const int32_t *k = c->k + i * c->ksize;
        const uint8_t *base = src + (c->first[i] - row0) * stride + col0 * 3;
        for (size_t x = 0; x < m; x++)
            acc[x] = 1 << (FIXED_BITS - 1);
        for (size_t t = 0; t < c->count[i]; t++) {
            const uint8_t *row = base + t * stride;
            int64_t kt = k[t];
            for (size_t x = 0; x < m; x++)
                acc[x] += (int64_t)row[x] * kt;
        }
        uint8_t *d = dst + i * m;
        for (size_t x = 0; x < m; x++)
            d[x] = clip8(acc[x]);
    }
}

ml_status resample_resize_window_rgb8(image_rgb8 *out, const image_rgb8 *in, size_t out_w, size_t out_h,
                                      size_t x0, size_t y0, size_t win_w, size_t win_h,
                                      resample_filter f)
{
    memset(out, 0, sizeof *out);
    if (!in->data || in->width == 0 || in->height == 0)
        return ml_fail(ML_ERR_USAGE, "resize of an empty image");
    if (out_w == 0 || out_h == 0 || out_w > INT32_MAX || out_h > INT32_MAX)
        return ml_fail(ML_ERR_USAGE, "resize to %zu x %zu: sizes must be 1 .. 2^31-1", out_w, out_h);
    if (win_w == 0 || win_h == 0 || x0 > out_w || win_w > out_w - x0 || y0 > out_h || win_h > out_h - y0)
        return ml_fail(ML_ERR_USAGE, "resize window %zu x %zu at (%zu, %zu) is not inside %zu x %zu", win_w,
                       win_h, x0, y0, out_w, out_h);
    /* Pillow skips a pass whose size does not change (ImagingResampleInner). */
    int need_h = out_w != in->width, need_v = out_h != in->height;
    coeffs ch = {0}, cv = {0};
    uint8_t *tmp = NULL;
    ml_status s = image_alloc_rgb8(out, win_w, win_h);
    size_t row0 = y0, row1 = y0 + win_h; /* source rows the vertical pass reads */
    if (s == ML_OK && need_v) {
        s = coeffs_build(&cv, in->height, out_h, y0, win_h, f);
        if (s == ML_OK) {
            row0 = cv.first[0];
            row1 = 0;
            for (size_t i = 0; i < win_h; i++) {
                if (cv.first[i] < row0)
                    row0 = cv.first[i];
                if (cv.first[i] + cv.count[i] > row1)
                    row1 = cv.first[i] + cv.count[i];
            }
        }
    }
    const uint8_t *src = in->data;
    size_t stride = in->width * 3, col0 = x0, src_row0 = 0;
    if (s == ML_OK && need_h) {
        s = coeffs_build(&ch, in->width, out_w, x0, win_w, f);
        size_t n;
        if (s == ML_OK && (ml_mul_overflows(win_w * 3, row1 - row0, &n) || !(tmp = ml_malloc(n, "resize intermediate"))))
            s = ML_ERR_NOMEM;
        if (s == ML_OK) {
            /* the 8-bit intermediate, rounded and clipped, as in Pillow */
            pass_horizontal(tmp, in, row0, row1 - row0, &ch, win_w);
            src = tmp;
            stride = win_w * 3;
            col0 = 0;
            src_row0 = row0;
        }
    }
    if (s == ML_OK) {
        if (need_v) {
            int64_t *acc = ml_malloc(win_w * 3 * sizeof *acc, "resize row sums");
            if (acc)
                pass_vertical(out->data, win_w, src, stride, col0, src_row0, &cv, win_h, acc);
            else
                s = ML_ERR_NOMEM;
            free(acc);
        } else {
            for (size_t y = 0; y < win_h; y++)
                memcpy(out->data + y * win_w * 3, src + (y0 + y - src_row0) * stride + col0 * 3, win_w * 3);
        }
    }
    coeffs_free(&ch);
    coeffs_free(&cv);
    free(tmp);
    if (s != ML_OK)
        image_free_rgb8(out);
    return s;
}

ml_status resample_resize_rgb8(image_rgb8 *out, const image_rgb8 *in, size_t out_w, size_t out_h,
                               resample_filter f)
{
    return resample_resize_window_rgb8(out, in, out_w, out_h, 0, 0, out_w, out_h, f);
}

/* Python's int(round(d / 2)) for d >= 0: halves round to the even neighbour. */
static size_t round_half_even_half(size_t d)
{
    size_t q = d / 2;
    if ((d & 1) && (q & 1))
        q++;
    return q;
}

/* One axis of torchvision's center_crop of a size-long axis to crop: the
 * source span [*src0, *src0 + *len) lands at [*dst0, *dst0 + *len). */
static void crop_axis(size_t *src0, size_t *dst0, size_t *len, size_t size, size_t crop)
{
    if (crop > size) {
        /* padded with (crop - size) // 2 zeros before: the padded axis is the crop */
        *src0 = 0;
        *dst0 = (crop - size) / 2;
        *len = size;
    } else {
        *src0 = round_half_even_half(size - crop);
        *dst0 = 0;
        *len = crop;
    }
}

ml_status resample_center_crop_rgb8(image_rgb8 *out, const image_rgb8 *in, size_t crop_w, size_t crop_h)
{
    memset(out, 0, sizeof *out);
    if (crop_w == 0 || crop_h == 0)
        return ml_fail(ML_ERR_USAGE, "centre crop to %zu x %zu", crop_w, crop_h);
    size_t sx, dx, lx, sy, dy, ly;
    crop_axis(&sx, &dx, &lx, in->width, crop_w);
    crop_axis(&sy, &dy, &ly, in->height, crop_h);
    ML_TRY(image_alloc_rgb8(out, crop_w, crop_h));
    if (lx != crop_w || ly != crop_h)
        memset(out->data, 0, crop_w * crop_h * 3);
    for (size_t y = 0; y < ly; y++)
        memcpy(out->data + ((dy + y) * crop_w + dx) * 3, in->data + ((sy + y) * in->width + sx) * 3, lx * 3);
    return ML_OK;
}

void eval_transform_init(eval_transform *t, size_t size)
{
    /* double constants cast to float: what torch.tensor(mean) holds */
    *t = (eval_transform){
        .size = size,
        .crop_pct = 1.0,
        .interp = RESAMPLE_BICUBIC,
        .mean = {(float)0.485, (float)0.456, (float)0.406},
        .std = {(float)0.229, (float)0.224, (float)0.225},
    };
}

ml_status eval_transform_check(const eval_transform *t)
{
    if (t->size == 0 || t->size > EVAL_MAX_SIDE)
        return ml_fail(ML_ERR_USAGE, "eval transform: size %zu (1 .. %zu)", t->size, EVAL_MAX_SIDE);
    if (!(t->crop_pct > 0) || !isfinite(t->crop_pct))
        return ml_fail(ML_ERR_USAGE, "eval transform: crop_pct %g must be a positive number", t->crop_pct);
    double s = floor((double)t->size / t->crop_pct);
    if (!(s >= 1) || s > (double)EVAL_MAX_SIDE)
        return ml_fail(ML_ERR_USAGE, "eval transform: size %zu / crop_pct %g gives a resize to %.0f (1 .. %zu)",
                       t->size, t->crop_pct, s, EVAL_MAX_SIDE);
    if (t->interp != RESAMPLE_BICUBIC && t->interp != RESAMPLE_BILINEAR)
        return ml_fail(ML_ERR_USAGE, "eval transform: unknown interpolation %d", (int)t->interp);
    for (int c = 0; c < 3; c++) {
        if (!isfinite(t->mean[c]))
            return ml_fail(ML_ERR_USAGE, "eval transform: mean[%d] is not finite", c);
        if (!(t->std[c] > 0) || !isfinite(t->std[c]))
            return ml_fail(ML_ERR_USAGE, "eval transform: std[%d] = %g must be positive", c, (double)t->std[c]);
    }
    return ML_OK;
}

ml_status eval_transform_plan(size_t *resize_w, size_t *resize_h, const eval_transform *t, size_t w,
                              size_t h)
{
    ML_TRY(eval_transform_check(t));
    if (w == 0 || h == 0)
        return ml_fail(ML_ERR_USAGE, "eval transform of an empty %zu x %zu image", w, h);
    size_t s = (size_t)floor((double)t->size / t->crop_pct); /* timm: math.floor(img_size / crop_pct) */
    size_t shorter = w <= h ? w : h, longer = w <= h ? h : w, prod;
    /* Python divides the exact integer product; below 2^53 a double holds it exactly */
    if (ml_mul_overflows(s, longer, &prod) || prod > ((size_t)1 << 53))
        return ml_fail(ML_ERR_USAGE, "eval transform: %zu x %zu image is too elongated", w, h);
    size_t l = (size_t)((double)prod / (double)shorter);
    if (l > INT32_MAX)
        return ml_fail(ML_ERR_USAGE, "eval transform: %zu x %zu image would resize to a side of %zu", w, h, l);
    *resize_w = w <= h ? s : l;
    *resize_h = w <= h ? l : s;
    return ML_OK;
}

ml_status eval_transform_rgb8(image_rgb8 *out, const eval_transform *t, const image_rgb8 *in)
{
    memset(out, 0, sizeof *out);
    size_t rw, rh, r = t->size;
    ML_TRY(eval_transform_plan(&rw, &rh, t, in->width, in->height));
    size_t sx, dx, lx, sy, dy, ly;
    crop_axis(&sx, &dx, &lx, rw, r);
    crop_axis(&sy, &dy, &ly, rh, r);
    if (lx == r && ly == r) /* the usual case: the crop is a window of the resize */
        return resample_resize_window_rgb8(out, in, rw, rh, sx, sy, r, r, t->interp);
    image_rgb8 part;
    ML_TRY(resample_resize_window_rgb8(&part, in, rw, rh, sx, sy, lx, ly, t->interp));
    ml_status s = image_alloc_rgb8(out, r, r);
    if (s == ML_OK) {
        memset(out->data, 0, r * r * 3);
        for (size_t y = 0; y < ly; y++)
            memcpy(out->data + ((dy + y) * r + dx) * 3, part.data + y * lx * 3, lx * 3);
    }
    image_free_rgb8(&part);
    return s;
}

void eval_normalize_chw(float *out_chw, const image_rgb8 *img, const float mean[3], const float std[3])
{
    size_t hw = img->width * img->height;
    for (int c = 0; c < 3; c++) {
        float *o = out_chw + (size_t)c * hw;
        const uint8_t *p = img->data + c;
        for (size_t i = 0; i < hw; i++) {
            /* float32 throughout, one rounding per step, as torch's kernels */
            float v = (float)p[3 * i] / 255.0f;
            o[i] = (v - mean[c]) / std[c];
        }
    }
}

ml_status eval_transform_chw(float *out_chw, const eval_transform *t, const image_rgb8 *in)
{
    image_rgb8 crop;
    ML_TRY(eval_transform_rgb8(&crop, t, in));
    eval_normalize_chw(out_chw, &crop, t->mean, t->std);
    image_free_rgb8(&crop);
    return ML_OK;
}

/* RandomResizedCrop's box (torchvision's get_params, with rng for torch's generator) */
static void random_box(size_t W, size_t H, rng_state *rng, size_t *x0, size_t *y0, size_t *w, size_t *h)
{
    const double area = (double)W * (double)H, lo = log(3.0 / 4.0), hi = log(4.0 / 3.0);
    for (int attempt = 0; attempt < 10; attempt++) {
        const double target = area * (0.08 + 0.92 * rng_uniform(rng)), ar = exp(lo + (hi - lo) * rng_uniform(rng));
        const double bw = round(sqrt(target * ar)), bh = round(sqrt(target / ar));
        if (bw >= 1 && bh >= 1 && bw <= (double)W && bh <= (double)H) {
            *w = (size_t)bw, *h = (size_t)bh;
            *x0 = (size_t)(rng_uniform(rng) * (double)(W - *w + 1));
            *y0 = (size_t)(rng_uniform(rng) * (double)(H - *h + 1));
            return;
        }
    }
    const double in_ratio = (double)W / (double)H;
    *w = W, *h = H;
    if (in_ratio < 3.0 / 4.0)
        *h = (size_t)fmin(round((double)W / (3.0 / 4.0)), (double)H);
    else if (in_ratio > 4.0 / 3.0)
        *w = (size_t)fmin(round((double)H * (4.0 / 3.0)), (double)W);
    *x0 = (W - *w) / 2, *y0 = (H - *h) / 2;
}

ml_status train_transform_chw(float *out_chw, const eval_transform *t, const image_rgb8 *in, rng_state *rng)
{
    ML_TRY(eval_transform_check(t));
    size_t x0, y0, w, h;
    random_box(in->width, in->height, rng, &x0, &y0, &w, &h);
    image_rgb8 box, out;
    ML_TRY(image_alloc_rgb8(&box, w, h));
    for (size_t y = 0; y < h; y++)
        memcpy(box.data + y * w * 3, in->data + ((y0 + y) * in->width + x0) * 3, w * 3);
    ml_status s = resample_resize_rgb8(&out, &box, t->size, t->size, t->interp);
    image_free_rgb8(&box);
    if (s != ML_OK)
        return s;
    if (rng_uniform(rng) < 0.5)
        for (size_t y = 0; y < out.height; y++) {
            uint8_t *row = out.data + y * out.width * 3;
            for (size_t a = 0, b = out.width - 1; a < b; a++, b--)
                for (int c = 0; c < 3; c++) {
                    const uint8_t v = row[a * 3 + c];
                    row[a * 3 + c] = row[b * 3 + c], row[b * 3 + c] = v;
                }
        }
    eval_normalize_chw(out_chw, &out, t->mean, t->std);
    image_free_rgb8(&out);
    return ML_OK;
}
