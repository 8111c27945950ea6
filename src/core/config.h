/*
 * config.h — the parsed configuration (SPEC §3).
 *
 * config_load() reads a YAML file with libyaml, validates every key and
 * returns an immutable snapshot: nothing in a struct config changes after it
 * is returned, so the hot path may read it without locks while the control
 * plane builds the next one. Every error is reported as
 * "FILE:LINE:COL: message" (1-based, from libyaml's marks), and all errors of
 * a file are reported in one run, not just the first.
 */
#ifndef ZDM_CONFIG_H
#define ZDM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* A resolved socket address with the text it was written as. */
struct cfg_addr {
	char *text;                   /* as written, e.g. "127.0.0.1:9001" */
	struct sockaddr_storage ss;
	socklen_t len;
};

struct cfg_cert {
	char *cert;                   /* PEM chain file */
	char *key;                    /* PEM private key file */
	char *where;                  /* "FILE:LINE:COL: key 'path'", for later errors */
};

/* TLS termination on a listener; the first certificate is the default. */
struct cfg_listen_tls {
	struct cfg_cert *certs;
	size_t ncerts;
	int min_version;              /* 0x0303 (TLS 1.2, default) or 0x0304 (1.3) */
	char *ciphers;                /* TLS <= 1.2 cipher list, NULL = safe default */
	char *ciphersuites;           /* TLS 1.3 suites, NULL = OpenSSL's default */
};

struct cfg_listen {
	struct cfg_addr addr;
	struct cfg_listen_tls *tls;   /* NULL: plain HTTP */
};

struct cfg_server {
	char *name;                   /* defaults to the address text */
	struct cfg_addr addr;
	unsigned weight;              /* 0..1000, default 1 */
};

struct cfg_health {
	bool enabled;                 /* false: no active checks for this pool */
	char *path;                   /* default "/health" */
	char *host;                   /* Host header, NULL = server address */
	uint32_t interval_ms;         /* default 2s */
	uint32_t timeout_ms;          /* default 1s */
	unsigned rise;                /* default 2 */
	unsigned fall;                /* default 3 */
	int expect_lo, expect_hi;     /* default 200-399 */
};

/* The kinds of failure a request to an upstream server may end with, as
 * circuit_breaker.count names them. */
enum cfg_fail_kind {
	CFG_FAIL_CONNECT,   /* refused, unreachable, connect or TLS handshake failed or timed out */
	CFG_FAIL_RESET,     /* closed or reset before the response was complete */
	CFG_FAIL_INVALID,   /* not a valid HTTP response (zdm's 502) */
	CFG_FAIL_5XX,       /* a response with a 5xx status */
	CFG_FAIL_TIMEOUT,   /* timeouts.upstream_response passed (zdm's 504) */
	CFG_FAIL_KINDS
};

#define CFG_FAIL_BIT(kind) (1u << (kind))
/* What counts when circuit_breaker.count is left out: not timeout. */
#define CFG_FAIL_DEFAULT                                                                           \
	(CFG_FAIL_BIT(CFG_FAIL_CONNECT) | CFG_FAIL_BIT(CFG_FAIL_RESET) |                           \
	 CFG_FAIL_BIT(CFG_FAIL_INVALID) | CFG_FAIL_BIT(CFG_FAIL_5XX))

/* The names of enum cfg_fail_kind in the config file ("connect", "5xx"...). */
extern const char *const cfg_fail_kind_names[CFG_FAIL_KINDS];

struct cfg_breaker {
	unsigned failures;            /* default 5; 0 disables the breaker */
	uint32_t count;               /* CFG_FAIL_BIT()s of the kinds that are failures,
	                                 default CFG_FAIL_DEFAULT; 0: none (never opens) */
	uint32_t open_for_ms;         /* default 30s */
	unsigned half_open_probes;    /* default 1 */
};

/* Whether a failure of kind counts for the breaker c: one bit test, cheap
 * enough for the hot path. */
static inline bool cfg_breaker_counts(const struct cfg_breaker *c, enum cfg_fail_kind kind)
{
	return (c->count & CFG_FAIL_BIT(kind)) != 0;
}

/* TLS from zdmd to a pool's servers. */
struct cfg_upstream_tls {
	bool enabled;
	bool verify;                  /* default true */
	char *ca;                     /* NULL = system default store */
	char *sni;                    /* NULL = no SNI */
	char *where;                  /* "FILE:LINE:COL: key 'path'", for later errors */
};

struct cfg_pool {
	char *name;
	struct cfg_server *servers;
	size_t nservers;
	struct cfg_health health;     /* global health_check merged with the pool's */
	struct cfg_breaker breaker;   /* global circuit_breaker merged with the pool's */
	struct cfg_upstream_tls tls;
};

/* A pin matches a header's whole value, or one cookie's value. */
struct cfg_pin {
	char *header;                 /* matched case-insensitively; NULL for a cookie pin */
	char *cookie;                 /* a cookie's name, matched exactly; NULL for a header pin */
	char *value;                  /* matched exactly */
	size_t pool;                  /* index into config.pools */
	size_t member;                /* index into its route's pools */
};

/*
 * A route (SPEC §4.0): what requests it takes and how it splits them. Its
 * pools ("members") are those of its split, in the split's order (the
 * first is the route's baseline), then those only its pins name; a route
 * never sends a request to a pool that is not one of its members.
 */
/* A rollout (SPEC §8): one of the route's pools moved to 100% by steps. */
#define CFG_ROLLOUT_METRICS 9
#define CFG_ROLLOUT_MAX_CHECKS 16
extern const char *const config_rollout_metrics[CFG_ROLLOUT_METRICS]; /* as analysis.h */
extern const char *const config_rollout_actions[3];

