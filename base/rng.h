/* Seeded, platform-independent random numbers (xoshiro256** seeded by splitmix64). */
#ifndef MIXERLAB_RNG_H
#define MIXERLAB_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} rng_state;

void rng_seed(rng_state *r, uint64_t seed);
uint64_t rng_next_u64(rng_state *r);
double rng_uniform(rng_state *r);        /* [0, 1) */
double rng_normal(rng_state *r);         /* standard normal */
/* Normal(0, std) truncated to [lo, hi] by rejection, as timm's trunc_normal_. */
double rng_trunc_normal(rng_state *r, double std, double lo, double hi);
void rng_fill_normal(rng_state *r, float *x, size_t n, double std);
void rng_fill_uniform(rng_state *r, float *x, size_t n, double lo, double hi);

#endif
