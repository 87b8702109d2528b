/* SPDX-License-Identifier: MIT */
/*
 * Copy engines. All sit behind one ops table (struct _pmv_copy_ops): name,
 * probe, copy, copy_batch, and asynchronous submit/wait. A request copies
 * one page; a batch is a list of requests.
 *
 *  memcpy    glibc memcpy
 *  nt        AVX2 streaming stores: no read-for-ownership of the
 *            destination, no cache pollution; chosen only if the CPU has it
 *  parallel  a pool of copy threads plus the caller split a batch (or one
 *            2 MB page) into chunks: parallel migration, "each thread
 *            transfers a part of a huge page"
 *  offload   submit returns at once and a worker completes the batch, so
 *            the caller copies nothing: the stand-in for a DMA engine. A
 *            hardware engine (Intel DSA via idxd work queues) implements
 *            the same submit/wait pair.
 *
 * PMV_COPY_AUTO picks per batch: memcpy up to 4 MB (cache-resident, where
 * streaming stores and thread hand-offs lose), and above that the engine
 * that copied fastest lately, measured on the batches themselves.
 */
#include <errno.h>
#include <immintrin.h>
#include <signal.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define CHUNK		(256UL << 10)	/* work item of the thread pool */
#define MAX_ITEMS	1024

static bool have_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}

__attribute__((target("avx2")))
static void nt_copy(void *dst, const void *src, size_t len)
{
	__m256i *d = dst;
	const __m256i *s = src;

	/* Pages are page aligned; a tail below 128 bytes never happens. */
	for (size_t i = 0; i < len / 32; i += 4) {
		__m256i a = _mm256_load_si256(s + i);
		__m256i b = _mm256_load_si256(s + i + 1);
		__m256i c = _mm256_load_si256(s + i + 2);
		__m256i e = _mm256_load_si256(s + i + 3);

		_mm256_stream_si256(d + i, a);
		_mm256_stream_si256(d + i + 1, b);
		_mm256_stream_si256(d + i + 2, c);
		_mm256_stream_si256(d + i + 3, e);
	}
	/* Streaming stores are weakly ordered: fence before the remap. */
	_mm_sfence();
}

/* One contiguous piece of work: part of one request, or whole requests. */
static void do_range(const struct _pmv_copy_req *r, size_t off, size_t len, bool nt)
{
	char *d = (char *)r->dst + off;
	char *s = (char *)r->src + off;

	if (nt && len >= 4096 && have_avx2())
		nt_copy(d, s, len);
	else
		memcpy(d, s, len);
}

static void run_serial(struct _pmv_copy_req *reqs, size_t n, bool nt)
{
	for (size_t i = 0; i < n; i++)
		if (!reqs[i].status)
			do_range(&reqs[i], 0, reqs[i].len, nt);
}

/* ---- the thread pool (parallel and offload) --------------------------- */

struct item {
	uint32_t req_lo, req_hi;	/* whole requests [lo, hi), or one split */
	size_t off, len;		/* with req_hi == req_lo + 1 and len set */
};

struct _pmv_copy_job {
	struct _pmv_copy_req *reqs;
	struct item items[MAX_ITEMS];
	size_t nitems;
	bool nt;
	_Atomic size_t next, done;
	unsigned users;		/* workers inside work(); under pool->lock */
};

struct _pmv_copy_pool {
	pmv_ctx *ctx;
	pthread_t *threads;
	unsigned nthreads;
	pthread_mutex_t lock;		/* job, gen, stop */
	pthread_cond_t work_cv, done_cv;
	pthread_mutex_t busy;		/* one job at a time */
	struct _pmv_copy_job *job;
	/*
	 * The one job, under busy: its caller holds page locks, so no malloc
	 * (internal.h's allocator rule).
	 */
	struct _pmv_copy_job job_mem;
	uint64_t gen;
	bool stop;
};

static void do_item(struct _pmv_copy_job *job, const struct item *it)
{
	if (it->len) {
		if (!job->reqs[it->req_lo].status)
			do_range(&job->reqs[it->req_lo], it->off, it->len, job->nt);
		return;
	}
	run_serial(job->reqs + it->req_lo, it->req_hi - it->req_lo, job->nt);
}

