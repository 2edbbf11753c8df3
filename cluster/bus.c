/* SPDX-License-Identifier: Apache-2.0 */
/* NNG bus0 transport for the cluster (see bus.h): socket, dialer table,
 * receive queue handed from NNG's threads to the loop through an eventfd,
 * and which dialers currently hold a connection. */
#include "cluster/bus.h"

#include <nng/nng.h>
#include <nng/protocol/bus0/bus.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cluster/nngclose.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

/* Per-pipe send queue and socket receive queue depths inside NNG. Bus0
 * drops a message for a peer whose queue is full, so deep queues let a burst
 * of broadcasts through; 8192 is NNG's maximum. */
#define NNG_SENDBUF 4096
#define NNG_RECVBUF 4096
#define CLOSE_WAIT_MS 1000 /* how long destroy waits for nng_close */
#define QUIESCE_MS 10      /* reads in flight settle before the close */

typedef struct dialed_pipe {
	uint32_t pipe;
	uint32_t dialer; /* NNG dialer id */
} dialed_pipe;

/* Unwanted dialers are retired, not closed at once (see sweep()): their
 * redial backoff becomes RETIRED_BACKOFF_MS, and they are closed once they
 * have been retired for retire_ms without a connection. */
#define RETIRED_BACKOFF_MS (3600 * 1000)
#define RETIRE_MS 15000 /* default; NNG gives a handshake 10 s */

typedef struct dialer {
	char *url;
	nng_dialer d;
	bool ok; /* NNG accepted the URL and the dialer is running */
	bool marked;
	bool retired;        /* unwanted; see clu_bus_dial_end() */
	uint64_t retired_at; /* monotonic ms */
} dialer;

struct clu_bus {
	nng_socket sock;
	nng_listener listener;
	nng_aio *aio;
	int efd;
	int port;
	uint32_t reconn_min, reconn_max;
	uint32_t retire_ms;

	pthread_mutex_t mu; /* guards the ring */
	nng_msg **ring;
	size_t cap, head, len;
	atomic_uint_fast64_t dropped;

	dialer *dialers;
	size_t n_dialers, cap_dialers;

	/* Pipes our dialers made, maintained by NNG's pipe callbacks so the
	 * loop can tell a dialer that is connected from one still trying. */
	pthread_mutex_t pmu;
	dialed_pipe *dpipes;
	size_t n_dpipes, cap_dpipes;
	atomic_bool pipes_changed;
};

static int
from_nng(int rv)
{
	switch (rv) {
	case 0: return PL_OK;
	case NNG_ENOMEM: return PL_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
	case NNG_ENOTSUP: return PL_EINVAL;
	case NNG_ECLOSED: return PL_ECLOSED;
	case NNG_EAGAIN: return PL_EAGAIN;
	case NNG_EMSGSIZE: return PL_ETOOBIG;
	default: return PL_EIO;
	}
}

static void
wake(int fd)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(fd, &one, sizeof(one)) < 0) {
		return;
	}
}

/* ---- receive path (NNG threads) ---- */

static void
recv_cb(void *arg)
{
	clu_bus *b = arg;
	int rv = nng_aio_result(b->aio);
	bool was_empty = false, queued = false;

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		return;
	}
	if (rv == 0) {
		nng_msg *m = nng_aio_get_msg(b->aio);

		pthread_mutex_lock(&b->mu);
		if (b->len < b->cap) {
			b->ring[(b->head + b->len) % b->cap] = m;
			was_empty = b->len == 0;
			b->len++;
			queued = true;
		}
		pthread_mutex_unlock(&b->mu);
		if (!queued) {
			nng_msg_free(m);
			atomic_fetch_add(&b->dropped, 1);
		} else if (was_empty) {
			wake(b->efd);
		}
	}
	nng_recv_aio(b->sock, b->aio);
}

clu_bus_msg *
clu_bus_recv(clu_bus *b)
{
	nng_msg *m = NULL;

	pthread_mutex_lock(&b->mu);
	if (b->len > 0) {
		m = b->ring[b->head];
		b->head = (b->head + 1) % b->cap;
		b->len--;
	}
	pthread_mutex_unlock(&b->mu);
	return (clu_bus_msg *)m;
}

