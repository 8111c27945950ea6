/*
 * rollouts.c — the rollout controller: see rollouts.h.
 *
 * One controller per route with a rollout section. Its state machine
 * (rollout.c) decides; this file feeds it the time and the analyses, and
 * applies what it decides through runtime_set_rollout, which persists the
 * rollout's state with the split and publishes the split to the workers.
 *
 * A change the state file cannot take is refused, as every runtime change
 * is (the state machine is put back as it was and tries again at the next
 * analysis), except a rollback or a pause: those are applied all the same,
 * and the failure to persist them logged.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "control/rollouts.h"
#include "control/runtime.h"
#include "control/webhook.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "proxy/snapshot.h"
#include "proxy/stats.h"
#include "rollout/analysis.h"
#include "rollout/rollout.h"
#include "rollout/window.h"

/* The workers' slots keep 60 seconds: a rollout's window takes them at
 * least this often, whatever its interval. */
#define RO_TAKE_MS 20000
/* A webhook POST's whole exchange. */
#define RO_WEBHOOK_MS 5000

const char *const rollouts_cmd_names[RC_COMMANDS] = {"start", "pause", "resume",
                                                     "next",  "abort", "status"};

/* The last analysis, as status shows it. */
struct ro_analysis {
	bool done;
	int64_t at_wall_ms;
	enum analysis_result verdict;
	struct analysis_pool_view pool, base;
	struct analysis_outcome out[ROLLOUT_MAX_CHECKS];
};

/* What the build of the controllers decided, said once they are
 * installed (the reload may still fail before): a rollout the new config
 * no longer has, rolled back (an event), or one that goes on (a line). */
struct ro_pending {
	bool event;
	char *route, *pool, *webhook;
	size_t step, nsteps;
	uint32_t percent;
	char text[256];                 /* the event's reason, or the line */
};

struct ro_route {
	int route;                      /* index in the config */
	const struct cfg_route *cfg;
	const struct cfg_rollout *c;    /* NULL: the route has no rollout */
	struct rollout r;
	struct rollout_spec sp;
	struct rollout_step *steps;
	struct analysis_check checks[ROLLOUT_MAX_CHECKS];
	struct window_ring *wpool, *wbase; /* the pool's and the baseline's seconds */
	struct ro_analysis last;
	uint64_t analyses[3];           /* by verdict: pass, fail, inconclusive */
	uint64_t events[8];             /* by enum rollout_event_kind */
};

struct rollouts {
	const struct config *cfg;       /* the one built for (held by the runtime) */
	struct ro_route *routes;        /* [cfg->nroutes] */
	size_t n;
	struct ro_pending *pending;
	size_t npending;
	struct event *timer;
	struct webhooks *hooks;
	char instance[128];
};

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

/* The wall-clock time of monotonic time t. */
static int64_t wall_of(uint64_t t, uint64_t now_mono, int64_t now_wall)
{
	return now_wall + ((int64_t)t - (int64_t)now_mono);
}

