/*
 * tls.c — building OpenSSL contexts and sessions.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "net/tls.h"

/* The certificates a listener picks from by SNI, kept with its default
 * context (ex_data) so that it lives exactly as long as that context. */
struct sni_entry {
	char *name;                  /* "*.example.com" for a wildcard */
	SSL_CTX *ctx;                /* held, except the table's own context */
	bool held;
};

struct sni_table {
	struct sni_entry *e;
	size_t n;
};

static int sni_index = -1;

static void sni_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct sni_table *t = ptr;
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		free(t->e[i].name);
		if (t->e[i].held)
			SSL_CTX_free(t->e[i].ctx);
	}
	free(t->e);
	free(t);
}

const char *tls_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (!e) {
		snprintf(buf, len, "unknown error");
		return buf;
	}
	ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static void errs_add(struct config_errors *errs, char *msg)
{
	errs->msgs = xrealloc(errs->msgs, (errs->n + 1) * sizeof(*errs->msgs));
	errs->msgs[errs->n++] = msg;
}

/* Whether host matches the certificate name pattern (one left-most
 * wildcard label at most). */
static bool name_matches(const char *pattern, const char *host)
{
	if (pattern[0] == '*' && pattern[1] == '.') {
		const char *dot = strchr(host, '.');
		return dot && dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
	}
	return strcasecmp(pattern, host) == 0;
}

static int on_servername(SSL *ssl, int *alert, void *arg)
{
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	struct sni_table *t = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sni_index);
	(void)alert;
	(void)arg;
	if (!host || !t)
		return SSL_TLSEXT_ERR_OK; /* the default certificate */
	for (size_t i = 0; i < t->n; i++) {
		if (name_matches(t->e[i].name, host)) {
			if (t->e[i].ctx != SSL_get_SSL_CTX(ssl))
				SSL_set_SSL_CTX(ssl, t->e[i].ctx);
			return SSL_TLSEXT_ERR_OK;
		}
	}
	return SSL_TLSEXT_ERR_OK;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto((unsigned char **)out, outlen, h11, sizeof(h11) - 1, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK; /* no ALPN in common: go on without it */
}

/* Common settings: versions, ciphers, modes for non-blocking writes out of
 * moving evbuffers. */
static void ctx_common(SSL_CTX *ctx, int min_version)
{
	SSL_CTX_set_min_proto_version(ctx, min_version ? min_version : TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
	                                 SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                              SSL_MODE_RELEASE_BUFFERS);
}

/* Adds the names of ctx's certificate to the SNI table of owner. The
 * table holds the other contexts, not its owner (that would be a cycle). */
static void add_entry(struct sni_table *t, SSL_CTX *owner, SSL_CTX *ctx, char *name)
{
	t->e = xrealloc(t->e, (t->n + 1) * sizeof(*t->e));
	t->e[t->n].name = name;
	t->e[t->n].ctx = ctx;
	t->e[t->n].held = ctx != owner;
	if (ctx != owner)
		SSL_CTX_up_ref(ctx);
	t->n++;
}

static void add_names(struct sni_table *t, SSL_CTX *owner, SSL_CTX *ctx)
{
	X509 *x = SSL_CTX_get0_certificate(ctx);
	GENERAL_NAMES *names = x ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL) : NULL;
	int added = 0;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		if (gn->type != GEN_DNS)
			continue;
		const unsigned char *s = ASN1_STRING_get0_data(gn->d.dNSName);
		int len = ASN1_STRING_length(gn->d.dNSName);
		add_entry(t, owner, ctx, xstrndup((const char *)s, (size_t)len));
		added++;
	}
	GENERAL_NAMES_free(names);
	if (!added && x) {
		char cn[256];
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
		                              sizeof(cn)) > 0) {
			add_entry(t, owner, ctx, xstrdup(cn));
		}
	}
}

