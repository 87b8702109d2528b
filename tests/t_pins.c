/* SPDX-License-Identifier: MIT */
/*
 * References and pins on managed pages, 4 KB and 2 MB:
 *
 *  vmsplice_then_migrate   vmsplice(2) (no SPLICE_F_GIFT) 4 KB of a victim
 *                     page into a pipe: the pipe holds a reference to that
 *                     physical page. Then do what would hand the old page to
 *                     another page if migration sources went back to a pool:
 *                     every page on tier 1; move the others 1->0; move the
 *                     victim 1->0 (its old page would be the pool's newest);
 *                     move the others 0->1 (they would land in it); rewrite
 *                     every page. The pipe must hold the victim's bytes, old
 *                     or new, never another page's.
 *  vmsplice_then_exchange  the same with pmv_exchange_pages of the victim and
 *                     a page of the other tier, then the others moved across.
 *  vmsplice_pipes     vmsplice 4 KB of several victims into pipes while the
 *                     agitator runs (every mode), then rewrite every page
 *                     under it: each pipe holds its victim's bytes, old or
 *                     new, never another page's, and every page its own.
 *  odirect            O_DIRECT write from and read into managed memory (a
 *                     file in /var/tmp, else /tmp): the block layer pins the
 *                     pages for DMA.
 *  process_vm         process_vm_readv/writev from another process (forked
 *                     before any managed memory exists, so nothing is
 *                     COW-shared) into this one's managed memory.
 *  io_uring_fixed     io_uring registered buffers (IORING_REGISTER_BUFFERS,
 *                     a long-term pin, raw syscalls: liburing is not a
 *                     build dependency) over the region; WRITE_FIXED and
 *                     READ_FIXED through them to a file, and the program's
 *                     own writes and reads through its mapping, must agree
 *                     byte for byte while registered, and after unregister.
 *
 * vmsplice_pipes and the last three run while the pages migrate, exchange, are parked or the
 * policy moves them (the agitator), every byte checked both ways.
 * PMV_TEST_CONTROL=1 runs the same on plain anonymous memory.
 */
#include <linux/io_uring.h>
#include <sys/uio.h>

#include "harness.h"

#define N_4K		64
#define N_2M		4
#define SEED		0x91e5

static pmv_ctx *ctx;
static struct t_agit AG;
static char *base;
static size_t psz, npages;

static char *page(size_t i)
{
	return base + i * psz;
}

/* The region on tier, for mode (< 0: tracking on, nobody else moves). */
static void setup(const struct t_case *c, int tier)
{
	psz = c->huge ? T_SZ_2M : T_SZ_4K;
	npages = c->huge ? N_2M : N_4K;
	if (c->mode < 0)
		ctx = t_control() ? NULL : t_ctx(2, NULL, 0);
	else
		ctx = t_ctx_mode(c->mode, npages / 2 * psz, NULL);
	base = t_map(ctx, npages * psz, tier, c->huge ? PMV_HUGE : 0);
}

static void teardown(void)
{
	struct pmv_ctx_stats cs;

	if (ctx && !pmv_ctx_stats(ctx, &cs))
		printf("  %llu migrations, %llu samples, %llu faults waited\n",
		       (unsigned long long)cs.migrations, (unsigned long long)cs.samples,
		       (unsigned long long)cs.faults_waited);
	T_EQ(t_unmap(ctx, base, npages * psz), 0);
	t_destroy(ctx);
}

/* Start the agitator on the region (spread over both tiers first). */
static void agitate(const struct t_case *c)
{
	t_region_spread(&(struct t_region){ .ctx = ctx, .base = base, .psz = psz,
					    .npages = npages }, c->mode);
	t_agit_start(&AG, ctx, c->mode, base, psz, npages, SEED + 7 * c->mode + c->huge);
	t_agit_sync(&AG, 2);
}

static int agitate_end(const char *who)
{
	int bad = t_agit_check(&AG, who, 1);

	if (ctx && AG.mode != T_PARKED && AG.mode != T_POLICY)
		T_CHECK(bad, atomic_load(&AG.moved) > 0, "%s: the agitator made no progress", who);
	return bad;
}

