#include "models/model.h"

#include "blocks/act.h"
#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/pool.h"
#include "blocks/rmsnorm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static ml_status add_param(model *m, int *cap, const char *name, int ndim, const int64_t *shape,
                           param_init init)
{
    if (m->n_params == *cap) {
        int ncap = *cap ? 2 * *cap : 64;
        model_param *p = realloc(m->params, (size_t)ncap * sizeof *p);
        if (!p)
            return ml_fail(ML_ERR_NOMEM, "out of memory building the parameter table");
        m->params = p;
        *cap = ncap;
    }
    model_param *p = &m->params[m->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->init = init;
    m->param_floats += p->numel;
    return ML_OK;
}

static ml_status add_conv(model *m, int *cap, const char *prefix, const conv2d_shape *s)
{
    char name[PARAM_NAME_MAX + 32];
    int64_t w[4] = {s->cout, s->cin, s->k, s->k}, b[1] = {s->cout};
    snprintf(name, sizeof name, "%s.weight", prefix);
    ML_TRY(add_param(m, cap, name, 4, w, PARAM_INIT_TRUNC_NORMAL));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(m, cap, name, 1, b, PARAM_INIT_ZEROS);
}

static ml_status add_norm(model *m, int *cap, const char *prefix, int C)
{
    char name[PARAM_NAME_MAX + 32];
    int64_t s[1] = {C};
    snprintf(name, sizeof name, "%s.weight", prefix);
    ML_TRY(add_param(m, cap, name, 1, s, PARAM_INIT_ONES));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(m, cap, name, 1, s, PARAM_INIT_ZEROS);
}

static ml_status add_linear(model *m, int *cap, const char *prefix, int in_f, int out_f)
{
    char name[PARAM_NAME_MAX + 32];
    int64_t w[2] = {out_f, in_f}, b[1] = {out_f};
    snprintf(name, sizeof name, "%s.weight", prefix);
    ML_TRY(add_param(m, cap, name, 2, w, PARAM_INIT_TRUNC_NORMAL));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(m, cap, name, 1, b, PARAM_INIT_ZEROS);
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static ml_status add_named(model *m, int *cap, const char *name, int ndim, int64_t d0, int64_t d1,
                           int64_t d2, param_init init)
{
    int64_t s[3] = {d0, d1, d2};
    return add_param(m, cap, name, ndim, s, init);
}

/* The norm of a given kind under prefix: weight, and bias for LayerNorm. */
static ml_status add_norm_kind(model *m, int *cap, const char *prefix, int C, norm_kind k)
{
    if (k == NORM_LAYER)
        return add_norm(m, cap, prefix, C);
    char name[PARAM_NAME_MAX + 32];
    snprintf(name, sizeof name, "%s.weight", prefix);
    return add_named(m, cap, name, 1, C, 0, 0, PARAM_INIT_ONES);
}

ml_status model_plan(model *m, const model_config *cfg, int B, int H, int W)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    if (B < 1 || B > MODEL_MAX_BATCH)
        return ml_fail(ML_ERR_USAGE, "batch %d is out of range (1..%d)", B, MODEL_MAX_BATCH);
    if (H < MODEL_MIN_RES || H > MODEL_MAX_RES || W < MODEL_MIN_RES || W > MODEL_MAX_RES)
        return ml_fail(ML_ERR_USAGE, "resolution %dx%d is out of range (%d..%d)", H, W, MODEL_MIN_RES,
                       MODEL_MAX_RES);
    if (cfg->num_stages < 1 || cfg->num_stages > MODEL_MAX_STAGES)
        return ml_fail(ML_ERR_USAGE, "%s: %d stages (1..%d)", cfg->name, cfg->num_stages,
                       MODEL_MAX_STAGES);
    if (cfg->num_classes < 1)
        return ml_fail(ML_ERR_USAGE, "%s: %d classes", cfg->name, cfg->num_classes);
    m->B = B, m->H = H, m->W = W;
    m->threads = omp_get_max_threads();
    const int S = cfg->num_stages, C0 = cfg->dims[0];
    const int T = m->threads;
    int cap = 0, h, w;

    size_t n_x = 0, n_t = 0, n_u = (size_t)B * H * W * 3, n_m = 0, n_ws = 0;
    if (cfg->stem == STEM_MAMBAOUT) {
        /* conv3x3 s2 (3 -> C0/2), LN, GELU, conv3x3 s2 (-> C0), LN */
        if (C0 < 2)
            return ml_fail(ML_ERR_USAGE, "%s: stem width %d must be >= 2", cfg->name, C0);
        m->stem1 = (conv2d_shape){3, C0 / 2, 3, 2, 1};
        m->stem2 = (conv2d_shape){C0 / 2, C0, 3, 2, 1};
        m->stem_h = conv2d_out_size(&m->stem1, H), m->stem_w = conv2d_out_size(&m->stem1, W);
        h = conv2d_out_size(&m->stem2, m->stem_h), w = conv2d_out_size(&m->stem2, m->stem_w);
        ML_TRY(add_conv(m, &cap, "stem.conv1", &m->stem1));
        ML_TRY(add_norm(m, &cap, "stem.norm1", C0 / 2));
        ML_TRY(add_conv(m, &cap, "stem.conv2", &m->stem2));
        ML_TRY(add_norm(m, &cap, "stem.norm2", C0));
        n_m = (size_t)B * m->stem_h * m->stem_w * (C0 / 2);
        n_ws = max_sz(conv2d_workspace_floats(&m->stem1, (size_t)B * m->stem_h * m->stem_w, T),
                      conv2d_workspace_floats(&m->stem2, (size_t)B * h * w, T));
    } else {
        /* conv PxP stride P (3 -> C0) [+ LN] */
        if (cfg->patch < 1 || H < cfg->patch || W < cfg->patch)
            return ml_fail(ML_ERR_USAGE, "%s: patch size %d does not fit %dx%d", cfg->name, cfg->patch, H, W);
        m->stem1 = (conv2d_shape){3, C0, cfg->patch, cfg->patch, 0};
        h = conv2d_out_size(&m->stem1, H), w = conv2d_out_size(&m->stem1, W);
        ML_TRY(add_conv(m, &cap, "patch_embed.proj", &m->stem1));
        if (cfg->stem_norm)
            ML_TRY(add_norm(m, &cap, "patch_embed.norm", C0));
        n_u = max_sz(n_u, (size_t)B * h * w * C0);
        n_ws = conv2d_workspace_floats(&m->stem1, (size_t)B * h * w, T);
    }

    if (cfg->skeleton == SKEL_ISOTROPIC) {
        /* one sequence of h·w patches plus a class token in the middle */
        if (S != 1)
            return ml_fail(ML_ERR_USAGE, "%s: the isotropic skeleton has one stage", cfg->name);
        m->seq = (size_t)h * w + 1;
        n_m = max_sz(n_m, (size_t)B * h * w * C0); /* the patches before the class token goes in */
        ML_TRY(add_named(m, &cap, "cls_token", 3, 1, 1, C0, PARAM_INIT_TRUNC_NORMAL));
        ML_TRY(add_named(m, &cap, "pos_embed", 3, 1, (int64_t)m->seq, C0, PARAM_INIT_TRUNC_NORMAL));
        m->sh[0] = h, m->sw[0] = w;
    }

    for (int s = 0; s < S; s++) {
        const int C = cfg->dims[s];
        if (cfg->depths[s] < 0 || C < 1)
            return ml_fail(ML_ERR_USAGE, "%s: stage %d has depth %d, width %d", cfg->name, s,
                           cfg->depths[s], C);
        char prefix[PARAM_NAME_MAX];
        if (s > 0 && cfg->down == DOWN_CONV) {
            m->down[s] = (conv2d_shape){cfg->dims[s - 1], C, 3, 2, 1};
            h = conv2d_out_size(&m->down[s], h), w = conv2d_out_size(&m->down[s], w);
            snprintf(prefix, sizeof prefix, "stages.%d.downsample.conv", s);
            ML_TRY(add_conv(m, &cap, prefix, &m->down[s]));
            snprintf(prefix, sizeof prefix, "stages.%d.downsample.norm", s);
            ML_TRY(add_norm(m, &cap, prefix, C));
            n_u = max_sz(n_u, (size_t)B * h * w * C);
            n_ws = max_sz(n_ws, conv2d_workspace_floats(&m->down[s], (size_t)B * h * w, T));
        } else if (s > 0) {
            /* patch merging: 2x2 neighbours concatenated (4·C_prev) -> LN -> linear, no bias */
            const int Cp = cfg->dims[s - 1];
            if (h < 2 || w < 2)
                return ml_fail(ML_ERR_USAGE, "%s: stage %d grid %dx%d is too small to merge", cfg->name, s, h, w);
            h /= 2, w /= 2;
            snprintf(prefix, sizeof prefix, "stages.%d.downsample.norm", s);
            ML_TRY(add_norm(m, &cap, prefix, 4 * Cp));
            snprintf(prefix, sizeof prefix, "stages.%d.downsample.reduction.weight", s);
            ML_TRY(add_named(m, &cap, prefix, 2, C, 4 * Cp, 0, PARAM_INIT_TRUNC_NORMAL));
            n_u = max_sz(n_u, (size_t)B * h * w * 4 * Cp);
        }
        m->sh[s] = h, m->sw[s] = w;
        /* the blocks see a grid, or the isotropic sequence as a 1 x L line */
        const int bh = cfg->skeleton == SKEL_ISOTROPIC ? 1 : h;
        const int bw = cfg->skeleton == SKEL_ISOTROPIC ? (int)m->seq : w;
        n_x = max_sz(n_x, (size_t)B * bh * bw * C);

        mixer_config mc = cfg->mixer_cfg;
        mc.threads = T;
        m->blocks[s] = block_config_make(C, cfg->expansion, cfg->conv_ratio, cfg->act, cfg->norm, cfg->eps,
                                         cfg->fc_bias, cfg->mixer, &mc);
        if (block_config_validate(&m->blocks[s]) != ML_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", ml_last_error());
            return ml_fail(ML_ERR_USAGE, "%s, stage %d (width %d): %s", cfg->name, s, C, why);
        }
        param_spec specs[BLOCK_MAX_PARAMS];
        int ns = block_param_specs(&m->blocks[s], specs);
        m->block_nparams[s] = ns;
        m->block_first[s] = m->n_params;
        for (int j = 0; j < cfg->depths[s]; j++) {
            for (int k = 0; k < ns; k++) {
                char name[PARAM_NAME_MAX + 32];
                int len = cfg->skeleton == SKEL_ISOTROPIC
                              ? snprintf(name, sizeof name, "blocks.%d.%s", j, specs[k].name)
                              : snprintf(name, sizeof name, "stages.%d.blocks.%d.%s", s, j, specs[k].name);
                if (len >= (int)sizeof name)
                    return ml_fail(ML_ERR_RUNTIME, "parameter name too long: %s", specs[k].name);
                ML_TRY(add_param(m, &cap, name, specs[k].ndim, specs[k].shape, specs[k].init));
            }
        }
        if (cfg->depths[s] > 0) {
            block_sizes bs = block_buffer_floats(&m->blocks[s], B, bh, bw, T);
            n_t = max_sz(n_t, bs.t);
            n_u = max_sz(n_u, bs.u);
            n_m = max_sz(n_m, bs.m);
            n_ws = max_sz(n_ws, bs.ws);
        }
    }

    const int CL = cfg->dims[S - 1], NC = cfg->num_classes;
    switch (cfg->head) {
    case HEAD_MLP: { /* mean over H,W -> LN -> fc (C -> r·C) -> GELU -> LN -> fc */
        const int HH = cfg->head_mlp_ratio * CL;
        ML_TRY(add_norm(m, &cap, "head.norm", CL));
        ML_TRY(add_linear(m, &cap, "head.pre_logits.fc", CL, HH));
        ML_TRY(add_norm(m, &cap, "head.pre_logits.norm", HH));
        ML_TRY(add_linear(m, &cap, "head.fc", HH, NC));
        n_t = max_sz(n_t, (size_t)B * CL);
        n_u = max_sz(n_u, (size_t)B * HH);
        break;
    }
    case HEAD_NORM_LINEAR: /* LN on every token -> mean -> fc */
        ML_TRY(add_norm(m, &cap, "head.norm", CL));
        ML_TRY(add_linear(m, &cap, "head.fc", CL, NC));
        n_u = max_sz(n_u, (size_t)B * m->sh[S - 1] * m->sw[S - 1] * CL);
        n_t = max_sz(n_t, (size_t)B * CL);
        break;
    case HEAD_TOKEN: /* final norm on the class token -> fc */
        ML_TRY(add_norm_kind(m, &cap, "norm", CL, cfg->norm));
        ML_TRY(add_linear(m, &cap, "head.fc", CL, NC));
        n_t = max_sz(n_t, (size_t)B * CL);
        break;
    }

    m->n_x = n_x, m->n_t = n_t, m->n_u = n_u, m->n_m = n_m, m->n_ws = n_ws;
    m->n_logits = (size_t)B * NC;
    return ML_OK;
}

size_t model_weight_bytes(const model *m)
{
    size_t b = 0;
    for (int i = 0; i < m->n_params; i++)
        b += arena_floats_bytes(m->params[i].numel);
    return b;
}

size_t model_activation_bytes(const model *m)
{
    return arena_floats_bytes(m->n_x) + arena_floats_bytes(m->n_t) + arena_floats_bytes(m->n_u) +
           arena_floats_bytes(m->n_m) + arena_floats_bytes(m->n_logits) + arena_floats_bytes(m->n_ws);
}

ml_status model_alloc(model *m)
{
    size_t wb = model_weight_bytes(m);
    size_t ab = model_activation_bytes(m) - arena_floats_bytes(m->n_ws);
    size_t sb = arena_floats_bytes(m->n_ws);
    char what[256];
    snprintf(what, sizeof what, "%s at batch %d, %dx%d (weights %.2f, activations %.2f, workspace %.2f GiB)",
             m->cfg.name, m->B, m->H, m->W, wb / 1073741824.0, ab / 1073741824.0, sb / 1073741824.0);
    ML_TRY(ml_check_fits((double)wb + (double)ab + (double)sb, what));
    ML_TRY(arena_init(&m->weights, "weights", wb));
    ml_status s = arena_init(&m->acts, "activations", ab);
    if (s == ML_OK)
        s = arena_init(&m->work, "workspace", sb);
    if (s == ML_OK) {
        m->pdata = ml_calloc((size_t)m->n_params, sizeof *m->pdata, "parameter table");
        if (!m->pdata)
            s = ML_ERR_NOMEM;
    }
    if (s != ML_OK) {
        model_free(m);
        return s;
    }
    for (int i = 0; i < m->n_params; i++)
        m->pdata[i] = arena_alloc_floats(&m->weights, m->params[i].numel);
    m->x = arena_alloc_floats(&m->acts, m->n_x);
    m->t = arena_alloc_floats(&m->acts, m->n_t);
    m->u = arena_alloc_floats(&m->acts, m->n_u);
    m->m = arena_alloc_floats(&m->acts, m->n_m);
    m->logits = arena_alloc_floats(&m->acts, m->n_logits);
    m->ws = arena_alloc_floats(&m->work, m->n_ws);
    return ML_OK;
}

void model_free(model *m)
{
    arena_free(&m->weights);
    arena_free(&m->acts);
    arena_free(&m->work);
    free(m->pdata);
    free(m->params);
    m->pdata = NULL;
    m->params = NULL;
    m->n_params = 0;
}

uint64_t model_param_count(const model *m)
{
    uint64_t n = 0;
    for (int i = 0; i < m->n_params; i++)
        n += m->params[i].numel;
    return n;
}

uint64_t model_macs(const model *m, const macs_opts *o, model_stage_info *parts)
{
    const model_config *cfg = &m->cfg;
    const int B = m->B, S = cfg->num_stages;
    const int fv = o->convention == MACS_FVCORE;
    model_stage_info local[MODEL_MAX_STAGES + 2];
    model_stage_info *p = parts ? parts : local;
    memset(p, 0, (size_t)(S + 2) * sizeof *p);

    /* stem */
    if (cfg->stem == STEM_MAMBAOUT) {
        int h2 = conv2d_out_size(&m->stem2, m->stem_h), w2 = conv2d_out_size(&m->stem2, m->stem_w);
        size_t r1 = (size_t)B * m->stem_h * m->stem_w, r2 = (size_t)B * h2 * w2;
        p[0].h = h2, p[0].w = w2;
        p[0].macs = conv2d_macs(&m->stem1, B, m->stem_h, m->stem_w) + conv2d_macs(&m->stem2, B, h2, w2) +
                    (fv ? layernorm_macs(r1, m->stem1.cout) + layernorm_macs(r2, m->stem2.cout) : 0);
    } else {
        int h = conv2d_out_size(&m->stem1, m->H), w = conv2d_out_size(&m->stem1, m->W);
        p[0].h = h, p[0].w = w;
        p[0].macs = conv2d_macs(&m->stem1, B, h, w) +
                    (fv && cfg->stem_norm ? layernorm_macs((size_t)B * h * w, m->stem1.cout) : 0);
    }
    p[0].width = cfg->dims[0];

    for (int s = 0; s < S; s++) {
        model_stage_info *q = &p[1 + s];
        const int h = m->sh[s], w = m->sw[s], C = cfg->dims[s];
        q->h = h, q->w = w, q->width = C;
        const size_t rows = (size_t)B * h * w;
        if (s > 0 && cfg->down == DOWN_CONV)
            q->macs += conv2d_macs(&m->down[s], B, h, w) + (fv ? layernorm_macs(rows, C) : 0);
        else if (s > 0)
            q->macs += linear_macs(rows, 4 * cfg->dims[s - 1], C) +
                       (fv ? layernorm_macs(rows, 4 * cfg->dims[s - 1]) : 0);
        const block_config *bc = &m->blocks[s];
        const int bh = cfg->skeleton == SKEL_ISOTROPIC ? 1 : h;
        const int bw = cfg->skeleton == SKEL_ISOTROPIC ? (int)m->seq : w;
        q->macs += (uint64_t)cfg->depths[s] * block_macs(bc, B, bh, bw, o);
        q->mixer_macs = (uint64_t)cfg->depths[s] * bc->mixer->macs(&bc->mcfg, B, bh, bw, o);
    }

    const int CL = cfg->dims[S - 1], NC = cfg->num_classes;
    model_stage_info *hd = &p[S + 1];
    hd->width = CL;
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * CL;
        hd->macs = linear_macs((size_t)B, CL, HH) + linear_macs((size_t)B, HH, NC) +
                   (fv ? layernorm_macs((size_t)B, CL) + layernorm_macs((size_t)B, HH) : 0);
        break;
    }
    case HEAD_NORM_LINEAR:
        hd->macs = linear_macs((size_t)B, CL, NC) +
                   (fv ? layernorm_macs((size_t)B * m->sh[S - 1] * m->sw[S - 1], CL) : 0);
        break;
    case HEAD_TOKEN:
        hd->macs = linear_macs((size_t)B, CL, NC) + norm_kind_macs(cfg->norm, (size_t)B, CL, o);
        break;
    }

    /* parameters per part, from the table's name prefixes */
    for (int i = 0; i < m->n_params; i++) {
        const char *n = m->params[i].name;
        int part = 0;
        if (strncmp(n, "stages.", 7) == 0)
            part = 1 + atoi(n + 7);
        else if (strncmp(n, "blocks.", 7) == 0 || strcmp(n, "cls_token") == 0 || strcmp(n, "pos_embed") == 0)
            part = 1;
        else if (strncmp(n, "head.", 5) == 0 || (cfg->head == HEAD_TOKEN && strncmp(n, "norm.", 5) == 0))
            part = S + 1;
        p[part].params += m->params[i].numel;
    }
    uint64_t total = 0;
    for (int i = 0; i < S + 2; i++)
        total += p[i].macs;
    return total;
}

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

