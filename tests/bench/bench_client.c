/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench client connection: non-blocking connect (from a 127.0.0.x
 * source so tens of thousands of sockets do not exhaust one address's
 * ports), the WebSocket upgrade, the Phoenix V2 joins, and a reader of
 * unmasked server frames that looks only at the head of each message and at
 * the timestamp of a new_comment, so the bench stays cheaper than the
 * server it measures. */
#include "tests/bench/bench_client.h"

#include "proto/phx.h"
#include "proto/ws.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HS_MAX 16384
#define MAX_FRAME (64u << 20)

void
bc_put_digits(char *p, int64_t v, int digits)
{
	int i;

	for (i = digits - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

size_t
bc_mask_into(bworker *w, const char *payload, size_t len, char *dst)
{
	return bench_mask_into(&w->rng, payload, len, dst);
}

void
bc_close(bconn *c)
{
	if (c->fd >= 0) {
		event_del(&c->rev);
		event_del(&c->wev);
		close(c->fd);
		c->fd = -1;
	}
	free(c->carry);
	c->carry = NULL;
	c->carry_len = c->carry_cap = 0;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
	free(c->token);
	c->token = NULL;
	c->state = CS_DONE;
}

/* Ends a connection in whatever state it is: a connect step learns the
 * outcome, a ready connection counts as lost. */
static void
fail(bconn *c, int refused, const char *why)
{
	int was = c->state;

	bc_close(c);
	if (was == CS_READY) {
		bw_conn_lost(c, why);
	} else {
		bw_conn_finished(c, 0, refused, why);
	}
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	bconn *c = arg;

	(void)what;
	if (bench_out_flush(fd, &c->wev, c->out, &c->out_len) != 0) {
		fail(c, 0, "send failed");
	}
}

void
bc_send_raw(bconn *c, const char *p, size_t len)
{
	int r;

	if (c->fd < 0 || c->state == CS_CONNECTING) {
		return;
	}
	r = bench_out_send(
	    c->fd, &c->wev, &c->out, &c->out_len, &c->out_cap, p, len);
	if (r != 0) {
		fail(c, 0, r == -1 ? "send failed" : "out of memory");
	}
}

void
bc_send_text(bconn *c, const char *payload, size_t len)
{
	bworker *w = c->w;

	if (w->stage_cap < len + 14) {
		char *q = realloc(w->stage, len + 14);
		if (q == NULL) {
			fail(c, 0, "out of memory");
			return;
		}
		w->stage = q;
		w->stage_cap = len + 14;
	}
	bc_send_raw(c, w->stage, bc_mask_into(w, payload, len, w->stage));
}

static void
topic_name(const bworker *w, uint32_t t, char *buf, size_t n)
{
	snprintf(buf, n, "comments:b%s-%u", w->o->nonce, t);
}

static void
send_join(bconn *c, uint32_t topic, int ref)
{
	char name[96], refs[16], params[48];
	json_t *jr;
	char *m;
	size_t len;

	topic_name(c->w, topic, name, sizeof(name));
	snprintf(refs, sizeof(refs), "%d", ref);
	snprintf(
	    params, sizeof(params), "{\"limit\":%ld}", c->w->o->join_limit);
	jr = json_string(refs);
	m = pro_phx_encode(
	    PRO_PHX_V2, jr, jr, name, "phx_join", params, strlen(params), &len);
	json_decref(jr);
	if (m == NULL) {
		fail(c, 0, "out of memory");
		return;
	}
	bc_send_text(c, m, len);
	free(m);
}

static void
upgraded(bconn *c)
{
	int i;

	c->w->rep.upgraded++;
	c->tries = 0; /* phoenix.js resets its backoff on open */
	if (c->target == TGT_CEILING) {
		c->state = CS_READY;
		bw_conn_finished(c, 1, 0, NULL);
		return;
	}
	c->state = CS_JOINING;
	if (c->pub) {
		c->joins_left = c->states_left = (uint16_t)c->pub->ntopics;
		for (i = 0; i < c->pub->ntopics && c->fd >= 0; i++) {
			send_join(c, c->pub->topics[i], i + 1);
		}
	} else {
		c->joins_left = c->states_left = 1;
		send_join(c, c->topic, 1);
	}
}

/* ---- reading ---- */

typedef struct head {
	const char *ref, *topic, *event, *payload;
	size_t ref_len, topic_len, event_len, payload_len;
} head;

static int
split(const char *p, size_t n, head *h)
{
	const char *end = p + n, *jr;
	size_t jl;

	if (n < 2 || p[0] != '[' || p[n - 1] != ']') {
		return -1;
	}
	end--;
	if ((p = bench_phx_elem(p + 1, end, &jr, &jl)) == NULL ||
	    (p = bench_phx_elem(p, end, &h->ref, &h->ref_len)) == NULL ||
	    (p = bench_phx_elem(p, end, &h->topic, &h->topic_len)) == NULL ||
	    (p = bench_phx_elem(p, end, &h->event, &h->event_len)) == NULL) {
		return -1;
	}
	h->payload = p;
	h->payload_len = (size_t)(end - p);
	return 0;
}

#define IS(h, lit)                                                             \
	((h)->event_len == sizeof(lit) - 1 &&                                  \
	    memcmp((h)->event, lit, sizeof(lit) - 1) == 0)

static int64_t
digits(const char *p, size_t n)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		v = v * 10 + (p[i] - '0');
	}
	return i == 0 ? -1 : v;
}

