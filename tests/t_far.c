/* SPDX-License-Identifier: MIT */
/*
 * Far tiers (far.c): pages evicted to an lz4, zstd or file tier with
 * pmv_move_pages or pmv_migrate, and faulted back in by their next access,
 * byte for byte:
 *   cycle            writers on every page while a mover sends them memory ->
 *                    lz4 -> file -> memory; every byte checked after
 *   four_times       a memory tier a quarter of the data: faults evict to make room
 *   demoter_bound    pages bound to the memory tier stay there while the
 *                    demoter makes its margin from the others
 *   far_to_far       lz4 -> file store to store, never mapped
 *   policy_demotes   a nearly full lz4 tier's oldest pages go down to file
 *   environment      PAGEMOVE_TIERS gives a config without tiers its tiers
 *   round_trip       evict every page (compressible, same-filled), read
 *                    them back by touching them (huge pages stay THPs),
 *                    again with pmv_migrate both ways; stats follow
 *   many_threads     threads all faulting one evicted page at once: one load
 *   kernel_access    write(2) from an evicted page, read(2) and an O_DIRECT
 *                    read into one
 *   discard          MADV_DONTNEED and munmap of evicted pages drop their
 *                    handles (stored pages go to 0); the pages read zeros
 *   enospc           a small capacity, and a file tier on a small tmpfs:
 *                    -ENOSPC, the page stays where it was, intact
 *   inject_eio       every store write fails: -EIO, the pages stay intact
 *   corrupt_sigbus   a damaged stored block: write(2) from it gets EFAULT,
 *                    the access SIGBUS (the sub-test must die of it); never
 *                    wrong bytes
 *   incompressible   random pages: -EMSGSIZE with lz4 alone, the file tier
 *                    after lz4 takes them; past a full memory tier, reclaim
 *                    keeps them as they are on lz4: no SIGBUS
 *   same_filled      zero and one-word pages take no storage
 *   fork             a child sees every evicted page's bytes
 *   munmap_destroy   pmv_munmap and pmv_destroy while another thread evicts
 *   user_mode        refused with EOPNOTSUPP, saying how to get full mode
 *   latency          fault-in time seen by the faulting thread, printed
 *                    (p50/p99) for the report; nothing asserts a time
 * Each sub-test runs in a child of its own, policy off (pages move only
 * where the test sends them).
 */
#include <sys/mount.h>
#include <sys/stat.h>

#include "harness.h"
#include "../src/internal.h"

#define SEED	0xfa7

enum { K_LZ4, K_ZSTD, K_FILE, K_NR };
static const char *const kname[K_NR] = { "lz4", "zstd", "file" };
static const int kkind[K_NR] = { PMV_TIER_LZ4, PMV_TIER_ZSTD, PMV_TIER_FILE };

static char dir[64];	/* file tiers, on the disk */

/* A memory tier and the far tiers kinds[0..n), capacities caps (0: none). */
static pmv_ctx *far_ctx(const int *kinds, unsigned n, const size_t *caps, const char *path,
			unsigned flags)
{
	struct pmv_tier_config tc[4] = { { .name = "mem", .node = PMV_NODE_ANY } };
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = n + 1, .tiers = tc, .policy = &pol, .flags = flags };
	pmv_ctx *ctx;

	for (unsigned i = 0; i < n; i++)
		tc[i + 1] = (struct pmv_tier_config){
			.name = kname[kinds[i]], .node = PMV_NODE_ANY, .kind = kkind[kinds[i]],
			.capacity = caps ? caps[i] : 0,
			.path = kinds[i] == K_FILE ? (path ? path : dir) : NULL,
		};
	ctx = pmv_create(&cfg);
	if (!ctx && (errno == EPERM || (errno == EOPNOTSUPP && !(flags & PMV_CTX_USER_MODE_ONLY))))
		t_skip("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	if (!ctx)
		T_FAIL("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	return ctx;
}

static pmv_ctx *far_ctx1(int kind)
{
	return far_ctx(&kind, 1, NULL, NULL, 0);
}

/* A memory tier of cap bytes, then far tier `kind`, the policy in `mode`. */
static pmv_ctx *bounded_ctx(size_t cap, int kind, int mode)
{
	struct pmv_tier_config tc[2] = {
		{ .name = "mem", .node = PMV_NODE_ANY, .capacity = cap },
		{ .name = kname[kind], .node = PMV_NODE_ANY, .kind = kkind[kind],
		  .path = kind == K_FILE ? dir : NULL },
	};
	struct pmv_policy_config pol = { .mode = mode, .interval_ms = 20 };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };
	pmv_ctx *ctx = pmv_create(&cfg);

	if (!ctx)
		t_skip("pmv_create: %s", pmv_errmsg());
	return ctx;
}

/* Text-like bytes that depend on page and offset: compress some 4:1. */
static uint8_t tpat(size_t page, size_t off)
{
	static const char words[] = "page tier store fault the of and swap lz4 zstd ";

	return (uint8_t)words[(off / 7 + page * 13 + (off >> 9)) % (sizeof(words) - 1)] ^
	       (uint8_t)(off % 61 == 0 ? page : 0);
}

/* Page i: every 8th zero (same-filled), the rest text-like. */
static void fill(char *p, size_t psz, size_t i)
{
	if (i % 8 == 7) {
		memset(p, 0, psz);
		return;
	}
	for (size_t o = 0; o < psz; o++)
		p[o] = (char)tpat(i, o);
}

static long check(const char *p, size_t psz, size_t i)
{
	for (size_t o = 0; o < psz; o++)
		if ((uint8_t)p[o] != (i % 8 == 7 ? 0 : tpat(i, o)))
			return (long)o;
	return -1;
}

static char *region(pmv_ctx *ctx, size_t n, size_t psz)
{
	char *p = pmv_mmap(ctx, n * psz, 0, psz == T_SZ_2M ? PMV_HUGE : 0);

	T_ASSERT(p, "pmv_mmap: %s", pmv_errmsg());
	for (size_t i = 0; i < n; i++) {
		fill(p + i * psz, psz, i);
		t_beat();	/* past a full memory tier each page is an eviction */
	}
	return p;
}

/* Move pages [0, n) to tier `to`; returns how many got there, status in st. */
static int move_all(pmv_ctx *ctx, char *p, size_t n, size_t psz, int to, int *st)
{
	void *pages[512];
	int tg[512], ok = 0;

	T_ASSERT(n <= 512, "at most 512");
	for (size_t i = 0; i < n; i++) {
		pages[i] = p + i * psz;
		tg[i] = to;
	}
	T_ASSERT(pmv_move_pages(ctx, n, pages, tg, st, 0) >= 0, "pmv_move_pages");
	/* -EBUSY (a fault handler still held a page past 20 ms) is worth a retry */
	for (int again = 0; again < 5; again++) {
		bool busy = false;

		for (size_t i = 0; i < n; i++) {
			if (st[i] != -EBUSY)
				continue;
			busy = true;
			fprintf(stderr, "  page %zu: -EBUSY, again\n", i);
			T_ASSERT(pmv_move_pages(ctx, 1, &pages[i], &tg[i], &st[i], 0) >= 0, "again");
		}
		if (!busy)
			break;
		usleep(10000);
	}
	for (size_t i = 0; i < n; i++) {
		ok += st[i] == to;
		if (st[i] != to && getenv("T_FAR_VERBOSE"))
			fprintf(stderr, "  page %zu: status %d (%s)\n", i, st[i], pmv_strerror(st[i]));
	}
	return ok;
}

/*
 * pmv_migrate, again for what a page lock held past 20 ms left behind
 * (-EBUSY; a loaded VM can deschedule a fault handler that long).
 */
static long migrate_all(pmv_ctx *ctx, unsigned long from, unsigned long to)
{
	long left = pmv_migrate(ctx, from, to, 0);

	for (int i = 0; left > 0 && i < 5; i++) {
		fprintf(stderr, "  pmv_migrate: %ld left, again\n", left);
		usleep(10000);
		left = pmv_migrate(ctx, from, to, 0);
	}
	return left;
}

static int tier_of(pmv_ctx *ctx, void *p)
{
	int st;

	pmv_move_pages(ctx, 1, &p, NULL, &st, 0);
	return st;
}

static struct pmv_tier_stats tstats(pmv_ctx *ctx, int t)
{
	struct pmv_tier_stats st;

	T_ASSERT(!pmv_tier_stats(ctx, t, &st), "pmv_tier_stats");
	return st;
}

