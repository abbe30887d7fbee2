/* mixerlab eval: a model's accuracy on a dataset's test split. */
#include "data/loader.h"
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/cli_data.h"
#include "harness/target.h"
#include "train/metrics.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char eval_usage[] =
    "usage: mixerlab eval --model M --data DATASET [--weights W.safetensors] [--res R] [--batch B]\n"
    "                     [--limit N] [--crop-pct P] [--interpolation bicubic|bilinear] [--skip-bad]\n"
    "                     [--workers N] [--device cpu|cuda] [--threads N] [--seed S] [--json]\n"
    "\n"
    "Top-1 and top-5 accuracy, the mean cross-entropy and the image count of model M on\n"
    "the test split of DATASET, and the images per second of the whole evaluation\n"
    "(batches are made ahead on a thread of their own). The head has the dataset's class\n"
    "count unless M names one (num_classes=K).\n"
    "\n"
    "  --data D     an image folder (DIR/<class>/<image>.jpg|.jpeg|.png, as timm's ImageFolder\n"
    "               reads it: classes in sorted folder-name order), given by its path or as\n"
    "               folder:dir=PATH; fashion-mnist (Debian's dataset-fashion-mnist), or\n"
    "               fashion-mnist:dir=PATH\n"
    "  --weights W  a checkpoint in safetensors with timm's names (timm's hub files for\n"
    "               MambaOut); without it the model is initialised from --seed (a baseline:\n"
    "               chance accuracy)\n"
    "  --res R      input resolution (default: for a folder, the model's test size as timm's\n"
    "               validate.py takes it, 288 for MambaOut and 224 for VMamba and Vim; 32 for\n"
    "               fashion-mnist, whose 28x28 images are resized)\n"
    "  --crop-pct P, --interpolation I   a folder's transform (default: the model's cfg,\n"
    "               MambaOut 1.0 bicubic, VMamba and Vim 0.875 bicubic): the shorter side is\n"
    "               resized to floor(R / P) with PIL's filter, then centre-cropped to R x R\n"
    "  --skip-bad   a folder's unreadable or damaged image is a warning and is left out\n"
    "               (counted as skipped) instead of an error\n"
    "  --workers N  threads decoding a folder's images, beside the model's (default: half\n"
    "               the cores, at least 1)\n"
    "  --batch B    images per forward (default 100)\n"
    "  --limit N    the first N test images (a folder: in timm's order)\n"
    "  --json       one object: top1, top5, loss, images, skipped, images_per_s\n"
    "\n"
    "examples:\n"
    "  mixerlab eval --model mambaout_femto --weights mambaout_femto.safetensors --data ~/imagenet/val --res 224\n"
    "  mixerlab eval --model mambaout_test --weights fm.safetensors --data fashion-mnist\n";

typedef struct {
    const char *model, *data, *weights, *device;
    long res, batch, limit, threads;
    uint64_t seed;
    int json, ignore_unexpected;
    data_flags df;
} eval_args;

static ml_status parse_eval(int argc, char **argv, eval_args *a)
{
    *a = (eval_args){.device = "cpu", .batch = 100, .df = {.interp = -1}};
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->model),
        OPT_STRING("--data", &a->data),
        OPT_STRING("--weights", &a->weights),
        OPT_STRING("--device", &a->device),
        OPT_LONG("--res", &a->res, 16, MODEL_MAX_RES),
        OPT_LONG("--batch", &a->batch, 1, 4096),
        OPT_LONG("--limit", &a->limit, 1, 1L << 40),
        DATA_FLAG_SPECS(a->df),
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
        return ml_fail(ML_ERR_USAGE, "eval: --data is required (an image folder's path, or fashion-mnist)");
    return cli_check_device(a->device, "eval");
}

/* The model for the dataset: its class count unless the spec names one; weights from the file or the seed. */
static ml_status setup_model(const eval_args *a, model_config cfg, const dataset *d, target *t)
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

static void report(const eval_args *a, const dataset *d, int res, const class_metrics *m, double seconds)
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
        cJSON_AddNumberToObject(o, "skipped", (double)m->skipped);
        cJSON_AddNumberToObject(o, "images_per_s", ips);
        cli_print_json(o);
        return;
    }
    char b[32], sk[64] = "";
    if (m->skipped)
        snprintf(sk, sizeof sk, ", %zu bad images skipped", m->skipped);
    printf("%s on %s (%s, %s images%s, %dx%d): top-1 %.2f%%, top-5 %.2f%%, mean loss %.4f; %.1f images/s\n",
           a->model, d->name, d->native_res ? "test split" : d->source, cli_commas(m->count, b, sizeof b), sk, res,
           res, 100 * top1, 100 * top5, loss, ips);
}

static int cmd_eval(int argc, char **argv)
{
    eval_args a;
    ML_TRY(parse_eval(argc, argv, &a));
    cli_set_threads((int)a.threads);
    model_config cfg;
    ML_TRY(model_config_from_name(a.model, &cfg));
    dataset d;
    ML_TRY(cli_open_data(&d, a.data, a.limit > 0 ? (size_t)a.limit : 0, &cfg, &a.df));
    const int res = (int)(a.res ? a.res : d.native_res ? 32 : cfg.data.test_res);
    target t;
    memset(&t, 0, sizeof t);
    class_metrics m = {0};
    const size_t n = a.limit > 0 && (size_t)a.limit < d.n[DATA_TEST] ? (size_t)a.limit : d.n[DATA_TEST];
    eval_args run = a; /* the model planned at the resolution and at most the images there are */
    run.res = res;
    run.batch = n > 0 && n < (size_t)a.batch ? (long)n : a.batch;
    ml_status s = setup_model(&run, cfg, &d, &t);
    const double t0 = timer_now_s();
    if (s == ML_OK)
        s = run_eval(&t, &d, n, res, &m);
    if (s == ML_OK)
        report(&a, &d, res, &m, timer_now_s() - t0);
    target_free(&t);
    dataset_close(&d);
    return s;
}

const cli_command cli_eval = {"eval", "accuracy of a model on a dataset's test split (top-1, top-5, loss)", eval_usage,
                              cmd_eval};
