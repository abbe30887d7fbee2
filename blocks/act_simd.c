/* The vector lanes of act_row, in their own file because they are compiled for
 * AVX2 + FMA (and AVX-512F for the functions marked so); act.c calls them
 * only after a run-time check of the CPU.
 *
 * GELU(x) = x·Φ(x) with z = |x|/√2 and Φ(−|x|) = erfc(z)/2 =: h(z), computed
 * in the form of Numerical Recipes' erfcc:
 *   t = 1/(1 + A·z),   h(z) = t · exp(P(t) − z²)   for z <= 5, and 0 beyond
 * (erfc(5) = 1.5e-12), so Φ(x) is h(z) for negative x and 1 − h(z) for positive
 * x: one polynomial, one division and one exp for both signs, and no
 * cancellation on the negative side, where 1 + erff(x) in float loses most of
 * its bits. P (degree 6) and the exp's polynomial E (degree 5) come from
 * scripts/fit_gelu_erf.py: h within 1.4e-6 relative on [0, 5] evaluated in
 * float32 with FMA, which bounds GELU's relative error for both signs
 * (test_ops measures 2e-6 at worst over [-10, 10], on every path).
 *
 * The kernel is bound by instruction issue, not by arithmetic: on the Zen 4
 * development VM the AVX2 form ran at ~1.1 ns per element and thread (the
 * previous form, a polynomial for erf below z = 1 and exp of a degree-10
 * polynomial above, both evaluated for every lane: 1.2-1.6 ns), the same
 * operations 16 lanes wide at ~0.65 ns. So GELU has an AVX-512F path with
 * the same polynomials, which also handles a row's tail with masked loads.
 * SiLU uses SLEEF's 1-ulp expf over the whole range (AVX2 only). */
#include "blocks/act.h"

#include <immintrin.h>
#include <sleef.h>

size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k);
size_t act_row_avx512(float *out, const float *in, size_t n, act_kind k);
size_t act_grad_row_avx2(float *out, const float *in, size_t n, act_kind k);
size_t act_grad_row_avx512(float *out, const float *in, size_t n, act_kind k);

static const float gelu_a = 0.37f;
static const float gelu_p[7] = {-2.2568052f, 0.95909345f, 0.66625714f, -0.5207078f,
                                1.2877653f,  -1.1417606f, 0.31301132f};
static const float gelu_e[6] = {1.0000001f, 1.0f, 0.4999887f, 0.16666415f, 0.041917533f, 0.00837513f};

static inline __m256 horner(const float *c, int deg, __m256 x)
{
    __m256 r = _mm256_set1_ps(c[deg]);
    for (int i = deg - 1; i >= 0; i--)
        r = _mm256_fmadd_ps(r, x, _mm256_set1_ps(c[i]));
    return r;
}

/* exp(q) for q in [-88, 0]: q = n·ln2 + r (Cody–Waite), exp(r) = E(r), 2^n into the exponent. */
static inline __m256 exp_nonpos(__m256 q)
{
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693145751953125f), ln2_lo = _mm256_set1_ps(1.42860682030941723e-6f);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(q, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, q);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    __m256 p = horner(gelu_e, 5, r);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 gelu8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), zmax = _mm256_set1_ps(5.0f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(0.70710678118654752440f));
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(gelu_a), z, one));
    __m256 q = _mm256_fnmadd_ps(z, z, horner(gelu_p, 6, t)); /* P(t) − z² */
    /* lanes with z > 5 (q below -25, or not finite) are cut to 0 after the exp */
    __m256 h = _mm256_mul_ps(t, exp_nonpos(_mm256_max_ps(q, _mm256_set1_ps(-87.0f))));
    h = _mm256_andnot_ps(_mm256_cmp_ps(z, zmax, _CMP_GT_OQ), h);
    /* Φ = h where x < 0 (sign bit set), 1 − h elsewhere */
    return _mm256_mul_ps(x, _mm256_blendv_ps(_mm256_sub_ps(one, h), h, x));
}

/* GELU'(x) = Φ(x) + x·φ(x): Φ from the same h(z) as gelu8, φ(x) = exp(−z²)/√(2π) (z² = x²/2) from
 * the same exp. No cancellation in either term; their sum crosses zero near x = −0.75, where the
 * error is relative to the terms, not to the sum. */
