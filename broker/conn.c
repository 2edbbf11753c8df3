/* SPDX-License-Identifier: Apache-2.0 */
/* Client sockets. Each socket is a raw fd with two embedded events and two
 * evbuffers allocated only while they hold bytes, so an idle connection costs
 * a few hundred bytes. Output is queued and written once per batch of events
 * (one writev for everything a socket got in that batch); a socket whose
 * queue passes --max-out-bytes is closed as a slow consumer. */
#include "broker/conn.h"

#include "broker/auth.h"
#include "broker/node.h"
#include "broker/router.h"
#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/http.h"
#include "proto/phx.h"
#include "proto/ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { S_HTTP, S_WS, S_CLOSING, S_DEAD };

/* Frames at most this long are copied into the socket's queue; longer ones
 * are queued by reference to the shared frame. */
#define COPY_MAX 1024
/* At most this much is read per readable event (as evbuffer_read did): the
 * replies one read can cause then stay far below the smallest
 * --max-out-bytes, and the loop flushes between reads, so a client that
 * pipelines but reads is never taken for a slow consumer. */
#define READ_CHUNK 4096
#define HANDSHAKE_MS 10000
#define LINGER_MS 2000

struct brk_conn {
	brk_node *node;
	int fd;
	unsigned refs;
	uint8_t state;
	uint8_t vsn;
	uint8_t flush_queued;
	uint8_t write_armed;
	uint8_t shut_wr;
	uint8_t slow;
	uint64_t id;
	uint64_t last_rx_ms;
	struct evbuffer *in, *out;
	char *user;
	brk_channel *channels;
	brk_conn *prev, *next, *flush_next;
	pro_ws_reader rd;
	struct event rev, wev;
};

static uint64_t next_conn_id = 1;

/* ---- frames ---- */

brk_frame *
brk_frame_text(const char *payload, size_t len)
{
	uint8_t hdr[10];
	size_t hl = pro_ws_frame_header(hdr, PRO_WS_TEXT, len);
	brk_frame *f = pl_rcbuf_new(hl + len);

	if (f == NULL) {
		return NULL;
	}
	memcpy(f->data, hdr, hl);
	memcpy(f->data + hl, payload, len);
	return f;
}

void
brk_frame_unref(brk_frame *f)
{
	pl_rcbuf_unref(f);
}

static void
frame_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	pl_rcbuf_unref(arg);
}

/* ---- lists ---- */

static void
lru_unlink(brk_conn_list *l, brk_conn *c)
{
	if (c->prev) {
		c->prev->next = c->next;
	} else if (l->head == c) {
		l->head = c->next;
	}
	if (c->next) {
		c->next->prev = c->prev;
	} else if (l->tail == c) {
		l->tail = c->prev;
	}
	c->prev = c->next = NULL;
}

static void
lru_append(brk_conn_list *l, brk_conn *c)
{
	c->prev = l->tail;
	c->next = NULL;
	if (l->tail) {
		l->tail->next = c;
	} else {
		l->head = c;
	}
	l->tail = c;
}

