/*
 * breaker.h — the circuit breaker of one upstream server, a pure state
 * machine fed with the outcomes of real requests.
 *
 *   closed ──(failures consecutive failures)──▶ open
 *   open ──(open_for elapsed)──▶ half_open
 *   half_open ──(a success)──▶ closed
 *   half_open ──(a failure)──▶ open
 *
 * While open the server takes no request; half-open, it takes at most
 * half_open_probes requests until one of them has an outcome.
 *
 * A failure is one of the kinds circuit_breaker.count lists (enum
 * cfg_fail_kind); a failure of another kind is no outcome at all: it
 * neither adds to nor ends a streak of failures, and a probe that ends so
 * only gives its slot back.
 */
#ifndef ZDM_BREAKER_H
#define ZDM_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

struct cfg_breaker;

enum breaker_state {
	BREAKER_CLOSED,     /* traffic flows; consecutive failures are counted */
	BREAKER_OPEN,       /* no traffic until open_until */
	BREAKER_HALF_OPEN,  /* a few probe requests decide */
};

extern const char *const breaker_state_names[];

struct breaker {
	enum breaker_state state;
	uint32_t failures;       /* consecutive, while closed */
	uint32_t probes;         /* requests admitted while half-open */
	uint64_t open_until_ms;  /* while open */
};

void breaker_init(struct breaker *b);

/* What breaker_result() is told about a request that succeeded; anything
 * else is the enum cfg_fail_kind it failed with. */
#define BREAKER_SUCCESS (-1)

/* The outcome of a request to the server: BREAKER_SUCCESS, or the kind of
 * its failure. Returns true when the state changed (an uncounted kind
 * never changes it, see above). */
bool breaker_result(struct breaker *b, const struct cfg_breaker *c, int outcome, uint64_t now_ms);

/* Time passes: an open breaker whose time is up turns half-open. Returns
 * true when the state changed. */
bool breaker_tick(struct breaker *b, const struct cfg_breaker *c, uint64_t now_ms);

/* A request was admitted while half-open (a probe). */
void breaker_admitted(struct breaker *b);

/* A request ended without an outcome (its client went away, or it failed
 * in a way that is not counted): a probe slot it held is free again. */
void breaker_abandoned(struct breaker *b);

/* Whether a new request may go to the server. */
bool breaker_available(const struct breaker *b, const struct cfg_breaker *c);

#endif
