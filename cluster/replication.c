/* SPDX-License-Identifier: Apache-2.0 */
/* Comment replication (see replication.h): the origin table with our marks
 * and each peer's, live copies and their acknowledgements, anti-entropy
 * pulls over the addressed path, and the catch-up gate. */
#include "cluster/replication.h"

#include "cluster/ackwait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "proto/repl.h"

enum {
	REPL_VEC = CLU_KINDS_REPLICATION,
	REPL_COMMENTS,
	REPL_ACK,
	REPL_PULL,
};

#define PEERS_MAX 64           /* peers whose marks we keep */
#define PULLS_AT_ONCE 2        /* origins pulled concurrently */
#define UNDURABLE_MAX 2        /* chunks queued, not durable, per origin */
#define CHUNK_BYTES (1u << 20) /* a chunk's comments stop near this */
#define SAVE_EVERY_MS 1000     /* cw marks are persisted this often */
#define PROGRESS_EVERY_MS 5000 /* catch-up progress in the log */
#define WM_PREFIX "cw:"
#define CATCHUP_VECTOR_MS 250 /* vector period until caught up */

typedef struct rpeer {
	char name[PRO_WIRE_NAME_MAX + 1];
	bool alive;
	bool heard_vec; /* sent us a vector since it was last alive */
} rpeer;

typedef struct pmark {
	uint64_t cw, hw;
	bool known;
} pmark;

typedef struct origin {
	char *name;
	uint64_t cw, hw;
	uint64_t cw_saved;     /* last value persisted */
	uint64_t target;       /* catch-up: the best cw peers showed */
	uint64_t fetched;      /* highest `through` received (>= cw) */
	uint64_t behind_since; /* mono ms; 0 while not behind */
	unsigned undurable;    /* chunks queued in the store */
	bool pulling;          /* a request in flight */
	pmark peer[PEERS_MAX];
} origin;

/* A group of replica puts whose completion matters together: one live
 * message (to acknowledge) or one chunk (to move cw). */
typedef struct batch {
	clu_replication *r; /* NULL once the service is gone */
	origin *o;
	unsigned remaining;
	bool failed;
	bool chunk;
	uint64_t after, through; /* chunk */
	char from[PRO_WIRE_NAME_MAX + 1];
	bool ack;
	uint64_t *seqs; /* live: what to acknowledge */
	size_t nseqs;
	struct batch *prev, *next;
} batch;

typedef struct pullreq {
	clu_replication *r;
	origin *o;
	int peer; /* index of the peer asked */
	uint64_t after;
	struct pullreq *next;
} pullreq;

struct clu_replication {
	clu_replication_opts o;
	char *origin_name;
	char *node;
	origin *self;
	origin **v; /* sorted by name */
	size_t n, cap;
	rpeer peers[PEERS_MAX];
	size_t npeers;
	batch *batches;
	pullreq *pulls;
	unsigned active_pulls;
	size_t rr;         /* where the next pull scan starts */
	clu_ackwait *acks; /* NULL unless ack_replicas > 1 */
	pro_wire_buf buf;
	uint64_t now, start, next_vec, next_save, next_progress;
	bool caught_up;
	bool peers_seen; /* every alive peer's vector heard once */
	clu_replication_stats st;
};

/* ---- tables ---- */

static long
find_idx(const clu_replication *r, const char *name, size_t len)
{
	size_t lo = 0, hi = r->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = r->v[mid]->name;
		size_t ml = strlen(m);
		int c = memcmp(m, name, ml < len ? ml : len);

		if (c == 0) {
			c = ml < len ? -1 : (ml > len ? 1 : 0);
		}
		if (c == 0) {
			return (long)mid;
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return -(long)lo - 1;
}

static origin *
find_origin(const clu_replication *r, pro_wire_str s)
{
	long i = find_idx(r, s.ptr, s.len);

	return i >= 0 ? r->v[i] : NULL;
}

static origin *
get_origin(clu_replication *r, pro_wire_str s)
{
	long i = find_idx(r, s.ptr, s.len);
	size_t at;
	origin *o;

	if (i >= 0) {
		return r->v[i];
	}
	if (!pro_repl_origin_ok(s)) {
		return NULL;
	}
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		origin **p = realloc(r->v, cap * sizeof(*p));

		if (p == NULL) {
			return NULL;
		}
		r->v = p;
		r->cap = cap;
	}
	if ((o = calloc(1, sizeof(*o))) == NULL ||
	    (o->name = strndup(s.ptr, s.len)) == NULL) {
		free(o);
		return NULL;
	}
	at = (size_t)(-i - 1);
	memmove(&r->v[at + 1], &r->v[at], (r->n - at) * sizeof(*r->v));
	r->v[at] = o;
	r->n++;
	return o;
}

