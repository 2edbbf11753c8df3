/* SPDX-License-Identifier: Apache-2.0 */
/* The admin API on --admin (see admin.h). It can drain the node and
 * stream its data, so: a bearer token (--admin-token-file) on every
 * request but /metrics, and without one the port binds loopback only;
 * Host must name the bound address (a page that rebinds its DNS name to
 * 127.0.0.1 sends its own name); state changes take POST only; requests
 * carrying Origin (browsers) or a form content type are refused. Every
 * refusal is a JSON body {"error", "message"} with a fitting status. */
#include "broker/admin.h"

#include "broker/config.h"
#include "broker/conn.h"
#include "broker/fbsync.h"
#include "broker/httpd.h"
#include "broker/mesh.h"
#include "broker/node.h"
#include "broker/presence.h"
#include "broker/router.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/sbuf.h"
#include "proto/http.h"
#include "storage/backup.h"
#include "storage/comments.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TOKEN_MIN 16
#define TOKEN_MAX 4096
#define BACKUP_CHUNK 65536
#define BACKUP_PENDING_MAX (1 << 20) /* stop reading the copy above this */

enum {
	REF_AUTH,
	REF_HOST,
	REF_ORIGIN,
	REF_CONTENT_TYPE,
	REF_NOT_FOUND,
	REF_METHOD,
	REF_N
};

typedef struct backup_job {
	brk_admin *a;
	brk_httpd_req *r;
	sto_backup *b;
	int rfd;
	struct event *ev;
	uint64_t bytes;
} backup_job;

struct brk_admin {
	brk_node *node;
	brk_httpd *http;
	char *token; /* NULL: no token (loopback only) */
	uint8_t token_hash[SHA256_DIGEST_LENGTH];
	backup_job *backup;
	uint64_t refused[REF_N];
	uint64_t backups_ok, backups_failed;
	const brk_httpd_stats *hs;
};

/* ---- replies ---- */

static void
send_json(brk_httpd_req *r, int code, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char *line = NULL;

	json_decref(body);
	if (s == NULL || asprintf(&line, "%s\n", s) < 0) {
		line = NULL;
	}
	if (line == NULL) {
		brk_httpd_error(r, 500, "internal_error", "out of memory");
	} else {
		brk_httpd_reply(r, code, "application/json", NULL, line);
	}
	free(line);
	free(s);
}

static void
refuse(brk_admin *a, brk_httpd_req *r, int reason, int status, const char *code,
    const char *msg)
{
	a->refused[reason]++;
	LOG_SUMMARY(PL_LOG_INFO, "BRK-ADMINREFUSED",
	    "admin request %s %s "
	    "refused (%d %s)",
	    brk_httpd_head(r)->method, brk_httpd_head(r)->path, status, code);
	brk_httpd_error(r, status, code, msg);
}

/* ---- /v1/stats ---- */

/* Admission and output limits: what hostile or slow clients cost now. */
static json_t *
limits_json(brk_node *n)
{
	brk_node_stats *s = brk_node_stats_of(n);
	brk_conn_list *l = brk_node_conns(n);

	return json_pack(
	    "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "handshakes", (json_int_t)l->handshakes, "handshakes_max",
	    (json_int_t)l->max_handshakes, "handshakes_stale",
	    (json_int_t)brk_conn_stale_handshakes(l, brk_node_now_ms(n)),
	    "probes", (json_int_t)l->probes, "handshake_timeouts",
	    (json_int_t)s->handshake_timeouts, "handshakes_evicted",
	    (json_int_t)s->handshakes_evicted, "addr_refused",
	    (json_int_t)s->addr_refused, "user_refused",
	    (json_int_t)s->user_refused, "queued_bytes",
	    (json_int_t)l->out.bytes, "queued_budget",
	    (json_int_t)l->out_budget, "budget_closed",
	    (json_int_t)s->budget_closed);
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
			 "s:{s:I, s:I}, s:{s:I, s:I, s:I, s:f, s:I}, s:I, s:o, "
			 "s:o}",
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
	    "cluster", brk_mesh_stats_json(brk_node_mesh(n)), "limits",
	    limits_json(n));
}

