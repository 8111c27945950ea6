/*
 * control.h — the control socket: a Unix stream socket where zdmctl (or any
 * client) writes one command per line and reads one JSON line back.
 */
#ifndef ZDM_CONTROL_H
#define ZDM_CONTROL_H

#include <stddef.h>

struct event_base;
struct evbuffer;
struct runtime;
struct control;

#define CONTROL_MAX_ARGS 8

/* A command line split into its words; argv[0] names a row of commands.def. */
struct control_cmd {
	int index;                    /* the row, in commands.def order */
	int argc;
	char *argv[CONTROL_MAX_ARGS]; /* into the line */
};

/* Opens the control socket of the runtime's config (none when the config
 * has no control.socket: *out is NULL). A stale socket left by a crashed
 * run is replaced; an existing non-socket file or a socket someone listens
 * on is an error. Returns 0 or -1 (logged). */
int control_open(struct event_base *base, struct runtime *rt, struct control **out);

/* Closes the socket and its clients and removes the socket file. */
void control_close(struct control *ctl);

/* The path it listens on (NULL if none). */
const char *control_path(const struct control *ctl);

/* Splits one command line (without its LF; line[len] is '\0') into *cmd,
 * in place: a final CR is removed and words are cut at spaces and tabs. The
 * line must be UTF-8 text naming a command. Returns 0, or -1 with the error
 * the answer gives in err. Only the words are checked, not their values:
 * that takes the running configuration. */
int control_parse(char *line, size_t len, struct control_cmd *cmd, char *err, size_t errlen);

/* Runs one command line (as for control_parse) against rt, as a client of
 * the control socket would, and appends the answer, one JSON line, to out. */
void control_run_line(struct runtime *rt, char *line, size_t len, struct evbuffer *out);

#endif
