/*
 * timeq.c — a binary min-heap of deadlines with lazy keys (see timeq.h).
 */
#include <stddef.h>
#include <stdlib.h>

#include "core/mem.h"
#include "core/timeq.h"

void timeq_init(struct timeq *q, timeq_wake_fn wake, timeq_expire_fn expire)
{
	q->heap = NULL;
	q->n = q->cap = 0;
	q->wake_at = 0;
	q->wake = wake;
	q->expire = expire;
}

void timeq_free(struct timeq *q)
{
	for (uint32_t i = 0; i < q->n; i++)
		q->heap[i]->slot = 0;
	free(q->heap);
	q->heap = NULL;
	q->n = q->cap = 0;
}

static void place(struct timeq *q, uint32_t i, struct timeq_entry *e)
{
	q->heap[i] = e;
	e->slot = i + 1;
}

static void sift_up(struct timeq *q, uint32_t i)
{
	struct timeq_entry *e = q->heap[i];
	while (i) {
		uint32_t parent = (i - 1) / 2;
		if (q->heap[parent]->key <= e->key)
			break;
		place(q, i, q->heap[parent]);
		i = parent;
	}
	place(q, i, e);
}

static void sift_down(struct timeq *q, uint32_t i)
{
	struct timeq_entry *e = q->heap[i];
	for (;;) {
		uint32_t child = 2 * i + 1;
		if (child >= q->n)
			break;
		if (child + 1 < q->n && q->heap[child + 1]->key < q->heap[child]->key)
			child++;
		if (q->heap[child]->key >= e->key)
			break;
		place(q, i, q->heap[child]);
		i = child;
	}
	place(q, i, e);
}

static void remove_at(struct timeq *q, uint32_t i)
{
	struct timeq_entry *e = q->heap[i];
	struct timeq_entry *last = q->heap[--q->n];
	e->slot = 0;
	if (i == q->n)
		return;
	place(q, i, last);
	if (i && q->heap[(i - 1) / 2]->key > last->key)
		sift_up(q, i);
	else
		sift_down(q, i);
}

/* Keeps the owner's wake-up no later than the earliest key. */
static void wake_by(struct timeq *q, uint64_t at)
{
	if (!q->wake_at || at < q->wake_at) {
		q->wake_at = at;
		q->wake(q, at);
	}
}

void timeq_set(struct timeq *q, struct timeq_entry *e, uint64_t due)
{
	e->due = due;
	if (!due)
		return; /* dropped from the heap when its key comes up */
	if (e->slot) {
		if (e->key <= due)
			return; /* later: moved down when its key comes up */
		e->key = due;
		sift_up(q, e->slot - 1);
	} else {
		if (q->n == q->cap) {
			q->cap = q->cap ? q->cap * 2 : 64;
			q->heap = xrealloc(q->heap, q->cap * sizeof(*q->heap));
		}
		e->key = due;
		place(q, q->n, e);
		q->n++;
		sift_up(q, q->n - 1);
	}
	wake_by(q, due);
}

void timeq_remove(struct timeq *q, struct timeq_entry *e)
{
	if (e->slot)
		remove_at(q, e->slot - 1);
	e->due = 0;
}

void timeq_run(struct timeq *q, uint64_t now)
{
	q->wake_at = 0;
	while (q->n) {
		struct timeq_entry *e = q->heap[0];
		if (e->key > now)
			break;
		if (e->due > now) {
			/* Moved later since it was keyed: its real place. */
			e->key = e->due;
			sift_down(q, 0);
			continue;
		}
		remove_at(q, 0);
		if (e->due) {
			e->due = 0;
			q->expire(q, e);
		}
	}
	if (q->n)
		wake_by(q, q->heap[0]->key);
}
