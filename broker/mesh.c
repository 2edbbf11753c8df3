/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster glue on the loop thread. cluster/ knows nothing of libevent: we
 * watch its fd and call its tick, create its services (presence replication
 * in cluster/tracker, secret fingerprints in cluster/nodeinfo, the Firebase
 * sync state in cluster/syncmarks, which broker/fbsync drives) and hand
 * channel broadcasts across. The protocols themselves live in cluster/. */
#include "broker/mesh.h"

#include "broker/node.h"
#include "broker/presence.h"
#include "broker/ratelimit.h"
#include "broker/router.h"
#include "broker/secrets.h"
#include "cluster/cluster.h"
#include "cluster/nodeinfo.h"
#include "cluster/presence.h"
#include "cluster/ratesync.h"
#include "cluster/replication.h"
#include "cluster/syncmarks.h"
#include "cluster/tracker.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct brk_mesh {
	brk_node *node;
	clu_cluster *clu;
	struct event *fd_ev, *tick_ev;
	clu_tracker *tracker;
	clu_replication *repl;
	clu_ratesync *rates;
	struct event *rate_ev; /* sends a burst's rate-limit counts */
	int left;
	clu_nodeinfo *info;     /* fingerprints of the peers' JWT secrets */
	clu_syncmarks *marks;   /* the Firebase sync state (broker/fbsync) */
	clu_cluster_stats snap; /* refreshed for each /metrics render */
	clu_replication_stats rsnap;
	clu_ratesync_stats qsnap;
	uint64_t lag_s, caught_up;
	uint64_t members[4]; /* alive, suspect, dead, left */
};

static void
after_merge(void *arg)
{
	brk_mesh *m = arg;

	brk_presence_after_merge(brk_node_presence(m->node));
}

/* ---- membership ---- */

static void
on_member_change(void *arg, const char *name, clu_status old, clu_status st)
{
	brk_mesh *m = arg;

	if (strcmp(name, clu_cluster_self_name(m->clu)) != 0) {
		LOG_INFO("BRK-MEMBER", "member %s: %s -> %s", name,
		    clu_status_name(old), clu_status_name(st));
	}
}

/* A new comment carries its acceptance time ("inserted_at", unix ms set
 * by the node that accepted it): now minus that is how long it took to
 * reach this node's subscribers. */
static void
observe_delivery(brk_mesh *m, const char *payload, size_t len)
{
	static const char key[] = "\"inserted_at\":";
	const char *p = memmem(payload, len, key, sizeof(key) - 1);
	long long at;
	uint64_t now;

	if (p == NULL) {
		return;
	}
	p += sizeof(key) - 1;
	if ((size_t)(p - payload) >= len || sscanf(p, "%lld", &at) != 1) {
		return;
	}
	now = pl_wall_ms();
	if (at > 0 && now >= (uint64_t)at) {
		pl_histogram_observe(
		    brk_node_stats_of(m->node)->delivery_seconds,
		    (double)(now - (uint64_t)at) / 1000.0);
	}
}

static void
on_broadcast(void *arg, const char *publisher, uint64_t seq, const char *topic,
    const char *event, const char *payload, size_t len)
{
	brk_mesh *m = arg;

	(void)publisher;
	(void)seq;
	if (strcmp(event, "new_comment") == 0) {
		observe_delivery(m, payload, len);
	}
	brk_router_local_broadcast(
	    brk_node_router(m->node), topic, event, payload, len);
}

static void
forward(void *arg, const char *topic, const char *event, const char *payload,
    size_t len)
{
	brk_mesh *m = arg;

	clu_cluster_broadcast(m->clu, topic, event, payload, len);
}

/* ---- loop integration ---- */

static void
on_fd(evutil_socket_t fd, short what, void *arg)
{
	brk_mesh *m = arg;

	(void)fd;
	(void)what;
	clu_cluster_poll(m->clu, brk_node_now_ms(m->node));
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	brk_mesh *m = arg;

	(void)fd;
	(void)what;
	clu_cluster_tick(m->clu, brk_node_now_ms(m->node));
}

/* ---- metrics ---- */

