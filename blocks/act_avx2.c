/* The AVX2 lanes of act_row, in their own file because SLEEF declares its
 * 256-bit functions only when the compiler targets AVX. Called only after a
 * run-time check that the CPU has AVX2 and FMA. */
#include "blocks/act.h"

#include <immintrin.h>
#include <sleef.h>

size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k);

size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k)
{
    size_t i = 0;
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f),
                 rsqrt2 = _mm256_set1_ps(0.70710678118654752440f), zero = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(in + i), y;
        if (k == ACT_SILU) {
            __m256 e = Sleef_expf8_u10avx2(_mm256_sub_ps(zero, x));
            y = _mm256_div_ps(x, _mm256_add_ps(one, e));
        } else {
            __m256 e = Sleef_erff8_u10avx2(_mm256_mul_ps(x, rsqrt2));
            y = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e));
        }
        _mm256_storeu_ps(out + i, y);
    }
    return i;
}
