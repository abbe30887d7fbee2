#include "train/trainer.h"

#include "base/rng.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "models/model_train.h"
#include "train/metrics.h"
#include "train/optim.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

train_config train_config_default(void)
{
    train_config c = {0};
    c.epochs = 10, c.batch = 64;
    c.lr = 1e-3, c.min_lr = 1e-5, c.warmup_lr = 1e-6, c.weight_decay = 0.05, c.warmup_epochs = 1;
    c.smoothing = 0.1;
    c.checkpoint_s = 300;
    c.warmup_steps = -1;
    return c;
}

dataset_options model_dataset_options(const model_config *cfg)
{
    dataset_options o = dataset_options_default();
    o.crop_pct = cfg->data.crop_pct;
    snprintf(o.interpolation, sizeof o.interpolation, "%s", cfg->data.interpolation);
    memcpy(o.mean, cfg->data.mean, sizeof o.mean);
    memcpy(o.std, cfg->data.std, sizeof o.std);
    const long half = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    o.workers = half > 1 ? (int)half : 1;
    return o;
}

ml_status model_classes_for(model_config *cfg, dataset *d, const char *who)
{
    const int seq_model = cfg->skeleton == SKEL_SEQUENCE;
    if (seq_model && d->seq_len <= 0)
        return ml_fail(ML_ERR_USAGE,
                       "%s: %s reads token sequences and %s is images (its sequence form is sequential-fashion-mnist; "
                       "the tasks: selective-copying, induction-heads, pathfinder)",
                       who, cfg->name, d->name);
    if (!seq_model && d->seq_len > 0) {
        if (d->image_res <= 0)
            return ml_fail(ML_ERR_USAGE, "%s: %s reads images and %s is a sequence task (train the sequence model seq "
                                         "on it, e.g. seq:mixer=ssm)",
                           who, cfg->name, d->name);
        d->as_image = 1; /* an image read as a sequence: the image skeletons get the image */
    }
    if (seq_model && !cfg->vocab_set)
        cfg->vocab = d->vocab;
    else if (seq_model && cfg->vocab != d->vocab)
        return ml_fail(ML_ERR_USAGE, "%s: %s has a vocabulary of %d tokens and %s has %d", who, cfg->name, cfg->vocab,
                       d->name, d->vocab);
    if (!cfg->classes_set)
        cfg->num_classes = d->classes;
    else if (cfg->num_classes < d->classes)
        return ml_fail(ML_ERR_USAGE, "%s: %s has %d classes but %s has %d", who, cfg->name, cfg->num_classes, d->name,
                       d->classes);
    return ML_OK;
}

