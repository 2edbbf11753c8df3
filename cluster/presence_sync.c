/* SPDX-License-Identifier: Apache-2.0 */
/* Presence replication: the pending delta, full-state export and clocks
 * vector this node ships, and the merge of a peer's delta or state into the
 * observed-remove set (joins of unseen dots, leaves of covered but absent
 * ones, then the causal context). */
#include "cluster/presence.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/presence_int.h"
#include "common/err.h"

#define MAX_GAP (1u << 18) /* largest detached interval copied to a cloud */

/* ---- Deltas, full state and clocks ---- */

bool
clu_presence_has_delta(const clu_presence *p)
{
	return p->reps[0]->ctx > p->delta_start || p->nddots > 0;
}

static int
put_entry(clu_presence *p, pro_presence_msg *m, uint32_t ridx, const entry *e)
{
	topic *t = e->kg->t;
	int rc;
	if (t->exp_gen != p->gen) {
		if ((rc = pro_presence_msg_add_topic(
			 m, t->name, &t->exp_idx)) != PL_OK) {
			return rc;
		}
		t->exp_gen = p->gen;
	}
	pro_presence_entry pe = { .replica = ridx,
		.topic = t->exp_idx,
		.clock = e->clock,
		.owner = e->owner,
		.key = e->kg->key,
		.meta = e->meta,
		.meta_len = e->meta_len,
		.has_prev = (e->flags & F_PREV) != 0 };
	memcpy(pe.ref, e->ref, sizeof(pe.ref));
	memcpy(pe.prev_ref, e->prev, sizeof(pe.prev_ref));
	return pro_presence_msg_add_entry(m, &pe);
}

int
clu_presence_take_delta(clu_presence *p, pro_presence_msg **out)
{
	replica *self = p->reps[0];
	pro_presence_msg *m = NULL;
	uint32_t si = 0;
	int rc;
	*out = NULL;
	if (!clu_presence_has_delta(p)) {
		return PL_OK;
	}
	if ((rc = pro_presence_msg_create(&m, PRO_PRESENCE_DELTA)) != PL_OK) {
		return rc;
	}
	/* Our dots (delta_start, ctx] are all covered: live ones are sent as
	 * entries, the others were removed (or consumed by a leave). */
	rc = pro_presence_msg_add_replica(m, self->name, self->vsn,
	    p->delta_start, self->ctx, self->ddots.v, self->ddots.n, &si);
	m->sender = si;
	for (uint32_t s = 1; s < p->nreps && rc == PL_OK; s++) {
		replica *r = p->reps[s];
		if (r != NULL && r->ddots.n > 0) {
			rc = pro_presence_msg_add_replica(m, r->name, r->vsn, 0,
			    0, r->ddots.v, r->ddots.n, NULL);
		}
	}
	entry *first = NULL;
	for (entry *e = self->tail; e != NULL && e->clock > p->delta_start;
	     e = e->rprev) {
		first = e;
	}
	p->gen++;
	for (entry *e = first; e != NULL && rc == PL_OK; e = e->rnext) {
		rc = put_entry(p, m, si, e);
	}
	if (rc != PL_OK) {
		pro_presence_msg_destroy(m);
		return rc;
	}
	p->delta_start = self->ctx;
	for (uint32_t s = 0; s < p->nreps; s++) {
		if (p->reps[s] != NULL) {
			p->reps[s]->ddots.n = 0;
		}
	}
	p->nddots = 0;
	*out = m;
	return PL_OK;
}

