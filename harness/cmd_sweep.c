/* mixerlab sweep: run a spec's configurations and log each to SQLite. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/cuda_measure.h"
#include "harness/evaluate.h"
#include "harness/signals.h"
#include "harness/spec.h"
#include "harness/store.h"
#include "harness/target.h"
#include "train/trainer.h"

#include <errno.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
    "  --resume     skip configurations already recorded with status ok; sweeps resuming\n"
    "               the same database at once split the rest (each runs exactly once)\n"
    "  --shard i/N  run only configurations k with k mod N = i (default from\n"
    "               SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when set)\n"
    "  --list       print the configurations with their hashes, run nothing\n"
    "  --dry-run    like --list, marking those --resume would skip\n"
    "\n"
    "SIGINT (Ctrl-C) or SIGTERM stops after abandoning the configuration being measured;\n"
    "what is done stays stored, the exit code is 130 or 143, and --resume goes on.\n"
    "\n"
    "Spec format: experiments/README.md. Example: mixerlab sweep experiments/demo_small.ini\n";

typedef struct {
    timer_stats st;
    int have_latency;
    int64_t params, macs, weight_bytes, activation_bytes, peak_bytes;
    double top1, top5, train_seconds, train_ips; /* accuracy (percent) and training; -1: not measured */
    store_epoch log[64];                        /* the training's curve */
    int nlog;
    char eval_setup[1400]; /* [eval]: eval_outcome.setup; empty otherwise */
    const char *status;
    char message[1024]; /* as long as any recorded error line */
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

/* Plans the configuration's target on be: a model, or MambaOut's block or a
 * mixer alone at the config's width with the default settings. */
static ml_status plan_config(const sweep_spec *sp, const sweep_config *c, const backend *be, target *t)
{
    const int B = (int)c->batch;
    if (c->level == LEVEL_MODEL) {
        model_config cfg;
        memset(t, 0, sizeof *t);
        ML_TRY(model_config_from_name(c->model, &cfg));
        if (c->tokens && cfg.skeleton != SKEL_SEQUENCE)
            return ml_fail(ML_ERR_USAGE, "%s: tokens is the sequence model's length; an image model sweeps resolution",
                           c->model);
        if (!c->tokens && cfg.skeleton == SKEL_SEQUENCE)
            return ml_fail(ML_ERR_USAGE, "%s: the sequence model sweeps tokens (its length), not resolution",
                           c->model);
        if (c->tokens && (sp->metrics & METRIC_ACCURACY) && sp->train.set) {
            /* the model as it is trained: the task's vocabulary, classes and length (L + M tokens for
             * selective copying) */
            dataset d;
            dataset_options o = model_dataset_options(&cfg);
            o.seq_len = (int)c->tokens;
            ML_TRY(dataset_open_with(&d, sp->train.dataset, 1, &o));
            ml_status s = model_classes_for(&cfg, &d, "sweep");
            const int W = d.seq_len;
            dataset_close(&d);
            ML_TRY(s);
            return target_plan_model(t, &cfg, B, 1, W, be);
        }
        if (c->tokens) /* without a task: the model's own vocabulary and classes at L tokens */
            return target_plan_model(t, &cfg, B, 1, (int)c->tokens, be);
        return target_plan_model(t, &cfg, B, (int)c->resolution, (int)c->resolution, be);
    }
    const mixer_ops *ops;
    mixer_config mc = mixer_config_default((int)c->width, (int)c->width);
    mc.threads = omp_get_max_threads(); /* set for this config by cli_set_threads */
    memset(t, 0, sizeof *t);
    ML_TRY(mixer_lookup(c->mixer, &ops));
    if (c->level == LEVEL_BLOCK)
        return target_plan_block(t, ops, &mc, (int)c->width, B, c->grid_h, c->grid_w, be);
    mixer_instance mi;
    ML_TRY(mixer_instance_random(&mi, c->mixer, &mc, 0));
    return target_plan_mixer(t, &mi, B, c->grid_h, c->grid_w, be);
}

/* One configuration: what its shapes decide, then (if the metrics ask) the
 * target allocated, filled and timed with the spec's rule. A setting the
 * backend's kernels do not cover is an unsupported row, not an error. */
