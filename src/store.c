/* SPDX-License-Identifier: MIT */
/*
 * Far-tier stores, the front end every kind shares (internal.h has the
 * contracts, store.h the backends'): the handle table, same-filled pages,
 * checksums, counters and fault injection. What holds the bytes is the
 * backend: store_ram.c (compressed in RAM, with lz4 or zstd) or
 * store_file.c (a file or a block device).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "store.h"

static const char *const kind_names[PMV_TIER_KIND_NR] = {
	[PMV_TIER_MEM] = "mem",
	[PMV_TIER_LZ4] = "lz4",
	[PMV_TIER_ZSTD] = "zstd",
	[PMV_TIER_FILE] = "file",
};

const char *_pmv_tier_kind_name(int kind)
{
	return kind >= 0 && kind < PMV_TIER_KIND_NR ? kind_names[kind] : "?";
}

int _pmv_store_config_check(const struct pmv_tier_config *tc, char *why, size_t len)
{
	switch (tc->kind) {
	case PMV_TIER_LZ4:
		if (tc->level || tc->path) {
			snprintf(why, len, "an lz4 tier has no level nor path");
			return -EINVAL;
		}
		return 0;
	case PMV_TIER_ZSTD:
		if (tc->path) {
			snprintf(why, len, "a zstd tier has no path");
			return -EINVAL;
		}
		/* 0 is the default, 3; negative levels are zstd's fast ones */
		if (tc->level < ZSTD_minCLevel() || tc->level > ZSTD_maxCLevel()) {
			snprintf(why, len, "zstd level %d is not in %d..%d", tc->level,
				 ZSTD_minCLevel(), ZSTD_maxCLevel());
			return -EINVAL;
		}
		return 0;
	case PMV_TIER_FILE:
		if (!tc->path || !*tc->path) {
			snprintf(why, len, "a file tier needs a path (a directory or a block device)");
			return -EINVAL;
		}
		if (tc->level) {
			snprintf(why, len, "a file tier has no level");
			return -EINVAL;
		}
		return 0;
	default:
		snprintf(why, len, "%s is not a far tier kind", _pmv_tier_kind_name(tc->kind));
		return -EINVAL;
	}
}

/* ---- the handle table ------------------------------------------------ */

#define CHUNK_ENTRIES	(1u << ENTRY_SHIFT)

static struct _pmv_store_entry *entry_at(struct _pmv_store *s, uint32_t idx)
{
	/*
	 * Acquire: pairs with the release that published the chunk, for a
	 * thread that got a handle from another without the table's lock.
	 */
	struct _pmv_store_entry *c = atomic_load_explicit(&s->dir[idx >> ENTRY_SHIFT],
							  memory_order_acquire);

	return c ? &c[idx & (CHUNK_ENTRIES - 1)] : NULL;
}

/* A live entry of page size ps for handle h, or NULL. */
static struct _pmv_store_entry *entry_of(struct _pmv_store *s, uint64_t h, int ps)
{
	struct _pmv_store_entry *e;

	if (!h || h > (uint64_t)ENTRY_DIR * CHUNK_ENTRIES)
		return NULL;
	e = entry_at(s, (uint32_t)(h - 1));
	if (!e || e->state == ENTRY_FREE || (ps >= 0 && e->ps != ps))
		return NULL;
	return e;
}

/* Take n entries into r[i].e / r[i].handle; false (none taken) if the table is full. */
static bool entries_take(struct _pmv_store *s, struct _pmv_store_req *r, size_t n)
{
	size_t i = 0;

	pthread_mutex_lock(&s->entry_mu);
	while (i < n) {
		if (s->free_head) {
			uint32_t idx = s->free_head - 1;
			struct _pmv_store_entry *e = entry_at(s, idx);

			s->free_head = e->next_free;
			r[i].e = e;
			r[i].handle = (uint64_t)idx + 1;
			i++;
			continue;
		}
		if (s->nchunks == ENTRY_DIR)
			break;
		struct _pmv_store_entry *c = _pmv_kcalloc(CHUNK_ENTRIES, sizeof(*c));

		if (!c)
			break;
		/* chain the new chunk's entries, last first, into the free list */
		for (uint32_t k = CHUNK_ENTRIES; k-- > 0;) {
			c[k].next_free = s->free_head;
			s->free_head = s->nchunks * CHUNK_ENTRIES + k + 1;
		}
		atomic_store_explicit(&s->dir[s->nchunks], c, memory_order_release);
		s->nchunks++;
	}
	if (i < n) {
		/* all or nothing: give back what was taken */
		while (i-- > 0) {
			r[i].e->next_free = s->free_head;
			s->free_head = (uint32_t)r[i].handle;
			r[i].e = NULL;
			r[i].handle = 0;
		}
		pthread_mutex_unlock(&s->entry_mu);
		return false;
	}
	pthread_mutex_unlock(&s->entry_mu);
	return true;
}

