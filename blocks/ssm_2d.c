#include "blocks/ssm_2d.h"

#include "blocks/layernorm.h"
#include "blocks/ssm.h"

#include <math.h>

enum { P_CONV_W, P_CONV_B, P_XPROJ, P_DTW, P_DTB, P_ALOG, P_DS, P_NORM_W, P_NORM_B, P_COUNT };

static int ss2d_param_specs(const mixer_config *c, param_spec *out)
{
    if (out) {
        int64_t E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
        out[P_CONV_W] = (param_spec){"conv2d.weight", 4, {E, 1, 3, 3}, PARAM_INIT_CUSTOM};
        out[P_CONV_B] = (param_spec){"conv2d.bias", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
        out[P_XPROJ] = (param_spec){"x_proj_weight", 3, {4, R + 2 * N, E, 0}, PARAM_INIT_CUSTOM};
        out[P_DTW] = (param_spec){"dt_projs_weight", 3, {4, E, R, 0}, PARAM_INIT_CUSTOM};
        out[P_DTB] = (param_spec){"dt_projs_bias", 2, {4, E, 0, 0}, PARAM_INIT_CUSTOM};
        out[P_ALOG] = (param_spec){"A_logs", 2, {4 * E, N, 0, 0}, PARAM_INIT_CUSTOM};
        out[P_DS] = (param_spec){"Ds", 1, {4 * E, 0, 0, 0}, PARAM_INIT_CUSTOM};
        out[P_NORM_W] = (param_spec){"out_norm.weight", 1, {E, 0, 0, 0}, PARAM_INIT_ONES};
        out[P_NORM_B] = (param_spec){"out_norm.bias", 1, {E, 0, 0, 0}, PARAM_INIT_ZEROS};
    }
    return P_COUNT;
}

static uint64_t ss2d_macs(const mixer_config *c, int B, int H, int W, const macs_opts *o)
{
    const size_t L = (size_t)H * W;
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const int fv = o->convention == MACS_FVCORE;
    uint64_t m = (uint64_t)L * E * 9; /* depthwise 3x3 */
    m += (fv && o->scan == SCAN_LOCALMAMBA ? 1 : 4) * ssm_proj_macs(L, E, N, R);
    if (fv)
        m += 4 * ssm_scan_macs(L, E, N, o->scan) + layernorm_macs(L, E);
    return (uint64_t)B * m;
}

static size_t ss2d_workspace_floats(const backend *be, const mixer_config *c, int B, int H, int W)
{
    size_t conv = be->dwconv_ws(B, H, W, c->channels, 3);
    size_t scan = ssm_direction_workspace(be, B, (size_t)H * W, c->channels, c->d_state, mixer_dt_rank(c));
    return (size_t)B * H * W * c->channels + (conv > scan ? conv : scan);
}

static void ss2d_init(const mixer_config *c, float *const *p, rng_state *rng)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    for (int k = 0; k < 4; k++) {
        /* the conv belongs to no direction: direction 0 fills it, the others a scratch copy */
        ssm_init_direction(p[P_CONV_W], p[P_CONV_B], 9, p[P_XPROJ] + (size_t)k * (R + 2 * N) * E,
                           p[P_DTW] + (size_t)k * E * R, p[P_DTB] + (size_t)k * E,
                           p[P_ALOG] + (size_t)k * E * N, p[P_DS] + (size_t)k * E, E, N, R, rng);
    }
    for (int e = 0; e < E; e++)
        p[P_NORM_W][e] = 1.0f, p[P_NORM_B][e] = 0.0f;
}

/* What a training forward keeps, in this order: z = conv2d(x) before the SiLU (B, L, E); the four
 * directions' saved sets (ssm_direction_saved_floats each); s, the sum of the four scans before the
 * LayerNorm (B, L, E); the LayerNorm's mean and rstd (B·L each). u = SiLU(z) is not kept: the
 * backward recomputes it (one pass over B·L·E) into its workspace. */
static size_t ss2d_saved_floats(const mixer_config *c, int B, int H, int W)
{
    const size_t L = (size_t)H * W, n = (size_t)B * L * c->channels;
    return 2 * n + 4 * ssm_direction_saved_floats(B, L, c->channels, c->d_state, mixer_dt_rank(c)) + 2 * (size_t)B * L;
}

static size_t ss2d_activation(const mixer_config *c, int B, int H, int W, int training)
{
    return mixer_output_floats(c, B, H, W, 0) + (training ? ss2d_saved_floats(c, B, H, W) : 0);
}

/* Direction k's slice of the parameters (or of their gradients). */
#define SS2D_SLICE(q, k)                                                                                         \
    {(q)[P_XPROJ] + (size_t)(k) * (R + 2 * N) * E, (q)[P_DTW] + (size_t)(k) * E * R, (q)[P_DTB] + (size_t)(k) * E, \
     (q)[P_ALOG] + (size_t)(k) * E * N, (q)[P_DS] + (size_t)(k) * E}

