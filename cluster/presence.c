/* SPDX-License-Identifier: Apache-2.0 */
/* Presence delta-CRDT (Phoenix.Tracker's add-wins OR-set with a dot
 * context): the state, replicas, local operations, diff reporting and
 * queries. A join or leave costs O(1) whatever the topic size; each replica
 * keeps its entries on a list (in clock order for our own, which makes the
 * pending delta a suffix of that list). Deltas, full state and merge are in
 * presence_sync.c. */
#include "cluster/presence.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/presence_int.h"
#include "common/clock.h"
#include "common/err.h"

/* ---- Indexes ---- */

static uint64_t
tag_hf(const hlink *l)
{
	const entry *e = container_of(l, entry, tag_link);
	return clu_pres_tag_hash(e->rep, e->clock);
}

static uint64_t
own_hf(const hlink *l)
{
	return clu_ptab_mix64(container_of(l, entry, own_link)->owner);
}

static entry *
local_find(const clu_presence *p, uint64_t owner, const char *topic_name,
    const char *key)
{
	hlink *l = p->owners.b[clu_ptab_mix64(owner) & p->owners.mask];
	for (; l != NULL; l = l->next) {
		entry *e = container_of(l, entry, own_link);
		if (e->owner == owner && strcmp(e->kg->key, key) == 0 &&
		    strcmp(e->kg->t->name, topic_name) == 0) {
			return e;
		}
	}
	return NULL;
}

/* ---- Entries ---- */

entry *
clu_pres_entry_new(
    clu_presence *p, keygrp *kg, const char *meta, size_t meta_len)
{
	entry *e = calloc(1, sizeof(*e) + meta_len + 1);
	if (e == NULL) {
		clu_ptab_key_release(&p->topics, kg);
		return NULL;
	}
	e->kg = kg;
	kg->refs++;
	e->meta_len = (uint32_t)meta_len;
	if (meta_len > 0) {
		memcpy(e->meta, meta, meta_len);
	}
	return e;
}

static void
entry_free(clu_presence *p, entry *e)
{
	keygrp *kg = e->kg;
	free(e);
	kg->refs--;
	clu_ptab_key_release(&p->topics, kg);
}

static void
vis(keygrp *kg, int d)
{
	if (d > 0) {
		kg->t->nkeys_vis += kg->nvis++ == 0;
		kg->t->nvis++;
	} else {
		kg->t->nkeys_vis -= --kg->nvis == 0;
		kg->t->nvis--;
	}
}

void
clu_pres_link_entry(clu_presence *p, entry *e)
{
	replica *r = p->reps[e->rep];
	clu_ptab_add(&p->tags, &e->tag_link,
	    clu_pres_tag_hash(e->rep, e->clock), tag_hf);
	if (e->rep == 0) {
		clu_ptab_add(
		    &p->owners, &e->own_link, clu_ptab_mix64(e->owner), own_hf);
	}
	e->rprev = r->tail;
	e->rnext = NULL;
	*(r->tail != NULL ? &r->tail->rnext : &r->head) = e;
	r->tail = e;
	r->n++;
	e->kg_next = e->kg->first;
	e->kg->first = e;
	if (r->up) {
		vis(e->kg, 1);
	}
	p->nentries++;
}

/* Unlinks e from every index; it is freed after the diffs are reported so
 * that views of leaves stay valid. */
void
clu_pres_unlink_entry(clu_presence *p, entry *e)
{
	replica *r = p->reps[e->rep];
	clu_ptab_del(
	    &p->tags, &e->tag_link, clu_pres_tag_hash(e->rep, e->clock));
	if (e->rep == 0) {
		clu_ptab_del(
		    &p->owners, &e->own_link, clu_ptab_mix64(e->owner));
	}
	*(e->rprev != NULL ? &e->rprev->rnext : &r->head) = e->rnext;
	*(e->rnext != NULL ? &e->rnext->rprev : &r->tail) = e->rprev;
	r->n--;
	entry **pp = &e->kg->first;
	while (*pp != e) {
		pp = &(*pp)->kg_next;
	}
	*pp = e->kg_next;
	if (r->up) {
		vis(e->kg, -1);
	}
	p->nentries--;
	e->kg_next = p->grave;
	p->grave = e;
}

