/* mixerlab preprocess: an image folder through a model's evaluation
 * transform into one safetensors file (input [N,3,R,R] float32, labels [N]
 * int64), the batch `forward --input` reads. */
#include "data/loader.h"
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/cli_data.h"
#include "models/safetensors.h"

#include <stdlib.h>
#include <string.h>

static const char preprocess_usage[] =
    "usage: mixerlab preprocess --model M --data DIR --output X.safetensors [--res R] [--crop-pct P]\n"
    "                           [--interpolation bicubic|bilinear] [--limit N] [--skip-bad] [--workers N]\n"
    "\n"
    "Every image of an image folder (DIR/<class>/<image>.jpg|.jpeg|.png) through timm's\n"
    "evaluation transform with model M's published settings: decoded as Pillow does, the\n"
    "shorter side resized to floor(R / crop_pct) with PIL's filter, centre-cropped to R x R,\n"
    "divided by 255 and normalised with the model's mean and std. Writes tensor 'input'\n"
    "[N,3,R,R] float32 and 'labels' [N] int64; classes are numbered in sorted folder-name\n"
    "order and images come in sorted path order (timm's ImageFolder order); the metadata\n"
    "has the transform and the class names, one per line.\n"
    "\n"
    "  --res R      output size (default: the model's test size, 288 for MambaOut, 224 for\n"
    "               VMamba and Vim)\n"
    "  --crop-pct P, --interpolation I   override the model's (MambaOut 1.0 bicubic)\n"
    "  --limit N    the first N images\n"
    "  --skip-bad   leave out an image that cannot be decoded (a warning) instead of failing\n"
    "  --workers N  decoding threads (default: every core)\n"
    "\n"
    "example: mixerlab preprocess --model mambaout_tiny --data val/ --res 224 --output val224.safetensors\n";

typedef struct {
    const char *model, *data, *output;
    long res, limit, threads;
    data_flags df;
} preprocess_args;

static ml_status parse_preprocess(int argc, char **argv, preprocess_args *a)
{
    *a = (preprocess_args){.df = {.interp = -1}};
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->model),
        OPT_STRING("--data", &a->data),
        OPT_STRING("--output", &a->output),
        OPT_LONG("--res", &a->res, 16, 4096),
        OPT_LONG("--limit", &a->limit, 1, 1L << 40),
        DATA_FLAG_SPECS(a->df),
        OPT_END,
    };
    ML_TRY(args_parse("preprocess", argc, argv, specs, NULL, 0, NULL));
    if (!a->model)
        return ml_fail(ML_ERR_USAGE, "preprocess: --model is required (its transform settings; known: %s)",
                       model_zoo_names());
    if (!a->data)
        return ml_fail(ML_ERR_USAGE, "preprocess: --data DIR is required (an image folder)");
    if (!a->output)
        return ml_fail(ML_ERR_USAGE, "preprocess: --output X.safetensors is required");
    if (!a->df.workers)
        a->df.workers = cli_default_threads();
    return ML_OK;
}

/* Every image in timm's order into x and labels; *kept counts those decoded (skipped ones are left out). */
static ml_status gather(const dataset *d, size_t n, int res, float *x, int64_t *labels, size_t *kept)
{
    enum { CHUNK = 64 };
    size_t *order = ml_malloc((n ? n : 1) * sizeof *order, "image order");
    if (!order)
        return ML_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    loader *l = NULL;
    ml_status s = loader_start(&l, d, DATA_TEST, order, n, CHUNK, res, 0, 0, 0);
    const size_t per = (size_t)3 * res * res;
    size_t done = 0;
    *kept = 0;
    while (s == ML_OK) {
        const float *bx;
        const int32_t *bl;
        int count;
        if ((s = loader_next(l, &bx, &bl, &count)) != ML_OK || count == 0)
            break;
        for (int i = 0; i < count; i++) {
            if (bl[i] < 0)
                continue;
            memcpy(x + *kept * per, bx + (size_t)i * per, per * sizeof *x);
            labels[(*kept)++] = bl[i];
        }
        done += (size_t)count;
        if (done % (CHUNK * 16) == 0 || done == n)
            fprintf(stderr, "\rpreprocess: %zu / %zu images", done, n);
    }
    if (n >= CHUNK * 16)
        fputc('\n', stderr);
    loader_stop(l);
    free(order);
    return s;
}

