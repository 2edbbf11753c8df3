/* SPDX-License-Identifier: Apache-2.0 */
/* Presence hub. Changes reported by the CRDT (local tracks and merged remote
 * deltas alike) are gathered per topic and sent as one presence_diff per
 * topic per tick. Diffs never cross nodes: each node computes its own from
 * the state it merged, as Phoenix does. A topic's presence_state is served
 * from a per-topic cache (presence_state.c) that every change touches. */
#include "broker/presence.h"

#include "broker/presence_state.h"
#include "cluster/presence.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "common/sbuf.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#define DEVICE_PREFIX "presence:"

/* One change waiting for the next tick. */
typedef struct pchange {
	char *key;
	char *meta; /* wire JSON of the meta, phx_ref included */
	char ref[CLU_PRESENCE_REF_LEN + 1];
	uint32_t seq; /* arrival order, kept within a key */
	uint8_t leave;
} pchange;

/* A topic the hub knows: changes since the last tick and, while joiners
 * keep coming, its presence_state cache. */
typedef struct ptopic {
	char *name;
	pchange *changes;
	size_t n, cap;
	brk_pstate *state; /* NULL until a joiner asks */
	uint64_t state_ms; /* last presence_state served (mono ms) */
	int check_devices; /* a join on a presence:<user> topic */
	int dirty;         /* on the list of topics for the next tick */
	struct ptopic *hnext, *dnext;
} ptopic;

#define PT_BUCKETS 1024
/* Tick pacing. While the loop has time to spare, a tick may cost up to
 * IDLE_DELIVERIES writes per base tick, as many as it takes below that.
 * When the loop is busy (more than BUSY_SHARE of the last period spent
 * working), each change earns DELIVERIES_PER_CHANGE writes and no more: the
 * period stretches (up to MAX_TICK_MS) until a tick gathers enough changes
 * to pay for its writes. A join storm thus costs each join about one diff
 * write, whatever the topics' sizes, instead of members x ticks. */
#define IDLE_DELIVERIES 4000
#define DELIVERIES_PER_CHANGE 1
#define BUSY_SHARE 0.5
#define MAX_TICK_MS 1000
/* A topic's presence_state cache is dropped after this long unused. */
#define STATE_TTL_MS 2000

struct brk_presence {
	brk_presence_env env;
	char *node;
	clu_presence *crdt;
	struct event *tick, *expiry;
	ptopic *buckets[PT_BUCKETS];
	ptopic *dirty; /* topics with changes, newest first */
	long next_ms;  /* the period of the next tick */
	uint64_t last_tick_ms, last_cpu_ns;
	size_t tick_changes; /* changes reported since the last tick */
	size_t ncached;      /* topics holding a state cache */
	int armed;
};

/* ---- topics ---- */

static ptopic **
bucket(brk_presence *p, const char *topic)
{
	return &p->buckets[pl_hash_str(topic) % PT_BUCKETS];
}

static ptopic *
ptopic_get(brk_presence *p, const char *topic, int create)
{
	ptopic **bk = bucket(p, topic), *t;

	for (t = *bk; t; t = t->hnext) {
		if (strcmp(t->name, topic) == 0) {
			return t;
		}
	}
	if (!create || (t = calloc(1, sizeof(*t))) == NULL) {
		return NULL;
	}
	if ((t->name = strdup(topic)) == NULL) {
		free(t);
		return NULL;
	}
	t->hnext = *bk;
	*bk = t;
	return t;
}

static void
clear_changes(ptopic *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->changes[i].key);
		free(t->changes[i].meta);
	}
	t->n = 0;
}

static void
drop_state(brk_presence *p, ptopic *t)
{
	if (t->state) {
		brk_pstate_destroy(t->state);
		t->state = NULL;
		p->ncached--;
	}
}

static void
ptopic_free(brk_presence *p, ptopic *t)
{
	drop_state(p, t);
	clear_changes(t);
	free(t->changes);
	free(t->name);
	free(t);
}

/* Frees t once it holds nothing: no changes, no cache, not listed. */
static void
ptopic_release(brk_presence *p, ptopic *t)
{
	ptopic **pp;

	if (t->n > 0 || t->state || t->dirty || t->check_devices) {
		return;
	}
	for (pp = bucket(p, t->name); *pp && *pp != t; pp = &(*pp)->hnext) {
	}
	if (*pp) {
		*pp = t->hnext;
	}
	ptopic_free(p, t);
}

/* ---- changes ---- */

