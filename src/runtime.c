/*
 * runtime.c — runtime changes, their persistence and their publication.
 *
 * Reload merge rule (SPEC §6): a value written in the new config wins over
 * the runtime one only if it differs from the value in the config loaded
 * before; otherwise the runtime value stays. The split is one value (its
 * percentages must sum to 100): if the pools or any pool's percentage
 * changed in the file, the file's split is taken whole. Server weights are
 * merged one by one, by pool and server name; admin states (which the config
 * does not hold) stay with their servers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "mem.h"
#include "runtime.h"
#include "snapshot.h"
#include "state.h"
#include "worker.h"

const char *const admin_state_names[] = {
	[ADMIN_ENABLED] = "enabled",
	[ADMIN_DRAINING] = "draining",
	[ADMIN_DISABLED] = "disabled",
};

static size_t count_servers(const struct config *cfg)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->npools; i++)
		n += cfg->pools[i].nservers;
	return n;
}

static void values_init(struct runtime_values *v, const struct config *cfg)
{
	size_t ns = count_servers(cfg);
	v->split = xcalloc(cfg->npools, sizeof(*v->split));
	v->weight = xcalloc(ns ? ns : 1, sizeof(*v->weight));
	v->admin = xcalloc(ns ? ns : 1, sizeof(*v->admin));
	memcpy(v->split, cfg->split, cfg->npools * sizeof(*v->split));
	size_t id = 0;
	for (size_t i = 0; i < cfg->npools; i++)
		for (size_t j = 0; j < cfg->pools[i].nservers; j++, id++) {
			v->weight[id] = cfg->pools[i].servers[j].weight;
			v->admin[id] = ADMIN_ENABLED;
		}
}

static void values_copy(struct runtime_values *dst, const struct runtime_values *src,
                        const struct config *cfg)
{
	size_t ns = count_servers(cfg);
	memcpy(dst->split, src->split, cfg->npools * sizeof(*dst->split));
	memcpy(dst->weight, src->weight, ns * sizeof(*dst->weight));
	memcpy(dst->admin, src->admin, ns * sizeof(*dst->admin));
}

static void values_free(struct runtime_values *v)
{
	free(v->split);
	free(v->weight);
	free(v->admin);
	v->split = v->weight = NULL;
	v->admin = NULL;
}

/* The snapshot for values v of cfg: derived from the published one when
 * the layout is the same (its counters go on), else a new layout with the
 * counters carried over by name. */
static struct snapshot *build(struct runtime *rt, const struct runtime_values *v,
                              struct config *cfg)
{
	struct snapshot *s;
	if (rt->snap && rt->snap->cfg == cfg) {
		s = snapshot_derive(rt->snap, ++rt->gen);
	} else {
		s = snapshot_from_config(cfg, ++rt->gen);
		if (rt->snap)
			snapshot_carry_stats(s, rt->snap);
	}
	for (size_t i = 0; i < s->npools; i++) {
		struct snap_pool *p = &s->pools[i];
		p->split = v->split[i];
		for (size_t j = 0; j < p->nservers; j++) {
			struct snap_server *sv = &p->servers[j];
			sv->weight = v->weight[sv->id];
			sv->available = v->admin[sv->id] == ADMIN_ENABLED;
		}
	}
	snapshot_compute(s);
	return s;
}

/* Makes s the published snapshot (taking over the caller's reference). */
static int publish(struct runtime *rt, struct snapshot *s)
{
	if (rt->w && worker_apply(rt->w, snapshot_hold(s)) < 0) {
		snapshot_release(s);
		return -1;
	}
	snapshot_release(rt->snap);
	rt->snap = s;
	return 0;
}

struct runtime *runtime_new(struct config *cfg, const char *config_path)
{
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	rt->started_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	rt->config_path = xstrdup(config_path);
	rt->cfg = config_hold(cfg);
	values_init(&rt->v, cfg);
	if (cfg->state_file && state_load(cfg->state_file, cfg, &rt->v) == 0)
		log_info("state: runtime changes restored from %s", cfg->state_file);
	publish(rt, build(rt, &rt->v, cfg));
	return rt;
}

void runtime_free(struct runtime *rt)
{
	if (!rt)
		return;
	snapshot_release(rt->snap);
	config_release(rt->cfg);
	values_free(&rt->v);
	free(rt->config_path);
	free(rt);
}

void runtime_attach(struct runtime *rt, struct worker *w)
{
	rt->w = w;
}

/* Persists nv, then makes it the runtime values and publishes them. */
static int commit(struct runtime *rt, struct runtime_values *nv, char *err, size_t errlen)
{
	if (rt->cfg->state_file && state_save(rt->cfg->state_file, rt->cfg, nv, err, errlen) < 0)
		return -1;
	values_copy(&rt->v, nv, rt->cfg);
	publish(rt, build(rt, &rt->v, rt->cfg));
	return 0;
}

/* Runs a change on a copy of the values, then commits it. */
#define WITH_COPY(rt, nv, body)                                                                    \
	do {                                                                                       \
		struct runtime_values nv;                                                          \
		values_init(&nv, (rt)->cfg);                                                       \
		values_copy(&nv, &(rt)->v, (rt)->cfg);                                             \
		body;                                                                              \
		int r_ = commit((rt), &nv, err, errlen);                                          \
		values_free(&nv);                                                                  \
		return r_;                                                                         \
	} while (0)

