/* SPDX-License-Identifier: Apache-2.0 */
/* The admin port's HTTP server (see httpd.h): a bufferevent per
 * connection whose read high-water mark bounds what a client can make us
 * hold, a deadline timer armed at accept, and one request answered per
 * connection. */
#include "broker/httpd.h"

#include "broker/config.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { R_READING, R_HANDLING, R_STREAMING, R_CLOSING };

struct brk_httpd_req {
	brk_httpd *h;
	struct bufferevent *bev;
	struct event *deadline_ev;
	pro_http_req req;
	bool have_head;
	char *body;
	size_t body_len;
	int state;
	bool lingering; /* answered; draining input until the peer closes */
	void (*on_drain)(void *arg);
	void (*on_gone)(void *arg);
	void *stream_arg;
	brk_httpd_req *prev, *next;
};

struct brk_httpd {
	brk_httpd_opts o;
	struct evconnlistener *lst;
	brk_httpd_req *conns;
	size_t nconns;
	char host[INET6_ADDRSTRLEN];
	bool loopback, wildcard;
	brk_httpd_stats st;
};

static void conn_free(brk_httpd_req *r);

/* ---- answers ---- */

static void
count_refusal(brk_httpd *h, int status)
{
	switch (status) {
	case 400: h->st.refused_400++; break;
	case 408: h->st.refused_408++; break;
	case 411: h->st.refused_411++; break;
	case 413: h->st.refused_413++; break;
	case 431: h->st.refused_431++; break;
	default: break;
	}
}

void
brk_httpd_reply(brk_httpd_req *r, int status, const char *ctype,
    const char *extra_headers, const char *body)
{
	struct evbuffer *out;

	if (r->state == R_CLOSING || r->state == R_STREAMING) {
		return;
	}
	r->state = R_CLOSING;
	if (r->deadline_ev) {
		event_del(r->deadline_ev);
	}
	bufferevent_disable(r->bev, EV_READ);
	out = bufferevent_get_output(r->bev);
	if (pro_http_write_response(out, status, extra_headers, ctype, body) !=
	    0) {
		conn_free(r);
		return;
	}
	/* Freed by on_write once the answer is out. */
	bufferevent_enable(r->bev, EV_WRITE);
}

void
brk_httpd_error(
    brk_httpd_req *r, int status, const char *code, const char *message)
{
	brk_httpd_error_hdr(r, status,
	    status == 401
		? "WWW-Authenticate: Bearer realm=\"parley-admin\"\r\n"
		: NULL,
	    code, message);
}

void
brk_httpd_error_hdr(brk_httpd_req *r, int status, const char *extra_headers,
    const char *code, const char *message)
{
	json_t *v = json_pack("{s:s, s:s}", "error", code, "message", message);
	char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
	char *body = NULL;

	json_decref(v);
	if (s && asprintf(&body, "%s\n", s) < 0) {
		body = NULL;
	}
	brk_httpd_reply(
	    r, status, "application/json", extra_headers, body ? body : "{}\n");
	free(body);
	free(s);
}

/* ---- streaming ---- */

void
brk_httpd_stream_start(brk_httpd_req *r, int status, const char *ctype,
    const char *extra_headers, void (*on_drain)(void *arg),
    void (*on_gone)(void *arg), void *arg)
{
	struct evbuffer *out = bufferevent_get_output(r->bev);
	struct timeval stall = { r->h->o.stall_ms / 1000,
		(r->h->o.stall_ms % 1000) * 1000 };

	if (r->state != R_HANDLING) {
		return;
	}
	r->state = R_STREAMING;
	r->on_drain = on_drain;
	r->on_gone = on_gone;
	r->stream_arg = arg;
	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sTransfer-Encoding: "
	    "chunked\r\nConnection: close\r\n\r\n",
	    status, pro_http_reason(status), ctype,
	    extra_headers ? extra_headers : "");
	/* A peer that takes nothing for stall_ms is cut (on_event). */
	bufferevent_set_timeouts(r->bev, NULL, &stall);
	bufferevent_enable(r->bev, EV_WRITE);
}

int
brk_httpd_stream_write(brk_httpd_req *r, const void *p, size_t n)
{
	struct evbuffer *out;

	if (r->state != R_STREAMING) {
		return PL_ECLOSED;
	}
	if (n == 0) {
		return PL_OK;
	}
	out = bufferevent_get_output(r->bev);
	if (evbuffer_add_printf(out, "%zx\r\n", n) < 0 ||
	    evbuffer_add(out, p, n) != 0 || evbuffer_add(out, "\r\n", 2) != 0) {
		return PL_ENOMEM;
	}
	return PL_OK;
}

