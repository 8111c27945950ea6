/*
 * control.c — the control socket and its commands.
 *
 * The commands are the rows of commands.def; each has a handler ctl_<id>
 * here that checks its arguments, asks the runtime for the change and
 * writes the answer. Every answer is one JSON line: {"ok":true,...} or
 * {"ok":false,"error":"..."}; a connection stays open for more commands.
 */
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "control/control.h"
#include "control/rollouts.h"
#include "control/runtime.h"
#include "control/status.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/mem.h"
#include "proxy/snapshot.h"

#define CTL_MAX_LINE 4096

struct ctl_client {
	struct control *ctl;
	struct bufferevent *bev;
	bool discarding;              /* inside a line over CTL_MAX_LINE */
	struct ctl_client *next, *prev;
};

struct control {
	struct runtime *rt;
	struct evconnlistener *lev;
	char *path;
	struct ctl_client *clients;
};

typedef void ctl_fn(struct control *ctl, struct evbuffer *out, int argc, char **argv);

#define ZDM_COMMAND(id, name, args, help) static ctl_fn ctl_##id;
#include "control/commands.def"
#undef ZDM_COMMAND

static const struct ctl_command {
	const char *name;
	const char *args;
	const char *help;
	ctl_fn *fn;
} commands[] = {
#define ZDM_COMMAND(id, name, args, help) {name, args, help, ctl_##id},
#include "control/commands.def"
#undef ZDM_COMMAND
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void reply_error(struct evbuffer *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void reply_error(struct evbuffer *out, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	evbuffer_drain(out, evbuffer_get_length(out));
	json_raw(out, "{\"ok\":false,\"error\":");
	json_str(out, msg);
	json_raw(out, "}");
}

static bool usage_ok(struct evbuffer *out, const struct ctl_command *c, int argc, int want)
{
	if (argc == want)
		return true;
	reply_error(out, "usage: %s%s%s", c->name, *c->args ? " " : "", c->args);
	return false;
}

static const struct ctl_command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* POOL, or POOL/SERVER when server is wanted. Returns 0, or -1 with the
 * error written. */
static int parse_target(struct control *ctl, struct evbuffer *out, const char *arg, bool server,
                        int *pi, int *sj)
{
	const struct snapshot *s = ctl->rt->snap;
	const char *slash = strchr(arg, '/');
	size_t plen = slash ? (size_t)(slash - arg) : strlen(arg);

	if (server && !slash) {
		reply_error(out, "expected POOL/SERVER, got '%s'", arg);
		return -1;
	}
	if (!server && slash) {
		reply_error(out, "expected a pool name, got '%s'", arg);
		return -1;
	}
	*pi = snapshot_pool_index(s, arg, plen);
	if (*pi < 0) {
		reply_error(out, "unknown pool '%.*s'", (int)plen, arg);
		return -1;
	}
	if (server) {
		*sj = snapshot_server_index(&s->pools[*pi], slash + 1, strlen(slash + 1));
		if (*sj < 0) {
			reply_error(out, "unknown server '%s' in pool '%.*s'", slash + 1, (int)plen,
			            arg);
			return -1;
		}
	}
	return 0;
}

/* "pools":[{"name","weight"}] of route r's split, as status has them. */
static void write_pools(struct control *ctl, struct evbuffer *out, int r)
{
	const struct snapshot *s = ctl->rt->snap;
	const struct snap_route *sr = &s->routes[r];
	json_raw(out, "\"pools\":[");
	for (size_t m = 0; m < sr->cfg->nsplit; m++) {
		json_raw(out, m ? ",{\"name\":" : "{\"name\":");
		json_str(out, s->pools[sr->cfg->pools[m]].cfg->name);
		json_raw(out, ",\"weight\":");
		json_percent(out, sr->split[m]);
		json_raw(out, "}");
	}
	json_raw(out, "]");
}

/* {"ok":true,"route":R,"pools":[...]} after a change of route r. */
static void route_answer(struct control *ctl, struct evbuffer *out, int r)
{
	json_raw(out, "{\"ok\":true,\"route\":");
	json_str(out, ctl->rt->snap->routes[r].cfg->name);
	json_raw(out, ",");
	write_pools(ctl, out, r);
	json_raw(out, "}");
}

/* [ROUTE:]POOL, a pool of a route's split: *ri the route, *mi the pool's
 * member index. Without ROUTE, the one route whose split has POOL. Returns
 * 0, or -1 with the error written. */
static int parse_route_pool(struct control *ctl, struct evbuffer *out, const char *arg, int *ri,
                            int *mi)
{
	const struct snapshot *s = ctl->rt->snap;
	const struct config *cfg = s->cfg;
	const char *pool = arg;
	int route = -1;

	/* ROUTE:POOL where ROUTE names a route (names may hold ':'). */
	for (const char *c = strchr(arg, ':'); c && route < 0; c = strchr(c + 1, ':')) {
		int r = config_route_index(cfg, arg, (size_t)(c - arg));
		if (r >= 0 && snapshot_pool_index(s, c + 1, strlen(c + 1)) >= 0) {
			route = r;
			pool = c + 1;
		}
	}
	int pi = snapshot_pool_index(s, pool, strlen(pool));
	if (pi < 0) {
		const char *c = strchr(arg, ':');
		bool known_route = c && config_route_index(cfg, arg, (size_t)(c - arg)) >= 0;
		if (c && !known_route && snapshot_pool_index(s, c + 1, strlen(c + 1)) >= 0)
			reply_error(out, "unknown route '%.*s'", (int)(c - arg), arg);
		else if (known_route)
			reply_error(out, "unknown pool '%s' (in route '%.*s')", c + 1, (int)(c - arg), arg);
		else
			reply_error(out, "unknown pool '%s'", pool);
		return -1;
	}
	if (route >= 0) {
		int m = config_route_member(&cfg->routes[route], (size_t)pi);
		if (m < 0 || (size_t)m >= cfg->routes[route].nsplit) {
			reply_error(out, "pool '%s' is not in the split of route '%s'", pool,
			            cfg->routes[route].name);
			return -1;
		}
		*ri = route;
		*mi = m;
		return 0;
	}
	char names[512] = "";
	size_t n = 0, len = 0;
	for (size_t r = 0; r < cfg->nroutes; r++) {
		int m = config_route_member(&cfg->routes[r], (size_t)pi);
		if (m < 0 || (size_t)m >= cfg->routes[r].nsplit)
			continue;
		if (n++ == 0) {
			*ri = (int)r;
			*mi = m;
		}
		if (len < sizeof(names))
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s'",
			                        n > 1 ? ", " : "", cfg->routes[r].name);
	}
	if (n == 1)
		return 0;
	if (n == 0)
		reply_error(out, "pool '%s' is in no route's split", pool);
	else
		reply_error(out, "pool '%s' is in the split of routes %s: say which, as ROUTE:%s", pool,
		            names, pool);
	return -1;
}

/* A manual change of route ri's split pauses its rollout. */
static void manual(struct control *ctl, int ri, const char *cmd, const char *arg1,
                   const char *arg2)
{
	char what[192];
	snprintf(what, sizeof(what), "%s %s%s%s by operator", cmd, arg1, arg2 ? " " : "",
	         arg2 ? arg2 : "");
	rollouts_manual(ctl->rt, ri, what);
}

/* rollout CMD [ROUTE]: without ROUTE, the one route with a rollout. */
static void ctl_rollout(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	const struct ctl_command *c = find_command(argv[0]);
	const struct config *cfg = ctl->rt->snap->cfg;
	char err[512];
	int cmd = -1, ri = -1;

	for (int i = 0; argc >= 2 && i < RC_COMMANDS; i++)
		if (strcmp(argv[1], rollouts_cmd_names[i]) == 0)
			cmd = i;
	if (cmd < 0 || argc > 3) {
		reply_error(out, "usage: %s %s", c->name, c->args);
		return;
	}
	if (argc == 3) {
		ri = config_route_index(cfg, argv[2], strlen(argv[2]));
		if (ri < 0) {
			reply_error(out, "unknown route '%s'", argv[2]);
			return;
		}
	} else {
		char names[512] = "";
		size_t n = 0, len = 0;
		for (size_t r = 0; r < cfg->nroutes; r++) {
			if (!rollouts_has(ctl->rt, (int)r))
				continue;
			if (n++ == 0)
				ri = (int)r;
			if (len < sizeof(names))
				len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s'",
				                        n > 1 ? ", " : "", cfg->routes[r].name);
		}
		if (n == 0) {
			reply_error(out, "no route has a rollout section");
			return;
		}
		if (n > 1) {
			reply_error(out, "routes %s have a rollout: say which, as rollout %s ROUTE",
			            names, argv[1]);
			return;
		}
	}
	if (rollouts_command(ctl->rt, ri, (enum rollouts_cmd)cmd, err, sizeof(err)) < 0) {
		reply_error(out, "%s", err);
		return;
	}
	json_raw(out, "{\"ok\":true,\"route\":");
	json_str(out, cfg->routes[ri].name);
	json_raw(out, ",\"rollout\":");
	rollouts_write_status(out, ctl->rt, ri);
	json_raw(out, "}");
}