static void
add_changes(ptopic *t, const clu_presence_meta *ms, size_t n, int leave)
{
	size_t i;

	for (i = 0; i < n; i++) {
		pl_sbuf b = PL_SBUF_INIT;
		pchange *c;
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 8;
			pchange *nc = realloc(t->changes, cap * sizeof(*nc));
			if (nc == NULL) {
				return;
			}
			t->changes = nc;
			t->cap = cap;
		}
		c = &t->changes[t->n];
		brk_pstate_add_meta(&b, &ms[i]);
		c->meta = pl_sbuf_take(&b, NULL);
		c->key = strdup(ms[i].key);
		c->seq = (uint32_t)t->n;
		c->leave = (uint8_t)leave;
		memcpy(c->ref, ms[i].phx_ref, sizeof(c->ref));
		if (c->meta == NULL || c->key == NULL) {
			free(c->meta);
			free(c->key);
			return;
		}
		t->n++;
	}
}

static void
arm(brk_presence *p)
{
	uint64_t now;
	long ms = p->next_ms;
	struct timeval tv;

	if (p->armed) {
		return;
	}
	/* After a quiet spell the storm that stretched the period is over. */
	now = pl_mono_ms();
	if (now - p->last_tick_ms > (uint64_t)(p->next_ms + p->env.tick_ms)) {
		ms = p->next_ms = p->env.tick_ms;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	p->armed = 1;
	event_add(p->tick, &tv);
}

static void
on_diff(void *arg, const char *topic, const clu_presence_meta *joins, size_t nj,
    const clu_presence_meta *leaves, size_t nl)
{
	brk_presence *p = arg;
	ptopic *t = ptopic_get(p, topic, 1);
	size_t i;

	if (t == NULL) {
		return;
	}
	LOG_DEBUG("BRK-PRESDIFF", "%s: %zu joins%s%s, %zu leaves%s%s", topic,
	    nj, nj ? " first " : "", nj ? joins[0].key : "", nl,
	    nl ? " first " : "", nl ? leaves[0].key : "");
	add_changes(t, joins, nj, 0);
	add_changes(t, leaves, nl, 1);
	p->tick_changes += nj + nl;
	if (t->state) {
		for (i = 0; i < nj; i++) {
			brk_pstate_touch(t->state, joins[i].key);
		}
		for (i = 0; i < nl; i++) {
			brk_pstate_touch(t->state, leaves[i].key);
		}
	}
	if (nj > 0 &&
	    strncmp(topic, DEVICE_PREFIX, strlen(DEVICE_PREFIX)) == 0) {
		t->check_devices = 1;
	}
	if (!t->dirty) {
		t->dirty = 1;
		t->dnext = p->dirty;
		p->dirty = t;
	}
	arm(p);
}

static int
by_key_ref_seq(const void *a, const void *b)
{
	const pchange *x = a, *y = b;
	int c;

	if ((c = strcmp(x->key, y->key)) != 0) {
		return c;
	}
	if ((c = strcmp(x->ref, y->ref)) != 0) {
		return c;
	}
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Within one tick only the last change of each meta (key, phx_ref) counts:
 * a leave and a re-join of the same meta (a node that flapped dead and
 * alive) must not reach clients as both, since phoenix.js applies a diff's
 * joins before its leaves. Net present → a join (idempotent by phx_ref);
 * net absent → a leave (ignored for a ref the client never had). */
static void
keep_last_per_meta(ptopic *t)
{
	size_t i, out = 0;

	qsort(t->changes, t->n, sizeof(*t->changes), by_key_ref_seq);
	for (i = 0; i < t->n; i++) {
		pchange *c = &t->changes[i];
		if (i + 1 < t->n && strcmp(c->key, c[1].key) == 0 &&
		    strcmp(c->ref, c[1].ref) == 0) {
			free(c->key);
			free(c->meta);
			continue;
		}
		t->changes[out++] = *c;
	}
	t->n = out;
}

static int
by_side_key(const void *a, const void *b)
{
	const pchange *x = a, *y = b;
	int c;

	if (x->leave != y->leave) {
		return x->leave - y->leave;
	}
	if ((c = strcmp(x->key, y->key)) != 0) {
		return c;
	}
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* {key: {"metas": [...]}, ...} for changes sorted by key. */
static void
add_side(pl_sbuf *b, const pchange *c, size_t n)
{
	size_t i;

	pl_sbuf_str(b, "{");
	for (i = 0; i < n; i++) {
		if (i == 0 || strcmp(c[i - 1].key, c[i].key) != 0) {
			pl_sbuf_str(b, i > 0 ? "]}," : "");
			pl_sbuf_json_str(b, c[i].key);
			pl_sbuf_str(b, ":{\"metas\":[");
		} else {
			pl_sbuf_str(b, ",");
		}
		pl_sbuf_str(b, c[i].meta);
	}
	pl_sbuf_str(b, n > 0 ? "]}}" : "}");
}

/* {"joins": {...}, "leaves": {...}}, both always present; the metas of one
 * key are grouped, in the order they changed. */
static char *
diff_text(ptopic *t, size_t *len)
{
	pl_sbuf b = PL_SBUF_INIT;
	size_t nj = 0;

	keep_last_per_meta(t);
	qsort(t->changes, t->n, sizeof(*t->changes), by_side_key);
	while (nj < t->n && !t->changes[nj].leave) {
		nj++;
	}
	pl_sbuf_str(&b, "{\"joins\":");
	add_side(&b, t->changes, nj);
	pl_sbuf_str(&b, ",\"leaves\":");
	add_side(&b, t->changes + nj, t->n - nj);
	pl_sbuf_str(&b, "}");
	return pl_sbuf_take(&b, len);
}

/* ---- device limit ---- */

typedef struct dev {
	const char *key;
	uint64_t first_ns;  /* when the device first appeared */
	uint64_t newest_ns; /* its newest session */
} dev;

typedef struct dev_scan {
	dev *devs;
	size_t n, cap;
	uint64_t *close_ids; /* local channels to close */
	const char **close_why;
	size_t nclose, close_cap;
} dev_scan;

static void
push_close(dev_scan *s, uint64_t owner, const char *why)
{
	if (s->nclose == s->close_cap) {
		size_t cap = s->close_cap ? s->close_cap * 2 : 8;
		uint64_t *ids = realloc(s->close_ids, cap * sizeof(*ids));
		const char **w;
		if (ids == NULL) {
			return;
		}
		s->close_ids = ids;
		w = realloc(s->close_why, cap * sizeof(*w));
		if (w == NULL) {
			return;
		}
		s->close_why = w;
		s->close_cap = cap;
	}
	s->close_ids[s->nclose] = owner;
	s->close_why[s->nclose++] = why;
}

/* Per key: remember its age, and close this node's sessions of a device
 * that has a newer session elsewhere (a reconnect replaces the old one). */
static void
scan_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	dev_scan *s = arg;
	uint64_t first = UINT64_MAX, newest = 0;
	size_t i;

	(void)topic;
	for (i = 0; i < n; i++) {
		first = ms[i].joined_ns < first ? ms[i].joined_ns : first;
		newest = ms[i].joined_ns > newest ? ms[i].joined_ns : newest;
	}
	for (i = 0; i < n; i++) {
		if (ms[i].local && ms[i].joined_ns < newest) {
			push_close(s, ms[i].owner, NULL);
		}
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		dev *d = realloc(s->devs, cap * sizeof(*d));
		if (d == NULL) {
			return;
		}
		s->devs = d;
		s->cap = cap;
	}
	s->devs[s->n].key = key;
	s->devs[s->n].first_ns = first;
	s->devs[s->n++].newest_ns = newest;
}

static void
evict_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	dev_scan *s = arg;
	size_t i;

	(void)topic;
	(void)key;
	for (i = 0; i < n; i++) {
		if (ms[i].local) {
			push_close(s, ms[i].owner, "device_limit_reached");
		}
	}
}

static int
by_age(const void *a, const void *b)
{
	const dev *x = a, *y = b;

	if (x->first_ns != y->first_ns) {
		return x->first_ns < y->first_ns ? -1 : 1;
	}
	return strcmp(x->key, y->key);
}

/* When merged state shows more devices than allowed (two nodes admitted
 * devices at once), every node closes its own sessions of the newest
 * devices; all nodes sort the same state the same way, so they agree. */
static void
check_devices(brk_presence *p, const char *topic)
{
	size_t max = (size_t)p->env.max_devices, i;
	dev_scan s;
	char **evict = NULL;
	size_t nevict = 0;

	memset(&s, 0, sizeof(s));
	clu_presence_list(p->crdt, topic, scan_key, &s);
	if (s.n > max) {
		qsort(s.devs, s.n, sizeof(*s.devs), by_age);
		evict = calloc(s.n - max, sizeof(*evict));
		for (i = max; evict && i < s.n; i++) {
			evict[nevict++] = strdup(s.devs[i].key);
		}
	}
	/* Keys borrowed from the CRDT are copied before channels close. */
	for (i = 0; i < nevict; i++) {
		if (evict[i]) {
			LOG_NOTICE("BRK-DEVLIMIT",
			    "%s: device %s over the limit "
			    "of %zu after a merge; closing it",
			    topic, evict[i], max);
			clu_presence_get(
			    p->crdt, topic, evict[i], evict_key, &s);
		}
		free(evict[i]);
	}
	free(evict);
	for (i = 0; i < s.nclose; i++) {
		p->env.close(p->env.arg, s.close_ids[i], s.close_why[i]);
	}
	free(s.close_ids);
	free(s.close_why);
	free(s.devs);
}

/* ---- tick ---- */

/* The next period, from what the last one cost: the changes it gathered
 * and the writes its diffs made, over the time it really lasted (a tick
 * runs late when the loop is saturated). See the pacing constants above. */
static void
pace(brk_presence *p, uint64_t now, uint64_t cpu, size_t deliveries)
{
	double wall = (double)(now - p->last_tick_ms), allowance, next;
	long base = p->env.tick_ms,
	     max = base > MAX_TICK_MS ? base : MAX_TICK_MS;
	int busy = (double)(cpu - p->last_cpu_ns) / 1e6 >= BUSY_SHARE * wall;

	if (wall < (double)p->next_ms) {
		wall = (double)p->next_ms;
	}
	allowance = (double)DELIVERIES_PER_CHANGE * (double)p->tick_changes;
	if (!busy) {
		allowance += (double)IDLE_DELIVERIES * wall / (double)base;
	}
	next = wall * (double)deliveries / (allowance > 1 ? allowance : 1);
	p->next_ms = next < (double)base ? base
	    : next > (double)max         ? max
					 : (long)next;
}

static void
arm_expiry(brk_presence *p)
{
	struct timeval tv = { STATE_TTL_MS / 1000,
		(STATE_TTL_MS % 1000) * 1000 };

	if (p->ncached > 0 && !event_pending(p->expiry, EV_TIMEOUT, NULL)) {
		event_add(p->expiry, &tv);
	}
}

/* Caches unused for STATE_TTL_MS go, with topics that hold nothing else. */
static void
on_expiry(evutil_socket_t fd, short what, void *arg)
{
	brk_presence *p = arg;
	uint64_t now = pl_mono_ms();
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < PT_BUCKETS; i++) {
		ptopic *t = p->buckets[i], *next;
		for (; t; t = next) {
			next = t->hnext;
			if (t->state && now - t->state_ms >= STATE_TTL_MS) {
				drop_state(p, t);
				ptopic_release(p, t);
			}
		}
	}
	arm_expiry(p);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	brk_presence *p = arg;
	ptopic *t = p->dirty, *next, *oldest = NULL;
	uint64_t now = pl_mono_ms(), cpu = pl_thread_cpu_ns();
	size_t deliveries = 0;

	(void)fd;
	(void)what;
	p->armed = 0;
	p->dirty = NULL;
	/* Oldest first, so diffs go out in the order topics changed. */
	for (; t; t = next) {
		next = t->dnext;
		t->dnext = oldest;
		oldest = t;
	}
	/* Closing channels (device limit) reports changes back into the hub:
	 * they land in the next tick's list, as each topic is unlisted first. */
	for (t = oldest; t; t = next) {
		size_t len;
		char *s = t->n ? diff_text(t, &len) : NULL;
		next = t->dnext;
		t->dirty = 0;
		clear_changes(t);
		if (s) {
			deliveries +=
			    p->env.broadcast(p->env.arg, t->name, s, len);
		}
		free(s);
		if (t->check_devices) {
			t->check_devices = 0;
			check_devices(p, t->name);
		}
		ptopic_release(p, t);
	}
	pace(p, now, cpu, deliveries);
	p->tick_changes = 0;
	p->last_tick_ms = now;
	p->last_cpu_ns = cpu;
}

