#include "blocks/ssm_bidir.h"

#include "blocks/ssm.h"

/* Direction d's parameters start at d · SSM_DIRECTION_PARAMS (the ssm set, then the _b set). */
static int bidir_param_specs(const mixer_config *c, param_spec *out)
{
    if (out) {
        int64_t E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
        const char *names[2][SSM_DIRECTION_PARAMS] = {
            {"conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"},
            {"conv1d_b.weight", "conv1d_b.bias", "x_proj_b.weight", "dt_proj_b.weight", "dt_proj_b.bias",
             "A_b_log", "D_b"}};
        for (int d = 0; d < 2; d++) {
            param_spec *o = out + SSM_DIRECTION_PARAMS * d;
            o[SSM_CONV_W] = (param_spec){"", 3, {E, 1, SSM_CONV_K, 0}, PARAM_INIT_CUSTOM};
            o[SSM_CONV_B] = (param_spec){"", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
            o[SSM_X_PROJ] = (param_spec){"", 2, {R + 2 * N, E, 0, 0}, PARAM_INIT_CUSTOM};
            o[SSM_DT_W] = (param_spec){"", 2, {E, R, 0, 0}, PARAM_INIT_CUSTOM};
            o[SSM_DT_B] = (param_spec){"", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
            o[SSM_A_LOG] = (param_spec){"", 2, {E, N, 0, 0}, PARAM_INIT_CUSTOM};
            o[SSM_D] = (param_spec){"", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
            for (int i = 0; i < SSM_DIRECTION_PARAMS; i++)
                snprintf(o[i].name, sizeof o[i].name, "%s", names[d][i]);
        }
    }
    return 2 * SSM_DIRECTION_PARAMS;
}

static uint64_t bidir_macs(const mixer_config *c, int B, int H, int W, const macs_opts *o)
{
    const size_t L = (size_t)H * W;
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const uint64_t proj = (uint64_t)L * E * SSM_CONV_K + ssm_proj_macs(L, E, N, R);
    /* localmamba counts conv1d / x_proj / dt_proj once per layer, the others per direction */
    uint64_t m = (o->scan == SCAN_LOCALMAMBA && o->convention == MACS_FVCORE) ? proj : 2 * proj;
    if (o->convention == MACS_FVCORE)
        m += 2 * ssm_scan_macs(L, E, N, o->scan);
    return (uint64_t)B * m;
}

static size_t bidir_workspace_floats(const backend *be, const mixer_config *c, int B, int H, int W)
{
    return (size_t)B * H * W * c->channels +
           ssm_direction_workspace(be, B, (size_t)H * W, c->channels, c->d_state, mixer_dt_rank(c));
}

static void bidir_init(const mixer_config *c, float *const *p, rng_state *rng)
{
    for (int d = 0; d < 2; d++) {
        float *const *q = p + SSM_DIRECTION_PARAMS * d;
        ssm_init_direction(q[SSM_CONV_W], q[SSM_CONV_B], SSM_CONV_K, q[SSM_X_PROJ], q[SSM_DT_W], q[SSM_DT_B],
                           q[SSM_A_LOG], q[SSM_D], c->channels, c->d_state, mixer_dt_rank(c), rng);
    }
}

/* Training keeps each branch's saved set (ssm_branch_saved_floats), the forward branch's first. */
static size_t bidir_activation(const mixer_config *c, int B, int H, int W, int training)
{
    return mixer_output_floats(c, B, H, W, 0) + (training ? 2 * ssm_branch_saved_floats(c, B, H, W) : 0);
}

/* y = (y_fwd + flip(y_bwd)) / 2: the backward branch runs on the flipped
 * sequence and adds its output in raster order. */
static void bidir_forward(const backend *be, const mixer_config *c, const float *const *p, float *out, float *saved,
                          const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W, n = (size_t)B * L * E, per = ssm_branch_saved_floats(c, B, H, W);
    float *dws = ws + n;
    for (int d = 0; d < 2; d++) {
        const float *const *q = p + SSM_DIRECTION_PARAMS * d;
        float *sv = saved ? saved + (size_t)d * per : NULL, *u = sv ? sv : ws;
        be->conv1d_silu(u, in, ld_in, q[SSM_CONV_W], q[SSM_CONV_B], B, L, E, SSM_CONV_K, d);
        ssm_params sp = {q[SSM_X_PROJ], q[SSM_DT_W], q[SSM_DT_B], q[SSM_A_LOG], q[SSM_D]};
        ssm_direction_forward(be, out, d, u, &sp, B, H, W, E, N, R, SSM_ROW_MAJOR, d, dws, sv ? sv + n : NULL);
    }
    be->scale(out, n, 0.5f);
}

static size_t bidir_backward_workspace(const backend *be, const mixer_config *c, int B, int H, int W)
{
    return (size_t)B * H * W * c->channels /* d_out / 2 */ + ssm_branch_backward_workspace(be, c, B, H, W);
}

/* Both branches see d_out / 2; each adds its share to d_in. */
static void bidir_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                           float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                           const float *saved, float *ws, int B, int H, int W)
{
    const size_t n = (size_t)B * H * W * c->channels, per = ssm_branch_saved_floats(c, B, H, W);
    float *half = ws;
    be->zero(half, n * sizeof *half);
    be->scale_bwd(half, d_out, n, 0.5f);
    for (int d = 0; d < 2; d++)
        ssm_branch_backward(be, c, p + SSM_DIRECTION_PARAMS * d, dp + SSM_DIRECTION_PARAMS * d, d_in, ld_din, half,
                            in, ld_in, saved + (size_t)d * per, d, ws + n, B, H, W);
}

static ml_status bidir_infer(mixer_config *c, mixer_shape_fn shape_of, void *ctx)
{
    return ssm_infer_named(c, shape_of, ctx, "conv1d.weight", "A_log", "dt_proj.weight");
}

const mixer_ops mixer_ssm_bidir = {
    .name = "ssm_bidir",
    .summary = "bidirectional selective scan, Vim v2 (forward + flipped backward, averaged)",
    .block_prefix = "mixer.",
    .causal = 0,
    .uses = MIXER_USES_D_STATE,
    .validate = ssm_validate,
    .param_specs = bidir_param_specs,
    .macs = bidir_macs,
    .activation_floats = bidir_activation,
    .workspace_floats = bidir_workspace_floats,
    .backward_workspace_floats = bidir_backward_workspace,
    .init = bidir_init,
    .infer = bidir_infer,
    .supports = ssm_supports,
    .describe = ssm_describe,
    .forward = bidir_forward,
    .backward = bidir_backward,
};
