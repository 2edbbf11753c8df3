/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench presence client connection: non-blocking connect from a
 * 127.0.0.x source, the WebSocket upgrade, masked sends, and a reader of
 * unmasked server frames that hands each text message to bench_presence.c
 * and answers pings. */
#include "tests/bench/bench_presence.h"

#include "proto/ws.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FRAME (64u << 20)

/* ---- sending ---- */

void
bp_close(pconn *c)
{
	if (c->fd >= 0) {
		event_del(&c->rev);
		event_del(&c->wev);
		close(c->fd);
		c->fd = -1;
	}
	free(c->carry);
	free(c->out);
	free(c->token);
	c->carry = c->out = c->token = NULL;
	c->carry_len = c->carry_cap = c->out_len = c->out_cap = 0;
	c->state = P_DONE;
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	pconn *c = arg;
	ssize_t n = send(fd, c->out, c->out_len, MSG_NOSIGNAL);

	(void)what;
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		event_add(&c->wev, NULL);
		return;
	}
	if (n < 0) {
		bp_fail(c, "send failed");
		return;
	}
	memmove(c->out, c->out + n, c->out_len - (size_t)n);
	c->out_len -= (uint32_t)n;
	if (c->out_len > 0) {
		event_add(&c->wev, NULL);
	}
}

static void
send_raw(pconn *c, const char *p, size_t len)
{
	ssize_t n = 0;

	if (c->fd < 0 || c->state == P_CONN) {
		return;
	}
	if (c->out_len == 0) {
		n = send(c->fd, p, len, MSG_NOSIGNAL);
		if (n == (ssize_t)len) {
			return;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			bp_fail(c, "send failed");
			return;
		}
		n = n < 0 ? 0 : n;
	}
	if (c->out_len + len - (size_t)n > c->out_cap) {
		size_t cap = (c->out_len + len) * 2;
		char *q = realloc(c->out, cap);
		if (q == NULL) {
			bp_fail(c, "out of memory");
			return;
		}
		c->out = q;
		c->out_cap = (uint32_t)cap;
	}
	memcpy(c->out + c->out_len, p + n, len - (size_t)n);
	c->out_len += (uint32_t)(len - (size_t)n);
	if (!event_pending(&c->wev, EV_WRITE, NULL)) {
		event_add(&c->wev, NULL);
	}
}

void
bp_send_text(pconn *c, const char *payload, size_t len)
{
	pworker *w = c->w;
	uint8_t hdr[10], k[4];
	size_t hl, i;
	uint32_t key;

	if (w->stage_cap < len + 14) {
		char *q = realloc(w->stage, len + 14);
		if (q == NULL) {
			bp_fail(c, "out of memory");
			return;
		}
		w->stage = q;
		w->stage_cap = len + 14;
	}
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	key = (uint32_t)w->rng;
	memcpy(k, &key, 4);
	hl = pro_ws_frame_header(hdr, PRO_WS_TEXT, len);
	hdr[1] |= 0x80;
	memcpy(w->stage, hdr, hl);
	memcpy(w->stage + hl, k, 4);
	for (i = 0; i < len; i++) {
		w->stage[hl + 4 + i] = (char)(payload[i] ^ k[i & 3]);
	}
	send_raw(c, w->stage, hl + 4 + len);
}

static void
control(pconn *c, int op, const char *p, size_t n)
{
	static char why[48];
	char buf[PRO_WS_MAX_CONTROL + 14];
	uint8_t hdr[10];
	size_t hl;

	if (op == PRO_WS_PING && n <= PRO_WS_MAX_CONTROL) {
		hl = pro_ws_frame_header(hdr, PRO_WS_PONG, n);
		memcpy(buf, hdr, hl);
		buf[1] |= (char)0x80;
		memset(buf + hl, 0, 4); /* a zero key: pongs are rare */
		memcpy(buf + hl + 4, p, n);
		send_raw(c, buf, hl + 4 + n);
	} else if (op == PRO_WS_CLOSE) {
		snprintf(why, sizeof(why), "closed by server (%u)", n >= 2 ?
		    ((unsigned)(uint8_t)p[0] << 8) | (uint8_t)p[1] : 1005);
		bp_fail(c, why);
	}
}

