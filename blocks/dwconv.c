#include "blocks/dwconv.h"

#include <stdio.h>
#include <string.h>

/* One output row: orow (W, C) = b + Σ_kh Σ_kw w[kh, kw] · in[h + kh - P, x + kw - P]. */
ML_CLONES static void dwconv_row(float *orow, const float *in_img, size_t ld_in, const float *wt,
                                 const float *b, int H, int W, int C, int K, int h)
{
    const int P = K / 2;
    for (int x = 0; x < W; x++)
        memcpy(orow + (size_t)x * C, b, (size_t)C * sizeof(float));
    int kh0 = P - h > 0 ? P - h : 0;
    int kh1 = H - 1 - h + P < K - 1 ? H - 1 - h + P : K - 1;
    for (int kh = kh0; kh <= kh1; kh++) {
        const float *irow = in_img + (size_t)(h + kh - P) * W * ld_in;
        for (int x = 0; x < W; x++) {
            float *o = orow + (size_t)x * C;
            int kw0 = P - x > 0 ? P - x : 0;
            int kw1 = W - 1 - x + P < K - 1 ? W - 1 - x + P : K - 1;
            for (int kw = kw0; kw <= kw1; kw++) {
                const float *iv = irow + (size_t)(x + kw - P) * ld_in;
                const float *wv = wt + (size_t)(kh * K + kw) * C;
                for (int c = 0; c < C; c++)
                    o[c] += iv[c] * wv[c];
            }
        }
    }
}

void dwconv_forward(float *out, const float *in, size_t ld_in, const float *w, const float *b,
                    int B, int H, int W, int C, int K, float *ws)
{
    /* ws[(kh*K + kw)*C + c] = w[c, 0, kh, kw]: the inner loop runs over contiguous channels */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K * K; k++)
            ws[(size_t)k * C + c] = w[(size_t)c * K * K + k];

#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * H * W * C > 32768)
    for (int bb = 0; bb < B; bb++)
        for (int h = 0; h < H; h++)
            dwconv_row(out + ((size_t)bb * H + h) * W * C, in + (size_t)bb * H * W * ld_in, ld_in, ws,
                       b, H, W, C, K, h);
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
        out[0] = (param_spec){"conv.weight", 4, {E, 1, K, K}, PARAM_INIT_TRUNC_NORMAL};
        out[1] = (param_spec){"conv.bias", 1, {E, 0, 0, 0}, PARAM_INIT_ZEROS};
    }
    return 2;
}

static uint64_t dwconv_mixer_macs(const mixer_config *cfg, int B, int H, int W, const macs_opts *o)
{
    (void)o; /* a conv counts the same under every convention */
    return dwconv_macs(B, H, W, cfg->channels, cfg->kernel);
}

static size_t dwconv_activation_floats(const mixer_config *cfg, int B, int H, int W)
{
    (void)cfg, (void)B, (void)H, (void)W; /* backward needs only the input and the weights */
    return 0;
}

static size_t dwconv_mixer_workspace(const mixer_config *cfg, int B, int H, int W)
{
    (void)B, (void)H, (void)W;
    return dwconv_workspace_floats(cfg->channels, cfg->kernel);
}

static void dwconv_mixer_forward(const mixer_config *cfg, const float *const *p, float *out,
                                 const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    dwconv_forward(out, in, ld_in, p[0], p[1], B, H, W, cfg->channels, cfg->kernel, ws);
}

const mixer_ops mixer_dwconv = {
    .name = "dwconv",
    .summary = "depthwise KxK conv (MambaOut's Gated CNN mixer)",
    .block_prefix = "",
    .causal = 0,
    .backends = BACKEND_CPU,
    .validate = dwconv_validate,
    .param_specs = dwconv_param_specs,
    .macs = dwconv_mixer_macs,
    .activation_floats = dwconv_activation_floats,
    .workspace_floats = dwconv_mixer_workspace,
    .init = NULL,
    .forward_cpu = dwconv_mixer_forward,
};
