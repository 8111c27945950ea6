/*
 * routetab.c — host keys hashed, candidate lists in config order.
 *
 * Keys are exact hosts ("shop.example.com") and wildcard suffixes
 * (".shop.example.com" for "*.shop.example.com"); an exact host never
 * begins with a dot, so both live in one table. A host is looked up
 * exactly, then by its suffixes from the longest: the first key found
 * holds every route the host can take, as a wildcard's list holds the
 * routes of every shorter wildcard that covers it.
 *
 * Within a host's candidates, path prefixes are matched segment-wise, so a
 * route under /api/... can only take a path whose first segment is "api":
 * every candidate list is split again by the first segment of its routes'
 * prefixes, into a second table keyed by (list, segment). A request looks
 * up its own first segment and checks only the routes of that segment and
 * those that take any path, still in config order.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/mem.h"
#include "core/routetab.h"

/* A run of route indexes in lists, in config order. */
struct rt_list {
	uint32_t off, n;
};

/* The candidates of one host key (or of a host no key names): those that
 * take any path, and the id of its segment lists in the segment table. */
struct rt_cands {
	struct rt_list any_path;
	uint32_t id;
};

struct rt_key {
	const char *key;      /* NULL: empty slot */
	uint32_t len;
	uint32_t hash;
	struct rt_cands c;
};

struct rt_seg {
	const char *seg;      /* NULL: empty slot */
	uint32_t len;
	uint32_t hash;        /* of the segment, mixed with the list id */
	uint32_t id;
	struct rt_list l;
};

struct routetab {
	const struct cfg_route *routes;
	struct rt_key *keys;
	size_t kmask;         /* slots - 1 */
	size_t nkeys;
	struct rt_seg *segs;
	size_t smask, nsegs;
	struct rt_cands any;  /* a host no key names, or no host */
	uint32_t *lists;
	size_t nlists, lcap;
	int always;           /* the first route takes every request: its index, else -1 */
};

#define HASH_SEED 2166136261u

static uint32_t hash(const char *s, size_t n, uint32_t h)
{
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

/* route_host_normalise, and the hash of what it wrote. */
static size_t normalise_hash(const char *host, size_t len, char *out, uint32_t *hp)
{
	const char *end;
	size_t n = len;

	if (len && host[0] == '[') /* an IPv6 literal: the port follows ']' */
		n = (end = memchr(host, ']', len)) ? (size_t)(end - host) + 1 : len;
	else if ((end = memchr(host, ':', len)))
		n = (size_t)(end - host);
	n -= n && host[n - 1] == '.';
	if (!n || n > ROUTE_HOST_MAX)
		return 0;
	uint32_t h = HASH_SEED;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)host[i];
		ch |= (unsigned char)(((unsigned)(ch - 'A') < 26u) << 5); /* lower case */
		out[i] = (char)ch;
		h = (h ^ ch) * 16777619u;
	}
	*hp = h;
	return n;
}

size_t route_host_normalise(const char *host, size_t len, char *out)
{
	uint32_t h;
	return normalise_hash(host, len, out, &h);
}

/* The first segment of a path: after its '/', up to the next '/', '?' or
 * the end. Empty for "/", "/?q" and for anything not beginning with '/'. */
