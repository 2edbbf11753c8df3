/* SPDX-License-Identifier: Apache-2.0 */
/* The node's side of the cluster: drives cluster/ from the libevent loop
 * (its notification fd and tick), forwards channel broadcasts to other nodes,
 * ships presence deltas and full states, and answers the admin API's
 * membership questions. */
#ifndef PARLEY_BROKER_MESH_H
#define PARLEY_BROKER_MESH_H

#include <jansson.h>
#include <stddef.h>

typedef struct brk_node brk_node;
typedef struct brk_mesh brk_mesh;

/* Starts the bus listener and dials the --join seeds. */
int brk_mesh_create(brk_mesh **out, brk_node *n, char *err, size_t errlen);
void brk_mesh_destroy(brk_mesh *m);

/* Announces a graceful leave (idempotent). */
void brk_mesh_leave(brk_mesh *m);
/* Non-zero once the node is part of a cluster (a lone node without seeds is
 * a cluster of one at once; a node with seeds waits for one to answer). */
int brk_mesh_joined(const brk_mesh *m);
/* Non-zero once comment replication has caught up with the peers (or its
 * --catchup-timeout passed): with joined, what /readyz waits for. */
int brk_mesh_caught_up(brk_mesh *m);
/* The comment replication service (borrowed; NULL when m is NULL). */
struct clu_replication *brk_mesh_replication(brk_mesh *m);
/* Body of /v1/replication (new reference). */
json_t *brk_mesh_replication_json(brk_mesh *m);

/* Bodies of /v1/members and /v1/leader (new references). */
json_t *brk_mesh_members_json(brk_mesh *m);
json_t *brk_mesh_leader_json(brk_mesh *m);
/* Cluster counters for /v1/stats and /metrics (new reference). */
json_t *brk_mesh_stats_json(brk_mesh *m);

/* The node's JWT secret changed (SIGHUP): tells the peers its new
 * fingerprint and judges theirs again. */
void brk_mesh_secret_changed(brk_mesh *m);
/* Live peers signing client tokens with another JWT secret: their names,
 * comma-separated, into buf (truncated to len); returns how many. */
size_t brk_mesh_secret_mismatches(const brk_mesh *m, char *buf, size_t len);

/* The Firebase sync state service, for broker/fbsync; borrowed until
 * destroy. */
struct clu_syncmarks;
struct clu_syncmarks *brk_mesh_syncmarks(brk_mesh *m);

/* Test-only fault hook: drop all traffic to and from peer. */
int brk_mesh_block(brk_mesh *m, const char *peer, int on);

#endif
