#include "data/loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float *x;
    int32_t *labels;
    int count;     /* samples in it */
    int full;      /* made, not yet handed out */
    ml_status status;
    char error[512];
} slot;

struct loader {
    const dataset *d;
    data_split split;
    const size_t *order;
    size_t n, next_batch, batches;
    int batch, res, augment;
    uint64_t seed;
    slot slots[2];
    int give;      /* the slot loader_next hands out next */
    int stop, started;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *produce(void *arg)
{
    loader *l = arg;
    for (size_t b = l->next_batch; b < l->batches; b++) {
        slot *s = &l->slots[b % 2];
        pthread_mutex_lock(&l->mu);
        while (s->full && !l->stop)
            pthread_cond_wait(&l->cv, &l->mu);
        const int stop = l->stop;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        const size_t i0 = b * (size_t)l->batch;
        const int count = (int)(l->n - i0 < (size_t)l->batch ? l->n - i0 : (size_t)l->batch);
        ml_clear_error();
        ml_status st = l->d->batch(l->d, l->split, l->order + i0, count, l->res, l->augment, l->seed, s->x, s->labels);
        pthread_mutex_lock(&l->mu);
        s->count = count;
        s->status = st;
        snprintf(s->error, sizeof s->error, "%s", st == ML_OK ? "" : ml_last_error());
        s->full = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    return NULL;
}

ml_status loader_start(loader **out, const dataset *d, data_split split, const size_t *order, size_t n, int batch,
                       int res, int augment, uint64_t seed, size_t first)
{
    *out = NULL;
    loader *l = calloc(1, sizeof *l);
    if (!l)
        return ml_fail(ML_ERR_NOMEM, "out of memory for the batch loader");
    *l = (loader){.d = d, .split = split, .order = order, .n = n, .next_batch = first,
                  .batches = (n + (size_t)batch - 1) / (size_t)batch, .batch = batch, .res = res, .augment = augment,
                  .seed = seed, .give = (int)(first % 2)};
    const size_t per = dataset_sample_floats(d, res), per_label = (size_t)dataset_sample_labels(d);
    for (int i = 0; i < 2; i++) {
        l->slots[i].x = ml_malloc((size_t)batch * per * sizeof(float), "a batch of samples");
        l->slots[i].labels = ml_malloc((size_t)batch * per_label * sizeof(int32_t), "a batch of labels");
        if (!l->slots[i].x || !l->slots[i].labels) {
            loader_stop(l);
            return ML_ERR_NOMEM;
        }
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (pthread_create(&l->thread, NULL, produce, l) == 0) {
        l->started = 1;
    } else {
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        for (int i = 0; i < 2; i++)
            free(l->slots[i].x), free(l->slots[i].labels);
        free(l);
        return ml_fail(ML_ERR_RUNTIME, "cannot start the batch loader thread");
    }
    *out = l;
    return ML_OK;
}

ml_status loader_next(loader *l, const float **x, const int32_t **labels, int *count)
{
    *count = 0;
    if (l->next_batch >= l->batches)
        return ML_OK;
    pthread_mutex_lock(&l->mu);
    /* the slot handed out last time is free again */
    slot *prev = &l->slots[1 - l->give];
    if (prev->full && prev->count < 0) {
        prev->full = 0;
        pthread_cond_broadcast(&l->cv);
    }
    slot *s = &l->slots[l->give];
    while (!s->full)
        pthread_cond_wait(&l->cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    if (s->status != ML_OK)
        return ml_fail(s->status, "%s", s->error);
    *x = s->x, *labels = s->labels, *count = s->count;
    /* handed out: freed at the next call (marked by a negative count) */
    pthread_mutex_lock(&l->mu);
    s->count = -s->count - 1;
    l->give = 1 - l->give;
    l->next_batch++;
    pthread_mutex_unlock(&l->mu);
    return ML_OK;
}

void loader_stop(loader *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    for (int i = 0; i < 2; i++)
        free(l->slots[i].x), free(l->slots[i].labels);
    free(l);
}
