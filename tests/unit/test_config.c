/*
 * test_config.c — the configuration loader (src/core/config.c): every key of a
 * complete file, the defaults, how pools inherit the global health_check and
 * circuit_breaker (its count list too), each kind of error with its
 * FILE:LINE:COL, several errors in one run, and the duration, size and
 * percent syntaxes.
 */
#include <arpa/inet.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "tap.h"

static char cert_file[64], key_file[64];

static struct config *parse(const char *yaml, struct config_errors *errs)
{
	memset(errs, 0, sizeof(*errs));
	return config_parse("t.yaml", yaml, strlen(yaml), errs);
}

static void dump_errors(const struct config_errors *errs)
{
	for (size_t i = 0; i < errs->n; i++)
		printf("#   error: %s\n", errs->msgs[i]);
}

/* YAML must fail with exactly one error, WANT. */
static void check_error(const char *yaml, const char *want, const char *what)
{
	struct config_errors errs;
	struct config *cfg = parse(yaml, &errs);

	if (!CHECK(!cfg && errs.n == 1, what))
		dump_errors(&errs);
	else
		CHECK_EQ_STR(errs.msgs[0], want, what);
	config_free(cfg);
	config_errors_free(&errs);
}

/* A readable temporary file for the TLS keys. */
static void make_file(char *path, size_t len, const char *tag)
{
	int fd;

	snprintf(path, len, "/tmp/zdm-test-%s-XXXXXX", tag);
	fd = mkstemp(path);
	if (fd < 0 || write(fd, "x\n", 2) != 2) {
		perror("mkstemp");
		exit(2);
	}
	close(fd);
}

