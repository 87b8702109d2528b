/* SPDX-License-Identifier: MIT */
/*
 * pmv_munmap() racing migrations. Thirty times: map a region (4 KB and 2 MB
 * pages in turn), fill it, let a writer touch it and a mover (and/or a
 * pmv_migrate() loop) move its pages, stop the writer, check every byte,
 * then unmap while the migrations run. A mover may see -EFAULT once the
 * unmap has begun, -EBUSY any time, nothing else. A second region lives
 * through all of it and must stay intact. After each round the tier
 * accounting holds only that second region, a second unmap is -EINVAL; at
 * the end every tier is back to zero and no region is left. Then
 * pmv_destroy() with regions mapped and a mover just stopped must release
 * everything: threads, descriptors, the mappings (and memory, under ASan).
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

#define ROUNDS		30
#define KEEP_PAGES	64
#define SEED		0x3a3a

struct region {
	char *base;
	size_t len, psz, npages;
	unsigned seed;
	uint64_t *count;	/* the writer's counter, per page (word 0) */
};

static pmv_ctx *ctx;
static struct region cur, keep;
static atomic_int stop_writer, stop_movers, unmapping;
static atomic_long moves, migrated, bad;

static char *page(const struct region *r, size_t i)
{
	return r->base + i * r->psz;
}

static void *writer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_writer)) {
		for (size_t i = 0; i < cur.npages; i++) {
			volatile uint64_t *c = (uint64_t *)page(&cur, i);

			*c = *c + 1;
			cur.count[i]++;
		}
	}
	return NULL;
}

static void *mover(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *pages[64];
	int tiers[64], status[64];

	while (!atomic_load(&stop_movers)) {
		/* mostly the doomed region, sometimes the one that stays */
		const struct region *r = rand_r(&seed) % 4 ? &cur : &keep;
		int n = 1 + rand_r(&seed) % 64;
		int to = rand_r(&seed) & 1;
		int late, ret;

		for (int i = 0; i < n; i++) {
			pages[i] = page(r, rand_r(&seed) % r->npages) + rand_r(&seed) % r->psz;
			tiers[i] = to;
		}
		ret = pmv_move_pages(ctx, n, pages, tiers, status, 0);
		/* read after the call: the unmap may have begun during it */
		late = atomic_load(&unmapping);
		if (ret < 0) {
			fprintf(stderr, "pmv_move_pages: %d\n", ret);
			atomic_fetch_add(&bad, 1);
		}
		for (int i = 0; i < n; i++) {
			if (status[i] == to)
				atomic_fetch_add(&moves, 1);
			else if (status[i] == -EFAULT && late && r == &cur)
				;	/* the region is gone, or going */
			else if (status[i] != -EBUSY) {
				fprintf(stderr, "mover: %s region, %s page %zu: status %d (%s)%s\n",
					r == &cur ? "racing" : "kept",
					r->psz == T_SZ_2M ? "2M" : "4K",
					(size_t)((char *)pages[i] - r->base) / r->psz, status[i],
					pmv_strerror(status[i]),
					late ? " during unmap" : "");
				atomic_fetch_add(&bad, 1);
			}
		}
	}
	return NULL;
}

static void *migrator(void *arg)
{
	(void)arg;
	for (int to = 1; !atomic_load(&stop_movers); to ^= 1) {
		long left = pmv_migrate(ctx, 1UL << (1 - to), 1UL << to, 0);

		if (left < 0) {
			fprintf(stderr, "pmv_migrate: %ld (%s)\n", left, pmv_strerror((int)left));
			atomic_fetch_add(&bad, 1);
		}
		atomic_fetch_add(&migrated, 1);
	}
	return NULL;
}

