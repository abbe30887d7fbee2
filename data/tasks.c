/* The generated long-range tasks of data/tasks.h (the rules are written there). One section per
 * task: its parameters, its sample generator, and the dataset callbacks around them. */
#include "data/tasks.h"

#include "base/rng.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

ml_status fashion_mnist_open(dataset *d, const char *dir, size_t limit);
/* data/fashion_mnist.c: sample i of a split, its 28 x 28 bytes and label. */
const uint8_t *fashion_mnist_pixels(const dataset *d, data_split s, size_t i, int *label);

#define TASK_MAX_LEN (1 << 20)
#define TASK_MAX_TEST 1000000

typedef enum { TASK_COPY, TASK_INDUCTION, TASK_PATH, TASK_SFMNIST } task_kind;

static const char *const task_names[] = {"selective-copying", "induction-heads", "pathfinder",
                                         "sequential-fashion-mnist"};

typedef struct {
    task_kind kind;
    long L, M, V, size, test; /* the parameters in use */
    uint64_t test_seed;
    dataset fm; /* sequential-fashion-mnist: the images */
} task;

const char *tasks_names(void) { return "selective-copying, induction-heads, pathfinder, sequential-fashion-mnist"; }

static int kind_of(const char *name)
{
    for (int k = 0; k < 4; k++)
        if (!strcmp(name, task_names[k]))
            return k;
    return -1;
}

int tasks_is_task(const char *name) { return kind_of(name) >= 0; }

/* The stream of sample i: a seed of its own from (seed, i). */
static void sample_rng(rng_state *r, uint64_t seed, size_t i)
{
    rng_seed(r, seed * 0x9E3779B97F4A7C15ULL + 0xD1B54A32D192ED03ULL * ((uint64_t)i + 1));
}

static uint64_t below(rng_state *r, uint64_t n) { return rng_next_u64(r) % n; }

/* ---- parameters: key=value,... against a table of allowed keys ---- */

typedef struct {
    const char *key;
    long *val, lo, hi;
} param;

static ml_status parse_params(const char *task_name, const char *text, param *ps, int n, char *dir, size_t ndir)
{
    if (dir)
        dir[0] = '\0';
    if (!text)
        return ML_OK;
    char allowed[160] = "";
    for (int k = 0; k < n; k++)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), "%s%s", k ? ", " : "", ps[k].key);
    if (dir)
        snprintf(allowed + strlen(allowed), sizeof allowed - strlen(allowed), ", dir");
    for (const char *p = text; *p;) {
        const char *comma = strchr(p, ','), *eq = strchr(p, '=');
        const size_t item = comma ? (size_t)(comma - p) : strlen(p);
        if (!eq || eq - p >= (ptrdiff_t)item || eq == p || (size_t)(eq - p) + 1 == item)
            return ml_fail(ML_ERR_USAGE, "--data %s: '%.*s' is not key=value (keys: %s)", task_name, (int)item, p,
                           allowed);
        const size_t kl = (size_t)(eq - p), vl = item - kl - 1;
        char key[32], val[512];
        if (kl >= sizeof key || vl >= sizeof val)
            return ml_fail(ML_ERR_USAGE, "--data %s: '%.*s' is too long", task_name, (int)item, p);
        memcpy(key, p, kl), key[kl] = '\0';
        memcpy(val, eq + 1, vl), val[vl] = '\0';
        int k = 0;
        while (k < n && strcmp(ps[k].key, key))
            k++;
        if (k == n && dir && !strcmp(key, "dir")) {
            if (vl >= ndir)
                return ml_fail(ML_ERR_USAGE, "--data %s: dir is too long", task_name);
            memcpy(dir, val, vl + 1);
        } else if (k == n) {
            return ml_fail(ML_ERR_USAGE, "--data %s: unknown key '%s' (keys: %s)", task_name, key, allowed);
        } else {
            char *end;
            errno = 0;
            const long v = strtol(val, &end, 10);
            if (errno || *end || end == val || v < ps[k].lo || v > ps[k].hi)
                return ml_fail(ML_ERR_USAGE, "--data %s: %s=%s: want an integer in %ld..%ld", task_name, key, val,
                               ps[k].lo, ps[k].hi);
            *ps[k].val = v;
        }
        p = comma ? comma + 1 : p + item;
    }
    return ML_OK;
}