/* Take items until none are left; returns when this thread ran out. */
static void work(struct _pmv_copy_pool *p, struct _pmv_copy_job *job)
{
	for (;;) {
		size_t i = atomic_fetch_add_explicit(&job->next, 1, memory_order_relaxed);

		if (i >= job->nitems)
			return;
		do_item(job, &job->items[i]);
		/*
		 * Release: the copied bytes are visible to whoever sees the
		 * count complete (the waiter acquires it).
		 */
		if (atomic_fetch_add_explicit(&job->done, 1, memory_order_release) + 1 ==
		    job->nitems) {
			pthread_mutex_lock(&p->lock);
			pthread_cond_broadcast(&p->done_cv);
			pthread_mutex_unlock(&p->lock);
		}
	}
}

static void *copy_thread(void *arg)
{
	struct _pmv_copy_pool *p = arg;
	uint64_t seen = 0;

	/*
	 * A copy thread only ever copies for migrations that hold their pages
	 * locked: if the program discards a page under the copy, the fault
	 * thread must rescue us, not wait for an unlock that waits for us.
	 * PMV_MAX_COPIERS leaves room for every copy thread and callers; if
	 * movers of many program threads hold them all, theirs end with
	 * their copy, so wait for one before taking any job.
	 */
	while (!_pmv_copier_enter(p->ctx))
		sched_yield();

	for (;;) {
		struct _pmv_copy_job *job;

		pthread_mutex_lock(&p->lock);
		while (!p->stop && p->gen == seen)
			pthread_cond_wait(&p->work_cv, &p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			_pmv_copier_exit(p->ctx);
			return NULL;
		}
		seen = p->gen;
		job = p->job;
		/*
		 * Count ourselves in under the lock: the waiter frees the job
		 * once all items are done *and* no worker can still touch it.
		 */
		if (job)
			job->users++;
		pthread_mutex_unlock(&p->lock);
		if (!job)
			continue;
		work(p, job);
		pthread_mutex_lock(&p->lock);
		if (!--job->users)
			pthread_cond_broadcast(&p->done_cv);
		pthread_mutex_unlock(&p->lock);
	}
}

/*
 * Split requests into items of about CHUNK bytes: a big request into
 * pieces, small ones grouped. Never more than MAX_ITEMS: a split is taken
 * only if it leaves room for the group before it and a final tail item,
 * and groups close only while a slot is left for that tail.
 */
static void build_items(struct _pmv_copy_job *job, struct _pmv_copy_req *reqs, size_t n)
{
	size_t group = 0, gbytes = 0;

	job->reqs = reqs;
	job->nitems = 0;
	for (size_t i = 0; i < n; i++) {
		size_t nsplit = (reqs[i].len + CHUNK - 1) / CHUNK;

		if (reqs[i].len >= 2 * CHUNK &&
		    job->nitems + (i > group) + nsplit + 1 <= MAX_ITEMS) {
			if (i > group)
				job->items[job->nitems++] = (struct item){ group, i, 0, 0 };
			for (size_t off = 0; off < reqs[i].len; off += CHUNK)
				job->items[job->nitems++] = (struct item){
					i, i + 1, off,
					reqs[i].len - off < CHUNK ? reqs[i].len - off : CHUNK };
			group = i + 1;
			gbytes = 0;
			continue;
		}
		gbytes += reqs[i].len;
		if (gbytes >= CHUNK && job->nitems < MAX_ITEMS - 1) {
			job->items[job->nitems++] = (struct item){ group, i + 1, 0, 0 };
			group = i + 1;
			gbytes = 0;
		}
	}
	if (group < n)
		job->items[job->nitems++] = (struct item){ group, n, 0, 0 };
	atomic_store_explicit(&job->next, 0, memory_order_relaxed);
	atomic_store_explicit(&job->done, 0, memory_order_relaxed);
}

static void pool_start(struct _pmv_copy_pool *p, struct _pmv_copy_job *job)
{
	pthread_mutex_lock(&p->lock);
	p->job = job;
	p->gen++;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->lock);
}

static void pool_wait(struct _pmv_copy_pool *p, struct _pmv_copy_job *job)
{
	/* Acquire pairs with the workers' release on `done`. */
	pthread_mutex_lock(&p->lock);
	while (atomic_load_explicit(&job->done, memory_order_acquire) < job->nitems ||
	       job->users)
		pthread_cond_wait(&p->done_cv, &p->lock);
	p->job = NULL;		/* no worker can pick it up after this */
	pthread_mutex_unlock(&p->lock);
}

