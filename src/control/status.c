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

#include "control/rollouts.h"
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

static void write_pins(struct evbuffer *out, const struct config *cfg, const struct cfg_route *r)
{
	json_raw(out, "[");
	for (size_t i = 0; i < r->npins; i++) {
		const struct cfg_pin *pin = &r->pins[i];
		json_raw(out, i ? ",{" : "{");
		json_raw(out, pin->cookie ? "\"cookie\":" : "\"header\":");
		json_str(out, pin->cookie ? pin->cookie : pin->header);
		json_raw(out, ",\"value\":");
		json_str(out, pin->value);
		json_raw(out, ",\"pool\":");
		json_str(out, cfg->pools[pin->pool].name);
		json_raw(out, "}");
	}
	json_raw(out, "]");
}

static void write_strings(struct evbuffer *out, char *const *v, size_t n)
{
	json_raw(out, "[");
	for (size_t i = 0; i < n; i++) {
		json_raw(out, i ? "," : "");
		json_str(out, v[i]);
	}
	json_raw(out, "]");
}

/* {"name","match","split","split_by","pins","timeouts","pools","rollout"} of route
 * r: its pools with their percentages and their own last minute. */
static void write_route(struct evbuffer *out, const struct runtime *rt, int r,
                        const struct stats_shard *t, uint64_t now, uint64_t started_ms)
{
	const struct snapshot *s = rt->snap;
	const struct snap_route *sr = &s->routes[r];
	const struct cfg_route *c = sr->cfg;
	const char *sep = "";

	json_raw(out, "{\"name\":");
	json_str(out, c->name);
	json_raw(out, ",\"match\":{");
	if (c->nhosts) {
		json_raw(out, "\"host\":");
		write_strings(out, c->hosts, c->nhosts);
		sep = ",";
	}
	if (c->path_prefix) {
		json_raw(out, sep);
		json_raw(out, "\"path_prefix\":");
		json_str(out, c->path_prefix);
		sep = ",";
	}
	if (c->methods) {
		json_raw(out, sep);
		json_raw(out, "\"methods\":");
		write_strings(out, c->methods, c->nmethods);
	}
	json_raw(out, "},\"split\":{");
	for (size_t m = 0; m < c->nsplit; m++) {
		json_raw(out, m ? "," : "");
		json_str(out, s->pools[c->pools[m]].cfg->name);
		json_raw(out, ":");
		json_percent(out, sr->split[m]);
	}
	json_raw(out, "},\"split_by\":\"request\",\"pins\":");
	write_pins(out, s->cfg, c);
	json_raw(out, ",\"timeouts\":{\"upstream_response_ms\":");
	json_u64(out, c->upstream_response_ms);
	json_raw(out, ",\"tunnel_idle_ms\":");
	json_u64(out, c->tunnel_idle_ms);
	json_raw(out, "},\"pools\":[");
	for (size_t m = 0; m < c->npools; m++) {
		json_raw(out, m ? ",{\"name\":" : "{\"name\":");
		json_str(out, s->pools[c->pools[m]].cfg->name);
		json_raw(out, ",\"weight\":");
		json_percent(out, sr->split[m]);
		json_raw(out, ",\"window\":");
		write_window(out, &t->pool[snapshot_member(s, r, (int)m)], now, started_ms);
		json_raw(out, "}");
	}
	json_raw(out, "],\"rollout\":");
	rollouts_write_status(out, rt, r);
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
		/* The default route's percentage; its window over every route. */
		const struct snap_route *r0 = &s->routes[0];
		int m0 = config_route_member(r0->cfg, i);
		struct pool_stats all;
		memset(&all, 0, sizeof(all));
		for (size_t r = 0; r < s->nroutes; r++) {
			int m = config_route_member(s->routes[r].cfg, i);
			if (m >= 0)
				stats_pool_add(&all, &t->pool[snapshot_member(s, (int)r, m)]);
		}
		json_raw(out, i ? ",{\"name\":" : "{\"name\":");
		json_str(out, p->cfg->name);
		json_raw(out, ",\"weight\":");
		json_percent(out, m0 >= 0 ? r0->split[m0] : 0);
		json_raw(out, ",\"window\":");
		write_window(out, &all, now, rt->started_ms);
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
	json_raw(out, "],\"pins\":");
	if (s->cfg->routes_given)
		json_raw(out, "[]");
	else
		write_pins(out, s->cfg, &s->cfg->routes[0]);
	json_raw(out, ",\"routes\":[");
	for (size_t r = 0; r < s->nroutes; r++) {
		json_raw(out, r ? "," : "");
		write_route(out, rt, (int)r, t, now, rt->started_ms);
	}
	json_raw(out, "]}");
	stats_sum_free(t);
}

