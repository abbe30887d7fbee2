/* The training loop: a zoo model with any mixer on a dataset, AdamW with timm's
 * parameter groups, warm-up + cosine per step, optional gradient clipping,
 * label smoothing, drop path; an evaluation on the test split after every
 * epoch; checkpoints that make a killed run resumable bit for bit.
 *
 * Deterministic: a batch is a pure function of (its sample indices, the epoch's
 * augmentation seed); the epoch's order is a seeded permutation; drop path's
 * scales come from a stream seeded by (seed, step); every op reduces in a fixed
 * order. So the same configuration and thread count give the same weights, and
 * a run resumed from any checkpoint ends where an uninterrupted one does.
 *
 * Files: OUT (e.g. run.safetensors) holds the weights alone under timm's names
 * (it loads into timm's MambaOut(num_classes=K) with strict=True); OUT.state
 * holds everything a resume needs (weights, AdamW's moments, the position in
 * the data, the configuration, the curve so far), written atomically. OUT.state
 * is written first, so it is never older than OUT. */
#ifndef MIXERLAB_TRAINER_H
#define MIXERLAB_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"
#include "data/dataset.h"
#include "models/model.h"

#define TRAIN_MAX_EPOCHS 10000

#define TRAIN_MAX_EVAL_LENS 16

typedef struct {
    int epoch;         /* 1-based: the epoch just finished (a generated task: the evaluation round) */
    long step;         /* optimiser steps done */
    double lr;         /* at the last step */
    double train_loss; /* mean over the epoch's steps */
    double test_top1, test_top5, test_loss; /* fractions, on the test split */
    double seconds;    /* training time so far (evaluations excluded) */
} train_epoch;

typedef struct {
    const char *model; /* a zoo name with overrides */
    const char *data;  /* a dataset spec (data/dataset.h) */
    int res, epochs, batch, threads;
    /* Progressive resizing (images only): epochs 1..res_ramp[0] train at res_start, epochs after
     * res_ramp[1] at res, the epochs between at resolutions stepped linearly from one to the other
     * (multiples of 8). Every evaluation is at res. res_start 0: every epoch at res. */
    int res_start, res_ramp[2];
    double lr, min_lr, warmup_lr, weight_decay, warmup_epochs, drop_path, smoothing, clip_grad;
    double random_erase; /* images: random erasing's probability per training image (0: off) */
    /* Split each batch over the threads, one model_shards part each (models/model_train.h);
     * other bits than the plain step, the same for the same threads. Not with res_start. */
    int data_parallel;
    uint64_t seed;
    size_t limit;      /* training images (0: all) */
    size_t eval_limit; /* test images per evaluation (0: all) */
    /* A generated task (a stream, data/tasks.h) trains for `steps` optimiser steps on fresh samples
     * instead of epochs, evaluating every eval_every steps (0: steps / 20, at least 1) with a linear
     * warm-up over warmup_steps (-1: a tenth of the steps); a dataset that is not a stream refuses
     * steps. eval_lens: after training, the test split again at each of these lengths. */
    long steps, eval_every, warmup_steps;
    int seq_len; /* a task's length instead of its spec's (0: the spec's; the runner's tokens axis) */
    int eval_lens[TRAIN_MAX_EVAL_LENS], n_eval_lens;
    const char *init;  /* start from these weights (a safetensors file of the same model, e.g. another
                        * run's OUT) instead of timm's initialisation; AdamW starts afresh. NULL: none */
    const char *out;   /* the checkpoint (OUT and OUT.state) */
    int resume;        /* continue from OUT.state (which must exist and match) */
    double checkpoint_s;   /* seconds between checkpoints inside an epoch (and one per epoch) */
    int progress;          /* a progress line on stderr every few seconds */
    int (*stop_requested)(void); /* asked after every step; non-zero: checkpoint and stop */
    /* after each epoch (the runner's train_log); may be NULL */
    void (*on_epoch)(void *ctx, const train_epoch *e);
    void *ctx;
} train_config;

/* How a dataset is read for model cfg (eval and train alike): an image folder with the model's
 * published preprocessing (crop_pct, filter, mean, std), half the cores decoding (at least one). */
dataset_options model_dataset_options(const model_config *cfg);
/* The model cfg fitted to dataset d: the head's classes are d's count unless cfg names one (then at
 * least d's); the sequence model's vocabulary is the task's unless cfg names one (then the same).
 * An image skeleton on a sequence task that is an image (pathfinder, sequential-fashion-mnist) reads
 * it as images (sets d->as_image); the sequence model on images, or an image skeleton on a task that
 * is no image, is a usage error naming who asks. */
ml_status model_classes_for(model_config *cfg, dataset *d, const char *who);
/* The H x W a model is planned at for d: res x res, or 1 x d->seq_len for the sequence model. */
void model_input_shape(const model_config *cfg, const dataset *d, int res, int *H, int *W);

/* timm-like defaults: lr 1e-3, min_lr 1e-5, warmup_lr 1e-6, weight decay 0.05, 1 warm-up epoch
 * (a tenth of the steps on a stream), no drop path, smoothing 0.1, no clipping, batch 64, 10 epochs,
 * checkpoints every 300 s. */
train_config train_config_default(void);

typedef struct {
    double top1, top5, loss; /* the last evaluation */
    size_t test_images;
    double train_seconds, images_per_s; /* training steps only */
    long steps;
    int epochs_done;
    int stopped;     /* stop_requested ended the run (after writing a checkpoint) */
    size_t memory_bytes; /* what the training planned: weights, gradients, AdamW, activations, workspace */
    train_epoch log[64]; /* the last 64 epochs' entries */
    int n_log;
    double len_top1[TRAIN_MAX_EVAL_LENS]; /* at train_config.eval_lens */
} train_result;

/* Trains (or resumes) as configured. Errors: a bad configuration (usage), a missing or damaged
 * dataset or checkpoint (I/O, format), --resume without OUT.state or from another configuration
 * (usage, naming the setting that differs), a loss that stops being finite (runtime, naming the
 * step; the last checkpoint is kept). */
/* The resolution epoch (0-based) trains at under c's progressive resizing (c->res without it). */
int train_res_at(const train_config *c, int epoch);

ml_status train_run(const train_config *c, train_result *r);

#endif
