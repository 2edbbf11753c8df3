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
#include "broker/fbsync.h"
#include "broker/fetch.h"
#include "broker/gauth.h"
#include "broker/presence.h"
#include "broker/ratelimit.h"
#include "broker/router.h"
#include "broker/mesh.h"
#include "broker/secrets.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/file.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/version.h"
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
#include <stddef.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct brk_node {
	const brk_config *cfg;
	char *name;
	char *origin; /* this process's comments: "<name>~<random>" */
	struct event_base *base;
	struct evconnlistener *listener;
	brk_router *router;
	brk_channels *channels;
	brk_presence *presence;
	brk_ratelimit *ratelimit;
	sto_comments *comments;
	brk_mesh *mesh;
	brk_admin *admin;
	brk_keyring *keys;
	char *firebase_auth; /* from --firebase-auth-file, or the flag */
	brk_fetch *fetch;    /* HTTP client for Firebase and OAuth */
	brk_gauth *gauth;    /* --firebase-credentials */
	brk_fbsync *fbsync;  /* the Firebase sync queue (or its state) */
	brk_conn_list conns;
	brk_node_stats stats;
	pl_metrics *metrics;
	pl_metric *loop_lag;
	sto_comments_stats sto_snap;
	uint64_t lag_due_us;
	char *data_file; /* <data>/data.mdb, for its size */
	char readyz_text[320];
	struct event *flush_ev, *sweep_ev, *store_ev, *drain_ev, *lag_ev;
	struct event *sigterm_ev, *sigint_ev, *accept_retry_ev;
	struct event *sighup_ev, *sigusr1_ev, *sigusr2_ev;
	int draining;
	int left;
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
	brk_conn_accept(&n->conns, fd, sa, (socklen_t)salen);
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
	pl_log_flush_summaries();
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
	if (!n->left && !n->draining) {
		LOG_NOTICE("BRK-LEAVE",
		    "left the cluster: /readyz answers 503 and new upgrades "
		    "are refused; %zu open sockets are kept",
		    n->conns.count);
	}
	n->left = 1;
	brk_mesh_leave(n->mesh);
}

/* ---- SIGHUP: reopen the log, reload secret files ---- */

/* At start the data-dir secret is generated if missing; on a reload it
 * never is (a deleted file must not silently become a new secret). */
static int
load_keys(const brk_config *cfg, bool create, brk_keyring **out, char *err,
    size_t errlen)
{
	brk_secret_src src = { cfg->jwt_secret, cfg->jwt_secret_file, cfg->data,
		create };

	return brk_keyring_load(&src, out, err, errlen);
}

static void
log_keys(const char *what, const brk_keyring *k)
{
	char fp[BRK_FINGERPRINT_LEN + 1];
	size_t n;

	brk_keyring_keys(k, &n);
	brk_keyring_fingerprint(k, fp);
	LOG_NOTICE("BRK-SECRETS",
	    "JWT secrets %s from %s: %zu secret(s), signing fingerprint %s",
	    what, brk_keyring_origin(k), n, fp);
}

static int
load_firebase_auth(const brk_config *cfg, char **out, char *err, size_t errlen)
{
	size_t len;

	*out = NULL;
	if (cfg->firebase_auth && cfg->firebase_auth_file) {
		snprintf(err, errlen,
		    "give --firebase-auth or --firebase-auth-file, not both");
		return PL_EINVAL;
	}
	if (cfg->firebase_auth_file) {
		return pl_file_read_secret(cfg->firebase_auth_file, 4096,
		    "BRK-SECRETPERM", out, &len, err, errlen);
	}
	if (cfg->firebase_auth && (*out = strdup(cfg->firebase_auth)) == NULL) {
		return PL_ENOMEM;
	}
	return PL_OK;
}

