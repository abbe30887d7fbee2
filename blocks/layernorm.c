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

/* ---- backward ---- */

ML_CLONES static void layernorm_bwd_row(float *dx, const float *dy, const float *x, const float *w, float m, float s, int C)
{
    /* the two row means of the formula, in double as the forward's statistics */
    double a = 0.0, bsum = 0.0;
    for (int c = 0; c < C; c++) {
        const double xh = (double)((x[c] - m) * s), g = (double)dy[c] * w[c];
        a += g;
        bsum += g * xh;
    }
    a /= C, bsum /= C;
    for (int c = 0; c < C; c++) {
        const double xh = (double)((x[c] - m) * s), g = (double)dy[c] * w[c];
        dx[c] += (float)(s * (g - a - xh * bsum));
    }
}

/* Columns c0 .. c0+NORM_COLS-1 go to one thread, which walks every row in order. */
#define NORM_COLS 8

void norm_param_grads(float *d_w, float *d_b, const float *d_out, size_t ld_dout, const float *in, size_t ld_in,
                      const float *mean, const float *rstd, size_t rows, int C)
{
    if (!d_w && !d_b)
        return;
    const int nblk = (C + NORM_COLS - 1) / NORM_COLS;
#pragma omp parallel for schedule(static) if (rows * (size_t)C > 16384)
    for (int k = 0; k < nblk; k++) {
        const int c0 = k * NORM_COLS, nc = C - c0 < NORM_COLS ? C - c0 : NORM_COLS;
        double sw[NORM_COLS] = {0}, sb[NORM_COLS] = {0};
        for (size_t r = 0; r < rows; r++) {
            const float *x = in + r * ld_in + c0, *dy = d_out + r * ld_dout + c0;
            const float m = mean ? mean[r] : 0.0f, s = rstd[r];
            for (int j = 0; j < nc; j++) {
                sw[j] += (double)dy[j] * (double)((x[j] - m) * s);
                sb[j] += dy[j];
            }
        }
        for (int j = 0; j < nc; j++) {
            if (d_w)
                d_w[c0 + j] += (float)sw[j];
            if (d_b)
                d_b[c0 + j] += (float)sb[j];
        }
    }
}

void layernorm_backward(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, size_t ld_dout,
                        const float *in, size_t ld_in, const float *w, const float *mean, const float *rstd,
                        size_t rows, int C)
{
    if (d_in) {
#pragma omp parallel for schedule(static) if (rows * (size_t)C > 16384)
        for (size_t r = 0; r < rows; r++)
            layernorm_bwd_row(d_in + r * ld_din, d_out + r * ld_dout, in + r * ld_in, w, mean[r], rstd[r], C);
    }
    norm_param_grads(d_w, d_b, d_out, ld_dout, in, ld_in, mean, rstd, rows, C);
}