static size_t first_segment(const char *path, size_t len, const char **seg)
{
	size_t n = 1;
	*seg = path + 1;
	if (!len || path[0] != '/')
		return 0;
	while (n < len && path[n] != '/' && path[n] != '?')
		n++;
	return n - 1;
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

static struct rt_key *find_key(const struct routetab *t, const char *k, size_t n, uint32_t h)
{
	for (size_t i = h & t->kmask;; i = (i + 1) & t->kmask) {
		struct rt_key *e = &t->keys[i];
		if (!e->key || (e->hash == h && e->len == n && memcmp(e->key, k, n) == 0))
			return e;
	}
}

static struct rt_seg *find_seg(const struct routetab *t, uint32_t id, const char *s, size_t n,
                               uint32_t h)
{
	for (size_t i = h & t->smask;; i = (i + 1) & t->smask) {
		struct rt_seg *e = &t->segs[i];
		if (!e->seg || (e->hash == h && e->id == id && e->len == n && memcmp(e->seg, s, n) == 0))
			return e;
	}
}

static uint32_t seg_hash(uint32_t id, const char *s, size_t n)
{
	return hash(s, n, HASH_SEED ^ (id * 2654435761u));
}

/* Doubles the segment table once it is half full. */
static void segs_room(struct routetab *t)
{
	if (2 * (t->nsegs + 1) <= t->smask + 1)
		return;
	struct rt_seg *old = t->segs;
	size_t n = t->smask + 1;
	t->segs = xcalloc(2 * n, sizeof(*t->segs));
	t->smask = 2 * n - 1;
	for (size_t i = 0; i < n; i++)
		if (old[i].seg)
			*find_seg(t, old[i].id, old[i].seg, old[i].len, old[i].hash) = old[i];
	free(old);
}

static void push(struct routetab *t, uint32_t v)
{
	if (t->nlists == t->lcap)
		t->lists = xrealloc(t->lists, (t->lcap = t->lcap ? 2 * t->lcap : 16) * sizeof(*t->lists));
	t->lists[t->nlists++] = v;
}

/* The first segment of route r's prefix (empty: it takes any path). */
static size_t route_segment(const struct cfg_route *r, const char **seg)
{
	*seg = "";
	return r->path_prefix ? first_segment(r->path_prefix, r->path_prefix_len, seg) : 0;
}

/* Splits the candidates all[0, n) (route indexes) by the first segment of
 * their prefixes into c, with id. */
static void build_cands(struct routetab *t, const uint32_t *all, size_t n, uint32_t id,
                        struct rt_cands *c)
{
	c->id = id;
	c->any_path.off = (uint32_t)t->nlists;
	for (size_t i = 0; i < n; i++) {
		const char *seg;
		if (!route_segment(&t->routes[all[i]], &seg))
			push(t, all[i]);
	}
	c->any_path.n = (uint32_t)t->nlists - c->any_path.off;
	for (size_t i = 0; i < n; i++) {
		const char *seg, *other;
		size_t sl = route_segment(&t->routes[all[i]], &seg);
		if (!sl)
			continue;
		uint32_t h = seg_hash(id, seg, sl);
		segs_room(t);
		struct rt_seg *e = find_seg(t, id, seg, sl, h);
		if (e->seg)
			continue; /* done with an earlier route of that segment */
		t->nsegs++;
		*e = (struct rt_seg){.seg = seg, .len = (uint32_t)sl, .hash = h, .id = id,
		                     .l = {.off = (uint32_t)t->nlists}};
		for (size_t j = 0; j < n; j++) {
			size_t ol = route_segment(&t->routes[all[j]], &other);
			if (!ol || (ol == sl && memcmp(other, seg, sl) == 0))
				push(t, all[j]);
		}
		e->l.n = (uint32_t)t->nlists - e->l.off;
	}
}

static size_t pow2_at_least(size_t n)
{
	size_t cap = 4;
	while (cap < n)
		cap *= 2;
	return cap;
}

struct routetab *routetab_build(const struct cfg_route *routes, size_t n)
{
	struct routetab *t = xcalloc(1, sizeof(*t));
	size_t nhosts = 0;
	uint32_t *all = xcalloc(n ? n : 1, sizeof(*all));

	t->routes = routes;
	t->always = n && !routes[0].nhosts && !routes[0].path_prefix && !routes[0].methods ? 0 : -1;
	for (size_t i = 0; i < n; i++)
		nhosts += routes[i].nhosts;
	t->keys = xcalloc(t->kmask = pow2_at_least(2 * nhosts), sizeof(*t->keys));
	t->kmask--;
	t->segs = xcalloc(t->smask = pow2_at_least(2 * n), sizeof(*t->segs));
	t->smask--;

	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (!routes[i].nhosts)
			all[m++] = (uint32_t)i;
	build_cands(t, all, m, 0, &t->any);
	uint32_t id = 1;
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < routes[i].nhosts; j++) {
			const char *k = key_of(routes[i].hosts[j]);
			size_t kl = strlen(k);
			uint32_t h = hash(k, kl, HASH_SEED);
			struct rt_key *e = find_key(t, k, kl, h);
			if (e->key)
				continue;
			*e = (struct rt_key){.key = k, .len = (uint32_t)kl, .hash = h};
			t->nkeys++;
			m = 0;
			for (size_t r = 0; r < n; r++)
				if (route_takes_key(&routes[r], k, kl))
					all[m++] = (uint32_t)r;
			build_cands(t, all, m, id++, &e->c);
		}
	}
	free(all);
	return t;
}

void routetab_free(struct routetab *t)
{
	if (!t)
		return;
	free(t->keys);
	free(t->segs);
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

/* The first route of candidate list l whose path and method hold. */
static int first_of(const struct routetab *t, struct rt_list l, const char *path, size_t pathlen,
                    const char *method, size_t methodlen)
{
	for (uint32_t i = 0; i < l.n; i++) {
		uint32_t ri = t->lists[l.off + i];
		const struct cfg_route *r = &t->routes[ri];
		if (r->path_prefix &&
		    !route_path_under(path, pathlen, r->path_prefix, r->path_prefix_len))
			continue;
		if (method_ok(r, method, methodlen))
			return (int)ri;
	}
	return -1;
}

int routetab_always(const struct routetab *t)
{
	return t->always;
}

const struct rt_cands *routetab_host(const struct routetab *t, const char *host, size_t hostlen)
{
	char h[ROUTE_HOST_MAX];
	uint32_t hh = 0;
	size_t hl = host && t->nkeys ? normalise_hash(host, hostlen, h, &hh) : 0;
	if (!hl)
		return &t->any;
	struct rt_key *e = find_key(t, h, hl, hh);
	/* Not this host: the longest wildcard suffix that is a key. */
	for (size_t i = 1; !e->key && i < hl; i++)
		if (h[i] == '.')
			e = find_key(t, h + i, hl - i, hash(h + i, hl - i, HASH_SEED));
	return e->key ? &e->c : &t->any;
}

int routetab_match_in(const struct routetab *t, const struct rt_cands *c, const char *path,
                      size_t pathlen, const char *method, size_t methodlen)
{
	const char *seg;
	size_t sl = first_segment(path, pathlen, &seg);
	if (sl) {
		const struct rt_seg *e = find_seg(t, c->id, seg, sl, seg_hash(c->id, seg, sl));
		if (e->seg)
			return first_of(t, e->l, path, pathlen, method, methodlen);
	}
	return first_of(t, c->any_path, path, pathlen, method, methodlen);
}

int routetab_match(const struct routetab *t, const char *host, size_t hostlen, const char *path,
                   size_t pathlen, const char *method, size_t methodlen)
{
	if (t->always >= 0)
		return t->always;
	return routetab_match_in(t, routetab_host(t, host, hostlen), path, pathlen, method,
	                         methodlen);
}
