/* The generated long-range tasks (data/tasks.h) against their written rules, sample by sample:
 * selective copying's data tokens, markers and answers; induction heads' single trigger and the
 * recalled token; pathfinder's pixels, markers and balanced labels; sequential-fashion-mnist's
 * tokens against the IDX bytes; determinism, the held-out seed, --eval-seq-len's override, and
 * every parameter error. */
#include "data/tasks.h"
#include "test_util.h"

#include <stdint.h>

static int open_task(dataset *d, const char *spec, int seq_len)
{
    dataset_options o = dataset_options_default();
    o.seq_len = seq_len;
    const ml_status s = dataset_open_with(d, spec, 0, &o);
    CHECK(s == ML_OK, "%s: %s", spec, ml_last_error());
    return s == ML_OK;
}

static void batch_of(const dataset *d, data_split split, size_t first, int n, uint64_t seed, float *x, int32_t *lab)
{
    size_t idx[64];
    for (int k = 0; k < n; k++)
        idx[k] = first + (size_t)k;
    CHECK(d->batch(d, split, idx, n, 32, 0, seed, x, lab) == ML_OK, "%s batch: %s", d->name, ml_last_error());
}

static void test_selective_copying(void)
{
    dataset d;
    if (!open_task(&d, "selective-copying:seq_len=50,tokens=7,vocab=9,test=30", 0))
        return;
    const int L = 50, M = 7, V = 9, T = L + M, n = 30;
    CHECK(d.seq_len == T && d.vocab == V && d.classes == V && d.stream && d.n[DATA_TEST] == 30 && !d.n[DATA_TRAIN],
          "selective copying: seq_len %d vocab %d classes %d stream %d test %zu", d.seq_len, d.vocab, d.classes,
          d.stream, d.n[DATA_TEST]);
    float *x = malloc((size_t)n * T * sizeof *x);
    int32_t *lab = malloc((size_t)n * T * sizeof *lab);
    int bad = 0, at_first = 0;
    for (int split = 0; split < 2; split++) {
        batch_of(&d, (data_split)split, 0, n, 11, x, lab);
        for (int k = 0; k < n; k++) {
            const float *t = x + (size_t)k * T;
            const int32_t *y = lab + (size_t)k * T;
            int data[64], nd = 0;
            for (int p = 0; p < L; p++) {
                bad += y[p] != -1;
                if (t[p] != 0.0f) {
                    bad += !(t[p] >= 1 && t[p] <= V - 2) || t[p] != (float)(int)t[p];
                    if (nd < 64)
                        data[nd++] = (int)t[p];
                    at_first += p == 0;
                }
            }
            bad += nd != M;
            for (int m = 0; m < M; m++)
                bad += t[L + m] != (float)(V - 1) || (m < nd && y[L + m] != data[m]);
        }
    }
    CHECK(bad == 0, "selective copying: %d rule violations", bad);
    CHECK(at_first > 0, "selective copying: no data token ever at position 0 (positions not uniform?)");
    free(x), free(lab);
    dataset_close(&d);
}

static void test_induction_heads(void)
{
    dataset d;
    if (!open_task(&d, "induction-heads:seq_len=40,vocab=6,test=64", 0))
        return;
    const int L = 40, V = 6, n = 64;
    CHECK(d.seq_len == L && d.classes == V && d.vocab == V, "induction heads: seq_len %d classes %d", d.seq_len,
          d.classes);
    float *x = malloc((size_t)n * L * sizeof *x);
    int32_t *lab = malloc((size_t)n * L * sizeof *lab);
    batch_of(&d, DATA_TRAIN, 100, n, 3, x, lab);
    int bad = 0, late = 0;
    for (int k = 0; k < n; k++) {
        const float *t = x + (size_t)k * L;
        const int32_t *y = lab + (size_t)k * L;
        int trig = -1, count = 0;
        for (int p = 0; p < L - 1; p++)
            if (t[p] == (float)(V - 1))
                trig = p, count++;
        bad += count != 1 || t[L - 1] != (float)(V - 1) || trig > L - 3;
        if (count == 1)
            bad += y[L - 1] != (int)t[trig + 1] || t[trig + 1] == (float)(V - 1);
        late += trig == L - 3;
        for (int p = 0; p < L - 1; p++)
            bad += y[p] != -1;
    }
    CHECK(bad == 0, "induction heads: %d rule violations", bad);
    (void)late;
    free(x), free(lab);
    dataset_close(&d);
    /* --eval-seq-len: the same task at another length */
    if (open_task(&d, "induction-heads:seq_len=40,vocab=6", 1000)) {
        CHECK(d.seq_len == 1000, "seq_len override: %d", d.seq_len);
        dataset_close(&d);
    }
}

