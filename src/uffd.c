/* SPDX-License-Identifier: MIT */
/*
 * userfaultfd wrappers. Every ioctl the library issues goes through here, so
 * errno handling and partial-progress retries live in one place.
 *
 * Two userfaultfds. Regions are registered on ctx->uffd, which also
 * reports the program's own changes to its address space (EVENT_REMOVE,
 * UNMAP, REMAP). Pools are registered on ctx->pool_uffd, which has no
 * events: the library discards and populates pool slots all the time, and
 * an event from a madvise() of our own would block its caller until a
 * fault handler read it, the handlers included. UFFDIO_MOVE only wants
 * its destination registered on the fd it is issued on, so a move out of a
 * region (into a pool slot) goes to pool_uffd and a move in to ctx->uffd.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define PMV_UFFD_FEATURES	(UFFD_FEATURE_MOVE | UFFD_FEATURE_PAGEFAULT_FLAG_WP | \
				 UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_EVENT_REMOVE | \
				 UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMAP | \
				 UFFD_FEATURE_POISON)
/* Pools: WP registration only so that their vm_page_prot equals the regions'. */
#define PMV_POOL_FEATURES	(UFFD_FEATURE_MOVE | UFFD_FEATURE_PAGEFAULT_FLAG_WP)

/*
 * The fault handlers (fault.c) are the readers of ctx->uffd. While an
 * event is queued and unread, the kernel fails every UFFDIO_* on that fd
 * with EAGAIN (mmap_changing), so a handler must never retry EAGAIN: it
 * goes back to reading instead (it may be the only one reading).
 */
static __thread bool is_fault_thread;

void _pmv_uffd_fault_thread(void)
{
	is_fault_thread = true;
}

bool _pmv_is_fault_thread(void)
{
	return is_fault_thread;
}

static int fd_for(pmv_ctx *ctx, unsigned flags)
{
	return flags & PMV_MV_POOL ? ctx->pool_uffd : ctx->uffd;
}

static bool retry_eagain(unsigned flags)
{
	return !(flags & PMV_MV_ONCE) && !is_fault_thread;
}

/*
 * Wait before retrying an EAGAIN (an unread event on the fd). The number
 * of retries has no bound on purpose: the cause always clears, since a
 * fault handler reads every event and never waits for a thread that
 * retries here (DESIGN.md, lock order), while giving up would fail a
 * put-back that must not fail. What is bounded is the spinning: a few
 * yields cover the usual microseconds; after them the thread sleeps,
 * 50 us doubling to 1 ms, so a long event (a munmap of gigabytes) does
 * not cost a CPU of busy retries.
 */
static void eagain_backoff(unsigned *tries)
{
	unsigned n = (*tries)++;

	if (n < 16) {
		sched_yield();
		return;
	}
	n -= 16;
	usleep(n < 5 ? 50u << n : 1000);
}

/*
 * A userfaultfd that catches kernel-mode faults if we may have one, else a
 * UFFD_USER_MODE_ONLY one; *why says which we got and why (PMV_MODE_WHY_*),
 * *dev_errno why /dev/userfaultfd did not serve (0 if it did or was not
 * tried).
 */
static int uffd_new(bool user_mode_only, unsigned *why, int *dev_errno)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int fd;

	*dev_errno = 0;
	*why = PMV_MODE_WHY_ASKED;
	if (!user_mode_only) {
		/*
		 * /dev/userfaultfd grants kernel-mode faults to whoever may
		 * open it (its file mode), without CAP_SYS_PTRACE.
		 */
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
			*dev_errno = fd < 0 ? errno : 0;
			close(dev);
			if (fd >= 0) {
				*why = PMV_MODE_WHY_DEVICE;
				return fd;
			}
		} else {
			*dev_errno = errno;
		}
		/* allowed with CAP_SYS_PTRACE or vm.unprivileged_userfaultfd = 1 */
		fd = syscall(SYS_userfaultfd, flags);
		if (fd >= 0) {
			*why = PMV_MODE_WHY_SYSCALL;
			return fd;
		}
		if (errno != EPERM)
			return -errno;
		*why = PMV_MODE_WHY_DENIED;
	}
	fd = syscall(SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY);
	return fd >= 0 ? fd : -errno;
}

