/* mixerlab bench-train: the time of one training step (training forward,
 * cross-entropy, backward, AdamW) of a model at a batch size, on the CPU, and
 * the memory it planned -- to hold against scripts/bench_train_torch.py,
 * which times timm's model the same way in PyTorch. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/timer.h"
#include "models/model_train.h"
#include "train/optim.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char bench_train_usage[] =
    "usage: mixerlab bench-train --model M [--res R] [--batch B] [--threads T] [--classes K]\n"
    "                            [--data-parallel] [--min-time S] [--max-time S] [--seed S] [--json]\n"
    "\n"
    "Times one training step of M on a seeded random batch with random labels: the\n"
    "training forward, softmax cross-entropy (smoothing 0.1), the backward of every\n"
    "layer and AdamW's update (weights change from step to step, as in training). One\n"
    "warm-up step, then samples until --min-time seconds (default 5) and the median has\n"
    "settled, at most --max-time (default 60). Prints the median and minimum step time,\n"
    "images/s, the memory the step planned (weights, gradients, AdamW's moments,\n"
    "activations kept for the backward, workspace) and the process's peak RSS.\n"
    "\n"
    "  --classes K       the head's classes (default 10, as on Fashion-MNIST)\n"
    "  --data-parallel   the step of mixerlab train --data-parallel: the batch split over the\n"
    "                    threads, one thread per part, the gradients combined\n"
    "\n"
    "example: mixerlab bench-train --model mambaout_femto --res 224 --batch 8\n";

typedef struct {
    model m;
    model_trainer t;
    model_shards sh; /* --data-parallel (sh.n 0: off) */
    adamw o;
    float *x;
    int *labels;
} bench_step;

static void one_step(void *p)
{
    bench_step *b = p;
    if (b->sh.n) {
        model_shards_step(&b->sh, b->x, b->labels, 0.1f, NULL);
        adamw_step(&b->o, (float *)b->m.weights.base, model_shards_grads(&b->sh), 1e-4);
        return;
    }
    model_train_zero_grads(&b->t);
    model_forward_train(&b->t, b->x, NULL);
    model_backward(&b->t, b->labels, 0.1f, NULL);
    adamw_step(&b->o, (float *)b->m.weights.base, (const float *)b->t.grad_arena.base, 1e-4);
}

static ml_status setup(bench_step *b, const char *name, int classes, int B, int R, uint64_t seed, int shards,
                       size_t *bytes)
{
    model_config cfg;
    ML_TRY(model_config_from_name(name, &cfg));
    if (!cfg.classes_set)
        cfg.num_classes = classes;
    ML_TRY(model_plan(&b->m, &cfg, B, R, R));
    ML_TRY(model_alloc(&b->m));
    model_init_random(&b->m, seed);
    if (shards)
        ML_TRY(model_shards_init(&b->sh, &b->m, shards));
    else
        ML_TRY(model_train_init(&b->t, &b->m));
    adamw_config ac = adamw_config_default();
    ML_TRY(adamw_init(&b->o, &ac, b->m.params, b->m.n_params, shards ? b->sh.t[0].offset : b->t.offset));
    const size_t n = (size_t)B * 3 * R * R;
    if (!(b->x = ml_malloc(n * sizeof *b->x, "input batch")) ||
        !(b->labels = ml_malloc((size_t)B * sizeof *b->labels, "labels")))
        return ML_ERR_NOMEM;
    rng_state r;
    rng_seed(&r, seed ^ 0x62656e6368ULL);
    rng_fill_normal(&r, b->x, n, 1.0);
    for (int i = 0; i < B; i++)
        b->labels[i] = (int)(rng_uniform(&r) * cfg.num_classes);
    /* what the step holds, planned from shapes */
    *bytes = shards ? model_shards_step_bytes(&b->m, shards) : model_train_step_bytes(&b->m);
    return ML_OK;
}

