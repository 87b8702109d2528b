/* SPDX-License-Identifier: MIT */
/*
 * madvise(2) on managed memory (raw syscalls), on whole pages and on
 * sub-ranges of 2 MB pages, while pages migrate, exchange, are parked by
 * the sampler, or the policy moves them; a reader checks random pieces
 * meanwhile. Every call is made on a plain anonymous shadow of the same
 * shape, state and alignment too, and must return what it returns there
 * (the rule: managed memory is private anonymous memory). What the
 * program reads:
 *  - MADV_DONTNEED: the range reads zeros, now and after more moves (a
 *    discarded page never comes back with its old data); new writes stay;
 *  - MADV_FREE: each 4 KB piece reads its old data or zeros, never
 *    anything else; written again, it keeps the new data;
 *  - MADV_REMOVE: refused as on plain private memory (EINVAL), data kept;
 *  - MADV_DONTFORK / MADV_DOFORK: a fork child lacks the range (SIGSEGV),
 *    then has it again; MADV_WIPEONFORK / MADV_KEEPONFORK: a child reads
 *    zeros there, then the data;
 *  - MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED, MADV_POPULATE_READ/WRITE,
 *    MADV_HUGEPAGE/NOHUGEPAGE change no byte; POPULATE_READ/WRITE of
 *    never-touched memory give zeros (a first touch);
 *  - MADV_COLLAPSE: the data survives; it returns what plain memory
 *    returns, or, where a page is out of its address at that moment
 *    (parked, moving), the kernel's refusal for a userfaultfd range with
 *    empty entries (EBUSY, EINVAL): the documented difference;
 *  - capacity: on a bound tier of 4 pages, rounds of touch + DONTNEED
 *    never get SIGBUS, and discarded pages stop being charged (resident
 *    bytes of pmv_tier_stats, once the movers stopped).
 */
#include "harness.h"

#define NP_4K		64
#define NP_2M		4
#define SEED		0x3ad5

static pmv_ctx *ctx;
static struct t_region R;
static struct t_agit AG;
static char *shadow;			/* plain memory, R's twin */
static char *shadow_map;
static size_t shadow_len;
static pthread_rwlock_t lk = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int reader_stop;
static atomic_long reader_bad, reader_reads;
static pthread_t reader_th;
static int reader_on;

static const char *adv_name(int adv)
{
	switch (adv) {
	case MADV_DONTNEED: return "MADV_DONTNEED";
	case MADV_FREE: return "MADV_FREE";
	case MADV_REMOVE: return "MADV_REMOVE";
	case MADV_DONTFORK: return "MADV_DONTFORK";
	case MADV_DOFORK: return "MADV_DOFORK";
	case MADV_WIPEONFORK: return "MADV_WIPEONFORK";
	case MADV_KEEPONFORK: return "MADV_KEEPONFORK";
	case MADV_COLD: return "MADV_COLD";
	case MADV_PAGEOUT: return "MADV_PAGEOUT";
	case MADV_WILLNEED: return "MADV_WILLNEED";
	case MADV_POPULATE_READ: return "MADV_POPULATE_READ";
	case MADV_POPULATE_WRITE: return "MADV_POPULATE_WRITE";
	case MADV_HUGEPAGE: return "MADV_HUGEPAGE";
	case MADV_NOHUGEPAGE: return "MADV_NOHUGEPAGE";
	case MADV_COLLAPSE: return "MADV_COLLAPSE";
	}
	return "?";
}

/* ---- the shadow: plain memory shaped, aligned and written as R ------ */

static void shadow_make(int huge)
{
	size_t off = (uintptr_t)R.base & (T_SZ_2M - 1);

	shadow_len = R.len + T_SZ_2M;
	shadow_map = t_plain_map(shadow_len, PMV_HUGE);	/* 2 MB aligned */
	if (!huge)
		T_EQ(t_sys_madvise(shadow_map, shadow_len, MADV_NOHUGEPAGE), 0);
	shadow = shadow_map + off;
}

static void shadow_free(void)
{
	if (shadow_map)
		munmap(shadow_map, shadow_len);
	shadow_map = shadow = NULL;
}

