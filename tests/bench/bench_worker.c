/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench worker process: which connections it holds (subscribers,
 * posters or publishers, spread over workers by index), the steps the
 * coordinator orders (connect, measure, drain, overflow, heartbeat), paced
 * publishing from patched templates, and the report it sends back. */
#include "tests/bench/bench_client.h"

#include "broker/auth.h"
#include "proto/phx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define RBUF_BYTES (256 * 1024)
#define MAX_BATCH 256
#define OUT_BOUND (256 * 1024)
#define MAX_OUTSTANDING 100000
#define STALL_NS (30 * BENCH_NS)
#define DRAIN_QUIET_NS (300 * 1000000LL)
#define DRAIN_MAX_NS (15 * BENCH_NS)
#define HB_MAX_NS (15 * BENCH_NS)

static void fill_opening(bworker *w);

/* ---- layout ---- */

static size_t
share(long total, int idx, int n)
{
	return total > idx ? (size_t)((total - idx + n - 1) / n) : 0;
}

static int
uses_ceiling(const bench_opts *o)
{
	return o->scenario == SC_CEILING || o->with_ceiling;
}

static void
free_pub(bpub *p)
{
	int i;

	if (p == NULL) {
		return;
	}
	for (i = 0; i < p->ntopics; i++) {
		free(p->tmpl[i]);
	}
	free(p->tmpl);
	free(p->tlen);
	free(p->ts_off);
	free(p->ref_off);
	free(p->topics);
	free(p->ring_ref);
	free(p->ring_ns);
	free(p);
}

/* Encodes the push for topic slot i once; later publishes patch its ref
 * and timestamp digits in place. */
static int
make_template(const bworker *w, bpub *p, int i)
{
	const bench_opts *o = w->o;
	char topic[96], jr_s[16], *payload, *m, *at;
	json_t *jr, *ref;
	size_t plen, len, pad = (size_t)o->payload - BENCH_TS_DIGITS - 1;

	snprintf(
	    topic, sizeof(topic), "comments:b%s-%u", o->nonce, p->topics[i]);
	snprintf(jr_s, sizeof(jr_s), "%d", i + 1);
	payload = malloc(pad + 64);
	if (payload == NULL) {
		return -1;
	}
	plen = (size_t)sprintf(
	    payload, "{\"content\":\"%0*d ", BENCH_TS_DIGITS, 0);
	memset(payload + plen, 'x', pad);
	plen += pad;
	plen += (size_t)sprintf(payload + plen, "\"}");
	jr = json_string(jr_s);
	ref = json_string("1000000000");
	m = pro_phx_encode(
	    PRO_PHX_V2, jr, ref, topic, "new_comment", payload, plen, &len);
	json_decref(jr);
	json_decref(ref);
	free(payload);
	if (m == NULL) {
		return -1;
	}
	at = strstr(m, ",\"1000000000\",");
	p->ref_off[i] = (size_t)(at - m) + 2;
	at = strstr(m, "\"content\":\"");
	p->ts_off[i] = (size_t)(at - m) + 11;
	p->tmpl[i] = m;
	p->tlen[i] = len;
	return 0;
}

static bpub *
make_pub(const bworker *w, long first_topic, long step, long ntopics)
{
	const bench_opts *o = w->o;
	bpub *p = calloc(1, sizeof(*p));
	size_t ring = 64;
	int i;

	if (p == NULL) {
		return NULL;
	}
	p->ntopics = (int)ntopics;
	p->topics = calloc((size_t)ntopics, sizeof(*p->topics));
	p->tmpl = calloc((size_t)ntopics, sizeof(*p->tmpl));
	p->tlen = calloc((size_t)ntopics, sizeof(size_t));
	p->ts_off = calloc((size_t)ntopics, sizeof(size_t));
	p->ref_off = calloc((size_t)ntopics, sizeof(size_t));
	while (ring < (size_t)o->window * 2 ||
	    (o->scenario != SC_COMMENTS && ring < 8192)) {
		ring *= 2;
	}
	p->ring_mask = ring - 1;
	p->ring_ref = calloc(ring, sizeof(int64_t));
	p->ring_ns = calloc(ring, sizeof(int64_t));
	if (!p->topics || !p->tmpl || !p->tlen || !p->ts_off || !p->ref_off ||
	    !p->ring_ref || !p->ring_ns) {
		goto fail;
	}
	p->next_ref = BENCH_REF_BASE;
	for (i = 0; i < p->ntopics; i++) {
		p->topics[i] = (uint32_t)(first_topic + i * step);
		if (make_template(w, p, i) != 0) {
			goto fail;
		}
	}
	return p;
fail:
	free_pub(p);
	return NULL;
}

