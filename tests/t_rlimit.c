/* SPDX-License-Identifier: MIT */
/*
 * Resource limits and memory locking on managed memory, as for ordinary
 * anonymous memory:
 *  - RLIMIT_AS: if pmv_mmap() succeeds, every byte can be touched (the
 *    pools a first touch needs are part of what must fit); if the limit
 *    does not allow it, pmv_mmap() fails with ENOMEM, never a later SIGBUS.
 *    Also while parked pages hold every hole of the pools, and (in every
 *    mode and page size) while the agitator moves the pages touched
 *    before the limit was tightened. The limits are
 *    the current VmSize plus a margin, so this runs under ASan (which
 *    reserves terabytes) too.
 *  - mlockall(MCL_CURRENT | MCL_FUTURE): pool chunks and regions made after
 *    it are neither populated nor locked (RSS does not jump by a chunk's
 *    VA), and data survives touches and moves; over pools that already
 *    exist, no byte is lost either, the pools are emptied again, and every
 *    page moves once unlocked.
 *  - RLIMIT_MEMLOCK without CAP_IPC_LOCK: mlock of managed memory fails as
 *    the kernel says and loses nothing; under MCL_FUTURE, pmv_mmap works.
 * Every part runs in a forked child with a watchdog: a hang or a SIGBUS
 * fails that part only.
 */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "harness.h"

#define SEED		0x51a
#define WATCHDOG_S	120
#define MB		(1UL << 20)

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT	1
#endif

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN	1
#endif
#endif
#ifndef T_ASAN
#define T_ASAN	0
#endif

/* Count a failed check and go on: a part reports all it saw. */
#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			T_REPORT(#cond, __VA_ARGS__);			\
			fails++;					\
		}							\
	} while (0)

static int thp;

static long status_kb(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	size_t n = strlen(key);
	char line[256];
	long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			kb = atol(line + n + 1);
	fclose(f);
	return kb;
}

/* Address space in use now, in bytes: what RLIMIT_AS is checked against. */
static size_t vm_size(void)
{
	return (size_t)status_kb("VmSize") << 10;
}

/*
 * Wait (at most a second) until every other thread sleeps, i.e. has run:
 * under ASan a new thread maps its signal stack when it first runs, and
 * under a limit set before that it dies for want of VA.
 */
static void wait_threads_started(void)
{
	for (int round = 0; round < 100; round++) {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;
		int busy = 0;

		if (!d)
			return;
		while ((e = readdir(d))) {
			char path[300], buf[512], *st;
			FILE *f;

			if (e->d_name[0] == '.' || atoi(e->d_name) == (int)syscall(SYS_gettid))
				continue;
			snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			st = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
			busy += st && st[1] == ' ' && st[2] == 'R';
			fclose(f);
		}
		closedir(d);
		if (!busy)
			return;
		usleep(10000);
	}
}

static int set_as_limit(size_t bytes)
{
	struct rlimit rl;

	if (bytes != RLIM_INFINITY)
		wait_threads_started();
	getrlimit(RLIMIT_AS, &rl);
	rl.rlim_cur = bytes;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
		rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_AS, &rl);
}

static void drop_as_limit(void)
{
	set_as_limit(RLIM_INFINITY);
}

/* Fill every page, then check every byte; returns the bad pages. */
static long fill_and_check(char *p, size_t len, size_t psz, unsigned seed)
{
	long bad = 0;

	for (size_t i = 0; i < len / psz; i++)
		t_fill(p + i * psz, psz, i, seed);
	for (size_t i = 0; i < len / psz; i++)
		bad += t_check(p + i * psz, psz, i, seed) != -1;
	return bad;
}

static long check_all(const char *p, size_t len, size_t psz, unsigned seed)
{
	long bad = 0;

	for (size_t i = 0; i < len / psz; i++) {
		long off = t_check(p + i * psz, psz, i, seed);

		if (off != -1 && bad++ < 4)
			fprintf(stderr, "page %zu: first bad byte at %ld\n", i, off);
	}
	return bad;
}

