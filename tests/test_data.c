/* The training data: Fashion-MNIST's IDX files read and transformed exactly
 * as PyTorch does (fixtures from scripts/make_data_fixtures.py), the training
 * augmentation as a property (every augmented image is a shift and maybe a
 * flip of the plain one), epoch orders, the loader against direct batches,
 * and every kind of damaged file. */
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"
#include "models/safetensors.h"
#include "test_util.h"

#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static void test_fixture(const char *dir, const dataset *d)
{
    char path[512];
    snprintf(path, sizeof path, "%s/data/fashion_mnist_first3.safetensors", dir);
    st_file f;
    if (st_open(&f, path) != ML_OK) {
        CHECK(0, "fixture: %s", ml_last_error());
        return;
    }
    const size_t idx[3] = {0, 1, 2};
    const int res[3] = {28, 32, 64};
    float lab[3];
    int32_t labels[3];
    CHECK(st_load(&f, "labels", 1, (int64_t[]){3}, lab) == ML_OK, "labels");
    for (int k = 0; k < 3; k++) {
        const size_t n = (size_t)3 * 3 * res[k] * res[k];
        float *ref = malloc(n * sizeof *ref), *x = alloc_guarded(n);
        char name[32];
        snprintf(name, sizeof name, "input_r%d", res[k]);
        CHECK(st_load(&f, name, 4, (int64_t[]){3, 3, res[k], res[k]}, ref) == ML_OK, "%s", name);
        CHECK(d->batch(d, DATA_TRAIN, idx, 3, res[k], 0, 1, x, labels) == ML_OK, "batch: %s", ml_last_error());
        double e = rel_err_f(x, ref, n);
        printf("  fashion-mnist at %dx%d against PyTorch's bilinear interpolate: rel err %.3g\n", res[k], res[k], e);
        CHECK(e <= 1e-6 && guard_intact(x, n), "transform at %d: rel err %.3g", res[k], e);
        for (int i = 0; i < 3; i++)
            CHECK(labels[i] == (int32_t)lab[i], "label %d: %d, PyTorch %g", i, labels[i], lab[i]);
        free(ref), free(x);
    }
    st_close(&f);
}

/* The augmented image is the plain one shifted by (dy, dx) within ±P, zero
 * outside, and maybe mirrored: find the one that matches exactly. */
static int is_shift_flip(const float *aug, const float *plain, int res, float zero)
{
    const int P = res / 8 > 1 ? res / 8 : 1;
    for (int flip = 0; flip < 2; flip++)
        for (int dy = -P; dy <= P; dy++)
            for (int dx = -P; dx <= P; dx++) {
                int same = 1;
                for (int y = 0; y < res && same; y++)
                    for (int x = 0; x < res && same; x++) {
                        const int sy = y + dy, sx = (flip ? res - 1 - x : x) + dx;
                        const float v = sy < 0 || sy >= res || sx < 0 || sx >= res ? zero : plain[sy * res + sx];
                        same = aug[y * res + x] == v;
                    }
                if (same)
                    return 1;
            }
    return 0;
}

static void test_augment(const dataset *d)
{
    const int res = 32, n = 16;
    const size_t plane = (size_t)res * res, per = 3 * plane;
    size_t idx[16];
    for (int i = 0; i < n; i++)
        idx[i] = (size_t)i * 3001;
    float *plain = malloc(n * per * sizeof *plain), *a = malloc(n * per * sizeof *a), *b = malloc(n * per * sizeof *b);
    int32_t lab[16];
    d->batch(d, DATA_TRAIN, idx, n, res, 0, 7, plain, lab);
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 7, a, lab);
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 7, b, lab);
    CHECK(memcmp(a, b, n * per * sizeof *a) == 0, "augmentation is not deterministic for one seed");
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 8, b, lab);
    CHECK(memcmp(a, b, n * per * sizeof *a) != 0, "another seed gives the same augmentation");
    const float zero = (0.0f - 0.2860f) / 0.3530f;
    int ok = 0, moved = 0;
    for (int i = 0; i < n; i++) {
        ok += is_shift_flip(a + i * per, plain + i * per, res, zero);
        moved += memcmp(a + i * per, plain + i * per, plane * sizeof *a) != 0;
    }
    printf("  augmentation: %d of %d images a shift and flip of the plain one, %d changed\n", ok, n, moved);
    CHECK(ok == n, "%d of %d augmented images are not a padded shift / flip of the plain one", n - ok, n);
    CHECK(moved >= n / 2, "only %d of %d images changed", moved, n);
    free(plain), free(a), free(b);
}

