/* Attention on the GPU without an L x L matrix anywhere: one warp per query,
 * keys streamed with an online softmax (running max and sum), each lane
 * holding HS/32 output dimensions. A first, plain version; the causal variant
 * stops at the query's own position. */
#include "blocks/attn.h"
#include "harness/cuda_util.h"


__global__ static void attn_kernel(float *o, const float *qkv, int B, size_t L, int E, int HS, int causal, float scale)
{
    const size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32, NH = E / HS;
    if (warp >= (size_t)B * NH * L)
        return;
    const size_t i = warp % L, h = warp / L % NH, b = warp / (L * NH), ld = 3 * (size_t)E;
    const float *base = qkv + b * L * ld;
    const float *q = base + i * ld + h * HS;
    const int per = (HS + 31) / 32;
    float qv[ATTN_CUDA_MAX_HS / 32], acc[ATTN_CUDA_MAX_HS / 32];
    for (int r = 0; r < per; r++) {
        const int d = lane + 32 * r;
        qv[r] = d < HS ? q[d] : 0.0f;
        acc[r] = 0.0f;
    }
    float mx = -INFINITY, sum = 0.0f;
    const size_t nkey = causal ? i + 1 : L;
    for (size_t j = 0; j < nkey; j++) {
        const float *k = base + j * ld + E + h * HS, *v = base + j * ld + 2 * (size_t)E + h * HS;
        float s = 0.0f;
        for (int r = 0; r < per; r++) {
            const int d = lane + 32 * r;
            if (d < HS)
                s += qv[r] * k[d];
        }
        for (int off = 16; off > 0; off /= 2)
            s += __shfl_xor_sync(0xffffffffu, s, off);
        s *= scale;
        const float nm = fmaxf(mx, s), corr = expf(mx - nm), pj = expf(s - nm);
        sum = sum * corr + pj;
        for (int r = 0; r < per; r++) {
            const int d = lane + 32 * r;
            acc[r] = acc[r] * corr + (d < HS ? pj * v[d] : 0.0f);
        }
        mx = nm;
    }
    float *out = o + (b * L + i) * E + h * HS;
    for (int r = 0; r < per; r++) {
        const int d = lane + 32 * r;
        if (d < HS)
            out[d] = acc[r] / sum;
    }
}

extern "C" void attn_core_cuda(float *o, const float *qkv, int B, size_t L, int E, int HS, int causal)
{
    const size_t warps = (size_t)B * (E / HS) * L;
    if (warps)
        attn_kernel<<<(unsigned)((warps + 7) / 8), 256, 0, (cudaStream_t)cuda_stream()>>>(
            o, qkv, B, L, E, HS, causal, 1.0f / sqrtf((float)HS));
}