/* ---- selective copying ---- */

/* tok (L + M), lab (L + M): M data tokens at sorted random positions of L noise tokens (selection
 * sampling, Knuth's algorithm S: each position kept with probability left / remaining), then M
 * markers, whose labels are the data tokens in order. */
static void gen_copy(const task *t, rng_state *r, float *tok, int32_t *lab)
{
    const long L = t->L, M = t->M, V = t->V;
    long chosen = 0, next = 0;
    int32_t *data = lab + L; /* the answers land at the markers' positions */
    for (long p = 0; p < L; p++) {
        lab[p] = -1;
        if ((long)below(r, (uint64_t)(L - p)) < M - chosen) {
            const int32_t v = (int32_t)(1 + below(r, (uint64_t)(V - 2)));
            tok[p] = (float)v;
            data[next++] = v;
            chosen++;
        } else {
            tok[p] = 0.0f;
        }
    }
    for (long m = 0; m < M; m++)
        tok[L + m] = (float)(V - 1);
}

/* ---- induction heads ---- */

static void gen_induction(const task *t, rng_state *r, float *tok, int32_t *lab)
{
    const long L = t->L, V = t->V;
    for (long p = 0; p < L; p++) {
        tok[p] = (float)below(r, (uint64_t)(V - 1));
        lab[p] = -1;
    }
    const long at = (long)below(r, (uint64_t)(L - 2)); /* 0 .. L-3 */
    const int32_t recall = (int32_t)below(r, (uint64_t)(V - 1));
    tok[at] = (float)(V - 1);
    tok[at + 1] = (float)recall;
    tok[L - 1] = (float)(V - 1);
    lab[L - 1] = recall;
}

/* ---- pathfinder ----
 *
 * A restatement of the idea of LRA's snakes2.py (Linsley et al. 2018), not of its code: contours
 * are chains of `paddles` (short straight strokes) separated by a gap, each turning from the last by
 * an angle within ±continuity·π/8 (a bend drawn per contour in that range plus uniform noise of
 * half of it, clipped; drawn again up to 12 times, the last 6 with noise over the whole range)
 * while the paddle would leave the margin or come within `clear` px (1 at 32, else 2) of another contour; a contour that still does not fit is started again
 * elsewhere (40 tries), then the whole image with the next draws. Two contours of 14 paddles are drawn, then 20 // (14 // 3) = 5
 * distractors of 14 // 3 = 4 paddles. A positive sample puts the two marker circles on the two ends
 * of the first contour; a negative one on one end of each of the two contours. Paddles are drawn
 * at paddle contrast 0.75 (191), markers at full intensity (255, "snake contrast" 2 clipped), on
 * black. Geometry per size (in pixels): 32: margin 1, paddle length 2, gap 1, thickness 1 (LRA's
 * 0.5, rounded up to a pixel), marker radius 1.5, continuity 1.0; 64: margin 2, length 4, gap 2,
 * thickness 1, radius 2.5, continuity 1.0; 128 (Path-X): margin 3, length 8, gap 3, thickness 1.5,
 * radius 3, continuity 1.8. Differences from snakes2.py: no anti-aliasing (pixels are set where
 * the stroke's centre line passes within thickness/2 + 0.5), no seed-distance rule between contour
 * starts (the spacing between contours replaces it), the turn distribution (a per-contour bend:
 * without it few random walks of 14 paddles fit a 32 x 32 image). */

typedef struct {
    int size, margin;
    double len, gap, thick, radius, cont;
    int clear; /* pixels kept between contours */
} path_geom;

static path_geom path_geometry(int size)
{
    if (size == 32)
        return (path_geom){32, 1, 2.0, 1.0, 1.0, 1.5, 1.0, 1};
    if (size == 64)
        return (path_geom){64, 2, 4.0, 2.0, 1.0, 2.5, 1.0, 2};
    return (path_geom){128, 3, 8.0, 3.0, 1.5, 3.0, 1.8, 2};
}

