#include "blocks/ssm.h"

#include "blocks/act.h"
#include "blocks/ssm_chunk.h"
#include "blocks/vmath.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

ML_CLONES static void conv1d_silu_seq(float *u, const float *x, size_t ld_x, const float *w,
                                      const float *b, size_t L, int E, int K, int reverse)
{
    for (size_t t = 0; t < L; t++) {
        float *o = u + t * (size_t)E;
        memcpy(o, b, (size_t)E * sizeof *o);
        for (int k = 0; k < K; k++) {
            /* forward: tap k reads t - (K-1) + k; on the flipped sequence t + (K-1) - k */
            long s = reverse ? (long)t + (K - 1) - k : (long)t - (K - 1) + k;
            if (s < 0 || s >= (long)L)
                continue;
            const float *xs = x + (size_t)s * ld_x;
            for (int e = 0; e < E; e++)
                o[e] += w[(size_t)e * K + k] * xs[e];
        }
        int e = 0;
        for (; e + 8 <= E; e += 8) {
            v8f v;
            V8_LOAD(v, o + e);
            v = v8_silu(v);
            V8_STORE(o + e, v);
        }
        for (; e < E; e++)
            o[e] = act_silu(o[e]);
    }
}

void ssm_conv1d_silu(float *u, const float *x, size_t ld_x, const float *w, const float *b, int B,
                     size_t L, int E, int K, int reverse)
{
#pragma omp parallel for schedule(static) if ((size_t)B * L * E > 32768)
    for (int bb = 0; bb < B; bb++)
        conv1d_silu_seq(u + (size_t)bb * L * E, x + (size_t)bb * L * ld_x, ld_x, w, b, L, E, K, reverse);
}

/* ---- the conv1d + SiLU backward ---- */

#define CONV1D_BWD_CH 16 /* channels per task: each task owns its channels of d_x, d_w and d_b */
#define CONV1D_MAX_K 16

/* Channels e0 .. e0+nc-1 of every sequence: the pre-activation z recomputed tap by tap as the
 * forward sums it, dz = d_u · SiLU'(z), then each tap's share scattered back into d_x (rows t-K+1 ..
 * t, in t order) and summed into d_w, d_b (double, in (b, t) order). */
static void conv1d_silu_bwd_channels(float *d_x, size_t ld_dx, float *d_w, float *d_b, const float *d_u,
                                     const float *x, size_t ld_x, const float *w, const float *b, int B, size_t L,
                                     int E, int K, int reverse, int e0, int nc)
{
    double sw[CONV1D_BWD_CH][CONV1D_MAX_K] = {{0}}, sb[CONV1D_BWD_CH] = {0};
    for (int bb = 0; bb < B; bb++) {
        const float *xs0 = x + (size_t)bb * L * ld_x;
        float *dxs0 = d_x ? d_x + (size_t)bb * L * ld_dx : NULL;
        for (size_t t = 0; t < L; t++) {
            float z[CONV1D_BWD_CH], dz[CONV1D_BWD_CH];
            for (int j = 0; j < nc; j++)
                z[j] = b[e0 + j];
            for (int k = 0; k < K; k++) {
                long s = reverse ? (long)t + (K - 1) - k : (long)t - (K - 1) + k;
                if (s < 0 || s >= (long)L)
                    continue;
                const float *xs = xs0 + (size_t)s * ld_x + e0;
                for (int j = 0; j < nc; j++)
                    z[j] += w[(size_t)(e0 + j) * K + k] * xs[j];
            }
            const float *du = d_u + ((size_t)bb * L + t) * E + e0;
            for (int j = 0; j < nc; j++) {
                dz[j] = du[j] * act_grad(ACT_SILU, z[j]);
                sb[j] += dz[j];
            }
            for (int k = 0; k < K; k++) {
                long s = reverse ? (long)t + (K - 1) - k : (long)t - (K - 1) + k;
                if (s < 0 || s >= (long)L)
                    continue;
                const float *xs = xs0 + (size_t)s * ld_x + e0;
                for (int j = 0; j < nc; j++)
                    sw[j][k] += (double)dz[j] * xs[j];
                if (dxs0) {
                    float *dxs = dxs0 + (size_t)s * ld_dx + e0;
                    for (int j = 0; j < nc; j++)
                        dxs[j] += w[(size_t)(e0 + j) * K + k] * dz[j];
                }
            }
        }
    }
    for (int j = 0; j < nc; j++) {
        if (d_b)
            d_b[e0 + j] += (float)sb[j];
        if (d_w)
            for (int k = 0; k < K; k++)
                d_w[(size_t)(e0 + j) * K + k] += (float)sw[j][k];
    }
}

