/* mixerlab forward: one model, one batch, logits out, top-5 and time printed. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/cuda_measure.h"
#include "harness/target.h"

#include <stdlib.h>
#include <string.h>

static const char forward_usage[] =
    "usage: mixerlab forward --model M [--weights W.safetensors]\n"
    "                        [--input X.safetensors | --res R --batch B] [--seed S]\n"
    "                        [--output Y.safetensors] [--threads N] [--repeat N]\n"
    "                        [--ignore-unexpected] [--device cpu|cuda] [--cuda-graph] [--cold]\n"
    "                        [--precision fp32|tf32|pedantic]\n"
    "\n"
    "Runs the model on tensor 'input' [B,3,H,W] float32 (F16/BF16 converted) or, without\n"
    "--input, on a seeded random batch. Prints the top-5 classes per image and the\n"
    "forward time (median and min of the timed runs, after one warm-up run); writes\n"
    "tensor 'logits' [B,classes] with --output.\n"
    "\n"
    "  --model M           a zoo name (mixerlab list)\n"
    "  --weights W         timm-named safetensors checkpoint; without it the model is\n"
    "                      initialised from --seed as timm does (trunc-normal .02, zero biases)\n"
    "  --ignore-unexpected accept checkpoint tensors that are not parameters of M\n"
    "  --input X           safetensors file holding 'input' [B,3,H,W]\n"
    "  --res R, --batch B  size of the random batch (default 224, 1)\n"
    "  --seed S            seed for weights and random input (default 0)\n"
    "  --output Y          write 'logits' here (atomically: temporary file, then rename)\n"
    "  --threads N         CPU threads (default: all cores)\n"
    "  --repeat N          timed runs after the warm-up (default 3, 0 = just one run)\n"
    "  --device cuda       run on the GPU (MambaOut's skeleton with any mixer; CUDA-event\n"
    "                      timing, float32 without TF32)\n"
    "  --precision P       with --device cuda, how cuBLAS multiplies float32 in the linear\n"
    "                      layers: fp32 (default: cuBLAS's default math, never TF32), tf32\n"
    "                      (TF32 tensor cores allowed) or pedantic (CUBLAS_PEDANTIC_MATH:\n"
    "                      plain float32 paths only); printed with the time\n"
    "  --cuda-graph        capture the whole forward once as a CUDA graph and time its replays\n"
    "  --cold              flush the L2 cache before each timed run\n"
    "\n"
    "example: mixerlab forward --model mambaout_femto --res 224 --batch 2 --output logits.safetensors\n";

typedef struct {
    const char *model, *weights, *input, *output;
    long res, batch, threads, repeat;
    uint64_t seed;
    int res_set, batch_set, ignore_unexpected, cuda, graph, cold;
    cuda_math math; /* --precision */
} fwd_args;