static int
peer_idx(clu_replication *r, const char *name, bool add)
{
	for (size_t i = 0; i < r->npeers; i++) {
		if (strcmp(r->peers[i].name, name) == 0) {
			return (int)i;
		}
	}
	if (!add || r->npeers == PEERS_MAX) {
		return -1;
	}
	snprintf(
	    r->peers[r->npeers].name, sizeof(r->peers[0].name), "%s", name);
	r->peers[r->npeers].alive =
	    clu_cluster_member_status(r->o.cluster, name) == CLU_ALIVE ||
	    clu_cluster_member_status(r->o.cluster, name) == CLU_SUSPECT;
	return (int)r->npeers++;
}

/* The alive peer with the highest cw for o, or -1. */
static int
best_peer(const clu_replication *r, const origin *o)
{
	int best = -1;

	for (size_t i = 0; i < r->npeers; i++) {
		if (r->peers[i].alive && o->peer[i].known &&
		    (best < 0 || o->peer[i].cw > o->peer[best].cw)) {
			best = (int)i;
		}
	}
	return best;
}

static uint64_t
lag_of(const clu_replication *r, const origin *o)
{
	int b = best_peer(r, o);

	return b >= 0 && o->peer[b].cw > o->cw ? o->peer[b].cw - o->cw : 0;
}

/* ---- sending ---- */

static void
send_vector(clu_replication *r)
{
	pro_repl_mark *m = calloc(r->n ? r->n : 1, sizeof(*m));
	size_t n = 0;

	if (m == NULL) {
		return;
	}
	for (size_t i = 0; i < r->n && n < PRO_REPL_VEC_MAX; i++) {
		m[n].origin = pro_wire_cstr(r->v[i]->name);
		m[n].cw = r->v[i]->cw;
		m[n].hw = r->v[i]->hw > r->v[i]->cw ? r->v[i]->hw : r->v[i]->cw;
		n++;
	}
	r->buf.len = 0;
	if (pro_repl_encode_vec(&r->buf, m, n) == PL_OK) {
		clu_cluster_send_app(
		    r->o.cluster, NULL, REPL_VEC, r->buf.data, r->buf.len);
	}
	free(m);
}

static void
send_ack(clu_replication *r, const batch *b)
{
	r->buf.len = 0;
	if (pro_repl_encode_ack(&r->buf, pro_wire_cstr(b->o->name), b->seqs,
		b->nseqs) == PL_OK) {
		clu_cluster_send_app(
		    r->o.cluster, b->from, REPL_ACK, r->buf.data, r->buf.len);
	}
}

/* ---- replica puts ---- */

static void schedule_pulls(clu_replication *r);

static void
batch_free(batch *b)
{
	if (b->r != NULL) {
		if (b->prev != NULL) {
			b->prev->next = b->next;
		} else {
			b->r->batches = b->next;
		}
		if (b->next != NULL) {
			b->next->prev = b->prev;
		}
	}
	free(b->seqs);
	free(b);
}

static void
batch_done(batch *b)
{
	clu_replication *r = b->r;
	origin *o = b->o;

	if (b->chunk) {
		o->undurable--;
		if (b->failed) {
			o->fetched = o->cw; /* ask again from what is durable */
		} else if (b->after <= o->cw && b->through > o->cw) {
			o->cw = b->through;
		}
		batch_free(b);
		schedule_pulls(r);
		return;
	}
	if (b->ack && !b->failed) {
		send_ack(r, b);
	}
	batch_free(b);
}

