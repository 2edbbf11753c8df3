/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster façade (see cluster.h): glues the bus, the wire codec and the
 * membership view together, keeps per-sender duplicate and broadcast order
 * state, cuts off peers that send garbage, and decides whom to dial. Runs
 * entirely on the caller's loop thread. */
#include "cluster/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/bus.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/wire.h"

#define POLL_BUDGET 512       /* messages per poll before yielding */
#define QUEUE_MAX 16384       /* received messages waiting for the loop */
#define MAX_PEERS 1024        /* per-sender tracking entries */
#define MAX_BAD_PIPES 256     /* connections tracked for malformed input */
#define MAX_SEEDS 64
#define LEAVE_LINGER_MS 50

/* Per-sender state for one instance (name + start id). */
typedef struct peer {
	char name[PRO_WIRE_NAME_MAX + 1];
	uint64_t start;
	uint64_t seq_max;       /* highest message seq seen */
	uint64_t seq_win;       /* bit i: seq_max - i seen */
	uint64_t bc_next;       /* next broadcast seq expected; 0: none yet */
	uint64_t used;          /* for eviction */
} peer;

typedef struct bad_pipe {
	uint32_t pipe;
	uint32_t count;
	uint64_t since;
} bad_pipe;

struct clu_cluster {
	clu_cluster_opts o;
	clu_cluster_callbacks cb;
	char name[PRO_WIRE_NAME_MAX + 1];
	char *advertise;
	clu_bus *bus;
	clu_membership *mem;

	char *seeds[MAX_SEEDS];     /* static seed URLs */
	size_t n_seeds;
	char *dns[MAX_SEEDS];       /* "NAME:PORT" */
	size_t n_dns;
	char **resolved;            /* latest DNS answer */
	size_t n_resolved;
	char **self_urls;           /* URLs that turned out to reach ourselves */
	size_t n_self_urls;
	uint64_t next_dns;

	char blocked[PRO_WIRE_SKIP_MAX][PRO_WIRE_NAME_MAX + 1];
	size_t n_blocked;

	peer *peers;
	size_t n_peers;
	bad_pipe bad[MAX_BAD_PIPES];
	size_t n_bad;

	pro_wire_buf buf;
	pro_wire_member *digest;    /* scratch for outgoing digests */
	uint64_t seq;               /* outgoing message counter */
	uint64_t bc_seq;            /* outgoing broadcast counter */
	uint64_t next_hb;
	uint64_t created;           /* caller clock of the first poll/tick */
	bool clock_set;
	bool started;
	bool heard_other;
	bool dial_dirty;

	char leader[PRO_WIRE_NAME_MAX + 1];
	bool has_leader;
	uint64_t leader_since;

	clu_cluster_stats st;
};

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool
str_eq(pro_wire_str s, const char *c)
{
	return s.ptr != NULL && strlen(c) == s.len && memcmp(s.ptr, c, s.len) == 0;
}

static void
copy_name(char *dst, pro_wire_str s)
{
	size_t n = s.len > PRO_WIRE_NAME_MAX ? PRO_WIRE_NAME_MAX : s.len;

	memcpy(dst, s.ptr, n);
	dst[n] = '\0';
}

static bool
name_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > PRO_WIRE_NAME_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

void
clu_cluster_opts_init(clu_cluster_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->heartbeat_ms = 500;
	o->suspect_after_ms = 1500;
	o->dead_after_ms = 3000;
	o->forget_after_ms = 600000;
	o->dns_interval_ms = 3000;
	o->reconnect_min_ms = 100;
	o->reconnect_max_ms = 2000;
	o->recv_max_bytes = 4u << 20;
	o->malformed_limit = 10;
	o->malformed_window_ms = 10000;
}

/* ---- sending ---- */

static void
make_hdr(clu_cluster *c, pro_wire_hdr *h, pro_wire_str *skip, const char *dest)
{
	for (size_t i = 0; i < c->n_blocked; i++) {
		skip[i] = pro_wire_cstr(c->blocked[i]);
	}
	h->sender = pro_wire_cstr(c->name);
	h->incarnation = clu_membership_incarnation(c->mem);
	h->start_id = clu_membership_start_id(c->mem);
	h->seq = ++c->seq;
	h->dest = pro_wire_cstr(dest);
	h->skip = skip;
	h->n_skip = c->n_blocked;
}

