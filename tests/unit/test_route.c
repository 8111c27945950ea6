/*
 * test_route.c — the routing math (src/proxy/route.c): smooth weighted round robin
 * and how evenly it spreads picks, the effective split when pools are down or
 * at 0%, pins, and retries after a connect failure, over snapshots built from
 * a parsed config (src/proxy/snapshot.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"
#include "tap.h"

/* old: two servers weighted 3:1, new: one server, dark: one server at weight
 * 0 (never available). The split sends 90% to old and 10% to new. */
static const char route_yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
                                 "pools:\n"
                                 "  old:\n"
                                 "    servers:\n"
                                 "      - {address: \"127.0.0.1:9001\", weight: 3}\n"
                                 "      - {address: \"127.0.0.1:9002\", weight: 1}\n"
                                 "  new:\n"
                                 "    servers: [\"127.0.0.1:9101\"]\n"
                                 "  dark:\n"
                                 "    servers: [{address: \"127.0.0.1:9201\", weight: 0}]\n"
                                 "split: {old: 90, new: 10, dark: 0}\n"
                                 "pins:\n"
                                 "  - {header: X-Canary, value: \"1\", pool: new}\n"
                                 "  - {header: X-Dark, value: \"1\", pool: dark}\n";

enum { P_OLD, P_NEW, P_DARK };

static struct config *load_config(const char *yaml)
{
	struct config_errors errs;
	struct config *cfg;

	memset(&errs, 0, sizeof(errs));
	cfg = config_parse("route.yaml", yaml, strlen(yaml), &errs);
	for (size_t i = 0; i < errs.n; i++)
		printf("#   config error: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (!cfg) {
		printf("Bail out! test config does not load\n");
		exit(1);
	}
	return cfg;
}

/* Counts sliding windows of len picks (over seq[0, n)) in which entry 0
 * appears fewer than lo or more than hi times. */
static int windows_outside(const int *seq, size_t n, size_t len, int lo, int hi)
{
	int bad = 0, count = 0;

	for (size_t i = 0; i < n; i++) {
		count += seq[i] == 0;
		if (i >= len)
			count -= seq[i - len] == 0;
		if (i + 1 >= len && (count < lo || count > hi))
			bad++;
	}
	return bad;
}

static void test_wrr_90_10(void)
{
	enum { N = 10000 };
	static int seq[N];
	const uint32_t w[2] = {90, 10};
	int32_t cur[2] = {0, 0};
	int bad_pick = 0, bad_aligned = 0;

	for (size_t i = 0; i < N; i++) {
		seq[i] = wrr_pick(cur, w, 2, -1);
		bad_pick += seq[i] != 0 && seq[i] != 1;
	}
	CHECK_EQ_INT(bad_pick, 0, "wrr 90/10: every pick is entry 0 or 1");
	for (size_t s = 0; s < N; s += 100) {
		int c = 0;
		for (size_t i = s; i < s + 100; i++)
			c += seq[i] == 0;
		bad_aligned += c != 90;
	}
	CHECK_EQ_INT(bad_aligned, 0, "wrr 90/10: each block of 100 picks is exactly 90/10");
	CHECK_EQ_INT(windows_outside(seq, N, 100, 90, 90), 0,
	             "wrr 90/10: every sliding window of 100 (its period) is exactly 90/10");
	CHECK_EQ_INT(windows_outside(seq, N, 100, 89, 91), 0,
	             "wrr 90/10: every sliding window of 100 within one pick of 90");
	CHECK(cur[0] == 0 && cur[1] == 0, "wrr 90/10: state back to zero after whole periods");
}

static void test_wrr_thirds(void)
{
	enum { N = 20000 };
	static int seq[N];
	const uint32_t w[2] = {3333, 6667};
	int32_t cur[2] = {0, 0};
	int c0 = 0;

	for (size_t i = 0; i < N; i++) {
		seq[i] = wrr_pick(cur, w, 2, -1);
		c0 += seq[i] == 0;
	}
	CHECK_EQ_INT(c0, 6666, "wrr 33.33/66.67: two periods hold exactly 2 x 3333");
	/* 33.33 +- 1 admits 33 and 34; 66.67 +- 1 admits 66 and 67, i.e. 34
	 * and 33 picks of entry 0. */
	CHECK_EQ_INT(windows_outside(seq, N, 100, 33, 34), 0,
	             "wrr 33.33/66.67: every sliding window of 100 within one pick of the share");
	/* The same over a smaller window: never two picks off. */
	CHECK_EQ_INT(windows_outside(seq, N, 10, 3, 4), 0,
	             "wrr 33.33/66.67: every sliding window of 10 holds 3 or 4 of entry 0");
}

