/*
 * routetab.h — the routes' matches compiled for the hot path (SPEC §4.0).
 *
 * Built once per config: every host a route names, exact or wildcard,
 * is a key of an open-addressing hash table whose entry lists, in config
 * order, the routes a request for that host may take (the routes of the
 * host itself, of every wildcard covering it, and those without a host
 * condition). A request then costs one normalisation of its Host into a
 * stack buffer, one lookup per label at most, one lookup of the path's
 * first segment, and a path and method check of the few routes listed for
 * both until the first that holds. No allocation.
 */
#ifndef ZDM_ROUTETAB_H
#define ZDM_ROUTETAB_H

#include <stdbool.h>
#include <stddef.h>

struct cfg_route;
struct routetab;

/* The longest host name a route can match (RFC 1035: 253, and a dot). */
#define ROUTE_HOST_MAX 255

struct routetab *routetab_build(const struct cfg_route *routes, size_t n);
void routetab_free(struct routetab *t);

/* The first route whose match holds for a request with that Host value
 * (as received, port and all; NULL if none), target path (origin-form,
 * query included) and method name; -1 when none does. */
int routetab_match(const struct routetab *t, const char *host, size_t hostlen, const char *path,
                   size_t pathlen, const char *method, size_t methodlen);

/* The same in two halves, so that a connection may keep the first for
 * the requests that follow with the same Host: the candidate routes of a
 * Host value (never NULL; valid as long as t), then the first of them
 * whose path and method hold. */
struct rt_cands;
const struct rt_cands *routetab_host(const struct routetab *t, const char *host, size_t hostlen);
int routetab_match_in(const struct routetab *t, const struct rt_cands *c, const char *path,
                      size_t pathlen, const char *method, size_t methodlen);

/* The index of the first route when it takes every request (no match
 * condition: the request needs no look at its host, path or method), else
 * -1. */
int routetab_always(const struct routetab *t);

/* A Host value without its port and trailing dot, in lower case, into out
 * (ROUTE_HOST_MAX bytes): its length, or 0 when it does not fit or is
 * empty. */
size_t route_host_normalise(const char *host, size_t len, char *out);

/* Whether PATH is under PREFIX segment-wise: /api/orders takes
 * /api/orders, /api/orders/7 and /api/orders?x, not /api/ordersX. */
bool route_path_under(const char *path, size_t len, const char *prefix, size_t plen);

/* Whether a route's host condition HOST (normalised, "*." for a wildcard)
 * takes the normalised host H. */
bool route_host_covers(const char *host, const char *h, size_t hlen);

#endif
