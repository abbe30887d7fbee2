#include "blocks/gated_block.h"

#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/rmsnorm.h"

#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

block_config block_config_make(int dim, double expansion, double conv_ratio, act_kind act,
                               norm_kind norm, float eps, int fc_bias, const mixer_ops *mixer,
                               const mixer_config *mixer_overrides)
{
    block_config bc;
    memset(&bc, 0, sizeof bc);
    bc.dim = dim;
    bc.hidden = (int)(expansion * (double)dim);
    bc.conv_ch = (int)(conv_ratio * (double)dim);
    bc.act = act;
    bc.norm = norm;
    bc.norm_eps = eps;
    bc.fc_bias = fc_bias;
    bc.mixer = mixer;
    bc.mcfg = mixer_overrides ? *mixer_overrides : mixer_config_default(dim, bc.conv_ch);
    bc.mcfg.width = dim;
    bc.mcfg.channels = bc.conv_ch;
    return bc;
}

ml_status block_config_validate(const block_config *bc)
{
    if (bc->dim < 1 || bc->hidden < 1)
        return ml_fail(ML_ERR_USAGE, "block width %d / hidden %d must be >= 1", bc->dim, bc->hidden);
    if (bc->conv_ch < 1 || bc->conv_ch > bc->hidden)
        return ml_fail(ML_ERR_USAGE, "mixer width E = %d must be in 1..Hd = %d (conv_ratio too large?)",
                       bc->conv_ch, bc->hidden);
    return bc->mixer->validate(&bc->mcfg);
}

int block_param_specs(const block_config *bc, param_spec *out, size_t *slots)
{
    int n = 0;
    const int64_t C = bc->dim, Hd = bc->hidden;
#define ADD(nm, nd, s0, s1, ini, field)                                            \
    do {                                                                           \
        if (out)                                                                   \
            out[n] = (param_spec){nm, nd, {s0, s1, 0, 0}, ini};                    \
        if (slots)                                                                 \
            slots[n] = offsetof(block_params, field);                              \
        n++;                                                                       \
    } while (0)
    ADD("norm.weight", 1, C, 0, PARAM_INIT_ONES, norm_w);
    if (bc->norm == NORM_LAYER)
        ADD("norm.bias", 1, C, 0, PARAM_INIT_ZEROS, norm_b);
    ADD("fc1.weight", 2, 2 * Hd, C, PARAM_INIT_TRUNC_NORMAL, fc1_w);
    if (bc->fc_bias)
        ADD("fc1.bias", 1, 2 * Hd, 0, PARAM_INIT_ZEROS, fc1_b);
    param_spec ms[MIXER_MAX_PARAMS];
    int nm = bc->mixer->param_specs(&bc->mcfg, ms);
    ML_ASSERT(nm <= MIXER_MAX_PARAMS);
    for (int i = 0; i < nm; i++, n++) {
        if (out) {
            out[n] = ms[i];
            int len = snprintf(out[n].name, sizeof out[n].name, "%s%s", bc->mixer->block_prefix, ms[i].name);
            ML_ASSERT(len < (int)sizeof out[n].name);
        }
        if (slots)
            slots[n] = offsetof(block_params, mixer) + (size_t)i * sizeof(float *);
    }
    ADD("fc2.weight", 2, C, Hd, PARAM_INIT_TRUNC_NORMAL, fc2_w);
    if (bc->fc_bias)
        ADD("fc2.bias", 1, C, 0, PARAM_INIT_ZEROS, fc2_b);
#undef ADD
    return n;
}

void block_bind(const block_config *bc, float *const *t, block_params *out)
{
    size_t slots[BLOCK_MAX_PARAMS];
    const int n = block_param_specs(bc, NULL, slots);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++)
        *(float **)((char *)out + slots[i]) = t[i];
}

uint64_t norm_kind_macs(norm_kind k, size_t rows, int C, const macs_opts *o)
{
    if (o->convention != MACS_FVCORE)
        return 0;
    if (k == NORM_RMS)
        return o->scan == SCAN_LOCALMAMBA ? 0 : rmsnorm_macs(rows, C);
    return layernorm_macs(rows, C);
}

