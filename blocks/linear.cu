/* Linear on the GPU: the bias broadcast by a kernel, then one cuBLAS SGEMM.
 * Row-major y = x·Wᵀ is, in cuBLAS's column-major terms, yᵀ = W·xᵀ with W
 * read transposed from its [out, in] storage. */
#include "blocks/linear.h"
#include "base/cuda_rt.h"


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
    if (!n)
        return;
    if (b) {
        bias_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(out, ld_out, b, rows, out_f,
                                                                                         accumulate);
        CUDA_LAUNCHED();
    }
    const float one = 1.0f, beta = (b || accumulate) ? 1.0f : 0.0f;
    void *h = cuda_blas();
    /* cuBLAS takes int dimensions: taller products go in row chunks */
    const size_t max_rows = (size_t)1 << 28;
    for (size_t r0 = 0; h && r0 < rows; r0 += max_rows) {
        const size_t m = rows - r0 < max_rows ? rows - r0 : max_rows;
        cuda_blas_sgemm(h, 1, 0, out_f, (int)m, in_f, &one, w, in_f, in + r0 * ld_in, (int)ld_in, &beta,
                        out + r0 * ld_out, (int)ld_out, __FILE__, __LINE__);
    }
}
