/* SPDX-License-Identifier: Apache-2.0 */
/* Presence replication as a cluster service, in the manner of
 * Phoenix.Tracker: the pending delta of the presence CRDT goes to every node
 * each tick that has one, the clocks every second; a node that sees from a
 * peer's clocks that it is behind asks it for its full state, and a member
 * that turns alive gets ours at once. Membership drives the replicas: a dead
 * member's presences are hidden (shown again if it returns), a member that
 * left has them removed for good. */
#ifndef PARLEY_CLUSTER_TRACKER_H
#define PARLEY_CLUSTER_TRACKER_H

#include "cluster/cluster.h"
#include "cluster/presence.h"

typedef struct clu_tracker clu_tracker;

/* Creates the service and registers it with cluster c. The cluster and the
 * CRDT are borrowed and must outlive the tracker; destroy the cluster first
 * (it never calls a service from destroy). after_merge (may be NULL) runs
 * after every remote delta or state merged into p, on the loop thread.
 * Returns PL_OK, PL_ENOMEM, or the error of clu_cluster_add_service; on
 * error *out is NULL. */
int clu_tracker_create(clu_tracker **out, clu_cluster *c, clu_presence *p,
    void (*after_merge)(void *arg), void *arg);
void clu_tracker_destroy(clu_tracker *t);

#endif
