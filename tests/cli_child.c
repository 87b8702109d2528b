/* SPDX-License-Identifier: MIT */
/*
 * cli_child: a process for tests/t_cli_procs.sh to point "pagemove migrate"
 * and "pagemove stat" at. It does not link pagemove.
 *
 * Maps 32 MiB of anonymous memory in 4 KiB pages (MADV_NOHUGEPAGE) and an
 * 8 MiB, 2 MiB-aligned MADV_HUGEPAGE region, fills both with a position-
 * dependent pattern, prints its pid on a line of its own and then serves
 * stdin, one command per line:
 *   check  verify every byte; prints "ok" or "corrupt <offset>"
 *   thp    prints the AnonHugePages kB of the huge region (own smaps)
 *   quit   exits 0 (so does end of input)
 *
 * "cli_child --setuid UID PROG ARGS..." instead runs PROG as UID/GID UID
 * without supplementary groups: a setpriv for test systems (busybox)
 * that lack one.
 * Build: gcc -O2 -static (no libraries needed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <grp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB		(1024UL * 1024UL)
#define SMALL_SIZE	(32 * MIB)
#define HUGE_SIZE	(8 * MIB)
#define HPAGE		(2 * MIB)

static unsigned char *small, *huge;

/* Differs from page to page and within a page, so misplaced pages show. */
static unsigned char pattern(uintptr_t off, unsigned int seed)
{
	uint32_t x = (uint32_t)off * 2654435761u + seed * 40503u;

	return (unsigned char)(x >> 24 ^ (off >> 12));
}

static void fill(unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = pattern(i, seed);
}

static long verify(const unsigned char *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern(i, seed))
			return (long)i;
	return -1;
}

static unsigned long huge_thp_kb(void)
{
	char line[256];
	unsigned long kb = 0, start, end;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' '))
			in = start <= (uintptr_t)huge &&
			     (uintptr_t)huge < end;
		else if (in && sscanf(line, "AnonHugePages: %lu", &kb) == 1)
			break;
	}
	fclose(f);
	return kb;
}

static int run_as(char **argv)
{
	uid_t id = (uid_t)strtoul(argv[0], NULL, 10);

	if (setgroups(0, NULL) || setgid(id) || setuid(id)) {
		perror("cli_child: --setuid");
		return 126;
	}
	execv(argv[1], argv + 1);
	perror("cli_child: --setuid: exec");
	return 127;
}

int main(int argc, char **argv)
{
	char line[64];
	unsigned char *raw;

	if (argc >= 4 && !strcmp(argv[1], "--setuid"))
		return run_as(argv + 2);

	small = mmap(NULL, SMALL_SIZE, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	raw = mmap(NULL, HUGE_SIZE + HPAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (small == MAP_FAILED || raw == MAP_FAILED) {
		perror("cli_child: mmap");
		return 1;
	}
	/* 4 KiB pages even where THP is "always" */
	madvise(small, SMALL_SIZE, MADV_NOHUGEPAGE);
	huge = (unsigned char *)(((uintptr_t)raw + HPAGE - 1) & ~(HPAGE - 1));
	madvise(huge, HUGE_SIZE, MADV_HUGEPAGE);	/* best effort */
	fill(small, SMALL_SIZE, 1);
	fill(huge, HUGE_SIZE, 2);

	printf("%d\n", (int)getpid());
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!strcmp(line, "check")) {
			long bad = verify(small, SMALL_SIZE, 1);
			long bad2 = verify(huge, HUGE_SIZE, 2);

			if (bad < 0 && bad2 < 0)
				printf("ok\n");
			else if (bad >= 0)
				printf("corrupt small+%ld\n", bad);
			else
				printf("corrupt huge+%ld\n", bad2);
		} else if (!strcmp(line, "thp")) {
			printf("%lu\n", huge_thp_kb());
		} else if (!strcmp(line, "quit")) {
			break;
		} else {
			printf("? %s\n", line);
		}
		fflush(stdout);
	}
	return 0;
}
