#include "models/model_train.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ---- planning: one walk hands out every buffer; run once to count, once to carve ---- */

typedef struct {
    float *base; /* NULL while counting */
    size_t used; /* floats handed out (each buffer rounded up to ARENA_ALIGN) */
} carver;

static float *take(carver *c, size_t n)
{
    float *p = c->base && n ? c->base + c->used : NULL;
    c->used += ml_align_up(n * sizeof(float), ARENA_ALIGN) / sizeof(float);
    return p;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

static void take_norm(carver *c, train_norm_saved *s, size_t rows, int C, int with_mean, int with_n)
{
    s->a = take(c, rows * (size_t)C);
    s->mean = with_mean ? take(c, rows) : NULL;
    s->rstd = take(c, rows);
    s->n = with_n ? take(c, rows * (size_t)C) : NULL;
}

static void conv_ws(model_trainer *t, const conv2d_shape *s, size_t out_rows)
{
    const model *m = t->m;
    t->n_ws = max_sz(t->n_ws, m->be->conv2d_ws(s, out_rows, m->threads));
    t->n_ws = max_sz(t->n_ws, m->be->conv2d_bwd_ws(s, out_rows, m->threads));
}

static void carve_stem(model_trainer *t, carver *c)
{
    const model *m = t->m;
    const model_config *cfg = &m->cfg;
    const size_t B = (size_t)m->B, C0 = (size_t)cfg->dims[0];
    if (cfg->stem == STEM_EMBED) { /* the token ids, which the embedding's backward reads */
        t->in = take(c, B * m->seq);
        return;
    }
    t->in = take(c, B * m->H * m->W * 3);
    if (cfg->stem == STEM_MAMBAOUT) {
        const size_t r1 = B * m->stem_h * m->stem_w, r2 = B * m->sh[0] * m->sw[0];
        take_norm(c, &t->stem1, r1, m->stem1.cout, 1, 1);
        t->stem_g = take(c, r1 * (size_t)m->stem1.cout);
        take_norm(c, &t->stem2, r2, (int)C0, 1, 0);
        t->gmax = max_sz(t->gmax, r1 * (size_t)m->stem1.cout);
        conv_ws(t, &m->stem1, r1), conv_ws(t, &m->stem2, r2);
        return;
    }
    const size_t hw = (size_t)conv2d_out_size(&m->stem1, m->H) * conv2d_out_size(&m->stem1, m->W);
    if (cfg->stem_norm)
        take_norm(c, &t->stem1, B * hw, (int)C0, 1, 0);
    if (cfg->skeleton == SKEL_ISOTROPIC)
        t->patches = take(c, B * hw * C0);
    t->gmax = max_sz(t->gmax, B * hw * C0);
    conv_ws(t, &m->stem1, B * hw);
}

static void carve_stage(model_trainer *t, carver *c, int s)
{
    const model *m = t->m;
    const model_config *cfg = &m->cfg;
    const size_t B = (size_t)m->B, C = (size_t)cfg->dims[s];
    const size_t rows = B * m->sh[s] * m->sw[s];
    if (s > 0 && cfg->down == DOWN_CONV) {
        take_norm(c, &t->down[s], rows, (int)C, 1, 0);
        conv_ws(t, &m->down[s], rows);
    } else if (s > 0) {
        const int c4 = 4 * cfg->dims[s - 1];
        take_norm(c, &t->down[s], rows, c4, 1, 1);
        t->gmax = max_sz(t->gmax, rows * (size_t)c4);
    }
    int bh, bw;
    model_stage_grid(m, s, &bh, &bw);
    const size_t n = B * bh * bw * C;
    t->xs[s] = take(c, n);
    t->gmax = max_sz(t->gmax, n);
    if (cfg->depths[s] == 0)
        return;
    const block_config *bc = &m->blocks[s];
    const block_train_plan pl = block_train_sizes(m->be, bc, m->B, bh, bw);
    t->n_ws = max_sz(t->n_ws, max_sz(pl.fwd_ws, pl.bwd_ws));
    for (int j = 0; j < cfg->depths[s]; j++) {
        float *base = take(c, pl.state);
        if (base)
            block_train_bind(bc, &pl, base, &t->st[m->block_base[s] + j]);
    }
}

static void carve_head(model_trainer *t, carver *c)
{
    const model *m = t->m;
    const model_config *cfg = &m->cfg;
    const int S = cfg->num_stages, C = cfg->dims[S - 1], NC = cfg->num_classes;
    const size_t B = (size_t)m->B, L = (size_t)m->sh[S - 1] * m->sw[S - 1];
    size_t widest = (size_t)C;
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * C;
        take_norm(c, &t->head1, B, C, 1, 1);
        t->head_f = take(c, B * HH);
        t->head_g = take(c, B * HH);
        t->head2.mean = take(c, B), t->head2.rstd = take(c, B); /* the norm's input is head_g */
        t->head2.n = take(c, B * HH);
        widest = max_sz(widest, (size_t)HH);
        break;
    }
    case HEAD_NORM_LINEAR:
        take_norm(c, &t->head1, B * L, C, 1, 1);
        t->pooled = take(c, B * C);
        t->gmax = max_sz(t->gmax, B * L * C);
        break;
    case HEAD_TOKEN:
        t->head1.mean = cfg->norm == NORM_LAYER ? take(c, B) : NULL;
        t->head1.rstd = take(c, B);
        t->head1.n = take(c, B * C);
        break;
    case HEAD_SEQ: { /* the norm of every position (its input is the last x) */
        const size_t rows = model_logit_rows(m);
        t->head1.mean = cfg->norm == NORM_LAYER ? take(c, rows) : NULL;
        t->head1.rstd = take(c, rows);
        t->head1.n = take(c, rows * C);
        break;
    }
    }
    t->logits = take(c, model_logit_rows(m) * NC);
    t->d_logits = take(c, model_logit_rows(m) * NC);
    t->gh1 = take(c, B * widest);
    t->gh2 = take(c, B * widest);
}