/* The user a subscriber connects as: one per socket. */
static void
conn_user(const bworker *w, const bconn *c, char *buf, size_t n)
{
	snprintf(buf, n, "b%s-%c%ld", w->o->nonce,
	    c->group == G_OVF       ? 'o'
		: c->group == G_RES ? 'r'
				    : 's',
	    (long)c->idx);
}

int
bw_mint(bworker *w, bconn *c)
{
	const bench_opts *o = w->o;
	char user[64];

	conn_user(w, c, user, sizeof(user));
	free(c->token);
	c->token = brk_auth_mint((const uint8_t *)o->secret, strlen(o->secret),
	    user, (int64_t)time(NULL) + 86400);
	return c->token ? 0 : -1;
}

static int
init_conn(bworker *w, bconn *c, int group, long i)
{
	const bench_opts *o = w->o;
	char user[64];
	long T = o->topics > 0 ? o->topics : 1;

	c->w = w;
	c->fd = -1;
	c->group = (uint8_t)group;
	c->idx = (uint32_t)i;
	c->target = group == G_CEIL ? TGT_CEILING : TGT_NODE;
	if (w->kind == K_PUB) {
		long n = T / o->publishers + (i < T % o->publishers);
		c->url = 0;
		c->pub = make_pub(w, i, o->publishers, n);
		if (c->pub == NULL) {
			return -1;
		}
		snprintf(user, sizeof(user), "b%s-p%ld", o->nonce, i);
	} else {
		if (o->scenario == SC_CLUSTER) {
			c->url = (uint8_t)(1 + i % (o->nurls - 1));
		} else if (o->scenario == SC_RECONNECT) {
			/* Movers start on the first node, residents live on
			 * the second. */
			c->url = group == G_RES;
		} else if (o->nurls > 0) {
			c->url = (uint8_t)(i % o->nurls);
		}
		if (o->scenario == SC_CONNECT || o->scenario == SC_TOPICS ||
		    o->scenario == SC_COMMENTS || o->scenario == SC_RECONNECT) {
			c->topic = (uint32_t)(i % T);
		}
		if (o->scenario == SC_COMMENTS && group == G_NODE) {
			c->pub = make_pub(w, c->topic, 1, 1);
			if (c->pub == NULL) {
				return -1;
			}
		}
		return c->target == TGT_NODE ? bw_mint(w, c) : 0;
	}
	if (c->target == TGT_NODE) {
		c->token = brk_auth_mint((const uint8_t *)o->secret,
		    strlen(o->secret), user, (int64_t)time(NULL) + 86400);
		if (c->token == NULL) {
			return -1;
		}
	}
	return 0;
}

static int
layout(bworker *w)
{
	const bench_opts *o = w->o;
	size_t n[G_COUNT] = { 0 }, at = 0, j;
	int g, W = w->nworkers;

	if (w->kind == K_PUB) {
		n[G_NODE] = (size_t)o->publishers;
	} else {
		if (o->scenario != SC_CEILING) {
			n[G_NODE] = share(o->connections, w->idx, W);
		}
		if (uses_ceiling(o)) {
			n[G_CEIL] = share(o->connections, w->idx, W);
		}
		if (o->scenario == SC_CONNECT) {
			n[G_OVF] = share(o->overflow, w->idx, W);
		}
		if (o->scenario == SC_RECONNECT) {
			n[G_RES] = share(o->residents, w->idx, W);
		}
	}
	w->nconns = n[G_NODE] + n[G_CEIL] + n[G_OVF] + n[G_RES];
	w->conns = calloc(w->nconns ? w->nconns : 1, sizeof(bconn));
	if (w->conns == NULL) {
		return -1;
	}
	for (j = 0; j < w->nconns; j++) {
		w->conns[j].fd = -1;
	}
	for (g = 0; g < G_COUNT; g++) {
		w->gbeg[g] = at;
		for (j = 0; j < n[g]; j++, at++) {
			long i =
			    w->kind == K_PUB ? (long)j : w->idx + (long)j * W;
			if (init_conn(w, &w->conns[at], g, i) != 0) {
				return -1;
			}
		}
		w->gend[g] = at;
	}
	return 0;
}

