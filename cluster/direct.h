/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster's addressed path: what must reach one node only (a bulk
 * catch-up answering one node's request) travels here instead of the bus,
 * which floods every peer. Each node listens on one NNG rep0 socket; it
 * keeps one req0 socket per peer URL it asks, so a request and its reply
 * cross only the two nodes concerned. NNG threads queue what completes and
 * wake the owner's loop; every function is called from that one loop
 * thread. Bytes are opaque here (cluster.c wraps them in envelopes). */
#ifndef PARLEY_CLUSTER_DIRECT_H
#define PARLEY_CLUSTER_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct clu_direct clu_direct;

typedef struct clu_direct_opts {
	const char *listen_url; /* tcp://host:port; port 0 picks one */
	size_t recv_max;        /* largest request or reply accepted */
	uint32_t reconnect_min_ms, reconnect_max_ms;
	void (*wake)(void *arg); /* called from NNG threads when something
	                          * is ready (must be thread-safe) */
	void *wake_arg;
} clu_direct_opts;

/* What the loop takes from clu_direct_next(). */
typedef enum clu_direct_ev_type {
	CLU_DIRECT_REQUEST = 1, /* a peer asked: answer with clu_direct_reply */
	CLU_DIRECT_RESULT = 2,  /* one of our requests completed */
} clu_direct_ev_type;

typedef struct clu_direct_ev {
	clu_direct_ev_type type;
	uint64_t id;      /* REQUEST: the handle to reply to; RESULT: the tag
	                  * given to clu_direct_request */
	int status;       /* RESULT: PL_OK, PL_EAGAIN (timed out or no
	                  * connection), PL_ETOOBIG, PL_EIO, PL_ECLOSED */
	const void *data; /* request or reply bytes (valid until
	                   * clu_direct_ev_release) */
	size_t len;
	void *msg_; /* private */
} clu_direct_ev;

/* Opens the rep0 listener. Returns PL_OK and *out, PL_EINVAL (bad URL),
 * PL_EIO (cannot listen), PL_ENOMEM; *out is NULL on error. */
int clu_direct_create(clu_direct **out, const clu_direct_opts *o);

/* Stops every operation, drops what is queued and pending (no results are
 * delivered), closes the sockets (bounded, see nngclose.h) and frees. NULL
 * is ignored. */
void clu_direct_destroy(clu_direct *d);

/* The TCP port the listener is bound to. */
int clu_direct_port(const clu_direct *d);

/* Sends bytes (copied) to the node listening at url and waits for its reply
 * at most timeout_ms; the outcome arrives as a CLU_DIRECT_RESULT carrying
 * tag. Returns PL_OK (a result will follow), PL_EINVAL, PL_EFULL (too many
 * requests pending), PL_ENOMEM, PL_EIO. */
int clu_direct_request(clu_direct *d, const char *url, const void *bytes,
    size_t len, uint32_t timeout_ms, uint64_t tag);

/* Pops the next event; false when none. Release each with
 * clu_direct_ev_release(). */
bool clu_direct_next(clu_direct *d, clu_direct_ev *ev);
void clu_direct_ev_release(clu_direct_ev *ev);

/* Answers the request `handle` (bytes copied). A handle is answered once;
 * unknown or stale handles are ignored. Returns PL_OK, PL_ENOMEM,
 * PL_ENOTFOUND. */
int
clu_direct_reply(clu_direct *d, uint64_t handle, const void *bytes, size_t len);

typedef struct clu_direct_stats {
	uint64_t requests_sent, requests_served;
	uint64_t bytes_in;  /* request and reply bytes received */
	uint64_t bytes_out; /* request and reply bytes sent */
	uint64_t failures;  /* our requests that did not get a reply */
} clu_direct_stats;

void clu_direct_stats_get(const clu_direct *d, clu_direct_stats *out);

#endif