#define PATH_MAIN_PADDLES 14
#define PATH_DISTRACTORS (20 / (PATH_MAIN_PADDLES / 3))
#define PATH_DISTRACTOR_PADDLES (PATH_MAIN_PADDLES / 3)
#define PATH_TRIES 40
#define PATH_TURNS 12
#define PATH_RESTARTS 1000

/* Marks the pixels of a stroke from (x0,y0) to (x1,y1) with value v in img and owner id in own. */
static void stroke(uint8_t *img, uint8_t *own, int S, double x0, double y0, double x1, double y1, double half,
                   uint8_t v, uint8_t id)
{
    const double dx = x1 - x0, dy = y1 - y0, l = sqrt(dx * dx + dy * dy);
    const int steps = (int)ceil(l * 4) + 1;
    const int rad = (int)ceil(half);
    for (int k = 0; k <= steps; k++) {
        const double x = x0 + dx * k / steps, y = y0 + dy * k / steps;
        for (int oy = -rad; oy <= rad; oy++)
            for (int ox = -rad; ox <= rad; ox++) {
                const int px = (int)lround(x) + ox, py = (int)lround(y) + oy;
                if (px < 0 || py < 0 || px >= S || py >= S)
                    continue;
                const double ex = px - x, ey = py - y;
                if (ex * ex + ey * ey > half * half + 1e-9 && (ox || oy))
                    continue;
                img[py * S + px] = v > img[py * S + px] ? v : img[py * S + px];
                own[py * S + px] = id;
            }
    }
}

/* Whether the segment stays inside the margin and `clear` px away from pixels of other contours. */
static int segment_free(const uint8_t *own, int S, int margin, int clear, double x0, double y0, double x1,
                        double y1, uint8_t id)
{
    const double dx = x1 - x0, dy = y1 - y0;
    for (int k = 0; k <= 8; k++) {
        const double x = x0 + dx * k / 8, y = y0 + dy * k / 8;
        if (x < margin || y < margin || x > S - 1 - margin || y > S - 1 - margin)
            return 0;
        const int cx = (int)lround(x), cy = (int)lround(y);
        for (int oy = -clear; oy <= clear; oy++)
            for (int ox = -clear; ox <= clear; ox++) {
                const int px = cx + ox, py = cy + oy;
                if (px >= 0 && py >= 0 && px < S && py < S && own[py * S + px] && own[py * S + px] != id)
                    return 0;
            }
    }
    return 1;
}

/* One contour of n paddles with owner id; its two ends in end[0..3]. 0 when it could not be placed. */
static int contour(uint8_t *img, uint8_t *own, const path_geom *g, rng_state *r, int n, uint8_t id, double *end)
{
    const int S = g->size;
    const double pi = 3.14159265358979323846, turn = g->cont * pi / 8;
    double px[64], py[64]; /* paddle ends: 2n points */
    for (int attempt = 0; attempt < PATH_TRIES; attempt++) {
        double x = g->margin + rng_uniform(r) * (S - 1 - 2 * g->margin);
        double y = g->margin + rng_uniform(r) * (S - 1 - 2 * g->margin);
        double th = rng_uniform(r) * 2 * pi;
        /* a bend of its own per contour (so that long ones curl inside the image), plus noise; the
         * turn per paddle stays within ±turn */
        const double bend = (2 * rng_uniform(r) - 1) * turn;
        int ok = 1;
        for (int k = 0; k < n && ok; k++) {
            /* the turn: drawn again (up to PATH_TURNS times) while the paddle would leave the margin or
             * touch another contour */
            double x1 = x, y1 = y, t = th;
            ok = 0;
            for (int tries = 0; tries < (k ? PATH_TURNS : 1) && !ok; tries++) {
                const double widen = tries < PATH_TURNS / 2 ? 0.5 : 2.0; /* hemmed in: any turn allowed */
                double d = bend + (2 * rng_uniform(r) - 1) * turn * widen;
                d = d > turn ? turn : d < -turn ? -turn : d;
                t = k ? th + d : th;
                x1 = x + g->len * cos(t), y1 = y + g->len * sin(t);
                ok = segment_free(own, S, g->margin, g->clear, x, y, x1, y1, id);
            }
            th = t;
            px[2 * k] = x, py[2 * k] = y, px[2 * k + 1] = x1, py[2 * k + 1] = y1;
            x = x1 + g->gap * cos(th), y = y1 + g->gap * sin(th);
        }
        if (!ok)
            continue;
        for (int k = 0; k < n; k++)
            stroke(img, own, S, px[2 * k], py[2 * k], px[2 * k + 1], py[2 * k + 1], g->thick / 2, 191, id);
        end[0] = px[0], end[1] = py[0], end[2] = px[2 * n - 1], end[3] = py[2 * n - 1];
        return 1;
    }
    return 0;
}