static void map_region(struct region *r, size_t len, int huge, unsigned seed)
{
	r->psz = huge ? T_SZ_2M : T_SZ_4K;
	r->len = len;
	r->npages = len / r->psz;
	r->seed = seed;
	r->base = pmv_mmap(ctx, len, seed & 1, huge ? PMV_HUGE : 0);
	T_ASSERT(r->base, "pmv_mmap: %s", strerror(errno));
	r->count = calloc(r->npages, sizeof(*r->count));
	T_ASSERT(r->count, "calloc");
	for (size_t i = 0; i < r->npages; i++) {
		t_fill(page(r, i), r->psz, i, seed);
		memset(page(r, i), 0, 8);
	}
}

static long check_region(const struct region *r)
{
	long n = 0;

	for (size_t i = 0; i < r->npages; i++)
		n += t_check_page(page(r, i), r->psz, i, r->seed, 1, &r->count[i]);
	return n;
}

static void resident(uint64_t *r4k, uint64_t *r2m)
{
	*r4k = *r2m = 0;
	for (int t = 0; t < 2; t++) {
		struct pmv_tier_stats st;

		T_EQ(pmv_tier_stats(ctx, t, &st), 0);
		*r4k += st.resident_4k;
		*r2m += st.resident_2m;
	}
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	int n = 0;

	T_ASSERT(d, "opendir %s", path);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/*
 * Threads in /proc/self/task once exiting ones are gone: pthread_join()
 * returns when the kernel clears the tid, a little before the task leaves
 * /proc (long under emulation), so wait for the count to hold still.
 */
static int settled_tasks(void)
{
	int prev = count_dir("/proc/self/task"), now;

	for (int i = 0; i < 100; i++) {
		usleep(20000);
		now = count_dir("/proc/self/task");
		if (now == prev)
			return now;
		prev = now;
	}
	return prev;
}

static int is_mapped(const void *p, size_t len)
{
	unsigned char vec[1];

	/* mincore() fails with ENOMEM on a range that is not mapped */
	return !mincore((void *)p, len < T_SZ_4K ? len : T_SZ_4K, vec) || errno != ENOMEM;
}

/* Destroy with live regions, right after a mover stopped. */
static void destroy_live(int huge)
{
	int threads = settled_tasks(), fds = count_dir("/proc/self/fd");
	struct region r4, r2;
	pthread_t mv;

	ctx = t_ctx(2, NULL, 0);
	memset(&r2, 0, sizeof(r2));
	map_region(&r4, 256 * T_SZ_4K, 0, SEED + 100);
	keep = r4;
	cur = r4;
	if (huge)
		map_region(&r2, 2 * T_SZ_2M, 1, SEED + 101), cur = r2;
	/* a region never touched at all, too */
	T_ASSERT(pmv_mmap(ctx, 1 << 20, 0, 0), "pmv_mmap: %s", strerror(errno));
	atomic_store(&stop_movers, 0);
	atomic_store(&unmapping, 0);
	pthread_create(&mv, NULL, mover, (void *)7UL);
	usleep(100000);
	atomic_store(&stop_movers, 1);
	pthread_join(mv, NULL);
	T_EQ(check_region(&r4), 0);
	if (huge)
		T_EQ(check_region(&r2), 0);
	pmv_destroy(ctx);
	/* the regions are unmapped, the threads and descriptors gone */
	T_ASSERT(!is_mapped(r4.base, r4.len), "region %p still mapped after destroy", r4.base);
	if (huge)
		T_ASSERT(!is_mapped(r2.base, r2.len), "region %p still mapped after destroy",
			 r2.base);
	for (int i = 0; i < 100 && settled_tasks() != threads; i++)
		;
	T_EQ(settled_tasks(), threads);
	T_EQ(count_dir("/proc/self/fd"), fds);
	free(r4.count);
	free(r2.count);
}

static int test_munmap_while_pages_move_leaves_nothing(const struct t_case *c)
{
	int thp = c->huge;
	int rounds = (int)(ROUNDS * t_duration(1));
	unsigned seed = 99;
	uint64_t keep4k, keep2m, r4k, r2m;
	struct pmv_ctx_stats cs;
	double t0 = t_now();

	ctx = t_ctx(2, NULL, 0);
	map_region(&keep, KEEP_PAGES * T_SZ_4K, 0, SEED);
	resident(&keep4k, &keep2m);
	T_EQ(keep4k, KEEP_PAGES);
	T_EQ(keep2m, 0);

	for (int round = 0; round < rounds; round++) {
		int huge = thp && (round & 1);
		int kind = round % 3;	/* 0: mover, 1: pmv_migrate, 2: both */
		pthread_t wt, mv, mg;

		t_step("round %d of %d", round, rounds);
		map_region(&cur, huge ? 2 * T_SZ_2M : 256 * T_SZ_4K, huge, SEED + round);
		atomic_store(&stop_writer, 0);
		atomic_store(&stop_movers, 0);
		atomic_store(&unmapping, 0);
		pthread_create(&wt, NULL, writer, NULL);
		if (kind != 1)
			pthread_create(&mv, NULL, mover, (void *)(uintptr_t)(round + 1));
		if (kind != 0)
			pthread_create(&mg, NULL, migrator, NULL);
		usleep(1000 + rand_r(&seed) % 20000);

		/* the writer stops; every byte is right while pages still move */
		atomic_store(&stop_writer, 1);
		pthread_join(wt, NULL);
		T_EQ(check_region(&cur), 0);

		atomic_store(&unmapping, 1);
		T_EQ(pmv_munmap(ctx, cur.base, cur.len), 0);
		usleep(rand_r(&seed) % 2000);	/* movers meet the hole */
		atomic_store(&stop_movers, 1);
		if (kind != 1)
			pthread_join(mv, NULL);
		if (kind != 0)
			pthread_join(mg, NULL);

		T_EQ(pmv_munmap(ctx, cur.base, cur.len), -EINVAL);
		resident(&r4k, &r2m);
		T_ASSERT(r4k == keep4k && r2m == keep2m,
			 "round %d: resident %llu 4K + %llu 2M pages, want %llu + 0", round,
			 (unsigned long long)r4k, (unsigned long long)r2m,
			 (unsigned long long)keep4k);
		T_EQ(pmv_ctx_stats(ctx, &cs), 0);
		T_EQ(cs.regions, 1);
		T_EQ(atomic_load(&bad), 0);
		free(cur.count);
	}
	T_EQ(check_region(&keep), 0);
	T_EQ(pmv_munmap(ctx, keep.base, keep.len), 0);
	T_EQ(pmv_munmap(ctx, keep.base, keep.len), -EINVAL);
	resident(&r4k, &r2m);
	T_EQ(r4k, 0);
	T_EQ(r2m, 0);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	T_EQ(cs.regions, 0);
	T_ASSERT(atomic_load(&moves) > 0, "no progress: %ld moves", atomic_load(&moves));
	T_ASSERT(atomic_load(&migrated) > 0, "pmv_migrate never ran");
	printf("%d rounds: %ld pages moved, %ld pmv_migrate calls, %.1fs\n", rounds,
	       atomic_load(&moves), atomic_load(&migrated), t_now() - t0);
	pmv_destroy(ctx);
	free(keep.count);
	return 0;
}

static int test_destroy_with_live_regions_after_a_mover(const struct t_case *c)
{
	destroy_live(c->huge);
	printf("pmv_destroy with live regions after a mover: ok\n");
	return 0;
}

int main(void)
{
	int thp = t_thp_enabled();
	struct t_suite s;

	t_suite_init(&s);
	if (!thp)
		printf("note: THP disabled, 2 MB rounds use 4 KB pages\n");
	T_CASE_ONE(&s, test_munmap_while_pages_move_leaves_nothing, 1);
	T_CASE_ONE(&s, test_destroy_with_live_regions_after_a_mover, 1);
	return t_suite_end(&s);
}
