/* ssm_2d: VMamba's SS2D cross-scan. Depthwise conv 3×3 -> SiLU -> four
 * selective scans (k = 0 row-major, 1 column-major, 2 row-major reversed,
 * 3 column-major reversed), each with its own x_proj / dt_proj / A / D (slice
 * k of x_proj_weight, dt_projs_*, rows k·E.. of A_logs and Ds); outputs put
 * back in raster order and summed; then LayerNorm(E, eps 1e-5). */
#ifndef MIXERLAB_SSM_2D_H
#define MIXERLAB_SSM_2D_H

#include "blocks/mixer.h"

#define SSM_2D_NORM_EPS 1e-5f

extern const mixer_ops mixer_ssm_2d;

#endif
