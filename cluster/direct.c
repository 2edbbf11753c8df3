/* SPDX-License-Identifier: Apache-2.0 */
/* The addressed path (see direct.h): one rep0 listener served by a few NNG
 * contexts, one req0 socket per peer URL with one context per request, and
 * a queue handing completions from NNG's threads to the loop. */
#include "cluster/direct.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/nngclose.h"
#include "common/err.h"
#include "common/log.h"

#define SERVERS 4      /* requests served at once (each a rep0 context) */
#define PENDING_MAX 64 /* our requests in flight */
#define PEERS_MAX 64   /* req0 sockets kept (one per peer URL) */
#define CLOSE_WAIT_MS 1000

enum { S_RECV, S_LOOP, S_SEND, S_STOPPED };
enum { O_SEND, O_RECV };

typedef struct server {
	clu_direct *d;
	nng_ctx ctx;
	nng_aio *aio;
	int state;    /* guarded by d->mu while S_LOOP can change */
	uint32_t gen; /* bumped on every reply: stale handles miss */
	uint32_t idx;
} server;

typedef struct outreq {
	clu_direct *d;
	nng_ctx ctx;
	nng_aio *aio;
	uint64_t tag;
	int state; /* only its callback touches it after the send */
	struct outreq *next;
} outreq;

typedef struct peer {
	char *url;
	nng_socket sock;
} peer;

/* A completion waiting for the loop. */
typedef struct qev {
	clu_direct_ev_type type;
	uint64_t id;
	int status;
	nng_msg *msg;
	outreq *req; /* RESULT: freed by the loop when it pops this */
	struct qev *next;
} qev;

struct clu_direct {
	clu_direct_opts o;
	nng_socket rep;
	int port;
	server srv[SERVERS];
	size_t nsrv; /* contexts opened */
	peer peers[PEERS_MAX];
	size_t npeers;
	outreq *pending; /* loop-owned */
	size_t npending;
	pthread_mutex_t mu; /* guards the queue and servers' states */
	qev *head, *tail;
	clu_direct_stats st;
};

static int
from_nng(int rv)
{
	switch (rv) {
	case 0: return PL_OK;
	case NNG_ENOMEM: return PL_ENOMEM;
	case NNG_EINVAL:
	case NNG_EADDRINVAL: return PL_EINVAL;
	case NNG_ETIMEDOUT:
	case NNG_EAGAIN:
	case NNG_ECONNREFUSED:
	case NNG_ECONNRESET:
	case NNG_ECONNSHUT: return PL_EAGAIN;
	case NNG_EMSGSIZE: return PL_ETOOBIG;
	case NNG_ECLOSED:
	case NNG_ECANCELED: return PL_ECLOSED;
	default: return PL_EIO;
	}
}

/* Queues a completion for the loop (any thread). Returns false when it could
 * not be queued (out of memory): the caller cleans up. */
static bool
push(clu_direct *d, clu_direct_ev_type type, uint64_t id, int status,
    nng_msg *msg, outreq *req)
{
	qev *e = calloc(1, sizeof(*e));

	if (e == NULL) {
		return false;
	}
	e->type = type;
	e->id = id;
	e->status = status;
	e->msg = msg;
	e->req = req;
	pthread_mutex_lock(&d->mu);
	if (d->tail != NULL) {
		d->tail->next = e;
	} else {
		d->head = e;
	}
	d->tail = e;
	pthread_mutex_unlock(&d->mu);
	if (d->o.wake != NULL) {
		d->o.wake(d->o.wake_arg);
	}
	return true;
}

/* ---- serving ---- */

static void
srv_recv(server *s)
{
	s->state = S_RECV;
	nng_ctx_recv(s->ctx, s->aio);
}

static void
srv_cb(void *arg)
{
	server *s = arg;
	int rv = nng_aio_result(s->aio);
	nng_msg *msg;

	if (s->state == S_SEND) {
		if (rv != 0) {
			nng_msg_free(nng_aio_get_msg(s->aio));
		}
		if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
			s->state = S_STOPPED;
			return;
		}
		srv_recv(s);
		return;
	}
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		s->state = S_STOPPED;
		return;
	}
	if (rv != 0) {
		srv_recv(s);
		return;
	}
	msg = nng_aio_get_msg(s->aio);
	pthread_mutex_lock(&s->d->mu);
	s->state = S_LOOP;
	pthread_mutex_unlock(&s->d->mu);
	if (!push(s->d, CLU_DIRECT_REQUEST, ((uint64_t)s->gen << 8) | s->idx,
		PL_OK, msg, NULL)) {
		nng_msg_free(msg);
		srv_recv(s);
	}
}

