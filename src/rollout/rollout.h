/*
 * rollout.h — the state machine of a progressive rollout (SPEC §8): one
 * route's pool moved to 100% step by step, judged by analysis.c at every
 * interval, rolled back, paused or promoted.
 *
 * Pure code over plain structs: the control plane calls it with the
 * time and each analysis' outcome, and carries out what it returns (the
 * pool's percentage, a log line, a webhook). A rollback is decided in the
 * same call as the analysis that asks for it, whatever the state: never
 * delayed by a pause, a pending step or anything the caller still has to
 * do for an earlier event.
 */
#ifndef ZDM_ROLLOUT_H
#define ZDM_ROLLOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollout/analysis.h"

#define ROLLOUT_MAX_CHECKS 16

enum rollout_state {
	RS_IDLE,        /* never started (or a new config without one) */
	RS_RUNNING,     /* at a step, analyses running, steps advancing */
	RS_PAUSED,      /* at a step, analyses running (a rollback still acts), no step */
	RS_PROMOTED,    /* the last step's hold passed: the pool stays at 100% */
	RS_ROLLED_BACK, /* the pool went to 0% (a check, the operator) */
};

struct rollout_step {
	uint32_t percent;       /* hundredths: 500 is 5% */
	uint32_t hold_ms;       /* time at the step with no failing analysis */
};

/* The rollout section of a route, as the config gives it. */
struct rollout_spec {
	const struct rollout_step *steps;
	size_t nsteps;          /* at least 1; increasing, the last 10000 */
	uint32_t interval_ms;   /* one analysis every interval */
	uint32_t window_ms;     /* each reads the last window (10 s .. 10 min) */
	uint64_t min_requests;
	uint32_t failures;      /* consecutive failing analyses of a check before its action */
	uint32_t max_inconclusive_ms;
	const struct analysis_check *checks;
	size_t nchecks;         /* at most ROLLOUT_MAX_CHECKS */
};

enum rollout_event_kind {
	RE_NONE,
	RE_STARTED,
	RE_STEP,
	RE_PAUSED,
	RE_RESUMED,
	RE_PROMOTED,
	RE_ROLLED_BACK,
	RE_ALERT,
};

/* What a call changed: the caller logs it, posts it, and sets the pool's
 * percentage to percent when set_percent. */
struct rollout_event {
	enum rollout_event_kind kind;
	bool set_percent;
	uint32_t percent;       /* hundredths */
	char reason[192];       /* why, "" for no reason */
};

struct rollout {
	enum rollout_state state;
	size_t step;                    /* index into steps */
	uint64_t started_ms;            /* nothing before it counts */
	uint64_t step_started_ms;       /* the hold counts from here ... */
	uint64_t last_fail_ms;          /* ... or from the last failing analysis */
	uint64_t next_analysis_ms;
	uint64_t inconclusive_since_ms; /* 0: the last analysis was not inconclusive */
	bool analysed;                  /* an analysis has run at this step */
	enum analysis_result verdict;   /* the last one's */
	bool held;                      /* it failed a check whose action is not alert */
	uint32_t fails[ROLLOUT_MAX_CHECKS]; /* consecutive failing analyses, per check */
	char reason[192];               /* of the last transition, "" for none */
	uint64_t last_alert_ms;         /* the last alert (0: none) */
};

/* start: the pool to its first step. Refused (-1, why in err) when one
 * is running or paused. */
int rollout_start(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                  struct rollout_event *ev, char *err, size_t errlen);
/* The operator's commands; each refused (-1, why in err) when the state
 * does not allow it. abort is a rollback "aborted by operator". next is
 * refused while the last analysis failed. */
int rollout_pause(struct rollout *r, const char *reason, struct rollout_event *ev, char *err,
                  size_t errlen);
int rollout_resume(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                   struct rollout_event *ev, char *err, size_t errlen);
int rollout_next(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                 struct rollout_event *ev, char *err, size_t errlen);
int rollout_abort(struct rollout *r, const char *reason, struct rollout_event *ev, char *err,
                  size_t errlen);

/* Whether an analysis is due at now_ms, and the window it reads: from
 * *from_ms (never before the start) to now_ms. */
bool rollout_analysis_due(const struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                          uint64_t *from_ms);
/* Applies an analysis (verdict and each check's outcome, in the spec's
 * order) at now_ms: a check failing `failures` times in a row acts
 * (rollback first, then pause, then alert); a step inconclusive for
 * max_inconclusive pauses. Then, running, a step whose hold has passed
 * since it began or last failed, with this analysis passing, advances
 * (the last one promotes). A check whose action is alert only alerts: its
 * failures neither hold the step nor refuse `next` ("the rollout goes
 * on"). Up to two events (an alert, then a pause or a step); returns how
 * many. */
int rollout_analysed(struct rollout *r, const struct rollout_spec *sp, uint64_t now_ms,
                     enum analysis_result verdict, const struct analysis_outcome *out,
                     struct rollout_event ev[2]);

/* The pool's percentage (hundredths) the state asks for: the step's while
 * running or paused, 10000 promoted, 0 rolled back; -1 idle. */
int32_t rollout_percent(const struct rollout *r, const struct rollout_spec *sp);
/* When the current step may advance at the earliest (0 if it cannot). */
uint64_t rollout_next_step_at(const struct rollout *r, const struct rollout_spec *sp);

extern const char *const rollout_state_names[5];
extern const char *const rollout_event_names[8];

#endif
