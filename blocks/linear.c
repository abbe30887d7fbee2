#include "blocks/linear.h"

#include <cblas.h>
#include <string.h>

/* OpenBLAS takes int dimensions; split taller matrices into row chunks. */
#define LINEAR_MAX_ROWS ((size_t)1 << 28)

void linear_forward(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w,
                    const float *b, size_t rows, int in_f, int out_f, int accumulate)
{
    if (b) {
#pragma omp parallel for schedule(static) if (rows * (size_t)out_f > 65536)
        for (size_t r = 0; r < rows; r++) {
            float *y = out + r * ld_out;
            if (accumulate)
                for (int j = 0; j < out_f; j++)
                    y[j] += b[j];
            else
                memcpy(y, b, (size_t)out_f * sizeof *y);
        }
    }
    float beta = (b || accumulate) ? 1.0f : 0.0f;
    for (size_t r0 = 0; r0 < rows; r0 += LINEAR_MAX_ROWS) {
        size_t m = rows - r0 < LINEAR_MAX_ROWS ? rows - r0 : LINEAR_MAX_ROWS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, out_f, in_f, 1.0f,
                    in + r0 * ld_in, (int)ld_in, w, in_f, beta, out + r0 * ld_out, (int)ld_out);
    }
}
