/* SPDX-License-Identifier: Apache-2.0 */
/* Admin API on libevent's evhttp, bound to --admin (loopback by default:
 * it can drain the node, so it is not for the public port). */
#include "broker/admin.h"

#include "broker/config.h"
#include "broker/mesh.h"
#include "broker/node.h"
#include "broker/presence.h"
#include "broker/router.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/comments.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct brk_admin {
	brk_node *node;
	struct evhttp *http;
};

static void
send_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;

	json_decref(body);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/json");
	if (out) {
		evbuffer_add_printf(out, "%s\n", s ? s : "{}");
	}
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Error", out);
	if (out) {
		evbuffer_free(out);
	}
	free(s);
}

static json_t *
stats_json(brk_node *n)
{
	brk_node_stats *s = brk_node_stats_of(n);
	brk_router *r = brk_node_router(n);
	sto_comments_stats ss;

	sto_comments_stats_get(brk_node_comments(n), &ss);
	return json_pack("{s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, "
			 "s:{s:I, s:I}, s:{s:I, s:I, s:I, s:f, s:I}, s:I, s:o}",
	    "node", brk_node_name(n), "sockets", "open",
	    (json_int_t)s->open_conns, "websocket", (json_int_t)s->ws_conns,
	    "accepted", (json_int_t)s->accepted, "refused",
	    (json_int_t)s->refused, "accept_errors",
	    (json_int_t)s->accept_errors, "upgrades", (json_int_t)s->upgrades,
	    "upgrade_refused", (json_int_t)s->upgrade_refused, "frames_in",
	    (json_int_t)s->frames_in, "frames_out", (json_int_t)s->frames_out,
	    "protocol_errors", (json_int_t)s->protocol_errors, "slow_closed",
	    (json_int_t)s->slow_closed, "idle_closed",
	    (json_int_t)s->idle_closed, "channels", "topics",
	    (json_int_t)brk_router_topic_count(r), "joined",
	    (json_int_t)brk_router_channel_count(r), "broadcasts",
	    (json_int_t)brk_router_broadcasts(r), "deliveries",
	    (json_int_t)brk_router_deliveries(r), "comments", "accepted",
	    (json_int_t)s->comments_ok, "refused",
	    (json_int_t)s->comments_refused, "storage", "commits",
	    (json_int_t)ss.commits, "fsyncs", (json_int_t)ss.fsyncs,
	    "committed", (json_int_t)ss.committed_ops, "avg_batch",
	    ss.avg_batch, "map_size", (json_int_t)ss.map_size, "presences",
	    (json_int_t)brk_presence_entry_count(brk_node_presence(n)),
	    "cluster", brk_mesh_stats_json(brk_node_mesh(n)));
}

/* Flattens the stats object into Prometheus lines: parley_<group>_<name>. */
static void
prom(struct evbuffer *out, const char *prefix, json_t *v)
{
	const char *k;
	json_t *x;
	char name[160];

	json_object_foreach(v, k, x)
	{
		snprintf(name, sizeof(name), "%s_%s", prefix, k);
		if (json_is_object(x)) {
			prom(out, name, x);
		} else if (json_is_integer(x)) {
			evbuffer_add_printf(out, "%s %lld\n", name,
			    (long long)json_integer_value(x));
		} else if (json_is_real(x)) {
			evbuffer_add_printf(
			    out, "%s %g\n", name, json_real_value(x));
		}
	}
}

static void
metrics(struct evhttp_request *req, brk_node *n)
{
	struct evbuffer *out = evbuffer_new();
	json_t *s = stats_json(n);

	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4");
	if (out && s) {
		evbuffer_add_printf(
		    out, "parley_up 1\nparley_ready %d\n", brk_node_ready(n));
		prom(out, "parley", s);
	}
	evhttp_send_reply(req, 200, "OK", out);
	json_decref(s);
	if (out) {
		evbuffer_free(out);
	}
}

static void
test_block(struct evhttp_request *req, brk_node *n)
{
	struct evkeyvalq q;
	const char *peer, *on;
	int rc;

	if (!brk_node_config(n)->cluster_test_hooks) {
		send_json(req, 404, json_pack("{s:s}", "error", "not found"));
		return;
	}
	evhttp_parse_query(evhttp_request_get_uri(req), &q);
	peer = evhttp_find_header(&q, "peer");
	on = evhttp_find_header(&q, "on");
	rc = peer
	    ? brk_mesh_block(brk_node_mesh(n), peer, on && strcmp(on, "0") != 0)
	    : PL_EINVAL;
	send_json(req, rc ? 400 : 200, json_pack("{s:b}", "ok", rc == 0));
	evhttp_clear_headers(&q);
}

static void
route(struct evhttp_request *req, void *arg)
{
	brk_admin *a = arg;
	brk_node *n = a->node;
	const char *path =
	    evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;

	if (path == NULL) {
		path = "/";
	}
	if (get && strcmp(path, "/metrics") == 0) {
		metrics(req, n);
	} else if (get && strcmp(path, "/v1/members") == 0) {
		send_json(req, 200, brk_mesh_members_json(brk_node_mesh(n)));
	} else if (get && strcmp(path, "/v1/leader") == 0) {
		send_json(req, 200, brk_mesh_leader_json(brk_node_mesh(n)));
	} else if (get && strcmp(path, "/v1/stats") == 0) {
		send_json(req, 200, stats_json(n));
	} else if (get && strcmp(path, "/v1/sync") == 0) {
		send_json(req, 200,
		    json_pack("{s:s, s:b, s:s}", "self", brk_node_name(n),
			"enabled", 0, "reason",
			"Firebase sync is not built yet"));
	} else if (post && strcmp(path, "/v1/drain") == 0) {
		send_json(req, 200, json_pack("{s:b}", "draining", 1));
		brk_node_drain(n);
	} else if (post && strcmp(path, "/v1/leave") == 0) {
		brk_node_leave(n);
		send_json(req, 200, json_pack("{s:b}", "left", 1));
	} else if (post && strcmp(path, "/v1/test/block") == 0) {
		test_block(req, n);
	} else {
		send_json(req, 404, json_pack("{s:s}", "error", "not found"));
	}
}

int
brk_admin_create(brk_admin **out, brk_node *n, char *err, size_t errlen)
{
	const brk_config *cfg = brk_node_config(n);
	brk_admin *a = calloc(1, sizeof(*a));
	char host[256];
	int port;

	*out = a;
	if (a == NULL) {
		return PL_ENOMEM;
	}
	a->node = n;
	if (brk_config_split_hostport(cfg->admin, host, sizeof(host), &port)) {
		snprintf(err, errlen, "--admin: expected HOST:PORT, got \"%s\"",
		    cfg->admin);
		return PL_EINVAL;
	}
	a->http = evhttp_new(brk_node_base(n));
	if (a->http == NULL ||
	    evhttp_bind_socket(a->http, host, (ev_uint16_t)port) != 0) {
		snprintf(err, errlen, "cannot listen on admin address %s",
		    cfg->admin);
		return PL_EIO;
	}
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_max_body_size(a->http, 4096);
	evhttp_set_gencb(a->http, route, a);
	return PL_OK;
}

void
brk_admin_destroy(brk_admin *a)
{
	if (a == NULL) {
		return;
	}
	if (a->http) {
		evhttp_free(a->http);
	}
	free(a);
}
