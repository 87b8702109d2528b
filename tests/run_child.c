/* SPDX-License-Identifier: MIT */
/*
 * run_child SUBTEST: a plain program (no libpagemove) that t_run.sh runs
 * under `pagemove run`; each sub-test does what programs do to their
 * memory and checks every byte. "Managed" is read from the kernel: the
 * VMA of a managed block is registered with a userfaultfd ("um" in
 * /proc/self/smaps VmFlags). Fixed seeds. Exit 0 pass, 1 fail.
 */
#include <malloc.h>
#include <pthread.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MB (1UL << 20)

extern char **environ;
static const char *self;
static int fails;

#define CHECK(cond, ...)							\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__);	\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
			fails++;					\
		}							\
	} while (0)

static uint8_t pat(size_t i, unsigned seed)
{
	uint64_t x = (i >> 3) * 0x9E3779B97F4A7C15ULL ^ seed;

	return (uint8_t)(x >> 29) ^ (uint8_t)i;
}

static void fill(void *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		((uint8_t *)p)[i] = pat(i, seed);
}

/* index of the first wrong byte, or -1 */
static long check(const void *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (((const uint8_t *)p)[i] != pat(i, seed))
			return (long)i;
	return -1;
}

static long zeros(const void *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (((const uint8_t *)p)[i])
			return (long)i;
	return -1;
}

/* Is addr in a VMA registered with a userfaultfd (managed)? */
static int managed(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long a = (unsigned long)addr, s, e;
	int in = 0, ret = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = a >= s && a < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			ret = strstr(line, " um") != NULL;
			break;
		}
	}
	fclose(f);
	return ret;
}

static int t_malloc_calloc_realloc(void)
{
	size_t sizes[] = { 1 * MB, 3 * MB + 123, 8 * MB, 17 * MB + 4095 };
	unsigned seed = 1;

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k];
		uint8_t *p = malloc(n), *q;
		long bad;

		CHECK(p, "malloc(%zu)", n);
		if (!p)
			continue;
		CHECK(managed(p) == 1, "malloc(%zu) at %p not managed", n, (void *)p);
		fill(p, n, seed);
		/* growth: a new block with the old bytes */
		q = realloc(p, 2 * n + 5000);
		CHECK(q, "realloc grow");
		if (!q)
			continue;
		CHECK(managed(q) == 1, "realloc'd %p not managed", (void *)q);
		CHECK((bad = check(q, n, seed)) < 0, "realloc grow lost byte %ld of %zu", bad, n);
		fill(q, 2 * n + 5000, seed + 1);
		/* shrink in place */
		p = realloc(q, n / 2);
		CHECK(p, "realloc shrink");
		CHECK((bad = check(p, n / 2, seed + 1)) < 0, "realloc shrink lost byte %ld", bad);
		free(p);
		seed += 2;
	}
	/* calloc reads zero, also in memory just freed */
	for (int r = 0; r < 3; r++) {
		uint8_t *c = calloc(1, 6 * MB);
		long bad;

		CHECK(c && managed(c) == 1, "calloc not managed");
		if (!c)
			continue;
		CHECK((bad = zeros(c, 6 * MB)) < 0, "calloc byte %ld not zero", bad);
		memset(c, 0xa5, 6 * MB);
		free(c);
	}
	/* aligned, and a small block stays glibc's */
	void *a = NULL;
	CHECK(posix_memalign(&a, 4096, 2 * MB) == 0 && a && ((uintptr_t)a & 4095) == 0,
	      "posix_memalign");
	if (a) {
		fill(a, 2 * MB, 9);
		CHECK(check(a, 2 * MB, 9) < 0, "posix_memalign block");
		CHECK(malloc_usable_size(a) >= 2 * MB, "malloc_usable_size");
		free(a);
	}
	void *s = malloc(1000);
	CHECK(s && managed(s) == 0, "a 1000-byte block is managed");
	free(s);
	return fails;
}

/* A bad round is a block that is not managed, or one whose bytes changed:
 * the first of each is kept, to tell the two apart. */
