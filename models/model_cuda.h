/* The hierarchical MambaOut forward on the GPU: the host plan of model.h,
 * weights uploaded once into one device arena, activations in another sized
 * from the same plan, every op a kernel or cuBLAS call on cuda_stream(), no
 * allocation inside the forward. CUDA builds only (models/model_cuda.c). */
#ifndef MIXERLAB_MODEL_CUDA_H
#define MIXERLAB_MODEL_CUDA_H

#include "models/model.h"

typedef struct {
    const model *m;
    float *weights;  /* device arena: every parameter */
    float **dp;      /* host table of device parameter pointers */
    float *acts;     /* device arena: input, x, t, u, m, logits, workspace */
    float *input, *x, *t, *u, *mm, *logits, *ws;
    size_t ws_floats;
    size_t weight_bytes, activation_bytes;
} model_cuda;

/* Usage error naming what the GPU path does not cover yet (skeleton part, norm, mixer). */
ml_status model_cuda_supported(const model *m);
/* Allocates the two device arenas and uploads m's weights (m allocated, weights set). */
ml_status model_cuda_init(model_cuda *g, const model *m);
/* Forward of the device input g->input (B,3,H,W) into g->logits; asynchronous on cuda_stream(). */
void model_cuda_forward(model_cuda *g);
void model_cuda_free(model_cuda *g);

#endif