/* Hands out every buffer from base (NULL: counts); returns the floats. */
static size_t carve_all(model_trainer *t, float *base)
{
    carver c = {base, 0};
    t->gmax = t->n_ws = 0;
    carve_stem(t, &c);
    for (int s = 0; s < t->m->cfg.num_stages; s++)
        carve_stage(t, &c, s);
    carve_head(t, &c);
    t->ga = take(&c, t->gmax);
    t->gb = take(&c, t->gmax);
    t->ws = take(&c, t->n_ws);
    return c.used;
}

size_t model_train_bytes(const model *m)
{
    model_trainer t;
    memset(&t, 0, sizeof t);
    t.m = (model *)m;
    return carve_all(&t, NULL) * sizeof(float) + model_weight_bytes(m);
}

size_t model_train_extra_bytes(const model *m) { return model_train_bytes(m) + 2 * model_weight_bytes(m); }

size_t model_train_step_bytes(const model *m)
{
    return model_weight_bytes(m) + model_activation_bytes(m) + model_train_extra_bytes(m);
}

ml_status model_train_init(model_trainer *t, model *m)
{
    memset(t, 0, sizeof *t);
    t->m = m;
    if (!backend_has_backward(m->be))
        return ml_fail(ML_ERR_USAGE, "training needs backward kernels, which the %s backend does not have yet",
                       m->be->name);
    t->act_floats = carve_all(t, NULL);
    const size_t gbytes = model_weight_bytes(m), abytes = t->act_floats * sizeof(float);
    char what[256];
    snprintf(what, sizeof what, "training %s at batch %d, %dx%d (gradients %.2f, activations %.2f GiB)", m->cfg.name,
             m->B, m->H, m->W, gbytes / 1073741824.0, abytes / 1073741824.0);
    ML_TRY(ml_check_fits((double)gbytes + (double)abytes, what));
    ml_status s = arena_init(&t->grad_arena, "gradients", gbytes);
    if (s == ML_OK && !(t->gdata = ml_calloc((size_t)m->n_params, sizeof *t->gdata, "gradient table")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK && !(t->offset = ml_calloc((size_t)m->n_params, sizeof *t->offset, "parameter offsets")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK)
        s = m->be->alloc(&t->acts, abytes, what);
    if (s != ML_OK) {
        model_train_free(t);
        return s;
    }
    for (int i = 0; i < m->n_params; i++) {
        t->gdata[i] = arena_alloc_floats(&t->grad_arena, m->params[i].numel);
        t->offset[i] = (size_t)(m->pdata[i] - (float *)m->weights.base);
        ML_ASSERT(t->gdata[i] - (float *)t->grad_arena.base == (ptrdiff_t)t->offset[i]);
    }
    model_bind(m, t->gdata, &t->G);
    carve_all(t, t->acts);
    t->mid = m->cfg.skeleton == SKEL_ISOTROPIC ? (size_t)m->sh[0] * m->sw[0] / 2 : 0;
    model_train_zero_grads(t);
    return ML_OK;
}

void model_train_free(model_trainer *t)
{
    if (t->acts)
        t->m->be->release(t->acts);
    arena_free(&t->grad_arena);
    free(t->gdata);
    free(t->offset);
    memset(t, 0, sizeof *t);
}

void model_train_zero_grads(model_trainer *t) { memset(t->grad_arena.base, 0, t->grad_arena.used); }

int model_block_count(const model *m)
{
    int n = 0;
    for (int s = 0; s < m->cfg.num_stages; s++)
        n += m->cfg.depths[s];
    return n;
}

void model_drop_path_scales(const model *m, double rate, rng_state *rng, float *out)
{
    const int n = model_block_count(m);
    for (int k = 0; k < n; k++) {
        /* torch.linspace(0, rate, n)[k] */
        const double r = n > 1 ? rate * k / (n - 1) : 0.0, keep = 1.0 - r;
        for (int b = 0; b < m->B; b++)
            out[(size_t)k * m->B + b] = r <= 0.0 ? 1.0f : (rng_uniform(rng) < keep ? (float)(1.0 / keep) : 0.0f);
    }
}

/* ---- the training forward ---- */

static void ln(const backend *be, const train_norm_saved *s, float *out, size_t ld_out, const float *in,
               size_t ld_in, const tensor_pair *p, size_t rows, int C, float eps)
{
    be->layernorm(out, ld_out, s->mean, s->rstd, in, ld_in, p->w, p->b, rows, C, eps);
}

static void forward_stem(model_trainer *t, const float *input)
{
    model *m = t->m;
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const model_params *P = &m->P;
    const int B = m->B, C0 = cfg->dims[0], T = m->threads;
    if (cfg->stem == STEM_EMBED) {
        be->copy_rows(t->in, m->seq, input, m->seq, m->seq, (size_t)B);
        be->embed(t->xs[0], t->in, P->embed, P->pos_embed, B, m->seq, cfg->vocab, C0);
        return;
    }
    be->nchw_to_nhwc(t->in, input, B, 3, m->H, m->W);
    if (cfg->stem == STEM_MAMBAOUT) {
        const int c1 = m->stem1.cout;
        const size_t r1 = (size_t)B * m->stem_h * m->stem_w, r2 = (size_t)B * m->sh[0] * m->sw[0];
        be->conv2d(t->stem1.a, t->in, P->stem_conv1.w, P->stem_conv1.b, &m->stem1, B, m->H, m->W, t->ws, t->n_ws, T);
        ln(be, &t->stem1, t->stem1.n, c1, t->stem1.a, c1, &P->stem_norm1, r1, c1, cfg->eps);
        be->act(t->stem_g, t->stem1.n, r1 * c1, ACT_GELU);
        be->conv2d(t->stem2.a, t->stem_g, P->stem_conv2.w, P->stem_conv2.b, &m->stem2, B, m->stem_h, m->stem_w, t->ws,
                   t->n_ws, T);
        ln(be, &t->stem2, t->xs[0], C0, t->stem2.a, C0, &P->stem_norm2, r2, C0, cfg->eps);
        return;
    }
    const int h = conv2d_out_size(&m->stem1, m->H), w = conv2d_out_size(&m->stem1, m->W);
    float *dst = cfg->skeleton == SKEL_ISOTROPIC ? t->patches : t->xs[0];
    float *conv_out = cfg->stem_norm ? t->stem1.a : dst;
    be->conv2d(conv_out, t->in, P->stem_conv1.w, P->stem_conv1.b, &m->stem1, B, m->H, m->W, t->ws, t->n_ws, T);
    if (cfg->stem_norm)
        ln(be, &t->stem1, dst, C0, conv_out, C0, &P->stem_norm1, (size_t)B * h * w, C0, cfg->eps);
    if (cfg->skeleton == SKEL_ISOTROPIC)
        be->insert_token(t->xs[0], t->patches, P->cls_token, P->pos_embed, B, (size_t)h * w, t->mid, C0);
}

static void forward_down(model_trainer *t, int s)
{
    model *m = t->m;
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const int B = m->B, Cp = cfg->dims[s - 1], C = cfg->dims[s];
    const size_t rows = (size_t)B * m->sh[s] * m->sw[s];
    const train_norm_saved *d = &t->down[s];
    if (cfg->down == DOWN_CONV) {
        be->conv2d(d->a, t->xs[s - 1], m->P.down[s].conv.w, m->P.down[s].conv.b, &m->down[s], B, m->sh[s - 1],
                   m->sw[s - 1], t->ws, t->n_ws, m->threads);
        ln(be, d, t->xs[s], C, d->a, C, &m->P.down[s].norm, rows, C, cfg->eps);
        return;
    }
    const size_t c4 = 4 * (size_t)Cp;
    be->merge_2x2(d->a, t->xs[s - 1], B, m->sh[s - 1], m->sw[s - 1], Cp);
    ln(be, d, d->n, c4, d->a, c4, &m->P.down[s].norm, rows, (int)c4, cfg->eps);
    be->linear(t->xs[s], (size_t)C, d->n, c4, m->P.down[s].reduction, NULL, rows, (int)c4, C, 0);
}

static void forward_head(model_trainer *t)
{
    model *m = t->m;
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const model_params *P = &m->P;
    const int B = m->B, S = cfg->num_stages, C = cfg->dims[S - 1], NC = cfg->num_classes;
    const size_t L = (size_t)m->sh[S - 1] * m->sw[S - 1];
    const float *x = t->xs[S - 1];
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * C;
        be->meanpool(t->head1.a, x, B, L, C);
        ln(be, &t->head1, t->head1.n, C, t->head1.a, C, &P->head_norm, (size_t)B, C, cfg->eps);
        be->linear(t->head_f, HH, t->head1.n, C, P->head_fc1.w, P->head_fc1.b, (size_t)B, C, HH, 0);
        be->act(t->head_g, t->head_f, (size_t)B * HH, ACT_GELU);
        ln(be, &t->head2, t->head2.n, HH, t->head_g, HH, &P->head_norm2, (size_t)B, HH, cfg->eps);
        be->linear(t->logits, NC, t->head2.n, HH, P->head_fc.w, P->head_fc.b, (size_t)B, HH, NC, 0);
        break;
    }
    case HEAD_NORM_LINEAR:
        ln(be, &t->head1, t->head1.n, C, x, C, &P->head_norm, (size_t)B * L, C, cfg->eps);
        be->meanpool(t->pooled, t->head1.n, B, L, C);
        be->linear(t->logits, NC, t->pooled, C, P->head_fc.w, P->head_fc.b, (size_t)B, C, NC, 0);
        break;
    case HEAD_TOKEN: { /* the class token of each sequence, seq·C floats apart */
        const float *cls = x + t->mid * C;
        const size_t ld = m->seq * C;
        if (cfg->norm == NORM_RMS)
            be->rmsnorm(t->head1.n, C, t->head1.rstd, cls, ld, P->head_norm.w, (size_t)B, C, cfg->eps);
        else
            ln(be, &t->head1, t->head1.n, C, cls, ld, &P->head_norm, (size_t)B, C, cfg->eps);
        be->linear(t->logits, NC, t->head1.n, C, P->head_fc.w, P->head_fc.b, (size_t)B, C, NC, 0);
        break;
    }
    case HEAD_SEQ: {
        const size_t rows = model_logit_rows(m);
        if (cfg->norm == NORM_RMS)
            be->rmsnorm(t->head1.n, C, t->head1.rstd, x, C, P->head_norm.w, rows, C, cfg->eps);
        else
            ln(be, &t->head1, t->head1.n, C, x, C, &P->head_norm, rows, C, cfg->eps);
        be->linear(t->logits, NC, t->head1.n, C, P->head_fc.w, P->head_fc.b, rows, C, NC, 0);
        break;
    }
    }
}

