/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench presence client connection: non-blocking connect from a
 * 127.0.0.x source, the WebSocket upgrade, masked sends, and a reader of
 * unmasked server frames that hands each text message to bench_presence.c
 * and answers pings. */
#include "tests/bench/bench_presence.h"

#include "proto/ws.h"

#include <errno.h>
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

	(void)what;
	if (bench_out_flush(fd, &c->wev, c->out, &c->out_len) != 0) {
		bp_fail(c, "send failed");
	}
}

static void
send_raw(pconn *c, const char *p, size_t len)
{
	int r;

	if (c->fd < 0 || c->state == P_CONN) {
		return;
	}
	r = bench_out_send(
	    c->fd, &c->wev, &c->out, &c->out_len, &c->out_cap, p, len);
	if (r != 0) {
		bp_fail(c, r == -1 ? "send failed" : "out of memory");
	}
}

void
bp_send_text(pconn *c, const char *payload, size_t len)
{
	pworker *w = c->w;

	if (w->stage_cap < len + 14) {
		char *q = realloc(w->stage, len + 14);
		if (q == NULL) {
			bp_fail(c, "out of memory");
			return;
		}
		w->stage = q;
		w->stage_cap = len + 14;
	}
	send_raw(c, w->stage, bench_mask_into(&w->rng, payload, len, w->stage));
}

static void
control(pconn *c, int op, const char *p, size_t n)
{
	static char why[48];
	char buf[PRO_WS_MAX_CONTROL + 14];

	if (op == PRO_WS_PING && n <= PRO_WS_MAX_CONTROL) {
		send_raw(c, buf, bench_pong_into(buf, p, n));
	} else if (op == PRO_WS_CLOSE) {
		snprintf(why, sizeof(why), "closed by server (%u)",
		    n >= 2 ? ((unsigned)(uint8_t)p[0] << 8) | (uint8_t)p[1]
			   : 1005);
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
		uint64_t plen;
		size_t hl;
		int r = bench_frame_head(b, len - off, MAX_FRAME, &plen, &hl);

		if (r < 0) {
			bp_fail(c, "bad server frame");
			break;
		}
		if (r == 0 || len - off < hl + plen) {
			break;
		}
		if ((b[0] & 0x0f) == PRO_WS_TEXT && (b[0] & 0x80)) {
			bp_on_text(c, p + off + hl, (size_t)plen,
			    hl + (size_t)plen, now);
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
	size_t have = 0, cap = w->rbuf_cap, used = 0;
	ssize_t n;

	(void)what;
	if (bench_carry_begin(&c->carry, c->carry_len, &c->carry_cap, &buf,
		&have, &cap) != 0) {
		bp_fail(c, "out of memory");
		return;
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
	if (c->fd >= 0 &&
	    bench_carry_keep(&c->carry, &c->carry_len, &c->carry_cap, buf, have,
		used) != 0) {
		bp_fail(c, "out of memory");
	}
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
	len = bench_upgrade_request(&req, u, c->token);
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
	int fd;

	/* The churner's sources start half way round, away from members'. */
	fd = bench_connect(
	    u, c->w->o->src_addrs, c->idx + (c->w->kind == K_PUB ? 125 : 0));
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
