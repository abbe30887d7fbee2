#include "data/dataset.h"

#include "base/rng.h"
#include "data/tasks.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

ml_status fashion_mnist_open(dataset *d, const char *dir, size_t limit);
ml_status folder_open(dataset *d, const char *dir, const char *train_dir, size_t limit);

#define KNOWN_DATASETS                                                                                            \
    "fashion-mnist, folder:dir=PATH[,train=PATH], an image folder's path, or a generated task: selective-copying, " \
    "induction-heads, pathfinder, sequential-fashion-mnist"

/* NAME[:key=value,...]: the name, and the values of keys "dir" and (folders) "train" if given (other
 * keys refused); both nd bytes. */
static ml_status parse_spec(const char *spec, char *name, size_t nn, char *dir, char *train, size_t nd)
{
    const char *colon = strchr(spec, ':');
    const size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= nn)
        return ml_fail(ML_ERR_USAGE, "--data: '%.80s' is not a dataset name (known: " KNOWN_DATASETS ")", spec);
    memcpy(name, spec, len);
    name[len] = '\0';
    dir[0] = train[0] = '\0';
    for (const char *p = colon ? colon + 1 : NULL; p;) {
        const char *comma = strchr(p, ','), *eq = strchr(p, '=');
        const size_t kl = eq && (!comma || eq < comma) ? (size_t)(eq - p) : 0;
        const char *v = kl ? eq + 1 : NULL;
        const size_t vl = v ? (comma ? (size_t)(comma - v) : strlen(v)) : 0;
        if (!kl || !vl)
            return ml_fail(ML_ERR_USAGE, "--data %s: '%.60s' is not key=value", name, p);
        const int is_dir = kl == 3 && !strncmp(p, "dir", 3), is_train = kl == 5 && !strncmp(p, "train", 5);
        if (!is_dir && !(is_train && !strcmp(name, "folder")))
            return ml_fail(ML_ERR_USAGE, "--data %s: unknown key '%.*s' (allowed: dir%s)", name, (int)kl, p,
                           strcmp(name, "folder") ? "" : ", train");
        if (vl >= nd)
            return ml_fail(ML_ERR_USAGE, "--data %s: %.*s is longer than %zu characters", name, (int)kl, p, nd - 1);
        char *dst = is_dir ? dir : train;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
        p = comma ? comma + 1 : NULL;
    }
    return ML_OK;
}

dataset_options dataset_options_default(void)
{
    return (dataset_options){1.0, "bicubic", {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}, 0, 1, 0, 0.0};
}

void dataset_random_erase(float *x, int c, int h, int w, size_t plane_stride, double p, rng_state *r)
{
    if (!(p > 0) || rng_uniform(r) >= p) /* timm: random.random() > p skips; the same up to a null set */
        return;
    const double area = (double)h * w, lo = log(0.3), hi = log(1 / 0.3);
    for (int attempt = 0; attempt < 10; attempt++) {
        const double target = (0.02 + (1.0 / 3 - 0.02) * rng_uniform(r)) * area;
        const double aspect = exp(lo + (hi - lo) * rng_uniform(r));
        const int eh = (int)nearbyint(sqrt(target * aspect)), ew = (int)nearbyint(sqrt(target / aspect));
        if (ew >= w || eh >= h)
            continue;
        const int top = (int)(rng_next_u64(r) % (uint64_t)(h - eh + 1));
        const int left = (int)(rng_next_u64(r) % (uint64_t)(w - ew + 1));
        for (int ch = 0; ch < c; ch++)
            for (int y = top; y < top + eh; y++)
                for (int xx = left; xx < left + ew; xx++)
                    x[(size_t)ch * plane_stride + (size_t)y * w + xx] = (float)rng_normal(r);
        return;
    }
}

/* A spec that names a folder by its path: a '/' in it, or a directory of that name. */
static int is_folder_path(const char *spec)
{
    struct stat st;
    return strchr(spec, '/') || (stat(spec, &st) == 0 && S_ISDIR(st.st_mode));
}

ml_status dataset_open_with(dataset *d, const char *spec, size_t limit, const dataset_options *opt)
{
    char name[64], dir[512];
    memset(d, 0, sizeof *d);
    d->opt = opt ? *opt : dataset_options_default();
    {
        const char *colon = strchr(spec, ':');
        const size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
        if (len < sizeof name) {
            memcpy(name, spec, len);
            name[len] = '\0';
            if (tasks_is_task(name)) {
                const dataset_options o = d->opt;
                const ml_status s = tasks_open(d, name, colon ? colon + 1 : NULL, &o, limit);
                d->opt = o;
                return s;
            }
        }
    }
    if (strcmp(spec, "fashion-mnist") != 0 && strncmp(spec, "fashion-mnist:", 14) != 0 &&
        strncmp(spec, "folder:", 7) != 0 && is_folder_path(spec)) {
        if (strlen(spec) >= sizeof d->source)
            return ml_fail(ML_ERR_USAGE, "--data: the folder's path is longer than %zu characters",
                           sizeof d->source - 1);
        return folder_open(d, spec, NULL, limit);
    }
    char train[512];
    ML_TRY(parse_spec(spec, name, sizeof name, dir, train, sizeof dir));
    if (strcmp(name, "fashion-mnist") == 0) {
        const dataset_options o = d->opt;
        const ml_status s = fashion_mnist_open(d, dir[0] ? dir : NULL, limit);
        d->opt = o;
        return s;
    }
    if (strcmp(name, "folder") == 0) {
        if (!dir[0])
            return ml_fail(ML_ERR_USAGE, "--data folder: needs dir=PATH (the folder with one sub-folder per class)");
        return folder_open(d, dir, train[0] ? train : NULL, limit);
    }
    return ml_fail(ML_ERR_USAGE, "--data: unknown dataset '%s' (known: " KNOWN_DATASETS ")", name);
}

ml_status dataset_open(dataset *d, const char *spec, size_t limit)
{
    return dataset_open_with(d, spec, limit, NULL);
}

size_t dataset_sample_floats(const dataset *d, int res)
{
    return d->seq_len > 0 && !d->as_image ? (size_t)d->seq_len : (size_t)3 * res * res;
}

int dataset_sample_labels(const dataset *d) { return d->seq_len > 0 && !d->as_image ? d->seq_len : 1; }

void dataset_close(dataset *d)
{
    if (d->release)
        d->release(d);
    memset(d, 0, sizeof *d);
}

void dataset_epoch_order(size_t *order, size_t n, uint64_t seed, int epoch)
{
    rng_state r;
    rng_seed(&r, seed * 0x100000001b3ULL + (uint64_t)epoch + 1);
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        const size_t j = (size_t)(rng_next_u64(&r) % i);
        const size_t t = order[i - 1];
        order[i - 1] = order[j], order[j] = t;
    }
}
