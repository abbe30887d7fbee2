#include "blocks/mixer.h"

#include <string.h>

#define MIXER(n) extern const mixer_ops mixer_##n;
#include "blocks/mixer_list.h"
#undef MIXER

static const mixer_ops *const registry[] = {
#define MIXER(n) &mixer_##n,
#include "blocks/mixer_list.h"
#undef MIXER
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
    static char buf[1024];
    if (buf[0])
        return buf;
    for (int i = 0; i < REGISTRY_LEN; i++) {
        if (i)
            strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
        strncat(buf, registry[i]->name, sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

ml_status mixer_supports(const mixer_ops *ops, const backend *be, const mixer_config *cfg)
{
    if (!ops->supports)
        return ML_OK;
    ml_status s = ops->supports(be, cfg);
    if (s != ML_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", ml_last_error());
        return ml_fail(s, "mixer '%s' on %s: %s", ops->name, be->name, why);
    }
    return ML_OK;
}

size_t mixer_output_floats(const mixer_config *cfg, int B, int H, int W, int training)
{
    (void)training;
    return (size_t)B * H * W * (size_t)cfg->channels;
}

size_t mixer_saved_floats(const mixer_ops *ops, const mixer_config *cfg, int B, int H, int W)
{
    return ops->activation_floats(cfg, B, H, W, 1) - ops->activation_floats(cfg, B, H, W, 0);
}

mixer_config mixer_config_default(int width, int channels)
{
    mixer_config c = {.channels = channels, .width = width, .kernel = 7, .d_state = 16,
                      .dt_rank = 0, .head_size = 32, .threads = 0};
    return c;
}
