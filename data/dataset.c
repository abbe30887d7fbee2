#include "data/dataset.h"

#include "base/rng.h"

#include <string.h>

ml_status fashion_mnist_open(dataset *d, const char *dir, size_t limit);

/* NAME[:key=value,...]: the name, and the value of key "dir" if given (other keys refused). */
static ml_status parse_spec(const char *spec, char *name, size_t nn, char *dir, size_t nd)
{
    const char *colon = strchr(spec, ':');
    const size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len == 0 || len >= nn)
        return ml_fail(ML_ERR_USAGE, "--data: '%.80s' is not a dataset name (known: fashion-mnist)", spec);
    memcpy(name, spec, len);
    name[len] = '\0';
    dir[0] = '\0';
    for (const char *p = colon ? colon + 1 : NULL; p;) {
        const char *comma = strchr(p, ','), *eq = strchr(p, '=');
        const size_t kl = eq && (!comma || eq < comma) ? (size_t)(eq - p) : 0;
        const char *v = kl ? eq + 1 : NULL;
        const size_t vl = v ? (comma ? (size_t)(comma - v) : strlen(v)) : 0;
        if (!kl || !vl)
            return ml_fail(ML_ERR_USAGE, "--data %s: '%.60s' is not key=value", name, p);
        if (kl != 3 || strncmp(p, "dir", 3) != 0)
            return ml_fail(ML_ERR_USAGE, "--data %s: unknown key '%.*s' (allowed: dir)", name, (int)kl, p);
        if (vl >= nd)
            return ml_fail(ML_ERR_USAGE, "--data %s: dir is longer than %zu characters", name, nd - 1);
        memcpy(dir, v, vl);
        dir[vl] = '\0';
        p = comma ? comma + 1 : NULL;
    }
    return ML_OK;
}

ml_status dataset_open(dataset *d, const char *spec, size_t limit)
{
    char name[64], dir[512];
    memset(d, 0, sizeof *d);
    ML_TRY(parse_spec(spec, name, sizeof name, dir, sizeof dir));
    if (strcmp(name, "fashion-mnist") == 0)
        return fashion_mnist_open(d, dir[0] ? dir : NULL, limit);
    return ml_fail(ML_ERR_USAGE, "--data: unknown dataset '%s' (known: fashion-mnist)", name);
}

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
