/* SPDX-License-Identifier: MIT */
/*
 * The far tiers' stores (src/store*.c, contracts in src/internal.h), below
 * any context: every kind round-trips 4 KB and 2 MB pages byte for byte
 * (random, text-like, same-filled, half and half), from several threads at
 * once; same-filled pages take no storage and incompressible ones are
 * refused distinctly; the capacity is what the allocator really holds;
 * ENOSPC of a full file system, injected EIO and a damaged stored block
 * are reported and never give wrong bytes; the file is unnamed, 0600, and
 * its blocks are punched when freed and at close. And pmv_tiers_parse, and
 * pmv_create's checks of far tiers (their eviction and fault-in: t_far).
 * Each sub-test runs in a child of its own under a time limit.
 */
#include <dirent.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "harness.h"
#include "../src/internal.h"

enum { K_LZ4, K_ZSTD, K_FILE, K_NR };
static const char *const kname[K_NR] = { "lz4", "zstd", "file" };
static const int kkind[K_NR] = { PMV_TIER_LZ4, PMV_TIER_ZSTD, PMV_TIER_FILE };

/* a directory of our own for file stores, removed at exit */
static char dir[64];

/* ---- page contents --------------------------------------------------- */

enum { C_RANDOM, C_TEXT, C_ZERO, C_WORD, C_HALF, C_NR };

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void fill_random(uint8_t *p, size_t len, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ULL + 1;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = rng_next(&x);

		memcpy(p + i, &v, 8);
	}
}

/* words from a small vocabulary: compresses some 2-3:1, as prose does */
static void fill_text(uint8_t *p, size_t len, uint64_t seed)
{
	static const char *const words[] = {
		"page", "memory", "tier", "the", "of", "and", "compressed", "file",
		"a", "to", "fault", "store", "kernel", "swap", "handle", "in", "is",
		"migration", "checksum", "bytes", "thread", "lock", "zram", "hot",
	};
	uint64_t x = seed * 0xBF58476D1CE4E5B9ULL + 7;
	size_t i = 0;

	while (i < len) {
		uint64_t r = rng_next(&x);
		const char *w = words[r % (sizeof(words) / sizeof(words[0]))];

		for (size_t k = 0; w[k] && i < len; k++)
			p[i++] = (uint8_t)w[k];
		if (i < len)
			p[i++] = (r >> 20) % 11 ? ' ' : '\n';
		if (i < len && !((r >> 30) % 7))
			p[i++] = (uint8_t)('0' + (r >> 40) % 10);
	}
}

static void fill(uint8_t *p, size_t len, int c, uint64_t seed)
{
	uint64_t w = 0x0123456789abcdefULL ^ seed;

	switch (c) {
	case C_RANDOM: fill_random(p, len, seed); break;
	case C_TEXT: fill_text(p, len, seed); break;
	case C_ZERO: memset(p, 0, len); break;
	case C_WORD:
		for (size_t i = 0; i < len; i += 8)
			memcpy(p + i, &w, 8);
		break;
	case C_HALF:
		fill_random(p, len / 2, seed);
		fill_text(p + len / 2, len / 2, seed);
		break;
	}
}

