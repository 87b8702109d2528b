/* SPDX-License-Identifier: MIT */
/*
 * The program's own munmap(2), mremap(2) and mmap(MAP_FIXED) on managed
 * memory (userfaultfd UNMAP and REMAP events, event.c), made with raw
 * syscalls since ASan intercepts the libc wrappers. Each operation runs on
 * a fresh region (4 KB and 2 MB pages) while its pages migrate, exchange,
 * are parked by the sampler, or the policy moves them (the agitator), and
 * a reader checks every byte of random pages outside the changed range:
 *
 *   unmap_start, unmap_mid, unmap_end, unmap_all   munmap of that part
 *   shrink         mremap to two thirds of the length
 *   grow_back      munmap the last third, then mremap back to full length
 *                  in place (the tail is free, so it succeeds)
 *   grow_beyond    mremap past the end in place: succeeds or ENOMEM, as on
 *                  plain memory
 *   move_all, move_mid   mremap(MREMAP_MAYMOVE|MREMAP_FIXED) of all or the
 *                  middle third to an address reserved for it
 *   fixed_over     mmap(MAP_FIXED|MAP_ANONYMOUS) over the middle third
 *
 *   probe_sees_an_unread_event   the kernel fact the move in relies on to
 *                  tell an unmap or mremap it has read from one still
 *                  queued (_pmv_uffd_changing): UFFDIO_WRITEPROTECT says
 *                  EAGAIN while an event is unread, ENOENT where no VMA is
 *
 * A mover's status may be a tier, -EBUSY, -EFAULT for a page of the
 * changed range, and -ENOENT for a page never touched; nothing else.
 *
 * Afterwards: the unmapped or moved-away range is gone (a forked child that
 * reads it dies of SIGSEGV); every other page keeps every byte (a page
 * never touched reads zeros); moved data is at the new address byte for
 * byte, reads and writes there work and pmv_move_pages on it works; a
 * MAP_FIXED range reads zeros, takes writes and is not managed; a grown
 * tail reads zeros and takes writes. Once settled the tiers' resident bytes
 * are exactly the pages still mapped and touched (or mapped ahead of the
 * fill, which is a stream of first touches). Then pmv_munmap of the
 * original range takes the pieces left of it (0, or -EINVAL when nothing
 * is left there), pmv_munmap of a moved range takes it, and resident bytes
 * go to 0.
 */
#include "harness.h"
#include "../src/internal.h"

#include <poll.h>
#include <sys/ioctl.h>

#define N_4K		96
#define N_2M		6
#define SEED		0x0a3a7

enum op {
	OP_UNMAP_START, OP_UNMAP_MID, OP_UNMAP_END, OP_UNMAP_ALL, OP_SHRINK,
	OP_GROW_BACK, OP_GROW_BEYOND, OP_MOVE_ALL, OP_MOVE_MID, OP_FIXED_OVER, OP_NR
};
static const char *const op_names[OP_NR] = {
	"unmap_start", "unmap_mid", "unmap_end", "unmap_all", "shrink",
	"grow_back", "grow_beyond", "move_all", "move_mid", "fixed_over",
};

/* what became of page i of the region */
enum pstate { P_MAPPED, P_GONE, P_MOVED, P_ZERO };

static pmv_ctx *ctx;
static struct t_agit AG;
static char *base;
static size_t psz, npages;
static size_t op_lo, op_hi;		/* pages [op_lo, op_hi) are changed */
static _Atomic uint8_t gone[N_4K], never[N_4K];
static uint8_t ahead[N_4K];		/* untouched, but mapped ahead of the fill */
static atomic_int reader_stop;
static atomic_long reader_bad, reader_reads;

static int untouched(size_t i)
{
	return i % 8 == 5;
}

static int in_op(size_t i)
{
	return i >= op_lo && i < op_hi;
}