int
clu_presence_export(
    clu_presence *p, const char *exclude, pro_presence_msg **out)
{
	pro_presence_msg *m = NULL;
	uint64_t *dots = NULL;
	int rc = pro_presence_msg_create(&m, PRO_PRESENCE_STATE);
	p->gen++;
	for (uint32_t s = 0; s < p->nreps && rc == PL_OK; s++) {
		replica *r = p->reps[s];
		uint32_t idx;
		size_t nd = 0;
		if (r == NULL ||
		    (s > 0 && exclude != NULL &&
			strcmp(r->name, exclude) == 0)) {
			continue;
		}
		if (r->cloud.n > 0) {
			if ((dots = malloc(r->cloud.n * sizeof(*dots))) ==
			    NULL) {
				rc = PL_ENOMEM;
				break;
			}
			for (size_t i = 0; i <= r->cloud.mask; i++) {
				if (r->cloud.s[i] > r->ctx) {
					dots[nd++] = r->cloud.s[i];
				}
			}
		}
		rc = pro_presence_msg_add_replica(
		    m, r->name, r->vsn, 0, r->ctx, dots, nd, &idx);
		free(dots);
		dots = NULL;
		for (entry *e = r->head; e != NULL && rc == PL_OK;
		     e = e->rnext) {
			rc = put_entry(p, m, idx, e);
		}
	}
	if (rc != PL_OK) {
		pro_presence_msg_destroy(m);
		return rc;
	}
	m->sender = 0; /* we are slot 0 and never excluded */
	*out = m;
	return PL_OK;
}

int
clu_presence_clocks(clu_presence *p, pro_presence_msg **out)
{
	pro_presence_msg *m = NULL;
	int rc = pro_presence_msg_create(&m, PRO_PRESENCE_CLOCKS);
	for (uint32_t s = 0; s < p->nreps && rc == PL_OK; s++) {
		replica *r = p->reps[s];
		if (r != NULL && r->up) {
			rc = pro_presence_msg_add_replica(
			    m, r->name, r->vsn, 0, r->ctx, NULL, 0, NULL);
		}
	}
	if (rc != PL_OK) {
		pro_presence_msg_destroy(m);
		return rc;
	}
	*out = m;
	return PL_OK;
}

/* Local slot of a message replica: same name and vsn, else NONE. */
static uint32_t
map_replica(const clu_presence *p, const pro_presence_replica *mr)
{
	uint32_t s = clu_pres_rep_find(p, mr->name);
	return s != NONE && p->reps[s]->vsn == mr->vsn ? s : NONE;
}

bool
clu_presence_behind(const clu_presence *p, const pro_presence_msg *clocks)
{
	for (size_t i = 0; i < clocks->nreplicas; i++) {
		const pro_presence_replica *mr = &clocks->replicas[i];
		uint32_t s = mr->name != NULL ? map_replica(p, mr) : NONE;
		if (s != NONE && s != 0 && p->reps[s]->up &&
		    mr->hi > p->reps[s]->ctx) {
			return true;
		}
	}
	return false;
}

/* ---- Merge ---- */

static entry *
tag_find(const clu_presence *p, uint32_t rep, uint64_t clock)
{
	hlink *l = p->tags.b[clu_pres_tag_hash(rep, clock) & p->tags.mask];
	for (; l != NULL; l = l->next) {
		entry *e = container_of(l, entry, tag_link);
		if (e->rep == rep && e->clock == clock) {
			return e;
		}
	}
	return NULL;
}

static bool
msg_valid(const pro_presence_msg *m)
{
	if ((m->kind != PRO_PRESENCE_DELTA && m->kind != PRO_PRESENCE_STATE) ||
	    (m->nreplicas > 0 && m->sender >= m->nreplicas)) {
		return false;
	}
	for (size_t i = 0; i < m->nreplicas; i++) {
		const pro_presence_replica *r = &m->replicas[i];
		if (r->name == NULL || r->lo > r->hi ||
		    (r->ndots > 0 && (r->dots == NULL || r->dots[0] == 0))) {
			return false;
		}
		for (size_t j = 1; j < r->ndots; j++) {
			if (r->dots[j] <= r->dots[j - 1]) {
				return false;
			}
		}
	}
	for (size_t i = 0; i < m->ntopics; i++) {
		if (m->topics[i] == NULL || m->topics[i][0] == '\0' ||
		    strlen(m->topics[i]) > PRO_PRESENCE_MAX_TOPIC) {
			return false;
		}
	}
	for (size_t i = 0; i < m->nentries; i++) {
		const pro_presence_entry *e = &m->entries[i];
		if (e->replica >= m->nreplicas || e->topic >= m->ntopics ||
		    e->clock == 0 || e->key == NULL || e->key[0] == '\0' ||
		    strlen(e->key) > PRO_PRESENCE_MAX_KEY ||
		    (e->meta == NULL && e->meta_len > 0) ||
		    e->meta_len > PRO_PRESENCE_MAX_META) {
			return false;
		}
	}
	return true;
}