/* ---- Diff reporting ---- */

static void
ref_encode(const uint8_t ref[PRO_PRESENCE_REF_BYTES], char *out)
{
	static const char a[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	for (int i = 0, o = 0; i < PRO_PRESENCE_REF_BYTES; i += 3, o += 4) {
		uint32_t v = (uint32_t)ref[i] << 16 |
		    (uint32_t)ref[i + 1] << 8 | ref[i + 2];
		out[o] = a[v >> 18];
		out[o + 1] = a[(v >> 12) & 63];
		out[o + 2] = a[(v >> 6) & 63];
		out[o + 3] = a[v & 63];
	}
	out[CLU_PRESENCE_REF_LEN] = '\0';
}

static void
fill_view(const entry *e, clu_presence_meta *v)
{
	v->topic = e->kg->t->name;
	v->key = e->kg->key;
	v->meta = e->meta;
	v->meta_len = e->meta_len;
	ref_encode(e->ref, v->phx_ref);
	if (e->flags & F_PREV) {
		ref_encode(e->prev, v->phx_ref_prev);
	} else {
		v->phx_ref_prev[0] = '\0';
	}
	v->owner = e->owner;
	v->joined_ns = 0;
	for (int i = 0; i < 8; i++) {
		v->joined_ns = v->joined_ns << 8 | e->ref[i];
	}
	v->local = e->rep == 0;
}

/* Makes room for n more changes so that no allocation can fail between a
 * state change and its report. */
int
clu_pres_reserve(clu_presence *p, size_t n)
{
	size_t need = p->nchg + n;
	if (need > p->capchg) {
		chg *c = realloc(p->chg, need * sizeof(*c));
		if (c == NULL) {
			return PL_ENOMEM;
		}
		p->chg = c;
		p->capchg = need;
	}
	if (need > p->capdview) {
		clu_presence_meta *v = realloc(p->dview, need * sizeof(*v));
		if (v == NULL) {
			return PL_ENOMEM;
		}
		p->dview = v;
		p->capdview = need;
	}
	return PL_OK;
}

void
clu_pres_record(clu_presence *p, entry *e, bool leave)
{
	if (p->reps[e->rep]->up) {
		p->chg[p->nchg++] = (chg){ .e = e, .leave = leave };
	}
}

static int
cmp_chg(const void *a, const void *b)
{
	const chg *x = a, *y = b;
	uintptr_t tx = (uintptr_t)x->e->kg->t, ty = (uintptr_t)y->e->kg->t;
	if (tx != ty) {
		return tx < ty ? -1 : 1;
	}
	if (x->leave != y->leave) {
		return x->leave ? 1 : -1;
	}
	return (x->e->clock > y->e->clock) - (x->e->clock < y->e->clock);
}

/* Reports the recorded changes, one callback per topic, then frees the
 * entries that left. */
void
clu_pres_flush(clu_presence *p)
{
	if (p->nchg > 0 && p->on_diff != NULL) {
		qsort(p->chg, p->nchg, sizeof(*p->chg), cmp_chg);
		p->busy = true;
		for (size_t i = 0, j; i < p->nchg; i = j) {
			topic *t = p->chg[i].e->kg->t;
			size_t nj = 0;
			for (j = i; j < p->nchg && p->chg[j].e->kg->t == t;
			     j++) {
				fill_view(p->chg[j].e, &p->dview[j]);
				nj += !p->chg[j].leave;
			}
			p->on_diff(p->arg, t->name, &p->dview[i], nj,
			    &p->dview[i + nj], j - i - nj);
		}
		p->busy = false;
	}
	p->nchg = 0;
	while (p->grave != NULL) {
		entry *e = p->grave;
		p->grave = e->kg_next;
		entry_free(p, e);
	}
}

/* ---- Lifecycle and replicas ---- */

static int
rep_add(clu_presence *p, const char *name, uint64_t vsn, uint32_t *slot)
{
	uint32_t s = 0;
	while (s < p->nreps && p->reps[s] != NULL) {
		s++;
	}
	if (s == p->nreps) {
		replica **r = realloc(p->reps, (p->nreps + 1) * sizeof(*r));
		if (r == NULL) {
			return PL_ENOMEM;
		}
		p->reps = r;
		p->reps[p->nreps++] = NULL;
	}
	replica *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->name = strdup(name)) == NULL) {
		free(r);
		return PL_ENOMEM;
	}
	r->vsn = vsn;
	r->up = true;
	p->reps[s] = r;
	if (slot != NULL) {
		*slot = s;
	}
	return PL_OK;
}

