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

/* The backward (contract in blocks/backend.h: layernorm_bwd): with x̂ = (in - mean)·rstd from the
 * forward's saved statistics and ĝ = d_out·w,
 *   d_in += rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂)),  d_w += Σ_rows d_out·x̂,  d_b += Σ_rows d_out.
 * Any of d_in, d_w, d_b may be NULL (not wanted). d_in is row-parallel; d_w and d_b are reduced over
 * the rows in row order by column blocks, each block on one thread, so no partial sums depend on the
 * thread count. */
void layernorm_backward(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, size_t ld_dout,
                        const float *in, size_t ld_in, const float *w, const float *mean, const float *rstd,
                        size_t rows, int C);

/* d_w (and d_b when not NULL) += Σ_rows d_out·x̂ (and d_out), x̂ = (in − mean)·rstd (mean NULL: x̂ =
 * in·rstd, RMSNorm's); shared by the norms. Column blocks in parallel, rows in order, double sums. */
void norm_param_grads(float *d_w, float *d_b, const float *d_out, size_t ld_dout, const float *in, size_t ld_in,
                      const float *mean, const float *rstd, size_t rows, int C);

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
