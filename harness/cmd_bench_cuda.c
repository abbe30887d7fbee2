/* mixerlab bench-cuda: every CUDA kernel's achieved rate against the card's
 * own limits, all measured in one run: the device-to-device copy bandwidth
 * and the cuBLAS SGEMM rate first, then each op at a MambaOut shape, then the
 * token mixers' cores over a range of token counts. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/cuda_measure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_cuda_usage[] =
    "usage: mixerlab bench-cuda [--tokens L1,L2,...] [--width E] [--iters N] [--cold]\n"
    "\n"
    "Prints Markdown tables measured in one run on the GPU (CUDA events, median of\n"
    "--iters samples after 3 warm-up runs; a sample is N back-to-back calls between\n"
    "two events, N so that it spans >= 1 ms (one call with --cold), queued behind a\n"
    "busy kernel so the host's launch latency is not inside it):\n"
    "  limits   device-to-device copy (bytes read + written) and cuBLAS SGEMM 8192^3,\n"
    "           float32 (and TF32 for reference);\n"
    "  ops      LayerNorm, GELU, the gate, fc1 (cuBLAS), the stem conv, mean pooling,\n"
    "           at mambaout_tiny's stage-0 shapes, batch 64: GB/s or TFLOP/s and the\n"
    "           share of the matching limit;\n"
    "  mixers   the cores alone at width E, batch 1, L tokens on a sqrt(L) grid:\n"
    "           depthwise 7x7 (GB/s of input + output against copy), the selective\n"
    "           scan (d_state 16; time against its floor: u, delta, B, C in and y out\n"
    "           at the copy rate) and attention with head size 64, full and causal\n"
    "           (TFLOP/s against SGEMM).\n"
    "\n"
    "  --tokens L,..  token counts (default 196,784,3136,4096,8100,16384,32761)\n"
    "  --width E      mixer width (default 384, a multiple of 64)\n"
    "  --iters N      timed runs per measurement (default 20)\n"
    "  --cold         flush the L2 cache before every timed run\n";

static ml_status parse_bench_cuda(int argc, char **argv, long *tokens, int *nt, long *width, long *iters, int *cold)
{
    const arg_spec specs[] = {
        OPT_LIST("--tokens", tokens, 1, 1 << 20, 16, nt, NULL),
        OPT_LONG("--width", width, 64, 4096),
        OPT_LONG("--iters", iters, 1, 10000),
        OPT_FLAG("--cold", cold),
        OPT_END,
    };
    return args_parse("bench-cuda", argc, argv, specs, NULL, 0, NULL);
}

#ifdef MIXERLAB_HAVE_CUDA
#include "base/rng.h"
#include "blocks/backend.h"
#include "blocks/ssm_chunk.h"

typedef struct {
    int which;
    float *a, *b, *c, *d, *e, *ws;
    size_t n, rows, ws_floats;
    int B, H, W, C, Hd, E, N, R, HS, causal;
    conv2d_shape conv;
    const float *alog, *D;
} kctx;

enum { K_COPY, K_GEMM, K_LN, K_GELU, K_GATE, K_FC1, K_STEM, K_POOL, K_DW, K_SCAN, K_ATTN };

/* Each kernel through the CUDA backend's table: what the skeleton runs. */
static void run_kernel(void *p)
{
    kctx *k = p;
    const backend *be = backend_cuda();
    switch (k->which) {
    case K_COPY:
        be->copy_rows(k->b, 1 << 16, k->a, 1 << 16, 1 << 16, k->n >> 16);
        break;
    case K_GEMM: /* c (n x n) = a (n x n) · bᵀ */
        be->linear(k->c, k->n, k->a, k->n, k->b, NULL, k->n, (int)k->n, (int)k->n, 0);
        break;
    case K_LN:
        be->layernorm(k->b, (size_t)k->C, NULL, NULL, k->a, (size_t)k->C, k->c, k->d, k->rows, k->C, 1e-6f);
        break;
    case K_GELU:
        be->act(k->b, k->a, k->n, ACT_GELU);
        break;
    case K_GATE:
        be->gate(k->a, 2 * (size_t)k->Hd, k->a, k->b, k->rows, k->Hd, k->E, ACT_GELU);
        break;
    case K_FC1:
        be->linear(k->b, 2 * (size_t)k->Hd, k->a, (size_t)k->C, k->c, k->d, k->rows, k->C, 2 * k->Hd, 0);
        break;
    case K_STEM:
        be->conv2d(k->b, k->a, k->c, k->d, &k->conv, k->B, k->H, k->W, k->ws, k->ws_floats, 1);
        break;
    case K_POOL:
        be->meanpool(k->b, k->a, k->B, (size_t)k->H * k->W, k->C);
        break;
    case K_DW:
        be->dwconv(k->b, k->a, (size_t)k->C, k->c, k->d, k->B, k->H, k->W, k->C, 7, NULL);
        break;
    case K_SCAN:
        be->scan(k->b, NULL, 0, k->a, k->c, k->d, (size_t)k->R + 2 * k->N, k->R, k->alog, k->D, k->B, k->H, k->W, k->E, k->N,
                 SSM_ROW_MAJOR, 0, k->ws);
        break;
    case K_ATTN:
        be->attn(k->b, NULL, k->a, k->B, (size_t)k->H * k->W, k->E, k->HS, k->causal, NULL, 1);
        break;
    }
}

