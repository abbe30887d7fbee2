#include "harness/target.h"

#include "harness/cuda_measure.h"

#include <stdlib.h>
#include <string.h>

static const macs_opts fvcore_gu = {MACS_FVCORE, SCAN_GU};

static size_t floats_of(const param_spec *specs, int n)
{
    size_t k = 0;
    for (int i = 0; i < n; i++)
        k += param_spec_numel(&specs[i]);
    return k;
}

ml_status target_plan_model(target *t, const model_config *cfg, int B, int H, int W, const backend *be)
{
    memset(t, 0, sizeof *t);
    t->level = TARGET_MODEL, t->be = be, t->B = B, t->H = H, t->W = W;
    /* the widest tensor of any stage is at most B x H x W x (widest stage) x (its hidden multiple) */
    int cmax = 1;
    for (int s = 0; s < cfg->num_stages; s++)
        cmax = cfg->dims[s] > cmax ? cfg->dims[s] : cmax;
    const double mult = cfg->expansion > cfg->conv_ratio ? cfg->expansion : cfg->conv_ratio;
    const size_t f[5] = {(size_t)B, (size_t)H, (size_t)W, (size_t)cmax, (size_t)(mult > 1 ? mult + 1 : 1)};
    size_t n;
    ML_TRY(ml_size_product(&n, cfg->name, 5, f, ML_SIZE_HEADROOM));
    ML_TRY(model_plan_on(&t->m, cfg, B, H, W, be));
    t->params = model_param_count(&t->m);
    t->macs = model_macs(&t->m, &fvcore_gu, NULL);
    t->weight_bytes = model_weight_bytes(&t->m);
    t->activation_bytes = model_activation_bytes(&t->m);
    t->n_in = (size_t)B * model_input_floats(&t->m);
    t->n_out = t->m.n_logits;
    return ML_OK;
}

ml_status target_plan_block(target *t, const mixer_ops *ops, const mixer_config *mc, int width, int B, int H, int W,
                            const backend *be)
{
    memset(t, 0, sizeof *t);
    t->level = TARGET_BLOCK, t->be = be, t->B = B, t->H = H, t->W = W;
    mixer_config c = *mc;
    c.threads = be->kind == BACKEND_CPU ? (c.threads > 0 ? c.threads : 1) : 1;
    const size_t f[4] = {(size_t)B, (size_t)H, (size_t)W, (size_t)width};
    size_t n;
    ML_TRY(ml_size_product(&n, "block (B x H x W x C)", 4, f, ML_SIZE_HEADROOM));
    t->bc = block_config_make(width, 8.0 / 3.0, 1.0, ACT_GELU, NORM_LAYER, 1e-6f, 1, ops, &c);
    ML_TRY(block_config_validate(&t->bc));
    ML_TRY(mixer_supports(ops, be, &t->bc.mcfg));
    t->nbp = block_param_specs(&t->bc, t->bspecs, NULL);
    t->params = floats_of(t->bspecs, t->nbp);
    t->macs = block_macs(&t->bc, B, H, W, &fvcore_gu);
    t->bs = block_buffer_floats(be, &t->bc, B, H, W, t->bc.mcfg.threads);
    t->n_in = t->n_out = (size_t)B * H * W * width;
    t->weight_bytes = t->params * sizeof(float);
    t->activation_bytes = (t->n_in + t->bs.t + t->bs.u + t->bs.m + t->bs.ws) * sizeof(float);
    return ML_OK;
}

ml_status target_plan_mixer(target *t, mixer_instance *mi, int B, int H, int W, const backend *be)
{
    memset(t, 0, sizeof *t);
    t->level = TARGET_MIXER, t->be = be, t->B = B, t->H = H, t->W = W;
    const size_t f[4] = {(size_t)B, (size_t)H, (size_t)W, (size_t)mi->cfg.channels};
    size_t n;
    ML_TRY(ml_size_product(&n, "mixer run (B x H x W x E)", 4, f, ML_SIZE_HEADROOM));
    t->mi = *mi;
    memset(mi, 0, sizeof *mi); /* the target owns it now */
    ML_TRY(mixer_instance_to(&t->mi, be));
    t->params = floats_of(t->mi.specs, t->mi.nparams);
    t->macs = t->mi.ops->macs(&t->mi.cfg, B, H, W, &fvcore_gu);
    t->n_in = t->n_out = (size_t)B * H * W * t->mi.cfg.channels;
    t->weight_bytes = t->params * sizeof(float);
    t->activation_bytes = (2 * t->n_in + mixer_instance_workspace(&t->mi, B, H, W)) * sizeof(float);
    return ML_OK;
}