/*
 * Move pages[0..n) to `to`, retrying -EBUSY a bounded number of times.
 * Returns the pages that did not get there; a status other than a tier or
 * -EBUSY counts in *bad. The control moves nothing and returns 0.
 */
static int move_to(void **pages, int n, int to, int *bad)
{
	int tiers[512], status[512], left = n;

	if (!ctx)
		return 0;
	for (int i = 0; i < n; i++)
		tiers[i] = to;
	for (int tries = 0; tries < 50 && left; tries++) {
		pmv_move_pages(ctx, n, pages, tiers, status, 0);
		left = 0;
		for (int i = 0; i < n; i++) {
			if (status[i] == to)
				continue;
			if (status[i] != -EBUSY) {
				printf("  FAIL move to %d: page %p: status %d (%s)\n", to, pages[i],
				       status[i], pmv_strerror(status[i]));
				(*bad)++;
				continue;
			}
			left++;
		}
		if (left)
			usleep(1000);
	}
	return left;
}

/* which page's (and which seed's) bytes does buf, at offset off, hold? */
static void identify(const uint8_t *buf, size_t len, size_t off, unsigned s0, unsigned s1)
{
	for (size_t j = 0; j < npages; j++)
		for (int k = 0; k < 2; k++) {
			unsigned s = k ? s1 : s0;
			size_t i = 0;

			while (i < len && buf[i] == t_pat(j, off + i, s))
				i++;
			if (i == len) {
				printf("  the pipe holds page %zu's bytes (seed %#x)\n", j, s);
				return;
			}
		}
	printf("  the pipe holds no page's bytes\n");
}

/*
 * The pipe's 4 KB from victim v at offset off: the victim's old bytes (the
 * pipe kept the page it referenced) or its new ones (the page never moved
 * and was rewritten in place), whole. Never another page's.
 */
static int check_pipe(int fd, size_t v, size_t off, unsigned s0, unsigned s1)
{
	uint8_t buf[T_SZ_4K];
	size_t got = 0;
	int old = 1, new = 1;

	while (got < sizeof(buf)) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - got);

		if (r <= 0) {
			printf("  FAIL read pipe: %zd (%s)\n", r, strerror(errno));
			return 1;
		}
		got += r;
	}
	for (size_t i = 0; i < sizeof(buf); i++) {
		old &= buf[i] == t_pat(v, off + i, s0);
		new &= buf[i] == t_pat(v, off + i, s1);
	}
	if (old || new) {
		printf("  pipe holds the victim's %s bytes\n", old ? "old" : "new");
		return 0;
	}
	printf("  FAIL the pipe does not hold victim page %zu's bytes\n", v);
	identify(buf, sizeof(buf), off, s0, s1);
	return 1;
}