static void ctl_status(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	if (usage_ok(out, find_command(argv[0]), argc, 1))
		status_write(out, ctl->rt);
}

/* {"ok":true,"pool":P,"server":S,"KEY": — the caller writes the value and
 * the closing brace. */
static void server_answer(struct control *ctl, struct evbuffer *out, int pi, int sj,
                          const char *key)
{
	const struct snap_pool *p = &ctl->rt->snap->pools[pi];
	json_raw(out, "{\"ok\":true,\"pool\":");
	json_str(out, p->cfg->name);
	json_raw(out, ",\"server\":");
	json_str(out, p->servers[sj].cfg->name);
	json_raw(out, ",\"");
	json_raw(out, key);
	json_raw(out, "\":");
}

static void ctl_set_weight(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	char err[512];
	int pi, sj;

	if (!usage_ok(out, find_command(argv[0]), argc, 3))
		return;
	bool server = strchr(argv[1], '/') != NULL;
	if (!server) {
		int ri, mi;
		uint32_t h;
		if (parse_route_pool(ctl, out, argv[1], &ri, &mi) < 0)
			return;
		if (config_parse_percent(argv[2], &h) < 0) {
			reply_error(out, "bad percentage '%s': expected 0 to 100, with at most 2 decimals",
			            argv[2]);
			return;
		}
		if (runtime_set_split(ctl->rt, ri, mi, h, err, sizeof(err)) < 0) {
			reply_error(out, "%s", err);
			return;
		}
		manual(ctl, ri, "set-weight", argv[1], argv[2]);
		route_answer(ctl, out, ri);
		return;
	}
	if (parse_target(ctl, out, argv[1], server, &pi, &sj) < 0)
		return;
	char *end;
	errno = 0;
	unsigned long wv = strtoul(argv[2], &end, 10);
	if (!*argv[2] || *end || errno || wv > 1000 || argv[2][0] == '-' || argv[2][0] == '+') {
		reply_error(out, "bad weight '%s': expected an integer from 0 to 1000", argv[2]);
		return;
	}
	if (runtime_set_weight(ctl->rt, pi, sj, (uint32_t)wv, err, sizeof(err)) < 0) {
		reply_error(out, "%s", err);
		return;
	}
	server_answer(ctl, out, pi, sj, "weight");
	json_u64(out, wv);
	json_raw(out, "}");
}

