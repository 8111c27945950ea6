/*
 * listener.h — listening sockets.
 */
#ifndef ZDM_LISTENER_H
#define ZDM_LISTENER_H

#include <stddef.h>

struct cfg_addr;

/* A non-blocking listening TCP socket bound to addr, or -1 with the reason
 * logged. reuseport lets several workers bind the same address. */
int listener_open(const struct cfg_addr *addr, int backlog, int reuseport);

/* n sockets listening on addr, into fds: one for n = 1, else n sharing
 * the port with SO_REUSEPORT (the kernel spreads connections over them),
 * after checking no other socket has it. Returns 0, or -1 (logged) with
 * none left open. */
int listener_open_set(const struct cfg_addr *addr, int backlog, int *fds, size_t n);

#endif