/* the victim's 4 KB, vmspliced into a new pipe; -1 on failure */
static int splice_victim(int p[2], size_t v, size_t off)
{
	struct iovec iov = { .iov_base = page(v) + off, .iov_len = T_SZ_4K };

	if (pipe(p))
		return -1;
	if (vmsplice(p[1], &iov, 1, 0) != (ssize_t)T_SZ_4K) {
		printf("  FAIL vmsplice: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int check_all(unsigned seed, const char *what)
{
	int bad = 0;

	t_step("%s: check every byte", what);
	for (size_t i = 0; i < npages; i++) {
		long off = t_check(page(i), psz, i, seed);

		T_CHECK(bad, off < 0, "%s: page %zu byte %ld wrong", what, i, off);
	}
	return bad;
}

static void fill_all(unsigned seed)
{
	for (size_t i = 0; i < npages; i++)
		t_fill(page(i), psz, i, seed);
}

/* Kernel-mode faults wait only in the full mode; in user-mode-only they EFAULT. */
static int full_mode(void)
{
	struct pmv_ctx_stats cs;

	if (!ctx || (!pmv_ctx_stats(ctx, &cs) && cs.mode == PMV_MODE_FULL))
		return 1;
	printf("  skip: user-mode-only userfaultfd, kernel accesses may see EFAULT\n");
	return 0;
}

/* ---- vmsplice, then moves that would reuse a pooled source ---------- */

static int test_vmsplice_then_migrate(const struct t_case *c)
{
	int bad = 0, p[2], left;
	size_t v, off;
	void *others[N_4K], *victim;
	int nothers = 0;

	setup(c, 1);
	v = npages / 2;
	off = c->huge ? T_SZ_2M / 2 : 0;
	for (size_t i = 0; i < npages; i++) {
		t_fill(page(i), psz, i, SEED);
		if (i != v)
			others[nothers++] = page(i);
	}
	victim = page(v);
	/* every page on tier 1 */
	T_CHECK(bad, move_to(others, nothers, 1, &bad) == 0, "others stay off tier 1");
	T_CHECK(bad, move_to(&victim, 1, 1, &bad) == 0, "victim stays off tier 1");
	if (splice_victim(p, v, off))
		return 1 + bad;
	t_step("moves after the vmsplice");
	left = move_to(others, nothers, 0, &bad);
	T_CHECK(bad, left == 0, "%d others stay busy 1->0", left);
	left = move_to(&victim, 1, 0, &bad);
	if (left)
		printf("  note: the victim stayed busy (its page is referenced by the pipe)\n");
	left = move_to(others, nothers, 1, &bad);
	T_CHECK(bad, left == 0, "%d others stay busy 0->1", left);
	fill_all(SEED + 1);
	bad += check_all(SEED + 1, "after the rewrite");
	bad += check_pipe(p[0], v, off, SEED, SEED + 1);
	close(p[0]);
	close(p[1]);
	teardown();
	return bad;
}

static int test_vmsplice_then_exchange(const struct t_case *c)
{
	int bad = 0, p[2], left, st = 0;
	size_t v, partner, off;
	void *lo[N_4K], *hi[N_4K], *va, *pa;
	int nlo = 0, nhi = 0;

	setup(c, 1);
	/* pages below half on tier 0, the rest (the victim among them) on tier 1 */
	v = npages / 2 + npages / 4;
	partner = npages / 4;
	off = c->huge ? T_SZ_2M / 2 + T_SZ_4K : 0;
	for (size_t i = 0; i < npages; i++) {
		t_fill(page(i), psz, i, SEED + 10);
		if (i == v)
			continue;
		if (i < npages / 2)
			lo[nlo++] = page(i);
		else
			hi[nhi++] = page(i);
	}
	va = page(v);
	pa = page(partner);
	T_CHECK(bad, move_to(lo, nlo, 0, &bad) == 0, "low pages stay off tier 0");
	T_CHECK(bad, move_to(hi, nhi, 1, &bad) == 0, "high pages stay off tier 1");
	T_CHECK(bad, move_to(&va, 1, 1, &bad) == 0, "victim stays off tier 1");
	if (splice_victim(p, v, off))
		return 1 + bad;
	t_step("exchange after the vmsplice");
	if (ctx) {
		int ret = 0;

		for (int tries = 0; tries < 20; tries++) {
			ret = pmv_exchange_pages(ctx, 1, &va, &pa, &st, 0);
			if (st != -EBUSY)
				break;
			usleep(1000);
		}
		T_CHECK(bad, ret >= 0 && (st == 0 || st == -EBUSY),
			"exchange victim/partner: %d, status %d (%s)", ret, st, pmv_strerror(st));
		if (st == -EBUSY)
			printf("  note: the victim stayed busy (its page is referenced by the pipe)\n");
	}
	/* everyone else crosses over: they would take a pooled old page */
	left = move_to(lo, nlo, 1, &bad);
	T_CHECK(bad, left == 0, "%d low pages stay busy 0->1", left);
	left = move_to(hi, nhi, 0, &bad);
	T_CHECK(bad, left == 0, "%d high pages stay busy 1->0", left);
	left = move_to(lo, nlo, 0, &bad);
	T_CHECK(bad, left == 0, "%d low pages stay busy 1->0", left);
	fill_all(SEED + 11);
	bad += check_all(SEED + 11, "after the rewrite");
	bad += check_pipe(p[0], v, off, SEED + 10, SEED + 11);
	close(p[0]);
	close(p[1]);
	teardown();
	return bad;
}

/* A file for I/O in /var/tmp, else /tmp (unlinked), with O_DIRECT if odirect. */
static int tmp_file(int odirect)
{
	static const char *const dirs[] = { "/var/tmp", "/tmp" };
	char path[64];
	int fd = -1;

	for (int d = 0; d < 2 && fd < 0; d++) {
		snprintf(path, sizeof(path), "%s/t_pins.XXXXXX", dirs[d]);
		fd = mkstemp(path);
		if (fd < 0)
			continue;
		unlink(path);
		if (odirect) {
			char proc[64];
			int dfd;

			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
			dfd = open(proc, O_RDWR | O_DIRECT);
			close(fd);
			fd = dfd;
		}
	}
	return fd;
}

#define N_PIPES	4

/* Pipes fill while pages migrate, exchange, are parked or the policy runs. */
static int test_vmsplice_pipes_hold_their_bytes(const struct t_case *c)
{
	int bad = 0, p[N_PIPES][2], n = 0;
	size_t v[N_PIPES], off[N_PIPES];

	setup(c, 0);
	fill_all(SEED + 20);
	agitate(c);
	for (; n < N_PIPES; n++) {
		/* victims spread over the region, 4 KB anywhere in a 2 MB page */
		v[n] = (n * 2 + 1) * npages / (2 * N_PIPES);
		off[n] = c->huge ? (size_t)(n + 1) * 97 * T_SZ_4K : 0;
		t_step("vmsplice victim %zu", v[n]);
		if (splice_victim(p[n], v[n], off[n])) {
			bad++;
			break;
		}
		/* the agitator works on the page the pipe now references */
		t_agit_sync(&AG, 4);
	}
	t_agit_sync(&AG, 16);
	fill_all(SEED + 21);
	t_agit_sync(&AG, 16);
	bad += agitate_end("vmsplice");
	bad += check_all(SEED + 21, "after the rewrite");
	for (int i = 0; i < n; i++) {
		bad += check_pipe(p[i][0], v[i], off[i], SEED + 20, SEED + 21);
		close(p[i][0]);
		close(p[i][1]);
	}
	teardown();
	return bad;
}

/* ---- O_DIRECT -------------------------------------------------------- */

static int test_odirect_both_ways(const struct t_case *c)
{
	int bad = 0, fd, rounds = t_rounds(6);
	size_t len;
	uint8_t *plain;

	setup(c, 0);
	if (!full_mode())
		return T_SUB_SKIP;
	len = npages * psz;
	fd = tmp_file(1);
	plain = t_plain_map(len, 0);
	memset(plain, 0, T_SZ_4K);
	if (fd < 0 || pwrite(fd, plain, T_SZ_4K, 0) != (ssize_t)T_SZ_4K) {
		printf("  skip: no file system in /var/tmp or /tmp takes O_DIRECT: %s\n",
		       strerror(errno));
		return T_SUB_SKIP;
	}
	fill_all(SEED + 20);
	agitate(c);
	for (int round = 0; round < rounds && !bad; round++) {
		unsigned sw = SEED + 21 + 2 * round, sr = sw + 1;
		ssize_t r;

		/* write: managed pages -> file; check from the file */
		fill_all(sw);
		t_wait_parked(c->mode, base, psz, npages, 1);
		t_step("round %d: O_DIRECT write", round);
		r = pwrite(fd, base, len, 0);
		T_CHECK(bad, r == (ssize_t)len, "round %d: O_DIRECT write: %zd (%s)", round, r,
			strerror(errno));
		memset(plain, 0, len);
		r = pread(fd, plain, len, 0);
		T_CHECK(bad, r == (ssize_t)len, "round %d: read back: %zd (%s)", round, r,
			strerror(errno));
		for (size_t i = 0; i < npages; i++) {
			long off = t_check(plain + i * psz, psz, i, sw);

			T_CHECK(bad, off < 0, "round %d: written page %zu byte %ld wrong", round, i,
				off);
		}
		/* read: file -> managed pages; check every byte */
		for (size_t i = 0; i < npages; i++)
			t_fill(plain + i * psz, psz, i, sr);
		r = pwrite(fd, plain, len, 0);
		T_CHECK(bad, r == (ssize_t)len, "round %d: write file: %zd", round, r);
		t_wait_parked(c->mode, base, psz, npages, 1);
		t_step("round %d: O_DIRECT read", round);
		r = pread(fd, base, len, 0);
		T_CHECK(bad, r == (ssize_t)len, "round %d: O_DIRECT read: %zd (%s)", round, r,
			strerror(errno));
		bad += check_all(sr, "after the O_DIRECT read");
		t_agit_sync(&AG, 1);
	}
	bad += agitate_end("odirect");
	close(fd);
	munmap(plain, len);
	teardown();
	return bad;
}

/* ---- process_vm_readv / process_vm_writev ---------------------------- */

struct pv_req {
	uintptr_t addr;
	size_t psz, npages;
	unsigned read_seed, write_seed;
	int quit;
	int compressible;	/* t_pat_compressible: set after the helper forked */
};

/*
 * The other process: read the parent's pages and check them against
 * read_seed, then write write_seed into them. Answers its failure count.
 */
static void pv_helper(pid_t parent, int in, int out)
{
	struct pv_req q;
	uint8_t *buf = NULL;

	while (read(in, &q, sizeof(q)) == sizeof(q) && !q.quit) {
		size_t len = q.psz * q.npages;
		struct iovec local, remote = { .iov_base = (void *)q.addr, .iov_len = len };
		int bad = 0;
		ssize_t r;

		t_pat_compressible = q.compressible;
		if (!buf && (buf = t_sys_mmap(NULL, len, PROT_READ | PROT_WRITE,
					      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
			_exit(2);
		local = (struct iovec){ .iov_base = buf, .iov_len = len };
		memset(buf, 0, len);
		r = process_vm_readv(parent, &local, 1, &remote, 1, 0);
		if (r != (ssize_t)len) {
			printf("  FAIL process_vm_readv: %zd (%s)\n", r, strerror(errno));
			bad++;
		}
		for (size_t i = 0; i < q.npages; i++) {
			long off = t_check(buf + i * q.psz, q.psz, i, q.read_seed);

			if (off >= 0) {
				printf("  FAIL process_vm_readv: page %zu byte %ld wrong\n", i, off);
				bad++;
			}
			t_fill(buf + i * q.psz, q.psz, i, q.write_seed);
		}
		r = process_vm_writev(parent, &local, 1, &remote, 1, 0);
		if (r != (ssize_t)len) {
			printf("  FAIL process_vm_writev: %zd (%s)\n", r, strerror(errno));
			bad++;
		}
		fflush(stdout);
		if (write(out, &bad, sizeof(bad)) != sizeof(bad))
			_exit(2);
	}
	_exit(0);
}

static int test_process_vm_both_ways(const struct t_case *c)
{
	int bad = 0, to[2], from[2], st, rounds = t_rounds(6);
	pid_t parent = getpid(), pid;
	struct pv_req q = { 0 };

	/* the other process first: no managed memory to share with it yet */
	T_ASSERT(!pipe(to) && !pipe(from), "pipe");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		close(to[1]);
		close(from[0]);
		pv_helper(parent, to[0], from[1]);
	}
	close(to[0]);
	close(from[1]);

	setup(c, 0);
	if (full_mode()) {
		fill_all(SEED + 40);
		agitate(c);
		for (int round = 0; round < rounds && !bad; round++) {
			int hbad = -1;

			q = (struct pv_req){ (uintptr_t)base, psz, npages, SEED + 41 + 2 * round,
					     SEED + 42 + 2 * round, 0, t_pat_compressible };
			/* this process writes, the other one reads */
			fill_all(q.read_seed);
			t_wait_parked(c->mode, base, psz, npages, 1);
			t_step("round %d: process_vm_readv, then writev, by the other process",
			       round);
			T_ASSERT(write(to[1], &q, sizeof(q)) == sizeof(q), "write request");
			T_CHECK(bad, read(from[0], &hbad, sizeof(hbad)) == sizeof(hbad) && hbad == 0,
				"round %d: the other process saw %d failures", round, hbad);
			/* it wrote; this one reads */
			bad += check_all(q.write_seed, "after process_vm_writev");
			t_agit_sync(&AG, 1);
		}
		bad += agitate_end("process_vm");
	}
	q.quit = 1;
	if (write(to[1], &q, sizeof(q)) != sizeof(q))
		bad++;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	T_CHECK(bad, WIFEXITED(st) && WEXITSTATUS(st) == 0, "the other process ended badly");
	teardown();
	return bad;
}

/* ---- io_uring registered buffers (raw syscalls) ---------------------- */

struct ring {
	int fd;
	unsigned *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
};

/* 0, or -errno (ENOSYS, EPERM: io_uring is off here). */
static int ring_init(struct ring *r)
{
	struct io_uring_params p;
	size_t sq_sz, cq_sz;
	char *sq, *cq;

	memset(&p, 0, sizeof(p));
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (r->fd < 0)
		return -errno;
	sq_sz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
	cq_sz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	if (p.features & IORING_FEAT_SINGLE_MMAP)
		sq_sz = cq_sz = sq_sz > cq_sz ? sq_sz : cq_sz;
	sq = t_sys_mmap(NULL, sq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			IORING_OFF_SQ_RING);
	T_ASSERT(sq != MAP_FAILED, "mmap SQ ring: %s", strerror(errno));
	cq = sq;
	if (!(p.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = t_sys_mmap(NULL, cq_sz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
				r->fd, IORING_OFF_CQ_RING);
		T_ASSERT(cq != MAP_FAILED, "mmap CQ ring: %s", strerror(errno));
	}
	r->sqes = t_sys_mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe),
			     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
			     IORING_OFF_SQES);
	T_ASSERT(r->sqes != MAP_FAILED, "mmap SQEs: %s", strerror(errno));
	r->sq_tail = (unsigned *)(sq + p.sq_off.tail);
	r->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
	r->sq_array = (unsigned *)(sq + p.sq_off.array);
	r->cq_head = (unsigned *)(cq + p.cq_off.head);
	r->cq_tail = (unsigned *)(cq + p.cq_off.tail);
	r->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
	r->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
	return 0;
}

/* One READ_FIXED / WRITE_FIXED of buffer idx at addr; the cqe's res. */
static int ring_rw(struct ring *r, int op, int fd, void *addr, unsigned len, off_t off,
		   unsigned idx)
{
	unsigned tail = *r->sq_tail, head, slot = tail & *r->sq_mask;
	struct io_uring_sqe *sqe = &r->sqes[slot];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = (uint8_t)op;
	sqe->fd = fd;
	sqe->addr = (uintptr_t)addr;
	sqe->len = len;
	sqe->off = (uint64_t)off;
	sqe->buf_index = (uint16_t)idx;
	r->sq_array[slot] = slot;
	/* the kernel reads the SQE once it sees the new tail */
	__atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -errno;
	head = *r->cq_head;
	/* the CQE is complete once its tail is published */
	while (__atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) == head)
		;
	res = r->cqes[head & *r->cq_mask].res;
	__atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
	return res;
}

/*
 * Register every page of the region as a fixed buffer (the kernel pins
 * it, faulting in parked pages), then for each round: the program writes,
 * WRITE_FIXED sends the pinned pages to a file, which must hold the
 * program's bytes; the file gets new bytes, READ_FIXED brings them into
 * the pinned pages, and the program must read them. A move of a pinned
 * page that was not refused would split the two. Then unregister, and the
 * same check through plain reads while the pages move again.
 */
static int test_io_uring_fixed_buffers(const struct t_case *c)
{
	struct iovec iov[N_4K];
	struct ring r;
	int bad = 0, fd, ret, rounds = t_rounds(6);
	uint8_t *plain;
	size_t len;

	setup(c, 0);
	if (!full_mode())
		return T_SUB_SKIP;
	len = npages * psz;
	ret = ring_init(&r);
	if (ret) {
		printf("  skip: io_uring_setup: %s\n", strerror(-ret));
		return T_SUB_SKIP;
	}
	fd = tmp_file(0);
	T_ASSERT(fd >= 0, "temporary file: %s", strerror(errno));
	plain = t_plain_map(len, 0);
	fill_all(SEED + 60);
	agitate(c);
	for (size_t i = 0; i < npages; i++)
		iov[i] = (struct iovec){ .iov_base = page(i), .iov_len = psz };
	t_wait_parked(c->mode, base, psz, npages, 1);
	t_step("IORING_REGISTER_BUFFERS");
	ret = (int)syscall(__NR_io_uring_register, r.fd, IORING_REGISTER_BUFFERS, iov,
			   (unsigned)npages);
	T_ASSERT(ret == 0, "IORING_REGISTER_BUFFERS: %s", strerror(errno));
	bad += check_all(SEED + 60, "after IORING_REGISTER_BUFFERS");
	for (int round = 0; round < rounds && !bad; round++) {
		unsigned sw = SEED + 61 + 2 * round, sr = sw + 1;

		fill_all(sw);
		t_agit_sync(&AG, 2);
		t_step("round %d: WRITE_FIXED", round);
		for (size_t i = 0; i < npages; i++) {
			ret = ring_rw(&r, IORING_OP_WRITE_FIXED, fd, page(i), (unsigned)psz,
				      (off_t)(i * psz), (unsigned)i);
			T_CHECK(bad, ret == (int)psz, "round %d: WRITE_FIXED page %zu: %d", round,
				i, ret);
		}
		T_CHECK(bad, pread(fd, plain, len, 0) == (ssize_t)len, "pread: %s",
			strerror(errno));
		for (size_t i = 0; i < npages; i++) {
			long off = t_check(plain + i * psz, psz, i, sw);

			T_CHECK(bad, off < 0, "round %d: WRITE_FIXED sent page %zu byte %ld "
				"wrong: the pinned page is not the mapped one", round, i, off);
			t_fill(plain + i * psz, psz, i, sr);
		}
		T_CHECK(bad, pwrite(fd, plain, len, 0) == (ssize_t)len, "pwrite: %s",
			strerror(errno));
		t_agit_sync(&AG, 2);
		t_step("round %d: READ_FIXED", round);
		for (size_t i = 0; i < npages; i++) {
			ret = ring_rw(&r, IORING_OP_READ_FIXED, fd, page(i), (unsigned)psz,
				      (off_t)(i * psz), (unsigned)i);
			T_CHECK(bad, ret == (int)psz, "round %d: READ_FIXED page %zu: %d", round,
				i, ret);
		}
		bad += check_all(sr, "after READ_FIXED into the registered buffers");
	}
	t_step("IORING_UNREGISTER_BUFFERS");
	T_CHECK(bad, syscall(__NR_io_uring_register, r.fd, IORING_UNREGISTER_BUFFERS, NULL, 0)
		== 0, "IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
	t_agit_sync(&AG, 4);
	bad += check_all(SEED + 62 + 2 * (rounds - 1), "after unregister and moves");
	fill_all(SEED + 99);
	t_agit_sync(&AG, 4);
	bad += check_all(SEED + 99, "writes after unregister");
	bad += agitate_end("io_uring");
	close(r.fd);
	close(fd);
	munmap(plain, len);
	teardown();
	return bad;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	for (int h = 0; h < 2; h++) {
		T_CASE(&s, test_vmsplice_then_migrate, -1, h);
		T_CASE(&s, test_vmsplice_then_exchange, -1, h);
	}
	T_CASE_ALL_FAR(&s, test_vmsplice_pipes_hold_their_bytes);
	T_CASE_ALL_FAR(&s, test_odirect_both_ways);
	T_CASE_ALL_FAR(&s, test_process_vm_both_ways);
	T_CASE_ALL_FAR(&s, test_io_uring_fixed_buffers);
	return t_suite_end(&s);
}
