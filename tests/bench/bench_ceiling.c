/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench ceiling: the plainest fan-out a server could do. It accepts
 * WebSocket upgrades (with the project's own handshake code), then on each
 * round stamps the time into one pre-built frame and sends it to every
 * socket with one send() each, parsing nothing. The same receiving workers
 * measure it and parley, so parley's figures read as a fraction of it. */
#include "tests/bench/bench.h"

#include "proto/http.h"
#include "proto/phx.h"
#include "proto/ws.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct csrv csrv;

typedef struct cconn {
	struct event rev, wev;
	csrv *s;
	struct evbuffer *in; /* the upgrade request, until answered */
	char *rem;           /* unsent tail of a frame, or NULL */
	size_t rem_len, rem_off;
	size_t slot; /* index in s->socks once upgraded */
	int fd, up;
} cconn;

struct csrv {
	const bench_opts *o;
	struct event_base *base;
	int lfd, ctl;
	struct event lev, ctl_ev, round_ev, step_ev;
	cconn **socks;
	size_t nsocks, cap;
	char *frame;
	size_t flen, ts_off;
	int64_t payload_bytes;
	bench_cmd cmd;
	bench_report rep;
	int busy, phase;
	int64_t done, cpu0, wall0;
	char scratch[65536];
};

static void
drop(cconn *c)
{
	csrv *s = c->s;

	if (c->up) {
		s->socks[c->slot] = s->socks[--s->nsocks];
		s->socks[c->slot]->slot = c->slot;
	}
	event_del(&c->rev);
	event_del(&c->wev);
	close(c->fd);
	if (c->in) {
		evbuffer_free(c->in);
	}
	free(c->rem);
	free(c);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	cconn *c = arg;
	ssize_t n;

	(void)what;
	n = send(fd, c->rem + c->rem_off, c->rem_len - c->rem_off,
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		drop(c);
		return;
	}
	c->rem_off += n > 0 ? (size_t)n : 0;
	if (c->rem_off < c->rem_len) {
		event_add(&c->wev, NULL);
		return;
	}
	free(c->rem);
	c->rem = NULL;
	c->rem_len = c->rem_off = 0;
}

static int
answer(cconn *c)
{
	pro_http_req req;
	struct evbuffer *out = evbuffer_new();
	int status = 0, rc, ok = -1;

	memset(&req, 0, sizeof(req));
	rc = pro_http_parse(c->in, &req, &status);
	if (rc == 0 || out == NULL) {
		if (out) {
			evbuffer_free(out);
		}
		return rc == 0 ? 0 : -1;
	}
	if (rc < 0) {
		pro_ws_write_refusal(out, status);
	} else if ((status = pro_ws_check_upgrade(&req)) != 0) {
		pro_ws_write_refusal(out, status);
	} else if (pro_ws_write_accept(out, &req, NULL) == 0) {
		ok = 1;
	}
	/* A ~130-byte answer on a fresh socket goes out whole. */
	while (evbuffer_get_length(out) > 0) {
		if (evbuffer_write(out, c->fd) <= 0) {
			ok = -1;
			break;
		}
	}
	evbuffer_free(out);
	pro_http_req_free(&req);
	return ok;
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	cconn *c = arg;
	csrv *s = c->s;
	ssize_t n;

	(void)what;
	if (c->up) {
		n = recv(fd, s->scratch, sizeof(s->scratch), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			drop(c);
		}
		return;
	}
	n = evbuffer_read(c->in, fd, 4096);
	if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
		drop(c);
		return;
	}
	switch (answer(c)) {
	case 0: return;
	case 1: break;
	default: drop(c); return;
	}
	evbuffer_free(c->in);
	c->in = NULL;
	if (s->nsocks == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 1024;
		cconn **q = realloc(s->socks, cap * sizeof(*q));
		if (q == NULL) {
			drop(c);
			return;
		}
		s->socks = q;
		s->cap = cap;
	}
	c->up = 1;
	c->slot = s->nsocks;
	s->socks[s->nsocks++] = c;
}