static void shadow_sync(size_t p, size_t n)
{
	for (size_t i = p; i < p + n && i < R.npieces; i++)
		memcpy(shadow + i * T_SZ_4K, t_piece(&R, i), T_SZ_4K);
}

/* Write the next generation of pieces [p, p+n), in R and the shadow. */
static void write_pieces(size_t p, size_t n)
{
	pthread_rwlock_wrlock(&lk);
	t_pieces_write(&R, p, n);
	shadow_sync(p, n);
	pthread_rwlock_unlock(&lk);
}

/* madvise with EAGAIN (a transient of khugepaged's) retried a few times. */
static int madv(char *a, size_t len, int adv)
{
	int e = 0;

	for (int tries = 0; tries < 5; tries++) {
		e = t_sys_madvise(a, len, adv) ? errno : 0;
		if (e != EAGAIN)
			break;
		usleep(1000);
	}
	return e;
}

/*
 * madvise pieces [p, p+n) of R and of the shadow; mark them st (-1: no
 * change) once done, under the lock the reader reads under. 0 if R's
 * result is the shadow's (for MADV_COLLAPSE also the documented
 * refusals), else 1.
 */
static int advise(size_t p, size_t n, int adv, int st)
{
	int e, es;

	t_step("%s(pieces [%zu, %zu))", adv_name(adv), p, p + n);
	pthread_rwlock_wrlock(&lk);
	e = madv(t_piece(&R, p), n * T_SZ_4K, adv);
	es = madv(shadow + p * T_SZ_4K, n * T_SZ_4K, adv);
	if (st >= 0)
		t_pieces_mark(&R, p, n, st);
	pthread_rwlock_unlock(&lk);
	t_beat();
	if (e == es)
		return 0;
	if (adv == MADV_COLLAPSE && !es && (e == EBUSY || e == EINVAL)) {
		printf("  note: MADV_COLLAPSE(pieces [%zu, %zu)): %s, on plain memory: success "
		       "(a page out of its address: see DESIGN.md)\n", p, p + n, strerror(e));
		return 0;
	}
	printf("  FAIL %s(pieces [%zu, %zu)): %s, on plain memory: %s\n", adv_name(adv), p,
	       p + n, e ? strerror(e) : "success", es ? strerror(es) : "success");
	return 1;
}

/* ---- the reader ------------------------------------------------------ */

static void *reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&reader_stop)) {
		size_t p = rand_r(&seed) % R.npieces;

		pthread_rwlock_rdlock(&lk);
		atomic_fetch_add(&reader_bad, t_piece_check(&R, p, "reader"));
		pthread_rwlock_unlock(&lk);
		atomic_fetch_add(&reader_reads, 1);
		usleep(100);	/* leave the sampler pages to park */
	}
	return NULL;
}

static long reader_join(void)
{
	if (!reader_on)
		return 0;
	t_step("join the reader");
	atomic_store(&reader_stop, 1);
	pthread_join(reader_th, NULL);
	reader_on = 0;
	printf("  %ld reads by the reader\n", atomic_load(&reader_reads));
	return atomic_load(&reader_bad);
}

/* ---- set-up and the end of a sub-test -------------------------------- */

enum { NO_READER = 1 };

static void setup_n(const struct t_case *c, size_t np, int flags, int opts)
{
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K;

	ctx = t_ctx_mode(c->mode, (c->huge ? 2 : np / 4) * psz, NULL);
	t_region_map(&R, ctx, np, c->huge, 0, flags, SEED + c->mode * 16 + c->huge);
	shadow_make(c->huge);
	t_region_fill(&R);
	shadow_sync(0, R.npieces);
	t_region_spread(&R, c->mode);
	t_agit_init(&AG, ctx, c->mode, R.base, R.psz, R.npages, SEED + 7 * c->mode + c->huge);
	AG.allow[1] = -ENOENT;	/* a page discarded, or not touched again yet */
	AG.allow[2] = -EACCES;	/* shared with a fork child while it lives */
	t_agit_run(&AG);
	if (!(opts & NO_READER)) {
		T_EQ(pthread_create(&reader_th, NULL, reader, (void *)(uintptr_t)(SEED + np)), 0);
		reader_on = 1;
	}
}

