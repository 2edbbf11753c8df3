/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for the presence CRDT codec (proto/presence_codec), whose
 * decoder every bus peer reaches with deltas, states and clocks. A message
 * that decodes is encoded again and must decode to the same replicas, topics
 * and entries. Any abort or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/presence_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_same(const pro_presence_msg *a, const pro_presence_msg *b)
{
	if (a->kind != b->kind || a->sender != b->sender ||
	    a->nreplicas != b->nreplicas || a->ntopics != b->ntopics ||
	    a->nentries != b->nentries) {
		abort();
	}
	for (size_t i = 0; i < a->nreplicas; i++) {
		const pro_presence_replica *x = &a->replicas[i];
		const pro_presence_replica *y = &b->replicas[i];
		if (strcmp(x->name, y->name) != 0 || x->vsn != y->vsn ||
		    x->lo != y->lo || x->hi != y->hi || x->ndots != y->ndots ||
		    (x->ndots > 0 &&
			memcmp(x->dots, y->dots, x->ndots * sizeof(*x->dots)) !=
			    0)) {
			abort();
		}
	}
	for (size_t i = 0; i < a->ntopics; i++) {
		if (strcmp(a->topics[i], b->topics[i]) != 0) {
			abort();
		}
	}
	for (size_t i = 0; i < a->nentries; i++) {
		const pro_presence_entry *x = &a->entries[i];
		const pro_presence_entry *y = &b->entries[i];
		if (x->replica != y->replica || x->topic != y->topic ||
		    x->clock != y->clock || x->owner != y->owner ||
		    strcmp(x->key, y->key) != 0 || x->meta_len != y->meta_len ||
		    memcmp(x->meta, y->meta, x->meta_len) != 0 ||
		    memcmp(x->ref, y->ref, sizeof(x->ref)) != 0 ||
		    x->has_prev != y->has_prev ||
		    (x->has_prev &&
			memcmp(x->prev_ref, y->prev_ref, sizeof(x->prev_ref)) !=
			    0)) {
			abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	pro_presence_msg *m = NULL, *again = NULL;
	char *enc = NULL;
	size_t len = 0;
	int rc;

	rc = pro_presence_decode(data, size, &m);
	if (rc != PL_OK) {
		if (m != NULL ||
		    (rc != PL_EPROTO && rc != PL_ETOOBIG && rc != PL_ENOMEM)) {
			abort();
		}
		return 0;
	}
	if (m == NULL ||
	    ((m->nreplicas > 0 || m->sender != 0) &&
		m->sender >= m->nreplicas)) {
		abort();
	}
	for (size_t i = 0; i < m->nentries; i++) {
		if (m->entries[i].replica >= m->nreplicas ||
		    m->entries[i].topic >= m->ntopics) {
			abort();
		}
	}
	if (pro_presence_encode(m, &enc, &len) == PL_OK) {
		if (pro_presence_decode(enc, len, &again) != PL_OK) {
			abort();
		}
		check_same(m, again);
		pro_presence_msg_destroy(again);
		free(enc);
	}
	pro_presence_msg_destroy(m);
	return 0;
}