uint32_t
clu_pres_rep_find(const clu_presence *p, const char *name)
{
	for (uint32_t s = 0; s < p->nreps; s++) {
		if (p->reps[s] != NULL && strcmp(p->reps[s]->name, name) == 0) {
			return s;
		}
	}
	return NONE;
}

/* Purges a replica's entries, context and relays; reports nothing. */
static void
rep_purge(clu_presence *p, uint32_t s)
{
	replica *r = p->reps[s];
	while (r->head != NULL) {
		clu_pres_unlink_entry(p, r->head);
	}
	free(r->cloud.s);
	p->nddots -= r->ddots.n;
	free(r->ddots.v);
	free(r->name);
	free(r);
	p->reps[s] = NULL;
}

/* Hides or shows a replica's entries, reporting them as leaves or joins.
 * The caller has reserved r->n changes. */
static void
rep_set_up(clu_presence *p, replica *r, bool up)
{
	if (r->up == up) {
		return;
	}
	if (!up) {
		for (entry *e = r->head; e != NULL; e = e->rnext) {
			clu_pres_record(p, e, true);
			vis(e->kg, -1);
		}
		r->up = false;
		return;
	}
	r->up = true;
	for (entry *e = r->head; e != NULL; e = e->rnext) {
		vis(e->kg, 1);
		clu_pres_record(p, e, false);
	}
}

int
clu_presence_create(clu_presence **out, const char *node, uint64_t vsn,
    clu_presence_diff_fn on_diff, void *arg)
{
	size_t len = node != NULL ? strlen(node) : 0;
	clu_presence *p;

	*out = NULL;
	if (len == 0 || len > PRO_PRESENCE_MAX_NAME) {
		return PL_EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return PL_ENOMEM;
	}
	if (clu_ptab_init(&p->tags, 1024) != PL_OK ||
	    clu_ptab_init(&p->owners, 256) != PL_OK ||
	    clu_ptab_init(&p->topics, 64) != PL_OK ||
	    rep_add(p, node, vsn, NULL) != PL_OK) {
		clu_presence_destroy(p);
		return PL_ENOMEM;
	}
	p->node_hash = (uint16_t)clu_ptab_mix64(clu_ptab_hash_str(node) ^ vsn);
	p->on_diff = on_diff;
	p->arg = arg;
	*out = p;
	return PL_OK;
}

void
clu_presence_destroy(clu_presence *p)
{
	if (p == NULL) {
		return;
	}
	p->on_diff = NULL;
	for (uint32_t s = 0; s < p->nreps; s++) {
		if (p->reps[s] != NULL) {
			rep_purge(p, s);
		}
	}
	clu_pres_flush(p);
	free(p->reps);
	free(p->tags.b);
	free(p->owners.b);
	free(p->topics.b);
	free(p->chg);
	free(p->dview);
	free(p->qview);
	free(p);
}

