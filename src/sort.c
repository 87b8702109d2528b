/* SPDX-License-Identifier: MIT */
/*
 * qsort without malloc. glibc's qsort is a merge sort whose buffer comes
 * from malloc once the array passes 1 KB (2.36 here; 2.39 again), and the
 * library sorts where a fault may wait (page locks held, a tier lock, a
 * fault handler): internal.h's allocator rule. A heap sort needs no
 * memory. The arrays are at most a batch (512 entries) and often sorted
 * already (pool slots in address order), which one pass finds.
 */
#include <stdint.h>
#include <string.h>

#include "internal.h"

static void swap(char *a, char *b, size_t size)
{
	if (size == sizeof(uint64_t)) {
		uint64_t t;

		memcpy(&t, a, sizeof(t));
		memcpy(a, b, sizeof(t));
		memcpy(b, &t, sizeof(t));
		return;
	}
	while (size--) {
		char t = *a;

		*a++ = *b;
		*b++ = t;
	}
}

static void sift(char *b, size_t root, size_t n, size_t size,
		 int (*cmp)(const void *, const void *))
{
	for (;;) {
		size_t child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && cmp(b + child * size, b + (child + 1) * size) < 0)
			child++;
		if (cmp(b + root * size, b + child * size) >= 0)
			return;
		swap(b + root * size, b + child * size, size);
		root = child;
	}
}

void _pmv_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	char *b = base;
	size_t i;

	for (i = 1; i < n && cmp(b + (i - 1) * size, b + i * size) <= 0; i++)
		;
	if (i >= n)
		return;
	for (i = n / 2; i-- > 0;)
		sift(b, i, n, size, cmp);
	for (i = n - 1; i > 0; i--) {
		swap(b, b + i * size, size);
		sift(b, 0, i, size, cmp);
	}
}