void runtime_share(uint32_t *split, size_t n, size_t pool, uint32_t value)
{
	uint64_t rest = 10000 - value, sum = 0, given = 0;
	size_t others = n - 1;

	for (size_t i = 0; i < n; i++)
		if (i != pool)
			sum += split[i];
	/* Largest remainder: each other pool gets the floor of its exact
	 * share, and the units left go to the largest remainders. */
	uint64_t *rem = xcalloc(n, sizeof(*rem));
	for (size_t i = 0; i < n; i++) {
		if (i == pool)
			continue;
		uint64_t num = rest * (sum ? split[i] : 1), den = sum ? sum : others;
		split[i] = (uint32_t)(num / den);
		rem[i] = (num % den) * 10000 / den;
		given += split[i];
	}
	split[pool] = value;
	while (given < rest) {
		size_t best = n;
		for (size_t i = 0; i < n; i++)
			if (i != pool && (best == n || rem[i] > rem[best]))
				best = i;
		split[best]++;
		rem[best] = 0;
		given++;
	}
	free(rem);
}

int runtime_set_split(struct runtime *rt, int pool, uint32_t hundredths, char *err, size_t errlen)
{
	if (rt->cfg->npools == 1 && hundredths != 10000) {
		snprintf(err, errlen, "pool '%s' is the only pool: it always has 100%%",
		         rt->cfg->pools[0].name);
		return -1;
	}
	WITH_COPY(rt, nv, runtime_share(nv.split, rt->cfg->npools, (size_t)pool, hundredths));
}

int runtime_promote(struct runtime *rt, int pool, char *err, size_t errlen)
{
	WITH_COPY(rt, nv, {
		memset(nv.split, 0, rt->cfg->npools * sizeof(*nv.split));
		nv.split[pool] = 10000;
	});
}

int runtime_set_weight(struct runtime *rt, int pool, int server, uint32_t weight, char *err,
                       size_t errlen)
{
	uint32_t id = rt->snap->pools[pool].servers[server].id;
	WITH_COPY(rt, nv, nv.weight[id] = weight);
}

int runtime_set_admin(struct runtime *rt, int pool, int server, enum admin_state st, char *err,
                      size_t errlen)
{
	uint32_t id = rt->snap->pools[pool].servers[server].id;
	WITH_COPY(rt, nv, nv.admin[id] = (uint8_t)st);
}

static void errs_add(struct config_errors *errs, char *msg)
{
	errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(*errs->msgs));
	errs->msgs[errs->n++] = msg;
}

/* Where the server (pool, server) of config cfg sits in the server ids. */
static int find_server(const struct config *cfg, const char *pool, const char *server,
                       size_t *pool_index, size_t *id)
{
	size_t base = 0;
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *p = &cfg->pools[i];
		if (strcmp(p->name, pool) == 0) {
			for (size_t j = 0; j < p->nservers; j++) {
				if (strcmp(p->servers[j].name, server) == 0) {
					*pool_index = i;
					*id = base + j;
					return (int)j;
				}
			}
			return -1;
		}
		base += p->nservers;
	}
	return -1;
}

/* The merge rule, into nv (holding next's values). */
static void merge(const struct runtime *rt, const struct config *next, struct runtime_values *nv)
{
	const struct config *old = rt->cfg;

	bool same_split = next->npools == old->npools;
	for (size_t i = 0; same_split && i < next->npools; i++) {
		int oi = config_pool_index(old, next->pools[i].name);
		same_split = oi >= 0 && old->split[oi] == next->split[i];
	}
	if (same_split) {
		for (size_t i = 0; i < next->npools; i++)
			nv->split[i] = rt->v.split[config_pool_index(old, next->pools[i].name)];
	}

	size_t id = 0;
	for (size_t i = 0; i < next->npools; i++) {
		const struct cfg_pool *p = &next->pools[i];
		for (size_t j = 0; j < p->nservers; j++, id++) {
			size_t opool, oid;
			int oj = find_server(old, p->name, p->servers[j].name, &opool, &oid);
			if (oj < 0)
				continue; /* a new server: the file's values */
			if (old->pools[opool].servers[oj].weight == p->servers[j].weight)
				nv->weight[id] = rt->v.weight[oid];
			nv->admin[id] = rt->v.admin[oid];
		}
	}
}

int runtime_reload(struct runtime *rt, struct config_errors *errs)
{
	char err[512];
	struct config *next = config_load(rt->config_path, errs);
	if (!next)
		return -1;

	struct runtime_values nv;
	values_init(&nv, next);
	merge(rt, next, &nv);
	if (next->state_file && state_save(next->state_file, next, &nv, err, sizeof(err)) < 0) {
		errs_add(errs, xstrdup(err));
		goto fail;
	}
	struct snapshot *s = build(rt, &nv, next);
	if (publish(rt, s) < 0) {
		errs_add(errs, xasprintf("%s: a listener of the new configuration cannot be opened "
		                         "(see the error log)",
		                         rt->config_path));
		/* The state file must describe what runs: put it back. */
		if (rt->cfg->state_file &&
		    state_save(rt->cfg->state_file, rt->cfg, &rt->v, err, sizeof(err)) < 0)
			log_error("%s", err);
		goto fail;
	}
	config_release(rt->cfg);
	rt->cfg = next;
	values_free(&rt->v);
	rt->v = nv;
	return 0;
fail:
	values_free(&nv);
	config_release(next);
	return -1;
}