/* Reads random touched pages outside the changed range, every byte. */
static void *reader(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&reader_stop)) {
		size_t i = rand_r(&seed) % npages;
		long off;

		if (in_op(i) || untouched(i))
			continue;
		off = t_check(base + i * psz, psz, i, SEED);
		if (off >= 0) {
			if (atomic_fetch_add(&reader_bad, 1) < 4)
				printf("  FAIL reader: page %zu byte %ld wrong\n", i, off);
		}
		atomic_fetch_add(&reader_reads, 1);
		usleep(200);	/* leave the sampler pages to park */
	}
	return NULL;
}

/*
 * Every page of [p, p + n pages) is gone: first, last and a few between.
 * A gone page's address may be reused at once by anyone's mmap (ASan's
 * allocator, a pool chunk of ours, a thread stack): a mapping there that
 * is not registered for MISSING faults, as no managed memory is, is
 * someone else's; otherwise a read in a child must die of SIGSEGV.
 */
static int check_gone(const char *what, char *p, size_t n)
{
	int bad = 0;

	for (size_t i = 0; i < n; i += n > 6 ? n / 6 : 1) {
		size_t k = i + 1 >= n ? n - 1 : i;
		char *a = p + k * psz + psz / 2;

		if (t_mapped(a, 1) && !t_uffd_missing_vma(a)) {
			printf("  note: %s page %zu: its address holds another mapping now\n", what, k);
		} else {
			t_step("%s: read gone page %zu in a child", what, k);
			T_CHECK(bad, t_read_segfaults(a, what), "%s page %zu still reachable%s", what,
				k, t_mapped(a, 1) ? " (a userfaultfd MISSING VMA is there)" : "");
		}
		if (k == n - 1)
			break;
	}
	return bad;
}

static long parked_now(void)
{
	struct pmv_ctx_stats cs;

	return !ctx || pmv_ctx_stats(ctx, &cs) ? -1 : (long)cs.parked;
}

static uint64_t settled(uint64_t want)
{
	return t_resident_settled(ctx, want);
}