void ssm_conv1d_silu_backward(float *d_x, size_t ld_dx, float *d_w, float *d_b, const float *d_u, const float *x,
                              size_t ld_x, const float *w, const float *b, int B, size_t L, int E, int K,
                              int reverse)
{
    ML_ASSERT(K >= 1 && K <= CONV1D_MAX_K);
    const int nblk = (E + CONV1D_BWD_CH - 1) / CONV1D_BWD_CH;
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)B * L * E > 32768)
    for (int k = 0; k < nblk; k++) {
        const int e0 = k * CONV1D_BWD_CH, nc = E - e0 < CONV1D_BWD_CH ? E - e0 : CONV1D_BWD_CH;
        conv1d_silu_bwd_channels(d_x, ld_dx, d_w, d_b, d_u, x, ld_x, w, b, B, L, E, K, reverse, e0, nc);
    }
}

/* Channels e0 .. e0+nc-1 (nc <= 8) of one sequence, state kept in registers /
 * L1: h (N, 8). Padding lanes carry Δ = u = 0 and never reach y. */
ML_CLONES static void scan_block(float *y, float *states, int accumulate, const float *u, const float *delta,
                                 const float *xdbl, size_t ldx, int R, const float *A, const float *D,
                                 int H, int W, int E, int N, int e0, int nc, ssm_order order, int reverse)
{
    v8f At[SSM_MAX_STATE], h[SSM_MAX_STATE];
    float tmp[8] = {0};
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < 8; j++)
            tmp[j] = j < nc ? A[(size_t)(e0 + j) * N + n] : 0.0f;
        V8_LOAD(At[n], tmp);
        h[n] = v8_splat(0.0f);
    }
    v8f Dv = v8_splat(0.0f);
    for (int j = 0; j < nc; j++)
        Dv[j] = D[e0 + j];
    const size_t L = (size_t)H * W;
    for (size_t i = 0; i < L; i++) {
        if (states && i % SSM_CHUNK == 0) /* the state entering each chunk of steps */
            for (int n = 0; n < N; n++)
                for (int j = 0; j < nc; j++)
                    states[((i / SSM_CHUNK) * (size_t)N + n) * E + e0 + j] = h[n][j];
        size_t ii = reverse ? L - 1 - i : i;
        size_t t = order == SSM_ROW_MAJOR ? ii : (ii % (size_t)H) * W + ii / (size_t)H;
        v8f d, x;
        if (nc == 8) {
            V8_LOAD(d, delta + t * E + e0);
            V8_LOAD(x, u + t * E + e0);
        } else {
            d = x = v8_splat(0.0f);
            for (int j = 0; j < nc; j++)
                d[j] = delta[t * E + e0 + j], x[j] = u[t * E + e0 + j];
        }
        const float *Bt = xdbl + t * ldx + R, *Ct = Bt + N;
        v8f du = d * x, acc = Dv * x;
        for (int n = 0; n < N; n++) {
            h[n] = v8_exp_nonpos(d * At[n]) * h[n] + du * v8_splat(Bt[n]);
            acc += h[n] * v8_splat(Ct[n]);
        }
        float *yt = y + t * E + e0;
        if (nc == 8 && !accumulate) {
            V8_STORE(yt, acc);
        } else {
            for (int j = 0; j < nc; j++)
                yt[j] = accumulate ? yt[j] + acc[j] : acc[j];
        }
    }
}

void ssm_scan_core(float *y, float *states, int accumulate, const float *u, const float *delta, const float *xdbl,
                   size_t ldx, int R, const float *A_log, const float *D, int B, int H, int W, int E, int N,
                   ssm_order order, int reverse, float *ws)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L;
    float *A = ws;
    for (size_t i = 0; i < (size_t)E * N; i++)
        A[i] = -expf(A_log[i]);
    const int nblk = (E + 7) / 8;
