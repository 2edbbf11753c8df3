/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster-wide rate limits as a cluster service: each node's counts of
 * (action, user) in the current window travel to every other node as soon
 * as they change (one message per burst, proto/ratecount), and all of the
 * current window's whenever a member turns alive (a new, restarted or
 * healed node) and again 1 s and 5 s later (cluster/resend.h: it may have
 * had no pipe yet);
 * counts received are merged into the local limiter. The limiter itself stays in
 * the broker; this service only carries counts, through two callbacks.
 * Loop thread only. */
#ifndef PARLEY_CLUSTER_RATESYNC_H
#define PARLEY_CLUSTER_RATESYNC_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

typedef struct clu_ratesync clu_ratesync;

typedef void (*clu_ratesync_emit_fn)(void *ctx, const char *action,
    const char *user, uint64_t window, unsigned count);

typedef struct clu_ratesync_ops {
	/* Hands every count changed since the last call to emit. */
	void (*collect)(void *arg, clu_ratesync_emit_fn emit, void *ctx);
	/* Makes the next collect hand every count of the current window
	 * (a member has turned alive: it may know none of them). May be
	 * NULL. */
	void (*touch_all)(void *arg);
	/* Another node's total for (action, user) in window. */
	void (*merge)(void *arg, const char *from, const char *action,
	    const char *user, uint64_t window, unsigned count);
	void *arg;
} clu_ratesync_ops;

/* Registers the service with cluster c (borrowed; destroy it first).
 * window_ms: this node's window; messages of another window length are
 * ignored (a misconfigured peer) and counted. ops is copied. Returns PL_OK,
 * PL_EINVAL, PL_ENOMEM, or the error of clu_cluster_add_service; *out NULL
 * on error. */
int clu_ratesync_create(clu_ratesync **out, clu_cluster *c, uint32_t window_ms,
    const clu_ratesync_ops *ops);
void clu_ratesync_destroy(clu_ratesync *s);

/* Collects the changed counts and sends them now (call it once per burst,
 * e.g. from a deferred event); also done on every tick. */
void clu_ratesync_flush(clu_ratesync *s);

typedef struct clu_ratesync_stats {
	uint64_t sent, received; /* counts */
	uint64_t refused;        /* malformed, or another window length */
	uint64_t resends;        /* repeats of all counts after a join */
} clu_ratesync_stats;

void clu_ratesync_stats_get(const clu_ratesync *s, clu_ratesync_stats *out);

#endif
