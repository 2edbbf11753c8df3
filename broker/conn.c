/* SPDX-License-Identifier: Apache-2.0 */
/* Client sockets. Each socket is a raw fd with two embedded events, an input
 * evbuffer and an output queue of shared frames, both allocated only while
 * they hold bytes, so an idle connection costs a few hundred bytes. Output
 * is written once per batch of events (one writev for everything a socket
 * got in that batch). A socket whose queue passes --max-out-bytes is closed
 * as a slow consumer, and when the node's queued output passes
 * --max-queued-bytes the readers furthest behind are closed first.
 * Admission: a handshake has an absolute deadline from accept, handshakes
 * are capped per node and per source address (the oldest makes room for a
 * newcomer), and upgraded sockets are capped per user. The HTTP side is in
 * conn_http.c. */
#include "broker/conn.h"

#include "broker/config.h"
#include "broker/conn_int.h"
#include "broker/router.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "proto/phx.h"
#include "proto/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* At most this much is read per readable event: the replies one read can
 * cause then stay far below the smallest --max-out-bytes, and the loop
 * flushes between reads, so a client that pipelines but reads is never
 * taken for a slow consumer. */
#define READ_CHUNK 4096
/* Slices of a shared block at most this long are copied into the message's
 * own block; longer ones are queued by reference. */
#define COPY_MAX 1024
#define LINGER_MS 2000

static uint64_t next_conn_id = 1;

/* ---- lists ---- */

static void
unlink_from(brk_conn **head, brk_conn **tail, brk_conn *c)
{
	if (c->prev) {
		c->prev->next = c->next;
	} else if (*head == c) {
		*head = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	} else if (*tail == c) {
		*tail = c->prev;
	}
	c->prev = c->next = NULL;
}

static void
append_to(brk_conn **head, brk_conn **tail, brk_conn *c)
{
	c->prev = *tail;
	c->next = NULL;
	if (*tail) {
		(*tail)->next = c;
	} else {
		*head = c;
	}
	*tail = c;
}

static void
touch(brk_conn *c)
{
	brk_conn_list *l = c->list;

	c->last_rx_ms = pl_mono_ms();
	if (l->tail != c) {
		unlink_from(&l->head, &l->tail, c);
		append_to(&l->head, &l->tail, c);
	}
}

void
brk_conn_handshake_done(brk_conn *c)
{
	brk_conn_list *l = c->list;

	if (!c->in_handshake) {
		return;
	}
	unlink_from(&l->hs_head, &l->hs_tail, c);
	c->in_handshake = 0;
	l->handshakes--;
	brk_tally_release(l->addrs, c->slot);
	c->slot = NULL;
	if (c->state != S_DEAD) {
		/* From now on the idle and linger timers apply. */
		c->last_rx_ms = pl_mono_ms();
		append_to(&l->head, &l->tail, c);
	}
}

/* ---- lifecycle ---- */

void
brk_conn_ref(brk_conn *c)
{
	c->refs++;
}

void
brk_conn_unref(brk_conn *c)
{
	if (c == NULL || --c->refs > 0) {
		return;
	}
	if (c->in) {
		evbuffer_free(c->in);
	}
	pro_ws_reader_fini(&c->rd);
	free(c->user);
	free(c);
}

/* Stops counting an upgraded socket against its user. */
static void
leave_ws(brk_conn *c)
{
	brk_conn_list *l = c->list;

	c->list->env.stats->ws_conns--;
	brk_tally_release(l->users, c->slot);
	c->slot = NULL;
}

/* Releases the socket at once. The memory goes when the last holder lets go,
 * so a callback that is still running on this conn stays safe. */
void
brk_conn_kill(brk_conn *c)
{
	brk_conn_list *l;
	brk_node_stats *st;

	if (c->state == S_DEAD) {
		return;
	}
	l = c->list;
	st = c->list->env.stats;
	if (c->state == S_WS) {
		leave_ws(c);
	}
	c->state = S_DEAD;
	brk_conn_handshake_done(c);
	brk_router_conn_closed(c->list->env.router, c);
	event_del(&c->rev);
	event_del(&c->wev);
	close(c->fd);
	c->fd = -1;
	brk_outq_clear(&c->out, &l->out);
	unlink_from(&l->head, &l->tail, c);
	l->count--;
	l->probes -= c->probe;
	st->open_conns--;
	brk_conn_unref(c);
}