static void
touch(brk_conn *c)
{
	brk_conn_list *l = brk_node_conns(c->node);

	c->last_rx_ms = brk_node_now_ms(c->node);
	if (l->tail != c) {
		lru_unlink(l, c);
		lru_append(l, c);
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
	if (c->out) {
		evbuffer_free(c->out);
	}
	pro_ws_reader_fini(&c->rd);
	free(c->user);
	free(c);
}

/* Releases the socket at once. The memory goes when the last holder lets go,
 * so a callback that is still running on this conn stays safe. */
static void
conn_kill(brk_conn *c)
{
	brk_conn_list *l;
	brk_node_stats *st;

	if (c->state == S_DEAD) {
		return;
	}
	l = brk_node_conns(c->node);
	st = brk_node_stats_of(c->node);
	if (c->state == S_WS) {
		st->ws_conns--;
	}
	c->state = S_DEAD;
	brk_router_conn_closed(brk_node_router(c->node), c);
	event_del(&c->rev);
	event_del(&c->wev);
	close(c->fd);
	c->fd = -1;
	lru_unlink(l, c);
	l->count--;
	st->open_conns--;
	brk_conn_unref(c);
}

static void
queue_flush(brk_conn *c)
{
	brk_conn_list *l;

	if (c->flush_queued || c->state == S_DEAD) {
		return;
	}
	l = brk_node_conns(c->node);
	c->flush_queued = 1;
	brk_conn_ref(c);
	c->flush_next = l->flush_head;
	l->flush_head = c;
	brk_node_want_flush(c->node);
}

static struct evbuffer *
outbuf(brk_conn *c)
{
	if (c->out == NULL) {
		c->out = evbuffer_new();
	}
	return c->out;
}

static void
check_cap(brk_conn *c)
{
	const brk_config *cfg = brk_node_config(c->node);

	if (c->out == NULL ||
	    evbuffer_get_length(c->out) <= (size_t)cfg->max_out_bytes) {
		return;
	}
	c->slow = 1;
}

void
brk_conn_close(brk_conn *c, uint16_t code, const char *reason)
{
	if (c->state == S_WS) {
		brk_node_stats *st = brk_node_stats_of(c->node);
		st->ws_conns--;
		st->closes_sent[brk_close_code_slot(code)]++;
		if (outbuf(c)) {
			pro_ws_write_close(c->out, code, reason);
		}
		c->state = S_CLOSING;
		brk_router_conn_closed(brk_node_router(c->node), c);
	} else if (c->state == S_HTTP) {
		c->state = S_CLOSING;
	}
	queue_flush(c);
}

/* ---- output ---- */

void
brk_conn_send_text(brk_conn *c, const char *data, size_t len)
{
	if (c->state != S_WS || outbuf(c) == NULL) {
		return;
	}
	pro_ws_write_frame(c->out, PRO_WS_TEXT, data, len);
	brk_node_stats_of(c->node)->frames_out++;
	check_cap(c);
	queue_flush(c);
}

/* Short runs are copied; long ones in a shared block go by reference. */
static void
queue_bytes(brk_conn *c, const char *p, size_t len, pl_rcbuf *hold)
{
	if (hold == NULL || len <= COPY_MAX) {
		evbuffer_add(c->out, p, len);
		return;
	}
	pl_rcbuf_ref(hold);
	if (evbuffer_add_reference(c->out, p, len, frame_cleanup, hold) != 0) {
		pl_rcbuf_unref(hold);
	}
}

void
brk_conn_send_frame(brk_conn *c, brk_frame *f)
{
	if (c->state != S_WS || outbuf(c) == NULL) {
		return;
	}
	queue_bytes(c, f->data, f->len, f);
	brk_node_stats_of(c->node)->frames_out++;
	check_cap(c);
	queue_flush(c);
}

void
brk_conn_send_slices(brk_conn *c, const pl_slice *s, size_t n)
{
	uint8_t hdr[10];
	size_t len = 0, i;

	if (c->state != S_WS || outbuf(c) == NULL) {
		return;
	}
	for (i = 0; i < n; i++) {
		len += s[i].len;
	}
	evbuffer_add(c->out, hdr, pro_ws_frame_header(hdr, PRO_WS_TEXT, len));
	for (i = 0; i < n; i++) {
		queue_bytes(c, s[i].p, s[i].len, s[i].hold);
	}
	brk_node_stats_of(c->node)->frames_out++;
	check_cap(c);
	queue_flush(c);
}

static void
shut_if_done(brk_conn *c)
{
	if (c->state == S_CLOSING && !c->shut_wr &&
	    (c->out == NULL || evbuffer_get_length(c->out) == 0)) {
		/* Half-close and keep reading until the peer closes, so that
		 * unread input does not turn our close frame into a reset. */
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = 1;
	}
}

void
brk_conn_flush(brk_conn *c)
{
	if (c->state == S_DEAD) {
		return;
	}
	if (c->slow) {
		LOG_SUMMARY(PL_LOG_WARN, "BRK-SLOW",
		    "closing slow consumer %s (user %s): more "
		    "than %ld bytes unsent",
		    brk_conn_peer(c), c->user ? c->user : "-",
		    brk_node_config(c->node)->max_out_bytes);
		brk_node_stats_of(c->node)->slow_closed++;
		conn_kill(c);
		return;
	}
	while (c->out && evbuffer_get_length(c->out) > 0) {
		int n = evbuffer_write(c->out, c->fd);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				break;
			}
			if (errno == EINTR) {
				continue;
			}
			conn_kill(c);
			return;
		}
		if (n == 0) {
			break;
		}
		brk_node_stats_of(c->node)->bytes_out += (uint64_t)n;
	}
	if (c->out && evbuffer_get_length(c->out) > 0) {
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
	if (c->out) {
		evbuffer_free(c->out);
		c->out = NULL;
	}
	shut_if_done(c);
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

/* ---- HTTP ---- */

static void
http_answer(brk_conn *c, int status, const char *body)
{
	if (outbuf(c)) {
		pro_http_write_response(
		    c->out, status, NULL, "text/plain; charset=utf-8", body);
	}
	c->state = S_CLOSING;
	queue_flush(c);
}

static int
origin_allowed(const char *list, const char *origin)
{
	const char *p = list;
	size_t ol;

	if (list == NULL || *list == '\0') {
		return 1;
	}
	if (origin == NULL) {
		/* Non-browser clients send no Origin; the allow-list exists to
		 * stop other web sites, which always send one. */
		return 1;
	}
	ol = strlen(origin);
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
			n--;
		}
		if (n == ol && strncasecmp(p, origin, n) == 0) {
			return 1;
		}
		if (e == NULL) {
			break;
		}
		p = e + 1;
	}
	return 0;
}

