/* identity: y = c, no token mixing — the control of every ablation. */
#ifndef MIXERLAB_IDENTITY_H
#define MIXERLAB_IDENTITY_H

#include "blocks/mixer.h"

extern const mixer_ops mixer_identity;

#endif