/* Random erasing (timm's RandomErasing, mode "pixel"): on top of the same crop and flip, an erased
 * image differs from the unerased one only inside one axis-aligned box of 2%..1/3 of the area (with
 * rounding) and aspect ratio in 0.3..3.3, equally in the three channels, filled with standard normal
 * values; with probability 1/2 about half the images are erased. */
static void test_random_erase(dataset *d)
{
    const int res = 32, n = 200;
    const size_t plane = (size_t)res * res, per = 3 * plane;
    size_t *idx = malloc(n * sizeof *idx);
    for (int i = 0; i < n; i++)
        idx[i] = (size_t)i * 49; /* inside the test split too */
    float *plain = malloc(n * per * sizeof *plain), *a = malloc(n * per * sizeof *a), *b = malloc(n * per * sizeof *b);
    int32_t *lab = malloc(n * sizeof *lab);
    const double keep = d->opt.erase;
    d->opt.erase = 0;
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 7, plain, lab);
    d->opt.erase = 1;
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 7, a, lab);
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 7, b, lab);
    CHECK(memcmp(a, b, n * per * sizeof *a) == 0, "random erasing is not deterministic for one seed");
    int boxes = 0, bad = 0;
    double sum = 0, sq = 0, cnt = 0;
    for (int i = 0; i < n; i++) {
        const float *x = a + i * per, *p0 = plain + i * per;
        int y0 = res, y1 = -1, x0 = res, x1 = -1;
        for (int y = 0; y < res; y++)
            for (int xx = 0; xx < res; xx++)
                if (x[y * res + xx] != p0[y * res + xx]) {
                    y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1, x0 = xx < x0 ? xx : x0, x1 = xx > x1 ? xx : x1;
                }
        if (memcmp(x, x + plane, plane * sizeof *x) || memcmp(x, x + 2 * plane, plane * sizeof *x))
            bad++; /* the channels of a grey image stay equal */
        if (y1 < 0)
            continue; /* ten tries without a fit (rare) */
        boxes++;
        const int h = y1 - y0 + 1, w = x1 - x0 + 1;
        const double area = (double)h * w / (double)plane, aspect = (double)h / w;
        /* bounds of a box from rounding sqrt(t·r) and sqrt(t/r), t in 2%..1/3 of the area */
        if (area > 0.40 || area < 0.008 || aspect < 0.3 / 1.6 || aspect > 1.6 / 0.3)
            bad++;
        for (int y = 0; y < res; y++)
            for (int xx = 0; xx < res; xx++) {
                const int in = y >= y0 && y <= y1 && xx >= x0 && xx <= x1;
                if (!in && x[y * res + xx] != p0[y * res + xx])
                    bad++;
                if (in)
                    sum += x[y * res + xx], sq += (double)x[y * res + xx] * x[y * res + xx], cnt++;
            }
    }
    const double mean = sum / cnt, var = sq / cnt - mean * mean;
    printf("  random erasing p=1: %d of %d images with one box, noise mean %.3f variance %.3f over %.0f pixels\n",
           boxes, n, mean, var, cnt);
    CHECK(bad == 0, "random erasing: %d images or pixels outside the rules", bad);
    CHECK(boxes >= n * 9 / 10, "random erasing p=1 erased only %d of %d images", boxes, n);
    CHECK(fabs(mean) < 0.05 && fabs(var - 1) < 0.05, "erased pixels: mean %.3f variance %.3f, want N(0, 1)", mean,
          var);
    d->opt.erase = 0.5;
    d->batch(d, DATA_TRAIN, idx, n, res, 1, 7, b, lab);
    int erased = 0;
    for (int i = 0; i < n; i++)
        erased += memcmp(b + i * per, plain + i * per, per * sizeof *b) != 0;
    printf("  random erasing p=0.5: %d of %d images erased\n", erased, n);
    CHECK(erased > n / 2 - 30 && erased < n / 2 + 30, "p = 0.5 erased %d of %d images", erased, n);
    d->batch(d, DATA_TEST, idx, n, res, 0, 7, b, lab);
    d->batch(d, DATA_TEST, idx, n, res, 0, 7, a, lab);
    d->opt.erase = 0;
    d->batch(d, DATA_TEST, idx, n, res, 0, 7, plain, lab);
    CHECK(memcmp(a, plain, n * per * sizeof *a) == 0, "random erasing touched an unaugmented (test) batch");
    d->opt.erase = keep;
    free(idx), free(plain), free(a), free(b), free(lab);
}