static void test_wrr_smooth(void)
{
	const uint32_t w[2] = {3, 1};
	int32_t cur[2] = {0, 0};
	int prev = -1, twice = 0, light = 0;
	char pattern[9] = "";

	for (int i = 0; i < 400; i++) {
		int k = wrr_pick(cur, w, 2, -1);
		if (i < 8)
			pattern[i] = k == 0 ? 'a' : 'b';
		twice += k == 1 && prev == 1;
		light += k == 1;
		prev = k;
	}
	CHECK_EQ_STR(pattern, "aabaaaba", "wrr 3:1: interleaved pattern a a b a");
	CHECK_EQ_INT(twice, 0, "wrr 3:1: the light entry is never picked twice in a row");
	CHECK_EQ_INT(light, 100, "wrr 3:1: a quarter of the picks go to the light entry");
}

static void test_wrr_skips(void)
{
	const uint32_t w[4] = {0, 5, 0, 2};
	const uint32_t ones[3] = {1, 1, 1};
	const uint32_t zeros[3] = {0, 0, 0};
	int32_t cur[4] = {0, 0, 0, 0};
	int bad = 0, counts[3] = {0, 0, 0};

	for (int i = 0; i < 70; i++) {
		int k = wrr_pick(cur, w, 4, -1);
		bad += k != 1 && k != 3;
	}
	CHECK_EQ_INT(bad, 0, "wrr: entries of weight 0 are never picked");
	CHECK(cur[0] == 0 && cur[2] == 0, "wrr: zero-weight entries keep no state");

	memset(cur, 0, sizeof(cur));
	for (int i = 0; i < 60; i++) {
		int k = wrr_pick(cur, ones, 3, 1);
		if (k >= 0 && k < 3)
			counts[k]++;
	}
	CHECK(counts[1] == 0 && counts[0] == 30 && counts[2] == 30,
	      "wrr: the excluded entry is skipped, the others share equally");

	memset(cur, 0, sizeof(cur));
	CHECK_EQ_INT(wrr_pick(cur, zeros, 3, -1), -1, "wrr: all weights 0 gives -1");
	CHECK_EQ_INT(wrr_pick(cur, w, 2, 1), -1, "wrr: the only weighted entry excluded gives -1");
	CHECK_EQ_INT(wrr_pick(cur, w, 0, -1), -1, "wrr: no entries gives -1");
}

static void test_effective_split(void)
{
	uint32_t out[3];
	uint32_t sum;

	{
		const uint32_t split[3] = {5000, 3000, 2000};
		const bool avail[3] = {false, true, true};
		int32_t cur[3] = {0, 0, 0};
		int counts[3] = {0, 0, 0};

		sum = route_effective_split(split, avail, 3, out);
		CHECK_EQ_INT(sum, 5000,
		             "split: an unavailable pool's share is removed from the sum");
		CHECK(out[0] == 0 && out[1] == 3000 && out[2] == 2000,
		      "split: an unavailable pool gets 0, the others keep their weights");
		for (int i = 0; i < 500; i++) {
			int k = wrr_pick(cur, out, 3, -1);
			if (k >= 0)
				counts[k]++;
		}
		CHECK(counts[0] == 0 && counts[1] == 300 && counts[2] == 200,
		      "split: the others take the share in proportion (60/40)");
	}
	{
		const uint32_t split[3] = {0, 0, 10000};
		const bool avail[3] = {true, true, false};

		sum = route_effective_split(split, avail, 3, out);
		CHECK(sum > 0 && out[0] == sum && out[1] == 0 && out[2] == 0,
		      "split: all available pools at 0% -> the baseline takes everything");
	}
	{
		const uint32_t split[3] = {10000, 0, 0};
		const bool avail[3] = {false, true, true};

		sum = route_effective_split(split, avail, 3, out);
		CHECK(sum > 0 && out[0] == 0 && out[1] == out[2] && out[1] * 2 == sum,
		      "split: at 0% with the baseline down -> the available pools share equally");
	}
	{
		const uint32_t split[3] = {5000, 5000, 0};
		const bool avail[3] = {false, false, false};

		sum = route_effective_split(split, avail, 3, out);
		CHECK(sum == 0 && out[0] == 0 && out[1] == 0 && out[2] == 0,
		      "split: nothing available -> sum 0");
	}
	{
		const uint32_t split[2] = {9000, 1000};
		const bool avail[2] = {true, true};

		sum = route_effective_split(split, avail, 2, out);
		CHECK(sum == 10000 && out[0] == 9000 && out[1] == 1000,
		      "split: all available -> the configured split unchanged");
	}
}

