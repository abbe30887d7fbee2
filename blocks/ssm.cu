/* The selective scan's kernels on the GPU: the causal conv1d + SiLU, and the
 * chunked scan of ssm_chunk.h (chunks of 64 steps in parallel, a carry walk
 * across chunks, a second pass writing y). The per-thread work is the
 * functions of ssm_chunk.h, which the CPU tests also run. */
#include "base/cuda_rt.h"
#include "blocks/ssm.h"
#include "blocks/ssm_chunk.h"


#define SSM_CUDA_THREADS 128

__device__ static inline float silu_dev(float x) { return x / (1.0f + expf(-x)); }

__global__ static void conv1d_silu_kernel(float *u, const float *x, size_t ld_x, const float *w, const float *b, int B,
                                          size_t L, int E, int K, int reverse)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * L * E)
        return;
    const int e = (int)(k % E);
    const size_t t = k / E % L, bb = k / ((size_t)E * L);
    float acc = b[e];
    for (int q = 0; q < K; q++) {
        long s = reverse ? (long)t + (K - 1) - q : (long)t - (K - 1) + q;
        if (s >= 0 && s < (long)L)
            acc += w[(size_t)e * K + q] * x[(bb * L + (size_t)s) * ld_x + e];
    }
    u[k] = silu_dev(acc);
}

extern "C" void ssm_conv1d_silu_cuda(float *u, const float *x, size_t ld_x, const float *w, const float *b, int B,
                                     size_t L, int E, int K, int reverse)
{
    const size_t n = (size_t)B * L * E;
    if (!n)
        return;
    conv1d_silu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(u, x, ld_x, w, b, B, L,
                                                                                            E, K, reverse);
    CUDA_LAUNCHED();
}

/* Pass 0 or 1 of the chunked scan (ssm_chunk.h) for one chunk of one sequence
 * (blockIdx.x) and 128 channels (blockIdx.y, a thread per channel, so u, Δ and
 * y accesses are coalesced). The chunk's B and C rows, shared by every
 * channel, are staged in shared memory first. NS > 0 fixes d_state at compile
 * time so the states live in registers; NS = 0 takes it from n_rt. */
template <int PASS, int NS>
__global__ static void __launch_bounds__(SSM_CUDA_THREADS)
chunk_kernel(float *ML_RESTRICT y, int accumulate, const float *ML_RESTRICT u, const float *ML_RESTRICT delta,
             const float *ML_RESTRICT xdbl, size_t ldx, int R, const float *ML_RESTRICT A_log,
             const float *ML_RESTRICT D, int H, int W, int E, int n_rt, int col_major, int reverse,
             float *ML_RESTRICT carry, size_t chunks)
{
    extern __shared__ float bc[];
    const int N = NS ? NS : n_rt, n2 = 2 * N;
    const size_t L = (size_t)H * W, b = blockIdx.x / chunks, c = blockIdx.x % chunks;
    const size_t i0 = c * SSM_CHUNK, len = L - i0 < SSM_CHUNK ? L - i0 : SSM_CHUNK;
    for (int k = threadIdx.x; k < (int)len * n2; k += blockDim.x) {
        const int j = k / n2, q = k % n2;
        const size_t t = ssm_step_token(i0 + j, L, H, W, col_major, reverse);
        bc[k] = xdbl[(b * L + t) * ldx + R + q];
    }
    __syncthreads();
    const int e = blockIdx.y * blockDim.x + threadIdx.x;
    if (e >= E)
        return;
    const size_t off = b * L * E + e;
    ssm_chunk_scan(PASS, N, i0, len, L, H, W, col_major, reverse, E, u + off, delta + off, bc,
                   A_log + (size_t)e * N, D[e], carry + (b * chunks + c) * (size_t)(N + 1) * E + e, y + off,
                   accumulate);
}

/* The carry walk: a thread per (sequence, state, channel), channels fastest;
 * each walks the chunks in groups of SSM_CARRY_GROUP (ssm_chunk.h). */
