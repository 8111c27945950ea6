/*
 * metrics.c — Prometheus metrics from the stats tables and the runtime.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "control/rollouts.h"
#include "control/runtime.h"
#include "core/config.h"
#include "core/resource.h"
#include "obs/metrics.h"
#include "proxy/accesslog.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "proxy/workers.h"

/* A label value with \, " and newline escaped. */
static void label(struct evbuffer *out, const char *name, const char *value, bool first)
{
	evbuffer_add_printf(out, "%s%s=\"", first ? "" : ",", name);
	for (const char *p = value; *p; p++) {
		if (*p == '\\' || *p == '"')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, p, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/* route="R",pool="P" */
static void route_pool(struct evbuffer *out, const struct cfg_route *r, const struct snap_pool *p)
{
	label(out, "route", r->name, true);
	label(out, "pool", p->cfg->name, false);
}

/* Walks every pool of every route (a route's "member"): for (struct
 * members it = {.s = s}; members_next(&it);) sees it.route, it.pool, the
 * member's index it.m in its route and it.slot, that of its counters. */
struct members {
	const struct snapshot *s;
	size_t r, next;
	const struct snap_route *route;
	const struct snap_pool *pool;
	size_t m;
	uint32_t slot;
};

static bool members_next(struct members *it)
{
	for (; it->r < it->s->nroutes; it->r++, it->next = 0) {
		const struct snap_route *sr = &it->s->routes[it->r];
		if (it->next < sr->cfg->npools) {
			it->route = sr;
			it->m = it->next++;
			it->pool = &it->s->pools[sr->cfg->pools[it->m]];
			it->slot = snapshot_member(it->s, (int)it->r, (int)it->m);
			return true;
		}
	}
	return false;
}

static void head(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(struct evbuffer *out, uint64_t v)
{
	evbuffer_add_printf(out, "} %" PRIu64 "\n", v);
}

void metrics_write(struct evbuffer *out, const struct runtime *rt, const struct workers *wk,
                   const struct accesslog *al)
{
	const struct snapshot *s = rt->snap;
	struct stats_shard *t = stats_sum(s->stats);

	head(out, "zdm_requests_total", "counter",
	     "Requests answered, by route, pool, server and status class (server \"\" when the "
	     "proxy answered itself; route and pool \"\" when it answered before routing).");
	for (struct members it = {.s = s}; members_next(&it);) {
		const struct snap_pool *p = it.pool;
		for (size_t j = 0; j < p->nservers; j++)
			for (int c = 0; c < STATS_CLASSES; c++) {
				evbuffer_add_printf(out, "zdm_requests_total{");
				route_pool(out, it.route->cfg, p);
				label(out, "server", p->servers[j].cfg->name, false);
				label(out, "code", stats_class_names[c], false);
				sample_u64(out, t->rsrv[s->member_srv[it.slot] + j].codes[c]);
			}
		for (int c = 0; c < STATS_CLASSES; c++) {
			if (!t->pool[it.slot].codes[c])
				continue;
			evbuffer_add_printf(out, "zdm_requests_total{");
			route_pool(out, it.route->cfg, p);
			label(out, "server", "", false);
			label(out, "code", stats_class_names[c], false);
			sample_u64(out, t->pool[it.slot].codes[c]);
		}
	}
	/* Answered before a pool was chosen: no route matched (route ""),
	 * or none of the route's pools could serve (pool ""). */
	for (size_t r = 0; r <= s->nroutes; r++)
		for (int c = 0; c < STATS_CLASSES; c++) {
			if (!t->unpooled[r][c])
				continue;
			evbuffer_add_printf(out, "zdm_requests_total{");
			label(out, "route", r ? s->routes[r - 1].cfg->name : "", true);
			label(out, "pool", "", false);
			label(out, "server", "", false);
			label(out, "code", stats_class_names[c], false);
			sample_u64(out, t->unpooled[r][c]);
		}

	head(out, "zdm_request_duration_seconds", "histogram",
	     "Time from the first byte of a request to the last byte of its response, by route "
	     "and pool.");
	for (struct members it = {.s = s}; members_next(&it);) {
		const struct pool_stats *ps = &t->pool[it.slot];
		uint64_t cum = 0;
		for (int b = 0; b <= STATS_HIST_BUCKETS; b++) {
			cum += ps->hist[b];
			evbuffer_add_printf(out, "zdm_request_duration_seconds_bucket{");
			route_pool(out, it.route->cfg, it.pool);
			if (b < STATS_HIST_BUCKETS)
				evbuffer_add_printf(out, ",le=\"%g\"", stats_hist_bounds[b]);
			else
				evbuffer_add_printf(out, ",le=\"+Inf\"");
			sample_u64(out, cum);
		}
		evbuffer_add_printf(out, "zdm_request_duration_seconds_sum{");
		route_pool(out, it.route->cfg, it.pool);
		evbuffer_add_printf(out, "} %.6f\n", (double)ps->sum_us / 1e6);
		evbuffer_add_printf(out, "zdm_request_duration_seconds_count{");
		route_pool(out, it.route->cfg, it.pool);
		sample_u64(out, ps->count);
	}

	head(out, "zdm_pool_weight_percent", "gauge",
	     "The pool's share of the route's split, in percent.");
	for (struct members it = {.s = s}; members_next(&it);) {
		evbuffer_add_printf(out, "zdm_pool_weight_percent{");
		route_pool(out, it.route->cfg, it.pool);
		evbuffer_add_printf(out, "} %.2f\n",
		                    it.route->split[it.m] / 100.0);
	}

	head(out, "zdm_server_up", "gauge", "1 when the server passes its health checks.");
	for (size_t i = 0; i < s->npools; i++)
		for (size_t j = 0; j < s->pools[i].nservers; j++) {
			evbuffer_add_printf(out, "zdm_server_up{");
			label(out, "pool", s->pools[i].cfg->name, true);
			label(out, "server", s->pools[i].servers[j].cfg->name, false);
			sample_u64(out, rt->srv[s->pools[i].servers[j].id].up ? 1 : 0);
		}

	head(out, "zdm_circuit_state", "gauge",
	     "The server's circuit breaker: 0 closed, 1 open, 2 half-open.");
	for (size_t i = 0; i < s->npools; i++)
		for (size_t j = 0; j < s->pools[i].nservers; j++) {
			evbuffer_add_printf(out, "zdm_circuit_state{");
			label(out, "pool", s->pools[i].cfg->name, true);
			label(out, "server", s->pools[i].servers[j].cfg->name, false);
			sample_u64(out, (uint64_t)rt->srv[s->pools[i].servers[j].id].brk.state);
		}

	head(out, "zdm_pinned_requests_total", "counter",
	     "Requests routed by a pin, by route and pool.");
	for (struct members it = {.s = s}; members_next(&it);) {
		evbuffer_add_printf(out, "zdm_pinned_requests_total{");
		route_pool(out, it.route->cfg, it.pool);
		sample_u64(out, t->pool[it.slot].pinned);
	}

	head(out, "zdm_upstream_errors_total", "counter",
	     "Failed exchanges with an upstream server, by kind.");
	for (size_t i = 0; i < s->npools; i++)
		for (size_t j = 0; j < s->pools[i].nservers; j++)
			for (int k = 0; k < STATS_ERROR_KINDS; k++) {
				evbuffer_add_printf(out, "zdm_upstream_errors_total{");
				label(out, "pool", s->pools[i].cfg->name, true);
				label(out, "server", s->pools[i].servers[j].cfg->name, false);
				label(out, "kind", stats_error_names[k], false);
				sample_u64(out, t->srv[s->pools[i].servers[j].id].errors[k]);
			}

	head(out, "zdm_upstream_inflight", "gauge", "Requests being served by the server now.");
	for (size_t i = 0; i < s->npools; i++)
		for (size_t j = 0; j < s->pools[i].nservers; j++) {
			evbuffer_add_printf(out, "zdm_upstream_inflight{");
			label(out, "pool", s->pools[i].cfg->name, true);
			label(out, "server", s->pools[i].servers[j].cfg->name, false);
			evbuffer_add_printf(out, "} %" PRId64 "\n",
			                    t->srv[s->pools[i].servers[j].id].inflight);
		}

	/* The last minute per pool: what an operator compares during a rollout. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	double uptime_s = (double)(now_ms - rt->started_ms) / 1000.0;
	head(out, "zdm_window_requests_per_second", "gauge",
	     "Requests per second over the last 60 s, by route and pool.");
	for (struct members it = {.s = s}; members_next(&it);) {
		struct window_summary ws;
		stats_window(&t->pool[it.slot], now_ms / 1000, uptime_s, &ws);
		evbuffer_add_printf(out, "zdm_window_requests_per_second{");
		route_pool(out, it.route->cfg, it.pool);
		evbuffer_add_printf(out, "} %.3f\n", (double)ws.requests / ws.seconds);
	}
	head(out, "zdm_window_error_ratio", "gauge",
	     "Share of 5xx responses over the last 60 s, by route and pool.");
	for (struct members it = {.s = s}; members_next(&it);) {
		struct window_summary ws;
		stats_window(&t->pool[it.slot], now_ms / 1000, uptime_s, &ws);
		evbuffer_add_printf(out, "zdm_window_error_ratio{");
		route_pool(out, it.route->cfg, it.pool);
		evbuffer_add_printf(out, "} %.6f\n",
		                    ws.requests ? (double)ws.errors_5xx / (double)ws.requests : 0.0);
	}
	head(out, "zdm_window_latency_seconds", "gauge",
	     "Latency percentiles over the last 60 s, by route and pool.");
	for (struct members it = {.s = s}; members_next(&it);) {
		struct window_summary ws;
		stats_window(&t->pool[it.slot], now_ms / 1000, uptime_s, &ws);
		const double q[3] = {0.5, 0.95, 0.99}, v[3] = {ws.p50_ms, ws.p95_ms, ws.p99_ms};
		for (int k = 0; k < 3; k++) {
			evbuffer_add_printf(out, "zdm_window_latency_seconds{");
			route_pool(out, it.route->cfg, it.pool);
			evbuffer_add_printf(out, ",quantile=\"%g\"} %.6f\n", q[k], v[k] / 1000.0);
		}
	}

	head(out, "zdm_client_connections", "gauge", "Client connections open now.");
	evbuffer_add_printf(out, "zdm_client_connections %" PRIu64 "\n",
	                    wk ? workers_connections(wk) : 0);

	head(out, "zdm_buffered_bytes", "gauge",
	     "Bytes of receive blocks held now: read from one side and not yet written to the "
	     "other (slow readers hold them), summed over the workers.");
	evbuffer_add_printf(out, "zdm_buffered_bytes %" PRIu64 "\n",
	                    wk ? workers_buffered_bytes(wk) : 0);

	head(out, "zdm_tls_handshake_failures_total", "counter",
	     "Client TLS handshakes that failed or stalled (plain HTTP to a TLS port included).");
	evbuffer_add_printf(out, "zdm_tls_handshake_failures_total %" PRIu64 "\n",
	                    wk ? workers_tls_failures(wk) : 0);

	head(out, "zdm_spliced_bytes_total", "counter",
	     "Body bytes moved between client and upstream sockets inside the kernel "
	     "(splice), responses and request bodies.");
	evbuffer_add_printf(out, "zdm_spliced_bytes_total %" PRIu64 "\n",
	                    wk ? workers_spliced_bytes(wk) : 0);

	head(out, "zdm_local_errors_total", "counter",
	     "Connections that this process could not make or take for lack of a resource of "
	     "its own (accept: a client connection refused; descriptors, memory, ports: an "
	     "upstream connection, answered 503). Never a failure of a server.");
	for (int k = 0; k < LOCAL_ERR_KINDS; k++)
		evbuffer_add_printf(out, "zdm_local_errors_total{kind=\"%s\"} %" PRIu64 "\n",
		                    resource_error_names[k], wk ? workers_local_errors(wk, k) : 0);

	head(out, "zdm_config_reloads_total", "counter", "Configuration reloads, by result.");
	evbuffer_add_printf(out, "zdm_config_reloads_total{result=\"ok\"} %" PRIu64 "\n",
	                    rt->reloads_ok);
	evbuffer_add_printf(out, "zdm_config_reloads_total{result=\"error\"} %" PRIu64 "\n",
	                    rt->reloads_error);
	rollouts_write_metrics(out, rt);

	head(out, "zdm_access_log_dropped_total", "counter",
	     "Access log lines that could not be written.");
	evbuffer_add_printf(out, "zdm_access_log_dropped_total %" PRIu64 "\n",
	                    al ? accesslog_dropped(al) : 0);
	stats_sum_free(t);
}