#pragma omp parallel for collapse(2) schedule(dynamic, 1) if (rows * E > 4096)
    for (int bb = 0; bb < B; bb++)
        for (int k = 0; k < nblk; k++) {
            int e0 = 8 * k, nc = E - e0 < 8 ? E - e0 : 8;
            scan_block(y + (size_t)bb * L * E, states ? states + (size_t)bb * ssm_chunk_count(L) * N * E : NULL,
                       accumulate, u + (size_t)bb * L * E, delta + (size_t)bb * L * E,
                       xdbl + (size_t)bb * L * ldx, ldx, R, A, D, H, W, E, N, e0, nc, order, reverse);
        }
}

/* ---- the scan backward ---- */

V8_INLINE float v8_hsum(v8f v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

size_t ssm_scan_core_backward_workspace(int B, size_t L, int E, int N, int threads)
{
    (void)L; /* nothing below grows with the sequence: that is the point */
    const size_t nblk = ((size_t)E + 7) / 8, T = threads > 0 ? (size_t)threads : 1, n = (size_t)N;
    return (size_t)E * n                              /* A = -exp(A_log) */
           + (size_t)B * nblk * 8 * n                 /* μ, the adjoint carried into the chunk before */
           + (size_t)B * nblk * 8 * (n + 1)           /* dA and dD of each (sequence, block) */
           + (size_t)B * SSM_CHUNK * nblk * 2 * n     /* dB, dC of one chunk, per (sequence, step, block) */
           + T * 2 * SSM_CHUNK * n * 8;               /* ā and h of one chunk, per thread */
}

/* One chunk (steps i0 .. i0+len-1) of channels e0 .. e0+nc-1 of one sequence. The forward is rerun
 * from the chunk's saved start state, keeping ā and h of every step (hist: 2 · SSM_CHUNK · N lanes
 * of 8); then the adjoint runs backwards from μ, the ā·λ carried in from the chunk after:
 *   λ_t = g_t C_t + μ,  μ ← ā_t λ_t  (for step t−1)
 *   dC_t += Σ_e g_t h_t,  dB_t += Σ_e λ_t Δ_t u_t,  du_t += Δ_t Σ_n λ_t B_t + D g_t,
 *   dΔ_t = Σ_n λ_t (B_t u_t + A ā_t h_{t−1}),  dA += Σ_t λ_t Δ_t ā_t h_{t−1},  dD += Σ_t g_t u_t.
 * dB and dC are sums over channels, which other blocks share: this block writes its lane sums to
 * part (step j, block k) and the caller adds the blocks in order. μ, dA and dD (mu, dad) are this
 * (sequence, block)'s own. Padding lanes carry Δ = u = g = 0 and contribute nothing. */
ML_CLONES static void scan_bwd_block(float *d_u, float *d_delta, float *part, float *mu, float *dad, float *hist,
                                     const float *d_y, const float *u, const float *delta, const float *xdbl,
                                     size_t ldx, int R, const float *A, const float *D, const float *st, int H,
                                     int W, int E, int N, int e0, int nc, int nblk, int k, size_t i0, size_t len,
                                     ssm_order order, int reverse, int softplus)
{
    v8f At[SSM_MAX_STATE], h[SSM_MAX_STATE], m[SSM_MAX_STATE], dA[SSM_MAX_STATE];
    float tmp[8] = {0}, tmp2[8] = {0};
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < 8; j++) {
            tmp[j] = j < nc ? A[(size_t)(e0 + j) * N + n] : 0.0f;
            tmp2[j] = j < nc ? st[(size_t)n * E + e0 + j] : 0.0f;
        }
        V8_LOAD(At[n], tmp);
        V8_LOAD(h[n], tmp2);
        V8_LOAD(m[n], mu + (size_t)n * 8);
        dA[n] = v8_splat(0.0f);
    }
    v8f Dv = v8_splat(0.0f), dDv = v8_splat(0.0f);
    for (int j = 0; j < nc; j++)
        Dv[j] = D[e0 + j];
    const size_t L = (size_t)H * W, hstride = (size_t)N * 8;
    float *ah = hist, *hh = hist + SSM_CHUNK * hstride;
    const int col = order == SSM_COL_MAJOR;