int
clu_direct_reply(clu_direct *d, uint64_t handle, const void *bytes, size_t len)
{
	uint32_t idx = (uint32_t)(handle & 0xff);
	server *s = idx < d->nsrv ? &d->srv[idx] : NULL;
	nng_msg *msg = NULL;
	bool ok;

	if (s == NULL) {
		return PL_ENOTFOUND;
	}
	pthread_mutex_lock(&d->mu);
	ok = s->state == S_LOOP && s->gen == (uint32_t)(handle >> 8);
	if (ok) {
		s->gen++;
		s->state = S_SEND;
	}
	pthread_mutex_unlock(&d->mu);
	if (!ok) {
		return PL_ENOTFOUND;
	}
	if (nng_msg_alloc(&msg, 0) != 0 ||
	    nng_msg_append(msg, bytes, len) != 0) {
		/* The asker times out; the context serves the next one. */
		nng_msg_free(msg);
		srv_recv(s);
		return PL_ENOMEM;
	}
	d->st.bytes_out += len;
	d->st.requests_served++;
	nng_aio_set_msg(s->aio, msg);
	nng_ctx_send(s->ctx, s->aio);
	return PL_OK;
}

/* ---- asking ---- */

static void
out_cb(void *arg)
{
	outreq *r = arg;
	int rv = nng_aio_result(r->aio);

	if (r->state == O_SEND && rv == 0) {
		r->state = O_RECV;
		nng_ctx_recv(r->ctx, r->aio);
		return;
	}
	if (r->state == O_SEND) {
		nng_msg_free(nng_aio_get_msg(r->aio));
	}
	/* Out of memory here leaves the request pending until destroy; its
	 * owner's own timeout gives up on it. */
	push(r->d, CLU_DIRECT_RESULT, r->tag, from_nng(rv),
	    rv == 0 ? nng_aio_get_msg(r->aio) : NULL, r);
}

static peer *
get_peer(clu_direct *d, const char *url)
{
	peer *p;

	for (size_t i = 0; i < d->npeers; i++) {
		if (strcmp(d->peers[i].url, url) == 0) {
			return &d->peers[i];
		}
	}
	if (d->npeers == PEERS_MAX) {
		/* A URL churn this large means restarts with new ports: let
		 * the oldest go (closed in the background). */
		clu_nng_close(d->peers[0].sock, NULL, NULL, 0);
		free(d->peers[0].url);
		memmove(&d->peers[0], &d->peers[1],
		    (PEERS_MAX - 1) * sizeof(d->peers[0]));
		d->npeers--;
	}
	p = &d->peers[d->npeers];
	if ((p->url = strdup(url)) == NULL) {
		return NULL;
	}
	if (nng_req0_open(&p->sock) != 0) {
		free(p->url);
		return NULL;
	}
	nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, d->o.recv_max);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, d->o.reconnect_min_ms);
	nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, d->o.reconnect_max_ms);
	if (nng_dial(p->sock, url, NULL, NNG_FLAG_NONBLOCK) != 0) {
		LOG_WARN("CLU-DIRECTURL", "cannot dial %s", url);
		clu_nng_close(p->sock, NULL, NULL, 0);
		free(p->url);
		return NULL;
	}
	d->npeers++;
	return p;
}

int
clu_direct_request(clu_direct *d, const char *url, const void *bytes,
    size_t len, uint32_t timeout_ms, uint64_t tag)
{
	nng_msg *msg = NULL;
	outreq *r;
	peer *p;

	if (url == NULL || url[0] == '\0' || (len > 0 && bytes == NULL)) {
		return PL_EINVAL;
	}
	if (d->npending >= PENDING_MAX) {
		return PL_EFULL;
	}
	if ((p = get_peer(d, url)) == NULL) {
		return PL_EIO;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return PL_ENOMEM;
	}
	r->d = d;
	r->tag = tag;
	if (nng_ctx_open(&r->ctx, p->sock) != 0) {
		free(r);
		return PL_EIO;
	}
	if (nng_aio_alloc(&r->aio, out_cb, r) != 0 ||
	    nng_msg_alloc(&msg, 0) != 0 ||
	    nng_msg_append(msg, bytes, len) != 0) {
		nng_msg_free(msg);
		nng_aio_free(r->aio);
		nng_ctx_close(r->ctx);
		free(r);
		return PL_ENOMEM;
	}
	nng_aio_set_timeout(r->aio, (nng_duration)timeout_ms);
	nng_aio_set_msg(r->aio, msg);
	r->state = O_SEND;
	r->next = d->pending;
	d->pending = r;
	d->npending++;
	d->st.requests_sent++;
	d->st.bytes_out += len;
	nng_ctx_send(r->ctx, r->aio);
	return PL_OK;
}

static void
outreq_free(clu_direct *d, outreq *r)
{
	for (outreq **pp = &d->pending; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			d->npending--;
			break;
		}
	}
	nng_aio_free(r->aio); /* waits for its callback to return */
	nng_ctx_close(r->ctx);
	free(r);
}