void model_forward_train(model_trainer *t, const float *input, const float *drop_scale)
{
    model *m = t->m;
    ML_ASSERT(!m->weights_stale);
    forward_stem(t, input);
    for (int s = 0; s < m->cfg.num_stages; s++) {
        if (s > 0)
            forward_down(t, s);
        int bh, bw;
        model_stage_grid(m, s, &bh, &bw);
        const block_config *bc = &m->blocks[s];
        for (int j = 0; j < m->cfg.depths[s]; j++) {
            const int k = m->block_base[s] + j;
            block_forward_train(m->be, bc, &m->P.blocks[k], t->xs[s], m->B, bh, bw, &t->st[k],
                                drop_scale ? drop_scale + (size_t)k * m->B : NULL, t->ws);
        }
    }
    forward_head(t);
}

/* ---- the backward ---- */

static void ln_bwd(const backend *be, const train_norm_saved *s, float *d_in, size_t ld_din, const tensor_pair *d_p,
                   const float *d_out, size_t ld_dout, const float *in, size_t ld_in, const tensor_pair *p,
                   size_t rows, int C)
{
    be->layernorm_bwd(d_in, ld_din, d_p->w, d_p->b, d_out, ld_dout, in, ld_in, p->w, s->mean, s->rstd, rows, C);
}

