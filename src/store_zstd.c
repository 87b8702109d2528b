/* SPDX-License-Identifier: MIT */
/*
 * The zstd codec of the compressed store (store_ram.c), at the tier's
 * level. A compression context costs from hundreds of KB to MBs by level
 * and is not thread-safe, so each thread that compresses keeps its own
 * (and one decompression context), freed when the thread exits.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#define ZSTD_STATIC_LINKING_ONLY	/* ZSTD_customMem */
#include <zstd.h>

#include "store.h"

struct zctx {
	ZSTD_CCtx *c;
	ZSTD_DCtx *d;
};

static pthread_key_t key;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void zctx_free(void *p)
{
	struct zctx *z = p;

	ZSTD_freeCCtx(z->c);
	ZSTD_freeDCtx(z->d);
	_pmv_kfree(z);
}

/*
 * zstd allocates a context's workspace at its first use and again when a
 * level or size needs more: inside a store call, where a fault may wait
 * (internal.h's allocator rule). So its memory is kmem's.
 */
static void *zalloc(void *opaque, size_t size)
{
	(void)opaque;
	return _pmv_kalloc(size);
}

static void zfree(void *opaque, void *p)
{
	(void)opaque;
	_pmv_kfree(p);
}

static const ZSTD_customMem zmem = { zalloc, zfree, NULL };

static void make_key(void)
{
	pthread_key_create(&key, zctx_free);
}

static struct zctx *zctx(void)
{
	struct zctx *z;

	pthread_once(&once, make_key);
	z = pthread_getspecific(key);
	if (z)
		return z;
	z = _pmv_kcalloc(1, sizeof(*z));
	if (!z)
		return NULL;
	z->c = ZSTD_createCCtx_advanced(zmem);
	z->d = ZSTD_createDCtx_advanced(zmem);
	if (!z->c || !z->d || pthread_setspecific(key, z)) {
		zctx_free(z);
		return NULL;
	}
	return z;
}

static size_t zstd_compress(struct _pmv_store *s, const void *src, size_t len, void *dst,
			    size_t cap)
{
	struct zctx *z = zctx();
	size_t ret;

	if (!z)
		return 0;	/* counted as incompressible: no memory to try */
	ret = ZSTD_compressCCtx(z->c, dst, cap, src, len, s->level);
	/* dstSize_tooSmall: it did not compress below cap */
	return ZSTD_isError(ret) ? 0 : ret;
}

static int zstd_decompress(struct _pmv_store *s, const void *src, size_t slen, void *dst,
			   size_t len)
{
	struct zctx *z = zctx();
	size_t ret;

	(void)s;
	if (!z)
		return -ENOMEM;
	ret = ZSTD_decompressDCtx(z->d, dst, len, src, slen);
	return !ZSTD_isError(ret) && ret == len ? 0 : -PMV_E_CHECKSUM;
}

const struct _pmv_codec _pmv_codec_zstd = {
	.name = "zstd",
	.compress = zstd_compress,
	.decompress = zstd_decompress,
};
