/*
 * test_breaker.c — the circuit breaker state machine (with the kinds of
 * failure circuit_breaker.count lists, and those it leaves out), and the
 * probe slots the workers take from the stats table while a circuit is
 * half-open.
 */
#include <pthread.h>

#include "control/breaker.h"
#include "core/config.h"
#include "proxy/stats.h"
#include "tap.h"

#define TAKERS 3
#define GIVEN  300000

struct race {
	struct stats_table *t;
	pthread_barrier_t start;
	int given_all;
};

struct taker {
	struct race *r;
	unsigned long taken;
};

static void *take_probes(void *arg)
{
	struct taker *tk = arg;
	struct race *r = tk->r;
	pthread_barrier_wait(&r->start);
	for (;;) {
		int last = __atomic_load_n(&r->given_all, __ATOMIC_ACQUIRE);
		while (stats_take_probe(r->t, 1))
			tk->taken++;
		if (last)
			return NULL;
	}
}

/* Slots given back one at a time (as the control plane does when a probe
 * ends without an outcome) while threads race to take them: every slot is
 * taken exactly once, and the other servers' slots are left alone. */
static void test_probe_slots(void)
{
	struct race r = {.t = stats_new(1, 2, 2, 1, TAKERS)};
	CHECK(!stats_take_probe(r.t, 0) && !stats_take_probe(r.t, 1),
	      "a new table has no probe slots");
	r.t->probe_slots[0] = 7;
	pthread_barrier_init(&r.start, NULL, TAKERS + 1);
	struct taker tk[TAKERS];
	pthread_t th[TAKERS];
	for (int i = 0; i < TAKERS; i++) {
		tk[i] = (struct taker){.r = &r};
		pthread_create(&th[i], NULL, take_probes, &tk[i]);
	}
	pthread_barrier_wait(&r.start);
	for (int i = 0; i < GIVEN; i++)
		__atomic_add_fetch(&r.t->probe_slots[1], 1, __ATOMIC_RELEASE);
	__atomic_store_n(&r.given_all, 1, __ATOMIC_RELEASE);
	unsigned long taken = 0;
	for (int i = 0; i < TAKERS; i++) {
		pthread_join(th[i], NULL);
		taken += tk[i].taken;
	}
	pthread_barrier_destroy(&r.start);
	CHECK_EQ_INT(taken, GIVEN, "racing threads take each slot given exactly once");
	CHECK(r.t->probe_slots[1] == 0 && r.t->probe_slots[0] == 7,
	      "none is left, and another server's slots are untouched");
	stats_release(r.t);
}

/* The transitions, fed with counted failures and successes. */
static void test_transitions(void)
{
	struct cfg_breaker c = {.failures = 3,
	                        .count = CFG_FAIL_DEFAULT,
	                        .open_for_ms = 1000,
	                        .half_open_probes = 2};
	struct breaker b;

	breaker_init(&b);
	CHECK(b.state == BREAKER_CLOSED && breaker_available(&b, &c),
	      "starts closed and available");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_5XX, 0), "one failure: still closed");
	CHECK(!breaker_result(&b, &c, BREAKER_SUCCESS, 0), "a success resets the count");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_CONNECT, 0) &&
	              !breaker_result(&b, &c, CFG_FAIL_RESET, 0),
	      "two failures: closed");
	CHECK(breaker_result(&b, &c, CFG_FAIL_INVALID, 10),
	      "the third consecutive failure opens it");
	CHECK(b.state == BREAKER_OPEN && !breaker_available(&b, &c), "open: not available");
	CHECK(!breaker_result(&b, &c, BREAKER_SUCCESS, 20),
	      "late outcomes do not change an open circuit");
	CHECK(!breaker_tick(&b, &c, 1009), "still open before open_for");
	CHECK(breaker_tick(&b, &c, 1010), "half-open once open_for has passed");
	CHECK(b.state == BREAKER_HALF_OPEN && breaker_available(&b, &c), "half-open admits");
	breaker_admitted(&b);
	CHECK(breaker_available(&b, &c), "one probe of two: still admits");
	breaker_admitted(&b);
	CHECK(!breaker_available(&b, &c), "two probes of two: admits no more");
	CHECK(breaker_result(&b, &c, CFG_FAIL_5XX, 2000), "a failed probe re-opens");
	CHECK(b.state == BREAKER_OPEN && b.open_until_ms == 3000, "for another open_for");
	CHECK(breaker_tick(&b, &c, 3000), "half-open again");
	breaker_admitted(&b);
	CHECK(breaker_result(&b, &c, BREAKER_SUCCESS, 3100), "a successful probe closes");
	CHECK(b.state == BREAKER_CLOSED && b.failures == 0, "closed with a fresh count");

	struct cfg_breaker off = {.failures = 0,
	                          .count = CFG_FAIL_DEFAULT,
	                          .open_for_ms = 1000,
	                          .half_open_probes = 1};
	breaker_init(&b);
	for (int i = 0; i < 100; i++)
		breaker_result(&b, &off, CFG_FAIL_CONNECT, (uint64_t)i);
	CHECK(b.state == BREAKER_CLOSED, "failures: 0 never opens");

	struct cfg_breaker one = {
	        .failures = 1, .count = CFG_FAIL_DEFAULT, .open_for_ms = 0, .half_open_probes = 1};
	breaker_init(&b);
	CHECK(breaker_result(&b, &one, CFG_FAIL_RESET, 5),
	      "failures: 1 opens at the first failure");
	CHECK(breaker_tick(&b, &one, 5), "open_for 0: half-open at once");
}