/* Parses whole frames; returns the bytes consumed. c may be closed. */
static size_t
frames(pconn *c, const char *p, size_t len, int64_t now)
{
	size_t off = 0;

	while (c->fd >= 0 && len - off >= 2) {
		const uint8_t *b = (const uint8_t *)p + off;
		uint64_t plen = b[1] & 0x7f;
		size_t hl = 2, i;

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
		if ((b[1] & 0x80) || plen > MAX_FRAME) {
			bp_fail(c, "bad server frame");
			break;
		}
		if (len - off < hl + plen) {
			break;
		}
		if ((b[0] & 0x0f) == PRO_WS_TEXT && (b[0] & 0x80)) {
			bp_on_text(c, p + off + hl, (size_t)plen, hl + (size_t)plen,
			    now);
		} else if ((b[0] & 0x0f) >= PRO_WS_CLOSE) {
			control(c, b[0] & 0x0f, p + off + hl, (size_t)plen);
		}
		off += hl + (size_t)plen;
	}
	return off;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	pconn *c = arg;
	pworker *w = c->w;
	char *buf = w->rbuf, *e;
	size_t have = 0, cap = w->rbuf_cap, used = 0, rest;
	ssize_t n;

	(void)what;
	if (c->carry_len > 0) {
		if (c->carry_cap - c->carry_len < 16384) {
			size_t ncap = c->carry_len * 2 + 65536;
			char *q = realloc(c->carry, ncap);
			if (q == NULL) {
				bp_fail(c, "out of memory");
				return;
			}
			c->carry = q;
			c->carry_cap = (uint32_t)ncap;
		}
		buf = c->carry;
		have = c->carry_len;
		cap = c->carry_cap;
	}
	n = recv(fd, buf + have, cap - have, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (n <= 0) {
		bp_fail(c, n == 0 ? "closed" : "reset");
		return;
	}
	w->rep.bytes_in += n;
	have += (size_t)n;
	if (c->state == P_HS) {
		if ((e = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
			goto keep;
		}
		if (have < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
			bp_fail(c, "upgrade refused");
			return;
		}
		used = (size_t)(e + 4 - buf);
		bp_on_upgraded(c);
	}
	used += frames(c, buf + used, have - used, bench_now());
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
		if ((c->carry = malloc(rest + 65536)) == NULL) {
			bp_fail(c, "out of memory");
			return;
		}
		c->carry_cap = (uint32_t)(rest + 65536);
		memcpy(c->carry, buf + used, rest);
	}
	c->carry_len = (uint32_t)rest;
}

/* ---- connecting ---- */

static void
on_connected(evutil_socket_t fd, short what, void *arg)
{
	pconn *c = arg;
	const bench_url *u = &c->w->o->urls[0];
	int err = 0, len;
	socklen_t el = sizeof(err);
	char *req;

	(void)what;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
		bp_fail(c, strerror(err ? err : errno));
		return;
	}
	len = asprintf(&req, "GET %svsn=2.0.0&token=%s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
	    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
	    u->target, c->token, u->host);
	free(c->token);
	c->token = NULL;
	if (len < 0) {
		bp_fail(c, "out of memory");
		return;
	}
	c->state = P_HS;
	event_assign(&c->wev, c->w->base, fd, EV_WRITE, on_writable, c);
	event_add(&c->rev, NULL);
	send_raw(c, req, (size_t)len);
	free(req);
}

void
bp_open(pconn *c)
{
	const bench_url *u = &c->w->o->urls[0];
	struct sockaddr_in src;
	int fd, one = 1, e;

	fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd >= 0 && c->w->o->src_addrs && u->loopback4) {
		/* 127.0.0.2..251: a port range per source address. */
		memset(&src, 0, sizeof(src));
		src.sin_family = AF_INET;
		src.sin_addr.s_addr = htonl(0x7f000002u + (c->idx +
		    (c->w->kind == K_PUB ? 125 : 0)) % 250);
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
			e = errno;
			close(fd);
			fd = -1;
			errno = e;
		}
	}
	if (fd >= 0) {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, (const struct sockaddr *)&u->addr, u->addrlen) !=
		    0 && errno != EINPROGRESS) {
			e = errno;
			close(fd);
			fd = -1;
			errno = e;
		}
	}
	if (fd < 0) {
		c->state = P_CONN;
		bp_fail(c, strerror(errno));
		return;
	}
	c->fd = fd;
	c->state = P_CONN;
	event_assign(&c->rev, c->w->base, fd, EV_READ | EV_PERSIST, on_read, c);
	event_assign(&c->wev, c->w->base, fd, EV_WRITE, on_connected, c);
	event_add(&c->wev, NULL);
}

void
bp_fail(pconn *c, const char *why)
{
	int was = c->state;

	bp_close(c);
	bp_on_lost(c, was, why);
}
