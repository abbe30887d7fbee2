/* The named model zoo and its override syntax:
 *   NAME[:key=value[,key=value...]]   e.g. mambaout_tiny:mixer=ssm_bidir,d_state=16
 * Every model is the same Gated CNN block in one of two skeletons; the
 * visual-Mamba entries only choose other parts and settings. */
#include "models/model.h"

#include "blocks/dwconv.h"
#include "blocks/ssm_2d.h"
#include "blocks/ssm_bidir.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FAMILY_MAMBAOUT, FAMILY_VMAMBA, FAMILY_VIM, FAMILY_SEQ } family;

typedef struct {
    const char *name;
    family fam;
    int num_stages;
    int depths[MODEL_MAX_STAGES];
    int dims[MODEL_MAX_STAGES];
} zoo_entry;

static const zoo_entry zoo[] = {
    {"mambaout_femto", FAMILY_MAMBAOUT, 4, {3, 3, 9, 3}, {48, 96, 192, 288}},
    {"mambaout_kobe", FAMILY_MAMBAOUT, 4, {3, 3, 15, 3}, {48, 96, 192, 288}},
    {"mambaout_tiny", FAMILY_MAMBAOUT, 4, {3, 3, 9, 3}, {96, 192, 384, 576}},
    {"mambaout_small", FAMILY_MAMBAOUT, 4, {3, 4, 27, 3}, {96, 192, 384, 576}},
    {"mambaout_base", FAMILY_MAMBAOUT, 4, {3, 4, 27, 3}, {128, 256, 512, 768}},
    /* small enough for golden fixtures and sanitizer runs */
    {"mambaout_test", FAMILY_MAMBAOUT, 4, {1, 1, 2, 1}, {16, 24, 32, 48}},
    /* vanilla VMamba (v0): the rows of the MambaOut paper's Table 1 */
    {"vmamba_tiny", FAMILY_VMAMBA, 4, {2, 2, 9, 2}, {96, 192, 384, 768}},
    {"vmamba_small", FAMILY_VMAMBA, 4, {2, 2, 27, 2}, {96, 192, 384, 768}},
    {"vmamba_base", FAMILY_VMAMBA, 4, {2, 2, 27, 2}, {128, 256, 512, 1024}},
    /* Vim (bimamba v2), isotropic */
    {"vim_tiny", FAMILY_VIM, 1, {24}, {192}},
    {"vim_small", FAMILY_VIM, 1, {24}, {384}},
    /* small configurations of both for fast tests */
    {"vmamba_test", FAMILY_VMAMBA, 4, {1, 1, 1, 1}, {8, 16, 24, 32}},
    {"vim_test", FAMILY_VIM, 1, {2}, {16}},
    /* the sequence skeleton of the long-range tasks (data/tasks.h): two blocks of width 64, as the
     * selective-copying runs of Mamba's appendix E.1 */
    {"seq", FAMILY_SEQ, 1, {2}, {64}},
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

static void config_from_entry(const zoo_entry *z, model_config *out)
{
    memset(out, 0, sizeof *out);
    out->num_stages = z->num_stages;
    memcpy(out->depths, z->depths, sizeof out->depths);
    memcpy(out->dims, z->dims, sizeof out->dims);
    out->num_classes = 1000;
    out->mixer_cfg = mixer_config_default(0, 0);
    out->head_mlp_ratio = 4;
    /* ImageNet's mean and std, bicubic, 224 x 224 with a 0.875 crop (VMamba's
     * and Vim's test transforms); MambaOut's timm cfg below differs */
    out->data = (model_data_cfg){224, 224, 0.875, "bicubic", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
    switch (z->fam) {
    case FAMILY_MAMBAOUT: /* timm's MambaOut */
        snprintf(out->family, sizeof out->family, "MambaOut");
        out->skeleton = SKEL_HIERARCHICAL, out->stem = STEM_MAMBAOUT, out->down = DOWN_CONV;
        out->head = HEAD_MLP, out->norm = NORM_LAYER, out->eps = 1e-6f;
        out->expansion = 8.0 / 3.0, out->conv_ratio = 1.0, out->act = ACT_GELU, out->fc_bias = 1;
        out->mixer = &mixer_dwconv;
        out->data.test_res = 288, out->data.crop_pct = 1.0; /* timm's mambaout _cfg */
        break;
    case FAMILY_VMAMBA: /* x + out_proj(LN(SS2D(in_proj(LN x)).x) · SiLU(z)), E = 2C, no biases */
        snprintf(out->family, sizeof out->family, "VMamba");
        out->skeleton = SKEL_HIERARCHICAL, out->stem = STEM_PATCH, out->patch = 4, out->stem_norm = 1;
        out->down = DOWN_MERGE, out->head = HEAD_NORM_LINEAR, out->norm = NORM_LAYER, out->eps = 1e-6f;
        out->expansion = 2.0, out->conv_ratio = 2.0, out->act = ACT_SILU, out->fc_bias = 0;
        out->mixer = &mixer_ssm_2d;
        break;
    case FAMILY_VIM: /* x + out_proj(bimamba(in_proj(RMSNorm x)).x · SiLU(z)), E = 2D, no biases */
        snprintf(out->family, sizeof out->family, "Vim");
        out->skeleton = SKEL_ISOTROPIC, out->stem = STEM_PATCH, out->patch = 16, out->stem_norm = 0;
        out->down = DOWN_CONV, out->head = HEAD_TOKEN, out->norm = NORM_RMS, out->eps = 1e-5f;
        out->expansion = 2.0, out->conv_ratio = 2.0, out->act = ACT_SILU, out->fc_bias = 0;
        out->mixer = &mixer_ssm_bidir;
        break;
    case FAMILY_SEQ: /* MambaOut's block (LN, 8/3 expansion, GELU, biases) on a 1 x L line */
        snprintf(out->family, sizeof out->family, "Seq");
        out->skeleton = SKEL_SEQUENCE, out->stem = STEM_EMBED, out->head = HEAD_SEQ, out->norm = NORM_LAYER;
        out->eps = 1e-6f, out->expansion = 8.0 / 3.0, out->conv_ratio = 1.0, out->act = ACT_GELU, out->fc_bias = 1;
        out->mixer = &mixer_dwconv;
        out->vocab = 16, out->num_classes = 16; /* selective copying's defaults; a task replaces both */
        break;
    }
}

static const char override_keys[] =
    "mixer, kernel, d_state, head_size, conv_ratio, expansion, act, norm, num_classes, dims, depths; "
    "seq also: dim, depth, vocab, pos_embed, max_len, tie, init";

static ml_status parse_int(const char *key, const char *v, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return ml_fail(ML_ERR_USAGE, "override %s=%s: want an integer in %d..%d", key, v, lo, hi);
    *out = (int)x;
    return ML_OK;
}

static ml_status parse_ratio(const char *key, const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x > 0 && x <= 64))
        return ml_fail(ML_ERR_USAGE, "override %s=%s: want a number in (0, 64]", key, v);
    *out = x;
    return ML_OK;
}