static void
collect(void *arg)
{
	brk_mesh *m = arg;

	clu_cluster_stats_get(m->clu, &m->snap);
	clu_replication_stats_get(m->repl, &m->rsnap);
	clu_ratesync_stats_get(m->rates, &m->qsnap);
	m->lag_s = m->rsnap.lag_ms / 1000;
	m->caught_up = m->rsnap.caught_up;
	m->members[0] = m->snap.members_alive;
	m->members[1] = m->snap.members_suspect;
	m->members[2] = m->snap.members_dead;
	m->members[3] = m->snap.members_left;
}

static double
is_leader(void *arg)
{
	brk_mesh *m = arg;
	const char *l = clu_cluster_leader(m->clu, NULL);

	return l && strcmp(l, clu_cluster_self_name(m->clu)) == 0;
}

static double
mismatched(void *arg)
{
	brk_mesh *m = arg;

	return (double)clu_nodeinfo_mismatches(m->info, NULL, NULL);
}

static int
register_replication(brk_mesh *m, pl_metrics *r)
{
	clu_replication_stats *s = &m->rsnap;
	const char *rep = "parley_replication_comments_total";
	const char *rep_help = "Comment copies from other nodes, by outcome "
			       "(stored, duplicate, conflict).";
	int rc = 0;

	rc |= pl_metrics_counter_ptr(
	    r, rep, rep_help, &s->stored, "outcome", "stored", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, rep, rep_help, &s->duplicates, "outcome", "duplicate", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, rep, rep_help, &s->conflicts, "outcome", "conflict", NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_replication_malformed_total",
	    "Replication messages refused as malformed.", &s->malformed, NULL);
	rc |=
	    pl_metrics_counter_ptr(r, "parley_replication_catchup_bytes_total",
		"Bytes of catch-up chunks received.", &s->catchup_bytes, NULL);
	rc |= pl_metrics_counter_ptr(r,
	    "parley_replication_catchup_comments_total",
	    "Comments received in catch-up chunks.", &s->catchup_comments,
	    NULL);
	rc |=
	    pl_metrics_counter_ptr(r, "parley_replication_pull_failures_total",
		"Catch-up chunks asked for that did not come.",
		&s->pull_failures, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_replication_lag_comments",
	    "Comments the best alive peer holds contiguously beyond us, summed "
	    "over origins.",
	    &s->lag_comments, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_replication_lag_seconds",
	    "How long the longest-lagging origin has been behind a peer.",
	    &m->lag_s, NULL);
	rc |= pl_metrics_gauge_ptr(r, "parley_replication_caught_up",
	    "1 once this node has caught up with its peers' history.",
	    &m->caught_up, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_replication_ack_timeouts_total",
	    "Comments answered unavailable because --ack-replicas nodes did "
	    "not hold them in time.",
	    &s->ack_timeouts, NULL);
	return rc;
}

static int
register_ratesync(brk_mesh *m, pl_metrics *r)
{
	clu_ratesync_stats *s = &m->qsnap;
	const char *name = "parley_ratelimit_cluster_counts_total";
	const char *help = "Rate-limit counts exchanged with other nodes: "
			   "sent, received, refused (malformed or another "
			   "--rate-limit window).";
	int rc = 0;

	rc |= pl_metrics_counter_ptr(
	    r, name, help, &s->sent, "direction", "sent", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, name, help, &s->received, "direction", "received", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, name, help, &s->refused, "direction", "refused", NULL);
	rc |=
	    pl_metrics_counter_ptr(r, "parley_ratelimit_cluster_resends_total",
		"Repeats of every current count after a member turned alive.",
		&s->resends, NULL);
	return rc;
}

