/*
 * resource.c — descriptors and other resources of this process.
 *
 * A proxy at its connection limit holds two descriptors per connection. A
 * limit below that is met only under load, as accept(2) or socket(2)
 * failing with EMFILE: zdmd raises the limit at start and on every reload,
 * and says at once when it cannot, rather than when the traffic comes.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"
#include "core/resource.h"

const char *const resource_error_names[LOCAL_ERR_KINDS] = {
	[LOCAL_ERR_ACCEPT] = "accept",
	[LOCAL_ERR_DESCRIPTORS] = "descriptors",
	[LOCAL_ERR_MEMORY] = "memory",
	[LOCAL_ERR_PORTS] = "ports",
};

int resource_error_kind(int errnum)
{
	switch (errnum) {
	case EMFILE:
	case ENFILE:
		return LOCAL_ERR_DESCRIPTORS;
	case ENOBUFS:
	case ENOMEM:
		return LOCAL_ERR_MEMORY;
	case EADDRNOTAVAIL:
		return LOCAL_ERR_PORTS;
	default:
		return -1;
	}
}

/* Written by the control thread, read by the workers. */
static uint64_t nofile_now;

uint64_t resource_nofile(void)
{
	return __atomic_load_n(&nofile_now, __ATOMIC_RELAXED);
}

uint64_t resource_fds_needed(uint32_t max_connections)
{
	return 2 * (uint64_t)max_connections + RESOURCE_FD_RESERVE;
}

uint64_t resource_raise_nofile(uint32_t max_connections)
{
	static uint32_t warned_for;
	uint64_t need = resource_fds_needed(max_connections);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		struct rlimit want = rl;
		want.rlim_cur = need;
		if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
			want.rlim_max = need; /* allowed with CAP_SYS_RESOURCE, up to fs.nr_open */
		if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
			rl = want;
		} else if (rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
				getrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
		if (warned_for != max_connections)
			log_warn("limits.max_connections %" PRIu32 " needs %" PRIu64
			         " descriptors, but RLIMIT_NOFILE allows %" PRIu64
			         ": raise the limit (ulimit -n, LimitNOFILE= in systemd) or lower "
			         "max_connections",
			         max_connections, need, (uint64_t)rl.rlim_cur);
		warned_for = max_connections;
	} else {
		warned_for = 0;
	}
	uint64_t now = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
	__atomic_store_n(&nofile_now, now, __ATOMIC_RELAXED);
	return now;
}
