#include "blocks/conv2d.h"

#include "blocks/linear.h"
#include "base/common.h"

#include <cblas.h>
#include <omp.h>
#include <string.h>

/* Eight output channels in one vector register (GCC/Clang vector extension,
 * as in dwconv.c: one AVX register in the AVX2 clone). */
typedef float v8f __attribute__((vector_size(32)));
#define LOAD8(v, p) memcpy(&(v), (p), sizeof(v8f))
#define CONV2D_TILE 4 /* output pixels per register tile (direct_tile24/8 name them) */

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

/* The direct kernel, for convs whose im2col rows are too short for an SGEMM
 * (the MambaOut stem's first conv: Cin·K·K = 27, Cout = C0/2): weights
 * repacked as wt[(kh·K + kw)·Cin + ci][Cp] (Cout padded with zeros to Cp, a
 * multiple of 8) and bias as bp[Cp], so one output pixel is a sum of
 * broadcast input values times weight vectors. A tile of CONV2D_TILE pixels
 * shares each weight load; 24 channels (or 8, for the rest) go at once, in
 * named accumulators: an indexed array of them was spilled to the stack. */
#define TILE_BEGIN(co0)                                                                                  \
    const int K = s->k, Cin = s->cin, KC = K * Cin;                                                       \
    const float *src0, *src1, *src2, *src3;                                                               \
    (void)K;                                                                                              \
    for (int kh = kh0; kh <= kh1; kh++) {                                                                 \
        const float *row = in_img + (size_t)(oh * s->stride - s->pad + kh) * W * Cin;                     \
        const float *wk = wt + (size_t)kh * KC * Cp + (co0);                                              \
        /* pixels past np repeat pixel 0: computed, never stored */                                       \
        src0 = row + (ptrdiff_t)(ow0 * s->stride - s->pad) * Cin;                                         \
        src1 = np > 1 ? src0 + (ptrdiff_t)s->stride * Cin : src0;                                         \
        src2 = np > 2 ? src0 + (ptrdiff_t)2 * s->stride * Cin : src0;                                     \
        src3 = np > 3 ? src0 + (ptrdiff_t)3 * s->stride * Cin : src0;                                     \
        for (int j = 0; j < KC; j++, wk += Cp) {                                                          \
            const float x0 = src0[j], x1 = src1[j], x2 = src2[j], x3 = src3[j];

#define TILE_END                                                                                         \
        }                                                                                                 \
    }

/* always_inline: in a Debug build a v8f passed by value from the AVX2 clone to a
 * function compiled for the default target arrives garbled (different ABIs). */
static inline __attribute__((always_inline)) void store_px(float *orow, int Cout, int ow, int c, v8f a)
{
    int n = Cout - c < 8 ? Cout - c : 8;
    if (n > 0)
        memcpy(orow + (size_t)ow * Cout + c, &a, (size_t)n * sizeof(float));
}

static inline __attribute__((always_inline)) void direct_tile24(float *orow, const float *in_img, const float *wt,
                                                                const float *bp, const conv2d_shape *s, int W,
                                                                int Cout, int Cp, int oh, int ow0, int np, int kh0,
                                                                int kh1, int co0)
{
    v8f b0, b1, b2, w0, w1, w2;
    LOAD8(b0, bp + co0), LOAD8(b1, bp + co0 + 8), LOAD8(b2, bp + co0 + 16);
    v8f a00 = b0, a01 = b1, a02 = b2, a10 = b0, a11 = b1, a12 = b2;
    v8f a20 = b0, a21 = b1, a22 = b2, a30 = b0, a31 = b1, a32 = b2;
    TILE_BEGIN(co0)
    LOAD8(w0, wk), LOAD8(w1, wk + 8), LOAD8(w2, wk + 16);
    a00 += x0 * w0, a01 += x0 * w1, a02 += x0 * w2;
    a10 += x1 * w0, a11 += x1 * w1, a12 += x1 * w2;
    a20 += x2 * w0, a21 += x2 * w1, a22 += x2 * w2;
    a30 += x3 * w0, a31 += x3 * w1, a32 += x3 * w2;
    TILE_END
    const v8f acc[4][3] = {{a00, a01, a02}, {a10, a11, a12}, {a20, a21, a22}, {a30, a31, a32}};
    for (int q = 0; q < np; q++)
        for (int v = 0; v < 3; v++)
            store_px(orow, Cout, ow0 + q, co0 + 8 * v, acc[q][v]);
}