void model_input_shape(const model_config *cfg, const dataset *d, int res, int *H, int *W)
{
    if (cfg->skeleton == SKEL_SEQUENCE)
        *H = 1, *W = d->seq_len;
    else
        *H = *W = res;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Everything that decides the weights, as key=value; a resume must match it exactly. */
static void config_string(const train_config *c, const model_config *cfg, size_t limit, char *buf, size_t n)
{
    snprintf(buf, n,
             "model=%s;classes=%d;data=%s;limit=%zu;res=%d;batch=%d;epochs=%d;lr=%.17g;min_lr=%.17g;"
             "warmup_lr=%.17g;weight_decay=%.17g;warmup_epochs=%.17g;drop_path=%.17g;smoothing=%.17g;"
             "clip_grad=%.17g;seed=%llu",
             cfg->name, cfg->num_classes, c->data, limit, c->res, c->batch, c->epochs, c->lr, c->min_lr,
             c->warmup_lr, c->weight_decay, c->warmup_epochs, c->drop_path, c->smoothing, c->clip_grad,
             (unsigned long long)c->seed);
    if (c->res_start > 0) /* likewise */
        snprintf(buf + strlen(buf), n - strlen(buf), ";res_start=%d;res_ramp=%d,%d", c->res_start, c->res_ramp[0],
                 c->res_ramp[1]);
    if (c->random_erase > 0) /* likewise */
        snprintf(buf + strlen(buf), n - strlen(buf), ";random_erase=%.17g", c->random_erase);
    if (c->init) /* only when given, so the states of runs without it stay resumable */
        snprintf(buf + strlen(buf), n - strlen(buf), ";init=%s", c->init);
    if (c->steps > 0) /* a stream: what decides its weights besides */
        snprintf(buf + strlen(buf), n - strlen(buf), ";steps=%ld;eval_every=%ld;warmup_steps=%ld;vocab=%d;seq_len=%d",
                 c->steps, c->eval_every, c->warmup_steps, cfg->vocab, c->seq_len);
}

/* Where key (klen bytes, its '=' included) starts in the key=value list b, or NULL. */
static const char *find_key(const char *b, const char *key, size_t klen)
{
    for (const char *p = b; p && *p;) {
        if (!strncmp(p, key, klen))
            return p;
        p = strchr(p, ';');
        p = p ? p + 1 : NULL;
    }
    return NULL;
}

/* The length of tok's key with its '=' (all of tok when it has none). */
static size_t key_len(const char *tok)
{
    const char *eq = strchr(tok, '=');
    return eq ? (size_t)(eq - tok) + 1 : strlen(tok);
}

/* For the mismatch message: the first key=value of the state's list a that the run's list b does
 * not have, else the first key of b that a lacks (a setting the state's run did not give). */
static void first_difference(const char *a, const char *b, char *out, size_t n)
{
    char ca[2048], *save = NULL;
    snprintf(ca, sizeof ca, "%s", a);
    for (char *tok = strtok_r(ca, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        const char *p = find_key(b, tok, key_len(tok));
        const size_t vlen = p ? strcspn(p, ";") : 0;
        if (!p || vlen != strlen(tok) || strncmp(p, tok, vlen)) {
            snprintf(out, n, "'%s' where this run has '%.*s'", tok, (int)vlen, p ? p : "");
            return;
        }
    }
    snprintf(ca, sizeof ca, "%s", b);
    save = NULL;
    for (char *tok = strtok_r(ca, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        const size_t klen = key_len(tok);
        if (!find_key(a, tok, klen)) {
            snprintf(out, n, "no '%.*s' where this run has '%s'", (int)(klen - (tok[klen - 1] == '=')), tok, tok);
            return;
        }
    }
    snprintf(out, n, "a different configuration");
}

/* ---- the state between steps ---- */

typedef struct {
    model m;
    model_trainer t;  /* the plain step's; unused under --data-parallel */
    model_shards sh;  /* --data-parallel: the batch's parts (sh.n 0: off) */
    adamw o;
    dataset d;
    char config[2048];
    char state_path[1024];
    long steps_per_epoch, step;
    long total;       /* steps of the whole run */
    int epochs;       /* epochs, or a stream's evaluation rounds (steps_per_epoch each, the last may be short) */
    int stream;       /* a generated task: fresh samples every step, sample indices counted from 0 */
    int epoch;        /* 0-based: the epoch being run */
    int cur_res;      /* the resolution m is planned at (train_res_at of the epoch) */
    long batch_pos;   /* batches of it done */
    double seconds;   /* training seconds so far */
    train_result *r;
} run;

static ml_status log_json(const train_result *r, char **out)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < r->n_log; i++) {
        const train_epoch *e = &r->log[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "epoch", e->epoch);
        cJSON_AddNumberToObject(o, "step", (double)e->step);
        cJSON_AddNumberToObject(o, "lr", e->lr);
        cJSON_AddNumberToObject(o, "train_loss", e->train_loss);
        cJSON_AddNumberToObject(o, "test_top1", e->test_top1);
        cJSON_AddNumberToObject(o, "test_top5", e->test_top5);
        cJSON_AddNumberToObject(o, "test_loss", e->test_loss);
        cJSON_AddNumberToObject(o, "seconds", e->seconds);
        cJSON_AddItemToArray(a, o);
    }
    *out = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return *out ? ML_OK : ml_fail(ML_ERR_NOMEM, "out of memory writing the training log");
}

/* OUT.state (weights, moments, position, configuration, curve), then OUT (weights alone). */
static ml_status save_checkpoint(run *u, const char *out)
{
    model *m = &u->m;
    st_entry *e = ml_calloc((size_t)m->n_params + 2, sizeof *e, "checkpoint table");
    if (!e)
        return ML_ERR_NOMEM;
    model_param_entries(m, e);
    e[m->n_params] = (st_entry){.name = "optim.m", .ndim = 1, .shape = {(int64_t)u->o.floats}, .data = u->o.m};
    e[m->n_params + 1] = (st_entry){.name = "optim.v", .ndim = 1, .shape = {(int64_t)u->o.floats}, .data = u->o.v};
    char epoch[32], pos[32], step[32], adam[32], secs[48], *log = NULL;
    snprintf(epoch, sizeof epoch, "%d", u->epoch);
    snprintf(pos, sizeof pos, "%ld", u->batch_pos);
    snprintf(step, sizeof step, "%ld", u->step);
    snprintf(adam, sizeof adam, "%ld", u->o.step);
    snprintf(secs, sizeof secs, "%.17g", u->seconds);
    ml_status s = log_json(u->r, &log);
    const char *meta[] = {"format", "mixerlab training state", "config", u->config, "epoch", epoch,
                          "batch", pos, "step", step, "adam_step", adam, "seconds", secs,
                          "log", log ? log : "[]", NULL};
    if (s == ML_OK)
        s = st_write(u->state_path, e, m->n_params + 2, meta);
    free(e);
    free(log);
    return s == ML_OK ? model_save(m, out) : s;
}

static ml_status parse_long_meta(const st_file *f, const char *key, long lo, long hi, long *out)
{
    const char *v = st_meta(f, key);
    char *end;
    errno = 0;
    const long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi)
        return ml_fail(ML_ERR_FORMAT, "'%s': training state '%s' is missing or out of range", f->path, key);
    *out = x;
    return ML_OK;
}

