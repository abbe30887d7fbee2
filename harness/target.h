/* A measurement target: a whole model, one Gated CNN block, or one mixer
 * alone, planned, allocated, given weights and an input, run, read back and
 * freed on either backend. Every command that runs or times something (sweep,
 * bench-*, forward, mixer) goes through it, so all of them set up, time and
 * account for the same thing the same way. */
#ifndef MIXERLAB_TARGET_H
#define MIXERLAB_TARGET_H

#include "harness/timer.h"
#include "models/mixer_io.h"
#include "models/model.h"

typedef enum { TARGET_MODEL = 0, TARGET_BLOCK = 1, TARGET_MIXER = 2 } target_level;

typedef struct {
    target_level level;
    const backend *be;
    int B, H, W;
    /* accounting, from the plan (fvcore, scan gu) */
    uint64_t params, macs;
    size_t weight_bytes, activation_bytes; /* on the backend */

    /* TARGET_MODEL */
    model m;
    /* TARGET_BLOCK: MambaOut's Gated CNN block at width C, the mixer in its slot */
    block_config bc;
    param_spec bspecs[BLOCK_MAX_PARAMS];
    int nbp;
    float *bhost[BLOCK_MAX_PARAMS], *bdev[BLOCK_MAX_PARAMS];
    block_params bp;
    block_sizes bs;
    block_buffers buf;
    /* TARGET_MIXER */
    mixer_instance mi;
    float *y, *mws;

    /* the input (backend memory; the model's own buffer for TARGET_MODEL) */
    size_t n_in, n_out;
    float *x;
    const float *input;
    int allocated;
} target;

/* Plans; computes params, MACs and memory; allocates nothing but tables. */
ml_status target_plan_model(target *t, const model_config *cfg, int B, int H, int W, const backend *be);
/* The block (C = E = width, MambaOut's settings) with mixer ops and its settings mc. */
ml_status target_plan_block(target *t, const mixer_ops *ops, const mixer_config *mc, int width, int B, int H, int W,
                            const backend *be);
/* Takes over mi (loaded or random, on the CPU) and moves it to be. */
ml_status target_plan_mixer(target *t, mixer_instance *mi, int B, int H, int W, const backend *be);

/* Allocates weights, activations, workspace and the input on the backend;
 * refuses what does not fit (exit code 5, naming the bytes) before any of it
 * is allocated (target_check_memory). */
ml_status target_alloc(target *t);
/* The memory plan of a planned target: what target_alloc allocates plus the
 * host input batch and output a command holds, against ml_check_fits. */
ml_status target_check_memory(const target *t);
/* The whole plan of a lone mixer run (parameters, input, output, workspace),
 * checked before its parameters are allocated. */
ml_status target_check_mixer_plan(const char *name, const mixer_config *cfg, int B, int H, int W, const backend *be);
/* Seeded weights: a model as timm initialises it; a block N(0, 0.02) with its
 * mixer's own init in the slot; a mixer keeps those it was planned with. */
ml_status target_init_random(target *t, uint64_t seed);
/* A model's host weights changed (loaded): copy them to the backend. */
ml_status target_sync_weights(target *t);
/* A model's weights: from the checkpoint at path (strict unless ignore_unexpected), or seeded as
 * target_init_random when path is NULL; then onto the backend. */
ml_status target_load_weights(target *t, const char *path, uint64_t seed, int ignore_unexpected);
/* The input from host memory (n_in floats), or seeded standard normals. */
ml_status target_set_input(target *t, const float *host);
ml_status target_random_input(target *t, uint64_t seed);
/* One forward (a model_tap_fn-free timer callback: fn(ctx) with ctx = target). */
void target_run(void *t);
/* Waits and reads the output (n_out floats: logits, the block's x, the mixer's y) into host memory. */
ml_status target_output(target *t, float *host);
void target_free(target *t);

/* The sampler for the target's backend: the host clock, or CUDA events. */
timer_sample_fn target_sampler(const target *t);
/* The spec's warm-up and stopping rule on the target. One run first: when it
 * takes longer than p->max_time_s, *first_ms says how long and nothing more
 * runs (st untouched, *timed_out = 1). */
ml_status target_measure(target *t, const timer_policy *p, timer_stats *st, int *timed_out, double *first_ms);

#endif