static int
send_buf(clu_cluster *c)
{
	int rc = clu_bus_send(c->bus, c->buf.data, c->buf.len);

	if (rc == PL_OK) {
		c->st.sent++;
	} else {
		c->st.dropped++;
	}
	return rc;
}

static void
send_digest(clu_cluster *c, pro_wire_kind kind, const char *dest)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;
	size_t n = clu_membership_digest(c->mem, c->digest, PRO_WIRE_DIGEST_MAX);

	make_hdr(c, &h, skip, dest);
	if (pro_wire_encode_digest(&c->buf, kind, &h, c->digest, n) == PL_OK) {
		send_buf(c);
	}
}

static void
send_leave(clu_cluster *c)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;

	make_hdr(c, &h, skip, NULL);
	if (pro_wire_encode_leave(&c->buf, &h) == PL_OK) {
		send_buf(c);
	}
}

int
clu_cluster_broadcast(clu_cluster *c, const char *topic, const char *event,
    const char *payload, size_t len)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;
	int rc;

	if (topic == NULL || event == NULL) {
		return PL_EINVAL;
	}
	if (clu_membership_self_left(c->mem)) {
		return PL_ECLOSED;
	}
	make_hdr(c, &h, skip, NULL);
	rc = pro_wire_encode_broadcast(&c->buf, &h, pro_wire_cstr(topic),
	    pro_wire_cstr(event), payload, len, pro_wire_cstr(c->name),
	    c->bc_seq + 1);
	if (rc != PL_OK) {
		return rc;
	}
	/* The sequence advances even when the bus refuses the message, so
	 * receivers see the loss as a gap. */
	c->bc_seq++;
	if ((rc = send_buf(c)) == PL_OK) {
		c->st.broadcasts_sent++;
	}
	return rc;
}

int
clu_cluster_send_app(clu_cluster *c, const char *to, uint32_t app_kind,
    const void *bytes, size_t len)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;
	int rc;

	if (to != NULL && (!name_valid(to) || strcmp(to, c->name) == 0)) {
		return PL_EINVAL;
	}
	if (clu_membership_self_left(c->mem)) {
		return PL_ECLOSED;
	}
	make_hdr(c, &h, skip, to);
	if ((rc = pro_wire_encode_app(&c->buf, &h, app_kind, bytes, len)) != PL_OK) {
		return rc;
	}
	if ((rc = send_buf(c)) == PL_OK) {
		c->st.apps_sent++;
	}
	return rc;
}

/* ---- dialing ---- */

static bool
is_self_url(const clu_cluster *c, const char *url)
{
	if (strcmp(url, c->advertise) == 0) {
		return true;
	}
	for (size_t i = 0; i < c->n_self_urls; i++) {
		if (strcmp(c->self_urls[i], url) == 0) {
			return true;
		}
	}
	return false;
}

static void
dial_member(void *arg, const clu_member_info *m)
{
	clu_cluster *c = arg;

	/* Dead members stay dialled (NNG retries with backoff) until they are
	 * forgotten, so both sides of a healed network partition reconnect. */
	if (m->self || m->status == CLU_LEFT || m->address[0] == '\0' ||
	    is_self_url(c, m->address)) {
		return;
	}
	clu_bus_dial(c->bus, m->address);
}

static void
reconcile_dialers(clu_cluster *c)
{
	c->dial_dirty = false;
	clu_bus_dial_begin(c->bus);
	if (!clu_membership_self_left(c->mem)) {
		clu_membership_foreach(c->mem, dial_member, c);
		/* Seeds are dialled (anonymously) only while we know no live
		 * peer; once one answers, gossip tells us everyone else. */
		if (clu_membership_live_others(c->mem) == 0) {
			for (size_t i = 0; i < c->n_seeds; i++) {
				if (!is_self_url(c, c->seeds[i])) {
					clu_bus_dial(c->bus, c->seeds[i]);
				}
			}
			for (size_t i = 0; i < c->n_resolved; i++) {
				if (!is_self_url(c, c->resolved[i])) {
					clu_bus_dial(c->bus, c->resolved[i]);
				}
			}
		}
	}
	clu_bus_dial_end(c->bus);
}

