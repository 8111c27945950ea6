/*
 * test_breaker.c — the circuit breaker state machine, and the probe slots
 * the workers take from the stats table while a circuit is half-open.
 */
#include <pthread.h>

#include "control/breaker.h"
#include "core/config.h"
#include "proxy/stats.h"
#include "tap.h"

#define TAKERS 3
#define GIVEN 300000

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
	struct race r = {.t = stats_new(1, 2, TAKERS)};
	CHECK(!stats_take_probe(r.t, 0) && !stats_take_probe(r.t, 1), "a new table has no probe slots");
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

int main(void)
{
	test_probe_slots();

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
