#include "blocks/gated_block.h"

#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/rmsnorm.h"

#include <omp.h>
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

int block_param_specs(const block_config *bc, param_spec *out)
{
    int n = 0;
    const int64_t C = bc->dim, Hd = bc->hidden;
#define ADD(nm, nd, s0, s1, ini)                                                   \
    do {                                                                           \
        if (out)                                                                   \
            out[n] = (param_spec){nm, nd, {s0, s1, 0, 0}, ini};                    \
        n++;                                                                       \
    } while (0)
    ADD("norm.weight", 1, C, 0, PARAM_INIT_ONES);
    if (bc->norm == NORM_LAYER)
        ADD("norm.bias", 1, C, 0, PARAM_INIT_ZEROS);
    ADD("fc1.weight", 2, 2 * Hd, C, PARAM_INIT_TRUNC_NORMAL);
    if (bc->fc_bias)
        ADD("fc1.bias", 1, 2 * Hd, 0, PARAM_INIT_ZEROS);
    param_spec ms[MIXER_MAX_PARAMS];
    int nm = bc->mixer->param_specs(&bc->mcfg, ms);
    for (int i = 0; i < nm; i++, n++) {
        if (out) {
            out[n] = ms[i];
            int len = snprintf(out[n].name, sizeof out[n].name, "%s%s", bc->mixer->block_prefix,
                               ms[i].name);
            ML_ASSERT(len < (int)sizeof out[n].name);
        }
    }
    ADD("fc2.weight", 2, C, Hd, PARAM_INIT_TRUNC_NORMAL);
    if (bc->fc_bias)
        ADD("fc2.bias", 1, C, 0, PARAM_INIT_ZEROS);
#undef ADD
    return n;
}

uint64_t norm_kind_macs(norm_kind k, size_t rows, int C, const macs_opts *o)
{
    if (o->convention != MACS_FVCORE)
        return 0;
    if (k == NORM_RMS)
        return o->scan == SCAN_LOCALMAMBA ? 0 : rmsnorm_macs(rows, C);
    return layernorm_macs(rows, C);
}

int block_mixer_param_offset(const block_config *bc)
{
    return (bc->norm == NORM_LAYER ? 2 : 1) + 1 + (bc->fc_bias ? 1 : 0); /* norm, fc1.weight, fc1.bias */
}

/* The block's pre-norm of rows tokens, LayerNorm or RMSNorm (w, b as laid out by block_param_specs). */
static void block_norm(const block_config *bc, float *out, const float *in, const float *const *p, size_t rows)
{
    const size_t C = (size_t)bc->dim;
    if (bc->norm == NORM_RMS)
        rmsnorm_forward(out, C, in, C, p[0], rows, bc->dim, bc->norm_eps);
    else
        layernorm_forward(out, C, in, C, p[0], p[1], rows, bc->dim, bc->norm_eps);
}

uint64_t block_macs(const block_config *bc, int B, int H, int W, const macs_opts *o)
{
    size_t rows = (size_t)B * H * W;
    uint64_t m = linear_macs(rows, bc->dim, 2 * bc->hidden) + linear_macs(rows, bc->hidden, bc->dim);
    m += norm_kind_macs(bc->norm, rows, bc->dim, o);
    return m + bc->mixer->macs(&bc->mcfg, B, H, W, o);
}

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

block_sizes block_buffer_floats(const block_config *bc, int B, int H, int W, int threads)
{
    size_t rows = (size_t)B * H * W, nchunks, chunk;
    block_chunking(rows, threads, &nchunks, &chunk);
    /* t: one chunk per thread, or every row when unchunked */
    size_t t_rows = nchunks ? (size_t)(threads > 0 ? threads : 1) * chunk : rows;
    block_sizes s = {.t = t_rows * bc->dim,
                     .u = rows * 2 * (size_t)bc->hidden,
                     .m = bc->mixer->activation_floats(&bc->mcfg, B, H, W),
                     .ws = bc->mixer->workspace_floats(&bc->mcfg, B, H, W)};
    return s;
}

static void gate_rows(float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    const int ni = Hd - E;
    const size_t ld = 2 * (size_t)Hd;
    for (size_t r = 0; r < rows; r++) {
        float *g = u + r * ld;
        const float *i = g + Hd;
        const float *c = m + r * (size_t)E;
        act_row(g, g, (size_t)Hd, act);
        for (int j = 0; j < ni; j++)
            g[j] *= i[j];
        for (int j = 0; j < E; j++)
            g[ni + j] *= c[j];
    }
}

void gate_forward(float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
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
        gate_rows(u + r0 * 2 * (size_t)Hd, m + r0 * (size_t)E, n, Hd, E, act);
    }
}

void block_forward(const block_config *bc, const float *const *p, float *x, int B, int H, int W,
                   const block_buffers *buf)
{
    const size_t rows = (size_t)B * H * W;
    const int C = bc->dim, Hd = bc->hidden, E = bc->conv_ch;
    const int nn = bc->norm == NORM_LAYER ? 2 : 1;
    const float *fc1_w = p[nn], *fc1_b = bc->fc_bias ? p[nn + 1] : NULL;
    int k = block_mixer_param_offset(bc);
    const float *const *mixer_p = p + k;
    k += bc->mixer->param_specs(&bc->mcfg, NULL);
    const float *fc2_w = p[k++], *fc2_b = bc->fc_bias ? p[k++] : NULL;
    const size_t ldu = 2 * (size_t)Hd;
    const int threads = buf->threads > 0 ? buf->threads : 1;
    size_t nchunks, chunk;
    block_chunking(rows, threads, &nchunks, &chunk);

    if (nchunks) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t q = 0; q < nchunks; q++) {
            size_t r0 = q * chunk, n = rows - r0 < chunk ? rows - r0 : chunk;
            float *t = buf->t + (size_t)omp_get_thread_num() * chunk * C;
            block_norm(bc, t, x + r0 * C, p, n);
            linear_forward(buf->u + r0 * ldu, ldu, t, (size_t)C, fc1_w, fc1_b, n, C, 2 * Hd, 0);
        }
    } else {
        block_norm(bc, buf->t, x, p, rows);
        linear_forward(buf->u, ldu, buf->t, (size_t)C, fc1_w, fc1_b, rows, C, 2 * Hd, 0);
    }
    bc->mixer->forward_cpu(&bc->mcfg, mixer_p, buf->m, buf->u + (2 * Hd - E), ldu, buf->ws, B, H, W);
    if (nchunks) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t q = 0; q < nchunks; q++) {
            size_t r0 = q * chunk, n = rows - r0 < chunk ? rows - r0 : chunk;
            gate_rows(buf->u + r0 * ldu, buf->m + r0 * (size_t)E, n, Hd, E, bc->act);
            linear_forward(x + r0 * C, (size_t)C, buf->u + r0 * ldu, ldu, fc2_w, fc2_b, n, Hd, C, 1);
        }
    } else {
        gate_forward(buf->u, buf->m, rows, Hd, E, bc->act);
        linear_forward(x, (size_t)C, buf->u, ldu, fc2_w, fc2_b, rows, Hd, C, 1);
    }
}
