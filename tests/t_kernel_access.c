/* SPDX-License-Identifier: MIT */
/*
 * Kernel-mode accesses to managed memory. In PMV_MODE_FULL a copy_to_user,
 * get_user_pages or futex access that meets a page never touched, or one in
 * its remap window, must wait in a fault and then succeed, never EFAULT:
 *  (a) read(2) from a pipe into never-touched 4 KB and 2 MB pages;
 *  (b) pipe write(2)/read(2) from and into pages a mover keeps migrating;
 *  (c) process_vm_readv/writev (GUP) on migrating and never-touched pages;
 *  (d) FUTEX_WAIT on never-touched pages (EAGAIN, not EFAULT), and
 *      wait/wake handshakes on words of migrating pages;
 *  (e) O_DIRECT write from and read into migrating memory, if a file
 *      system here supports O_DIRECT.
 * Every check is byte for byte against a shadow copy. Each part is a
 * sub-test in a watchdog child with a context of its own; PMV_TEST_ONLY=name
 * runs one.
 */
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "harness.h"

#define SMALL_PAGES	64
#define HUGE_PAGES	4	/* migrating, (a), (c), (d) */
#define SEED		0xacce55
#define PIPE_MAX	65536	/* default pipe capacity: a write never blocks */

/* small-page roles */
#define S_MIG		10	/* migrating */
#define S_FRESH_A	1	/* never touched before (a) */
#define S_FRESH_C	20	/* never touched before (c) */
#define S_FUTEX_P	30	/* never touched before FUTEX_WAIT (private) */
#define S_FUTEX_S	31	/* never touched before FUTEX_WAIT (shared) */
#define S_FRESH_E	40	/* never touched before the O_DIRECT read */

static pmv_ctx *ctx;
static char *small, *huge;	/* huge is NULL without THP */
static uint8_t *shadow_s, *shadow_h;	/* what the migrating pages hold */
static atomic_int stop;
static atomic_long moves, bad_status;

static char *mig_page(int h)
{
	return h ? huge : small + S_MIG * T_SZ_4K;
}

static uint8_t *mig_shadow(int h)
{
	return h ? shadow_h : shadow_s;
}

static size_t mig_size(int h)
{
	return h ? T_SZ_2M : T_SZ_4K;
}

static int nmig(void)
{
	return huge ? 2 : 1;
}

static void *mover(void *arg)
{
	void *pages[2] = { mig_page(0), huge };

	(void)arg;
	for (int to = 1; !atomic_load(&stop); to ^= 1) {
		t_move_count(ctx, nmig(), pages, to, &moves, &bad_status);
	}
	return NULL;
}

static uint64_t migrations(void)
{
	struct pmv_ctx_stats cs;

	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	return cs.migrations;
}

static void expect_zero(const char *p, size_t len, const char *what)
{
	for (size_t i = 0; i < len; i++)
		T_ASSERT(!p[i], "%s: byte %zu is 0x%02x, want 0", what, i, (uint8_t)p[i]);
}

static void expect_tier(void *p, const char *what)
{
	int st;

	T_EQ(pmv_move_pages(ctx, 1, &p, NULL, &st, 0), 0);
	T_ASSERT(st == 0 || st == 1, "%s: status %d (%s)", what, st, pmv_strerror(st));
}

static void fill_buf(uint8_t *b, size_t len, size_t k)
{
	for (size_t i = 0; i < len; i++)
		b[i] = t_pat(k, i, SEED);
}

