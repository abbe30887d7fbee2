#include "blocks/mixer.h"

#include "blocks/attn.h"
#include "blocks/dwconv.h"
#include "blocks/identity.h"
#include "blocks/ssm.h"
#include "blocks/ssm_2d.h"
#include "blocks/ssm_bidir.h"

#include <string.h>

/* The registry: one line per mixer. */
static const mixer_ops *const registry[] = {
    &mixer_dwconv,
    &mixer_ssm,
    &mixer_ssm_bidir,
    &mixer_ssm_2d,
    &mixer_attn,
    &mixer_attn_causal,
    &mixer_identity,
};

#define REGISTRY_LEN ((int)(sizeof registry / sizeof registry[0]))

const mixer_ops *mixer_find(const char *name)
{
    for (int i = 0; i < REGISTRY_LEN; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

int mixer_count(void) { return REGISTRY_LEN; }

const mixer_ops *mixer_at(int i) { return i >= 0 && i < REGISTRY_LEN ? registry[i] : NULL; }

const char *mixer_names(void)
{
    static char buf[256];
    if (buf[0])
        return buf;
    for (int i = 0; i < REGISTRY_LEN; i++) {
        if (i)
            strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
        strncat(buf, registry[i]->name, sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

ml_status mixer_require_backend(const mixer_ops *ops, backend_flags b)
{
    if (ops->backends & b)
        return ML_OK;
    char have[32] = "";
    if (ops->backends & BACKEND_CPU)
        strcat(have, "cpu");
    if (ops->backends & BACKEND_CUDA)
        strcat(have, have[0] ? ", cuda" : "cuda");
    return ml_fail(ML_ERR_USAGE, "mixer '%s' has no %s kernel (it runs on: %s)", ops->name, backend_name(b), have);
}

size_t mixer_output_floats(const mixer_config *cfg, int B, int H, int W)
{
    return (size_t)B * H * W * (size_t)cfg->channels;
}

mixer_config mixer_config_default(int width, int channels)
{
    mixer_config c = {.channels = channels, .width = width, .kernel = 7, .d_state = 16,
                      .dt_rank = 0, .head_size = 32, .threads = 0};
    return c;
}
