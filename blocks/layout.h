/* Moving rows around: row copies, scaling, and the grid transposes of the
 * skeletons (NCHW images to channels-last, VMamba's 2x2 patch merging, Vim's
 * class token insertion with the position embedding). Contracts in
 * blocks/backend.h; CPU here (layout.c), CUDA in layout.cu. */
#ifndef MIXERLAB_LAYOUT_H
#define MIXERLAB_LAYOUT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

void copy_rows(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows);
void scale_forward(float *x, size_t n, float s);
void nchw_to_nhwc(float *out, const float *in, int B, int C, int H, int W);
void merge_2x2(float *out, const float *x, int B, int h, int w, int C);
void insert_token(float *out, const float *in, const float *tok, const float *pos, int B, size_t L, size_t at,
                  int C);

/* out (B, L, C) = table[tok] (+ pos (L, C) when not NULL): the sequence skeleton's token embedding;
 * tok holds B·L token ids as floats (exact below 2^24), clamped into 0..V-1. */
void embed(float *out, const float *tok, const float *table, const float *pos, int B, size_t L, int V, int C);

/* The backwards (contracts in blocks/backend.h), each accumulating into its gradient:
 * copy_rows: d_src rows += d_dst rows; scale: d_x += s·d_y; merge_2x2: each input pixel's gradient is
 * its slot of the merged output (an odd last row or column gets none); insert_token: d_in gets every
 * token but the inserted one, d_tok the sum over the batch at position `at`, d_pos the sum over the
 * batch at every position (summed in batch order). */
void copy_rows_backward(float *d_src, size_t ld_dsrc, const float *d_dst, size_t ld_ddst, size_t n, size_t rows);
void scale_backward(float *d_x, const float *d_y, size_t n, float s);
void merge_2x2_backward(float *d_x, const float *d_out, int B, int h, int w, int C);
void insert_token_backward(float *d_in, float *d_tok, float *d_pos, const float *d_out, int B, size_t L, size_t at,
                           int C);
/* embed: d_table's row of each token += that position's gradient, d_pos += the sum over the batch; rows in
 * order (a fixed order where tokens repeat). Either gradient may be NULL. */
void embed_backward(float *d_table, float *d_pos, const float *d_out, const float *tok, int B, size_t L, int V,
                    int C);

/* The CUDA kernels (layout.cu), on device pointers. */
void copy_rows_cuda(float *dst, size_t ld_dst, const float *src, size_t ld_src, size_t n, size_t rows);
void scale_cuda(float *x, size_t n, float s);
void nchw_to_nhwc_cuda(float *out, const float *in, int B, int C, int H, int W);
void merge_2x2_cuda(float *out, const float *x, int B, int h, int w, int C);
void insert_token_cuda(float *out, const float *in, const float *tok, const float *pos, int B, size_t L, size_t at,
                       int C);
void embed_cuda(float *out, const float *tok, const float *table, const float *pos, int B, size_t L, int V, int C);

#ifdef __cplusplus
}
#endif

#endif
