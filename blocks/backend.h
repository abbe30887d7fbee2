/* A backend: one struct of function pointers for the primitive ops, as in
 * ggml. The skeletons (models/model.c), the Gated CNN block and every
 * composite mixer are written once against this table and run on any
 * backend; only the ops below have per-backend kernels (the CPU ones in each
 * op's .c, the CUDA ones in its .cu). backend_cpu.c and backend_cuda.c fill
 * the tables.
 *
 * Conventions (llm.c's): outputs first, dimensions last; activations
 * channels-last, rows ld floats apart where a stride is given; every pointer
 * is memory of the backend (host memory for the CPU, device memory for CUDA).
 * Ops are asynchronous on a device backend: they record a failure instead of
 * returning one, and sync() reports it.
 *
 * Each op has a slot for its backward sibling (`*_bwd`); the CPU fills them
 * (each in its op's .c file), CUDA leaves them NULL for now (training is
 * CPU-only: backend_has_backward says whether a table has them all). The
 * backward contract: a backward *accumulates* (+=) into every gradient it is
 * given (d_in, and d_w / d_b laid out as the parameters), and reads the
 * forward's inputs and what the forward saved for it (the NULL-able `saved`
 * outputs below: norm statistics, attention's log-sum-exp, the scan's chunk
 * states), never an overwritten output (the skeleton plans separate buffers
 * where a training forward must keep them). A gradient pointer that is NULL
 * is not wanted and not computed (d_in of the first layer, d_b of a layer
 * without bias); no gradient may alias an input or d_out. Reductions over
 * rows (d_w, d_b) run in a fixed order, so the same inputs and thread count
 * give bit-identical gradients. */
#ifndef MIXERLAB_BACKEND_H
#define MIXERLAB_BACKEND_H

#include "blocks/act.h"
#include "blocks/conv2d.h"
#include "blocks/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a supports() question is about, and the sizes that decide it. */
typedef enum { BE_OP_DWCONV, BE_OP_SCAN, BE_OP_ATTN, BE_OP_COUNT } backend_op;
typedef struct {
    int kernel;    /* BE_OP_DWCONV: K */
    int d_state;   /* BE_OP_SCAN: N */
    int head_size; /* BE_OP_ATTN: HS */
} backend_limits;

typedef struct backend backend;

struct backend {
    const char *name;   /* "cpu", "cuda" */
    backend_flags kind; /* BACKEND_CPU or BACKEND_CUDA */
    int host_memory;    /* tensors are host memory (the caller's own pointers work) */

    /* ---- memory and synchronisation ---- */
    ml_status (*alloc)(void **p, size_t bytes, const char *what);
    void (*release)(void *p);
    ml_status (*upload)(void *dst, const void *host_src, size_t bytes);
    ml_status (*download)(void *host_dst, const void *src, size_t bytes);
    ml_status (*zero)(void *p, size_t bytes);
    /* Waits for the ops issued so far; reports the first failure among them. */
    ml_status (*sync)(const char *what);
    /* ML_OK, or a usage error naming the limit the backend's kernel has. */
    ml_status (*supports)(backend_op op, const backend_limits *q);

    /* ---- normalisation over the last dimension; out may alias in ---- */
    /* out[r] = (in[r] - mean) / sqrt(var + eps) · w + b, biased variance; saved: mean, rstd (rows each) */
    void (*layernorm)(float *out, size_t ld_out, float *mean, float *rstd, const float *in, size_t ld_in,
                      const float *w, const float *b, size_t rows, int C, float eps);
    /* d_in += ∂/∂in, d_w += Σ_rows d_out·x̂, d_b += Σ_rows d_out, with x̂ = (in - mean)·rstd from the saved statistics */
    void (*layernorm_bwd)(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, size_t ld_dout,
                          const float *in, size_t ld_in, const float *w, const float *mean, const float *rstd,
                          size_t rows, int C);
    /* out[r] = in[r] / sqrt(mean(in[r]²) + eps) · w; saved: rstd (rows) */
    void (*rmsnorm)(float *out, size_t ld_out, float *rstd, const float *in, size_t ld_in, const float *w, size_t rows,
                    int C, float eps);
    void (*rmsnorm_bwd)(float *d_in, size_t ld_din, float *d_w, const float *d_out, size_t ld_dout, const float *in,
                        size_t ld_in, const float *w, const float *rstd, size_t rows, int C);