struct worker {
	int id, rounds, unmanaged, changed;
	size_t len;
	long byte;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int r = 0; r < w->rounds; r++) {
		size_t n = (1 + (size_t)((w->id * 7 + r) % 5)) * MB + (size_t)r * 4096;
		uint8_t *p = malloc(n);
		long bad;

		if (!p || managed(p) != 1) {
			w->unmanaged++;
			free(p);
			continue;
		}
		fill(p, n, (unsigned)(w->id * 100 + r));
		usleep(1000);
		if ((bad = check(p, n, (unsigned)(w->id * 100 + r))) >= 0 && !w->changed++) {
			w->len = n;
			w->byte = bad;
		}
		free(p);
	}
	return NULL;
}

/* Threads started before the first large block (racing the context's
 * creation) and after it. */
static int t_threads(void)
{
	enum { N = 4 };
	pthread_t th[2 * N];
	struct worker w[2 * N];

	for (int i = 0; i < N; i++) {
		w[i] = (struct worker){ .id = i, .rounds = 20 };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	void *first = malloc(4 * MB);	/* maybe not the first: a thread may win */
	fill(first, 4 * MB, 77);
	for (int i = N; i < 2 * N; i++) {
		w[i] = (struct worker){ .id = i, .rounds = 20 };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 2 * N; i++) {
		pthread_join(th[i], NULL);
		CHECK(w[i].unmanaged == 0, "thread %d: %d blocks not managed", i, w[i].unmanaged);
		CHECK(w[i].changed == 0, "thread %d: %d blocks changed, first at byte %ld of %zu",
		      i, w[i].changed, w[i].byte, w[i].len);
	}
	CHECK(check(first, 4 * MB, 77) < 0, "main thread's block");
	free(first);
	return fails;
}

/* fork: the child reads the parent's bytes, its writes are its own; it
 * allocates managed blocks of its own context and frees the parent's */
static int t_fork(void)
{
	size_t n = 24 * MB;
	uint8_t *p = malloc(n);
	long bad;
	int st;

	fill(p, n, 5);
	for (int round = 0; round < 2; round++) {
		pid_t c = fork();

		if (c == 0) {
			int f = 0;
			uint8_t *q;

			f += check(p, n, 5) >= 0;
			fill(p, n, 6);
			f += check(p, n, 6) >= 0;
			q = malloc(8 * MB);	/* the child's own context */
			f += managed(q) != 1;
			fill(q, 8 * MB, 7);
			f += check(q, 8 * MB, 7) >= 0;
			free(q);
			free(p);	/* the parent's block, in the child */
			_exit(f ? 1 : 0);
		}
		CHECK(c > 0, "fork");
		fill(p, n / 2, 5);	/* the parent writes while the child reads */
		CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "fork child failed (status %#x)", st);
		CHECK((bad = check(p, n, 5)) < 0, "parent's byte %ld changed by the child", bad);
		CHECK(managed(p) == 1, "parent's block no longer managed");
	}
	free(p);
	return fails;
}

/* The exec'd child: managed memory of its own. */
static int t_exec_child(void)
{
	uint8_t *p = malloc(4 * MB);

	CHECK(p && managed(p) == 1, "exec'd child's block not managed");
	if (p) {
		fill(p, 4 * MB, 11);
		CHECK(check(p, 4 * MB, 11) < 0, "exec'd child's block");
	}
	free(p);
	return fails;
}

