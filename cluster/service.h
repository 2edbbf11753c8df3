/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster services: the protocols that ride on the cluster (presence
 * replication, comment replication, the Firebase sync state, ...). Each one
 * registers the app-message kinds it owns and the callbacks it needs; the
 * cluster façade routes messages, membership changes, leader changes and its
 * periodic tick to them. A service is a plain object of its own module; this
 * header is only the seam, so a service can be driven by several in-process
 * clusters in a unit test exactly as by a node.
 *
 * Kinds. Each service owns a contiguous range of app kinds, fixed in the
 * table below so that nodes of one version agree; a message of a kind no
 * service owns is counted as unknown and skipped (an older node meeting a
 * newer service). */
#ifndef PARLEY_CLUSTER_SERVICE_H
#define PARLEY_CLUSTER_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/membership.h"
#include "proto/wire.h"

/* App-kind ranges, [first, first + count). */
enum {
	CLU_KINDS_PRESENCE = 1,     /* 1..15: presence deltas, clocks, state */
	CLU_KINDS_REPLICATION = 16, /* 16..31: comment replication */
	CLU_KINDS_SYNC = 32,        /* 32..47: Firebase sync state */
	CLU_KINDS_RATELIMIT = 48,   /* 48..63: cluster-wide rate limits */
	CLU_KINDS_NODEINFO = 64, /* 64..79: node facts (secret fingerprint) */
	CLU_KINDS_RANGE = 16,    /* kinds per range */
};

/* What a service gives the cluster. Every callback may be NULL, runs on the
 * loop thread from clu_cluster_poll()/clu_cluster_tick(), gets the service's
 * own arg, and may call any clu_cluster_* function except destroy and
 * add_service. Strings are borrowed for the call. */
typedef struct clu_service_ops {
	const char *name;    /* for logs and stats ("presence") */
	uint32_t kind_first; /* first app kind owned (one of CLU_KINDS_*) */
	uint32_t kind_count; /* kinds owned, 1..CLU_KINDS_RANGE */
	/* An app message of one of our kinds from node `from`; bytes are not
	 * NUL-terminated and are valid during the call only. */
	void (*on_message)(void *arg, const char *from, uint32_t kind,
	    const void *bytes, size_t len);
	/* A member's status changed (never called for this node itself). */
	void (*on_member_change)(void *arg, const char *name,
	    clu_status old_status, clu_status new_status);
	/* The local view's leader changed; leader NULL while unknown. */
	void (*on_leader_change)(void *arg, const char *leader);
	/* About every CLU_CLUSTER_TICK_MS, after membership has been updated;
	 * now_ms is the caller's monotonic clock. */
	void (*on_tick)(void *arg, uint64_t now_ms);
	/* A request on the addressed path (clu_cluster_request) from node
	 * `from`: append the answer to *reply and return PL_OK; any other
	 * return is sent to the asker as its status with no bytes. Runs on
	 * the loop: keep it short (bounded work per request). */
	int (*on_request)(void *arg, const char *from, uint32_t kind,
	    const void *bytes, size_t len, pro_wire_buf *reply);
} clu_service_ops;

#endif