static unsigned port_of(const struct cfg_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static const char *ip_of(const struct cfg_addr *a, char *buf, size_t len)
{
	const void *p = a->ss.ss_family == AF_INET
	                        ? (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr
	                        : (const void *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr;

	return inet_ntop(a->ss.ss_family, p, buf, (socklen_t)len);
}

static const char full_yaml[] =
        "listen:\n"
        "  - \"127.0.0.1:8080\"\n"
        "  - address: \"[::1]:8443\"\n"
        "    tls:\n"
        "      certs:\n"
        "        - {cert: %1$s, key: %2$s}\n"
        "        - {cert: %2$s, key: %1$s}\n"
        "      min_version: \"1.3\"\n"
        "      ciphers: \"HIGH:!aNULL\"\n"
        "      ciphersuites: TLS_AES_128_GCM_SHA256\n"
        "  - address: \"*:8444\"\n"
        "    tls: {cert: %1$s, key: %2$s}\n"
        "admin: \"localhost:9090\"\n"
        "control:\n"
        "  socket: /run/zdm/zdm.sock\n"
        "  mode: 0660\n"
        "  group: %3$s\n"
        "state_file: /var/lib/zdm/state.json\n"
        "workers: 4\n"
        "access_log: \"-\"\n"
        "expose_pool_header: yes\n"
        "timeouts: {connect: 250ms, request_header: 5s, upstream_response: 1m,\n"
        "           client_idle: 2m, upstream_idle: 90s, drain: 1h, client_write: 15s}\n"
        "limits: {max_connections: 500, max_header_bytes: 32k, max_body_bytes: 1g}\n"
        "health_check:\n"
        "  path: /healthz\n"
        "  host: svc.internal\n"
        "  interval: 5s\n"
        "  timeout: 500ms\n"
        "  rise: 3\n"
        "  fall: 4\n"
        "  expect: \"200\"\n"
        "  enabled: true\n"
        "circuit_breaker: {failures: 7, open_for: 10s, half_open_probes: 2}\n"
        "pools:\n"
        "  old:\n"
        "    servers:\n"
        "      - {address: \"127.0.0.1:9001\", name: a, weight: 3}\n"
        "      - {address: \"127.0.0.1:9002\"}\n"
        "      - \"127.0.0.1:9003\"\n"
        "  new:\n"
        "    servers:\n"
        "      - {address: \"127.0.0.1:9101\", name: c, weight: 0}\n"
        "    health_check: {path: /ready, timeout: 1s, expect: 200-299}\n"
        "    circuit_breaker: {failures: 0}\n"
        "    tls: {verify: false, ca: %1$s, sni: new.internal}\n"
        "split: {old: 66.67, new: 33.33}\n"
        "pins:\n"
        "  - {header: X-Canary, value: \"true\", pool: new}\n"
        "  - {header: cookie, value: beta=1, pool: old}\n"
        "  - {cookie: beta, value: \"2\", pool: new}\n";

static void test_full(void)
{
	struct config_errors errs;
	struct config *cfg;
	struct group *gr = getgrgid(getgid());
	char yaml[4096], ip[64];

	snprintf(yaml, sizeof(yaml), full_yaml, cert_file, key_file, gr ? gr->gr_name : "root");
	cfg = parse(yaml, &errs);
	if (!CHECK(cfg && errs.n == 0, "full config loads")) {
		dump_errors(&errs);
		config_errors_free(&errs);
		return;
	}
	CHECK_EQ_STR(cfg->path, "t.yaml", "path is the name given");

	CHECK_EQ_INT(cfg->nlisten, 3, "three listeners");
	CHECK_EQ_STR(cfg->listen[0].addr.text, "127.0.0.1:8080", "listen[0] text");
	CHECK(cfg->listen[0].addr.ss.ss_family == AF_INET && port_of(&cfg->listen[0].addr) == 8080,
	      "listen[0] is IPv4 port 8080");
	CHECK(cfg->listen[0].tls == NULL, "listen[0] is plain HTTP");
	CHECK(cfg->listen[1].addr.ss.ss_family == AF_INET6 &&
	              cfg->listen[1].addr.len == sizeof(struct sockaddr_in6),
	      "listen[1] is IPv6");
	CHECK_EQ_STR(ip_of(&cfg->listen[1].addr, ip, sizeof(ip)), "::1", "listen[1] is ::1");
	CHECK(cfg->listen[1].tls && cfg->listen[1].tls->ncerts == 2,
	      "listen[1] has 2 certificates");
	CHECK_EQ_STR(cfg->listen[1].tls->certs[1].cert, key_file, "second certificate's file");
	CHECK_EQ_INT(cfg->listen[1].tls->min_version, 0x0304, "min_version 1.3");
	CHECK_EQ_STR(cfg->listen[1].tls->ciphers, "HIGH:!aNULL", "ciphers");
	CHECK_EQ_STR(cfg->listen[1].tls->ciphersuites, "TLS_AES_128_GCM_SHA256", "ciphersuites");
	CHECK_EQ_STR(ip_of(&cfg->listen[2].addr, ip, sizeof(ip)), "0.0.0.0", "*:PORT is 0.0.0.0");
	CHECK(cfg->listen[2].tls && cfg->listen[2].tls->ncerts == 1 &&
	              !strcmp(cfg->listen[2].tls->certs[0].key, key_file),
	      "cert and key make one certificate");
	CHECK_EQ_INT(cfg->listen[2].tls->min_version, 0x0303, "min_version defaults to 1.2");

	CHECK(cfg->admin && !strcmp(cfg->admin->text, "localhost:9090"), "admin text");
	CHECK_EQ_STR(ip_of(cfg->admin, ip, sizeof(ip)), "127.0.0.1", "localhost resolves to IPv4");
	CHECK_EQ_STR(cfg->control_socket, "/run/zdm/zdm.sock", "control.socket");
	CHECK_EQ_INT(cfg->control_mode, 0660, "control.mode is octal");
	CHECK_EQ_STR(cfg->control_group, gr ? gr->gr_name : "root", "control.group");
	CHECK_EQ_STR(cfg->state_file, "/var/lib/zdm/state.json", "state_file");
	CHECK_EQ_INT(cfg->workers, 4, "workers");
	CHECK_EQ_STR(cfg->access_log, "-", "access_log");
	CHECK(cfg->expose_pool_header, "expose_pool_header: yes");

	CHECK_EQ_INT(cfg->timeouts.connect_ms, 250, "timeouts.connect");
	CHECK_EQ_INT(cfg->timeouts.request_header_ms, 5000, "timeouts.request_header");
	CHECK_EQ_INT(cfg->timeouts.upstream_response_ms, 60000, "timeouts.upstream_response");
	CHECK_EQ_INT(cfg->timeouts.client_idle_ms, 120000, "timeouts.client_idle");
	CHECK_EQ_INT(cfg->timeouts.upstream_idle_ms, 90000, "timeouts.upstream_idle");
	CHECK_EQ_INT(cfg->timeouts.client_write_ms, 15000, "timeouts.client_write");
	CHECK_EQ_INT(cfg->timeouts.drain_ms, 3600000, "timeouts.drain");
	CHECK_EQ_INT(cfg->limits.max_connections, 500, "limits.max_connections");
	CHECK_EQ_INT(cfg->limits.max_header_bytes, 32768, "limits.max_header_bytes");
	CHECK_EQ_INT(cfg->limits.max_body_bytes, 1 << 30, "limits.max_body_bytes");

	CHECK_EQ_INT(cfg->npools, 2, "two pools");
	CHECK_EQ_STR(cfg->pools[0].name, "old", "pools keep file order");
	CHECK_EQ_INT(cfg->pools[0].nservers, 3, "old has 3 servers");
	CHECK_EQ_STR(cfg->pools[0].servers[0].name, "a", "server name");
	CHECK_EQ_INT(cfg->pools[0].servers[0].weight, 3, "server weight");
	CHECK_EQ_STR(cfg->pools[0].servers[1].name, "127.0.0.1:9002", "name defaults to address");
	CHECK_EQ_INT(cfg->pools[0].servers[1].weight, 1, "weight defaults to 1");
	CHECK_EQ_STR(cfg->pools[0].servers[2].addr.text, "127.0.0.1:9003", "bare address item");
	CHECK_EQ_INT(cfg->pools[1].servers[0].weight, 0, "weight 0 allowed");

	CHECK(cfg->pools[0].health.enabled, "old: checks on from the global section");
	CHECK_EQ_STR(cfg->pools[0].health.path, "/healthz", "old: global path");
	CHECK_EQ_STR(cfg->pools[0].health.host, "svc.internal", "old: global host");
	CHECK_EQ_INT(cfg->pools[0].health.interval_ms, 5000, "old: global interval");
	CHECK_EQ_INT(cfg->pools[0].health.rise, 3, "old: global rise");
	CHECK_EQ_INT(cfg->pools[0].health.fall, 4, "old: global fall");
	CHECK(cfg->pools[0].health.expect_lo == 200 && cfg->pools[0].health.expect_hi == 200,
	      "expect: 200 is 200-200");
	CHECK_EQ_STR(cfg->pools[1].health.path, "/ready", "new: own path");
	CHECK_EQ_INT(cfg->pools[1].health.timeout_ms, 1000, "new: own timeout");
	CHECK_EQ_INT(cfg->pools[1].health.interval_ms, 5000, "new: inherited interval");
	CHECK_EQ_STR(cfg->pools[1].health.host, "svc.internal", "new: inherited host");
	CHECK(cfg->pools[1].health.expect_lo == 200 && cfg->pools[1].health.expect_hi == 299,
	      "new: expect range");

	CHECK(cfg->pools[0].breaker.failures == 7 && cfg->pools[0].breaker.open_for_ms == 10000 &&
	              cfg->pools[0].breaker.half_open_probes == 2,
	      "old: global circuit_breaker");
	CHECK(cfg->pools[1].breaker.failures == 0 && cfg->pools[1].breaker.open_for_ms == 10000,
	      "new: failures overridden, open_for inherited");

	CHECK(!cfg->pools[0].tls.enabled, "old: no upstream TLS");
	CHECK(cfg->pools[1].tls.enabled && !cfg->pools[1].tls.verify, "new: TLS without verify");
	CHECK_EQ_STR(cfg->pools[1].tls.ca, cert_file, "new: tls.ca");
	CHECK_EQ_STR(cfg->pools[1].tls.sni, "new.internal", "new: tls.sni");

	CHECK(cfg->routes[0].split[0] == 6667 && cfg->routes[0].split[1] == 3333, "split in hundredths");
	CHECK_EQ_INT(cfg->routes[0].npins, 3, "three pins");
	CHECK(!cfg->routes[0].pins[2].header && cfg->routes[0].pins[2].cookie && !strcmp(cfg->routes[0].pins[2].cookie, "beta") &&
	              !strcmp(cfg->routes[0].pins[2].value, "2") && cfg->routes[0].pins[2].pool == 1,
	      "a cookie pin: its cookie's name, value and pool");
	CHECK(!cfg->routes[0].pins[0].cookie, "a header pin has no cookie");
	CHECK_EQ_STR(cfg->routes[0].pins[0].header, "X-Canary", "pin header");
	CHECK_EQ_STR(cfg->routes[0].pins[0].value, "true", "pin value: a YAML bool stays text");
	CHECK_EQ_INT(cfg->routes[0].pins[0].pool, 1, "pin pool index");
	CHECK_EQ_INT(cfg->routes[0].pins[1].pool, 0, "second pin's pool");
	CHECK_EQ_INT(config_pool_index(cfg, "new"), 1, "config_pool_index finds a pool");
	CHECK_EQ_INT(config_pool_index(cfg, "nwe"), -1, "config_pool_index: unknown is -1");

	config_free(cfg);
	config_errors_free(&errs);
}

static const char minimal_yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
                                   "pools:\n"
                                   "  old:\n"
                                   "    servers: [\"127.0.0.1:9001\"]\n"
                                   "  new:\n"
                                   "    servers: [\"127.0.0.1:9101\"]\n";

static void test_defaults(void)
{
	struct config_errors errs;
	struct config *cfg = parse(minimal_yaml, &errs);

	if (!CHECK(cfg, "minimal config loads")) {
		dump_errors(&errs);
		config_errors_free(&errs);
		return;
	}
	CHECK(!cfg->admin && !cfg->control_socket && !cfg->control_group && !cfg->state_file,
	      "admin, control and state_file off by default");
	CHECK_EQ_INT(cfg->control_mode, 0600, "control mode defaults to 0600");
	CHECK_EQ_INT(cfg->workers, 1, "workers defaults to 1");
	CHECK(!cfg->access_log && !cfg->expose_pool_header, "no access log, no pool header");
	CHECK(cfg->timeouts.connect_ms == 2000 && cfg->timeouts.request_header_ms == 10000 &&
	              cfg->timeouts.upstream_response_ms == 30000 &&
	              cfg->timeouts.client_idle_ms == 60000 &&
	              cfg->timeouts.upstream_idle_ms == 60000 && cfg->timeouts.drain_ms == 30000 &&
	              cfg->timeouts.client_write_ms == 60000,
	      "timeout defaults");
	CHECK(cfg->limits.max_connections == 10000 && cfg->limits.max_header_bytes == 65536 &&
	              cfg->limits.max_body_bytes == 0,
	      "limit defaults");
	CHECK(cfg->routes[0].split[0] == 10000 && cfg->routes[0].split[1] == 0, "no split: all to the first pool");
	CHECK(cfg->routes[0].npins == 0 && !cfg->routes[0].pins, "no pins");
	CHECK(!cfg->pools[0].health.enabled, "no health_check: no active checks");
	CHECK(!strcmp(cfg->pools[0].health.path, "/health") && !cfg->pools[0].health.host &&
	              cfg->pools[0].health.interval_ms == 2000 &&
	              cfg->pools[0].health.timeout_ms == 1000 && cfg->pools[0].health.rise == 2 &&
	              cfg->pools[0].health.fall == 3 && cfg->pools[0].health.expect_lo == 200 &&
	              cfg->pools[0].health.expect_hi == 399,
	      "health_check defaults");
	CHECK(cfg->pools[1].breaker.failures == 5 && cfg->pools[1].breaker.open_for_ms == 30000 &&
	              cfg->pools[1].breaker.half_open_probes == 1,
	      "circuit_breaker on by default");
	CHECK_EQ_INT(cfg->pools[1].breaker.count,
	             CFG_FAIL_BIT(CFG_FAIL_CONNECT) | CFG_FAIL_BIT(CFG_FAIL_RESET) |
	                     CFG_FAIL_BIT(CFG_FAIL_INVALID) | CFG_FAIL_BIT(CFG_FAIL_5XX),
	             "circuit_breaker.count defaults to connect, reset, invalid, 5xx");
	CHECK(!cfg_breaker_counts(&cfg->pools[1].breaker, CFG_FAIL_TIMEOUT),
	      "a timeout is not counted by default");
	CHECK(!cfg->pools[0].tls.enabled && cfg->pools[0].tls.verify,
	      "no upstream TLS; verify defaults to true");
	config_free(cfg);
	config_errors_free(&errs);

	cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	            "workers: auto\n"
	            "access_log: \"off\"\n"
	            "control: {socket: /tmp/z.sock, mode: \"0640\"}\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "split: {old: 100}\n"
	            "pins: []\n",
	            &errs);
	CHECK(cfg && cfg->workers == 0, "workers: auto is 0");
	CHECK(cfg && !cfg->access_log, "access_log: off is NULL");
	CHECK(cfg && cfg->control_mode == 0640, "mode as a quoted string");
	config_free(cfg);
	config_errors_free(&errs);
}

static void test_merge(void)
{
	struct config_errors errs;
	struct config *cfg;

	/* no global section: a pool's own section turns its checks on */
	cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "  new: {servers: [\"127.0.0.1:9101\"], health_check: {rise: 5}}\n",
	            &errs);
	if (CHECK(cfg, "pool health_check without a global one")) {
		CHECK(!cfg->pools[0].health.enabled, "old: still no checks");
		CHECK(cfg->pools[1].health.enabled && cfg->pools[1].health.rise == 5 &&
		              cfg->pools[1].health.fall == 3,
		      "new: checks on, rise set, the rest defaults");
	}
	config_free(cfg);
	config_errors_free(&errs);

	/* a global section; one pool opts out, one changes a key */
	cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	            "health_check: {path: /ping, interval: 3s}\n"
	            "circuit_breaker: {open_for: 1m}\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"], health_check: {enabled: false}}\n"
	            "  new:\n"
	            "    servers: [\"127.0.0.1:9101\"]\n"
	            "    health_check: {interval: 10s}\n"
	            "    circuit_breaker: {half_open_probes: 3}\n",
	            &errs);
	if (CHECK(cfg, "global health_check with pool overrides")) {
		CHECK(!cfg->pools[0].health.enabled, "enabled: false turns a pool's checks off");
		CHECK(cfg->pools[1].health.enabled && cfg->pools[1].health.interval_ms == 10000 &&
		              !strcmp(cfg->pools[1].health.path, "/ping"),
		      "pool interval over the global path");
		CHECK(cfg->pools[1].breaker.failures == 5 &&
		              cfg->pools[1].breaker.open_for_ms == 60000 &&
		              cfg->pools[1].breaker.half_open_probes == 3,
		      "breaker: default, global and pool values merged");
	} else {
		dump_errors(&errs);
	}
	config_free(cfg);
	config_errors_free(&errs);

	/* a pool's shorter interval bounds the timeout it inherits */
	cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	            "health_check: {interval: 2s, timeout: 1s}\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"], health_check: {interval: 500ms}}\n",
	            &errs);
	CHECK(cfg != NULL, "pool interval below the global timeout: accepted");
	if (cfg)
		CHECK_EQ_INT(cfg->pools[0].health.timeout_ms, 500,
		             "pool interval below the global timeout: the timeout is bounded by it");
	config_free(cfg);
	config_errors_free(&errs);

	/* a timeout set next to a shorter interval is an error */
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"], health_check: {interval: 500ms, timeout: 1s}}\n",
	            "t.yaml:3:79: key 'pools.old.health_check.timeout': timeout (1s) must not "
	            "exceed interval (500ms)",
	            "pool timeout above its interval");
}