static void
metrics(brk_admin *a, brk_httpd_req *r)
{
	pl_sbuf b = PL_SBUF_INIT;
	char *text;

	pl_metrics_render(brk_node_metrics(a->node), &b);
	text = pl_sbuf_take(&b, NULL);
	if (text == NULL) {
		brk_httpd_error(r, 500, "internal_error", "out of memory");
		return;
	}
	brk_httpd_reply(
	    r, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, text);
	free(text);
}

/* ---- handlers ---- */

static void
h_metrics(brk_admin *a, brk_httpd_req *r)
{
	metrics(a, r);
}

static void
h_members(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200, brk_mesh_members_json(brk_node_mesh(a->node)));
}

static void
h_leader(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200, brk_mesh_leader_json(brk_node_mesh(a->node)));
}

static void
h_replication(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200, brk_mesh_replication_json(brk_node_mesh(a->node)));
}

static void
h_stats(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200, stats_json(a->node));
}

static void
h_sync(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200, brk_fbsync_status_json(brk_node_fbsync(a->node)));
}

#define PARKED_LIST_MAX 1000

static void
h_sync_parked(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200,
	    brk_fbsync_parked_json(brk_node_fbsync(a->node), PARKED_LIST_MAX));
}

static void
h_sync_retry(brk_admin *a, brk_httpd_req *r)
{
	size_t n = brk_fbsync_retry_parked(brk_node_fbsync(a->node));

	send_json(r, 200, json_pack("{s:I}", "retrying", (json_int_t)n));
}

static void
h_drain(brk_admin *a, brk_httpd_req *r)
{
	send_json(r, 200, json_pack("{s:b}", "draining", 1));
	brk_node_drain(a->node);
}

static void
h_leave(brk_admin *a, brk_httpd_req *r)
{
	brk_node_leave(a->node);
	send_json(r, 200, json_pack("{s:b}", "left", 1));
}

static void
h_log_level_get(brk_admin *a, brk_httpd_req *r)
{
	(void)a;
	send_json(r, 200,
	    json_pack("{s:s}", "level", pl_log_level_name(pl_log_level)));
}

/* The level comes from ?level= or a JSON body {"level": "..."}. */
static void
h_log_level_set(brk_admin *a, brk_httpd_req *r)
{
	const pro_http_req *h = brk_httpd_head(r);
	char *q = pro_http_query_get(h->query, "level");
	const char *want = q;
	json_t *body = NULL;
	size_t blen;
	const char *b = brk_httpd_body(r, &blen);
	int was = pl_log_level, lv;

	(void)a;
	if (want == NULL && blen > 0) {
		body = json_loadb(b, blen, 0, NULL);
		want = json_string_value(json_object_get(body, "level"));
	}
	lv = pl_log_level_parse(want);
	if (lv < 0) {
		brk_httpd_error(r, 400, "invalid_level",
		    "level must be error, warn, notice, info or debug (as "
		    "?level= or a JSON body {\"level\": ...})");
	} else {
		pl_log_set_level(lv);
		LOG_NOTICE("BRK-LOGLEVEL", "log level %s -> %s (admin API)",
		    pl_log_level_name(was), pl_log_level_name(lv));
		send_json(r, 200,
		    json_pack("{s:s, s:s}", "level", pl_log_level_name(lv),
			"was", pl_log_level_name(was)));
	}
	json_decref(body);
	free(q);
}

