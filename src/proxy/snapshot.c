/*
 * snapshot.c — building routing snapshots from the config and the runtime
 * state.
 */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/mem.h"
#include "net/tls.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"

static void routes_copy(struct snapshot *s, const struct snap_route *from)
{
	s->routes = xcalloc(s->nroutes, sizeof(*s->routes));
	for (size_t r = 0; r < s->nroutes; r++) {
		struct snap_route *sr = &s->routes[r];
		size_t n = from[r].cfg->npools;
		*sr = from[r];
		sr->split = xcalloc(n, sizeof(*sr->split));
		sr->w = xcalloc(n, sizeof(*sr->w));
		memcpy(sr->split, from[r].split, n * sizeof(*sr->split));
		memcpy(sr->w, from[r].w, n * sizeof(*sr->w));
	}
}

struct snapshot *snapshot_from_config(struct config *cfg, uint64_t gen, size_t nshards)
{
	struct snapshot *s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->cfg = config_hold(cfg);
	s->gen = gen;
	s->npools = cfg->npools;
	s->pools = xcalloc(cfg->npools, sizeof(*s->pools));

	uint32_t id = 0;
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *cp = &cfg->pools[i];
		struct snap_pool *p = &s->pools[i];
		p->cfg = cp;
		p->nservers = cp->nservers;
		p->servers = xcalloc(cp->nservers, sizeof(*p->servers));
		p->server_w = xcalloc(cp->nservers, sizeof(*p->server_w));
		p->first_id = id;
		for (size_t j = 0; j < cp->nservers; j++) {
			p->servers[j].cfg = &cp->servers[j];
			p->servers[j].id = id++;
			p->servers[j].weight = cp->servers[j].weight;
			p->servers[j].available = true;
		}
	}
	s->nservers = id;

	s->nroutes = cfg->nroutes;
	s->routes = xcalloc(cfg->nroutes, sizeof(*s->routes));
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct cfg_route *cr = &cfg->routes[r];
		struct snap_route *sr = &s->routes[r];
		sr->cfg = cr;
		sr->first = (uint32_t)cr->first;
		sr->split = xcalloc(cr->npools, sizeof(*sr->split));
		sr->w = xcalloc(cr->npools, sizeof(*sr->w));
		memcpy(sr->split, cr->split, cr->npools * sizeof(*sr->split));
		s->nmembers += cr->npools;
	}
	s->member_srv = xcalloc(s->nmembers ? s->nmembers : 1, sizeof(*s->member_srv));
	uint32_t nrsrv = 0;
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct cfg_route *cr = &cfg->routes[r];
		for (size_t m = 0; m < cr->npools; m++) {
			s->member_srv[s->routes[r].first + m] = nrsrv;
			nrsrv += (uint32_t)cfg->pools[cr->pools[m]].nservers;
		}
	}
	s->stats = stats_new(s->nmembers, id, nrsrv, cfg->nroutes, nshards);
	snapshot_compute(s);
	return s;
}

struct snapshot *snapshot_derive(const struct snapshot *prev, uint64_t gen)
{
	struct snapshot *s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->cfg = config_hold(prev->cfg);
	s->gen = gen;
	s->npools = prev->npools;
	s->nservers = prev->nservers;
	s->nroutes = prev->nroutes;
	s->nmembers = prev->nmembers;
	s->stats = stats_hold(prev->stats);
	s->tls = prev->tls ? tls_set_hold(prev->tls) : NULL;
	s->pools = xcalloc(s->npools, sizeof(*s->pools));
	for (size_t i = 0; i < s->npools; i++) {
		const struct snap_pool *pp = &prev->pools[i];
		struct snap_pool *p = &s->pools[i];
		*p = *pp;
		p->servers = xcalloc(pp->nservers, sizeof(*p->servers));
		p->server_w = xcalloc(pp->nservers, sizeof(*p->server_w));
		memcpy(p->servers, pp->servers, pp->nservers * sizeof(*p->servers));
		memcpy(p->server_w, pp->server_w, pp->nservers * sizeof(*p->server_w));
	}
	routes_copy(s, prev->routes);
	s->member_srv = xcalloc(s->nmembers ? s->nmembers : 1, sizeof(*s->member_srv));
	memcpy(s->member_srv, prev->member_srv, s->nmembers * sizeof(*s->member_srv));
	return s;
}