static int uffd_api(int fd, __u64 features, __u64 *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	if (got)
		*got = api.features;
	return 0;
}

int _pmv_uffd_open(pmv_ctx *ctx, bool user_mode_only)
{
	__u64 have = 0;
	unsigned why;
	bool user_only;
	int fd, ret, dev_errno;

	fd = uffd_new(user_mode_only, &why, &dev_errno);
	if (fd < 0)
		return _pmv_set_errmsg(fd, "userfaultfd unavailable: %s (see vm.unprivileged_userfaultfd)",
				       strerror(-fd));
	user_only = why == PMV_MODE_WHY_ASKED || why == PMV_MODE_WHY_DENIED;
	ctx->mode = user_only ? PMV_MODE_USER_ONLY : PMV_MODE_FULL;
	ctx->mode_why = why;
	ctx->mode_errno = why == PMV_MODE_WHY_DENIED ? dev_errno : 0;

	ret = uffd_api(fd, PMV_UFFD_FEATURES, &have);
	if (!ret) {
		unsigned dummy;
		int dummy_errno;

		/* the pools' fd, of the same kind (it never takes a fault) */
		ctx->pool_uffd = uffd_new(user_only, &dummy, &dummy_errno);
		if (ctx->pool_uffd < 0)
			ret = ctx->pool_uffd;
		else
			ret = uffd_api(ctx->pool_uffd, PMV_POOL_FEATURES, NULL);
		if (ret) {
			close(fd);
			return _pmv_set_errmsg(ret, "second userfaultfd for the pools: %s",
					       strerror(-ret));
		}
	}
	if (ret == -EINVAL) {
		/* Some feature is missing: ask a fresh fd which (API may run once). */
		unsigned dummy;
		int dummy_errno, probe = uffd_new(true, &dummy, &dummy_errno);

		if (probe >= 0 && uffd_api(probe, 0, &have) == 0) {
			close(probe);
			close(fd);
			if (!(have & UFFD_FEATURE_MOVE))
				return _pmv_set_errmsg(-EOPNOTSUPP,
					"kernel lacks UFFDIO_MOVE (UFFD_FEATURE_MOVE, Linux >= 6.8)");
			if (!(have & UFFD_FEATURE_PAGEFAULT_FLAG_WP))
				return _pmv_set_errmsg(-EOPNOTSUPP,
					"kernel lacks userfaultfd write-protect for anonymous memory");
			if (!(have & UFFD_FEATURE_THREAD_ID))
				return _pmv_set_errmsg(-EOPNOTSUPP, "kernel lacks UFFD_FEATURE_THREAD_ID");
			return _pmv_set_errmsg(-EOPNOTSUPP,
				"kernel lacks userfaultfd REMOVE/UNMAP/REMAP events");
		}
		if (probe >= 0)
			close(probe);
	}
	if (ret) {
		close(fd);
		return _pmv_set_errmsg(ret, "UFFDIO_API failed: %s", strerror(-ret));
	}
	ctx->uffd = fd;
	return 0;
}

int _pmv_uffd_register(pmv_ctx *ctx, void *addr, size_t len, bool missing)
{
	int fd = missing ? ctx->uffd : ctx->pool_uffd;
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP |
			(missing ? UFFDIO_REGISTER_MODE_MISSING : 0),
	};
	const __u64 need = (1ULL << _UFFDIO_WRITEPROTECT) | (1ULL << _UFFDIO_MOVE) |
			   (1ULL << _UFFDIO_WAKE);

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if ((reg.ioctls & need) != need) {
		struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

		ioctl(fd, UFFDIO_UNREGISTER, &r);
		return _pmv_set_errmsg(-EOPNOTSUPP,
				       "kernel does not offer UFFDIO_MOVE/WRITEPROTECT on anonymous memory");
	}
	return 0;
}