static void
h_test_block(brk_admin *a, brk_httpd_req *r)
{
	const pro_http_req *h = brk_httpd_head(r);
	char *peer, *on;
	int rc;

	if (!brk_node_config(a->node)->cluster_test_hooks) {
		a->refused[REF_NOT_FOUND]++;
		brk_httpd_error(r, 404, "not_found", "no such endpoint");
		return;
	}
	peer = pro_http_query_get(h->query, "peer");
	on = pro_http_query_get(h->query, "on");
	rc = peer ? brk_mesh_block(brk_node_mesh(a->node), peer,
			on && strcmp(on, "0") != 0)
		  : PL_EINVAL;
	send_json(r, rc ? 400 : 200, json_pack("{s:b}", "ok", rc == 0));
	free(peer);
	free(on);
}

/* ---- backup: the copy thread writes a pipe, the loop relays it ---- */

static void
backup_done(backup_job *j, bool peer_gone)
{
	brk_admin *a = j->a;
	int rc;

	if (j->ev) {
		event_free(j->ev);
	}
	/* Closing the read end first makes a copy still running fail fast
	 * (EPIPE) rather than wait for a reader. */
	close(j->rfd);
	rc = sto_backup_finish(j->b);
	if (!peer_gone) {
		brk_httpd_stream_end(j->r, rc == PL_OK);
	}
	if (rc == PL_OK && !peer_gone) {
		a->backups_ok++;
		LOG_NOTICE("BRK-BACKUP", "backup streamed: %llu bytes",
		    (unsigned long long)j->bytes);
	} else {
		a->backups_failed++;
		LOG_WARN("BRK-BACKUP", "backup aborted after %llu bytes: %s",
		    (unsigned long long)j->bytes,
		    peer_gone ? "the client went away" : pl_strerror(rc));
	}
	a->backup = NULL;
	free(j);
}

static void
backup_readable(evutil_socket_t fd, short what, void *arg)
{
	backup_job *j = arg;
	char buf[BACKUP_CHUNK];

	(void)what;
	while (brk_httpd_stream_pending(j->r) < BACKUP_PENDING_MAX) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			return;
		}
		if (n <= 0) {
			backup_done(j, false);
			return;
		}
		j->bytes += (uint64_t)n;
		if (brk_httpd_stream_write(j->r, buf, (size_t)n) != PL_OK) {
			brk_httpd_stream_end(j->r, false);
			backup_done(j, true);
			return;
		}
	}
	/* The client is slower than the disk: wait for it to drain. */
	event_del(j->ev);
}

static void
backup_drained(void *arg)
{
	backup_job *j = arg;

	event_add(j->ev, NULL);
}

static void
backup_gone(void *arg)
{
	backup_done(arg, true);
}

static void
h_backup(brk_admin *a, brk_httpd_req *r)
{
	backup_job *j;
	int p[2], rc;
	char hdr[300];

	if (a->backup) {
		brk_httpd_error(r, 409, "backup_running",
		    "a backup of this node is already running");
		return;
	}
	if (pipe2(p, O_CLOEXEC) != 0) {
		brk_httpd_error(r, 500, "internal_error", strerror(errno));
		return;
	}
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		close(p[0]);
		close(p[1]);
		brk_httpd_error(r, 500, "internal_error", "out of memory");
		return;
	}
	j->a = a;
	j->r = r;
	j->rfd = p[0];
	j->ev = event_new(brk_node_base(a->node), p[0], EV_READ | EV_PERSIST,
	    backup_readable, j);
	rc = j->ev ? sto_backup_start(brk_node_comments(a->node), p[1], &j->b)
		   : PL_ENOMEM;
	if (!j->ev) {
		close(p[1]);
	}
	if (rc != PL_OK) {
		if (j->ev) {
			event_free(j->ev);
		}
		close(p[0]);
		free(j);
		brk_httpd_error(r, rc == PL_EAGAIN ? 409 : 500,
		    rc == PL_EAGAIN ? "backup_running" : "internal_error",
		    rc == PL_EAGAIN ? "a backup of this node is already running"
				    : pl_strerror(rc));
		return;
	}
	a->backup = j;
	snprintf(hdr, sizeof(hdr),
	    "Content-Disposition: attachment; "
	    "filename=\"parley-%.200s.mdb\"\r\n",
	    brk_node_name(a->node));
	brk_httpd_stream_start(r, 200, "application/octet-stream", hdr,
	    backup_drained, backup_gone, j);
	event_add(j->ev, NULL);
	LOG_NOTICE("BRK-BACKUP", "backup started");
}

