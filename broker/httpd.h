/* SPDX-License-Identifier: Apache-2.0 */
/* A small HTTP/1.1 server for the admin port, on the request-head parser
 * the public port uses (proto/http). One request per connection, answered
 * and closed. What evhttp cannot do and an admin port needs: a cap on the
 * request head (431) and body (413) before memory is spent, one deadline
 * for the whole request from accept (bytes trickling in do not extend it:
 * 408), a cap on connections, JSON error bodies, and streamed responses
 * with back-pressure (the backup). Loop thread only. */
#ifndef PARLEY_BROKER_HTTPD_H
#define PARLEY_BROKER_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct pro_http_req pro_http_req;
typedef struct brk_httpd brk_httpd;
typedef struct brk_httpd_req brk_httpd_req;

/* Called once per complete request (head and body arrived, within the
 * limits). The handler must answer r exactly once, now or later, with
 * brk_httpd_reply/brk_httpd_error or a stream that it ends. */
typedef void (*brk_httpd_handler)(void *arg, brk_httpd_req *r);

typedef struct brk_httpd_opts {
	struct event_base *base;
	const char *addr;     /* numeric HOST:PORT ([v6]:port) */
	size_t max_conns;     /* 0 = 64 */
	uint32_t deadline_ms; /* head and body within this from accept;
	                        * 0 = 5000 */
	size_t max_body;      /* 0 = 4096 */
	uint32_t stall_ms;    /* a stream whose peer reads nothing for this
	                        * long is cut; 0 = 30000 */
	brk_httpd_handler handler;
	void *arg;
} brk_httpd_opts;

/* Binds and listens. Returns PL_OK; PL_EINVAL (address not numeric
 * HOST:PORT), PL_EIO (cannot listen), PL_ENOMEM; a message in err. */
int brk_httpd_create(
    brk_httpd **out, const brk_httpd_opts *o, char *err, size_t errlen);
/* Closes every connection (aborting streams: their close callbacks run)
 * and the listener. NULL is ignored. */
void brk_httpd_destroy(brk_httpd *h);

/* The bound address: true when it is a loopback address (127/8, ::1). */
bool brk_httpd_is_loopback(const brk_httpd *h);
/* True when bound to the wildcard address (0.0.0.0 or ::). */
bool brk_httpd_is_wildcard(const brk_httpd *h);
/* The bound host as text (e.g. "127.0.0.1", "::1"); borrowed. */
const char *brk_httpd_host(const brk_httpd *h);

/* Counters of requests the server refused itself, by status, for
 * /metrics: 400, 408, 411, 413, 431, 503 (connection cap). */
typedef struct brk_httpd_stats {
	uint64_t refused_400, refused_408, refused_411, refused_413,
	    refused_431, refused_503;
	uint64_t requests; /* complete requests handed to the handler */
} brk_httpd_stats;
const brk_httpd_stats *brk_httpd_stats_of(const brk_httpd *h);

/* ---- one request ---- */

/* The parsed head; borrowed until the request is answered. */
const pro_http_req *brk_httpd_head(const brk_httpd_req *r);
/* The body (may be empty, not NUL-terminated); borrowed likewise. */
const char *brk_httpd_body(const brk_httpd_req *r, size_t *len);

/* Answers with a complete response (body: NUL-terminated text) and closes
 * after sending it. extra_headers: CRLF-terminated lines or NULL. */
void brk_httpd_reply(brk_httpd_req *r, int status, const char *ctype,
    const char *extra_headers, const char *body);
/* Answers with {"error": code, "message": message} (401 adds
 * WWW-Authenticate: Bearer). */
void brk_httpd_error(
    brk_httpd_req *r, int status, const char *code, const char *message);
/* Same with extra header lines (CRLF-terminated). */
void brk_httpd_error_hdr(brk_httpd_req *r, int status,
    const char *extra_headers, const char *code, const char *message);

/* Streams: starts a chunked response; write appends one chunk (copied);
 * pending is what the peer has not taken yet; end(ok) writes the last
 * chunk and closes after sending, end(!ok) cuts the connection without it,
 * so the client sees an incomplete transfer. on_drain runs when pending
 * falls to zero; on_gone when the peer goes away or stalls (then the
 * stream is over: do not call write or end again). Returns from write:
 * PL_OK or PL_ECLOSED. */
void brk_httpd_stream_start(brk_httpd_req *r, int status, const char *ctype,
    const char *extra_headers, void (*on_drain)(void *arg),
    void (*on_gone)(void *arg), void *arg);
int brk_httpd_stream_write(brk_httpd_req *r, const void *p, size_t n);
size_t brk_httpd_stream_pending(const brk_httpd_req *r);
void brk_httpd_stream_end(brk_httpd_req *r, bool ok);

#endif
