/*
 * accesslog.c — buffered access log with a writer thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "proxy/accesslog.h"

#define FLUSH_BYTES (64 * 1024)
#define FLUSH_MS 100
#define MAX_PENDING (16 * 1024 * 1024) /* beyond this lines are dropped */

struct accesslog {
	char *path;
	bool json;

	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct evbuffer *shared;      /* handed over, under lock */
	bool reopen, stop;
	uint64_t dropped;             /* under lock */
};

/* A worker's side: its lines not yet handed over, on its own loop. */
struct alog_writer {
	struct accesslog *al;
	bool json;
	struct evbuffer *local;
	struct event *timer;
	time_t cached_sec;            /* the formatted second */
	char cached_time[32];
};

static int open_file(const char *path)
{
	if (strcmp(path, "-") == 0)
		return dup(STDOUT_FILENO);
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void *writer(void *arg)
{
	struct accesslog *al = arg;
	struct evbuffer *mine = evbuffer_new();
	int fd = open_file(al->path);
	time_t last_error = 0;

	pthread_mutex_lock(&al->lock);
	for (;;) {
		while (!al->stop && !al->reopen && !evbuffer_get_length(al->shared))
			pthread_cond_wait(&al->cond, &al->lock);
		bool stop = al->stop, reopen = al->reopen;
		al->reopen = false;
		evbuffer_add_buffer(mine, al->shared);
		pthread_mutex_unlock(&al->lock);

		if (reopen) {
			int nfd = open_file(al->path);
			if (nfd < 0) {
				log_error("access log %s: cannot reopen: %s; still writing to the "
				          "previous file",
				          al->path, strerror(errno));
			} else {
				if (fd >= 0)
					close(fd);
				fd = nfd;
				log_info("access log %s reopened", al->path);
			}
		}
		while (evbuffer_get_length(mine)) {
			int n = fd >= 0 ? evbuffer_write(mine, fd) : -1;
			if (n > 0)
				continue;
			/* Full disk, vanished file, closed pipe: report (once a
			 * minute), drop what cannot be written, go on. */
			time_t now = time(NULL);
			if (now - last_error >= 60) {
				log_error("access log %s: cannot write: %s; dropping lines until it "
				          "works again",
				          al->path, fd < 0 ? "not open" : strerror(errno));
				last_error = now;
			}
			size_t len = evbuffer_get_length(mine);
			uint64_t lines = 0;
			struct evbuffer_ptr p;
			evbuffer_ptr_set(mine, &p, 0, EVBUFFER_PTR_SET);
			while ((p = evbuffer_search(mine, "\n", 1, &p)).pos >= 0) {
				lines++;
				evbuffer_ptr_set(mine, &p, 1, EVBUFFER_PTR_ADD);
			}
			evbuffer_drain(mine, len);
			pthread_mutex_lock(&al->lock);
			al->dropped += lines;
			pthread_mutex_unlock(&al->lock);
		}
		pthread_mutex_lock(&al->lock);
		if (stop && !evbuffer_get_length(al->shared))
			break;
	}
	pthread_mutex_unlock(&al->lock);
	if (fd >= 0)
		close(fd);
	evbuffer_free(mine);
	return NULL;
}

/* Hands the worker's lines to the writer thread. */
static void hand_over(struct alog_writer *lw)
{
	struct accesslog *al = lw->al;
	if (!evbuffer_get_length(lw->local))
		return;
	pthread_mutex_lock(&al->lock);
	if (evbuffer_get_length(al->shared) > MAX_PENDING) {
		al->dropped++; /* counted per hand-over: the writer is stuck */
		evbuffer_drain(lw->local, evbuffer_get_length(lw->local));
	} else {
		evbuffer_add_buffer(al->shared, lw->local);
	}
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->lock);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hand_over(arg);
}

