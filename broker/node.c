/* SPDX-License-Identifier: Apache-2.0 */
/* The node: builds every part around one libevent loop, wires the storage and
 * cluster notification fds into it, runs the periodic timers, and handles
 * SIGTERM/SIGINT as a drain (readyz 503, leave the cluster, close sockets so
 * clients reconnect elsewhere, flush storage, exit 0). */
#include "broker/node.h"

#include "broker/admin.h"
#include "broker/auth.h"
#include "broker/channels.h"
#include "broker/conn.h"
#include "broker/presence.h"
#include "broker/ratelimit.h"
#include "broker/router.h"
#include "broker/mesh.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "storage/comments.h"

#include <errno.h>
#include <malloc.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct brk_node {
	const brk_config *cfg;
	char *name;
	struct event_base *base;
	struct evconnlistener *listener;
	brk_router *router;
	brk_presence *presence;
	brk_ratelimit *ratelimit;
	sto_comments *comments;
	brk_mesh *mesh;
	brk_admin *admin;
	uint8_t *secret;
	size_t secret_len;
	brk_conn_list conns;
	brk_node_stats stats;
	struct event *flush_ev, *sweep_ev, *store_ev, *drain_ev;
	struct event *sigterm_ev, *sigint_ev, *accept_retry_ev;
	int draining;
	int exit_code;
	uint64_t drain_started_ms;
	uint64_t accept_errors_logged;
};

uint64_t
brk_node_now_ms(brk_node *n)
{
	(void)n;
	return pl_mono_ms();
}

/* ---- accept ---- */

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	brk_node *n = arg;

	(void)l;
	brk_conn_accept(n, fd, sa, (socklen_t)salen);
}

static void
on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	brk_node *n = arg;

	(void)fd;
	(void)what;
	if (!n->draining) {
		evconnlistener_enable(n->listener);
	}
}

/* Out of descriptors (or another accept failure): existing sockets keep
 * being served; the listener pauses briefly instead of spinning, and the
 * failure is logged once per burst. */
static void
on_accept_error(struct evconnlistener *l, void *arg)
{
	brk_node *n = arg;
	struct timeval tv = { 0, 100000 };
	int err = EVUTIL_SOCKET_ERROR();

	n->stats.accept_errors++;
	if (n->accept_errors_logged == 0) {
		LOG_WARN("BRK-ACCEPT",
		    "accept failed: %s (open sockets %zu); "
		    "pausing the listener",
		    evutil_socket_error_to_string(err), n->conns.count);
	}
	n->accept_errors_logged++;
	evconnlistener_disable(l);
	event_add(n->accept_retry_ev, &tv);
}

/* ---- timers ---- */

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	brk_node *n = arg;

	(void)fd;
	(void)what;
	brk_conn_flush_all(&n->conns);
}

void
brk_node_want_flush(brk_node *n)
{
	event_active(n->flush_ev, EV_TIMEOUT, 0);
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	brk_node *n = arg;
	uint64_t now = pl_mono_ms();

	(void)fd;
	(void)what;
	brk_conn_sweep(&n->conns, now);
	/* Bursts (joins, fan-out) leave freed chunks scattered through the
	 * heap; hand them back so resident memory follows the load down. */
	malloc_trim(0);
	brk_ratelimit_sweep(n->ratelimit, (uint64_t)time(NULL) * 1000);
	if (n->accept_errors_logged > 1) {
		LOG_WARN("BRK-ACCEPT", "%llu accept failures in the last burst",
		    (unsigned long long)n->accept_errors_logged);
	}
	n->accept_errors_logged = 0;
}

static void
on_store(evutil_socket_t fd, short what, void *arg)
{
	brk_node *n = arg;

	(void)fd;
	(void)what;
	sto_comments_poll(n->comments);
}

/* ---- drain ---- */

