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

int cmd_bench_cpu(int argc, char **argv)
{
    char models_buf[256] = "mambaout_femto,mambaout_tiny";
    long batches[8] = {1, 8}, res = 224, threads = 0, gemm_n = 2048, min_time = 2, max_time = 30,
         rounds = 3;
    int nb = 2;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = NULL;
        if (cli_is_help(f)) {
            fputs(bench_usage, stdout);
            return 0;
        }
        if (strcmp(f, "--models") && strcmp(f, "--batches") && strcmp(f, "--res") &&
            strcmp(f, "--threads") && strcmp(f, "--gemm-size") && strcmp(f, "--min-time") &&
            strcmp(f, "--max-time") && strcmp(f, "--rounds"))
            return ml_fail(ML_ERR_USAGE, "bench-cpu: unknown option '%s' (see --help)", f);
        ML_TRY(args_value(argc, argv, &i, &v));
        if (strcmp(f, "--models") == 0) {
            if (strlen(v) >= sizeof models_buf || !v[0])
                return ml_fail(ML_ERR_USAGE, "--models: bad list '%s'", v);
            strcpy(models_buf, v);
        } else if (strcmp(f, "--batches") == 0)
            ML_TRY(args_parse_long_list(f, v, 1, 1024, batches, 8, &nb));
        else if (strcmp(f, "--res") == 0)
            ML_TRY(args_parse_long(f, v, MODEL_MIN_RES, MODEL_MAX_RES, &res));
        else if (strcmp(f, "--threads") == 0)
            ML_TRY(args_parse_long(f, v, 1, 1024, &threads));
        else if (strcmp(f, "--gemm-size") == 0)
            ML_TRY(args_parse_long(f, v, 64, 16384, &gemm_n));
        else if (strcmp(f, "--min-time") == 0)
            ML_TRY(args_parse_long(f, v, 0, 3600, &min_time));
        else if (strcmp(f, "--rounds") == 0)
            ML_TRY(args_parse_long(f, v, 1, 16, &rounds));
        else
            ML_TRY(args_parse_long(f, v, 1, 36000, &max_time));
    }
    /* Validate every model name before spending time measuring. */
    char *names[16];
    int nm = 0;
    char *save = NULL;
    for (char *t = strtok_r(models_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        model_config cfg;
        if (nm == 16)
            return ml_fail(ML_ERR_USAGE, "--models: at most 16");
        ML_TRY(model_config_from_name(t, &cfg));
        names[nm++] = t;
    }
    cli_set_threads((int)threads);

    timer_policy pol = {.warmup_s = 0.3, .warmup_min = 1, .min_samples = 5,
                        .min_time_s = (double)min_time, .max_time_s = (double)max_time,
                        .settle_rel = 0.02};
    char cpu[160];
    store_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));

    const int ncfg = 1 + nm * nb;
    bench_cfg *cfgs = ml_calloc((size_t)ncfg, sizeof *cfgs, "benchmark table");
    if (!cfgs)
        return ML_ERR_NOMEM;
    size_t nn = (size_t)gemm_n * gemm_n;
    gemm_ctx g = {(int)gemm_n, ml_malloc(nn * 4, "gemm A"), ml_malloc(nn * 4, "gemm B"),
                  ml_malloc(nn * 4, "gemm C")};
    rng_state r;
    rng_seed(&r, 1);
    ml_status s = (g.a && g.b && g.c) ? ML_OK : ML_ERR_NOMEM;
    if (s == ML_OK) {
        rng_fill_uniform(&r, g.a, nn, -1, 1);
        rng_fill_uniform(&r, g.b, nn, -1, 1);
    }
    snprintf(cfgs[0].label, sizeof cfgs[0].label, "SGEMM %ld^3", gemm_n);
    cfgs[0].flop = 2.0 * (double)gemm_n * gemm_n * gemm_n;
    for (int i = 0; i < nm && s == ML_OK; i++) {
        for (int j = 0; j < nb && s == ML_OK; j++) {
            bench_cfg *c = &cfgs[1 + i * nb + j];
            model_config mc;
            snprintf(c->label, sizeof c->label, "%s %ldx%ld", names[i], res, res);
            c->batch = batches[j];
            s = model_config_from_name(names[i], &mc);
            if (s == ML_OK)
                s = target_plan_model(&c->t, &mc, (int)batches[j], (int)res, (int)res, &backend_cpu);
            c->ready = 1;
            if (s == ML_OK)
                s = target_alloc(&c->t);
            if (s == ML_OK)
                s = target_init_random(&c->t, 0);
            if (s == ML_OK)
                s = target_random_input(&c->t, 1 + (uint64_t)(i * nb + j));
            c->flop = 2.0 * (double)c->t.macs;
        }
    }

    /* Rounds interleave the SGEMM with every model, so a slow spell of this
     * shared machine hits both sides of a ratio alike. */
    /* The machine's copy bandwidth (bytes read + written), for memory floors. */
    copy_ctx cp = {NULL, NULL, (size_t)256 << 20};
    double copy_gbs = 0;
    if (s == ML_OK) {
        cp.dst = ml_malloc(cp.bytes, "copy buffer");
        cp.src = cp.dst ? ml_calloc(cp.bytes, 1, "copy buffer") : NULL;
        if (!cp.src)
            s = ML_ERR_NOMEM;
        else {
            memset(cp.dst, 1, cp.bytes);
            timer_stats st;
            s = timer_measure(&pol, run_copy, &cp, &st);
            if (s == ML_OK)
                copy_gbs = 2.0 * (double)cp.bytes / (st.median_ms * 1e6);
            timer_stats_free(&st);
        }
        free(cp.dst);
        free((void *)cp.src);
    }
    for (int rd = 0; rd < rounds && s == ML_OK; rd++) {
        double gemm_rate = 0;
        for (int k = 0; k < ncfg && s == ML_OK; k++) {
            bench_cfg *c = &cfgs[k];
            timer_stats st;
            if (k == 0) {
                s = timer_measure(&pol, run_gemm, &g, &st);
            } else {
                s = timer_measure(&pol, target_run, &c->t, &st);
            }
            if (s != ML_OK)
                break;
            s = add_samples(c, &st);
            double rate = c->flop / (st.median_ms * 1e6);
            if (k == 0)
                gemm_rate = rate;
            c->ratio[rd] = rate / gemm_rate;
            fprintf(stderr, "round %d/%ld: %-28s batch %-3ld %8.2f ms  %7.1f GFLOP/s\n", rd + 1, rounds,
                    c->label, k ? c->batch : 0L, st.median_ms, rate);
            timer_stats_free(&st);
        }
    }

    if (s == ML_OK) {
        printf("machine: %s, %d threads; BLAS: %s; mixerlab git %s%s; %s; %ld rounds\n\n", cpu,
               (int)(threads > 0 ? threads : cli_default_threads()), cli_blas_info(), MIXERLAB_GIT_SHA,
               MIXERLAB_GIT_DIRTY ? " (dirty)" : "", date, rounds);
        printf("| what | batch | GFLOP per call | median ms | p10-p90 ms | samples | GFLOP/s (median) | "
               "vs SGEMM: median of rounds (range) |\n");
        printf("|---|---|---|---|---|---|---|---|\n");
        for (int k = 0; k < ncfg; k++) {
            bench_cfg *c = &cfgs[k];
            timer_stats st = {.raw_ms = c->samples, .samples = c->nsamples};
            timer_stats_summarise(&st);
            double ratios[16];
            memcpy(ratios, c->ratio, (size_t)rounds * sizeof *ratios);
            qsort(ratios, (size_t)rounds, sizeof *ratios, cmp_d);
            double med = rounds % 2 ? ratios[rounds / 2] : 0.5 * (ratios[rounds / 2 - 1] + ratios[rounds / 2]);
            char b[16];
            snprintf(b, sizeof b, "%ld", c->batch);
            printf("| %s | %s | %.2f | %.2f | %.2f-%.2f | %d%s | %.1f | %.0f%% (%.0f-%.0f%%) |\n",
                   c->label, k ? b : "-", c->flop / 1e9, st.median_ms, st.p10_ms, st.p90_ms,
                   c->nsamples, c->capped ? " (capped)" : "", c->flop / (st.median_ms * 1e6),
                   100 * med, 100 * ratios[0], 100 * ratios[rounds - 1]);
        }
        printf("\nGFLOP = 2 x MACs (fvcore convention). A ratio compares one round's model median with\n"
               "the SGEMM median measured just before it in the same round.\n");
        printf("\ncopy bandwidth: %.1f GB/s (memcpy of 256 MiB, bytes read + written, median)\n", copy_gbs);
        printf("floors per forward: arithmetic = GFLOP / SGEMM rate; weights = weight bytes / copy bandwidth\n");
        timer_stats gst = {.raw_ms = cfgs[0].samples, .samples = cfgs[0].nsamples};
        timer_stats_summarise(&gst);
        double gemm_rate = cfgs[0].flop / (gst.median_ms * 1e6);
        for (int k = 1; k < ncfg; k++) {
            double wmb = (double)cfgs[k].t.weight_bytes / 1e6;
            printf("  %s batch %ld: arithmetic %.2f ms, weights %.1f MB -> %.2f ms\n", cfgs[k].label,
                   cfgs[k].batch, cfgs[k].flop / (gemm_rate * 1e6), wmb, wmb / copy_gbs);
        }
    }
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

