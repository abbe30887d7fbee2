/* Classification metrics of a batch of logits: the summed cross-entropy and
 * the top-1 and top-5 hits. A class scoring exactly the label's counts above
 * it when its number is lower (a stated tie rule: exact ties are rare). */
#ifndef MIXERLAB_METRICS_H
#define MIXERLAB_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double loss_sum;  /* Σ −log softmax(z)[label], in double */
    size_t top1, top5, count;
    size_t skipped; /* rows whose label was -1 (not counted above) */
} class_metrics;

/* Adds rows 0..n of logits (n, classes) with their labels to m; a row
 * labelled -1 (a bad image the dataset skipped) only counts as skipped. */
void metrics_add(class_metrics *m, const float *logits, const int32_t *labels, int n, int classes);

#endif
