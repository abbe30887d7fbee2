#include "train/metrics.h"

#include "data/loader.h"

#include <stdlib.h>
#include <string.h>

#include <math.h>

void metrics_add(class_metrics *m, const float *logits, const int32_t *labels, int n, int classes)
{
    for (int r = 0; r < n; r++) {
        const float *z = logits + (size_t)r * classes;
        const int y = labels[r];
        if (y < 0) { /* an image the dataset skipped (--skip-bad) */
            m->skipped++;
            continue;
        }
        double mx = z[0];
        for (int c = 1; c < classes; c++)
            mx = z[c] > mx ? z[c] : mx;
        double s = 0;
        for (int c = 0; c < classes; c++)
            s += exp((double)z[c] - mx);
        m->loss_sum += mx + log(s) - (double)z[y];
        /* rank of the label: how many classes score higher (ties: lower class first) */
        int above = 0;
        for (int c = 0; c < classes; c++)
            above += z[c] > z[y] || (z[c] == z[y] && c < y);
        m->top1 += above == 0;
        m->top5 += above < 5;
        m->count++;
    }
}

ml_status metrics_eval(const dataset *d, size_t n, int B, int res, int classes, metrics_forward_fn forward,
                       void *ctx, class_metrics *m)
{
    const size_t per = dataset_sample_floats(d, res);
    const int per_label = dataset_sample_labels(d); /* a sequence: a label per position, -1 where none is asked */
    size_t *order = ml_malloc((n ? n : 1) * sizeof *order, "test order");
    float *x = ml_malloc((size_t)B * per * sizeof *x, "padded test batch");
    if (!order || !x) {
        free(order), free(x);
        return ML_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    loader *l = NULL;
    ml_status s = loader_start(&l, d, DATA_TEST, order, n, B, res, 0, 0, 0);
    while (s == ML_OK) {
        const float *bx, *logits;
        const int32_t *labels;
        int count;
        if ((s = loader_next(l, &bx, &labels, &count)) != ML_OK || count == 0)
            break;
        if (count < B) { /* the loader's buffer holds count images: pad a copy */
            memcpy(x, bx, (size_t)count * per * sizeof *x);
            for (int k = count; k < B; k++)
                memcpy(x + (size_t)k * per, bx, per * sizeof *x);
            bx = x;
        }
        if ((s = forward(ctx, bx, &logits)) == ML_OK) {
            const size_t skipped = m->skipped;
            metrics_add(m, logits, labels, count * per_label, classes);
            if (per_label > 1)
                m->skipped = skipped; /* positions without a target are not skipped samples */
        }
    }
    if (l)
        loader_stop(l);
    free(order), free(x);
    return s;
}
