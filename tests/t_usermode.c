/* SPDX-License-Identifier: MIT */
/*
 * The unprivileged fallback (UFFD_USER_MODE_ONLY): the kernel's own accesses
 * are not reported to us, so pmv_mmap() places every page at once.
 *  (a) PMV_CTX_USER_MODE_ONLY: mode is PMV_MODE_USER_ONLY; every page has a
 *      tier before any touch and reads as zero; migrations under concurrent
 *      writers keep every byte; read(2) and write(2) on managed pages that
 *      are not migrating work.
 *  (b) Without the flag, as an unprivileged user (as root: a child that drops
 *      to nobody), where /dev/userfaultfd is root-only and
 *      vm.unprivileged_userfaultfd is 0, the library falls back by itself,
 *      and pmv_ctx_stats() says why (PMV_MODE_WHY_DENIED, the device's errno).
 *  (c) As the caller is: the reason matches the mode; root gets full mode.
 * Each is a sub-test in a watchdog child; PMV_TEST_ONLY=name runs one.
 */
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "harness.h"

#define NWRITERS	2
#define SEED		0x0b0d
#define NOBODY		65534

struct area {
	char *base;
	size_t psz, npages, first;
};

static pmv_ctx *ctx;
static struct area areas[2];
static int nareas;
static size_t ntotal;
static uint64_t *expect[NWRITERS];
static atomic_int stop;
static atomic_long moves, bad_status;

static char *page_of(size_t i, size_t *psz)
{
	const struct area *a = i < areas[0].npages ? &areas[0] : &areas[1];

	*psz = a->psz;
	return a->base + (i - a->first) * a->psz;
}

static void *writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < ntotal; i++) {
			size_t psz;
			volatile uint64_t *c = (uint64_t *)(page_of(i, &psz) + w * 64);

			*c = *c + 1;
			expect[w][i]++;
		}
	}
	return NULL;
}

/*
 * A fixed number of rounds, not a time: each sends up to 64 distinct pages
 * to the tier they are not on, so every page that gets there is one
 * migration. -EBUSY is allowed (a page held by a fault); moves counts the
 * pages that arrived.
 */
static void *mover(void *arg)
{
	long rounds = (long)(intptr_t)arg;
	unsigned seed = 3;
	void *pages[64];
	int tiers[64], st[64];

	for (long r = 0; r < rounds; r++) {
		int n = 1 + rand_r(&seed) % 64;
		size_t first = rand_r(&seed) % ntotal;

		t_beat();
		for (int i = 0; i < n; i++) {
			size_t psz;
			char *p = page_of((first + i) % ntotal, &psz);

			pages[i] = p + rand_r(&seed) % psz;
		}
		if (pmv_move_pages(ctx, n, pages, NULL, st, 0)) {
			atomic_fetch_add(&bad_status, 1);
			continue;
		}
		for (int i = 0; i < n; i++)
			tiers[i] = 1 - st[i];
		if (pmv_move_pages(ctx, n, pages, tiers, st, 0) < 0)
			atomic_fetch_add(&bad_status, 1);
		for (int i = 0; i < n; i++) {
			if (st[i] == tiers[i]) {
				atomic_fetch_add(&moves, 1);
			} else if (st[i] != -EBUSY) {
				fprintf(stderr, "mover: status %d (%s)\n", st[i],
					pmv_strerror(st[i]));
				atomic_fetch_add(&bad_status, 1);
			}
		}
	}
	return NULL;
}

/* Every page has a tier before anything touched it, and reads as zero. */
static void check_populated(const char *what)
{
	for (size_t i = 0; i < ntotal; i++) {
		size_t psz;
		char *p = page_of(i, &psz);
		void *q = p + psz - 1;
		int st = -1;

		T_EQ(pmv_move_pages(ctx, 1, &q, NULL, &st, 0), 0);
		T_ASSERT(st == 0 || st == 1, "%s: page %zu before any touch: status %d (%s)",
			 what, i, st, pmv_strerror(st));
	}
	for (size_t i = 0; i < ntotal; i++) {
		size_t psz;
		const char *p = page_of(i, &psz);

		for (size_t k = 0; k < psz; k++)
			T_ASSERT(!p[k], "%s: page %zu byte %zu is 0x%02x", what, i, k,
				 (uint8_t)p[k]);
	}
}

static void map_areas(size_t npages4k, size_t npages2m)
{
	areas[0].psz = T_SZ_4K;
	areas[0].npages = npages4k;
	areas[0].base = pmv_mmap(ctx, npages4k * T_SZ_4K, 0, 0);
	T_ASSERT(areas[0].base, "pmv_mmap: %s (%s)", strerror(errno), pmv_errmsg());
	nareas = 1;
	ntotal = npages4k;
	if (npages2m) {
		areas[1].psz = T_SZ_2M;
		areas[1].npages = npages2m;
		areas[1].first = npages4k;
		areas[1].base = pmv_mmap(ctx, npages2m * T_SZ_2M, 1, PMV_HUGE);
		T_ASSERT(areas[1].base, "pmv_mmap huge: %s (%s)", strerror(errno), pmv_errmsg());
		nareas = 2;
		ntotal += npages2m;
	}
}

