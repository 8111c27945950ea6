/*
 * tls.h — OpenSSL contexts for TLS termination on listeners and TLS to
 * upstream pools, built from a config.
 *
 * A tls_set holds the contexts of one config (one per TLS listener, one per
 * TLS pool). Connections take their own references to the contexts they use
 * (SSL_new), so a reload can drop the old set while they finish. Several
 * certificates on one listener are chosen by SNI: the names of each
 * certificate (subjectAltName DNS entries, else the common name, wildcards
 * allowed) are matched against the name the client asks for; the first
 * certificate is the default.
 */
#ifndef ZDM_TLS_H
#define ZDM_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct config;
struct config_errors;

struct tls_set {
	unsigned refs;
	size_t nlisten, npools;
	SSL_CTX **listen;       /* per listener, NULL for plain HTTP */
	SSL_CTX **pool;         /* per pool, NULL for plain HTTP */
};

/* The contexts of cfg. Returns NULL with one message per problem in errs
 * (a certificate that does not load, a key that does not match, a CA that
 * does not load: each with the position of its key in the file). */
struct tls_set *tls_set_new(const struct config *cfg, struct config_errors *errs);
struct tls_set *tls_set_hold(struct tls_set *t);
void tls_set_release(struct tls_set *t);

/* A server-side session on fd for a listener context. */
SSL *tls_accept(SSL_CTX *ctx, int fd);
struct cfg_addr;

/* A client-side session on fd to server addr (see tls_client_names). */
SSL *tls_connect(SSL_CTX *ctx, int fd, const char *sni, const struct cfg_addr *addr);

/* The names a client session sends and checks: SNI and the host name the
 * certificate must match when sni is set; without it, the certificate must
 * match the server's IP address (so that verification never accepts any
 * valid certificate for any name). */
void tls_client_names(SSL *ssl, const char *sni, const struct cfg_addr *addr);

/* The last OpenSSL error, as text (for logs). */
const char *tls_error_text(char *buf, size_t len);

#endif
