/* Shared vocabulary of blocks/: parameter descriptions, MAC conventions,
 * backends, and the small enums the ops take. Activations are float32,
 * channels-last (B,H,W,C). */
#ifndef MIXERLAB_TENSOR_H
#define MIXERLAB_TENSOR_H

#include "base/common.h"

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4
#define PARAM_NAME_MAX 96

/* How a parameter is initialised when no checkpoint is loaded (timm's rules
 * for MambaOut: conv/linear weights trunc_normal(std .02), biases 0, norm
 * weights 1 and biases 0; anything else is filled by its mixer's init). */
typedef enum {
    PARAM_INIT_TRUNC_NORMAL = 0,
    PARAM_INIT_ZEROS,
    PARAM_INIT_ONES,
    PARAM_INIT_CUSTOM,
} param_init;

typedef struct {
    char name[PARAM_NAME_MAX];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    param_init init;
} param_spec;

static inline size_t param_spec_numel(const param_spec *p)
{
    size_t n = 1;
    for (int i = 0; i < p->ndim; i++)
        n *= (size_t)p->shape[i];
    return n;
}

/* fvcore: conv + linear + LayerNorm (5 per element) + attention/scan terms;
 * gemm: conv + linear + attention matmuls only (what PyTorch's FlopCounter
 * reports: no norms, no scan recurrence). */
typedef enum { MACS_FVCORE = 0, MACS_GEMM = 1 } macs_convention;

/* How the selective scan is counted, per direction (README, "MAC conventions"):
 * gu:         9·L·E·N + L·E, plus conv1d / x_proj / dt_proj of every direction;
 * localmamba: 5·L·E·N + 2·L·E, conv1d / x_proj / dt_proj counted once per layer;
 * vim:        4·L·E·N (Vim's Eq. 8), plus the projections of every direction. */
typedef enum { SCAN_GU = 0, SCAN_LOCALMAMBA = 1, SCAN_VIM = 2 } scan_convention;

typedef struct {
    macs_convention convention;
    scan_convention scan;
} macs_opts;

static inline const char *macs_convention_name(macs_convention c)
{
    return c == MACS_GEMM ? "gemm" : "fvcore";
}

static inline const char *scan_convention_name(scan_convention s)
{
    return s == SCAN_LOCALMAMBA ? "localmamba" : s == SCAN_VIM ? "vim" : "gu";
}

typedef enum { BACKEND_CPU = 1u << 0, BACKEND_CUDA = 1u << 1 } backend_flags;

/* The norms the skeletons use. */
typedef enum { NORM_LAYER = 0, NORM_RMS = 1 } norm_kind;

static inline const char *norm_kind_name(norm_kind k) { return k == NORM_RMS ? "rmsnorm" : "layernorm"; }

/* Order a scan direction walks the (H, W) grid in; its output lands in raster order. */
typedef enum { SSM_ROW_MAJOR = 0, SSM_COL_MAJOR = 1 } ssm_order;

#endif