static ml_status measure_config(const sweep_spec *sp, const sweep_config *c, const backend *be, measured *out)
{
    target t;
    ml_status s = plan_config(sp, c, &backend_cpu, &t); /* the configuration itself is sound */
    if (s == ML_OK && be != &backend_cpu) {
        /* one that plans on the CPU but not on be is one that be's kernels do not cover */
        target_free(&t);
        if (plan_config(sp, c, be, &t) != ML_OK) {
            out->status = "unsupported";
            snprintf(out->message, sizeof out->message, "%s", ml_last_error());
            target_free(&t);
            return ML_OK;
        }
    }
    if (s == ML_OK) {
        out->params = (int64_t)t.params, out->macs = (int64_t)t.macs;
        out->weight_bytes = (int64_t)t.weight_bytes, out->activation_bytes = (int64_t)t.activation_bytes;
        out->peak_bytes = out->weight_bytes + out->activation_bytes;
    }
    const int run = (sp->metrics & METRIC_LATENCY) || (c->level == LEVEL_MODEL && (sp->metrics & METRIC_MEMORY));
    if (s == ML_OK && run)
        s = target_alloc(&t);
    if (s == ML_OK && (sp->metrics & METRIC_LATENCY)) {
        s = target_init_random(&t, c->level == LEVEL_BLOCK ? 1 : 0);
        if (s == ML_OK)
            s = target_random_input(&t, 1);
        int timed_out = 0;
        double first = 0;
        if (s == ML_OK)
            s = target_measure(&t, &sp->policy, &out->st, &timed_out, &first);
        if (s == ML_OK && timed_out) {
            out->status = "timeout";
            snprintf(out->message, sizeof out->message, "one run took %.1f s, over max_time_s = %g", first * 1e-3,
                     sp->policy.max_time_s);
        } else if (s == ML_OK) {
            out->have_latency = 1;
        }
    }
    target_free(&t);
    return s;
}

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
    if (c->level == LEVEL_MODEL && c->tokens)
        snprintf(buf, n, "%s L=%ld batch %ld %s", c->model, c->tokens, c->batch, c->device);
    else if (c->level == LEVEL_MODEL)
        snprintf(buf, n, "%s %ldx%ld batch %ld %s", c->model, c->resolution, c->resolution, c->batch, c->device);
    else
        snprintf(buf, n, "%s %s L=%ld (%dx%d) width %ld batch %ld %s", sweep_level_name(c->level), c->mixer, c->tokens,
                 c->grid_h, c->grid_w, c->width, c->batch, c->device);
    if (c->threads) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, " threads %ld", c->threads);
    }
    if (c->seed >= 0) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, " seed %ld", c->seed);
    }
}

typedef struct {
    const char *spec_path, *db_path;
    int resume, list, dry, shard_i, shard_n;
} sweep_args;

static ml_status parse_sweep(int argc, char **argv, sweep_args *a)
{
    *a = (sweep_args){.db_path = "results/mixerlab.sqlite", .shard_n = 1};
    const char *shard = NULL;
    const arg_spec specs[] = {
        OPT_STRING("--db", &a->db_path),
        OPT_FLAG("--resume", &a->resume),
        OPT_FLAG("--list", &a->list),
        OPT_FLAG("--dry-run", &a->dry),
        OPT_STRING("--shard", &shard),
        OPT_END,
    };
    int n = 0;
    ML_TRY(args_parse("sweep", argc, argv, specs, &a->spec_path, 1, &n));
    if (!n)
        return ml_fail(ML_ERR_USAGE, "sweep: SPEC is required (see mixerlab sweep --help)");
    if (shard)
        return parse_shard(shard, &a->shard_i, &a->shard_n);
    const char *tid = getenv("SLURM_ARRAY_TASK_ID"), *tcount = getenv("SLURM_ARRAY_TASK_COUNT");
    if (tid && tcount) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s/%s", tid, tcount);
        ML_TRY(parse_shard(buf, &a->shard_i, &a->shard_n));
    }
    return ML_OK;
}

/* --list / --dry-run: the shard's configurations with their hashes, and which --resume would skip. */
static ml_status list_configs(const sweep_args *a, const sweep_spec *sp, const sweep_config *cfgs, int n, store *st)
{
    ml_status s = ML_OK;
    printf("%s: %d configurations\n", sp->name, n);
    for (int k = 0; k < n && s == ML_OK; k++) {
        if (k % a->shard_n != a->shard_i)
            continue;
        char d[512];
        describe(&cfgs[k], d, sizeof d);
        int done = 0;
        if (a->dry)
            s = store_has_ok(st, sp->name, cfgs[k].hash, &done);
        printf("%4d %s %s%s\n", k, cfgs[k].hash, d, done ? "  [done: --resume skips it]" : "");
    }
    return s;
}

