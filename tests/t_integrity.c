/* SPDX-License-Identifier: MIT */
/*
 * Integrity under concurrency, as the kernel's uffd-stress but checked byte
 * for byte: writer threads each own a counter word in every page, a
 * page-writer rewrites whole checksummed pages under a seqcount, readers
 * verify those checksums (a torn copy would show), and a mover thread moves
 * 4 KB and 2 MB pages back and forth between tiers: single moves, batches,
 * whole-tier pmv_migrate() and pmv_exchange_pages(). It runs once per copy
 * engine (auto, memcpy, nt, parallel, offload), and once more with 2 MB
 * pages copied under write-protect (PMV_CTX_WP_COPY). Afterwards every byte must
 * be what its writer last wrote. Each run is a sub-test in a watchdog child.
 * Usage: t_integrity [seconds-per-engine]
 */
#include <pthread.h>
#include <stdatomic.h>

#include "harness.h"

#define NWRITERS	4
#define NREADERS	2
#define SEED		0x5eed

struct area {
	char *base;
	size_t size, npages;
	int huge;
};

/* counter areas (writers) and checksum areas (page-writer and readers) */
static struct area cnt[2], sum[2];
static size_t ncnt_pages;
static uint64_t *expect[NWRITERS];	/* per writer, per counter page */
static uint64_t *last_gen[2];		/* per checksum page */
static pmv_ctx *ctx;
static atomic_int stop;
static atomic_long moves, xchgs, torn, bad_status;

static char *cnt_page(size_t i, size_t *size, size_t *pageno)
{
	const struct area *a = i < cnt[0].npages ? &cnt[0] : &cnt[1];
	size_t k = i < cnt[0].npages ? i : i - cnt[0].npages;

	*size = a->size / a->npages;
	*pageno = i;
	return a->base + k * *size;
}

static void *writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < ncnt_pages; i++) {
			size_t size, no;
			volatile uint64_t *c = (uint64_t *)(cnt_page(i, &size, &no) + w * 64);

			*c = *c + 1;
			expect[w][i]++;
		}
	}
	return NULL;
}

static uint64_t payload(uint64_t gen, size_t i)
{
	return gen * 0x9E3779B97F4A7C15ULL + i * 0xD6E8FEB86659FD93ULL;
}

static void write_sum_page(uint64_t *p, size_t words, uint64_t gen)
{
	uint64_t s = 0;

	/* seqcount: odd while the page is being rewritten */
	__atomic_store_n(&p[0], 2 * gen - 1, __ATOMIC_RELEASE);
	for (size_t i = 2; i < words; i++) {
		uint64_t v = payload(gen, i);

		__atomic_store_n(&p[i], v, __ATOMIC_RELAXED);
		s += v;
	}
	__atomic_store_n(&p[1], s, __ATOMIC_RELAXED);
	__atomic_store_n(&p[0], 2 * gen, __ATOMIC_RELEASE);
}

static void *page_writer(void *arg)
{
	uint64_t gen = 1;

	(void)arg;
	while (!atomic_load(&stop)) {
		for (int a = 0; a < 2; a++) {
			size_t psz = sum[a].size / sum[a].npages;

			for (size_t i = 0; i < sum[a].npages; i++) {
				write_sum_page((uint64_t *)(sum[a].base + i * psz), psz / 8, gen);
				last_gen[a][i] = gen;
			}
		}
		gen++;
	}
	return NULL;
}

static void *reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		int a = rand_r(&seed) & 1;
		size_t psz = sum[a].size / sum[a].npages;
		uint64_t *p = (uint64_t *)(sum[a].base + (rand_r(&seed) % sum[a].npages) * psz);
		uint64_t s1, s2, ck, s = 0;

		s1 = __atomic_load_n(&p[0], __ATOMIC_ACQUIRE);
		if (s1 & 1)
			continue;
		for (size_t i = 2; i < psz / 8; i++)
			s += __atomic_load_n(&p[i], __ATOMIC_RELAXED);
		ck = __atomic_load_n(&p[1], __ATOMIC_RELAXED);
		atomic_thread_fence(memory_order_acquire);
		s2 = __atomic_load_n(&p[0], __ATOMIC_RELAXED);
		if (s1 == s2 && s1 && s != ck) {
			fprintf(stderr, "torn page %p seq %llu\n", (void *)p,
				(unsigned long long)s1);
			atomic_fetch_add(&torn, 1);
		}
	}
	return NULL;
}

