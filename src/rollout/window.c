/*
 * window.c — a rollout's 10-minute window, fed from the 1-second slots:
 * see window.h.
 */
#include <string.h>

#include "rollout/window.h"

/* Seconds taken again at each call: those a worker may still be counting. */
#define WINDOW_RETAKE 3

void window_take(struct window_ring *w, const struct pool_stats *p, uint64_t now_s)
{
	uint64_t from = w->last > WINDOW_RETAKE ? w->last - WINDOW_RETAKE : 1;
	if (now_s >= STATS_WINDOW_SECONDS && from <= now_s - STATS_WINDOW_SECONDS)
		from = now_s - STATS_WINDOW_SECONDS + 1;
	for (uint64_t s = from; s <= now_s; s++) {
		const struct window_slot *src = &p->win[s % STATS_WINDOW_SECONDS];
		struct window_slot *dst = &w->sec[s % ROLLOUT_WINDOW_SECONDS];
		if (src->second == s)
			*dst = *src;
		else if (dst->second != s || s > w->last) {
			memset(dst, 0, sizeof(*dst)); /* a second without requests */
			dst->second = s;
		}
	}
	if (now_s > w->last)
		w->last = now_s;
}

void window_sample(const struct window_ring *w, uint64_t from_s, uint64_t to_s,
                   struct analysis_sample *out)
{
	if (to_s >= ROLLOUT_WINDOW_SECONDS && from_s <= to_s - ROLLOUT_WINDOW_SECONDS)
		from_s = to_s - ROLLOUT_WINDOW_SECONDS + 1;
	for (uint64_t s = from_s; s <= to_s; s++) {
		const struct window_slot *sl = &w->sec[s % ROLLOUT_WINDOW_SECONDS];
		if (sl->second != s)
			continue;
		out->requests += sl->count;
		out->errors += sl->count_5xx;
		for (int k = 0; k < STATS_WINDOW_BUCKETS; k++)
			out->lat[k] += sl->lat[k];
	}
}
