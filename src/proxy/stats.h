/*
 * stats.h — the counters the hot path keeps and the control plane reads:
 * per server (requests, failures by kind, in flight), per route and pool
 * (latency histogram, pinned requests, a 60-second sliding window), per
 * route, pool and server (responses by status class), and per route for
 * requests answered before a pool was chosen.
 *
 * A table belongs to one server layout (one config): every snapshot of that
 * config shares it. It has one shard per worker thread: each worker counts
 * in its own shard (plain loads and stores, single writer: no lock, no
 * atomic read-modify-write, no allocation) and the control plane sums the
 * shards when it reports.
 *
 * A reload makes a table for the new layout that inherits the previous
 * one (stats_inherit): the previous table is kept, with where each of its
 * counters goes by name, and summed into the new one's report for as long
 * as requests begun under it still count in it; once none does (only the
 * heir holds it), the control plane folds it into the heir's carried
 * counters and frees it (stats_settle), and the heir inherits what that
 * table inherited, through both maps: a long request of an old layout
 * keeps its own table, never the ones after it. So a request in flight
 * across reloads is counted, and no counter goes backwards.
 */
#ifndef ZDM_STATS_H
#define ZDM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status classes counted: 1xx..5xx → 0..4 (1xx only for 101 tunnels). */
#define STATS_CLASSES 5
/* Upstream error kinds, as enum up_error. */
#define STATS_ERROR_KINDS 4
/* zdm_request_duration_seconds buckets: 1 ms .. 10 s. */
#define STATS_HIST_BUCKETS 13
/* The sliding window: one slot a second, fine latency buckets. */
#define STATS_WINDOW_SECONDS 60
#define STATS_WINDOW_BUCKETS 128

extern const double stats_hist_bounds[STATS_HIST_BUCKETS];
/* The upper bound of window latency bucket k, in µs: 50 µs × 1.1^k. */
uint32_t stats_window_bound_us(int k);
extern const char *const stats_class_names[STATS_CLASSES];
extern const char *const stats_error_names[STATS_ERROR_KINDS];

struct srv_stats {
	uint64_t requests;      /* requests sent to it */
	uint64_t failures;      /* exchanges that failed */
	int64_t inflight;       /* being served now */
	uint64_t errors[STATS_ERROR_KINDS];
};

struct window_slot {
	uint64_t second;        /* which second it counts */
	uint32_t count, count_5xx;
	uint32_t lat[STATS_WINDOW_BUCKETS];
};

struct pool_stats {
	uint64_t pinned;
	uint64_t codes[STATS_CLASSES];   /* answered by the proxy itself (503 ...) */
	uint64_t hist[STATS_HIST_BUCKETS + 1];  /* per bucket, the last is +Inf */
	uint64_t count;
	uint64_t sum_us;
	struct window_slot win[STATS_WINDOW_SECONDS];
};

/* Responses of one server on one route. */
struct route_srv_stats {
	uint64_t codes[STATS_CLASSES];
};

/* The counters of one worker (or their sum). */
struct stats_shard {
	struct srv_stats *srv;            /* [nservers] */
	struct pool_stats *pool;          /* [npools]: per route and pool (snapshot member) */
	struct route_srv_stats *rsrv;     /* [nrsrv]: per route, pool and server */
	/* Answered before a pool was chosen, by status class: [0] no route
	 * matched, [1 + r] route r had no pool to serve. */
	uint64_t (*unpooled)[STATS_CLASSES]; /* [1 + nroutes] */
};

struct stats_table {
	unsigned refs;
	size_t nservers, npools, nrsrv, nroutes, nshards;
	struct stats_shard *shard;        /* [nshards], one per worker */
	/* Folded from the tables it inherited: written and read by the
	 * control plane only. */
	struct stats_shard carried;
	/* The table inherited and not yet folded (held), and for each of its
	 * servers, pools, route servers and unpooled rows the index here
	 * (-1: not carried over). */
	struct stats_table *prev;
	int32_t *map_srv, *map_pool, *map_rsrv, *map_unpooled;
	/* Per server, the consecutive failures its circuit breaker has
	 * counted: written by the control plane, read by the workers (who
	 * report a success only when it can reset a count). */
	uint32_t *streak;
	/* Per server, the probe slots its half-open circuit has free: filled
	 * by the control plane as the circuit turns half-open, emptied as it
	 * leaves that state, one given back when a probe ends without an
	 * outcome. A worker takes one (stats_take_probe) before it sends a
	 * probe, so half_open_probes holds across workers without a lock. */
	uint32_t *probe_slots;
};

/* A counter written by one thread and read by others: plain loads and
 * stores, without tearing. */
#define STAT_ADD(lv, n)                                                                            \
	__atomic_store_n(&(lv), __atomic_load_n(&(lv), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define STAT_GET(lv) __atomic_load_n(&(lv), __ATOMIC_RELAXED)

struct stats_table *stats_new(size_t npools, size_t nservers, size_t nrsrv, size_t nroutes,
                              size_t nshards);
/* Takes a probe slot of server id: false when none is free. */
bool stats_take_probe(struct stats_table *t, uint32_t id);
struct stats_table *stats_hold(struct stats_table *t);
void stats_release(struct stats_table *t);

/* A complete response of status (0 if none was sent) for pool, the
 * snapshot member (or -1 when none was chosen, for route, or -1 when no
 * route matched), taking duration_us, at monotonic second now_s. */
void stats_record(struct stats_shard *sh, int pool, int route, int status, uint64_t duration_us,
                  uint64_t now_s);

/* The sum of t's shards, its carried counters and those of the tables it
 * inherits, in a shard of its own (stats_sum_free). Control plane only:
 * it settles t first. */
struct stats_shard *stats_sum(struct stats_table *t);
void stats_sum_free(struct stats_shard *sum);

/* t, a new table, inherits prev (held until it is folded): nothing of
 * prev is carried over until a stats_map_*() says where it goes. */
void stats_inherit(struct stats_table *t, struct stats_table *prev);
/* Where server from_id of t->prev counts in t (to_id); the same for a
 * pool member, a route server, and the unpooled row of a route (-1: no
 * route). */
void stats_map_server(struct stats_table *t, size_t to_id, size_t from_id);
void stats_map_pool(struct stats_table *t, size_t to_i, size_t from_i);
void stats_map_rsrv(struct stats_table *t, size_t to_i, size_t from_i);
void stats_map_unpooled(struct stats_table *t, int to_r, int from_r);
/* Folds the inherited tables no request counts in any more into t's
 * carried counters, and frees them. Control plane only. */
void stats_settle(struct stats_table *t);
/* Adds the counters of from into to (a pool over several routes). */
void stats_pool_add(struct pool_stats *to, const struct pool_stats *from);

/* The sliding window of a pool over the last STATS_WINDOW_SECONDS. */
struct window_summary {
	uint64_t requests;
	uint64_t errors_5xx;
	double seconds;         /* the span it covers */
	double p50_ms, p95_ms, p99_ms;
};
void stats_window(const struct pool_stats *p, uint64_t now_s, double uptime_s,
                  struct window_summary *out);

static inline int stats_class(int status)
{
	int c = status / 100 - 1;
	return c < 0 ? 0 : c >= STATS_CLASSES ? STATS_CLASSES - 1 : c;
}

#endif