/* One line of progress per configuration: a bar redrawn in place on a terminal, plain lines in a log. */
static void show_progress(int tty, int seen, int todo, int ran, double elapsed, const sweep_config *c, const char *d)
{
    const double eta = ran ? elapsed / ran * (todo - seen + 1) : 0;
    if (tty) {
        char bar[21];
        int fill = todo ? 20 * (seen - 1) / todo : 0;
        for (int b = 0; b < 20; b++)
            bar[b] = b < fill ? '#' : '.';
        bar[20] = '\0';
        fprintf(stderr, "\r\033[K[%s] %d/%d %s", bar, seen, todo, d);
        if (ran)
            fprintf(stderr, "  ETA %.0f s", eta);
    } else {
        fprintf(stderr, "[%d/%d] %s %s", seen, todo, c->hash, d);
        if (ran)
            fprintf(stderr, "  (ETA %.0f s)", eta);
        fputc('\n', stderr);
    }
    fflush(stderr);
}

/* ---- accuracy: a training per configuration ([train]) or given weights evaluated ([eval]) ---- */

static void on_epoch(void *ctx, const train_epoch *e)
{
    measured *me = ctx;
    if (me->nlog == (int)(sizeof me->log / sizeof me->log[0]))
        return;
    me->log[me->nlog++] = (store_epoch){e->epoch, e->step, e->lr, e->train_loss, 100 * e->test_top1,
                                        100 * e->test_top5, e->test_loss, e->seconds};
}

/* A configuration's checkpoint: DB.train/EXPERIMENT-HASH.safetensors (and .state beside it). */
static ml_status checkpoint_path(const char *db, const char *experiment, const char *hash, char *out, size_t n)
{
    char dir[1100];
    if (snprintf(dir, sizeof dir, "%s.train", db) >= (int)sizeof dir ||
        snprintf(out, n, "%s/%s-%s.safetensors", dir, experiment, hash) >= (int)n)
        return ml_fail(ML_ERR_USAGE, "sweep: --db path is too long for the training checkpoints");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return ml_fail(ML_ERR_IO, "cannot create the checkpoint folder '%s': %s", dir, strerror(errno));
    return ML_OK;
}

static ml_status measure_accuracy(const sweep_spec *sp, const sweep_config *c, const char *db, int resume,
                                  measured *me)
{
    if (sp->eval.set) {
        /* mixerlab eval --device D --res R --batch B --limit N --crop-pct P --interpolation I */
        eval_request rq = {.model = c->model, .weights = sp->eval.weights[c->model_index], .data = sp->eval.data,
                           .device = c->device, .res = c->resolution, .batch = sp->eval.batch,
                           .limit = sp->eval.limit, .df = {.crop_pct = sp->eval.crop_pct, .interp = sp->eval.interp}};
        eval_outcome o;
        ML_TRY(eval_run(&rq, &o));
        const double n = o.m.count ? (double)o.m.count : 1.0;
        me->top1 = 100.0 * (double)o.m.top1 / n, me->top5 = 100.0 * (double)o.m.top5 / n;
        snprintf(me->eval_setup, sizeof me->eval_setup, "%s", o.setup);
        return ML_OK;
    }
    char out[1300];
    ML_TRY(checkpoint_path(db, sp->name, c->hash, out, sizeof out));
    char state[1320];
    snprintf(state, sizeof state, "%s.state", out);
    train_config tc = train_config_default();
    tc.model = c->model, tc.data = sp->train.dataset, tc.res = (int)c->resolution;
    tc.epochs = (int)sp->train.epochs, tc.batch = (int)sp->train.batch, tc.lr = sp->train.lr;
    tc.weight_decay = sp->train.weight_decay, tc.warmup_epochs = sp->train.warmup_epochs;
    tc.drop_path = sp->train.drop_path, tc.smoothing = sp->train.smoothing, tc.seed = (uint64_t)c->seed;
    tc.random_erase = sp->train.random_erase, tc.data_parallel = sp->train.data_parallel;
    tc.res_start = (int)sp->train.res_start;
    tc.res_ramp[0] = (int)sp->train.res_ramp[0], tc.res_ramp[1] = (int)sp->train.res_ramp[1];
    tc.limit = (size_t)sp->train.limit, tc.eval_limit = (size_t)sp->train.eval_limit, tc.out = out;
    tc.steps = sp->train.steps, tc.eval_every = sp->train.eval_every, tc.seq_len = (int)c->tokens;
    tc.resume = resume && access(state, R_OK) == 0; /* a training this sweep was stopped in */
    tc.progress = 1, tc.stop_requested = signals_pending, tc.on_epoch = on_epoch, tc.ctx = me;
    train_result r;
    ML_TRY(train_run(&tc, &r));
    if (r.stopped)
        return ML_OK; /* the caller sees the signal and stores nothing; the checkpoint stays */
    if (tc.resume) { /* the epochs before the stop, from the state's curve */
        me->nlog = 0;
        for (int k = 0; k < r.n_log; k++)
            on_epoch(me, &r.log[k]);
    }
    me->top1 = 100.0 * r.top1, me->top5 = 100.0 * r.top5;
    me->train_seconds = r.train_seconds, me->train_ips = r.images_per_s;
    return ML_OK;
}

