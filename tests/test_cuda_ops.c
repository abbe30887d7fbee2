/* The conformance test of the backends (ggml's idea): every op of the table,
 * run through the CUDA backend against the CPU backend, at awkward sizes
 * (odd, not multiples of 8 or 32), with guard floats after every device
 * output; then every mixer composed on both. Without a GPU it reports
 * skipped (77); tests/cuda_emu runs the same program on the CPU emulator. */
#include "blocks/attn.h"
#include "blocks/backend.h"
#include "blocks/ssm.h"
#include "blocks/ssm_chunk.h"
#include "harness/cuda_measure.h"
#include "models/mixer_io.h"
#include "test_util.h"

#define SKIP 77
#define TOL 1e-5

static const backend *cpu = &backend_cpu, *gpu;

/* Device copy of host floats n, with GUARD guard floats after them. */
static float *to_dev(const float *h, size_t n)
{
    void *d = NULL;
    float *tmp = alloc_guarded(n);
    memcpy(tmp, h, n * sizeof *tmp);
    if (gpu->alloc(&d, (n + GUARD) * sizeof(float), "test") != ML_OK ||
        gpu->upload(d, tmp, (n + GUARD) * sizeof(float)) != ML_OK) {
        fprintf(stderr, "%s\n", ml_last_error());
        exit(1);
    }
    free(tmp);
    return d;
}

/* A device buffer of n zeros (and guards). */
static float *dev_zeros(size_t n)
{
    float *z = calloc(n ? n : 1, sizeof *z), *d = to_dev(z, n);
    free(z);
    return d;
}

/* Host copy of a device output, checking its guard floats survived. */
static float *from_dev(const float *d, size_t n, const char *what)
{
    float *h = malloc((n + GUARD) * sizeof *h);
    CHECK(gpu->sync(what) == ML_OK, "%s: %s", what, ml_last_error());
    CHECK(gpu->download(h, d, (n + GUARD) * sizeof *h) == ML_OK, "copy back %s", what);
    CHECK(guard_intact(h, n), "%s wrote past its output", what);
    return h;
}

/* The device result y of an op against the CPU's ref: prints and checks it; frees y and d. */
static void compare(float *d, const float *ref, size_t n, double tol, const char *what)
{
    float *y = from_dev(d, n, what);
    double e = rel_err_f(y, ref, n);
    CHECK(e <= tol, "%s cuda vs cpu: %.3g", what, e);
    printf("  %-34s rel err %.3g\n", what, e);
    gpu->release(d);
    free(y);
}

static void test_norms(rng_state *r)
{
    const size_t rows = 37, ld = 49;
    const int C = 45;
    float *x = rand_floats(r, rows * ld, -3, 5), *w = rand_floats(r, C, 0.5, 1.5), *b = rand_floats(r, C, -1, 1);
    float *ref = alloc_guarded(rows * C);
    float *dx = to_dev(x, rows * ld), *dw = to_dev(w, C), *db = to_dev(b, C), *dy;
    cpu->layernorm(ref, C, NULL, NULL, x, ld, w, b, rows, C, 1e-6f);
    gpu->layernorm(dy = dev_zeros(rows * C), C, NULL, NULL, dx, ld, dw, db, rows, C, 1e-6f);
    compare(dy, ref, rows * C, TOL, "layernorm (strided rows)");
    cpu->rmsnorm(ref, C, NULL, x, ld, w, rows, C, 1e-5f);
    gpu->rmsnorm(dy = dev_zeros(rows * C), C, NULL, dx, ld, dw, rows, C, 1e-5f);
    compare(dy, ref, rows * C, TOL, "rmsnorm (strided rows)");
    /* the statistics they keep for a backward pass */
    float *mean = alloc_guarded(rows), *rstd = alloc_guarded(rows), *dmean = dev_zeros(rows), *drstd = dev_zeros(rows);
    cpu->layernorm(ref, C, mean, rstd, x, ld, w, b, rows, C, 1e-6f);
    gpu->layernorm(dy = dev_zeros(rows * C), C, dmean, drstd, dx, ld, dw, db, rows, C, 1e-6f);
    gpu->release(dy);
    compare(dmean, mean, rows, TOL, "layernorm saved mean");
    compare(drstd, rstd, rows, TOL, "layernorm saved rstd");
    cpu->rmsnorm(ref, C, rstd, x, ld, w, rows, C, 1e-5f);
    gpu->rmsnorm(dy = dev_zeros(rows * C), C, drstd = dev_zeros(rows), dx, ld, dw, rows, C, 1e-5f);
    gpu->release(dy);
    compare(drstd, rstd, rows, TOL, "rmsnorm saved rstd");
    gpu->release(dx), gpu->release(dw), gpu->release(db);
    free(x), free(w), free(b), free(ref), free(mean), free(rstd);
}