static void test_errors(void)
{
	/* One line each: bytes of the file quoted in a message (here a key in
	 * the path) have their control bytes masked. */
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  \"o\\nld\": {servers: [\"127.0.0.1:9001\"]}\n",
	            "t.yaml:3:3: key 'pools.o?ld': a pool name may hold only letters, digits, '_', "
	            "'.', ':' and '-'",
	            "a newline in a pool name is masked in the message");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old:\n"
	            "    servers: [\"127.0.0.1:9001\"]\n"
	            "    sevrers: 1\n",
	            "t.yaml:5:5: unknown key 'sevrers' in pools.old; expected one of: servers, "
	            "health_check, circuit_breaker, tls",
	            "unknown key");
	check_error(
	        "listen: [\"127.0.0.1:8080\"]\n"
	        "pools:\n"
	        "  old:\n"
	        "    servers:\n"
	        "      - {address: \"127.0.0.1:9001\", weight: abc}\n",
	        "t.yaml:5:45: key 'pools.old.servers[0].weight': expected an integer, got 'abc'",
	        "wrong type");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old:\n"
	            "    servers:\n"
	            "      - {address: \"127.0.0.1:9001\", weight: 1001}\n",
	            "t.yaml:5:45: key 'pools.old.servers[0].weight': must be between 0 and 1000, "
	            "got '1001'",
	            "out of range");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "workers: 0\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n",
	            "t.yaml:2:10: key 'workers': must be between 1 and 256 (or \"auto\"), got '0'",
	            "workers out of range");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "  old: {servers: [\"127.0.0.1:9002\"]}\n",
	            "t.yaml:4:3: key 'pools.old': duplicate pool 'old' (first at line 3, column 3)",
	            "duplicate pool");
	check_error(
	        "listen: [\"127.0.0.1:8080\"]\n"
	        "pools:\n"
	        "  old:\n"
	        "    servers:\n"
	        "      - {address: \"127.0.0.1:9001\", name: a}\n"
	        "      - {address: \"127.0.0.1:9002\", name: a}\n",
	        "t.yaml:6:43: key 'pools.old.servers[1].name': duplicate server name 'a' in pool "
	        "'old' (first at line 5, column 43)",
	        "duplicate server");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "timeouts:\n"
	            "  connect: 1s\n"
	            "  connect: 2s\n",
	            "t.yaml:5:3: key 'timeouts.connect': duplicate key (first at line 4, column 3)",
	            "duplicate key");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "  new: {servers: [\"127.0.0.1:9101\"]}\n"
	            "split: {old: 90, nwe: 10}\n",
	            "t.yaml:5:18: key 'split.nwe': unknown pool 'nwe'; the pools are: old, new",
	            "unknown pool in split");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "pins:\n"
	            "  - {header: canary, cookie: beta, value: \"1\", pool: old}\n",
	            "t.yaml:5:5: key 'pins[0]': a pin matches a header or a cookie: give exactly one "
	            "of 'header' and 'cookie'",
	            "a pin with both header and cookie");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "pins:\n"
	            "  - {value: \"1\", pool: old}\n",
	            "t.yaml:5:5: key 'pins[0]': a pin matches a header or a cookie: give exactly one "
	            "of 'header' and 'cookie'",
	            "a pin with neither");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "pins:\n"
	            "  - {cookie: beta, value: \"a;b\", pool: old}\n",
	            "t.yaml:5:27: key 'pins[0]': not a cookie value: no blanks, '\"' (but around "
	            "it), ',', ';' or '\\' (RFC 6265)",
	            "a cookie pin's value that no cookie can have");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "pins:\n"
	            "  - {cookie: \"be ta\", value: \"1\", pool: old}\n",
	            "t.yaml:5:14: key 'pins[0].cookie': expected a cookie name (a token), got "
	            "'be ta'",
	            "a cookie name that is no token");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "pins:\n"
	            "  - {header: canary, value: \"true\", pool: new}\n",
	            "t.yaml:5:43: key 'pins[0].pool': unknown pool 'new'; the pools are: old",
	            "unknown pool in pins");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "  new: {servers: [\"127.0.0.1:9101\"]}\n"
	            "split: {old: 90, new: 9.5}\n",
	            "t.yaml:5:1: key 'split': the percentages sum to 99.5, they must sum to 100",
	            "split not summing to 100");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "timeouts: {connect: 2}\n",
	            "t.yaml:3:21: key 'timeouts.connect': expected a duration such as 250ms, 2s or "
	            "5m, got '2'",
	            "bare number as a duration");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "  new: {servers: [\"127.0.0.1:9101\"]}\n"
	            "split: {old: 66.667, new: 33.33}\n",
	            "t.yaml:5:14: key 'split.old': at most 2 decimals are allowed, got '66.667'",
	            "too many decimals");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old:\n"
	            "    servers: [\"127.0.0.1:9001\"\n"
	            "  new: 1\n",
	            "t.yaml:5:3: YAML syntax error: did not find expected ',' or ']' while parsing "
	            "a flow sequence",
	            "YAML syntax error");
	check_error("pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n",
	            "t.yaml:1:1: missing required key 'listen' (addresses to accept clients on)",
	            "missing listen");
	check_error("listen: []\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n",
	            "t.yaml:1:9: key 'listen': at least one listener is required", "empty listen");
	check_error(
	        "listen: [\"127.0.0.1:99999\"]\n"
	        "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n",
	        "t.yaml:1:10: key 'listen[0]': bad address '127.0.0.1:99999': the port must be a "
	        "number between 1 and 65535",
	        "port out of range");
	check_error("listen: [\"::1:80\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n",
	            "t.yaml:1:10: key 'listen[0]': bad address '::1:80': an IPv6 address goes in "
	            "brackets, as in [::1]:8080",
	            "IPv6 without brackets");
	check_error(
	        "listen: [\"127.0.0.1:8080\"]\n"
	        "pools: {old/x: {servers: [\"127.0.0.1:9001\"]}}\n",
	        "t.yaml:2:9: key 'pools.old/x': a pool name may hold only letters, digits, '_', "
	        "'.', ':' and '-'",
	        "pool name with a slash");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [{address: \"127.0.0.1:9001\", name: \"a b\"}]}}\n",
	            "t.yaml:2:59: key 'pools.old.servers[0].name': a server name may hold only "
	            "letters, digits, '_', '.', ':' and '-', got 'a b'",
	            "server name with a space");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [{name: a}]}}\n",
	            "t.yaml:2:25: key 'pools.old.servers[0]': missing required key 'address' "
	            "(HOST:PORT of the upstream server)",
	            "server without an address");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "expose_pool_header: maybe\n",
	            "t.yaml:3:21: key 'expose_pool_header': expected true or false, got 'maybe'",
	            "bad boolean");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "control: {socket: /tmp/z.sock, mode: 01777}\n",
	            "t.yaml:3:38: key 'control.mode': must be between 0 and 0777, got '01777'",
	            "mode out of range");
	check_error(
	        "listen: [\"127.0.0.1:8080\"]\n"
	        "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	        "limits: {max_header_bytes: 2m}\n",
	        "t.yaml:3:28: key 'limits.max_header_bytes': must be between 1k and 1m, got '2m'",
	        "size out of range");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "health_check: {path: health}\n",
	            "t.yaml:3:22: key 'health_check.path': expected a path starting with '/' and "
	            "without spaces, got 'health'",
	            "health path without a slash");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "pins: [{header: \"x canary\", value: 1, pool: old}]\n",
	            "t.yaml:3:17: key 'pins[0].header': expected a header name, got 'x canary'",
	            "pin header not a token");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "timeouts: [1s]\n",
	            "t.yaml:3:11: key 'timeouts': expected a mapping, got a list",
	            "a list where a mapping belongs");
	check_error("",
	            "t.yaml:1:1: empty configuration: expected a mapping with at least 'listen' "
	            "and 'pools'",
	            "empty document");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "---\n"
	            "listen: []\n",
	            "t.yaml:4:1: a configuration file holds one YAML document, this is a second",
	            "a second document");
}

