/* SPDX-License-Identifier: MIT */
/*
 * The fault handlers (src/fault.c) wherever the program's threads run:
 * every fault answered and every byte right. Each sub-test runs the same
 * work twice, with the handlers following the faulting threads (the
 * default) and with one armed on every CPU (PAGEMOVE_FAULT_HANDLERS=all):
 *  - one worker per CPU, pinned there;
 *  - the workers' and the mover's affinity changed under them all the
 *    time, by sched_setaffinity from another thread;
 *  - the process inside a one-CPU cpuset (cgroup v1): made there, and
 *    moved there while it faults;
 *  - a signal storm at the workers and the mover, whose handler reads
 *    managed memory itself.
 * The work, per round and worker: read every byte of its areas (zero:
 * never touched, or discarded), fill every byte, check every byte, then
 * discard the 4 KB area (MADV_DONTNEED: an event) and unmap and map again
 * the 2 MB one; meanwhile a mover migrates random pages of every area and
 * the sampler parks them (PMV_POLICY_TRACK). So first touches, sampled
 * accesses, accesses that wait for a migration and events come from every
 * CPU at once. A fault left unanswered hangs a worker, and the sub-test's
 * watchdog (t_run_isolated) fails it. Fixed work: nothing is timed. A
 * cpuset case without root or a cgroup v1 cpuset is skipped, saying why,
 * and fails under CI=true.
 *
 * Then the races of several handlers with the program's own mremap,
 * munmap and MADV_DONTNEED (first_touches_race_*, sampled_accesses_race_*)
 * and where the handlers run (handlers_follow_*, handlers_stay_inside_*,
 * no_thread_is_made_after_*): see their sections below.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "harness.h"

#define SEED		0xfa17
#define NP4K		64		/* pages of a worker's 4 KB area */
#define NP2M		2		/* pages of its 2 MB area */
#define NSTABLE		16		/* 4 KB pages the signal handler reads */
#define MAXW		8
#define CPUSET_ROOT	"/sys/fs/cgroup/cpuset"

enum { AFFINITY_STILL, AFFINITY_CHANGES };
enum { CPUSET_NONE, CPUSET_BEFORE, CPUSET_DURING };

struct worker {
	pthread_t th;
	_Atomic pid_t tid;
	int idx, cpu;			/* pinned to cpu, or -1 */
	char *a4;			/* the 4 KB area */
	char *_Atomic a2;		/* the 2 MB area, mapped anew every round */
	atomic_long rounds, bad;
};

static pmv_ctx *ctx;
static bool ctx_bounded;	/* ahead_2m: regions bound to a bounded tier */
static struct worker wk[MAXW];
static int nw, nrounds, huge;
static char *stable;
static atomic_int stop_helpers;
static atomic_long handled, handler_bad, moves, mover_bad, changes, sent;
static pthread_t mover_th;
static _Atomic pid_t mover_tid;
static char cpuset_dir[128];
static int cpuset_cpu = -1;

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Global page numbers, for the pattern: worker i's pages never share one. */
static size_t id4(int w, size_t p)
{
	return (size_t)w * 1000 + p;
}

static size_t id2(int w, size_t p)
{
	return (size_t)w * 1000 + 500 + p;
}

static long check_zero(const char *p, size_t len, const char *what, int w, size_t page)
{
	long bad = 0;

	t_beat();	/* per page: a slow round (ASan, a signal storm) is not a hang */

	for (size_t i = 0; i < len; i++)
		if (p[i]) {
			if (!bad)
				fprintf(stderr, "worker %d %s page %zu offset %zu: 0x%02x, want 0\n",
					w, what, page, i, (uint8_t)p[i]);
			bad++;
		}
	return bad;
}

static long fill_check(char *p, size_t len, size_t id, unsigned seed, const char *what, int w)
{
	long off;

	t_fill(p, len, id, seed);
	off = t_check(p, len, id, seed);
	if (off < 0)
		return 0;
	fprintf(stderr, "worker %d %s page %zu offset %ld: 0x%02x, want 0x%02x\n", w, what, id,
		off, (uint8_t)p[off], t_pat(id, off, seed));
	return 1;
}

static void *worker(void *arg)
{
	struct worker *w = arg;

	atomic_store(&w->tid, gettid_());
	if (w->cpu >= 0) {
		cpu_set_t one;

		CPU_ZERO(&one);
		CPU_SET(w->cpu, &one);
		sched_setaffinity(0, sizeof(one), &one);
	}
	for (int r = 0; r < nrounds; r++) {
		unsigned seed = SEED ^ (unsigned)r << 4;
		long bad = 0;

		for (size_t p = 0; p < NP4K; p++)
			bad += check_zero(w->a4 + p * T_SZ_4K, T_SZ_4K, "4k", w->idx, p);
		for (size_t p = 0; p < NP4K; p++)
			bad += fill_check(w->a4 + p * T_SZ_4K, T_SZ_4K, id4(w->idx, p), seed, "4k",
					  w->idx);
		for (size_t p = 0; p < NP4K; p++)
			if (t_check(w->a4 + p * T_SZ_4K, T_SZ_4K, id4(w->idx, p), seed) >= 0)
				bad++;
		if (t_sys_madvise(w->a4, NP4K * T_SZ_4K, MADV_DONTNEED)) {
			fprintf(stderr, "worker %d: madvise: %s\n", w->idx, strerror(errno));
			bad++;
		}
		if (huge) {
			char *a2 = atomic_load(&w->a2), *n;

			for (size_t p = 0; p < NP2M; p++)
				bad += check_zero(a2 + p * T_SZ_2M, T_SZ_2M, "2m", w->idx, p);
			for (size_t p = 0; p < NP2M; p++)
				bad += fill_check(a2 + p * T_SZ_2M, T_SZ_2M, id2(w->idx, p), seed,
						  "2m", w->idx);
			for (size_t p = 0; p < NP2M; p++)
				if (t_check(a2 + p * T_SZ_2M, T_SZ_2M, id2(w->idx, p), seed) >= 0)
					bad++;
			n = t_map(ctx, NP2M * T_SZ_2M, w->idx & 1, PMV_HUGE);
			atomic_store(&w->a2, n);
			if (t_unmap(ctx, a2, NP2M * T_SZ_2M)) {
				fprintf(stderr, "worker %d: pmv_munmap failed\n", w->idx);
				bad++;
			}
		}
		atomic_fetch_add(&w->bad, bad);
		atomic_fetch_add(&w->rounds, 1);
		t_beat();
	}
	return NULL;
}

/* Random pages of every area to random tiers; any status but a wrong tier. */
static void *mover(void *arg)
{
	unsigned seed = 77;

	(void)arg;
	atomic_store(&mover_tid, gettid_());
	while (!atomic_load(&stop_helpers)) {
		void *pages[8];
		int tiers[8], st[8], n = 1 + rand_r(&seed) % 8, to = rand_r(&seed) & 1;

		for (int i = 0; i < n; i++) {
			struct worker *w = &wk[rand_r(&seed) % nw];
			int which = rand_r(&seed) % 4;

			if (which == 0)
				pages[i] = stable + (rand_r(&seed) % NSTABLE) * T_SZ_4K;
			else if (which == 1 && huge)
				pages[i] = atomic_load(&w->a2) + (rand_r(&seed) % NP2M) * T_SZ_2M;
			else
				pages[i] = w->a4 + (rand_r(&seed) % NP4K) * T_SZ_4K;
			tiers[i] = to;
		}
		if (pmv_move_pages(ctx, n, pages, tiers, st, 0) < 0) {
			atomic_fetch_add(&mover_bad, 1);
			continue;
		}
		for (int i = 0; i < n; i++)
			if (st[i] == to)
				atomic_fetch_add(&moves, 1);
			else if (st[i] >= 0)
				atomic_fetch_add(&mover_bad, 1);	/* a wrong tier */
	}
	return NULL;
}

/* Every thread but this one gets a new CPU mask, over and over. */
static void *changer(void *arg)
{
	cpu_set_t all, one;
	int cpus[CPU_SETSIZE], ncpu = 0;
	unsigned k = 0;

	(void)arg;
	sched_getaffinity(0, sizeof(all), &all);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all))
			cpus[ncpu++] = c;
	while (!atomic_load(&stop_helpers)) {
		pid_t tids[MAXW + 1];
		int n = 0;

		for (int i = 0; i < nw; i++)
			tids[n++] = atomic_load(&wk[i].tid);
		tids[n++] = atomic_load(&mover_tid);
		for (int i = 0; i < n; i++, k++) {
			/* one CPU, another one, then all of them */
			const cpu_set_t *m = &all;

			if (k % (ncpu + 1) < (unsigned)ncpu) {
				CPU_ZERO(&one);
				CPU_SET(cpus[(k + i) % ncpu], &one);
				m = &one;
			}
			if (tids[i] > 0 && !sched_setaffinity(tids[i], sizeof(*m), m))
				atomic_fetch_add(&changes, 1);
		}
		usleep(200);
	}
	return NULL;
}

