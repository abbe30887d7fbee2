#include "blocks/act.h"

#include "blocks/vmath.h"

#if defined(MIXERLAB_HAVE_SLEEF) && defined(__x86_64__)
#define ACT_HAVE_SIMD_PATHS 1
/* act_simd.c */
size_t act_row_avx2(float *out, const float *in, size_t n, act_kind k);
size_t act_row_avx512(float *out, const float *in, size_t n, act_kind k);
size_t act_grad_row_avx2(float *out, const float *in, size_t n, act_kind k);
size_t act_grad_row_avx512(float *out, const float *in, size_t n, act_kind k);
#endif

act_isa act_best_isa(void)
{
#ifdef ACT_HAVE_SIMD_PATHS
    /* __builtin_cpu_supports reads a table filled before main: cheap, no caching needed */
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return __builtin_cpu_supports("avx512f") ? ACT_ISA_AVX512 : ACT_ISA_AVX2;
#endif
    return ACT_ISA_SCALAR;
}

/* softplus in blocks of eight (vmath.h), the scalar form for the tail */
ML_CLONES static void softplus_row(float *out, const float *in, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        v8f v;
        V8_LOAD(v, in + i);
        v = v8_softplus(v);
        V8_STORE(out + i, v);
    }
    for (; i < n; i++)
        out[i] = act_softplus(in[i]);
}

void act_row_isa(float *out, const float *in, size_t n, act_kind k, act_isa isa)
{
    size_t i = 0;
    if (k == ACT_SOFTPLUS) {
        softplus_row(out, in, n);
        return;
    }
    act_isa best = act_best_isa();
    if (isa > best)
        isa = best;
#ifdef ACT_HAVE_SIMD_PATHS
    if (isa >= ACT_ISA_AVX512)
        i = act_row_avx512(out, in, n, k);
    if (isa >= ACT_ISA_AVX2 && i < n)
        i += act_row_avx2(out + i, in + i, n - i, k);
#endif
    for (; i < n; i++)
        out[i] = act_apply(k, in[i]);
}

void act_row(float *out, const float *in, size_t n, act_kind k) { act_row_isa(out, in, n, k, ACT_ISA_AVX512); }

void act_grad_row_isa(float *out, const float *in, size_t n, act_kind k, act_isa isa)
{
    size_t i = 0;
    act_isa best = act_best_isa();
    if (isa > best)
        isa = best;
#ifdef ACT_HAVE_SIMD_PATHS
    if (k != ACT_SOFTPLUS && isa >= ACT_ISA_AVX512)
        i = act_grad_row_avx512(out, in, n, k);
    if (k != ACT_SOFTPLUS && isa >= ACT_ISA_AVX2 && i < n)
        i += act_grad_row_avx2(out + i, in + i, n - i, k);
#endif
    for (; i < n; i++)
        out[i] = act_grad(k, in[i]);
}

void act_grad_row(float *out, const float *in, size_t n, act_kind k) { act_grad_row_isa(out, in, n, k, ACT_ISA_AVX512); }

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

/* act' a block at a time through the vector paths, then one multiply-add per element */
ML_CLONES static void act_backward_row(float *d_in, const float *d_out, const float *in, size_t n, act_kind k)
{
    float g[256];
    for (size_t b = 0; b < n; b += 256) {
        const size_t len = n - b < 256 ? n - b : 256;
        act_grad_row(g, in + b, len, k);
        for (size_t i = 0; i < len; i++)
            d_in[b + i] += d_out[b + i] * g[i];
    }
}

void act_backward(float *d_in, const float *d_out, const float *in, size_t n, act_kind k)
{
    const size_t chunk = 4096;
    const size_t nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nchunks; c++) {
        size_t b = c * chunk, len = n - b < chunk ? n - b : chunk;
        act_backward_row(d_in + b, d_out + b, in + b, len, k);
    }
}