uint64_t block_macs(const block_config *bc, int B, int H, int W, const macs_opts *o)
{
    size_t rows = (size_t)B * H * W;
    uint64_t m = linear_macs(rows, bc->dim, 2 * bc->hidden) + linear_macs(rows, bc->hidden, bc->dim);
    m += norm_kind_macs(bc->norm, rows, bc->dim, o);
    return m + bc->mixer->macs(&bc->mcfg, B, H, W, o);
}

block_sizes block_buffer_floats(const backend *be, const block_config *bc, int B, int H, int W, int threads)
{
    const size_t rows = (size_t)B * H * W;
    block_sizes s = {.t = be->norm_linear_ws ? be->norm_linear_ws(rows, bc->dim, threads) : rows * bc->dim,
                     .u = rows * 2 * (size_t)bc->hidden,
                     .m = bc->mixer->activation_floats(&bc->mcfg, B, H, W, 0),
                     .ws = bc->mixer->workspace_floats(be, &bc->mcfg, B, H, W)};
    return s;
}

/* The block's pre-norm of rows tokens into out (rows C apart). */
static void block_norm(const backend *be, const block_config *bc, const block_params *p, float *out, const float *x,
                       size_t rows)
{
    const size_t C = (size_t)bc->dim;
    if (bc->norm == NORM_RMS)
        be->rmsnorm(out, C, NULL, x, C, p->norm_w, rows, bc->dim, bc->norm_eps);
    else
        be->layernorm(out, C, NULL, NULL, x, C, p->norm_w, p->norm_b, rows, bc->dim, bc->norm_eps);
}

void block_forward(const backend *be, const block_config *bc, const block_params *p, float *x, int B, int H, int W,
                   const block_buffers *buf)
{
    const size_t rows = (size_t)B * H * W;
    const int C = bc->dim, Hd = bc->hidden, E = bc->conv_ch;
    const size_t ldu = 2 * (size_t)Hd;
    /* u = norm(x) · fc1ᵀ + b1 */
    if (be->norm_linear) {
        be->norm_linear(buf->u, ldu, buf->t, x, C, bc->norm, p->norm_w, p->norm_b, bc->norm_eps, p->fc1_w, p->fc1_b,
                        rows, 2 * Hd, buf->threads);
    } else {
        block_norm(be, bc, p, buf->t, x, rows);
        be->linear(buf->u, ldu, buf->t, (size_t)C, p->fc1_w, p->fc1_b, rows, C, 2 * Hd, 0);
    }
    /* c' = mixer(c), c the last E columns of u */
    bc->mixer->forward(be, &bc->mcfg, (const float *const *)p->mixer, buf->m, NULL, buf->u + (2 * Hd - E), ldu, buf->ws,
                       B, H, W);
    /* v = act(g) · [i | c'];  x += v · fc2ᵀ + b2 */
    if (be->gate_linear) {
        be->gate_linear(x, C, buf->v, buf->ld_v, buf->u, buf->m, rows, Hd, E, bc->act, p->fc2_w, p->fc2_b,
                        buf->threads);
    } else {
        be->gate(buf->v, buf->ld_v, buf->u, buf->m, rows, Hd, E, bc->act);
        be->linear(x, (size_t)C, buf->v, buf->ld_v, p->fc2_w, p->fc2_b, rows, Hd, C, 1);
    }
}

/* ---- training ---- */

block_train_plan block_train_sizes(const backend *be, const block_config *bc, int B, int H, int W)
{
    const size_t rows = (size_t)B * H * W, C = (size_t)bc->dim, Hd = (size_t)bc->hidden, E = (size_t)bc->conv_ch;
    block_train_plan pl;
    pl.x = rows * C;
    pl.mean = bc->norm == NORM_LAYER ? rows : 0;
    pl.rstd = rows;
    pl.u = rows * 2 * Hd;
    pl.m = rows * E;
    pl.v = rows * Hd;
    pl.saved = mixer_saved_floats(bc->mixer, &bc->mcfg, B, H, W);
    pl.state = pl.x + pl.mean + pl.rstd + pl.u + pl.m + pl.v + pl.saved;
    pl.fwd_ws = rows * C + bc->mixer->workspace_floats(be, &bc->mcfg, B, H, W);
    pl.bwd_ws = rows * (Hd + 2 * Hd + E + 2 * C) + bc->mixer->backward_workspace_floats(be, &bc->mcfg, B, H, W);
    return pl;
}

