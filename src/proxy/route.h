/*
 * route.h — where a request goes: pins first, then the split between pools,
 * then smooth weighted round robin over a pool's servers (SPEC §4).
 *
 * The math is pure: route_effective_split() turns the configured
 * percentages and pool availability into the weights actually used, and
 * wrr_pick() is the smooth weighted round robin (as in nginx) that both the
 * split and the server choice use. With integer weights summing to W, every
 * window of W consecutive picks holds each entry exactly its weight, and any
 * window is within one pick of the exact share for two entries.
 */
#ifndef ZDM_ROUTE_H
#define ZDM_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snapshot;

/* Smooth weighted round robin over n entries with weights w (0 = skip), cur
 * being the caller's running state (zeroed to start). Returns the index
 * picked, or -1 if every weight is 0. exclude (or -1) is skipped. */
int wrr_pick(int32_t *cur, const uint32_t *w, size_t n, int exclude);

/* The split actually applied: out[i] = split[i] for available pools; if
 * all available pools are at 0, the baseline pool (index 0) takes all when
 * available, else the available pools share equally. Returns the sum of
 * out (0: nothing available). */
uint32_t route_effective_split(const uint32_t *split, const bool *avail, size_t n, uint32_t *out);

/* Per-worker round-robin state for one snapshot generation. */
struct route_rr {
	uint64_t gen;
	int32_t *pool_cur;    /* one per route member (snapshot_member) */
	int32_t *server_cur;  /* one per server, pools back to back */
};

struct route_choice {
	int route;            /* index in the snapshot's routes */
	int member;           /* the pool's index among the route's members */
	int pool;             /* index in the snapshot's pools */
	int server;           /* index within the pool */
	bool pinned;
};

/* Chooses pool and server on route for a request matching a pin of its
 * pool member pin_member (-1 if none). Returns 0, or 503 when nothing can
 * serve it. */
int route_pick(const struct snapshot *s, struct route_rr *rr, int route, int pin_member,
               struct route_choice *out);

/* After a connect failure on prev: another available server, in the same
 * pool if it has one, else by the route's split without that pool (a
 * pinned request stays in its pool). Returns 0, or 503 when there is
 * none. */
int route_retry(const struct snapshot *s, struct route_rr *rr, const struct route_choice *prev,
                struct route_choice *out);

/* Brings rr up to the snapshot's generation (resets the cursors). */
void route_rr_sync(struct route_rr *rr, const struct snapshot *s);
void route_rr_free(struct route_rr *rr);

#endif