struct accesslog *accesslog_open(const char *path, bool json)
{
	int fd = open_file(path);
	if (fd < 0) {
		log_error("access log %s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	close(fd);

	struct accesslog *al = xcalloc(1, sizeof(*al));
	al->path = xstrdup(path);
	al->json = json;
	al->shared = evbuffer_new();
	pthread_mutex_init(&al->lock, NULL);
	pthread_cond_init(&al->cond, NULL);
	if (pthread_create(&al->thread, NULL, writer, al) != 0) {
		log_error("access log %s: cannot start its writer thread", path);
		evbuffer_free(al->shared);
		free(al->path);
		free(al);
		return NULL;
	}
	return al;
}

struct alog_writer *accesslog_writer_new(struct accesslog *al, struct event_base *base)
{
	struct alog_writer *lw = xcalloc(1, sizeof(*lw));
	lw->al = al;
	lw->json = al->json;
	lw->local = evbuffer_new();
	lw->timer = event_new(base, -1, EV_PERSIST, on_timer, lw);
	struct timeval tv = {0, FLUSH_MS * 1000};
	event_add(lw->timer, &tv);
	return lw;
}

void accesslog_writer_free(struct alog_writer *lw)
{
	if (!lw)
		return;
	event_free(lw->timer);
	hand_over(lw);
	evbuffer_free(lw->local);
	free(lw);
}

void accesslog_close(struct accesslog *al)
{
	if (!al)
		return;
	pthread_mutex_lock(&al->lock);
	al->stop = true;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->lock);
	pthread_join(al->thread, NULL);
	evbuffer_free(al->shared);
	pthread_mutex_destroy(&al->lock);
	pthread_cond_destroy(&al->cond);
	free(al->path);
	free(al);
}

void accesslog_reopen(struct accesslog *al)
{
	if (!al)
		return;
	pthread_mutex_lock(&al->lock);
	al->reopen = true;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->lock);
}

uint64_t accesslog_dropped(const struct accesslog *al)
{
	struct accesslog *m = (struct accesslog *)al;
	pthread_mutex_lock(&m->lock);
	uint64_t d = m->dropped;
	pthread_mutex_unlock(&m->lock);
	return d;
}

/* "2026-11-21T10:00:00.123Z": the second is formatted once per second. */
static const char *timestamp(struct alog_writer *al, char *buf, size_t len)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != al->cached_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(al->cached_time, sizeof(al->cached_time), "%Y-%m-%dT%H:%M:%S", &tm);
		al->cached_sec = ts.tv_sec;
	}
	snprintf(buf, len, "%.24s.%03dZ", al->cached_time, (int)(ts.tv_nsec / 1000000));
	return buf;
}

void accesslog_write(struct alog_writer *al, const struct access_entry *e)
{
	struct evbuffer *out = al->local;
	char t[48];

	timestamp(al, t, sizeof(t));
	if (al->json) {
		evbuffer_add_printf(out, "{\"time\":\"%s\",\"client\":", t);
		json_str(out, e->client);
		json_raw(out, ",\"method\":");
		json_str(out, e->method);
		json_raw(out, ",\"target\":");
		json_strn(out, e->target, e->target_len);
		evbuffer_add_printf(out,
		                    ",\"status\":%d,\"bytes\":%" PRIu64 ",\"duration_ms\":%.3f,"
		                    "\"route\":",
		                    e->status, e->bytes, (double)e->duration_us / 1000.0);
		json_str(out, e->route);
		json_raw(out, ",\"pool\":");
		json_str(out, e->pool);
		json_raw(out, ",\"server\":");
		json_str(out, e->server);
		evbuffer_add_printf(out, ",\"pinned\":%s,\"request_id\":\"%016" PRIx64 "\"}\n",
		                    e->pinned ? "true" : "false", e->id);
	} else {
		/* Quotes and control bytes in the target are escaped as in JSON,
		 * so that a line always splits the same way. */
		evbuffer_add_printf(out, "%s %s \"%s ", t, e->client, e->method);
		struct evbuffer *tmp = evbuffer_new();
		json_strn(tmp, e->target, e->target_len);
		evbuffer_drain(tmp, 1);
		evbuffer_remove_buffer(tmp, out, evbuffer_get_length(tmp) - 1);
		evbuffer_free(tmp);
		evbuffer_add_printf(out,
		                    "\" %d %" PRIu64 " %.6f %s %s %s pinned=%s rid=%016" PRIx64 "\n",
		                    e->status, e->bytes, (double)e->duration_us / 1e6, e->route, e->pool,
		                    e->server, e->pinned ? "yes" : "no", e->id);
	}
	if (evbuffer_get_length(out) >= FLUSH_BYTES)
		hand_over(al);
}