static void
refuse(brk_conn *c, int status, brk_refusal kind, const char *why)
{
	brk_node_stats_of(c->node)->upgrade_refused++;
	brk_node_stats_of(c->node)->refused_by[kind]++;
	LOG_SUMMARY(PL_LOG_INFO, "BRK-REFUSED",
	    "upgrade from %s refused (%d): %s", brk_conn_peer(c), status, why);
	if (outbuf(c)) {
		pro_ws_write_refusal(c->out, status);
	}
	c->state = S_CLOSING;
	queue_flush(c);
}

#define BEARER_PREFIX "base64url.bearer.phx."

/* phoenix.js's authToken option sends the token as a subprotocol,
 * "phoenix, base64url.bearer.phx.<base64 without padding>"; the server must
 * then answer with the subprotocol "phoenix". Returns a malloc'ed token or
 * NULL. */
static char *
subprotocol_token(const char *list)
{
	const char *p = list ? strstr(list, BEARER_PREFIX) : NULL;
	uint8_t *out;
	size_t n, len;

	if (p == NULL || !pro_http_list_has(list, "phoenix")) {
		return NULL;
	}
	p += strlen(BEARER_PREFIX);
	n = strcspn(p, ", \t");
	if (n == 0 || n > 8192 || (out = malloc(n * 3 / 4 + 3)) == NULL) {
		return NULL;
	}
	if (!pl_b64_decode(p, n, out, &len)) {
		free(out);
		return NULL;
	}
	out[len] = '\0';
	return (char *)out;
}

/* The token comes as the `token` query parameter or as phoenix.js's
 * authToken subprotocol; both may be sent, but must then agree. A client
 * that offers the "phoenix" subprotocol must get it back, or it aborts the
 * connection (RFC 6455 4.1). Returns a malloc'ed token, or NULL with *why. */
