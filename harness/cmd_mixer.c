/* mixerlab mixer: one token mixer alone on a (B,H,W,E) tensor. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/target.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const char mixer_usage[] =
    "usage: mixerlab mixer --name NAME --weights W.safetensors --input X.safetensors\n"
    "                      [--output Y.safetensors] [--head-size HS] [--threads N] [--repeat N]\n"
    "                      [--device cpu|cuda]\n"
    "       mixerlab mixer --name NAME --random [--seed S] --channels E --res HxW [--batch B]\n"
    "                      [--kernel K] [--d-state N] [--head-size HS] [--output Y.safetensors]\n"
    "       mixerlab mixer --name NAME --weights W --input X --grad-output GO.safetensors\n"
    "                      --output Y.safetensors [--head-size HS] [--threads N]\n"
    "\n"
    "Runs one token mixer on tensor 'input' (B,H,W,E), channels-last, and writes tensor\n"
    "'output' (B,H,W,E). With --weights the parameters carry their bare upstream names\n"
    "(e.g. conv.weight for dwconv; conv1d.weight, x_proj.weight, dt_proj.weight,\n"
    "dt_proj.bias, A_log, D for ssm) and their shapes set E, N, R and K; attention uses\n"
    "head size 32 unless --head-size says otherwise. With --random, seeded weights\n"
    "(initialised as upstream) and a seeded standard-normal input of the given size.\n"
    "With --grad-output, also the backward (CPU): GO holds 'grad_output' (B,H,W,E),\n"
    "and Y gets 'output', 'grad_input' and 'grad.<name>' for every parameter.\n"
    "\n"
    "  --name NAME    a registered mixer (mixerlab list)\n"
    "  --repeat N     timed runs after one warm-up (default 3)\n"
    "  --device D     cpu (default) or cuda (CUDA-event timing)\n"
    "  --grad-output GO  upstream gradient for a backward pass (needs --output; cpu)\n"
    "  --threads N    CPU threads (default: all cores)\n"
    "\n"
    "example: mixerlab mixer --name ssm --random --channels 384 --res 56x56 --output y.safetensors\n";

typedef struct {
    const char *name, *weights, *input, *output, *grad_output;
    long channels, batch, kernel, d_state, head_size, threads, repeat, h, w;
    uint64_t seed;
    int random, cuda;
} mix_args;

static ml_status parse_res(const char *v, long *h, long *w)
{
    char *x = strchr(v, 'x');
    if (!x) {
        ML_TRY(args_parse_long("--res", v, 1, 65536, h));
        *w = *h;
        return ML_OK;
    }
    char buf[64];
    if ((size_t)(x - v) >= sizeof buf)
        return ml_fail(ML_ERR_USAGE, "--res: '%s' is not HxW", v);
    memcpy(buf, v, (size_t)(x - v));
    buf[x - v] = '\0';
    ML_TRY(args_parse_long("--res", buf, 1, 65536, h));
    return args_parse_long("--res", x + 1, 1, 65536, w);
}

static ml_status parse_mixer(int argc, char **argv, mix_args *a)
{
    *a = (mix_args){.batch = 1, .kernel = 7, .d_state = 16, .head_size = 32, .repeat = 3};
    const char *res = NULL, *device = "cpu";
    const arg_spec specs[] = {
        OPT_STRING("--name", &a->name),
        OPT_STRING("--weights", &a->weights),
        OPT_STRING("--input", &a->input),
        OPT_STRING("--output", &a->output),
        OPT_STRING("--grad-output", &a->grad_output),
        OPT_FLAG("--random", &a->random),
        OPT_LONG("--channels", &a->channels, 1, 65536),
        OPT_STRING("--res", &res),
        OPT_LONG("--batch", &a->batch, 1, MODEL_MAX_BATCH),
        OPT_LONG("--kernel", &a->kernel, -1000, 1000),
        OPT_LONG("--d-state", &a->d_state, -1000, 100000),
        OPT_LONG("--head-size", &a->head_size, -1000, 65536),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_LONG("--repeat", &a->repeat, 0, 100000),
        OPT_U64("--seed", &a->seed),
        OPT_STRING("--device", &device),
        OPT_END,
    };
    ML_TRY(args_parse("mixer", argc, argv, specs, NULL, 0, NULL));
    if (res)
        ML_TRY(parse_res(res, &a->h, &a->w));
    ML_TRY(cli_check_device(device, "mixer"));
    a->cuda = strcmp(device, "cuda") == 0;
    if (!a->name)
        return ml_fail(ML_ERR_USAGE, "mixer: --name is required (known: %s)", mixer_names());
    if (a->random) {
        if (a->weights || a->input)
            return ml_fail(ML_ERR_USAGE, "mixer: --random replaces --weights and --input");
        if (!a->channels || !a->h)
            return ml_fail(ML_ERR_USAGE, "mixer: --random needs --channels E and --res HxW");
    } else if (!a->weights || !a->input) {
        return ml_fail(ML_ERR_USAGE, "mixer: give --weights and --input, or --random");
    }
    if (a->grad_output && !a->output)
        return ml_fail(ML_ERR_USAGE, "mixer: --grad-output needs --output (where the gradients go)");
    if (a->grad_output && a->cuda)
        return ml_fail(ML_ERR_USAGE, "mixer: --grad-output runs on the CPU (the CUDA backend has no backward yet)");
    return ML_OK;
}

/* Reads tensor 'input' (B,H,W,E) of the file into a new host buffer. */
static ml_status load_mixer_input(const char *path, float **in, int *B, int *H, int *W, int *E)
{
    st_file fi;
    ML_TRY(st_open(&fi, path));
    const st_tensor *t = st_find(&fi, "input");
    char shape[96] = "";
    ml_status s = ML_OK;
    if (t)
        st_shape_str(shape, sizeof shape, t->ndim, t->shape);
    if (!t)
        s = ml_fail(ML_ERR_FORMAT, "'%s': missing tensor 'input'", path);
    else if (t->ndim != 4 || t->numel == 0)
        s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'input' has shape %s, expected [B, H, W, E]", path, shape);
    else if (t->shape[0] > MODEL_MAX_BATCH || t->shape[1] > 65536 || t->shape[2] > 65536 || t->shape[3] > 65536)
        s = ml_fail(ML_ERR_FORMAT, "'%s': tensor 'input' %s is too large", path, shape);
    if (s == ML_OK) {
        *B = (int)t->shape[0], *H = (int)t->shape[1], *W = (int)t->shape[2], *E = (int)t->shape[3];
        *in = ml_malloc(t->numel * sizeof **in, "input");
        s = *in ? st_read_f32(&fi, t, *in) : ML_ERR_NOMEM;
    }
    st_close(&fi);
    return s;
}

