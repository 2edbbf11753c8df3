/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP side of a client socket: plain answers (/healthz, /readyz,
 * errors) and the upgrade decision (shape, origin, drain, vsn, token,
 * sockets per user). Every answer moves the socket out of the handshake
 * list; a refused or answered socket closes once its answer is written. */
#include "broker/auth.h"
#include "broker/conn_int.h"
#include "broker/config.h"
#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/http.h"
#include "proto/phx.h"
#include "proto/ws.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Queues an HTTP answer (body NULL: the status's reason phrase, with the
 * headers the status requires) and closes after it. */
static void
answer(brk_conn *c, int status, const char *body)
{
	struct evbuffer *b = evbuffer_new();

	if (b != NULL) {
		if (body != NULL
			? pro_http_write_response(b, status, NULL,
			      "text/plain; charset=utf-8", body) == PL_OK
			: pro_ws_write_refusal(b, status) == PL_OK) {
			brk_conn_push(c, b);
		}
		evbuffer_free(b);
	}
	c->state = S_CLOSING;
	brk_conn_handshake_done(c);
	brk_conn_queue_flush(c);
}

/* An upgrade refused: logged and counted. body NULL answers the status's
 * reason phrase (403 has an empty body to the client's eyes, as Phoenix). */
static void
refuse(brk_conn *c, int status, brk_refusal kind, const char *why,
    const char *body)
{
	c->list->env.stats->upgrade_refused++;
	c->list->env.stats->refused_by[kind]++;
	LOG_SUMMARY(PL_LOG_INFO, "BRK-REFUSED",
	    "upgrade from %s refused (%d): %s", brk_conn_peer(c), status, why);
	answer(c, status, body);
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

#define BEARER_PREFIX "base64url.bearer.phx."

/* phoenix.js's authToken option sends the token as a subprotocol,
 * "phoenix, base64url.bearer.phx.<base64 without padding>". Returns a
 * malloc'ed token or NULL. */
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

/* Counts the socket against its user's --max-sockets-per-user. */
static int
take_user_slot(brk_conn *c)
{
	brk_conn_list *l = c->list;
	char body[160];
	int rc;

	rc = brk_tally_take(
	    l->users, c->user, strlen(c->user), l->max_per_user, &c->slot);
	if (rc == PL_ELIMIT) {
		c->list->env.stats->user_refused++;
		snprintf(body, sizeof(body),
		    "too many sockets for this user on this node "
		    "(--max-sockets-per-user %u)\n",
		    l->max_per_user);
		refuse(c, 429, BRK_REFUSE_LIMIT,
		    "too many sockets for this user", body);
		return -1;
	}
	if (rc != PL_OK) {
		refuse(c, 503, BRK_REFUSE_LIMIT, "out of memory", NULL);
		return -1;
	}
	return 0;
}

static void
upgrade(brk_conn *c, pro_http_req *req)
{
	const brk_config *cfg = c->list->env.cfg;
	struct evbuffer *b;
	char *token, *vsn_s;
	const char *proto = NULL;
	const char *why = NULL;
	size_t nkeys;
	const brk_key *keys = c->list->env.keys(c->list->env.arg, &nkeys);
	int st, vsn;

	st = pro_ws_check_upgrade(req);
	if (st != 0) {
		refuse(c, st, BRK_REFUSE_BAD_REQUEST,
		    "not a valid WebSocket upgrade", NULL);
		return;
	}
	if (!origin_allowed(cfg->allowed_origins, req->origin)) {
		refuse(c, 403, BRK_REFUSE_ORIGIN, "origin not allowed", NULL);
		return;
	}
	if (!c->list->env.accepting(c->list->env.arg)) {
		refuse(c, 503, BRK_REFUSE_DRAINING,
		    c->list->env.draining(c->list->env.arg)
			? "node draining"
			: "node left the cluster",
		    NULL);
		return;
	}
	if (c->probe && !brk_conn_unprobe(c)) {
		refuse(c, 503, BRK_REFUSE_LIMIT, "every socket slot is taken",
		    "every socket slot of this node is taken; retry\n");
		return;
	}
	vsn_s = pro_http_query_get(req->query, "vsn");
	vsn = pro_phx_parse_vsn(vsn_s);
	free(vsn_s);
	if (vsn == 0) {
		refuse(c, 403, BRK_REFUSE_VSN, "unsupported vsn", NULL);
		return;
	}
	if ((token = upgrade_token(req, &proto, &why)) == NULL) {
		refuse(c, 403, BRK_REFUSE_AUTH, why, NULL);
		return;
	}
	if (brk_auth_verify_keys(keys, nkeys, token, (int64_t)time(NULL),
		&c->user, &why) != PL_OK) {
		free(token);
		refuse(c, 403, BRK_REFUSE_AUTH, why ? why : "bad token", NULL);
		return;
	}
	free(token);
	brk_conn_handshake_done(c);
	if (take_user_slot(c) != 0) {
		return;
	}
	b = evbuffer_new();
	if (b == NULL || pro_ws_write_accept(b, req, proto) != 0) {
		if (b != NULL) {
			evbuffer_free(b);
		}
		brk_conn_kill(c);
		return;
	}
	brk_conn_push(c, b);
	evbuffer_free(b);
	c->vsn = (uint8_t)vsn;
	c->state = S_WS;
	pro_ws_reader_init(&c->rd, (size_t)cfg->max_message_bytes);
	c->list->env.stats->upgrades++;
	c->list->env.stats->ws_conns++;
	brk_conn_queue_flush(c);
}

void
brk_conn_handle_http(brk_conn *c)
{
	pro_http_req req;
	int status = 0, rc;

	memset(&req, 0, sizeof(req));
	rc = pro_http_parse(c->in, &req, &status);
	if (rc == 0) {
		return;
	}
	if (rc < 0) {
		answer(c, status ? status : 400,
		    status == 431       ? "request head over 8192 bytes\n"
			: status == 505 ? "HTTP/1.x only\n"
					: "malformed HTTP request\n");
		pro_http_req_free(&req);
		return;
	}
	if (strcmp(req.path, "/healthz") == 0) {
		answer(c, 200, "ok\n");
	} else if (strcmp(req.path, "/readyz") == 0) {
		int st;
		const char *body = c->list->env.readyz(c->list->env.arg, &st);
		answer(c, st, body);
	} else if (strcmp(req.path, "/socket/websocket") == 0) {
		upgrade(c, &req);
	} else {
		answer(c, 404, "not found\n");
	}
	pro_http_req_free(&req);
}