/* circuit_breaker.count: which kinds are failures, and what a kind left out
 * does (nothing, except free a probe's slot). */
static void test_count(void)
{
	struct cfg_breaker c = {.failures = 3,
	                        .count = CFG_FAIL_DEFAULT,
	                        .open_for_ms = 1000,
	                        .half_open_probes = 1};
	struct breaker b;

	CHECK(cfg_breaker_counts(&c, CFG_FAIL_CONNECT) && cfg_breaker_counts(&c, CFG_FAIL_RESET) &&
	              cfg_breaker_counts(&c, CFG_FAIL_INVALID) &&
	              cfg_breaker_counts(&c, CFG_FAIL_5XX),
	      "by default connect, reset, invalid and 5xx count");
	CHECK(!cfg_breaker_counts(&c, CFG_FAIL_TIMEOUT), "by default a timeout does not");

	breaker_init(&b);
	int changed = 0;
	for (int i = 0; i < 50; i++)
		changed += breaker_result(&b, &c, CFG_FAIL_TIMEOUT, (uint64_t)i);
	CHECK(!changed && b.state == BREAKER_CLOSED && b.failures == 0,
	      "50 uncounted timeouts in a row: closed, nothing counted");

	/* connect, timeout, connect, timeout, connect: the timeouts neither
	 * count nor end the streak of connect failures. */
	breaker_init(&b);
	CHECK(!breaker_result(&b, &c, CFG_FAIL_CONNECT, 0), "a connect failure: 1");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_TIMEOUT, 0) && b.failures == 1,
	      "an uncounted timeout keeps the streak at 1");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_CONNECT, 0) && b.failures == 2,
	      "another connect failure: 2");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_TIMEOUT, 0) && b.failures == 2,
	      "another timeout: still 2");
	CHECK(breaker_result(&b, &c, CFG_FAIL_CONNECT, 100) && b.state == BREAKER_OPEN,
	      "the third connect failure opens it, the timeouts between did not hide them");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_TIMEOUT, 200) && b.state == BREAKER_OPEN,
	      "an uncounted failure does not change an open circuit");

	/* half-open: a probe that times out decides nothing, its slot is
	 * free again; the next probe decides. */
	CHECK(breaker_tick(&b, &c, 1100), "half-open");
	breaker_admitted(&b);
	CHECK(!breaker_available(&b, &c), "its one probe slot is taken");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_TIMEOUT, 1200),
	      "the probe times out: no transition");
	CHECK(b.state == BREAKER_HALF_OPEN && b.probes == 0 && breaker_available(&b, &c),
	      "still half-open, and the slot is free for another probe");
	breaker_admitted(&b);
	CHECK(breaker_result(&b, &c, CFG_FAIL_5XX, 1300) && b.state == BREAKER_OPEN,
	      "the next probe's 5xx (counted) re-opens it");
	CHECK(breaker_tick(&b, &c, 2300), "half-open again");
	breaker_admitted(&b);
	CHECK(!breaker_result(&b, &c, CFG_FAIL_TIMEOUT, 2400) && b.probes == 0,
	      "an uncounted probe frees its slot");
	breaker_admitted(&b);
	CHECK(breaker_result(&b, &c, BREAKER_SUCCESS, 2500) && b.state == BREAKER_CLOSED,
	      "and a successful probe after it closes the circuit");

	/* timeout added: it counts like any other kind */
	struct cfg_breaker all = c;
	all.count |= CFG_FAIL_BIT(CFG_FAIL_TIMEOUT);
	breaker_init(&b);
	CHECK(!breaker_result(&b, &all, CFG_FAIL_TIMEOUT, 0) &&
	              !breaker_result(&b, &all, CFG_FAIL_TIMEOUT, 0),
	      "count with timeout: two timeouts, closed");
	CHECK(breaker_result(&b, &all, CFG_FAIL_TIMEOUT, 0), "the third timeout opens it");

	/* only 5xx: a reset is no longer a failure */
	struct cfg_breaker only = c;
	only.count = CFG_FAIL_BIT(CFG_FAIL_5XX);
	breaker_init(&b);
	for (int i = 0; i < 10; i++)
		breaker_result(&b, &only, CFG_FAIL_RESET, 0);
	CHECK(b.state == BREAKER_CLOSED && b.failures == 0, "count [5xx]: resets are not counted");
	breaker_result(&b, &only, CFG_FAIL_5XX, 0);
	breaker_result(&b, &only, CFG_FAIL_5XX, 0);
	CHECK(breaker_result(&b, &only, CFG_FAIL_5XX, 0), "count [5xx]: three 5xx open it");

	/* an empty list: nothing is a failure */
	struct cfg_breaker none = c;
	none.count = 0;
	breaker_init(&b);
	for (int k = 0; k < CFG_FAIL_KINDS; k++)
		for (int i = 0; i < 10; i++)
			breaker_result(&b, &none, k, 0);
	CHECK(b.state == BREAKER_CLOSED && b.failures == 0, "count []: never opens");

	/* a success still ends a streak */
	breaker_init(&b);
	breaker_result(&b, &c, CFG_FAIL_CONNECT, 0);
	breaker_result(&b, &c, CFG_FAIL_TIMEOUT, 0);
	breaker_result(&b, &c, BREAKER_SUCCESS, 0);
	CHECK(b.failures == 0, "a success after an uncounted failure resets the streak");
	CHECK(!breaker_result(&b, &c, CFG_FAIL_KINDS, 0) && b.failures == 0,
	      "an outcome that is no known kind is not counted");
}

int main(void)
{
	test_probe_slots();
	test_transitions();
	test_count();
	return tap_done();
}
