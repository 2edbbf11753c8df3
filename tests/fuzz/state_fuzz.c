/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the other cluster state a peer can send: rate-limit
 * counts (proto/ratecount) and the Firebase sync marks and parked entries
 * (proto/syncstate). The first input byte picks the decoder. Whatever a
 * decoder accepts is encoded again and must decode to the same entries. Any
 * abort or sanitizer report is a bug. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/ratecount.h"
#include "proto/syncstate.h"
#include "proto/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEEP 64 /* entries compared after a round trip */

static void
ratecount_round_trip(const uint8_t *data, size_t size)
{
	pro_ratecount_msg m, again;
	pro_wire_buf b;

	if (pro_ratecount_decode(data, size, &m) != PL_OK) {
		return;
	}
	pro_wire_buf_init(&b);
	if (pro_ratecount_encode(&b, m.window_ms, m.items, m.n) != PL_OK ||
	    pro_ratecount_decode(b.data, b.len, &again) != PL_OK ||
	    again.window_ms != m.window_ms || again.n != m.n) {
		abort();
	}
	for (size_t i = 0; i < m.n; i++) {
		const pro_ratecount *x = &m.items[i], *y = &again.items[i];

		if (x->window != y->window || x->count != y->count ||
		    x->user.len != y->user.len ||
		    x->action.len != y->action.len ||
		    memcmp(x->user.ptr, y->user.ptr, x->user.len) != 0 ||
		    memcmp(x->action.ptr, y->action.ptr, x->action.len) != 0) {
			abort();
		}
	}
	pro_ratecount_release(&again);
	pro_ratecount_release(&m);
	pro_wire_buf_free(&b);
}

/* Entries are copied out of the callback with their strings, which the
 * decoder lends only for the call. */
typedef struct marks {
	pro_sync_mark v[KEEP];
	char origin[KEEP][PRO_SYNC_ORIGIN_MAX + 1];
	size_t n, seen;
} marks;

static void
on_mark(void *arg, const pro_sync_mark *m)
{
	marks *s = arg;

	if (s->n < KEEP) {
		snprintf(
		    s->origin[s->n], sizeof(s->origin[0]), "%s", m->origin);
		s->v[s->n] = *m;
		s->v[s->n].origin = s->origin[s->n];
		s->n++;
	}
	s->seen++;
}

static void
marks_round_trip(const uint8_t *data, size_t size)
{
	static marks a, b;
	char *buf = NULL;
	size_t len;

	a.n = a.seen = b.n = b.seen = 0;
	if (pro_sync_marks_decode(data, size, on_mark, &a) != PL_OK ||
	    a.seen > KEEP) {
		return;
	}
	if (pro_sync_marks_encode(a.v, a.n, &buf, &len) != PL_OK ||
	    pro_sync_marks_decode(buf, len, on_mark, &b) != PL_OK ||
	    b.n != a.n) {
		abort();
	}
	for (size_t i = 0; i < a.n; i++) {
		if (strcmp(a.v[i].origin, b.v[i].origin) != 0 ||
		    a.v[i].synced != b.v[i].synced ||
		    a.v[i].sent != b.v[i].sent) {
			abort();
		}
	}
	free(buf);
}

typedef struct parked {
	pro_sync_parked v[KEEP];
	char origin[KEEP][PRO_SYNC_ORIGIN_MAX + 1];
	char reason[KEEP][PRO_SYNC_REASON_MAX + 1];
	size_t n, seen;
} parked;

static void
on_parked(void *arg, const pro_sync_parked *p)
{
	parked *s = arg;

	if (s->n < KEEP) {
		snprintf(
		    s->origin[s->n], sizeof(s->origin[0]), "%s", p->origin);
		snprintf(
		    s->reason[s->n], sizeof(s->reason[0]), "%s", p->reason);
		s->v[s->n] = *p;
		s->v[s->n].origin = s->origin[s->n];
		s->v[s->n].reason = s->reason[s->n];
		s->n++;
	}
	s->seen++;
}

static void
parked_round_trip(const uint8_t *data, size_t size)
{
	static parked a, b;
	char *buf = NULL;
	size_t len;

	a.n = a.seen = b.n = b.seen = 0;
	if (pro_sync_parked_decode(data, size, on_parked, &a) != PL_OK ||
	    a.seen > KEEP) {
		return;
	}
	if (pro_sync_parked_encode(a.v, a.n, &buf, &len) != PL_OK ||
	    pro_sync_parked_decode(buf, len, on_parked, &b) != PL_OK ||
	    b.n != a.n) {
		abort();
	}
	for (size_t i = 0; i < a.n; i++) {
		const pro_sync_parked *x = &a.v[i], *y = &b.v[i];

		if (strcmp(x->origin, y->origin) != 0 || x->seq != y->seq ||
		    x->gen != y->gen || x->state != y->state ||
		    x->status != y->status ||
		    strcmp(x->reason, y->reason) != 0) {
			abort();
		}
	}
	free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) {
		return 0;
	}
	switch (data[0] % 3) {
	case 0: ratecount_round_trip(data + 1, size - 1); break;
	case 1: marks_round_trip(data + 1, size - 1); break;
	default: parked_round_trip(data + 1, size - 1); break;
	}
	return 0;
}
