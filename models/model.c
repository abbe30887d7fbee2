#include "models/model.h"

#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/rmsnorm.h"

#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- planning: one walk over the architecture records the parameter table
 * (with each tensor's named slot), the buffer sizes and the accounting ---- */

#define SLOT(field) offsetof(model_params, field)
#define NO_SLOT ((size_t)-1)

typedef struct {
    model *m;
    int cap;
    int part; /* the part being planned: 0 stem, 1 + s stage s, S + 1 head */
} planner;

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static ml_status plan_param(planner *pl, const char *name, int ndim, const int64_t *shape, param_init init,
                            size_t slot)
{
    model *m = pl->m;
    if (m->n_params == pl->cap) {
        int ncap = pl->cap ? 2 * pl->cap : 64;
        model_param *p = realloc(m->params, (size_t)ncap * sizeof *p);
        if (!p)
            return ml_fail(ML_ERR_NOMEM, "out of memory building the parameter table");
        m->params = p;
        pl->cap = ncap;
    }
    model_param *p = &m->params[m->n_params++];
    memset(p, 0, sizeof *p);
    if (snprintf(p->name, sizeof p->name, "%s", name) >= (int)sizeof p->name)
        return ml_fail(ML_ERR_RUNTIME, "parameter name too long: %s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->init = init;
    p->part = pl->part;
    p->slot = slot;
    m->param_floats += p->numel;
    return ML_OK;
}

static ml_status plan_pair(planner *pl, const char *prefix, int ndim, const int64_t *wshape, int64_t nb,
                           param_init winit, param_init binit, size_t slot)
{
    char name[PARAM_NAME_MAX + 32];
    int64_t bs[1] = {nb};
    snprintf(name, sizeof name, "%s.weight", prefix);
    ML_TRY(plan_param(pl, name, ndim, wshape, winit, slot == NO_SLOT ? NO_SLOT : slot + offsetof(tensor_pair, w)));
    if (nb <= 0)
        return ML_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return plan_param(pl, name, 1, bs, binit, slot == NO_SLOT ? NO_SLOT : slot + offsetof(tensor_pair, b));
}

/* A dense conv producing out_rows pixels: weight and bias, its MACs. */
static ml_status plan_conv(planner *pl, const char *prefix, const conv2d_shape *s, int B, int Ho, int Wo,
                           size_t slot)
{
    int64_t w[4] = {s->cout, s->cin, s->k, s->k};
    pl->m->part[pl->part].product_macs += conv2d_macs(s, B, Ho, Wo);
    return plan_pair(pl, prefix, 4, w, s->cout, PARAM_INIT_TRUNC_NORMAL, PARAM_INIT_ZEROS, slot);
}

/* A norm of a given kind over rows x C: weight, and bias for LayerNorm. */
static ml_status plan_norm(planner *pl, const char *prefix, int C, norm_kind k, size_t rows, size_t slot)
{
    model_part_plan *pp = &pl->m->part[pl->part];
    int64_t w[1] = {C};
    if (k == NORM_RMS)
        pp->rmsnorm_elems += (uint64_t)rows * C;
    else
        pp->layernorm_elems += (uint64_t)rows * C;
    return plan_pair(pl, prefix, 1, w, k == NORM_LAYER ? C : 0, PARAM_INIT_ONES, PARAM_INIT_ZEROS, slot);
}

static ml_status plan_linear(planner *pl, const char *prefix, int in_f, int out_f, int bias, size_t rows, size_t slot)
{
    int64_t w[2] = {out_f, in_f};
    pl->m->part[pl->part].product_macs += linear_macs(rows, in_f, out_f);
    return plan_pair(pl, prefix, 2, w, bias ? out_f : 0, PARAM_INIT_TRUNC_NORMAL, PARAM_INIT_ZEROS, slot);
}

void model_stage_grid(const model *m, int s, int *bh, int *bw)
{
    const int line = m->cfg.skeleton != SKEL_HIERARCHICAL;
    *bh = line ? 1 : m->sh[s];
    *bw = line ? (int)m->seq : m->sw[s];
}

size_t model_logit_rows(const model *m)
{
    return m->cfg.skeleton == SKEL_SEQUENCE ? (size_t)m->B * m->seq : (size_t)m->B;
}

size_t model_input_floats(const model *m)
{
    return m->cfg.skeleton == SKEL_SEQUENCE ? m->seq : (size_t)3 * m->H * m->W;
}

/* The sequence skeleton's stem: the token embedding (vocab, C) and the optional position embedding
 * (1, max_len, C), both timm-initialised (trunc normal, std 0.02). A gather: no MACs. */
static ml_status plan_embed(planner *pl)
{
    model *m = pl->m;
    const model_config *cfg = &m->cfg;
    pl->part = 0;
    int64_t e[2] = {cfg->vocab, cfg->dims[0]}, pos[3] = {1, cfg->max_len, cfg->dims[0]};
    ML_TRY(plan_param(pl, "embed.weight", 2, e, PARAM_INIT_TRUNC_NORMAL, SLOT(embed)));
    if (cfg->pos_embed)
        ML_TRY(plan_param(pl, "pos_embed", 3, pos, PARAM_INIT_TRUNC_NORMAL, SLOT(pos_embed)));
    return ML_OK;
}

/* The stem (MAMBAOUT: conv3x3 s2 -> LN -> GELU -> conv3x3 s2 -> LN; PATCH:
 * conv PxP stride P [-> LN]); *h, *w get the grid after it. */
static ml_status plan_stem(planner *pl, int *h, int *w)
{
    model *m = pl->m;
    const model_config *cfg = &m->cfg;
    const int B = m->B, C0 = cfg->dims[0], T = m->threads;
    pl->part = 0;
    if (cfg->stem == STEM_MAMBAOUT) {
        if (C0 < 2)
            return ml_fail(ML_ERR_USAGE, "%s: stem width %d must be >= 2", cfg->name, C0);
        m->stem1 = (conv2d_shape){3, C0 / 2, 3, 2, 1};
        m->stem2 = (conv2d_shape){C0 / 2, C0, 3, 2, 1};
        m->stem_h = conv2d_out_size(&m->stem1, m->H), m->stem_w = conv2d_out_size(&m->stem1, m->W);
        *h = conv2d_out_size(&m->stem2, m->stem_h), *w = conv2d_out_size(&m->stem2, m->stem_w);
        const size_t r1 = (size_t)B * m->stem_h * m->stem_w, r2 = (size_t)B * *h * *w;
        ML_TRY(plan_conv(pl, "stem.conv1", &m->stem1, B, m->stem_h, m->stem_w, SLOT(stem_conv1)));
        ML_TRY(plan_norm(pl, "stem.norm1", C0 / 2, NORM_LAYER, r1, SLOT(stem_norm1)));
        ML_TRY(plan_conv(pl, "stem.conv2", &m->stem2, B, *h, *w, SLOT(stem_conv2)));
        ML_TRY(plan_norm(pl, "stem.norm2", C0, NORM_LAYER, r2, SLOT(stem_norm2)));
        m->n_m = r1 * (C0 / 2);
        m->n_ws = max_sz(m->be->conv2d_ws(&m->stem1, r1, T), m->be->conv2d_ws(&m->stem2, r2, T));
        return ML_OK;
    }
    if (cfg->patch < 1 || m->H < cfg->patch || m->W < cfg->patch)
        return ml_fail(ML_ERR_USAGE, "%s: patch size %d does not fit %dx%d", cfg->name, cfg->patch, m->H, m->W);
    m->stem1 = (conv2d_shape){3, C0, cfg->patch, cfg->patch, 0};
    *h = conv2d_out_size(&m->stem1, m->H), *w = conv2d_out_size(&m->stem1, m->W);
    const size_t rows = (size_t)B * *h * *w;
    ML_TRY(plan_conv(pl, "patch_embed.proj", &m->stem1, B, *h, *w, SLOT(stem_conv1)));
    if (cfg->stem_norm)
        ML_TRY(plan_norm(pl, "patch_embed.norm", C0, NORM_LAYER, rows, SLOT(stem_norm1)));
    m->n_u = max_sz(m->n_u, rows * C0);
    m->n_ws = m->be->conv2d_ws(&m->stem1, rows, T);
    return ML_OK;
}

/* The downsampling layer opening stage s > 0 (CONV: conv3x3 s2 -> LN; MERGE:
 * 2x2 concat -> LN -> linear without bias); updates the grid. */
static ml_status plan_down(planner *pl, int s, int *h, int *w)
{
    model *m = pl->m;
    const model_config *cfg = &m->cfg;
    const int B = m->B, C = cfg->dims[s], Cp = cfg->dims[s - 1];
    char prefix[PARAM_NAME_MAX];
    if (cfg->down == DOWN_CONV) {
        m->down[s] = (conv2d_shape){Cp, C, 3, 2, 1};
        *h = conv2d_out_size(&m->down[s], *h), *w = conv2d_out_size(&m->down[s], *w);
        const size_t rows = (size_t)B * *h * *w;
        snprintf(prefix, sizeof prefix, "stages.%d.downsample.conv", s);
        ML_TRY(plan_conv(pl, prefix, &m->down[s], B, *h, *w, SLOT(down[s].conv)));
        snprintf(prefix, sizeof prefix, "stages.%d.downsample.norm", s);
        ML_TRY(plan_norm(pl, prefix, C, NORM_LAYER, rows, SLOT(down[s].norm)));
        m->n_u = max_sz(m->n_u, rows * C);
        m->n_ws = max_sz(m->n_ws, m->be->conv2d_ws(&m->down[s], rows, m->threads));
        return ML_OK;
    }
    if (*h < 2 || *w < 2)
        return ml_fail(ML_ERR_USAGE, "%s: stage %d grid %dx%d is too small to merge", cfg->name, s, *h, *w);
    *h /= 2, *w /= 2;
    const size_t rows = (size_t)B * *h * *w;
    snprintf(prefix, sizeof prefix, "stages.%d.downsample.norm", s);
    ML_TRY(plan_norm(pl, prefix, 4 * Cp, NORM_LAYER, rows, SLOT(down[s].norm)));
    snprintf(prefix, sizeof prefix, "stages.%d.downsample.reduction", s);
    ML_TRY(plan_linear(pl, prefix, 4 * Cp, C, 0, rows, SLOT(down[s].reduction)));
    m->n_u = max_sz(m->n_u, rows * 4 * Cp);
    return ML_OK;
}

/* Stage s's blocks: one block config, depth copies of its parameters, the buffers. */
static ml_status plan_blocks(planner *pl, int s, int *next_block)
{
    model *m = pl->m;
    const model_config *cfg = &m->cfg;
    const int C = cfg->dims[s], depth = cfg->depths[s];
    int bh, bw;
    model_stage_grid(m, s, &bh, &bw);
    m->n_x = max_sz(m->n_x, (size_t)m->B * bh * bw * C);
    mixer_config mc = cfg->mixer_cfg;
    mc.threads = m->threads;
    m->blocks[s] = block_config_make(C, cfg->expansion, cfg->conv_ratio, cfg->act, cfg->norm, cfg->eps, cfg->fc_bias,
                                     cfg->mixer, &mc);
    ml_status st = block_config_validate(&m->blocks[s]);
    if (st == ML_OK)
        st = mixer_supports(cfg->mixer, m->be, &m->blocks[s].mcfg);
    if (st != ML_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ml_last_error());
        return ml_fail(ML_ERR_USAGE, "%s, stage %d (width %d): %s", cfg->name, s, C, why);
    }
    if (*next_block + depth > MODEL_MAX_BLOCKS)
        return ml_fail(ML_ERR_USAGE, "%s: more than %d blocks", cfg->name, MODEL_MAX_BLOCKS);
    m->block_base[s] = *next_block;
    param_spec specs[BLOCK_MAX_PARAMS];
    size_t slots[BLOCK_MAX_PARAMS];
    const int ns = block_param_specs(&m->blocks[s], specs, slots);
    for (int j = 0; j < depth; j++, (*next_block)++) {
        const size_t base = SLOT(blocks) + (size_t)*next_block * sizeof(block_params);
        for (int k = 0; k < ns; k++) {
            char name[PARAM_NAME_MAX + 32];
            int len = cfg->skeleton != SKEL_HIERARCHICAL
                          ? snprintf(name, sizeof name, "blocks.%d.%s", j, specs[k].name)
                          : snprintf(name, sizeof name, "stages.%d.blocks.%d.%s", s, j, specs[k].name);
            if (len >= (int)sizeof name)
                return ml_fail(ML_ERR_RUNTIME, "parameter name too long: %s", specs[k].name);
            ML_TRY(plan_param(pl, name, specs[k].ndim, specs[k].shape, specs[k].init, base + slots[k]));
        }
    }
    if (depth > 0) {
        block_sizes bs = block_buffer_floats(m->be, &m->blocks[s], m->B, bh, bw, m->threads);
        m->n_t = max_sz(m->n_t, bs.t);
        m->n_u = max_sz(m->n_u, bs.u);
        m->n_m = max_sz(m->n_m, bs.m);
        m->n_ws = max_sz(m->n_ws, bs.ws);
    }
    return ML_OK;
}

/* The head (MLP: mean -> LN -> fc -> GELU -> LN -> fc; NORM_LINEAR: LN per
 * token -> mean -> fc; TOKEN: final norm on the class token -> fc). */
static ml_status plan_head(planner *pl)
{
    model *m = pl->m;
    const model_config *cfg = &m->cfg;
    const int S = cfg->num_stages, CL = cfg->dims[S - 1], NC = cfg->num_classes, B = m->B;
    pl->part = S + 1;
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * CL;
        ML_TRY(plan_norm(pl, "head.norm", CL, NORM_LAYER, (size_t)B, SLOT(head_norm)));
        ML_TRY(plan_linear(pl, "head.pre_logits.fc", CL, HH, 1, (size_t)B, SLOT(head_fc1)));
        ML_TRY(plan_norm(pl, "head.pre_logits.norm", HH, NORM_LAYER, (size_t)B, SLOT(head_norm2)));
        ML_TRY(plan_linear(pl, "head.fc", HH, NC, 1, (size_t)B, SLOT(head_fc)));
        m->n_u = max_sz(m->n_u, (size_t)B * HH);
        break;
    }
    case HEAD_NORM_LINEAR: {
        const size_t rows = (size_t)B * m->sh[S - 1] * m->sw[S - 1];
        ML_TRY(plan_norm(pl, "head.norm", CL, NORM_LAYER, rows, SLOT(head_norm)));
        ML_TRY(plan_linear(pl, "head.fc", CL, NC, 1, (size_t)B, SLOT(head_fc)));
        m->n_u = max_sz(m->n_u, rows * CL);
        break;
    }
    case HEAD_TOKEN:
        ML_TRY(plan_norm(pl, "norm", CL, cfg->norm, (size_t)B, SLOT(head_norm)));
        ML_TRY(plan_linear(pl, "head.fc", CL, NC, 1, (size_t)B, SLOT(head_fc)));
        break;
    case HEAD_SEQ: { /* every position: norm -> linear (tied: the embedding's weight, a bias of its own) */
        const size_t rows = model_logit_rows(m);
        ML_TRY(plan_norm(pl, "norm", CL, cfg->norm, rows, SLOT(head_norm)));
        if (cfg->tie) {
            int64_t b[1] = {NC};
            pl->m->part[pl->part].product_macs += linear_macs(rows, CL, NC);
            ML_TRY(plan_param(pl, "head.bias", 1, b, PARAM_INIT_ZEROS, SLOT(head_fc.b)));
        } else
            ML_TRY(plan_linear(pl, "head", CL, NC, 1, rows, SLOT(head_fc)));
        m->n_t = max_sz(m->n_t, rows * CL);
        break;
    }
    }
    m->n_t = max_sz(m->n_t, (size_t)B * CL);
    m->n_logits = model_logit_rows(m) * NC;
    return ML_OK;
}