static void
reply(bconn *c, const head *h, int64_t now)
{
	static const char okp[] = "{\"status\":\"ok\"";
	static const char rkey[] = "\"reason\":\"";
	int ok = h->payload_len >= sizeof(okp) - 1 &&
	    memcmp(h->payload, okp, sizeof(okp) - 1) == 0;
	const char *why = NULL, *r;
	size_t why_len = 0;
	int64_t ref;

	if (!ok) {
		r = memmem(h->payload, h->payload_len, rkey, sizeof(rkey) - 1);
		if (r) {
			const char *e;
			why = r + sizeof(rkey) - 1;
			e = memchr(why, '"',
			    (size_t)(h->payload + h->payload_len - why));
			why_len = e ? (size_t)(e - why) : 0;
		} else {
			why = h->payload;
			why_len = h->payload_len < 60 ? h->payload_len : 60;
		}
	}
	if (h->topic_len == 7 && memcmp(h->topic, "phoenix", 7) == 0) {
		bw_on_heartbeat(c, ok);
		return;
	}
	ref = digits(h->ref, h->ref_len);
	if (ref >= BENCH_REF_BASE) {
		bw_on_ack(c, ref, ok, why, why_len, now);
		return;
	}
	if (c->state != CS_JOINING) {
		return;
	}
	if (!ok) {
		static char reason[64];
		snprintf(reason, sizeof(reason), "join refused: %.*s",
		    (int)why_len, why);
		fail(c, 0, reason);
		return;
	}
	c->joins_left--;
}

static void
text(bconn *c, const char *p, size_t n, int64_t now)
{
	static const char ckey[] = "\"content\":\"";
	const char *t;
	head h;

	if (split(p, n, &h) != 0) {
		return;
	}
	if (IS(&h, "new_comment")) {
		int64_t ts = 0;
		t = memmem(h.payload, h.payload_len, ckey, sizeof(ckey) - 1);
		if (t &&
		    (size_t)(h.payload + h.payload_len - t) >
			sizeof(ckey) + BENCH_TS_DIGITS) {
			ts = digits(t + sizeof(ckey) - 1, BENCH_TS_DIGITS);
		}
		bw_on_comment(c, ts > 0 ? ts : 0, n, now);
		return;
	}
	if (IS(&h, "phx_reply")) {
		reply(c, &h, now);
	} else if (IS(&h, "presence_state")) {
		c->w->rep.presence++;
		if (c->state == CS_JOINING && c->states_left > 0) {
			c->states_left--;
		}
	} else if (IS(&h, "presence_diff")) {
		c->w->rep.presence++;
		return;
	} else if (IS(&h, "phx_close") || IS(&h, "phx_error")) {
		c->w->rep.errors++;
		snprintf(c->w->rep.error, sizeof(c->w->rep.error),
		    "%.*s on %.*s", (int)h.event_len, h.event,
		    (int)(h.topic_len < 40 ? h.topic_len : 40), h.topic);
		return;
	}
	if (c->state == CS_JOINING && c->joins_left == 0 &&
	    c->states_left == 0) {
		c->state = CS_READY;
		bw_conn_finished(c, 1, 0, NULL);
	}
}

static void
control(bconn *c, int op, const char *p, size_t n)
{
	static char why[48];
	char buf[PRO_WS_MAX_CONTROL + 14];

	if (op == PRO_WS_PING && n <= PRO_WS_MAX_CONTROL) {
		bc_send_raw(c, buf, bench_pong_into(buf, p, n));
	} else if (op == PRO_WS_CLOSE) {
		unsigned code = n >= 2
		    ? ((unsigned)(uint8_t)p[0] << 8) | (uint8_t)p[1]
		    : 1005;
		snprintf(why, sizeof(why), "closed by server (%u %.*s)", code,
		    (int)(n > 2 ? (n - 2 < 24 ? n - 2 : 24) : 0), p + 2);
		fail(c, 0, why);
	}
}

