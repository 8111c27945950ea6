/*
 * control.h — the control socket: a Unix stream socket where zdmctl (or any
 * client) writes one command per line and reads one JSON line back.
 */
#ifndef ZDM_CONTROL_H
#define ZDM_CONTROL_H

struct event_base;
struct runtime;
struct control;

/* Opens the control socket of the runtime's config (none when the config
 * has no control.socket: *out is NULL). A stale socket left by a crashed
 * run is replaced; an existing non-socket file or a socket someone listens
 * on is an error. Returns 0 or -1 (logged). */
int control_open(struct event_base *base, struct runtime *rt, struct control **out);

/* Closes the socket and its clients and removes the socket file. */
void control_close(struct control *ctl);

/* The path it listens on (NULL if none). */
const char *control_path(const struct control *ctl);

#endif
