/*
 * test_breaker.c — the circuit breaker state machine.
 */
#include "breaker.h"
#include "config.h"
#include "tap.h"

int main(void)
{
	struct cfg_breaker c = {.failures = 3, .open_for_ms = 1000, .half_open_probes = 2};
	struct breaker b;

	breaker_init(&b);
	CHECK(b.state == BREAKER_CLOSED && breaker_available(&b, &c), "starts closed and available");
	CHECK(!breaker_result(&b, &c, false, 0), "one failure: still closed");
	CHECK(!breaker_result(&b, &c, true, 0), "a success resets the count");
	CHECK(!breaker_result(&b, &c, false, 0) && !breaker_result(&b, &c, false, 0),
	      "two failures: closed");
	CHECK(breaker_result(&b, &c, false, 10), "the third consecutive failure opens it");
	CHECK(b.state == BREAKER_OPEN && !breaker_available(&b, &c), "open: not available");
	CHECK(!breaker_result(&b, &c, true, 20), "late outcomes do not change an open circuit");
	CHECK(!breaker_tick(&b, &c, 1009), "still open before open_for");
	CHECK(breaker_tick(&b, &c, 1010), "half-open once open_for has passed");
	CHECK(b.state == BREAKER_HALF_OPEN && breaker_available(&b, &c), "half-open admits");
	breaker_admitted(&b);
	CHECK(breaker_available(&b, &c), "one probe of two: still admits");
	breaker_admitted(&b);
	CHECK(!breaker_available(&b, &c), "two probes of two: admits no more");
	CHECK(breaker_result(&b, &c, false, 2000), "a failed probe re-opens");
	CHECK(b.state == BREAKER_OPEN && b.open_until_ms == 3000, "for another open_for");
	CHECK(breaker_tick(&b, &c, 3000), "half-open again");
	breaker_admitted(&b);
	CHECK(breaker_result(&b, &c, true, 3100), "a successful probe closes");
	CHECK(b.state == BREAKER_CLOSED && b.failures == 0, "closed with a fresh count");

	struct cfg_breaker off = {.failures = 0, .open_for_ms = 1000, .half_open_probes = 1};
	breaker_init(&b);
	for (int i = 0; i < 100; i++)
		breaker_result(&b, &off, false, (uint64_t)i);
	CHECK(b.state == BREAKER_CLOSED, "failures: 0 never opens");

	struct cfg_breaker one = {.failures = 1, .open_for_ms = 0, .half_open_probes = 1};
	breaker_init(&b);
	CHECK(breaker_result(&b, &one, false, 5), "failures: 1 opens at the first failure");
	CHECK(breaker_tick(&b, &one, 5), "open_for 0: half-open at once");
	return tap_done();
}
