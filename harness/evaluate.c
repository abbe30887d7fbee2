/* eval_run: the model planned for the dataset, every test batch through it (harness/evaluate.h). */
#include "harness/evaluate.h"

#include "harness/cli.h"
#include "harness/target.h"
#include "harness/timer.h"
#include "train/trainer.h"

#include <stdlib.h>
#include <string.h>

/* The model for the dataset: its class count unless the spec names one; weights from the file or the seed. */
static ml_status setup_model(const eval_request *a, model_config cfg, dataset *d, target *t)
{
    const backend *be;
    ML_TRY(model_classes_for(&cfg, d, "eval"));
    ML_TRY(backend_by_name(a->device, &be));
    int H, W;
    model_input_shape(&cfg, d, (int)a->res, &H, &W);
    ML_TRY(target_plan_model(t, &cfg, (int)a->batch, H, W, be));
    ML_TRY(target_alloc(t));
    return target_load_weights(t, a->weights, a->seed, a->ignore_unexpected);
}

typedef struct {
    target *t;
    float *logits;
} eval_ctx;

static ml_status forward_target(void *p, const float *x, const float **logits)
{
    eval_ctx *c = p;
    ML_TRY(target_set_input(c->t, x));
    target_run(c->t);
    ML_TRY(target_output(c->t, c->logits));
    *logits = c->logits;
    return ML_OK;
}

/* Every batch of the test split through the model (metrics_eval). */
static ml_status run_eval(target *t, const dataset *d, size_t n, int res, class_metrics *m)
{
    eval_ctx c = {t, ml_malloc(t->n_out * sizeof(float), "logits")};
    if (!c.logits)
        return ML_ERR_NOMEM;
    ml_status s = metrics_eval(d, n, t->B, res, t->m.cfg.num_classes, forward_target, &c, m);
    free(c.logits);
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
    if (d->seq_len > 0 && !d->as_image) /* a sequence task: its answers and length */
        snprintf(out->setup, sizeof out->setup, "data=%s;answers=%zu;seq_len=%d;weights=%s", d->source, out->m.count,
                 d->seq_len, rq->weights ? rq->weights : seed);
    else
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
    if (s == ML_OK && out->m.count == 0) /* not "0 of 0": every image was skipped as bad */
        s = ml_fail(ML_ERR_FORMAT, "eval: no image of %s could be read (%zu skipped as bad)", d.source,
                    out->m.skipped);
    out->seconds = timer_now_s() - t0;
    out->res = res;
    snprintf(out->data_name, sizeof out->data_name, "%s", d.name);
    snprintf(out->source, sizeof out->source, "%s", d.source);
    out->native = d.native_res != 0;
    out->seq_len = d.seq_len > 0 && !d.as_image ? d.seq_len : 0;
    describe_setup(rq, &d, out);
    target_free(&t);
    dataset_close(&d);
    return s;
}