/* The metadata: the model whose settings were used, the transform, the class names one per line. */
static ml_status write_output(const preprocess_args *a, const dataset *d, int res, const float *x,
                              const int64_t *labels, size_t kept)
{
    size_t names_len = 1;
    for (int c = 0; c < d->classes; c++)
        names_len += strlen(dataset_class_name(d, c)) + 1;
    char *names = ml_malloc(names_len, "class names");
    if (!names)
        return ML_ERR_NOMEM;
    names[0] = '\0';
    for (int c = 0, at = 0; c < d->classes; c++)
        at += sprintf(names + at, "%s%s", c ? "\n" : "", dataset_class_name(d, c));
    char transform[160];
    snprintf(transform, sizeof transform, "resize floor(%d / %g) %s, center crop %d, mean %g,%g,%g std %g,%g,%g", res,
             d->opt.crop_pct, d->opt.interpolation, res, d->opt.mean[0], d->opt.mean[1], d->opt.mean[2],
             d->opt.std[0], d->opt.std[1], d->opt.std[2]);
    const char *meta[] = {"model", a->model, "data", d->source, "transform", transform, "classes", names, NULL};
    const st_entry e[2] = {
        {.name = "input", .ndim = 4, .shape = {(int64_t)kept, 3, res, res}, .data = x},
        {.name = "labels", .ndim = 1, .shape = {(int64_t)kept}, .i64 = labels},
    };
    ml_status s = st_write(a->output, e, 2, meta);
    free(names);
    return s;
}

static int cmd_preprocess(int argc, char **argv)
{
    preprocess_args a;
    ML_TRY(parse_preprocess(argc, argv, &a));
    model_config cfg;
    ML_TRY(model_config_from_name(a.model, &cfg));
    dataset d;
    ML_TRY(cli_open_data(&d, a.data, a.limit > 0 ? (size_t)a.limit : 0, &cfg, &a.df));
    ml_status s = ML_OK;
    if (d.native_res)
        s = ml_fail(ML_ERR_USAGE, "preprocess: --data must be an image folder, not %s", d.name);
    const int res = (int)(a.res ? a.res : cfg.data.test_res);
    const size_t n = d.n[DATA_TEST];
    size_t floats = 0;
    if (s == ML_OK)
        s = ml_size_product(&floats, "the preprocessed images", 4, (const size_t[]){n ? n : 1, 3, (size_t)res,
                                                                                     (size_t)res}, sizeof(float));
    if (s == ML_OK)
        s = ml_check_fits((double)floats * sizeof(float) + (double)n * sizeof(int64_t), "the preprocessed images");
    float *x = s == ML_OK ? ml_malloc(floats * sizeof *x, "the preprocessed images") : NULL;
    int64_t *labels = x ? ml_malloc((n ? n : 1) * sizeof *labels, "labels") : NULL;
    if (s == ML_OK && !labels)
        s = ML_ERR_NOMEM;
    size_t kept = 0;
    if (s == ML_OK)
        s = gather(&d, n, res, x, labels, &kept);
    if (s == ML_OK && kept == 0)
        s = ml_fail(ML_ERR_FORMAT, "preprocess: no image of %s could be read (%zu skipped as bad)", d.source, n);
    if (s == ML_OK)
        s = write_output(&a, &d, res, x, labels, kept);
    if (s == ML_OK)
        printf("wrote input [%zu, 3, %d, %d] and labels [%zu] (%d classes%s) to %s\n", kept, res, res, kept,
               d.classes, kept < n ? ", bad images skipped" : "", a.output);
    free(x), free(labels);
    dataset_close(&d);
    return s;
}

const cli_command cli_preprocess = {"preprocess", "an image folder through a model's eval transform into safetensors",
                                    preprocess_usage, cmd_preprocess};
