/* mixerlab info / list: exact parameters, MACs and memory, computed from shapes. */
#include "harness/args.h"
#include "harness/cli.h"
#include "models/model.h"
#include "models/model_train.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char info_usage[] =
    "usage: mixerlab info MODEL[:key=value,...] [--res N] [--batch B] [--macs fvcore|gemm]\n"
    "                     [--scan gu|localmamba|vim] [--json]\n"
    "\n"
    "Exact parameter count, MACs (FLOPs = 2 x MACs) under the named convention, a\n"
    "per-stage table (grid, tokens L, width C, L against the long-sequence threshold\n"
    "6*C of the MambaOut paper's Eq. 6-7) and the memory the forward needs.\n"
    "\n"
    "  --res N      square input resolution, 32..4096 (default 224)\n"
    "  --seq-len L  the sequence model seq: tokens per sequence (default 1024)\n"
    "  --batch B    batch size (default 1)\n"
    "  --macs C     fvcore (default: conv + linear + LayerNorm at 5 per element, as the\n"
    "               MambaOut paper) or gemm (conv + linear only, as PyTorch's FlopCounter)\n"
    "  --scan S     how a selective scan is counted, per direction: gu (default, Gu's\n"
    "               9·L·E·N + L·E, used by VMamba), localmamba (5·L·E·N + 2·L·E, conv1d /\n"
    "               x_proj / dt_proj once per layer; reproduces Vim's 1.5G / 5.1G), vim (4·L·E·N)\n"
    "  --json       one JSON object instead of the table\n"
    "  --params     list every parameter tensor: name and shape, in checkpoint order\n"
    "\n"
    "Overrides after the model name change the skeleton's token mixer or block:\n"
    "  mixer=NAME (any mixer of 'mixerlab list'), kernel=K (odd), d_state=N, head_size=HS,\n"
    "  conv_ratio=F (E = int(F·C)), expansion=F (Hd = int(F·C)), act=gelu|silu,\n"
    "  norm=layernorm|rmsnorm; the sequence model seq also dim=D, depth=N, vocab=V,\n"
    "  pos_embed=0|1, max_len=L (the position embedding's length), tie=0|1\n"
    "\n"
    "examples: mixerlab info mambaout_tiny --res 384\n"
    "          mixerlab info mambaout_tiny:mixer=attn,head_size=32 --res 1024\n"
    "          mixerlab info vim_tiny --scan localmamba --json\n"
    "          mixerlab info seq:mixer=ssm,dim=64 --seq-len 4096\n";

typedef struct {
    const char *model;
    long res, batch, seq_len;
    int conv, scan; /* macs_convention, scan_convention */
    int json, params;
} info_args;

static const char *const conventions[] = {"fvcore", "gemm", NULL};
static const char *const scans[] = {"gu", "localmamba", "vim", NULL};

static ml_status parse_info(int argc, char **argv, info_args *a)
{
    *a = (info_args){.res = 224, .batch = 1, .seq_len = 1024, .conv = MACS_FVCORE, .scan = SCAN_GU};
    const arg_spec specs[] = {
        OPT_LONG("--res", &a->res, MODEL_MIN_RES, MODEL_MAX_RES),
        OPT_LONG("--batch", &a->batch, 1, MODEL_MAX_BATCH),
        OPT_LONG("--seq-len", &a->seq_len, 1, MODEL_MAX_SEQ),
        OPT_CHOICE("--macs", &a->conv, conventions, "convention"),
        OPT_CHOICE("--scan", &a->scan, scans, "convention"),
        OPT_FLAG("--json", &a->json),
        OPT_FLAG("--params", &a->params),
        OPT_END,
    };
    int n = 0;
    ML_TRY(args_parse("info", argc, argv, specs, &a->model, 1, &n));
    if (!n)
        return ml_fail(ML_ERR_USAGE, "info: MODEL is required (known: %s)", model_zoo_names());
    return ML_OK;
}

