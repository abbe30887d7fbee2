#include "blocks/loss.h"

#include "base/common.h"

#include <math.h>

void softmax_xent(float *loss, float *d_logits, const float *logits, const int *labels, int B, int NC,
                  float smoothing)
{
    const double s = smoothing;
    int counted = 0;
    for (int b = 0; b < B; b++)
        counted += labels[b] >= 0;
    const double inv_b = counted ? 1.0 / counted : 0.0;
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * NC;
        const int y = labels[b];
        ML_ASSERT(y >= -1 && y < NC);
        if (y < 0) /* nothing asked at this row (a sequence position without a target) */
            continue;
        double mx = -INFINITY, sum = 0.0, mean_x = 0.0;
        for (int c = 0; c < NC; c++)
            mx = x[c] > mx ? x[c] : mx;
        for (int c = 0; c < NC; c++) {
            sum += exp((double)x[c] - mx);
            mean_x += x[c];
        }
        const double lse = mx + log(sum);
        mean_x /= NC;
        /* −log p[y] = lse − x[y];  mean_c(−log p[c]) = lse − mean(x) */
        total += (1.0 - s) * (lse - x[y]) + s * (lse - mean_x);
        if (d_logits) {
            float *d = d_logits + (size_t)b * NC;
            for (int c = 0; c < NC; c++) {
                const double p = exp((double)x[c] - lse);
                d[c] += (float)((p - (c == y ? 1.0 - s : 0.0) - s / NC) * inv_b);
            }
        }
    }
    *loss = (float)(total * inv_b);
}