#define LOAD_NC(dst, src)                                                                                            do {                                                                                                                 if (nc == 8) {                                                                                                       V8_LOAD(dst, src);                                                                                           } else {                                                                                                             dst = v8_splat(0.0f);                                                                                            for (int q = 0; q < nc; q++)                                                                                         dst[q] = (src)[q];                                                                                       }                                                                                                            } while (0)
    /* the chunk's forward again, from its start state */
    for (size_t j = 0; j < len; j++) {
        const size_t t = ssm_step_token(i0 + j, L, H, W, col, reverse);
        v8f d, x;
        LOAD_NC(d, delta + t * E + e0);
        LOAD_NC(x, u + t * E + e0);
        const float *Bt = xdbl + t * ldx + R;
        const v8f du = d * x;
        for (int n = 0; n < N; n++) {
            const v8f a = v8_exp_nonpos(d * At[n]);
            h[n] = a * h[n] + du * v8_splat(Bt[n]);
            V8_STORE(ah + j * hstride + (size_t)n * 8, a);
            V8_STORE(hh + j * hstride + (size_t)n * 8, h[n]);
        }
    }
    /* h[] is now the chunk's end state; the start state comes from st again for step 0 */
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < 8; j++)
            tmp2[j] = j < nc ? st[(size_t)n * E + e0 + j] : 0.0f;
        V8_LOAD(h[n], tmp2);
    }
    for (size_t jj = len; jj-- > 0;) {
        const size_t t = ssm_step_token(i0 + jj, L, H, W, col, reverse);
        v8f d, x, g;
        LOAD_NC(d, delta + t * E + e0);
        LOAD_NC(x, u + t * E + e0);
        LOAD_NC(g, d_y + t * E + e0);
        const float *Bt = xdbl + t * ldx + R, *Ct = Bt + N;
        float *pj = part + (jj * (size_t)nblk + (size_t)k) * 2 * (size_t)N;
        const v8f dx = d * x;
        v8f lb = v8_splat(0.0f), dd = v8_splat(0.0f);
        dDv += g * x;
        for (int n = 0; n < N; n++) {
            v8f a, hj, hp;
            V8_LOAD(a, ah + jj * hstride + (size_t)n * 8);
            V8_LOAD(hj, hh + jj * hstride + (size_t)n * 8);
            if (jj > 0)
                V8_LOAD(hp, hh + (jj - 1) * hstride + (size_t)n * 8);
            else
                hp = h[n];
            const v8f lam = g * v8_splat(Ct[n]) + m[n], aph = a * hp, bn = v8_splat(Bt[n]);
            pj[n] = v8_hsum(lam * dx);
            pj[N + n] = v8_hsum(g * hj);
            lb += lam * bn;
            dd += lam * (bn * x + At[n] * aph);
            dA[n] += lam * d * aph;
            m[n] = a * lam;
        }
        const v8f dut = Dv * g + d * lb;
        float *dut_p = d_u ? d_u + t * E + e0 : NULL, *ddp = d_delta ? d_delta + t * E + e0 : NULL;
        for (int q = 0; q < nc; q++) {
            if (dut_p)
                dut_p[q] += dut[q];
            /* softplus' = sigmoid(Δ_pre) = 1 − exp(−Δ) (exactly, below the threshold; 1 to float
             * precision above it): read off the saved Δ */
            if (ddp)
                ddp[q] += softplus ? dd[q] * -expm1f(-d[q]) : dd[q];
        }
    }
#undef LOAD_NC
    for (int n = 0; n < N; n++) {
        V8_STORE(mu + (size_t)n * 8, m[n]);
        v8f acc;
        V8_LOAD(acc, dad + (size_t)n * 8);
        acc += dA[n];
        V8_STORE(dad + (size_t)n * 8, acc);
    }
    v8f acc;
    V8_LOAD(acc, dad + (size_t)N * 8);
    acc += dDv;
    V8_STORE(dad + (size_t)N * 8, acc);
}