static long check_all(const char *p, size_t n, size_t psz)
{
	long bad = 0;

	for (size_t i = 0; i < n; i++) {
		long o = check(p + i * psz, psz, i);

		if (o >= 0) {
			if (bad < 4)
				fprintf(stderr, "page %zu: wrong byte at %ld\n", i, o);
			bad++;
		}
		t_beat();
	}
	return bad;
}

static size_t psz_of(const struct t_case *c)
{
	return c->huge ? T_SZ_2M : T_SZ_4K;
}

/* ---- round trips --------------------------------------------------------- */

static int test_round_trip(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 8 : 256;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	struct pmv_tier_stats st;
	int bad = 0, s[512];

	t_step("evict");
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evicted: status %d", s[0]);
	st = tstats(ctx, 1);
	T_CHECK(bad, st.stored_pages == n && st.kind == (uint64_t)kkind[c->variant],
		"stored %lu of %zu, kind %lu", (unsigned long)st.stored_pages, n,
		(unsigned long)st.kind);
	T_CHECK(bad, st.same_filled == n / 8, "same-filled %lu", (unsigned long)st.same_filled);
	T_CHECK(bad, c->variant == K_FILE || (st.ratio > 1.3 && st.stored_bytes < n * psz * 3 / 4),
		"ratio %.2f, %lu bytes", st.ratio, (unsigned long)st.stored_bytes);
	T_CHECK(bad, tier_of(ctx, p) == 1, "query: tier %d", tier_of(ctx, p));
	{
		/* an evicted page has no page to trade */
		void *a = p, *b = p + psz;
		int st = 0;

		T_CHECK(bad, pmv_exchange_pages(ctx, 1, &a, &b, &st, 0) == 1 && st == -EINVAL,
			"exchange of evicted pages: status %d", st);
	}
	T_CHECK(bad, tstats(ctx, 0).resident_bytes == 0, "tier 0 still holds pages");
	t_step("fault back");
	bad += (int)check_all(p, n, psz);
	st = tstats(ctx, 1);
	T_CHECK(bad, st.stored_pages == 0 && st.faults_in == n && st.resident_bytes == 0,
		"after faults: stored %lu, faults_in %lu", (unsigned long)st.stored_pages,
		(unsigned long)st.faults_in);
	T_CHECK(bad, tier_of(ctx, p + (n - 1) * psz) == 0, "back on tier %d",
		tier_of(ctx, p + (n - 1) * psz));
	if (c->huge)
		T_CHECK(bad, t_anon_huge_kb(p) >= (long)(n * psz / 1024),
			"AnonHugePages %ld kB: not THPs any more", t_anon_huge_kb(p));
	t_step("pmv_migrate both ways");
	T_CHECK(bad, migrate_all(ctx, 1, 2) == 0, "pmv_migrate 0 -> far");
	T_CHECK(bad, tstats(ctx, 1).stored_pages == n, "stored %lu",
		(unsigned long)tstats(ctx, 1).stored_pages);
	{
		long left = migrate_all(ctx, 2, 1);
		struct pmv_tier_stats f0 = tstats(ctx, 0);

		T_CHECK(bad, left == 0, "pmv_migrate far -> 0: %ld left; fails to tier 0: busy %lu "
			"nomem %lu other %lu", left, (unsigned long)f0.fail[PMV_FAIL_BUSY],
			(unsigned long)f0.fail[PMV_FAIL_NOMEM], (unsigned long)f0.fail[PMV_FAIL_OTHER]);
	}
	T_CHECK(bad, tstats(ctx, 1).stored_pages == 0 && tstats(ctx, 0).resident_bytes == n * psz,
		"after migrate back");
	bad += (int)check_all(p, n, psz);
	/* and writes to faulted-back pages stick */
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evicted again");
	for (size_t i = 0; i < n; i++)
		p[i * psz + 5] = (char)(i + 1);
	for (size_t i = 0; i < n; i++)
		T_CHECK(bad, p[i * psz + 5] == (char)(i + 1), "write to page %zu lost", i);
	pmv_destroy(ctx);
	return bad;
}

struct one {
	char *page;
	size_t psz;
	pthread_barrier_t *bar;
	long bad;
};

static void *fault_one(void *arg)
{
	struct one *o = arg;

	pthread_barrier_wait(o->bar);
	o->bad = check(o->page, o->psz, 3) >= 0;
	return NULL;
}

