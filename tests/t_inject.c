/* SPDX-License-Identifier: MIT */
/*
 * A copy engine that fails in the middle of a batch (fault injection:
 * PAGEMOVE_INJECT_COPY_FAIL=N fails every N-th request after copying half
 * of it) must leave every page intact and in place: the failed pages report
 * -EIO and stay on their tier, the others move. Moves and exchanges, on
 * every engine, while writers keep writing.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

#define SEED	0x1e
#define NW	2

static char *area;
static size_t npages, psz;
static uint64_t *expect[NW];
static atomic_int stop;

static void *writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop))
		for (size_t i = 0; i < npages; i++) {
			volatile uint64_t *c = (uint64_t *)(area + i * psz + w * 64);

			*c = *c + 1;
			expect[w][i]++;
		}
	return NULL;
}

static void run(int engine, size_t pagesz, int huge)
{
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	void *pages[64], *other[64];
	int tiers[64], st[64], q[64], failed = 0, moved = 0, xfailed = 0;
	pthread_t wt[NW];

	if (pmv_set_copy_engine(ctx, engine))
		T_FAIL("engine %d: %s", engine, pmv_errmsg());
	psz = pagesz;
	npages = 64;
	area = pmv_mmap(ctx, npages * psz, 0, huge ? PMV_HUGE : 0);
	T_ASSERT(area, "mmap");
	for (size_t i = 0; i < npages; i++) {
		t_fill(area + i * psz, psz, i, SEED);
		for (int w = 0; w < NW; w++)
			memset(area + i * psz + w * 64, 0, 8);
		pages[i] = area + i * psz;
	}
	for (int w = 0; w < NW; w++)
		expect[w] = calloc(npages, 8);
	atomic_store(&stop, 0);
	for (long w = 0; w < NW; w++)
		pthread_create(&wt[w], NULL, writer, (void *)w);

	int rounds = (int)(6 * t_duration(1));

	if (rounds < 2)
		rounds = 2;
	for (int round = 0; round < rounds; round++) {
		t_step("round %d of %d", round, rounds);
		for (size_t i = 0; i < npages; i++)
			tiers[i] = (round + 1) & 1;
		pmv_move_pages(ctx, npages, pages, tiers, st, 0);
		T_EQ(pmv_move_pages(ctx, npages, pages, NULL, q, 0), 0);
		for (size_t i = 0; i < npages; i++) {
			if (st[i] == -EIO) {
				failed++;
				/* a failed page stays where it was */
				T_ASSERT(q[i] == (round & 1), "failed page %zu on tier %d", i, q[i]);
			} else if (st[i] != -EBUSY) {
				T_EQ(st[i], tiers[i]);
				T_EQ(q[i], tiers[i]);
				moved++;
			}
		}
		/* exchanges across the tiers, with half of them failing */
		for (size_t i = 0; i < npages / 2; i++) {
			other[i] = pages[npages / 2 + i];
			tiers[i] = (int)i & 1;
		}
		pmv_move_pages(ctx, npages / 2, other, tiers, st, 0);
		if (pmv_exchange_pages(ctx, npages / 2, pages, other, st, 0) > 0)
			for (size_t i = 0; i < npages / 2; i++)
				xfailed += st[i] == -EIO;
	}
	atomic_store(&stop, 1);
	for (int w = 0; w < NW; w++)
		pthread_join(wt[w], NULL);
	for (size_t i = 0; i < npages; i++) {
		uint64_t e[NW];

		for (int w = 0; w < NW; w++)
			e[w] = expect[w][i];
		T_EQ(t_check_page(area + i * psz, psz, i, SEED, NW, e), 0);
	}
	T_ASSERT(failed > 0, "injection never fired");
	T_ASSERT(xfailed > 0, "no exchange failed");
	T_ASSERT(moved > 0, "nothing moved");
	printf("engine %d, %s pages: %d moves failed by injection, %d exchanges failed, "
	       "%d moved; data intact\n", engine, huge ? "2 MB" : "4 KB", failed, xfailed, moved);
	for (int w = 0; w < NW; w++)
		free(expect[w]);
	pmv_destroy(ctx);
}

static const int engines[] = { PMV_COPY_MEMCPY, PMV_COPY_NT, PMV_COPY_PARALLEL,
			       PMV_COPY_OFFLOAD };
static const char *const engine_names[] = { "memcpy", "nt", "parallel", "offload" };

/* A failing copy engine loses no byte: failed moves leave pages whole. */
static int test_failed_copies_lose_nothing(const struct t_case *c)
{
	run(engines[c->variant], c->huge ? T_SZ_2M : T_SZ_4K, c->huge);
	return 0;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	setenv("PAGEMOVE_INJECT_COPY_FAIL", "7", 1);
	for (int e = 0; e < (int)(sizeof(engines) / sizeof(engines[0])); e++)
		for (int h = 0; h < 2; h++)
			T_CASE_V(&s, test_failed_copies_lose_nothing, e, engine_names[e], -1, h);
	return t_suite_end(&s);
}
