/* Attention on the GPU without an L x L matrix anywhere.
 *
 * Head sizes 32 and 64 (the common ones): a tiled kernel. A block of 256
 * threads owns 64 queries of one head and walks the keys 64 at a time, Q, K,
 * V and the tile's probabilities P in shared memory, with an online softmax
 * (running row max and sum) so no score survives its tile. Thread (ty, tx) of
 * 16 x 16 holds rows 4ty .. 4ty+3: scores for keys tx + 16j (j < 4) and
 * outputs for dimensions tx·HS/16 onwards, so the row statistics never leave
 * the 16 lanes of a half-warp. Scores are kept in base-2 units (q is scaled
 * by log2(e)/sqrt(HS) on load) so each probability is one exp2f. The causal
 * variant stops at the diagonal tile, masks inside it, and starts the longest
 * query tiles first.
 *
 * Other head sizes: the plain kernel, one warp per query, keys streamed with
 * an online softmax and a warp reduction per key. */
#include "blocks/attn.h"
#include "base/cuda_rt.h"


__global__ static void attn_kernel(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal,
                                   float scale)
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
    if (lse && lane == 0)
        lse[(b * NH + h) * L + i] = mx + logf(sum);
    float *out = o + (b * L + i) * E + h * HS;
    for (int r = 0; r < per; r++) {
        const int d = lane + 32 * r;
        if (d < HS)
            out[d] = acc[r] / sum;
    }
}

#define AT_TILE 64
#define AT_THREADS 256

template <int HS>
__global__ static void __launch_bounds__(AT_THREADS)
attn_tiled_kernel(float *o, float *lse, const float *qkv, size_t L, int E, int causal, float qscale)
{
    constexpr int LD = HS + 4, LDP = AT_TILE + 4, CPT = HS / 16, V4 = HS / 4;
    extern __shared__ float4 smem4[];
    float *Qs = reinterpret_cast<float *>(smem4), *Ks = Qs + AT_TILE * LD, *Vs = Ks + AT_TILE * LD,
          *Ps = Vs + AT_TILE * LD;
    const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16, h = blockIdx.y;
    const size_t nqt = (L + AT_TILE - 1) / AT_TILE, seq = blockIdx.x / nqt, bx = blockIdx.x % nqt;
    const size_t qt = causal ? nqt - 1 - bx : bx, q0 = qt * AT_TILE;
    const size_t ld = 3 * (size_t)E;
    const float *base = qkv + seq * L * ld + (size_t)h * HS;

    for (int f = tid; f < AT_TILE * V4; f += AT_THREADS) {
        const int r = f / V4, c = f % V4;
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (q0 + r < L) {
            v = *reinterpret_cast<const float4 *>(base + (q0 + r) * ld + 4 * c);
            v.x *= qscale, v.y *= qscale, v.z *= qscale, v.w *= qscale;
        }
        *reinterpret_cast<float4 *>(Qs + r * LD + 4 * c) = v;
    }
    float acc[4][CPT], m[4], l[4];
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY, l[i] = 0.0f;
        #pragma unroll
        for (int c = 0; c < CPT; c++)
            acc[i][c] = 0.0f;
    }
    const size_t nkt = causal ? qt + 1 : nqt;
    for (size_t kt = 0; kt < nkt; kt++) {
        const size_t k0 = kt * AT_TILE;
        __syncthreads(); /* the previous tile's K, V and P are no longer read */
        for (int f = tid; f < AT_TILE * V4; f += AT_THREADS) {
            const int r = f / V4, c = f % V4;
            float4 kv = make_float4(0.f, 0.f, 0.f, 0.f), vv = kv;
            if (k0 + r < L) {
                kv = *reinterpret_cast<const float4 *>(base + (k0 + r) * ld + E + 4 * c);
                vv = *reinterpret_cast<const float4 *>(base + (k0 + r) * ld + 2 * (size_t)E + 4 * c);
            }
            *reinterpret_cast<float4 *>(Ks + r * LD + 4 * c) = kv;
            *reinterpret_cast<float4 *>(Vs + r * LD + 4 * c) = vv;
        }
        __syncthreads();
        float s[4][4];
        #pragma unroll
        for (int i = 0; i < 4; i++)
            #pragma unroll
            for (int j = 0; j < 4; j++)
                s[i][j] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < HS; d += 4) {
            float4 q[4], k[4];
            #pragma unroll
            for (int i = 0; i < 4; i++)
                q[i] = *reinterpret_cast<const float4 *>(Qs + (4 * ty + i) * LD + d);
            #pragma unroll
            for (int j = 0; j < 4; j++)
                k[j] = *reinterpret_cast<const float4 *>(Ks + (tx + 16 * j) * LD + d);
            #pragma unroll
            for (int i = 0; i < 4; i++)
                #pragma unroll
                for (int j = 0; j < 4; j++)
                    s[i][j] += q[i].x * k[j].x + q[i].y * k[j].y + q[i].z * k[j].z + q[i].w * k[j].w;
        }
        /* masks: keys past the end, and (causal, diagonal tile) keys after the query */
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            const size_t key = k0 + tx + 16 * j;
            #pragma unroll
            for (int i = 0; i < 4; i++)
                if (key >= L || (causal && key > q0 + 4 * ty + i))
                    s[i][j] = -INFINITY;
        }
        #pragma unroll
        for (int i = 0; i < 4; i++) {
            float mt = fmaxf(fmaxf(s[i][0], s[i][1]), fmaxf(s[i][2], s[i][3]));
            #pragma unroll
            for (int off = 8; off > 0; off /= 2)
                mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, off));
            const float mn = fmaxf(m[i], mt);
            const float corr = mn == -INFINITY ? 1.0f : exp2f(m[i] - mn);
            float rs = 0.0f;
            #pragma unroll
            for (int j = 0; j < 4; j++) {
                const float p = s[i][j] == -INFINITY ? 0.0f : exp2f(s[i][j] - mn);
                Ps[(4 * ty + i) * LDP + tx + 16 * j] = p;
                rs += p;
            }
            l[i] = l[i] * corr + rs;
            #pragma unroll
            for (int c = 0; c < CPT; c++)
                acc[i][c] *= corr;
            m[i] = mn;
        }
        __syncthreads();