static int
register_metrics(brk_mesh *m)
{
	static const char *const status[] = { "alive", "suspect", "dead",
		"left" };
	pl_metrics *r = brk_node_metrics(m->node);
	clu_cluster_stats *s = &m->snap;
	const char *disc = "parley_cluster_messages_discarded_total";
	const char *disc_help = "Cluster messages received and not used, by "
				"reason.";
	int rc = 0;

	rc |= pl_metrics_on_collect(r, collect, m);
	rc |= pl_metrics_gauge_fn(r, "parley_jwt_secret_mismatched_peers",
	    "Live members that sign client tokens with another JWT secret.",
	    mismatched, m, NULL);
	rc |= pl_metrics_gauge_fn(r, "parley_is_leader",
	    "1 while this node is the cluster's leader in its own view.",
	    is_leader, m, NULL);
	for (int i = 0; i < 4; i++) {
		rc |= pl_metrics_gauge_ptr(r, "parley_cluster_members",
		    "Members in this node's view (itself included), by status.",
		    &m->members[i], "status", status[i], NULL);
	}
	rc |= pl_metrics_counter_ptr(r, "parley_cluster_messages_sent_total",
	    "Messages handed to the cluster bus.", &s->sent, NULL);
	rc |=
	    pl_metrics_counter_ptr(r, "parley_cluster_messages_received_total",
		"Messages taken from the cluster bus.", &s->received, NULL);
	rc |= pl_metrics_counter_ptr(
	    r, disc, disc_help, &s->malformed, "reason", "malformed", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, disc, disc_help, &s->unknown, "reason", "unknown", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, disc, disc_help, &s->dropped, "reason", "queue_full", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, disc, disc_help, &s->duplicates, "reason", "duplicate", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, disc, disc_help, &s->refused, "reason", "refused", NULL);
	rc |= pl_metrics_counter_ptr(
	    r, disc, disc_help, &s->blocked, "reason", "blocked", NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_cluster_broadcast_gaps_total",
	    "Broadcasts another node sent that never arrived here.", &s->gaps,
	    NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_cluster_peers_cut_off_total",
	    "Bus connections closed for sending garbage.", &s->cut_off_peers,
	    NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_cluster_name_conflicts_total",
	    "Messages refused because two live nodes share a name.",
	    &s->name_conflicts, NULL);
	rc |= pl_metrics_counter_ptr(r, "parley_cluster_broadcasts_sent_total",
	    "Channel broadcasts sent to other nodes.", &s->broadcasts_sent,
	    NULL);
	rc |= pl_metrics_counter_ptr(r,
	    "parley_cluster_broadcasts_delivered_total",
	    "Channel broadcasts from other nodes delivered here.",
	    &s->broadcasts_delivered, NULL);
	rc |= pl_metrics_counter_ptr(r,
	    "parley_cluster_bus_received_bytes_total",
	    "Bytes of cluster bus frames received.", &s->bus_bytes_in, NULL);
	rc |= pl_metrics_counter_ptr(r,
	    "parley_cluster_direct_received_bytes_total",
	    "Bytes received on the addressed path (catch-up requests and "
	    "chunks).",
	    &s->direct_bytes_in, NULL);
	return rc || register_replication(m, r) || register_ratesync(m, r)
	    ? PL_ENOMEM
	    : PL_OK;
}

/* Finer than the shared latency buckets: replication lag is a few ms. */
static const double delay_buckets[] = { 0.001, 0.002, 0.003, 0.005, 0.0075,
	0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5,
	10 };

/* ---- cluster-wide rate limits ---- */

static void
rate_collect(void *arg, clu_ratesync_emit_fn emit, void *ctx)
{
	brk_mesh *m = arg;

	brk_ratelimit_take_changes(brk_node_ratelimit(m->node), emit, ctx);
}

static void
rate_merge(void *arg, const char *from, const char *action, const char *user,
    uint64_t window, unsigned count)
{
	brk_mesh *m = arg;

	brk_ratelimit_merge(brk_node_ratelimit(m->node), from, action, user,
	    window, count, pl_wall_ms());
}

static void
rate_touch_all(void *arg)
{
	brk_mesh *m = arg;

	brk_ratelimit_touch_all(brk_node_ratelimit(m->node), pl_wall_ms());
}

static void
on_rate_changed(void *arg)
{
	brk_mesh *m = arg;

	event_active(m->rate_ev, EV_TIMEOUT, 0);
}

static void
on_rate_flush(evutil_socket_t fd, short what, void *arg)
{
	brk_mesh *m = arg;

	(void)fd;
	(void)what;
	clu_ratesync_flush(m->rates);
}

