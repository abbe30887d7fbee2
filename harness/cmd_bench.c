/* mixerlab bench-cpu: the machine's SGEMM rate and the whole-forward rate of
 * zoo models, measured in one run so their ratio means something on a shared,
 * noisy machine. */
#include "harness/args.h"
#include "harness/cli.h"

#include <build_info.h>
#include "base/rng.h"
#include "harness/store.h"
#include "harness/timer.h"
#include "harness/target.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_usage[] =
    "usage: mixerlab bench-cpu [--models a,b] [--batches 1,8] [--res R] [--threads N]\n"
    "                          [--gemm-size N] [--min-time S] [--max-time S] [--rounds R]\n"
    "\n"
    "Measures, in one run: the OpenBLAS SGEMM rate (N x N x N, float32) and each\n"
    "model's whole-forward rate, 2 x MACs (fvcore) / median time, as a share of that\n"
    "SGEMM rate. Rounds interleave the SGEMM with every model so that a slow spell\n"
    "of a shared machine hits both sides of a ratio; the ratio reported is the median\n"
    "over rounds. Prints a Markdown table with the machine, BLAS and date; progress\n"
    "goes to stderr.\n"
    "\n"
    "  --models a,b   zoo names (default mambaout_femto,mambaout_tiny)\n"
    "  --batches 1,8  batch sizes (default 1,8)\n"
    "  --res R        resolution (default 224)\n"
    "  --threads N    CPU threads (default: all cores)\n"
    "  --gemm-size N  SGEMM size (default 2048)\n"
    "  --min-time S   least seconds of timed samples per measurement (default 2)\n"
    "  --max-time S   cap per measurement (default 30)\n"
    "  --rounds R     interleaved rounds, 1..16 (default 3)\n";

typedef struct {
    int n;
    float *a, *b, *c;
} gemm_ctx;

static void run_gemm(void *p)
{
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->n, g->n, g->n, 1.0f, g->a, g->n, g->b,
                g->n, 0.0f, g->c, g->n);
}


typedef struct {
    void *dst;
    const void *src;
    size_t bytes;
} copy_ctx;

static void run_copy(void *p)
{
    copy_ctx *c = p;
    memcpy(c->dst, c->src, c->bytes);
}


/* One measured configuration: the SGEMM (m == NULL) or a model at one batch. */
typedef struct {
    char label[96];
    long batch;
    double flop; /* per call */
    target t;
    int ready;
    double *samples; /* all rounds */
    int nsamples;
    int capped;
    double ratio[16]; /* per round: this rate / the round's SGEMM rate */
} bench_cfg;

static ml_status add_samples(bench_cfg *c, const timer_stats *st)
{
    double *p = realloc(c->samples, (size_t)(c->nsamples + st->samples) * sizeof *p);
    if (!p)
        return ml_fail(ML_ERR_NOMEM, "out of memory storing samples");
    memcpy(p + c->nsamples, st->raw_ms, (size_t)st->samples * sizeof *p);
    c->samples = p;
    c->nsamples += st->samples;
    c->capped |= st->capped;
    return ML_OK;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *models[16];
    int nm, nb;
    long batches[8], res, threads, gemm_n, min_time, max_time, rounds;
    char models_buf[512];
} cpu_args;

static ml_status parse_bench_cpu(int argc, char **argv, cpu_args *a)
{
    *a = (cpu_args){.nb = 2, .batches = {1, 8}, .res = 224, .gemm_n = 2048, .min_time = 2, .max_time = 30,
                    .rounds = 3};
    const char *models = "mambaout_femto,mambaout_tiny";
    const arg_spec specs[] = {
        OPT_STRING("--models", &models),
        OPT_LIST("--batches", a->batches, 1, 1024, 8, &a->nb, NULL),
        OPT_LONG("--res", &a->res, MODEL_MIN_RES, MODEL_MAX_RES),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_LONG("--gemm-size", &a->gemm_n, 64, 16384),
        OPT_LONG("--min-time", &a->min_time, 0, 3600),
        OPT_LONG("--max-time", &a->max_time, 1, 36000),
        OPT_LONG("--rounds", &a->rounds, 1, 16),
        OPT_END,
    };
    ML_TRY(args_parse("bench-cpu", argc, argv, specs, NULL, 0, NULL));
    ML_TRY(args_split("--models", models, a->models_buf, sizeof a->models_buf, a->models, 16, &a->nm));
    /* every model name checked before any time goes into measuring */
    for (int i = 0; i < a->nm; i++) {
        model_config cfg;
        ML_TRY(model_config_from_name(a->models[i], &cfg));
    }
    return ML_OK;
}

