#include "blocks/dwconv.h"

#include "blocks/linear.h"

#include <stdio.h>
#include <string.h>

enum { DWCONV_W, DWCONV_B, DWCONV_PARAMS };

/* Eight channels in one vector register (GCC/Clang vector extension: one AVX
 * register in the AVX2 clone, two SSE registers otherwise). */
typedef float v8f __attribute__((vector_size(32)));
#define LOAD8(v, p) memcpy(&(v), (p), sizeof(v8f))

/* Output pixels x .. x+n-1 of one row, channels c .. c+7, no bounds to check
 * in x: each accumulator sums its taps in the naive order, and the n
 * independent chains hide the add latency (one chain alone is latency-bound). */
#define DWCONV_TILE 4

/* One output row: orow (W, C) = b + Σ_kh Σ_kw w[kh, kw] · in[h + kh - P, x + kw - P].
 * Interior pixels go DWCONV_TILE at a time, eight channels at a time, so one
 * weight load feeds four multiply-adds; edge pixels and odd channels go one by one. */
ML_CLONES static void dwconv_row(float *orow, const float *in_img, size_t ld_in, const float *wt,
                                 const float *b, int H, int W, int C, int K, int h)
{
    const int P = K / 2;
    const int kh0 = P - h > 0 ? P - h : 0;
    const int kh1 = H - 1 - h + P < K - 1 ? H - 1 - h + P : K - 1;
    int x = 0;
    while (x < W) {
        const int interior = x >= P && x + DWCONV_TILE - 1 <= W - 1 - P;
        const int n = interior ? DWCONV_TILE : 1;
        const int kw0 = P - x > 0 ? P - x : 0;
        const int kw1 = W - 1 - x + P < K - 1 ? W - 1 - x + P : K - 1;
        int c = 0;
        if (interior) {
            for (; c + 8 <= C; c += 8) {
                v8f a0, a1, a2, a3, w, v;
                LOAD8(a0, b + c);
                a1 = a2 = a3 = a0;
                for (int kh = kh0; kh <= kh1; kh++) {
                    const float *iv = in_img + ((size_t)(h + kh - P) * W + (size_t)(x - P)) * ld_in + c;
                    const float *wv = wt + (size_t)kh * K * C + c;
                    for (int kw = 0; kw < K; kw++, iv += ld_in, wv += C) {
                        LOAD8(w, wv);
                        LOAD8(v, iv);
                        a0 += v * w;
                        LOAD8(v, iv + ld_in);
                        a1 += v * w;
                        LOAD8(v, iv + 2 * ld_in);
                        a2 += v * w;
                        LOAD8(v, iv + 3 * ld_in);
                        a3 += v * w;
                    }
                }
                memcpy(orow + (size_t)x * C + c, &a0, sizeof a0);
                memcpy(orow + (size_t)(x + 1) * C + c, &a1, sizeof a1);
                memcpy(orow + (size_t)(x + 2) * C + c, &a2, sizeof a2);
                memcpy(orow + (size_t)(x + 3) * C + c, &a3, sizeof a3);
            }
        } else {
            for (; c + 8 <= C; c += 8) {
                v8f acc, w, v;
                LOAD8(acc, b + c);
                for (int kh = kh0; kh <= kh1; kh++) {
                    const float *iv = in_img + ((size_t)(h + kh - P) * W + (size_t)(x + kw0 - P)) * ld_in + c;
                    const float *wv = wt + (size_t)(kh * K + kw0) * C + c;
                    for (int kw = kw0; kw <= kw1; kw++, iv += ld_in, wv += C) {
                        LOAD8(w, wv);
                        LOAD8(v, iv);
                        acc += v * w;
                    }
                }
                memcpy(orow + (size_t)x * C + c, &acc, sizeof acc);
            }
        }
        for (int xi = x; xi < x + n; xi++) {
            const int k0 = P - xi > 0 ? P - xi : 0;
            const int k1 = W - 1 - xi + P < K - 1 ? W - 1 - xi + P : K - 1;
            for (int cc = c; cc < C; cc++) {
                float acc = b[cc];
                for (int kh = kh0; kh <= kh1; kh++)
                    for (int kw = k0; kw <= k1; kw++)
                        acc += in_img[((size_t)(h + kh - P) * W + (size_t)(xi + kw - P)) * ld_in + cc] *
                               wt[(size_t)(kh * K + kw) * C + cc];
                orow[(size_t)xi * C + cc] = acc;
            }
        }
        x += n;
    }
}