/* (a) the kernel's copy_to_user meets a page never touched */
static void check_read_into_untouched(int pfd[2], uint8_t *buf)
{
	struct { char *p; size_t span, off, len; const char *what; } c[3] = {
		{ small + S_FRESH_A * T_SZ_4K, T_SZ_4K, 0, T_SZ_4K, "4K page" },
		/* two never-touched pages in one copy */
		{ small + (S_FRESH_A + 1) * T_SZ_4K, 2 * T_SZ_4K, 2048, T_SZ_4K, "4K pair" },
		{ huge ? huge + T_SZ_2M : NULL, T_SZ_2M, (1 << 20) + 100, PIPE_MAX, "2M page" },
	};

	for (int i = 0; i < 3; i++) {
		if (!c[i].p)
			continue;
		fill_buf(buf, c[i].len, 100 + i);
		T_EQ(write(pfd[1], buf, c[i].len), c[i].len);
		T_EQ(read(pfd[0], c[i].p + c[i].off, c[i].len), c[i].len);
		T_ASSERT(!memcmp(c[i].p + c[i].off, buf, c[i].len), "%s: wrong data", c[i].what);
		/* first content is zero around what the kernel wrote */
		expect_zero(c[i].p, c[i].off, c[i].what);
		expect_zero(c[i].p + c[i].off + c[i].len, c[i].span - c[i].off - c[i].len,
			    c[i].what);
		expect_tier(c[i].p, c[i].what);
		expect_tier(c[i].p + c[i].span - 1, c[i].what);
	}
	printf("(a) read(2) into never-touched pages: ok\n");
}

/* (b) pipe copies to and from migrating pages */
static void check_pipe_copies(int pfd[2], uint8_t *buf)
{
	unsigned seed = 5;
	uint64_t mig0 = migrations();
	double end = t_now() + t_duration(2);
	long n = 0;

	/* a fixed amount of work, and meeting some migrations; never a rate */
	while (t_now() < end || n < 2000 || migrations() - mig0 < 10) {
		int h = rand_r(&seed) % nmig();
		size_t max = h ? PIPE_MAX : T_SZ_4K;
		size_t len = 1 + rand_r(&seed) % max;
		size_t off = rand_r(&seed) % (mig_size(h) - len + 1);
		char *p = mig_page(h);
		ssize_t r;

		if (n & 1) {
			/* into the page: copy_to_user */
			fill_buf(buf, len, n);
			T_EQ(write(pfd[1], buf, len), len);
			r = read(pfd[0], p + off, len);
			T_ASSERT(r == (ssize_t)len, "read into migrating page: %zd (%s), want %zu",
				 r, r < 0 ? strerror(errno) : "short", len);
			memcpy(mig_shadow(h) + off, buf, len);
			T_ASSERT(!memcmp(p + off, buf, len), "iteration %ld: wrong data", n);
		} else {
			/* from the page: copy_from_user */
			r = write(pfd[1], p + off, len);
			T_ASSERT(r == (ssize_t)len, "write from migrating page: %zd (%s), want %zu",
				 r, r < 0 ? strerror(errno) : "short", len);
			T_EQ(read(pfd[0], buf, len), len);
			T_ASSERT(!memcmp(buf, mig_shadow(h) + off, len),
				 "iteration %ld: pipe got wrong data", n);
		}
		n++;
		t_beat();
	}
	for (int h = 0; h < nmig(); h++)
		T_ASSERT(!memcmp(mig_page(h), mig_shadow(h), mig_size(h)), "page %d differs", h);
	printf("(b) %ld pipe copies with migrating pages, %llu migrations: ok\n", n,
	       (unsigned long long)(migrations() - mig0));
}