/* Device buffer of n floats filled from a seeded uniform [lo, hi). */
static ml_status dev_rand(float **d, size_t n, double lo, double hi, uint64_t seed, const char *what)
{
    *d = NULL;
    float *h = ml_malloc((n ? n : 1) * sizeof *h, what);
    if (!h)
        return ML_ERR_NOMEM;
    rng_state r;
    rng_seed(&r, seed);
    rng_fill_uniform(&r, h, n, lo, hi);
    ml_status s = cuda_malloc((void **)d, (n ? n : 1) * sizeof(float), what);
    if (s == ML_OK)
        s = cuda_to_device(*d, h, n * sizeof(float));
    free(h);
    return s;
}

static void free_all(kctx *k)
{
    float *p[6] = {k->a, k->b, k->c, k->d, k->e, k->ws};
    for (int i = 0; i < 6; i++)
        cuda_free(p[i]);
    memset(k, 0, sizeof *k);
}

static ml_status time_it(kctx *k, int iters, int cold, double *ms)
{
    double mn;
    return cuda_time(run_kernel, k, 3, iters, cold, ms, &mn);
}

/* The limits: copy GB/s (read + write) and SGEMM TFLOP/s, float32 and TF32. */
static ml_status limits(int iters, int cold, double *copy_gbs, double *gemm_tf, double *tf32_tf)
{
    kctx k;
    memset(&k, 0, sizeof k);
    k.which = K_COPY;
    k.n = (size_t)1 << 28; /* 1 GiB each way */
    ml_status s = cuda_malloc((void **)&k.a, k.n * 4, "copy source");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.b, k.n * 4, "copy destination");
    if (s == ML_OK)
        s = cuda_memset_zero(k.a, k.n * 4);
    double ms = 0;
    if (s == ML_OK)
        s = time_it(&k, iters, cold, &ms);
    *copy_gbs = 2.0 * k.n * 4 / (ms * 1e6);
    printf("| copy device to device | 2 x 1 GiB | %.3f | %.0f GB/s | the copy limit |\n", ms, *copy_gbs);
    free_all(&k);
    if (s != ML_OK)
        return s;
    k.which = K_GEMM;
    k.n = 8192;
    s = dev_rand(&k.a, k.n * k.n, -1, 1, 1, "gemm a");
    if (s == ML_OK)
        s = dev_rand(&k.b, k.n * k.n, -1, 1, 2, "gemm b");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.c, k.n * k.n * 4, "gemm c");
    const double flop = 2.0 * k.n * k.n * k.n;
    for (int tf32 = 0; tf32 < 2 && s == ML_OK; tf32++) {
        cuda_set_math(tf32 ? CUDA_MATH_TF32 : CUDA_MATH_FP32);
        s = time_it(&k, iters < 10 ? iters : 10, cold, &ms);
        double tf = flop / (ms * 1e9);
        *(tf32 ? tf32_tf : gemm_tf) = tf;
        printf("| cuBLAS SGEMM%s | 8192^3 | %.3f | %.1f TFLOP/s | %s |\n", tf32 ? " (TF32 allowed)" : " float32", ms,
               tf, tf32 ? "for reference" : "the SGEMM limit");
    }
    cuda_set_math(CUDA_MATH_FP32);
    free_all(&k);
    return s;
}

