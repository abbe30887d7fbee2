/* The AVX2 lanes of act_row, in their own file because they are compiled for
 * AVX2 + FMA; act.c calls them only after a run-time check of the CPU.
 *
 * GELU(x) = x/2 · (1 + erf(x/√2)) with z = |x|/√2 and
 *   erf(z)  = z · P(z²)    for z < 1
 *   erfc(z) = exp(Q(z))    for 1 <= z <= 5, and 0 beyond (erfc(5) = 1.5e-12)
 * so 1 + erf(x/√2) is 1 ± z·P(z²), 2 − erfc(z) or, for negative x, erfc(z)
 * itself: no cancellation on the negative side, where 1 + erff(x) in float
 * loses most of its bits. P and Q come from scripts/fit_gelu_erf.py: erf
 * within 8.3e-8 absolute on [0, 1), erfc within 4.7e-6 relative on [1, 5]
 * (float32 with FMA), about PyTorch's own AVX2 GELU (Abramowitz–Stegun
 * 7.1.26, 1.5e-7). exp(Q) needs only arguments in [-17.7, 0]: 2^n times a
 * degree-7 Taylor polynomial on |r| <= ln2/2 (truncation 5e-9 relative).
 * SiLU uses SLEEF's 1-ulp expf over the whole range. */
#include "blocks/act.h"

#include <immintrin.h>
#include <sleef.h>

size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k);

static const float gelu_p[7] = {1.1283791f,    -0.37612462f,  0.11282283f,   -0.026809348f,
                                0.005114432f,  -0.0007420303f, 6.0418974e-05f};
static const float gelu_q[11] = {0.00045887803f, -1.1308674f,    -0.63058f,      -0.11146298f,
                                 0.02737646f,    -0.0051858276f, 0.0007196589f,  -6.8092995e-05f,
                                 3.854315e-06f,  -9.143699e-08f, -6.2725564e-10f};

static inline __m256 horner(const float *c, int deg, __m256 x)
{
    __m256 r = _mm256_set1_ps(c[deg]);
    for (int i = deg - 1; i >= 0; i--)
        r = _mm256_fmadd_ps(r, x, _mm256_set1_ps(c[i]));
    return r;
}

/* exp(q) for q in [-88, 0]: q = n·ln2 + r (Cody–Waite), exp(r) by Taylor, 2^n into the exponent. */
static inline __m256 exp_nonpos(__m256 q)
{
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2_hi = _mm256_set1_ps(0.693145751953125f), ln2_lo = _mm256_set1_ps(1.42860682030941723e-6f);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(q, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, ln2_hi, q);
    r = _mm256_fnmadd_ps(n, ln2_lo, r);
    static const float taylor[8] = {1.0f,          1.0f,           0.5f,           1.0f / 6,
                                    1.0f / 24,     1.0f / 120,     1.0f / 720,     1.0f / 5040};
    __m256 p = horner(taylor, 7, r);
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static inline __m256 gelu8(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f),
                 two = _mm256_set1_ps(2.0f), zmax = _mm256_set1_ps(5.0f);
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.70710678118654752440f));
    __m256 small = _mm256_cmp_ps(z, one, _CMP_LT_OQ);
    __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
    /* z < 1 */
    __m256 e = _mm256_mul_ps(z, horner(gelu_p, 6, _mm256_mul_ps(z, z)));
    __m256 s_small = _mm256_blendv_ps(_mm256_add_ps(one, e), _mm256_sub_ps(one, e), neg);
    /* z >= 1 */
    __m256 zc = _mm256_min_ps(_mm256_max_ps(z, one), zmax);
    __m256 c = exp_nonpos(horner(gelu_q, 10, zc));
    c = _mm256_andnot_ps(_mm256_cmp_ps(z, zmax, _CMP_GT_OQ), c);
    __m256 s_large = _mm256_blendv_ps(_mm256_sub_ps(two, c), c, neg);
    __m256 s = _mm256_blendv_ps(s_large, s_small, small);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), s);
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
