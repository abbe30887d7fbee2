#include "blocks/layernorm.h"

#include "base/common.h"

#include <math.h>

ML_CLONES static void layernorm_row(float *y, float *mean_out, float *rstd_out, const float *x, const float *w,
                                    const float *b, int C, float eps)
{
    /* Two passes in double: the reference must not lose bits to cancellation.
     * The simd reductions let the compiler use vector lanes (order changes,
     * precision does not: the sums are in double). */
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++)
        sum += x[c];
    double mean = sum / C, ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++) {
        double d = x[c] - mean;
        ss += d * d;
    }
    float rstd = (float)(1.0 / sqrt(ss / C + (double)eps));
    float m = (float)mean;
    if (mean_out)
        *mean_out = m, *rstd_out = rstd;
    for (int c = 0; c < C; c++)
        y[c] = (x[c] - m) * rstd * w[c] + b[c];
}

void layernorm_forward(float *out, size_t ld_out, float *mean, float *rstd, const float *in, size_t ld_in,
                       const float *w, const float *b, size_t rows, int C, float eps)
{
#pragma omp parallel for schedule(static) if (rows * (size_t)C > 16384)
    for (size_t r = 0; r < rows; r++)
        layernorm_row(out + r * ld_out, mean ? mean + r : NULL, rstd ? rstd + r : NULL, in + r * ld_in, w, b, C, eps);
}
