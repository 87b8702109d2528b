/* SPDX-License-Identifier: MIT */
/*
 * fork() and managed memory.
 *  (a) The main thread rewrites pattern-filled 4 KB and 2 MB pages and forks
 *      while a mover moves them back and forth between two tiers (rewrites
 *      while a child lives split shared THPs into partly shared PTEs). Each child
 *      checks every byte of its snapshot (a hole reads as zeros, a half copy
 *      as another page's data) and that every call on the inherited context
 *      fails with ECHILD.
 *  (b) Pages shared with a live child: -EACCES without PMV_MOVE_ALL; with it
 *      they move, and the child keeps seeing the old data after the parent
 *      overwrites them. A 4 KB page the parent wrote is its own again; a
 *      2 MB page it wrote 4 KB of is still shared.
 *  (c) Once the child has exited, the same (never rewritten) pages move
 *      without PMV_MOVE_ALL.
 *  (d) Once the child has exited, every page moves without PMV_MOVE_ALL,
 *      also those the parent wrote a word of while it lived.
 * Each of (a), (b)+(c) and (d) is a sub-test in a watchdog child. Then
 * sub-tests in every mode (pages migrating, exchanging, parked, the policy
 * on) and page size:
 *  - fork: a child forked while pages move reads every byte of its
 *    snapshot while the parent rewrites the region;
 *  - vfork and clone(CLONE_VM): a child sharing the address space reads
 *    every byte and writes new data, which the parent then reads;
 *  - exec and exit: a process whose pages are moving (and a thread
 *    writing them) calls execve(), exit() or _exit(); it must end (the
 *    exec'd image runs), with no hang.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "harness.h"

#define SMALL_PAGES	256	/* 1 MB of 4 KB pages */
#define HUGE_PAGES	4	/* 8 MB of 2 MB pages */
#define SEED		0xf0c0

struct area {
	char *base;
	size_t psz, npages;
	size_t first;		/* pattern page number of page 0 */
};

static pmv_ctx *ctx;
static struct area areas[2];
static int nareas;
static atomic_int stop;
static atomic_long moves, bad_status;

static char *page_addr(const struct area *a, size_t i)
{
	return a->base + i * a->psz;
}

/* Returns the number of bad pages; prints the first few. */
static long check_area(const struct area *a, size_t from, size_t to, unsigned seed)
{
	long bad = 0;

	for (size_t i = from; i < to; i++) {
		long off = t_check(page_addr(a, i), a->psz, a->first + i, seed);

		if (off >= 0) {
			if (bad < 4)
				fprintf(stderr, "[%d] %s page %zu offset %ld: 0x%02x, seed %#x\n",
					(int)getpid(), a->psz == T_SZ_2M ? "2M" : "4K", i, off,
					(uint8_t)page_addr(a, i)[off], seed);
			bad++;
		}
	}
	return bad;
}

static long check_all(unsigned seed)
{
	long bad = 0;

	for (int k = 0; k < nareas; k++)
		bad += check_area(&areas[k], 0, areas[k].npages, seed);
	return bad;
}

static void fill_all(unsigned seed)
{
	for (int k = 0; k < nareas; k++)
		for (size_t i = 0; i < areas[k].npages; i++)
			t_fill(page_addr(&areas[k], i), areas[k].psz, areas[k].first + i, seed);
}

/*
 * Every way of migrating: pmv_move_pages() with and without PMV_MOVE_ALL,
 * pmv_mbind() with PMV_MOVE, and pmv_migrate(); fork must quiesce them all.
 */
