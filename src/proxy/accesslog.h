/*
 * accesslog.h — the access log: one line per request, text or JSON.
 *
 * Workers format lines into a buffer of their own; every 100 ms (or 64 KiB)
 * the buffer moves, by chain transfer, to a writer thread that does the
 * write(2)s, so the event loops never wait for the disk. A write error (a
 * full disk, a vanished file) is reported, rate-limited, and the lines are
 * dropped and counted; SIGUSR1 reopens the file (logrotate).
 */
#ifndef ZDM_ACCESSLOG_H
#define ZDM_ACCESSLOG_H

#include <stdbool.h>
#include <stdint.h>

struct accesslog;
struct alog_writer;
struct event_base;

struct access_entry {
	const char *client;
	const char *method;
	const char *target;
	uint32_t target_len;
	int status;                 /* 0: no response was sent */
	uint64_t bytes;             /* response bytes sent to the client */
	uint64_t duration_us;
	const char *route;
	const char *pool;           /* "-" when none */
	const char *server;         /* "-" when none */
	bool pinned;
	uint64_t id;
};

/* Opens path ("-" for stdout) and starts the writer thread. NULL (logged)
 * if the file cannot be opened. */
struct accesslog *accesslog_open(const char *path, bool json);
/* Writes what was handed over and stops; every writer is freed before. */
void accesslog_close(struct accesslog *al);

/* A worker's handle: lines are formatted into its own buffer, handed over
 * by a timer on base (the worker's loop) or when 64 KiB are waiting. Made,
 * used and freed on the worker's thread; freeing hands over what is left. */
struct alog_writer *accesslog_writer_new(struct accesslog *al, struct event_base *base);
void accesslog_writer_free(struct alog_writer *lw);

void accesslog_write(struct alog_writer *lw, const struct access_entry *e);

/* Asks the writer to reopen the file (from a signal callback). */
void accesslog_reopen(struct accesslog *al);

/* Lines dropped because they could not be written. */
uint64_t accesslog_dropped(const struct accesslog *al);

#endif
