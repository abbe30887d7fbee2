#include "models/model_cuda.h"

#include "blocks/act.h"
#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/pool.h"
#include "harness/cuda_util.h"

#include <stdlib.h>
#include <string.h>

ml_status model_cuda_supported(const model *m)
{
    const model_config *c = &m->cfg;
    if (c->skeleton != SKEL_HIERARCHICAL || c->stem != STEM_MAMBAOUT || c->down != DOWN_CONV || c->head != HEAD_MLP)
        return ml_fail(ML_ERR_USAGE, "%s: the CUDA forward covers MambaOut's skeleton only so far", c->name);
    if (c->norm != NORM_LAYER)
        return ml_fail(ML_ERR_USAGE, "%s: no RMSNorm kernel yet", c->name);
    if (!c->mixer->forward_cuda)
        return ml_fail(ML_ERR_USAGE, "%s: mixer '%s' has no CUDA kernel yet", c->name, c->mixer->name);
    for (int s = 0; s < c->num_stages && c->mixer->cuda_check; s++)
        ML_TRY(c->mixer->cuda_check(&m->blocks[s].mcfg));
    return ML_OK;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

ml_status model_cuda_init(model_cuda *g, const model *m)
{
    memset(g, 0, sizeof *g);
    g->m = m;
    ML_TRY(model_cuda_supported(m));
    /* weights: one arena, laid out as the host arena */
    g->weight_bytes = m->weights.size;
    g->dp = ml_calloc((size_t)m->n_params, sizeof *g->dp, "device parameter table");
    if (!g->dp)
        return ML_ERR_NOMEM;
    ml_status s = cuda_malloc((void **)&g->weights, g->weight_bytes, "weights");
    if (s == ML_OK)
        s = cuda_to_device(g->weights, m->weights.base, g->weight_bytes);
    for (int i = 0; s == ML_OK && i < m->n_params; i++)
        g->dp[i] = g->weights + ((unsigned char *)m->pdata[i] - m->weights.base) / sizeof(float);
    /* activations: the host plan's buffers, except that t holds every row (the GPU runs whole-tensor ops) */
    size_t n_t = (size_t)m->B * m->cfg.dims[m->cfg.num_stages - 1];
    for (int st = 0; st < m->cfg.num_stages; st++)
        n_t = max_sz(n_t, (size_t)m->B * m->sh[st] * m->sw[st] * m->cfg.dims[st]);
    const size_t n_in = (size_t)m->B * 3 * m->H * m->W;
    g->ws_floats = max_sz(m->n_ws, 1);
    const size_t sizes[7] = {n_in, m->n_x, n_t, m->n_u, m->n_m, m->n_logits, g->ws_floats};
    size_t total = 0;
    for (int i = 0; i < 7; i++)
        total += arena_floats_bytes(sizes[i]);
    g->activation_bytes = total;
    if (s == ML_OK)
        s = cuda_malloc((void **)&g->acts, total, "activations");
    if (s != ML_OK) {
        model_cuda_free(g);
        return s;
    }
    float **dst[7] = {&g->input, &g->x, &g->t, &g->u, &g->mm, &g->logits, &g->ws};
    size_t off = 0;
    for (int i = 0; i < 7; i++) {
        *dst[i] = (float *)((unsigned char *)g->acts + off);
        off += arena_floats_bytes(sizes[i]);
    }
    return ML_OK;
}

void model_cuda_forward(model_cuda *g)
{
    const model *m = g->m;
    const model_config *cfg = &m->cfg;
    const int B = m->B, S = cfg->num_stages;
    float *const *P = g->dp;
    int k = 0;

    nchw_to_nhwc_cuda(g->u, g->input, B, 3, m->H, m->W);
    conv2d_forward_cuda(g->mm, g->u, P[k], P[k + 1], &m->stem1, B, m->H, m->W, g->ws, g->ws_floats);
    const size_t r1 = (size_t)B * m->stem_h * m->stem_w, c1 = (size_t)m->stem1.cout;
    layernorm_forward_cuda(g->mm, c1, g->mm, c1, P[k + 2], P[k + 3], r1, m->stem1.cout, cfg->eps);
    act_forward_cuda(g->mm, g->mm, r1 * c1, ACT_GELU);
    conv2d_forward_cuda(g->x, g->mm, P[k + 4], P[k + 5], &m->stem2, B, m->stem_h, m->stem_w, g->ws, g->ws_floats);
    int h = conv2d_out_size(&m->stem2, m->stem_h), w = conv2d_out_size(&m->stem2, m->stem_w), C = cfg->dims[0];
    layernorm_forward_cuda(g->x, (size_t)C, g->x, (size_t)C, P[k + 6], P[k + 7], (size_t)B * h * w, C, cfg->eps);
    k += 8;
    for (int s = 0; s < S; s++) {
        if (s > 0) {
            conv2d_forward_cuda(g->u, g->x, P[k], P[k + 1], &m->down[s], B, h, w, g->ws, g->ws_floats);
            h = m->sh[s], w = m->sw[s], C = cfg->dims[s];
            layernorm_forward_cuda(g->x, (size_t)C, g->u, (size_t)C, P[k + 2], P[k + 3], (size_t)B * h * w, C,
                                   cfg->eps);
            k += 4;
        }
        block_buffers buf = {g->t, g->u, g->mm, g->ws, 1};
        for (int j = 0; j < cfg->depths[s]; j++) {
            block_forward_cuda(&m->blocks[s], (const float *const *)(P + k), g->x, B, h, w, &buf);
            k += m->block_nparams[s];
        }
    }
    const int HH = cfg->head_mlp_ratio * C, NC = cfg->num_classes;
    meanpool_forward_cuda(g->t, g->x, B, (size_t)h * w, C);
    layernorm_forward_cuda(g->t, (size_t)C, g->t, (size_t)C, P[k], P[k + 1], (size_t)B, C, cfg->eps);
    linear_forward_cuda(g->u, (size_t)HH, g->t, (size_t)C, P[k + 2], P[k + 3], (size_t)B, C, HH, 0);
    act_forward_cuda(g->u, g->u, (size_t)B * HH, ACT_GELU);
    layernorm_forward_cuda(g->u, (size_t)HH, g->u, (size_t)HH, P[k + 4], P[k + 5], (size_t)B, HH, cfg->eps);
    linear_forward_cuda(g->logits, (size_t)NC, g->u, (size_t)HH, P[k + 6], P[k + 7], (size_t)B, HH, NC, 0);
    k += 8;
    ML_ASSERT(k == m->n_params);
}

void model_cuda_free(model_cuda *g)
{
    cuda_free(g->weights);
    cuda_free(g->acts);
    free(g->dp);
    memset(g, 0, sizeof *g);
}
