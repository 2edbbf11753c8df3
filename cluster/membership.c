/* SPDX-License-Identifier: Apache-2.0 */
/* SWIM-style membership view (see membership.h). Higher incarnation wins;
 * at equal incarnation left > dead > suspect > alive. Liveness is judged
 * only by messages heard directly from a member, so gossip can spread a
 * death but never keep a silent node alive, and a death gossiped about a
 * member we hear from ourselves counts only as a suspicion. */
#include "cluster/membership.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"

typedef struct member {
	char name[PRO_WIRE_NAME_MAX + 1];
	char addr[PRO_WIRE_ADDR_MAX + 1];
	char direct[PRO_WIRE_ADDR_MAX + 1];
	clu_status status;
	uint64_t inc;
	uint64_t start;
	uint64_t last_seen;      /* caller clock: failure detector's last sign
	                         * of life (direct, or a gossiped refutation) */
	uint64_t heard;          /* caller clock: last direct message ... */
	bool heard_any;          /* ... if there was one from this instance */
	uint64_t status_since;   /* caller clock: last status change */
	uint64_t conflict_start; /* instance we last logged a conflict for */
	uint64_t seq_max;        /* highest message seq seen from it */
	uint64_t seq_win;        /* bit i: message seq_max - i seen */
	uint64_t bc_next;        /* next broadcast seq expected; 0: none yet */
	bool self;
} member;

struct clu_membership {
	clu_membership_opts o;
	member *v; /* sorted by name */
	size_t n, cap;
	clu_member_event *ev; /* FIFO of pending events */
	size_t ev_head, ev_len, ev_cap;
	uint64_t last_tick;
	uint64_t conflicts;
	uint64_t self_refused_at; /* last news of an older live "us" */
	bool urgent;
	bool addr_changed; /* a member's address was learnt or changed */
};

const char *
clu_status_name(clu_status s)
{
	switch (s) {
	case CLU_ALIVE: return "alive";
	case CLU_SUSPECT: return "suspect";
	case CLU_DEAD: return "dead";
	case CLU_LEFT: return "left";
	default: return "none";
	}
}

/* ---- helpers ---- */

static int
cmp_name(const char *a, pro_wire_str b)
{
	size_t al = strlen(a), n = al < b.len ? al : b.len;
	int c = memcmp(a, b.ptr, n);

	if (c != 0) {
		return c;
	}
	return al < b.len ? -1 : (al > b.len ? 1 : 0);
}