void block_train_bind(const block_config *bc, const block_train_plan *pl, float *base, block_train_state *st)
{
    (void)bc;
    st->x = base;
    st->mean = pl->mean ? st->x + pl->x : NULL;
    st->rstd = st->x + pl->x + pl->mean;
    st->u = st->rstd + pl->rstd;
    st->m = st->u + pl->u;
    st->v = st->m + pl->m;
    st->saved = st->v + pl->v;
}

void block_forward_train(const backend *be, const block_config *bc, const block_params *p, float *x, int B, int H,
                         int W, const block_train_state *st, const float *drop_scale, float *ws)
{
    const size_t rows = (size_t)B * H * W, C = (size_t)bc->dim;
    const int Hd = bc->hidden, E = bc->conv_ch;
    const size_t ldu = 2 * (size_t)Hd;
    float *t = ws, *mws = ws + rows * C;
    be->copy_rows(st->x, C, x, C, C, rows);
    if (bc->norm == NORM_RMS)
        be->rmsnorm(t, C, st->rstd, x, C, p->norm_w, rows, bc->dim, bc->norm_eps);
    else
        be->layernorm(t, C, st->mean, st->rstd, x, C, p->norm_w, p->norm_b, rows, bc->dim, bc->norm_eps);
    be->linear(st->u, ldu, t, C, p->fc1_w, p->fc1_b, rows, bc->dim, 2 * Hd, 0);
    bc->mixer->forward(be, &bc->mcfg, (const float *const *)p->mixer, st->m, st->saved, st->u + (2 * Hd - E), ldu,
                       mws, B, H, W);
    be->gate(st->v, (size_t)Hd, st->u, st->m, rows, Hd, E, bc->act);
    if (!drop_scale) {
        be->linear(x, C, st->v, (size_t)Hd, p->fc2_w, p->fc2_b, rows, Hd, bc->dim, 1);
        return;
    }
    /* drop path: the path of sample b is scaled by drop_scale[b] before the residual add (t is free now) */
    be->linear(t, C, st->v, (size_t)Hd, p->fc2_w, p->fc2_b, rows, Hd, bc->dim, 0);
    const size_t per = rows / (size_t)B * C;
    for (int b = 0; b < B; b++)
        be->scale_bwd(x + b * per, t + b * per, per, drop_scale[b]);
}

void block_backward(const backend *be, const block_config *bc, const block_params *p, const block_params *d_p,
                    float *d_x, const block_train_state *st, const float *drop_scale, float *ws, int B, int H, int W)
{
    const size_t rows = (size_t)B * H * W, C = (size_t)bc->dim;
    const int Hd = bc->hidden, E = bc->conv_ch;
    const size_t ldu = 2 * (size_t)Hd;
    float *d_v = ws, *d_u = d_v + rows * Hd, *d_m = d_u + rows * ldu, *t = d_m + rows * E, *d_t = t + rows * C;
    float *mws = d_t + rows * C;
    be->zero(d_v, rows * ((size_t)Hd + ldu + (size_t)E) * sizeof *d_v);
    /* x_out = x_in + s_b · (v · fc2ᵀ + b2): d_x (= d_x_out), scaled per sample by the drop path's s_b
     * (into d_t, free until fc1's backward), is fc2's upstream gradient */
    const float *d_y = d_x;
    if (drop_scale) {
        const size_t per = rows / (size_t)B * C;
        be->zero(d_t, rows * C * sizeof *d_t);
        for (int b = 0; b < B; b++)
            be->scale_bwd(d_t + b * per, d_x + b * per, per, drop_scale[b]);
        d_y = d_t;
    }
    be->linear_bwd(d_v, (size_t)Hd, d_p->fc2_w, d_p->fc2_b, d_y, C, st->v, (size_t)Hd, p->fc2_w, rows, Hd, bc->dim);
    be->gate_bwd(d_u, d_m, d_v, (size_t)Hd, st->u, st->m, rows, Hd, E, bc->act);
    /* the mixer read c = u[:, 2Hd-E:]; its input gradient goes to the same columns of d_u */
    bc->mixer->backward(be, &bc->mcfg, (const float *const *)p->mixer, d_p->mixer, d_u + (2 * Hd - E), ldu, d_m,
                        st->u + (2 * Hd - E), ldu, st->saved, mws, B, H, W);
    /* u = t · fc1ᵀ + b1, t = norm(x_in) recomputed exactly as the forward made it */
    if (bc->norm == NORM_RMS)
        be->rmsnorm(t, C, NULL, st->x, C, p->norm_w, rows, bc->dim, bc->norm_eps);
    else
        be->layernorm(t, C, NULL, NULL, st->x, C, p->norm_w, p->norm_b, rows, bc->dim, bc->norm_eps);
    be->zero(d_t, rows * C * sizeof *d_t);
    be->linear_bwd(d_t, C, d_p->fc1_w, d_p->fc1_b, d_u, ldu, t, C, p->fc1_w, rows, bc->dim, 2 * Hd);
    /* the residual: d_x_in = d_x_out + the norm's backward of d_t */
    if (bc->norm == NORM_RMS)
        be->rmsnorm_bwd(d_x, C, d_p->norm_w, d_t, C, st->x, C, p->norm_w, st->rstd, rows, bc->dim);
    else
        be->layernorm_bwd(d_x, C, d_p->norm_w, d_p->norm_b, d_t, C, st->x, C, p->norm_w, st->mean, st->rstd, rows,
                          bc->dim);
}

