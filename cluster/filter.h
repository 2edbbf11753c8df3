/* SPDX-License-Identifier: Apache-2.0 */
/* What the cluster refuses to listen to: connections that keep sending
 * malformed messages (counted per connection within a time window, so the
 * caller can cut them off) and, through the test-only fault hook, peers
 * blocked by name in both directions. Pure bookkeeping on the caller's
 * clock; single-threaded. */
#ifndef PARLEY_CLUSTER_FILTER_H
#define PARLEY_CLUSTER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

typedef struct clu_filter clu_filter;

/* A connection sending more than limit malformed messages within
 * window_ms is to be cut off. Returns PL_OK and *out (caller destroys),
 * PL_ENOMEM. */
int clu_filter_create(clu_filter **out, uint32_t limit, uint32_t window_ms);
void clu_filter_destroy(clu_filter *f);

/* Counts a malformed message that arrived on connection pipe at now (any
 * monotonic ms clock, the same for every call); the first from a
 * connection is logged ("CLU-MALFORMED"). Returns true when the connection
 * has now gone over the limit (logged "CLU-PEERCUT"): the caller closes it,
 * and its count starts afresh. At most 256 connections are tracked; the
 * oldest entry makes room. */
bool clu_filter_malformed(clu_filter *f, uint32_t pipe, uint64_t now);

/* Forgets connections whose window has passed. */
void clu_filter_expire(clu_filter *f, uint64_t now);

/* Fault hook: blocks or unblocks traffic with name (copied; at most
 * PRO_WIRE_SKIP_MAX names, logged "CLU-FAULT"). Returns PL_OK, PL_EFULL. */
int clu_filter_block(clu_filter *f, const char *name, bool blocked);

/* True when a message with header h must be dropped by self: its sender is
 * blocked here, or it asks self to skip it. */
bool
clu_filter_drops(const clu_filter *f, const pro_wire_hdr *h, const char *self);

/* True when traffic with name is blocked here (the addressed path checks
 * both its requests and the ones it serves against this). */
bool clu_filter_blocked(const clu_filter *f, const char *name);

/* Fills skip (room for PRO_WIRE_SKIP_MAX) with the blocked names, for the
 * header of every message we send, so that one call blocks both
 * directions. Strings borrow from f until it changes. Returns the count. */
size_t clu_filter_skip(const clu_filter *f, pro_wire_str *skip);

#endif
