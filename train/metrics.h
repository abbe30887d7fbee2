/* Classification metrics of a batch of logits: the summed cross-entropy and
 * the top-1 and top-5 hits. A class scoring exactly the label's counts above
 * it when its number is lower (a stated tie rule: exact ties are rare). */
#ifndef MIXERLAB_METRICS_H
#define MIXERLAB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "base/common.h"

typedef struct {
    double loss_sum;  /* Σ −log softmax(z)[label], in double */
    size_t top1, top5, count;
    size_t skipped; /* rows whose label was -1 (not counted above) */
} class_metrics;

/* Adds rows 0..n of logits (n, classes) with their labels to m; a row
 * labelled -1 (a bad image the dataset skipped) only counts as skipped. */
void metrics_add(class_metrics *m, const float *logits, const int32_t *labels, int n, int classes);

/* Runs a model over the first n test samples of d in batches of B made ahead by the loader (a short
 * last batch padded with its first image) and adds every batch's logits to m. forward(ctx, x,
 * logits) takes B samples (B,3,res,res images, or B sequences of d->seq_len tokens) on the host and
 * leaves (B, classes) logits on the host, (B·seq_len, classes) for a sequence, whose labelled
 * positions are what m counts (a sequence task's accuracy: the share of its answers right); it
 * returns ML_OK or the error. */
struct dataset;
typedef ml_status (*metrics_forward_fn)(void *ctx, const float *x, const float **logits);
ml_status metrics_eval(const struct dataset *d, size_t n, int B, int res, int classes, metrics_forward_fn forward,
                       void *ctx, class_metrics *m);

#endif
