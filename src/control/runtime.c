/*
 * runtime.c — runtime changes, their persistence and their publication.
 *
 * Reload merge rule (SPEC §6): a value written in the new config wins over
 * the runtime one only if it differs from the value in the config loaded
 * before; otherwise the runtime value stays. A route's split is one value
 * (its percentages must sum to 100): if its pools or any pool's percentage
 * changed in the file, the file's split is taken whole; routes are matched
 * by name. Server weights are
 * merged one by one, by pool and server name; admin states (which the config
 * does not hold) stay with their servers.
 */
#include <assert.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <event2/event.h>

#include "control/health.h"
#include "control/rollouts.h"
#include "control/runtime.h"
#include "control/state.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/tls.h"
#include "proxy/snapshot.h"
#include "proxy/worker-t.h"
#include "proxy/workers.h"

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
	v->split = xcalloc(cfg->nmembers ? cfg->nmembers : 1, sizeof(*v->split));
	v->weight = xcalloc(ns ? ns : 1, sizeof(*v->weight));
	v->admin = xcalloc(ns ? ns : 1, sizeof(*v->admin));
	v->ro = xcalloc(cfg->nroutes ? cfg->nroutes : 1, sizeof(*v->ro));
	for (size_t r = 0; r < cfg->nroutes; r++)
		v->ro[r].pool = cfg->routes[r].rollout ? cfg->routes[r].rollout->pool : -1;
	for (size_t r = 0; r < cfg->nroutes; r++)
		memcpy(v->split + cfg->routes[r].first, cfg->routes[r].split,
		       cfg->routes[r].npools * sizeof(*v->split));
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
	memcpy(dst->split, src->split, cfg->nmembers * sizeof(*dst->split));
	memcpy(dst->weight, src->weight, ns * sizeof(*dst->weight));
	memcpy(dst->admin, src->admin, ns * sizeof(*dst->admin));
	memcpy(dst->ro, src->ro, cfg->nroutes * sizeof(*dst->ro));
}

