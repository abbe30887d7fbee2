/* The gate on the GPU: v = act(g) · [i | c'], written over g, one thread per
 * element, with the CPU reference's own act_apply (shared __host__ __device__). */
#include "harness/cuda_util.h"
#include "blocks/layernorm.h"
#include "blocks/linear.h"
#include "blocks/gated_block.h"

__global__ static void gate_kernel(float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    const size_t k = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= rows * (size_t)Hd)
        return;
    const size_t r = k / Hd;
    const int j = (int)(k % Hd), ni = Hd - E;
    float *g = u + r * 2 * (size_t)Hd;
    const float other = j < ni ? g[Hd + j] : m[r * E + (j - ni)];
    g[j] = act_apply(act, g[j]) * other;
}

extern "C" void gate_forward_cuda(float *u, const float *m, size_t rows, int Hd, int E, act_kind act)
{
    const size_t n = rows * (size_t)Hd;
    if (n)
        gate_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (cudaStream_t)cuda_stream()>>>(u, m, rows, Hd, E, act);
}

extern "C" void block_forward_cuda(const block_config *bc, const float *const *p, float *x, int B, int H, int W,
                                   const block_buffers *buf)
{
    const size_t rows = (size_t)B * H * W, ldu = 2 * (size_t)bc->hidden;
    const int C = bc->dim, Hd = bc->hidden, E = bc->conv_ch;
    const float *fc1_w = p[2], *fc1_b = bc->fc_bias ? p[3] : NULL; /* LayerNorm: weight, bias first */
    int k = block_mixer_param_offset(bc);
    const float *const *mixer_p = p + k;
    k += bc->mixer->param_specs(&bc->mcfg, NULL);
    const float *fc2_w = p[k], *fc2_b = bc->fc_bias ? p[k + 1] : NULL;
    layernorm_forward_cuda(buf->t, (size_t)C, x, (size_t)C, p[0], p[1], rows, C, bc->norm_eps);
    linear_forward_cuda(buf->u, ldu, buf->t, (size_t)C, fc1_w, fc1_b, rows, C, 2 * Hd, 0);
    bc->mixer->forward_cuda(&bc->mcfg, mixer_p, buf->m, buf->u + (2 * Hd - E), ldu, buf->ws, B, H, W);
    gate_forward_cuda(buf->u, buf->m, rows, Hd, E, bc->act);
    linear_forward_cuda(x, (size_t)C, buf->u, ldu, fc2_w, fc2_b, rows, Hd, C, 1);
}
