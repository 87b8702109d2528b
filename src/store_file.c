/* SPDX-License-Identifier: MIT */
/*
 * The file store (file tiers): pages as they are, in a file that never has
 * a name (O_TMPFILE in the tier's directory; where the file system has no
 * O_TMPFILE, a file created 0600 and unlinked at once), or on a block
 * device, opened O_EXCL so that nothing else mounts or writes it.
 *
 * Layout: the file is cut into 2 MB chunks. A 2 MB page takes a chunk of
 * its own; 4 KB pages share chunks of 512 slots (a bitmap each), filled one
 * chunk at a time. A chunk that empties is given back at once: its range
 * is punched out of the file (FALLOC_FL_PUNCH_HOLE) or discarded on the
 * device (BLKDISCARD), and it is uncharged. So stored_bytes, which the
 * capacity bounds, counts the chunks that hold a page, the free slots of
 * partly used chunks being the allocator's waste. close punches or
 * discards everything written.
 *
 * I/O: O_DIRECT, so that stored pages do not also sit in the page cache
 * (where the file system refuses it, tmpfs before 6.6, the page cache is
 * used and stats say so). A batch is submitted through io_uring with up to
 * QD requests in flight; a few rings, each with its lock, serve concurrent
 * batches, a batch holding one ring for its duration. Where io_uring is
 * not permitted (io_uring_disabled, seccomp), pread/pwrite do it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

#define CHUNK		PMV_SIZE_2M
#define SLOTS		(CHUNK / PMV_SIZE_4K)	/* 512 */
#define QD		64	/* requests in flight per batch */
#define NRINGS		4

enum { CH_FREE, CH_SMALL, CH_BIG, CH_RELEASING };

struct chunk {
	uint64_t bits[SLOTS / 64];	/* CH_SMALL: used slots */
	uint16_t nused;
	uint8_t state;			/* CH_* */
	bool partial;			/* on the partial stack */
};

struct ring {
	pthread_mutex_t mu;
	struct io_uring ring;
	bool ok;
};

struct file {
	int fd;
	bool bdev, direct;
	uint64_t dev_size;		/* block device: its size */
	pthread_mutex_t mu;		/* everything below */
	struct chunk *ch;
	uint32_t nch, cap_ch;		/* chunks ever used: the file's extent */
	uint32_t *free_ch, nfree_ch;	/* released chunks, to reuse */
	uint32_t *partial, npartial;	/* CH_SMALL chunks with free slots */
	int64_t cur;			/* the CH_SMALL chunk slots come from, or -1 */
	struct ring rings[NRINGS];
	bool uring;
};

/* ---- chunks ------------------------------------------------------------ */

/* A chunk to use, charged: its index, or -ENOSPC / -ENOMEM. Under f->mu. */
static int64_t chunk_take(struct _pmv_store *s, struct file *f, int state)
{
	uint32_t c;

	if (!_pmv_store_charge(s, CHUNK))
		return -ENOSPC;
	if (f->nfree_ch) {
		c = f->free_ch[--f->nfree_ch];
	} else {
		if (f->bdev && (uint64_t)(f->nch + 1) * CHUNK > f->dev_size) {
			_pmv_store_uncharge(s, CHUNK);
			return -ENOSPC;
		}
		if (f->nch == f->cap_ch) {
			uint32_t ncap = f->cap_ch ? f->cap_ch * 2 : 64;
			/* kmem (internal.h's allocator rule): a fault's reclaim stores */
			struct chunk *nc = _pmv_krealloc(f->ch, ncap * sizeof(*nc));
			uint32_t *nf = nc ? _pmv_krealloc(f->free_ch, ncap * sizeof(*nf)) : NULL;
			uint32_t *np = nf ? _pmv_krealloc(f->partial, ncap * sizeof(*np)) : NULL;

			if (nc)
				f->ch = nc;
			if (nf)
				f->free_ch = nf;
			if (!np) {
				_pmv_store_uncharge(s, CHUNK);
				return -ENOMEM;
			}
			f->partial = np;
			f->cap_ch = ncap;
		}
		c = f->nch++;
	}
	memset(&f->ch[c], 0, sizeof(f->ch[c]));
	f->ch[c].state = (uint8_t)state;
	return c;
}

static void discard(struct file *f, uint64_t off, uint64_t len)
{
	if (f->bdev) {
		uint64_t range[2] = { off, len };

		ioctl(f->fd, BLKDISCARD, range);	/* a device without it keeps the bytes */
	} else {
		fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			  (off_t)len);
	}
}

/*
 * Give chunk c back: punched or discarded, then reusable. Under f->mu,
 * which it drops around the discard: the chunk is CH_RELEASING meanwhile,
 * so that no put writes into it while the hole is being punched.
 */