static void disc(uint8_t *img, int S, double cx, double cy, double rad)
{
    for (int y = (int)floor(cy - rad); y <= (int)ceil(cy + rad); y++)
        for (int x = (int)floor(cx - rad); x <= (int)ceil(cx + rad); x++)
            if (x >= 0 && y >= 0 && x < S && y < S && (x - cx) * (x - cx) + (y - cy) * (y - cy) <= rad * rad)
                img[y * S + x] = 255;
}

/* img (size²) and the label; own is scratch of size² bytes. */
static int gen_path(const task *t, rng_state *r, uint8_t *img, uint8_t *own)
{
    const path_geom g = path_geometry((int)t->size);
    const int S = g.size;
    const int label = (int)(rng_next_u64(r) & 1);
    for (int restart = 0;; restart++) {
        memset(img, 0, (size_t)S * S);
        memset(own, 0, (size_t)S * S);
        double a[4], b[4], dummy[4];
        /* the next draws when the pair does not fit; after PATH_RESTARTS (never seen: the pair fits
         * within a few) the second contour gets the distractors' length, so that a sample always ends */
        const int second = restart < PATH_RESTARTS ? PATH_MAIN_PADDLES : PATH_DISTRACTOR_PADDLES;
        if (!contour(img, own, &g, r, PATH_MAIN_PADDLES, 1, a) || !contour(img, own, &g, r, second, 2, b))
            continue;
        for (int k = 0; k < PATH_DISTRACTORS; k++) /* a distractor that does not fit is left out */
            contour(img, own, &g, r, PATH_DISTRACTOR_PADDLES, (uint8_t)(3 + k), dummy);
        const int e = (int)(rng_next_u64(r) & 1); /* which end of the first contour carries a marker */
        disc(img, S, a[2 * e], a[2 * e + 1], g.radius);
        if (label)
            disc(img, S, a[2 - 2 * e], a[3 - 2 * e], g.radius);
        else
            disc(img, S, b[2 * e], b[2 * e + 1], g.radius);
        (void)restart;
        return label;
    }
}

/* ---- the dataset callbacks ---- */

/* One bilinear coordinate with half-pixel centres (PyTorch's align_corners = False). */
static void bilinear_tap(int dst, int in, int out, int *i0, int *i1, float *w1)
{
    float src = ((float)dst + 0.5f) * (float)in / (float)out - 0.5f;
    if (src < 0)
        src = 0;
    *i0 = (int)src;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *w1 = src - (float)*i0;
}

/* (3, res, res): the S x S bytes / 255, bilinearly resized, normalised with mean 0.5, std 0.5. */
static void path_image(const uint8_t *img, int S, int res, float *o)
{
    const size_t plane = (size_t)res * res;
    for (int y = 0; y < res; y++) {
        int y0, y1;
        float wy;
        bilinear_tap(y, S, res, &y0, &y1, &wy);
        for (int x = 0; x < res; x++) {
            int x0, x1;
            float wx;
            bilinear_tap(x, S, res, &x0, &x1, &wx);
            const float v = (1 - wy) * ((1 - wx) * img[y0 * S + x0] + wx * img[y0 * S + x1]) +
                            wy * ((1 - wx) * img[y1 * S + x0] + wx * img[y1 * S + x1]);
            o[(size_t)y * res + x] = (v / 255.0f - 0.5f) / 0.5f;
        }
    }
    memcpy(o + plane, o, plane * sizeof *o);
    memcpy(o + 2 * plane, o, plane * sizeof *o);
}

