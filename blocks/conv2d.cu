/* Dense conv on the GPU: im2col (columns ordered (cin, kh, kw) like the
 * weights) for as many output pixels as the workspace holds, then cuBLAS. */
#include "blocks/conv2d.h"
#include "blocks/linear.h"
#include "base/cuda_rt.h"

__global__ static void im2col_kernel(float *col, const float *in, int H, int W, int Cin, int K, int stride, int pad,
                                     int Ho, int Wo, size_t r0, size_t m)
{
    const size_t kcols = (size_t)Cin * K * K;
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= m * kcols)
        return;
    const size_t i = k / kcols, q = k % kcols, r = r0 + i;
    const int cin = (int)(q / ((size_t)K * K)), kh = (int)(q / K % K), kw = (int)(q % K);
    const int ow = (int)(r % Wo), oh = (int)(r / Wo % Ho), bb = (int)(r / ((size_t)Wo * Ho));
    const int ih = oh * stride - pad + kh, iw = ow * stride - pad + kw;
    col[k] = (ih < 0 || ih >= H || iw < 0 || iw >= W) ? 0.0f : in[(((size_t)bb * H + ih) * W + iw) * Cin + cin];
}

extern "C" void conv2d_forward_cuda(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s,
                                    int B, int H, int W, float *ws, size_t ws_floats)
{
    const int Ho = conv2d_out_size(s, H), Wo = conv2d_out_size(s, W);
    const size_t kcols = (size_t)s->cin * s->k * s->k, rows = (size_t)B * Ho * Wo;
    size_t chunk = ws_floats / kcols;
    if (chunk == 0) { /* the plan always sizes at least one row */
        cuda_note_failure("conv2d: workspace of %zu floats holds no im2col row of %zu", ws_floats, kcols);
        return;
    }
    for (size_t r0 = 0; r0 < rows; r0 += chunk) {
        const size_t m = rows - r0 < chunk ? rows - r0 : chunk, n = m * kcols;
        im2col_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(
            ws, in, H, W, s->cin, s->k, s->stride, s->pad, Ho, Wo, r0, m);
        CUDA_LAUNCHED();
        linear_forward_cuda(out + r0 * s->cout, (size_t)s->cout, ws, kcols, w, b, m, (int)kcols, s->cout, 0);
    }
}