int _pmv_uffd_unregister(pmv_ctx *ctx, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(ctx->uffd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

int _pmv_uffd_wp(pmv_ctx *ctx, uintptr_t addr, size_t len, unsigned flags)
{
	/* Clearing WP also wakes writers blocked on the range: that is wanted. */
	struct uffdio_writeprotect w = {
		.range = { .start = addr, .len = len },
		.mode = flags & PMV_WP_SET ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	unsigned tries = 0;

	while (ioctl(fd_for(ctx, flags), UFFDIO_WRITEPROTECT, &w)) {
		if (errno != EAGAIN || !retry_eagain(flags))
			return -errno;
		eagain_backoff(&tries);
	}
	return 0;
}

/*
 * UFFDIO_WRITEPROTECT checks mmap_changing before it looks up a VMA (since
 * 6.8, under map_changing_lock), unlike UFFDIO_MOVE and COPY on some
 * kernels: EAGAIN while an event is queued, ENOENT where no VMA is. Only
 * a handler reads events, and none does while event_lock is held read.
 */
bool _pmv_uffd_changing(pmv_ctx *ctx, uintptr_t addr)
{
	return _pmv_uffd_wp(ctx, addr, PMV_SIZE_4K, PMV_MV_ONCE) == -EAGAIN;
}

/*
 * Bytes at the start of [dst, dst+len) <- [src, src+len) that the kernel
 * moved without counting them: 4 KB pieces whose source is now empty and
 * whose destination is now mapped.
 *
 * Why: in the batched UFFDIO_MOVE (move_pages() since "opportunistic
 * TLB-flush batching"; seen on Linux 6.18), an internal -EAGAIN is never
 * cleared, so the next batch of PTEs that does move is not added to the
 * count and the loop retries the same address, which now fails -EEXIST.
 * The ioctl then reports fewer bytes (or -EEXIST) for pages it moved.
 * Folio-lock contention makes that EAGAIN, so fork and COW traffic hit it.
 * Believing the count would put the page's next copy over data that moved,
 * or leave an address empty while its page sits in a pool hole. Every
 * destination we move into is empty beforehand (a hole, or an address we
 * emptied under the page lock), so a mapped destination with an empty
 * source can only be our move. Read without the page-table lock: both
 * sides are ours and nobody else moves them meanwhile.
 */
static size_t moved_unreported(pmv_ctx *ctx, uintptr_t dst, uintptr_t src, size_t len)
{
	uint64_t d[64], s[64];
	size_t n = len / PMV_SIZE_4K, got = 0;

	while (got < n) {
		size_t k = n - got < 64 ? n - got : 64;
		ssize_t rd = pread(ctx->pagemap_fd, d, k * 8, (dst / PMV_SIZE_4K + got) * 8);
		ssize_t rs = pread(ctx->pagemap_fd, s, k * 8, (src / PMV_SIZE_4K + got) * 8);

		if (rd != (ssize_t)(k * 8) || rs != (ssize_t)(k * 8))
			break;
		for (size_t i = 0; i < k; i++, got++)
			if ((s[i] & (PM_PRESENT | PM_SWAP)) || !(d[i] & (PM_PRESENT | PM_SWAP)))
				return got * PMV_SIZE_4K;
	}
	return got * PMV_SIZE_4K;
}

int _pmv_uffd_move(pmv_ctx *ctx, uintptr_t dst, uintptr_t src, size_t len,
		   unsigned flags, size_t *moved)
{
	bool wake = flags & PMV_MV_WAKE;
	int fd = fd_for(ctx, flags);
	unsigned tries = 0;
	size_t done = 0;
	int ret = 0;

	/*
	 * EAGAIN means the kernel raced with a page-table change; a partial
	 * move reports the bytes done. Go on with what is left, so a hard
	 * error is reported against the first page that did not move, and
	 * tell the caller how far we got: a range can stop half way (a THP
	 * split after fork is partly shared), and the caller must undo it.
	 */
	while (done < len) {
		struct uffdio_move m = {
			.dst = dst + done, .src = src + done, .len = len - done,
			.mode = wake ? 0 : UFFDIO_MOVE_MODE_DONTWAKE,
		};
		size_t lost;

		if (!ioctl(fd, UFFDIO_MOVE, &m)) {
			done = len;
			break;
		}
		if (m.move > 0) {
			done += m.move;
			tries = 0;	/* progress: the next EAGAIN is a new one */
			continue;
		}
		if (errno == EAGAIN && retry_eagain(flags)) {
			eagain_backoff(&tries);
			continue;
		}
		ret = -errno;
		/* EEXIST is how an uncounted move shows (see above). */
		lost = ret == -EEXIST && ctx->pagemap_fd >= 0 ?
		       moved_unreported(ctx, dst + done, src + done, len - done) : 0;
		if (!lost)
			break;
		/* The kernel woke only what it counted. */
		if (wake)
			_pmv_uffd_wake(ctx, dst + done, lost);
		done += lost;
		ret = 0;
	}
	if (moved)
		*moved = done;
	return ret;
}

/*
 * Move n pages dst[i] <- src[i] of psz bytes, one ioctl per run where both
 * sides are contiguous (a coalesced move costs a fifteenth of single ones
 * here). res[i] is 0 or -errno; part[i] the bytes of a failed page that did
 * move (a huge page split into PTEs can stop half way).
 */
void _pmv_move_runs(pmv_ctx *ctx, const uintptr_t *dst, const uintptr_t *src,
		    size_t n, size_t psz, unsigned flags, int *res, size_t *part)
{
	size_t i = 0;

	while (i < n) {
		size_t k = 1, done = 0, ok;
		int ret;

		while (i + k < n && dst[i + k] == dst[i] + k * psz &&
		       src[i + k] == src[i] + k * psz)
			k++;
		ret = _pmv_uffd_move(ctx, dst[i], src[i], k * psz, flags, &done);
		if (ret && !done && k > 1) {
			/*
			 * Nothing moved: a run may cross from one mapping into
			 * another (neighbouring regions with different policies
			 * do not merge), which the kernel refuses outright. Try
			 * the head alone; the rest forms runs again after it.
			 */
			ret = _pmv_uffd_move(ctx, dst[i], src[i], psz, flags, &done);
			k = 1;
		}
		ok = ret ? done / psz : k;
		for (size_t j = 0; j < ok; j++) {
			res[i + j] = 0;
			part[i + j] = 0;
		}
		if (ret) {
			res[i + ok] = ret;
			part[i + ok] = done % psz;
			i += ok + 1;	/* the rest of the run goes on its own */
		} else {
			i += k;
		}
	}
}

int _pmv_uffd_copy(pmv_ctx *ctx, uintptr_t dst, uintptr_t src, size_t len,
		   unsigned flags, size_t *copied)
{
	unsigned tries = 0;
	size_t done = 0;
	int ret = 0;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = dst + done, .src = src + done, .len = len - done,
			.mode = flags & PMV_MV_WAKE ? 0 : UFFDIO_COPY_MODE_DONTWAKE,
		};

		if (!ioctl(ctx->uffd, UFFDIO_COPY, &c)) {
			done = len;
			break;
		}
		if (c.copy > 0) {
			done += c.copy;
			tries = 0;
			continue;
		}
		if (errno == EAGAIN && retry_eagain(flags)) {
			eagain_backoff(&tries);
			continue;
		}
		ret = -errno;
		break;
	}
	if (copied)
		*copied = done;
	return ret;
}

int _pmv_uffd_zeropage(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	struct uffdio_zeropage z = { .range = { .start = addr, .len = len } };

	return ioctl(ctx->uffd, UFFDIO_ZEROPAGE, &z) ? -errno : 0;
}

int _pmv_uffd_poison(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	struct uffdio_poison p = { .range = { .start = addr, .len = len } };

	return ioctl(ctx->uffd, UFFDIO_POISON, &p) ? -errno : 0;
}

int _pmv_uffd_wake(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	struct uffdio_range r = { .start = addr, .len = len };

	return ioctl(ctx->uffd, UFFDIO_WAKE, &r) ? -errno : 0;
}
