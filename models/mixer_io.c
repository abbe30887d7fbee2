#include "models/mixer_io.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

ml_status mixer_lookup(const char *name, const mixer_ops **out)
{
    *out = mixer_find(name);
    if (!*out)
        return ml_fail(ML_ERR_USAGE, "unknown mixer '%s' (known: %s)", name, mixer_names());
    return ML_OK;
}

static int shape_from_file(void *ctx, const char *name, int64_t *shape)
{
    const st_tensor *t = st_find((const st_file *)ctx, name);
    if (!t)
        return -1;
    for (int i = 0; i < t->ndim && i < 8; i++)
        shape[i] = t->shape[i];
    return t->ndim;
}

ml_status mixer_param_floats(const mixer_ops *ops, const mixer_config *cfg, size_t *floats)
{
    param_spec specs[MIXER_MAX_PARAMS];
    ML_TRY(ops->validate(cfg));
    const int n = ops->param_specs(cfg, specs);
    *floats = 0;
    for (int i = 0; i < n; i++) {
        size_t dims[TENSOR_MAX_DIMS], k;
        for (int d = 0; d < specs[i].ndim; d++)
            dims[d] = (size_t)specs[i].shape[d];
        ML_TRY(ml_size_product(&k, specs[i].name, specs[i].ndim, dims, sizeof(float)));
        ML_TRY(ml_size_add(floats, "mixer parameters", *floats, k));
    }
    return ML_OK;
}

static ml_status alloc_params(mixer_instance *mi)
{
    mi->be = &backend_cpu;
    size_t floats;
    ML_TRY(mixer_param_floats(mi->ops, &mi->cfg, &floats));
    char what[96];
    snprintf(what, sizeof what, "the %s parameters", mi->ops->name);
    ML_TRY(ml_check_fits((double)floats * sizeof(float), what));
    mi->nparams = mi->ops->param_specs(&mi->cfg, mi->specs);
    for (int i = 0; i < mi->nparams; i++) {
        mi->params[i] = ml_calloc(param_spec_numel(&mi->specs[i]), sizeof(float), mi->specs[i].name);
        if (!mi->params[i])
            return ML_ERR_NOMEM;
        mi->dev[i] = mi->params[i];
    }
    return ML_OK;
}

ml_status mixer_instance_load(mixer_instance *mi, const char *name, const st_file *f, int channels,
                              int head_size, const char *const *allowed)
{
    memset(mi, 0, sizeof *mi);
    ML_TRY(mixer_lookup(name, &mi->ops));
    mi->cfg = mixer_config_default(channels, channels);
    mi->cfg.head_size = head_size;
    mi->cfg.threads = omp_get_max_threads();
    if (mi->ops->infer) {
        ml_status s = mi->ops->infer(&mi->cfg, shape_from_file, (void *)f);
        if (s != ML_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", ml_last_error());
            return ml_fail(s, "'%s': %s: %s", f->path, name, why);
        }
    }
    if (channels > 0 && mi->cfg.channels != channels)
        return ml_fail(ML_ERR_FORMAT, "'%s': the %s weights have E = %d but the input has E = %d", f->path,
                       name, mi->cfg.channels, channels);
    ML_TRY(alloc_params(mi));
    for (int i = 0; i < mi->nparams; i++)
        ML_TRY(st_load(f, mi->specs[i].name, mi->specs[i].ndim, mi->specs[i].shape, mi->params[i]));
    for (int i = 0; i < f->count; i++) {
        const char *tn = f->tensors[i].name;
        int known = 0;
        for (int k = 0; k < mi->nparams && !known; k++)
            known = strcmp(mi->specs[k].name, tn) == 0;
        for (int k = 0; allowed && allowed[k] && !known; k++) {
            const size_t len = strlen(allowed[k]);
            known = len && allowed[k][len - 1] == '*' ? strncmp(allowed[k], tn, len - 1) == 0
                                                       : strcmp(allowed[k], tn) == 0;
        }
        if (!known)
            return ml_fail(ML_ERR_FORMAT, "'%s': unexpected tensor '%s' (not a parameter of %s)", f->path, tn,
                           name);
    }
    return ML_OK;
}

