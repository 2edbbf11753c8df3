/* SPDX-License-Identifier: Apache-2.0 */
/* Private to cluster/presence.c and cluster/presence_sync.c: the presence
 * state and the helpers both use. Entries are indexed by tag, by owner
 * handle (local ones) and by interned topic -> key group (presence_table). */
#ifndef PARLEY_CLUSTER_PRESENCE_INT_H
#define PARLEY_CLUSTER_PRESENCE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/presence.h"
#include "cluster/presence_table.h"

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

#define NONE UINT32_MAX
#define F_SEEN 1u /* merge scratch: the message holds this entry */
#define F_PREV 2u /* entry has a phx_ref_prev */

/* Short names: this header is included by the presence files only. */
typedef clu_ptab_link hlink;
typedef clu_ptab htab;
typedef clu_ptab_topic topic;
typedef clu_ptab_key keygrp;
typedef struct clu_pres_entry entry;

struct clu_pres_entry {
	hlink tag_link; /* in clu_presence.tags */
	hlink own_link; /* in clu_presence.owners (local entries only) */
	entry *kg_next; /* next meta of the key; graveyard link once dead */
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
	uint64_t ctx;       /* every clock <= ctx has been observed */
	clu_ptab_set cloud; /* observed clocks above ctx */
	entry *head, *tail;
	size_t n;
	clu_ptab_vec ddots; /* removals to relay in the next delta */
} replica;

typedef struct chg {
	entry *e;
	bool leave;
} chg;

struct clu_presence {
	replica **reps; /* slot 0 is this node; freed slots are NULL */
	uint32_t nreps;
	htab tags, owners, topics;
	size_t nentries, nddots;
	uint64_t delta_start; /* our clock when the delta was last taken */
	uint64_t last_ns;
	uint16_t node_hash, uniq;
	clu_presence_diff_fn on_diff;
	void *arg;
	chg *chg; /* changes to report at the end of this call */
	size_t nchg, capchg;
	clu_presence_meta *dview, *qview; /* diff and query scratch */
	size_t capdview, capqview;
	entry *grave; /* unlinked entries freed after the diffs */
	uint32_t gen;
	bool busy, qbusy; /* inside a diff / query callback */
};

/* Hash of the tag (replica slot, clock) in clu_presence.tags. */
static inline uint64_t
clu_pres_tag_hash(uint32_t rep, uint64_t clock)
{
	return clu_ptab_mix64(clock + (uint64_t)rep * 0x9e3779b97f4a7c15ULL);
}

/* Slot of the replica named name, or NONE. */
uint32_t clu_pres_rep_find(const clu_presence *p, const char *name);

/* A new unlinked entry of kg holding a copy of meta, with one reference on
 * kg; NULL when out of memory (kg is then released if unused). */
entry *clu_pres_entry_new(
    clu_presence *p, keygrp *kg, const char *meta, size_t meta_len);

/* Links e (rep, clock, owner set) into every index; visible if its replica
 * is up. */
void clu_pres_link_entry(clu_presence *p, entry *e);

/* Unlinks e from every index; it is freed by the next clu_pres_flush(), after
 * the diffs are reported, so that views of leaves stay valid. */
void clu_pres_unlink_entry(clu_presence *p, entry *e);

/* Makes room for n more changes so that no allocation can fail between a
 * state change and its report. Returns PL_OK or PL_ENOMEM. */
int clu_pres_reserve(clu_presence *p, size_t n);

/* Records a join or leave of e for the next flush (if its replica is up);
 * room must have been reserved. */
void clu_pres_record(clu_presence *p, entry *e, bool leave);

/* Reports the recorded changes, one callback per topic, then frees the
 * entries that left. */
void clu_pres_flush(clu_presence *p);

#endif
