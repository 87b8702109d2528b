/* SPDX-License-Identifier: MIT */
/*
 * The compressed in-RAM store (lz4 and zstd tiers): a codec (store_lz4.c,
 * store_zstd.c) and an allocator for the compressed blobs.
 *
 * A page is compressed into a scratch buffer of 3/4 of its size; if it
 * does not fit there it is refused (PMV_E_INCOMPRESSIBLE, for the caller
 * to send elsewhere), as storing it would save less than a quarter. On the
 * last far tier (raw_ok) there is nowhere else: refusing would leave a
 * full memory tier no room, and the program a SIGBUS, so the page is kept
 * as it is, as zram keeps its incompressible pages. A blob of the page's
 * own size is such a raw copy (a compressed one is always smaller).
 *
 * Allocator. The capacity of a compressed tier counts the bytes the store
 * really uses, allocator waste included, so the allocator must know them
 * exactly. malloc_usable_size() does not: it leaves out glibc's chunk
 * headers, the bins' free chunks and the arenas' slack, none of which a
 * process can see (nor can ASan's allocator be asked the same). So blobs
 * live in memory the store maps itself, and stored_bytes is what it has
 * mapped and not given back:
 *  - small blobs (up to 4 KB: a 4 KB page's, compressed or raw) go to size
 *    classes 32 bytes apart, each with spans of 64 KB cut into equal
 *    slots, as zsmalloc's classes are; a blob's waste is its rounding (at
 *    most 31 bytes) and a span's its tail (under one slot). A class keeps
 *    its partly used spans on a list and at most one empty span; a span
 *    that empties beyond that goes back to the kernel (MADV_DONTNEED) and
 *    out of the count. Spans are cut from 2 MB arenas of address space so
 *    that thousands of spans are not thousands of mappings.
 *  - large blobs (a 2 MB page's, up to 1.5 MB, or 2 MB raw) get their own
 *    mapping, rounded up to 4 KB: at most 4 KB of waste on at least 3 KB
 *    saved.
 * Each class has its own lock, so puts of different sizes do not contend.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "store.h"

#define STEP		32
#define SMALL_MAX	PMV_SIZE_4K			/* a raw 4 KB page */
#define NCLASSES	(SMALL_MAX / STEP)		/* 128 */
#define SPAN		(64UL << 10)
#define ARENA		(2UL << 20)
#define LARGE_ALIGN	PMV_SIZE_4K

struct span {
	struct span *next, *prev;	/* on its class's partial list */
	char *base;
	uint16_t slot_size, nslots, nused, bump;
	uint16_t free_head;		/* slot + 1, chained in the free slots */
	bool on_list;
};

struct class {
	pthread_mutex_t mu;
	struct span partial;		/* sentinel */
	struct span *empty;		/* at most one kept empty */
};

struct ram {
	struct class cls[NCLASSES];
	pthread_mutex_t arena_mu;	/* arenas, free span VA */
	char **arenas;
	size_t narenas, cap_arenas, arena_used;	/* bytes cut from the last arena */
	char **free_va;			/* span VA given back to the kernel */
	size_t nfree_va, cap_free_va;
	pthread_mutex_t spans_mu;	/* all spans, to free at close */
	struct span **spans;
	size_t nspans, cap_spans;
	/* span descriptors (under arena_mu): carved from kmem pages, kept */
	struct span *free_desc;
	void *desc_pages;		/* chained through their first word */
};

static void list_del(struct span *sp)
{
	sp->prev->next = sp->next;
	sp->next->prev = sp->prev;
	sp->on_list = false;
}

static void list_add(struct class *c, struct span *sp)
{
	sp->next = c->partial.next;
	sp->prev = &c->partial;
	c->partial.next->prev = sp;
	c->partial.next = sp;
	sp->on_list = true;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	void *p;
	size_t ncap;

	if (need <= *cap)
		return true;
	ncap = *cap ? *cap * 2 : 64;
	while (ncap < need)
		ncap *= 2;
	p = _pmv_krealloc(*arr, ncap * elem);
	if (!p)
		return false;
	*arr = p;
	*cap = ncap;
	return true;
}