void ssm_scan_core_backward(float *d_u, float *d_delta, float *d_xdbl, float *d_A_log, float *d_D, const float *d_y,
                            const float *u, const float *delta, const float *xdbl, size_t ldx, int R,
                            const float *A_log, const float *D, const float *states, int B, int H, int W, int E,
                            int N, ssm_order order, int reverse, int delta_softplus, float *ws, int threads)
{
    const size_t L = (size_t)H * W, chunks = ssm_chunk_count(L), nblk = ((size_t)E + 7) / 8, n2 = 2 * (size_t)N;
    const int T = threads > 0 ? threads : 1;
    float *A = ws, *mu = A + (size_t)E * N, *dad = mu + (size_t)B * nblk * 8 * N;
    float *part = dad + (size_t)B * nblk * 8 * (N + 1), *hist = part + (size_t)B * SSM_CHUNK * nblk * n2;
    for (size_t i = 0; i < (size_t)E * N; i++)
        A[i] = -expf(A_log[i]);
    memset(mu, 0, (size_t)B * nblk * 8 * ((size_t)2 * N + 1) * sizeof *mu); /* μ and dA, dD */
    const int col = order == SSM_COL_MAJOR;
    /* chunks last to first (μ flows backwards); inside one, every (sequence, block) in parallel,
     * then the blocks' dB, dC added in block order. Subnormals are flushed inside (vmath.h): where
     * no gradient arrives for many steps, λ = ā·λ decays through them, and on an Intel core that
     * made the training step of seq at L = 4,096 1.7× slower (results/long_range.md). */
#pragma omp parallel num_threads(T) if ((size_t)B * L * E > 4096)
    {
        const unsigned fp_mode = ml_flush_subnormals();
        float *my_hist = hist + (size_t)omp_get_thread_num() * 2 * SSM_CHUNK * (size_t)N * 8;
        for (size_t c = chunks; c-- > 0;) {
            const size_t i0 = c * SSM_CHUNK, len = L - i0 < SSM_CHUNK ? L - i0 : SSM_CHUNK;
#pragma omp for collapse(2) schedule(dynamic, 1)
            for (int bb = 0; bb < B; bb++)
                for (size_t k = 0; k < nblk; k++) {
                    const int e0 = 8 * (int)k, nc = E - e0 < 8 ? E - e0 : 8;
                    const size_t off = (size_t)bb * L * E;
                    scan_bwd_block(d_u ? d_u + off : NULL, d_delta ? d_delta + off : NULL,
                                   part + (size_t)bb * SSM_CHUNK * nblk * n2,
                                   mu + ((size_t)bb * nblk + k) * 8 * N, dad + ((size_t)bb * nblk + k) * 8 * (N + 1),
                                   my_hist, d_y + off, u + off, delta + off, xdbl + (size_t)bb * L * ldx, ldx, R, A, D,
                                   states + ((size_t)bb * chunks + c) * (size_t)N * E, H, W, E, N, e0, nc, (int)nblk,
                                   (int)k, i0, len, order, reverse, delta_softplus);
                }
            if (d_xdbl) {
#pragma omp for collapse(2) schedule(static)
                for (int bb = 0; bb < B; bb++)
                    for (size_t j = 0; j < len; j++) {
                        const size_t t = ssm_step_token(i0 + j, L, H, W, col, reverse);
                        const float *pj = part + (size_t)bb * SSM_CHUNK * nblk * n2 + j * nblk * n2;
                        float *row = d_xdbl + ((size_t)bb * L + t) * ldx + R;
                        for (size_t q = 0; q < n2; q++) {
                            float s = 0.0f;
                            for (size_t k = 0; k < nblk; k++)
                                s += pj[k * n2 + q];
                            row[q] += s;
                        }
                    }
            }
        }
        ml_restore_fp_mode(fp_mode);
    }
    /* dA_log = dA · A (A = -exp(A_log)); the sequences' partials added in order */
    for (int e = 0; e < E; e++) {
        const size_t k = (size_t)e / 8, lane = (size_t)e % 8;
        for (int n = 0; n <= N; n++) {
            float s = 0.0f;
            for (int bb = 0; bb < B; bb++)
                s += dad[(((size_t)bb * nblk + k) * (N + 1) + (size_t)n) * 8 + lane];
            if (n < N && d_A_log)
                d_A_log[(size_t)e * N + n] += s * A[(size_t)e * N + n];
            else if (n == N && d_D)
                d_D[e] += s;
        }
    }
}

size_t ssm_direction_workspace(const backend *be, int B, size_t L, int E, int N, int R)
{
    return (size_t)B * L * ((size_t)R + 2 * (size_t)N) /* xdbl */ + (size_t)B * L * E /* Δ */ +
           be->scan_ws(B, L, E, N);
}

size_t ssm_direction_saved_floats(int B, size_t L, int E, int N, int R)
{
    return (size_t)B * L * ((size_t)R + 2 * (size_t)N) + (size_t)B * L * E + ssm_states_floats(B, L, E, N);
}

