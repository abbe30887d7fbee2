/* mixerlab eval: a model's accuracy on a dataset's test split. */
#include "data/loader.h"
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/target.h"
#include "train/metrics.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char eval_usage[] =
    "usage: mixerlab eval --model M --data DATASET [--weights W.safetensors] [--res R] [--batch B]\n"
    "                     [--limit N] [--device cpu|cuda] [--threads N] [--seed S] [--json]\n"
    "\n"
    "Top-1 and top-5 accuracy, the mean cross-entropy and the image count of model M on\n"
    "the test split of DATASET, and the images per second of the whole evaluation\n"
    "(batches are made ahead on a thread of their own). The head has the dataset's class\n"
    "count unless M names one (num_classes=K).\n"
    "\n"
    "  --data D     fashion-mnist (Debian's dataset-fashion-mnist), or fashion-mnist:dir=PATH\n"
    "  --weights W  a checkpoint in safetensors with timm's names; without it the\n"
    "               model is initialised from --seed (a baseline: chance accuracy)\n"
    "  --res R      input resolution (default 32; the 28x28 images are resized)\n"
    "  --batch B    images per forward (default 100)\n"
    "  --limit N    the first N test images\n"
    "  --json       one object: top1, top5, loss, images, images_per_s\n"
    "\n"
    "example: mixerlab eval --model mambaout_test --weights fm.safetensors --data fashion-mnist\n";

typedef struct {
    const char *model, *data, *weights, *device;
    long res, batch, limit, threads;
    uint64_t seed;
    int json, ignore_unexpected;
} eval_args;

static ml_status parse_eval(int argc, char **argv, eval_args *a)
{
    *a = (eval_args){.device = "cpu", .res = 32, .batch = 100};
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->model),
        OPT_STRING("--data", &a->data),
        OPT_STRING("--weights", &a->weights),
        OPT_STRING("--device", &a->device),
        OPT_LONG("--res", &a->res, 16, MODEL_MAX_RES),
        OPT_LONG("--batch", &a->batch, 1, 4096),
        OPT_LONG("--limit", &a->limit, 1, 1L << 40),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_U64("--seed", &a->seed),
        OPT_FLAG("--json", &a->json),
        OPT_FLAG("--ignore-unexpected", &a->ignore_unexpected),
        OPT_END,
    };
    ML_TRY(args_parse("eval", argc, argv, specs, NULL, 0, NULL));
    if (!a->model)
        return ml_fail(ML_ERR_USAGE, "eval: --model is required (known: %s)", model_zoo_names());
    if (!a->data)
        return ml_fail(ML_ERR_USAGE, "eval: --data is required (e.g. fashion-mnist)");
    return cli_check_device(a->device, "eval");
}

/* The model for the dataset: its class count unless the spec names one; weights from the file or the seed. */
static ml_status setup_model(const eval_args *a, const dataset *d, target *t)
{
    model_config cfg;
    const backend *be;
    ML_TRY(model_config_from_name(a->model, &cfg));
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

static void report(const eval_args *a, const dataset *d, const class_metrics *m, double seconds)
{
    const double n = m->count ? (double)m->count : 1.0;
    const double top1 = m->top1 / n, top5 = m->top5 / n, loss = m->loss_sum / n, ips = m->count / seconds;
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", a->model);
        cJSON_AddStringToObject(o, "data", d->name);
        cJSON_AddNumberToObject(o, "top1", top1);
        cJSON_AddNumberToObject(o, "top5", top5);
        cJSON_AddNumberToObject(o, "loss", loss);
        cJSON_AddNumberToObject(o, "images", (double)m->count);
        cJSON_AddNumberToObject(o, "images_per_s", ips);
        cli_print_json(o);
        return;
    }
    char b[32];
    printf("%s on %s (test split, %s images, %ldx%ld): top-1 %.2f%%, top-5 %.2f%%, mean loss %.4f; %.1f images/s\n",
           a->model, d->name, cli_commas(m->count, b, sizeof b), a->res, a->res, 100 * top1, 100 * top5, loss, ips);
}

static int cmd_eval(int argc, char **argv)
{
    eval_args a;
    ML_TRY(parse_eval(argc, argv, &a));
    cli_set_threads((int)a.threads);
    dataset d;
    ML_TRY(dataset_open(&d, a.data, 0));
    target t;
    memset(&t, 0, sizeof t);
    class_metrics m = {0};
    ml_status s = setup_model(&a, &d, &t);
    const size_t n = a.limit > 0 && (size_t)a.limit < d.n[DATA_TEST] ? (size_t)a.limit : d.n[DATA_TEST];
    const double t0 = timer_now_s();
    if (s == ML_OK)
        s = run_eval(&t, &d, n, (int)a.res, &m);
    if (s == ML_OK)
        report(&a, &d, &m, timer_now_s() - t0);
    target_free(&t);
    dataset_close(&d);
    return s;
}

const cli_command cli_eval = {"eval", "accuracy of a model on a dataset's test split (top-1, top-5, loss)", eval_usage,
                              cmd_eval};
