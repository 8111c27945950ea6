/*
 * pipe.c — pooled splice pipes (see pipe.h).
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/resource.h"
#include "proxy/pipe.h"
#include "proxy/worker-t.h"

/* A bigger pipe moves a large body in fewer calls. 256 KiB each keeps many
 * concurrent transfers within the per-user pipe limits (a 1 MiB pipe did
 * not measurably lower the CPU per 1 MiB response). */
#define SPLICE_PIPE_SIZE (256 * 1024)
#define MAX_FREE_PIPES 64

/* A pipe costs two descriptors, which connections need more: a worker
 * makes one only while its share of RLIMIT_NOFILE leaves two for each of
 * its connections (client and upstream), its pipes and the reserve. Past
 * that, bodies go through user space; many slow readers of large
 * responses then cannot run the process out of descriptors. */
static bool pipe_room(const struct worker *w)
{
	uint64_t limit = resource_nofile();
	if (!limit)
		return true;
	uint64_t share = limit / (w->nworkers ? w->nworkers : 1);
	uint64_t reserve = RESOURCE_FD_RESERVE / (w->nworkers ? w->nworkers : 1);
	return 2 * ((uint64_t)w->npipes + 1) + 2 * w->nsessions + reserve <= share;
}

struct splice_pipe *splice_pipe_get(struct worker *w)
{
	struct splice_pipe *p = w->free_pipes;
	if (p) {
		w->free_pipes = p->next;
		w->nfree_pipes--;
		return p;
	}
	if (!pipe_room(w))
		return NULL;
	int fd[2];
	if (pipe2(fd, O_NONBLOCK | O_CLOEXEC) < 0)
		return NULL;
	/* The default capacity serves when the system refuses. */
	fcntl(fd[1], F_SETPIPE_SZ, SPLICE_PIPE_SIZE);
	int size = fcntl(fd[1], F_GETPIPE_SZ);
	p = xcalloc(1, sizeof(*p));
	p->fd[0] = fd[0];
	p->fd[1] = fd[1];
	p->size = size > 0 ? (uint32_t)size : 65536;
	w->npipes++;
	return p;
}

static void pipe_close(struct worker *w, struct splice_pipe *p)
{
	w->npipes--;
	close(p->fd[0]);
	close(p->fd[1]);
	free(p);
}

void splice_pipe_put(struct worker *w, struct splice_pipe *p, bool empty)
{
	if (!empty || w->nfree_pipes >= MAX_FREE_PIPES) {
		pipe_close(w, p);
		return;
	}
	p->next = w->free_pipes;
	w->free_pipes = p;
	w->nfree_pipes++;
}

ssize_t splice_pipe_fill(struct splice_pipe *p, int fd, uint32_t *in_pipe, uint64_t *left)
{
	size_t want = p->size - *in_pipe;
	if (want > *left)
		want = (size_t)*left;
	ssize_t n = splice(fd, NULL, p->fd[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		*in_pipe += (uint32_t)n;
		*left -= (uint64_t)n;
	}
	return n;
}

ssize_t splice_pipe_drain(struct splice_pipe *p, int fd, uint32_t *in_pipe)
{
	ssize_t n = splice(p->fd[0], NULL, fd, NULL, *in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0)
		*in_pipe -= (uint32_t)n;
	return n;
}

void splice_pipe_free_all(struct worker *w)
{
	while (w->free_pipes) {
		struct splice_pipe *p = w->free_pipes;
		w->free_pipes = p->next;
		pipe_close(w, p);
	}
	w->nfree_pipes = 0;
}