static char *
upgrade_token(pro_http_req *req, const char **proto, const char **why)
{
	char *query = pro_http_query_get(req->query, "token");
	char *sub = subprotocol_token(req->ws_protocol);

	*proto =
	    pro_http_list_has(req->ws_protocol, "phoenix") ? "phoenix" : NULL;
	if (query != NULL && sub != NULL && strcmp(query, sub) != 0) {
		free(query);
		free(sub);
		*why = "two different tokens (query and subprotocol)";
		return NULL;
	}
	if (query != NULL) {
		free(sub);
		return query;
	}
	*why = "missing token";
	return sub;
}

static void
upgrade(brk_conn *c, pro_http_req *req)
{
	const brk_config *cfg = brk_node_config(c->node);
	char *token, *vsn_s;
	const char *proto = NULL;
	const char *why = NULL;
	size_t nkeys;
	const brk_key *keys = brk_node_keys(c->node, &nkeys);
	int st, vsn;

	st = pro_ws_check_upgrade(req);
	if (st != 0) {
		refuse(c, st, BRK_REFUSE_BAD_REQUEST,
		    "not a valid WebSocket upgrade");
		return;
	}
	if (!origin_allowed(cfg->allowed_origins, req->origin)) {
		refuse(c, 403, BRK_REFUSE_ORIGIN, "origin not allowed");
		return;
	}
	if (!brk_node_accepting(c->node)) {
		refuse(c, 503, BRK_REFUSE_DRAINING,
		    brk_node_draining(c->node) ? "node draining"
					       : "node left the cluster");
		return;
	}
	vsn_s = pro_http_query_get(req->query, "vsn");
	vsn = pro_phx_parse_vsn(vsn_s);
	free(vsn_s);
	if (vsn == 0) {
		refuse(c, 403, BRK_REFUSE_VSN, "unsupported vsn");
		return;
	}
	if ((token = upgrade_token(req, &proto, &why)) == NULL) {
		refuse(c, 403, BRK_REFUSE_AUTH, why);
		return;
	}
	if (brk_auth_verify_keys(keys, nkeys, token, (int64_t)time(NULL),
		&c->user, &why) != PL_OK) {
		free(token);
		refuse(c, 403, BRK_REFUSE_AUTH, why ? why : "bad token");
		return;
	}
	free(token);
	if (outbuf(c) == NULL || pro_ws_write_accept(c->out, req, proto) != 0) {
		conn_kill(c);
		return;
	}
	c->vsn = (uint8_t)vsn;
	c->state = S_WS;
	pro_ws_reader_init(&c->rd, (size_t)cfg->max_message_bytes);
	brk_node_stats_of(c->node)->upgrades++;
	brk_node_stats_of(c->node)->ws_conns++;
	queue_flush(c);
}

static void
handle_http(brk_conn *c)
{
	pro_http_req req;
	int status = 0, rc;

	memset(&req, 0, sizeof(req));
	rc = pro_http_parse(c->in, &req, &status);
	if (rc == 0) {
		return;
	}
	if (rc < 0) {
		http_answer(c, status ? status : 400,
		    status == 431       ? "request head over 8192 bytes\n"
			: status == 505 ? "HTTP/1.x only\n"
					: "malformed HTTP request\n");
		pro_http_req_free(&req);
		return;
	}
	if (strcmp(req.path, "/healthz") == 0) {
		http_answer(c, 200, "ok\n");
	} else if (strcmp(req.path, "/readyz") == 0) {
		int st;
		const char *body = brk_node_readyz(c->node, &st);
		http_answer(c, st, body);
	} else if (strcmp(req.path, "/socket/websocket") == 0) {
		upgrade(c, &req);
	} else {
		http_answer(c, 404, "not found\n");
	}
	pro_http_req_free(&req);
}

/* ---- WebSocket input ---- */