static void
on_put(void *arg, int status, const sto_comment *c)
{
	batch *b = arg;
	clu_replication *r = b->r;

	if (r == NULL) {
		/* The service is gone; the store runs what it had queued. */
		if (--b->remaining == 0) {
			batch_free(b);
		}
		return;
	}
	switch (status) {
	case PL_OK:
		r->st.stored++;
		if (!b->chunk && r->o.delay_seconds != NULL) {
			int64_t ms = (int64_t)pl_wall_ms() - c->inserted_at;

			pl_histogram_observe(
			    r->o.delay_seconds, ms > 0 ? ms / 1000.0 : 0);
		}
		break;
	case PL_EEXIST: r->st.duplicates++; break;
	case PL_EPROTO:
		r->st.conflicts++;
		LOG_SUMMARY(PL_LOG_WARN, "CLU-REPLCONFLICT",
		    "comment %s (origin %s seq %llu) from %s conflicts with "
		    "what is stored here; refused, the stored copy is kept",
		    c->id, c->origin, (unsigned long long)c->seq, b->from);
		break;
	default:
		b->failed = true;
		LOG_SUMMARY(PL_LOG_ERR, "CLU-REPLSTORE",
		    "replica of %s from %s not stored: %s", c->id, b->from,
		    pl_strerror(status));
		break;
	}
	if (status == PL_OK || status == PL_EEXIST) {
		if (c->seq > b->o->hw) {
			b->o->hw = c->seq;
		}
		if (!b->chunk && c->seq == b->o->cw + 1) {
			b->o->cw = c->seq;
		}
	}
	if (--b->remaining == 0) {
		batch_done(b);
	}
}

static batch *
batch_new(clu_replication *r, origin *o, const char *from)
{
	batch *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		return NULL;
	}
	b->r = r;
	b->o = o;
	snprintf(b->from, sizeof(b->from), "%s", from);
	b->next = r->batches;
	if (r->batches != NULL) {
		r->batches->prev = b;
	}
	r->batches = b;
	return b;
}

/* Queues every comment of m in the store under batch b; b finishes when
 * the last completes (at once when there are none). */
static void
put_all(clu_replication *r, batch *b, const pro_repl_msg *m)
{
	b->remaining = 1; /* held while queueing */
	for (size_t i = 0; i < m->ncomments; i++) {
		const pro_repl_comment *in = &m->comments[i];
		sto_comment c;
		char video[PRO_REPL_VIDEO_MAX + 1], user[PRO_REPL_USER_MAX + 1];
		char *content;

		if ((content = strndup(in->content.ptr, in->content.len)) ==
		    NULL) {
			b->failed = true;
			continue;
		}
		memset(&c, 0, sizeof(c));
		memcpy(c.id, in->id.ptr, PRO_REPL_ID_LEN);
		snprintf(video, sizeof(video), "%.*s", (int)in->video_id.len,
		    in->video_id.ptr);
		snprintf(user, sizeof(user), "%.*s", (int)in->user_id.len,
		    in->user_id.ptr);
		c.video_id = video;
		c.user_id = user;
		c.content = content;
		c.origin = b->o->name;
		c.seq = in->seq;
		c.inserted_at = in->inserted_at;
		b->remaining++;
		if (sto_comments_put_replica(r->o.store, &c, on_put, b) !=
		    PL_OK) {
			b->remaining--;
			b->failed = true;
		}
		free(content);
	}
	if (--b->remaining == 0) {
		batch_done(b);
	}
}

/* ---- live copies and acknowledgements ---- */

/* True when origin is one of node's ("node~..."): only its writer sends
 * live copies of it. */
static bool
origin_of(pro_wire_str origin, const char *node)
{
	size_t n = strlen(node);

	return origin.len > n && memcmp(origin.ptr, node, n) == 0 &&
	    origin.ptr[n] == '~';
}

static void
on_comments(clu_replication *r, const char *from, const pro_repl_msg *m)
{
	origin *o;
	batch *b;

	if (!origin_of(m->origin, from)) {
		r->st.malformed++;
		LOG_SUMMARY(PL_LOG_WARN, "CLU-REPLFROM",
		    "live copies of origin %.*s from %s, not its writer; "
		    "dropped",
		    (int)m->origin.len, m->origin.ptr, from);
		return;
	}
	o = get_origin(r, m->origin);
	if (o == NULL || o == r->self || (b = batch_new(r, o, from)) == NULL) {
		return;
	}
	r->st.live_in += m->ncomments;
	if (m->flag && m->ncomments > 0 &&
	    (b->seqs = malloc(m->ncomments * sizeof(*b->seqs))) != NULL) {
		b->ack = true;
		b->nseqs = m->ncomments;
		for (size_t i = 0; i < m->ncomments; i++) {
			b->seqs[i] = m->comments[i].seq;
		}
	}
	put_all(r, b, m);
}

