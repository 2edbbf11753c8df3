/* SPDX-License-Identifier: Apache-2.0 */
/* Building the Firebase sync's batches (see fbsync.h): parked comments an
 * operator sent back first, then each origin's next comments in seq order,
 * round-robin over the origins, within the count and byte bounds; holes in
 * an origin's seqs are waited for, then parked. */
#include "broker/fbsync_int.h"

#include "cluster/syncmarks.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "proto/firebase.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 1000u   /* comments read from the store at once */
#define GAP_PARK_MAX 1000u /* missing seqs parked one by one, at most */

void
fb_batch_free(fb_batch *b)
{
	if (b != NULL) {
		free(b->spans);
		free(b->items);
		free(b->body);
		free(b);
	}
}

/* ---- building ---- */

typedef struct builder {
	fb_batch *b;
	pl_sbuf body;
	size_t cap;
	bool full;
} builder;

/* Adds c to the batch; false (nothing added) when it would pass the byte
 * bound. A batch always takes its first comment, whatever its size. */
static bool
add_item(brk_fbsync *s, builder *x, const sto_comment *c, uint32_t origin,
    bool retry)
{
	pro_fb_comment fc = { c->video_id, c->id, c->user_id, c->content,
		c->inserted_at };
	fb_batch *b = x->b;
	size_t before = x->body.len;
	fb_item *it;

	if (b->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		fb_item *ni = realloc(b->items, cap * sizeof(*ni));
		if (ni == NULL) {
			x->full = true;
			return false;
		}
		b->items = ni;
		x->cap = cap;
	}
	pro_fb_body_add(&x->body, &fc, b->n == 0);
	/* + 1 for the closing brace. */
	if (b->n > 0 && x->body.len + 1 > s->env.batch_bytes) {
		x->body.len = before;
		if (x->body.p) {
			x->body.p[before] = '\0';
		}
		x->full = true;
		return false;
	}
	it = &b->items[b->n++];
	it->origin = origin;
	it->seq = c->seq;
	it->inserted_at = c->inserted_at;
	it->retry = retry;
	it->off = before + 1; /* after the '{' or ',' */
	it->len = x->body.len - it->off;
	if (b->n >= s->env.batch_max) {
		x->full = true;
	}
	return true;
}

/* Reads origin/seq from the store (NULL when this node lacks it). */
static sto_comment_list *
read_one(brk_fbsync *s, const char *origin, uint64_t seq)
{
	sto_comment_list *l = NULL;

	if (sto_comments_origin_after(s->env.store, origin, seq - 1, 1, &l) !=
		PL_OK ||
	    l->count == 0 || l->items[0].seq != seq) {
		sto_comment_list_free(l);
		return NULL;
	}
	return l;
}

typedef struct retry_pick {
	struct {
		char origin[STO_ORIGIN_MAX + 1];
		uint64_t seq;
	} v[64];
	size_t n;
} retry_pick;

static void
pick_retry(void *arg, const pro_sync_parked *p)
{
	retry_pick *r = arg;

	if (p->state == PRO_SYNC_RETRY &&
	    r->n < sizeof(r->v) / sizeof(r->v[0])) {
		snprintf(r->v[r->n].origin, sizeof(r->v[r->n].origin), "%s",
		    p->origin);
		r->v[r->n++].seq = p->seq;
	}
}

/* Parked comments an operator asked to send again go first. */
static void
add_retries(brk_fbsync *s, builder *x)
{
	retry_pick r;

	r.n = 0;
	if (s->retry_items > 0) {
		return; /* some are out: the rest follow once they are back */
	}
	clu_syncmarks_parked_each(s->env.marks, 0, pick_retry, &r);
	for (size_t i = 0; i < r.n && !x->full; i++) {
		sto_comment_list *l = read_one(s, r.v[i].origin, r.v[i].seq);
		uint32_t idx;

		if (l == NULL ||
		    fb_origin_get(s, r.v[i].origin, &idx) == NULL) {
			char why[160];
			snprintf(why, sizeof(why), "not held by %s, the leader",
			    s->self);
			fb_park(s, r.v[i].origin, r.v[i].seq, 0, why);
		} else if (add_item(s, x, &l->items[0], idx, true)) {
			s->retry_items++;
		}
		sto_comment_list_free(l);
	}
}

/* A hole after o->next (seq `first` is the next one held): wait for the
 * missing comments to arrive (replication fills holes), then park them so
 * that they are neither lost nor block the origin. True to go on. */
