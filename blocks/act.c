#include "blocks/act.h"

void act_forward(float *out, const float *in, size_t n, act_kind k)
{
    if (k == ACT_SILU) {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++)
            out[i] = act_silu(in[i]);
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (size_t i = 0; i < n; i++)
            out[i] = act_gelu(in[i]);
    }
}