static void ctl_promote(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	char err[512];
	int ri, mi;
	if (!usage_ok(out, find_command(argv[0]), argc, 2) ||
	    parse_route_pool(ctl, out, argv[1], &ri, &mi) < 0)
		return;
	if (runtime_promote(ctl->rt, ri, mi, err, sizeof(err)) < 0) {
		reply_error(out, "%s", err);
		return;
	}
	manual(ctl, ri, "promote", argv[1], NULL);
	route_answer(ctl, out, ri);
}

/* rollback [ROUTE]: without ROUTE every route, and the answer lists them
 * ("routes"), with the pools of the first as "pools". */
static void ctl_rollback(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	char err[512];
	int ri = -1;
	if (argc != 1 && !usage_ok(out, find_command(argv[0]), argc, 2))
		return;
	if (argc == 2) {
		ri = config_route_index(ctl->rt->snap->cfg, argv[1], strlen(argv[1]));
		if (ri < 0) {
			reply_error(out, "unknown route '%s'", argv[1]);
			return;
		}
	}
	if (runtime_rollback(ctl->rt, ri, err, sizeof(err)) < 0) {
		reply_error(out, "%s", err);
		return;
	}
	rollouts_rolled_back(ctl->rt, ri);
	if (ri >= 0) {
		route_answer(ctl, out, ri);
		return;
	}
	const struct snapshot *s = ctl->rt->snap;
	json_raw(out, "{\"ok\":true,\"routes\":[");
	for (size_t r = 0; r < s->nroutes; r++) {
		json_raw(out, r ? ",{\"name\":" : "{\"name\":");
		json_str(out, s->routes[r].cfg->name);
		json_raw(out, ",");
		write_pools(ctl, out, (int)r);
		json_raw(out, "}");
	}
	json_raw(out, "],");
	write_pools(ctl, out, 0);
	json_raw(out, "}");
}