/* ---- reporting ---- */

void
bw_finish_step(bworker *w)
{
	if (!w->busy) {
		return;
	}
	w->busy = 0;
	event_del(&w->step_ev);
	event_del(&w->tick_ev);
	if (w->cmd.step != ST_MEASURE) {
		w->rep.cpu_ns = bench_cpu_self() - w->cpu0;
		w->rep.wall_ns = bench_now() - w->wall0;
	}
	if (bench_write_all(w->ctl, &w->rep, sizeof(w->rep)) != 0) {
		event_base_loopbreak(w->base);
	}
}

/* ---- hooks from the client side ---- */

void
bw_conn_finished(bconn *c, int ok, int refused, const char *why)
{
	bworker *w = c->w;
	int64_t now = bench_now();

	if (bw_rejoin_finished(c, ok, why, now)) {
		return;
	}
	if (!w->busy ||
	    (w->cmd.step != ST_CONNECT && w->cmd.step != ST_OVERFLOW)) {
		return;
	}
	w->inflight--;
	w->pending--;
	w->last_progress = now;
	if (ok) {
		w->rep.joined++;
		w->rep.last_ns = now;
	} else if (refused) {
		w->rep.refused++;
		bench_note_error(&w->rep, why, strlen(why));
	} else {
		w->rep.failed++;
		bench_note_error(&w->rep, why, strlen(why));
	}
	fill_opening(w);
}

void
bw_conn_lost(bconn *c, const char *why)
{
	bworker *w = c->w;

	if (bw_rejoin_lost(c)) {
		return;
	}
	w->rep.closed++;
	bench_note_error(&w->rep, why, strlen(why));
	if (w->busy && w->cmd.step == ST_HEARTBEAT &&
	    w->rep.hb_ok + w->rep.errors + w->rep.closed >= w->rep.hb_sent) {
		bw_finish_step(w);
	}
}

void
bw_on_comment(bconn *c, int64_t ts, size_t frame_len, int64_t now)
{
	bworker *w = c->w;

	w->rep.last_rx_ns = now;
	if (w->rep.frame_sample == 0) {
		w->rep.frame_sample = (int64_t)frame_len;
	}
	if (w->kind == K_PUB) {
		return;
	}
	if (w->busy && w->cmd.step == ST_MEASURE && ts > 0 &&
	    c->target == w->cmd.target && now >= w->cmd.t_measure &&
	    now < w->cmd.t_end) {
		w->rep.deliveries++;
		w->counted_in_read = 1;
		bench_hist_add(w->rep.hist, now - ts);
	} else {
		w->rep.stray++;
	}
}

void
bw_on_heartbeat(bconn *c, int ok)
{
	bworker *w = c->w;

	if (bw_resident_hb_reply(c, ok)) {
		return;
	}
	if (!w->busy || w->cmd.step != ST_HEARTBEAT) {
		return;
	}
	if (ok) {
		w->rep.hb_ok++;
	} else {
		w->rep.errors++;
	}
	if (w->rep.hb_ok + w->rep.errors + w->rep.closed >= w->rep.hb_sent) {
		bw_finish_step(w);
	}
}

/* ---- publishing ---- */

static void
publish(bworker *w, bconn *c, int64_t n)
{
	bpub *p = c->pub;
	size_t need = 0, off = 0;
	int64_t now, k;
	int i;

	for (i = 0; i < p->ntopics; i++) {
		need = p->tlen[i] > need ? p->tlen[i] : need;
	}
	need = (need + 14) * (size_t)n;
	if (w->stage_cap < need) {
		char *q = realloc(w->stage, need);
		if (q == NULL) {
			return;
		}
		w->stage = q;
		w->stage_cap = need;
	}
	now = bench_now();
	for (k = 0; k < n; k++) {
		int64_t ref = p->next_ref++;
		size_t slot = (size_t)ref & p->ring_mask;
		i = p->next;
		p->next = (i + 1) % p->ntopics;
		bc_put_digits(
		    p->tmpl[i] + p->ref_off[i], ref, BENCH_REF_DIGITS);
		bc_put_digits(p->tmpl[i] + p->ts_off[i], now, BENCH_TS_DIGITS);
		p->ring_ref[slot] = ref;
		p->ring_ns[slot] = now;
		off += bc_mask_into(w, p->tmpl[i], p->tlen[i], w->stage + off);
	}
	p->sent += n;
	p->step_sent += n;
	if (now >= w->cmd.t_measure && now < w->cmd.t_end) {
		w->rep.sent += n;
	}
	bc_send_raw(c, w->stage, off);
}

