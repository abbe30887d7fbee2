#include "blocks/pool.h"

void meanpool_forward(float *out, const float *in, int B, size_t L, int C)
{
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
    for (int b = 0; b < B; b++) {
        for (int c = 0; c < C; c++) {
            const float *x = in + (size_t)b * L * C + c;
            double s = 0.0;
            for (size_t t = 0; t < L; t++)
                s += x[t * (size_t)C];
            out[(size_t)b * C + c] = (float)(s / (double)L);
        }
    }
}

void meanpool_backward(float *d_in, const float *d_out, int B, size_t L, int C)
{
    const float inv = (float)(1.0 / (double)L);
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * L * C > 65536)
    for (int b = 0; b < B; b++)
        for (size_t t = 0; t < L; t++) {
            float *d = d_in + ((size_t)b * L + t) * C;
            const float *g = d_out + (size_t)b * C;
            for (int c = 0; c < C; c++)
                d[c] += g[c] * inv;
        }
}