static void *mover(void *arg)
{
	unsigned seed = 1234;
	void *pages[32];
	int tiers[32], status[32];
	long round = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		const struct area *a = &areas[rand_r(&seed) % nareas];
		int n = 1 + rand_r(&seed) % 32;
		int to = rand_r(&seed) & 1;
		/* Half the batches un-share; the others must report -EACCES. */
		int flags = ++round & 1 ? PMV_MOVE_ALL : 0;
		int ret;

		if (round % 8 == 0) {
			size_t first = rand_r(&seed) % a->npages;
			size_t len = (1 + rand_r(&seed) % (a->npages - first)) * a->psz;

			ret = pmv_mbind(ctx, page_addr(a, first), len, to,
					PMV_MOVE | (flags & PMV_MOVE_ALL));
			if (ret) {
				fprintf(stderr, "mover: pmv_mbind: %d (%s)\n", ret,
					pmv_strerror(ret));
				atomic_fetch_add(&bad_status, 1);
			}
			continue;
		}
		if (round % 8 == 4) {
			long left = pmv_migrate(ctx, 1UL << (1 - to), 1UL << to, flags);

			if (left < 0) {
				fprintf(stderr, "mover: pmv_migrate: %ld\n", left);
				atomic_fetch_add(&bad_status, 1);
			}
			continue;
		}
		for (int i = 0; i < n; i++) {
			pages[i] = page_addr(a, rand_r(&seed) % a->npages) +
				   rand_r(&seed) % a->psz;
			tiers[i] = to;
		}
		ret = pmv_move_pages(ctx, n, pages, tiers, status, flags);
		if (ret < 0) {
			fprintf(stderr, "mover: pmv_move_pages: %d\n", ret);
			atomic_fetch_add(&bad_status, 1);
		}
		for (int i = 0; i < n; i++) {
			if (status[i] == to) {
				atomic_fetch_add(&moves, 1);
			} else if (status[i] != -EBUSY &&
				   !(status[i] == -EACCES && !(flags & PMV_MOVE_ALL))) {
				fprintf(stderr, "mover: %s page: status %d (%s), flags %#x\n",
					a->psz == T_SZ_2M ? "2M" : "4K", status[i],
					pmv_strerror(status[i]), flags);
				atomic_fetch_add(&bad_status, 1);
			}
		}
	}
	return NULL;
}

/* In a fork child: the snapshot is intact and the context refuses work. */
static int child_check(unsigned seed, int destroy)
{
	void *p = areas[0].base;
	int to = 1, st = 0;
	struct pmv_tier_stats ts;
	struct pmv_ctx_stats cs;
	void *m;
	int bad = 0;

	if (check_all(seed))
		return 1;
#define CHILD_EQ(x, v)							\
	do {								\
		long long _x = (long long)(x);				\
		if (_x != (long long)(v)) {				\
			fprintf(stderr, "child: %s = %lld, want %s\n",	\
				#x, _x, #v);				\
			bad = 1;					\
		}							\
	} while (0)
	CHILD_EQ(pmv_move_pages(ctx, 1, &p, &to, &st, 0), -ECHILD);
	CHILD_EQ(pmv_move_pages(ctx, 1, &p, &to, &st, PMV_MOVE_ALL), -ECHILD);
	CHILD_EQ(pmv_move_pages(ctx, 1, &p, NULL, &st, 0), -ECHILD);
	CHILD_EQ(pmv_migrate(ctx, 1, 2, 0), -ECHILD);
	CHILD_EQ(pmv_mbind(ctx, p, T_SZ_4K, 1, PMV_MOVE), -ECHILD);
	CHILD_EQ(pmv_munmap(ctx, areas[0].base, areas[0].npages * areas[0].psz), -ECHILD);
	CHILD_EQ(pmv_tier_stats(ctx, 0, &ts), -ECHILD);
	CHILD_EQ(pmv_ctx_stats(ctx, &cs), -ECHILD);
	CHILD_EQ(pmv_tier_count(ctx), -ECHILD);
	errno = 0;
	m = pmv_mmap(ctx, T_SZ_4K, 0, 0);
	CHILD_EQ(m == NULL, 1);
	CHILD_EQ(errno, ECHILD);
	/* The failed calls changed nothing, and destroy keeps the memory. */
	if (destroy)
		pmv_destroy(ctx);
	if (check_all(seed))
		bad = 1;
#undef CHILD_EQ
	return bad;
}

static void reap(pid_t pid, const char *what)
{
	int ws;

	T_EQ(waitpid(pid, &ws, 0), pid);
	T_ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "%s child %d failed: status %#x",
		 what, (int)pid, ws);
}