/* page-aligned (O_DIRECT) zeroed buffers */
static uint8_t *pages_alloc(size_t n, size_t psz)
{
	void *p = mmap(NULL, n * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static struct _pmv_store *open_store(int k, size_t cap, const char *path)
{
	struct pmv_tier_config tc = { .kind = kkind[k], .node = PMV_NODE_ANY,
				      .capacity = cap };
	struct _pmv_store *s;
	int ret;

	if (k == K_FILE)
		tc.path = path ? path : dir;
	if (k == K_ZSTD)
		tc.level = 3;
	ret = _pmv_store_open(&s, &tc);
	if (ret) {
		fprintf(stderr, "_pmv_store_open(%s): %s (%s)\n", kname[k], strerror(-ret),
			pmv_errmsg());
		return NULL;
	}
	return s;
}

static long first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

/* variant = kind * 2 + huge */
#define VK(c)	((c)->variant / 2)
#define VPS(c)	((c)->variant % 2 ? PMV_PS_2M : PMV_PS_4K)

/* ---- sub-tests --------------------------------------------------------- */

/*
 * Every content kind, N pages of each, put in one batch, got back into
 * other buffers and compared byte for byte; compressed stores refuse the
 * random pages (and only them), the file store takes everything.
 */
static int test_roundtrip(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), per = ps == PMV_PS_2M ? 2 : 16, n = per * C_NR;
	struct _pmv_store *s = open_store(k, 0, NULL);
	uint8_t *src = pages_alloc(n, psz), *dst = pages_alloc(n, psz);
	struct _pmv_store_req *r = calloc(n, sizeof(*r));
	struct _pmv_store_stats st;
	uint64_t *h = calloc(n, sizeof(*h));
	size_t want_stored = 0, stored;

	if (!s || !src || !dst || !r || !h)
		return 1;
	for (size_t i = 0; i < n; i++) {
		int ct = (int)(i % C_NR);

		fill(src + i * psz, psz, ct, i);
		r[i] = (struct _pmv_store_req){ .page = src + i * psz, .ps = ps };
	}
	t_step("put %zu pages", n);
	stored = _pmv_store_put(s, r, n);
	for (size_t i = 0; i < n; i++) {
		int ct = (int)(i % C_NR);

		/*
		 * Random pages never compress below 3/4; half random ones may
		 * not either (lz4 on 4 KB: 2 KB random + ~1 KB of text).
		 */
		if (k != K_FILE && (ct == C_RANDOM || (ct == C_HALF && r[i].status)))
			T_CHECK(bad, r[i].status == -PMV_E_INCOMPRESSIBLE && !r[i].handle,
				"page %zu (content %d): status %d handle %llu, want -EMSGSIZE", i,
				ct, r[i].status, (unsigned long long)r[i].handle);
		else
			T_CHECK(bad, r[i].status == 0 && r[i].handle, "page %zu (content %d): %d",
				i, ct, r[i].status);
		h[i] = r[i].handle;
		want_stored += !!h[i];
	}
	T_CHECK(bad, stored == want_stored && stored >= (k == K_FILE ? n : n - 2 * per),
		"%zu stored, %zu handles", stored, want_stored);
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.pages[ps] == want_stored, "stats: %llu pages",
		(unsigned long long)st.pages[ps]);
	T_CHECK(bad, st.same_filled == 2 * per, "stats: %llu same-filled, want %zu",
		(unsigned long long)st.same_filled, 2 * per);
	T_CHECK(bad, st.page_bytes == want_stored * psz, "stats: %llu page bytes",
		(unsigned long long)st.page_bytes);
	T_CHECK(bad, st.stored_bytes >= st.data_bytes && st.data_bytes > 0,
		"stats: stored %llu < data %llu", (unsigned long long)st.stored_bytes,
		(unsigned long long)st.data_bytes);
	T_CHECK(bad, st.incompressible == n - stored, "stats: %llu incompressible, want %zu",
		(unsigned long long)st.incompressible, n - stored);
	T_CHECK(bad, st.ratio == (double)st.page_bytes / (double)st.stored_bytes,
		"ratio %.3f, not page bytes / stored bytes", st.ratio);
	if (k != K_FILE)
		T_CHECK(bad, st.data_bytes * 4 < st.page_bytes * 3, "%llu bytes of data for %llu",
			(unsigned long long)st.data_bytes, (unsigned long long)st.page_bytes);
	/* the source is changed before the load: the store has its own copy */
	memset(src, 0xee, n * psz);
	for (size_t i = 0; i < n; i++) {
		int ct = (int)(i % C_NR);

		fill(src + i * psz, psz, ct, i);
		r[i] = (struct _pmv_store_req){ .page = dst + i * psz, .ps = ps, .handle = h[i] };
	}
	t_step("get");
	_pmv_store_get(s, r, n);
	for (size_t i = 0; i < n; i++) {
		long d;

		if (!h[i])
			continue;
		T_CHECK(bad, r[i].status == 0, "get page %zu: %d", i, r[i].status);
		d = first_diff(src + i * psz, dst + i * psz, psz);
		T_CHECK(bad, d < 0, "page %zu (content %d): byte %ld differs", i,
			(int)(i % C_NR), d);
	}
	t_step("drop");
	_pmv_store_drop(s, h, n);
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.pages[0] + st.pages[1] == 0 && st.page_bytes == 0 && st.data_bytes == 0,
		"after drop: %llu pages, %llu data bytes", (unsigned long long)st.pages[ps],
		(unsigned long long)st.data_bytes);
	if (k == K_FILE)
		T_CHECK(bad, st.stored_bytes == 0, "after drop: %llu bytes still held",
			(unsigned long long)st.stored_bytes);
	/* a dead handle */
	r[n - 1].handle = h[n - 1] ? h[n - 1] : h[n - 2];
	T_CHECK(bad, _pmv_store_get(s, &r[n - 1], 1) == 0 && r[n - 1].status == -EINVAL,
		"a dropped handle loaded: %d", r[n - 1].status);
	_pmv_store_close(s);
	return bad;
}

/*
 * raw_ok (the last far tier, for reclaim): a random page is kept as it is,
 * counted incompressible, takes at least its size, and loads back exact;
 * a text page is still compressed.
 */
static int test_raw_ok_keeps_incompressible_pages(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), n = 4;
	struct _pmv_store *s;
	uint8_t *src = pages_alloc(n, psz), *dst = pages_alloc(n, psz);
	struct _pmv_store_req r[4];
	struct _pmv_store_stats st;
	uint64_t h[4];

	s = open_store(k, 0, NULL);
	if (!s || !src || !dst)
		return 1;
	for (size_t i = 0; i < n; i++) {
		fill(src + i * psz, psz, i % 2 ? C_TEXT : C_RANDOM, i);
		r[i] = (struct _pmv_store_req){ .page = src + i * psz, .ps = ps, .raw_ok = true };
	}
	T_CHECK(bad, _pmv_store_put(s, r, n) == n, "not all stored");
	for (size_t i = 0; i < n; i++) {
		T_CHECK(bad, r[i].status == 0 && r[i].handle, "page %zu: %d", i, r[i].status);
		h[i] = r[i].handle;
	}
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.incompressible == n / 2, "%llu incompressible, want %zu",
		(unsigned long long)st.incompressible, n / 2);
	T_CHECK(bad, st.data_bytes >= n / 2 * psz && st.data_bytes < n * psz,
		"%llu data bytes for %zu raw and %zu text pages of %zu",
		(unsigned long long)st.data_bytes, n / 2, n / 2, psz);
	for (size_t i = 0; i < n; i++)
		r[i] = (struct _pmv_store_req){ .page = dst + i * psz, .ps = ps, .handle = h[i] };
	_pmv_store_get(s, r, n);
	for (size_t i = 0; i < n; i++) {
		long d = first_diff(src + i * psz, dst + i * psz, psz);

		T_CHECK(bad, r[i].status == 0 && d < 0, "page %zu: status %d, byte %ld differs",
			i, r[i].status, d);
	}
	_pmv_store_drop(s, h, n);
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.data_bytes == 0, "after drop: %llu data bytes",
		(unsigned long long)st.data_bytes);
	_pmv_store_close(s);
	munmap(src, n * psz);
	munmap(dst, n * psz);
	return bad;
}

