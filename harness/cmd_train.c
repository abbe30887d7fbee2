/* mixerlab train: a zoo model with any mixer trained on a dataset on the CPU
 * (train/trainer.h), with checkpoints that a killed run resumes from. */
#include "harness/args.h"
#include "harness/cli.h"
#include "harness/signals.h"
#include "models/model.h"
#include "train/trainer.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char train_usage[] =
    "usage: mixerlab train --model M --data fashion-mnist --out CKPT.safetensors [--res R]\n"
    "                      [--epochs E] [--batch B] [--lr LR] [--min-lr LR] [--warmup-lr LR]\n"
    "                      [--weight-decay WD] [--warmup-epochs W] [--drop-path P] [--smoothing S]\n"
    "                      [--clip-grad N] [--random-erase P] [--seed S] [--limit N] [--eval-limit N]\n"
    "                      [--threads T [--data-parallel]] [--res-start R0 --res-ramp A,B]\n"
    "                      [--checkpoint-minutes M] [--init W] [--resume] [--quiet] [--json]\n"
    "       mixerlab train --model seq:... --data TASK[:key=value,...] --steps N [--eval-every K]\n"
    "                      [--warmup-steps W] [--eval-seq-len L1,L2,...] --out CKPT.safetensors ...\n"
    "\n"
    "Trains M from timm's initialisation (seeded) with AdamW (no decay on biases, norms,\n"
    "A_log, D, class token, position embedding), warm-up then cosine per step; evaluates\n"
    "on the test split after every epoch. Same configuration and threads, same weights.\n"
    "\n"
    "  --model M           a zoo name with overrides; the head takes the dataset's classes unless\n"
    "                      M names them (num_classes=K); seq takes a task's vocabulary too\n"
    "  --data D            fashion-mnist (Debian's dataset-fashion-mnist), fashion-mnist:dir=PATH, or\n"
    "                      folder:dir=VAL,train=TRAIN (image folders: training through timm's\n"
    "                      random-resized crop and flip, test through the model's transform),\n"
    "                      or a task: selective-copying, induction-heads, pathfinder (with\n"
    "                      parameters: selective-copying:seq_len=1024,tokens=16), sequential-fashion-mnist\n"
    "  --steps N           a task: N steps on fresh batches; the held-out set (its own seed) is\n"
    "                      evaluated every --eval-every K (N/20); --warmup-steps W (N/10);\n"
    "                      accuracy: the share of answers right\n"
    "  --eval-seq-len LS   then the held-out set at each length of LS (e.g. 256,1024,4096)\n"
    "  --out CKPT          the weights (timm names; loads into timm with strict=True) and, beside\n"
    "                      them CKPT.state (what --resume needs), written atomically every epoch,\n"
    "                      every --checkpoint-minutes (default 5) and on SIGINT/SIGTERM\n"
    "  --res R             input resolution (default 32; Fashion-MNIST's 28x28 is resized)\n"
    "  --res-start R0 --res-ramp A,B   epochs 1..A at R0, after B at R, between stepped\n"
    "                      linearly (multiples of 8; A alone: A,A); evaluations at R\n"
    "  --epochs E          default 10;  --batch B: default 64 (an epoch's last partial one is dropped)\n"
    "  --lr LR             peak learning rate (default 1e-3); --min-lr (1e-5), --warmup-lr (1e-6)\n"
    "  --weight-decay WD   default 0.05        --warmup-epochs W default 1\n"
    "  --drop-path P       stochastic depth of the last block (linear from 0; default 0)\n"
    "  --smoothing S       label smoothing (default 0.1);  --clip-grad N: clip the gradient norm to N\n"
    "  --random-erase P    images: timm's random erasing (noise box) with probability P (0)\n"
    "  --seed S            weights, order, augmentation and drop path (default 0)\n"
    "  --limit N           the first N training images; --eval-limit N: test images per evaluation\n"
    "  --threads T         CPU threads (default: all cores); --data-parallel: one per batch part\n"
    "  --init W            start from W's weights (same model); AdamW and the schedule start afresh\n"
    "  --resume            continue from CKPT.state; it must be from the same configuration\n"
    "  --quiet             no progress lines; --json: the result as one JSON object\n"
    "\n"
    "Exit codes: 0 done; 1 the loss stopped being finite (the last checkpoint is\n"
    "kept); 2 bad flags, or --resume without a state or from another\n"
    "configuration; 3 a dataset or checkpoint file missing or unwritable; 4 one damaged;\n"
    "5 not enough memory; 130 / 143 stopped by SIGINT / SIGTERM after writing a checkpoint.\n"
    "\n"
    "example: mixerlab train --model mambaout_test --data fashion-mnist --epochs 5 --out fm.safetensors\n"
    "         mixerlab train --model seq:mixer=ssm --data selective-copying:seq_len=256 --steps 3000 \\\n"
    "             --lr 2e-3 --smoothing 0 --out sc.safetensors\n";