static void test_gate(rng_state *r)
{
    const size_t rows = 29;
    const int Hd = 34, E = 13; /* a non-empty middle branch */
    float *u = rand_floats(r, rows * 2 * Hd, -4, 4), *m = rand_floats(r, rows * E, -2, 2);
    for (int act = 0; act < 2; act++) {
        /* in place over g, as the skeleton's inference runs it */
        float *ref = alloc_guarded(rows * 2 * Hd);
        memcpy(ref, u, rows * 2 * Hd * sizeof *u);
        cpu->gate(ref, 2 * Hd, ref, m, rows, Hd, E, (act_kind)act);
        float *du = to_dev(u, rows * 2 * Hd), *dm = to_dev(m, rows * E);
        gpu->gate(du, 2 * Hd, du, dm, rows, Hd, E, (act_kind)act);
        char what[64];
        snprintf(what, sizeof what, "gate %s (in place)", act_name((act_kind)act));
        compare(du, ref, rows * 2 * Hd, TOL, what);
        /* into a separate output, rows Hd + 3 apart, as a training forward keeps g */
        const size_t ldv = (size_t)Hd + 3;
        float *vref = alloc_guarded(rows * ldv), *dv = dev_zeros(rows * ldv);
        memset(vref, 0, rows * ldv * sizeof *vref);
        du = to_dev(u, rows * 2 * Hd);
        cpu->gate(vref, ldv, u, m, rows, Hd, E, (act_kind)act);
        gpu->gate(dv, ldv, du, dm, rows, Hd, E, (act_kind)act);
        snprintf(what, sizeof what, "gate %s (separate output)", act_name((act_kind)act));
        compare(dv, vref, rows * ldv, TOL, what);
        gpu->release(du), gpu->release(dm);
        free(ref), free(vref);
    }
    free(u), free(m);
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
        float *ws = malloc(cpu->dwconv_ws(B, H, W, C, K) * sizeof *ws);
        cpu->dwconv(ref, x, ld, w, b, B, H, W, C, K, ws);
        const size_t gws = gpu->dwconv_ws(B, H, W, C, K);
        float *dx = to_dev(x, (size_t)B * H * W * ld), *dw = to_dev(w, (size_t)C * K * K), *db = to_dev(b, C),
              *dy = dev_zeros(n), *dws = gws ? dev_zeros(gws) : NULL;
        gpu->dwconv(dy, dx, ld, dw, db, B, H, W, C, K, dws);
        char what[64];
        snprintf(what, sizeof what, "dwconv B%d %dx%d C%d K%d", B, H, W, C, K);
        compare(dy, ref, n, TOL, what);
        gpu->release(dx), gpu->release(dw), gpu->release(db);
        if (dws)
            gpu->release(dws);
        free(x), free(w), free(b), free(ref), free(ws);
    }
}

/* Linear through cuBLAS: strided rows, with and without bias, written and
 * accumulated; plain float32 must match the CPU's float32 closely. */
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
        cpu->linear(ref, ld_out, x, ld_in, w, bias, rows, in_f, out_f, acc);
        float *dx = to_dev(x, rows * ld_in), *dw = to_dev(w, (size_t)out_f * in_f), *db = to_dev(b, out_f);
        float *dy = to_dev(y0, rows * ld_out);
        gpu->linear(dy, ld_out, dx, ld_in, dw, bias ? db : NULL, rows, in_f, out_f, acc);
        char what[64];
        snprintf(what, sizeof what, "linear accumulate=%d bias=%d", acc, bias != NULL);
        compare(dy, ref, rows * ld_out, TOL, what);
        gpu->release(dx), gpu->release(dw), gpu->release(db);
        free(ref);
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
    cpu->nchw_to_nhwc(nhwc, nchw, B, Cin, H, W);
    const size_t cws = cpu->conv2d_ws(&sh, (size_t)B * Ho * Wo, 1);
    float *ws = malloc(cws * sizeof *ws);
    cpu->conv2d(ref, nhwc, w, b, &sh, B, H, W, ws, cws, 1);
    float *dnchw = to_dev(nchw, nin), *dnhwc = dev_zeros(nin), *dw = to_dev(w, (size_t)Cout * Cin * 9);
    float *db = to_dev(b, Cout), *dy = dev_zeros(nout);
    const size_t ws_floats = (size_t)17 * Cin * 9; /* 17 output pixels per im2col chunk: several chunks */
    float *dws = dev_zeros(ws_floats);
    gpu->nchw_to_nhwc(dnhwc, dnchw, B, Cin, H, W);
    float *t = from_dev(dnhwc, nin, "nchw_to_nhwc");
    CHECK(!memcmp(t, nhwc, nin * sizeof *t), "nchw_to_nhwc cuda differs from the cpu");
    gpu->conv2d(dy, dnhwc, dw, db, &sh, B, H, W, dws, ws_floats, 1);
    compare(dy, ref, nout, TOL, "conv2d 3x3/2, several im2col chunks");
    float *wsb = from_dev(dws, ws_floats, "conv2d workspace");
    gpu->release(dnchw), gpu->release(dnhwc), gpu->release(dw), gpu->release(db), gpu->release(dws);
    free(nchw), free(w), free(b), free(nhwc), free(ref), free(ws), free(t), free(wsb);
}