static void setup(const struct t_case *c)
{
	setup_n(c, c->huge ? NP_2M : NP_4K, 0, 0);
}

static long finish(const struct t_case *c, long bad, const char *who)
{
	struct pmv_ctx_stats cs = { 0 };

	bad += reader_join();
	bad += t_agit_check(&AG, who, 1);
	bad += t_region_check(&R, "final check of every byte");
	if (ctx) {
		pmv_ctx_stats(ctx, &cs);
		printf("  %llu migrations, %llu samples, %llu first touches (%s)\n",
		       (unsigned long long)cs.migrations, (unsigned long long)cs.samples,
		       (unsigned long long)cs.faults_first_touch, t_mode_names[c->mode]);
	}
	shadow_free();
	t_destroy(ctx);
	return bad;
}

/* Check [p-1, p+n+1): the range and a piece on each side. */
static long check_around(size_t p, size_t n, const char *who)
{
	size_t lo = p ? p - 1 : p;
	long bad;

	pthread_rwlock_rdlock(&lk);
	bad = t_pieces_check(&R, lo, p + n + 1 - lo, who);
	pthread_rwlock_unlock(&lk);
	return bad;
}

static void pick(const struct t_case *c, unsigned *seed, size_t maxpages, size_t *p, size_t *n)
{
	t_pick_range_mode(&R, c->mode, seed, c->huge ? 1 : maxpages, p, n);
}

/*
 * A range to discard: whole pages (1..maxpages of 4 KB, one of 2 MB), or
 * with pieces 1..64 pieces somewhere in one 2 MB page; in parked mode
 * starting at a parked page.
 */
static void pick_discard(const struct t_case *c, int pieces, unsigned *seed, size_t maxpages,
			 size_t *p, size_t *n)
{
	size_t ppp = t_ppp(&R), pg = rand_r(seed) % R.npages;

	if (c->mode == T_PARKED)
		pg = t_find_parked(R.base, R.psz, R.npages, pg);
	if (pieces) {
		*n = 1 + rand_r(seed) % 64;
		*p = pg * ppp + rand_r(seed) % (ppp - *n + 1);
		return;
	}
	*n = c->huge ? 1 : 1 + rand_r(seed) % maxpages;
	if (pg + *n > R.npages)
		*n = R.npages - pg;
	*p = pg * ppp;
	*n *= ppp;
}

/* ---- discards -------------------------------------------------------- */

/*
 * Rounds for a discard test: pieces of 2 MB pages while they move take
 * many: a discard read between a mover's lock and its move out, which
 * erased pieces written again after MADV_FREE, showed within a few hundred.
 */
static int discard_rounds(const struct t_case *c)
{
	int movers = c->mode == T_MIGRATING || c->mode == T_EXCHANGING;

	return t_rounds(c->variant && movers ? 300 : 24);
}

/*
 * Pieces of a 2 MB page discarded: after 500 us (pages moving meanwhile)
 * every byte of the region, then the pieces written again.
 */
static long pieces_round(size_t p, size_t n, const char *who)
{
	long bad;

	usleep(500);
	pthread_rwlock_rdlock(&lk);
	bad = t_region_check(&R, who);
	pthread_rwlock_unlock(&lk);
	write_pieces(p, n);
	return bad;
}

/*
 * MADV_DONTNEED on random ranges of whole pages: zeros at once, zeros
 * after the agitator has worked on them (read at once in half the rounds,
 * only afterwards in the other half), and new data once written again;
 * of pieces of a 2 MB page: pieces_round().
 */
static int test_dontneed_reads_zeros(const struct t_case *c)
{
	unsigned seed = SEED + 100 * c->mode + 10 * c->variant + c->huge;
	int rounds = discard_rounds(c);
	long bad = 0;

	setup(c);
	for (int r = 0; r < rounds; r++) {
		size_t p, n;

		pick_discard(c, c->variant, &seed, 4, &p, &n);
		bad += advise(p, n, MADV_DONTNEED, T_ZERO);
		if (c->variant) {
			bad += pieces_round(p, n, "read after MADV_DONTNEED of pieces");
			continue;
		}
		if (r % 2)
			bad += check_around(p, n, "read right after MADV_DONTNEED");
		t_agit_sync(&AG, 2);
		bad += check_around(p, n, "read after MADV_DONTNEED and moves");
		t_agit_sync(&AG, 1);
		bad += check_around(p, n, "read after MADV_DONTNEED, moves, a read");
		if (r % 3) {
			write_pieces(p, n);
			t_agit_sync(&AG, 1);
			bad += check_around(p, n, "read of new data after MADV_DONTNEED");
		}
	}
	return (int)finish(c, bad, "dontneed");
}

