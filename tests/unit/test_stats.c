/*
 * test_stats.c — the counters across a reload: a table inherits the
 * previous layout's, what ends under the old layout after the reload is
 * still counted, each row where its map says, and the old table is folded
 * and freed once nothing counts in it.
 */
#include <stdint.h>

#include "proxy/stats.h"
#include "tap.h"

/* A response of status for server id, pool member p (what session.c's
 * finish_request counts). */
static void answer(struct stats_table *t, size_t shard, size_t id, int p, size_t rsrv, int status)
{
	struct stats_shard *sh = &t->shard[shard];
	STAT_ADD(sh->srv[id].requests, 1);
	STAT_ADD(sh->rsrv[rsrv].codes[stats_class(status)], 1);
	stats_record(sh, p, 0, status, 1500, 100);
}

int main(void)
{
	/* Old layout: servers a0 a1 (pool A), b0 (pool B); one route with
	 * members A, B; two workers. */
	struct stats_table *old = stats_new(2, 3, 3, 1, 2);
	answer(old, 0, 0, 0, 0, 200);
	answer(old, 1, 1, 0, 1, 200);
	answer(old, 1, 2, 1, 2, 503);
	stats_record(&old->shard[0], -1, -1, 404, 10, 100);
	stats_record(&old->shard[1], -1, 0, 503, 10, 100);

	/* New layout: pool B first (b0), pool A kept only a1, a new server
	 * c0; the route's members B, A. */
	struct stats_table *nw = stats_new(2, 3, 3, 1, 2);
	stats_inherit(nw, old);
	stats_map_unpooled(nw, -1, -1);
	stats_map_unpooled(nw, 0, 0);
	stats_map_server(nw, 0, 2); /* b0 */
	stats_map_server(nw, 1, 1); /* a1 */
	stats_map_pool(nw, 0, 1);
	stats_map_pool(nw, 1, 0);
	stats_map_rsrv(nw, 0, 2);
	stats_map_rsrv(nw, 1, 1);

	struct stats_shard *s = stats_sum(nw);
	CHECK_EQ_INT(s->srv[0].requests, 1, "b0's request is carried over to its new id");
	CHECK_EQ_INT(s->srv[1].requests, 1, "a1's request too");
	CHECK_EQ_INT(s->srv[2].requests, 0, "the new server starts at 0 (a0, gone, is not moved to it)");
	CHECK_EQ_INT(s->pool[1].count, 2, "pool A's responses go to its new member index");
	CHECK_EQ_INT(s->pool[0].count, 1, "pool B's response too");
	CHECK_EQ_INT(s->rsrv[0].codes[4], 1, "b0's 503 on the route");
	CHECK_EQ_INT(s->unpooled[0][3], 1, "the 404 of no route");
	CHECK_EQ_INT(s->unpooled[1][4], 1, "the route's 503 before a pool was chosen");
	stats_sum_free(s);

	/* A request in flight across the reload ends under the old layout,
	 * while the new one counts its own. */
	STAT_ADD(old->shard[0].srv[2].inflight, 1);
	s = stats_sum(nw);
	CHECK_EQ_INT(s->srv[0].inflight, 1, "in flight under the old layout: seen on the server");
	stats_sum_free(s);
	STAT_ADD(old->shard[0].srv[2].inflight, -1);
	answer(old, 0, 2, 1, 2, 200);
	answer(nw, 1, 0, 0, 0, 200);
	s = stats_sum(nw);
	CHECK_EQ_INT(s->srv[0].requests, 3, "b0: its old request, the one ended after the reload, "
	                                    "and a new one");
	CHECK_EQ_INT(s->rsrv[0].codes[1], 2, "both 2xx of b0 on the route");
	CHECK_EQ_INT(s->pool[0].count, 3, "pool B: three responses");
	CHECK(nw->prev == old, "the old table is kept while a snapshot holds it");
	stats_sum_free(s);

	/* Its last snapshot goes: folded at the next report, and freed
	 * (the sanitizer build sees a leak or a use after free). */
	stats_release(old);
	s = stats_sum(nw);
	CHECK(nw->prev == NULL, "folded once only the heir holds it");
	CHECK_EQ_INT(s->srv[0].requests, 3, "nothing lost in the fold (b0)");
	CHECK_EQ_INT(s->srv[1].requests, 1, "(a1)");
	CHECK_EQ_INT(s->pool[1].count, 2, "(pool A)");
	CHECK_EQ_INT(s->unpooled[1][4], 1, "(the route's 503)");
	CHECK_EQ_INT(s->pool[0].hist[1], 3, "the latency histogram is carried (1.5 ms: 2nd bucket)");
	stats_sum_free(s);

	/* Two reloads while a request of the first layout is still running:
	 * the chain folds from its oldest end. */
	struct stats_table *t1 = stats_new(1, 1, 1, 1, 1), *t2 = stats_new(1, 1, 1, 1, 1),
	                   *t3 = stats_new(1, 1, 1, 1, 1);
	answer(t1, 0, 0, 0, 0, 200);
	stats_inherit(t2, t1);
	stats_map_server(t2, 0, 0);
	stats_map_pool(t2, 0, 0);
	stats_inherit(t3, t2);
	stats_map_server(t3, 0, 0);
	stats_map_pool(t3, 0, 0);
	answer(t2, 0, 0, 0, 0, 200);
	stats_release(t2); /* t2's snapshots are gone, t1's are not */
	answer(t1, 0, 0, 0, 0, 500);
	s = stats_sum(t3);
	CHECK(t3->prev == t1, "a table between two is folded while the older one is in use: "
	                      "the newest inherits the oldest (so a long request does not keep "
	                      "every later table)");
	CHECK_EQ_INT(s->srv[0].requests, 3, "two reloads later, every answer counts once");
	stats_sum_free(s);
	answer(t1, 0, 0, 0, 0, 200);
	s = stats_sum(t3);
	CHECK_EQ_INT(s->srv[0].requests, 4, "and the oldest layout's later ones, through both maps");
	stats_sum_free(s);
	stats_release(t1);
	s = stats_sum(t3);
	CHECK(t3->prev == NULL, "then it folds too");
	CHECK_EQ_INT(s->pool[0].count, 4, "with its counts");
	CHECK_EQ_INT(s->pool[0].win[100 % STATS_WINDOW_SECONDS].count_5xx, 1,
	             "and the 60 s window (the 5xx)");
	stats_sum_free(s);

	stats_release(t3);
	stats_release(nw);
	return tap_done();
}