static void
on_accept(evutil_socket_t fd, short what, void *arg)
{
	csrv *s = arg;
	int one = 1;

	(void)what;
	for (;;) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		cconn *c;
		if (cfd < 0) {
			return;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL || (c->in = evbuffer_new()) == NULL) {
			free(c);
			close(cfd);
			continue;
		}
		setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->s = s;
		c->fd = cfd;
		event_assign(
		    &c->rev, s->base, cfd, EV_READ | EV_PERSIST, on_read, c);
		event_assign(&c->wev, s->base, cfd, EV_WRITE, on_flush, c);
		event_add(&c->rev, NULL);
	}
}

/* Builds the frame parley would send for a new_comment: the same topic,
 * event and fields, the content padded so the payload is `bytes` long. */
static int
build_frame(csrv *s, int64_t bytes)
{
	char topic[96], *m = NULL, *payload;
	size_t len = 0, pad = (size_t)s->o->payload - BENCH_TS_DIGITS - 1, hl;
	uint8_t hdr[10];
	int pass;

	snprintf(topic, sizeof(topic), "comments:b%s-0", s->o->nonce);
	for (pass = 0; pass < 2; pass++) {
		char *content = malloc(pad + BENCH_TS_DIGITS + 2);
		payload = malloc(pad + 256);
		if (payload == NULL || content == NULL) {
			free(content);
			free(payload);
			free(m);
			return -1;
		}
		memset(content, '0', BENCH_TS_DIGITS);
		content[BENCH_TS_DIGITS] = ' ';
		memset(content + BENCH_TS_DIGITS + 1, 'x', pad);
		content[BENCH_TS_DIGITS + 1 + pad] = '\0';
		snprintf(payload, pad + 256,
		    "{\"id\":\"0000000000000-00000000\","
		    "\"video_id\":\"b%s-0\",\"user_id\":\"ceiling\","
		    "\"content\":"
		    "\"%s\",\"inserted_at\":1700000000000}",
		    s->o->nonce, content);
		free(content);
		free(m);
		m = pro_phx_encode(PRO_PHX_V2, NULL, NULL, topic, "new_comment",
		    payload, strlen(payload), &len);
		free(payload);
		if (m == NULL) {
			return -1;
		}
		if (bytes <= 0 || (int64_t)len == bytes || pass == 1) {
			break;
		}
		/* Second pass: pad to the asked size when it is larger. */
		if ((int64_t)len < bytes) {
			pad += (size_t)(bytes - (int64_t)len);
		} else if (pad > (size_t)((int64_t)len - bytes)) {
			pad -= (size_t)((int64_t)len - bytes);
		}
	}
	hl = pro_ws_frame_header(hdr, PRO_WS_TEXT, len);
	free(s->frame);
	s->frame = malloc(hl + len);
	if (s->frame == NULL) {
		free(m);
		return -1;
	}
	memcpy(s->frame, hdr, hl);
	memcpy(s->frame + hl, m, len);
	s->flen = hl + len;
	s->ts_off = hl + (size_t)(strstr(m, "\"content\":\"") - m) + 11;
	s->payload_bytes = (int64_t)len;
	free(m);
	return 0;
}