static ml_status plan_check(const model_config *cfg, int B, int H, int W)
{
    if (B < 1 || B > MODEL_MAX_BATCH)
        return ml_fail(ML_ERR_USAGE, "batch %d is out of range (1..%d)", B, MODEL_MAX_BATCH);
    if (cfg->skeleton == SKEL_SEQUENCE) {
        if (H != 1 || W < 1 || W > MODEL_MAX_SEQ)
            return ml_fail(ML_ERR_USAGE, "%s: a sequence of %d tokens is out of range (1..%d)", cfg->name, W,
                           MODEL_MAX_SEQ);
        if (cfg->num_stages != 1)
            return ml_fail(ML_ERR_USAGE, "%s: the sequence skeleton has one stage", cfg->name);
        if (cfg->vocab < 1)
            return ml_fail(ML_ERR_USAGE, "%s: vocabulary of %d tokens", cfg->name, cfg->vocab);
        if (cfg->pos_embed && W > cfg->max_len)
            return ml_fail(ML_ERR_USAGE,
                           "%s: pos_embed=1 learns positions up to max_len=%d, and this sequence has %d tokens "
                           "(a learned position embedding does not extend to longer sequences)",
                           cfg->name, cfg->max_len, W);
        if (cfg->tie && cfg->num_classes != cfg->vocab)
            return ml_fail(ML_ERR_USAGE, "%s: tie=1 shares the embedding with the head, which needs as many classes "
                                         "(%d) as tokens (%d)",
                           cfg->name, cfg->num_classes, cfg->vocab);
    } else if (H < MODEL_MIN_RES || H > MODEL_MAX_RES || W < MODEL_MIN_RES || W > MODEL_MAX_RES)
        return ml_fail(ML_ERR_USAGE, "resolution %dx%d is out of range (%d..%d)", H, W, MODEL_MIN_RES,
                       MODEL_MAX_RES);
    if (cfg->num_stages < 1 || cfg->num_stages > MODEL_MAX_STAGES)
        return ml_fail(ML_ERR_USAGE, "%s: %d stages (1..%d)", cfg->name, cfg->num_stages, MODEL_MAX_STAGES);
    if (cfg->num_classes < 1)
        return ml_fail(ML_ERR_USAGE, "%s: %d classes", cfg->name, cfg->num_classes);
    if (cfg->skeleton == SKEL_ISOTROPIC && cfg->num_stages != 1)
        return ml_fail(ML_ERR_USAGE, "%s: the isotropic skeleton has one stage", cfg->name);
    for (int s = 0; s < cfg->num_stages; s++)
        if (cfg->depths[s] < 0 || cfg->dims[s] < 1)
            return ml_fail(ML_ERR_USAGE, "%s: stage %d has depth %d, width %d", cfg->name, s, cfg->depths[s],
                           cfg->dims[s]);
    return ML_OK;
}