static void query(void *const *pages, size_t n, int *status)
{
	int ret = pmv_move_pages(ctx, n, pages, NULL, status, 0);

	T_EQ(ret, 0);
}

/* Bytes [from, to) of a page hold the pattern of seed? */
static int range_ok(const char *p, size_t from, size_t to, size_t pageno, unsigned seed)
{
	for (size_t i = from; i < to; i++)
		if ((uint8_t)p[i] != t_pat(pageno, i, seed))
			return 0;
	return 1;
}

/* Move n pages to tiers[]; every status must be want[i]. Returns the call's result. */
static int move_expect(void **pages, size_t n, const int *tiers, const int *want, int flags,
		       const char *what)
{
	int st[SMALL_PAGES + HUGE_PAGES];
	int ret = pmv_move_pages(ctx, n, pages, tiers, st, flags);

	for (size_t i = 0; i < n; i++)
		T_ASSERT(st[i] == want[i], "%s: page %zu: status %d (%s), want %d", what, i,
			 st[i], pmv_strerror(st[i]), want[i]);
	query(pages, n, st);
	for (size_t i = 0; i < n; i++)
		T_ASSERT(st[i] == (want[i] >= 0 ? tiers[i] : 1 - tiers[i]),
			 "%s: page %zu is on tier %d", what, i, st[i]);
	return ret;
}

struct set {
	void *pages[SMALL_PAGES + HUGE_PAGES];
	int to[SMALL_PAGES + HUGE_PAGES], want[SMALL_PAGES + HUGE_PAGES];
	size_t n;
};

/*
 * (b) and (c). Each area in quarters: Q0 moves while shared (A), Q1 is
 * tried while shared and moves after the child exits (C1), Q2 is left
 * alone until then (C2), Q3 is written after fork (W): a 4 KB page written
 * is ours alone, but a 2 MB page with only its first 4 KB written is still
 * mostly shared (the write split it into PTEs).
 */
