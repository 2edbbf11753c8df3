/* SPDX-License-Identifier: Apache-2.0 */
/* Comment replication as a cluster service: every node comes to hold every
 * comment, in the same order (ids are global and sort by time).
 *
 * Origins. Each node process writes its own comments under an origin of its
 * own (for example "n1~3f9a0c12": the node name and a random suffix made at
 * each start), numbered by a per-origin seq from 1. A restarted node, one
 * whose disk was wiped, or one restored from an old backup is a new origin,
 * so an (origin, seq) pair is never minted twice; its earlier origins are
 * just history it holds.
 *
 * Live copies. Once a local comment is durable, publish() sends it to every
 * peer (one bus message); each stores it idempotently (same id, same bytes:
 * no-op; other bytes: a conflict, refused, logged with the peer, counted)
 * and, when the origin waits for acknowledgements (--ack-replicas > 1),
 * answers with an ACK once it is durable there.
 *
 * Anti-entropy. Per origin each node knows cw, the contiguous mark (every
 * seq up to it is held here, or exists nowhere), and hw, the highest seq
 * held. Nodes send their vector of marks every vector_ms (every 250 ms
 * until caught up), when a member turns alive, and in answer to a peer's
 * first vector. A node whose cw for an origin is below an alive peer's pulls
 * the range from that peer over the cluster's addressed path, in chunks of
 * at most pull_limit comments and about 1 MiB, at most two chunks not yet
 * durable per origin and two origins at a time, so the loop never stalls.
 * The peer answers with every comment it holds in (after, through] and
 * through = the highest seq it can vouch for; once the chunk is durable our
 * cw moves to through. Any peer may answer, so the origin may be dead.
 *
 * Catch-up. A node is caught up once it has heard the vector of every alive
 * peer and its cw has reached, for every origin, the highest cw those
 * vectors showed (or catchup_timeout_ms has passed: it then says so in the
 * log). The broker keeps /readyz at 503 until then.
 *
 * Loop thread only; the store and the cluster are borrowed. */
#ifndef PARLEY_CLUSTER_REPLICATION_H
#define PARLEY_CLUSTER_REPLICATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "storage/comments.h"

typedef struct clu_replication clu_replication;

typedef struct clu_replication_opts {
	clu_cluster *cluster;        /* borrowed; destroy it first */
	sto_comments *store;         /* borrowed; outlives the service */
	const char *origin;          /* this process's origin (copied) */
	const char *node;            /* this node's name: origins "node~..."
	                              * are its earlier lives */
	uint32_t ack_replicas;       /* nodes durable before an ok: 1.. */
	uint32_t ack_timeout_ms;     /* 0: 5000 */
	uint32_t vector_ms;          /* 0: 2000 */
	uint32_t pull_limit;         /* comments per chunk; 0: 1000 */
	uint32_t pull_timeout_ms;    /* 0: 10000 */
	uint32_t catchup_timeout_ms; /* 0: ready at once */
	/* Optional (NULL: none): observes, for each live copy made durable
	 * here, the seconds since the origin accepted it (its inserted_at,
	 * so the nodes' clocks must agree). */
	struct pl_metric *delay_seconds;
} clu_replication_opts;

/* Loads the marks from the store and registers the service. Returns PL_OK,
 * PL_EINVAL, PL_ENOMEM, PL_EIO, or the error of clu_cluster_add_service; on
 * error *out is NULL. */
int
clu_replication_create(clu_replication **out, const clu_replication_opts *o);
void clu_replication_destroy(clu_replication *r);

/* Outcome of a publish with acknowledgements: PL_OK once ack_replicas nodes
 * (this one included) hold the comment durably, PL_EAGAIN when they did not
 * within ack_timeout_ms (the comment is stored here and will still
 * replicate), PL_ECLOSED when the service is destroyed first. */
typedef void (*clu_replication_done_fn)(void *arg, int status);

/* True when enough members are alive (or suspect) that ack_replicas nodes
 * could hold a comment: with fewer, refuse the push at once. */
bool clu_replication_can_ack(const clu_replication *r);

/* c is a local comment of our origin that just became durable here (c
 * borrowed for the call). Sends it to every peer. With ack_replicas > 1 and
 * done non-NULL, done(arg, ...) runs exactly once later; otherwise never.
 * Returns PL_OK, or without calling done: PL_EINVAL (not our origin),
 * PL_ENOMEM, PL_ECLOSED (after leave). */
int clu_replication_publish(clu_replication *r, const sto_comment *c,
    clu_replication_done_fn done, void *arg);

/* True once caught up (see above); stays true. */
bool clu_replication_caught_up(clu_replication *r);

/* This process's origin (borrowed). */
const char *clu_replication_origin(const clu_replication *r);

/* One origin as this node sees it, for the operator view. Strings and the
 * peers array are borrowed for the call. lag_comments: how far the best
 * alive peer's cw is ahead of ours; lag_ms: how long we have been behind. */
typedef struct clu_replication_peer_mark {
	const char *peer;
	uint64_t cw, hw;
	bool alive;
} clu_replication_peer_mark;

typedef struct clu_replication_origin_view {
	const char *origin;
	uint64_t cw, hw;
	uint64_t lag_comments;
	uint64_t lag_ms;
	const clu_replication_peer_mark *peers;
	size_t npeers;
} clu_replication_origin_view;

void clu_replication_foreach(clu_replication *r,
    void (*fn)(void *arg, const clu_replication_origin_view *v), void *arg);

typedef struct clu_replication_stats {
	uint64_t live_in;          /* live copies received */
	uint64_t stored;           /* replicas made durable here */
	uint64_t duplicates;       /* copies we already held */
	uint64_t conflicts;        /* refused: id or seq held by other bytes */
	uint64_t malformed;        /* undecodable or inconsistent messages */
	uint64_t pulls;            /* chunks asked for */
	uint64_t pull_failures;    /* chunks that did not come */
	uint64_t catchup_comments; /* comments received in chunks */
	uint64_t catchup_bytes;    /* chunk bytes received */
	uint64_t served_chunks;    /* chunks we answered */
	uint64_t acks_pending;     /* publishes waiting for acks now */
	uint64_t ack_timeouts;
	uint64_t lag_comments; /* sum over origins */
	uint64_t lag_ms;       /* worst over origins */
	uint64_t catchup_left; /* comments still to fetch to catch up */
	bool caught_up;
} clu_replication_stats;

void clu_replication_stats_get(clu_replication *r, clu_replication_stats *out);

#endif