ml_status model_plan_on(model *m, const model_config *cfg, int B, int H, int W, const backend *be)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    if (cfg->skeleton == SKEL_SEQUENCE && !m->cfg.max_len)
        m->cfg.max_len = W; /* the position embedding covers the planned length unless told more */
    cfg = &m->cfg;
    ML_TRY(plan_check(cfg, B, H, W));
    m->B = B, m->H = H, m->W = W;
    m->threads = be->kind == BACKEND_CPU ? omp_get_max_threads() : 1;
    planner pl = {m, 0, 0};
    int h = 0, w = 0, next_block = 0;
    if (cfg->skeleton == SKEL_SEQUENCE) {
        if (!be->embed)
            return ml_fail(ML_ERR_USAGE, "%s: the %s backend has no token embedding kernel", cfg->name, be->name);
        m->seq = (size_t)W;
        if (!be->host_memory)
            m->n_in = (size_t)B * W;
        h = 1, w = W;
        ML_TRY(plan_embed(&pl));
    } else {
        m->n_u = (size_t)B * H * W * 3; /* the input, channels-last */
        if (!be->host_memory)
            m->n_in = (size_t)B * 3 * H * W;
        ML_TRY(plan_stem(&pl, &h, &w));
    }
    if (cfg->skeleton == SKEL_ISOTROPIC) {
        /* one sequence of h·w patches plus a class token in the middle */
        const int C0 = cfg->dims[0];
        m->seq = (size_t)h * w + 1;
        m->n_m = max_sz(m->n_m, (size_t)B * h * w * C0); /* the patches before the class token goes in */
        pl.part = 1;
        int64_t cls[3] = {1, 1, C0}, pos[3] = {1, (int64_t)m->seq, C0};
        ML_TRY(plan_param(&pl, "cls_token", 3, cls, PARAM_INIT_TRUNC_NORMAL, SLOT(cls_token)));
        ML_TRY(plan_param(&pl, "pos_embed", 3, pos, PARAM_INIT_TRUNC_NORMAL, SLOT(pos_embed)));
    }
    for (int s = 0; s < cfg->num_stages; s++) {
        pl.part = 1 + s;
        if (s > 0)
            ML_TRY(plan_down(&pl, s, &h, &w));
        m->sh[s] = h, m->sw[s] = w;
        ML_TRY(plan_blocks(&pl, s, &next_block));
    }
    return plan_head(&pl);
}

