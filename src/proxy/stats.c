/*
 * stats.c — counters, the latency histogram and the sliding window.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "proxy/stats.h"

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

uint32_t stats_window_bound_us(int k)
{
	window_bounds_init();
	return window_bound_us[k < 0 ? 0 : k >= STATS_WINDOW_BUCKETS ? STATS_WINDOW_BUCKETS - 1 : k];
}

static void shard_init(struct stats_shard *sh, const struct stats_table *t)
{
	sh->srv = xcalloc(t->nservers ? t->nservers : 1, sizeof(*sh->srv));
	sh->pool = xcalloc(t->npools ? t->npools : 1, sizeof(*sh->pool));
	sh->rsrv = xcalloc(t->nrsrv ? t->nrsrv : 1, sizeof(*sh->rsrv));
	sh->unpooled = xcalloc(1 + t->nroutes, sizeof(*sh->unpooled));
}

static void shard_free(struct stats_shard *sh)
{
	free(sh->srv);
	free(sh->pool);
	free(sh->rsrv);
	free(sh->unpooled);
}

struct stats_table *stats_new(size_t npools, size_t nservers, size_t nrsrv, size_t nroutes,
                              size_t nshards)
{
	window_bounds_init();
	struct stats_table *t = xcalloc(1, sizeof(*t));
	t->refs = 1;
	t->npools = npools;
	t->nservers = nservers;
	t->nrsrv = nrsrv;
	t->nroutes = nroutes;
	t->nshards = nshards ? nshards : 1;
	t->shard = xcalloc(t->nshards, sizeof(*t->shard));
	for (size_t i = 0; i < t->nshards; i++)
		shard_init(&t->shard[i], t);
	shard_init(&t->carried, t);
	t->streak = xcalloc(nservers ? nservers : 1, sizeof(*t->streak));
	t->probe_slots = xcalloc(nservers ? nservers : 1, sizeof(*t->probe_slots));
	return t;
}

bool stats_take_probe(struct stats_table *t, uint32_t id)
{
	uint32_t *slots = &t->probe_slots[id];
	uint32_t n = __atomic_load_n(slots, __ATOMIC_RELAXED);
	while (n)
		if (__atomic_compare_exchange_n(slots, &n, n - 1, true, __ATOMIC_ACQ_REL,
		                                __ATOMIC_RELAXED))
			return true;
	return false;
}

static void unlink_prev(struct stats_table *t)
{
	if (!t->prev)
		return;
	stats_release(t->prev);
	t->prev = NULL;
	free(t->map_srv);
	free(t->map_pool);
	free(t->map_rsrv);
	free(t->map_unpooled);
	t->map_srv = t->map_pool = t->map_rsrv = t->map_unpooled = NULL;
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
	for (size_t i = 0; i < t->nshards; i++)
		shard_free(&t->shard[i]);
	free(t->shard);
	shard_free(&t->carried);
	unlink_prev(t);
	free(t->streak);
	free(t->probe_slots);
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

void stats_record(struct stats_shard *sh, int pool, int route, int status, uint64_t duration_us,
                  uint64_t now_s)
{
	if (pool < 0) {
		if (status)
			STAT_ADD(sh->unpooled[1 + route][stats_class(status)], 1);
		return;
	}
	struct pool_stats *p = &sh->pool[pool];
	int b = 0;
	double secs = (double)duration_us / 1e6;
	while (b < STATS_HIST_BUCKETS && secs > stats_hist_bounds[b])
		b++;
	STAT_ADD(p->hist[b], 1);
	STAT_ADD(p->count, 1);
	STAT_ADD(p->sum_us, duration_us);

	struct window_slot *w = &p->win[now_s % STATS_WINDOW_SECONDS];
	if (STAT_GET(w->second) != now_s) {
		/* A new second for this slot: readers skip it while it is
		 * cleared, as its second is not yet the current one. */
		__atomic_store_n(&w->second, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&w->count, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&w->count_5xx, 0, __ATOMIC_RELAXED);
		for (int k = 0; k < STATS_WINDOW_BUCKETS; k++)
			__atomic_store_n(&w->lat[k], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&w->second, now_s, __ATOMIC_RELEASE);
	}
	STAT_ADD(w->count, 1);
	if (status >= 500)
		STAT_ADD(w->count_5xx, 1);
	STAT_ADD(w->lat[window_bucket(duration_us)], 1);
}