static inline __attribute__((always_inline)) void direct_tile8(float *orow, const float *in_img, const float *wt,
                                                               const float *bp, const conv2d_shape *s, int W,
                                                               int Cout, int Cp, int oh, int ow0, int np, int kh0,
                                                               int kh1, int co0)
{
    v8f w0;
    LOAD8(w0, bp + co0);
    v8f a0 = w0, a1 = w0, a2 = w0, a3 = w0;
    TILE_BEGIN(co0)
    LOAD8(w0, wk);
    a0 += x0 * w0, a1 += x1 * w0, a2 += x2 * w0, a3 += x3 * w0;
    TILE_END
    const v8f acc[4] = {a0, a1, a2, a3};
    for (int q = 0; q < np; q++)
        store_px(orow, Cout, ow0 + q, co0, acc[q]);
}

/* One output pixel with some taps outside the image: taps checked one by one. */
static void direct_edge(float *orow, const float *in_img, const float *wt, const float *bp, const conv2d_shape *s,
                        int H, int W, int Cout, int Cp, int oh, int ow)
{
    const int K = s->k, Cin = s->cin;
    for (int c = 0; c < Cp; c += 8) {
        v8f acc, w;
        LOAD8(acc, bp + c);
        for (int kh = 0; kh < K; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= H)
                continue;
            for (int kw = 0; kw < K; kw++) {
                int iw = ow * s->stride - s->pad + kw;
                if (iw < 0 || iw >= W)
                    continue;
                const float *x = in_img + ((size_t)ih * W + iw) * Cin;
                for (int ci = 0; ci < Cin; ci++) {
                    LOAD8(w, wt + ((size_t)(kh * K + kw) * Cin + ci) * Cp + c);
                    acc += x[ci] * w;
                }
            }
        }
        int n = Cout - c < 8 ? Cout - c : 8;
        memcpy(orow + (size_t)ow * Cout + c, &acc, (size_t)n * sizeof(float));
    }
}

ML_CLONES static void direct_row(float *orow, const float *in_img, const float *wt, const float *bp,
                                 const conv2d_shape *s, int H, int W, int Cout, int Cp, int oh, int Wo)
{
    const int K = s->k;
    const int kh0 = s->pad - oh * s->stride > 0 ? s->pad - oh * s->stride : 0;
    const int kh1 = H - 1 - oh * s->stride + s->pad < K - 1 ? H - 1 - oh * s->stride + s->pad : K - 1;
    int ow = 0;
    while (ow < Wo) {
        /* pixels whose K columns all lie inside the image, up to a tile */
        int np = 0;
        while (np < CONV2D_TILE && ow + np < Wo && (ow + np) * s->stride - s->pad >= 0 &&
               (ow + np) * s->stride - s->pad + K - 1 <= W - 1)
            np++;
        if (np == 0) {
            direct_edge(orow, in_img, wt, bp, s, H, W, Cout, Cp, oh, ow);
            ow++;
            continue;
        }
        int co = 0;
        for (; co + 24 <= Cp; co += 24)
            direct_tile24(orow, in_img, wt, bp, s, W, Cout, Cp, oh, ow, np, kh0, kh1, co);
        for (; co < Cp; co += 8)
            direct_tile8(orow, in_img, wt, bp, s, W, Cout, Cp, oh, ow, np, kh0, kh1, co);
        ow += np;
    }
}

