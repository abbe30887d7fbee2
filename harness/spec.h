/* Sweep specifications (INI, parsed with inih; format in experiments/README.md)
 * and their expansion into configurations in a fixed, documented order. */
#ifndef MIXERLAB_SPEC_H
#define MIXERLAB_SPEC_H

#include "base/common.h"
#include "harness/timer.h"

#define SPEC_MAX_LIST 32
#define SPEC_NAME_MAX 64
#define SPEC_MODEL_MAX 160  /* a model value, overrides (and a grid mixer's) included, with its NUL */
#define SPEC_MAX_CONFIGS 1000000

typedef enum { LEVEL_MODEL = 0, LEVEL_BLOCK = 1, LEVEL_MIXER = 2 } sweep_level;

enum { METRIC_PARAMS = 1, METRIC_MACS = 2, METRIC_LATENCY = 4, METRIC_MEMORY = 8, METRIC_ACCURACY = 16 };

typedef struct {
    char name[SPEC_NAME_MAX];
    char description[256];
    sweep_level level;
    char models[SPEC_MAX_LIST][SPEC_MODEL_MAX];
    int n_models;
    char mixers[SPEC_MAX_LIST][32]; /* empty: the model's own (level model) */
    int n_mixers;
    long resolutions[SPEC_MAX_LIST];
    int n_resolutions;
    long tokens[SPEC_MAX_LIST];
    int n_tokens;
    long widths[SPEC_MAX_LIST];
    int n_widths;
    long batches[SPEC_MAX_LIST];
    int n_batches;
    char devices[4][8];
    int n_devices;
    char precision[12]; /* on device = cuda, cuBLAS's float32 math: fp32 (default math) | tf32 (TF32 tensor
                         * cores allowed) | pedantic (CUBLAS_PEDANTIC_MATH) */
    long threads[SPEC_MAX_LIST];
    int n_threads;
    unsigned metrics;
    timer_policy policy;
    /* [train]: with accuracy among the metrics, each configuration trains (train/trainer.h) and
     * evaluates; seeds is a sweep axis */
    struct {
        int set;
        char dataset[256];
        long epochs, batch, limit, eval_limit;
        long steps, eval_every; /* a generated task: steps instead of epochs (train/trainer.h) */
        double lr, weight_decay, warmup_epochs, drop_path, smoothing;
        double random_erase; /* images: timm's random erasing probability (0: off) */
        int data_parallel;   /* mixerlab train --data-parallel (0: off) */
        long res_start, res_ramp[2]; /* progressive resizing (train/trainer.h); res_start 0: off */
        int n_ramp;
        long seeds[SPEC_MAX_LIST];
        int n_seeds;
    } train;
    /* [eval]: with accuracy among the metrics, each configuration evaluates given weights instead */
    struct {
        int set;
        char data[512];
        char weights[SPEC_MAX_LIST][160]; /* one per [grid] model, in order */
        int n_weights;
        long limit, batch;
        double crop_pct; /* 0: the model's (a folder's transform; Fashion-MNIST ignores it) */
        int interp;      /* -1: the model's; else an index into cli_interp_names */
    } eval;
} sweep_spec;

/* One configuration of the sweep, fully resolved. */
typedef struct {
    sweep_level level;
    char model[SPEC_MODEL_MAX]; /* level model: the model spec, mixer override included (spec_parse checks it fits) */
    char mixer[32];
    long resolution, tokens, width, batch, threads; /* level model: resolution, or tokens for the sequence model */
    char device[8];
    char precision[12]; /* "fp32" on the CPU whatever the spec says */
    int grid_h, grid_w; /* block / mixer: L tokens on a square grid if L is a perfect square, else 1 x L */
    long seed;          /* [train]'s seed (-1 without training) */
    int model_index;    /* which [grid] model (its [eval] weights) */
    char hash[17];      /* of the resolved settings below, see sweep_config_key */
} sweep_config;

/* Parses path; every problem is a usage error "path:line: what is wrong". */
ml_status spec_parse(const char *path, sweep_spec *out);
/* The same on text[0..len) already in memory, named path in errors. */
ml_status spec_parse_text(const char *path, const char *text, size_t len, sweep_spec *out);
/* The configurations in the documented order (outermost first: model, mixer,
 * resolution or tokens, width, batch, device, threads, [train] seed). *out is malloc'd. */
ml_status spec_expand(const sweep_spec *s, sweep_config **out, int *count);
/* Canonical text of a config's resolved settings (what the hash is of). */
void sweep_config_key(const sweep_spec *s, const sweep_config *c, char *buf, size_t n);
const char *sweep_level_name(sweep_level l);

#endif