static void chunk_release(struct _pmv_store *s, struct file *f, uint32_t c)
{
	f->ch[c].state = CH_RELEASING;
	if (f->cur == c)
		f->cur = -1;
	/* off the partial stack, or a reuse could push it there twice */
	for (uint32_t i = 0; f->ch[c].partial && i < f->npartial; i++)
		if (f->partial[i] == c) {
			f->partial[i] = f->partial[--f->npartial];
			f->ch[c].partial = false;
		}
	pthread_mutex_unlock(&f->mu);
	discard(f, (uint64_t)c * CHUNK, CHUNK);
	pthread_mutex_lock(&f->mu);
	f->ch[c].state = CH_FREE;
	f->free_ch[f->nfree_ch++] = c;
	_pmv_store_uncharge(s, CHUNK);
}

/* A 4 KB slot's offset, or -ENOSPC / -ENOMEM. */
static int64_t slot_take(struct _pmv_store *s, struct file *f)
{
	int64_t c;

	pthread_mutex_lock(&f->mu);
	while (f->cur < 0 || f->ch[f->cur].nused == SLOTS) {
		if (f->npartial) {
			uint32_t p = f->partial[--f->npartial];

			f->ch[p].partial = false;
			f->cur = p;	/* released ones left the stack */
			continue;
		}
		c = chunk_take(s, f, CH_SMALL);
		if (c < 0) {
			pthread_mutex_unlock(&f->mu);
			return c;
		}
		f->cur = c;
	}
	struct chunk *ch = &f->ch[f->cur];

	for (unsigned w = 0; w < SLOTS / 64; w++) {
		if (ch->bits[w] == UINT64_MAX)
			continue;
		unsigned b = (unsigned)__builtin_ctzll(~ch->bits[w]);

		ch->bits[w] |= 1ULL << b;
		ch->nused++;
		int64_t off = f->cur * (int64_t)CHUNK + (int64_t)(w * 64 + b) * PMV_SIZE_4K;

		pthread_mutex_unlock(&f->mu);
		return off;
	}
	pthread_mutex_unlock(&f->mu);
	return -ENOMEM;	/* not reached: nused < SLOTS */
}

static void slot_free(struct _pmv_store *s, struct file *f, uint64_t off, int ps)
{
	uint32_t c = (uint32_t)(off / CHUNK);

	pthread_mutex_lock(&f->mu);
	if (ps == PMV_PS_2M) {
		chunk_release(s, f, c);
	} else {
		unsigned slot = (unsigned)(off % CHUNK / PMV_SIZE_4K);
		struct chunk *ch = &f->ch[c];

		ch->bits[slot / 64] &= ~(1ULL << slot % 64);
		if (!--ch->nused) {
			chunk_release(s, f, c);
		} else if (f->cur != c && !ch->partial) {
			ch->partial = true;
			f->partial[f->npartial++] = c;
		}
	}
	pthread_mutex_unlock(&f->mu);
}

static int64_t place(struct _pmv_store *s, struct file *f, int ps)
{
	int64_t c;

	if (ps == PMV_PS_4K)
		return slot_take(s, f);
	pthread_mutex_lock(&f->mu);
	c = chunk_take(s, f, CH_BIG);
	pthread_mutex_unlock(&f->mu);
	return c < 0 ? c : c * (int64_t)CHUNK;
}

/* ---- I/O --------------------------------------------------------------- */

/* The rest of a request by pread/pwrite: 0 or a negative errno. */
static int io_sync(struct file *f, bool wr, char *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = wr ? pwrite(f->fd, buf, len, (off_t)off) :
				 pread(f->fd, buf, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return wr ? -ENOSPC : -EIO;	/* a read past what was written */
		buf += n, len -= (size_t)n, off += (uint64_t)n;
	}
	return 0;
}

static struct ring *ring_get(struct file *f)
{
	static _Atomic unsigned rr;

	for (unsigned i = 0; i < NRINGS; i++)
		if (!pthread_mutex_trylock(&f->rings[i].mu))
			return &f->rings[i];
	struct ring *r = &f->rings[atomic_fetch_add(&rr, 1) % NRINGS];

	pthread_mutex_lock(&r->mu);
	return r;
}

/*
 * Read or write r[i]->page at off[i] for every i with off[i] >= 0, setting
 * r[i]->status: io_uring with QD in flight, short transfers finished
 * synchronously.
 */
