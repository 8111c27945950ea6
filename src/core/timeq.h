/*
 * timeq.h — deadlines of many connections, kept lazily in a binary heap.
 *
 * A connection's read deadline moves with every request (idle, then
 * request head, then idle again; upstream response, then upstream idle),
 * nearly always to a later time. The heap learns only of moves that make a
 * deadline earlier: a later move just stores the new time in the entry,
 * and the entry, whose heap key is then stale (earlier than its deadline),
 * is moved down when its key comes up. So the common case costs two
 * stores, and the queue asks its owner for one wake-up at the earliest key.
 *
 * Pure: no clock and no event loop. The owner passes times (ms, any
 * monotonic origin), and is told through `wake` when timeq_run() must be
 * called next, and through `expire` which entries have expired.
 */
#ifndef ZDM_TIMEQ_H
#define ZDM_TIMEQ_H

#include <stdint.h>

struct timeq_entry {
	uint64_t due;  /* the deadline; 0: none */
	uint64_t key;  /* its place in the heap, never later than due */
	uint32_t slot; /* 1 + its index in the heap; 0: not in the heap */
};

struct timeq;

/* at: the earliest time timeq_run() has work; the owner's previous
 * request, if later, is replaced. */
typedef void (*timeq_wake_fn)(struct timeq *q, uint64_t at);
/* e has expired (and is out of the queue, due 0). Called from
 * timeq_run(); may set or remove any entry, e included, to deadlines
 * after the run's now. */
typedef void (*timeq_expire_fn)(struct timeq *q, struct timeq_entry *e);

struct timeq {
	struct timeq_entry **heap;
	uint32_t n, cap;
	uint64_t wake_at; /* the wake-up asked for; 0: none */
	timeq_wake_fn wake;
	timeq_expire_fn expire;
};

void timeq_init(struct timeq *q, timeq_wake_fn wake, timeq_expire_fn expire);
void timeq_free(struct timeq *q);

/* Sets e's deadline (0: none). e must be zeroed before its first use. */
void timeq_set(struct timeq *q, struct timeq_entry *e, uint64_t due);

/* Takes e out of the queue: required before e's memory goes away. */
void timeq_remove(struct timeq *q, struct timeq_entry *e);

/* Expires every entry whose deadline is at or before now, then asks for
 * the next wake-up. */
void timeq_run(struct timeq *q, uint64_t now);

#endif
