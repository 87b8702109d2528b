/* SPDX-License-Identifier: MIT */
/*
 * madvise(MADV_DONTNEED / MADV_FREE) on managed memory while a mover
 * migrates every page all the time: a discarded range (whole pages, or
 * pieces of a 2 MB page) reads zeros, the rest keeps its bytes, and once
 * all is discarded no byte stays charged to a tier. Raw syscalls: the
 * program's own calls reach the library only through userfaultfd events.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"

static pmv_ctx *ctx;
static char *base;
static size_t np, psz;
static atomic_int stop;

static void *mover(void *arg)
{
	void *pages[512];
	int to[512], st[512], t = 1;

	(void)arg;
	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < np; i++) {
			pages[i] = base + i * psz;
			to[i] = t;
		}
		pmv_move_pages(ctx, np, pages, to, st, 0);
		t ^= 1;
	}
	return NULL;
}

static uint64_t resident(void)
{
	struct pmv_tier_stats a, b;

	pmv_tier_stats(ctx, 0, &a);
	pmv_tier_stats(ctx, 1, &b);
	return a.resident_bytes + b.resident_bytes;
}

/* Returns the number of bad rounds plus 1 if bytes stay charged. */
static int discard_reads_zeros_while_migrating(int huge, int advice)
{
	pthread_t th;
	long bad = 0;
	uint64_t res = 0;
	int rounds = huge ? 300 : 2000;

	psz = huge ? T_SZ_2M : T_SZ_4K;
	np = huge ? 8 : 256;
	ctx = t_ctx(2, NULL, 0);
	base = pmv_mmap(ctx, np * psz, 0, huge ? PMV_HUGE : 0);
	if (!base)
		return 1;
	memset(base, 1, np * psz);
	pthread_create(&th, NULL, mover, NULL);
	for (int r = 0; r < rounds; r++) {
		size_t i = r % np, off = 0, len = psz;
		char *p = base + i * psz;

		if (huge && (r & 1)) {
			off = (r % 7) * T_SZ_4K * 16;
			len = T_SZ_4K * 16;
		}
		memset(p, 0x5a, psz);
		syscall(SYS_madvise, p + off, len, advice);
		for (size_t k = 0; k < psz; k++) {
			char want = k >= off && k < off + len ? 0 : 0x5a;

			/* MADV_FREE may keep the old bytes; nothing else */
			if (p[k] != want && !(advice == MADV_FREE && p[k] == 0x5a)) {
				if (bad < 5)
					fprintf(stderr, "round %d page %zu offset %zu: %d, want %d\n",
						r, i, k, p[k], want);
				bad++;
				break;
			}
		}
	}
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	for (size_t i = 0; i < np; i++)
		syscall(SYS_madvise, base + i * psz, psz, MADV_DONTNEED);
	/* settled, not timed: the discard is accounted when its event is read */
	for (int i = 0; i < 100 && (res = resident()); i++)
		usleep(10000);
	if (res)
		fprintf(stderr, "%llu bytes still charged after every page was discarded\n",
			(unsigned long long)res);
	pmv_destroy(ctx);
	return (int)bad + (res != 0);
}

int main(void)
{
	int failed = 0, huge = t_thp_enabled();

	atomic_store(&stop, 0);
	failed += t_run_child("dontneed_reads_zeros_while_migrating_4k", discard_reads_zeros_while_migrating, 0, MADV_DONTNEED);
	failed += t_run_child("free_reads_zeros_or_old_while_migrating_4k", discard_reads_zeros_while_migrating, 0, MADV_FREE);
	if (huge) {
		failed += t_run_child("dontneed_reads_zeros_while_migrating_2m", discard_reads_zeros_while_migrating, 1, MADV_DONTNEED);
		failed += t_run_child("free_reads_zeros_or_old_while_migrating_2m", discard_reads_zeros_while_migrating, 1, MADV_FREE);
	} else {
		printf("note: THP disabled, 2 MB parts not run\n");
	}
	printf("madvise: %d sub-tests failed\n", failed);
	return failed ? T_EXIT_FAIL : T_EXIT_PASS;
}
