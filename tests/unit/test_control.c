/*
 * test_control.c — the control command line (src/control.c): how a line is
 * split into words and refused before any command runs (control_parse), and
 * commands run against a runtime with no socket and no worker
 * (control_run_line).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "control/control.h"
#include "control/runtime.h"
#include "core/config.h"
#include "core/log.h"
#include "tap.h"

/* Parses text (copied: the parse cuts it in place); returns what
 * control_parse returned, with the words or the error. */
static int parse(const char *text, size_t len, struct control_cmd *cmd, char *line, char *err)
{
	memcpy(line, text, len);
	line[len] = '\0';
	return control_parse(line, len, cmd, err, 256);
}

static void check_refused(const char *text, size_t len, const char *want, const char *what)
{
	struct control_cmd cmd;
	char line[256], err[256] = "";

	int rc = parse(text, len, &cmd, line, err);
	if (!CHECK(rc == -1 && strcmp(err, want) == 0, what))
		printf("#   rc %d, error \"%s\", want \"%s\"\n", rc, err, want);
}

static void test_parse(void)
{
	struct control_cmd cmd;
	char line[256], err[256];

	int rc = parse("set-weight \tnew  25\r", 20, &cmd, line, err);
	CHECK(rc == 0 && cmd.argc == 3 && strcmp(cmd.argv[0], "set-weight") == 0 &&
	              strcmp(cmd.argv[1], "new") == 0 && strcmp(cmd.argv[2], "25") == 0,
	      "parse: words cut at spaces and tabs, the final CR removed");
	CHECK_EQ_INT(cmd.index, 1, "parse: set-weight is the second row of commands.def");
	rc = parse("  status", 8, &cmd, line, err);
	CHECK(rc == 0 && cmd.argc == 1 && cmd.index == 0, "parse: leading blanks are no word");
	rc = parse("status a b c d e f g", 20, &cmd, line, err);
	CHECK(rc == 0 && cmd.argc == 8, "parse: eight words are taken (the handler judges them)");

	check_refused("status a b c d e f g h", 22, "too many arguments", "parse: nine words");
	check_refused("", 0, "empty command; try 'help'", "parse: an empty line");
	check_refused(" \t\r", 3, "empty command; try 'help'", "parse: blanks only");
	check_refused("frobnicate x", 12, "unknown command 'frobnicate'; try 'help'",
	              "parse: an unknown command is named");
	check_refused("status\xff", 7, "the command is not valid UTF-8 text", "parse: invalid UTF-8");
	check_refused("st\0atus", 7, "the command is not valid UTF-8 text", "parse: a NUL byte");
	check_refused("status\r\r", 8, "unknown command 'status\r'; try 'help'",
	              "parse: only one final CR is removed");
	check_refused("STATUS", 6, "unknown command 'STATUS'; try 'help'",
	              "parse: command names are lowercase");
}

static const char yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
                           "pools:\n"
                           "  old: {servers: [{address: \"127.0.0.1:9001\", name: a}]}\n"
                           "  new: {servers: [{address: \"127.0.0.1:9101\", name: c}]}\n"
                           "split: {old: 90, new: 10}\n";

/* The answer to one line, as a string (static: one at a time). */
static const char *run(struct runtime *rt, const char *text)
{
	static char answer[4096];
	char line[256];
	struct evbuffer *out = evbuffer_new();
	size_t len = strlen(text);

	memcpy(line, text, len + 1);
	control_run_line(rt, line, len, out);
	size_t n = evbuffer_get_length(out);
	if (n >= sizeof(answer))
		n = sizeof(answer) - 1;
	evbuffer_remove(out, answer, n);
	answer[n] = '\0';
	evbuffer_free(out);
	return answer;
}

static void test_run(void)
{
	struct config_errors errs = {0};
	struct config *cfg = config_parse("ctl.yaml", yaml, strlen(yaml), &errs);

	if (!cfg) {
		printf("Bail out! test config does not load\n");
		exit(1);
	}
	struct runtime *rt = runtime_new(cfg, NULL, "ctl.yaml", 1);
	config_release(cfg);

	CHECK_EQ_STR(run(rt, "set-weight new 25"),
	             "{\"ok\":true,\"route\":\"default\",\"pools\":[{\"name\":\"old\",\"weight\":75},"
	             "{\"name\":\"new\",\"weight\":25}]}\n",
	             "run: set-weight answers with the new split");
	CHECK_EQ_INT(rt->v.split[1], 2500, "run: the runtime holds it");
	CHECK_EQ_STR(run(rt, "set-weight nwe 25"), "{\"ok\":false,\"error\":\"unknown pool 'nwe'\"}\n",
	             "run: an unknown pool is named");
	CHECK_EQ_STR(run(rt, "drain old/a extra"),
	             "{\"ok\":false,\"error\":\"usage: drain POOL/SERVER\"}\n",
	             "run: a wrong number of words gives the usage");
	CHECK_EQ_STR(run(rt, "nope"), "{\"ok\":false,\"error\":\"unknown command 'nope'; try 'help'\"}\n",
	             "run: a line control_parse refuses is answered with its error");
	CHECK_EQ_STR(run(rt, "rollback"),
	             "{\"ok\":true,\"routes\":[{\"name\":\"default\",\"pools\":[{\"name\":\"old\","
	             "\"weight\":100},{\"name\":\"new\",\"weight\":0}]}],"
	             "\"pools\":[{\"name\":\"old\",\"weight\":100},"
	             "{\"name\":\"new\",\"weight\":0}]}\n",
	             "run: rollback");
	runtime_free(rt);
}

int main(void)
{
	log_set_level(LOG_ERROR);
	test_parse();
	test_run();
	return tap_done();
}