static bool
gap(brk_fbsync *s, fb_origin *o, uint64_t first)
{
	uint64_t now = pl_mono_ms();
	char why[160];

	if (o->gap_since == 0) {
		o->gap_since = now;
	}
	if (now - o->gap_since < s->env.gap_wait_ms) {
		return false;
	}
	snprintf(why, sizeof(why),
	    "missing on %s, the leader, when its turn "
	    "came",
	    s->self);
	LOG_WARN("BRK-FBGAP",
	    "origin %s: seqs %" PRIu64 "..%" PRIu64 " are still missing on "
	    "this node after %u ms; parking them (parley sync --parked) and "
	    "going on",
	    o->name, o->next + 1, first - 1, s->env.gap_wait_ms);
	for (uint64_t q = o->next + 1; q < first; q++) {
		if (q - o->next > GAP_PARK_MAX ||
		    fb_park(s, o->name, q, 0, why) != PL_OK) {
			LOG_ERR("BRK-FBGAP",
			    "origin %s: seqs %" PRIu64 "..%" PRIu64
			    " skipped without being parked",
			    o->name, q, first - 1);
			break;
		}
	}
	o->next = first - 1;
	o->gap_since = 0;
	return true;
}

/* Adds origin o's next comments; false once the batch is full. */
static void
add_origin(brk_fbsync *s, builder *x, uint32_t idx)
{
	fb_origin *o = &s->origins[idx];

	while (!x->full && o->held > o->next) {
		size_t want = s->env.batch_max - x->b->n;
		sto_comment_list *l = NULL;
		bool stop = false;
		int rc;

		want = want < READ_CHUNK ? want : READ_CHUNK;
		rc = sto_comments_origin_after(
		    s->env.store, o->name, o->next, want, &l);
		if (rc != PL_OK) {
			LOG_SUMMARY(PL_LOG_ERR, "BRK-FBREAD",
			    "cannot read origin %s after seq %" PRIu64 ": %s",
			    o->name, o->next, pl_strerror(rc));
			return;
		}
		for (size_t j = 0; j < l->count && !stop; j++) {
			const sto_comment *c = &l->items[j];
			if (c->seq != o->next + 1 && !gap(s, o, c->seq)) {
				stop = true;
			} else if (!add_item(s, x, c, idx, false)) {
				stop = true;
			} else {
				o->next = c->seq;
				o->gap_since = 0;
			}
		}
		stop |= l->count == 0;
		sto_comment_list_free(l);
		if (stop) {
			return;
		}
	}
}

fb_batch *
fb_build(brk_fbsync *s)
{
	builder x;

	memset(&x, 0, sizeof(x));
	if ((x.b = calloc(1, sizeof(*x.b))) == NULL) {
		return NULL;
	}
	x.b->s = s;
	add_retries(s, &x);
	for (size_t k = 0; k < s->norigins && !x.full; k++) {
		add_origin(s, &x, (uint32_t)((s->rr + k) % s->norigins));
	}
	s->rr = s->norigins ? (s->rr + 1) % (unsigned)s->norigins : 0;
	if (x.b->n == 0) {
		pl_sbuf_free(&x.body);
		fb_batch_free(x.b);
		return NULL;
	}
	pro_fb_body_end(&x.body);
	x.b->body = pl_sbuf_take(&x.body, &x.b->body_len);
	if (x.b->body == NULL) {
		/* Out of memory: the cursors moved past these comments, so
		 * the pump starts over from the marks (they go again). */
		LOG_ERR("BRK-FBSYNC", "out of memory building a batch");
		fb_batch_free(x.b);
		s->restart = true;
		return NULL;
	}
	return x.b;
}

/* A batch of items [from, to) of b, with a body of their slices. */
fb_batch *
fb_slice(const fb_batch *b, size_t from, size_t to)
{
	fb_batch *h = calloc(1, sizeof(*h));
	pl_sbuf body = PL_SBUF_INIT;

	if (h == NULL ||
	    (h->items = calloc(to - from, sizeof(*h->items))) == NULL) {
		fb_batch_free(h);
		return NULL;
	}
	h->s = b->s; /* its marks were raised with b's: no spans to wait for */
	for (size_t i = from; i < to; i++) {
		fb_item it = b->items[i];
		pl_sbuf_add(&body, i == from ? "{" : ",", 1);
		it.off = body.len;
		pl_sbuf_add(&body, b->body + b->items[i].off, it.len);
		h->items[h->n++] = it;
	}
	pro_fb_body_end(&body);
	if ((h->body = pl_sbuf_take(&body, &h->body_len)) == NULL) {
		fb_batch_free(h);
		return NULL;
	}
	return h;
}
