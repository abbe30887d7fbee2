/* An image folder as a dataset (dataset.h): root/<class>/<image> listed in
 * timm's order (imagefolder.h), every image through timm's evaluation
 * transform (resample.h: decode, resize the shorter side to
 * floor(R / crop_pct), centre crop, /255, normalise) at the batch's
 * resolution. The folder is the test split; a second folder (train=PATH in
 * the spec) with the same classes is the training split, whose augmented
 * batches go through timm's training transform (resample.h: random-resized
 * crop, flip; then random erasing when opt.erase > 0) with a stream per image
 * derived from (seed, index).
 *
 * A batch's images are decoded by opt.workers threads of their own (an
 * OpenMP team started from the loader's thread), so with the loader making
 * batch k + 1 while the model runs batch k, the forward waits on a JPEG only
 * when the decoders are slower than it. A bad image (truncated, corrupt, not
 * an image, over the size limit, unreadable) fails the batch with a one-line
 * error naming the file, or with opt.skip_bad is reported on stderr and
 * handed out with label -1 and zero pixels for the caller to leave out. */
#include "data/dataset.h"
#include "data/image.h"
#include "data/imagefolder.h"
#include "data/resample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLDER_ERROR_LEN 400

typedef struct {
    imagefolder f;     /* the test split */
    imagefolder train; /* the training split (n_items 0 without one) */
    eval_transform t;  /* t.size is set per batch */
} folder_impl;

/* One image into out_chw [3][res][res] (rng: the training transform, else the evaluation one);
 * the error message into err. */
static ml_status load_one(const folder_impl *fi, const char *path, int res, rng_state *rng, float *out_chw,
                          char *err)
{
    eval_transform t = fi->t;
    t.size = (size_t)res;
    image_rgb8 img;
    ml_status s = image_load_rgb8(&img, path, IMAGE_MAX_PIXELS);
    if (s == ML_OK) {
        s = rng ? train_transform_chw(out_chw, &t, &img, rng) : eval_transform_chw(out_chw, &t, &img);
        image_free_rgb8(&img);
    }
    if (s != ML_OK)
        snprintf(err, FOLDER_ERROR_LEN, "%s", ml_last_error());
    return s;
}

static ml_status folder_batch(const dataset *d, data_split split, const size_t *idx, int n, int res, int augment,
                              uint64_t seed, float *x, int32_t *labels)
{
    const folder_impl *fi = d->impl;
    if (split == DATA_TRAIN && !fi->train.n_items)
        return ml_fail(ML_ERR_USAGE, "--data %s: no training folder (folder:dir=TEST,train=TRAIN)", d->source);
    if (split == DATA_TEST && augment)
        return ml_fail(ML_ERR_USAGE, "--data %s: the test split is evaluated without augmentation", d->source);
    const imagefolder *f = split == DATA_TRAIN ? &fi->train : &fi->f;
    const size_t per = (size_t)3 * res * res;
    ml_status *st = malloc((size_t)n * sizeof *st);
    char *err = malloc((size_t)n * FOLDER_ERROR_LEN);
    if (!st || !err) {
        free(st), free(err);
        return ml_fail(ML_ERR_NOMEM, "out of memory decoding a batch of %d images", n);
    }
    const int workers = d->opt.workers > 0 ? d->opt.workers : 1;
#pragma omp parallel for num_threads(workers) schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        const imagefolder_item *it = &f->items[idx[i]];
        rng_state r;
        rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ULL * (idx[i] + 1)));
        st[i] = load_one(fi, it->path, res, augment ? &r : NULL, x + (size_t)i * per,
                         err + (size_t)i * FOLDER_ERROR_LEN);
        if (st[i] == ML_OK && augment && d->opt.erase > 0) /* after the transform, on the normalised planes */
            dataset_random_erase(x + (size_t)i * per, 3, res, res, (size_t)res * res, d->opt.erase, &r);
        labels[i] = st[i] == ML_OK ? (int32_t)it->label : -1;
    }
    ml_status s = ML_OK;
    for (int i = 0; i < n && s == ML_OK; i++) {
        if (st[i] == ML_OK)
            continue;
        if (!d->opt.skip_bad) {
            s = ml_fail(st[i], "%s", err + (size_t)i * FOLDER_ERROR_LEN);
            break;
        }
        memset(x + (size_t)i * per, 0, per * sizeof *x);
        fprintf(stderr, "warning: skipped (--skip-bad): %s\n", err + (size_t)i * FOLDER_ERROR_LEN);
    }
    free(st), free(err);
    return s;
}

