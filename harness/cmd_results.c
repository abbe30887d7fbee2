/* mixerlab export / merge / plot: what a sweep wrote, out of the database
 * (the queries themselves are in store.c). */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/store.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char export_usage[] =
    "usage: mixerlab export [--db FILE] [--experiment NAME] (--csv | --json)\n"
    "\n"
    "Every result row (joined with its run's commit, machine and date), as CSV with a\n"
    "header line or as a JSON array.\n";

static const char merge_usage[] =
    "usage: mixerlab merge OUT.sqlite IN.sqlite [IN.sqlite ...]\n"
    "\n"
    "Copies the runs (with their provenance), results and samples of each input into\n"
    "OUT (created if missing). A configuration already in OUT with status ok is kept\n"
    "once: the incoming copy is skipped. Used to combine Slurm shards.\n";

static const char plot_usage[] =
    "usage: mixerlab plot EXPERIMENT [--db FILE] [--out DIR]\n"
    "\n"
    "Draws the experiment's results with mixerlab's gnuplot scripts (found beside the\n"
    "executable, in the installed share/mixerlab/plots, or in the source tree), as PNG\n"
    "and SVG in DIR (default plots/): latency vs tokens (log-log, one line per mixer, a\n"
    "p10-p90 band), peak memory vs tokens, MACs vs tokens, throughput vs batch. For\n"
    "model-level experiments the x axis is the resolution (the sequence length for the\n"
    "sequence model seq). Also fits, prints and stores\n"
    "(table scaling) each mixer's scaling exponent: the slope of log latency on log\n"
    "tokens over the largest decade measured.\n";

/* ---- export ---- */

static void csv_field(const char *t)
{
    if (!t)
        return;
    if (strpbrk(t, ",\"\n")) {
        putchar('"');
        for (; *t; t++) {
            if (*t == '"')
                putchar('"');
            putchar(*t);
        }
        putchar('"');
    } else {
        fputs(t, stdout);
    }
}

static void csv_columns(void *ctx, int n, const char *const *names)
{
    (void)ctx;
    for (int c = 0; c < n; c++)
        printf("%s%s", c ? "," : "", names[c]);
    putchar('\n');
}

static void csv_row(void *ctx, int n, const char *const *names, const store_value *v)
{
    (void)ctx, (void)names;
    for (int c = 0; c < n; c++) {
        if (c)
            putchar(',');
        csv_field(v[c].text);
    }
    putchar('\n');
}

static void json_columns(void *ctx, int n, const char *const *names) { (void)ctx, (void)n, (void)names; }

static void json_row(void *ctx, int n, const char *const *names, const store_value *v)
{
    cJSON *o = cJSON_CreateObject();
    for (int c = 0; c < n; c++) {
        if (v[c].type == STORE_NULL)
            cJSON_AddNullToObject(o, names[c]);
        else if (v[c].type == STORE_NUMBER)
            cJSON_AddNumberToObject(o, names[c], v[c].number);
        else
            cJSON_AddStringToObject(o, names[c], v[c].text);
    }
    cJSON_AddItemToArray((cJSON *)ctx, o);
}

static int cmd_export(int argc, char **argv)
{
    const char *db = "results/mixerlab.sqlite", *exp = NULL;
    int fmt = 0;
    const arg_spec specs[] = {
        OPT_STRING("--db", &db), OPT_STRING("--experiment", &exp), OPT_SET("--csv", &fmt, 1),
        OPT_SET("--json", &fmt, 2), OPT_END,
    };
    ML_TRY(args_parse("export", argc, argv, specs, NULL, 0, NULL));
    if (!fmt)
        return ml_fail(ML_ERR_USAGE, "export: give --csv or --json");
    if (access(db, R_OK) != 0)
        return ml_fail(ML_ERR_IO, "database '%s': %s", db, strerror(errno));
    store st;
    ML_TRY(store_open(&st, db));
    cJSON *arr = fmt == 2 ? cJSON_CreateArray() : NULL;
    ml_status s = fmt == 1 ? store_export(&st, exp, csv_columns, csv_row, NULL)
                           : store_export(&st, exp, json_columns, json_row, arr);
    cli_print_json(arr);
    store_close(&st);
    return s;
}

/* ---- merge ---- */