static void part_a(int thp)
{
	struct pmv_ctx_stats cs;
	struct pmv_tier_stats st0, st1;
	pthread_t wt[NWRITERS], mv;
	long rounds = (long)(800 * t_duration(1)), bad;
	int pfd[2];
	uint8_t buf[3000];

	ctx = t_ctx(2, NULL, PMV_CTX_USER_MODE_ONLY);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	T_EQ(cs.mode, PMV_MODE_USER_ONLY);
	/* pmv_create says why: the flag */
	T_EQ(cs.mode_why, PMV_MODE_WHY_ASKED);
	T_EQ(cs.mode_errno, 0);
	map_areas(256, thp ? 4 : 0);

	/* placed at pmv_mmap(), on the tier asked for */
	T_EQ(pmv_tier_stats(ctx, 0, &st0), 0);
	T_EQ(pmv_tier_stats(ctx, 1, &st1), 0);
	T_EQ(st0.resident_4k, 256);
	T_EQ(st1.resident_2m, thp ? 4 : 0);
	check_populated("user-mode-only");

	for (size_t i = 0; i < ntotal; i++) {
		size_t psz;
		char *p = page_of(i, &psz);

		t_fill(p, psz, i, SEED);
		for (int w = 0; w < NWRITERS; w++)
			memset(p + w * 64, 0, 8);
	}
	for (int w = 0; w < NWRITERS; w++)
		T_ASSERT((expect[w] = calloc(ntotal, 8)), "calloc");
	/* the writers run for as long as the mover's fixed work takes */
	for (long w = 0; w < NWRITERS; w++)
		pthread_create(&wt[w], NULL, writer, (void *)w);
	pthread_create(&mv, NULL, mover, (void *)(intptr_t)rounds);
	pthread_join(mv, NULL);
	atomic_store(&stop, 1);
	for (int w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	bad = t_check_counters(ntotal, page_of, SEED, NWRITERS, expect);
	T_EQ(bad, 0);
	T_EQ(atomic_load(&bad_status), 0);
	/* progress: at least one migration per round, and each one counted */
	T_ASSERT(atomic_load(&moves) >= rounds, "%ld pages moved in %ld rounds",
		 atomic_load(&moves), rounds);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	T_EQ(cs.migrations, atomic_load(&moves));

	/* with nothing migrating, the kernel reads and writes managed pages */
	T_EQ(pipe(pfd), 0);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = t_pat(4242, i, SEED);
	for (int k = 0; k < nareas; k++) {
		/* across two pages where the area has two */
		char *p = areas[k].base + areas[k].psz - sizeof(buf) / 2;

		if (p + sizeof(buf) > areas[k].base + areas[k].npages * areas[k].psz)
			p = areas[k].base;
		T_EQ(write(pfd[1], buf, sizeof(buf)), sizeof(buf));
		T_EQ(read(pfd[0], p, sizeof(buf)), sizeof(buf));
		T_ASSERT(!memcmp(p, buf, sizeof(buf)), "read(2) into a managed page: wrong data");
		memset(buf, 0, sizeof(buf));
		T_EQ(write(pfd[1], p, sizeof(buf)), sizeof(buf));
		T_EQ(read(pfd[0], buf, sizeof(buf)), sizeof(buf));
		T_ASSERT(!memcmp(p, buf, sizeof(buf)), "write(2) from a managed page: wrong data");
	}
	close(pfd[0]);
	close(pfd[1]);
	printf("(a) user-mode-only: %zu pages populated at pmv_mmap, %llu migrations under "
	       "%d writers, read/write(2): ok\n", ntotal, (unsigned long long)cs.migrations,
	       NWRITERS);
	pmv_destroy(ctx);
	for (int w = 0; w < NWRITERS; w++)
		free(expect[w]);
}

static int read_sysctl(const char *path)
{
	FILE *f = fopen(path, "r");
	int v = -1;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* (b), in a child: a context without the flag, small move + verify. */
static int part_b_child(int dropped)
{
	struct pmv_tier_config tc[2] = { { .name = "fast", .node = PMV_NODE_ANY },
					  { .name = "slow", .node = PMV_NODE_ANY } };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc };
	int sysctl = read_sysctl("/proc/sys/vm/unprivileged_userfaultfd");
	int dev_ok = access("/dev/userfaultfd", R_OK | W_OK) == 0;
	int thp = t_thp_enabled();
	struct pmv_ctx_stats cs;
	void *pages[65];
	int tiers[65], st[65];

	ctx = pmv_create(&cfg);
	T_ASSERT(ctx, "pmv_create as uid %d: %s (%s)", (int)getuid(), strerror(errno),
		 pmv_errmsg());
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	printf("(b) uid %d%s: vm.unprivileged_userfaultfd=%d, /dev/userfaultfd %s: mode %s\n",
	       (int)getuid(), dropped ? " (dropped from root)" : "", sysctl,
	       dev_ok ? "usable" : "not usable",
	       cs.mode == PMV_MODE_USER_ONLY ? "user-mode-only" : "full");
	if (sysctl == 0 && !dev_ok && getuid() != 0)
		T_EQ(cs.mode, PMV_MODE_USER_ONLY);
	T_ASSERT(cs.mode == PMV_MODE_FULL || cs.mode == PMV_MODE_USER_ONLY, "mode %u", cs.mode);
	/* and why: the device's errno when neither way gave kernel faults */
	if (cs.mode == PMV_MODE_USER_ONLY) {
		T_EQ(cs.mode_why, PMV_MODE_WHY_DENIED);
		T_ASSERT(cs.mode_errno == (access("/dev/userfaultfd", F_OK) ? ENOENT : EACCES),
			 "mode_errno %d (%s) for /dev/userfaultfd %s", cs.mode_errno,
			 strerror(cs.mode_errno), dev_ok ? "usable" : "not usable");
	} else {
		T_EQ(cs.mode_why, dev_ok ? PMV_MODE_WHY_DEVICE : PMV_MODE_WHY_SYSCALL);
		T_EQ(cs.mode_errno, 0);
	}

	map_areas(64, thp ? 1 : 0);
	if (cs.mode == PMV_MODE_USER_ONLY)
		check_populated("fallback");
	for (size_t i = 0; i < ntotal; i++) {
		size_t psz;

		pages[i] = page_of(i, &psz);
		t_fill(pages[i], psz, i, SEED + 1);
	}
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < ntotal; i++) {
			T_EQ(pmv_move_pages(ctx, 1, &pages[i], NULL, &st[i], 0), 0);
			tiers[i] = 1 - st[i];
		}
		T_EQ(pmv_move_pages(ctx, ntotal, pages, tiers, st, 0), 0);
		for (size_t i = 0; i < ntotal; i++) {
			size_t psz;

			T_EQ(st[i], tiers[i]);
			page_of(i, &psz);
			T_EQ(t_check(pages[i], psz, i, SEED + 1), -1);
		}
	}
	printf("(b) %zu pages moved there and back, every byte checked: ok\n", ntotal);
	pmv_destroy(ctx);
	return 0;
}

