/*
 * tap.h — a minimal TAP producer for the unit tests. Each CHECK is one test
 * point; tap_done() prints the plan and returns the exit status.
 */
#ifndef ZDM_TAP_H
#define ZDM_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

static inline int tap_check(int ok, const char *file, int line, const char *what)
{
	tap_n++;
	if (!ok)
		tap_failed++;
	printf("%sok %d - %s\n", ok ? "" : "not ", tap_n, what);
	if (!ok)
		printf("# failed at %s:%d\n", file, line);
	fflush(stdout);
	return ok;
}

#define CHECK(cond, what) tap_check(!!(cond), __FILE__, __LINE__, (what))
#define CHECK_EQ_INT(a, b, what)                                                  \
	do {                                                                          \
		long long a_ = (long long)(a), b_ = (long long)(b);                       \
		if (!CHECK(a_ == b_, what))                                               \
			printf("#   got %lld, want %lld\n", a_, b_);                         \
	} while (0)
#define CHECK_EQ_STR(a, b, what)                                                  \
	do {                                                                          \
		const char *a_ = (a), *b_ = (b);                                          \
		int ok_ = a_ && b_ ? strcmp(a_, b_) == 0 : a_ == b_;                      \
		if (!CHECK(ok_, what))                                                    \
			printf("#   got \"%s\", want \"%s\"\n", a_ ? a_ : "(null)",          \
			       b_ ? b_ : "(null)");                                          \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