/* A number of the state's curve; NAN when missing or not a number (a damaged state file). */
static double log_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* An integer of the curve: 0 unless a finite number in 0..1e15 (no undefined conversion). */
static long log_int(const cJSON *o, const char *key)
{
    const double v = log_num(o, key);
    return v >= 0 && v <= 1e15 ? (long)v : 0;
}

static void restore_log(train_result *r, const char *json)
{
    cJSON *a = json ? cJSON_Parse(json) : NULL, *o;
    cJSON *list = cJSON_IsArray(a) ? a : NULL;
    r->n_log = 0;
    cJSON_ArrayForEach(o, list)
    {
        if (r->n_log == (int)(sizeof r->log / sizeof r->log[0]))
            break;
        train_epoch *e = &r->log[r->n_log++];
        e->epoch = (int)(log_int(o, "epoch") > TRAIN_MAX_EPOCHS ? 0 : log_int(o, "epoch"));
        e->step = log_int(o, "step");
        e->lr = log_num(o, "lr"), e->train_loss = log_num(o, "train_loss");
        e->test_top1 = log_num(o, "test_top1"), e->test_top5 = log_num(o, "test_top5");
        e->test_loss = log_num(o, "test_loss"), e->seconds = log_num(o, "seconds");
    }
    cJSON_Delete(a);
}

static ml_status load_state(run *u)
{
    st_file f;
    ml_status s = st_open(&f, u->state_path);
    if (s == ML_ERR_IO)
        return ml_fail(ML_ERR_USAGE, "--resume: there is no training state '%s' to resume from (%s)", u->state_path,
                       ml_last_error());
    ML_TRY(s);
    const char *fmt = st_meta(&f, "format"), *cfg = st_meta(&f, "config");
    char diff[2200];
    if (!fmt || strcmp(fmt, "mixerlab training state") || !cfg)
        s = ml_fail(ML_ERR_FORMAT, "'%s' is not a mixerlab training state", u->state_path);
    else if (strcmp(cfg, u->config)) {
        first_difference(cfg, u->config, diff, sizeof diff);
        s = ml_fail(ML_ERR_USAGE, "--resume: '%s' is from another training: it has %s", u->state_path, diff);
    }
    long epoch = 0, pos = 0, step = 0, adam = 0;
    if (s == ML_OK)
        s = parse_long_meta(&f, "epoch", 0, TRAIN_MAX_EPOCHS, &epoch);
    if (s == ML_OK)
        s = parse_long_meta(&f, "batch", 0, u->steps_per_epoch, &pos);
    if (s == ML_OK)
        s = parse_long_meta(&f, "step", 0, u->total, &step);
    if (s == ML_OK)
        s = parse_long_meta(&f, "adam_step", 0, step, &adam);
    if (s == ML_OK && step != epoch * u->steps_per_epoch + pos)
        s = ml_fail(ML_ERR_FORMAT, "'%s': step %ld is not epoch %ld, batch %ld", u->state_path, step, epoch, pos);
    const int64_t shape[1] = {(int64_t)u->o.floats};
    if (s == ML_OK)
        s = model_load(&u->m, &f, 1);
    if (s == ML_OK)
        s = st_load(&f, "optim.m", 1, shape, u->o.m);
    if (s == ML_OK)
        s = st_load(&f, "optim.v", 1, shape, u->o.v);
    if (s == ML_OK) {
        const char *secs = st_meta(&f, "seconds");
        u->seconds = secs ? strtod(secs, NULL) : 0.0;
        u->epoch = (int)epoch, u->batch_pos = pos, u->step = step, u->o.step = adam;
        restore_log(u->r, st_meta(&f, "log"));
        if (u->r->n_log) {
            const train_epoch *e = &u->r->log[u->r->n_log - 1];
            u->r->top1 = e->test_top1, u->r->top5 = e->test_top5, u->r->loss = e->test_loss;
        }
    }
    st_close(&f);
    return s;
}

/* ---- evaluation: the inference forward over the test split ---- */

static ml_status forward_model(void *p, const float *x, const float **logits)
{
    model *m = p;
    model_forward(m, x, NULL, NULL);
    *logits = m->logits;
    return ML_OK;
}

/* The model cfg planned and allocated at batch B and res x res with the weights of from (whose
 * parameters setup checked do not depend on the resolution). */