static void conv2d_direct(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s,
                          int B, int H, int W, float *ws, int threads)
{
    const int Ho = conv2d_out_size(s, H), Wo = conv2d_out_size(s, W);
    const int K = s->k, Cin = s->cin, Cout = s->cout, Cp = conv2d_direct_cp(s);
    const size_t kcols = (size_t)Cin * K * K;
    float *wt = ws, *bp = ws + kcols * Cp;
    memset(ws, 0, (kcols + 1) * Cp * sizeof *ws);
    for (int co = 0; co < Cout; co++) {
        for (int ci = 0; ci < Cin; ci++)
            for (int k = 0; k < K * K; k++)
                wt[((size_t)k * Cin + ci) * Cp + co] = w[((size_t)co * Cin + ci) * K * K + k];
        bp[co] = b ? b[co] : 0.0f;
    }
#pragma omp parallel for collapse(2) schedule(static) num_threads(threads) \
    if ((size_t)B * Ho * Wo * kcols * (size_t)Cp > 262144)
    for (int bb = 0; bb < B; bb++)
        for (int oh = 0; oh < Ho; oh++)
            direct_row(out + ((size_t)bb * Ho + oh) * Wo * Cout, in + (size_t)bb * H * W * Cin, wt, bp, s, H, W,
                       Cout, Cp, oh, Wo);
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
    if (conv2d_is_direct(s)) {
        conv2d_direct(out, in, w, b, s, B, H, W, ws, threads);
        return;
    }
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

/* ---- backward ---- */

/* d_in += col2im(dcol) for output pixels r0 .. r0+m-1, input channels ci0 .. ci1-1: the adjoint of
 * im2col_rows, taps outside the image dropped. */
static void col2im_add(float *d_in, const float *dcol, const conv2d_shape *s, int H, int W, int Ho, int Wo,
                       size_t r0, size_t m, int ci0, int ci1)
{
    const int K = s->k, Cin = s->cin;
    const size_t kcols = (size_t)Cin * K * K;
    for (size_t i = 0; i < m; i++) {
        const size_t r = r0 + i;
        const int ow = (int)(r % (size_t)Wo), oh = (int)((r / (size_t)Wo) % (size_t)Ho);
        const int bb = (int)(r / ((size_t)Wo * Ho));
        const float *c = dcol + i * kcols;
        for (int kh = 0; kh < K; kh++) {
            const int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= H)
                continue;
            for (int kw = 0; kw < K; kw++) {
                const int iw = ow * s->stride - s->pad + kw;
                if (iw < 0 || iw >= W)
                    continue;
                float *dst = d_in + (((size_t)bb * H + ih) * W + iw) * Cin;
                const float *src = c + kh * K + kw;
                for (int ci = ci0; ci < ci1; ci++)
                    dst[ci] += src[(size_t)ci * K * K];
            }
        }
    }
}

void conv2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out, const float *in, const float *w,
                     const conv2d_shape *s, int B, int H, int W, float *ws, size_t ws_floats, int threads)
{
    const int Ho = conv2d_out_size(s, H), Wo = conv2d_out_size(s, W), Cout = s->cout;
    const size_t kcols = (size_t)s->cin * s->k * s->k, rows = (size_t)B * Ho * Wo;
    size_t chunk = ws_floats / (2 * kcols);
    ML_ASSERT(chunk >= 1);
    chunk = chunk < CONV2D_BWD_CHUNK_ROWS ? chunk : CONV2D_BWD_CHUNK_ROWS;
    if (threads < 1)
        threads = 1;
    float *col = ws, *dcol = ws + chunk * kcols;
    for (size_t r0 = 0; r0 < rows && (d_w || d_in); r0 += chunk) {
        const size_t m = rows - r0 < chunk ? rows - r0 : chunk;
        const float *dy = d_out + r0 * Cout;
        if (d_w) {
#pragma omp parallel num_threads(threads) if (m * kcols > 16384)
            {
                size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
                size_t i0 = m * t / nt, i1 = m * (t + 1) / nt;
                if (i1 > i0)
                    im2col_rows(col + i0 * kcols, in, s, H, W, Ho, Wo, r0 + i0, i1 - i0);
            }
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Cout, (int)kcols, (int)m, 1.0f, dy, Cout, col,
                        (int)kcols, 1.0f, d_w, (int)kcols);
        }
        if (d_in) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)kcols, Cout, 1.0f, dy, Cout, w,
                        (int)kcols, 0.0f, dcol, (int)kcols);
            /* channels are disjoint in d_in: each thread scatters its own, every tap in pixel order */
#pragma omp parallel num_threads(threads) if (m * kcols > 16384)
            {
                int t = omp_get_thread_num(), nt = omp_get_num_threads();
                int ci0 = (int)((long)s->cin * t / nt), ci1 = (int)((long)s->cin * (t + 1) / nt);
                if (ci1 > ci0)
                    col2im_add(d_in, dcol, s, H, W, Ho, Wo, r0, m, ci0, ci1);
            }
        }
    }
    if (d_b)
        column_sums_add(d_b, d_out, (size_t)Cout, rows, Cout);
}