/* Sends what is due: by the clock at a fixed rate, or up to the window of
 * unanswered publishes at rate 0 (a poster with window 1 posts again as soon
 * as its reply arrives). */
static void
pub_fill(bworker *w, bconn *c, int64_t now)
{
	bpub *p = c->pub;
	int64_t due, n, out = p->sent - p->replies;
	int counted = now >= w->cmd.t_measure;

	if (!w->busy || w->cmd.step != ST_MEASURE ||
	    w->cmd.target != TGT_NODE || c->state != CS_READY ||
	    now < w->cmd.t_start || now >= w->cmd.t_end) {
		return;
	}
	if (p->rate > 0) {
		due =
		    (int64_t)((double)(now - w->cmd.t_start) * p->rate / 1e9) +
		    1 - p->step_sent;
		if (out + due > MAX_OUTSTANDING) {
			due = MAX_OUTSTANDING - out;
		}
	} else {
		due = w->o->window - out;
	}
	if (due <= 0) {
		return;
	}
	if (c->out_len > OUT_BOUND) {
		/* The server is not reading our publishes as fast as we make
		 * them: say so rather than queue without bound. */
		if (counted) {
			w->rep.backed_up++;
			w->rep.max_lag =
			    due > w->rep.max_lag ? due : w->rep.max_lag;
		}
		return;
	}
	n = due > MAX_BATCH ? MAX_BATCH : due;
	publish(w, c, n);
	if (counted && due - n > w->rep.max_lag) {
		w->rep.max_lag = due - n;
	}
}

void
bw_on_ack(
    bconn *c, int64_t ref, int ok, const char *why, size_t why_len, int64_t now)
{
	bworker *w = c->w;
	bpub *p = c->pub;
	size_t slot;

	if (p == NULL) {
		return;
	}
	if (p->replies < p->sent) {
		p->replies++;
	}
	slot = (size_t)ref & p->ring_mask;
	if (w->busy && w->cmd.step == ST_MEASURE && now >= w->cmd.t_measure &&
	    now < w->cmd.t_end) {
		if (ok) {
			w->rep.acks++;
			if (p->ring_ref[slot] == ref) {
				bench_hist_add(
				    w->rep.ack_hist, now - p->ring_ns[slot]);
			}
		} else {
			w->rep.errors++;
			bench_note_error(&w->rep, why, why_len);
		}
	} else if (!ok) {
		bench_note_error(&w->rep, why, why_len);
	}
	pub_fill(w, c, now);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	bworker *w = arg;
	int64_t now = bench_now();
	size_t j;

	(void)fd;
	(void)what;
	if (now >= w->cmd.t_end) {
		event_del(&w->tick_ev);
		return;
	}
	for (j = w->gbeg[G_NODE]; j < w->gend[G_NODE]; j++) {
		if (w->conns[j].pub) {
			pub_fill(w, &w->conns[j], now);
		}
	}
}

/* ---- steps ---- */

static void
fill_opening(bworker *w)
{
	static int filling;

	if (filling) {
		return;
	}
	filling = 1;
	while (w->busy && w->inflight < w->o->concurrency &&
	    w->next_open < w->open_end) {
		bconn *c = &w->conns[w->next_open++];
		w->inflight++;
		if (w->rep.first_ns == 0) {
			w->rep.first_ns = bench_now();
		}
		bc_open(c);
	}
	filling = 0;
	if (w->busy && w->pending == 0) {
		bw_finish_step(w);
	}
}