static float *zeroed(const model_trainer *t, float *g, size_t n)
{
    t->m->be->zero(g, n * sizeof *g);
    return g;
}

/* d_logits -> the gradient of the last stage's x, in a zeroed t->ga (returned). */
static float *backward_head(model_trainer *t)
{
    model *m = t->m;
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const model_params *P = &m->P, *G = &t->G;
    const int B = m->B, S = cfg->num_stages, C = cfg->dims[S - 1], NC = cfg->num_classes;
    const size_t L = (size_t)m->sh[S - 1] * m->sw[S - 1];
    int bh, bw;
    model_stage_grid(m, S - 1, &bh, &bw);
    float *dx = zeroed(t, t->ga, (size_t)B * bh * bw * C);
    const float *x = t->xs[S - 1];
    switch (cfg->head) {
    case HEAD_MLP: {
        const int HH = cfg->head_mlp_ratio * C;
        float *d_n2 = zeroed(t, t->gh1, (size_t)B * HH), *d_g = zeroed(t, t->gh2, (size_t)B * HH);
        be->linear_bwd(d_n2, HH, G->head_fc.w, G->head_fc.b, t->d_logits, NC, t->head2.n, HH, P->head_fc.w,
                       (size_t)B, HH, NC);
        ln_bwd(be, &t->head2, d_g, HH, &G->head_norm2, d_n2, HH, t->head_g, HH, &P->head_norm2, (size_t)B, HH);
        float *d_f = zeroed(t, t->gh1, (size_t)B * HH);
        be->act_bwd(d_f, d_g, t->head_f, (size_t)B * HH, ACT_GELU);
        float *d_n1 = zeroed(t, t->gh2, (size_t)B * C);
        be->linear_bwd(d_n1, C, G->head_fc1.w, G->head_fc1.b, d_f, HH, t->head1.n, C, P->head_fc1.w, (size_t)B, C,
                       HH);
        float *d_pool = zeroed(t, t->gh1, (size_t)B * C);
        ln_bwd(be, &t->head1, d_pool, C, &G->head_norm, d_n1, C, t->head1.a, C, &P->head_norm, (size_t)B, C);
        be->meanpool_bwd(dx, d_pool, B, L, C);
        break;
    }
    case HEAD_NORM_LINEAR: {
        float *d_pool = zeroed(t, t->gh1, (size_t)B * C), *d_n = zeroed(t, t->gb, (size_t)B * L * C);
        be->linear_bwd(d_pool, C, G->head_fc.w, G->head_fc.b, t->d_logits, NC, t->pooled, C, P->head_fc.w,
                       (size_t)B, C, NC);
        be->meanpool_bwd(d_n, d_pool, B, L, C);
        ln_bwd(be, &t->head1, dx, C, &G->head_norm, d_n, C, x, C, &P->head_norm, (size_t)B * L, C);
        break;
    }
    case HEAD_TOKEN: {
        float *d_n = zeroed(t, t->gh1, (size_t)B * C);
        be->linear_bwd(d_n, C, G->head_fc.w, G->head_fc.b, t->d_logits, NC, t->head1.n, C, P->head_fc.w, (size_t)B,
                       C, NC);
        const size_t ld = m->seq * C, off = t->mid * C;
        if (cfg->norm == NORM_RMS)
            be->rmsnorm_bwd(dx + off, ld, G->head_norm.w, d_n, C, x + off, ld, P->head_norm.w, t->head1.rstd,
                            (size_t)B, C);
        else
            ln_bwd(be, &t->head1, dx + off, ld, &G->head_norm, d_n, C, x + off, ld, &P->head_norm, (size_t)B, C);
        break;
    }
    case HEAD_SEQ: { /* tied: G->head_fc.w is the embedding's gradient (model_bind) */
        const size_t rows = model_logit_rows(m);
        float *d_n = zeroed(t, t->gb, rows * C);
        be->linear_bwd(d_n, C, G->head_fc.w, G->head_fc.b, t->d_logits, NC, t->head1.n, C, P->head_fc.w, rows, C,
                       NC);
        if (cfg->norm == NORM_RMS)
            be->rmsnorm_bwd(dx, C, G->head_norm.w, d_n, C, x, C, P->head_norm.w, t->head1.rstd, rows, C);
        else
            ln_bwd(be, &t->head1, dx, C, &G->head_norm, d_n, C, x, C, &P->head_norm, rows, C);
        break;
    }
    }
    return dx;
}