static ml_status model_at_res(const model *from, int B, int res, model *to)
{
    model_config cfg = from->cfg;
    memset(to, 0, sizeof *to);
    ml_status s = model_plan(to, &cfg, B, res, res);
    ML_ASSERT(s != ML_OK || to->param_floats == from->param_floats);
    if (s == ML_OK)
        s = model_alloc(to);
    if (s == ML_OK)
        memcpy(to->weights.base, from->weights.base, from->weights.used);
    if (s != ML_OK)
        model_free(to);
    return s;
}

static ml_status evaluate(run *u, size_t limit, int res, class_metrics *cm)
{
    const size_t n = limit && limit < u->d.n[DATA_TEST] ? limit : u->d.n[DATA_TEST];
    memset(cm, 0, sizeof *cm);
    if (u->cur_res == res)
        return metrics_eval(&u->d, n, u->m.B, res, u->m.cfg.num_classes, forward_model, &u->m, cm);
    model e; /* progressive resizing: m trains at a lower resolution than the evaluation's */
    ML_TRY(model_at_res(&u->m, u->m.B, res, &e));
    const ml_status s = metrics_eval(&u->d, n, e.B, res, e.cfg.num_classes, forward_model, &e, cm);
    model_free(&e);
    return s;
}

int train_res_at(const train_config *c, int epoch)
{
    if (c->res_start <= 0 || c->res_start == c->res)
        return c->res;
    const int e = epoch + 1, a = c->res_ramp[0], b = c->res_ramp[1];
    if (e <= a)
        return c->res_start;
    if (e > b)
        return c->res;
    /* a < e <= b: the (e - a)-th of b - a + 1 equal steps from res_start towards res, down to a multiple of 8 */
    const long r = c->res_start + (long)(c->res - c->res_start) * (e - a) / (b - a + 1);
    const int lo = c->res_start < c->res ? c->res_start : c->res, hi = c->res_start < c->res ? c->res : c->res_start;
    const int r8 = (int)(r / 8 * 8);
    return r8 < lo ? lo : r8 > hi ? hi : r8;
}

/* Plans the model at res when it is at another (progressive resizing): the weights move across, the
 * training buffers are made again for the new shapes; AdamW's moments (laid out like the weights) stay.
 * On an error the trainer is gone and the run ends. */
static ml_status switch_res(run *u, const train_config *c, int res)
{
    if (res == u->cur_res)
        return ML_OK;
    if (c->progress)
        fprintf(stderr, "epoch %d on: training at %dx%d (was %dx%d)\n", u->epoch + 1, res, res, u->cur_res, u->cur_res);
    ML_ASSERT(!u->sh.n); /* setup refuses --data-parallel with --res-start */
    model nm;
    model_train_free(&u->t); /* first, so that the two models side by side hold less than a training step */
    ML_TRY(model_at_res(&u->m, u->m.B, res, &nm));
    model_free(&u->m);
    u->m = nm;
    u->cur_res = res;
    return model_train_init(&u->t, &u->m);
}

/* ---- the loop ---- */

static void progress(const run *u, const train_config *c, double loss, double ips, double lr)
{
    const long left = u->total - u->step;
    const double eta = ips > 0 ? (double)left * c->batch / ips : 0;
    if (u->stream)
        fprintf(stderr, "step %ld/%ld  loss %.4f  lr %.3g  %.1f sequences/s  ETA %dm%02ds\n", u->step, u->total, loss,
                lr, ips, (int)(eta / 60), (int)fmod(eta, 60));
    else
        fprintf(stderr, "epoch %d/%d  step %ld/%ld  loss %.4f  lr %.3g  %.1f img/s  ETA %dm%02ds\n", u->epoch + 1,
                u->epochs, u->step, u->total, loss, lr, ips, (int)(eta / 60), (int)fmod(eta, 60));
}

/* Steps of epoch e: steps_per_epoch, except a stream's last round, which ends at the step budget. */
static long epoch_steps(const run *u, int e)
{
    const long left = u->total - (long)e * u->steps_per_epoch;
    return left < u->steps_per_epoch ? left : u->steps_per_epoch;
}

