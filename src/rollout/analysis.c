/*
 * analysis.c — the checks of a rollout's analysis and their significance
 * test: the rules are in analysis.h.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "rollout/analysis.h"

const char *const analysis_metric_names[AM_METRICS] = {
        "error_rate", "error_rate_vs_baseline", "availability", "p50", "p95", "p99",
        "p50_vs_baseline", "p95_vs_baseline", "p99_vs_baseline",
};
const char *const analysis_result_names[4] = {"pass", "fail", "inconclusive", "skipped"};
const char *const analysis_action_names[3] = {"rollback", "pause", "alert"};

/* One-sided significance level of the *_vs_baseline checks. */
#define ANALYSIS_ALPHA 0.05

/* The bucket holding percentile q of s, or -1 without requests. */
static int percentile_bucket(const struct analysis_sample *s, double q)
{
	uint64_t total = 0;
	for (int k = 0; k < STATS_WINDOW_BUCKETS; k++)
		total += s->lat[k];
	if (!total)
		return -1;
	uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
	if (!rank)
		rank = 1;
	for (int k = 0; k < STATS_WINDOW_BUCKETS; k++) {
		seen += s->lat[k];
		if (seen >= rank)
			return k;
	}
	return STATS_WINDOW_BUCKETS - 1;
}

double analysis_percentile_ms(const struct analysis_sample *s, double q)
{
	int k = percentile_bucket(s, q);
	return k < 0 ? 0 : stats_window_bound_us(k) / 1000.0;
}

void analysis_view(const struct analysis_sample *s, struct analysis_pool_view *v)
{
	v->requests = s->requests;
	v->error_rate = s->requests ? (double)s->errors / (double)s->requests : 0;
	v->p50_ms = analysis_percentile_ms(s, 0.50);
	v->p95_ms = analysis_percentile_ms(s, 0.95);
	v->p99_ms = analysis_percentile_ms(s, 0.99);
}

void analysis_sample_add(struct analysis_sample *a, const struct analysis_sample *b)
{
	a->requests += b->requests;
	a->errors += b->errors;
	for (int k = 0; k < STATS_WINDOW_BUCKETS; k++)
		a->lat[k] += b->lat[k];
	a->servers += b->servers;
	a->available += b->available;
}

/* log C(n, k) */
static double log_choose(double n, double k)
{
	int sign; /* lgamma_r: lgamma writes the global signgam */
	return lgamma_r(n + 1, &sign) - lgamma_r(k + 1, &sign) - lgamma_r(n - k + 1, &sign);
}

/* P(X >= k1) for X hypergeometric: n1 draws from n1 + n2 of which k1 + k2
 * are successes. Summed from the top of the tail down, in log space. */
static double fisher_greater(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2)
{
	double N = (double)n1 + (double)n2, K = (double)k1 + (double)k2;
	uint64_t hi = k1 + k2 < n1 ? k1 + k2 : n1;
	double lden = log_choose(N, (double)n1), p = 0;
	for (uint64_t x = k1; x <= hi; x++) {
		double t = exp(log_choose(K, (double)x) + log_choose(N - K, (double)(n1 - x)) - lden);
		p += t;
		/* Past the mode (k1 is above what is expected), the terms only
		 * fall: stop once they no longer count, or are 0 from the first. */
		if (t == 0 || t < 1e-18 * p)
			break;
	}
	return p > 1 ? 1 : p;
}

double analysis_p_greater(uint64_t k1, uint64_t n1, uint64_t k2, uint64_t n2)
{
	if (!n1 || !n2 || k1 > n1 || k2 > n2)
		return 1;
	double r1 = (double)k1 / (double)n1, r2 = (double)k2 / (double)n2;
	if (r1 <= r2)
		return 1;
	double pooled = ((double)k1 + (double)k2) / ((double)n1 + (double)n2);
	double least = fmin(fmin(n1 * pooled, n1 * (1 - pooled)), fmin(n2 * pooled, n2 * (1 - pooled)));
	if (least < 1000)
		return fisher_greater(k1, n1, k2, n2);
	double se = sqrt(pooled * (1 - pooled) * (1.0 / (double)n1 + 1.0 / (double)n2));
	if (se <= 0)
		return 1;
	double z = (r1 - r2) / se;
	return 0.5 * erfc(z / sqrt(2.0));
}

