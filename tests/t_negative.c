/* SPDX-License-Identifier: MIT */
/*
 * Negative control: the integrity checker used by the concurrency tests
 * must catch one flipped byte, anywhere: in the pattern, in a writer's
 * counter word, after a migration of 4 KB and 2 MB pages.
 */
#include "harness.h"

#define SEED	0x99
#define NW	4

static void setup(char *p, size_t size, size_t page, uint64_t *expect)
{
	t_fill(p, size, page, SEED);
	for (int w = 0; w < NW; w++) {
		expect[w] = 1000 + w;
		memcpy(p + w * 64, &expect[w], 8);
	}
}

static void check_catches(pmv_ctx *ctx, char *p, size_t size, int other_tier)
{
	uint64_t expect[NW];
	size_t offs[] = { 0, 3, 64 + 7, 8, size / 2, size - 1 };
	void *pg = p;
	int st;

	setup(p, size, 5, expect);
	T_EQ(t_check_page(p, size, 5, SEED, NW, expect), 0);
	/*
	 * -EBUSY is a move_pages(2) answer: the page is held a moment (by
	 * the handler that answered setup's first touch, which wakes the
	 * thread before it lets go; 20 ms passed in the slow NUMA guest).
	 */
	for (int tries = 0;; tries++) {
		int ret = pmv_move_pages(ctx, 1, &pg, &other_tier, &st, 0);

		if (ret < 0 || st != -EBUSY || tries == 100) {
			T_ASSERT(ret == 0 && st == other_tier, "move: returned %d, status %d (%s)",
				 ret, st, pmv_strerror(st));
			break;
		}
		usleep(10000);
	}
	T_EQ(t_check_page(p, size, 5, SEED, NW, expect), 0);
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		p[offs[i]] ^= 0x10;
		T_ASSERT(t_check_page(p, size, 5, SEED, NW, expect) == 1,
			 "flip at %zu not caught", offs[i]);
		p[offs[i]] ^= 0x10;
		T_EQ(t_check_page(p, size, 5, SEED, NW, expect), 0);
	}
	/* a counter one behind (a lost write) is caught too */
	expect[2]++;
	T_ASSERT(t_check_page(p, size, 5, SEED, NW, expect) > 0, "lost write not caught");
	/* and so is a page of zeros (a hole) */
	memset(p, 0, size);
	expect[2]--;
	T_ASSERT(t_check_page(p, size, 5, SEED, NW, expect) > 0, "hole not caught");
}

int main(void)
{
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	char *p = pmv_mmap(ctx, T_SZ_4K, 0, 0);

	T_ASSERT(p, "mmap");
	check_catches(ctx, p, T_SZ_4K, 1);
	if (t_thp_enabled()) {
		char *h = pmv_mmap(ctx, T_SZ_2M, 0, PMV_HUGE);

		T_ASSERT(h, "mmap huge");
		check_catches(ctx, h, T_SZ_2M, 1);
	}
	printf("negative control: every flipped byte, lost write and hole caught\n");
	pmv_destroy(ctx);
	return T_EXIT_PASS;
}
