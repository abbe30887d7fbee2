/* mixerlab export / merge / plot: what a sweep wrote, out of the database. */
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
    "Draws the experiment's results with the gnuplot scripts in plots/, as PNG and SVG\n"
    "in DIR (default plots/): latency vs tokens (log-log, one line per mixer, a p10-p90\n"
    "band), peak memory vs tokens, MACs vs tokens, throughput vs batch. For model-level\n"
    "experiments the x axis is the resolution. Also fits, prints and stores (table\n"
    "scaling) each mixer's scaling exponent: the slope of log latency on log tokens over\n"
    "the largest decade measured.\n";

static const char *const export_cols =
    "r.id, r.run_id, r.experiment, r.config_hash, r.level, r.model, r.mixer, r.resolution, r.tokens, r.width, "
    "r.batch, r.device, r.threads, r.precision, r.status, r.message, r.params, r.macs, r.macs_convention, "
    "r.latency_ms_median, r.latency_ms_mean, r.latency_ms_stdev, r.latency_ms_min, r.latency_ms_p10, "
    "r.latency_ms_p90, r.samples, r.capped, r.throughput, r.gflops, r.peak_bytes, r.weight_bytes, "
    "r.activation_bytes, r.peak_rss_bytes, r.accuracy, r.created_at, u.git_sha, u.git_dirty, u.cpu_model, "
    "u.hostname, u.started_at";

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

int cmd_export(int argc, char **argv)
{
    const char *db = "results/mixerlab.sqlite", *exp = NULL;
    int fmt = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(export_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--db")) {
            ML_TRY(args_value(argc, argv, &i, &db));
        } else if (!strcmp(argv[i], "--experiment")) {
            ML_TRY(args_value(argc, argv, &i, &exp));
        } else if (!strcmp(argv[i], "--csv")) {
            fmt = 1;
        } else if (!strcmp(argv[i], "--json")) {
            fmt = 2;
        } else {
            return ml_fail(ML_ERR_USAGE, "export: unknown option '%s' (see mixerlab export --help)", argv[i]);
        }
    }
    if (!fmt)
        return ml_fail(ML_ERR_USAGE, "export: give --csv or --json");
    if (access(db, R_OK) != 0)
        return ml_fail(ML_ERR_IO, "database '%s': %s", db, strerror(errno));
    store st;
    ML_TRY(store_open(&st, db));
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT %s FROM results r JOIN runs u ON u.id = r.run_id %s ORDER BY r.id", export_cols,
             exp ? "WHERE r.experiment = ?" : "");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st.db, sql, -1, &q, NULL) != SQLITE_OK) {
        ml_status e = ml_fail(ML_ERR_IO, "database '%s': %s", db, sqlite3_errmsg(st.db));
        store_close(&st);
        return e;
    }
    if (exp)
        sqlite3_bind_text(q, 1, exp, -1, SQLITE_STATIC);
    const int nc = sqlite3_column_count(q);
    cJSON *arr = fmt == 2 ? cJSON_CreateArray() : NULL;
    if (fmt == 1)
        for (int c = 0; c < nc; c++)
            printf("%s%s", c ? "," : "", sqlite3_column_name(q, c));
    if (fmt == 1)
        putchar('\n');
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        cJSON *o = arr ? cJSON_CreateObject() : NULL;
        for (int c = 0; c < nc; c++) {
            int t = sqlite3_column_type(q, c);
            const char *name = sqlite3_column_name(q, c);
            if (fmt == 1) {
                if (c)
                    putchar(',');
                if (t != SQLITE_NULL)
                    csv_field((const char *)sqlite3_column_text(q, c));
            } else if (t == SQLITE_NULL) {
                cJSON_AddNullToObject(o, name);
            } else if (t == SQLITE_INTEGER || t == SQLITE_FLOAT) {
                cJSON_AddNumberToObject(o, name, sqlite3_column_double(q, c));
            } else {
                cJSON_AddStringToObject(o, name, (const char *)sqlite3_column_text(q, c));
            }
        }
        if (fmt == 1)
            putchar('\n');
        else
            cJSON_AddItemToArray(arr, o);
    }
    sqlite3_finalize(q);
    ml_status s = rc == SQLITE_DONE ? ML_OK : ml_fail(ML_ERR_IO, "database '%s': %s", db, sqlite3_errmsg(st.db));
    cli_print_json(arr);
    store_close(&st);
    return s;
}

