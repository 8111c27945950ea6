/*
 * log.h — the error log: one line per event on stderr, with a time, a level
 * and enough context for an operator to act on.
 */
#ifndef ZDM_LOG_H
#define ZDM_LOG_H

#include <stdint.h>

enum log_level {
	LOG_ERROR,   /* something failed and an operator should act */
	LOG_WARN,    /* something failed but was handled (a retry, a fallback) */
	LOG_INFO,    /* lifecycle: start, reload, shutdown */
	LOG_DEBUG,   /* per-connection detail */
};

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A call site whose lines a peer can trigger at will (a client, an
 * upstream, a flood of connections): at most LOG_LIMIT_BURST of its lines a
 * second are written, across threads. The others are counted, and the next
 * line written from that site says how many were left out. */
#define LOG_LIMIT_BURST 5
struct log_limit {
	uint64_t second;              /* the second being counted (monotonic) */
	uint32_t lines;               /* lines of that second so far */
	uint32_t dropped;             /* lines left out since the last one written */
	uint32_t burst;               /* lines a second; 0: LOG_LIMIT_BURST */
};
void log_limited(struct log_limit *lim, enum log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* log_limited() with a limit of the call site's own. */
#define log_ratelimited(level, ...)                                                                \
	do {                                                                                       \
		static struct log_limit lim_;                                                      \
		log_limited(&lim_, level, __VA_ARGS__);                                            \
	} while (0)

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
