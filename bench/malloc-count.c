/*
 * malloc-count: an LD_PRELOAD library that counts calls to the C library's
 * allocator, for bench/run.sh (extra mode, "allocs").
 *
 *   cc -shared -fPIC -O2 -o malloc-count.so bench/malloc-count.c -ldl
 *   MALLOC_COUNT_FILE=/tmp/counts LD_PRELOAD=./malloc-count.so program ...
 *
 * The counters live in MALLOC_COUNT_FILE, a file of 4096 bytes mapped shared:
 * they can be read at any time while the program runs (no signal needed, so
 * no conflict with the signals the program handles itself), and processes
 * forked after start (NGINX's workers) add to the same counters. The file
 * holds little-endian uint64 values in this order:
 *
 *   magic ("MALLOCNT"), malloc, calloc, realloc, free, memalign, bytes
 *
 * memalign counts posix_memalign, aligned_alloc, memalign, valloc and pvalloc;
 * realloc also counts reallocarray; free counts calls with a non-NULL pointer
 * only; bytes is the sum of the sizes requested from every allocating call.
 * Without MALLOC_COUNT_FILE the library counts in private memory only.
 *
 * dlsym() may allocate (calloc) before the real functions are known; those
 * requests are served from a small static buffer, and free() ignores
 * pointers into it.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { C_MAGIC, C_MALLOC, C_CALLOC, C_REALLOC, C_FREE, C_MEMALIGN, C_BYTES, C_N };

static uint64_t private_counters[C_N];
static uint64_t *counters = private_counters;

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void *(*real_reallocarray)(void *, size_t, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);
static void *(*real_valloc)(size_t);
static void *(*real_pvalloc)(size_t);

/* Bootstrap buffer for allocations made while dlsym() runs. */
static char boot_buf[16384] __attribute__((aligned(16)));
static size_t boot_used;
static int resolving;

static int in_boot(const void *p)
{
	return (const char *)p >= boot_buf && (const char *)p < boot_buf + sizeof boot_buf;
}

static void *boot_alloc(size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (boot_used + n > sizeof boot_buf)
		return NULL;
	void *p = boot_buf + boot_used;
	boot_used += n;
	return p; /* static storage: already zero */
}

static void count(int which, uint64_t bytes)
{
	__atomic_fetch_add(&counters[which], 1, __ATOMIC_RELAXED);
	if (bytes)
		__atomic_fetch_add(&counters[C_BYTES], bytes, __ATOMIC_RELAXED);
}

static void resolve(void)
{
	if (real_malloc || resolving)
		return;
	resolving = 1;
	real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
	real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
	real_reallocarray = (void *(*)(void *, size_t, size_t))dlsym(RTLD_NEXT, "reallocarray");
	real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
	real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
	real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
	real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
	real_valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
	real_pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
	real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
	resolving = 0;
}

__attribute__((constructor)) static void malloc_count_init(void)
{
	resolve();
	const char *path = getenv("MALLOC_COUNT_FILE");
	if (!path || !*path)
		return;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (ftruncate(fd, 4096) == 0) {
		void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (m != MAP_FAILED) {
			uint64_t *c = m;
			if (memcmp(&c[C_MAGIC], "MALLOCNT", 8) != 0) {
				memset(c, 0, C_N * sizeof *c);
				memcpy(&c[C_MAGIC], "MALLOCNT", 8);
			}
			counters = c;
		}
	}
	close(fd);
}

void *malloc(size_t n)
{
	if (!real_malloc) {
		resolve();
		if (!real_malloc)
			return boot_alloc(n);
	}
	count(C_MALLOC, n);
	return real_malloc(n);
}

void *calloc(size_t n, size_t size)
{
	if (!real_calloc) {
		resolve();
		if (!real_calloc) {
			if (size && n > SIZE_MAX / size)
				return NULL;
			return boot_alloc(n * size);
		}
	}
	count(C_CALLOC, (uint64_t)n * size);
	return real_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
	if (in_boot(p)) {
		/* Move a bootstrap block to the real heap; its old size is unknown,
		 * so copy what fits (the buffer ends where boot_used ends). */
		void *q = malloc(n);
		if (q) {
			size_t avail = (size_t)(boot_buf + boot_used - (char *)p);
			memcpy(q, p, avail < n ? avail : n);
		}
		return q;
	}
	if (!real_realloc) {
		resolve();
		if (!real_realloc)
			return NULL;
	}
	count(C_REALLOC, n);
	return real_realloc(p, n);
}

void *reallocarray(void *p, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	if (in_boot(p) || !real_reallocarray)
		return realloc(p, n * size);
	count(C_REALLOC, (uint64_t)n * size);
	return real_reallocarray(p, n, size);
}

void free(void *p)
{
	if (!p || in_boot(p))
		return;
	if (!real_free) {
		resolve();
		if (!real_free)
			return;
	}
	count(C_FREE, 0);
	real_free(p);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	if (!real_posix_memalign) {
		resolve();
		if (!real_posix_memalign)
			return ENOMEM;
	}
	count(C_MEMALIGN, n);
	return real_posix_memalign(out, align, n);
}

void *aligned_alloc(size_t align, size_t n)
{
	if (!real_aligned_alloc) {
		resolve();
		if (!real_aligned_alloc)
			return NULL;
	}
	count(C_MEMALIGN, n);
	return real_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
	if (!real_memalign) {
		resolve();
		if (!real_memalign)
			return NULL;
	}
	count(C_MEMALIGN, n);
	return real_memalign(align, n);
}

void *valloc(size_t n)
{
	if (!real_valloc) {
		resolve();
		if (!real_valloc)
			return NULL;
	}
	count(C_MEMALIGN, n);
	return real_valloc(n);
}

void *pvalloc(size_t n)
{
	if (!real_pvalloc) {
		resolve();
		if (!real_pvalloc)
			return NULL;
	}
	count(C_MEMALIGN, n);
	return real_pvalloc(n);
}