/* d (the gradient of xs[s], in one of ga/gb) -> the gradient of xs[s-1], in the other (returned). */
static float *backward_down(model_trainer *t, int s, float *d)
{
    model *m = t->m;
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const int B = m->B, Cp = cfg->dims[s - 1], C = cfg->dims[s];
    const size_t rows = (size_t)B * m->sh[s] * m->sw[s], prev = (size_t)B * m->sh[s - 1] * m->sw[s - 1] * Cp;
    const train_norm_saved *sv = &t->down[s];
    float *other = d == t->ga ? t->gb : t->ga;
    if (cfg->down == DOWN_CONV) {
        float *d_a = zeroed(t, other, rows * C);
        ln_bwd(be, sv, d_a, C, &t->G.down[s].norm, d, C, sv->a, C, &m->P.down[s].norm, rows, C);
        float *d_prev = zeroed(t, d, prev);
        be->conv2d_bwd(d_prev, t->G.down[s].conv.w, t->G.down[s].conv.b, d_a, t->xs[s - 1], m->P.down[s].conv.w,
                       &m->down[s], B, m->sh[s - 1], m->sw[s - 1], t->ws, t->n_ws, m->threads);
        return d_prev;
    }
    const size_t c4 = 4 * (size_t)Cp;
    float *d_n = zeroed(t, other, rows * c4);
    be->linear_bwd(d_n, c4, t->G.down[s].reduction, NULL, d, C, sv->n, c4, m->P.down[s].reduction, rows, (int)c4, C);
    float *d_a = zeroed(t, d, rows * c4);
    ln_bwd(be, sv, d_a, c4, &t->G.down[s].norm, d_n, c4, sv->a, c4, &m->P.down[s].norm, rows, (int)c4);
    float *d_prev = zeroed(t, other, prev);
    be->merge_2x2_bwd(d_prev, d_a, B, m->sh[s - 1], m->sw[s - 1], Cp);
    return d_prev;
}