/* ---- the gate op ---- */

static void gate_rows(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    const int ni = Hd - E;
    const size_t ld = 2 * (size_t)Hd;
    for (size_t r = 0; r < rows; r++) {
        const float *g = u + r * ld, *i = g + Hd;
        const float *c = m + r * (size_t)E;
        float *o = v + r * ld_v;
        act_row(o, g, (size_t)Hd, act);
        for (int j = 0; j < ni; j++)
            o[j] *= i[j];
        for (int j = 0; j < E; j++)
            o[ni + j] *= c[j];
    }
}

void gate_forward(float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    /* equal chunks, a whole number per thread: a 196-token stage split as
     * 128 + 68 rows, or a 49-token one left to one thread, kept the other waiting */
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const size_t per = (rows + (size_t)threads * BLOCK_CHUNK_ROWS - 1) / ((size_t)threads * BLOCK_CHUNK_ROWS);
    const size_t nchunks = rows ? (size_t)threads * per : 0;
    const size_t chunk = nchunks ? (rows + nchunks - 1) / nchunks : 0;
#pragma omp parallel for schedule(static) num_threads(threads) if (rows * (size_t)Hd > 32768)
    for (size_t k = 0; k < nchunks; k++) {
        size_t r0 = k * chunk;
        if (r0 >= rows)
            continue;
        size_t n = rows - r0 < chunk ? rows - r0 : chunk;
        gate_rows(v + r0 * ld_v, ld_v, u + r0 * 2 * (size_t)Hd, m + r0 * (size_t)E, n, Hd, E, act);
    }
}

/* d_gate += d_v act'(gate) x and d_x += d_v act(gate) over n columns: elementwise, so the
 * vector clone gives the scalar loop's bits */
ML_CLONES static void gate_bwd_span(float *restrict dg, float *restrict dx, const float *restrict dv,
                                    const float *restrict ap, const float *restrict a, const float *restrict x, int n)
{
    for (int q = 0; q < n; q++) {
        dg[q] += dv[q] * ap[q] * x[q];
        dx[q] += dv[q] * a[q];
    }
}

void gate_backward(float *d_u, float *d_m, const float *d_v, size_t ld_dv, const float *u, const float *m,
                   size_t rows, int Hd, int E, act_kind act)
{
    const int ni = Hd - E;
    const size_t ld = 2 * (size_t)Hd;
#pragma omp parallel for schedule(static) if (rows * (size_t)Hd > 32768)
    for (size_t r = 0; r < rows; r++) {
        const float *g = u + r * ld, *i = g + Hd, *c = m + r * (size_t)E, *dv = d_v + r * ld_dv;
        float *dg = d_u + r * ld, *di = dg + Hd, *dm = d_m + r * (size_t)E;
        /* act(g) and act'(g) through the vector paths, 256 columns at a time */
        float a[256], ap[256];
        for (int j0 = 0; j0 < Hd; j0 += 256) {
            const int len = Hd - j0 < 256 ? Hd - j0 : 256;
            act_row(a, g + j0, (size_t)len, act);
            act_grad_row(ap, g + j0, (size_t)len, act);
            /* columns below ni gate the identity half i, the rest the mixer's output c */
            int nl = ni - j0;
            nl = nl < 0 ? 0 : nl > len ? len : nl;
            if (nl > 0)
                gate_bwd_span(dg + j0, di + j0, dv + j0, ap, a, i + j0, nl);
            if (nl < len)
                gate_bwd_span(dg + j0 + nl, dm + (j0 + nl - ni), dv + j0 + nl, ap + nl, a + nl, c + (j0 + nl - ni),
                              len - nl);
        }
    }
}

