/* The Gated CNN block (timm's GatedConvBlock), the identical skeleton every
 * mixer plugs into (the README's "The Gated CNN block"):
 *
 *   t = norm(x);  u = t·fc1ᵀ + b1;  g, i, c = split(u, [Hd, Hd-E, E])
 *   v = act(g) * concat(i, mixer(c));  x = x + v·fc2ᵀ + b2
 *
 * Written once against the backend table. Also the gate op (CPU here, CUDA
 * in gated_block.cu) and the CPU's fused halves (norm + fc1, gate + fc2 over
 * row chunks that stay in cache). */
#ifndef MIXERLAB_GATED_BLOCK_H
#define MIXERLAB_GATED_BLOCK_H

#include "blocks/act.h"
#include "blocks/mixer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BLOCK_MAX_PARAMS (8 + MIXER_MAX_PARAMS)

/* MACs of a norm over rows × C under a convention: LayerNorm 5 per element and
 * RMSNorm 4 under fvcore; none under gemm. The localmamba scan convention
 * reproduces LocalMamba's counts of Vim, made with fvcore, which has no
 * handler for Vim's fused RMSNorm: there RMSNorm counts 0. */
uint64_t norm_kind_macs(norm_kind k, size_t rows, int C, const macs_opts *o);

typedef struct {
    int dim;     /* C */
    int hidden;  /* Hd */
    int conv_ch; /* E, <= Hd */
    act_kind act;
    norm_kind norm;
    float norm_eps;
    int fc_bias; /* fc1/fc2 carry biases */
    const mixer_ops *mixer;
    mixer_config mcfg;
} block_config;

/* One block's parameters by name: views into a parameter set (the weights,
 * or a gradient set laid out like them). Absent tensors are NULL (norm_b for
 * RMSNorm, the fc biases without fc_bias); the mixer's are in its own
 * param_specs order. */
typedef struct {
    float *norm_w, *norm_b;
    float *fc1_w, *fc1_b;
    float *mixer[MIXER_MAX_PARAMS];
    float *fc2_w, *fc2_b;
} block_params;

/* timm's widths: Hd = int(expansion·C), E = int(conv_ratio·C), in double as Python. */
block_config block_config_make(int dim, double expansion, double conv_ratio, act_kind act,
                               norm_kind norm, float eps, int fc_bias, const mixer_ops *mixer,
                               const mixer_config *mixer_overrides);
ml_status block_config_validate(const block_config *bc);

/* Parameter tensors in timm's order (norm, fc1, mixer, fc2), names relative to
 * the block; returns the count. slots (may be NULL) gets, for each tensor, the
 * byte offset of its pointer inside block_params. */
int block_param_specs(const block_config *bc, param_spec *out, size_t *slots);
/* The views of a block whose tensors (in block_param_specs order) are t[0..]. */
void block_bind(const block_config *bc, float *const *t, block_params *out);
uint64_t block_macs(const block_config *bc, int B, int H, int W, const macs_opts *o);

/* The buffers one block's forward uses, on its backend. In inference every
 * block of a stage shares them; a training plan gives each block its own u,
 * m and v so that the backward finds the forward's values. */
typedef struct {
    float *t;    /* scratch of the norm + fc1 half (be->norm_linear_ws, or rows × C) */
    float *u;    /* (rows, 2Hd)  fc1 output */
    float *m;    /* (rows, E)    mixer output */
    float *v;    /* gate output, rows ld_v apart: u itself (over g) in inference */
    size_t ld_v;
    float *ws;   /* mixer workspace */
    int threads; /* what t and ws were sized for */
} block_buffers;

/* Buffers a block needs, in floats, for B·H·W tokens and up to `threads` threads. */
typedef struct {
    size_t t, u, m, ws;
} block_sizes;
block_sizes block_buffer_floats(const backend *be, const block_config *bc, int B, int H, int W, int threads);

/* x (B,H,W,C) is updated in place: x += block(x). */
void block_forward(const backend *be, const block_config *bc, const block_params *p, float *x, int B, int H, int W,
                   const block_buffers *buf);

/* ---- training: a forward that keeps what the backward needs, and the backward ----
 *
 * A training plan gives every block its own block_train_state (sized by
 * block_train_sizes, carved from one buffer by block_train_bind) and shares
 * one forward and one backward workspace among all blocks. The training
 * forward runs the primitives unfused (the fused CPU halves stay the inference
 * path, bit for bit); its x update is the same math as block_forward's. */
