#include "blocks/linear.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* OpenBLAS takes int dimensions; split taller matrices into row chunks. */
#define LINEAR_THIN_ROWS 256
#define LINEAR_MAX_ROWS ((size_t)1 << 28)

/* out[r, j] = b[j] (or += b[j] when accumulating) for columns n0 .. n1-1. */
static void bias_rows(float *out, size_t ld_out, const float *b, size_t rows, int n0, int n1, int accumulate)
{
    for (size_t r = 0; r < rows; r++) {
        float *y = out + r * ld_out;
        if (accumulate)
            for (int j = n0; j < n1; j++)
                y[j] += b[j];
        else
            memcpy(y + n0, b + n0, (size_t)(n1 - n0) * sizeof *y);
    }
}

void linear_forward(float *out, size_t ld_out, const float *in, size_t ld_in, const float *w,
                    const float *b, size_t rows, int in_f, int out_f, int accumulate)
{
    float beta = (b || accumulate) ? 1.0f : 0.0f;
    /* Few rows: BLAS would pack the whole weight matrix for a thin product.
     * Split the output columns across threads instead, so each thread packs
     * and reads only its slice of the weights (and writes its slice of the
     * bias: no region of its own, and none run by one thread alone). */
    const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads > 1 && rows <= LINEAR_THIN_ROWS && out_f >= 32 * threads) {
#pragma omp parallel num_threads(threads)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int n0 = (int)((long)out_f * t / nt), n1 = (int)((long)out_f * (t + 1) / nt);
            if (n1 > n0) {
                if (b)
                    bias_rows(out, ld_out, b, rows, n0, n1, accumulate);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, n1 - n0, in_f, 1.0f, in,
                            (int)ld_in, w + (size_t)n0 * in_f, in_f, beta, out + n0, (int)ld_out);
            }
        }
        return;
    }
    if (b) {
#pragma omp parallel for schedule(static) if (rows * (size_t)out_f > 65536)
        for (size_t r = 0; r < rows; r++)
            bias_rows(out + r * ld_out, ld_out, b, 1, 0, out_f, accumulate);
    }
    for (size_t r0 = 0; r0 < rows; r0 += LINEAR_MAX_ROWS) {
        size_t m = rows - r0 < LINEAR_MAX_ROWS ? rows - r0 : LINEAR_MAX_ROWS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, out_f, in_f, 1.0f,
                    in + r0 * ld_in, (int)ld_in, w, in_f, beta, out + r0 * ld_out, (int)ld_out);
    }
}

/* ---- backward ---- */

#define COLSUM_BLOCK 16
#define COLSUM_CHUNK 32

void column_sums_add(float *d_b, const float *x, size_t ld, size_t rows, int n)
{
    const int nblk = (n + COLSUM_BLOCK - 1) / COLSUM_BLOCK;
#pragma omp parallel for schedule(static) if (rows * (size_t)n > 65536)
    for (int k = 0; k < nblk; k++) {
        const int c0 = k * COLSUM_BLOCK, nc = n - c0 < COLSUM_BLOCK ? n - c0 : COLSUM_BLOCK;
        /* float partial sums over chunks of COLSUM_CHUNK rows (vector adds), the chunks into doubles:
         * a fixed order, whatever the thread count */
        double s[COLSUM_BLOCK] = {0};
        for (size_t r0 = 0; r0 < rows; r0 += COLSUM_CHUNK) {
            const size_t r1 = rows - r0 < COLSUM_CHUNK ? rows : r0 + COLSUM_CHUNK;
            float p[COLSUM_BLOCK] = {0};
            if (nc == COLSUM_BLOCK)
                for (size_t r = r0; r < r1; r++)
                    for (int j = 0; j < COLSUM_BLOCK; j++)
                        p[j] += x[r * ld + c0 + j];
            else
                for (size_t r = r0; r < r1; r++)
                    for (int j = 0; j < nc; j++)
                        p[j] += x[r * ld + c0 + j];
            for (int j = 0; j < nc; j++)
                s[j] += p[j];
        }
        for (int j = 0; j < nc; j++)
            d_b[c0 + j] += (float)s[j];
    }
}

void linear_backward(float *d_in, size_t ld_din, float *d_w, float *d_b, const float *d_out, size_t ld_dout,
                     const float *in, size_t ld_in, const float *w, size_t rows, int in_f, int out_f)
{
    if (rows == 0)
        return;
    for (size_t r0 = 0; r0 < rows; r0 += LINEAR_MAX_ROWS) {
        const size_t m = rows - r0 < LINEAR_MAX_ROWS ? rows - r0 : LINEAR_MAX_ROWS;
        const float *dy = d_out + r0 * ld_dout;
        if (d_in)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, in_f, out_f, 1.0f, dy, (int)ld_dout, w,
                        in_f, 1.0f, d_in + r0 * ld_din, (int)ld_din);
        if (d_w)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out_f, in_f, (int)m, 1.0f, dy, (int)ld_dout,
                        in + r0 * ld_in, (int)ld_in, 1.0f, d_w, in_f);
    }
    if (d_b)
        column_sums_add(d_b, d_out, ld_dout, rows, out_f);
}
