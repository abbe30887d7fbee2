#include "blocks/ssm_bidir.h"

#include "blocks/ssm.h"

static int bidir_param_specs(const mixer_config *c, param_spec *out)
{
    if (out) {
        int64_t E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
        const char *names[2][7] = {
            {"conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias", "A_log", "D"},
            {"conv1d_b.weight", "conv1d_b.bias", "x_proj_b.weight", "dt_proj_b.weight", "dt_proj_b.bias",
             "A_b_log", "D_b"}};
        for (int d = 0; d < 2; d++) {
            param_spec *o = out + 7 * d;
            o[0] = (param_spec){"", 3, {E, 1, SSM_CONV_K, 0}, PARAM_INIT_CUSTOM};
            o[1] = (param_spec){"", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
            o[2] = (param_spec){"", 2, {R + 2 * N, E, 0, 0}, PARAM_INIT_CUSTOM};
            o[3] = (param_spec){"", 2, {E, R, 0, 0}, PARAM_INIT_CUSTOM};
            o[4] = (param_spec){"", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
            o[5] = (param_spec){"", 2, {E, N, 0, 0}, PARAM_INIT_CUSTOM};
            o[6] = (param_spec){"", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
            for (int i = 0; i < 7; i++)
                snprintf(o[i].name, sizeof o[i].name, "%s", names[d][i]);
        }
    }
    return 14;
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

static size_t bidir_workspace_floats(const mixer_config *c, int B, int H, int W)
{
    return (size_t)B * H * W * c->channels +
           ssm_direction_workspace(B, (size_t)H * W, c->channels, c->d_state, mixer_dt_rank(c));
}

static void bidir_init(const mixer_config *c, float *const *p, rng_state *rng)
{
    for (int d = 0; d < 2; d++) {
        float *const *q = p + 7 * d;
        ssm_init_direction(q[0], q[1], SSM_CONV_K, q[2], q[3], q[4], q[5], q[6], c->channels, c->d_state,
                           mixer_dt_rank(c), rng);
    }
}

static void bidir_forward(const mixer_config *c, const float *const *p, float *out, const float *in,
                          size_t ld_in, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W, n = (size_t)B * L * E;
    float *u = ws, *dws = ws + n;
    for (int d = 0; d < 2; d++) {
        const float *const *q = p + 7 * d;
        ssm_conv1d_silu(u, in, ld_in, q[0], q[1], B, L, E, SSM_CONV_K, d);
        ssm_params sp = {q[2], q[3], q[4], q[5], q[6]};
        ssm_direction_forward(out, d, u, &sp, B, H, W, E, N, R, SSM_ROW_MAJOR, d, dws);
    }
    for (size_t i = 0; i < n; i++)
        out[i] *= 0.5f;
}

static ml_status bidir_infer(mixer_config *c, mixer_shape_fn shape_of, void *ctx)
{
    return ssm_infer_named(c, shape_of, ctx, "conv1d.weight", "A_log", "dt_proj.weight");
}

#ifdef MIXERLAB_HAVE_CUDA
static void bidir_forward_cuda(const mixer_config *c, const float *const *p, float *out, const float *in,
                               size_t ld_in, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W, n = (size_t)B * L * E;
    float *u = ws, *dws = ws + n;
    for (int d = 0; d < 2; d++) {
        const float *const *q = p + 7 * d;
        ssm_conv1d_silu_cuda(u, in, ld_in, q[0], q[1], B, L, E, SSM_CONV_K, d);
        ssm_params sp = {q[2], q[3], q[4], q[5], q[6]};
        ssm_direction_forward_cuda(out, d, u, &sp, B, H, W, E, N, R, SSM_ROW_MAJOR, d, dws);
    }
    ssm_scale_cuda(out, n, 0.5f);
}
#define BIDIR_CUDA bidir_forward_cuda
#define BIDIR_CUDA_CHECK ssm_cuda_check
#else
#define BIDIR_CUDA NULL
#define BIDIR_CUDA_CHECK NULL
#endif

const mixer_ops mixer_ssm_bidir = {
    .name = "ssm_bidir",
    .summary = "bidirectional selective scan, Vim v2 (forward + flipped backward, averaged)",
    .block_prefix = "mixer.",
    .causal = 0,
    .backends = BACKEND_CPU | MIXER_CUDA_BACKEND,
    .validate = ssm_validate,
    .param_specs = bidir_param_specs,
    .macs = bidir_macs,
    .activation_floats = mixer_output_floats,
    .workspace_floats = bidir_workspace_floats,
    .init = bidir_init,
    .infer = bidir_infer,
    .forward_cpu = bidir_forward,
    .forward_cuda = BIDIR_CUDA,
    .cuda_check = BIDIR_CUDA_CHECK,
};