/* Zero pages and pages of one repeated word take no bytes at all. */
static int test_same_filled_takes_no_storage(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), n = 8;
	struct _pmv_store *s = open_store(k, 0, NULL);
	uint8_t *p = pages_alloc(n, psz), *q = pages_alloc(1, psz);
	struct _pmv_store_req r[8];
	struct _pmv_store_stats st;

	if (!s || !p || !q)
		return 1;
	for (size_t i = 0; i < n; i++) {
		fill(p + i * psz, psz, i % 2 ? C_WORD : C_ZERO, i);
		r[i] = (struct _pmv_store_req){ .page = p + i * psz, .ps = ps };
	}
	T_CHECK(bad, _pmv_store_put(s, r, n) == n, "not all stored");
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.same_filled == n && st.stored_bytes == 0 && st.data_bytes == 0,
		"%llu same-filled, %llu bytes stored", (unsigned long long)st.same_filled,
		(unsigned long long)st.stored_bytes);
	for (size_t i = 0; i < n; i++) {
		struct _pmv_store_req g = { .page = q, .ps = ps, .handle = r[i].handle };

		memset(q, 0x77, psz);
		T_CHECK(bad, _pmv_store_get(s, &g, 1) == 1, "get %zu: %d", i, g.status);
		T_CHECK(bad, first_diff(q, p + i * psz, psz) < 0, "page %zu differs", i);
	}
	_pmv_store_close(s);
	return bad;
}

/*
 * Capacity is what the allocator holds: with identical text pages (one
 * size class) and a capacity of 4 spans (compressed) or 4 chunks (file),
 * exactly what fits in those is stored, then -ENOSPC; freeing one page
 * makes room for one.
 */
static int test_capacity_is_allocator_bytes(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), n = ps == PMV_PS_2M ? 16 : 4096, want, got, cap, slot;
	struct _pmv_store *s = open_store(k, 0, NULL);
	uint8_t *p = pages_alloc(1, psz);
	struct _pmv_store_req *r = calloc(n, sizeof(*r));
	struct _pmv_store_stats st;

	if (!s || !p || !r)
		return 1;
	fill(p, psz, C_TEXT, 42);
	for (size_t i = 0; i < n; i++)
		r[i] = (struct _pmv_store_req){ .page = p, .ps = ps };
	/* one page in an unlimited store first, to learn its stored size */
	T_CHECK(bad, _pmv_store_put(s, r, 1) == 1, "first put: %d", r[0].status);
	_pmv_store_stats(s, &st);
	_pmv_store_close(s);
	if (k == K_FILE) {		/* 2 MB chunks */
		slot = psz;
		cap = 4 * T_SZ_2M;
		want = cap / psz;
	} else if (st.data_bytes <= 3072) {	/* 64 KB spans of 32-byte classes */
		slot = (st.data_bytes + 31) / 32 * 32;
		cap = 4 * (64UL << 10);
		want = 4 * ((64UL << 10) / slot);
	} else {			/* a mapping each, 4 KB granular */
		slot = (st.data_bytes + 4095) / 4096 * 4096;
		cap = 4 * slot + slot / 2;
		want = 4;
	}
	s = open_store(k, cap, NULL);
	if (!s)
		return 1;
	got = _pmv_store_put(s, r, n);
	T_CHECK(bad, got > 0, "nothing stored: %d", r[0].status);
	if (!got)
		return bad;
	_pmv_store_stats(s, &st);
	printf("  %s %s: %llu-byte blobs in %zu-byte slots: %zu of %zu stored in %zu bytes\n",
	       kname[k], ps ? "2m" : "4k", (unsigned long long)st.data_bytes / got, slot, got, n,
	       cap);
	T_CHECK(bad, got == want, "%zu pages stored in a capacity of %zu, want %zu", got, cap,
		want);
	T_CHECK(bad, st.stored_bytes <= cap, "stored_bytes %llu over the capacity %zu",
		(unsigned long long)st.stored_bytes, cap);
	T_CHECK(bad, r[n - 1].status == -ENOSPC && st.nospc == n - got,
		"the last put: %d, %llu ENOSPC counted, want %zu", r[n - 1].status,
		(unsigned long long)st.nospc, n - got);
	/* one freed, one more fits */
	_pmv_store_drop(s, &r[0].handle, 1);
	r[0].handle = 0;
	T_CHECK(bad, _pmv_store_put(s, &r[n - 1], 1) == 1, "no room after a drop: %d",
		r[n - 1].status);
	for (size_t i = 0; i < n; i++)
		if (r[i].handle) {
			struct _pmv_store_req g = { .page = pages_alloc(1, psz), .ps = ps,
						    .handle = r[i].handle };

			if (_pmv_store_get(s, &g, 1) != 1 || first_diff(g.page, p, psz) >= 0) {
				T_CHECK(bad, 0, "page %zu did not come back intact: %d", i, g.status);
				break;
			}
			munmap(g.page, psz);
			if (i > 64)
				break;	/* a sample: the round trips are tested elsewhere */
		}
	_pmv_store_close(s);
	return bad;
}

/* Several threads put, get, check and drop their own pages at once. */
struct worker {
	struct _pmv_store *s;
	int ps;
	unsigned id;
	long bad;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	size_t psz = _pmv_ps_size(w->ps), n = w->ps == PMV_PS_2M ? 4 : 64;
	uint8_t *src = pages_alloc(n, psz), *dst = pages_alloc(n, psz);
	struct _pmv_store_req r[64];
	int rounds = t_rounds(w->ps == PMV_PS_2M ? 6 : 40);

