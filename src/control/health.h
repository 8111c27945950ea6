/*
 * health.h — active health checks: for every server of a pool with checks
 * enabled, GET health_check.path on a connection of its own every
 * interval (with jitter), and mark the server down after `fall`
 * consecutive failures, up after `rise` consecutive passes.
 *
 * A pool with TLS to its servers is checked over TLS, with the same
 * verification. Checks run on the control plane's loop and never touch the hot path: a
 * transition is reported through the callback, and the runtime publishes
 * a snapshot without (or with) the server.
 */
#ifndef ZDM_HEALTH_H
#define ZDM_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

struct config;
struct event_base;
struct health;

/* A transition of server id (numbered as in a snapshot of the config):
 * up or down, with the reason ("3 checks failed, last: timeout after 1s"). */
typedef void health_fn(void *arg, uint32_t id, bool up, const char *reason);

/* Starts the checks of cfg; up[id] is each server's state to start from.
 * Returns NULL when no pool has checks. */
struct tls_set;
struct health *health_start(struct event_base *base, const struct config *cfg,
                            const struct tls_set *tls, const bool *up, health_fn *cb, void *arg);
void health_stop(struct health *h);

#endif