static void io_batch(struct file *f, bool wr, struct _pmv_store_req **r, const int64_t *off,
		     size_t n)
{
	struct ring *rg = NULL;
	size_t next = 0, inflight = 0;

	if (f->uring) {
		rg = ring_get(f);
		if (!rg->ok) {
			pthread_mutex_unlock(&rg->mu);
			rg = NULL;
		}
	}
	if (!rg) {
		for (size_t i = 0; i < n; i++)
			if (off[i] >= 0)
				r[i]->status = io_sync(f, wr, r[i]->page, _pmv_ps_size(r[i]->ps),
						       (uint64_t)off[i]);
		return;
	}
	while (next < n || inflight) {
		struct io_uring_cqe *cqe;
		int ret;

		/* keep the queue full */
		while (next < n && inflight < QD) {
			struct io_uring_sqe *sqe;

			if (off[next] < 0) {
				next++;
				continue;
			}
			sqe = io_uring_get_sqe(&rg->ring);
			if (!sqe)
				break;
			if (wr)
				io_uring_prep_write(sqe, f->fd, r[next]->page,
						    (unsigned)_pmv_ps_size(r[next]->ps),
						    (uint64_t)off[next]);
			else
				io_uring_prep_read(sqe, f->fd, r[next]->page,
						   (unsigned)_pmv_ps_size(r[next]->ps),
						   (uint64_t)off[next]);
			io_uring_sqe_set_data64(sqe, next);
			next++;
			inflight++;
		}
		if (!inflight)
			break;
		ret = io_uring_submit_and_wait(&rg->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			/* the ring broke: what is queued finishes synchronously below */
			break;
		}
		while (io_uring_peek_cqe(&rg->ring, &cqe) == 0) {
			size_t i = (size_t)io_uring_cqe_get_data64(cqe);
			size_t len = _pmv_ps_size(r[i]->ps);
			int res = cqe->res;

			io_uring_cqe_seen(&rg->ring, cqe);
			inflight--;
			if (res < 0 && res != -EAGAIN && res != -EINTR)
				r[i]->status = res;
			else if ((size_t)(res < 0 ? 0 : res) < len)
				r[i]->status = io_sync(f, wr, (char *)r[i]->page + (res < 0 ? 0 : res),
						       len - (size_t)(res < 0 ? 0 : res),
						       (uint64_t)off[i] + (uint64_t)(res < 0 ? 0 : res));
			else
				r[i]->status = 0;
		}
	}
	if (inflight) {
		/*
		 * Only after a broken ring: reap what completes, then do the
		 * lot again synchronously (a request written twice is harmless).
		 */
		struct io_uring_cqe *cqe;

		while (inflight && io_uring_wait_cqe(&rg->ring, &cqe) == 0) {
			io_uring_cqe_seen(&rg->ring, cqe);
			inflight--;
		}
		for (size_t i = 0; i < next; i++)
			if (off[i] >= 0)
				r[i]->status = io_sync(f, wr, r[i]->page, _pmv_ps_size(r[i]->ps),
						       (uint64_t)off[i]);
	}
	for (size_t i = next; i < n; i++)
		if (off[i] >= 0)
			r[i]->status = io_sync(f, wr, r[i]->page, _pmv_ps_size(r[i]->ps),
					       (uint64_t)off[i]);
	pthread_mutex_unlock(&rg->mu);
}

/* An I/O error as a store status: ENOSPC and EIO as they are, others EIO. */
static int io_status(int err)
{
	return err == -ENOSPC || err == -EDQUOT ? -ENOSPC : err ? -EIO : 0;
}

/* ---- ops --------------------------------------------------------------- */