static int cmd_merge(int argc, char **argv)
{
    const char *dbs[1024];
    int n = 0;
    const arg_spec none[] = {OPT_END};
    ML_TRY(args_parse("merge", argc, argv, none, dbs, 1024, &n));
    if (n < 2)
        return ml_fail(ML_ERR_USAGE, "merge: give OUT.sqlite and at least one IN.sqlite");
    /* every input must be a readable mixerlab database before anything is written */
    for (int i = 1; i < n; i++) {
        store in;
        if (access(dbs[i], R_OK) != 0)
            return ml_fail(ML_ERR_IO, "database '%s': %s", dbs[i], strerror(errno));
        ML_TRY(store_open(&in, dbs[i]));
        store_close(&in);
    }
    store st;
    ML_TRY(store_open(&st, dbs[0]));
    ml_status s = ML_OK;
    long kept = 0, dup = 0;
    for (int i = 1; i < n && s == ML_OK; i++)
        s = store_merge_from(&st, dbs[i], &kept, &dup);
    if (s == ML_OK)
        printf("merged %d database(s) into %s: %ld results copied, %ld already present (kept once)\n", n - 1, dbs[0],
               kept, dup);
    store_close(&st);
    return s;
}

/* ---- plot ---- */

static ml_status run_gnuplot(const char *script, const char *vars)
{
    pid_t pid = fork();
    if (pid < 0)
        return ml_fail(ML_ERR_RUNTIME, "cannot start gnuplot: %s", strerror(errno));
    if (pid == 0) {
        execlp("gnuplot", "gnuplot", "-e", vars, script, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) == 127)
        return ml_fail(ML_ERR_RUNTIME, "gnuplot is not installed (apt-get install gnuplot-nox) or could not run %s", script);
    if (WEXITSTATUS(status) != 0)
        return ml_fail(ML_ERR_RUNTIME, "gnuplot failed on %s (exit %d)", script, WEXITSTATUS(status));
    return ML_OK;
}

/* Least-squares slope of log y on log x over points with x >= max x / 10. */
static int fit_exponent(const store_plot_row *r, int n, double *slope, double *lo, double *hi)
{
    double xmax = 0;
    for (int i = 0; i < n; i++)
        xmax = r[i].x > xmax ? r[i].x : xmax;
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int k = 0;
    *lo = xmax, *hi = xmax;
    for (int i = 0; i < n; i++) {
        if (r[i].x < xmax / 10 || r[i].med <= 0)
            continue;
        double X = log(r[i].x), Y = log(r[i].med);
        sx += X, sy += Y, sxx += X * X, sxy += X * Y, k++;
        *lo = r[i].x < *lo ? r[i].x : *lo;
    }
    if (k < 2 || sxx * k - sx * sx <= 0)
        return 0;
    *slope = (k * sxy - sx * sy) / (k * sxx - sx * sx);
    return k;
}

/* Names go on gnuplot's command line inside single quotes and are split on spaces by word(). */
static void sanitise(char *t, int spaces)
{
    for (char *c = t; *c; c++)
        if (*c == '\'' || *c == '\\' || (spaces && *c == ' '))
            *c = spaces ? '_' : ' ';
}

/* Appends name to the space-separated titles (tn bytes) and counts it; 0 when it does not fit. */
static int add_title(char *titles, size_t tn, int *count, const char *name)
{
    const size_t used = strlen(titles), need = strlen(name) + (*count ? 1 : 0);
    if (used + need + 1 > tn)
        return 0;
    snprintf(titles + used, tn - used, "%s%s", *count ? " " : "", name);
    (*count)++;
    return 1;
}

