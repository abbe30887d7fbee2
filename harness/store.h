/* The SQLite result store (schema: results/schema.sql). Prepared statements
 * only; one transaction per result, so a result is fully written or absent;
 * WAL journal and a busy timeout so several sweeps can share one file. */
#ifndef MIXERLAB_STORE_H
#define MIXERLAB_STORE_H

#include "base/common.h"

#include <sqlite3.h>

#define STORE_SCHEMA_VERSION 4

typedef struct {
    sqlite3 *db;
    char path[512];
    int64_t run_id;
} store;

/* One epoch of a training's curve (train_log); numbers < 0 are stored as NULL. */
typedef struct {
    int epoch;
    long step;
    double lr, train_loss, test_top1, test_top5, test_loss, seconds;
} store_epoch;

/* One results row. Text fields NULL and numbers < 0 are stored as NULL. */
typedef struct {
    const char *experiment, *config_hash, *level, *model, *mixer, *device, *precision, *status, *message,
        *macs_convention;
    long resolution, tokens, width, batch, threads;
    int64_t params, macs;
    double median, mean, stdev, min, p10, p90;
    int samples, capped;
    double throughput, gflops;
    int64_t peak_bytes, weight_bytes, activation_bytes, peak_rss_bytes;
    double top1, top5, train_seconds, train_images_per_s; /* percent; seconds; images/s */
    long train_seed;        /* [train]'s seed of the configuration */
    const store_epoch *log; /* the training's curve (nlog epochs), or NULL */
    int nlog;
    const char *eval_setup; /* [eval]: data, images, res, transform and weights the accuracy is of, or NULL */
} store_result;

/* Opens (creating and migrating as needed). Errors name the file: a missing
 * folder, a read-only place, a file that is not a mixerlab database, a
 * database from a newer mixerlab. */
ml_status store_open(store *s, const char *path);
void store_close(store *s);
/* Records this invocation's provenance; sets s->run_id. */
ml_status store_begin_run(store *s, int argc, char **argv, uint64_t seed);
ml_status store_end_run(store *s);
/* *done = 1 when (experiment, config_hash) already has a row with status ok. */
ml_status store_has_ok(store *s, const char *experiment, const char *config_hash, int *done);
/* Inserts the row and its samples in one transaction, dropping this run's claim on it. */
ml_status store_insert(store *s, const store_result *r, const double *samples, int nsamples);

/* --resume with other sweeps on the same database: in one transaction, a
 * configuration already ok is DONE, one claimed by another live sweep is
 * BUSY, anything else is claimed for this run (TAKEN), so that concurrent
 * workers split the configurations and each runs exactly once. */
typedef enum { STORE_CLAIM_TAKEN = 0, STORE_CLAIM_DONE = 1, STORE_CLAIM_BUSY = 2 } store_claim_result;
ml_status store_claim(store *s, const char *experiment, const char *config_hash, store_claim_result *out);
/* Drops every claim of this run (it stopped before measuring them). */
ml_status store_release_claims(store *s);

/* ---- reading back (export, merge, plot) ---- */

/* One value of a row: NULL, a number or text. */
typedef enum { STORE_NULL = 0, STORE_NUMBER = 1, STORE_TEXT = 2 } store_type;
typedef struct {
    store_type type;
    double number;
    const char *text; /* STORE_TEXT; also the number's text for STORE_NUMBER (as SQLite prints it) */
} store_value;

/* Every result row (joined with its run's commit, machine and date), of one
 * experiment or all (experiment NULL), in insertion order: columns() once
 * with the column names, then row() for each row. */
ml_status store_export(store *s, const char *experiment, void (*columns)(void *ctx, int n, const char *const *names),
                       void (*row)(void *ctx, int n, const char *const *names, const store_value *v), void *ctx);

/* Copies the runs (with their provenance), results and samples of the
 * database at src into s, in one transaction; a configuration s already has
 * with status ok is skipped. */
ml_status store_merge_from(store *s, const char *src, long *kept, long *duplicates);

/* The latest ok result of each configuration of an experiment, for plots:
 * series (mixer, or model at level model), x (tokens, or resolution), and the
 * measures; sorted by series, batch and x. */
typedef struct {
    char series[160]; /* a mixer, or a model spec with its overrides (at most 159 characters) */
    double x, med, p10, p90, peak, macs, thr;
    long batch;
} store_plot_row;
typedef struct {
    char machine[160], date[32];
    int by_tokens; /* the x axis is the token count (levels mixer and block, or a sequence model) */
} store_plot_meta;
/* *rows is malloc'd (*n of them). */
ml_status store_plot_rows(store *s, const char *experiment, store_plot_row **rows, int *n, store_plot_meta *meta);
/* The latest ok row with an accuracy of each configuration of an experiment (for the accuracy
 * plots), sorted by series (mixer, or model; "MIXER in MODEL" when the experiment has several
 * models), resolution (or tokens) and seed; MACs per image; latency -1 when not measured. */
typedef struct {
    char series[200];
    long resolution, seed; /* resolution: the sequence length for a sequence model (by_tokens) */
    double macs, latency_ms, top1, top5;
    int64_t result_id;
    int by_tokens;
} store_accuracy_row;
ml_status store_accuracy_rows(store *s, const char *experiment, store_accuracy_row **rows, int *n);
/* The training curve (train_log) of one result, epoch by epoch: *rows is malloc'd. */
typedef struct {
    int epoch;
    long step;
    double test_top1, train_loss, seconds;
} store_curve_point;
ml_status store_curve(store *s, int64_t result_id, store_curve_point **rows, int *n);

/* Records a fitted scaling exponent (replacing an earlier fit of the same series). */
ml_status store_put_scaling(store *s, const char *experiment, const char *series, double exponent, double lo,
                            double hi, int points);

/* The latest ok row of model (exactly that spec) with a measured top-1: *found 0 when none;
 * top1 in percent, the row's resolution and experiment. */
ml_status store_latest_top1(store *s, const char *model, int *found, double *top1, long *resolution, char *experiment,
                            size_t n);

/* Machine facts recorded with each run. */
void store_cpu_model(char *buf, size_t n);
void store_now_iso(char *buf, size_t n);

#endif