ml_status model_plan(model *m, const model_config *cfg, int B, int H, int W)
{
    return model_plan_on(m, cfg, B, H, W, &backend_cpu);
}

/* ---- what the plan says ---- */

uint64_t model_param_count(const model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        n += m->params[i].numel;
    return n;
}

uint64_t model_backbone_param_count(const model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].part != m->cfg.num_stages + 1)
            n += m->params[i].numel;
    return n;
}

/* A part's products and norms under a convention: LayerNorm 5 per element and
 * RMSNorm 4 under fvcore, except that the localmamba convention counts no
 * RMSNorm (norm_kind_macs); nothing under gemm. */
static uint64_t part_macs(const model_part_plan *pp, const macs_opts *o)
{
    return pp->product_macs + norm_kind_macs(NORM_LAYER, pp->layernorm_elems, 1, o) +
           norm_kind_macs(NORM_RMS, pp->rmsnorm_elems, 1, o);
}

uint64_t model_macs(const model *m, const macs_opts *o, model_stage_info *parts)
{
    const model_config *cfg = &m->cfg;
    const int S = cfg->num_stages;
    model_stage_info local[MODEL_MAX_STAGES + 2];
    model_stage_info *p = parts ? parts : local;
    memset(p, 0, (size_t)(S + 2) * sizeof *p);
    for (int i = 0; i < S + 2; i++)
        p[i].macs = part_macs(&m->part[i], o);
    if (cfg->stem == STEM_EMBED)
        p[0].h = 1, p[0].w = (int)m->seq;
    else if (cfg->stem == STEM_MAMBAOUT)
        p[0].h = conv2d_out_size(&m->stem2, m->stem_h), p[0].w = conv2d_out_size(&m->stem2, m->stem_w);
    else
        p[0].h = conv2d_out_size(&m->stem1, m->H), p[0].w = conv2d_out_size(&m->stem1, m->W);
    p[0].width = cfg->dims[0];
    for (int s = 0; s < S; s++) {
        model_stage_info *q = &p[1 + s];
        const block_config *bc = &m->blocks[s];
        int bh, bw;
        model_stage_grid(m, s, &bh, &bw);
        q->h = m->sh[s], q->w = m->sw[s], q->width = cfg->dims[s];
        q->macs += (uint64_t)cfg->depths[s] * block_macs(bc, m->B, bh, bw, o);
        q->mixer_macs = (uint64_t)cfg->depths[s] * bc->mixer->macs(&bc->mcfg, m->B, bh, bw, o);
    }
    p[S + 1].width = cfg->dims[S - 1];
    for (int i = 0; i < m->n_params; i++)
        p[m->params[i].part].params += m->params[i].numel;
    uint64_t total = 0;
    for (int i = 0; i < S + 2; i++)
        total += p[i].macs;
    return total;
}

