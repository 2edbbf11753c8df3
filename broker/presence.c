/* SPDX-License-Identifier: Apache-2.0 */
/* Presence hub. Changes reported by the CRDT (local tracks and merged remote
 * deltas alike) are gathered per topic in jansson objects and sent as one
 * presence_diff per topic per tick. Diffs never cross nodes: each node
 * computes its own from the state it merged, as Phoenix does. */
#include "broker/presence.h"

#include "broker/node.h"
#include "broker/router.h"
#include "cluster/presence.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"

#include "common/sbuf.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define DEVICE_PREFIX "presence:"

/* One change waiting for the next tick. */
typedef struct pchange {
	char *key;
	char *meta; /* wire JSON of the meta, phx_ref included */
	char ref[CLU_PRESENCE_REF_LEN + 1];
	uint32_t seq; /* arrival order, kept within a key */
	uint8_t leave;
} pchange;

/* A topic with changes since the last tick. It also caches the topic's
 * presence_state text: every change made after the cache was built is in
 * `changes` and reaches each subscriber, joiners included, in the next
 * diff, so the cache stays correct until this tick flushes it. In a burst of
 * joins the state is thus built once per tick, not once per joiner. */
typedef struct ptopic {
	char *name;
	pchange *changes;
	size_t n, cap;
	char *state;
	size_t state_len;
	int check_devices;
	struct ptopic *hnext, *next;
} ptopic;

#define PT_BUCKETS 1024
/* Diff deliveries one tick may cost before the next tick is pushed back:
 * in a join storm the tick stretches (up to MAX_TICK_MS) so that presence
 * costs a bounded share of the loop, instead of ticks x members writes
 * growing without limit. */
#define TICK_BUDGET 4000
#define MAX_TICK_MS 1000

struct brk_presence {
	brk_node *node;
	clu_presence *crdt;
	struct event *tick;
	ptopic *buckets[PT_BUCKETS];
	ptopic *dirty; /* every ptopic, in the order it appeared */
	long next_ms;  /* delay of the next tick */
	int armed;
};

/* A meta as Phoenix sends it: the tracked map plus phx_ref (and
 * phx_ref_prev after an update), spliced into the stored JSON text. */
static void
add_wire_meta(pl_sbuf *b, const clu_presence_meta *m)
{
	size_t len = m->meta_len;
	size_t i;
	int empty = 1;

	while (len > 0 && m->meta[len - 1] != '}') {
		len--;
	}
	if (len == 0 || m->meta[0] != '{') {
		pl_sbuf_str(b, "{");
		len = 1;
	} else {
		len--;
		pl_sbuf_add(b, m->meta, len);
	}
	for (i = 1; i < len && empty; i++) {
		empty = m->meta[i] == ' ' || m->meta[i] == '\t' ||
		    m->meta[i] == '\n' || m->meta[i] == '\r';
	}
	pl_sbuf_str(b, empty ? "\"phx_ref\":\"" : ",\"phx_ref\":\"");
	pl_sbuf_str(b, m->phx_ref);
	if (m->phx_ref_prev[0]) {
		pl_sbuf_str(b, "\",\"phx_ref_prev\":\"");
		pl_sbuf_str(b, m->phx_ref_prev);
	}
	pl_sbuf_str(b, "\"}");
}

static ptopic *
ptopic_get(brk_presence *p, const char *topic, int create)
{
	ptopic **bk = &p->buckets[pl_hash_str(topic) % PT_BUCKETS], *t;

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
	t->next = p->dirty;
	p->dirty = t;
	return t;
}

static void
ptopic_free(ptopic *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->changes[i].key);
		free(t->changes[i].meta);
	}
	free(t->changes);
	free(t->state);
	free(t->name);
	free(t);
}

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
		add_wire_meta(&b, &ms[i]);
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
	long ms = p->next_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!p->armed) {
		p->armed = 1;
		event_add(p->tick, &tv);
	}
}

static void
on_diff(void *arg, const char *topic, const clu_presence_meta *joins, size_t nj,
    const clu_presence_meta *leaves, size_t nl)
{
	brk_presence *p = arg;
	ptopic *t = ptopic_get(p, topic, 1);

	if (t == NULL) {
		return;
	}
	LOG_DEBUG("BRK-PRESDIFF", "%s: %zu joins%s%s, %zu leaves%s%s", topic,
	    nj, nj ? " first " : "", nj ? joins[0].key : "", nl,
	    nl ? " first " : "", nl ? leaves[0].key : "");
	add_changes(t, joins, nj, 0);
	add_changes(t, leaves, nl, 1);
	if (nj > 0 &&
	    strncmp(topic, DEVICE_PREFIX, strlen(DEVICE_PREFIX)) == 0) {
		t->check_devices = 1;
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
	const char *pass;      /* "stale" or "limit" */
	const char *evict_key; /* in the "limit" pass: the key being evicted */
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
	size_t max = (size_t)brk_node_config(p->node)->max_devices, i;
	brk_router *r = brk_node_router(p->node);
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
		brk_channel *ch = brk_router_find_channel(r, s.close_ids[i]);
		if (ch) {
			brk_channel_close(ch, s.close_why[i]);
		}
	}
	free(s.close_ids);
	free(s.close_why);
	free(s.devs);
}