struct cfg_rollout_step {
	uint32_t percent;             /* hundredths */
	uint32_t hold_ms;             /* the rollout's hold unless the step has one */
};

struct cfg_rollout_check {
	unsigned metric;              /* index into config_rollout_metrics */
	unsigned action;              /* index into config_rollout_actions */
	double limit;                 /* max (min for availability): a share 0..1, ms, or a ratio */
};

struct cfg_rollout {
	int pool;                     /* the pool rolled out: index into config.pools ... */
	size_t member;                /* ... a member of the route's split, not its baseline */
	struct cfg_rollout_step *steps;
	size_t nsteps;
	uint32_t hold_ms, interval_ms, window_ms, max_inconclusive_ms;
	uint32_t failures;
	uint64_t min_requests;
	struct cfg_rollout_check *checks;
	size_t nchecks;
	char *webhook;                /* NULL: none */
};

struct cfg_route {
	char *name;
	char *where;                  /* "FILE:LINE:COL", for later messages */
	char **hosts;                 /* lower case, no trailing dot; "*.a.b" wildcards */
	size_t nhosts;                /* 0: any host */
	char *path_prefix;            /* NULL: any path */
	size_t path_prefix_len;
	char **methods;               /* NULL: any method */
	size_t nmethods;
	size_t *pools;                /* members: indexes into config.pools */
	uint32_t *split;              /* per member, hundredths; the split's sum to 10000 */
	size_t nsplit;                /* members in the split: the first nsplit */
	size_t npools;                /* all members */
	size_t first;                 /* member 0's index over every route's members */
	struct cfg_pin *pins;
	size_t npins;
	uint32_t upstream_response_ms; /* the route's timeouts, the global ones by default */
	uint32_t tunnel_idle_ms;
	struct cfg_rollout *rollout;  /* NULL: none */
};

struct routetab;

struct cfg_timeouts {
	uint32_t connect_ms;            /* default 2s */
	uint32_t request_header_ms;     /* default 10s */
	uint32_t upstream_response_ms;  /* default 30s */
	uint32_t client_idle_ms;        /* default 60s */
	uint32_t upstream_idle_ms;      /* default 60s */
	uint32_t client_write_ms;       /* default 60s: no byte of a response accepted */
	uint32_t drain_ms;              /* default 30s */
	uint32_t tunnel_idle_ms;        /* default 1h: a tunnel with no byte either way */
};

struct cfg_limits {
	uint32_t max_connections;     /* default 10000 */
	uint64_t max_header_bytes;    /* default 64k */
	uint64_t max_body_bytes;      /* default 0 = unlimited */
};

struct config {
	char *path;                   /* the file it was read from */
	unsigned refs;                /* holders (config_hold); 1 when loaded */

	struct cfg_listen *listen;
	size_t nlisten;

	struct cfg_addr *admin;       /* NULL: no admin listener */

	char *control_socket;         /* NULL: no control socket */
	mode_t control_mode;          /* default 0600 */
	char *control_group;          /* NULL: the process's group */

	char *state_file;             /* NULL: runtime changes are not persisted */
	unsigned workers;             /* 1..256; 0 means "auto" (one per core) */
	char *access_log;             /* NULL when "off"; "-" is stdout */
	bool access_log_json;         /* access_log_format: json (default text) */
	int log_level;                /* 0 error, 1 warn, 2 info (default), 3 debug */
	bool expose_pool_header;

	struct cfg_timeouts timeouts;
	struct cfg_limits limits;

	struct cfg_pool *pools;       /* in file order; pools[0] is the baseline */
	size_t npools;

	/* At least one: without routes: in the file, the route "default" of
	 * the top-level split and pins, over every pool. */
	struct cfg_route *routes;
	size_t nroutes;
	size_t nmembers;              /* members over all routes */
	bool routes_given;            /* routes: was in the file */
	struct routetab *table;       /* the routes' matches, compiled */

	/* What is legal but surely not meant (a route that can never match),
	 * as "FILE:LINE:COL: message" lines, for the daemon to log. */
	char **warnings;
	size_t nwarnings;
};

/* Errors collected while loading; each is one "FILE:LINE:COL: message" line. */
struct config_errors {
	char **msgs;
	size_t n;
};

/* Loads and validates FILE. Returns NULL (and at least one message in *errs)
 * on any error. errs must be zero-initialised; free it with
 * config_errors_free(). */
struct config *config_load(const char *path, struct config_errors *errs);

/* The same for a YAML document held in memory; NAME stands for the file in
 * messages. */
struct config *config_parse(const char *name, const char *yaml, size_t len,
                            struct config_errors *errs);

void config_free(struct config *cfg);

/* Reference counting for configs shared by the snapshots built from them:
 * config_release() frees the config when the last holder lets go. */
struct config *config_hold(struct config *cfg);
void config_release(struct config *cfg);

void config_errors_free(struct config_errors *errs);

/* Index of the pool called NAME, or -1. */
int config_pool_index(const struct config *cfg, const char *name);
/* Index of the route called NAME (LEN bytes), or -1. */
int config_route_index(const struct config *cfg, const char *name, size_t len);
/* Index of config pool POOL among route R's members, or -1. */
int config_route_member(const struct cfg_route *r, size_t pool);

/* "250ms", "2s", "5m", "1h" → milliseconds. Returns 0 on success. */
int config_parse_duration(const char *s, uint32_t *ms);
/* "512", "64k", "1m", "1g" → bytes. Returns 0 on success. */
int config_parse_size(const char *s, uint64_t *bytes);
/* "90", "0.5", "33.33" → hundredths (0..10000). Returns 0 on success. */
int config_parse_percent(const char *s, uint32_t *hundredths);

#endif
