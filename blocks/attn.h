/* attn / attn_causal: multi-head softmax self-attention over all L tokens of
 * a sequence (raster order), head size HS (default 32), qkv channels
 * [q (E) | k (E) | v (E)] split into heads of HS consecutive channels,
 * scores scaled by 1/sqrt(HS); attn_causal masks keys after the query.
 *
 * QKᵀ and PV go through BLAS, one block of ATTN_QUERY_BLOCK queries at a
 * time per thread: the scores held are ATTN_QUERY_BLOCK × L per thread, never
 * L × L, and the causal variant computes only the keys it needs. */
#ifndef MIXERLAB_ATTN_H
#define MIXERLAB_ATTN_H

#include "blocks/mixer.h"

#define ATTN_QUERY_BLOCK 64

/* The op (contract in blocks/backend.h: attn): o (B, L, E) = attention of
 * the q, k, v packed in qkv (B, L, 3E); lse (B, NH, L), may be NULL, keeps
 * each query row's log Σ exp(score) for a backward pass; ws holds
 * attn_core_workspace floats, threads · ATTN_QUERY_BLOCK · L. */
void attn_core(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal, float *ws,
               int threads);
size_t attn_core_workspace(int B, size_t L, int E, int HS, int threads);
/* The backward (contract in blocks/backend.h: attn_bwd), FlashAttention-2's: D_i = Σ dO_i ∘ O_i;
 * per query block, P = exp(s·Q Kᵀ − lse) recomputed, dV += Pᵀ dO, dP = dO Vᵀ, dS = P ∘ (dP − D)·s,
 * dK += dSᵀ Q, dQ += dS K, the products through BLAS; causal blocks stop at their last query's key.
 * One (sequence, head) per task, so each gradient float has one writer and one summation order.
 * ws holds attn_core_backward_workspace floats: per thread, P and dP of one query block against L
 * keys (2 · ATTN_QUERY_BLOCK · L) and the block's D; never L × L. */
void attn_core_backward(float *d_qkv, const float *d_o, const float *qkv, const float *o, const float *lse, int B,
                        size_t L, int E, int HS, int causal, float *ws, int threads);
size_t attn_core_backward_workspace(int B, size_t L, int E, int HS, int threads);

/* The CUDA core (attn.cu, CUDA builds only), no score matrix: head sizes 32
 * and 64 run a tiled kernel (64 queries x 64 keys per step, online softmax),
 * other head sizes up to 256 one warp per query. */
#define ATTN_CUDA_MAX_HS 256
#ifdef __cplusplus
extern "C" {
#endif
void attn_core_cuda(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal);
#ifdef __cplusplus
}
#endif

extern const mixer_ops mixer_attn;
extern const mixer_ops mixer_attn_causal;

#endif
