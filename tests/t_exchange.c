/* SPDX-License-Identifier: MIT */
/*
 * pmv_exchange_pages(): pairs swap tiers with no free page on either tier
 * (tiers exactly full), every byte stays at its address, THPs stay whole,
 * and every documented error. Each a sub-test in a watchdog child.
 */
#include "harness.h"

#define SEED	0xe8

static void check_full(pmv_ctx *ctx, int tier)
{
	struct pmv_tier_stats st;

	pmv_tier_stats(ctx, tier, &st);
	T_EQ(st.resident_bytes + st.pool_bytes, st.capacity);
	T_EQ(st.pool_bytes, 0);
}

static void run(size_t psz, int n)
{
	size_t caps[2] = { n * psz, n * psz };
	int flags = psz == T_SZ_2M ? PMV_HUGE : 0;
	pmv_ctx *ctx = t_ctx(2, caps, 0);
	char *a = pmv_mmap(ctx, n * psz, 0, flags | PMV_BIND);
	char *b = pmv_mmap(ctx, n * psz, 1, flags | PMV_BIND);
	void *pa[64], *pb[64];
	int st[64], q[64];

	T_ASSERT(a && b, "mmap");
	for (int i = 0; i < n; i++) {
		t_fill(a + i * psz, psz, i, SEED);
		t_fill(b + i * psz, psz, 1000 + i, SEED);
		pa[i] = a + i * psz + (psz / 3 & ~7UL);	/* interior addresses */
		pb[i] = b + i * psz;
	}
	/* both tiers exactly full: nothing can be migrated... */
	check_full(ctx, 0);
	check_full(ctx, 1);
	{
		int to = 1;

		T_EQ(pmv_move_pages(ctx, 1, pa, &to, st, 0), 1);
		T_EQ(st[0], -ENOMEM);
	}
	/* ...but everything can be exchanged, several times over */
	for (int round = 0; round < 3; round++) {
		T_EQ(pmv_exchange_pages(ctx, n, pa, pb, st, 0), 0);
		for (int i = 0; i < n; i++)
			T_EQ(st[i], 0);
		T_EQ(pmv_move_pages(ctx, n, pa, NULL, q, 0), 0);
		for (int i = 0; i < n; i++)
			T_EQ(q[i], (round & 1) ? 0 : 1);
		T_EQ(pmv_move_pages(ctx, n, pb, NULL, q, 0), 0);
		for (int i = 0; i < n; i++)
			T_EQ(q[i], (round & 1) ? 1 : 0);
		for (int i = 0; i < n; i++) {
			T_EQ(t_check(a + i * psz, psz, i, SEED), -1);
			T_EQ(t_check(b + i * psz, psz, 1000 + i, SEED), -1);
		}
		check_full(ctx, 0);
		check_full(ctx, 1);
		if (psz == T_SZ_2M) {
			T_EQ(t_anon_huge_kb(a), n * 2048);
			T_EQ(t_anon_huge_kb(b), n * 2048);
		}
	}
	pmv_destroy(ctx);
}

static void errors(void)
{
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	char *s = pmv_mmap(ctx, 4 * T_SZ_4K, 0, 0);
	char other[64];
	void *a[4], *b[4];
	int st[4];

	T_ASSERT(s, "mmap");
	/*
	 * Pages 2 and 3 never touched: page 1 first, so that the two touches
	 * are no stream, whose pages after it could be mapped ahead (fault.c)
	 */
	memset(s + T_SZ_4K, 1, T_SZ_4K);
	memset(s, 1, T_SZ_4K);
	T_EQ(pmv_exchange_pages(NULL, 1, a, b, st, 0), -EINVAL);
	T_EQ(pmv_exchange_pages(ctx, 1, NULL, b, st, 0), -EINVAL);
	T_EQ(pmv_exchange_pages(ctx, 1, a, NULL, st, 0), -EINVAL);
	T_EQ(pmv_exchange_pages(ctx, 1, a, b, NULL, 0), -EINVAL);
	T_EQ(pmv_exchange_pages(ctx, 1, a, b, st, 1 << 7), -EINVAL);
	T_EQ(pmv_exchange_pages(ctx, 0, NULL, NULL, NULL, 0), 0);
	a[0] = s; b[0] = other;				/* unmanaged */
	a[1] = s; b[1] = s + 17;			/* one page with itself */
	a[2] = s; b[2] = s + 2 * T_SZ_4K;		/* never touched */
	a[3] = s; b[3] = s + T_SZ_4K;			/* same tier: nothing to do */
	T_EQ(pmv_exchange_pages(ctx, 4, a, b, st, 0), 3);
	T_EQ(st[0], -EFAULT);
	T_EQ(st[1], -EINVAL);
	T_EQ(st[2], -ENOENT);
	T_EQ(st[3], 0);
	if (t_thp_enabled()) {
		char *h = pmv_mmap(ctx, T_SZ_2M, 1, PMV_HUGE);

		T_ASSERT(h, "mmap huge");
		h[0] = 1;
		a[0] = s;
		b[0] = h;				/* 4 KB with 2 MB */
		T_EQ(pmv_exchange_pages(ctx, 1, a, b, st, 0), 1);
		T_EQ(st[0], -EINVAL);
	}
	pmv_destroy(ctx);
}

static int test_exchange_at_full_tiers_keeps_data_and_thp(const struct t_case *c)
{
	if (c->huge)
		run(T_SZ_2M, 8);
	else
		run(T_SZ_4K, 64);
	return 0;
}

static int test_exchange_errors_as_documented(const struct t_case *c)
{
	(void)c;
	errors();
	return 0;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	for (int h = 0; h < 2; h++)
		T_CASE(&s, test_exchange_at_full_tiers_keeps_data_and_thp, -1, h);
	T_CASE_ONE(&s, test_exchange_errors_as_documented, 1);
	return t_suite_end(&s);
}
