/* One token mixer on its own: parameters under their bare names (the
 * README's mixer table), from a safetensors file (sizes read off the shapes)
 * or seeded at random; run on the CPU, or on another backend after
 * mixer_instance_to. */
#ifndef MIXERLAB_MIXER_IO_H
#define MIXERLAB_MIXER_IO_H

#include "blocks/mixer.h"
#include "models/safetensors.h"

typedef struct {
    const mixer_ops *ops;
    mixer_config cfg;
    param_spec specs[MIXER_MAX_PARAMS];
    int nparams;
    float *params[MIXER_MAX_PARAMS]; /* host copies */
    const backend *be;               /* where it runs (the CPU until mixer_instance_to) */
    float *dev[MIXER_MAX_PARAMS];    /* the parameters on be (params themselves on the CPU) */
} mixer_instance;

/* Floats of all parameters of ops at cfg, through the checked product (cfg validated first). */
ml_status mixer_param_floats(const mixer_ops *ops, const mixer_config *cfg, size_t *floats);

/* Usage error listing the registered mixers when name is unknown. */
ml_status mixer_lookup(const char *name, const mixer_ops **out);

/* Sizes from the file's shapes (E from the input when the parameters cannot
 * say, e.g. identity), head_size as given; then a strict load: every
 * parameter present with its shape, no unexpected tensor besides those in
 * `allowed` (NULL-terminated, e.g. "input", "output"; an entry ending in '*'
 * allows every name with that prefix, e.g. "grad.*"). */
ml_status mixer_instance_load(mixer_instance *mi, const char *name, const st_file *f, int channels,
                              int head_size, const char *const *allowed);
/* cfg gives E, N, K, HS...; parameters initialised from seed. */
ml_status mixer_instance_random(mixer_instance *mi, const char *name, const mixer_config *cfg,
                                uint64_t seed);
/* After a failed load or random init, mixer_instance_free still releases what was allocated. */

/* Moves the mixer to backend be: a usage error when be's kernels do not
 * cover its settings, else its parameters uploaded. */
ml_status mixer_instance_to(mixer_instance *mi, const backend *be);
/* Floats of workspace a run on (B, H, W) needs on its backend. */
size_t mixer_instance_workspace(const mixer_instance *mi, int B, int H, int W);
/* out (B,H,W,E) = mixer(in (B,H,W,E)), pointers on its backend; ws as sized above. */
void mixer_instance_run(const mixer_instance *mi, float *out, const float *in, int B, int H, int W, float *ws);
void mixer_instance_free(mixer_instance *mi);

/* Training one mixer alone (pointers on its backend, which needs backend_has_backward): the
 * training forward keeps mixer_saved_floats in `saved`; the backward, given d_out (B,H,W,E),
 * accumulates d_in (B,H,W,E) and d_params[i] (each laid out as parameter i, nparams of them).
 * Inputs and gradients contiguous (tokens E floats apart). */
size_t mixer_instance_saved_floats(const mixer_instance *mi, int B, int H, int W);
size_t mixer_instance_backward_workspace(const mixer_instance *mi, int B, int H, int W);
void mixer_instance_run_train(const mixer_instance *mi, float *out, float *saved, const float *in, int B, int H, int W,
                              float *ws);
void mixer_instance_backward(const mixer_instance *mi, float *const *d_params, float *d_in, const float *d_out,
                             const float *in, const float *saved, int B, int H, int W, float *ws);

#endif