/* (c) GUP: process_vm_readv/writev on our own pid */
static void check_vm_readv_writev(uint8_t *buf)
{
	unsigned seed = 9;
	double end = t_now() + t_duration(1);
	uint64_t mig0 = migrations();
	long n = 0;
	struct iovec l, r[2];
	ssize_t got;

	while (t_now() < end || n < 500) {
		int h = rand_r(&seed) % nmig();
		size_t len = 1 + rand_r(&seed) % (h ? PIPE_MAX : T_SZ_4K);
		size_t off = rand_r(&seed) % (mig_size(h) - len + 1);

		l = (struct iovec){ buf, len };
		r[0] = (struct iovec){ mig_page(h) + off, len };
		if (n % 3 == 2) {
			/* write: a pinned page must not be lost to the migration */
			fill_buf(buf, len, 5000 + n);
			got = process_vm_writev(getpid(), &l, 1, r, 1, 0);
			T_ASSERT(got == (ssize_t)len, "process_vm_writev: %zd (%s), want %zu",
				 got, got < 0 ? strerror(errno) : "short", len);
			memcpy(mig_shadow(h) + off, buf, len);
		} else {
			got = process_vm_readv(getpid(), &l, 1, r, 1, 0);
			T_ASSERT(got == (ssize_t)len, "process_vm_readv: %zd (%s), want %zu",
				 got, got < 0 ? strerror(errno) : "short", len);
			T_ASSERT(!memcmp(buf, mig_shadow(h) + off, len),
				 "process_vm_readv: wrong data");
		}
		n++;
		t_beat();
	}
	/* both migrating pages in one call */
	if (huge) {
		uint8_t *big = malloc(T_SZ_4K + T_SZ_2M);

		T_ASSERT(big, "malloc");
		l = (struct iovec){ big, T_SZ_4K + T_SZ_2M };
		r[0] = (struct iovec){ mig_page(0), T_SZ_4K };
		r[1] = (struct iovec){ mig_page(1), T_SZ_2M };
		T_EQ(process_vm_readv(getpid(), &l, 1, r, 2, 0), T_SZ_4K + T_SZ_2M);
		T_ASSERT(!memcmp(big, shadow_s, T_SZ_4K), "4K page differs");
		T_ASSERT(!memcmp(big + T_SZ_4K, shadow_h, T_SZ_2M), "2M page differs");
		free(big);
	}
	for (int h = 0; h < nmig(); h++)
		T_ASSERT(!memcmp(mig_page(h), mig_shadow(h), mig_size(h)), "page %d differs", h);

	/* writev into never-touched pages */
	fill_buf(buf, 3000, 77);
	l = (struct iovec){ buf, 3000 };
	r[0] = (struct iovec){ small + S_FRESH_C * T_SZ_4K + 1000, 3000 };
	T_EQ(process_vm_writev(getpid(), &l, 1, r, 1, 0), 3000);
	T_ASSERT(!memcmp(r[0].iov_base, buf, 3000), "writev into a fresh page: wrong data");
	expect_zero(small + S_FRESH_C * T_SZ_4K, 1000, "fresh 4K page");
	expect_zero(small + S_FRESH_C * T_SZ_4K + 4000, 96, "fresh 4K page");
	if (huge) {
		char *p = huge + 2 * T_SZ_2M;

		fill_buf(buf, PIPE_MAX, 78);
		l = (struct iovec){ buf, PIPE_MAX };
		r[0] = (struct iovec){ p + 12345, PIPE_MAX };
		T_EQ(process_vm_writev(getpid(), &l, 1, r, 1, 0), PIPE_MAX);
		T_ASSERT(!memcmp(p + 12345, buf, PIPE_MAX), "writev into a fresh 2M page");
		expect_zero(p, 12345, "fresh 2M page");
		expect_zero(p + 12345 + PIPE_MAX, T_SZ_2M - 12345 - PIPE_MAX, "fresh 2M page");
	}
	printf("(c) %ld process_vm_readv/writev on migrating pages, %llu migrations, "
	       "writev into fresh pages: ok\n", n, (unsigned long long)(migrations() - mig0));
}

