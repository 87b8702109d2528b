/* SPDX-License-Identifier: MIT */
/*
 * pagemove CLI: subcommands that work on any process, linked with
 * libpagemove or not ("pagemove migrate", "pagemove stat"), and the /proc
 * readers they share (tools/procmaps.c).
 *
 * Subcommands take argv[0] = subcommand name and return a process exit
 * code (CLI_EXIT_*). Internal helpers return 0 or a negative errno.
 */
#ifndef CLI_H
#define CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit codes of "migrate" and "stat"; documented in --help and man pages. */
enum {
	CLI_EXIT_OK	 = 0,	/* success */
	CLI_EXIT_PARTIAL = 1,	/* some pages were not moved */
	CLI_EXIT_USAGE	 = 2,	/* bad option, pid or node list */
	CLI_EXIT_NOPROC	 = 3,	/* no such process, or it has no memory */
	CLI_EXIT_PERM	 = 4,	/* permission denied (EPERM/EACCES) */
	CLI_EXIT_ERROR	 = 5,	/* anything else: no NUMA, no memory, I/O */
};

int cmd_migrate(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_top(int argc, char **argv);

/* ---- small helpers (procmaps.c) ---------------------------------------- */

/* Exit code for a negative errno from the helpers below or move_pages(). */
int cli_exit_code(int err);

/*
 * Print "pagemove CMD: pid PID: <what went wrong>" for a pid-level error
 * and return its exit code.
 */
int cli_pid_error(const char *cmd, pid_t pid, int err, const char *what);

/* Decimal pid, 1..INT_MAX. 0 or -EINVAL. */
int cli_parse_pid(const char *s, pid_t *pid);

/* open("/proc/PID/NAME"): fd or -errno, -ESRCH when PID does not exist. */
int cli_proc_open(pid_t pid, const char *name);

/* The same as a stdio stream: NULL with *err = -errno on failure. */
FILE *cli_proc_fopen(pid_t pid, const char *name, int *err);

/* "12.0K", "3.5M", "1.0G" */
void cli_fmt_size(char *buf, size_t len, uint64_t bytes);

/* Short upper-case errno name for a move_pages() status ("EBUSY"). */
const char *cli_errno_name(int err);

/*
 * Parse a node list: "0", "0-2", "0,2-3", or "all" (every node with
 * memory). Returns 0, -EINVAL for bad syntax, or -ENODEV with *bad set to
 * a node above numa_max_node(). The caller frees *mask.
 */
struct bitmask;
int cli_parse_nodes(const char *s, struct bitmask **mask, long *bad);

/* ---- /proc/PID/smaps ---------------------------------------------------- */

#define CLI_VM_IO	(1U << 0)	/* VM_IO: device memory */
#define CLI_VM_PFNMAP	(1U << 1)	/* VM_PFNMAP: no struct pages */
#define CLI_VM_HUGETLB	(1U << 2)	/* hugetlbfs */
#define CLI_VM_SHARED	(1U << 3)	/* MAP_SHARED */

struct cli_vma {
	unsigned long start, end;
	char perms[8];
	char *path;		/* "" for anonymous memory */
	unsigned long page_kb;	/* KernelPageSize */
	unsigned long rss_kb;
	unsigned long anon_huge_kb;
	unsigned long shmem_pmd_kb;
	unsigned long file_pmd_kb;
	unsigned long hugetlb_kb;	/* Shared_ + Private_Hugetlb */
	unsigned long swap_kb;
	unsigned int vmflags;	/* CLI_VM_* */
};

/* All VMAs of PID in address order. *nr is 0 for exited/kernel threads. */
int cli_read_smaps(pid_t pid, struct cli_vma **vmas, size_t *nr);
void cli_free_vmas(struct cli_vma *vmas, size_t nr);

/* Why move_pages() cannot usefully work on @vma, or NULL if it can. */
const char *cli_vma_special(const struct cli_vma *vma);

/* Any resident memory, counting hugetlb (which smaps keeps out of Rss)? */
static inline bool cli_vma_resident(const struct cli_vma *vma)
{
	return vma->rss_kb || vma->hugetlb_kb;
}

/* PMD-mapped THP memory in the VMA, per smaps. */
static inline unsigned long cli_vma_thp_kb(const struct cli_vma *vma)
{
	return vma->anon_huge_kb + vma->shmem_pmd_kb + vma->file_pmd_kb;
}

/* ---- resident pages and THPs of another process -------------------------- */

enum cli_scan_mode {
	CLI_SCAN_IOCTL,		/* PAGEMAP_SCAN ioctl (Linux 6.7+) */
	CLI_SCAN_KPAGEFLAGS,	/* pagemap + /proc/kpageflags (root) */
	CLI_SCAN_PAGEMAP,	/* pagemap present bits only: no THPs */
};

struct cli_pagescan {
	int pagemap_fd;
	int kpageflags_fd;
	enum cli_scan_mode mode;
	unsigned long page_size;
	unsigned long pmd_size;	/* THP size */
};

/*
 * Called with runs of resident, non-zero-page memory in ascending order.
 * @huge: the run is made of whole PMD-mapped THPs (start and end are
 * pmd_size aligned). A nonzero return stops the scan and is returned.
 */
typedef int (*cli_run_fn)(void *arg, unsigned long start, unsigned long end,
			  bool huge);

int cli_pagescan_open(struct cli_pagescan *ps, pid_t pid);
void cli_pagescan_close(struct cli_pagescan *ps);
int cli_pagescan(struct cli_pagescan *ps, unsigned long start,
		 unsigned long end, cli_run_fn fn, void *arg);
const char *cli_pagescan_name(const struct cli_pagescan *ps);

static inline bool cli_pagescan_sees_thp(const struct cli_pagescan *ps)
{
	return ps->mode != CLI_SCAN_PAGEMAP;
}

#endif /* CLI_H */
