/*
 * window.h — a rollout's window: what one route member (the pool rolled
 * out, or the baseline) answered, second by second, over the last
 * ROLLOUT_WINDOW_SECONDS (the longest `window` a rollout may have).
 *
 * The hot path counts nothing more for it: the control plane copies the
 * 1-second slots of the workers' summed counters (stats.h, which keep 60
 * seconds) into this longer ring at every analysis, and reads a sample of
 * any span back out. The last seconds are copied again each time, as
 * slots only grow until their second is over (a worker's clock may be
 * behind the control plane's). Samples of several instances add up
 * (analysis_sample_add).
 */
#ifndef ZDM_WINDOW_H
#define ZDM_WINDOW_H

#include <stdint.h>

#include "proxy/stats.h"
#include "rollout/analysis.h"

#define ROLLOUT_WINDOW_SECONDS 600

struct window_ring {
	uint64_t last;          /* the newest second taken (0: none) */
	struct window_slot sec[ROLLOUT_WINDOW_SECONDS];
};

/* Copies into w the seconds of p's slots up to now_s (the current one as
 * far as it is counted), at most the last STATS_WINDOW_SECONDS of them. */
void window_take(struct window_ring *w, const struct pool_stats *p, uint64_t now_s);
/* The requests of the seconds from_s..to_s (both included) into out
 * (requests, errors, latency; servers are the caller's). */
void window_sample(const struct window_ring *w, uint64_t from_s, uint64_t to_s,
                   struct analysis_sample *out);

#endif