/* Runs one configuration on its device; every outcome, good or bad, becomes *me. */
static void run_config(const sweep_spec *sp, const sweep_config *c, const char *db, int resume, measured *me)
{
    memset(me, 0, sizeof *me);
    me->params = me->macs = me->weight_bytes = me->activation_bytes = me->peak_bytes = -1;
    me->top1 = me->top5 = me->train_seconds = me->train_ips = -1;
    me->status = "ok";
    cli_set_threads((int)c->threads);
    ml_status ms = ML_OK;
    const backend *be = NULL;
    if (!strcmp(c->device, "cuda") && cli_check_device("cuda", "sweep") != ML_OK) {
        me->status = "unsupported";
        snprintf(me->message, sizeof me->message, "%s", ml_last_error());
    } else if ((ms = backend_by_name(c->device, &be)) == ML_OK) {
        cuda_set_math(!strcmp(c->precision, "tf32")       ? CUDA_MATH_TF32
                      : !strcmp(c->precision, "pedantic") ? CUDA_MATH_PEDANTIC
                                                          : CUDA_MATH_FP32);
        ms = measure_config(sp, c, be, me);
        if (ms == ML_OK && !strcmp(me->status, "ok") && (sp->metrics & METRIC_ACCURACY))
            ms = measure_accuracy(sp, c, db, resume, me);
    }
    if (ms != ML_OK) {
        me->status = status_of(ms);
        snprintf(me->message, sizeof me->message, "%s", ml_last_error());
    }
}

/* The results row of a measured configuration: what the spec's metrics asked for, the rest NULL. */
static store_result result_row(const sweep_spec *sp, const sweep_config *c, const measured *me)
{
    const unsigned mt = sp->metrics;
    store_result r = {
        .experiment = sp->name, .config_hash = c->hash, .level = sweep_level_name(c->level),
        .model = c->level == LEVEL_MODEL ? c->model : NULL, .mixer = c->mixer[0] ? c->mixer : NULL,
        .device = c->device, .precision = c->precision, .status = me->status,
        .message = me->message[0] ? me->message : NULL,
        .macs_convention = (mt & METRIC_MACS) && me->macs >= 0 ? "fvcore" : NULL,
        .resolution = c->level == LEVEL_MODEL && !c->tokens ? c->resolution : -1,
        .tokens = c->level != LEVEL_MODEL || c->tokens ? c->tokens : -1,
        .width = c->level == LEVEL_MODEL ? -1 : c->width, .batch = c->batch,
        .threads = c->threads ? c->threads : cli_default_threads(),
        .params = (mt & METRIC_PARAMS) ? me->params : -1, .macs = (mt & METRIC_MACS) ? me->macs : -1,
        .median = -1, .mean = -1, .stdev = -1, .min = -1, .p10 = -1, .p90 = -1, .samples = -1, .capped = -1,
        .throughput = -1, .gflops = -1,
        .peak_bytes = (mt & METRIC_MEMORY) ? me->peak_bytes : -1,
        .weight_bytes = (mt & METRIC_MEMORY) ? me->weight_bytes : -1,
        .activation_bytes = (mt & METRIC_MEMORY) ? me->activation_bytes : -1,
        .peak_rss_bytes = (mt & METRIC_MEMORY) ? peak_rss_bytes() : -1,
        .top1 = me->top1, .top5 = me->top5, .train_seconds = me->train_seconds, .train_images_per_s = me->train_ips,
        .train_seed = c->seed, /* -1 unless the configuration trained */
        .log = me->nlog ? me->log : NULL, .nlog = me->nlog, .eval_setup = me->eval_setup[0] ? me->eval_setup : NULL};
    if (me->have_latency) {
        const timer_stats *t = &me->st;
        r.median = t->median_ms, r.mean = t->mean_ms, r.stdev = t->stdev_ms, r.min = t->min_ms;
        r.p10 = t->p10_ms, r.p90 = t->p90_ms, r.samples = t->samples, r.capped = t->capped;
        r.throughput = (double)c->batch / (t->median_ms / 1e3);
        if (me->macs >= 0)
            r.gflops = 2.0 * (double)me->macs / (t->median_ms * 1e6);
    }
    return r;
}

