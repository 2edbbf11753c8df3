/* SPDX-License-Identifier: Apache-2.0 */
/* An asynchronous HTTP client on the node's libevent loop: libcurl's multi
 * interface driven by loop events (curl_multi_socket_action from socket and
 * timer events), so no request ever blocks the loop. Names are resolved by
 * libcurl's threaded resolver (checked at create), connections are reused,
 * and there is no thread per request. The only module that links libcurl
 * on the node (the CLI is a separate, blocking process). Loop thread only. */
#ifndef PARLEY_BROKER_FETCH_H
#define PARLEY_BROKER_FETCH_H

#include <stddef.h>

struct event_base;
typedef struct brk_fetch brk_fetch;
typedef struct brk_fetch_job brk_fetch_job;

typedef struct brk_fetch_opts {
	struct event_base *base; /* borrowed; outlives the client */
	unsigned max_host_conns; /* connections per host; 0 = 8 */
	long connect_timeout_ms; /* 0 = 10000 */
	const char *user_agent;  /* copied; NULL = "parley" */
} brk_fetch_opts;

typedef struct brk_fetch_req {
	const char *method;         /* GET, POST, PATCH, PUT, DELETE */
	const char *url;            /* copied */
	const char *const *headers; /* "Name: value", NULL-terminated, copied;
	                              * may be NULL */
	const char *body;           /* copied; NULL = none */
	size_t body_len;
	long timeout_ms;   /* the whole request; 0 = 30000 */
	size_t max_answer; /* answer bytes kept; 0 = 64 KiB (the
	                              * rest is read and dropped) */
} brk_fetch_req;

/* The outcome of a request, borrowed for the callback. */
typedef struct brk_fetch_resp {
	int err;           /* PL_OK: an HTTP answer arrived (any status);
	                      * PL_EAGAIN: timed out; PL_EIO: no connection,
	                      * or it broke; PL_ENOMEM */
	const char *error; /* what went wrong when err != PL_OK */
	long status;       /* HTTP status; 0 without an answer */
	const char *body;  /* the answer, NUL-terminated (truncated to
	                      * max_answer) */
	size_t body_len;
	long retry_after_s; /* Retry-After in seconds, -1 when absent */
	double seconds;     /* from start to the end of the answer */
} brk_fetch_resp;

typedef void (*brk_fetch_cb)(void *arg, const brk_fetch_resp *r);

/* Returns PL_OK, PL_EINVAL (libcurl lacks an asynchronous resolver: it
 * would block the loop on DNS), PL_ENOMEM. */
int brk_fetch_create(
    brk_fetch **out, const brk_fetch_opts *o, char *err, size_t errlen);
/* Cancels every request (their callbacks never run) and frees the client.
 * Never call from a callback. NULL is ignored. */
void brk_fetch_destroy(brk_fetch *f);

/* Starts a request; cb runs once on the loop when it ends, unless it is
 * cancelled first. *job (may be NULL) identifies it until then. A callback
 * may start and cancel requests. Returns PL_OK, PL_EINVAL, PL_ENOMEM (cb
 * never runs then). */
int brk_fetch_start(brk_fetch *f, const brk_fetch_req *req, brk_fetch_cb cb,
    void *arg, brk_fetch_job **job);

/* Abandons a request: its connection is closed if it was in use and its
 * callback never runs. job must be one whose callback has not run yet. */
void brk_fetch_cancel(brk_fetch_job *job);

/* Requests started and not yet ended or cancelled. */
size_t brk_fetch_active(const brk_fetch *f);

#endif