static void part_b(void)
{
	int dropped = geteuid() == 0;
	pid_t pid;
	int ws;

	fflush(stdout);
	pid = fork();
	T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (dropped) {
			T_EQ(setgroups(0, NULL), 0);
			T_EQ(setgid(NOBODY), 0);
			T_EQ(setuid(NOBODY), 0);
			T_ASSERT(setuid(0) < 0, "still able to become root");
			/*
			 * A process that drops root is made non-dumpable, and then
			 * its /proc/self files belong to root. One started by the
			 * user is dumpable: be that process.
			 */
			T_EQ(prctl(PR_SET_DUMPABLE, 1), 0);
		}
		exit(part_b_child(dropped));
	}
	T_EQ(waitpid(pid, &ws, 0), pid);
	T_ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "unprivileged child: status %#x", ws);
}

/* (c) As the caller is: the reason matches the mode, and root gets full. */
static void part_c(void)
{
	struct pmv_ctx_stats cs;

	ctx = t_ctx(2, NULL, 0);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	if (cs.mode == PMV_MODE_FULL)
		T_ASSERT(cs.mode_why == PMV_MODE_WHY_DEVICE || cs.mode_why == PMV_MODE_WHY_SYSCALL,
			 "full mode, mode_why %u", cs.mode_why);
	else
		T_EQ(cs.mode_why, PMV_MODE_WHY_DENIED);
	if (geteuid() == 0)
		T_EQ(cs.mode, PMV_MODE_FULL);
	printf("(c) as uid %d: mode %s, why %u\n", (int)geteuid(),
	       cs.mode == PMV_MODE_FULL ? "full" : "user-mode-only", cs.mode_why);
	pmv_destroy(ctx);
}

static int test_user_mode_only_places_pages_at_mmap_and_keeps_data(const struct t_case *c)
{
	part_a(c->huge);
	return 0;
}

static int test_unprivileged_user_falls_back_and_says_why(const struct t_case *c)
{
	(void)c;
	part_b();
	return 0;
}

static int test_mode_why_matches_the_callers_mode(const struct t_case *c)
{
	(void)c;
	part_c();
	return 0;
}

int main(void)
{
	int thp = t_thp_enabled();
	struct t_suite s;

	t_suite_init(&s);
	if (!thp)
		printf("note: THP disabled, 2 MB pages left out\n");
	T_CASE_ONE(&s, test_user_mode_only_places_pages_at_mmap_and_keeps_data, 1);
	T_CASE_ONE(&s, test_unprivileged_user_falls_back_and_says_why, 1);
	T_CASE_ONE(&s, test_mode_why_matches_the_callers_mode, 1);
	return t_suite_end(&s);
}
