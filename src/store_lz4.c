/* SPDX-License-Identifier: MIT */
/* The lz4 codec of the compressed store (store_ram.c): lz4's default level. */
#include <errno.h>
#include <lz4.h>

#include "store.h"

static size_t lz4_compress(struct _pmv_store *s, const void *src, size_t len, void *dst,
			   size_t cap)
{
	(void)s;
	/* 0 when it does not fit in cap: exactly the refusal wanted */
	return (size_t)LZ4_compress_default(src, dst, (int)len, (int)cap);
}

static int lz4_decompress(struct _pmv_store *s, const void *src, size_t slen, void *dst,
			  size_t len)
{
	(void)s;
	/* _safe: damaged input never writes past dst nor reads past src */
	return LZ4_decompress_safe(src, dst, (int)slen, (int)len) == (int)len ? 0 :
	       -PMV_E_CHECKSUM;
}

const struct _pmv_codec _pmv_codec_lz4 = {
	.name = "lz4",
	.compress = lz4_compress,
	.decompress = lz4_decompress,
};
