/* Fashion-MNIST (Xiao et al. 2017) from the IDX files of Debian's
 * dataset-fashion-mnist: 60,000 training and 10,000 test images of 28 x 28
 * grey pixels, ten classes.
 *
 * At resolution R a sample is pixel / 255, resized to R x R by bilinear
 * interpolation with half-pixel centres (PyTorch's F.interpolate(mode =
 * "bilinear", align_corners = False), no antialiasing) when R != 28,
 * replicated to three channels and normalised with mean 0.2860, std 0.3530.
 * The training transform first places the resized image at a random offset
 * in a zero-padded (black) canvas, padding P = max(1, R / 8) on each side,
 * and crops R x R back (torchvision's RandomCrop(R, padding = P)), then
 * flips it left-right with probability 1/2; both draws come from the
 * sample's own seeded stream. With random erasing on (dataset_options.erase),
 * the normalised grey plane then goes through dataset_random_erase, from a
 * second stream of the sample, before it is copied to the three channels. */
#include "data/dataset.h"
#include "data/idx.h"

#include "base/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FMNIST_SIDE 28
#define FMNIST_MEAN 0.2860f
#define FMNIST_STD 0.3530f
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
    idx_array images[2], labels[2];
} fmnist;

/* One coordinate of PyTorch's bilinear resize (align_corners = False): the
 * two source taps and the weight of the second. */
static void bilinear_tap(int dst, int in, int out, int *i0, int *i1, float *w1)
{
    const float scale = (float)in / (float)out;
    float src = ((float)dst + 0.5f) * scale - 0.5f;
    if (src < 0)
        src = 0;
    *i0 = (int)src;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *w1 = src - (float)*i0;
}

/* img (res, res) in [0, 1] from the 28 x 28 bytes. */
static void resize_to(float *img, const uint8_t *px, int res)
{
    if (res == FMNIST_SIDE) {
        for (int i = 0; i < FMNIST_SIDE * FMNIST_SIDE; i++)
            img[i] = (float)px[i] / 255.0f;
        return;
    }
    for (int y = 0; y < res; y++) {
        int y0, y1;
        float wy;
        bilinear_tap(y, FMNIST_SIDE, res, &y0, &y1, &wy);
        for (int x = 0; x < res; x++) {
            int x0, x1;
            float wx;
            bilinear_tap(x, FMNIST_SIDE, res, &x0, &x1, &wx);
            const float a = px[y0 * FMNIST_SIDE + x0] / 255.0f, b = px[y0 * FMNIST_SIDE + x1] / 255.0f;
            const float c = px[y1 * FMNIST_SIDE + x0] / 255.0f, d = px[y1 * FMNIST_SIDE + x1] / 255.0f;
            img[y * res + x] = (1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * c + wx * d);
        }
    }
}

/* The training transform on img (res, res) in place: random padded crop, random flip. */
static void augment(float *img, float *tmp, int res, rng_state *r)
{
    const int P = res / 8 > 1 ? res / 8 : 1;
    const int oy = (int)(rng_next_u64(r) % (uint64_t)(2 * P + 1)) - P;
    const int ox = (int)(rng_next_u64(r) % (uint64_t)(2 * P + 1)) - P;
    const int flip = (int)(rng_next_u64(r) & 1);
    for (int y = 0; y < res; y++)
        for (int x = 0; x < res; x++) {
            const int sy = y + oy, sx0 = x + ox;
            const int sx = flip ? (res - 1 - x) + ox : sx0;
            tmp[y * res + x] = sy < 0 || sy >= res || sx < 0 || sx >= res ? 0.0f : img[sy * res + sx];
        }
    memcpy(img, tmp, (size_t)res * res * sizeof *img);
}

