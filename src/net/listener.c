/*
 * listener.c — opening listening sockets.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "net/listener.h"

int listener_open(const struct cfg_addr *addr, int backlog, int reuseport)
{
	int one = 1;
	int fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("listen %s: cannot create a socket: %s", addr->text, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (addr->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
		log_error("listen %s: cannot bind: %s%s", addr->text, strerror(errno),
		          errno == EADDRINUSE ? " (another process listens there)" : "");
		goto fail;
	}
	if (listen(fd, backlog) < 0) {
		log_error("listen %s: %s", addr->text, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int listener_open_set(const struct cfg_addr *addr, int backlog, int *fds, size_t n)
{
	if (n == 1) {
		fds[0] = listener_open(addr, backlog, 0);
		return fds[0] < 0 ? -1 : 0;
	}
	/* SO_REUSEPORT would let these sockets share the port with another
	 * process's: a plain bind first tells whether someone has it. */
	int probe = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (probe >= 0) {
		int one = 1;
		setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (addr->ss.ss_family == AF_INET6)
			setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		int r = bind(probe, (const struct sockaddr *)&addr->ss, addr->len);
		int err = errno;
		close(probe);
		if (r < 0) {
			log_error("listen %s: cannot bind: %s%s", addr->text, strerror(err),
			          err == EADDRINUSE ? " (another process listens there)" : "");
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		fds[i] = listener_open(addr, backlog, 1);
		if (fds[i] < 0) {
			for (size_t j = 0; j < i; j++) {
				close(fds[j]);
				fds[j] = -1;
			}
			return -1;
		}
	}
	return 0;
}
