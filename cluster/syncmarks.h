/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync state every node keeps, as a cluster service (service.h,
 * kinds CLU_KINDS_SYNC..): per comment origin the *synced* mark (every seq at
 * or below it is in Firebase or parked) and the *sent* mark (some leader has
 * sent every seq at or below it), and the parked comments (those Firebase
 * refused with a 4xx) with what became of them.
 *
 * A state-based CRDT: marks merge by max per origin, a parked entry by its
 * highest gen. The leader raises marks and parks; every change goes to every
 * peer at once, the whole state every CLU_SYNCMARKS_FULL_MS (parked entries
 * every CLU_SYNCMARKS_PARKED_MS) in case a message was lost, and to a member
 * that turns alive, then to all 1 s and 5 s later (cluster/resend.h: it
 * may have had no pipe yet). So a new leader resumes from the marks the old one
 * reached, re-sending at most what was in flight, and knows its parked
 * comments. This module keeps the state in memory and says what changed;
 * the broker persists it (broker/fbsync). Loop thread only. */
#ifndef PARLEY_CLUSTER_SYNCMARKS_H
#define PARLEY_CLUSTER_SYNCMARKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/syncstate.h"

enum {
	CLU_SYNCMARKS_KIND_MARKS = 32, /* CLU_KINDS_SYNC */
	CLU_SYNCMARKS_KIND_PARKED = 33,
};

#define CLU_SYNCMARKS_FULL_MS 5000u
#define CLU_SYNCMARKS_PARKED_MS 30000u
#define CLU_SYNCMARKS_ORIGINS_MAX 4096
#define CLU_SYNCMARKS_PARKED_MAX 4096 /* entries of any state */

typedef struct clu_cluster clu_cluster;
typedef struct clu_syncmarks clu_syncmarks;

/* Told what a peer's message changed (after the merge) and who leads; any
 * may be NULL. Strings and entries are borrowed for the call. */
typedef struct clu_syncmarks_listener {
	void (*on_marks)(
	    void *arg, const char *origin, uint64_t synced, uint64_t sent);
	void (*on_parked)(void *arg, const pro_sync_parked *p);
	/* The local view's leader changed; NULL while unknown. */
	void (*on_leader)(void *arg, const char *leader);
	void *arg;
} clu_syncmarks_listener;

/* Creates the service and registers it with c (borrowed; destroy the
 * cluster first). Returns PL_OK, PL_ENOMEM or clu_cluster_add_service's
 * error; *out is NULL on error. */
int clu_syncmarks_create(clu_syncmarks **out, clu_cluster *c);
void clu_syncmarks_destroy(clu_syncmarks *s);

/* Sets (or with NULL clears) who hears of changes; l is copied. */
void
clu_syncmarks_set_listener(clu_syncmarks *s, const clu_syncmarks_listener *l);

/* Raises origin's marks to at least synced and sent (never lowers them).
 * announce: tell every peer now (a local change); false when loading what
 * was persisted. Returns PL_OK, PL_EINVAL (bad origin), PL_EFULL (too many
 * origins), PL_ENOMEM. */
int clu_syncmarks_raise(clu_syncmarks *s, const char *origin, uint64_t synced,
    uint64_t sent, bool announce);

/* origin's marks; 0 and 0 when unknown. */
void clu_syncmarks_get(const clu_syncmarks *s, const char *origin,
    uint64_t *synced, uint64_t *sent);

/* Calls fn for every origin with its marks, in origin order. */
void clu_syncmarks_each(const clu_syncmarks *s,
    void (*fn)(void *arg, const char *origin, uint64_t synced, uint64_t sent),
    void *arg);

/* Stores p if its gen is higher than the entry's (or the entry is new),
 * announcing it when asked. A full table first forgets the DONE entry of
 * lowest gen. Returns PL_OK, PL_EEXIST (not newer: nothing changed),
 * PL_EINVAL, PL_EFULL (full of entries that are not DONE), PL_ENOMEM. */
int clu_syncmarks_put_parked(
    clu_syncmarks *s, const pro_sync_parked *p, bool announce);

/* The entry of (origin, seq), NULL if none; borrowed until the next
 * change. */
const pro_sync_parked *
clu_syncmarks_parked(const clu_syncmarks *s, const char *origin, uint64_t seq);

/* Calls fn for every parked entry, by origin then seq. fn must not change
 * the table. Returns how many entries are in `state` (0: any). */
size_t clu_syncmarks_parked_each(const clu_syncmarks *s, uint32_t state,
    void (*fn)(void *arg, const pro_sync_parked *p), void *arg);

/* The leader in the local view as last reported, NULL while unknown;
 * borrowed until the next change. */
const char *clu_syncmarks_leader(const clu_syncmarks *s);

#endif