int _pmv_copy_pool_start(pmv_ctx *ctx)
{
	struct _pmv_copy_pool *p;
	unsigned n = ctx->copy_threads;
	sigset_t all, old;

	if (!n) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		/* the caller is one of the copiers in parallel mode */
		n = cpus > 1 ? (unsigned)(cpus - 1) : 1;
	}
	if (n > 16)
		n = 16;		/* and so within PMV_MAX_COPIERS */
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->ctx = ctx;
	p->threads = calloc(n, sizeof(*p->threads));
	if (!p->threads) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->busy, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->done_cv, NULL);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&p->threads[i], NULL, copy_thread, p))
			break;
		pthread_setname_np(p->threads[i], "pmv-copy");
		p->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!p->nthreads) {
		free(p->threads);
		free(p);
		return -EAGAIN;
	}
	ctx->copy_threads = p->nthreads;
	/* Release: a batch that sees the pointer sees an initialised pool. */
	__atomic_store_n(&ctx->copy_pool, p, __ATOMIC_RELEASE);
	return 0;
}

/* In a fork child: the threads are the parent's; free only our copy. */
void _pmv_copy_pool_forget(pmv_ctx *ctx)
{
	struct _pmv_copy_pool *p = ctx->copy_pool;

	if (!p)
		return;
	free(p->threads);
	free(p);
	ctx->copy_pool = NULL;
}

void _pmv_copy_pool_stop(pmv_ctx *ctx)
{
	struct _pmv_copy_pool *p = ctx->copy_pool;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->busy);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->done_cv);
	free(p->threads);
	free(p);
	ctx->copy_pool = NULL;
}

/* ---- the engines ------------------------------------------------------ */

static bool probe_always(void) { return true; }

static int memcpy_batch(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n)
{
	(void)ctx;
	run_serial(reqs, n, false);
	return 0;
}

static int nt_batch(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n)
{
	(void)ctx;
	run_serial(reqs, n, true);
	return 0;
}

static int pool_submit(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n,
		       struct _pmv_copy_job **ticket)
{
	struct _pmv_copy_pool *p = __atomic_load_n(&ctx->copy_pool, __ATOMIC_ACQUIRE);
	struct _pmv_copy_job *job;

	if (!p)
		return -ENODEV;
	pthread_mutex_lock(&p->busy);
	job = &p->job_mem;
	job->nt = have_avx2();
	job->users = 0;
	build_items(job, reqs, n);
	pool_start(p, job);
	*ticket = job;
	return 0;
}

static int pool_wait_ticket(pmv_ctx *ctx, struct _pmv_copy_job *job)
{
	struct _pmv_copy_pool *p = ctx->copy_pool;

	pool_wait(p, job);
	pthread_mutex_unlock(&p->busy);
	return 0;
}

static int parallel_batch(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n)
{
	struct _pmv_copy_pool *p = __atomic_load_n(&ctx->copy_pool, __ATOMIC_ACQUIRE);
	struct _pmv_copy_job *job;

	/* Another caller owns the pool: copy here rather than queue. */
	if (!p || pthread_mutex_trylock(&p->busy)) {
		run_serial(reqs, n, have_avx2());
		return 0;
	}
	pthread_mutex_unlock(&p->busy);
	if (pool_submit(ctx, reqs, n, &job)) {
		run_serial(reqs, n, have_avx2());
		return 0;
	}
	work(p, job);		/* the caller is a copier too */
	return pool_wait_ticket(ctx, job);
}

static int offload_batch(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n)
{
	struct _pmv_copy_job *job;
	int ret = pool_submit(ctx, reqs, n, &job);

	if (ret)
		return ret;
	return pool_wait_ticket(ctx, job);
}

static int single_copy(pmv_ctx *ctx, const struct _pmv_copy_ops *ops, void *dst,
		       const void *src, size_t len)
{
	struct _pmv_copy_req r = { .dst = dst, .src = (void *)src, .len = len };

	return ops->copy_batch(ctx, &r, 1);
}

static int memcpy_copy(pmv_ctx *ctx, void *d, const void *s, size_t l);
static int nt_copy1(pmv_ctx *ctx, void *d, const void *s, size_t l);
static int parallel_copy(pmv_ctx *ctx, void *d, const void *s, size_t l);
static int offload_copy(pmv_ctx *ctx, void *d, const void *s, size_t l);