/* "a-b-c-d": one integer in lo..hi per stage of the skeleton. */
static ml_status parse_stages(const char *key, const char *v, int stages, int lo, int hi, int *out)
{
    int vals[MODEL_MAX_STAGES], n = 0;
    const char *p = v;
    while (1) {
        char *end;
        errno = 0;
        const long x = strtol(p, &end, 10);
        if (end == p || errno || x < lo || x > hi || n == MODEL_MAX_STAGES || (*end && *end != '-'))
            return ml_fail(ML_ERR_USAGE, "override %s=%s: want %d integers in %d..%d joined by '-'", key, v, stages,
                           lo, hi);
        vals[n++] = (int)x;
        if (!*end)
            break;
        p = end + 1;
    }
    if (n != stages)
        return ml_fail(ML_ERR_USAGE, "override %s=%s: this skeleton has %d stages, not %d", key, v, stages, n);
    memcpy(out, vals, (size_t)n * sizeof *out);
    return ML_OK;
}

static ml_status apply_override(model_config *c, const char *key, const char *v)
{
    if (!strcmp(key, "mixer")) {
        c->mixer = mixer_find(v);
        if (!c->mixer)
            return ml_fail(ML_ERR_USAGE, "override mixer=%s: unknown mixer (known: %s)", v, mixer_names());
        return ML_OK;
    }
    if (!strcmp(key, "kernel"))
        return parse_int(key, v, -1000, 1000, &c->mixer_cfg.kernel);
    if (!strcmp(key, "d_state"))
        return parse_int(key, v, -1000, 100000, &c->mixer_cfg.d_state);
    if (!strcmp(key, "head_size"))
        return parse_int(key, v, -1000, 65536, &c->mixer_cfg.head_size);
    if (!strcmp(key, "num_classes")) {
        ML_TRY(parse_int(key, v, 1, 1000000, &c->num_classes));
        c->classes_set = 1;
        return ML_OK;
    }
    if (!strcmp(key, "dims"))
        return parse_stages(key, v, c->num_stages, 1, 16384, c->dims);
    if (!strcmp(key, "depths"))
        return parse_stages(key, v, c->num_stages, 0, MODEL_MAX_BLOCKS, c->depths);
    const int seq = c->skeleton == SKEL_SEQUENCE;
    if (!strcmp(key, "dim") || !strcmp(key, "depth") || !strcmp(key, "vocab") || !strcmp(key, "pos_embed") ||
        !strcmp(key, "max_len") || !strcmp(key, "tie") || !strcmp(key, "init")) {
        if (!seq)
            return ml_fail(ML_ERR_USAGE, "unknown override key '%s' (allowed: %s)", key, override_keys);
        if (!strcmp(key, "dim"))
            return parse_int(key, v, 1, 16384, &c->dims[0]);
        if (!strcmp(key, "depth"))
            return parse_int(key, v, 0, MODEL_MAX_BLOCKS, &c->depths[0]);
        if (!strcmp(key, "vocab")) {
            ML_TRY(parse_int(key, v, 2, 1000000, &c->vocab));
            c->vocab_set = 1;
            if (!c->classes_set) /* a prediction per position over the same tokens, unless told otherwise */
                c->num_classes = c->vocab;
            return ML_OK;
        }
        if (!strcmp(key, "max_len"))
            return parse_int(key, v, 1, MODEL_MAX_SEQ, &c->max_len);
        if (!strcmp(key, "init")) {
            if (strcmp(v, "timm") && strcmp(v, "torch"))
                return ml_fail(ML_ERR_USAGE, "override init=%s: want timm or torch", v);
            c->init_torch = v[1] == 'o';
            return ML_OK;
        }
        return parse_int(key, v, 0, 1, !strcmp(key, "tie") ? &c->tie : &c->pos_embed);
    }
    if (!strcmp(key, "conv_ratio"))
        return parse_ratio(key, v, &c->conv_ratio);
    if (!strcmp(key, "expansion"))
        return parse_ratio(key, v, &c->expansion);
    if (!strcmp(key, "act")) {
        if (strcmp(v, "gelu") && strcmp(v, "silu"))
            return ml_fail(ML_ERR_USAGE, "override act=%s: want gelu or silu", v);
        c->act = v[0] == 's' ? ACT_SILU : ACT_GELU;
        return ML_OK;
    }
    if (!strcmp(key, "norm")) {
        if (strcmp(v, "layernorm") && strcmp(v, "rmsnorm"))
            return ml_fail(ML_ERR_USAGE, "override norm=%s: want layernorm or rmsnorm", v);
        c->norm = v[0] == 'r' ? NORM_RMS : NORM_LAYER;
        return ML_OK;
    }
    return ml_fail(ML_ERR_USAGE, "unknown override key '%s' (allowed: %s)", key, override_keys);
}