static ml_status exec(store *st, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        ml_status e = ml_fail(ML_ERR_IO, "database '%s': %s", st->path, err ? err : "error");
        sqlite3_free(err);
        return e;
    }
    return ML_OK;
}

int cmd_merge(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) {
            fputs(merge_usage, stdout);
            return 0;
        }
    if (argc < 3)
        return ml_fail(ML_ERR_USAGE, "merge: give OUT.sqlite and at least one IN.sqlite");
    /* every input must be a readable mixerlab database before anything is written */
    for (int i = 2; i < argc; i++) {
        store in;
        if (access(argv[i], R_OK) != 0)
            return ml_fail(ML_ERR_IO, "database '%s': %s", argv[i], strerror(errno));
        ML_TRY(store_open(&in, argv[i]));
        store_close(&in);
    }
    store st;
    ML_TRY(store_open(&st, argv[1]));
    ml_status s = ML_OK;
    long kept = 0, dup = 0;
    for (int i = 2; i < argc && s == ML_OK; i++) {
        char *att = sqlite3_mprintf("ATTACH DATABASE %Q AS src", argv[i]);
        s = exec(&st, att);
        sqlite3_free(att);
        if (s != ML_OK)
            break;
        /* one transaction per input: its runs, results and samples all land or none does */
        s = exec(&st, "BEGIN IMMEDIATE");
        sqlite3_stmt *q = NULL, *ins_run = NULL, *r = NULL, *ins_res = NULL, *ins_smp = NULL;
        if (s == ML_OK &&
            (sqlite3_prepare_v2(st.db, "SELECT id FROM src.runs ORDER BY id", -1, &q, NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(st.db,
                                "INSERT INTO main.runs (git_sha, git_dirty, compiler, flags, blas, cpu_model, cores, "
                                "gpu_name, gpu_driver, cuda_version, hostname, argv, seed, started_at, finished_at) "
                                "SELECT git_sha, git_dirty, compiler, flags, blas, cpu_model, cores, gpu_name, gpu_driver, "
                                "cuda_version, hostname, argv, seed, started_at, finished_at FROM src.runs WHERE id = ?",
                                -1, &ins_run, NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(st.db, "SELECT id, experiment, config_hash, run_id FROM src.results ORDER BY id", -1, &r,
                                NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(
                 st.db,
                 "INSERT INTO main.results (run_id, experiment, config_hash, level, model, mixer, resolution, tokens, "
                 "width, batch, device, threads, precision, status, message, params, macs, macs_convention, "
                 "latency_ms_median, latency_ms_mean, latency_ms_stdev, latency_ms_min, latency_ms_p10, latency_ms_p90, "
                 "samples, capped, throughput, gflops, peak_bytes, weight_bytes, activation_bytes, peak_rss_bytes, "
                 "accuracy, created_at) SELECT ?, experiment, config_hash, level, model, mixer, resolution, tokens, "
                 "width, batch, device, threads, precision, status, message, params, macs, macs_convention, "
                 "latency_ms_median, latency_ms_mean, latency_ms_stdev, latency_ms_min, latency_ms_p10, latency_ms_p90, "
                 "samples, capped, throughput, gflops, peak_bytes, weight_bytes, activation_bytes, peak_rss_bytes, "
                 "accuracy, created_at FROM src.results WHERE id = ?",
                 -1, &ins_res, NULL) != SQLITE_OK ||
             sqlite3_prepare_v2(st.db,
                                "INSERT INTO main.samples (result_id, idx, ms) SELECT ?, idx, ms FROM src.samples "
                                "WHERE result_id = ?",
                                -1, &ins_smp, NULL) != SQLITE_OK))
            s = ml_fail(ML_ERR_IO, "database '%s': %s", argv[i], sqlite3_errmsg(st.db));
        /* runs keep their provenance under new ids: old id -> new id */
        sqlite3_int64 *map_old = NULL, *map_new = NULL;
        int nmap = 0, capmap = 0;
        while (s == ML_OK && sqlite3_step(q) == SQLITE_ROW) {
            if (nmap == capmap) {
                capmap = capmap ? 2 * capmap : 16;
                sqlite3_int64 *a = realloc(map_old, (size_t)capmap * sizeof *a), *b = a ? realloc(map_new, (size_t)capmap * sizeof *b) : NULL;
                if (!a || !b) {
                    free(a ? a : map_old);
                    map_old = NULL;
                    s = ml_fail(ML_ERR_NOMEM, "out of memory merging");
                    break;
                }
                map_old = a, map_new = b;
            }
            map_old[nmap] = sqlite3_column_int64(q, 0);
            sqlite3_reset(ins_run);
            sqlite3_bind_int64(ins_run, 1, map_old[nmap]);
            if (sqlite3_step(ins_run) != SQLITE_DONE)
                s = ml_fail(ML_ERR_IO, "database '%s': %s", argv[1], sqlite3_errmsg(st.db));
            map_new[nmap++] = sqlite3_last_insert_rowid(st.db);
        }
        while (s == ML_OK && sqlite3_step(r) == SQLITE_ROW) {
            sqlite3_int64 old = sqlite3_column_int64(r, 0), old_run = sqlite3_column_int64(r, 3), new_run = -1;
            int have = 0;
            s = store_has_ok(&st, (const char *)sqlite3_column_text(r, 1), (const char *)sqlite3_column_text(r, 2), &have);
            if (s != ML_OK)
                break;
            if (have) {
                dup++;
                continue;
            }
            for (int k = 0; k < nmap; k++)
                if (map_old[k] == old_run)
                    new_run = map_new[k];
            sqlite3_reset(ins_res);
            sqlite3_bind_int64(ins_res, 1, new_run);
            sqlite3_bind_int64(ins_res, 2, old);
            if (new_run < 0 || sqlite3_step(ins_res) != SQLITE_DONE) {
                s = ml_fail(ML_ERR_FORMAT, "database '%s': result %lld cannot be copied (%s)", argv[i], (long long)old,
                            new_run < 0 ? "its run is missing" : sqlite3_errmsg(st.db));
                break;
            }
            sqlite3_int64 nid = sqlite3_last_insert_rowid(st.db);
            sqlite3_reset(ins_smp);
            sqlite3_bind_int64(ins_smp, 1, nid);
            sqlite3_bind_int64(ins_smp, 2, old);
            if (sqlite3_step(ins_smp) != SQLITE_DONE)
                s = ml_fail(ML_ERR_IO, "database '%s': %s", argv[1], sqlite3_errmsg(st.db));
            kept++;
        }
        free(map_old), free(map_new);
        sqlite3_finalize(q), sqlite3_finalize(ins_run), sqlite3_finalize(r), sqlite3_finalize(ins_res),
            sqlite3_finalize(ins_smp);
        if (s == ML_OK)
            s = exec(&st, "COMMIT");
        else
            sqlite3_exec(st.db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_exec(st.db, "DETACH DATABASE src", NULL, NULL, NULL);
    }
    if (s == ML_OK)
        printf("merged %d database(s) into %s: %ld results copied, %ld already present (kept once)\n", argc - 2, argv[1],
               kept, dup);
    store_close(&st);
    return s;
}

/* ---- plot ---- */

typedef struct {
    char series[64];
    double x, med, p10, p90, peak, macs, thr;
    long batch;
} plot_row;

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
static int fit_exponent(const plot_row *r, int n, double *slope, double *lo, double *hi)
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

int cmd_plot(int argc, char **argv)
{
    const char *db = "results/mixerlab.sqlite", *out = "plots", *exp = NULL;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(plot_usage, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--db")) {
            ML_TRY(args_value(argc, argv, &i, &db));
        } else if (!strcmp(argv[i], "--out")) {
            ML_TRY(args_value(argc, argv, &i, &out));
        } else if (argv[i][0] == '-') {
            return ml_fail(ML_ERR_USAGE, "plot: unknown option '%s' (see mixerlab plot --help)", argv[i]);
        } else if (!exp) {
            exp = argv[i];
        } else {
            return ml_fail(ML_ERR_USAGE, "plot: unexpected argument '%s'", argv[i]);
        }
    }
    if (!exp)
        return ml_fail(ML_ERR_USAGE, "plot: EXPERIMENT is required");
    /* the folder and names go into gnuplot's command line inside single quotes */
    if (strchr(out, '\'') || strchr(exp, '\''))
        return ml_fail(ML_ERR_USAGE, "plot: the output folder and experiment name may not contain a single quote");
    struct stat sb;
    if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ml_fail(ML_ERR_IO, "plot: output folder '%s' does not exist", out);
    if (access(db, R_OK) != 0)
        return ml_fail(ML_ERR_IO, "database '%s': %s", db, strerror(errno));
    store st;
    ML_TRY(store_open(&st, db));
    sqlite3_stmt *q = NULL;
    const char *sql =
        "SELECT coalesce(r.mixer, r.model), coalesce(r.tokens, r.resolution), r.latency_ms_median, r.latency_ms_p10, "
        "r.latency_ms_p90, r.peak_bytes, r.macs, r.throughput, r.batch, r.level, u.cpu_model, u.started_at "
        "FROM results r JOIN runs u ON u.id = r.run_id WHERE r.experiment = ? AND r.status = 'ok' "
        "AND r.id IN (SELECT max(id) FROM results WHERE experiment = ? AND status = 'ok' GROUP BY config_hash) "
        "ORDER BY 1, r.batch, 2";
    if (sqlite3_prepare_v2(st.db, sql, -1, &q, NULL) != SQLITE_OK) {
        ml_status e = ml_fail(ML_ERR_IO, "database '%s': %s", db, sqlite3_errmsg(st.db));
        store_close(&st);
        return e;
    }
    sqlite3_bind_text(q, 1, exp, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, exp, -1, SQLITE_STATIC);
    plot_row *rows = NULL;
    int n = 0, cap = 0;
    char level[16] = "", machine[160] = "", date[32] = "";
    while (sqlite3_step(q) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            plot_row *p = realloc(rows, (size_t)cap * sizeof *p);
            if (!p)
                break;
            rows = p;
        }
        plot_row *r = &rows[n++];
        snprintf(r->series, sizeof r->series, "%s", (const char *)sqlite3_column_text(q, 0));
        for (char *c = r->series; *c; c++)
            if (*c == '\'' || *c == '\\' || *c == ' ')
                *c = '_'; /* quoted on gnuplot's command line, split on spaces by word() */
        r->x = sqlite3_column_double(q, 1);
        r->med = sqlite3_column_type(q, 2) == SQLITE_NULL ? -1 : sqlite3_column_double(q, 2);
        r->p10 = sqlite3_column_double(q, 3), r->p90 = sqlite3_column_double(q, 4);
        r->peak = sqlite3_column_double(q, 5), r->macs = sqlite3_column_double(q, 6);
        r->thr = sqlite3_column_double(q, 7), r->batch = (long)sqlite3_column_int64(q, 8);
        snprintf(level, sizeof level, "%s", (const char *)sqlite3_column_text(q, 9));
        snprintf(machine, sizeof machine, "%s", (const char *)sqlite3_column_text(q, 10));
        for (char *c = machine; *c; c++)
            if (*c == '\'' || *c == '\\')
                *c = ' '; /* it is quoted on gnuplot's command line */
        snprintf(date, sizeof date, "%.10s", (const char *)sqlite3_column_text(q, 11));
    }
    sqlite3_finalize(q);
    if (n == 0) {
        free(rows);
        store_close(&st);
        return ml_fail(ML_ERR_USAGE, "plot: no ok results for experiment '%s' in '%s'", exp, db);
    }
    /* one data file, one gnuplot index block per series (rows are sorted by series) */
    char data[600], titles[2048] = "";
    snprintf(data, sizeof data, "%s/%s.dat", out, exp);
    FILE *fp = fopen(data, "w");
    if (!fp) {
        free(rows);
        store_close(&st);
        return ml_fail(ML_ERR_IO, "cannot write '%s': %s", data, strerror(errno));
    }
    int nseries = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(rows[i].series, rows[i - 1].series)) {
            if (i)
                fprintf(fp, "\n\n");
            fprintf(fp, "# %s\n", rows[i].series);
            strncat(titles, nseries ? " " : "", sizeof titles - strlen(titles) - 1);
            strncat(titles, rows[i].series, sizeof titles - strlen(titles) - 1);
            nseries++;
        }
        fprintf(fp, "%g %g %g %g %g %g %g %ld\n", rows[i].x, rows[i].med, rows[i].p10, rows[i].p90, rows[i].peak / 1048576.0,
                rows[i].macs, rows[i].thr, rows[i].batch);
    }
    if (fclose(fp) != 0) {
        free(rows);
        store_close(&st);
        return ml_fail(ML_ERR_IO, "cannot write '%s'", data);
    }
    /* scaling exponents, printed and stored */
    char now[32];
    store_now_iso(now, sizeof now);
    ml_status s = ML_OK;
    printf("%s: scaling of median latency with %s (slope of log-log over the largest decade measured)\n", exp,
           strcmp(level, "model") ? "tokens" : "resolution");
    for (int i = 0; i < n && s == ML_OK;) {
        int j = i;
        while (j < n && !strcmp(rows[j].series, rows[i].series) && rows[j].batch == rows[i].batch)
            j++;
        double slope, lo, hi;
        int k = fit_exponent(rows + i, j - i, &slope, &lo, &hi);
        if (k) {
            printf("  %-24s exponent %.2f (%g .. %g, %d points)\n", rows[i].series, slope, lo, hi, k);
            sqlite3_stmt *ins = NULL;
            if (sqlite3_prepare_v2(st.db,
                                   "INSERT OR REPLACE INTO scaling (experiment, mixer, exponent, tokens_lo, tokens_hi, "
                                   "points, created_at) VALUES (?,?,?,?,?,?,?)",
                                   -1, &ins, NULL) == SQLITE_OK) {
                sqlite3_bind_text(ins, 1, exp, -1, SQLITE_STATIC);
                sqlite3_bind_text(ins, 2, rows[i].series, -1, SQLITE_TRANSIENT);
                sqlite3_bind_double(ins, 3, slope);
                sqlite3_bind_int64(ins, 4, (sqlite3_int64)lo);
                sqlite3_bind_int64(ins, 5, (sqlite3_int64)hi);
                sqlite3_bind_int(ins, 6, k);
                sqlite3_bind_text(ins, 7, now, -1, SQLITE_STATIC);
                if (sqlite3_step(ins) != SQLITE_DONE)
                    s = ml_fail(ML_ERR_IO, "database '%s': %s", db, sqlite3_errmsg(st.db));
            }
            sqlite3_finalize(ins);
        } else {
            printf("  %-24s (too few points for a fit)\n", rows[i].series);
        }
        i = j;
    }
    int several_batches = 0;
    for (int i = 1; i < n; i++)
        several_batches |= rows[i].batch != rows[0].batch;
    free(rows);
    store_close(&st);
    static const char *const scripts[] = {"latency_vs_tokens", "memory_vs_tokens", "macs_vs_tokens", "throughput_vs_batch"};
    for (size_t k = 0; k < sizeof scripts / sizeof scripts[0] && s == ML_OK; k++) {
        char script[600], vars[4096];
        if (k == 3 && !several_batches) {
            printf("(one batch size only: no throughput-vs-batch plot)\n");
            continue;
        }
        snprintf(script, sizeof script, "plots/%s.gp", scripts[k]);
        if (access(script, R_OK) != 0)
            return ml_fail(ML_ERR_IO, "plot: cannot read gnuplot script '%s' (run from the repository root)", script);
        for (int svg = 0; svg < 2 && s == ML_OK; svg++) {
            snprintf(vars, sizeof vars,
                     "datafile='%s'; titles='%s'; nseries=%d; xlabel='%s'; outfile='%s/%s_%s.%s'; "
                     "term='%s'; title_text='%s: %s, %s'",
                     data, titles, nseries, strcmp(level, "model") ? "tokens L" : "resolution", out, exp, scripts[k],
                     svg ? "svg" : "png", svg ? "svg size 900,600" : "pngcairo size 900,600", exp, machine, date);
            s = run_gnuplot(script, vars);
        }
        if (s == ML_OK)
            printf("wrote %s/%s_%s.png and .svg\n", out, exp, scripts[k]);
    }
    return s;
}
