/*
 * listener.h — listening sockets.
 */
#ifndef ZDM_LISTENER_H
#define ZDM_LISTENER_H

struct cfg_addr;

/* A non-blocking listening TCP socket bound to addr, or -1 with the reason
 * logged. reuseport lets several workers bind the same address. */
int listener_open(const struct cfg_addr *addr, int backlog, int reuseport);

#endif
