/* SPDX-License-Identifier: Apache-2.0 */
/* Acknowledgement waiters for --ack-replicas: publishes of this node's own
 * comments that answer their client only once `need` nodes (this one
 * included) hold the comment durably, or with a timeout. Each waiter is a
 * seq; peers acknowledge seqs, and a peer's second ack of one seq does not
 * count twice. A plain table with an explicit clock, so it is tested
 * without a cluster. Loop thread only. */
#ifndef PARLEY_CLUSTER_ACKWAIT_H
#define PARLEY_CLUSTER_ACKWAIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct clu_ackwait clu_ackwait;

/* status: PL_OK once enough nodes hold it, PL_EAGAIN on timeout,
 * PL_ECLOSED when the table is destroyed first. Called exactly once. */
typedef void (*clu_ackwait_done_fn)(void *arg, int status);

/* Peers are told apart by an index below this (their bit in a mask). */
#define CLU_ACKWAIT_PEERS 64

/* need: nodes that must hold a comment, this one included (>= 2, or there
 * is nothing to wait for); timeout_ms > 0. *out NULL on error. */
int clu_ackwait_create(clu_ackwait **out, unsigned need, uint64_t timeout_ms);
/* Finishes every pending waiter with PL_ECLOSED. */
void clu_ackwait_destroy(clu_ackwait *a);

/* Waits for seq; the deadline is now_ms + timeout_ms. Returns PL_OK,
 * PL_EINVAL (seq already waiting, or done NULL), PL_ENOMEM. */
int clu_ackwait_add(clu_ackwait *a, uint64_t seq, uint64_t now_ms,
    clu_ackwait_done_fn done, void *arg);

/* Peer `peer` (< CLU_ACKWAIT_PEERS) holds seqs[0..n): finishes the waiters
 * that reach `need`. Unknown seqs are ignored. Returns how many finished. */
size_t
clu_ackwait_ack(clu_ackwait *a, unsigned peer, const uint64_t *seqs, size_t n);

/* Finishes the waiters whose deadline is at or before now_ms with
 * PL_EAGAIN. Returns how many. */
size_t clu_ackwait_expire(clu_ackwait *a, uint64_t now_ms);

/* Waiters still pending. */
size_t clu_ackwait_pending(const clu_ackwait *a);

#endif
