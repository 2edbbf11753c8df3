/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench reconnect scenario, worker side: movers lost by the drained
 * node come back to the surviving one with phoenix.js's backoff
 * (reconnectAfterMs) and rejoin at once; residents of the surviving node
 * heartbeat every second, and a heartbeat still unanswered when the next is
 * due counts as missed (phoenix.js would close the socket then). */
#include "tests/bench/bench_client.h"

#include <string.h>

/* phoenix.js's reconnectAfterMs, by attempt; 5000 beyond. */
static const int backoff_ms[] = { 10, 50, 100, 150, 200, 250, 500, 1000, 2000 };

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	bconn *c = arg;

	(void)fd;
	(void)what;
	c->tries++;
	c->w->rep.attempts++;
	c->state = CS_IDLE;
	if (bw_mint(c->w, c) != 0) {
		bw_retry_later(c);
		return;
	}
	bc_open(c);
}

void
bw_retry_later(bconn *c)
{
	int n = (int)(sizeof(backoff_ms) / sizeof(*backoff_ms));
	int ms = c->tries < n ? backoff_ms[c->tries] : 5000;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	/* The socket is closed: its write event serves as the timer. */
	event_assign(&c->wev, c->w->base, -1, 0, on_retry, c);
	event_add(&c->wev, &tv);
}

void
bw_rejoin_start(bworker *w)
{
	size_t j;

	w->pending = 0;
	w->phase = 0;
	for (j = w->gbeg[G_NODE]; j < w->gend[G_NODE]; j++) {
		w->conns[j].moving = 0;
		w->pending += w->conns[j].state == CS_READY;
	}
	w->rep.conns = (int64_t)w->pending;
	if (w->pending == 0) {
		w->phase = 1;
		bench_arm_at(&w->step_ev, bench_now() + BW_REJOIN_SETTLE_NS);
		return;
	}
	bench_arm_at(&w->step_ev, w->cmd.t_end);
}

void
bw_rejoin_finish(bworker *w)
{
	int64_t now = bench_now();
	size_t j;

	for (j = w->gbeg[G_RES]; j < w->gend[G_RES]; j++) {
		bconn *c = &w->conns[j];
		if (c->hb_at != 0 && now - c->hb_at >= BW_RES_HB_NS) {
			w->rep.hb_missed++;
		}
	}
	if (w->pending > 0) {
		bench_note_error(&w->rep, "timeout", 7);
	}
	bw_finish_step(w);
}

/* Residents heartbeat every BW_RES_HB_NS; one still unanswered when the next
 * is due is missed (phoenix.js would close the socket then). */
void
bw_resident_hb(evutil_socket_t fd, short what, void *arg)
{
	bworker *w = arg;
	size_t n = w->gend[G_RES] - w->gbeg[G_RES], k;
	size_t per =
	    (size_t)((double)n * BW_RES_TICK_US * 1000 / BW_RES_HB_NS) + 1;
	int64_t now = bench_now();
	int counted = w->busy && w->cmd.step == ST_REJOIN;

	(void)fd;
	(void)what;
	for (k = 0; k < per && k < n; k++) {
		bconn *c = &w->conns[w->gbeg[G_RES] + w->res_hb_next];
		w->res_hb_next = (w->res_hb_next + 1) % n;
		if (c->state != CS_READY) {
			continue;
		}
		if (c->hb_at != 0 && counted) {
			w->rep.hb_missed++;
		}
		c->hb_at = now;
		w->rep.hb_sent += counted;
		bc_send_text(c, w->hb_tmpl, w->hb_len);
	}
}

/* A mover lost by the drained node during ST_REJOIN: it comes back. */
static int
rejoining(const bworker *w, const bconn *c)
{
	return w->busy && w->cmd.step == ST_REJOIN && c->group == G_NODE;
}

int
bw_rejoin_lost(bconn *c)
{
	bworker *w = c->w;

	if (!rejoining(w, c) || c->moving != 0) {
		return 0;
	}
	/* As a load balancer would: the next attempt goes to the surviving
	 * node. */
	c->moving = 1;
	c->url = 1;
	c->tries = 0;
	w->rep.moved++;
	bw_retry_later(c);
	return 1;
}

int
bw_rejoin_finished(bconn *c, int ok, const char *why, int64_t now)
{
	bworker *w = c->w;

	if (!rejoining(w, c) || c->moving != 1) {
		return 0;
	}
	if (!ok) {
		w->rep.failed++;
		bench_note_error(&w->rep, why, strlen(why));
		bw_retry_later(c);
		return 1;
	}
	c->moving = 2;
	w->rep.joined++;
	w->rep.last_ns = now;
	bench_hist_add(w->rep.hist, now - w->cmd.t_start);
	if (--w->pending == 0) {
		w->phase = 1;
		bench_arm_at(&w->step_ev, now + BW_REJOIN_SETTLE_NS);
	}
	return 1;
}

int
bw_resident_hb_reply(bconn *c, int ok)
{
	bworker *w = c->w;
	int64_t sent = c->hb_at, lat;

	if (sent == 0) {
		return 0;
	}
	lat = bench_now() - sent;
	c->hb_at = 0;
	/* Only heartbeats sent during the step count. */
	if (w->busy && w->cmd.step == ST_REJOIN && sent >= w->cmd.t_start) {
		w->rep.hb_ok += ok;
		w->rep.errors += !ok;
		bench_hist_add(w->rep.ack_hist, lat);
		if (lat > w->rep.hb_max_ns) {
			w->rep.hb_max_ns = lat;
		}
	}
	return 1;
}
