/*
 * test_routes.c — routes (SPEC §4.0): their config (keys, errors with
 * positions, the warning for a route that can never match, the default
 * route of a config without routes), the compiled match table
 * (src/core/routetab.c: hosts exact and wildcard, case, ports, trailing
 * dots, segment-wise prefixes, methods, first match wins) and the split of
 * each route over its own pools (src/proxy/route.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/routetab.h"
#include "proxy/route.h"
#include "proxy/snapshot.h"
#include "tap.h"

static struct config *parse(const char *yaml, struct config_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	return config_parse("r.yaml", yaml, strlen(yaml), errs);
}

static struct config *load(const char *yaml)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);
	for (size_t i = 0; i < errs.n; i++)
		printf("#   config error: %s\n", errs.msgs[i]);
	config_errors_free(&errs);
	if (!cfg) {
		printf("Bail out! test config does not load\n");
		exit(1);
	}
	return cfg;
}

#define HEAD                                                                                       \
	"listen: [\"127.0.0.1:8080\"]\n"                                                           \
	"pools:\n"                                                                                 \
	"  mono: {servers: [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]}\n"                            \
	"  orders: {servers: [\"127.0.0.1:9101\"]}\n"                                              \
	"  beta: {servers: [\"127.0.0.1:9201\"]}\n"

static const char routes_yaml[] =
        HEAD "timeouts: {upstream_response: 7s}\n"
             "routes:\n"
             "  - name: orders\n"
             "    match: {host: [\"Shop.Example.com.\", \"*.shop.example.com\"], "
             "path_prefix: /api/orders, methods: [GET, POST]}\n"
             "    split: {orders: 25, mono: 75}\n"
             "    pins: [{cookie: beta, value: \"1\", pool: beta}]\n"
             "    timeouts: {upstream_response: 5m, tunnel_idle: 4h}\n"
             "  - name: deep\n"
             "    match: {host: \"*.eu.shop.example.com\"}\n"
             "    split: {orders: 100}\n"
             "  - name: static\n"
             "    match: {path_prefix: /static/}\n"
             "    split: {mono: 100}\n"
             "  - name: v6\n"
             "    match: {host: \"[::1]\"}\n"
             "    split: {beta: 100}\n"
             "  - name: shop\n"
             "    match: {host: shop.example.com}\n"
             "    split: {mono: 100}\n";

enum { R_ORDERS, R_DEEP, R_STATIC, R_V6, R_SHOP };

static int match(const struct config *cfg, const char *host, const char *path, const char *method)
{
	return routetab_match(cfg->table, host, host ? strlen(host) : 0, path, strlen(path), method,
	                      strlen(method));
}

static void test_config(void)
{
	struct config *cfg = load(routes_yaml);
	const struct cfg_route *r = &cfg->routes[R_ORDERS];

	CHECK(cfg->routes_given && cfg->nroutes == 5, "five routes");
	CHECK(r->nhosts == 2 && !strcmp(r->hosts[0], "shop.example.com") &&
	              !strcmp(r->hosts[1], "*.shop.example.com"),
	      "hosts in lower case, the trailing dot dropped");
	CHECK(r->path_prefix && !strcmp(r->path_prefix, "/api/orders") && r->path_prefix_len == 11,
	      "path_prefix");
	CHECK(r->nmethods == 2 && !strcmp(r->methods[1], "POST"), "methods");
	CHECK(r->nsplit == 2 && r->npools == 3 && r->pools[0] == 1 && r->pools[1] == 0 &&
	              r->pools[2] == 2,
	      "members: the split's pools in its order, then the pin-only pool");
	CHECK(r->split[0] == 2500 && r->split[1] == 7500 && r->split[2] == 0,
	      "the split per member, the pin-only pool at 0");
	CHECK(r->pins[0].pool == 2 && r->pins[0].member == 2, "a pin knows its member");
	CHECK(r->upstream_response_ms == 300000 && r->tunnel_idle_ms == 4 * 3600000,
	      "route timeouts");
	CHECK(cfg->routes[R_DEEP].upstream_response_ms == 7000 &&
	              cfg->routes[R_DEEP].tunnel_idle_ms == 3600000,
	      "a route without timeouts has the global ones");
	CHECK(cfg->routes[0].first == 0 && cfg->routes[1].first == 3 && cfg->nmembers == 7,
	      "members numbered over all routes");
	CHECK_EQ_INT(cfg->nwarnings, 0, "no warning");
	CHECK_EQ_INT(config_route_index(cfg, "static", 6), R_STATIC, "config_route_index");
	CHECK_EQ_INT(config_route_index(cfg, "stat", 4), -1, "config_route_index: no prefix");
	config_free(cfg);

	cfg = load(HEAD "split: {mono: 90, orders: 10}\npins: [{header: x, value: y, pool: beta}]\n");
	r = &cfg->routes[0];
	CHECK(!cfg->routes_given && cfg->nroutes == 1 && !strcmp(r->name, "default") &&
	              !r->nhosts && !r->path_prefix && !r->methods,
	      "without routes: one route 'default' that takes every request");
	CHECK(r->nsplit == 3 && r->npools == 3 && r->split[0] == 9000 && r->split[1] == 1000 &&
	              r->split[2] == 0 && r->pins[0].member == 2,
	      "default: every pool in file order, those the split leaves out at 0");
	CHECK_EQ_INT(match(cfg, "anything", "/x", "GET"), 0, "default: matches anything");
	CHECK_EQ_INT(match(cfg, NULL, "*", "OPTIONS"), 0, "default: matches without a Host");
	config_free(cfg);

	cfg = load(HEAD);
	CHECK(cfg->routes[0].split[0] == 10000 && cfg->routes[0].split[1] == 0,
	      "no split: all to the first pool");
	config_free(cfg);
}

/* HEAD then TAIL must not load, with an error containing WANT. */
static void expect_error(const char *tail, const char *want, const char *what)
{
	char yaml[1024];
	struct config_errors errs;
	snprintf(yaml, sizeof(yaml), HEAD "%s", tail);
	struct config *cfg = parse(yaml, &errs);
	bool found = false;
	for (size_t j = 0; j < errs.n; j++)
		found |= strstr(errs.msgs[j], want) != NULL;
	if (!CHECK(!cfg && found, what)) {
		printf("#   want: %s\n", want);
		for (size_t j = 0; j < errs.n; j++)
			printf("#   got:  %s\n", errs.msgs[j]);
	}
	config_errors_free(&errs);
	config_free(cfg);
}

