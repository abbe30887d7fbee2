/* The CPU backend: each op's reference in its .c file (OpenBLAS for the
 * products), host memory, nothing asynchronous. */
#include "blocks/backend.h"

#include "blocks/attn.h"
#include "blocks/dwconv.h"
#include "blocks/gated_block.h"
#include "blocks/layernorm.h"
#include "blocks/layout.h"
#include "blocks/linear.h"
#include "blocks/loss.h"
#include "blocks/pool.h"
#include "blocks/rmsnorm.h"
#include "blocks/ssm.h"

#include <stdlib.h>
#include <string.h>

static ml_status cpu_alloc(void **p, size_t bytes, const char *what)
{
    *p = NULL;
    if (posix_memalign(p, 64, bytes ? bytes : 1) != 0) {
        *p = NULL;
        return ml_fail(ML_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    }
    return ML_OK;
}

static void cpu_release(void *p) { free(p); }

static ml_status cpu_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes && dst != src)
        memcpy(dst, src, bytes);
    return ML_OK;
}

static ml_status cpu_zero(void *p, size_t bytes)
{
    memset(p, 0, bytes);
    return ML_OK;
}

static ml_status cpu_sync(const char *what)
{
    (void)what;
    return ML_OK;
}

static ml_status cpu_supports(backend_op op, const backend_limits *q)
{
    if (op == BE_OP_SCAN && q->d_state > SSM_MAX_STATE)
        return ml_fail(ML_ERR_USAGE, "the CPU scan keeps at most %d states per channel (d_state = %d)", SSM_MAX_STATE,
                       q->d_state);
    if (op == BE_OP_DWCONV && q->kernel > DWCONV_MAX_KERNEL)
        return ml_fail(ML_ERR_USAGE, "the CPU depthwise conv takes kernels up to %d (kernel = %d)", DWCONV_MAX_KERNEL,
                       q->kernel);
    return ML_OK;
}

static void cpu_conv2d(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s, int B,
                       int H, int W, float *ws, size_t ws_floats, int threads)
{
    (void)ws_floats; /* sized by conv2d_workspace_floats for these threads */
    conv2d_forward(out, in, w, b, s, B, H, W, ws, threads);
}

const backend backend_cpu = {
    .name = "cpu",
    .kind = BACKEND_CPU,
    .host_memory = 1,
    .alloc = cpu_alloc,
    .release = cpu_release,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .supports = cpu_supports,
    .layernorm = layernorm_forward,
    .layernorm_bwd = layernorm_backward,
    .rmsnorm = rmsnorm_forward,
    .rmsnorm_bwd = rmsnorm_backward,
    .linear = linear_forward,
    .linear_bwd = linear_backward,
    .conv2d = cpu_conv2d,
    .conv2d_ws = conv2d_workspace_floats,
    .conv2d_bwd = conv2d_backward,
    .conv2d_bwd_ws = conv2d_backward_workspace_floats,
    .act = act_forward,
    .act_bwd = act_backward,
    .gate = gate_forward,
    .gate_bwd = gate_backward,
    .scale = scale_forward,
    .scale_bwd = scale_backward,
    .norm_linear = block_norm_linear_cpu,
    .gate_linear = block_gate_linear_cpu,
    .norm_linear_ws = block_norm_linear_cpu_ws,
    .dwconv = dwconv_forward,
    .dwconv_ws = dwconv_workspace_floats,
    .dwconv_bwd = dwconv_backward,
    .dwconv_bwd_ws = dwconv_backward_workspace_floats,
    .conv1d_silu = ssm_conv1d_silu,
    .conv1d_silu_bwd = ssm_conv1d_silu_backward,
    .scan = ssm_scan_core,
    .scan_ws = ssm_scan_core_workspace,
    .scan_bwd = ssm_scan_core_backward,
    .scan_bwd_ws = ssm_scan_core_backward_workspace,
    .attn = attn_core,
    .attn_ws = attn_core_workspace,
    .attn_bwd = attn_core_backward,
    .attn_bwd_ws = attn_core_backward_workspace,
    .meanpool = meanpool_forward,
    .meanpool_bwd = meanpool_backward,
    .copy_rows = copy_rows,
    .copy_rows_bwd = copy_rows_backward,
    .nchw_to_nhwc = nchw_to_nhwc,
    .merge_2x2 = merge_2x2,
    .merge_2x2_bwd = merge_2x2_backward,
    .insert_token = insert_token,
    .insert_token_bwd = insert_token_backward,
    .embed = embed,
    .embed_bwd = embed_backward,
    .softmax_xent = softmax_xent,
};

int backend_has_backward(const backend *be)
{
    return be->layernorm_bwd && be->rmsnorm_bwd && be->linear_bwd && be->conv2d_bwd && be->conv2d_bwd_ws &&
           be->act_bwd && be->gate_bwd && be->scale_bwd && be->dwconv_bwd && be->dwconv_bwd_ws &&
           be->conv1d_silu_bwd && be->scan_bwd && be->scan_bwd_ws && be->attn_bwd && be->attn_bwd_ws &&
           be->meanpool_bwd && be->copy_rows_bwd && be->merge_2x2_bwd && be->insert_token_bwd && be->embed_bwd &&
           be->softmax_xent;
}

float *backend_alloc_floats(const backend *be, size_t n, const char *what)
{
    void *p = NULL;
    size_t bytes;
    if (ml_mul_overflows(n, sizeof(float), &bytes)) {
        ml_fail(ML_ERR_NOMEM, "%s: %zu floats do not fit in memory", what, n);
        return NULL;
    }
    return be->alloc(&p, bytes, what) == ML_OK ? p : NULL;
}

ml_status backend_by_name(const char *name, const backend **out)
{
    *out = NULL;
    if (strcmp(name, "cpu") == 0) {
        *out = &backend_cpu;
        return ML_OK;
    }
    if (strcmp(name, "cuda") != 0)
        return ml_fail(ML_ERR_USAGE, "unknown device '%s' (allowed: cpu, cuda)", name);
    *out = backend_cuda();
    if (!*out)
        return ml_fail(ML_ERR_USAGE, "this build has no CUDA backend (configure with the CUDA toolkit installed, "
                                     "-DMIXERLAB_CUDA=ON)");
    return ML_OK;
}