/* ---- routing ---- */

typedef struct route {
	const char *path;
	const char *method;
	void (*fn)(brk_admin *a, brk_httpd_req *r);
} route;

static const route routes[] = {
	{ "/metrics", "GET", h_metrics },
	{ "/v1/members", "GET", h_members },
	{ "/v1/leader", "GET", h_leader },
	{ "/v1/stats", "GET", h_stats },
	{ "/v1/replication", "GET", h_replication },
	{ "/v1/sync", "GET", h_sync },
	{ "/v1/sync/parked", "GET", h_sync_parked },
	{ "/v1/sync/retry", "POST", h_sync_retry },
	{ "/v1/log-level", "GET", h_log_level_get },
	{ "/v1/log-level", "POST", h_log_level_set },
	{ "/v1/drain", "POST", h_drain },
	{ "/v1/leave", "POST", h_leave },
	{ "/v1/backup", "GET", h_backup },
	{ "/v1/test/block", "POST", h_test_block },
};

/* Host must name the address we are bound to: the bound IP (any IP
 * literal when bound to the wildcard address) or, on loopback or the
 * wildcard, "localhost". A DNS name is what a rebinding attack sends. The
 * port is not checked (port forwards change it). HTTP/1.0 may omit Host. */
static bool
host_ok(const brk_admin *a, const pro_http_req *h)
{
	char host[256], bin[sizeof(struct in6_addr)];
	const char *s = h->host, *e;
	size_t n;

	if (s == NULL) {
		return h->version_minor == 0;
	}
	if (*s == '[') {
		e = strchr(s, ']');
		if (e == NULL) {
			return false;
		}
		s++;
	} else {
		e = strrchr(s, ':');
		e = e ? e : s + strlen(s);
	}
	n = (size_t)(e - s);
	if (n == 0 || n >= sizeof(host)) {
		return false;
	}
	memcpy(host, s, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0) {
		return brk_httpd_is_loopback(a->http) ||
		    brk_httpd_is_wildcard(a->http);
	}
	if (brk_httpd_is_wildcard(a->http)) {
		return inet_pton(AF_INET, host, bin) == 1 ||
		    inet_pton(AF_INET6, host, bin) == 1;
	}
	return strcasecmp(host, brk_httpd_host(a->http)) == 0;
}

/* Content types a browser may send cross-origin without asking first. */
static bool
form_type(const char *ct)
{
	static const char *const forms[] = {
		"application/x-www-form-urlencoded", "multipart/form-data",
		"text/plain"
	};

	for (size_t i = 0; ct && i < sizeof(forms) / sizeof(forms[0]); i++) {
		if (strncasecmp(ct, forms[i], strlen(forms[i])) == 0) {
			return true;
		}
	}
	return false;
}

static bool
token_ok(const brk_admin *a, const char *auth)
{
	uint8_t got[SHA256_DIGEST_LENGTH];

	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0) {
		return false;
	}
	auth += 7;
	while (*auth == ' ') {
		auth++;
	}
	/* Hashes compare in constant time whatever the lengths. */
	SHA256((const unsigned char *)auth, strlen(auth), got);
	return CRYPTO_memcmp(got, a->token_hash, sizeof(got)) == 0;
}