/* circuit_breaker.count: the list, its inheritance by the pools, and its
 * errors. */
static void test_breaker_count(void)
{
	struct config_errors errs;
	struct config *cfg;

	cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	            "circuit_breaker: {count: [connect, reset, invalid, 5xx, timeout]}\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"]}\n"
	            "  new:\n"
	            "    servers: [\"127.0.0.1:9101\"]\n"
	            "    circuit_breaker: {failures: 2, count: [\"5xx\"]}\n"
	            "  third:\n"
	            "    servers: [\"127.0.0.1:9201\"]\n"
	            "    circuit_breaker:\n"
	            "      count: []\n",
	            &errs);
	if (CHECK(cfg, "count: global list, pool overrides")) {
		CHECK_EQ_INT(cfg->pools[0].breaker.count, (1u << CFG_FAIL_KINDS) - 1,
		             "old: every kind, timeout included, from the global section");
		CHECK(cfg_breaker_counts(&cfg->pools[0].breaker, CFG_FAIL_TIMEOUT),
		      "old: a timeout counts");
		CHECK_EQ_INT(cfg->pools[1].breaker.count, CFG_FAIL_BIT(CFG_FAIL_5XX),
		             "new: its own list replaces the global one (only 5xx)");
		CHECK(cfg->pools[1].breaker.failures == 2 &&
		              cfg->pools[1].breaker.open_for_ms == 30000,
		      "new: failures its own, open_for the default");
		CHECK_EQ_INT(cfg->pools[2].breaker.count, 0, "third: an empty list counts nothing");
	} else {
		dump_errors(&errs);
	}
	config_free(cfg);
	config_errors_free(&errs);

	/* a pool without count inherits the global one, order is free */
	cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	            "circuit_breaker: {count: [timeout, connect]}\n"
	            "pools:\n"
	            "  old: {servers: [\"127.0.0.1:9001\"], circuit_breaker: {failures: 9}}\n",
	            &errs);
	if (CHECK(cfg, "count in any order"))
		CHECK_EQ_INT(cfg->pools[0].breaker.count,
		             CFG_FAIL_BIT(CFG_FAIL_TIMEOUT) | CFG_FAIL_BIT(CFG_FAIL_CONNECT),
		             "a pool overriding failures only keeps the global count");
	else
		dump_errors(&errs);
	config_free(cfg);
	config_errors_free(&errs);

	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "circuit_breaker: {count: [connect, timeouts]}\n",
	            "t.yaml:3:36: key 'circuit_breaker.count[1]': expected one of connect, reset, "
	            "invalid, 5xx, timeout, got 'timeouts'",
	            "count: an unknown kind");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "circuit_breaker:\n"
	            "  count:\n"
	            "    - 5xx\n"
	            "    - reset\n"
	            "    - 5xx\n",
	            "t.yaml:7:7: key 'circuit_breaker.count[2]': '5xx' is listed twice (first at "
	            "line 5, column 7)",
	            "count: a duplicate");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "circuit_breaker: {count: timeout}\n",
	            "t.yaml:3:26: key 'circuit_breaker.count': expected a list of failure kinds "
	            "(connect, reset, invalid, 5xx, timeout), got 'timeout'",
	            "count: a scalar, not a list");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "circuit_breaker: {count: }\n",
	            "t.yaml:3:26: key 'circuit_breaker.count': expected a list of failure kinds "
	            "(connect, reset, invalid, 5xx, timeout), got nothing",
	            "count: nothing");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools:\n"
	            "  old:\n"
	            "    servers: [\"127.0.0.1:9001\"]\n"
	            "    circuit_breaker: {count: [connect, {kind: reset}]}\n",
	            "t.yaml:5:40: key 'pools.old.circuit_breaker.count[1]': expected one of "
	            "connect, reset, invalid, 5xx, timeout, got a mapping",
	            "count: a mapping in the list, in a pool");
	check_error("listen: [\"127.0.0.1:8080\"]\n"
	            "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n"
	            "circuit_breaker: {count: [Timeout]}\n",
	            "t.yaml:3:27: key 'circuit_breaker.count[0]': expected one of connect, reset, "
	            "invalid, 5xx, timeout, got 'Timeout'",
	            "count: kinds are lower case");
}

