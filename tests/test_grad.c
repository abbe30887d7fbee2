/* Every backward against gradients it did not compute itself:
 *
 *  - central differences in double of a naive double restatement of each
 *    forward (every op, every mixer, the Gated CNN block), at awkward sizes, of
 *    J = ⟨out, g⟩ with g a random upstream gradient; the C backward (float) must
 *    be within TOL (max|a−b| / max|ref|) per tensor: d_in and every
 *    d_param. Gradient buffers are prefilled with random values first, so a
 *    backward that overwrites instead of accumulating (+=) fails too;
 *  - a few direct float central differences of the C forward itself, a looser
 *    tolerance with its reason next to it;
 *  - golden gradients from PyTorch autograd in float64 (tests/fixtures/grads,
 *    scripts/make_grad_fixtures.py);
 *  - determinism (the same backward twice is bit-identical), guard floats after
 *    every output and workspace, the training forward's output equal bit for bit
 *    to the inference forward's, and the scan backward's memory: O(chunks·E·N)
 *    saved, a workspace that does not grow with L·E·N. */
#include "blocks/act.h"
#include "blocks/attn.h"
#include "blocks/conv2d.h"
#include "blocks/dwconv.h"
#include "blocks/gated_block.h"
#include "blocks/identity.h"
#include "blocks/layernorm.h"
#include "blocks/layout.h"
#include "blocks/linear.h"
#include "blocks/loss.h"
#include "blocks/pool.h"
#include "blocks/rmsnorm.h"
#include "blocks/ssm.h"
#include "blocks/ssm_2d.h"
#include "blocks/ssm_chunk.h"
#include "blocks/vmath.h"
#include "models/mixer_io.h"
#include "test_util.h"

#include <omp.h>

#define TOL 1e-4
#define MAX_VARS (MIXER_MAX_PARAMS + 8)

static double g_worst_op = 0, g_worst_mixer = 0, g_worst_block = 0, g_worst_golden = 0, g_worst_float = 0;
static int g_verbose = 0;

/* ---------------------------------------------------------------------------
 * A differentiable tensor: the float values the C code reads (f), the same
 * values in double for the restatement (x, perturbed one element at a time),
 * the numerical gradient (num), and the C gradient buffer (d) with the
 * prefill it started from (pre).
 * ------------------------------------------------------------------------- */
typedef struct {
    const char *name;
    size_t n;
    float *f;
    double *x, *num;
    float *d, *pre;
    int own_f; /* f was allocated here (var_init), not wrapped */
} var;

static void var_init(var *v, const char *name, size_t n, rng_state *r, double lo, double hi)
{
    v->name = name, v->n = n;
    v->f = rand_floats(r, n, lo, hi);
    v->x = malloc((n ? n : 1) * sizeof *v->x);
    v->num = calloc(n ? n : 1, sizeof *v->num);
    for (size_t i = 0; i < n; i++)
        v->x[i] = v->f[i];
    v->d = v->pre = NULL;
    v->own_f = 1;
}

/* The same, from existing float values (a mixer's parameters). */
static void var_wrap(var *v, const char *name, float *f, size_t n)
{
    v->name = name, v->n = n, v->f = f;
    v->x = malloc((n ? n : 1) * sizeof *v->x);
    v->num = calloc(n ? n : 1, sizeof *v->num);
    for (size_t i = 0; i < n; i++)
        v->x[i] = f[i];
    v->d = v->pre = NULL;
    v->own_f = 0;
}

static double max_abs(const double *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* The C gradient buffer, prefilled with values of the reference's own size: a backward that
 * writes (=) instead of adding (+=) is off by the prefill; float rounding of prefill + gradient
 * stays at ~3e-8 of max|ref|. */
static void var_grad_alloc(var *v, rng_state *r)
{
    const double m = max_abs(v->num, v->n) > 0 ? max_abs(v->num, v->n) : 1.0;
    v->d = alloc_guarded(v->n);
    v->pre = malloc((v->n ? v->n : 1) * sizeof *v->pre);
    rng_fill_uniform(r, v->pre, v->n, -0.5 * m, 0.5 * m);
    memcpy(v->d, v->pre, v->n * sizeof *v->d);
}

static void var_free(var *v)
{
    if (v->own_f)
        free(v->f);
    free(v->x), free(v->num), free(v->d), free(v->pre);
    memset(v, 0, sizeof *v);
}

static void vars_free(var *v, int nv)
{
    for (int k = 0; k < nv; k++)
        var_free(&v[k]);
}

/* rows of n floats laid ld apart (the padding GUARD_VALUE, so a write into it shows), and back */
static float *to_strided(const float *src, size_t rows, size_t n, size_t ld)
{
    float *d = alloc_guarded(rows * ld);
    for (size_t r = 0; r < rows; r++)
        memcpy(d + r * ld, src + r * n, n * sizeof *d);
    return d;
}

static int from_strided(float *dst, const float *src, size_t rows, size_t n, size_t ld)
{
    int pads = guard_intact(src, rows * ld);
    for (size_t r = 0; r < rows; r++) {
        memcpy(dst + r * n, src + r * ld, n * sizeof *dst);
        for (size_t i = n; i < ld; i++)
            pads &= src[r * ld + i] == GUARD_VALUE;
    }
    return pads;
}

/* max|(d − pre) − num| / max|num|, in double. */
static double grad_err(const float *d, const float *pre, const double *num, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        const double a = (double)d[i] - (double)pre[i], e = fabs(a - num[i]);
        if (!(e <= md))
            md = isnan(e) ? INFINITY : e;
        mr = fabs(num[i]) > mr ? fabs(num[i]) : mr;
    }
    return mr > 0 ? md / mr : (md == 0 ? 0 : INFINITY);
}

/* Compares every var's C gradient with its numerical one; returns the worst error. */
static double check_vars(const char *what, var *v, int nv, double *worst)
{
    double w = 0;
    for (int k = 0; k < nv; k++) {
        if (!v[k].d)
            continue;
        const double e = grad_err(v[k].d, v[k].pre, v[k].num, v[k].n);
        CHECK(e <= TOL, "%s: d_%s rel err %.3g (max|ref| %.3g)", what, v[k].name, e, max_abs(v[k].num, v[k].n));
        CHECK(guard_intact(v[k].d, v[k].n), "%s: d_%s written past its end", what, v[k].name);
        if (max_abs(v[k].num, v[k].n) == 0 && v[k].n > 0)
            CHECK(0, "%s: d_%s is all zero in the reference: the check cannot fail", what, v[k].name);
        w = e > w ? e : w;
        if (g_verbose)
            printf("    %s d_%s: %.3g\n", what, v[k].name, e);
    }
    printf("  %-44s worst rel err %.3g\n", what, w);
    *worst = w > *worst ? w : *worst;
    return w;
}