/* ---- tick ---- */

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	brk_presence *p = arg;
	ptopic *t = p->dirty, *next;
	brk_router *r = brk_node_router(p->node);
	uint64_t before = brk_router_deliveries(r), cost;
	long base = brk_node_config(p->node)->presence_tick_ms;

	(void)fd;
	(void)what;
	p->armed = 0;
	p->dirty = NULL;
	memset(p->buckets, 0, sizeof(p->buckets));
	/* Oldest first, so diffs go out in the order topics changed. */
	for (; t; t = next) {
		next = t->next;
		t->next = p->dirty;
		p->dirty = t;
	}
	t = p->dirty;
	p->dirty = NULL;
	for (; t; t = next) {
		size_t len;
		char *s = t->n ? diff_text(t, &len) : NULL;
		next = t->next;
		if (s) {
			brk_router_local_broadcast(brk_node_router(p->node),
			    t->name, "presence_diff", s, len);
		}
		free(s);
		if (t->check_devices) {
			check_devices(p, t->name);
		}
		ptopic_free(t);
	}
	cost = brk_router_deliveries(r) - before;
	p->next_ms = base * (long)(cost / TICK_BUDGET + 1);
	if (p->next_ms > MAX_TICK_MS) {
		p->next_ms = base > MAX_TICK_MS ? base : MAX_TICK_MS;
	}
}

/* ---- API ---- */

int
brk_presence_create(brk_presence **out, brk_node *n)
{
	brk_presence *p = calloc(1, sizeof(*p));
	struct timeval tv;
	uint64_t vsn;

	*out = p;
	if (p == NULL) {
		return PL_ENOMEM;
	}
	p->node = n;
	p->next_ms = brk_node_config(n)->presence_tick_ms;
	gettimeofday(&tv, NULL);
	/* A restart is a new replica: its vsn is the start time in µs. */
	vsn = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	p->tick = event_new(brk_node_base(n), -1, 0, on_tick, p);
	if (p->tick) {
		brk_node_urgent(p->tick);
	}
	if (p->tick == NULL ||
	    clu_presence_create(&p->crdt, brk_node_name(n), vsn, on_diff, p)) {
		return PL_ENOMEM;
	}
	return PL_OK;
}

void
brk_presence_destroy(brk_presence *p)
{
	if (p == NULL) {
		return;
	}
	if (p->tick) {
		event_free(p->tick);
	}
	clu_presence_destroy(p->crdt);
	while (p->dirty) {
		ptopic *t = p->dirty;
		p->dirty = t->next;
		ptopic_free(t);
	}
	free(p);
}

int
brk_presence_track(
    brk_presence *p, brk_channel *ch, const char *key, const char *meta)
{
	char ref[CLU_PRESENCE_REF_LEN + 1];

	return clu_presence_join(p->crdt, brk_channel_id(ch),
	    brk_channel_topic(ch), key, meta, strlen(meta), ref);
}

void
brk_presence_untrack(brk_presence *p, brk_channel *ch)
{
	size_t n = 0;

	clu_presence_leave_owner(p->crdt, brk_channel_id(ch), &n);
}

typedef struct state_build {
	pl_sbuf b;
	int first;
} state_build;

static void
state_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	state_build *sb = arg;
	size_t i;

	(void)topic;
	pl_sbuf_str(&sb->b, sb->first ? "" : ",");
	sb->first = 0;
	pl_sbuf_json_str(&sb->b, key);
	pl_sbuf_str(&sb->b, ":{\"metas\":[");
	for (i = 0; i < n; i++) {
		if (i > 0) {
			pl_sbuf_str(&sb->b, ",");
		}
		add_wire_meta(&sb->b, &ms[i]);
	}
	pl_sbuf_str(&sb->b, "]}");
}

void
brk_presence_push_state(brk_presence *p, brk_channel *ch)
{
	const char *topic = brk_channel_topic(ch);
	ptopic *t = ptopic_get(p, topic, 0);
	state_build sb = { PL_SBUF_INIT, 1 };
	char *s;

	if (t && t->state) {
		brk_channel_push(ch, "presence_state", t->state);
		return;
	}
	pl_sbuf_str(&sb.b, "{");
	clu_presence_list(p->crdt, topic, state_key, &sb);
	pl_sbuf_str(&sb.b, "}");
	s = pl_sbuf_take(&sb.b, NULL);
	if (s == NULL) {
		return;
	}
	brk_channel_push(ch, "presence_state", s);
	if (t) {
		t->state = s;
	} else {
		free(s);
	}
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
brk_presence_replace_key(brk_presence *p, brk_channel *ch, const char *key)
{
	brk_router *r = brk_node_router(p->node);
	owners o = { NULL, 0, brk_channel_id(ch) };
	size_t i;

	clu_presence_get(p->crdt, brk_channel_topic(ch), key, local_owners, &o);
	for (i = 0; i < o.n; i++) {
		brk_channel *old = brk_router_find_channel(r, o.ids[i]);
		if (old && old != ch) {
			brk_channel_close(old, NULL);
		}
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