static void values_free(struct runtime_values *v)
{
	free(v->split);
	free(v->weight);
	free(v->admin);
	free(v->ro);
	v->split = v->weight = NULL;
	v->admin = NULL;
	v->ro = NULL;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct srv_state *srv_states_new(const struct config *cfg)
{
	size_t n = count_servers(cfg);
	struct srv_state *st = xcalloc(n ? n : 1, sizeof(*st));
	for (size_t i = 0; i < n; i++) {
		st[i].up = true;
		breaker_init(&st[i].brk);
	}
	return st;
}

static uint32_t free_probe_slots(const struct breaker *b, const struct cfg_breaker *c)
{
	if (b->state != BREAKER_HALF_OPEN || b->probes >= c->half_open_probes)
		return 0;
	return c->half_open_probes - b->probes;
}

/* The snapshot for values v of cfg: derived from the published one when
 * the layout is the same (its counters go on), else a new layout with the
 * counters carried over by name. */
static struct snapshot *build(struct runtime *rt, const struct runtime_values *v,
                              struct config *cfg, struct tls_set *tls)
{
	struct snapshot *s;
	bool fresh = false; /* a stats table of its own */
	if (rt->snap && rt->snap->cfg == cfg) {
		s = snapshot_derive(rt->snap, ++rt->gen);
	} else {
		fresh = true;
		s = snapshot_from_config(cfg, ++rt->gen, rt->nshards);
		s->tls = tls ? tls_set_hold(tls) : NULL;
		if (rt->snap)
			snapshot_carry_stats(s, rt->snap);
	}
	for (size_t r = 0; r < s->nroutes; r++)
		memcpy(s->routes[r].split, v->split + s->routes[r].cfg->first,
		       s->routes[r].cfg->npools * sizeof(*v->split));
	for (size_t i = 0; i < s->npools; i++) {
		struct snap_pool *p = &s->pools[i];
		for (size_t j = 0; j < p->nservers; j++) {
			struct snap_server *sv = &p->servers[j];
			const struct srv_state *st = &rt->srv[sv->id];
			sv->weight = v->weight[sv->id];
			sv->available = v->admin[sv->id] == ADMIN_ENABLED && st->up &&
			                breaker_available(&st->brk, &p->cfg->breaker);
			sv->probing = st->brk.state == BREAKER_HALF_OPEN;
			if (fresh)
				s->stats->probe_slots[sv->id] =
				        free_probe_slots(&st->brk, &p->cfg->breaker);
		}
	}
	snapshot_compute(s);
	return s;
}

/* Makes s the published snapshot (taking over the caller's reference). */
static int publish(struct runtime *rt, struct snapshot *s)
{
	if (rt->ws && workers_publish(rt->ws, s) < 0) {
		snapshot_release(s);
		return -1;
	}
	snapshot_release(rt->snap);
	rt->snap = s;
	return 0;
}

struct runtime *runtime_new(struct config *cfg, struct tls_set *tls, const char *config_path,
                            size_t nshards)
{
	struct runtime *rt = xcalloc(1, sizeof(*rt));
	rt->nshards = nshards ? nshards : 1;
	pthread_mutex_init(&rt->lock, NULL);
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	rt->started_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	rt->config_path = xstrdup(config_path);
	rt->cfg = config_hold(cfg);
	rt->tls = tls;
	rt->srv = srv_states_new(cfg);
	values_init(&rt->v, cfg);
	if (cfg->state_file && state_load(cfg->state_file, cfg, &rt->v) == 0)
		log_info("state: runtime changes restored from %s", cfg->state_file);
	rt->ro = rollouts_build(rt, cfg, &rt->v);
	if (rollouts_changed(rt->ro) && cfg->state_file) {
		/* A rollout the config no longer has was rolled back: said
		 * once, not again at every start. */
		char err[512];
		if (state_save(cfg->state_file, cfg, &rt->v, err, sizeof(err)) < 0) {
			log_error("%s", err);
			rt->state_dirty = true;
		}
	}
	publish(rt, build(rt, &rt->v, cfg, rt->tls));
	return rt;
}

void runtime_free(struct runtime *rt)
{
	if (!rt)
		return;
	workers_free(rt->ws); /* their loops have ended */
	health_stop(rt->health);
	rollouts_free(rt->ro);
	if (rt->breaker_timer)
		event_free(rt->breaker_timer);
	snapshot_release(rt->snap);
	tls_set_release(rt->tls);
	config_release(rt->cfg);
	values_free(&rt->v);
	free(rt->srv);
	free(rt->config_path);
	pthread_mutex_destroy(&rt->lock);
	free(rt);
}

/* The server's names for log lines. */
static void server_names(const struct runtime *rt, uint32_t id, const char **pool,
                         const char **server)
{
	const struct snapshot *s = rt->snap;
	for (size_t i = 0; i < s->npools; i++) {
		const struct snap_pool *p = &s->pools[i];
		if (id < p->first_id + p->nservers) {
			*pool = p->cfg->name;
			*server = p->servers[id - p->first_id].cfg->name;
			return;
		}
	}
	*pool = *server = "?";
}

static const struct cfg_breaker *breaker_cfg(const struct runtime *rt, uint32_t id)
{
	const struct snapshot *s = rt->snap;
	for (size_t i = 0; i < s->npools; i++)
		if (id < s->pools[i].first_id + s->pools[i].nservers)
			return &s->pools[i].cfg->breaker;
	return &s->pools[0].cfg->breaker;
}

static void republish(struct runtime *rt)
{
	publish(rt, build(rt, &rt->v, rt->cfg, rt->tls));
}

static void on_health(void *arg, uint32_t id, bool up, const char *reason)
{
	struct runtime *rt = arg;
	runtime_lock(rt);
	struct srv_state *st = &rt->srv[id];
	st->up = up;
	st->health_at = wall_ms();
	snprintf(st->health_reason, sizeof(st->health_reason), "%s", reason);
	republish(rt);
	runtime_unlock(rt);
}

/* Arms the timer for the earliest end of an open period. */
static void arm_breaker_timer(struct runtime *rt)
{
	uint64_t next = 0, now = mono_ms();
	size_t n = rt->snap->nservers;
	for (size_t i = 0; i < n; i++) {
		const struct breaker *b = &rt->srv[i].brk;
		if (b->state == BREAKER_OPEN && (!next || b->open_until_ms < next))
			next = b->open_until_ms;
	}
	if (!next || !rt->breaker_timer)
		return;
	uint64_t d = next > now ? next - now : 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
	evtimer_add(rt->breaker_timer, &tv);
}

/* Sets the probe slots server id's circuit has free (see stats.h): all of
 * them as it turns half-open, none in the other states. Set before the
 * snapshot that shows the new state is published. */
static void reset_probe_slots(struct runtime *rt, uint32_t id)
{
	__atomic_store_n(&rt->snap->stats->probe_slots[id],
	                 free_probe_slots(&rt->srv[id].brk, breaker_cfg(rt, id)), __ATOMIC_RELEASE);
}

static void on_breaker_timer(evutil_socket_t fd, short what, void *arg)
{
	struct runtime *rt = arg;
	uint64_t now = mono_ms();
	bool changed = false;
	(void)fd;
	(void)what;
	runtime_lock(rt);
	for (size_t i = 0; i < rt->snap->nservers; i++) {
		struct srv_state *st = &rt->srv[i];
		const struct cfg_breaker *c = breaker_cfg(rt, (uint32_t)i);
		if (breaker_tick(&st->brk, c, now)) {
			const char *pool, *server;
			server_names(rt, (uint32_t)i, &pool, &server);
			st->circuit_at = wall_ms();
			snprintf(st->circuit_reason, sizeof(st->circuit_reason),
			         "open for %ums: admitting %u probe%s", c->open_for_ms,
			         c->half_open_probes, c->half_open_probes == 1 ? "" : "s");
			log_info("circuit: %s/%s half-open: %s", pool, server, st->circuit_reason);
			reset_probe_slots(rt, (uint32_t)i);
			changed = true;
		}
	}
	if (changed)
		republish(rt);
	arm_breaker_timer(rt);
	runtime_unlock(rt);
}

void runtime_outcome(struct runtime *rt, const struct snapshot *snap, uint32_t id, int result,
                     int kind, const char *what)
{
	if (snap->cfg != rt->cfg)
		return; /* routed before a reload: its server layout is gone */
	struct srv_state *st = &rt->srv[id];
	const struct cfg_breaker *c = breaker_cfg(rt, id);
	enum breaker_state was = st->brk.state;
	bool before = breaker_available(&st->brk, c);
	uint32_t probes = st->brk.probes;
	bool changed;
	if (result < 0) {
		breaker_abandoned(&st->brk);
		changed = false;
	} else {
		int outcome = result > 0 ? BREAKER_SUCCESS : kind;
		changed = breaker_result(&st->brk, c, outcome, mono_ms());
	}
	if (!changed) {
		/* No outcome, or one of a kind not counted: at most a probe's
		 * slot is free again. */
		if (st->brk.state == BREAKER_HALF_OPEN && st->brk.probes < probes) {
			__atomic_add_fetch(&rt->snap->stats->probe_slots[id], 1, __ATOMIC_RELEASE);
			if (result == 0) {
				const char *pool, *server;
				server_names(rt, id, &pool, &server);
				log_debug("circuit: %s/%s: a probe ended with %s, not counted: its "
				          "slot is free again",
				          pool, server, what ? what : "a failure");
			}
		}
		if (before != breaker_available(&st->brk, c))
			republish(rt);
		return;
	}
	reset_probe_slots(rt, id);

	const char *pool, *server;
	server_names(rt, id, &pool, &server);
	st->circuit_at = wall_ms();
	if (st->brk.state == BREAKER_OPEN && was == BREAKER_CLOSED)
		snprintf(st->circuit_reason, sizeof(st->circuit_reason),
		         "%u consecutive failures (last: %s)", c->failures, what ? what : "failure");
	else if (st->brk.state == BREAKER_OPEN)
		snprintf(st->circuit_reason, sizeof(st->circuit_reason), "a probe failed (%s)",
		         what ? what : "failure");
	else
		snprintf(st->circuit_reason, sizeof(st->circuit_reason), "a probe succeeded");
	if (st->brk.state == BREAKER_OPEN)
		log_warn("circuit: %s/%s open: %s", pool, server, st->circuit_reason);
	else
		log_info("circuit: %s/%s %s: %s", pool, server,
		         st->brk.state == BREAKER_HALF_OPEN ? "half-open" : "closed",
		         st->circuit_reason);
	republish(rt);
	arm_breaker_timer(rt);
}

void runtime_admitted(struct runtime *rt, const struct snapshot *snap, uint32_t id)
{
	if (snap->cfg != rt->cfg)
		return;
	struct srv_state *st = &rt->srv[id];
	const struct cfg_breaker *c = breaker_cfg(rt, id);
	bool before = breaker_available(&st->brk, c);
	breaker_admitted(&st->brk);
	if (before != breaker_available(&st->brk, c))
		republish(rt); /* the probe slots are taken */
}

/* Tells the workers whether a success of server id can change its breaker
 * (they report successes only then). */
static void publish_streak(struct runtime *rt, uint32_t id)
{
	const struct breaker *b = &rt->srv[id].brk;
	uint32_t v = b->state != BREAKER_CLOSED ? 1 : b->failures;
	__atomic_store_n(&rt->snap->stats->streak[id], v, __ATOMIC_RELAXED);
}

/* A worker's report: on the worker's thread if the control plane is not
 * busy (wait false), else from the queue on the control loop. */
static int on_report(void *arg, const struct snapshot *snap, uint32_t server,
                     enum worker_event ev, int kind, const char *what, bool wait)
{
	struct runtime *rt = arg;
	if (wait)
		runtime_lock(rt);
	else if (pthread_mutex_trylock(&rt->lock) != 0)
		return -1;
	if (snap->cfg == rt->cfg) {
		if (ev == WORKER_ADMITTED)
			runtime_admitted(rt, snap, server);
		else
			runtime_outcome(rt, snap, server,
			                ev == WORKER_SUCCESS ? 1 : ev == WORKER_FAILURE ? 0 : -1,
			                kind, what && *what ? what : NULL);
		publish_streak(rt, server);
	} /* else routed before a reload: its server layout is gone */
	runtime_unlock(rt);
	return 0;
}

void runtime_lock(struct runtime *rt)
{
	pthread_mutex_lock(&rt->lock);
}

void runtime_unlock(struct runtime *rt)
{
	pthread_mutex_unlock(&rt->lock);
}

static void start_health(struct runtime *rt)
{
	size_t n = count_servers(rt->cfg);
	bool *up = xcalloc(n ? n : 1, sizeof(*up));
	for (size_t i = 0; i < n; i++)
		up[i] = rt->srv[i].up;
	rt->health = health_start(rt->base, rt->cfg, rt->tls, up, on_health, rt);
	free(up);
}

int runtime_start(struct runtime *rt, struct event_base *base)
{
	rt->base = base;
	rt->ws = workers_start(base, rt->snap, (unsigned)rt->nshards, on_report, rt);
	if (!rt->ws)
		return -1;
	rt->breaker_timer = evtimer_new(base, on_breaker_timer, rt);
	start_health(rt);
	rollouts_start(rt);
	return 0;
}

/* Persists nv, then makes it the runtime values and publishes them. */
static int commit(struct runtime *rt, struct runtime_values *nv, char *err, size_t errlen)
{
	if (rt->cfg->state_file && state_save(rt->cfg->state_file, rt->cfg, nv, err, errlen) < 0)
		return -1;
	rt->state_dirty = false;
	values_copy(&rt->v, nv, rt->cfg);
	publish(rt, build(rt, &rt->v, rt->cfg, rt->tls));
	return 0;
}

void runtime_save_again(struct runtime *rt)
{
	char err[512];
	if (!rt->state_dirty || !rt->cfg->state_file)
		return;
	if (state_save(rt->cfg->state_file, rt->cfg, &rt->v, err, sizeof(err)) < 0) {
		log_ratelimited(LOG_ERROR, "%s (tried again)", err);
		return;
	}
	rt->state_dirty = false;
	log_info("state: %s written again: it holds every change applied", rt->cfg->state_file);
}

/* Applies nv though the state file cannot take it (a rollback). */
static void force(struct runtime *rt, struct runtime_values *nv, const char *err)
{
	log_error("%s: applied all the same, and written again once the file can be", err);
	rt->state_dirty = true;
	values_copy(&rt->v, nv, rt->cfg);
	publish(rt, build(rt, &rt->v, rt->cfg, rt->tls));
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

	assert(pool < n && (others > 0 || value == 10000));

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

int runtime_set_split(struct runtime *rt, int route, int member, uint32_t hundredths, char *err,
                      size_t errlen)
{
	const struct cfg_route *r = &rt->cfg->routes[route];
	if (r->nsplit == 1 && hundredths != 10000) {
		snprintf(err, errlen, "pool '%s' is the only pool of route '%s': it always has 100%%",
		         rt->cfg->pools[r->pools[0]].name, r->name);
		return -1;
	}
	WITH_COPY(rt, nv, runtime_share(nv.split + r->first, r->nsplit, (size_t)member, hundredths));
}

int runtime_promote(struct runtime *rt, int route, int member, char *err, size_t errlen)
{
	return runtime_set_split(rt, route, member, 10000, err, errlen);
}

int runtime_rollback(struct runtime *rt, int route, char *err, size_t errlen)
{
	struct runtime_values nv;
	values_init(&nv, rt->cfg);
	values_copy(&nv, &rt->v, rt->cfg);
	for (size_t i = 0; i < rt->cfg->nroutes; i++) {
		const struct cfg_route *r = &rt->cfg->routes[i];
		if (route >= 0 && (size_t)route != i)
			continue;
		for (size_t m = 0; m < r->nsplit; m++)
			nv.split[r->first + m] = m == 0 ? 10000 : 0;
	}
	int rc = 0;
	if (commit(rt, &nv, err, errlen) < 0) {
		force(rt, &nv, err);
		rc = 1;
	}
	values_free(&nv);
	return rc;
}

int runtime_set_rollout(struct runtime *rt, int route, const struct rollout_value *val, int member,
                        int32_t hundredths, bool must, char *err, size_t errlen)
{
	const struct cfg_route *r = &rt->cfg->routes[route];
	struct runtime_values nv;
	values_init(&nv, rt->cfg);
	values_copy(&nv, &rt->v, rt->cfg);
	nv.ro[route] = *val;
	if (r->nsplit > 1 && member > 0 && (size_t)member < r->nsplit) {
		uint32_t *split = nv.split + r->first;
		if (hundredths == RUNTIME_TO_BASELINE) {
			split[0] += split[member];
			split[member] = 0;
		} else if (hundredths >= 0) {
			runtime_share(split, r->nsplit, (size_t)member, (uint32_t)hundredths);
		}
	}
	int rc = commit(rt, &nv, err, errlen);
	if (rc < 0 && must) {
		force(rt, &nv, err);
		rc = 0;
	}
	values_free(&nv);
	return rc;
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

	/* A route's split is one value: kept from the runtime when the route
	 * of that name splits over the same pools with the same percentages
	 * in both files. */
	for (size_t r = 0; r < next->nroutes; r++) {
		const struct cfg_route *nr = &next->routes[r];
		int orx = config_route_index(old, nr->name, strlen(nr->name));
		if (orx < 0)
			continue;
		const struct cfg_route *or = &old->routes[orx];
		bool same = or->nsplit == nr->nsplit;
		for (size_t m = 0; same && m < nr->nsplit; m++)
			same = or->split[m] == nr->split[m] &&
			       strcmp(old->pools[or->pools[m]].name, next->pools[nr->pools[m]].name) == 0;
		if (same)
			memcpy(nv->split + nr->first, rt->v.split + or->first,
			       nr->nsplit * sizeof(*nv->split));
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

/* Health and circuit states follow their servers into the new layout. */
static void carry_states(const struct runtime *rt, const struct config *next,
                         struct srv_state *nst)
{
	size_t id = 0;
	for (size_t i = 0; i < next->npools; i++) {
		const struct cfg_pool *p = &next->pools[i];
		for (size_t j = 0; j < p->nservers; j++, id++) {
			size_t opool, oid;
			if (find_server(rt->cfg, p->name, p->servers[j].name, &opool, &oid) >= 0)
				nst[id] = rt->srv[oid];
			if (!p->health.enabled)
				nst[id].up = true; /* no checks: nothing says it is down */
		}
	}
}

/* Whether cfg uses TLS anywhere. */
static bool tls_wanted(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].tls)
			return true;
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].tls.enabled)
			return true;
	return false;
}

