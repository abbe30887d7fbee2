#include "blocks/attn.h"

#include "blocks/vmath.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>

enum { ATTN_QKV_W, ATTN_QKV_B, ATTN_PROJ_W, ATTN_PROJ_B, ATTN_PARAMS };

/* Probabilities below e^ATTN_P_CUT (< 2^-63) are set to exactly 0, in the forward and in the
 * backward's recomputation. What a row loses is under L·2^-63 of its sum of 1, far below float32's
 * rounding, but the products of such probabilities with gradients are subnormal floats, which
 * cost the CPU a microcode assist each: the gradient of a trained attention took 2.6-6.1x longer
 * without the cut, with bit-identical results (results/long_range.md, section 4). */
#define ATTN_P_CUT (-44.0f)

/* exp(d) for d <= 0 (d: a score minus the row's max or log-sum-exp), 0 below the cut. */
V8_INLINE v8f v8_exp_cut(v8f d) { return v8_select(d < v8_splat(ATTN_P_CUT), v8_splat(0.0f), v8_exp_nonpos(d)); }
static inline float exp_cut(float d) { return d < ATTN_P_CUT ? 0.0f : expf(d); }

/* p[0..n) = softmax(p[0..n)) in place; returns log Σ exp(p) of the input. */
ML_CLONES static float softmax_row(float *p, size_t n)
{
    float mx = -INFINITY;
    for (size_t j = 0; j < n; j++)
        mx = p[j] > mx ? p[j] : mx;
    v8f vs = v8_splat(0.0f), m = v8_splat(mx);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        v8f v;
        V8_LOAD(v, p + j);
        v = v8_exp_cut(v - m);
        V8_STORE(p + j, v);
        vs += v;
    }
    double sum = 0;
    for (int k = 0; k < 8; k++)
        sum += vs[k];
    for (; j < n; j++) {
        p[j] = exp_cut(p[j] - mx);
        sum += p[j];
    }
    const float inv = (float)(1.0 / sum);
    for (j = 0; j < n; j++)
        p[j] *= inv;
    return (float)((double)mx + log(sum));
}

void attn_core(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal, float *ws,
               int threads)
{
    const int NH = E / HS;
    const size_t nq = (L + ATTN_QUERY_BLOCK - 1) / ATTN_QUERY_BLOCK;
    const size_t tasks = (size_t)B * NH * nq, ld = 3 * (size_t)E;
    const float scale = (float)(1.0 / sqrt((double)HS));
    if (threads < 1)
        threads = 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (tasks > 1)
    for (size_t task = 0; task < tasks; task++) {
        /* causal blocks get cheaper towards the start: hand out the last (largest) first */
        size_t tk = causal ? tasks - 1 - task : task;
        size_t qb = tk % nq, h = (tk / nq) % (size_t)NH, b = tk / (nq * NH);
        size_t q0 = qb * ATTN_QUERY_BLOCK, nrow = L - q0 < ATTN_QUERY_BLOCK ? L - q0 : ATTN_QUERY_BLOCK;
        size_t nkey = causal ? q0 + nrow : L;
        const float *base = qkv + b * L * ld;
        const float *Q = base + q0 * ld + h * HS, *K = base + E + h * HS, *V = base + 2 * (size_t)E + h * HS;
        float *S = ws + (size_t)omp_get_thread_num() * ATTN_QUERY_BLOCK * L;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nrow, (int)nkey, HS, scale, Q, (int)ld, K,
                    (int)ld, 0.0f, S, (int)nkey);
        for (size_t i = 0; i < nrow; i++) {
            float *row = S + i * nkey;
            size_t n = causal ? q0 + i + 1 : nkey; /* keys after the query are masked out */
            const float l = softmax_row(row, n);
            if (lse)
                lse[(b * NH + h) * L + q0 + i] = l;
            for (size_t j = n; j < nkey; j++)
                row[j] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nrow, HS, (int)nkey, 1.0f, S, (int)nkey, V,
                    (int)ld, 0.0f, o + (b * L + q0) * E + h * HS, E);
    }
}

/* ---- the core's backward (FlashAttention-2's, one query block of rows at a time) ---- */

size_t attn_core_backward_workspace(int B, size_t L, int E, int HS, int threads)
{
    (void)B, (void)E, (void)HS;
    return (size_t)(threads > 0 ? threads : 1) * (2 * ATTN_QUERY_BLOCK * L + ATTN_QUERY_BLOCK);
}