/* The SGEMM and every model at every batch, planned, allocated and filled. */
static ml_status setup_bench_cpu(const cpu_args *a, bench_cfg *cfgs, gemm_ctx *g)
{
    const size_t nn = (size_t)a->gemm_n * a->gemm_n;
    *g = (gemm_ctx){(int)a->gemm_n, ml_malloc(nn * 4, "gemm A"), ml_malloc(nn * 4, "gemm B"), ml_malloc(nn * 4, "gemm C")};
    if (!g->a || !g->b || !g->c)
        return ML_ERR_NOMEM;
    rng_state r;
    rng_seed(&r, 1);
    rng_fill_uniform(&r, g->a, nn, -1, 1);
    rng_fill_uniform(&r, g->b, nn, -1, 1);
    snprintf(cfgs[0].label, sizeof cfgs[0].label, "SGEMM %ld^3", a->gemm_n);
    cfgs[0].flop = 2.0 * (double)a->gemm_n * a->gemm_n * a->gemm_n;
    ml_status s = ML_OK;
    for (int i = 0; i < a->nm && s == ML_OK; i++)
        for (int j = 0; j < a->nb && s == ML_OK; j++) {
            bench_cfg *c = &cfgs[1 + i * a->nb + j];
            model_config mc;
            snprintf(c->label, sizeof c->label, "%s %ldx%ld", a->models[i], a->res, a->res);
            c->batch = a->batches[j];
            c->ready = 1;
            s = model_config_from_name(a->models[i], &mc);
            if (s == ML_OK)
                s = target_plan_model(&c->t, &mc, (int)a->batches[j], (int)a->res, (int)a->res, &backend_cpu);
            if (s == ML_OK)
                s = target_alloc(&c->t);
            if (s == ML_OK)
                s = target_init_random(&c->t, 0);
            if (s == ML_OK)
                s = target_random_input(&c->t, 1 + (uint64_t)(i * a->nb + j));
            c->flop = 2.0 * (double)c->t.macs;
        }
    return s;
}

/* The machine's copy bandwidth (bytes read + written), for memory floors. */
static ml_status copy_bandwidth(const timer_policy *pol, size_t bytes, double *gbs)
{
    copy_ctx cp = {ml_malloc(bytes, "copy buffer"), NULL, bytes};
    cp.src = cp.dst ? ml_calloc(bytes, 1, "copy buffer") : NULL;
    ml_status s = cp.src ? ML_OK : ML_ERR_NOMEM;
    if (s == ML_OK) {
        memset(cp.dst, 1, bytes);
        timer_stats st;
        s = timer_measure(pol, run_copy, &cp, &st);
        if (s == ML_OK)
            *gbs = 2.0 * (double)bytes / (st.median_ms * 1e6);
        timer_stats_free(&st);
    }
    free(cp.dst);
    free((void *)cp.src);
    return s;
}

/* Rounds interleave the SGEMM with every model, so a slow spell of this
 * shared machine hits both sides of a ratio alike. */
static ml_status run_rounds(const cpu_args *a, const timer_policy *pol, bench_cfg *cfgs, int ncfg, gemm_ctx *g)
{
    ml_status s = ML_OK;
    for (int rd = 0; rd < a->rounds && s == ML_OK; rd++) {
        double gemm_rate = 0;
        for (int k = 0; k < ncfg && s == ML_OK; k++) {
            bench_cfg *c = &cfgs[k];
            timer_stats st;
            s = k == 0 ? timer_measure(pol, run_gemm, g, &st) : timer_measure(pol, target_run, &c->t, &st);
            if (s != ML_OK)
                break;
            s = add_samples(c, &st);
            const double rate = c->flop / (st.median_ms * 1e6);
            if (k == 0)
                gemm_rate = rate;
            c->ratio[rd] = rate / gemm_rate;
            fprintf(stderr, "round %d/%ld: %-28s batch %-3ld %8.2f ms  %7.1f GFLOP/s\n", rd + 1, a->rounds, c->label,
                    k ? c->batch : 0L, st.median_ms, rate);
            timer_stats_free(&st);
        }
    }
    return s;
}

