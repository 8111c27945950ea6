/*
 * test_runtime.c — the split arithmetic of set-weight (runtime_share).
 */
#include <stdint.h>
#include <string.h>

#include "control/runtime.h"
#include "tap.h"

static uint32_t sum(const uint32_t *v, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i < n; i++)
		s += v[i];
	return s;
}

int main(void)
{
	uint32_t a[2] = {9000, 1000};
	runtime_share(a, 2, 1, 2500);
	CHECK_EQ_INT(a[0], 7500, "two pools: new 25 leaves old 75");
	CHECK_EQ_INT(a[1], 2500, "two pools: new is 25");

	uint32_t b[3] = {5000, 3000, 2000};
	runtime_share(b, 3, 0, 6000);
	CHECK_EQ_INT(b[0], 6000, "three pools: a gets 60");
	CHECK_EQ_INT(b[1], 2400, "three pools: b keeps its 3:2 proportion with c (24)");
	CHECK_EQ_INT(b[2], 1600, "three pools: c gets 16");

	uint32_t c[3] = {10000, 0, 0};
	runtime_share(c, 3, 0, 4000);
	CHECK_EQ_INT(c[1], 3000, "others all at 0: equal shares (b)");
	CHECK_EQ_INT(c[2], 3000, "others all at 0: equal shares (c)");

	uint32_t d[3] = {10000, 0, 0};
	runtime_share(d, 3, 0, 0);
	CHECK_EQ_INT(sum(d, 3), 10000, "the sum stays 100 when rounding (0 of 3)");
	CHECK_EQ_INT(d[1] + d[2], 10000, "the whole share goes to the others");
	CHECK(d[1] >= 4999 && d[1] <= 5001, "split equally to within a hundredth");

	uint32_t e[4] = {2500, 2500, 2500, 2500};
	runtime_share(e, 4, 3, 1);
	CHECK_EQ_INT(sum(e, 4), 10000, "rounding by largest remainder keeps the sum exact");
	CHECK_EQ_INT(e[3], 1, "the pool gets exactly 0.01");

	uint32_t f[2] = {3333, 6667};
	runtime_share(f, 2, 0, 3333);
	CHECK_EQ_INT(f[1], 6667, "setting the current value changes nothing");

	uint32_t g[3] = {1, 1, 9998};
	runtime_share(g, 3, 2, 9999);
	CHECK_EQ_INT(sum(g, 3), 10000, "tiny shares: sum exact");
	CHECK_EQ_INT(g[2], 9999, "tiny shares: the pool set");

	uint32_t h[2] = {0, 10000};
	runtime_share(h, 2, 1, 10000);
	CHECK_EQ_INT(h[0], 0, "promote-like: the other pool at 0");
	return tap_done();
}
