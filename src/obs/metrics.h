/*
 * metrics.h — the Prometheus text exposition (SPEC §7).
 */
/*
 * The obs wing (src/obs/): what operators watch — the admin HTTP listener
 * and the Prometheus metrics, read from the runtime and the workers'
 * counters. Nothing below includes it.
 */
#ifndef ZDM_METRICS_H
#define ZDM_METRICS_H

struct evbuffer;
struct runtime;
struct workers;
struct accesslog;

/* Appends every metric, with HELP and TYPE lines, to out. */
void metrics_write(struct evbuffer *out, const struct runtime *rt, const struct workers *ws,
                   const struct accesslog *al);

#endif