/* Our own message came back on pipe: if one of our dialers made it, that
 * URL reaches ourselves and is never dialled again. */
static void
self_loop(clu_cluster *c, uint32_t pipe)
{
	const char *url = clu_bus_pipe_dial_url(c->bus, pipe);
	char **v;

	if (url == NULL || is_self_url(c, url)) {
		return;
	}
	v = realloc(c->self_urls, (c->n_self_urls + 1) * sizeof(*v));
	if (v == NULL) {
		return;
	}
	c->self_urls = v;
	if ((v[c->n_self_urls] = strdup(url)) == NULL) {
		return;
	}
	c->n_self_urls++;
	LOG_INFO("CLU-SELFDIAL", "%s reaches this node itself; not dialing it",
	    url);
	c->dial_dirty = true;
}

/* ---- events and leader ---- */

static void
check_leader(clu_cluster *c, uint64_t now)
{
	const char *l = clu_membership_leader(c->mem);

	/* A node with seeds claims no leader until it has heard a peer (or
	 * waited long enough to be sure it is alone), so a joining node does
	 * not briefly lead on its own. */
	if ((c->n_seeds > 0 || c->n_dns > 0) && !c->heard_other &&
	    now - c->created < c->o.suspect_after_ms) {
		l = NULL;
	}
	if (c->started && ((l == NULL && !c->has_leader) ||
	    (l != NULL && c->has_leader && strcmp(l, c->leader) == 0))) {
		return;
	}
	LOG_INFO("CLU-LEADER", "leader is now %s (was %s)", l ? l : "(none)",
	    c->has_leader ? c->leader : "(none)");
	c->has_leader = l != NULL;
	snprintf(c->leader, sizeof(c->leader), "%s", l ? l : "");
	c->leader_since = wall_ms();
	c->started = true;
	if (c->cb.on_leader_change != NULL) {
		c->cb.on_leader_change(c->cb.arg, l ? c->leader : NULL,
		    c->leader_since);
	}
}

static void forget_peer(clu_cluster *c, const char *name);

static void
dispatch_events(clu_cluster *c, uint64_t now)
{
	clu_member_event ev;
	bool any = false;

	while (clu_membership_next_event(c->mem, &ev)) {
		any = true;
		if (ev.new_status == CLU_NONE) {
			forget_peer(c, ev.name);
		}
		if (c->cb.on_member_change != NULL) {
			c->cb.on_member_change(c->cb.arg, ev.name, ev.old_status,
			    ev.new_status);
		}
	}
	if (any) {
		c->dial_dirty = true;
	}
	if (c->dial_dirty) {
		reconcile_dialers(c);
	}
	check_leader(c, now);
}

/* ---- per-sender state ---- */

static void
forget_peer(clu_cluster *c, const char *name)
{
	for (size_t i = 0; i < c->n_peers; i++) {
		if (strcmp(c->peers[i].name, name) == 0) {
			c->peers[i] = c->peers[--c->n_peers];
			return;
		}
	}
}

/* The tracking entry for this sender instance, reset when the instance
 * changed (restart), created or recycled when absent. */
static peer *
get_peer(clu_cluster *c, pro_wire_str name, uint64_t start, uint64_t now)
{
	peer *p = NULL;

	for (size_t i = 0; i < c->n_peers; i++) {
		if (str_eq(name, c->peers[i].name)) {
			p = &c->peers[i];
			break;
		}
	}
	if (p == NULL) {
		if (c->n_peers < MAX_PEERS) {
			p = &c->peers[c->n_peers++];
		} else {
			p = &c->peers[0];
			for (size_t i = 1; i < c->n_peers; i++) {
				if (c->peers[i].used < p->used) {
					p = &c->peers[i];
				}
			}
		}
		memset(p, 0, sizeof(*p));
		copy_name(p->name, name);
		p->start = start;
	} else if (p->start != start) {
		memset(p, 0, sizeof(*p));
		copy_name(p->name, name);
		p->start = start;
	}
	p->used = now;
	return p;
}