/* Index of name, or -(insertion point) - 1. */
static long
search(const clu_membership *m, pro_wire_str name)
{
	size_t lo = 0, hi = m->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = cmp_name(m->v[mid].name, name);
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

static member *
find(clu_membership *m, pro_wire_str name)
{
	long i = search(m, name);

	return i >= 0 ? &m->v[i] : NULL;
}

static void
copy_str(char *dst, size_t cap, pro_wire_str s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;

	if (n > 0) {
		memcpy(dst, s.ptr, n);
	}
	dst[n] = '\0';
}

/* Sets a member's addresses from its digest entry, noting a change of the
 * bus address for the dialer upkeep. */
static void
set_addr(clu_membership *m, member *r, const pro_wire_member *e)
{
	pro_wire_str a = e->addr;
	size_t n = a.len < sizeof(r->addr) - 1 ? a.len : sizeof(r->addr) - 1;

	if (e->direct.len > 0) {
		copy_str(r->direct, sizeof(r->direct), e->direct);
	}
	if (strlen(r->addr) == n &&
	    (n == 0 || memcmp(r->addr, a.ptr, n) == 0)) {
		return;
	}
	copy_str(r->addr, sizeof(r->addr), a);
	m->addr_changed = true;
}

static void
push_event(clu_membership *m, const char *name, clu_status old, clu_status now,
    bool restarted)
{
	clu_member_event *e;

	if (m->ev_len == m->ev_cap) {
		size_t cap = m->ev_cap ? m->ev_cap * 2 : 16;
		clu_member_event *p = malloc(cap * sizeof(*p));
		if (p == NULL) {
			LOG_ERR(
			    "CLU-NOMEM", "membership event for %s lost", name);
			return;
		}
		for (size_t i = 0; i < m->ev_len; i++) {
			p[i] = m->ev[(m->ev_head + i) % m->ev_cap];
		}
		free(m->ev);
		m->ev = p;
		m->ev_cap = cap;
		m->ev_head = 0;
	}
	e = &m->ev[(m->ev_head + m->ev_len) % m->ev_cap];
	snprintf(e->name, sizeof(e->name), "%s", name);
	e->old_status = old;
	e->new_status = now;
	e->restarted = restarted;
	m->ev_len++;
}

static void
set_status(
    clu_membership *m, member *r, clu_status s, uint64_t now, bool restarted)
{
	clu_status old = r->status;

	if (old == s && !restarted) {
		return;
	}
	r->status = s;
	r->status_since = now;
	push_event(m, r->name, old, s, restarted);
}

/* True when (inc, st) supersedes (rinc, rst). */
static bool
newer(uint64_t inc, clu_status st, uint64_t rinc, clu_status rst)
{
	return inc > rinc || (inc == rinc && st > rst);
}

static bool
live(clu_status s)
{
	return s == CLU_ALIVE || s == CLU_SUSPECT;
}

/* True when r sent us a message itself within suspect_after_ms. */
static bool
heard_lately(const clu_membership *m, const member *r, uint64_t now)
{
	return r->heard_any &&
	    (now < r->heard || now - r->heard < m->o.suspect_after_ms);
}

static member *
insert(clu_membership *m, pro_wire_str name)
{
	long i = search(m, name);
	size_t at;

	if (i >= 0) {
		return &m->v[i];
	}
	if (m->n >= m->o.max_members) {
		return NULL;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		member *p = realloc(m->v, cap * sizeof(*p));
		if (p == NULL) {
			return NULL;
		}
		m->v = p;
		m->cap = cap;
	}
	at = (size_t)(-i - 1);
	memmove(&m->v[at + 1], &m->v[at], (m->n - at) * sizeof(*m->v));
	m->n++;
	memset(&m->v[at], 0, sizeof(*m->v));
	copy_str(m->v[at].name, sizeof(m->v[at].name), name);
	m->v[at].status = CLU_NONE;
	return &m->v[at];
}

static member *
self_rec(const clu_membership *m)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].self) {
			return &m->v[i];
		}
	}
	return NULL; /* unreachable: self is never removed */
}

/* Logs a duplicate name once per conflicting instance. */
static void
conflict(clu_membership *m, member *r, uint64_t other_start)
{
	m->conflicts++;
	if (r->conflict_start == other_start) {
		return;
	}
	r->conflict_start = other_start;
	if (r->self && other_start < r->start) {
		LOG_ERR("CLU-DUPNAME",
		    "peers see an older live node named %s "
		    "(start id %llu) and refuse us until it is declared dead; "
		    "if "
		    "it is not our previous run, give each node a unique "
		    "--node-name",
		    r->name, (unsigned long long)other_start);
	} else if (r->self) {
		LOG_ERR("CLU-DUPNAME",
		    "a newer node also calls itself %s (start "
		    "id %llu, ours %llu); refusing it",
		    r->name, (unsigned long long)other_start,
		    (unsigned long long)r->start);
	} else {
		LOG_ERR("CLU-DUPNAME",
		    "two live nodes named %s: keeping start "
		    "id %llu, refusing start id %llu",
		    r->name, (unsigned long long)r->start,
		    (unsigned long long)other_start);
	}
}

/* ---- lifecycle ---- */

int
clu_membership_create(clu_membership **out, const char *self_name,
    const char *self_addr, uint64_t start_id, const clu_membership_opts *o)
{
	clu_membership *m;
	pro_wire_str name = pro_wire_cstr(self_name);
	member *r;

	*out = NULL;
	if (self_name == NULL || name.len == 0 ||
	    name.len > PRO_WIRE_NAME_MAX || self_addr == NULL ||
	    strlen(self_addr) > PRO_WIRE_ADDR_MAX || o == NULL ||
	    o->max_members < 1) {
		return PL_EINVAL;
	}
	if ((m = calloc(1, sizeof(*m))) == NULL) {
		return PL_ENOMEM;
	}
	m->o = *o;
	if ((r = insert(m, name)) == NULL) {
		free(m);
		return PL_ENOMEM;
	}
	snprintf(r->addr, sizeof(r->addr), "%s", self_addr);
	r->self = true;
	r->status = CLU_ALIVE;
	r->start = start_id;
	r->inc = start_id;
	*out = m;
	return PL_OK;
}

void
clu_membership_destroy(clu_membership *m)
{
	if (m == NULL) {
		return;
	}
	free(m->v);
	free(m->ev);
	free(m);
}

/* ---- input ---- */

