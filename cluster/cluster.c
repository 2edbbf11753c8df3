/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster façade (see cluster.h): glues the bus, the wire codec and the
 * membership view together, batches outgoing envelopes into frames, cuts
 * off connections that send garbage, and decides whom to dial. Runs
 * entirely on the caller's loop thread. */
#include "cluster/cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/bus.h"
#include "cluster/direct.h"
#include "cluster/filter.h"
#include "cluster/seeds.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "proto/wire.h"

#define POLL_BUDGET 256        /* frames per poll before yielding */
#define QUEUE_MAX 16384        /* received frames waiting for the loop */
#define FRAME_MAX (256u << 10) /* batch envelopes up to this many bytes */
#define LEAVE_LINGER_MS 50
#define CLU_REQUESTS_MAX 64 /* our addressed requests in flight */

struct clu_cluster {
	clu_cluster_opts o;
	char name[PRO_WIRE_NAME_MAX + 1];
	char *advertise;
	clu_bus *bus;
	clu_direct *direct; /* the addressed path */
	char *direct_advertise;
	clu_membership *mem;

	clu_seeds *seeds; /* --join, DNS answers, our own URLs */
	uint64_t next_dns;
	size_t reachable; /* live peers our dialers are connected
	                             * to, as of the last reconciliation */

	clu_filter *filter; /* malformed input, fault hook */

	/* Outgoing frame: envelopes queued since the last flush. NNG 1.5's
	 * bus0 keeps only 16 messages per connection and drops the rest, so a
	 * burst must travel as few frames. */
	pro_wire_buf out;
	size_t out_count;
	size_t frame_max;
	bool in_call; /* inside poll/tick: flush at the end */
	bool wake_pending;

	pro_wire_member *digest; /* scratch for outgoing digests */
	uint64_t seq;            /* outgoing envelope counter */
	uint64_t bc_seq;         /* outgoing broadcast counter */
	uint64_t next_hb;
	uint64_t created; /* caller clock at the first poll/tick */
	uint64_t now;     /* caller clock at the last poll/tick */
	bool clock_set;
	bool heard_other;
	bool dial_dirty;
	bool gossip_now;

	char leader[PRO_WIRE_NAME_MAX + 1];
	bool has_leader;
	uint64_t leader_since;

	struct {
		const clu_service_ops *ops;
		void *arg;
	} svc[CLU_SERVICES_MAX];
	size_t nsvc;

	/* Our requests on the addressed path, by tag. */
	struct pending_req {
		uint64_t tag; /* 0: free slot */
		clu_reply_fn cb;
		void *arg;
	} reqs[CLU_REQUESTS_MAX];
	uint64_t next_tag;
	pro_wire_buf scratch; /* request and reply envelopes */
	pro_wire_buf answer;  /* a service's answer */

	clu_cluster_stats st;
};

static bool
str_eq(pro_wire_str s, const char *c)
{
	return s.ptr != NULL && strlen(c) == s.len &&
	    memcmp(s.ptr, c, s.len) == 0;
}

