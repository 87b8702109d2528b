// SPDX-License-Identifier: MIT
/* What the benches' --plot share: finding and running gnuplot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

int bench_have_gnuplot(void)
{
	const char *path = getenv("PATH");
	char buf[4096];

	while (path && *path) {
		size_t n = strcspn(path, ":");

		if (n && snprintf(buf, sizeof(buf), "%.*s/gnuplot", (int)n, path) < (int)sizeof(buf) &&
		    !access(buf, X_OK))
			return 1;
		path += n + (path[n] == ':');
	}
	return 0;
}

void bench_gp_string(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputc('\'', f);
		fputc(*s, f);
	}
	fputc('\'', f);
}

int bench_gnuplot(const char *script, const char *who)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		execlp("gnuplot", "gnuplot", script, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		fprintf(stderr, "%s: gnuplot: %m\n", who);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "%s: gnuplot failed%s\n", who,
			WIFEXITED(status) && WEXITSTATUS(status) == 127 ?
			" to start: install gnuplot-nox" : "");
		return -1;
	}
	return 0;
}
