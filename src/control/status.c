/*
 * status.c — the status document (SPEC §6), shared by the control socket
 * and the admin listener: pools with their percentages and their last
 * minute of traffic, servers with weight, health, circuit, admin state and
 * counters, and the pins.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "control/runtime.h"
#include "control/status.h"
#include "core/config.h"
#include "core/json.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"


/* The pool's sliding window: requests per second, share of 5xx and
 * latency percentiles over the last minute. */
static void write_window(struct evbuffer *out, const struct pool_stats *ps, uint64_t now_ms,
                         uint64_t started_ms)
{
	struct window_summary w;
	char buf[160];
	stats_window(ps, now_ms / 1000, (double)(now_ms - started_ms) / 1000.0, &w);
	snprintf(buf, sizeof(buf),
	         "{\"seconds\":%.0f,\"requests\":%" PRIu64 ",\"rps\":%.2f,\"errors_5xx\":%" PRIu64
	         ",\"error_rate\":%.4f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f}",
	         w.seconds, w.requests, (double)w.requests / w.seconds, w.errors_5xx,
	         w.requests ? (double)w.errors_5xx / (double)w.requests : 0.0, w.p50_ms, w.p95_ms,
	         w.p99_ms);
	json_raw(out, buf);
}

/* {"at":"2026-11-21T10:00:00.123Z","reason":"..."}, or null before any */
static void write_change(struct evbuffer *out, int64_t at_ms, const char *reason)
{
	if (!at_ms) {
		json_raw(out, "null");
		return;
	}
	char when[40];
	struct tm tm;
	time_t sec = (time_t)(at_ms / 1000);
	gmtime_r(&sec, &tm);
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(at_ms % 1000));
	json_raw(out, "{\"at\":");
	json_str(out, when);
	json_raw(out, ",\"reason\":");
	json_str(out, reason);
	json_raw(out, "}");
}

void status_write(struct evbuffer *out, const struct runtime *rt)
{
	const struct snapshot *s = rt->snap;
	struct stats_shard *t = stats_sum(s->stats);
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;

	json_raw(out, "{\"ok\":true,\"version\":\"" ZDM_VERSION "\",\"uptime_s\":");
	json_u64(out, (now - rt->started_ms) / 1000);
	json_raw(out, ",\"pools\":[");
	for (size_t i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];
		json_raw(out, i ? ",{\"name\":" : "{\"name\":");
		json_str(out, p->cfg->name);
		json_raw(out, ",\"weight\":");
		json_percent(out, p->split);
		json_raw(out, ",\"window\":");
		write_window(out, &t->pool[i], now, rt->started_ms);
		json_raw(out, ",\"servers\":[");
		for (size_t j = 0; j < p->nservers; j++) {
			const struct snap_server *sv = &p->servers[j];
			const struct srv_stats *st = &t->srv[sv->id];
			json_raw(out, j ? ",{\"name\":" : "{\"name\":");
			json_str(out, sv->cfg->name);
			json_raw(out, ",\"address\":");
			json_str(out, sv->cfg->addr.text);
			json_raw(out, ",\"weight\":");
			json_u64(out, sv->weight);
			const struct srv_state *ss = &rt->srv[sv->id];
			json_raw(out, ",\"health\":");
			json_str(out, ss->up ? "up" : "down");
			json_raw(out, ",\"circuit\":");
			json_str(out, breaker_state_names[ss->brk.state]);
			json_raw(out, ",\"admin\":");
			json_str(out, admin_state_names[rt->v.admin[sv->id]]);
			json_raw(out, ",\"health_change\":");
			write_change(out, ss->health_at, ss->health_reason);
			json_raw(out, ",\"circuit_change\":");
			write_change(out, ss->circuit_at, ss->circuit_reason);
			json_raw(out, ",\"inflight\":");
			json_i64(out, st->inflight);
			json_raw(out, ",\"requests\":");
			json_u64(out, st->requests);
			json_raw(out, ",\"failures\":");
			json_u64(out, st->failures);
			json_raw(out, "}");
		}
		json_raw(out, "]}");
	}
	json_raw(out, "],\"pins\":[");
	for (size_t i = 0; i < s->cfg->npins; i++) {
		const struct cfg_pin *pin = &s->cfg->pins[i];
		json_raw(out, i ? ",{" : "{");
		json_raw(out, pin->cookie ? "\"cookie\":" : "\"header\":");
		json_str(out, pin->cookie ? pin->cookie : pin->header);
		json_raw(out, ",\"value\":");
		json_str(out, pin->value);
		json_raw(out, ",\"pool\":");
		json_str(out, s->cfg->pools[pin->pool].name);
		json_raw(out, "}");
	}
	json_raw(out, "]}");
	stats_sum_free(t);
}

