/* RMSNorm over the channel (last) dimension: y = x / sqrt(mean(x²) + eps) · w
 * (Vim's norm). Counted as 4 MACs per element under fvcore (square, mean,
 * rsqrt-scale, weight), one less than LayerNorm's 5: no mean subtraction. */
#ifndef MIXERLAB_RMSNORM_H
#define MIXERLAB_RMSNORM_H

#include <stddef.h>
#include <stdint.h>

/* rstd (rows floats, may be NULL) keeps each row's 1/sqrt(mean(x²) + eps) for a backward pass. */
void rmsnorm_forward(float *out, size_t ld_out, float *rstd, const float *in, size_t ld_in, const float *w /* [C] */,
                     size_t rows, int C, float eps);

/* The backward (contract in blocks/backend.h: rmsnorm_bwd): with r = rstd, ĝ = d_out·w,
 *   d_in += r·ĝ − in · r³ · mean(ĝ·in),  d_w += Σ_rows d_out·in·r.
 * d_in or d_w may be NULL; d_w is reduced in row order per column block (as layernorm_backward). */
void rmsnorm_backward(float *d_in, size_t ld_din, float *d_w, const float *d_out, size_t ld_dout, const float *in,
                      size_t ld_in, const float *w, const float *rstd, size_t rows, int C);

static inline uint64_t rmsnorm_macs(size_t rows, int C) { return 4ull * rows * (uint64_t)C; }

/* The CUDA kernel (rmsnorm.cu, CUDA builds only): the same on device pointers, one warp per row. */
#ifdef __cplusplus
extern "C" {
#endif
void rmsnorm_forward_cuda(float *out, size_t ld_out, float *rstd, const float *in, size_t ld_in, const float *w,
                          size_t rows, int C, float eps);
#ifdef __cplusplus
}
#endif

#endif
