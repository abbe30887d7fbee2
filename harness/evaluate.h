/* A model's accuracy on a dataset's test split, as `mixerlab eval` measures
 * it and as a sweep's `metrics = accuracy` with an [eval] section does: one
 * function for both. */
#ifndef MIXERLAB_EVALUATE_H
#define MIXERLAB_EVALUATE_H

#include "harness/cli_data.h"
#include "train/metrics.h"

typedef struct {
    const char *model, *weights, *data, *device; /* weights NULL: initialised from seed */
    long res;   /* 0: a folder's model test size, 32 for Fashion-MNIST */
    long batch; /* images per forward (clamped to the image count) */
    long limit; /* the first limit test images (0: all) */
    uint64_t seed;
    int ignore_unexpected;
    data_flags df;
} eval_request;

typedef struct {
    class_metrics m;
    double seconds; /* the evaluation (decoding included), for images/s */
    int res;
    char data_name[64], source[512];
    int native; /* the dataset has a fixed test split (Fashion-MNIST), not a folder */
    int seq_len; /* a sequence task read as sequences: its tokens per sample (accuracy: the answers right) */
    /* what the numbers were measured on, as key=value;...: data (its source), images, res, a
     * folder's crop_pct and interpolation as applied (the model's unless overridden), weights */
    char setup[1400];
} eval_outcome;

ml_status eval_run(const eval_request *rq, eval_outcome *out);

#endif
