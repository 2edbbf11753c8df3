/* SPDX-License-Identifier: Apache-2.0 */
/* Output queues: a ring of block pieces per socket and writev straight
 * from the shared blocks. The account adds a block's bytes when a first
 * queue takes it and removes them when the last one lets go. */
#include "broker/outq.h"

#include "common/err.h"
#include "proto/ws.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Entries handed to one writev. */
#define IOV_BATCH 64
#define RING_MIN 4

/* A piece of a block: 16 bytes per queued message per socket. */
typedef struct entry {
	pl_rcbuf *b;
	uint32_t off, len;
} entry;

struct brk_outq {
	entry *ring;
	uint32_t head, n, cap;
	size_t done;  /* bytes of ring[head] already written */
	size_t bytes; /* unsent bytes */
};

/* ---- frames ---- */

brk_frame *
brk_frame_text(const char *payload, size_t len)
{
	return brk_frame_ws(PRO_WS_TEXT, payload, len);
}

brk_frame *
brk_frame_ws(int opcode, const void *payload, size_t len)
{
	uint8_t hdr[10];
	size_t hl = pro_ws_frame_header(hdr, opcode, len);
	brk_frame *f = pl_rcbuf_new(hl + len);

	if (f != NULL) {
		memcpy(f->data, hdr, hl);
		if (len > 0) {
			memcpy(f->data + hl, payload, len);
		}
	}
	return f;
}

brk_frame *
brk_frame_take(struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	brk_frame *f = pl_rcbuf_new(len);

	if (f != NULL) {
		evbuffer_remove(b, f->data, len);
	}
	return f;
}

void
brk_frame_unref(brk_frame *f)
{
	pl_rcbuf_unref(f);
}

/* ---- queues ---- */

static size_t
block_cost(const pl_rcbuf *b)
{
	return sizeof(*b) + b->len;
}

static size_t
queue_cost(const brk_outq *q)
{
	return sizeof(*q) + q->cap * sizeof(*q->ring);
}

static int
grow(brk_outq *q, brk_outq_account *a)
{
	uint32_t cap = q->cap ? q->cap * 2 : RING_MIN;
	entry *r = malloc(cap * sizeof(*r));

	if (r == NULL) {
		return PL_ENOMEM;
	}
	for (uint32_t i = 0; i < q->n; i++) {
		r[i] = q->ring[(q->head + i) % q->cap];
	}
	free(q->ring);
	a->bytes += (cap - q->cap) * sizeof(*r);
	q->ring = r;
	q->head = 0;
	q->cap = cap;
	return PL_OK;
}

int
brk_outq_push(
    brk_outq **qp, brk_outq_account *a, pl_rcbuf *b, size_t off, size_t len)
{
	brk_outq *q = *qp;

	if (len > UINT32_MAX || off > UINT32_MAX) {
		return PL_EINVAL;
	}
	if (len == 0) {
		return PL_OK;
	}
	if (q == NULL) {
		if ((q = calloc(1, sizeof(*q))) == NULL) {
			return PL_ENOMEM;
		}
		a->bytes += sizeof(*q);
		*qp = q;
	}
	if (q->n == q->cap && grow(q, a) != PL_OK) {
		if (q->n == 0) {
			brk_outq_clear(qp, a);
		}
		return PL_ENOMEM;
	}
	pl_rcbuf_ref(b);
	if (b->queued++ == 0) {
		a->bytes += block_cost(b);
	}
	q->ring[(q->head + q->n) % q->cap] =
	    (entry){ b, (uint32_t)off, (uint32_t)len };
	q->n++;
	q->bytes += len;
	return PL_OK;
}

/* Removes the head entry. */
static void
pop(brk_outq *q, brk_outq_account *a)
{
	entry *e = &q->ring[q->head];

	q->bytes -= e->len - q->done;
	q->done = 0;
	q->head = (q->head + 1) % q->cap;
	q->n--;
	if (--e->b->queued == 0) {
		a->bytes -= block_cost(e->b);
	}
	pl_rcbuf_unref(e->b);
}

void
brk_outq_clear(brk_outq **qp, brk_outq_account *a)
{
	brk_outq *q = *qp;

	if (q == NULL) {
		return;
	}
	while (q->n > 0) {
		pop(q, a);
	}
	a->bytes -= queue_cost(q);
	free(q->ring);
	free(q);
	*qp = NULL;
}

ssize_t
brk_outq_write(brk_outq **qp, brk_outq_account *a, int fd)
{
	brk_outq *q = *qp;
	struct iovec iov[IOV_BATCH];
	ssize_t total = 0;

	while (q != NULL && q->n > 0) {
		uint32_t k, cnt = q->n < IOV_BATCH ? q->n : IOV_BATCH;
		size_t want = 0;
		ssize_t w;

		for (k = 0; k < cnt; k++) {
			const entry *e = &q->ring[(q->head + k) % q->cap];
			size_t skip = k == 0 ? q->done : 0;

			iov[k].iov_base = e->b->data + e->off + skip;
			iov[k].iov_len = e->len - skip;
			want += iov[k].iov_len;
		}
		w = writev(fd, iov, (int)cnt);
		if (w < 0) {
			if (errno == EINTR) {
				continue;
			}
			return total > 0 ? total : -1;
		}
		total += w;
		for (size_t left = (size_t)w; left > 0;) {
			size_t rest = q->ring[q->head].len - q->done;

			if (left < rest) {
				q->done += left;
				q->bytes -= left;
				break;
			}
			left -= rest;
			pop(q, a);
		}
		if ((size_t)w < want) {
			break; /* the socket is full */
		}
	}
	if (q != NULL && q->n == 0) {
		brk_outq_clear(qp, a);
	}
	return total;
}

size_t
brk_outq_bytes(const brk_outq *q)
{
	return q != NULL ? q->bytes : 0;
}

uint64_t
brk_outq_oldest(const brk_outq *q)
{
	return q != NULL && q->n > 0 ? q->ring[q->head].b->seq : UINT64_MAX;
}

/* ---- default budget ---- */

/* The cgroup v2 (then v1) memory limit, or 0 when there is none. */
static uint64_t
cgroup_limit(void)
{
	static const char *const files[] = { "/sys/fs/cgroup/memory.max",
		"/sys/fs/cgroup/memory/memory.limit_in_bytes" };

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		FILE *f = fopen(files[i], "r");
		unsigned long long v;
		int ok;

		if (f == NULL) {
			continue;
		}
		ok = fscanf(f, "%llu", &v) == 1;
		fclose(f);
		/* "max", or v1's "no limit" (a huge page-rounded number). */
		if (ok && v > 0 && v < (1ULL << 60)) {
			return v;
		}
	}
	return 0;
}

size_t
brk_outq_default_budget(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t mem = pages > 0 && psize > 0 ? (uint64_t)pages * psize : 0;
	uint64_t cg = cgroup_limit(), q;

	if (cg != 0 && (mem == 0 || cg < mem)) {
		mem = cg;
	}
	q = mem / 4;
	if (q < (64u << 20)) {
		q = 64u << 20;
	}
	return q > SIZE_MAX ? SIZE_MAX : (size_t)q;
}