/* Reads a managed page that moves and gets parked: a fault inside a handler. */
static void on_signal(int sig)
{
	static _Thread_local unsigned n;
	int saved = errno;
	size_t p = (n * 7) % NSTABLE, off = (n * 131) % T_SZ_4K;

	(void)sig;
	if ((uint8_t)stable[p * T_SZ_4K + off] != t_pat(10000 + p, off, SEED))
		atomic_fetch_add(&handler_bad, 1);
	n++;
	atomic_fetch_add(&handled, 1);
	errno = saved;
}

static void *signaller(void *arg)
{
	unsigned k = 0;

	(void)arg;
	while (!atomic_load(&stop_helpers)) {
		pthread_t t = ctx && k % 5 == 4 ? mover_th : wk[k % nw].th;

		if (!pthread_kill(t, k & 1 ? SIGUSR2 : SIGUSR1))
			atomic_fetch_add(&sent, 1);
		k++;
		if (k % 64 == 0)
			sched_yield();
	}
	return NULL;
}

/* The fault handlers a context makes: one per CPU, at most 16. */
static int t_handlers_expected(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n < 1 ? 1 : n > 16 ? 16 : (int)n;
}

/* ---- cpuset (cgroup v1) ---------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return -errno;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	close(fd);
	return ok ? 0 : -EIO;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

/* A cpuset of one CPU we may use, for the cpuset cases: 0, or why not. */
static const char *cpuset_make(void)
{
	char mems[256], cpu[16], path[192];
	cpu_set_t mine;

	if (geteuid())
		return "not root";
	if (access(CPUSET_ROOT "/cpuset.cpus", F_OK))
		return "no cgroup v1 cpuset at " CPUSET_ROOT;
	if (read_file(CPUSET_ROOT "/cpuset.mems", mems, sizeof(mems)))
		return "cannot read cpuset.mems";
	sched_getaffinity(0, sizeof(mine), &mine);
	for (int c = 0; c < CPU_SETSIZE && cpuset_cpu < 0; c++)
		if (CPU_ISSET(c, &mine))
			cpuset_cpu = c;
	snprintf(cpuset_dir, sizeof(cpuset_dir), CPUSET_ROOT "/pmv-t_faults-%d", (int)getpid());
	if (mkdir(cpuset_dir, 0755) && errno != EEXIST)
		return "cannot make a cpuset";
	snprintf(cpu, sizeof(cpu), "%d", cpuset_cpu);
	snprintf(path, sizeof(path), "%s/cpuset.mems", cpuset_dir);
	if (write_file(path, mems))
		return "cannot set cpuset.mems";
	snprintf(path, sizeof(path), "%s/cpuset.cpus", cpuset_dir);
	if (write_file(path, cpu))
		return "cannot set cpuset.cpus";
	return NULL;
}

/* This process, every thread of it, into the cpuset. */
static int cpuset_enter(void)
{
	char path[192], pid[16];

	snprintf(path, sizeof(path), "%s/cgroup.procs", cpuset_dir);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return write_file(path, pid);
}

/*
 * The library's threads may use only the cpuset's CPU: their masks, from
 * sched_getaffinity. Returns the number of threads that may use another,
 * printing them; *nhandlers counts the fault handlers.
 */
static int pmv_threads_outside(int cpu, int *nhandlers)
{
	struct cli_thread t[64];
	int n = cli_threads("pmv-", t, 64), outside = 0;

	*nhandlers = 0;
	if (n < 0)
		return 1;
	for (int i = 0; i < n && i < 64; i++) {
		cpu_set_t m;

		*nhandlers += !strncmp(t[i].comm, "pmv-fault", 9);
		if (sched_getaffinity(t[i].tid, sizeof(m), &m))
			continue;	/* gone */
		if (CPU_COUNT(&m) != 1 || !CPU_ISSET(cpu, &m)) {
			printf("  %s (tid %d) may run on %d CPUs, not only %d\n", t[i].comm,
			       (int)t[i].tid, CPU_COUNT(&m), cpu);
			outside++;
		}
	}
	return outside;
}

/* Is there a fault handler pinned to every CPU in set? (ARM_ALL makes them at once) */
static int handlers_on_every_cpu(const cpu_set_t *set)
{
	struct cli_thread t[64];
	int n = cli_threads("pmv-fault", t, 64);
	cpu_set_t pinned;

	CPU_ZERO(&pinned);
	for (int i = 0; i < n && i < 64; i++) {
		cpu_set_t m;

		if (sched_getaffinity(t[i].tid, sizeof(m), &m))
			continue;
		if (CPU_COUNT(&m) == 1)
			CPU_OR(&pinned, &pinned, &m);
	}
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, set) && !CPU_ISSET(c, &pinned)) {
			printf("  no fault handler pinned to CPU %d\n", c);
			return 0;
		}
	return 1;
}

/* ---- first touches racing the program's own address-space changes ---------- */

/*
 * Toucher threads, one pinned to each CPU (so that handlers on every CPU
 * serve), first-touch the pages of a region with one store each while the
 * program changes the region under them:
 *  - RACE_MREMAP: mremap(2) moves its upper half away and munmap(2) takes a
 *    quarter, at a point of the round the seed picks. A toucher whose store
 *    meets the change takes SIGSEGV and goes on with its next page. A fault
 *    in flight must be answered (a hang is the watchdog's failure), and a
 *    page moved in for it must not be left at the old address.
 *  - RACE_DONTNEED: MADV_DONTNEED of random ranges while the first touches
 *    run, then one more store to every page with nothing discarding: every
 *    page must then be managed again (a tier by pmv_move_pages' query),
 *    since a first touch the discard cancelled must not leave the kernel's
 *    zero page behind, which the next write would turn into a page the
 *    library never sees.
 *  - RACE_PARKED: the touchers read their pages over and over while the
 *    sampler parks them, and the program discards pages it finds parked
 *    (not present): an access that meets a parked page the program
 *    discards meanwhile must be answered too.
 * Every page holds one word, its id, at offset 0 and zeros elsewhere: each
 * round checks every byte.
 */
#define NRACE		256	/* 4 KB pages of a race round's region */
#define MAXT		4

enum { RACE_MREMAP, RACE_DONTNEED, RACE_PARKED };

static pthread_barrier_t race_go, race_end;
static char *_Atomic race_base;
static int ntouch, race_round, race_kind;
static atomic_int race_pass;		/* RACE_DONTNEED: touchers still in pass 1 */
static atomic_int race_quiet;		/* RACE_DONTNEED: the program stopped discarding */
static atomic_long race_stores, race_now, race_segv;
static atomic_int race_said;		/* failures printed */
static uint8_t race_ok[NRACE];		/* the page's store went through */
static atomic_int race_reading;		/* RACE_PARKED: touchers read on */
static _Thread_local sigjmp_buf *race_jb;

static uint64_t race_word(int round, size_t p)
{
	return 0x5a00000000000000ULL | (uint64_t)round << 16 | p;
}

static void race_segv_handler(int sig, siginfo_t *si, void *uc)
{
	char *b = atomic_load(&race_base), *a = si->si_addr;

	(void)uc;
	if (race_jb && b && a >= b && a < b + NRACE * T_SZ_4K)
		siglongjmp(*race_jb, 1);
	signal(sig, SIG_DFL);	/* not the race's: die of it */
}

/* One store to page p of the round's region; false if it met SIGSEGV. */
static bool race_store(char *b, size_t p)
{
	sigjmp_buf jb;

	race_jb = &jb;
	if (sigsetjmp(jb, 1)) {
		race_jb = NULL;
		atomic_fetch_add(&race_segv, 1);
		return false;
	}
	*(volatile uint64_t *)(b + p * T_SZ_4K) = race_word(race_round, p);
	race_jb = NULL;
	return true;
}