void ssm_direction_forward(const backend *be, float *y, int accumulate, const float *u, const ssm_params *p, int B,
                           int H, int W, int E, int N, int R, ssm_order order, int reverse, float *ws, float *saved)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L, ldx = (size_t)R + 2 * (size_t)N;
    float *xdbl = saved ? saved : ws, *delta = xdbl + rows * ldx, *core_ws = ws + rows * ldx + rows * E;
    float *states = saved ? delta + rows * E : NULL;
    be->linear(xdbl, ldx, u, (size_t)E, p->x_proj, NULL, rows, E, (int)ldx, 0);
    be->linear(delta, (size_t)E, xdbl, ldx, p->dt_proj, p->dt_bias, rows, R, E, 0);
    be->act(delta, delta, rows * E, ACT_SOFTPLUS);
    be->scan(y, states, accumulate, u, delta, xdbl, ldx, R, p->A_log, p->D, B, H, W, E, N, order, reverse, core_ws);
}

size_t ssm_direction_backward_workspace(const backend *be, int B, size_t L, int E, int N, int R, int threads)
{
    return (size_t)B * L * ((size_t)R + 2 * (size_t)N) /* d_xdbl */ + (size_t)B * L * E /* dΔ_pre */ +
           be->scan_bwd_ws(B, L, E, N, threads);
}

void ssm_direction_backward(const backend *be, float *d_u, const ssm_grads *dp, const float *d_y, const float *u,
                            const ssm_params *p, const float *saved, int B, int H, int W, int E, int N, int R,
                            ssm_order order, int reverse, float *ws, int threads)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L, ldx = (size_t)R + 2 * (size_t)N;
    const float *xdbl = saved, *delta = xdbl + rows * ldx, *states = delta + rows * E;
    float *d_xdbl = ws, *d_pre = d_xdbl + rows * ldx, *core_ws = d_pre + rows * E;
    be->zero(d_xdbl, rows * (ldx + E) * sizeof *d_xdbl);
    be->scan_bwd(d_u, d_pre, d_xdbl, dp->A_log, dp->D, d_y, u, delta, xdbl, ldx, R, p->A_log, p->D, states, B, H, W,
                 E, N, order, reverse, 1, core_ws, threads);
    /* Δ_pre = xdbl[:, :R] · dt_projᵀ + dt_bias: its input gradient lands in d_xdbl's first R columns */
    be->linear_bwd(d_xdbl, ldx, dp->dt_proj, dp->dt_bias, d_pre, (size_t)E, xdbl, ldx, p->dt_proj, rows, R, E);
    /* xdbl = u · x_projᵀ */
    be->linear_bwd(d_u, (size_t)E, dp->x_proj, NULL, d_xdbl, ldx, u, (size_t)E, p->x_proj, rows, E, (int)ldx);
}

uint64_t ssm_scan_macs(size_t L, int E, int N, scan_convention s)
{
    const uint64_t LE = (uint64_t)L * E, LEN = LE * (uint64_t)N;
    switch (s) {
    case SCAN_LOCALMAMBA:
        return 5 * LEN + 2 * LE;
    case SCAN_VIM:
        return 4 * LEN;
    default:
        return 9 * LEN + LE;
    }
}

void ssm_init_direction(float *conv_w, float *conv_b, int conv_fan_in, float *x_proj, float *dt_proj,
                        float *dt_bias, float *A_log, float *D, int E, int N, int R, rng_state *rng)
{
    const double cb = 1.0 / sqrt((double)conv_fan_in), xb = 1.0 / sqrt((double)E),
                 db = 1.0 / sqrt((double)R);
    rng_fill_uniform(rng, conv_w, (size_t)E * conv_fan_in, -cb, cb);
    rng_fill_uniform(rng, conv_b, (size_t)E, -cb, cb);
    rng_fill_uniform(rng, x_proj, (size_t)(R + 2 * N) * E, -xb, xb);
    rng_fill_uniform(rng, dt_proj, (size_t)E * R, -db, db);
    for (int e = 0; e < E; e++) {
        double dt = exp(rng_uniform(rng) * (log(0.1) - log(1e-3)) + log(1e-3));
        dt_bias[e] = (float)(dt + log(-expm1(-dt))); /* inverse softplus */
        D[e] = 1.0f;
        for (int n = 0; n < N; n++)
            A_log[(size_t)e * N + n] = (float)log((double)(n + 1));
    }
}