/*
 * MADV_FREE: until written, a piece reads its old data or zeros (the
 * kernel may reclaim it any time); written again, its new data. Pieces
 * of a 2 MB page: pieces_round().
 */
static int test_free_reads_old_or_zeros(const struct t_case *c)
{
	unsigned seed = SEED + 200 * c->mode + 10 * c->variant + c->huge;
	int rounds = discard_rounds(c);
	long bad = 0;

	setup(c);
	for (int r = 0; r < rounds; r++) {
		size_t p, n;

		pick_discard(c, c->variant, &seed, 4, &p, &n);
		bad += advise(p, n, MADV_FREE, T_MAYBE);
		if (c->variant) {
			bad += pieces_round(p, n, "read after MADV_FREE of pieces");
			continue;
		}
		bad += check_around(p, n, "read after MADV_FREE");
		t_agit_sync(&AG, 2);
		bad += check_around(p, n, "read after MADV_FREE and moves");
		write_pieces(p, (n + 1) / 2);
		t_agit_sync(&AG, 2);
		bad += check_around(p, n, "read of new data after MADV_FREE");
	}
	return (int)finish(c, bad, "free");
}

/*
 * MADV_REMOVE: the kernel refuses it on private anonymous memory
 * (EINVAL: no file behind it); managed memory must give the same, and
 * lose nothing.
 */
static int test_remove_fails_as_on_plain(const struct t_case *c)
{
	unsigned seed = SEED + 300 * c->mode + c->huge;
	int rounds = t_rounds(8);
	long bad = 0;

	setup(c);
	for (int r = 0; r < rounds; r++) {
		size_t p, n;

		pick(c, &seed, 4, &p, &n);
		bad += advise(p, n, MADV_REMOVE, -1);
		t_agit_sync(&AG, 2);
		bad += check_around(p, n, "read after MADV_REMOVE");
	}
	return (int)finish(c, bad, "remove");
}

/* ---- fork advice ----------------------------------------------------- */

static size_t skip_p, skip_n;

/* In a fork child: pieces outside [skip_p, skip_p + skip_n) read right. */
static int child_check_outside(void *arg)
{
	long bad = 0;

	(void)arg;
	bad += t_pieces_check(&R, 0, skip_p, "fork child");
	bad += t_pieces_check(&R, skip_p + skip_n, R.npieces - skip_p - skip_n, "fork child");
	return bad ? 1 : 0;
}

/* In a fork child: [skip_p, +skip_n) reads zeros (wiped), the rest its data. */
static int child_check_wiped(void *arg)
{
	(void)arg;
	t_pieces_mark(&R, skip_p, skip_n, T_ZERO);
	return t_region_check(&R, "fork child after MADV_WIPEONFORK") ? 1 : 0;
}

static int child_check_all(void *arg)
{
	(void)arg;
	return t_region_check(&R, "fork child") ? 1 : 0;
}

/* Fork while R is stable (the model lock held): the child runs fn. */
static int expect_child(int (*fn)(void *), const char *what)
{
	int r;

	pthread_rwlock_rdlock(&lk);
	r = t_probe(fn, NULL);
	pthread_rwlock_unlock(&lk);
	if (r == 0)
		return 0;
	printf("  FAIL %s: the fork child %s\n", what, r == -ETIMEDOUT ? "hung" : r > 0 ?
	       strsignal(r) : "found bad data");
	return 1;
}

/* The range the fork tests advise: 4 KB pages 8..15; in a 2 MB page a sub-range. */
static void fork_range(const struct t_case *c, size_t *p, size_t *n)
{
	if (c->huge) {
		*p = t_ppp(&R) + 128;
		*n = 256;
	} else {
		*p = 8;
		*n = 8;
	}
	t_wait_parked(c->mode, t_piece(&R, *p), R.psz, 1, 1);
}