static ml_status parse_forward(int argc, char **argv, fwd_args *a)
{
    *a = (fwd_args){.res = 224, .batch = 1, .repeat = 3};
    const char *device = "cpu", *precision = "fp32";
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->model),
        OPT_STRING("--weights", &a->weights),
        OPT_STRING("--input", &a->input),
        OPT_STRING("--output", &a->output),
        OPT_LONG_SEEN("--res", &a->res, MODEL_MIN_RES, MODEL_MAX_RES, &a->res_set),
        OPT_LONG_SEEN("--batch", &a->batch, 1, MODEL_MAX_BATCH, &a->batch_set),
        OPT_U64("--seed", &a->seed),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_LONG("--repeat", &a->repeat, 0, 100000),
        OPT_STRING("--device", &device),
        OPT_STRING("--precision", &precision),
        OPT_FLAG("--ignore-unexpected", &a->ignore_unexpected),
        OPT_FLAG("--cuda-graph", &a->graph),
        OPT_FLAG("--cold", &a->cold),
        OPT_END,
    };
    ML_TRY(args_parse("forward", argc, argv, specs, NULL, 0, NULL));
    ML_TRY(cli_check_device(device, "forward"));
    a->cuda = strcmp(device, "cuda") == 0;
    if (strcmp(precision, "fp32") && strcmp(precision, "tf32") && strcmp(precision, "pedantic"))
        return ml_fail(ML_ERR_USAGE, "forward: --precision '%s' is not fp32, tf32 or pedantic", precision);
    a->math = !strcmp(precision, "tf32")       ? CUDA_MATH_TF32
              : !strcmp(precision, "pedantic") ? CUDA_MATH_PEDANTIC
                                               : CUDA_MATH_FP32;
    if (!a->model)
        return ml_fail(ML_ERR_USAGE, "forward: --model is required (known: %s)", model_zoo_names());
    if ((a->graph || a->cold) && !a->cuda)
        return ml_fail(ML_ERR_USAGE, "forward: --cuda-graph and --cold need --device cuda");
    if (a->math != CUDA_MATH_FP32 && !a->cuda)
        return ml_fail(ML_ERR_USAGE, "forward: --precision %s needs --device cuda (the CPU path is float32)",
                       cuda_math_name(a->math));
    if (a->input && (a->res_set || a->batch_set))
        return ml_fail(ML_ERR_USAGE, "forward: --input fixes the size; drop --res/--batch");
    return ML_OK;
}

static void print_top5(const float *logits, int B, int classes)
{
    const int K = classes < 5 ? classes : 5;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * classes;
        int top[5];
        for (int k = 0; k < K; k++) {
            int best = -1;
            for (int c = 0; c < classes; c++) {
                int used = 0;
                for (int q = 0; q < k; q++)
                    used |= top[q] == c;
                if (!used && (best < 0 || z[c] > z[best]))
                    best = c;
            }
            top[k] = best;
        }
        printf("image %d top-5:", b);
        for (int k = 0; k < K; k++)
            printf("  %d (%.4f)", top[k], z[top[k]]);
        printf("\n");
    }
}

static void run_graph(void *p) { cuda_graph_run(p); }

/* The forward on the GPU, timed with CUDA events: as launched, or as replays
 * of one captured graph. */
static ml_status time_on_cuda(target *t, const fwd_args *a, float *logits)
{
    const int repeat = a->repeat > 0 ? (int)a->repeat : 1;
    double med = 0, mn = 0;
    void *exec = NULL;
    ml_status s = ML_OK;
    if (a->graph) {
        target_run(t); /* one plain run first: lazy initialisation stays out of the graph */
        s = t->be->sync("forward");
        if (s == ML_OK)
            s = cuda_graph_capture(target_run, t, &exec);
    }
    if (s == ML_OK)
        s = exec ? cuda_time(run_graph, exec, 3, repeat, a->cold, &med, &mn)
                 : cuda_time(target_run, t, 3, repeat, a->cold, &med, &mn);
    cuda_graph_free(exec);
    if (s == ML_OK)
        s = target_output(t, logits);
    if (s != ML_OK)
        return s;
    print_top5(logits, t->B, t->m.cfg.num_classes);
    char dev[256];
    cuda_device_check(dev, sizeof dev);
    printf("model %s, batch %d, %dx%d on %s\n", t->m.cfg.name, t->B, t->H, t->W, dev);
    printf("forward time (CUDA events, %s%s%s): median %.3f ms, min %.3f ms over %d samples after 3 warm-up "
           "runs (%.1f GFLOP/s at the median); device memory: weights %.1f MiB, activations %.1f MiB\n",
           a->math == CUDA_MATH_TF32       ? "TF32 products"
           : a->math == CUDA_MATH_PEDANTIC ? "float32, cuBLAS pedantic math"
                                           : "float32",
           a->graph ? ", CUDA graph" : "", a->cold ? ", cold L2" : "", med, mn, repeat,
           2.0 * (double)t->macs / (med * 1e6), t->weight_bytes / 1048576.0, t->activation_bytes / 1048576.0);
    printf("timing: %s\n", cuda_time_method());
    return ML_OK;
}

