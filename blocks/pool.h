/* Global mean pooling over the grid (the classification head's input). */
#ifndef MIXERLAB_POOL_H
#define MIXERLAB_POOL_H

#include <stddef.h>

/* out (B, C) = mean over L of in (B, L, C). */
void meanpool_forward(float *out, const float *in, int B, size_t L, int C);
/* d_in (B, L, C) += d_out (B, C) / L at every token. */
void meanpool_backward(float *d_in, const float *d_out, int B, size_t L, int C);

/* The CUDA version (pool.cu), on device pointers. */
#ifdef __cplusplus
extern "C" {
#endif
void meanpool_forward_cuda(float *out, const float *in, int B, size_t L, int C);
#ifdef __cplusplus
}
#endif

#endif
