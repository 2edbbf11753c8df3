/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster-wide presence as an observed-remove delta-state CRDT in the manner
 * of Phoenix.Tracker: each node (replica = node name + vsn) owns the entries
 * it tracks, ships deltas on a heartbeat and full state to peers that are
 * behind; every merge and local op reports joins/leaves per topic. */
#ifndef PARLEY_CLUSTER_PRESENCE_H
#define PARLEY_CLUSTER_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/presence_codec.h"

#define CLU_PRESENCE_REF_LEN 16 /* phx_ref characters (base64url of 12 B) */

typedef struct clu_presence clu_presence;

/* A read-only view of one presence entry (one meta of a key), valid only
 * during the callback that receives it. The topic and key strings it points
 * to stay valid longer: until the next call that modifies the presence
 * (join, update, leave*, replica_*, merge, destroy). */
typedef struct clu_presence_meta {
	const char *topic;
	const char *key;
	const char *meta; /* JSON text as given to join, NUL-terminated */
	size_t meta_len;
	char phx_ref[CLU_PRESENCE_REF_LEN + 1];
	char phx_ref_prev[CLU_PRESENCE_REF_LEN + 1]; /* "" unless an update */
	uint64_t owner;     /* owner handle, only meaningful when local */
	uint64_t joined_ns; /* unix ns of the track, read from phx_ref */
	bool local;         /* owned by this node */
} clu_presence_meta;

/* Reports changes of one topic. joins/leaves are arrays of views (borrowed,
 * valid during the call). Called synchronously from local ops, merges and
 * replica up/down; it may run queries but must not modify the presence. */
typedef void (*clu_presence_diff_fn)(void *arg, const char *topic,
    const clu_presence_meta *joins, size_t njoins,
    const clu_presence_meta *leaves, size_t nleaves);

/* Receives the visible metas of one key (borrowed, valid during the call).
 * Must not modify the presence nor run another list/get/owner query. */
typedef void (*clu_presence_key_fn)(void *arg, const char *topic,
    const char *key, const clu_presence_meta *metas, size_t n);

/* Creates the presence state of replica (node, vsn); vsn must differ on each
 * start of the node. on_diff (may be NULL) receives every change.
 * Returns PL_OK and *out (caller frees with clu_presence_destroy),
 * PL_EINVAL (empty or over-long node name), PL_ENOMEM. */
int clu_presence_create(clu_presence **out, const char *node, uint64_t vsn,
    clu_presence_diff_fn on_diff, void *arg);

/* Frees everything, without reporting leaves. NULL is a no-op. */
void clu_presence_destroy(clu_presence *p);

/* Tracks (owner, topic, key) with meta (JSON text, copied). ref_out (may be
 * NULL) receives the new phx_ref, NUL-terminated. Reports one join.
 * Errors: PL_EEXIST (already tracked), PL_EINVAL (empty/over-long strings,
 * or called from a callback), PL_ENOMEM. */
int clu_presence_join(clu_presence *p, uint64_t owner, const char *topic,
    const char *key, const char *meta, size_t meta_len,
    char ref_out[CLU_PRESENCE_REF_LEN + 1]);

/* Replaces the meta of a tracked (owner, topic, key): a leave of the old
 * entry and a join of a new one (new phx_ref, phx_ref_prev = old ref),
 * reported in one diff. Errors: PL_ENOTFOUND (nothing tracked), as join. */
int clu_presence_update(clu_presence *p, uint64_t owner, const char *topic,
    const char *key, const char *meta, size_t meta_len,
    char ref_out[CLU_PRESENCE_REF_LEN + 1]);

/* Untracks (owner, topic, key); reports one leave. Errors: PL_ENOTFOUND,
 * PL_ENOMEM, PL_EINVAL (called from a callback). */
int clu_presence_leave(
    clu_presence *p, uint64_t owner, const char *topic, const char *key);

/* Untracks every entry of owner (a closed connection/channel); *n (may be
 * NULL) receives how many. Errors: PL_ENOMEM, PL_EINVAL. */
