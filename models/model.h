/* The skeletons with a pluggable token mixer: MambaOut's hierarchical one
 * (timm's MambaOut), VMamba's, and Vim's isotropic one, all from the same
 * Gated CNN block. model_plan walks the architecture once and records
 * everything shape-derived (the parameter table with each tensor's named
 * slot, buffer sizes, per-part accounting) without touching memory;
 * model_alloc makes one arena per tensor group on the chosen backend;
 * model_forward is the one forward, written against the backend table. */
#ifndef MIXERLAB_MODEL_H
#define MIXERLAB_MODEL_H

#include "base/arena.h"
#include "blocks/conv2d.h"
#include "blocks/gated_block.h"
#include "models/safetensors.h"

#define MODEL_MAX_STAGES 4
#define MODEL_MAX_BLOCKS 128
#define MODEL_MIN_RES 32
#define MODEL_MAX_RES 4096
#define MODEL_MAX_BATCH 65536
#define MODEL_MAX_SEQ (1 << 20) /* the sequence skeleton's longest sequence */

/* Skeleton parts. MambaOut: MAMBAOUT stem, CONV downsampling, MLP head.
 * VMamba (v0): PATCH stem (4x4 + LN), MERGE downsampling (2x2 concat -> LN -> linear), NORM_LINEAR head
 * (LN per token -> mean -> linear). Vim: the isotropic skeleton (one stage, PATCH stem without norm,
 * class token in the middle, position embedding, final norm on the class token, linear head).
 *
 * The sequence skeleton (model "seq", for the generated long-range tasks of data/tasks.h): a token
 * embedding (vocab -> dim) [+ a learned absolute position embedding], depth blocks on a 1 x L grid,
 * a final norm on every position and a linear head per position (its weight optionally the
 * embedding's, tied). Its input is (B, L) token ids stored as floats; its logits (B, L, classes). */
typedef enum { SKEL_HIERARCHICAL = 0, SKEL_ISOTROPIC = 1, SKEL_SEQUENCE = 2 } skeleton_kind;
typedef enum { STEM_MAMBAOUT = 0, STEM_PATCH = 1, STEM_EMBED = 2 } stem_kind;
typedef enum { DOWN_CONV = 0, DOWN_MERGE = 1 } down_kind;
typedef enum { HEAD_MLP = 0, HEAD_NORM_LINEAR = 1, HEAD_TOKEN = 2, HEAD_SEQ = 3 } head_kind;

/* The preprocessing a family's published checkpoints were evaluated with
 * (timm's pretrained cfg for MambaOut; the original repositories' eval
 * settings for VMamba and Vim): timm's validate.py evaluates at test_res. */
typedef struct {
    int train_res, test_res;
    double crop_pct;        /* the shorter side is resized to floor(R / crop_pct) */
    char interpolation[16]; /* "bicubic" or "bilinear" */
    float mean[3], std[3];
} model_data_cfg;

typedef struct {
    char name[160];   /* as asked for, overrides included */
    char family[32];  /* MambaOut, VMamba, Vim */
    skeleton_kind skeleton;
    stem_kind stem;
    int patch;        /* PATCH stem: kernel = stride */
    int stem_norm;    /* PATCH stem: LayerNorm after the patch conv */
    down_kind down;
    head_kind head;
    norm_kind norm;   /* the blocks' norm; also the isotropic final norm */
    int num_stages;
    int depths[MODEL_MAX_STAGES];
    int dims[MODEL_MAX_STAGES];
    int num_classes;
    int classes_set;   /* num_classes given by an override (a dataset's count does not replace it) */
    /* the sequence skeleton: input vocabulary (vocab_set: given by an override, else the task's), a
     * learned position embedding for up to max_len tokens (0: the planned length), tied head;
     * init_torch: initialised as a PyTorch module is by default (model_init_random) instead of timm's rule */
    int vocab, vocab_set, pos_embed, max_len, tie, init_torch;
    double expansion;  /* Hd / C */
    double conv_ratio; /* E / C */
    act_kind act;
    float eps;
    int fc_bias;
    int head_mlp_ratio;
    const mixer_ops *mixer;
    mixer_config mixer_cfg; /* kernel, d_state, head_size; widths are set per stage */
    model_data_cfg data;    /* how the family's published checkpoints are evaluated */
} model_config;