ml_status mixer_instance_random(mixer_instance *mi, const char *name, const mixer_config *cfg,
                                uint64_t seed)
{
    memset(mi, 0, sizeof *mi);
    ML_TRY(mixer_lookup(name, &mi->ops));
    mi->cfg = *cfg;
    if (mi->cfg.threads < 1)
        mi->cfg.threads = omp_get_max_threads();
    ML_TRY(alloc_params(mi));
    rng_state rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < mi->nparams; i++) {
        size_t n = param_spec_numel(&mi->specs[i]);
        float *d = mi->params[i];
        switch (mi->specs[i].init) {
        case PARAM_INIT_TRUNC_NORMAL:
            for (size_t k = 0; k < n; k++)
                d[k] = (float)rng_trunc_normal(&rng, 0.02, -2.0, 2.0);
            break;
        case PARAM_INIT_ONES:
            for (size_t k = 0; k < n; k++)
                d[k] = 1.0f;
            break;
        default:
            break; /* zeros from calloc; CUSTOM below */
        }
    }
    if (mi->ops->init)
        mi->ops->init(&mi->cfg, mi->params, &rng);
    return ML_OK;
}

static void release_device(mixer_instance *mi)
{
    for (int i = 0; i < mi->nparams; i++) {
        if (mi->dev[i] && mi->dev[i] != mi->params[i])
            mi->be->release(mi->dev[i]);
        mi->dev[i] = mi->params[i];
    }
    mi->be = &backend_cpu;
}

ml_status mixer_instance_to(mixer_instance *mi, const backend *be)
{
    ML_TRY(mixer_supports(mi->ops, be, &mi->cfg));
    release_device(mi);
    if (be->host_memory) {
        mi->be = be;
        return ML_OK;
    }
    mi->be = be;
    for (int i = 0; i < mi->nparams; i++)
        mi->dev[i] = NULL;
    for (int i = 0; i < mi->nparams; i++) {
        const size_t bytes = param_spec_numel(&mi->specs[i]) * sizeof(float);
        if (!(mi->dev[i] = backend_alloc_floats(be, param_spec_numel(&mi->specs[i]), mi->specs[i].name)))
            return ML_ERR_NOMEM;
        ML_TRY(be->upload(mi->dev[i], mi->params[i], bytes));
    }
    return ML_OK;
}

size_t mixer_instance_workspace(const mixer_instance *mi, int B, int H, int W)
{
    return mi->ops->workspace_floats(mi->be, &mi->cfg, B, H, W);
}

void mixer_instance_run(const mixer_instance *mi, float *out, const float *in, int B, int H, int W, float *ws)
{
    mi->ops->forward(mi->be, &mi->cfg, (const float *const *)mi->dev, out, NULL, in, (size_t)mi->cfg.channels, ws, B, H,
                     W);
}

size_t mixer_instance_saved_floats(const mixer_instance *mi, int B, int H, int W)
{
    return mixer_saved_floats(mi->ops, &mi->cfg, B, H, W);
}

size_t mixer_instance_backward_workspace(const mixer_instance *mi, int B, int H, int W)
{
    return mi->ops->backward_workspace_floats(mi->be, &mi->cfg, B, H, W);
}

void mixer_instance_run_train(const mixer_instance *mi, float *out, float *saved, const float *in, int B, int H, int W,
                              float *ws)
{
    mi->ops->forward(mi->be, &mi->cfg, (const float *const *)mi->dev, out, saved, in, (size_t)mi->cfg.channels, ws, B,
                     H, W);
}

void mixer_instance_backward(const mixer_instance *mi, float *const *d_params, float *d_in, const float *d_out,
                             const float *in, const float *saved, int B, int H, int W, float *ws)
{
    const size_t E = (size_t)mi->cfg.channels;
    mi->ops->backward(mi->be, &mi->cfg, (const float *const *)mi->dev, d_params, d_in, E, d_out, in, E, saved, ws, B,
                      H, W);
}

void mixer_instance_free(mixer_instance *mi)
{
    if (mi->be)
        release_device(mi);
    for (int i = 0; i < mi->nparams; i++)
        free(mi->params[i]);
    memset(mi, 0, sizeof *mi);
}