static mixer_config random_config(const mix_args *a, int E)
{
    mixer_config cfg = mixer_config_default(E, E);
    cfg.kernel = (int)a->kernel, cfg.d_state = (int)a->d_state, cfg.head_size = (int)a->head_size;
    cfg.threads = omp_get_max_threads();
    return cfg;
}

/* The mixer from --weights (sizes from its shapes) or seeded at random. */
static ml_status make_mixer(const mix_args *a, int E, mixer_instance *mi)
{
    if (a->random) {
        mixer_config cfg = random_config(a, E);
        return mixer_instance_random(mi, a->name, &cfg, a->seed);
    }
    st_file fw;
    memset(mi, 0, sizeof *mi);
    ML_TRY(st_open(&fw, a->weights));
    /* a file this command wrote (or a gradient fixture) may hold the backward's tensors too */
    static const char *const allowed[] = {"input", "output", "grad_output", "grad_input", "grad.*", NULL};
    ml_status s = mixer_instance_load(mi, a->name, &fw, E, (int)a->head_size, allowed);
    st_close(&fw);
    return s;
}

static void print_run(const target *t, const mix_args *a)
{
    const mixer_config *c = &t->mi.cfg;
    char extra[96] = "";
    if (t->mi.ops->describe)
        t->mi.ops->describe(c, extra, sizeof extra);
    printf("mixer %s: B %d, %dx%d (L = %ld), E %d%s; %.4f GMACs (fvcore, gu)\n", a->name, t->B, t->H, t->W,
           (long)t->H * t->W, c->channels, extra, t->macs / 1e9);
}

/* Runs the planned mixer once, then the timed runs; the output into host out. */
static ml_status run_mixer(target *t, const mix_args *a, const float *in, float *out)
{
    ML_TRY(target_set_input(t, in));
    target_run(t);
    ML_TRY(target_output(t, out));
    print_run(t, a);
    if (a->repeat <= 0)
        return ML_OK;
    timer_policy p = {.warmup_s = 0, .warmup_min = 0, .min_samples = (int)a->repeat,
                      .min_time_s = 0, .max_time_s = 1e9, .settle_rel = 1e9};
    timer_stats st;
    ML_TRY(timer_measure_by(&p, target_run, t, target_sampler(t), &st));
    printf("time: median %.3f ms, min %.3f ms over %d runs after 1 warm-up\n", st.median_ms, st.min_ms, st.samples);
    timer_stats_free(&st);
    return ML_OK;
}

/* The backward on the CPU: grad_output (B,H,W,E) from its file, the training forward and the
 * backward; Y gets output, grad_input and grad.<name> for every parameter. */
