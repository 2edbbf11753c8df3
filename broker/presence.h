/* SPDX-License-Identifier: Apache-2.0 */
/* The node's presence hub: tracks channel presences in the replicated
 * delta-CRDT (cluster/presence), pushes presence_state to joiners, and
 * coalesces each topic's joins and leaves into one presence_diff per tick
 * (--presence-tick-ms), so a burst of joins costs ticks × members rather
 * than joins × members. It also enforces the device limit after merges. */
#ifndef PARLEY_BROKER_PRESENCE_H
#define PARLEY_BROKER_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

typedef struct brk_node brk_node;
typedef struct brk_channel brk_channel;
typedef struct brk_presence brk_presence;
typedef struct clu_presence clu_presence;

int brk_presence_create(brk_presence **out, brk_node *n);
void brk_presence_destroy(brk_presence *p);

/* Tracks ch on its topic under key with meta (JSON object text). */
int brk_presence_track(
    brk_presence *p, brk_channel *ch, const char *key, const char *meta);
/* Removes whatever ch tracked (no-op if nothing). */
void brk_presence_untrack(brk_presence *p, brk_channel *ch);
/* Pushes presence_state for ch's topic to ch. */
void brk_presence_push_state(brk_presence *p, brk_channel *ch);

/* Distinct keys present on topic, cluster-wide. */
size_t brk_presence_key_count(brk_presence *p, const char *topic);
int brk_presence_has_key(brk_presence *p, const char *topic, const char *key);
/* Closes this node's other channels tracking key on ch's topic (a device
 * that reconnects replaces its older session). */
void
brk_presence_replace_key(brk_presence *p, brk_channel *ch, const char *key);

size_t brk_presence_entry_count(brk_presence *p);
/* The CRDT, for the cluster glue (borrowed). */
clu_presence *brk_presence_crdt(brk_presence *p);
/* Called after a remote delta or state was merged: enforces the device
 * limit on presence:<user> topics that the merge touched. */
void brk_presence_after_merge(brk_presence *p);

#endif
