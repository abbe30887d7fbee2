/* Linear on the GPU: the bias broadcast by a kernel, then one cuBLAS SGEMM.
 * Row-major y = x·Wᵀ is, in cuBLAS's column-major terms, yᵀ = W·xᵀ with W
 * read transposed from its [out, in] storage. */
#include "blocks/linear.h"
#include "harness/cuda_util.h"

#include <cublas_v2.h>

__global__ static void bias_kernel(float *out, size_t ld_out, const float *b, size_t rows, int out_f, int accumulate)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= rows * (size_t)out_f)
        return;
    const size_t r = k / out_f;
    const int j = (int)(k % out_f);
    out[r * ld_out + j] = accumulate ? out[r * ld_out + j] + b[j] : b[j];
}

extern "C" void linear_forward_cuda(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w,
                                    const float *b, size_t rows, int in_f, int out_f, int accumulate)
{
    const size_t n = rows * (size_t)out_f;
    if (b && n)
        bias_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(out, ld_out, b, rows, out_f,
                                                                                         accumulate);
    const float one = 1.0f, beta = (b || accumulate) ? 1.0f : 0.0f;
    if (rows)
        cublasSgemm((cublasHandle_t)cuda_blas(), CUBLAS_OP_T, CUBLAS_OP_N, out_f, (int)rows, in_f, &one, w, in_f, in,
                    (int)ld_in, &beta, out, (int)ld_out);
}
