#include "harness/spec.h"

#include "blocks/mixer.h"
#include "harness/cli.h"
#include "harness/cli_data.h"
#include "models/model.h"

#include <errno.h>
#include <stdarg.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

const char *sweep_level_name(sweep_level l)
{
    return l == LEVEL_BLOCK ? "block" : l == LEVEL_MIXER ? "mixer" : "model";
}

typedef struct {
    sweep_spec *s;
    char err[400];
    uint64_t seen; /* bit per key, for duplicates */
} parse_ctx;

__attribute__((noinline)) static int fail(parse_ctx *p, const char *fmt, const char *a, const char *b)
{
    /* values are cut to 120 characters, and say so: the line number still points at the problem */
    char aa[128], bb[256];
    snprintf(aa, sizeof aa, "%.120s%s", a, strlen(a) > 120 ? "..." : "");
    snprintf(bb, sizeof bb, "%.250s%s", b, strlen(b) > 250 ? "..." : "");
    snprintf(p->err, sizeof p->err, fmt, aa, bb);
    return 0;
}

static char *trim(char *t)
{
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        t[--n] = '\0';
    return t;
}

/* Splits value at commas into trimmed items; empty items are an error. */
static int split_list(parse_ctx *p, const char *key, const char *value, char items[][160], int *count)
{
    char buf[1024];
    if (strlen(value) >= sizeof buf)
        return fail(p, "%s: list too long%s", key, "");
    strcpy(buf, value);
    *count = 0;
    char *start = buf;
    for (;;) {
        char *comma = strchr(start, ',');
        if (comma)
            *comma = '\0';
        char *item = trim(start);
        if (!*item)
            return fail(p, "%s: empty list or empty item in '%s'", key, value);
        if (*count == SPEC_MAX_LIST)
            return fail(p, "%s: more than 32 values%s", key, "");
        if (strlen(item) >= 160)
            return fail(p, "%s: value '%s' too long", key, item);
        strcpy(items[(*count)++], item);
        if (!comma)
            return 1;
        start = comma + 1;
    }
}

static int long_list(parse_ctx *p, const char *key, const char *value, long lo, long hi, long *out, int *count)
{
    char items[SPEC_MAX_LIST][160];
    if (!split_list(p, key, value, items, count))
        return 0;
    for (int i = 0; i < *count; i++) {
        char *end;
        errno = 0;
        long v = strtol(items[i], &end, 10);
        if (*end || errno)
            return fail(p, "%s: '%s' is not an integer", key, items[i]);
        if (v < lo || v > hi) {
            char range[64];
            snprintf(range, sizeof range, "(allowed %ld..%ld)", lo, hi);
            snprintf(p->err, sizeof p->err, "%s: %.40s is out of range %s", key, items[i], range);
            return 0;
        }
        out[i] = v;
    }
    return 1;
}

static int number(parse_ctx *p, const char *key, const char *value, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (!*value || *end || errno || !(v >= lo && v <= hi)) {
        snprintf(p->err, sizeof p->err, "%s: '%s' is not a number in %g..%g", key, value, lo, hi);
        return 0;
    }
    *out = v;
    return 1;
}

/* [measure] metrics and the stopping rule. */
static int measure_key(parse_ctx *p, sweep_spec *s, const char *name, const char *value)
{
    char items[SPEC_MAX_LIST][160];
    int n = 0;
    if (!strcmp(name, "metrics")) {
        if (!split_list(p, name, value, items, &n))
            return 0;
        s->metrics = 0;
        for (int i = 0; i < n; i++) {
            if (!strcmp(items[i], "params"))
                s->metrics |= METRIC_PARAMS;
            else if (!strcmp(items[i], "macs"))
                s->metrics |= METRIC_MACS;
            else if (!strcmp(items[i], "latency"))
                s->metrics |= METRIC_LATENCY;
            else if (!strcmp(items[i], "memory"))
                s->metrics |= METRIC_MEMORY;
            else if (!strcmp(items[i], "accuracy"))
                s->metrics |= METRIC_ACCURACY;
            else
                return fail(p, "metrics: unknown metric '%s' (allowed: params, macs, latency, memory, accuracy)%s",
                            items[i], "");
        }
    } else {
        double v;
        if (!strcmp(name, "min_samples")) {
            if (!number(p, name, value, 1, 1e6, &v))
                return 0;
            s->policy.min_samples = (int)v;
        } else if (!number(p, name, value, 0, 86400, &v)) {
            return 0;
        } else if (!strcmp(name, "warmup_s")) {
            s->policy.warmup_s = v;
        } else if (!strcmp(name, "min_time_s")) {
            s->policy.min_time_s = v;
        } else {
            s->policy.max_time_s = v;
        }
    }
    return 1;
}