    /* ---- products ---- */
    /* out[rows, out_f] (+)= in[rows, in_f] · w[out_f, in_f]ᵀ + b (b may be NULL) */
    void (*linear)(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w, const float *b,
                   size_t rows, int in_f, int out_f, int accumulate);
    /* d_in += d_out·w, d_w [out_f, in_f] += d_outᵀ·in, d_b += Σ_rows d_out (BLAS for both products) */
    void (*linear_bwd)(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, size_t ld_dout,
                       const float *in, size_t ld_in, const float *w, size_t rows, int in_f, int out_f);
    /* out (B,Ho,Wo,Cout) = conv(in (B,H,W,Cin), w [Cout,Cin,K,K]) + b; ws of conv2d_ws floats */
    void (*conv2d)(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s, int B, int H,
                   int W, float *ws, size_t ws_floats, int threads);
    size_t (*conv2d_ws)(const conv2d_shape *s, size_t out_rows, int threads);
    /* im2col + BLAS for d_w, BLAS + col2im for d_in; ws of conv2d_bwd_ws floats */
    void (*conv2d_bwd)(float *d_in, float *d_w, float *d_b, const float *d_out, const float *in, const float *w,
                       const conv2d_shape *s, int B, int H, int W, float *ws, size_t ws_floats, int threads);
    size_t (*conv2d_bwd_ws)(const conv2d_shape *s, size_t out_rows, int threads);

    /* ---- pointwise ---- */
    /* out[i] = act(in[i]); out may alias in */
    void (*act)(float *out, const float *in, size_t n, act_kind k);
    /* d_in[i] += d_out[i]·act'(in[i]), in the forward's input (exact erf GELU) */
    void (*act_bwd)(float *d_in, const float *d_out, const float *in, size_t n, act_kind k);
    /* v[r, j] = act(g[r, j]) · (j < Hd-E ? i[r, j] : m[r, j-(Hd-E)]) with g, i the two halves of u
     * (rows 2·Hd floats apart); v rows ld_v apart, v may be g itself (v = u, ld_v = 2·Hd) */
    void (*gate)(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E, act_kind act);
    /* d_u (rows 2·Hd apart, like u) += ∂/∂g in columns 0..Hd and ∂/∂i in Hd..2Hd-E (the c columns are
     * left to the mixer's backward); d_m (rows, E) += ∂/∂m */
    void (*gate_bwd)(float *d_u, float *d_m, const float *d_v, size_t ld_dv, const float *u, const float *m,
                     size_t rows, int Hd, int E, act_kind act);
    /* x[i] *= s */
    void (*scale)(float *x, size_t n, float s);
    /* d_x[i] += s·d_y[i]: scale's backward into a separate gradient */
    void (*scale_bwd)(float *d_x, const float *d_y, size_t n, float s);

    /* ---- the Gated CNN block's two pointwise halves, fused (optional) ----
     * A backend may fuse norm + fc1 and gate + fc2 over row chunks that stay in
     * cache (the CPU does); where these are NULL the block runs the primitives
     * above on whole tensors. t is scratch of norm_linear_ws floats. */
    void (*norm_linear)(float *u, size_t ld_u, float *t, const float *x, int C, norm_kind nk, const float *nw,
                        const float *nb, float eps, const float *w, const float *b, size_t rows, int out_f,
                        int threads);
    void (*gate_linear)(float *x, int C, float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd,
                        int E, act_kind act, const float *w, const float *b, int threads);
    size_t (*norm_linear_ws)(size_t rows, int C, int threads);

