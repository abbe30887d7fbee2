/* Eight-lane float math with GCC/Clang vector extensions: one AVX register in
 * an AVX2 clone (ML_CLONES), two SSE registers otherwise. Used by the scan and
 * softmax kernels, which need exp on every element. */
#ifndef MIXERLAB_VMATH_H
#define MIXERLAB_VMATH_H

#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

/* Every helper is always inlined: in a build without optimisation a v8f passed
 * by value between an AVX2 clone and a helper compiled for the default target
 * crosses two different ABIs and arrives garbled (the Debug + sanitizer build
 * crashed in the scans). */
#define V8_INLINE static inline __attribute__((always_inline))

#define V8_LOAD(v, p) memcpy(&(v), (p), sizeof(v8f))
#define V8_STORE(p, v) memcpy((p), &(v), sizeof(v8f))

/* Flush-to-zero and denormals-are-zero for the calling thread, and back. A float below 2^-126
 * (a subnormal) costs an x86 core a microcode assist on every operation that reads or makes one:
 * about a hundred cycles instead of one. A backward recurrence whose adjoint decays step after
 * step (the scan's λ where no gradient arrives) spends long stretches there. With these bits set
 * such values read and round to zero: results change only where a value falls below 2^-126.
 * Each thread has its own control register (OpenMP workers too), so a kernel sets and restores
 * it inside its parallel region. A no-op where there is no SSE control register. */
#if defined(__SSE__)
#include <xmmintrin.h>
static inline unsigned ml_flush_subnormals(void)
{
    const unsigned old = _mm_getcsr();
    _mm_setcsr(old | 0x8040u); /* FTZ (bit 15) and DAZ (bit 6) */
    return old;
}
static inline void ml_restore_fp_mode(unsigned old) { _mm_setcsr(old); }
#else
static inline unsigned ml_flush_subnormals(void) { return 0; }
static inline void ml_restore_fp_mode(unsigned old) { (void)old; }
#endif

V8_INLINE v8f v8_splat(float x) { return (v8f){x, x, x, x, x, x, x, x}; }

/* Lane-wise m ? a : b for a comparison mask m (C has no vector ?:). */
V8_INLINE v8f v8_select(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }

/* exp(x) for x <= 0 (lanes below -87 give exp(-87), about 1.6e-38: zero for any
 * sum they enter). x = n·ln2 + r with |r| <= ln2/2 (Cody–Waite split), exp(r)
 * by its degree-7 Taylor polynomial (truncation 5e-9 relative), 2^n by the
 * exponent bits. Within 2e-7 relative of exp. */
V8_INLINE v8f v8_exp_nonpos(v8f x)
{
    const v8f lo = v8_splat(-87.0f);
    x = v8_select(x < lo, lo, x);
    v8f t = x * v8_splat(1.44269504088896341f) - v8_splat(0.5f);
    v8i n = __builtin_convertvector(t, v8i); /* t < 0: truncation rounds up, so n = round(x·log2e) */
    v8f nf = __builtin_convertvector(n, v8f);
    v8f r = x - nf * v8_splat(0.693145751953125f);
    r = r - nf * v8_splat(1.42860682030941723e-6f);
    v8f p = v8_splat(1.0f / 5040);
    p = p * r + v8_splat(1.0f / 720);
    p = p * r + v8_splat(1.0f / 120);
    p = p * r + v8_splat(1.0f / 24);
    p = p * r + v8_splat(1.0f / 6);
    p = p * r + v8_splat(0.5f);
    p = p * r + v8_splat(1.0f);
    p = p * r + v8_splat(1.0f);
    v8i bits = (n + 127) << 23;
    v8f scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

V8_INLINE v8f v8_abs(v8f x) { return v8_select(x < v8_splat(0.0f), -x, x); }
V8_INLINE v8f v8_max0(v8f x) { return v8_select(x > v8_splat(0.0f), x, v8_splat(0.0f)); }

/* log1p(e) for e in [0, 1] as 2·atanh(s), s = e / (2 + e) in [0, 1/3]: no
 * 1 + e is ever formed, so tiny e keep their bits. Series to s^15 (next term
 * below 1e-8 relative). */
V8_INLINE v8f v8_log1p_unit(v8f e)
{
    v8f s = e / (v8_splat(2.0f) + e), s2 = s * s;
    v8f p = v8_splat(1.0f / 15);
    p = p * s2 + v8_splat(1.0f / 13);
    p = p * s2 + v8_splat(1.0f / 11);
    p = p * s2 + v8_splat(1.0f / 9);
    p = p * s2 + v8_splat(1.0f / 7);
    p = p * s2 + v8_splat(1.0f / 5);
    p = p * s2 + v8_splat(1.0f / 3);
    p = p * s2 + v8_splat(1.0f);
    return v8_splat(2.0f) * s * p;
}

/* Mamba's softplus: x above 20 passes through, else log(1 + e^x) computed as
 * max(x, 0) + log1p(e^-|x|). */
V8_INLINE v8f v8_softplus(v8f x)
{
    v8f y = v8_max0(x) + v8_log1p_unit(v8_exp_nonpos(-v8_abs(x)));
    return v8_select(x > v8_splat(20.0f), x, y);
}

/* SiLU x / (1 + e^-x), with e = e^-|x| so exp never overflows. */
V8_INLINE v8f v8_silu(v8f x)
{
    v8f e = v8_exp_nonpos(-v8_abs(x));
    v8f num = v8_select(x >= v8_splat(0.0f), x, x * e);
    return num / (v8_splat(1.0f) + e);
}

#endif