/* [eval]: given weights evaluated, as mixerlab eval does it. */
static int eval_key(parse_ctx *p, sweep_spec *s, const char *name, const char *value)
{
    double v;
    s->eval.set = 1;
    if (!strcmp(name, "data")) {
        if (!*value || strlen(value) >= sizeof s->eval.data)
            return fail(p, "data: '%s' is empty or longer than 511 characters%s", value, "");
        strcpy(s->eval.data, value);
        return 1;
    }
    if (!strcmp(name, "weights"))
        return split_list(p, name, value, s->eval.weights, &s->eval.n_weights);
    if (!strcmp(name, "interpolation")) {
        int k = 0;
        while (cli_interp_names[k] && strcmp(cli_interp_names[k], value))
            k++;
        if (!cli_interp_names[k])
            return fail(p, "interpolation: '%s' is not bicubic or bilinear%s", value, "");
        s->eval.interp = k;
        return 1;
    }
    if (!strcmp(name, "crop_pct")) /* eval --crop-pct's range */
        return number(p, name, value, 0.01, 100, &s->eval.crop_pct);
    if (!number(p, name, value, 1, strcmp(name, "limit") ? 4096 : 1e12, &v))
        return 0;
    *(!strcmp(name, "limit") ? &s->eval.limit : &s->eval.batch) = (long)v;
    return 1;
}