static void
on_ack(clu_replication *r, const char *from, const pro_repl_msg *m)
{
	int p = peer_idx(r, from, true);

	if (p < 0 || r->acks == NULL ||
	    strlen(r->self->name) != m->origin.len ||
	    memcmp(r->self->name, m->origin.ptr, m->origin.len) != 0) {
		return;
	}
	clu_ackwait_ack(r->acks, (unsigned)p, m->seqs, m->nseqs);
	r->st.acks_pending = clu_ackwait_pending(r->acks);
}

bool
clu_replication_can_ack(const clu_replication *r)
{
	clu_cluster_stats st;

	if (r->o.ack_replicas <= 1) {
		return true;
	}
	clu_cluster_stats_get(r->o.cluster, &st);
	return st.members_alive + st.members_suspect >= r->o.ack_replicas;
}

int
clu_replication_publish(clu_replication *r, const sto_comment *c,
    clu_replication_done_fn done, void *arg)
{
	pro_repl_comment pc;
	bool ack = r->o.ack_replicas > 1 && done != NULL;
	int rc;

	if (strcmp(c->origin, r->self->name) != 0) {
		return PL_EINVAL;
	}
	if (c->seq > r->self->cw) {
		r->self->cw = r->self->hw = c->seq;
	}
	pc.seq = c->seq;
	pc.id = pro_wire_cstr(c->id);
	pc.video_id = pro_wire_cstr(c->video_id);
	pc.user_id = pro_wire_cstr(c->user_id);
	pc.content = pro_wire_cstr(c->content);
	pc.inserted_at = c->inserted_at;
	r->buf.len = 0;
	if ((rc = pro_repl_encode_comments(&r->buf,
		 pro_wire_cstr(r->self->name), ack, &pc, 1)) != PL_OK ||
	    (rc = clu_cluster_send_app(r->o.cluster, NULL, REPL_COMMENTS,
		 r->buf.data, r->buf.len)) != PL_OK) {
		return rc;
	}
	if (!ack) {
		return PL_OK;
	}
	if ((rc = clu_ackwait_add(r->acks, c->seq, pl_mono_ms(), done, arg)) !=
	    PL_OK) {
		return rc;
	}
	r->st.acks_pending = clu_ackwait_pending(r->acks);
	return PL_OK;
}

/* ---- anti-entropy ---- */

static void
on_vector(clu_replication *r, const char *from, const pro_repl_msg *m)
{
	int p = peer_idx(r, from, true);
	bool first;

	if (p < 0) {
		return;
	}
	first = !r->peers[p].heard_vec;
	r->peers[p].heard_vec = true;
	for (size_t i = 0; i < m->nmarks; i++) {
		origin *o = get_origin(r, m->marks[i].origin);

		if (o == NULL) {
			continue;
		}
		o->peer[p].cw = m->marks[i].cw;
		o->peer[p].hw = m->marks[i].hw;
		o->peer[p].known = true;
		if (first && !r->caught_up && m->marks[i].cw > o->target) {
			o->target = m->marks[i].cw;
		}
	}
	/* Our own vector, sent when this peer turned alive, may have gone
	 * out before the bus had a pipe to it: answer its first one, so
	 * that neither side waits a whole vector_ms to be caught up. */
	if (first) {
		send_vector(r);
	}
	schedule_pulls(r);
}

static void
on_chunk_reply(void *arg, int status, const void *bytes, size_t len)
{
	pullreq *q = arg;
	clu_replication *r = q->r;
	origin *o = q->o;
	pro_repl_msg m;
	uint64_t last;
	batch *b;
	bool ok;

	for (pullreq **pp = &r->pulls; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == q) {
			*pp = q->next;
			break;
		}
	}
	o->pulling = false;
	r->active_pulls--;
	if (status != PL_OK) {
		r->st.pull_failures++;
		goto out;
	}
	if (pro_repl_decode(bytes, len, &m) != PL_OK) {
		r->st.malformed++;
		goto out;
	}
	/* The chunk must be what we asked for: our origin's comments in
	 * (after, through], ascending. */
	ok = m.type == PRO_REPL_CHUNK && m.origin.len == strlen(o->name) &&
	    memcmp(m.origin.ptr, o->name, m.origin.len) == 0;
	if (ok && m.through < q->after && m.ncomments == 0) {
		/* The peer holds less than its last vector said (restored
		 * from an older copy): believe it now, ask elsewhere. */
		o->peer[q->peer].cw = m.through;
		r->st.pull_failures++;
		pro_repl_msg_release(&m);
		goto out;
	}
	ok = ok && m.through >= q->after;
	last = q->after;
	for (size_t i = 0; ok && i < m.ncomments; i++) {
		ok = m.comments[i].seq > last && m.comments[i].seq <= m.through;
		last = m.comments[i].seq;
	}
	if (!ok) {
		r->st.malformed++;
	} else if ((b = batch_new(r, o, "")) != NULL) {
		r->st.catchup_bytes += len;
		r->st.catchup_comments += m.ncomments;
		b->chunk = true;
		b->after = q->after;
		b->through = m.through;
		if (m.through > o->fetched) {
			o->fetched = m.through;
		}
		o->undurable++;
		put_all(r, b, &m);
	}
	pro_repl_msg_release(&m);