static void rfc3339(char *buf, size_t len, int64_t ms)
{
	struct tm tm;
	time_t sec = (time_t)(ms / 1000);
	gmtime_r(&sec, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_time(struct evbuffer *out, int64_t ms)
{
	char buf[40];
	rfc3339(buf, sizeof(buf), ms);
	json_str(out, buf);
}

/* A measured value: null when it is not a number. */
static void json_num(struct evbuffer *out, double v)
{
	if (!isfinite(v)) {
		json_raw(out, "null");
		return;
	}
	char buf[40];
	snprintf(buf, sizeof(buf), "%.6g", v);
	json_raw(out, buf);
}

static bool active(const struct ro_route *x)
{
	return x->c && (x->r.state == RS_RUNNING || x->r.state == RS_PAUSED);
}

static const char *pool_name(const struct config *cfg, const struct ro_route *x)
{
	return cfg->pools[x->c->pool].name;
}

static void spec_init(struct ro_route *x)
{
	const struct cfg_rollout *c = x->c;
	x->steps = xcalloc(c->nsteps, sizeof(*x->steps));
	for (size_t i = 0; i < c->nsteps; i++) {
		x->steps[i].percent = c->steps[i].percent;
		x->steps[i].hold_ms = c->steps[i].hold_ms;
	}
	size_t n = c->nchecks < ROLLOUT_MAX_CHECKS ? c->nchecks : ROLLOUT_MAX_CHECKS;
	for (size_t i = 0; i < n; i++) {
		x->checks[i].metric = (enum analysis_metric)c->checks[i].metric;
		x->checks[i].action = (enum analysis_action)c->checks[i].action;
		x->checks[i].limit = c->checks[i].limit;
	}
	x->sp = (struct rollout_spec){
	        .steps = x->steps,
	        .nsteps = c->nsteps,
	        .interval_ms = c->interval_ms,
	        .window_ms = c->window_ms,
	        .min_requests = c->min_requests,
	        .failures = c->failures,
	        .max_inconclusive_ms = c->max_inconclusive_ms,
	        .checks = x->checks,
	        .nchecks = n,
	};
}

static void rings_alloc(struct ro_route *x)
{
	if (!x->wpool) {
		x->wpool = xcalloc(1, sizeof(*x->wpool));
		x->wbase = xcalloc(1, sizeof(*x->wbase));
	}
}

static void rings_clear(struct ro_route *x)
{
	rings_alloc(x);
	memset(x->wpool, 0, sizeof(*x->wpool));
	memset(x->wbase, 0, sizeof(*x->wbase));
}

static const struct ro_route *find_route(const struct rollouts *ro, const char *name)
{
	for (size_t i = 0; ro && i < ro->n; i++)
		if (strcmp(ro->routes[i].cfg->name, name) == 0)
			return &ro->routes[i];
	return NULL;
}

static struct ro_pending *add_pending(struct rollouts *ro)
{
	ro->pending = xrealloc(ro->pending, (ro->npending + 1) * sizeof(*ro->pending));
	struct ro_pending *p = &ro->pending[ro->npending++];
	memset(p, 0, sizeof(*p));
	return p;
}

bool rollouts_changed(const struct rollouts *ro)
{
	for (size_t i = 0; i < ro->npending; i++)
		if (ro->pending[i].event)
			return true;
	return false;
}

/* The step of x to go on at, for a rollout that was at step i with
 * percentage pct (0: not known): the step at pct, else the highest below
 * it, else the first; without pct, step i if there is one, else the
 * first. Never a step with more traffic than the pool had. */
static size_t same_step(const struct ro_route *x, size_t i, uint32_t pct)
{
	if (!pct)
		return i < x->sp.nsteps ? i : 0;
	if (i < x->sp.nsteps && x->steps[i].percent == pct)
		return i;
	size_t best = 0;
	for (size_t k = 0; k < x->sp.nsteps; k++)
		if (x->steps[k].percent <= pct)
			best = k;
	return best;
}

static bool same_checks(const struct ro_route *a, const struct ro_route *b)
{
	if (a->sp.nchecks != b->sp.nchecks)
		return false;
	for (size_t i = 0; i < a->sp.nchecks; i++)
		if (a->checks[i].metric != b->checks[i].metric ||
		    a->checks[i].action != b->checks[i].action || a->checks[i].limit != b->checks[i].limit)
			return false;
	return true;
}

static void value_of(struct rollout_value *v, const struct ro_route *x)
{
	*v = (struct rollout_value){.state = (uint8_t)x->r.state,
	                            .step = (uint32_t)x->r.step,
	                            .pool = x->c->pool,
	                            .percent = x->steps[x->r.step].percent};
	snprintf(v->reason, sizeof(v->reason), "%s", x->r.reason);
}

/* x goes on as the rollout src of pool src_pool was (ox: its controller,
 * NULL at start), in values nv. */
static void go_on(struct rollouts *ro, struct ro_route *x, const struct ro_route *ox,
                  const struct config *ocfg, const struct rollout_value *src,
                  const char *src_pool, struct runtime_values *nv, uint64_t now, const char *why)
{
	const struct config *next = ro->cfg;
	if (ox) {
		x->r = ox->r;
		x->last = ox->last;
	}
	x->r.state = (enum rollout_state)src->state;
	snprintf(x->r.reason, sizeof(x->r.reason), "%s", src->reason);
	size_t st = same_step(x, src->step, src->percent);
	x->r.step = st;
	rings_alloc(x);
	if (ox && ox->wpool &&
	    strcmp(ocfg->pools[ox->cfg->pools[0]].name, next->pools[x->cfg->pools[0]].name) == 0) {
		*x->wpool = *ox->wpool;
		*x->wbase = *ox->wbase;
	} else {
		x->r.started_ms = now; /* a new baseline: its window from now */
	}
	bool was_active = src->state == RS_RUNNING || src->state == RS_PAUSED;
	if (was_active) {
		/* The same step (or the nearest below), its hold starting
		 * again; the failing counts and the next analysis stay, so
		 * that no reload delays a rollback, unless the checks they
		 * count changed. */
		x->r.step_started_ms = now;
		if (!ox || !same_checks(x, ox))
			memset(x->r.fails, 0, sizeof(x->r.fails));
		if (!ox || st != src->step) {
			x->r.analysed = false;
			x->r.held = false;
			x->r.last_fail_ms = 0;
			x->r.inconclusive_since_ms = 0;
		}
		if (!ox || x->r.next_analysis_ms > now + x->sp.interval_ms)
			x->r.next_analysis_ms = now + x->sp.interval_ms;
		/* Running, the rollout drives the split; paused, the split
		 * stays as it is (a manual value, until resume). */
		if (x->r.state == RS_RUNNING)
			runtime_share(nv->split + x->cfg->first, x->cfg->nsplit, x->c->member,
			              x->steps[st].percent);
		char pct[16];
		struct ro_pending *p = add_pending(ro);
		snprintf(p->text, sizeof(p->text),
		         "rollout: route '%s' (pool '%s'): %s at step %zu of %zu (%s%%) after the %s, "
		         "its hold starting again",
		         x->cfg->name, src_pool, rollout_state_names[x->r.state], st + 1, x->sp.nsteps,
		         json_percent_text(pct, sizeof(pct), x->steps[st].percent), why);
	}
	value_of(&nv->ro[x->route], x);
}

struct rollouts *rollouts_build(const struct runtime *rt, const struct config *next,
                                struct runtime_values *nv)
{
	const struct rollouts *old = rt->ro;
	const struct config *ocfg = old ? old->cfg : NULL;
	const char *why = old ? "reload" : "restart";
	struct rollouts *ro = xcalloc(1, sizeof(*ro));
	uint64_t now = mono_ms();

	ro->cfg = next;
	ro->n = next->nroutes;
	ro->routes = xcalloc(ro->n ? ro->n : 1, sizeof(*ro->routes));
	for (size_t r = 0; r < ro->n; r++) {
		struct ro_route *x = &ro->routes[r];
		x->route = (int)r;
		x->cfg = &next->routes[r];
		x->c = x->cfg->rollout;
		if (x->c)
			spec_init(x);

		/* What ran before: the controller of that name, or at start
		 * what the state file says. */
		const struct ro_route *ox = old ? find_route(old, x->cfg->name) : NULL;
		struct rollout_value src = {.state = RS_IDLE, .pool = -1};
		const char *src_pool = NULL;
		if (ox && ox->c) {
			value_of(&src, ox);
			src_pool = pool_name(ocfg, ox);
			memcpy(x->analyses, ox->analyses, sizeof(x->analyses));
			memcpy(x->events, ox->events, sizeof(x->events));
		} else if (!old) {
			src = nv->ro[r];
			src_pool = src.pool >= 0 ? next->pools[src.pool].name : NULL;
		}
		nv->ro[r] = (struct rollout_value){.state = RS_IDLE, .pool = x->c ? x->c->pool : -1};
		if (src.state == RS_IDLE)
			continue;
		if (x->c && src_pool && strcmp(pool_name(next, x), src_pool) == 0) {
			go_on(ro, x, ox, ocfg, &src, src_pool, nv, now, why);
			continue;
		}
		if (src.state != RS_RUNNING && src.state != RS_PAUSED)
			continue; /* a finished rollout of another pool: forgotten */
		if (!src_pool) {
			log_warn("state: the rollout of route '%s' names a pool the configuration does "
			         "not have: left out",
			         x->cfg->name);
			continue;
		}
		/* The pool it was moving traffic to is no longer judged: its
		 * share goes back to the baseline. The route's section, if it
		 * has one for another pool, has not started. */
		int pi = config_pool_index(next, src_pool);
		int m = pi >= 0 ? config_route_member(x->cfg, (size_t)pi) : -1;
		if (m > 0 && (size_t)m < x->cfg->nsplit) {
			uint32_t *split = nv->split + x->cfg->first;
			split[0] += split[m];
			split[m] = 0;
		}
		struct ro_pending *p = add_pending(ro);
		p->event = true;
		p->route = xstrdup(x->cfg->name);
		p->pool = xstrdup(src_pool);
		p->webhook = ox && ox->c && ox->c->webhook ? xstrdup(ox->c->webhook)
		             : !ox && x->c && x->c->webhook ? xstrdup(x->c->webhook) : NULL;
		p->step = src.step;
		p->nsteps = ox && ox->c ? ox->sp.nsteps : src.step + 1;
		p->percent = src.percent;
		snprintf(p->text, sizeof(p->text), "the configuration no longer rolls out pool '%s' "
		         "on this route (%s)", src_pool, why);
		x->events[RE_ROLLED_BACK]++;
	}
	/* Routes that are gone with their rollout running. */
	for (size_t i = 0; old && i < old->n; i++) {
		const struct ro_route *ox = &old->routes[i];
		if (!active(ox) || config_route_index(next, ox->cfg->name, strlen(ox->cfg->name)) >= 0)
			continue;
		struct ro_pending *p = add_pending(ro);
		p->event = true;
		p->route = xstrdup(ox->cfg->name);
		p->pool = xstrdup(pool_name(ocfg, ox));
		p->webhook = ox->c->webhook ? xstrdup(ox->c->webhook) : NULL;
		p->step = ox->r.step;
		p->nsteps = ox->sp.nsteps;
		p->percent = ox->steps[ox->r.step].percent;
		snprintf(p->text, sizeof(p->text), "the route is no longer in the configuration "
		         "(reload)");
	}
	return ro;
}

static void route_free(struct ro_route *x)
{
	free(x->steps);
	free(x->wpool);
	free(x->wbase);
}

static void pending_free(struct rollouts *ro)
{
	for (size_t i = 0; i < ro->npending; i++) {
		free(ro->pending[i].route);
		free(ro->pending[i].pool);
		free(ro->pending[i].webhook);
	}
	free(ro->pending);
	ro->pending = NULL;
	ro->npending = 0;
}

void rollouts_free(struct rollouts *ro)
{
	if (!ro)
		return;
	for (size_t i = 0; i < ro->n; i++)
		route_free(&ro->routes[i]);
	free(ro->routes);
	pending_free(ro);
	if (ro->timer)
		event_free(ro->timer);
	webhooks_free(ro->hooks);
	free(ro);
}

/* --- events ---------------------------------------------------------------- */

/* One event: its log line and, with a webhook, its POST. */
static void emit(struct rollouts *ro, const char *route, const char *pool, const char *webhook,
                 enum rollout_event_kind kind, size_t step, size_t nsteps, uint32_t percent,
                 const char *reason)
{
	char pct[16];
	json_percent_text(pct, sizeof(pct), percent);
	enum log_level lv = kind == RE_ROLLED_BACK || kind == RE_ALERT ? LOG_WARN : LOG_INFO;
	log_msg(lv, "rollout: route '%s' (pool '%s'): %s, step %zu of %zu (%s%%)%s%s", route, pool,
	        rollout_event_names[kind], step + 1, nsteps, pct, *reason ? ": " : "", reason);
	if (!webhook || !ro->hooks)
		return;
	struct evbuffer *b = evbuffer_new();
	json_raw(b, "{\"event\":");
	json_str(b, rollout_event_names[kind]);
	json_raw(b, ",\"route\":");
	json_str(b, route);
	json_raw(b, ",\"pool\":");
	json_str(b, pool);
	json_raw(b, ",\"step\":");
	json_u64(b, step + 1);
	json_raw(b, ",\"percent\":");
	json_percent(b, percent);
	json_raw(b, ",\"reason\":");
	if (*reason)
		json_str(b, reason);
	else
		json_raw(b, "null");
	json_raw(b, ",\"at\":");
	json_time(b, wall_ms());
	json_raw(b, ",\"instance\":");
	json_str(b, ro->instance);
	json_raw(b, "}");
	char what[256];
	snprintf(what, sizeof(what), "rollout event %s of route '%s'", rollout_event_names[kind],
	         route);
	uint32_t connect = ro->cfg->timeouts.connect_ms;
	if (connect > RO_WEBHOOK_MS)
		connect = RO_WEBHOOK_MS;
	webhooks_post(ro->hooks, webhook, (const char *)evbuffer_pullup(b, -1),
	              evbuffer_get_length(b), connect, RO_WEBHOOK_MS, what);
	evbuffer_free(b);
}

static void emit_event(struct runtime *rt, struct ro_route *x, const struct rollout_event *ev)
{
	struct rollouts *ro = rt->ro;
	uint32_t pct = ev->kind == RE_PROMOTED ? 10000 : x->steps[x->r.step].percent;
	x->events[ev->kind]++;
	emit(ro, x->cfg->name, pool_name(ro->cfg, x), x->c->webhook, ev->kind, x->r.step,
	     x->sp.nsteps, pct, ev->reason);
}

/* Carries out event ev of x's state machine: persists the rollout's
 * state with the pool's share and publishes them, then says so. -1 (why
 * in err) when it cannot be persisted and is not a rollback or a pause. */
static int apply(struct runtime *rt, struct ro_route *x, const struct rollout_event *ev,
                 char *err, size_t errlen)
{
	if (ev->kind != RE_ALERT) {
		struct rollout_value v;
		value_of(&v, x);
		bool must = ev->kind == RE_ROLLED_BACK || ev->kind == RE_PAUSED;
		int32_t share = ev->kind == RE_ROLLED_BACK ? RUNTIME_TO_BASELINE
		                : ev->set_percent ? (int32_t)ev->percent : -1;
		if (runtime_set_rollout(rt, x->route, &v, (int)x->c->member, share, must, err,
		                        errlen) < 0)
			return -1;
	}
	emit_event(rt, x, ev);
	return 0;
}

/* --- analyses -------------------------------------------------------------- */

static void pool_servers(const struct snapshot *s, int pool, struct analysis_sample *out)
{
	const struct snap_pool *p = &s->pools[pool];
	out->servers = (uint32_t)p->nservers;
	out->available = 0;
	for (size_t j = 0; j < p->nservers; j++)
		if (p->servers[j].available)
			out->available++;
}

static void analyse(struct runtime *rt, struct ro_route *x, const struct stats_shard *sum,
                    uint64_t now)
{
	const struct snapshot *s = rt->snap;
	uint64_t from;

	rings_alloc(x);
	window_take(x->wpool, &sum->pool[snapshot_member(s, x->route, (int)x->c->member)],
	            now / 1000);
	window_take(x->wbase, &sum->pool[snapshot_member(s, x->route, 0)], now / 1000);
	if (!rollout_analysis_due(&x->r, &x->sp, now, &from))
		return;

	struct analysis_sample ps, bs;
	memset(&ps, 0, sizeof(ps));
	memset(&bs, 0, sizeof(bs));
	/* Whole seconds, the start's included: its requests after the
	 * start count at once (those of that second before it, at most a
	 * second's, count too). */
	window_sample(x->wpool, from / 1000, now / 1000, &ps);
	window_sample(x->wbase, from / 1000, now / 1000, &bs);
	pool_servers(s, x->c->pool, &ps);
	pool_servers(s, (int)x->cfg->pools[0], &bs);

	struct ro_analysis *a = &x->last;
	a->verdict = analysis_run(x->checks, x->sp.nchecks, &ps, &bs, x->sp.min_requests, a->out);
	a->done = true;
	a->at_wall_ms = wall_ms();
	analysis_view(&ps, &a->pool);
	analysis_view(&bs, &a->base);
	x->analyses[a->verdict == AR_PASS ? 0 : a->verdict == AR_FAIL ? 1 : 2]++;

	struct rollout saved = x->r;
	struct rollout_event ev[2];
	char err[512];
	int n = rollout_analysed(&x->r, &x->sp, now, a->verdict, a->out, ev);
	for (int i = 0; i < n; i++) {
		if (apply(rt, x, &ev[i], err, sizeof(err)) < 0) {
			log_error("rollout: route '%s': %s not taken: %s; tried again at the next "
			          "analysis",
			          x->cfg->name, rollout_event_names[ev[i].kind], err);
			x->r = saved;
			x->r.next_analysis_ms = now + x->sp.interval_ms;
			return;
		}
	}
}

static void arm(struct runtime *rt)
{
	struct rollouts *ro = rt->ro;
	uint64_t now = mono_ms(), next = 0;
	if (!ro->timer)
		return;
	for (size_t i = 0; i < ro->n; i++) {
		const struct ro_route *x = &ro->routes[i];
		if (!active(x))
			continue;
		uint64_t t = x->r.next_analysis_ms;
		if (t > now + RO_TAKE_MS)
			t = now + RO_TAKE_MS;
		if (!next || t < next)
			next = t;
	}
	if (rt->state_dirty && (!next || next > now + 1000))
		next = now + 1000; /* the state file tried again every second */
	if (!next) {
		evtimer_del(ro->timer);
		return;
	}
	uint64_t d = next > now ? next - now : 0;
	struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};
	evtimer_add(ro->timer, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct runtime *rt = arg;
	(void)fd;
	(void)what;
	runtime_lock(rt);
	struct rollouts *ro = rt->ro;
	uint64_t now = mono_ms();
	struct stats_shard *sum = NULL;
	for (size_t i = 0; i < ro->n; i++) {
		struct ro_route *x = &ro->routes[i];
		if (!active(x))
			continue;
		if (!sum)
			sum = stats_sum(rt->snap->stats);
		analyse(rt, x, sum, now);
	}
	if (sum)
		stats_sum_free(sum);
	runtime_save_again(rt);
	arm(rt);
	runtime_unlock(rt);
}

static void flush_pending(struct rollouts *ro)
{
	for (size_t i = 0; i < ro->npending; i++) {
		const struct ro_pending *p = &ro->pending[i];
		if (p->event)
			emit(ro, p->route, p->pool, p->webhook, RE_ROLLED_BACK, p->step, p->nsteps,
			     p->percent, p->text);
		else
			log_info("%s", p->text);
	}
	pending_free(ro);
}

void rollouts_start(struct runtime *rt)
{
	struct rollouts *ro = rt->ro;
	if (gethostname(ro->instance, sizeof(ro->instance) - 1) < 0)
		snprintf(ro->instance, sizeof(ro->instance), "zdm");
	ro->hooks = webhooks_new(rt->base);
	ro->timer = evtimer_new(rt->base, on_tick, rt);
	flush_pending(ro);
	arm(rt);
}

void rollouts_install(struct runtime *rt, struct rollouts *ro)
{
	struct rollouts *old = rt->ro;
	if (old) {
		ro->timer = old->timer;
		ro->hooks = old->hooks;
		memcpy(ro->instance, old->instance, sizeof(ro->instance));
		old->timer = NULL;
		old->hooks = NULL;
	}
	rt->ro = ro;
	rollouts_free(old);
	if (ro->timer) {
		flush_pending(ro);
		arm(rt);
	}
}

/* --- commands -------------------------------------------------------------- */

int rollouts_has(const struct runtime *rt, int route)
{
	return route >= 0 && (size_t)route < rt->ro->n && rt->ro->routes[route].c != NULL;
}

int rollouts_command(struct runtime *rt, int route, enum rollouts_cmd cmd, char *err,
                     size_t errlen)
{
	struct ro_route *x = &rt->ro->routes[route];
	uint64_t now = mono_ms();
	struct rollout_event ev = {0};
	struct rollout saved = x->r;
	int rc = 0;

	if (!x->c) {
		snprintf(err, errlen, "route '%s' has no rollout section", x->cfg->name);
		return -1;
	}
	switch (cmd) {
	case RC_START: {
		struct analysis_sample ps;
		pool_servers(rt->snap, x->c->pool, &ps);
		if (x->r.state != RS_RUNNING && x->r.state != RS_PAUSED && !ps.available) {
			snprintf(err, errlen, "pool '%s' has no available server: its first step "
			         "would have nowhere to go", pool_name(rt->ro->cfg, x));
			return -1;
		}
		rc = rollout_start(&x->r, &x->sp, now, &ev, err, errlen);
		if (rc == 0) {
			rings_clear(x);
			memset(&x->last, 0, sizeof(x->last));
		}
		break;
	}
	case RC_PAUSE:
		rc = rollout_pause(&x->r, "paused by operator", &ev, err, errlen);
		break;
	case RC_RESUME:
		rc = rollout_resume(&x->r, &x->sp, now, &ev, err, errlen);
		/* The rollout drives the split again: back to its step's share
		 * (a manual change paused it). */
		ev.set_percent = true;
		ev.percent = x->steps[x->r.step].percent;
		break;
	case RC_NEXT:
		rc = rollout_next(&x->r, &x->sp, now, &ev, err, errlen);
		break;
	case RC_ABORT:
		rc = rollout_abort(&x->r, "aborted by operator", &ev, err, errlen);
		break;
	default:
		return 0;
	}
	if (rc < 0)
		return -1;
	if (apply(rt, x, &ev, err, errlen) < 0) {
		x->r = saved;
		return -1;
	}
	arm(rt);
	return 0;
}

void rollouts_manual(struct runtime *rt, int route, const char *what)
{
	struct ro_route *x = &rt->ro->routes[route];
	struct rollout_event ev;
	char err[512];
	if (!active(x))
		return;
	if (x->r.state == RS_PAUSED) {
		/* Already paused: no transition, but it says why it stays so. */
		snprintf(x->r.reason, sizeof(x->r.reason), "%s", what);
		struct rollout_value v;
		value_of(&v, x);
		runtime_set_rollout(rt, x->route, &v, -1, -1, true, err, sizeof(err));
		return;
	}
	if (rollout_pause(&x->r, what, &ev, err, sizeof(err)) == 0)
		apply(rt, x, &ev, err, sizeof(err));
}

void rollouts_rolled_back(struct runtime *rt, int route)
{
	struct rollouts *ro = rt->ro;
	for (size_t i = 0; i < ro->n; i++) {
		struct ro_route *x = &ro->routes[i];
		struct rollout_event ev;
		char err[512];
		if ((route >= 0 && (size_t)route != i) || !active(x))
			continue;
		if (rollout_abort(&x->r, "rollback by operator", &ev, err, sizeof(err)) == 0)
			apply(rt, x, &ev, err, sizeof(err));
	}
	arm(rt);
}

/* --- status and metrics ---------------------------------------------------- */

static void write_view(struct evbuffer *out, const struct analysis_pool_view *v)
{
	json_raw(out, "{\"requests\":");
	json_u64(out, v->requests);
	json_raw(out, ",\"error_rate\":");
	json_num(out, v->error_rate);
	json_raw(out, ",\"p50_ms\":");
	json_num(out, v->p50_ms);
	json_raw(out, ",\"p95_ms\":");
	json_num(out, v->p95_ms);
	json_raw(out, ",\"p99_ms\":");
	json_num(out, v->p99_ms);
	json_raw(out, "}");
}

static void write_analysis(struct evbuffer *out, const struct ro_route *x)
{
	const struct ro_analysis *a = &x->last;
	if (!a->done) {
		json_raw(out, "null");
		return;
	}
	json_raw(out, "{\"at\":");
	json_time(out, a->at_wall_ms);
	json_raw(out, ",\"verdict\":");
	json_str(out, analysis_result_names[a->verdict]);
	json_raw(out, ",\"pool\":");
	write_view(out, &a->pool);
	json_raw(out, ",\"baseline\":");
	write_view(out, &a->base);
	json_raw(out, ",\"checks\":[");
	for (size_t i = 0; i < x->sp.nchecks; i++) {
		const struct analysis_check *c = &x->checks[i];
		const struct analysis_outcome *o = &a->out[i];
		bool judged = o->result == AR_PASS || o->result == AR_FAIL;
		json_raw(out, i ? ",{\"metric\":" : "{\"metric\":");
		json_str(out, analysis_metric_names[c->metric]);
		json_raw(out, ",\"value\":");
		json_num(out, judged ? o->value : NAN);
		json_raw(out, c->metric == AM_AVAILABILITY ? ",\"min\":" : ",\"max\":");
		json_num(out, c->limit);
		if (c->metric == AM_ERROR_RATE_VS_BASELINE || c->metric >= AM_P50_VS_BASELINE) {
			json_raw(out, ",\"p\":");
			json_num(out, judged ? o->p : NAN);
		}
		json_raw(out, ",\"action\":");
		json_str(out, analysis_action_names[c->action]);
		json_raw(out, ",\"result\":");
		json_str(out, analysis_result_names[o->result]);
		json_raw(out, "}");
	}
	json_raw(out, "]}");
}

void rollouts_write_status(struct evbuffer *out, const struct runtime *rt, int route)
{
	const struct ro_route *x = &rt->ro->routes[route];
	if (!x->c) {
		json_raw(out, "null");
		return;
	}
	uint64_t now = mono_ms();
	int64_t wall = wall_ms();
	const struct snap_route *sr = &rt->snap->routes[route];
	bool on = active(x);

	json_raw(out, "{\"state\":");
	json_str(out, rollout_state_names[x->r.state]);
	json_raw(out, ",\"pool\":");
	json_str(out, pool_name(rt->ro->cfg, x));
	json_raw(out, ",\"steps\":[");
	for (size_t i = 0; i < x->sp.nsteps; i++) {
		json_raw(out, i ? "," : "");
		json_percent(out, x->steps[i].percent);
	}
	json_raw(out, "],\"holds_s\":[");
	for (size_t i = 0; i < x->sp.nsteps; i++) {
		json_raw(out, i ? "," : "");
		json_num(out, x->steps[i].hold_ms / 1000.0);
	}
	json_raw(out, "],\"step\":");
	json_u64(out, x->r.state == RS_IDLE ? 0 : x->r.step + 1);
	json_raw(out, ",\"percent\":");
	json_percent(out, sr->split[x->c->member]);
	json_raw(out, ",\"step_started_at\":");
	if (on)
		json_time(out, wall_of(x->r.step_started_ms, now, wall));
	else
		json_raw(out, "null");
	uint64_t at = rollout_next_step_at(&x->r, &x->sp);
	json_raw(out, ",\"next_step_at\":");
	if (at)
		json_time(out, wall_of(at, now, wall));
	else
		json_raw(out, "null");
	json_raw(out, ",\"hold_left_s\":");
	if (at)
		json_num(out, at > now ? (double)(at - now) / 1000.0 : 0.0);
	else
		json_raw(out, "null");
	json_raw(out, ",\"reason\":");
	if (x->r.reason[0])
		json_str(out, x->r.reason);
	else
		json_raw(out, "null");
	char buf[160];
	snprintf(buf, sizeof(buf),
	         ",\"interval_ms\":%" PRIu32 ",\"window_ms\":%" PRIu32 ",\"min_requests\":%" PRIu64
	         ",\"failures\":%" PRIu32 ",\"analysis\":",
	         x->sp.interval_ms, x->sp.window_ms, x->sp.min_requests, x->sp.failures);
	json_raw(out, buf);
	write_analysis(out, x);
	json_raw(out, "}");
}

/* A label value, escaped as the text format wants. */
static void label_value(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(out, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, s, 1);
	}
}

static void series(struct evbuffer *out, const char *name, const char *route, const char *key,
                   const char *value)
{
	evbuffer_add_printf(out, "%s{route=\"", name);
	label_value(out, route);
	if (key)
		evbuffer_add_printf(out, "\",%s=\"%s", key, value);
	evbuffer_add(out, "\"} ", 3);
}

void rollouts_write_metrics(struct evbuffer *out, const struct runtime *rt)
{
	const struct rollouts *ro = rt->ro;
	static const char *const verdicts[3] = {"pass", "fail", "inconclusive"};

	evbuffer_add_printf(out, "# HELP zdm_rollout_state The state of a route's rollout: 1 for "
	                         "the current one.\n# TYPE zdm_rollout_state gauge\n");
	for (size_t i = 0; i < ro->n; i++) {
		const struct ro_route *x = &ro->routes[i];
		for (int st = RS_IDLE; x->c && st <= RS_ROLLED_BACK; st++) {
			series(out, "zdm_rollout_state", x->cfg->name, "state", rollout_state_names[st]);
			evbuffer_add_printf(out, "%d\n", (int)x->r.state == st);
		}
	}
	evbuffer_add_printf(out, "# HELP zdm_rollout_percent The rolled-out pool's percentage of "
	                         "its route.\n# TYPE zdm_rollout_percent gauge\n");
	for (size_t i = 0; i < ro->n; i++) {
		const struct ro_route *x = &ro->routes[i];
		char pct[16];
		if (!x->c)
			continue;
		series(out, "zdm_rollout_percent", x->cfg->name, NULL, NULL);
		evbuffer_add_printf(out, "%s\n",
		                    json_percent_text(pct, sizeof(pct),
		                                      rt->snap->routes[i].split[x->c->member]));
	}
	evbuffer_add_printf(out, "# HELP zdm_rollout_analyses_total A rollout's analyses, by "
	                         "verdict.\n# TYPE zdm_rollout_analyses_total counter\n");
	for (size_t i = 0; i < ro->n; i++) {
		const struct ro_route *x = &ro->routes[i];
		for (int v = 0; x->c && v < 3; v++) {
			series(out, "zdm_rollout_analyses_total", x->cfg->name, "verdict", verdicts[v]);
			evbuffer_add_printf(out, "%" PRIu64 "\n", x->analyses[v]);
		}
	}
	evbuffer_add_printf(out, "# HELP zdm_rollout_events_total A rollout's transitions and "
	                         "alerts, by event.\n# TYPE zdm_rollout_events_total counter\n");
	for (size_t i = 0; i < ro->n; i++) {
		const struct ro_route *x = &ro->routes[i];
		for (int e = RE_STARTED; x->c && e <= RE_ALERT; e++) {
			series(out, "zdm_rollout_events_total", x->cfg->name, "event",
			       rollout_event_names[e]);
			evbuffer_add_printf(out, "%" PRIu64 "\n", x->events[e]);
		}
	}
	evbuffer_add_printf(out, "# HELP zdm_rollout_webhooks_total Rollout events POSTed to a "
	                         "webhook, by result.\n# TYPE zdm_rollout_webhooks_total counter\n");
	evbuffer_add_printf(out, "zdm_rollout_webhooks_total{result=\"delivered\"} %" PRIu64 "\n",
	                    ro->hooks ? webhooks_delivered(ro->hooks) : 0);
	evbuffer_add_printf(out, "zdm_rollout_webhooks_total{result=\"failed\"} %" PRIu64 "\n",
	                    ro->hooks ? webhooks_failed(ro->hooks) : 0);
}
