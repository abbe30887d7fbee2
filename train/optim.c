#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

adamw_config adamw_config_default(void)
{
    adamw_config c = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    return c;
}

/* name ends with suffix, after a '.' or at the start */
static int ends_with(const char *name, const char *suffix)
{
    const size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0 && (n == k || name[n - k - 1] == '.');
}

int adamw_decays(const model_param *p)
{
    if (p->ndim <= 1)
        return 0;
    static const char *const kept[] = {"A_log", "A_b_log", "A_logs", "cls_token", "pos_embed", NULL};
    for (int i = 0; kept[i]; i++)
        if (ends_with(p->name, kept[i]))
            return 0;
    return 1;
}

ml_status adamw_init(adamw *o, const adamw_config *cfg, const model_param *params, int n, const size_t *offset)
{
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    o->ntensors = n;
    o->offset = ml_calloc((size_t)n, sizeof *o->offset, "optimizer table");
    o->numel = ml_calloc((size_t)n, sizeof *o->numel, "optimizer table");
    o->decay = ml_calloc((size_t)n, 1, "optimizer table");
    if (!o->offset || !o->numel || !o->decay) {
        adamw_free(o);
        return ML_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        o->offset[i] = offset[i];
        o->numel[i] = params[i].numel;
        o->decay[i] = (unsigned char)adamw_decays(&params[i]);
        if (offset[i] + params[i].numel > o->floats)
            o->floats = offset[i] + params[i].numel;
    }
    o->m = ml_calloc(o->floats ? o->floats : 1, sizeof *o->m, "AdamW first moments");
    o->v = o->m ? ml_calloc(o->floats ? o->floats : 1, sizeof *o->v, "AdamW second moments") : NULL;
    if (!o->v) {
        adamw_free(o);
        return ML_ERR_NOMEM;
    }
    return ML_OK;
}

void adamw_free(adamw *o)
{
    free(o->offset), free(o->numel), free(o->decay), free(o->m), free(o->v);
    memset(o, 0, sizeof *o);
}

void adamw_step(adamw *o, float *params, const float *grads, double lr)
{
    const adamw_config *c = &o->cfg;
    const long t = ++o->step;
    const double bc1 = 1.0 - pow(c->beta1, (double)t), bc2 = 1.0 - pow(c->beta2, (double)t);
    /* 1 - β in double, then rounded: (1.0f - 0.999f) is 4.7e-5 off, and v would carry that */
    const float b1 = (float)c->beta1, b2 = (float)c->beta2, omb1 = (float)(1.0 - c->beta1),
                omb2 = (float)(1.0 - c->beta2), step_size = (float)(lr / bc1);
    const float rbc2 = (float)(1.0 / sqrt(bc2)), eps = (float)c->eps;
    for (int k = 0; k < o->ntensors; k++) {
        float *p = params + o->offset[k], *m = o->m + o->offset[k], *v = o->v + o->offset[k];
        const float *g = grads + o->offset[k];
        const float keep = o->decay[k] ? (float)(1.0 - lr * c->weight_decay) : 1.0f;
        const size_t n = o->numel[k];
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + omb1 * g[i];
            v[i] = b2 * v[i] + omb2 * g[i] * g[i];
            /* torch.optim.AdamW: decay first, then p -= lr/bc1 · m / (√v/√bc2 + ε) */
            p[i] = p[i] * keep - step_size * m[i] / (sqrtf(v[i]) * rbc2 + eps);
        }
    }
}

double grad_norm(const adamw *o, const float *grads)
{
    double total = 0;
    for (int k = 0; k < o->ntensors; k++) {
        const float *g = grads + o->offset[k];
        double s = 0;
        for (size_t i = 0; i < o->numel[k]; i++)
            s += (double)g[i] * g[i];
        total += s;
    }
    return sqrt(total);
}

double grad_clip(const adamw *o, float *grads, double max_norm)
{
    const double norm = grad_norm(o, grads);
    if (max_norm <= 0 || norm <= max_norm)
        return norm;
    /* torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6) */
    const float f = (float)(max_norm / (norm + 1e-6));
    for (int k = 0; k < o->ntensors; k++) {
        float *g = grads + o->offset[k];
        for (size_t i = 0; i < o->numel[k]; i++)
            g[i] *= f;
    }
    return norm;
}

double lr_at(const lr_schedule *s, long step)
{
    if (step < s->warmup)
        return s->warmup_lr + (s->lr - s->warmup_lr) * (double)step / (double)s->warmup;
    if (step >= s->total)
        return s->min_lr;
    const double t = (double)(step - s->warmup) / (double)(s->total - s->warmup > 0 ? s->total - s->warmup : 1);
    return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(3.14159265358979323846 * t));
}