static void set_admin(struct control *ctl, struct evbuffer *out, int argc, char **argv,
                      enum admin_state st)
{
	char err[512];
	int pi, sj;
	if (!usage_ok(out, find_command(argv[0]), argc, 2) ||
	    parse_target(ctl, out, argv[1], true, &pi, &sj) < 0)
		return;
	if (runtime_set_admin(ctl->rt, pi, sj, st, err, sizeof(err)) < 0) {
		reply_error(out, "%s", err);
		return;
	}
	server_answer(ctl, out, pi, sj, "admin");
	json_str(out, admin_state_names[st]);
	json_raw(out, "}");
}

static void ctl_drain(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	set_admin(ctl, out, argc, argv, ADMIN_DRAINING);
}

static void ctl_disable(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	set_admin(ctl, out, argc, argv, ADMIN_DISABLED);
}

static void ctl_enable(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	set_admin(ctl, out, argc, argv, ADMIN_ENABLED);
}

static void ctl_reload(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	struct config_errors errs = {0};

	if (!usage_ok(out, find_command(argv[0]), argc, 1))
		return;
	if (runtime_reload(ctl->rt, &errs) == 0) {
		log_info("reloaded %s (control socket)", ctl->rt->config_path);
		json_raw(out, "{\"ok\":true,\"reloaded\":true}");
	} else {
		for (size_t i = 0; i < errs.n; i++)
			log_error("%s", errs.msgs[i]);
		log_error("reload of %s failed: keeping the running configuration",
		          ctl->rt->config_path);
		json_raw(out, "{\"ok\":false,\"error\":\"reload failed: the running configuration "
		              "is kept\",\"errors\":[");
		for (size_t i = 0; i < errs.n; i++) {
			if (i)
				json_raw(out, ",");
			json_str(out, errs.msgs[i]);
		}
		json_raw(out, "]}");
	}
	config_errors_free(&errs);
}