size_t
brk_httpd_stream_pending(const brk_httpd_req *r)
{
	return evbuffer_get_length(bufferevent_get_output(r->bev));
}

void
brk_httpd_stream_end(brk_httpd_req *r, bool ok)
{
	if (r->state != R_STREAMING) {
		return;
	}
	r->on_gone = NULL;
	if (!ok) {
		/* No last chunk: the client sees an incomplete transfer. */
		conn_free(r);
		return;
	}
	r->state = R_CLOSING;
	evbuffer_add(bufferevent_get_output(r->bev), "0\r\n\r\n", 5);
	bufferevent_enable(r->bev, EV_WRITE);
}

/* ---- connection ---- */

static void
conn_free(brk_httpd_req *r)
{
	brk_httpd *h = r->h;

	if (r->prev) {
		r->prev->next = r->next;
	} else {
		h->conns = r->next;
	}
	if (r->next) {
		r->next->prev = r->prev;
	}
	h->nconns--;
	if (r->deadline_ev) {
		event_free(r->deadline_ev);
	}
	bufferevent_free(r->bev);
	pro_http_req_free(&r->req);
	free(r->body);
	free(r);
}

/* The peer is gone or stalled: a stream's owner hears of it once. */
static void
conn_drop(brk_httpd_req *r)
{
	if (r->state == R_STREAMING && r->on_gone) {
		void (*gone)(void *) = r->on_gone;
		r->on_gone = NULL;
		r->state = R_CLOSING;
		gone(r->stream_arg);
	}
	conn_free(r);
}

static void
refuse(brk_httpd_req *r, int status, const char *code, const char *msg)
{
	count_refusal(r->h, status);
	brk_httpd_error(r, status, code, msg);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	brk_httpd_req *r = arg;
	char msg[96];

	(void)fd;
	(void)what;
	if (r->lingering) {
		conn_free(r);
		return;
	}
	if (r->state != R_READING) {
		return;
	}
	snprintf(msg, sizeof(msg), "the request did not arrive within %u ms",
	    r->h->o.deadline_ms);
	refuse(r, 408, "request_timeout", msg);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	brk_httpd_req *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	int status = 0, rc;

	if (r->state != R_READING) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	if (!r->have_head) {
		rc = pro_http_parse(in, &r->req, &status);
		if (rc == 0) {
			return;
		}
		if (rc < 0) {
			refuse(r, status,
			    status == 431 ? "header_too_large" : "bad_request",
			    status == 431 ? "the request head is larger than "
					    "8192 bytes"
					  : "malformed HTTP request");
			return;
		}
		r->have_head = true;
		if (r->req.has_te) {
			refuse(r, 411, "length_required",
			    "send a body with Content-Length, not "
			    "Transfer-Encoding");
			return;
		}
		if (r->req.has_length &&
		    r->req.content_length > r->h->o.max_body) {
			char msg[80];
			snprintf(msg, sizeof(msg),
			    "the body is larger than %zu bytes",
			    r->h->o.max_body);
			refuse(r, 413, "body_too_large", msg);
			return;
		}
	}
	if (r->req.has_length && r->req.content_length > 0) {
		size_t want = (size_t)r->req.content_length;
		if (evbuffer_get_length(in) < want) {
			return;
		}
		if ((r->body = malloc(want)) == NULL) {
			conn_free(r);
			return;
		}
		evbuffer_remove(in, r->body, want);
		r->body_len = want;
	}
	r->state = R_HANDLING;
	event_del(r->deadline_ev);
	bufferevent_disable(bev, EV_READ);
	r->h->st.requests++;
	r->h->o.handler(r->h->o.arg, r);
}

#define LINGER_MS 2000

/* The answer is out. Half-close and read what the client still sends
 * until it closes (or LINGER_MS): closing with unread input would reset
 * the connection, and the client might never see the answer. */