static int open_in_dir(const char *dir, bool *named)
{
	char path[4096];
	int fd;

	*named = false;
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd;
	/* no O_TMPFILE here: a name for an instant, never readable by others */
	if (snprintf(path, sizeof(path), "%s/.pagemove-store-XXXXXX", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = mkostemp(path, O_CLOEXEC);	/* 0600 */
	if (fd < 0)
		return -1;
	unlink(path);
	*named = true;
	return fd;
}

static int file_open(struct _pmv_store *s, const struct pmv_tier_config *tc)
{
	struct file *f = calloc(1, sizeof(*f));
	struct stat st;
	bool named;
	int ret;

	if (!f)
		return -ENOMEM;
	f->cur = -1;
	pthread_mutex_init(&f->mu, NULL);
	if (stat(tc->path, &st)) {
		ret = _pmv_set_errmsg(-errno, "file tier: %s: %s", tc->path, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		f->fd = open_in_dir(tc->path, &named);
		if (f->fd < 0) {
			ret = _pmv_set_errmsg(-errno, "file tier: no file in %s: %s", tc->path,
					      strerror(errno));
			goto fail;
		}
		(void)named;
	} else if (S_ISBLK(st.st_mode)) {
		/* O_EXCL on a block device: refused while mounted or claimed */
		f->fd = open(tc->path, O_RDWR | O_CLOEXEC | O_EXCL);
		if (f->fd < 0) {
			ret = _pmv_set_errmsg(-errno, "file tier: %s: %s", tc->path, strerror(errno));
			goto fail;
		}
		if (ioctl(f->fd, BLKGETSIZE64, &f->dev_size)) {
			ret = _pmv_set_errmsg(-errno, "file tier: %s: BLKGETSIZE64: %s", tc->path,
					      strerror(errno));
			close(f->fd);
			goto fail;
		}
		f->bdev = true;
	} else {
		ret = _pmv_set_errmsg(-EINVAL, "file tier: %s is neither a directory nor a block "
				      "device", tc->path);
		goto fail;
	}
	/* O_DIRECT where the file system has it; F_SETFL says so without reopening */
	f->direct = !fcntl(f->fd, F_SETFL, fcntl(f->fd, F_GETFL) | O_DIRECT) &&
		    (fcntl(f->fd, F_GETFL) & O_DIRECT);
	for (int i = 0; i < NRINGS; i++) {
		pthread_mutex_init(&f->rings[i].mu, NULL);
		f->rings[i].ok = !io_uring_queue_init(QD, &f->rings[i].ring, 0);
		f->uring |= f->rings[i].ok;
	}
	s->priv = f;
	return 0;
fail:
	pthread_mutex_destroy(&f->mu);
	free(f);
	return ret;
}

static void file_close(struct _pmv_store *s)
{
	struct file *f = s->priv;

	/* nothing of the pages stays on the disk's free blocks to be read */
	if (f->nch)
		discard(f, 0, (uint64_t)f->nch * CHUNK);
	for (int i = 0; i < NRINGS; i++) {
		if (f->rings[i].ok)
			io_uring_queue_exit(&f->rings[i].ring);
		pthread_mutex_destroy(&f->rings[i].mu);
	}
	close(f->fd);
	pthread_mutex_destroy(&f->mu);
	_pmv_kfree(f->ch);
	_pmv_kfree(f->free_ch);
	_pmv_kfree(f->partial);
	free(f);
	s->priv = NULL;
}

static void file_put(struct _pmv_store *s, struct _pmv_store_req **r, size_t n)
{
	struct file *f = s->priv;
	int64_t off[64];

	for (size_t base = 0; base < n; base += 64) {
		size_t m = n - base < 64 ? n - base : 64;

		for (size_t i = 0; i < m; i++) {
			off[i] = place(s, f, r[base + i]->ps);
			r[base + i]->status = off[i] < 0 ? (int)off[i] : 0;
		}
		io_batch(f, true, r + base, off, m);
		for (size_t i = 0; i < m; i++) {
			struct _pmv_store_req *q = r[base + i];

			if (off[i] < 0)
				continue;
			q->status = io_status(q->status);
			if (q->status) {
				slot_free(s, f, (uint64_t)off[i], q->ps);
				continue;
			}
			q->e->ref = (uint64_t)off[i];
			q->e->len = (uint32_t)_pmv_ps_size(q->ps);
		}
	}
}

static void file_get(struct _pmv_store *s, struct _pmv_store_req **r, size_t n)
{
	struct file *f = s->priv;
	int64_t off[64];

	for (size_t base = 0; base < n; base += 64) {
		size_t m = n - base < 64 ? n - base : 64;

		for (size_t i = 0; i < m; i++)
			off[i] = (int64_t)r[base + i]->e->ref;
		io_batch(f, false, r + base, off, m);
		for (size_t i = 0; i < m; i++)
			r[base + i]->status = r[base + i]->status ? -EIO : 0;
	}
}

static void file_free(struct _pmv_store *s, struct _pmv_store_entry *e)
{
	slot_free(s, s->priv, e->ref, e->ps);
}

static int file_corrupt(struct _pmv_store *s, const struct _pmv_store_entry *e)
{
	struct file *f = s->priv;
	void *buf;
	int ret;

	/* a whole aligned block, as O_DIRECT wants; not malloc's (a store call) */
	buf = mmap(NULL, PMV_SIZE_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return -ENOMEM;
	ret = io_sync(f, false, buf, PMV_SIZE_4K, e->ref);
	if (!ret) {
		((unsigned char *)buf)[100] ^= 0x5a;
		ret = io_sync(f, true, buf, PMV_SIZE_4K, e->ref);
	}
	munmap(buf, PMV_SIZE_4K);
	return ret;
}

static void file_stats(struct _pmv_store *s, struct _pmv_store_stats *st)
{
	struct file *f = s->priv;

	st->direct_io = f->direct;
	st->uring = f->uring;
}

const struct _pmv_store_ops _pmv_store_file_ops = {
	.name = "file",
	.open = file_open,
	.close = file_close,
	.put = file_put,
	.get = file_get,
	.free = file_free,
	.corrupt = file_corrupt,
	.stats = file_stats,
};