static double quantile_of(enum analysis_metric m)
{
	switch (m) {
	case AM_P50:
	case AM_P50_VS_BASELINE:
		return 0.50;
	case AM_P95:
	case AM_P95_VS_BASELINE:
		return 0.95;
	default:
		return 0.99;
	}
}

/* Requests of s in the buckets above bucket b. */
static uint64_t above(const struct analysis_sample *s, int b)
{
	uint64_t n = 0;
	for (int k = b + 1; k < STATS_WINDOW_BUCKETS; k++)
		n += s->lat[k];
	return n;
}

static uint64_t lat_total(const struct analysis_sample *s)
{
	return above(s, -1);
}

static void run_check(const struct analysis_check *c, const struct analysis_sample *pool,
                      const struct analysis_sample *base, uint64_t min_requests,
                      struct analysis_outcome *o)
{
	o->result = AR_PASS;
	o->value = 0;
	o->p = 1;
	if (c->metric == AM_AVAILABILITY) {
		/* Known without traffic: a pool with no server left fails. */
		o->value = pool->servers ? (double)pool->available / (double)pool->servers : 0;
		o->result = o->value < c->limit ? AR_FAIL : AR_PASS;
		return;
	}
	if (pool->requests < min_requests || !pool->requests) {
		o->result = AR_INCONCLUSIVE;
		if (pool->requests)
			o->value = c->metric == AM_ERROR_RATE || c->metric == AM_ERROR_RATE_VS_BASELINE
			                   ? (double)pool->errors / (double)pool->requests
			                   : analysis_percentile_ms(pool, quantile_of(c->metric));
		return;
	}
	switch (c->metric) {
	case AM_ERROR_RATE:
		o->value = (double)pool->errors / (double)pool->requests;
		o->result = o->value > c->limit ? AR_FAIL : AR_PASS;
		return;
	case AM_P50:
	case AM_P95:
	case AM_P99:
		o->value = analysis_percentile_ms(pool, quantile_of(c->metric));
		o->result = o->value > c->limit ? AR_FAIL : AR_PASS;
		return;
	case AM_ERROR_RATE_VS_BASELINE: {
		if (base->requests < min_requests || !base->requests) {
			o->result = AR_SKIPPED;
			return;
		}
		/* A baseline without errors counts as half an error, so
		 * that the ratio stays finite. */
		double rp = (double)pool->errors / (double)pool->requests;
		double rb = fmax((double)base->errors, 0.5) / (double)base->requests;
		o->value = rp / rb;
		o->p = analysis_p_greater(pool->errors, pool->requests, base->errors, base->requests);
		o->result = o->value > c->limit && o->p < ANALYSIS_ALPHA ? AR_FAIL : AR_PASS;
		return;
	}
	case AM_P50_VS_BASELINE:
	case AM_P95_VS_BASELINE:
	case AM_P99_VS_BASELINE: {
		if (base->requests < min_requests || !lat_total(base) || !lat_total(pool)) {
			o->result = base->requests < min_requests || !lat_total(base) ? AR_SKIPPED
			                                                              : AR_INCONCLUSIVE;
			return;
		}
		/* The bucket test: under "no difference", the pool has no
		 * larger share of its requests above the baseline's
		 * percentile than the baseline has. */
		double q = quantile_of(c->metric);
		int b = percentile_bucket(base, q);
		o->value = analysis_percentile_ms(pool, q) / (stats_window_bound_us(b) / 1000.0);
		o->p = analysis_p_greater(above(pool, b), lat_total(pool), above(base, b),
		                          lat_total(base));
		o->result = o->value > c->limit && o->p < ANALYSIS_ALPHA ? AR_FAIL : AR_PASS;
		return;
	}
	default:
		o->result = AR_INCONCLUSIVE;
		return;
	}
}

enum analysis_result analysis_run(const struct analysis_check *checks, size_t n,
                                  const struct analysis_sample *pool,
                                  const struct analysis_sample *base, uint64_t min_requests,
                                  struct analysis_outcome *out)
{
	bool failed = false, inconclusive = pool->requests < min_requests || pool->requests == 0;
	for (size_t i = 0; i < n; i++) {
		run_check(&checks[i], pool, base, min_requests, &out[i]);
		if (out[i].result == AR_FAIL)
			failed = true;
		else if (out[i].result == AR_INCONCLUSIVE)
			inconclusive = true;
	}
	return failed ? AR_FAIL : inconclusive ? AR_INCONCLUSIVE : AR_PASS;
}