/* [train] and [eval]: a training per configuration, or an evaluation of given weights. */
static int train_eval_key(parse_ctx *p, sweep_spec *s, const char *section, const char *name, const char *value)
{
    double v;
    if (!strcmp(section, "eval"))
        return eval_key(p, s, name, value);
    s->train.set = 1;
    if (!strcmp(name, "dataset")) {
        if (!*value || strlen(value) >= sizeof s->train.dataset)
            return fail(p, "dataset: '%s' is empty or longer than 255 characters%s", value, "");
        strcpy(s->train.dataset, value);
        return 1;
    }
    if (!strcmp(name, "seed"))
        return long_list(p, name, value, 0, 2147483647L, s->train.seeds, &s->train.n_seeds);
    if (!strcmp(name, "res_start") || !strcmp(name, "res_ramp")) { /* mixerlab train --res-start, --res-ramp */
        const int start = !strcmp(name, "res_start");
        long r[SPEC_MAX_LIST];
        int k;
        if (!long_list(p, name, value, start ? MODEL_MIN_RES : 0, start ? MODEL_MAX_RES : 10000, r, &k))
            return 0;
        if (k > 2 - start)
            return fail(p, "%s: '%s' is too many values", name, value);
        if (start)
            s->train.res_start = r[0];
        else
            s->train.res_ramp[0] = r[0], s->train.res_ramp[1] = r[k > 1], s->train.n_ramp = k;
        return 1;
    }
    static const struct {
        const char *key;
        double lo, hi;
    } nums[] = {{"epochs", 1, 10000},       {"batch", 1, 4096},          {"limit", 1, 1e12},
                {"eval_limit", 1, 1e12},    {"lr", 1e-12, 10},           {"weight_decay", 0, 10},
                {"warmup_epochs", 0, 10000}, {"drop_path", 0, 0.99},     {"smoothing", 0, 0.99},
                {"steps", 1, 1e12},         {"eval_every", 1, 1e12},    {"random_erase", 0, 1},
                {"data_parallel", 0, 1}};
    int k = 0;
    while (strcmp(nums[k].key, name))
        k++;
    if (!number(p, name, value, nums[k].lo, nums[k].hi, &v))
        return 0;
    long *longs[4] = {&s->train.epochs, &s->train.batch, &s->train.limit, &s->train.eval_limit};
    double *dbls[5] = {&s->train.lr, &s->train.weight_decay, &s->train.warmup_epochs, &s->train.drop_path,
                       &s->train.smoothing};
    if (k < 4)
        *longs[k] = (long)v;
    else if (k < 9)
        *dbls[k - 4] = v;
    else if (k < 11)
        *(k == 9 ? &s->train.steps : &s->train.eval_every) = (long)v;
    else if (k == 11)
        s->train.random_erase = v;
    else if (v != 0 && v != 1)
        return fail(p, "data_parallel: '%s' is not 0 or 1%s", value, "");
    else
        s->train.data_parallel = (int)v;
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *p = user;
    sweep_spec *s = p->s;
    static const char *const keys[] = {"experiment.name", "experiment.description", "grid.level", "grid.model",
                                       "grid.mixer", "grid.resolution", "grid.tokens", "grid.width",
                                       "grid.batch", "grid.device", "grid.precision", "grid.threads", "measure.metrics",
                                       "measure.warmup_s", "measure.min_samples", "measure.min_time_s",
                                       "measure.max_time_s", "train.dataset", "train.epochs", "train.batch",
                                       "train.limit", "train.eval_limit", "train.lr", "train.weight_decay",
                                       "train.warmup_epochs", "train.drop_path", "train.smoothing", "train.seed",
                                       "train.steps", "train.eval_every", "train.random_erase", "train.data_parallel",
                                       "train.res_start", "train.res_ramp",
                                       "eval.data", "eval.weights", "eval.limit", "eval.batch", "eval.crop_pct",
                                       "eval.interpolation", NULL};
    if (strcmp(section, "experiment") && strcmp(section, "grid") && strcmp(section, "measure") &&
        strcmp(section, "train") && strcmp(section, "eval")) {
        if (!*section)
            return fail(p, "key '%s' outside a section%s", name, "");
        return fail(p, "key '%s' is in an unknown section [%s] (allowed: experiment, grid, measure, train, eval)",
                    name, section);
    }
    char full[96];
    snprintf(full, sizeof full, "%s.%s", section, name);
    int k = 0;
    while (keys[k] && strcmp(keys[k], full))
        k++;
    if (!keys[k])
        return fail(p, "unknown key '%s' in [%s]", name, section);
    if (p->seen & ((uint64_t)1 << k))
        return fail(p, "key '%s' given twice in [%s]", name, section);
    p->seen |= (uint64_t)1 << k;
    if (!strcmp(section, "train") || !strcmp(section, "eval"))
        return train_eval_key(p, s, section, name, value);

    char items[SPEC_MAX_LIST][160];
    int n = 0;
    if (!strcmp(full, "experiment.name")) {
        if (!*value || strlen(value) >= SPEC_NAME_MAX || strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(value))
            return fail(p, "name: '%s' must be [a-z0-9_]+ (at most 63 characters)%s", value, "");
        strcpy(s->name, value);
    } else if (!strcmp(full, "experiment.description")) {
        snprintf(s->description, sizeof s->description, "%s", value);
    } else if (!strcmp(full, "grid.level")) {
        if (!strcmp(value, "model"))
            s->level = LEVEL_MODEL;
        else if (!strcmp(value, "block"))
            s->level = LEVEL_BLOCK;
        else if (!strcmp(value, "mixer"))
            s->level = LEVEL_MIXER;
        else
            return fail(p, "level: '%s' is not model, block or mixer%s", value, "");
    } else if (!strcmp(full, "grid.model")) {
        if (!split_list(p, name, value, items, &n))
            return 0;
        /* "a:x=1,y=2, b": an item that is key=value without a model name continues the previous
         * model's overrides, so a model can carry several */
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (m > 0 && strchr(items[i], '=') && !strchr(items[i], ':') && strchr(items[m - 1], ':')) {
                if (strlen(items[m - 1]) + 1 + strlen(items[i]) >= sizeof items[0])
                    return fail(p, "model: '%s,%s' is too long", items[m - 1], items[i]);
                strcat(items[m - 1], ",");
                strcat(items[m - 1], items[i]);
            } else if (m != i) {
                strcpy(items[m++], items[i]);
            } else {
                m++;
            }
        }
        n = m;
        for (int i = 0; i < n; i++) {
            model_config c;
            if (model_config_from_name(items[i], &c) != ML_OK)
                return fail(p, "model: %s%s", ml_last_error(), "");
            strcpy(s->models[i], items[i]);
        }
        s->n_models = n;
    } else if (!strcmp(full, "grid.mixer")) {
        if (!split_list(p, name, value, items, &n))
            return 0;
        for (int i = 0; i < n; i++) {
            if (!mixer_find(items[i]))
                return fail(p, "mixer: unknown mixer '%s' (known: %s)", items[i], mixer_names());
            snprintf(s->mixers[i], sizeof s->mixers[i], "%.31s", items[i]); /* registered names are short */
        }
        s->n_mixers = n;
    } else if (!strcmp(full, "grid.resolution")) {
        return long_list(p, name, value, MODEL_MIN_RES, MODEL_MAX_RES, s->resolutions, &s->n_resolutions);
    } else if (!strcmp(full, "grid.tokens")) {
        return long_list(p, name, value, 1, 1 << 22, s->tokens, &s->n_tokens);
    } else if (!strcmp(full, "grid.width")) {
        return long_list(p, name, value, 1, 16384, s->widths, &s->n_widths);
    } else if (!strcmp(full, "grid.batch")) {
        return long_list(p, name, value, 1, MODEL_MAX_BATCH, s->batches, &s->n_batches);
    } else if (!strcmp(full, "grid.threads")) {
        return long_list(p, name, value, 1, 1024, s->threads, &s->n_threads);
    } else if (!strcmp(full, "grid.device")) {
        if (!split_list(p, name, value, items, &n))
            return 0;
        if (n > 4)
            return fail(p, "device: at most 4 values%s%s", "", "");
        for (int i = 0; i < n; i++) {
            if (strcmp(items[i], "cpu") && strcmp(items[i], "cuda"))
                return fail(p, "device: '%s' is not cpu or cuda%s", items[i], "");
            strcpy(s->devices[i], items[i]);
        }
        s->n_devices = n;
    } else if (!strcmp(full, "grid.precision")) {
        if (strcmp(value, "fp32") && strcmp(value, "tf32") && strcmp(value, "pedantic"))
            return fail(p, "precision: '%s' is not fp32, tf32 or pedantic (one value)%s", value, "");
        strcpy(s->precision, value);
    } else {
        return measure_key(p, s, name, value);
    }
    return 1;
}