#pragma unroll 2
        for (int k = 0; k < AT_TILE; k += 4) {
            float4 p[4];
            #pragma unroll
            for (int i = 0; i < 4; i++)
                p[i] = *reinterpret_cast<const float4 *>(Ps + (4 * ty + i) * LDP + k);
            #pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                const float *vr = Vs + (k + kk) * LD + CPT * tx;
                float v[CPT];
                if constexpr (CPT == 4) {
                    const float4 t = *reinterpret_cast<const float4 *>(vr);
                    v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
                } else {
                    const float2 t = *reinterpret_cast<const float2 *>(vr);
                    v[0] = t.x, v[1] = t.y;
                }
                #pragma unroll
                for (int i = 0; i < 4; i++) {
                    const float pk = kk == 0 ? p[i].x : kk == 1 ? p[i].y : kk == 2 ? p[i].z : p[i].w;
                    #pragma unroll
                    for (int c = 0; c < CPT; c++)
                        acc[i][c] += pk * v[c];
                }
            }
        }
    }
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        float sum = l[i];
        #pragma unroll
        for (int off = 8; off > 0; off /= 2)
            sum += __shfl_xor_sync(0xffffffffu, sum, off);
        const size_t q = q0 + 4 * ty + i;
        if (q < L) {
            float *out = o + (seq * L + q) * E + (size_t)h * HS + CPT * tx;
            #pragma unroll
            for (int c = 0; c < CPT; c++)
                out[c] = acc[i][c] / sum;
            /* log Σ exp of the scores in natural units: they were kept in base 2 */
            if (lse && tx == 0)
                lse[(seq * gridDim.y + h) * L + q] = (m[i] + log2f(sum)) * 0.6931471805599453f;
        }
    }
}

template <int HS>
static void launch_tiled(float *o, float *lse, const float *qkv, int B, size_t L, int E, int causal)
{
    constexpr size_t smem = (3 * (size_t)AT_TILE * (HS + 4) + (size_t)AT_TILE * (AT_TILE + 4)) * sizeof(float);
    static int attr_set = 0; /* above 48 KiB a kernel must opt in, once per process */
    if (!attr_set) {
        const cudaError_t e =
            cudaFuncSetAttribute(attn_tiled_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) { /* the launch would fail too: say why, once */
            cuda_note_failure("attention: %zu bytes of shared memory refused for head size %d at %s:%d: %s", smem, HS,
                              __FILE__, __LINE__, cudaGetErrorString(e));
            return;
        }
        attr_set = 1;
    }
    const dim3 grid((unsigned)((L + AT_TILE - 1) / AT_TILE * B), (unsigned)(E / HS)); /* sequences in x: B may pass 65535 */
    attn_tiled_kernel<HS><<<grid, AT_THREADS, smem, (cudaStream_t)cuda_stream()>>>(
        o, lse, qkv, L, E, causal, 1.4426950408889634f / sqrtf((float)HS));
    CUDA_LAUNCHED();
}

extern "C" void attn_core_cuda(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal)
{
    if ((size_t)B * L * E == 0)
        return;
    if (HS == 32)
        return launch_tiled<32>(o, lse, qkv, B, L, E, causal);
    if (HS == 64)
        return launch_tiled<64>(o, lse, qkv, B, L, E, causal);
    const size_t warps = (size_t)B * (E / HS) * L;
    attn_kernel<<<(unsigned)((warps + 7) / 8), 256, 0, (cudaStream_t)cuda_stream()>>>(
        o, lse, qkv, B, L, E, HS, causal, 1.0f / sqrtf((float)HS));
    CUDA_LAUNCHED();
}
