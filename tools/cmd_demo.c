/* SPDX-License-Identifier: MIT */
/*
 * pagemove demo: two tiers, writer threads busy on managed memory, and the
 * whole working set moved back and forth between the tiers while they run.
 * At the end every byte of every page is checked.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "lib_cmds.h"

#define NWRITERS 4

struct area {
	unsigned char *base;
	size_t size, psz;
};

static struct area areas[2];
static uint64_t *expect[NWRITERS][2];
static atomic_int stop;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned char pat(size_t off)
{
	return (unsigned char)((off * 2654435761u) >> 13);
}

static void *writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop))
		for (int a = 0; a < 2; a++)
			for (size_t p = 0; p < areas[a].size / areas[a].psz; p++) {
				volatile uint64_t *c =
					(uint64_t *)(areas[a].base + p * areas[a].psz + w * 64);
				*c = *c + 1;
				expect[w][a][p]++;
			}
	return NULL;
}

static long verify(void)
{
	long bad = 0;

	for (int a = 0; a < 2; a++) {
		size_t np = areas[a].size / areas[a].psz;

		for (size_t p = 0; p < np; p++) {
			unsigned char *pg = areas[a].base + p * areas[a].psz;

			for (size_t i = 0; i < areas[a].psz; i++) {
				size_t w = i / 64;
				unsigned char want = pat(p * areas[a].psz + i);

				if (w < NWRITERS && i % 64 < 8)
					want = (unsigned char)(expect[w][a][p] >> (8 * (i % 64)));
				bad += pg[i] != want;
			}
		}
	}
	return bad;
}

int pmv_cmd_demo(int argc, char **argv)
{
	struct pmv_tier_config tiers[2] = {
		{ .name = "fast", .node = PMV_NODE_ANY, .capacity = 0 },
		{ .name = "slow", .node = PMV_NODE_ANY, .capacity = 0 },
	};
	struct pmv_config cfg = { .ntiers = 2, .tiers = tiers };
	double secs = 5, moved_s = 0;
	size_t mb = 64;
	uint64_t bytes = 0, pages = 0;
	unsigned pass = 0;
	pthread_t wt[NWRITERS];
	pmv_ctx *ctx;
	long bad;
	int opt;

	static const struct option opts[] = {
		{ "seconds", required_argument, 0, 's' },
		{ "mb", required_argument, 0, 'm' },
		{ "help", no_argument, 0, 'h' },
		{ 0 }
	};
	while ((opt = getopt_long(argc, argv, "s:m:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': secs = atof(optarg); break;
		case 'm': mb = strtoul(optarg, NULL, 0); break;
		case 'h':
			printf("usage: pagemove demo [--seconds S] [--mb MB]\n"
			       "Runs %d writer threads on MB MiB of 4 KB pages and MB MiB of 2 MB\n"
			       "pages, moves all of it between two tiers for S seconds, then\n"
			       "checks every byte.\n", NWRITERS);
			return 0;
		default:
			return 2;
		}
	}
	if (secs <= 0 || !mb || mb > 65536) {
		fprintf(stderr, "pagemove demo: bad --seconds or --mb\n");
		return 2;
	}
	ctx = pmv_create(&cfg);
	if (!ctx) {
		fprintf(stderr, "pagemove demo: %s: %s\n", strerror(errno), pmv_errmsg());
		return 1;
	}
	for (int a = 0; a < 2; a++) {
		int huge = a == 1;

		areas[a].size = mb << 20;
		areas[a].psz = huge ? 2UL << 20 : 4096;
		areas[a].base = pmv_mmap(ctx, areas[a].size, 0, huge ? PMV_HUGE : 0);
		if (!areas[a].base && huge && errno == EOPNOTSUPP) {
			areas[a].psz = 4096;	/* THP disabled: small pages then */
			areas[a].base = pmv_mmap(ctx, areas[a].size, 0, 0);
		}
		if (!areas[a].base) {
			fprintf(stderr, "pagemove demo: pmv_mmap: %s\n", strerror(errno));
			return 1;
		}
		for (size_t i = 0; i < areas[a].size; i++)
			areas[a].base[i] = pat(i);
		for (int w = 0; w < NWRITERS; w++) {
			expect[w][a] = calloc(areas[a].size / areas[a].psz, 8);
			for (size_t p = 0; p < areas[a].size / areas[a].psz; p++)
				memset(areas[a].base + p * areas[a].psz + w * 64, 0, 8);
		}
	}
	printf("pagemove demo: %d writers on %zu MiB of 4 KB pages and %zu MiB of %s pages\n",
	       NWRITERS, mb, mb, areas[1].psz > 4096 ? "2 MB" : "4 KB");
	for (long w = 0; w < NWRITERS; w++)
		pthread_create(&wt[w], NULL, writer, (void *)w);

	for (double end = now() + secs; now() < end; pass++) {
		struct pmv_ctx_stats before, after;
		int from = pass & 1;	/* fast -> slow, then back */
		double t0;
		long left;

		pmv_ctx_stats(ctx, &before);
		t0 = now();
		left = pmv_migrate(ctx, 1UL << from, 1UL << (1 - from), 0);
		moved_s += now() - t0;
		pmv_ctx_stats(ctx, &after);
		bytes += after.migrate_bytes - before.migrate_bytes;
		pages += after.migrations - before.migrations;
		printf("\r  moved %llu pages, %.1f GiB, %.2f GB/s, %ld not moved in last pass   ",
		       (unsigned long long)pages, bytes / 1073741824.0,
		       moved_s > 0 ? bytes / moved_s / 1e9 : 0.0, left);
		fflush(stdout);
	}
	atomic_store(&stop, 1);
	for (int w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	bad = verify();
	printf("\npages moved: %llu (%.2f GiB) while %d threads wrote\n",
	       (unsigned long long)pages, bytes / 1073741824.0, NWRITERS);
	printf("migration bandwidth: %.2f GB/s\n", moved_s > 0 ? bytes / moved_s / 1e9 : 0.0);
	if (bad) {
		printf("DATA CORRUPTED: %ld bad bytes\n", bad);
		return 1;
	}
	printf("data verified: every byte of %zu MiB checked\n", 2 * mb);
	pmv_destroy(ctx);
	return 0;
}