void model_init_random(model *m, uint64_t seed)
{
    rng_state rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < m->n_params; i++) {
        float *d = m->pdata[i];
        const model_param *p = &m->params[i];
        switch (p->init) {
        case PARAM_INIT_TRUNC_NORMAL: /* timm: trunc_normal_(std=.02), bounds ±2 absolute */
            for (size_t k = 0; k < p->numel; k++)
                d[k] = (float)rng_trunc_normal(&rng, 0.02, -2.0, 2.0);
            break;
        case PARAM_INIT_ZEROS:
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
            bc->mixer->init(&bc->mcfg,
                            m->pdata + m->block_first[s] + j * m->block_nparams[s] +
                                block_mixer_param_offset(bc),
                            &rng);
    }
}

ml_status model_load(model *m, const st_file *f, int ignore_unexpected)
{
    for (int i = 0; i < m->n_params; i++) {
        const model_param *p = &m->params[i];
        ML_TRY(st_load(f, p->name, p->ndim, p->shape, m->pdata[i]));
    }
    if (!ignore_unexpected) {
        for (int i = 0; i < f->count; i++)
            if (!model_find_param(m, f->tensors[i].name))
                return ml_fail(ML_ERR_FORMAT, "'%s': unexpected tensor '%s' (not a parameter of %s)",
                               f->path, f->tensors[i].name, m->cfg.name);
    }
    return ML_OK;
}