/* A user's actions count against --rate-limit on every node: each burst of
 * counts goes out once the loop has handled it (a few ms to the others). */
static int
start_ratesync(brk_mesh *m)
{
	brk_ratelimit *rl = brk_node_ratelimit(m->node);
	clu_ratesync_ops ops = { rate_collect, rate_touch_all, rate_merge, m };
	int rc;

	if ((rc = clu_ratesync_create(&m->rates, m->clu,
		 brk_ratelimit_window_ms(rl), &ops)) != PL_OK) {
		return rc;
	}
	if ((m->rate_ev = event_new(
		 brk_node_base(m->node), -1, 0, on_rate_flush, m)) == NULL) {
		return PL_ENOMEM;
	}
	brk_ratelimit_on_change(rl, on_rate_changed, m);
	return PL_OK;
}

static int
start_replication(brk_mesh *m, const brk_config *cfg)
{
	clu_replication_opts o;

	memset(&o, 0, sizeof(o));
	o.cluster = m->clu;
	o.store = brk_node_comments(m->node);
	o.origin = brk_node_origin(m->node);
	o.node = brk_node_name(m->node);
	o.ack_replicas = (uint32_t)cfg->ack_replicas;
	o.catchup_timeout_ms = (uint32_t)cfg->catchup_timeout * 1000;
	o.delay_seconds = pl_metrics_histogram(brk_node_metrics(m->node),
	    "parley_replication_delay_seconds",
	    "A live comment copy: its acceptance on the origin node to durable "
	    "here (the nodes' clocks must agree).",
	    delay_buckets, sizeof(delay_buckets) / sizeof(delay_buckets[0]),
	    NULL);
	return clu_replication_create(&m->repl, &o);
}

static int
build(brk_mesh *m, brk_node *n, char *err, size_t errlen)
{
	const brk_config *cfg = brk_node_config(n);
	struct timeval tv = { 0, CLU_CLUSTER_TICK_MS * 1000 };
	clu_cluster_opts o;
	char fp[BRK_FINGERPRINT_LEN + 1];
	int rc;

	m->node = n;
	clu_cluster_opts_init(&o);
	o.node_name = brk_node_name(n);
	o.listen_url = cfg->cluster_listen;
	o.advertise_url = cfg->advertise;
	o.direct_listen_url = cfg->cluster_direct_listen;
	o.direct_advertise_url = cfg->cluster_direct_advertise;
	o.join = cfg->join;
	o.cb.on_member_change = on_member_change;
	o.cb.on_broadcast = on_broadcast;
	o.cb.arg = m;
	rc = clu_cluster_create(&m->clu, &o);
	if (rc != PL_OK) {
		snprintf(err, errlen, "cannot start the cluster bus on %s: %s",
		    cfg->cluster_listen, pl_strerror(rc));
		return rc;
	}
	brk_node_fingerprint(n, fp);
	if ((rc = clu_nodeinfo_create(&m->info, m->clu, fp)) != PL_OK ||
	    (rc = clu_tracker_create(&m->tracker, m->clu,
		 brk_presence_crdt(brk_node_presence(n)), after_merge, m)) !=
		PL_OK ||
	    (rc = start_replication(m, cfg)) != PL_OK ||
	    (rc = start_ratesync(m)) != PL_OK ||
	    (rc = clu_syncmarks_create(&m->marks, m->clu)) != PL_OK) {
		snprintf(err, errlen, "cannot start the cluster services: %s",
		    pl_strerror(rc));
		return rc;
	}
	m->fd_ev = event_new(brk_node_base(n), clu_cluster_fd(m->clu),
	    EV_READ | EV_PERSIST, on_fd, m);
	m->tick_ev = event_new(brk_node_base(n), -1, EV_PERSIST, on_tick, m);
	if (m->tick_ev) {
		brk_node_urgent(m->tick_ev);
	}
	if (m->fd_ev == NULL || m->tick_ev == NULL ||
	    event_add(m->fd_ev, NULL) != 0 || event_add(m->tick_ev, &tv) != 0) {
		snprintf(err, errlen, "cannot watch the cluster fd");
		return PL_EIO;
	}
	if (register_metrics(m) != PL_OK) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	/* Last: nothing after it fails, so the router never holds a mesh
	 * that a failed start has freed. */
	brk_router_set_forward(brk_node_router(n), forward, m);
	LOG_NOTICE("BRK-CLUSTER", "cluster bus on %s, advertised as %s%s%s",
	    cfg->cluster_listen, clu_cluster_self_address(m->clu),
	    cfg->join ? ", joining " : "", cfg->join ? cfg->join : "");
	return PL_OK;
}

