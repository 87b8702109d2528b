/* SPDX-License-Identifier: MIT */
/*
 * Capacity is enforced: a tier never holds more managed bytes (resident
 * plus its pool of free pages) than its capacity; a first touch falls back
 * to the next tier; a move into a full tier fails that page with -ENOMEM
 * and loses nothing; a bound region's first touch on a full tier gets
 * SIGBUS, as a fault the kernel cannot satisfy would.
 */
#include <setjmp.h>
#include <signal.h>

#include "harness.h"

#define SEED	0xcab
#define CAP0	(1UL << 20)	/* 256 small pages */

static void check_within(pmv_ctx *ctx, int tier)
{
	struct pmv_tier_stats st;

	T_EQ(pmv_tier_stats(ctx, tier, &st), 0);
	T_ASSERT(!st.capacity || st.resident_bytes + st.pool_bytes <= st.capacity,
		 "tier %d holds %llu + %llu bytes over capacity %llu", tier,
		 (unsigned long long)st.resident_bytes, (unsigned long long)st.pool_bytes,
		 (unsigned long long)st.capacity);
}

static sigjmp_buf jb;
static volatile sig_atomic_t got_sigbus;

static void on_sigbus(int sig)
{
	(void)sig;
	got_sigbus = 1;
	siglongjmp(jb, 1);
}

static void small_pages(void)
{
	size_t caps[2] = { CAP0, 0 };
	pmv_ctx *ctx = t_ctx(2, caps, 0);
	enum { N = 512 };
	char *p = pmv_mmap(ctx, N * T_SZ_4K, 0, 0);
	struct pmv_tier_stats s0, s1;
	void *pages[N];
	int status[N], tiers[N], on0 = 0, on1 = 0;

	T_ASSERT(p, "mmap");
	for (int i = 0; i < N; i++) {
		t_fill(p + i * T_SZ_4K, T_SZ_4K, i, SEED);
		pages[i] = p + i * T_SZ_4K;
		check_within(ctx, 0);
	}
	T_EQ(pmv_move_pages(ctx, N, pages, NULL, status, 0), 0);
	for (int i = 0; i < N; i++)
		status[i] == 0 ? on0++ : on1++;
	T_EQ(on0, CAP0 / T_SZ_4K);		/* filled exactly, then fell back */
	T_EQ(on1, N - CAP0 / T_SZ_4K);
	pmv_tier_stats(ctx, 0, &s0);
	pmv_tier_stats(ctx, 1, &s1);
	T_EQ(s0.resident_bytes, CAP0);
	T_EQ(s1.fallback_in, N - CAP0 / T_SZ_4K);

	/* tier 0 is full: moving slow pages up fails with -ENOMEM, data intact */
	for (int i = 0; i < N; i++)
		tiers[i] = 0;
	T_EQ(pmv_move_pages(ctx, N, pages, tiers, status, 0), N - on0);
	for (int i = 0; i < N; i++) {
		T_ASSERT(status[i] == 0 || status[i] == -ENOMEM, "status %d", status[i]);
		T_EQ(t_check(p + i * T_SZ_4K, T_SZ_4K, i, SEED), -1);
	}
	pmv_tier_stats(ctx, 0, &s0);
	T_EQ(s0.fail[PMV_FAIL_NOMEM], N - on0);
	check_within(ctx, 0);

	/* make room for 10: then exactly 10 more move up */
	{
		int down[10], up[N], moved = 0;
		void *dp[10], *upp[N];
		int n = 0;

		for (int i = 0; i < N && n < 10; i++) {
			int st;

			pmv_move_pages(ctx, 1, &pages[i], NULL, &st, 0);
			if (st == 0) {
				dp[n] = pages[i];
				down[n++] = 1;
			}
		}
		T_EQ(pmv_move_pages(ctx, 10, dp, down, status, 0), 0);
		check_within(ctx, 0);
		n = 0;
		for (int i = 0; i < N; i++) {
			int st;

			pmv_move_pages(ctx, 1, &pages[i], NULL, &st, 0);
			if (st == 1) {
				upp[n] = pages[i];
				up[n++] = 0;
			}
		}
		T_EQ(pmv_move_pages(ctx, n, upp, up, status, 0), n - 10);
		for (int i = 0; i < n; i++)
			moved += status[i] == 0;
		T_EQ(moved, 10);
		check_within(ctx, 0);
	}
	for (int i = 0; i < N; i++)
		T_EQ(t_check(p + i * T_SZ_4K, T_SZ_4K, i, SEED), -1);
	pmv_tier_stats(ctx, 0, &s0);
	T_EQ(s0.resident_bytes, CAP0);

	/* bound to the full tier: the first touch cannot be served */
	{
		char *b = pmv_mmap(ctx, T_SZ_4K, 0, PMV_BIND);
		struct sigaction sa = { .sa_handler = on_sigbus }, old;
		struct pmv_ctx_stats cs;

		T_ASSERT(b, "mmap bind");
		sigaction(SIGBUS, &sa, &old);
		if (!sigsetjmp(jb, 1))
			*(volatile char *)b = 1;
		sigaction(SIGBUS, &old, NULL);
		T_ASSERT(got_sigbus, "no SIGBUS for a bound first touch on a full tier");
		pmv_ctx_stats(ctx, &cs);
		T_ASSERT(cs.faults_sigbus >= 1, "sigbus not counted");
		check_within(ctx, 0);
		/* rebinding it to the roomy tier lets the touch through */
		T_EQ(pmv_mbind(ctx, b, T_SZ_4K, 1, PMV_MPOL_BIND), 0);
		*(volatile char *)b = 1;
		T_EQ(b[0], 1);
		pmv_munmap(ctx, b, T_SZ_4K);
	}
	pmv_destroy(ctx);
}

static void huge_pages(void)
{
	size_t caps[2] = { 4 * T_SZ_2M, 0 };
	pmv_ctx *ctx;
	char *h;
	void *pages[8];
	int status[8], tiers[8], on0 = 0;

	ctx = t_ctx(2, caps, 0);
	h = pmv_mmap(ctx, 8 * T_SZ_2M, 0, PMV_HUGE);
	T_ASSERT(h, "mmap");
	for (int i = 0; i < 8; i++) {
		t_fill(h + i * T_SZ_2M, T_SZ_2M, i, SEED);
		pages[i] = h + i * T_SZ_2M;
		tiers[i] = 0;
	}
	check_within(ctx, 0);
	T_EQ(pmv_move_pages(ctx, 8, pages, NULL, status, 0), 0);
	for (int i = 0; i < 8; i++)
		on0 += status[i] == 0;
	T_EQ(on0, 4);
	T_EQ(pmv_move_pages(ctx, 8, pages, tiers, status, 0), 4);
	for (int i = 0; i < 8; i++) {
		T_ASSERT(status[i] == 0 || status[i] == -ENOMEM, "status %d", status[i]);
		T_EQ(t_check(h + i * T_SZ_2M, T_SZ_2M, i, SEED), -1);
	}
	check_within(ctx, 0);
	pmv_destroy(ctx);
}

/* Limits held, first touch falls back, -ENOMEM and SIGBUS as documented. */
static int test_capacity_holds_and_fails_as_documented(const struct t_case *c)
{
	if (c->huge)
		huge_pages();
	else
		small_pages();
	return 0;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	for (int h = 0; h < 2; h++)
		T_CASE(&s, test_capacity_holds_and_fails_as_documented, -1, h);
	return t_suite_end(&s);
}
