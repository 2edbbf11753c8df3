/* SPDX-License-Identifier: Apache-2.0 */
/* Containers for cluster/presence: nodes are embedded and tables only ever
 * grow by doubling, so the presence hot paths allocate at most the node. */
#include "cluster/presence_table.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

/* ---- Chained hash table ---- */

int
clu_ptab_init(clu_ptab *t, size_t cap)
{
	t->b = calloc(cap, sizeof(*t->b));
	t->mask = cap - 1;
	t->n = 0;
	return t->b != NULL ? PL_OK : PL_ENOMEM;
}

void
clu_ptab_add(clu_ptab *t, clu_ptab_link *l, uint64_t h, clu_ptab_hash_fn hf)
{
	if (t->n > t->mask) {
		size_t ncap = (t->mask + 1) * 2;
		clu_ptab_link **nb = calloc(ncap, sizeof(*nb));
		if (nb != NULL) {
			for (size_t i = 0; i <= t->mask; i++) {
				while (t->b[i] != NULL) {
					clu_ptab_link *x = t->b[i];
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

void
clu_ptab_del(clu_ptab *t, clu_ptab_link *l, uint64_t h)
{
	clu_ptab_link **pp = &t->b[h & t->mask];
	while (*pp != l) {
		pp = &(*pp)->next;
	}
	*pp = l->next;
	t->n--;
}

/* ---- Set and vector of 64-bit values ---- */

bool
clu_ptab_set_has(const clu_ptab_set *t, uint64_t v)
{
	if (t->n == 0) {
		return false;
	}
	for (size_t i = clu_ptab_mix64(v) & t->mask;; i = (i + 1) & t->mask) {
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
	size_t i = clu_ptab_mix64(v) & mask;
	while (s[i] != 0 && s[i] != v) {
		i = (i + 1) & mask;
	}
	s[i] = v;
}

/* Rebuilds the table with cap slots keeping only values above floor. */
int
clu_ptab_set_rebuild(clu_ptab_set *t, size_t cap, uint64_t floor)
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

int
clu_ptab_set_add(clu_ptab_set *t, uint64_t v)
{
	if (clu_ptab_set_has(t, v)) {
		return PL_OK;
	}
	if (t->s == NULL || (t->n + 1) * 2 > t->mask + 1) {
		size_t cap = t->s == NULL ? 16 : (t->mask + 1) * 2;
		if (clu_ptab_set_rebuild(t, cap, 0) != PL_OK) {
			return PL_ENOMEM;
		}
	}
	set_put(t->s, t->mask, v);
	t->n++;
	return PL_OK;
}

/* Removes v with backward-shift deletion (no tombstones). */
bool
clu_ptab_set_del(clu_ptab_set *t, uint64_t v)
{
	size_t i, j;
	if (t->n == 0) {
		return false;
	}
	for (i = clu_ptab_mix64(v) & t->mask; t->s[i] != v;
	     i = (i + 1) & t->mask) {
		if (t->s[i] == 0) {
			return false;
		}
	}
	for (j = (i + 1) & t->mask; t->s[j] != 0; j = (j + 1) & t->mask) {
		size_t k = clu_ptab_mix64(t->s[j]) & t->mask;
		/* Move s[j] back unless its home k lies cyclically in (i, j]. */
		if ((j > i && (k <= i || k > j)) ||
		    (j < i && k <= i && k > j)) {
			t->s[i] = t->s[j];
			i = j;
		}
	}
	t->s[i] = 0;
	t->n--;
	return true;
}

int
clu_ptab_vec_push(clu_ptab_vec *a, uint64_t x)
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

/* ---- Topic and key interning ---- */

static uint64_t
topic_hf(const clu_ptab_link *l)
{
	return clu_ptab_hash_str(container_of(l, clu_ptab_topic, link)->name);
}

static uint64_t
kg_hf(const clu_ptab_link *l)
{
	return clu_ptab_hash_str(container_of(l, clu_ptab_key, link)->key);
}

clu_ptab_topic *
clu_ptab_topic_find(const clu_ptab *topics, const char *name)
{
	clu_ptab_link *l = topics->b[clu_ptab_hash_str(name) & topics->mask];
	for (; l != NULL; l = l->next) {
		clu_ptab_topic *t = container_of(l, clu_ptab_topic, link);
		if (strcmp(t->name, name) == 0) {
			return t;
		}
	}
	return NULL;
}

clu_ptab_key *
clu_ptab_key_find(const clu_ptab_topic *t, const char *key)
{
	clu_ptab_link *l = t->keys.b[clu_ptab_hash_str(key) & t->keys.mask];
	for (; l != NULL; l = l->next) {
		clu_ptab_key *kg = container_of(l, clu_ptab_key, link);
		if (strcmp(kg->key, key) == 0) {
			return kg;
		}
	}
	return NULL;
}

void
clu_ptab_key_release(clu_ptab *topics, clu_ptab_key *kg)
{
	if (kg->refs > 0) {
		return;
	}
	clu_ptab_topic *t = kg->t;
	clu_ptab_del(&t->keys, &kg->link, clu_ptab_hash_str(kg->key));
	free(kg);
	if (t->keys.n == 0) {
		clu_ptab_del(topics, &t->link, clu_ptab_hash_str(t->name));
		free(t->keys.b);
		free(t);
	}
}

clu_ptab_key *
clu_ptab_key_get(clu_ptab *topics, const char *topic_name, const char *key)
{
	clu_ptab_topic *t = clu_ptab_topic_find(topics, topic_name);
	clu_ptab_key *kg;
	if (t == NULL) {
		size_t len = strlen(topic_name);
		if ((t = calloc(1, sizeof(*t) + len + 1)) == NULL) {
			return NULL;
		}
		/* Most topics hold one key (presence:<user_id>); start small. */
		if (clu_ptab_init(&t->keys, 2) != PL_OK) {
			free(t);
			return NULL;
		}
		memcpy(t->name, topic_name, len + 1);
		clu_ptab_add(
		    topics, &t->link, clu_ptab_hash_str(t->name), topic_hf);
	} else if ((kg = clu_ptab_key_find(t, key)) != NULL) {
		return kg;
	}
	size_t klen = strlen(key);
	if ((kg = calloc(1, sizeof(*kg) + klen + 1)) == NULL) {
		if (t->keys.n == 0) {
			clu_ptab_del(
			    topics, &t->link, clu_ptab_hash_str(t->name));
			free(t->keys.b);
			free(t);
		}
		return NULL;
	}
	kg->t = t;
	memcpy(kg->key, key, klen + 1);
	clu_ptab_add(&t->keys, &kg->link, clu_ptab_hash_str(kg->key), kg_hf);
	return kg;
}