/* An unreadable file is named with the reason, at the value's position. */
static void test_unreadable_cert(void)
{
	struct config_errors errs;
	struct config *cfg = parse("listen:\n"
	                           "  - address: \"127.0.0.1:8443\"\n"
	                           "    tls: {cert: /nonexistent/zdm.pem}\n"
	                           "pools: {old: {servers: [\"127.0.0.1:9001\"]}}\n",
	                           &errs);

	CHECK(!cfg && errs.n == 2, "unreadable cert and missing key: two errors");
	if (errs.n == 2) {
		CHECK_EQ_STR(errs.msgs[0],
		             "t.yaml:3:10: key 'listen[0].tls': missing 'key' next to 'cert'",
		             "missing key next to cert");
		CHECK_EQ_STR(errs.msgs[1],
		             "t.yaml:3:17: key 'listen[0].tls.cert': cannot read "
		             "'/nonexistent/zdm.pem': "
		             "No such file or directory",
		             "unreadable certificate");
	}
	config_free(cfg);
	config_errors_free(&errs);
}

/* Every error of a file in one run, in file order. */
static void test_many_errors(void)
{
	struct config_errors errs;
	struct config *cfg = parse("listen: [\"127.0.0.1:8080\"]\n"
	                           "wokers: 2\n"
	                           "timeouts: {connect: 5}\n"
	                           "pools:\n"
	                           "  old:\n"
	                           "    servers: [{address: \"127.0.0.1:9001\", weight: -1}]\n"
	                           "pins: [{header: canary, value: x, pool: nope}]\n"
	                           "split: {old: 100.5}\n",
	                           &errs);

	CHECK(!cfg, "a file with errors gives no config");
	CHECK_EQ_INT(errs.n, 5, "five errors reported in one run");
	if (errs.n != 5) {
		dump_errors(&errs);
		config_errors_free(&errs);
		return;
	}
	CHECK(!strncmp(errs.msgs[0], "t.yaml:2:1: unknown key 'wokers' at the top level", 49),
	      "1st: unknown top-level key");
	CHECK(!strncmp(errs.msgs[1], "t.yaml:3:21: key 'timeouts.connect':", 36),
	      "2nd: bad duration");
	CHECK_EQ_STR(errs.msgs[2],
	             "t.yaml:6:51: key 'pools.old.servers[0].weight': must be between 0 and 1000, "
	             "got '-1'",
	             "3rd: negative weight");
	CHECK(!strncmp(errs.msgs[3], "t.yaml:7:41: key 'pins[0].pool': unknown pool 'nope'", 52),
	      "4th: unknown pool, although pins come before split in the file");
	CHECK_EQ_STR(errs.msgs[4],
	             "t.yaml:8:14: key 'split.old': must be between 0 and 100, got "
	             "'100.5'",
	             "5th: percentage above 100");
	config_errors_free(&errs);
}

