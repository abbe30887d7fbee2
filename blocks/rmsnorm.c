#include "blocks/rmsnorm.h"

#include "blocks/layernorm.h"

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

/* ---- backward ---- */

void rmsnorm_backward(float *d_in, size_t ld_din, float *d_w, const float *d_out, size_t ld_dout, const float *in,
                      size_t ld_in, const float *w, const float *rstd, size_t rows, int C)
{
    if (d_in) {
#pragma omp parallel for schedule(static) if (rows * (size_t)C > 16384)
        for (size_t r = 0; r < rows; r++) {
            const float *x = in + r * ld_in, *dy = d_out + r * ld_dout;
            float *dx = d_in + r * ld_din;
            const double s = rstd[r];
            double dot = 0.0;
            for (int c = 0; c < C; c++)
                dot += (double)dy[c] * w[c] * x[c];
            const double k = s * s * s * dot / C;
            for (int c = 0; c < C; c++)
                dx[c] += (float)(s * ((double)dy[c] * w[c]) - x[c] * k);
        }
    }
    norm_param_grads(d_w, NULL, d_out, ld_dout, in, ld_in, NULL, rstd, rows, C);
}