	if (!src || !dst) {
		w->bad++;
		return NULL;
	}
	for (int round = 0; round < rounds; round++) {
		uint64_t seed = (uint64_t)w->id << 32 | (unsigned)round << 8;

		for (size_t i = 0; i < n; i++) {
			fill(src + i * psz, psz, (int)((i + round) % C_NR), seed + i);
			r[i] = (struct _pmv_store_req){ .page = src + i * psz, .ps = w->ps };
		}
		_pmv_store_put(w->s, r, n);
		for (size_t i = 0; i < n; i++) {
			if (r[i].status && r[i].status != -PMV_E_INCOMPRESSIBLE) {
				fprintf(stderr, "worker %u: put: %d\n", w->id, r[i].status);
				w->bad++;
			}
			r[i].page = dst + i * psz;
		}
		_pmv_store_get(w->s, r, n);
		for (size_t i = 0; i < n; i++) {
			if (!r[i].handle)
				continue;
			if (r[i].status || first_diff(src + i * psz, dst + i * psz, psz) >= 0) {
				fprintf(stderr, "worker %u round %d page %zu: %d, byte %ld\n", w->id,
					round, i, r[i].status,
					first_diff(src + i * psz, dst + i * psz, psz));
				w->bad++;
			}
		}
		for (size_t i = 0; i < n; i++)
			_pmv_store_drop(w->s, &r[i].handle, 1);
		t_beat();
	}
	return NULL;
}

static int test_concurrent_put_get(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	struct _pmv_store *s = open_store(k, 0, NULL);
	struct worker w[4];
	pthread_t t[4];
	struct _pmv_store_stats st;

	if (!s)
		return 1;
	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct worker){ .s = s, .ps = ps, .id = i };
		pthread_create(&t[i], NULL, worker, &w[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		bad += (int)w[i].bad;
	}
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.pages[0] + st.pages[1] == 0 && st.data_bytes == 0,
		"after all drops: %llu pages, %llu data bytes",
		(unsigned long long)(st.pages[0] + st.pages[1]), (unsigned long long)st.data_bytes);
	T_CHECK(bad, st.io_errors == 0 && st.csum_errors == 0, "%llu I/O, %llu checksum errors",
		(unsigned long long)st.io_errors, (unsigned long long)st.csum_errors);
	_pmv_store_close(s);
	return bad;
}

/*
 * A load that fails (injected EIO) reports -EIO, zeroes the buffer, counts
 * it, and leaves the page stored: the next load gets it.
 */
static int test_eio_reported_page_kept(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), n = 4;
	struct _pmv_store *s = open_store(k, 0, NULL);
	uint8_t *p = pages_alloc(n, psz), *q = pages_alloc(1, psz);
	struct _pmv_store_req r[4];
	struct _pmv_store_stats st;

	if (!s || !p || !q)
		return 1;
	for (size_t i = 0; i < n; i++) {
		fill(p + i * psz, psz, C_TEXT, i);
		r[i] = (struct _pmv_store_req){ .page = p + i * psz, .ps = ps };
	}
	T_CHECK(bad, _pmv_store_put(s, r, n) == n, "put failed");
	/* every 2nd load fails: each page loads, then fails, then loads again */
	T_CHECK(bad, _pmv_store_inject(s, "get:eio:2") == 0, "inject refused");
	for (size_t i = 0; i < n; i++) {
		struct _pmv_store_req g = { .page = q, .ps = ps, .handle = r[i].handle };

		memset(q, 0x77, psz);
		_pmv_store_get(s, &g, 1);
		T_CHECK(bad, g.status == 0 && first_diff(q, p + i * psz, psz) < 0,
			"page %zu: first load %d", i, g.status);
		_pmv_store_get(s, &g, 1);
		T_CHECK(bad, g.status == -EIO, "page %zu: second load %d, want -EIO", i, g.status);
		T_CHECK(bad, q[0] == 0 && !memcmp(q, q + 1, psz - 1),
			"page %zu: a failed load left bytes in the buffer", i);
	}
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.io_errors == n, "%llu I/O errors counted, want %zu",
		(unsigned long long)st.io_errors, n);
	_pmv_store_inject(s, "");
	for (size_t i = 0; i < n; i++) {
		struct _pmv_store_req g = { .page = q, .ps = ps, .handle = r[i].handle };

		_pmv_store_get(s, &g, 1);
		T_CHECK(bad, g.status == 0 && first_diff(q, p + i * psz, psz) < 0,
			"page %zu: not kept after the failed load: %d", i, g.status);
	}
	/* put side: an injected EIO leaves nothing stored */
	T_CHECK(bad, _pmv_store_inject(s, "put:eio:1") == 0, "inject refused");
	T_CHECK(bad, _pmv_store_put(s, r, 1) == 0 && r[0].status == -EIO && !r[0].handle,
		"put under EIO: %d", r[0].status);
	T_CHECK(bad, _pmv_store_inject(s, "get:enospc:1") == -EINVAL, "get:enospc accepted");
	_pmv_store_close(s);
	return bad;
}

/*
 * Damaged stored bytes are caught by the checksum (or the decompressor):
 * PMV_E_CHECKSUM, a zeroed buffer, never the wrong bytes. Both the direct
 * damage and the put:corrupt injection.
 */
