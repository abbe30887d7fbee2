/* The selective scan on the GPU. A first, plain version: one thread per
 * (sequence, channel) walks the tokens in the direction's order with its N
 * states in registers/local memory, as the CPU reference does; the
 * projections go through cuBLAS. Correct by construction of the same math;
 * not yet the chunked parallel scan that would approach the bandwidth floor. */
#include "blocks/linear.h"
#include "blocks/ssm.h"
#include "harness/cuda_util.h"


__device__ static inline float softplus_dev(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
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
    if (n)
        conv1d_silu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(u, x, ld_x, w, b, B, L,
                                                                                                E, K, reverse);
}

__global__ static void softplus_kernel(float *d, size_t n)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        d[i] = softplus_dev(d[i]);
}

__global__ static void scan_kernel(float *y, int accumulate, const float *u, const float *delta, const float *xdbl,
                                   size_t ldx, int R, const float *A_log, const float *D, int B, int H, int W, int E,
                                   int N, int col_major, int reverse)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= (size_t)B * E)
        return;
    const int e = (int)(k % E);
    const size_t bb = k / E, L = (size_t)H * W;
    float A[SSM_CUDA_MAX_STATE], h[SSM_CUDA_MAX_STATE];
    for (int n = 0; n < N; n++) {
        A[n] = -expf(A_log[(size_t)e * N + n]);
        h[n] = 0.0f;
    }
    const float De = D[e];
    for (size_t i = 0; i < L; i++) {
        const size_t ii = reverse ? L - 1 - i : i;
        const size_t t = bb * L + (col_major ? (ii % H) * W + ii / H : ii);
        const float d = delta[t * E + e], x = u[t * E + e], du = d * x;
        const float *Bt = xdbl + t * ldx + R, *Ct = Bt + N;
        float acc = De * x;
        for (int n = 0; n < N; n++) {
            h[n] = expf(d * A[n]) * h[n] + du * Bt[n];
            acc += h[n] * Ct[n];
        }
        y[t * E + e] = accumulate ? y[t * E + e] + acc : acc;
    }
}

extern "C" void ssm_direction_forward_cuda(float *y, int accumulate, const float *u, const ssm_params *p, int B, int H,
                                           int W, int E, int N, int R, ssm_order order, int reverse, float *ws)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L, ldx = (size_t)R + 2 * (size_t)N;
    float *xdbl = ws, *delta = xdbl + rows * ldx;
    cudaStream_t st = (cudaStream_t)cuda_stream();
    linear_forward_cuda(xdbl, ldx, u, (size_t)E, p->x_proj, NULL, rows, E, (int)ldx, 0);
    linear_forward_cuda(delta, (size_t)E, xdbl, ldx, p->dt_proj, p->dt_bias, rows, R, E, 0);
    const size_t n = rows * E;
    if (n)
        softplus_kernel<<<(unsigned)((n + 255) / 256), 256, 0, st>>>(delta, n);
    const size_t chans = (size_t)B * E;
    if (chans)
        scan_kernel<<<(unsigned)((chans + 127) / 128), 128, 0, st>>>(y, accumulate, u, delta, xdbl, ldx, R, p->A_log, p->D,
                                                                    B, H, W, E, N, order == SSM_COL_MAJOR, reverse);
}

__global__ static void scale_kernel(float *x, size_t n, float s)
{
    const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        x[i] *= s;
}

extern "C" void ssm_scale_cuda(float *x, size_t n, float s)
{
    if (n)
        scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(x, n, s);
}
