/* mixerlab sweep: run a spec's configurations and log each to SQLite. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/spec.h"
#include "harness/store.h"
#include "models/mixer_io.h"
#include "harness/cuda_util.h"
#include "models/model.h"
#ifdef MIXERLAB_HAVE_CUDA
#include "models/model_cuda.h"
#endif

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char sweep_usage[] =
    "usage: mixerlab sweep SPEC.ini [--db FILE] [--resume] [--shard i/N] [--list] [--dry-run]\n"
    "\n"
    "Runs every configuration of the spec (the cartesian product of its [grid] lists,\n"
    "in the order model, mixer, resolution or tokens, width, batch, device, threads) and\n"
    "writes one row per configuration, with its raw samples, to the SQLite database,\n"
    "together with the run's provenance. A configuration that fails (out of memory,\n"
    "unsupported, error, timeout) becomes a row with that status and the sweep goes on.\n"
    "\n"
    "  --db FILE    database (default results/mixerlab.sqlite; created and migrated as needed)\n"
    "  --resume     skip configurations already recorded with status ok\n"
    "  --shard i/N  run only configurations k with k mod N = i (default from\n"
    "               SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set)\n"
    "  --list       print the configurations with their hashes, run nothing\n"
    "  --dry-run    like --list, marking those --resume would skip\n"
    "\n"
    "Spec format: experiments/README.md. Example: mixerlab sweep experiments/demo_small.ini\n";

typedef struct {
    double *samples;
    timer_stats st;
    int have_latency;
    int64_t params, macs, weight_bytes, activation_bytes, peak_bytes;
    const char *status;
    char message[512];
} measured;

static int64_t peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : -1;
}

static const char *status_of(ml_status s)
{
    return s == ML_ERR_NOMEM ? "oom" : "error";
}

typedef struct {
    void (*fn)(void *);
    void *ctx;
} timed;

/* One call first: a config whose single run already exceeds max_time_s is a timeout. */
static ml_status measure_latency(const sweep_spec *sp, timed t, measured *out)
{
    double t0 = timer_now_s();
    t.fn(t.ctx);
    double first = timer_now_s() - t0;
    if (first > sp->policy.max_time_s) {
        out->status = "timeout";
        snprintf(out->message, sizeof out->message, "one run took %.1f s, over max_time_s = %g", first,
                 sp->policy.max_time_s);
        return ML_OK;
    }
    ML_TRY(timer_measure(&sp->policy, t.fn, t.ctx, &out->st));
    out->have_latency = 1;
    return ML_OK;
}

typedef struct {
    model *m;
    const float *x;
} fwd_ctx;

static void run_model(void *p)
{
    fwd_ctx *c = p;
    model_forward(c->m, c->x, NULL, NULL);
}

typedef struct {
    const block_config *bc;
    float **params;
    float *x;
    block_buffers buf;
    int B, H, W;
} blk_ctx;

static void run_block(void *p)
{
    blk_ctx *c = p;
    block_forward(c->bc, (const float *const *)c->params, c->x, c->B, c->H, c->W, &c->buf);
}

typedef struct {
    const mixer_instance *mi;
    float *y, *ws;
    const float *x;
    int B, H, W;
} mix_ctx;

static void run_mixer(void *p)
{
    mix_ctx *c = p;
    mixer_instance_run(c->mi, c->y, c->x, c->B, c->H, c->W, c->ws);
}

/* Plans the config's model and records what its shapes decide: params, MACs, host arena sizes. */
static ml_status plan_config_model(const sweep_config *c, model *m, measured *out)
{
    model_config cfg;
    memset(m, 0, sizeof *m);
    ML_TRY(model_config_from_name(c->model, &cfg));
    ML_TRY(model_plan(m, &cfg, (int)c->batch, (int)c->resolution, (int)c->resolution));
    macs_opts o = {MACS_FVCORE, SCAN_GU};
    out->params = (int64_t)model_param_count(m);
    out->macs = (int64_t)model_macs(m, &o, NULL);
    out->weight_bytes = (int64_t)model_weight_bytes(m);
    out->activation_bytes = (int64_t)model_activation_bytes(m);
    out->peak_bytes = out->weight_bytes + out->activation_bytes;
    return ML_OK;
}