static void
handle_message(brk_conn *c, pro_ws_msg *msg)
{
	pro_phx_msg m;
	const char *why = "invalid message";

	brk_node_stats_of(c->node)->frames_in++;
	switch (msg->opcode) {
	case PRO_WS_PING:
		if (outbuf(c)) {
			pro_ws_write_frame(
			    c->out, PRO_WS_PONG, msg->data, msg->len);
			queue_flush(c);
		}
		return;
	case PRO_WS_PONG: return;
	case PRO_WS_CLOSE: brk_conn_close(c, PRO_WS_CLOSE_NORMAL, ""); return;
	default: break;
	}
	if (pro_phx_decode(c->vsn, msg->opcode == PRO_WS_BINARY, msg->data,
		msg->len, &m, &why) != PL_OK) {
		pro_phx_msg_clear(&m);
		brk_node_stats_of(c->node)->protocol_errors++;
		LOG_INFO("BRK-BADMSG", "closing %s (user %s): %s",
		    brk_conn_peer(c), c->user, why);
		brk_conn_close(c, PRO_WS_CLOSE_BAD_DATA, why);
		return;
	}
	brk_router_dispatch(brk_node_router(c->node), c, &m);
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
			brk_node_stats_of(c->node)->protocol_errors++;
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
		conn_kill(c);
		goto out;
	}
	brk_node_stats_of(c->node)->bytes_in += (uint64_t)n;
	touch(c);
	switch (c->state) {
	case S_HTTP:
		handle_http(c);
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
brk_conn_accept(brk_node *n, int fd, const struct sockaddr *sa, socklen_t salen)
{
	brk_conn_list *l = brk_node_conns(n);
	brk_node_stats *st = brk_node_stats_of(n);
	brk_conn *c;
	int one = 1;

	(void)sa;
	(void)salen;
	if ((long)l->count >= brk_node_config(n)->max_connections) {
		st->refused++;
		close(fd);
		return PL_ELIMIT;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return PL_ENOMEM;
	}
	/* The listener accepts with SOCK_NONBLOCK already. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->node = n;
	c->fd = fd;
	c->refs = 1;
	c->id = next_conn_id++;
	c->state = S_HTTP;
	event_assign(&c->rev, brk_node_base(n), fd, EV_READ | EV_PERSIST,
	    on_readable, c);
	event_assign(&c->wev, brk_node_base(n), fd, EV_WRITE, on_writable, c);
	if (event_add(&c->rev, NULL) != 0) {
		close(fd);
		free(c);
		return PL_EIO;
	}
	c->last_rx_ms = brk_node_now_ms(c->node);
	lru_append(l, c);
	l->count++;
	st->accepted++;
	st->open_conns++;
	return PL_OK;
}

void
brk_conn_sweep(brk_conn_list *l, uint64_t now)
{
	brk_conn *c = l->head, *next;

	for (; c != NULL; c = next) {
		uint64_t age = now - c->last_rx_ms;
		next = c->next;
		if (age < LINGER_MS) {
			break;
		}
		if (c->state == S_CLOSING) {
			conn_kill(c);
		} else if (c->state == S_HTTP && age >= HANDSHAKE_MS) {
			conn_kill(c);
		} else if (c->state == S_WS &&
		    age >= (uint64_t)brk_node_config(c->node)->idle_timeout *
			    1000) {
			brk_node_stats_of(c->node)->idle_closed++;
			LOG_INFO("BRK-IDLE",
			    "closing %s (user %s): silent for %llu s",
			    brk_conn_peer(c), c->user,
			    (unsigned long long)(age / 1000));
			/* Re-stamp so the linger timer starts now. */
			c->last_rx_ms = now;
			lru_unlink(l, c);
			lru_append(l, c);
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
	brk_conn *c;

	for (c = l->head; c != NULL; c = c->next) {
		if (c->state == S_WS || c->state == S_HTTP) {
			brk_conn_close(c, code, reason);
		}
	}
}

void
brk_conn_free_all(brk_conn_list *l)
{
	brk_conn_flush_all(l);
	while (l->head) {
		conn_kill(l->head);
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

brk_node *
brk_conn_node(brk_conn *c)
{
	return c->node;
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