static void test_pick(struct config *cfg)
{
	struct snapshot *s = snapshot_from_config(cfg, 1, 1);
	struct route_rr rr = {0};
	struct route_choice c;
	int counts[3] = {0, 0, 0}, other = 0, rc;

	CHECK(s->npools == 3 && s->nservers == 4, "snapshot: three pools, four servers");
	CHECK(s->pools[P_OLD].available && s->pools[P_NEW].available && !s->pools[P_DARK].available,
	      "snapshot: a pool whose servers all weigh 0 is unavailable");

	for (int i = 0; i < 50; i++) {
		memset(&c, 0xff, sizeof(c));
		rc = route_pick(s, &rr, 0, P_NEW, &c);
		other += rc != 0 || c.pool != P_NEW || c.server != 0 || !c.pinned;
	}
	CHECK_EQ_INT(other, 0, "pick: a pinned request always goes to the pinned pool");

	rc = route_pick(s, &rr, 0, P_DARK, &c);
	CHECK_EQ_INT(rc, 503, "pick: pinned to a pool whose servers all weigh 0 -> 503");

	route_rr_free(&rr);
	for (int i = 0; i < 1000; i++) {
		if (route_pick(s, &rr, 0, -1, &c) == 0 && !c.pinned)
			counts[c.pool]++;
	}
	CHECK(counts[P_OLD] == 900 && counts[P_NEW] == 100 && counts[P_DARK] == 0,
	      "pick: split 90/10 over 1000 picks is exactly 900/100");
	if (counts[P_OLD] != 900 || counts[P_NEW] != 100)
		printf("#   old %d new %d dark %d\n", counts[P_OLD], counts[P_NEW], counts[P_DARK]);

	/* The old pool's servers at 3:1 over the old pool's picks. */
	int sv[2] = {0, 0};
	route_rr_free(&rr);
	for (int i = 0; i < 400; i++) {
		if (route_pick(s, &rr, 0, P_OLD, &c) == 0)
			sv[c.server]++;
	}
	CHECK(sv[0] == 300 && sv[1] == 100, "pick: servers of a pool by weight (3:1)");

	/* The new pool goes down: every request goes to old. */
	s->pools[P_NEW].servers[0].available = false;
	snapshot_compute(s);
	CHECK(!s->pools[P_NEW].available && s->routes[0].w[P_NEW] == 0,
	      "snapshot_compute: a pool without available servers gets no weight");
	memset(counts, 0, sizeof(counts));
	route_rr_free(&rr);
	for (int i = 0; i < 200; i++) {
		if (route_pick(s, &rr, 0, -1, &c) == 0)
			counts[c.pool]++;
	}
	CHECK(counts[P_OLD] == 200 && counts[P_NEW] == 0,
	      "pick: an unavailable pool gets nothing, the other gets everything");
	CHECK_EQ_INT(route_pick(s, &rr, 0, P_NEW, &c), 503,
	             "pick: pinned to an unavailable pool -> 503, never the other pool");

	/* The old pool goes down too: only new's split remains, but new is
	 * down: nothing can serve. */
	s->pools[P_OLD].servers[0].available = false;
	s->pools[P_OLD].servers[1].available = false;
	snapshot_compute(s);
	CHECK_EQ_INT(route_pick(s, &rr, 0, -1, &c), 503, "pick: nothing available -> 503");

	/* Back up, but old at 0%: the split goes all to new. */
	s->pools[P_OLD].servers[0].available = true;
	s->pools[P_OLD].servers[1].available = true;
	s->pools[P_NEW].servers[0].available = true;
	s->routes[0].split[P_OLD] = 0;
	s->routes[0].split[P_NEW] = 10000;
	snapshot_compute(s);
	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < 20; i++) {
		if (route_pick(s, &rr, 0, -1, &c) == 0)
			counts[c.pool]++;
	}
	CHECK_EQ_INT(counts[P_NEW], 20, "pick: split changed to 0/100 sends everything to new");

	route_rr_free(&rr);
	snapshot_release(s);
}

