/* SPDX-License-Identifier: Apache-2.0 */
/* The replicated part of the Firebase sync (see fbsync.h): the origins this
 * node knows, their synced/sent marks (cluster/syncmarks, persisted as
 * named watermarks `fbs:<origin>` and `fbx:<origin>`), the parked comments
 * (watermarks `fbp:<seq>:<origin>` holding gen, state and status), and the
 * listener that persists what peers tell us and follows the leader. */
#include "broker/fbsync_int.h"

#include "cluster/syncmarks.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WM_SYNCED "fbs:"
#define WM_SENT "fbx:"
#define WM_PARKED "fbp:"

/* ---- origins ---- */

fb_origin *
fb_origin_get(brk_fbsync *s, const char *name, uint32_t *idx)
{
	fb_origin *o;

	for (size_t i = 0; i < s->norigins; i++) {
		if (strcmp(s->origins[i].name, name) == 0) {
			if (idx) {
				*idx = (uint32_t)i;
			}
			return &s->origins[i];
		}
	}
	if (strlen(name) > STO_ORIGIN_MAX) {
		return NULL;
	}
	if (s->norigins == s->cap_origins) {
		size_t cap = s->cap_origins ? s->cap_origins * 2 : 8;
		fb_origin *no = realloc(s->origins, cap * sizeof(*no));
		uint64_t *sc =
		    no ? realloc(s->scratch, cap * sizeof(*sc)) : NULL;
		if (no != NULL) {
			s->origins = no;
		}
		if (sc == NULL) {
			return NULL;
		}
		s->scratch = sc;
		s->cap_origins = cap;
	}
	o = &s->origins[s->norigins];
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", name);
	/* Nothing of it is in the store yet (loading sets what is): marks a
	 * peer told us are persisted by the next poll. */
	clu_syncmarks_get(s->env.marks, name, &o->next, &o->known_sent);
	o->unsaved = o->next > 0 || o->known_sent > 0;
	if (idx) {
		*idx = (uint32_t)s->norigins;
	}
	s->norigins++;
	return o;
}

/* Reads the store's per-origin vector: what this node holds. */
int
fb_refresh_origins(brk_fbsync *s)
{
	sto_origin_vec *v = NULL;
	int rc = sto_comments_origin_vector(s->env.store, &v);

	if (rc != PL_OK) {
		return rc;
	}
	for (size_t i = 0; i < v->count; i++) {
		fb_origin *o = fb_origin_get(s, v->items[i].origin, NULL);
		if (o != NULL) {
			o->held = v->items[i].seq;
		}
	}
	sto_origin_vec_free(v);
	return PL_OK;
}

/* ---- marks and their persistence ---- */

/* `prefix origin`, false when it does not fit a watermark name. */
static bool
wm_name(char *buf, size_t len, const char *prefix, const char *origin)
{
	int n = snprintf(buf, len, "%s%s", prefix, origin);

	return n > 0 && (size_t)n < len && (size_t)n <= STO_WATERMARK_NAME_MAX;
}

/* A sent mark is durable: batches up to it may go out. */
static void
sent_saved(void *arg, int status)
{
	fb_ticket *t = arg;
	brk_fbsync *s = t->s;

	if (s != NULL) {
		fb_origin *o = &s->origins[t->origin];
		if (status == PL_OK && t->value > o->durable_sent) {
			o->durable_sent = t->value;
			brk_fbsync_kick(s);
		} else if (status != PL_OK) {
			o->unsaved = true; /* the poll tries again */
			o->saved_sent = o->durable_sent;
		}
		if (t->prev) {
			t->prev->next = t->next;
		} else {
			s->tickets = t->next;
		}
		if (t->next) {
			t->next->prev = t->prev;
		}
	}
	free(t);
}

void
fb_detach_tickets(brk_fbsync *s)
{
	for (fb_ticket *t = s->tickets; t != NULL; t = t->next) {
		t->s = NULL;
	}
	s->tickets = NULL;
}

/* Queues a watermark write; a sent mark (ticket) reports its durability.
 * False when the store refused it for now. */