void
brk_node_reload(brk_node *n)
{
	brk_keyring *k = NULL;
	char err[512], *fb = NULL;

	if (pl_log_reopen(err, sizeof(err)) != 0) {
		LOG_ERR("BRK-RELOAD", "log file not reopened: %s", err);
	} else if (n->cfg->log_file) {
		LOG_NOTICE(
		    "BRK-RELOAD", "log file %s reopened", n->cfg->log_file);
	}
	if (n->cfg->jwt_secret) {
		LOG_INFO("BRK-RELOAD",
		    "JWT secret comes from --jwt-secret: nothing to reload");
	} else if (load_keys(n->cfg, false, &k, err, sizeof(err)) != PL_OK) {
		LOG_ERR("BRK-RELOAD",
		    "JWT secrets not reloaded, keeping the "
		    "current ones: %s",
		    err);
	} else {
		log_keys("reloaded", k);
		brk_keyring_destroy(n->keys);
		n->keys = k;
		brk_mesh_secret_changed(n->mesh);
	}
	brk_admin_reload(n->admin);
	if (n->cfg->firebase_auth_file) {
		if (load_firebase_auth(n->cfg, &fb, err, sizeof(err)) !=
		    PL_OK) {
			LOG_ERR("BRK-RELOAD",
			    "Firebase token not reloaded, keeping the current "
			    "one: %s",
			    err);
		} else {
			free(n->firebase_auth);
			n->firebase_auth = fb;
			LOG_NOTICE("BRK-RELOAD",
			    "Firebase token reloaded from %s",
			    n->cfg->firebase_auth_file);
		}
	}
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	LOG_NOTICE("BRK-SIGNAL",
	    "SIGHUP: reopening the log and reloading "
	    "secret files");
	brk_node_reload(arg);
}

/* SIGUSR1/2 would end the process by default: supervisors and scripts
 * send them for log rotation or dumps, so they are caught and named. */