static void test_order_and_loader(const dataset *d)
{
    const size_t n = 1000;
    size_t *o1 = malloc(n * sizeof *o1), *o2 = malloc(n * sizeof *o2);
    char *seen = calloc(n, 1);
    dataset_epoch_order(o1, n, 5, 0);
    dataset_epoch_order(o2, n, 5, 1);
    int perm = 1;
    for (size_t i = 0; i < n; i++)
        perm &= o1[i] < n && !seen[o1[i]]++;
    CHECK(perm, "epoch order is not a permutation");
    CHECK(memcmp(o1, o2, n * sizeof *o1) != 0, "two epochs have the same order");
    const int B = 96, res = 28; /* 1000 = 10 x 96 + 40: a short last batch */
    const size_t per = (size_t)3 * res * res;
    float *ref = malloc((size_t)B * per * sizeof *ref);
    int32_t rl[96];
    for (size_t first = 0; first < 5; first += 4) { /* from the start, and resumed at batch 4 */
        loader *l;
        CHECK(loader_start(&l, d, DATA_TRAIN, o1, n, B, res, 1, 99, first) == ML_OK, "loader: %s", ml_last_error());
        size_t b = first, total = 0;
        const float *x;
        const int32_t *lab;
        int count, same = 1;
        while (loader_next(l, &x, &lab, &count) == ML_OK && count > 0) {
            d->batch(d, DATA_TRAIN, o1 + b * B, count, res, 1, 99, ref, rl);
            same &= memcmp(x, ref, (size_t)count * per * sizeof *x) == 0 && memcmp(lab, rl, count * sizeof *lab) == 0;
            total += (size_t)count, b++;
        }
        CHECK(same && total == n - first * B && b == 11, "loader from batch %zu: %zu samples in %zu batches%s", first,
              total, b, same ? "" : ", contents differ from direct batches");
        loader_stop(l);
    }
    loader *l;
    CHECK(loader_start(&l, d, DATA_TRAIN, o1, n, B, res, 0, 1, 0) == ML_OK, "loader");
    loader_stop(l); /* stopped before anything was taken: no hang, no leak */
    free(o1), free(o2), free(seen), free(ref);
}

/* A gzip file of the given bytes (len) under tmpdir/name; truncate > 0 cuts the compressed file. */
static void write_gz(const char *name, const uint8_t *bytes, size_t len, long cut)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    gzFile g = gzopen(p, "wb");
    gzwrite(g, bytes, (unsigned)len);
    gzclose(g);
    if (cut > 0 && truncate(p, cut) != 0)
        CHECK(0, "cannot truncate %s", p);
}

static void idx_header(uint8_t *b, uint32_t magic, const uint32_t *dims, int nd)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(magic >> (24 - 8 * i));
    for (int d = 0; d < nd; d++)
        for (int i = 0; i < 4; i++)
            b[4 + 4 * d + i] = (uint8_t)(dims[d] >> (24 - 8 * i));
}

/* A small, well-formed Fashion-MNIST folder (n images per split), then defects one at a time. */
static void make_split(const char *prefix, uint32_t n_img, uint32_t n_lab, uint32_t magic_img, uint8_t label,
                       long truncate)
{
    const size_t nb = 16 + (size_t)n_img * 784, nl = 8 + n_lab;
    uint8_t *im = calloc(nb, 1), *lb = calloc(nl, 1);
    idx_header(im, magic_img, (uint32_t[]){n_img, 28, 28}, 3);
    idx_header(lb, 0x801, (uint32_t[]){n_lab}, 1);
    for (size_t i = 16; i < nb; i++)
        im[i] = (uint8_t)(i * 7);
    for (size_t i = 8; i < nl; i++)
        lb[i] = label;
    char name[64];
    snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
    write_gz(name, im, nb, truncate);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
    write_gz(name, lb, nl, 0);
    free(im), free(lb);
}

