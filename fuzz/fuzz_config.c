/*
 * fuzz_config.c — the configuration loader: YAML text in, as `zdmd -t`
 * reads a file (config_parse(), which config_load() calls with the file's
 * bytes), a config or errors out.
 *
 * Whatever the text: no crash, no undefined behaviour, no leak; a config
 * exactly when there is no error; each error one line "fuzz.yaml:LINE:COL:
 * message" (SPEC §2), in the order of the file, without control bytes; and
 * a config that loads holds what the loader promises (SPEC §3): pools with
 * servers, valid unique names, a split summing to 100%, values within
 * their bounds.
 *
 * Host names are not resolved here: getaddrinfo() is replaced by one that
 * takes numeric addresses and "localhost" only, so that a run depends on
 * the input alone and never waits on DNS.
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "core/config.h"
#include "core/log.h"

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	static int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
	struct addrinfo h = hints ? *hints : (struct addrinfo){0};

	if (!real)
		real = (int (*)(const char *, const char *, const struct addrinfo *,
		                struct addrinfo **))dlsym(RTLD_NEXT, "getaddrinfo");
	if (node && strcmp(node, "localhost") == 0)
		node = "127.0.0.1";
	h.ai_flags |= AI_NUMERICHOST;
	return real(node, service, &h, res);
}

static const char name[] = "fuzz.yaml";

static bool valid_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
		      strchr("_.:-", c)))
			return false;
	}
	return true;
}

static void check_errors(const struct config_errors *errs, size_t size)
{
	size_t last_line = 0, last_col = 0;

	for (size_t i = 0; i < errs->n; i++) {
		const char *m = errs->msgs[i];
		size_t line = 0, col = 0;
		int off = -1;

		FUZZ_ASSERT(m && strncmp(m, name, sizeof(name) - 1) == 0 &&
		                    sscanf(m + sizeof(name) - 1, ":%zu:%zu: %n", &line, &col, &off) == 2 &&
		                    off > 0 && m[sizeof(name) - 1 + (size_t)off] != '\0',
		            "error %zu is not FILE:LINE:COL: message: %s", i, m ? m : "(null)");
		FUZZ_ASSERT(line >= 1 && col >= 1 && line <= size + 1 && col <= size + 1,
		            "error %zu at %zu:%zu in %zu bytes: %s", i, line, col, size, m);
		FUZZ_ASSERT(line > last_line || (line == last_line && col >= last_col),
		            "error %zu at %zu:%zu after one at %zu:%zu", i, line, col, last_line, last_col);
		last_line = line;
		last_col = col;
		for (const char *q = m; *q; q++)
			FUZZ_ASSERT((unsigned char)*q >= 0x20 && *q != 0x7f,
			            "error %zu holds control byte %#x: %s", i, (unsigned char)*q, m);
	}
}

static void check_config(const struct config *cfg)
{
	uint32_t sum = 0;

	FUZZ_ASSERT(cfg->path && strcmp(cfg->path, name) == 0, "path");
	FUZZ_ASSERT(cfg->nlisten >= 1 && cfg->listen, "a config without a listener");
	for (size_t i = 0; i < cfg->nlisten; i++) {
		const struct cfg_listen *l = &cfg->listen[i];
		FUZZ_ASSERT(l->addr.text && l->addr.len > 0 && l->addr.len <= sizeof(l->addr.ss),
		            "listener %zu address", i);
		if (l->tls)
			FUZZ_ASSERT(l->tls->ncerts >= 1 && l->tls->certs, "TLS listener %zu without a certificate", i);
	}
	FUZZ_ASSERT(cfg->npools >= 1 && cfg->pools && cfg->nroutes >= 1 && cfg->table,
	            "a config without a pool or a route");
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *p = &cfg->pools[i];
		FUZZ_ASSERT(valid_name(p->name), "pool %zu name", i);
		FUZZ_ASSERT(config_pool_index(cfg, p->name) == (int)i, "pool '%s' not unique", p->name);
		FUZZ_ASSERT(p->nservers >= 1 && p->servers, "pool '%s' without a server", p->name);
		for (size_t j = 0; j < p->nservers; j++) {
			const struct cfg_server *sv = &p->servers[j];
			FUZZ_ASSERT(sv->name && *sv->name && sv->addr.text && sv->addr.len > 0,
			            "pool '%s' server %zu", p->name, j);
			FUZZ_ASSERT(sv->weight <= 1000, "server weight %u", sv->weight);
			for (size_t k = 0; k < j; k++)
				FUZZ_ASSERT(strcmp(p->servers[k].name, sv->name) != 0,
				            "server '%s' twice in pool '%s'", sv->name, p->name);
		}
		const struct cfg_health *h = &p->health;
		FUZZ_ASSERT(h->path && h->path[0] == '/', "health path");
		FUZZ_ASSERT(h->expect_lo >= 100 && h->expect_lo <= h->expect_hi && h->expect_hi <= 599,
		            "health expect %d-%d", h->expect_lo, h->expect_hi);
		FUZZ_ASSERT(h->rise >= 1 && h->fall >= 1, "health rise %u fall %u", h->rise, h->fall);
		FUZZ_ASSERT(!h->enabled || (h->interval_ms > 0 && h->timeout_ms > 0 &&
		                            h->timeout_ms <= h->interval_ms),
		            "pool '%s': health timeout %u, interval %u", p->name, h->timeout_ms,
		            h->interval_ms);
		FUZZ_ASSERT(p->breaker.failures <= 1000 && p->breaker.half_open_probes >= 1,
		            "breaker");
	}
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct cfg_route *rt = &cfg->routes[r];
		sum = 0;
		FUZZ_ASSERT(rt->name && rt->nsplit >= 1 && rt->nsplit <= rt->npools, "route %zu", r);
		for (size_t m = 0; m < rt->npools; m++) {
			FUZZ_ASSERT(rt->pools[m] < cfg->npools && rt->split[m] <= 10000,
			            "route '%s' member %zu", rt->name, m);
			sum += rt->split[m];
		}
		FUZZ_ASSERT(sum == 10000, "route '%s': the split sums to %u hundredths", rt->name, sum);
		const struct cfg_rollout *ro = rt->rollout;
		if (ro) {
			FUZZ_ASSERT(ro->member >= 1 && ro->member < rt->nsplit &&
			                    rt->pools[ro->member] == (size_t)ro->pool,
			            "route '%s': the rollout's pool is member %zu of %zu", rt->name,
			            ro->member, rt->nsplit);
			FUZZ_ASSERT(ro->nsteps >= 1 && ro->steps[ro->nsteps - 1].percent == 10000,
			            "route '%s': the rollout's last step", rt->name);
			for (size_t k = 0; k < ro->nsteps; k++)
				FUZZ_ASSERT(ro->steps[k].percent > 0 && ro->steps[k].hold_ms > 0 &&
				                    (!k || ro->steps[k].percent > ro->steps[k - 1].percent),
				            "route '%s': rollout step %zu", rt->name, k);
			FUZZ_ASSERT(ro->window_ms >= 10000 && ro->window_ms <= 600000 &&
			                    ro->interval_ms > 0 && ro->min_requests >= 1 &&
			                    ro->failures >= 1 && ro->nchecks >= 1 &&
			                    ro->nchecks <= CFG_ROLLOUT_MAX_CHECKS,
			            "route '%s': the rollout's values", rt->name);
			for (size_t k = 0; k < ro->nchecks; k++)
				FUZZ_ASSERT(ro->checks[k].metric < CFG_ROLLOUT_METRICS &&
				                    ro->checks[k].action < 3 && ro->checks[k].limit >= 0,
				            "route '%s': rollout check %zu", rt->name, k);
		}
		for (size_t k = 0; k < rt->npins; k++)
			FUZZ_ASSERT(rt->pins[k].member < rt->npools &&
			                    rt->pools[rt->pins[k].member] == rt->pins[k].pool,
			            "route '%s' pin %zu", rt->name, k);
	}
	FUZZ_ASSERT(cfg->workers <= 256, "workers %u", cfg->workers);
	FUZZ_ASSERT(cfg->log_level >= 0 && cfg->log_level <= 3, "log_level %d", cfg->log_level);
	FUZZ_ASSERT(cfg->limits.max_header_bytes > 0, "max_header_bytes 0");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_errors errs = {0};
	/* exactly the input, no terminator: a read past it is caught */
	char *text = malloc(size ? size : 1);

	memcpy(text, data, size);
	fuzz_input(data, size);
	struct config *cfg = config_parse(name, text, size, &errs);
	FUZZ_ASSERT(!cfg == (errs.n > 0), "%s with %zu errors", cfg ? "a config" : "no config",
	            errs.n);
	check_errors(&errs, size);
	if (cfg) {
		check_config(cfg);
		/* held and released as the snapshots do */
		config_release(config_hold(cfg));
		config_release(cfg);
	}
	config_errors_free(&errs);
	free(text);
	return 0;
}