static void ctl_help(struct control *ctl, struct evbuffer *out, int argc, char **argv)
{
	(void)ctl;
	if (!usage_ok(out, find_command(argv[0]), argc, 1))
		return;
	json_raw(out, "{\"ok\":true,\"commands\":[");
	for (size_t i = 0; i < NCOMMANDS; i++) {
		json_raw(out, i ? ",{\"name\":" : "{\"name\":");
		json_str(out, commands[i].name);
		json_raw(out, ",\"args\":");
		json_str(out, commands[i].args);
		json_raw(out, ",\"help\":");
		json_str(out, commands[i].help);
		json_raw(out, "}");
	}
	json_raw(out, "]}");
}

static bool valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

int control_parse(char *line, size_t len, struct control_cmd *cmd, char *err, size_t errlen)
{
	char *save = NULL;

	cmd->index = -1;
	cmd->argc = 0;
	if (len && line[len - 1] == '\r')
		line[--len] = '\0';
	if (!valid_utf8((unsigned char *)line, len) || memchr(line, '\0', len)) {
		snprintf(err, errlen, "the command is not valid UTF-8 text");
		return -1;
	}
	for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (cmd->argc == CONTROL_MAX_ARGS) {
			snprintf(err, errlen, "too many arguments");
			return -1;
		}
		cmd->argv[cmd->argc++] = tok;
	}
	if (cmd->argc == 0) {
		snprintf(err, errlen, "empty command; try 'help'");
		return -1;
	}
	const struct ctl_command *c = find_command(cmd->argv[0]);
	if (!c) {
		snprintf(err, errlen, "unknown command '%s'; try 'help'", cmd->argv[0]);
		return -1;
	}
	cmd->index = (int)(c - commands);
	return 0;
}

/* Runs one command line and appends its answer (one JSON line) to out. */
static void run_line(struct control *ctl, char *line, size_t len, struct evbuffer *out)
{
	struct control_cmd cmd;
	char err[1024]; /* as long as reply_error's message */

	if (control_parse(line, len, &cmd, err, sizeof(err)) < 0) {
		reply_error(out, "%s", err);
	} else {
		runtime_lock(ctl->rt);
		commands[cmd.index].fn(ctl, out, cmd.argc, cmd.argv);
		runtime_unlock(ctl->rt);
	}
	evbuffer_add(out, "\n", 1);
}

void control_run_line(struct runtime *rt, char *line, size_t len, struct evbuffer *out)
{
	struct control ctl = {.rt = rt}; /* the handlers need only the runtime */

	run_line(&ctl, line, len, out);
}

static void client_free(struct ctl_client *cl)
{
	struct control *ctl = cl->ctl;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		ctl->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	bufferevent_free(cl->bev);
	free(cl);
}

/* A client that does not read its answers stops being read: its answers
 * wait in at most CTL_MAX_PENDING bytes. Reading resumes when they drain. */
#define CTL_MAX_PENDING (256 * 1024)

static void on_client_read(struct bufferevent *bev, void *arg);