static void
put_digits(char *p, int64_t v)
{
	int i;

	for (i = BENCH_TS_DIGITS - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* One round: one send per socket of the same bytes. A socket whose buffer
 * is full is skipped (counted), one with a partial frame finishes it first. */
static void
round_once(csrv *s, int64_t now)
{
	int counted = now >= s->cmd.t_measure && now < s->cmd.t_end;
	size_t i;

	put_digits(s->frame + s->ts_off, now);
	for (i = 0; i < s->nsocks; i++) {
		cconn *c = s->socks[i];
		ssize_t n;

		if (c->rem) {
			s->rep.skips += counted;
			continue;
		}
		n = send(c->fd, s->frame, s->flen, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n == (ssize_t)s->flen) {
			s->rep.sent += counted;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			s->rep.skips += counted;
			continue;
		}
		if (n < 0) {
			drop(c);
			i--;
			continue;
		}
		c->rem = malloc(s->flen - (size_t)n);
		if (c->rem == NULL) {
			drop(c);
			i--;
			continue;
		}
		memcpy(c->rem, s->frame + n, s->flen - (size_t)n);
		c->rem_len = s->flen - (size_t)n;
		c->rem_off = 0;
		event_add(&c->wev, NULL);
		s->rep.sent += counted;
	}
	s->done++;
	s->rep.rounds += counted;
}

static void
on_round(evutil_socket_t fd, short what, void *arg)
{
	csrv *s = arg;
	int64_t now = bench_now(), due;
	struct timeval zero = { 0, 0 }, ms = { 0, 1000 };
	int k;

	(void)fd;
	(void)what;
	if (!s->busy || now >= s->cmd.t_end) {
		return;
	}
	if (now >= s->cmd.t_start) {
		if (s->cmd.rate > 0) {
			due = (int64_t)((double)(now - s->cmd.t_start) *
				  s->cmd.rate / 1e9) +
			    1 - s->done;
			/* Behind schedule: catch up a little per wake-up so
			 * accepts and reads are still served. */
			for (k = 0; k < due && k < 8; k++) {
				round_once(s, bench_now());
			}
		} else {
			round_once(s, now);
		}
	}
	event_add(&s->round_ev, s->cmd.rate > 0 ? &ms : &zero);
}

static void
report(csrv *s)
{
	s->busy = 0;
	event_del(&s->round_ev);
	event_del(&s->step_ev);
	s->rep.conns = (int64_t)s->nsocks;
	s->rep.frame_sample = s->payload_bytes;
	if (bench_write_all(s->ctl, &s->rep, sizeof(s->rep)) != 0) {
		event_base_loopbreak(s->base);
	}
}

static void
on_step(evutil_socket_t fd, short what, void *arg)
{
	csrv *s = arg;

	(void)fd;
	(void)what;
	if (s->phase == 0) {
		s->phase = 1;
		s->cpu0 = bench_cpu_self();
		s->wall0 = bench_now();
		bench_arm_at(&s->step_ev, s->cmd.t_end);
		return;
	}
	s->rep.cpu_ns = bench_cpu_self() - s->cpu0;
	s->rep.wall_ns = bench_now() - s->wall0;
	report(s);
}

static void
on_ctl(evutil_socket_t fd, short what, void *arg)
{
	csrv *s = arg;
	bench_cmd cmd;
	struct timeval zero = { 0, 0 };

	(void)what;
	if (bench_read_all(fd, &cmd, sizeof(cmd)) != 0 || cmd.step == ST_QUIT) {
		event_base_loopbreak(s->base);
		return;
	}
	s->cmd = cmd;
	memset(&s->rep, 0, sizeof(s->rep));
	s->rep.kind = K_CEIL;
	s->rep.step = cmd.step;
	s->busy = 1;
	if (cmd.step != ST_MEASURE) {
		report(s);
		return;
	}
	s->phase = 0;
	s->done = 0;
	bench_arm_at(&s->step_ev, cmd.t_measure);
	if (cmd.target == TGT_CEILING) {
		if (build_frame(s, cmd.frame_bytes) != 0) {
			snprintf(s->rep.error, sizeof(s->rep.error),
			    "cannot build frame");
			return;
		}
		event_add(&s->round_ev, &zero);
	}
}

int
bench_ceiling_run(const bench_opts *o, int listen_fd, int ctl)
{
	csrv *s = calloc(1, sizeof(*s));
	struct event_config *cfg = event_config_new();
	size_t i;
	int rc = 1;

	if (s == NULL || cfg == NULL) {
		goto out;
	}
	s->o = o;
	s->lfd = listen_fd;
	s->ctl = ctl;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	s->base = event_base_new_with_config(cfg);
	if (s->base == NULL || build_frame(s, 0) != 0) {
		goto out;
	}
	event_assign(
	    &s->lev, s->base, listen_fd, EV_READ | EV_PERSIST, on_accept, s);
	event_assign(&s->ctl_ev, s->base, ctl, EV_READ | EV_PERSIST, on_ctl, s);
	evtimer_assign(&s->round_ev, s->base, on_round, s);
	evtimer_assign(&s->step_ev, s->base, on_step, s);
	event_add(&s->lev, NULL);
	event_add(&s->ctl_ev, NULL);
	event_base_dispatch(s->base);
	rc = 0;
out:
	if (cfg) {
		event_config_free(cfg);
	}
	if (s) {
		for (i = s->nsocks; i > 0; i--) {
			drop(s->socks[i - 1]);
		}
		free(s->socks);
		free(s->frame);
		if (s->base) {
			event_base_free(s->base);
		}
		free(s);
	}
	return rc;
}
