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

struct snapshot *snapshot_from_config(struct config *cfg, uint64_t gen, size_t nshards)
{
	struct snapshot *s = xcalloc(1, sizeof(*s));
	s->refs = 1;
	s->cfg = config_hold(cfg);
	s->gen = gen;
	s->npools = cfg->npools;
	s->pools = xcalloc(cfg->npools, sizeof(*s->pools));
	s->pool_w = xcalloc(cfg->npools, sizeof(*s->pool_w));

	uint32_t id = 0;
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *cp = &cfg->pools[i];
		struct snap_pool *p = &s->pools[i];
		p->cfg = cp;
		p->split = cfg->split[i];
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
	s->stats = stats_new(cfg->npools, id, nshards);
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
	s->stats = stats_hold(prev->stats);
	s->tls = prev->tls ? tls_set_hold(prev->tls) : NULL;
	s->pools = xcalloc(s->npools, sizeof(*s->pools));
	s->pool_w = xcalloc(s->npools, sizeof(*s->pool_w));
	memcpy(s->pool_w, prev->pool_w, s->npools * sizeof(*s->pool_w));
	for (size_t i = 0; i < s->npools; i++) {
		const struct snap_pool *pp = &prev->pools[i];
		struct snap_pool *p = &s->pools[i];
		*p = *pp;
		p->servers = xcalloc(pp->nservers, sizeof(*p->servers));
		p->server_w = xcalloc(pp->nservers, sizeof(*p->server_w));
		memcpy(p->servers, pp->servers, pp->nservers * sizeof(*p->servers));
		memcpy(p->server_w, pp->server_w, pp->nservers * sizeof(*p->server_w));
	}
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

void snapshot_carry_stats(struct snapshot *s, const struct snapshot *prev)
{
	stats_copy_unrouted(s->stats, prev->stats);
	for (size_t i = 0; i < prev->npools; i++) {
		const struct snap_pool *pp = &prev->pools[i];
		int pi = snapshot_pool_index(s, pp->cfg->name, strlen(pp->cfg->name));
		if (pi < 0)
			continue;
		stats_copy_pool(s->stats, (size_t)pi, prev->stats, i);
		for (size_t j = 0; j < pp->nservers; j++) {
			const char *name = pp->servers[j].cfg->name;
			int sj = snapshot_server_index(&s->pools[pi], name, strlen(name));
			if (sj < 0)
				continue;
			stats_copy_server(s->stats, s->pools[pi].servers[sj].id, prev->stats,
			                  pp->servers[j].id);
		}
	}
}

void snapshot_compute(struct snapshot *s)
{
	bool *avail = xcalloc(s->npools, sizeof(*avail));
	uint32_t *split = xcalloc(s->npools, sizeof(*split));

	for (size_t i = 0; i < s->npools; i++) {
		struct snap_pool *p = &s->pools[i];
		p->available = false;
		for (size_t j = 0; j < p->nservers; j++) {
			const struct snap_server *sv = &p->servers[j];
			p->server_w[j] = sv->available ? sv->weight : 0;
			if (p->server_w[j])
				p->available = true;
		}
		avail[i] = p->available;
		split[i] = p->split;
	}
	route_effective_split(split, avail, s->npools, s->pool_w);
	free(avail);
	free(split);
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
	free(s->pool_w);
	free(s);
}
