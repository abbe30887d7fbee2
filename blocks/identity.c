#include "blocks/identity.h"


static ml_status identity_validate(const mixer_config *cfg)
{
    if (cfg->channels < 1)
        return ml_fail(ML_ERR_USAGE, "identity: channels %d must be >= 1", cfg->channels);
    return ML_OK;
}

static int identity_param_specs(const mixer_config *cfg, param_spec *out)
{
    (void)cfg, (void)out;
    return 0;
}

static uint64_t identity_macs(const mixer_config *cfg, int B, int H, int W, const macs_opts *o)
{
    (void)cfg, (void)B, (void)H, (void)W, (void)o;
    return 0;
}

static size_t identity_workspace(const backend *be, const mixer_config *cfg, int B, int H, int W)
{
    (void)be, (void)cfg, (void)B, (void)H, (void)W;
    return 0;
}

static void identity_forward(const backend *be, const mixer_config *cfg, const float *const *p, float *out,
                             float *saved, const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    (void)p, (void)ws, (void)saved;
    be->copy_rows(out, (size_t)cfg->channels, in, ld_in, (size_t)cfg->channels, (size_t)B * H * W);
}

static void identity_backward(const backend *be, const mixer_config *cfg, const float *const *p, float *const *dp,
                              float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                              const float *saved, float *ws, int B, int H, int W)
{
    (void)p, (void)dp, (void)in, (void)ld_in, (void)saved, (void)ws;
    be->copy_rows_bwd(d_in, ld_din, d_out, (size_t)cfg->channels, (size_t)cfg->channels, (size_t)B * H * W);
}

const mixer_ops mixer_identity = {
    .name = "identity",
    .summary = "no token mixing (y = c), the ablation control",
    .block_prefix = "mixer.",
    .causal = 1,
    .uses = 0,
    .validate = identity_validate,
    .param_specs = identity_param_specs,
    .macs = identity_macs,
    .activation_floats = mixer_output_floats,
    .workspace_floats = identity_workspace,
    .backward_workspace_floats = identity_workspace,
    .init = NULL,
    .infer = NULL,
    .supports = NULL,
    .describe = NULL,
    .forward = identity_forward,
    .backward = identity_backward,
};
