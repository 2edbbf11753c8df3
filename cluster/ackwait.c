/* SPDX-License-Identifier: Apache-2.0 */
/* Acknowledgement waiters (see ackwait.h): an array kept in ascending seq,
 * so an ack finds its waiter by binary search. Finished entries are marked
 * (done = NULL) and compacted away after each pass; a pass reaches entries
 * by index and never touches one after its callback, so a callback may add
 * a waiter (the array may move). */
#include "cluster/ackwait.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

typedef struct waiter {
	uint64_t seq;
	uint64_t deadline;
	uint64_t ackers; /* bit per peer index */
	unsigned count;  /* nodes holding it, us included */
	clu_ackwait_done_fn done;
	void *arg;
} waiter;

struct clu_ackwait {
	unsigned need;
	uint64_t timeout_ms;
	waiter *w; /* ascending seq */
	size_t n, cap;
};

int
clu_ackwait_create(clu_ackwait **out, unsigned need, uint64_t timeout_ms)
{
	clu_ackwait *a;

	*out = NULL;
	if (need < 2 || timeout_ms == 0) {
		return PL_EINVAL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		return PL_ENOMEM;
	}
	a->need = need;
	a->timeout_ms = timeout_ms;
	*out = a;
	return PL_OK;
}

static void
finish(waiter *w, int status)
{
	clu_ackwait_done_fn done = w->done;

	w->done = NULL;
	done(w->arg, status);
}

/* Drops the finished waiters (done == NULL). */
static void
compact(clu_ackwait *a)
{
	size_t k = 0;

	for (size_t i = 0; i < a->n; i++) {
		if (a->w[i].done != NULL) {
			a->w[k++] = a->w[i];
		}
	}
	a->n = k;
}

void
clu_ackwait_destroy(clu_ackwait *a)
{
	if (a == NULL) {
		return;
	}
	for (size_t i = 0; i < a->n; i++) {
		if (a->w[i].done != NULL) {
			finish(&a->w[i], PL_ECLOSED);
		}
	}
	free(a->w);
	free(a);
}

/* Where seq is or would go. */
static size_t
lower_bound(const clu_ackwait *a, uint64_t seq)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a->w[mid].seq < seq) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return lo;
}

int
clu_ackwait_add(clu_ackwait *a, uint64_t seq, uint64_t now_ms,
    clu_ackwait_done_fn done, void *arg)
{
	size_t at = lower_bound(a, seq);

	if (done == NULL || (at < a->n && a->w[at].seq == seq)) {
		return PL_EINVAL;
	}
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		waiter *p = realloc(a->w, cap * sizeof(*p));

		if (p == NULL) {
			return PL_ENOMEM;
		}
		a->w = p;
		a->cap = cap;
	}
	/* Commits complete in seq order, so this is nearly always the end. */
	memmove(&a->w[at + 1], &a->w[at], (a->n - at) * sizeof(*a->w));
	a->n++;
	a->w[at] = (waiter){ .seq = seq,
		.deadline = now_ms + a->timeout_ms,
		.count = 1,
		.done = done,
		.arg = arg };
	return PL_OK;
}

static waiter *
find(clu_ackwait *a, uint64_t seq)
{
	size_t at = lower_bound(a, seq);

	return at < a->n && a->w[at].seq == seq ? &a->w[at] : NULL;
}

size_t
clu_ackwait_ack(clu_ackwait *a, unsigned peer, const uint64_t *seqs, size_t n)
{
	size_t finished = 0;
	uint64_t bit;

	if (peer >= CLU_ACKWAIT_PEERS) {
		return 0;
	}
	bit = 1ull << peer;
	for (size_t i = 0; i < n; i++) {
		waiter *w = find(a, seqs[i]);

		if (w == NULL || w->done == NULL || (w->ackers & bit)) {
			continue;
		}
		w->ackers |= bit;
		if (++w->count >= a->need) {
			finish(w, PL_OK);
			finished++;
		}
	}
	if (finished > 0) {
		compact(a);
	}
	return finished;
}

size_t
clu_ackwait_expire(clu_ackwait *a, uint64_t now_ms)
{
	size_t finished = 0;

	for (size_t i = 0; i < a->n; i++) {
		if (a->w[i].done != NULL && now_ms >= a->w[i].deadline) {
			finish(&a->w[i], PL_EAGAIN);
			finished++;
		}
	}
	if (finished > 0) {
		compact(a);
	}
	return finished;
}

size_t
clu_ackwait_pending(const clu_ackwait *a)
{
	return a->n;
}