static void *mover(void *arg)
{
	unsigned seed = 42;
	struct area *all[4] = { &cnt[0], &cnt[1], &sum[0], &sum[1] };
	void *pages[64], *other[64];
	int tiers[64], status[64];
	long round = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		struct area *a = all[rand_r(&seed) % 4];
		size_t psz = a->size / a->npages;
		int n = rand_r(&seed) % 3 ? 1 + rand_r(&seed) % 64 : 1;	/* single or batch */
		int to = rand_r(&seed) & 1;

		if (++round % 50 == 0) {
			/* whole-tier moves: the migrate_pages(2) analog */
			long left = pmv_migrate(ctx, 1UL << to, 1UL << (1 - to), 0);

			if (left < 0)
				atomic_fetch_add(&bad_status, 1);
			continue;
		}
		if (round % 5 == 0 && a->npages >= 2) {
			/* exchange pairs of distinct pages of one area */
			n = 1 + rand_r(&seed) % (a->npages / 2 < 32 ? a->npages / 2 : 32);
			for (int i = 0; i < n; i++) {
				size_t x = rand_r(&seed) % (a->npages / 2);

				pages[i] = a->base + 2 * x * psz + (rand_r(&seed) % psz);
				other[i] = a->base + (2 * x + 1) * psz;
			}
			if (pmv_exchange_pages(ctx, n, pages, other, status, 0) < 0)
				atomic_fetch_add(&bad_status, 1);
			for (int i = 0; i < n; i++) {
				if (!status[i])
					atomic_fetch_add(&xchgs, 1);
				else if (status[i] != -EBUSY) {
					fprintf(stderr, "exchange status[%d] = %d (%s)\n", i,
						status[i], pmv_strerror(status[i]));
					atomic_fetch_add(&bad_status, 1);
				}
			}
			continue;
		}
		for (int i = 0; i < n; i++) {
			size_t pg = rand_r(&seed) % a->npages;

			/* any address inside the page names the page */
			pages[i] = a->base + pg * psz + (rand_r(&seed) % psz);
			tiers[i] = to;
		}
		if (pmv_move_pages(ctx, n, pages, tiers, status, 0) < 0)
			atomic_fetch_add(&bad_status, 1);
		for (int i = 0; i < n; i++) {
			if (status[i] == to)
				atomic_fetch_add(&moves, 1);
			else if (status[i] != -EBUSY) {
				fprintf(stderr, "status[%d] = %d (%s)\n", i, status[i],
					pmv_strerror(status[i]));
				atomic_fetch_add(&bad_status, 1);
			}
		}
	}
	return NULL;
}

static void setup_area(struct area *a, size_t size, int huge)
{
	a->size = size;
	a->huge = huge;
	a->npages = size / (huge ? T_SZ_2M : T_SZ_4K);
	a->base = pmv_mmap(ctx, size, 0, huge ? PMV_HUGE : 0);
	T_ASSERT(a->base, "pmv_mmap: %s", strerror(errno));
}

