/* Training a model of the zoo: the training forward (which keeps what the
 * backward reads), the softmax cross-entropy, and the backward of the whole
 * skeleton -- stem, every block (blocks/gated_block.h), downsampling layers,
 * class token and position embedding, the head -- into one gradient arena
 * laid out like the weights. Written once against the backend table, like
 * model_forward; it needs a table with every backward (backend_has_backward:
 * the CPU for now).
 *
 * What is kept (every buffer is planned before anything runs, so
 * model_train_bytes is exact): the input channels-last; per layer of the stem,
 * the downsampling and the head its inputs and the norms' statistics; each
 * stage's x (the last block's output is the next layer's input); per block its
 * block_train_state (input, norm statistics, fc1 output, mixer output, gate
 * output, the mixer's own saved buffer). Then two gradient buffers as large as
 * the largest activation, passed back and forth, and one workspace shared by
 * the forward and the backward. */
#ifndef MIXERLAB_MODEL_TRAIN_H
#define MIXERLAB_MODEL_TRAIN_H

#include "base/rng.h"
#include "models/model.h"

typedef struct {
    float *a, *mean, *rstd, *n; /* a layer's pre-norm values, the norm's statistics, its output */
} train_norm_saved;

typedef struct {
    model *m; /* planned and allocated; not owned */

    /* gradients: one arena with the weight arena's layout (gdata[i] at the offset of pdata[i]) */
    arena grad_arena;
    float **gdata;
    model_params G;
    size_t *offset; /* each parameter's float offset in both arenas (adamw's layout) */

    /* the training activations, one backend block of act_floats */
    void *acts;
    size_t act_floats;
    float *in;                                   /* (B,H,W,3) */
    train_norm_saved stem1, stem2;               /* MAMBAOUT: conv1 -> LN1 (n) ; conv2 -> LN2 */
    float *stem_g;                               /* MAMBAOUT: GELU(stem1.n), conv2's input */
    float *patches;                              /* isotropic: patch embedding before the class token */
    float *xs[MODEL_MAX_STAGES];                 /* stage s's x */
    train_norm_saved down[MODEL_MAX_STAGES];     /* CONV: conv -> a, LN; MERGE: merged -> a, LN -> n */
    block_train_state st[MODEL_MAX_BLOCKS];
    train_norm_saved head1, head2;               /* the head's norms (head2: MLP's second) */
    float *head_f, *head_g;                      /* MLP: fc1 output, its GELU */
    float *pooled;                               /* NORM_LINEAR: mean of the normed tokens */
    float *logits, *d_logits;
    float *ga, *gb;                              /* gradient buffers, gmax floats each */
    float *gh1, *gh2;                            /* the head's gradients (B × its widest layer) */
    float *ws;
    size_t n_ws, gmax;
    size_t mid; /* isotropic: where the class token sits */
} model_trainer;

/* Bytes model_train_init allocates for m (the gradients and the training activations), beside the
 * model's own arenas. */
size_t model_train_bytes(const model *m);

/* What a training step adds to the model's own arenas: model_train_bytes plus AdamW's two moments
 * (laid out as the weights). */
size_t model_train_extra_bytes(const model *m);
/* Everything a training step holds: the model's weights and inference arenas (the per-epoch
 * evaluation's) and model_train_extra_bytes. */
size_t model_train_step_bytes(const model *m);

/* Plans and allocates; refuses a backend without backward kernels, and sizes larger than the
 * machine's available memory (exit 5's error, naming the bytes). */
ml_status model_train_init(model_trainer *t, model *m);
void model_train_free(model_trainer *t);

/* Zeroes every gradient. */
void model_train_zero_grads(model_trainer *t);

/* The training forward of input (B,3,H,W) (backend memory; model_stage_input): logits land in
 * t->logits. drop_scale: n_blocks × B host floats (block k's at k·B; model_drop_path_scales), or
 * NULL for none. */
void model_forward_train(model_trainer *t, const float *input, const float *drop_scale);

/* The mean softmax cross-entropy of t->logits against labels (model_logit_rows ints, backend memory;
 * -1: nothing asked at that row, as at most positions of a sequence task) with label smoothing, and the backward of the forward just run: every gradient accumulates (+=). Returns
 * the loss. drop_scale: the forward's. */
float model_backward(model_trainer *t, const int *labels, float smoothing, const float *drop_scale);

/* Data parallel on the CPU: the batch of m split into n shards (sizes differing by at most one), each
 * a model_view of m with its own trainer, run one per OpenMP thread with one thread each inside
 * (nested regions stay inactive; OpenBLAS's OpenMP build runs single-threaded inside a parallel
 * region). On two cores the small test skeleton's plain step runs at 72% of twice its one-thread
 * speed, two one-thread half batches side by side at 96% (results/cpu_benchmarks.md). The gradients
 * are combined into shard 0's arena in shard order, each weighted by its share of the labelled
 * rows, so the result is the mean over the whole batch (rounded in another order than the plain
 * trainer's) and the same for the same n. */
#define MODEL_MAX_SHARDS 16
typedef struct {
    int n;
    model view[MODEL_MAX_SHARDS];
    model_trainer t[MODEL_MAX_SHARDS];
    int off[MODEL_MAX_SHARDS], cnt[MODEL_MAX_SHARDS]; /* samples of the batch */
    float *drop;                                      /* the drop scales regrouped by shard */
    model *m;
} model_shards;
/* The parts for a batch of B on this many threads: min(threads, B, MODEL_MAX_SHARDS); below 2,
 * data parallel has nothing to split. */
int model_shards_count(int threads, int B);
/* n in 2 .. min(MODEL_MAX_SHARDS, m->B). */
ml_status model_shards_init(model_shards *s, model *m, int n);
void model_shards_free(model_shards *s);
/* Bytes model_shards_init allocates (every shard's trainer: gradients and training activations). */
size_t model_shards_bytes(const model *m, int n);
/* Everything a data-parallel training step holds: model_train_step_bytes with the parts' trainers
 * in place of the one trainer. */
size_t model_shards_step_bytes(const model *m, int n);
/* The training forward and backward of every shard, side by side, and the combined gradients (zeroed
 * first, unlike model_backward); returns the mean loss over the labelled rows. input, labels and
 * drop_scale as model_forward_train and model_backward take them for the whole batch. */
float model_shards_step(model_shards *s, const float *input, const int *labels, float smoothing,
                        const float *drop_scale);
/* The combined gradients (shard 0's arena, laid out as the weights), and its trainer's offsets. */
static inline float *model_shards_grads(const model_shards *s) { return (float *)s->t[0].grad_arena.base; }

/* Blocks in the model (the rows of drop_scale). */
int model_block_count(const model *m);

/* timm's stochastic depth: drop rates spread linearly from 0 to rate over the blocks in order;
 * for block k and sample b, out[k·B + b] = 0 (dropped, with probability rate_k) or 1 / (1 − rate_k).
 * Blocks of rate 0 get 1. */
void model_drop_path_scales(const model *m, double rate, rng_state *rng, float *out);

#endif