static void
handle(void *arg, brk_httpd_req *r)
{
	brk_admin *a = arg;
	const pro_http_req *h = brk_httpd_head(r);
	const route *match = NULL;
	char allow[64] = "";
	bool path_known = false;

	if (!host_ok(a, h)) {
		refuse(a, r, REF_HOST, 403, "host_not_allowed",
		    "the Host header must name the admin address (an IP "
		    "literal or localhost), not a DNS name");
		return;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, h->path) != 0) {
			continue;
		}
		path_known = true;
		if (strcmp(routes[i].method, h->method) == 0) {
			match = &routes[i];
		}
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow),
		    "%s%s", allow[0] ? ", " : "", routes[i].method);
	}
	if (!path_known) {
		refuse(a, r, REF_NOT_FOUND, 404, "not_found",
		    "no such endpoint (see docs/operations.md)");
		return;
	}
	if (match == NULL) {
		char hdr[96], msg[128];
		a->refused[REF_METHOD]++;
		snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
		snprintf(msg, sizeof(msg), "%s takes %s", h->path, allow);
		brk_httpd_error_hdr(r, 405, hdr, "method_not_allowed", msg);
		return;
	}
	if (h->origin != NULL) {
		refuse(a, r, REF_ORIGIN, 403, "origin_refused",
		    "the admin API does not serve browsers: requests with an "
		    "Origin header are refused");
		return;
	}
	if (form_type(h->content_type)) {
		refuse(a, r, REF_CONTENT_TYPE, 415, "unsupported_media_type",
		    "form and text/plain bodies are refused (send none, or "
		    "application/json)");
		return;
	}
	if (a->token &&
	    (match->fn != h_metrics ||
		brk_node_config(a->node)->metrics_auth)) {
		if (h->authorization == NULL) {
			refuse(a, r, REF_AUTH, 401, "missing_token",
			    "send Authorization: Bearer <the token in "
			    "--admin-token-file>");
			return;
		}
		if (!token_ok(a, h->authorization)) {
			refuse(a, r, REF_AUTH, 401, "bad_token",
			    "the bearer token does not match "
			    "--admin-token-file");
			return;
		}
	}
	match->fn(a, r);
}

/* ---- token ---- */

/* Reads the token file into *tok (NULL without --admin-token-file). */
static int
read_token(const brk_config *cfg, char **tok, char *err, size_t errlen)
{
	size_t len = 0;
	int rc;

	*tok = NULL;
	if (cfg->admin_token_file == NULL) {
		return PL_OK;
	}
	rc = pl_file_read_secret(cfg->admin_token_file, TOKEN_MAX,
	    "BRK-SECRETPERM", tok, &len, err, errlen);
	if (rc == PL_OK && (len < TOKEN_MIN || strpbrk(*tok, " \t\r\n"))) {
		snprintf(err, errlen,
		    "%s: the admin token must be one line of at least %d "
		    "characters without spaces (e.g. openssl rand -hex 32)",
		    cfg->admin_token_file, TOKEN_MIN);
		free(*tok);
		*tok = NULL;
		rc = PL_EINVAL;
	}
	return rc;
}

static void
set_token(brk_admin *a, char *tok)
{
	if (a->token) {
		OPENSSL_cleanse(a->token, strlen(a->token));
		free(a->token);
	}
	a->token = tok;
	if (tok) {
		SHA256((const unsigned char *)tok, strlen(tok), a->token_hash);
	}
}

void
brk_admin_reload(brk_admin *a)
{
	char err[512], *tok = NULL;

	if (a == NULL || brk_node_config(a->node)->admin_token_file == NULL) {
		return;
	}
	if (read_token(brk_node_config(a->node), &tok, err, sizeof(err)) !=
	    PL_OK) {
		LOG_ERR("BRK-RELOAD",
		    "admin token not reloaded, keeping the current one: %s",
		    err);
		return;
	}
	set_token(a, tok);
	LOG_NOTICE("BRK-RELOAD", "admin token reloaded from %s",
	    brk_node_config(a->node)->admin_token_file);
}

/* ---- metrics ---- */