int
brk_mesh_create(brk_mesh **out, brk_node *n, char *err, size_t errlen)
{
	brk_mesh *m = calloc(1, sizeof(*m));
	int rc;

	*out = NULL;
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return PL_ENOMEM;
	}
	if ((rc = build(m, n, err, errlen)) != PL_OK) {
		brk_mesh_destroy(m);
		return rc;
	}
	*out = m;
	return PL_OK;
}

void
brk_mesh_destroy(brk_mesh *m)
{
	if (m == NULL) {
		return;
	}
	if (m->fd_ev) {
		event_free(m->fd_ev);
	}
	if (m->tick_ev) {
		event_free(m->tick_ev);
	}
	clu_cluster_destroy(m->clu, false);
	clu_nodeinfo_destroy(m->info);
	clu_tracker_destroy(m->tracker);
	clu_replication_destroy(m->repl);
	if (m->rates != NULL) {
		brk_ratelimit_on_change(
		    brk_node_ratelimit(m->node), NULL, NULL);
	}
	clu_ratesync_destroy(m->rates);
	if (m->rate_ev) {
		event_free(m->rate_ev);
	}
	clu_syncmarks_destroy(m->marks);
	free(m);
}

void
brk_mesh_leave(brk_mesh *m)
{
	if (m && m->clu && !m->left) {
		m->left = 1;
		clu_cluster_leave(m->clu);
	}
}

int
brk_mesh_joined(const brk_mesh *m)
{
	return m && m->clu && clu_cluster_joined(m->clu);
}

int
brk_mesh_caught_up(brk_mesh *m)
{
	return m && m->repl && clu_replication_caught_up(m->repl);
}

clu_replication *
brk_mesh_replication(brk_mesh *m)
{
	return m ? m->repl : NULL;
}

static void
origin_json(void *arg, const clu_replication_origin_view *v)
{
	json_t *peers = json_object();

	for (size_t i = 0; i < v->npeers; i++) {
		json_object_set_new(peers, v->peers[i].peer,
		    json_pack("{s:I, s:I, s:b}", "cw",
			(json_int_t)v->peers[i].cw, "hw",
			(json_int_t)v->peers[i].hw, "alive",
			v->peers[i].alive));
	}
	json_array_append_new(arg,
	    json_pack("{s:s, s:I, s:I, s:I, s:f, s:o}", "origin", v->origin,
		"cw", (json_int_t)v->cw, "hw", (json_int_t)v->hw,
		"lag_comments", (json_int_t)v->lag_comments, "lag_seconds",
		v->lag_ms / 1000.0, "peers", peers));
}

json_t *
brk_mesh_replication_json(brk_mesh *m)
{
	clu_replication_stats s;
	clu_cluster_stats cs;
	json_t *origins = json_array();

	clu_replication_foreach(m->repl, origin_json, origins);
	clu_replication_stats_get(m->repl, &s);
	clu_cluster_stats_get(m->clu, &cs);
	return json_pack("{s:s, s:s, s:b, s:I, s:I, s:o, s:{s:I, s:I, s:I, "
			 "s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I}}",
	    "self", clu_cluster_self_name(m->clu), "origin",
	    clu_replication_origin(m->repl), "caught_up", s.caught_up,
	    "catchup_left", (json_int_t)s.catchup_left, "ack_replicas",
	    (json_int_t)brk_node_config(m->node)->ack_replicas, "origins",
	    origins, "counters", "live_in", (json_int_t)s.live_in, "stored",
	    (json_int_t)s.stored, "duplicates", (json_int_t)s.duplicates,
	    "conflicts", (json_int_t)s.conflicts, "malformed",
	    (json_int_t)s.malformed, "pulls", (json_int_t)s.pulls,
	    "pull_failures", (json_int_t)s.pull_failures, "catchup_comments",
	    (json_int_t)s.catchup_comments, "catchup_bytes",
	    (json_int_t)s.catchup_bytes, "served_chunks",
	    (json_int_t)s.served_chunks, "acks_pending",
	    (json_int_t)s.acks_pending, "ack_timeouts",
	    (json_int_t)s.ack_timeouts, "bus_bytes_in",
	    (json_int_t)cs.bus_bytes_in, "direct_bytes_in",
	    (json_int_t)cs.direct_bytes_in);
}