int snapshot_pool_index(const struct snapshot *s, const char *name, size_t len)
{
	for (size_t i = 0; i < s->npools; i++) {
		const char *n = s->pools[i].cfg->name;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return (int)i;
	}
	return -1;
}

int snapshot_server_index(const struct snap_pool *p, const char *name, size_t len)
{
	for (size_t j = 0; j < p->nservers; j++) {
		const char *n = p->servers[j].cfg->name;
		if (strlen(n) == len && memcmp(n, name, len) == 0)
			return (int)j;
	}
	return -1;
}

/* The counters of a route's pool, and of its servers on that route, go to
 * the route of the same name's member of the same pool name. */
static void carry_route(struct snapshot *s, const struct snapshot *prev, size_t pr)
{
	const struct cfg_route *pc = prev->routes[pr].cfg;
	int r = config_route_index(s->cfg, pc->name, strlen(pc->name));
	if (r < 0)
		return;
	const struct cfg_route *nc = s->routes[r].cfg;
	stats_map_unpooled(s->stats, r, (int)pr);
	for (size_t pm = 0; pm < pc->npools; pm++) {
		const struct snap_pool *pp = &prev->pools[pc->pools[pm]];
		int pi = snapshot_pool_index(s, pp->cfg->name, strlen(pp->cfg->name));
		int m = pi < 0 ? -1 : config_route_member(nc, (size_t)pi);
		if (m < 0)
			continue;
		uint32_t to = snapshot_member(s, r, m), from = snapshot_member(prev, (int)pr, (int)pm);
		stats_map_pool(s->stats, to, from);
		for (size_t j = 0; j < pp->nservers; j++) {
			const char *name = pp->servers[j].cfg->name;
			int sj = snapshot_server_index(&s->pools[pi], name, strlen(name));
			if (sj >= 0)
				stats_map_rsrv(s->stats, s->member_srv[to] + (uint32_t)sj,
				               prev->member_srv[from] + j);
		}
	}
}

void snapshot_carry_stats(struct snapshot *s, const struct snapshot *prev)
{
	stats_settle(prev->stats);
	stats_inherit(s->stats, prev->stats);
	stats_map_unpooled(s->stats, -1, -1);
	for (size_t i = 0; i < prev->npools; i++) {
		const struct snap_pool *pp = &prev->pools[i];
		int pi = snapshot_pool_index(s, pp->cfg->name, strlen(pp->cfg->name));
		if (pi < 0)
			continue;
		for (size_t j = 0; j < pp->nservers; j++) {
			const char *name = pp->servers[j].cfg->name;
			int sj = snapshot_server_index(&s->pools[pi], name, strlen(name));
			if (sj < 0)
				continue;
			stats_map_server(s->stats, s->pools[pi].servers[sj].id, pp->servers[j].id);
		}
	}
	for (size_t r = 0; r < prev->nroutes; r++)
		carry_route(s, prev, r);
}

void snapshot_compute(struct snapshot *s)
{
	for (size_t i = 0; i < s->npools; i++) {
		struct snap_pool *p = &s->pools[i];
		p->available = false;
		for (size_t j = 0; j < p->nservers; j++) {
			const struct snap_server *sv = &p->servers[j];
			p->server_w[j] = sv->available ? sv->weight : 0;
			if (p->server_w[j])
				p->available = true;
		}
	}
	for (size_t r = 0; r < s->nroutes; r++) {
		struct snap_route *sr = &s->routes[r];
		const struct cfg_route *cr = sr->cfg;
		bool avail[cr->nsplit ? cr->nsplit : 1];
		for (size_t m = 0; m < cr->nsplit; m++)
			avail[m] = s->pools[cr->pools[m]].available;
		memset(sr->w, 0, cr->npools * sizeof(*sr->w)); /* pin-only members: 0 */
		sr->available = route_effective_split(sr->split, avail, cr->nsplit, sr->w) != 0;
	}
}

struct snapshot *snapshot_hold(struct snapshot *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void snapshot_release(struct snapshot *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	config_release(s->cfg);
	stats_release(s->stats);
	tls_set_release(s->tls);
	for (size_t i = 0; i < s->npools; i++) {
		free(s->pools[i].servers);
		free(s->pools[i].server_w);
	}
	free(s->pools);
	for (size_t r = 0; r < s->nroutes; r++) {
		free(s->routes[r].split);
		free(s->routes[r].w);
	}
	free(s->routes);
	free(s->member_srv);
	free(s);
}
