/*
 * test_analysis.c — a rollout's analysis (src/rollout/analysis.c): each
 * check's verdict, the significance test of the *_vs_baseline checks
 * against values computed by hand, and "no data is never a pass".
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "rollout/analysis.h"
#include "tap.h"

/* The window latency bucket of d_us. */
static int bucket_of(uint32_t d_us)
{
	int k = 0;
	while (k < STATS_WINDOW_BUCKETS - 1 && stats_window_bound_us(k) < d_us)
		k++;
	return k;
}

/* n requests, e of them 5xx, all taking ms milliseconds. */
static void fill(struct analysis_sample *s, uint64_t n, uint64_t e, double ms)
{
	s->requests += n;
	s->errors += e;
	s->lat[bucket_of((uint32_t)(ms * 1000))] += n;
	if (!s->servers)
		s->servers = s->available = 2;
}

static const struct analysis_check DEFAULTS[] = {
        {AM_ERROR_RATE, 0.05, AA_ROLLBACK},
        {AM_ERROR_RATE_VS_BASELINE, 2, AA_ROLLBACK},
        {AM_AVAILABILITY, 0.95, AA_ROLLBACK},
};

static enum analysis_result run(const struct analysis_check *c, size_t n,
                                const struct analysis_sample *pool,
                                const struct analysis_sample *base, uint64_t min,
                                struct analysis_outcome *out)
{
	return analysis_run(c, n, pool, base, min, out);
}

static int near(double a, double b, double rel)
{
	return fabs(a - b) <= rel * fabs(b);
}