static void
linger(brk_httpd_req *r)
{
	struct timeval tv = { LINGER_MS / 1000, 0 };

	r->lingering = true;
	shutdown(bufferevent_getfd(r->bev), SHUT_WR);
	bufferevent_setwatermark(r->bev, EV_READ, 0, 0);
	bufferevent_set_timeouts(r->bev, NULL, NULL);
	bufferevent_enable(r->bev, EV_READ);
	event_add(r->deadline_ev, &tv);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	brk_httpd_req *r = arg;

	(void)bev;
	if (r->state == R_CLOSING && !r->lingering) {
		linger(r);
	} else if (r->state == R_STREAMING && r->on_drain) {
		r->on_drain(r->stream_arg);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	brk_httpd_req *r = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		LOG_WARN("BRK-ADMINSTALL",
		    "admin client stopped reading a streamed answer for %u ms; "
		    "cut off",
		    r->h->o.stall_ms);
	}
	conn_drop(r);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	brk_httpd *h = arg;
	brk_httpd_req *r;
	struct timeval tv = { h->o.deadline_ms / 1000,
		(h->o.deadline_ms % 1000) * 1000 };

	(void)l;
	(void)sa;
	(void)salen;
	if (h->nconns >= h->o.max_conns) {
		static const char body[] =
		    "{\"error\":\"busy\",\"message\":\"too many admin "
		    "connections open at once\"}\n";
		char busy[256];
		int n = snprintf(busy, sizeof(busy),
		    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
		    "application/json\r\nContent-Length: %zu\r\nConnection: "
		    "close\r\n\r\n%s",
		    sizeof(body) - 1, body);
		h->st.refused_503++;
		if (send(fd, busy, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) <
		    0) {
			/* Closing is the answer then. */
		}
		close(fd);
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		close(fd);
		return;
	}
	r->h = h;
	r->bev = bufferevent_socket_new(
	    h->o.base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	r->deadline_ev = event_new(h->o.base, -1, 0, on_deadline, r);
	if (r->bev == NULL || r->deadline_ev == NULL) {
		if (r->bev) {
			bufferevent_free(r->bev);
		} else {
			close(fd);
		}
		if (r->deadline_ev) {
			event_free(r->deadline_ev);
		}
		free(r);
		return;
	}
	r->next = h->conns;
	if (h->conns) {
		h->conns->prev = r;
	}
	h->conns = r;
	h->nconns++;
	/* Reading stops once this much is buffered: a head over the cap then
	 * fails to parse with 431, never grows memory. */
	bufferevent_setwatermark(
	    r->bev, EV_READ, 0, PRO_HTTP_MAX_HEADER + h->o.max_body + 1);
	bufferevent_setcb(r->bev, on_read, on_write, on_event, r);
	bufferevent_enable(r->bev, EV_READ);
	event_add(r->deadline_ev, &tv);
}

/* ---- server ---- */

int
brk_httpd_create(
    brk_httpd **out, const brk_httpd_opts *o, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256], port[8];
	brk_httpd *h;
	int p;

	*out = NULL;
	if (brk_config_split_hostport(o->addr, host, sizeof(host), &p) !=
	    PL_OK) {
		snprintf(
		    err, errlen, "expected HOST:PORT, got \"%s\"", o->addr);
		return PL_EINVAL;
	}
	snprintf(port, sizeof(port), "%d", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		snprintf(err, errlen, "\"%s\" is not a numeric address", host);
		return PL_EINVAL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		freeaddrinfo(ai);
		return PL_ENOMEM;
	}
	h->o = *o;
	h->o.max_conns = o->max_conns ? o->max_conns : 64;
	h->o.deadline_ms = o->deadline_ms ? o->deadline_ms : 5000;
	h->o.max_body = o->max_body ? o->max_body : 4096;
	h->o.stall_ms = o->stall_ms ? o->stall_ms : 30000;
	h->o.addr = NULL;
	if (ai->ai_family == AF_INET) {
		const struct in_addr *a =
		    &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
		h->loopback = (ntohl(a->s_addr) >> 24) == 127;
		h->wildcard = a->s_addr == htonl(INADDR_ANY);
		inet_ntop(AF_INET, a, h->host, sizeof(h->host));
	} else {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		h->loopback = IN6_IS_ADDR_LOOPBACK(a) ||
		    (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
		h->wildcard = IN6_IS_ADDR_UNSPECIFIED(a);
		inet_ntop(AF_INET6, a, h->host, sizeof(h->host));
	}
	h->lst = evconnlistener_new_bind(o->base, on_accept, h,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    64, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (h->lst == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", o->addr,
		    strerror(errno));
		free(h);
		return PL_EIO;
	}
	*out = h;
	return PL_OK;
}

void
brk_httpd_destroy(brk_httpd *h)
{
	if (h == NULL) {
		return;
	}
	while (h->conns) {
		conn_drop(h->conns);
	}
	evconnlistener_free(h->lst);
	free(h);
}

bool
brk_httpd_is_loopback(const brk_httpd *h)
{
	return h->loopback;
}

bool
brk_httpd_is_wildcard(const brk_httpd *h)
{
	return h->wildcard;
}

const char *
brk_httpd_host(const brk_httpd *h)
{
	return h->host;
}

const brk_httpd_stats *
brk_httpd_stats_of(const brk_httpd *h)
{
	return &h->st;
}

const pro_http_req *
brk_httpd_head(const brk_httpd_req *r)
{
	return &r->req;
}

const char *
brk_httpd_body(const brk_httpd_req *r, size_t *len)
{
	*len = r->body_len;
	return r->body ? r->body : "";
}