static void entries_give(struct _pmv_store *s, struct _pmv_store_entry **e, const uint64_t *h,
			 size_t n)
{
	pthread_mutex_lock(&s->entry_mu);
	for (size_t i = 0; i < n; i++) {
		if (!e[i])
			continue;
		e[i]->state = ENTRY_FREE;
		e[i]->next_free = s->free_head;
		s->free_head = (uint32_t)h[i];
	}
	pthread_mutex_unlock(&s->entry_mu);
}

/* ---- open / close ---------------------------------------------------- */

int _pmv_store_open(struct _pmv_store **sp, const struct pmv_tier_config *tc)
{
	struct _pmv_store *s;
	char why[160];
	const char *env;
	int ret;

	*sp = NULL;
	if (_pmv_store_config_check(tc, why, sizeof(why)))
		return _pmv_set_errmsg(-EINVAL, "store: %s", why);
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dir = calloc(ENTRY_DIR, sizeof(*s->dir));
	if (!s->dir) {
		free(s);
		return -ENOMEM;
	}
	pthread_mutex_init(&s->entry_mu, NULL);
	s->kind = tc->kind;
	s->level = tc->level ? tc->level : ZSTD_CLEVEL_DEFAULT;
	s->capacity = tc->capacity;
	switch (tc->kind) {
	case PMV_TIER_LZ4:
		s->ops = &_pmv_store_ram_ops;
		s->codec = &_pmv_codec_lz4;
		break;
	case PMV_TIER_ZSTD:
		s->ops = &_pmv_store_ram_ops;
		s->codec = &_pmv_codec_zstd;
		break;
	default:
		s->ops = &_pmv_store_file_ops;
		break;
	}
	/* a backend whose open fails has undone it: no close for it then */
	ret = s->ops->open(s, tc);
	if (ret)
		s->ops = NULL;
	env = getenv("PAGEMOVE_INJECT_STORE");
	if (!ret && env && *env && _pmv_store_inject(s, env))
		ret = _pmv_set_errmsg(-EINVAL, "PAGEMOVE_INJECT_STORE=%s: want OP:ERR:N,...", env);
	if (ret) {
		_pmv_store_close(s);
		return ret;
	}
	*sp = s;
	return 0;
}

void _pmv_store_close(struct _pmv_store *s)
{
	if (!s)
		return;
	if (s->ops)
		s->ops->close(s);
	for (uint32_t c = 0; c < s->nchunks; c++)
		_pmv_kfree(atomic_load_explicit(&s->dir[c], memory_order_relaxed));
	free(s->dir);
	pthread_mutex_destroy(&s->entry_mu);
	free(s);
}

/* ---- fault injection ------------------------------------------------- */

enum { INJ_PUT, INJ_GET };

int _pmv_store_inject(struct _pmv_store *s, const char *spec)
{
	char buf[128], *save = NULL, *tok;

	for (int i = 0; i < 2; i++)
		s->inject[i].every = 0;
	if (strlen(spec) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, spec);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char op[8], err[16];
		unsigned every;
		int o, e;

		if (sscanf(tok, "%7[a-z]:%15[a-z]:%u", op, err, &every) != 3 || !every)
			return -EINVAL;
		o = !strcmp(op, "put") ? INJ_PUT : !strcmp(op, "get") ? INJ_GET : -1;
		e = !strcmp(err, "eio") ? -EIO : !strcmp(err, "enospc") ? -ENOSPC :
		    !strcmp(err, "corrupt") ? 1 : 0;
		if (o < 0 || !e || (o == INJ_GET && e != -EIO))
			return -EINVAL;
		s->inject[o].err = e;
		atomic_store(&s->inject[o].count, 0);
		s->inject[o].every = every;
	}
	return 0;
}

