/*
 * resource.h — what this process may hold: descriptors (RLIMIT_NOFILE, set
 * from the connections the config allows), and telling a failure for lack
 * of a resource of its own from a failure of a peer.
 */
#ifndef ZDM_RESOURCE_H
#define ZDM_RESOURCE_H

#include <stdint.h>

/* Descriptors kept beyond two per client connection: listeners, the
 * control and admin sockets, health checks, logs, splice pipes. */
#define RESOURCE_FD_RESERVE 256

/* A resource of this process that ran out (SPEC §5): the failure is the
 * proxy's, never a server's (zdm_local_errors_total{kind}). */
enum local_error {
	LOCAL_ERR_ACCEPT,        /* a client connection refused: no descriptor */
	LOCAL_ERR_DESCRIPTORS,   /* no descriptor for an upstream connection */
	LOCAL_ERR_MEMORY,        /* the kernel had no buffer or memory for it */
	LOCAL_ERR_PORTS,         /* no local address or port left to connect from */
	LOCAL_ERR_KINDS
};
extern const char *const resource_error_names[LOCAL_ERR_KINDS];

/* The kind of local failure errnum (from socket(2), connect(2), pipe(2))
 * is: LOCAL_ERR_DESCRIPTORS, _MEMORY or _PORTS; -1 when it is none. */
int resource_error_kind(int errnum);

/* What max_connections needs: two descriptors per connection (the client
 * and its upstream) and the reserve. */
uint64_t resource_fds_needed(uint32_t max_connections);

/* Raises the soft RLIMIT_NOFILE to resource_fds_needed(max_connections),
 * and the hard one too where the process may. When the limit stays lower,
 * one warning names both numbers (once per value of max_connections).
 * Returns the soft limit now in force. */
uint64_t resource_raise_nofile(uint32_t max_connections);

/* The soft RLIMIT_NOFILE as last set by resource_raise_nofile() (any
 * thread); 0 before. */
uint64_t resource_nofile(void);

#endif
