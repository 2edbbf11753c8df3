/* SPDX-License-Identifier: Apache-2.0 */
/* Presence delta-CRDT (Phoenix.Tracker's add-wins OR-set with a dot
 * context). Entries are indexed by tag, by owner handle (local ones) and by
 * interned topic -> key group, so a join or leave costs O(1) whatever the
 * topic size; each replica keeps its entries on a list (in clock order for
 * our own, which makes the pending delta a suffix of that list). */
#include "cluster/presence.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p) - offsetof(T, m)))

#define NONE UINT32_MAX
#define F_SEEN 1u      /* merge scratch: the message holds this entry */
#define F_PREV 2u      /* entry has a phx_ref_prev */
#define MAX_GAP (1u << 18) /* largest detached interval copied to a cloud */

/* ---- Hashing ---- */

typedef struct hlink {
	struct hlink *next;
} hlink;

/* Chained hash with power-of-two buckets; nodes are embedded (hlink). A
 * failed grow only lengthens chains, so insertion never fails. */
typedef struct htab {
	hlink **b;
	size_t mask, n;
} htab;

typedef uint64_t (*hash_fn)(const hlink *);

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t
hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	while (*s != '\0') {
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ULL;
	}
	return mix64(h);
}

static int
ht_init(htab *t, size_t cap)
{
	t->b = calloc(cap, sizeof(*t->b));
	t->mask = cap - 1;
	t->n = 0;
	return t->b != NULL ? PL_OK : PL_ENOMEM;
}

static void
ht_add(htab *t, hlink *l, uint64_t h, hash_fn hf)
{
	if (t->n > t->mask) {
		size_t ncap = (t->mask + 1) * 2;
		hlink **nb = calloc(ncap, sizeof(*nb));
		if (nb != NULL) {
			for (size_t i = 0; i <= t->mask; i++) {
				while (t->b[i] != NULL) {
					hlink *x = t->b[i];
					t->b[i] = x->next;
					x->next = nb[hf(x) & (ncap - 1)];
					nb[hf(x) & (ncap - 1)] = x;
				}
			}
			free(t->b);
			t->b = nb;
			t->mask = ncap - 1;
		}
	}
	l->next = t->b[h & t->mask];
	t->b[h & t->mask] = l;
	t->n++;
}

static void
ht_del(htab *t, hlink *l, uint64_t h)
{
	hlink **pp = &t->b[h & t->mask];
	while (*pp != l) {
		pp = &(*pp)->next;
	}
	*pp = l->next;
	t->n--;
}

/* Open-addressing set of clocks (0 = empty slot), for clouds. */
typedef struct u64set {
	uint64_t *s;
	size_t mask, n;
} u64set;

static bool
set_has(const u64set *t, uint64_t v)
{
	if (t->n == 0) {
		return false;
	}
	for (size_t i = mix64(v) & t->mask;; i = (i + 1) & t->mask) {
		if (t->s[i] == v) {
			return true;
		}
		if (t->s[i] == 0) {
			return false;
		}
	}
}

static void
set_put(uint64_t *s, size_t mask, uint64_t v)
{
	size_t i = mix64(v) & mask;
	while (s[i] != 0 && s[i] != v) {
		i = (i + 1) & mask;
	}
	s[i] = v;
}

/* Rebuilds the table with cap slots keeping only values above floor. */
static int
set_rebuild(u64set *t, size_t cap, uint64_t floor)
{
	uint64_t *ns = NULL;
	size_t n = 0;
	if (cap > 0 && (ns = calloc(cap, sizeof(*ns))) == NULL) {
		return PL_ENOMEM;
	}
	for (size_t i = 0; t->s != NULL && i <= t->mask; i++) {
		if (t->s[i] > floor && ns != NULL) {
			set_put(ns, cap - 1, t->s[i]);
			n++;
		}
	}
	free(t->s);
	t->s = ns;
	t->mask = cap > 0 ? cap - 1 : 0;
	t->n = n;
	return PL_OK;
}

