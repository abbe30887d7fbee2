/* Row copies and grid transposes on the GPU: a thread per output element. */
#include "base/cuda_rt.h"
#include "blocks/layout.h"


#define LAYOUT_THREADS 256

static unsigned layout_blocks(size_t n) { return (unsigned)((n + LAYOUT_THREADS - 1) / LAYOUT_THREADS); }

extern "C" void copy_rows_cuda(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows)
{
    if (!rows || !n)
        return;
    cudaError_t e = cudaMemcpy2DAsync(dst, ld_dst * sizeof(float), src, ld_src * sizeof(float), n * sizeof(float),
                                      rows, cudaMemcpyDeviceToDevice, (cudaStream_t)cuda_stream());
    if (e != cudaSuccess)
        cuda_note_failure("CUDA: cudaMemcpy2DAsync of %zu rows failed at %s:%d: %s", rows, __FILE__, __LINE__,
                          cudaGetErrorString(e));
}

__global__ static void scale_kernel(float *x, size_t n, float s)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] *= s;
}

extern "C" void scale_cuda(float *x, size_t n, float s)
{
    if (!n)
        return;
    scale_kernel<<<layout_blocks(n), LAYOUT_THREADS, 0, (cudaStream_t)cuda_stream()>>>(x, n, s);
    CUDA_LAUNCHED();
}

__global__ static void nchw_to_nhwc_kernel(float *out, const float *in, int B, int C, int H, int W)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x, hw = (size_t)H * W;
    if (k >= (size_t)B * C * hw)
        return;
    const size_t c = k % C, p = k / C, bb = p / hw, q = p % hw;
    out[k] = in[(bb * C + c) * hw + q];
}

extern "C" void nchw_to_nhwc_cuda(float *out, const float *in, int B, int C, int H, int W)
{
    const size_t n = (size_t)B * C * H * W;
    if (!n)
        return;
    nchw_to_nhwc_kernel<<<layout_blocks(n), LAYOUT_THREADS, 0, (cudaStream_t)cuda_stream()>>>(out, in, B, C, H, W);
    CUDA_LAUNCHED();
}

/* out element k = (b, i, j, q, c) of (B, h/2, w/2, 4, C) */
__global__ static void merge_2x2_kernel(float *out, const float *x, int B, int h, int w, int C)
{
    const int ho = h / 2, wo = w / 2;
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * ho * wo * 4 * C)
        return;
    const int c = (int)(k % C), q = (int)(k / C % 4);
    const size_t p = k / ((size_t)4 * C);
    const int j = (int)(p % wo), i = (int)(p / wo % ho), b = (int)(p / ((size_t)wo * ho));
    const int di = q & 1, dj = q >> 1; /* VMamba's order: (0,0), (1,0), (0,1), (1,1) */
    out[k] = x[(((size_t)b * h + 2 * i + di) * w + 2 * j + dj) * C + c];
}

extern "C" void merge_2x2_cuda(float *out, const float *x, int B, int h, int w, int C)
{
    const size_t n = (size_t)B * (h / 2) * (w / 2) * 4 * C;
    if (!n)
        return;
    merge_2x2_kernel<<<layout_blocks(n), LAYOUT_THREADS, 0, (cudaStream_t)cuda_stream()>>>(out, x, B, h, w, C);
    CUDA_LAUNCHED();
}

__global__ static void insert_token_kernel(float *out, const float *in, const float *tok, const float *pos, int B,
                                           size_t L, size_t at, int C)
{
    const size_t seq = L + 1, k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * seq * C)
        return;
    const size_t c = k % C, t = k / C % seq, b = k / ((size_t)C * seq);
    const float v = t == at ? tok[c] : in[(b * L + (t < at ? t : t - 1)) * C + c];
    out[k] = v + pos[t * C + c];
}

extern "C" void insert_token_cuda(float *out, const float *in, const float *tok, const float *pos, int B, size_t L,
                                  size_t at, int C)
{
    const size_t n = (size_t)B * (L + 1) * C;
    if (!n)
        return;
    insert_token_kernel<<<layout_blocks(n), LAYOUT_THREADS, 0, (cudaStream_t)cuda_stream()>>>(out, in, tok, pos, B, L,
                                                                                            at, C);
    CUDA_LAUNCHED();
}

__global__ static void embed_kernel(float *out, const float *tok, const float *table, const float *pos, int B,
                                    size_t L, int V, int C)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * L * C)
        return;
    const size_t c = k % C, r = k / C;
    const float t = tok[r];
    const long id = (long)t;
    const size_t row = (size_t)(t >= 0 && id < V ? id : t < 0 ? 0 : V - 1); /* layout.c's clamp */
    const float e = table[row * C + c];
    out[k] = pos ? e + pos[(r % L) * C + c] : e;
}

extern "C" void embed_cuda(float *out, const float *tok, const float *table, const float *pos, int B, size_t L, int V,
                           int C)
{
    const size_t n = (size_t)B * L * C;
    if (!n)
        return;
    embed_kernel<<<layout_blocks(n), LAYOUT_THREADS, 0, (cudaStream_t)cuda_stream()>>>(out, tok, table, pos, B, L, V,
                                                                                     C);
    CUDA_LAUNCHED();
}
