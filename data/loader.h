/* Batches made ahead on a thread of their own, so that the training loop
 * (or an evaluation) never waits on decoding or augmenting when there is a
 * core to spare. Two slots: while the caller computes on batch k the loader
 * fills batch k + 1. Batches are a pure function of their sample indices and
 * seed (dataset.h), so what the loader makes does not depend on its timing. */
#ifndef MIXERLAB_LOADER_H
#define MIXERLAB_LOADER_H

#include "data/dataset.h"

typedef struct loader loader;

/* Batches of `batch` samples (the last may be short; dataset_sample_floats and _labels each) over order[0..n) of the
 * split, starting at batch number first (to resume in the middle of an
 * epoch). order is not copied: it must outlive the loader. */
ml_status loader_start(loader **out, const dataset *d, data_split split, const size_t *order, size_t n, int batch,
                       int res, int augment, uint64_t seed, size_t first);
/* The next batch: *count samples (0 at the end), valid until the next call.
 * A batch the dataset could not make is its error. */
ml_status loader_next(loader *l, const float **x, const int32_t **labels, int *count);
void loader_stop(loader *l);

#endif