/* One optimiser step on one batch; the loss, or a runtime error when it is not finite. */
static ml_status train_step(run *u, const train_config *c, const float *x, const int32_t *labels,
                            const lr_schedule *sch, float *drop, double *loss_out, double *lr_out)
{
    model *m = &u->m;
    if (drop) {
        rng_state rng;
        rng_seed(&rng, c->seed ^ (0x64726f70ULL + 0x9E3779B97F4A7C15ULL * (uint64_t)(u->step + 1)));
        model_drop_path_scales(m, c->drop_path, &rng, drop);
    }
    float loss;
    float *grads;
    if (u->sh.n) {
        loss = model_shards_step(&u->sh, x, (const int *)labels, (float)c->smoothing, drop);
        grads = model_shards_grads(&u->sh);
    } else {
        model_train_zero_grads(&u->t);
        model_forward_train(&u->t, x, drop);
        loss = model_backward(&u->t, (const int *)labels, (float)c->smoothing, drop);
        grads = (float *)u->t.grad_arena.base;
    }
    if (!isfinite(loss))
        return ml_fail(ML_ERR_RUNTIME,
                       "the loss is %s at step %ld (epoch %d): training stopped; the last checkpoint is kept "
                       "(try a lower --lr or --clip-grad)",
                       isnan(loss) ? "NaN" : "infinite", u->step + 1, u->epoch + 1);
    if (c->clip_grad > 0)
        grad_clip(&u->o, grads, c->clip_grad);
    const double lr = lr_at(sch, u->step);
    adamw_step(&u->o, (float *)m->weights.base, grads, lr);
    u->step++;
    *loss_out = loss, *lr_out = lr;
    return ML_OK;
}

/* The batches of the current epoch from batch_pos on; checkpoints on time and on a stop request. */
static ml_status run_epoch(run *u, const train_config *c, const lr_schedule *sch, size_t *order, float *drop,
                           double *loss_sum, double *lr)
{
    const dataset *d = &u->d;
    const long steps = epoch_steps(u, u->epoch);
    const size_t n = (size_t)steps * c->batch;
    uint64_t aug;
    if (u->stream) { /* the stream's samples in order: sample i is a pure function of (seed, i) */
        const size_t first = (size_t)u->epoch * u->steps_per_epoch * c->batch;
        for (size_t i = 0; i < n; i++)
            order[i] = first + i;
        aug = c->seed ^ 0x73747265616dULL;
    } else {
        dataset_epoch_order(order, d->n[DATA_TRAIN], c->seed, u->epoch);
        aug = c->seed ^ (0x6175676dULL * (uint64_t)(u->epoch + 1));
    }
    loader *l = NULL;
    ML_TRY(loader_start(&l, d, DATA_TRAIN, order, n, c->batch, u->cur_res, 1, aug, (size_t)u->batch_pos));
    ml_status s = ML_OK;
    double last_print = now_s(), last_ckpt = now_s(), t_mark = now_s();
    long steps_mark = u->step;
    while (s == ML_OK && u->batch_pos < steps) {
        const float *x;
        const int32_t *labels;
        int count;
        if ((s = loader_next(l, &x, &labels, &count)) != ML_OK)
            break;
        ML_ASSERT(count == c->batch);
        const double t0 = now_s();
        double loss = 0;
        s = train_step(u, c, x, labels, sch, drop, &loss, lr);
        if (s != ML_OK)
            break;
        u->seconds += now_s() - t0;
        u->batch_pos++;
        *loss_sum += loss;
        const double t = now_s();
        if (c->progress && (t - last_print >= 5.0 || u->batch_pos == steps)) {
            progress(u, c, loss, (double)(u->step - steps_mark) * c->batch / (t - t_mark), *lr);
            last_print = t;
        }
        const int stop = c->stop_requested && c->stop_requested();
        if (stop || (c->checkpoint_s > 0 && t - last_ckpt >= c->checkpoint_s && u->batch_pos < steps)) {
            s = save_checkpoint(u, c->out);
            last_ckpt = now_s();
            if (s == ML_OK && stop)
                u->r->stopped = 1;
            if (stop)
                break;
        }
    }
    loader_stop(l);
    return s;
}