/* ---- the CPU's fused halves ---- */

void block_chunking(size_t rows, int threads, size_t *nchunks, size_t *chunk_rows)
{
    size_t t = threads > 0 ? (size_t)threads : 1;
    if (rows < t * BLOCK_MIN_ROWS_PER_THREAD) {
        *nchunks = 0, *chunk_rows = rows;
        return;
    }
    size_t per_thread = (rows + t * BLOCK_CHUNK_ROWS - 1) / (t * BLOCK_CHUNK_ROWS);
    *chunk_rows = (rows + t * per_thread - 1) / (t * per_thread);
    *nchunks = (rows + *chunk_rows - 1) / *chunk_rows;
}

size_t block_norm_linear_cpu_ws(size_t rows, int C, int threads)
{
    size_t nchunks, chunk;
    block_chunking(rows, threads, &nchunks, &chunk);
    /* one chunk per thread, or every row when unchunked */
    return (nchunks ? (size_t)(threads > 0 ? threads : 1) * chunk : rows) * (size_t)C;
}

static void norm_rows(float *out, const float *x, int C, norm_kind nk, const float *nw, const float *nb, float eps,
                      size_t rows)
{
    if (nk == NORM_RMS)
        rmsnorm_forward(out, (size_t)C, NULL, x, (size_t)C, nw, rows, C, eps);
    else
        layernorm_forward(out, (size_t)C, NULL, NULL, x, (size_t)C, nw, nb, rows, C, eps);
}

void block_norm_linear_cpu(float *u, size_t ld_u, float *t, const float *x, int C, norm_kind nk, const float *nw,
                           const float *nb, float eps, const float *w, const float *b, size_t rows, int out_f,
                           int threads)
{
    threads = threads > 0 ? threads : 1;
    size_t nchunks, chunk;
    block_chunking(rows, threads, &nchunks, &chunk);
    if (!nchunks) {
        norm_rows(t, x, C, nk, nw, nb, eps, rows);
        linear_forward(u, ld_u, t, (size_t)C, w, b, rows, C, out_f, 0);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t q = 0; q < nchunks; q++) {
        size_t r0 = q * chunk, n = rows - r0 < chunk ? rows - r0 : chunk;
        float *tt = t + (size_t)omp_get_thread_num() * chunk * C;
        norm_rows(tt, x + r0 * C, C, nk, nw, nb, eps, n);
        linear_forward(u + r0 * ld_u, ld_u, tt, (size_t)C, w, b, n, C, out_f, 0);
    }
}

void block_gate_linear_cpu(float *x, int C, float *v, size_t ld_v, const float *u, const float *m, size_t rows, int Hd,
                           int E, act_kind act, const float *w, const float *b, int threads)
{
    threads = threads > 0 ? threads : 1;
    size_t nchunks, chunk;
    block_chunking(rows, threads, &nchunks, &chunk);
    if (!nchunks) {
        gate_forward(v, ld_v, u, m, rows, Hd, E, act);
        linear_forward(x, (size_t)C, v, ld_v, w, b, rows, Hd, C, 1);
        return;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t q = 0; q < nchunks; q++) {
        size_t r0 = q * chunk, n = rows - r0 < chunk ? rows - r0 : chunk;
        gate_rows(v + r0 * ld_v, ld_v, u + r0 * 2 * (size_t)Hd, m + r0 * (size_t)E, n, Hd, E, act);
        linear_forward(x + r0 * C, (size_t)C, v + r0 * ld_v, ld_v, w, b, n, Hd, C, 1);
    }
}