static void test_pathfinder(void)
{
    static const int sizes[] = {32, 64, 128};
    for (int q = 0; q < 3; q++) {
        char spec[64];
        snprintf(spec, sizeof spec, "pathfinder:size=%d,test=40", sizes[q]);
        dataset d;
        if (!open_task(&d, spec, 0))
            continue;
        const int S = sizes[q], T = S * S, n = q == 2 ? 40 : 400;
        CHECK(d.seq_len == T && d.image_res == S && d.classes == 2 && d.vocab == 256, "%s: fields", spec);
        float *x = malloc((size_t)8 * T * sizeof *x);
        int32_t *lab = malloc((size_t)8 * T * sizeof *lab);
        int ones = 0, bad = 0, dim = 0;
        for (int b = 0; b < n / 8; b++) {
            batch_of(&d, DATA_TRAIN, (size_t)b * 8, 8, 7, x, lab);
            for (int k = 0; k < 8; k++) {
                const float *t = x + (size_t)k * T;
                int lit = 0, full = 0;
                for (int p = 0; p < T; p++) {
                    bad += !(t[p] >= 0 && t[p] <= 255) || t[p] != (float)(int)t[p];
                    lit += t[p] > 0, full += t[p] == 255;
                    bad += p < T - 1 && lab[(size_t)k * T + p] != -1;
                }
                const int y = lab[(size_t)k * T + T - 1];
                bad += y != 0 && y != 1;
                ones += y == 1;
                dim += lit < 3 * S || full < 4; /* contours, and two markers of several pixels */
            }
        }
        CHECK(bad == 0, "%s: %d rule violations", spec, bad);
        CHECK(dim == 0, "%s: %d images without visible contours and markers", spec, dim);
        CHECK(ones >= 0.35 * n && ones <= 0.65 * n, "%s: %d of %d labels are 1", spec, ones, n);
        /* as an image: (3, res, res) in [-1, 1], one label per sample */
        d.as_image = 1;
        float img[3 * 40 * 40];
        int32_t y1[1];
        size_t i0 = 3;
        CHECK(d.batch(&d, DATA_TRAIN, &i0, 1, 40, 0, 7, img, y1) == ML_OK && (y1[0] == 0 || y1[0] == 1),
              "%s as an image", spec);
        int out = 0;
        for (int p = 0; p < 3 * 40 * 40; p++)
            out += !(img[p] >= -1.0f && img[p] <= 1.0f);
        CHECK(out == 0, "%s as an image: %d values outside [-1, 1]", spec, out);
        free(x), free(lab);
        dataset_close(&d);
    }
}

static void test_determinism(void)
{
    dataset d;
    if (!open_task(&d, "selective-copying:seq_len=64,tokens=8,vocab=10,test=8", 0))
        return;
    const int T = 72;
    float a[8 * 72], b[8 * 72], c[8 * 72], e[8 * 72];
    int32_t la[8 * 72], lb[8 * 72];
    batch_of(&d, DATA_TRAIN, 5, 8, 1, a, la);
    batch_of(&d, DATA_TRAIN, 5, 8, 1, b, lb);
    CHECK(!memcmp(a, b, sizeof a) && !memcmp(la, lb, sizeof la), "the same seed and index give other samples");
    batch_of(&d, DATA_TRAIN, 5, 8, 2, c, lb);
    CHECK(memcmp(a, c, sizeof a), "another training seed gives the same samples");
    batch_of(&d, DATA_TRAIN, 6, 8, 1, c, lb);
    CHECK(memcmp(a, c, sizeof a), "another index gives the same samples");
    batch_of(&d, DATA_TEST, 0, 8, 1, c, lb);
    batch_of(&d, DATA_TEST, 0, 8, 99, e, lb);
    CHECK(!memcmp(c, e, sizeof c), "the held-out set depends on the training seed");
    batch_of(&d, DATA_TRAIN, 0, 8, 0, e, lb);
    CHECK(memcmp(c, e, sizeof c), "the held-out set equals the training stream with seed 0");
    (void)T;
    dataset_close(&d);
}