/* ---- API ---- */

int
brk_presence_create(brk_presence **out, const brk_presence_env *env)
{
	brk_presence *p;
	int rc;

	*out = NULL;
	if (env->tick_ms < 1 || env->node == NULL) {
		return PL_EINVAL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return PL_ENOMEM;
	}
	p->env = *env;
	p->next_ms = env->tick_ms;
	p->last_tick_ms = pl_mono_ms();
	p->last_cpu_ns = pl_thread_cpu_ns();
	rc = PL_ENOMEM;
	if ((p->node = strdup(env->node)) == NULL ||
	    (p->tick = event_new(env->base, -1, 0, on_tick, p)) == NULL ||
	    event_priority_set(p->tick, env->tick_priority) != 0 ||
	    (p->expiry = event_new(env->base, -1, 0, on_expiry, p)) == NULL) {
		goto fail;
	}
	p->env.node = p->node;
	rc = clu_presence_create(&p->crdt, p->node, env->vsn, on_diff, p);
	if (rc != PL_OK) {
		goto fail;
	}
	*out = p;
	return PL_OK;
fail:
	brk_presence_destroy(p);
	return rc == PL_OK ? PL_ENOMEM : rc;
}

void
brk_presence_destroy(brk_presence *p)
{
	size_t i;

	if (p == NULL) {
		return;
	}
	if (p->tick) {
		event_free(p->tick);
	}
	if (p->expiry) {
		event_free(p->expiry);
	}
	/* Freed without reporting leaves, so no callback runs from here. */
	clu_presence_destroy(p->crdt);
	for (i = 0; i < PT_BUCKETS; i++) {
		while (p->buckets[i]) {
			ptopic *t = p->buckets[i];
			p->buckets[i] = t->hnext;
			ptopic_free(p, t);
		}
	}
	free(p->node);
	free(p);
}