static void
copy_str(char *dst, pro_wire_str s)
{
	memcpy(dst, s.ptr, s.len);
	dst[s.len] = '\0';
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
flush(clu_cluster *c)
{
	c->wake_pending = false;
	if (c->out.len == 0) {
		return;
	}
	if (clu_bus_send(c->bus, c->out.data, c->out.len) == PL_OK) {
		c->st.sent += c->out_count;
		c->st.bus_bytes_out += c->out.len;
	} else {
		c->st.dropped += c->out_count;
	}
	c->out.len = 0;
	c->out_count = 0;
}

static void
make_hdr(clu_cluster *c, pro_wire_hdr *h, pro_wire_str *skip, const char *dest)
{
	h->n_skip = clu_filter_skip(c->filter, skip);
	h->sender = pro_wire_cstr(c->name);
	h->incarnation = clu_membership_incarnation(c->mem);
	h->start_id = clu_membership_start_id(c->mem);
	h->seq = c->seq + 1;
	h->dest = pro_wire_cstr(dest);
	h->skip = skip;
}

/* Accounts for the envelope just appended at out[before..len): starts a new
 * frame when the batch grows too big, and makes sure it gets flushed. */
static int
queued(clu_cluster *c, size_t before, int rc)
{
	size_t add = c->out.len - before;

	if (rc != PL_OK) {
		return rc;
	}
	if (add > c->o.recv_max_bytes) {
		c->out.len = before;
		return PL_ETOOBIG;
	}
	c->seq++;
	if (c->out.len > c->frame_max && before > 0) {
		/* Send what came before; the new envelope starts a frame. */
		c->out.len = before;
		flush(c);
		memmove(c->out.data, c->out.data + before, add);
		c->out.len = add;
	}
	c->out_count++;
	if (!c->in_call && !c->wake_pending) {
		/* Sent from the broker's own handlers: have the loop call
		 * poll right after, which flushes. */
		clu_bus_wake(c->bus);
		c->wake_pending = true;
	}
	return PL_OK;
}

static void
send_digest(clu_cluster *c, pro_wire_kind kind, const char *dest)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;
	size_t n =
	    clu_membership_digest(c->mem, c->digest, PRO_WIRE_DIGEST_MAX);
	size_t before = c->out.len;

	make_hdr(c, &h, skip, dest);
	queued(
	    c, before, pro_wire_encode_digest(&c->out, kind, &h, c->digest, n));
}

static void
send_leave(clu_cluster *c)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;
	size_t before = c->out.len;

	make_hdr(c, &h, skip, NULL);
	queued(c, before, pro_wire_encode_leave(&c->out, &h));
}

