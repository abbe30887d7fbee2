/* mixerlab grad: the loss of one labelled batch and the gradient of every
 * parameter, written under the parameters' own (timm) names, so that anyone
 * can hold them against PyTorch's autograd. */
#include "harness/args.h"
#include "harness/cli.h"
#include "models/model_train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char grad_usage[] =
    "usage: mixerlab grad --model M --weights W.safetensors --input X.safetensors\n"
    "                     --output G.safetensors [--threads N] [--ignore-unexpected]\n"
    "\n"
    "Runs the training forward of M on tensor 'input' [B,3,H,W] float32 of X, the mean softmax\n"
    "cross-entropy against X's 'labels' [B] (int64 or int32; no label smoothing, no drop path)\n"
    "and the backward, on the CPU. G gets 'loss' [1] and the gradient of every parameter under\n"
    "the parameter's own name (timm's), each with the parameter's shape. Prints the loss and\n"
    "the gradient norm. The sequence model seq reads 'input' [B,L] token ids and 'labels' [B,L]\n"
    "(I64 or I32; -1 where nothing is asked: the mean is over the labelled positions).\n"
    "\n"
    "  --model M           a zoo name with overrides (mixerlab list); the head has\n"
    "                      num_classes outputs (e.g. mambaout_test:num_classes=10)\n"
    "  --weights W         timm-named safetensors checkpoint of M\n"
    "  --ignore-unexpected accept checkpoint tensors that are not parameters of M\n"
    "  --input X           'input' and 'labels'\n"
    "  --output G          where the loss and the gradients go (atomically)\n"
    "  --threads N         CPU threads (default: all cores); the same N gives the same bits\n"
    "\n"
    "example: mixerlab grad --model mambaout_femto --weights femto.safetensors --input batch.safetensors \\\n"
    "           --output grads.safetensors\n";

typedef struct {
    const char *model, *weights, *input, *output;
    long threads;
    int ignore_unexpected;
} grad_args;

static ml_status parse_grad(int argc, char **argv, grad_args *a)
{
    *a = (grad_args){0};
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->model),
        OPT_STRING("--weights", &a->weights),
        OPT_STRING("--input", &a->input),
        OPT_STRING("--output", &a->output),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_FLAG("--ignore-unexpected", &a->ignore_unexpected),
        OPT_END,
    };
    ML_TRY(args_parse("grad", argc, argv, specs, NULL, 0, NULL));
    if (!a->model)
        return ml_fail(ML_ERR_USAGE, "grad: --model is required (known: %s)", model_zoo_names());
    if (!a->weights || !a->input || !a->output)
        return ml_fail(ML_ERR_USAGE, "grad: --weights, --input and --output are required");
    return ML_OK;
}

/* 'loss' and grad of every parameter, in table order. */
static ml_status write_grads(const model_trainer *t, const char *path, float loss)
{
    const model *m = t->m;
    st_entry *e = ml_calloc((size_t)m->n_params + 1, sizeof *e, "gradient table");
    if (!e)
        return ML_ERR_NOMEM;
    e[0] = (st_entry){.name = "loss", .ndim = 1, .shape = {1}, .data = &loss};
    model_param_entries(m, e + 1); /* the parameters' names and shapes, with the gradients as data */
    for (int i = 0; i < m->n_params; i++)
        e[1 + i].data = t->gdata[i];
    const char *meta[] = {"model", m->cfg.name, "content", "mean cross-entropy and its gradients", NULL};
    ml_status s = st_write(path, e, m->n_params + 1, meta);
    free(e);
    return s;
}

static int cmd_grad(int argc, char **argv)
{
    grad_args a;
    ML_TRY(parse_grad(argc, argv, &a));
    cli_set_threads((int)a.threads);
    model_config cfg;
    ML_TRY(model_config_from_name(a.model, &cfg));
    float *x = NULL;
    int *labels = NULL, B = 0, H = 0, W = 0;
    if (cfg.skeleton == SKEL_SEQUENCE) {
        H = 1;
        ML_TRY(cli_load_tokens(a.input, &x, &B, &W, &labels, cfg.vocab, cfg.num_classes));
    } else
        ML_TRY(cli_load_input(a.input, &x, &B, &H, &W, &labels, cfg.num_classes));
    model m;
    model_trainer t;
    memset(&t, 0, sizeof t);
    ml_status s = model_plan(&m, &cfg, B, H, W);
    if (s == ML_OK)
        s = model_alloc(&m);
    if (s == ML_OK)
        s = model_load_file(&m, a.weights, a.ignore_unexpected);
    if (s == ML_OK)
        s = model_train_init(&t, &m);
    if (s == ML_OK) {
        model_forward_train(&t, x, NULL);
        const float loss = model_backward(&t, labels, 0.0f, NULL);
        double sq = 0.0;
        for (int i = 0; i < m.n_params; i++)
            for (size_t k = 0; k < m.params[i].numel; k++)
                sq += (double)t.gdata[i][k] * t.gdata[i][k];
        if (!isfinite(loss))
            s = ml_fail(ML_ERR_RUNTIME, "grad: the loss is %g (not finite)", (double)loss);
        if (s == ML_OK)
            s = write_grads(&t, a.output, loss);
        if (s == ML_OK)
            printf("model %s, batch %d, %dx%d: loss %.8f, gradient norm %.6g, %d tensors written to %s\n", cfg.name, B,
                   H, W, (double)loss, sqrt(sq), m.n_params + 1, a.output);
    }
    model_train_free(&t);
    model_free(&m);
    free(x), free(labels);
    return s;
}

const cli_command cli_grad = {"grad", "the loss of a labelled batch and every parameter's gradient (safetensors)",
                              grad_usage, cmd_grad};
