#include "blocks/identity.h"

#include <string.h>

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

static size_t identity_zero_floats(const mixer_config *cfg, int B, int H, int W)
{
    (void)cfg, (void)B, (void)H, (void)W;
    return 0;
}

static void identity_forward(const mixer_config *cfg, const float *const *p, float *out,
                             const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    (void)p, (void)ws;
    const size_t E = (size_t)cfg->channels, rows = (size_t)B * H * W;
    for (size_t r = 0; r < rows; r++)
        memcpy(out + r * E, in + r * ld_in, E * sizeof *out);
}

#ifdef MIXERLAB_HAVE_CUDA
#include "harness/cuda_util.h"

static void identity_forward_cuda(const mixer_config *cfg, const float *const *p, float *out, const float *in,
                                  size_t ld_in, float *ws, int B, int H, int W)
{
    (void)p, (void)ws;
    cuda_copy_rows(out, (size_t)cfg->channels, in, ld_in, (size_t)cfg->channels, (size_t)B * H * W);
}
#define IDENTITY_CUDA identity_forward_cuda
#else
#define IDENTITY_CUDA NULL
#endif

const mixer_ops mixer_identity = {
    .name = "identity",
    .summary = "no token mixing (y = c), the ablation control",
    .block_prefix = "mixer.",
    .causal = 1,
    .backends = BACKEND_CPU | MIXER_CUDA_BACKEND,
    .validate = identity_validate,
    .param_specs = identity_param_specs,
    .macs = identity_macs,
    .activation_floats = mixer_output_floats,
    .workspace_floats = identity_zero_floats,
    .init = NULL,
    .infer = NULL,
    .forward_cpu = identity_forward,
    .forward_cuda = IDENTITY_CUDA,
};