static void
member_json(void *arg, const clu_member_info *mi)
{
	json_array_append_new(arg,
	    json_pack("{s:s, s:s, s:s, s:I}", "name", mi->name, "address",
		mi->address, "status", clu_status_name(mi->status),
		"incarnation", (json_int_t)mi->incarnation));
}

json_t *
brk_mesh_members_json(brk_mesh *m)
{
	json_t *arr = json_array();

	clu_cluster_members(m->clu, member_json, arr);
	return json_pack("{s:s, s:o}", "self", clu_cluster_self_name(m->clu),
	    "members", arr);
}

json_t *
brk_mesh_leader_json(brk_mesh *m)
{
	uint64_t since = 0;
	const char *l = clu_cluster_leader(m->clu, &since);

	return json_pack("{s:s, s:o, s:I}", "self",
	    clu_cluster_self_name(m->clu), "leader",
	    l ? json_string(l) : json_null(), "since", (json_int_t)since);
}

json_t *
brk_mesh_stats_json(brk_mesh *m)
{
	clu_cluster_stats s;

	clu_cluster_stats_get(m->clu, &s);
	return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
			 "s:I, s:I, s:I, s:I}",
	    "sent", (json_int_t)s.sent, "received", (json_int_t)s.received,
	    "malformed", (json_int_t)s.malformed, "unknown",
	    (json_int_t)s.unknown, "dropped", (json_int_t)s.dropped, "gaps",
	    (json_int_t)s.gaps, "cut_off_peers", (json_int_t)s.cut_off_peers,
	    "name_conflicts", (json_int_t)s.name_conflicts, "broadcasts_sent",
	    (json_int_t)s.broadcasts_sent, "broadcasts_delivered",
	    (json_int_t)s.broadcasts_delivered, "members_alive",
	    (json_int_t)s.members_alive, "members_suspect",
	    (json_int_t)s.members_suspect, "members_dead",
	    (json_int_t)s.members_dead, "members_left",
	    (json_int_t)s.members_left);
}

void
brk_mesh_secret_changed(brk_mesh *m)
{
	char fp[BRK_FINGERPRINT_LEN + 1];

	if (m == NULL || m->info == NULL) {
		return;
	}
	brk_node_fingerprint(m->node, fp);
	clu_nodeinfo_set_fingerprint(m->info, fp);
}

typedef struct names_ctx {
	char *buf;
	size_t len, used;
} names_ctx;

static void
add_name(void *arg, const char *peer, const char *fp)
{
	names_ctx *x = arg;
	int n;

	(void)fp;
	if (x->used >= x->len) {
		return;
	}
	n = snprintf(x->buf + x->used, x->len - x->used, "%s%s",
	    x->used ? ", " : "", peer);
	x->used += n > 0 ? (size_t)n : 0;
}

size_t
brk_mesh_secret_mismatches(const brk_mesh *m, char *buf, size_t len)
{
	names_ctx x = { buf, len, 0 };

	if (len > 0) {
		buf[0] = '\0';
	}
	if (m == NULL || m->info == NULL) {
		return 0;
	}
	return clu_nodeinfo_mismatches(m->info, add_name, &x);
}

clu_syncmarks *
brk_mesh_syncmarks(brk_mesh *m)
{
	return m->marks;
}

int
brk_mesh_block(brk_mesh *m, const char *peer, int on)
{
	return clu_cluster_set_blocked(m->clu, peer, on != 0);
}
