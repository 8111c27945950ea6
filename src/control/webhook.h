/*
 * webhook.h — the webhook client of the control plane: one POST of a JSON
 * event to an operator's http:// URL, on the control plane's loop.
 *
 * A POST never blocks its caller nor delays the next one: names are
 * resolved with evdns, connections are non-blocking, and each POST has
 * two deadlines of its own (connecting, and the whole exchange). Its
 * outcome is a debug line (2xx) or one rate-limited warning with the
 * reason, and a count: nothing waits for it, and nothing is retried.
 */
#ifndef ZDM_WEBHOOK_H
#define ZDM_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

/* POSTs in flight at once; a POST beyond them is refused. */
#define WEBHOOKS_MAX_INFLIGHT 64

struct event_base;
struct webhooks;

/* The webhook client of the control plane's loop base. */
struct webhooks *webhooks_new(struct event_base *base);

/* Cancels every POST still in flight (without logging each) and frees.
 * NULL is fine. A name lookup still running is left to end on the loop
 * (evdns calls it back on a later turn), then freed. */
void webhooks_free(struct webhooks *w);

/* POSTs body (len bytes of JSON, copied) to url (http://HOST[:PORT][/PATH],
 * HOST a name, an IPv4 address or [IPv6]): connecting within connect_ms
 * (0: no bound of its own), the whole exchange (connect, request sent,
 * response status line and headers read) within total_ms. The response's
 * body is never read. `what` names the event in log lines ("rollout
 * event rolled_back of route 'default'").
 * Returns 0 when the POST is under way (its outcome is logged and counted
 * later, perhaps before this returns), -1 when refused (logged at warn,
 * counted as failed): url not parsable, or WEBHOOKS_MAX_INFLIGHT already
 * in flight. */
int webhooks_post(struct webhooks *w, const char *url, const char *body, size_t len,
                  uint32_t connect_ms, uint32_t total_ms, const char *what);

/* POSTs that ended with a 2xx status / that failed (refused, could not
 * connect, timed out, connection closed early, a status other than 2xx),
 * since webhooks_new. Any thread may read them. */
uint64_t webhooks_delivered(const struct webhooks *w);
uint64_t webhooks_failed(const struct webhooks *w);

/* POSTs in flight now. */
size_t webhooks_inflight(const struct webhooks *w);

#endif
