/*
 * route.c — pins, the split and smooth weighted round robin.
 *
 * The hot path calls route_pick() once per request: two passes of
 * wrr_pick() over a handful of integers, no allocation. Effective weights
 * are computed when a snapshot is built, not here.
 */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/mem.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"

int wrr_pick(int32_t *cur, const uint32_t *w, size_t n, int exclude)
{
	int64_t total = 0;
	int best = -1;

	for (size_t i = 0; i < n; i++) {
		if (!w[i] || (int)i == exclude)
			continue;
		cur[i] += (int32_t)w[i];
		total += w[i];
		if (best < 0 || cur[i] > cur[best])
			best = (int)i;
	}
	if (best >= 0)
		cur[best] -= (int32_t)total;
	return best;
}

uint32_t route_effective_split(const uint32_t *split, const bool *avail, size_t n, uint32_t *out)
{
	uint32_t sum = 0;
	size_t navail = 0;

	for (size_t i = 0; i < n; i++) {
		out[i] = avail[i] ? split[i] : 0;
		sum += out[i];
		navail += avail[i];
	}
	if (sum || !navail)
		return sum;
	/* Every available pool is at 0%: the old version is the fallback. */
	if (avail[0]) {
		out[0] = 1;
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = avail[i] ? 1 : 0;
	return (uint32_t)navail;
}

void route_rr_sync(struct route_rr *rr, const struct snapshot *s)
{
	if (rr->pool_cur && rr->gen == s->gen)
		return;
	free(rr->pool_cur);
	free(rr->server_cur);
	rr->pool_cur = xcalloc(s->nmembers ? s->nmembers : 1, sizeof(*rr->pool_cur));
	rr->server_cur = xcalloc(s->nservers ? s->nservers : 1, sizeof(*rr->server_cur));
	rr->gen = s->gen;
}

void route_rr_free(struct route_rr *rr)
{
	free(rr->pool_cur);
	free(rr->server_cur);
	rr->pool_cur = rr->server_cur = NULL;
}

static int pick_server(const struct snapshot *s, struct route_rr *rr, int pool, int exclude)
{
	const struct snap_pool *p = &s->pools[pool];
	return wrr_pick(rr->server_cur + p->first_id, p->server_w, p->nservers, exclude);
}

int route_pick(const struct snapshot *s, struct route_rr *rr, int route, int pin_member,
               struct route_choice *out)
{
	const struct snap_route *r = &s->routes[route];
	int m;

	route_rr_sync(rr, s);
	out->route = route;
	out->pinned = pin_member >= 0;
	if (pin_member >= 0) {
		/* A canary tester must see the pinned pool or an error, never
		 * silently the other version. */
		m = pin_member;
		if (!s->pools[r->cfg->pools[m]].available)
			return 503;
	} else {
		m = wrr_pick(rr->pool_cur + r->first, r->w, r->cfg->nsplit, -1);
		if (m < 0)
			return 503;
	}
	int pool = (int)r->cfg->pools[m];
	int server = pick_server(s, rr, pool, -1);
	if (server < 0)
		return 503;
	out->member = m;
	out->pool = pool;
	out->server = server;
	return 0;
}

int route_retry(const struct snapshot *s, struct route_rr *rr, const struct route_choice *prev,
                struct route_choice *out)
{
	route_rr_sync(rr, s);
	*out = *prev;
	int server = pick_server(s, rr, prev->pool, prev->server);
	if (server >= 0) {
		out->server = server;
		return 0;
	}
	if (prev->pinned)
		return 503;

	/* The pool has no other server: the route's split over its other
	 * pools. This is the rare path, so the weights are computed here. */
	const struct snap_route *r = &s->routes[prev->route];
	size_t n = r->cfg->nsplit;
	bool *avail = xcalloc(n ? n : 1, sizeof(*avail));
	uint32_t *w = xcalloc(n ? n : 1, sizeof(*w));
	for (size_t i = 0; i < n; i++)
		avail[i] = s->pools[r->cfg->pools[i]].available && (int)i != prev->member;
	int m = -1;
	if (route_effective_split(r->split, avail, n, w))
		m = wrr_pick(rr->pool_cur + r->first, w, n, -1);
	free(avail);
	free(w);
	if (m < 0)
		return 503;
	int pool = (int)r->cfg->pools[m];
	server = pick_server(s, rr, pool, -1);
	if (server < 0)
		return 503;
	out->member = m;
	out->pool = pool;
	out->server = server;
	return 0;
}