static void
on_usr(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	LOG_NOTICE("BRK-SIGNAL",
	    "%s ignored (parley has no use for it; "
	    "SIGHUP reloads, SIGTERM drains)",
	    sig == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
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

/* ---- metrics ---- */

#define LAG_PERIOD_US 250000

/* A normal-priority timer: how late it runs is how long socket and storage
 * events wait for the loop. */
static void
on_lag(evutil_socket_t fd, short what, void *arg)
{
	brk_node *n = arg;
	uint64_t now = pl_mono_us();
	struct timeval tv = { 0, LAG_PERIOD_US };

	(void)fd;
	(void)what;
	pl_histogram_observe(
	    n->loop_lag, now > n->lag_due_us ? (now - n->lag_due_us) / 1e6 : 0);
	n->lag_due_us = now + LAG_PERIOD_US;
	event_add(n->lag_ev, &tv);
}

static double
ready_value(void *arg)
{
	return brk_node_ready(arg);
}

static double
data_bytes(void *arg)
{
	brk_node *n = arg;
	struct stat st;

	return n->data_file && stat(n->data_file, &st) == 0 ? (double)st.st_size
							    : 0;
}

static double
handshakes_open(void *arg)
{
	return (double)((brk_node *)arg)->conns.handshakes;
}

static double
queued_bytes(void *arg)
{
	return (double)((brk_node *)arg)->conns.out.bytes;
}

static double
queued_budget(void *arg)
{
	return (double)((brk_node *)arg)->conns.out_budget;
}

static int
make_metrics(brk_node *n)
{
	brk_node_stats_views v = { ready_value, handshakes_open, queued_bytes,
		queued_budget, data_bytes, n };

	if (pl_metrics_create(&n->metrics) != PL_OK) {
		return PL_ENOMEM;
	}
	return brk_node_stats_register(n->metrics, &n->stats, &v, &n->loop_lag);
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

static void
collect_storage(void *arg)
{
	brk_node *n = arg;

	sto_comments_stats_get(n->comments, &n->sto_snap);
}

static int
storage_metrics(brk_node *n)
{
	pl_metrics *r = n->metrics;
	sto_comments_stats *s = &n->sto_snap;
	int rc = 0;

	rc |= pl_metrics_on_collect(r, collect_storage, n);
	rc |= pl_metrics_counter_ptr(r, "parley_storage_commits_total",
	    "LMDB write transactions committed (one durable sync each).",
	    &s->commits, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_storage_committed_ops_total",
	    "Operations made durable (comments, replicas, watermarks).",
	    &s->committed_ops, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_storage_failed_ops_total",
	    "Operations whose commit failed.", &s->failed_ops, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_storage_map_grows_total",
	    "Times the LMDB map was doubled.", &s->map_grows, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_storage_map_size_bytes",
	    "Current LMDB map size.", &s->map_size, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_storage_queued_ops",
	    "Operations queued for the writer, not yet committed.", &s->queued,
	    NULL);
	return rc ? PL_ENOMEM : PL_OK;
}

/* This process's comments are its own origin, "<name>~<random>": a
 * restart, a wiped disk or a restore from an old backup can then never mint
 * an (origin, seq) the cluster already holds (see cluster/replication.h). */
static int
make_origin(brk_node *n)
{
	uint32_t rnd = 0;

	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd)) {
		rnd = (uint32_t)pl_wall_ns() ^ (uint32_t)getpid();
	}
	if (asprintf(&n->origin, "%s~%08x", n->name, rnd) < 0) {
		n->origin = NULL;
		return PL_ENOMEM;
	}
	return PL_OK;
}

static int
open_storage(brk_node *n, char *err, size_t errlen)
{
	sto_comments_opts o;

	memset(&o, 0, sizeof(o));
	o.node = n->origin;
	o.commit_seconds =
	    pl_metrics_histogram(n->metrics, "parley_storage_commit_seconds",
		"Duration of each LMDB commit: page writes and fsync.",
		pl_metrics_latency_buckets, pl_metrics_latency_nbuckets, NULL);
	if (sto_comments_open(&n->comments, n->cfg->data, &o, err, errlen)) {
		return PL_EIO;
	}
	if (storage_metrics(n) != PL_OK ||
	    asprintf(&n->data_file, "%s/data.mdb", n->cfg->data) < 0) {
		n->data_file = NULL;
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
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
	brk_channels_presence_env(&env, n->router);
	return brk_presence_create(&n->presence, &env);
}

static int
make_channels(brk_node *n)
{
	brk_channels_deps d = { n->router, n->comments, n->presence,
		n->ratelimit, &n->stats, n->cfg->max_comment_bytes,
		n->cfg->max_devices, n->cfg->ack_replicas };

	return brk_channels_create(&n->channels, &d);
}

/* ---- what sockets ask of the node ---- */

static void
conns_want_flush(void *arg)
{
	brk_node_want_flush(arg);
}

static const struct brk_key *
conns_keys(void *arg, size_t *count)
{
	return brk_node_keys(arg, count);
}

static int
conns_accepting(void *arg)
{
	return brk_node_accepting(arg);
}

static int
conns_draining(void *arg)
{
	return brk_node_draining(arg);
}

static const char *
conns_readyz(void *arg, int *status)
{
	return brk_node_readyz(arg, status);
}

static int
make_conns(brk_node *n)
{
	brk_conn_env env = { n->base, n->cfg, &n->stats, n->router,
		conns_want_flush, conns_keys, conns_accepting, conns_draining,
		conns_readyz, n };

	return brk_conn_list_init(&n->conns, &env);
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
	n->lag_ev = event_new(n->base, -1, 0, on_lag, n);
	n->sigterm_ev = evsignal_new(n->base, SIGTERM, on_signal, n);
	n->sigint_ev = evsignal_new(n->base, SIGINT, on_signal, n);
	n->sighup_ev = evsignal_new(n->base, SIGHUP, on_hup, n);
	n->sigusr1_ev = evsignal_new(n->base, SIGUSR1, on_usr, n);
	n->sigusr2_ev = evsignal_new(n->base, SIGUSR2, on_usr, n);
	if (!n->flush_ev || !n->sweep_ev || !n->accept_retry_ev ||
	    !n->sigterm_ev || !n->sigint_ev || !n->lag_ev || !n->sighup_ev ||
	    !n->sigusr1_ev || !n->sigusr2_ev) {
		return PL_ENOMEM;
	}
	n->lag_due_us = pl_mono_us() + LAG_PERIOD_US;
	event_add(n->lag_ev, &(struct timeval){ 0, LAG_PERIOD_US });
	brk_node_urgent(n->sweep_ev);
	brk_node_urgent(n->sigterm_ev);
	brk_node_urgent(n->sigint_ev);
	event_add(n->sweep_ev, &sec);
	event_add(n->sigterm_ev, NULL);
	event_add(n->sigint_ev, NULL);
	event_add(n->sighup_ev, NULL);
	event_add(n->sigusr1_ev, NULL);
	event_add(n->sigusr2_ev, NULL);
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

/* ---- Firebase ---- */

static const char *
firebase_secret(void *arg)
{
	return ((brk_node *)arg)->firebase_auth;
}

static void
firebase_token(void *arg)
{
	brk_fbsync_kick(((brk_node *)arg)->fbsync);
}

/* The HTTP client and the service account, before anything is created on
 * disk: a bad credentials file stops the start with its field named. */
static int
make_firebase_client(brk_node *n, char *err, size_t errlen)
{
	const brk_config *cfg = n->cfg;
	brk_fetch_opts fo;
	brk_gauth_opts go;
	int rc;

	if (cfg->firebase_credentials &&
	    (cfg->firebase_auth || cfg->firebase_auth_file)) {
		snprintf(err, errlen,
		    "give --firebase-credentials or --firebase-auth[-file], "
		    "not both");
		return PL_EINVAL;
	}
	if (cfg->firebase_url == NULL &&
	    (cfg->firebase_credentials || n->firebase_auth)) {
		LOG_WARN("BRK-FIREBASE",
		    "Firebase credentials given without --firebase-url: the "
		    "sync is off and they are not used");
	}
	memset(&fo, 0, sizeof(fo));
	fo.base = n->base;
	fo.max_host_conns = (unsigned)cfg->firebase_max_inflight + 1;
	fo.user_agent = "parley/" PARLEY_VERSION;
	if (cfg->firebase_url &&
	    (rc = brk_fetch_create(&n->fetch, &fo, err, errlen)) != PL_OK) {
		return rc;
	}
	if (cfg->firebase_credentials == NULL) {
		return PL_OK;
	}
	memset(&go, 0, sizeof(go));
	go.base = n->base;
	go.fetch = n->fetch;
	go.path = cfg->firebase_credentials;
	go.retry_max_ms = (uint32_t)cfg->firebase_retry_max_ms;
	go.on_token = firebase_token;
	go.arg = n;
	return brk_gauth_create(&n->gauth, &go, err, errlen);
}

static int
make_firebase_sync(brk_node *n, char *err, size_t errlen)
{
	const brk_config *cfg = n->cfg;
	brk_fbsync_env e;
	int rc;

	memset(&e, 0, sizeof(e));
	e.base = n->base;
	e.store = n->comments;
	e.marks = brk_mesh_syncmarks(n->mesh);
	e.self = n->name;
	e.url = cfg->firebase_url;
	e.fetch = n->fetch;
	e.gauth = n->gauth;
	e.auth_secret = firebase_secret;
	e.auth_arg = n;
	e.batch_max = (unsigned)cfg->firebase_batch;
	e.batch_bytes = (size_t)cfg->firebase_batch_bytes;
	e.inflight_max = (unsigned)cfg->firebase_max_inflight;
	e.timeout_ms = (uint32_t)cfg->firebase_timeout * 1000;
	e.retry_max_ms = (uint32_t)cfg->firebase_retry_max_ms;
	e.metrics = n->metrics;
	if ((rc = brk_fbsync_create(&n->fbsync, &e, err, errlen)) != PL_OK) {
		return rc;
	}
	if (n->gauth != NULL && cfg->firebase_url != NULL) {
		brk_gauth_start(n->gauth);
	}
	return PL_OK;
}

static int
build(brk_node *n, const brk_config *cfg, char *err, size_t errlen)
{
	unsigned limit, window_ms;

	n->cfg = cfg;
	if (check_addresses(cfg, err, errlen) != PL_OK) {
		return PL_EINVAL;
	}
	n->name = cfg->node_name ? strdup(cfg->node_name) : default_name();
	pl_log_set_node(n->name);
	if (make_origin(n) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if (make_metrics(n) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
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
	if (load_keys(cfg, true, &n->keys, err, errlen) != PL_OK ||
	    load_firebase_auth(cfg, &n->firebase_auth, err, errlen) != PL_OK) {
		return PL_EINVAL;
	}
	log_keys("loaded", n->keys);
	if (brk_config_in_argv(cfg, "jwt-secret") ||
	    brk_config_in_argv(cfg, "firebase-auth")) {
		LOG_WARN("BRK-SECRETARGV",
		    "a secret was given as a command-line flag, which every "
		    "user of this machine can read with ps: use "
		    "--jwt-secret-file / --firebase-auth-file (or the "
		    "PARLEY_* environment) instead");
	}
	n->base = new_base();
	if (n->base == NULL || make_timers(n) != PL_OK) {
		snprintf(err, errlen, "cannot create the event loop");
		return PL_ENOMEM;
	}
	if (make_firebase_client(n, err, errlen) != PL_OK) {
		return PL_EINVAL;
	}
	if (open_storage(n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	if (brk_router_create(&n->router, n->metrics,
		(uint32_t)n->cfg->max_channels) != PL_OK ||
	    make_presence(n) != PL_OK || make_channels(n) != PL_OK ||
	    make_conns(n) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if (brk_mesh_create(&n->mesh, n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	brk_channels_set_replication(
	    n->channels, brk_mesh_replication(n->mesh));
	if (make_firebase_sync(n, err, errlen) != PL_OK) {
		return PL_EINVAL;
	}
	if (listen_on(n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	if (brk_admin_create(&n->admin, n, err, errlen) != PL_OK) {
		return PL_EIO;
	}
	LOG_NOTICE("BRK-START",
	    "node %s serving WebSocket on %s, admin on %s, "
	    "data in %s",
	    n->name, cfg->listen, cfg->admin, cfg->data);
	return PL_OK;
}

int
brk_node_create(brk_node **out, const brk_config *cfg, char *err, size_t errlen)
{
	brk_node *n = calloc(1, sizeof(*n));
	int rc;

	*out = NULL;
	if (n == NULL) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if ((rc = build(n, cfg, err, errlen)) != PL_OK) {
		brk_node_destroy(n);
		return rc;
	}
	*out = n;
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
	brk_conn_list_fini(&n->conns);
	brk_admin_destroy(n->admin);
	/* The queue borrows the cluster's sync state and the HTTP client: it
	 * stops first. */
	brk_fbsync_destroy(n->fbsync);
	n->fbsync = NULL;
	brk_gauth_destroy(n->gauth);
	brk_fetch_destroy(n->fetch);
	/* Closing the store flushes what is queued before the process ends;
	 * its last completions still reach the router and the cluster (a
	 * comment made durable now is sent to the peers before we leave). */
	if (n->comments) {
		sto_comments_close(n->comments);
		n->comments = NULL;
	}
	if (n->channels) {
		brk_channels_set_replication(n->channels, NULL);
	}
	brk_mesh_destroy(n->mesh);
	n->mesh = NULL;
	brk_presence_destroy(n->presence);
	brk_router_destroy(n->router);
	brk_channels_destroy(n->channels);
	free_event(n->flush_ev);
	free_event(n->sweep_ev);
	free_event(n->store_ev);
	free_event(n->drain_ev);
	free_event(n->sigterm_ev);
	free_event(n->sigint_ev);
	free_event(n->sighup_ev);
	free_event(n->sigusr1_ev);
	free_event(n->sigusr2_ev);
	free_event(n->accept_retry_ev);
	free_event(n->lag_ev);
	if (n->base) {
		event_base_free(n->base);
	}
	brk_ratelimit_destroy(n->ratelimit);
	/* Last: the storage writer observed into its histograms until close. */
	pl_metrics_destroy(n->metrics);
	free(n->data_file);
	brk_keyring_destroy(n->keys);
	if (n->firebase_auth) {
		memset(n->firebase_auth, 0, strlen(n->firebase_auth));
	}
	free(n->firebase_auth);
	free(n->name);
	free(n->origin);
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
brk_node_origin(const brk_node *n)
{
	return n->origin;
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
brk_fbsync *
brk_node_fbsync(brk_node *n)
{
	return n->fbsync;
}
brk_node_stats *
brk_node_stats_of(brk_node *n)
{
	return &n->stats;
}
pl_metrics *
brk_node_metrics(brk_node *n)
{
	return n->metrics;
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

const brk_key *
brk_node_keys(const brk_node *n, size_t *count)
{
	return brk_keyring_keys(n->keys, count);
}

void
brk_node_fingerprint(const brk_node *n, char *out)
{
	brk_keyring_fingerprint(n->keys, out);
}

const char *
brk_node_firebase_auth(const brk_node *n)
{
	return n->firebase_auth;
}

int
brk_node_accepting(const brk_node *n)
{
	return !n->draining && !n->left;
}

const char *
brk_node_readyz(brk_node *n, int *status)
{
	char peers[200];
	size_t k;

	*status = brk_node_ready(n) ? 200 : 503;
	k = brk_mesh_secret_mismatches(n->mesh, peers, sizeof(peers));
	if (k == 0) {
		return *status == 200 ? "ready\n" : "not ready\n";
	}
	/* A warning, not a failure: the node serves its own clients. */
	snprintf(n->readyz_text, sizeof(n->readyz_text),
	    "%s\nwarning: %zu peer(s) sign client tokens with another JWT "
	    "secret: %s\n",
	    *status == 200 ? "ready" : "not ready", k, peers);
	return n->readyz_text;
}

int
brk_node_ready(const brk_node *n)
{
	return !n->draining && !n->left && n->comments != NULL &&
	    brk_mesh_joined(n->mesh) && brk_mesh_caught_up(n->mesh);
}
