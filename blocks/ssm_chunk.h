/* The chunked selective scan: the GPU's algorithm, written once for both
 * sides. The kernels in ssm.cu call these per thread; tests/test_mixers.c runs
 * the same functions in plain loops on the CPU against the sequential
 * reference (ssm_direction_forward), so the algorithm is checked on machines
 * without a GPU.
 *
 * A direction's L steps are cut into chunks of SSM_CHUNK steps. The recurrence
 * h_t = a_t h_{t-1} + b_t (a_t = exp(Δ_t A), b_t = Δ_t u_t B_t) is affine in h,
 * so a chunk maps its incoming state h to exp(A ΣΔ) h + S, where S is the
 * chunk's end state when it starts from zero. Three steps:
 *   pass 0  every (sequence, chunk, channel) scans its chunk from h = 0 and
 *           stores S (N floats) and ΣΔ;
 *   carry   every (sequence, channel, state) walks the chunks in order and
 *           replaces each S by the chunk's incoming state;
 *   pass 1  every (sequence, chunk, channel) scans its chunk again from its
 *           incoming state and writes y.
 * No (L, E, N) history is stored: the carries are (B, chunks, N + 1, E) floats.
 * The price is computing exp(Δ A) twice. */
#ifndef MIXERLAB_SSM_CHUNK_H
#define MIXERLAB_SSM_CHUNK_H

#include "base/common.h"

#include <math.h>
#include <stddef.h>

#define SSM_CHUNK 64
#define SSM_LOG2E 1.44269504088896341f

#ifdef __CUDA_ARCH__
#define ML_UNROLL _Pragma("unroll")
#else
#define ML_UNROLL
#endif

static inline size_t ssm_chunk_count(size_t L) { return (L + SSM_CHUNK - 1) / SSM_CHUNK; }

/* Floats of the carries: (B, chunks, N + 1, E), row N holding ΣΔ. */
static inline size_t ssm_carry_floats(int B, size_t L, int E, int N)
{
    return (size_t)B * ssm_chunk_count(L) * (size_t)(N + 1) * (size_t)E;
}

/* Floats of the states a forward keeps for a backward pass: the state
 * entering each chunk, (B, chunks, N, E). */
static inline size_t ssm_states_floats(int B, size_t L, int E, int N)
{
    return (size_t)B * ssm_chunk_count(L) * (size_t)N * (size_t)E;
}

/* The raster token visited at step i of a direction (row- or column-major,
 * forwards or backwards) on an H x W grid. */
ML_HD static inline size_t ssm_step_token(size_t i, size_t L, int H, int W, int col_major, int reverse)
{
    const size_t ii = reverse ? L - 1 - i : i;
    return col_major ? (ii % (size_t)H) * (size_t)W + ii / (size_t)H : ii;
}

/* One chunk (steps i0 .. i0 + len - 1) of one channel of one sequence.
 * u, delta, y point at the sequence's channel e (token t at [t * E]); bc holds
 * B then C (N each) of step i0 + j at bc[j * 2N]; A_log_e and De are the
 * channel's; carry points at (sequence, chunk, state 0, e), state n at
 * [n * E]. pass 0 writes S and ΣΔ there; pass 1 starts from the incoming state
 * found there and writes (accumulate = 0) or adds to (1) y. N <= max_state. */
#define SSM_CHUNK_MAX_STATE 64
ML_HD static inline void ssm_chunk_scan(int pass, int N, size_t i0, size_t len, size_t L, int H, int W,
                                        int col_major, int reverse, int E, const float *u, const float *delta,
                                        const float *bc, const float *A_log_e, float De, float *carry, float *y,
                                        int accumulate)
{
    float A[SSM_CHUNK_MAX_STATE], h[SSM_CHUNK_MAX_STATE];
    ML_UNROLL
    for (int n = 0; n < N; n++) {
        A[n] = -expf(A_log_e[n]) * SSM_LOG2E; /* exp(Δ A) = exp2(Δ A log2 e): one ex2 on the GPU */
        h[n] = pass ? carry[(size_t)n * E] : 0.0f;
    }
    float dsum = 0.0f;
    for (size_t j = 0; j < len; j++) {
        const size_t t = ssm_step_token(i0 + j, L, H, W, col_major, reverse);
        const float d = delta[t * E], x = u[t * E], du = d * x;
        const float *Bt = bc + j * 2 * (size_t)N, *Ct = Bt + N;
        float acc = De * x;
        ML_UNROLL
        for (int n = 0; n < N; n++) {
            h[n] = exp2f(d * A[n]) * h[n] + du * Bt[n];
            acc += h[n] * Ct[n];
        }
        if (pass)
            y[t * E] = accumulate ? y[t * E] + acc : acc;
        else
            dsum += d;
    }
    if (!pass) {
        ML_UNROLL
        for (int n = 0; n < N; n++)
            carry[(size_t)n * E] = h[n];
        carry[(size_t)N * E] = dsum;
    }
}

/* The carry walk for state n of one channel of one sequence: carry points at
 * (sequence, chunk 0, state 0, e); chunks are (N + 1) * E floats apart. Each
 * chunk's S becomes its incoming state; ΣΔ (row N) is left as it was. */
ML_HD static inline void ssm_chunk_carry(int n, int N, size_t chunks, int E, float A_log_en, float *carry)
{
    const float A = -expf(A_log_en) * SSM_LOG2E;
    const size_t stride = (size_t)(N + 1) * E;
    float h = 0.0f;
    for (size_t c = 0; c < chunks; c++) {
        float *cc = carry + c * stride;
        const float S = cc[(size_t)n * E], dsum = cc[(size_t)N * E];
        cc[(size_t)n * E] = h;
        h = exp2f(A * dsum) * h + S;
    }
}

#endif