/* 0, or the error the next call of op is to have. */
static int inject_hit(struct _pmv_store *s, int op)
{
	unsigned every = s->inject[op].every;

	if (!every)
		return 0;
	if (atomic_fetch_add_explicit(&s->inject[op].count, 1, memory_order_relaxed) % every !=
	    every - 1)
		return 0;
	return s->inject[op].err;
}

int _pmv_store_corrupt(struct _pmv_store *s, uint64_t h)
{
	struct _pmv_store_entry *e = entry_of(s, h, -1);

	if (!e || e->state != ENTRY_STORED)
		return -EINVAL;
	return s->ops->corrupt(s, e);
}

/* ---- pages ----------------------------------------------------------- */

/* Is the page one 8-byte word repeated? Then *word is it. */
static bool same_filled(const void *page, size_t size, uint64_t *word)
{
	const uint64_t *w = page;
	uint64_t v = w[0];

	/* the last word first: most pages that are not same-filled differ there */
	if (w[size / 8 - 1] != v)
		return false;
	for (size_t i = 1; i < size / 8; i++)
		if (w[i] != v)
			return false;
	*word = v;
	return true;
}

static void fill_word(void *page, size_t size, uint64_t v)
{
	uint64_t *w = page;

	if (!v) {
		memset(page, 0, size);
		return;
	}
	for (size_t i = 0; i < size / 8; i++)
		w[i] = v;
}

static uint64_t checksum(const void *page, size_t size)
{
	return XXH3_64bits(page, size);
}

#define BATCH	64	/* requests handed to the backend at once */

size_t _pmv_store_put(struct _pmv_store *s, struct _pmv_store_req *r, size_t n)
{
	size_t stored = 0;

	for (size_t base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? n - base : BATCH, nb = 0;
		struct _pmv_store_req *q = r + base, *be[BATCH];
		struct _pmv_store_entry *dead[BATCH];
		uint64_t deadh[BATCH];
		int corrupt[BATCH];

		_pmv_stat_add(&s->puts, m);
		if (!entries_take(s, q, m)) {
			for (size_t i = 0; i < m; i++)
				q[i].status = -ENOMEM;
			continue;
		}
		for (size_t i = 0; i < m; i++) {
			size_t psz = _pmv_ps_size(q[i].ps);
			int inj = inject_hit(s, INJ_PUT);
			uint64_t word;

			q[i].status = 0;
			q[i].e->ps = (uint8_t)q[i].ps;
			q[i].e->len = 0;
			q[i].e->aux = 0;
			corrupt[i] = inj == 1;
			if (inj < 0) {
				q[i].status = inj;
			} else if (same_filled(q[i].page, psz, &word)) {
				q[i].e->state = ENTRY_SAME;
				q[i].e->csum = word;
			} else {
				q[i].e->csum = checksum(q[i].page, psz);
				be[nb++] = &q[i];
			}
		}
		if (nb)
			s->ops->put(s, be, nb);
		for (size_t i = 0; i < m; i++) {
			size_t psz = _pmv_ps_size(q[i].ps);

			dead[i] = NULL;
			deadh[i] = 0;
			if (!q[i].status) {
				if (q[i].e->state != ENTRY_SAME) {
					q[i].e->state = ENTRY_STORED;
					_pmv_stat_add(&s->data, q[i].e->len);
					if (corrupt[i])
						s->ops->corrupt(s, q[i].e);
				} else {
					_pmv_stat_add(&s->same, 1);
				}
				_pmv_stat_add(&s->pages[q[i].ps], 1);
				_pmv_stat_add(&s->page_bytes, psz);
				stored++;
				continue;
			}
			if (q[i].status == -PMV_E_INCOMPRESSIBLE)
				_pmv_stat_add(&s->incompressible, 1);
			else if (q[i].status == -ENOSPC)
				_pmv_stat_add(&s->nospc, 1);
			else if (q[i].status == -EIO)
				_pmv_stat_add(&s->io_errors, 1);
			dead[i] = q[i].e;
			deadh[i] = q[i].handle;
			q[i].e = NULL;
			q[i].handle = 0;
		}
		entries_give(s, dead, deadh, m);
	}
	return stored;
}

