/*
 * analysis.h — the judgement of a rollout (SPEC §8): what the rolled-out
 * pool and the route's baseline did over one analysis window, and each
 * check's verdict on it: pass, fail or inconclusive.
 *
 * Pure code: the controller fills the samples from the counters the
 * workers keep (the same latency buckets as the status window) and acts
 * on the verdict; nothing here reads a clock, a socket or a global.
 *
 * The *_vs_baseline checks fail only when the pool is worse than the
 * baseline by more than their max AND the difference is significant in a
 * one-sided test at 95% confidence (analysis_p_greater): few requests with
 * many errors are judged as such, and so is a small regression on much
 * traffic, while the same error rate on both sides never fails.
 */
#ifndef ZDM_ANALYSIS_H
#define ZDM_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/stats.h"

/* What one pool did in the window. */
struct analysis_sample {
	uint64_t requests;                  /* responses (any status) */
	uint64_t errors;                    /* of which 5xx, zdm's own included */
	uint64_t lat[STATS_WINDOW_BUCKETS]; /* by latency bucket (stats_window_bound_us) */
	uint32_t servers, available;        /* its servers, and those that may serve */
};

enum analysis_metric {
	AM_ERROR_RATE,              /* the pool's 5xx share */
	AM_ERROR_RATE_VS_BASELINE,  /* ÷ the baseline's */
	AM_AVAILABILITY,            /* share of the pool's servers available */
	AM_P50,                     /* the pool's latency percentiles, ms */
	AM_P95,
	AM_P99,
	AM_P50_VS_BASELINE,         /* ÷ the baseline's */
	AM_P95_VS_BASELINE,
	AM_P99_VS_BASELINE,
	AM_METRICS
};

enum analysis_action {
	AA_ROLLBACK,    /* the pool to 0% at once */
	AA_PAUSE,       /* stay at the step until resumed */
	AA_ALERT,       /* say so, and go on */
};

enum analysis_result {
	AR_PASS,
	AR_FAIL,
	AR_INCONCLUSIVE, /* not enough requests to the pool to judge */
	AR_SKIPPED,      /* a *_vs_baseline check with too few baseline requests */
};

struct analysis_check {
	enum analysis_metric metric;
	double limit;   /* max, or min for availability: a share (0..1), ms, or a ratio */
	enum analysis_action action;
};

/* One check's outcome: the value measured (a share, ms or a ratio) and,
 * for a *_vs_baseline check, the one-sided p-value of "the pool is worse"
 * (1 when not computed). */
struct analysis_outcome {
	enum analysis_result result;
	double value;
	double p;
};

struct analysis_pool_view {
	uint64_t requests;
	double error_rate;
	double p50_ms, p95_ms, p99_ms;
};

/* Runs n checks on pool against base, with min_requests requests needed
 * in a sample to judge it; out[i] gets check i's outcome. Returns the
 * verdict: fail if a check failed, else inconclusive if the pool had
 * fewer than min_requests or a check was inconclusive, else pass. */
enum analysis_result analysis_run(const struct analysis_check *checks, size_t n,
                                  const struct analysis_sample *pool,
                                  const struct analysis_sample *base, uint64_t min_requests,
                                  struct analysis_outcome *out);

/* The requests, error rate and percentiles of a sample. */
void analysis_view(const struct analysis_sample *s, struct analysis_pool_view *v);

/* The percentile q (0..1) of a sample in ms: the bound of the bucket
 * holding it (0 without requests). */
double analysis_percentile_ms(const struct analysis_sample *s, double q);

/* The one-sided p-value of "a share is greater in the first group": k1
 * of n1 against k2 of n2. Fisher's exact test (the hypergeometric tail,
 * which holds for any count and never overstates a difference) unless
 * both groups expect 1,000 successes and failures or more under the
 * pooled share, where the pooled two-proportion z-test is as good and
 * cheaper. 1 when either group is empty or the first share is not
 * greater. */
double analysis_p_greater(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2);

/* Adds what b counted to a (samples of several workers, or instances). */
void analysis_sample_add(struct analysis_sample *a, const struct analysis_sample *b);

extern const char *const analysis_metric_names[AM_METRICS];
extern const char *const analysis_result_names[4];
extern const char *const analysis_action_names[3];

#endif