clu_verdict
clu_membership_heard(clu_membership *m, pro_wire_str name, uint64_t inc,
    uint64_t start, uint64_t now)
{
	member *r = find(m, name);

	if (r == NULL) {
		if ((r = insert(m, name)) != NULL) {
			r->start = start;
			r->inc = inc;
			r->last_seen = r->heard = now;
			r->heard_any = true;
			set_status(m, r, CLU_ALIVE, now, false);
		}
		return CLU_ACCEPT;
	}
	if (r->self) {
		if (start == r->start) {
			return CLU_REFUSE_SELF;
		}
		conflict(m, r, start);
		return CLU_REFUSE_CONFLICT;
	}
	if (start == r->start) {
		if (r->status == CLU_LEFT) {
			return CLU_ACCEPT; /* left is final for this instance */
		}
		r->last_seen = r->heard = now;
		r->heard_any = true;
		if (inc > r->inc) {
			r->inc = inc;
			set_status(m, r, CLU_ALIVE, now, false);
		}
		return CLU_ACCEPT;
	}
	if (start > r->start && !live(r->status)) {
		/* A restarted node overrides its old dead or left record. */
		r->start = start;
		r->inc = inc;
		r->last_seen = r->heard = now;
		r->heard_any = true;
		r->conflict_start = 0;
		r->seq_max = r->seq_win = r->bc_next = 0;
		set_status(m, r, CLU_ALIVE, now, true);
		LOG_INFO("CLU-RESTART", "member %s is back (start id %llu)",
		    r->name, (unsigned long long)start);
		return CLU_ACCEPT_RESTART;
	}
	conflict(m, r, start);
	return start > r->start ? CLU_REFUSE_CONFLICT : CLU_REFUSE_STALE;
}

static void
merge_self(clu_membership *m, member *s, const pro_wire_member *e, uint64_t now)
{
	if (e->start_id != s->start) {
		if (live((clu_status)e->status)) {
			/* Another live node has our name. If it is older, we
			 * are the newcomer that everyone refuses. */
			conflict(m, s, e->start_id);
			if (e->start_id < s->start) {
				m->self_refused_at = now ? now : 1;
			}
		}
		return;
	}
	if (s->status == CLU_LEFT || e->status == PRO_WIRE_ALIVE ||
	    e->incarnation < s->inc) {
		return;
	}
	LOG_INFO("CLU-REFUTE", "refuting %s at incarnation %llu",
	    clu_status_name((clu_status)e->status),
	    (unsigned long long)e->incarnation);
	s->inc = e->incarnation + 1;
	m->urgent = true;
}

void
clu_membership_merge(clu_membership *m, pro_wire_str sender,
    const pro_wire_member *mem, size_t n, uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		const pro_wire_member *e = &mem[i];
		clu_status st = (clu_status)e->status;
		bool own = e->name.len == sender.len &&
		    memcmp(e->name.ptr, sender.ptr, sender.len) == 0;
		member *r = find(m, e->name);

		if (r != NULL && r->self) {
			merge_self(m, r, e, now);
			continue;
		}
		if (r == NULL) {
			/* Only live entries create records: gossip about dead
			 * nodes must not resurrect ones we already forgot. */
			if (!live(st) || (r = insert(m, e->name)) == NULL) {
				continue;
			}
			set_addr(m, r, e);
			r->start = e->start_id;
			r->inc = e->incarnation;
			r->last_seen = now;
			set_status(m, r, st, now, false);
			continue;
		}
		if (e->start_id == r->start) {
			if (st == CLU_DEAD && heard_lately(m, r, now)) {
				/* Another node's failure detector, not ours:
				 * we heard the member within suspect_after_ms,
				 * so this is at most a suspicion, which it
				 * refutes (typically stale news from the far
				 * side of a healed partition). */
				st = CLU_SUSPECT;
			}
			if (r->status != CLU_LEFT &&
			    newer(e->incarnation, st, r->inc, r->status)) {
				r->inc = e->incarnation;
				if (st == CLU_ALIVE) {
					/* A refutation we did not hear ourselves:
					 * give the member a fresh window. */
					r->last_seen = now;
				}
				set_status(m, r, st, now, false);
			}
			if ((own || r->addr[0] == '\0') && e->addr.len > 0) {
				set_addr(m, r, e);
			}
			continue;
		}
		if (e->start_id > r->start && live(st)) {
			if (live(r->status)) {
				conflict(m, r, e->start_id);
				continue;
			}
			set_addr(m, r, e);
			r->start = e->start_id;
			r->inc = e->incarnation;
			r->last_seen = now;
			r->heard_any = false;
			r->conflict_start = 0;
			r->seq_max = r->seq_win = r->bc_next = 0;
			set_status(m, r, st, now, true);
		}
		/* Older instances and news of newer instances' deaths are
		 * ignored: the record we keep is authoritative for its own. */
	}
}