/* ---- the `ssm` mixer ---- */

ml_status ssm_validate(const mixer_config *c)
{
    if (c->channels < 1)
        return ml_fail(ML_ERR_USAGE, "ssm: channels %d must be >= 1", c->channels);
    if (c->d_state < 1 || c->d_state > SSM_MAX_STATE)
        return ml_fail(ML_ERR_USAGE, "ssm: d_state %d is not allowed (1..%d)", c->d_state, SSM_MAX_STATE);
    if (mixer_dt_rank(c) < 1)
        return ml_fail(ML_ERR_USAGE, "ssm: dt rank %d must be >= 1", mixer_dt_rank(c));
    return ML_OK;
}

static int ssm_param_specs(const mixer_config *c, param_spec *out)
{
    if (out) {
        int64_t E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
        out[SSM_CONV_W] = (param_spec){"conv1d.weight", 3, {E, 1, SSM_CONV_K, 0}, PARAM_INIT_CUSTOM};
        out[SSM_CONV_B] = (param_spec){"conv1d.bias", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
        out[SSM_X_PROJ] = (param_spec){"x_proj.weight", 2, {R + 2 * N, E, 0, 0}, PARAM_INIT_CUSTOM};
        out[SSM_DT_W] = (param_spec){"dt_proj.weight", 2, {E, R, 0, 0}, PARAM_INIT_CUSTOM};
        out[SSM_DT_B] = (param_spec){"dt_proj.bias", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
        out[SSM_A_LOG] = (param_spec){"A_log", 2, {E, N, 0, 0}, PARAM_INIT_CUSTOM};
        out[SSM_D] = (param_spec){"D", 1, {E, 0, 0, 0}, PARAM_INIT_CUSTOM};
    }
    return SSM_DIRECTION_PARAMS;
}

static uint64_t ssm_macs(const mixer_config *c, int B, int H, int W, const macs_opts *o)
{
    const size_t L = (size_t)H * W;
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    uint64_t m = (uint64_t)L * E * SSM_CONV_K + ssm_proj_macs(L, E, N, R);
    if (o->convention == MACS_FVCORE)
        m += ssm_scan_macs(L, E, N, o->scan);
    return (uint64_t)B * m;
}

static size_t ssm_workspace_floats(const backend *be, const mixer_config *c, int B, int H, int W)
{
    return (size_t)B * H * W * c->channels /* u */ +
           ssm_direction_workspace(be, B, (size_t)H * W, c->channels, c->d_state, mixer_dt_rank(c));
}

static void ssm_init(const mixer_config *c, float *const *p, rng_state *rng)
{
    ssm_init_direction(p[SSM_CONV_W], p[SSM_CONV_B], SSM_CONV_K, p[SSM_X_PROJ], p[SSM_DT_W], p[SSM_DT_B],
                       p[SSM_A_LOG], p[SSM_D], c->channels, c->d_state, mixer_dt_rank(c), rng);
}

/* What a training forward of `ssm` keeps (ssm_activation): u = SiLU(conv1d(x)) (B, L, E), then
 * the direction's saved set (ssm_direction_saved_floats: xdbl, Δ after the softplus, the chunk
 * states). The conv1d's pre-activation is not kept: its backward recomputes it from the input. */
size_t ssm_branch_saved_floats(const mixer_config *c, int B, int H, int W)
{
    const size_t L = (size_t)H * W;
    return (size_t)B * L * c->channels + ssm_direction_saved_floats(B, L, c->channels, c->d_state, mixer_dt_rank(c));
}

static size_t ssm_activation(const mixer_config *c, int B, int H, int W, int training)
{
    return mixer_output_floats(c, B, H, W, 0) + (training ? ssm_branch_saved_floats(c, B, H, W) : 0);
}

static void ssm_forward(const backend *be, const mixer_config *c, const float *const *p, float *out, float *saved,
                        const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W, n = (size_t)B * L * E;
    float *u = saved ? saved : ws;
    be->conv1d_silu(u, in, ld_in, p[SSM_CONV_W], p[SSM_CONV_B], B, L, E, SSM_CONV_K, 0);
    ssm_params sp = {p[SSM_X_PROJ], p[SSM_DT_W], p[SSM_DT_B], p[SSM_A_LOG], p[SSM_D]};
    ssm_direction_forward(be, out, 0, u, &sp, B, H, W, E, N, R, SSM_ROW_MAJOR, 0, ws + n, saved ? saved + n : NULL);
}

size_t ssm_branch_backward_workspace(const backend *be, const mixer_config *c, int B, int H, int W)
{
    const size_t L = (size_t)H * W;
    return (size_t)B * L * c->channels /* d_u */ +
           ssm_direction_backward_workspace(be, B, L, c->channels, c->d_state, mixer_dt_rank(c), c->threads);
}

void ssm_branch_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                         float *d_in, size_t ld_din, const float *d_y, const float *in, size_t ld_in,
                         const float *saved, int reverse, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W, n = (size_t)B * L * E;
    const float *u = saved;
    float *d_u = ws;
    be->zero(d_u, n * sizeof *d_u);
    ssm_params sp = {p[SSM_X_PROJ], p[SSM_DT_W], p[SSM_DT_B], p[SSM_A_LOG], p[SSM_D]};
    ssm_grads sg = {dp[SSM_X_PROJ], dp[SSM_DT_W], dp[SSM_DT_B], dp[SSM_A_LOG], dp[SSM_D]};
    ssm_direction_backward(be, d_u, &sg, d_y, u, &sp, saved + n, B, H, W, E, N, R, SSM_ROW_MAJOR, reverse, ws + n,
                           c->threads);
    be->conv1d_silu_bwd(d_in, ld_din, dp[SSM_CONV_W], dp[SSM_CONV_B], d_u, in, ld_in, p[SSM_CONV_W], p[SSM_CONV_B], B,
                        L, E, SSM_CONV_K, reverse);
}

static void ssm_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                         float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                         const float *saved, float *ws, int B, int H, int W)
{
    ssm_branch_backward(be, c, p, dp, d_in, ld_din, d_out, in, ld_in, saved, 0, ws, B, H, W);
}