/* GELU, SiLU and softplus element by element over a wide range against the
 * formulas in double (the CPU's vector GELU is a fitted approximation, so it
 * is not the reference here), mean pooling and scaling against the CPU. */
static void test_pointwise(rng_state *r)
{
    const size_t n = 1001;
    float *x = rand_floats(r, n, -30, 30);
    for (int k = 0; k < 3; k++) {
        float *dx = to_dev(x, n), *dy = dev_zeros(n);
        gpu->act(dy, dx, n, (act_kind)k);
        float *y = from_dev(dy, n, act_name((act_kind)k));
        double worst = 0;
        for (size_t i = 0; i < n; i++) {
            const double v = x[i];
            const double ref = (act_kind)k == ACT_GELU   ? 0.5 * v * (1.0 + erf(v / sqrt(2.0)))
                               : (act_kind)k == ACT_SILU ? v / (1.0 + exp(-v))
                               : v > 20                  ? v
                                                         : log1p(exp(v));
            double d = fabs((double)y[i] - ref) / (fabs(ref) > 1 ? fabs(ref) : 1.0);
            worst = d > worst ? d : worst;
        }
        CHECK(worst <= 1e-6, "%s cuda vs the double formula: max diff %.3g (absolute below 1, relative above)",
              act_name((act_kind)k), worst);
        printf("  %-34s max diff from the double formula %.3g\n", act_name((act_kind)k), worst);
        gpu->release(dx), gpu->release(dy);
        free(y);
    }
    float *ref = alloc_guarded(n), *dx = to_dev(x, n);
    memcpy(ref, x, n * sizeof *ref);
    cpu->scale(ref, n, 0.5f);
    gpu->scale(dx, n, 0.5f);
    compare(dx, ref, n, 0, "scale");
    free(x), free(ref);
    const int B = 3, C = 19;
    const size_t L = 37;
    float *in = rand_floats(r, (size_t)B * L * C, -2, 2), *pref = alloc_guarded((size_t)B * C);
    cpu->meanpool(pref, in, B, L, C);
    float *din = to_dev(in, (size_t)B * L * C), *dy = dev_zeros((size_t)B * C);
    gpu->meanpool(dy, din, B, L, C);
    compare(dy, pref, (size_t)B * C, TOL, "meanpool");
    gpu->release(din);
    free(in), free(pref);
}

/* Row copies and the skeletons' grid transposes: exact. */
static void test_layout(rng_state *r)
{
    const int B = 2, h = 7, w = 9, C = 5;
    const size_t n = (size_t)B * h * w * C, nm = (size_t)B * (h / 2) * (w / 2) * 4 * C;
    float *x = rand_floats(r, n, -1, 1), *ref = alloc_guarded(nm), *dx = to_dev(x, n), *dy = dev_zeros(nm);
    cpu->merge_2x2(ref, x, B, h, w, C);
    gpu->merge_2x2(dy, dx, B, h, w, C);
    compare(dy, ref, nm, 0, "merge_2x2 (odd grid)");
    const size_t L = (size_t)h * w, at = L / 2, ns = (size_t)B * (L + 1) * C;
    float *tok = rand_floats(r, C, -1, 1), *pos = rand_floats(r, (L + 1) * C, -1, 1), *sref = alloc_guarded(ns);
    float *dtok = to_dev(tok, C), *dpos = to_dev(pos, (L + 1) * C);
    cpu->insert_token(sref, x, tok, pos, B, L, at, C);
    gpu->insert_token(dy = dev_zeros(ns), dx, dtok, dpos, B, L, at, C);
    compare(dy, sref, ns, 0, "insert_token + position embedding");
    float *cref = alloc_guarded(3 * 40);
    memset(cref, 0, 3 * 40 * sizeof *cref);
    cpu->copy_rows(cref, 3, x, 11, 2, 40);
    gpu->copy_rows(dy = dev_zeros(3 * 40), 3, dx, 11, 2, 40);
    compare(dy, cref, 3 * 40, 0, "copy_rows (strided both sides)");
    gpu->release(dx), gpu->release(dtok), gpu->release(dpos);
    free(x), free(ref), free(tok), free(pos), free(sref), free(cref);
}