size_t model_weight_bytes(const model *m)
{
    size_t b = 0;
    for (int i = 0; i < m->n_params; i++)
        b += arena_floats_bytes(m->params[i].numel);
    return b;
}

/* The activation buffers in allocation order. */
static size_t act_bytes(const model *m)
{
    return arena_floats_bytes(m->n_in) + arena_floats_bytes(m->n_x) + arena_floats_bytes(m->n_t) +
           arena_floats_bytes(m->n_u) + arena_floats_bytes(m->n_m) + arena_floats_bytes(m->n_logits);
}

size_t model_activation_bytes(const model *m) { return act_bytes(m) + arena_floats_bytes(m->n_ws); }

void model_bind(const model *m, float *const *tensors, model_params *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < m->n_params; i++)
        *(float **)((char *)out + m->params[i].slot) = tensors[i];
    if (m->cfg.tie)
        out->head_fc.w = out->embed; /* so a gradient set accumulates the head's share into the embedding's */
}

/* ---- memory ---- */

/* Points the activation buffers into one backend block of act_bytes + workspace. */
static void carve_acts(model *m)
{
    arena a = {.name = "activations", .base = m->dev_acts, .size = model_activation_bytes(m)};
    m->input = m->n_in ? arena_alloc_floats(&a, m->n_in) : NULL;
    m->x = arena_alloc_floats(&a, m->n_x);
    m->t = arena_alloc_floats(&a, m->n_t);
    m->u = arena_alloc_floats(&a, m->n_u);
    m->m = arena_alloc_floats(&a, m->n_m);
    m->logits = arena_alloc_floats(&a, m->n_logits);
    m->ws = arena_alloc_floats(&a, m->n_ws);
}

/* Device views: the backend copy has the host arena's layout. */
static ml_status bind_backend_copy(model *m)
{
    float **dp = ml_calloc((size_t)m->n_params, sizeof *dp, "device parameter table");
    if (!dp)
        return ML_ERR_NOMEM;
    for (int i = 0; i < m->n_params; i++)
        dp[i] = (float *)((unsigned char *)m->dev_weights + ((unsigned char *)m->pdata[i] - m->weights.base));
    model_bind(m, dp, &m->P);
    free(dp);
    return ML_OK;
}

ml_status model_alloc(model *m)
{
    const backend *be = m->be;
    const size_t wb = model_weight_bytes(m), ab = act_bytes(m), sb = arena_floats_bytes(m->n_ws);
    char what[256];
    snprintf(what, sizeof what, "%s at batch %d, %dx%d (weights %.2f, activations %.2f, workspace %.2f GiB)",
             m->cfg.name, m->B, m->H, m->W, wb / 1073741824.0, ab / 1073741824.0, sb / 1073741824.0);
    /* host memory: the weights, plus everything else when the backend is the host */
    ML_TRY(ml_check_fits((double)wb + (be->host_memory ? (double)ab + (double)sb : 0.0), what));
    ml_status s = arena_init(&m->weights, "weights", wb);
    if (s == ML_OK && !(m->pdata = ml_calloc((size_t)m->n_params, sizeof *m->pdata, "parameter table")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK)
        s = be->alloc(&m->dev_acts, ab + sb, what);
    if (s == ML_OK && !be->host_memory)
        s = be->alloc(&m->dev_weights, wb, "weights");
    if (s != ML_OK) {
        model_free(m);
        return s;
    }
    for (int i = 0; i < m->n_params; i++)
        m->pdata[i] = arena_alloc_floats(&m->weights, m->params[i].numel);
    model_bind(m, m->pdata, &m->host);
    if (be->host_memory)
        m->P = m->host;
    else if ((s = bind_backend_copy(m)) != ML_OK) {
        model_free(m);
        return s;
    }
    carve_acts(m);
    m->weights_stale = !be->host_memory;
    return ML_OK;
}

void model_free(model *m)
{
    if (m->be) {
        if (m->dev_acts)
            m->be->release(m->dev_acts);
        if (m->dev_weights)
            m->be->release(m->dev_weights);
    }
    m->dev_acts = m->dev_weights = NULL;
    arena_free(&m->weights);
    free(m->pdata);
    free(m->params);
    m->pdata = NULL;
    m->params = NULL;
    m->n_params = 0;
}

ml_status model_view(const model *from, int B, int H, int W, model *to)
{
    model_config cfg = from->cfg;
    memset(to, 0, sizeof *to);
    if (!from->be->host_memory || !from->pdata)
        return ml_fail(ML_ERR_USAGE, "a model view needs an allocated model on a host-memory backend");
    ML_TRY(model_plan_on(to, &cfg, B, H, W, from->be));
    int same = to->n_params == from->n_params && to->param_floats == from->param_floats;
    for (int i = 0; same && i < to->n_params; i++)
        same = to->params[i].numel == from->params[i].numel;
    if (!same) {
        model_free(to);
        return ml_fail(ML_ERR_USAGE, "%s has other parameters at %dx%d than at %dx%d", cfg.name, H, W, from->H,
                       from->W);
    }
    to->weights = from->weights;
    to->pdata = from->pdata;
    to->host = to->P = from->host;
    return ML_OK;
}

void model_view_free(model *to)
{
    memset(&to->weights, 0, sizeof to->weights); /* from's */
    to->pdata = NULL;
    model_free(to);
}

ml_status model_sync_weights(model *m)
{
    if (!m->be->host_memory)
        ML_TRY(m->be->upload(m->dev_weights, m->weights.base, m->weights.used));
    m->weights_stale = 0;
    return ML_OK;
}

ml_status model_stage_input(model *m, const float *host, const float **input)
{
    if (m->be->host_memory) {
        *input = host;
        return ML_OK;
    }
    ML_TRY(m->be->upload(m->input, host, m->n_in * sizeof(float))); /* n_in: B · model_input_floats */
    *input = m->input;
    return ML_OK;
}

ml_status model_read_logits(const model *m, float *host)
{
    ML_TRY(m->be->sync("forward"));
    return m->be->download(host, m->logits, m->n_logits * sizeof(float));
}

/* ---- parameters: names, init, checkpoints ---- */

const model_param *model_find_param(const model *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0)
            return &m->params[i];
    return NULL;
}