int clu_presence_leave_owner(clu_presence *p, uint64_t owner, size_t *n);

/* Notes a heartbeat from replica (name, vsn). Unknown: added as up.
 * Known down with the same vsn: up again, its entries re-reported as joins.
 * Known with another vsn: the old replica is downed (leaves) and purged, the
 * new one added. Entries of replicas not known here are ignored by merge.
 * Errors: PL_EINVAL (empty name, or our own name with another vsn),
 * PL_ENOMEM. */
int clu_presence_replica_up(clu_presence *p, const char *name, uint64_t vsn);

/* Marks replica name down: its entries are hidden from queries and reported
 * as leaves, but kept. Errors: PL_ENOTFOUND, PL_EINVAL (self). */
int clu_presence_replica_down(clu_presence *p, const char *name);

/* Forgets replica name: its entries, context and pending relays are purged.
 * A replica still up is downed first (leaves reported, as Tracker's
 * graceful permdown); a down one is purged silently.
 * Errors: PL_ENOTFOUND, PL_EINVAL (self). */
int clu_presence_replica_permdown(clu_presence *p, const char *name);

/* True when local ops or relayed removals wait to be taken as a delta. */
bool clu_presence_has_delta(const clu_presence *p);

/* Takes the pending delta and resets it. *out is a new message (caller
 * frees with pro_presence_msg_destroy), or NULL when nothing is pending.
 * On error the delta stays pending. Errors: PL_ENOMEM. */
int clu_presence_take_delta(clu_presence *p, pro_presence_msg **out);

/* Exports the full state (all replicas' entries and causal contexts) as a
 * new message (caller frees). exclude (may be NULL) names a replica whose
 * entries and context are left out, normally the requester. Errors:
 * PL_ENOMEM. */
int clu_presence_export(
    clu_presence *p, const char *exclude, pro_presence_msg **out);

/* Exports this node's clocks vector (contiguous clock per up replica) as a
 * new message (caller frees). Errors: PL_ENOMEM. */
int clu_presence_clocks(clu_presence *p, pro_presence_msg **out);

/* True when clocks (a peer's clocks message, borrowed) show that the peer
 * has seen something of a replica we know and consider up that we have not:
 * ask that peer for its state. */
bool clu_presence_behind(const clu_presence *p, const pro_presence_msg *clocks);

/* Merges a delta or full state (borrowed). Joins: entries of known replicas
 * whose tag we have not seen. Leaves: entries of other replicas that the
 * message covers but does not hold. Never touches our own entries.
 * Commutative, associative and idempotent. Errors: PL_EINVAL (inconsistent
 * message or a clocks message), PL_ENOMEM (entries merged so far are kept;
 * merging the message again completes it). */
int clu_presence_merge(clu_presence *p, const pro_presence_msg *m);

/* Calls fn once per visible key of topic, with its visible metas. Returns
 * PL_OK (also for an unknown topic), PL_ENOMEM. */
int clu_presence_list(
    clu_presence *p, const char *topic, clu_presence_key_fn fn, void *arg);

/* Calls fn once with the visible metas of (topic, key), oldest join first
 * (by joined_ns, then phx_ref). Returns PL_OK, PL_ENOTFOUND (none),
 * PL_ENOMEM. */
int clu_presence_get(clu_presence *p, const char *topic, const char *key,
    clu_presence_key_fn fn, void *arg);

/* Number of distinct keys of topic with at least one visible meta. */
size_t clu_presence_key_count(const clu_presence *p, const char *topic);

/* Number of visible metas of (topic, key). */
size_t
clu_presence_count(const clu_presence *p, const char *topic, const char *key);

/* Calls fn (n = 1) for each local entry of owner; returns how many. */
size_t clu_presence_owner_list(
    clu_presence *p, uint64_t owner, clu_presence_key_fn fn, void *arg);

/* Total entries held, hidden ones included. */
size_t clu_presence_size(const clu_presence *p);

#endif