int
clu_presence_replica_up(clu_presence *p, const char *name, uint64_t vsn)
{
	if (p->busy || name == NULL || name[0] == '\0' ||
	    strlen(name) > PRO_PRESENCE_MAX_NAME) {
		return PL_EINVAL;
	}
	uint32_t s = clu_pres_rep_find(p, name);
	if (s == 0) {
		return vsn == p->reps[0]->vsn ? PL_OK : PL_EINVAL;
	}
	if (s != NONE) {
		replica *r = p->reps[s];
		if (clu_pres_reserve(p, r->n) != PL_OK) {
			return PL_ENOMEM;
		}
		if (r->vsn == vsn) {
			rep_set_up(p, r, true);
			clu_pres_flush(p);
			return PL_OK;
		}
		/* A restarted node: its old incarnation is gone for good. */
		rep_set_up(p, r, false);
		rep_purge(p, s);
		clu_pres_flush(p);
	}
	return rep_add(p, name, vsn, NULL);
}

static int
down_or_permdown(clu_presence *p, const char *name, bool perm)
{
	if (p->busy || name == NULL) {
		return PL_EINVAL;
	}
	uint32_t s = clu_pres_rep_find(p, name);
	if (s == NONE) {
		return PL_ENOTFOUND;
	}
	if (s == 0) {
		return PL_EINVAL;
	}
	if (clu_pres_reserve(p, p->reps[s]->n) != PL_OK) {
		return PL_ENOMEM;
	}
	rep_set_up(p, p->reps[s], false);
	if (perm) {
		rep_purge(p, s);
	}
	clu_pres_flush(p);
	return PL_OK;
}

int
clu_presence_replica_down(clu_presence *p, const char *name)
{
	return down_or_permdown(p, name, false);
}

int
clu_presence_replica_permdown(clu_presence *p, const char *name)
{
	return down_or_permdown(p, name, true);
}

/* ---- Local operations ---- */

static int
check_args(const clu_presence *p, const char *topic_name, const char *key,
    const char *meta, size_t meta_len)
{
	size_t tl = topic_name != NULL ? strlen(topic_name) : 0;
	size_t kl = key != NULL ? strlen(key) : 0;
	if (p->busy || tl == 0 || tl > PRO_PRESENCE_MAX_TOPIC || kl == 0 ||
	    kl > PRO_PRESENCE_MAX_KEY || (meta == NULL && meta_len > 0)) {
		return PL_EINVAL;
	}
	return meta_len > PRO_PRESENCE_MAX_META ? PL_ETOOBIG : PL_OK;
}

/* phx_ref as Phoenix builds it: 8 bytes of ns time, 2 of node hash, 2 of a
 * counter. The time is kept strictly increasing, so refs are unique. */
static void
make_ref(clu_presence *p, uint8_t ref[PRO_PRESENCE_REF_BYTES])
{
	uint64_t ns = pl_wall_ns();
	if (ns <= p->last_ns) {
		ns = p->last_ns + 1;
	}
	p->last_ns = ns;
	for (int i = 0; i < 8; i++) {
		ref[i] = (uint8_t)(ns >> (56 - 8 * i));
	}
	ref[8] = (uint8_t)(p->node_hash >> 8);
	ref[9] = (uint8_t)p->node_hash;
	ref[10] = (uint8_t)(p->uniq >> 8);
	ref[11] = (uint8_t)p->uniq;
	p->uniq++;
}

/* Adds a new local entry with the next clock. */
static void
add_own(clu_presence *p, entry *e, uint64_t owner)
{
	e->owner = owner;
	e->rep = 0;
	e->clock = ++p->reps[0]->ctx;
	clu_pres_link_entry(p, e);
	clu_pres_record(p, e, false);
}

/* Removes a local entry. Its dot goes to the delta unless the delta's
 * interval already covers it; the leave takes a clock of its own so that
 * peers that miss this delta see from our clocks that they are behind. */