static void test_retry(struct config *cfg)
{
	struct snapshot *s = snapshot_from_config(cfg, 7, 1);
	struct route_rr rr = {0};
	struct route_choice prev, c;
	int bad = 0, rc;

	/* Another server of the same pool when the pool has one. */
	for (int i = 0; i < 20; i++) {
		prev = (struct route_choice){.route = 0, .member = P_OLD, .pool = P_OLD, .server = i % 2, .pinned = false};
		rc = route_retry(s, &rr, &prev, &c);
		bad += rc != 0 || c.pool != P_OLD || c.server != 1 - prev.server;
	}
	CHECK_EQ_INT(bad, 0, "retry: another server of the same pool when there is one");

	/* new has a single server: another pool by the split without new. */
	prev = (struct route_choice){.route = 0, .member = P_NEW, .pool = P_NEW, .server = 0, .pinned = false};
	rc = route_retry(s, &rr, &prev, &c);
	CHECK(rc == 0 && c.pool == P_OLD && !c.pinned,
	      "retry: a pool without another server -> another pool by the split");

	/* Pinned: stays in its pool, and 503 with no other server there. */
	prev.pinned = true;
	rc = route_retry(s, &rr, &prev, &c);
	CHECK_EQ_INT(rc, 503, "retry: pinned, no other server in the pool -> 503");
	prev = (struct route_choice){.route = 0, .member = P_OLD, .pool = P_OLD, .server = 0, .pinned = true};
	rc = route_retry(s, &rr, &prev, &c);
	CHECK(rc == 0 && c.pool == P_OLD && c.server == 1 && c.pinned,
	      "retry: pinned with another server in the pool -> that server");

	/* old fails with its other server down: new, although it is at 10%. */
	s->pools[P_OLD].servers[1].available = false;
	snapshot_compute(s);
	prev = (struct route_choice){.route = 0, .member = P_OLD, .pool = P_OLD, .server = 0, .pinned = false};
	rc = route_retry(s, &rr, &prev, &c);
	CHECK(rc == 0 && c.pool == P_NEW && c.server == 0,
	      "retry: old's other server down -> the new pool");

	/* old fails and new is down too: nothing left. */
	s->pools[P_NEW].servers[0].available = false;
	snapshot_compute(s);
	rc = route_retry(s, &rr, &prev, &c);
	CHECK_EQ_INT(rc, 503, "retry: no other server, no other pool -> 503");

	/* A pool at 0% still takes retries when it is the only one left. */
	s->pools[P_NEW].servers[0].available = true;
	s->routes[0].split[P_OLD] = 10000;
	s->routes[0].split[P_NEW] = 0;
	snapshot_compute(s);
	rc = route_retry(s, &rr, &prev, &c);
	CHECK(rc == 0 && c.pool == P_NEW, "retry: the only other available pool, at 0%");

	route_rr_free(&rr);
	snapshot_release(s);
}

static void test_generation(struct config *cfg)
{
	struct snapshot *s1 = snapshot_from_config(cfg, 1, 1);
	struct snapshot *s2 = snapshot_from_config(cfg, 2, 1);
	struct route_rr rr = {0}, fresh = {0};
	struct route_choice c, f;
	int same = 1, nonzero = 0;

	for (int i = 0; i < 5; i++)
		route_pick(s1, &rr, 0, -1, &c);
	for (size_t i = 0; i < s1->npools; i++)
		nonzero += rr.pool_cur[i] != 0;
	CHECK(rr.gen == 1 && nonzero > 0, "rr: the state follows the picks of generation 1");

	route_rr_sync(&rr, s1);
	nonzero = 0;
	for (size_t i = 0; i < s1->npools; i++)
		nonzero += rr.pool_cur[i] != 0;
	CHECK(nonzero > 0, "rr: syncing to the same generation keeps the state");

	route_rr_sync(&rr, s2);
	nonzero = 0;
	for (size_t i = 0; i < s2->npools; i++)
		nonzero += rr.pool_cur[i] != 0;
	for (size_t i = 0; i < s2->nservers; i++)
		nonzero += rr.server_cur[i] != 0;
	CHECK(rr.gen == 2 && nonzero == 0, "rr: a new generation resets every cursor");

	/* A picked sequence after the reset equals a fresh state's sequence. */
	for (int i = 0; i < 5; i++) {
		route_pick(s1, &rr, 0, -1, &c);
		route_pick(s1, &fresh, 0, -1, &f);
		same &= c.pool == f.pool && c.server == f.server;
	}
	CHECK(same && rr.gen == 1, "rr: route_pick resyncs to the snapshot it is given");

	route_rr_free(&rr);
	route_rr_free(&fresh);
	CHECK(!rr.pool_cur && !rr.server_cur, "rr: route_rr_free clears the cursors");
	route_rr_free(&rr); /* twice is harmless */
	snapshot_release(s1);
	snapshot_release(s2);
}

int main(void)
{
	struct config *cfg;

	test_wrr_90_10();
	test_wrr_thirds();
	test_wrr_smooth();
	test_wrr_skips();
	test_effective_split();

	cfg = load_config(route_yaml);
	CHECK(cfg->npools == 3 && cfg->routes[0].split[0] == 9000 && cfg->routes[0].split[1] == 1000,
	      "config: three pools, split 90/10/0");
	test_pick(cfg);
	test_retry(cfg);
	test_generation(cfg);
	config_free(cfg);
	return tap_done();
}