static void ss2d_forward(const backend *be, const mixer_config *c, const float *const *p, float *out, float *saved,
                         const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t rows = (size_t)B * H * W, n = rows * E, per = ssm_direction_saved_floats(B, rows / B, E, N, R);
    float *u = ws, *dws = ws + rows * E;
    float *z = saved, *sum = saved ? saved + n + 4 * per : out;
    be->dwconv(z ? z : u, in, ld_in, p[P_CONV_W], p[P_CONV_B], B, H, W, E, 3, dws);
    be->act(u, z ? z : u, rows * E, ACT_SILU);
    for (int k = 0; k < 4; k++) {
        ssm_params sp = SS2D_SLICE(p, k);
        ssm_direction_forward(be, sum, k > 0, u, &sp, B, H, W, E, N, R, (k & 1) ? SSM_COL_MAJOR : SSM_ROW_MAJOR,
                              k >= 2, dws, saved ? saved + n + (size_t)k * per : NULL);
    }
    be->layernorm(out, (size_t)E, saved ? sum + n : NULL, saved ? sum + n + rows : NULL, sum, (size_t)E, p[P_NORM_W],
                  p[P_NORM_B], rows, E, SSM_2D_NORM_EPS);
}

static size_t ss2d_backward_workspace(const backend *be, const mixer_config *c, int B, int H, int W)
{
    const size_t L = (size_t)H * W, n = (size_t)B * L * c->channels;
    const size_t scan = ssm_direction_backward_workspace(be, B, L, c->channels, c->d_state, mixer_dt_rank(c),
                                                         c->threads);
    const size_t conv = be->dwconv_bwd_ws(B, H, W, c->channels, 3);
    return 3 * n /* d_s (then d_z), u, d_u */ + (scan > conv ? scan : conv);
}

/* LayerNorm's backward into d_s; u = SiLU(z) again; the four directions' backwards into d_u; SiLU's
 * into d_z; the conv's into d_in. */
static void ss2d_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                          float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                          const float *saved, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t rows = (size_t)B * H * W, n = rows * E, per = ssm_direction_saved_floats(B, rows / B, E, N, R);
    const float *z = saved, *sum = saved + n + 4 * per, *mean = sum + n, *rstd = mean + rows;
    float *d_s = ws, *u = d_s + n, *d_u = u + n, *rest = d_u + n;
    be->zero(d_s, n * sizeof *d_s);
    be->layernorm_bwd(d_s, (size_t)E, dp[P_NORM_W], dp[P_NORM_B], d_out, (size_t)E, sum, (size_t)E, p[P_NORM_W], mean,
                      rstd, rows, E);
    be->act(u, z, n, ACT_SILU);
    be->zero(d_u, n * sizeof *d_u);
    for (int k = 0; k < 4; k++) {
        ssm_params sp = SS2D_SLICE(p, k);
        ssm_grads sg = SS2D_SLICE(dp, k);
        ssm_direction_backward(be, d_u, &sg, d_s, u, &sp, saved + n + (size_t)k * per, B, H, W, E, N, R,
                               (k & 1) ? SSM_COL_MAJOR : SSM_ROW_MAJOR, k >= 2, rest, c->threads);
    }
    float *d_z = d_s; /* d_s is read by nothing after the scans */
    be->zero(d_z, n * sizeof *d_z);
    be->act_bwd(d_z, d_u, z, n, ACT_SILU);
    be->dwconv_bwd(d_in, ld_din, dp[P_CONV_W], dp[P_CONV_B], d_z, in, ld_in, p[P_CONV_W], B, H, W, E, 3, rest);
}

static ml_status ss2d_infer(mixer_config *c, mixer_shape_fn shape_of, void *ctx)
{
    int64_t s[8];
    if (shape_of(ctx, "dt_projs_weight", s) != 3 || s[0] != 4)
        return ml_fail(ML_ERR_FORMAT, "missing or malformed tensor 'dt_projs_weight' (want [4, E, R])");
    c->channels = (int)s[1], c->dt_rank = (int)s[2];
    if (shape_of(ctx, "A_logs", s) != 2)
        return ml_fail(ML_ERR_FORMAT, "missing or malformed tensor 'A_logs' (want [4E, N])");
    c->d_state = (int)s[1];
    return ML_OK;
}

const mixer_ops mixer_ssm_2d = {
    .name = "ssm_2d",
    .summary = "2-D cross-scan, VMamba SS2D (four directions summed, then LayerNorm)",
    .block_prefix = "mixer.",
    .causal = 0,
    .uses = MIXER_USES_D_STATE,
    .validate = ssm_validate,
    .param_specs = ss2d_param_specs,
    .macs = ss2d_macs,
    .activation_floats = ss2d_activation,
    .workspace_floats = ss2d_workspace_floats,
    .backward_workspace_floats = ss2d_backward_workspace,
    .init = ss2d_init,
    .infer = ss2d_infer,
    .supports = ssm_supports,
    .describe = ssm_describe,
    .forward = ss2d_forward,
    .backward = ss2d_backward,
};
