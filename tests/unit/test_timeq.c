/*
 * test_timeq.c — the lazy deadline heap: scenarios, then random operations
 * checked against a plain array of deadlines.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "tap.h"
#include "core/timeq.h"

#define N 200

static struct timeq_entry ent[N];
static int expired[N];  /* times each entry expired in the last run */
static int wakes;       /* wake requests since reset */
static uint64_t last_wake;

static void on_wake(struct timeq *q, uint64_t at)
{
	(void)q;
	wakes++;
	last_wake = at;
}

static void on_expire(struct timeq *q, struct timeq_entry *e)
{
	(void)q;
	expired[e - ent]++;
}

static void clear_expired(void)
{
	memset(expired, 0, sizeof(expired));
}

/* The heap's shape: ordered keys, slots that point back, keys no later
 * than deadlines. */
static bool heap_ok(const struct timeq *q)
{
	for (uint32_t i = 0; i < q->n; i++) {
		const struct timeq_entry *e = q->heap[i];
		if (e->slot != i + 1)
			return false;
		if (i && q->heap[(i - 1) / 2]->key > e->key)
			return false;
		if (e->due && e->key > e->due)
			return false;
	}
	for (int i = 0; i < N; i++)
		if (ent[i].due && !ent[i].slot)
			return false; /* a deadline the heap does not know */
	return true;
}

static void scenarios(void)
{
	struct timeq q;
	timeq_init(&q, on_wake, on_expire);
	memset(ent, 0, sizeof(ent));

	timeq_set(&q, &ent[0], 1000);
	CHECK(wakes == 1 && last_wake == 1000, "the first deadline asks for a wake-up at it");
	timeq_set(&q, &ent[0], 5000);
	CHECK(wakes == 1 && ent[0].key == 1000 && ent[0].due == 5000,
	      "a later deadline only stores the time");
	timeq_set(&q, &ent[1], 3000);
	CHECK(wakes == 1, "a deadline after the wake-up asks for none");
	timeq_set(&q, &ent[1], 500);
	CHECK(wakes == 2 && last_wake == 500, "an earlier deadline moves the wake-up");
	CHECK(heap_ok(&q), "heap ordered");

	clear_expired();
	timeq_run(&q, 999);
	CHECK(expired[1] == 1 && expired[0] == 0, "a run expires what is due, not what moved later");
	CHECK(ent[1].due == 0 && ent[1].slot == 0, "an expired entry leaves the queue");
	CHECK(last_wake == 1000, "the next wake-up is the stale key");
	timeq_run(&q, 1000);
	CHECK(expired[0] == 0 && ent[0].key == 5000 && last_wake == 5000,
	      "at the stale key the entry moves to its deadline");
	timeq_set(&q, &ent[0], 0);
	CHECK(ent[0].slot != 0, "clearing a deadline leaves the entry until its key");
	timeq_run(&q, 5000);
	CHECK(expired[0] == 0 && ent[0].slot == 0 && q.n == 0, "a cleared entry leaves without expiring");
	wakes = 0;
	timeq_run(&q, 6000);
	CHECK(wakes == 0 && q.wake_at == 0, "an empty queue asks for no wake-up");

	timeq_set(&q, &ent[2], 100);
	timeq_set(&q, &ent[3], 200);
	timeq_remove(&q, &ent[2]);
	CHECK(ent[2].slot == 0 && ent[2].due == 0 && q.n == 1 && heap_ok(&q), "remove takes it out");
	clear_expired();
	timeq_run(&q, 200);
	CHECK(expired[2] == 0 && expired[3] == 1, "a removed entry never expires");
	timeq_free(&q);
}

static void random_ops(void)
{
	struct timeq q;
	uint64_t model[N] = {0};
	uint64_t now = 1;
	bool ok = true, shape = true, wake_ok = true;

	timeq_init(&q, on_wake, on_expire);
	memset(ent, 0, sizeof(ent));
	srand(7);
	for (int step = 0; step < 200000 && ok; step++) {
		int i = rand() % N;
		switch (rand() % 8) {
		case 0:
		case 1:
		case 2: { /* mostly later, as traffic moves deadlines */
			uint64_t due = now + 1 + (uint64_t)(rand() % 2000);
			timeq_set(&q, &ent[i], due);
			model[i] = due;
			break;
		}
		case 3:
			timeq_set(&q, &ent[i], 0);
			model[i] = 0;
			break;
		case 4:
			timeq_remove(&q, &ent[i]);
			model[i] = 0;
			break;
		default: {
			now += (uint64_t)(rand() % 40);
			clear_expired();
			timeq_run(&q, now);
			for (int j = 0; j < N; j++) {
				int want = model[j] && model[j] <= now;
				if (expired[j] != want)
					ok = false;
				if (want)
					model[j] = 0;
			}
			break;
		}
		}
		uint64_t min = 0;
		for (int j = 0; j < N; j++)
			if (model[j] && (!min || model[j] < min))
				min = model[j];
		for (int j = 0; j < N; j++)
			if (ent[j].due != model[j])
				ok = false;
		if (min && (!q.wake_at || q.wake_at > min || last_wake != q.wake_at))
			wake_ok = false;
		if (step % 97 == 0 && !heap_ok(&q))
			shape = false;
	}
	CHECK(ok, "200,000 random operations: each entry expires at the first run at or after its "
	          "deadline, exactly once, never early");
	CHECK(wake_ok, "the wake-up asked for is never later than the earliest deadline");
	CHECK(shape && heap_ok(&q), "the heap stays ordered, with keys no later than deadlines");
	timeq_free(&q);
	CHECK(q.n == 0 && q.heap == NULL, "free empties it");
}

int main(void)
{
	scenarios();
	random_ops();
	return tap_done();
}