static void add_srv(struct srv_stats *to, const struct srv_stats *from)
{
	to->requests += STAT_GET(from->requests);
	to->failures += STAT_GET(from->failures);
	to->inflight += STAT_GET(from->inflight);
	for (int k = 0; k < STATS_ERROR_KINDS; k++)
		to->errors[k] += STAT_GET(from->errors[k]);
}

static void add_pool(struct pool_stats *to, const struct pool_stats *from)
{
	to->pinned += STAT_GET(from->pinned);
	for (int c = 0; c < STATS_CLASSES; c++)
		to->codes[c] += STAT_GET(from->codes[c]);
	for (int b = 0; b <= STATS_HIST_BUCKETS; b++)
		to->hist[b] += STAT_GET(from->hist[b]);
	to->count += STAT_GET(from->count);
	to->sum_us += STAT_GET(from->sum_us);
	/* Window slots of the same second add up; a newer second replaces
	 * an older one in the same slot. */
	for (int i = 0; i < STATS_WINDOW_SECONDS; i++) {
		const struct window_slot *f = &from->win[i];
		struct window_slot *t = &to->win[i];
		uint64_t sec = __atomic_load_n(&f->second, __ATOMIC_ACQUIRE);
		if (!sec || sec < t->second)
			continue;
		if (sec > t->second)
			memset(t, 0, sizeof(*t));
		t->second = sec;
		t->count += STAT_GET(f->count);
		t->count_5xx += STAT_GET(f->count_5xx);
		for (int k = 0; k < STATS_WINDOW_BUCKETS; k++)
			t->lat[k] += STAT_GET(f->lat[k]);
	}
}

void stats_pool_add(struct pool_stats *to, const struct pool_stats *from)
{
	add_pool(to, from);
}

/* Adds shard from, of a table of the layout of ft, into sum; with maps,
 * each row to the row its map names (and none where it names -1). */
static void add_shard(struct stats_shard *sum, const struct stats_shard *from,
                      const struct stats_table *ft, const struct stats_table *mt)
{
	const int32_t *ms = mt ? mt->map_srv : NULL, *mp = mt ? mt->map_pool : NULL;
	const int32_t *mr = mt ? mt->map_rsrv : NULL, *mu = mt ? mt->map_unpooled : NULL;
	for (size_t j = 0; j < ft->nservers; j++)
		if (!ms || ms[j] >= 0)
			add_srv(&sum->srv[ms ? (size_t)ms[j] : j], &from->srv[j]);
	for (size_t j = 0; j < ft->npools; j++)
		if (!mp || mp[j] >= 0)
			add_pool(&sum->pool[mp ? (size_t)mp[j] : j], &from->pool[j]);
	for (size_t j = 0; j < ft->nrsrv; j++)
		if (!mr || mr[j] >= 0)
			for (int c = 0; c < STATS_CLASSES; c++)
				sum->rsrv[mr ? (size_t)mr[j] : j].codes[c] +=
				        STAT_GET(from->rsrv[j].codes[c]);
	for (size_t r = 0; r <= ft->nroutes; r++)
		if (!mu || mu[r] >= 0)
			for (int c = 0; c < STATS_CLASSES; c++)
				sum->unpooled[mu ? (size_t)mu[r] : r][c] += STAT_GET(from->unpooled[r][c]);
}

/* The sum of t's own shards and what it carries, and with_prev, of its
 * inheritance; without settling. */