ml_status model_config_from_name(const char *spec, model_config *out)
{
    char base[64];
    const char *colon = strchr(spec, ':');
    size_t blen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (blen >= sizeof base)
        return ml_fail(ML_ERR_USAGE, "unknown model '%.40s...' (known: %s)", spec, model_zoo_names());
    memcpy(base, spec, blen);
    base[blen] = '\0';
    const zoo_entry *z = NULL;
    for (int i = 0; i < ZOO_LEN && !z; i++)
        if (!strcmp(zoo[i].name, base))
            z = &zoo[i];
    if (!z)
        return ml_fail(ML_ERR_USAGE, "unknown model '%s' (known: %s)", base, model_zoo_names());
    config_from_entry(z, out);
    if (strlen(spec) >= sizeof out->name)
        return ml_fail(ML_ERR_USAGE, "model spec too long (%zu characters)", strlen(spec));
    snprintf(out->name, sizeof out->name, "%s", spec);
    if (!colon)
        return ML_OK;
    char buf[160];
    snprintf(buf, sizeof buf, "%s", colon + 1);
    if (!buf[0])
        return ml_fail(ML_ERR_USAGE, "'%s': empty override list after ':' (keys: %s)", spec, override_keys);
    for (char *kv = buf, *next; kv; kv = next) {
        char *comma = strchr(kv, ',');
        next = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        if (!*kv)
            return ml_fail(ML_ERR_USAGE, "'%s': empty item in the override list (keys: %s)", spec, override_keys);
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || !eq[1])
            return ml_fail(ML_ERR_USAGE, "override '%s' is not key=value (keys: %s)", kv, override_keys);
        *eq = '\0';
        ML_TRY(apply_override(out, kv, eq + 1));
    }
    return ML_OK;
}