static SSL_CTX *server_ctx(const struct cfg_listen_tls *lt, const struct cfg_cert *c,
                           struct config_errors *errs)
{
	char e[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		errs_add(errs, xasprintf("%s: cannot create a TLS context: %s", c->where,
		                         tls_error_text(e, sizeof(e))));
		return NULL;
	}
	ctx_common(ctx, lt->min_version);
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		errs_add(errs, xasprintf("%s: certificate %s: %s", c->where, c->cert,
		                         tls_error_text(e, sizeof(e))));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1) {
		errs_add(errs, xasprintf("%s: key %s: %s", c->where, c->key,
		                         tls_error_text(e, sizeof(e))));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		errs_add(errs, xasprintf("%s: key %s does not match certificate %s", c->where,
		                         c->key, c->cert));
		ERR_clear_error();
		goto fail;
	}
	if (lt->ciphers && SSL_CTX_set_cipher_list(ctx, lt->ciphers) != 1) {
		errs_add(errs, xasprintf("%s: ciphers '%s': no usable cipher", c->where, lt->ciphers));
		ERR_clear_error();
		goto fail;
	}
	if (lt->ciphersuites && SSL_CTX_set_ciphersuites(ctx, lt->ciphersuites) != 1) {
		errs_add(errs, xasprintf("%s: ciphersuites '%s': no usable suite", c->where,
		                         lt->ciphersuites));
		ERR_clear_error();
		goto fail;
	}
	/* Session resumption through a server-side cache (and the tickets
	 * OpenSSL issues, with keys it makes for each context). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"zdm", 3);
	SSL_CTX_sess_set_cache_size(ctx, 20480);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
	SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

static SSL_CTX *listener_ctx(const struct cfg_listen_tls *lt, struct config_errors *errs)
{
	SSL_CTX *first = NULL;
	SSL_CTX **all = xcalloc(lt->ncerts, sizeof(*all));
	bool ok = true;

	for (size_t i = 0; i < lt->ncerts; i++) {
		all[i] = server_ctx(lt, &lt->certs[i], errs);
		ok = ok && all[i];
	}
	if (ok) {
		/* Sessions start on the first (default) context, whose
		 * servername callback switches to the one the name asks for. */
		struct sni_table *t = xcalloc(1, sizeof(*t));
		first = all[0];
		for (size_t i = 0; i < lt->ncerts; i++)
			add_names(t, first, all[i]);
		SSL_CTX_up_ref(first);
		SSL_CTX_set_ex_data(first, sni_index, t);
	}
	for (size_t i = 0; i < lt->ncerts; i++)
		SSL_CTX_free(all[i]);
	free(all);
	return first;
}

static SSL_CTX *client_ctx(const struct cfg_upstream_tls *ut, struct config_errors *errs)
{
	char e[256];
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		errs_add(errs, xasprintf("%s: cannot create a TLS context: %s", ut->where,
		                         tls_error_text(e, sizeof(e))));
		return NULL;
	}
	ctx_common(ctx, TLS1_2_VERSION);
	if (ut->verify) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		int r = ut->ca ? SSL_CTX_load_verify_locations(ctx, ut->ca, NULL)
		               : SSL_CTX_set_default_verify_paths(ctx);
		if (r != 1) {
			errs_add(errs, xasprintf("%s: CA %s: %s", ut->where,
			                         ut->ca ? ut->ca : "(system store)",
			                         tls_error_text(e, sizeof(e))));
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	static const unsigned char h11[] = "\x08http/1.1";
	SSL_CTX_set_alpn_protos(ctx, h11, sizeof(h11) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT);
	return ctx;
}

struct tls_set *tls_set_new(const struct config *cfg, struct config_errors *errs)
{
	size_t before = errs->n;
	if (sni_index < 0)
		sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, sni_free);

	struct tls_set *t = xcalloc(1, sizeof(*t));
	t->refs = 1;
	t->nlisten = cfg->nlisten;
	t->npools = cfg->npools;
	t->listen = xcalloc(cfg->nlisten ? cfg->nlisten : 1, sizeof(*t->listen));
	t->pool = xcalloc(cfg->npools ? cfg->npools : 1, sizeof(*t->pool));
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (cfg->listen[i].tls)
			t->listen[i] = listener_ctx(cfg->listen[i].tls, errs);
	for (size_t i = 0; i < cfg->npools; i++)
		if (cfg->pools[i].tls.enabled)
			t->pool[i] = client_ctx(&cfg->pools[i].tls, errs);
	if (errs->n > before) {
		tls_set_release(t);
		return NULL;
	}
	return t;
}

struct tls_set *tls_set_hold(struct tls_set *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void tls_set_release(struct tls_set *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	for (size_t i = 0; i < t->nlisten; i++)
		SSL_CTX_free(t->listen[i]);
	for (size_t i = 0; i < t->npools; i++)
		SSL_CTX_free(t->pool[i]);
	free(t->listen);
	free(t->pool);
	free(t);
}

SSL *tls_accept(SSL_CTX *ctx, int fd)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	SSL_set_fd(ssl, fd);
	SSL_set_accept_state(ssl);
	return ssl;
}

void tls_client_names(SSL *ssl, const char *sni, const struct cfg_addr *addr)
{
	if (sni) {
		SSL_set_tlsext_host_name(ssl, sni);
		SSL_set1_host(ssl, sni);
		return;
	}
	char ip[INET6_ADDRSTRLEN] = "";
	if (addr->ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&addr->ss)->sin_addr, ip, sizeof(ip));
	else if (addr->ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr, ip,
		          sizeof(ip));
	if (*ip)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip);
}

SSL *tls_connect(SSL_CTX *ctx, int fd, const char *sni, const struct cfg_addr *addr)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	SSL_set_fd(ssl, fd);
	tls_client_names(ssl, sni, addr);
	SSL_set_connect_state(ssl);
	return ssl;
}