static void folder_release(dataset *d)
{
    folder_impl *fi = d->impl;
    if (fi) {
        imagefolder_free(&fi->f);
        imagefolder_free(&fi->train);
    }
    free(fi);
    d->impl = NULL;
}

ml_status folder_open(dataset *d, const char *dir, const char *train_dir, size_t limit);

/* The training folder must list the test folder's classes, in the same order. */
static ml_status scan_train(folder_impl *fi, const char *dir, const char *train_dir, size_t limit)
{
    ML_TRY(imagefolder_scan(&fi->train, train_dir, limit));
    int same = fi->train.n_classes == fi->f.n_classes;
    for (size_t c = 0; same && c < fi->f.n_classes; c++)
        same = strcmp(fi->train.classes[c], fi->f.classes[c]) == 0;
    if (!same)
        return ml_fail(ML_ERR_USAGE, "--data: the training folder %s and the test folder %s have different classes "
                                     "(%zu and %zu)", train_dir, dir, fi->train.n_classes, fi->f.n_classes);
    return ML_OK;
}

ml_status folder_open(dataset *d, const char *dir, const char *train_dir, size_t limit)
{
    folder_impl *fi = calloc(1, sizeof *fi);
    if (!fi)
        return ml_fail(ML_ERR_NOMEM, "out of memory opening the image folder '%s'", dir);
    eval_transform_init(&fi->t, 224);
    fi->t.crop_pct = d->opt.crop_pct;
    memcpy(fi->t.mean, d->opt.mean, sizeof fi->t.mean);
    memcpy(fi->t.std, d->opt.std, sizeof fi->t.std);
    ml_status s = resample_parse_filter(&fi->t.interp, d->opt.interpolation);
    if (s == ML_OK)
        s = eval_transform_check(&fi->t);
    /* limit: the training images when there is a training folder, else the test images */
    if (s == ML_OK)
        s = imagefolder_scan(&fi->f, dir, train_dir ? 0 : limit);
    if (s == ML_OK && train_dir)
        s = scan_train(fi, dir, train_dir, limit);
    if (s != ML_OK) {
        imagefolder_free(&fi->f);
        imagefolder_free(&fi->train);
        free(fi);
        return s;
    }
    if (fi->f.n_classes > 1000000) {
        s = ml_fail(ML_ERR_USAGE, "--data %s: %zu classes; at most 1,000,000", dir, fi->f.n_classes);
        imagefolder_free(&fi->f);
        free(fi);
        return s;
    }
    snprintf(d->name, sizeof d->name, "image folder");
    snprintf(d->source, sizeof d->source, "%s", dir);
    d->classes = (int)fi->f.n_classes;
    d->native_res = 0;
    d->n[DATA_TRAIN] = fi->train.n_items;
    d->n[DATA_TEST] = fi->f.n_items;
    d->batch = folder_batch;
    d->release = folder_release;
    d->impl = fi;
    return ML_OK;
}

const char *dataset_class_name(const dataset *d, int label)
{
    if (d->batch != folder_batch || label < 0)
        return NULL;
    const folder_impl *fi = d->impl;
    return (size_t)label < fi->f.n_classes ? fi->f.classes[label] : NULL;
}

const char *dataset_item_path(const dataset *d, size_t i)
{
    if (d->batch != folder_batch)
        return NULL;
    const folder_impl *fi = d->impl;
    return i < fi->f.n_items ? fi->f.items[i].path : NULL;
}
