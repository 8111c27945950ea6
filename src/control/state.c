/*
 * state.c — the state file: writing it atomically, reading it back.
 *
 * Format:
 *   {"version":2,
 *    "routes":{"default":{"split":{"old":{"weight":75,"config_weight":90},
 *                                  "new":{"weight":25,"config_weight":10}},
 *                         "rollout":{"state":"running","pool":"new","step":2,"percent":25,
 *                                    "reason":""}}},
 *    "pools":{"old":{"servers":{"a":{"weight":1,"config_weight":1,"admin":"enabled"}}}}}
 * Version 1 (before routes) had the weights in the pools; they are read as
 * those of the route "default".
 * JSON as written here is also YAML, so libyaml (already a dependency for
 * the config) reads it back.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <yaml.h>

#include "control/runtime.h"
#include "control/state.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "rollout/rollout.h"

int state_save(const char *path, const struct config *cfg, const struct runtime_values *v,
               char *err, size_t errlen)
{
	struct evbuffer *out = evbuffer_new();
	size_t id = 0;

	json_raw(out, "{\"version\":2,\"routes\":{");
	for (size_t r = 0; r < cfg->nroutes; r++) {
		const struct cfg_route *rt = &cfg->routes[r];
		if (r)
			json_raw(out, ",");
		json_str(out, rt->name);
		json_raw(out, ":{\"split\":{");
		for (size_t m = 0; m < rt->nsplit; m++) {
			if (m)
				json_raw(out, ",");
			json_str(out, cfg->pools[rt->pools[m]].name);
			json_raw(out, ":{\"weight\":");
			json_percent(out, v->split[rt->first + m]);
			json_raw(out, ",\"config_weight\":");
			json_percent(out, rt->split[m]);
			json_raw(out, "}");
		}
		json_raw(out, "}");
		const struct rollout_value *ro = &v->ro[r];
		if (ro->state != RS_IDLE && ro->pool >= 0) {
			json_raw(out, ",\"rollout\":{\"state\":");
			json_str(out, rollout_state_names[ro->state]);
			json_raw(out, ",\"pool\":");
			json_str(out, cfg->pools[ro->pool].name);
			json_raw(out, ",\"step\":");
			json_u64(out, ro->step + 1);
			if (ro->percent) {
				json_raw(out, ",\"percent\":");
				json_percent(out, ro->percent);
			}
			json_raw(out, ",\"reason\":");
			json_str(out, ro->reason);
			json_raw(out, "}");
		}
		json_raw(out, "}");
	}
	json_raw(out, "},\"pools\":{");
	for (size_t i = 0; i < cfg->npools; i++) {
		const struct cfg_pool *p = &cfg->pools[i];
		if (i)
			json_raw(out, ",");
		json_str(out, p->name);
		json_raw(out, ":{\"servers\":{");
		for (size_t j = 0; j < p->nservers; j++, id++) {
			if (j)
				json_raw(out, ",");
			json_str(out, p->servers[j].name);
			json_raw(out, ":{\"weight\":");
			json_u64(out, v->weight[id]);
			json_raw(out, ",\"config_weight\":");
			json_u64(out, p->servers[j].weight);
			json_raw(out, ",\"admin\":");
			json_str(out, admin_state_names[v->admin[id]]);
			json_raw(out, "}");
		}
		json_raw(out, "}}");
	}
	json_raw(out, "}}\n");

	/* temp file beside the target, fsync, rename, fsync the directory */
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char *dircopy = xstrdup(path);
	int rc = -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot write the state file %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (evbuffer_get_length(out)) {
		int n = evbuffer_write(out, fd);
		if (n <= 0) {
			snprintf(err, errlen, "cannot write the state file %s: %s", tmp,
			         strerror(errno));
			close(fd);
			unlink(tmp);
			goto out;
		}
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		snprintf(err, errlen, "cannot write the state file %s: %s", tmp, strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot replace the state file %s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	free(dircopy);
	free(tmp);
	evbuffer_free(out);
	return rc;
}

/* --- reading ------------------------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key);
		if (k && k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0)
			return yaml_document_get_node(doc, pr->value);
	}
	return NULL;
}

static const char *scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int get_uint(yaml_node_t *n, uint32_t max, uint32_t *out)
{
	const char *s = scalar(n);
	char *end;
	if (!s || !*s)
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || v > max || *s == '-')
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int get_percent(yaml_node_t *n, uint32_t *out)
{
	const char *s = scalar(n);
	return s ? config_parse_percent(s, out) : -1;
}

/* One pool's entry of a route's split: {"weight","config_weight"}. Sets
 * *same false when the config's percentage changed since. */
static int read_share(yaml_document_t *doc, yaml_node_t *pv, const char *route, const char *pname,
                      uint32_t config, uint32_t *w, bool *same, char *why, size_t len)
{
	uint32_t cw;
	if (get_percent(map_get(doc, pv, "weight"), w) < 0 ||
	    get_percent(map_get(doc, pv, "config_weight"), &cw) < 0) {
		snprintf(why, len, "route '%s', pool '%s': bad \"weight\" or \"config_weight\"",
		         route, pname);
		return -1;
	}
	if (cw != config)
		*same = false;
	return 0;
}

/* Route r's split from SPLIT, a mapping of pool names to shares (version
 * 2) or the version-1 pools mapping, into nv when it is whole and the
 * config's split is the one it was saved with. */
static int read_split(yaml_document_t *doc, yaml_node_t *split, const struct config *cfg,
                      const struct cfg_route *r, struct runtime_values *nv, char *why, size_t len)
{
	bool same = true;
	size_t seen = 0;
	uint32_t vals[r->nsplit ? r->nsplit : 1];
	uint32_t sum = 0;

	if (!split || split->type != YAML_MAPPING_NODE) {
		snprintf(why, len, "route '%s': missing \"split\" object", r->name);
		return -1;
	}
	memcpy(vals, nv->split + r->first, r->nsplit * sizeof(vals[0]));
	for (yaml_node_pair_t *pr = split->data.mapping.pairs.start;
	     pr < split->data.mapping.pairs.top; pr++) {
		const char *pname = scalar(yaml_document_get_node(doc, pr->key));
		yaml_node_t *pv = yaml_document_get_node(doc, pr->value);
		int pi = pname ? config_pool_index(cfg, pname) : -1;
		if (pi < 0) {
			snprintf(why, len, "unknown pool '%s'", pname ? pname : "?");
			return -1;
		}
		int m = config_route_member(r, (size_t)pi);
		uint32_t w;
		if (read_share(doc, pv, r->name, pname, m >= 0 && (size_t)m < r->nsplit ?
		               r->split[m] : UINT32_MAX, &w, &same, why, len) < 0)
			return -1;
		if (m < 0 || (size_t)m >= r->nsplit) {
			same = false; /* the route no longer splits over it */
			continue;
		}
		vals[m] = w;
		sum += w;
		seen++;
	}
	if (seen != r->nsplit)
		same = false;
	if (same && sum != 10000) {
		snprintf(why, len, "route '%s': the weights do not sum to 100", r->name);
		return -1;
	}
	if (same)
		memcpy(nv->split + r->first, vals, r->nsplit * sizeof(vals[0]));
	return 0;
}

/* A route's rollout, {"state","pool","step","percent","reason"} (percent
 * that of the step, optional), into *ro: its
 * pool by index (-1 when the config has no such pool: rollouts.c then
 * treats it as a rollout whose section changed). */
static int read_rollout(yaml_document_t *doc, yaml_node_t *n, const struct config *cfg,
                        const char *route, struct rollout_value *ro, char *why, size_t len)
{
	if (!n)
		return 0;
	const char *state = scalar(map_get(doc, n, "state"));
	const char *pool = scalar(map_get(doc, n, "pool"));
	const char *reason = scalar(map_get(doc, n, "reason"));
	uint32_t step;
	int st = -1;
	for (int i = RS_RUNNING; state && i <= RS_ROLLED_BACK; i++)
		if (strcmp(state, rollout_state_names[i]) == 0)
			st = i;
	if (st < 0 || !pool || !reason || get_uint(map_get(doc, n, "step"), 1000, &step) < 0 ||
	    step == 0) {
		snprintf(why, len, "route '%s': bad \"rollout\" (\"state\", \"pool\", \"step\" "
		         "or \"reason\")", route);
		return -1;
	}
	uint32_t pct = 0;
	yaml_node_t *pn = map_get(doc, n, "percent");
	if (pn && (get_percent(pn, &pct) < 0 || pct == 0)) {
		snprintf(why, len, "route '%s': bad \"rollout\" \"percent\"", route);
		return -1;
	}
	ro->state = (uint8_t)st;
	ro->step = step - 1;
	ro->percent = pct;
	ro->pool = config_pool_index(cfg, pool);
	snprintf(ro->reason, sizeof(ro->reason), "%s", reason);
	return 0;
}

/* The servers' weights and admin states of pool pi. */
static int read_servers(yaml_document_t *doc, yaml_node_t *servers, const struct config *cfg,
                        int pi, struct runtime_values *nv, char *why, size_t len)
{
	const struct cfg_pool *p = &cfg->pools[pi];
	const char *pname = p->name;

	if (servers && servers->type != YAML_MAPPING_NODE) {
		snprintf(why, len, "pool '%s': \"servers\" is not an object", pname);
		return -1;
	}
	if (!servers)
		return 0;
	size_t base = 0;
	for (int k = 0; k < pi; k++)
		base += cfg->pools[k].nservers;
	for (yaml_node_pair_t *sp = servers->data.mapping.pairs.start;
	     sp < servers->data.mapping.pairs.top; sp++) {
		const char *sname = scalar(yaml_document_get_node(doc, sp->key));
		yaml_node_t *sv = yaml_document_get_node(doc, sp->value);
		size_t j = 0;
		while (sname && j < p->nservers && strcmp(p->servers[j].name, sname) != 0)
			j++;
		if (!sname || j == p->nservers) {
			snprintf(why, len, "unknown server '%s/%s'", pname, sname ? sname : "?");
			return -1;
		}
		uint32_t sw, scw;
		const char *admin = scalar(map_get(doc, sv, "admin"));
		int a = -1;
		for (int x = ADMIN_ENABLED; admin && x <= ADMIN_DISABLED; x++)
			if (strcmp(admin, admin_state_names[x]) == 0)
				a = x;
		if (get_uint(map_get(doc, sv, "weight"), 1000, &sw) < 0 ||
		    get_uint(map_get(doc, sv, "config_weight"), 1000, &scw) < 0 || a < 0) {
			snprintf(why, len, "server '%s/%s': bad \"weight\", \"config_weight\" or "
			                   "\"admin\"",
			         pname, sname);
			return -1;
		}
		/* The config's value wins where it changed since. */
		if (scw == p->servers[j].weight)
			nv->weight[base + j] = sw;
		nv->admin[base + j] = (uint8_t)a;
	}
	return 0;
}

/* Checks the whole document against cfg and fills nv; any problem is
 * described in why. A route the config no longer has is passed over, and
 * its name added to gone (comma-separated, cut to glen). */
static int read_doc(yaml_document_t *doc, const struct config *cfg, struct runtime_values *nv,
                    char *gone, size_t glen,
                    char *why, size_t len)
{
	yaml_node_t *root = yaml_document_get_root_node(doc);
	uint32_t version;
	if (!root || root->type != YAML_MAPPING_NODE) {
		snprintf(why, len, "not a JSON object");
		return -1;
	}
	if (get_uint(map_get(doc, root, "version"), 1000, &version) < 0 ||
	    (version != 1 && version != 2)) {
		snprintf(why, len, "missing or unknown \"version\"");
		return -1;
	}
	yaml_node_t *pools = map_get(doc, root, "pools");
	if (!pools || pools->type != YAML_MAPPING_NODE) {
		snprintf(why, len, "missing \"pools\" object");
		return -1;
	}
	for (yaml_node_pair_t *pr = pools->data.mapping.pairs.start;
	     pr < pools->data.mapping.pairs.top; pr++) {
		const char *pname = scalar(yaml_document_get_node(doc, pr->key));
		yaml_node_t *pv = yaml_document_get_node(doc, pr->value);
		int pi = pname ? config_pool_index(cfg, pname) : -1;
		if (pi < 0) {
			snprintf(why, len, "unknown pool '%s'", pname ? pname : "?");
			return -1;
		}
		if (read_servers(doc, map_get(doc, pv, "servers"), cfg, pi, nv, why, len) < 0)
			return -1;
	}
	if (version == 1) {
		int r = config_route_index(cfg, "default", 7);
		return r < 0 ? 0 : read_split(doc, pools, cfg, &cfg->routes[r], nv, why, len);
	}
	yaml_node_t *routes = map_get(doc, root, "routes");
	if (!routes || routes->type != YAML_MAPPING_NODE) {
		snprintf(why, len, "missing \"routes\" object");
		return -1;
	}
	for (yaml_node_pair_t *pr = routes->data.mapping.pairs.start;
	     pr < routes->data.mapping.pairs.top; pr++) {
		const char *rname = scalar(yaml_document_get_node(doc, pr->key));
		int r = rname ? config_route_index(cfg, rname, strlen(rname)) : -1;
		if (r < 0) {
			size_t at = strlen(gone);
			if (at + 1 < glen)
				snprintf(gone + at, glen - at, "%s'%s'", at ? ", " : "",
				         rname ? rname : "?");
			continue;
		}
		yaml_node_t *rv = yaml_document_get_node(doc, pr->value);
		if (read_split(doc, map_get(doc, rv, "split"), cfg, &cfg->routes[r], nv, why, len) < 0 ||
		    read_rollout(doc, map_get(doc, rv, "rollout"), cfg, rname, &nv->ro[r], why, len) < 0)
			return -1;
	}
	return 0;
}

int state_load(const char *path, const struct config *cfg, struct runtime_values *v)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			return 1;
		log_warn("state file %s cannot be read (%s): starting with the configuration's values",
		         path, strerror(errno));
		return -1;
	}

	yaml_parser_t parser;
	yaml_document_t doc;
	char why[256] = "", gone[256] = "";
	int rc = -1;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(why, sizeof(why), "not valid JSON (%s at line %zu)",
		         parser.problem ? parser.problem : "syntax error",
		         parser.problem_mark.line + 1);
	} else {
		/* Everything is checked into a copy; v changes only if all of
		 * the file is valid. */
		size_t ns = 0;
		for (size_t i = 0; i < cfg->npools; i++)
			ns += cfg->pools[i].nservers;
		size_t nr = cfg->nroutes ? cfg->nroutes : 1;
		struct runtime_values nv = {
		        .split = xcalloc(cfg->nmembers ? cfg->nmembers : 1, sizeof(*nv.split)),
		        .weight = xcalloc(ns ? ns : 1, sizeof(*nv.weight)),
		        .admin = xcalloc(ns ? ns : 1, sizeof(*nv.admin)),
		        .ro = xcalloc(nr, sizeof(*nv.ro)),
		};
		memcpy(nv.split, v->split, cfg->nmembers * sizeof(*nv.split));
		memcpy(nv.weight, v->weight, ns * sizeof(*nv.weight));
		memcpy(nv.admin, v->admin, ns * sizeof(*nv.admin));
		memcpy(nv.ro, v->ro, cfg->nroutes * sizeof(*nv.ro));
		if (read_doc(&doc, cfg, &nv, gone, sizeof(gone), why, sizeof(why)) == 0) {
			memcpy(v->split, nv.split, cfg->nmembers * sizeof(*nv.split));
			memcpy(v->weight, nv.weight, ns * sizeof(*nv.weight));
			memcpy(v->admin, nv.admin, ns * sizeof(*nv.admin));
			memcpy(v->ro, nv.ro, cfg->nroutes * sizeof(*nv.ro));
			rc = 0;
		}
		free(nv.split);
		free(nv.weight);
		free(nv.admin);
		free(nv.ro);
		yaml_document_delete(&doc);
	}
	yaml_parser_delete(&parser);
	fclose(f);
	if (rc < 0)
		log_warn("state file %s ignored: %s; starting with the configuration's values", path,
		         why);
	else if (gone[0])
		log_warn("state file %s: route %s not in the configuration: its saved split is left out",
		         path, gone);
	return rc;
}
