/* Activations. The scalar forms are the reference (and what other backends
 * restate); act_forward is the vectorised CPU path (act_simd.c): a fitted
 * erfc for GELU, 16 lanes at a time with AVX-512F or 8 with AVX2, and SLEEF's
 * 1-ulp expf for SiLU with AVX2; the scalar forms otherwise. Softplus (the
 * scan's Δ) runs vmath.h's eight-lane form. */
#ifndef MIXERLAB_ACT_H
#define MIXERLAB_ACT_H

#include <math.h>
#include <stddef.h>

#include "base/common.h"

typedef enum { ACT_GELU = 0, ACT_SILU = 1, ACT_SOFTPLUS = 2 } act_kind;

/* Exact erf GELU, as torch.nn.GELU() (approximate='none'). */
ML_HD static inline float act_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
ML_HD static inline float act_silu(float x) { return x / (1.0f + expf(-x)); }
/* Mamba's softplus: x above 20 passes through. */
ML_HD static inline float act_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }
ML_HD static inline float act_apply(act_kind k, float x)
{
    return k == ACT_SILU ? act_silu(x) : k == ACT_SOFTPLUS ? act_softplus(x) : act_gelu(x);
}
/* act'(x), the backward's factor: GELU' = Φ(x) + x·φ(x) (Φ through erfc, so no cancellation for
 * negative x), SiLU' = s·(1 + x·(1 − s)) with s = sigmoid(x) (1 − s taken as e^−x·s), softplus' = sigmoid(x) below the
 * threshold and 1 above it. */
ML_HD static inline float act_grad(act_kind k, float x)
{
    if (k == ACT_SILU) { /* 1 − s = e·s with e = exp(−x): no cancellation for large x (e capped: no inf·0) */
        const float e = fminf(expf(-x), 1e30f), s = 1.0f / (1.0f + e);
        return s * (1.0f + x * (e * s));
    }
    if (k == ACT_SOFTPLUS)
        return x > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-x));
    return 0.5f * erfcf(-x * 0.70710678118654752440f) + x * 0.39894228040143267794f * expf(-0.5f * x * x);
}
static inline const char *act_name(act_kind k) { return k == ACT_SILU ? "silu" : k == ACT_SOFTPLUS ? "softplus" : "gelu"; }

/* out[i] = act(in[i]) for one row; out may alias in. Single-threaded. */
void act_row(float *out, const float *in, size_t n, act_kind k);

/* The vector paths act_row chooses from at run time (widest the CPU has). */
typedef enum { ACT_ISA_SCALAR = 0, ACT_ISA_AVX2 = 1, ACT_ISA_AVX512 = 2 } act_isa;
act_isa act_best_isa(void);
/* act_row with its path capped at isa, so that tests can check every path. */
void act_row_isa(float *out, const float *in, size_t n, act_kind k, act_isa isa);
/* out[i] = act'(in[i]) for one row (act_grad's value; GELU and SiLU through the vector paths,
 * GELU' within 5e-6 of |Φ(x)| + |x·φ(x)|), and the same with the path capped, for the tests. */
void act_grad_row(float *out, const float *in, size_t n, act_kind k);
void act_grad_row_isa(float *out, const float *in, size_t n, act_kind k, act_isa isa);
/* The same over a whole tensor, split across threads. */
void act_forward(float *out, const float *in, size_t n, act_kind k);

/* d_in[i] += d_out[i] · act'(in[i]) (contract in blocks/backend.h: act_bwd), split across threads. */
void act_backward(float *d_in, const float *d_out, const float *in, size_t n, act_kind k);

/* The CUDA kernel (act.cu), on device pointers. */
#ifdef __cplusplus
extern "C" {
#endif
void act_forward_cuda(float *out, const float *in, size_t n, act_kind k);
#ifdef __cplusplus
}
#endif

#endif
