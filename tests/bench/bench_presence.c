/* SPDX-License-Identifier: Apache-2.0 */
/* parley-bench presence scenario: S members join one comments topic, then a
 * churner's users join and leave it at a set rate (then as fast as replies
 * allow). Members count the presence_diff frames and bytes they receive, so
 * the bytes one change costs each member can be compared across topic sizes;
 * a sample of members also counts the metas, to check every change reached
 * them once. This file is the worker process: what members and the churner
 * do with each message, and the coordinator's steps. */
#include "tests/bench/bench_presence.h"

#include "broker/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define RBUF_BYTES (256 * 1024)
#define STALL_NS (30 * BENCH_NS)
/* Longer than the longest presence tick (1 s), so a quiet spell means the
 * diffs have stopped rather than that the next tick is late. */
#define QUIET_NS (1500 * 1000000LL)
#define DRAIN_MAX_NS (60 * BENCH_NS)
#define KEEP_IN 16  /* churn users kept present at steady state */
#define CHECKED 200 /* members that count metas, lowest indexes */

static void fill_opening(pworker *w);
static void finish_step(pworker *w);

static size_t
pool_size(const bench_opts *o)
{
	return (size_t)(2 * o->window + KEEP_IN + 16);
}

static void
ring_push(uint32_t *r, size_t *head, size_t *cnt, size_t cap, uint32_t v)
{
	r[(*head + *cnt) % cap] = v;
	(*cnt)++;
}

static uint32_t
ring_pop(uint32_t *r, size_t *head, size_t *cnt, size_t cap)
{
	uint32_t v = r[*head];

	*head = (*head + 1) % cap;
	(*cnt)--;
	return v;
}

/* ---- sending ---- */

static void
send_join(pconn *c)
{
	char m[256];
	int n;

	c->jref++;
	n = snprintf(m, sizeof(m),
	    "[\"%u\",\"%u\",\"%s\",\"phx_join\","
	    "{\"limit\":%ld}]",
	    c->jref, c->jref, c->w->topic, c->w->o->join_limit);
	c->state = P_JOINING;
	c->replied = c->stated = 0;
	bp_send_text(c, m, (size_t)n);
}

static void
send_leave(pconn *c)
{
	char m[256];
	int n = snprintf(m, sizeof(m),
	    "[\"%u\",\"l%u\",\"%s\",\"phx_leave\","
	    "{}]",
	    c->jref, c->jref, c->w->topic);

	c->state = P_LEAVING;
	bp_send_text(c, m, (size_t)n);
}

/* ---- the churner ---- */

static int
in_window(const pworker *w, int64_t t)
{
	return w->busy && w->cmd.step == ST_MEASURE && t >= w->cmd.t_measure &&
	    t < w->cmd.t_end;
}

/* One change: a join while fewer than KEEP_IN users are in (or joining),
 * else the leave of the user in longest; at steady state they alternate.
 * Returns -1 when no user is free for it. */
static int
change(pworker *w, int64_t now)
{
	size_t cap = w->n;
	pconn *c = NULL;
	int join = 0;

	while (c == NULL) {
		join = ((long)w->p_n + w->joining < KEEP_IN || w->p_n == 0);
		if (join && w->a_n > 0) {
			c = &w->c[ring_pop(w->absent, &w->a_head, &w->a_n, cap)];
		} else if (!join && w->p_n > 0) {
			c = &w->c[ring_pop(
			    w->present, &w->p_head, &w->p_n, cap)];
		} else {
			return -1;
		}
		if (c->fd < 0) {
			c = NULL; /* lost: skip it */
		}
	}
	c->t_op = now;
	c->counted = (uint8_t)in_window(w, now);
	w->ops++;
	w->step_changes++;
	w->rep.sent += c->counted;
	if (join) {
		w->joining++;
		w->rep.joins++;
		send_join(c);
	} else {
		w->rep.leaves++;
		send_leave(c);
	}
	return 0;
}

/* Starts what is due: by the clock at a fixed rate, or up to --window
 * changes in flight at max (also called as each change completes). */