static ml_status task_batch(const dataset *d, data_split split, const size_t *idx, int n, int res, int augment,
                            uint64_t seed, float *x, int32_t *labels)
{
    const task *t = d->impl;
    if (t->kind == TASK_SFMNIST) {
        if (d->as_image) /* exactly fashion-mnist's sample */
            return t->fm.batch(&t->fm, split, idx, n, res, augment, seed, x, labels);
        for (int k = 0; k < n; k++) {
            int label;
            const uint8_t *px = fashion_mnist_pixels(&t->fm, split, idx[k], &label);
            float *tok = x + (size_t)k * d->seq_len;
            int32_t *lab = labels + (size_t)k * d->seq_len;
            for (int p = 0; p < d->seq_len; p++)
                tok[p] = (float)px[p], lab[p] = -1;
            lab[d->seq_len - 1] = label;
        }
        return ML_OK;
    }
    const uint64_t s = split == DATA_TEST ? t->test_seed : seed;
    uint8_t *img = NULL;
    if (t->kind == TASK_PATH && !(img = ml_malloc(2 * (size_t)t->size * t->size, "a pathfinder image")))
        return ML_ERR_NOMEM;
    for (int k = 0; k < n; k++) {
        ML_ASSERT(split == DATA_TRAIN || idx[k] < d->n[DATA_TEST]);
        rng_state r;
        sample_rng(&r, s, idx[k]);
        if (t->kind == TASK_PATH) {
            const int S = (int)t->size, label = gen_path(t, &r, img, img + (size_t)S * S);
            if (d->as_image) {
                path_image(img, S, res, x + (size_t)k * 3 * res * res);
                labels[k] = label;
            } else {
                float *tok = x + (size_t)k * d->seq_len;
                int32_t *lab = labels + (size_t)k * d->seq_len;
                for (int p = 0; p < d->seq_len; p++)
                    tok[p] = (float)img[p], lab[p] = -1;
                lab[d->seq_len - 1] = label;
            }
            continue;
        }
        float *tok = x + (size_t)k * d->seq_len;
        int32_t *lab = labels + (size_t)k * d->seq_len;
        if (t->kind == TASK_COPY)
            gen_copy(t, &r, tok, lab);
        else
            gen_induction(t, &r, tok, lab);
    }
    free(img);
    return ML_OK;
}

static void task_release(dataset *d)
{
    task *t = d->impl;
    if (t && t->fm.release)
        dataset_close(&t->fm);
    free(t);
    d->impl = NULL;
}