/* Duplicate suppression over a 64-message window: every pair of nodes has
 * two connections (each dials the other), so most messages arrive twice. */
static bool
seen_before(peer *p, uint64_t seq)
{
	uint64_t d;

	if (p->seq_max == 0 || seq > p->seq_max) {
		uint64_t shift = p->seq_max == 0 ? 64 : seq - p->seq_max;
		p->seq_win = shift >= 64 ? 0 : p->seq_win << shift;
		p->seq_win |= 1;
		p->seq_max = seq;
		return false;
	}
	d = p->seq_max - seq;
	if (d >= 64 || (p->seq_win & ((uint64_t)1 << d)) != 0) {
		return true;
	}
	p->seq_win |= (uint64_t)1 << d;
	return false;
}

/* ---- malformed input ---- */

static void
note_malformed(clu_cluster *c, uint32_t pipe, uint64_t now)
{
	bad_pipe *b = NULL;

	c->st.malformed++;
	for (size_t i = 0; i < c->n_bad; i++) {
		if (c->bad[i].pipe == pipe) {
			b = &c->bad[i];
			break;
		}
	}
	if (b != NULL && now - b->since > c->o.malformed_window_ms) {
		b->count = 0;
		b->since = now;
	}
	if (b == NULL) {
		if (c->n_bad == MAX_BAD_PIPES) {
			c->bad[0] = c->bad[--c->n_bad];
		}
		b = &c->bad[c->n_bad++];
		b->pipe = pipe;
		b->count = 0;
		b->since = now;
		LOG_WARN("CLU-MALFORMED", "malformed cluster message on "
		    "connection %u", pipe);
	}
	if (++b->count > c->o.malformed_limit) {
		LOG_WARN("CLU-PEERCUT", "closing connection %u: %u malformed "
		    "messages within %u ms", pipe, b->count,
		    c->o.malformed_window_ms);
		clu_bus_pipe_close(c->bus, pipe);
		c->st.cut_off_peers++;
		*b = c->bad[--c->n_bad];
	}
}

/* ---- receiving ---- */

static bool
is_blocked(const clu_cluster *c, pro_wire_str name)
{
	for (size_t i = 0; i < c->n_blocked; i++) {
		if (str_eq(name, c->blocked[i])) {
			return true;
		}
	}
	return false;
}

static void
deliver_broadcast(clu_cluster *c, const pro_wire_msg *m, peer *p)
{
	char topic[PRO_WIRE_TOPIC_MAX + 1], event[PRO_WIRE_EVENT_MAX + 1];
	char from[PRO_WIRE_NAME_MAX + 1];
	uint64_t seq = m->u.broadcast.seq;

	if (p->bc_next != 0 && seq < p->bc_next) {
		c->st.duplicates++;
		return;
	}
	if (p->bc_next != 0 && seq > p->bc_next) {
		/* Lost on the way (a full queue on the bus); no retransmission
		 * yet, so deliver what we have and count the hole. */
		c->st.gaps += seq - p->bc_next;
	}
	p->bc_next = seq + 1;
	c->st.broadcasts_delivered++;
	if (c->cb.on_broadcast == NULL) {
		return;
	}
	memcpy(topic, m->u.broadcast.topic.ptr, m->u.broadcast.topic.len);
	topic[m->u.broadcast.topic.len] = '\0';
	memcpy(event, m->u.broadcast.event.ptr, m->u.broadcast.event.len);
	event[m->u.broadcast.event.len] = '\0';
	copy_name(from, m->u.broadcast.publisher);
	c->cb.on_broadcast(c->cb.arg, from, seq, topic, event,
	    m->u.broadcast.payload.ptr, m->u.broadcast.payload.len);
}

