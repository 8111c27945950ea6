/*
 * admin.h — the read-only admin HTTP listener (SPEC §7): GET /healthz,
 * /status and /metrics. It never shares a port with proxied traffic; keep
 * it on loopback or a private network.
 */
#ifndef ZDM_ADMIN_H
#define ZDM_ADMIN_H

struct admin;
struct event_base;
struct runtime;
struct workers;
struct accesslog;
struct cfg_addr;

/* Listens on addr. Returns NULL (logged) when it cannot. */
struct admin *admin_open(struct event_base *base, const struct cfg_addr *addr,
                         struct runtime *rt, struct workers *ws);
void admin_set_accesslog(struct admin *a, struct accesslog *al);
void admin_close(struct admin *a);

#endif
