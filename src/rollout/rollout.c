/*
 * rollout.c — the rollout state machine: see rollout.h.
 */
#include <stdio.h>
#include <string.h>

#include "rollout/rollout.h"

const char *const rollout_state_names[5] = {"idle", "running", "paused", "promoted",
                                            "rolled_back"};
const char *const rollout_event_names[8] = {"none",     "started",     "step",  "paused",
                                            "resumed",  "promoted",    "rolled_back", "alert"};

static void refuse(char *err, size_t len, const char *why)
{
	snprintf(err, len, "%s", why);
}

static void event(struct rollout_event *ev, enum rollout_event_kind kind, bool set,
                  uint32_t percent, const struct rollout *r)
{
	ev->kind = kind;
	ev->set_percent = set;
	ev->percent = percent;
	snprintf(ev->reason, sizeof(ev->reason), "%s", r->reason);
}

/* Enters step i at now. */
static void enter_step(struct rollout *r, size_t i, uint64_t now_ms)
{
	r->step = i;
	r->step_started_ms = now_ms;
	r->last_fail_ms = 0;
	r->analysed = false;
	r->inconclusive_since_ms = 0;
}

int rollout_start(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                  struct rollout_event *ev, char *err, size_t errlen)
{
	if (r->state == RS_RUNNING || r->state == RS_PAUSED) {
		refuse(err, errlen, r->state == RS_RUNNING ? "a rollout is running on this route"
		                                           : "a rollout is paused on this route: resume "
		                                             "or abort it");
		return -1;
	}
	memset(r, 0, sizeof(*r));
	r->state = RS_RUNNING;
	r->started_ms = now_ms;
	r->next_analysis_ms = now_ms + sp->interval_ms;
	enter_step(r, 0, now_ms);
	event(ev, RE_STARTED, true, sp->steps[0].percent, r);
	return 0;
}

int rollout_pause(struct rollout *r, const char *reason, struct rollout_event *ev, char *err,
                  size_t errlen)
{
	if (r->state != RS_RUNNING) {
		refuse(err, errlen, r->state == RS_PAUSED ? "the rollout is already paused"
		                                          : "no rollout is running on this route");
		return -1;
	}
	r->state = RS_PAUSED;
	snprintf(r->reason, sizeof(r->reason), "%s", reason);
	event(ev, RE_PAUSED, false, 0, r);
	return 0;
}

int rollout_resume(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                   struct rollout_event *ev, char *err, size_t errlen)
{
	if (r->state != RS_PAUSED) {
		refuse(err, errlen, "no rollout is paused on this route");
		return -1;
	}
	/* The step's hold starts again: the time paused proved nothing. */
	r->state = RS_RUNNING;
	r->reason[0] = '\0';
	r->step_started_ms = now_ms;
	r->last_fail_ms = 0;
	r->inconclusive_since_ms = 0;
	/* A check that pauses counts again from 0 (the operator has seen
	 * it); one that rolls back keeps its count: a pause and a resume
	 * never delay a rollback. */
	for (size_t i = 0; i < sp->nchecks && i < ROLLOUT_MAX_CHECKS; i++)
		if (sp->checks[i].action != AA_ROLLBACK)
			r->fails[i] = 0;
	event(ev, RE_RESUMED, false, 0, r);
	return 0;
}

/* To step i, or promoted past the last. */
static void advance(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                    struct rollout_event *ev)
{
	if (r->step + 1 >= sp->nsteps) {
		r->state = RS_PROMOTED;
		snprintf(r->reason, sizeof(r->reason), "every step held");
		event(ev, RE_PROMOTED, true, 10000, r);
		return;
	}
	enter_step(r, r->step + 1, now_ms);
	r->reason[0] = '\0';
	event(ev, RE_STEP, true, sp->steps[r->step].percent, r);
}

int rollout_next(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                 struct rollout_event *ev, char *err, size_t errlen)
{
	if (r->state != RS_RUNNING && r->state != RS_PAUSED) {
		refuse(err, errlen, "no rollout is running on this route");
		return -1;
	}
	if (r->analysed && r->held) {
		refuse(err, errlen, "the last analysis failed: the step cannot be skipped");
		return -1;
	}
	r->state = RS_RUNNING;
	advance(r, sp, now_ms, ev);
	return 0;
}

static void roll_back(struct rollout *r, struct rollout_event *ev)
{
	r->state = RS_ROLLED_BACK;
	event(ev, RE_ROLLED_BACK, true, 0, r);
}

int rollout_abort(struct rollout *r, const char *reason, struct rollout_event *ev, char *err,
                  size_t errlen)
{
	if (r->state != RS_RUNNING && r->state != RS_PAUSED) {
		refuse(err, errlen, "no rollout is running on this route");
		return -1;
	}
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "aborted by operator");
	roll_back(r, ev);
	return 0;
}

bool rollout_analysis_due(const struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                          uint64_t *from_ms)
{
	if ((r->state != RS_RUNNING && r->state != RS_PAUSED) || now_ms < r->next_analysis_ms)
		return false;
	uint64_t from = now_ms > sp->window_ms ? now_ms - sp->window_ms : 0;
	*from_ms = from < r->started_ms ? r->started_ms : from;
	return true;
}