/* The restated forward: out (nout) from the vars' x (and whatever ctx holds). */
typedef void (*dfwd_fn)(double *out, const void *ctx);

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* num = ∂⟨f(x), g⟩/∂x by central differences in double, every element of every var. The step
 * (1e-5 relative) leaves truncation (h²·f''' ~ 1e-10) and rounding (1e-16·|J|/h) far below TOL. */
static void numeric_grads(var *v, int nv, dfwd_fn f, const void *ctx, size_t nout, const double *g)
{
    double *out = malloc(nout * sizeof *out);
    for (int k = 0; k < nv; k++)
        for (size_t i = 0; i < v[k].n; i++) {
            const double x0 = v[k].x[i], h = 1e-5 * (fabs(x0) > 1 ? fabs(x0) : 1);
            v[k].x[i] = x0 + h;
            f(out, ctx);
            const double jp = dot(out, g, nout);
            v[k].x[i] = x0 - h;
            f(out, ctx);
            const double jm = dot(out, g, nout);
            v[k].x[i] = x0;
            v[k].num[i] = (jp - jm) / (2 * h);
        }
    free(out);
}

/* A random upstream gradient, in float (for C) and double (for the reference). */
static float *upstream(rng_state *r, size_t n, double **gd)
{
    *gd = malloc((n ? n : 1) * sizeof **gd);
    float *g = rand_floats(r, n, -1, 1);
    for (size_t i = 0; i < n; i++)
        (*gd)[i] = g[i];
    return g;
}

/* ---------------------------------------------------------------------------
 * Naive double restatements of the forwards.
 * ------------------------------------------------------------------------- */
static double r_gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2.0))); }
static double r_silu(double x) { return x / (1 + exp(-x)); }
static double r_softplus(double x) { return x > 20 ? x : log1p(exp(x)); }
static double r_act(act_kind k, double x)
{
    return k == ACT_SILU ? r_silu(x) : k == ACT_SOFTPLUS ? r_softplus(x) : r_gelu(x);
}

static void r_layernorm(double *y, const double *x, const double *w, const double *b, size_t rows, int C, double eps)
{
    for (size_t r = 0; r < rows; r++) {
        double mu = 0, sq = 0;
        for (int c = 0; c < C; c++)
            mu += x[r * C + c];
        mu /= C;
        for (int c = 0; c < C; c++)
            sq += (x[r * C + c] - mu) * (x[r * C + c] - mu);
        sq /= C;
        for (int c = 0; c < C; c++)
            y[r * C + c] = (x[r * C + c] - mu) / sqrt(sq + eps) * w[c] + (b ? b[c] : 0);
    }
}

static void r_rmsnorm(double *y, const double *x, const double *w, size_t rows, int C, double eps)
{
    for (size_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int c = 0; c < C; c++)
            ss += x[r * C + c] * x[r * C + c];
        for (int c = 0; c < C; c++)
            y[r * C + c] = x[r * C + c] / sqrt(ss / C + eps) * w[c];
    }
}

/* y (rows, out_f) = x (rows, ld_x apart) · wᵀ + b */
static void r_linear(double *y, const double *x, size_t ld_x, const double *w, const double *b, size_t rows,
                     int in_f, int out_f)
{
    for (size_t r = 0; r < rows; r++)
        for (int o = 0; o < out_f; o++) {
            double s = b ? b[o] : 0;
            for (int k = 0; k < in_f; k++)
                s += x[r * ld_x + k] * w[(size_t)o * in_f + k];
            y[r * out_f + o] = s;
        }
}

static void r_dwconv(double *y, const double *x, size_t ld_x, const double *w, const double *b, int B, int H, int W,
                     int C, int K)
{
    const int P = K / 2;
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++)
            for (int ww = 0; ww < W; ww++)
                for (int c = 0; c < C; c++) {
                    double s = b[c];
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) {
                            int ih = h + kh - P, iw = ww + kw - P;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W)
                                s += w[((size_t)c * K + kh) * K + kw] * x[(((size_t)bb * H + ih) * W + iw) * ld_x + c];
                        }
                    y[(((size_t)bb * H + h) * W + ww) * C + c] = s;
                }
}

static void r_conv1d_silu(double *u, const double *x, size_t ld_x, const double *w, const double *b, int B, size_t L,
                          int E, int K, int reverse)
{
    for (int bb = 0; bb < B; bb++)
        for (size_t t = 0; t < L; t++)
            for (int e = 0; e < E; e++) {
                double s = b[e];
                for (int k = 0; k < K; k++) {
                    long src = reverse ? (long)t + (K - 1) - k : (long)t - (K - 1) + k;
                    if (src >= 0 && src < (long)L)
                        s += w[(size_t)e * K + k] * x[((size_t)bb * L + (size_t)src) * ld_x + e];
                }
                u[((size_t)bb * L + t) * E + e] = r_silu(s);
            }
}

/* y += scan(u, Δ, B/C in xdbl), Mamba's recurrence, in the direction's step order. */
static void r_scan(double *y, const double *u, const double *delta, const double *xdbl, size_t ldx, int R,
                   const double *A_log, const double *D, int B, int H, int W, int E, int N, int col, int rev)
{
    const size_t L = (size_t)H * W;
    double h[64], A[64];
    for (int bb = 0; bb < B; bb++)
        for (int e = 0; e < E; e++) {
            for (int n = 0; n < N; n++)
                h[n] = 0, A[n] = -exp(A_log[(size_t)e * N + n]);
            for (size_t i = 0; i < L; i++) {
                const size_t t = ssm_step_token(i, L, H, W, col, rev), q = (size_t)bb * L + t;
                const double d = delta[q * E + e], x = u[q * E + e];
                double acc = D[e] * x;
                for (int n = 0; n < N; n++) {
                    h[n] = exp(d * A[n]) * h[n] + d * x * xdbl[q * ldx + R + n];
                    acc += h[n] * xdbl[q * ldx + R + N + n];
                }
                y[q * E + e] += acc;
            }
        }
}

/* y += one scan direction on u: x_proj, dt_proj + softplus, the scan. */
static void r_direction(double *y, const double *u, const double *xp, const double *dtw, const double *dtb,
                        const double *alog, const double *D, int B, int H, int W, int E, int N, int R, int col, int rev)
{
    const size_t rows = (size_t)B * H * W, ldx = (size_t)R + 2 * N;
    double *xdbl = malloc(rows * ldx * sizeof *xdbl), *delta = malloc(rows * E * sizeof *delta);
    r_linear(xdbl, u, (size_t)E, xp, NULL, rows, E, (int)ldx);
    r_linear(delta, xdbl, ldx, dtw, dtb, rows, R, E);
    for (size_t i = 0; i < rows * E; i++)
        delta[i] = r_softplus(delta[i]);
    r_scan(y, u, delta, xdbl, ldx, R, alog, D, B, H, W, E, N, col, rev);
    free(xdbl), free(delta);
}

/* o (B, L, E) = softmax(q kᵀ / sqrt(HS)) v per head; qkv (B, L, 3E). */
static void r_attn_core(double *o, const double *qkv, int B, size_t L, int E, int HS, int causal)
{
    const int NH = E / HS;
    double *sc = malloc(L * sizeof *sc);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (size_t i = 0; i < L; i++) {
                const double *q = qkv + ((size_t)b * L + i) * 3 * E + h * HS;
                const size_t nk = causal ? i + 1 : L;
                double mx = -1e300, sum = 0;
                for (size_t j = 0; j < nk; j++) {
                    const double *k = qkv + ((size_t)b * L + j) * 3 * E + E + h * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++)
                        s += q[d] * k[d];
                    sc[j] = s / sqrt((double)HS);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (size_t j = 0; j < nk; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < HS; d++) {
                    double acc = 0;
                    for (size_t j = 0; j < nk; j++)
                        acc += sc[j] / sum * qkv[((size_t)b * L + j) * 3 * E + 2 * E + h * HS + d];
                    o[((size_t)b * L + i) * E + h * HS + d] = acc;
                }
            }
    free(sc);
}

/* ===========================================================================
 * The ops, one by one.
 * ========================================================================= */

typedef struct {
    var *v;
    size_t rows;
    int C, rms;
} norm_ctx;

static void f_norm(double *out, const void *c)
{
    const norm_ctx *k = c;
    if (k->rms)
        r_rmsnorm(out, k->v[0].x, k->v[1].x, k->rows, k->C, 1e-6);
    else
        r_layernorm(out, k->v[0].x, k->v[1].x, k->v[2].x, k->rows, k->C, 1e-6);
}

/* LayerNorm and RMSNorm, strided rows in, out and gradient (as the skeleton's
 * patch-merging LN over 4C-wide rows uses them). */
static void test_norms(rng_state *r)
{
    const size_t rows = 37, ld_in = 16, ld_dout = 15, ld_din = 17;
    const int C = 13;
    for (int rms = 0; rms < 2; rms++) {
        var v[3] = {{0}};
        var_init(&v[0], "in", rows * C, r, -3, 5);
        var_init(&v[1], "w", C, r, 0.5, 1.5);
        if (!rms)
            var_init(&v[2], "b", C, r, -1, 1);
        const int nv = rms ? 2 : 3;
        double *gd;
        float *g = upstream(r, rows * C, &gd);
        norm_ctx ctx = {v, rows, C, rms};
        numeric_grads(v, nv, f_norm, &ctx, rows * C, gd);
        for (int k = 0; k < nv; k++)
            var_grad_alloc(&v[k], r);
        float *xs = to_strided(v[0].f, rows, C, ld_in), *gs = to_strided(g, rows, C, ld_dout);
        float *y = alloc_guarded(rows * C), *mean = alloc_guarded(rows), *rstd = alloc_guarded(rows);
        float *ds = to_strided(v[0].d, rows, C, ld_din);
        if (rms) {
            rmsnorm_forward(y, C, rstd, xs, ld_in, v[1].f, rows, C, 1e-6f);
            rmsnorm_backward(ds, ld_din, v[1].d, gs, ld_dout, xs, ld_in, v[1].f, rstd, rows, C);
        } else {
            layernorm_forward(y, C, mean, rstd, xs, ld_in, v[1].f, v[2].f, rows, C, 1e-6f);
            layernorm_backward(ds, ld_din, v[1].d, v[2].d, gs, ld_dout, xs, ld_in, v[1].f, mean, rstd, rows, C);
        }
        CHECK(from_strided(v[0].d, ds, rows, C, ld_din), "%s backward wrote outside its rows", rms ? "rmsnorm" : "layernorm");
        check_vars(rms ? "rmsnorm (rows 37, C 13, strided)" : "layernorm (rows 37, C 13, strided)", v, nv, &g_worst_op);
        free(xs), free(gs), free(y), free(mean), free(rstd), free(ds), free(g), free(gd);
        vars_free(v, nv);
    }
}

typedef struct {
    var *v;
    size_t rows;
    int in_f, out_f, bias;
} linear_ctx;

static void f_linear(double *out, const void *c)
{
    const linear_ctx *k = c;
    r_linear(out, k->v[0].x, (size_t)k->in_f, k->v[1].x, k->bias ? k->v[2].x : NULL, k->rows, k->in_f, k->out_f);
}

static void test_linear_case(rng_state *r, size_t rows, int in_f, int out_f, int bias, size_t ld_in, size_t ld_dout,
                             size_t ld_din)
{
    var v[3] = {{0}};
    var_init(&v[0], "in", rows * in_f, r, -1, 1);
    var_init(&v[1], "w", (size_t)out_f * in_f, r, -1, 1);
    if (bias)
        var_init(&v[2], "b", (size_t)out_f, r, -1, 1);
    const int nv = bias ? 3 : 2;
    double *gd;
    float *g = upstream(r, rows * out_f, &gd);
    linear_ctx ctx = {v, rows, in_f, out_f, bias};
    numeric_grads(v, nv, f_linear, &ctx, rows * out_f, gd);
    for (int k = 0; k < nv; k++)
        var_grad_alloc(&v[k], r);
    float *xs = to_strided(v[0].f, rows, in_f, ld_in), *gs = to_strided(g, rows, out_f, ld_dout);
    float *ds = to_strided(v[0].d, rows, in_f, ld_din);
    linear_backward(ds, ld_din, v[1].d, bias ? v[2].d : NULL, gs, ld_dout, xs, ld_in, v[1].f, rows, in_f, out_f);
    CHECK(from_strided(v[0].d, ds, rows, in_f, ld_din), "linear backward wrote outside its rows");
    char what[96];
    snprintf(what, sizeof what, "linear %zux%d->%d%s", rows, in_f, out_f, bias ? "" : " (no bias)");
    check_vars(what, v, nv, &g_worst_op);
    free(xs), free(gs), free(ds), free(g), free(gd);
    vars_free(v, nv);
}

static void test_linear(rng_state *r)
{
    test_linear_case(r, 29, 19, 23, 1, 26, 25, 21); /* strided everything, as fc2 reads the gate result */
    test_linear_case(r, 301, 13, 37, 1, 13, 37, 13);
    test_linear_case(r, 7, 5, 3, 0, 5, 3, 5);
}

typedef struct {
    var *v;
    act_kind k;
} act_ctx;

static void f_act(double *out, const void *c)
{
    const act_ctx *k = c;
    for (size_t i = 0; i < k->v[0].n; i++)
        out[i] = r_act(k->k, k->v[0].x[i]);
}

static void test_act(rng_state *r)
{
    const size_t n = 1001;
    for (int a = 0; a < 3; a++) {
        const act_kind k = a == 0 ? ACT_GELU : a == 1 ? ACT_SILU : ACT_SOFTPLUS;
        var v[1] = {{0}};
        /* softplus around its threshold 20 too */
        var_init(&v[0], "in", n, r, k == ACT_SOFTPLUS ? -25 : -8, k == ACT_SOFTPLUS ? 30 : 8);
        double *gd;
        float *g = upstream(r, n, &gd);
        act_ctx ctx = {v, k};
        numeric_grads(v, 1, f_act, &ctx, n, gd);
        var_grad_alloc(&v[0], r);
        act_backward(v[0].d, g, v[0].f, n, k);
        char what[64];
        snprintf(what, sizeof what, "%s (n %zu)", act_name(k), n);
        check_vars(what, v, 1, &g_worst_op);
        free(g), free(gd);
        vars_free(v, 1);
    }
}

typedef struct {
    var *v;
    size_t rows;
    int Hd, E;
    act_kind act;
} gate_ctx;

static void f_gate(double *out, const void *c)
{
    const gate_ctx *k = c;
    const int ni = k->Hd - k->E;
    for (size_t r = 0; r < k->rows; r++)
        for (int j = 0; j < k->Hd; j++) {
            const double *u = k->v[0].x + r * 2 * k->Hd;
            const double other = j < ni ? u[k->Hd + j] : k->v[1].x[r * k->E + j - ni];
            out[r * k->Hd + j] = r_act(k->act, u[j]) * other;
        }
}

/* The gate: the c columns of u get no gradient from it (the mixer's backward fills them).
 * gate_backward works in 256-column chunks split where the identity half ends (ni = Hd - E):
 * Hd 300 puts that split inside the first chunk (E 77) and inside the second (E 20). */
static void test_gate_case(rng_state *r, size_t rows, int Hd, int E)
{
    const size_t ld_dv = (size_t)Hd + 2;
    for (int a = 0; a < 2; a++) {
        var v[2] = {{0}};
        var_init(&v[0], "u", rows * 2 * Hd, r, -3, 3);
        var_init(&v[1], "m", rows * E, r, -2, 2);
        double *gd;
        float *g = upstream(r, rows * Hd, &gd);
        gate_ctx ctx = {v, rows, Hd, E, a ? ACT_SILU : ACT_GELU};
        numeric_grads(v, 2, f_gate, &ctx, rows * Hd, gd);
        var_grad_alloc(&v[0], r);
        var_grad_alloc(&v[1], r);
        float *gs = to_strided(g, rows, Hd, ld_dv);
        gate_backward(v[0].d, v[1].d, gs, ld_dv, v[0].f, v[1].f, rows, Hd, E, ctx.act);
        char name[64];
        snprintf(name, sizeof name, "gate %s (rows %zu, Hd %d, E %d)", a ? "silu" : "gelu", rows, Hd, E);
        check_vars(name, v, 2, &g_worst_op);
        free(g), free(gd), free(gs);
        vars_free(v, 2);
    }
}

static void test_gate(rng_state *r)
{
    test_gate_case(r, 23, 11, 7);
    test_gate_case(r, 3, 300, 77);
    test_gate_case(r, 3, 300, 20);
}

typedef struct {
    var *v;
    int B, H, W, C, K;
} dw_ctx;

static void f_dwconv(double *out, const void *c)
{
    const dw_ctx *k = c;
    r_dwconv(out, k->v[0].x, (size_t)k->C, k->v[1].x, k->v[2].x, k->B, k->H, k->W, k->C, k->K);
}

static void test_dwconv_case(rng_state *r, int B, int H, int W, int C, int K)
{
    const size_t px = (size_t)B * H * W, ld_in = (size_t)C + 3, ld_din = (size_t)C + 2;
    var v[3] = {{0}};
    var_init(&v[0], "in", px * C, r, -1, 1);
    var_init(&v[1], "w", (size_t)C * K * K, r, -1, 1);
    var_init(&v[2], "b", (size_t)C, r, -1, 1);
    double *gd;
    float *g = upstream(r, px * C, &gd);
    dw_ctx ctx = {v, B, H, W, C, K};
    numeric_grads(v, 3, f_dwconv, &ctx, px * C, gd);
    for (int k = 0; k < 3; k++)
        var_grad_alloc(&v[k], r);
    float *xs = to_strided(v[0].f, px, C, ld_in), *ds = to_strided(v[0].d, px, C, ld_din);
    const size_t nws = dwconv_backward_workspace_floats(B, H, W, C, K);
    float *ws = alloc_guarded(nws);
    dwconv_backward(ds, ld_din, v[1].d, v[2].d, g, xs, ld_in, v[1].f, B, H, W, C, K, ws);
    CHECK(from_strided(v[0].d, ds, px, C, ld_din) && guard_intact(ws, nws), "dwconv backward wrote outside its buffers");
    char what[96];
    snprintf(what, sizeof what, "dwconv B%d %dx%d C%d K%d (strided)", B, H, W, C, K);
    check_vars(what, v, 3, &g_worst_op);
    free(xs), free(ds), free(ws), free(g), free(gd);
    vars_free(v, 3);
}

static void test_dwconv(rng_state *r)
{
    test_dwconv_case(r, 2, 5, 7, 13, 3);
    test_dwconv_case(r, 1, 9, 11, 13, 7);
    test_dwconv_case(r, 1, 3, 4, 9, 5); /* kernel taller and wider than the image */
    test_dwconv_case(r, 2, 3, 5, 17, 1);
}

typedef struct {
    var *v;
    conv2d_shape s;
    int B, H, W;
} conv_ctx;

static void f_conv2d(double *out, const void *c)
{
    const conv_ctx *k = c;
    const conv2d_shape *s = &k->s;
    const int Ho = conv2d_out_size(s, k->H), Wo = conv2d_out_size(s, k->W);
    const double *x = k->v[0].x, *w = k->v[1].x, *b = k->v[2].x;
    for (int bb = 0; bb < k->B; bb++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int co = 0; co < s->cout; co++) {
                    double acc = b[co];
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->k; kh++)
                            for (int kw = 0; kw < s->k; kw++) {
                                int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih >= 0 && ih < k->H && iw >= 0 && iw < k->W)
                                    acc += w[(((size_t)co * s->cin + ci) * s->k + kh) * s->k + kw] *
                                           x[(((size_t)bb * k->H + ih) * k->W + iw) * s->cin + ci];
                            }
                    out[(((size_t)bb * Ho + oh) * Wo + ow) * s->cout + co] = acc;
                }
}

/* Dense convs: the stem's (few columns: the forward's direct kernel), im2col ones, a patch
 * embed, stride 1; once with a workspace of a few pixels so the chunks are many. */
static void test_conv2d(rng_state *r)
{
    const struct {
        int cin, cout, k, stride, pad, B, H, W, small_ws;
    } cs[] = {{3, 13, 3, 2, 1, 2, 9, 11, 0}, {5, 7, 3, 2, 1, 1, 9, 7, 0}, {3, 10, 4, 4, 0, 1, 12, 8, 0},
              {13, 11, 3, 1, 1, 1, 5, 7, 0}, {13, 11, 3, 1, 1, 1, 5, 7, 1}};
    for (size_t q = 0; q < sizeof cs / sizeof cs[0]; q++) {
        conv_ctx ctx = {NULL, {cs[q].cin, cs[q].cout, cs[q].k, cs[q].stride, cs[q].pad}, cs[q].B, cs[q].H, cs[q].W};
        const int Ho = conv2d_out_size(&ctx.s, ctx.H), Wo = conv2d_out_size(&ctx.s, ctx.W);
        if (Ho < 1 || Wo < 1)
            continue;
        const size_t nin = (size_t)ctx.B * ctx.H * ctx.W * ctx.s.cin, rows = (size_t)ctx.B * Ho * Wo;
        const size_t kcols = (size_t)ctx.s.cin * ctx.s.k * ctx.s.k, nout = rows * ctx.s.cout;
        var v[3] = {{0}};
        var_init(&v[0], "in", nin, r, -1, 1);
        var_init(&v[1], "w", (size_t)ctx.s.cout * kcols, r, -0.5, 0.5);
        var_init(&v[2], "b", (size_t)ctx.s.cout, r, -1, 1);
        ctx.v = v;
        double *gd;
        float *g = upstream(r, nout, &gd);
        numeric_grads(v, 3, f_conv2d, &ctx, nout, gd);
        for (int k = 0; k < 3; k++)
            var_grad_alloc(&v[k], r);
        const size_t nws = cs[q].small_ws ? 2 * kcols * 5 : conv2d_backward_workspace_floats(&ctx.s, rows, 2);
        float *ws = alloc_guarded(nws);
        conv2d_backward(v[0].d, v[1].d, v[2].d, g, v[0].f, v[1].f, &ctx.s, ctx.B, ctx.H, ctx.W, ws, nws, 2);
        CHECK(guard_intact(ws, nws), "conv2d backward wrote past its workspace");
        char what[96];
        snprintf(what, sizeof what, "conv2d %d->%d k%d s%d p%d %dx%d%s", ctx.s.cin, ctx.s.cout, ctx.s.k, ctx.s.stride,
                 ctx.s.pad, ctx.H, ctx.W, cs[q].small_ws ? " (5-pixel chunks)" : "");
        check_vars(what, v, 3, &g_worst_op);
        free(ws), free(g), free(gd);
        vars_free(v, 3);
    }
}

typedef struct {
    var *v;
    int B, h, w, C, kind; /* 0 merge_2x2, 1 meanpool, 2 insert_token, 3 copy_rows, 4 scale */
    size_t at;
} lay_ctx;

static void f_layout(double *out, const void *c)
{
    const lay_ctx *k = c;
    const double *x = k->v[0].x;
    const int B = k->B, C = k->C;
    if (k->kind == 0) {
        const int ho = k->h / 2, wo = k->w / 2, di[4] = {0, 1, 0, 1}, dj[4] = {0, 0, 1, 1};
        for (int b = 0; b < B; b++)
            for (int i = 0; i < ho; i++)
                for (int j = 0; j < wo; j++)
                    for (int q = 0; q < 4; q++)
                        for (int cc = 0; cc < C; cc++)
                            out[((((size_t)b * ho + i) * wo + j) * 4 + q) * C + cc] =
                                x[(((size_t)b * k->h + 2 * i + di[q]) * k->w + 2 * j + dj[q]) * C + cc];
    } else if (k->kind == 1) {
        const size_t L = (size_t)k->h * k->w;
        for (int b = 0; b < B; b++)
            for (int cc = 0; cc < C; cc++) {
                double s = 0;
                for (size_t t = 0; t < L; t++)
                    s += x[((size_t)b * L + t) * C + cc];
                out[(size_t)b * C + cc] = s / (double)L;
            }
    } else if (k->kind == 2) {
        const size_t L = (size_t)k->w, seq = L + 1;
        for (int b = 0; b < B; b++)
            for (size_t t = 0; t < seq; t++)
                for (int cc = 0; cc < C; cc++) {
                    const double src = t == k->at ? k->v[1].x[cc] : x[((size_t)b * L + (t < k->at ? t : t - 1)) * C + cc];
                    out[((size_t)b * seq + t) * C + cc] = src + k->v[2].x[t * C + cc];
                }
    } else {
        for (size_t i = 0; i < k->v[0].n; i++)
            out[i] = k->kind == 3 ? x[i] : 0.37 * x[i];
    }
}

static void test_layout(rng_state *r)
{
    for (int kind = 0; kind < 5; kind++) {
        lay_ctx ctx = {NULL, 2, 5, 7, 3, kind, 0};
        var v[3] = {{0}};
        int nv = 1;
        size_t nout = 0;
        const char *what = "";
        if (kind == 0) {
            var_init(&v[0], "x", (size_t)2 * 5 * 7 * 3, r, -1, 1);
            nout = (size_t)2 * 2 * 3 * 4 * 3, what = "merge_2x2 (B 2, 5x7, C 3: odd row and column dropped)";
        } else if (kind == 1) {
            ctx.C = 13;
            var_init(&v[0], "in", (size_t)2 * 35 * 13, r, -1, 1);
            nout = 2 * 13, what = "meanpool (B 2, L 35, C 13)";
        } else if (kind == 2) {
            ctx.h = 1, ctx.w = 9, ctx.C = 5, ctx.at = 4, nv = 3;
            var_init(&v[0], "in", (size_t)2 * 9 * 5, r, -1, 1);
            var_init(&v[1], "tok", 5, r, -1, 1);
            var_init(&v[2], "pos", (size_t)10 * 5, r, -1, 1);
            nout = (size_t)2 * 10 * 5, what = "insert_token (B 2, L 9 -> 10, at 4, C 5)";
        } else {
            var_init(&v[0], "x", 31, r, -1, 1);
            nout = 31, what = kind == 3 ? "copy_rows (31)" : "scale (31, s 0.37)";
        }
        ctx.v = v;
        double *gd;
        float *g = upstream(r, nout, &gd);
        numeric_grads(v, nv, f_layout, &ctx, nout, gd);
        for (int k = 0; k < nv; k++)
            var_grad_alloc(&v[k], r);
        if (kind == 0)
            merge_2x2_backward(v[0].d, g, 2, 5, 7, 3);
        else if (kind == 1)
            meanpool_backward(v[0].d, g, 2, 35, 13);
        else if (kind == 2)
            insert_token_backward(v[0].d, v[1].d, v[2].d, g, 2, 9, 4, 5);
        else if (kind == 3)
            copy_rows_backward(v[0].d, 10, g, 10, 10, 3), copy_rows_backward(v[0].d + 30, 1, g + 30, 1, 1, 1);
        else
            scale_backward(v[0].d, g, 31, 0.37f);
        check_vars(what, v, nv, &g_worst_op);
        free(g), free(gd);
        vars_free(v, nv);
    }
}

typedef struct {
    var *v;
    int B, E, K, reverse;
    size_t L;
} c1_ctx;

static void f_conv1d(double *out, const void *c)
{
    const c1_ctx *k = c;
    r_conv1d_silu(out, k->v[0].x, (size_t)k->E, k->v[1].x, k->v[2].x, k->B, k->L, k->E, k->K, k->reverse);
}

/* The causal conv1d + SiLU, both directions, E over two channel blocks, strided x and d_x. */
static void test_conv1d(rng_state *r)
{
    const int B = 2, E = 21, K = SSM_CONV_K;
    const size_t L = 37, ld_x = (size_t)E + 3, ld_dx = (size_t)E + 2;
    for (int rev = 0; rev < 2; rev++) {
        var v[3] = {{0}};
        var_init(&v[0], "x", (size_t)B * L * E, r, -2, 2);
        var_init(&v[1], "w", (size_t)E * K, r, -0.7, 0.7);
        var_init(&v[2], "b", (size_t)E, r, -0.5, 0.5);
        double *gd;
        float *g = upstream(r, (size_t)B * L * E, &gd);
        c1_ctx ctx = {v, B, E, K, rev, L};
        numeric_grads(v, 3, f_conv1d, &ctx, (size_t)B * L * E, gd);
        for (int k = 0; k < 3; k++)
            var_grad_alloc(&v[k], r);
        float *xs = to_strided(v[0].f, (size_t)B * L, E, ld_x), *ds = to_strided(v[0].d, (size_t)B * L, E, ld_dx);
        ssm_conv1d_silu_backward(ds, ld_dx, v[1].d, v[2].d, g, xs, ld_x, v[1].f, v[2].f, B, L, E, K, rev);
        CHECK(from_strided(v[0].d, ds, (size_t)B * L, E, ld_dx), "conv1d backward wrote outside its rows");
        check_vars(rev ? "conv1d+silu reversed (B 2, L 37, E 21)" : "conv1d+silu (B 2, L 37, E 21)", v, 3, &g_worst_op);
        free(xs), free(ds), free(g), free(gd);
        vars_free(v, 3);
    }
}

typedef struct {
    var *v; /* u, Δ_pre (or Δ), xdbl, A_log, D */
    int B, H, W, E, N, R, col, rev, softplus;
} scan_ctx;

static void f_scan(double *out, const void *c)
{
    const scan_ctx *k = c;
    const size_t n = (size_t)k->B * k->H * k->W * k->E;
    double *delta = malloc(n * sizeof *delta);
    for (size_t i = 0; i < n; i++)
        delta[i] = k->softplus ? r_softplus(k->v[1].x[i]) : k->v[1].x[i];
    memset(out, 0, n * sizeof *out);
    r_scan(out, k->v[0].x, delta, k->v[2].x, (size_t)k->R + 2 * k->N, k->R, k->v[3].x, k->v[4].x, k->B, k->H, k->W,
           k->E, k->N, k->col, k->rev);
    free(delta);
}

/* The scan core alone, over three chunks (64, 64, 15 steps), in every order and direction, E over
 * two blocks of lanes (8 + 2); Δ through the softplus (the mixers' way) and as given; two
 * sequences over 64 + 1 steps. */
static void test_scan(rng_state *r)
{
    const struct {
        int B, H, W, col, rev, softplus;
    } vs[] = {{2, 5, 13, 0, 0, 1}, {1, 11, 13, 0, 0, 1}, {1, 11, 13, 1, 0, 1},
              {1, 11, 13, 0, 1, 1}, {1, 11, 13, 1, 1, 1}, {1, 11, 13, 0, 0, 0}};
    const int E = 10, N = 4, R = 2;
    for (size_t q = 0; q < sizeof vs / sizeof vs[0]; q++) {
        const int B = vs[q].B, H = vs[q].H, W = vs[q].W;
        const size_t L = (size_t)H * W, n = (size_t)B * L * E, ldx = (size_t)R + 2 * N;
        var v[5] = {{0}};
        var_init(&v[0], "u", n, r, -2, 2);
        if (vs[q].softplus)
            var_init(&v[1], "delta_pre", n, r, -5, -1);
        else
            var_init(&v[1], "delta", n, r, 0.001, 0.3);
        var_init(&v[2], "xdbl", (size_t)B * L * ldx, r, -1, 1);
        var_init(&v[3], "A_log", (size_t)E * N, r, -1, 1.5);
        var_init(&v[4], "D", (size_t)E, r, -1, 1);
        double *gd;
        float *g = upstream(r, n, &gd);
        scan_ctx ctx = {v, B, H, W, E, N, R, vs[q].col, vs[q].rev, vs[q].softplus};
        numeric_grads(v, 5, f_scan, &ctx, n, gd);
        /* the scan reads no dt column of xdbl: those stay as the prefill left them, as the reference says */
        for (int k = 0; k < 5; k++)
            var_grad_alloc(&v[k], r);
        float *delta = alloc_guarded(n), *y = alloc_guarded(n), *st = alloc_guarded(ssm_states_floats(B, L, E, N));
        if (vs[q].softplus)
            act_forward(delta, v[1].f, n, ACT_SOFTPLUS);
        else
            memcpy(delta, v[1].f, n * sizeof *delta);
        float *fws = malloc(ssm_scan_core_workspace(B, L, E, N) * sizeof *fws);
        const ssm_order order = vs[q].col ? SSM_COL_MAJOR : SSM_ROW_MAJOR;
        ssm_scan_core(y, st, 0, v[0].f, delta, v[2].f, ldx, R, v[3].f, v[4].f, B, H, W, E, N, order, vs[q].rev, fws);
        const int threads = omp_get_max_threads();
        const size_t nws = ssm_scan_core_backward_workspace(B, L, E, N, threads);
        float *ws = alloc_guarded(nws);
        ssm_scan_core_backward(v[0].d, v[1].d, v[2].d, v[3].d, v[4].d, g, v[0].f, delta, v[2].f, ldx, R, v[3].f, v[4].f,
                               st, B, H, W, E, N, order, vs[q].rev, vs[q].softplus, ws, threads);
        CHECK(guard_intact(ws, nws), "scan backward wrote past its workspace");
        char what[96];
        snprintf(what, sizeof what, "scan B%d L%zu E%d N%d order %d reverse %d%s", B, L, E, N, vs[q].col, vs[q].rev,
                 vs[q].softplus ? " (softplus)" : "");
        check_vars(what, v, 5, &g_worst_op);
        free(delta), free(y), free(st), free(fws), free(ws), free(g), free(gd);
        vars_free(v, 5);
    }
}

/* A gradient that arrives only at the last step and fast decays (ā = e^-2 .. e^-5 a step): λ falls
 * through the subnormal floats (below 2^-126) within a few dozen steps. The scan backward flushes
 * them (vmath.h) because each costs an x86 core a microcode assist; the gradients must still match
 * the double reference, no gradient may come out subnormal, and the caller's floating-point mode
 * must be as it was. */
static void test_scan_subnormal(rng_state *r)
{
    const int B = 1, H = 1, W = 200, E = 8, N = 4, R = 2;
    const size_t L = (size_t)H * W, n = (size_t)B * L * E, ldx = (size_t)R + 2 * N;
    var v[5] = {{0}};
    var_init(&v[0], "u", n, r, -2, 2);
    var_init(&v[1], "delta", n, r, 0.5, 1.0);
    var_init(&v[2], "xdbl", (size_t)B * L * ldx, r, -1, 1);
    var_init(&v[3], "A_log", (size_t)E * N, r, 1.4, 1.6); /* A = -exp(A_log): -4.1 .. -5.0 */
    var_init(&v[4], "D", (size_t)E, r, -1, 1);
    double *gd;
    float *g = upstream(r, n, &gd);
    for (size_t i = 0; i < n - (size_t)E; i++) /* only the last token gets a gradient */
        g[i] = 0.0f, gd[i] = 0.0;
    scan_ctx ctx = {v, B, H, W, E, N, R, 0, 0, 0};
    numeric_grads(v, 5, f_scan, &ctx, n, gd);
    float *y = alloc_guarded(n), *st = alloc_guarded(ssm_states_floats(B, L, E, N));
    float *fws = malloc(ssm_scan_core_workspace(B, L, E, N) * sizeof *fws);
    ssm_scan_core(y, st, 0, v[0].f, v[1].f, v[2].f, ldx, R, v[3].f, v[4].f, B, H, W, E, N, SSM_ROW_MAJOR, 0, fws);
    const int threads = omp_get_max_threads();
    const size_t nws = ssm_scan_core_backward_workspace(B, L, E, N, threads);
    float *ws = alloc_guarded(nws);
    for (int k = 0; k < 5; k++)
        var_grad_alloc(&v[k], r);
    const unsigned mode = ml_flush_subnormals();
    ml_restore_fp_mode(mode);
    ssm_scan_core_backward(v[0].d, v[1].d, v[2].d, v[3].d, v[4].d, g, v[0].f, v[1].f, v[2].f, ldx, R, v[3].f,
                           v[4].f, st, B, H, W, E, N, SSM_ROW_MAJOR, 0, 0, ws, threads);
    const unsigned after = ml_flush_subnormals();
    ml_restore_fp_mode(after);
    CHECK(after == mode, "the scan backward left the floating-point mode changed (%#x, was %#x)", after, mode);
    check_vars("scan, decaying adjoint (B1 L200 E8 N4)", v, 5, &g_worst_op);
    /* again into zeroed buffers, to see what the backward itself writes. The adjoint at step t is
     * O(1) times the decay from t to the end, Π exp(Δ A) in double: count the (step, channel)
     * where even the slowest state's decay lies inside the subnormal range with a margin of 2^4
     * on each side, so that the case is known to pass through it */
    size_t below = 0, subnormal = 0, total = 0;
    for (int k = 0; k < 5; k++)
        memset(v[k].d, 0, v[k].n * sizeof *v[k].d);
    for (int e = 0; e < E; e++) {
        double logp[SSM_MAX_STATE] = {0};
        for (size_t t = L; t-- > 1;) {
            double best = -INFINITY;
            for (int q = 0; q < N; q++) {
                logp[q] += v[1].x[t * E + e] * -exp(v[3].x[(size_t)e * N + q]);
                best = logp[q] > best ? logp[q] : best;
            }
            below += best < -130 * log(2.0) && best > -145 * log(2.0);
        }
    }
    ssm_scan_core_backward(v[0].d, v[1].d, v[2].d, v[3].d, v[4].d, g, v[0].f, v[1].f, v[2].f, ldx, R, v[3].f,
                           v[4].f, st, B, H, W, E, N, SSM_ROW_MAJOR, 0, 0, ws, threads);
    for (int k = 0; k < 5; k++)
        for (size_t i = 0; i < v[k].n; i++, total++)
            subnormal += fpclassify(v[k].d[i]) == FP_SUBNORMAL;
    CHECK(below > 0, "the case never reaches the subnormal range: it cannot test the flush");
    CHECK(subnormal == 0, "%zu of %zu scan gradients came out subnormal", subnormal, total);
    printf("  %zu (step, channel) with a decay in 2^-145 .. 2^-130; %zu subnormal gradients in ours\n", below,
           subnormal);
    free(y), free(st), free(fws), free(ws), free(g), free(gd);
    vars_free(v, 5);
}

typedef struct {
    var *v;
    int B, E, HS, causal;
    size_t L;
} at_ctx;

static void f_attn(double *out, const void *c)
{
    const at_ctx *k = c;
    r_attn_core(out, k->v[0].x, k->B, k->L, k->E, k->HS, k->causal);
}

/* The attention core over two query blocks (64 + 3 rows), full and causal. */
static void test_attn_core(rng_state *r)
{
    const int B = 2, E = 8, HS = 4, NH = E / HS;
    const size_t L = 67, n = (size_t)B * L * E;
    for (int causal = 0; causal < 2; causal++) {
        var v[1] = {{0}};
        var_init(&v[0], "qkv", (size_t)B * L * 3 * E, r, -1.5, 1.5);
        double *gd;
        float *g = upstream(r, n, &gd);
        at_ctx ctx = {v, B, E, HS, causal, L};
        numeric_grads(v, 1, f_attn, &ctx, n, gd);
        var_grad_alloc(&v[0], r);
        const int threads = omp_get_max_threads();
        float *o = alloc_guarded(n), *lse = alloc_guarded((size_t)B * NH * L);
        float *fws = malloc(attn_core_workspace(B, L, E, HS, threads) * sizeof *fws);
        attn_core(o, lse, v[0].f, B, L, E, HS, causal, fws, threads);
        const size_t nws = attn_core_backward_workspace(B, L, E, HS, threads);
        float *ws = alloc_guarded(nws);
        attn_core_backward(v[0].d, g, v[0].f, o, lse, B, L, E, HS, causal, ws, threads);
        CHECK(guard_intact(ws, nws), "attention backward wrote past its workspace");
        check_vars(causal ? "attention core causal (B 2, L 67, E 8, HS 4)" : "attention core (B 2, L 67, E 8, HS 4)", v,
                   1, &g_worst_op);
        free(o), free(lse), free(fws), free(ws), free(g), free(gd);
        vars_free(v, 1);
    }
}

typedef struct {
    var *v;
    const int *labels;
    int B, NC;
    double s;
} xent_ctx;

static void f_xent(double *out, const void *c)
{
    const xent_ctx *k = c;
    double tot = 0;
    for (int b = 0; b < k->B; b++) {
        const double *x = k->v[0].x + (size_t)b * k->NC;
        double mx = -1e300, sum = 0;
        for (int j = 0; j < k->NC; j++)
            mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < k->NC; j++)
            sum += exp(x[j] - mx);
        double nll = 0, smooth = 0;
        for (int j = 0; j < k->NC; j++) {
            const double lp = x[j] - mx - log(sum);
            smooth -= lp / k->NC;
            if (j == k->labels[b])
                nll = -lp;
        }
        tot += (1 - k->s) * nll + k->s * smooth;
    }
    out[0] = tot / k->B;
}

/* Softmax cross-entropy, without and with label smoothing (timm's semantics). */
static void test_xent(rng_state *r)
{
    const int B = 5, NC = 7;
    int labels[5];
    for (int b = 0; b < B; b++)
        labels[b] = (int)(rng_uniform(r) * NC) % NC;
    for (int q = 0; q < 2; q++) {
        const double s = q ? 0.1 : 0.0;
        var v[1] = {{0}};
        var_init(&v[0], "logits", (size_t)B * NC, r, -4, 4);
        const double one = 1.0;
        xent_ctx ctx = {v, labels, B, NC, s};
        numeric_grads(v, 1, f_xent, &ctx, 1, &one);
        var_grad_alloc(&v[0], r);
        double ref;
        f_xent(&ref, &ctx);
        float loss = -1;
        softmax_xent(&loss, v[0].d, v[0].f, labels, B, NC, (float)s);
        CHECK(fabs(loss - ref) <= 1e-6 * fabs(ref), "softmax_xent loss %.9g, reference %.9g", loss, ref);
        float loss2 = -1;
        softmax_xent(&loss2, NULL, v[0].f, labels, B, NC, (float)s); /* the loss alone, for evaluation */
        CHECK(loss2 == loss, "softmax_xent without d_logits gives another loss");
        check_vars(q ? "softmax cross-entropy, smoothing 0.1 (B 5, 7 classes)" : "softmax cross-entropy (B 5, 7 classes)",
                   v, 1, &g_worst_op);
        vars_free(v, 1);
    }
}

/* ===========================================================================
 * The mixers and the block.
 * ========================================================================= */

/* Random parameter values that keep every term visible: no zero biases, no unit norms, Δ of
 * 0.02 .. 0.4 (dt bias in [-4, -1]), A_log around the upstream log(n+1) range. */
static void randomize_param(rng_state *r, const char *name, float *p, size_t n, int fan_in)
{
    double lo = -0.5, hi = 0.5;
    if (strstr(name, "A_log") || strstr(name, "A_b_log") || strstr(name, "A_logs"))
        lo = -1, hi = 1.5;
    else if (strstr(name, "dt_proj.bias") || strstr(name, "dt_proj_b.bias") || strstr(name, "dt_projs_bias"))
        lo = -4, hi = -1;
    else if (!strcmp(name, "D") || !strcmp(name, "D_b") || !strcmp(name, "Ds") || strstr(name, "mixer.D"))
        lo = 0.5, hi = 1.5;
    else if (strstr(name, "norm.weight"))
        lo = 0.6, hi = 1.4;
    else if (strstr(name, "weight") && !strstr(name, "conv") && fan_in > 0)
        lo = -1.5 / sqrt((double)fan_in), hi = -lo;
    rng_fill_uniform(r, p, n, lo, hi);
}

/* y (B,H,W,E) = the mixer on x (tokens ld_x apart), in double; p in param_specs order. */
static void r_mixer(double *y, const char *name, const mixer_config *c, const double *x, size_t ld_x,
                    double *const *p, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W, rows = (size_t)B * L, n = rows * E;
    if (!strcmp(name, "dwconv")) {
        r_dwconv(y, x, ld_x, p[0], p[1], B, H, W, E, c->kernel);
    } else if (!strcmp(name, "identity")) {
        for (size_t t = 0; t < rows; t++)
            for (int e = 0; e < E; e++)
                y[t * E + e] = x[t * ld_x + e];
    } else if (!strcmp(name, "ssm") || !strcmp(name, "ssm_bidir")) {
        const int dirs = strcmp(name, "ssm") ? 2 : 1;
        double *u = malloc(n * sizeof *u);
        memset(y, 0, n * sizeof *y);
        for (int d = 0; d < dirs; d++) {
            double *const *q = p + 7 * d;
            r_conv1d_silu(u, x, ld_x, q[0], q[1], B, L, E, SSM_CONV_K, d);
            r_direction(y, u, q[2], q[3], q[4], q[5], q[6], B, H, W, E, N, R, 0, d);
        }
        if (dirs == 2)
            for (size_t i = 0; i < n; i++)
                y[i] *= 0.5;
        free(u);
    } else if (!strcmp(name, "ssm_2d")) {
        double *u = malloc(n * sizeof *u), *s = calloc(n, sizeof *s);
        r_dwconv(u, x, ld_x, p[0], p[1], B, H, W, E, 3);
        for (size_t i = 0; i < n; i++)
            u[i] = r_silu(u[i]);
        for (int k = 0; k < 4; k++)
            r_direction(s, u, p[2] + (size_t)k * (R + 2 * N) * E, p[3] + (size_t)k * E * R, p[4] + (size_t)k * E,
                        p[5] + (size_t)k * E * N, p[6] + (size_t)k * E, B, H, W, E, N, R, k & 1, k >= 2);
        r_layernorm(y, s, p[7], p[8], rows, E, 1e-5);
        free(u), free(s);
    } else { /* attn, attn_causal */
        double *qkv = calloc(rows * 3 * E, sizeof *qkv), *o = malloc(n * sizeof *o);
        r_linear(qkv, x, ld_x, p[0], p[1], rows, E, 3 * E);
        r_attn_core(o, qkv, B, L, E, c->head_size, !strcmp(name, "attn_causal"));
        r_linear(y, o, (size_t)E, p[2], p[3], rows, E, E);
        free(qkv), free(o);
    }
}

typedef struct {
    var *v; /* input, then the parameters */
    const char *name;
    const mixer_config *cfg;
    int B, H, W, np;
} mix_ctx;

static void f_mixer(double *out, const void *c)
{
    const mix_ctx *k = c;
    double *p[MIXER_MAX_PARAMS];
    for (int i = 0; i < k->np; i++)
        p[i] = k->v[1 + i].x;
    r_mixer(out, k->name, k->cfg, k->v[0].x, (size_t)k->cfg->channels, p, k->B, k->H, k->W);
}

/* One mixer: the training forward against the inference forward (bit for bit) and the double
 * restatement; the backward (strided input and d_in, prefilled gradients) against central
 * differences; a second backward bit for bit the first; guards on every buffer. */
static void grad_mixer(rng_state *r, const char *name, int B, int H, int W, int E, int N, int R, int K, int HS)
{
    mixer_config cfg = mixer_config_default(E, E);
    cfg.d_state = N, cfg.dt_rank = R, cfg.kernel = K, cfg.head_size = HS, cfg.threads = omp_get_max_threads();
    mixer_instance mi;
    ml_status s = mixer_instance_random(&mi, name, &cfg, 77);
    CHECK(s == ML_OK, "%s: %s", name, ml_last_error());
    if (s != ML_OK)
        return;
    const mixer_ops *ops = mi.ops;
    const backend *be = &backend_cpu;
    const size_t L = (size_t)H * W, rows = (size_t)B * L, n = rows * E, ld_in = (size_t)E + 3, ld_din = (size_t)E + 5;
    var v[MAX_VARS] = {{0}};
    var_init(&v[0], "in", n, r, -1.5, 1.5);
    for (int i = 0; i < mi.nparams; i++) {
        const int fan = mi.specs[i].ndim >= 2 ? (int)mi.specs[i].shape[mi.specs[i].ndim - 1] : 0;
        randomize_param(r, mi.specs[i].name, mi.params[i], param_spec_numel(&mi.specs[i]), fan);
        var_wrap(&v[1 + i], mi.specs[i].name, mi.params[i], param_spec_numel(&mi.specs[i]));
    }
    const int nv = 1 + mi.nparams;
    double *gd;
    float *g = upstream(r, n, &gd);
    mix_ctx ctx = {v, name, &mi.cfg, B, H, W, mi.nparams};
    numeric_grads(v, nv, f_mixer, &ctx, n, gd);
    for (int k = 0; k < nv; k++)
        var_grad_alloc(&v[k], r);

    const float *const *P = (const float *const *)mi.params;
    const size_t nsav = mixer_saved_floats(ops, &mi.cfg, B, H, W), nws = ops->workspace_floats(be, &mi.cfg, B, H, W);
    const size_t nbws = ops->backward_workspace_floats(be, &mi.cfg, B, H, W);
    float *xs = to_strided(v[0].f, rows, E, ld_in), *y = alloc_guarded(n), *y0 = alloc_guarded(n);
    float *saved = alloc_guarded(nsav), *ws = alloc_guarded(nws), *bws = alloc_guarded(nbws);
    ops->forward(be, &mi.cfg, P, y0, NULL, xs, ld_in, ws, B, H, W);
    ops->forward(be, &mi.cfg, P, y, saved, xs, ld_in, ws, B, H, W);
    CHECK(memcmp(y, y0, n * sizeof *y) == 0, "%s: the training forward's output differs from inference", name);
    double *yref = malloc(n * sizeof *yref);
    f_mixer(yref, &ctx);
    const double ef = rel_err(y, yref, n);
    CHECK(ef <= TOL, "%s: forward rel err %.3g against the restatement", name, ef);

    /* two backwards from the same prefill: the second must match the first bit for bit */
    float *dsv[MAX_VARS];
    float *ds = NULL;
    for (int run = 0; run < 2; run++) {
        float *d_in = to_strided(v[0].pre, rows, E, ld_din);
        float *dp[MIXER_MAX_PARAMS];
        for (int i = 0; i < mi.nparams; i++) {
            dp[i] = alloc_guarded(v[1 + i].n);
            memcpy(dp[i], v[1 + i].pre, v[1 + i].n * sizeof(float));
        }
        ops->backward(be, &mi.cfg, P, dp, d_in, ld_din, g, xs, ld_in, saved, bws, B, H, W);
        if (run == 0) {
            ds = d_in;
            for (int i = 0; i < mi.nparams; i++)
                dsv[i] = dp[i];
        } else {
            int same = memcmp(d_in, ds, rows * ld_din * sizeof(float)) == 0;
            for (int i = 0; i < mi.nparams; i++) {
                same &= memcmp(dp[i], dsv[i], v[1 + i].n * sizeof(float)) == 0;
                free(dp[i]);
            }
            CHECK(same, "%s: two backwards on the same inputs differ", name);
            free(d_in);
        }
    }
    CHECK(from_strided(v[0].d, ds, rows, E, ld_din), "%s: backward wrote outside d_in's rows", name);
    for (int i = 0; i < mi.nparams; i++) {
        memcpy(v[1 + i].d, dsv[i], v[1 + i].n * sizeof(float));
        CHECK(guard_intact(dsv[i], v[1 + i].n), "%s: d_%s written past its end", name, v[1 + i].name);
        free(dsv[i]);
    }
    CHECK(guard_intact(y, n) && guard_intact(saved, nsav) && guard_intact(ws, nws) && guard_intact(bws, nbws),
          "%s wrote past its output, saved buffer or a workspace", name);
    char what[128];
    snprintf(what, sizeof what, "mixer %s B%d %dx%d E%d%s", name, B, H, W, E,
             !strncmp(name, "ssm", 3) ? (L > SSM_CHUNK ? " (several chunks)" : "") : "");
    check_vars(what, v, nv, &g_worst_mixer);
    free(ds), free(xs), free(y), free(y0), free(saved), free(ws), free(bws), free(g), free(gd), free(yref);
    vars_free(v, nv);
    mixer_instance_free(&mi);
}

static void test_mixers(rng_state *r)
{
    grad_mixer(r, "dwconv", 2, 5, 7, 13, 0, 0, 7, 0);
    grad_mixer(r, "dwconv", 1, 4, 3, 9, 0, 0, 5, 0);
    grad_mixer(r, "identity", 2, 3, 5, 7, 0, 0, 0, 0);
    grad_mixer(r, "ssm", 2, 5, 7, 13, 5, 3, 0, 0);
    grad_mixer(r, "ssm", 1, 9, 15, 10, 4, 2, 0, 0); /* 135 steps: three chunks */
    grad_mixer(r, "ssm_bidir", 2, 3, 7, 11, 3, 2, 0, 0);
    grad_mixer(r, "ssm_2d", 2, 5, 3, 9, 3, 2, 0, 0);
    grad_mixer(r, "ssm_2d", 1, 7, 11, 6, 2, 1, 0, 0); /* 77 steps: two chunks in each order */
    grad_mixer(r, "attn", 2, 5, 7, 12, 0, 0, 0, 4);
    grad_mixer(r, "attn_causal", 2, 5, 7, 12, 0, 0, 0, 4);
    grad_mixer(r, "attn_causal", 1, 9, 8, 6, 0, 0, 0, 3); /* 72 tokens: two query blocks */
}

typedef struct {
    var *v; /* x, then the block's parameters in block_param_specs order */
    const block_config *bc;
    int B, H, W;
} blk_ctx;

/* The block in double: t = norm(x); u = t·fc1ᵀ + b1; m = mixer(u[:, 2Hd-E:]); v = act(g)·[i | m];
 * out = x + v·fc2ᵀ + b2. The parameters in block_param_specs order. */
static void f_block(double *out, const void *c)
{
    const blk_ctx *k = c;
    const block_config *bc = k->bc;
    const int C = bc->dim, Hd = bc->hidden, E = bc->conv_ch, ni = Hd - E;
    const size_t rows = (size_t)k->B * k->H * k->W;
    const double *x = k->v[0].x;
    int q = 0;
    const double *nw = k->v[1 + q++].x, *nb = bc->norm == NORM_LAYER ? k->v[1 + q++].x : NULL;
    const double *w1 = k->v[1 + q++].x, *b1 = bc->fc_bias ? k->v[1 + q++].x : NULL;
    double *mp[MIXER_MAX_PARAMS];
    const int nm = bc->mixer->param_specs(&bc->mcfg, NULL);
    for (int i = 0; i < nm; i++)
        mp[i] = k->v[1 + q++].x;
    const double *w2 = k->v[1 + q++].x, *b2 = bc->fc_bias ? k->v[1 + q++].x : NULL;
    double *t = malloc(rows * C * sizeof *t), *u = calloc(rows * 2 * Hd, sizeof *u);
    double *m = malloc(rows * E * sizeof *m), *vv = malloc(rows * Hd * sizeof *vv);
    if (bc->norm == NORM_RMS)
        r_rmsnorm(t, x, nw, rows, C, bc->norm_eps);
    else
        r_layernorm(t, x, nw, nb, rows, C, bc->norm_eps);
    r_linear(u, t, (size_t)C, w1, b1, rows, C, 2 * Hd);
    r_mixer(m, bc->mixer->name, &bc->mcfg, u + (2 * Hd - E), 2 * (size_t)Hd, mp, k->B, k->H, k->W);
    for (size_t r = 0; r < rows; r++)
        for (int j = 0; j < Hd; j++) {
            const double *ur = u + r * 2 * Hd;
            vv[r * Hd + j] = r_act(bc->act, ur[j]) * (j < ni ? ur[Hd + j] : m[r * E + j - ni]);
        }
    r_linear(out, vv, (size_t)Hd, w2, b2, rows, Hd, C);
    for (size_t i = 0; i < rows * C; i++)
        out[i] += x[i];
    free(t), free(u), free(m), free(vv);
}

/* Drop path on a block of batch 2 (sample 0 dropped, sample 1 kept with scale 2.5): the forward
 * adds s_b times the path (yref - x_in) to x_in; the backward's parameter gradients are, bit for
 * bit, those of the undropped block under the upstream gradient s_b·g, and its input gradient is g
 * plus that block's path gradient. */
static void check_drop_path(const backend *be, const block_config *bc, const block_params *bp, const var *v, int np,
                            const block_train_state *st, float *fws, float *bws, const float *g, const double *yref,
                            int B, int H, int W)
{
    const size_t n = (size_t)B * H * W * bc->dim, per = n / (size_t)B;
    const float scale[2] = {0.0f, 2.5f};
    float *x = malloc(n * sizeof *x), *da = malloc(n * sizeof *da), *db = malloc(n * sizeof *db);
    double *want = malloc(n * sizeof *want);
    float *ga[BLOCK_MAX_PARAMS], *gb[BLOCK_MAX_PARAMS];
    for (int i = 0; i < np; i++) {
        ga[i] = calloc(v[1 + i].n, sizeof(float));
        gb[i] = calloc(v[1 + i].n, sizeof(float));
    }
    memcpy(x, v[0].f, n * sizeof *x);
    block_forward_train(be, bc, bp, x, B, H, W, st, scale, fws);
    for (size_t i = 0; i < n; i++)
        want[i] = v[0].f[i] + scale[i / per] * (yref[i] - v[0].f[i]);
    CHECK(memcmp(x, v[0].f, per * sizeof *x) == 0, "drop path: the dropped sample's output is not its input");
    CHECK(rel_err(x, want, n) <= TOL, "drop path: forward rel err %.3g", rel_err(x, want, n));
    block_params pa, pb;
    block_bind(bc, ga, &pa);
    block_bind(bc, gb, &pb);
    memcpy(da, g, n * sizeof *da);
    block_backward(be, bc, bp, &pa, da, st, scale, bws, B, H, W);
    for (size_t i = 0; i < n; i++)
        db[i] = g[i] * scale[i / per];
    float *gs = malloc(n * sizeof *gs);
    memcpy(gs, db, n * sizeof *gs);
    block_backward(be, bc, bp, &pb, db, st, NULL, bws, B, H, W);
    int same = 1;
    for (int i = 0; i < np; i++)
        same &= memcmp(ga[i], gb[i], v[1 + i].n * sizeof(float)) == 0;
    CHECK(same, "drop path: parameter gradients differ from the undropped block's under s·g");
    double *path = malloc(n * sizeof *path);
    for (size_t i = 0; i < n; i++) /* g + ∂path(s·g) */
        path[i] = (double)g[i] + ((double)db[i] - (double)gs[i]);
    CHECK(rel_err(da, path, n) <= TOL, "drop path: input gradient rel err %.3g", rel_err(da, path, n));
    for (int i = 0; i < np; i++)
        free(ga[i]), free(gb[i]);
    free(x), free(da), free(db), free(want), free(gs), free(path);
}

/* The Gated CNN block with a mixer: block_forward_train against the double block, block_backward
 * (d_x in place: d_x_out in, d_x_in = d_x_out + path out) against central differences. */
static void grad_block(rng_state *r, const mixer_ops *mixer, int B, int H, int W, int C, double ratio, act_kind act,
                       norm_kind nk, int fc_bias)
{
    mixer_config mc = mixer_config_default(C, 0);
    mc.kernel = 3, mc.d_state = 3, mc.dt_rank = 2, mc.head_size = 3, mc.threads = omp_get_max_threads();
    block_config bc = block_config_make(C, 8.0 / 3.0, ratio, act, nk, 1e-6f, fc_bias, mixer, &mc);
    CHECK(block_config_validate(&bc) == ML_OK, "block config: %s", ml_last_error());
    const backend *be = &backend_cpu;
    const size_t rows = (size_t)B * H * W, n = rows * C;
    param_spec specs[BLOCK_MAX_PARAMS];
    const int np = block_param_specs(&bc, specs, NULL);
    var v[MAX_VARS] = {{0}};
    var_init(&v[0], "x", n, r, -2, 2);
    for (int i = 0; i < np; i++) {
        const size_t k = param_spec_numel(&specs[i]);
        var_init(&v[1 + i], specs[i].name, k, r, 0, 0);
        const int fan = specs[i].ndim >= 2 ? (int)specs[i].shape[specs[i].ndim - 1] : 0;
        randomize_param(r, specs[i].name, v[1 + i].f, k, fan);
        for (size_t j = 0; j < k; j++)
            v[1 + i].x[j] = v[1 + i].f[j];
    }
    const int nv = 1 + np;
    double *gd;
    float *g = upstream(r, n, &gd);
    blk_ctx ctx = {.v = v, .bc = &bc, .B = B, .H = H, .W = W};
    numeric_grads(v, nv, f_block, &ctx, n, gd);
    for (int k = 1; k < nv; k++)
        var_grad_alloc(&v[k], r);
    float *tp[BLOCK_MAX_PARAMS], *tg[BLOCK_MAX_PARAMS];
    for (int i = 0; i < np; i++)
        tp[i] = v[1 + i].f, tg[i] = v[1 + i].d;
    block_params bp, dbp;
    block_bind(&bc, tp, &bp);
    block_bind(&bc, tg, &dbp);

    const block_train_plan pl = block_train_sizes(be, &bc, B, H, W);
    float *state = alloc_guarded(pl.state), *fws = alloc_guarded(pl.fwd_ws), *bws = alloc_guarded(pl.bwd_ws);
    block_train_state st;
    block_train_bind(&bc, &pl, state, &st);
    float *x = alloc_guarded(n);
    memcpy(x, v[0].f, n * sizeof *x);
    block_forward_train(be, &bc, &bp, x, B, H, W, &st, NULL, fws);
    double *yref = malloc(n * sizeof *yref);
    f_block(yref, &ctx);
    const double ef = rel_err(x, yref, n);
    CHECK(ef <= TOL, "block %s: training forward rel err %.3g", mixer->name, ef);
    CHECK(memcmp(st.x, v[0].f, n * sizeof(float)) == 0, "block %s: the kept input differs", mixer->name);
    /* d_x starts as d_x_out = g and leaves as d_x_in: no prefill to subtract there */
    v[0].d = alloc_guarded(n);
    v[0].pre = calloc(n, sizeof(float));
    memcpy(v[0].d, g, n * sizeof(float));
    block_backward(be, &bc, &bp, &dbp, v[0].d, &st, NULL, bws, B, H, W);
    CHECK(guard_intact(state, pl.state) && guard_intact(fws, pl.fwd_ws) && guard_intact(bws, pl.bwd_ws) &&
              guard_intact(x, n),
          "block %s wrote past its state or a workspace", mixer->name);
    /* the same backward again, from the same prefill, bit for bit */
    float *d2 = alloc_guarded(n), *tg2[BLOCK_MAX_PARAMS];
    memcpy(d2, g, n * sizeof *d2);
    for (int i = 0; i < np; i++) {
        tg2[i] = malloc(v[1 + i].n * sizeof(float));
        memcpy(tg2[i], v[1 + i].pre, v[1 + i].n * sizeof(float));
    }
    block_params dbp2;
    block_bind(&bc, tg2, &dbp2);
    block_backward(be, &bc, &bp, &dbp2, d2, &st, NULL, bws, B, H, W);
    int same = memcmp(d2, v[0].d, n * sizeof *d2) == 0;
    for (int i = 0; i < np; i++) {
        same &= memcmp(tg2[i], v[1 + i].d, v[1 + i].n * sizeof(float)) == 0;
        free(tg2[i]);
    }
    CHECK(same, "block %s: two backwards on the same inputs differ", mixer->name);
    char what[128];
    snprintf(what, sizeof what, "block %s C%d Hd%d E%d %s %s%s", mixer->name, C, bc.hidden, bc.conv_ch, act_name(act),
             norm_kind_name(nk), fc_bias ? "" : " no bias");
    check_vars(what, v, nv, &g_worst_block);
    if (B == 2)
        check_drop_path(be, &bc, &bp, v, np, &st, fws, bws, g, yref, B, H, W);
    free(state), free(fws), free(bws), free(x), free(yref), free(g), free(gd), free(d2);
    vars_free(v, nv);
}

static void test_blocks(rng_state *r)
{
    grad_block(r, &mixer_dwconv, 2, 5, 7, 13, 1.0, ACT_GELU, NORM_LAYER, 1);
    grad_block(r, &mixer_identity, 1, 3, 5, 11, 0.5, ACT_GELU, NORM_LAYER, 1); /* non-empty i branch */
    grad_block(r, mixer_find("ssm"), 1, 3, 7, 7, 0.75, ACT_SILU, NORM_RMS, 0);  /* Vim's style: RMSNorm, SiLU, no bias */
    grad_block(r, mixer_find("attn"), 1, 3, 5, 9, 1.0, ACT_GELU, NORM_LAYER, 1);
}

/* ===========================================================================
 * Golden gradients: PyTorch autograd in float64 on the mixers' float64
 * restatements (scripts/make_grad_fixtures.py).
 * ========================================================================= */

static const struct {
    const char *file, *mixer;
    int head_size;
} grad_cases[] = {
    {"dwconv_a", "dwconv", 32},     {"identity_a", "identity", 32}, {"ssm_a", "ssm", 32},
    {"ssm_b", "ssm", 32},           {"ssm_bidir_a", "ssm_bidir", 32}, {"ssm_2d_a", "ssm_2d", 32},
    {"attn_a", "attn", 4},          {"attn_causal_a", "attn_causal", 3},
};

static void test_golden(const char *dir)
{
    for (size_t c = 0; c < sizeof grad_cases / sizeof grad_cases[0]; c++) {
        char path[600];
        snprintf(path, sizeof path, "%s/grads/%s.safetensors", dir, grad_cases[c].file);
        st_file f;
        if (st_open(&f, path) != ML_OK) {
            CHECK(0, "grad fixture: %s", ml_last_error());
            continue;
        }
        const st_tensor *in = st_find(&f, "input");
        CHECK(in && in->ndim == 4, "%s: input", path);
        if (!in || in->ndim != 4) {
            st_close(&f);
            continue;
        }
        const int B = (int)in->shape[0], H = (int)in->shape[1], W = (int)in->shape[2], E = (int)in->shape[3];
        static const char *const allowed[] = {"input", "output", "grad_output", "grad_input", "grad.*", NULL};
        mixer_instance mi;
        ml_status s = mixer_instance_load(&mi, grad_cases[c].mixer, &f, E, grad_cases[c].head_size, allowed);
        CHECK(s == ML_OK, "%s: %s", path, ml_last_error());
        if (s == ML_OK) {
            const size_t n = in->numel;
            float *x = malloc(n * sizeof *x), *go = malloc(n * sizeof *go), *ref = malloc(n * sizeof *ref);
            float *y = alloc_guarded(n), *gi = alloc_guarded(n);
            const size_t nsav = mixer_instance_saved_floats(&mi, B, H, W), nws = mixer_instance_workspace(&mi, B, H, W);
            const size_t nbws = mixer_instance_backward_workspace(&mi, B, H, W);
            float *saved = alloc_guarded(nsav), *ws = alloc_guarded(nws), *bws = alloc_guarded(nbws);
            st_read_f32(&f, in, x);
            CHECK(st_load(&f, "grad_output", 4, in->shape, go) == ML_OK, "%s: %s", path, ml_last_error());
            mixer_instance_run_train(&mi, y, saved, x, B, H, W, ws);
            CHECK(st_load(&f, "output", 4, in->shape, ref) == ML_OK, "%s: %s", path, ml_last_error());
            double e = rel_err_f(y, ref, n), worst = e;
            CHECK(e <= TOL, "%s: output rel err %.3g", path, e);
            float *dp[MIXER_MAX_PARAMS];
            memset(gi, 0, n * sizeof *gi);
            for (int i = 0; i < mi.nparams; i++)
                dp[i] = calloc(param_spec_numel(&mi.specs[i]), sizeof(float));
            mixer_instance_backward(&mi, dp, gi, go, x, saved, B, H, W, bws);
            CHECK(st_load(&f, "grad_input", 4, in->shape, ref) == ML_OK, "%s: %s", path, ml_last_error());
            e = rel_err_f(gi, ref, n);
            worst = e > worst ? e : worst;
            CHECK(e <= TOL, "%s: grad_input rel err %.3g", path, e);
            for (int i = 0; i < mi.nparams; i++) {
                char name[PARAM_NAME_MAX + 8];
                snprintf(name, sizeof name, "grad.%s", mi.specs[i].name);
                const size_t k = param_spec_numel(&mi.specs[i]);
                float *gr = malloc(k * sizeof *gr);
                s = st_load(&f, name, mi.specs[i].ndim, mi.specs[i].shape, gr);
                CHECK(s == ML_OK, "%s: %s", path, ml_last_error());
                if (s == ML_OK) {
                    e = rel_err_f(dp[i], gr, k);
                    worst = e > worst ? e : worst;
                    CHECK(e <= TOL, "%s: %s rel err %.3g", path, name, e);
                }
                free(gr), free(dp[i]);
            }
            CHECK(guard_intact(saved, nsav) && guard_intact(ws, nws) && guard_intact(bws, nbws) && guard_intact(gi, n),
                  "%s: wrote past a buffer", path);
            printf("  golden %-14s %-12s B%d %dx%d E%d: output, grad_input and %d parameter gradients, worst %.3g\n",
                   grad_cases[c].file, grad_cases[c].mixer, B, H, W, E, mi.nparams, worst);
            g_worst_golden = worst > g_worst_golden ? worst : g_worst_golden;
            free(x), free(go), free(ref), free(y), free(gi), free(saved), free(ws), free(bws);
        }
        mixer_instance_free(&mi);
        st_close(&f);
    }
}

/* ===========================================================================
 * The scan backward's memory: what the forward keeps grows with L only through
 * per-token vectors (u, xdbl, Δ: O(L·E)) and the chunk states (chunks·N·E), and
 * the backward's workspace has no (L, E, N) term either.
 * ========================================================================= */
static void test_scan_memory(void)
{
    const backend *be = &backend_cpu;
    const int B = 2, E = 64, N = 16, R = 4, ldx = R + 2 * N, H = 64, W1 = 64, W2 = 128;
    mixer_config c = mixer_config_default(E, E);
    c.d_state = N, c.dt_rank = R, c.threads = 4;
    const char *names[] = {"ssm", "ssm_bidir", "ssm_2d"};
    const size_t LEN = (size_t)H * W2 * E * N; /* what a stored history would take, per sequence */
    for (int m = 0; m < 3; m++) {
        const mixer_ops *o = mixer_find(names[m]);
        const int dirs = m == 0 ? 1 : m == 1 ? 2 : 4;
        const size_t L1 = (size_t)H * W1, L2 = (size_t)H * W2;
        const size_t s1 = mixer_saved_floats(o, &c, B, H, W1), s2 = mixer_saved_floats(o, &c, B, H, W2);
        /* the per-token vectors each mixer keeps (its .c file's layout), then what is left: the states */
        const size_t tok = m == 0 ? 2 * (size_t)E + ldx : m == 1 ? 2 * (2 * (size_t)E + ldx)
                                                               : 2 * (size_t)E + 4 * ((size_t)E + ldx) + 2;
        const size_t st2 = s2 - (size_t)B * L2 * tok;
        CHECK(st2 == (size_t)dirs * ssm_states_floats(B, L2, E, N),
              "%s: saved %zu floats = %zu per token + %zu, not the %d directions' chunk states %zu", names[m], s2, tok,
              st2, dirs, (size_t)dirs * ssm_states_floats(B, L2, E, N));
        CHECK(st2 * SSM_CHUNK <= (size_t)dirs * B * (L2 + SSM_CHUNK) * E * N,
              "%s: the saved states are not O(chunks·E·N)", names[m]);
        const size_t w1 = o->backward_workspace_floats(be, &c, B, H, W1), w2 = o->backward_workspace_floats(be, &c, B, H, W2);
        const double per_tok = (double)(w2 - w1) / (double)(B * (L2 - L1));
        CHECK(per_tok <= 4.0 * E + ldx, "%s: the backward workspace grows by %.1f floats per token (E·N = %d)",
              names[m], per_tok, E * N);
        printf("  %s memory at B %d, L %zu, E %d, N %d: saved %.2f MB (states %.2f MB, an (L, E, N) history would be "
               "%.1f MB), backward workspace %.2f MB, +%.0f floats per token\n",
               names[m], B, L2, E, N, s2 * 4e-6, st2 * 4e-6, (double)dirs * B * LEN * 4e-6, w2 * 4e-6, per_tok);
        (void)s1;
    }
    CHECK(ssm_scan_core_backward_workspace(B, 4096, E, N, 4) == ssm_scan_core_backward_workspace(B, 1 << 20, E, N, 4),
          "the scan backward's own workspace depends on L");
}

/* ===========================================================================
 * Float central differences of the C forward itself, as a cross-check that the
 * restatements above restate what the C code computes.
 * ========================================================================= */

/* Step 1e-2 on O(1) inputs, sums of out·g in double: the float32 forward's rounding of
 * J (~1e-7 per output, a few hundred outputs) over 2h, plus the O(h²) truncation of the
 * central difference, is ~1e-4 of the largest gradient; 2e-3 leaves room for the spread
 * over sampled coordinates without hiding a missing term (those are O(1) off). */
#define FLOAT_CD_TOL 2e-3

static double mixer_J(const mixer_instance *mi, const float *x, const float *g, float *y, float *ws, int B, int H,
                      int W)
{
    const size_t n = (size_t)B * H * W * mi->cfg.channels;
    mixer_instance_run(mi, y, x, B, H, W, ws);
    double j = 0;
    for (size_t i = 0; i < n; i++)
        j += (double)y[i] * g[i];
    return j;
}

static void test_float_cd(rng_state *r)
{
    const struct {
        const char *name;
        int B, H, W, E;
    } ms[] = {{"dwconv", 1, 5, 7, 11}, {"ssm", 1, 5, 7, 9}, {"attn", 1, 5, 7, 8}};
    for (size_t q = 0; q < sizeof ms / sizeof ms[0]; q++) {
        mixer_config cfg = mixer_config_default(ms[q].E, ms[q].E);
        cfg.kernel = 5, cfg.d_state = 4, cfg.dt_rank = 2, cfg.head_size = 4, cfg.threads = omp_get_max_threads();
        mixer_instance mi;
        if (mixer_instance_random(&mi, ms[q].name, &cfg, 9) != ML_OK) {
            CHECK(0, "%s: %s", ms[q].name, ml_last_error());
            continue;
        }
        for (int i = 0; i < mi.nparams; i++)
            randomize_param(r, mi.specs[i].name, mi.params[i], param_spec_numel(&mi.specs[i]),
                            mi.specs[i].ndim >= 2 ? (int)mi.specs[i].shape[mi.specs[i].ndim - 1] : 0);
        const int B = ms[q].B, H = ms[q].H, W = ms[q].W;
        const size_t n = (size_t)B * H * W * ms[q].E;
        float *x = rand_floats(r, n, -1, 1), *g = rand_floats(r, n, -1, 1), *y = alloc_guarded(n);
        float *ws = malloc(mixer_instance_workspace(&mi, B, H, W) * sizeof *ws);
        float *saved = malloc(mixer_instance_saved_floats(&mi, B, H, W) * sizeof *saved + 4);
        float *bws = malloc(mixer_instance_backward_workspace(&mi, B, H, W) * sizeof *bws + 4);
        float *dx = calloc(n, sizeof *dx), *dp[MIXER_MAX_PARAMS];
        for (int i = 0; i < mi.nparams; i++)
            dp[i] = calloc(param_spec_numel(&mi.specs[i]), sizeof(float));
        mixer_instance_run_train(&mi, y, saved, x, B, H, W, ws);
        mixer_instance_backward(&mi, dp, dx, g, x, saved, B, H, W, bws);
        /* 16 coordinates of the input and of the first parameter tensor */
        double worst = 0;
        for (int t = 0; t < 2; t++) {
            float *tgt = t == 0 ? x : mi.params[0], *grad = t == 0 ? dx : dp[0];
            const size_t len = t == 0 ? n : param_spec_numel(&mi.specs[0]);
            double md = 0, mr = 0;
            for (int k = 0; k < 16; k++) {
                const size_t i = (size_t)(rng_uniform(r) * (double)len) % len;
                const float x0 = tgt[i], h = 1e-2f;
                tgt[i] = x0 + h;
                const double jp = mixer_J(&mi, x, g, y, ws, B, H, W);
                tgt[i] = x0 - h;
                const double jm = mixer_J(&mi, x, g, y, ws, B, H, W);
                tgt[i] = x0;
                const double num = (jp - jm) / (2.0 * h);
                md = fabs(num - grad[i]) > md ? fabs(num - grad[i]) : md;
                mr = fabs(grad[i]) > mr ? fabs(grad[i]) : mr;
            }
            const double e = mr > 0 ? md / mr : INFINITY;
            CHECK(e <= FLOAT_CD_TOL, "%s: float central differences of the C forward, d_%s: rel err %.3g", ms[q].name,
                  t == 0 ? "in" : mi.specs[0].name, e);
            worst = e > worst ? e : worst;
        }
        printf("  float central differences of the C forward, %-8s d_in and d_%s: worst rel err %.3g\n", ms[q].name,
               mi.specs[0].name, worst);
        g_worst_float = worst > g_worst_float ? worst : g_worst_float;
        free(x), free(g), free(y), free(ws), free(saved), free(bws), free(dx);
        for (int i = 0; i < mi.nparams; i++)
            free(dp[i]);
        mixer_instance_free(&mi);
    }
}

/* ===========================================================================
 * The parallel paths. The sizes above are small enough that most backwards run
 * on one thread (each op parallelises only above a size); here every mixer's
 * block runs at a size where they all split, on 4 threads and on 1: the results
 * must agree (races or a wrong partition would show), and two runs on 4 threads
 * must be bit-identical.
 * ========================================================================= */
static void block_grads(const block_config *bc, float *const *tp, float *const *tg, const float *x0, const float *g,
                        float *dx, int B, int H, int W)
{
    const backend *be = &backend_cpu;
    const size_t n = (size_t)B * H * W * bc->dim;
    const block_train_plan pl = block_train_sizes(be, bc, B, H, W);
    float *state = alloc_guarded(pl.state), *fws = alloc_guarded(pl.fwd_ws), *bws = alloc_guarded(pl.bwd_ws);
    float *x = malloc(n * sizeof *x);
    block_train_state st;
    block_train_bind(bc, &pl, state, &st);
    block_params bp, dbp;
    block_bind(bc, tp, &bp);
    block_bind(bc, tg, &dbp);
    memcpy(x, x0, n * sizeof *x);
    block_forward_train(be, bc, &bp, x, B, H, W, &st, NULL, fws);
    memcpy(dx, g, n * sizeof *dx);
    block_backward(be, bc, &bp, &dbp, dx, &st, NULL, bws, B, H, W);
    CHECK(guard_intact(state, pl.state) && guard_intact(fws, pl.fwd_ws) && guard_intact(bws, pl.bwd_ws),
          "block %s (threads) wrote past a buffer", bc->mixer->name);
    free(state), free(fws), free(bws), free(x);
}

static void test_threads(rng_state *r)
{
    const int B = 2, H = 16, W = 24, C = 48, T = 4;
    const size_t n = (size_t)B * H * W * C;
    const int saved_threads = omp_get_max_threads();
    for (int i = 0; i < mixer_count(); i++) {
        const mixer_ops *mx = mixer_at(i);
        mixer_config mc = mixer_config_default(C, 0);
        mc.kernel = 7, mc.d_state = 8, mc.dt_rank = 3, mc.head_size = 16, mc.threads = T;
        block_config bc = block_config_make(C, 8.0 / 3.0, 1.0, ACT_GELU, NORM_LAYER, 1e-6f, 1, mx, &mc);
        param_spec specs[BLOCK_MAX_PARAMS];
        const int np = block_param_specs(&bc, specs, NULL);
        float *tp[BLOCK_MAX_PARAMS], *tg[3][BLOCK_MAX_PARAMS];
        for (int k = 0; k < np; k++) {
            const size_t len = param_spec_numel(&specs[k]);
            tp[k] = malloc(len * sizeof(float));
            randomize_param(r, specs[k].name, tp[k], len,
                            specs[k].ndim >= 2 ? (int)specs[k].shape[specs[k].ndim - 1] : 0);
            for (int q = 0; q < 3; q++)
                tg[q][k] = calloc(len, sizeof(float));
        }
        float *x = rand_floats(r, n, -2, 2), *g = rand_floats(r, n, -1, 1), *dx[3];
        for (int q = 0; q < 3; q++)
            dx[q] = malloc(n * sizeof(float));
        /* runs 0 and 1 on T threads, run 2 on one */
        for (int q = 0; q < 3; q++) {
            bc.mcfg.threads = q < 2 ? T : 1;
            omp_set_num_threads(q < 2 ? T : 1);
            block_grads(&bc, tp, tg[q], x, g, dx[q], B, H, W);
        }
        omp_set_num_threads(saved_threads);
        int same = memcmp(dx[0], dx[1], n * sizeof(float)) == 0, same1 = memcmp(dx[0], dx[2], n * sizeof(float)) == 0;
        double worst = rel_err_f(dx[0], dx[2], n);
        for (int k = 0; k < np; k++) {
            const size_t len = param_spec_numel(&specs[k]);
            same &= memcmp(tg[0][k], tg[1][k], len * sizeof(float)) == 0;
            same1 &= memcmp(tg[0][k], tg[2][k], len * sizeof(float)) == 0;
            const double e = rel_err_f(tg[0][k], tg[2][k], len);
            CHECK(e <= 1e-5, "block %s: d_%s on %d threads against 1: rel err %.3g", mx->name, specs[k].name, T, e);
            worst = e > worst ? e : worst;
        }
        CHECK(same, "block %s: two backwards on %d threads differ", mx->name, T);
        CHECK(worst <= 1e-5, "block %s: %d threads against 1: rel err %.3g", mx->name, T, worst);
        printf("  block %-11s B%d %dx%d C%d on %d threads: bit-identical run to run; against 1 thread %s (worst %.3g)\n",
               mx->name, B, H, W, C, T, same1 ? "bit-identical" : "not bit-identical", worst);
        for (int k = 0; k < np; k++) {
            free(tp[k]);
            for (int q = 0; q < 3; q++)
                free(tg[q][k]);
        }
        free(x), free(g);
        for (int q = 0; q < 3; q++)
            free(dx[q]);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "tests/fixtures";
    g_verbose = getenv("MIXERLAB_GRAD_VERBOSE") != NULL;
    rng_state r;
    rng_seed(&r, 20261201);
    test_norms(&r);
    test_linear(&r);
    test_act(&r);
    test_gate(&r);
    test_dwconv(&r);
    test_conv2d(&r);
    test_layout(&r);
    test_conv1d(&r);
    test_scan(&r);
    test_scan_subnormal(&r);
    test_attn_core(&r);
    test_xent(&r);
    test_mixers(&r);
    test_blocks(&r);
    test_golden(dir);
    test_scan_memory();
    test_float_cd(&r);
    test_threads(&r);
    printf("worst rel err against central differences in double: ops %.3g, mixers %.3g, blocks %.3g (tolerance %g); "
           "golden (PyTorch autograd) %.3g; float central differences of the C forward %.3g (tolerance %g)\n",
           g_worst_op, g_worst_mixer, g_worst_block, TOL, g_worst_golden, g_worst_float, FLOAT_CD_TOL);
    return test_summary("test_grad");
}