static void *toucher(void *arg)
{
	int k = (int)(intptr_t)arg;
	cpu_set_t mine, one;
	int c = -1;

	sched_getaffinity(0, sizeof(mine), &mine);
	for (int cpu = 0, i = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &mine) && i++ == k % CPU_COUNT(&mine))
			c = cpu;
	CPU_ZERO(&one);
	CPU_SET(c, &one);
	sched_setaffinity(0, sizeof(one), &one);
	for (;;) {
		char *b;

		pthread_barrier_wait(&race_go);
		b = atomic_load(&race_base);
		if (!b)
			break;
		for (size_t p = k; race_kind != RACE_PARKED && p < NRACE; p += ntouch) {
			race_ok[p] = race_store(b, p);
			atomic_fetch_add(&race_stores, 1);
			atomic_fetch_add(&race_now, 1);
		}
		if (race_kind == RACE_PARKED) {
			while (atomic_load(&race_reading))
				for (size_t p = k; p < NRACE; p += ntouch)
					(void)*(volatile uint64_t *)(b + p * T_SZ_4K);
		}
		if (race_kind == RACE_DONTNEED) {
			/* pass 2, once the program has stopped discarding */
			atomic_fetch_sub(&race_pass, 1);
			while (!atomic_load(&race_quiet))
				sched_yield();
			for (size_t p = k; p < NRACE; p += ntouch)
				race_ok[p] = race_store(b, p);
		}
		pthread_barrier_wait(&race_end);
	}
	return NULL;
}

/* Page p holds its word and zeros, or (want == 0) only zeros: the bad bytes. */
static long race_check(const char *pg, uint64_t want, const char *where, size_t p)
{
	uint64_t w;
	long bad;

	memcpy(&w, pg, sizeof(w));
	bad = w != want;
	for (size_t i = sizeof(w); i < T_SZ_4K; i++)
		bad += pg[i] != 0;
	if (bad && atomic_fetch_add(&race_said, 1) < 16)
		printf("  round %d, %s page %zu: word 0x%llx, want 0x%llx, %ld bad bytes\n",
		       race_round, where, p, (unsigned long long)w, (unsigned long long)want, bad);
	return bad;
}

/* Every page of [b, b + n pages) on a tier, by pmv_move_pages' query. */
static long race_query(char *b, size_t n)
{
	void *pages[NRACE] = { 0 };
	int st[NRACE];
	long bad = 0;

	if (!ctx)
		return 0;
	for (size_t p = 0; p < n; p++)
		pages[p] = b + p * T_SZ_4K;
	pmv_move_pages(ctx, n, pages, NULL, st, 0);
	for (size_t p = 0; p < n; p++)
		if (st[p] < 0 && bad++ < 4 && atomic_fetch_add(&race_said, 1) < 16)
			printf("  round %d, page %zu: touched, but the query says %s\n", race_round,
			       p, pmv_strerror(st[p]));
	return bad;
}

/* Map PROT_NONE over a hole we just made, before anyone else maps there. */
static int race_plug(char *a, size_t len)
{
	void *p = t_sys_mmap(a, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
			     -1, 0);

	if (p == a)
		return 0;
	printf("  cannot plug the hole at %p: %s\n", (void *)a, strerror(errno));
	return 1;
}

