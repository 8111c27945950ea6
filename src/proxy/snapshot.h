/*
 * snapshot.h — the routing view the hot path reads: routes with their
 * effective split, pools with their availability, servers with their
 * effective weights.
 *
 * A snapshot is immutable once published. The control plane builds a new
 * one whenever a weight, an availability or the config changes, and the
 * workers switch to it between requests; the generation number tells a
 * worker its round-robin state must be reset.
 */
#ifndef ZDM_SNAPSHOT_H
#define ZDM_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/stats.h"

struct config;
struct cfg_pool;
struct cfg_server;
struct tls_set;

struct snap_server {
	const struct cfg_server *cfg;
	uint32_t id;            /* index over all servers, pools back to back */
	uint32_t weight;        /* the server's relative weight (runtime) */
	bool available;         /* health up, circuit not open, enabled */
	bool probing;           /* circuit half-open: report each request admitted */
};

struct snap_pool {
	const struct cfg_pool *cfg;
	struct snap_server *servers;
	size_t nservers;
	uint32_t *server_w;     /* effective server weights (0 when unavailable) */
	uint32_t first_id;      /* id of servers[0] */
	bool available;         /* some server has an effective weight */
};

/* A route: its members are pools (cfg->pools[k] is member k's pool). */
struct snap_route {
	const struct cfg_route *cfg;
	uint32_t *split;        /* per member, hundredths (runtime) */
	uint32_t *w;            /* effective split per member, see route_effective_split() */
	uint32_t first;         /* member 0's index over every route's members */
	bool available;         /* some member of its split can serve */
};

struct snapshot {
	unsigned refs;          /* holders: the worker, sessions routing with it */
	struct config *cfg;     /* held: a config lives as long as its snapshots */
	uint64_t gen;
	struct snap_pool *pools;
	size_t npools;
	struct snap_route *routes;
	size_t nroutes;
	size_t nmembers;        /* over all routes: the per-route pool counters */
	/* Per member (over all routes), the index of the counters of its
	 * pool's first server on that route (stats rsrv), theirs following. */
	uint32_t *member_srv;
	size_t nservers;        /* over all pools */
	struct stats_table *stats; /* shared with sibling snapshots */
	struct tls_set *tls;    /* the config's TLS contexts (held), NULL without TLS */
};

/* A snapshot of cfg with its configured weights, every server available,
 * with counters for nshards workers.
 * It holds cfg (config_hold) and starts with one reference. */
struct snapshot *snapshot_from_config(struct config *cfg, uint64_t gen, size_t nshards);

/* A copy of prev (same config and counters) with generation gen, to be
 * changed (split, weights, availability) and snapshot_compute()d before it
 * is published. */
struct snapshot *snapshot_derive(const struct snapshot *prev, uint64_t gen);

/* After a reload: s's counters inherit prev's, each pool, server and route
 * into the one of the same names (stats_inherit), so that what ends under
 * prev's layout is still counted. */
void snapshot_carry_stats(struct snapshot *s, const struct snapshot *prev);

/* The index over all routes of member m of route r (its counters). */
static inline uint32_t snapshot_member(const struct snapshot *s, int r, int m)
{
	return s->routes[r].first + (uint32_t)m;
}

/* The index of pool NAME, or of server NAME in pool p; -1 if none. */
int snapshot_pool_index(const struct snapshot *s, const char *name, size_t len);
int snapshot_server_index(const struct snap_pool *p, const char *name, size_t len);

struct snapshot *snapshot_hold(struct snapshot *s);
/* Frees the snapshot (and releases its config) with the last reference. */
void snapshot_release(struct snapshot *s);

/* Recomputes the effective weights after routes[].split, servers[].weight or
 * servers[].available changed (before the snapshot is published). */
void snapshot_compute(struct snapshot *s);


#endif