static void check_shared_pages_move(void)
{
	unsigned old = SEED + 1000, new = SEED + 2000, wseed = SEED + 3000;
	struct set A = { .n = 0 }, C = { .n = 0 }, W = { .n = 0 }, Wh = { .n = 0 };
	size_t q[2], nC1 = 0;
	int pfd[2];
	pid_t pid;
	char go = 0;

	fill_all(old);	/* every page exclusive to us again */
	for (int k = 0; k < nareas; k++)
		q[k] = areas[k].npages / 4;
	for (int s = 0; s < 3; s++) {
		for (int k = 0; k < nareas; k++) {
			for (size_t i = s * q[k]; i < (s + 1) * q[k]; i++) {
				struct set *x = s ? &C : &A;

				x->pages[x->n++] = page_addr(&areas[k], i);
			}
		}
		if (s == 1)
			nC1 = C.n;
	}
	for (int k = 0; k < nareas; k++) {
		for (size_t i = 3 * q[k]; i < areas[k].npages; i++) {
			struct set *x = areas[k].psz == T_SZ_2M ? &Wh : &W;

			x->pages[x->n++] = page_addr(&areas[k], i);
		}
	}
	{
		struct set *all[4] = { &A, &C, &W, &Wh };
		int st[SMALL_PAGES + HUGE_PAGES];

		for (int s = 0; s < 4; s++) {
			query(all[s]->pages, all[s]->n, st);
			for (size_t i = 0; i < all[s]->n; i++)
				all[s]->to[i] = 1 - st[i];
		}
	}

	T_EQ(pipe(pfd), 0);
	pid = fork();
	T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		/* wait until the parent has moved and rewritten pages */
		close(pfd[1]);
		if (read(pfd[0], &go, 1) != 1)
			_exit(2);
		_exit(check_all(old) ? 1 : 0);
	}
	close(pfd[0]);

	/* shared and not written since fork: -EACCES, nothing moves */
	for (size_t i = 0; i < A.n; i++)
		A.want[i] = -EACCES;
	T_EQ(move_expect(A.pages, A.n, A.to, A.want, 0, "shared"), A.n);
	for (size_t i = 0; i < nC1; i++)
		C.want[i] = -EACCES;
	T_EQ(move_expect(C.pages, nC1, C.to, C.want, 0, "shared C1"), nC1);

	/* PMV_MOVE_ALL un-shares them; the data comes along */
	for (size_t i = 0; i < A.n; i++)
		A.want[i] = A.to[i];
	T_EQ(move_expect(A.pages, A.n, A.to, A.want, PMV_MOVE_ALL, "MOVE_ALL"), 0);
	for (int k = 0; k < nareas; k++)
		T_EQ(check_area(&areas[k], 0, q[k], old), 0);
	for (int k = 0; k < nareas; k++)
		for (size_t i = 0; i < q[k]; i++)
			t_fill(page_addr(&areas[k], i), areas[k].psz, areas[k].first + i, new);

	/* written since fork: a 4 KB page is ours, a half-written 2 MB page is not */
	for (int k = 0; k < nareas; k++)
		for (size_t i = 3 * q[k]; i < areas[k].npages; i++)
			t_fill(page_addr(&areas[k], i), T_SZ_4K, areas[k].first + i, wseed);
	for (size_t i = 0; i < W.n; i++)
		W.want[i] = W.to[i];
	T_EQ(move_expect(W.pages, W.n, W.to, W.want, 0, "written 4K"), 0);
	for (size_t i = 0; i < Wh.n; i++)
		Wh.want[i] = -EACCES;
	T_EQ(move_expect(Wh.pages, Wh.n, Wh.to, Wh.want, 0, "partly written 2M"), Wh.n);
	for (size_t i = 0; i < Wh.n; i++)
		Wh.want[i] = Wh.to[i];
	T_EQ(move_expect(Wh.pages, Wh.n, Wh.to, Wh.want, PMV_MOVE_ALL, "partly written 2M"), 0);

	/* the child still sees the old data everywhere */
	T_EQ(write(pfd[1], &go, 1), 1);
	close(pfd[1]);
	reap(pid, "shared");

	/*
	 * (c) The child is gone: C (mapped once, but not exclusive until
	 * written) moves without PMV_MOVE_ALL.
	 */
	for (size_t i = 0; i < C.n; i++)
		C.want[i] = C.to[i];
	T_EQ(move_expect(C.pages, C.n, C.to, C.want, 0, "no longer shared"), 0);

	for (int k = 0; k < nareas; k++) {
		T_EQ(check_area(&areas[k], 0, q[k], new), 0);
		T_EQ(check_area(&areas[k], q[k], 3 * q[k], old), 0);
		for (size_t i = 3 * q[k]; i < areas[k].npages; i++) {
			const char *p = page_addr(&areas[k], i);
			size_t no = areas[k].first + i;

			T_ASSERT(range_ok(p, 0, T_SZ_4K, no, wseed) &&
				 range_ok(p, T_SZ_4K, areas[k].psz, no, old),
				 "written page %zu of area %d: wrong data", i, k);
		}
	}
	printf("(b) %zu shared pages: -EACCES, then moved with PMV_MOVE_ALL; %zu written 4K "
	       "pages moved, %zu partly written 2M pages -EACCES; (c) %zu moved after the "
	       "child exited\n", A.n, W.n, Wh.n, C.n);
}

/* Where page i of (d) gets its word: in its first 4 KB, or in its middle. */
static size_t word_at(size_t i, size_t psz)
{
	return i % 4 == 1 ? 64 : psz / 2;
}

/*
 * (d) After fork the parent writes a word in every other page, in its
 * first 4 KB or in its middle (for 2 MB pages a COW that splits the THP
 * into PTEs, mostly still the child's; the first 4 KB is the folio's head).
 * While the child lives the pages it shares get -EACCES; once it has
 * exited and been reaped, no other process maps any of them, so every
 * page, written or not, moves without PMV_MOVE_ALL, there and back, every
 * byte intact. Returns the number of failed checks.
 */