static long run(int engine, double secs, int huge, unsigned flags)
{
	pthread_t wt[NWRITERS], rt[NREADERS], pw, mv;
	long bad = 0;
	struct pmv_tier_stats st0, st1;
	struct pmv_ctx_stats cs;

	ctx = t_ctx(2, NULL, flags);
	if (pmv_set_copy_engine(ctx, engine) == -ENODEV)
		t_skip("engine %d needs copy threads", engine);
	atomic_store(&stop, 0);
	atomic_store(&moves, 0);
	atomic_store(&xchgs, 0);
	setup_area(&cnt[0], 4 << 20, 0);
	setup_area(&cnt[1], huge ? 16 << 20 : 4 << 20, huge);
	setup_area(&sum[0], 256 << 10, 0);
	setup_area(&sum[1], huge ? 4 << 20 : 256 << 10, huge);

	ncnt_pages = cnt[0].npages + cnt[1].npages;
	for (size_t i = 0; i < ncnt_pages; i++) {
		size_t size, no;
		char *p = cnt_page(i, &size, &no);

		t_fill(p, size, no, SEED);
		for (int w = 0; w < NWRITERS; w++)
			memset(p + w * 64, 0, 8);
	}
	for (int w = 0; w < NWRITERS; w++)
		T_ASSERT((expect[w] = calloc(ncnt_pages, 8)), "calloc");
	for (int a = 0; a < 2; a++) {
		T_ASSERT((last_gen[a] = calloc(sum[a].npages, 8)), "calloc");
		/* touched before the mover starts: -ENOENT would be correct otherwise */
		memset(sum[a].base, 0, sum[a].size);
	}

	for (long w = 0; w < NWRITERS; w++)
		pthread_create(&wt[w], NULL, writer, (void *)w);
	for (long r = 0; r < NREADERS; r++)
		pthread_create(&rt[r], NULL, reader, (void *)(r + 7));
	pthread_create(&pw, NULL, page_writer, NULL);
	pthread_create(&mv, NULL, mover, NULL);

	for (double end = t_now() + secs; t_now() < end;) {
		usleep(10000);
		t_step("writers, readers and mover: %ld moves, %ld exchanges so far",
		       atomic_load(&moves), atomic_load(&xchgs));
	}
	atomic_store(&stop, 1);
	for (int w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	for (int r = 0; r < NREADERS; r++)
		pthread_join(rt[r], NULL);
	pthread_join(pw, NULL);
	pthread_join(mv, NULL);

	/* Every byte, every page. */
	for (size_t i = 0; i < ncnt_pages; i++) {
		size_t size, no;
		char *p = cnt_page(i, &size, &no);
		uint64_t e[NWRITERS];

		for (int w = 0; w < NWRITERS; w++)
			e[w] = expect[w][i];
		bad += t_check_page(p, size, no, SEED, NWRITERS, e);
	}
	for (int a = 0; a < 2; a++) {
		size_t psz = sum[a].size / sum[a].npages;

		for (size_t i = 0; i < sum[a].npages; i++) {
			uint64_t *p = (uint64_t *)(sum[a].base + i * psz);
			uint64_t g = last_gen[a][i], s = 0;

			if (!g)
				continue;
			for (size_t k = 2; k < psz / 8; k++) {
				if (p[k] != payload(g, k))
					bad++;
				s += p[k];
			}
			if (p[0] != 2 * g || p[1] != s)
				bad++;
		}
	}
	pmv_tier_stats(ctx, 0, &st0);
	pmv_tier_stats(ctx, 1, &st1);
	pmv_ctx_stats(ctx, &cs);
	printf("%-8s%s %.1fs: %ld pages moved, %ld pairs exchanged (%llu MB), %llu faults "
	       "waited, %ld torn reads, %ld bad bytes\n",
	       engine == PMV_COPY_AUTO ? "auto" : engine == PMV_COPY_MEMCPY ? "memcpy" :
	       engine == PMV_COPY_NT ? "nt" : engine == PMV_COPY_PARALLEL ? "parallel" : "offload",
	       flags & PMV_CTX_WP_COPY ? " wp-copy" : "", secs, atomic_load(&moves), atomic_load(&xchgs),
	       (unsigned long long)(cs.migrate_bytes >> 20),
	       (unsigned long long)cs.faults_waited, atomic_load(&torn), bad);
	T_EQ(bad, 0);
	T_EQ(atomic_load(&torn), 0);
	T_EQ(atomic_load(&bad_status), 0);
	T_ASSERT(atomic_load(&moves) > 0, "no progress: %ld moves", atomic_load(&moves));
	T_ASSERT(atomic_load(&xchgs) > 0, "no progress: %ld exchanges", atomic_load(&xchgs));
	/* Accounting matches what is mapped: every page of every area is resident. */
	T_EQ(st0.resident_4k + st1.resident_4k,
	     cnt[0].npages + sum[0].npages + (huge ? 0 : cnt[1].npages + sum[1].npages));
	T_EQ(st0.resident_2m + st1.resident_2m, huge ? cnt[1].npages + sum[1].npages : 0);
	pmv_destroy(ctx);
	for (int w = 0; w < NWRITERS; w++)
		free(expect[w]);
	for (int a = 0; a < 2; a++)
		free(last_gen[a]);
	return bad;
}

static double secs;
static const int engines[] = { PMV_COPY_AUTO, PMV_COPY_MEMCPY, PMV_COPY_NT, PMV_COPY_PARALLEL,
			       PMV_COPY_OFFLOAD };
static const char *const engine_names[] = { "auto", "memcpy", "nt", "parallel", "offload" };

/* variant: the engine; beyond them, auto with 2 MB pages copied under WP */
static int test_concurrent_writers_readers_and_moves_keep_every_byte(const struct t_case *c)
{
	int n = (int)(sizeof(engines) / sizeof(engines[0]));

	if (c->variant < n)
		return run(engines[c->variant], secs, c->huge, 0) ? 1 : 0;
	return run(PMV_COPY_AUTO, secs, c->huge, PMV_CTX_WP_COPY) ? 1 : 0;
}

int main(int argc, char **argv)
{
	int huge = t_thp_enabled(), n = (int)(sizeof(engines) / sizeof(engines[0]));
	struct t_suite s;

	secs = argc > 1 ? atof(argv[1]) : t_duration(1.5);
	t_suite_init(&s);
	if (!huge)
		printf("note: THP disabled, 2 MB areas use 4 KB pages\n");
	for (int e = 0; e <= n; e++) {
		/* huge: 2 MB areas too where THP allows; the name has no size */
		char name[128];
		struct t_case c = { .mode = -1, .huge = huge, .variant = e, .name = name };

		snprintf(name, sizeof(name),
			 "test_concurrent_writers_readers_and_moves_keep_every_byte_%s",
			 e < n ? engine_names[e] : "auto_wp_copy");
		t_run_isolated(&s, &c, test_concurrent_writers_readers_and_moves_keep_every_byte, 0);
	}
	return t_suite_end(&s);
}
