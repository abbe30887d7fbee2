/* The CUDA runtime of a build without the toolkit: each entry says so. */
#include "base/cuda_rt.h"

static ml_status none(void)
{
    return ml_fail(ML_ERR_USAGE, "this build has no CUDA backend (configure with the CUDA toolkit installed, "
                                 "-DMIXERLAB_CUDA=ON)");
}

int cuda_compiled(void) { return 0; }
const char *cuda_build_info(void) { return "not compiled in"; }
ml_status cuda_device_present(void) { return none(); }
void cuda_set_math(cuda_math m) { (void)m; }
cuda_math cuda_get_math(void) { return CUDA_MATH_FP32; }
const char *cuda_math_name(cuda_math m)
{
    return m == CUDA_MATH_TF32 ? "tf32" : m == CUDA_MATH_PEDANTIC ? "pedantic" : "fp32";
}
ml_status cuda_malloc(void **p, size_t bytes, const char *what)
{
    (void)bytes, (void)what;
    *p = NULL;
    return none();
}
void cuda_free(void *p) { (void)p; }
ml_status cuda_memset_zero(void *p, size_t bytes)
{
    (void)p, (void)bytes;
    return none();
}
ml_status cuda_to_device(void *dst, const void *src, size_t bytes)
{
    (void)dst, (void)src, (void)bytes;
    return none();
}
ml_status cuda_to_host(void *dst, const void *src, size_t bytes)
{
    (void)dst, (void)src, (void)bytes;
    return none();
}
ml_status cuda_sync(const char *what)
{
    (void)what;
    return none();
}
void *cuda_stream(void) { return NULL; }
void *cuda_blas(void) { return NULL; }
void cuda_note_failure(const char *fmt, ...) { (void)fmt; }
void cuda_after_launch(const char *file, int line) { (void)file, (void)line; }
void cuda_blas_status(int status, const char *call, const char *file, int line)
{
    (void)status, (void)call, (void)file, (void)line;
}
void cuda_blas_sgemm(void *h, int trans_a, int trans_b, int m, int n, int k, const float *alpha, const float *A,
                     int lda, const float *B, int ldb, const float *beta, float *C, int ldc, const char *file,
                     int line)
{
    (void)h, (void)trans_a, (void)trans_b, (void)m, (void)n, (void)k, (void)alpha, (void)A, (void)lda, (void)B;
    (void)ldb, (void)beta, (void)C, (void)ldc, (void)file, (void)line;
}
const char *cuda_blas_library(void) { return ""; }
