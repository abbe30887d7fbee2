#include "train/metrics.h"

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