static void report_bench_cpu(const cpu_args *a, const bench_cfg *cfgs, int ncfg, double copy_gbs)
{
    char cpu[160], date[32];
    store_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    const long rounds = a->rounds;
    printf("machine: %s, %d threads; BLAS: %s; mixerlab git %s%s; %s; %ld rounds\n\n", cpu,
           (int)(a->threads > 0 ? a->threads : cli_default_threads()), cli_blas_info(), MIXERLAB_GIT_SHA,
           MIXERLAB_GIT_DIRTY ? " (dirty)" : "", date, rounds);
    printf("| what | batch | GFLOP per call | median ms | p10-p90 ms | samples | GFLOP/s (median) | "
           "vs SGEMM: median of rounds (range) |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int k = 0; k < ncfg; k++) {
        const bench_cfg *c = &cfgs[k];
        timer_stats st = {.raw_ms = c->samples, .samples = c->nsamples};
        timer_stats_summarise(&st);
        double ratios[16];
        memcpy(ratios, c->ratio, (size_t)rounds * sizeof *ratios);
        qsort(ratios, (size_t)rounds, sizeof *ratios, cmp_d);
        double med = rounds % 2 ? ratios[rounds / 2] : 0.5 * (ratios[rounds / 2 - 1] + ratios[rounds / 2]);
        char b[16];
        snprintf(b, sizeof b, "%ld", c->batch);
        printf("| %s | %s | %.2f | %.2f | %.2f-%.2f | %d%s | %.1f | %.0f%% (%.0f-%.0f%%) |\n", c->label, k ? b : "-",
               c->flop / 1e9, st.median_ms, st.p10_ms, st.p90_ms, c->nsamples, c->capped ? " (capped)" : "",
               c->flop / (st.median_ms * 1e6), 100 * med, 100 * ratios[0], 100 * ratios[rounds - 1]);
    }
    printf("\nGFLOP = 2 x MACs (fvcore convention). A ratio compares one round's model median with\n"
           "the SGEMM median measured just before it in the same round.\n");
    printf("\ncopy bandwidth: %.1f GB/s (memcpy of 256 MiB, bytes read + written, median)\n", copy_gbs);
    printf("floors per forward: arithmetic = GFLOP / SGEMM rate; weights = weight bytes / copy bandwidth\n");
    timer_stats gst = {.raw_ms = cfgs[0].samples, .samples = cfgs[0].nsamples};
    timer_stats_summarise(&gst);
    const double gemm_rate = cfgs[0].flop / (gst.median_ms * 1e6);
    for (int k = 1; k < ncfg; k++) {
        const double wmb = (double)cfgs[k].t.weight_bytes / 1e6;
        printf("  %s batch %ld: arithmetic %.2f ms, weights %.1f MB -> %.2f ms\n", cfgs[k].label, cfgs[k].batch,
               cfgs[k].flop / (gemm_rate * 1e6), wmb, wmb / copy_gbs);
    }
}

static int cmd_bench_cpu(int argc, char **argv)
{
    cpu_args a;
    ML_TRY(parse_bench_cpu(argc, argv, &a));
    cli_set_threads((int)a.threads);
    const timer_policy pol = {.warmup_s = 0.3, .warmup_min = 1, .min_samples = 5, .min_time_s = (double)a.min_time,
                              .max_time_s = (double)a.max_time, .settle_rel = 0.02};
    const int ncfg = 1 + a.nm * a.nb;
    bench_cfg *cfgs = ml_calloc((size_t)ncfg, sizeof *cfgs, "benchmark table");
    if (!cfgs)
        return ML_ERR_NOMEM;
    gemm_ctx g = {0};
    double copy_gbs = 0;
    ml_status s = setup_bench_cpu(&a, cfgs, &g);
    if (s == ML_OK)
        s = copy_bandwidth(&pol, (size_t)256 << 20, &copy_gbs);
    if (s == ML_OK)
        s = run_rounds(&a, &pol, cfgs, ncfg, &g);
    if (s == ML_OK)
        report_bench_cpu(&a, cfgs, ncfg, copy_gbs);
    free(g.a), free(g.b), free(g.c);
    for (int k = 0; k < ncfg; k++) {
        free(cfgs[k].samples);
        if (cfgs[k].ready)
            target_free(&cfgs[k].t);
    }
    free(cfgs);
    return s;
}

/* ---- bench-mixers: every token mixer alone at one width over a range of L ---- */

