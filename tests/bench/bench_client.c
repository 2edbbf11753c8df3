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

static uint32_t
rnd32(bworker *w)
{
	/* xorshift64: mask keys need to be unpredictable to a proxy, not to
	 * an attacker; the server's unmasking cost is the same either way. */
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return (uint32_t)w->rng;
}

size_t
bc_mask_into(bworker *w, const char *payload, size_t len, char *dst)
{
	uint8_t hdr[10];
	size_t hl = pro_ws_frame_header(hdr, PRO_WS_TEXT, len), i;
	uint32_t key = rnd32(w);
	uint8_t k[4];

	memcpy(k, &key, 4);
	hdr[1] |= 0x80;
	memcpy(dst, hdr, hl);
	memcpy(dst + hl, k, 4);
	dst += hl + 4;
	for (i = 0; i < len; i++) {
		dst[i] = (char)(payload[i] ^ k[i & 3]);
	}
	return hl + 4 + len;
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
	ssize_t n;

	(void)what;
	n = send(fd, c->out, c->out_len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		event_add(&c->wev, NULL);
		return;
	}
	if (n < 0) {
		fail(c, 0, "send failed");
		return;
	}
	memmove(c->out, c->out + n, c->out_len - (size_t)n);
	c->out_len -= (uint32_t)n;
	if (c->out_len > 0) {
		event_add(&c->wev, NULL);
	}
}