/* One data file, one gnuplot index block per series (rows are sorted by series); titles lists the series. */
static ml_status write_plot_data(const char *path, store_plot_row *rows, int n, char *titles, size_t tn, int *nseries)
{
    FILE *fp = fopen(path, "w");
    if (!fp)
        return ml_fail(ML_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
    *nseries = 0;
    titles[0] = '\0';
    for (int i = 0; i < n; i++) {
        sanitise(rows[i].series, 1);
        if (i == 0 || strcmp(rows[i].series, rows[i - 1].series)) {
            if (i)
                fprintf(fp, "\n\n");
            fprintf(fp, "# %s\n", rows[i].series);
            if (!add_title(titles, tn, nseries, rows[i].series)) {
                fclose(fp);
                return ml_fail(ML_ERR_USAGE, "plot: too many series to name (%d so far, %zu characters at most)",
                               *nseries, tn - 1);
            }
        }
        fprintf(fp, "%g %g %g %g %g %g %g %ld\n", rows[i].x, rows[i].med, rows[i].p10, rows[i].p90,
                rows[i].peak / 1048576.0, rows[i].macs, rows[i].thr, rows[i].batch);
    }
    if (fclose(fp) != 0)
        return ml_fail(ML_ERR_IO, "cannot write '%s'", path);
    return ML_OK;
}

/* The scaling exponent of every (series, batch): printed and stored. */
static ml_status fit_and_store(store *st, const char *exp, const store_plot_row *rows, int n, int by_tokens)
{
    printf("%s: scaling of median latency with %s (slope of log-log over the largest decade measured)\n", exp,
           by_tokens ? "tokens" : "resolution");
    ml_status s = ML_OK;
    for (int i = 0; i < n && s == ML_OK;) {
        int j = i;
        while (j < n && !strcmp(rows[j].series, rows[i].series) && rows[j].batch == rows[i].batch)
            j++;
        double slope, lo, hi;
        int k = fit_exponent(rows + i, j - i, &slope, &lo, &hi);
        if (k) {
            printf("  %-24s exponent %.2f (%g .. %g, %d points)\n", rows[i].series, slope, lo, hi, k);
            s = store_put_scaling(st, exp, rows[i].series, slope, lo, hi, k);
        } else {
            printf("  %-24s (too few points for a fit)\n", rows[i].series);
        }
        i = j;
    }
    return s;
}

typedef struct {
    const char *exp, *out, *data, *titles, *machine, *date;
    int by_tokens, nseries, several_batches;
    int have[3]; /* rows with a latency, a peak memory, MACs (a plot of nothing is skipped) */
} plot_job;

static ml_status draw_plots(const plot_job *j)
{
    static const char *const scripts[] = {"latency_vs_tokens", "memory_vs_tokens", "macs_vs_tokens",
                                          "throughput_vs_batch"};
    const char *dir = cli_data_dir("plots");
    if (!dir)
        return ML_ERR_IO;
    ml_status s = ML_OK;
    for (size_t k = 0; k < sizeof scripts / sizeof scripts[0] && s == ML_OK; k++) {
        char script[1100], vars[4096];
        if (k == 3 && !j->several_batches) {
            printf("(one batch size only: no throughput-vs-batch plot)\n");
            continue;
        }
        if (k < 3 && !j->have[k]) {
            printf("(no %s measured: no %s plot)\n", k == 0 ? "latency" : k == 1 ? "memory" : "MACs", scripts[k]);
            continue;
        }
        if (snprintf(script, sizeof script, "%s/%s.gp", dir, scripts[k]) >= (int)sizeof script)
            return ml_fail(ML_ERR_USAGE, "plot: the gnuplot scripts' path is too long: '%s'", dir);
        if (access(script, R_OK) != 0)
            return ml_fail(ML_ERR_IO, "plot: cannot read gnuplot script '%s'", script);
        for (int svg = 0; svg < 2 && s == ML_OK; svg++) {
            const int len = snprintf(vars, sizeof vars,
                     "datafile='%s'; titles='%s'; nseries=%d; xlabel='%s'; outfile='%s/%s_%s.%s'; "
                     "term='%s'; title_text='%s: %s, %s'",
                     j->data, j->titles, j->nseries, j->by_tokens ? "tokens L" : "resolution", j->out,
                     j->exp, scripts[k], svg ? "svg" : "png", svg ? "svg size 900,600" : "pngcairo size 900,600",
                     j->exp, j->machine, j->date);
            if (len < 0 || (size_t)len >= sizeof vars)
                return ml_fail(ML_ERR_USAGE, "plot: --out and the series names are too long for gnuplot's command line: '%s'",
                               j->out);
            s = run_gnuplot(script, vars);
        }
        if (s == ML_OK)
            printf("wrote %s/%s_%s.png and .svg\n", j->out, j->exp, scripts[k]);
    }
    return s;
}

/* ---- accuracy: against MACs and latency (one point per configuration, a colour per mixer), and
 * each training's curve ---- */

static ml_status write_accuracy_data(store *st, const char *out, const char *exp, char *titles, size_t tn,
                                     int *nseries, char *ctitles, size_t ctn, int *ncurves, int *have)
/* have[0]: any accuracy; have[1]: any with a latency; have[2]: any of a sequence model (by tokens) */
{
    store_accuracy_row *rows = NULL;
    int n = 0;
    ML_TRY(store_accuracy_rows(st, exp, &rows, &n));
    have[0] = n > 0, have[1] = have[2] = 0, *nseries = *ncurves = 0;
    for (int i = 0; i < n; i++)
        have[1] |= rows[i].latency_ms > 0, have[2] |= rows[i].by_tokens;
    titles[0] = ctitles[0] = '\0';
    char path[2][1100];
    snprintf(path[0], sizeof path[0], "%s/%s_accuracy.dat", out, exp);
    snprintf(path[1], sizeof path[1], "%s/%s_curves.dat", out, exp);
    FILE *fa = n ? fopen(path[0], "w") : NULL, *fc = n ? fopen(path[1], "w") : NULL;
    ml_status s = !n || (fa && fc) ? ML_OK : ml_fail(ML_ERR_IO, "cannot write '%s': %s", path[fa ? 1 : 0], strerror(errno));
    for (int i = 0; i < n && s == ML_OK; i++) {
        sanitise(rows[i].series, 1);
        if (i == 0 || strcmp(rows[i].series, rows[i - 1].series)) {
            fprintf(fa, "%s# %s\n", i ? "\n\n" : "", rows[i].series);
            if (!add_title(titles, tn, nseries, rows[i].series)) {
                s = ml_fail(ML_ERR_USAGE, "plot: too many series to name");
                break;
            }
        }
        fprintf(fa, "%g %g %g %g %ld %ld\n", rows[i].macs / 1e6, rows[i].latency_ms, rows[i].top1, rows[i].top5,
                rows[i].resolution, rows[i].seed);
        store_curve_point *pts = NULL;
        int np = 0;
        if ((s = store_curve(st, rows[i].result_id, &pts, &np)) != ML_OK || np == 0) {
            free(pts);
            continue;
        }
        char name[260];
        snprintf(name, sizeof name, "%s_r%ld_s%ld", rows[i].series, rows[i].resolution, rows[i].seed);
        fprintf(fc, "%s# %s\n", *ncurves ? "\n\n" : "", name);
        if (!add_title(ctitles, ctn, ncurves, name)) {
            free(pts);
            s = ml_fail(ML_ERR_USAGE, "plot: too many training curves to name");
            break;
        }
        for (int k = 0; k < np; k++)
            fprintf(fc, "%d %g %g %g %ld\n", pts[k].epoch, pts[k].test_top1, pts[k].train_loss, pts[k].seconds,
                    pts[k].step);
        free(pts);
    }
    if (fa && fclose(fa) != 0 && s == ML_OK)
        s = ml_fail(ML_ERR_IO, "cannot write '%s'", path[0]);
    if (fc && fclose(fc) != 0 && s == ML_OK)
        s = ml_fail(ML_ERR_IO, "cannot write '%s'", path[1]);
    free(rows);
    return s;
}

static ml_status draw_accuracy(const char *out, const char *exp, const char *titles, int nseries,
                               const char *ctitles, int ncurves, int have_latency, int have_tokens,
                               const store_plot_meta *meta)
{
    static const char *const scripts[] = {"accuracy_vs_macs", "accuracy_vs_latency", "learning_curves",
                                          "accuracy_vs_tokens"};
    const char *dir = cli_data_dir("plots");
    if (!dir)
        return ML_ERR_IO;
    for (int k = 0; k < 4; k++) {
        char script[1100], vars[8192];
        if (k == 3 && !have_tokens) /* accuracy against the sequence length: sequence models only */
            continue;
        if (snprintf(script, sizeof script, "%s/%s.gp", dir, scripts[k]) >= (int)sizeof script ||
            access(script, R_OK) != 0)
            return ml_fail(ML_ERR_IO, "plot: cannot read gnuplot script '%s/%s.gp'", dir, scripts[k]);
        if ((k == 2 && !ncurves) || (k == 1 && !have_latency)) {
            printf("(no %s: no %s plot)\n", k == 1 ? "latency measured" : "training curves", scripts[k]);
            continue;
        }
        for (int svg = 0; svg < 2; svg++) {
            const int len = snprintf(vars, sizeof vars,
                     "datafile='%s/%s_%s.dat'; titles='%s'; nseries=%d; by_step=%d; outfile='%s/%s_%s.%s'; "
                     "term='%s'; title_text='%s: %s, %s'",
                     out, exp, k == 2 ? "curves" : "accuracy", k == 2 ? ctitles : titles, k == 2 ? ncurves : nseries,
                     have_tokens, /* sequence models train on streams: their curves go by step */
                     out, exp, scripts[k], svg ? "svg" : "png", svg ? "svg size 900,600" : "pngcairo size 900,600",
                     exp, meta->machine, meta->date);
            if (len < 0 || (size_t)len >= sizeof vars)
                return ml_fail(ML_ERR_USAGE, "plot: too many series for gnuplot's command line");
            ML_TRY(run_gnuplot(script, vars));
        }
        printf("wrote %s/%s_%s.png and .svg\n", out, exp, scripts[k]);
    }
    return ML_OK;
}

static ml_status parse_plot(int argc, char **argv, const char **db, const char **out, const char **exp)
{
    const arg_spec specs[] = {OPT_STRING("--db", db), OPT_STRING("--out", out), OPT_END};
    int n = 0;
    ML_TRY(args_parse("plot", argc, argv, specs, exp, 1, &n));
    if (!n)
        return ml_fail(ML_ERR_USAGE, "plot: EXPERIMENT is required");
    /* the folder and names go into gnuplot's command line inside single quotes */
    if (strchr(*out, '\'') || strchr(*exp, '\''))
        return ml_fail(ML_ERR_USAGE, "plot: the output folder and experiment name may not contain a single quote");
    struct stat sb;
    if (stat(*out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ml_fail(ML_ERR_IO, "plot: output folder '%s' does not exist", *out);
    if (access(*db, R_OK) != 0)
        return ml_fail(ML_ERR_IO, "database '%s': %s", *db, strerror(errno));
    return ML_OK;
}

static int cmd_plot(int argc, char **argv)
{
    const char *db = "results/mixerlab.sqlite", *out = "plots", *exp = NULL;
    ML_TRY(parse_plot(argc, argv, &db, &out, &exp));
    store st;
    ML_TRY(store_open(&st, db));
    store_plot_row *rows = NULL;
    store_plot_meta meta;
    int n = 0;
    ml_status s = store_plot_rows(&st, exp, &rows, &n, &meta);
    if (s == ML_OK && n == 0)
        s = ml_fail(ML_ERR_USAGE, "plot: no ok results for experiment '%s' in '%s'", exp, db);
    char data[1100], titles[2048];
    int nseries = 0, several = 0;
    if (s == ML_OK) {
        sanitise(meta.machine, 0);
        if (snprintf(data, sizeof data, "%s/%s.dat", out, exp) >= (int)sizeof data)
            s = ml_fail(ML_ERR_USAGE, "plot: --out is too long (%zu characters, at most %zu with the file name): '%s'",
                        strlen(out), sizeof data - 1, out);
        else
            s = write_plot_data(data, rows, n, titles, sizeof titles, &nseries);
    }
    if (s == ML_OK)
        s = fit_and_store(&st, exp, rows, n, meta.by_tokens);
    int have[3] = {0, 0, 0};
    for (int i = 0; i < n; i++) {
        several |= rows[i].batch != rows[0].batch;
        have[0] |= rows[i].med > 0, have[1] |= rows[i].peak > 0, have[2] |= rows[i].macs > 0;
    }
    free(rows);
    char atitles[2048], ctitles[4096];
    int anseries = 0, ncurves = 0, have_acc[3] = {0, 0, 0};
    if (s == ML_OK)
        s = write_accuracy_data(&st, out, exp, atitles, sizeof atitles, &anseries, ctitles, sizeof ctitles, &ncurves,
                                have_acc);
    store_close(&st);
    if (s != ML_OK)
        return s;
    const plot_job j = {exp, out, data, titles, meta.machine, meta.date, meta.by_tokens, nseries, several,
                        {have[0], have[1], have[2]}};
    s = draw_plots(&j);
    if (s == ML_OK && have_acc[0])
        s = draw_accuracy(out, exp, atitles, anseries, ctitles, ncurves, have_acc[1], have_acc[2], &meta);
    return s;
}

const cli_command cli_export = {"export", "results of a database as CSV or JSON", export_usage, cmd_export};
const cli_command cli_merge = {"merge", "combine databases (Slurm shards) into one", merge_usage, cmd_merge};
const cli_command cli_plot = {"plot", "draw an experiment's results with gnuplot (PNG and SVG)", plot_usage, cmd_plot};
