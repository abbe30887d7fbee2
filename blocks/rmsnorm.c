#include "blocks/rmsnorm.h"

#include "base/common.h"

#include <math.h>

ML_CLONES static void rmsnorm_row(float *y, float *rstd, const float *x, const float *w, int C, float eps)
{
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int c = 0; c < C; c++)
        ss += (double)x[c] * x[c];
    float r = (float)(1.0 / sqrt(ss / C + (double)eps));
    if (rstd)
        *rstd = r;
    for (int c = 0; c < C; c++)
        y[c] = x[c] * r * w[c];
}

void rmsnorm_forward(float *out, size_t ld_out, float *rstd, const float *in, size_t ld_in, const float *w,
                     size_t rows, int C, float eps)
{
#pragma omp parallel for schedule(static) if (rows * (size_t)C > 16384)
    for (size_t r = 0; r < rows; r++)
        rmsnorm_row(out + r * ld_out, rstd ? rstd + r : NULL, in + r * ld_in, w, C, eps);
}