static void test_load(void)
{
	struct config_errors errs = {0};
	struct config *cfg;
	char path[64];
	FILE *f;

	cfg = config_load("/nonexistent/zdm.yaml", &errs);
	CHECK(!cfg && errs.n == 1, "missing file: one error");
	if (errs.n == 1)
		CHECK_EQ_STR(errs.msgs[0],
		             "/nonexistent/zdm.yaml: cannot read: No such file or directory",
		             "missing file message");
	config_errors_free(&errs);

	make_file(path, sizeof(path), "yaml");
	f = fopen(path, "w");
	if (f) {
		fputs(minimal_yaml, f);
		fclose(f);
	}
	cfg = config_load(path, &errs);
	CHECK(cfg && errs.n == 0 && !strcmp(cfg->path, path), "config_load reads a file");
	config_free(cfg);
	config_errors_free(&errs);
	unlink(path);
	config_free(NULL);
}

static void test_durations(void)
{
	static const struct {
		const char *s;
		int rc;
		uint32_t ms;
	} t[] = {
	        {"250ms", 0, 250},
	        {"2s", 0, 2000},
	        {"5m", 0, 300000},
	        {"1h", 0, 3600000},
	        {"0ms", 0, 0},
	        {"4294967295ms", 0, 4294967295u},
	        {"4294967296ms", -1, 0},
	        {"2", -1, 0},
	        {"1.5s", -1, 0},
	        {"-1s", -1, 0},
	        {"", -1, 0},
	        {"s", -1, 0},
	        {"2 s", -1, 0},
	        {"2S", -1, 0},
	        {"1d", -1, 0},
	        {"99999999999999999999999h", -1, 0},
	};
	int ok = 1;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint32_t ms = 0;
		int rc = config_parse_duration(t[i].s, &ms);
		if (rc != t[i].rc || (rc == 0 && ms != t[i].ms)) {
			printf("#   duration '%s': rc %d ms %u\n", t[i].s, rc, ms);
			ok = 0;
		}
	}
	CHECK(ok, "config_parse_duration edge cases");
}