static void expect_error(ml_status want, const char *needle, const char *what)
{
    dataset d;
    char spec[400];
    snprintf(spec, sizeof spec, "fashion-mnist:dir=%s", tmpdir);
    ml_status s = dataset_open(&d, spec, 0);
    CHECK(s == want && strstr(ml_last_error(), needle), "%s: status %d (want %d), '%s' (want '%s')", what, s, want,
          ml_last_error(), needle);
    if (s == ML_OK)
        dataset_close(&d);
}

static void test_bad_files(void)
{
    make_split("train", 5, 5, 0x803, 3, 0);
    make_split("t10k", 2, 2, 0x803, 3, 0);
    dataset d;
    char spec[400];
    snprintf(spec, sizeof spec, "fashion-mnist:dir=%s", tmpdir);
    CHECK(dataset_open(&d, spec, 0) == ML_OK && d.n[DATA_TRAIN] == 5 && d.n[DATA_TEST] == 2, "small folder: %s",
          ml_last_error());
    dataset_close(&d);
    make_split("train", 5, 5, 0x802, 3, 0);
    expect_error(ML_ERR_FORMAT, "IDX magic 0x00000802, expected 0x00000803", "wrong magic");
    make_split("train", 5, 4, 0x803, 3, 0);
    expect_error(ML_ERR_FORMAT, "has 4 labels for the 5 images", "label count != image count");
    make_split("train", 5, 5, 0x803, 11, 0);
    expect_error(ML_ERR_FORMAT, "label 11 of sample 0 is not a class 0..9", "label out of range");
    make_split("train", 5, 5, 0x803, 3, 200);
    expect_error(ML_ERR_FORMAT, "train-images-idx3-ubyte.gz", "truncated gzip");
    /* a header that promises more images than the file holds */
    const size_t nb = 16 + 3 * 784;
    uint8_t *im = calloc(nb, 1);
    idx_header(im, 0x803, (uint32_t[]){5, 28, 28}, 3);
    write_gz("train-images-idx3-ubyte.gz", im, nb, 0);
    free(im);
    expect_error(ML_ERR_FORMAT, "2352 data bytes, but the header's dimensions need 3920", "short data");
    char p[512];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", tmpdir);
    remove(p);
    expect_error(ML_ERR_IO, "cannot open", "missing file");
    CHECK(dataset_open(&d, "fashion-mnist:colour=1", 0) == ML_ERR_USAGE && strstr(ml_last_error(), "unknown key"),
          "bad key: %s", ml_last_error());
    CHECK(dataset_open(&d, "imagenet-21k", 0) == ML_ERR_USAGE && strstr(ml_last_error(), "unknown dataset"),
          "unknown dataset: %s", ml_last_error());
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    test_tmpdir(tmpdir, sizeof tmpdir, "data");
    dataset d;
    ml_status s = dataset_open(&d, "fashion-mnist", 0);
    CHECK(s == ML_OK, "Fashion-MNIST (scripts/setup.sh installs dataset-fashion-mnist): %s", ml_last_error());
    if (s == ML_OK) {
        CHECK(d.n[DATA_TRAIN] == 60000 && d.n[DATA_TEST] == 10000 && d.classes == 10, "sizes %zu %zu",
              d.n[DATA_TRAIN], d.n[DATA_TEST]);
        test_fixture(dir, &d);
        test_augment(&d);
        test_random_erase(&d);
        test_order_and_loader(&d);
        dataset_close(&d);
        CHECK(dataset_open(&d, "fashion-mnist", 1234) == ML_OK && d.n[DATA_TRAIN] == 1234 &&
                  d.n[DATA_TEST] == 10000,
              "--limit keeps the first 1234 training images");
        dataset_close(&d);
    }
    test_bad_files();
    test_tmpdir_remove(tmpdir);
    return test_summary("test_data");
}