static void row_rate(const char *name, const char *shape, double ms, double amount, int flops, double limit)
{
    const double rate = flops ? amount / (ms * 1e9) : amount / (ms * 1e6);
    printf("| %s | %s | %.4f | %.*f %s | %.0f%% of %s |\n", name, shape, ms, flops ? 1 : 0, rate,
           flops ? "TFLOP/s" : "GB/s", 100.0 * rate / limit, flops ? "SGEMM" : "copy");
}

/* MambaOut-Tiny's stage-0 shapes at batch 64: 56 x 56 tokens of width 96, Hd 256. */
static ml_status ops_table(int iters, int cold, double copy, double gemm)
{
    kctx k;
    memset(&k, 0, sizeof k);
    const int B = 64, H = 56, W = 56, C = 96, Hd = 256;
    const size_t rows = (size_t)B * H * W;
    char shape[96];
    double ms = 0;
    ml_status s = ML_OK;

    k.which = K_LN, k.rows = rows, k.C = C;
    s = dev_rand(&k.a, rows * C, -2, 2, 3, "ln in");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.b, rows * C * 4, "ln out");
    if (s == ML_OK)
        s = dev_rand(&k.c, C, 0.5, 1.5, 4, "ln w");
    if (s == ML_OK)
        s = dev_rand(&k.d, C, -1, 1, 5, "ln b");
    if (s == ML_OK && (s = time_it(&k, iters, cold, &ms)) == ML_OK) {
        snprintf(shape, sizeof shape, "%zu x %d", rows, C);
        row_rate("LayerNorm", shape, ms, 2.0 * rows * C * 4, 0, copy);
    }
    free_all(&k);

    k.which = K_GELU, k.n = rows * 2 * Hd;
    if (s == ML_OK)
        s = dev_rand(&k.a, k.n, -4, 4, 6, "gelu in");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.b, k.n * 4, "gelu out");
    if (s == ML_OK && (s = time_it(&k, iters, cold, &ms)) == ML_OK) {
        snprintf(shape, sizeof shape, "%zu", k.n);
        row_rate("GELU (erf)", shape, ms, 2.0 * k.n * 4, 0, copy);
    }
    free_all(&k);

    k.which = K_GATE, k.rows = rows, k.Hd = Hd, k.E = C;
    if (s == ML_OK)
        s = dev_rand(&k.a, rows * 2 * Hd, -4, 4, 7, "gate u");
    if (s == ML_OK)
        s = dev_rand(&k.b, rows * C, -2, 2, 8, "gate m");
    if (s == ML_OK && (s = time_it(&k, iters, cold, &ms)) == ML_OK) {
        snprintf(shape, sizeof shape, "%zu x (Hd %d, E %d)", rows, Hd, C);
        /* reads g, i (Hd - E) and the mixer's E; writes the Hd of g */
        row_rate("gate GELU(g)·[i, c']", shape, ms, 3.0 * rows * Hd * 4, 0, copy);
    }
    free_all(&k);

    k.which = K_FC1, k.rows = rows, k.C = C, k.Hd = Hd;
    if (s == ML_OK)
        s = dev_rand(&k.a, rows * C, -1, 1, 9, "fc1 in");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.b, rows * 2 * Hd * 4, "fc1 out");
    if (s == ML_OK)
        s = dev_rand(&k.c, (size_t)2 * Hd * C, -0.1, 0.1, 10, "fc1 w");
    if (s == ML_OK)
        s = dev_rand(&k.d, 2 * Hd, -0.1, 0.1, 11, "fc1 b");
    if (s == ML_OK && (s = time_it(&k, iters, cold, &ms)) == ML_OK) {
        snprintf(shape, sizeof shape, "%zu x %d -> %d", rows, C, 2 * Hd);
        row_rate("fc1 (cuBLAS)", shape, ms, 2.0 * rows * C * 2 * Hd, 1, gemm);
    }
    free_all(&k);

    /* the stem's first conv: 3 -> 48, 3x3 stride 2, on 224^2, batch 64 */
    k.which = K_STEM, k.B = B, k.H = 224, k.W = 224, k.conv = (conv2d_shape){3, 48, 3, 2, 1};
    const size_t in_n = (size_t)B * 224 * 224 * 3, out_rows = (size_t)B * 112 * 112;
    k.ws_floats = out_rows * 27;
    if (s == ML_OK)
        s = dev_rand(&k.a, in_n, -1, 1, 12, "stem in");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.b, out_rows * 48 * 4, "stem out");
    if (s == ML_OK)
        s = dev_rand(&k.c, 48 * 27, -0.2, 0.2, 13, "stem w");
    if (s == ML_OK)
        s = dev_rand(&k.d, 48, -0.1, 0.1, 14, "stem b");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.ws, k.ws_floats * 4, "stem im2col");
    if (s == ML_OK && (s = time_it(&k, iters, cold, &ms)) == ML_OK) {
        row_rate("stem conv 3x3/2 (im2col + cuBLAS)", "64 x 224^2 x 3 -> 48", ms, 2.0 * out_rows * 27 * 48, 1,
                 gemm);
        row_rate("stem conv, as bytes", "input + output", ms, (in_n + out_rows * 48) * 4.0, 0, copy);
    }
    free_all(&k);

    /* the head's mean pooling over stage 3: 7 x 7 tokens of width 576 */
    k.which = K_POOL, k.B = B, k.H = 7, k.W = 7, k.C = 576;
    if (s == ML_OK)
        s = dev_rand(&k.a, (size_t)B * 49 * 576, -1, 1, 15, "pool in");
    if (s == ML_OK)
        s = cuda_malloc((void **)&k.b, (size_t)B * 576 * 4, "pool out");
    if (s == ML_OK && (s = time_it(&k, iters, cold, &ms)) == ML_OK)
        row_rate("mean pool", "64 x 49 x 576", ms, (double)B * 50 * 576 * 4, 0, copy);
    free_all(&k);
    return s;
}

