/*
 * stats.c — counters, the latency histogram and the sliding window.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "stats.h"

const double stats_hist_bounds[STATS_HIST_BUCKETS] = {
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const char *const stats_class_names[STATS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
const char *const stats_error_names[STATS_ERROR_KINDS] = {"connect", "timeout", "reset",
                                                          "invalid"};

/* Window latency buckets: bucket k holds durations up to 50 µs × 1.1^k, so
 * a percentile read from them is within 10% (up to ~2 h, beyond: last). */
static uint32_t window_bound_us[STATS_WINDOW_BUCKETS];

static void window_bounds_init(void)
{
	if (window_bound_us[0])
		return;
	double b = 50;
	for (int k = 0; k < STATS_WINDOW_BUCKETS; k++, b *= 1.1)
		window_bound_us[k] = b > 4e9 ? 4000000000u : (uint32_t)b;
}

struct stats_table *stats_new(size_t npools, size_t nservers)
{
	window_bounds_init();
	struct stats_table *t = xcalloc(1, sizeof(*t));
	t->refs = 1;
	t->npools = npools;
	t->nservers = nservers;
	t->srv = xcalloc(nservers ? nservers : 1, sizeof(*t->srv));
	t->pool = xcalloc(npools ? npools : 1, sizeof(*t->pool));
	return t;
}

struct stats_table *stats_hold(struct stats_table *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void stats_release(struct stats_table *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	free(t->srv);
	free(t->pool);
	free(t);
}

static int window_bucket(uint64_t us)
{
	int lo = 0, hi = STATS_WINDOW_BUCKETS - 1;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (us <= window_bound_us[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void stats_record(struct stats_table *t, int pool, int status, uint64_t duration_us,
                  uint64_t now_s)
{
	if (pool < 0) {
		if (status)
			t->unrouted[stats_class(status)]++;
		return;
	}
	struct pool_stats *p = &t->pool[pool];
	int b = 0;
	double secs = (double)duration_us / 1e6;
	while (b < STATS_HIST_BUCKETS && secs > stats_hist_bounds[b])
		b++;
	p->hist[b]++;
	p->count++;
	p->sum_us += duration_us;

	struct window_slot *w = &p->win[now_s % STATS_WINDOW_SECONDS];
	if (w->second != now_s) {
		memset(w, 0, sizeof(*w));
		w->second = now_s;
	}
	w->count++;
	if (status >= 500)
		w->count_5xx++;
	w->lat[window_bucket(duration_us)]++;
}

static double percentile_ms(const uint64_t *lat, uint64_t total, double q)
{
	if (!total)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
	for (int k = 0; k < STATS_WINDOW_BUCKETS; k++) {
		seen += lat[k];
		if (seen >= rank)
			return window_bound_us[k] / 1000.0;
	}
	return window_bound_us[STATS_WINDOW_BUCKETS - 1] / 1000.0;
}

void stats_window(const struct pool_stats *p, uint64_t now_s, double uptime_s,
                  struct window_summary *out)
{
	uint64_t lat[STATS_WINDOW_BUCKETS] = {0};
	memset(out, 0, sizeof(*out));
	for (int i = 0; i < STATS_WINDOW_SECONDS; i++) {
		const struct window_slot *w = &p->win[i];
		if (!w->count || w->second + STATS_WINDOW_SECONDS <= now_s || w->second > now_s)
			continue;
		out->requests += w->count;
		out->errors_5xx += w->count_5xx;
		for (int k = 0; k < STATS_WINDOW_BUCKETS; k++)
			lat[k] += w->lat[k];
	}
	out->seconds = uptime_s < STATS_WINDOW_SECONDS ? (uptime_s < 1 ? 1 : uptime_s)
	                                               : STATS_WINDOW_SECONDS;
	out->p50_ms = percentile_ms(lat, out->requests, 0.50);
	out->p95_ms = percentile_ms(lat, out->requests, 0.95);
	out->p99_ms = percentile_ms(lat, out->requests, 0.99);
}