int
brk_presence_track(brk_presence *p, uint64_t owner, const char *topic,
    const char *key, const char *meta)
{
	return clu_presence_join(
	    p->crdt, owner, topic, key, meta, strlen(meta), NULL);
}

void
brk_presence_untrack(brk_presence *p, uint64_t owner)
{
	clu_presence_leave_owner(p->crdt, owner, NULL);
}

int
brk_presence_push_state(brk_presence *p, const char *topic, void *to)
{
	ptopic *t = ptopic_get(p, topic, 1);
	const pl_slice *sl;
	size_t n;
	int rc = PL_ENOMEM;

	if (t && t->state == NULL &&
	    brk_pstate_create(&t->state, p->crdt, topic) == PL_OK) {
		p->ncached++;
	}
	if (t && t->state) {
		t->state_ms = pl_mono_ms();
		rc = brk_pstate_get(t->state, &sl, &n);
	}
	if (rc == PL_OK) {
		p->env.push(p->env.arg, to, sl, n);
	} else {
		LOG_ERR("BRK-PRESSTATE", "presence_state of %s not sent: %s",
		    topic, pl_strerror(rc));
		if (t) {
			drop_state(p, t);
			ptopic_release(p, t);
		}
	}
	arm_expiry(p);
	return rc;
}

