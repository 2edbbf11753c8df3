/* SPDX-License-Identifier: Apache-2.0 */
/* A chained hash of counted keys. Buckets double when the keys outnumber
 * them; entries are freed as their count reaches zero. */
#include "broker/tally.h"

#include "common/err.h"
#include "common/hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct brk_tally_entry {
	brk_tally_entry *next;
	uint64_t hash;
	unsigned count;
	uint16_t len;
	unsigned char key[];
};

struct brk_tally {
	brk_tally_entry **b;
	size_t nb, nkeys;
	uint64_t seed;
};

static uint64_t
hash_key(const brk_tally *t, const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = t->seed;

	for (size_t i = 0; i < len; i++) {
		h = (h ^ p[i]) * 1099511628211ULL;
	}
	return pl_hash_u64(h ^ len);
}

int
brk_tally_create(brk_tally **out)
{
	brk_tally *t = calloc(1, sizeof(*t));

	*out = NULL;
	if (t == NULL) {
		return PL_ENOMEM;
	}
	t->nb = 64;
	if ((t->b = calloc(t->nb, sizeof(*t->b))) == NULL) {
		free(t);
		return PL_ENOMEM;
	}
	if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(t->seed)) {
		t->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
	}
	t->seed ^= 1469598103934665603ULL;
	*out = t;
	return PL_OK;
}

void
brk_tally_destroy(brk_tally *t)
{
	if (t == NULL) {
		return;
	}
	for (size_t i = 0; i < t->nb; i++) {
		brk_tally_entry *e = t->b[i], *nx;
		for (; e != NULL; e = nx) {
			nx = e->next;
			free(e);
		}
	}
	free(t->b);
	free(t);
}

static brk_tally_entry **
slot_of(const brk_tally *t, uint64_t h, const void *key, size_t len)
{
	brk_tally_entry **pp = &t->b[h & (t->nb - 1)];

	while (*pp != NULL &&
	    ((*pp)->hash != h || (*pp)->len != len ||
		memcmp((*pp)->key, key, len) != 0)) {
		pp = &(*pp)->next;
	}
	return pp;
}

/* Doubles the buckets; on allocation failure the table stays as it was
 * (longer chains, still correct). */
static void
grow(brk_tally *t)
{
	size_t nb = t->nb * 2;
	brk_tally_entry **b = calloc(nb, sizeof(*b));

	if (b == NULL) {
		return;
	}
	for (size_t i = 0; i < t->nb; i++) {
		brk_tally_entry *e = t->b[i], *nx;
		for (; e != NULL; e = nx) {
			nx = e->next;
			e->next = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

int
brk_tally_take(brk_tally *t, const void *key, size_t len, unsigned cap,
    brk_tally_entry **out)
{
	uint64_t h;
	brk_tally_entry **pp, *e;

	*out = NULL;
	if (len > UINT16_MAX) {
		return PL_EINVAL;
	}
	h = hash_key(t, key, len);
	pp = slot_of(t, h, key, len);
	e = *pp;
	if (e == NULL) {
		if ((e = malloc(sizeof(*e) + len)) == NULL) {
			return PL_ENOMEM;
		}
		e->next = NULL;
		e->hash = h;
		e->count = 0;
		e->len = (uint16_t)len;
		memcpy(e->key, key, len);
		*pp = e;
		if (++t->nkeys > t->nb) {
			grow(t);
		}
	} else if (cap != 0 && e->count >= cap) {
		return PL_ELIMIT;
	}
	e->count++;
	*out = e;
	return PL_OK;
}

void
brk_tally_release(brk_tally *t, brk_tally_entry *e)
{
	brk_tally_entry **pp;

	if (e == NULL || --e->count > 0) {
		return;
	}
	pp = slot_of(t, e->hash, e->key, e->len);
	*pp = e->next;
	t->nkeys--;
	free(e);
}

unsigned
brk_tally_count(const brk_tally *t, const void *key, size_t len)
{
	brk_tally_entry *e = *slot_of(t, hash_key(t, key, len), key, len);

	return e != NULL ? e->count : 0;
}

size_t
brk_tally_keys(const brk_tally *t)
{
	return t->nkeys;
}
