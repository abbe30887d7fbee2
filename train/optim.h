/* AdamW with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW's
 * update), the learning-rate schedule (linear warm-up, then cosine), and
 * gradient-norm clipping, over a model's parameter table.
 *
 *   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²;  m̂ = m / (1−β1ᵗ);  v̂ = v / (1−β2ᵗ)
 *   p = p − lr·(m̂ / (√v̂ + ε) + wd·p)      (wd only on the tensors that decay)
 *
 * timm's rule for what decays: every parameter except those with ndim <= 1
 * (biases, norm weights, D) and, by name, the SSMs' A_log (A_log, A_b_log,
 * A_logs), the class token and the position embedding. Elementwise and
 * reduced in a fixed order, so the same inputs give the same bits on any
 * number of threads. */
#ifndef MIXERLAB_OPTIM_H
#define MIXERLAB_OPTIM_H

#include "models/model.h"

typedef struct {
    double lr;           /* peak learning rate */
    double beta1, beta2, eps;
    double weight_decay; /* on the tensors that decay */
} adamw_config;

adamw_config adamw_config_default(void); /* lr 1e-3, β (0.9, 0.999), ε 1e-8, wd 0.05 */

typedef struct {
    adamw_config cfg;
    int ntensors;
    size_t *offset, *numel; /* each tensor's floats in the flat buffers */
    unsigned char *decay;   /* 1: weight decay applies */
    size_t floats;          /* total */
    float *m, *v;           /* first and second moments, laid out as offset/numel */
    long step;              /* updates done (t of the bias correction is step + 1 in the next one) */
} adamw;

/* 1 when timm's rule decays this parameter. */
int adamw_decays(const model_param *p);

/* Moments for a parameter table whose tensors sit at offset[i] floats of the
 * flat buffers (the host weight arena's layout: model_param_offsets). */
ml_status adamw_init(adamw *o, const adamw_config *cfg, const model_param *params, int n, const size_t *offset);
void adamw_free(adamw *o);

/* One update of params (flat, laid out as offset/numel) from grads at learning rate lr. */
void adamw_step(adamw *o, float *params, const float *grads, double lr);

/* The L2 norm of all gradients, summed tensor by tensor in table order (in double). */
double grad_norm(const adamw *o, const float *grads);
/* Scales grads so that their norm is at most max_norm (nothing when max_norm <= 0); returns the norm before. */
double grad_clip(const adamw *o, float *grads, double max_norm);

/* Linear warm-up from warmup_lr to lr over warmup steps, then cosine from lr
 * to min_lr at step total (timm's CosineLRScheduler, per step). */
typedef struct {
    double lr, min_lr, warmup_lr;
    long warmup, total;
} lr_schedule;
double lr_at(const lr_schedule *s, long step);

#endif
