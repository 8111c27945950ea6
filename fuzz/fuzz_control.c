/*
 * fuzz_control.c — the control command line: what a client writes on the
 * control socket, without a running proxy.
 *
 * The input is split into lines at LF as the control socket splits what
 * it reads; each line goes through control_parse() (words, or the error),
 * then through control_run_line() against a runtime built from a fixed
 * config (three pools, four servers, no workers, no state file), so that
 * the commands run for real: set-weight, promote, drain, reload... A fresh
 * runtime per input keeps a run reproducible from its input alone.
 *
 * Whatever the line: no crash, no undefined behaviour, no leak; the words
 * are non-empty, blank-free pieces of the line naming a command; every
 * answer is one line of valid JSON, {"ok":true,...} or {"ok":false,
 * "error":...}, and a line control_parse() refuses is answered with its
 * error; and the runtime stays sound (the split sums to 100%, weights and
 * admin states within bounds, the published snapshot says the same).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "common.h"
#include "control/control.h"
#include "control/runtime.h"
#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "proxy/snapshot.h"

#define MAX_LINE 4096 /* longer lines are refused unread, as by the socket */

static const char *const commands[] = {
#define ZDM_COMMAND(id, name, args, help) name,
#include "control/commands.def"
#undef ZDM_COMMAND
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const char yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
                           "pools:\n"
                           "  old:\n"
                           "    servers:\n"
                           "      - {address: \"127.0.0.1:9001\", name: a, weight: 3}\n"
                           "      - {address: \"127.0.0.1:9002\", name: b}\n"
                           "  new: {servers: [{address: \"127.0.0.1:9101\", name: c}]}\n"
                           "  dark: {servers: [{address: \"127.0.0.1:9201\", name: d, weight: 0}]}\n"
                           "split: {old: 90, new: 10, dark: 0}\n"
                           "rollout: {pool: new, steps: [10, 50, 100]}\n";

static struct config *cfg;
static char dir[64], path[96];

static void cleanup(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config_errors errs = {0};

	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR);
	/* the file `reload` reads again */
	snprintf(dir, sizeof(dir), "%s/zdm-fuzz-control.XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!mkdtemp(dir) || snprintf(path, sizeof(path), "%s/zdm.yaml", dir) < 0) {
		perror("fuzz_control: mkdtemp");
		exit(1);
	}
	FILE *f = fopen(path, "w");
	if (!f || fputs(yaml, f) < 0 || fclose(f) != 0) {
		perror("fuzz_control: the config file");
		exit(1);
	}
	atexit(cleanup);
	cfg = config_parse(path, yaml, sizeof(yaml) - 1, &errs);
	if (!cfg) {
		fprintf(stderr, "fuzz_control: the config does not load: %s\n", errs.msgs[0]);
		exit(1);
	}
	return 0;
}

static void check_parse(const char *line, size_t len)
{
	struct control_cmd cmd;
	char copy[MAX_LINE + 1], err[1024] = "";

	memcpy(copy, line, len);
	copy[len] = '\0';
	if (control_parse(copy, len, &cmd, err, sizeof(err)) < 0) {
		FUZZ_ASSERT(err[0] && cmd.index == -1, "refused without an error");
		return;
	}
	FUZZ_ASSERT(cmd.argc >= 1 && cmd.argc <= CONTROL_MAX_ARGS, "%d words", cmd.argc);
	FUZZ_ASSERT(cmd.index >= 0 && (size_t)cmd.index < NCOMMANDS &&
	                    strcmp(cmd.argv[0], commands[cmd.index]) == 0,
	            "command %d for the word '%s'", cmd.index, cmd.argv[0]);
	for (int i = 0; i < cmd.argc; i++) {
		const char *w = cmd.argv[i];
		size_t n = strlen(w);
		FUZZ_ASSERT(w >= copy && w + n <= copy + len && n > 0, "word %d out of the line", i);
		FUZZ_ASSERT(!strpbrk(w, " \t"), "word %d holds a blank", i);
		FUZZ_ASSERT(i == 0 || w > cmd.argv[i - 1], "word %d before the one before", i);
		FUZZ_ASSERT(memcmp(w, line + (w - copy), n) == 0, "word %d is not from the line", i);
	}
}

