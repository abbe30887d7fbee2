/* timm's evaluation transform, pixel for pixel: torchvision's Resize (which
 * calls PIL's Image.resize), CenterCrop, ToTensor and Normalize.
 *
 * The resize is Pillow's (src/libImaging/Resample.c, 8 bits per channel),
 * restated, not a float approximation:
 *   - a separable filter: bilinear (support 1) or bicubic (Keys, a = -0.5,
 *     support 2), widened by scale = in / out when shrinking (antialiasing);
 *   - output pixel x is centred at (x + 0.5)·scale; its taps run from
 *     (int)(centre - support + 0.5) to (int)(centre + support + 0.5),
 *     clamped to the image (no edge replication), weighted by the filter at
 *     (tap - centre + 0.5) / max(scale, 1) and normalised to sum 1, all in
 *     double; then rounded to fixed point with 22 fractional bits (away from 0);
 *   - each output sample: 2^21 + sum of sample × weight, shifted right 22
 *     bits and clipped to 0..255;
 *   - the horizontal pass first, over just the source rows the vertical pass
 *     reads, into an 8-bit intermediate; then the vertical pass. A pass whose
 *     size is unchanged is skipped (so a width-only resize is one horizontal
 *     pass, and an unchanged size a copy).
 * Image.resize's defaults apply as torchvision calls it: no box, no
 * reducing_gap (no Image.reduce pre-step).
 *
 * These functions compute any window of the resized image: every pixel of it
 * equals that pixel of the full resize, so the centre crop never pays for the
 * pixels it throws away. */
#ifndef MIXERLAB_DATA_RESAMPLE_H
#define MIXERLAB_DATA_RESAMPLE_H

#include "base/rng.h"
#include "data/image.h"

typedef enum {
    RESAMPLE_BILINEAR = 0, /* PIL.Image.BILINEAR, timm's "bilinear" */
    RESAMPLE_BICUBIC,      /* PIL.Image.BICUBIC, timm's "bicubic" */
} resample_filter;

/* "bilinear" / "bicubic" (timm's names) to the filter; ML_ERR_USAGE otherwise. */
ml_status resample_parse_filter(resample_filter *out, const char *name);
const char *resample_filter_name(resample_filter f);

/* PIL's im.resize((out_w, out_h), filter). */
ml_status resample_resize_rgb8(image_rgb8 *out, const image_rgb8 *in, size_t out_w, size_t out_h,
                               resample_filter f);

/* The window [x0, x0 + win_w) × [y0, y0 + win_h) of that resize (inside it). */
ml_status resample_resize_window_rgb8(image_rgb8 *out, const image_rgb8 *in, size_t out_w, size_t out_h,
                                      size_t x0, size_t y0, size_t win_w, size_t win_h,
                                      resample_filter f);

/* torchvision's center_crop: an image smaller than the crop is first padded
 * with zeros ((crop - size) // 2 before, the rest after), then the crop starts
 * at int(round((size - crop) / 2)), Python's round: halves go to even. */
ml_status resample_center_crop_rgb8(image_rgb8 *out, const image_rgb8 *in, size_t crop_w, size_t crop_h);

/* timm's transforms_imagenet_eval, crop_mode "center". */
typedef struct {
    size_t size;      /* R: the output is R × R */
    double crop_pct;  /* the shorter side is resized to floor(R / crop_pct) */
    resample_filter interp;
    float mean[3], std[3]; /* Normalize, as float32 (torch's tensors) */
} eval_transform;

/* MambaOut's pretrained cfg at resolution size: crop_pct 1.0, bicubic, the
 * ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225). */
void eval_transform_init(eval_transform *t, size_t size);

/* ML_ERR_USAGE naming the field for a size of 0 or over 65536, a crop_pct that
 * is not a positive finite number or that makes floor(R / crop_pct) 0 or over
 * 65536, a std that is not a positive finite number, a mean that is not finite. */
ml_status eval_transform_check(const eval_transform *t);

/* torchvision Resize(floor(R / crop_pct)) on a w × h image: the shorter side
 * becomes s = floor(R / crop_pct), the longer int(s · long / short); a square
 * stays square. */
ml_status eval_transform_plan(size_t *resize_w, size_t *resize_h, const eval_transform *t, size_t w,
                              size_t h);

/* Resize and centre crop: out is R × R, 8-bit, what torchvision's CenterCrop
 * returns (before ToTensor). */
ml_status eval_transform_rgb8(image_rgb8 *out, const eval_transform *t, const image_rgb8 *in);

/* The whole transform: out_chw [3][R][R] float32, (v / 255 - mean[c]) / std[c]
 * computed as torch does in float32 (ToTensor's division, then Normalize's
 * subtraction and division). */
ml_status eval_transform_chw(float *out_chw, const eval_transform *t, const image_rgb8 *in);

/* ToTensor + Normalize of an 8-bit image: out_chw [3][h][w]. */
void eval_normalize_chw(float *out_chw, const image_rgb8 *img, const float mean[3], const float std[3]);

/* timm's training transform without colour jitter (transforms_imagenet_train): torchvision's
 * RandomResizedCrop(R, scale (0.08, 1), ratio (3/4, 4/3)) -- ten tries at a box of a random area
 * and log-uniform aspect ratio that fits, else the centre box of the clamped ratio -- resized to
 * R × R with t's filter, RandomHorizontalFlip(0.5), ToTensor, Normalize. The draws come from rng
 * (the caller seeds it per image), so the same seed gives the same tensor. */
ml_status train_transform_chw(float *out_chw, const eval_transform *t, const image_rgb8 *in, rng_state *rng);

#endif