static void print_json(const model *m, const info_args *a, uint64_t params, uint64_t macs,
                       const model_stage_info *parts)
{
    const int S = m->cfg.num_stages;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", m->cfg.name);
    cJSON_AddStringToObject(o, "mixer", m->cfg.mixer->name);
    if (m->cfg.skeleton == SKEL_SEQUENCE)
        cJSON_AddNumberToObject(o, "seq_len", (double)m->seq);
    else
        cJSON_AddNumberToObject(o, "resolution", (double)a->res);
    cJSON_AddNumberToObject(o, "batch", (double)a->batch);
    cJSON_AddNumberToObject(o, "params", (double)params);
    cJSON_AddNumberToObject(o, "params_backbone", (double)model_backbone_param_count(m));
    cJSON_AddNumberToObject(o, "macs", (double)macs);
    cJSON_AddNumberToObject(o, "flops", 2.0 * (double)macs);
    cJSON_AddStringToObject(o, "convention", macs_convention_name((macs_convention)a->conv));
    cJSON_AddStringToObject(o, "scan_convention", scan_convention_name((scan_convention)a->scan));
    cJSON_AddStringToObject(o, "family", m->cfg.family);
    cJSON_AddNumberToObject(o, "weight_bytes", (double)model_weight_bytes(m));
    cJSON_AddNumberToObject(o, "activation_bytes", (double)model_activation_bytes(m));
    cJSON_AddNumberToObject(o, "training_bytes", (double)model_train_extra_bytes(m));
    cJSON *st = cJSON_AddArrayToObject(o, "stages");
    for (int s = 0; s < S; s++) {
        const model_stage_info *p = &parts[1 + s];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "stage", s);
        cJSON_AddNumberToObject(e, "height", p->h);
        cJSON_AddNumberToObject(e, "width", p->w);
        cJSON_AddNumberToObject(e, "tokens", (double)p->h * p->w);
        cJSON_AddNumberToObject(e, "channels", p->width);
        cJSON_AddNumberToObject(e, "depth", m->cfg.depths[s]);
        cJSON_AddNumberToObject(e, "long_sequence_threshold", 6.0 * p->width);
        cJSON_AddBoolToObject(e, "long_sequence", (double)p->h * p->w > 6.0 * p->width);
        cJSON_AddNumberToObject(e, "params", (double)p->params);
        cJSON_AddNumberToObject(e, "macs", (double)p->macs);
        cJSON_AddNumberToObject(e, "mixer_macs", (double)p->mixer_macs);
        cJSON_AddItemToArray(st, e);
    }
    cli_print_json(o);
}

static void print_table(const model *m, const info_args *a, uint64_t params, uint64_t macs,
                        const model_stage_info *parts)
{
    const int S = m->cfg.num_stages;
    char b1[32], b2[32];
    const block_config *bc = &m->blocks[0];
    printf("model        %s (mixer %s", m->cfg.name, m->cfg.mixer->name);
    if (m->cfg.mixer->uses & MIXER_USES_KERNEL)
        printf(", kernel %d", bc->mcfg.kernel);
    printf(")\n");
    if (m->cfg.skeleton == SKEL_SEQUENCE)
        printf("input        batch %ld, %zu tokens (vocabulary %d, %d classes per position%s)\n", a->batch, m->seq,
               m->cfg.vocab, m->cfg.num_classes, m->cfg.pos_embed ? ", learned positions" : "");
    else
        printf("input        batch %ld, %ldx%ld\n", a->batch, a->res, a->res);
    printf("parameters   %s (%.2f M)\n", cli_commas(params, b1, sizeof b1), params / 1e6);
    printf("MACs         %s (%.2f G, convention %s, scan %s)\n", cli_commas(macs, b1, sizeof b1), macs / 1e9,
           macs_convention_name((macs_convention)a->conv), scan_convention_name((scan_convention)a->scan));
    printf("FLOPs        %s (2 x MACs)\n", cli_commas(2 * macs, b2, sizeof b2));
    printf("memory       weights %.2f MiB, activations + workspace %.2f MiB (exact arena sizes)\n",
           model_weight_bytes(m) / 1048576.0, model_activation_bytes(m) / 1048576.0);
    printf("training     + %.2f MiB a step (gradients, AdamW's two moments, what the backward keeps, workspace)\n",
           model_train_extra_bytes(m) / 1048576.0);
    printf("\n%-7s %-11s %9s %6s %6s %-9s %12s %16s %7s\n", "part", "grid", "tokens L", "C", "6*C",
           "L > 6*C", "params", "MACs", "mixer");
    for (int i = 0; i < S + 2; i++) {
        const model_stage_info *p = &parts[i];
        char name[16], grid[24], mix[16];
        if (i == 0)
            snprintf(name, sizeof name, "stem");
        else if (i == S + 1)
            snprintf(name, sizeof name, "head");
        else
            snprintf(name, sizeof name, "stage%d", i - 1);
        if (i == S + 1) {
            const int per_pos = m->cfg.head == HEAD_SEQ; /* the sequence model predicts at every position */
            char tok[24];
            snprintf(tok, sizeof tok, "%zu", per_pos ? m->seq : (size_t)1);
            printf("%-7s %-11s %9s %6d %6s %-9s %12s %16s %7s\n", name, per_pos ? "per token" : "pooled", tok,
                   p->width, "", "", cli_commas(p->params, b1, sizeof b1), cli_commas(p->macs, b2, sizeof b2), "");
            continue;
        }
        snprintf(grid, sizeof grid, "%dx%d", p->h, p->w);
        long L = (long)p->h * p->w;
        if (i == 0)
            snprintf(mix, sizeof mix, "%s", "");
        else
            snprintf(mix, sizeof mix, "%.1f%%", p->macs ? 100.0 * (double)p->mixer_macs / (double)p->macs : 0.0);
        printf("%-7s %-11s %9ld %6d %6d %-9s %12s %16s %7s\n", name, grid, L, p->width, 6 * p->width,
               i == 0 ? "" : (L > 6L * p->width ? "yes" : "no"), cli_commas(p->params, b1, sizeof b1),
               cli_commas(p->macs, b2, sizeof b2), mix);
    }
}