/* A seeded standard-normal input of n floats (NULL and an error when it does not fit). */
static float *random_input(size_t n, const char *what)
{
    float *x = ml_malloc(n * sizeof *x, what);
    if (x) {
        rng_state r;
        rng_seed(&r, 1);
        rng_fill_normal(&r, x, n, 1.0);
    }
    return x;
}

static ml_status measure_model(const sweep_spec *sp, const sweep_config *c, measured *out)
{
    model m;
    ml_status s = plan_config_model(c, &m, out);
    if (s == ML_OK && (sp->metrics & (METRIC_LATENCY | METRIC_MEMORY)))
        s = model_alloc(&m);
    float *x = NULL;
    if (s == ML_OK && (sp->metrics & METRIC_LATENCY)) {
        x = random_input((size_t)c->batch * 3 * c->resolution * c->resolution, "input batch");
        s = x ? ML_OK : ML_ERR_NOMEM;
        if (s == ML_OK) {
            model_init_random(&m, 0);
            fwd_ctx fc = {&m, x};
            s = measure_latency(sp, (timed){run_model, &fc}, out);
        }
    }
    free(x);
    model_free(&m);
    return s;
}

static ml_status measure_mixer(const sweep_spec *sp, const sweep_config *c, measured *out)
{
    mixer_config cfg = mixer_config_default((int)c->width, (int)c->width);
    mixer_instance mi;
    ml_status s = mixer_instance_random(&mi, c->mixer, &cfg, 0);
    const int B = (int)c->batch, H = c->grid_h, W = c->grid_w;
    const size_t n = (size_t)B * H * W * c->width;
    float *x = NULL, *y = NULL, *ws = NULL;
    if (s == ML_OK) {
        macs_opts o = {MACS_FVCORE, SCAN_GU};
        out->params = 0;
        for (int i = 0; i < mi.nparams; i++)
            out->params += (int64_t)param_spec_numel(&mi.specs[i]);
        out->macs = (int64_t)mi.ops->macs(&mi.cfg, B, H, W, &o);
        out->weight_bytes = out->params * 4;
        out->activation_bytes = (int64_t)(2 * n + mixer_instance_workspace(&mi, B, H, W)) * 4;
        out->peak_bytes = out->weight_bytes + out->activation_bytes;
    }
    if (s == ML_OK && (sp->metrics & METRIC_LATENCY)) {
        x = random_input(n, "mixer input");
        y = x ? ml_malloc(n * sizeof *y, "mixer output") : NULL;
        ws = y ? ml_malloc(mixer_instance_workspace(&mi, B, H, W) * sizeof *ws + 64, "mixer workspace") : NULL;
        s = ws ? ML_OK : ML_ERR_NOMEM;
        if (s == ML_OK) {
            mix_ctx mc = {&mi, y, ws, x, B, H, W};
            s = measure_latency(sp, (timed){run_mixer, &mc}, out);
        }
    }
    free(x), free(y), free(ws);
    mixer_instance_free(&mi);
    return s;
}

/* The block of a level-block config: MambaOut's Gated CNN block at width C
 * with the mixer in its slot, its params and MACs in out; threads sizes the
 * CPU's per-thread scratch (1 on the GPU). */