static void test_config_errors(void)
{
	static const struct {
		const char *yaml, *want, *what;
	} cases[] = {
	        {"routes:\n  - {name: a, split: {nope: 100}}\n",
	         "r.yaml:7:23: key 'routes[0].split.nope': unknown pool 'nope'; the pools are: mono, "
	         "orders, beta", "unknown pool"},
	        {"routes:\n  - {name: a, split: {mono: 100}}\n  - {name: a, split: {mono: 100}}\n",
	         "r.yaml:8:12: key 'routes[1]': duplicate route name 'a' (first at r.yaml:7:5)",
	         "duplicate route names"},
	        {"split: {mono: 100}\nroutes:\n  - {name: a, split: {mono: 100}}\n",
	         "r.yaml:6:1: key 'split': with 'routes', each route has its own split",
	         "routes with a top-level split"},
	        {"routes:\n  - {name: a, match: {host: \"a.b:80\"}, split: {mono: 100}}\n",
	         "r.yaml:7:29: key 'routes[0].match.host': a host without a port", "a port"},
	        {"routes:\n  - {name: a, match: {host: \"a.*.b\"}, split: {mono: 100}}\n",
	         "r.yaml:7:29: key 'routes[0].match.host': expected a host name", "a '*' inside"},
	        {"routes:\n  - {name: a, match: {path_prefix: api}, split: {mono: 100}}\n",
	         "r.yaml:7:36: key 'routes[0].match.path_prefix': expected a path that begins",
	         "a path without '/'"},
	        {"routes:\n  - {name: a, match: {path_prefix: \"/a?b\"}, split: {mono: 100}}\n",
	         "expected a path that begins with '/', without blanks, control bytes, '?'",
	         "a path with a query"},
	        {"routes:\n  - {name: a, match: {methods: [get]}, split: {mono: 100}}\n",
	         "key 'routes[0].match.methods[0]': expected a method such as GET", "a lower-case "
	                                                                            "method"},
	        {"routes:\n  - {name: a, match: {hosts: [a]}, split: {mono: 100}}\n",
	         "r.yaml:7:23: unknown key 'hosts' in routes[0].match; expected one of: host, "
	         "path_prefix, methods", "a typo in match"},
	        {"routes:\n  - {name: a}\n", "missing required key 'split'", "a route without split"},
	        {"routes:\n  - {split: {mono: 100}}\n", "missing required key 'name'",
	         "a route without name"},
	        {"routes: []\n", "expected a non-empty list of routes", "no route"},
	        {"routes:\n  - {name: a, split: {mono: 60, orders: 30}}\n",
	         "the percentages sum to 90", "a split that does not sum to 100"},
	        {"routes:\n  - {name: a, split: {mono: 100}, pins: [{header: x, value: y, pool: "
	         "zz}]}\n",
	         "key 'routes[0].pins[0].pool': unknown pool 'zz'", "a pin's unknown pool"},
	        {"routes:\n  - {name: a, split: {mono: 100}, timeouts: {connect: 1s}}\n",
	         "unknown key 'connect' in routes[0].timeouts; expected one of: upstream_response, "
	         "tunnel_idle", "a timeout a route cannot have"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].yaml, cases[i].want, cases[i].what);

	/* A route after a catch-all loads, with a warning. */
	struct config *cfg = load(HEAD "routes:\n"
	                               "  - {name: all, split: {mono: 100}}\n"
	                               "  - {name: late, match: {path_prefix: /x}, "
	                               "split: {orders: 100}}\n");
	bool warned = cfg->nwarnings == 1 &&
	              !strcmp(cfg->warnings[0], "r.yaml:8:5: warning: route 'late' can never match: "
	                                        "route 'all' before it (at r.yaml:7:5) takes every "
	                                        "request");
	CHECK(warned, "a route after a catch-all: a warning with its position");
	if (!warned && cfg->nwarnings)
		printf("#   %s\n", cfg->warnings[0]);
	config_free(cfg);
}