void
brk_conn_queue_flush(brk_conn *c)
{
	brk_conn_list *l;

	if (c->flush_queued || c->state == S_DEAD) {
		return;
	}
	l = c->list;
	c->flush_queued = 1;
	brk_conn_ref(c);
	c->flush_next = l->flush_head;
	l->flush_head = c;
	c->list->env.want_flush(c->list->env.arg);
}

static void
check_cap(brk_conn *c)
{
	const brk_config *cfg = c->list->env.cfg;

	if (brk_outq_bytes(c->out) > (size_t)cfg->max_out_bytes) {
		c->slow = 1;
	}
}

/* Queues bytes [off, off + len) of b; a socket that cannot queue (out of
 * memory) is closed, since a message lost in the middle of a stream would
 * go unnoticed. */
static void
enqueue_piece(brk_conn *c, pl_rcbuf *b, size_t off, size_t len)
{
	if (brk_outq_push(&c->out, &c->list->out, b, off, len) != PL_OK) {
		c->slow = 1;
	}
}

static void
enqueue(brk_conn *c, brk_frame *f)
{
	enqueue_piece(c, f, 0, f->len);
	check_cap(c);
	brk_conn_queue_flush(c);
}

void
brk_conn_push(brk_conn *c, struct evbuffer *b)
{
	brk_frame *f;

	if (c->state == S_DEAD || evbuffer_get_length(b) == 0) {
		return;
	}
	if ((f = brk_frame_take(b)) == NULL) {
		c->slow = 1;
		brk_conn_queue_flush(c);
		return;
	}
	enqueue(c, f);
	brk_frame_unref(f);
}

/* Builds a control or close frame with a proto writer and queues it. */
static void
push_written(brk_conn *c,
    int (*write)(struct evbuffer *, uint16_t, const char *), uint16_t code,
    const char *reason)
{
	struct evbuffer *b = evbuffer_new();

	if (b != NULL) {
		if (write(b, code, reason) == 0) {
			brk_conn_push(c, b);
		}
		evbuffer_free(b);
	}
}

void
brk_conn_close(brk_conn *c, uint16_t code, const char *reason)
{
	if (c->state == S_WS) {
		leave_ws(c);
		c->list->env.stats->closes_sent[brk_close_code_slot(code)]++;
		push_written(c, pro_ws_write_close, code, reason);
		c->state = S_CLOSING;
		brk_router_conn_closed(c->list->env.router, c);
	} else if (c->state == S_HTTP) {
		c->state = S_CLOSING;
		brk_conn_handshake_done(c);
	}
	brk_conn_queue_flush(c);
}

/* ---- output ---- */

void
brk_conn_send_text(brk_conn *c, const char *data, size_t len)
{
	brk_frame *f;

	if (c->state != S_WS) {
		return;
	}
	if ((f = brk_frame_text(data, len)) == NULL) {
		c->slow = 1;
		brk_conn_queue_flush(c);
		return;
	}
	c->list->env.stats->frames_out++;
	enqueue(c, f);
	brk_frame_unref(f);
}

void
brk_conn_send_frame(brk_conn *c, brk_frame *f)
{
	if (c->state != S_WS) {
		return;
	}
	c->list->env.stats->frames_out++;
	enqueue(c, f);
}

/* Queues what was gathered in b as one block of its own. */
static void
enqueue_copy(brk_conn *c, pl_sbuf *b)
{
	size_t len;
	char *p = pl_sbuf_take(b, &len);
	pl_rcbuf *blk;

	if (p == NULL) {
		return;
	}
	if ((blk = pl_rcbuf_adopt(p, len)) == NULL) {
		c->slow = 1;
		return;
	}
	enqueue_piece(c, blk, 0, len);
	pl_rcbuf_unref(blk);
}

void
brk_conn_send_slices(brk_conn *c, const pl_slice *s, size_t n)
{
	pl_sbuf copy = PL_SBUF_INIT;
	uint8_t hdr[10];
	size_t len = 0, i;

	if (c->state != S_WS) {
		return;
	}
	for (i = 0; i < n; i++) {
		len += s[i].len;
	}
	pl_sbuf_add(&copy, hdr, pro_ws_frame_header(hdr, PRO_WS_TEXT, len));
	for (i = 0; i < n; i++) {
		if (s[i].hold != NULL && s[i].len > COPY_MAX) {
			enqueue_copy(c, &copy);
			enqueue_piece(c, s[i].hold,
			    (size_t)(s[i].p - s[i].hold->data), s[i].len);
		} else {
			pl_sbuf_add(&copy, s[i].p, s[i].len);
		}
	}
	if (copy.oom) {
		c->slow = 1;
		pl_sbuf_free(&copy);
	} else {
		enqueue_copy(c, &copy);
	}
	c->list->env.stats->frames_out++;
	check_cap(c);
	brk_conn_queue_flush(c);
}