ml_status target_check_memory(const target *t)
{
    /* what the command holds on the host besides: an input batch and the output read back */
    double host = (double)(t->n_in + t->n_out) * sizeof(float), need = host;
    char what[400];
    if (t->level == TARGET_MODEL) {
        const double wb = (double)model_weight_bytes(&t->m), rest = (double)t->activation_bytes;
        need += wb + (t->be->host_memory ? rest + (double)t->n_in * sizeof(float) : 0.0);
        snprintf(what, sizeof what, "%s at batch %d, %dx%d (weights, activations, workspace, input and output)",
                 t->m.cfg.name, t->B, t->H, t->W);
    } else {
        /* a mixer's parameters are already allocated (mixer_instance_random / _load checked them) */
        need += (t->level == TARGET_BLOCK ? (double)t->weight_bytes : 0.0) +
                (t->be->host_memory ? (double)t->activation_bytes : 0.0);
        snprintf(what, sizeof what, "%s",
                 t->level == TARGET_BLOCK ? "this block run (weights, input, buffers, workspace and output)"
                                          : "this mixer run (input, output and workspace)");
    }
    return ml_check_fits(need, what);
}

ml_status target_check_mixer_plan(const char *name, const mixer_config *cfg, int B, int H, int W, const backend *be)
{
    const mixer_ops *ops;
    ML_TRY(mixer_lookup(name, &ops));
    ML_TRY(ops->validate(cfg));
    const size_t f[4] = {(size_t)B, (size_t)H, (size_t)W, (size_t)cfg->channels};
    size_t n, params;
    ML_TRY(ml_size_product(&n, "mixer run (B x H x W x E)", 4, f, ML_SIZE_HEADROOM));
    ML_TRY(mixer_param_floats(ops, cfg, &params));
    /* parameters (host, and a copy on a device), the input and output on the backend and on the host, workspace */
    const double ws = (double)ops->workspace_floats(be, cfg, B, H, W);
    const double need = ((double)params * (be->host_memory ? 1 : 2) + 4.0 * (double)n + ws) * sizeof(float);
    return ml_check_fits(need, "this mixer run (parameters, input, output and workspace)");
}

/* n floats of backend memory into *p, or the error. */
static ml_status alloc_into(const backend *be, float **p, size_t n, const char *what)
{
    *p = backend_alloc_floats(be, n ? n : 1, what);
    return *p ? ML_OK : ML_ERR_NOMEM;
}

static ml_status alloc_block(target *t)
{
    const backend *be = t->be;
    for (int i = 0; i < t->nbp; i++) {
        const size_t n = param_spec_numel(&t->bspecs[i]);
        t->bhost[i] = ml_malloc(n * sizeof(float), t->bspecs[i].name);
        if (!t->bhost[i])
            return ML_ERR_NOMEM;
        if (be->host_memory)
            t->bdev[i] = t->bhost[i];
        else
            ML_TRY(alloc_into(be, &t->bdev[i], n, t->bspecs[i].name));
    }
    block_bind(&t->bc, t->bdev, &t->bp);
    ML_TRY(alloc_into(be, &t->x, t->n_in, "block input"));
    ML_TRY(alloc_into(be, &t->buf.t, t->bs.t, "block t"));
    ML_TRY(alloc_into(be, &t->buf.u, t->bs.u, "block u"));
    ML_TRY(alloc_into(be, &t->buf.m, t->bs.m, "block m"));
    ML_TRY(alloc_into(be, &t->buf.ws, t->bs.ws, "block workspace"));
    t->buf.v = t->buf.u, t->buf.ld_v = 2 * (size_t)t->bc.hidden, t->buf.threads = t->bc.mcfg.threads;
    t->input = t->x;
    return ML_OK;
}

ml_status target_alloc(target *t)
{
    const backend *be = t->be;
    t->allocated = 1;
    ML_TRY(target_check_memory(t));
    switch (t->level) {
    case TARGET_MODEL:
        ML_TRY(model_alloc(&t->m));
        /* the CPU reads the caller's batch; other backends get their own copy in the model */
        if (be->host_memory)
            ML_TRY(alloc_into(be, &t->x, t->n_in, "input batch"));
        t->input = be->host_memory ? t->x : t->m.input;
        return ML_OK;
    case TARGET_BLOCK:
        return alloc_block(t);
    case TARGET_MIXER:
        ML_TRY(alloc_into(be, &t->x, t->n_in, "mixer input"));
        ML_TRY(alloc_into(be, &t->y, t->n_out, "mixer output"));
        ML_TRY(alloc_into(be, &t->mws, mixer_instance_workspace(&t->mi, t->B, t->H, t->W), "mixer workspace"));
        t->input = t->x;
        return ML_OK;
    }
    return ML_OK;
}

