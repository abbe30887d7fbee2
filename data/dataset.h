/* Datasets for training and evaluation: a small interface every source
 * implements (Fashion-MNIST here; image folders and generated tasks later),
 * so the trainer and the loader never know which one they read.
 *
 * A batch is a pure function of (split, the sample indices, resolution,
 * augmentation on/off, seed): the same call gives the same bytes on any
 * thread at any time, which is what makes training deterministic and
 * resumable while batches are made ahead on another thread. */
#ifndef MIXERLAB_DATASET_H
#define MIXERLAB_DATASET_H

#include "base/common.h"
#include "base/rng.h"

typedef enum { DATA_TRAIN = 0, DATA_TEST = 1 } data_split;

/* How an image folder is preprocessed (timm's eval transform; Fashion-MNIST
 * has its own fixed one and ignores these), and how it is read. */
typedef struct {
    double crop_pct;        /* the shorter side is resized to floor(R / crop_pct) */
    char interpolation[16]; /* "bicubic" or "bilinear" */
    float mean[3], std[3];
    int skip_bad; /* a bad image: a warning on stderr, label -1, zero pixels */
    int workers;  /* decoding threads per batch (at least 1) */
    int seq_len;  /* a generated task: its length instead of the spec's (0: the spec's); --eval-seq-len */
    double erase; /* random erasing's probability in the training transform (images; 0: off) */
} dataset_options;

/* MambaOut's timm cfg (crop_pct 1.0, bicubic, ImageNet mean and std), no
 * skipping, one worker. */
dataset_options dataset_options_default(void);

typedef struct dataset dataset;
struct dataset {
    char name[64];     /* "fashion-mnist" */
    char source[512];  /* where it was read from, for messages and provenance */
    int classes;       /* labels are 0 .. classes-1 */
    int native_res;    /* the images' own size (28 for Fashion-MNIST) */
    size_t n[2];       /* samples per split (after --limit on the training split) */
    /* x (n, 3, res, res) float32 NCHW, normalised; labels (n). augment applies the
     * training transform with a per-sample stream derived from (seed, index). */
    ml_status (*batch)(const dataset *d, data_split split, const size_t *idx, int n, int res, int augment,
                       uint64_t seed, float *x, int32_t *labels);
    void (*release)(dataset *d);
    void *impl;
    dataset_options opt;

    /* Sequence tasks (data/tasks.h): seq_len > 0. A sample is seq_len token ids in 0..vocab-1 (as
     * floats: x is (n, seq_len)) and seq_len labels, a class per position, -1 where nothing is asked.
     * stream: the training split is endless (n[DATA_TRAIN] = 0; sample i of the stream is a pure
     * function of (seed, i)); the test split is fixed by a seed of its own.
     * image_res > 0: each sample is also an image_res² image read as a sequence row by row, with
     * one class per sample; as_image (set by the caller, for an image skeleton) makes batch() give
     * (n,3,res,res) images and one label per sample instead. */
    int seq_len, vocab, stream, image_res, as_image;
    char params[256]; /* the task's parameters in full, key=value,... (provenance) */
};

/* Floats of one sample as batch() writes it: seq_len (a sequence), else 3·res². */
size_t dataset_sample_floats(const dataset *d, int res);
/* Labels per sample: seq_len (a sequence), else 1. */
int dataset_sample_labels(const dataset *d);

/* Opens a dataset by its spec, NAME[:key=value,...]: "fashion-mnist" (the
 * Debian package's files), "fashion-mnist:dir=PATH", or an image folder:
 * "folder:dir=PATH" or the folder's path itself (anything with a '/' or an
 * existing directory). limit > 0 keeps the first limit training samples
 * (Fashion-MNIST) or images (a folder, in timm's order). opt NULL: the
 * defaults. Errors name the file and what is wrong. */
ml_status dataset_open(dataset *d, const char *spec, size_t limit);
ml_status dataset_open_with(dataset *d, const char *spec, size_t limit, const dataset_options *opt);

/* An image folder's class name of a label and path of its i-th image (NULL
 * for other datasets or out of range). */
const char *dataset_class_name(const dataset *d, int label);
const char *dataset_item_path(const dataset *d, size_t i);
void dataset_close(dataset *d);

/* timm's RandomErasing (mode "pixel", one region) on a normalised image x of c planes h x w, each
 * plane_stride floats apart: with probability p, up to 10 tries to draw a region of 2%..1/3 of the
 * area with aspect ratio log-uniform in 0.3..1/0.3 that fits; the first that fits is filled with
 * standard normal values (a value per pixel per plane). Draws come from r; nothing when p is 0. */
void dataset_random_erase(float *x, int c, int h, int w, size_t plane_stride, double p, rng_state *r);

/* The order of an epoch's training samples: a seeded permutation of 0..n-1. */
void dataset_epoch_order(size_t *order, size_t n, uint64_t seed, int epoch);

#endif