static ml_status block_setup(const sweep_config *c, int threads, mixer_config *mc, block_config *bc,
                             param_spec *specs, int *np, measured *out)
{
    const mixer_ops *ops;
    ML_TRY(mixer_lookup(c->mixer, &ops));
    const int C = (int)c->width;
    *mc = mixer_config_default(C, C);
    mc->threads = threads;
    *bc = block_config_make(C, 8.0 / 3.0, 1.0, ACT_GELU, NORM_LAYER, 1e-6f, 1, ops, mc);
    ML_TRY(block_config_validate(bc));
    *np = block_param_specs(bc, specs);
    macs_opts o = {MACS_FVCORE, SCAN_GU};
    out->params = 0;
    for (int i = 0; i < *np; i++)
        out->params += (int64_t)param_spec_numel(&specs[i]);
    out->macs = (int64_t)block_macs(bc, (int)c->batch, c->grid_h, c->grid_w, &o);
    out->weight_bytes = out->params * 4;
    return ML_OK;
}

/* Host parameters for the block: N(0, 0.02), the mixer's own init in its slot. */
static ml_status block_random_params(const block_config *bc, const param_spec *specs, int np, float **params,
                                     rng_state *r)
{
    for (int i = 0; i < np; i++) {
        params[i] = ml_malloc(param_spec_numel(&specs[i]) * sizeof(float), specs[i].name);
        if (!params[i])
            return ML_ERR_NOMEM;
        rng_fill_normal(r, params[i], param_spec_numel(&specs[i]), 0.02);
    }
    if (bc->mixer->init)
        bc->mixer->init(&bc->mcfg, params + block_mixer_param_offset(bc), r);
    return ML_OK;
}

static ml_status measure_block(const sweep_spec *sp, const sweep_config *c, measured *out)
{
    mixer_config mc;
    block_config bc;
    param_spec specs[BLOCK_MAX_PARAMS];
    int np;
    /* threads set for this config by cli_set_threads */
    ML_TRY(block_setup(c, omp_get_max_threads(), &mc, &bc, specs, &np, out));
    const int B = (int)c->batch, H = c->grid_h, W = c->grid_w;
    block_sizes bs = block_buffer_floats(&bc, B, H, W, mc.threads);
    const size_t n = (size_t)B * H * W * c->width;
    out->activation_bytes = (int64_t)(n + bs.t + bs.u + bs.m + bs.ws) * 4;
    out->peak_bytes = out->weight_bytes + out->activation_bytes;
    if (!(sp->metrics & METRIC_LATENCY))
        return ML_OK;
    float *params[BLOCK_MAX_PARAMS] = {0};
    blk_ctx bk = {&bc, params, NULL, {NULL, NULL, NULL, NULL, mc.threads}, B, H, W};
    rng_state r;
    rng_seed(&r, 1);
    ml_status s = block_random_params(&bc, specs, np, params, &r);
    bk.x = s == ML_OK ? ml_malloc(n * sizeof(float), "block input") : NULL;
    bk.buf.t = bk.x ? ml_malloc(bs.t * sizeof(float) + 64, "block t") : NULL;
    bk.buf.u = bk.buf.t ? ml_malloc(bs.u * sizeof(float) + 64, "block u") : NULL;
    bk.buf.m = bk.buf.u ? ml_malloc(bs.m * sizeof(float) + 64, "block m") : NULL;
    bk.buf.ws = bk.buf.m ? ml_malloc(bs.ws * sizeof(float) + 64, "block workspace") : NULL;
    if (s == ML_OK && !bk.buf.ws)
        s = ML_ERR_NOMEM;
    if (s == ML_OK) {
        rng_fill_normal(&r, bk.x, n, 1.0);
        s = measure_latency(sp, (timed){run_block, &bk}, out);
    }
    for (int i = 0; i < np; i++)
        free(params[i]);
    free(bk.x), free(bk.buf.t), free(bk.buf.u), free(bk.buf.m), free(bk.buf.ws);
    return s;
}

#ifdef MIXERLAB_HAVE_CUDA
/* GPU configs: the spec's warm-up and stopping rule, each sample timed with
 * CUDA events on the work's stream. A first run over max_time_s is a timeout. */