static int movable_once_child_exits(size_t psz)
{
	enum { N = 8 };
	const char *what = psz == T_SZ_2M ? "2M" : "4K";
	unsigned seed = SEED + 4000;
	size_t first = 1000;	/* pattern page numbers of its own */
	char *base = pmv_mmap(ctx, N * psz, 0, psz == T_SZ_2M ? PMV_HUGE : 0);
	void *pages[N], *even[N / 2];
	int to[N], st[N], pfd[2], bad = 0;
	uint64_t word = 0x5eedf00dcafe0001ULL;
	char go = 0;
	pid_t pid;

	T_ASSERT(base, "pmv_mmap %s: %s", what, strerror(errno));
	for (size_t i = 0; i < N; i++) {
		pages[i] = base + i * psz;
		t_fill(pages[i], psz, first + i, seed);
	}
	T_EQ(pipe(pfd), 0);
	pid = fork();
	T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		close(pfd[1]);
		if (read(pfd[0], &go, 1) != 1)
			_exit(2);
		for (size_t i = 0; i < N; i++)
			if (t_check(pages[i], psz, first + i, seed) >= 0)
				_exit(1);
		_exit(0);
	}
	close(pfd[0]);
	/* a word in every odd page: a COW fault in the parent */
	for (size_t i = 1; i < N; i += 2)
		memcpy((char *)pages[i] + word_at(i, psz), &word, sizeof(word));
	/* the even pages are still the child's too */
	for (size_t i = 0; i < N / 2; i++) {
		even[i] = pages[2 * i];
		to[i] = 1;
	}
	T_EQ(pmv_move_pages(ctx, N / 2, even, to, st, 0), N / 2);
	for (size_t i = 0; i < N / 2; i++)
		T_CHECK(bad, st[i] == -EACCES, "%s page %zu shared with a live child: "
			"status %d (%s)", what, 2 * i, st[i], pmv_strerror(st[i]));
	T_EQ(write(pfd[1], &go, 1), 1);
	close(pfd[1]);
	reap(pid, what);

	for (int pass = 0; pass < 2; pass++) {
		int ret;

		for (size_t i = 0; i < N; i++)
			to[i] = 1 - pass;
		/*
		 * -EBUSY is transient (the default policy samples these pages,
		 * and a page it holds is busy): tried again, a bounded number
		 * of times. -EACCES, the point here, never is.
		 */
		for (int tries = 0;; tries++) {
			int busy = 0;

			ret = pmv_move_pages(ctx, N, pages, to, st, 0);
			for (size_t i = 0; i < N; i++)
				busy += st[i] == -EBUSY;
			if (!busy || tries == 50)
				break;
			usleep(2000);
		}
		T_CHECK(bad, ret == 0, "%s pass %d: %d pages not moved", what, pass, ret);
		for (size_t i = 0; i < N; i++)
			T_CHECK(bad, st[i] == to[i], "%s page %zu, pass %d, no child: "
				"status %d (%s)", what, i, pass, st[i], pmv_strerror(st[i]));
		for (size_t i = 0; i < N; i++) {
			const char *p = pages[i];
			size_t w = word_at(i, psz);

			T_CHECK(bad, range_ok(p, 0, w, first + i, seed) &&
				(i & 1 ? !memcmp(p + w, &word, sizeof(word)) :
				 range_ok(p, w, w + sizeof(word), first + i, seed)) &&
				range_ok(p, w + sizeof(word), psz, first + i, seed),
				"%s page %zu, pass %d: wrong data", what, i, pass);
		}
	}
	T_EQ(pmv_munmap(ctx, base, N * psz), 0);
	if (!bad)
		printf("(d) %s: %d pages shared with a live child -EACCES; all %d moved "
		       "there and back once it exited\n", what, N / 2, N);
	return bad;
}