/* The shard's configurations, each measured and stored in its own transaction. */
static ml_status run_configs(const sweep_args *a, const sweep_spec *sp, const sweep_config *cfgs, int n, store *st)
{
    const int tty = isatty(2);
    int todo = 0, ran = 0, skipped = 0, failed = 0, busy = 0, sig = 0;
    for (int k = 0; k < n; k++)
        todo += k % a->shard_n == a->shard_i;
    const double t_start = timer_now_s();
    ml_status s = ML_OK;
    for (int k = 0, seen = 0; k < n && s == ML_OK && !(sig = signals_pending()); k++) {
        if (k % a->shard_n != a->shard_i)
            continue;
        seen++;
        const sweep_config *c = &cfgs[k];
        store_claim_result cl = STORE_CLAIM_TAKEN;
        if (a->resume && ((s = store_claim(st, sp->name, c->hash, &cl)) != ML_OK || cl != STORE_CLAIM_TAKEN)) {
            skipped += cl == STORE_CLAIM_DONE;
            busy += cl == STORE_CLAIM_BUSY;
            continue;
        }
        char d[512];
        describe(c, d, sizeof d);
        show_progress(tty, seen, todo, ran, timer_now_s() - t_start, c, d);
        measured me;
        run_config(sp, c, a->db_path, a->resume, &me);
        if ((sig = signals_pending())) { /* abandoned: nothing of it is stored */
            timer_stats_free(&me.st);
            break;
        }
        store_result r = result_row(sp, c, &me);
        s = store_insert(st, &r, me.have_latency ? me.st.raw_ms : NULL, me.have_latency ? me.st.samples : 0);
        timer_stats_free(&me.st);
        ran++;
        if (strcmp(me.status, "ok")) {
            failed++;
            fprintf(stderr, "%s  -> %s: %s\n", tty ? "\n" : "", me.status, me.message);
        }
    }
    if (tty)
        fputc('\n', stderr);
    const ml_status released = store_release_claims(st);
    if (s == ML_OK)
        s = released;
    if (s == ML_OK)
        s = store_end_run(st);
    if (s == ML_OK && sig)
        return ml_fail((ml_status)signals_exit_code(sig),
                       "sweep interrupted by %s: %d configurations stored in %s, the one being measured abandoned; "
                       "resume with: mixerlab sweep %s --db %s --resume",
                       signals_name(sig), ran, a->db_path, a->spec_path, a->db_path);
    if (s == ML_OK)
        printf("%s: %d configurations run (%d not ok), %d skipped as done, %d left to other sweeps; run %lld in %s\n",
               sp->name, ran, failed, skipped, busy, (long long)st->run_id, a->db_path);
    return s;
}

static int cmd_sweep(int argc, char **argv)
{
    sweep_args a;
    ML_TRY(parse_sweep(argc, argv, &a));
    sweep_spec sp;
    ML_TRY(spec_parse(a.spec_path, &sp));
    sweep_config *cfgs;
    int n;
    ML_TRY(spec_expand(&sp, &cfgs, &n));
    store st;
    ml_status s = ML_OK;
    int opened = 0;
    if (!a.list || a.dry)
        opened = (s = store_open(&st, a.db_path)) == ML_OK;
    if (s == ML_OK && (a.list || a.dry))
        s = list_configs(&a, &sp, cfgs, n, opened ? &st : NULL);
    else if (s == ML_OK && (s = store_begin_run(&st, argc, argv, 0)) == ML_OK) {
        signals_install();
        s = run_configs(&a, &sp, cfgs, n, &st);
    }
    if (opened)
        store_close(&st);
    free(cfgs);
    return s;
}

const cli_command cli_sweep = {"sweep", "run a sweep spec and log every configuration to SQLite", sweep_usage,
                               cmd_sweep};
