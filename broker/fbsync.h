/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync queue (design.md, "Firebase"). On the cluster's leader
 * it writes every comment the node holds, from every origin, in seq order
 * per origin, as multi-path PATCHes of comments/<video>/<id> (proto/firebase),
 * starting from the per-origin synced marks that cluster/syncmarks
 * replicates to every node; on any other node it only keeps those marks
 * (and the parked comments) in its store, ready to take over.
 *
 * Batches: at most batch_max comments and batch_bytes bytes of JSON each,
 * at most inflight_max requests at a time. A request goes out at once
 * when none is in flight; while some are, only full batches join them, so
 * a busy cluster sends few large requests and a quiet one no delay.
 * Batches are marked synced in the order they were made (a batch done
 * early waits for the ones before it), so a new leader re-sends at most
 * the batches that were in flight.
 *
 * Faults: timeouts, connection errors, 5xx and 429 (Retry-After honoured)
 * are retried with exponential backoff and full jitter, the failed batch
 * first; 401 fetches a new OAuth token once (--firebase-credentials), and
 * 401/403 otherwise wait like a 5xx, as the credentials need fixing; any
 * other 4xx splits the batch until the refused comment is alone, which is
 * then parked: logged once with its path and Firebase's answer, counted,
 * listed by `parley sync --parked`, replicated, and sent again on
 * `parley sync --retry-parked`. Loop thread only. */
#ifndef PARLEY_BROKER_FBSYNC_H
#define PARLEY_BROKER_FBSYNC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct pl_metrics;
typedef struct sto_comments sto_comments;
typedef struct clu_syncmarks clu_syncmarks;
typedef struct brk_fetch brk_fetch;
typedef struct brk_gauth brk_gauth;
typedef struct brk_fbsync brk_fbsync;

typedef struct brk_fbsync_env {
	struct event_base *base;
	sto_comments *store;  /* borrowed */
	clu_syncmarks *marks; /* borrowed; its listener becomes ours */
	const char *self;     /* this node's name; copied */
	/* Sync on: the database URL (copied) and a client; NULL url: the
	 * node only keeps the replicated state. */
	const char *url;
	brk_fetch *fetch; /* borrowed */
	brk_gauth *gauth; /* borrowed; NULL: no service account */
	/* The auth= token (--firebase-auth[-file], reloaded on SIGHUP);
	 * NULL fn or NULL answer: none. */
	const char *(*auth_secret)(void *arg);
	void *auth_arg;
	unsigned batch_max;         /* comments per request; 0 = 500 */
	size_t batch_bytes;         /* JSON bytes per request; 0 = 1 MiB */
	unsigned inflight_max;      /* requests at once; 0 = 4 */
	uint32_t timeout_ms;        /* one request; 0 = 30000 */
	uint32_t retry_min_ms;      /* first backoff; 0 = 500 */
	uint32_t retry_max_ms;      /* longest backoff; 0 = 30000 */
	uint32_t poll_ms;           /* how often the store is checked for new
	                        * comments; 0 = 20 */
	uint32_t gap_wait_ms;       /* how long a hole in an origin's seqs is
	                        * waited for before it is parked; 0 = 60000 */
	unsigned parked_max;        /* parked comments before the queue stops
	                        * parking (it waits instead); 0 = 1000 */
	struct pl_metrics *metrics; /* registry for parley_firebase_*; may be
	                             * NULL */
} brk_fbsync_env;

/* Loads the persisted state into env->marks and starts. Returns PL_OK,
 * PL_EINVAL (bad URL: message in err), PL_ENOMEM; *out NULL on error. */
int brk_fbsync_create(
    brk_fbsync **out, const brk_fbsync_env *env, char *err, size_t errlen);
/* Cancels what is in flight (the next leader sends it again). NULL is
 * ignored. */
void brk_fbsync_destroy(brk_fbsync *s);

/* New comments may be in the store: look now rather than at the next
 * poll. */
void brk_fbsync_kick(brk_fbsync *s);

/* The body of GET /v1/sync (a new reference). */
json_t *brk_fbsync_status_json(brk_fbsync *s);
/* The body of GET /v1/sync/parked: at most limit entries. */
json_t *brk_fbsync_parked_json(brk_fbsync *s, size_t limit);
/* POST /v1/sync/retry: every parked comment is to be sent again by the
 * leader; returns how many. */
size_t brk_fbsync_retry_parked(brk_fbsync *s);

#endif