static void on_client_drained(struct bufferevent *bev, void *arg)
{
	if (bufferevent_get_enabled(bev) & EV_READ)
		return;
	bufferevent_enable(bev, EV_READ);
	on_client_read(bev, arg); /* the lines already received */
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
	struct ctl_client *cl = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = evbuffer_new();

	for (;;) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) > CTL_MAX_PENDING) {
			bufferevent_disable(bev, EV_READ);
			break;
		}
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > CTL_MAX_LINE) {
				/* Too long: throw it away up to its end. */
				evbuffer_drain(in, evbuffer_get_length(in));
				cl->discarding = true;
			}
			break;
		}
		size_t len = (size_t)eol.pos;
		if (cl->discarding || len > CTL_MAX_LINE) {
			evbuffer_drain(in, len + 1);
			cl->discarding = false;
			reply_error(out, "command line over %d bytes", CTL_MAX_LINE);
			evbuffer_add(out, "\n", 1);
			bufferevent_write_buffer(bev, out);
			continue;
		}
		char line[CTL_MAX_LINE + 1];
		evbuffer_remove(in, line, len + 1);
		line[len] = '\0';
		struct evbuffer *answer = evbuffer_new();
		run_line(cl->ctl, line, len, answer);
		bufferevent_write_buffer(bev, answer);
		evbuffer_free(answer);
	}
	evbuffer_free(out);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_free(arg);
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct control *ctl = arg;
	(void)lev;
	(void)sa;
	(void)salen;
	struct ctl_client *cl = xcalloc(1, sizeof(*cl));
	cl->ctl = ctl;
	cl->bev = bufferevent_socket_new(evconnlistener_get_base(ctl->lev), fd,
	                                 BEV_OPT_CLOSE_ON_FREE);
	cl->next = ctl->clients;
	if (ctl->clients)
		ctl->clients->prev = cl;
	ctl->clients = cl;
	bufferevent_setcb(cl->bev, on_client_read, on_client_drained, on_client_event, cl);
	bufferevent_setwatermark(cl->bev, EV_WRITE, CTL_MAX_PENDING / 4, 0);
	/* Unread input is bounded too: beyond a line's length it is not read. */
	bufferevent_setwatermark(cl->bev, EV_READ, 0, CTL_MAX_LINE * 4);
	bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
}

/* Makes way for the socket at path: nothing there, or a stale socket that
 * nobody listens on (removed). */
static int clear_path(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : (log_error("control socket %s: %s", path,
		                                        strerror(errno)),
		                              -1);
	if (!S_ISSOCK(st.st_mode)) {
		log_error("control socket %s: the path exists and is not a socket; remove it or "
		          "set control.socket to another path",
		          path);
		return -1;
	}
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		close(fd);
		log_error("control socket %s: another process (another zdmd?) listens there; stop "
		          "it or set control.socket to another path",
		          path);
		return -1;
	}
	if (fd >= 0)
		close(fd);
	log_info("control socket %s: replacing a stale socket", path);
	unlink(path);
	return 0;
}

int control_open(struct event_base *base, struct runtime *rt, struct control **out)
{
	const struct config *cfg = rt->cfg;
	const char *path = cfg->control_socket;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = -1;

	*out = NULL;
	if (!path)
		return 0;
	char *dir = xstrdup(path);
	if (mkdir(dirname(dir), 0755) < 0 && errno != EEXIST)
		log_warn("control socket %s: cannot create its directory: %s", path, strerror(errno));
	free(dir);
	if (clear_path(path) < 0)
		return -1;
	strncpy(sun.sun_path, path, sizeof(sun.sun_path) - 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Created with no access for others, then given its mode: there is
	 * no moment at which the socket is more open than configured. */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0 || chmod(path, cfg->control_mode) < 0)
		goto fail;
	if (cfg->control_group) {
		struct group *g = getgrnam(cfg->control_group);
		if (!g || chown(path, (uid_t)-1, g->gr_gid) < 0) {
			log_error("control socket %s: cannot give it group '%s': %s", path,
			          cfg->control_group, g ? strerror(errno) : "no such group");
			unlink(path);
			close(fd);
			return -1;
		}
	}
	if (listen(fd, 64) < 0)
		goto fail;

	struct control *ctl = xcalloc(1, sizeof(*ctl));
	ctl->rt = rt;
	ctl->path = xstrdup(path);
	ctl->lev = evconnlistener_new(base, on_accept, ctl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!ctl->lev) {
		free(ctl->path);
		free(ctl);
		goto fail;
	}
	*out = ctl;
	return 0;
fail:
	log_error("control socket %s: %s", path, strerror(errno));
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	return -1;
}

void control_close(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_free(ctl->clients);
	evconnlistener_free(ctl->lev);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

const char *control_path(const struct control *ctl)
{
	return ctl ? ctl->path : NULL;
}