static int
register_metrics(brk_admin *a)
{
	static const char *const reasons[REF_N] = { "auth", "host", "origin",
		"content_type", "not_found", "method" };
	pl_metrics *m = brk_node_metrics(a->node);
	const char *help = "Admin API requests refused, by reason.";
	const char *name = "parley_admin_refused_total";
	int rc = 0;

	for (int i = 0; i < REF_N; i++) {
		rc |= pl_metrics_counter_ptr(
		    m, name, help, &a->refused[i], "reason", reasons[i], NULL);
	}
	rc |= pl_metrics_counter_ptr(
	    m, name, help, &a->hs->refused_400, "reason", "bad_request", NULL);
	rc |= pl_metrics_counter_ptr(
	    m, name, help, &a->hs->refused_408, "reason", "timeout", NULL);
	rc |= pl_metrics_counter_ptr(m, name, help, &a->hs->refused_411,
	    "reason", "length_required", NULL);
	rc |= pl_metrics_counter_ptr(m, name, help, &a->hs->refused_413,
	    "reason", "body_too_large", NULL);
	rc |= pl_metrics_counter_ptr(m, name, help, &a->hs->refused_431,
	    "reason", "header_too_large", NULL);
	rc |= pl_metrics_counter_ptr(
	    m, name, help, &a->hs->refused_503, "reason", "busy", NULL);
	rc |= pl_metrics_counter_ptr(m, "parley_admin_requests_total",
	    "Complete admin API requests received.", &a->hs->requests, NULL);
	rc |= pl_metrics_counter_ptr(m, "parley_backups_total",
	    "Backups streamed, by result.", &a->backups_ok, "result", "ok",
	    NULL);
	rc |= pl_metrics_counter_ptr(m, "parley_backups_total",
	    "Backups streamed, by result.", &a->backups_failed, "result",
	    "failed", NULL);
	return rc ? PL_ENOMEM : PL_OK;
}

/* ---- create / destroy ---- */

static int
build(brk_admin *a, brk_node *n, char *err, size_t errlen)
{
	const brk_config *cfg = brk_node_config(n);
	brk_httpd_opts o;
	char msg[400], *tok = NULL;
	int rc;

	a->node = n;
	if ((rc = read_token(cfg, &tok, msg, sizeof(msg))) != PL_OK) {
		snprintf(err, errlen, "--admin-token-file: %s", msg);
		return rc;
	}
	set_token(a, tok);
	memset(&o, 0, sizeof(o));
	o.base = brk_node_base(n);
	o.addr = cfg->admin;
	o.handler = handle;
	o.arg = a;
	if ((rc = brk_httpd_create(&a->http, &o, msg, sizeof(msg))) != PL_OK) {
		snprintf(err, errlen, "--admin: %s", msg);
		return rc;
	}
	if (a->token == NULL && !brk_httpd_is_loopback(a->http)) {
		snprintf(err, errlen,
		    "--admin %s is not a loopback address, and the admin API "
		    "can drain this node and copy its data: give it a token "
		    "with --admin-token-file FILE (the CLI reads the same "
		    "file), or bind it to 127.0.0.1",
		    cfg->admin);
		return PL_EINVAL;
	}
	a->hs = brk_httpd_stats_of(a->http);
	if (register_metrics(a) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if (a->token == NULL) {
		LOG_NOTICE("BRK-ADMIN",
		    "admin API on %s without a token (loopback only)",
		    cfg->admin);
	}
	return PL_OK;
}

int
brk_admin_create(brk_admin **out, brk_node *n, char *err, size_t errlen)
{
	brk_admin *a = calloc(1, sizeof(*a));
	int rc;

	*out = NULL;
	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if ((rc = build(a, n, err, errlen)) != PL_OK) {
		brk_admin_destroy(a);
		return rc;
	}
	*out = a;
	return PL_OK;
}

void
brk_admin_destroy(brk_admin *a)
{
	if (a == NULL) {
		return;
	}
	/* Aborts a running backup through its on_gone (joins its thread). */
	brk_httpd_destroy(a->http);
	set_token(a, NULL);
	free(a);
}