static ml_status cuda_measure(const sweep_spec *sp, void (*fn)(void *), void *ctx, measured *out)
{
    const double first = cuda_sample_ms(fn, ctx);
    ML_TRY(cuda_sync("first timed run"));
    if (first > sp->policy.max_time_s * 1e3) {
        out->status = "timeout";
        snprintf(out->message, sizeof out->message, "one run took %.1f s, over max_time_s = %g", first * 1e-3,
                 sp->policy.max_time_s);
        return ML_OK;
    }
    ML_TRY(timer_measure_by(&sp->policy, fn, ctx, cuda_sample_ms, &out->st));
    ML_TRY(cuda_sync("timed runs"));
    out->have_latency = 1;
    return ML_OK;
}

static void run_model_cuda(void *p) { model_cuda_forward(p); }

static ml_status measure_model_cuda(const sweep_spec *sp, const sweep_config *c, measured *out)
{
    model m;
    ml_status s = plan_config_model(c, &m, out);
    if (s == ML_OK) {
        s = model_cuda_supported(&m);
        if (s != ML_OK) {
            out->status = "unsupported";
            snprintf(out->message, sizeof out->message, "%s", ml_last_error());
            model_free(&m);
            return ML_OK;
        }
    }
    if (s == ML_OK)
        s = model_alloc(&m);
    model_cuda g;
    memset(&g, 0, sizeof g);
    if (s == ML_OK) {
        model_init_random(&m, 0);
        s = model_cuda_init(&g, &m);
    }
    if (s == ML_OK) {
        out->weight_bytes = (int64_t)g.weight_bytes;
        out->activation_bytes = (int64_t)g.activation_bytes;
        out->peak_bytes = out->weight_bytes + out->activation_bytes;
        size_t n = (size_t)c->batch * 3 * c->resolution * c->resolution;
        float *x = random_input(n, "input batch");
        s = x ? cuda_to_device(g.input, x, n * sizeof *x) : ML_ERR_NOMEM;
        free(x);
        if (s == ML_OK && (sp->metrics & METRIC_LATENCY))
            s = cuda_measure(sp, run_model_cuda, &g, out);
    }
    model_cuda_free(&g);
    model_free(&m);
    return s;
}

typedef struct {
    const block_config *bc;
    float **dp;
    float *x;
    block_buffers buf;
    int B, H, W;
} blk_cuda_ctx;

static void run_block_cuda(void *p)
{
    blk_cuda_ctx *c = p;
    block_forward_cuda(c->bc, (const float *const *)c->dp, c->x, c->B, c->H, c->W, &c->buf);
}

/* MambaOut's Gated CNN block on the GPU, set up as measure_block sets it up
 * on the CPU; t holds every row (the GPU runs whole-tensor ops). */