int
clu_cluster_broadcast(clu_cluster *c, const char *topic, const char *event,
    const char *payload, size_t len)
{
	pro_wire_str skip[PRO_WIRE_SKIP_MAX];
	pro_wire_hdr h;
	size_t before = c->out.len;
	int rc;

	if (topic == NULL || event == NULL) {
		return PL_EINVAL;
	}
	if (clu_membership_self_left(c->mem)) {
		return PL_ECLOSED;
	}
	make_hdr(c, &h, skip, NULL);
	rc = queued(c, before,
	    pro_wire_encode_broadcast(&c->out, &h, pro_wire_cstr(topic),
		pro_wire_cstr(event), payload, len, pro_wire_cstr(c->name),
		c->bc_seq + 1));
	if (rc == PL_OK) {
		c->bc_seq++;
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
	size_t before = c->out.len;
	int rc;

	if (to != NULL && (!name_valid(to) || strcmp(to, c->name) == 0)) {
		return PL_EINVAL;
	}
	if (clu_membership_self_left(c->mem)) {
		return PL_ECLOSED;
	}
	make_hdr(c, &h, skip, to);
	rc = queued(
	    c, before, pro_wire_encode_app(&c->out, &h, app_kind, bytes, len));
	if (rc == PL_OK) {
		c->st.apps_sent++;
	}
	return rc;
}

int
clu_cluster_add_service(clu_cluster *c, const clu_service_ops *ops, void *arg)
{
	if (ops == NULL || ops->kind_first == 0 || ops->kind_count == 0 ||
	    ops->kind_count > CLU_KINDS_RANGE ||
	    ops->kind_first > UINT32_MAX / 2) {
		return PL_EINVAL;
	}
	for (size_t i = 0; i < c->nsvc; i++) {
		const clu_service_ops *o = c->svc[i].ops;

		if (ops->kind_first < o->kind_first + o->kind_count &&
		    o->kind_first < ops->kind_first + ops->kind_count) {
			return PL_EINVAL;
		}
	}
	if (c->nsvc == CLU_SERVICES_MAX) {
		return PL_EFULL;
	}
	c->svc[c->nsvc].ops = ops;
	c->svc[c->nsvc].arg = arg;
	c->nsvc++;
	return PL_OK;
}

/* ---- the addressed path ---- */

static const clu_service_ops *
service_of(clu_cluster *c, uint32_t kind, void **arg)
{
	for (size_t i = 0; i < c->nsvc; i++) {
		const clu_service_ops *ops = c->svc[i].ops;

		if (kind >= ops->kind_first &&
		    kind - ops->kind_first < ops->kind_count) {
			*arg = c->svc[i].arg;
			return ops;
		}
	}
	return NULL;
}

int
clu_cluster_request(clu_cluster *c, const char *to, uint32_t kind,
    const void *bytes, size_t len, uint32_t timeout_ms, clu_reply_fn cb,
    void *arg)
{
	struct pending_req *slot = NULL;
	const char *url;
	int rc;

	if (to == NULL || cb == NULL || !name_valid(to) ||
	    strcmp(to, c->name) == 0) {
		return PL_EINVAL;
	}
	if (clu_membership_self_left(c->mem)) {
		return PL_ECLOSED;
	}
	if (clu_filter_blocked(c->filter, to)) {
		return PL_EAGAIN;
	}
	url = clu_membership_direct(c->mem, to);
	if (url[0] == '\0') {
		return PL_ENOTFOUND;
	}
	for (size_t i = 0; i < CLU_REQUESTS_MAX && slot == NULL; i++) {
		if (c->reqs[i].tag == 0) {
			slot = &c->reqs[i];
		}
	}
	if (slot == NULL) {
		return PL_EFULL;
	}
	c->scratch.len = 0;
	if ((rc = pro_wire_encode_request(&c->scratch, pro_wire_cstr(c->name),
		 kind, bytes, len)) != PL_OK ||
	    (rc = clu_direct_request(c->direct, url, c->scratch.data,
		 c->scratch.len, timeout_ms, ++c->next_tag)) != PL_OK) {
		return rc;
	}
	slot->tag = c->next_tag;
	slot->cb = cb;
	slot->arg = arg;
	return PL_OK;
}

/* Answers a request from another node with its service's reply. */
static void
serve_request(clu_cluster *c, const clu_direct_ev *ev)
{
	char from[PRO_WIRE_NAME_MAX + 1];
	const clu_service_ops *ops;
	pro_wire_str sender, bytes;
	uint32_t kind;
	void *sarg = NULL;
	int rc;

	c->answer.len = 0;
	if (pro_wire_decode_request(
		ev->data, ev->len, &sender, &kind, &bytes) != PL_OK) {
		c->st.malformed++;
		rc = PL_EPROTO;
	} else {
		copy_str(from, sender);
		if (clu_filter_blocked(c->filter, from)) {
			c->st.blocked++;
			rc = PL_EAGAIN;
		} else if ((ops = service_of(c, kind, &sarg)) == NULL ||
		    ops->on_request == NULL) {
			c->st.unknown++;
			rc = PL_ENOTFOUND;
		} else {
			rc = ops->on_request(
			    sarg, from, kind, bytes.ptr, bytes.len, &c->answer);
		}
	}
	c->scratch.len = 0;
	if (rc != PL_OK) {
		c->answer.len = 0;
	}
	if (pro_wire_encode_reply(&c->scratch, (uint32_t)rc, c->answer.data,
		c->answer.len) == PL_OK) {
		clu_direct_reply(
		    c->direct, ev->id, c->scratch.data, c->scratch.len);
	}
}

static void
complete_request(clu_cluster *c, const clu_direct_ev *ev)
{
	struct pending_req *slot = NULL, r;
	pro_wire_str bytes = { "", 0 };
	uint32_t status;
	int rc = ev->status;

	for (size_t i = 0; i < CLU_REQUESTS_MAX && slot == NULL; i++) {
		if (c->reqs[i].tag == ev->id) {
			slot = &c->reqs[i];
		}
	}
	if (slot == NULL) {
		return;
	}
	r = *slot;
	slot->tag = 0;
	if (rc == PL_OK) {
		if (pro_wire_decode_reply(ev->data, ev->len, &status, &bytes) !=
		    PL_OK) {
			c->st.malformed++;
			rc = PL_EPROTO;
		} else {
			rc = (int)status;
		}
	}
	if (rc != PL_OK) {
		bytes.ptr = "";
		bytes.len = 0;
	}
	r.cb(r.arg, rc, bytes.ptr, bytes.len);
}

/* Handles what the addressed path completed since the last call, at most
 * budget events (0: all). Returns true when it stopped at the budget. */
static bool
drain_direct(clu_cluster *c, size_t budget)
{
	clu_direct_ev ev;
	size_t n = 0;

	for (; (budget == 0 || n < budget) && clu_direct_next(c->direct, &ev);
	     n++) {
		if (ev.type == CLU_DIRECT_REQUEST) {
			serve_request(c, &ev);
		} else {
			complete_request(c, &ev);
		}
		clu_direct_ev_release(&ev);
	}
	return budget != 0 && n == budget;
}

const char *
clu_cluster_direct_address(const clu_cluster *c)
{
	return c->direct_advertise;
}

/* ---- dialing ---- */

static void
dial_member(void *arg, const clu_member_info *m)
{
	clu_cluster *c = arg;

	/* Dead members stay dialled (NNG retries with backoff) until they are
	 * forgotten, so both sides of a healed network partition reconnect;
	 * left members are not. */
	if (m->self || m->status == CLU_LEFT || m->address[0] == '\0' ||
	    clu_seeds_is_self(c->seeds, m->address)) {
		return;
	}
	clu_bus_dial(c->bus, m->address);
	if ((m->status == CLU_ALIVE || m->status == CLU_SUSPECT) &&
	    clu_bus_connected(c->bus, m->address)) {
		c->reachable++;
	}
}

static void
reconcile_dialers(clu_cluster *c)
{
	c->dial_dirty = false;
	c->reachable = 0;
	clu_bus_dial_begin(c->bus);
	/* After our own leave we keep our connections so the repeated leave
	 * announcements reach everyone until destroy. */
	clu_membership_foreach(c->mem, dial_member, c);
	/* Seeds are dialled (anonymously) until one of our own dialers is
	 * connected to a live member; from then on gossip tells us everyone
	 * else. Knowing a live member is not enough: its first message may
	 * carry no address (a broadcast, or an answer to another joiner), and
	 * a dialer to its address may not have connected yet. Dropping the
	 * seed then would leave us unheard until the member is declared dead. */
	if (c->reachable == 0 && !clu_membership_self_left(c->mem)) {
		clu_seeds_dial(c->seeds, c->bus);
	}
	clu_bus_dial_end(c->bus);
}

/* Our own envelope came back on pipe: if one of our dialers made it, that
 * URL reaches ourselves and is never dialled again. */
static void
self_loop(clu_cluster *c, uint32_t pipe)
{
	const char *url = clu_bus_pipe_dial_url(c->bus, pipe);

	if (url != NULL && clu_seeds_add_self(c->seeds, url)) {
		/* Closed at once: a dialer to ourselves echoes everything. */
		clu_bus_undial(c->bus, url);
		c->dial_dirty = true;
	}
}

/* ---- events and leader ---- */

static void
check_leader(clu_cluster *c)
{
	const char *l = clu_membership_leader(c->mem);

	if (clu_membership_self_left(c->mem)) {
		/* A node that has left belongs to no cluster: it reports no
		 * leader, once, rather than following the others' view while
		 * it lingers. */
		l = NULL;
	} else if (clu_seeds_configured(c->seeds) && !c->heard_other &&
	    c->now - c->created < c->o.suspect_after_ms) {
		/* A node with seeds claims no leader until it has heard a
		 * peer (or waited long enough to be sure it is alone), so a
		 * joining node does not briefly lead on its own. */
		l = NULL;
	}
	if (l == NULL ? !c->has_leader
		      : (c->has_leader && strcmp(l, c->leader) == 0)) {
		return; /* no change */
	}
	LOG_INFO("CLU-LEADER", "leader is now %s (was %s)", l ? l : "(none)",
	    c->has_leader ? c->leader : "(none)");
	c->has_leader = l != NULL;
	snprintf(c->leader, sizeof(c->leader), "%s", l ? l : "");
	c->leader_since = pl_wall_ms();
	if (c->o.cb.on_leader_change != NULL) {
		c->o.cb.on_leader_change(
		    c->o.cb.arg, l ? c->leader : NULL, c->leader_since);
	}
	for (size_t i = 0; i < c->nsvc; i++) {
		if (c->svc[i].ops->on_leader_change != NULL) {
			c->svc[i].ops->on_leader_change(
			    c->svc[i].arg, l ? c->leader : NULL);
		}
	}
}

static void
dispatch_events(clu_cluster *c)
{
	clu_member_event ev;

	if (clu_membership_take_addr_changed(c->mem) ||
	    clu_bus_take_pipe_change(c->bus)) {
		c->dial_dirty = true;
	}
	while (clu_membership_next_event(c->mem, &ev)) {
		c->dial_dirty = true;
		if (c->o.cb.on_member_change != NULL) {
			c->o.cb.on_member_change(
			    c->o.cb.arg, ev.name, ev.old_status, ev.new_status);
		}
		if (strcmp(ev.name, c->name) == 0) {
			continue;
		}
		for (size_t i = 0; i < c->nsvc; i++) {
			if (c->svc[i].ops->on_member_change != NULL) {
				c->svc[i].ops->on_member_change(c->svc[i].arg,
				    ev.name, ev.old_status, ev.new_status);
			}
		}
	}
	if (c->dial_dirty) {
		reconcile_dialers(c);
	}
	check_leader(c);
}

/* ---- receiving ---- */

static void
deliver_broadcast(clu_cluster *c, const pro_wire_msg *m, const char *from)
{
	char topic[PRO_WIRE_TOPIC_MAX + 1], event[PRO_WIRE_EVENT_MAX + 1];
	uint64_t gap;

	if (!str_eq(m->u.broadcast.publisher, from)) {
		c->st.malformed++; /* nothing relays yet: publisher = sender */
		return;
	}
	if (!clu_membership_broadcast_seq(
		c->mem, m->hdr.sender, m->u.broadcast.seq, &gap)) {
		c->st.duplicates++;
		return;
	}
	/* A hole means the bus dropped a message (a full queue); there is no
	 * retransmission yet, so deliver what we have and count the loss. */
	c->st.gaps += gap;
	c->st.broadcasts_delivered++;
	if (c->o.cb.on_broadcast != NULL) {
		copy_str(topic, m->u.broadcast.topic);
		copy_str(event, m->u.broadcast.event);
		c->o.cb.on_broadcast(c->o.cb.arg, from, m->u.broadcast.seq,
		    topic, event, m->u.broadcast.payload.ptr,
		    m->u.broadcast.payload.len);
	}
}

/* Hands an app message to the service owning its kind. */
static void
deliver_app(clu_cluster *c, const pro_wire_msg *m, const char *from)
{
	uint32_t kind = m->u.app.app_kind;

	for (size_t i = 0; i < c->nsvc; i++) {
		const clu_service_ops *ops = c->svc[i].ops;

		if (kind >= ops->kind_first &&
		    kind - ops->kind_first < ops->kind_count) {
			c->st.apps_delivered++;
			if (ops->on_message != NULL) {
				ops->on_message(c->svc[i].arg, from, kind,
				    m->u.app.bytes.ptr, m->u.app.bytes.len);
			}
			return;
		}
	}
	c->st.unknown++;
}

static void
handle(clu_cluster *c, const pro_wire_msg *m, uint32_t pipe, uint64_t now)
{
	const pro_wire_hdr *h = &m->hdr;
	char from[PRO_WIRE_NAME_MAX + 1];
	clu_status before;
	clu_verdict v;
	bool knew_addr;

	if (clu_filter_drops(c->filter, h, c->name)) {
		c->st.blocked++;
		return;
	}
	copy_str(from, h->sender);
	before = clu_membership_status(c->mem, from);
	knew_addr = clu_membership_address(c->mem, from)[0] != '\0';
	v = clu_membership_heard(
	    c->mem, h->sender, h->incarnation, h->start_id, now);
	if (v == CLU_REFUSE_SELF) {
		c->st.refused++;
		self_loop(c, pipe);
		return;
	}
	if (v == CLU_REFUSE_CONFLICT || v == CLU_REFUSE_STALE) {
		c->st.refused++;
		return;
	}
	if (clu_membership_duplicate(c->mem, h->sender, h->seq)) {
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
		clu_membership_merge(
		    c->mem, h->sender, m->u.digest.members, m->u.digest.n, now);
		/* A newcomer (or a restarted node, or one we had only heard
		 * through messages without its address) learns the whole
		 * cluster from our answer instead of waiting for our next
		 * heartbeat, and so do the others learn the newcomer: the
		 * answer goes to everyone. */
		if (m->kind == PRO_WIRE_PING &&
		    (!knew_addr || v == CLU_ACCEPT_RESTART) &&
		    !clu_membership_self_left(c->mem)) {
			send_digest(c, PRO_WIRE_PING_ACK, NULL);
		}
		break;
	case PRO_WIRE_LEAVE:
		clu_membership_left(
		    c->mem, h->sender, h->incarnation, h->start_id, now);
		/* Tell nodes that have no connection to the leaver yet. */
		c->gossip_now = before != CLU_LEFT;
		break;
	case PRO_WIRE_BROADCAST: deliver_broadcast(c, m, from); break;
	case PRO_WIRE_APP: deliver_app(c, m, from); break;
	default: break;
	}
}

/* Walks the envelopes of one frame; a malformed one ends the frame. */
static void
handle_frame(clu_cluster *c, clu_bus_msg *bm, uint64_t now)
{
	const char *p = clu_bus_msg_data(bm);
	size_t left = clu_bus_msg_len(bm), used;

	c->st.bus_bytes_in += left;
	uint32_t pipe = clu_bus_msg_pipe(bm);

	do {
		pro_wire_msg m;

		if (pro_wire_decode(p, left, &used, &m) != PL_OK) {
			c->st.malformed++;
			if (clu_filter_malformed(c->filter, pipe, now)) {
				clu_bus_pipe_close(c->bus, pipe);
				c->st.cut_off_peers++;
			}
			return;
		}
		c->st.received++;
		if (m.skip != PRO_WIRE_SKIP_NONE) {
			c->st.unknown++;
		} else {
			handle(c, &m, pipe, now);
		}
		pro_wire_msg_release(&m);
		dispatch_events(c);
		p += used;
		left -= used;
	} while (left > 0);
}

/* Processes up to budget frames (0: all). Returns true when more wait. */
static bool
drain(clu_cluster *c, uint64_t now, size_t budget)
{
	clu_bus_msg *bm;
	size_t done = 0;
	bool more;

	clu_bus_clear_fd(c->bus);
	if (clu_seeds_take_resolved(c->seeds)) {
		c->dial_dirty = true;
	}
	while ((budget == 0 || done < budget) &&
	    (bm = clu_bus_recv(c->bus)) != NULL) {
		done++;
		handle_frame(c, bm, now);
		clu_bus_msg_free(bm);
	}
	more = drain_direct(c, budget);
	if (clu_membership_take_urgent(c->mem) || c->gossip_now) {
		c->gossip_now = false;
		send_digest(c, PRO_WIRE_PING, NULL);
	}
	return more || (budget != 0 && done == budget);
}

static void
enter(clu_cluster *c, uint64_t now)
{
	if (!c->clock_set) {
		c->clock_set = true;
		c->created = now;
		c->next_hb = now;
		c->next_dns = now;
	}
	c->now = now;
	c->in_call = true;
}

static void
leave_call(clu_cluster *c)
{
	dispatch_events(c);
	flush(c);
	c->in_call = false;
}

void
clu_cluster_poll(clu_cluster *c, uint64_t now)
{
	enter(c, now);
	if (drain(c, now, POLL_BUDGET)) {
		clu_bus_wake(c->bus); /* come back for the rest */
	}
	leave_call(c);
}

void
clu_cluster_tick(clu_cluster *c, uint64_t now)
{
	bool alone;

	enter(c, now);
	/* Everything that already arrived counts before timeouts are judged. */
	drain(c, now, 0);
	clu_membership_tick(c->mem, now);
	/* Alone also while no dialer of ours reaches a live member: our
	 * heartbeats may then be going nowhere. */
	alone = clu_membership_live_others(c->mem) == 0 || c->reachable == 0;
	if (now >= c->next_hb) {
		if (clu_membership_self_left(c->mem)) {
			send_leave(c);
		} else {
			send_digest(c, PRO_WIRE_PING, NULL);
		}
		/* While alone, ping every tick: the first pings to a seed go
		 * out before its connection is up and are lost. */
		c->next_hb = now +
		    (alone && c->o.heartbeat_ms > CLU_CLUSTER_TICK_MS
			    ? CLU_CLUSTER_TICK_MS
			    : c->o.heartbeat_ms);
	}
	if (alone && now >= c->next_dns) {
		clu_seeds_resolve(c->seeds);
		c->next_dns = now + c->o.dns_interval_ms;
	}
	clu_bus_dial_sweep(c->bus);
	clu_filter_expire(c->filter, now);
	dispatch_events(c);
	for (size_t i = 0; i < c->nsvc; i++) {
		if (c->svc[i].ops->on_tick != NULL) {
			c->svc[i].ops->on_tick(c->svc[i].arg, now);
		}
	}
	leave_call(c);
}

/* ---- lifecycle ---- */

static void
wake_bus(void *arg)
{
	clu_bus_wake(arg);
}

/* The addressed path listens beside the bus and shares its wake-up fd. */
static int
open_direct(clu_cluster *c, const clu_cluster_opts *o, const char *bus_listen)
{
	clu_direct_opts d;
	char *listen = o->direct_listen_url
	    ? strdup(o->direct_listen_url)
	    : clu_seeds_direct_listen(bus_listen);
	int rc;

	if (listen == NULL) {
		LOG_ERR("CLU-DIRECTURL",
		    "no addressed-path URL: give one beside %s", bus_listen);
		return PL_EINVAL;
	}
	d.listen_url = listen;
	d.recv_max = o->recv_max_bytes;
	d.reconnect_min_ms = o->reconnect_min_ms;
	d.reconnect_max_ms = o->reconnect_max_ms;
	d.wake = wake_bus;
	d.wake_arg = c->bus;
	rc = clu_direct_create(&c->direct, &d);
	if (rc == PL_OK) {
		c->direct_advertise = o->direct_advertise_url
		    ? strdup(o->direct_advertise_url)
		    : clu_seeds_derive_advertise(
			  c->advertise, clu_direct_port(c->direct));
		rc = c->direct_advertise ? PL_OK : PL_ENOMEM;
		LOG_INFO("CLU-DIRECT", "addressed path on %s, advertised as %s",
		    listen, c->direct_advertise ? c->direct_advertise : "?");
	}
	free(listen);
	return rc;
}

int
clu_cluster_create(clu_cluster **out, const clu_cluster_opts *o)
{
	clu_membership_opts mo;
	clu_bus_opts bo;
	clu_cluster *c;
	char host[256], **urls, **dns;
	size_t n_urls, n_dns;
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
		LOG_ERR("CLU-NAME",
		    "node name must be 1..%d printable "
		    "characters without spaces",
		    PRO_WIRE_NAME_MAX);
		return PL_EINVAL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		return PL_ENOMEM;
	}
	c->o = *o;
	c->o.node_name = c->o.listen_url = c->o.advertise_url = c->o.join =
	    NULL;
	memcpy(c->name, name, strlen(name) + 1); /* name_valid() bounded it */
	c->frame_max =
	    o->recv_max_bytes < FRAME_MAX ? o->recv_max_bytes : FRAME_MAX;
	c->leader_since = pl_wall_ms();
	pro_wire_buf_init(&c->out);
	if ((c->digest = calloc(PRO_WIRE_DIGEST_MAX, sizeof(*c->digest))) ==
		NULL ||
	    clu_filter_create(&c->filter, o->malformed_limit,
		o->malformed_window_ms) != PL_OK) {
		goto fail;
	}
	/* A bad join list fails before we bind the port. */
	if ((rc = clu_seeds_parse_join(
		 o->join, &urls, &n_urls, &dns, &n_dns)) != PL_OK) {
		goto fail;
	}
	clu_seeds_strv_free(urls, n_urls);
	clu_seeds_strv_free(dns, n_dns);
	bo.listen_url = o->listen_url ? o->listen_url : "tcp://0.0.0.0:4002";
	bo.recv_max = o->recv_max_bytes;
	bo.reconnect_min_ms = o->reconnect_min_ms;
	bo.reconnect_max_ms = o->reconnect_max_ms;
	bo.queue_max = QUEUE_MAX;
	bo.retire_ms = 0;
	if ((rc = clu_bus_create(&c->bus, &bo)) != PL_OK) {
		goto fail;
	}
	rc = PL_ENOMEM;
	c->advertise = o->advertise_url
	    ? strdup(o->advertise_url)
	    : clu_seeds_derive_advertise(bo.listen_url, clu_bus_port(c->bus));
	if (c->advertise == NULL) {
		goto fail;
	}
	if ((rc = clu_seeds_create(&c->seeds, o->join, c->advertise,
		 clu_bus_fd(c->bus))) != PL_OK) {
		goto fail;
	}
	if ((rc = open_direct(c, o, bo.listen_url)) != PL_OK) {
		goto fail;
	}
	rc = PL_ENOMEM;
	mo.suspect_after_ms = o->suspect_after_ms;
	mo.dead_after_ms = o->dead_after_ms;
	mo.forget_after_ms = o->forget_after_ms;
	/* A tick gap this long means our own loop stalled. */
	mo.stall_ms =
	    o->suspect_after_ms / 2 > 1000 ? o->suspect_after_ms / 2 : 1000;
	mo.max_members = PRO_WIRE_DIGEST_MAX;
	if ((rc = clu_membership_create(&c->mem, c->name, c->advertise,
		 o->start_id ? o->start_id : pl_wall_ms(), &mo)) != PL_OK) {
		goto fail;
	}
	clu_membership_set_direct(c->mem, c->direct_advertise);
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
	if (!crash && c->mem != NULL && c->bus != NULL) {
		struct timespec ts = { 0, LEAVE_LINGER_MS * 1000000L };

		clu_cluster_leave(c);
		flush(c);
		/* Closing the socket drops queued messages: give the leave
		 * a moment to reach the wire. */
		nanosleep(&ts, NULL);
	}
	clu_seeds_destroy(c->seeds);
	/* Before the bus: its NNG threads wake the bus's fd. */
	clu_direct_destroy(c->direct);
	clu_bus_destroy(c->bus);
	clu_membership_destroy(c->mem);
	clu_filter_destroy(c->filter);
	pro_wire_buf_free(&c->out);
	pro_wire_buf_free(&c->scratch);
	pro_wire_buf_free(&c->answer);
	free(c->direct_advertise);
	free(c->digest);
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
	return (!clu_seeds_configured(c->seeds) || c->heard_other) &&
	    !clu_membership_self_refused(c->mem, c->now);
}

int
clu_cluster_set_blocked(clu_cluster *c, const char *name, bool blocked)
{
	return name_valid(name) ? clu_filter_block(c->filter, name, blocked)
				: PL_EINVAL;
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
	clu_direct_stats ds;

	*out = c->st;
	out->dropped += clu_bus_queue_dropped(c->bus);
	out->name_conflicts = clu_membership_conflicts(c->mem);
	out->members_alive = out->members_suspect = 0;
	out->members_dead = out->members_left = 0;
	clu_membership_foreach(c->mem, count_member, out);
	out->dialers = (uint32_t)clu_bus_dialer_count(c->bus);
	clu_direct_stats_get(c->direct, &ds);
	out->requests_sent = ds.requests_sent;
	out->requests_served = ds.requests_served;
	out->requests_failed = ds.failures;
	out->direct_bytes_in = ds.bytes_in;
	out->direct_bytes_out = ds.bytes_out;
}