/* A weight and its bias (NULL where the layer has none). */
typedef struct {
    float *w, *b;
} tensor_pair;

/* Every parameter of a model by name: views into one parameter set (the
 * weights on the host or on the backend; later a gradient set laid out like
 * them). Built once from the parameter table (model_bind); the forward reads
 * nothing by position. Unused fields stay NULL. */
typedef struct {
    /* MAMBAOUT: conv1 -> norm1 -> GELU -> conv2 -> norm2; PATCH: conv1 (the
     * patch embedding) [-> norm1] */
    tensor_pair stem_conv1, stem_norm1, stem_conv2, stem_norm2;
    float *cls_token, *pos_embed; /* isotropic; pos_embed also the sequence skeleton's (max_len, C) */
    float *embed;                 /* sequence: the token embedding (vocab, C) */
    struct {
        tensor_pair conv, norm; /* CONV: conv -> norm; MERGE: norm -> reduction */
        float *reduction;
    } down[MODEL_MAX_STAGES];
    block_params blocks[MODEL_MAX_BLOCKS]; /* stage by stage */
    /* MLP: norm -> fc1 -> GELU -> norm2 -> fc; NORM_LINEAR and TOKEN: norm -> fc */
    tensor_pair head_norm, head_fc1, head_norm2, head_fc;
} model_params;

typedef struct {
    char name[PARAM_NAME_MAX + 32];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    param_init init;
    size_t numel;
    int part;    /* 0 stem, 1 + s stage s, num_stages + 1 head */
    size_t slot; /* byte offset of its pointer in model_params */
} model_param;

/* What one stage (or the stem / head) contributes. */
typedef struct {
    int h, w;          /* grid */
    int width;         /* C */
    uint64_t params;
    uint64_t macs;
    uint64_t mixer_macs;
} model_stage_info;

/* The accounting plan of one part, besides its blocks: products, and the
 * elements each kind of norm sees (their MACs depend on the convention). */
typedef struct {
    uint64_t product_macs;
    uint64_t layernorm_elems, rmsnorm_elems;
} model_part_plan;

typedef struct {
    model_config cfg;
    const backend *be;
    int B, H, W;
    int threads; /* CPU threads the buffers were sized for (omp_get_max_threads at plan; 1 elsewhere) */
    int stem_h, stem_w; /* after stem conv1 (MAMBAOUT stem) */
    size_t seq;         /* isotropic: tokens per image, class token included; sequence: L (= W) */
    int sh[MODEL_MAX_STAGES], sw[MODEL_MAX_STAGES];
    conv2d_shape stem1, stem2, down[MODEL_MAX_STAGES];
    block_config blocks[MODEL_MAX_STAGES];
    int block_base[MODEL_MAX_STAGES]; /* stage s's first block in model_params.blocks */
    model_part_plan part[MODEL_MAX_STAGES + 2];

    model_param *params;
    int n_params;
    size_t param_floats;

    /* activation plan, floats per buffer (in: the input batch, on backends
     * whose memory is not the caller's) */
    size_t n_in, n_x, n_t, n_u, n_m, n_logits, n_ws;

    /* filled by model_alloc */
    arena weights;       /* host copy of every parameter: init, load, save */
    float **pdata;       /* host tensors in table order */
    model_params host;   /* views of the host copy */
    model_params P;      /* views of the copy the forward reads (the host one on the CPU) */
    void *dev_weights;   /* the backend's copy, laid out as the host arena (NULL on the CPU) */
    void *dev_acts;      /* the backend's activation + workspace block */
    int weights_stale;   /* host weights changed since model_sync_weights */
    float *input, *x, *t, *u, *m, *logits, *ws;
} model;

