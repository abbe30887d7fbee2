/* The SQLite result store (schema: results/schema.sql). Prepared statements
 * only; one transaction per result, so a result is fully written or absent;
 * WAL journal and a busy timeout so several sweeps can share one file. */
#ifndef MIXERLAB_STORE_H
#define MIXERLAB_STORE_H

#include "base/common.h"

#include <sqlite3.h>

#define STORE_SCHEMA_VERSION 1

typedef struct {
    sqlite3 *db;
    char path[512];
    int64_t run_id;
} store;

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
ml_status store_insert(store *s, const store_result *r, const double *samples, int nsamples);

/* Machine facts recorded with each run. */
void store_cpu_model(char *buf, size_t n);
void store_now_iso(char *buf, size_t n);

#endif