ml_status ssm_infer_named(mixer_config *c, mixer_shape_fn shape_of, void *ctx, const char *conv,
                          const char *alog, const char *dtp)
{
    int64_t s[8];
    if (shape_of(ctx, alog, s) != 2)
        return ml_fail(ML_ERR_FORMAT, "missing or malformed tensor '%s' (want [E, N])", alog);
    c->channels = (int)s[0], c->d_state = (int)s[1];
    if (shape_of(ctx, dtp, s) != 2)
        return ml_fail(ML_ERR_FORMAT, "missing or malformed tensor '%s' (want [E, R])", dtp);
    c->dt_rank = (int)s[1];
    if (conv && shape_of(ctx, conv, s) == 3 && s[2] != SSM_CONV_K)
        return ml_fail(ML_ERR_FORMAT, "tensor '%s' has kernel %lld, expected %d", conv, (long long)s[2],
                       SSM_CONV_K);
    return ML_OK;
}

static ml_status ssm_infer(mixer_config *c, mixer_shape_fn shape_of, void *ctx)
{
    return ssm_infer_named(c, shape_of, ctx, "conv1d.weight", "A_log", "dt_proj.weight");
}

ml_status ssm_supports(const backend *be, const mixer_config *c)
{
    backend_limits q = {.d_state = c->d_state};
    return be->supports(BE_OP_SCAN, &q);
}

void ssm_describe(const mixer_config *c, char *buf, size_t n)
{
    snprintf(buf, n, ", N %d, R %d", c->d_state, mixer_dt_rank(c));
}

const mixer_ops mixer_ssm = {
    .name = "ssm",
    .summary = "causal selective scan in raster order (Mamba)",
    .block_prefix = "mixer.",
    .causal = 1,
    .uses = MIXER_USES_D_STATE,
    .validate = ssm_validate,
    .param_specs = ssm_param_specs,
    .macs = ssm_macs,
    .activation_floats = ssm_activation,
    .workspace_floats = ssm_workspace_floats,
    .backward_workspace_floats = ssm_branch_backward_workspace,
    .init = ssm_init,
    .infer = ssm_infer,
    .supports = ssm_supports,
    .describe = ssm_describe,
    .forward = ssm_forward,
    .backward = ssm_backward,
};