ml_status model_save(const model *m, const char *path)
{
    st_entry *e = ml_calloc((size_t)m->n_params, sizeof *e, "checkpoint table");
    if (!e)
        return ML_ERR_NOMEM;
    for (int i = 0; i < m->n_params; i++) {
        e[i].name = m->params[i].name;
        e[i].ndim = m->params[i].ndim;
        memcpy(e[i].shape, m->params[i].shape, sizeof m->params[i].shape);
        e[i].data = m->pdata[i];
    }
    const char *meta[] = {"format", "pt", "model", m->cfg.name, NULL};
    ml_status s = st_write(path, e, m->n_params, meta);
    free(e);
    return s;
}

static void tap_nhwc(model_tap_fn tap, void *ctx, const char *name, const float *x, int B, int h,
                     int w, int C)
{
    if (!tap)
        return;
    int64_t shape[4] = {B, h, w, C};
    tap(ctx, name, x, 4, shape);
}

/* out (B, h/2, w/2, 4C) = [x(2i,2j) | x(2i+1,2j) | x(2i,2j+1) | x(2i+1,2j+1)] (VMamba's order; an odd
 * last row or column is dropped). */
static void merge_2x2(float *out, const float *x, int B, int h, int w, int C)
{
    const int ho = h / 2, wo = w / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * ho * wo * C > 65536)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                float *o = out + (((size_t)b * ho + i) * wo + j) * 4 * C;
                const int di[4] = {0, 1, 0, 1}, dj[4] = {0, 0, 1, 1};
                for (int q = 0; q < 4; q++)
                    memcpy(o + (size_t)q * C, x + (((size_t)b * h + 2 * i + di[q]) * w + 2 * j + dj[q]) * C,
                           (size_t)C * sizeof *o);
            }
}

