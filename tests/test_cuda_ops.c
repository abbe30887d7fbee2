/* The CUDA kernels against the CPU reference, at awkward sizes, with guard
 * floats after every device output. Without a GPU it reports skipped (77). */
#include "blocks/dwconv.h"
#include "blocks/gated_block.h"
#include "blocks/layernorm.h"
#include "harness/cuda_util.h"
#include "models/mixer_io.h"
#include "test_util.h"

#define SKIP 77
#define TOL 1e-5

/* Device copy of host floats n, with GUARD guard floats after them. */
static float *to_dev(const float *h, size_t n)
{
    void *d = NULL;
    float *tmp = alloc_guarded(n);
    memcpy(tmp, h, n * sizeof *tmp);
    if (cuda_malloc(&d, (n + GUARD) * sizeof(float), "test") != ML_OK ||
        cuda_to_device(d, tmp, (n + GUARD) * sizeof(float)) != ML_OK) {
        fprintf(stderr, "%s\n", ml_last_error());
        exit(1);
    }
    free(tmp);
    return d;
}

/* Host copy of a device output, checking its guard floats survived. */
static float *from_dev(const float *d, size_t n, const char *what)
{
    float *h = malloc((n + GUARD) * sizeof *h);
    CHECK(cuda_sync(what) == ML_OK, "%s: %s", what, ml_last_error());
    CHECK(cuda_to_host(h, d, (n + GUARD) * sizeof *h) == ML_OK, "copy back %s", what);
    CHECK(guard_intact(h, n), "%s wrote past its output", what);
    return h;
}

static void test_layernorm(rng_state *r)
{
    const size_t rows = 37;
    const int C = 45;
    float *x = rand_floats(r, rows * C, -3, 5), *w = rand_floats(r, C, 0.5, 1.5), *b = rand_floats(r, C, -1, 1);
    float *ref = alloc_guarded(rows * C), *out0 = alloc_guarded(rows * C);
    layernorm_forward(ref, C, x, C, w, b, rows, C, 1e-6f);
    float *dx = to_dev(x, rows * C), *dw = to_dev(w, C), *db = to_dev(b, C), *dy = to_dev(out0, rows * C);
    layernorm_forward_cuda(dy, C, dx, C, dw, db, rows, C, 1e-6f);
    float *y = from_dev(dy, rows * C, "layernorm");
    double e = rel_err_f(y, ref, rows * C);
    CHECK(e <= TOL, "layernorm cuda vs cpu: %.3g", e);
    printf("  layernorm  rel err %.3g\n", e);
    cuda_free(dx), cuda_free(dw), cuda_free(db), cuda_free(dy);
    free(x), free(w), free(b), free(ref), free(out0), free(y);
}

static void test_gate(rng_state *r)
{
    const size_t rows = 29;
    const int Hd = 34, E = 13; /* a non-empty middle branch */
    float *u = rand_floats(r, rows * 2 * Hd, -4, 4), *m = rand_floats(r, rows * E, -2, 2);
    float *ref = alloc_guarded(rows * 2 * Hd);
    memcpy(ref, u, rows * 2 * Hd * sizeof *u);
    for (int act = 0; act < 2; act++) {
        float *cpu = alloc_guarded(rows * 2 * Hd);
        memcpy(cpu, u, rows * 2 * Hd * sizeof *u);
        gate_forward(cpu, m, rows, Hd, E, (act_kind)act);
        float *du = to_dev(u, rows * 2 * Hd), *dm = to_dev(m, rows * E);
        gate_forward_cuda(du, dm, rows, Hd, E, (act_kind)act);
        float *g = from_dev(du, rows * 2 * Hd, "gate");
        double e = rel_err_f(g, cpu, rows * 2 * Hd);
        CHECK(e <= TOL, "gate %s cuda vs cpu: %.3g", act_name((act_kind)act), e);
        printf("  gate %s  rel err %.3g\n", act_name((act_kind)act), e);
        cuda_free(du), cuda_free(dm);
        free(cpu), free(g);
    }
    free(u), free(m), free(ref);
}