void
bc_send_raw(bconn *c, const char *p, size_t len)
{
	ssize_t n;

	if (c->fd < 0 || c->state == CS_CONNECTING) {
		return;
	}
	if (c->out_len == 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == (ssize_t)len) {
			return;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			fail(c, 0, "send failed");
			return;
		}
		n = n < 0 ? 0 : n;
		p += n;
		len -= (size_t)n;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = (c->out_len + len) * 2;
		char *q = realloc(c->out, cap);
		if (q == NULL) {
			fail(c, 0, "out of memory");
			return;
		}
		c->out = q;
		c->out_cap = (uint32_t)cap;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += (uint32_t)len;
	if (!event_pending(&c->wev, EV_WRITE, NULL)) {
		event_add(&c->wev, NULL);
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
	snprintf(params, sizeof(params), "{\"limit\":%ld}", c->w->o->join_limit);
	jr = json_string(refs);
	m = pro_phx_encode(PRO_PHX_V2, jr, jr, name, "phx_join", params,
	    strlen(params), &len);
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

/* One element of the V2 array head: a string without escapes (refs, topics
 * and events never need them), null, or a bare number. */
static const char *
elem(const char *p, const char *end, const char **s, size_t *n)
{
	const char *q;

	if (p < end && *p == '"') {
		q = memchr(p + 1, '"', (size_t)(end - p - 1));
		if (q == NULL) {
			return NULL;
		}
		*s = p + 1;
		*n = (size_t)(q - p - 1);
		q++;
	} else {
		for (q = p; q < end && *q != ',' && *q != ']'; q++) {
		}
		*s = p;
		*n = (size_t)(q - p);
	}
	return q < end && *q == ',' ? q + 1 : NULL;
}

static int
split(const char *p, size_t n, head *h)
{
	const char *end = p + n, *jr;
	size_t jl;

	if (n < 2 || p[0] != '[' || p[n - 1] != ']') {
		return -1;
	}
	end--;
	if ((p = elem(p + 1, end, &jr, &jl)) == NULL ||
	    (p = elem(p, end, &h->ref, &h->ref_len)) == NULL ||
	    (p = elem(p, end, &h->topic, &h->topic_len)) == NULL ||
	    (p = elem(p, end, &h->event, &h->event_len)) == NULL) {
		return -1;
	}
	h->payload = p;
	h->payload_len = (size_t)(end - p);
	return 0;
}

#define IS(h, lit) ((h)->event_len == sizeof(lit) - 1 && \
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
			e = memchr(why, '"', (size_t)(h->payload +
			    h->payload_len - why));
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
		if (t && (size_t)(h.payload + h.payload_len - t) >
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
		uint8_t hdr[10];
		size_t hl = pro_ws_frame_header(hdr, PRO_WS_PONG, n), i;
		memcpy(buf, hdr, hl);
		buf[1] |= (char)0x80;
		memset(buf + hl, 0, 4); /* a zero key: pongs are rare */
		for (i = 0; i < n; i++) {
			buf[hl + 4 + i] = p[i];
		}
		bc_send_raw(c, buf, hl + 4 + n);
	} else if (op == PRO_WS_CLOSE) {
		unsigned code = n >= 2 ? ((unsigned)(uint8_t)p[0] << 8) |
		    (uint8_t)p[1] : 1005;
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
		uint64_t plen = b[1] & 0x7f;
		size_t hl = 2, i;
		int op = b[0] & 0x0f;

		if (b[1] & 0x80) {
			fail(c, 0, "masked server frame");
			break;
		}
		if (plen == 126) {
			if (len - off < 4) {
				break;
			}
			plen = ((uint64_t)b[2] << 8) | b[3];
			hl = 4;
		} else if (plen == 127) {
			if (len - off < 10) {
				break;
			}
			for (plen = 0, i = 2; i < 10; i++) {
				plen = (plen << 8) | b[i];
			}
			hl = 10;
		}
		if (plen > MAX_FRAME) {
			fail(c, 0, "frame too large");
			break;
		}
		if (len - off < hl + plen) {
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
		snprintf(why, sizeof(why), "HTTP %.3s", len >= 12 ? p + 9 : "???");
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
	char *buf;
	size_t have, cap, used = 0, rest;
	ssize_t n;
	int64_t now;

	(void)what;
	if (c->carry_len > 0) {
		if (c->carry_cap - c->carry_len < 16384) {
			size_t ncap = c->carry_len * 2 + 65536;
			char *q = realloc(c->carry, ncap);
			if (q == NULL) {
				fail(c, 0, "out of memory");
				return;
			}
			c->carry = q;
			c->carry_cap = (uint32_t)ncap;
		}
		buf = c->carry;
		have = c->carry_len;
		cap = c->carry_cap;
	} else {
		buf = w->rbuf;
		have = 0;
		cap = w->rbuf_cap;
	}
	n = recv(fd, buf + have, cap - have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		int hs = c->state == CS_HS;
		fail(c, hs, n == 0 ? (hs ? "closed before upgrade" : "closed")
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
	if (c->fd < 0) {
		return;
	}
	rest = have - used;
	if (rest == 0) {
		/* Idle sockets must hold no buffer: that is most of them. */
		free(c->carry);
		c->carry = NULL;
		c->carry_len = c->carry_cap = 0;
		return;
	}
	if (buf == c->carry) {
		memmove(c->carry, c->carry + used, rest);
	} else {
		c->carry = malloc(rest + 65536);
		if (c->carry == NULL) {
			fail(c, 0, "out of memory");
			return;
		}
		c->carry_cap = (uint32_t)(rest + 65536);
		memcpy(c->carry, buf + used, rest);
	}
	c->carry_len = (uint32_t)rest;
}

/* ---- connecting ---- */

static const bench_url *
url_of(const bconn *c)
{
	return c->target == TGT_CEILING ? &c->w->o->ceil_url :
	    &c->w->o->urls[c->url];
}

static void
on_connected(evutil_socket_t fd, short what, void *arg)
{
	static const char key[] = "dGhlIHNhbXBsZSBub25jZQ==";
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
	len = asprintf(&req, "GET %svsn=2.0.0&token=%s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    u->target, c->token ? c->token : "none", u->host, key);
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
	const bench_opts *o = c->w->o;
	const bench_url *u = url_of(c);
	int fd, one = 1;

	c->t0 = bench_now();
	fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(c, 0, strerror(errno));
		return;
	}
	if (o->src_addrs && u->loopback4) {
		struct sockaddr_in src;
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		/* 127.0.0.2..127.0.0.251: each source address has its own
		 * ephemeral port range towards the server's address. */
		src.sin_addr.s_addr = htonl(0x7f000002u + c->idx % 250);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			close(fd);
			fail(c, 0, strerror(errno));
			return;
		}
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) != 0 &&
	    errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		fail(c, 0, strerror(e));
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