/* ---- the loop's side ---- */

bool
clu_direct_next(clu_direct *d, clu_direct_ev *ev)
{
	qev *e;

	pthread_mutex_lock(&d->mu);
	if ((e = d->head) != NULL && (d->head = e->next) == NULL) {
		d->tail = NULL;
	}
	pthread_mutex_unlock(&d->mu);
	memset(ev, 0, sizeof(*ev));
	if (e == NULL) {
		return false;
	}
	ev->type = e->type;
	ev->id = e->id;
	ev->status = e->status;
	ev->msg_ = e->msg;
	if (e->msg != NULL) {
		ev->data = nng_msg_body(e->msg);
		ev->len = nng_msg_len(e->msg);
		d->st.bytes_in += ev->len;
	}
	if (e->type == CLU_DIRECT_RESULT) {
		if (e->status != PL_OK) {
			d->st.failures++;
		}
		outreq_free(d, e->req);
	}
	free(e);
	return true;
}

void
clu_direct_ev_release(clu_direct_ev *ev)
{
	if (ev->msg_ != NULL) {
		nng_msg_free(ev->msg_);
	}
	memset(ev, 0, sizeof(*ev));
}

/* ---- lifecycle ---- */

static int
start_servers(clu_direct *d)
{
	for (uint32_t i = 0; i < SERVERS; i++) {
		server *s = &d->srv[i];

		s->d = d;
		s->idx = i;
		if (nng_ctx_open(&s->ctx, d->rep) != 0) {
			return PL_EIO;
		}
		if (nng_aio_alloc(&s->aio, srv_cb, s) != 0) {
			nng_ctx_close(s->ctx);
			return PL_ENOMEM;
		}
		d->nsrv++;
	}
	for (size_t i = 0; i < d->nsrv; i++) {
		srv_recv(&d->srv[i]);
	}
	return PL_OK;
}

int
clu_direct_create(clu_direct **out, const clu_direct_opts *o)
{
	clu_direct *d;
	nng_listener l;
	int rv, rc;

	*out = NULL;
	if (o == NULL || o->listen_url == NULL) {
		return PL_EINVAL;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return PL_ENOMEM;
	}
	d->o = *o;
	d->o.listen_url = NULL;
	pthread_mutex_init(&d->mu, NULL);
	if ((rv = nng_rep0_open(&d->rep)) != 0) {
		pthread_mutex_destroy(&d->mu);
		free(d);
		return from_nng(rv);
	}
	nng_socket_set_size(d->rep, NNG_OPT_RECVMAXSZ, o->recv_max);
	if ((rv = nng_listen(d->rep, o->listen_url, &l, 0)) != 0) {
		LOG_ERR("CLU-DIRECTLISTEN", "cannot listen on %s: %s",
		    o->listen_url, nng_strerror(rv));
		rc = rv == NNG_EADDRINVAL || rv == NNG_EINVAL ||
			rv == NNG_ENOTSUP
		    ? PL_EINVAL
		    : PL_EIO;
		goto fail;
	}
	if (nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &d->port) != 0) {
		d->port = 0;
	}
	if ((rc = start_servers(d)) != PL_OK) {
		goto fail;
	}
	*out = d;
	return PL_OK;

fail:
	clu_direct_destroy(d);
	return rc;
}

void
clu_direct_destroy(clu_direct *d)
{
	clu_direct_ev ev;

	if (d == NULL) {
		return;
	}
	for (size_t i = 0; i < d->nsrv; i++) {
		nng_aio_stop(d->srv[i].aio);
	}
	for (outreq *r = d->pending; r != NULL; r = r->next) {
		nng_aio_stop(r->aio);
	}
	/* Requests waiting for the loop, and results of ours (which free
	 * their requests from the pending list). */
	while (clu_direct_next(d, &ev)) {
		clu_direct_ev_release(&ev);
	}
	while (d->pending != NULL) {
		outreq_free(d, d->pending);
	}
	for (size_t i = 0; i < d->nsrv; i++) {
		nng_aio_free(d->srv[i].aio);
		nng_ctx_close(d->srv[i].ctx);
	}
	for (size_t i = 0; i < d->npeers; i++) {
		clu_nng_close(d->peers[i].sock, NULL, NULL, CLOSE_WAIT_MS / 4);
		free(d->peers[i].url);
	}
	clu_nng_close(d->rep, NULL, NULL, CLOSE_WAIT_MS);
	pthread_mutex_destroy(&d->mu);
	free(d);
}

int
clu_direct_port(const clu_direct *d)
{
	return d->port;
}

void
clu_direct_stats_get(const clu_direct *d, clu_direct_stats *out)
{
	*out = d->st;
}
