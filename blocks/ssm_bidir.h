/* ssm_bidir: Vim's "v2" bidirectional scan. The `ssm` branch on the sequence
 * plus a second branch with its own parameters (conv1d_b, x_proj_b, dt_proj_b,
 * A_b_log, D_b) on the reversed sequence; y = (y_fwd + flip(y_bwd)) / 2. */
#ifndef MIXERLAB_SSM_BIDIR_H
#define MIXERLAB_SSM_BIDIR_H

#include "blocks/mixer.h"

extern const mixer_ops mixer_ssm_bidir;

#endif
