#include "harness/timer.h"

#include "harness/signals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double timer_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

timer_policy timer_policy_default(void)
{
    timer_policy p = {.warmup_s = 0.2, .warmup_min = 2, .min_samples = 10,
                      .min_time_s = 0.5, .max_time_s = 10.0, .settle_rel = 0.02};
    return p;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Linear interpolation between order statistics, as numpy's default percentile. */
static double percentile_sorted(const double *v, int n, double q)
{
    if (n == 1)
        return v[0];
    double pos = q * (n - 1);
    int lo = (int)floor(pos);
    int hi = lo + 1 < n ? lo + 1 : n - 1;
    double f = pos - lo;
    return v[lo] + f * (v[hi] - v[lo]);
}

static double median_of(const double *raw, int n, double *scratch)
{
    memcpy(scratch, raw, (size_t)n * sizeof *scratch);
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
    return percentile_sorted(scratch, n, 0.5);
}

void timer_stats_summarise(timer_stats *s)
{
    int n = s->samples;
    if (n <= 0)
        return;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return;
    memcpy(v, s->raw_ms, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    double mean = sum / n, ss = 0;
    for (int i = 0; i < n; i++)
        ss += (v[i] - mean) * (v[i] - mean);
    s->mean_ms = mean;
    s->stdev_ms = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
    s->min_ms = v[0];
    s->median_ms = percentile_sorted(v, n, 0.5);
    s->p10_ms = percentile_sorted(v, n, 0.1);
    s->p90_ms = percentile_sorted(v, n, 0.9);
    free(v);
}

double timer_host_sample_ms(void (*fn)(void *), void *ctx)
{
    const double a = timer_now_s();
    fn(ctx);
    return (timer_now_s() - a) * 1e3;
}

ml_status timer_measure(const timer_policy *p, void (*fn)(void *), void *ctx, timer_stats *out)
{
    return timer_measure_by(p, fn, ctx, timer_host_sample_ms, out);
}

ml_status timer_measure_by(const timer_policy *p, void (*fn)(void *), void *ctx, timer_sample_fn sample,
                           timer_stats *out)
{
    memset(out, 0, sizeof *out);
    double t0 = timer_now_s();
    for (int i = 0; (i < p->warmup_min || timer_now_s() - t0 < p->warmup_s) && !signals_pending(); i++)
        (void)sample(fn, ctx); /* through the sampler: on the GPU it waits, so no queue builds up */
    if (signals_pending())
        return ml_fail(ML_ERR_RUNTIME, "interrupted by %s", signals_name(signals_pending()));

    size_t cap = 256;
    out->raw_ms = ml_malloc(cap * sizeof(double), "timer samples");
    double *scratch = ml_malloc(cap * sizeof(double), "timer scratch");
    if (!out->raw_ms || !scratch) {
        free(out->raw_ms);
        free(scratch);
        out->raw_ms = NULL;
        return ML_ERR_NOMEM;
    }
    double start = timer_now_s(), measured = 0;
    /* The settling check sorts every sample so far: run it at geometrically
     * spaced sample counts, so its cost stays a vanishing share of the time
     * measured however many samples a fast config takes. */
    int next_check = p->min_samples;
    for (;;) {
        const double ms = sample(fn, ctx), b = timer_now_s();
        if ((size_t)out->samples == cap) {
            cap *= 2;
            double *r1 = realloc(out->raw_ms, cap * sizeof(double));
            double *r2 = r1 ? realloc(scratch, cap * sizeof(double)) : NULL;
            if (!r1 || !r2) {
                free(r1 ? r1 : out->raw_ms);
                free(scratch);
                out->raw_ms = NULL;
                return ml_fail(ML_ERR_NOMEM, "out of memory storing %zu timing samples", cap);
            }
            out->raw_ms = r1;
            scratch = r2;
        }
        out->raw_ms[out->samples++] = ms;
        measured += ms * 1e-3;
        if (signals_pending()) { /* the samples so far are abandoned with the configuration */
            free(scratch);
            timer_stats_free(out);
            return ml_fail(ML_ERR_RUNTIME, "interrupted by %s", signals_name(signals_pending()));
        }
        double elapsed = b - start;
        if (out->samples >= next_check && measured >= p->min_time_s) {
            int n = out->samples;
            next_check = n + n / 8 + 1;
            double m_all = median_of(out->raw_ms, n, scratch);
            double m_half = median_of(out->raw_ms, n / 2 > 0 ? n / 2 : 1, scratch);
            if (fabs(m_all - m_half) <= p->settle_rel * m_all)
                break;
        }
        if (elapsed >= p->max_time_s) {
            out->capped = 1;
            break;
        }
        if (out->samples >= TIMER_MAX_SAMPLES) {
            out->capped = 1;
            break;
        }
    }
    free(scratch);
    timer_stats_summarise(out);
    return ML_OK;
}

void timer_stats_free(timer_stats *s)
{
    free(s->raw_ms);
    s->raw_ms = NULL;
}