static ml_status fmnist_batch(const dataset *d, data_split split, const size_t *idx, int n, int res, int augment_on,
                              uint64_t seed, float *x, int32_t *labels)
{
    const fmnist *f = d->impl;
    const size_t plane = (size_t)res * res;
    float *img = malloc(2 * plane * sizeof *img);
    if (!img)
        return ml_fail(ML_ERR_NOMEM, "out of memory for a %dx%d image", res, res);
    for (int k = 0; k < n; k++) {
        const size_t i = idx[k];
        ML_ASSERT(i < d->n[split]);
        resize_to(img, f->images[split].data + i * FMNIST_SIDE * FMNIST_SIDE, res);
        if (augment_on) {
            rng_state r;
            rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (i + 1)));
            augment(img, img + plane, res, &r);
        }
        float *o = x + (size_t)k * 3 * plane;
        for (size_t p = 0; p < plane; p++)
            o[p] = (img[p] - FMNIST_MEAN) / FMNIST_STD;
        if (augment_on && d->opt.erase > 0) { /* on the grey plane: the three channels stay equal */
            rng_state r;
            rng_seed(&r, (seed ^ (0x9e3779b97f4a7c15ULL * (i + 1))) + 0x6a09e667f3bcc909ULL);
            dataset_random_erase(o, 1, res, res, plane, d->opt.erase, &r);
        }
        memcpy(o + plane, o, plane * sizeof *o);
        memcpy(o + 2 * plane, o, plane * sizeof *o);
        labels[k] = f->labels[split].data[i];
    }
    free(img);
    return ML_OK;
}

static void fmnist_release(dataset *d)
{
    fmnist *f = d->impl;
    if (!f)
        return;
    for (int s = 0; s < 2; s++)
        idx_free(&f->images[s]), idx_free(&f->labels[s]);
    free(f);
    d->impl = NULL;
}

/* One split's images and labels, checked against each other. */
static ml_status load_split(const char *dir, const char *prefix, idx_array *im, idx_array *lb)
{
    char ip[1100], lp[1100];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    ML_TRY(idx_read(ip, 3, im));
    ML_TRY(idx_read(lp, 1, lb));
    if (im->dims[1] != FMNIST_SIDE || im->dims[2] != FMNIST_SIDE)
        return ml_fail(ML_ERR_FORMAT, "'%s': images are %ux%u, Fashion-MNIST's are %dx%d", ip, im->dims[1], im->dims[2],
                       FMNIST_SIDE, FMNIST_SIDE);
    if (im->dims[0] != lb->dims[0])
        return ml_fail(ML_ERR_FORMAT, "'%s' has %u labels for the %u images of '%s'", lp, lb->dims[0], im->dims[0], ip);
    for (size_t i = 0; i < lb->count; i++)
        if (lb->data[i] > 9)
            return ml_fail(ML_ERR_FORMAT, "'%s': label %u of sample %zu is not a class 0..9", lp, lb->data[i], i);
    return ML_OK;
}

ml_status fashion_mnist_open(dataset *d, const char *dir, size_t limit);
const uint8_t *fashion_mnist_pixels(const dataset *d, data_split s, size_t i, int *label);

/* Sample i's 28 x 28 bytes and label (sequential-fashion-mnist reads them as tokens). */
const uint8_t *fashion_mnist_pixels(const dataset *d, data_split s, size_t i, int *label)
{
    const fmnist *f = d->impl;
    ML_ASSERT(i < d->n[s]);
    *label = f->labels[s].data[i];
    return f->images[s].data + i * FMNIST_SIDE * FMNIST_SIDE;
}

ml_status fashion_mnist_open(dataset *d, const char *dir, size_t limit)
{
    memset(d, 0, sizeof *d);
    fmnist *f = calloc(1, sizeof *f);
    if (!f)
        return ML_ERR_NOMEM;
    d->impl = f;
    d->release = fmnist_release;
    d->batch = fmnist_batch;
    snprintf(d->name, sizeof d->name, "fashion-mnist");
    snprintf(d->source, sizeof d->source, "%s", dir ? dir : FMNIST_DIR);
    d->classes = 10;
    d->native_res = FMNIST_SIDE;
    ml_status s = load_split(d->source, "train", &f->images[DATA_TRAIN], &f->labels[DATA_TRAIN]);
    if (s == ML_OK)
        s = load_split(d->source, "t10k", &f->images[DATA_TEST], &f->labels[DATA_TEST]);
    if (s != ML_OK) {
        fmnist_release(d);
        return s;
    }
    d->n[DATA_TRAIN] = f->images[DATA_TRAIN].dims[0];
    d->n[DATA_TEST] = f->images[DATA_TEST].dims[0];
    if (limit > 0 && limit < d->n[DATA_TRAIN])
        d->n[DATA_TRAIN] = limit;
    return ML_OK;
}