static bool
save_one(brk_fbsync *s, const char *prefix, const char *origin, uint64_t v,
    fb_ticket *t)
{
	char name[STO_WATERMARK_NAME_MAX + 8];
	int rc;

	if (!wm_name(name, sizeof(name), prefix, origin)) {
		LOG_SUMMARY(PL_LOG_WARN, "BRK-FBSAVE",
		    "sync marks of origin %s are kept in memory only: the name "
		    "is too long to persist",
		    origin);
		if (t != NULL) {
			/* Nothing will ever be durable: do not hold batches. */
			s->origins[t->origin].durable_sent = v;
			free(t);
		}
		return true;
	}
	rc = sto_comments_set_watermark(
	    s->env.store, name, v, t ? sent_saved : NULL, t);
	if (rc == PL_OK && t != NULL) {
		t->next = s->tickets;
		if (s->tickets) {
			s->tickets->prev = t;
		}
		s->tickets = t;
	} else if (t != NULL) {
		free(t);
	}
	if (rc != PL_OK && rc != PL_ECLOSED) {
		LOG_SUMMARY(PL_LOG_WARN, "BRK-FBSAVE",
		    "sync mark %s not persisted yet: %s", name,
		    pl_strerror(rc));
	}
	return rc == PL_OK || rc == PL_ECLOSED;
}

/* Persists what changed of origin o's marks. */
static void
save_marks(brk_fbsync *s, fb_origin *o)
{
	uint64_t synced, sent;
	bool ok = true;

	clu_syncmarks_get(s->env.marks, o->name, &synced, &sent);
	if (synced != o->saved_synced) {
		if ((ok = save_one(s, WM_SYNCED, o->name, synced, NULL))) {
			o->saved_synced = synced;
		}
	}
	if (ok && sent != o->saved_sent) {
		fb_ticket *t = calloc(1, sizeof(*t));
		if (t == NULL) {
			ok = false;
		} else {
			t->s = s;
			t->origin = (uint32_t)(o - s->origins);
			t->value = sent;
			if ((ok = save_one(s, WM_SENT, o->name, sent, t))) {
				o->saved_sent = sent;
			}
		}
	}
	o->unsaved = !ok;
}

void
fb_raise(brk_fbsync *s, uint32_t idx, uint64_t synced, uint64_t sent)
{
	fb_origin *o = &s->origins[idx];
	int rc = clu_syncmarks_raise(s->env.marks, o->name, synced, sent, true);

	if (rc != PL_OK) {
		LOG_SUMMARY(PL_LOG_WARN, "BRK-FBSAVE",
		    "sync marks of %s not kept: %s", o->name, pl_strerror(rc));
		return;
	}
	save_marks(s, o);
}

void
fb_save_pending(brk_fbsync *s)
{
	for (size_t i = 0; i < s->norigins; i++) {
		if (s->origins[i].unsaved) {
			save_marks(s, &s->origins[i]);
		}
	}
}

/* ---- parked comments ---- */

static uint64_t
parked_value(const pro_sync_parked *p)
{
	return (p->gen << 24) | ((uint64_t)(p->state & 0xff) << 16) |
	    (p->status & 0xffff);
}

void
fb_save_parked(brk_fbsync *s, const pro_sync_parked *p)
{
	char prefix[40];

	snprintf(prefix, sizeof(prefix), WM_PARKED "%" PRIu64 ":", p->seq);
	/* Parks are rare: a busy store only delays it to the next change,
	 * and every peer holds the entry meanwhile. */
	(void)save_one(s, prefix, p->origin, parked_value(p), NULL);
}

int
fb_park(brk_fbsync *s, const char *origin, uint64_t seq, uint32_t status,
    const char *reason)
{
	const pro_sync_parked *old =
	    clu_syncmarks_parked(s->env.marks, origin, seq);
	pro_sync_parked p;
	int rc;

	if ((old == NULL || old->state != PRO_SYNC_PARKED) &&
	    fb_parked_count(s, PRO_SYNC_PARKED) >= s->env.parked_max) {
		return PL_EFULL;
	}
	memset(&p, 0, sizeof(p));
	p.origin = origin;
	p.seq = seq;
	p.gen = old ? old->gen + 1 : 1;
	p.state = PRO_SYNC_PARKED;
	p.status = status;
	p.reason = reason;
	if ((rc = clu_syncmarks_put_parked(s->env.marks, &p, true)) != PL_OK) {
		return rc;
	}
	fb_save_parked(s, &p);
	s->st.parked++;
	return PL_OK;
}