static void test_sequential_fashion_mnist(void)
{
    if (access("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", R_OK) != 0) {
        printf("SKIP sequential-fashion-mnist: Debian's dataset-fashion-mnist is not installed\n");
        return;
    }
    dataset s, f;
    if (!open_task(&s, "sequential-fashion-mnist", 0))
        return;
    CHECK(dataset_open(&f, "fashion-mnist", 0) == ML_OK, "fashion-mnist: %s", ml_last_error());
    CHECK(s.seq_len == 784 && s.classes == 10 && !s.stream && s.n[DATA_TEST] == 10000 && s.image_res == 28,
          "sequential-fashion-mnist fields");
    float tok[4 * 784], img[4 * 3 * 28 * 28];
    int32_t lab[4 * 784], fl[4];
    size_t idx[4] = {0, 1, 2, 9999};
    CHECK(s.batch(&s, DATA_TEST, idx, 4, 28, 0, 0, tok, lab) == ML_OK &&
              f.batch(&f, DATA_TEST, idx, 4, 28, 0, 0, img, fl) == ML_OK,
          "batches: %s", ml_last_error());
    int bad = 0;
    for (int k = 0; k < 4; k++) {
        for (int p = 0; p < 784; p++) {
            const long byte = lroundf((img[(size_t)k * 3 * 784 + p] * 0.3530f + 0.2860f) * 255.0f);
            bad += (long)tok[k * 784 + p] != byte || (p < 783 && lab[k * 784 + p] != -1);
        }
        bad += lab[k * 784 + 783] != fl[k];
    }
    CHECK(bad == 0, "sequential-fashion-mnist: %d tokens or labels differ from fashion-mnist's", bad);
    s.as_image = 1;
    float img2[3 * 28 * 28];
    int32_t l2[1];
    CHECK(s.batch(&s, DATA_TEST, idx, 1, 28, 0, 0, img2, l2) == ML_OK && !memcmp(img2, img, sizeof img2) &&
              l2[0] == fl[0],
          "sequential-fashion-mnist as an image is not fashion-mnist's sample");
    dataset_close(&s);
    dataset_close(&f);
}

static void expect_error(const char *spec, const char *needle)
{
    dataset d;
    const ml_status s = dataset_open(&d, spec, 0);
    CHECK(s == ML_ERR_USAGE && strstr(ml_last_error(), needle), "%s: status %d, '%s' lacks '%s'", spec, s,
          ml_last_error(), needle);
    if (s == ML_OK)
        dataset_close(&d);
}

static void test_errors(void)
{
    expect_error("selective-copying:seq_len=8,tokens=9", "tokens=9 data tokens do not fit in seq_len=8");
    expect_error("selective-copying:vocab=2", "vocab=2 leaves no data token");
    expect_error("selective-copying:tokens=x", "tokens=x: want an integer");
    expect_error("selective-copying:colour=3", "unknown key 'colour'");
    expect_error("selective-copying:test=0", "test=0: want an integer in 1..");
    expect_error("selective-copying:seq_len", "is not key=value");
    expect_error("induction-heads:seq_len=3", "seq_len=3 is too short");
    expect_error("induction-heads:vocab=2", "vocab=2 leaves too few tokens");
    expect_error("pathfinder:size=48", "size=48 is not supported");
    expect_error("sequential-fashion-mnist:size=3", "unknown key 'size'");
    expect_error("selective-copying:seq_len=2000000", "seq_len=2000000: want an integer in 1..1048576");
    expect_error("copying", "unknown dataset 'copying'");
}

int main(void)
{
    test_selective_copying();
    test_induction_heads();
    test_pathfinder();
    test_determinism();
    test_sequential_fashion_mnist();
    test_errors();
    if (g_failures) {
        fprintf(stderr, "test_tasks: %d check(s) failed\n", g_failures);
        return 1;
    }
    printf("test_tasks: all checks passed\n");
    return 0;
}
