#include "harness/store.h"

#include "harness/cli.h"
#include "harness/cuda_measure.h"

#include <build_info.h>
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store_schema.h" /* static const char store_schema_v1[]: results/schema.sql, generated */

/* Version 2: which sweep (run, host, process) is measuring which configuration
 * right now, so that concurrent --resume sweeps split the work. */
static const char store_migration_v2[] =
    "CREATE TABLE claims (experiment TEXT NOT NULL, config_hash TEXT NOT NULL, "
    "run_id INTEGER NOT NULL REFERENCES runs(id), hostname TEXT NOT NULL, pid INTEGER NOT NULL, "
    "claimed_at TEXT NOT NULL, PRIMARY KEY (experiment, config_hash));";

/* Version 3: accuracy from training or from evaluating given weights, and each training's curve.
 * (v1's `accuracy` column stays, unused.) */
static const char store_migration_v3[] =
    "ALTER TABLE results ADD COLUMN accuracy_top1 REAL;"
    "ALTER TABLE results ADD COLUMN accuracy_top5 REAL;"
    "ALTER TABLE results ADD COLUMN train_seconds REAL;"
    "ALTER TABLE results ADD COLUMN train_images_per_s REAL;"
    "ALTER TABLE results ADD COLUMN train_seed INTEGER;"
    "CREATE TABLE train_log (result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE, "
    "epoch INTEGER NOT NULL, step INTEGER NOT NULL, lr REAL, train_loss REAL, test_top1 REAL, test_top5 REAL, "
    "test_loss REAL, seconds REAL, PRIMARY KEY (result_id, epoch));";

/* Version 4: what an [eval] row's accuracy was measured on (data, images, resolution, transform, weights). */
static const char store_migration_v4[] = "ALTER TABLE results ADD COLUMN eval_setup TEXT;";

/* Migration k brings a database from version k to k + 1. */
static const char *const migrations[STORE_SCHEMA_VERSION] = {store_schema_v1, store_migration_v2,
                                                             store_migration_v3, store_migration_v4};

static ml_status db_fail(store *s, const char *what)
{
    return ml_fail(ML_ERR_IO, "database '%s': %s: %s", s->path, what, s->db ? sqlite3_errmsg(s->db) : "cannot open");
}

void store_now_iso(char *buf, size_t n)
{
    time_t t = time(NULL);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

void store_cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        char *c = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && c) {
            c += 2;
            c[strcspn(c, "\n")] = '\0';
            snprintf(buf, n, "%s", c);
            break;
        }
    }
    fclose(fp);
}

/* Switching the journal needs a moment with no other connection busy, and the
 * busy handler does not cover it: another sweep opening the same file at the
 * same time gets "locked". Retry for up to 30 s; done once it reports wal. */
static ml_status set_wal(store *s)
{
    for (int tries = 0; tries < 600; tries++) {
        sqlite3_stmt *q = NULL;
        int wal = 0, rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &q, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
            const unsigned char *mode = sqlite3_column_text(q, 0);
            wal = mode && strcmp((const char *)mode, "wal") == 0;
        }
        sqlite3_finalize(q);
        if (wal)
            return sqlite3_exec(s->db, "PRAGMA foreign_keys=ON", NULL, NULL, NULL) == SQLITE_OK ? ML_OK : ML_ERR_IO;
        /* only another connection's lock is worth waiting for; anything else fails now */
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            return ML_ERR_IO;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return ML_ERR_IO;
}

/* PRAGMA quick_check: a page-damaged database is refused before anything is written to it. */
static ml_status check_pages(store *s)
{
    sqlite3_stmt *q = NULL;
    char first[300] = "";
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &q, NULL), ok = 0;
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, 0);
        snprintf(first, sizeof first, "%s", t ? (const char *)t : "");
        ok = strcmp(first, "ok") == 0;
    }
    if (!first[0])
        snprintf(first, sizeof first, "%s", sqlite3_errmsg(s->db));
    sqlite3_finalize(q);
    if (ok)
        return ML_OK;
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        return db_fail(s, "cannot check its pages (busy)");
    return ml_fail(ML_ERR_FORMAT, "database '%s' is damaged (PRAGMA quick_check: %s); nothing was written to it",
                   s->path, first);
}