/*
 * MADV_DONTFORK: a fork child has no mapping there (a read is SIGSEGV)
 * and the rest reads right; MADV_DOFORK: the child has it all again.
 */
static int test_dontfork_child_lacks_range(const struct t_case *c)
{
	long bad = 0;
	size_t p, n;

	setup(c);
	fork_range(c, &p, &n);
	bad += advise(p, n, MADV_DONTFORK, -1);
	t_agit_sync(&AG, 2);
	skip_p = p;
	skip_n = n;
	t_step("fork: read outside the MADV_DONTFORK range");
	bad += expect_child(child_check_outside, "after MADV_DONTFORK");
	t_step("fork: read inside the MADV_DONTFORK range");
	if (!t_read_segfaults(t_piece(&R, p + n / 2), "a fork child, in a MADV_DONTFORK range")) {
		printf("  FAIL a fork child has the MADV_DONTFORK range\n");
		bad++;
	}
	if (!t_read_segfaults(shadow + (p + n / 2) * T_SZ_4K, "plain memory, MADV_DONTFORK"))
		printf("  note: not even plain memory's fork child lacks the range\n");
	t_agit_sync(&AG, 2);
	bad += check_around(p, n, "parent after fork with MADV_DONTFORK");
	bad += advise(p, n, MADV_DOFORK, -1);
	t_agit_sync(&AG, 2);
	t_step("fork after MADV_DOFORK");
	bad += expect_child(child_check_all, "after MADV_DOFORK");
	t_agit_sync(&AG, 2);
	return (int)finish(c, bad, "dontfork");
}

/* MADV_WIPEONFORK: a child reads zeros there; MADV_KEEPONFORK: the data. */
static int test_wipeonfork_child_reads_zeros(const struct t_case *c)
{
	long bad = 0;
	size_t p, n;

	setup(c);
	fork_range(c, &p, &n);
	bad += advise(p, n, MADV_WIPEONFORK, -1);
	t_agit_sync(&AG, 2);
	skip_p = p;
	skip_n = n;
	t_step("fork after MADV_WIPEONFORK");
	bad += expect_child(child_check_wiped, "after MADV_WIPEONFORK");
	t_agit_sync(&AG, 2);
	bad += check_around(p, n, "parent after fork with MADV_WIPEONFORK");
	write_pieces(p, n / 2);
	t_step("fork after MADV_WIPEONFORK and writes");
	bad += expect_child(child_check_wiped, "after MADV_WIPEONFORK and writes");
	bad += advise(p, n, MADV_KEEPONFORK, -1);
	t_agit_sync(&AG, 2);
	t_step("fork after MADV_KEEPONFORK");
	bad += expect_child(child_check_all, "after MADV_KEEPONFORK");
	return (int)finish(c, bad, "wipeonfork");
}

/* ---- advice that changes no byte ------------------------------------ */

static const int keep_advs[] = {
	MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
	MADV_HUGEPAGE, MADV_NOHUGEPAGE,
};
static const char *const keep_names[] = {
	"cold", "pageout", "willneed", "populate_read", "populate_write",
	"hugepage", "nohugepage",
};

/*
 * One advice value on random ranges, now and then on a range just
 * discarded (MADV_DONTNEED: POPULATE then places zero pages) or just
 * written: it succeeds as on plain memory and changes no byte.
 */
static int test_advice_keeps_data(const struct t_case *c)
{
	int adv = keep_advs[c->variant];
	unsigned seed = SEED + 400 * c->mode + 10 * c->variant + c->huge;
	int rounds = t_rounds(16);
	long bad = 0;

	setup(c);
	for (int r = 0; r < rounds; r++) {
		size_t p, n;

		if (r % 4 == 3) {
			/* whole pages: pieces are test_dontneed_reads_zeros' */
			pick_discard(c, 0, &seed, 8, &p, &n);
			bad += advise(p, n, MADV_DONTNEED, T_ZERO);
		} else {
			pick(c, &seed, 8, &p, &n);
			if (r % 4 == 1)
				write_pieces(p, n);
		}
		bad += advise(p, n, adv, -1);
		bad += check_around(p, n, adv_name(adv));
		t_agit_sync(&AG, 2);
		bad += check_around(p, n, adv_name(adv));
	}
	/* as pmv_mmap() left it */
	if (adv == MADV_HUGEPAGE || adv == MADV_NOHUGEPAGE)
		bad += advise(0, R.npieces, c->huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE, -1);
	return (int)finish(c, bad, keep_names[c->variant]);
}