out:
	free(q);
	schedule_pulls(r);
}

static void
start_pull(clu_replication *r, origin *o, int p)
{
	uint64_t after = o->fetched > o->cw ? o->fetched : o->cw;
	pullreq *q = calloc(1, sizeof(*q));
	int rc;

	r->buf.len = 0;
	if (q == NULL ||
	    pro_repl_encode_pull(&r->buf, pro_wire_cstr(o->name), after,
		r->o.pull_limit) != PL_OK) {
		free(q);
		return;
	}
	q->r = r;
	q->o = o;
	q->peer = p;
	q->after = after;
	rc = clu_cluster_request(r->o.cluster, r->peers[p].name, REPL_PULL,
	    r->buf.data, r->buf.len, r->o.pull_timeout_ms, on_chunk_reply, q);
	if (rc != PL_OK) {
		LOG_DEBUG("CLU-REPLPULL", "cannot ask %s for %s: %s",
		    r->peers[p].name, o->name, pl_strerror(rc));
		free(q);
		return;
	}
	q->next = r->pulls;
	r->pulls = q;
	o->pulling = true;
	r->active_pulls++;
	r->st.pulls++;
}

/* Starts pulls for origins an alive peer is ahead on, a few at a time. */
static void
schedule_pulls(clu_replication *r)
{
	for (size_t k = 0; k < r->n && r->active_pulls < PULLS_AT_ONCE; k++) {
		origin *o = r->v[(r->rr + k) % r->n];
		uint64_t have = o->fetched > o->cw ? o->fetched : o->cw;
		int p;

		if (o == r->self || o->pulling ||
		    o->undurable >= UNDURABLE_MAX) {
			continue;
		}
		if ((p = best_peer(r, o)) >= 0 && o->peer[p].cw > have) {
			start_pull(r, o, p);
		}
	}
	if (r->n > 0) {
		r->rr = (r->rr + 1) % r->n;
	}
}

/* Answers a pull: our comments of the origin after `after`, at most limit
 * of them and about CHUNK_BYTES. */
static int
on_request(void *arg, const char *from, uint32_t kind, const void *bytes,
    size_t len, pro_wire_buf *reply)
{
	clu_replication *r = arg;
	sto_comment_list *l = NULL;
	pro_repl_comment *c = NULL;
	pro_repl_msg m;
	origin *o;
	size_t n = 0, used = 0;
	uint64_t through;
	bool more;
	int rc;

	(void)from;
	if (kind != REPL_PULL) {
		return PL_ENOTFOUND;
	}
	if (pro_repl_decode(bytes, len, &m) != PL_OK ||
	    m.type != PRO_REPL_PULL) {
		pro_repl_msg_release(&m);
		r->st.malformed++;
		return PL_EPROTO;
	}
	o = find_origin(r, m.origin);
	if (o == NULL) {
		rc = pro_repl_encode_chunk(
		    reply, m.origin, m.after, false, NULL, 0);
		pro_repl_msg_release(&m);
		return rc;
	}
	rc = sto_comments_origin_after(
	    r->o.store, o->name, m.after, (size_t)m.limit, &l);
	if (rc == PL_OK && l->count > 0 &&
	    (c = calloc(l->count, sizeof(*c))) == NULL) {
		rc = PL_ENOMEM;
	}
	if (rc == PL_OK) {
		/* Only what our contiguous mark covers: past it we may hold
		 * comments beyond a hole, and vouching for them would make the
		 * asker skip the hole for good. */
		for (; n < l->count && l->items[n].seq <= o->cw &&
		     (n == 0 || used < CHUNK_BYTES);
		     n++) {
			const sto_comment *s = &l->items[n];

			c[n] = (pro_repl_comment){ s->seq, pro_wire_cstr(s->id),
				pro_wire_cstr(s->video_id),
				pro_wire_cstr(s->user_id),
				pro_wire_cstr(s->content), s->inserted_at };
			used += strlen(s->content) + strlen(s->video_id) +
			    strlen(s->user_id) + 48;
		}
		more = n > 0 && c[n - 1].seq < o->cw &&
		    (l->has_more || n < l->count);
		/* What we vouch for: up to the last comment sent when more
		 * follow, else everything our own mark covers. */
		through =
		    more ? c[n - 1].seq : (o->cw > m.after ? o->cw : m.after);
		rc =
		    pro_repl_encode_chunk(reply, m.origin, through, more, c, n);
		r->st.served_chunks++;
	}
	free(c);
	sto_comment_list_free(l);
	pro_repl_msg_release(&m);
	return rc;
}