static struct stats_shard *sum_all(const struct stats_table *t, bool with_prev)
{
	struct stats_shard *sum = xcalloc(1, sizeof(*sum));
	shard_init(sum, t);
	for (size_t i = 0; i < t->nshards; i++)
		add_shard(sum, &t->shard[i], t, NULL);
	add_shard(sum, &t->carried, t, NULL);
	if (with_prev && t->prev) {
		struct stats_shard *p = sum_all(t->prev, true);
		add_shard(sum, p, t->prev, t);
		stats_sum_free(p);
	}
	return sum;
}

struct stats_shard *stats_sum(struct stats_table *t)
{
	stats_settle(t);
	return sum_all(t, true);
}

void stats_sum_free(struct stats_shard *sum)
{
	if (!sum)
		return;
	shard_free(sum);
	free(sum);
}

static int32_t *unmapped(size_t n)
{
	int32_t *m = xcalloc(n ? n : 1, sizeof(*m));
	for (size_t i = 0; i < n; i++)
		m[i] = -1;
	return m;
}

void stats_inherit(struct stats_table *t, struct stats_table *prev)
{
	unlink_prev(t);
	t->prev = stats_hold(prev);
	t->map_srv = unmapped(prev->nservers);
	t->map_pool = unmapped(prev->npools);
	t->map_rsrv = unmapped(prev->nrsrv);
	t->map_unpooled = unmapped(1 + prev->nroutes);
}

void stats_map_server(struct stats_table *t, size_t to_id, size_t from_id)
{
	t->map_srv[from_id] = (int32_t)to_id;
}

void stats_map_pool(struct stats_table *t, size_t to_i, size_t from_i)
{
	t->map_pool[from_i] = (int32_t)to_i;
}

void stats_map_rsrv(struct stats_table *t, size_t to_i, size_t from_i)
{
	t->map_rsrv[from_i] = (int32_t)to_i;
}

void stats_map_unpooled(struct stats_table *t, int to_r, int from_r)
{
	t->map_unpooled[1 + from_r] = 1 + to_r;
}

/* Where each row of the table before p goes in t: through p's map, then
 * t's (-1 where either drops it). Frees p's map. */
static int32_t *compose(int32_t *pmap, size_t n, const int32_t *tmap)
{
	for (size_t i = 0; i < n; i++)
		pmap[i] = pmap[i] < 0 ? -1 : tmap[pmap[i]];
	return pmap;
}

void stats_settle(struct stats_table *t)
{
	struct stats_table *p = t->prev;
	if (!p)
		return;
	stats_settle(p);
	/* Only t holds p: no snapshot of its layout is left, so no worker
	 * counts in it any more (their last release was ordered before this
	 * load). */
	if (__atomic_load_n(&p->refs, __ATOMIC_ACQUIRE) != 1)
		return;
	struct stats_shard *own = sum_all(p, false);
	add_shard(&t->carried, own, p, t);
	stats_sum_free(own);
	struct stats_table *pp = p->prev;
	if (!pp) {
		unlink_prev(t);
		return;
	}
	/* p inherits a table still counted in (a long request of an older
	 * layout): t inherits it instead, through both maps, and p goes. */
	int32_t *ms = compose(p->map_srv, pp->nservers, t->map_srv);
	int32_t *mp = compose(p->map_pool, pp->npools, t->map_pool);
	int32_t *mr = compose(p->map_rsrv, pp->nrsrv, t->map_rsrv);
	int32_t *mu = compose(p->map_unpooled, 1 + pp->nroutes, t->map_unpooled);
	p->prev = NULL; /* its hold on pp passes to t */
	p->map_srv = p->map_pool = p->map_rsrv = p->map_unpooled = NULL;
	free(t->map_srv);
	free(t->map_pool);
	free(t->map_rsrv);
	free(t->map_unpooled);
	t->map_srv = ms;
	t->map_pool = mp;
	t->map_rsrv = mr;
	t->map_unpooled = mu;
	t->prev = pp;
	stats_release(p);
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