static int test_many_threads_fault_one_page(const struct t_case *c)
{
	size_t psz = psz_of(c), n = 4;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	pthread_t th[8];
	struct one o[8];
	pthread_barrier_t bar;
	int bad = 0, s[4];

	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	pthread_barrier_init(&bar, NULL, 8);
	for (int i = 0; i < 8; i++) {
		o[i] = (struct one){ .page = p + 3 * psz, .psz = psz, .bar = &bar };
		pthread_create(&th[i], NULL, fault_one, &o[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		bad += (int)o[i].bad;
	}
	T_CHECK(bad, tstats(ctx, 1).faults_in == 1, "faults_in %lu: one load for all",
		(unsigned long)tstats(ctx, 1).faults_in);
	T_CHECK(bad, tstats(ctx, 1).stored_pages == n - 1, "stored");
	pmv_destroy(ctx);
	return bad;
}

static int test_kernel_access(const struct t_case *c)
{
	size_t psz = psz_of(c), n = 4;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz), path[128], *buf;
	int bad = 0, s[4], fd;
	ssize_t r;

	snprintf(path, sizeof(path), "%s/kernel-access", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	T_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	unlink(path);
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	/* write(2) reads page 0 in the kernel */
	r = pwrite(fd, p, psz, 0);
	T_CHECK(bad, r == (ssize_t)psz, "write from an evicted page: %zd (%s)", r, strerror(errno));
	buf = aligned_alloc(4096, psz);
	T_ASSERT(buf, "alloc");
	T_CHECK(bad, pread(fd, buf, psz, 0) == (ssize_t)psz && check(buf, psz, 0) < 0,
		"the file got the wrong bytes");
	/* read(2) writes into evicted page 1: it must come in first, then take them */
	r = pread(fd, p + psz, psz, 0);
	T_CHECK(bad, r == (ssize_t)psz && check(p + psz, psz, 0) < 0, "read into an evicted page");
	T_CHECK(bad, check(p + 2 * psz, psz, 2) < 0, "page 2");
	/* O_DIRECT into evicted page 3 (pinned by the kernel: GUP faults it in) */
	close(fd);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
	if (fd >= 0) {
		unlink(path);
		T_CHECK(bad, pwrite(fd, buf, psz, 0) == (ssize_t)psz, "O_DIRECT write: %s",
			strerror(errno));
		r = pread(fd, p + 3 * psz, psz, 0);
		T_CHECK(bad, r == (ssize_t)psz && check(p + 3 * psz, psz, 0) < 0,
			"O_DIRECT read into an evicted page: %zd (%s)", r, strerror(errno));
		close(fd);
	} else {
		printf("  no O_DIRECT on %s: %s\n", dir, strerror(errno));
	}
	free(buf);
	pmv_destroy(ctx);
	return bad;
}

/* Stored pages of tier 1 reach want (events are read asynchronously). */
static uint64_t stored_settles(pmv_ctx *ctx, uint64_t want)
{
	uint64_t v = 0;

	for (int i = 0; i < 500; i++) {
		v = tstats(ctx, 1).stored_pages;
		if (v == want)
			break;
		usleep(10000);
	}
	return v;
}

static int test_discard_drops_handles(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 8 : 64, q = n / 4;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	int bad = 0, s[64];
	uint64_t v;

	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	/* the first quarter discarded, the last unmapped */
	T_CHECK(bad, t_sys_madvise(p, q * psz, MADV_DONTNEED) == 0, "madvise");
	T_CHECK(bad, t_sys_munmap(p + (n - q) * psz, q * psz) == 0, "munmap");
	v = stored_settles(ctx, n - 2 * q);
	T_CHECK(bad, v == n - 2 * q, "stored %lu, want %zu", (unsigned long)v, n - 2 * q);
	for (size_t i = 0; i < q * psz; i++)
		if (p[i]) {
			T_REPORT("zero", "discarded byte %zu reads %d", i, p[i]);
			bad++;
			break;
		}
	for (size_t i = q; i < n - q; i++)
		T_CHECK(bad, check(p + i * psz, psz, i) < 0, "page %zu", i);
	T_CHECK(bad, move_all(ctx, p + q * psz, n - 2 * q, psz, 1, s) == (int)(n - 2 * q),
		"evict the middle again");
	T_CHECK(bad, pmv_munmap(ctx, p, n * psz) == 0, "pmv_munmap: %s", pmv_errmsg());
	v = tstats(ctx, 1).stored_pages;
	/* lz4, zstd: each size class keeps one empty 64 KB span (store_ram.c) */
	T_CHECK(bad, v == 0 && tstats(ctx, 1).stored_bytes <= (2UL << 20) &&
		tstats(ctx, 1).resident_bytes == 0,
		"after pmv_munmap: stored %lu pages, %lu bytes, resident %lu", (unsigned long)v,
		(unsigned long)tstats(ctx, 1).stored_bytes,
		(unsigned long)tstats(ctx, 1).resident_bytes);
	pmv_destroy(ctx);
	return bad;
}

/* variant 0: a 16-page capacity on lz4; 1: a file tier on a 256 KB tmpfs */
static int test_enospc_page_stays(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 128;
	size_t cap = 0;
	int kind = c->variant ? K_FILE : K_LZ4, bad = 0, s[128], nospc = 0;
	char mnt[128];
	pmv_ctx *ctx;
	char *p;

	if (c->variant) {
		if (geteuid() != 0)
			return printf("  not root: no tmpfs\n"), getenv("CI") ? 1 : T_SUB_SKIP;
		snprintf(mnt, sizeof(mnt), "%s/tmpfs-%s", dir, c->huge ? "2m" : "4k");
		if (mkdir(mnt, 0700) || mount("pmv-far-test", mnt, "tmpfs", 0,
					      c->huge ? "size=3m,mode=0700" : "size=256k,mode=0700"))
			return fprintf(stderr, "mount tmpfs: %s\n", strerror(errno)), 1;
		ctx = far_ctx(&kind, 1, NULL, mnt, 0);
		/* the store's unnamed file keeps the file system alive */
		umount2(mnt, MNT_DETACH);
		rmdir(mnt);
	} else {
		/* half of what the pages take when nothing bounds them */
		ctx = far_ctx(&kind, 1, NULL, NULL, 0);
		p = pmv_mmap(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
		T_ASSERT(p, "pmv_mmap");
		for (size_t i = 0; i < n; i++)
			for (size_t o = 0; o < psz; o++)
				p[i * psz + o] = (char)tpat(i, o);
		move_all(ctx, p, n, psz, 1, s);
		cap = tstats(ctx, 1).stored_bytes / 2;
		pmv_destroy(ctx);
		ctx = far_ctx(&kind, 1, &cap, NULL, 0);
	}
	p = pmv_mmap(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
	T_ASSERT(p, "pmv_mmap");
	/* no same-filled pages here: they would take no room */
	for (size_t i = 0; i < n; i++)
		for (size_t o = 0; o < psz; o++)
			p[i * psz + o] = (char)tpat(i, o);
	move_all(ctx, p, n, psz, 1, s);
	for (size_t i = 0; i < n; i++) {
		nospc += s[i] == -ENOSPC;
		T_CHECK(bad, s[i] == 1 || s[i] == -ENOSPC, "page %zu: status %d", i, s[i]);
		T_CHECK(bad, s[i] == 1 || tier_of(ctx, p + i * psz) == 0, "page %zu not home", i);
	}
	T_CHECK(bad, nospc > 0 && nospc < (int)n, "%d of %zu ENOSPC", nospc, n);
	for (size_t i = 0; i < n; i++)
		for (size_t o = 0; o < psz; o++)
			if ((uint8_t)p[i * psz + o] != tpat(i, o)) {
				T_REPORT("intact", "page %zu byte %zu", i, o);
				bad++;
				break;
			}
	if (!c->variant)
		T_CHECK(bad, tstats(ctx, 1).stored_bytes <= cap, "over capacity");
	pmv_destroy(ctx);
	return bad;
}

static int test_inject_eio_page_stays(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 32;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	int bad = 0, s[32];

	T_ASSERT(!_pmv_far_inject(ctx, 1, "put:eio:1"), "inject");
	move_all(ctx, p, n, psz, 1, s);
	/* a failed write fails its batch, same-filled pages with it */
	for (size_t i = 0; i < n; i++)
		T_CHECK(bad, s[i] == -EIO, "page %zu: status %d", i, s[i]);
	T_CHECK(bad, tstats(ctx, 1).stored_pages == 0, "stored");
	T_CHECK(bad, tstats(ctx, 1).io_errors > 0, "io_errors not counted");
	bad += (int)check_all(p, n, psz);
	T_ASSERT(!_pmv_far_inject(ctx, 1, ""), "inject off");
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict after the fault");
	bad += (int)check_all(p, n, psz);
	pmv_destroy(ctx);
	return bad;
}

/* Must die of SIGBUS at the access; never see other bytes. */
static int test_corrupt_block_sigbus(const struct t_case *c)
{
	size_t psz = psz_of(c);
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, 2, psz);
	struct _pmv_page *pg;
	int s[2], fds[2];
	ssize_t r;

	T_ASSERT(move_all(ctx, p, 2, psz, 1, s) == 2, "evict");
	pg = _pmv_addr_to_page(ctx, (uintptr_t)p, NULL);
	T_ASSERT(pg && (_pmv_page_flags(pg) & PG_far), "descriptor");
	T_ASSERT(!_pmv_store_corrupt(ctx->tiers[1].store, pg->handle), "corrupt");
	/* the other page is fine */
	T_ASSERT(check(p + psz, psz, 1) < 0, "page 1");
	/* a system call meets the poisoned page: EFAULT, not the bytes */
	T_ASSERT(!pipe(fds), "pipe");
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	r = write(fds[1], p, 64);
	T_ASSERT(r < 0 && errno == EFAULT, "write(2) from a corrupt page: %zd (%s)", r,
		 strerror(errno));
	T_ASSERT(tstats(ctx, 1).io_errors >= 1, "not counted");
	fprintf(stderr, "  expect SIGBUS now\n");
	r = *(volatile char *)p;
	fprintf(stderr, "FAIL: read %zd from a corrupt page\n", r);
	return 1;
}

static int test_incompressible(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 2 : 16;
	int kinds[2] = { K_LZ4, K_FILE }, bad = 0, s[16];
	pmv_ctx *ctx = far_ctx(kinds, c->variant ? 2 : 1, NULL, NULL, 0);
	char *p = pmv_mmap(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);

	T_ASSERT(p, "pmv_mmap");
	for (size_t i = 0; i < n; i++)
		t_fill(p + i * psz, psz, i, SEED);
	move_all(ctx, p, n, psz, 1, s);
	for (size_t i = 0; i < n; i++)
		T_CHECK(bad, s[i] == (c->variant ? 2 : -EMSGSIZE), "page %zu: status %d", i, s[i]);
	T_CHECK(bad, tstats(ctx, 1).incompressible >= n, "incompressible %lu",
		(unsigned long)tstats(ctx, 1).incompressible);
	T_CHECK(bad, tstats(ctx, 1).stored_pages == 0, "stored on lz4");
	if (c->variant)
		T_CHECK(bad, tstats(ctx, 2).stored_pages == n, "stored on file");
	for (size_t i = 0; i < n; i++)
		T_CHECK(bad, t_check(p + i * psz, psz, i, SEED) < 0, "page %zu", i);
	pmv_destroy(ctx);
	return bad;
}

static int test_same_filled_take_no_storage(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 64;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = pmv_mmap(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
	int bad = 0, s[64];

	T_ASSERT(p, "pmv_mmap");
	for (size_t i = 0; i < n; i++) {
		uint64_t w = i % 2 ? 0 : 0x0123456789abcdefULL * (i + 1);

		for (size_t o = 0; o < psz; o += 8)
			memcpy(p + i * psz + o, &w, 8);
	}
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	T_CHECK(bad, tstats(ctx, 1).same_filled == n && tstats(ctx, 1).stored_bytes == 0,
		"same %lu, bytes %lu", (unsigned long)tstats(ctx, 1).same_filled,
		(unsigned long)tstats(ctx, 1).stored_bytes);
	for (size_t i = 0; i < n; i++) {
		uint64_t w = i % 2 ? 0 : 0x0123456789abcdefULL * (i + 1), v;

		memcpy(&v, p + i * psz + psz - 8, 8);
		T_CHECK(bad, v == w && !memcmp(p + i * psz, p + i * psz + 8, psz - 8),
			"page %zu", i);
	}
	pmv_destroy(ctx);
	return bad;
}

static int test_fork_sees_evicted_pages(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 64;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	int bad = 0, s[64], st = 0;
	pid_t pid;

	double t0, t1, t2;

	/* the cost of fork with evicted pages, against with none (printed) */
	t0 = t_now();
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (!pid)
		_exit(0);
	t1 = t_now();
	waitpid(pid, &st, 0);
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	t2 = t_now();
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (!pid)
		_exit(check_all(p, n, psz) ? 1 : 0);
	printf("  fork: %.0f us with no page evicted, %.0f us with %zu evicted (%s, %s)\n",
	       (t1 - t0) * 1e6, (t_now() - t2) * 1e6, n, kname[c->variant],
	       c->huge ? "2m" : "4k");
	T_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	T_CHECK(bad, WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child saw wrong bytes");
	T_CHECK(bad, tstats(ctx, 1).stored_pages == 0, "fork left pages evicted");
	bad += (int)check_all(p, n, psz);
	pmv_destroy(ctx);
	return bad;
}

struct evictor {
	pmv_ctx *ctx;
	char *p;
	size_t n, psz;
	atomic_int stop;
	atomic_long bad, rounds;
};

static void *evict_loop(void *arg)
{
	struct evictor *e = arg;

	while (!atomic_load(&e->stop)) {
		void *pages[64];
		int tg[64], st[64];

		for (size_t i = 0; i < e->n; i++) {
			pages[i] = e->p + i * e->psz;
			tg[i] = 1;
		}
		pmv_move_pages(e->ctx, e->n, pages, tg, st, 0);
		for (size_t i = 0; i < e->n; i++)
			if (st[i] != 1 && st[i] != -EFAULT && st[i] != -EBUSY && st[i] != -ENOENT) {
				fprintf(stderr, "evictor: status %d\n", st[i]);
				atomic_fetch_add(&e->bad, 1);
			}
		atomic_fetch_add(&e->rounds, 1);
		/*
		 * A pause lets the reader use a page it faulted in: without one,
		 * the evictor (already on a CPU) took each page back before the
		 * woken reader ran, ~1900 fault-ins per 2 MB page, 60 s a round.
		 */
		usleep(1000);
	}
	return NULL;
}

/* variant 0: pmv_munmap while evicting; 1: pmv_destroy (the thread stopped first) */
static int test_munmap_destroy_while_evicting(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 64;
	pmv_ctx *ctx = far_ctx1(K_LZ4);
	struct evictor e = { .ctx = ctx, .n = n, .psz = psz };
	int bad = 0;
	pthread_t th;

	for (int round = 0; round < 5; round++) {
		e.p = region(ctx, n, psz);
		atomic_store(&e.stop, 0);
		atomic_store(&e.rounds, 0);
		pthread_create(&th, NULL, evict_loop, &e);
		while (atomic_load(&e.rounds) < 2)
			usleep(100);
		t_step("check under eviction, round %d", round);
		bad += (int)check_all(e.p, n, psz);
		t_step("%s under eviction, round %d", c->variant ? "stop" : "munmap", round);
		if (!c->variant)
			T_CHECK(bad, pmv_munmap(ctx, e.p, n * psz) == 0, "pmv_munmap");
		atomic_store(&e.stop, 1);
		pthread_join(th, NULL);
		t_beat();
	}
	T_CHECK(bad, c->variant || tstats(ctx, 1).stored_pages == 0, "handles left: %lu",
		(unsigned long)tstats(ctx, 1).stored_pages);
	bad += (int)atomic_load(&e.bad);
	pmv_destroy(ctx);
	return bad;
}

static int test_user_mode_refused(const struct t_case *c)
{
	struct pmv_tier_config tc[2] = {
		{ .node = PMV_NODE_ANY },
		{ .node = PMV_NODE_ANY, .kind = PMV_TIER_LZ4 },
	};
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .flags = PMV_CTX_USER_MODE_ONLY };
	pmv_ctx *ctx;
	int bad = 0;

	(void)c;
	errno = 0;
	ctx = pmv_create(&cfg);
	T_CHECK(bad, !ctx && errno == EOPNOTSUPP && strstr(pmv_errmsg(), "/dev/userfaultfd"),
		"errno %d (%s)", errno, pmv_errmsg());
	t_destroy(ctx);
	/* and in full mode, no region is first placed on a far tier */
	ctx = far_ctx1(K_LZ4);
	errno = 0;
	T_CHECK(bad, !pmv_mmap(ctx, 4096, 1, 0) && errno == EINVAL, "pmv_mmap on lz4: errno %d",
		errno);
	pmv_destroy(ctx);
	return bad;
}

/* ---- the program's own calls on evicted pages ---------------------------- */

/* MADV_DONTNEED of one 4 KB piece of each evicted 2 MB page: zero there only */
static int test_discard_part_of_evicted_huge_page(const struct t_case *c)
{
	size_t psz = T_SZ_2M, n = 3;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	int bad = 0, s[3];

	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	for (size_t i = 0; i < n; i++)
		T_CHECK(bad, t_sys_madvise(p + i * psz + 4096 * (i + 1), 4096, MADV_DONTNEED) == 0,
			"madvise");
	for (size_t i = 0; i < n; i++) {
		const char *pg = p + i * psz;
		size_t z = 4096 * (i + 1);

		for (size_t o = 0; o < psz; o++) {
			uint8_t want = o >= z && o < z + 4096 ? 0 : i % 8 == 7 ? 0 : tpat(i, o);

			if ((uint8_t)pg[o] != want) {
				T_REPORT("bytes", "page %zu byte %zu: %d, want %d", i, o, pg[o], want);
				bad++;
				break;
			}
		}
	}
	pmv_destroy(ctx);
	return bad;
}

/* mremap of evicted pages: their bytes are at the new address */
static int test_mremap_evicted_pages(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 32;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz), *to, *q;
	int bad = 0, s[32];

	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	to = t_sys_mmap(NULL, (n + 1) * psz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_ASSERT(to != MAP_FAILED, "mmap");
	to = (char *)(((uintptr_t)to + psz - 1) & ~(psz - 1));
	q = t_sys_mremap(p, n * psz, n * psz, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	T_ASSERT(q == to, "mremap: %s", strerror(errno));
	/* the region table follows (the janitor), then the faults find the pages */
	bad += (int)check_all(q, n, psz);
	T_CHECK(bad, stored_settles(ctx, 0) == 0, "handles left after the faults");
	T_CHECK(bad, move_all(ctx, q, n, psz, 1, s) == (int)n, "evict at the new address");
	bad += (int)check_all(q, n, psz);
	pmv_destroy(ctx);
	return bad;
}

/*
 * mremap of evicted 4 KB pages while a thread faults them in (UFFDIO_COPY
 * from a buffer): a copy that meets the moved VMA before its event is read
 * gets ENOENT, and the page must stay stored, not be counted in with its
 * only copy dropped. The reader goes through the kernel (write(2) to a
 * pipe), so that an access at the old address is EFAULT, not SIGSEGV;
 * then every byte is checked at the new address.
 */
struct far_racer {
	char *_Atomic base;
	size_t n;
	int pfd[2];
	atomic_int stop;
	atomic_long reads;
};

static void *far_race_reader(void *arg)
{
	struct far_racer *r = arg;
	char sink[64];

	for (size_t k = 0; !atomic_load(&r->stop); k++) {
		char *b = atomic_load(&r->base);

		if (write(r->pfd[1], b + (k % r->n) * T_SZ_4K + 128, 64) == 64 &&
		    read(r->pfd[0], sink, 64) == 64)
			atomic_fetch_add(&r->reads, 1);
	}
	return NULL;
}

static int test_mremap_while_faulting_in(const struct t_case *c)
{
	size_t psz = T_SZ_4K, n = 512;
	pmv_ctx *ctx = far_ctx1(c->variant);
	int bad = 0, *s = calloc(n, sizeof(*s));
	struct far_racer r = { .n = n };
	pthread_t th;

	T_ASSERT(s && !pipe(r.pfd), "setup");
	for (int round = 0; round < 8; round++) {
		char *p = region(ctx, n, psz), *to, *q;

		t_step("round %d: evict", round);
		T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
		to = t_sys_mmap(NULL, n * psz, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		T_ASSERT(to != MAP_FAILED, "mmap");
		atomic_store(&r.base, p);
		atomic_store(&r.stop, 0);
		atomic_store(&r.reads, 0);
		pthread_create(&th, NULL, far_race_reader, &r);
		while (atomic_load(&r.reads) < 16 + 8 * round)
			sched_yield();
		t_step("round %d: mremap under fault-ins", round);
		q = t_sys_mremap(p, n * psz, n * psz, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		T_ASSERT(q == to, "mremap: %s", strerror(errno));
		atomic_store(&r.base, q);
		usleep(2000);
		atomic_store(&r.stop, 1);
		pthread_join(th, NULL);
		t_step("round %d: check at the new address", round);
		bad += (int)check_all(q, n, psz);
		T_EQ(pmv_munmap(ctx, q, n * psz), 0);
		t_beat();
	}
	close(r.pfd[0]);
	close(r.pfd[1]);
	free(s);
	pmv_destroy(ctx);
	return bad;
}

/* mprotect(PROT_READ) of evicted pages: a read brings them in (UFFDIO_COPY) */
static int test_read_only_evicted_pages(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 32;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	int bad = 0, s[32];

	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
	T_CHECK(bad, t_sys_mprotect(p, n * psz, PROT_READ) == 0, "mprotect");
	bad += (int)check_all(p, n, psz);
	T_CHECK(bad, t_sys_mprotect(p, n * psz, PROT_READ | PROT_WRITE) == 0, "mprotect");
	p[1] = 1;
	T_CHECK(bad, p[1] == 1, "write after");
	pmv_destroy(ctx);
	return bad;
}

/* ---- integrity under writers: memory -> lz4 -> file -> memory ---------- */

#define NWRITERS	3

struct cyc {
	char *p;
	size_t n, psz;
	atomic_int stop;
	uint64_t *last[NWRITERS];	/* writer w's last value in page i */
	atomic_long moves, bad;
};

static struct cyc CY;
static pmv_ctx *ctx_of_cyc;

static void *cyc_writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	uint64_t x = w + 1;

	while (!atomic_load(&CY.stop)) {
		size_t i;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = x % CY.n;
		/* its own word of a cache line; the rest of the page is the pattern */
		__atomic_store_n((uint64_t *)(CY.p + i * CY.psz + w * 64), ++CY.last[w][i],
				 __ATOMIC_RELAXED);
	}
	return NULL;
}

static void *cyc_mover(void *arg)
{
	static const int order[3] = { 1, 2, 0 };
	int *st = calloc(CY.n, sizeof(int));
	void **pages = calloc(CY.n, sizeof(void *));
	int *tg = calloc(CY.n, sizeof(int));

	(void)arg;
	for (size_t i = 0; i < CY.n; i++)
		pages[i] = CY.p + i * CY.psz;
	for (unsigned k = 0; !atomic_load(&CY.stop); k++) {
		int to = order[k % 3];

		for (size_t i = 0; i < CY.n; i++)
			tg[i] = to;
		if (pmv_move_pages(ctx_of_cyc, CY.n, pages, tg, st, 0) < 0)
			atomic_fetch_add(&CY.bad, 1);
		for (size_t i = 0; i < CY.n; i++) {
			if (st[i] == to) {
				atomic_fetch_add(&CY.moves, 1);
			} else if (st[i] != -EBUSY) {
				fprintf(stderr, "mover: page %zu to %d: status %d\n", i, to, st[i]);
				atomic_fetch_add(&CY.bad, 1);
			}
		}
		t_beat();
	}
	free(st);
	free(pages);
	free(tg);
	return NULL;
}

static int test_cycle_under_writers(const struct t_case *c)
{
	int kinds[2] = { K_LZ4, K_FILE }, bad = 0;
	pmv_ctx *ctx = far_ctx(kinds, 2, NULL, NULL, 0);
	pthread_t w[NWRITERS], m;
	double end;

	ctx_of_cyc = ctx;
	CY.psz = psz_of(c);
	CY.n = c->huge ? 6 : 128;
	CY.p = pmv_mmap(ctx, CY.n * CY.psz, 0, c->huge ? PMV_HUGE : 0);
	T_ASSERT(CY.p, "pmv_mmap");
	for (size_t i = 0; i < CY.n; i++)
		for (size_t o = 0; o < CY.psz; o++)
			CY.p[i * CY.psz + o] = (char)tpat(i, o);
	for (unsigned k = 0; k < NWRITERS; k++) {
		CY.last[k] = calloc(CY.n, sizeof(uint64_t));
		for (size_t i = 0; i < CY.n; i++)
			memcpy(&CY.last[k][i], CY.p + i * CY.psz + k * 64, 8);
		pthread_create(&w[k], NULL, cyc_writer, (void *)(uintptr_t)k);
	}
	pthread_create(&m, NULL, cyc_mover, NULL);
	end = t_now() + t_duration(2.0);
	while (t_now() < end) {
		usleep(50000);
		t_beat();
	}
	atomic_store(&CY.stop, 1);
	for (unsigned k = 0; k < NWRITERS; k++)
		pthread_join(w[k], NULL);
	pthread_join(m, NULL);
	printf("  %ld page moves through lz4 and file under %d writers\n",
	       atomic_load(&CY.moves), NWRITERS);
	for (size_t i = 0; i < CY.n; i++) {
		const uint8_t *b = (const uint8_t *)CY.p + i * CY.psz;
		long wrong = 0;

		for (size_t o = 0; o < CY.psz; o++) {
			size_t wr = o / 64;
			uint8_t want = wr < NWRITERS && o % 64 < 8 ?
				       (uint8_t)(CY.last[wr][i] >> (8 * (o % 64))) : tpat(i, o);

			if (b[o] != want && wrong++ < 2)
				fprintf(stderr, "page %zu byte %zu: 0x%02x, want 0x%02x\n", i, o,
					b[o], want);
		}
		bad += wrong > 0;
	}
	T_CHECK(bad, atomic_load(&CY.moves) > 0, "nothing moved");
	bad += (int)atomic_load(&CY.bad);
	pmv_destroy(ctx);
	return bad;
}

/* A memory tier of a quarter of the data: faults make room by evicting. */
static int test_four_times_the_memory_tier(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 16 : 1024, cap = n / 4 * psz;
	pmv_ctx *ctx = bounded_ctx(cap, K_LZ4, c->variant ? PMV_POLICY_AUTO : PMV_POLICY_OFF);
	struct pmv_tier_stats s0, s1;
	int bad = 0;
	char *p;

	p = region(ctx, n, psz);	/* every first touch past the first quarter evicts */
	for (int round = 0; round < 3; round++) {
		bad += (int)check_all(p, n, psz);
		/* and a write to each page, read back next round */
		for (size_t i = 0; i < n; i++)
			if (i % 8 != 7)
				p[i * psz + 11] = (char)tpat(i, 11);
	}
	s0 = tstats(ctx, 0);
	s1 = tstats(ctx, 1);
	printf("  mem %lu MB of %zu, lz4 %lu pages in %lu KB (ratio %.2f), %lu faults in\n",
	       (unsigned long)(s0.resident_bytes >> 20), cap >> 20,
	       (unsigned long)s1.stored_pages, (unsigned long)(s1.stored_bytes >> 10), s1.ratio,
	       (unsigned long)s1.faults_in);
	T_CHECK(bad, s0.resident_bytes + s0.pool_bytes <= cap, "memory tier over its capacity");
	T_CHECK(bad, s1.stored_pages >= n / 2 && s1.faults_in > 0, "nothing evicted");
	if (c->variant)
		T_CHECK(bad, s1.demote_in > 0 || s1.migrate_in > 0, "no demotion");
	else
		T_CHECK(bad, atomic_load(&ctx->kswapd_evicted) == 0,
			"the demoter evicted with the policy off");
	pmv_destroy(ctx);
	return bad;
}

/* Free room of memory tier 0 (pool pages are room: a fault-in takes one). */
static uint64_t mem_room(pmv_ctx *ctx)
{
	struct pmv_tier_stats s = tstats(ctx, 0);
	uint64_t used = s.resident_bytes;

	return used < s.capacity ? s.capacity - used : 0;
}

/*
 * The background demoter: after first touches fill the memory tier, it
 * evicts until the high watermark is free, without a fault asking. The
 * wait has no deadline of its own (the watchdog catches a demoter that
 * never gets there); the margin then stays until something takes room.
 */
static int test_demoter_keeps_a_margin(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 16 : 1024, cap = n / 4 * psz;
	pmv_ctx *ctx = bounded_ctx(cap, K_LZ4, PMV_POLICY_AUTO);
	struct pmv_tier_stats s0;
	int bad = 0;
	char *p;

	p = region(ctx, n, psz);
	s0 = tstats(ctx, 0);
	while (mem_room(ctx) < s0.wmark_low)
		usleep(1000);
	s0 = tstats(ctx, 0);
	printf("  room %lu KB (low %lu, high %lu), demoter evicted %lu, direct %lu\n",
	       (unsigned long)(mem_room(ctx) >> 10), (unsigned long)(s0.wmark_low >> 10),
	       (unsigned long)(s0.wmark_high >> 10),
	       (unsigned long)atomic_load(&ctx->kswapd_evicted),
	       (unsigned long)atomic_load(&ctx->direct_evicted));
	T_CHECK(bad, atomic_load(&ctx->kswapd_evicted) > 0, "the demoter evicted nothing");
	/* a margin, not the working set: pool pages are room, not pages to make room for */
	T_CHECK(bad, s0.resident_bytes >= cap / 2, "the demoter left %lu KB of %zu KB resident",
		(unsigned long)(s0.resident_bytes >> 10), cap >> 10);
	T_CHECK(bad, s0.resident_bytes + s0.pool_bytes <= cap, "memory tier over its capacity");
	bad += (int)check_all(p, n, psz);
	pmv_destroy(ctx);
	return bad;
}

/*
 * Pages bound to the memory tier (pmv_mbind PMV_MPOL_BIND), touched first
 * so that they are the tails of its lists, stay there: the demoter does
 * the policy's work, which never moves a bound page (and the faults'
 * direct reclaim takes unbound pages first). The pages fill the tier to
 * its capacity, so the margin is the demoter's to make, from the unbound
 * ones; every byte exact.
 */
static int test_demoter_leaves_bound_pages(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 256, cap = n * psz, nb = n / 4, far = 0;
	pmv_ctx *ctx = bounded_ctx(cap, K_LZ4, PMV_POLICY_AUTO);
	struct pmv_tier_stats s0;
	int bad = 0;
	char *p = pmv_mmap(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);

	T_ASSERT(p, "pmv_mmap: %s", pmv_errmsg());
	T_EQ(pmv_mbind(ctx, p, nb * psz, 0, PMV_MPOL_BIND), 0);
	for (size_t i = 0; i < n; i++) {
		fill(p + i * psz, psz, i);
		t_beat();
	}
	s0 = tstats(ctx, 0);
	while (mem_room(ctx) < s0.wmark_low)
		usleep(1000);
	for (size_t i = 0; i < nb; i++)
		far += tier_of(ctx, p + i * psz) != 0;
	printf("  %zu of %zu bound pages off the memory tier; demoter evicted %lu, direct %lu\n",
	       far, nb, (unsigned long)atomic_load(&ctx->kswapd_evicted),
	       (unsigned long)atomic_load(&ctx->direct_evicted));
	T_CHECK(bad, far == 0, "%zu bound pages evicted", far);
	T_CHECK(bad, atomic_load(&ctx->kswapd_evicted) > 0, "the demoter evicted nothing");
	bad += (int)check_all(p, n, psz);
	pmv_destroy(ctx);
	return bad;
}

/*
 * Fault-ins at random (fixed seed) over a memory tier of a quarter of the
 * data, with the demoter making room beside them and a writer changing a
 * word of the pages it reads: every read is byte-exact, and so is all of
 * it after.
 */
static int test_fault_ins_with_the_demoter(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 16 : 2048, cap = n / 4 * psz;
	size_t reads = c->huge ? 64 : 8 * n;
	pmv_ctx *ctx = bounded_ctx(cap, K_LZ4, PMV_POLICY_AUTO);
	unsigned seed = SEED;
	uint64_t *gen = calloc(n, sizeof(*gen));
	long bad = 0;
	char *p;

	T_ASSERT(gen, "calloc");
	p = region(ctx, n, psz);
	for (size_t k = 0; k < reads; k++) {
		size_t i = (size_t)rand_r(&seed) % n;
		char *pg = p + i * psz;
		uint64_t g;

		memcpy(&g, pg + psz - 8, 8);
		/* the last word is the page's write count, once it was written */
		if (gen[i] ? g != gen[i] : check(pg, psz, i) >= 0)
			bad++;
		if (gen[i] && check(pg, psz - 8, i) >= 0)
			bad++;
		if (k % 4 == 0 && i % 8 != 7) {
			gen[i]++;
			memcpy(pg + psz - 8, &gen[i], 8);
		}
		if (k % 256 == 0)
			t_beat();
	}
	T_CHECK(bad, bad == 0, "%ld wrong reads", bad);
	for (size_t i = 0; i < n; i++) {
		uint64_t g;

		memcpy(&g, p + i * psz + psz - 8, 8);
		if (check(p + i * psz, psz - 8, i) >= 0 || (gen[i] && g != gen[i]))
			bad++;
	}
	printf("  %lu faults in, demoter evicted %lu, direct %lu\n",
	       (unsigned long)tstats(ctx, 1).faults_in,
	       (unsigned long)atomic_load(&ctx->kswapd_evicted),
	       (unsigned long)atomic_load(&ctx->direct_evicted));
	T_CHECK(bad, tstats(ctx, 1).faults_in > 0, "no page came back from the far tier");
	T_CHECK(bad, tstats(ctx, 0).resident_bytes + tstats(ctx, 0).pool_bytes <= cap,
		"memory tier over its capacity");
	free(gen);
	pmv_destroy(ctx);
	return (int)bad;
}

/*
 * Random data four times the memory tier: nothing compresses, yet first
 * touch and every access past the full memory tier must not get SIGBUS
 * (it kills the child): reclaim keeps such pages as they are on the last
 * far tier, as zram does, and counts them incompressible. An explicit move
 * still says -EMSGSIZE (test_incompressible).
 */
static int test_incompressible_data_past_a_full_memory_tier(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 12 : 768, cap = n / 4 * psz;
	pmv_ctx *ctx = bounded_ctx(cap, K_LZ4, PMV_POLICY_OFF);
	struct pmv_tier_stats s0, s1;
	char *p = pmv_mmap(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
	int bad = 0;

	T_ASSERT(p, "pmv_mmap: %s", pmv_errmsg());
	t_step("first touch");
	for (size_t i = 0; i < n; i++) {
		t_fill(p + i * psz, psz, i, SEED);
		t_beat();
	}
	for (int round = 0; round < 2; round++) {
		t_step("check round %d", round);
		for (size_t i = 0; i < n; i++) {
			if (t_check(p + i * psz, psz, i, SEED) >= 0) {
				T_REPORT("bytes", "round %d page %zu", round, i);
				bad++;
			}
			t_beat();
		}
	}
	s0 = tstats(ctx, 0);
	s1 = tstats(ctx, 1);
	printf("  mem %lu KB of %zu, lz4 %lu pages in %lu KB raw, %lu incompressible\n",
	       (unsigned long)(s0.resident_bytes >> 10), cap >> 10,
	       (unsigned long)s1.stored_pages, (unsigned long)(s1.stored_bytes >> 10),
	       (unsigned long)s1.incompressible);
	T_CHECK(bad, s0.resident_bytes + s0.pool_bytes <= cap, "memory tier over its capacity");
	T_CHECK(bad, s1.stored_pages >= n / 2, "only %lu pages stored",
		(unsigned long)s1.stored_pages);
	T_CHECK(bad, s1.incompressible >= s1.stored_pages, "incompressible %lu",
		(unsigned long)s1.incompressible);
	/* kept as they are: no smaller than the pages */
	T_CHECK(bad, s1.stored_bytes >= s1.stored_page_bytes, "stored %lu of %lu bytes",
		(unsigned long)s1.stored_bytes, (unsigned long)s1.stored_page_bytes);
	pmv_destroy(ctx);
	return bad;
}

/*
 * Two threads fault past a full memory tier at once, one in address order
 * (a scan) and one at random: room a reclaim makes may go to the other's
 * access first, and the policy holds pages it evicts. No access may get
 * SIGBUS while a far tier has room (a SIGBUS kills the child). Found by
 * bench far's scan pattern, which died of SIGBUS in 2 runs of 3.
 */
struct racer {
	const char *p;
	size_t n, psz;
	int random;
	atomic_long bad;
};

static void *racer(void *arg)
{
	struct racer *r = arg;
	unsigned seed = 17;

	for (size_t k = 0; k < 4 * r->n; k++) {
		size_t i = r->random ? rand_r(&seed) % r->n : k % r->n;
		uint8_t b = *(volatile const uint8_t *)(r->p + i * r->psz + 61);

		if (b != (i % 8 == 7 ? 0 : tpat(i, 61)))
			atomic_fetch_add(&r->bad, 1);
		if (k % 256 == 0)
			t_beat();
	}
	return NULL;
}

static int test_two_threads_fault_past_a_full_memory_tier(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 16 : 2048, cap = n / 4 * psz;
	pmv_ctx *ctx = bounded_ctx(cap, c->variant ? K_FILE : K_LZ4, PMV_POLICY_AUTO);
	struct racer r[2];
	pthread_t th[2];
	int bad = 0;
	char *p;

	p = region(ctx, n, psz);
	for (int k = 0; k < 2; k++) {
		r[k] = (struct racer){ .p = p, .n = n, .psz = psz, .random = k };
		T_EQ(pthread_create(&th[k], NULL, racer, &r[k]), 0);
	}
	for (int k = 0; k < 2; k++) {
		pthread_join(th[k], NULL);
		T_CHECK(bad, atomic_load(&r[k].bad) == 0, "%ld wrong reads by the %s thread",
			atomic_load(&r[k].bad), k ? "random" : "scanning");
	}
	bad += (int)check_all(p, n, psz);
	T_CHECK(bad, tstats(ctx, 1).faults_in > 0, "no page came back from the far tier");
	pmv_destroy(ctx);
	return bad;
}

/* fork with the memory tier full: evicted pages come back over its capacity */
static int test_fork_with_full_memory_tier(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 8 : 256, cap = n / 4 * psz;
	pmv_ctx *ctx = bounded_ctx(cap, K_LZ4, PMV_POLICY_OFF);
	int bad = 0, st = 0;
	char *p;
	pid_t pid;

	p = region(ctx, n, psz);
	T_CHECK(bad, tstats(ctx, 1).stored_pages >= n / 2, "nothing evicted");
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (!pid)
		_exit(check_all(p, n, psz) ? 1 : 0);
	T_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	T_CHECK(bad, WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child saw wrong bytes");
	T_CHECK(bad, tstats(ctx, 1).stored_pages == 0, "fork left pages evicted");
	bad += (int)check_all(p, n, psz);
	/* over capacity now: the next evictions (a move, or reclaim) bring it back */
	printf("  after fork: memory tier %lu KB of %zu KB\n",
	       (unsigned long)(tstats(ctx, 0).resident_bytes >> 10), cap >> 10);
	pmv_destroy(ctx);
	return bad;
}

/* lz4 -> file with pmv_move_pages: store to store, the address stays empty */
static int test_far_to_far(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 4 : 64;
	int kinds[2] = { K_LZ4, K_FILE }, bad = 0, s[64];
	pmv_ctx *ctx = far_ctx(kinds, 2, NULL, NULL, 0);
	char *p = region(ctx, n, psz);

	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "to lz4");
	T_CHECK(bad, move_all(ctx, p, n, psz, 2, s) == (int)n, "lz4 to file");
	T_CHECK(bad, tstats(ctx, 1).stored_pages == 0 && tstats(ctx, 2).stored_pages == n &&
		tstats(ctx, 1).faults_in == 0 && tstats(ctx, 0).resident_bytes == 0,
		"stored %lu and %lu", (unsigned long)tstats(ctx, 1).stored_pages,
		(unsigned long)tstats(ctx, 2).stored_pages);
	T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "file to lz4");
	bad += (int)check_all(p, n, psz);
	T_CHECK(bad, tstats(ctx, 1).faults_in == n, "faults from lz4");
	pmv_destroy(ctx);
	return bad;
}

/* the policy demotes a nearly full lz4 tier's oldest pages to the file tier */
static int test_policy_demotes_down_far_tiers(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 16 : 512, cap = c->huge ? 2 << 20 : 256 << 10;
	struct pmv_tier_config tc[3] = {
		{ .name = "mem", .node = PMV_NODE_ANY },
		{ .name = "lz4", .node = PMV_NODE_ANY, .kind = PMV_TIER_LZ4, .capacity = cap },
		{ .name = "file", .node = PMV_NODE_ANY, .kind = PMV_TIER_FILE, .path = dir },
	};
	struct pmv_policy_config pol = { .mode = PMV_POLICY_AUTO, .interval_ms = 20,
					 .wmark_low_permille = 200, .wmark_high_permille = 300 };
	struct pmv_config cfg = { .ntiers = 3, .tiers = tc, .policy = &pol };
	pmv_ctx *ctx = pmv_create(&cfg);
	int bad = 0, *s = calloc(n, sizeof(int));
	char *p;

	if (!ctx)
		t_skip("pmv_create: %s", pmv_errmsg());
	p = region(ctx, n, psz);
	for (size_t base = 0; base < n; base += 64)
		move_all(ctx, p + base * psz, n - base < 64 ? n - base : 64, psz, 1, s);
	for (int i = 0; i < 500 && !tstats(ctx, 2).demote_in; i++)
		usleep(10000);
	printf("  lz4 %lu pages (%lu KB of %zu), file %lu pages, demoted %lu\n",
	       (unsigned long)tstats(ctx, 1).stored_pages,
	       (unsigned long)(tstats(ctx, 1).stored_bytes >> 10), cap >> 10,
	       (unsigned long)tstats(ctx, 2).stored_pages, (unsigned long)tstats(ctx, 2).demote_in);
	T_CHECK(bad, tstats(ctx, 2).demote_in > 0, "nothing demoted to the file tier");
	bad += (int)check_all(p, n, psz);
	free(s);
	pmv_destroy(ctx);
	return bad;
}

static int test_tiers_from_environment(const struct t_case *c)
{
	struct pmv_config cfg = { 0 };
	pmv_ctx *ctx;
	int bad = 0;

	(void)c;
	setenv("PAGEMOVE_TIERS", "mem:64M,zstd@1", 1);
	ctx = pmv_create(&cfg);
	if (!ctx && (errno == EPERM || errno == EOPNOTSUPP))
		t_skip("pmv_create: %s", pmv_errmsg());
	T_CHECK(bad, ctx && pmv_tier_count(ctx) == 2, "PAGEMOVE_TIERS: %s", pmv_errmsg());
	if (ctx) {
		T_CHECK(bad, tstats(ctx, 1).kind == PMV_TIER_ZSTD &&
			tstats(ctx, 0).capacity == 64 << 20, "tiers as the text says");
		pmv_destroy(ctx);
	}
	/* a config with tiers keeps them; a bad variable fails either way */
	setenv("PAGEMOVE_TIERS", "mem,lz4,mem", 1);
	errno = 0;
	T_CHECK(bad, !pmv_create(&cfg) && errno == EINVAL && strstr(pmv_errmsg(), "PAGEMOVE_TIERS"),
		"bad PAGEMOVE_TIERS: errno %d (%s)", errno, pmv_errmsg());
	unsetenv("PAGEMOVE_TIERS");
	errno = 0;
	T_CHECK(bad, !pmv_create(&cfg) && errno == EINVAL, "no tiers at all: errno %d", errno);
	return bad;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int test_fault_in_latency(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 32 : 512;
	pmv_ctx *ctx = far_ctx1(c->variant);
	char *p = region(ctx, n, psz);
	double *us = calloc(n, sizeof(*us));
	int bad = 0, s[512];

	T_ASSERT(us, "alloc");
	for (int rep = 0; rep < (c->huge ? 4 : 1); rep++) {
		size_t base = rep * n / 4;
		size_t k = c->huge ? n / 4 : n;

		T_CHECK(bad, move_all(ctx, p, n, psz, 1, s) == (int)n, "evict");
		for (size_t i = 0; i < k; i++) {
			/* a page of text-like bytes, not a same-filled one */
			size_t pi = (base + i) % n;
			double t0;

			if (pi % 8 == 7)
				pi--;
			if (tier_of(ctx, p + pi * psz) != 1) {
				us[base + i] = -1;
				continue;
			}
			t0 = t_now();
			(void)*(volatile char *)(p + pi * psz + 100);
			us[base + i] = (t_now() - t0) * 1e6;
		}
	}
	qsort(us, n, sizeof(*us), cmp_d);
	{
		size_t first = 0;

		while (first < n && us[first] < 0)
			first++;
		if (first < n)
			printf("  fault-in %s %s: %zu faults, p50 %.1f us, p99 %.1f us, max %.1f us\n",
			       kname[c->variant], c->huge ? "2m" : "4k", n - first,
			       us[first + (n - first) / 2], us[first + (n - first) * 99 / 100],
			       us[n - 1]);
	}
	bad += (int)check_all(p, n, psz);
	free(us);
	pmv_destroy(ctx);
	return bad;
}

/* ---- runner ---------------------------------------------------------------- */

static void run(struct t_suite *s, const char *fn, t_case_fn f, int v, const char *vname,
		int huge, int sig)
{
	t_suite_case(s, fn, f, -1, huge, v, vname, sig);
}

static void cleanup(void)
{
	rmdir(dir);
}

/*
 * Proactive demotion (proactive_idle_s = 1) over a memory tier with room to
 * spare: pages nobody touches go down to lz4 without any pressure, while
 * the few a thread keeps reading stay in memory; every byte is right
 * after. Progress, not time: it waits until every idle page is down (the
 * sub-test's watchdog bounds that).
 */
struct hot_reader { char *p; size_t psz, n; atomic_int stop; atomic_long bad; };

static void *hot_read(void *arg)
{
	struct hot_reader *h = arg;

	while (!atomic_load(&h->stop)) {
		for (size_t i = 0; i < h->n; i++)
			if (check(h->p + i * h->psz, h->psz, i) >= 0)
				atomic_fetch_add(&h->bad, 1);
		usleep(2000);
	}
	return NULL;
}

static int test_proactive_demotes_idle_pages(const struct t_case *c)
{
	size_t psz = psz_of(c), n = c->huge ? 8 : 512, hot = c->huge ? 2 : 8, down = 0, up = 0;
	struct pmv_tier_config tc[2] = {
		{ .name = "mem", .node = PMV_NODE_ANY },
		{ .name = "lz4", .node = PMV_NODE_ANY, .kind = PMV_TIER_LZ4 },
	};
	struct pmv_policy_config pol = { .mode = PMV_POLICY_AUTO, .interval_ms = 20,
					 .proactive_idle_s = 1 };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };
	struct hot_reader h = { .psz = psz, .n = hot };
	struct pmv_ctx_stats cs;
	struct pmv_tier_stats far;
	pthread_t th;
	pmv_ctx *ctx = t_create(&cfg);
	int bad = 0;

	h.p = region(ctx, n, psz);
	pthread_create(&th, NULL, hot_read, &h);
	t_step("wait for the %zu idle pages to go down", n - hot);
	while (down < n - hot) {
		down = 0;
		for (size_t i = hot; i < n; i++)
			down += tier_of(ctx, h.p + i * psz) == 1;
		usleep(20000);
		t_beat();
	}
	atomic_store(&h.stop, 1);
	pthread_join(th, NULL);
	for (size_t i = 0; i < hot; i++)
		up += tier_of(ctx, h.p + i * psz) == 0;
	T_ASSERT(!pmv_ctx_stats(ctx, &cs), "pmv_ctx_stats");
	far = tstats(ctx, 1);
	printf("  %llu proactive demotions, %zu of %zu read pages in memory, %llu KB stored "
	       "for %zu KB\n", (unsigned long long)cs.proactive, up, hot,
	       (unsigned long long)far.stored_bytes >> 10, (n - hot) * psz >> 10);
	T_CHECK(bad, cs.proactive >= n - hot, "%llu proactive demotions for %zu pages down",
		(unsigned long long)cs.proactive, n - hot);
	/* a read every 2 ms is never idle 1 s: the policy has no reason to move them */
	T_CHECK(bad, up == hot, "%zu of the %zu pages read all along left memory", hot - up, hot);
	T_CHECK(bad, far.stored_bytes < (n - hot) * psz, "nothing saved: %llu bytes stored",
		(unsigned long long)far.stored_bytes);
	T_CHECK(bad, atomic_load(&h.bad) == 0, "the reader saw %ld wrong pages",
		atomic_load(&h.bad));
	bad += (int)check_all(h.p, n, psz);
	pmv_destroy(ctx);
	return bad;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	if (t_control())
		t_skip("far tiers have no plain-memory control");
	snprintf(dir, sizeof(dir), "/var/tmp/t_far.XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/t_far.XXXXXX");
		if (!mkdtemp(dir))
			T_FAIL("mkdtemp: %s", strerror(errno));
	}
	atexit(cleanup);
	for (int h = 0; h < 2; h++) {
		for (int k = 0; k < K_NR; k++) {
			run(&s, "test_round_trip", test_round_trip, k, kname[k], h, 0);
			run(&s, "test_many_threads_fault_one_page", test_many_threads_fault_one_page,
			    k, kname[k], h, 0);
			run(&s, "test_kernel_access", test_kernel_access, k, kname[k], h, 0);
			run(&s, "test_discard_drops_handles", test_discard_drops_handles, k,
			    kname[k], h, 0);
			run(&s, "test_inject_eio_page_stays", test_inject_eio_page_stays, k,
			    kname[k], h, 0);
			run(&s, "test_corrupt_block_sigbus", test_corrupt_block_sigbus, k, kname[k],
			    h, SIGBUS);
			run(&s, "test_same_filled_take_no_storage", test_same_filled_take_no_storage,
			    k, kname[k], h, 0);
			run(&s, "test_fork_sees_evicted_pages", test_fork_sees_evicted_pages, k,
			    kname[k], h, 0);
			run(&s, "test_mremap_evicted_pages", test_mremap_evicted_pages, k, kname[k],
			    h, 0);
			if (!h)	/* 4 KB: the fault-ins copied from a buffer */
				run(&s, "test_mremap_while_faulting_in",
				    test_mremap_while_faulting_in, k, kname[k], 0, 0);
			run(&s, "test_read_only_evicted_pages", test_read_only_evicted_pages, k,
			    kname[k], h, 0);
			if (h)
				run(&s, "test_discard_part_of_evicted_huge_page",
				    test_discard_part_of_evicted_huge_page, k, kname[k], h, 0);
		}
		run(&s, "test_enospc_page_stays", test_enospc_page_stays, 0, "capacity", h, 0);
		run(&s, "test_enospc_page_stays", test_enospc_page_stays, 1, "tmpfs", h, 0);
		run(&s, "test_incompressible", test_incompressible, 0, "lz4_only", h, 0);
		run(&s, "test_incompressible", test_incompressible, 1, "then_file", h, 0);
		run(&s, "test_munmap_destroy_while_evicting", test_munmap_destroy_while_evicting,
		    0, "munmap", h, 0);
		run(&s, "test_munmap_destroy_while_evicting", test_munmap_destroy_while_evicting,
		    1, "destroy", h, 0);
		run(&s, "test_fault_in_latency", test_fault_in_latency, K_LZ4, "lz4", h, 0);
		run(&s, "test_fault_in_latency", test_fault_in_latency, K_FILE, "file", h, 0);
	}
	for (int h = 0; h < 2; h++) {
		run(&s, "test_cycle_under_writers", test_cycle_under_writers, 0, "lz4_file", h, 0);
		run(&s, "test_far_to_far", test_far_to_far, 0, "lz4_file", h, 0);
		run(&s, "test_fork_with_full_memory_tier", test_fork_with_full_memory_tier, 0, "lz4",
		    h, 0);
		run(&s, "test_policy_demotes_down_far_tiers", test_policy_demotes_down_far_tiers, 0,
		    "lz4_file", h, 0);
		run(&s, "test_four_times_the_memory_tier", test_four_times_the_memory_tier, 0,
		    "policy_off", h, 0);
		run(&s, "test_four_times_the_memory_tier", test_four_times_the_memory_tier, 1,
		    "policy_auto", h, 0);
		run(&s, "test_incompressible_data_past_a_full_memory_tier",
		    test_incompressible_data_past_a_full_memory_tier, 0, "lz4", h, 0);
		run(&s, "test_demoter_keeps_a_margin", test_demoter_keeps_a_margin, 0, "lz4", h, 0);
		run(&s, "test_demoter_leaves_bound_pages", test_demoter_leaves_bound_pages, 0, "lz4",
		    h, 0);
		run(&s, "test_fault_ins_with_the_demoter", test_fault_ins_with_the_demoter, 0, "lz4",
		    h, 0);
		run(&s, "test_proactive_demotes_idle_pages", test_proactive_demotes_idle_pages, 0,
		    "lz4", h, 0);
		run(&s, "test_two_threads_fault_past_a_full_memory_tier",
		    test_two_threads_fault_past_a_full_memory_tier, 0, "lz4", h, 0);
		run(&s, "test_two_threads_fault_past_a_full_memory_tier",
		    test_two_threads_fault_past_a_full_memory_tier, 1, "file", h, 0);
	}
	run(&s, "test_user_mode_refused", test_user_mode_refused, 0, NULL, 0, 0);
	run(&s, "test_tiers_from_environment", test_tiers_from_environment, 0, NULL, 0, 0);
	return t_suite_end(&s);
}
