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
#ifndef ZDM_RUNTIME_H
#define ZDM_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct config_errors;
struct snapshot;
struct worker;

enum admin_state {
	ADMIN_ENABLED,   /* in rotation */
	ADMIN_DRAINING,  /* no new requests; in-flight ones finish */
	ADMIN_DISABLED,  /* out of rotation */
};

extern const char *const admin_state_names[];

/* The runtime values, indexed like a snapshot: split per pool, weight and
 * admin per server id. */
struct runtime_values {
	uint32_t *split;
	uint32_t *weight;
	uint8_t *admin;
};

struct runtime {
	char *config_path;
	struct config *cfg;             /* held */
	struct runtime_values v;
	struct snapshot *snap;          /* last published, held */
	uint64_t gen;
	struct worker *w;               /* where snapshots go */
	uint64_t started_ms;
};

/* Runtime state for cfg (held), with the config's values, and the state
 * file's when it has valid ones (a bad file is reported and ignored). */
struct runtime *runtime_new(struct config *cfg, const char *config_path);
void runtime_free(struct runtime *rt);

/* Publishes the current snapshot to w from now on (the worker takes its
 * own reference). */
void runtime_attach(struct runtime *rt, struct worker *w);

/* The changes. Each returns 0, or -1 with a message for the operator in
 * err (nothing changed). pool and server are indexes in rt->snap. */
int runtime_set_split(struct runtime *rt, int pool, uint32_t hundredths, char *err, size_t errlen);
int runtime_promote(struct runtime *rt, int pool, char *err, size_t errlen);
int runtime_set_weight(struct runtime *rt, int pool, int server, uint32_t weight, char *err,
                       size_t errlen);
int runtime_set_admin(struct runtime *rt, int pool, int server, enum admin_state st, char *err,
                      size_t errlen);

/* Reads the config file again and applies it (see the merge rule in
 * runtime.c). Returns 0, or -1 with the reasons in errs (each an operator
 * message, config errors as FILE:LINE:COL) and the running config kept. */
int runtime_reload(struct runtime *rt, struct config_errors *errs);

/* The split after POOL is set to VALUE (hundredths): the rest is shared by
 * the other pools in proportion to their current shares (equally when they
 * are all 0), rounded so that the sum stays exactly 10000. */
void runtime_share(uint32_t *split, size_t n, size_t pool, uint32_t value);

#endif