static long futex(void *uaddr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

struct waiter {
	_Atomic uint32_t *word;
	int op;			/* FUTEX_WAIT or FUTEX_WAIT_PRIVATE */
	atomic_long acks, timeouts, errors;
	pthread_t t;
};

#define FUTEX_DONE	0xffffffffu

static int wake_op(const struct waiter *w)
{
	return w->op == FUTEX_WAIT ? FUTEX_WAKE : FUTEX_WAKE_PRIVATE;
}

static void *waiter(void *arg)
{
	struct waiter *w = arg;
	uint32_t seen = 0;	/* the word's value before the first wake */

	for (;;) {
		uint32_t v = atomic_load(w->word);
		struct timespec ts = { 5, 0 };

		if (v == FUTEX_DONE)
			return NULL;
		if (v != seen) {
			seen = v;
			atomic_fetch_add(&w->acks, 1);
			continue;
		}
		if (futex(w->word, w->op, seen, &ts) < 0) {
			if (errno == ETIMEDOUT)
				atomic_fetch_add(&w->timeouts, 1);
			else if (errno != EAGAIN && errno != EINTR) {
				fprintf(stderr, "FUTEX_WAIT: %s\n", strerror(errno));
				atomic_fetch_add(&w->errors, 1);
			}
		}
	}
}

/* (d) futexes on never-touched and on migrating pages */
static void check_futexes(void)
{
	struct timespec ts = { 1, 0 };
	struct waiter w[2];
	double end = t_now() + t_duration(1);
	uint32_t k = 0;
	long r;

	/* value 1 against a fresh page's 0: EAGAIN, after a first touch */
	r = futex(small + S_FUTEX_P * T_SZ_4K + 64, FUTEX_WAIT_PRIVATE, 1, &ts);
	T_ASSERT(r == -1 && errno == EAGAIN, "private FUTEX_WAIT on a fresh page: %ld (%s)",
		 r, strerror(errno));
	r = futex(small + S_FUTEX_S * T_SZ_4K + 64, FUTEX_WAIT, 1, &ts);
	T_ASSERT(r == -1 && errno == EAGAIN, "shared FUTEX_WAIT on a fresh page: %ld (%s)",
		 r, strerror(errno));
	expect_tier(small + S_FUTEX_P * T_SZ_4K, "private futex page");
	expect_tier(small + S_FUTEX_S * T_SZ_4K, "shared futex page");
	if (huge) {
		r = futex(huge + 3 * T_SZ_2M + 64, FUTEX_WAIT, 1, &ts);
		T_ASSERT(r == -1 && errno == EAGAIN, "FUTEX_WAIT on a 2M page: %ld (%s)",
			 r, strerror(errno));
	}

	/* wait/wake handshakes on words of the migrating pages */
	memset(w, 0, sizeof(w));
	w[0].word = (_Atomic uint32_t *)(mig_page(0) + 128);
	w[0].op = FUTEX_WAIT_PRIVATE;
	w[1].word = (_Atomic uint32_t *)(huge ? huge + 4096 + 128 : mig_page(0) + 256);
	w[1].op = FUTEX_WAIT;	/* shared key: mm + address for anonymous memory */
	for (int i = 0; i < 2; i++) {
		atomic_store(w[i].word, 0);
		pthread_create(&w[i].t, NULL, waiter, &w[i]);
	}
	while (t_now() < end || k < 1000) {
		k++;
		t_beat();
		for (int i = 0; i < 2; i++) {
			double limit = t_now() + 10;

			atomic_store(w[i].word, k);
			r = futex(w[i].word, wake_op(&w[i]), 1, NULL);
			T_ASSERT(r >= 0, "FUTEX_WAKE on a migrating page: %s", strerror(errno));
			while (atomic_load(&w[i].acks) < (long)k) {
				T_ASSERT(t_now() < limit, "waiter %d never woke for %u", i, k);
				sched_yield();
			}
		}
	}
	for (int i = 0; i < 2; i++) {
		atomic_store(w[i].word, FUTEX_DONE);
		futex(w[i].word, wake_op(&w[i]), 1, NULL);
		pthread_join(w[i].t, NULL);
		T_EQ(atomic_load(&w[i].errors), 0);
		T_EQ(atomic_load(&w[i].timeouts), 0);
	}
	/* keep the shadows true for the final check */
	memcpy(shadow_s + 128, mig_page(0) + 128, 4);
	if (huge)
		memcpy(shadow_h + 4096 + 128, huge + 4096 + 128, 4);
	else
		memcpy(shadow_s + 256, mig_page(0) + 256, 4);
	printf("(d) FUTEX_WAIT on fresh pages: EAGAIN; %u wait/wake rounds: ok\n", k);
}

static int open_direct(char *path, size_t size)
{
	const char *dirs[] = { "/var/tmp", "." };

	for (int i = 0; i < 2; i++) {
		int fd;

		snprintf(path, size, "%s/t_kernel_access.%d", dirs[i], (int)getpid());
		fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
		if (fd >= 0) {
			unlink(path);
			return fd;
		}
		if (errno != EINVAL)
			printf("note: %s: %s\n", path, strerror(errno));
	}
	return -1;
}

/* (e) O_DIRECT pins user pages for the device's DMA (or its copy) */
static void check_odirect(void)
{
	char path[256];
	int fd = open_direct(path, sizeof(path));
	double end = t_now() + t_duration(1);
	unsigned seed = 11;
	long n = 0;
	ssize_t r;

	if (fd < 0)
		t_skip("(e): no file system here takes O_DIRECT");
	/* write from a migrating page; probe that O_DIRECT works at all */
	r = pwrite(fd, mig_page(0), T_SZ_4K, 0);
	if (r < 0 && errno == EINVAL) {
		close(fd);
		t_skip("(e): %s: O_DIRECT write: EINVAL", path);
	}
	T_ASSERT(r == (ssize_t)T_SZ_4K, "O_DIRECT write: %zd (%s)", r, strerror(errno));
	/* read into a never-touched page */
	r = pread(fd, small + S_FRESH_E * T_SZ_4K, T_SZ_4K, 0);
	T_ASSERT(r == (ssize_t)T_SZ_4K, "O_DIRECT read into a fresh page: %zd (%s)", r,
		 strerror(errno));
	T_ASSERT(!memcmp(small + S_FRESH_E * T_SZ_4K, shadow_s, T_SZ_4K),
		 "O_DIRECT read into a fresh page: wrong data");

	while (t_now() < end || n < 200) {
		int h = rand_r(&seed) % nmig();

		t_beat();
		size_t blocks = mig_size(h) / T_SZ_4K;
		size_t nb = 1 + rand_r(&seed) % (h ? 16 : 1);
		size_t off = (rand_r(&seed) % (blocks - nb + 1)) * T_SZ_4K;
		size_t len = nb * T_SZ_4K;
		/* the copy goes back into page g at goff; a 4K page takes one block */
		int g = nb > 1 ? 1 : rand_r(&seed) % nmig();
		size_t goff = (rand_r(&seed) % (mig_size(g) / T_SZ_4K - nb + 1)) * T_SZ_4K;

		r = pwrite(fd, mig_page(h) + off, len, 0);
		T_ASSERT(r == (ssize_t)len, "O_DIRECT write from a migrating page: %zd (%s)",
			 r, strerror(errno));
		/* ...and read it back into another place under migration */
		r = pread(fd, mig_page(g) + goff, len, 0);
		T_ASSERT(r == (ssize_t)len, "O_DIRECT read into a migrating page: %zd (%s)",
			 r, strerror(errno));
		memmove(mig_shadow(g) + goff, mig_shadow(h) + off, len);
		if (memcmp(mig_page(g) + goff, mig_shadow(g) + goff, len)) {
			size_t i = 0, nbad = 0;
			const uint8_t *pg = (const uint8_t *)mig_page(g) + goff;

			while (pg[i] == mig_shadow(g)[goff + i])
				i++;
			for (size_t j = 0; j < len; j++)
				nbad += pg[j] != mig_shadow(g)[goff + j];
			T_FAIL("O_DIRECT round %ld: %zu bytes from %s page +%zu into %s page +%zu: "
			       "%zu bad bytes, first at %zu: 0x%02x, want 0x%02x", n, len,
			       h ? "2M" : "4K", off, g ? "2M" : "4K", goff, nbad, i, pg[i],
			       mig_shadow(g)[goff + i]);
		}
		n++;
	}
	close(fd);
	for (int h = 0; h < nmig(); h++)
		T_ASSERT(!memcmp(mig_page(h), mig_shadow(h), mig_size(h)), "page %d differs", h);
	printf("(e) %ld O_DIRECT write+read rounds on migrating pages: ok\n", n);
}

/* ---- sub-tests: each in a child, on a context and regions of its own ---- */

static uint8_t *buf;
static int pfd[2];
static pthread_t mv;

/* The context and regions; with mig, the migrating pages and their mover. */
static void setup(bool mig)
{
	buf = malloc(PIPE_MAX);
	T_ASSERT(buf, "malloc");
	ctx = t_ctx(2, NULL, 0);
	small = pmv_mmap(ctx, SMALL_PAGES * T_SZ_4K, 0, 0);
	T_ASSERT(small, "pmv_mmap: %s", strerror(errno));
	huge = NULL;
	if (t_thp_enabled()) {
		huge = pmv_mmap(ctx, HUGE_PAGES * T_SZ_2M, 0, PMV_HUGE);
		T_ASSERT(huge, "pmv_mmap huge: %s", strerror(errno));
	}
	T_EQ(pipe(pfd), 0);
	if (!mig)
		return;
	shadow_s = malloc(T_SZ_4K);
	shadow_h = malloc(T_SZ_2M);
	T_ASSERT(shadow_s && shadow_h, "malloc");
	for (int h = 0; h < nmig(); h++) {
		t_fill(mig_page(h), mig_size(h), h, SEED);
		memcpy(mig_shadow(h), mig_page(h), mig_size(h));
	}
	T_EQ(pthread_create(&mv, NULL, mover, NULL), 0);
}

/* Stop the mover; the migrating pages hold their shadows, every move went right. */
static int finish(bool mig)
{
	if (mig) {
		atomic_store(&stop, 1);
		pthread_join(mv, NULL);
		for (int h = 0; h < nmig(); h++)
			T_ASSERT(!memcmp(mig_page(h), mig_shadow(h), mig_size(h)),
				 "page %d differs", h);
		T_EQ(atomic_load(&bad_status), 0);
		T_ASSERT(atomic_load(&moves) > 0, "no progress: %ld moves", atomic_load(&moves));
	}
	pmv_destroy(ctx);
	return 0;
}

static int test_read_into_untouched_pages_waits_for_the_fault(const struct t_case *c)
{
	(void)c;
	setup(false);
	check_read_into_untouched(pfd, buf);
	return finish(false);
}

static int test_pipe_copies_from_and_into_migrating_pages(const struct t_case *c)
{
	(void)c;
	setup(true);
	check_pipe_copies(pfd, buf);
	return finish(true);
}

static int test_process_vm_readv_writev_on_migrating_pages(const struct t_case *c)
{
	(void)c;
	setup(true);
	check_vm_readv_writev(buf);
	return finish(true);
}

static int test_futexes_on_untouched_and_migrating_pages(const struct t_case *c)
{
	(void)c;
	setup(true);
	check_futexes();
	return finish(true);
}

static int test_odirect_from_and_into_migrating_pages(const struct t_case *c)
{
	(void)c;
	setup(true);
	check_odirect();
	return finish(true);
}

int main(void)
{
	struct pmv_ctx_stats cs;
	struct t_suite s;

	t_suite_init(&s);
	ctx = t_ctx(2, NULL, 0);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	pmv_destroy(ctx);
	if (cs.mode != PMV_MODE_FULL)
		t_skip("context is in user-mode-only mode: kernel accesses are not served");
	if (!t_thp_enabled())
		printf("note: THP disabled, 2 MB pages are left out\n");
	T_CASE_ONE(&s, test_read_into_untouched_pages_waits_for_the_fault, 1);
	T_CASE_ONE(&s, test_pipe_copies_from_and_into_migrating_pages, 1);
	T_CASE_ONE(&s, test_process_vm_readv_writev_on_migrating_pages, 1);
	T_CASE_ONE(&s, test_futexes_on_untouched_and_migrating_pages, 1);
	T_CASE_ONE(&s, test_odirect_from_and_into_migrating_pages, 1);
	return t_suite_end(&s);
}