/* d: the gradient of xs[0]; the stem's parameter gradients (the image's is not wanted). */
static void backward_stem(model_trainer *t, float *d)
{
    model *m = t->m;
    const backend *be = m->be;
    const model_config *cfg = &m->cfg;
    const model_params *P = &m->P, *G = &t->G;
    const int B = m->B, C0 = cfg->dims[0], T = m->threads;
    float *other = d == t->ga ? t->gb : t->ga;
    if (cfg->stem == STEM_EMBED) {
        be->embed_bwd(G->embed, G->pos_embed, d, t->in, B, m->seq, cfg->vocab, C0);
        return;
    }
    if (cfg->stem == STEM_MAMBAOUT) {
        const int c1 = m->stem1.cout;
        const size_t r1 = (size_t)B * m->stem_h * m->stem_w, r2 = (size_t)B * m->sh[0] * m->sw[0];
        float *d_a2 = zeroed(t, other, r2 * C0);
        ln_bwd(be, &t->stem2, d_a2, C0, &G->stem_norm2, d, C0, t->stem2.a, C0, &P->stem_norm2, r2, C0);
        float *d_g = zeroed(t, d, r1 * c1);
        be->conv2d_bwd(d_g, G->stem_conv2.w, G->stem_conv2.b, d_a2, t->stem_g, P->stem_conv2.w, &m->stem2, B,
                       m->stem_h, m->stem_w, t->ws, t->n_ws, T);
        float *d_n1 = zeroed(t, other, r1 * c1);
        be->act_bwd(d_n1, d_g, t->stem1.n, r1 * c1, ACT_GELU);
        float *d_a1 = zeroed(t, d, r1 * c1);
        ln_bwd(be, &t->stem1, d_a1, c1, &G->stem_norm1, d_n1, c1, t->stem1.a, c1, &P->stem_norm1, r1, c1);
        be->conv2d_bwd(NULL, G->stem_conv1.w, G->stem_conv1.b, d_a1, t->in, P->stem_conv1.w, &m->stem1, B, m->H,
                       m->W, t->ws, t->n_ws, T);
        return;
    }
    const int h = conv2d_out_size(&m->stem1, m->H), w = conv2d_out_size(&m->stem1, m->W);
    const size_t rows = (size_t)B * h * w;
    if (cfg->skeleton == SKEL_ISOTROPIC) {
        float *d_p = zeroed(t, other, rows * C0);
        be->insert_token_bwd(d_p, G->cls_token, G->pos_embed, d, B, (size_t)h * w, t->mid, C0);
        other = d, d = d_p;
    }
    if (cfg->stem_norm) {
        float *d_a = zeroed(t, other, rows * C0);
        ln_bwd(be, &t->stem1, d_a, C0, &G->stem_norm1, d, C0, t->stem1.a, C0, &P->stem_norm1, rows, C0);
        d = d_a;
    }
    be->conv2d_bwd(NULL, G->stem_conv1.w, G->stem_conv1.b, d, t->in, P->stem_conv1.w, &m->stem1, B, m->H, m->W, t->ws,
                   t->n_ws, T);
}