static ml_status setup(run *u, const train_config *c)
{
    model_config cfg;
    ML_TRY(model_config_from_name(c->model, &cfg));
    if (c->epochs < 1 || c->epochs > TRAIN_MAX_EPOCHS || c->batch < 1 ||
        (cfg.skeleton != SKEL_SEQUENCE && c->res < MODEL_MIN_RES))
        return ml_fail(ML_ERR_USAGE, "train: epochs 1..%d, batch >= 1 and resolution >= %d are needed",
                       TRAIN_MAX_EPOCHS, MODEL_MIN_RES);
    if (!(c->lr > 0) || !(c->weight_decay >= 0) || !(c->smoothing >= 0 && c->smoothing < 1) ||
        !(c->drop_path >= 0 && c->drop_path < 1) || !(c->warmup_epochs >= 0) ||
        !(c->random_erase >= 0 && c->random_erase <= 1))
        return ml_fail(ML_ERR_USAGE, "train: lr > 0, weight decay >= 0, smoothing and drop path in [0, 1), "
                                     "random erasing in [0, 1] and warm-up epochs >= 0 are needed");
    dataset_options o = model_dataset_options(&cfg);
    o.seq_len = c->seq_len;
    o.erase = c->random_erase;
    ML_TRY(dataset_open_with(&u->d, c->data, c->limit, &o));
    ML_TRY(model_classes_for(&cfg, &u->d, "train"));
    u->stream = u->d.stream;
    if (u->d.seq_len > 0 && c->random_erase > 0)
        return ml_fail(ML_ERR_USAGE, "train: --random-erase is for image datasets; %s is a generated task", u->d.name);
    if (u->stream && c->steps <= 0)
        return ml_fail(ML_ERR_USAGE, "train: %s is generated on the fly: give --steps N (evaluations every "
                                     "--eval-every K steps)", u->d.name);
    if (!u->stream && c->steps > 0)
        return ml_fail(ML_ERR_USAGE, "train: --steps is for the generated tasks; %s has a fixed training split "
                                     "(use --epochs)", u->d.name);
    if (c->n_eval_lens && cfg.skeleton != SKEL_SEQUENCE)
        return ml_fail(ML_ERR_USAGE, "train: --eval-seq-len is for the sequence model seq");
    if (c->res_start > 0 && (u->stream || cfg.skeleton == SKEL_SEQUENCE))
        return ml_fail(ML_ERR_USAGE, "train: --res-start is for images; %s is a sequence task", u->d.name);
    if (c->res_start > 0 && (c->res_start < MODEL_MIN_RES || c->res_start > MODEL_MAX_RES || c->res_ramp[0] < 0 ||
                             c->res_ramp[1] < c->res_ramp[0] || c->res_ramp[1] > c->epochs))
        return ml_fail(ML_ERR_USAGE, "train: --res-start %d --res-ramp %d,%d: want a resolution in %d..%d and "
                                     "0 <= A <= B <= the epochs (%d)",
                       c->res_start, c->res_ramp[0], c->res_ramp[1], MODEL_MIN_RES, MODEL_MAX_RES, c->epochs);
    if (u->stream) {
        const long every = c->eval_every > 0 ? c->eval_every : (c->steps + 19) / 20;
        u->steps_per_epoch = every < c->steps ? every : c->steps;
        u->total = c->steps;
        const long rounds = (c->steps + u->steps_per_epoch - 1) / u->steps_per_epoch;
        if (rounds > TRAIN_MAX_EPOCHS)
            return ml_fail(ML_ERR_USAGE, "train: %ld steps evaluated every %ld make more than %d evaluations",
                           c->steps, u->steps_per_epoch, TRAIN_MAX_EPOCHS);
        u->epochs = (int)rounds;
    } else {
        if (!u->d.n[DATA_TRAIN])
            return ml_fail(ML_ERR_USAGE, "train: %s has no training split (an image folder needs one: "
                                         "folder:dir=TEST,train=TRAIN)", u->d.source);
        u->steps_per_epoch = (long)(u->d.n[DATA_TRAIN] / (size_t)c->batch);
        if (u->steps_per_epoch < 1)
            return ml_fail(ML_ERR_USAGE, "train: %zu training images do not make one batch of %d",
                           u->d.n[DATA_TRAIN], c->batch);
        u->epochs = c->epochs;
        u->total = (long)c->epochs * u->steps_per_epoch;
    }
    config_string(c, &cfg, u->d.n[DATA_TRAIN], u->config, sizeof u->config);
    if (snprintf(u->state_path, sizeof u->state_path, "%s.state", c->out) >= (int)sizeof u->state_path)
        return ml_fail(ML_ERR_USAGE, "train: --out path is too long");
    int H, W;
    u->cur_res = train_res_at(c, 0); /* a resume moves to its epoch's resolution after loading the state */
    model_input_shape(&cfg, &u->d, u->cur_res, &H, &W);
    ML_TRY(model_plan(&u->m, &cfg, c->batch, H, W));
    ML_TRY(model_alloc(&u->m));
    model_init_random(&u->m, c->seed);
    if (c->init && !c->resume) { /* a resume takes the weights from the state instead */
        const ml_status s = model_load_file(&u->m, c->init, 0);
        if (s != ML_OK) {
            char why[768];
            snprintf(why, sizeof why, "%s", ml_last_error());
            return ml_fail(s, "train: --init: %s", why);
        }
    }
    if (c->data_parallel) {
        const int n = model_shards_count(omp_get_max_threads(), c->batch);
        if (c->res_start > 0)
            return ml_fail(ML_ERR_USAGE, "train: --data-parallel and --res-start do not go together yet");
        if (n < 2)
            return ml_fail(ML_ERR_USAGE, "train: --data-parallel needs at least 2 threads and a batch of 2 "
                                         "(threads %d, batch %d)", omp_get_max_threads(), c->batch);
        ML_TRY(model_shards_init(&u->sh, &u->m, n));
        /* the parts decide the bits: a state from another split is another configuration */
        snprintf(u->config + strlen(u->config), sizeof u->config - strlen(u->config), ";data_parallel=%d", n);
    } else {
        ML_TRY(model_train_init(&u->t, &u->m));
    }
    adamw_config ac = adamw_config_default();
    ac.lr = c->lr, ac.weight_decay = c->weight_decay;
    ML_TRY(adamw_init(&u->o, &ac, u->m.params, u->m.n_params, u->sh.n ? u->sh.t[0].offset : u->t.offset));
    u->r->memory_bytes = u->sh.n ? model_shards_step_bytes(&u->m, u->sh.n) : model_train_step_bytes(&u->m);
    if (c->res_start > 0) { /* the most any epoch of the schedule holds */
        model p;
        memset(&p, 0, sizeof p);
        ML_TRY(model_plan(&p, &cfg, c->batch, c->res, c->res));
        if (p.param_floats != u->m.param_floats) {
            model_free(&p);
            return ml_fail(ML_ERR_USAGE, "train: %s has other parameters at %dx%d than at %dx%d (a position "
                                         "embedding): --res-start cannot change its resolution",
                           cfg.name, c->res, c->res, u->cur_res, u->cur_res);
        }
        /* an epoch below --res evaluates through a second model planned at --res */
        const size_t eval_bytes = model_weight_bytes(&p) + model_activation_bytes(&p);
        size_t most = 0;
        for (int e = 0; e < u->epochs; e++) {
            const int r = train_res_at(c, e);
            if (e && r == train_res_at(c, e - 1))
                continue;
            model q;
            memset(&q, 0, sizeof q);
            const ml_status s = model_plan(&q, &cfg, c->batch, r, r);
            const size_t b = s == ML_OK ? model_train_step_bytes(&q) + (r != c->res ? eval_bytes : 0) : 0;
            model_free(&q);
            if (s != ML_OK)
                model_free(&p);
            ML_TRY(s);
            most = b > most ? b : most;
        }
        model_free(&p);
        u->r->memory_bytes = most;
    }
    return c->resume ? load_state(u) : ML_OK;
}