static void test_match(void)
{
	struct config *cfg = load(routes_yaml);
	static const struct {
		const char *host, *path, *method;
		int want;
	} cases[] = {
	        {"shop.example.com", "/api/orders", "GET", R_ORDERS},
	        {"shop.example.com", "/api/orders/7", "GET", R_ORDERS},
	        {"shop.example.com", "/api/orders?x=1", "POST", R_ORDERS},
	        {"shop.example.com", "/api/ordersX", "GET", R_SHOP},
	        {"shop.example.com", "/api/order", "GET", R_SHOP},
	        {"shop.example.com", "/API/orders", "GET", R_SHOP},
	        {"shop.example.com", "/api/orders", "DELETE", R_SHOP},
	        {"shop.example.com", "/api/orders", "get", R_SHOP},
	        {"SHOP.Example.COM", "/api/orders", "GET", R_ORDERS},
	        {"shop.example.com:8080", "/api/orders", "GET", R_ORDERS},
	        {"shop.example.com.", "/api/orders", "GET", R_ORDERS},
	        {"shop.example.com.:8080", "/api/orders", "GET", R_ORDERS},
	        {"www.shop.example.com", "/api/orders", "GET", R_ORDERS},
	        {"a.b.shop.example.com", "/api/orders/1", "GET", R_ORDERS},
	        {"www.shop.example.com", "/", "GET", -1},
	        {"xshop.example.com", "/api/orders", "GET", -1},
	        {".shop.example.com", "/api/orders", "GET", R_ORDERS},
	        {"x.eu.shop.example.com", "/api/orders", "GET", R_ORDERS},
	        {"x.eu.shop.example.com", "/other", "PUT", R_DEEP},
	        {"eu.shop.example.com", "/other", "PUT", -1},
	        {"other.com", "/static/app.js", "GET", R_STATIC},
	        {"other.com", "/static", "GET", -1},
	        {"other.com", "/staticX/", "GET", -1},
	        {NULL, "/static/x", "GET", R_STATIC},
	        {NULL, "/api/orders", "GET", -1},
	        {"shop.example.com", "/static/x", "GET", R_STATIC},
	        {"[::1]:8080", "/", "GET", R_V6},
	        {"[::1]", "/", "GET", R_V6},
	        {"[::2]", "/", "GET", -1},
	        {"", "/static/a", "GET", R_STATIC},
	        {"", "/", "GET", -1},
	};
	char what[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = match(cfg, cases[i].host, cases[i].path, cases[i].method);
		snprintf(what, sizeof(what), "match %s %s%s %s -> %d", cases[i].method,
		         cases[i].host ? cases[i].host : "(no host)", cases[i].path,
		         cases[i].host ? "" : "", cases[i].want);
		CHECK_EQ_INT(got, cases[i].want, what);
	}

	/* A host longer than any name is no match for a host route, and does
	 * not overflow anything. */
	char big[600];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_EQ_INT(match(cfg, big, "/static/x", "GET"), R_STATIC,
	             "a host over 255 bytes matches only hostless routes");
	config_free(cfg);

	char out[ROUTE_HOST_MAX];
	size_t n = route_host_normalise("A.B.:80", 7, out);
	CHECK(n == 3 && !memcmp(out, "a.b", 3), "normalise: case, port, trailing dot");
	CHECK_EQ_INT(route_host_normalise(":80", 3, out), 0, "normalise: nothing before the port");
	CHECK(route_path_under("/a/", 3, "/a/", 3) && route_path_under("/a/b", 4, "/a/", 3) &&
	              !route_path_under("/a", 2, "/a/", 3),
	      "a prefix ending in '/' takes what is under it, not itself without the slash");
	CHECK(route_path_under("/x", 2, "/", 1) && route_path_under("/", 1, "/", 1),
	      "'/' takes every path");
}