/* ---- sub-tests in every mode ------------------------------------------- */

#define NP_4K		64
#define NP_2M		4
#define EXEC_CHILD_CODE	7

static struct t_region R;
static struct t_agit AG;

static void setup(const struct t_case *c)
{
	size_t n = c->huge ? NP_2M : NP_4K, psz = c->huge ? T_SZ_2M : T_SZ_4K;

	ctx = t_ctx_mode(c->mode, (c->huge ? 2 : n / 4) * psz, NULL);
	t_region_map(&R, ctx, n, c->huge, 0, 0, SEED + 50 * c->mode + c->huge);
	t_region_fill(&R);
	t_region_spread(&R, c->mode);
	t_agit_init(&AG, ctx, c->mode, R.base, R.psz, R.npages, SEED + 7 * c->mode + c->huge);
	AG.allow[1] = -EACCES;	/* shared with a fork child */
	t_agit_run(&AG);
	t_agit_sync(&AG, 4);
}

static long finish(const struct t_case *c, long bad, const char *who)
{
	struct pmv_ctx_stats cs = { 0 };

	bad += t_agit_check(&AG, who, 1);
	bad += t_region_check(&R, "final check of every byte");
	if (ctx) {
		pmv_ctx_stats(ctx, &cs);
		printf("  %llu migrations, %llu samples (%s)\n", (unsigned long long)cs.migrations,
		       (unsigned long long)cs.samples, t_mode_names[c->mode]);
	}
	t_region_free(&R);
	t_destroy(ctx);
	return bad;
}

/*
 * Fork while pages move (parked ones too: waited for); the child checks
 * every byte of its snapshot while the parent rewrites the region (COW),
 * then the parent checks its own new data.
 */
static int test_fork_child_reads_snapshot(const struct t_case *c)
{
	int rounds = t_rounds(4);
	long bad = 0;

	setup(c);
	for (int r = 0; r < rounds; r++) {
		int pfd[2], ws;
		char go = 0;
		pid_t pid;

		t_wait_parked(c->mode, R.base, R.psz, R.npages, 1);
		T_EQ(pipe(pfd), 0);
		t_step("round %d: fork", r);
		fflush(stdout);
		pid = fork();
		T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			close(pfd[1]);
			if (read(pfd[0], &go, 1) != 1)
				_exit(2);
			_exit(t_region_check(&R, "fork child") ? 1 : 0);
		}
		close(pfd[0]);
		/* the child checks against its copy of the model: as of the fork */
		t_region_fill(&R);
		T_EQ(write(pfd[1], &go, 1), 1);
		close(pfd[1]);
		t_agit_sync(&AG, 2);
		t_step("round %d: wait for the fork child", r);
		T_EQ(t_wait_child(pid, 30, &ws), 0);
		T_CHECK(bad, WIFEXITED(ws) && !WEXITSTATUS(ws),
			"round %d: the fork child found bad data (status %#x)", r, ws);
		bad += t_region_check(&R, "parent after fork and rewrite");
	}
	return (int)finish(c, bad, "fork");
}

/* The clone(CLONE_VM) child: check every byte, write the odd pieces anew. */
static int vm_child(void *arg)
{
	long bad = t_region_check(&R, "CLONE_VM child");

	(void)arg;
	for (size_t p = 1; p < R.npieces; p += 2)
		t_fill(t_piece(&R, p), T_SZ_4K, p, t_gen_seed(&R, R.gen[p] + 1));
	return bad ? 1 : 0;
}

/*
 * vfork (clone CLONE_VM | CLONE_VFORK: this thread waits, the agitator
 * does not) or clone(CLONE_VM) (both run): a child in this address space
 * reads every byte, faulting parked and moving pages like any thread,
 * and writes new data into every other piece, which this process reads.
 */
