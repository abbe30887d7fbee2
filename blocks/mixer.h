/* The token-mixer slot of the Gated CNN block.
 *
 * A mixer maps c (B,H,W,E) to c' (B,H,W,E). Each one is a file family in
 * blocks/ that defines a `const mixer_ops mixer_<name>` and is listed once in
 * the registry (blocks/mixer_list.h); nothing else needs to know about it.
 * Its forward is written once, against the backend table (blocks/backend.h),
 * so it runs on every backend. Its parameter names are the bare upstream
 * names (the README's mixer table); inside a model they are prefixed with
 * block_prefix ("conv." stays where timm keeps MambaOut's depthwise conv, the
 * others live under "mixer."). A mixer reads its parameters through its own
 * named indices (an enum in its .c file), in param_specs order. */
#ifndef MIXERLAB_MIXER_H
#define MIXERLAB_MIXER_H

#include "base/rng.h"
#include "blocks/backend.h"
#include "blocks/tensor.h"

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

/* The settings of mixer_config a mixer reads (besides E and C), so that
 * commands can ask instead of testing names. */
enum { MIXER_USES_KERNEL = 1u << 0, MIXER_USES_D_STATE = 1u << 1, MIXER_USES_HEAD_SIZE = 1u << 2 };

/* Looks up a tensor's shape for mixer_ops.infer; returns its ndim, or -1 when absent. */
typedef int (*mixer_shape_fn)(void *ctx, const char *name, int64_t *shape);

typedef struct mixer_ops {
    const char *name;
    const char *summary;
    const char *block_prefix; /* where the parameters live inside a block */
    int causal;               /* output at token t depends only on tokens <= t */
    unsigned uses;            /* MIXER_USES_* */

    /* Records a usage error naming the bad setting. */
    ml_status (*validate)(const mixer_config *cfg);
    /* Fills out (if not NULL) and returns the number of parameter tensors. */
    int (*param_specs)(const mixer_config *cfg, param_spec *out);
    uint64_t (*macs)(const mixer_config *cfg, int B, int H, int W, const macs_opts *o);
    /* Activation floats: the output (B,H,W,E) when training = 0 (inference keeps
     * nothing else, so memory reports are the output alone); with training = 1,
     * the output plus the `saved` buffer its training forward fills for the
     * backward (mixer_saved_floats: that part alone). */
    size_t (*activation_floats)(const mixer_config *cfg, int B, int H, int W, int training);
    /* Floats of scratch the forward needs on backend be (inference or training). */
    size_t (*workspace_floats)(const backend *be, const mixer_config *cfg, int B, int H, int W);
    /* Floats of scratch the backward needs on be (for cfg->threads threads). */
    size_t (*backward_workspace_floats)(const backend *be, const mixer_config *cfg, int B, int H, int W);
    /* Fills the PARAM_INIT_CUSTOM tensors; may be NULL when there are none. */
    void (*init)(const mixer_config *cfg, float *const *params, rng_state *rng);
    /* Sets the sizes (E, N, R, K) from the shapes of the bare parameters, for
     * running a mixer alone from a weights file; NULL when the parameters
     * alone cannot say (then E comes from the input). */
    ml_status (*infer)(mixer_config *cfg, mixer_shape_fn shape_of, void *ctx);
    /* ML_OK when be's kernels cover cfg, else a usage error naming the limit
     * (backend.supports of the cores it uses); NULL: every backend runs it. */
    ml_status (*supports)(const backend *be, const mixer_config *cfg);
    /* Appends its settings for a one-line description (", N 16, R 24"); may be NULL. */
    void (*describe)(const mixer_config *cfg, char *buf, size_t n);
    /* out (B,H,W,E) contiguous = mixer(in (B,H,W,E), tokens ld_in floats
     * apart), every pointer memory of be; ws of workspace_floats. saved: NULL
     * in inference (nothing beyond out is written, and out is what it always
     * was); in training mixer_saved_floats floats where the forward leaves what
     * its backward reads (each mixer's .c says what, in which layout). */
    void (*forward)(const backend *be, const mixer_config *cfg, const float *const *params, float *out, float *saved,
                    const float *in, size_t ld_in, float *ws, int B, int H, int W);
    /* The backward: given d_out (B,H,W,E) contiguous, the forward's input
     * (unchanged since) and its saved buffer, accumulates (+=) d_in (tokens
     * ld_din apart) and every d_params[i] (laid out as params[i]; none NULL);
     * ws of backward_workspace_floats. Needs the backend's _bwd slots
     * (backend_has_backward). Deterministic: the same inputs and thread count
     * give bit-identical gradients. */
    void (*backward)(const backend *be, const mixer_config *cfg, const float *const *params, float *const *d_params,
                     float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                     const float *saved, float *ws, int B, int H, int W);
} mixer_ops;

/* B·H·W·E: the activation_floats of a mixer that keeps nothing but its output
 * (its backward reads only its input), in inference and training alike. */
size_t mixer_output_floats(const mixer_config *cfg, int B, int H, int W, int training);
/* What a training forward keeps for the backward: activation_floats(training 1) - (training 0). */
size_t mixer_saved_floats(const mixer_ops *ops, const mixer_config *cfg, int B, int H, int W);

/* ML_OK when the mixer runs on be with cfg, else a usage error naming the mixer and the limit. */
ml_status mixer_supports(const mixer_ops *ops, const backend *be, const mixer_config *cfg);

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