static int
remove_own(clu_presence *p, entry *e)
{
	replica *self = p->reps[0];
	if (e->clock <= p->delta_start) {
		if (clu_ptab_vec_push(&self->ddots, e->clock) != PL_OK) {
			return PL_ENOMEM;
		}
		p->nddots++;
	}
	clu_pres_record(p, e, true);
	clu_pres_unlink_entry(p, e);
	self->ctx++;
	return PL_OK;
}

int
clu_presence_join(clu_presence *p, uint64_t owner, const char *topic_name,
    const char *key, const char *meta, size_t meta_len,
    char ref_out[CLU_PRESENCE_REF_LEN + 1])
{
	int rc = check_args(p, topic_name, key, meta, meta_len);
	if (rc != PL_OK) {
		return rc;
	}
	if (local_find(p, owner, topic_name, key) != NULL) {
		return PL_EEXIST;
	}
	keygrp *kg;
	entry *e;
	if (clu_pres_reserve(p, 1) != PL_OK ||
	    (kg = clu_ptab_key_get(&p->topics, topic_name, key)) == NULL ||
	    (e = clu_pres_entry_new(p, kg, meta, meta_len)) == NULL) {
		return PL_ENOMEM;
	}
	make_ref(p, e->ref);
	add_own(p, e, owner);
	if (ref_out != NULL) {
		ref_encode(e->ref, ref_out);
	}
	clu_pres_flush(p);
	return PL_OK;
}

int
clu_presence_update(clu_presence *p, uint64_t owner, const char *topic_name,
    const char *key, const char *meta, size_t meta_len,
    char ref_out[CLU_PRESENCE_REF_LEN + 1])
{
	int rc = check_args(p, topic_name, key, meta, meta_len);
	if (rc != PL_OK) {
		return rc;
	}
	entry *old = local_find(p, owner, topic_name, key), *e;
	if (old == NULL) {
		return PL_ENOTFOUND;
	}
	if (clu_pres_reserve(p, 2) != PL_OK ||
	    (e = clu_pres_entry_new(p, old->kg, meta, meta_len)) == NULL) {
		return PL_ENOMEM;
	}
	make_ref(p, e->ref);
	memcpy(e->prev, old->ref, sizeof(e->prev));
	e->flags = F_PREV;
	if ((rc = remove_own(p, old)) != PL_OK) {
		entry_free(p, e);
		return rc;
	}
	add_own(p, e, owner);
	if (ref_out != NULL) {
		ref_encode(e->ref, ref_out);
	}
	clu_pres_flush(p);
	return PL_OK;
}

int
clu_presence_leave(
    clu_presence *p, uint64_t owner, const char *topic_name, const char *key)
{
	if (p->busy || topic_name == NULL || key == NULL) {
		return PL_EINVAL;
	}
	entry *e = local_find(p, owner, topic_name, key);
	if (e == NULL) {
		return PL_ENOTFOUND;
	}
	int rc = clu_pres_reserve(p, 1);
	if (rc == PL_OK) {
		rc = remove_own(p, e);
	}
	clu_pres_flush(p);
	return rc;
}

static entry *
owner_first(const clu_presence *p, uint64_t owner)
{
	hlink *l = p->owners.b[clu_ptab_mix64(owner) & p->owners.mask];
	for (; l != NULL; l = l->next) {
		entry *e = container_of(l, entry, own_link);
		if (e->owner == owner) {
			return e;
		}
	}
	return NULL;
}

int
clu_presence_leave_owner(clu_presence *p, uint64_t owner, size_t *n)
{
	size_t count = 0;
	int rc = PL_OK;
	entry *e;
	if (p->busy) {
		return PL_EINVAL;
	}
	while ((e = owner_first(p, owner)) != NULL) {
		if ((rc = clu_pres_reserve(p, 1)) != PL_OK ||
		    (rc = remove_own(p, e)) != PL_OK) {
			break;
		}
		count++;
	}
	clu_pres_flush(p);
	if (n != NULL) {
		*n = count;
	}
	return rc;
}

/* ---- Queries ---- */