static bool
msg_covers(const pro_presence_replica *mr, uint64_t c)
{
	if (c > mr->lo && c <= mr->hi) {
		return true;
	}
	size_t lo = 0, hi = mr->ndots;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (mr->dots[mid] == c) {
			return true;
		}
		if (mr->dots[mid] < c) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return false;
}

static bool
ctx_covers(const replica *r, uint64_t c)
{
	return c <= r->ctx || clu_ptab_set_has(&r->cloud, c);
}

/* Folds cloud dots contiguous with ctx into it and drops stale ones. */
static void
compact(replica *r, uint64_t old_ctx)
{
	while (r->cloud.n > 0 && clu_ptab_set_del(&r->cloud, r->ctx + 1)) {
		r->ctx++;
	}
	if (r->cloud.n > 0 && r->ctx > old_ctx) {
		(void)clu_ptab_set_rebuild(
		    &r->cloud, r->cloud.mask + 1, r->ctx);
	} else if (r->cloud.n == 0 && r->cloud.s != NULL) {
		(void)clu_ptab_set_rebuild(&r->cloud, 0, 0);
	}
}

/* A remote entry the message observed as removed: drop it and relay the
 * removal in our next delta (best effort: a full state repairs a lost
 * relay). */
static void
remove_remote(clu_presence *p, replica *r, entry *e)
{
	clu_pres_record(p, e, true);
	if (clu_ptab_vec_push(&r->ddots, e->clock) == PL_OK) {
		p->nddots++;
	}
	clu_pres_unlink_entry(p, e);
}

static void
try_remove(clu_presence *p, uint32_t s, uint64_t c)
{
	entry *e = tag_find(p, s, c);
	if (e != NULL && !(e->flags & F_SEEN)) {
		remove_remote(p, p->reps[s], e);
	}
}

/* Leaves: our entries of replica s that mr covers and the message does not
 * hold (not marked F_SEEN). Walks whichever side is smaller. */
static void
observe_removes(clu_presence *p, const pro_presence_replica *mr, uint32_t s)
{
	replica *r = p->reps[s];
	uint64_t span = mr->hi - mr->lo;
	if ((uint64_t)r->n <= span || r->n - span <= mr->ndots) {
		for (entry *e = r->head, *next; e != NULL; e = next) {
			next = e->rnext;
			if (!(e->flags & F_SEEN) && msg_covers(mr, e->clock)) {
				remove_remote(p, r, e);
			}
		}
		return;
	}
	for (uint64_t k = 0; k < span; k++) {
		try_remove(p, s, mr->lo + 1 + k);
	}
	for (size_t i = 0; i < mr->ndots; i++) {
		try_remove(p, s, mr->dots[i]);
	}
}

static void
merge_context(replica *r, const pro_presence_replica *mr)
{
	if (mr->lo <= r->ctx) {
		if (mr->hi > r->ctx) {
			r->ctx = mr->hi;
		}
	} else if (mr->hi - mr->lo <= MAX_GAP) {
		/* A detached interval (a delta after one we missed). Dots we fail
		 * to record are only re-sent later, never lost. */
		for (uint64_t c = mr->lo + 1; c <= mr->hi; c++) {
			(void)clu_ptab_set_add(&r->cloud, c);
		}
	}
	for (size_t i = 0; i < mr->ndots; i++) {
		if (mr->dots[i] > r->ctx) {
			(void)clu_ptab_set_add(&r->cloud, mr->dots[i]);
		}
	}
}