/*
 * Move every page to `to` in batches of 512. Any status is allowed (a
 * full pool or a locked page may refuse): only data loss fails, and the
 * caller checks that. Returns how many pages moved.
 */
static size_t move_all(pmv_ctx *ctx, char *p, size_t len, size_t psz, int to)
{
	size_t n = len / psz, moved = 0;
	void *pages[512];
	int tiers[512], status[512];

	for (size_t first = 0; first < n; first += 512) {
		size_t k = n - first < 512 ? n - first : 512;

		for (size_t i = 0; i < k; i++) {
			pages[i] = p + (first + i) * psz;
			tiers[i] = to;
		}
		pmv_move_pages(ctx, k, pages, tiers, status, 0);
		for (size_t i = 0; i < k; i++)
			moved += status[i] == to;
	}
	return moved;
}

/*
 * Run body(arg) in a child under a watchdog; returns its failure count as
 * seen from here: a signal (SIGBUS, the watchdog's SIGALRM) is a failure.
 */
static int in_child(const char *name, int (*body)(const void *), const void *arg)
{
	int ws;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		T_REPORT("fork", "%s: %s", name, strerror(errno));
		return 1;
	}
	if (!pid) {
		alarm(WATCHDOG_S);
		_exit(body(arg) ? 1 : 0);
	}
	if (waitpid(pid, &ws, 0) != pid) {
		T_REPORT("waitpid", "%s: %s", name, strerror(errno));
		return 1;
	}
	if (WIFSIGNALED(ws)) {
		T_REPORT("child", "%s: killed by %s%s", name, strsignal(WTERMSIG(ws)),
			 WTERMSIG(ws) == SIGALRM ? " (watchdog: it hung)" : "");
		return 1;
	}
	return WEXITSTATUS(ws) ? 1 : 0;
}

/* ---- RLIMIT_AS ---------------------------------------------------------- */

struct as_case {
	int huge;
	size_t len;		/* the region asked for */
	size_t room;		/* VA the limit allows above VmSize */
	int expect_ok;
};

/* The VA a region takes: a 2 MB one maps one more page to align itself. */
static size_t region_va(size_t len, int huge)
{
	return len + (huge ? T_SZ_2M : 0);
}

/*
 * Under VmSize + room: pmv_mmap either succeeds as expected and every
 * byte is touchable (and survives moves both ways, whose statuses may be
 * anything), or fails with ENOMEM and a message, as expected.
 */
static int as_case_body(const void *arg)
{
	const struct as_case *c = arg;
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K;
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	int fails = 0;
	char *p;

	if (set_as_limit(vm_size() + c->room)) {
		T_REPORT("setrlimit", "%s", strerror(errno));
		return 1;
	}
	p = pmv_mmap(ctx, c->len, 0, c->huge ? PMV_HUGE : 0);
	if (!c->expect_ok) {
		CHECK(!p && errno == ENOMEM, "%zu MB in %zu MB: %p, errno %d (%s)",
		      c->len / MB, c->room / MB, (void *)p, p ? 0 : errno, pmv_errmsg());
		CHECK(p || *pmv_errmsg(), "no message for the failure");
	} else {
		CHECK(p, "%zu MB in %zu MB: %s (%s)", c->len / MB, c->room / MB,
		      strerror(errno), pmv_errmsg());
	}
	if (p) {
		/* first touches under the limit: a SIGBUS kills the child */
		CHECK(fill_and_check(p, c->len, psz, SEED) == 0, "data wrong after first touch");
		/*
		 * The moves allocate their batches; under ASan a failed mmap
		 * for one is fatal ("Failed to mmap") where glibc's malloc
		 * returns NULL (-ENOMEM, data intact). The touch above, the
		 * point of this part, ran under the tight limit.
		 */
		if (T_ASAN)
			drop_as_limit();
		move_all(ctx, p, c->len, psz, 1);
		move_all(ctx, p, c->len, psz, 0);
		CHECK(check_all(p, c->len, psz, SEED) == 0, "data wrong after moves");
		CHECK(pmv_munmap(ctx, p, c->len) == 0, "munmap");
	}
	drop_as_limit();
	pmv_destroy(ctx);
	return fails;
}

