#include "blocks/layout.h"

#include <string.h>

void copy_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows)
{
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (size_t r = 0; r < rows; r++)
        memmove(dst + r * ld_dst, src + r * ld_src, n * sizeof *dst);
}

void scale_forward(float *x, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
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

void merge_2x2(float *out, const float *x, int B, int h, int w, int C)
{
    const int ho = h / 2, wo = w / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * ho * wo * C > 65536)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                float *o = out + (((size_t)b * ho + i) * wo + j) * 4 * C;
                const int di[4] = {0, 1, 0, 1}, dj[4] = {0, 0, 1, 1};
                for (int q = 0; q < 4; q++)
                    memcpy(o + (size_t)q * C, x + (((size_t)b * h + 2 * i + di[q]) * w + 2 * j + dj[q]) * C,
                           (size_t)C * sizeof *o);
            }
}

void insert_token(float *out, const float *in, const float *tok, const float *pos, int B, size_t L, size_t at,
                  int C)
{
    const size_t seq = L + 1;
    for (int b = 0; b < B; b++)
        for (size_t t = 0; t < seq; t++) {
            const float *src = t == at ? tok : in + ((size_t)b * L + (t < at ? t : t - 1)) * C;
            float *o = out + ((size_t)b * seq + t) * C;
            for (int c = 0; c < C; c++)
                o[c] = src[c] + pos[t * C + c];
        }
}

/* A token id stored as a float, clamped into 0..V-1 (the datasets only make valid ids; a clamp keeps
 * a bad one from reading outside the table). */
static size_t token_row(float t, int V)
{
    const long id = (long)t;
    return (size_t)(t >= 0 && id < V ? id : t < 0 ? 0 : V - 1);
}

void embed(float *out, const float *tok, const float *table, const float *pos, int B, size_t L, int V, int C)
{
#pragma omp parallel for schedule(static) if ((size_t)B * L * C > 65536)
    for (size_t r = 0; r < (size_t)B * L; r++) {
        const float *e = table + token_row(tok[r], V) * C, *p = pos ? pos + (r % L) * C : NULL;
        float *o = out + r * C;
        for (int c = 0; c < C; c++)
            o[c] = p ? e[c] + p[c] : e[c];
    }
}

/* ---- backward ---- */

void copy_rows_backward(float *d_src, size_t ld_dsrc, const float *d_dst, size_t ld_ddst, size_t n, size_t rows)
{
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (size_t r = 0; r < rows; r++) {
        float *d = d_src + r * ld_dsrc;
        const float *s = d_dst + r * ld_ddst;
        for (size_t i = 0; i < n; i++)
            d[i] += s[i];
    }
}

void scale_backward(float *d_x, const float *d_y, size_t n, float s)
{
    for (size_t i = 0; i < n; i++)
        d_x[i] += s * d_y[i];
}

void merge_2x2_backward(float *d_x, const float *d_out, int B, int h, int w, int C)
{
    const int ho = h / 2, wo = w / 2;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)B * ho * wo * C > 65536)
    for (int b = 0; b < B; b++)
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                const float *o = d_out + (((size_t)b * ho + i) * wo + j) * 4 * C;
                const int di[4] = {0, 1, 0, 1}, dj[4] = {0, 0, 1, 1};
                for (int q = 0; q < 4; q++) {
                    float *x = d_x + (((size_t)b * h + 2 * i + di[q]) * w + 2 * j + dj[q]) * C;
                    for (int c = 0; c < C; c++)
                        x[c] += o[(size_t)q * C + c];
                }
            }
}

void embed_backward(float *d_table, float *d_pos, const float *d_out, const float *tok, int B, size_t L, int V,
                    int C)
{
    /* rows in order, one thread: several rows may hit one table row, and the sums must not depend on
     * timing (B·L·C additions: small beside the blocks) */
    for (size_t r = 0; r < (size_t)B * L; r++) {
        const float *g = d_out + r * C;
        if (d_table) {
            float *d = d_table + token_row(tok[r], V) * C;
            for (int c = 0; c < C; c++)
                d[c] += g[c];
        }
        if (d_pos) {
            float *d = d_pos + (r % L) * C;
            for (int c = 0; c < C; c++)
                d[c] += g[c];
        }
    }
}

void insert_token_backward(float *d_in, float *d_tok, float *d_pos, const float *d_out, int B, size_t L, size_t at,
                           int C)
{
    const size_t seq = L + 1;
    /* one token position per iteration: its d_pos row is summed over the batch in order */
#pragma omp parallel for schedule(static) if ((size_t)B * seq * C > 65536)
    for (size_t t = 0; t < seq; t++) {
        for (int b = 0; b < B; b++) {
            const float *g = d_out + ((size_t)b * seq + t) * C;
            if (d_pos)
                for (int c = 0; c < C; c++)
                    d_pos[t * C + c] += g[c];
            if (t == at) {
                if (d_tok)
                    for (int c = 0; c < C; c++)
                        d_tok[c] += g[c];
            } else if (d_in) {
                float *d = d_in + ((size_t)b * L + (t < at ? t : t - 1)) * C;
                for (int c = 0; c < C; c++)
                    d[c] += g[c];
            }
        }
    }
}