/* SPAN bytes of address space for a span: reused VA, or cut from an arena. */
static char *span_va(struct ram *m)
{
	char *va = NULL;

	pthread_mutex_lock(&m->arena_mu);
	if (m->nfree_va) {
		va = m->free_va[--m->nfree_va];
	} else {
		if (!m->narenas || m->arena_used == ARENA) {
			char *a;

			if (!grow((void **)&m->arenas, &m->cap_arenas, m->narenas + 1,
				  sizeof(*m->arenas)))
				goto out;
			/* NORESERVE: only the spans in use are memory */
			a = mmap(NULL, ARENA, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
			if (a == MAP_FAILED)
				goto out;
			m->arenas[m->narenas++] = a;
			m->arena_used = 0;
		}
		va = m->arenas[m->narenas - 1] + m->arena_used;
		m->arena_used += SPAN;
	}
out:
	pthread_mutex_unlock(&m->arena_mu);
	return va;
}

static void span_va_put(struct ram *m, char *va)
{
	/* the bytes go back to the kernel; the address space stays ours */
	madvise(va, SPAN, MADV_DONTNEED);
	pthread_mutex_lock(&m->arena_mu);
	if (grow((void **)&m->free_va, &m->cap_free_va, m->nfree_va + 1, sizeof(*m->free_va)))
		m->free_va[m->nfree_va++] = va;
	pthread_mutex_unlock(&m->arena_mu);
}

/*
 * A span's descriptor. Stores run where a fault may wait (internal.h's
 * allocator rule), so not from malloc; a kmem page apiece would add 6 %
 * to each 64 KB span, so a page is cut into many.
 */
static struct span *desc_get(struct ram *m)
{
	struct span *sp;

	pthread_mutex_lock(&m->arena_mu);
	if (!m->free_desc) {
		size_t sz = PMV_SIZE_4K - 16, first = sizeof(struct span);
		char *pg = _pmv_kalloc(sz);

		if (pg) {
			/* descriptor 0's room holds the chain of pages */
			*(void **)pg = m->desc_pages;
			m->desc_pages = pg;
			for (size_t o = first; o + sizeof(*sp) <= sz; o += sizeof(*sp)) {
				sp = (struct span *)(pg + o);
				sp->next = m->free_desc;
				m->free_desc = sp;
			}
		}
	}
	sp = m->free_desc;
	if (sp) {
		m->free_desc = sp->next;
		memset(sp, 0, sizeof(*sp));
	}
	pthread_mutex_unlock(&m->arena_mu);
	return sp;
}

static void desc_put(struct ram *m, struct span *sp)
{
	if (!sp)
		return;
	pthread_mutex_lock(&m->arena_mu);
	sp->next = m->free_desc;
	m->free_desc = sp;
	pthread_mutex_unlock(&m->arena_mu);
}

/* A new span of class ci, charged: NULL with *err -ENOSPC or -ENOMEM. */
static struct span *span_new(struct _pmv_store *s, struct ram *m, unsigned ci, int *err)
{
	struct span *sp;

	if (!_pmv_store_charge(s, SPAN)) {
		*err = -ENOSPC;
		return NULL;
	}
	sp = desc_get(m);
	if (sp)
		sp->base = span_va(m);
	if (!sp || !sp->base) {
		desc_put(m, sp);
		_pmv_store_uncharge(s, SPAN);
		*err = -ENOMEM;
		return NULL;
	}
	sp->slot_size = (uint16_t)((ci + 1) * STEP);
	sp->nslots = (uint16_t)(SPAN / sp->slot_size);
	pthread_mutex_lock(&m->spans_mu);
	if (!grow((void **)&m->spans, &m->cap_spans, m->nspans + 1, sizeof(*m->spans))) {
		pthread_mutex_unlock(&m->spans_mu);
		span_va_put(m, sp->base);
		desc_put(m, sp);
		_pmv_store_uncharge(s, SPAN);
		*err = -ENOMEM;
		return NULL;
	}
	m->spans[m->nspans++] = sp;
	pthread_mutex_unlock(&m->spans_mu);
	return sp;
}

static void span_release(struct _pmv_store *s, struct ram *m, struct span *sp)
{
	pthread_mutex_lock(&m->spans_mu);
	for (size_t i = 0; i < m->nspans; i++)
		if (m->spans[i] == sp) {
			m->spans[i] = m->spans[--m->nspans];
			break;
		}
	pthread_mutex_unlock(&m->spans_mu);
	span_va_put(m, sp->base);
	desc_put(m, sp);
	_pmv_store_uncharge(s, SPAN);
}

/* A slot for len bytes: 0 and *spp, *slot; or -ENOSPC, -ENOMEM. */
static int small_alloc(struct _pmv_store *s, struct ram *m, size_t len, struct span **spp,
		       uint16_t *slot)
{
	unsigned ci = (unsigned)((len + STEP - 1) / STEP) - 1;
	struct class *c = &m->cls[ci];
	struct span *sp;
	int err = 0;

	pthread_mutex_lock(&c->mu);
	sp = c->partial.next != &c->partial ? c->partial.next : NULL;
	if (!sp && c->empty) {
		sp = c->empty;
		c->empty = NULL;
		list_add(c, sp);
	}
	if (!sp) {
		/* a new span: charged (and mapped) without the class lock held */
		pthread_mutex_unlock(&c->mu);
		sp = span_new(s, m, ci, &err);
		if (!sp)
			return err;
		pthread_mutex_lock(&c->mu);
		list_add(c, sp);
	}
	if (sp->free_head) {
		*slot = sp->free_head - 1;
		memcpy(&sp->free_head, sp->base + (size_t)*slot * sp->slot_size,
		       sizeof(sp->free_head));
	} else {
		*slot = sp->bump++;
	}
	if (++sp->nused == sp->nslots)
		list_del(sp);
	*spp = sp;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static void small_free(struct _pmv_store *s, struct ram *m, struct span *sp, uint16_t slot)
{
	struct class *c = &m->cls[sp->slot_size / STEP - 1];
	bool release = false;

	pthread_mutex_lock(&c->mu);
	/* the chain's head is read under the lock: another free may be pushing */
	memcpy(sp->base + (size_t)slot * sp->slot_size, &sp->free_head, sizeof(sp->free_head));
	sp->free_head = slot + 1;
	if (sp->nused-- == sp->nslots)
		list_add(c, sp);
	if (!sp->nused) {
		list_del(sp);
		sp->free_head = 0;
		sp->bump = 0;
		if (!c->empty)
			c->empty = sp;
		else
			release = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (release)
		span_release(s, m, sp);
}

static size_t large_size(size_t len)
{
	return (len + LARGE_ALIGN - 1) & ~(LARGE_ALIGN - 1);
}

/* ---- scratch: one buffer per thread for a 2 MB page's compression ---- */

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_make_key(void)
{
	pthread_key_create(&scratch_key, _pmv_kfree);
}

/* kmem, not malloc: a fault handler's direct reclaim compresses too */
static void *scratch_2m(void)
{
	void *p;

	pthread_once(&scratch_once, scratch_make_key);
	p = pthread_getspecific(scratch_key);
	if (!p) {
		p = _pmv_kalloc(PMV_SIZE_2M * 3 / 4);
		if (p && pthread_setspecific(scratch_key, p)) {
			_pmv_kfree(p);
			p = NULL;
		}
	}
	return p;
}

/* ---- ops --------------------------------------------------------------- */

static int ram_open(struct _pmv_store *s, const struct pmv_tier_config *tc)
{
	struct ram *m = calloc(1, sizeof(*m));

	(void)tc;
	if (!m)
		return -ENOMEM;
	for (unsigned i = 0; i < NCLASSES; i++) {
		pthread_mutex_init(&m->cls[i].mu, NULL);
		m->cls[i].partial.next = m->cls[i].partial.prev = &m->cls[i].partial;
	}
	pthread_mutex_init(&m->arena_mu, NULL);
	pthread_mutex_init(&m->spans_mu, NULL);
	s->priv = m;
	return 0;
}

static void ram_free(struct _pmv_store *s, struct _pmv_store_entry *e)
{
	struct ram *m = s->priv;

	if (e->len > SMALL_MAX) {
		munmap((void *)(uintptr_t)e->ref, large_size(e->len));
		_pmv_store_uncharge(s, large_size(e->len));
	} else {
		small_free(s, m, (struct span *)(uintptr_t)e->ref, e->aux);
	}
}

static void ram_close(struct _pmv_store *s)
{
	struct ram *m = s->priv;

	/* large blobs are not listed: free every live entry's */
	for (uint32_t c = 0; c < s->nchunks; c++) {
		struct _pmv_store_entry *ch = atomic_load_explicit(&s->dir[c],
								   memory_order_relaxed);

		for (uint32_t k = 0; k < (1u << ENTRY_SHIFT); k++)
			if (ch[k].state == ENTRY_STORED && ch[k].len > SMALL_MAX)
				munmap((void *)(uintptr_t)ch[k].ref, large_size(ch[k].len));
	}
	while (m->desc_pages) {
		void *pg = m->desc_pages;

		m->desc_pages = *(void **)pg;
		_pmv_kfree(pg);
	}
	for (size_t i = 0; i < m->narenas; i++)
		munmap(m->arenas[i], ARENA);
	for (unsigned i = 0; i < NCLASSES; i++)
		pthread_mutex_destroy(&m->cls[i].mu);
	pthread_mutex_destroy(&m->arena_mu);
	pthread_mutex_destroy(&m->spans_mu);
	_pmv_kfree(m->spans);
	_pmv_kfree(m->arenas);
	_pmv_kfree(m->free_va);
	free(m);
	s->priv = NULL;
}

static int put_one(struct _pmv_store *s, struct _pmv_store_req *r)
{
	struct ram *m = s->priv;
	size_t psz = _pmv_ps_size(r->ps), cap = psz * 3 / 4 - 1, len;
	char small[PMV_SIZE_4K * 3 / 4];
	char *buf = r->ps == PMV_PS_2M ? scratch_2m() : small;

	if (!buf)
		return -ENOMEM;
	/* below 3/4 of the page, or as it is where nothing else can take it */
	len = s->codec->compress(s, r->page, psz, buf, cap);
	if (!len && !r->raw_ok)
		return -PMV_E_INCOMPRESSIBLE;
	if (!len) {
		_pmv_stat_add(&s->incompressible, 1);
		buf = r->page;
		len = psz;
	}
	r->e->len = (uint32_t)len;
	if (len <= SMALL_MAX) {
		struct span *sp;
		uint16_t slot;
		int ret = small_alloc(s, m, len, &sp, &slot);

		if (ret)
			return ret;
		memcpy(sp->base + (size_t)slot * sp->slot_size, buf, len);
		r->e->ref = (uintptr_t)sp;
		r->e->aux = slot;
		return 0;
	}
	if (!_pmv_store_charge(s, large_size(len)))
		return -ENOSPC;
	void *blob = mmap(NULL, large_size(len), PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (blob == MAP_FAILED) {
		_pmv_store_uncharge(s, large_size(len));
		return -ENOMEM;
	}
	memcpy(blob, buf, len);
	r->e->ref = (uintptr_t)blob;
	return 0;
}

static void ram_put(struct _pmv_store *s, struct _pmv_store_req **r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r[i]->status = put_one(s, r[i]);
}

static const void *blob_of(const struct _pmv_store_entry *e)
{
	const struct span *sp;

	if (e->len > SMALL_MAX)
		return (const void *)(uintptr_t)e->ref;
	sp = (const struct span *)(uintptr_t)e->ref;
	return sp->base + (size_t)e->aux * sp->slot_size;
}

static void ram_get(struct _pmv_store *s, struct _pmv_store_req **r, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t psz = _pmv_ps_size(r[i]->ps);

		if (r[i]->e->len == psz) {
			memcpy(r[i]->page, blob_of(r[i]->e), psz);
			r[i]->status = 0;
		} else {
			r[i]->status = s->codec->decompress(s, blob_of(r[i]->e), r[i]->e->len,
							    r[i]->page, psz);
		}
	}
}

static int ram_corrupt(struct _pmv_store *s, const struct _pmv_store_entry *e)
{
	(void)s;
	/* the middle byte: lz4 and zstd may or may not notice; the checksum does */
	((unsigned char *)blob_of(e))[e->len / 2] ^= 0x5a;
	return 0;
}

const struct _pmv_store_ops _pmv_store_ram_ops = {
	.name = "ram",
	.open = ram_open,
	.close = ram_close,
	.put = ram_put,
	.get = ram_get,
	.free = ram_free,
	.corrupt = ram_corrupt,
};
