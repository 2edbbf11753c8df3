/* SPDX-License-Identifier: Apache-2.0 */
/* The containers behind cluster/presence, private to cluster/: a chained hash
 * table of embedded links, an open-addressing set and a growable vector of
 * 64-bit values, and the interning of topics and of their keys. */
#ifndef PARLEY_CLUSTER_PRESENCE_TABLE_H
#define PARLEY_CLUSTER_PRESENCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Hashing ---- */

/* splitmix64's finaliser: spreads every input bit over the whole word. */
static inline uint64_t
clu_ptab_mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* FNV-1a of the NUL-terminated s, mixed. */
static inline uint64_t
clu_ptab_hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	while (*s != '\0') {
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ULL;
	}
	return clu_ptab_mix64(h);
}

/* ---- Chained hash table ---- */

/* The link a node embeds to sit in a clu_ptab; the table allocates no
 * node, so a node may sit in several tables through several links. */
typedef struct clu_ptab_link {
	struct clu_ptab_link *next;
} clu_ptab_link;

/* Chained hash with power-of-two buckets. A failed grow only lengthens
 * chains, so insertion never fails. Callers walk a chain themselves:
 * b[hash & mask], then ->next. */
typedef struct clu_ptab {
	clu_ptab_link **b;
	size_t mask, n;
} clu_ptab;

/* Recomputes the hash of a linked node, for rehashing on growth. */
typedef uint64_t (*clu_ptab_hash_fn)(const clu_ptab_link *);

/* Allocates cap buckets (a power of two) for an empty table. Returns PL_OK
 * or PL_ENOMEM. Release with free(t->b), once the nodes are unlinked or
 * about to be freed by their owner. */
int clu_ptab_init(clu_ptab *t, size_t cap);

/* Links l, whose hash is h, doubling the buckets first when the table is
 * full (hf rehashes the nodes then). Never fails. */
void
clu_ptab_add(clu_ptab *t, clu_ptab_link *l, uint64_t h, clu_ptab_hash_fn hf);

/* Unlinks l, which must be in t with hash h. */
void clu_ptab_del(clu_ptab *t, clu_ptab_link *l, uint64_t h);

/* ---- Set and vector of 64-bit values ---- */

/* Open-addressing set of non-zero values (0 marks an empty slot). A zeroed
 * struct is an empty set; free(s) releases it. */
typedef struct clu_ptab_set {
	uint64_t *s;
	size_t mask, n;
} clu_ptab_set;

/* True when v is in t. */
bool clu_ptab_set_has(const clu_ptab_set *t, uint64_t v);

/* Adds the non-zero v (present already: no-op). Returns PL_OK or PL_ENOMEM
 * (t unchanged). */
int clu_ptab_set_add(clu_ptab_set *t, uint64_t v);

/* Removes v; returns whether it was there. */
bool clu_ptab_set_del(clu_ptab_set *t, uint64_t v);

/* Rebuilds t with cap slots (a power of two, or 0 to free them all),
 * keeping only the values above floor; cap must hold them. Returns PL_OK or
 * PL_ENOMEM (t unchanged). */
int clu_ptab_set_rebuild(clu_ptab_set *t, size_t cap, uint64_t floor);

/* Growable array of values. A zeroed struct is empty; free(v) releases it. */
typedef struct clu_ptab_vec {
	uint64_t *v;
	size_t n, cap;
} clu_ptab_vec;

/* Appends x. Returns PL_OK or PL_ENOMEM (a unchanged). */
int clu_ptab_vec_push(clu_ptab_vec *a, uint64_t x);

/* ---- Topic and key interning ---- */

struct clu_pres_entry;

/* An interned topic: one per name, freed with its last key. */
typedef struct clu_ptab_topic {
	clu_ptab_link link;        /* in the topics table */
	clu_ptab keys;             /* clu_ptab_key by key */
	size_t nvis;               /* visible entries */
	size_t nkeys_vis;          /* keys with a visible entry */
	uint32_t exp_gen, exp_idx; /* topic index in the message being built */
	char name[];
} clu_ptab_topic;

/* An interned (topic, key) group; presence hangs its entries on it and
 * counts them in refs. Freed by clu_ptab_key_release() once refs is 0. */
typedef struct clu_ptab_key {
	clu_ptab_link link; /* in clu_ptab_topic.keys */
	clu_ptab_topic *t;
	struct clu_pres_entry *first; /* linked entries, newest first */
	uint32_t refs; /* entries pointing here, incl. ones pending free */
	uint32_t nvis;
	char key[];
} clu_ptab_key;

/* The topic named name in topics, or NULL. Borrowed. */
clu_ptab_topic *clu_ptab_topic_find(const clu_ptab *topics, const char *name);

/* The group of key in t, or NULL. Borrowed. */
clu_ptab_key *clu_ptab_key_find(const clu_ptab_topic *t, const char *key);

/* Finds or creates the group of (topic_name, key), creating the topic when
 * new. Returns it (borrowed; a new one has refs 0, so take a reference or
 * call clu_ptab_key_release()), or NULL when out of memory (nothing
 * created). */
clu_ptab_key *
clu_ptab_key_get(clu_ptab *topics, const char *topic_name, const char *key);

/* Frees kg when no entry points to it (refs 0), and its topic once keyless;
 * otherwise does nothing. */
void clu_ptab_key_release(clu_ptab *topics, clu_ptab_key *kg);

#endif