void model_forward(model *m, const float *input, model_tap_fn tap, void *ctx)
{
    const model_config *cfg = &m->cfg;
    const int B = m->B, S = cfg->num_stages, T = m->threads;
    float *const *P = m->pdata;
    int k = 0; /* walks the parameter table in the order model_plan built it */
    int h, w, C = cfg->dims[0];

    nchw_to_nhwc(m->u, input, B, 3, m->H, m->W);
    if (cfg->stem == STEM_MAMBAOUT) {
        conv2d_forward(m->m, m->u, P[k], P[k + 1], &m->stem1, B, m->H, m->W, m->ws, T);
        k += 2;
        size_t r1 = (size_t)B * m->stem_h * m->stem_w;
        const size_t c1 = (size_t)m->stem1.cout;
        layernorm_forward(m->m, c1, m->m, c1, P[k], P[k + 1], r1, m->stem1.cout, cfg->eps);
        k += 2;
        act_forward(m->m, m->m, r1 * c1, ACT_GELU);
        conv2d_forward(m->x, m->m, P[k], P[k + 1], &m->stem2, B, m->stem_h, m->stem_w, m->ws, T);
        k += 2;
        h = conv2d_out_size(&m->stem2, m->stem_h), w = conv2d_out_size(&m->stem2, m->stem_w);
        layernorm_forward(m->x, (size_t)C, m->x, (size_t)C, P[k], P[k + 1], (size_t)B * h * w, C, cfg->eps);
        k += 2;
    } else {
        h = conv2d_out_size(&m->stem1, m->H), w = conv2d_out_size(&m->stem1, m->W);
        /* patches land in x directly, or in t first when the class token has to be inserted */
        float *dst = cfg->skeleton == SKEL_ISOTROPIC ? m->m : m->x;
        /* the input, NHWC in u, is read while the conv writes elsewhere */
        conv2d_forward(dst, m->u, P[k], P[k + 1], &m->stem1, B, m->H, m->W, m->ws, T);
        k += 2;
        if (cfg->stem_norm) {
            layernorm_forward(dst, (size_t)C, dst, (size_t)C, P[k], P[k + 1], (size_t)B * h * w, C, cfg->eps);
            k += 2;
        }
    }
    tap_nhwc(tap, ctx, "stem", cfg->skeleton == SKEL_ISOTROPIC ? m->m : m->x, B, h, w, C);

    size_t mid = 0;
    if (cfg->skeleton == SKEL_ISOTROPIC) {
        /* sequence = patches [0, mid) | class token | patches [mid, L); plus the position embedding */
        const size_t L = (size_t)h * w, seq = m->seq;
        mid = L / 2;
        const float *cls = P[k], *pos = P[k + 1];
        k += 2;
        for (int b = 0; b < B; b++)
            for (size_t t = 0; t < seq; t++) {
                const float *src = t == mid ? cls : m->m + ((size_t)b * L + (t < mid ? t : t - 1)) * C;
                float *o = m->x + ((size_t)b * seq + t) * C;
                for (int c = 0; c < C; c++)
                    o[c] = src[c] + pos[t * C + c];
            }
    }

    for (int s = 0; s < S; s++) {
        if (s > 0 && cfg->down == DOWN_CONV) {
            conv2d_forward(m->u, m->x, P[k], P[k + 1], &m->down[s], B, h, w, m->ws, T);
            k += 2;
            h = m->sh[s], w = m->sw[s], C = cfg->dims[s];
            layernorm_forward(m->x, (size_t)C, m->u, (size_t)C, P[k], P[k + 1], (size_t)B * h * w, C,
                              cfg->eps);
            k += 2;
        } else if (s > 0) {
            const int Cp = C;
            merge_2x2(m->u, m->x, B, h, w, Cp);
            h = m->sh[s], w = m->sw[s], C = cfg->dims[s];
            const size_t rows = (size_t)B * h * w, c4 = 4 * (size_t)Cp;
            layernorm_forward(m->u, c4, m->u, c4, P[k], P[k + 1], rows, 4 * Cp, cfg->eps);
            linear_forward(m->x, (size_t)C, m->u, c4, P[k + 2], NULL, rows, 4 * Cp, C, 0);
            k += 3;
        }
        const int bh = cfg->skeleton == SKEL_ISOTROPIC ? 1 : h;
        const int bw = cfg->skeleton == SKEL_ISOTROPIC ? (int)m->seq : w;
        block_buffers buf = {m->t, m->u, m->m, m->ws, m->threads};
        for (int j = 0; j < cfg->depths[s]; j++) {
            block_forward(&m->blocks[s], (const float *const *)(P + k), m->x, B, bh, bw, &buf);
            k += m->block_nparams[s];
            if (tap) {
                char name[64];
                snprintf(name, sizeof name, "stages.%d.blocks.%d", s, j);
                tap_nhwc(tap, ctx, name, m->x, B, bh, bw, C);
            }
        }
        if (tap) {
            char name[32];
            snprintf(name, sizeof name, "stage%d", s);
            tap_nhwc(tap, ctx, name, m->x, B, bh, bw, C);
        }
    }

    const int NC = cfg->num_classes;
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * C;
        meanpool_forward(m->t, m->x, B, (size_t)h * w, C);
        layernorm_forward(m->t, (size_t)C, m->t, (size_t)C, P[k], P[k + 1], (size_t)B, C, cfg->eps);
        linear_forward(m->u, (size_t)HH, m->t, (size_t)C, P[k + 2], P[k + 3], (size_t)B, C, HH, 0);
        act_forward(m->u, m->u, (size_t)B * HH, ACT_GELU);
        layernorm_forward(m->u, (size_t)HH, m->u, (size_t)HH, P[k + 4], P[k + 5], (size_t)B, HH, cfg->eps);
        linear_forward(m->logits, (size_t)NC, m->u, (size_t)HH, P[k + 6], P[k + 7], (size_t)B, HH, NC, 0);
        k += 8;
        break;
    }
    case HEAD_NORM_LINEAR: {
        const size_t L = (size_t)h * w;
        layernorm_forward(m->u, (size_t)C, m->x, (size_t)C, P[k], P[k + 1], (size_t)B * L, C, cfg->eps);
        meanpool_forward(m->t, m->u, B, L, C);
        linear_forward(m->logits, (size_t)NC, m->t, (size_t)C, P[k + 2], P[k + 3], (size_t)B, C, NC, 0);
        k += 4;
        break;
    }
    case HEAD_TOKEN: {
        const size_t seq = m->seq;
        for (int b = 0; b < B; b++) {
            const float *cls = m->x + ((size_t)b * seq + mid) * C;
            if (cfg->norm == NORM_RMS)
                rmsnorm_forward(m->t + (size_t)b * C, (size_t)C, cls, (size_t)C, P[k], 1, C, cfg->eps);
            else
                layernorm_forward(m->t + (size_t)b * C, (size_t)C, cls, (size_t)C, P[k], P[k + 1], 1, C,
                                  cfg->eps);
        }
        k += cfg->norm == NORM_RMS ? 1 : 2;
        linear_forward(m->logits, (size_t)NC, m->t, (size_t)C, P[k], P[k + 1], (size_t)B, C, NC, 0);
        k += 2;
        break;
    }
    }
    ML_ASSERT(k == m->n_params);
    if (tap) {
        int64_t shape[2] = {B, NC};
        tap(ctx, "logits", m->logits, 2, shape);
    }
}
