/* Depthwise KxK conv on the GPU, channels-last.
 *
 * K = 3, 5, 7: a tiled kernel. A block of 8 warps owns 32 channels (a lane per
 * channel, so every global load and store is one 128-byte line) of an 8 x 16
 * pixel tile; it stages the tile and its halo in shared memory once, then each
 * thread computes 16 horizontally adjacent outputs of one row with its
 * channel's K² weights in registers, reading each input row of the window
 * once per kernel row.
 *
 * Other K: one thread per output element, consecutive threads on consecutive
 * channels, taps summed in the CPU reference's order. */
#include "base/cuda_rt.h"
#include "blocks/dwconv.h"

__global__ static void dwconv_kernel(float *out, const float *in, size_t ld_in, const float *w, const float *b,
                                     int B, int H, int W, int C, int K)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * H * W * C)
        return;
    const int c = (int)(k % C);
    const size_t p = k / C;
    const int x = (int)(p % W), h = (int)(p / W % H), bb = (int)(p / ((size_t)W * H)), P = K / 2;
    float acc = b[c];
    for (int kh = 0; kh < K; kh++) {
        const int ih = h + kh - P;
        if (ih < 0 || ih >= H)
            continue;
        for (int kw = 0; kw < K; kw++) {
            const int iw = x + kw - P;
            if (iw < 0 || iw >= W)
                continue;
            acc += in[(((size_t)bb * H + ih) * W + iw) * ld_in + c] * w[((size_t)c * K + kh) * K + kw];
        }
    }
    out[k] = acc;
}

#define DW_TH 8  /* output rows per tile: one per warp */
#define DW_TW 16 /* output columns per tile: all of them per thread */
#define DW_CH 32 /* channels per block: one per lane */

template <int K>
__global__ static void __launch_bounds__(DW_TH * DW_CH)
dwconv_tiled_kernel(float *out, const float *in, size_t ld_in, const float *w, const float *b, int H, int W, int C)
{
    constexpr int P = K / 2, IW = DW_TW + K - 1, IH = DW_TH + K - 1;
    __shared__ float tile[IH * IW * DW_CH];
    const int lane = threadIdx.x % DW_CH, row = threadIdx.x / DW_CH;
    const int tiles_x = (W + DW_TW - 1) / DW_TW, tiles = tiles_x * ((H + DW_TH - 1) / DW_TH);
    const int t = (int)(blockIdx.x % tiles), x0 = t % tiles_x * DW_TW, y0 = t / tiles_x * DW_TH;
    const int c = (int)blockIdx.y * DW_CH + lane;
    const size_t img = (size_t)(blockIdx.x / tiles) * H;
    for (int f = threadIdx.x; f < IH * IW * DW_CH; f += DW_TH * DW_CH) {
        const int pix = f / DW_CH, ih = y0 - P + pix / IW, iw = x0 - P + pix % IW;
        float v = 0.0f;
        if (c < C && ih >= 0 && ih < H && iw >= 0 && iw < W)
            v = in[((img + ih) * W + iw) * ld_in + c];
        tile[f] = v;
    }
    float wt[K * K];
    const float bias = c < C ? b[c] : 0.0f;
#pragma unroll
    for (int k = 0; k < K * K; k++)
        wt[k] = c < C ? w[(size_t)c * K * K + k] : 0.0f;
    __syncthreads();
    const int y = y0 + row;
    if (c >= C || y >= H)
        return;
    float acc[DW_TW];
#pragma unroll
    for (int x = 0; x < DW_TW; x++)
        acc[x] = bias;
#pragma unroll
    for (int kh = 0; kh < K; kh++) {
        float v[IW];
        const float *tr = tile + (size_t)(row + kh) * IW * DW_CH + lane;
#pragma unroll
        for (int x = 0; x < IW; x++)
            v[x] = tr[x * DW_CH];
#pragma unroll
        for (int kw = 0; kw < K; kw++)
#pragma unroll
            for (int x = 0; x < DW_TW; x++)
                acc[x] += v[x + kw] * wt[kh * K + kw];
    }
    float *o = out + ((img + y) * W + x0) * C + c;
#pragma unroll
    for (int x = 0; x < DW_TW; x++)
        if (x0 + x < W)
            o[(size_t)x * C] = acc[x];
}

template <int K>
static void launch_tiled(float *out, const float *in, size_t ld_in, const float *w, const float *b, int B, int H,
                         int W, int C)
{
    const size_t tiles = (size_t)((W + DW_TW - 1) / DW_TW) * ((H + DW_TH - 1) / DW_TH);
    const dim3 grid((unsigned)(tiles * B), (unsigned)((C + DW_CH - 1) / DW_CH)); /* images in x: B may pass 65535 */
    dwconv_tiled_kernel<K><<<grid, DW_TH * DW_CH, 0, (cudaStream_t)cuda_stream()>>>(out, in, ld_in, w, b, H, W, C);
    CUDA_LAUNCHED();
}

extern "C" void dwconv_forward_cuda(float *out, const float *in, size_t ld_in, const float *w, const float *b, int B,
                                    int H, int W, int C, int K)
{
    const size_t n = (size_t)B * H * W * C;
    if (n && K == 3)
        return launch_tiled<3>(out, in, ld_in, w, b, B, H, W, C);
    if (n && K == 5)
        return launch_tiled<5>(out, in, ld_in, w, b, B, H, W, C);
    if (n && K == 7)
        return launch_tiled<7>(out, in, ld_in, w, b, B, H, W, C);
    if (!n)
        return;
    dwconv_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(out, in, ld_in, w, b, B, H, W, C, K);
    CUDA_LAUNCHED();
}
