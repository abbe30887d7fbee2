#include "blocks/act.h"

#if defined(MIXERLAB_HAVE_SLEEF) && defined(__x86_64__)
#define ACT_HAVE_AVX2_PATH 1
size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k); /* act_avx2.c */

static int have_avx2(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return cached;
}
#endif

void act_row(float *out, const float *in, size_t n, act_kind k)
{
    size_t i = 0;
#ifdef ACT_HAVE_AVX2_PATH
    if (have_avx2())
        i = act_row_avx2(out, in, n, k);
#endif
    for (; i < n; i++)
        out[i] = act_apply(k, in[i]);
}

void act_forward(float *out, const float *in, size_t n, act_kind k)
{
    const size_t chunk = 4096;
    const size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nchunks; c++) {
        size_t b = c * chunk, len = n - b < chunk ? n - b : chunk;
        act_row(out + b, in + b, len, k);
    }
}