/* A named model from the zoo ("mambaout_femto", ...); usage error listing the names otherwise. */
ml_status model_config_from_name(const char *name, model_config *out);
/* Zoo listing for help and errors. */
int model_zoo_count(void);
const char *model_zoo_name(int i);
const char *model_zoo_names(void);

/* Checks sizes and settings and computes everything shape-derived for the
 * CPU (model_plan) or a given backend, refusing what its kernels do not
 * cover; allocates only the parameter table. */
ml_status model_plan(model *m, const model_config *cfg, int B, int H, int W);
ml_status model_plan_on(model *m, const model_config *cfg, int B, int H, int W, const backend *be);
/* Allocates the arenas (host weights; weights, activations and workspace on
 * the backend); refuses sizes larger than the machine's memory. */
ml_status model_alloc(model *m);
void model_free(model *m);
/* A model planned like from (its configuration) at batch B and H x W that reads and trains from's
 * own weights: it shares from's weight arena and parameter table and allocates nothing else (a
 * trainer brings the activations; model_shards). Host-memory backends only; the parameters must
 * not depend on the size. Free with model_view_free, before from. */
ml_status model_view(const model *from, int B, int H, int W, model *to);
void model_view_free(model *to);

/* The grid stage s's blocks see: the stage's h x w, or the isotropic sequence as a 1 x L line. */
void model_stage_grid(const model *m, int s, int *bh, int *bw);
/* Rows of the logits: B, or B·L for the sequence skeleton (a prediction per position). */
size_t model_logit_rows(const model *m);
/* Floats of one input sample: 3·H·W, or L token ids for the sequence skeleton. */
size_t model_input_floats(const model *m);

uint64_t model_param_count(const model *m);
/* Without the final norm and the classifier head: the backbone count that
 * VMamba's published 22M / 44M / 75M are (its FLOP script deletes both first). */
uint64_t model_backbone_param_count(const model *m);
/* Total MACs; stem, stages and head broken down when parts is not NULL:
 * parts[0] stem, parts[1..num_stages] stages, parts[num_stages+1] head. */
uint64_t model_macs(const model *m, const macs_opts *o, model_stage_info *parts);
size_t model_weight_bytes(const model *m);
size_t model_activation_bytes(const model *m); /* activations + workspace arenas */

/* Points out's fields at tensors[i] for every parameter i of the table. */
void model_bind(const model *m, float *const *tensors, model_params *out);
const model_param *model_find_param(const model *m, const char *name);
float *model_param_data(const model *m, const char *name);

void model_init_random(model *m, uint64_t seed);
/* Strict: every parameter present with its shape; unexpected tensors are an
 * error unless ignore_unexpected. */
ml_status model_load(model *m, const st_file *f, int ignore_unexpected);
/* model_load from the safetensors file at path. */
ml_status model_load_file(model *m, const char *path, int ignore_unexpected);
ml_status model_save(const model *m, const char *path);
/* e[0..n_params) = every host parameter under its name and shape (for st_write). */
void model_param_entries(const model *m, st_entry *e);
/* Copies the host weights to the backend (nothing to do on the CPU); needed
 * after init or load before a forward on another backend. */
ml_status model_sync_weights(model *m);
/* The forward's input for a host batch (B,3,H,W): the host pointer itself on
 * the CPU, else an upload into m->input. */
ml_status model_stage_input(model *m, const float *host, const float **input);
/* Reads the logits (B, classes) back into host memory. */
ml_status model_read_logits(const model *m, float *host);

typedef void (*model_tap_fn)(void *ctx, const char *name, const float *data, int ndim,
                             const int64_t *shape);
/* input (B,3,H,W) NCHW in backend memory (model_stage_input), or (B, L) token ids for the
 * sequence skeleton; logits land in m->logits (model_logit_rows, classes). tap (host data; may be NULL) sees the stem, every
 * block, every stage and the logits. Asynchronous on a device backend. */
void model_forward(model *m, const float *input, model_tap_fn tap, void *ctx);

#endif