static void
shut_if_done(brk_conn *c)
{
	if (c->state == S_CLOSING && !c->shut_wr && c->out == NULL) {
		/* Half-close and keep reading until the peer closes, so that
		 * unread input does not turn our close frame into a reset. */
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = 1;
	}
}

void
brk_conn_flush(brk_conn *c)
{
	brk_conn_list *l;
	ssize_t n;

	if (c->state == S_DEAD) {
		return;
	}
	l = c->list;
	if (c->slow) {
		LOG_SUMMARY(PL_LOG_WARN, "BRK-SLOW",
		    "closing slow consumer %s (user %s): more "
		    "than %ld bytes unsent",
		    brk_conn_peer(c), c->user ? c->user : "-",
		    c->list->env.cfg->max_out_bytes);
		c->list->env.stats->slow_closed++;
		brk_conn_kill(c);
		return;
	}
	n = brk_outq_write(&c->out, &l->out, c->fd);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		brk_conn_kill(c);
		return;
	}
	if (n > 0) {
		c->list->env.stats->bytes_out += (uint64_t)n;
	}
	if (c->out != NULL) {
		if (!c->write_armed) {
			event_add(&c->wev, NULL);
			c->write_armed = 1;
		}
		return;
	}
	if (c->write_armed) {
		event_del(&c->wev);
		c->write_armed = 0;
	}
	shut_if_done(c);
}

static int
by_oldest_unsent(const void *a, const void *b)
{
	const brk_conn *x = *(brk_conn *const *)a, *y = *(brk_conn *const *)b;
	uint64_t ox = brk_outq_oldest(x->out), oy = brk_outq_oldest(y->out);

	if (ox != oy) {
		return ox < oy ? -1 : 1;
	}
	return brk_outq_bytes(x->out) > brk_outq_bytes(y->out) ? -1
	    : brk_outq_bytes(x->out) < brk_outq_bytes(y->out)  ? 1
							       : 0;
}

/* The node's queued output is over --max-queued-bytes: closes the sockets
 * whose oldest unsent frame is oldest (the readers furthest behind, who
 * hold the frames nobody else still needs) until it is back under 90%. */
static void
shed(brk_conn_list *l)
{
	size_t target = l->out_budget - l->out_budget / 10, n = 0, i;
	size_t before = l->out.bytes;
	brk_conn **v, *c;

	v = malloc(l->count * sizeof(*v));
	if (v == NULL) {
		return;
	}
	for (c = l->head; c != NULL; c = c->next) {
		if (c->out != NULL && n < l->count) {
			brk_conn_ref(c);
			v[n++] = c;
		}
	}
	qsort(v, n, sizeof(*v), by_oldest_unsent);
	for (i = 0; i < n && l->out.bytes > target; i++) {
		c = v[i];
		LOG_INFO("BRK-SHED",
		    "closing %s (user %s): %zu bytes unsent while the node "
		    "holds %zu",
		    brk_conn_peer(c), c->user ? c->user : "-",
		    brk_outq_bytes(c->out), l->out.bytes);
		c->list->env.stats->budget_closed++;
		brk_conn_kill(c);
	}
	LOG_WARN("BRK-BUDGET",
	    "queued output %zu bytes over --max-queued-bytes %zu: closed the "
	    "%zu readers furthest behind, %zu bytes left",
	    before, l->out_budget, i, l->out.bytes);
	while (n > 0) {
		brk_conn_unref(v[--n]);
	}
	free(v);
}

void
brk_conn_flush_all(brk_conn_list *l)
{
	while (l->flush_head) {
		brk_conn *c = l->flush_head;
		l->flush_head = c->flush_next;
		c->flush_next = NULL;
		c->flush_queued = 0;
		brk_conn_flush(c);
		brk_conn_unref(c);
	}
	if (l->out_budget != 0 && l->out.bytes > l->out_budget) {
		shed(l);
	}
}

