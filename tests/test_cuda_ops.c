/* The CUDA kernels against the CPU reference, at awkward sizes, with guard
 * floats after every device output. Without a GPU it reports skipped (77). */
#include "blocks/act.h"
#include "blocks/conv2d.h"
#include "blocks/dwconv.h"
#include "blocks/gated_block.h"
#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/pool.h"
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
        float *b = rand_floats(r, C, -1, 1), *ref = alloc_guarded(n);
        float *ws = malloc(dwconv_workspace_floats(B, H, W, C, K) * sizeof *ws);
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

/* Linear through cuBLAS: strided rows, with and without bias, written and
 * accumulated; TF32 off must match the CPU's float32 closely. */
static void test_linear(rng_state *r)
{
    const size_t rows = 53, ld_in = 41, ld_out = 29;
    const int in_f = 37, out_f = 27;
    float *x = rand_floats(r, rows * ld_in, -1, 1), *w = rand_floats(r, (size_t)out_f * in_f, -0.5, 0.5);
    float *b = rand_floats(r, out_f, -1, 1), *y0 = rand_floats(r, rows * ld_out, -1, 1);
    for (int v = 0; v < 4; v++) {
        const int acc = v & 1;
        const float *bias = v & 2 ? b : NULL;
        float *ref = alloc_guarded(rows * ld_out);
        memcpy(ref, y0, rows * ld_out * sizeof *ref);
        linear_forward(ref, ld_out, x, ld_in, w, bias, rows, in_f, out_f, acc);
        float *dx = to_dev(x, rows * ld_in), *dw = to_dev(w, (size_t)out_f * in_f), *db = to_dev(b, out_f);
        float *dy = to_dev(y0, rows * ld_out);
        linear_forward_cuda(dy, ld_out, dx, ld_in, dw, bias ? db : NULL, rows, in_f, out_f, acc);
        float *y = from_dev(dy, rows * ld_out, "linear");
        double e = rel_err_f(y, ref, rows * ld_out);
        CHECK(e <= TOL, "linear accumulate %d bias %d cuda vs cpu: %.3g", acc, bias != NULL, e);
        printf("  linear acc=%d bias=%d  rel err %.3g\n", acc, bias != NULL, e);
        cuda_free(dx), cuda_free(dw), cuda_free(db), cuda_free(dy);
        free(ref), free(y);
    }
    free(x), free(w), free(b), free(y0);
}

/* The dense 3x3 stride-2 conv (stem, downsampling) with im2col chunks smaller
 * than the output, and the NCHW -> NHWC transpose in front of it. */
static void test_conv2d(rng_state *r)
{
    const int B = 2, H = 13, W = 11, Cin = 5, Cout = 7;
    const conv2d_shape sh = {Cin, Cout, 3, 2, 1};
    const int Ho = conv2d_out_size(&sh, H), Wo = conv2d_out_size(&sh, W);
    const size_t nin = (size_t)B * H * W * Cin, nout = (size_t)B * Ho * Wo * Cout;
    float *nchw = rand_floats(r, nin, -1, 1), *w = rand_floats(r, (size_t)Cout * Cin * 9, -0.5, 0.5);
    float *b = rand_floats(r, Cout, -1, 1), *nhwc = alloc_guarded(nin), *ref = alloc_guarded(nout);
    nchw_to_nhwc(nhwc, nchw, B, Cin, H, W);
    float *ws = malloc(conv2d_workspace_floats(&sh, (size_t)B * Ho * Wo, 1) * sizeof *ws);
    conv2d_forward(ref, nhwc, w, b, &sh, B, H, W, ws, 1);
    float *zero_in = alloc_guarded(nin), *zero_out = alloc_guarded(nout);
    float *dnchw = to_dev(nchw, nin), *dnhwc = to_dev(zero_in, nin), *dw = to_dev(w, (size_t)Cout * Cin * 9);
    float *db = to_dev(b, Cout), *dy = to_dev(zero_out, nout);
    const size_t ws_floats = (size_t)17 * Cin * 9; /* 17 output pixels per im2col chunk: several chunks */
    float *zero_ws = alloc_guarded(ws_floats), *dws = to_dev(zero_ws, ws_floats);
    nchw_to_nhwc_cuda(dnhwc, dnchw, B, Cin, H, W);
    float *t = from_dev(dnhwc, nin, "nchw_to_nhwc");
    CHECK(!memcmp(t, nhwc, nin * sizeof *t), "nchw_to_nhwc cuda differs from the cpu");
    conv2d_forward_cuda(dy, dnhwc, dw, db, &sh, B, H, W, dws, ws_floats);
    float *y = from_dev(dy, nout, "conv2d");
    float *wsb = from_dev(dws, ws_floats, "conv2d workspace");
    double e = rel_err_f(y, ref, nout);
    CHECK(e <= TOL, "conv2d 3x3/2 cuda vs cpu: %.3g", e);
    printf("  conv2d 3x3/2  rel err %.3g\n", e);
    cuda_free(dnchw), cuda_free(dnhwc), cuda_free(dw), cuda_free(db), cuda_free(dy), cuda_free(dws);
    free(nchw), free(w), free(b), free(nhwc), free(ref), free(ws), free(zero_in), free(zero_out), free(zero_ws);
    free(t), free(y), free(wsb);
}

/* GELU and SiLU element by element over a wide range against the formulas in
 * double (the CPU's vector GELU is a fitted approximation, so it is not the
 * reference here), and mean pooling against the CPU. */
static void test_act_pool(rng_state *r)
{
    const size_t n = 1001;
    float *x = rand_floats(r, n, -10, 10);
    for (int k = 0; k < 2; k++) {
        float *zero = alloc_guarded(n);
        float *dx = to_dev(x, n), *dy = to_dev(zero, n);
        act_forward_cuda(dy, dx, n, (act_kind)k);
        float *y = from_dev(dy, n, act_name((act_kind)k));
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double v = x[i];
            const double ref = (act_kind)k == ACT_GELU ? 0.5 * v * (1.0 + erf(v / sqrt(2.0))) : v / (1.0 + exp(-v));
            double d = fabs((double)y[i] - ref) / (fabs(ref) > 1 ? fabs(ref) : 1.0);
            worst = d > worst ? d : worst;
        }
        CHECK(worst <= 1e-6, "%s cuda vs the double formula: max diff %.3g (absolute below 1, relative above)",
              act_name((act_kind)k), worst);
        printf("  %s  max diff from the double formula %.3g\n", act_name((act_kind)k), worst);
        cuda_free(dx), cuda_free(dy);
        free(zero), free(y);
    }
    free(x);
    const int B = 3, C = 19;
    const size_t L = 37;
    float *in = rand_floats(r, (size_t)B * L * C, -2, 2), *ref = alloc_guarded((size_t)B * C);
    float *zero = alloc_guarded((size_t)B * C);
    meanpool_forward(ref, in, B, L, C);
    float *din = to_dev(in, (size_t)B * L * C), *dy = to_dev(zero, (size_t)B * C);
    meanpool_forward_cuda(dy, din, B, L, C);
    float *y = from_dev(dy, (size_t)B * C, "meanpool");
    double e = rel_err_f(y, ref, (size_t)B * C);
    CHECK(e <= TOL, "meanpool cuda vs cpu: %.3g", e);
    printf("  meanpool  rel err %.3g\n", e);
    cuda_free(din), cuda_free(dy);
    free(in), free(ref), free(zero), free(y);
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
    test_linear(&r);
    test_conv2d(&r);
    test_act_pool(&r);
    test_mixers(&r);
    return test_summary("test_cuda_ops");
}