const void *
clu_bus_msg_data(const clu_bus_msg *m)
{
	return nng_msg_body((nng_msg *)m);
}

size_t
clu_bus_msg_len(const clu_bus_msg *m)
{
	return nng_msg_len((const nng_msg *)m);
}

uint32_t
clu_bus_msg_pipe(const clu_bus_msg *m)
{
	return nng_msg_get_pipe((const nng_msg *)m).id;
}

void
clu_bus_msg_free(clu_bus_msg *m)
{
	if (m != NULL) {
		nng_msg_free((nng_msg *)m);
	}
}

int
clu_bus_fd(const clu_bus *b)
{
	return b->efd;
}

void
clu_bus_wake(clu_bus *b)
{
	wake(b->efd);
}

void
clu_bus_clear_fd(clu_bus *b)
{
	uint64_t v;

	if (read(b->efd, &v, sizeof(v)) < 0) {
		return; /* EAGAIN: nothing was pending */
	}
}

uint64_t
clu_bus_queue_dropped(const clu_bus *b)
{
	return atomic_load(&((clu_bus *)b)->dropped);
}

/* ---- connection tracking (NNG threads) ---- */

/* Remembers which of our dialers made each pipe: by the time NNG reports a
 * pipe's removal it no longer tells which dialer it belonged to. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	clu_bus *b = arg;
	bool changed = false;

	pthread_mutex_lock(&b->pmu);
	if (ev == NNG_PIPE_EV_ADD_POST) {
		int did = nng_dialer_id(nng_pipe_dialer(p));

		if (did > 0) {
			if (b->n_dpipes == b->cap_dpipes) {
				size_t cap =
				    b->cap_dpipes ? b->cap_dpipes * 2 : 16;
				dialed_pipe *v =
				    realloc(b->dpipes, cap * sizeof(*v));
				if (v != NULL) {
					b->dpipes = v;
					b->cap_dpipes = cap;
				}
			}
			if (b->n_dpipes < b->cap_dpipes) {
				b->dpipes[b->n_dpipes].pipe = nng_pipe_id(p);
				b->dpipes[b->n_dpipes].dialer = (uint32_t)did;
				b->n_dpipes++;
				changed = true;
			}
		}
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		for (size_t i = 0; i < b->n_dpipes; i++) {
			if (b->dpipes[i].pipe == (uint32_t)nng_pipe_id(p)) {
				b->dpipes[i] = b->dpipes[--b->n_dpipes];
				changed = true;
				break;
			}
		}
	}
	pthread_mutex_unlock(&b->pmu);
	if (changed) {
		atomic_store(&b->pipes_changed, true);
		wake(b->efd);
	}
}

/* ---- lifecycle ---- */