static void teardown(run *u)
{
    if (u->o.m)
        adamw_free(&u->o);
    if (u->t.m)
        model_train_free(&u->t);
    if (u->sh.n)
        model_shards_free(&u->sh); /* before m: the parts read its weights */
    model_free(&u->m);
    if (u->d.release)
        dataset_close(&u->d);
}

static ml_status finish_epoch(run *u, const train_config *c, double loss_sum, double lr, long steps)
{
    class_metrics cm;
    ML_TRY(evaluate(u, c->eval_limit, c->res, &cm));
    const double n = cm.count ? (double)cm.count : 1.0;
    train_epoch e = {u->epoch + 1, u->step, lr, steps ? loss_sum / steps : NAN, cm.top1 / n, cm.top5 / n,
                     cm.loss_sum / n, u->seconds};
    train_result *r = u->r;
    if (r->n_log == (int)(sizeof r->log / sizeof r->log[0]))
        memmove(r->log, r->log + 1, sizeof r->log - sizeof r->log[0]), r->n_log--;
    r->log[r->n_log++] = e;
    r->top1 = e.test_top1, r->top5 = e.test_top5, r->loss = e.test_loss, r->test_images = cm.count;
    if (c->progress && u->stream)
        fprintf(stderr, "step %ld/%ld: train loss %.4f, test accuracy %.2f%%, loss %.4f (%zu answers); %.0f s of "
                        "training\n",
                u->step, u->total, e.train_loss, 100 * e.test_top1, e.test_loss, cm.count, u->seconds);
    else if (c->progress)
        fprintf(stderr, "epoch %d/%d done: train loss %.4f, test top-1 %.2f%%, top-5 %.2f%%, loss %.4f (%zu images); "
                        "%.0f s of training\n",
                e.epoch, u->epochs, e.train_loss, 100 * e.test_top1, 100 * e.test_top5, e.test_loss, cm.count,
                u->seconds);
    if (c->on_epoch)
        c->on_epoch(c->ctx, &e);
    u->epoch++;
    u->batch_pos = 0;
    return save_checkpoint(u, c->out);
}

/* The trained weights on the test split at another sequence length: the task reopened at that
 * length, the model planned for it (the same parameters: a position embedding keeps its max_len). */
