/*
 * breaker.c — the circuit breaker state machine (see breaker.h).
 */
#include "control/breaker.h"
#include "core/config.h"

const char *const breaker_state_names[] = {
	[BREAKER_CLOSED] = "closed",
	[BREAKER_OPEN] = "open",
	[BREAKER_HALF_OPEN] = "half_open",
};

void breaker_init(struct breaker *b)
{
	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->probes = 0;
	b->open_until_ms = 0;
}

static void trip(struct breaker *b, const struct cfg_breaker *c, uint64_t now_ms)
{
	b->state = BREAKER_OPEN;
	b->open_until_ms = now_ms + c->open_for_ms;
	b->failures = 0;
	b->probes = 0;
}

bool breaker_result(struct breaker *b, const struct cfg_breaker *c, int outcome, uint64_t now_ms)
{
	bool ok = outcome == BREAKER_SUCCESS;
	if (c->failures == 0)
		return false; /* disabled */
	if (!ok && (outcome < 0 || outcome >= CFG_FAIL_KINDS ||
	            !cfg_breaker_counts(c, (enum cfg_fail_kind)outcome))) {
		/* Not a failure, nor a success: a streak goes on across it, and
		 * a probe that ended so decides nothing. */
		breaker_abandoned(b);
		return false;
	}
	switch (b->state) {
	case BREAKER_CLOSED:
		if (ok) {
			b->failures = 0;
			return false;
		}
		if (++b->failures < c->failures)
			return false;
		trip(b, c, now_ms);
		return true;
	case BREAKER_OPEN:
		/* Outcomes of requests admitted before it opened change
		 * nothing: the open period runs its course. */
		return false;
	case BREAKER_HALF_OPEN:
		if (ok) {
			breaker_init(b);
		} else {
			trip(b, c, now_ms);
		}
		return true;
	}
	return false;
}

bool breaker_tick(struct breaker *b, const struct cfg_breaker *c, uint64_t now_ms)
{
	(void)c;
	if (b->state != BREAKER_OPEN || now_ms < b->open_until_ms)
		return false;
	b->state = BREAKER_HALF_OPEN;
	b->probes = 0;
	return true;
}

void breaker_admitted(struct breaker *b)
{
	if (b->state == BREAKER_HALF_OPEN)
		b->probes++;
}

void breaker_abandoned(struct breaker *b)
{
	if (b->state == BREAKER_HALF_OPEN && b->probes)
		b->probes--;
}

bool breaker_available(const struct breaker *b, const struct cfg_breaker *c)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		return false;
	case BREAKER_HALF_OPEN:
		return b->probes < c->half_open_probes;
	}
	return false;
}
