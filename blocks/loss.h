/* The training loss: softmax cross-entropy over classes, with label smoothing
 * as timm's LabelSmoothingCrossEntropy (the MambaOut recipe uses s = 0.1):
 *
 *   log p = log_softmax(logits);   loss_b = (1 − s)·(−log p[label_b]) + s·mean_c(−log p[c])
 *   loss  = mean of loss_b over the rows b whose label is not -1 (n of them)
 *   ∂loss/∂logits[b, c] = (p[c] − (1 − s)·[c = label_b] − s / NC) / n, and 0 on a row labelled -1
 *
 * A row labelled -1 asks nothing (PyTorch's ignore_index = -1): the sequence
 * tasks label only the positions where an answer is due.
 *
 * The forward and its backward are one op (the loss is where the backward pass
 * starts). Contract in blocks/backend.h: softmax_xent. */
#ifndef MIXERLAB_LOSS_H
#define MIXERLAB_LOSS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* loss[0] = the mean loss over the labelled rows (0 when none is); d_logits (B, NC), may be NULL,
 * += ∂loss/∂logits. labels are B ints in 0 .. NC-1 or -1 (checked: a label outside is a programming
 * error, as the data loader validates its files). Rows one after another, each in double: B·NC is small next to any network. */
void softmax_xent(float *loss, float *d_logits, const float *logits, const int *labels, int B, int NC,
                  float smoothing);

#ifdef __cplusplus
}
#endif

#endif