static void
churn_due(pworker *w, int64_t now)
{
	int64_t due;

	if (!w->busy || w->cmd.step != ST_MEASURE || now < w->cmd.t_start ||
	    now >= w->cmd.t_end) {
		return;
	}
	due = w->cmd.rate > 0
	    ? (int64_t)((double)(now - w->cmd.t_start) * w->cmd.rate / 1e9) +
		1 - w->step_changes
	    : w->o->window - w->ops;
	while (due-- > 0 && change(w, now) == 0) {
	}
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	pworker *w = arg;
	int64_t now = bench_now();

	(void)fd;
	(void)what;
	if (!w->busy || w->cmd.step != ST_MEASURE || now >= w->cmd.t_end) {
		event_del(&w->tick_ev);
		return;
	}
	churn_due(w, now);
}

static void
op_done(pconn *c, int64_t now, int ok)
{
	pworker *w = c->w;
	size_t slot = (size_t)(c - w->c);

	w->ops--;
	if (c->state == P_JOINING) {
		w->joining--;
	}
	if (c->counted && ok) {
		w->rep.acks++;
		bench_hist_add(
		    c->state == P_JOINING ? w->rep.hist : w->rep.ack_hist,
		    now - c->t_op);
	}
	if (c->state == P_JOINING && ok) {
		c->state = P_IN;
		ring_push(
		    w->present, &w->p_head, &w->p_n, w->n, (uint32_t)slot);
	} else {
		c->state = P_OUT;
		ring_push(w->absent, &w->a_head, &w->a_n, w->n, (uint32_t)slot);
	}
	if (w->busy && w->cmd.step == ST_DRAIN && w->ops == 0) {
		finish_step(w);
	} else if (w->cmd.rate <= 0) {
		churn_due(w, now);
	}
}

/* ---- reading ---- */

typedef struct head {
	const char *topic, *event, *payload;
	size_t topic_len, event_len, payload_len;
} head;

