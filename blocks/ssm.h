/* Mamba's selective scan and the `ssm` mixer: causal depthwise conv1d (K=4)
 * -> SiLU -> x_proj -> Δ, B, C -> scan, in raster token order.
 *
 * Two backend ops live here (CPU in ssm.c, CUDA in ssm.cu): the conv1d with
 * its SiLU, and the scan core. One direction of a scan, composed from table
 * ops, is shared with ssm_bidir and ssm_2d. */
#ifndef MIXERLAB_SSM_H
#define MIXERLAB_SSM_H

#include "blocks/mixer.h"

#include <math.h>

#define SSM_CONV_K 4
#define SSM_MAX_STATE 256

/* The parameters of one direction, in the order the scan mixers keep them. */
enum { SSM_CONV_W, SSM_CONV_B, SSM_X_PROJ, SSM_DT_W, SSM_DT_B, SSM_A_LOG, SSM_D, SSM_DIRECTION_PARAMS };

/* ---- the ops (contracts in blocks/backend.h: conv1d_silu, scan) ---- */
void ssm_conv1d_silu(float *u, const float *x, size_t ld_x, const float *w /* [E,1,K] */,
                     const float *b /* [E] */, int B, size_t L, int E, int K, int reverse);
/* The CPU scan: eight channels at a time, the state in registers; ws holds
 * A = -exp(A_log) (E, N). states (may be NULL) keeps the state entering each
 * chunk of SSM_CHUNK steps (ssm_states_floats), for a backward pass. */
void ssm_scan_core(float *y, float *states, int accumulate, const float *u, const float *delta, const float *xdbl,
                   size_t ldx, int R, const float *A_log, const float *D, int B, int H, int W, int E, int N,
                   ssm_order order, int reverse, float *ws);
static inline size_t ssm_scan_core_workspace(int B, size_t L, int E, int N)
{
    (void)B, (void)L;
    return (size_t)E * (size_t)N;
}
/* The backwards (contracts in blocks/backend.h: conv1d_silu_bwd, scan_bwd). The scan's: every
 * (sequence, 8-channel block) in parallel inside a chunk, chunks last to first; dB and dC (sums over
 * channels) go through per-block lane sums added in block order, dA and dD through per-(sequence,
 * block) partials added in sequence order, so no sum depends on the thread count. Its workspace,
 * ssm_scan_core_backward_workspace, is O(B·E·N + threads·SSM_CHUNK·N·8), independent of L. */
void ssm_conv1d_silu_backward(float *d_x, size_t ld_dx, float *d_w, float *d_b, const float *d_u, const float *x,
                              size_t ld_x, const float *w, const float *b, int B, size_t L, int E, int K,
                              int reverse);
void ssm_scan_core_backward(float *d_u, float *d_delta, float *d_xdbl, float *d_A_log, float *d_D, const float *d_y,
                            const float *u, const float *delta, const float *xdbl, size_t ldx, int R,
                            const float *A_log, const float *D, const float *states, int B, int H, int W, int E,
                            int N, ssm_order order, int reverse, int delta_softplus, float *ws, int threads);
size_t ssm_scan_core_backward_workspace(int B, size_t L, int E, int N, int threads);

/* The CUDA kernels (ssm.cu, CUDA builds only), on device pointers; the
 * chunked scan (ssm_chunk.h) keeps d_state <= SSM_CUDA_MAX_STATE and its ws
 * holds the carries (ssm_carry_floats). */
#define SSM_CUDA_MAX_STATE 64
#ifdef __cplusplus
extern "C" {
#endif
void ssm_conv1d_silu_cuda(float *u, const float *x, size_t ld_x, const float *w, const float *b, int B, size_t L, int E,
                          int K, int reverse);
void ssm_scan_core_cuda(float *y, float *states, int accumulate, const float *u, const float *delta, const float *xdbl,
                        size_t ldx, int R, const float *A_log, const float *D, int B, int H, int W, int E, int N,
                        ssm_order order, int reverse, float *carry);
#ifdef __cplusplus
}
#endif

/* ---- one direction, on any backend ---- */

/* On u (B, L, E):
 *   xdbl = u · x_projᵀ (R | N | N);  Δ = softplus(xdbl[:R] · dt_projᵀ + dt_bias);
 *   h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t;  y_t = h_t · C_t + D u_t
 * y (B, L, E) is written (accumulate = 0) or added to (accumulate = 1) in raster
 * order. ws holds ssm_direction_workspace floats: xdbl (B, L, R+2N), Δ (B, L, E),
 * then the scan core's workspace. saved (NULL in inference) gets what the
 * direction's backward needs, ssm_direction_saved_floats in this order:
 * xdbl (B, L, R+2N), Δ after the softplus (B, L, E), the scan's state entering
 * each chunk (B, chunks, N, E); xdbl and Δ are then made there instead of in ws. */