static int cmd_info(int argc, char **argv)
{
    info_args a;
    ML_TRY(parse_info(argc, argv, &a));
    model_config cfg;
    ML_TRY(model_config_from_name(a.model, &cfg));
    model m;
    const int seq = cfg.skeleton == SKEL_SEQUENCE;
    ml_status s = model_plan(&m, &cfg, (int)a.batch, seq ? 1 : (int)a.res, seq ? (int)a.seq_len : (int)a.res);
    if (s != ML_OK) {
        model_free(&m);
        return s;
    }
    macs_opts o = {.convention = (macs_convention)a.conv, .scan = (scan_convention)a.scan};
    model_stage_info parts[MODEL_MAX_STAGES + 2];
    uint64_t macs = model_macs(&m, &o, parts), params = model_param_count(&m);
    if (a.params) {
        for (int i = 0; i < m.n_params; i++) {
            char shape[96];
            st_shape_str(shape, sizeof shape, m.params[i].ndim, m.params[i].shape);
            printf("%s %s\n", m.params[i].name, shape);
        }
    } else if (a.json)
        print_json(&m, &a, params, macs, parts);
    else
        print_table(&m, &a, params, macs, parts);
    model_free(&m);
    return 0;
}

static const char list_usage[] =
    "usage: mixerlab list\n"
    "\n"
    "The model zoo with exact parameters and MACs at 224x224 (fvcore and gemm\n"
    "conventions; the sequence model seq at 1,024 tokens), then the registered token mixers.\n";

static int cmd_list(int argc, char **argv)
{
    const arg_spec none[] = {OPT_END};
    ML_TRY(args_parse("list", argc, argv, none, NULL, 0, NULL));
    printf("%-16s %-14s %-20s %12s %18s %18s\n", "model", "depths", "dims", "params",
           "MACs fvcore", "MACs gemm");
    for (int i = 0; i < model_zoo_count(); i++) {
        model_config cfg;
        model m;
        ML_TRY(model_config_from_name(model_zoo_name(i), &cfg));
        const int seq = cfg.skeleton == SKEL_SEQUENCE;
        ml_status s = model_plan(&m, &cfg, 1, seq ? 1 : 224, seq ? 1024 : 224);
        if (s != ML_OK) {
            model_free(&m);
            return s;
        }
        macs_opts fv = {MACS_FVCORE, SCAN_GU}, gm = {MACS_GEMM, SCAN_GU};
        char depths[32], dims[40], b1[32], b2[32], b3[32];
        snprintf(depths, sizeof depths, "%d,%d,%d,%d", cfg.depths[0], cfg.depths[1], cfg.depths[2],
                 cfg.depths[3]);
        snprintf(dims, sizeof dims, "%d,%d,%d,%d", cfg.dims[0], cfg.dims[1], cfg.dims[2], cfg.dims[3]);
        printf("%-16s %-14s %-20s %12s %18s %18s\n", cfg.name, depths, dims,
               cli_commas(model_param_count(&m), b1, sizeof b1),
               cli_commas(model_macs(&m, &fv, NULL), b2, sizeof b2),
               cli_commas(model_macs(&m, &gm, NULL), b3, sizeof b3));
        model_free(&m);
    }
    printf("\nmixers:\n");
    for (int i = 0; i < mixer_count(); i++) {
        const mixer_ops *x = mixer_at(i);
        printf("  %-10s %s%s\n", x->name, x->summary, x->causal ? " [causal]" : "");
    }
    return 0;
}

const cli_command cli_info = {"info", "parameters, MACs, per-stage table and memory of a model", info_usage, cmd_info};
const cli_command cli_list = {"list", "the model zoo (with parameters and MACs at 224x224) and the mixers", list_usage,
                              cmd_list};