static ml_status measure_block_cuda(const sweep_spec *sp, const sweep_config *c, measured *out)
{
    mixer_config mc;
    block_config bc;
    param_spec specs[BLOCK_MAX_PARAMS];
    int np;
    ML_TRY(block_setup(c, 1, &mc, &bc, specs, &np, out));
    const mixer_ops *ops = bc.mixer;
    if (!ops->forward_cuda || (ops->cuda_check && ops->cuda_check(&bc.mcfg) != ML_OK)) {
        out->status = "unsupported";
        if (!ops->forward_cuda)
            mixer_require_backend(ops, BACKEND_CUDA);
        snprintf(out->message, sizeof out->message, "%s", ml_last_error());
        return ML_OK;
    }
    const int B = (int)c->batch, H = c->grid_h, W = c->grid_w;
    block_sizes bs = block_buffer_floats(&bc, B, H, W, 1);
    const size_t n = (size_t)B * H * W * c->width;
    bs.t = n; /* the GPU runs whole-tensor ops: t holds every row */
    out->activation_bytes = (int64_t)(n + bs.t + bs.u + bs.m + bs.ws) * 4;
    out->peak_bytes = out->weight_bytes + out->activation_bytes;
    if (!(sp->metrics & METRIC_LATENCY))
        return ML_OK;
    float *host[BLOCK_MAX_PARAMS] = {0}, *dp[BLOCK_MAX_PARAMS] = {0};
    blk_cuda_ctx bk = {&bc, dp, NULL, {NULL, NULL, NULL, NULL, 1}, B, H, W};
    rng_state r;
    rng_seed(&r, 1);
    ml_status s = block_random_params(&bc, specs, np, host, &r);
    for (int i = 0; i < np && s == ML_OK; i++) {
        const size_t bytes = param_spec_numel(&specs[i]) * sizeof(float);
        s = cuda_malloc((void **)&dp[i], bytes, specs[i].name);
        if (s == ML_OK)
            s = cuda_to_device(dp[i], host[i], bytes);
    }
    float **bufs[5] = {&bk.x, &bk.buf.t, &bk.buf.u, &bk.buf.m, &bk.buf.ws};
    const size_t sizes[5] = {n, bs.t, bs.u, bs.m, bs.ws};
    const char *names[5] = {"block input", "block t", "block u", "block m", "block workspace"};
    for (int i = 0; i < 5 && s == ML_OK; i++)
        s = cuda_malloc((void **)bufs[i], (sizes[i] ? sizes[i] : 1) * sizeof(float), names[i]);
    if (s == ML_OK) {
        float *x = random_input(n, "block input");
        s = x ? cuda_to_device(bk.x, x, n * sizeof *x) : ML_ERR_NOMEM;
        free(x);
    }
    if (s == ML_OK)
        s = cuda_measure(sp, run_block_cuda, &bk, out);
    for (int i = 0; i < np; i++)
        free(host[i]), cuda_free(dp[i]);
    for (int i = 0; i < 5; i++)
        cuda_free(*bufs[i]);
    return s;
}

typedef struct {
    const mixer_instance *mi;
    float **dp;
    float *y, *ws;
    const float *x;
    int B, H, W;
} mix_cuda_ctx;

static void run_mixer_cuda(void *p)
{
    mix_cuda_ctx *c = p;
    c->mi->ops->forward_cuda(&c->mi->cfg, (const float *const *)c->dp, c->y, c->x, (size_t)c->mi->cfg.channels, c->ws,
                             c->B, c->H, c->W);
}