static int
set_add(u64set *t, uint64_t v)
{
	if (set_has(t, v)) {
		return PL_OK;
	}
	if (t->s == NULL || (t->n + 1) * 2 > t->mask + 1) {
		size_t cap = t->s == NULL ? 16 : (t->mask + 1) * 2;
		if (set_rebuild(t, cap, 0) != PL_OK) {
			return PL_ENOMEM;
		}
	}
	set_put(t->s, t->mask, v);
	t->n++;
	return PL_OK;
}

/* Removes v with backward-shift deletion (no tombstones). */
static bool
set_del(u64set *t, uint64_t v)
{
	size_t i, j;
	if (t->n == 0) {
		return false;
	}
	for (i = mix64(v) & t->mask; t->s[i] != v; i = (i + 1) & t->mask) {
		if (t->s[i] == 0) {
			return false;
		}
	}
	for (j = (i + 1) & t->mask; t->s[j] != 0; j = (j + 1) & t->mask) {
		size_t k = mix64(t->s[j]) & t->mask;
		/* Move s[j] back unless its home k lies cyclically in (i, j]. */
		if ((j > i && (k <= i || k > j)) || (j < i && k <= i && k > j)) {
			t->s[i] = t->s[j];
			i = j;
		}
	}
	t->s[i] = 0;
	t->n--;
	return true;
}

typedef struct u64vec {
	uint64_t *v;
	size_t n, cap;
} u64vec;

static int
vec_push(u64vec *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap != 0 ? a->cap * 2 : 8;
		uint64_t *v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL) {
			return PL_ENOMEM;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return PL_OK;
}

/* ---- Data ---- */

typedef struct topic {
	hlink link;        /* in clu_presence.topics */
	htab keys;         /* keygrp by key */
	size_t nvis;       /* visible entries */
	size_t nkeys_vis;  /* keys with a visible entry */
	uint32_t exp_gen, exp_idx; /* topic index in the message being built */
	char name[];
} topic;

typedef struct entry entry;

typedef struct keygrp {
	hlink link;        /* in topic.keys */
	topic *t;
	entry *first;      /* linked entries of this key, newest first */
	uint32_t refs;     /* entries pointing here, incl. ones pending free */
	uint32_t nvis;
	char key[];
} keygrp;

struct entry {
	hlink tag_link;    /* in clu_presence.tags */
	hlink own_link;    /* in clu_presence.owners (local entries only) */
	entry *kg_next;    /* next meta of the key; graveyard link once dead */
	entry *rprev, *rnext; /* replica's entries */
	keygrp *kg;
	uint64_t owner, clock;
	uint32_t rep, meta_len;
	uint8_t ref[PRO_PRESENCE_REF_BYTES], prev[PRO_PRESENCE_REF_BYTES];
	uint8_t flags;
	char meta[];
};

typedef struct replica {
	char *name;
	uint64_t vsn;
	bool up;
	uint64_t ctx;      /* every clock <= ctx has been observed */
	u64set cloud;      /* observed clocks above ctx */
	entry *head, *tail;
	size_t n;
	u64vec ddots;      /* removals to relay in the next delta */
} replica;

typedef struct chg {
	entry *e;
	bool leave;
} chg;

struct clu_presence {
	replica **reps;    /* slot 0 is this node; freed slots are NULL */
	uint32_t nreps;
	htab tags, owners, topics;
	size_t nentries, nddots;
	uint64_t delta_start; /* our clock when the delta was last taken */
	uint64_t last_ns;
	uint16_t node_hash, uniq;
	clu_presence_diff_fn on_diff;
	void *arg;
	chg *chg;          /* changes to report at the end of this call */
	size_t nchg, capchg;
	clu_presence_meta *dview, *qview; /* diff and query scratch */
	size_t capdview, capqview;
	entry *grave;      /* unlinked entries freed after the diffs */
	uint32_t gen;
	bool busy, qbusy;  /* inside a diff / query callback */
};

