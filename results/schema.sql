-- mixerlab result store, schema version 1 (PRAGMA user_version = 1).
-- Applied by the migration from version 0 (an empty file); later versions add
-- migrations after it (harness/store.c), never edit this one in place.

-- One row per invocation, with where the numbers came from.
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    git_sha       TEXT NOT NULL,
    git_dirty     INTEGER NOT NULL,
    compiler      TEXT,
    flags         TEXT,
    blas          TEXT,
    cpu_model     TEXT,
    cores         INTEGER,
    gpu_name      TEXT,
    gpu_driver    TEXT,
    cuda_version  TEXT,
    hostname      TEXT,
    argv          TEXT,
    seed          INTEGER,
    started_at    TEXT NOT NULL,
    finished_at   TEXT
);

-- One row per configuration measured: a result is fully written or absent.
CREATE TABLE results (
    id                 INTEGER PRIMARY KEY,
    run_id             INTEGER NOT NULL REFERENCES runs(id),
    experiment         TEXT NOT NULL,
    config_hash        TEXT NOT NULL,
    level              TEXT NOT NULL,
    model              TEXT,
    mixer              TEXT,
    resolution         INTEGER,
    tokens             INTEGER,
    width              INTEGER,
    batch              INTEGER NOT NULL,
    device             TEXT NOT NULL,
    threads            INTEGER,
    precision          TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('ok', 'oom', 'unsupported', 'error', 'timeout')),
    message            TEXT,
    params             INTEGER,
    macs               INTEGER,
    macs_convention    TEXT,
    latency_ms_median  REAL,
    latency_ms_mean    REAL,
    latency_ms_stdev   REAL,
    latency_ms_min     REAL,
    latency_ms_p10     REAL,
    latency_ms_p90     REAL,
    samples            INTEGER,
    capped             INTEGER,
    throughput         REAL,
    gflops             REAL,
    peak_bytes         INTEGER,
    weight_bytes       INTEGER,
    activation_bytes   INTEGER,
    peak_rss_bytes     INTEGER,
    accuracy           REAL,
    created_at         TEXT NOT NULL
);
CREATE INDEX results_by_config ON results(experiment, config_hash, status);

-- Every timed sample of a result, in the order taken.
CREATE TABLE samples (
    result_id  INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    ms         REAL NOT NULL,
    PRIMARY KEY (result_id, idx)
);

-- Scaling exponents fitted by `mixerlab plot`: slope of log latency on log
-- tokens over the largest decade measured.
CREATE TABLE scaling (
    experiment  TEXT NOT NULL,
    mixer       TEXT NOT NULL,
    exponent    REAL NOT NULL,
    tokens_lo   INTEGER NOT NULL,
    tokens_hi   INTEGER NOT NULL,
    points      INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (experiment, mixer)
);