/* ---- messages, membership, tick ---- */

static void
on_message(
    void *arg, const char *from, uint32_t kind, const void *bytes, size_t len)
{
	clu_replication *r = arg;
	pro_repl_msg m;
	int rc = pro_repl_decode(bytes, len, &m);

	if (rc == PL_ENOTFOUND) {
		return; /* a newer node's message */
	}
	if (rc != PL_OK) {
		r->st.malformed++;
		LOG_SUMMARY(PL_LOG_WARN, "CLU-REPLDECODE",
		    "undecodable replication message from %s: %s", from,
		    pl_strerror(rc));
		return;
	}
	if (kind == REPL_VEC && m.type == PRO_REPL_VEC) {
		on_vector(r, from, &m);
	} else if (kind == REPL_COMMENTS && m.type == PRO_REPL_COMMENTS) {
		on_comments(r, from, &m);
	} else if (kind == REPL_ACK && m.type == PRO_REPL_ACK) {
		on_ack(r, from, &m);
	} else {
		r->st.malformed++;
	}
	pro_repl_msg_release(&m);
}

static void
on_member_change(void *arg, const char *name, clu_status old, clu_status st)
{
	clu_replication *r = arg;
	int p = peer_idx(r, name, true);

	(void)old;
	if (p >= 0) {
		r->peers[p].alive = st == CLU_ALIVE || st == CLU_SUSPECT;
		if (!r->peers[p].alive) {
			/* It may come back with other data (a wiped or restored
			 * disk): only its next vector says what it holds. */
			r->peers[p].heard_vec = false;
			for (size_t i = 0; i < r->n; i++) {
				r->v[i]->peer[p].known = false;
			}
		}
	}
	if (st == CLU_ALIVE) {
		/* A new, restarted or healed member learns where we are at
		 * once, and tells us where it is. */
		send_vector(r);
	}
}

static void
save_marks(clu_replication *r)
{
	char name[sizeof(WM_PREFIX) + PRO_REPL_ORIGIN_MAX];

	for (size_t i = 0; i < r->n; i++) {
		origin *o = r->v[i];

		if (o->cw == o->cw_saved) {
			continue;
		}
		snprintf(name, sizeof(name), WM_PREFIX "%s", o->name);
		if (sto_comments_set_watermark(
			r->o.store, name, o->cw, NULL, NULL) == PL_OK) {
			o->cw_saved = o->cw;
		}
	}
}

static uint64_t
catchup_left(const clu_replication *r)
{
	uint64_t left = 0;

	for (size_t i = 0; i < r->n; i++) {
		if (r->v[i]->target > r->v[i]->cw) {
			left += r->v[i]->target - r->v[i]->cw;
		}
	}
	return left;
}