    /* ---- the token-mixer cores ---- */
    /* depthwise KxK, zero padding K/2: out (B,H,W,C) contiguous, in tokens ld_in apart; ws of dwconv_ws floats */
    void (*dwconv)(float *out, const float *in, size_t ld_in, const float *w, const float *b, int B, int H, int W,
                   int C, int K, float *ws);
    size_t (*dwconv_ws)(int B, int H, int W, int C, int K);
    /* d_out (B,H,W,C) contiguous; d_in tokens ld_din apart; ws of dwconv_bwd_ws floats */
    void (*dwconv_bwd)(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, const float *in,
                       size_t ld_in, const float *w, int B, int H, int W, int C, int K, float *ws);
    size_t (*dwconv_bwd_ws)(int B, int H, int W, int C, int K);
    /* u (B,L,E) = SiLU(causal depthwise conv1d of x (rows ld_x apart), w [E,1,K], b [E]);
     * reverse = 1 on the flipped sequence, output still indexed by raster t */
    void (*conv1d_silu)(float *u, const float *x, size_t ld_x, const float *w, const float *b, int B, size_t L,
                        int E, int K, int reverse);
    /* recomputes the pre-activation from x, w, b (cheap: K taps), so only the input is kept */
    void (*conv1d_silu_bwd)(float *d_x, size_t ld_dx, float *d_w, float *d_b, const float *d_u, const float *x,
                            size_t ld_x, const float *w, const float *b, int B, size_t L, int E, int K, int reverse);
    /* The selective scan of one direction, given u, Δ (B,L,E) and xdbl (B,L,ldx) with B at column R
     * and C at R+N: h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t, y_t = h_t·C_t + D u_t with A = -exp(A_log);
     * y (B,L,E) written or added to (accumulate) in raster order; ws of scan_ws floats;
     * saved: the state entering each SSM_CHUNK-step chunk (ssm_states_floats), never (L, E, N) */
    void (*scan)(float *y, float *states, int accumulate, const float *u, const float *delta, const float *xdbl,
                 size_t ldx, int R, const float *A_log, const float *D, int B, int H, int W, int E, int N,
                 ssm_order order, int reverse, float *ws);
    size_t (*scan_ws)(int B, size_t L, int E, int N);
    /* Mamba's backward: walks the chunks last to first, recomputes h inside each from its saved
     * start state and runs the adjoint recurrence. d_u, d_delta (B,L,E) and the B, C columns of
     * d_xdbl (R..R+2N; the dt columns are the dt projection's) accumulate; d_A_log [E,N], d_D [E].
     * delta_softplus = 1: Δ = softplus(Δ_pre) and d_delta gets ∂/∂Δ_pre, with softplus' = 1 − exp(−Δ)
     * read off the saved Δ (exact below the threshold 20, 1 above), so Δ_pre need not be kept.
     * ws of scan_bwd_ws floats, for up to `threads` threads: O(E·N) per thread and sequence, none
     * of it (L, E, N). */
    void (*scan_bwd)(float *d_u, float *d_delta, float *d_xdbl, float *d_A_log, float *d_D, const float *d_y,
                     const float *u, const float *delta, const float *xdbl, size_t ldx, int R, const float *A_log,
                     const float *D, const float *states, int B, int H, int W, int E, int N, ssm_order order,
                     int reverse, int delta_softplus, float *ws, int threads);
    size_t (*scan_bwd_ws)(int B, size_t L, int E, int N, int threads);
    /* o (B,L,E) = softmax(q kᵀ / sqrt(HS)) v per head, q k v packed in qkv (B,L,3E); ws of attn_ws floats;
     * saved: lse (B, NH, L), each query row's log Σ exp(score), so a backward recomputes P tile by tile */
    void (*attn)(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal, float *ws,
                 int threads);
    size_t (*attn_ws)(int B, size_t L, int E, int HS, int threads);
    /* FlashAttention-2's backward: d_qkv (B,L,3E) += ∂/∂q, k, v, recomputing P tile by tile from
     * lse (never L × L); ws of attn_bwd_ws floats */
    void (*attn_bwd)(float *d_qkv, const float *d_o, const float *qkv, const float *o, const float *lse, int B,
                     size_t L, int E, int HS, int causal, float *ws, int threads);
    size_t (*attn_bwd_ws)(int B, size_t L, int E, int HS, int threads);