/* P = exp(S − lse) for the rows of one query block, in place (keys after the query zero when causal). */
ML_CLONES static void probs_rows(float *S, size_t nrow, size_t nkey, size_t q0, int causal, const float *lse)
{
    for (size_t i = 0; i < nrow; i++) {
        float *row = S + i * nkey;
        const size_t n = causal ? q0 + i + 1 : nkey;
        const v8f l = v8_splat(lse[i]);
        size_t j = 0;
        for (; j + 8 <= n; j += 8) {
            v8f v;
            V8_LOAD(v, row + j);
            v = v8_exp_cut(v - l);
            V8_STORE(row + j, v);
        }
        for (; j < n; j++)
            row[j] = exp_cut(row[j] - lse[i]);
        for (j = n; j < nkey; j++)
            row[j] = 0.0f;
    }
}

void attn_core_backward(float *d_qkv, const float *d_o, const float *qkv, const float *o, const float *lse, int B,
                        size_t L, int E, int HS, int causal, float *ws, int threads)
{
    const int NH = E / HS;
    const size_t nq = (L + ATTN_QUERY_BLOCK - 1) / ATTN_QUERY_BLOCK, tasks = (size_t)B * NH, ld = 3 * (size_t)E;
    const float scale = (float)(1.0 / sqrt((double)HS));
    if (threads < 1)
        threads = 1;
    /* One (sequence, head) per task: it owns that head's columns of dQ, dK and dV, so every sum
     * has one order and no two tasks write the same float. Inside, query blocks in order, each
     * against all its keys at once (ATTN_QUERY_BLOCK × L scores per thread, as the forward). */
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (tasks > 1)
    for (size_t task = 0; task < tasks; task++) {
        const size_t h = task % (size_t)NH, b = task / (size_t)NH;
        const float *base = qkv + b * L * ld, *K = base + E + h * HS, *V = base + 2 * (size_t)E + h * HS;
        float *dbase = d_qkv + b * L * ld, *dK = dbase + E + h * HS, *dV = dbase + 2 * (size_t)E + h * HS;
        float *S = ws + (size_t)omp_get_thread_num() * (2 * ATTN_QUERY_BLOCK * L + ATTN_QUERY_BLOCK);
        float *dP = S + ATTN_QUERY_BLOCK * L, *Drow = dP + ATTN_QUERY_BLOCK * L;
        for (size_t qb = 0; qb < nq; qb++) {
            const size_t q0 = qb * ATTN_QUERY_BLOCK, nrow = L - q0 < ATTN_QUERY_BLOCK ? L - q0 : ATTN_QUERY_BLOCK;
            const size_t nkey = causal ? q0 + nrow : L; /* causal: no key after the block's last query */
            const float *Q = base + q0 * ld + h * HS, *dO = d_o + (b * L + q0) * E + h * HS;
            const float *O = o + (b * L + q0) * E + h * HS, *l = lse + (b * NH + h) * L + q0;
            float *dQ = dbase + q0 * ld + h * HS;
            for (size_t i = 0; i < nrow; i++) { /* D_i = Σ dO_i ∘ O_i */
                double s = 0.0;
                for (int d = 0; d < HS; d++)
                    s += (double)dO[i * E + d] * O[i * E + d];
                Drow[i] = (float)s;
            }
            /* P = exp(s·Q Kᵀ − lse) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nrow, (int)nkey, HS, scale, Q, (int)ld, K,
                        (int)ld, 0.0f, S, (int)nkey);
            probs_rows(S, nrow, nkey, q0, causal, l);
            /* dV += Pᵀ dO;  dP = dO Vᵀ */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nkey, HS, (int)nrow, 1.0f, S, (int)nkey, dO, E,
                        1.0f, dV, (int)ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nrow, (int)nkey, HS, 1.0f, dO, E, V, (int)ld,
                        0.0f, dP, (int)nkey);
            /* dS = P ∘ (dP − D) · s (zero wherever P is: the masked keys) */
            for (size_t i = 0; i < nrow; i++) {
                float *p = S + i * nkey, *dp = dP + i * nkey;
                const float Di = Drow[i];
                for (size_t j = 0; j < nkey; j++)
                    dp[j] = p[j] * (dp[j] - Di) * scale;
            }
            /* dK += dSᵀ Q;  dQ += dS K */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nkey, HS, (int)nrow, 1.0f, dP, (int)nkey, Q,
                        (int)ld, 1.0f, dK, (int)ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nrow, HS, (int)nkey, 1.0f, dP, (int)nkey, K,
                        (int)ld, 1.0f, dQ, (int)ld);
        }
    }
}