static ml_status run_backward(const target *t, const mix_args *a, const float *in, int B, int H, int W)
{
    const mixer_instance *mi = &t->mi;
    const size_t n = t->n_in;
    const int64_t shape[4] = {B, H, W, mi->cfg.channels};
    float *go = NULL, *y = NULL, *gi = NULL, *saved = NULL, *ws = NULL, *bws = NULL, *dp[MIXER_MAX_PARAMS] = {0};
    st_entry e[2 + MIXER_MAX_PARAMS];
    char names[MIXER_MAX_PARAMS][PARAM_NAME_MAX + 8];
    st_file fg;
    ML_TRY(st_open(&fg, a->grad_output));
    ml_status s = ML_OK;
    if (!(go = ml_malloc(n * sizeof *go, "grad_output")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK)
        s = st_load(&fg, "grad_output", 4, shape, go);
    st_close(&fg);
    const size_t nsav = mixer_instance_saved_floats(mi, B, H, W), nws = mixer_instance_workspace(mi, B, H, W);
    const size_t nbws = mixer_instance_backward_workspace(mi, B, H, W);
    if (s == ML_OK)
        s = ml_check_fits((double)(3 * n + nsav + nws + nbws) * sizeof(float), "this backward run");
    if (s == ML_OK && (!(y = ml_malloc(n * sizeof *y, "output")) || !(gi = ml_calloc(n, sizeof *gi, "grad_input")) ||
                       !(saved = ml_malloc((nsav ? nsav : 1) * sizeof *saved, "saved activations")) ||
                       !(ws = ml_malloc((nws ? nws : 1) * sizeof *ws, "workspace")) ||
                       !(bws = ml_malloc((nbws ? nbws : 1) * sizeof *bws, "backward workspace"))))
        s = ML_ERR_NOMEM;
    for (int i = 0; i < mi->nparams && s == ML_OK; i++)
        if (!(dp[i] = ml_calloc(param_spec_numel(&mi->specs[i]), sizeof(float), mi->specs[i].name)))
            s = ML_ERR_NOMEM;
    if (s == ML_OK) {
        mixer_instance_run_train(mi, y, saved, in, B, H, W, ws);
        mixer_instance_backward(mi, dp, gi, go, in, saved, B, H, W, bws);
        e[0] = (st_entry){.name = "output", .ndim = 4, .shape = {B, H, W, mi->cfg.channels}, .data = y};
        e[1] = (st_entry){.name = "grad_input", .ndim = 4, .shape = {B, H, W, mi->cfg.channels}, .data = gi};
        for (int i = 0; i < mi->nparams; i++) {
            snprintf(names[i], sizeof names[i], "grad.%s", mi->specs[i].name);
            e[2 + i] = (st_entry){.name = names[i], .ndim = mi->specs[i].ndim, .shape = {0}, .data = dp[i]};
            for (int d = 0; d < mi->specs[i].ndim; d++)
                e[2 + i].shape[d] = mi->specs[i].shape[d];
        }
        const char *meta[] = {"mixer", a->name, NULL};
        s = st_write(a->output, e, 2 + mi->nparams, meta);
        if (s == ML_OK)
            printf("wrote output, grad_input and %d parameter gradients to %s\n", mi->nparams, a->output);
    }
    for (int i = 0; i < mi->nparams; i++)
        free(dp[i]);
    free(go), free(y), free(gi), free(saved), free(ws), free(bws);
    return s;
}

static int cmd_mixer(int argc, char **argv)
{
    mix_args a;
    ML_TRY(parse_mixer(argc, argv, &a));
    const mixer_ops *ops;
    ML_TRY(mixer_lookup(a.name, &ops));
    cli_set_threads((int)a.threads);

    mixer_instance mi;
    target t;
    memset(&mi, 0, sizeof mi);
    memset(&t, 0, sizeof t);
    float *in = NULL, *out = NULL;
    int B = (int)a.batch, H = (int)a.h, W = (int)a.w, E = (int)a.channels;
    ml_status s = ML_OK;
    if (a.random) {
        /* the whole run planned before anything is allocated */
        const mixer_config cfg = random_config(&a, E);
        s = target_check_mixer_plan(a.name, &cfg, B, H, W, a.cuda ? backend_cuda() : &backend_cpu);
    } else {
        s = load_mixer_input(a.input, &in, &B, &H, &W, &E);
    }
    if (s == ML_OK)
        s = make_mixer(&a, E, &mi);
    if (s == ML_OK)
        s = target_plan_mixer(&t, &mi, B, H, W, a.cuda ? backend_cuda() : &backend_cpu);
    if (s == ML_OK)
        s = target_alloc(&t); /* checks the sizes before the random input is made */
    if (s == ML_OK && a.random) {
        if (!(in = ml_malloc(t.n_in * sizeof *in, "input")))
            s = ML_ERR_NOMEM;
        if (s == ML_OK) {
            rng_state r;
            rng_seed(&r, a.seed ^ 0x696e707574ULL);
            rng_fill_normal(&r, in, t.n_in, 1.0);
        }
    }
    if (s == ML_OK && !(out = ml_malloc(t.n_out * sizeof *out, "output")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK)
        s = run_mixer(&t, &a, in, out);
    if (s == ML_OK && a.grad_output)
        s = run_backward(&t, &a, in, B, H, W);
    else if (s == ML_OK && a.output) {
        st_entry e = {.name = "output", .ndim = 4, .shape = {B, H, W, t.mi.cfg.channels}, .data = out};
        const char *meta[] = {"mixer", a.name, NULL};
        s = st_write(a.output, &e, 1, meta);
        if (s == ML_OK)
            printf("wrote output [%d, %d, %d, %d] to %s\n", B, H, W, t.mi.cfg.channels, a.output);
    }
    mixer_instance_free(&mi);
    target_free(&t);
    free(in), free(out);
    return s;
}

const cli_command cli_mixer = {"mixer", "run one token mixer alone on a (B,H,W,E) tensor", mixer_usage, cmd_mixer};