static long race_mremap_round(unsigned *seed)
{
	size_t len = NRACE * T_SZ_4K, cut = (NRACE / 4 + rand_r(seed) % (NRACE / 2)) & ~7UL;
	size_t clen = len - cut * T_SZ_4K;
	bool remap = rand_r(seed) & 1;
	char *b = t_map(ctx, len, 0, 0), *dst = NULL, *moved;
	long bad = 0;

	if (remap) {
		dst = t_sys_mmap(NULL, clen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		T_ASSERT(dst != MAP_FAILED, "mmap: %s", strerror(errno));
	}
	atomic_store(&race_now, 0);
	atomic_store(&race_base, b);
	pthread_barrier_wait(&race_go);
	/* the touchers are at about page race_now: cut there */
	while (atomic_load(&race_now) < (long)cut)
		sched_yield();
	if (remap) {
		moved = t_sys_mremap(b + cut * T_SZ_4K, clen, clen, MREMAP_MAYMOVE | MREMAP_FIXED,
				     dst);
		T_ASSERT(moved == dst, "mremap: %s", strerror(errno));
	} else {
		T_EQ(t_sys_munmap(b + cut * T_SZ_4K, clen), 0);
	}
	bad += race_plug(b + cut * T_SZ_4K, clen);
	pthread_barrier_wait(&race_end);
	for (size_t p = 0; p < cut; p++)
		bad += race_check(b + p * T_SZ_4K, race_word(race_round, p), "kept", p);
	bad += race_query(b, cut);
	for (size_t p = cut; remap && p < NRACE; p++)
		bad += race_check(dst + (p - cut) * T_SZ_4K, race_ok[p] ? race_word(race_round, p) : 0,
				  "moved", p);
	T_EQ(t_sys_munmap(b, len), 0);
	if (remap)
		T_EQ(t_sys_munmap(dst, clen), 0);
	return bad;
}

static long race_dontneed_round(char *b, unsigned *seed, long *discards)
{
	long bad = 0;

	atomic_store(&race_pass, ntouch);
	atomic_store(&race_quiet, 0);
	atomic_store(&race_base, b);
	pthread_barrier_wait(&race_go);
	atomic_store(&race_now, 0);
	while (atomic_load(&race_pass) > 0) {
		/* about where the touchers are: their first touches in flight */
		long now = atomic_load(&race_now), next = now + 1 + rand_r(seed) % 4;
		size_t n = 1 + rand_r(seed) % 8, p = (size_t)now + rand_r(seed) % 4;

		p = p >= 2 ? p - 2 : 0;
		if (p + n > NRACE)
			p = NRACE - n;

		T_EQ(t_sys_madvise(b + p * T_SZ_4K, n * T_SZ_4K, MADV_DONTNEED), 0);
		(*discards)++;
		/* paced by the first touches: a few between discards */
		while (atomic_load(&race_now) < next && atomic_load(&race_pass) > 0)
			sched_yield();
	}
	atomic_store(&race_quiet, 1);
	pthread_barrier_wait(&race_end);
	for (size_t p = 0; p < NRACE; p++)
		bad += race_check(b + p * T_SZ_4K, race_word(race_round, p), "touched", p);
	bad += race_query(b, NRACE);
	/* next round's stores are first touches again */
	T_EQ(t_sys_madvise(b, NRACE * T_SZ_4K, MADV_DONTNEED), 0);
	return bad;
}

/* Discard pages found parked while they are read; the rest keep their word. */
static long race_parked_round(char *b, unsigned *seed, long *discards)
{
	uint8_t gone[NRACE] = { 0 };
	long bad = 0;
	int n = 0;

	atomic_store(&race_reading, 1);
	atomic_store(&race_base, b);
	pthread_barrier_wait(&race_go);
	/* fixed work: 8 discards of pages caught parked (a control run has none) */
	while (ctx && n < 8) {
		size_t from = rand_r(seed) % NRACE, p = NRACE;

		for (size_t i = 0; i < NRACE && p == NRACE; i++)
			if (!gone[(from + i) % NRACE] && t_present(b + (from + i) % NRACE * T_SZ_4K) == 0)
				p = (from + i) % NRACE;
		if (p == NRACE) {
			sched_yield();
			continue;
		}
		T_EQ(t_sys_madvise(b + p * T_SZ_4K, T_SZ_4K, MADV_DONTNEED), 0);
		gone[p] = 1;
		n++;
		(*discards)++;
		t_beat();
	}
	atomic_store(&race_reading, 0);
	pthread_barrier_wait(&race_end);
	for (size_t p = 0; p < NRACE; p++)
		bad += race_check(b + p * T_SZ_4K, gone[p] ? 0 : race_word(0, p), "read", p);
	/* the discarded ones get their word back: first touches */
	for (size_t p = 0; p < NRACE; p++)
		if (gone[p])
			*(uint64_t *)(b + p * T_SZ_4K) = race_word(0, p);
	bad += race_query(b, NRACE);
	return bad;
}

static int race(const struct t_case *c)
{
	struct sigaction sa = { .sa_sigaction = race_segv_handler, .sa_flags = SA_SIGINFO };
	pthread_t th[MAXT];
	unsigned seed = SEED ^ (unsigned)c->mode;
	/* the guest emulates some 20x slower: its budget fits a quarter */
	int nrounds = t_rounds(getenv("PMV_TEST_NODES") ? 16 : 64), bad = 0;
	long nbad = 0, discards = 0;
	cpu_set_t mine;
	char *b = NULL;

	setenv("PAGEMOVE_FAULT_HANDLERS", c->variant ? "all" : "follow", 1);
	/* every 4th fault a handler answers holds its page 100 us: events come meanwhile */
	setenv("PAGEMOVE_INJECT_HOLD_US", "100", 1);
	sched_getaffinity(0, sizeof(mine), &mine);
	ntouch = CPU_COUNT(&mine) < 2 ? 2 : CPU_COUNT(&mine) > MAXT ? MAXT : CPU_COUNT(&mine);
	race_kind = c->mode;
	sigemptyset(&sa.sa_mask);
	T_EQ(sigaction(SIGSEGV, &sa, NULL), 0);
	ctx = t_control() ? NULL : t_ctx(2, NULL, 0);
	if (race_kind != RACE_MREMAP)
		b = t_map(ctx, NRACE * T_SZ_4K, 0, 0);
	for (size_t p = 0; race_kind == RACE_PARKED && p < NRACE; p++)
		*(uint64_t *)(b + p * T_SZ_4K) = race_word(0, p);
	T_EQ(pthread_barrier_init(&race_go, NULL, ntouch + 1), 0);
	T_EQ(pthread_barrier_init(&race_end, NULL, ntouch + 1), 0);
	for (int k = 0; k < ntouch; k++)
		T_EQ(pthread_create(&th[k], NULL, toucher, (void *)(intptr_t)k), 0);
	for (race_round = 0; race_round < nrounds; race_round++) {
		t_step("round %d", race_round);
		nbad += race_kind == RACE_MREMAP ? race_mremap_round(&seed) :
			race_kind == RACE_DONTNEED ? race_dontneed_round(b, &seed, &discards) :
			race_parked_round(b, &seed, &discards);
	}
	atomic_store(&race_base, NULL);
	pthread_barrier_wait(&race_go);
	for (int k = 0; k < ntouch; k++)
		pthread_join(th[k], NULL);
	printf("  %d touchers x %d rounds: %ld stores, %ld met SIGSEGV, %ld discards, %ld bad\n",
	       ntouch, nrounds, atomic_load(&race_stores), atomic_load(&race_segv), discards, nbad);
	T_CHECK(bad, nbad == 0, "%ld bad bytes or unmanaged pages", nbad);
	pmv_destroy(ctx);
	return bad;
}

/* ---- where the handlers are ----------------------------------------------- */

/*
 * Where the library's threads may run, and how often each was woken
 * (voluntary context switches: a handler serving faults sleeps in poll()
 * and is woken once for each). A worker pinned to one CPU first-touches
 * pages (each round discards them again):
 *  - WHERE_FOLLOW: with the handlers following, a handler pinned to the
 *    worker's CPU serves its faults, and no handler woken for them may run
 *    elsewhere;
 *  - WHERE_NONE_LATER: the context made while its creator could use one
 *    CPU, then the CPUs widened: every handler was made at pmv_create, and
 *    no thread is made after (mlockall(MCL_FUTURE) and RLIMIT_AS: nothing
 *    is mapped later);
 *  - WHERE_NEW_MASKS: the program's threads are moved to one CPU, then to
 *    another, with sched_setaffinity: the handlers and the helper follow,
 *    and stay inside the threads' new masks.
 * Progress only: each step faults until what it waits for holds (a hang is
 * the watchdog's failure), then checks it again after fixed work.
 */
enum { WHERE_FOLLOW, WHERE_NONE_LATER, WHERE_NEW_MASKS };

#define NWHERE		256	/* 4 KB pages a worker round touches */
#define MAXLIB		64

struct lib_thread {
	pid_t tid;
	char comm[32];
	cpu_set_t mask;
	long wakes;
};

static char *where_area;
static atomic_int where_cpu;		/* the worker's CPU; -1: stop */
static atomic_long where_rounds, where_bad;

static long task_wakes(pid_t tid)
{
	char path[64], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* The library's fault handlers and helper; also the number of all threads. */
static int lib_threads(struct lib_thread *out, int *nall)
{
	struct cli_thread t[MAXLIB + 64];
	int all = cli_threads("", t, MAXLIB + 64), n = 0;

	*nall = all > 0 ? all : 0;
	for (int i = 0; i < all && i < MAXLIB + 64; i++) {
		if (strncmp(t[i].comm, "pmv-fault", 9) && strcmp(t[i].comm, "pmv-helper"))
			continue;
		memcpy(out[n].comm, t[i].comm, sizeof(t[i].comm));
		out[n].tid = t[i].tid;
		if (sched_getaffinity(t[i].tid, sizeof(out[n].mask), &out[n].mask))
			continue;
		out[n].wakes = task_wakes(t[i].tid);
		if (n < MAXLIB - 1)
			n++;
	}
	return n;
}

static int nhandlers(const struct lib_thread *t, int n)
{
	int h = 0;

	for (int i = 0; i < n; i++)
		h += !strncmp(t[i].comm, "pmv-fault", 9);
	return h;
}

/* Is a handler pinned to cpu alone? */
static bool handler_pinned(const struct lib_thread *t, int n, int cpu)
{
	for (int i = 0; i < n; i++)
		if (!strncmp(t[i].comm, "pmv-fault", 9) && CPU_COUNT(&t[i].mask) == 1 &&
		    CPU_ISSET(cpu, &t[i].mask))
			return true;
	return false;
}

/* The library threads that may run outside mask, printed when say. */
static int outside(const struct lib_thread *t, int n, const cpu_set_t *mask, bool say)
{
	int out = 0;

	for (int i = 0; i < n; i++) {
		cpu_set_t x;

		CPU_AND(&x, &t[i].mask, mask);
		if (CPU_EQUAL(&x, &t[i].mask))
			continue;
		if (say)
			printf("  %s (tid %d) may run on %d CPUs outside the program's\n",
			       t[i].comm, (int)t[i].tid, CPU_COUNT(&t[i].mask) - CPU_COUNT(&x));
		out++;
	}
	return out;
}

/* First touches, one round at a time, on the CPU where_cpu says. */
static void *where_worker(void *arg)
{
	int cpu = -2;

	(void)arg;
	for (;;) {
		int want = atomic_load(&where_cpu);

		if (want == -1)
			break;
		if (want != cpu) {
			cpu_set_t one;

			CPU_ZERO(&one);
			CPU_SET(want, &one);
			sched_setaffinity(0, sizeof(one), &one);
			cpu = want;
		}
		for (size_t p = 0; p < NWHERE; p++)
			*(volatile uint64_t *)(where_area + p * T_SZ_4K) = race_word(0, p);
		for (size_t p = 0; p < NWHERE; p++)
			if (*(volatile uint64_t *)(where_area + p * T_SZ_4K) != race_word(0, p))
				atomic_fetch_add(&where_bad, 1);
		t_sys_madvise(where_area, NWHERE * T_SZ_4K, MADV_DONTNEED);
		atomic_fetch_add(&where_rounds, 1);
		t_beat();
	}
	return NULL;
}

static void where_wait_rounds(long n)
{
	long until = atomic_load(&where_rounds) + n;

	while (atomic_load(&where_rounds) < until)
		usleep(1000);
}

static void pin_self(const cpu_set_t *m)
{
	sched_setaffinity(0, sizeof(*m), m);
}

static int where(const struct t_case *c)
{
	struct lib_thread t0[MAXLIB], t1[MAXLIB];
	int n0, n1, nall0, nall1, bad = 0, c0 = -1, c1 = -1;
	cpu_set_t all, one0, one1;
	pthread_t w;

	setenv("PAGEMOVE_FAULT_HANDLERS", c->variant ? "all" : "follow", 1);
	/* one fault per page touched: the wakes counted below are faults */
	setenv("PAGEMOVE_FAULT_AHEAD", "0", 1);
	sched_getaffinity(0, sizeof(all), &all);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
		if (CPU_ISSET(cpu, &all)) {
			if (c0 < 0)
				c0 = cpu;
			c1 = cpu;
		}
	CPU_ZERO(&one0);
	CPU_SET(c0, &one0);
	CPU_ZERO(&one1);
	CPU_SET(c1, &one1);
	/* made on the first CPU: the creator's handler is armed there */
	pin_self(&one0);
	ctx = t_ctx(1, NULL, 0);
	n0 = lib_threads(t0, &nall0);
	where_area = t_map(ctx, NWHERE * T_SZ_4K, 0, 0);
	if (c->mode != WHERE_NONE_LATER)
		pin_self(&all);
	atomic_store(&where_cpu, c1);
	T_EQ(pthread_create(&w, NULL, where_worker, NULL), 0);
	if (c->mode == WHERE_NONE_LATER) {
		/* the CPUs widen after pmv_create: the worker faults on another */
		t_step("faults on CPU %d until a handler is pinned there", c1);
		do {
			where_wait_rounds(1);
			n1 = lib_threads(t1, &nall1);
		} while (!handler_pinned(t1, n1, c1));
		where_wait_rounds(8);
		n1 = lib_threads(t1, &nall1);
		T_CHECK(bad, nhandlers(t0, n0) == t_handlers_expected(), "%d handlers at pmv_create, "
			"want %d", nhandlers(t0, n0), t_handlers_expected());
		T_CHECK(bad, nhandlers(t1, n1) == nhandlers(t0, n0), "%d handlers after, %d at "
			"pmv_create", nhandlers(t1, n1), nhandlers(t0, n0));
		/* the worker is the one thread more */
		T_CHECK(bad, nall1 == nall0 + 1, "%d threads after, %d at pmv_create (+1 worker)",
			nall1, nall0);
	} else if (c->mode == WHERE_FOLLOW) {
		long k = 16, served = 0, elsewhere = 0;

		t_step("faults on CPU %d until a handler is pinned there", c1);
		do {
			where_wait_rounds(1);
			n0 = lib_threads(t0, &nall0);
		} while (!handler_pinned(t0, n0, c1) || outside(t0, n0, &one1, false));
		t_step("%ld rounds of first touches on CPU %d", k, c1);
		where_wait_rounds(k);
		n1 = lib_threads(t1, &nall1);
		for (int i = 0; i < n1; i++)
			for (int j = 0; j < n0; j++) {
				long d = t1[i].wakes - t0[j].wakes;

				if (t1[i].tid != t0[j].tid || strncmp(t1[i].comm, "pmv-fault", 9))
					continue;
				if (CPU_COUNT(&t1[i].mask) == 1 && CPU_ISSET(c1, &t1[i].mask) &&
				    d > served)
					served = d;
				if (!CPU_EQUAL(&t1[i].mask, &one1) && d > k * NWHERE / 4)
					elsewhere++;
			}
		printf("  %ld first touches on CPU %d: a handler pinned there woken %ld times\n",
		       k * NWHERE, c1, served);
		T_CHECK(bad, served >= k * NWHERE / 2, "the handler on CPU %d was woken %ld times "
			"for %ld faults", c1, served, k * NWHERE);
		T_CHECK(bad, elsewhere == 0, "%ld handlers that may run elsewhere served",
			elsewhere);
	} else {
		const cpu_set_t *masks[] = { &one1, &one0, &one1 };

		for (int m = 0; m < 3; m++) {
			int cpu = m == 1 ? c0 : c1;

			/* every thread of the program, the worker (by where_cpu) too */
			pin_self(masks[m]);
			atomic_store(&where_cpu, cpu);
			t_step("faults on CPU %d until the library follows", cpu);
			do {
				where_wait_rounds(1);
				n1 = lib_threads(t1, &nall1);
			} while (outside(t1, n1, masks[m], false));
			where_wait_rounds(8);
			n1 = lib_threads(t1, &nall1);
			T_CHECK(bad, outside(t1, n1, masks[m], true) == 0, "library threads outside "
				"CPU %d after 8 more rounds", cpu);
		}
	}
	atomic_store(&where_cpu, -1);
	pthread_join(w, NULL);
	T_CHECK(bad, atomic_load(&where_bad) == 0, "%ld words read back wrong",
		atomic_load(&where_bad));
	pmv_destroy(ctx);
	return bad;
}

/* ---- map-ahead of sequential first touches ----------------------------------- */

/*
 * A thread that first-touches 4 KB pages in order gets the pages after
 * them mapped ahead (fault.c, map_ahead()). Each sub-test here:
 *  - AHEAD_PATTERNS: strides 1 (a stream), 2, 3 and 7, and backwards,
 *    over fresh regions: every page touched holds its word, every other
 *    reads zero, and every page mapped (touched or ahead) is charged and
 *    found by the query; rounds go on until some page was mapped ahead
 *    (progress only);
 *  - AHEAD_OFF: PAGEMOVE_FAULT_AHEAD=0: the same stream maps nothing
 *    ahead, and no page past the stream is mapped; a bad value fails
 *    pmv_create with EINVAL;
 *  - AHEAD_BOUND: a capacity-bound tier, regions bound to it, exactly
 *    full: streams never get SIGBUS (a SIGBUS kills the sub-test) and no
 *    page is mapped ahead there;
 *  - AHEAD_DONTNEED, AHEAD_MUNMAP, AHEAD_MREMAP: the program discards,
 *    unmaps or moves (mremap) pages just ahead of a stream while it runs,
 *    with every 4th answer held 100 us (PAGEMOVE_INJECT_HOLD_US) so that
 *    the event meets pages being mapped ahead: every page the stream
 *    wrote keeps its word, every other reads zero, and the resident bytes
 *    settle at what is mapped.
 * Variant 1 of each but AHEAD_OFF runs with fault-around too
 * (PAGEMOVE_FAULT_AROUND=16, map_around()): the untouched pages of a first
 * touch's 16-page block are mapped as well, before and after it, so the
 * strides and the backward pass meet it; the same checks hold.
 * Fixed seeds; nothing is timed.
 */
enum { AHEAD_PATTERNS, AHEAD_OFF, AHEAD_BOUND, AHEAD_DONTNEED, AHEAD_MUNMAP, AHEAD_MREMAP };

#define NAHEAD		1024	/* 4 KB pages of a map-ahead region */

static uint64_t ahead_word(int round, size_t p)
{
	return 0xa4e0000000000000ULL | (uint64_t)round << 20 | p;
}

static uint64_t faults_ahead(void)
{
	struct pmv_ctx_stats cs;

	if (!ctx || pmv_ctx_stats(ctx, &cs))
		return 0;
	return cs.faults_ahead;
}

/* Pages of [b, b + n pages) mapped now (pagemap), and whether all are found by the query. */
static size_t ahead_mapped(char *b, size_t n, long *unmanaged)
{
	size_t m = 0;

	for (size_t p = 0; p < n; p++) {
		void *pg = b + p * T_SZ_4K;
		int st = 0;

		if (t_present(pg) != 1)
			continue;
		m++;
		if (ctx && (pmv_move_pages(ctx, 1, &pg, NULL, &st, 0) || st < 0) &&
		    (*unmanaged)++ < 4)
			printf("  page %zu mapped, but the query says %s\n", p, pmv_strerror(st));
	}
	return m;
}

/* Touch pages of a fresh region in the order of stride (< 0: backwards); check. */
static long ahead_pattern(int round, long stride, size_t *mapped)
{
	char *b = t_map(ctx, NAHEAD * T_SZ_4K, 0, 0);
	static uint8_t wrote[NAHEAD];
	long bad = 0, unmanaged = 0;

	memset(wrote, 0, sizeof(wrote));
	if (stride > 0) {
		for (size_t p = 0; p < NAHEAD; p += (size_t)stride)
			*(volatile uint64_t *)(b + p * T_SZ_4K) = ahead_word(round, p), wrote[p] = 1;
	} else {
		for (size_t p = NAHEAD; p-- > 0;)
			*(volatile uint64_t *)(b + p * T_SZ_4K) = ahead_word(round, p), wrote[p] = 1;
	}
	for (size_t p = 0; p < NAHEAD; p++)
		bad += race_check(b + p * T_SZ_4K, wrote[p] ? ahead_word(round, p) : 0, "ahead", p);
	*mapped = ahead_mapped(b, NAHEAD, &unmanaged);
	T_EQ(t_unmap(ctx, b, NAHEAD * T_SZ_4K), 0);
	return bad + unmanaged;
}

/* The discarder's window: the stream waits while its next page is in it. */
static _Atomic long ahead_pos, ahead_lo, ahead_hi;
static uint8_t ahead_gone[NAHEAD];	/* AHEAD_MUNMAP: pages unmapped under the stream */
static char *_Atomic ahead_base;

static void *ahead_stream(void *arg)
{
	int round = (int)(intptr_t)arg;
	char *b = atomic_load(&ahead_base);

	for (size_t p = 0; p < NAHEAD; p++) {
		/* Dekker with the discarder: one of us sees the other */
		atomic_store(&ahead_pos, (long)p);
		while ((long)p >= atomic_load(&ahead_lo) && (long)p < atomic_load(&ahead_hi))
			sched_yield();
		if (!ahead_gone[p])
			*(volatile uint64_t *)(b + p * T_SZ_4K) = ahead_word(round, p);
	}
	atomic_store(&ahead_pos, NAHEAD);
	return NULL;
}

/*
 * While the stream runs: discard (or unmap) ranges just ahead of it, where
 * map-ahead is placing pages, never one it may be writing.
 */
static long ahead_cut_round(int kind, int round, unsigned *seed, long *cuts)
{
	char *b = t_map(ctx, NAHEAD * T_SZ_4K, 0, 0);
	long bad = 0, unmanaged = 0;
	size_t mapped, want = 0;
	pthread_t th;

	memset(ahead_gone, 0, sizeof(ahead_gone));
	atomic_store(&ahead_lo, 0);
	atomic_store(&ahead_hi, 0);
	atomic_store(&ahead_pos, 0);
	atomic_store(&ahead_base, b);
	T_EQ(pthread_create(&th, NULL, ahead_stream, (void *)(intptr_t)round), 0);
	while (atomic_load(&ahead_pos) < NAHEAD - 64) {
		long pos = atomic_load(&ahead_pos);
		long lo = pos + 2 + (long)(rand_r(seed) % 24), hi = lo + 1 + (long)(rand_r(seed) % 16);

		atomic_store(&ahead_lo, lo);
		atomic_store(&ahead_hi, hi);
		if (atomic_load(&ahead_pos) < lo) {
			if (kind == AHEAD_DONTNEED) {
				T_EQ(t_sys_madvise(b + lo * T_SZ_4K, (hi - lo) * T_SZ_4K,
						   MADV_DONTNEED), 0);
			} else {
				memset(ahead_gone + lo, 1, (size_t)(hi - lo));
				T_EQ(t_sys_munmap(b + lo * T_SZ_4K, (hi - lo) * T_SZ_4K), 0);
				bad += race_plug(b + lo * T_SZ_4K, (hi - lo) * T_SZ_4K);
			}
			(*cuts)++;
		}
		atomic_store(&ahead_hi, 0);
		atomic_store(&ahead_lo, 0);
		/* let the stream go on a little: the next cut meets new windows */
		while (atomic_load(&ahead_pos) < hi && atomic_load(&ahead_pos) < NAHEAD - 64)
			sched_yield();
	}
	pthread_join(th, NULL);
	for (size_t p = 0; p < NAHEAD; p++) {
		if (ahead_gone[p])
			continue;
		bad += race_check(b + p * T_SZ_4K, ahead_word(round, p), "streamed", p);
		want++;
	}
	mapped = ahead_mapped(b, NAHEAD, &unmanaged);
	bad += unmanaged;
	if (ctx) {
		/* every page the stream wrote, and no page discarded or unmapped, is charged */
		uint64_t r = t_resident_settled(ctx, want * T_SZ_4K);

		if (r != want * T_SZ_4K && bad++ < 4)
			printf("  round %d: %llu bytes resident, want %zu pages (%zu mapped)\n",
			       round, (unsigned long long)r, want, mapped);
	}
	for (size_t p = 0; p < NAHEAD; p++)
		if (ahead_gone[p])
			T_EQ(t_sys_munmap(b + p * T_SZ_4K, T_SZ_4K), 0);	/* the plugs */
	T_EQ(t_sys_munmap(b, NAHEAD * T_SZ_4K), 0);
	return bad;
}

/* The stream's region is cut in two by mremap of its tail, just ahead of it. */
static long ahead_mremap_round(int round, unsigned *seed)
{
	size_t cut = NAHEAD / 4 + rand_r(seed) % (NAHEAD / 2), tail = NAHEAD - cut;
	char *b = t_map(ctx, NAHEAD * T_SZ_4K, 0, 0), *dst, *moved;
	long bad = 0, unmanaged = 0;
	pthread_t th;

	dst = t_sys_mmap(NULL, tail * T_SZ_4K, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_ASSERT(dst != MAP_FAILED, "mmap: %s", strerror(errno));
	memset(ahead_gone, 0, sizeof(ahead_gone));
	memset(ahead_gone + cut, 1, tail);	/* the stream stops at the cut */
	atomic_store(&ahead_lo, 0);
	atomic_store(&ahead_hi, 0);
	atomic_store(&ahead_pos, 0);
	atomic_store(&ahead_base, b);
	T_EQ(pthread_create(&th, NULL, ahead_stream, (void *)(intptr_t)round), 0);
	/* a window or two before the cut: pages past it are being mapped ahead */
	while (atomic_load(&ahead_pos) < (long)cut - 1 - (long)(rand_r(seed) % 48))
		sched_yield();
	moved = t_sys_mremap(b + cut * T_SZ_4K, tail * T_SZ_4K, tail * T_SZ_4K,
			     MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	T_ASSERT(moved == dst, "mremap: %s", strerror(errno));
	bad += race_plug(b + cut * T_SZ_4K, tail * T_SZ_4K);
	pthread_join(th, NULL);
	/* the moved pages: never written, so zero, and managed at their new place */
	for (size_t p = cut; p < NAHEAD; p++)
		*(volatile uint64_t *)(dst + (p - cut) * T_SZ_4K) ^= ahead_word(round, p);
	for (size_t p = 0; p < NAHEAD; p++)
		bad += race_check((p < cut ? b + p * T_SZ_4K : dst + (p - cut) * T_SZ_4K),
				  ahead_word(round, p), p < cut ? "kept" : "moved", p);
	ahead_mapped(b, cut, &unmanaged);
	ahead_mapped(dst, tail, &unmanaged);
	if (ctx) {
		uint64_t r = t_resident_settled(ctx, NAHEAD * T_SZ_4K);

		if (r != NAHEAD * T_SZ_4K && bad++ < 4)
			printf("  round %d: %llu bytes resident, want %d pages\n", round,
			       (unsigned long long)r, NAHEAD);
	}
	T_EQ(t_sys_munmap(b, NAHEAD * T_SZ_4K), 0);
	T_EQ(t_sys_munmap(dst, tail * T_SZ_4K), 0);
	return bad + unmanaged;
}

/*
 * 2 MB streams (fault.c: a window of one page, then two). A thread writes
 * one word a 2 MB page, in order, over fresh PMV_HUGE regions of NAHEAD_2M
 * pages: every byte of each is its word or zero; every page is mapped as
 * one THP (AnonHugePages); the tiers charge exactly the region; rounds go
 * on until some page was mapped ahead (progress only). Variant 1: the
 * same on a tier bounded to the region, bound: no page mapped ahead and
 * no SIGBUS. The kernel zeroes a THP of its own on each such fault before
 * the userfault (DESIGN.md): a page mapped ahead takes no fault.
 */
#define NAHEAD_2M	16

static long ahead_2m_round(int round, size_t *ahead_pages)
{
	size_t len = NAHEAD_2M * T_SZ_2M;
	char *b = t_map(ctx, len, 0, PMV_HUGE | (ctx && ctx_bounded ? PMV_BIND : 0));
	uint64_t a0 = faults_ahead(), r;
	long bad = 0, huge;

	for (size_t p = 0; p < NAHEAD_2M; p++)
		*(volatile uint64_t *)(b + p * T_SZ_2M + (p % 512) * T_SZ_4K) = ahead_word(round, p);
	for (size_t p = 0; p < NAHEAD_2M; p++)
		for (size_t q = 0; q < 512; q++)
			bad += race_check(b + p * T_SZ_2M + q * T_SZ_4K,
					  q == p % 512 ? ahead_word(round, p) : 0, "2m ahead",
					  p * 512 + q);
	huge = t_anon_huge_kb(b);
	if (ctx && huge != (long)(len >> 10) && bad++ < 4)
		printf("  round %d: AnonHugePages %ld kB, want %zu\n", round, huge, len >> 10);
	r = ctx ? t_resident_settled(ctx, len) : len;
	if (r != len && bad++ < 4)
		printf("  round %d: %llu bytes resident, want %zu\n", round, (unsigned long long)r,
		       len);
	*ahead_pages += faults_ahead() - a0;
	T_EQ(t_unmap(ctx, b, len), 0);
	return bad;
}

static int ahead_2m(const struct t_case *c)
{
	struct pmv_policy_config off = { .mode = PMV_POLICY_OFF };
	int bad = 0, nrounds = t_rounds(4), round;
	size_t ahead_pages = 0;
	long nbad = 0;

	setenv("PAGEMOVE_FAULT_HANDLERS", "follow", 1);
	setenv("PAGEMOVE_FAULT_AHEAD", "32", 1);
	ctx_bounded = c->variant;
	if (t_control())
		ctx = NULL;
	else if (c->variant)
		ctx = t_ctx_pol(1, (const size_t[]){ NAHEAD_2M * T_SZ_2M }, 0, &off);
	else
		ctx = t_ctx_pol(2, NULL, 0, &off);
	for (round = 0; round < nrounds || (ctx && !c->variant && !ahead_pages && round < 1000);
	     round++) {
		t_step("round %d", round);
		nbad += ahead_2m_round(round, &ahead_pages);
		t_beat();
	}
	T_CHECK(bad, !nbad, "%ld bad pieces or counts", nbad);
	if (ctx && c->variant)
		T_CHECK(bad, !ahead_pages, "%zu pages mapped ahead on a bounded tier", ahead_pages);
	else if (ctx)
		T_CHECK(bad, ahead_pages, "no 2 MB page mapped ahead in %d rounds", round);
	printf("  %zu 2 MB pages mapped ahead\n", ahead_pages);
	t_destroy(ctx);
	ctx = NULL;
	return bad;
}

static int ahead(const struct t_case *c)
{
	struct pmv_policy_config off = { .mode = PMV_POLICY_OFF };
	unsigned seed = SEED ^ (unsigned)c->mode;
	int bad = 0, nrounds = t_rounds(8);
	long nbad = 0, cuts = 0;
	uint64_t a0;

	setenv("PAGEMOVE_FAULT_HANDLERS", "follow", 1);
	setenv("PAGEMOVE_FAULT_AHEAD", c->mode == AHEAD_OFF ? "0" : "32", 1);
	setenv("PAGEMOVE_FAULT_AROUND", c->variant ? "16" : "0", 1);
	if (c->mode >= AHEAD_DONTNEED)
		setenv("PAGEMOVE_INJECT_HOLD_US", "100", 1);
	if (c->mode == AHEAD_OFF && !t_control()) {
		struct pmv_tier_config tc = { .name = "one", .node = PMV_NODE_ANY };
		struct pmv_config cfg = { .ntiers = 1, .tiers = &tc };
		static const char *const bad_values[] = { "32x", "-1", "257" };
		static const char *const bad_around[] = { "16x", "-16", "3", "512" };

		for (size_t i = 0; i < 3; i++) {
			pmv_ctx *x;

			setenv("PAGEMOVE_FAULT_AHEAD", bad_values[i], 1);
			x = pmv_create(&cfg);
			T_CHECK(bad, !x && errno == EINVAL, "PAGEMOVE_FAULT_AHEAD=%s: %s",
				bad_values[i], x ? "accepted" : strerror(errno));
			if (x)
				pmv_destroy(x);
		}
		setenv("PAGEMOVE_FAULT_AHEAD", "0", 1);
		for (size_t i = 0; i < 4; i++) {
			pmv_ctx *x;

			setenv("PAGEMOVE_FAULT_AROUND", bad_around[i], 1);
			x = pmv_create(&cfg);
			T_CHECK(bad, !x && errno == EINVAL, "PAGEMOVE_FAULT_AROUND=%s: %s",
				bad_around[i], x ? "accepted" : strerror(errno));
			if (x)
				pmv_destroy(x);
		}
		setenv("PAGEMOVE_FAULT_AROUND", "0", 1);
	}
	if (t_control())
		ctx = NULL;
	else if (c->mode == AHEAD_BOUND)
		ctx = t_ctx_pol(1, (const size_t[]){ NAHEAD * T_SZ_4K }, 0, &off);
	else if (c->mode == AHEAD_PATTERNS || c->mode == AHEAD_OFF)
		ctx = t_ctx_pol(2, NULL, 0, &off);	/* nothing parked: mapped means placed */
	else
		ctx = t_ctx(2, NULL, 0);
	a0 = faults_ahead();
	if (c->mode == AHEAD_PATTERNS || c->mode == AHEAD_OFF) {
		static const long strides[] = { 1, 2, 3, 7, -1 };

		/* until a stream was mapped ahead once (progress only: a hang is the watchdog's) */
		for (int round = 0; round < nrounds || (ctx && c->mode == AHEAD_PATTERNS &&
							faults_ahead() == a0); round++) {
			for (size_t k = 0; k < sizeof(strides) / sizeof(strides[0]); k++) {
				long st = c->mode == AHEAD_OFF ? 1 : strides[k];
				size_t mapped, touched = st > 0 ? (NAHEAD + st - 1) / st : NAHEAD;

				t_step("round %d, stride %ld", round, st);
				nbad += ahead_pattern(round, st, &mapped);
				/* mapped: what was touched, and with map-ahead maybe more */
				T_CHECK(bad, mapped >= touched && (c->mode != AHEAD_OFF ||
					mapped == touched), "round %d, stride %ld: %zu pages mapped, "
					"%zu touched", round, st, mapped, touched);
			}
			t_beat();
		}
		if (ctx && c->mode == AHEAD_OFF)
			T_CHECK(bad, faults_ahead() == a0, "PAGEMOVE_FAULT_AHEAD=0: %llu pages "
				"mapped ahead", (unsigned long long)(faults_ahead() - a0));
	} else if (c->mode == AHEAD_BOUND) {
		for (int round = 0; round < nrounds; round++) {
			/* two regions bound to the full tier: each stream may use all of it */
			for (int r = 0; r < 2; r++) {
				char *b = t_map(ctx, NAHEAD * T_SZ_4K, 0, PMV_BIND);
				long unmanaged = 0;

				t_step("round %d, region %d", round, r);
				for (size_t p = 0; p < NAHEAD; p++)
					*(volatile uint64_t *)(b + p * T_SZ_4K) = ahead_word(round, p);
				for (size_t p = 0; p < NAHEAD; p++)
					nbad += race_check(b + p * T_SZ_4K, ahead_word(round, p), "bound",
							   p);
				T_EQ(ahead_mapped(b, NAHEAD, &unmanaged), NAHEAD);
				nbad += unmanaged;
				T_EQ(t_unmap(ctx, b, NAHEAD * T_SZ_4K), 0);
			}
			t_beat();
		}
		if (ctx)
			T_CHECK(bad, faults_ahead() == a0, "%llu pages mapped ahead on a bounded tier",
				(unsigned long long)(faults_ahead() - a0));
	} else {
		for (int round = 0; round < nrounds; round++) {
			t_step("round %d", round);
			nbad += c->mode == AHEAD_MREMAP ? ahead_mremap_round(round, &seed) :
				ahead_cut_round(c->mode, round, &seed, &cuts);
			t_beat();
		}
	}
	printf("  %d rounds: %llu pages mapped ahead, %ld cuts, %ld bad\n", nrounds,
	       (unsigned long long)(faults_ahead() - a0), cuts, nbad);
	T_CHECK(bad, nbad == 0, "%ld bad bytes or unmanaged pages", nbad);
	if (ctx)
		pmv_destroy(ctx);
	return bad;
}

/* ---- the sub-test ---------------------------------------------------------- */

struct how {
	int all;		/* PAGEMOVE_FAULT_HANDLERS=all */
	int pin;		/* a worker pinned to each CPU */
	int affinity;		/* AFFINITY_* */
	int cpuset;		/* CPUSET_* */
	int storm;		/* signals */
};

static const struct how hows[] = {
	{ .pin = 1 },
	{ .affinity = AFFINITY_CHANGES },
	{ .cpuset = CPUSET_BEFORE },
	{ .cpuset = CPUSET_DURING },
	{ .storm = 1 },
};
static const char *const how_names[] = {
	"faults_with_a_worker_on_every_cpu", "faults_while_affinity_changes",
	"faults_in_a_one_cpu_cpuset", "faults_while_moved_into_a_one_cpu_cpuset",
	"faults_under_a_signal_storm",
};

static int run(const struct t_case *c)
{
	struct how h = hows[c->mode];
	pthread_t ch = 0, sg = 0;
	cpu_set_t mine;
	int ncpu, bad = 0, nh;
	long total_bad = 0;

	h.all = c->variant;
	setenv("PAGEMOVE_FAULT_HANDLERS", h.all ? "all" : "follow", 1);
	if (h.cpuset == CPUSET_BEFORE)
		T_CHECK(bad, cpuset_enter() == 0, "cannot enter %s", cpuset_dir);
	sched_getaffinity(0, sizeof(mine), &mine);
	ncpu = CPU_COUNT(&mine);
	huge = t_thp_enabled();
	nw = ncpu < 2 ? 2 : ncpu > 4 ? 4 : ncpu;
	nrounds = t_rounds(8);
	ctx = t_control() ? NULL : t_ctx(2, NULL, 0);
	if (ctx && h.all)
		T_CHECK(bad, handlers_on_every_cpu(&mine), "PAGEMOVE_FAULT_HANDLERS=all: a CPU "
			"without its handler");
	stable = t_map(ctx, NSTABLE * T_SZ_4K, 0, 0);
	for (size_t p = 0; p < NSTABLE; p++)
		t_fill(stable + p * T_SZ_4K, T_SZ_4K, 10000 + p, SEED);
	for (int i = 0; i < nw; i++) {
		int k = 0;

		wk[i].idx = i;
		wk[i].cpu = -1;
		if (h.pin)	/* the i-th CPU we may use */
			for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
				if (CPU_ISSET(cpu, &mine) && k++ == i % ncpu)
					wk[i].cpu = cpu;
		wk[i].a4 = t_map(ctx, NP4K * T_SZ_4K, i & 1, 0);
		if (huge)
			atomic_store(&wk[i].a2, t_map(ctx, NP2M * T_SZ_2M, i & 1, PMV_HUGE));
	}
	if (h.storm) {
		struct sigaction sa = { .sa_handler = on_signal };

		sigemptyset(&sa.sa_mask);
		T_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
		sa.sa_flags = SA_RESTART;
		T_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
	}
	t_step("start %d workers, %d rounds", nw, nrounds);
	if (ctx)
		T_EQ(pthread_create(&mover_th, NULL, mover, NULL), 0);
	for (int i = 0; i < nw; i++)
		T_EQ(pthread_create(&wk[i].th, NULL, worker, &wk[i]), 0);
	if (h.affinity == AFFINITY_CHANGES)
		T_EQ(pthread_create(&ch, NULL, changer, NULL), 0);
	if (h.storm)
		T_EQ(pthread_create(&sg, NULL, signaller, NULL), 0);
	if (h.cpuset == CPUSET_DURING) {
		/* half way through: the kernel narrows every thread's mask */
		for (int i = 0; i < nw; i++)
			while (atomic_load(&wk[i].rounds) < nrounds / 2)
				usleep(1000);
		t_step("enter the cpuset");
		T_CHECK(bad, cpuset_enter() == 0, "cannot enter %s", cpuset_dir);
	}
	for (int i = 0; i < nw; i++) {
		t_step("wait for worker %d", i);
		/* the signaller and the changer need every id until they stop */
		while (atomic_load(&wk[i].rounds) < nrounds)
			usleep(1000);
	}
	t_step("stop the helpers");
	atomic_store(&stop_helpers, 1);
	if (sg)
		pthread_join(sg, NULL);
	if (ch)
		pthread_join(ch, NULL);
	if (ctx)
		pthread_join(mover_th, NULL);
	for (int i = 0; i < nw; i++) {
		pthread_join(wk[i].th, NULL);
		total_bad += atomic_load(&wk[i].bad);
	}
	for (size_t p = 0; p < NSTABLE; p++)
		if (t_check(stable + p * T_SZ_4K, T_SZ_4K, 10000 + p, SEED) >= 0)
			total_bad++;
	printf("  %d workers x %d rounds on %d CPUs: %ld moves, %ld affinity changes, "
	       "%ld of %ld signals handled, %ld bad\n", nw, nrounds, ncpu, atomic_load(&moves),
	       atomic_load(&changes), atomic_load(&handled), atomic_load(&sent), total_bad);
	T_CHECK(bad, total_bad == 0, "%ld pages with a wrong byte", total_bad);
	T_CHECK(bad, atomic_load(&mover_bad) == 0, "%ld bad move statuses",
		atomic_load(&mover_bad));
	if (ctx)
		T_CHECK(bad, atomic_load(&moves) > 0, "the mover made no progress");
	if (h.affinity == AFFINITY_CHANGES)
		T_CHECK(bad, atomic_load(&changes) > 0, "no affinity was changed");
	if (h.storm) {
		T_CHECK(bad, atomic_load(&handled) > 0, "no signal was handled");
		T_CHECK(bad, atomic_load(&handler_bad) == 0, "%ld handler reads were wrong",
			atomic_load(&handler_bad));
	}
	if (ctx && h.cpuset != CPUSET_NONE) {
		T_CHECK(bad, pmv_threads_outside(cpuset_cpu, &nh) == 0,
			"a library thread may run outside the cpuset");
		/* every handler is made at pmv_create, for every CPU there may be */
		T_CHECK(bad, nh == t_handlers_expected(), "%d fault handlers, want %d", nh,
			t_handlers_expected());
	}
	pmv_destroy(ctx);
	return bad;
}

int main(void)
{
	struct t_suite s;
	const char *no_cpuset;

	t_suite_init(&s);
	no_cpuset = cpuset_make();
	for (int m = 0; m < (int)(sizeof(hows) / sizeof(hows[0])); m++)
		for (int all = 0; all < 2; all++) {
			char name[128];
			struct t_case c = { .mode = m, .variant = all, .name = name };

			snprintf(name, sizeof(name), "%s_handlers_%s", how_names[m],
				 all ? "on_every_cpu" : "following");
			if (hows[m].cpuset && no_cpuset) {
				t_suite_skip(&s, name, no_cpuset);
				continue;
			}
			t_run_isolated(&s, &c, run, 0);
		}
	for (int kind = 0; kind < 3; kind++)
		for (int all = 0; all < 2; all++) {
			static const char *const what[] = {
				"first_touches_race_the_programs_mremap_and_munmap",
				"first_touches_race_madv_dontneed",
				"sampled_accesses_race_madv_dontneed",
			};
			char name[128];
			struct t_case c = { .mode = kind, .variant = all, .name = name };

			snprintf(name, sizeof(name), "%s_handlers_%s", what[kind],
				 all ? "on_every_cpu" : "following");
			t_run_isolated(&s, &c, race, 0);
		}
	{
		static const char *const what[] = {
			"map_ahead_sequential_and_strided_touches_are_byte_exact",
			"map_ahead_off_with_pagemove_fault_ahead_0",
			"map_ahead_never_on_a_bounded_tier_and_no_sigbus",
			"map_ahead_races_madv_dontneed",
			"map_ahead_races_munmap",
			"map_ahead_races_mremap",
		};

		static const char *const around[] = {
			"fault_around_scattered_and_backward_touches_are_byte_exact", NULL,
			"fault_around_never_on_a_bounded_tier_and_no_sigbus",
			"fault_around_races_madv_dontneed",
			"fault_around_races_munmap",
			"fault_around_races_mremap",
		};

		for (int kind = 0; kind < (int)(sizeof(what) / sizeof(what[0])); kind++) {
			struct t_case c = { .mode = kind, .name = what[kind] };

			t_run_isolated(&s, &c, ahead, 0);
		}
		if (t_thp_enabled()) {
			struct t_case c2[] = {
				{ .variant = 0, .name = "map_ahead_2m_streams_are_byte_exact_and_huge" },
				{ .variant = 1, .name = "map_ahead_2m_never_on_a_bounded_tier_and_no_sigbus" },
			};

			for (int v = 0; v < 2; v++)
				t_run_isolated(&s, &c2[v], ahead_2m, 0);
		}
		for (int kind = 0; kind < (int)(sizeof(around) / sizeof(around[0])); kind++) {
			struct t_case c = { .mode = kind, .variant = 1, .name = around[kind] };

			if (around[kind])
				t_run_isolated(&s, &c, ahead, 0);
		}
	}
	{
		static const struct { int mode, all; const char *name; } wh[] = {
			{ WHERE_FOLLOW, 0, "handlers_follow_the_faulting_thread_to_its_cpu" },
			{ WHERE_NONE_LATER, 0, "no_thread_is_made_after_pmv_create_when_cpus_widen" },
			{ WHERE_NEW_MASKS, 0, "handlers_stay_inside_new_affinity_masks_following" },
			{ WHERE_NEW_MASKS, 1, "handlers_stay_inside_new_affinity_masks_on_every_cpu" },
		};
		cpu_set_t mine;

		sched_getaffinity(0, sizeof(mine), &mine);
		for (size_t i = 0; i < sizeof(wh) / sizeof(wh[0]); i++) {
			struct t_case c = { .mode = wh[i].mode, .variant = wh[i].all,
					    .name = wh[i].name };

			if (t_control())
				continue;	/* about the library's threads only */
			if (CPU_COUNT(&mine) < 2)
				t_suite_skip(&s, c.name, "needs two CPUs");
			else
				t_run_isolated(&s, &c, where, 0);
		}
	}
	if (!no_cpuset)
		rmdir(cpuset_dir);	/* its processes are gone */
	return t_suite_end(&s);
}