static void
on_step_timer(evutil_socket_t fd, short what, void *arg)
{
	bworker *w = arg;
	int64_t now = bench_now();
	size_t j;
	int g;

	(void)fd;
	(void)what;
	switch (w->cmd.step) {
	case ST_CONNECT:
	case ST_OVERFLOW:
		if (now - w->last_progress < STALL_NS) {
			bench_arm_at(&w->step_ev, now + BENCH_NS);
			return;
		}
		for (j = w->open_beg; j < w->open_end; j++) {
			bconn *c = &w->conns[j];
			int st = c->state;
			if (j >= w->next_open ||
			    (st != CS_READY && st != CS_DONE)) {
				bc_close(c);
				w->rep.failed++;
			}
		}
		bench_note_error(&w->rep, "timeout", 7);
		bw_finish_step(w);
		return;
	case ST_MEASURE:
		if (w->phase == 0) {
			w->phase = 1;
			w->cpu0 = bench_cpu_self();
			w->wall0 = now;
			bench_arm_at(&w->step_ev, w->cmd.t_end);
			return;
		}
		w->phase = 2;
		w->rep.cpu_ns = bench_cpu_self() - w->cpu0;
		w->rep.wall_ns = now - w->wall0;
		/* Data the kernel holds for us unread: if it is more than a
		 * moment's traffic, the receivers were not keeping up. */
		g = w->cmd.target == TGT_NODE ? G_NODE : G_CEIL;
		for (j = w->gbeg[g]; j < w->gend[g]; j++) {
			int n = 0;
			if (w->conns[j].fd >= 0 &&
			    ioctl(w->conns[j].fd, FIONREAD, &n) == 0) {
				w->rep.rx_backlog += n;
			}
		}
		bw_finish_step(w);
		return;
	case ST_REJOIN: bw_rejoin_finish(w); return;
	case ST_DRAIN:
		if (now -
			    (w->rep.last_rx_ns > w->wall0 ? w->rep.last_rx_ns
							  : w->wall0) <
			DRAIN_QUIET_NS &&
		    now - w->wall0 < DRAIN_MAX_NS) {
			bench_arm_at(&w->step_ev, now + 50 * 1000000LL);
			return;
		}
		bw_finish_step(w);
		return;
	default: bw_finish_step(w); return;
	}
}

static void
start_opening(bworker *w, int group)
{
	w->open_beg = w->next_open = w->gbeg[group];
	w->open_end = w->gend[group];
	w->pending = w->open_end - w->next_open;
	w->inflight = 0;
	w->rep.conns = (int64_t)w->pending;
	w->last_progress = bench_now();
	bench_arm_at(&w->step_ev, w->last_progress + BENCH_NS);
	fill_opening(w);
}

static void
start_measure(bworker *w)
{
	int pubs = 0;
	double share_rate = 0;
	size_t j;

	if (w->kind == K_PUB) {
		share_rate = w->cmd.rate / (double)w->o->publishers;
	} else if (w->o->scenario == SC_COMMENTS) {
		share_rate = w->cmd.rate / (double)w->o->connections;
	}
	for (j = w->gbeg[G_NODE]; j < w->gend[G_NODE]; j++) {
		bpub *p = w->conns[j].pub;
		if (p) {
			p->step_sent = 0;
			p->rate = share_rate;
			pubs++;
		}
	}
	w->phase = 0;
	bench_arm_at(&w->step_ev, w->cmd.t_measure);
	if (pubs > 0 && w->cmd.target == TGT_NODE) {
		struct timeval tv = { 0, 1000 };
		event_add(&w->tick_ev, &tv);
	}
}

static void
start_heartbeat(bworker *w)
{
	size_t j;

	for (j = w->gbeg[G_NODE]; j < w->gend[G_NODE]; j++) {
		bconn *c = &w->conns[j];
		if (c->state == CS_READY) {
			w->rep.hb_sent++;
			bc_send_text(c, w->hb_tmpl, w->hb_len);
		}
	}
	w->rep.conns = w->rep.hb_sent;
	if (w->rep.hb_sent == 0) {
		bw_finish_step(w);
		return;
	}
	bench_arm_at(&w->step_ev, bench_now() + HB_MAX_NS);
}