/*
 * MADV_POPULATE_READ / WRITE of memory never touched (a second region):
 * a first touch through the kernel; it reads zeros, then takes writes.
 */
static int test_populate_first_touch(const struct t_case *c)
{
	int adv = c->variant ? MADV_POPULATE_WRITE : MADV_POPULATE_READ;
	struct t_region F;
	long bad = 0;
	int e, es;
	char *plain;

	setup(c);
	t_region_map(&F, ctx, R.npages, c->huge, 0, 0, SEED + 1);
	plain = t_plain_map(F.len, c->huge ? PMV_HUGE : 0);
	t_step("%s of a region never touched", adv_name(adv));
	e = madv(F.base, F.len, adv);
	es = madv(plain, F.len, adv);
	if (e != es) {
		printf("  FAIL %s of a region never touched: %s, on plain memory: %s\n",
		       adv_name(adv), e ? strerror(e) : "success", es ? strerror(es) : "success");
		bad++;
	}
	bad += t_region_check(&F, "never touched, after MADV_POPULATE");
	t_region_fill(&F);
	bad += t_region_check(&F, "written after MADV_POPULATE");
	t_agit_sync(&AG, 2);
	bad += t_region_check(&F, "written after MADV_POPULATE, later");
	bad += t_unmap(ctx, F.base, F.len) ? 1 : 0;
	t_region_free(&F);
	munmap(plain, F.len);
	return (int)finish(c, bad, "populate");
}

/*
 * MADV_COLLAPSE on a 2 MB-aligned window (after MADV_HUGEPAGE in a 4 KB
 * region of 4 MB; page 1 of a 2 MB region): the shadow's result, or a
 * documented refusal; the data survives it and the moves after it.
 */
static int test_collapse_keeps_data(const struct t_case *c)
{
	long bad = 0;
	size_t p, n = 512;

	setup_n(c, c->huge ? NP_2M : 1024, 0, 0);
	p = ((((uintptr_t)R.base + T_SZ_2M - 1) & ~(T_SZ_2M - 1)) - (uintptr_t)R.base) / T_SZ_4K;
	if (c->huge)
		p = t_ppp(&R);	/* page 1 */
	t_wait_parked(c->mode, t_piece(&R, p), T_SZ_4K, n, 1);
	if (!c->huge)
		bad += advise(p, n, MADV_HUGEPAGE, -1);
	bad += advise(p, n, MADV_COLLAPSE, -1);
	printf("  MADV_COLLAPSE: AnonHugePages %ld kB in the region's mapping, %ld kB in "
	       "plain memory's\n", t_anon_huge_kb(t_piece(&R, p)),
	       t_anon_huge_kb(shadow + p * T_SZ_4K));
	t_agit_sync(&AG, 4);
	bad += t_region_check(&R, "read after MADV_COLLAPSE and moves");
	write_pieces(p, n);
	t_agit_sync(&AG, 4);
	bad += check_around(p, n, "new data after MADV_COLLAPSE");
	return (int)finish(c, bad, "collapse");
}

/* ---- capacity -------------------------------------------------------- */

static volatile sig_atomic_t sigbus_round = -1;

static void on_sigbus(int sig)
{
	static const char head[] = "  FAIL SIGBUS in round ";
	char num[16], *q = num + sizeof(num);
	int r = sigbus_round;

	*--q = '\n';
	do
		*--q = (char)('0' + r % 10);
	while ((r /= 10) > 0 && q > num);
	if (write(1, head, sizeof(head) - 1) < 0 || write(1, q, num + sizeof(num) - q) < 0)
		_exit(3);
	signal(sig, SIG_DFL);	/* the access is retried: the next one kills */
}