/* inih reads a line into a buffer of INI_MAX_LINE bytes and parses what is
 * left of a longer line as a line of its own; it also stops a line at a NUL
 * byte. Both are found here first, naming the line. */
static ml_status prescan(const char *path, const char *text, size_t len)
{
    int line = 1;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && text[i] == '\0')
            return ml_fail(ML_ERR_USAGE, "%s:%d: NUL byte at column %zu (a spec is text)", path, line, i - start + 1);
        if (i == len || text[i] == '\n') {
            size_t n = i - start;
            if (n && text[i - 1] == '\r')
                n--;
            if (n > INI_MAX_LINE - 1)
                return ml_fail(ML_ERR_USAGE, "%s:%d: line too long (%zu characters, at most %d)", path, line, n,
                               INI_MAX_LINE - 1);
            line++;
            start = i + 1;
        }
    }
    return ML_OK;
}

/* accuracy needs level model and one of [train] / [eval] (with a weights file per model); neither
 * section does anything without it */
static ml_status check_accuracy(const char *path, sweep_spec *s)
{
    const int acc = (s->metrics & METRIC_ACCURACY) != 0;
    if (!acc && (s->train.set || s->eval.set))
        return ml_fail(ML_ERR_USAGE, "%s: [%s] needs accuracy among [measure] metrics", path,
                       s->train.set ? "train" : "eval");
    if (!acc)
        return ML_OK;
    if (s->level != LEVEL_MODEL)
        return ml_fail(ML_ERR_USAGE, "%s: accuracy is measured at level = model", path);
    if (s->train.set && s->eval.set)
        return ml_fail(ML_ERR_USAGE, "%s: [train] and [eval] exclude each other (train, or evaluate given weights)",
                       path);
    if (!s->train.set && !s->eval.set)
        return ml_fail(ML_ERR_USAGE, "%s: accuracy needs a [train] section, or [eval] with data and weights", path);
    if (s->eval.set && !s->eval.data[0])
        return ml_fail(ML_ERR_USAGE, "%s: [eval] needs data = a folder, folder:dir=PATH or fashion-mnist", path);
    if (s->eval.set && s->eval.n_weights != s->n_models)
        return ml_fail(ML_ERR_USAGE, "%s: [eval] weights lists %d files for %d [grid] models (one each, in order; "
                                     "accuracy is never measured on random weights)",
                       path, s->eval.n_weights, s->n_models);
    if (s->train.set && !s->train.res_start != !s->train.n_ramp)
        return ml_fail(ML_ERR_USAGE, "%s: [train] res_start and res_ramp go together", path);
    if (s->train.set && !s->train.n_seeds)
        s->train.seeds[0] = 0, s->train.n_seeds = 1;
    return ML_OK;
}