/*
 * The boundary: raise the VA to spare step by step from nothing. Every
 * failure on the way must be ENOMEM, and the first success (the one that
 * has to fit the pools too) must be touchable. Before pmv_mmap reserved
 * the pools, the first success fit only the region, and its first touch
 * got SIGBUS.
 */
static int as_sweep_body(const void *arg)
{
	const struct as_case *c = arg;
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K;
	size_t step = c->huge ? MB : 16 << 10, spare;
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	int fails = 0;
	char *p = NULL;

	for (spare = 0; spare <= c->room && !p && !fails; spare += step) {
		/* VmSize again: a failed call may have left a pool chunk */
		if (set_as_limit(vm_size() + region_va(c->len, c->huge) + spare)) {
			T_REPORT("setrlimit", "%s", strerror(errno));
			return 1;
		}
		p = pmv_mmap(ctx, c->len, 0, c->huge ? PMV_HUGE : 0);
		if (!p)
			CHECK(errno == ENOMEM, "%zu KB spare: errno %d (%s)", spare >> 10,
			      errno, pmv_errmsg());
	}
	CHECK(p, "no success with up to %zu MB to spare", c->room / MB);
	if (p) {
		printf("%s: first success with %zu KB to spare\n", c->huge ? "2 MB" : "4 KB",
		       (spare - step) >> 10);
		CHECK(fill_and_check(p, c->len, psz, SEED) == 0, "data wrong after first touch");
		/*
		 * The moves allocate their batches; under ASan a failed mmap
		 * for one is fatal ("Failed to mmap") where glibc's malloc
		 * returns NULL (-ENOMEM, data intact). The touch above, the
		 * point of this part, ran under the tight limit.
		 */
		if (T_ASAN)
			drop_as_limit();
		move_all(ctx, p, c->len, psz, 1);
		move_all(ctx, p, c->len, psz, 0);
		CHECK(check_all(p, c->len, psz, SEED) == 0, "data wrong after moves");
		CHECK(pmv_munmap(ctx, p, c->len) == 0, "munmap");
	}
	drop_as_limit();
	pmv_destroy(ctx);
	return fails;
}

static int no_thp(const char *name)
{
	if (thp)
		return 0;
	printf("note: THP disabled: %s not run\n", name);
	return 1;
}

static int as_4k_region_that_fits_is_touchable(void)
{
	/* room for the region and full 32 MB chunks on both tiers */
	struct as_case c = { 0, 16 * MB, 16 * MB + 2 * 32 * MB + 32 * MB, 1 };

	return in_child(__func__, as_case_body, &c);
}

static int as_4k_fits_with_smaller_pool_chunks(void)
{
	/* too little for even one full chunk: the pools make do with less */
	struct as_case c = { 0, 16 * MB, 16 * MB + 16 * MB, 1 };

	return in_child(__func__, as_case_body, &c);
}

static int as_4k_region_too_big_fails_enomem(void)
{
	struct as_case c = { 0, 128 * MB, 64 * MB, 0 };

	return in_child(__func__, as_case_body, &c);
}

static int as_4k_first_success_is_touchable(void)
{
	struct as_case c = { 0, MB, 8 * MB, 1 };

	return in_child(__func__, as_sweep_body, &c);
}

static int as_2m_region_that_fits_is_touchable(void)
{
	/* the region and full 512 MB chunks on both tiers */
	struct as_case c = { 1, 32 * MB, 34 * MB + 2 * 514 * MB + 32 * MB, 1 };

	if (no_thp(__func__))
		return 0;
	return in_child(__func__, as_case_body, &c);
}

