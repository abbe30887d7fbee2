#include "blocks/layernorm.h"

#include <math.h>

void layernorm_forward(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w,
                       const float *b, size_t rows, int C, float eps)
{
#pragma omp parallel for schedule(static) if (rows * (size_t)C > 16384)
    for (size_t r = 0; r < rows; r++) {
        const float *x = in + r * ld_in;
        float *y = out + r * ld_out;
        /* Two passes in double: the reference must not lose bits to cancellation. */
        double sum = 0.0;
        for (int c = 0; c < C; c++)
            sum += x[c];
        double mean = sum / C, ss = 0.0;
        for (int c = 0; c < C; c++) {
            double d = x[c] - mean;
            ss += d * d;
        }
        float rstd = (float)(1.0 / sqrt(ss / C + (double)eps));
        float m = (float)mean;
        for (int c = 0; c < C; c++)
            y[c] = (x[c] - m) * rstd * w[c] + b[c];
    }
}