size_t
brk_presence_key_count(brk_presence *p, const char *topic)
{
	return clu_presence_key_count(p->crdt, topic);
}

int
brk_presence_has_key(brk_presence *p, const char *topic, const char *key)
{
	return clu_presence_count(p->crdt, topic, key) > 0;
}

typedef struct owners {
	uint64_t *ids;
	size_t n;
	uint64_t except;
} owners;

static void
local_owners(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	owners *o = arg;
	size_t i;

	(void)topic;
	(void)key;
	o->ids = calloc(n ? n : 1, sizeof(*o->ids));
	for (i = 0; o->ids && i < n; i++) {
		if (ms[i].local && ms[i].owner != o->except) {
			o->ids[o->n++] = ms[i].owner;
		}
	}
}

void
brk_presence_replace_key(
    brk_presence *p, uint64_t owner, const char *topic, const char *key)
{
	owners o = { NULL, 0, owner };
	size_t i;

	clu_presence_get(p->crdt, topic, key, local_owners, &o);
	for (i = 0; i < o.n; i++) {
		p->env.close(p->env.arg, o.ids[i], NULL);
	}
	free(o.ids);
}

size_t
brk_presence_entry_count(brk_presence *p)
{
	return clu_presence_size(p->crdt);
}

clu_presence *
brk_presence_crdt(brk_presence *p)
{
	return p->crdt;
}

void
brk_presence_after_merge(brk_presence *p)
{
	/* Device topics touched by the merge were noted in on_diff; the
	 * check runs on the next tick, outside the CRDT's callbacks. */
	arm(p);
}

long
brk_presence_tick_period(const brk_presence *p)
{
	return p->next_ms;
}