static void
handle(clu_cluster *c, const pro_wire_msg *m, uint32_t pipe, uint64_t now)
{
	const pro_wire_hdr *h = &m->hdr;
	clu_status before = CLU_NONE;
	char sender[PRO_WIRE_NAME_MAX + 1];
	clu_verdict v;
	peer *p;

	if (is_blocked(c, h->sender)) {
		c->st.blocked++;
		return;
	}
	for (size_t i = 0; i < h->n_skip; i++) {
		if (str_eq(h->skip[i], c->name)) {
			c->st.blocked++;
			return;
		}
	}
	copy_name(sender, h->sender);
	before = clu_membership_status(c->mem, sender);
	v = clu_membership_heard(c->mem, h->sender, h->incarnation, h->start_id,
	    now);
	if (v == CLU_REFUSE_SELF) {
		c->st.refused++;
		self_loop(c, pipe);
		return;
	}
	if (v == CLU_REFUSE_CONFLICT || v == CLU_REFUSE_STALE) {
		c->st.refused++;
		c->st.name_conflicts++;
		return;
	}
	p = get_peer(c, h->sender, h->start_id, now);
	if (seen_before(p, h->seq)) {
		c->st.duplicates++;
		return;
	}
	c->heard_other = true;
	if (h->dest.ptr != NULL && !str_eq(h->dest, c->name)) {
		return; /* for another node; it still proved the sender alive */
	}
	switch (m->kind) {
	case PRO_WIRE_PING:
	case PRO_WIRE_PING_ACK:
		clu_membership_merge(c->mem, h->sender, m->u.digest.members,
		    m->u.digest.n, now);
		/* A newcomer (or a restarted node) learns the whole cluster
		 * from our answer instead of waiting for our next heartbeat. */
		if (m->kind == PRO_WIRE_PING && (before == CLU_NONE ||
		    v == CLU_ACCEPT_RESTART) && !clu_membership_self_left(c->mem)) {
			send_digest(c, PRO_WIRE_PING_ACK, sender);
		}
		break;
	case PRO_WIRE_LEAVE:
		clu_membership_left(c->mem, h->sender, h->incarnation,
		    h->start_id, now);
		break;
	case PRO_WIRE_BROADCAST:
		if (!str_eq(m->u.broadcast.publisher, sender)) {
			/* No relaying exists yet: a publisher is its sender. */
			c->st.malformed++;
			break;
		}
		deliver_broadcast(c, m, p);
		break;
	case PRO_WIRE_APP:
		c->st.apps_delivered++;
		if (c->cb.on_app != NULL) {
			c->cb.on_app(c->cb.arg, sender, m->u.app.app_kind,
			    m->u.app.bytes.ptr, m->u.app.bytes.len);
		}
		break;
	default:
		break;
	}
}

static void
take_dns(clu_cluster *c)
{
	char **urls;
	size_t n;

	if (!clu_bus_resolved(c->bus, &urls, &n)) {
		return;
	}
	for (size_t i = 0; i < c->n_resolved; i++) {
		free(c->resolved[i]);
	}
	free(c->resolved);
	c->resolved = urls;
	c->n_resolved = n;
	c->dial_dirty = true;
}

/* Processes up to budget messages (0: all). Returns true when more wait. */
static bool
drain(clu_cluster *c, uint64_t now, size_t budget)
{
	clu_bus_msg *bm;
	size_t done = 0;

	clu_bus_clear_fd(c->bus);
	take_dns(c);
	while ((budget == 0 || done < budget) &&
	    (bm = clu_bus_recv(c->bus)) != NULL) {
		pro_wire_msg m;
		uint32_t pipe = clu_bus_msg_pipe(bm);

		done++;
		c->st.received++;
		if (pro_wire_decode(clu_bus_msg_data(bm), clu_bus_msg_len(bm),
		    &m) != PL_OK) {
			note_malformed(c, pipe, now);
		} else if (m.skip != PRO_WIRE_SKIP_NONE) {
			c->st.unknown++;
		} else {
			handle(c, &m, pipe, now);
		}
		pro_wire_msg_release(&m);
		clu_bus_msg_free(bm);
		dispatch_events(c, now);
	}
	if (clu_membership_take_urgent(c->mem)) {
		send_digest(c, PRO_WIRE_PING, NULL);
	}
	return budget != 0 && done == budget;
}