int main(void)
{
	struct analysis_sample pool, base;
	struct analysis_outcome o[8];

	/* The test itself, against values worked out by hand. */
	CHECK(near(analysis_p_greater(3, 20, 100, 10000), 0.0010590, 0.001),
	      "Fisher, 3/20 against 100/10000: p = 0.0010590");
	CHECK(near(analysis_p_greater(11, 500, 95, 9500), 0.0166573, 0.001),
	      "Fisher, 11/500 against 95/9500: p = 0.0166573 (the z-test would say 0.0053)");
	CHECK(near(analysis_p_greater(3, 100, 20, 2000), 0.0930583, 0.001),
	      "Fisher, 3/100 against 20/2000: p = 0.093, not significant (the z-test: 0.030)");
	CHECK(near(analysis_p_greater(2600, 100000, 1000, 100000), 0.5 * erfc(26.0 / sqrt(2)), 0.2) ||
	              analysis_p_greater(2600, 100000, 1000, 100000) < 1e-100,
	      "z-test, 2.6% against 1% on 100,000 each: p ~ 0");
	CHECK(near(analysis_p_greater(100, 1000, 500, 10000), 9.39966e-10, 0.001),
	      "Fisher, 100/1000 against 500/10000: p = 9.4e-10");
	CHECK(analysis_p_greater(101, 1000, 1000, 10000) < 1 &&
	              near(analysis_p_greater(101, 1000, 1000, 10000), 0.4771765, 0.001),
	      "Fisher, 101/1000 against 1000/10000: p = 0.477");
	CHECK_EQ_INT(analysis_p_greater(5, 500, 95, 9500) == 1, 1,
	             "the same share on both sides: p = 1 (not greater)");
	CHECK_EQ_INT(analysis_p_greater(1, 0, 3, 10) == 1 && analysis_p_greater(0, 10, 0, 0) == 1, 1,
	             "an empty group: p = 1");
	CHECK(analysis_p_greater(2, 100, 1, 100) > 0.2, "2/100 against 1/100: not significant");
	CHECK(analysis_p_greater(2600, 100000, 1000, 100000) < 1e-9,
	      "2.6% against 1% on 100,000 each: significant");

	/* No data is never a pass. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	pool.servers = pool.available = 2;
	CHECK_EQ_INT(run(DEFAULTS, 3, &pool, &base, 100, o), AR_INCONCLUSIVE,
	             "no request at all: inconclusive");
	CHECK_EQ_INT(o[0].result, AR_INCONCLUSIVE, "error_rate: inconclusive");
	CHECK_EQ_INT(o[2].result, AR_PASS, "availability: judged without traffic (2 of 2)");
	CHECK_EQ_INT(run(DEFAULTS, 3, &pool, &base, 0, o), AR_INCONCLUSIVE,
	             "min_requests 0 and no request: still inconclusive");
	fill(&pool, 99, 0, 10);
	fill(&base, 5000, 0, 10);
	CHECK_EQ_INT(run(DEFAULTS, 3, &pool, &base, 100, o), AR_INCONCLUSIVE,
	             "99 requests, min_requests 100: inconclusive, however good");
	fill(&pool, 1, 0, 10);
	CHECK_EQ_INT(run(DEFAULTS, 3, &pool, &base, 100, o), AR_PASS, "100 clean requests: pass");

	/* Absolute error rate. */
	memset(&pool, 0, sizeof(pool));
	fill(&pool, 100, 6, 10);
	CHECK_EQ_INT(run(DEFAULTS, 1, &pool, &base, 100, o), AR_FAIL, "6% 5xx against max 5%: fail");
	CHECK(near(o[0].value, 0.06, 1e-9), "the value is 0.06");
	memset(&pool, 0, sizeof(pool));
	fill(&pool, 100, 5, 10);
	CHECK_EQ_INT(run(DEFAULTS, 1, &pool, &base, 100, o), AR_PASS, "exactly 5%: pass");

	/* Relative error rate: 3 errors in 20 at a 1% baseline is a
	 * regression, significant even on so few requests. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 20, 3, 10);
	fill(&base, 10000, 100, 10);
	const struct analysis_check rel[] = {{AM_ERROR_RATE_VS_BASELINE, 2, AA_ROLLBACK}};
	CHECK_EQ_INT(run(rel, 1, &pool, &base, 20, o), AR_FAIL,
	             "3 errors in 20 at a 1% baseline: fail");
	CHECK(near(o[0].value, 15, 1e-9) && o[0].p < 0.05, "ratio 15, p < 0.05");
	/* 1% on both sides never fails, however much traffic. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 5000, 50, 10);
	fill(&base, 95000, 950, 10);
	CHECK_EQ_INT(run(rel, 1, &pool, &base, 100, o), AR_PASS, "1% against 1%: pass");
	/* Twice as many errors by chance on few requests: over max, not
	 * significant. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 100, 3, 10);
	fill(&base, 2000, 20, 10);
	CHECK_EQ_INT(run(rel, 1, &pool, &base, 100, o), AR_PASS,
	             "3/100 against 1% (ratio 3): not significant, pass");
	CHECK(o[0].value > 2 && o[0].p >= 0.05, "the ratio is over max, the p-value is not small");
	/* A small real regression on much traffic. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 200000, 5000, 10);
	fill(&base, 2000000, 20000, 10);
	CHECK_EQ_INT(run(rel, 1, &pool, &base, 100, o), AR_FAIL,
	             "2.5% against 1% on much traffic: fail");
	/* Too few baseline requests: the check is skipped, not failed. */
	memset(&base, 0, sizeof(base));
	fill(&base, 50, 0, 10);
	CHECK_EQ_INT(run(rel, 1, &pool, &base, 100, o), AR_PASS, "a baseline of 50: skipped ...");
	CHECK_EQ_INT(o[0].result, AR_SKIPPED, "... and shown as skipped");
	/* A baseline without errors: the ratio stays finite. */
	memset(&base, 0, sizeof(base));
	fill(&base, 10000, 0, 10);
	memset(&pool, 0, sizeof(pool));
	fill(&pool, 1000, 0, 10);
	run(rel, 1, &pool, &base, 100, o);
	CHECK(o[0].value == 0 && o[0].result == AR_PASS, "no errors on either side: ratio 0, pass");

	/* Availability. */
	memset(&pool, 0, sizeof(pool));
	fill(&pool, 500, 0, 10);
	pool.servers = 20;
	pool.available = 18;
	const struct analysis_check av[] = {{AM_AVAILABILITY, 0.95, AA_ROLLBACK}};
	CHECK_EQ_INT(run(av, 1, &pool, &base, 100, o), AR_FAIL, "18 of 20 servers (90%): fail");
	CHECK(near(o[0].value, 0.9, 1e-9), "the value is 0.9");
	pool.available = 19;
	CHECK_EQ_INT(run(av, 1, &pool, &base, 100, o), AR_PASS, "19 of 20 (95%): pass");
	memset(&pool, 0, sizeof(pool));
	pool.servers = 2;
	CHECK_EQ_INT(run(DEFAULTS, 3, &pool, &base, 100, o), AR_FAIL,
	             "no server left and no traffic: fail (availability)");

	/* Latency. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 950, 0, 10);
	fill(&pool, 50, 0, 3000);
	fill(&base, 10000, 0, 10);
	const struct analysis_check lat[] = {{AM_P95, 2000, AA_ROLLBACK},
	                                     {AM_P99, 2000, AA_ROLLBACK},
	                                     {AM_P95_VS_BASELINE, 2, AA_PAUSE}};
	CHECK_EQ_INT(run(lat, 3, &pool, &base, 100, o), AR_FAIL, "p99 of 3 s against max 2 s: fail");
	CHECK_EQ_INT(o[0].result, AR_PASS, "p95 at 10 ms: pass");
	CHECK(o[1].result == AR_FAIL && near(o[1].value, 3000, 0.1), "p99 at 3 s (within 10%)");
	CHECK_EQ_INT(o[2].result, AR_PASS, "p95 against the baseline's: the same bucket, pass");
	memset(&pool, 0, sizeof(pool));
	fill(&pool, 900, 0, 10);
	fill(&pool, 100, 0, 30);
	run(lat, 3, &pool, &base, 100, o);
	CHECK(o[2].result == AR_FAIL && near(o[2].value, 3, 0.1) && o[2].p < 0.05,
	      "p95 3× the baseline's on 1,000 requests: significant, fail");
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 97, 0, 10);
	fill(&pool, 3, 0, 30);
	fill(&base, 96, 0, 10);
	fill(&base, 4, 0, 12);
	run(lat, 3, &pool, &base, 100, o);
	CHECK(o[2].result == AR_PASS, "the same shape on both sides, the pool's tail 3% slower: pass");

	/* Several checks: fail wins over inconclusive. */
	memset(&pool, 0, sizeof(pool));
	memset(&base, 0, sizeof(base));
	fill(&pool, 200, 50, 10);
	const struct analysis_check mix[] = {{AM_ERROR_RATE, 0.05, AA_ROLLBACK},
	                                     {AM_P95, 2000, AA_ROLLBACK}};
	CHECK_EQ_INT(run(mix, 2, &pool, &base, 100, o), AR_FAIL, "a failing check fails the analysis");

	struct analysis_pool_view v;
	analysis_view(&pool, &v);
	CHECK(v.requests == 200 && near(v.error_rate, 0.25, 1e-9) && near(v.p50_ms, 10, 0.1),
	      "the view: requests, error rate, p50");
	struct analysis_sample sum;
	memset(&sum, 0, sizeof(sum));
	analysis_sample_add(&sum, &pool);
	analysis_sample_add(&sum, &pool);
	CHECK(sum.requests == 400 && sum.errors == 100 && sum.servers == 4,
	      "samples of two workers add up");
	CHECK_EQ_STR(analysis_metric_names[AM_P95_VS_BASELINE], "p95_vs_baseline", "metric names");
	return tap_done();
}