static int as_2m_fits_with_smaller_pool_chunks(void)
{
	/* a few 2 MB slots per tier, far below a 512 MB chunk */
	struct as_case c = { 1, 32 * MB, 34 * MB + 96 * MB, 1 };

	if (no_thp(__func__))
		return 0;
	return in_child(__func__, as_case_body, &c);
}

static int as_2m_region_too_big_fails_enomem(void)
{
	struct as_case c = { 1, 256 * MB, 128 * MB, 0 };

	if (no_thp(__func__))
		return 0;
	return in_child(__func__, as_case_body, &c);
}

static int as_2m_first_success_is_touchable(void)
{
	struct as_case c = { 1, 8 * MB, 128 * MB, 1 };

	if (no_thp(__func__))
		return 0;
	return in_child(__func__, as_sweep_body, &c);
}

/*
 * Parked pages hold pool holes for as long as they stay cold. Under a
 * limit that leaves the pools only small chunks, sample a cold region
 * until parking has taken the holes, then first-touch a bound region page
 * by page, slowly enough for the sampler to take every hole a touch gives
 * back. No first touch may get SIGBUS: the tier has room, only VA is
 * short. Whether parking wins the race is timing; passing never depends
 * on it.
 */
static int as_sampling_body(const void *arg)
{
	size_t cold_len = 4 * MB, len = 4 * MB, psz = T_SZ_4K;
	struct pmv_ctx_stats cs;
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	int fails = 0;
	char *cold, *p;

	(void)arg;
	pmv_ctx_stats(ctx, &cs);
	if (cs.mode == PMV_MODE_USER_ONLY) {
		printf("note: user-mode-only userfaultfd: nothing is parked\n");
		pmv_destroy(ctx);
		return 0;
	}
	/* small pools for the cold region, then hardly any VA to spare */
	if (set_as_limit(vm_size() + cold_len + MB)) {
		T_REPORT("setrlimit", "%s", strerror(errno));
		return 1;
	}
	cold = pmv_mmap(ctx, cold_len, 0, 0);
	CHECK(cold, "pmv_mmap: %s (%s)", strerror(errno), pmv_errmsg());
	if (cold && set_as_limit(vm_size() + len + 256 * 1024)) {
		T_REPORT("setrlimit", "%s", strerror(errno));
		return 1;
	}
	p = cold ? pmv_mmap(ctx, len, 0, PMV_BIND) : NULL;	/* bound: never parked */
	CHECK(!cold || p, "pmv_mmap: %s (%s)", strerror(errno), pmv_errmsg());
	if (cold && p) {
		struct timespec pause = { 0, 2000000 }, start = { 0, 200000000 };

		CHECK(fill_and_check(cold, cold_len, psz, SEED) == 0, "cold region wrong");
		nanosleep(&start, NULL);
		for (size_t i = 0; i < len / psz; i++) {
			t_fill(p + i * psz, psz, i, SEED + 1);
			if (i % 4 == 0)
				nanosleep(&pause, NULL);
		}
		pmv_ctx_stats(ctx, &cs);
		printf("sampling under RLIMIT_AS: %llu pages parked at the end\n",
		       (unsigned long long)cs.parked);
		CHECK(check_all(p, len, psz, SEED + 1) == 0, "bound region wrong");
		CHECK(check_all(cold, cold_len, psz, SEED) == 0, "cold region wrong");
	}
	drop_as_limit();
	pmv_destroy(ctx);
	return fails;
}

static int as_first_touch_while_parked_pages_hold_the_holes(void)
{
	return in_child(__func__, as_sampling_body, NULL);
}

/* ---- RLIMIT_AS while pages migrate, exchange, are parked, policy on ----- */

struct as_mode_case {
	int mode, huge;
};