typedef struct {
    const float *x_proj;  /* [R+2N, E] */
    const float *dt_proj; /* [E, R] */
    const float *dt_bias; /* [E] */
    const float *A_log;   /* [E, N] */
    const float *D;       /* [E] */
} ssm_params;

size_t ssm_direction_workspace(const backend *be, int B, size_t L, int E, int N, int R);
size_t ssm_direction_saved_floats(int B, size_t L, int E, int N, int R);
void ssm_direction_forward(const backend *be, float *y, int accumulate, const float *u, const ssm_params *p, int B,
                           int H, int W, int E, int N, int R, ssm_order order, int reverse, float *ws, float *saved);

/* One direction's gradients, laid out as ssm_params; they accumulate. */
typedef struct {
    float *x_proj, *dt_proj, *dt_bias, *A_log, *D;
} ssm_grads;

/* The direction's backward, given d_y (B, L, E) and what its forward saved: the scan's backward
 * (dΔ through the softplus from the saved Δ), then dt_proj's and x_proj's (linear_bwd); d_u (B, L, E)
 * accumulates. ws of ssm_direction_backward_workspace floats: d_xdbl (B, L, R+2N), dΔ_pre (B, L, E)
 * and the scan backward's, for up to `threads` threads. */
size_t ssm_direction_backward_workspace(const backend *be, int B, size_t L, int E, int N, int R, int threads);
void ssm_direction_backward(const backend *be, float *d_u, const ssm_grads *dp, const float *d_y, const float *u,
                            const ssm_params *p, const float *saved, int B, int H, int W, int E, int N, int R,
                            ssm_order order, int reverse, float *ws, int threads);

/* One conv1d + scan branch (the `ssm` mixer, and each branch of ssm_bidir) in training: its saved
 * set is u = SiLU(conv1d(x)) (B, L, E) then the direction's (ssm_direction_saved_floats); the
 * backward, given d_y (B, L, E), accumulates d_in and the branch's seven gradients (dp in
 * SSM_DIRECTION_PARAMS order; reverse as the forward's); ws of ssm_branch_backward_workspace. */
size_t ssm_branch_saved_floats(const mixer_config *c, int B, int H, int W);
size_t ssm_branch_backward_workspace(const backend *be, const mixer_config *c, int B, int H, int W);
void ssm_branch_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                         float *d_in, size_t ld_din, const float *d_y, const float *in, size_t ld_in,
                         const float *saved, int reverse, float *ws, int B, int H, int W);

/* MACs of one direction's scan core (not its projections) under a convention. */
uint64_t ssm_scan_macs(size_t L, int E, int N, scan_convention s);
/* MACs of one direction's x_proj and dt_proj. */
static inline uint64_t ssm_proj_macs(size_t L, int E, int N, int R)
{
    return (uint64_t)L * E * (uint64_t)(R + 2 * N) + (uint64_t)L * R * (uint64_t)E;
}

/* Mamba's softplus: x above 20 passes through (act.h's act_softplus). */
static inline float ssm_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* Mamba's initialisation of one direction: A_log[e,n] = log(n+1), D = 1, dt bias
 * the inverse softplus of Δ log-uniform in [1e-3, 0.1], dt_proj uniform ±R^-0.5,
 * x_proj and conv uniform ±1/sqrt(fan_in) (PyTorch's default). */
void ssm_init_direction(float *conv_w, float *conv_b, int conv_fan_in, float *x_proj, float *dt_proj,
                        float *dt_bias, float *A_log, float *D, int E, int N, int R, rng_state *rng);

/* Shared by the scan mixers: d_state and dt rank in range. */
ml_status ssm_validate(const mixer_config *c);
/* E and N from A_log [E,N] (named alog), R from dt_proj [E,R] (dtp), K checked on conv (may be NULL). */
ml_status ssm_infer_named(mixer_config *c, mixer_shape_fn shape_of, void *ctx, const char *conv,
                          const char *alog, const char *dtp);
/* The backend's scan kernel takes d_state = N (backend.supports). */
ml_status ssm_supports(const backend *be, const mixer_config *c);
/* ", N 16, R 24" */
void ssm_describe(const mixer_config *c, char *buf, size_t n);

#endif