static void
check_caught_up(clu_replication *r)
{
	uint64_t left;

	if (r->caught_up) {
		return;
	}
	if (r->now - r->start >= r->o.catchup_timeout_ms) {
		r->caught_up = true;
		if (r->o.catchup_timeout_ms > 0) {
			LOG_WARN("CLU-CATCHUPTIMEOUT",
			    "catch-up not finished after %u s (%llu comments "
			    "left); serving anyway, the rest keeps coming",
			    r->o.catchup_timeout_ms / 1000,
			    (unsigned long long)catchup_left(r));
		}
		return;
	}
	if (!clu_cluster_joined(r->o.cluster)) {
		return;
	}
	if (!r->peers_seen) {
		clu_cluster_stats st;
		uint32_t others, heard = 0;

		clu_cluster_stats_get(r->o.cluster, &st);
		others = st.members_alive + st.members_suspect - 1;
		for (size_t i = 0; i < r->npeers; i++) {
			heard += r->peers[i].alive && r->peers[i].heard_vec;
		}
		if (heard < others) {
			return;
		}
		r->peers_seen = true;
	}
	left = catchup_left(r);
	if (left == 0) {
		r->caught_up = true;
		LOG_NOTICE("CLU-CATCHUP",
		    "caught up: %llu comments fetched "
		    "from peers in %llu ms",
		    (unsigned long long)r->st.catchup_comments,
		    (unsigned long long)(r->now - r->start));
	} else if (r->now >= r->next_progress) {
		r->next_progress = r->now + PROGRESS_EVERY_MS;
		LOG_INFO("CLU-CATCHUP",
		    "catching up: %llu comments fetched, "
		    "%llu to go",
		    (unsigned long long)r->st.catchup_comments,
		    (unsigned long long)left);
	}
}

static void
on_tick(void *arg, uint64_t now)
{
	clu_replication *r = arg;

	r->now = now;
	if (r->start == 0) {
		r->start = now;
		r->next_vec = now;
		r->next_save = now + SAVE_EVERY_MS;
	}
	if (now >= r->next_vec) {
		/* Until caught up, often: a peer answers our first vector
		 * with its own, and ours may have gone out before the bus
		 * had a pipe to it (it was alive through another's word). */
		r->next_vec = now +
		    (r->caught_up || r->o.vector_ms < CATCHUP_VECTOR_MS
			    ? r->o.vector_ms
			    : CATCHUP_VECTOR_MS);
		send_vector(r);
	}
	if (now >= r->next_save) {
		r->next_save = now + SAVE_EVERY_MS;
		save_marks(r);
	}
	for (size_t i = 0; i < r->n; i++) {
		origin *o = r->v[i];
		bool behind = lag_of(r, o) > 0;

		if (behind && o->behind_since == 0) {
			o->behind_since = now;
		} else if (!behind) {
			o->behind_since = 0;
		}
	}
	if (r->acks != NULL) {
		r->st.ack_timeouts += clu_ackwait_expire(r->acks, now);
		r->st.acks_pending = clu_ackwait_pending(r->acks);
	}
	schedule_pulls(r);
	check_caught_up(r);
}

static const clu_service_ops replication_ops = {
	.name = "replication",
	.kind_first = CLU_KINDS_REPLICATION,
	.kind_count = REPL_PULL - REPL_VEC + 1,
	.on_message = on_message,
	.on_member_change = on_member_change,
	.on_tick = on_tick,
	.on_request = on_request,
};

/* ---- lifecycle ---- */

/* Our earlier lives are origins named "<node>~...": we were their only
 * writer, so whatever of them we hold is all that exists up to its hw. */
static bool
earlier_self(const clu_replication *r, const char *origin)
{
	return origin_of(pro_wire_cstr(origin), r->node);
}

static int
load_marks(clu_replication *r)
{
	char name[sizeof(WM_PREFIX) + PRO_REPL_ORIGIN_MAX];
	sto_origin_vec *vec = NULL;
	int rc;

	if ((rc = sto_comments_origin_vector(r->o.store, &vec)) != PL_OK) {
		return rc;
	}
	for (size_t i = 0; i < vec->count && rc == PL_OK; i++) {
		origin *o = get_origin(r, pro_wire_cstr(vec->items[i].origin));

		if (o == NULL) {
			continue; /* a name no peer could send us */
		}
		o->hw = vec->items[i].seq;
		snprintf(name, sizeof(name), WM_PREFIX "%s", o->name);
		rc = sto_comments_watermark(r->o.store, name, &o->cw);
		if (earlier_self(r, o->name) || o->cw > o->hw) {
			o->cw = o->hw;
		}
		o->cw_saved = o->cw;
		o->fetched = o->cw;
	}
	sto_origin_vec_free(vec);
	return rc;
}