/*
 * First touches of half a region under a tight RLIMIT_AS while the other
 * half's pages migrate, exchange, are parked or the policy moves them:
 * every touch is served (a SIGBUS kills the child) and every byte is
 * right. The agitator's moves may fail for want of VA (-ENOMEM), nothing
 * else. Under ASan the limit is not set for the agitated part: there a
 * failed mmap for a move batch is fatal.
 */
static int as_mode_body(const void *arg)
{
	const struct as_mode_case *c = arg;
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K, len = c->huge ? 16 * MB : 4 * MB;
	size_t n = len / psz, half = n / 2;
	pmv_ctx *ctx = t_ctx_mode(c->mode, len / 2, NULL);
	_Atomic uint8_t *untouched = calloc(n, 1);
	struct rlimit rl;
	struct t_agit ag;
	int fails = 0;
	char *p;

	/* room for the region and a few pool slots per tier (the parts above) */
	if (!untouched || set_as_limit(vm_size() + region_va(len, c->huge) +
				       (c->huge ? 96 : 16) * MB)) {
		T_REPORT("setup", "%s", strerror(errno));
		return 1;
	}
	p = pmv_mmap(ctx, len, 0, c->huge ? PMV_HUGE : 0);
	CHECK(p, "pmv_mmap under the limit: %s (%s)", strerror(errno), pmv_errmsg());
	/* the agitator's thread stack is VA too: made without the limit */
	drop_as_limit();
	if (!p) {
		pmv_destroy(ctx);
		return fails;
	}
	for (size_t i = 0; i < n; i++) {
		if (i < half)
			t_fill(p + i * psz, psz, i, SEED + 3);
		else
			atomic_store(&untouched[i], 1);
	}
	t_agit_init(&ag, ctx, c->mode, p, psz, n, SEED + 7 * c->mode + c->huge);
	ag.allow[1] = -ENOMEM;
	ag.untouched = untouched;
	t_agit_run(&ag);
	t_agit_sync(&ag, 2);
	/* now hardly any VA to spare: what the touches need was reserved */
	getrlimit(RLIMIT_AS, &rl);
	rl.rlim_cur = vm_size() + MB;
	if (!T_ASAN && setrlimit(RLIMIT_AS, &rl))
		CHECK(0, "setrlimit: %s", strerror(errno));
	for (size_t i = half; i < n; i += 4) {
		size_t end = i + 4 < n ? i + 4 : n;

		for (size_t j = i; j < end; j++)
			t_fill(p + j * psz, psz, j, SEED + 3);
		/* a call in flight during the touch may still say -ENOENT: let it end */
		t_agit_sync(&ag, 1);
		for (size_t j = i; j < end; j++)
			atomic_store(&untouched[j], 0);
	}
	t_agit_sync(&ag, 8);
	drop_as_limit();
	fails += t_agit_check(&ag, "RLIMIT_AS", 1);
	CHECK(check_all(p, len, psz, SEED + 3) == 0, "data wrong after touches under the limit");
	CHECK(pmv_munmap(ctx, p, len) == 0, "munmap");
	pmv_destroy(ctx);
	free((void *)untouched);
	return fails;
}

/* ---- mlockall ----------------------------------------------------------- */

/*
 * After mlockall(MCL_CURRENT | MCL_FUTURE): pmv_mmap, the pool chunks it
 * reserves and the first touches populate and lock nothing beyond the
 * pages touched; moves keep every byte (any status allowed).
 */