static void
on_writable(evutil_socket_t fd, short what, void *arg)
{
	brk_conn *c = arg;

	(void)fd;
	(void)what;
	c->write_armed = 0;
	brk_conn_ref(c);
	brk_conn_flush(c);
	brk_conn_unref(c);
}

/* ---- WebSocket input ---- */

static void
handle_message(brk_conn *c, pro_ws_msg *msg)
{
	pro_phx_msg m;
	const char *why = "invalid message";
	brk_frame *f;

	c->list->env.stats->frames_in++;
	switch (msg->opcode) {
	case PRO_WS_PING:
		if ((f = brk_frame_ws(PRO_WS_PONG, msg->data, msg->len))) {
			enqueue(c, f);
			brk_frame_unref(f);
		}
		return;
	case PRO_WS_PONG: return;
	case PRO_WS_CLOSE: brk_conn_close(c, PRO_WS_CLOSE_NORMAL, ""); return;
	default: break;
	}
	if (pro_phx_decode(c->vsn, msg->opcode == PRO_WS_BINARY, msg->data,
		msg->len, &m, &why) != PL_OK) {
		pro_phx_msg_clear(&m);
		c->list->env.stats->protocol_errors++;
		LOG_INFO("BRK-BADMSG", "closing %s (user %s): %s",
		    brk_conn_peer(c), c->user, why);
		brk_conn_close(c, PRO_WS_CLOSE_BAD_DATA, why);
		return;
	}
	brk_router_dispatch(c->list->env.router, c, &m);
	pro_phx_msg_clear(&m);
}

static void
handle_ws(brk_conn *c)
{
	while (c->state == S_WS && c->in) {
		pro_ws_msg msg;
		int rc;

		memset(&msg, 0, sizeof(msg));
		rc = pro_ws_read(&c->rd, c->in, &msg);
		if (rc == 0) {
			return;
		}
		if (rc < 0) {
			c->list->env.stats->protocol_errors++;
			LOG_INFO("BRK-FRAME", "closing %s (user %s): %u %s",
			    brk_conn_peer(c), c->user, msg.close_code,
			    msg.reason ? msg.reason : "");
			brk_conn_close(c, msg.close_code, msg.reason);
			free(msg.data);
			return;
		}
		handle_message(c, &msg);
		free(msg.data);
	}
}

/* One recv into a buffer shared by every socket of the loop, then only
 * what arrived is kept: evbuffer_read would first ask the kernel how much
 * is waiting (one more system call per read, on every join). */
static ssize_t
read_into(struct evbuffer *in, int fd)
{
	static char buf[READ_CHUNK];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	if (n > 0 && evbuffer_add(in, buf, (size_t)n) != 0) {
		errno = ENOMEM;
		return -1;
	}
	return n;
}

static void
on_readable(evutil_socket_t fd, short what, void *arg)
{
	brk_conn *c = arg;
	ssize_t n;

	(void)what;
	if (c->in == NULL && (c->in = evbuffer_new()) == NULL) {
		return;
	}
	n = read_into(c->in, fd);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		return;
	}
	brk_conn_ref(c);
	if (n <= 0) {
		brk_conn_kill(c);
		goto out;
	}
	c->list->env.stats->bytes_in += (uint64_t)n;
	/* A handshake's deadline runs from accept: what it sends does not
	 * extend it (a slowloris trickles bytes to hold its slot). */
	if (!c->in_handshake) {
		touch(c);
	}
	switch (c->state) {
	case S_HTTP:
		brk_conn_handle_http(c);
		if (c->state != S_WS) {
			break;
		}
		/* Frames may follow the upgrade request in the same read. */
		/* FALLTHROUGH */
	case S_WS: handle_ws(c); break;
	default: evbuffer_drain(c->in, evbuffer_get_length(c->in)); break;
	}
out:
	if (c->in && evbuffer_get_length(c->in) == 0) {
		evbuffer_free(c->in);
		c->in = NULL;
	}
	brk_conn_unref(c);
}

/* ---- accept, sweep, shutdown ---- */

