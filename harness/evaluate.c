/* eval_run: the model planned for the dataset, every test batch through it (harness/evaluate.h). */
#include "harness/evaluate.h"

#include "data/loader.h"
#include "harness/cli.h"
#include "harness/target.h"
#include "harness/timer.h"

#include <stdlib.h>
#include <string.h>

/* The model for the dataset: its class count unless the spec names one; weights from the file or the seed. */
static ml_status setup_model(const eval_request *a, model_config cfg, const dataset *d, target *t)
{
    const backend *be;
    if (!cfg.classes_set)
        cfg.num_classes = d->classes;
    else if (cfg.num_classes < d->classes)
        return ml_fail(ML_ERR_USAGE, "eval: %s has %d classes but %s has %d", a->model, cfg.num_classes, d->name,
                       d->classes);
    ML_TRY(backend_by_name(a->device, &be));
    ML_TRY(target_plan_model(t, &cfg, (int)a->batch, (int)a->res, (int)a->res, be));
    ML_TRY(target_alloc(t));
    if (!a->weights)
        return target_init_random(t, a->seed);
    st_file f;
    ML_TRY(st_open(&f, a->weights));
    ml_status s = model_load(&t->m, &f, a->ignore_unexpected);
    st_close(&f);
    return s == ML_OK ? target_sync_weights(t) : s;
}

/* Every batch of the test split through the model; a short last batch is padded with its first image. */
static ml_status run_eval(target *t, const dataset *d, size_t n, int res, class_metrics *m)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    float *logits = ml_malloc(t->n_out * sizeof *logits, "logits");
    float *x = ml_malloc(t->n_in * sizeof *x, "input batch");
    if (!order || !logits || !x) {
        free(order), free(logits), free(x);
        return ML_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    loader *l = NULL;
    ml_status s = loader_start(&l, d, DATA_TEST, order, n, t->B, res, 0, 0, 0);
    const size_t per = (size_t)3 * res * res;
    const int classes = t->m.cfg.num_classes;
    while (s == ML_OK) {
        const float *bx;
        const int32_t *labels;
        int count;
        if ((s = loader_next(l, &bx, &labels, &count)) != ML_OK || count == 0)
            break;
        memcpy(x, bx, (size_t)count * per * sizeof *x);
        for (int k = count; k < t->B; k++)
            memcpy(x + (size_t)k * per, bx, per * sizeof *x);
        s = target_set_input(t, x);
        if (s == ML_OK) {
            target_run(t);
            s = target_output(t, logits);
        }
        if (s == ML_OK)
            metrics_add(m, logits, labels, count, classes);
    }
    loader_stop(l);
    free(order), free(logits), free(x);
    return s;
}

/* out->setup: the dataset's source and the transform it applied (d->opt, resolved from the model's cfg). */
static void describe_setup(const eval_request *rq, const dataset *d, eval_outcome *out)
{
    char transform[96] = "";
    if (!out->native)
        snprintf(transform, sizeof transform, ";crop_pct=%.15g;interpolation=%s", d->opt.crop_pct,
                 d->opt.interpolation);
    char seed[40];
    snprintf(seed, sizeof seed, "none (seed %llu)", (unsigned long long)rq->seed);
    snprintf(out->setup, sizeof out->setup, "data=%s;images=%zu;res=%d%s;weights=%s", d->source, out->m.count,
             out->res, transform, rq->weights ? rq->weights : seed);
}

ml_status eval_run(const eval_request *rq, eval_outcome *out)
{
    memset(out, 0, sizeof *out);
    model_config cfg;
    ML_TRY(model_config_from_name(rq->model, &cfg));
    dataset d;
    ML_TRY(cli_open_data(&d, rq->data, rq->limit > 0 ? (size_t)rq->limit : 0, &cfg, &rq->df));
    const int res = (int)(rq->res ? rq->res : d.native_res ? 32 : cfg.data.test_res);
    target t;
    memset(&t, 0, sizeof t);
    const size_t n = rq->limit > 0 && (size_t)rq->limit < d.n[DATA_TEST] ? (size_t)rq->limit : d.n[DATA_TEST];
    eval_request run = *rq; /* the model planned at the resolution and at most the images there are */
    run.res = res;
    run.batch = n > 0 && n < (size_t)rq->batch ? (long)n : rq->batch;
    ml_status s = setup_model(&run, cfg, &d, &t);
    const double t0 = timer_now_s();
    if (s == ML_OK)
        s = run_eval(&t, &d, n, res, &out->m);
    out->seconds = timer_now_s() - t0;
    out->res = res;
    snprintf(out->data_name, sizeof out->data_name, "%s", d.name);
    snprintf(out->source, sizeof out->source, "%s", d.source);
    out->native = d.native_res != 0;
    describe_setup(rq, &d, out);
    target_free(&t);
    dataset_close(&d);
    return s;
}