__global__ static void carry_kernel(float *ML_RESTRICT carry, const float *ML_RESTRICT A_log, int B, int E, int N,
                                    size_t chunks)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * N * E)
        return;
    const int e = (int)(k % E), n = (int)(k / E % N);
    const size_t b = k / ((size_t)E * N);
    ssm_chunk_carry(n, N, chunks, E, A_log[(size_t)e * N + n], carry + b * chunks * (size_t)(N + 1) * E + e);
}

/* The carries' incoming states (all rows but ΣΔ) as the states a backward pass reads. */
__global__ static void states_kernel(float *states, const float *carry, int B, int E, int N, size_t chunks)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * chunks * N * E)
        return;
    const size_t e = k % E, n = k / E % N, bc = k / ((size_t)E * N);
    states[k] = carry[(bc * (N + 1) + n) * E + e];
}

template <int NS>
static void launch_scan(float *y, float *states, int accumulate, const float *u, const float *delta, const float *xdbl, size_t ldx,
                        int R, const float *A_log, const float *D, int B, int H, int W, int E, int N, int col_major,
                        int reverse, float *carry)
{
    cudaStream_t st = (cudaStream_t)cuda_stream();
    const size_t L = (size_t)H * W, chunks = ssm_chunk_count(L);
    const dim3 grid((unsigned)((size_t)B * chunks), (unsigned)((E + SSM_CUDA_THREADS - 1) / SSM_CUDA_THREADS));
    const size_t smem = (size_t)SSM_CHUNK * 2 * N * sizeof(float);
    chunk_kernel<0, NS><<<grid, SSM_CUDA_THREADS, smem, st>>>(y, accumulate, u, delta, xdbl, ldx, R, A_log, D, H, W,
                                                             E, N, col_major, reverse, carry, chunks);
    CUDA_LAUNCHED();
    const size_t walks = (size_t)B * N * E;
    carry_kernel<<<(unsigned)((walks + 255) / 256), 256, 0, st>>>(carry, A_log, B, E, N, chunks);
    CUDA_LAUNCHED();
    chunk_kernel<1, NS><<<grid, SSM_CUDA_THREADS, smem, st>>>(y, accumulate, u, delta, xdbl, ldx, R, A_log, D, H, W,
                                                             E, N, col_major, reverse, carry, chunks);
    CUDA_LAUNCHED();
    if (states) {
        const size_t n = (size_t)B * chunks * N * E;
        states_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(states, carry, B, E, N, chunks);
        CUDA_LAUNCHED();
    }
}

extern "C" void ssm_scan_core_cuda(float *y, float *states, int accumulate, const float *u, const float *delta, const float *xdbl,
                                   size_t ldx, int R, const float *A_log, const float *D, int B, int H, int W, int E,
                                   int N, ssm_order order, int reverse, float *carry)
{
    if ((size_t)B * H * W * E == 0)
        return;
    const int cm = order == SSM_COL_MAJOR;
    switch (N) {
    case 1:
        launch_scan<1>(y, states, accumulate, u, delta, xdbl, ldx, R, A_log, D, B, H, W, E, N, cm, reverse, carry);
        break;
    case 4:
        launch_scan<4>(y, states, accumulate, u, delta, xdbl, ldx, R, A_log, D, B, H, W, E, N, cm, reverse, carry);
        break;
    case 8:
        launch_scan<8>(y, states, accumulate, u, delta, xdbl, ldx, R, A_log, D, B, H, W, E, N, cm, reverse, carry);
        break;
    case 16:
        launch_scan<16>(y, states, accumulate, u, delta, xdbl, ldx, R, A_log, D, B, H, W, E, N, cm, reverse, carry);
        break;
    default:
        launch_scan<0>(y, states, accumulate, u, delta, xdbl, ldx, R, A_log, D, B, H, W, E, N, cm, reverse, carry);
    }
}