/* The scan's two ops directly: the causal conv1d + SiLU both ways, and the
 * scan core over several 64-step chunks, both orders and directions. */
static void test_scan_ops(rng_state *r)
{
    const int B = 2, H = 9, W = 17, E = 21, N = 6, R = 3, K = SSM_CONV_K;
    const size_t L = (size_t)H * W, n = (size_t)B * L * E, ld = (size_t)E + 4, ldx = (size_t)R + 2 * N;
    float *x = rand_floats(r, (size_t)B * L * ld, -1, 1), *w = rand_floats(r, (size_t)E * K, -0.5, 0.5);
    float *b = rand_floats(r, E, -0.5, 0.5), *ref = alloc_guarded(n);
    float *dx = to_dev(x, (size_t)B * L * ld), *dw = to_dev(w, (size_t)E * K), *db = to_dev(b, E), *dy;
    for (int rev = 0; rev < 2; rev++) {
        cpu->conv1d_silu(ref, x, ld, w, b, B, L, E, K, rev);
        gpu->conv1d_silu(dy = dev_zeros(n), dx, ld, dw, db, B, L, E, K, rev);
        compare(dy, ref, n, TOL, rev ? "conv1d + SiLU, reversed" : "conv1d + SiLU");
    }
    float *u = rand_floats(r, n, -2, 2), *delta = rand_floats(r, n, 0.001f, 0.3f);
    float *xdbl = rand_floats(r, (size_t)B * L * ldx, -1, 1), *alog = rand_floats(r, (size_t)E * N, -1, 1.5);
    float *D = rand_floats(r, E, -1, 1), *y0 = rand_floats(r, n, -1, 1);
    float *du = to_dev(u, n), *dd = to_dev(delta, n), *dxd = to_dev(xdbl, (size_t)B * L * ldx);
    float *dal = to_dev(alog, (size_t)E * N), *dD = to_dev(D, E);
    float *cws = malloc(cpu->scan_ws(B, L, E, N) * sizeof *cws), *gws = dev_zeros(gpu->scan_ws(B, L, E, N));
    const size_t ns = ssm_states_floats(B, L, E, N);
    float *st = alloc_guarded(ns);
    for (int v = 0; v < 8; v++) {
        const ssm_order order = v & 1 ? SSM_COL_MAJOR : SSM_ROW_MAJOR;
        const int rev = v >> 1 & 1, acc = v >> 2 & 1;
        memcpy(ref, y0, n * sizeof *ref);
        cpu->scan(ref, st, acc, u, delta, xdbl, ldx, R, alog, D, B, H, W, E, N, order, rev, cws);
        float *dst = dev_zeros(ns);
        gpu->scan(dy = to_dev(y0, n), dst, acc, du, dd, dxd, ldx, R, dal, dD, B, H, W, E, N, order, rev, gws);
        char what[64];
        snprintf(what, sizeof what, "scan core order %d reverse %d acc %d", (int)order, rev, acc);
        compare(dy, ref, n, 1e-5, what);
        snprintf(what, sizeof what, "scan saved states order %d reverse %d", (int)order, rev);
        compare(dst, st, ns, 1e-5, what);
    }
    free(st);
    gpu->release(dx), gpu->release(dw), gpu->release(db), gpu->release(du), gpu->release(dd);
    gpu->release(dxd), gpu->release(dal), gpu->release(dD), gpu->release(gws);
    free(x), free(w), free(b), free(ref), free(u), free(delta), free(xdbl), free(alog), free(D), free(y0), free(cws);
}