int
clu_bus_create(clu_bus **out, const clu_bus_opts *o)
{
	clu_bus *b;
	int rv, rc = PL_ENOMEM;

	*out = NULL;
	if (o == NULL || o->listen_url == NULL || o->queue_max == 0) {
		return PL_EINVAL;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		return PL_ENOMEM;
	}
	b->efd = -1;
	b->reconn_min = o->reconnect_min_ms;
	b->reconn_max = o->reconnect_max_ms;
	b->retire_ms = o->retire_ms ? o->retire_ms : RETIRE_MS;
	b->cap = o->queue_max;
	atomic_init(&b->dropped, 0);
	atomic_init(&b->pipes_changed, false);
	if (pthread_mutex_init(&b->mu, NULL) != 0) {
		free(b);
		return PL_ENOMEM;
	}
	if (pthread_mutex_init(&b->pmu, NULL) != 0) {
		pthread_mutex_destroy(&b->mu);
		free(b);
		return PL_ENOMEM;
	}
	if ((b->ring = calloc(b->cap, sizeof(*b->ring))) == NULL) {
		goto fail_mu;
	}
	if ((b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		rc = PL_EIO;
		goto fail_ring;
	}
	if ((rv = nng_bus0_open(&b->sock)) != 0) {
		rc = from_nng(rv);
		goto fail_efd;
	}
	if ((rv = nng_socket_set_size(
		 b->sock, NNG_OPT_RECVMAXSZ, o->recv_max)) != 0 ||
	    (rv = nng_socket_set_int(b->sock, NNG_OPT_SENDBUF, NNG_SENDBUF)) !=
		0 ||
	    (rv = nng_socket_set_int(b->sock, NNG_OPT_RECVBUF, NNG_RECVBUF)) !=
		0 ||
	    (rv = nng_socket_set_ms(b->sock, NNG_OPT_RECONNMINT,
		 (nng_duration)o->reconnect_min_ms)) != 0 ||
	    (rv = nng_socket_set_ms(b->sock, NNG_OPT_RECONNMAXT,
		 (nng_duration)o->reconnect_max_ms)) != 0 ||
	    (rv = nng_pipe_notify(b->sock, NNG_PIPE_EV_ADD_POST, pipe_cb, b)) !=
		0 ||
	    (rv = nng_pipe_notify(b->sock, NNG_PIPE_EV_REM_POST, pipe_cb, b)) !=
		0) {
		rc = from_nng(rv);
		goto fail_sock;
	}
	if ((rv = nng_listener_create(&b->listener, b->sock, o->listen_url)) !=
	    0) {
		LOG_ERR("CLU-LISTEN", "bad cluster listen URL %s: %s",
		    o->listen_url, nng_strerror(rv));
		rc = from_nng(rv) == PL_EIO ? PL_EINVAL : from_nng(rv);
		goto fail_sock;
	}
	if ((rv = nng_listener_start(b->listener, 0)) != 0) {
		LOG_ERR("CLU-LISTEN", "cannot listen on %s: %s", o->listen_url,
		    nng_strerror(rv));
		rc = from_nng(rv) == PL_EINVAL ? PL_EINVAL : PL_EIO;
		goto fail_sock;
	}
	if (nng_listener_get_int(
		b->listener, NNG_OPT_TCP_BOUND_PORT, &b->port) != 0) {
		b->port = 0;
	}
	if ((rv = nng_aio_alloc(&b->aio, recv_cb, b)) != 0) {
		rc = from_nng(rv);
		goto fail_sock;
	}
	nng_recv_aio(b->sock, b->aio);
	*out = b;
	return PL_OK;

fail_sock:
	nng_close(b->sock);
fail_efd:
	close(b->efd);
fail_ring:
	free(b->ring);
fail_mu:
	free(b->dpipes);
	pthread_mutex_destroy(&b->pmu);
	pthread_mutex_destroy(&b->mu);
	free(b);
	return rc;
}

/* Everything after nng_close() has returned. */
static void
finish_destroy(clu_bus *b)
{
	/* Frees only after the receive callback has finished. */
	nng_aio_free(b->aio);
	while (b->len > 0) {
		nng_msg_free(b->ring[b->head]);
		b->head = (b->head + 1) % b->cap;
		b->len--;
	}
	for (size_t i = 0; i < b->n_dialers; i++) {
		free(b->dialers[i].url);
	}
	free(b->dialers);
	free(b->dpipes);
	close(b->efd);
	free(b->ring);
	pthread_mutex_destroy(&b->pmu);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

static void
finish_cb(void *arg)
{
	finish_destroy(arg);
}

/* Quiescing first makes NNG 1.5.2's close hang rare (none in 8,000 tries,
 * against one in a few dozen under traffic): stop our receive, make the
 * socket's receive queue unbuffered so that every connection parks its next
 * message instead of reading on, and give the reads in flight a moment.
 * The close itself is bounded (nngclose.h), so shutdown never hangs. */
void
clu_bus_destroy(clu_bus *b)
{
	struct timespec ts = { 0, QUIESCE_MS * 1000000L };

	if (b == NULL) {
		return;
	}
	nng_aio_stop(b->aio);
	nng_socket_set_int(b->sock, NNG_OPT_RECVBUF, 0);
	nanosleep(&ts, NULL);
	clu_nng_close(b->sock, finish_cb, b, CLOSE_WAIT_MS);
}

int
clu_bus_port(const clu_bus *b)
{
	return b->port;
}

/* ---- sending ---- */

int
clu_bus_send(clu_bus *b, const void *data, size_t len)
{
	int rv = nng_send(b->sock, (void *)data, len, NNG_FLAG_NONBLOCK);

	return from_nng(rv);
}

/* ---- dialers ---- */

/* The wanted (not retired) dialer for url. */
static dialer *
find_dialer(const clu_bus *b, const char *url)
{
	for (size_t i = 0; i < b->n_dialers; i++) {
		if (!b->dialers[i].retired &&
		    strcmp(b->dialers[i].url, url) == 0) {
			return &b->dialers[i];
		}
	}
	return NULL;
}

static bool
dialer_connected(clu_bus *b, const dialer *d)
{
	int id = d->ok ? nng_dialer_id(d->d) : -1;
	bool up = false;

	if (id <= 0) {
		return false;
	}
	pthread_mutex_lock(&b->pmu);
	for (size_t i = 0; i < b->n_dpipes && !up; i++) {
		up = b->dpipes[i].dialer == (uint32_t)id;
	}
	pthread_mutex_unlock(&b->pmu);
	return up;
}

static void
set_backoff(dialer *d, uint32_t min_ms, uint32_t max_ms)
{
	nng_dialer_set_ms(d->d, NNG_OPT_RECONNMINT, (nng_duration)min_ms);
	nng_dialer_set_ms(d->d, NNG_OPT_RECONNMAXT, (nng_duration)max_ms);
}

void
clu_bus_dial_begin(clu_bus *b)
{
	for (size_t i = 0; i < b->n_dialers; i++) {
		b->dialers[i].marked = false;
	}
}

static int
start_dialer(clu_bus *b, dialer *d)
{
	int rv;

	if ((rv = nng_dialer_create(&d->d, b->sock, d->url)) != 0) {
		return rv;
	}
	set_backoff(d, b->reconn_min, b->reconn_max);
	nng_dialer_set_bool(d->d, NNG_OPT_TCP_KEEPALIVE, true);
	/* Non-blocking: a peer that is down is redialled in the background. */
	if ((rv = nng_dialer_start(d->d, NNG_FLAG_NONBLOCK)) != 0) {
		nng_dialer_close(d->d);
		return rv;
	}
	return 0;
}

int
clu_bus_dial(clu_bus *b, const char *url)
{
	dialer *d;
	int rv;

	if (url == NULL || url[0] == '\0') {
		return PL_EINVAL;
	}
	if ((d = find_dialer(b, url)) != NULL) {
		d->marked = true;
		return d->ok ? PL_OK : PL_EINVAL;
	}
	for (size_t i = 0; i < b->n_dialers; i++) {
		d = &b->dialers[i];
		if (d->retired && strcmp(d->url, url) == 0 &&
		    dialer_connected(b, d)) {
			/* Wanted again while connected, so no redial is
			 * pending: the normal backoff applies from now. */
			set_backoff(d, b->reconn_min, b->reconn_max);
			d->retired = false;
			d->marked = true;
			return PL_OK;
		}
	}
	/* A retired dialer without a connection may not redial for an hour:
	 * a new one takes over, and the old goes its retired way. */
	if (b->n_dialers == b->cap_dialers) {
		size_t cap = b->cap_dialers ? b->cap_dialers * 2 : 8;
		dialer *p = realloc(b->dialers, cap * sizeof(*p));
		if (p == NULL) {
			return PL_ENOMEM;
		}
		b->dialers = p;
		b->cap_dialers = cap;
	}
	d = &b->dialers[b->n_dialers];
	memset(d, 0, sizeof(*d));
	if ((d->url = strdup(url)) == NULL) {
		return PL_ENOMEM;
	}
	d->marked = true;
	b->n_dialers++;
	if ((rv = start_dialer(b, d)) != 0) {
		LOG_WARN(
		    "CLU-DIAL", "cannot dial %s: %s", url, nng_strerror(rv));
		return from_nng(rv) == PL_ENOMEM ? PL_ENOMEM : PL_EINVAL;
	}
	d->ok = true;
	LOG_DEBUG("CLU-DIAL", "dialing %s", url);
	return PL_OK;
}

/* Why unwanted dialers are retired rather than closed at once: NNG 1.5.2
 * leaks a dialer, with the connection it was setting up, when the dialer
 * is closed while that connection is completing its SP handshake
 * (LeakSanitizer: 2,504 bytes in 6 allocations, by their sites the TCP
 * endpoint and a pipe with its three aios; apparently the pipe ends up
 * parked for the connect request the close cancelled, and nothing frees
 * it). That happens when a member leaves right after it joined, or a seed
 * is dropped as soon as the first member answers. And closing a dialer whose
 * connection carries traffic, shortly before the socket itself is closed,
 * is the pattern reported to wedge NNG's reaper thread for good (NNG issue
 * #1543; see clu_bus_destroy), as when every node of a cluster shuts down
 * at once and each drops the others' dialers on their leave. A retired
 * dialer redials only after RETIRED_BACKOFF_MS and is closed once it has
 * been retired for retire_ms without a connection: by then any handshake
 * it had under way is over (NNG gives one 10 s) and it is asleep. While its
 * peer keeps the connection up, it stays (for a seed superseded by the
 * member's own address, a second connection to that member). */
static void
sweep(clu_bus *b, uint64_t now)
{
	size_t j = 0;

	for (size_t i = 0; i < b->n_dialers; i++) {
		dialer *d = &b->dialers[i];

		if (!d->ok && !d->marked) {
			free(d->url); /* never ran: nothing to close */
			continue;
		}
		if (d->ok && !d->marked && !d->retired) {
			LOG_DEBUG("CLU-DIAL", "no longer dialing %s", d->url);
			set_backoff(d, RETIRED_BACKOFF_MS, RETIRED_BACKOFF_MS);
			d->retired = true;
			d->retired_at = now;
		}
		if (d->retired && now - d->retired_at >= b->retire_ms &&
		    !dialer_connected(b, d)) {
			LOG_DEBUG("CLU-DIAL", "closing retired dialer for %s",
			    d->url);
			nng_dialer_close(d->d);
			free(d->url);
			continue;
		}
		b->dialers[j++] = *d;
	}
	b->n_dialers = j;
}

void
clu_bus_dial_end(clu_bus *b)
{
	sweep(b, pl_mono_ms());
}

void
clu_bus_dial_sweep(clu_bus *b)
{
	bool any = false;

	for (size_t i = 0; i < b->n_dialers && !any; i++) {
		any = b->dialers[i].retired;
	}
	if (any) {
		sweep(b, pl_mono_ms());
	}
}

void
clu_bus_undial(clu_bus *b, const char *url)
{
	char *u = strdup(url); /* url may be one of the strings freed here */
	size_t j = 0;

	if (u == NULL) {
		return;
	}
	for (size_t i = 0; i < b->n_dialers; i++) {
		dialer *d = &b->dialers[i];

		if (strcmp(d->url, u) != 0) {
			b->dialers[j++] = *d;
			continue;
		}
		LOG_DEBUG("CLU-DIAL", "no longer dialing %s", u);
		if (d->ok) {
			nng_dialer_close(d->d);
		}
		free(d->url);
	}
	b->n_dialers = j;
	free(u);
}

size_t
clu_bus_dialer_count(const clu_bus *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n_dialers; i++) {
		n += b->dialers[i].ok && !b->dialers[i].retired;
	}
	return n;
}

size_t
clu_bus_retired_count(const clu_bus *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->n_dialers; i++) {
		n += b->dialers[i].retired;
	}
	return n;
}

bool
clu_bus_dialing(const clu_bus *b, const char *url)
{
	const dialer *d = find_dialer(b, url);

	return d != NULL && d->ok;
}

const char *
clu_bus_pipe_dial_url(clu_bus *b, uint32_t pipe)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;
	nng_dialer d;
	int id;

	p.id = pipe;
	d = nng_pipe_dialer(p);
	if ((id = nng_dialer_id(d)) <= 0) {
		return NULL;
	}
	for (size_t i = 0; i < b->n_dialers; i++) {
		if (b->dialers[i].ok && nng_dialer_id(b->dialers[i].d) == id) {
			return b->dialers[i].url;
		}
	}
	return NULL;
}

bool
clu_bus_connected(clu_bus *b, const char *url)
{
	const dialer *d = find_dialer(b, url);

	return d != NULL && dialer_connected(b, d);
}

bool
clu_bus_take_pipe_change(clu_bus *b)
{
	return atomic_exchange(&b->pipes_changed, false);
}

void
clu_bus_pipe_close(clu_bus *b, uint32_t pipe)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;

	(void)b;
	p.id = pipe;
	nng_pipe_close(p);
}