ml_status store_open(store *s, const char *path)
{
    memset(s, 0, sizeof *s);
    if (!path[0])
        return ml_fail(ML_ERR_USAGE, "--db: empty database path");
    if (strlen(path) >= sizeof s->path)
        return ml_fail(ML_ERR_USAGE, "database path '%s' is too long (%zu characters, at most %zu)", path, strlen(path),
                       sizeof s->path - 1);
    snprintf(s->path, sizeof s->path, "%s", path);
    char dir[sizeof s->path];
    snprintf(dir, sizeof dir, "%s", path);
    const char *d = dirname(dir);
    struct stat st;
    if (stat(d, &st) != 0 || !S_ISDIR(st.st_mode))
        return ml_fail(ML_ERR_IO, "database '%s': folder '%s' does not exist", path, d);
    if (access(d, W_OK) != 0)
        return ml_fail(ML_ERR_IO, "database '%s': folder '%s' is not writable", path, d);
    if (stat(path, &st) == 0 && access(path, W_OK) != 0)
        return ml_fail(ML_ERR_IO, "database '%s' is not writable", path);
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        ml_status r = db_fail(s, "cannot open or create it (is its folder writable?)");
        store_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, 30000);
    int version = -1;
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL) == SQLITE_OK && sqlite3_step(q) == SQLITE_ROW)
        version = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (version < 0) {
        ml_status r = ml_fail(ML_ERR_FORMAT, "database '%s' is not a mixerlab database (%s)", path, sqlite3_errmsg(s->db));
        store_close(s);
        return r;
    }
    ml_status pages = check_pages(s);
    if (pages != ML_OK) {
        store_close(s);
        return pages;
    }
    if (version > STORE_SCHEMA_VERSION) {
        store_close(s);
        return ml_fail(ML_ERR_FORMAT, "database '%s' has schema version %d; this mixerlab knows up to %d (a newer mixerlab wrote it)",
                       path, version, STORE_SCHEMA_VERSION);
    }
    if (set_wal(s) != ML_OK) {
        ml_status r = db_fail(s, "cannot set WAL mode");
        store_close(s);
        return r;
    }
    if (version == STORE_SCHEMA_VERSION)
        return ML_OK;
    /* Migrate under the write lock, re-reading the version there: another
     * process may be creating or migrating the same file right now. */
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        ml_status r = db_fail(s, "cannot start migration");
        store_close(s);
        return r;
    }
    sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &q, NULL);
    version = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    const char *why = NULL;
    if (version == 0) {
        /* a non-empty database at version 0 is someone else's */
        sqlite3_prepare_v2(s->db, "SELECT count(*) FROM sqlite_master", -1, &q, NULL);
        int n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
        sqlite3_finalize(q);
        if (n != 0)
            why = "has tables but no mixerlab schema version";
    } else if (version < 0 || version > STORE_SCHEMA_VERSION) {
        why = "changed schema version while opening";
    }
    for (int v = version; !why && v < STORE_SCHEMA_VERSION; v++) {
        char set[64];
        snprintf(set, sizeof set, "PRAGMA user_version = %d;", v + 1);
        if (sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(s->db, set, NULL, NULL, NULL) != SQLITE_OK)
            why = "migration failed";
    }
    if (why || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ml_status r = why && strcmp(why, "migration failed")
                          ? ml_fail(ML_ERR_FORMAT, "database '%s' %s", path, why)
                          : db_fail(s, why ? why : "cannot commit the migration");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        store_close(s);
        return r;
    }
    return ML_OK;
}

void store_close(store *s)
{
    if (s->db)
        sqlite3_close(s->db);
    s->db = NULL;
}