void
clu_membership_left(clu_membership *m, pro_wire_str name, uint64_t inc,
    uint64_t start, uint64_t now)
{
	member *r = find(m, name);

	if (r == NULL || r->self || r->start != start || inc < r->inc) {
		return;
	}
	r->inc = inc;
	if (r->status != CLU_LEFT) {
		LOG_INFO("CLU-LEFT", "member %s left the cluster", r->name);
	}
	set_status(m, r, CLU_LEFT, now, false);
}

bool
clu_membership_duplicate(clu_membership *m, pro_wire_str name, uint64_t seq)
{
	member *r = find(m, name);
	uint64_t d;

	if (r == NULL) {
		return false;
	}
	if (r->seq_max == 0 || seq > r->seq_max) {
		uint64_t shift = r->seq_max == 0 ? 64 : seq - r->seq_max;
		r->seq_win = shift >= 64 ? 0 : r->seq_win << shift;
		r->seq_win |= 1;
		r->seq_max = seq;
		return false;
	}
	d = r->seq_max - seq;
	if (d >= 64 || (r->seq_win & ((uint64_t)1 << d)) != 0) {
		return true;
	}
	r->seq_win |= (uint64_t)1 << d;
	return false;
}

bool
clu_membership_broadcast_seq(
    clu_membership *m, pro_wire_str name, uint64_t seq, uint64_t *gap)
{
	member *r = find(m, name);

	*gap = 0;
	if (r == NULL) {
		return true;
	}
	if (r->bc_next != 0 && seq < r->bc_next) {
		return false;
	}
	if (r->bc_next != 0) {
		*gap = seq - r->bc_next;
	}
	r->bc_next = seq + 1;
	return true;
}

void
clu_membership_tick(clu_membership *m, uint64_t now)
{
	size_t j = 0;

	if (m->last_tick != 0 && now > m->last_tick &&
	    now - m->last_tick > m->o.stall_ms) {
		/* Our own loop stalled: the silence is ours, not theirs. */
		uint64_t gap = now - m->last_tick;

		LOG_WARN("CLU-STALL",
		    "cluster tick delayed by %llu ms; "
		    "extending member timeouts",
		    (unsigned long long)gap);
		for (size_t i = 0; i < m->n; i++) {
			uint64_t t = m->v[i].last_seen + gap;
			m->v[i].last_seen = t < now ? t : now;
		}
	}
	m->last_tick = now;

	for (size_t i = 0; i < m->n; i++) {
		member *r = &m->v[i];
		uint64_t quiet = now > r->last_seen ? now - r->last_seen : 0;

		if (!r->self) {
			if (r->status == CLU_ALIVE &&
			    quiet >= m->o.suspect_after_ms) {
				LOG_INFO("CLU-SUSPECT",
				    "member %s suspect: silent "
				    "for %llu ms",
				    r->name, (unsigned long long)quiet);
				set_status(m, r, CLU_SUSPECT, now, false);
			}
			if (r->status == CLU_SUSPECT &&
			    quiet >= (uint64_t)m->o.suspect_after_ms +
				    m->o.dead_after_ms) {
				LOG_WARN("CLU-DEAD",
				    "member %s dead: silent for "
				    "%llu ms",
				    r->name, (unsigned long long)quiet);
				set_status(m, r, CLU_DEAD, now, false);
			}
			if (!live(r->status) &&
			    now - r->status_since >= m->o.forget_after_ms) {
				push_event(
				    m, r->name, r->status, CLU_NONE, false);
				continue; /* dropped */
			}
		}
		if (j != i) {
			m->v[j] = *r;
		}
		j++;
	}
	m->n = j;
}

void
clu_membership_leave(clu_membership *m)
{
	member *s = self_rec(m);

	if (s->status != CLU_LEFT) {
		set_status(m, s, CLU_LEFT, s->status_since, false);
	}
}

/* ---- output ---- */

bool
clu_membership_next_event(clu_membership *m, clu_member_event *ev)
{
	if (m->ev_len == 0) {
		return false;
	}
	*ev = m->ev[m->ev_head];
	m->ev_head = (m->ev_head + 1) % m->ev_cap;
	m->ev_len--;
	return true;
}

