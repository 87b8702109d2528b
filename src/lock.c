/* SPDX-License-Identifier: MIT */
/*
 * Locks the SCHED_FIFO fault handlers share with ordinary threads: the
 * regions lock (a reader-writer lock in which a handler never queues
 * behind a waiting writer) and priority-inheriting mutexes.
 */
#include "internal.h"

void _pmv_regions_lock_init(struct _pmv_regions_lock *l)
{
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	l->readers = l->writers_waiting = 0;
	l->writer = false;
}

void _pmv_regions_lock_destroy(struct _pmv_regions_lock *l)
{
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cv);
}

void _pmv_regions_rdlock(struct _pmv_regions_lock *l, bool fault_thread)
{
	pthread_mutex_lock(&l->mu);
	/* A fault handler waits only for a writer inside, never a queued one. */
	while (l->writer || (!fault_thread && l->writers_waiting))
		pthread_cond_wait(&l->cv, &l->mu);
	l->readers++;
	pthread_mutex_unlock(&l->mu);
}

bool _pmv_regions_tryrdlock(struct _pmv_regions_lock *l)
{
	bool got = false;

	/* mu itself is only held for a few instructions: not a wait */
	pthread_mutex_lock(&l->mu);
	if (!l->writer && !l->writers_waiting) {
		l->readers++;
		got = true;
	}
	pthread_mutex_unlock(&l->mu);
	return got;
}

void _pmv_regions_rdunlock(struct _pmv_regions_lock *l)
{
	pthread_mutex_lock(&l->mu);
	if (!--l->readers)
		pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void _pmv_regions_wrlock(struct _pmv_regions_lock *l)
{
	pthread_mutex_lock(&l->mu);
	l->writers_waiting++;
	while (l->writer || l->readers)
		pthread_cond_wait(&l->cv, &l->mu);
	l->writers_waiting--;
	l->writer = true;
	pthread_mutex_unlock(&l->mu);
}

bool _pmv_regions_trywrlock_fault(struct _pmv_regions_lock *l, bool *announced)
{
	bool got = false;

	pthread_mutex_lock(&l->mu);
	if (!*announced) {
		l->writers_waiting++;
		*announced = true;
	}
	if (!l->writer && !l->readers) {
		l->writers_waiting--;
		*announced = false;
		l->writer = got = true;
	}
	pthread_mutex_unlock(&l->mu);
	return got;
}

void _pmv_regions_wrunlock(struct _pmv_regions_lock *l)
{
	pthread_mutex_lock(&l->mu);
	l->writer = false;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

void _pmv_mutex_init_pi(pthread_mutex_t *mu)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT);
	if (pthread_mutex_init(mu, &a))
		pthread_mutex_init(mu, NULL);
	pthread_mutexattr_destroy(&a);
}
