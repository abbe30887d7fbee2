/* Builds without the CUDA toolkit have no CUDA backend. */
#include "blocks/backend.h"

const backend *backend_cuda(void) { return NULL; }
