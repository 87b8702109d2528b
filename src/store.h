/* SPDX-License-Identifier: MIT */
/*
 * Between the store front end (store.c) and its backends (store_ram.c with
 * the codecs of store_lz4.c and store_zstd.c; store_file.c). The calls the
 * rest of the library makes are in internal.h.
 */
#ifndef PMV_STORE_H
#define PMV_STORE_H

#include "internal.h"

enum { ENTRY_FREE, ENTRY_SAME, ENTRY_STORED };

/* One handle's page. Handle = index in the table + 1. */
struct _pmv_store_entry {
	uint64_t csum;		/* XXH3-64 of the page; a same-filled page's word */
	uint64_t ref;		/* the backend's: where the bytes are */
	uint32_t len;		/* the backend's: how many bytes it keeps */
	uint8_t ps;		/* PMV_PS_* */
	uint8_t state;		/* ENTRY_* */
	uint16_t aux;		/* the backend's */
	uint32_t next_free;	/* free list (index + 1), while ENTRY_FREE */
	uint32_t pad;
};

/*
 * Backends. Each call gets the requests it must serve (not the same-filled
 * ones) as an array of pointers, and sets each one's status; put fills
 * r->e->ref, len and aux. put and get may be called from several threads
 * at once (the backend locks what it shares); free and corrupt too.
 */
struct _pmv_store_ops {
	const char *name;
	int (*open)(struct _pmv_store *s, const struct pmv_tier_config *tc);
	void (*close)(struct _pmv_store *s);
	void (*put)(struct _pmv_store *s, struct _pmv_store_req **r, size_t n);
	void (*get)(struct _pmv_store *s, struct _pmv_store_req **r, size_t n);
	void (*free)(struct _pmv_store *s, struct _pmv_store_entry *e);
	int (*corrupt)(struct _pmv_store *s, const struct _pmv_store_entry *e);
	void (*stats)(struct _pmv_store *s, struct _pmv_store_stats *st);
};

/* A compressor for store_ram.c. */
struct _pmv_codec {
	const char *name;
	/* src[0..len) into dst[0..cap): its size, or 0 if it does not fit */
	size_t (*compress)(struct _pmv_store *s, const void *src, size_t len, void *dst,
			   size_t cap);
	/* exactly len bytes out of src[0..slen) into dst: 0, or -EBADMSG */
	int (*decompress)(struct _pmv_store *s, const void *src, size_t slen, void *dst,
			  size_t len);
};

PMV_HIDDEN extern const struct _pmv_store_ops _pmv_store_ram_ops;
PMV_HIDDEN extern const struct _pmv_store_ops _pmv_store_file_ops;
PMV_HIDDEN extern const struct _pmv_codec _pmv_codec_lz4;
PMV_HIDDEN extern const struct _pmv_codec _pmv_codec_zstd;

#define ENTRY_SHIFT	12		/* entries per table chunk: 4096 */
#define ENTRY_DIR	(1u << 16)	/* chunks: 2^28 pages at most */

struct _pmv_store {
	const struct _pmv_store_ops *ops;
	const struct _pmv_codec *codec;	/* store_ram.c's */
	int kind;			/* enum pmv_tier_kind */
	int level;			/* zstd */
	size_t capacity;		/* bytes; 0 = unlimited */
	void *priv;			/* the backend's */

	/* the handle table: chunks made once, never freed before close */
	pthread_mutex_t entry_mu;	/* free list, nchunks */
	struct _pmv_store_entry *_Atomic *dir;
	uint32_t nchunks, free_head;

	/* what the backend holds: charged with _pmv_store_charge() */
	_Atomic uint64_t used;
	_Atomic uint64_t data, page_bytes, pages[PMV_PS_NR], same;
	_Atomic uint64_t puts, gets, drops, incompressible, nospc, io_errors, csum_errors;

	/* fault injection: per op, every N-th call fails with err */
	struct {
		unsigned every;
		int err;		/* -EIO, -ENOSPC, or 1: corrupt */
		_Atomic unsigned count;
	} inject[2];
};

/*
 * Take bytes of the capacity: false if they do not fit (nothing taken).
 * Lock-free: puts on several threads charge at once; a CAS keeps the sum
 * within the capacity exactly.
 */
static inline bool _pmv_store_charge(struct _pmv_store *s, uint64_t bytes)
{
	uint64_t u = atomic_load_explicit(&s->used, memory_order_relaxed);

	do {
		if (s->capacity && u + bytes > s->capacity)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&s->used, &u, u + bytes,
							memory_order_relaxed,
							memory_order_relaxed));
	return true;
}

static inline void _pmv_store_uncharge(struct _pmv_store *s, uint64_t bytes)
{
	atomic_fetch_sub_explicit(&s->used, bytes, memory_order_relaxed);
}

#endif /* PMV_STORE_H */
