/* The named model zoo: timm's MambaOut variants plus a small configuration
 * for fast tests. */
#include "models/model.h"

#include "blocks/dwconv.h"

#include <string.h>

typedef struct {
    const char *name;
    int depths[MODEL_MAX_STAGES];
    int dims[MODEL_MAX_STAGES];
} zoo_entry;

static const zoo_entry zoo[] = {
    {"mambaout_femto", {3, 3, 9, 3}, {48, 96, 192, 288}},
    {"mambaout_kobe", {3, 3, 15, 3}, {48, 96, 192, 288}},
    {"mambaout_tiny", {3, 3, 9, 3}, {96, 192, 384, 576}},
    {"mambaout_small", {3, 4, 27, 3}, {96, 192, 384, 576}},
    {"mambaout_base", {3, 4, 27, 3}, {128, 256, 512, 768}},
    /* small enough for golden fixtures and sanitizer runs */
    {"mambaout_test", {1, 1, 2, 1}, {16, 24, 32, 48}},
};

#define ZOO_LEN ((int)(sizeof zoo / sizeof zoo[0]))

int model_zoo_count(void) { return ZOO_LEN; }

const char *model_zoo_name(int i) { return i >= 0 && i < ZOO_LEN ? zoo[i].name : NULL; }

const char *model_zoo_names(void)
{
    static char buf[512];
    if (buf[0])
        return buf;
    for (int i = 0; i < ZOO_LEN; i++) {
        if (i)
            strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
        strncat(buf, zoo[i].name, sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

ml_status model_config_from_name(const char *name, model_config *out)
{
    for (int i = 0; i < ZOO_LEN; i++) {
        if (strcmp(zoo[i].name, name) != 0)
            continue;
        memset(out, 0, sizeof *out);
        snprintf(out->name, sizeof out->name, "%s", name);
        out->num_stages = 4;
        memcpy(out->depths, zoo[i].depths, sizeof out->depths);
        memcpy(out->dims, zoo[i].dims, sizeof out->dims);
        out->num_classes = 1000;
        out->expansion = 8.0 / 3.0;
        out->conv_ratio = 1.0;
        out->act = ACT_GELU;
        out->eps = 1e-6f;
        out->fc_bias = 1;
        out->head_mlp_ratio = 4;
        out->mixer = &mixer_dwconv;
        out->mixer_cfg = mixer_config_default(0, 0);
        return ML_OK;
    }
    return ml_fail(ML_ERR_USAGE, "unknown model '%s' (known: %s)", name, model_zoo_names());
}