static int test_vm_child_reads_and_writes(const struct t_case *c)
{
	int vfork_like = c->variant == 0, rounds = t_rounds(4);
	size_t stack_len = 256 << 10;
	char *stack;
	long bad = 0;

	setup(c);
	stack = t_sys_mmap(NULL, stack_len, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	T_ASSERT(stack != MAP_FAILED, "mmap stack");
	for (int r = 0; r < rounds; r++) {
		int ws;
		pid_t pid;

		t_wait_parked(c->mode, R.base, R.psz, R.npages, 1);
		t_step("round %d: %s", r, vfork_like ? "vfork" : "clone(CLONE_VM)");
		fflush(stdout);
		pid = clone(vm_child, stack + stack_len,
			    CLONE_VM | (vfork_like ? CLONE_VFORK : 0) | SIGCHLD, NULL);
		T_ASSERT(pid > 0, "clone: %s", strerror(errno));
		if (!vfork_like)
			t_agit_sync(&AG, 2);
		T_EQ(t_wait_child(pid, 30, &ws), 0);
		T_CHECK(bad, WIFEXITED(ws) && !WEXITSTATUS(ws),
			"round %d: the child found bad data (status %#x)", r, ws);
		for (size_t p = 1; p < R.npieces; p += 2)
			R.gen[p]++;
		t_agit_sync(&AG, 2);
		bad += t_region_check(&R, "after the child's writes");
	}
	munmap(stack, stack_len);
	return (int)finish(c, bad, vfork_like ? "vfork" : "clone");
}

static void *writer(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (;;) {
		size_t p = rand_r(&seed) % R.npieces;

		t_fill(t_piece(&R, p), T_SZ_4K, p, seed);
	}
	return NULL;
}

enum { END_EXEC, END_EXIT, END__EXIT };
static const char *const end_names[] = { "exec", "exit", "_exit" };

/*
 * A process (forked from the sub-test) with a context, pages moving and a
 * thread writing them ends with execve() of this program (which exits
 * EXEC_CHILD_CODE at once), exit(0) or _exit(0), at a random moment: it
 * must end as it says, within the limit.
 */
static int test_end_while_moving(const struct t_case *c)
{
	int rounds = t_rounds(3), bad = 0;

	for (int r = 0; r < rounds; r++) {
		int ws, want = c->variant == END_EXEC ? EXEC_CHILD_CODE : 0;
		pid_t pid;

		t_step("round %d: a process that will %s while moving", r,
		       end_names[c->variant]);
		fflush(stdout);
		pid = fork();
		T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0) {
			pthread_t w;
			char *const argv[] = { "t_fork", "--exec-child", NULL };

			setup(c);
			T_EQ(pthread_create(&w, NULL, writer, (void *)(uintptr_t)(SEED + r)), 0);
			t_agit_sync(&AG, 2 + r * 3);
			if (c->variant == END_EXEC) {
				execv("/proc/self/exe", argv);
				_exit(3);
			}
			if (c->variant == END_EXIT)
				exit(0);
			_exit(0);
		}
		if (t_wait_child(pid, 30, &ws)) {
			printf("  FAIL round %d: the process did not end after %s: hung\n", r,
			       end_names[c->variant]);
			bad++;
			continue;
		}
		T_CHECK(bad, WIFEXITED(ws) && WEXITSTATUS(ws) == want,
			"round %d: after %s: status %#x (%s %d), want exit %d", r,
			end_names[c->variant], ws, WIFSIGNALED(ws) ? "signal" : "exit",
			WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws), want);
	}
	return bad;
}

/* ---- (a)-(d) as sub-tests ------------------------------------------------ */

/* The context and the (a)-(c) areas, 4 KB and (huge) 2 MB pages, filled. */
static void areas_setup(int huge)
{
	ctx = t_ctx(2, NULL, 0);
	areas[0].psz = T_SZ_4K;
	areas[0].npages = SMALL_PAGES;
	areas[0].base = pmv_mmap(ctx, SMALL_PAGES * T_SZ_4K, 0, 0);
	T_ASSERT(areas[0].base, "pmv_mmap: %s", strerror(errno));
	nareas = 1;
	if (huge) {
		areas[1].psz = T_SZ_2M;
		areas[1].npages = HUGE_PAGES;
		areas[1].first = SMALL_PAGES;
		areas[1].base = pmv_mmap(ctx, HUGE_PAGES * T_SZ_2M, 0, PMV_HUGE);
		T_ASSERT(areas[1].base, "pmv_mmap huge: %s", strerror(errno));
		nareas = 2;
	}
	fill_all(SEED);
}