float *model_param_data(const model *m, const char *name)
{
    const model_param *p = model_find_param(m, name);
    return p && m->pdata ? m->pdata[p - m->params] : NULL;
}

/* timm's rule (tensor.h); with init=torch (the sequence skeleton) what a PyTorch restatement gets
 * without an init of its own instead: every weight timm draws from trunc_normal (nn.Linear, nn.Conv)
 * U(±1/√fan_in), fan_in = numel / shape[0], and its bias (the next tensor, same prefix) U(±1/√fan_in) too;
 * the token embedding N(0, 1) as nn.Embedding; the position embedding keeps trunc_normal(.02); the
 * mixers' own tensors (the scan's Mamba init) and the norms are the same under both. */
void model_init_random(model *m, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    const int torch = m->cfg.init_torch;
    double bias_bound = 0; /* init=torch: the bound of the weight just drawn, for its bias */
    size_t prefix_len = 0;
    for (int i = 0; i < m->n_params; i++) {
        float *d = m->pdata[i];
        const model_param *p = &m->params[i];
        const double bound = bias_bound;
        const int is_bias = bound > 0 && strlen(p->name) == prefix_len + 4 && !strcmp(p->name + prefix_len, "bias") &&
                            !strncmp(p->name, m->params[i - 1].name, prefix_len);
        bias_bound = 0;
        switch (p->init) {
        case PARAM_INIT_TRUNC_NORMAL: /* timm: trunc_normal_(std=.02), bounds ±2 absolute */
            if (torch && !strcmp(p->name, "embed.weight")) {
                rng_fill_normal(&rng, d, p->numel, 1.0);
            } else if (torch && p->ndim >= 2 && strcmp(p->name, "pos_embed")) {
                const char *dot = strrchr(p->name, '.');
                bias_bound = 1.0 / sqrt((double)(p->numel / (size_t)p->shape[0]));
                prefix_len = dot ? (size_t)(dot - p->name) + 1 : 0;
                rng_fill_uniform(&rng, d, p->numel, -bias_bound, bias_bound);
            } else {
                for (size_t k = 0; k < p->numel; k++)
                    d[k] = (float)rng_trunc_normal(&rng, 0.02, -2.0, 2.0);
            }
            break;
        case PARAM_INIT_ZEROS:
            if (is_bias)
                rng_fill_uniform(&rng, d, p->numel, -bound, bound);
            else
                memset(d, 0, p->numel * sizeof *d);
            break;
        case PARAM_INIT_ONES:
            for (size_t k = 0; k < p->numel; k++)
                d[k] = 1.0f;
            break;
        case PARAM_INIT_CUSTOM:
            break; /* filled by the mixer below */
        }
    }
    for (int s = 0; s < m->cfg.num_stages; s++) {
        const block_config *bc = &m->blocks[s];
        if (!bc->mixer->init)
            continue;
        for (int j = 0; j < m->cfg.depths[s]; j++)
            bc->mixer->init(&bc->mcfg, m->host.blocks[m->block_base[s] + j].mixer, &rng);
    }
    m->weights_stale = !m->be->host_memory;
}

ml_status model_load(model *m, const st_file *f, int ignore_unexpected)
{
    for (int i = 0; i < m->n_params; i++) {
        const model_param *p = &m->params[i];
        /* the sequence model's learned positions: say why another length is refused (image models size
         * pos_embed by resolution and keep st_load's shape message) */
        const st_tensor *t = m->cfg.skeleton == SKEL_SEQUENCE && !strcmp(p->name, "pos_embed") ? st_find(f, p->name)
                                                                                             : NULL;
        if (t && t->ndim == 3 && t->shape[2] == p->shape[2] && t->shape[1] != p->shape[1]) {
            long long have = (long long)t->shape[1], want = (long long)p->shape[1];
            if (have < want)
                return ml_fail(ML_ERR_FORMAT,
                               "'%s': pos_embed holds %lld learned positions and %s was planned for %lld tokens: a "
                               "learned position embedding stops at the length it was trained with, so this "
                               "checkpoint runs on at most %lld tokens (on fewer, with max_len=%lld in the model)",
                               f->path, have, m->cfg.name, want, have, have);
            return ml_fail(ML_ERR_FORMAT,
                           "'%s': pos_embed holds %lld learned positions and %s was planned with max_len=%lld: add "
                           "max_len=%lld to the model to run this checkpoint on shorter sequences",
                           f->path, have, m->cfg.name, want, have);
        }
        ML_TRY(st_load(f, p->name, p->ndim, p->shape, m->pdata[i]));
    }
    m->weights_stale = !m->be->host_memory;
    if (!ignore_unexpected) {
        for (int i = 0; i < f->count; i++)
            if (!model_find_param(m, f->tensors[i].name))
                return ml_fail(ML_ERR_FORMAT, "'%s': unexpected tensor '%s' (not a parameter of %s)",
                               f->path, f->tensors[i].name, m->cfg.name);
    }
    return ML_OK;
}