const struct _pmv_copy_ops _pmv_copy_engines[PMV_COPY_NR] = {
	[PMV_COPY_MEMCPY] = { "memcpy", probe_always, memcpy_copy, memcpy_batch, NULL, NULL },
	[PMV_COPY_NT] = { "nt", have_avx2, nt_copy1, nt_batch, NULL, NULL },
	[PMV_COPY_PARALLEL] = { "parallel", probe_always, parallel_copy, parallel_batch,
				pool_submit, pool_wait_ticket },
	[PMV_COPY_OFFLOAD] = { "offload", probe_always, offload_copy, offload_batch,
			       pool_submit, pool_wait_ticket },
};

static int memcpy_copy(pmv_ctx *ctx, void *d, const void *s, size_t l)
{
	return single_copy(ctx, &_pmv_copy_engines[PMV_COPY_MEMCPY], d, s, l);
}
static int nt_copy1(pmv_ctx *ctx, void *d, const void *s, size_t l)
{
	return single_copy(ctx, &_pmv_copy_engines[PMV_COPY_NT], d, s, l);
}
static int parallel_copy(pmv_ctx *ctx, void *d, const void *s, size_t l)
{
	return single_copy(ctx, &_pmv_copy_engines[PMV_COPY_PARALLEL], d, s, l);
}
static int offload_copy(pmv_ctx *ctx, void *d, const void *s, size_t l)
{
	return single_copy(ctx, &_pmv_copy_engines[PMV_COPY_OFFLOAD], d, s, l);
}

/*
 * auto. Up to 4 MB the source (just unmapped, often just used) and the
 * destination fit in the last-level cache: ordinary stores win (one 2 MB
 * page: 116 us with memcpy against 201 us with streaming stores here).
 * Above, which engine wins depends on the machine and the moment
 * (streaming stores avoid the read-for-ownership; copy threads help only
 * where one core does not saturate memory, and not while another program
 * keeps the other CPUs busy): auto_engine() measures.
 */
#define AUTO_MIN	(4UL << 20)	/* smaller batches: memcpy */
#define EXPLORE		16		/* one large batch in this many tries another */
#define EXPLORE_FAR	128		/* ... or in this many, if far behind */

static double secs_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double bps_get(pmv_ctx *ctx, int e)
{
	uint64_t v = atomic_load_explicit(&ctx->copy_bps[e], memory_order_relaxed);
	double d;

	memcpy(&d, &v, sizeof(d));
	return d;
}

static void bps_set(pmv_ctx *ctx, int e, double d)
{
	uint64_t v;

	memcpy(&v, &d, sizeof(v));
	atomic_store_explicit(&ctx->copy_bps[e], v, memory_order_relaxed);
}

/* The engines auto chooses between for large batches. */
static int auto_candidates(pmv_ctx *ctx, int *c)
{
	int n = 0;

	if (have_avx2())
		c[n++] = PMV_COPY_NT;
	c[n++] = PMV_COPY_MEMCPY;
	if (__atomic_load_n(&ctx->copy_pool, __ATOMIC_ACQUIRE))
		c[n++] = PMV_COPY_PARALLEL;
	return n;
}

/*
 * Auto for a large batch: the candidate with the best recent throughput,
 * except that one batch in EXPLORE goes to the next other candidate in
 * turn, so that each figure stays current (a CPU hog that starts slows
 * the parallel engine, and that is seen within a few batches). One far
 * behind (under 70% of the best) is tried one batch in EXPLORE_FAR only,
 * which keeps what exploring costs to a few per cent. Not measured yet
 * comes first. The figures are shared by every caller and updated
 * without a lock: a lost update only delays a switch by a batch.
 */
static int auto_engine(pmv_ctx *ctx)
{
	int c[PMV_COPY_NR], n = auto_candidates(ctx, c), best = c[0];
	unsigned k = atomic_fetch_add_explicit(&ctx->copy_nbatch, 1, memory_order_relaxed);

	for (int i = 0; i < n; i++) {
		if (bps_get(ctx, c[i]) == 0)
			return c[i];
		if (bps_get(ctx, c[i]) > bps_get(ctx, best))
			best = c[i];
	}
	if (n > 1 && k % EXPLORE == 0) {
		/* k / EXPLORE walks the candidates in turn */
		int o = c[(k / EXPLORE) % n];

		if (o != best && (bps_get(ctx, o) >= 0.7 * bps_get(ctx, best) ||
				  k % EXPLORE_FAR == 0))
			return o;
	}
	return best;
}

