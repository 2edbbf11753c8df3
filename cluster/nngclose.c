/* SPDX-License-Identifier: Apache-2.0 */
/* Bounded NNG socket close (see nngclose.h). */
#include "cluster/nngclose.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "common/log.h"

typedef struct closer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	nng_socket sock;
	void (*done)(void *arg);
	void *arg;
	bool finished, abandoned;
	struct closer *next;
} closer;

static pthread_mutex_t abandoned_mu = PTHREAD_MUTEX_INITIALIZER;
static closer *abandoned;
/* Once one close hangs, NNG's single reaper thread is stuck and every later
 * close hangs too: stop waiting long. */
static atomic_bool reaper_stuck;

static void
closer_free(closer *cl)
{
	pthread_cond_destroy(&cl->cv);
	pthread_mutex_destroy(&cl->mu);
	free(cl);
}

static void
unlist(closer *cl)
{
	pthread_mutex_lock(&abandoned_mu);
	for (closer **pp = &abandoned; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	}
	pthread_mutex_unlock(&abandoned_mu);
}

static void *
closer_main(void *arg)
{
	closer *cl = arg;
	bool left_behind;

	nng_close(cl->sock);
	if (cl->done != NULL) {
		cl->done(cl->arg);
	}
	pthread_mutex_lock(&cl->mu);
	cl->finished = true;
	left_behind = cl->abandoned;
	pthread_cond_signal(&cl->cv);
	pthread_mutex_unlock(&cl->mu);
	if (left_behind) {
		unlist(cl);
		closer_free(cl);
	}
	return NULL;
}

static struct timespec
deadline(int wait_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += wait_ms / 1000;
	ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

bool
clu_nng_close(nng_socket sock, void (*done)(void *arg), void *arg, int wait_ms)
{
	struct timespec until;
	pthread_attr_t attr;
	pthread_t th;
	closer *cl;
	bool finished;

	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		goto inline_close;
	}
	cl->sock = sock;
	cl->done = done;
	cl->arg = arg;
	pthread_mutex_init(&cl->mu, NULL);
	pthread_cond_init(&cl->cv, NULL);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, closer_main, cl) != 0) {
		pthread_attr_destroy(&attr);
		closer_free(cl);
		goto inline_close;
	}
	pthread_attr_destroy(&attr);
	if (atomic_load(&reaper_stuck) && wait_ms > 100) {
		wait_ms = 100;
	}
	until = deadline(wait_ms > 0 ? wait_ms : 0);
	pthread_mutex_lock(&cl->mu);
	while (wait_ms > 0 && !cl->finished &&
	    pthread_cond_timedwait(&cl->cv, &cl->mu, &until) == 0) {
	}
	finished = cl->finished;
	if (!finished) {
		/* From here the thread frees cl when it is done. */
		cl->abandoned = true;
		pthread_mutex_lock(&abandoned_mu);
		cl->next = abandoned;
		abandoned = cl;
		pthread_mutex_unlock(&abandoned_mu);
	}
	pthread_mutex_unlock(&cl->mu);
	if (finished) {
		closer_free(cl);
		return true;
	}
	if (wait_ms > 0 && !atomic_exchange(&reaper_stuck, true)) {
		LOG_WARN("CLU-CLOSEHANG",
		    "NNG socket close did not finish in %d ms (NNG 1.5 issue "
		    "#1543); leaving it behind",
		    wait_ms);
	}
	return false;

inline_close:
	nng_close(sock);
	if (done != NULL) {
		done(arg);
	}
	return true;
}