static void
on_ctl(evutil_socket_t fd, short what, void *arg)
{
	bworker *w = arg;
	bench_cmd cmd;

	(void)what;
	if (bench_read_all(fd, &cmd, sizeof(cmd)) != 0 || cmd.step == ST_QUIT) {
		event_base_loopbreak(w->base);
		return;
	}
	w->cmd = cmd;
	memset(&w->rep, 0, sizeof(w->rep));
	w->rep.kind = w->kind;
	w->rep.step = cmd.step;
	w->busy = 1;
	w->cpu0 = bench_cpu_self();
	w->wall0 = bench_now();
	switch (cmd.step) {
	case ST_CONNECT:
		start_opening(w,
		    cmd.target == TGT_NODE           ? G_NODE
			: cmd.target == TGT_RESIDENT ? G_RES
						     : G_CEIL);
		break;
	case ST_REJOIN: bw_rejoin_start(w); break;
	case ST_OVERFLOW: start_opening(w, G_OVF); break;
	case ST_MEASURE: start_measure(w); break;
	case ST_DRAIN:
		bench_arm_at(&w->step_ev, w->wall0 + 50 * 1000000LL);
		break;
	case ST_HEARTBEAT: start_heartbeat(w); break;
	default: bw_finish_step(w); break;
	}
}

/* Keeps node sockets alive past the server's idle timeout, spreading one
 * heartbeat per socket evenly over the interval. */
static void
on_background_hb(evutil_socket_t fd, short what, void *arg)
{
	bworker *w = arg;
	size_t n = w->gend[G_NODE] - w->gbeg[G_NODE], k, per;

	(void)fd;
	(void)what;
	if (n == 0 || (w->busy && w->cmd.step == ST_HEARTBEAT)) {
		return;
	}
	per = (size_t)((double)n / w->o->heartbeat) + 1;
	for (k = 0; k < per && k < n; k++) {
		bconn *c = &w->conns[w->gbeg[G_NODE] + w->hb_next];
		w->hb_next = (w->hb_next + 1) % n;
		if (c->state == CS_READY) {
			bc_send_text(c, w->hb_tmpl, w->hb_len);
		}
	}
}

int
bench_worker_run(const bench_opts *o, int kind, int idx, int nworkers, int ctl)
{
	bworker w;
	struct event_config *cfg;
	struct timeval sec = { 1, 0 };
	json_t *ref;
	char *hb;
	size_t j;
	int rc = 1;

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.kind = kind;
	w.idx = idx;
	w.nworkers = nworkers;
	w.ctl = ctl;
	w.rng = (uint64_t)bench_now() ^ ((uint64_t)getpid() << 32) ^ 0x9e37;
	cfg = event_config_new();
	if (cfg) {
		event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
		w.base = event_base_new_with_config(cfg);
		event_config_free(cfg);
	}
	w.rbuf_cap = RBUF_BYTES;
	w.rbuf = malloc(w.rbuf_cap);
	ref = json_string("1");
	hb = pro_phx_encode(
	    PRO_PHX_V2, NULL, ref, "phoenix", "heartbeat", "{}", 2, &w.hb_len);
	json_decref(ref);
	if (w.base == NULL || w.rbuf == NULL || hb == NULL ||
	    w.hb_len >= sizeof(w.hb_tmpl) || layout(&w) != 0) {
		fprintf(stderr, "parley-bench: worker %d: setup failed\n", idx);
		free(hb);
		goto out;
	}
	memcpy(w.hb_tmpl, hb, w.hb_len);
	free(hb);
	event_assign(&w.ctl_ev, w.base, ctl, EV_READ | EV_PERSIST, on_ctl, &w);
	evtimer_assign(&w.step_ev, w.base, on_step_timer, &w);
	event_assign(&w.tick_ev, w.base, -1, EV_PERSIST, on_tick, &w);
	event_assign(&w.hb_ev, w.base, -1, EV_PERSIST, on_background_hb, &w);
	event_assign(&w.res_hb_ev, w.base, -1, EV_PERSIST, bw_resident_hb, &w);
	event_add(&w.ctl_ev, NULL);
	if (w.gend[G_RES] > w.gbeg[G_RES]) {
		struct timeval t = { 0, BW_RES_TICK_US };
		event_add(&w.res_hb_ev, &t);
	}
	if (o->heartbeat > 0) {
		event_add(&w.hb_ev, &sec);
	}
	event_base_dispatch(w.base);
	rc = 0;
out:
	for (j = 0; j < w.nconns; j++) {
		if (w.conns[j].moving == 1 && w.conns[j].fd < 0) {
			event_del(&w.conns[j].wev); /* a pending retry */
		}
		bc_close(&w.conns[j]);
		free_pub(w.conns[j].pub);
	}
	free(w.conns);
	free(w.rbuf);
	free(w.stage);
	if (w.base) {
		event_base_free(w.base);
	}
	return rc;
}
