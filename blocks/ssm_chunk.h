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
 * found there and writes (accumulate = 0) or adds to (1) y. N <= max_state.
 * No two pointers reach the same floats (ML_RESTRICT): so the loads of the next
 * step need not wait for this step's store to y. Each step's u and Δ are
 * loaded one step ahead, before the arithmetic of the step before, so on the
 * GPU their latency hides behind it instead of adding to every step. */
#define SSM_CHUNK_MAX_STATE 64
ML_HD static inline void ssm_chunk_scan(int pass, int N, size_t i0, size_t len, size_t L, int H, int W,
                                        int col_major, int reverse, int E, const float *ML_RESTRICT u,
                                        const float *ML_RESTRICT delta, const float *ML_RESTRICT bc,
                                        const float *ML_RESTRICT A_log_e, float De, float *ML_RESTRICT carry,
                                        float *ML_RESTRICT y, int accumulate)
{
    float A[SSM_CHUNK_MAX_STATE], h[SSM_CHUNK_MAX_STATE];
    ML_UNROLL
    for (int n = 0; n < N; n++) {
        A[n] = -expf(A_log_e[n]) * SSM_LOG2E; /* exp(Δ A) = exp2(Δ A log2 e): one ex2 on the GPU */
        h[n] = pass ? carry[(size_t)n * E] : 0.0f;
    }
    float dsum = 0.0f;
    size_t t = 0;
    float d = 0.0f, x = 0.0f;
    if (len) {
        t = ssm_step_token(i0, L, H, W, col_major, reverse);
        d = delta[t * E], x = u[t * E];
    }
    for (size_t j = 0; j < len; j++) {
        /* the next step's inputs first (the last step reloads its own: no read past the chunk) */
        const size_t tn = j + 1 < len ? ssm_step_token(i0 + j + 1, L, H, W, col_major, reverse) : t;
        const float dn = delta[tn * E], xn = u[tn * E];
        const float du = d * x;
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
        t = tn, d = dn, x = xn;
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
 * chunk's S becomes its incoming state; ΣΔ (row N) is left as it was.
 *
 * Only h is carried from chunk to chunk (one FMA each); the loads are not. So
 * SSM_CARRY_GROUP chunks' S and ΣΔ are loaded before any of their stores: on
 * the GPU one memory round trip per group instead of one per chunk (a load
 * after a store through the same pointer cannot be moved above it, and a warp
 * waits for each load it then uses). */
#define SSM_CARRY_GROUP 16
ML_HD static inline void ssm_chunk_carry(int n, int N, size_t chunks, int E, float A_log_en, float *ML_RESTRICT carry)
{
    const float A = -expf(A_log_en) * SSM_LOG2E;
    const size_t stride = (size_t)(N + 1) * E;
    float h = 0.0f;
    for (size_t c0 = 0; c0 < chunks; c0 += SSM_CARRY_GROUP) {
        const size_t g = chunks - c0 < SSM_CARRY_GROUP ? chunks - c0 : SSM_CARRY_GROUP;
        float S[SSM_CARRY_GROUP], dsum[SSM_CARRY_GROUP];
        ML_UNROLL
        for (int k = 0; k < SSM_CARRY_GROUP; k++) {
            S[k] = dsum[k] = 0.0f; /* past the last chunk: never used */
            if ((size_t)k < g) {
                const float *cc = carry + (c0 + (size_t)k) * stride;
                S[k] = cc[(size_t)n * E];
                dsum[k] = cc[(size_t)N * E];
            }
        }
        ML_UNROLL
        for (int k = 0; k < SSM_CARRY_GROUP; k++) {
            if ((size_t)k < g) {
                carry[(c0 + (size_t)k) * stride + (size_t)n * E] = h;
                h = exp2f(A * dsum[k]) * h + S[k];
            }
        }
    }
}

#endif