static int cmd_bench_train(int argc, char **argv)
{
    const char *name = NULL;
    long res = 224, batch = 8, threads = 0, classes = 10;
    double min_time = 5, max_time = 60;
    uint64_t seed = 0;
    int json = 0, dp = 0;
    const arg_spec specs[] = {
        OPT_STRING("--model", &name),
        OPT_LONG("--res", &res, MODEL_MIN_RES, MODEL_MAX_RES),
        OPT_LONG("--batch", &batch, 1, 4096),
        OPT_LONG("--threads", &threads, 1, 1024),
        OPT_LONG("--classes", &classes, 1, 1000000),
        OPT_DOUBLE("--min-time", &min_time, 0, 3600),
        OPT_DOUBLE("--max-time", &max_time, 0.1, 36000),
        OPT_U64("--seed", &seed),
        OPT_FLAG("--data-parallel", &dp),
        OPT_FLAG("--json", &json),
        OPT_END,
    };
    ML_TRY(args_parse("bench-train", argc, argv, specs, NULL, 0, NULL));
    if (!name)
        return ml_fail(ML_ERR_USAGE, "bench-train: --model is required (known: %s)", model_zoo_names());
    cli_set_threads((int)threads);
    bench_step b;
    memset(&b, 0, sizeof b);
    size_t bytes = 0;
    const int shards = dp ? model_shards_count(threads > 0 ? (int)threads : cli_default_threads(), (int)batch) : 0;
    if (dp && shards < 2)
        return ml_fail(ML_ERR_USAGE, "bench-train: --data-parallel needs at least 2 threads and a batch of 2");
    ml_status s = setup(&b, name, (int)classes, (int)batch, (int)res, seed, shards, &bytes);
    timer_stats st = {0};
    if (s == ML_OK) {
        timer_policy p = timer_policy_default();
        p.warmup_s = 0, p.warmup_min = 1, p.min_samples = 5, p.min_time_s = min_time, p.max_time_s = max_time;
        s = timer_measure(&p, one_step, &b, &st);
    }
    if (s == ML_OK) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        const double rss = (double)ru.ru_maxrss * 1024.0, ips = (double)batch / (st.median_ms / 1e3);
        const int T = threads > 0 ? (int)threads : cli_default_threads();
        if (json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "model", name);
            cJSON_AddNumberToObject(o, "res", (double)res);
            cJSON_AddNumberToObject(o, "batch", (double)batch);
            cJSON_AddNumberToObject(o, "threads", T);
            cJSON_AddBoolToObject(o, "data_parallel", shards > 0);
            cJSON_AddNumberToObject(o, "step_ms_median", st.median_ms);
            cJSON_AddNumberToObject(o, "step_ms_min", st.min_ms);
            cJSON_AddNumberToObject(o, "samples", st.samples);
            cJSON_AddNumberToObject(o, "images_per_s", ips);
            cJSON_AddNumberToObject(o, "planned_bytes", (double)bytes);
            cJSON_AddNumberToObject(o, "peak_rss_bytes", rss);
            cli_print_json(o);
        } else {
            printf("%s, batch %ld, %ldx%ld, %d threads%s: training step median %.2f ms, min %.2f ms over %d steps "
                   "(%.1f images/s); planned %.1f MiB (weights, gradients, AdamW, activations, workspace), peak RSS "
                   "%.1f MiB\n",
                   name, batch, res, res, T, shards ? " (data parallel)" : "", st.median_ms, st.min_ms, st.samples,
                   ips, bytes / 1048576.0, rss / 1048576.0);
        }
    }
    timer_stats_free(&st);
    free(b.x), free(b.labels);
    if (b.o.m)
        adamw_free(&b.o);
    if (b.t.m)
        model_train_free(&b.t);
    if (b.sh.n)
        model_shards_free(&b.sh);
    model_free(&b.m);
    return s;
}

const cli_command cli_bench_train = {"bench-train", "time one training step (forward, backward, AdamW) on the CPU",
                                     bench_train_usage, cmd_bench_train};