static ml_status attn_validate(const mixer_config *c)
{
    if (c->channels < 1)
        return ml_fail(ML_ERR_USAGE, "attn: channels %d must be >= 1", c->channels);
    if (c->head_size < 1 || c->channels % c->head_size != 0)
        return ml_fail(ML_ERR_USAGE, "attn: head_size %d does not divide the mixer width E = %d",
                       c->head_size, c->channels);
    return ML_OK;
}

static int attn_param_specs(const mixer_config *c, param_spec *out)
{
    if (out) {
        int64_t E = c->channels;
        out[ATTN_QKV_W] = (param_spec){"qkv.weight", 2, {3 * E, E, 0, 0}, PARAM_INIT_TRUNC_NORMAL};
        out[ATTN_QKV_B] = (param_spec){"qkv.bias", 1, {3 * E, 0, 0, 0}, PARAM_INIT_ZEROS};
        out[ATTN_PROJ_W] = (param_spec){"proj.weight", 2, {E, E, 0, 0}, PARAM_INIT_TRUNC_NORMAL};
        out[ATTN_PROJ_B] = (param_spec){"proj.bias", 1, {E, 0, 0, 0}, PARAM_INIT_ZEROS};
    }
    return ATTN_PARAMS;
}

/* qkv and proj, plus QKᵀ and AV: 2·L²·E full, L·(L+1)·E causal (only the products needed). */
static uint64_t attn_macs_common(const mixer_config *c, int B, int H, int W, int causal)
{
    const uint64_t L = (uint64_t)H * W, E = (uint64_t)c->channels;
    uint64_t m = L * E * 3 * E + L * E * E + (causal ? L * (L + 1) * E : 2 * L * L * E);
    return (uint64_t)B * m;
}

static uint64_t attn_macs(const mixer_config *c, int B, int H, int W, const macs_opts *o)
{
    (void)o; /* every term is a matrix product: the same under each convention */
    return attn_macs_common(c, B, H, W, 0);
}

static uint64_t attn_causal_macs(const mixer_config *c, int B, int H, int W, const macs_opts *o)
{
    (void)o;
    return attn_macs_common(c, B, H, W, 1);
}

size_t attn_core_workspace(int B, size_t L, int E, int HS, int threads)
{
    (void)B, (void)E, (void)HS;
    return (size_t)(threads > 0 ? threads : 1) * ATTN_QUERY_BLOCK * L;
}

static size_t attn_workspace_floats(const backend *be, const mixer_config *c, int B, int H, int W)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L;
    return rows * 3 * (size_t)c->channels + rows * (size_t)c->channels +
           be->attn_ws(B, L, c->channels, c->head_size, c->threads);
}

/* What a training forward keeps, in this order: qkv (B, L, 3E), o (B, L, E) before the projection,
 * lse (B, NH, L), each query row's log-sum-exp; nothing of size L × L. */
static size_t attn_saved_floats(const mixer_config *c, int B, int H, int W)
{
    const size_t rows = (size_t)B * H * W, E = (size_t)c->channels;
    return rows * 3 * E + rows * E + (size_t)B * (E / (size_t)c->head_size) * H * W;
}

static size_t attn_activation(const mixer_config *c, int B, int H, int W, int training)
{
    return mixer_output_floats(c, B, H, W, 0) + (training ? attn_saved_floats(c, B, H, W) : 0);
}

/* qkv = in · qkv_wᵀ + b;  o = attention(q, k, v);  out = o · proj_wᵀ + b */
static void attn_run(const backend *be, const mixer_config *c, const float *const *p, float *out, float *saved,
                     const float *in, size_t ld_in, float *ws, int B, int H, int W, int causal)
{
    const int E = c->channels;
    const size_t L = (size_t)H * W, rows = (size_t)B * L;
    float *qkv = saved ? saved : ws, *o = qkv + rows * 3 * E, *scratch = ws + rows * 4 * E;
    float *lse = saved ? o + rows * E : NULL;
    be->linear(qkv, 3 * (size_t)E, in, ld_in, p[ATTN_QKV_W], p[ATTN_QKV_B], rows, E, 3 * E, 0);
    be->attn(o, lse, qkv, B, L, E, c->head_size, causal, scratch, c->threads);
    be->linear(out, (size_t)E, o, (size_t)E, p[ATTN_PROJ_W], p[ATTN_PROJ_B], rows, E, E, 0);
}

static void attn_forward(const backend *be, const mixer_config *c, const float *const *p, float *out, float *saved,
                         const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    attn_run(be, c, p, out, saved, in, ld_in, ws, B, H, W, 0);
}