ml_status model_load_file(model *m, const char *path, int ignore_unexpected)
{
    st_file f;
    ML_TRY(st_open(&f, path));
    ml_status s = model_load(m, &f, ignore_unexpected);
    st_close(&f);
    return s;
}

void model_param_entries(const model *m, st_entry *e)
{
    for (int i = 0; i < m->n_params; i++) {
        e[i] = (st_entry){.name = m->params[i].name, .ndim = m->params[i].ndim, .data = m->pdata[i]};
        memcpy(e[i].shape, m->params[i].shape, sizeof m->params[i].shape);
    }
}

ml_status model_save(const model *m, const char *path)
{
    st_entry *e = ml_calloc((size_t)m->n_params, sizeof *e, "checkpoint table");
    if (!e)
        return ML_ERR_NOMEM;
    model_param_entries(m, e);
    const char *meta[] = {"format", "pt", "model", m->cfg.name, NULL};
    ml_status s = st_write(path, e, m->n_params, meta);
    free(e);
    return s;
}

/* ---- the forward, once, on any backend ---- */

typedef struct {
    model *m;
    model_tap_fn fn;
    void *ctx;
} tapper;

/* Shows x (B,h,w,C) to the tap, from host memory (a copy off a device). */
static void tap_nhwc(const tapper *tp, const char *name, const float *x, int h, int w, int C)
{
    if (!tp->fn)
        return;
    const backend *be = tp->m->be;
    int64_t shape[4] = {tp->m->B, h, w, C};
    const size_t n = (size_t)tp->m->B * h * w * C;
    if (be->host_memory) {
        tp->fn(tp->ctx, name, x, 4, shape);
        return;
    }
    float *host = malloc(n * sizeof *host);
    if (host && be->sync("forward") == ML_OK && be->download(host, x, n * sizeof *host) == ML_OK)
        tp->fn(tp->ctx, name, host, 4, shape);
    free(host);
}

static void norm_rows(const backend *be, norm_kind k, float *out, size_t ld_out, const float *in, size_t ld_in,
                      const tensor_pair *p, size_t rows, int C, float eps)
{
    if (k == NORM_RMS)
        be->rmsnorm(out, ld_out, NULL, in, ld_in, p->w, rows, C, eps);
    else
        be->layernorm(out, ld_out, NULL, NULL, in, ld_in, p->w, p->b, rows, C, eps);
}

/* input (B,3,H,W) -> x (B,h,w,C0), or the patches in m->m for the isotropic skeleton. */
static void forward_stem(model *m, const float *input, int *h, int *w)
{
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const model_params *P = &m->P;
    const int B = m->B, C = cfg->dims[0], T = m->threads;
    if (cfg->stem == STEM_EMBED) {
        be->embed(m->x, input, P->embed, P->pos_embed, B, m->seq, cfg->vocab, C);
        *h = 1, *w = (int)m->seq;
        return;
    }
    be->nchw_to_nhwc(m->u, input, B, 3, m->H, m->W);
    if (cfg->stem == STEM_MAMBAOUT) {
        const size_t r1 = (size_t)B * m->stem_h * m->stem_w, c1 = (size_t)m->stem1.cout;
        be->conv2d(m->m, m->u, P->stem_conv1.w, P->stem_conv1.b, &m->stem1, B, m->H, m->W, m->ws, m->n_ws, T);
        be->layernorm(m->m, c1, NULL, NULL, m->m, c1, P->stem_norm1.w, P->stem_norm1.b, r1, m->stem1.cout, cfg->eps);
        be->act(m->m, m->m, r1 * c1, ACT_GELU);
        be->conv2d(m->x, m->m, P->stem_conv2.w, P->stem_conv2.b, &m->stem2, B, m->stem_h, m->stem_w, m->ws, m->n_ws,
                   T);
        *h = conv2d_out_size(&m->stem2, m->stem_h), *w = conv2d_out_size(&m->stem2, m->stem_w);
        be->layernorm(m->x, (size_t)C, NULL, NULL, m->x, (size_t)C, P->stem_norm2.w, P->stem_norm2.b, (size_t)B * *h * *w, C,
                      cfg->eps);
        return;
    }
    *h = conv2d_out_size(&m->stem1, m->H), *w = conv2d_out_size(&m->stem1, m->W);
    /* patches land in x directly, or in m first when the class token has to be inserted */
    float *dst = cfg->skeleton == SKEL_ISOTROPIC ? m->m : m->x;
    be->conv2d(dst, m->u, P->stem_conv1.w, P->stem_conv1.b, &m->stem1, B, m->H, m->W, m->ws, m->n_ws, T);
    if (cfg->stem_norm)
        be->layernorm(dst, (size_t)C, NULL, NULL, dst, (size_t)C, P->stem_norm1.w, P->stem_norm1.b, (size_t)B * *h * *w, C,
                      cfg->eps);
}

