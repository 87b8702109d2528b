/* SPDX-License-Identifier: MIT */
/*
 * Copy engines. The core uses plain memcpy; the engine table (non-temporal,
 * parallel, offload) plugs in behind _pmv_copy().
 */
#include <string.h>

#include "internal.h"

void _pmv_copy(pmv_ctx *ctx, void *dst, const void *src, size_t len)
{
	(void)ctx;
	memcpy(dst, src, len);
}
