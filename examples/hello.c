/* Two tiers, a buffer on the first, half of it moved to the second while
 * the program keeps it; then every byte is checked. The tiers are bound to
 * no node (PMV_NODE_ANY), so they are names, not faster and slower memory:
 * give .node a NUMA node (a DRAM one, a CXL one) to make them tiers. */
#include <pagemove.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	struct pmv_tier_config tiers[] = {
		{ .name = "first", .node = PMV_NODE_ANY },
		{ .name = "second", .node = PMV_NODE_ANY },
	};
	struct pmv_config cfg = { .ntiers = 2, .tiers = tiers };
	pmv_ctx *ctx = pmv_create(&cfg);
	char *buf = ctx ? pmv_mmap(ctx, 64 << 12, 0, 0) : NULL;
	void *pages[32];
	int to[32], status[32], intact = 1;

	if (!buf)
		return fprintf(stderr, "pagemove: %s\n", pmv_errmsg()), 1;
	memset(buf, 'x', 64 << 12);		/* first touch: tier 0 */
	for (int i = 0; i < 32; i++)
		pages[i] = buf + i * 4096, to[i] = 1;
	int left = pmv_move_pages(ctx, 32, pages, to, status, 0);
	for (int i = 0; i < 64 << 12; i++)
		intact &= buf[i] == 'x';
	printf("%d pages not moved; page 0 now on tier %d; data %s\n", left,
	       status[0], intact ? "intact" : "LOST");
	pmv_destroy(ctx);
	return left != 0 || !intact;
}