static void check_answer(struct runtime *rt, const char *line, size_t len)
{
	struct control_cmd cmd;
	char copy[MAX_LINE + 1], err[1024] = "";
	struct evbuffer *out = evbuffer_new(), *want = evbuffer_new();
	const char *why = NULL;

	memcpy(copy, line, len);
	copy[len] = '\0';
	bool refused = control_parse(copy, len, &cmd, err, sizeof(err)) < 0;
	memcpy(copy, line, len);
	control_run_line(rt, copy, len, out);

	size_t n = evbuffer_get_length(out);
	const char *a = (const char *)evbuffer_pullup(out, -1);
	FUZZ_ASSERT(n >= 2 && a[n - 1] == '\n' && !memchr(a, '\n', n - 1),
	            "the answer is not one line");
	FUZZ_ASSERT(fuzz_json_valid(a, n - 1, &why), "the answer is not JSON (%s): %.*s", why,
	            (int)(n - 1), a);
	FUZZ_ASSERT(strncmp(a, "{\"ok\":true", 10) == 0 || strncmp(a, "{\"ok\":false,\"error\":", 20) == 0,
	            "the answer is neither ok nor an error: %.*s", (int)(n - 1), a);
	if (refused) {
		json_raw(want, "{\"ok\":false,\"error\":");
		json_str(want, err);
		json_raw(want, "}\n");
		size_t wn = evbuffer_get_length(want);
		FUZZ_ASSERT(wn == n && memcmp(evbuffer_pullup(want, -1), a, n) == 0,
		            "a refused line is answered %.*s", (int)(n - 1), a);
	}
	evbuffer_free(want);
	evbuffer_free(out);
}

static void check_runtime(const struct runtime *rt)
{
	const struct config *c = rt->cfg;
	const struct snapshot *s = rt->snap;
	uint32_t sum = 0;
	size_t id = 0;

	FUZZ_ASSERT(s && s->npools == c->npools, "the snapshot has %zu pools", s ? s->npools : 0);
	for (size_t r = 0; r < c->nroutes; r++) {
		const struct cfg_route *cr = &c->routes[r];
		sum = 0;
		for (size_t m = 0; m < cr->npools; m++) {
			uint32_t v = rt->v.split[cr->first + m];
			sum += v;
			FUZZ_ASSERT(s->routes[r].split[m] == v, "route %zu member %zu: split %u published "
			            "as %u", r, m, v, s->routes[r].split[m]);
		}
		FUZZ_ASSERT(sum == 10000, "route %zu: the split sums to %u hundredths", r, sum);
	}
	for (size_t i = 0; i < c->npools; i++) {
		for (size_t j = 0; j < c->pools[i].nservers; j++, id++) {
			FUZZ_ASSERT(rt->v.weight[id] <= 1000, "server %zu weight %u", id, rt->v.weight[id]);
			FUZZ_ASSERT(rt->v.admin[id] <= ADMIN_DISABLED, "server %zu admin %u", id,
			            rt->v.admin[id]);
			FUZZ_ASSERT(s->pools[i].servers[j].weight == rt->v.weight[id],
			            "server %zu weight not published", id);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

	fuzz_input(data, size);
	struct runtime *rt = runtime_new(cfg, NULL, path, 1);
	for (int k = 0; k < 16 && p < end; k++) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((eol ? eol : end) - p);
		if (len <= MAX_LINE) {
			check_parse(p, len);
			check_answer(rt, p, len);
			check_runtime(rt);
		}
		p += len + 1;
	}
	runtime_free(rt);
	return 0;
}
