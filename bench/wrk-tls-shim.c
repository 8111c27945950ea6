/*
 * LD_PRELOAD shim for wrk's TLS connections (bench/run.sh tls).
 *
 * wrk ends a TLS connection with SSL_shutdown() and SSL_clear() and reuses
 * the SSL object for the next connection; SSL_clear() keeps the session, so
 * the next handshake offers it for resumption. This shim
 *   - counts, at every SSL_clear(), whether the connection just closed was
 *     resumed, and prints "tls-shim: connections N resumed R" at exit;
 *   - with BENCH_TLS_FULL=1, drops the kept session after SSL_clear(), so
 *     that every connection makes a full handshake.
 * Built by run.sh with: cc -shared -fPIC -O2 -o shim.so wrk-tls-shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_session_reused(const SSL *s);
int SSL_set_session(SSL *s, SSL_SESSION *session);
int SSL_is_init_finished(const SSL *s);

static unsigned long connections, resumed;
static int drop_session = -1;

int SSL_clear(SSL *s)
{
	static int (*real)(SSL *);
	int rc;

	if (!real)
		real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
	if (drop_session < 0) {
		const char *v = getenv("BENCH_TLS_FULL");
		drop_session = v && v[0] == '1';
	}
	if (SSL_is_init_finished(s)) {
		__atomic_fetch_add(&connections, 1, __ATOMIC_RELAXED);
		if (SSL_session_reused(s))
			__atomic_fetch_add(&resumed, 1, __ATOMIC_RELAXED);
	}
	rc = real(s);
	if (drop_session)
		SSL_set_session(s, NULL);
	return rc;
}

__attribute__((destructor)) static void report(void)
{
	fprintf(stderr, "tls-shim: connections %lu resumed %lu\n", connections, resumed);
}