static int wait_ok(pid_t c)
{
	int st;

	return c > 0 && waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int t_exec(void)
{
	char *args[] = { (char *)self, "exec_child", NULL };
	uint8_t *p = malloc(4 * MB);	/* the parent's context exists */
	pid_t c;

	fill(p, 4 * MB, 12);
	c = fork();
	if (c == 0) {
		execv(self, args);
		_exit(127);
	}
	CHECK(wait_ok(c), "fork+exec child");
	c = vfork();
	if (c == 0) {
		execv(self, args);
		_exit(127);
	}
	CHECK(wait_ok(c), "vfork+exec child");
	CHECK(posix_spawn(&c, self, NULL, NULL, args, environ) == 0 && wait_ok(c),
	      "posix_spawn child");
	CHECK(check(p, 4 * MB, 12) < 0, "parent's block after its children");
	free(p);
	return fails;
}

/* The program's own mmap, then partial munmap, MADV_DONTNEED and mremap */
static int t_munmap_madvise(void)
{
	size_t n = 16 * MB;
	uint8_t *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *s;
	long bad;

	CHECK(p != MAP_FAILED, "mmap");
	if (p == MAP_FAILED)
		return fails;
	CHECK(managed(p) == 1, "mmap'd buffer not managed");
	s = mmap(NULL, 2 * MB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(s != MAP_FAILED && managed(s) == 0, "MAP_SHARED buffer managed");
	munmap(s, 2 * MB);
	fill(p, n, 21);
	/* cut 4 MB out of the middle, drop 1 MB and a piece of a page */
	CHECK(munmap(p + 6 * MB, 4 * MB) == 0, "munmap");
	CHECK(madvise(p + MB, MB, MADV_DONTNEED) == 0, "MADV_DONTNEED");
	CHECK(madvise(p + 3 * MB, 4096, MADV_DONTNEED) == 0, "MADV_DONTNEED 4K");
	CHECK((bad = check(p, MB, 21)) < 0, "head byte %ld", bad);
	CHECK((bad = zeros(p + MB, MB)) < 0, "discarded byte %ld not zero", bad);
	for (size_t i = 2 * MB; i < 6 * MB; i++) {
		uint8_t want = (i >= 3 * MB && i < 3 * MB + 4096) ? 0 : pat(i, 21);
		if (p[i] != want) {
			CHECK(0, "byte %zu: %#x, want %#x", i, p[i], want);
			break;
		}
	}
	for (size_t i = 10 * MB; i < n; i++)
		if (p[i] != pat(i, 21)) {
			CHECK(0, "tail byte %zu", i);
			break;
		}
	/* move the tail elsewhere, bigger */
	uint8_t *t = mremap(p + 10 * MB, 6 * MB, 12 * MB, MREMAP_MAYMOVE);
	CHECK(t != MAP_FAILED, "mremap");
	if (t != MAP_FAILED) {
		for (size_t i = 0; i < 6 * MB; i++)
			if (t[i] != pat(i + 10 * MB, 21)) {
				CHECK(0, "moved byte %zu", i);
				break;
			}
		CHECK((bad = zeros(t + 6 * MB, 6 * MB)) < 0, "grown byte %ld not zero", bad);
		munmap(t, 12 * MB);
	}
	munmap(p, 6 * MB);
	return fails;
}

static volatile int stop;

static void *writer_main(void *arg)
{
	uint8_t *p = arg;

	for (unsigned r = 0; !stop; r++)
		for (size_t i = 0; i < 32 * MB; i += 4096)
			p[i] = (uint8_t)r;
	return NULL;
}

/* exit() while threads write and the policy moves pages */
static int t_exit_in_flight(void)
{
	uint8_t *p = malloc(32 * MB);
	pthread_t th[2];

	fill(p, 32 * MB, 3);
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, writer_main, p);
	usleep(300 * 1000);
	exit(fails ? 1 : 0);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; int (*fn)(void); } t[] = {
		{ "malloc_calloc_realloc", t_malloc_calloc_realloc },
		{ "threads", t_threads },
		{ "fork", t_fork },
		{ "exec", t_exec },
		{ "exec_child", t_exec_child },
		{ "munmap_madvise", t_munmap_madvise },
		{ "exit_in_flight", t_exit_in_flight },
	};

	self = argv[0];
	if (argc != 2) {
		fprintf(stderr, "usage: run_child SUBTEST\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(argv[1], t[i].name))
			return t[i].fn() ? 1 : 0;
	fprintf(stderr, "run_child: no sub-test %s\n", argv[1]);
	return 2;
}