float model_backward(model_trainer *t, const int *labels, float smoothing, const float *drop_scale)
{
    model *m = t->m;
    const backend *be = m->be;
    float loss = 0.0f;
    const size_t rows = model_logit_rows(m);
    zeroed(t, t->d_logits, rows * m->cfg.num_classes);
    be->softmax_xent(&loss, t->d_logits, t->logits, labels, (int)rows, m->cfg.num_classes, smoothing);
    float *d = backward_head(t);
    for (int s = m->cfg.num_stages - 1; s >= 0; s--) {
        int bh, bw;
        model_stage_grid(m, s, &bh, &bw);
        const block_config *bc = &m->blocks[s];
        for (int j = m->cfg.depths[s] - 1; j >= 0; j--) {
            const int k = m->block_base[s] + j;
            block_backward(be, bc, &m->P.blocks[k], &t->G.blocks[k], d, &t->st[k],
                           drop_scale ? drop_scale + (size_t)k * m->B : NULL, t->ws, m->B, bh, bw);
        }
        if (s > 0)
            d = backward_down(t, s, d);
    }
    backward_stem(t, d);
    return loss;
}

/* ---- data parallel ---- */

static void shard_split(int B, int n, int k, int *off, int *cnt)
{
    const int q = B / n, r = B % n;
    *cnt = q + (k < r);
    *off = k * q + (k < r ? k : r);
}

int model_shards_count(int threads, int B)
{
    int n = threads < B ? threads : B;
    return n < MODEL_MAX_SHARDS ? n : MODEL_MAX_SHARDS;
}

size_t model_shards_step_bytes(const model *m, int n)
{
    return model_train_step_bytes(m) - model_train_bytes(m) + model_shards_bytes(m, n); /* parts for the trainer */
}

size_t model_shards_bytes(const model *m, int n)
{
    size_t total = 0;
    for (int k = 0; k < n; k++) {
        int off, cnt;
        shard_split(m->B, n, k, &off, &cnt);
        model v;
        if (model_view(m, cnt, m->H, m->W, &v) != ML_OK)
            return 0;
        total += model_train_bytes(&v) + (size_t)model_block_count(m) * (size_t)cnt * sizeof(float);
        model_view_free(&v);
    }
    return total;
}