static uint64_t
tag_hash(uint32_t rep, uint64_t clock)
{
	return mix64(clock + (uint64_t)rep * 0x9e3779b97f4a7c15ULL);
}

static uint64_t
tag_hf(const hlink *l)
{
	const entry *e = container_of(l, entry, tag_link);
	return tag_hash(e->rep, e->clock);
}

static uint64_t
own_hf(const hlink *l)
{
	return mix64(container_of(l, entry, own_link)->owner);
}

static uint64_t
topic_hf(const hlink *l)
{
	return hash_str(container_of(l, topic, link)->name);
}

static uint64_t
kg_hf(const hlink *l)
{
	return hash_str(container_of(l, keygrp, link)->key);
}

static topic *
topic_find(const clu_presence *p, const char *name)
{
	hlink *l = p->topics.b[hash_str(name) & p->topics.mask];
	for (; l != NULL; l = l->next) {
		topic *t = container_of(l, topic, link);
		if (strcmp(t->name, name) == 0) {
			return t;
		}
	}
	return NULL;
}

static keygrp *
kg_find(const topic *t, const char *key)
{
	hlink *l = t->keys.b[hash_str(key) & t->keys.mask];
	for (; l != NULL; l = l->next) {
		keygrp *kg = container_of(l, keygrp, link);
		if (strcmp(kg->key, key) == 0) {
			return kg;
		}
	}
	return NULL;
}

static entry *
tag_find(const clu_presence *p, uint32_t rep, uint64_t clock)
{
	hlink *l = p->tags.b[tag_hash(rep, clock) & p->tags.mask];
	for (; l != NULL; l = l->next) {
		entry *e = container_of(l, entry, tag_link);
		if (e->rep == rep && e->clock == clock) {
			return e;
		}
	}
	return NULL;
}

static entry *
local_find(const clu_presence *p, uint64_t owner, const char *topic_name,
    const char *key)
{
	hlink *l = p->owners.b[mix64(owner) & p->owners.mask];
	for (; l != NULL; l = l->next) {
		entry *e = container_of(l, entry, own_link);
		if (e->owner == owner && strcmp(e->kg->key, key) == 0 &&
		    strcmp(e->kg->t->name, topic_name) == 0) {
			return e;
		}
	}
	return NULL;
}

/* Frees a key group nobody points to, and its topic once keyless. */
static void
kg_maybe_free(clu_presence *p, keygrp *kg)
{
	if (kg->refs > 0) {
		return;
	}
	topic *t = kg->t;
	ht_del(&t->keys, &kg->link, hash_str(kg->key));
	free(kg);
	if (t->keys.n == 0) {
		ht_del(&p->topics, &t->link, hash_str(t->name));
		free(t->keys.b);
		free(t);
	}
}

/* Finds or creates the key group of (topic, key); topics are interned. */
static keygrp *
kg_get(clu_presence *p, const char *topic_name, const char *key)
{
	topic *t = topic_find(p, topic_name);
	keygrp *kg;
	if (t == NULL) {
		size_t len = strlen(topic_name);
		if ((t = calloc(1, sizeof(*t) + len + 1)) == NULL) {
			return NULL;
		}
		/* Most topics hold one key (presence:<user_id>); start small. */
		if (ht_init(&t->keys, 2) != PL_OK) {
			free(t);
			return NULL;
		}
		memcpy(t->name, topic_name, len + 1);
		ht_add(&p->topics, &t->link, hash_str(t->name), topic_hf);
	} else if ((kg = kg_find(t, key)) != NULL) {
		return kg;
	}
	size_t klen = strlen(key);
	if ((kg = calloc(1, sizeof(*kg) + klen + 1)) == NULL) {
		if (t->keys.n == 0) {
			ht_del(&p->topics, &t->link, hash_str(t->name));
			free(t->keys.b);
			free(t);
		}
		return NULL;
	}
	kg->t = t;
	memcpy(kg->key, key, klen + 1);
	ht_add(&t->keys, &kg->link, hash_str(kg->key), kg_hf);
	return kg;
}