static ml_status mixers_table(const long *tokens, int nt, int E, int iters, int cold, double copy, double gemm)
{
    ml_status s = ML_OK;
    const int N = 16, R = (E + 15) / 16, HS = 64;
    for (int i = 0; i < nt && s == ML_OK; i++) {
        const long L = tokens[i];
        int H, W;
        cli_token_grid(L, &H, &W);
        const size_t n = (size_t)L * E;
        double dw = 0, sc = 0, at = 0, atc = 0;
        kctx shape; /* what every core below is run at; free_all clears k, so each starts from it */
        memset(&shape, 0, sizeof shape);
        shape.B = 1, shape.H = H, shape.W = W, shape.C = E, shape.E = E, shape.N = N, shape.R = R, shape.HS = HS;
        kctx k = shape;

        k.which = K_DW;
        s = dev_rand(&k.a, n, -1, 1, 20, "dwconv in");
        if (s == ML_OK)
            s = cuda_malloc((void **)&k.b, n * 4, "dwconv out");
        if (s == ML_OK)
            s = dev_rand(&k.c, (size_t)E * 49, -0.2, 0.2, 21, "dwconv w");
        if (s == ML_OK)
            s = dev_rand(&k.d, E, -0.1, 0.1, 22, "dwconv b");
        if (s == ML_OK)
            s = time_it(&k, iters, cold, &dw);
        free_all(&k);

        /* u, Δ (softplus range), xdbl with B and C after R columns, A_log, D */
        k = shape;
        k.which = K_SCAN;
        float *alog = NULL, *D = NULL;
        const size_t ldx = (size_t)R + 2 * N;
        if (s == ML_OK)
            s = dev_rand(&k.a, n, -2, 2, 23, "scan u");
        if (s == ML_OK)
            s = dev_rand(&k.c, n, 0.001, 0.1, 24, "scan delta");
        if (s == ML_OK)
            s = dev_rand(&k.d, (size_t)L * ldx, -1, 1, 25, "scan xdbl");
        if (s == ML_OK)
            s = cuda_malloc((void **)&k.b, n * 4, "scan y");
        if (s == ML_OK)
            s = cuda_malloc((void **)&k.ws, ssm_carry_floats(1, (size_t)L, E, N) * 4, "scan carries");
        if (s == ML_OK)
            s = dev_rand(&alog, (size_t)E * N, 0, 2.8, 26, "scan A_log");
        if (s == ML_OK)
            s = dev_rand(&D, E, 0.5, 1.5, 27, "scan D");
        k.alog = alog, k.D = D;
        if (s == ML_OK)
            s = time_it(&k, iters, cold, &sc);
        cuda_free(alog), cuda_free(D);
        free_all(&k);

        k = shape;
        k.which = K_ATTN;
        if (s == ML_OK)
            s = dev_rand(&k.a, 3 * n, -1, 1, 28, "attn qkv");
        if (s == ML_OK)
            s = cuda_malloc((void **)&k.b, n * 4, "attn out");
        if (s == ML_OK)
            s = time_it(&k, iters, cold, &at);
        k.causal = 1;
        if (s == ML_OK)
            s = time_it(&k, iters, cold, &atc);
        free_all(&k);
        if (s != ML_OK)
            break;
        const double dw_gbs = 2.0 * n * 4 / (dw * 1e6);
        const double scan_floor_ms = 4.0 * L * (3.0 * E + 2.0 * N) / (copy * 1e6);
        const double fl = 4.0 * (double)L * L * E, flc = 2.0 * (double)L * (L + 1) * E;
        printf("| %ld | %dx%d | %.4f | %.0f GB/s (%.0f%%) | %.4f | %.4f | %.1fx | %.3f | %.1f TFLOP/s (%.0f%%) | %.3f | "
               "%.1f TFLOP/s |\n",
               L, H, W, dw, dw_gbs, 100 * dw_gbs / copy, sc, scan_floor_ms, sc / scan_floor_ms, at, fl / (at * 1e9),
               100 * fl / (at * 1e9) / gemm, atc, flc / (atc * 1e9));
        fflush(stdout);
    }
    return s;
}