/* 50 routes on one host, one path each: the last one still matches, and
 * first match wins among overlapping ones. */
static void test_many(void)
{
	char yaml[8192];
	size_t n = (size_t)snprintf(yaml, sizeof(yaml), HEAD "routes:\n");
	for (int i = 0; i < 50; i++)
		n += (size_t)snprintf(yaml + n, sizeof(yaml) - n,
		                      "  - {name: r%d, match: {host: [a.test, \"*.w%d.test\"], "
		                      "path_prefix: /p%d}, split: {mono: 100}}\n",
		                      i, i, i);
	struct config *cfg = load(yaml);
	int bad = 0;
	char path[32], host[32];
	for (int i = 0; i < 50; i++) {
		snprintf(path, sizeof(path), "/p%d/x", i);
		snprintf(host, sizeof(host), "x.w%d.test", i);
		bad += match(cfg, "a.test", path, "GET") != i;
		bad += match(cfg, host, path, "GET") != i;
		bad += match(cfg, host, "/p", "GET") != -1;
	}
	CHECK_EQ_INT(bad, 0, "50 routes: each path and wildcard host finds its own route");
	config_free(cfg);
}

/* The segment lists keep config order with the routes that take any path. */
static void test_order(void)
{
	struct config *cfg = load(HEAD "routes:\n"
	                               "  - {name: posts, match: {methods: POST}, split: {mono: 100}}\n"
	                               "  - {name: api, match: {path_prefix: /api}, split: {mono: 100}}\n"
	                               "  - {name: root, match: {path_prefix: /, methods: [PUT]}, "
	                               "split: {mono: 100}}\n"
	                               "  - {name: apiv2, match: {path_prefix: /api/v2}, "
	                               "split: {mono: 100}}\n"
	                               "  - {name: x, match: {host: x.test}, split: {mono: 100}}\n");
	CHECK_EQ_INT(match(cfg, "a", "/api/v2", "POST"), 0, "order: a method route before a path one");
	CHECK_EQ_INT(match(cfg, "a", "/api/v2", "GET"), 1, "order: /api before /api/v2");
	CHECK_EQ_INT(match(cfg, "a", "/api/v2", "PUT"), 1, "order: /api before a later '/' route");
	CHECK_EQ_INT(match(cfg, "a", "/other", "PUT"), 2, "order: '/' takes any first segment");
	CHECK_EQ_INT(match(cfg, "a", "/?q", "PUT"), 2, "order: '/' takes '/?q'");
	CHECK_EQ_INT(match(cfg, "x.test", "/api", "GET"), 1, "order: hostless routes before a host "
	                                                       "one still come first");
	CHECK_EQ_INT(match(cfg, "x.test", "/zzz", "GET"), 4, "order: then the host's route");
	CHECK_EQ_INT(match(cfg, "a", "*", "OPTIONS"), -1, "order: an asterisk target, no path route");
	config_free(cfg);
}