static int mlockall_body(const void *arg)
{
	int huge = *(const int *)arg;
	size_t len = huge ? 32 * MB : 16 * MB, psz = huge ? T_SZ_2M : T_SZ_4K;
	/* ASan: MCL_CURRENT would populate its terabytes of shadow */
	int how = T_ASAN ? MCL_FUTURE : MCL_CURRENT | MCL_FUTURE;
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	long rss0, lck0, rss1, lck1, rss2;
	int fails = 0;
	size_t up, down;
	char *p;

	if (T_ASAN)
		printf("note: ASan build: mlockall(MCL_FUTURE) only\n");
	if (syscall(SYS_mlockall, how)) {
		T_REPORT("mlockall", "%s", strerror(errno));
		pmv_destroy(ctx);
		return 1;
	}
	rss0 = status_kb("VmRSS");
	lck0 = status_kb("VmLck");
	p = pmv_mmap(ctx, len, 0, huge ? PMV_HUGE : 0);
	rss1 = status_kb("VmRSS");
	lck1 = status_kb("VmLck");
	CHECK(p, "pmv_mmap under MCL_FUTURE: %s (%s)", strerror(errno), pmv_errmsg());
	if (!p)
		goto out;
	/* a populated 4 KB chunk is 32 MB, a 2 MB one 512 MB; the region is len */
	CHECK(rss1 - rss0 < 4096, "pmv_mmap populated %ld kB", rss1 - rss0);
	CHECK(lck1 - lck0 < 4096, "pmv_mmap locked %ld kB", lck1 - lck0);
	CHECK(fill_and_check(p, len, psz, SEED) == 0, "data wrong after first touch");
	rss2 = status_kb("VmRSS");
	/* beyond the region: the fault helper's clean pages (8 MB of 2 MB ones), a little of ours */
	CHECK(rss2 - rss0 < (long)(len >> 10) + 12288, "touching %zu kB made %ld kB resident",
	      len >> 10, rss2 - rss0);
	up = move_all(ctx, p, len, psz, 1);
	down = move_all(ctx, p, len, psz, 0);
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after moves");
	printf("%s under mlockall: %zu of %zu pages moved down, %zu back\n",
	       huge ? "2 MB" : "4 KB", up, len / psz, down);
	CHECK(syscall(SYS_munlockall) == 0, "munlockall: %s", strerror(errno));
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after munlockall");
	CHECK(pmv_munmap(ctx, p, len) == 0, "munmap");
out:
	syscall(SYS_munlockall);
	pmv_destroy(ctx);
	return fails;
}

static int mlockall_4k_pools_and_region_stay_unpopulated(void)
{
	int huge = 0;

	return in_child(__func__, mlockall_body, &huge);
}

static int mlockall_2m_pools_and_region_stay_unpopulated(void)
{
	int huge = 1;

	if (no_thp(__func__))
		return 0;
	return in_child(__func__, mlockall_body, &huge);
}

/* Move every page to tier `to`, and the ones that met a lock once more. */
static size_t move_all_again(pmv_ctx *ctx, char *p, size_t len, size_t psz, int to)
{
	size_t moved = move_all(ctx, p, len, psz, to);

	return moved < len / psz ? move_all(ctx, p, len, psz, to) : moved;
}

/*
 * mlockall(MCL_CURRENT) when pools already exist locks them and fills
 * their writable part, holes too (under ASan, t_lock_current() mlocks
 * every mapping but the shadow instead). No byte may be lost: of a region
 * from before, of one made after (under MCL_FUTURE), through moves, and
 * after munlockall; then every page moves again, and resident memory has
 * grown by less than twice the regions and a fixed 48 MB (the pools the
 * mlock filled were emptied again; under ASan, only noted).
 */
