/* SPDX-License-Identifier: Apache-2.0 */
/* Socket output as a queue of pieces of refcounted blocks. A broadcast
 * frame is built once and every subscriber's queue holds a reference to it,
 * so N stalled subscribers cost N queue entries (16 bytes each), not N
 * copies. A node-wide account counts each queued block once (and every
 * queue's entry array), which is what --max-queued-bytes bounds. */
#ifndef PARLEY_BROKER_OUTQ_H
#define PARLEY_BROKER_OUTQ_H

#include "common/rcbuf.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct evbuffer;

/* A prebuilt WebSocket frame, shared by every queue that holds it. */
typedef pl_rcbuf brk_frame;

/* A WebSocket frame of opcode around payload (refs = 1), or NULL. */
brk_frame *brk_frame_ws(int opcode, const void *payload, size_t len);
/* The same for a text frame. */
brk_frame *brk_frame_text(const char *payload, size_t len);
/* A block holding everything in b, which is drained (refs = 1), or NULL
 * (b untouched). */
brk_frame *brk_frame_take(struct evbuffer *b);
void brk_frame_unref(brk_frame *f);

/* Queued output of the whole node, in bytes of memory. */
typedef struct brk_outq_account {
	size_t bytes;
} brk_outq_account;

/* One socket's queue; NULL while empty (an idle socket carries nothing). */
typedef struct brk_outq brk_outq;

/* Appends b's bytes [off, off + len) (taking a reference of its own),
 * creating *q if needed. Returns PL_OK, PL_EINVAL (len over 4 GiB) or
 * PL_ENOMEM (nothing queued). */
int brk_outq_push(
    brk_outq **q, brk_outq_account *a, pl_rcbuf *b, size_t off, size_t len);
/* Writes what fd takes without blocking; frees *q once it is empty.
 * Returns the bytes written, or -1 with errno (EAGAIN: the socket is
 * full, nothing was written). */
ssize_t brk_outq_write(brk_outq **q, brk_outq_account *a, int fd);
/* Drops everything queued and frees *q. */
void brk_outq_clear(brk_outq **q, brk_outq_account *a);
/* Unsent bytes in the queue (0 for NULL). */
size_t brk_outq_bytes(const brk_outq *q);
/* seq of the block of the oldest unsent byte (UINT64_MAX for NULL). */
uint64_t brk_outq_oldest(const brk_outq *q);

/* A default for --max-queued-bytes: a quarter of the memory this process
 * may use (the cgroup limit when there is one, else physical memory), at
 * least 64 MiB. */
size_t brk_outq_default_budget(void);

#endif