static ml_status evaluate_at_length(run *u, const train_config *c, int len, double *top1)
{
    dataset_options o = model_dataset_options(&u->m.cfg);
    o.seq_len = len;
    dataset d;
    ML_TRY(dataset_open_with(&d, c->data, c->limit, &o));
    model m;
    model_config cfg = u->m.cfg;
    memset(&m, 0, sizeof m);
    /* a batch of at most 2^18 tokens: the longest sequences one at a time */
    const int per = d.seq_len > 0 ? (int)((1L << 18) / d.seq_len) : c->batch;
    const int B = per < 1 ? 1 : per < c->batch ? per : c->batch;
    ml_status s = model_plan(&m, &cfg, B, 1, d.seq_len);
    if (s == ML_OK && m.param_floats != u->m.param_floats)
        s = ml_fail(ML_ERR_RUNTIME, "train: the model at length %d has other parameters", len);
    if (s == ML_OK)
        s = model_alloc(&m);
    class_metrics cm;
    memset(&cm, 0, sizeof cm);
    if (s == ML_OK) {
        memcpy(m.weights.base, u->m.weights.base, u->m.weights.used);
        const size_t n = c->eval_limit && c->eval_limit < d.n[DATA_TEST] ? c->eval_limit : d.n[DATA_TEST];
        s = metrics_eval(&d, n, B, c->res, cfg.num_classes, forward_model, &m, &cm);
    }
    *top1 = cm.count ? (double)cm.top1 / (double)cm.count : 0.0;
    if (s == ML_OK && c->progress)
        fprintf(stderr, "at %d tokens: test accuracy %.2f%% (%zu answers)\n", d.seq_len, 100 * *top1, cm.count);
    model_free(&m);
    dataset_close(&d);
    return s;
}

ml_status train_run(const train_config *c, train_result *r)
{
    memset(r, 0, sizeof *r);
    run *u = ml_calloc(1, sizeof *u, "training state");
    if (!u)
        return ML_ERR_NOMEM;
    u->r = r;
    ml_status s = setup(u, c);
    const long warmup = !u->stream          ? (long)llround(c->warmup_epochs * u->steps_per_epoch)
                        : c->warmup_steps >= 0 ? c->warmup_steps
                                               : u->total / 10;
    const lr_schedule sch = {c->lr, c->min_lr, c->warmup_lr, warmup, u->total};
    const size_t n_order = u->stream ? (size_t)u->steps_per_epoch * c->batch : u->d.n[DATA_TRAIN];
    size_t *order = s == ML_OK ? ml_malloc((n_order ? n_order : 1) * sizeof *order, "epoch order") : NULL;
    float *drop = NULL;
    if (s == ML_OK && !order)
        s = ML_ERR_NOMEM;
    if (s == ML_OK && c->drop_path > 0 &&
        !(drop = ml_malloc((size_t)model_block_count(&u->m) * c->batch * sizeof *drop, "drop path scales")))
        s = ML_ERR_NOMEM;
    if (s == ML_OK && c->progress && u->stream)
        fprintf(stderr, "training %s on %s (%s; %d tokens a sequence, generated), %ld steps of batch %d, evaluated "
                        "every %ld; memory planned: %.1f MiB%s\n",
                u->m.cfg.name, u->d.name, u->d.params, u->d.as_image ? 0 : u->d.seq_len, u->total, c->batch,
                u->steps_per_epoch, r->memory_bytes / 1048576.0, c->resume ? "; resumed" : "");
    else if (s == ML_OK && c->progress)
        fprintf(stderr, "training %s on %s (%zu images, %ld steps per epoch) at %dx%d, batch %d; memory planned: "
                        "%.1f MiB%s\n",
                u->m.cfg.name, u->d.name, u->d.n[DATA_TRAIN], u->steps_per_epoch, c->res, c->res, c->batch,
                r->memory_bytes / 1048576.0, c->resume ? "; resumed" : "");
    if (s == ML_OK && c->progress && c->res_start > 0)
        fprintf(stderr, "progressive resizing: epochs 1-%d at %dx%d, from epoch %d at %dx%d (evaluations at %dx%d)\n",
                c->res_ramp[0], c->res_start, c->res_start, c->res_ramp[1] + 1, c->res, c->res, c->res, c->res);
    const long step0 = u->step;
    const double sec0 = u->seconds;
    while (s == ML_OK && u->epoch < u->epochs && !r->stopped) {
        double loss_sum = 0, lr = 0;
        const long first = u->step;
        if ((s = switch_res(u, c, train_res_at(c, u->epoch))) != ML_OK)
            break;
        s = run_epoch(u, c, &sch, order, drop, &loss_sum, &lr);
        if (s == ML_OK && !r->stopped)
            s = finish_epoch(u, c, loss_sum, lr, u->step - first);
    }
    for (int i = 0; s == ML_OK && !r->stopped && i < c->n_eval_lens; i++)
        s = evaluate_at_length(u, c, c->eval_lens[i], &r->len_top1[i]);
    r->steps = u->step;
    r->epochs_done = u->epoch;
    r->train_seconds = u->seconds;
    r->images_per_s = u->seconds > sec0 ? (double)(u->step - step0) * c->batch / (u->seconds - sec0) : 0;
    free(order), free(drop);
    teardown(u);
    free(u);
    return s;
}