static entry *
entry_new(clu_presence *p, keygrp *kg, const char *meta, size_t meta_len)
{
	entry *e = calloc(1, sizeof(*e) + meta_len + 1);
	if (e == NULL) {
		kg_maybe_free(p, kg);
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
	kg_maybe_free(p, kg);
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

static void
link_entry(clu_presence *p, entry *e)
{
	replica *r = p->reps[e->rep];
	ht_add(&p->tags, &e->tag_link, tag_hash(e->rep, e->clock), tag_hf);
	if (e->rep == 0) {
		ht_add(&p->owners, &e->own_link, mix64(e->owner), own_hf);
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
static void
unlink_entry(clu_presence *p, entry *e)
{
	replica *r = p->reps[e->rep];
	ht_del(&p->tags, &e->tag_link, tag_hash(e->rep, e->clock));
	if (e->rep == 0) {
		ht_del(&p->owners, &e->own_link, mix64(e->owner));
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
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_";
	for (int i = 0, o = 0; i < PRO_PRESENCE_REF_BYTES; i += 3, o += 4) {
		uint32_t v = (uint32_t)ref[i] << 16 | (uint32_t)ref[i + 1] << 8 |
		    ref[i + 2];
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
static int
reserve(clu_presence *p, size_t n)
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

static void
record(clu_presence *p, entry *e, bool leave)
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
static void
flush(clu_presence *p)
{
	if (p->nchg > 0 && p->on_diff != NULL) {
		qsort(p->chg, p->nchg, sizeof(*p->chg), cmp_chg);
		p->busy = true;
		for (size_t i = 0, j; i < p->nchg; i = j) {
			topic *t = p->chg[i].e->kg->t;
			size_t nj = 0;
			for (j = i; j < p->nchg && p->chg[j].e->kg->t == t; j++) {
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

static uint32_t
rep_find(const clu_presence *p, const char *name)
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
		unlink_entry(p, r->head);
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
			record(p, e, true);
			vis(e->kg, -1);
		}
		r->up = false;
		return;
	}
	r->up = true;
	for (entry *e = r->head; e != NULL; e = e->rnext) {
		vis(e->kg, 1);
		record(p, e, false);
	}
}

int
clu_presence_create(clu_presence **out, const char *node, uint64_t vsn,
    clu_presence_diff_fn on_diff, void *arg)
{
	size_t len = node != NULL ? strlen(node) : 0;
	if (len == 0 || len > PRO_PRESENCE_MAX_NAME) {
		return PL_EINVAL;
	}
	clu_presence *p = calloc(1, sizeof(*p));
	if (p == NULL) {
		return PL_ENOMEM;
	}
	if (ht_init(&p->tags, 1024) != PL_OK ||
	    ht_init(&p->owners, 256) != PL_OK ||
	    ht_init(&p->topics, 64) != PL_OK ||
	    rep_add(p, node, vsn, NULL) != PL_OK) {
		clu_presence_destroy(p);
		return PL_ENOMEM;
	}
	p->node_hash = (uint16_t)mix64(hash_str(node) ^ vsn);
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
	flush(p);
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
	uint32_t s = rep_find(p, name);
	if (s == 0) {
		return vsn == p->reps[0]->vsn ? PL_OK : PL_EINVAL;
	}
	if (s != NONE) {
		replica *r = p->reps[s];
		if (reserve(p, r->n) != PL_OK) {
			return PL_ENOMEM;
		}
		if (r->vsn == vsn) {
			rep_set_up(p, r, true);
			flush(p);
			return PL_OK;
		}
		/* A restarted node: its old incarnation is gone for good. */
		rep_set_up(p, r, false);
		rep_purge(p, s);
		flush(p);
	}
	return rep_add(p, name, vsn, NULL);
}

static int
down_or_permdown(clu_presence *p, const char *name, bool perm)
{
	if (p->busy || name == NULL) {
		return PL_EINVAL;
	}
	uint32_t s = rep_find(p, name);
	if (s == NONE) {
		return PL_ENOTFOUND;
	}
	if (s == 0) {
		return PL_EINVAL;
	}
	if (reserve(p, p->reps[s]->n) != PL_OK) {
		return PL_ENOMEM;
	}
	rep_set_up(p, p->reps[s], false);
	if (perm) {
		rep_purge(p, s);
	}
	flush(p);
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
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
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
	link_entry(p, e);
	record(p, e, false);
}

/* Removes a local entry. Its dot goes to the delta unless the delta's
 * interval already covers it; the leave takes a clock of its own so that
 * peers that miss this delta see from our clocks that they are behind. */
static int
remove_own(clu_presence *p, entry *e)
{
	replica *self = p->reps[0];
	if (e->clock <= p->delta_start) {
		if (vec_push(&self->ddots, e->clock) != PL_OK) {
			return PL_ENOMEM;
		}
		p->nddots++;
	}
	record(p, e, true);
	unlink_entry(p, e);
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
	if (reserve(p, 1) != PL_OK ||
	    (kg = kg_get(p, topic_name, key)) == NULL ||
	    (e = entry_new(p, kg, meta, meta_len)) == NULL) {
		return PL_ENOMEM;
	}
	make_ref(p, e->ref);
	add_own(p, e, owner);
	if (ref_out != NULL) {
		ref_encode(e->ref, ref_out);
	}
	flush(p);
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
	if (reserve(p, 2) != PL_OK ||
	    (e = entry_new(p, old->kg, meta, meta_len)) == NULL) {
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
	flush(p);
	return PL_OK;
}

int
clu_presence_leave(clu_presence *p, uint64_t owner, const char *topic_name,
    const char *key)
{
	if (p->busy || topic_name == NULL || key == NULL) {
		return PL_EINVAL;
	}
	entry *e = local_find(p, owner, topic_name, key);
	if (e == NULL) {
		return PL_ENOTFOUND;
	}
	int rc = reserve(p, 1);
	if (rc == PL_OK) {
		rc = remove_own(p, e);
	}
	flush(p);
	return rc;
}

static entry *
owner_first(const clu_presence *p, uint64_t owner)
{
	hlink *l = p->owners.b[mix64(owner) & p->owners.mask];
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
		if ((rc = reserve(p, 1)) != PL_OK ||
		    (rc = remove_own(p, e)) != PL_OK) {
			break;
		}
		count++;
	}
	flush(p);
	if (n != NULL) {
		*n = count;
	}
	return rc;
}

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
		if ((rc = pro_presence_msg_add_topic(m, t->name, &t->exp_idx)) !=
		    PL_OK) {
			return rc;
		}
		t->exp_gen = p->gen;
	}
	pro_presence_entry pe = { .replica = ridx, .topic = t->exp_idx,
	    .clock = e->clock, .owner = e->owner, .key = e->kg->key,
	    .meta = e->meta, .meta_len = e->meta_len,
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
			rc = pro_presence_msg_add_replica(m, r->name, r->vsn, 0, 0,
			    r->ddots.v, r->ddots.n, NULL);
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
clu_presence_export(clu_presence *p, const char *exclude,
    pro_presence_msg **out)
{
	pro_presence_msg *m = NULL;
	uint64_t *dots = NULL;
	int rc = pro_presence_msg_create(&m, PRO_PRESENCE_STATE);
	p->gen++;
	for (uint32_t s = 0; s < p->nreps && rc == PL_OK; s++) {
		replica *r = p->reps[s];
		uint32_t idx;
		size_t nd = 0;
		if (r == NULL || (s > 0 && exclude != NULL &&
		    strcmp(r->name, exclude) == 0)) {
			continue;
		}
		if (r->cloud.n > 0) {
			if ((dots = malloc(r->cloud.n * sizeof(*dots))) == NULL) {
				rc = PL_ENOMEM;
				break;
			}
			for (size_t i = 0; i <= r->cloud.mask; i++) {
				if (r->cloud.s[i] > r->ctx) {
					dots[nd++] = r->cloud.s[i];
				}
			}
		}
		rc = pro_presence_msg_add_replica(m, r->name, r->vsn, 0, r->ctx,
		    dots, nd, &idx);
		free(dots);
		dots = NULL;
		for (entry *e = r->head; e != NULL && rc == PL_OK; e = e->rnext) {
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
			rc = pro_presence_msg_add_replica(m, r->name, r->vsn, 0,
			    r->ctx, NULL, 0, NULL);
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
	uint32_t s = rep_find(p, mr->name);
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
	return c <= r->ctx || set_has(&r->cloud, c);
}

/* Folds cloud dots contiguous with ctx into it and drops stale ones. */
static void
compact(replica *r, uint64_t old_ctx)
{
	while (r->cloud.n > 0 && set_del(&r->cloud, r->ctx + 1)) {
		r->ctx++;
	}
	if (r->cloud.n > 0 && r->ctx > old_ctx) {
		(void)set_rebuild(&r->cloud, r->cloud.mask + 1, r->ctx);
	} else if (r->cloud.n == 0 && r->cloud.s != NULL) {
		(void)set_rebuild(&r->cloud, 0, 0);
	}
}

/* A remote entry the message observed as removed: drop it and relay the
 * removal in our next delta (best effort: a full state repairs a lost
 * relay). */
static void
remove_remote(clu_presence *p, replica *r, entry *e)
{
	record(p, e, true);
	if (vec_push(&r->ddots, e->clock) == PL_OK) {
		p->nddots++;
	}
	unlink_entry(p, e);
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
			(void)set_add(&r->cloud, c);
		}
	}
	for (size_t i = 0; i < mr->ndots; i++) {
		if (mr->dots[i] > r->ctx) {
			(void)set_add(&r->cloud, mr->dots[i]);
		}
	}
}

/* Joins an entry of the message that we have not observed. */
static int
merge_join(clu_presence *p, const pro_presence_msg *m,
    const pro_presence_entry *me, uint32_t s)
{
	keygrp *kg = kg_get(p, m->topics[me->topic], me->key);
	entry *e;
	if (kg == NULL || (e = entry_new(p, kg, me->meta, me->meta_len)) ==
	    NULL) {
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
	link_entry(p, e);
	record(p, e, false);
	/* The entry's dot joins our context even if the message forgot it. */
	(void)set_add(&p->reps[s]->cloud, me->clock);
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
	if ((rc = reserve(p, bound)) != PL_OK) {
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
		entry *e = s != NONE ? tag_find(p, s, m->entries[i].clock) : NULL;
		if (e != NULL) {
			e->flags &= (uint8_t)~F_SEEN;
		}
	}
	flush(p);
out:
	free(map);
	free(old);
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
clu_presence_list(clu_presence *p, const char *topic_name,
    clu_presence_key_fn fn, void *arg)
{
	if (p->qbusy || topic_name == NULL) {
		return PL_EINVAL;
	}
	topic *t = topic_find(p, topic_name);
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
	const topic *t = topic_name != NULL && key != NULL ?
	    topic_find(p, topic_name) : NULL;
	return t != NULL ? kg_find(t, key) : NULL;
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
	const topic *t = topic_name != NULL ? topic_find(p, topic_name) : NULL;
	return t != NULL ? t->nkeys_vis : 0;
}

size_t
clu_presence_count(const clu_presence *p, const char *topic_name,
    const char *key)
{
	const keygrp *kg = kg_lookup(p, topic_name, key);
	return kg != NULL ? kg->nvis : 0;
}

size_t
clu_presence_owner_list(clu_presence *p, uint64_t owner,
    clu_presence_key_fn fn, void *arg)
{
	size_t n = 0;
	hlink *l = p->owners.b[mix64(owner) & p->owners.mask];
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