#define SPEC_MAX_BYTES ((size_t)1 << 20)

ml_status spec_parse(const char *path, sweep_spec *out)
{
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ml_fail(ML_ERR_IO, "cannot open spec '%s': %s", path, strerror(errno));
    char *text = ml_malloc(SPEC_MAX_BYTES + 1, "spec");
    if (!text) {
        fclose(fp);
        return ML_ERR_NOMEM;
    }
    const size_t len = fread(text, 1, SPEC_MAX_BYTES + 1, fp);
    const int err = ferror(fp);
    fclose(fp);
    ml_status s = ML_OK;
    if (err)
        s = ml_fail(ML_ERR_IO, "cannot read spec '%s'", path);
    else if (len > SPEC_MAX_BYTES)
        s = ml_fail(ML_ERR_USAGE, "spec '%s' is larger than %zu bytes", path, SPEC_MAX_BYTES);
    if (s == ML_OK)
        s = spec_parse_text(path, text, len, out);
    free(text);
    return s;
}

ml_status spec_parse_text(const char *path, const char *text, size_t len, sweep_spec *out)
{
    memset(out, 0, sizeof *out);
    out->level = LEVEL_MODEL;
    out->metrics = METRIC_PARAMS | METRIC_MACS | METRIC_LATENCY | METRIC_MEMORY;
    out->policy = timer_policy_default();
    out->batches[0] = 1, out->n_batches = 1;
    strcpy(out->devices[0], "cpu"), out->n_devices = 1;
    strcpy(out->precision, "fp32");
    /* mixerlab train's defaults */
    strcpy(out->train.dataset, "fashion-mnist");
    out->train.epochs = 10, out->train.batch = 64, out->train.lr = 1e-3, out->train.weight_decay = 0.05;
    out->train.warmup_epochs = 1, out->train.smoothing = 0.1;
    out->eval.batch = 100, out->eval.interp = -1;
    ML_TRY(prescan(path, text, len));
    char *copy = ml_malloc(len + 1, "spec");
    if (!copy)
        return ML_ERR_NOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    parse_ctx p = {.s = out};
    int line = ini_parse_string(copy, handler, &p);
    free(copy);
    if (line > 0)
        return ml_fail(ML_ERR_USAGE, "%s:%d: %s", path, line, p.err[0] ? p.err : "malformed line (want key = value or [section])");
    if (line < 0)
        return ml_fail(ML_ERR_IO, "cannot read spec '%s'", path);
    /* whole-file checks */
    if (!out->name[0])
        return ml_fail(ML_ERR_USAGE, "%s: [experiment] name is required", path);
    if (out->level == LEVEL_MODEL) {
        if (!out->n_models)
            return ml_fail(ML_ERR_USAGE, "%s: level = model needs [grid] model", path);
        if (!out->n_resolutions && !out->n_tokens)
            return ml_fail(ML_ERR_USAGE, "%s: level = model needs [grid] resolution (or tokens, for the sequence "
                                         "model seq)", path);
        if (out->n_resolutions && out->n_tokens)
            return ml_fail(ML_ERR_USAGE, "%s: level = model sweeps resolution (image models) or tokens (the sequence "
                                         "model seq), not both", path);
        if (out->n_widths)
            return ml_fail(ML_ERR_USAGE, "%s: width belongs to level = block or mixer", path);
    } else {
        if (!out->n_tokens || !out->n_widths)
            return ml_fail(ML_ERR_USAGE, "%s: level = %s needs [grid] tokens and width", path, sweep_level_name(out->level));
        if (out->n_resolutions || out->n_models)
            return ml_fail(ML_ERR_USAGE, "%s: resolution and model belong to level = model", path);
        if (!out->n_mixers)
            return ml_fail(ML_ERR_USAGE, "%s: level = %s needs [grid] mixer", path, sweep_level_name(out->level));
    }
    /* level model: each model with each grid mixer as its override is a model spec that fits and parses */
    for (int a = 0; out->level == LEVEL_MODEL && a < out->n_models; a++)
        for (int b = 0; b < out->n_mixers; b++) {
            char full[SPEC_MODEL_MAX + 64];
            model_config c;
            const int n = snprintf(full, sizeof full, "%s%smixer=%s", out->models[a],
                                   strchr(out->models[a], ':') ? "," : ":", out->mixers[b]);
            if (n >= SPEC_MODEL_MAX)
                return ml_fail(ML_ERR_USAGE,
                               "%s: model '%s' with mixer %s is '%s', %d characters (at most %d): shorten the model value",
                               path, out->models[a], out->mixers[b], full, n, SPEC_MODEL_MAX - 1);
            if (model_config_from_name(full, &c) != ML_OK) {
                char why[600];
                snprintf(why, sizeof why, "%s", ml_last_error());
                return ml_fail(ML_ERR_USAGE, "%s: model '%s': %s", path, full, why);
            }
        }
    ML_TRY(check_accuracy(path, out));
    if (out->policy.max_time_s < out->policy.min_time_s)
        return ml_fail(ML_ERR_USAGE, "%s: max_time_s (%g) is below min_time_s (%g)", path, out->policy.max_time_s,
                       out->policy.min_time_s);
    return ML_OK;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Appends to the key at *len; a cut key would give two configurations one hash, so it must fit. */
__attribute__((format(printf, 4, 5))) static void key_add(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int k = vsnprintf(buf + *len, n - *len, fmt, ap);
    va_end(ap);
    ML_ASSERT(k >= 0 && *len + (size_t)k < n);
    *len += (size_t)k;
}

/* The configuration's identity, hashed for --resume. Keys added after the first specs were run
 * are appended only when set, so the hashes of specs without them (and the databases holding
 * them) stay what they were. */
void sweep_config_key(const sweep_spec *s, const sweep_config *c, char *buf, size_t n)
{
    size_t len = 0;
    ML_ASSERT(n > 0);
    buf[0] = '\0';
    key_add(buf, n, &len,
            "level=%s;model=%s;mixer=%s;resolution=%ld;tokens=%ld;width=%ld;batch=%ld;device=%s;threads=%ld;"
            "precision=%s;metrics=%u;warmup_s=%g;min_samples=%d;min_time_s=%g;max_time_s=%g",
            sweep_level_name(c->level), c->model, c->mixer, c->resolution, c->tokens, c->width, c->batch, c->device,
            c->threads, c->precision[0] ? c->precision : "fp32", s->metrics, s->policy.warmup_s,
            s->policy.min_samples, s->policy.min_time_s, s->policy.max_time_s);
    if (!(s->metrics & METRIC_ACCURACY))
        return;
    if (s->train.set) {
        key_add(buf, n, &len,
                ";train=%s;epochs=%ld;tbatch=%ld;limit=%ld;eval_limit=%ld;lr=%.17g;wd=%.17g;warmup=%.17g;"
                "drop_path=%.17g;smoothing=%.17g;seed=%ld",
                s->train.dataset, s->train.epochs, s->train.batch, s->train.limit, s->train.eval_limit, s->train.lr,
                s->train.weight_decay, s->train.warmup_epochs, s->train.drop_path, s->train.smoothing, c->seed);
        if (s->train.steps > 0) /* a stream's budget */
            key_add(buf, n, &len, ";steps=%ld;eval_every=%ld", s->train.steps, s->train.eval_every);
        if (s->train.res_start > 0)
            key_add(buf, n, &len, ";res_start=%ld;res_ramp=%ld,%ld", s->train.res_start, s->train.res_ramp[0],
                    s->train.res_ramp[1]);
        if (s->train.random_erase > 0)
            key_add(buf, n, &len, ";random_erase=%.17g", s->train.random_erase);
        if (s->train.data_parallel)
            key_add(buf, n, &len, ";data_parallel=1");
        return;
    }
    key_add(buf, n, &len, ";eval=%s;weights=%s;elimit=%ld;ebatch=%ld", s->eval.data, s->eval.weights[c->model_index],
            s->eval.limit, s->eval.batch);
    if (s->eval.set && (s->eval.crop_pct > 0 || s->eval.interp >= 0)) /* the transform's overrides */
        key_add(buf, n, &len, ";crop_pct=%.17g;interpolation=%s", s->eval.crop_pct,
                s->eval.interp >= 0 ? cli_interp_names[s->eval.interp] : "");
}

ml_status spec_expand(const sweep_spec *s, sweep_config **out, int *count)
{
    const int nmod = s->level == LEVEL_MODEL ? s->n_models : 1;
    const int nmix = s->n_mixers ? s->n_mixers : 1;
    const int by_tokens = s->level != LEVEL_MODEL || s->n_tokens > 0; /* blocks, mixers and the sequence model */
    const int nsize = by_tokens ? s->n_tokens : s->n_resolutions;
    const int nw = s->level == LEVEL_MODEL ? 1 : s->n_widths;
    const int nth = s->n_threads ? s->n_threads : 1;
    const int nseed = (s->metrics & METRIC_ACCURACY) && s->train.set ? s->train.n_seeds : 1;
    const size_t f[8] = {(size_t)nmod, (size_t)nmix, (size_t)nsize, (size_t)nw, (size_t)s->n_batches,
                         (size_t)s->n_devices, (size_t)nth, (size_t)nseed};
    size_t total;
    ML_TRY(ml_size_product(&total, "sweep configurations", 8, f, sizeof(sweep_config)));
    if (total > SPEC_MAX_CONFIGS)
        return ml_fail(ML_ERR_USAGE, "%s: %zu configurations (the product of the [grid] lists; at most %d)", s->name,
                       total, SPEC_MAX_CONFIGS);
    ML_TRY(ml_check_fits((double)total * sizeof(sweep_config), "the sweep's configuration table"));
    sweep_config *c = ml_calloc(total, sizeof *c, "sweep configurations");
    if (!c)
        return ML_ERR_NOMEM;
    size_t k = 0;
    for (int a = 0; a < nmod; a++)
        for (int b = 0; b < nmix; b++)
            for (int r = 0; r < nsize; r++)
                for (int w = 0; w < nw; w++)
                    for (int bt = 0; bt < s->n_batches; bt++)
                        for (int d = 0; d < s->n_devices; d++)
                            for (int t = 0; t < nth * nseed; t++) {
                                sweep_config *x = &c[k++];
                                x->level = s->level;
                                x->model_index = a;
                                x->seed = nseed > 1 || ((s->metrics & METRIC_ACCURACY) && s->train.set)
                                              ? s->train.seeds[t % nseed]
                                              : -1;
                                if (s->n_mixers)
                                    snprintf(x->mixer, sizeof x->mixer, "%s", s->mixers[b]);
                                if (s->level == LEVEL_MODEL) {
                                    /* the model spec, with the mixer as an override when the grid names one */
                                    int len;
                                    if (s->n_mixers)
                                        len = snprintf(x->model, sizeof x->model, "%s%smixer=%s", s->models[a],
                                                       strchr(s->models[a], ':') ? "," : ":", s->mixers[b]);
                                    else
                                        len = snprintf(x->model, sizeof x->model, "%s", s->models[a]);
                                    if (len < 0 || (size_t)len >= sizeof x->model) {
                                        free(c);
                                        return ml_fail(ML_ERR_USAGE, "model '%s' with mixer %s is too long (at most %zu characters)",
                                                       s->models[a], s->n_mixers ? s->mixers[b] : "(its own)",
                                                       sizeof x->model - 1);
                                    }
                                    if (by_tokens)
                                        x->tokens = s->tokens[r]; /* the sequence model's length */
                                    else
                                        x->resolution = s->resolutions[r];
                                } else {
                                    x->tokens = s->tokens[r];
                                    x->width = s->widths[w];
                                    cli_token_grid(x->tokens, &x->grid_h, &x->grid_w);
                                }
                                x->batch = s->batches[bt];
                                snprintf(x->device, sizeof x->device, "%s", s->devices[d]);
                                snprintf(x->precision, sizeof x->precision, "%s",
                                         strcmp(x->device, "cuda") ? "fp32" : s->precision);
                                x->threads = s->n_threads ? s->threads[t / nseed] : 0;
                                char key[2048];
                                sweep_config_key(s, x, key, sizeof key);
                                snprintf(x->hash, sizeof x->hash, "%016llx", (unsigned long long)fnv1a(key));
                            }
    *out = c;
    *count = (int)total;
    return ML_OK;
}