static const char bench_mixers_usage[] =
    "usage: mixerlab bench-mixers [--width E] [--tokens 196,784,...] [--mixers a,b]\n"
    "                             [--threads N] [--min-time S] [--max-time S]\n"
    "\n"
    "Times each token mixer alone (batch 1, L tokens on a sqrt(L) x sqrt(L) grid when L is\n"
    "a perfect square, else 1 x L) and reports, against the SGEMM rate and the copy\n"
    "bandwidth measured in the same run: GFLOP/s (2 x MACs, fvcore, scan gu) and GB/s of\n"
    "the bytes a mixer must move at least (input and output, plus weights). Attention's\n"
    "QKᵀ and AV go through BLAS; head size 32.\n"
    "\n"
    "  --width E     mixer width (default 384)\n"
    "  --tokens L,.. token counts (default 196,784,3136,4096,8100,16384)\n"
    "  --mixers a,b  (default: every registered mixer)\n";

typedef struct {
    long width, tokens[16], threads, min_time, max_time;
    int nt, nm;
    const mixer_ops *list[32];
} mixers_args;

static ml_status parse_bench_mixers(int argc, char **argv, mixers_args *a)
{
    *a = (mixers_args){.width = 384, .tokens = {196, 784, 3136, 4096, 8100, 16384}, .nt = 6, .min_time = 1,
                       .max_time = 20};
    const char *mixers = NULL;
    const arg_spec specs[] = {
        OPT_LONG("--width", &a->width, 1, 16384),
        OPT_LIST("--tokens", a->tokens, 1, 1 << 20, 16, &a->nt, NULL),
        OPT_STRING("--mixers", &mixers),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_LONG("--min-time", &a->min_time, 0, 3600),
        OPT_LONG("--max-time", &a->max_time, 1, 36000),
        OPT_END,
    };
    ML_TRY(args_parse("bench-mixers", argc, argv, specs, NULL, 0, NULL));
    if (!mixers) {
        for (int i = 0; i < mixer_count() && a->nm < 32; i++)
            a->list[a->nm++] = mixer_at(i);
        return ML_OK;
    }
    char buf[512];
    const char *names[32];
    ML_TRY(args_split("--mixers", mixers, buf, sizeof buf, names, 32, &a->nm));
    for (int i = 0; i < a->nm; i++)
        ML_TRY(mixer_lookup(names[i], &a->list[i]));
    return ML_OK;
}

/* The SGEMM (1024³) and copy limits of this run. */
static ml_status mixer_limits(const timer_policy *pol, double *gemm_gf, double *copy_gbs)
{
    const int gn = 1024;
    const size_t nn = (size_t)gn * gn;
    gemm_ctx g = {gn, ml_malloc(nn * 4, "gemm A"), ml_malloc(nn * 4, "gemm B"), ml_malloc(nn * 4, "gemm C")};
    ml_status s = g.a && g.b && g.c ? ML_OK : ML_ERR_NOMEM;
    if (s == ML_OK) {
        rng_state r;
        rng_seed(&r, 3);
        rng_fill_uniform(&r, g.a, nn, -1, 1);
        rng_fill_uniform(&r, g.b, nn, -1, 1);
        timer_stats st;
        s = timer_measure(pol, run_gemm, &g, &st);
        if (s == ML_OK)
            *gemm_gf = 2.0 * nn * gn / (st.median_ms * 1e6);
        timer_stats_free(&st);
    }
    free(g.a), free(g.b), free(g.c);
    return s == ML_OK ? copy_bandwidth(pol, (size_t)256 << 20, copy_gbs) : s;
}

/* One mixer at L tokens: timed, one table row. */
static ml_status bench_one_mixer(const mixers_args *a, const timer_policy *pol, int i, int t, double gemm_gf,
                                 double copy_gbs)
{
    const long L = a->tokens[t];
    const int E = (int)a->width;
    int H, W;
    cli_token_grid(L, &H, &W);
    mixer_config cfg = mixer_config_default(E, E);
    mixer_instance mi;
    target tg;
    timer_stats st;
    memset(&tg, 0, sizeof tg);
    ml_status s = mixer_instance_random(&mi, a->list[i]->name, &cfg, 1);
    if (s == ML_OK)
        s = target_plan_mixer(&tg, &mi, 1, H, W, &backend_cpu);
    if (s == ML_OK)
        s = target_alloc(&tg);
    if (s == ML_OK)
        s = target_random_input(&tg, 3 + (uint64_t)i * 64 + (uint64_t)t);
    if (s == ML_OK)
        s = timer_measure(pol, target_run, &tg, &st);
    if (s == ML_OK) {
        const double flop = 2.0 * (double)tg.macs;
        const double bytes = 2.0 * (double)tg.n_in * 4 + 4.0 * (double)tg.params;
        const double gf = flop / (st.median_ms * 1e6), gbs = bytes / (st.median_ms * 1e6);
        printf("| %s | %ld | %dx%d | %.3f | %.1f | %.0f%% | %.2f | %.1f | %.0f%% |\n", a->list[i]->name, L, H, W,
               st.median_ms, gf, 100 * gf / gemm_gf, bytes / 1e6, gbs, 100 * gbs / copy_gbs);
        fflush(stdout);
        timer_stats_free(&st);
    }
    mixer_instance_free(&mi);
    target_free(&tg);
    return s;
}