static void
on_drain_check(evutil_socket_t fd, short what, void *arg)
{
	brk_node *n = arg;
	uint64_t waited = pl_mono_ms() - n->drain_started_ms;

	(void)fd;
	(void)what;
	if (brk_conn_count_ws(&n->conns) == 0 ||
	    waited >= (uint64_t)n->cfg->drain_timeout * 1000) {
		LOG_NOTICE("BRK-DRAINED",
		    "drain complete after %llu ms "
		    "(%zu sockets left)",
		    (unsigned long long)waited, n->conns.count);
		event_base_loopexit(n->base, NULL);
	}
}

void
brk_node_drain(brk_node *n)
{
	struct timeval tv = { 0, 50000 };

	if (n->draining) {
		return;
	}
	n->draining = 1;
	n->drain_started_ms = pl_mono_ms();
	LOG_NOTICE("BRK-DRAIN",
	    "draining: leaving the cluster and closing "
	    "%zu sockets",
	    n->conns.count);
	/* The listener stays open: probes must see /readyz answer 503, and
	 * upgrades are refused with 503 so load balancers move on. */
	brk_mesh_leave(n->mesh);
	/* 1012 (service restart): clients reconnect, to another node. */
	brk_conn_close_all(&n->conns, 1012, "node draining");
	n->drain_ev = event_new(n->base, -1, EV_PERSIST, on_drain_check, n);
	if (n->drain_ev) {
		event_add(n->drain_ev, &tv);
	}
}

void
brk_node_leave(brk_node *n)
{
	brk_mesh_leave(n->mesh);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	brk_node *n = arg;

	(void)what;
	if (n->draining) {
		LOG_NOTICE("BRK-SIGNAL", "signal %d during drain: exiting now",
		    (int)sig);
		event_base_loopexit(n->base, NULL);
		return;
	}
	brk_node_drain(n);
}

/* ---- create / destroy ---- */

static int
listen_on(brk_node *n, char *err, size_t errlen)
{
	struct addrinfo hints, *ai = NULL;
	char host[256], port[8];
	int p;

	if (brk_config_split_hostport(n->cfg->listen, host, sizeof(host), &p)) {
		snprintf(err, errlen,
		    "--listen: expected HOST:PORT, got \"%s\"", n->cfg->listen);
		return PL_EINVAL;
	}
	snprintf(port, sizeof(port), "%d", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &ai) != 0) {
		snprintf(err, errlen,
		    "--listen: \"%s\" is not a numeric "
		    "address",
		    host);
		return PL_EINVAL;
	}
	n->listener = evconnlistener_new_bind(n->base, on_accept, n,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    4096, ai->ai_addr, (int)ai->ai_addrlen);
	freeaddrinfo(ai);
	if (n->listener == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", n->cfg->listen,
		    strerror(errno));
		return PL_EIO;
	}
	evconnlistener_set_error_cb(n->listener, on_accept_error);
	return PL_OK;
}

static char *
default_name(void)
{
	char host[256];

	if (gethostname(host, sizeof(host)) != 0) {
		return strdup("parley");
	}
	host[sizeof(host) - 1] = '\0';
	return strdup(host);
}

static int
open_storage(brk_node *n, char *err, size_t errlen)
{
	sto_comments_opts o;

	memset(&o, 0, sizeof(o));
	o.node = n->name;
	if (sto_comments_open(&n->comments, n->cfg->data, &o, err, errlen)) {
		return PL_EIO;
	}
	n->store_ev = event_new(n->base, sto_comments_notify_fd(n->comments),
	    EV_READ | EV_PERSIST, on_store, n);
	if (n->store_ev == NULL || event_add(n->store_ev, NULL) != 0) {
		snprintf(err, errlen, "cannot watch the storage notify fd");
		return PL_EIO;
	}
	return PL_OK;
}

/* ---- presence hub ---- */

static void
presence_push(void *arg, void *to, const pl_slice *payload, size_t n)
{
	(void)arg;
	brk_channel_push_slices(to, "presence_state", payload, n);
}

static size_t
presence_broadcast(
    void *arg, const char *topic, const char *payload, size_t len)
{
	brk_node *n = arg;

	return brk_router_local_broadcast(
	    n->router, topic, "presence_diff", payload, len);
}

