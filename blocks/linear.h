/* Linear layer through BLAS: y = x·Wᵀ + b with PyTorch's [out, in] weights. */
#ifndef MIXERLAB_LINEAR_H
#define MIXERLAB_LINEAR_H

#include <stddef.h>
#include <stdint.h>

/* out[rows, out_f] = in[rows, in_f] · w[out_f, in_f]ᵀ + b   (accumulate = 0)
 * out[rows, out_f] += in · wᵀ + b                          (accumulate = 1)
 * b may be NULL. Row strides ld_in >= in_f and ld_out >= out_f. */
void linear_forward(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w,
                    const float *b, size_t rows, int in_f, int out_f, int accumulate);

/* The backward (contract in blocks/backend.h: linear_bwd), each term skipped when its pointer is NULL:
 *   d_in[rows, in_f] += d_out · w          (SGEMM, beta 1)
 *   d_w[out_f, in_f] += d_outᵀ · in         (SGEMM, beta 1: BLAS splits the output, never the rows,
 *                                            so the sum over rows has one order per thread count)
 *   d_b[out_f]       += Σ_rows d_out       (column blocks in parallel, rows in order, double sums) */
void linear_backward(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, size_t ld_dout,
                     const float *in, size_t ld_in, const float *w, size_t rows, int in_f, int out_f);

/* d_b[0..n) += Σ_rows x[r, 0..n): the bias gradient of any op, reduced in row order. */
void column_sums_add(float *d_b, const float *x, size_t ld, size_t rows, int n);

static inline uint64_t linear_macs(size_t rows, int in_f, int out_f)
{
    return (uint64_t)rows * (uint64_t)in_f * (uint64_t)out_f;
}

/* The CUDA version (linear.cu): cuBLAS SGEMM on device pointers, in the math mode of cuda_set_math (float32 unless TF32 is asked for). */
#ifdef __cplusplus
extern "C" {
#endif
void linear_forward_cuda(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w, const float *b,
                         size_t rows, int in_f, int out_f, int accumulate);
#ifdef __cplusplus
}
#endif

#endif