static inline __m256 gelu_grad8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f), zmax = _mm256_set1_ps(5.0f), lo = _mm256_set1_ps(-87.0f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(0.70710678118654752440f));
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(gelu_a), z, one));
    __m256 q = _mm256_fnmadd_ps(z, z, horner(gelu_p, 6, t));
    __m256 h = _mm256_mul_ps(t, exp_nonpos(_mm256_max_ps(q, lo)));
    h = _mm256_andnot_ps(_mm256_cmp_ps(z, zmax, _CMP_GT_OQ), h);
    __m256 phi = _mm256_mul_ps(_mm256_set1_ps(0.39894228040143267794f),
                               exp_nonpos(_mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(z, z)), lo)));
    return _mm256_fmadd_ps(x, phi, _mm256_blendv_ps(_mm256_sub_ps(one, h), h, x));
}

size_t act_grad_row_avx2(float *out, const float *in, size_t n, act_kind k)
{
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(in + i), y;
        if (k == ACT_SILU) { /* s·(1 + x·(1 − s)), s = 1/(1 + e), 1 − s = e·s, e = e^−x (capped, as act_grad) */
            __m256 e = _mm256_min_ps(Sleef_expf8_u10avx2(_mm256_sub_ps(zero, x)), _mm256_set1_ps(1e30f));
            __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, e));
            y = _mm256_mul_ps(sg, _mm256_fmadd_ps(x, _mm256_mul_ps(e, sg), one));
        } else {
            y = gelu_grad8(x);
        }
        _mm256_storeu_ps(out + i, y);
    }
    return i;
}

size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k)
{
    size_t i = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(in + i), y;
        if (k == ACT_SILU)
            y = _mm256_div_ps(x, _mm256_add_ps(one, Sleef_expf8_u10avx2(_mm256_sub_ps(zero, x))));
        else
            y = gelu8(x);
        _mm256_storeu_ps(out + i, y);
    }
    return i;
}

#define AVX512 __attribute__((target("avx512f")))

AVX512 static inline __m512 horner16(const float *c, int deg, __m512 x)
{
    __m512 r = _mm512_set1_ps(c[deg]);
    for (int i = deg - 1; i >= 0; i--)
        r = _mm512_fmadd_ps(r, x, _mm512_set1_ps(c[i]));
    return r;
}

/* gelu8 sixteen lanes wide, step for step; 2^n by scalef instead of exponent bits. */
AVX512 static inline __m512 gelu16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752440f));
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(gelu_a), z, one));
    __m512 q = _mm512_max_ps(_mm512_fnmadd_ps(z, z, horner16(gelu_p, 6, t)), _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(q, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), q);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723e-6f), r);
    __m512 h = _mm512_mul_ps(t, _mm512_scalef_ps(horner16(gelu_e, 5, r), n));
    h = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_set1_ps(5.0f), _CMP_LE_OQ), h);
    __mmask16 neg = _mm512_test_epi32_mask(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    return _mm512_mul_ps(x, _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, h), h));
}

/* gelu_grad8 sixteen lanes wide */
AVX512 static inline __m512 gelu_grad16(__m512 x)
{
    const __m512 one = _mm512_set1_ps(1.0f), lo = _mm512_set1_ps(-87.0f);
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), hi2 = _mm512_set1_ps(0.693145751953125f),
                 lo2 = _mm512_set1_ps(1.42860682030941723e-6f);
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752440f));
    __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(gelu_a), z, one));
    __m512 q[2] = {_mm512_max_ps(_mm512_fnmadd_ps(z, z, horner16(gelu_p, 6, t)), lo),
                   _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)), lo)};
    __m512 e[2];
    for (int k = 0; k < 2; k++) { /* exp(q) for q in [-87, 0], as gelu16 */
        __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(q[k], log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(n, lo2, _mm512_fnmadd_ps(n, hi2, q[k]));
        e[k] = _mm512_scalef_ps(horner16(gelu_e, 5, r), n);
    }
    __m512 h = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_set1_ps(5.0f), _CMP_LE_OQ), _mm512_mul_ps(t, e[0]));
    __mmask16 neg = _mm512_test_epi32_mask(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u));
    __m512 phi = _mm512_mul_ps(_mm512_set1_ps(0.39894228040143267794f), e[1]);
    return _mm512_fmadd_ps(x, phi, _mm512_mask_blend_ps(neg, _mm512_sub_ps(one, h), h));
}

AVX512 size_t act_grad_row_avx512(float *out, const float *in, size_t n, act_kind k)
{
    if (k != ACT_GELU)
        return 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, gelu_grad16(_mm512_loadu_ps(in + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, m, gelu_grad16(_mm512_maskz_loadu_ps(m, in + i)));
    }
    return n;
}

AVX512 size_t act_row_avx512(float *out, const float *in, size_t n, act_kind k)
{
    if (k != ACT_GELU)
        return 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, gelu16(_mm512_loadu_ps(in + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, in + i)));
    }
    return n;
}