void dwconv_forward(float *out, const float *in, size_t ld_in, const float *w, const float *b,
                    int B, int H, int W, int C, int K, float *ws)
{
    const size_t pixels = (size_t)B * H * W;
    /* wt[(kh*K + kw)*C + c] = w[c, 0, kh, kw]: the inner loop runs over contiguous channels */
    float *wt = ws, *packed = ws + (size_t)K * K * C;
    /* A strided input (the block's c, 2·Hd floats per token) puts every tap of
     * a window in the same L1 set once the stride is a multiple of 1-4 KiB: the
     * conv ran 1.7-3.5x slower on femto's shapes than on a packed copy. So
     * tokens are packed first unless they already are. */
    const int pack = ld_in != (size_t)C;
    const float *src = pack ? packed : in;
#pragma omp parallel if (pixels * (size_t)C * (size_t)(K * K) > 262144)
    {
#pragma omp for schedule(static) nowait
        for (int c = 0; c < C; c++)
            for (int k = 0; k < K * K; k++)
                wt[(size_t)k * C + c] = w[(size_t)c * K * K + k];
        if (pack) {
#pragma omp for schedule(static) nowait
            for (size_t q = 0; q < pixels; q++)
                memcpy(packed + q * C, in + q * ld_in, (size_t)C * sizeof *packed);
        }
#pragma omp barrier
#pragma omp for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++)
                dwconv_row(out + ((size_t)bb * H + h) * W * C, src + (size_t)bb * H * W * C, (size_t)C, wt,
                           b, H, W, C, K, h);
    }
}

/* ---- backward ---- */

/* d_w[c, :, :] for channels c0 .. c0+nc-1 (nc <= 8): Σ over every pixel of d_out · in at each tap.
 * One output row at a time, every kernel row against it while the row and the K input rows it
 * meets are in cache (so each tensor streams through memory once, not K times), in eight float
 * lanes per tap, then into double sums: a fixed order, whatever the thread count. */
ML_CLONES static void dwconv_dw_block(float *d_w, const float *d_out, const float *in, size_t ld_in, int B, int H,
                                      int W, int C, int K, int c0, int nc)
{
    const int P = K / 2;
    double acc[DWCONV_MAX_KERNEL * DWCONV_MAX_KERNEL][8];
    memset(acc, 0, (size_t)K * K * sizeof acc[0]);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *grow = d_out + ((size_t)b * H + h) * W * C + c0;
            for (int kh = 0; kh < K; kh++) {
                const int hi = h + kh - P;
                if (hi < 0 || hi >= H)
                    continue;
                v8f racc[DWCONV_MAX_KERNEL];
                for (int kw = 0; kw < K; kw++)
                    racc[kw] = (v8f){0, 0, 0, 0, 0, 0, 0, 0};
                const float *xrow = in + ((size_t)b * H + hi) * W * ld_in + c0;
                for (int x = 0; x < W; x++) {
                    v8f g = {0, 0, 0, 0, 0, 0, 0, 0}, v = g;
                    if (nc == 8)
                        LOAD8(g, grow + (size_t)x * C);
                    else
                        memcpy(&g, grow + (size_t)x * C, (size_t)nc * sizeof(float));
                    const int kw0 = P - x > 0 ? P - x : 0, kw1 = W - 1 - x + P < K - 1 ? W - 1 - x + P : K - 1;
                    for (int kw = kw0; kw <= kw1; kw++) {
                        const float *xv = xrow + (size_t)(x + kw - P) * ld_in;
                        if (nc == 8)
                            LOAD8(v, xv);
                        else
                            memcpy(&v, xv, (size_t)nc * sizeof(float));
                        racc[kw] += g * v;
                    }
                }
                for (int kw = 0; kw < K; kw++)
                    for (int j = 0; j < 8; j++)
                        acc[kh * K + kw][j] += racc[kw][j];
            }
        }
    for (int j = 0; j < nc; j++)
        for (int k = 0; k < K * K; k++)
            d_w[(size_t)(c0 + j) * K * K + (size_t)k] += (float)acc[k][j];
}

void dwconv_backward(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, const float *in,
                     size_t ld_in, const float *w, int B, int H, int W, int C, int K, float *ws)
{
    const size_t pixels = (size_t)B * H * W;
    const int nblk = (C + 7) / 8;
    const int big = pixels * (size_t)C * (size_t)(K * K) > 262144;
    if (d_w) {
#pragma omp parallel for schedule(dynamic, 1) if (big)
        for (int k = 0; k < nblk; k++)
            dwconv_dw_block(d_w, d_out, in, ld_in, B, H, W, C, K, 8 * k, C - 8 * k < 8 ? C - 8 * k : 8);
    }
    if (d_b)
        column_sums_add(d_b, d_out, (size_t)C, pixels, C);
    if (!d_in)
        return;
    /* d_in = the forward conv of d_out with the kernel flipped: tap (kh, kw) of the flipped kernel is
     * tap (K-1-kh, K-1-kw) of w, and zero padding stays zero padding */
    float *wt = ws, *zero = ws + (size_t)K * K * C, *tmp = zero + C;
#pragma omp parallel if (big)
    {
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            for (int k = 0; k < K * K; k++)
                wt[(size_t)k * C + c] = w[(size_t)c * K * K + (size_t)(K * K - 1 - k)];
            zero[c] = 0.0f;
        }
#pragma omp for collapse(2) schedule(static)
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++)
                dwconv_row(tmp + ((size_t)bb * H + h) * W * C, d_out + (size_t)bb * H * W * C, (size_t)C, wt, zero,
                           H, W, C, K, h);