static void attn_causal_forward(const backend *be, const mixer_config *c, const float *const *p, float *out,
                                float *saved, const float *in, size_t ld_in, float *ws, int B, int H, int W)
{
    attn_run(be, c, p, out, saved, in, ld_in, ws, B, H, W, 1);
}

static size_t attn_backward_workspace_floats(const backend *be, const mixer_config *c, int B, int H, int W)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L;
    return rows * (size_t)c->channels /* d_o */ + rows * 3 * (size_t)c->channels /* d_qkv */ +
           be->attn_bwd_ws(B, L, c->channels, c->head_size, c->threads);
}

/* proj's backward into d_o; the attention core's into d_qkv; qkv's into d_in. */
static void attn_bwd_run(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                         float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                         const float *saved, float *ws, int B, int H, int W, int causal)
{
    const int E = c->channels;
    const size_t L = (size_t)H * W, rows = (size_t)B * L;
    const float *qkv = saved, *o = qkv + rows * 3 * E, *lse = o + rows * E;
    float *d_o = ws, *d_qkv = d_o + rows * E, *scratch = d_qkv + rows * 3 * E;
    be->zero(d_o, rows * 4 * (size_t)E * sizeof *d_o);
    be->linear_bwd(d_o, (size_t)E, dp[ATTN_PROJ_W], dp[ATTN_PROJ_B], d_out, (size_t)E, o, (size_t)E, p[ATTN_PROJ_W],
                   rows, E, E);
    be->attn_bwd(d_qkv, d_o, qkv, o, lse, B, L, E, c->head_size, causal, scratch, c->threads);
    be->linear_bwd(d_in, ld_din, dp[ATTN_QKV_W], dp[ATTN_QKV_B], d_qkv, 3 * (size_t)E, in, ld_in, p[ATTN_QKV_W], rows,
                   E, 3 * E);
}

static void attn_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                          float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                          const float *saved, float *ws, int B, int H, int W)
{
    attn_bwd_run(be, c, p, dp, d_in, ld_din, d_out, in, ld_in, saved, ws, B, H, W, 0);
}

static void attn_causal_backward(const backend *be, const mixer_config *c, const float *const *p, float *const *dp,
                                 float *d_in, size_t ld_din, const float *d_out, const float *in, size_t ld_in,
                                 const float *saved, float *ws, int B, int H, int W)
{
    attn_bwd_run(be, c, p, dp, d_in, ld_din, d_out, in, ld_in, saved, ws, B, H, W, 1);
}

static ml_status attn_supports(const backend *be, const mixer_config *c)
{
    backend_limits q = {.head_size = c->head_size};
    return be->supports(BE_OP_ATTN, &q);
}

static void attn_describe(const mixer_config *c, char *buf, size_t n) { snprintf(buf, n, ", head size %d", c->head_size); }

/* E from qkv.weight [3E, E]; the head size is a setting, not a shape. */
static ml_status attn_infer(mixer_config *c, mixer_shape_fn shape_of, void *ctx)
{
    int64_t s[8];
    if (shape_of(ctx, "qkv.weight", s) != 2 || s[0] != 3 * s[1])
        return ml_fail(ML_ERR_FORMAT, "missing or malformed tensor 'qkv.weight' (want [3E, E])");
    c->channels = (int)s[1];
    return ML_OK;
}

const mixer_ops mixer_attn = {
    .name = "attn",
    .summary = "multi-head softmax self-attention over all tokens",
    .block_prefix = "mixer.",
    .causal = 0,
    .uses = MIXER_USES_HEAD_SIZE,
    .validate = attn_validate,
    .param_specs = attn_param_specs,
    .macs = attn_macs,
    .activation_floats = attn_activation,
    .workspace_floats = attn_workspace_floats,
    .backward_workspace_floats = attn_backward_workspace_floats,
    .init = NULL,
    .infer = attn_infer,
    .supports = attn_supports,
    .describe = attn_describe,
    .forward = attn_forward,
    .backward = attn_backward,
};

const mixer_ops mixer_attn_causal = {
    .name = "attn_causal",
    .summary = "multi-head softmax self-attention with a causal mask in raster order",
    .block_prefix = "mixer.",
    .causal = 1,
    .uses = MIXER_USES_HEAD_SIZE,
    .validate = attn_validate,
    .param_specs = attn_param_specs,
    .macs = attn_causal_macs,
    .activation_floats = attn_activation,
    .workspace_floats = attn_workspace_floats,
    .backward_workspace_floats = attn_backward_workspace_floats,
    .init = NULL,
    .infer = attn_infer,
    .supports = attn_supports,
    .describe = attn_describe,
    .forward = attn_causal_forward,
    .backward = attn_causal_backward,
};