/* The forward on the CPU: one run (timed alone when --repeat 0), then the timed runs. */
static ml_status time_on_cpu(target *t, const fwd_args *a, double first_ms)
{
    char b1[32];
    printf("model %s, batch %d, %dx%d, %s params, %.3f GMACs (fvcore), %d threads\n", t->m.cfg.name, t->B, t->H, t->W,
           cli_commas(t->params, b1, sizeof b1), t->macs / 1e9, (int)(a->threads > 0 ? a->threads : cli_default_threads()));
    if (a->repeat <= 0) {
        printf("forward time: %.3f ms (single cold run)\n", first_ms);
        return ML_OK;
    }
    timer_policy p = {.warmup_s = 0, .warmup_min = 0, .min_samples = (int)a->repeat,
                      .min_time_s = 0, .max_time_s = 1e9, .settle_rel = 1e9};
    timer_stats st;
    ML_TRY(timer_measure(&p, target_run, t, &st));
    printf("forward time: median %.3f ms, min %.3f ms over %d runs after 1 warm-up (%.1f GFLOP/s at the median)\n",
           st.median_ms, st.min_ms, st.samples, 2.0 * (double)t->macs / (st.median_ms * 1e6));
    timer_stats_free(&st);
    return ML_OK;
}

/* Runs and times the planned target; the logits land in host memory (B x classes). */
static ml_status run_forward(target *t, const fwd_args *a, const float *input, float *logits)
{
    ML_TRY(target_load_weights(t, a->weights, a->seed, a->ignore_unexpected));
    ML_TRY(target_set_input(t, input));
    const int classes = t->m.cfg.num_classes;
    if (t->be->host_memory) {
        double t0 = timer_now_s();
        target_run(t);
        const double first_ms = (timer_now_s() - t0) * 1e3;
        ML_TRY(target_output(t, logits));
        print_top5(logits, t->B, classes);
        return time_on_cpu(t, a, first_ms);
    }
    cuda_set_math(a->math);
    return time_on_cuda(t, a, logits);
}

static int cmd_forward(int argc, char **argv)
{
    fwd_args a;
    ML_TRY(parse_forward(argc, argv, &a));
    cli_set_threads((int)a.threads);
    model_config cfg;
    ML_TRY(model_config_from_name(a.model, &cfg));

    float *input = NULL, *logits = NULL;
    int B = (int)a.batch, H = (int)a.res, W = (int)a.res;
    if (a.input)
        ML_TRY(cli_load_input(a.input, &input, &B, &H, &W, NULL, 0));
    target t;
    const backend *be;
    ml_status s = backend_by_name(a.cuda ? "cuda" : "cpu", &be);
    memset(&t, 0, sizeof t);
    if (s == ML_OK)
        s = target_plan_model(&t, &cfg, B, H, W, be);
    if (s == ML_OK)
        s = target_alloc(&t);
    if (s == ML_OK && !input) {
        size_t n = (size_t)B * 3 * H * W;
        if (!(input = ml_malloc(n * sizeof(float), "input batch")))
            s = ML_ERR_NOMEM;
        else {
            rng_state r;
            rng_seed(&r, a.seed ^ 0x696e707574ULL); /* a stream apart from the weights' */
            rng_fill_normal(&r, input, n, 1.0);
        }
    }
    if (s == ML_OK && !(logits = ml_malloc(t.n_out * sizeof *logits, "logits")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK)
        s = run_forward(&t, &a, input, logits);
    if (s == ML_OK && a.output) {
        st_entry e = {.name = "logits", .ndim = 2, .shape = {B, cfg.num_classes}, .data = logits};
        const char *meta[] = {"model", cfg.name, NULL};
        s = st_write(a.output, &e, 1, meta);
        if (s == ML_OK)
            printf("wrote logits [%d, %d] to %s\n", B, cfg.num_classes, a.output);
    }
    free(input), free(logits);
    target_free(&t);
    return s;
}

const cli_command cli_forward = {"forward", "run a model on an image batch (safetensors) or a seeded random batch",
                                 forward_usage, cmd_forward};
