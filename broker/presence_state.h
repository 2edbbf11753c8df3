/* SPDX-License-Identifier: Apache-2.0 */
/* One topic's presence_state text, kept between joins so that a burst of
 * joiners does not each walk the CRDT and re-serialize the whole topic: the
 * text as it was last built (the base, one shared block that every joiner's
 * socket queues by reference) and the keys that changed since (touched),
 * each rendered again from the CRDT once per change. A joiner gets the base
 * without the touched keys' old entries, plus their current ones: exactly
 * the presence tracked when it asks, its own included. The base is rebuilt
 * once the touched keys pass an eighth of it, so building costs O(1) per
 * join, amortised, whatever the topic's size. */
#ifndef PARLEY_BROKER_PRESENCE_STATE_H
#define PARLEY_BROKER_PRESENCE_STATE_H

#include "cluster/presence.h"
#include "common/rcbuf.h"
#include "common/sbuf.h"

#include <stddef.h>

typedef struct brk_pstate brk_pstate;

/* A cache for topic's state in crdt (borrowed; must outlive it). Nothing is
 * built until the first brk_pstate_get. Returns PL_OK and *out (free with
 * brk_pstate_destroy), or PL_ENOMEM with *out = NULL. */
int brk_pstate_create(brk_pstate **out, clu_presence *crdt, const char *topic);

/* Frees the cache; blocks still queued on sockets live on until sent.
 * NULL is a no-op. */
void brk_pstate_destroy(brk_pstate *s);

/* Notes that key's metas changed in the CRDT since the last call (a join,
 * a leave, an update, a merge). Safe from inside a CRDT diff callback. */
void brk_pstate_touch(brk_pstate *s, const char *key);

/* The topic's presence_state payload ({key: {"metas": [...]}, ...}) as
 * *n slices in order, at *out: borrowed, valid until the next call on s;
 * slices of the base hold a shared block a receiver may keep by reference.
 * Runs CRDT queries, so it must not be called from a CRDT callback.
 * Returns PL_OK or PL_ENOMEM. */
int brk_pstate_get(brk_pstate *s, const pl_slice **out, size_t *n);

/* Bytes of text the cache holds (base and touched keys). */
size_t brk_pstate_bytes(const brk_pstate *s);

/* Appends one meta as Phoenix sends it: the tracked JSON object with
 * "phx_ref" (and "phx_ref_prev" after an update) added. */
void brk_pstate_add_meta(pl_sbuf *b, const clu_presence_meta *m);

#endif