static int test_corrupt_block_is_checksum_error(const struct t_case *c)
{
	int k = VK(c), ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), n = 6;
	struct _pmv_store *s = open_store(k, 0, NULL);
	uint8_t *p = pages_alloc(n, psz), *q = pages_alloc(1, psz);
	struct _pmv_store_req r[6];
	struct _pmv_store_stats st;

	if (!s || !p || !q)
		return 1;
	T_CHECK(bad, _pmv_store_inject(s, "put:corrupt:3") == 0, "inject refused");
	for (size_t i = 0; i < n; i++) {
		fill(p + i * psz, psz, k == K_FILE && i % 2 ? C_RANDOM : C_TEXT, i);
		r[i] = (struct _pmv_store_req){ .page = p + i * psz, .ps = ps };
	}
	T_CHECK(bad, _pmv_store_put(s, r, n) == n, "put failed: %d", r[0].status);
	_pmv_store_inject(s, "");
	/* pages 2 and 5 were damaged at put; damage page 0 now */
	T_CHECK(bad, _pmv_store_corrupt(s, r[0].handle) == 0, "corrupt failed");
	for (size_t i = 0; i < n; i++) {
		struct _pmv_store_req g = { .page = q, .ps = ps, .handle = r[i].handle };
		bool damaged = i == 0 || i == 2 || i == 5;

		memset(q, 0x77, psz);
		_pmv_store_get(s, &g, 1);
		if (damaged) {
			T_CHECK(bad, g.status == -PMV_E_CHECKSUM, "damaged page %zu: %d, want "
				"-EBADMSG", i, g.status);
			T_CHECK(bad, q[0] == 0 && !memcmp(q, q + 1, psz - 1),
				"damaged page %zu: the buffer holds bytes", i);
		} else {
			T_CHECK(bad, g.status == 0 && first_diff(q, p + i * psz, psz) < 0,
				"page %zu: %d", i, g.status);
		}
	}
	_pmv_store_stats(s, &st);
	T_CHECK(bad, st.csum_errors == 3, "%llu checksum errors, want 3",
		(unsigned long long)st.csum_errors);
	_pmv_store_close(s);
	return bad;
}

/* ---- file store specifics --------------------------------------------- */

/* The fd of the store's file: the one in /proc/self/fd under d, deleted. */
static int store_fd(const char *d, char *link, size_t len)
{
	DIR *fds = opendir("/proc/self/fd");
	struct dirent *de;
	int found = -1;

	while (fds && (de = readdir(fds))) {
		char path[300];
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		l = readlink(path, link, len - 1);
		if (l <= 0)
			continue;
		link[l] = 0;
		if (!strncmp(link, d, strlen(d)) && link[strlen(d)] == '/') {
			found = atoi(de->d_name);
			break;
		}
	}
	if (fds)
		closedir(fds);
	return found;
}

