/* The CUDA backend: each op's kernel in its .cu file (cuBLAS for the
 * products), device memory from base/cuda_rt.h, everything asynchronous on
 * cuda_stream() with failures reported by sync. CUDA builds only; the
 * emulated tests link it with the kernels run on the CPU. */
#include "blocks/backend.h"

#include "base/cuda_rt.h"
#include "blocks/attn.h"
#include "blocks/dwconv.h"
#include "blocks/gated_block.h"
#include "blocks/layernorm.h"
#include "blocks/layout.h"
#include "blocks/linear.h"
#include "blocks/pool.h"
#include "blocks/rmsnorm.h"
#include "blocks/ssm.h"
#include "blocks/ssm_chunk.h"

static ml_status cuda_supports(backend_op op, const backend_limits *q)
{
    if (op == BE_OP_SCAN && q->d_state > SSM_CUDA_MAX_STATE)
        return ml_fail(ML_ERR_USAGE, "the CUDA scan keeps at most %d states per channel (d_state = %d)",
                       SSM_CUDA_MAX_STATE, q->d_state);
    if (op == BE_OP_ATTN && q->head_size > ATTN_CUDA_MAX_HS)
        return ml_fail(ML_ERR_USAGE, "the CUDA attention takes head sizes up to %d (head_size = %d)", ATTN_CUDA_MAX_HS,
                       q->head_size);
    return ML_OK;
}

static void cuda_conv2d(float *out, const float *in, const float *w, const float *b, const conv2d_shape *s, int B,
                        int H, int W, float *ws, size_t ws_floats, int threads)
{
    (void)threads;
    conv2d_forward_cuda(out, in, w, b, s, B, H, W, ws, ws_floats);
}

static size_t cuda_conv2d_ws(const conv2d_shape *s, size_t out_rows, int threads)
{
    (void)threads;
    return conv2d_cuda_workspace_floats(s, out_rows);
}

static void cuda_dwconv(float *out, const float *in, size_t ld_in, const float *w, const float *b, int B, int H,
                        int W, int C, int K, float *ws)
{
    (void)ws;
    dwconv_forward_cuda(out, in, ld_in, w, b, B, H, W, C, K);
}

static size_t no_ws_dwconv(int B, int H, int W, int C, int K)
{
    (void)B, (void)H, (void)W, (void)C, (void)K;
    return 0;
}

static void cuda_attn(float *o, float *lse, const float *qkv, int B, size_t L, int E, int HS, int causal, float *ws,
                      int threads)
{
    (void)ws, (void)threads;
    attn_core_cuda(o, lse, qkv, B, L, E, HS, causal);
}

static size_t no_ws_attn(int B, size_t L, int E, int HS, int threads)
{
    (void)B, (void)L, (void)E, (void)HS, (void)threads;
    return 0;
}

static const backend table = {
    .name = "cuda",
    .kind = BACKEND_CUDA,
    .host_memory = 0,
    .alloc = cuda_malloc,
    .release = cuda_free,
    .upload = cuda_to_device,
    .download = cuda_to_host,
    .zero = cuda_memset_zero,
    .sync = cuda_sync,
    .supports = cuda_supports,
    .layernorm = layernorm_forward_cuda,
    .rmsnorm = rmsnorm_forward_cuda,
    .linear = linear_forward_cuda,
    .conv2d = cuda_conv2d,
    .conv2d_ws = cuda_conv2d_ws,
    .act = act_forward_cuda,
    .gate = gate_forward_cuda,
    .scale = scale_cuda,
    .norm_linear = NULL, /* whole-tensor kernels: the block runs norm, then linear */
    .gate_linear = NULL,
    .norm_linear_ws = NULL,
    .dwconv = cuda_dwconv,
    .dwconv_ws = no_ws_dwconv,
    .conv1d_silu = ssm_conv1d_silu_cuda,
    .scan = ssm_scan_core_cuda,
    .scan_ws = ssm_carry_floats,
    .attn = cuda_attn,
    .attn_ws = no_ws_attn,
    .meanpool = meanpool_forward_cuda,
    .copy_rows = copy_rows_cuda,
    .nchw_to_nhwc = nchw_to_nhwc_cuda,
    .merge_2x2 = merge_2x2_cuda,
    .insert_token = insert_token_cuda,
    .embed = embed_cuda,
};

const backend *backend_cuda(void) { return &table; }