static void test_sizes(void)
{
	static const struct {
		const char *s;
		int rc;
		uint64_t n;
	} t[] = {
	        {"512", 0, 512},
	        {"64k", 0, 65536},
	        {"64K", 0, 65536},
	        {"1m", 0, 1048576},
	        {"1g", 0, 1073741824},
	        {"0", 0, 0},
	        {"k", -1, 0},
	        {"1kb", -1, 0},
	        {"-1", -1, 0},
	        {"1t", -1, 0},
	        {"", -1, 0},
	        {"1.5k", -1, 0},
	        {"99999999999999999999", -1, 0},
	        {"17179869184g", -1, 0},
	};
	int ok = 1;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t n = 0;
		int rc = config_parse_size(t[i].s, &n);
		if (rc != t[i].rc || (rc == 0 && n != t[i].n)) {
			printf("#   size '%s': rc %d n %llu\n", t[i].s, rc, (unsigned long long)n);
			ok = 0;
		}
	}
	CHECK(ok, "config_parse_size edge cases");
}

static void test_percents(void)
{
	static const struct {
		const char *s;
		int rc;
		uint32_t h;
	} t[] = {
	        {"90", 0, 9000},
	        {"0.5", 0, 50},
	        {"33.33", 0, 3333},
	        {"100", 0, 10000},
	        {"100.00", 0, 10000},
	        {"0", 0, 0},
	        {"007", 0, 700},
	        {"33.333", -1, 0},
	        {"100.01", -1, 0},
	        {"101", -1, 0},
	        {".5", -1, 0},
	        {"5.", -1, 0},
	        {"-1", -1, 0},
	        {"1e2", -1, 0},
	        {"", -1, 0},
	        {"50%", -1, 0},
	        {"99999999999999999999", -1, 0},
	};
	int ok = 1;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint32_t h = 0;
		int rc = config_parse_percent(t[i].s, &h);
		if (rc != t[i].rc || (rc == 0 && h != t[i].h)) {
			printf("#   percent '%s': rc %d h %u\n", t[i].s, rc, h);
			ok = 0;
		}
	}
	CHECK(ok, "config_parse_percent edge cases");

	uint32_t h = 1;
	CHECK(config_parse_percent("0.05", &h) == 0 && h == 5, "0.05 is 5 hundredths");
	CHECK(config_parse_percent("12.3", &h) == 0 && h == 1230, "one decimal is tenths");
}

int main(void)
{
	make_file(cert_file, sizeof(cert_file), "cert");
	make_file(key_file, sizeof(key_file), "key");
	test_full();
	test_defaults();
	test_merge();
	test_errors();
	test_breaker_count();
	test_unreadable_cert();
	test_many_errors();
	test_load();
	test_durations();
	test_sizes();
	test_percents();
	unlink(cert_file);
	unlink(key_file);
	return tap_done();
}