/* Each route splits over its own pools only; a pin-only pool gets only its
 * pinned requests; a route whose pools are down answers 503 rather than
 * spill into another route's pools. */
static void test_pick(void)
{
	struct config *cfg = load(routes_yaml);
	struct snapshot *s = snapshot_from_config(cfg, 1, 1);
	struct route_rr rr = {0};
	struct route_choice c;
	int counts[3] = {0, 0, 0}, rc;

	CHECK(s->nroutes == 5 && s->nmembers == 7, "snapshot: routes and their members");
	for (int i = 0; i < 400; i++)
		if (route_pick(s, &rr, R_ORDERS, -1, &c) == 0 && c.route == R_ORDERS)
			counts[c.pool]++;
	CHECK(counts[1] == 100 && counts[0] == 300 && counts[2] == 0,
	      "orders: 25/75 over orders and mono, nothing to its pin-only pool");
	rc = route_pick(s, &rr, R_ORDERS, 2, &c);
	CHECK(rc == 0 && c.pool == 2 && c.member == 2 && c.pinned, "orders: a pin to its beta pool");

	/* orders' pool down: its share goes to mono, inside the route. */
	s->pools[1].servers[0].available = false;
	snapshot_compute(s);
	memset(counts, 0, sizeof(counts));
	for (int i = 0; i < 100; i++)
		if (route_pick(s, &rr, R_ORDERS, -1, &c) == 0)
			counts[c.pool]++;
	CHECK(counts[0] == 100, "orders: its pool down, all to its other pool");
	CHECK_EQ_INT(route_pick(s, &rr, R_DEEP, -1, &c), 503,
	             "deep: its only pool down -> 503, never another route's pool");
	struct route_choice prev = {.route = R_ORDERS, .member = 1, .pool = 0, .server = 0};
	s->pools[0].servers[1].available = false;
	snapshot_compute(s);
	CHECK_EQ_INT(route_retry(s, &rr, &prev, &c), 503,
	             "retry: no other server and no other pool of the route -> 503, beta "
	             "(pin-only) is not taken");
	s->pools[1].servers[0].available = true;
	snapshot_compute(s);
	rc = route_retry(s, &rr, &prev, &c);
	CHECK(rc == 0 && c.pool == 1 && c.member == 0, "retry: the route's other pool");
	route_rr_free(&rr);
	snapshot_release(s);
	config_free(cfg);
}

/* A route's rollout section (SPEC §8): values, defaults, the top-level one
 * of the default route, and every error with its position. */
