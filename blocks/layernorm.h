/* LayerNorm over the channel (last) dimension of channels-last rows. */
#ifndef MIXERLAB_LAYERNORM_H
#define MIXERLAB_LAYERNORM_H

#include <stddef.h>
#include <stdint.h>

/* out[r, 0:C] = (in[r] - mean) / sqrt(var + eps) * w + b, biased variance as
 * PyTorch. Rows are ld_in / ld_out floats apart; out may alias in. mean and
 * rstd (rows floats each, may be NULL) keep each row's mean and 1/sqrt(var + eps)
 * for a backward pass. */
void layernorm_forward(float *out, size_t ld_out, float *mean, float *rstd, const float *in, size_t ld_in,
                       const float *w /* [C] */, const float *b /* [C] */, size_t rows, int C,
                       float eps);

/* fvcore's count: 5 per input element (mean, sub, var, scale, shift). */
static inline uint64_t layernorm_macs(size_t rows, int C) { return 5ull * rows * (uint64_t)C; }

/* The CUDA kernel (layernorm.cu, CUDA builds only): the same on device pointers, one warp per row. */
#ifdef __cplusplus
extern "C" {
#endif
void layernorm_forward_cuda(float *out, size_t ld_out, float *mean, float *rstd, const float *in, size_t ld_in,
                            const float *w, const float *b, size_t rows, int C, float eps);
#ifdef __cplusplus
}
#endif

#endif
