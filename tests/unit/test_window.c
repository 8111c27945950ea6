/*
 * test_window.c — a rollout's window (src/rollout/window.c) fed from the
 * workers' 1-second slots: spans longer than those slots keep, late
 * counts of a second are taken again, quiet seconds count as nothing.
 */
#include <stdlib.h>
#include <string.h>

#include "rollout/window.h"
#include "tap.h"

/* n responses of status at second s on worker shard i, 2 ms each. */
static void answer(struct stats_table *t, size_t i, uint64_t s, int n, int status)
{
	for (int k = 0; k < n; k++)
		stats_record(&t->shard[i], 0, 0, status, 2000, s);
}

static void take(struct window_ring *w, struct stats_table *t, uint64_t now_s)
{
	struct stats_shard *sum = stats_sum(t);
	window_take(w, &sum->pool[0], now_s);
	stats_sum_free(sum);
}

static struct analysis_sample sample(const struct window_ring *w, uint64_t from, uint64_t to)
{
	struct analysis_sample s;
	memset(&s, 0, sizeof(s));
	window_sample(w, from, to, &s);
	return s;
}

int main(void)
{
	struct stats_table *t = stats_new(1, 1, 1, 1, 2);
	struct window_ring *w = calloc(1, sizeof(*w));
	uint64_t s0 = 10000;

	/* 10 minutes of traffic, 3 a second on one worker and 1 on the
	 * other, every 10th second with a 5xx; taken every 10 s. */
	for (uint64_t s = s0; s < s0 + 600; s++) {
		answer(t, 0, s, 3, 200);
		answer(t, 1, s, 1, s % 10 == 0 ? 503 : 200);
		if (s % 10 == 9)
			take(w, t, s);
	}
	struct analysis_sample a = sample(w, s0, s0 + 599);
	CHECK_EQ_INT(a.requests, 2400, "ten minutes (longer than the 60 s slots): 2,400 requests");
	CHECK_EQ_INT(a.errors, 60, "and their 60 5xx");
	CHECK(analysis_percentile_ms(&a, 0.5) >= 2 && analysis_percentile_ms(&a, 0.5) < 2.3,
	      "their latency (2 ms, within the bucket)");
	a = sample(w, s0 + 540, s0 + 599);
	CHECK(a.requests == 240 && a.errors == 6, "the last minute alone: 240 and 6");
	a = sample(w, s0 - 100, s0 - 1);
	CHECK_EQ_INT(a.requests, 0, "before the traffic: nothing");

	/* Counted late (a worker behind by a second): taken again. */
	uint64_t s1 = s0 + 600;
	answer(t, 0, s1, 5, 200);
	take(w, t, s1);
	answer(t, 1, s1, 2, 500);
	take(w, t, s1 + 1);
	a = sample(w, s1, s1);
	CHECK(a.requests == 7 && a.errors == 2, "a second counted after it was first taken: all of it");

	/* Quiet for longer than the slots keep: those seconds are empty. */
	uint64_t s2 = s1 + 200;
	answer(t, 0, s2, 4, 200);
	take(w, t, s2);
	a = sample(w, s1 + 2, s2 - 1);
	CHECK_EQ_INT(a.requests, 0, "200 quiet seconds: nothing in them");
	a = sample(w, s2 - 599, s2);
	CHECK_EQ_INT(a.requests, 4 + 7 + 4 * 399, "the ten minutes to s2: what they hold");

	/* A span longer than the ring is cut to its last 600 s. */
	a = sample(w, 0, s2);
	CHECK_EQ_INT(a.requests, 4 + 7 + 4 * 399, "a longer span: its last ten minutes");

	free(w);
	stats_release(t);
	return tap_done();
}
