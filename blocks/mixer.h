/* The token-mixer slot of the Gated CNN block.
 *
 * A mixer maps c (B,H,W,E) to c' (B,H,W,E). Each one is a file family in
 * blocks/ that defines a `const mixer_ops mixer_<name>` and is listed once in
 * the registry (blocks/mixer.c); nothing else needs to know about it. Its
 * parameter names are the bare upstream names of DESIGN §4; inside a model
 * they are prefixed with block_prefix ("conv." stays where timm keeps
 * MambaOut's depthwise conv, the others live under "mixer."). */
#ifndef MIXERLAB_MIXER_H
#define MIXERLAB_MIXER_H

#include "blocks/tensor.h"
#include "harness/common.h"
#include "harness/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MIXER_MAX_PARAMS 16

typedef struct {
    int channels;  /* E: mixer width */
    int width;     /* C: the block width (sets the dt rank R = ceil(C/16)) */
    int kernel;    /* K of a depthwise conv */
    int d_state;   /* N: SSM state size */
    int dt_rank;   /* R: 0 = ceil(width / 16) */
    int head_size; /* HS: attention head size */
    int threads;   /* threads the workspace is sized for (per-thread scratch); 0 = not yet set */
} mixer_config;

/* R as used: the explicit dt_rank, else ceil(C/16). */
static inline int mixer_dt_rank(const mixer_config *c)
{
    return c->dt_rank > 0 ? c->dt_rank : (c->width + 15) / 16;
}

/* Looks up a tensor's shape for mixer_ops.infer; returns its ndim, or -1 when absent. */
typedef int (*mixer_shape_fn)(void *ctx, const char *name, int64_t *shape);

typedef struct mixer_ops {
    const char *name;
    const char *summary;
    const char *block_prefix; /* where the parameters live inside a block */
    int causal;               /* output at token t depends only on tokens <= t */
    unsigned backends;        /* backend_flags */

    /* Records a usage error naming the bad setting. */
    ml_status (*validate)(const mixer_config *cfg);
    /* Fills out (if not NULL) and returns the number of parameter tensors. */
    int (*param_specs)(const mixer_config *cfg, param_spec *out);
    uint64_t (*macs)(const mixer_config *cfg, int B, int H, int W, const macs_opts *o);
    /* Activation floats: the output (B,H,W,E) plus anything the forward keeps
     * for a backward pass (nothing yet: forward only). */
    size_t (*activation_floats)(const mixer_config *cfg, int B, int H, int W);
    /* Floats of scratch needed during forward. */
    size_t (*workspace_floats)(const mixer_config *cfg, int B, int H, int W);
    /* Fills the PARAM_INIT_CUSTOM tensors; may be NULL when there are none. */
    void (*init)(const mixer_config *cfg, float *const *params, rng_state *rng);
    /* Sets the sizes (E, N, R, K) from the shapes of the bare parameters, for
     * running a mixer alone from a weights file; NULL when the parameters
     * alone cannot say (then E comes from the input). */
    ml_status (*infer)(mixer_config *cfg, mixer_shape_fn shape_of, void *ctx);
    /* out (B,H,W,E) contiguous; in (B,H,W,E) with ld_in floats between tokens. */
    void (*forward_cpu)(const mixer_config *cfg, const float *const *params, float *out,
                        const float *in, size_t ld_in, float *ws, int B, int H, int W);
    /* The same on device pointers (CUDA builds, mixers with a kernel; else NULL);
     * needs no workspace beyond what workspace_floats gives. */
    void (*forward_cuda)(const mixer_config *cfg, const float *const *params, float *out,
                         const float *in, size_t ld_in, float *ws, int B, int H, int W);
    /* Limits of the CUDA kernel beyond validate (NULL: none); a usage error names them. */
    ml_status (*cuda_check)(const mixer_config *cfg);
} mixer_ops;

/* BACKEND_CUDA in builds with the CUDA backend, else 0: for mixers with a kernel. */
#ifdef MIXERLAB_HAVE_CUDA
#define MIXER_CUDA_BACKEND BACKEND_CUDA
#else
#define MIXER_CUDA_BACKEND 0
#endif

/* B·H·W·E: the activation_floats of a mixer that keeps nothing but its output. */
size_t mixer_output_floats(const mixer_config *cfg, int B, int H, int W);

/* Usage error naming the mixer, the backend and the backends it has, unless it supports b. */
ml_status mixer_require_backend(const mixer_ops *ops, backend_flags b);
static inline const char *backend_name(backend_flags b) { return b == BACKEND_CUDA ? "cuda" : "cpu"; }

const mixer_ops *mixer_find(const char *name);
int mixer_count(void);
const mixer_ops *mixer_at(int i);
/* "dwconv, identity, ..." for error messages. */
const char *mixer_names(void);

/* Fills the defaults every mixer starts from for a block of width C, mixer width E. */
mixer_config mixer_config_default(int width, int channels);

#ifdef __cplusplus
}
#endif

#endif