/*
 * (a) fork while pages migrate and the parent rewrites them. This found
 * the uncounted UFFDIO_MOVE of Linux 6.18 (see uffd.c): fork and COW make
 * the kernel's folio locks contended, and without the workaround most
 * runs showed a child a zero page.
 */
static int test_children_forked_while_pages_move_read_their_snapshots(const struct t_case *c)
{
	int nforks = (int)(20 * t_duration(1));
	unsigned seed = SEED;
	double t0 = t_now();
	pthread_t mv;
	pid_t prev = 0;

	areas_setup(c->huge);
	pthread_create(&mv, NULL, mover, NULL);
	for (int i = 0; i < nforks; i++) {
		pid_t pid;

		t_step("fork %d of %d", i, nforks);
		seed = SEED + i;
		fill_all(seed);
		usleep(20000);	/* let the mover get some pages in flight */
		pid = fork();
		T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0)
			_exit(child_check(seed, i & 1));
		/* keep one child alive while the next round rewrites (COW) */
		if (prev)
			reap(prev, "migrating");
		prev = pid;
	}
	reap(prev, "migrating");
	atomic_store(&stop, 1);
	pthread_join(mv, NULL);
	T_EQ(check_all(seed), 0);
	T_EQ(atomic_load(&bad_status), 0);
	T_ASSERT(atomic_load(&moves) > 0, "no progress: %ld moves", atomic_load(&moves));
	printf("(a) %d forks, %ld pages moved, %.1fs\n", nforks, atomic_load(&moves),
	       t_now() - t0);
	pmv_destroy(ctx);
	return 0;
}

/* (b) and (c) */
static int test_shared_pages_move_with_move_all_or_once_the_child_exits(const struct t_case *c)
{
	areas_setup(c->huge);
	check_shared_pages_move();
	pmv_destroy(ctx);
	return 0;
}

/* (d) */
static int test_pages_written_while_shared_move_once_the_child_exits(const struct t_case *c)
{
	int fails;

	ctx = t_ctx(2, NULL, 0);
	fails = movable_once_child_exits(c->huge ? T_SZ_2M : T_SZ_4K);
	pmv_destroy(ctx);
	return fails;
}

static int run_suite(void)
{
	struct t_suite s;

	t_suite_init(&s);
	T_CASE_ONE(&s, test_children_forked_while_pages_move_read_their_snapshots, 1);
	T_CASE_ONE(&s, test_shared_pages_move_with_move_all_or_once_the_child_exits, 1);
	for (int h = 0; h < 2; h++)
		T_CASE(&s, test_pages_written_while_shared_move_once_the_child_exits, -1, h);
	T_CASE_ALL_FAR(&s, test_fork_child_reads_snapshot);
	for (int v = 0; v < 2; v++)
		for (int h = 0; h < 2; h++)
			for (int m = 0; m < T_NMODES; m++)
				if (t_mode_on(m, !v && !h))	/* evicting: vfork, 4 KB */
					T_CASE_V(&s, test_vm_child_reads_and_writes, v,
					 v ? "clone_vm" : "vfork", m, h);
	for (int v = 0; v < 3; v++)
		for (int h = 0; h < 2; h++)
			for (int m = 0; m < T_NMODES; m++)
				if (t_mode_on(m, v == 1))	/* evicting: exit */
					T_CASE_V(&s, test_end_while_moving, v, end_names[v], m, h);
	return t_suite_end(&s);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--exec-child"))
		return EXEC_CHILD_CODE;	/* test_end_while_moving's exec'd image */
	return run_suite() ? T_EXIT_FAIL : T_EXIT_PASS;
}