static ml_status measure_mixer_cuda(const sweep_spec *sp, const sweep_config *c, measured *out)
{
    const mixer_ops *ops;
    ML_TRY(mixer_lookup(c->mixer, &ops));
    mixer_config cfg = mixer_config_default((int)c->width, (int)c->width);
    if (!ops->forward_cuda || (ops->cuda_check && ops->cuda_check(&cfg) != ML_OK)) {
        out->status = "unsupported";
        if (!ops->forward_cuda)
            mixer_require_backend(ops, BACKEND_CUDA);
        snprintf(out->message, sizeof out->message, "%s", ml_last_error());
        return ML_OK;
    }
    mixer_instance mi;
    ml_status s = mixer_instance_random(&mi, c->mixer, &cfg, 0);
    const int B = (int)c->batch, H = c->grid_h, W = c->grid_w;
    const size_t n = (size_t)B * H * W * c->width, wsn = s == ML_OK ? mixer_instance_workspace(&mi, B, H, W) : 0;
    float *dp[MIXER_MAX_PARAMS] = {0}, *dx = NULL, *dy = NULL, *dws = NULL;
    if (s == ML_OK) {
        macs_opts o = {MACS_FVCORE, SCAN_GU};
        out->params = 0;
        for (int i = 0; i < mi.nparams; i++)
            out->params += (int64_t)param_spec_numel(&mi.specs[i]);
        out->macs = (int64_t)ops->macs(&mi.cfg, B, H, W, &o);
        out->weight_bytes = out->params * 4;
        out->activation_bytes = (int64_t)(2 * n + wsn) * 4;
        out->peak_bytes = out->weight_bytes + out->activation_bytes;
    }
    for (int i = 0; s == ML_OK && i < mi.nparams; i++) {
        size_t bytes = param_spec_numel(&mi.specs[i]) * sizeof(float);
        s = cuda_malloc((void **)&dp[i], bytes, mi.specs[i].name);
        if (s == ML_OK)
            s = cuda_to_device(dp[i], mi.params[i], bytes);
    }
    if (s == ML_OK)
        s = cuda_malloc((void **)&dx, n * sizeof(float), "mixer input");
    if (s == ML_OK)
        s = cuda_malloc((void **)&dy, n * sizeof(float), "mixer output");
    if (s == ML_OK)
        s = cuda_malloc((void **)&dws, wsn * sizeof(float), "mixer workspace");
    if (s == ML_OK) {
        float *x = random_input(n, "mixer input");
        s = x ? cuda_to_device(dx, x, n * sizeof *x) : ML_ERR_NOMEM;
        free(x);
    }
    if (s == ML_OK && (sp->metrics & METRIC_LATENCY)) {
        mix_cuda_ctx mc = {&mi, dp, dy, dws, dx, B, H, W};
        s = cuda_measure(sp, run_mixer_cuda, &mc, out);
    }
    for (int i = 0; i < MIXER_MAX_PARAMS; i++)
        cuda_free(dp[i]);
    cuda_free(dx), cuda_free(dy), cuda_free(dws);
    mixer_instance_free(&mi);
    return s;
}
#endif

static ml_status parse_shard(const char *v, int *i, int *n)
{
    long a, b;
    const char *slash = strchr(v, '/');
    char buf[32];
    if (!slash || (size_t)(slash - v) >= sizeof buf)
        return ml_fail(ML_ERR_USAGE, "--shard: '%s' is not i/N", v);
    memcpy(buf, v, (size_t)(slash - v));
    buf[slash - v] = '\0';
    ML_TRY(args_parse_long("--shard", slash + 1, 1, 100000, &b));
    ML_TRY(args_parse_long("--shard", buf, 0, b - 1, &a));
    *i = (int)a, *n = (int)b;
    return ML_OK;
}

static void describe(const sweep_config *c, char *buf, size_t n)
{
    if (c->level == LEVEL_MODEL)
        snprintf(buf, n, "%s %ldx%ld batch %ld %s", c->model, c->resolution, c->resolution, c->batch, c->device);
    else
        snprintf(buf, n, "%s %s L=%ld (%dx%d) width %ld batch %ld %s", sweep_level_name(c->level), c->mixer, c->tokens,
                 c->grid_h, c->grid_w, c->width, c->batch, c->device);
    if (c->threads) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, " threads %ld", c->threads);
    }
}

