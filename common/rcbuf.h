/* SPDX-License-Identifier: Apache-2.0 */
/* Reference-counted byte blocks, shared by reference between many holders
 * (one broadcast frame queued on every subscriber's socket, one topic's
 * presence_state text queued on every joiner's), and slices that point into
 * them. Single-threaded: the loop thread only. */
#ifndef PARLEY_COMMON_RCBUF_H
#define PARLEY_COMMON_RCBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl_rcbuf {
	unsigned refs;
	/* Socket output queues holding it: broker/outq counts a block's
	 * bytes once in the node's account, however many queues hold it. */
	unsigned queued;
	uint64_t seq; /* creation order (how old the oldest unsent byte is) */
	size_t len;
	char *data;  /* len bytes (plus a NUL when adopted from pl_sbuf) */
	int adopted; /* data is a separate allocation */
	char inline_data[];
} pl_rcbuf;

/* A block of len bytes (contents undefined, refs = 1) in one allocation;
 * NULL when out of memory. */
pl_rcbuf *pl_rcbuf_new(size_t len);

/* Takes ownership of the malloc'ed p (len bytes): refs = 1. On failure
 * returns NULL and frees p, so the caller never has to. */
pl_rcbuf *pl_rcbuf_adopt(char *p, size_t len);

void pl_rcbuf_ref(pl_rcbuf *b);
/* Drops one reference; the block is freed with the last. NULL is a no-op. */
void pl_rcbuf_unref(pl_rcbuf *b);

/* len bytes at p, which lie inside hold when hold is non-NULL (a receiver
 * may then keep them by taking a reference instead of copying). */
typedef struct pl_slice {
	const char *p;
	size_t len;
	pl_rcbuf *hold;
} pl_slice;

#endif
