#include "blocks/conv2d.h"

#include "blocks/linear.h"

#include <omp.h>
#include <string.h>

/* col (m, Cin·K·K), columns ordered (cin, kh, kw) like w, for output pixels r0 .. r0+m-1. */
static void im2col_rows(float *col, const float *in, const conv2d_shape *s, int H, int W, int Ho,
                        int Wo, size_t r0, size_t m)
{
    const int K = s->k, Cin = s->cin;
    const size_t kcols = (size_t)Cin * K * K;
    for (size_t i = 0; i < m; i++) {
        size_t r = r0 + i;
        int ow = (int)(r % (size_t)Wo);
        int oh = (int)((r / (size_t)Wo) % (size_t)Ho);
        int bb = (int)(r / ((size_t)Wo * Ho));
        float *c = col + i * kcols;
        for (int kh = 0; kh < K; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            for (int kw = 0; kw < K; kw++) {
                int iw = ow * s->stride - s->pad + kw;
                float *dst = c + kh * K + kw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                    for (int ci = 0; ci < Cin; ci++)
                        dst[(size_t)ci * K * K] = 0.0f;
                } else {
                    const float *src = in + (((size_t)bb * H + ih) * W + iw) * Cin;
                    for (int ci = 0; ci < Cin; ci++)
                        dst[(size_t)ci * K * K] = src[ci];
                }
            }
        }
    }
}

void conv2d_forward(float *out, const float *in, const float *w, const float *b,
                    const conv2d_shape *s, int B, int H, int W, float *ws, int threads)
{
    const int Ho = conv2d_out_size(s, H), Wo = conv2d_out_size(s, W);
    const size_t kcols = (size_t)s->cin * s->k * s->k;
    const size_t rows = (size_t)B * Ho * Wo;
    const size_t nchunks = (rows + CONV2D_CHUNK_ROWS - 1) / CONV2D_CHUNK_ROWS;
    if (threads < 1)
        threads = 1;
    if (nchunks >= 2 * (size_t)threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t q = 0; q < nchunks; q++) {
            size_t r0 = q * CONV2D_CHUNK_ROWS, m = rows - r0 < CONV2D_CHUNK_ROWS ? rows - r0 : CONV2D_CHUNK_ROWS;
            float *col = ws + (size_t)omp_get_thread_num() * CONV2D_CHUNK_ROWS * kcols;
            im2col_rows(col, in, s, H, W, Ho, Wo, r0, m);
            linear_forward(out + r0 * s->cout, (size_t)s->cout, col, kcols, w, b, m, (int)kcols, s->cout, 0);
        }
        return;
    }
    /* Fewer chunks than two per thread (the downsampling convs of small grids):
     * the chunks one after another, each im2col and SGEMM threaded on its own.
     * Not inside an inactive parallel region: omp_in_parallel() is false there,
     * and the thin SGEMM's region, nested, started a fresh thread at every call. */
    for (size_t q = 0; q < nchunks; q++) {
        size_t r0 = q * CONV2D_CHUNK_ROWS, m = rows - r0 < CONV2D_CHUNK_ROWS ? rows - r0 : CONV2D_CHUNK_ROWS;
#pragma omp parallel num_threads(threads) if (m * kcols > 16384)
        {
            size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
            size_t i0 = m * t / nt, i1 = m * (t + 1) / nt;
            if (i1 > i0)
                im2col_rows(ws + i0 * kcols, in, s, H, W, Ho, Wo, r0 + i0, i1 - i0);
        }
        linear_forward(out + r0 * s->cout, (size_t)s->cout, ws, kcols, w, b, m, (int)kcols, s->cout, 0);
    }
}

void nchw_to_nhwc(float *out, const float *in, int B, int C, int H, int W)
{
    const size_t hw = (size_t)H * W;
#pragma omp parallel for schedule(static) if ((size_t)B * hw * C > 65536)
    for (size_t p = 0; p < (size_t)B * hw; p++) {
        size_t bb = p / hw, q = p % hw;
        const float *src = in + bb * (size_t)C * hw + q;
        float *dst = out + p * (size_t)C;
        for (int c = 0; c < C; c++)
            dst[c] = src[(size_t)c * hw];
    }
}