typedef struct {
    train_config c;
    const char *device;
    long res, epochs, batch, threads, limit, eval_limit, steps, eval_every, warmup_steps;
    long eval_lens[TRAIN_MAX_EVAL_LENS];
    long res_start, res_ramp[2];
    int n_ramp;
    double ckpt_min;
    int quiet, json;
} train_args;

static ml_status parse_train(int argc, char **argv, train_args *a)
{
    memset(a, 0, sizeof *a);
    a->c = train_config_default();
    a->res = 32, a->epochs = a->c.epochs, a->batch = a->c.batch, a->ckpt_min = 5, a->warmup_steps = -1;
    const arg_spec specs[] = {
        OPT_STRING("--model", &a->c.model),
        OPT_STRING("--data", &a->c.data),
        OPT_STRING("--out", &a->c.out),
        OPT_STRING("--init", &a->c.init),
        OPT_LONG("--res", &a->res, MODEL_MIN_RES, MODEL_MAX_RES),
        OPT_LONG("--res-start", &a->res_start, MODEL_MIN_RES, MODEL_MAX_RES),
        OPT_LIST("--res-ramp", a->res_ramp, 0, TRAIN_MAX_EPOCHS, 2, &a->n_ramp, NULL),
        OPT_LONG("--epochs", &a->epochs, 1, TRAIN_MAX_EPOCHS),
        OPT_LONG("--batch", &a->batch, 1, 4096),
        OPT_DOUBLE("--lr", &a->c.lr, 1e-12, 1e30),
        OPT_DOUBLE("--min-lr", &a->c.min_lr, 0, 10),
        OPT_DOUBLE("--warmup-lr", &a->c.warmup_lr, 0, 10),
        OPT_DOUBLE("--weight-decay", &a->c.weight_decay, 0, 10),
        OPT_DOUBLE("--warmup-epochs", &a->c.warmup_epochs, 0, TRAIN_MAX_EPOCHS),
        OPT_DOUBLE("--drop-path", &a->c.drop_path, 0, 0.99),
        OPT_DOUBLE("--smoothing", &a->c.smoothing, 0, 0.99),
        OPT_DOUBLE("--clip-grad", &a->c.clip_grad, 0, 1e9),
        OPT_DOUBLE("--random-erase", &a->c.random_erase, 0, 1),
        OPT_U64("--seed", &a->c.seed),
        OPT_LONG("--limit", &a->limit, 1, 1L << 40),
        OPT_LONG("--eval-limit", &a->eval_limit, 1, 1L << 40),
        OPT_LONG("--steps", &a->steps, 1, 1L << 40),
        OPT_LONG("--eval-every", &a->eval_every, 1, 1L << 40),
        OPT_LONG("--warmup-steps", &a->warmup_steps, 0, 1L << 40),
        OPT_LIST("--eval-seq-len", a->eval_lens, 1, MODEL_MAX_SEQ, TRAIN_MAX_EVAL_LENS, &a->c.n_eval_lens, NULL),
        OPT_LONG("--threads", &a->threads, 1, 1024),
        OPT_DOUBLE("--checkpoint-minutes", &a->ckpt_min, 1e-5, 1e6),
        OPT_FLAG("--data-parallel", &a->c.data_parallel),
        OPT_FLAG("--resume", &a->c.resume),
        OPT_FLAG("--quiet", &a->quiet),
        OPT_FLAG("--json", &a->json),
        OPT_END,
    };
    ML_TRY(args_parse("train", argc, argv, specs, NULL, 0, NULL));
    if (!a->c.model)
        return ml_fail(ML_ERR_USAGE, "train: --model is required (known: %s)", model_zoo_names());
    if (!a->c.data || !a->c.out)
        return ml_fail(ML_ERR_USAGE, "train: --data and --out are required");
    a->c.res = (int)a->res, a->c.epochs = (int)a->epochs, a->c.batch = (int)a->batch;
    a->c.threads = (int)a->threads;
    a->c.limit = (size_t)a->limit, a->c.eval_limit = (size_t)a->eval_limit;
    a->c.checkpoint_s = 60 * a->ckpt_min;
    a->c.steps = a->steps, a->c.eval_every = a->eval_every, a->c.warmup_steps = a->warmup_steps;
    for (int i = 0; i < a->c.n_eval_lens; i++)
        a->c.eval_lens[i] = (int)a->eval_lens[i];
    if (!a->res_start != !a->n_ramp)
        return ml_fail(ML_ERR_USAGE, "train: --res-start and --res-ramp go together");
    a->c.res_start = (int)a->res_start; /* the ramp's order and its end against the epochs: train_run */
    a->c.res_ramp[0] = (int)a->res_ramp[0], a->c.res_ramp[1] = (int)a->res_ramp[a->n_ramp > 1];
    a->c.progress = !a->quiet;
    a->c.stop_requested = signals_pending;
    return ML_OK;
}