size_t _pmv_store_get(struct _pmv_store *s, struct _pmv_store_req *r, size_t n)
{
	size_t loaded = 0;

	for (size_t base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? n - base : BATCH, nb = 0;
		struct _pmv_store_req *q = r + base, *be[BATCH];

		_pmv_stat_add(&s->gets, m);
		for (size_t i = 0; i < m; i++) {
			q[i].e = entry_of(s, q[i].handle, q[i].ps);
			q[i].status = 0;
			if (!q[i].e)
				q[i].status = -EINVAL;
			else if (q[i].e->state == ENTRY_SAME)
				fill_word(q[i].page, _pmv_ps_size(q[i].ps), q[i].e->csum);
			else
				be[nb++] = &q[i];
		}
		if (nb)
			s->ops->get(s, be, nb);
		for (size_t k = 0; k < nb; k++) {
			struct _pmv_store_req *x = be[k];
			size_t psz = _pmv_ps_size(x->ps);

			if (!x->status && inject_hit(s, INJ_GET))
				x->status = -EIO;
			if (!x->status && checksum(x->page, psz) != x->e->csum)
				x->status = -PMV_E_CHECKSUM;
			if (x->status == -EIO)
				_pmv_stat_add(&s->io_errors, 1);
			else if (x->status == -PMV_E_CHECKSUM)
				_pmv_stat_add(&s->csum_errors, 1);
		}
		for (size_t i = 0; i < m; i++) {
			if (q[i].status) {
				/* never hand out bytes that are not the page's */
				memset(q[i].page, 0, _pmv_ps_size(q[i].ps));
				continue;
			}
			loaded++;
		}
	}
	return loaded;
}

void _pmv_store_drop(struct _pmv_store *s, const uint64_t *h, size_t n)
{
	for (size_t base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? n - base : BATCH;
		struct _pmv_store_entry *e[BATCH];

		for (size_t i = 0; i < m; i++) {
			e[i] = entry_of(s, h[base + i], -1);
			if (!e[i])
				continue;
			_pmv_stat_add(&s->drops, 1);
			atomic_fetch_sub_explicit(&s->pages[e[i]->ps], 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&s->page_bytes, _pmv_ps_size(e[i]->ps),
						  memory_order_relaxed);
			if (e[i]->state == ENTRY_SAME) {
				atomic_fetch_sub_explicit(&s->same, 1, memory_order_relaxed);
				continue;
			}
			atomic_fetch_sub_explicit(&s->data, e[i]->len, memory_order_relaxed);
			s->ops->free(s, e[i]);
		}
		entries_give(s, e, h + base, m);
	}
}

void _pmv_store_stats(struct _pmv_store *s, struct _pmv_store_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (int ps = 0; ps < PMV_PS_NR; ps++)
		st->pages[ps] = atomic_load_explicit(&s->pages[ps], memory_order_relaxed);
	st->same_filled = atomic_load_explicit(&s->same, memory_order_relaxed);
	st->page_bytes = atomic_load_explicit(&s->page_bytes, memory_order_relaxed);
	st->stored_bytes = atomic_load_explicit(&s->used, memory_order_relaxed);
	st->data_bytes = atomic_load_explicit(&s->data, memory_order_relaxed);
	pthread_mutex_lock(&s->entry_mu);
	st->meta_bytes = (uint64_t)s->nchunks * CHUNK_ENTRIES * sizeof(struct _pmv_store_entry) +
			 ENTRY_DIR * sizeof(*s->dir);
	pthread_mutex_unlock(&s->entry_mu);
	st->capacity = s->capacity;
	st->puts = atomic_load_explicit(&s->puts, memory_order_relaxed);
	st->gets = atomic_load_explicit(&s->gets, memory_order_relaxed);
	st->drops = atomic_load_explicit(&s->drops, memory_order_relaxed);
	st->incompressible = atomic_load_explicit(&s->incompressible, memory_order_relaxed);
	st->nospc = atomic_load_explicit(&s->nospc, memory_order_relaxed);
	st->io_errors = atomic_load_explicit(&s->io_errors, memory_order_relaxed);
	st->csum_errors = atomic_load_explicit(&s->csum_errors, memory_order_relaxed);
	st->ratio = st->stored_bytes ? (double)st->page_bytes / (double)st->stored_bytes : 0;
	if (s->ops->stats)
		s->ops->stats(s, st);
}