ml_status tasks_open(dataset *d, const char *name, const char *params, const dataset_options *opt, size_t limit)
{
    const int kind = kind_of(name);
    if (kind < 0)
        return ml_fail(ML_ERR_USAGE, "--data: unknown task '%s' (known: %s)", name, tasks_names());
    task t = {.kind = (task_kind)kind, .L = kind == TASK_INDUCTION ? 256 : 1024, .M = 16, .V = 16, .size = 32,
              .test = 1000};
    char dir[512];
    ml_status s;
    switch (t.kind) {
    case TASK_COPY: {
        param ps[] = {{"seq_len", &t.L, 1, TASK_MAX_LEN}, {"tokens", &t.M, 1, TASK_MAX_LEN},
                      {"vocab", &t.V, 1, 1000000}, {"test", &t.test, 1, TASK_MAX_TEST}};
        ML_TRY(parse_params(name, params, ps, 4, NULL, 0));
        if (opt && opt->seq_len > 0)
            t.L = opt->seq_len;
        if (t.M > t.L)
            return ml_fail(ML_ERR_USAGE, "--data %s: tokens=%ld data tokens do not fit in seq_len=%ld positions", name,
                           t.M, t.L);
        if (t.V < 3)
            return ml_fail(ML_ERR_USAGE, "--data %s: vocab=%ld leaves no data token (noise 0 and marker V-1 are "
                                         "special; vocab >= 3)", name, t.V);
        if (t.L + t.M > TASK_MAX_LEN)
            return ml_fail(ML_ERR_USAGE, "--data %s: seq_len + tokens = %ld is more than %d", name, t.L + t.M,
                           TASK_MAX_LEN);
        d->seq_len = (int)(t.L + t.M);
        snprintf(d->params, sizeof d->params, "seq_len=%ld,tokens=%ld,vocab=%ld,test=%ld", t.L, t.M, t.V, t.test);
        t.test_seed = 0x5e1ec7c0b1e5ULL;
        break;
    }
    case TASK_INDUCTION: {
        param ps[] = {{"seq_len", &t.L, 1, TASK_MAX_LEN}, {"vocab", &t.V, 1, 1000000}, {"test", &t.test, 1, TASK_MAX_TEST}};
        ML_TRY(parse_params(name, params, ps, 3, NULL, 0));
        if (opt && opt->seq_len > 0)
            t.L = opt->seq_len;
        if (t.L < 4)
            return ml_fail(ML_ERR_USAGE, "--data %s: seq_len=%ld is too short for a trigger, its token and the "
                                         "final trigger (seq_len >= 4)", name, t.L);
        if (t.V < 3)
            return ml_fail(ML_ERR_USAGE, "--data %s: vocab=%ld leaves too few tokens besides the trigger V-1 "
                                         "(vocab >= 3)", name, t.V);
        d->seq_len = (int)t.L;
        snprintf(d->params, sizeof d->params, "seq_len=%ld,vocab=%ld,test=%ld", t.L, t.V, t.test);
        t.test_seed = 0x1d0c7104ULL;
        break;
    }
    case TASK_PATH: {
        param ps[] = {{"size", &t.size, 1, 100000}, {"test", &t.test, 1, TASK_MAX_TEST}};
        ML_TRY(parse_params(name, params, ps, 2, NULL, 0));
        if (opt && opt->seq_len > 0) { /* a length of size² tokens */
            const long side = lround(sqrt((double)opt->seq_len));
            if (side * side != opt->seq_len)
                return ml_fail(ML_ERR_USAGE, "--data %s: %d tokens is not a square image (32², 64² or 128²)", name,
                               opt->seq_len);
            t.size = side;
        }
        if (t.size != 32 && t.size != 64 && t.size != 128)
            return ml_fail(ML_ERR_USAGE, "--data %s: size=%ld is not supported (32, 64 or 128: Path-X)", name, t.size);
        t.V = 256;
        d->seq_len = (int)(t.size * t.size);
        d->image_res = (int)t.size;
        d->native_res = (int)t.size;
        snprintf(d->params, sizeof d->params, "size=%ld,test=%ld", t.size, t.test);
        t.test_seed = 0x9a7bf1de4ULL;
        break;
    }
    case TASK_SFMNIST: {
        param ps[1] = {{"", NULL, 0, 0}};
        ML_TRY(parse_params(name, params, ps, 0, dir, sizeof dir));
        if (opt && opt->seq_len > 0 && opt->seq_len != 784)
            return ml_fail(ML_ERR_USAGE, "--data %s: its sequences are 784 pixels, not %d", name, opt->seq_len);
        t.V = 256;
        break;
    }
    }
    task *heap = ml_malloc(sizeof *heap, "task");
    if (!heap)
        return ML_ERR_NOMEM;
    *heap = t;
    if (t.kind == TASK_SFMNIST) {
        if ((s = fashion_mnist_open(&heap->fm, dir[0] ? dir : NULL, limit)) != ML_OK) {
            free(heap);
            return s;
        }
        d->n[DATA_TRAIN] = heap->fm.n[DATA_TRAIN];
        d->n[DATA_TEST] = heap->fm.n[DATA_TEST];
        d->seq_len = 784, d->image_res = 28, d->native_res = 28;
        snprintf(d->source, sizeof d->source, "%s", heap->fm.source);
        snprintf(d->params, sizeof d->params, "dir=%.200s", heap->fm.source);
        d->classes = 10;
    } else {
        d->stream = 1;
        d->n[DATA_TRAIN] = 0;
        d->n[DATA_TEST] = (size_t)t.test;
        d->classes = t.kind == TASK_PATH ? 2 : (int)t.V;
        snprintf(d->source, sizeof d->source, "generated %s:%s", name, d->params);
    }
    d->vocab = (int)t.V;
    snprintf(d->name, sizeof d->name, "%s", name);
    d->impl = heap;
    d->batch = task_batch;
    d->release = task_release;
    return ML_OK;
}