ml_status target_init_random(target *t, uint64_t seed)
{
    switch (t->level) {
    case TARGET_MODEL:
        model_init_random(&t->m, seed);
        return model_sync_weights(&t->m);
    case TARGET_BLOCK: {
        rng_state r;
        rng_seed(&r, seed);
        for (int i = 0; i < t->nbp; i++)
            rng_fill_normal(&r, t->bhost[i], param_spec_numel(&t->bspecs[i]), 0.02);
        block_params hp;
        block_bind(&t->bc, t->bhost, &hp);
        if (t->bc.mixer->init)
            t->bc.mixer->init(&t->bc.mcfg, hp.mixer, &r);
        for (int i = 0; i < t->nbp && !t->be->host_memory; i++)
            ML_TRY(t->be->upload(t->bdev[i], t->bhost[i], param_spec_numel(&t->bspecs[i]) * sizeof(float)));
        return ML_OK;
    }
    case TARGET_MIXER:
        return ML_OK;
    }
    return ML_OK;
}

ml_status target_sync_weights(target *t) { return t->level == TARGET_MODEL ? model_sync_weights(&t->m) : ML_OK; }

ml_status target_set_input(target *t, const float *host)
{
    return t->be->upload((void *)t->input, host, t->n_in * sizeof(float));
}

ml_status target_random_input(target *t, uint64_t seed)
{
    float *h = ml_malloc(t->n_in * sizeof *h, "input");
    if (!h)
        return ML_ERR_NOMEM;
    rng_state r;
    rng_seed(&r, seed);
    if (t->level == TARGET_MODEL && t->m.cfg.skeleton == SKEL_SEQUENCE) /* token ids, uniform over the vocabulary */
        for (size_t i = 0; i < t->n_in; i++)
            h[i] = (float)(rng_next_u64(&r) % (uint64_t)t->m.cfg.vocab);
    else
        rng_fill_normal(&r, h, t->n_in, 1.0);
    ml_status s = target_set_input(t, h);
    free(h);
    return s;
}

void target_run(void *p)
{
    target *t = p;
    switch (t->level) {
    case TARGET_MODEL:
        model_forward(&t->m, t->input, NULL, NULL);
        break;
    case TARGET_BLOCK:
        block_forward(t->be, &t->bc, &t->bp, t->x, t->B, t->H, t->W, &t->buf);
        break;
    case TARGET_MIXER:
        mixer_instance_run(&t->mi, t->y, t->x, t->B, t->H, t->W, t->mws);
        break;
    }
}

ml_status target_output(target *t, float *host)
{
    const float *src = t->level == TARGET_MODEL ? t->m.logits : t->level == TARGET_BLOCK ? t->x : t->y;
    ML_TRY(t->be->sync("forward"));
    return t->be->download(host, src, t->n_out * sizeof(float));
}

void target_free(target *t)
{
    const backend *be = t->be;
    if (be && t->x && t->allocated)
        be->release(t->x);
    if (t->level == TARGET_MODEL) {
        model_free(&t->m);
    } else if (t->level == TARGET_BLOCK && be) {
        for (int i = 0; i < t->nbp; i++) {
            if (t->bdev[i] && t->bdev[i] != t->bhost[i])
                be->release(t->bdev[i]);
            free(t->bhost[i]);
        }
        float *bufs[4] = {t->buf.t, t->buf.u, t->buf.m, t->buf.ws};
        for (int i = 0; i < 4; i++)
            if (bufs[i])
                be->release(bufs[i]);
    } else if (t->level == TARGET_MIXER && be) {
        if (t->y)
            be->release(t->y);
        if (t->mws)
            be->release(t->mws);
        mixer_instance_free(&t->mi);
    }
    memset(t, 0, sizeof *t);
}

timer_sample_fn target_sampler(const target *t)
{
    return t->be->host_memory ? timer_host_sample_ms : cuda_sample_ms;
}

ml_status target_measure(target *t, const timer_policy *p, timer_stats *st, int *timed_out, double *first_ms)
{
    const timer_sample_fn sample = target_sampler(t);
    *timed_out = 0;
    *first_ms = sample(target_run, t);
    ML_TRY(t->be->sync("first timed run"));
    if (*first_ms > p->max_time_s * 1e3) {
        *timed_out = 1;
        return ML_OK;
    }
    ML_TRY(timer_measure_by(p, target_run, t, sample, st));
    return t->be->sync("timed runs");
}

ml_status target_load_weights(target *t, const char *path, uint64_t seed, int ignore_unexpected)
{
    if (!path)
        return target_init_random(t, seed);
    ML_TRY(model_load_file(&t->m, path, ignore_unexpected));
    return target_sync_weights(t);
}