void
fb_parked_done(brk_fbsync *s, const char *origin, uint64_t seq)
{
	const pro_sync_parked *old =
	    clu_syncmarks_parked(s->env.marks, origin, seq);
	pro_sync_parked p;

	if (old == NULL || old->state == PRO_SYNC_DONE) {
		return;
	}
	p = *old;
	p.gen++;
	p.state = PRO_SYNC_DONE;
	p.reason = "";
	if (clu_syncmarks_put_parked(s->env.marks, &p, true) == PL_OK) {
		fb_save_parked(s, &p);
	}
}

size_t
fb_parked_count(brk_fbsync *s, uint32_t state)
{
	return clu_syncmarks_parked_each(s->env.marks, state, NULL, NULL);
}

/* ---- loading ---- */

static void
load_mark(void *arg, const char *name, uint64_t value)
{
	brk_fbsync *s = arg;
	bool synced = strncmp(name, WM_SYNCED, 4) == 0;
	const char *origin = name + 4;

	if (clu_syncmarks_raise(s->env.marks, origin, synced ? value : 0,
		synced ? 0 : value, false) == PL_OK) {
		fb_origin *o = fb_origin_get(s, origin, NULL);
		if (o != NULL && synced) {
			o->saved_synced = value;
		} else if (o != NULL) {
			o->saved_sent = value;
			o->durable_sent = value;
		}
	}
}

static void
load_parked(void *arg, const char *name, uint64_t value)
{
	brk_fbsync *s = arg;
	pro_sync_parked p;
	char *end;

	memset(&p, 0, sizeof(p));
	p.seq = strtoull(name + 4, &end, 10);
	if (*end != ':' || end[1] == '\0') {
		return;
	}
	p.origin = end + 1;
	p.gen = value >> 24;
	p.state = (uint32_t)(value >> 16) & 0xff;
	p.status = (uint32_t)value & 0xffff;
	p.reason = "";
	if (clu_syncmarks_put_parked(s->env.marks, &p, false) != PL_OK) {
		LOG_WARN("BRK-FBLOAD", "parked entry %s not loaded", name);
	}
}

int
fb_load(brk_fbsync *s)
{
	int rc;

	if ((rc = sto_comments_watermarks(
		 s->env.store, WM_SYNCED, load_mark, s)) != PL_OK ||
	    (rc = sto_comments_watermarks(
		 s->env.store, WM_SENT, load_mark, s)) != PL_OK ||
	    (rc = sto_comments_watermarks(
		 s->env.store, WM_PARKED, load_parked, s)) != PL_OK) {
		return rc;
	}
	return PL_OK;
}

/* ---- what peers tell us ---- */

static void
on_marks(void *arg, const char *origin, uint64_t synced, uint64_t sent)
{
	brk_fbsync *s = arg;
	fb_origin *o = fb_origin_get(s, origin, NULL);

	if (o == NULL) {
		return;
	}
	save_marks(s, o);
	if (!s->leading) {
		return;
	}
	/* Another leader (the other side of a partition, or one we have
	 * not heard leave) sent what we also sent: duplicates in Firebase,
	 * harmless since writes are idempotent, but counted. */
	if (sent > o->known_sent) {
		uint64_t top = sent < o->next ? sent : o->next;
		if (top > o->known_sent) {
			s->st.resent += top - o->known_sent;
		}
		o->known_sent = sent;
	}
	if (synced > o->next) {
		o->next = synced; /* written already: skip it */
		o->gap_since = 0;
	}
}

static void
on_parked(void *arg, const pro_sync_parked *p)
{
	brk_fbsync *s = arg;

	fb_save_parked(s, p);
	if (s->leading && p->state == PRO_SYNC_RETRY) {
		brk_fbsync_kick(s);
	}
}

static void
on_leader(void *arg, const char *leader)
{
	brk_fbsync *s = arg;

	fb_lead(s, leader != NULL && strcmp(leader, s->self) == 0);
}

void
fb_listen(brk_fbsync *s)
{
	clu_syncmarks_listener l = { on_marks, on_parked, on_leader, s };
	const char *leader = clu_syncmarks_leader(s->env.marks);

	clu_syncmarks_set_listener(s->env.marks, &l);
	if (leader != NULL) {
		on_leader(s, leader);
	}
}