int
brk_conn_accept(
    brk_conn_list *l, int fd, const struct sockaddr *sa, socklen_t salen)
{
	brk_node_stats *st = l->env.stats;
	brk_tally_entry *slot;
	uint8_t probe;
	brk_conn *c;
	int one = 1;

	if (brk_conn_admit(l, sa, salen, &slot, &probe, st) != 0) {
		st->refused++;
		close(fd);
		return PL_ELIMIT;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		brk_tally_release(l->addrs, slot);
		close(fd);
		return PL_ENOMEM;
	}
	/* The listener accepts with SOCK_NONBLOCK already. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->list = l;
	c->fd = fd;
	c->refs = 1;
	c->id = next_conn_id++;
	c->state = S_HTTP;
	c->slot = slot;
	c->probe = probe;
	event_assign(
	    &c->rev, l->env.base, fd, EV_READ | EV_PERSIST, on_readable, c);
	event_assign(&c->wev, l->env.base, fd, EV_WRITE, on_writable, c);
	if (event_add(&c->rev, NULL) != 0) {
		brk_tally_release(l->addrs, slot);
		close(fd);
		free(c);
		return PL_EIO;
	}
	c->last_rx_ms = pl_mono_ms();
	c->in_handshake = 1;
	append_to(&l->hs_head, &l->hs_tail, c);
	l->handshakes++;
	l->count++;
	l->probes += probe;
	st->accepted++;
	st->open_conns++;
	return PL_OK;
}

void
brk_conn_sweep(brk_conn_list *l, uint64_t now)
{
	brk_conn *c, *next;

	/* The handshake list is in accept order: an absolute deadline. */
	while ((c = l->hs_head) != NULL &&
	    now - c->last_rx_ms >= l->handshake_ms) {
		c->list->env.stats->handshake_timeouts++;
		brk_conn_kill(c);
	}
	for (c = l->head; c != NULL; c = next) {
		uint64_t age = now - c->last_rx_ms;
		next = c->next;
		if (age < LINGER_MS) {
			break;
		}
		if (c->state == S_CLOSING) {
			brk_conn_kill(c);
		} else if (c->state == S_WS &&
		    age >= (uint64_t)c->list->env.cfg->idle_timeout * 1000) {
			c->list->env.stats->idle_closed++;
			LOG_INFO("BRK-IDLE",
			    "closing %s (user %s): silent for %llu s",
			    brk_conn_peer(c), c->user,
			    (unsigned long long)(age / 1000));
			/* Re-stamp so the linger timer starts now. */
			c->last_rx_ms = now;
			unlink_from(&l->head, &l->tail, c);
			append_to(&l->head, &l->tail, c);
			brk_conn_close(
			    c, PRO_WS_CLOSE_PROTOCOL, "idle timeout");
		}
	}
}

size_t
brk_conn_count_ws(const brk_conn_list *l)
{
	const brk_conn *c;
	size_t n = 0;

	for (c = l->head; c != NULL; c = c->next) {
		n += c->state == S_WS || c->state == S_CLOSING;
	}
	return n;
}

void
brk_conn_close_all(brk_conn_list *l, uint16_t code, const char *reason)
{
	brk_conn *c, *next;

	for (c = l->hs_head; c != NULL; c = next) {
		next = c->next;
		brk_conn_close(c, code, reason);
	}
	for (c = l->head; c != NULL; c = c->next) {
		if (c->state == S_WS) {
			brk_conn_close(c, code, reason);
		}
	}
}

void
brk_conn_free_all(brk_conn_list *l)
{
	brk_conn_flush_all(l);
	while (l->hs_head) {
		brk_conn_kill(l->hs_head);
	}
	while (l->head) {
		brk_conn_kill(l->head);
	}
}

/* ---- accessors ---- */

int
brk_conn_is_open(const brk_conn *c)
{
	return c->state == S_WS;
}

int
brk_conn_vsn(const brk_conn *c)
{
	return c->vsn;
}

const char *
brk_conn_user(const brk_conn *c)
{
	return c->user;
}

uint64_t
brk_conn_id(const brk_conn *c)
{
	return c->id;
}

brk_channel **
brk_conn_channels(brk_conn *c)
{
	return &c->channels;
}

/* The peer address is looked up only when a log line needs it, so no conn
 * carries it. The result is valid until the next call. */
const char *
brk_conn_peer(const brk_conn *c)
{
	static char buf[INET6_ADDRSTRLEN + 8];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &sl) != 0) {
		return "(closed)";
	}
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(buf, sizeof(buf), "%s:%d", host, port);
	return buf;
}