/* Attention's core: the warp-per-query kernel (head size 8) and the tiled one
 * (32, 64) with a partial last tile, full and causal. */
static void test_attn_ops(rng_state *r)
{
    const int hs[3] = {8, 32, 64};
    for (int i = 0; i < 3; i++) {
        const int B = 2, HS = hs[i], E = 2 * HS;
        const size_t L = 75, n = (size_t)B * L * E;
        float *qkv = rand_floats(r, 3 * n, -1.5, 1.5), *ref = alloc_guarded(n);
        float *ws = malloc(cpu->attn_ws(B, L, E, HS, 1) * sizeof *ws), *dq = to_dev(qkv, 3 * n);
        const size_t gw = gpu->attn_ws(B, L, E, HS, 1);
        float *gws = gw ? dev_zeros(gw) : NULL, *dy, *dl;
        const size_t nl = (size_t)B * (E / HS) * L;
        float *lse = alloc_guarded(nl);
        for (int causal = 0; causal < 2; causal++) {
            cpu->attn(ref, lse, qkv, B, L, E, HS, causal, ws, 1);
            gpu->attn(dy = dev_zeros(n), dl = dev_zeros(nl), dq, B, L, E, HS, causal, gws, 1);
            char what[64];
            snprintf(what, sizeof what, "attention HS %d L %zu%s", HS, L, causal ? " causal" : "");
            compare(dy, ref, n, 1e-5, what);
            snprintf(what, sizeof what, "attention HS %d saved log-sum-exp%s", HS, causal ? " causal" : "");
            compare(dl, lse, nl, 1e-5, what);
        }
        free(lse);
        gpu->release(dq);
        if (gws)
            gpu->release(gws);
        free(qkv), free(ref), free(ws);
    }
}

/* Every mixer composed on both backends, on random weights, at awkward sizes
 * (odd H != W, E not a multiple of 8), strided input. The second and third
 * settings reach the fast paths: several 64-step scan chunks with d_state 16
 * (compile-time) and 6 (run-time), and the tiled attention at head sizes 32
 * and 64 with a partial last tile. */
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
            mixer_config cfg = mixer_config_default(E, E);
            cfg.d_state = mc->d_state, cfg.dt_rank = 3, cfg.head_size = mc->head_size, cfg.kernel = mc->kernel;
            mixer_instance mi;
            CHECK(mixer_instance_random(&mi, o->name, &cfg, 11) == ML_OK, "%s: %s", o->name, ml_last_error());
            float *x = rand_floats(r, (size_t)B * H * W * ld, -1.5, 1.5), *ref = alloc_guarded(n);
            float *ws = malloc(mixer_instance_workspace(&mi, B, H, W) * sizeof *ws);
            o->forward(cpu, &mi.cfg, (const float *const *)mi.params, ref, NULL, x, ld, ws, B, H, W);
            CHECK(mixer_instance_to(&mi, gpu) == ML_OK, "%s to cuda: %s", o->name, ml_last_error());
            const size_t gw = mixer_instance_workspace(&mi, B, H, W);
            float *dws = dev_zeros(gw), *dx = to_dev(x, (size_t)B * H * W * ld), *dy = dev_zeros(n);
            o->forward(gpu, &mi.cfg, (const float *const *)mi.dev, dy, NULL, dx, ld, dws, B, H, W);
            char what[64];
            snprintf(what, sizeof what, "mixer %s B%d %dx%d E%d", o->name, B, H, W, E);
            compare(dy, ref, n, 1e-4, what);
            gpu->release(dws), gpu->release(dx);
            free(x), free(ref), free(ws);
            mixer_instance_free(&mi);
        }
    }
}

int main(void)
{
    char dev[256];
    setvbuf(stdout, NULL, _IOLBF, 0); /* passes and failures (stderr) interleave in order in a log */
    gpu = backend_cuda();
    if (!gpu || cuda_device_check(dev, sizeof dev) != ML_OK) {
        printf("test_cuda_ops: skipped: %s\n", gpu ? ml_last_error() : "no CUDA backend in this build");
        return SKIP;
    }
    printf("device: %s\n", dev);
    rng_state r;
    rng_seed(&r, 20261127);
    test_norms(&r);
    test_gate(&r);
    test_dwconv(&r);
    test_linear(&r);
    test_conv2d(&r);
    test_pointwise(&r);
    test_layout(&r);
    test_scan_ops(&r);
    test_attn_ops(&r);
    test_mixers(&r);
    return test_summary("test_cuda_ops");
}
