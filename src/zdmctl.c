/*
 * zdmctl.c — the operator's command line: sends one command to zdmd's
 * control socket and prints the answer.
 *
 * Exit status: 0 when zdmd answered ok, 1 when it refused (the error goes to
 * stderr), 2 when zdmd cannot be reached or the arguments are wrong.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef ZDM_DEFAULT_SOCKET
#define ZDM_DEFAULT_SOCKET "/run/zdm/zdm.sock"
#endif
#define ZDM_VERSION "0.1.0"
#define MAX_LINE 4096

static void usage(FILE *f)
{
	fprintf(f, "usage: zdmctl [-s SOCKET] [--json] COMMAND [ARGS...]\n"
	           "  -s SOCKET  control socket (default: $ZDM_SOCKET, else %s)\n"
	           "  --json     print zdmd's JSON answer as it is\n"
	           "  --version  print the version\n"
	           "commands: status, set-weight POOL PERCENT, set-weight POOL/SERVER WEIGHT,\n"
	           "  promote POOL, rollback, drain|disable|enable POOL/SERVER, reload, help\n",
	           ZDM_DEFAULT_SOCKET);
}

static int connect_socket(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "zdmctl: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "zdmctl: cannot reach zdmd at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Reads one line (the answer) into a growing buffer. */
static char *read_line(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	for (;;) {
		if (len + 1 >= cap) {
			char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				return NULL;
			}
			buf = nb;
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		char *nl = memchr(buf, '\n', len);
		if (nl) {
			*nl = '\0';
			return buf;
		}
	}
	if (len == 0) {
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	return buf;
}

/* The "error" string of a {"ok":false,"error":"..."} answer, unescaped. */
static void print_error(const char *answer)
{
	const char *p = strstr(answer, "\"error\":\"");
	if (!p) {
		fprintf(stderr, "zdmctl: %s\n", answer);
		return;
	}
	fputs("zdmctl: ", stderr);
	for (p += 9; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1])
			p++;
		fputc(*p, stderr);
	}
	fputc('\n', stderr);
}

int main(int argc, char **argv)
{
	const char *sock = getenv("ZDM_SOCKET");
	bool json = false;
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-s") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
			printf("zdmctl %s\n", ZDM_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "zdmctl: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i == argc) {
		usage(stderr);
		return 2;
	}
	if (!sock || !*sock)
		sock = ZDM_DEFAULT_SOCKET;

	char line[MAX_LINE];
	size_t len = 0;
	for (; i < argc; i++) {
		size_t n = strlen(argv[i]);
		if (len + n + 2 > sizeof(line) || strchr(argv[i], '\n')) {
			fprintf(stderr, "zdmctl: command too long or with a newline\n");
			return 2;
		}
		memcpy(line + len, argv[i], n);
		len += n;
		line[len++] = i + 1 < argc ? ' ' : '\n';
	}

	int fd = connect_socket(sock);
	if (fd < 0)
		return 2;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, line + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "zdmctl: cannot send to zdmd: %s\n", strerror(errno));
			close(fd);
			return 2;
		}
		off += (size_t)n;
	}
	char *answer = read_line(fd);
	close(fd);
	if (!answer) {
		fprintf(stderr, "zdmctl: zdmd closed the connection without answering\n");
		return 2;
	}
	bool ok = strncmp(answer, "{\"ok\":true", 10) == 0;
	if (json || ok)
		printf("%s\n", answer);
	if (!ok)
		print_error(answer);
	free(answer);
	return ok ? 0 : 1;
}
