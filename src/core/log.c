/*
 * log.c — the error log. Lines are formatted into one buffer and written
 * with a single write(2) so that lines from several threads never interleave.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static enum log_level max_level = LOG_INFO;

static const char *const level_names[] = {
	[LOG_ERROR] = "error",
	[LOG_WARN] = "warn",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

void log_set_level(enum log_level level)
{
	max_level = level;
}

int log_enabled(enum log_level level)
{
	return level <= max_level;
}

static void log_line(enum log_level level, uint32_t dropped, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ [%s] ",
	                      ts.tv_nsec / 1000000, level_names[level]);

	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (dropped && n < sizeof(line) - 2) {
		m = snprintf(line + n, sizeof(line) - n - 1, " (and %u more like it not logged)",
		             dropped);
		if (m > 0)
			n += (size_t)m;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	va_list ap;
	va_start(ap, fmt);
	log_line(level, 0, fmt, ap);
	va_end(ap);
}

/* The counts are updated with atomics, without a lock: two threads that
 * start a new second at once may let a line or two more through, never
 * fewer, and no count is lost. */
void log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
{
	if (!log_enabled(level))
		return;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	uint64_t now = (uint64_t)ts.tv_sec;
	uint64_t sec = __atomic_load_n(&lim->second, __ATOMIC_RELAXED);
	if (sec != now && __atomic_compare_exchange_n(&lim->second, &sec, now, false,
	                                              __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		__atomic_store_n(&lim->lines, 0, __ATOMIC_RELAXED);
	if (__atomic_add_fetch(&lim->lines, 1, __ATOMIC_RELAXED) >
	    (lim->burst ? lim->burst : LOG_LIMIT_BURST)) {
		__atomic_add_fetch(&lim->dropped, 1, __ATOMIC_RELAXED);
		return;
	}
	uint32_t dropped = __atomic_exchange_n(&lim->dropped, 0, __ATOMIC_RELAXED);
	va_list ap;
	va_start(ap, fmt);
	log_line(level, dropped, fmt, ap);
	va_end(ap);
}