static void
presence_close(void *arg, uint64_t owner, const char *event)
{
	brk_node *n = arg;
	brk_channel *ch = brk_router_find_channel(n->router, owner);

	if (ch) {
		brk_channel_close(ch, event);
	}
}

static int
make_presence(brk_node *n)
{
	brk_presence_env env;

	memset(&env, 0, sizeof(env));
	env.base = n->base;
	env.tick_priority = 0; /* urgent: see new_base */
	env.node = n->name;
	/* A restart is a new replica: its vsn is the start time in µs. */
	env.vsn = pl_wall_ns() / 1000;
	env.tick_ms = n->cfg->presence_tick_ms;
	env.max_devices = n->cfg->max_devices;
	env.push = presence_push;
	env.broadcast = presence_broadcast;
	env.close = presence_close;
	env.arg = n;
	return brk_presence_create(&n->presence, &env);
}

/* Two priorities: timers (membership heartbeats, presence ticks, the
 * sweep) run at 0, socket and storage events at 1. A burst of socket work
 * yields every few milliseconds, so a heavy join storm cannot starve the
 * heartbeats and get this node declared dead by its peers. */
static struct event_base *
new_base(void)
{
	struct event_config *ec = event_config_new();
	struct timeval slice = { 0, 5000 };
	struct event_base *b = NULL;

	if (ec == NULL) {
		return NULL;
	}
	if (event_config_set_max_dispatch_interval(ec, &slice, -1, 1) == 0) {
		b = event_base_new_with_config(ec);
	}
	event_config_free(ec);
	if (b && event_base_priority_init(b, 2) != 0) {
		event_base_free(b);
		b = NULL;
	}
	return b;
}

/* Makes ev a timer-priority event (see new_base). */
void
brk_node_urgent(struct event *ev)
{
	event_priority_set(ev, 0);
}

static int
make_timers(brk_node *n)
{
	struct timeval sec = { 1, 0 };

	n->flush_ev = event_new(n->base, -1, 0, on_flush, n);
	n->sweep_ev = event_new(n->base, -1, EV_PERSIST, on_sweep, n);
	n->accept_retry_ev = event_new(n->base, -1, 0, on_accept_retry, n);
	n->sigterm_ev = evsignal_new(n->base, SIGTERM, on_signal, n);
	n->sigint_ev = evsignal_new(n->base, SIGINT, on_signal, n);
	if (!n->flush_ev || !n->sweep_ev || !n->accept_retry_ev ||
	    !n->sigterm_ev || !n->sigint_ev) {
		return PL_ENOMEM;
	}
	brk_node_urgent(n->sweep_ev);
	brk_node_urgent(n->sigterm_ev);
	brk_node_urgent(n->sigint_ev);
	event_add(n->sweep_ev, &sec);
	event_add(n->sigterm_ev, NULL);
	event_add(n->sigint_ev, NULL);
	return PL_OK;
}

/* Address flags are checked before anything is created on disk. */
static int
check_addresses(const brk_config *cfg, char *err, size_t errlen)
{
	char host[256];
	int port;

	if (brk_config_split_hostport(cfg->listen, host, sizeof(host), &port)) {
		snprintf(err, errlen,
		    "--listen: expected HOST:PORT, got \"%s\"", cfg->listen);
		return PL_EINVAL;
	}
	if (brk_config_split_hostport(cfg->admin, host, sizeof(host), &port)) {
		snprintf(err, errlen, "--admin: expected HOST:PORT, got \"%s\"",
		    cfg->admin);
		return PL_EINVAL;
	}
	return PL_OK;
}