static int test_only_the_range_changes(const struct t_case *c)
{
	enum op op = (enum op)c->variant;
	size_t len, third;
	enum pstate state[N_4K];
	char *dst = NULL, *res = MAP_FAILED, *tail = NULL, *fixed = NULL;
	size_t reslen = 0, tail_len = 0, moved_lo = 0, moved_n = 0;
	pthread_t rt;
	int bad = 0;
	uint64_t want_res = 0, got;

	psz = c->huge ? T_SZ_2M : T_SZ_4K;
	npages = c->huge ? N_2M : N_4K;
	len = npages * psz;
	third = npages / 3;
	ctx = t_ctx_mode(c->mode, npages / 4 * psz, NULL);
	base = t_map(ctx, len, 0, c->huge ? PMV_HUGE : 0);
	for (size_t i = 0; i < npages; i++) {
		state[i] = P_MAPPED;
		atomic_store(&never[i], untouched(i));
		if (!untouched(i))
			t_fill(base + i * psz, psz, i, SEED);
	}
	/*
	 * The fill is a stream of first touches: the library may have mapped
	 * pages after it ahead (fault.c), untouched ones included, and those
	 * are placed and charged as touched ones. Which: the query, until a
	 * pass 10 ms after the last finds no change (the handler maps the
	 * last window after it has answered the last touch, so one may be in
	 * flight now; nothing else places an untouched page before the
	 * checks). Progress only: nothing is timed.
	 */
	memset(ahead, 0, sizeof(ahead));
	for (int changed = 1; ctx && changed;) {
		changed = 0;
		usleep(10000);
		for (size_t i = 0; i < npages; i++) {
			void *pg = base + i * psz;
			int st = -ENOENT;
			uint8_t placed;

			if (!untouched(i))
				continue;
			placed = pmv_move_pages(ctx, 1, &pg, NULL, &st, 0) >= 0 && st >= 0;
			changed |= placed != ahead[i];
			ahead[i] = placed;
		}
	}
	switch (op) {
	case OP_UNMAP_START:	op_lo = 0; op_hi = third; break;
	case OP_UNMAP_MID:
	case OP_MOVE_MID:
	case OP_FIXED_OVER:	op_lo = third; op_hi = 2 * third; break;
	case OP_UNMAP_END:
	case OP_SHRINK:
	case OP_GROW_BACK:	op_lo = 2 * third; op_hi = npages; break;
	case OP_UNMAP_ALL:
	case OP_MOVE_ALL:	op_lo = 0; op_hi = npages; break;
	case OP_GROW_BEYOND:	op_lo = op_hi = npages; break;
	default:		break;
	}
	if (op == OP_MOVE_ALL || op == OP_MOVE_MID) {
		/*
		 * The destination: reserved PROT_NONE, 2 MB aligned. mremap
		 * with MREMAP_FIXED replaces the reservation atomically; an
		 * address merely unmapped could be taken meanwhile by the
		 * library's own pool growth.
		 */
		reslen = len + T_SZ_2M;
		res = t_sys_mmap(NULL, reslen, PROT_NONE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		T_ASSERT(res != MAP_FAILED, "reserve: %s", strerror(errno));
		dst = (char *)(((uintptr_t)res + T_SZ_2M - 1) & ~(T_SZ_2M - 1));
	}
	t_region_spread(&(struct t_region){ .ctx = ctx, .base = base, .psz = psz,
					    .npages = npages }, c->mode);
	t_agit_init(&AG, ctx, c->mode, base, psz, npages, SEED + 7 * c->mode + c->huge);
	AG.gone = gone;
	AG.untouched = never;
	t_agit_run(&AG);
	T_EQ(pthread_create(&rt, NULL, reader, (void *)(uintptr_t)(SEED + op)), 0);
	t_agit_sync(&AG, 20);
	if (c->mode == T_PARKED || c->mode == T_POLICY) {
		/* let the sampler park some pages first (bounded; a note if not) */
		for (int i = 0; i < 100 && parked_now() <= 0; i++)
			usleep(10000);
		if (parked_now() <= 0)
			printf("  note: no page parked before the operation\n");
	}

	/* the agitator may see -EFAULT for these from now on */
	for (size_t i = op_lo; i < op_hi; i++)
		atomic_store(&gone[i], 1);
	t_step("%s of pages [%zu, %zu)", op_names[op], op_lo, op_hi);
	switch (op) {
	case OP_UNMAP_START:
	case OP_UNMAP_MID:
	case OP_UNMAP_END:
	case OP_UNMAP_ALL:
		T_CHECK(bad, t_sys_munmap(base + op_lo * psz, (op_hi - op_lo) * psz) == 0,
			"munmap: %s", strerror(errno));
		for (size_t i = op_lo; i < op_hi; i++)
			state[i] = P_GONE;
		break;
	case OP_SHRINK:
		T_CHECK(bad, t_sys_mremap(base, len, op_lo * psz, 0, NULL) == base,
			"mremap shrink: %s", strerror(errno));
		for (size_t i = op_lo; i < op_hi; i++)
			state[i] = P_GONE;
		break;
	case OP_GROW_BACK:
		T_CHECK(bad, t_sys_munmap(base + op_lo * psz, (op_hi - op_lo) * psz) == 0,
			"munmap: %s", strerror(errno));
		for (size_t i = op_lo; i < op_hi; i++)
			state[i] = P_GONE;
		t_agit_sync(&AG, 10);
		/* the tail is free (unless someone mapped there meanwhile) */
		if (t_sys_mremap(base, op_lo * psz, len, 0, NULL) == base) {
			tail = base + op_lo * psz;
			tail_len = (op_hi - op_lo) * psz;
		} else {
			printf("  note: grow_back: mremap grow refused: %s%s\n", strerror(errno),
			       t_mapped(base + op_lo * psz, (op_hi - op_lo) * psz) ?
			       " (the freed tail was mapped by someone)" : "");
			T_CHECK(bad, errno == ENOMEM, "mremap grow: %s", strerror(errno));
		}
		break;
	case OP_GROW_BEYOND:
		tail_len = third * psz;
		if (t_sys_mremap(base, len, len + tail_len, 0, NULL) == base) {
			tail = base + len;
		} else {
			T_CHECK(bad, errno == ENOMEM, "mremap grow: %s, want success or ENOMEM",
				strerror(errno));
			tail_len = 0;
		}
		break;
	case OP_MOVE_ALL:
	case OP_MOVE_MID:
		moved_lo = op_lo;
		moved_n = op_hi - op_lo;
		T_CHECK(bad, t_sys_mremap(base + op_lo * psz, moved_n * psz, moved_n * psz,
					  MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst,
			"mremap move: %s", strerror(errno));
		for (size_t i = op_lo; i < op_hi; i++)
			state[i] = P_MOVED;
		break;
	case OP_FIXED_OVER:
		fixed = base + op_lo * psz;
		T_CHECK(bad, t_sys_mmap(fixed, (op_hi - op_lo) * psz, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == fixed,
			"mmap MAP_FIXED: %s", strerror(errno));
		for (size_t i = op_lo; i < op_hi; i++)
			state[i] = P_ZERO;
		break;
	default:
		break;
	}
	t_agit_sync(&AG, 20);
	t_step("join the reader");
	atomic_store(&reader_stop, 1);
	pthread_join(rt, NULL);
	bad += atomic_load(&reader_bad) ? 1 : 0;
	bad += t_agit_check(&AG, op_names[op], 1);
	if (ctx && c->mode != T_PARKED)
		T_CHECK(bad, atomic_load(&AG.moved) > 0 || c->mode == T_POLICY,
			"the agitator made no progress");
	printf("  %ld reads by the reader\n", atomic_load(&reader_reads));

	/* resident: every page still mapped (here or moved) and touched, or mapped ahead */
	for (size_t i = 0; i < npages; i++)
		if ((state[i] == P_MAPPED || state[i] == P_MOVED) && (!untouched(i) || ahead[i]))
			want_res += psz;
	if (ctx) {
		got = settled(want_res);
		T_CHECK(bad, got == want_res, "resident %llu bytes, want %llu (%llu pages)",
			(unsigned long long)got, (unsigned long long)want_res,
			(unsigned long long)(want_res / psz));
	}

	/* every byte of what is left, where it is now */
	t_step("check every byte left");
	for (size_t i = 0; i < npages; i++) {
		char *p = state[i] == P_MOVED ? dst + (i - moved_lo) * psz : base + i * psz;
		long off;

		switch (state[i]) {
		case P_MAPPED:
		case P_MOVED:
			if (untouched(i)) {
				T_CHECK(bad, t_is_zero((uint8_t *)p, psz),
					"%s page %zu never touched, not zero",
					state[i] == P_MOVED ? "moved" : "kept", i);
				break;
			}
			off = t_check(p, psz, i, SEED);
			T_CHECK(bad, off < 0, "%s page %zu: byte %ld wrong",
				state[i] == P_MOVED ? "moved" : "kept", i, off);
			break;
		case P_ZERO:
			T_CHECK(bad, t_is_zero((uint8_t *)p, psz), "MAP_FIXED page %zu not zero", i);
			break;
		default:
			break;
		}
	}
	/* the gone ranges: unmapped, shrunk away, or moved away */
	if (op != OP_GROW_BACK || !tail) {
		size_t lo = op_lo, hi = op_hi;

		if (op == OP_GROW_BEYOND || op == OP_FIXED_OVER)
			lo = hi;
		if (hi > lo)
			bad += check_gone(op_names[op], base + lo * psz, hi - lo);
	}
	if (tail) {
		T_CHECK(bad, t_is_zero((uint8_t *)tail, tail_len), "grown tail not zero");
		for (size_t off = 0; off < tail_len; off += T_SZ_4K)
			tail[off] = (char)(off / T_SZ_4K + 1);
		for (size_t off = 0; off < tail_len; off += T_SZ_4K)
			T_CHECK(bad, tail[off] == (char)(off / T_SZ_4K + 1),
				"grown tail byte %zu lost a write", off);
	}
	if (fixed) {
		t_fill(fixed, (op_hi - op_lo) * psz, 999, SEED + 1);
		T_CHECK(bad, t_check(fixed, (op_hi - op_lo) * psz, 999, SEED + 1) < 0,
			"MAP_FIXED range lost a write");
		if (ctx) {
			void *pg = fixed;
			int st = 0;

			T_CHECK(bad, pmv_move_pages(ctx, 1, &pg, NULL, &st, 0) == 1 &&
				st == -EFAULT, "MAP_FIXED range still managed: status %d", st);
		}
	}
	if (moved_n) {
		/* the library follows the move: query, then move each page */
		for (size_t k = 0; ctx && k < moved_n; k++) {
			size_t i = moved_lo + k;
			void *pg = dst + k * psz;
			int st = 0, to;

			/* (the byte check above touched the pages never touched before) */
			t_step("move moved page %zu at its new address", i);
			pmv_move_pages(ctx, 1, &pg, NULL, &st, 0);
			T_CHECK(bad, st == 0 || st == 1, "moved page %zu: query %d (%s)", i, st,
				pmv_strerror(st));
			to = st == 0;
			for (int tries = 0; tries < 20; tries++) {
				pmv_move_pages(ctx, 1, &pg, &to, &st, 0);
				if (st != -EBUSY)
					break;
			}
			/* with the policy on, tier 0 is small and may be full */
			T_CHECK(bad, st == to || (c->mode == T_POLICY && !to && st == -ENOMEM),
				"moved page %zu: move to %d: %d (%s)", i, to, st, pmv_strerror(st));
		}
		/* writes at the new address, and the data after those moves */
		for (size_t k = 0; k < moved_n; k++) {
			size_t i = moved_lo + k;

			if (!untouched(i))
				T_CHECK(bad, t_check(dst + k * psz, psz, i, SEED) < 0,
					"moved page %zu changed by a move at its new address", i);
			t_fill(dst + k * psz, psz, i, SEED + 2);
		}
		for (size_t k = 0; k < moved_n; k++)
			T_CHECK(bad, t_check(dst + k * psz, psz, moved_lo + k, SEED + 2) < 0,
				"moved page %zu lost a write at its new address", moved_lo + k);
		/* the byte check touched every page left: all are resident now */
		want_res = 0;
		for (size_t i = 0; i < npages; i++)
			if (state[i] == P_MAPPED || state[i] == P_MOVED)
				want_res += psz;
		if (ctx) {
			got = settled(want_res);
			T_CHECK(bad, got == want_res, "after writes: resident %llu, want %llu",
				(unsigned long long)got, (unsigned long long)want_res);
		}
	}

	/* cleanup: the pieces of the region, then the program's own mappings */
	t_step("cleanup");
	if (!ctx) {
		t_sys_munmap(base, len);
		if (moved_n)
			t_sys_munmap(dst, moved_n * psz);
	} else {
		int left = 0, ret;

		for (size_t i = 0; i < npages; i++)
			left += state[i] == P_MAPPED;
		ret = pmv_munmap(ctx, base, len);
		T_CHECK(bad, ret == (left ? 0 : -EINVAL),
			"pmv_munmap of the original range: %d (%s), want %s", ret,
			pmv_strerror(ret), left ? "0" : "-EINVAL: nothing is left there");
		if (moved_n) {
			ret = pmv_munmap(ctx, dst, moved_n * psz);
			T_CHECK(bad, ret == 0, "pmv_munmap of the moved range: %d (%s)", ret,
				pmv_strerror(ret));
		}
		got = settled(0);
		T_CHECK(bad, got == 0, "resident %llu bytes after pmv_munmap",
			(unsigned long long)got);
		if (left)
			T_CHECK(bad, !t_mapped(base, op_lo * psz) &&
				!t_mapped(base + op_hi * psz, len - op_hi * psz),
				"pieces of the region still mapped after pmv_munmap");
		/*
		 * Only what the program itself still owns: the library may
		 * have mapped pool memory where the region was.
		 */
		if (fixed)
			t_sys_munmap(fixed, (op_hi - op_lo) * psz);
	}
	if (tail)
		t_sys_munmap(tail, tail_len);
	if (res != MAP_FAILED) {
		/* what is left of the reservation around the destination */
		if (dst > res)
			t_sys_munmap(res, dst - res);
		t_sys_munmap(dst + len, res + reslen - (dst + len));
		if (moved_n < npages)
			t_sys_munmap(dst + moved_n * psz, (npages - moved_n) * psz);
	}
	t_destroy(ctx);
	return bad;
}

/*
 * A munmap or an mremap move of [1.5, 2.5) pages of a PMV_HUGE region: it
 * cuts two huge pages in the middle, whatever they are doing then (being
 * moved, exchanged, parked by the sampler, or moved by the policy). The
 * part of each page the call left in place keeps its bytes there, the
 * part mremap moved has them at the new address (the kernel moves mapped
 * pieces; a page held out of its address or parked must put its pieces
 * there itself), and the unmapped part is gone. The agitator keeps going
 * over the whole region, the cut pages included, before the check.
 */
static int test_cut_huge_pages_keep_the_rest(const struct t_case *c)
{
	const size_t n = 4, half = T_SZ_2M / 2, cut = T_SZ_2M;
	int move = c->variant, bad = 0;
	char *lo, *res = NULL, *dst = NULL;
	unsigned seed = SEED + 91 + (unsigned)c->mode;

	psz = T_SZ_2M;
	npages = n;
	ctx = t_ctx_mode(c->mode, 2 * psz, NULL);
	base = t_map(ctx, n * psz, 0, PMV_HUGE);
	for (size_t i = 0; i < n; i++)
		t_fill(base + i * psz, psz, i, seed);
	lo = base + psz + half;
	if (move) {
		res = t_sys_mmap(NULL, cut + 2 * T_SZ_2M, PROT_NONE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		T_ASSERT(res != MAP_FAILED, "reserve: %s", strerror(errno));
		dst = (char *)(((uintptr_t)res + T_SZ_2M - 1) & ~(T_SZ_2M - 1));
	}
	if (ctx) {
		t_region_spread(&(struct t_region){ .ctx = ctx, .base = base, .psz = psz,
						    .npages = n }, c->mode);
		t_agit_init(&AG, ctx, c->mode, base, psz, n, seed);
		/* the cut pages' addresses are no longer whole pages */
		AG.allow[1] = -EFAULT;
		AG.allow[2] = -ENOENT;
		t_agit_run(&AG);
		t_agit_sync(&AG, 4);
		t_wait_parked(c->mode, base, psz, n, 1);
	}
	t_step("%s [1.5, 2.5) pages", move ? "mremap" : "munmap");
	if (move)
		T_CHECK(bad, t_sys_mremap(lo, cut, cut, MREMAP_MAYMOVE | MREMAP_FIXED, dst) == dst,
			"mremap: %s", strerror(errno));
	else
		T_CHECK(bad, t_sys_munmap(lo, cut) == 0, "munmap: %s", strerror(errno));
	t_agit_sync(&AG, 20);
	if (ctx)
		bad += t_agit_check(&AG, "agitator", 1);
	t_step("check the pieces left in place%s", move ? " and the moved ones" : "");
	for (size_t off = 0; off < n * psz; off += T_SZ_4K) {
		char *p = base + off;
		size_t i = off / psz, o = off % psz;

		if (p >= lo && p < lo + cut) {
			if (!move)
				continue;
			p = dst + (p - lo);
		}
		for (size_t k = 0; k < T_SZ_4K; k++)
			if ((uint8_t)p[k] != t_pat(i, o + k, seed)) {
				T_CHECK(bad, 0, "page %zu piece at %zu%s: byte %zu is %02x, not %02x",
					i, o, p >= base && p < base + n * psz ? "" : " (moved)", k,
					(uint8_t)p[k], t_pat(i, o + k, seed));
				break;
			}
		if (bad > 8)
			break;
	}
	if (!move)
		bad += check_gone("the unmapped part", lo, 1);
	if (move)
		T_EQ(t_sys_munmap(res, cut + 2 * T_SZ_2M), 0);
	T_EQ(t_sys_munmap(base, psz + half), 0);
	T_EQ(t_sys_munmap(lo + cut, n * psz - (size_t)(lo + cut - base)), 0);
	t_destroy(ctx);
	return bad;
}

/*
 * Two threads map regions, touch them and unmap them with plain munmap:
 * the kernel hands one thread a range the other has just unmapped, while
 * that munmap still waits for its UNMAP event to be read. pmv_mmap must
 * wait for the event, not refuse the range (it did: EEXIST, 99 to 107
 * calls of 3000). Every region reads back its own bytes.
 */
struct reuse_arg { int id, rounds, failed, changed; };

static void *reuse_main(void *arg)
{
	struct reuse_arg *a = arg;
	size_t len = 16 * T_SZ_4K;

	for (int r = 0; r < a->rounds; r++) {
		char *p = pmv_mmap(ctx, len, PMV_TIER_DEFAULT, 0);

		if (!p) {
			if (!a->failed++)
				printf("  FAIL thread %d round %d: pmv_mmap: %s (%s)\n", a->id, r,
				       strerror(errno), pmv_errmsg());
			continue;
		}
		t_fill(p, len, (size_t)a->id * 100000 + (size_t)r, SEED);
		if (t_check(p, len, (size_t)a->id * 100000 + (size_t)r, SEED) >= 0)
			a->changed++;
		t_sys_munmap(p, len);
		t_beat();	/* progress: under make stress the rounds outlast the stall limit */
	}
	return NULL;
}

static int test_mmap_reuses_a_range_another_thread_unmapped(const struct t_case *c)
{
	struct reuse_arg a[2];
	pthread_t th[2];
	int bad = 0;

	(void)c;
	ctx = t_ctx(1, NULL, 0);
	for (int i = 0; i < 2; i++) {
		a[i] = (struct reuse_arg){ .id = i, .rounds = t_rounds(3000) };
		pthread_create(&th[i], NULL, reuse_main, &a[i]);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		T_CHECK(bad, a[i].failed == 0, "thread %d: %d of %d pmv_mmap calls failed", i,
			a[i].failed, a[i].rounds);
		T_CHECK(bad, a[i].changed == 0, "thread %d: %d regions read wrong bytes", i,
			a[i].changed);
	}
	T_CHECK(bad, settled(0) == 0, "the unmapped regions are still charged");
	pmv_destroy(ctx);
	ctx = NULL;
	return bad;
}

/*
 * A userfaultfd of our own, as the library registers its regions (MISSING
 * and WP, the non-cooperative events), where no handler reads the events:
 * the program's munmap or mremap then waits in the kernel until we do.
 */
struct probe_arg {
	char *p;
	bool remap;
	atomic_bool done;	/* its munmap or mremap returned */
};

static void *probe_unmapper(void *arg)
{
	struct probe_arg *a = arg;

	if (a->remap)
		syscall(SYS_mremap, a->p + 4 * T_SZ_4K, 4 * T_SZ_4K, 4 * T_SZ_4K,
			MREMAP_MAYMOVE | MREMAP_FIXED, a->p + 64 * T_SZ_4K);
	else
		syscall(SYS_munmap, a->p + 4 * T_SZ_4K, 4 * T_SZ_4K);
	atomic_store(&a->done, true);
	return NULL;
}

static int probe_round(int fd, bool remap)
{
	static pmv_ctx fake;	/* the probe reads only the descriptors */
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING |
					       UFFDIO_REGISTER_MODE_WP };
	struct probe_arg a = { .remap = remap };
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	struct uffd_msg msg;
	pthread_t th;
	int bad = 0, events = 0;
	char *p;

	fake.uffd = fake.pool_uffd = fd;
	p = mmap(NULL, 128 * T_SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	T_ASSERT(p != MAP_FAILED, "mmap: %s", strerror(errno));
	syscall(SYS_munmap, p + 64 * T_SZ_4K, 64 * T_SZ_4K);	/* mremap's target, and a hole */
	memset(p, 0x5a, 64 * T_SZ_4K);	/* first: nobody would answer a MISSING fault */
	reg.range.start = (uintptr_t)p;
	reg.range.len = 64 * T_SZ_4K;
	T_ASSERT(!ioctl(fd, UFFDIO_REGISTER, &reg), "UFFDIO_REGISTER: %s", strerror(errno));
	T_CHECK(bad, !_pmv_uffd_changing(&fake, (uintptr_t)p + 100 * T_SZ_4K),
		"idle: the probe of a hole says an event is unread");
	a.p = p;
	pthread_create(&th, NULL, probe_unmapper, &a);
	T_CHECK(bad, poll(&pf, 1, 10000) == 1, "no event within 10 s");
	T_CHECK(bad, _pmv_uffd_changing(&fake, (uintptr_t)p + 5 * T_SZ_4K),
		"%s queued: the probe of its range sees no unread event",
		remap ? "mremap" : "munmap");
	T_CHECK(bad, _pmv_uffd_changing(&fake, (uintptr_t)p + 100 * T_SZ_4K),
		"%s queued: the probe of a hole sees no unread event", remap ? "mremap" : "munmap");
	/* mremap sends REMAP, then UNMAP of the old range: read until it returns */
	while (!atomic_load(&a.done))
		if (poll(&pf, 1, 100) == 1 && read(fd, &msg, sizeof(msg)) == sizeof(msg))
			events++;
	pthread_join(th, NULL);
	T_CHECK(bad, events == (remap ? 2 : 1), "%d events read", events);
	T_CHECK(bad, !_pmv_uffd_changing(&fake, (uintptr_t)p + 5 * T_SZ_4K),
		"all read: the probe of the range still says an event is unread");
	T_CHECK(bad, _pmv_uffd_wp(&fake, (uintptr_t)p + 5 * T_SZ_4K, T_SZ_4K, PMV_MV_ONCE) == -ENOENT,
		"no VMA: UFFDIO_WRITEPROTECT does not say ENOENT");
	for (size_t i = 0; i < 64; i++) {
		const char *q = remap && i >= 4 && i < 8 ? p + (60 + i) * T_SZ_4K : p + i * T_SZ_4K;

		if (!remap && i >= 4 && i < 8)
			continue;
		T_CHECK(bad, q[0] == 0x5a && q[T_SZ_4K - 1] == 0x5a, "page %zu changed", i);
	}
	/* unregistered first: this thread's munmap would wait for its own event */
	reg.range.len = 128 * T_SZ_4K;
	T_CHECK(bad, !ioctl(fd, UFFDIO_UNREGISTER, &reg.range), "UFFDIO_UNREGISTER: %s",
		strerror(errno));
	syscall(SYS_munmap, p, 128 * T_SZ_4K);
	return bad;
}

static int test_probe_sees_an_unread_event(const struct t_case *c)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK), bad = 0;

	(void)c;
	T_ASSERT(fd >= 0, "userfaultfd: %s", strerror(errno));
	T_ASSERT(!ioctl(fd, UFFDIO_API, &api), "UFFDIO_API: %s", strerror(errno));
	bad |= probe_round(fd, false);
	bad |= probe_round(fd, true);
	close(fd);
	return bad;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	for (int h = 0; h < 2; h++)
		for (int m = 0; m < T_NMODES; m++)
			for (int op = 0; op < OP_NR; op++)
				/* evicting: a cut, a shrink, a move and MAP_FIXED over */
				if (t_mode_on(m, op == OP_UNMAP_MID || op == OP_SHRINK ||
						 op == OP_MOVE_MID || (!h && op == OP_FIXED_OVER)))
					T_CASE_V(&s, test_only_the_range_changes, op, op_names[op],
						 m, h);
	for (int m = 0; m < T_NMODES; m++) {
		T_CASE_V(&s, test_cut_huge_pages_keep_the_rest, 0, "munmap", m, 1);
		T_CASE_V(&s, test_cut_huge_pages_keep_the_rest, 1, "mremap", m, 1);
	}
	T_CASE_ONE(&s, test_mmap_reuses_a_range_another_thread_unmapped, 0);
	T_CASE_ONE(&s, test_probe_sees_an_unread_event, 0);
	return t_suite_end(&s);
}
