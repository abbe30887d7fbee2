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

#define MIXER_MAX_PARAMS 16

typedef struct {
    int channels;  /* E: mixer width */
    int width;     /* C: the block width (sets the dt rank R = ceil(C/16)) */
    int kernel;    /* K of a depthwise conv */
    int d_state;   /* N: SSM state size */
    int head_size; /* HS: attention head size */
} mixer_config;

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
    /* Floats kept besides the output (what a backward pass would need). */
    size_t (*activation_floats)(const mixer_config *cfg, int B, int H, int W);
    /* Floats of scratch needed during forward. */
    size_t (*workspace_floats)(const mixer_config *cfg, int B, int H, int W);
    /* Fills the PARAM_INIT_CUSTOM tensors; may be NULL when there are none. */
    void (*init)(const mixer_config *cfg, float *const *params, rng_state *rng);
    /* out (B,H,W,E) contiguous; in (B,H,W,E) with ld_in floats between tokens. */
    void (*forward_cpu)(const mixer_config *cfg, const float *const *params, float *out,
                        const float *in, size_t ld_in, float *ws, int B, int H, int W);
} mixer_ops;

const mixer_ops *mixer_find(const char *name);
int mixer_count(void);
const mixer_ops *mixer_at(int i);
/* "dwconv, identity, ..." for error messages. */
const char *mixer_names(void);

/* Fills the defaults every mixer starts from for a block of width C, mixer width E. */
mixer_config mixer_config_default(int width, int channels);

#endif