    /* ---- pooling, row copies and grid transposes ---- */
    /* out (B, C) = mean over L of in (B, L, C) */
    void (*meanpool)(float *out, const float *in, int B, size_t L, int C);
    void (*meanpool_bwd)(float *d_in, const float *d_out, int B, size_t L, int C);
    /* dst rows of n floats, ld_dst apart = src rows ld_src apart */
    void (*copy_rows)(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows);
    /* d_src rows += d_dst rows */
    void (*copy_rows_bwd)(float *d_src, size_t ld_dsrc, const float *d_dst, size_t ld_ddst, size_t n, size_t rows);
    /* out (B,H,W,C) = in (B,C,H,W): image batches arrive as NCHW */
    void (*nchw_to_nhwc)(float *out, const float *in, int B, int C, int H, int W);
    /* out (B,h/2,w/2,4C) = [x(2i,2j) | x(2i+1,2j) | x(2i,2j+1) | x(2i+1,2j+1)] (VMamba's patch
     * merging; an odd last row or column is dropped) */
    void (*merge_2x2)(float *out, const float *x, int B, int h, int w, int C);
    void (*merge_2x2_bwd)(float *d_x, const float *d_out, int B, int h, int w, int C);
    /* out (B, L+1, C) = [in(:, 0..at) | tok | in(:, at..L)] + pos (L+1, C): a class token inserted at
     * position `at` of each sequence, plus the position embedding */
    void (*insert_token)(float *out, const float *in, const float *tok, const float *pos, int B, size_t L,
                         size_t at, int C);
    void (*insert_token_bwd)(float *d_in, float *d_tok, float *d_pos, const float *d_out, int B, size_t L,
                             size_t at, int C);
    /* out (B, L, C) = table (V, C) [tok] (+ pos (L, C) when not NULL): the sequence skeleton's token
     * embedding; tok holds B·L token ids as floats, clamped into 0..V-1 */
    void (*embed)(float *out, const float *tok, const float *table, const float *pos, int B, size_t L, int V, int C);
    /* d_table rows of the tokens += d_out rows, d_pos += Σ_b d_out, rows in order */
    void (*embed_bwd)(float *d_table, float *d_pos, const float *d_out, const float *tok, int B, size_t L, int V,
                      int C);

    /* ---- the loss ---- */
    /* loss[0] = mean over the rows whose label is not -1 of the softmax cross-entropy of logits (B, NC)
     * against labels (B ints in 0..NC-1 or -1: nothing asked there, PyTorch's ignore_index; backend
     * memory), with label smoothing s (timm's LabelSmoothingCrossEntropy: (1−s)·nll + s·mean over
     * classes of −log p); d_logits (may be NULL) += ∂loss/∂logits; no labelled row: loss 0 */
    void (*softmax_xent)(float *loss, float *d_logits, const float *logits, const int *labels, int B, int NC,
                         float smoothing);
};

/* The CPU backend (always there) and the CUDA one (CUDA builds; else NULL). */
extern const backend backend_cpu;
const backend *backend_cuda(void);
/* "cpu" or "cuda" to a table: a usage error naming the device when this build
 * or this machine has none. */
ml_status backend_by_name(const char *name, const backend **out);

/* 1 when every backward slot (and the loss) of be is filled: what training needs. */
int backend_has_backward(const backend *be);

/* Allocates n floats of backend memory (NULL and ML_ERR_NOMEM naming what, on failure). */
float *backend_alloc_floats(const backend *be, size_t n, const char *what);

#ifdef __cplusplus
}
#endif

#endif