static int cmd_bench_cuda(int argc, char **argv)
{
    long tokens[16] = {196, 784, 3136, 4096, 8100, 16384, 32761}, width = 384, iters = 20;
    int nt = 7, cold = 0;
    ML_TRY(parse_bench_cuda(argc, argv, tokens, &nt, &width, &iters, &cold));
    if (width % 64)
        return ml_fail(ML_ERR_USAGE, "bench-cuda: --width %ld is not a multiple of 64 (attention heads of 64)", width);
    ML_TRY(cli_check_device("cuda", "bench-cuda"));
    char dev[512], date[32];
    ML_TRY(cuda_device_check(dev, sizeof dev));
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&t));
    printf("## mixerlab bench-cuda, %s\n\n%s; %s; median of %ld samples after 3 warm-up runs, %s L2; a sample is %s, "
           "queued behind a busy kernel that outlasts the host's queueing of one call (the first launch's latency is "
           "not inside it)\n\n",
           date, dev, cuda_build_info(), iters, cold ? "cold" : "warm",
           cold ? "one call between two events, L2 flushed before it"
                : "N back-to-back calls between two events, N such that it spans >= 1 ms (at most 1000)");
    printf("| kernel | shape | median ms | achieved | share |\n|---|---|---|---|---|\n");
    double copy = 0, gemm = 0, tf32 = 0;
    ML_TRY(limits((int)iters, cold, &copy, &gemm, &tf32));
    ML_TRY(ops_table((int)iters, cold, copy, gemm));
    printf("\nToken mixers alone, batch 1, width %ld (dwconv: input + output bytes against copy; scan: d_state 16, "
           "floor = (u, delta, y of L x E and B, C of L x 16 floats) / copy; attention: head size 64, "
           "4 L^2 E FLOPs, causal half)\n\n",
           width);
    printf("| L | grid | dwconv 7x7 ms | dwconv rate | scan ms | scan floor ms | scan / floor | attn ms | attn rate | "
           "causal ms | causal rate |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    ML_TRY(mixers_table(tokens, nt, (int)width, (int)iters, cold, copy, gemm));
    return 0;
}
#else
static int cmd_bench_cuda(int argc, char **argv)
{
    long tokens[16], width = 384, iters = 20;
    int nt = 0, cold = 0;
    ML_TRY(parse_bench_cuda(argc, argv, tokens, &nt, &width, &iters, &cold));
    return ml_fail(ML_ERR_USAGE, "bench-cuda: this build has no CUDA backend (configure with -DMIXERLAB_CUDA=ON)");
}
#endif

const cli_command cli_bench_cuda = {"bench-cuda", "every CUDA kernel's rate against the GPU's copy and SGEMM rates, in one run",
                                    bench_cuda_usage, cmd_bench_cuda};