bool
clu_membership_take_urgent(clu_membership *m)
{
	bool u = m->urgent;

	m->urgent = false;
	return u;
}

bool
clu_membership_take_addr_changed(clu_membership *m)
{
	bool c = m->addr_changed;

	m->addr_changed = false;
	return c;
}

uint64_t
clu_membership_incarnation(const clu_membership *m)
{
	return self_rec(m)->inc;
}

uint64_t
clu_membership_start_id(const clu_membership *m)
{
	return self_rec(m)->start;
}

bool
clu_membership_self_left(const clu_membership *m)
{
	return self_rec(m)->status == CLU_LEFT;
}

size_t
clu_membership_digest(const clu_membership *m, pro_wire_member *out, size_t max)
{
	const member *s = self_rec(m);
	size_t k = 0;

	if (max == 0) {
		return 0;
	}
	out[k].name = pro_wire_cstr(s->name);
	out[k].addr = pro_wire_cstr(s->addr);
	out[k].status = (uint8_t)s->status;
	out[k].incarnation = s->inc;
	out[k].start_id = s->start;
	out[k].direct = pro_wire_cstr(s->direct);
	k++;
	for (size_t i = 0; i < m->n && k < max; i++) {
		const member *r = &m->v[i];
		if (r->self) {
			continue;
		}
		out[k].name = pro_wire_cstr(r->name);
		out[k].addr = pro_wire_cstr(r->addr);
		out[k].status = (uint8_t)r->status;
		out[k].incarnation = r->inc;
		out[k].start_id = r->start;
		out[k].direct = pro_wire_cstr(r->direct);
		k++;
	}
	return k;
}

const char *
clu_membership_leader(const clu_membership *m)
{
	const member *best = NULL;

	/* The oldest live instance leads (start id, then name): every node
	 * computes the same answer from the gossiped records, the leader
	 * keeps the role for as long as it lives, and a restarted node comes
	 * back younger than everyone, so a rolling restart moves the role
	 * once per restart of the leader and never back. Suspects stay
	 * eligible: a suspicion is cleared by a refutation within one
	 * heartbeat, and flipping the leader (which runs the Firebase
	 * queue) on every hiccup would cost more than it saves. */
	for (size_t i = 0; i < m->n; i++) {
		const member *r = &m->v[i];
		if (live(r->status) &&
		    (best == NULL || r->start < best->start)) {
			best = r; /* v is in name order: ties keep the first */
		}
	}
	return best ? best->name : NULL;
}

size_t
clu_membership_live_others(const clu_membership *m)
{
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++) {
		n += !m->v[i].self && live(m->v[i].status);
	}
	return n;
}

clu_status
clu_membership_status(const clu_membership *m, const char *name)
{
	long i;

	if (name == NULL) {
		return CLU_NONE;
	}
	i = search(m, pro_wire_cstr(name));
	return i >= 0 ? m->v[i].status : CLU_NONE;
}

const char *
clu_membership_direct(const clu_membership *m, const char *name)
{
	long i = name != NULL ? search(m, pro_wire_cstr(name)) : -1;

	return i >= 0 ? m->v[i].direct : "";
}

void
clu_membership_set_direct(clu_membership *m, const char *url)
{
	snprintf(self_rec(m)->direct, sizeof(self_rec(m)->direct), "%s",
	    url ? url : "");
}

const char *
clu_membership_address(const clu_membership *m, const char *name)
{
	long i = name != NULL ? search(m, pro_wire_cstr(name)) : -1;

	return i >= 0 ? m->v[i].addr : "";
}

void
clu_membership_foreach(const clu_membership *m,
    void (*fn)(void *arg, const clu_member_info *info), void *arg)
{
	for (size_t i = 0; i < m->n; i++) {
		const member *r = &m->v[i];
		clu_member_info info = {
			.name = r->name,
			.address = r->addr,
			.direct = r->direct,
			.status = r->status,
			.incarnation = r->inc,
			.start_id = r->start,
			.last_seen_ms = r->last_seen,
			.self = r->self,
		};
		fn(arg, &info);
	}
}

bool
clu_membership_self_refused(const clu_membership *m, uint64_t now)
{
	return m->self_refused_at != 0 &&
	    now - m->self_refused_at < m->o.suspect_after_ms;
}

uint64_t
clu_membership_conflicts(const clu_membership *m)
{
	return m->conflicts;
}