static int mlockall_live_body(const void *arg)
{
	size_t len = 4 * MB, psz = T_SZ_4K, n = len / psz;
	pmv_ctx *ctx = t_ctx(2, NULL, 0);
	long rss0, rss1;
	int fails = 0;
	char *p, *q = NULL;

	(void)arg;
	p = pmv_mmap(ctx, len, 0, 0);
	CHECK(p, "pmv_mmap: %s (%s)", strerror(errno), pmv_errmsg());
	if (!p) {
		pmv_destroy(ctx);
		return fails;
	}
	CHECK(fill_and_check(p, len, psz, SEED) == 0, "data wrong after first touch");
	move_all(ctx, p, len, psz, 1);
	move_all(ctx, p, len, psz, 0);
	rss0 = status_kb("VmRSS");
	if (t_lock_current()) {
		T_REPORT("mlockall", "%s", strerror(errno));
		fails++;
		goto out;
	}
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after mlockall");
	move_all(ctx, p, len, psz, 1);
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after moves");
	q = pmv_mmap(ctx, len, 1, 0);
	CHECK(q, "pmv_mmap under MCL_FUTURE: %s (%s)", strerror(errno), pmv_errmsg());
	if (q) {
		CHECK(fill_and_check(q, len, psz, SEED + 1) == 0, "data wrong after first touch");
		move_all(ctx, q, len, psz, 0);
	}
	CHECK(syscall(SYS_munlockall) == 0, "munlockall: %s", strerror(errno));
	CHECK(move_all_again(ctx, p, len, psz, 1) == n, "pages of the old region stuck after "
	      "munlockall");
	CHECK(move_all_again(ctx, p, len, psz, 0) == n, "pages of the old region stuck after "
	      "munlockall");
	if (q) {
		CHECK(move_all_again(ctx, q, len, psz, 1) == n, "pages of the new region stuck "
		      "after munlockall");
		CHECK(check_all(q, len, psz, SEED + 1) == 0, "data wrong after munlockall");
		CHECK(pmv_munmap(ctx, q, len) == 0, "munmap");
	}
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after munlockall");
	rss1 = status_kb("VmRSS");
	printf("mlockall over live pools: VmRSS %ld kB before, %ld kB after munlockall and moves\n",
	       rss0, rss1);
	/* under ASan the mlock fills its own memory too: noted, not judged */
	if (T_ASAN && rss1 - rss0 >= (long)(2 * 2 * len >> 10) + 48 * 1024)
		printf("note (ASan): resident memory grew by %ld kB\n", rss1 - rss0);
	else
		CHECK(rss1 - rss0 < (long)(2 * 2 * len >> 10) + 48 * 1024,
		      "resident memory grew by %ld kB", rss1 - rss0);
out:
	syscall(SYS_munlockall);
	CHECK(pmv_munmap(ctx, p, len) == 0, "munmap");
	pmv_destroy(ctx);
	return fails;
}

static int mlockall_over_live_pools_loses_no_data(void)
{
	return in_child(__func__, mlockall_live_body, NULL);
}

/* ---- RLIMIT_MEMLOCK ----------------------------------------------------- */

#define MEMLOCK_LIMIT	(4 * MB)

static int lock_refused(long ret)
{
	return ret == -1 && (errno == ENOMEM || errno == EPERM);
}

/*
 * Without CAP_IPC_LOCK and with a small RLIMIT_MEMLOCK, mlock, mlock2 and
 * mlockall(MCL_CURRENT) of managed memory fail as the kernel says and the
 * data stays; under mlockall(MCL_FUTURE), which the limit allows, pmv_mmap
 * still works: its mappings are unlocked at once, so they are not charged.
 */