static void report(const train_args *a, const train_result *r)
{
    if (a->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", a->c.model);
        cJSON_AddStringToObject(o, "data", a->c.data);
        cJSON_AddNumberToObject(o, "top1", r->top1);
        cJSON_AddNumberToObject(o, "top5", r->top5);
        cJSON_AddNumberToObject(o, "loss", r->loss);
        cJSON_AddNumberToObject(o, "images", (double)r->test_images);
        cJSON_AddNumberToObject(o, "epochs", r->epochs_done);
        cJSON_AddNumberToObject(o, "steps", (double)r->steps);
        cJSON_AddNumberToObject(o, "train_seconds", r->train_seconds);
        cJSON_AddNumberToObject(o, "train_images_per_s", r->images_per_s);
        cJSON_AddNumberToObject(o, "memory_bytes", (double)r->memory_bytes);
        cJSON_AddStringToObject(o, "blas", cli_blas_info());
        if (a->c.n_eval_lens) {
            cJSON *l = cJSON_AddArrayToObject(o, "eval_seq_len");
            for (int i = 0; i < a->c.n_eval_lens; i++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "seq_len", a->c.eval_lens[i]);
                cJSON_AddNumberToObject(e, "top1", r->len_top1[i]);
                cJSON_AddItemToArray(l, e);
            }
        }
        cli_print_json(o);
        return;
    }
    if (a->c.steps > 0) {
        printf("%s on %s: %ld steps, %.0f s of training (%.1f sequences/s); test accuracy %.2f%% (%zu answers); "
               "weights in %s\n",
               a->c.model, a->c.data, r->steps, r->train_seconds, r->images_per_s, 100 * r->top1, r->test_images,
               a->c.out);
        for (int i = 0; i < a->c.n_eval_lens; i++)
            printf("  at seq_len %d: test accuracy %.2f%%\n", a->c.eval_lens[i], 100 * r->len_top1[i]);
        return;
    }
    printf("%s on %s: %d epochs, %ld steps, %.0f s of training (%.1f images/s); test top-1 %.2f%%, top-5 %.2f%%, "
           "loss %.4f (%zu images); weights in %s\n",
           a->c.model, a->c.data, r->epochs_done, r->steps, r->train_seconds, r->images_per_s, 100 * r->top1,
           100 * r->top5, r->loss, r->test_images, a->c.out);
}

static int cmd_train(int argc, char **argv)
{
    train_args a;
    ML_TRY(parse_train(argc, argv, &a));
    cli_set_threads(a.c.threads);
    signals_install();
    if (a.c.progress) /* the weights' bits depend on the kernel OpenBLAS picked for this CPU */
        fprintf(stderr, "blas: %s\n", cli_blas_info());
    train_result r;
    ML_TRY(train_run(&a.c, &r));
    if (r.stopped) {
        const int sig = signals_pending();
        return ml_fail((ml_status)signals_exit_code(sig),
                       "train: stopped by %s after step %ld; checkpoint written to %s(.state); rerun the same "
                       "command with --resume to continue",
                       signals_name(sig), r.steps, a.c.out);
    }
    report(&a, &r);
    return ML_OK;
}

const cli_command cli_train = {"train", "train a model on a dataset (CPU), with resumable checkpoints", train_usage,
                               cmd_train};