static int dir_entries(const char *d)
{
	DIR *dd = opendir(d);
	struct dirent *de;
	int n = 0;

	while (dd && (de = readdir(dd)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	if (dd)
		closedir(dd);
	return dd ? n : -1;
}

/*
 * The store file has no name (nothing in the directory, no link), mode
 * 0600; a chunk's blocks are punched when its pages go, and all of them
 * at close.
 */
static int test_file_unnamed_0600_punched(const struct t_case *c)
{
	char sub[128], link[512];
	int bad = 0, fd, dup;
	struct _pmv_store *s;
	struct stat st;
	uint8_t *p = pages_alloc(8, T_SZ_2M);
	struct _pmv_store_req r[8];
	uint64_t h[8];

	(void)c;
	snprintf(sub, sizeof(sub), "%s/unnamed", dir);
	if (mkdir(sub, 0755) && errno != EEXIST)
		return fprintf(stderr, "mkdir %s: %s\n", sub, strerror(errno)), 1;
	s = open_store(K_FILE, 0, sub);
	if (!s || !p)
		return 1;
	T_CHECK(bad, dir_entries(sub) == 0, "%d names in %s", dir_entries(sub), sub);
	fd = store_fd(sub, link, sizeof(link));
	T_CHECK(bad, fd >= 0, "no fd of the store under %s", sub);
	if (fd < 0)
		return bad;
	printf("  the store file: %s\n", link);
	T_CHECK(bad, fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_nlink == 0,
		"mode %o, %lu links; want 0600 and none", st.st_mode & 07777,
		(unsigned long)st.st_nlink);
	for (int i = 0; i < 8; i++) {
		fill(p + i * T_SZ_2M, T_SZ_2M, C_RANDOM, (uint64_t)i);
		r[i] = (struct _pmv_store_req){ .page = p + i * T_SZ_2M, .ps = PMV_PS_2M };
	}
	T_CHECK(bad, _pmv_store_put(s, r, 8) == 8, "put: %d", r[0].status);
	fstat(fd, &st);
	T_CHECK(bad, st.st_blocks * 512 >= 8 * (long)T_SZ_2M, "%lld bytes allocated for 16 MB",
		(long long)st.st_blocks * 512);
	for (int i = 0; i < 4; i++)
		h[i] = r[i].handle;
	_pmv_store_drop(s, h, 4);
	fstat(fd, &st);
	T_CHECK(bad, st.st_blocks * 512 <= 4 * (long)T_SZ_2M + (64 << 10),
		"%lld bytes allocated after dropping half of 16 MB", (long long)st.st_blocks * 512);
	/* our own reference to the inode, to see it after close */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	dup = open(link, O_RDONLY);
	T_CHECK(bad, dup >= 0, "reopen %s: %s", link, strerror(errno));
	_pmv_store_close(s);
	T_CHECK(bad, fstat(dup, &st) == 0 && st.st_blocks == 0, "%lld bytes left after close",
		(long long)st.st_blocks * 512);
	close(dup);
	T_CHECK(bad, dir_entries(sub) == 0, "a name left in %s", sub);
	rmdir(sub);
	return bad;
}

static bool ci(void)
{
	const char *v = getenv("CI");

	return v && !strcmp(v, "true");
}

/*
 * A file tier on a full file system (a 6 MB tmpfs we mount): the put that
 * does not fit gets -ENOSPC and nothing is lost of what went before; after
 * a drop there is room again.
 */
static int test_file_enospc_on_small_tmpfs(const struct t_case *c)
{
	char mnt[128];
	int ps = VPS(c), bad = 0;
	size_t psz = _pmv_ps_size(ps), n = ps == PMV_PS_2M ? 8 : 2048, got;
	struct _pmv_store *s;
	uint8_t *p, *q;
	struct _pmv_store_req *r;
	struct _pmv_store_stats st;

	if (geteuid() != 0) {
		printf("  not root: mounting a small tmpfs needs CAP_SYS_ADMIN\n");
		if (ci())
			return fprintf(stderr, "CI=true: this sub-test must run (as root)\n"), 1;
		return T_SUB_SKIP;
	}
	snprintf(mnt, sizeof(mnt), "%s/tmpfs-%s", dir, ps ? "2m" : "4k");
	if (mkdir(mnt, 0700) || mount("pmv-store-test", mnt, "tmpfs", 0, "size=6m,mode=0700"))
		return fprintf(stderr, "mount tmpfs on %s: %s\n", mnt, strerror(errno)), 1;
	s = open_store(K_FILE, 0, mnt);
	p = pages_alloc(n, psz);
	q = pages_alloc(1, psz);
	r = calloc(n, sizeof(*r));
	if (!s || !p || !q || !r) {
		umount2(mnt, MNT_DETACH);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		fill(p + i * psz, psz, C_RANDOM, i);
		r[i] = (struct _pmv_store_req){ .page = p + i * psz, .ps = ps };
	}
	got = _pmv_store_put(s, r, n);
	_pmv_store_stats(s, &st);
	printf("  %zu of %zu %s pages fit on a 6 MB tmpfs (O_DIRECT %s, io_uring %s)\n", got, n,
	       ps ? "2 MB" : "4 KB", st.direct_io ? "yes" : "no", st.uring ? "yes" : "no");
	T_CHECK(bad, got > 0 && got < n, "%zu of %zu stored on 6 MB", got, n);
	T_CHECK(bad, st.nospc == n - got, "%llu ENOSPC counted, %zu refused",
		(unsigned long long)st.nospc, n - got);
	for (size_t i = 0; i < n; i++) {
		struct _pmv_store_req g = { .page = q, .ps = ps, .handle = r[i].handle };

		if (!r[i].handle) {
			T_CHECK(bad, r[i].status == -ENOSPC, "page %zu: %d, want -ENOSPC", i,
				r[i].status);
			continue;
		}
		_pmv_store_get(s, &g, 1);
		if (g.status || first_diff(q, p + i * psz, psz) >= 0) {
			T_CHECK(bad, 0, "page %zu stored before ENOSPC: %d", i, g.status);
			break;
		}
	}
	/* free one chunk's worth and the refused page goes in */
	for (size_t i = 0, freed = 0; i < n && freed < T_SZ_2M / psz; i++)
		if (r[i].handle) {
			_pmv_store_drop(s, &r[i].handle, 1);
			r[i].handle = 0;
			freed++;
		}
	T_CHECK(bad, _pmv_store_put(s, &r[n - 1], 1) == 1, "no room after freeing 2 MB: %d",
		r[n - 1].status);
	_pmv_store_close(s);
	T_CHECK(bad, umount2(mnt, 0) == 0, "umount %s: %s", mnt, strerror(errno));
	rmdir(mnt);
	return bad;
}

/*
 * A file tier on a block device (a 10 MB loop device we set up): pages
 * round-trip, the device's size is the limit (ENOSPC past 4 whole chunks),
 * and close discards.
 */
static int test_file_on_block_device(const struct t_case *c)
{
	char img[128], cmd[512], dev[64] = "";
	int bad = 0;
	size_t n = 6;
	struct _pmv_store *s;
	uint8_t *p = pages_alloc(n, T_SZ_2M), *q = pages_alloc(1, T_SZ_2M);
	struct _pmv_store_req r[6];
	struct _pmv_store_stats st;
	FILE *f;

	(void)c;
	if (geteuid() != 0) {
		printf("  not root: a loop device needs CAP_SYS_ADMIN\n");
		if (ci())
			return fprintf(stderr, "CI=true: this sub-test must run (as root)\n"), 1;
		return T_SUB_SKIP;
	}
	snprintf(img, sizeof(img), "%s/bdev.img", dir);
	snprintf(cmd, sizeof(cmd), "truncate -s 10M %s && losetup -f --show %s", img, img);
	f = popen(cmd, "r");
	if (!f || !fgets(dev, sizeof(dev), f) || strncmp(dev, "/dev/loop", 9)) {
		if (f)
			pclose(f);
		unlink(img);
		return fprintf(stderr, "losetup: no loop device (%s)\n", dev), 1;
	}
	pclose(f);
	dev[strcspn(dev, "\n")] = 0;
	s = open_store(K_FILE, 0, dev);
	if (!s || !p || !q)
		bad++;
	for (size_t i = 0; s && i < n; i++) {
		fill(p + i * T_SZ_2M, T_SZ_2M, C_HALF, i);
		r[i] = (struct _pmv_store_req){ .page = p + i * T_SZ_2M, .ps = PMV_PS_2M };
	}
	if (s) {
		size_t got = _pmv_store_put(s, r, n);

		_pmv_store_stats(s, &st);
		printf("  %s: %zu of %zu 2 MB pages (O_DIRECT %s, io_uring %s)\n", dev, got, n,
		       st.direct_io ? "yes" : "no", st.uring ? "yes" : "no");
		T_CHECK(bad, got == 5 && r[5].status == -ENOSPC, "%zu stored on 10 MB, the 6th: %d",
			got, r[5].status);
		for (size_t i = 0; i < got; i++) {
			struct _pmv_store_req g = { .page = q, .ps = PMV_PS_2M, .handle = r[i].handle };

			_pmv_store_get(s, &g, 1);
			T_CHECK(bad, g.status == 0 && first_diff(q, p + i * T_SZ_2M, T_SZ_2M) < 0,
				"page %zu: %d", i, g.status);
		}
		_pmv_store_close(s);
	}
	snprintf(cmd, sizeof(cmd), "losetup -d %s", dev);
	T_CHECK(bad, system(cmd) == 0, "%s failed", cmd);
	unlink(img);
	return bad;
}

/* ---- the configuration -------------------------------------------------- */

static int test_tiers_parse_good(const struct t_case *c)
{
	static const struct {
		const char *text;
		int n;
		struct { int kind, node, level; size_t cap; const char *path, *name; } t[3];
	} good[] = {
		{ "mem@0:512M,lz4:1G,file@/var/tmp:8G", 3, {
			{ PMV_TIER_MEM, 0, 0, 512UL << 20, NULL, "mem@0" },
			{ PMV_TIER_LZ4, -1, 0, 1UL << 30, NULL, "lz4" },
			{ PMV_TIER_FILE, -1, 0, 8UL << 30, "/var/tmp", "file@/var/tmp" } } },
		{ "mem", 1, { { PMV_TIER_MEM, -1, 0, 0, NULL, "mem" } } },
		{ " mem:4096 , zstd@-3 ", 2, {
			{ PMV_TIER_MEM, -1, 0, 4096, NULL, "mem" },
			{ PMV_TIER_ZSTD, -1, -3, 0, NULL, "zstd@-3" } } },
		{ "mem@1:2g,mem@0:3k,zstd@19:1t", 3, {
			{ PMV_TIER_MEM, 1, 0, 2UL << 30, NULL, "mem@1" },
			{ PMV_TIER_MEM, 0, 0, 3UL << 10, NULL, "mem@0" },
			{ PMV_TIER_ZSTD, -1, 19, 1UL << 40, NULL, "zstd@19" } } },
		{ "mem,file@/dev/sdz", 2, {
			{ PMV_TIER_MEM, -1, 0, 0, NULL, "mem" },
			{ PMV_TIER_FILE, -1, 0, 0, "/dev/sdz", "file@/dev/sdz" } } },
	};
	struct pmv_tier_config t[PMV_MAX_TIERS];
	int bad = 0;

	(void)c;
	for (size_t g = 0; g < sizeof(good) / sizeof(good[0]); g++) {
		size_t len = strlen(good[g].text) + 1;
		char *buf = malloc(len);	/* exactly what the header promises suffices */
		int n = pmv_tiers_parse(good[g].text, t, PMV_MAX_TIERS, buf, len);

		T_CHECK(bad, n == good[g].n, "'%s': %d (%s)", good[g].text, n, pmv_errmsg());
		for (int i = 0; i < n && n == good[g].n; i++) {
			T_CHECK(bad, t[i].kind == good[g].t[i].kind && t[i].node == good[g].t[i].node &&
				     t[i].level == good[g].t[i].level &&
				     t[i].capacity == good[g].t[i].cap,
				"'%s' tier %d: kind %d node %d level %d capacity %zu", good[g].text,
				i, t[i].kind, t[i].node, t[i].level, t[i].capacity);
			T_CHECK(bad, !strcmp(t[i].name, good[g].t[i].name), "'%s' tier %d: name '%s'",
				good[g].text, i, t[i].name);
			T_CHECK(bad, good[g].t[i].path ? t[i].path &&
				     !strcmp(t[i].path, good[g].t[i].path) : !t[i].path,
				"'%s' tier %d: path '%s'", good[g].text, i,
				t[i].path ? t[i].path : "(null)");
		}
		free(buf);
	}
	return bad;
}

static int test_tiers_parse_bad(const struct t_case *c)
{
	static const struct {
		const char *text;
		int err;
		const char *says;	/* in the message */
	} bads[] = {
		{ "", -EINVAL, "empty" },
		{ "mem,,lz4", -EINVAL, "tier 1 is empty" },
		{ "ram:1G", -EINVAL, "'ram'" },
		{ "lz4,mem", -EINVAL, "far tiers come after" },
		{ "lz4", -EINVAL, "no memory tier" },
		{ "mem,lz4,mem@0", -EINVAL, "tier 2 'mem@0'" },
		{ "mem:0", -EINVAL, "capacity 0" },
		{ "mem:12X", -EINVAL, "'12X'" },
		{ "mem:-1", -EINVAL, "'-1'" },
		{ "mem:99999999999999999999", -ERANGE, "too large" },
		{ "mem:17179869184G", -ERANGE, "too large" },
		{ "mem@x", -EINVAL, "node 'x'" },
		{ "mem@-1", -EINVAL, "node '-1'" },
		{ "mem@", -EINVAL, "nothing after '@'" },
		{ "mem,lz4@3", -EINVAL, "lz4 takes no '@'" },
		{ "mem,zstd@99", -EINVAL, "zstd level 99" },
		{ "mem,zstd@fast", -EINVAL, "'fast'" },
		{ "mem,file", -EINVAL, "file needs" },
		{ "mem,file:1G", -EINVAL, "file needs" },
		{ "mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem,mem", -E2BIG,
		  "more than 16" },
	};
	struct pmv_tier_config t[PMV_MAX_TIERS];
	char buf[256];
	int bad = 0, n;

	(void)c;
	for (size_t b = 0; b < sizeof(bads) / sizeof(bads[0]); b++) {
		n = pmv_tiers_parse(bads[b].text, t, PMV_MAX_TIERS, buf, sizeof(buf));
		T_CHECK(bad, n == bads[b].err, "'%s': %d, want %d", bads[b].text, n, bads[b].err);
		T_CHECK(bad, strstr(pmv_errmsg(), bads[b].says), "'%s': message '%s' lacks '%s'",
			bads[b].text, pmv_errmsg(), bads[b].says);
	}
	T_CHECK(bad, pmv_tiers_parse("mem,lz4", t, 1, buf, sizeof(buf)) == -E2BIG, "max 1");
	T_CHECK(bad, pmv_tiers_parse("mem@0,file@/var/tmp", t, 4, buf, 10) == -ENOBUFS,
		"a 10-byte buffer for 20 bytes of names");
	T_CHECK(bad, pmv_tiers_parse(NULL, t, 4, buf, 10) == -EINVAL, "NULL text");
	return bad;
}

/* pmv_create checks far tiers, and refuses valid ones until they are wired. */
static int test_create_checks_far_tiers(const struct t_case *c)
{
	struct pmv_tier_config t[3];
	struct pmv_config cfg = { .ntiers = 2, .tiers = t };
	char buf[64];
	int bad = 0;

	(void)c;
	T_CHECK(bad, pmv_tiers_parse("lz4,mem", t, 3, buf, sizeof(buf)) < 0, "parsed lz4,mem");
	t[0] = (struct pmv_tier_config){ .kind = PMV_TIER_LZ4, .node = PMV_NODE_ANY };
	t[1] = (struct pmv_tier_config){ .kind = PMV_TIER_MEM, .node = PMV_NODE_ANY };
	errno = 0;
	T_CHECK(bad, !pmv_create(&cfg) && errno == EINVAL, "lz4 before memory: errno %d", errno);
	T_CHECK(bad, pmv_tiers_parse("mem,zstd@1", t, 3, buf, sizeof(buf)) == 2, "parse");
	errno = 0;
	{
		/* far tiers work (t_far); user-mode-only mode refuses them */
		pmv_ctx *ctx = pmv_create(&cfg);

		T_CHECK(bad, ctx || errno == EPERM, "mem,zstd: errno %d (%s)", errno,
			pmv_errmsg());
		t_destroy(ctx);
	}
	t[1].level = 1000;
	errno = 0;
	T_CHECK(bad, !pmv_create(&cfg) && errno == EINVAL, "zstd level 1000: errno %d", errno);
	return bad;
}

/* ---- runner ------------------------------------------------------------- */

static void run(struct t_suite *s, const char *fn, t_case_fn f, int k, int huge)
{
	char name[128];
	struct t_case c = { .mode = -1, .huge = huge, .variant = k * 2 + huge, .name = name };

	if (k >= 0)
		snprintf(name, sizeof(name), "%s_%s_%s", fn, kname[k], huge ? "2m" : "4k");
	else
		snprintf(name, sizeof(name), "%s", fn);
	t_run_isolated(s, &c, f, 0);
}

#define RUN_ALL(s, fn)							\
	do {								\
		for (int _k = 0; _k < K_NR; _k++)			\
			for (int _h = 0; _h < 2; _h++)			\
				run(s, #fn, fn, _k, _h);		\
	} while (0)

static void cleanup(void)
{
	rmdir(dir);
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	/* on the disk, as a file tier would be: /tmp may itself be a tmpfs */
	snprintf(dir, sizeof(dir), "/var/tmp/t_store.XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "/tmp/t_store.XXXXXX");
		if (!mkdtemp(dir))
			T_FAIL("mkdtemp: %s", strerror(errno));
	}
	atexit(cleanup);
	RUN_ALL(&s, test_roundtrip);
	/* the compressed stores: the file store keeps every page as it is */
	for (int h = 0; h < 2; h++) {
		run(&s, "test_raw_ok_keeps_incompressible_pages",
		    test_raw_ok_keeps_incompressible_pages, K_LZ4, h);
		run(&s, "test_raw_ok_keeps_incompressible_pages",
		    test_raw_ok_keeps_incompressible_pages, K_ZSTD, h);
	}
	RUN_ALL(&s, test_same_filled_takes_no_storage);
	RUN_ALL(&s, test_capacity_is_allocator_bytes);
	RUN_ALL(&s, test_concurrent_put_get);
	RUN_ALL(&s, test_eio_reported_page_kept);
	RUN_ALL(&s, test_corrupt_block_is_checksum_error);
	run(&s, "test_file_unnamed_0600_punched", test_file_unnamed_0600_punched, -1, 0);
	run(&s, "test_file_enospc_on_small_tmpfs", test_file_enospc_on_small_tmpfs, K_FILE, 0);
	run(&s, "test_file_enospc_on_small_tmpfs", test_file_enospc_on_small_tmpfs, K_FILE, 1);
	run(&s, "test_file_on_block_device", test_file_on_block_device, -1, 0);
	run(&s, "test_tiers_parse_good", test_tiers_parse_good, -1, 0);
	run(&s, "test_tiers_parse_bad", test_tiers_parse_bad, -1, 0);
	run(&s, "test_create_checks_far_tiers", test_create_checks_far_tiers, -1, 0);
	return t_suite_end(&s);
}