int runtime_reload(struct runtime *rt, struct config_errors *errs)
{
	char err[512];
	struct config *next = config_load(rt->config_path, errs);
	for (size_t i = 0; next && i < next->nwarnings; i++)
		log_warn("%s", next->warnings[i]);
	struct tls_set *ntls = NULL;
	bool tls_ok = next && tls_wanted(next) ? (ntls = tls_set_new(next, errs)) != NULL : true;
	if (!next || !tls_ok) {
		config_release(next);
		rt->reloads_error++;
		return -1;
	}

	struct runtime_values nv;
	values_init(&nv, next);
	merge(rt, next, &nv);
	struct rollouts *nro = rollouts_build(rt, next, &nv);
	struct srv_state *nst = srv_states_new(next);
	carry_states(rt, next, nst);
	struct srv_state *ost = rt->srv;
	rt->srv = nst; /* build() reads them */
	if (next->state_file && state_save(next->state_file, next, &nv, err, sizeof(err)) < 0) {
		errs_add(errs, xstrdup(err));
		goto fail;
	}
	struct snapshot *s = build(rt, &nv, next, ntls);
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
	tls_set_release(rt->tls);
	rt->tls = ntls;
	values_free(&rt->v);
	rt->v = nv;
	free(ost);
	rollouts_install(rt, nro);
	for (uint32_t id = 0; id < rt->snap->nservers; id++)
		publish_streak(rt, id);
	if (workers_wanted(next->workers) != rt->nshards)
		log_warn("%s: workers: the number of workers changes at the next start (running "
		         "%zu)",
		         rt->config_path, rt->nshards);
	if (rt->ws) {
		health_stop(rt->health);
		start_health(rt);
		arm_breaker_timer(rt);
	}
	rt->reloads_ok++;
	if (rt->on_reload)
		rt->on_reload(rt->on_reload_arg);
	return 0;
fail:
	rt->reloads_error++;
	rollouts_free(nro);
	tls_set_release(ntls);
	rt->srv = ost;
	free(nst);
	values_free(&nv);
	config_release(next);
	return -1;
}