/* Stop the agitator, then: resident bytes settled at want? 0 or 1. */
static int resident_is(uint64_t want, const char *when)
{
	uint64_t res;

	t_agit_stop(&AG);
	if (!ctx)
		return 0;
	res = t_resident_settled(ctx, want);
	if (res == want)
		return 0;
	printf("  FAIL %llu bytes (%llu pages) resident %s, want %llu\n",
	       (unsigned long long)res, (unsigned long long)(res / R.psz), when,
	       (unsigned long long)want);
	return 1;
}

/*
 * A bound tier of 4 pages and a region of 16: each round touches the next
 * page (a new first touch), checks it and discards it (MADV_DONTNEED), so
 * at most one page is in use; now and then it reads a discarded page back
 * (a first touch too) and discards it again. Discarded pages that stayed
 * charged would soon leave no room: a first touch would get SIGBUS.
 * Afterwards nothing is resident.
 */
static int test_discard_keeps_room(const struct t_case *c)
{
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K, caps[2] = { 4 * psz, 0 };
	int rounds = t_rounds(200);
	long bad = 0;

	ctx = t_ctx_mode(c->mode, 4 * psz, caps);
	t_region_map(&R, ctx, 16, c->huge, 0, PMV_BIND, SEED + c->mode);
	shadow_make(c->huge);
	t_agit_init(&AG, ctx, c->mode, R.base, R.psz, R.npages, SEED + 9);
	AG.allow[1] = -ENOENT;
	AG.allow[2] = -ENOMEM;	/* tier 0 is full */
	t_agit_run(&AG);
	signal(SIGBUS, on_sigbus);
	for (int r = 0; r < rounds; r++) {
		size_t pg = (size_t)r % 16, p = pg * t_ppp(&R), ppp = t_ppp(&R);

		sigbus_round = r;
		t_step("round %d: touch page %zu", r, pg);
		write_pieces(p + (size_t)r % ppp, 1);
		bad += t_pieces_check(&R, p, ppp, "touched page");
		if (r % 16 == 5)
			t_agit_sync(&AG, 1);
		bad += advise(p, ppp, MADV_DONTNEED, T_ZERO);
		if (r % 8 == 7) {
			/* read back (a first touch of a zero page), discard again */
			bad += t_pieces_check(&R, p, ppp, "discarded page");
			bad += advise(p, ppp, MADV_DONTNEED, T_ZERO);
		}
		if (bad > 20)
			break;
	}
	t_agit_sync(&AG, 2);
	bad += resident_is(0, "after every page was discarded");
	/* every byte, a page at a time (each read is a first touch) */
	for (size_t pg = 0; pg < R.npages; pg++) {
		sigbus_round = rounds + (int)pg;
		bad += t_pieces_check(&R, pg * t_ppp(&R), t_ppp(&R), "final check");
		bad += advise(pg * t_ppp(&R), t_ppp(&R), MADV_DONTNEED, T_ZERO);
	}
	signal(SIGBUS, SIG_DFL);
	bad += resident_is(0, "after the final check");
	printf("  %d rounds of touch + MADV_DONTNEED on a bound tier of 4 pages\n", rounds);
	bad += t_agit_check(&AG, "bound tier", 1);
	shadow_free();
	t_destroy(ctx);
	return (int)bad;
}

/* Judge the stopped agitator, start a new one. */
static int agit_restart(const struct t_case *c, unsigned seed, const char *who)
{
	int bad = t_agit_check(&AG, who, 1);

	t_agit_init(&AG, ctx, c->mode, R.base, R.psz, R.npages, seed);
	AG.allow[1] = -ENOENT;
	t_agit_run(&AG);
	t_agit_sync(&AG, 2);
	return bad;
}

/*
 * Discarded pages stop being charged: after MADV_DONTNEED of half the
 * region, then of all of it (made while pages move), the resident bytes
 * of every tier sum to the pages still there once the movers stopped.
 */