/* Parses whole frames from p; returns the bytes consumed. c may be closed
 * on return (c->fd < 0). */
static size_t
frames(bconn *c, const char *p, size_t len, int64_t now)
{
	size_t off = 0;

	while (c->fd >= 0 && len - off >= 2) {
		const uint8_t *b = (const uint8_t *)p + off;
		uint64_t plen;
		size_t hl;
		int op = b[0] & 0x0f;
		int r = bench_frame_head(b, len - off, MAX_FRAME, &plen, &hl);

		if (r < 0) {
			fail(c, 0,
			    r == -1 ? "masked server frame"
				    : "frame too large");
			break;
		}
		if (r == 0 || len - off < hl + plen) {
			break;
		}
		if (op == PRO_WS_TEXT && (b[0] & 0x80)) {
			text(c, p + off + hl, (size_t)plen, now);
		} else if (op >= PRO_WS_CLOSE) {
			control(c, op, p + off + hl, (size_t)plen);
		}
		off += hl + (size_t)plen;
	}
	return off;
}

/* The upgrade response: 101 or a refusal. Returns bytes consumed, 0 when
 * the head is incomplete. */
static size_t
handshake(bconn *c, const char *p, size_t len)
{
	static char why[48];
	const char *e = memmem(p, len, "\r\n\r\n", 4);

	if (e == NULL) {
		if (len > HS_MAX) {
			fail(c, 0, "upgrade response too long");
		}
		return 0;
	}
	if (len < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
		snprintf(
		    why, sizeof(why), "HTTP %.3s", len >= 12 ? p + 9 : "???");
		fail(c, 1, why);
		return 0;
	}
	upgraded(c);
	return (size_t)(e + 4 - p);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	bconn *c = arg;
	bworker *w = c->w;
	char *buf = w->rbuf;
	size_t have = 0, cap = w->rbuf_cap, used = 0;
	ssize_t n;
	int64_t now;

	(void)what;
	if (bench_carry_begin(&c->carry, c->carry_len, &c->carry_cap, &buf,
		&have, &cap) != 0) {
		fail(c, 0, "out of memory");
		return;
	}
	n = recv(fd, buf + have, cap - have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		int hs = c->state == CS_HS;
		fail(c, hs,
		    n == 0 ? (hs ? "closed before upgrade" : "closed")
			   : (hs ? "reset before upgrade" : "reset"));
		return;
	}
	now = bench_now();
	w->rep.bytes_in += n;
	have += (size_t)n;
	if (c->state == CS_HS) {
		used = handshake(c, buf, have);
		if (c->fd < 0 || c->state == CS_HS) {
			goto keep;
		}
	}
	w->counted_in_read = 0;
	used += frames(c, buf + used, have - used, now);
	if (w->counted_in_read) {
		w->rep.reads++;
	}
keep:
	if (c->fd >= 0 &&
	    bench_carry_keep(&c->carry, &c->carry_len, &c->carry_cap, buf, have,
		used) != 0) {
		fail(c, 0, "out of memory");
	}
}

/* ---- connecting ---- */

static const bench_url *
url_of(const bconn *c)
{
	return c->target == TGT_CEILING ? &c->w->o->ceil_url
					: &c->w->o->urls[c->url];
}

static void
on_connected(evutil_socket_t fd, short what, void *arg)
{
	bconn *c = arg;
	const bench_url *u = url_of(c);
	int err = 0;
	socklen_t el = sizeof(err);
	char *req;
	int len;

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
		fail(c, 0, strerror(err ? err : errno));
		return;
	}
	len = bench_upgrade_request(&req, u, c->token ? c->token : "none");
	free(c->token);
	c->token = NULL;
	if (len < 0) {
		fail(c, 0, "out of memory");
		return;
	}
	c->state = CS_HS;
	event_assign(&c->wev, c->w->base, fd, EV_WRITE, on_writable, c);
	if (event_add(&c->rev, NULL) != 0) {
		free(req);
		fail(c, 0, "event_add failed");
		return;
	}
	bc_send_raw(c, req, (size_t)len);
	free(req);
}

void
bc_open(bconn *c)
{
	const bench_url *u = url_of(c);
	int fd;

	c->t0 = bench_now();
	fd = bench_connect(u, c->w->o->src_addrs, c->idx);
	if (fd < 0) {
		fail(c, 0, strerror(errno));
		return;
	}
	c->fd = fd;
	c->state = CS_CONNECTING;
	event_assign(&c->rev, c->w->base, fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wev, c->w->base, fd, EV_WRITE, on_connected, c);
	if (event_add(&c->wev, NULL) != 0) {
		bc_close(c);
		bw_conn_finished(c, 0, 0, "event_add failed");
	}
}
