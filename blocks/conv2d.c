#include "blocks/conv2d.h"

#include "blocks/linear.h"

#include <string.h>

void conv2d_forward(float *out, const float *in, const float *w, const float *b,
                    const conv2d_shape *s, int B, int H, int W, float *ws)
{
    const int Ho = conv2d_out_size(s, H), Wo = conv2d_out_size(s, W);
    const int K = s->k, Cin = s->cin;
    const size_t kcols = (size_t)Cin * K * K; /* im2col columns, ordered (cin, kh, kw) as w */
    const size_t rows = (size_t)B * Ho * Wo;
    for (size_t r0 = 0; r0 < rows; r0 += CONV2D_CHUNK_ROWS) {
        size_t m = rows - r0 < CONV2D_CHUNK_ROWS ? rows - r0 : CONV2D_CHUNK_ROWS;
#pragma omp parallel for schedule(static) if (m * kcols > 65536)
        for (size_t i = 0; i < m; i++) {
            size_t r = r0 + i;
            int ow = (int)(r % (size_t)Wo);
            int oh = (int)((r / (size_t)Wo) % (size_t)Ho);
            int bb = (int)(r / ((size_t)Wo * Ho));
            float *col = ws + i * kcols;
            for (int kh = 0; kh < K; kh++) {
                int ih = oh * s->stride - s->pad + kh;
                for (int kw = 0; kw < K; kw++) {
                    int iw = ow * s->stride - s->pad + kw;
                    float *dst = col + kh * K + kw;
                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) {
                        for (int c = 0; c < Cin; c++)
                            dst[(size_t)c * K * K] = 0.0f;
                    } else {
                        const float *src = in + (((size_t)bb * H + ih) * W + iw) * Cin;
                        for (int c = 0; c < Cin; c++)
                            dst[(size_t)c * K * K] = src[c];
                    }
                }
            }
        }
        linear_forward(out + r0 * s->cout, (size_t)s->cout, ws, kcols, w, b, m, (int)kcols,
                       s->cout, 0);
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
