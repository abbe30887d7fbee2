/* The Gated CNN block (timm's GatedConvBlock), the identical skeleton every
 * mixer plugs into (DESIGN §3):
 *
 *   t = norm(x);  u = t·fc1ᵀ + b1;  g, i, c = split(u, [Hd, Hd-E, E])
 *   v = act(g) * concat(i, mixer(c));  x = x + v·fc2ᵀ + b2
 */
#ifndef MIXERLAB_GATED_BLOCK_H
#define MIXERLAB_GATED_BLOCK_H

#include "blocks/act.h"
#include "blocks/mixer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BLOCK_MAX_PARAMS (8 + MIXER_MAX_PARAMS)

typedef enum { NORM_LAYER = 0, NORM_RMS = 1 } norm_kind;

static inline const char *norm_kind_name(norm_kind k) { return k == NORM_RMS ? "rmsnorm" : "layernorm"; }

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

/* timm's widths: Hd = int(expansion·C), E = int(conv_ratio·C), in double as Python. */
block_config block_config_make(int dim, double expansion, double conv_ratio, act_kind act,
                               norm_kind norm, float eps, int fc_bias, const mixer_ops *mixer,
                               const mixer_config *mixer_overrides);
ml_status block_config_validate(const block_config *bc);

/* Parameter tensors in timm's order (norm, fc1, mixer, fc2), names relative to
 * the block; returns the count. */
int block_param_specs(const block_config *bc, param_spec *out);
/* Index of the mixer's first tensor in that order. */
int block_mixer_param_offset(const block_config *bc);
uint64_t block_macs(const block_config *bc, int B, int H, int W, const macs_opts *o);

/* The pointwise parts (norm + fc1, then gate + fc2) run on chunks of at most
 * BLOCK_CHUNK_ROWS tokens, a whole number of equal chunks per thread, each with
 * a single-threaded SGEMM, so the normed rows and the gate result stay in cache
 * and no thread waits for another. Fewer than BLOCK_MIN_ROWS_PER_THREAD tokens
 * per thread run unchunked (BLAS threads each op instead). */
#define BLOCK_CHUNK_ROWS 128
#define BLOCK_MIN_ROWS_PER_THREAD 256

/* Chunk count and rows per chunk for rows tokens on threads threads; 0 chunks = unchunked. */
void block_chunking(size_t rows, int threads, size_t *nchunks, size_t *chunk_rows);

/* Buffers a block needs, in floats, for B·H·W tokens and up to `threads` threads. */
typedef struct {
    size_t t, u, m, ws;
} block_sizes;
block_sizes block_buffer_floats(const block_config *bc, int B, int H, int W, int threads);

typedef struct {
    float *t;    /* (threads, BLOCK_CHUNK_ROWS, C) normed rows, one slab per thread */
    float *u;    /* (rows, 2Hd)  fc1 output; the gate result overwrites its g half */
    float *m;    /* (rows, E)    mixer output */
    float *ws;   /* mixer workspace */
    int threads; /* what t was sized for */
} block_buffers;

/* x (B,H,W,C) is updated in place. params in block_param_specs order. */
void block_forward(const block_config *bc, const float *const *params, float *x, int B, int H,
                   int W, const block_buffers *buf);

/* v[r, j] = act(u[r, j]) * (j < Hd-E ? u[r, Hd + j] : m[r, j - (Hd-E)]), written over u[r, j]. */
void gate_forward(float *u, const float *m, size_t rows, int Hd, int E, act_kind act);

/* The CUDA kernel of gate_forward (gated_block.cu, CUDA builds only), on device pointers. */
#ifdef __cplusplus
extern "C" {
#endif
void gate_forward_cuda(float *u, const float *m, size_t rows, int Hd, int E, act_kind act);
#ifdef __cplusplus
}
#endif

/* The block on the GPU (gated_block.cu): whole-tensor ops, buf.t holding every
 * row (block_cuda_floats), the mixer's forward_cuda in the slot. */
#ifdef __cplusplus
extern "C" {
#endif
void block_forward_cuda(const block_config *bc, const float *const *params, float *x, int B, int H, int W,
                        const block_buffers *buf);
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
}
#endif

#endif
