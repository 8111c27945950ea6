/*
 * routetab.c — host keys hashed, candidate lists in config order.
 *
 * Keys are exact hosts ("shop.example.com") and wildcard suffixes
 * (".shop.example.com" for "*.shop.example.com"); an exact host never
 * begins with a dot, so both live in one table. A host is looked up
 * exactly, then by its suffixes from the longest: the first key found
 * holds every route the host can take, as a wildcard's list holds the
 * routes of every shorter wildcard that covers it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/mem.h"
#include "core/routetab.h"

struct rt_key {
	const char *key;      /* NULL: empty slot */
	uint32_t len;
	uint32_t hash;
	uint32_t list;        /* offset into lists */
	uint32_t nlist;
};

struct routetab {
	const struct cfg_route *routes;
	struct rt_key *slots;
	size_t mask;          /* slots - 1, a power of two minus one */
	uint32_t *lists;
	size_t nkeys;
	uint32_t any;         /* the list of routes without a host condition */
	uint32_t nany;
};

static uint32_t hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

bool route_host_covers(const char *host, const char *h, size_t hlen)
{
	if (host[0] == '*') {
		size_t sl = strlen(host + 1); /* ".a.b" */
		return hlen > sl && memcmp(h + hlen - sl, host + 1, sl) == 0;
	}
	return strlen(host) == hlen && memcmp(host, h, hlen) == 0;
}

bool route_path_under(const char *path, size_t len, const char *prefix, size_t plen)
{
	if (len < plen || memcmp(path, prefix, plen) != 0)
		return false;
	return len == plen || prefix[plen - 1] == '/' || path[plen] == '/' || path[plen] == '?';
}

size_t route_host_normalise(const char *host, size_t len, char *out)
{
	size_t n = len;

	if (len && host[0] == '[') { /* an IPv6 literal: the port follows ']' */
		const char *e = memchr(host, ']', len);
		n = e ? (size_t)(e - host) + 1 : len;
	} else {
		const char *c = memchr(host, ':', len);
		if (c)
			n = (size_t)(c - host);
	}
	if (n && host[n - 1] == '.')
		n--;
	if (!n || n > ROUTE_HOST_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = host[i];
		out[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
	}
	return n;
}

/* The key a route host condition is stored under: the host, or for
 * "*.a.b" the suffix ".a.b". */
static const char *key_of(const char *host)
{
	return host[0] == '*' ? host + 1 : host;
}

/* Whether route r takes a host whose key is k (an exact host, or a
 * wildcard suffix standing for every host under it). */
static bool route_takes_key(const struct cfg_route *r, const char *k, size_t klen)
{
	if (!r->nhosts)
		return true;
	for (size_t i = 0; i < r->nhosts; i++) {
		const char *h = r->hosts[i];
		if (k[0] == '.') {
			/* Every host under k is under the wildcard h when k's
			 * suffix ends with h's. */
			if (h[0] == '*') {
				size_t sl = strlen(h + 1);
				if (klen >= sl && memcmp(k + klen - sl, h + 1, sl) == 0)
					return true;
			}
		} else if (route_host_covers(h, k, klen)) {
			return true;
		}
	}
	return false;
}

static struct rt_key *find_slot(const struct routetab *t, const char *k, size_t n, uint32_t h)
{
	for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
		struct rt_key *e = &t->slots[i];
		if (!e->key || (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0))
			return e;
	}
}

struct routetab *routetab_build(const struct cfg_route *routes, size_t n)
{
	struct routetab *t = xcalloc(1, sizeof(*t));
	size_t nkeys = 0, cap = 4, nlists = 0, lcap = 16;

	t->routes = routes;
	for (size_t i = 0; i < n; i++)
		nkeys += routes[i].nhosts;
	while (cap < nkeys * 2)
		cap *= 2;
	t->slots = xcalloc(cap, sizeof(*t->slots));
	t->mask = cap - 1;
	t->lists = xcalloc(lcap, sizeof(*t->lists));

	/* The list of hostless routes first, then one per distinct key. */
	t->any = 0;
	for (size_t i = 0; i < n; i++) {
		if (routes[i].nhosts)
			continue;
		if (nlists == lcap)
			t->lists = xrealloc(t->lists, (lcap *= 2) * sizeof(*t->lists));
		t->lists[nlists++] = (uint32_t)i;
	}
	t->nany = (uint32_t)nlists;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < routes[i].nhosts; j++) {
			const char *k = key_of(routes[i].hosts[j]);
			size_t kl = strlen(k);
			uint32_t h = hash(k, kl);
			struct rt_key *e = find_slot(t, k, kl, h);
			if (e->key)
				continue;
			*e = (struct rt_key){.key = k, .len = (uint32_t)kl, .hash = h,
			                     .list = (uint32_t)nlists};
			t->nkeys++;
			for (size_t r = 0; r < n; r++) {
				if (!route_takes_key(&routes[r], k, kl))
					continue;
				if (nlists == lcap)
					t->lists = xrealloc(t->lists, (lcap *= 2) * sizeof(*t->lists));
				t->lists[nlists++] = (uint32_t)r;
			}
			e->nlist = (uint32_t)nlists - e->list;
		}
	}
	return t;
}

void routetab_free(struct routetab *t)
{
	if (!t)
		return;
	free(t->slots);
	free(t->lists);
	free(t);
}

static bool method_ok(const struct cfg_route *r, const char *m, size_t len)
{
	if (!r->methods)
		return true;
	for (size_t i = 0; i < r->nmethods; i++)
		if (strlen(r->methods[i]) == len && memcmp(r->methods[i], m, len) == 0)
			return true;
	return false;
}

int routetab_match(const struct routetab *t, const char *host, size_t hostlen, const char *path,
                   size_t pathlen, const char *method, size_t methodlen)
{
	uint32_t list = t->any, nlist = t->nany;
	char h[ROUTE_HOST_MAX];
	size_t hl = host && t->nkeys ? route_host_normalise(host, hostlen, h) : 0;

	if (hl) {
		struct rt_key *e = find_slot(t, h, hl, hash(h, hl));
		/* Not this host: the longest wildcard suffix that is a key. */
		for (size_t i = 1; !e->key && i < hl; i++)
			if (h[i] == '.')
				e = find_slot(t, h + i, hl - i, hash(h + i, hl - i));
		if (e->key) {
			list = e->list;
			nlist = e->nlist;
		}
	}
	for (uint32_t i = 0; i < nlist; i++) {
		uint32_t ri = t->lists[list + i];
		const struct cfg_route *r = &t->routes[ri];
		if (r->path_prefix &&
		    !route_path_under(path, pathlen, r->path_prefix, r->path_prefix_len))
			continue;
		if (method_ok(r, method, methodlen))
			return (int)ri;
	}
	return -1;
}
