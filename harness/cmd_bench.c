/* mixerlab bench-cpu: the machine's SGEMM rate and the whole-forward rate of
 * zoo models, measured in one run so their ratio means something on a shared,
 * noisy machine. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/rng.h"
#include "harness/timer.h"
#include "models/model.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_usage[] =
    "usage: mixerlab bench-cpu [--models a,b] [--batches 1,8] [--res R] [--threads N]\n"
    "                          [--gemm-size N] [--min-time S] [--max-time S]\n"
    "\n"
    "Measures, in one run: the OpenBLAS SGEMM rate (N x N x N, float32) and each\n"
    "model's whole-forward rate, 2 x MACs (fvcore) / median time, as a share of that\n"
    "SGEMM rate. Prints a Markdown table with the machine, BLAS and date.\n"
    "\n"
    "  --models a,b   zoo names (default mambaout_femto,mambaout_tiny)\n"
    "  --batches 1,8  batch sizes (default 1,8)\n"
    "  --res R        resolution (default 224)\n"
    "  --threads N    CPU threads (default: all cores)\n"
    "  --gemm-size N  SGEMM size (default 2048)\n"
    "  --min-time S   least seconds of timed samples per measurement (default 2)\n"
    "  --max-time S   cap per measurement (default 30)\n";

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = '\0';
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(fp);
}

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
    model *m;
    const float *x;
} bench_fwd;

static void run_fwd(void *p)
{
    bench_fwd *f = p;
    model_forward(f->m, f->x, NULL, NULL);
}

int cmd_bench_cpu(int argc, char **argv)
{
    char models_buf[256] = "mambaout_femto,mambaout_tiny";
    long batches[8] = {1, 8}, res = 224, threads = 0, gemm_n = 2048, min_time = 2, max_time = 30;
    int nb = 2;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = NULL;
        if (cli_is_help(f)) {
            fputs(bench_usage, stdout);
            return 0;
        }
        if (strcmp(f, "--models") && strcmp(f, "--batches") && strcmp(f, "--res") &&
            strcmp(f, "--threads") && strcmp(f, "--gemm-size") && strcmp(f, "--min-time") &&
            strcmp(f, "--max-time"))
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
    cpu_model(cpu, sizeof cpu);
    time_t now = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("machine: %s, %d threads; BLAS: %s; mixerlab git %s; %s\n\n", cpu,
           (int)(threads > 0 ? threads : cli_default_threads()), cli_blas_info(), MIXERLAB_GIT_SHA, date);

    /* SGEMM rate */
    size_t nn = (size_t)gemm_n * gemm_n;
    gemm_ctx g = {(int)gemm_n, ml_malloc(nn * 4, "gemm A"), ml_malloc(nn * 4, "gemm B"),
                  ml_malloc(nn * 4, "gemm C")};
    if (!g.a || !g.b || !g.c) {
        free(g.a), free(g.b), free(g.c);
        return ML_ERR_NOMEM;
    }
    rng_state r;
    rng_seed(&r, 1);
    rng_fill_uniform(&r, g.a, nn, -1, 1);
    rng_fill_uniform(&r, g.b, nn, -1, 1);
    timer_stats gs;
    ml_status s = timer_measure(&pol, run_gemm, &g, &gs);
    free(g.a), free(g.b), free(g.c);
    if (s != ML_OK)
        return s;
    double gemm_gflops = 2.0 * (double)gemm_n * gemm_n * gemm_n / (gs.median_ms * 1e6);
    printf("| what | batch | GMACs (fvcore) | median ms | p10-p90 ms | samples | GFLOP/s | vs SGEMM |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    printf("| SGEMM %ld^3 | - | %.2f | %.3f | %.3f-%.3f | %d%s | %.1f | 100%% |\n", gemm_n,
           (double)gemm_n * gemm_n * gemm_n / 1e9, gs.median_ms, gs.p10_ms, gs.p90_ms, gs.samples,
           gs.capped ? " (capped)" : "", gemm_gflops);
    timer_stats_free(&gs);
    fflush(stdout);

    for (int i = 0; i < nm && s == ML_OK; i++) {
        for (int j = 0; j < nb && s == ML_OK; j++) {
            model_config cfg;
            model m;
            ML_TRY(model_config_from_name(names[i], &cfg));
            s = model_plan(&m, &cfg, (int)batches[j], (int)res, (int)res);
            if (s == ML_OK)
                s = model_alloc(&m);
            float *x = NULL;
            if (s == ML_OK) {
                model_init_random(&m, 0);
                size_t n = (size_t)batches[j] * 3 * res * res;
                x = ml_malloc(n * sizeof *x, "input");
                if (!x)
                    s = ML_ERR_NOMEM;
                else
                    rng_fill_normal(&r, x, n, 1.0);
            }
            if (s == ML_OK) {
                bench_fwd f = {&m, x};
                timer_stats st;
                s = timer_measure(&pol, run_fwd, &f, &st);
                if (s == ML_OK) {
                    macs_opts o = {MACS_FVCORE};
                    double macs = (double)model_macs(&m, &o, NULL);
                    double gf = 2.0 * macs / (st.median_ms * 1e6);
                    printf("| %s %ldx%ld | %ld | %.3f | %.2f | %.2f-%.2f | %d%s | %.1f | %.0f%% |\n",
                           names[i], res, res, batches[j], macs / 1e9, st.median_ms, st.p10_ms,
                           st.p90_ms, st.samples, st.capped ? " (capped)" : "", gf,
                           100.0 * gf / gemm_gflops);
                    fflush(stdout);
                }
                timer_stats_free(&st);
            }
            free(x);
            model_free(&m);
        }
    }
    return s;
}