int
brk_node_create(brk_node **out, const brk_config *cfg, char *err, size_t errlen)
{
	brk_node *n = calloc(1, sizeof(*n));
	unsigned limit, window_ms;

	if (n == NULL) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	*out = n;
	n->cfg = cfg;
	if (check_addresses(cfg, err, errlen) != PL_OK) {
		return PL_EINVAL;
	}
	n->name = cfg->node_name ? strdup(cfg->node_name) : default_name();
	pl_log_set_node(n->name);
	signal(SIGPIPE, SIG_IGN);
	if (brk_ratelimit_parse(cfg->rate_limit, &limit, &window_ms) != PL_OK) {
		snprintf(err, errlen,
		    "--rate-limit: expected N/SECONDS like "
		    "30/60, got \"%s\"",
		    cfg->rate_limit);
		return PL_EINVAL;
	}
	if (brk_ratelimit_create(&n->ratelimit, limit, window_ms) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if (brk_auth_load_secret(cfg->jwt_secret, cfg->data, &n->secret,
		&n->secret_len, err, errlen) != PL_OK) {
		return PL_EINVAL;
	}
	n->base = new_base();
	if (n->base == NULL || make_timers(n) != PL_OK) {
		snprintf(err, errlen, "cannot create the event loop");
		return PL_ENOMEM;
	}
	if (open_storage(n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	if (brk_router_create(&n->router, n) != PL_OK ||
	    make_presence(n) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	brk_channels_register(n->router);
	if (brk_mesh_create(&n->mesh, n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	if (listen_on(n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	if (brk_admin_create(&n->admin, n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	if (cfg->firebase_url || cfg->firebase_credentials) {
		LOG_WARN("BRK-FIREBASE",
		    "Firebase sync is not built yet: "
		    "--firebase-url and --firebase-credentials are ignored");
	}
	LOG_NOTICE("BRK-START",
	    "node %s serving WebSocket on %s, admin on %s, "
	    "data in %s",
	    n->name, cfg->listen, cfg->admin, cfg->data);
	return PL_OK;
}

int
brk_node_run(brk_node *n)
{
	event_base_dispatch(n->base);
	return n->exit_code;
}

static void
free_event(struct event *ev)
{
	if (ev) {
		event_free(ev);
	}
}

void
brk_node_destroy(brk_node *n)
{
	if (n == NULL) {
		return;
	}
	if (n->listener) {
		evconnlistener_free(n->listener);
	}
	brk_conn_free_all(&n->conns);
	brk_admin_destroy(n->admin);
	brk_mesh_destroy(n->mesh);
	brk_presence_destroy(n->presence);
	brk_router_destroy(n->router);
	/* Closing the store flushes what is queued before the process ends. */
	if (n->comments) {
		sto_comments_close(n->comments);
	}
	free_event(n->flush_ev);
	free_event(n->sweep_ev);
	free_event(n->store_ev);
	free_event(n->drain_ev);
	free_event(n->sigterm_ev);
	free_event(n->sigint_ev);
	free_event(n->accept_retry_ev);
	if (n->base) {
		event_base_free(n->base);
	}
	brk_ratelimit_destroy(n->ratelimit);
	free(n->secret);
	free(n->name);
	free(n);
}

/* ---- accessors ---- */

struct event_base *
brk_node_base(brk_node *n)
{
	return n->base;
}
const brk_config *
brk_node_config(const brk_node *n)
{
	return n->cfg;
}
const char *
brk_node_name(const brk_node *n)
{
	return n->name;
}
brk_router *
brk_node_router(brk_node *n)
{
	return n->router;
}
brk_presence *
brk_node_presence(brk_node *n)
{
	return n->presence;
}
brk_ratelimit *
brk_node_ratelimit(brk_node *n)
{
	return n->ratelimit;
}
sto_comments *
brk_node_comments(brk_node *n)
{
	return n->comments;
}
brk_mesh *
brk_node_mesh(brk_node *n)
{
	return n->mesh;
}
brk_node_stats *
brk_node_stats_of(brk_node *n)
{
	return &n->stats;
}
struct brk_conn_list *
brk_node_conns(brk_node *n)
{
	return &n->conns;
}
int
brk_node_draining(const brk_node *n)
{
	return n->draining;
}

const uint8_t *
brk_node_secret(const brk_node *n, size_t *len)
{
	*len = n->secret_len;
	return n->secret;
}

int
brk_node_ready(const brk_node *n)
{
	return !n->draining && n->comments != NULL && brk_mesh_joined(n->mesh);
}
