/* Host timing from CLOCK_MONOTONIC with warm-up and a noise-based stopping rule.
 *
 * Stopping rule: after the warm-up (at least warmup_s seconds and warmup_min
 * calls), sample until there are min_samples samples and min_time_s seconds of
 * them, and the median of all samples differs from the median of the first half
 * by less than settle_rel (checked at min_samples and then every time the count
 * has grown by an eighth); stop anyway at max_time_s (recorded as capped) or at
 * TIMER_MAX_SAMPLES samples. */
#ifndef MIXERLAB_TIMER_H
#define MIXERLAB_TIMER_H

#include "base/common.h"

#define TIMER_MAX_SAMPLES 100000

typedef struct {
    double warmup_s;
    int warmup_min;
    int min_samples;
    double min_time_s;
    double max_time_s;
    double settle_rel;
} timer_policy;

typedef struct {
    double median_ms, mean_ms, stdev_ms, min_ms, p10_ms, p90_ms;
    int samples;
    int capped;       /* 1 when max_time_s ended sampling before it settled */
    double *raw_ms;   /* samples in the order taken; owned, free with timer_stats_free */
} timer_stats;

double timer_now_s(void);
timer_policy timer_policy_default(void);
ml_status timer_measure(const timer_policy *p, void (*fn)(void *), void *ctx, timer_stats *out);
/* The same rule with another clock: sample(fn, ctx) runs fn once and returns
 * its time in ms (cuda_sample_ms: CUDA events on the work's stream). The
 * time caps still use the host clock. */
typedef double (*timer_sample_fn)(void (*fn)(void *), void *ctx);
/* The host clock's sampler: one call of fn, in ms. */
double timer_host_sample_ms(void (*fn)(void *), void *ctx);
ml_status timer_measure_by(const timer_policy *p, void (*fn)(void *), void *ctx, timer_sample_fn sample,
                           timer_stats *out);
/* Fills the summary fields from raw_ms[0..samples). */
void timer_stats_summarise(timer_stats *s);
void timer_stats_free(timer_stats *s);

#endif
