/*
 * fuzz_state.c — the state file reader (state_load): what a restart finds
 * in the state file, against a fixed config (pools old: a, b and new: c).
 *
 * Whatever the file holds: no crash, no undefined behaviour, no leak; the
 * values are left untouched unless the whole file is valid (never half
 * applied), and when it is they are within bounds (a split summing to
 * 100%, weights 0..1000, admin states known, a rollout state known and
 * its pool one of the config's or none). A file that was applied is
 * written again by state_save() and read back to the same values.
 *
 * The input is handed over as a file: a memfd, read through /proc/self/fd.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common.h"
#include "control/runtime.h"
#include "control/state.h"
#include "core/config.h"
#include "core/log.h"
#include "rollout/rollout.h"

static const char yaml[] = "listen: [\"127.0.0.1:8080\"]\n"
                           "pools:\n"
                           "  old:\n"
                           "    servers:\n"
                           "      - {address: \"127.0.0.1:9001\", name: a, weight: 3}\n"
                           "      - {address: \"127.0.0.1:9002\", name: b}\n"
                           "  new: {servers: [{address: \"127.0.0.1:9101\", name: c}]}\n"
                           "split: {old: 90, new: 10}\n"
                           "rollout: {pool: new, steps: [10, 50, 100]}\n";

#define NSERVERS 3

static struct config *cfg;
static int fd = -1;
static char file[64], dir[64], saved[96];

static void cleanup(void)
{
	unlink(saved);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config_errors errs = {0};

	(void)argc;
	(void)argv;
	log_set_level(LOG_ERROR); /* an invalid file is a warning */
	cfg = config_parse("state.yaml", yaml, sizeof(yaml) - 1, &errs);
	fd = memfd_create("zdm-fuzz-state", MFD_CLOEXEC);
	snprintf(dir, sizeof(dir), "%s/zdm-fuzz-state.XXXXXX",
	         access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (!cfg || fd < 0 || !mkdtemp(dir)) {
		perror("fuzz_state: setup");
		exit(1);
	}
	snprintf(file, sizeof(file), "/proc/self/fd/%d", fd);
	snprintf(saved, sizeof(saved), "%s/state.json", dir);
	atexit(cleanup);
	return 0;
}

struct values {
	uint32_t split[2], weight[NSERVERS];
	uint8_t admin[NSERVERS];
	struct rollout_value ro[1];
	struct runtime_values v;
};

/* The config's own values, as runtime_new() starts with. */
static void defaults(struct values *x)
{
	size_t id = 0;
	memcpy(x->split, cfg->routes[0].split, sizeof(x->split)); /* the default route: both pools */
	for (size_t i = 0; i < cfg->npools; i++)
		for (size_t j = 0; j < cfg->pools[i].nservers; j++, id++) {
			x->weight[id] = cfg->pools[i].servers[j].weight;
			x->admin[id] = ADMIN_ENABLED;
		}
	memset(x->ro, 0, sizeof(x->ro));
	x->ro[0].pool = cfg->routes[0].rollout->pool;
	x->v = (struct runtime_values){x->split, x->weight, x->admin, x->ro};
}

static bool same(const struct values *a, const struct values *b)
{
	return memcmp(a->split, b->split, sizeof(a->split)) == 0 &&
	       memcmp(a->weight, b->weight, sizeof(a->weight)) == 0 &&
	       memcmp(a->admin, b->admin, sizeof(a->admin)) == 0 &&
	       a->ro[0].state == b->ro[0].state && a->ro[0].step == b->ro[0].step &&
	       a->ro[0].pool == b->ro[0].pool && a->ro[0].percent == b->ro[0].percent && strcmp(a->ro[0].reason, b->ro[0].reason) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct values v, before, again;

	fuzz_input(data, size);
	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_state: memfd");
		abort();
	}
	defaults(&v);
	before = v;
	int rc = state_load(file, cfg, &v.v);
	FUZZ_ASSERT(rc == 0 || rc == -1, "state_load gave %d for a file that is there", rc);
	if (rc < 0) {
		FUZZ_ASSERT(same(&v, &before), "an invalid file changed the values");
		return 0;
	}
	FUZZ_ASSERT(v.split[0] + v.split[1] == 10000, "the split sums to %u hundredths",
	            v.split[0] + v.split[1]);
	for (size_t i = 0; i < NSERVERS; i++)
		FUZZ_ASSERT(v.weight[i] <= 1000 && v.admin[i] <= ADMIN_DISABLED,
		            "server %zu: weight %u, admin %u", i, v.weight[i], v.admin[i]);
	FUZZ_ASSERT(v.ro[0].state <= RS_ROLLED_BACK && v.ro[0].pool >= -1 &&
	            v.ro[0].pool < (int32_t)cfg->npools && memchr(v.ro[0].reason, 0, sizeof(v.ro[0].reason)),
	            "rollout: state %u, pool %d", v.ro[0].state, v.ro[0].pool);
	/* rollouts.c restores a step from here: it clamps it to the steps */
	if (v.ro[0].pool < 0)
		return 0; /* a pool the config lacks is not written back */

	/* written again and read back: the same values */
	char err[256] = "";
	FUZZ_ASSERT(state_save(saved, cfg, &v.v, err, sizeof(err)) == 0, "state_save: %s", err);
	defaults(&again);
	FUZZ_ASSERT(state_load(saved, cfg, &again.v) == 0, "the file written is not read back");
	FUZZ_ASSERT(same(&again, &v), "the file written reads back to other values");
	return 0;
}