int cmd_bench_mixers(int argc, char **argv)
{
    long width = 384, tokens[16] = {196, 784, 3136, 4096, 8100, 16384}, threads = 0, min_time = 1,
         max_time = 20;
    int nt = 6;
    char mixers_buf[256] = "";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = NULL;
        if (cli_is_help(f)) {
            fputs(bench_mixers_usage, stdout);
            return 0;
        }
        if (strcmp(f, "--width") && strcmp(f, "--tokens") && strcmp(f, "--mixers") && strcmp(f, "--threads") &&
            strcmp(f, "--min-time") && strcmp(f, "--max-time"))
            return ml_fail(ML_ERR_USAGE, "bench-mixers: unknown option '%s' (see --help)", f);
        ML_TRY(args_value(argc, argv, &i, &v));
        if (!strcmp(f, "--width"))
            ML_TRY(args_parse_long(f, v, 1, 16384, &width));
        else if (!strcmp(f, "--tokens"))
            ML_TRY(args_parse_long_list(f, v, 1, 1 << 20, tokens, 16, &nt));
        else if (!strcmp(f, "--mixers")) {
            if (strlen(v) >= sizeof mixers_buf)
                return ml_fail(ML_ERR_USAGE, "--mixers: list too long");
            strcpy(mixers_buf, v);
        } else if (!strcmp(f, "--threads"))
            ML_TRY(args_parse_long(f, v, 1, 1024, &threads));
        else if (!strcmp(f, "--min-time"))
            ML_TRY(args_parse_long(f, v, 0, 3600, &min_time));
        else
            ML_TRY(args_parse_long(f, v, 1, 36000, &max_time));
    }
    const mixer_ops *list[32];
    int nm = 0;
    if (mixers_buf[0]) {
        char *save = NULL;
        for (char *t = strtok_r(mixers_buf, ",", &save); t && nm < 32; t = strtok_r(NULL, ",", &save))
            ML_TRY(mixer_lookup(t, &list[nm++]));
    } else {
        for (int i = 0; i < mixer_count() && nm < 32; i++)
            list[nm++] = mixer_at(i);
    }
    cli_set_threads((int)threads);
    timer_policy pol = {.warmup_s = 0.1, .warmup_min = 1, .min_samples = 3, .min_time_s = (double)min_time,
                        .max_time_s = (double)max_time, .settle_rel = 0.03};

    /* the machine's limits, in this run */
    const int gn = 1024;
    size_t nn = (size_t)gn * gn;
    gemm_ctx g = {gn, ml_malloc(nn * 4, "gemm A"), ml_malloc(nn * 4, "gemm B"), ml_malloc(nn * 4, "gemm C")};
    copy_ctx cp = {ml_malloc((size_t)256 << 20, "copy"), NULL, (size_t)256 << 20};
    cp.src = ml_calloc((size_t)256 << 20, 1, "copy");
    if (!g.a || !g.b || !g.c || !cp.dst || !cp.src) {
        free(g.a), free(g.b), free(g.c), free(cp.dst), free((void *)cp.src);
        return ML_ERR_NOMEM;
    }
    rng_state r;
    rng_seed(&r, 3);
    rng_fill_uniform(&r, g.a, nn, -1, 1);
    rng_fill_uniform(&r, g.b, nn, -1, 1);
    memset(cp.dst, 1, cp.bytes);
    timer_stats st;
    ml_status s = timer_measure(&pol, run_gemm, &g, &st);
    double gemm_gf = s == ML_OK ? 2.0 * nn * gn / (st.median_ms * 1e6) : 0;
    timer_stats_free(&st);
    if (s == ML_OK)
        s = timer_measure(&pol, run_copy, &cp, &st);
    double copy_gbs = s == ML_OK ? 2.0 * cp.bytes / (st.median_ms * 1e6) : 0;
    timer_stats_free(&st);
    free(g.a), free(g.b), free(g.c), free(cp.dst), free((void *)cp.src);
    if (s != ML_OK)
        return s;

    char cpu[160], date[32];
    store_cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("machine: %s, %d threads; BLAS: %s; mixerlab git %s%s; %s\n", cpu,
           (int)(threads > 0 ? threads : cli_default_threads()), cli_blas_info(), MIXERLAB_GIT_SHA,
           MIXERLAB_GIT_DIRTY ? " (dirty)" : "", date);
    printf("limits measured in this run: SGEMM %dx%dx%d %.1f GFLOP/s; copy %.1f GB/s (read + write)\n\n", gn, gn,
           gn, gemm_gf, copy_gbs);
    printf("| mixer | L | grid | median ms | GFLOP/s | %% of SGEMM | min bytes MB | GB/s | %% of copy |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);
    const int E = (int)width;
    for (int i = 0; i < nm && s == ML_OK; i++) {
        for (int t = 0; t < nt && s == ML_OK; t++) {
            const long L = tokens[t];
            int H, W;
            cli_token_grid(L, &H, &W);
            mixer_config cfg = mixer_config_default(E, E);
            mixer_instance mi;
            target tg;
            memset(&tg, 0, sizeof tg);
            s = mixer_instance_random(&mi, list[i]->name, &cfg, 1);
            if (s == ML_OK)
                s = target_plan_mixer(&tg, &mi, 1, H, W, &backend_cpu);
            if (s == ML_OK)
                s = target_alloc(&tg);
            if (s == ML_OK)
                s = target_random_input(&tg, 3 + (uint64_t)i * 64 + (uint64_t)t);
            if (s == ML_OK)
                s = timer_measure(&pol, target_run, &tg, &st);
            if (s == ML_OK) {
                const double flop = 2.0 * (double)tg.macs;
                const double bytes = 2.0 * (double)tg.n_in * 4 + 4.0 * (double)tg.params;
                const double gf = flop / (st.median_ms * 1e6), gbs = bytes / (st.median_ms * 1e6);
                printf("| %s | %ld | %dx%d | %.3f | %.1f | %.0f%% | %.2f | %.1f | %.0f%% |\n", list[i]->name, L, H, W,
                       st.median_ms, gf, 100 * gf / gemm_gf, bytes / 1e6, gbs, 100 * gbs / copy_gbs);
                fflush(stdout);
                timer_stats_free(&st);
            }
            mixer_instance_free(&mi);
            target_free(&tg);
        }
    }
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

int cmd_bench_runner(int argc, char **argv)
{
    long ms = 1, secs = 3;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (cli_is_help(argv[i])) {
            fputs(bench_runner_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--ms")) {
            ML_TRY(args_value(argc, argv, &i, &v));
            ML_TRY(args_parse_long("--ms", v, 1, 10000, &ms));
        } else if (!strcmp(argv[i], "--time")) {
            ML_TRY(args_value(argc, argv, &i, &v));
            ML_TRY(args_parse_long("--time", v, 1, 3600, &secs));
        } else {
            return ml_fail(ML_ERR_USAGE, "bench-runner: unknown option '%s'", argv[i]);
        }
    }
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