static int
qreserve(clu_presence *p, size_t n)
{
	if (n > p->capqview) {
		clu_presence_meta *v = realloc(p->qview, n * sizeof(*v));
		if (v == NULL) {
			return PL_ENOMEM;
		}
		p->qview = v;
		p->capqview = n;
	}
	return PL_OK;
}

static size_t
key_views(clu_presence *p, const keygrp *kg)
{
	size_t n = 0;
	for (const entry *e = kg->first; e != NULL; e = e->kg_next) {
		if (p->reps[e->rep]->up) {
			fill_view(e, &p->qview[n++]);
		}
	}
	return n;
}

int
clu_presence_list(
    clu_presence *p, const char *topic_name, clu_presence_key_fn fn, void *arg)
{
	if (p->qbusy || topic_name == NULL) {
		return PL_EINVAL;
	}
	topic *t = clu_ptab_topic_find(&p->topics, topic_name);
	for (size_t i = 0; t != NULL && i <= t->keys.mask; i++) {
		for (hlink *l = t->keys.b[i]; l != NULL; l = l->next) {
			keygrp *kg = container_of(l, keygrp, link);
			if (kg->nvis == 0) {
				continue;
			}
			if (qreserve(p, kg->nvis) != PL_OK) {
				return PL_ENOMEM;
			}
			size_t n = key_views(p, kg);
			p->qbusy = true;
			fn(arg, t->name, kg->key, p->qview, n);
			p->qbusy = false;
		}
	}
	return PL_OK;
}

static int
cmp_join(const void *a, const void *b)
{
	const clu_presence_meta *x = a, *y = b;
	if (x->joined_ns != y->joined_ns) {
		return x->joined_ns < y->joined_ns ? -1 : 1;
	}
	return strcmp(x->phx_ref, y->phx_ref);
}

static const keygrp *
kg_lookup(const clu_presence *p, const char *topic_name, const char *key)
{
	const topic *t = topic_name != NULL && key != NULL
	    ? clu_ptab_topic_find(&p->topics, topic_name)
	    : NULL;
	return t != NULL ? clu_ptab_key_find(t, key) : NULL;
}

int
clu_presence_get(clu_presence *p, const char *topic_name, const char *key,
    clu_presence_key_fn fn, void *arg)
{
	if (p->qbusy) {
		return PL_EINVAL;
	}
	const keygrp *kg = kg_lookup(p, topic_name, key);
	if (kg == NULL || kg->nvis == 0) {
		return PL_ENOTFOUND;
	}
	if (qreserve(p, kg->nvis) != PL_OK) {
		return PL_ENOMEM;
	}
	size_t n = key_views(p, kg);
	qsort(p->qview, n, sizeof(*p->qview), cmp_join);
	p->qbusy = true;
	fn(arg, kg->t->name, kg->key, p->qview, n);
	p->qbusy = false;
	return PL_OK;
}

size_t
clu_presence_key_count(const clu_presence *p, const char *topic_name)
{
	const topic *t = topic_name != NULL
	    ? clu_ptab_topic_find(&p->topics, topic_name)
	    : NULL;
	return t != NULL ? t->nkeys_vis : 0;
}

size_t
clu_presence_count(
    const clu_presence *p, const char *topic_name, const char *key)
{
	const keygrp *kg = kg_lookup(p, topic_name, key);
	return kg != NULL ? kg->nvis : 0;
}

size_t
clu_presence_owner_list(
    clu_presence *p, uint64_t owner, clu_presence_key_fn fn, void *arg)
{
	size_t n = 0;
	hlink *l = p->owners.b[clu_ptab_mix64(owner) & p->owners.mask];
	for (; l != NULL; l = l->next) {
		entry *e = container_of(l, entry, own_link);
		clu_presence_meta v;
		if (e->owner == owner) {
			fill_view(e, &v);
			fn(arg, v.topic, v.key, &v, 1);
			n++;
		}
	}
	return n;
}

size_t
clu_presence_size(const clu_presence *p)
{
	return p->nentries;
}