static void
first_call(clu_cluster *c, uint64_t now)
{
	if (!c->clock_set) {
		c->clock_set = true;
		c->created = now;
		c->next_hb = now;
		c->next_dns = now;
	}
}

void
clu_cluster_poll(clu_cluster *c, uint64_t now)
{
	first_call(c, now);
	if (drain(c, now, POLL_BUDGET)) {
		/* Leave the fd readable so the loop comes back for the rest. */
		uint64_t one = 1;
		if (write(clu_bus_fd(c->bus), &one, sizeof(one)) < 0) {
			/* already readable */
		}
	}
	dispatch_events(c, now);
}

void
clu_cluster_tick(clu_cluster *c, uint64_t now)
{
	first_call(c, now);
	/* Everything that already arrived counts before timeouts are judged. */
	drain(c, now, 0);
	clu_membership_tick(c->mem, now);
	if (clu_membership_self_left(c->mem)) {
		if (now >= c->next_hb) {
			send_leave(c);
			c->next_hb = now + c->o.heartbeat_ms;
		}
	} else if (now >= c->next_hb || clu_membership_take_urgent(c->mem)) {
		send_digest(c, PRO_WIRE_PING, NULL);
		c->next_hb = now + c->o.heartbeat_ms;
	}
	if (c->n_dns > 0 && now >= c->next_dns &&
	    clu_membership_live_others(c->mem) == 0) {
		clu_bus_resolve(c->bus, (const char *const *)c->dns, c->n_dns);
		c->next_dns = now + c->o.dns_interval_ms;
	}
	for (size_t i = 0; i < c->n_bad;) {
		if (now - c->bad[i].since > c->o.malformed_window_ms) {
			c->bad[i] = c->bad[--c->n_bad];
		} else {
			i++;
		}
	}
	dispatch_events(c, now);
}

/* ---- creation ---- */

/* Splits the join list into static URLs and dns:NAME:PORT lookups. */
static int
parse_join(clu_cluster *c, const char *join)
{
	const char *p = join;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char *item;

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
			n--;
		}
		if (n > 0) {
			bool dns = n > 4 && strncmp(p, "dns:", 4) == 0;
			if (n > PRO_WIRE_ADDR_MAX ||
			    (dns ? c->n_dns : c->n_seeds) >= MAX_SEEDS) {
				return PL_EINVAL;
			}
			if (dns && (memchr(p + 4, ':', n - 4) == NULL ||
			    p[n - 1] == ':')) {
				LOG_ERR("CLU-JOIN", "bad join entry %.*s: want "
				    "dns:NAME:PORT", (int)n, p);
				return PL_EINVAL;
			}
			if (!dns && strstr(p, "://") == NULL) {
				LOG_ERR("CLU-JOIN", "bad join entry %.*s: want "
				    "tcp://HOST:PORT or dns:NAME:PORT", (int)n, p);
				return PL_EINVAL;
			}
			item = dns ? strndup(p + 4, n - 4) : strndup(p, n);
			if (item == NULL) {
				return PL_ENOMEM;
			}
			if (dns) {
				c->dns[c->n_dns++] = item;
			} else {
				c->seeds[c->n_seeds++] = item;
			}
		}
		p = end ? end + 1 : NULL;
	}
	return PL_OK;
}

/* tcp://HOST:PORT with HOST the listen host, or the hostname when the node
 * listens on every interface, and PORT the bound port. */
