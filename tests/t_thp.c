/* SPDX-License-Identifier: MIT */
/*
 * THP migration (seed 001): a 2 MB page moves whole, is never split, and
 * any address inside it names all of it. /proc/self/smaps must keep
 * counting the region in AnonHugePages after every move, and after pages
 * sampled for tracking (parked, so absent from the region) come back.
 */
#include "harness.h"

#define NP	8
#define SEED	0x7b

/*
 * Turning the policy off maps every parked page back: count the region's
 * huge pages then, which also checks that unparking restores PMD mappings.
 */
static long huge_kb(pmv_ctx *ctx, void *h)
{
	long kb;

	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_OFF), 0);
	kb = t_anon_huge_kb(h);
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_TRACK), 0);
	return kb;
}

int main(void)
{
	pmv_ctx *ctx;
	char *h;
	void *pages[NP];
	int tiers[NP], status[NP];
	long kb;

	if (!t_thp_enabled())
		t_skip("transparent huge pages are disabled ([never])");
	ctx = t_ctx(2, NULL, 0);
	h = pmv_mmap(ctx, NP * T_SZ_2M, 0, PMV_HUGE);
	T_ASSERT(h, "mmap: %s", strerror(errno));
	for (int i = 0; i < NP; i++)
		t_fill(h + i * T_SZ_2M, T_SZ_2M, i, SEED);
	kb = huge_kb(ctx, h);
	T_EQ(kb, NP * 2048);

	for (int round = 0; round < 6; round++) {
		int to = (round + 1) & 1;

		for (int i = 0; i < NP; i++) {
			/* an address deep inside the huge page names the whole page */
			pages[i] = h + i * T_SZ_2M + (i * 123457) % T_SZ_2M;
			tiers[i] = to;
		}
		T_EQ(pmv_move_pages(ctx, NP, pages, tiers, status, 0), 0);
		for (int i = 0; i < NP; i++) {
			void *start = h + i * T_SZ_2M;
			int st;

			T_EQ(status[i], to);
			T_EQ(pmv_move_pages(ctx, 1, &start, NULL, &st, 0), 0);
			T_EQ(st, to);
		}
		kb = huge_kb(ctx, h);
		T_ASSERT(kb == NP * 2048, "round %d: AnonHugePages %ld kB, want %d: split",
			 round, kb, NP * 2048);
		for (int i = 0; i < NP; i++)
			T_EQ(t_check(h + i * T_SZ_2M, T_SZ_2M, i, SEED), -1);
	}
	/* whole-tier moves keep THPs too */
	T_EQ(pmv_migrate(ctx, 1, 2, 0), 0);
	T_EQ(huge_kb(ctx, h), NP * 2048);
	T_EQ(pmv_migrate(ctx, 2, 1, 0), 0);
	T_EQ(huge_kb(ctx, h), NP * 2048);
	for (int i = 0; i < NP; i++)
		T_EQ(t_check(h + i * T_SZ_2M, T_SZ_2M, i, SEED), -1);
	{
		struct pmv_tier_stats st;

		pmv_tier_stats(ctx, 0, &st);
		T_EQ(st.resident_2m, NP);
		T_EQ(st.resident_4k, 0);
	}
	printf("thp: %d huge pages moved 8 times, still AnonHugePages, data intact\n", NP);
	pmv_destroy(ctx);
	return T_EXIT_PASS;
}