void model_shards_free(model_shards *s)
{
    for (int k = 0; k < s->n; k++) {
        if (s->t[k].m)
            model_train_free(&s->t[k]);
        if (s->view[k].params)
            model_view_free(&s->view[k]);
    }
    free(s->drop);
    memset(s, 0, sizeof *s);
}

ml_status model_shards_init(model_shards *s, model *m, int n)
{
    memset(s, 0, sizeof *s);
    if (n < 2 || n > MODEL_MAX_SHARDS || n > m->B)
        return ml_fail(ML_ERR_USAGE, "data parallel: %d shards of a batch of %d (want 2..%d, at most the batch)", n,
                       m->B, MODEL_MAX_SHARDS);
    s->m = m;
    s->n = n;
    omp_set_max_active_levels(1); /* one thread inside each shard, whatever OMP_MAX_ACTIVE_LEVELS says */
    ml_status st = ML_OK;
    for (int k = 0; k < n && st == ML_OK; k++) {
        shard_split(m->B, n, k, &s->off[k], &s->cnt[k]);
        st = model_view(m, s->cnt[k], m->H, m->W, &s->view[k]);
        if (st == ML_OK)
            st = model_train_init(&s->t[k], &s->view[k]);
    }
    const size_t nd = (size_t)model_block_count(m) * (size_t)m->B;
    if (st == ML_OK && !(s->drop = ml_malloc((nd ? nd : 1) * sizeof *s->drop, "drop-path scales by shard")))
        st = ML_ERR_NOMEM;
    if (st != ML_OK)
        model_shards_free(s);
    return st;
}

float model_shards_step(model_shards *s, const float *input, const int *labels, float smoothing,
                        const float *drop_scale)
{
    const model *m = s->m;
    const int n = s->n, nb = model_block_count(m);
    const size_t in_per = model_input_floats(m), rows_per = model_logit_rows(m) / (size_t)m->B;
    float loss[MODEL_MAX_SHARDS];
    size_t asked[MODEL_MAX_SHARDS], total = 0;
    const float *drop[MODEL_MAX_SHARDS];
    for (int k = 0; k < n; k++) {
        asked[k] = 0;
        const size_t r0 = (size_t)s->off[k] * rows_per, r1 = r0 + (size_t)s->cnt[k] * rows_per;
        for (size_t i = r0; i < r1; i++)
            asked[k] += labels[i] >= 0;
        total += asked[k];
        drop[k] = NULL;
        if (drop_scale) { /* block j's scales of shard k's samples, block after block */
            float *d = s->drop + (size_t)nb * (size_t)s->off[k];
            for (int j = 0; j < nb; j++)
                memcpy(d + (size_t)j * (size_t)s->cnt[k], drop_scale + (size_t)j * (size_t)m->B + (size_t)s->off[k],
                       (size_t)s->cnt[k] * sizeof *d);
            drop[k] = d;
        }
    }
    /* part k on thread k; should the runtime give fewer threads, each takes every T-th part (the
     * bits do not depend on which thread runs a part) */
#pragma omp parallel num_threads(n)
    for (int k = omp_get_thread_num(); k < n; k += omp_get_num_threads()) {
        model_trainer *t = &s->t[k];
        model_train_zero_grads(t);
        model_forward_train(t, input + (size_t)s->off[k] * in_per, drop[k]);
        loss[k] = model_backward(t, labels + (size_t)s->off[k] * rows_per, smoothing, drop[k]);
    }
    /* the parts with a labelled row, in order (one without has a loss of 0 / 0 and adds nothing) */
    float w[MODEL_MAX_SHARDS];
    const float *g[MODEL_MAX_SHARDS];
    int nu = 0;
    double l = 0;
    for (int k = 0; k < n; k++)
        if (asked[k]) {
            w[nu] = (float)((double)asked[k] / (double)total);
            g[nu++] = (const float *)s->t[k].grad_arena.base;
            l += (double)w[nu - 1] * loss[k];
        }
    float *out = (float *)s->t[0].grad_arena.base;
    const size_t nf = s->t[0].grad_arena.used / sizeof(float);
#pragma omp parallel for schedule(static) num_threads(n)
    for (size_t i = 0; i < nf; i++) {
        float a = 0.0f;
        for (int k = 0; k < nu; k++)
            a = k ? a + w[k] * g[k][i] : w[k] * g[k][i];
        out[i] = a;
    }
    return total ? (float)l : NAN;
}
