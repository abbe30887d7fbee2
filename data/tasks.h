/* Generated long-range tasks: sequence datasets made on the fly (nothing to
 * download), each a --data name with its parameters in the override syntax of
 * models, e.g. "selective-copying:seq_len=512,tokens=8,vocab=16".
 *
 * Every task fills the sequence fields of dataset (data/dataset.h): a sample is
 * seq_len token ids and seq_len labels (a class per position, -1 where nothing
 * is asked); d->classes is the number of output classes per position.
 *
 * Determinism: training sample i is a pure function of (the batch() seed, i);
 * test sample i of (a fixed seed of the task, i), so the held-out set differs
 * from every training stream and is the same in every run. The per-sample
 * stream is rng_seed(mix(seed, i)) (base/rng.h).
 *
 * The rules (DESIGN.md §11, the papers cited):
 *
 * selective-copying (Mamba, §4.1.1 and appendix E.1): parameters seq_len = L
 *   (default 1024), tokens = M (16), vocab = V (16), test (1000). Noise token 0,
 *   marker token V−1, data tokens uniform in 1..V−2. A sample has L + M tokens:
 *   M data tokens at M distinct positions of a length-L zero sequence drawn
 *   uniformly (kept in increasing order), then M markers. The labels are -1
 *   everywhere except at the M marker positions, where they are the M data
 *   tokens in order. classes = V, vocab = V, d->seq_len = L + M. Stream.
 *   Errors: M < 1, M > L, V < 3.
 *
 * induction-heads (Mamba §4.1.2, safari's generator): seq_len = L (256),
 *   vocab = V (16), test (1000). Trigger token V−1; every other token uniform
 *   in 0..V−2. The trigger appears once at a uniform position p in 0..L−3,
 *   followed by the token to recall at p + 1; the sequence ends with the
 *   trigger at L − 1. Label -1 everywhere except at L − 1: the recalled token.
 *   classes = V, vocab = V, d->seq_len = L. Stream. Errors: L < 4, V < 3.
 *   --eval-seq-len evaluates at other lengths (dataset_options.seq_len).
 *
 * pathfinder (Long Range Arena, snakes2.py, the "hard" setting, contour length
 *   14): size (32; 32, 64, 128), test (1000). Images of dashed contours and two
 *   marker circles; label 1 when both markers lie on the same contour. The
 *   published parameters (DESIGN §11) are in data/tasks.c beside the code.
 *   Sequence form: size² pixel tokens (0..255, vocab 256) read row by row, the
 *   label at the last position, -1 elsewhere; classes 2. image_res = size:
 *   as an image, pixel/255 replicated to 3 channels, normalised with mean 0.5,
 *   std 0.5, bilinearly resized (half-pixel centres) when res ≠ size. Stream,
 *   balanced labels (sample i's label is drawn with probability 1/2).
 *   Errors: a size other than 32, 64, 128.
 *
 * sequential-fashion-mnist (S4 Table 6's sMNIST on Fashion-MNIST): each
 *   Fashion-MNIST image (data/fashion_mnist.c, same files, dir= accepted) as a
 *   1 × 784 sequence of its pixel bytes (vocab 256), the class at the last
 *   position, -1 elsewhere; classes 10. image_res = 28: as an image it is
 *   exactly fashion-mnist's sample (its transform, its augmentation). Not a
 *   stream: the 60,000 / 10,000 images, --limit as for fashion-mnist.
 *
 * Unknown parameters, values out of range and unsatisfiable combinations are
 * usage errors naming the task, the key and what is allowed. */
#ifndef MIXERLAB_TASKS_H
#define MIXERLAB_TASKS_H

#include "data/dataset.h"

/* The tasks' names, for help and errors: "selective-copying, induction-heads, ..." */
const char *tasks_names(void);
/* Non-zero when name (without parameters) is a generated task. */
int tasks_is_task(const char *name);
/* Opens task `name` with its parameters (the text after ':', or NULL); opt->seq_len > 0 replaces
 * the length parameter (seq_len; pathfinder: size). limit: training samples for a dataset that is
 * not a stream (sequential-fashion-mnist), else ignored. */
ml_status tasks_open(dataset *d, const char *name, const char *params, const dataset_options *opt, size_t limit);

#endif