/* x (B,h,w,C_{s-1}) -> x (B,h',w',C_s) through stage s's downsampling layer. */
static void forward_down(model *m, int s, int h, int w)
{
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const int B = m->B, Cp = cfg->dims[s - 1], C = cfg->dims[s];
    const size_t rows = (size_t)B * m->sh[s] * m->sw[s];
    if (cfg->down == DOWN_CONV) {
        be->conv2d(m->u, m->x, m->P.down[s].conv.w, m->P.down[s].conv.b, &m->down[s], B, h, w, m->ws, m->n_ws,
                   m->threads);
        be->layernorm(m->x, (size_t)C, NULL, NULL, m->u, (size_t)C, m->P.down[s].norm.w, m->P.down[s].norm.b, rows, C, cfg->eps);
        return;
    }
    const size_t c4 = 4 * (size_t)Cp;
    be->merge_2x2(m->u, m->x, B, h, w, Cp);
    be->layernorm(m->u, c4, NULL, NULL, m->u, c4, m->P.down[s].norm.w, m->P.down[s].norm.b, rows, 4 * Cp, cfg->eps);
    be->linear(m->x, (size_t)C, m->u, c4, m->P.down[s].reduction, NULL, rows, 4 * Cp, C, 0);
}

/* Stage s's blocks on x, in place. */
static void forward_blocks(model *m, int s, const tapper *tp)
{
    const model_config *cfg = &m->cfg;
    int bh, bw;
    model_stage_grid(m, s, &bh, &bw);
    const block_config *bc = &m->blocks[s];
    block_buffers buf = {m->t, m->u, m->m, m->u, 2 * (size_t)bc->hidden, m->ws, m->threads};
    for (int j = 0; j < cfg->depths[s]; j++) {
        block_forward(m->be, bc, &m->P.blocks[m->block_base[s] + j], m->x, m->B, bh, bw, &buf);
        if (tp->fn) {
            char name[64];
            snprintf(name, sizeof name, "stages.%d.blocks.%d", s, j);
            tap_nhwc(tp, name, m->x, bh, bw, cfg->dims[s]);
        }
    }
    if (tp->fn) {
        char name[32];
        snprintf(name, sizeof name, "stage%d", s);
        tap_nhwc(tp, name, m->x, bh, bw, cfg->dims[s]);
    }
}

/* x (last stage) -> logits (B, classes). */
static void forward_head(model *m, size_t mid)
{
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const model_params *P = &m->P;
    const int B = m->B, S = cfg->num_stages, C = cfg->dims[S - 1], NC = cfg->num_classes;
    const size_t L = (size_t)m->sh[S - 1] * m->sw[S - 1];
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * C;
        be->meanpool(m->t, m->x, B, L, C);
        be->layernorm(m->t, (size_t)C, NULL, NULL, m->t, (size_t)C, P->head_norm.w, P->head_norm.b, (size_t)B, C, cfg->eps);
        be->linear(m->u, (size_t)HH, m->t, (size_t)C, P->head_fc1.w, P->head_fc1.b, (size_t)B, C, HH, 0);
        be->act(m->u, m->u, (size_t)B * HH, ACT_GELU);
        be->layernorm(m->u, (size_t)HH, NULL, NULL, m->u, (size_t)HH, P->head_norm2.w, P->head_norm2.b, (size_t)B, HH, cfg->eps);
        be->linear(m->logits, (size_t)NC, m->u, (size_t)HH, P->head_fc.w, P->head_fc.b, (size_t)B, HH, NC, 0);
        break;
    }
    case HEAD_NORM_LINEAR:
        be->layernorm(m->u, (size_t)C, NULL, NULL, m->x, (size_t)C, P->head_norm.w, P->head_norm.b, (size_t)B * L, C, cfg->eps);
        be->meanpool(m->t, m->u, B, L, C);
        be->linear(m->logits, (size_t)NC, m->t, (size_t)C, P->head_fc.w, P->head_fc.b, (size_t)B, C, NC, 0);
        break;
    case HEAD_TOKEN: /* the class token of each sequence, seq·C floats apart */
        norm_rows(be, cfg->norm, m->t, (size_t)C, m->x + mid * C, m->seq * C, &P->head_norm, (size_t)B, C, cfg->eps);
        be->linear(m->logits, (size_t)NC, m->t, (size_t)C, P->head_fc.w, P->head_fc.b, (size_t)B, C, NC, 0);
        break;
    case HEAD_SEQ: { /* every position */
        const size_t rows = model_logit_rows(m);
        norm_rows(be, cfg->norm, m->t, (size_t)C, m->x, (size_t)C, &P->head_norm, rows, C, cfg->eps);
        be->linear(m->logits, (size_t)NC, m->t, (size_t)C, P->head_fc.w, P->head_fc.b, rows, C, NC, 0);
        break;
    }
    }
}

void model_forward(model *m, const float *input, model_tap_fn tap, void *ctx)
{
    ML_ASSERT(!m->weights_stale); /* model_sync_weights after init or load */
    const model_config *cfg = &m->cfg;
    const tapper tp = {m, tap, ctx};
    int h, w;
    forward_stem(m, input, &h, &w);
    tap_nhwc(&tp, "stem", cfg->skeleton == SKEL_ISOTROPIC ? m->m : m->x, h, w, cfg->dims[0]);
    size_t mid = 0;
    if (cfg->skeleton == SKEL_ISOTROPIC) {
        /* sequence = patches [0, mid) | class token | patches [mid, L); plus the position embedding */
        mid = (size_t)h * w / 2;
        m->be->insert_token(m->x, m->m, m->P.cls_token, m->P.pos_embed, m->B, (size_t)h * w, mid, cfg->dims[0]);
    }
    for (int s = 0; s < cfg->num_stages; s++) {
        if (s > 0)
            forward_down(m, s, h, w);
        h = m->sh[s], w = m->sw[s];
        forward_blocks(m, s, &tp);
    }
    forward_head(m, mid);
    if (tap) {
        const int64_t shape[2] = {(int64_t)model_logit_rows(m), cfg->num_classes};
        const size_t n = m->n_logits;
        float *host = m->be->host_memory ? m->logits : malloc(n * sizeof *host);
        if (host && (m->be->host_memory || model_read_logits(m, host) == ML_OK))
            tap(ctx, "logits", host, 2, shape);
        if (!m->be->host_memory)
            free(host);
    }
}
