/* The hierarchical MambaOut skeleton (timm's MambaOut) with a pluggable
 * token mixer: plan (shapes, parameter table, MACs, memory) without touching
 * memory, then allocate one arena per tensor group and run the forward. */
#ifndef MIXERLAB_MODEL_H
#define MIXERLAB_MODEL_H

#include "blocks/conv2d.h"
#include "blocks/gated_block.h"
#include "harness/arena.h"
#include "models/safetensors.h"

#define MODEL_MAX_STAGES 4
#define MODEL_MIN_RES 32
#define MODEL_MAX_RES 4096
#define MODEL_MAX_BATCH 65536

/* Skeleton parts. MambaOut: MAMBAOUT stem, CONV downsampling, MLP head.
 * VMamba (v0): PATCH stem (4x4 + LN), MERGE downsampling (2x2 concat -> LN -> linear), NORM_LINEAR head
 * (LN per token -> mean -> linear). Vim: the isotropic skeleton (one stage, PATCH stem without norm,
 * class token in the middle, position embedding, final norm on the class token, linear head). */
typedef enum { SKEL_HIERARCHICAL = 0, SKEL_ISOTROPIC = 1 } skeleton_kind;
typedef enum { STEM_MAMBAOUT = 0, STEM_PATCH = 1 } stem_kind;
typedef enum { DOWN_CONV = 0, DOWN_MERGE = 1 } down_kind;
typedef enum { HEAD_MLP = 0, HEAD_NORM_LINEAR = 1, HEAD_TOKEN = 2 } head_kind;

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
    double expansion;  /* Hd / C */
    double conv_ratio; /* E / C */
    act_kind act;
    float eps;
    int fc_bias;
    int head_mlp_ratio;
    const mixer_ops *mixer;
    mixer_config mixer_cfg; /* kernel, d_state, head_size; widths are set per stage */
} model_config;

typedef struct {
    char name[PARAM_NAME_MAX + 32];
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    param_init init;
    size_t numel;
} model_param;

/* What one stage (or the stem / head) contributes. */
typedef struct {
    int h, w;          /* grid */
    int width;         /* C */
    uint64_t params;
    uint64_t macs;
    uint64_t mixer_macs;
} model_stage_info;

typedef struct {
    model_config cfg;
    int B, H, W;
    int threads; /* OpenMP threads the buffers were sized for (omp_get_max_threads at plan) */
    int stem_h, stem_w; /* after stem conv1 (MAMBAOUT stem) */
    size_t seq;         /* isotropic: tokens per image, class token included */
    int sh[MODEL_MAX_STAGES], sw[MODEL_MAX_STAGES];
    conv2d_shape stem1, stem2, down[MODEL_MAX_STAGES];
    block_config blocks[MODEL_MAX_STAGES];
    int block_first[MODEL_MAX_STAGES]; /* index of stage s, block 0's first parameter */
    int block_nparams[MODEL_MAX_STAGES];

    model_param *params;
    int n_params;
    size_t param_floats;

    /* activation plan, floats per buffer */
    size_t n_x, n_t, n_u, n_m, n_logits, n_ws;

    /* filled by model_alloc */
    arena weights, acts, work;
    float **pdata;
    float *x, *t, *u, *m, *logits, *ws;
} model;

/* A named model from the zoo ("mambaout_femto", ...); usage error listing the names otherwise. */
ml_status model_config_from_name(const char *name, model_config *out);
/* Zoo listing for help and errors. */
int model_zoo_count(void);
const char *model_zoo_name(int i);
const char *model_zoo_names(void);

/* Checks sizes and settings and computes everything shape-derived; allocates
 * only the parameter table. */
ml_status model_plan(model *m, const model_config *cfg, int B, int H, int W);
/* Allocates the three arenas; refuses sizes larger than the machine's memory. */
ml_status model_alloc(model *m);
void model_free(model *m);

uint64_t model_param_count(const model *m);
/* Total MACs; stem, stages and head broken down when parts is not NULL:
 * parts[0] stem, parts[1..num_stages] stages, parts[num_stages+1] head. */
uint64_t model_macs(const model *m, const macs_opts *o, model_stage_info *parts);
size_t model_weight_bytes(const model *m);
size_t model_activation_bytes(const model *m); /* activations + workspace arenas */

const model_param *model_find_param(const model *m, const char *name);
float *model_param_data(const model *m, const char *name);

void model_init_random(model *m, uint64_t seed);
/* Strict: every parameter present with its shape; unexpected tensors are an
 * error unless ignore_unexpected. */
ml_status model_load(model *m, const st_file *f, int ignore_unexpected);
ml_status model_save(const model *m, const char *path);

typedef void (*model_tap_fn)(void *ctx, const char *name, const float *data, int ndim,
                             const int64_t *shape);
/* input (B,3,H,W) NCHW; logits land in m->logits (B, classes). tap may be NULL. */
void model_forward(model *m, const float *input, model_tap_fn tap, void *ctx);

#endif