/* "error_rate 20.00% over max 5.00%" and the like. */
static void describe(char *buf, size_t len, const struct analysis_check *c,
                     const struct analysis_outcome *o, uint32_t times)
{
	const char *name = analysis_metric_names[c->metric];
	const char *rel = c->metric == AM_AVAILABILITY ? "under min" : "over max";
	switch (c->metric) {
	case AM_ERROR_RATE:
	case AM_AVAILABILITY:
		snprintf(buf, len, "%s %.2f%% %s %.2f%%", name, o->value * 100, rel, c->limit * 100);
		break;
	case AM_P50:
	case AM_P95:
	case AM_P99:
		snprintf(buf, len, "%s %.1f ms %s %.1f ms", name, o->value, rel, c->limit);
		break;
	default:
		snprintf(buf, len, "%s %.2f %s %.2f (p = %.3g)", name, o->value, rel, c->limit, o->p);
		break;
	}
	size_t n = strlen(buf);
	if (times > 1 && n < len)
		snprintf(buf + n, len - n, " in %u analyses in a row", times);
}

int rollout_analysed(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                     enum analysis_result verdict, const struct analysis_outcome *out,
                     struct rollout_event ev[2])
{
	int nev = 0;
	if (r->state != RS_RUNNING && r->state != RS_PAUSED)
		return 0;
	r->next_analysis_ms = now_ms + sp->interval_ms;
	r->analysed = true;
	r->verdict = verdict;
	r->held = false;
	for (size_t i = 0; i < sp->nchecks && i < ROLLOUT_MAX_CHECKS; i++)
		if (out[i].result == AR_FAIL && sp->checks[i].action != AA_ALERT)
			r->held = true;
	if (r->held)
		r->last_fail_ms = now_ms;

	/* The checks that act now, rollback first. */
	int act[3] = {-1, -1, -1};
	for (size_t i = 0; i < sp->nchecks && i < ROLLOUT_MAX_CHECKS; i++) {
		if (out[i].result != AR_FAIL) {
			r->fails[i] = 0;
			continue;
		}
		uint32_t need = sp->failures ? sp->failures : 1;
		if (++r->fails[i] >= need && act[sp->checks[i].action] < 0)
			act[sp->checks[i].action] = (int)i;
	}
	uint32_t need = sp->failures ? sp->failures : 1;
	if (act[AA_ROLLBACK] >= 0) {
		int i = act[AA_ROLLBACK];
		describe(r->reason, sizeof(r->reason), &sp->checks[i], &out[i], need);
		roll_back(r, &ev[nev++]);
		return nev;
	}
	if (act[AA_ALERT] >= 0) {
		/* Said, not a transition: the rollout's reason stays. */
		int i = act[AA_ALERT];
		struct rollout_event *e = &ev[nev++];
		event(e, RE_ALERT, false, 0, r);
		describe(e->reason, sizeof(e->reason), &sp->checks[i], &out[i], need);
		r->last_alert_ms = now_ms;
		r->fails[i] = 0; /* again after as many more */
	}
	if (act[AA_PAUSE] >= 0 && r->state == RS_RUNNING) {
		int i = act[AA_PAUSE];
		describe(r->reason, sizeof(r->reason), &sp->checks[i], &out[i], need);
		r->state = RS_PAUSED;
		event(&ev[nev++], RE_PAUSED, false, 0, r);
		return nev;
	}

	if (verdict == AR_INCONCLUSIVE) {
		if (!r->inconclusive_since_ms)
			r->inconclusive_since_ms = now_ms;
		if (r->state == RS_RUNNING &&
		    now_ms - r->inconclusive_since_ms >= sp->max_inconclusive_ms) {
			snprintf(r->reason, sizeof(r->reason),
			         "inconclusive for %u s: fewer than %llu requests to the pool in the "
			         "window, or a check could not judge",
			         (unsigned)((now_ms - r->inconclusive_since_ms) / 1000),
			         (unsigned long long)sp->min_requests);
			r->state = RS_PAUSED;
			event(&ev[nev++], RE_PAUSED, false, 0, r);
		}
		return nev;
	}
	r->inconclusive_since_ms = 0;

	uint64_t at = rollout_next_step_at(r, sp);
	if (r->state == RS_RUNNING && !r->held && at && now_ms >= at)
		advance(r, sp, now_ms, &ev[nev++]);
	return nev;
}

int32_t rollout_percent(const struct rollout *r, const struct rollout_spec *sp)
{
	switch (r->state) {
	case RS_RUNNING:
	case RS_PAUSED:
		return (int32_t)sp->steps[r->step].percent;
	case RS_PROMOTED:
		return 10000;
	case RS_ROLLED_BACK:
		return 0;
	default:
		return -1;
	}
}

uint64_t rollout_next_step_at(const struct rollout *r, const struct rollout_spec *sp)
{
	if (r->state != RS_RUNNING)
		return 0;
	uint64_t from = r->last_fail_ms > r->step_started_ms ? r->last_fail_ms : r->step_started_ms;
	return from + sp->steps[r->step].hold_ms;
}
