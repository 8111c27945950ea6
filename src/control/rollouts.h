/*
 * rollouts.h — the rollout controller (SPEC §8): the routes' progressive
 * rollouts run on the control plane's loop.
 *
 * Every interval, a rollout's analysis reads the route's counters (the
 * workers' 1-second slots, copied into a 10-minute window per member),
 * judges the pool against the baseline (analysis.h), feeds the state
 * machine (rollout.h) and carries out what it decides: the pool's share of
 * the split (persisted and published as any runtime change), a log line,
 * a webhook POST, the metrics. A rollback is applied in the same turn of
 * the loop as the analysis that asks for it; nothing waits for a webhook.
 *
 * Everything here runs under runtime_lock().
 */
#ifndef ZDM_ROLLOUTS_H
#define ZDM_ROLLOUTS_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct evbuffer;
struct runtime;
struct runtime_values;
struct rollouts;

/* The controllers for config next, whose values are nv: for a route whose
 * rollout runs (in rt's current controllers, or in nv as the state file
 * gave them at start) and whose section still names the same pool, it goes
 * on at the same step (the step of the same percentage, else the highest
 * below it), its hold starting again, and running the pool at that step's
 * share in nv (paused, the split stays); when the section is gone or
 * names another pool, it is rolled back (the pool's share to the baseline
 * in nv) and the section, if any, stays idle.
 * Nothing is published: rollouts_install does the rest. */
struct rollouts *rollouts_build(const struct runtime *rt, const struct config *next,
                                struct runtime_values *nv);
/* Whether the build rolled back a rollout (the state file then needs
 * writing). */
bool rollouts_changed(const struct rollouts *ro);
/* Makes ro (from rollouts_build for rt's config, now applied) rt's
 * controllers: the events of the build are logged and posted. */
void rollouts_install(struct runtime *rt, struct rollouts *ro);
/* Starts the analyses' timer and the webhook client on rt's loop. */
void rollouts_start(struct runtime *rt);
void rollouts_free(struct rollouts *ro);

enum rollouts_cmd {
	RC_START,
	RC_PAUSE,
	RC_RESUME,
	RC_NEXT,
	RC_ABORT,
	RC_STATUS,
	RC_COMMANDS
};
extern const char *const rollouts_cmd_names[RC_COMMANDS];

/* Whether route has a rollout section. */
int rollouts_has(const struct runtime *rt, int route);
/* Runs an operator's command on route's rollout. 0, or -1 with why in
 * err (nothing changed). */
int rollouts_command(struct runtime *rt, int route, enum rollouts_cmd cmd, char *err,
                     size_t errlen);
/* The operator changed route's split by hand (set-weight, promote: what
 * says which): a running rollout there pauses, the manual value stays. */
void rollouts_manual(struct runtime *rt, int route, const char *what);
/* The operator rolled back route (-1: every route): a rollout there ends
 * rolled_back. */
void rollouts_rolled_back(struct runtime *rt, int route);

/* route's rollout as the status JSON has it, or null without a section. */
void rollouts_write_status(struct evbuffer *out, const struct runtime *rt, int route);
/* The zdm_rollout_* families. */
void rollouts_write_metrics(struct evbuffer *out, const struct runtime *rt);

#endif
