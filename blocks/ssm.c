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

size_t ssm_direction_workspace(const backend *be, int B, size_t L, int E, int N, int R)
{
    return (size_t)B * L * ((size_t)R + 2 * (size_t)N) /* xdbl */ + (size_t)B * L * E /* Δ */ +
           be->scan_ws(B, L, E, N);
}

void ssm_direction_forward(const backend *be, float *y, int accumulate, const float *u, const ssm_params *p, int B,
                           int H, int W, int E, int N, int R, ssm_order order, int reverse, float *ws)
{
    const size_t L = (size_t)H * W, rows = (size_t)B * L, ldx = (size_t)R + 2 * (size_t)N;
    float *xdbl = ws, *delta = xdbl + rows * ldx, *core_ws = delta + rows * E;
    be->linear(xdbl, ldx, u, (size_t)E, p->x_proj, NULL, rows, E, (int)ldx, 0);
    be->linear(delta, (size_t)E, xdbl, ldx, p->dt_proj, p->dt_bias, rows, R, E, 0);
    be->act(delta, delta, rows * E, ACT_SOFTPLUS);
    be->scan(y, NULL, accumulate, u, delta, xdbl, ldx, R, p->A_log, p->D, B, H, W, E, N, order, reverse, core_ws);
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

static void ssm_forward(const backend *be, const mixer_config *c, const float *const *p, float *out, const float *in,
                        size_t ld_in, float *ws, int B, int H, int W)
{
    const int E = c->channels, N = c->d_state, R = mixer_dt_rank(c);
    const size_t L = (size_t)H * W;
    float *u = ws;
    be->conv1d_silu(u, in, ld_in, p[SSM_CONV_W], p[SSM_CONV_B], B, L, E, SSM_CONV_K, 0);
    ssm_params sp = {p[SSM_X_PROJ], p[SSM_DT_W], p[SSM_DT_B], p[SSM_A_LOG], p[SSM_D]};
    ssm_direction_forward(be, out, 0, u, &sp, B, H, W, E, N, R, SSM_ROW_MAJOR, 0, u + (size_t)B * L * E);
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
    .activation_floats = mixer_output_floats,
    .workspace_floats = ssm_workspace_floats,
    .init = ssm_init,
    .infer = ssm_infer,
    .supports = ssm_supports,
    .describe = ssm_describe,
    .forward = ssm_forward,
};