static void test_dwconv(rng_state *r)
{
    /* B H W C K: the tiled kernel (K = 3, 5, 7) over several tiles, partial ones and
     * a partial channel group; K = 9 and 1 take the plain kernel */
    const int shapes[][5] = {{2, 7, 5, 13, 3}, {1, 9, 11, 37, 7}, {1, 6, 8, 9, 5},   {1, 31, 29, 48, 7},
                             {2, 19, 35, 70, 7}, {1, 17, 40, 33, 3}, {1, 10, 17, 33, 9}, {3, 4, 4, 5, 1}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int B = shapes[t][0], H = shapes[t][1], W = shapes[t][2], C = shapes[t][3], K = shapes[t][4];
        size_t ld = (size_t)C + 3, n = (size_t)B * H * W * C;
        float *x = rand_floats(r, (size_t)B * H * W * ld, -1, 1), *w = rand_floats(r, (size_t)C * K * K, -1, 1);
        float *b = rand_floats(r, C, -1, 1), *ref = alloc_guarded(n), *ws = malloc((size_t)C * K * K * sizeof *ws);
        dwconv_forward(ref, x, ld, w, b, B, H, W, C, K, ws);
        float *zero = alloc_guarded(n);
        float *dx = to_dev(x, (size_t)B * H * W * ld), *dw = to_dev(w, (size_t)C * K * K), *db = to_dev(b, C),
              *dy = to_dev(zero, n);
        dwconv_forward_cuda(dy, dx, ld, dw, db, B, H, W, C, K);
        float *y = from_dev(dy, n, "dwconv");
        double e = rel_err_f(y, ref, n);
        CHECK(e <= TOL, "dwconv B%d H%d W%d C%d K%d cuda vs cpu: %.3g", B, H, W, C, K, e);
        printf("  dwconv K%d  rel err %.3g\n", K, e);
        cuda_free(dx), cuda_free(dw), cuda_free(db), cuda_free(dy);
        free(x), free(w), free(b), free(ref), free(ws), free(zero), free(y);
    }
}

/* Every mixer with a CUDA forward against its CPU forward, on random weights,
 * at awkward sizes (odd H != W, E not a multiple of 8), strided input. The
 * second and third settings reach the fast paths: several 64-step scan
 * chunks with d_state 16 (compile-time) and 6 (run-time), and the tiled
 * attention at head sizes 32 and 64 with a partial last tile. */
typedef struct {
    int B, H, W, E, d_state, head_size, kernel;
} mixer_case;

static void test_mixers(rng_state *r)
{
    const mixer_case cases[] = {{2, 5, 7, 24, 6, 8, 5}, {1, 9, 31, 64, 16, 32, 7}, {2, 11, 13, 128, 6, 64, 3}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const mixer_case *mc = &cases[ci];
        const int B = mc->B, H = mc->H, W = mc->W, E = mc->E;
        const size_t n = (size_t)B * H * W * E, ld = (size_t)E + 5;
        for (int i = 0; i < mixer_count(); i++) {
            const mixer_ops *o = mixer_at(i);
            if (!o->forward_cuda)
                continue;
            mixer_config cfg = mixer_config_default(E, E);
            cfg.d_state = mc->d_state, cfg.dt_rank = 3, cfg.head_size = mc->head_size, cfg.kernel = mc->kernel;
            mixer_instance mi;
            CHECK(mixer_instance_random(&mi, o->name, &cfg, 11) == ML_OK, "%s: %s", o->name, ml_last_error());
            float *x = rand_floats(r, (size_t)B * H * W * ld, -1.5, 1.5), *ref = alloc_guarded(n);
            size_t wsn = mixer_instance_workspace(&mi, B, H, W);
            float *ws = malloc(wsn * sizeof *ws);
            mi.ops->forward_cpu(&mi.cfg, (const float *const *)mi.params, ref, x, ld, ws, B, H, W);
            float *dp[MIXER_MAX_PARAMS];
            for (int k = 0; k < mi.nparams; k++)
                dp[k] = to_dev(mi.params[k], param_spec_numel(&mi.specs[k]));
            float *zero = alloc_guarded(n), *dws = to_dev(ws, wsn);
            float *dx = to_dev(x, (size_t)B * H * W * ld), *dy = to_dev(zero, n);
            o->forward_cuda(&mi.cfg, (const float *const *)dp, dy, dx, ld, dws, B, H, W);
            float *y = from_dev(dy, n, o->name);
            double e = rel_err_f(y, ref, n);
            CHECK(e <= 1e-4, "%s B%d %dx%d E%d cuda vs cpu: %.3g", o->name, B, H, W, E, e);
            printf("  mixer %-12s B=%d %dx%d E=%d: rel err %.3g\n", o->name, B, H, W, E, e);
            for (int k = 0; k < mi.nparams; k++)
                cuda_free(dp[k]);
            cuda_free(dws), cuda_free(dx), cuda_free(dy);
            free(x), free(ref), free(ws), free(zero), free(y);
            mixer_instance_free(&mi);
        }
    }
}

int main(void)
{
    char dev[256];
    if (cuda_device_check(dev, sizeof dev) != ML_OK) {
        printf("test_cuda_ops: skipped: %s\n", ml_last_error());
        return SKIP;
    }
    printf("device: %s\n", dev);
    rng_state r;
    rng_seed(&r, 20261127);
    test_layernorm(&r);
    test_gate(&r);
    test_dwconv(&r);
    test_mixers(&r);
    return test_summary("test_cuda_ops");
}