static int
split(const char *p, size_t n, head *h)
{
	const char *end = p + n - 1, *x;
	size_t xl;

	if (n < 2 || p[0] != '[' || p[n - 1] != ']' ||
	    (p = bench_phx_elem(p + 1, end, &x, &xl)) == NULL ||
	    (p = bench_phx_elem(p, end, &x, &xl)) == NULL ||
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
count_str(const char *p, const char *end, const char *needle, size_t nl)
{
	int64_t k = 0;

	while (p < end && (p = memmem(p, (size_t)(end - p), needle, nl))) {
		k++;
		p += nl;
	}
	return k;
}

/* Every meta carries exactly one phx_ref: counting them on each side counts
 * the joins and leaves a diff carries. */
static void
count_metas(pworker *w, const head *h)
{
	static const char ref[] = "\"phx_ref\":\"", lv[] = ",\"leaves\":";
	const char *p = h->payload, *end = p + h->payload_len;
	const char *l = memmem(p, h->payload_len, lv, sizeof(lv) - 1);

	l = l ? l : end;
	w->rep.diff_joins += count_str(p, l, ref, sizeof(ref) - 1);
	w->rep.diff_leaves += count_str(l, end, ref, sizeof(ref) - 1);
}

static void
member_ready(pconn *c, int ok, const char *why)
{
	pworker *w = c->w;

	if (!w->busy || w->cmd.step != ST_CONNECT) {
		return;
	}
	w->inflight--;
	w->pending--;
	w->last_progress = bench_now();
	if (ok) {
		w->rep.joined++;
		w->rep.last_ns = w->last_progress;
	} else {
		w->rep.failed++;
		bench_note_error(&w->rep, why, strlen(why));
	}
	fill_opening(w);
}

void
bp_on_text(pconn *c, const char *p, size_t n, size_t wire, int64_t now)
{
	static const char okp[] = "{\"status\":\"ok\"";
	pworker *w = c->w;
	head h;
	int ok;

	if (split(p, n, &h) != 0) {
		return;
	}
	if (IS(&h, "presence_diff")) {
		w->last_rx = now;
		if (w->kind == K_RECV) {
			w->rep.diffs++;
			w->rep.diff_bytes += (int64_t)wire;
			w->rep.diff_max = (int64_t)wire > w->rep.diff_max
			    ? (int64_t)wire
			    : w->rep.diff_max;
			w->rep.deliveries += in_window(w, now);
			if (c->checked) {
				count_metas(w, &h);
			}
		}
		return;
	}
	if (IS(&h, "presence_state")) {
		w->last_rx = now;
		w->rep.states++;
		w->rep.state_bytes += (int64_t)wire;
		w->rep.state_max = (int64_t)wire > w->rep.state_max
		    ? (int64_t)wire
		    : w->rep.state_max;
		c->stated = c->state == P_JOINING;
	} else if (IS(&h, "phx_reply")) {
		if (h.topic_len == 7 && memcmp(h.topic, "phoenix", 7) == 0) {
			return;
		}
		ok = h.payload_len >= sizeof(okp) - 1 &&
		    memcmp(h.payload, okp, sizeof(okp) - 1) == 0;
		if (!ok) {
			w->rep.errors++;
			bench_note_error(&w->rep, h.payload,
			    h.payload_len < 60 ? h.payload_len : 60);
		}
		if (c->state == P_LEAVING) {
			op_done(c, now, ok);
			return;
		}
		if (c->state != P_JOINING) {
			return;
		}
		if (!ok && w->kind == K_RECV) {
			bp_fail(c, "join refused");
			return;
		}
		if (!ok) {
			op_done(c, now, 0);
			return;
		}
		c->replied = 1;
	} else if (IS(&h, "phx_error") ||
	    (IS(&h, "phx_close") && w->kind == K_RECV)) {
		/* The churner's own leaves end in phx_close: not an error. */
		w->rep.errors++;
		bench_note_error(&w->rep, h.event, h.event_len);
		return;
	}
	if (c->state == P_JOINING && c->replied && c->stated) {
		if (w->kind == K_RECV) {
			c->state = P_IN;
			member_ready(c, 1, NULL);
		} else {
			op_done(c, now, 1);
		}
	}
}

void
bp_on_upgraded(pconn *c)
{
	pworker *w = c->w;

	w->rep.upgraded++;
	if (w->kind == K_RECV) {
		send_join(c);
		return;
	}
	c->state = P_OUT;
	ring_push(w->absent, &w->a_head, &w->a_n, w->n, (uint32_t)(c - w->c));
	member_ready(c, 1, NULL);
}

void
bp_on_lost(pconn *c, int was, const char *why)
{
	pworker *w = c->w;

	if (was == P_JOINING && w->kind == K_PUB) {
		w->ops--;
		w->joining--;
	} else if (was == P_LEAVING) {
		w->ops--;
	}
	if (was == P_CONN || was == P_HS ||
	    (was == P_JOINING && w->kind == K_RECV)) {
		member_ready(c, 0, why);
	} else {
		w->rep.closed++;
		bench_note_error(&w->rep, why, strlen(why));
	}
}

/* ---- steps ---- */

static void
finish_step(pworker *w)
{
	size_t j;

	if (!w->busy) {
		return;
	}
	w->busy = 0;
	event_del(&w->step_ev);
	event_del(&w->tick_ev);
	w->rep.last_rx_ns = w->last_rx;
	for (w->rep.checked = 0, j = 0; j < w->n; j++) {
		w->rep.checked += w->c[j].checked && w->c[j].state == P_IN;
	}
	if (w->cmd.step == ST_CONNECT) {
		w->rep.cpu_ns = bench_cpu_self() - w->cpu0;
		w->rep.wall_ns = bench_now() - w->wall0;
	}
	if (bench_write_all(w->ctl, &w->rep, sizeof(w->rep)) != 0) {
		event_base_loopbreak(w->base);
	}
}

static void
fill_opening(pworker *w)
{
	static int filling;

	if (filling) {
		return;
	}
	filling = 1;
	while (
	    w->busy && w->inflight < w->o->concurrency && w->next_open < w->n) {
		w->inflight++;
		if (w->rep.first_ns == 0) {
			w->rep.first_ns = bench_now();
		}
		bp_open(&w->c[w->next_open++]);
	}
	filling = 0;
	if (w->busy && w->pending == 0) {
		finish_step(w);
	}
}

static void
on_step_timer(evutil_socket_t fd, short what, void *arg)
{
	pworker *w = arg;
	int64_t now = bench_now(), quiet;
	size_t j;
	int n;

	(void)fd;
	(void)what;
	switch (w->cmd.step) {
	case ST_CONNECT:
		if (now - w->last_progress < STALL_NS) {
			bench_arm_at(&w->step_ev, now + BENCH_NS);
			return;
		}
		for (j = 0; j < w->n; j++) {
			if (j >= w->next_open || w->c[j].state < P_OUT ||
			    (w->kind == K_RECV && w->c[j].state == P_JOINING)) {
				bp_close(&w->c[j]);
				w->rep.failed++;
			}
		}
		bench_note_error(&w->rep, "timeout", 7);
		break;
	case ST_MEASURE:
		if (w->phase == 0) {
			w->phase = 1;
			w->cpu0 = bench_cpu_self();
			w->wall0 = now;
			bench_arm_at(&w->step_ev, w->cmd.t_end);
			return;
		}
		w->rep.cpu_ns = bench_cpu_self() - w->cpu0;
		w->rep.wall_ns = now - w->wall0;
		for (j = 0; j < w->n; j++) {
			if (w->c[j].fd >= 0 &&
			    ioctl(w->c[j].fd, FIONREAD, &n) == 0) {
				w->rep.rx_backlog += n;
			}
		}
		break;
	case ST_DRAIN:
		quiet = now - (w->last_rx > w->drain0 ? w->last_rx : w->drain0);
		if ((w->ops > 0 || (w->kind == K_RECV && quiet < QUIET_NS)) &&
		    now - w->drain0 < DRAIN_MAX_NS) {
			bench_arm_at(&w->step_ev, now + 50 * 1000000LL);
			return;
		}
		break;
	default: break;
	}
	finish_step(w);
}

static void
on_ctl(evutil_socket_t fd, short what, void *arg)
{
	pworker *w = arg;
	bench_cmd cmd;
	struct timeval tv = { 0, 1000 };

	(void)what;
	if (bench_read_all(fd, &cmd, sizeof(cmd)) != 0 || cmd.step == ST_QUIT) {
		event_base_loopbreak(w->base);
		return;
	}
	w->cmd = cmd;
	/* A drain goes on counting where the previous step left off, so its
	 * report holds everything a join phase or a churn phase caused. */
	if (cmd.step != ST_DRAIN) {
		memset(&w->rep, 0, sizeof(w->rep));
		w->rep.kind = w->kind;
		w->cpu0 = bench_cpu_self();
		w->wall0 = bench_now();
	}
	w->rep.step = cmd.step;
	w->busy = 1;
	w->drain0 = bench_now();
	switch (cmd.step) {
	case ST_CONNECT:
		w->next_open = 0;
		w->pending = w->n;
		w->inflight = 0;
		w->rep.conns = (int64_t)w->n;
		w->last_progress = bench_now();
		bench_arm_at(&w->step_ev, w->last_progress + BENCH_NS);
		fill_opening(w);
		break;
	case ST_MEASURE:
		w->step_changes = 0;
		w->phase = 0;
		bench_arm_at(&w->step_ev, cmd.t_measure);
		if (w->kind == K_PUB) {
			event_add(&w->tick_ev, &tv);
		}
		break;
	case ST_DRAIN:
		bench_arm_at(&w->step_ev, w->drain0 + 50 * 1000000LL);
		break;
	default: finish_step(w); break;
	}
}

/* Keeps sockets alive past the server's idle timeout, spreading one
 * heartbeat per socket evenly over the interval. */
static void
on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	static const char hb[] = "[null,\"1\",\"phoenix\",\"heartbeat\",{}]";
	pworker *w = arg;
	size_t per = (size_t)((double)w->n / w->o->heartbeat) + 1, k;

	(void)fd;
	(void)what;
	for (k = 0; k < per && k < w->n; k++) {
		pconn *c = &w->c[w->hb_next];
		w->hb_next = (w->hb_next + 1) % w->n;
		if (c->fd >= 0 && c->state >= P_OUT) {
			bp_send_text(c, hb, sizeof(hb) - 1);
		}
	}
}

static int
layout(pworker *w, int idx, int nworkers)
{
	const bench_opts *o = w->o;
	long total = w->kind == K_PUB ? (long)pool_size(o) : o->connections;
	char user[64];
	size_t j;

	w->n = w->kind == K_PUB ? (size_t)total
	    : total > idx ? (size_t)((total - idx + nworkers - 1) / nworkers)
			  : 0;
	w->c = calloc(w->n ? w->n : 1, sizeof(*w->c));
	w->absent = calloc(w->n ? w->n : 1, sizeof(uint32_t));
	w->present = calloc(w->n ? w->n : 1, sizeof(uint32_t));
	if (w->c == NULL || w->absent == NULL || w->present == NULL) {
		return -1;
	}
	for (j = 0; j < w->n; j++) {
		pconn *c = &w->c[j];
		c->w = w;
		c->fd = -1;
		c->idx = w->kind == K_PUB
		    ? (uint32_t)j
		    : (uint32_t)(idx + (long)j * nworkers);
		c->checked = w->kind == K_RECV && c->idx < CHECKED;
		snprintf(user, sizeof(user), "b%s-%c%u", o->nonce,
		    w->kind == K_PUB ? 'c' : 'm', c->idx);
		c->token = brk_auth_mint((const uint8_t *)o->secret,
		    strlen(o->secret), user, (int64_t)time(NULL) + 86400);
		if (c->token == NULL) {
			return -1;
		}
	}
	return 0;
}

int
bench_presence_run(
    const bench_opts *o, int kind, int idx, int nworkers, int ctl)
{
	pworker w;
	struct event_config *cfg = event_config_new();
	struct timeval sec = { 1, 0 };
	size_t j;
	int rc = 1;

	memset(&w, 0, sizeof(w));
	w.o = o;
	w.kind = kind;
	w.ctl = ctl;
	w.rng = (uint64_t)bench_now() ^ ((uint64_t)getpid() << 32) ^ 0x9e37;
	snprintf(w.topic, sizeof(w.topic), "comments:b%s-presence", o->nonce);
	if (cfg) {
		event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
		w.base = event_base_new_with_config(cfg);
		event_config_free(cfg);
	}
	w.rbuf_cap = RBUF_BYTES;
	w.rbuf = malloc(w.rbuf_cap);
	if (w.base == NULL || w.rbuf == NULL || layout(&w, idx, nworkers)) {
		fprintf(
		    stderr, "parley-bench: presence worker: setup failed\n");
		goto out;
	}
	event_assign(&w.ctl_ev, w.base, ctl, EV_READ | EV_PERSIST, on_ctl, &w);
	evtimer_assign(&w.step_ev, w.base, on_step_timer, &w);
	event_assign(&w.tick_ev, w.base, -1, EV_PERSIST, on_tick, &w);
	event_assign(&w.hb_ev, w.base, -1, EV_PERSIST, on_heartbeat, &w);
	event_add(&w.ctl_ev, NULL);
	if (o->heartbeat > 0 && w.n > 0) {
		event_add(&w.hb_ev, &sec);
	}
	event_base_dispatch(w.base);
	rc = 0;
out:
	for (j = 0; j < w.n; j++) {
		bp_close(&w.c[j]);
	}
	free(w.c);
	free(w.absent);
	free(w.present);
	free(w.rbuf);
	free(w.stage);
	if (w.base) {
		event_base_free(w.base);
	}
	return rc;
}