ml_status store_begin_run(store *s, int argc, char **argv, uint64_t seed)
{
    char cpu[160], host[256] = "", now[32];
    store_cpu_model(cpu, sizeof cpu);
    gethostname(host, sizeof host - 1);
    store_now_iso(now, sizeof now);
    size_t alen = 1;
    for (int i = 0; i < argc; i++)
        alen += strlen(argv[i]) + 1;
    char *args = ml_calloc(alen, 1, "argv");
    if (!args)
        return ML_ERR_NOMEM;
    for (int i = 0; i < argc; i++) {
        if (i)
            strcat(args, " ");
        strcat(args, argv[i]);
    }
    sqlite3_stmt *q = NULL;
    const char *sql = "INSERT INTO runs (git_sha, git_dirty, compiler, flags, blas, cpu_model, cores, hostname, argv, "
                      "seed, started_at, gpu_name, cuda_version, gpu_driver) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    char gpu[256] = "";
    if (cuda_compiled() && cuda_device_check(gpu, sizeof gpu) != ML_OK)
        gpu[0] = '\0';
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) {
        free(args);
        return db_fail(s, "cannot record the run");
    }
    sqlite3_bind_text(q, 1, MIXERLAB_GIT_SHA, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 2, MIXERLAB_GIT_DIRTY);
    sqlite3_bind_text(q, 3, MIXERLAB_COMPILER, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, MIXERLAB_CFLAGS, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, cli_blas_info(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, cpu, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 7, cli_default_threads());
    sqlite3_bind_text(q, 8, host, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 9, args, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 10, (sqlite3_int64)seed);
    sqlite3_bind_text(q, 11, now, -1, SQLITE_TRANSIENT);
    if (gpu[0]) {
        /* name, SMs, memory, L2, SM clock now and max, memory clock, driver */
        sqlite3_bind_text(q, 12, gpu, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 13, cuda_build_info(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 14, cuda_driver_version(), -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(q, 12);
        sqlite3_bind_null(q, 13);
        sqlite3_bind_null(q, 14);
    }
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    free(args);
    if (rc != SQLITE_DONE)
        return db_fail(s, "cannot record the run");
    s->run_id = sqlite3_last_insert_rowid(s->db);
    return ML_OK;
}

/* A claim by another run is live while that run has not finished and, on this
 * host, its process is still there (a sweep killed with -9 leaves its claim). */
static int claim_live(store *s, sqlite3_int64 run_id, const char *host, long pid)
{
    if (run_id == s->run_id)
        return 0;
    sqlite3_stmt *q = NULL;
    int finished = 1;
    if (sqlite3_prepare_v2(s->db, "SELECT finished_at IS NOT NULL FROM runs WHERE id = ?", -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(q, 1, run_id);
        if (sqlite3_step(q) == SQLITE_ROW)
            finished = sqlite3_column_int(q, 0);
    }
    sqlite3_finalize(q);
    if (finished)
        return 0;
    char me[256] = "";
    gethostname(me, sizeof me - 1);
    if (strcmp(me, host) != 0)
        return 1;
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

ml_status store_claim(store *s, const char *experiment, const char *config_hash, store_claim_result *out)
{
    *out = STORE_CLAIM_TAKEN;
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, "cannot start a transaction");
    int done = 0;
    ml_status st = store_has_ok(s, experiment, config_hash, &done);
    sqlite3_stmt *q = NULL;
    if (st == ML_OK && done)
        *out = STORE_CLAIM_DONE;
    if (st == ML_OK && !done) {
        if (sqlite3_prepare_v2(s->db, "SELECT run_id, hostname, pid FROM claims WHERE experiment = ? AND config_hash = ?",
                               -1, &q, NULL) != SQLITE_OK)
            st = db_fail(s, "cannot read the claims");
        else {
            sqlite3_bind_text(q, 1, experiment, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, config_hash, -1, SQLITE_STATIC);
            if (sqlite3_step(q) == SQLITE_ROW) {
                const unsigned char *h = sqlite3_column_text(q, 1);
                if (claim_live(s, sqlite3_column_int64(q, 0), h ? (const char *)h : "", (long)sqlite3_column_int64(q, 2)))
                    *out = STORE_CLAIM_BUSY;
            }
            sqlite3_finalize(q);
            q = NULL;
        }
    }
    if (st == ML_OK && *out == STORE_CLAIM_TAKEN) {
        char host[256] = "", now[32];
        gethostname(host, sizeof host - 1);
        store_now_iso(now, sizeof now);
        if (sqlite3_prepare_v2(s->db,
                               "INSERT OR REPLACE INTO claims (experiment, config_hash, run_id, hostname, pid, claimed_at) "
                               "VALUES (?,?,?,?,?,?)",
                               -1, &q, NULL) != SQLITE_OK)
            st = db_fail(s, "cannot claim a configuration");
        else {
            sqlite3_bind_text(q, 1, experiment, -1, SQLITE_STATIC);
            sqlite3_bind_text(q, 2, config_hash, -1, SQLITE_STATIC);
            sqlite3_bind_int64(q, 3, s->run_id);
            sqlite3_bind_text(q, 4, host, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(q, 5, (sqlite3_int64)getpid());
            sqlite3_bind_text(q, 6, now, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(q) != SQLITE_DONE)
                st = db_fail(s, "cannot claim a configuration");
            sqlite3_finalize(q);
        }
    }
    if (st == ML_OK && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        st = db_fail(s, "cannot commit a claim");
    if (st != ML_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

ml_status store_release_claims(store *s)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM claims WHERE run_id = ?", -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "cannot release the claims");
    sqlite3_bind_int64(q, 1, s->run_id);
    const int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? ML_OK : db_fail(s, "cannot release the claims");
}

ml_status store_end_run(store *s)
{
    char now[32];
    store_now_iso(now, sizeof now);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "UPDATE runs SET finished_at = ? WHERE id = ?", -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "cannot close the run");
    sqlite3_bind_text(q, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, s->run_id);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? ML_OK : db_fail(s, "cannot close the run");
}

ml_status store_has_ok(store *s, const char *experiment, const char *config_hash, int *done)
{
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT 1 FROM results WHERE experiment = ? AND config_hash = ? AND status = 'ok' LIMIT 1",
                           -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "cannot query results");
    sqlite3_bind_text(q, 1, experiment, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, config_hash, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return db_fail(s, "cannot query results");
    *done = rc == SQLITE_ROW;
    return ML_OK;
}

static void bind_text(sqlite3_stmt *q, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(q, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, i);
}

static void bind_i64(sqlite3_stmt *q, int i, int64_t v)
{
    if (v >= 0)
        sqlite3_bind_int64(q, i, v);
    else
        sqlite3_bind_null(q, i);
}

static void bind_real(sqlite3_stmt *q, int i, double v)
{
    if (v >= 0)
        sqlite3_bind_double(q, i, v);
    else
        sqlite3_bind_null(q, i);
}

/* A training's curve, under its result row (inside the row's transaction). */
static int insert_train_log(store *s, int64_t rid, const store_epoch *log, int n)
{
    sqlite3_stmt *q = NULL;
    int ok = sqlite3_prepare_v2(s->db,
                                "INSERT INTO train_log (result_id, epoch, step, lr, train_loss, test_top1, test_top5, "
                                "test_loss, seconds) VALUES (?,?,?,?,?,?,?,?,?)",
                                -1, &q, NULL) == SQLITE_OK;
    for (int k = 0; ok && k < n; k++) {
        const store_epoch *e = &log[k];
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, rid);
        sqlite3_bind_int(q, 2, e->epoch);
        sqlite3_bind_int64(q, 3, e->step);
        bind_real(q, 4, e->lr);
        bind_real(q, 5, e->train_loss);
        bind_real(q, 6, e->test_top1);
        bind_real(q, 7, e->test_top5);
        bind_real(q, 8, e->test_loss);
        bind_real(q, 9, e->seconds);
        ok = sqlite3_step(q) == SQLITE_DONE;
    }
    sqlite3_finalize(q);
    return ok;
}

ml_status store_insert(store *s, const store_result *r, const double *samples, int nsamples)
{
    static const char sql[] =
        "INSERT INTO results (run_id, experiment, config_hash, level, model, mixer, resolution, tokens, width, batch, "
        "device, threads, precision, status, message, params, macs, macs_convention, latency_ms_median, "
        "latency_ms_mean, latency_ms_stdev, latency_ms_min, latency_ms_p10, latency_ms_p90, samples, capped, "
        "throughput, gflops, peak_bytes, weight_bytes, activation_bytes, peak_rss_bytes, accuracy, created_at, "
        "accuracy_top1, accuracy_top5, train_seconds, train_images_per_s, train_seed, eval_setup) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,?,?,?,?)";
    char now[32];
    store_now_iso(now, sizeof now);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(s, "cannot start a transaction");
    sqlite3_stmt *q = NULL, *qs = NULL;
    int ok = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) == SQLITE_OK &&
             sqlite3_prepare_v2(s->db, "INSERT INTO samples (result_id, idx, ms) VALUES (?,?,?)", -1, &qs, NULL) ==
                 SQLITE_OK;
    if (ok) {
        int i = 1;
        sqlite3_bind_int64(q, i++, s->run_id);
        bind_text(q, i++, r->experiment);
        bind_text(q, i++, r->config_hash);
        bind_text(q, i++, r->level);
        bind_text(q, i++, r->model);
        bind_text(q, i++, r->mixer);
        bind_i64(q, i++, r->resolution);
        bind_i64(q, i++, r->tokens);
        bind_i64(q, i++, r->width);
        bind_i64(q, i++, r->batch);
        bind_text(q, i++, r->device);
        bind_i64(q, i++, r->threads);
        bind_text(q, i++, r->precision);
        bind_text(q, i++, r->status);
        bind_text(q, i++, r->message);
        bind_i64(q, i++, r->params);
        bind_i64(q, i++, r->macs);
        bind_text(q, i++, r->macs_convention);
        bind_real(q, i++, r->median);
        bind_real(q, i++, r->mean);
        bind_real(q, i++, r->stdev);
        bind_real(q, i++, r->min);
        bind_real(q, i++, r->p10);
        bind_real(q, i++, r->p90);
        bind_i64(q, i++, r->samples);
        bind_i64(q, i++, r->capped);
        bind_real(q, i++, r->throughput);
        bind_real(q, i++, r->gflops);
        bind_i64(q, i++, r->peak_bytes);
        bind_i64(q, i++, r->weight_bytes);
        bind_i64(q, i++, r->activation_bytes);
        bind_i64(q, i++, r->peak_rss_bytes);
        bind_text(q, i++, now);
        bind_real(q, i++, r->top1);
        bind_real(q, i++, r->top5);
        bind_real(q, i++, r->train_seconds);
        bind_real(q, i++, r->train_images_per_s);
        bind_i64(q, i++, r->train_seed);
        bind_text(q, i++, r->eval_setup);
        ok = sqlite3_step(q) == SQLITE_DONE;
    }
    int64_t rid = sqlite3_last_insert_rowid(s->db);
    if (ok && r->nlog)
        ok = insert_train_log(s, rid, r->log, r->nlog);
    for (int k = 0; ok && k < nsamples; k++) {
        sqlite3_reset(qs);
        sqlite3_bind_int64(qs, 1, rid);
        sqlite3_bind_int(qs, 2, k);
        sqlite3_bind_double(qs, 3, samples[k]);
        ok = sqlite3_step(qs) == SQLITE_DONE;
    }
    sqlite3_finalize(q);
    sqlite3_finalize(qs);
    if (ok) { /* the configuration's claim, if it had one, goes with its result */
        sqlite3_stmt *qc = NULL;
        ok = sqlite3_prepare_v2(s->db, "DELETE FROM claims WHERE experiment = ? AND config_hash = ? AND run_id = ?", -1,
                                &qc, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_text(qc, 1, r->experiment, -1, SQLITE_STATIC);
            sqlite3_bind_text(qc, 2, r->config_hash, -1, SQLITE_STATIC);
            sqlite3_bind_int64(qc, 3, s->run_id);
            ok = sqlite3_step(qc) == SQLITE_DONE;
        }
        sqlite3_finalize(qc);
    }
    if (!ok || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ml_status e = db_fail(s, "cannot write a result (nothing of it was kept)");
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return e;
    }
    return ML_OK;
}

/* ---- reading back ---- */

static const char export_cols[] =
    "r.id, r.run_id, r.experiment, r.config_hash, r.level, r.model, r.mixer, r.resolution, r.tokens, r.width, "
    "r.batch, r.device, r.threads, r.precision, r.status, r.message, r.params, r.macs, r.macs_convention, "
    "r.latency_ms_median, r.latency_ms_mean, r.latency_ms_stdev, r.latency_ms_min, r.latency_ms_p10, "
    "r.latency_ms_p90, r.samples, r.capped, r.throughput, r.gflops, r.peak_bytes, r.weight_bytes, "
    "r.activation_bytes, r.peak_rss_bytes, r.accuracy_top1, r.accuracy_top5, r.train_seconds, "
    "r.train_images_per_s, r.train_seed, r.eval_setup, r.created_at, u.git_sha, u.git_dirty, u.cpu_model, "
    "u.hostname, u.started_at";

#define EXPORT_MAX_COLS 64

ml_status store_export(store *s, const char *experiment, void (*columns)(void *ctx, int n, const char *const *names),
                       void (*row)(void *ctx, int n, const char *const *names, const store_value *v), void *ctx)
{
    char sql[2048];
    snprintf(sql, sizeof sql, "SELECT %s FROM results r JOIN runs u ON u.id = r.run_id %s ORDER BY r.id", export_cols,
             experiment ? "WHERE r.experiment = ?" : "");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
    if (experiment)
        sqlite3_bind_text(q, 1, experiment, -1, SQLITE_STATIC);
    const int nc = sqlite3_column_count(q);
    ML_ASSERT(nc <= EXPORT_MAX_COLS);
    const char *names[EXPORT_MAX_COLS];
    for (int c = 0; c < nc; c++)
        names[c] = sqlite3_column_name(q, c);
    columns(ctx, nc, names);
    int rc;
    store_value v[EXPORT_MAX_COLS];
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        for (int c = 0; c < nc; c++) {
            const int t = sqlite3_column_type(q, c);
            v[c].type = t == SQLITE_NULL ? STORE_NULL : t == SQLITE_INTEGER || t == SQLITE_FLOAT ? STORE_NUMBER : STORE_TEXT;
            v[c].number = v[c].type == STORE_NUMBER ? sqlite3_column_double(q, c) : 0;
            v[c].text = v[c].type == STORE_NULL ? NULL : (const char *)sqlite3_column_text(q, c);
        }
        row(ctx, nc, names, v);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? ML_OK : ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
}

static ml_status exec(store *s, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        ml_status e = ml_fail(ML_ERR_IO, "database '%s': %s", s->path, err ? err : "error");
        sqlite3_free(err);
        return e;
    }
    return ML_OK;
}

/* The statements a merge runs against the attached database src. */
typedef struct {
    sqlite3_stmt *runs, *ins_run, *results, *ins_res, *ins_smp, *ins_log;
} merge_stmts;

static ml_status merge_prepare(store *s, const char *src, merge_stmts *m)
{
    static const char *const sql[6] = {
        "SELECT id FROM src.runs ORDER BY id",
        "INSERT INTO main.runs (git_sha, git_dirty, compiler, flags, blas, cpu_model, cores, gpu_name, gpu_driver, "
        "cuda_version, hostname, argv, seed, started_at, finished_at) SELECT git_sha, git_dirty, compiler, flags, blas, "
        "cpu_model, cores, gpu_name, gpu_driver, cuda_version, hostname, argv, seed, started_at, finished_at FROM "
        "src.runs WHERE id = ?",
        "SELECT id, experiment, config_hash, run_id FROM src.results ORDER BY id",
        "INSERT INTO main.results (run_id, experiment, config_hash, level, model, mixer, resolution, tokens, width, "
        "batch, device, threads, precision, status, message, params, macs, macs_convention, latency_ms_median, "
        "latency_ms_mean, latency_ms_stdev, latency_ms_min, latency_ms_p10, latency_ms_p90, samples, capped, "
        "throughput, gflops, peak_bytes, weight_bytes, activation_bytes, peak_rss_bytes, accuracy, created_at, "
        "accuracy_top1, accuracy_top5, train_seconds, train_images_per_s, train_seed, eval_setup) SELECT "
        "?, experiment, config_hash, level, model, mixer, resolution, tokens, width, batch, device, threads, "
        "precision, status, message, params, macs, macs_convention, latency_ms_median, latency_ms_mean, "
        "latency_ms_stdev, latency_ms_min, latency_ms_p10, latency_ms_p90, samples, capped, throughput, gflops, "
        "peak_bytes, weight_bytes, activation_bytes, peak_rss_bytes, accuracy, created_at, accuracy_top1, "
        "accuracy_top5, train_seconds, train_images_per_s, train_seed, eval_setup FROM src.results WHERE id = ?",
        "INSERT INTO main.samples (result_id, idx, ms) SELECT ?, idx, ms FROM src.samples WHERE result_id = ?",
        "INSERT INTO main.train_log (result_id, epoch, step, lr, train_loss, test_top1, test_top5, test_loss, seconds) "
        "SELECT ?, epoch, step, lr, train_loss, test_top1, test_top5, test_loss, seconds FROM src.train_log "
        "WHERE result_id = ?"};
    sqlite3_stmt **dst[6] = {&m->runs, &m->ins_run, &m->results, &m->ins_res, &m->ins_smp, &m->ins_log};
    for (int i = 0; i < 6; i++)
        if (sqlite3_prepare_v2(s->db, sql[i], -1, dst[i], NULL) != SQLITE_OK)
            return ml_fail(ML_ERR_IO, "database '%s': %s", src, sqlite3_errmsg(s->db));
    return ML_OK;
}

static void merge_finalize(merge_stmts *m)
{
    sqlite3_finalize(m->runs), sqlite3_finalize(m->ins_run), sqlite3_finalize(m->results);
    sqlite3_finalize(m->ins_res), sqlite3_finalize(m->ins_smp), sqlite3_finalize(m->ins_log);
}

/* src's runs copied under new ids: map_old[i] -> map_new[i]. */
static ml_status merge_runs(store *s, merge_stmts *m, sqlite3_int64 **map_old, sqlite3_int64 **map_new, int *nmap)
{
    int cap = 0;
    while (sqlite3_step(m->runs) == SQLITE_ROW) {
        if (*nmap == cap) {
            cap = cap ? 2 * cap : 16;
            sqlite3_int64 *a = realloc(*map_old, (size_t)cap * sizeof *a);
            if (a)
                *map_old = a;
            sqlite3_int64 *b = a ? realloc(*map_new, (size_t)cap * sizeof *b) : NULL;
            if (!b)
                return ml_fail(ML_ERR_NOMEM, "out of memory merging into '%s'", s->path);
            *map_new = b;
        }
        (*map_old)[*nmap] = sqlite3_column_int64(m->runs, 0);
        sqlite3_reset(m->ins_run);
        sqlite3_bind_int64(m->ins_run, 1, (*map_old)[*nmap]);
        if (sqlite3_step(m->ins_run) != SQLITE_DONE)
            return ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
        (*map_new)[(*nmap)++] = sqlite3_last_insert_rowid(s->db);
    }
    return ML_OK;
}

/* src's results (and their samples) under the new run ids; ok duplicates skipped. */
static ml_status merge_results(store *s, const char *src, merge_stmts *m, const sqlite3_int64 *map_old,
                               const sqlite3_int64 *map_new, int nmap, long *kept, long *dup)
{
    while (sqlite3_step(m->results) == SQLITE_ROW) {
        const sqlite3_int64 old = sqlite3_column_int64(m->results, 0), old_run = sqlite3_column_int64(m->results, 3);
        sqlite3_int64 new_run = -1;
        int have = 0;
        ML_TRY(store_has_ok(s, (const char *)sqlite3_column_text(m->results, 1),
                            (const char *)sqlite3_column_text(m->results, 2), &have));
        if (have) {
            (*dup)++;
            continue;
        }
        for (int k = 0; k < nmap; k++)
            if (map_old[k] == old_run)
                new_run = map_new[k];
        sqlite3_reset(m->ins_res);
        sqlite3_bind_int64(m->ins_res, 1, new_run);
        sqlite3_bind_int64(m->ins_res, 2, old);
        if (new_run < 0 || sqlite3_step(m->ins_res) != SQLITE_DONE)
            return ml_fail(ML_ERR_FORMAT, "database '%s': result %lld cannot be copied (%s)", src, (long long)old,
                           new_run < 0 ? "its run is missing" : sqlite3_errmsg(s->db));
        const sqlite3_int64 rid = sqlite3_last_insert_rowid(s->db);
        sqlite3_stmt *children[2] = {m->ins_smp, m->ins_log}; /* its samples and its training curve */
        for (int c = 0; c < 2; c++) {
            sqlite3_reset(children[c]);
            sqlite3_bind_int64(children[c], 1, rid);
            sqlite3_bind_int64(children[c], 2, old);
            if (sqlite3_step(children[c]) != SQLITE_DONE)
                return ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
        }
        (*kept)++;
    }
    return ML_OK;
}

ml_status store_merge_from(store *s, const char *src, long *kept, long *duplicates)
{
    char *att = sqlite3_mprintf("ATTACH DATABASE %Q AS src", src);
    ml_status st = exec(s, att);
    sqlite3_free(att);
    if (st != ML_OK)
        return st;
    /* one transaction per input: its runs, results and samples all land or none does */
    merge_stmts m = {0};
    sqlite3_int64 *map_old = NULL, *map_new = NULL;
    int nmap = 0;
    st = exec(s, "BEGIN IMMEDIATE");
    if (st == ML_OK)
        st = merge_prepare(s, src, &m);
    if (st == ML_OK)
        st = merge_runs(s, &m, &map_old, &map_new, &nmap);
    if (st == ML_OK)
        st = merge_results(s, src, &m, map_old, map_new, nmap, kept, duplicates);
    free(map_old), free(map_new);
    merge_finalize(&m);
    if (st == ML_OK)
        st = exec(s, "COMMIT");
    else
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(s->db, "DETACH DATABASE src", NULL, NULL, NULL);
    return st;
}

/* Copies a text column into buf (empty when NULL). */
static void column_text(sqlite3_stmt *q, int c, char *buf, size_t n)
{
    const unsigned char *t = sqlite3_column_text(q, c);
    snprintf(buf, n, "%s", t ? (const char *)t : "");
}

/* Grows *rows (of size elem) to hold one more than *n; NULL on failure. */
static void *grow(void **rows, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return (char *)*rows + (size_t)n * elem;
    const int nc = *cap ? 2 * *cap : 64;
    void *p = realloc(*rows, (size_t)nc * elem);
    if (!p)
        return NULL;
    *rows = p, *cap = nc;
    return (char *)p + (size_t)n * elem;
}

ml_status store_plot_rows(store *s, const char *experiment, store_plot_row **rows, int *n, store_plot_meta *meta)
{
    static const char sql[] =
        "SELECT coalesce(r.mixer, r.model), coalesce(r.tokens, r.resolution), r.latency_ms_median, r.latency_ms_p10, "
        "r.latency_ms_p90, r.peak_bytes, r.macs, r.throughput, r.batch, r.level <> 'model' OR r.tokens IS NOT NULL, "
        "u.cpu_model, u.started_at FROM results r JOIN runs u ON u.id = r.run_id WHERE r.experiment = ? AND r.status = 'ok' "
        "AND r.id IN (SELECT max(id) FROM results WHERE experiment = ? AND status = 'ok' GROUP BY config_hash) "
        "ORDER BY 1, r.batch, 2";
    sqlite3_stmt *q = NULL;
    *rows = NULL, *n = 0;
    memset(meta, 0, sizeof *meta);
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_bind_text(q, 1, experiment, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, experiment, -1, SQLITE_STATIC);
    int cap = 0, rc;
    ml_status st = ML_OK;
    while (st == ML_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        store_plot_row *r = grow((void **)rows, &cap, *n, sizeof **rows);
        if (!r) {
            st = ml_fail(ML_ERR_NOMEM, "out of memory reading %d result rows of '%s'", *n, s->path);
            break;
        }
        (*n)++;
        column_text(q, 0, r->series, sizeof r->series);
        r->x = sqlite3_column_double(q, 1);
        r->med = sqlite3_column_type(q, 2) == SQLITE_NULL ? -1 : sqlite3_column_double(q, 2);
        r->p10 = sqlite3_column_double(q, 3), r->p90 = sqlite3_column_double(q, 4);
        r->peak = sqlite3_column_double(q, 5), r->macs = sqlite3_column_double(q, 6);
        r->thr = sqlite3_column_double(q, 7), r->batch = (long)sqlite3_column_int64(q, 8);
        meta->by_tokens |= sqlite3_column_int(q, 9);
        column_text(q, 10, meta->machine, sizeof meta->machine);
        column_text(q, 11, meta->date, 11); /* the date of the ISO time */
    }
    if (st == ML_OK && rc != SQLITE_DONE)
        st = ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_finalize(q);
    if (st != ML_OK) {
        free(*rows);
        *rows = NULL, *n = 0;
    }
    return st;
}

ml_status store_put_scaling(store *s, const char *experiment, const char *series, double exponent, double lo,
                            double hi, int points)
{
    char now[32];
    store_now_iso(now, sizeof now);
    sqlite3_stmt *ins = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO scaling (experiment, mixer, exponent, tokens_lo, tokens_hi, points, "
                           "created_at) VALUES (?,?,?,?,?,?,?)",
                           -1, &ins, NULL) != SQLITE_OK)
        return ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
    sqlite3_bind_text(ins, 1, experiment, -1, SQLITE_STATIC);
    sqlite3_bind_text(ins, 2, series, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(ins, 3, exponent);
    sqlite3_bind_int64(ins, 4, (sqlite3_int64)lo);
    sqlite3_bind_int64(ins, 5, (sqlite3_int64)hi);
    sqlite3_bind_int(ins, 6, points);
    sqlite3_bind_text(ins, 7, now, -1, SQLITE_STATIC);
    const int rc = sqlite3_step(ins);
    sqlite3_finalize(ins);
    return rc == SQLITE_DONE ? ML_OK : ml_fail(ML_ERR_IO, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
}

ml_status store_latest_top1(store *s, const char *model, int *found, double *top1, long *resolution, char *experiment,
                            size_t n)
{
    sqlite3_stmt *q = NULL;
    *found = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT accuracy_top1, resolution, experiment FROM results WHERE model = ? AND status = 'ok' "
                           "AND accuracy_top1 IS NOT NULL ORDER BY id DESC LIMIT 1",
                           -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "cannot read accuracies");
    sqlite3_bind_text(q, 1, model, -1, SQLITE_STATIC);
    const int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *found = 1;
        *top1 = sqlite3_column_double(q, 0);
        *resolution = (long)sqlite3_column_int64(q, 1);
        column_text(q, 2, experiment, n);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? ML_OK : db_fail(s, "cannot read accuracies");
}

ml_status store_accuracy_rows(store *s, const char *experiment, store_accuracy_row **rows, int *n)
{
    static const char sql[] =
        /* the series: the mixer, with the model it is in when the experiment has several (e.g. with and
         * without a position embedding) */
        "WITH b AS (SELECT id, replace(replace(model, ',mixer=' || coalesce(mixer, ''), ''), ':mixer=' || "
        "coalesce(mixer, ''), '') AS base FROM results WHERE experiment = ?3 AND status = 'ok') "
        "SELECT CASE WHEN (SELECT count(DISTINCT base) FROM b) > 1 AND r.mixer IS NOT NULL THEN r.mixer || ' in ' || "
        "(SELECT base FROM b WHERE b.id = r.id) ELSE coalesce(r.mixer, r.model) END, coalesce(r.resolution, r.tokens), "
        "coalesce(r.train_seed, -1), coalesce(r.macs / r.batch, -1), "
        "coalesce(r.latency_ms_median, -1), r.accuracy_top1, coalesce(r.accuracy_top5, -1), r.id, "
        "r.tokens IS NOT NULL FROM results r "
        "WHERE r.experiment = ?1 AND r.status = 'ok' AND r.accuracy_top1 IS NOT NULL AND r.id IN (SELECT max(id) FROM "
        "results WHERE experiment = ?2 AND status = 'ok' AND accuracy_top1 IS NOT NULL GROUP BY config_hash) "
        "ORDER BY 1, 2, 3";
    sqlite3_stmt *q = NULL;
    *rows = NULL, *n = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "cannot read accuracies");
    sqlite3_bind_text(q, 1, experiment, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, experiment, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, experiment, -1, SQLITE_STATIC);
    int cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        store_accuracy_row *r = grow((void **)rows, &cap, *n, sizeof **rows);
        if (!r) {
            sqlite3_finalize(q);
            return ml_fail(ML_ERR_NOMEM, "out of memory reading '%s'", s->path);
        }
        column_text(q, 0, r->series, sizeof r->series);
        r->resolution = (long)sqlite3_column_int64(q, 1), r->seed = (long)sqlite3_column_int64(q, 2);
        r->macs = sqlite3_column_double(q, 3), r->latency_ms = sqlite3_column_double(q, 4);
        r->top1 = sqlite3_column_double(q, 5), r->top5 = sqlite3_column_double(q, 6);
        r->result_id = sqlite3_column_int64(q, 7);
        r->by_tokens = sqlite3_column_int(q, 8);
        (*n)++;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? ML_OK : db_fail(s, "cannot read accuracies");
}

ml_status store_curve(store *s, int64_t result_id, store_curve_point **rows, int *n)
{
    sqlite3_stmt *q = NULL;
    *rows = NULL, *n = 0;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT epoch, step, coalesce(test_top1, -1), coalesce(train_loss, -1), coalesce(seconds, -1) "
                           "FROM train_log WHERE result_id = ? ORDER BY epoch",
                           -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "cannot read a training curve");
    sqlite3_bind_int64(q, 1, result_id);
    int cap = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        store_curve_point *p = grow((void **)rows, &cap, *n, sizeof **rows);
        if (!p) {
            sqlite3_finalize(q);
            return ml_fail(ML_ERR_NOMEM, "out of memory reading '%s'", s->path);
        }
        p->epoch = sqlite3_column_int(q, 0), p->step = (long)sqlite3_column_int64(q, 1);
        p->test_top1 = sqlite3_column_double(q, 2), p->train_loss = sqlite3_column_double(q, 3);
        p->seconds = sqlite3_column_double(q, 4);
        (*n)++;
    }
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? ML_OK : db_fail(s, "cannot read a training curve");
}
