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
#include "common/log.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define DEVICE_PREFIX "presence:"

struct brk_presence {
	brk_node *node;
	clu_presence *crdt;
	struct event *tick;
	json_t *pending;   /* topic → {"joins": {...}, "leaves": {...}} */
	json_t *devices;   /* presence:<user> topics to re-check after a tick */
	int armed;
};

/* A meta as Phoenix sends it: the tracked map plus phx_ref (and
 * phx_ref_prev after an update). */
static json_t *
wire_meta(const clu_presence_meta *m)
{
	json_t *o = json_loadb(m->meta, m->meta_len, 0, NULL);

	if (!json_is_object(o)) {
		json_decref(o);
		o = json_object();
	}
	json_object_set_new(o, "phx_ref", json_string(m->phx_ref));
	if (m->phx_ref_prev[0]) {
		json_object_set_new(o, "phx_ref_prev",
		    json_string(m->phx_ref_prev));
	}
	return o;
}

static void
add_metas(json_t *side, const clu_presence_meta *ms, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		json_t *k = json_object_get(side, ms[i].key);
		if (k == NULL) {
			k = json_pack("{s:[]}", "metas");
			json_object_set_new(side, ms[i].key, k);
		}
		json_array_append_new(json_object_get(k, "metas"),
		    wire_meta(&ms[i]));
	}
}

static void
arm(brk_presence *p)
{
	long ms = brk_node_config(p->node)->presence_tick_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (!p->armed) {
		p->armed = 1;
		event_add(p->tick, &tv);
	}
}

static void
on_diff(void *arg, const char *topic, const clu_presence_meta *joins,
    size_t nj, const clu_presence_meta *leaves, size_t nl)
{
	brk_presence *p = arg;
	json_t *t = json_object_get(p->pending, topic);

	if (t == NULL) {
		t = json_pack("{s:{}, s:{}}", "joins", "leaves");
		if (t == NULL) {
			return;
		}
		json_object_set_new(p->pending, topic, t);
	}
	add_metas(json_object_get(t, "joins"), joins, nj);
	add_metas(json_object_get(t, "leaves"), leaves, nl);
	if (nj > 0 && strncmp(topic, DEVICE_PREFIX, strlen(DEVICE_PREFIX)) == 0) {
		json_object_set_new(p->devices, topic, json_true());
	}
	arm(p);
}

/* ---- device limit ---- */

typedef struct dev {
	const char *key;
	uint64_t first_ns;     /* when the device first appeared */
	uint64_t newest_ns;    /* its newest session */
} dev;

typedef struct dev_scan {
	dev *devs;
	size_t n, cap;
	uint64_t *close_ids;   /* local channels to close */
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
			LOG_NOTICE("BRK-DEVLIMIT", "%s: device %s over the limit "
			    "of %zu after a merge; closing it", topic, evict[i],
			    max);
			clu_presence_get(p->crdt, topic, evict[i], evict_key, &s);
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
	json_t *pending = p->pending, *devices = p->devices, *v;
	const char *topic;

	(void)fd;
	(void)what;
	p->armed = 0;
	p->pending = json_object();
	p->devices = json_object();
	json_object_foreach(pending, topic, v) {
		char *s = json_dumps(v, JSON_COMPACT);
		if (s) {
			brk_router_local_broadcast(brk_node_router(p->node), topic,
			    "presence_diff", s, strlen(s));
		}
		free(s);
	}
	json_object_foreach(devices, topic, v) {
		check_devices(p, topic);
	}
	json_decref(pending);
	json_decref(devices);
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
	gettimeofday(&tv, NULL);
	/* A restart is a new replica: its vsn is the start time in µs. */
	vsn = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	p->pending = json_object();
	p->devices = json_object();
	p->tick = event_new(brk_node_base(n), -1, 0, on_tick, p);
	if (p->pending == NULL || p->devices == NULL || p->tick == NULL ||
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
	json_decref(p->pending);
	json_decref(p->devices);
	free(p);
}

int
brk_presence_track(brk_presence *p, brk_channel *ch, const char *key,
    const char *meta)
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

static void
state_key(void *arg, const char *topic, const char *key,
    const clu_presence_meta *ms, size_t n)
{
	json_t *metas = json_array();
	size_t i;

	(void)topic;
	for (i = 0; metas && i < n; i++) {
		json_array_append_new(metas, wire_meta(&ms[i]));
	}
	json_object_set_new(arg, key, json_pack("{s:o}", "metas", metas));
}

void
brk_presence_push_state(brk_presence *p, brk_channel *ch)
{
	json_t *state = json_object();
	char *s;

	clu_presence_list(p->crdt, brk_channel_topic(ch), state_key, state);
	s = json_dumps(state, JSON_COMPACT);
	if (s) {
		brk_channel_push(ch, "presence_state", s);
	}
	free(s);
	json_decref(state);
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
