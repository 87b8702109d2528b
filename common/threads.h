/* SPDX-License-Identifier: MIT */
/*
 * The calling process's threads by name, from /proc/self/task: how the
 * bench and the tests see the library's threads (pmv-fault*, pmv-helper,
 * pmv-copy, ...). Header-only, so that the tests, which link only the
 * library, share it with the CLI.
 */
#ifndef PAGEMOVE_COMMON_THREADS_H
#define PAGEMOVE_COMMON_THREADS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

struct cli_thread {
	pid_t tid;
	char comm[16];
};

/*
 * Threads whose name starts with prefix ("" for every thread): the first
 * max of them in out[] (out may be NULL with max 0). Returns how many
 * matched, which may exceed max, or -1 if /proc/self/task cannot be read.
 * A thread that ends meanwhile may be missed.
 */
static inline int cli_threads(const char *prefix, struct cli_thread *out, int max)
{
	DIR *d = opendir("/proc/self/task");
	size_t plen = strlen(prefix);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], comm[16] = "";
		pid_t tid = atoi(e->d_name);
		FILE *f;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = 0;
		fclose(f);
		comm[strcspn(comm, "\n")] = 0;
		if (strncmp(comm, prefix, plen))
			continue;
		if (n < max) {
			out[n].tid = tid;
			memcpy(out[n].comm, comm, sizeof(comm));
		}
		n++;
	}
	closedir(d);
	return n;
}

#endif
