/* mixerlab eval: a model's accuracy on a dataset's test split. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/evaluate.h"

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
    "               fashion-mnist:dir=PATH; or a generated task (selective-copying:seq_len=L,...,\n"
    "               induction-heads, pathfinder, sequential-fashion-mnist; see train --help):\n"
    "               its held-out set, accuracy the share of answers right (top1 in --json)\n"
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
    "  --json       one object: top1, top5, loss, images, skipped, images_per_s and setup (the\n"
    "               data, resolution, transform and weights, as a sweep's eval_setup column)\n"
    "\n"
    "examples:\n"
    "  mixerlab eval --model mambaout_femto --weights mambaout_femto.safetensors --data ~/imagenet/val --res 224\n"
    "  mixerlab eval --model mambaout_test --weights fm.safetensors --data fashion-mnist\n";

typedef struct {
    eval_request rq;
    long threads;
    int json;
} eval_args;

static ml_status parse_eval(int argc, char **argv, eval_args *a)
{
    *a = (eval_args){.rq = {.device = "cpu", .batch = 100, .df = {.interp = -1}}};
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->rq.model),
        OPT_STRING("--data", &a->rq.data),
        OPT_STRING("--weights", &a->rq.weights),
        OPT_STRING("--device", &a->rq.device),
        OPT_LONG("--res", &a->rq.res, 16, MODEL_MAX_RES),
        OPT_LONG("--batch", &a->rq.batch, 1, 4096),
        OPT_LONG("--limit", &a->rq.limit, 1, 1L << 40),
        DATA_FLAG_SPECS(a->rq.df),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_U64("--seed", &a->rq.seed),
        OPT_FLAG("--json", &a->json),
        OPT_FLAG("--ignore-unexpected", &a->rq.ignore_unexpected),
        OPT_END,
    };
    ML_TRY(args_parse("eval", argc, argv, specs, NULL, 0, NULL));
    if (!a->rq.model)
        return ml_fail(ML_ERR_USAGE, "eval: --model is required (known: %s)", model_zoo_names());
    if (!a->rq.data)
        return ml_fail(ML_ERR_USAGE, "eval: --data is required (an image folder's path, or fashion-mnist)");
    return cli_check_device(a->rq.device, "eval");
}

static void report(const eval_args *a, const eval_outcome *o)
{
    const class_metrics *m = &o->m;
    const double seconds = o->seconds;
    const int res = o->res;
    const double n = m->count ? (double)m->count : 1.0;
    const double top1 = m->top1 / n, top5 = m->top5 / n, loss = m->loss_sum / n, ips = m->count / seconds;
    if (a->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a->rq.model);
        cJSON_AddStringToObject(j, "data", o->data_name);
        cJSON_AddNumberToObject(j, "top1", top1);
        cJSON_AddNumberToObject(j, "top5", top5);
        cJSON_AddNumberToObject(j, "loss", loss);
        cJSON_AddNumberToObject(j, "images", (double)m->count);
        cJSON_AddNumberToObject(j, "skipped", (double)m->skipped);
        cJSON_AddNumberToObject(j, "images_per_s", ips);
        cJSON_AddStringToObject(j, "setup", o->setup);
        cli_print_json(j);
        return;
    }
    char b[32], sk[64] = "";
    if (o->seq_len) {
        printf("%s on %s (%s, %d tokens a sequence): accuracy %.2f%% over %s answers, mean loss %.4f\n",
               a->rq.model, o->data_name, o->source, o->seq_len, 100 * top1, cli_commas(m->count, b, sizeof b), loss);
        return;
    }
    if (m->skipped)
        snprintf(sk, sizeof sk, ", %zu bad images skipped", m->skipped);
    printf("%s on %s (%s, %s images%s, %dx%d): top-1 %.2f%%, top-5 %.2f%%, mean loss %.4f; %.1f images/s\n",
           a->rq.model, o->data_name, o->native ? "test split" : o->source, cli_commas(m->count, b, sizeof b), sk, res,
           res, 100 * top1, 100 * top5, loss, ips);
}

static int cmd_eval(int argc, char **argv)
{
    eval_args a;
    ML_TRY(parse_eval(argc, argv, &a));
    cli_set_threads((int)a.threads);
    eval_outcome o;
    ML_TRY(eval_run(&a.rq, &o));
    report(&a, &o);
    return ML_OK;
}

const cli_command cli_eval = {"eval", "accuracy of a model on a dataset's test split (top-1, top-5, loss)", eval_usage,
                              cmd_eval};