/* Joins an entry of the message that we have not observed. */
static int
merge_join(clu_presence *p, const pro_presence_msg *m,
    const pro_presence_entry *me, uint32_t s)
{
	keygrp *kg =
	    clu_ptab_key_get(&p->topics, m->topics[me->topic], me->key);
	entry *e;
	if (kg == NULL ||
	    (e = clu_pres_entry_new(p, kg, me->meta, me->meta_len)) == NULL) {
		return PL_ENOMEM;
	}
	e->owner = me->owner;
	e->clock = me->clock;
	e->rep = s;
	memcpy(e->ref, me->ref, sizeof(e->ref));
	if (me->has_prev) {
		memcpy(e->prev, me->prev_ref, sizeof(e->prev));
		e->flags |= F_PREV;
	}
	e->flags |= F_SEEN;
	clu_pres_link_entry(p, e);
	clu_pres_record(p, e, false);
	/* The entry's dot joins our context even if the message forgot it. */
	(void)clu_ptab_set_add(&p->reps[s]->cloud, me->clock);
	return PL_OK;
}

int
clu_presence_merge(clu_presence *p, const pro_presence_msg *m)
{
	uint32_t *map;
	uint64_t *old;
	size_t bound = m->nentries;
	int rc = PL_OK;
	if (p->busy || !msg_valid(m)) {
		return PL_EINVAL;
	}
	if (m->nreplicas == 0) {
		return PL_OK;
	}
	map = malloc(m->nreplicas * sizeof(*map));
	old = malloc(m->nreplicas * sizeof(*old));
	if (map == NULL || old == NULL) {
		rc = PL_ENOMEM;
		goto out;
	}
	/* Our own replica (slot 0) is never merged: only we change it. */
	for (size_t i = 0; i < m->nreplicas; i++) {
		map[i] = map_replica(p, &m->replicas[i]);
		if (map[i] == 0) {
			map[i] = NONE;
		}
		if (map[i] != NONE) {
			bound += p->reps[map[i]]->n;
			old[i] = p->reps[map[i]]->ctx;
		}
	}
	if ((rc = clu_pres_reserve(p, bound)) != PL_OK) {
		goto out;
	}
	for (size_t i = 0; i < m->nentries && rc == PL_OK; i++) {
		const pro_presence_entry *me = &m->entries[i];
		uint32_t s = map[me->replica];
		entry *e;
		if (s == NONE) {
			continue;
		}
		if ((e = tag_find(p, s, me->clock)) != NULL) {
			e->flags |= F_SEEN;
		} else if (!ctx_covers(p->reps[s], me->clock)) {
			rc = merge_join(p, m, me, s);
		}
	}
	/* Removals and the context are applied only once every join is in:
	 * a context covering a dot we failed to add would lose that entry. */
	for (size_t i = 0; i < m->nreplicas && rc == PL_OK; i++) {
		if (map[i] != NONE) {
			observe_removes(p, &m->replicas[i], map[i]);
			merge_context(p->reps[map[i]], &m->replicas[i]);
		}
	}
	for (size_t i = 0; i < m->nreplicas; i++) {
		if (map[i] != NONE) {
			compact(p->reps[map[i]], old[i]);
		}
	}
	for (size_t i = 0; i < m->nentries; i++) {
		uint32_t s = map[m->entries[i].replica];
		entry *e =
		    s != NONE ? tag_find(p, s, m->entries[i].clock) : NULL;
		if (e != NULL) {
			e->flags &= (uint8_t)~F_SEEN;
		}
	}
	clu_pres_flush(p);
out:
	free(map);
	free(old);
	return rc;
}