static void test_rollout_config(void)
{
	struct config *cfg = load(HEAD "routes:\n"
	                               "  - name: orders\n"
	                               "    split: {mono: 90, orders: 10}\n"
	                               "    rollout:\n"
	                               "      pool: orders\n"
	                               "      steps: [5, {percent: 12.5, hold: 30s}, 100]\n"
	                               "      hold: 2m\n"
	                               "      interval: 5s\n"
	                               "      window: 30s\n"
	                               "      min_requests: 20\n"
	                               "      failures: 3\n"
	                               "      max_inconclusive: 1m\n"
	                               "      webhook: \"http://127.0.0.1:9000/hooks/zdm\"\n"
	                               "      checks:\n"
	                               "        - {metric: error_rate, max: \"2.5%\"}\n"
	                               "        - {metric: availability, min: \"90%\", action: pause}\n"
	                               "        - {metric: p99, max: 1500ms, action: alert}\n"
	                               "        - {metric: p95_vs_baseline, max: 1.5, action: pause}\n"
	                               "  - name: rest\n"
	                               "    split: {mono: 100}\n");
	const struct cfg_rollout *ro = cfg->routes[0].rollout;
	CHECK(ro && cfg->routes[1].rollout == NULL, "a route's rollout; none on the other");
	CHECK(ro && ro->pool == 1 && ro->member == 1, "its pool: orders, member 1 of the route");
	CHECK(ro && ro->nsteps == 3 && ro->steps[0].percent == 500 && ro->steps[1].percent == 1250 &&
	              ro->steps[2].percent == 10000,
	      "steps 5, 12.5, 100 (hundredths)");
	CHECK(ro && ro->steps[0].hold_ms == 120000 && ro->steps[1].hold_ms == 30000 &&
	              ro->steps[2].hold_ms == 120000,
	      "each step's hold: its own, else the rollout's");
	CHECK(ro && ro->interval_ms == 5000 && ro->window_ms == 30000 && ro->min_requests == 20 &&
	              ro->failures == 3 && ro->max_inconclusive_ms == 60000,
	      "interval, window, min_requests, failures, max_inconclusive");
	CHECK(ro && ro->webhook && !strcmp(ro->webhook, "http://127.0.0.1:9000/hooks/zdm"),
	      "the webhook");
	CHECK(ro && ro->nchecks == 4 && ro->checks[0].metric == 0 && ro->checks[0].action == 0 &&
	              ro->checks[0].limit == 0.025,
	      "error_rate max 2.5%: a share of 0.025, rollback by default");
	CHECK(ro && ro->checks[1].metric == 2 && ro->checks[1].action == 1 &&
	              ro->checks[1].limit == 0.9,
	      "availability min 90%, pause");
	CHECK(ro && ro->checks[2].limit == 1500 && ro->checks[2].action == 2, "p99 max 1500 ms, alert");
	CHECK(ro && ro->checks[3].metric == 7 && ro->checks[3].limit == 1.5,
	      "p95_vs_baseline max 1.5");
	config_free(cfg);

	cfg = load(HEAD "split: {mono: 100}\nrollout: {pool: beta, steps: [100]}\n");
	ro = cfg->routes[0].rollout;
	CHECK(ro && !strcmp(cfg->routes[0].name, "default") && ro->member == 2,
	      "a top-level rollout is the default route's (pool beta, member 2)");
	CHECK(ro && ro->nsteps == 1 && ro->steps[0].hold_ms == 300000 && ro->interval_ms == 10000 &&
	              ro->window_ms == 60000 && ro->min_requests == 100 && ro->failures == 2 &&
	              ro->max_inconclusive_ms == 600000 && !ro->webhook,
	      "the defaults: hold 5m, interval 10s, window 1m, 100 requests, 2 failures, 10m");
	CHECK(ro && ro->nchecks == 3 && ro->checks[0].metric == 0 && ro->checks[0].limit == 0.05 &&
	              ro->checks[1].metric == 1 && ro->checks[1].limit == 2 &&
	              ro->checks[2].metric == 2 && ro->checks[2].limit == 0.95,
	      "the default checks: error_rate 5%, error_rate_vs_baseline 2, availability 95%");
	config_free(cfg);

	static const struct {
		const char *yaml, *want, *what;
	} cases[] = {
	        {"split: {mono: 100}\nrollout: {pool: mono, steps: [100]}\n",
	         "r.yaml:7:17: key 'rollout.pool': pool 'mono' is the baseline of route 'default'",
	         "the baseline rolled out"},
	        {"routes:\n  - {name: a, split: {mono: 100}, rollout: {pool: orders, steps: [100]}}\n",
	         "pool 'orders' is not in the split of route 'a'", "a pool outside the split"},
	        {"routes:\n  - {name: a, split: {mono: 90, orders: 10}, rollout: {pool: nope, steps: "
	         "[100]}}\n",
	         "key 'routes[0].rollout.pool': unknown pool 'nope'", "an unknown pool"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [10, 5, 100]}\n",
	         "key 'rollout.steps[1]': the steps must increase: 5 after 10", "steps going down"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [10, 50]}\n",
	         "key 'rollout.steps[1]': the last step must be 100, got 50", "a last step below 100"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [0, 100]}\n",
	         "expected a percentage above 0", "a step at 0"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: []}\n",
	         "expected a list of 1 to 100 steps", "no step"},
	        {"split: {mono: 100}\nrollout: {pool: beta}\n", "missing required key 'steps'",
	         "no steps"},
	        {"split: {mono: 100}\nrollout: {steps: [100]}\n", "missing required key 'pool'",
	         "no pool"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [{percent: 50, wait: 1m}, 100]}\n",
	         "unknown key; a step has percent and hold", "a typo in a step"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], window: 5s}\n",
	         "key 'rollout.window': must be between 10s and 10m, got '5s'", "a window of 5s"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], min_requests: 0}\n",
	         "key 'rollout.min_requests': must be between 1 and", "min_requests 0"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], failures: 0}\n",
	         "key 'rollout.failures': must be between 1 and 100", "failures 0"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], interval: 50ms}\n",
	         "key 'rollout.interval': an analysis every 50ms is too often", "interval 50ms"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], intervall: 5s}\n",
	         "unknown key 'intervall' in rollout", "a typo in the section"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: "
	         "error_ratio, max: \"5%\"}]}\n",
	         "key 'rollout.checks[0].metric': unknown metric 'error_ratio'", "an unknown metric"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: "
	         "error_rate, max: 5}]}\n",
	         "key 'rollout.checks[0].max': expected a percentage such as \"5%\"",
	         "an error rate without %"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: "
	         "availability, max: \"95%\"}]}\n",
	         "check availability has a 'min', not a 'max'", "availability with max"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: p95, max: "
	         "fast}]}\n",
	         "key 'rollout.checks[0].max': expected a duration", "a latency that is no duration"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: "
	         "p95_vs_baseline, max: -2}]}\n",
	         "expected a ratio to the baseline such as 2 or 1.5 (more than 0, at most 1000)",
	         "a negative ratio"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: p95, max: "
	         "2s, action: retry}]}\n",
	         "key 'rollout.checks[0].action': expected one of rollback, pause, alert, got 'retry'",
	         "an unknown action"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{max: 2s}]}\n",
	         "a check needs its metric", "a check without metric"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], checks: [{metric: p95}]}\n",
	         "check p95 needs its threshold 'max'", "a check without threshold"},
	        {"split: {mono: 100}\nrollout: {pool: beta, steps: [100], webhook: \"https://x\"}\n",
	         "key 'rollout.webhook': expected an http:// URL", "an https webhook"},
	        {"routes:\n  - {name: a, split: {mono: 100}}\nrollout: {pool: beta, steps: [100]}\n",
	         "with 'routes', each route has its own split, pins and rollout: move the top-level "
	         "'rollout' into the routes",
	         "a top-level rollout with routes"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_error(cases[i].yaml, cases[i].want, cases[i].what);
}

int main(void)
{
	test_config();
	test_config_errors();
	test_match();
	test_many();
	test_order();
	test_pick();
	test_rollout_config();
	return tap_done();
}