int cmd_sweep(int argc, char **argv)
{
    const char *spec_path = NULL, *db_path = "results/mixerlab.sqlite";
    int resume = 0, list = 0, dry = 0, shard_i = 0, shard_n = 1, shard_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_help(argv[i])) {
            fputs(sweep_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--db")) {
            ML_TRY(args_value(argc, argv, &i, &db_path));
        } else if (!strcmp(argv[i], "--resume")) {
            resume = 1;
        } else if (!strcmp(argv[i], "--list")) {
            list = 1;
        } else if (!strcmp(argv[i], "--dry-run")) {
            dry = 1;
        } else if (!strcmp(argv[i], "--shard")) {
            ML_TRY(args_value(argc, argv, &i, &v));
            ML_TRY(parse_shard(v, &shard_i, &shard_n));
            shard_set = 1;
        } else if (argv[i][0] == '-') {
            return ml_fail(ML_ERR_USAGE, "sweep: unknown option '%s' (see mixerlab sweep --help)", argv[i]);
        } else if (!spec_path) {
            spec_path = argv[i];
        } else {
            return ml_fail(ML_ERR_USAGE, "sweep: unexpected argument '%s'", argv[i]);
        }
    }
    if (!spec_path)
        return ml_fail(ML_ERR_USAGE, "sweep: SPEC is required (see mixerlab sweep --help)");
    const char *tid = getenv("SLURM_ARRAY_TASK_ID"), *tcount = getenv("SLURM_ARRAY_TASK_COUNT");
    if (!shard_set && tid && tcount) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s/%s", tid, tcount);
        ML_TRY(parse_shard(buf, &shard_i, &shard_n));
    }
    sweep_spec sp;
    ML_TRY(spec_parse(spec_path, &sp));
    sweep_config *cfgs;
    int n;
    ML_TRY(spec_expand(&sp, &cfgs, &n));

    store st;
    ml_status s = ML_OK;
    int opened = 0;
    if (!list || dry) {
        s = store_open(&st, db_path);
        opened = s == ML_OK;
    }
    if (s == ML_OK && (list || dry)) {
        printf("%s: %d configurations%s\n", sp.name, n, shard_n > 1 ? "" : "");
        for (int k = 0; k < n && s == ML_OK; k++) {
            if (k % shard_n != shard_i)
                continue;
            char d[320];
            describe(&cfgs[k], d, sizeof d);
            int done = 0;
            if (dry)
                s = store_has_ok(&st, sp.name, cfgs[k].hash, &done);
            printf("%4d %s %s%s\n", k, cfgs[k].hash, d, done ? "  [done: --resume skips it]" : "");
        }
        if (opened)
            store_close(&st);
        free(cfgs);
        return s;
    }
    if (s == ML_OK)
        s = store_begin_run(&st, argc, argv, 0);
    const int tty = isatty(2);
    int todo = 0, ran = 0, skipped = 0, failed = 0;
    for (int k = 0; k < n; k++)
        todo += k % shard_n == shard_i;
    double t_start = timer_now_s();
    for (int k = 0, seen = 0; k < n && s == ML_OK; k++) {
        if (k % shard_n != shard_i)
            continue;
        seen++;
        const sweep_config *c = &cfgs[k];
        char d[320];
        describe(c, d, sizeof d);
        if (resume) {
            int done = 0;
            s = store_has_ok(&st, sp.name, c->hash, &done);
            if (s != ML_OK)
                break;
            if (done) {
                skipped++;
                continue;
            }
        }
        double elapsed = timer_now_s() - t_start;
        double eta = ran ? elapsed / ran * (todo - seen + 1) : 0;
        if (tty) {
            /* a bar on a terminal, redrawn in place */
            char bar[21];
            int fill = todo ? 20 * (seen - 1) / todo : 0;
            for (int b = 0; b < 20; b++)
                bar[b] = b < fill ? '#' : '.';
            bar[20] = '\0';
            fprintf(stderr, "\r\033[K[%s] %d/%d %s", bar, seen, todo, d);
            if (ran)
                fprintf(stderr, "  ETA %.0f s", eta);
        } else {
            /* plain lines in a log */
            fprintf(stderr, "[%d/%d] %s %s", seen, todo, c->hash, d);
            if (ran)
                fprintf(stderr, "  (ETA %.0f s)", eta);
            fputc('\n', stderr);
        }
        fflush(stderr);

        measured me;
        memset(&me, 0, sizeof me);
        me.params = me.macs = me.weight_bytes = me.activation_bytes = me.peak_bytes = -1;
        me.status = "ok";
        cli_set_threads((int)c->threads);
        ml_status ms;
        if (!strcmp(c->device, "cuda") && cli_check_device("cuda", "sweep") != ML_OK) {
            ms = ML_OK;
            me.status = "unsupported";
            snprintf(me.message, sizeof me.message, "%s", ml_last_error());
#ifdef MIXERLAB_HAVE_CUDA
        } else if (!strcmp(c->device, "cuda")) {
            cuda_set_tf32(!strcmp(c->precision, "tf32"));
            ms = c->level == LEVEL_MODEL   ? measure_model_cuda(&sp, c, &me)
                 : c->level == LEVEL_MIXER ? measure_mixer_cuda(&sp, c, &me)
                                           : measure_block_cuda(&sp, c, &me);
#endif
        } else if (c->level == LEVEL_MODEL) {
            ms = measure_model(&sp, c, &me);
        } else if (c->level == LEVEL_MIXER) {
            ms = measure_mixer(&sp, c, &me);
        } else {
            ms = measure_block(&sp, c, &me);
        }
        if (ms != ML_OK) {
            me.status = status_of(ms);
            snprintf(me.message, sizeof me.message, "%s", ml_last_error());
        }
        store_result r = {
            .experiment = sp.name, .config_hash = c->hash, .level = sweep_level_name(c->level),
            .model = c->level == LEVEL_MODEL ? c->model : NULL, .mixer = c->mixer[0] ? c->mixer : NULL,
            .device = c->device, .precision = c->precision, .status = me.status, .message = me.message[0] ? me.message : NULL,
            .macs_convention = (sp.metrics & METRIC_MACS) && me.macs >= 0 ? "fvcore" : NULL,
            .resolution = c->level == LEVEL_MODEL ? c->resolution : -1, .tokens = c->level == LEVEL_MODEL ? -1 : c->tokens,
            .width = c->level == LEVEL_MODEL ? -1 : c->width, .batch = c->batch,
            .threads = c->threads ? c->threads : cli_default_threads(),
            .params = (sp.metrics & METRIC_PARAMS) ? me.params : -1, .macs = (sp.metrics & METRIC_MACS) ? me.macs : -1,
            .median = -1, .mean = -1, .stdev = -1, .min = -1, .p10 = -1, .p90 = -1, .samples = -1, .capped = -1,
            .throughput = -1, .gflops = -1,
            .peak_bytes = (sp.metrics & METRIC_MEMORY) ? me.peak_bytes : -1,
            .weight_bytes = (sp.metrics & METRIC_MEMORY) ? me.weight_bytes : -1,
            .activation_bytes = (sp.metrics & METRIC_MEMORY) ? me.activation_bytes : -1,
            .peak_rss_bytes = (sp.metrics & METRIC_MEMORY) ? peak_rss_bytes() : -1};
        if (me.have_latency) {
            r.median = me.st.median_ms, r.mean = me.st.mean_ms, r.stdev = me.st.stdev_ms, r.min = me.st.min_ms;
            r.p10 = me.st.p10_ms, r.p90 = me.st.p90_ms, r.samples = me.st.samples, r.capped = me.st.capped;
            r.throughput = (double)c->batch / (me.st.median_ms / 1e3);
            if (me.macs >= 0)
                r.gflops = 2.0 * (double)me.macs / (me.st.median_ms * 1e6);
        }
        s = store_insert(&st, &r, me.have_latency ? me.st.raw_ms : NULL, me.have_latency ? me.st.samples : 0);
        timer_stats_free(&me.st);
        ran++;
        if (strcmp(me.status, "ok")) {
            failed++;
            fprintf(stderr, "%s  -> %s: %s\n", tty ? "\n" : "", me.status, me.message);
        }
    }
    if (tty)
        fputc('\n', stderr);
    if (s == ML_OK)
        s = store_end_run(&st);
    if (s == ML_OK)
        printf("%s: %d configurations run (%d not ok), %d skipped as done; run %lld in %s\n", sp.name, ran, failed,
               skipped, (long long)st.run_id, db_path);
    if (opened)
        store_close(&st);
    free(cfgs);
    return s;
}