#pragma omp for schedule(static)
        for (size_t q = 0; q < pixels; q++)
            for (int c = 0; c < C; c++)
                d_in[q * ld_din + c] += tmp[q * C + c];
    }
}

static ml_status dwconv_validate(const mixer_config *cfg)
{
    if (cfg->kernel < 1 || cfg->kernel % 2 == 0 || cfg->kernel > DWCONV_MAX_KERNEL)
        return ml_fail(ML_ERR_USAGE, "dwconv: kernel %d is not allowed (odd, 1..%d)", cfg->kernel,
                       DWCONV_MAX_KERNEL);
    if (cfg->channels < 1)
        return ml_fail(ML_ERR_USAGE, "dwconv: channels %d must be >= 1", cfg->channels);
    return ML_OK;
}

static int dwconv_param_specs(const mixer_config *cfg, param_spec *out)
{
    if (out) {
        int64_t E = cfg->channels, K = cfg->kernel;
        out[DWCONV_W] = (param_spec){"conv.weight", 4, {E, 1, K, K}, PARAM_INIT_TRUNC_NORMAL};
        out[DWCONV_B] = (param_spec){"conv.bias", 1, {E, 0, 0, 0}, PARAM_INIT_ZEROS};
    }
    return DWCONV_PARAMS;
}

static uint64_t dwconv_mixer_macs(const mixer_config *cfg, int B, int H, int W, const macs_opts *o)
{
    (void)o; /* a conv counts the same under every convention */
    return dwconv_macs(B, H, W, cfg->channels, cfg->kernel);
}

static size_t dwconv_mixer_workspace(const backend *be, const mixer_config *cfg, int B, int H, int W)
{
    return be->dwconv_ws(B, H, W, cfg->channels, cfg->kernel);
}

/* Training keeps nothing: the backward reads only the input. */
static void dwconv_mixer_forward(const backend *be, const mixer_config *cfg, const float *const *p, float *out,
                                 float *saved, const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    (void)saved;
    be->dwconv(out, in, ld_in, p[DWCONV_W], p[DWCONV_B], B, H, W, cfg->channels, cfg->kernel, ws);
}

static size_t dwconv_mixer_backward_workspace(const backend *be, const mixer_config *cfg, int B, int H, int W)
{
    return be->dwconv_bwd_ws(B, H, W, cfg->channels, cfg->kernel);
}

static void dwconv_mixer_backward(const backend *be, const mixer_config *cfg, const float *const *p,
                                  float *const *dp, float *d_in, size_t ld_din, const float *d_out, const float *in,
                                  size_t ld_in, const float *saved, float *ws, int B, int H, int W)
{
    (void)saved;
    be->dwconv_bwd(d_in, ld_din, dp[DWCONV_W], dp[DWCONV_B], d_out, in, ld_in, p[DWCONV_W], B, H, W, cfg->channels,
                   cfg->kernel, ws);
}

static ml_status dwconv_supports(const backend *be, const mixer_config *cfg)
{
    backend_limits q = {.kernel = cfg->kernel};
    return be->supports(BE_OP_DWCONV, &q);
}

static void dwconv_describe(const mixer_config *cfg, char *buf, size_t n) { snprintf(buf, n, ", K %d", cfg->kernel); }

/* E and K from conv.weight [E, 1, K, K]. */
static ml_status dwconv_infer(mixer_config *c, mixer_shape_fn shape_of, void *ctx)
{
    int64_t s[8];
    if (shape_of(ctx, "conv.weight", s) != 4 || s[1] != 1 || s[2] != s[3])
        return ml_fail(ML_ERR_FORMAT, "missing or malformed tensor 'conv.weight' (want [E, 1, K, K])");
    c->channels = (int)s[0], c->kernel = (int)s[2];
    return ML_OK;
}

const mixer_ops mixer_dwconv = {
    .name = "dwconv",
    .summary = "depthwise KxK conv (MambaOut's Gated CNN mixer)",
    .block_prefix = "",
    .causal = 0,
    .uses = MIXER_USES_KERNEL,
    .validate = dwconv_validate,
    .param_specs = dwconv_param_specs,
    .macs = dwconv_mixer_macs,
    .activation_floats = mixer_output_floats,
    .workspace_floats = dwconv_mixer_workspace,
    .backward_workspace_floats = dwconv_mixer_backward_workspace,
    .init = NULL,
    .infer = dwconv_infer,
    .supports = dwconv_supports,
    .describe = dwconv_describe,
    .forward = dwconv_mixer_forward,
    .backward = dwconv_mixer_backward,
};