typedef struct {
    float *x;     /* (rows, C)   the block's input as it entered (the norm's backward reads it) */
    float *mean;  /* (rows)      LayerNorm's row means; NULL for RMSNorm */
    float *rstd;  /* (rows)      the norm's 1/sqrt(var + eps) (RMSNorm: 1/sqrt(mean(x²) + eps)) */
    float *u;     /* (rows, 2Hd) fc1's output, g | i | c: the gate's pre-activation and the mixer's input */
    float *m;     /* (rows, E)   the mixer's output */
    float *v;     /* (rows, Hd)  the gate's output, fc2's input */
    float *saved; /* the mixer's saved buffer (mixer_saved_floats floats) */
} block_train_state;

/* Floats of each part of one block's training state (0 for mean with RMSNorm), their sum
 * (`state`, what block_train_bind carves, in the order of block_train_state), and the two shared
 * workspaces: forward = the normed rows t (rows × C) + the mixer's forward workspace; backward =
 * d_v (rows × Hd) + d_u (rows × 2Hd) + d_m (rows × E) + t and d_t (rows × C each) + the mixer's
 * backward workspace (for bc->mcfg.threads threads). */
typedef struct {
    size_t x, mean, rstd, u, m, v, saved;
    size_t state;
    size_t fwd_ws, bwd_ws;
} block_train_plan;

block_train_plan block_train_sizes(const backend *be, const block_config *bc, int B, int H, int W);
/* Points st's buffers into base (plan.state floats, memory of the backend), in struct order. */
void block_train_bind(const block_config *bc, const block_train_plan *plan, float *base, block_train_state *st);

/* x (B,H,W,C) += block(x), as block_forward, keeping x's old value, the norm statistics, u, m, v
 * and the mixer's saved buffer in st; ws of plan.fwd_ws floats. drop_scale (B host floats, or NULL
 * for none): stochastic depth as timm's DropPath, x_b += drop_scale[b] · path_b (0 for a dropped
 * sample, 1/keep for a kept one). */
void block_forward_train(const backend *be, const block_config *bc, const block_params *p, float *x, int B, int H,
                         int W, const block_train_state *st, const float *drop_scale, float *ws);

/* The backward of block_forward_train. d_x holds d(loss)/d(x_out) on entry and d(loss)/d(x_in) on
 * return: the residual passes it through and the path's gradient is added to it (d_x_in = d_x_out +
 * ∂path). d_p, views of a gradient set laid out like the parameters (block_bind on it), accumulates
 * every one of the block's gradients; st is what the forward kept; drop_scale the forward's; ws of
 * plan.bwd_ws floats.
 * Order: fc2 (linear_bwd), the gate, the mixer (into d_u's c columns), fc1 on the normed rows
 * recomputed from st->x and the saved statistics, the norm (into d_x). */
void block_backward(const backend *be, const block_config *bc, const block_params *p, const block_params *d_p,
                    float *d_x, const block_train_state *st, const float *drop_scale, float *ws, int B, int H, int W);

/* ---- the gate op and the CPU's fused halves (contracts in blocks/backend.h) ---- */
void gate_forward(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E, act_kind act);
/* v = act(g)·[i | m]: d_g += d_v·act'(g)·[i | m], d_i += d_v·act(g), d_m += d_v·act(g) (exact erf GELU);
 * d_u rows 2·Hd apart like u, its c columns untouched. Row-parallel. */
void gate_backward(float *d_u, float *d_m, const float *d_v, size_t ld_dv, const float *u, const float *m,
                   size_t rows, int Hd, int E, act_kind act);

/* The CPU chunks the block's pointwise halves: at most BLOCK_CHUNK_ROWS tokens,
 * a whole number of equal chunks per thread, each with a single-threaded
 * SGEMM, so the normed rows and the gate result stay in cache and no thread
 * waits for another. Fewer than BLOCK_MIN_ROWS_PER_THREAD tokens per thread
 * run unchunked (BLAS threads each op instead). */
#define BLOCK_CHUNK_ROWS 128
#define BLOCK_MIN_ROWS_PER_THREAD 256
/* Chunk count and rows per chunk for rows tokens on threads threads; 0 chunks = unchunked. */
void block_chunking(size_t rows, int threads, size_t *nchunks, size_t *chunk_rows);
void block_norm_linear_cpu(float *u, size_t ld_u, float *t, const float *x, int C, norm_kind nk, const float *nw,
                           const float *nb, float eps, const float *w, const float *b, size_t rows, int out_f,
                           int threads);
void block_gate_linear_cpu(float *x, int C, float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd,
                           int E, act_kind act, const float *w, const float *b, int threads);
size_t block_norm_linear_cpu_ws(size_t rows, int C, int threads);

/* The CUDA gate kernel (gated_block.cu, CUDA builds only), on device pointers. */
void gate_forward_cuda(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E,
                       act_kind act);

#ifdef __cplusplus
}
#endif

#endif