static int cmd_bench_mixers(int argc, char **argv)
{
    mixers_args a;
    ML_TRY(parse_bench_mixers(argc, argv, &a));
    cli_set_threads((int)a.threads);
    const timer_policy pol = {.warmup_s = 0.1, .warmup_min = 1, .min_samples = 3, .min_time_s = (double)a.min_time,
                              .max_time_s = (double)a.max_time, .settle_rel = 0.03};
    double gemm_gf = 0, copy_gbs = 0;
    ML_TRY(mixer_limits(&pol, &gemm_gf, &copy_gbs));
    char cpu[160], date[32];
    store_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("machine: %s, %d threads; BLAS: %s; mixerlab git %s%s; %s\n", cpu,
           (int)(a.threads > 0 ? a.threads : cli_default_threads()), cli_blas_info(), MIXERLAB_GIT_SHA,
           MIXERLAB_GIT_DIRTY ? " (dirty)" : "", date);
    printf("limits measured in this run: SGEMM 1024x1024x1024 %.1f GFLOP/s; copy %.1f GB/s (read + write)\n\n",
           gemm_gf, copy_gbs);
    printf("| mixer | L | grid | median ms | GFLOP/s | %% of SGEMM | min bytes MB | GB/s | %% of copy |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    ml_status s = ML_OK;
    for (int i = 0; i < a.nm && s == ML_OK; i++)
        for (int t = 0; t < a.nt && s == ML_OK; t++)
            s = bench_one_mixer(&a, &pol, i, t, gemm_gf, copy_gbs);
    return s;
}

/* ---- bench-runner: what the measuring loop itself costs ---- */

static const char bench_runner_usage[] =
    "usage: mixerlab bench-runner [--ms D] [--time S]\n"
    "\n"
    "Times a busy-wait of D milliseconds (default 1) with the sweep's measuring loop for\n"
    "S seconds (default 3) and reports the loop's own overhead per sample: wall time of\n"
    "the measurement minus the sum of the samples, over the sum of the samples.\n";

static void spin_for(void *p)
{
    double d = *(const double *)p, t = timer_now_s();
    while (timer_now_s() - t < d) {
    }
}

static int cmd_bench_runner(int argc, char **argv)
{
    long ms = 1, secs = 3;
    const arg_spec specs[] = {OPT_LONG("--ms", &ms, 1, 10000), OPT_LONG("--time", &secs, 1, 3600), OPT_END};
    ML_TRY(args_parse("bench-runner", argc, argv, specs, NULL, 0, NULL));
    double d = (double)ms / 1e3;
    /* settle_rel 0 never settles: the loop runs its full time with every check */
    timer_policy pol = {.warmup_s = 0, .warmup_min = 0, .min_samples = 10, .min_time_s = (double)secs,
                        .max_time_s = (double)secs, .settle_rel = 0};
    timer_stats st;
    double t0 = timer_now_s();
    ML_TRY(timer_measure(&pol, spin_for, &d, &st));
    double wall = (timer_now_s() - t0) * 1e3, sum = 0;
    for (int i = 0; i < st.samples; i++)
        sum += st.raw_ms[i];
    printf("measuring loop on a %ld ms busy-wait for %ld s: %d samples, median %.4f ms\n", ms, secs, st.samples,
           st.median_ms);
    printf("overhead: %.4f ms per sample, %.3f%% of the time measured (target < 1%% for configs >= 1 ms)\n",
           (wall - sum) / st.samples, 100.0 * (wall - sum) / sum);
    timer_stats_free(&st);
    return 0;
}

const cli_command cli_bench_cpu = {"bench-cpu", "SGEMM rate and whole-forward rate on this machine, in one run",
                                   bench_usage, cmd_bench_cpu};
const cli_command cli_bench_mixers = {"bench-mixers",
                                      "every token mixer alone over token counts, against SGEMM and copy rates",
                                      bench_mixers_usage, cmd_bench_mixers};
const cli_command cli_bench_runner = {"bench-runner", "the measuring loop's own overhead per sample",
                                      bench_runner_usage, cmd_bench_runner};
