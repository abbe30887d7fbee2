/* Dense 2-D convolution, channels-last in and out, PyTorch weights
 * [Cout, Cin, K, K]: the stem and downsampling convs (3×3, stride 2, pad 1)
 * and patch embeddings (P×P, stride P). Computed as im2col of a chunk of
 * output pixels followed by one SGEMM per chunk, a chunk per thread, so the
 * workspace stays bounded and in cache; convs with very few inputs per output
 * (Cin·K·K <= CONV2D_DIRECT_MAX_COLS) by a direct register-tiled kernel. */
#ifndef MIXERLAB_CONV2D_H
#define MIXERLAB_CONV2D_H

#include <stddef.h>
#include <stdint.h>

#define CONV2D_CHUNK_ROWS 256

typedef struct {
    int cin, cout, k, stride, pad;
} conv2d_shape;

static inline int conv2d_out_size(const conv2d_shape *s, int n)
{
    return (n + 2 * s->pad - s->k) / s->stride + 1;
}

/* Convs with at most this many im2col columns (Cin·K·K) run a direct kernel
 * instead: an SGEMM with K = 27 (the MambaOut stem's first conv) ran at
 * about a quarter of the SGEMM rate. */
#define CONV2D_DIRECT_MAX_COLS 32

static inline int conv2d_is_direct(const conv2d_shape *s)
{
    return (size_t)s->cin * (size_t)s->k * (size_t)s->k <= CONV2D_DIRECT_MAX_COLS;
}

/* Output channels padded to whole vectors of 8, for the direct kernel's weights. */
static inline int conv2d_direct_cp(const conv2d_shape *s) { return (s->cout + 7) / 8 * 8; }

/* Floats of workspace conv2d_forward needs for rows = B·Ho·Wo outputs and up
 * to `threads` threads: im2col chunks, or the direct kernel's repacked weights. */
static inline size_t conv2d_workspace_floats(const conv2d_shape *s, size_t rows, int threads)
{
    if (conv2d_is_direct(s))
        return ((size_t)s->cin * (size_t)s->k * (size_t)s->k + 1) * (size_t)conv2d_direct_cp(s);
    size_t r = rows < CONV2D_CHUNK_ROWS ? rows : CONV2D_CHUNK_ROWS;
    return (size_t)(threads > 0 ? threads : 1) * r * (size_t)s->cin * (size_t)s->k * (size_t)s->k;
}

/* out (B,Ho,Wo,Cout) = conv(in (B,H,W,Cin), w [Cout,Cin,K,K]) + b [Cout]; ws
 * sized by conv2d_workspace_floats for the same `threads`. */
void conv2d_forward(float *out, const float *in, const float *w, const float *b,
                    const conv2d_shape *s, int B, int H, int W, float *ws, int threads);

/* The backward (contract in blocks/backend.h: conv2d_bwd), over chunks of output pixels in order:
 * im2col of the chunk, d_w += d_outᵀ·col (SGEMM, beta 1); d_col = d_out·w (SGEMM) scattered back
 * into d_in by col2im (input channels in parallel, each channel's taps in a fixed order); d_b +=
 * Σ d_out. Any gradient may be NULL. ws of conv2d_backward_workspace_floats(s, rows): the chunk's
 * col and d_col, so at least 2·Cin·K·K floats; the chunk is as many pixels as ws holds, up to
 * CONV2D_BWD_CHUNK_ROWS, so the same ws gives the same summation order. */
#define CONV2D_BWD_CHUNK_ROWS 1024
void conv2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out, const float *in, const float *w,
                     const conv2d_shape *s, int B, int H, int W, float *ws, size_t ws_floats, int threads);

static inline size_t conv2d_backward_workspace_floats(const conv2d_shape *s, size_t rows, int threads)
{
    (void)threads; /* BLAS threads each product; im2col and col2im split inside one chunk */
    const size_t r = rows < CONV2D_BWD_CHUNK_ROWS ? (rows ? rows : 1) : CONV2D_BWD_CHUNK_ROWS;
    return 2 * r * (size_t)s->cin * (size_t)s->k * (size_t)s->k;
}

/* fvcore: B · out_elements · (in/groups) · kh · kw. */
static inline uint64_t conv2d_macs(const conv2d_shape *s, int B, int Ho, int Wo)
{
    return (uint64_t)B * (uint64_t)Ho * (uint64_t)Wo * (uint64_t)s->cout * (uint64_t)s->cin *
           (uint64_t)s->k * (uint64_t)s->k;
}

/* The CUDA kernel (conv2d.cu), on device pointers: im2col in chunks of
 * ws_floats / (Cin·K·K) output pixels, then cuBLAS. */
#ifdef __cplusplus
extern "C" {
#endif
void conv2d_forward_cuda(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s, int B,
                         int H, int W, float *ws, size_t ws_floats);
/* Workspace the CUDA conv is given: im2col of as many output pixels as fit
 * in CONV2D_CUDA_WS_FLOATS (at least one). */
#define CONV2D_CUDA_WS_FLOATS ((size_t)16 << 20)
#ifdef __cplusplus
}
#endif
static inline size_t conv2d_cuda_workspace_floats(const conv2d_shape *s, size_t out_rows)
{
    const size_t kcols = (size_t)s->cin * (size_t)s->k * (size_t)s->k, fit = CONV2D_CUDA_WS_FLOATS / kcols;
    return (out_rows < fit ? out_rows : fit > 0 ? fit : 1) * kcols;
}

#endif