static char *
derive_advertise(const char *listen, int bound_port)
{
	char host[256], out[400];
	const char *h, *colon;
	size_t hl;

	if (strncmp(listen, "tcp://", 6) != 0) {
		return strdup(listen);
	}
	h = listen + 6;
	colon = strrchr(h, ':');
	if (colon == NULL || (h[0] == '[' && strchr(h, ']') > colon)) {
		return strdup(listen);
	}
	hl = (size_t)(colon - h);
	if (hl == 0 || (hl == 1 && h[0] == '*') ||
	    (hl == 7 && strncmp(h, "0.0.0.0", 7) == 0) ||
	    (hl == 4 && strncmp(h, "[::]", 4) == 0)) {
		if (gethostname(host, sizeof(host)) != 0) {
			snprintf(host, sizeof(host), "localhost");
		}
		host[sizeof(host) - 1] = '\0';
	} else {
		snprintf(host, sizeof(host), "%.*s", (int)hl, h);
	}
	if (bound_port > 0) {
		snprintf(out, sizeof(out), "tcp://%s:%d", host, bound_port);
	} else {
		snprintf(out, sizeof(out), "tcp://%s%s", host, colon);
	}
	return strdup(out);
}

int
clu_cluster_create(clu_cluster **out, const clu_cluster_opts *o)
{
	clu_membership_opts mo;
	clu_bus_opts bo;
	clu_cluster *c;
	char host[256];
	const char *name = o ? o->node_name : NULL;
	int rc = PL_ENOMEM;

	*out = NULL;
	if (o == NULL || o->heartbeat_ms == 0 || o->recv_max_bytes < 1024) {
		return PL_EINVAL;
	}
	if (name == NULL) {
		if (gethostname(host, sizeof(host)) != 0) {
			return PL_EIO;
		}
		host[sizeof(host) - 1] = '\0';
		name = host;
	}
	if (!name_valid(name)) {
		LOG_ERR("CLU-NAME", "node name must be 1..%d printable "
		    "characters without spaces", PRO_WIRE_NAME_MAX);
		return PL_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return PL_ENOMEM;
	}
	c->o = *o;
	c->o.node_name = c->o.listen_url = c->o.advertise_url = c->o.join = NULL;
	c->cb = o->cb;
	memcpy(c->name, name, strlen(name) + 1); /* name_valid() bounded it */
	pro_wire_buf_init(&c->buf);
	if ((c->peers = calloc(MAX_PEERS, sizeof(*c->peers))) == NULL ||
	    (c->digest = calloc(PRO_WIRE_DIGEST_MAX, sizeof(*c->digest))) == NULL) {
		goto fail;
	}
	if ((rc = parse_join(c, o->join)) != PL_OK) {
		goto fail;
	}
	bo.listen_url = o->listen_url ? o->listen_url : "tcp://0.0.0.0:4002";
	bo.recv_max = o->recv_max_bytes;
	bo.reconnect_min_ms = o->reconnect_min_ms;
	bo.reconnect_max_ms = o->reconnect_max_ms;
	bo.queue_max = QUEUE_MAX;
	if ((rc = clu_bus_create(&c->bus, &bo)) != PL_OK) {
		goto fail;
	}
	c->advertise = o->advertise_url ? strdup(o->advertise_url) :
	    derive_advertise(bo.listen_url, clu_bus_port(c->bus));
	if (c->advertise == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	if (strlen(c->advertise) > PRO_WIRE_ADDR_MAX) {
		rc = PL_EINVAL;
		goto fail;
	}
	mo.suspect_after_ms = o->suspect_after_ms;
	mo.dead_after_ms = o->dead_after_ms;
	mo.forget_after_ms = o->forget_after_ms;
	/* A tick gap this long means our loop stalled, not our peers. */
	mo.stall_ms = o->suspect_after_ms / 2 > 1000 ? o->suspect_after_ms / 2 : 1000;
	mo.max_members = PRO_WIRE_DIGEST_MAX;
	if ((rc = clu_membership_create(&c->mem, c->name, c->advertise,
	    o->start_id ? o->start_id : wall_ms(), &mo)) != PL_OK) {
		goto fail;
	}
	LOG_INFO("CLU-START", "cluster node %s listening on %s, advertising %s",
	    c->name, bo.listen_url, c->advertise);
	reconcile_dialers(c);
	*out = c;
	return PL_OK;

fail:
	clu_cluster_destroy(c, true);
	return rc;
}

void
clu_cluster_destroy(clu_cluster *c, bool crash)
{
	if (c == NULL) {
		return;
	}
	if (!crash && c->mem != NULL && c->bus != NULL &&
	    !clu_membership_self_left(c->mem)) {
		struct timespec ts = { 0, LEAVE_LINGER_MS * 1000000L };
		clu_cluster_leave(c);
		/* Closing the socket drops queued messages: give the leave
		 * a moment to reach the wire. */
		nanosleep(&ts, NULL);
	}
	clu_bus_destroy(c->bus);
	clu_membership_destroy(c->mem);
	for (size_t i = 0; i < c->n_seeds; i++) {
		free(c->seeds[i]);
	}
	for (size_t i = 0; i < c->n_dns; i++) {
		free(c->dns[i]);
	}
	for (size_t i = 0; i < c->n_resolved; i++) {
		free(c->resolved[i]);
	}
	free(c->resolved);
	for (size_t i = 0; i < c->n_self_urls; i++) {
		free(c->self_urls[i]);
	}
	free(c->self_urls);
	pro_wire_buf_free(&c->buf);
	free(c->digest);
	free(c->peers);
	free(c->advertise);
	free(c);
}

/* ---- accessors ---- */

int
clu_cluster_fd(const clu_cluster *c)
{
	return clu_bus_fd(c->bus);
}

int
clu_cluster_leave(clu_cluster *c)
{
	if (!clu_membership_self_left(c->mem)) {
		LOG_INFO("CLU-LEAVE", "leaving the cluster");
		clu_membership_leave(c->mem);
		send_leave(c);
		c->dial_dirty = true;
	}
	return PL_OK;
}

const char *
clu_cluster_self_name(const clu_cluster *c)
{
	return c->name;
}

const char *
clu_cluster_self_address(const clu_cluster *c)
{
	return c->advertise;
}

const char *
clu_cluster_leader(const clu_cluster *c, uint64_t *since_ms)
{
	if (since_ms != NULL) {
		*since_ms = c->leader_since;
	}
	return c->has_leader ? c->leader : NULL;
}

void
clu_cluster_members(const clu_cluster *c,
    void (*fn)(void *arg, const clu_member_info *info), void *arg)
{
	clu_membership_foreach(c->mem, fn, arg);
}

clu_status
clu_cluster_member_status(const clu_cluster *c, const char *name)
{
	return clu_membership_status(c->mem, name);
}

bool
clu_cluster_joined(const clu_cluster *c)
{
	return (c->n_seeds == 0 && c->n_dns == 0) || c->heard_other;
}

int
clu_cluster_set_blocked(clu_cluster *c, const char *name, bool blocked)
{
	if (!name_valid(name)) {
		return PL_EINVAL;
	}
	for (size_t i = 0; i < c->n_blocked; i++) {
		if (strcmp(c->blocked[i], name) == 0) {
			if (!blocked) {
				memcpy(c->blocked[i], c->blocked[--c->n_blocked],
				    sizeof(c->blocked[i]));
				LOG_WARN("CLU-FAULT", "traffic with %s restored", name);
			}
			return PL_OK;
		}
	}
	if (!blocked) {
		return PL_OK;
	}
	if (c->n_blocked == PRO_WIRE_SKIP_MAX) {
		return PL_EFULL;
	}
	snprintf(c->blocked[c->n_blocked++], sizeof(c->blocked[0]), "%s", name);
	LOG_WARN("CLU-FAULT", "test hook: dropping all traffic with %s", name);
	return PL_OK;
}

static void
count_member(void *arg, const clu_member_info *m)
{
	clu_cluster_stats *st = arg;

	switch (m->status) {
	case CLU_ALIVE: st->members_alive++; break;
	case CLU_SUSPECT: st->members_suspect++; break;
	case CLU_DEAD: st->members_dead++; break;
	case CLU_LEFT: st->members_left++; break;
	default: break;
	}
}

void
clu_cluster_stats_get(const clu_cluster *c, clu_cluster_stats *out)
{
	*out = c->st;
	out->dropped += clu_bus_queue_dropped(c->bus);
	out->members_alive = out->members_suspect = 0;
	out->members_dead = out->members_left = 0;
	clu_membership_foreach(c->mem, count_member, out);
	out->dialers = (uint32_t)clu_bus_dialer_count(c->bus);
}