static int memlock_body(const void *arg)
{
	size_t len = 16 * MB, psz = T_SZ_4K;
	struct rlimit rl = { MEMLOCK_LIMIT, MEMLOCK_LIMIT };
	pmv_ctx *ctx;
	int fails = 0;
	char *p, *q;

	(void)arg;
	if (t_drop_cap_ipc_lock() || setrlimit(RLIMIT_MEMLOCK, &rl)) {
		T_REPORT("limits", "%s", strerror(errno));
		return 1;
	}
	ctx = t_ctx(2, NULL, 0);
	p = pmv_mmap(ctx, len, 0, 0);
	CHECK(p, "pmv_mmap: %s (%s)", strerror(errno), pmv_errmsg());
	if (!p) {
		pmv_destroy(ctx);
		return fails;
	}
	CHECK(fill_and_check(p, len, psz, SEED) == 0, "data wrong after first touch");
	CHECK(lock_refused(syscall(SYS_mlock, p, len)), "mlock over the limit: %s",
	      strerror(errno));
	CHECK(lock_refused(syscall(SYS_mlock2, p, len, MLOCK_ONFAULT)),
	      "mlock2(MLOCK_ONFAULT) over the limit: %s", strerror(errno));
	CHECK(lock_refused(syscall(SYS_mlockall, MCL_CURRENT)),
	      "mlockall(MCL_CURRENT) over the limit: %s", strerror(errno));
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after refused locks");
	move_all(ctx, p, len, psz, 1);
	move_all(ctx, p, len, psz, 0);
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong after moves");

	CHECK(syscall(SYS_mlockall, MCL_FUTURE) == 0, "mlockall(MCL_FUTURE): %s",
	      strerror(errno));
	q = pmv_mmap(ctx, len, 1, 0);
	CHECK(q, "pmv_mmap under MCL_FUTURE at RLIMIT_MEMLOCK: %s (%s)", strerror(errno),
	      pmv_errmsg());
	if (q) {
		CHECK(fill_and_check(q, len, psz, SEED + 1) == 0, "data wrong after first touch");
		move_all(ctx, q, len, psz, 0);
		CHECK(check_all(q, len, psz, SEED + 1) == 0, "data wrong after moves");
		CHECK(pmv_munmap(ctx, q, len) == 0, "munmap");
	}
	syscall(SYS_munlockall);
	CHECK(check_all(p, len, psz, SEED) == 0, "data wrong at the end");
	CHECK(pmv_munmap(ctx, p, len) == 0, "munmap");
	pmv_destroy(ctx);
	return fails;
}

static int memlock_limit_refuses_mlock_and_loses_nothing(void)
{
	return in_child(__func__, memlock_body, NULL);
}

int main(void)
{
	static const struct {
		const char *name;
		int (*fn)(void);
	} parts[] = {
#define PART(f) { #f, f }
		PART(as_4k_region_that_fits_is_touchable),
		PART(as_4k_fits_with_smaller_pool_chunks),
		PART(as_4k_region_too_big_fails_enomem),
		PART(as_4k_first_success_is_touchable),
		PART(as_2m_region_that_fits_is_touchable),
		PART(as_2m_fits_with_smaller_pool_chunks),
		PART(as_2m_region_too_big_fails_enomem),
		PART(as_2m_first_success_is_touchable),
		PART(as_first_touch_while_parked_pages_hold_the_holes),
		PART(mlockall_4k_pools_and_region_stay_unpopulated),
		PART(mlockall_2m_pools_and_region_stay_unpopulated),
		PART(mlockall_over_live_pools_loses_no_data),
		PART(memlock_limit_refuses_mlock_and_loses_nothing),
#undef PART
	};
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	thp = t_thp_enabled();
	/* skip here, not in a child, if the kernel cannot */
	pmv_destroy(t_ctx(2, NULL, 0));
	size_t nparts = sizeof(parts) / sizeof(parts[0]);

	for (size_t i = 0; i < nparts; i++) {
		if (parts[i].fn()) {
			printf("FAILED: %s\n", parts[i].name);
			failed++;
		}
	}
	for (int h = 0; h < 2; h++) {
		for (int m = 0; m < T_NMODES; m++) {
			struct as_mode_case c = { .mode = m, .huge = h };
			char name[96];

			snprintf(name, sizeof(name), "as_first_touch_under_the_limit_while_%s_%s",
				 t_mode_names[m], h ? "2m" : "4k");
			if (h && no_thp(name))
				continue;
			nparts++;
			if (in_child(name, as_mode_body, &c)) {
				printf("FAILED: %s\n", name);
				failed++;
			}
		}
	}
	if (failed) {
		printf("t_rlimit: %d of %zu parts failed\n", failed, nparts);
		return T_EXIT_FAIL;
	}
	printf("t_rlimit: RLIMIT_AS, mlockall and RLIMIT_MEMLOCK as for anonymous memory\n");
	return T_EXIT_PASS;
}