static int test_discard_uncharges(const struct t_case *c)
{
	size_t np = 16, half = np / 2;
	long bad = 0;

	setup_n(c, np, 0, NO_READER);
	t_agit_sync(&AG, 2);
	bad += resident_is(np * R.psz, "after writing every page");
	bad += agit_restart(c, SEED + 11, "uncharge, writes");
	bad += advise(0, half * t_ppp(&R), MADV_DONTNEED, T_ZERO);
	t_agit_sync(&AG, 4);
	bad += resident_is((np - half) * R.psz, "after discarding half the pages");
	bad += agit_restart(c, SEED + 12, "uncharge, half discarded");
	bad += advise(0, R.npieces, MADV_DONTNEED, T_ZERO);
	t_agit_sync(&AG, 4);
	bad += resident_is(0, "after discarding all");
	return (int)finish(c, bad, "uncharge");
}

/*
 * MADV_FREE of every page, then every page written again: the kernel keeps
 * them (a write ends the lazy free), so they stay managed memory. Every
 * page is found and charged once the movers stopped, moves to the other
 * tier (once the wait for a zap that never comes is over: -EBUSY until
 * then; tier 0 may be full with the policy on), and holds its new bytes.
 */
static int test_free_then_write_stays_managed(const struct t_case *c)
{
	size_t np = 16;
	long bad = 0;

	setup_n(c, np, 0, NO_READER);
	t_agit_sync(&AG, 2);
	bad += advise(0, R.npieces, MADV_FREE, T_MAYBE);
	write_pieces(0, R.npieces);
	t_pieces_mark(&R, 0, R.npieces, T_DATA);
	t_agit_sync(&AG, 2);
	bad += resident_is(np * R.psz, "after MADV_FREE and writing again");
	for (size_t i = 0; ctx && i < np; i++) {
		void *a = R.base + i * R.psz;
		int from = -1, to, st = -EBUSY;

		T_EQ(pmv_move_pages(ctx, 1, &a, NULL, &from, 0), 0);
		if (from < 0) {
			printf("  FAIL page %zu after MADV_FREE and a write: %s\n", i,
			       pmv_strerror(from));
			bad++;
			continue;
		}
		to = 1 - from;
		while (st == -EBUSY) {
			if (pmv_move_pages(ctx, 1, &a, &to, &st, 0) < 0)
				st = -EIO;
			if (st == -EBUSY)
				usleep(10000);
		}
		/* policy_on bounds tier 0, which the policy keeps full */
		if (st != to && !(st == -ENOMEM && to == 0 && c->mode == T_POLICY)) {
			printf("  FAIL move of page %zu to tier %d: %s\n", i, to, pmv_strerror(st));
			bad++;
		}
	}
	return (int)finish(c, bad, "free, write");
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	/* discards of whole pages, and (2 MB) of pieces of one */
	for (int v = 0; v < 2; v++)
		for (int h = v; h < 2; h++)
			for (int m = 0; m < T_NMODES; m++) {
				const char *vn = v ? "pieces" : "pages";

				/* evicting: whole 4 KB pages, pieces of 2 MB ones */
				if (!t_mode_on(m, v == h))
					continue;
				T_CASE_V(&s, test_dontneed_reads_zeros, v, vn, m, h);
				T_CASE_V(&s, test_free_reads_old_or_zeros, v, vn, m, h);
			}
	T_CASE_ALL(&s, test_remove_fails_as_on_plain);
	T_CASE_ALL_FAR(&s, test_dontfork_child_lacks_range);
	T_CASE_ALL(&s, test_wipeonfork_child_reads_zeros);
	for (int v = 0; v < (int)(sizeof(keep_advs) / sizeof(keep_advs[0])); v++)
		for (int h = 0; h < 2; h++)
			for (int m = 0; m < T_NMODES; m++)
				if (t_mode_on(m, keep_advs[v] == MADV_PAGEOUT && !h))
					T_CASE_V(&s, test_advice_keeps_data, v, keep_names[v], m, h);
	for (int v = 0; v < 2; v++)
		for (int h = 0; h < 2; h++)
			for (int m = 0; m < T_NMODES; m++)
				if (t_mode_on(m, 0))
					T_CASE_V(&s, test_populate_first_touch, v,
					 v ? "populate_write" : "populate_read", m, h);
	T_CASE_ALL(&s, test_collapse_keeps_data);
	T_CASE_ALL_FAR(&s, test_discard_keeps_room);
	T_CASE_ALL_FAR(&s, test_discard_uncharges);
	T_CASE_ALL(&s, test_free_then_write_stays_managed);
	return t_suite_end(&s);
}