int
clu_replication_create(clu_replication **out, const clu_replication_opts *o)
{
	clu_replication *r;
	int rc = PL_ENOMEM;

	*out = NULL;
	if (o == NULL || o->cluster == NULL || o->store == NULL ||
	    o->origin == NULL || o->node == NULL || o->ack_replicas < 1 ||
	    !pro_repl_origin_ok(pro_wire_cstr(o->origin))) {
		return PL_EINVAL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		return PL_ENOMEM;
	}
	r->o = *o;
	r->o.ack_timeout_ms = o->ack_timeout_ms ? o->ack_timeout_ms : 5000;
	r->o.vector_ms = o->vector_ms ? o->vector_ms : 2000;
	r->o.pull_limit = o->pull_limit && o->pull_limit <= PRO_REPL_BATCH_MAX
	    ? o->pull_limit
	    : 1000;
	r->o.pull_timeout_ms = o->pull_timeout_ms ? o->pull_timeout_ms : 10000;
	if ((r->origin_name = strdup(o->origin)) == NULL ||
	    (r->node = strdup(o->node)) == NULL) {
		goto fail;
	}
	r->o.origin = r->origin_name;
	r->o.node = r->node;
	if (o->ack_replicas > 1 &&
	    (rc = clu_ackwait_create(
		 &r->acks, o->ack_replicas, r->o.ack_timeout_ms)) != PL_OK) {
		goto fail;
	}
	if ((rc = load_marks(r)) != PL_OK) {
		goto fail;
	}
	if ((r->self = get_origin(r, pro_wire_cstr(r->origin_name))) == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	r->caught_up = o->catchup_timeout_ms == 0;
	if ((rc = clu_cluster_add_service(o->cluster, &replication_ops, r)) !=
	    PL_OK) {
		goto fail;
	}
	*out = r;
	return PL_OK;

fail:
	clu_replication_destroy(r);
	return rc;
}

void
clu_replication_destroy(clu_replication *r)
{
	if (r == NULL) {
		return;
	}
	clu_ackwait_destroy(r->acks);
	/* Puts still queued in the store finish without us. */
	for (batch *b = r->batches; b != NULL; b = b->next) {
		b->r = NULL;
	}
	while (r->pulls != NULL) {
		pullreq *q = r->pulls;

		r->pulls = q->next;
		free(q);
	}
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i]->name);
		free(r->v[i]);
	}
	free(r->v);
	pro_wire_buf_free(&r->buf);
	free(r->origin_name);
	free(r->node);
	free(r);
}

/* ---- views ---- */

bool
clu_replication_caught_up(clu_replication *r)
{
	/* Judged now, not only on the tick: a lone node is ready as soon as
	 * it has started. */
	if (!r->caught_up) {
		r->now = pl_mono_ms();
		if (r->start == 0) {
			r->start = r->now;
		}
		check_caught_up(r);
	}
	return r->caught_up;
}

const char *
clu_replication_origin(const clu_replication *r)
{
	return r->origin_name;
}

void
clu_replication_foreach(clu_replication *r,
    void (*fn)(void *arg, const clu_replication_origin_view *v), void *arg)
{
	clu_replication_peer_mark pm[PEERS_MAX];

	for (size_t i = 0; i < r->n; i++) {
		const origin *o = r->v[i];
		clu_replication_origin_view v = { o->name, o->cw,
			o->hw > o->cw ? o->hw : o->cw, lag_of(r, o),
			o->behind_since ? r->now - o->behind_since : 0, pm, 0 };

		for (size_t p = 0; p < r->npeers; p++) {
			if (o->peer[p].known) {
				pm[v.npeers++] = (clu_replication_peer_mark){
					r->peers[p].name, o->peer[p].cw,
					o->peer[p].hw, r->peers[p].alive
				};
			}
		}
		fn(arg, &v);
	}
}

void
clu_replication_stats_get(clu_replication *r, clu_replication_stats *out)
{
	*out = r->st;
	out->lag_comments = 0;
	out->lag_ms = 0;
	for (size_t i = 0; i < r->n; i++) {
		const origin *o = r->v[i];
		uint64_t ms = o->behind_since ? r->now - o->behind_since : 0;

		out->lag_comments += lag_of(r, o);
		out->lag_ms = ms > out->lag_ms ? ms : out->lag_ms;
	}
	out->catchup_left = r->caught_up ? 0 : catchup_left(r);
	out->caught_up = r->caught_up;
}
