/*
 * runtime.h — the control plane's view of the running proxy: the loaded
 * config and what operators changed at run time (pool percentages, server
 * weights, admin states).
 *
 * Every change is checked, written to the state file (when one is
 * configured) before it takes effect, then published to the workers as a
 * new snapshot; a change that cannot be persisted is refused and nothing
 * changes. Reads (status) use the last published snapshot.
 */
/*
 * The control wing (src/control/): what changes while zdmd runs — the
 * runtime (changes, reloads, publication of snapshots), the control socket
 * and its commands, the state file, health checks, circuit breakers and the
 * status JSON. It drives the proxy wing from above.
 */
#ifndef ZDM_RUNTIME_H
#define ZDM_RUNTIME_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control/breaker.h"

struct config;
struct config_errors;
struct snapshot;
struct workers;
struct event_base;
struct health;
struct tls_set;
struct event;
struct rollouts;

enum admin_state {
	ADMIN_ENABLED,   /* in rotation */
	ADMIN_DRAINING,  /* no new requests; in-flight ones finish */
	ADMIN_DISABLED,  /* out of rotation */
};

extern const char *const admin_state_names[];

/* What the state file keeps of a route's rollout (rollouts.h): its state,
 * its step and the reason of its last transition. */
struct rollout_value {
	uint8_t state;          /* enum rollout_state */
	uint32_t step;          /* index into its steps */
	int32_t pool;           /* the pool rolled out: index into the config's pools */
	uint32_t percent;       /* its step's percentage (hundredths), 0: not known */
	char reason[192];
};

/* The runtime values, indexed like a snapshot: split per route member
 * (cfg_route.first + member), weight and admin per server id, rollout per
 * route. */
struct runtime_values {
	uint32_t *split;
	uint32_t *weight;
	uint8_t *admin;
	struct rollout_value *ro;
};

/* The volatile state of a server: health and circuit, with their last
 * transitions (not persisted: a restart checks again). */
struct srv_state {
	bool up;                        /* health */
	struct breaker brk;
	int64_t health_at, circuit_at;  /* wall-clock ms of the last transition, 0: none */
	char health_reason[160];
	char circuit_reason[160];
};

struct runtime {
	char *config_path;
	struct config *cfg;             /* held */
	struct runtime_values v;
	struct snapshot *snap;          /* last published, held */
	uint64_t gen;
	size_t nshards;                 /* workers: one stats shard each */
	struct workers *ws;             /* where snapshots go */
	struct event_base *base;        /* the control plane's loop */
	pthread_mutex_t lock;           /* runtime_lock() */
	uint64_t started_ms;
	struct srv_state *srv;          /* per server id of cfg */
	struct tls_set *tls;            /* cfg's TLS contexts (held), NULL without TLS */
	struct health *health;          /* active checks of cfg */
	struct event *breaker_timer;    /* turns open circuits half-open */
	uint64_t reloads_ok, reloads_error;
	struct rollouts *ro;            /* the routes' rollouts (rollouts.h) */
	bool state_dirty;               /* a change applied that the state file lacks */
	/* Called after a reload was applied (the daemon reopens its logs and
	 * admin listener as the new config says). */
	void (*on_reload)(void *arg);
	void *on_reload_arg;
};

/* Runtime state for cfg (held) and its TLS contexts tls (the caller's
 * reference is taken over; NULL without TLS), with the config's values, and
 * the state file's when it has valid ones (a bad file is reported and
 * ignored). */
struct runtime *runtime_new(struct config *cfg, struct tls_set *tls, const char *config_path,
                            size_t nshards);
void runtime_free(struct runtime *rt);

/* Starts nshards workers (see workers.h) routing with the current
 * snapshot, and the health checks and breaker timers on base, the control
 * plane's loop; the workers' reports feed runtime_outcome and
 * runtime_admitted there. -1 (logged) when a listener cannot be opened. */
int runtime_start(struct runtime *rt, struct event_base *base);

/* The outcome of a request to server id of snap (from the hot path):
 * feeds the server's circuit breaker. result: 1 success, 0 failure of
 * kind (enum cfg_fail_kind; what says it for the log), -1 none (the
 * request was abandoned by its client). A failure of a kind the pool's
 * circuit_breaker.count leaves out only frees a probe's slot. */
void runtime_outcome(struct runtime *rt, const struct snapshot *snap, uint32_t id, int result,
                     int kind, const char *what);

/* A request took one of the probe slots of server id, whose circuit is
 * half-open (see stats_take_probe): the breaker counts it, and the server
 * is shown unavailable once the slots are all taken. */
void runtime_admitted(struct runtime *rt, const struct snapshot *snap, uint32_t id);

/* The control plane's state is used under this lock: every control-plane
 * callback (control socket, admin listener, health checks, timers,
 * reloads) holds it; a worker only tries it (see workers.h). */
void runtime_lock(struct runtime *rt);
void runtime_unlock(struct runtime *rt);

/* The changes. Each returns 0, or -1 with a message for the operator in
 * err (nothing changed). route, member (of the route's split), pool and
 * server are indexes in rt->snap. */
int runtime_set_split(struct runtime *rt, int route, int member, uint32_t hundredths, char *err,
                      size_t errlen);
int runtime_promote(struct runtime *rt, int route, int member, char *err, size_t errlen);
/* Every route (route -1), or one, to 100% on its baseline. The emergency
 * button: applied even when the state file cannot be written (then 1,
 * with why in err, and the file is written again later). */
int runtime_rollback(struct runtime *rt, int route, char *err, size_t errlen);
int runtime_set_weight(struct runtime *rt, int pool, int server, uint32_t weight, char *err,
                       size_t errlen);
int runtime_set_admin(struct runtime *rt, int pool, int server, enum admin_state st, char *err,
                      size_t errlen);

/* Sets route's rollout value and, when hundredths >= 0, the share of its
 * split member (the others share the rest as set-weight does), or with
 * RUNTIME_TO_BASELINE gives the member's whole share to the baseline (a
 * rollback). A change of the rollout controller: with must, a state file
 * that cannot be written is logged and the change applied all the same (a
 * rollback is never refused; the file is written again at the next
 * runtime_save_again); else it is refused (-1, err). */
#define RUNTIME_TO_BASELINE (-2)
int runtime_set_rollout(struct runtime *rt, int route, const struct rollout_value *val, int member,
                        int32_t hundredths, bool must, char *err, size_t errlen);
/* Writes the state file again when a change was applied without it
 * (state_dirty). */
void runtime_save_again(struct runtime *rt);

/* Reads the config file again and applies it (see the merge rule in
 * runtime.c). Returns 0, or -1 with the reasons in errs (each an operator
 * message, config errors as FILE:LINE:COL) and the running config kept. */
int runtime_reload(struct runtime *rt, struct config_errors *errs);

/* The split after POOL is set to VALUE (hundredths): the rest is shared by
 * the other pools in proportion to their current shares (equally when they
 * are all 0), rounded so that the sum stays exactly 10000. */
void runtime_share(uint32_t *split, size_t n, size_t pool, uint32_t value);

#endif
