/*
 * log.h — the error log: one line per event on stderr, with a time, a level
 * and enough context for an operator to act on.
 */
#ifndef ZDM_LOG_H
#define ZDM_LOG_H

enum log_level {
	LOG_ERROR,   /* something failed and an operator should act */
	LOG_WARN,    /* something failed but was handled (a retry, a fallback) */
	LOG_INFO,    /* lifecycle: start, reload, shutdown */
	LOG_DEBUG,   /* per-connection detail */
};

void log_set_level(enum log_level level);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
