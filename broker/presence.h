/* SPDX-License-Identifier: Apache-2.0 */
/* The node's presence hub: tracks channel presences in the replicated
 * delta-CRDT (cluster/presence), which it owns; pushes presence_state to
 * joiners, exact at their join (broker/presence_state keeps each topic's
 * text between joins); coalesces each topic's joins and leaves into one
 * presence_diff per tick; and enforces the device limit after merges. It
 * reaches channels only through the callbacks it is created with, so it
 * runs (and is tested) without sockets, storage or a cluster. */
#ifndef PARLEY_BROKER_PRESENCE_H
#define PARLEY_BROKER_PRESENCE_H

#include "common/rcbuf.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
typedef struct brk_presence brk_presence;
typedef struct clu_presence clu_presence;

/* What the hub needs, given at creation; handles are borrowed and must
 * outlive the hub, strings are copied. */
typedef struct brk_presence_env {
	struct event_base *base; /* the loop the tick timer runs on */
	int tick_priority;       /* its priority on that loop */
	const char *node;        /* this replica's name */
	uint64_t vsn;            /* differs on every start of the node */
	long tick_ms;            /* --presence-tick-ms: the shortest tick */
	long max_devices;        /* --max-devices */
	/* Pushes presence_state, a payload of n slices (borrowed, valid
	 * during the call), to the channel given to brk_presence_push_state. */
	void (*push)(void *arg, void *to, const pl_slice *payload, size_t n);
	/* Sends a presence_diff payload to every local subscriber of topic;
	 * returns how many sockets it reached. */
	size_t (*broadcast)(
	    void *arg, const char *topic, const char *payload, size_t len);
	/* Closes the local channel whose presence owner id is owner, pushing
	 * event {} first when event is non-NULL. An ended channel is ignored.
	 * Its untrack comes back into the hub. */
	void (*close)(void *arg, uint64_t owner, const char *event);
	void *arg;
} brk_presence_env;

/* Creates the hub and its CRDT. Returns PL_OK and *out (free with
 * brk_presence_destroy), or PL_EINVAL (bad node name, tick_ms < 1) or
 * PL_ENOMEM with *out = NULL and nothing left behind. */
int brk_presence_create(brk_presence **out, const brk_presence_env *env);
/* Frees the hub, its CRDT and pending diffs (nothing is sent). */
void brk_presence_destroy(brk_presence *p);

/* Tracks owner (a channel's id) on topic under key with meta (JSON object
 * text). Returns PL_OK or a clu_presence_join error. */
int brk_presence_track(brk_presence *p, uint64_t owner, const char *topic,
    const char *key, const char *meta);
/* Removes whatever owner tracked (no-op if nothing). */
void brk_presence_untrack(brk_presence *p, uint64_t owner);
/* Pushes topic's presence_state, as it is now, through env.push to `to`.
 * Returns PL_OK or PL_ENOMEM (nothing pushed). */
int brk_presence_push_state(brk_presence *p, const char *topic, void *to);

/* Distinct keys present on topic, cluster-wide. */
size_t brk_presence_key_count(brk_presence *p, const char *topic);
int brk_presence_has_key(brk_presence *p, const char *topic, const char *key);
/* Closes this node's other channels tracking key on topic (a device that
 * reconnects replaces its older session). */
void brk_presence_replace_key(
    brk_presence *p, uint64_t owner, const char *topic, const char *key);

size_t brk_presence_entry_count(brk_presence *p);
/* The CRDT, for the cluster glue (borrowed). */
clu_presence *brk_presence_crdt(brk_presence *p);
/* Called after a remote delta or state was merged: enforces the device
 * limit on presence:<user> topics that the merge touched. */
void brk_presence_after_merge(brk_presence *p);
/* The delay before the next tick, in ms (it stretches in join storms). */
long brk_presence_tick_period(const brk_presence *p);

#endif