/* A large batch's throughput, folded into its engine's figure (weight 1/4). */
static void auto_learn(pmv_ctx *ctx, int e, size_t bytes, double secs)
{
	double now = bytes / (secs > 1e-9 ? secs : 1e-9), old = bps_get(ctx, e);

	bps_set(ctx, e, old ? old * 0.75 + now * 0.25 : now);
}

/*
 * Copy every request; each request's status is 0 or -EIO.
 * Fault injection (PAGEMOVE_INJECT_COPY_FAIL=N, for tests): every N-th
 * request fails after copying half of its page, as a failing engine might.
 */
int _pmv_copy_batch(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n)
{
	size_t bytes = 0;
	int ret, e;

	for (size_t i = 0; i < n; i++) {
		reqs[i].status = 0;
		reqs[i].done = 0;
		bytes += reqs[i].len;
		if (ctx->inject_copy_fail &&
		    atomic_fetch_add(&ctx->inject_count, 1) % ctx->inject_copy_fail ==
		    ctx->inject_copy_fail - 1) {
			struct _pmv_copy_req half = reqs[i];

			half.len /= 2;
			do_range(&half, 0, half.len, false);
			reqs[i].status = -EIO;
			reqs[i].done = half.len;
		}
	}
	e = __atomic_load_n(&ctx->copy_engine, __ATOMIC_RELAXED);
	if (e != PMV_COPY_AUTO) {
		ret = _pmv_copy_engines[e].copy_batch(ctx, reqs, n);
	} else if (bytes <= AUTO_MIN) {
		ret = _pmv_copy_engines[PMV_COPY_MEMCPY].copy_batch(ctx, reqs, n);
	} else {
		double t0 = secs_now();

		e = auto_engine(ctx);
		ret = _pmv_copy_engines[e].copy_batch(ctx, reqs, n);
		if (!ret)
			auto_learn(ctx, e, bytes, secs_now() - t0);
	}
	if (ret) {
		/* The engine itself failed: say so on every request. */
		for (size_t i = 0; i < n; i++)
			reqs[i].status = ret;
	}
	return ret;
}

int _pmv_copy_engine_parse(const char *name)
{
	if (!name || !*name || !strcmp(name, "auto"))
		return PMV_COPY_AUTO;
	for (int i = 0; i < PMV_COPY_NR; i++)
		if (_pmv_copy_engines[i].name && !strcmp(name, _pmv_copy_engines[i].name))
			return i;
	return -EINVAL;
}

const char *_pmv_copy_engine_name(int e)
{
	return e == PMV_COPY_AUTO ? "auto" : _pmv_copy_engines[e].name;
}

PMV_API int pmv_set_copy_engine(pmv_ctx *ctx, int engine)
{
	PMV_CHECK_CTX(ctx);
	if (engine < 0 || engine >= PMV_COPY_NR)
		return _pmv_set_errmsg(-EINVAL, "pmv_set_copy_engine: no engine %d", engine);
	if (engine == PMV_COPY_PARALLEL || engine == PMV_COPY_OFFLOAD || engine == PMV_COPY_AUTO) {
		int ret = 0;

		/* Start the copy threads on first need; one caller does it. */
		pthread_mutex_lock(&ctx->copy_pool_lock);
		if (!__atomic_load_n(&ctx->copy_pool, __ATOMIC_ACQUIRE))
			ret = _pmv_copy_pool_start(ctx);
		pthread_mutex_unlock(&ctx->copy_pool_lock);
		if (ret && engine != PMV_COPY_AUTO)
			return _pmv_set_errmsg(-ENODEV, "pmv_set_copy_engine: no copy threads: %s",
					       strerror(-ret));
	}
	if (engine == PMV_COPY_NT && !have_avx2())
		engine = PMV_COPY_MEMCPY;
	/* Read once per batch: a batch never mixes engines. */
	__atomic_store_n(&ctx->copy_engine, engine, __ATOMIC_RELAXED);
	return 0;
}
